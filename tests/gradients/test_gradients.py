"""The gradient-flow study: per-timestep norms against a hand-derived backward pass, their decay
for a contracting vanilla RNN, the Hydra config, the study's CSV and the plot, the training step's
implementation it records (training/impl.py)."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from conftest import STUDY_TINY, TINY, run_command
from rnn_experiments.config import compose
from rnn_experiments.errors import ConfigError
from rnn_experiments.gradients import grad_norms_per_step, study
from rnn_experiments.gradients.plot import load_gradients, plot_gradients
from rnn_experiments.gradients.study import run_study
from rnn_experiments.models import RNN
from rnn_experiments.models.kernels import measured
from rnn_experiments.training import impl
from rnn_experiments.training.setup import setup


def _rnn(recurrent_scale=None, seed=0, V=3, C=2, E=4, H=6):
    torch.manual_seed(seed)
    model = RNN(vocab_size=V, num_classes=C, embedding_dim=E, hidden_size=H).double()
    if recurrent_scale is not None:
        with torch.no_grad():
            q, _ = torch.linalg.qr(torch.randn(H, H, dtype=torch.double))
            model.W_hh.copy_(recurrent_scale * q)              # all singular values = scale
    return model


def test_rnn_norms_equal_the_hand_derived_backward_pass():
    """δ_T = W_phᵀ(softmax(p) − onehot(y)),  δ_{t−1} = W_hhᵀ((1 − h_t²) ⊙ δ_t),  per example."""
    model = _rnn()
    x = torch.randint(0, 3, (5, 9), generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 1, 0, 1])
    got = grad_norms_per_step(model, x, y)
    with torch.no_grad():
        e = model.embedding(x)
        hs = model.recurrence(e)
        p = F.linear(hs[-1], model.W_ph, model.b_p)
        delta = (F.softmax(p, 1) - F.one_hot(y, 2)) @ model.W_ph   # (B, H) = ∂L_b/∂h_T
        norms, input_norms = [None] * 9, [None] * 9
        for t in range(8, -1, -1):
            norms[t] = delta.norm(dim=1).mean()
            pre = delta * (1 - hs[t] ** 2)                         # ∂L_b/∂(pre-activation at t)
            input_norms[t] = (pre @ model.W_hx).norm(dim=1).mean()
            delta = pre @ model.W_hh
    torch.testing.assert_close(got["grad_norm"], torch.stack(norms))
    torch.testing.assert_close(got["input_grad_norm"], torch.stack(input_norms))
    assert got["loss"] == pytest.approx(F.cross_entropy(p, y).item())


def test_rnn_with_small_recurrent_weights_loses_gradient_with_distance():
    model = _rnn(recurrent_scale=0.5, H=16)
    x = torch.randint(0, 3, (32, 20), generator=torch.Generator().manual_seed(2))
    norms = grad_norms_per_step(model, x, torch.randint(0, 2, (32,)))["grad_norm"]  # t = 1..T
    assert torch.all(norms[:-1] < norms[1:])                     # falls as T − t grows
    assert norms[0] < 0.5 ** 19 * norms[-1] * 1.0001             # at least as fast as 0.5^(T−t)


def compose_study(*overrides):
    return compose(STUDY_TINY + list(overrides), config_name="gradients")


def test_study_config_is_the_main_tree_plus_a_gradients_section():
    cfg = compose_study("model=peep_lstm", "gradients.steps=[0,3]")
    assert cfg.model.name == "peep_lstm" and cfg.dataset.name == "palindrome"
    assert list(cfg.gradients.steps) == [0, 3] and cfg.experiment_name == "gradients"
    with pytest.raises(Exception, match="gradients.stepz"):
        compose_study("gradients.stepz=1")


@pytest.mark.parametrize("overrides, key", [(["model=bilstm"], "model.name"),
                                            (["gradients.steps=[]"], "gradients.steps"),
                                            (["gradients.steps=[-1,2]"], "gradients.steps"),
                                            (["gradients.batch_size=100000"], "gradients.batch_size")])
def test_study_rejects_bad_settings_naming_the_key(tmp_path, overrides, key):
    with pytest.raises(ConfigError, match=key):
        run_study(compose_study(*overrides), tmp_path)
    assert not (tmp_path / "gradients.csv").exists()


@pytest.mark.parametrize("model", ["rnn", "lstm", "peep_lstm"])
def test_study_trains_exactly_like_the_training_loop(tmp_path, model):
    """The study describes the runs only if it trains as they do: after N steps of each, the
    model gives the same loss on the study's batch (the loss column at step N equals the loss of
    the training loop's checkpoint at step N)."""
    from rnn_experiments.training.loop import train
    N = 7
    common = [f"model={model}", "dataset.seq_length=3", "train.threads=1", "train.lr=3e-3"]
    cfg = compose_study(*common, f"gradients.steps=[0,{N}]", "gradients.batch_size=32")
    rows = run_study(cfg, tmp_path / "study")
    study_loss = {r["step"]: r["loss"] for r in rows}

    run_cfg = compose(TINY + common + [f"train.steps={N}", "train.checkpoint_every=0"])
    train(run_cfg, tmp_path / "run")
    _, data, net, _ = setup(run_cfg)
    initial = grad_norms_per_step(net, data.eval_x[:32], data.eval_y[:32])["loss"]
    net.load_state_dict(torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["model"])
    trained = grad_norms_per_step(net, data.eval_x[:32], data.eval_y[:32])["loss"]
    assert study_loss[0] == pytest.approx(initial, abs=1e-6)
    assert study_loss[N] == pytest.approx(trained, abs=1e-6) and study_loss[N] != study_loss[0]


@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
def test_study_writes_csv_per_step_and_timestep_and_plots(tmp_path):
    for model in ("rnn", "lstm", "peep_lstm"):
        cfg = compose_study(f"model={model}", "dataset.seq_length=2", "gradients.steps=[0,3]",
                            "gradients.batch_size=16", "train.threads=1")
        run_study(cfg, tmp_path / model)
    df = load_gradients([tmp_path])
    T = 9                                                        # palindrome L=2: 4L+2 = 10 digits
    assert len(df) == 3 * 2 * T
    assert set(df.columns) >= {"step", "t", "distance", "grad_norm", "input_grad_norm", "model", "seed"}
    assert (df["distance"] == T - df["t"]).all()
    assert set(df["step"]) == {0, 3}
    peep = df[df["model"] == "peep_lstm"]                        # h_t does not feed its recurrence
    assert (peep[peep["distance"] > 0]["grad_norm"] == 0).all()
    assert (peep["input_grad_norm"] > 0).all()
    # the model trains between measurements: step 3's numbers differ from step 0's
    rnn = df[df["model"] == "rnn"].set_index(["step", "t"])["grad_norm"]
    assert not torch.allclose(torch.tensor(rnn[0].values), torch.tensor(rnn[3].values))
    plot_gradients(df, tmp_path / "g.png")
    assert (tmp_path / "g.png").stat().st_size > 10_000


def test_load_gradients_names_a_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_gradients([tmp_path / "nowhere"])
    with pytest.raises(FileNotFoundError, match="no gradients.csv"):
        load_gradients([tmp_path])


@pytest.mark.slow   # a whole scenario (tests/conftest.py: tiers)
def test_command_line_multirun_writes_one_csv_per_run(tmp_path):
    args = ["model=rnn,lstm", "seed=0", "dataset.seq_length=2", "gradients.steps=[0,2]",
            "gradients.batch_size=8", *STUDY_TINY]
    done = run_command("rnn-measure-gradients", "-m", *args, f"hydra.sweep.dir={tmp_path}")
    assert done.code == 0, done.err
    df = load_gradients([tmp_path])
    assert sorted(df["model"].unique()) == ["lstm", "rnn"] and len(df) == 2 * 2 * 9
    bad = run_command("rnn-measure-gradients", "model=bilstm", f"hydra.run.dir={tmp_path}/bad")
    assert bad.code == 2 and "model.name='bilstm' is invalid" in bad.err and bad.err.count("\n") == 1


@pytest.mark.parametrize("content", [b"step,t\n1,2\n", b"\x00\xff\xfe garbage", b"a,b\n1,2,3,4\n"])
def test_a_damaged_gradients_csv_is_named(tmp_path, content):
    (tmp_path / "gradients.csv").write_bytes(content)
    with pytest.raises(ValueError, match=f"{tmp_path / 'gradients.csv'}: not a readable gradients.csv") as e:
        load_gradients([tmp_path])
    assert "\n" not in str(e.value)


def test_plot_command_errors_are_one_line(tmp_path, capsys, unwritable_dir):
    from rnn_experiments.cli.rnn_plot_gradients import main
    cfg = compose_study("model=rnn", "dataset.seq_length=2", "gradients.steps=[0]", "gradients.batch_size=8")
    run_study(cfg, tmp_path / "run")
    for argv in ([str(tmp_path), "--out", str(unwritable_dir / "g.png")],
                 [str(tmp_path), "--out", str(tmp_path / "g.xyz")]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.startswith("rnn-plot-gradients: error: ") and err.count("\n") == 1


def test_study_seed_beyond_32_bits_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="seed=4294967296 is invalid"):
        run_study(compose_study("seed=4294967296"), tmp_path)


def test_study_records_its_training_step_and_its_norms_do_not_depend_on_it(tmp_path, monkeypatch):
    """The study's training steps take what a run of max(gradients.steps) steps would take
    (training/impl.py; here read from a cache of this test, so nothing is timed), recorded in its
    summary.json with how the norms are computed (always the autograd recurrence): the norms of
    a study trained through the autograd loop equal those of one trained through the fused path
    (up to the order of float sums)."""
    monkeypatch.setenv("RNN_EXPERIMENTS_CACHE", str(tmp_path / "cache"))
    measured.forget()
    common = ["model=lstm", "dataset.seq_length=2", "gradients.steps=[0,3]", "gradients.batch_size=16",
              "train.threads=1"]
    cfg = compose_study(*common)
    _, data, model, _ = setup(cfg)
    measured.remember(impl._key(cfg, data, model, 1), {"choice": "autograd"})
    trained_with = []                                        # model.fused at each training step
    step = study.train_step
    monkeypatch.setattr(study, "train_step", lambda net, *a: (trained_with.append(net.fused), step(net, *a))[1])
    cached_rows = run_study(cfg, tmp_path / "cached")
    assert trained_with == [False] * 3
    record = json.loads((tmp_path / "cached" / "summary.json").read_text())["impl"]
    assert (record["choice"], record["how"], record["threads"], record["threads_how"]) == (
        "autograd", "cached", 1, "train.threads")
    assert record["norms"].startswith("the norms: the autograd recurrence")
    fused_rows = run_study(compose_study(*common, "train.impl=fused"), tmp_path / "fused")
    summary = json.loads((tmp_path / "fused" / "summary.json").read_text())
    assert (summary["impl"]["choice"], summary["impl"]["how"], summary["threads"]) == ("fused", "train.impl", 1)
    assert len(cached_rows) == len(fused_rows) and cached_rows[-1]["step"] == 3
    for a, b in zip(cached_rows, fused_rows):
        for column in ("grad_norm", "input_grad_norm", "loss"):
            assert a[column] == pytest.approx(b[column], rel=1e-4, abs=1e-7)
    # a study of 3 steps is a short run (train.steps, which it does not use, would be timed)
    short = run_study(compose_study(*common, "model.hidden_size=8"), tmp_path / "short")
    assert short and json.loads((tmp_path / "short" / "summary.json").read_text())["impl"]["how"] == (
        "default: a run of fewer than 200 steps is not timed")
    measured.forget()
