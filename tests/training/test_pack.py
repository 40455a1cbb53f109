"""A pack (rnn_experiments/training/pack.py): runs of one config that differ only in `seed`,
trained in one process, each equal to the separate run of its seed: bit for bit when the pack
takes their steps one after the other ("loop"), to float rounding when it stacks them.

Tolerance of the stacked steps: a batched product over the members sums in another order than
K separate products, so every op differs from the separate run's by a few float32 ulps
(eps = 1.2e-7); Adam divides by sqrt(v) and amplifies some of that, so losses are compared at a
relative 1e-5 (100x what 100 steps showed: ~3e-7) and held-out accuracy exactly (a prediction
would have to sit on the decision boundary to flip).
"""
from __future__ import annotations

import csv
import json
import logging

import pytest
import torch

from rnn_experiments.sweeps.checks import check_pack_settings as check_settings
from rnn_experiments.sweeps.pack import pack_key, packs_of
from rnn_experiments.training.loop import start, train
from rnn_experiments.training.pack import Member, memory_words, run_pack
from rnn_experiments.training.resources import MiB, available_cores, process_peak_bytes, resident_bytes, training_bytes
from rnn_experiments.training.setup import setup
from rnn_experiments.errors import ConfigError

TIMING = ("examples_per_s", "elapsed_s")


def rows(folder):
    with open(folder / "metrics.csv") as f:
        return [{k: v for k, v in r.items() if k not in TIMING} for r in csv.DictReader(f)]


def weights(folder, name="checkpoint.pt"):
    return torch.load(folder / name, weights_only=False)["model"]


def pack(cfgs, folders, strategy, hooks=None):
    members = [Member(start(c, d, hooks=(hooks or {}).get(i, ()), packed=True), name=str(i))
               for i, (c, d) in enumerate(zip(cfgs, folders))]
    used = run_pack(members, strategy, log=logging.getLogger("test_pack"), record={"size": len(cfgs)})
    return members, used


def seeds_and_runs(make_cfg, tmp_path, *overrides, seeds=(0, 1, 2)):
    cfgs = [make_cfg(f"seed={s}", *overrides) for s in seeds]
    for s, c in zip(seeds, cfgs):
        train(c, tmp_path / f"alone{s}")
    return cfgs, [tmp_path / f"alone{s}" for s in seeds], [tmp_path / f"pack{s}" for s in seeds]


def test_loop_members_equal_their_separate_runs_bit_for_bit_dropout_included(make_cfg, tiny_text, tmp_path):
    """Two-layer text generator with dropout: each member draws its own dropout masks (its own
    generators swapped in), so its rows and weights are the separate run's exactly."""
    from conftest import text_overrides
    over = text_overrides(tiny_text, "model.num_layers=2", "model.dropout=0.3", "train.steps=12",
                          "train.log_every=1", "train.eval_every=6")
    cfgs, alone, packed = seeds_and_runs(make_cfg, tmp_path, *over, seeds=(0, 1))
    members, used = pack(cfgs, packed, "loop")
    assert used == "loop" and [m.summary["status"] for m in members] == ["completed"] * 2
    for a, p in zip(alone, packed):
        assert rows(p) == rows(a)
        for name, tensor in weights(a).items():
            assert torch.equal(weights(p)[name], tensor), name
    assert rows(packed[0]) != rows(packed[1])     # the seeds' own streams, not one shared
    assert members[0].summary["pack"]["strategy"] == "loop"


@pytest.mark.parametrize("model", ["lstm", pytest.param("peep_lstm", marks=pytest.mark.slow),
                                   pytest.param("gru", marks=pytest.mark.slow)])
def test_stacked_members_equal_their_separate_runs_to_float_rounding(make_cfg, tmp_path, model):
    cfgs, alone, packed = seeds_and_runs(make_cfg, tmp_path, f"model={model}", "train.steps=30",
                                         "train.log_every=1", "train.eval_every=15", seeds=(0, 1))
    members, used = pack(cfgs, packed, "stacked")
    assert used == "stacked"
    for a, p in zip(alone, packed):
        ra, rp = rows(a), rows(p)
        assert len(ra) == len(rp) == 30
        for x, y in zip(ra, rp):
            assert float(y["loss"]) == pytest.approx(float(x["loss"]), rel=1e-5)
        assert rp[-1]["eval_accuracy"] == ra[-1]["eval_accuracy"]
        assert rp[0]["loss"] == ra[0]["loss"] or float(rp[0]["loss"]) == pytest.approx(float(ra[0]["loss"]), rel=1e-6)


def test_a_member_is_built_as_its_separate_run_would_be(make_cfg, tmp_path):
    """Initial weights and batches: those of setup(cfg) for the member's seed."""
    cfg = make_cfg("seed=3")
    run = start(cfg, tmp_path / "m", packed=True)
    member_run = next(run)                      # ready: its _Run
    x, y = next(run)                            # its first batch
    _, data, model, _ = setup(make_cfg("seed=3"))
    for (name, p), q in zip(member_run.model.named_parameters(), model.parameters()):
        assert torch.equal(p, q), name
    x0, y0 = data.sample(cfg.train.batch_size)
    assert torch.equal(x, x0) and torch.equal(y, y0)
    run.close()


def test_a_member_that_diverges_or_fails_ends_alone_and_the_others_complete(make_cfg, tmp_path):
    cfgs = [make_cfg(f"seed={s}", "train.steps=12", "train.log_every=2", "train.eval_every=6") for s in range(3)]
    folders = [tmp_path / f"p{s}" for s in range(3)]

    def poison(step, model, data, out_dir):     # member 1: its weights become NaN at step 4
        if step == 4:
            with torch.no_grad():
                next(model.parameters()).fill_(float("nan"))

    def crash(step, model, data, out_dir):      # member 2: its hook raises at step 3
        if step == 3:
            raise RuntimeError("hook broke")
    members, _ = pack(cfgs, folders, "stacked", hooks={1: [poison], 2: [crash]})
    assert members[0].summary["status"] == "completed" and members[0].run.step == 12
    assert members[1].summary["status"] == "diverged" and members[1].summary["diverged_at_step"] == 5
    assert isinstance(members[2].error, RuntimeError)
    import json
    assert json.loads((folders[2] / "summary.json").read_text())["status"] == "failed"
    alone = tmp_path / "alone0"
    train(cfgs[0], alone)
    assert [float(r["loss"]) for r in rows(folders[0])] == pytest.approx([float(r["loss"]) for r in rows(alone)], rel=1e-5)


@pytest.mark.slow   # trains each seed three times
def test_a_members_checkpoint_is_an_ordinary_checkpoint(make_cfg, tmp_path):
    """A pack trained to step 10, then each member resumed alone to 20: what the separate run
    trained straight to 20 has (loop: to the bit)."""
    short = [make_cfg(f"seed={s}", "train.steps=10", "train.log_every=2", "train.eval_every=10") for s in (0, 1)]
    folders = [tmp_path / f"p{s}" for s in (0, 1)]
    pack(short, folders, "loop")
    for s, folder in zip((0, 1), folders):
        longer = make_cfg(f"seed={s}", "train.steps=20", "train.log_every=2", "train.eval_every=10")
        train(longer, folder)                           # resumes from the member's checkpoint.pt
        straight = tmp_path / f"straight{s}"
        train(longer, straight)
        assert rows(folder) == rows(straight)


def test_runs_are_packed_by_all_but_their_seed(make_cfg):
    keys = [pack_key(make_cfg(*o)) for o in (["seed=0"], ["seed=1"], ["seed=0", "model=gru"], ["seed=2"])]
    assert keys[0] == keys[1] == keys[3] != keys[2]
    assert packs_of(["a"] * 10 + ["b"], 4) == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9], [10]]
    assert packs_of(["a", "b", "a"], 10) == [[0, 2], [1]]


@pytest.mark.parametrize("size, strategy, n_jobs, key", [(0, "auto", 1, "pack_size"), (True, "auto", 1, "pack_size"),
                                                         (4, "fast", 1, "strategy"), (4, "auto", 0, "n_jobs"),
                                                         (4, "auto", -2, "n_jobs")])
def test_bad_launcher_settings_are_refused_in_one_line(size, strategy, n_jobs, key):
    with pytest.raises(ConfigError, match=f"hydra.launcher.{key}="):
        check_settings(size, strategy, n_jobs)


@pytest.mark.slow   # trains each seed three times
def test_a_stop_signal_stops_every_member_with_its_checkpoint_and_each_resumes_exactly(make_cfg, tmp_path):
    """SIGTERM (SLURM's end, Ctrl-C alike) once, during member 0's hook: every member finishes its
    step, saves checkpoint.pt and ends interrupted; each then resumes to what a run never stopped has."""
    import os
    import signal

    from rnn_experiments.training.signals import Interrupted
    cfgs = [make_cfg(f"seed={s}", "train.steps=12", "train.log_every=2", "train.eval_every=6") for s in (0, 1)]
    folders = [tmp_path / f"p{s}" for s in (0, 1)]

    def stop(step, model, data, out_dir):
        if step == 5:
            os.kill(os.getpid(), signal.SIGTERM)
    members, _ = pack(cfgs, folders, "loop", hooks={0: [stop]})
    assert all(isinstance(m.error, Interrupted) for m in members)
    assert [m.run.step for m in members] == [5, 5]
    for cfg, folder, s in zip(cfgs, folders, (0, 1)):
        assert torch.load(folder / "checkpoint.pt", weights_only=False)["step"] == 5
        train(cfg, folder)                       # resumed alone
        train(cfg, tmp_path / f"straight{s}")
        assert rows(folder) == rows(tmp_path / f"straight{s}")


@pytest.mark.parametrize("margin, expected", [(1e9, "sequential"),
                                              pytest.param(0.0, "stacked", marks=pytest.mark.slow)])
def test_auto_keeps_stacked_only_where_it_is_faster_else_runs_each_member_to_its_end(
        make_cfg, tmp_path, monkeypatch, margin, expected):
    import rnn_experiments.training.pack as pack_module
    monkeypatch.setattr(pack_module, "MARGIN", margin)   # stacked never / always the faster
    cfgs, alone, packed = seeds_and_runs(make_cfg, tmp_path, "train.steps=12", "train.log_every=1",
                                         "train.eval_every=6", seeds=(0, 1))
    record = {"size": 2}
    members = [Member(start(c, d, packed=True)) for c, d in zip(cfgs, packed)]
    assert run_pack(members, "auto", record=record) == expected
    assert record["strategy"] == expected and members[0].summary["pack"]["strategy"] == expected
    for a, p in zip(alone, packed):
        assert [float(r["loss"]) for r in rows(p)] == pytest.approx([float(r["loss"]) for r in rows(a)], rel=1e-5)


def test_packs_are_split_up_front_so_that_what_runs_at_once_fits_in_memory():
    from rnn_experiments.sweeps.pack import fitted
    packs = [list(range(10)), [10, 11]]
    assert fitted(packs, need=100, available=None) == packs            # unknown memory: as they are
    assert fitted(packs, need=100, available=10_000) == packs          # 10 members x 100 B fit
    assert fitted(packs, need=100, available=450) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9], [10, 11]]
    assert fitted(packs, need=100, available=450, n_jobs=2) == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9], [10, 11]]
    assert fitted(packs, need=100, available=50) == [[i] for i in range(12)]   # not even one: alone


def test_a_packs_summary_records_its_measured_peak_memory_beside_the_estimate(make_cfg, tmp_path):
    """Each member's summary.json `pack` holds the pack's peak resident memory, at least what the
    process held before the pack and at most the high-water mark after it, and the launcher's
    estimate, K x training_bytes; the log line's words are computed from them."""
    cfgs = [make_cfg(f"seed={s}", "train.steps=6", "train.eval_every=6") for s in (0, 1)]
    folders = [tmp_path / f"p{s}" for s in (0, 1)]
    before = resident_bytes()
    members, _ = pack(cfgs, folders, "loop")
    records = [json.loads((f / "summary.json").read_text())["pack"] for f in folders]
    assert records[0] == records[1] == members[0].summary["pack"]     # the whole pack's, in both
    rec = records[0]
    # the high-water mark only rises: the one read now bounds the pack's from above
    now = resident_bytes("VmHWM") if rec["peak_rss_since"] == "start" else process_peak_bytes()
    assert round(before / MiB, 1) <= rec["peak_rss_mib"] <= round(now / MiB, 1)
    assert rec["rss_before_mib"] <= rec["peak_rss_mib"]
    assert rec["estimate_mib"] == round(2 * training_bytes(cfgs[0]) / MiB, 1)
    assert "peak_cuda_mib" not in rec                                 # a CPU pack
    assert memory_words(rec).startswith(f"peak resident memory {rec['peak_rss_mib']:.0f} MiB")
    assert f"{rec['peak_rss_mib'] - rec['rss_before_mib']:+.0f} MiB over" in memory_words(rec)



def test_the_peak_is_never_written_over_a_run_that_took_a_members_folder_after_it_ended(make_cfg, tmp_path):
    """Member 0 ends (its folder let go) before member 1's last hook; there another run's
    summary.json takes member 0's folder: the pack's end leaves it as it is, member 1's gets the peak."""
    cfgs = [make_cfg(f"seed={s}", "train.steps=4", "train.eval_every=4") for s in (0, 1)]
    folders = [tmp_path / f"p{s}" for s in (0, 1)]
    other = {"status": "running", "started": "another run", "host": "elsewhere", "pid": 1}

    def take_over(step, model, data, out_dir):
        if step == 4:
            (folders[0] / "summary.json").write_text(json.dumps(other))
    pack(cfgs, folders, "loop", hooks={1: [take_over]})
    assert json.loads((folders[0] / "summary.json").read_text()) == other
    assert "peak_rss_mib" in json.loads((folders[1] / "summary.json").read_text())["pack"]


class GlobalNormSGD(torch.optim.Optimizer):
    """A user's optimizer that is not element-wise, with state of its own over all its parameters:
    every update is scaled by a running mean of the global gradient norm,
        n_t = ‖(g_1, ..., g_P)‖ over every parameter at once,  m_t = β m_{t-1} + (1 - β) n_t  (m_1 = n_1),
        θ ← θ - lr · g / m_t."""

    def __init__(self, params, lr: float, beta: float = 0.9):
        super().__init__(params, {"lr": lr, "beta": beta})

    @torch.no_grad()
    def step(self, closure=None):
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        beta = self.param_groups[0]["beta"]
        state = self.state["global"]                   # one running norm for all the parameters
        state["norm"] = norm if "norm" not in state else beta * state["norm"] + (1 - beta) * norm
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.sub_(group["lr"] * p.grad / state["norm"])


GLOBAL_NORM_SGD = ["optimizer=sgd", f"optimizer._target_={__name__}.GlobalNormSGD", "optimizer.name=global_norm_sgd",
                   "~optimizer.momentum", "~optimizer.nesterov", "~optimizer.weight_decay", "train.lr=0.05"]


def test_a_user_optimizer_with_global_state_is_exact_under_stacking(make_cfg, tmp_path):
    """Every member keeps its own optimizer over its own parameters and the stacked step only
    computes each member's gradient, so an update over all of a member's parameters at once
    (a global norm, a state of its own) is its separate run's: members equal within the
    stacked tolerance (the module doc). Had one norm been taken over the stack, they would not be."""
    cfgs, alone, packed = seeds_and_runs(make_cfg, tmp_path, *GLOBAL_NORM_SGD, "train.steps=10",
                                         "train.log_every=1", "train.eval_every=10", seeds=(0, 1))
    members, used = pack(cfgs, packed, "stacked")
    assert used == "stacked" and isinstance(members[0].run.optimizer, GlobalNormSGD)
    for a, p in zip(alone, packed):
        ra, rp = rows(a), rows(p)
        assert len(ra) == len(rp) == 10
        assert [float(r["loss"]) for r in rp] == pytest.approx([float(r["loss"]) for r in ra], rel=1e-5)
        assert rp[-1]["eval_accuracy"] == ra[-1]["eval_accuracy"]
    assert rows(packed[0])[-1]["loss"] != rows(packed[0])[0]["loss"]    # it did train


def test_an_optimizer_whose_step_needs_a_closure_is_refused_before_the_run(make_cfg):
    """The training step (alone or packed) calls optimizer.step() after its own backward: an
    optimizer whose step requires a closure (LBFGS) is refused by the contract check, one line."""
    from rnn_experiments.contract import check_contract
    cfg = make_cfg("optimizer=sgd", "optimizer._target_=torch.optim.LBFGS", "optimizer.name=lbfgs",
                   "~optimizer.momentum", "~optimizer.nesterov", "~optimizer.weight_decay")
    with pytest.raises(ConfigError) as e:
        check_contract(cfg)
    assert str(e.value).startswith("optimizer._target_=torch.optim.LBFGS breaks the optimizer contract: "
                                   "its step() requires `closure`") and "\n" not in str(e.value)
    check_contract(make_cfg(*GLOBAL_NORM_SGD))        # step(closure=None): accepted


@pytest.mark.skipif(available_cores() < 2, reason="one core: one thread is all there is")
def test_auto_also_times_stacked_steps_at_the_packs_thread_count_and_keeps_the_fastest(monkeypatch):
    """Members that chose one thread for their own size: auto times the stacked step at their
    count and at the pack's (a stacked step has K times the rows), and goes on at the faster."""
    import time as time_module

    import rnn_experiments.training.pack as pack_module

    class Fake:
        def __init__(self, runs, seconds):
            self.seconds = seconds

        def __call__(self, runs, batches, enter=lambda k: None):
            time_module.sleep(self.seconds(torch.get_num_threads()))
            return [(torch.tensor(0.0), torch.tensor(1.0))]

    monkeypatch.setattr(pack_module, "LoopStep", lambda runs: Fake(runs, lambda n: 0.03))
    monkeypatch.setattr(pack_module, "StackedStep", lambda runs: Fake(runs, lambda n: 0.005 if n == 2 else 0.02))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        step = pack_module.AutoStep([None], threads=2)
        assert list(step.ways) == ["loop", "stacked", "stacked threads=2"]
        for _ in range(3 * pack_module.TRIAL_ROUNDS):
            step([None], [None])
        assert step.chosen == "stacked threads=2" and step.strategy == "stacked" and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
