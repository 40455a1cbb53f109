"""Training learns, reproduces from its seed, logs what it claims (a real -m sweep:
tests/test_docs.py, its last section)."""
import json

import pandas as pd
import pytest
import torch

from rnn_experiments.training.loop import train
from rnn_experiments.run.metrics import COLUMNS, TIMING_COLUMNS, read_metrics

EASY = ["dataset.seq_length=4", "model.hidden_size=32", "model.embedding_dim=8", "train.lr=1e-2",
        "train.steps=150", "train.batch_size=64", "train.log_every=10", "train.eval_every=50",
        "train.eval_size=512"]


@pytest.mark.parametrize("model", ["lstm", "peep_lstm"])
def test_short_run_learns_an_easy_setting(make_cfg, tmp_path, model):
    summary = train(make_cfg(f"model={model}", *EASY), tmp_path)
    metrics = read_metrics(tmp_path / "metrics.csv")
    assert list(metrics.columns) == COLUMNS
    assert metrics.step.tolist() == list(range(10, 151, 10))
    assert metrics.accuracy.iloc[0] < 0.9  # starts near chance (2/3 of labels are 1) ...
    assert summary["final_eval_accuracy"] >= 0.95  # ... and learns
    assert metrics.loss.iloc[-3:].mean() < 0.5 * metrics.loss.iloc[0]
    assert summary["status"] == "completed" and summary["step"] == 150
    assert json.loads((tmp_path / "summary.json").read_text()) == json.loads(json.dumps(summary, default=str))
    assert (tmp_path / "checkpoint.pt").exists()


def test_same_seed_same_metrics_other_seed_differs(make_cfg, tmp_path):
    def run(seed, name):
        train(make_cfg(f"seed={seed}"), tmp_path / name)
        return read_metrics(tmp_path / name / "metrics.csv").drop(columns=TIMING_COLUMNS)

    a, b, c = run(0, "a"), run(0, "b"), run(1, "c")
    pd.testing.assert_frame_equal(a, b)
    assert not a.loss.equals(c.loss)


def test_summary_records_parameter_count(make_cfg, tmp_path):
    summary = train(make_cfg("model.hidden_size=7", "model.embedding_dim=5"), tmp_path)
    H, E, C = 7, 5, 2
    assert summary["num_params"] - summary["num_params_embedding"] == 4 * (H * E + H * H + H) + C * H + C
    assert summary["num_params_embedding"] == 3 * E


def test_eval_loss_is_the_mean_nll_over_the_held_out_set(make_cfg, tmp_path):
    """eval_loss, by hand: -mean_b log ŷ_b[y_b] over all held-out examples, from the checkpoint."""
    import torch
    from rnn_experiments.training.setup import setup
    cfg = make_cfg("train.steps=10", "train.eval_every=10")
    train(cfg, tmp_path)
    _, data, model, _ = setup(cfg)
    model.load_state_dict(torch.load(tmp_path / "checkpoint.pt", weights_only=False)["model"])
    model.eval()
    with torch.no_grad():
        log_probs = model(data.eval_x)                                  # (N, C)
    by_hand = -log_probs[torch.arange(len(data.eval_y)), data.eval_y].mean().item()
    accuracy = (log_probs.argmax(1) == data.eval_y).float().mean().item()
    last = read_metrics(tmp_path / "metrics.csv").iloc[-1]
    assert last["eval_loss"] == pytest.approx(by_hand, rel=1e-5)
    assert last["eval_accuracy"] == pytest.approx(accuracy)
    assert pd.isna(last["eval_bpc"])                                    # bits per character: text only


@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
def test_best_checkpoint_is_the_evaluation_with_the_lowest_held_out_loss(make_cfg, tmp_path):
    import torch
    summary = train(make_cfg(*EASY, "train.checkpoint_every=0", "train.lr=3e-2"), tmp_path)
    evals = read_metrics(tmp_path / "metrics.csv").dropna(subset=["eval_loss"])
    best = evals.loc[evals["eval_loss"].idxmin()]
    assert summary["best_checkpoint"]["step"] == best["step"]
    assert summary["best_checkpoint"]["eval_loss"] == pytest.approx(best["eval_loss"])
    state = torch.load(tmp_path / "checkpoint_best.pt", weights_only=False)
    assert state["step"] == best["step"]
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["step"] == 150


@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
def test_best_checkpoint_stays_at_the_best_when_held_out_loss_gets_worse(make_cfg, tmp_path):
    """A hook damages the weights after step 100, so the last evaluation is worse than an earlier
    one: checkpoint_best.pt keeps that earlier model (its held-out loss, re-evaluated, is the best)."""
    import torch
    from rnn_experiments.training.step import evaluate
    noise = torch.Generator().manual_seed(0)

    def damage_after_step_100(step, model, data, out_dir):
        if 100 < step < 150:   # (after step 150's evaluation it would change what checkpoint.pt holds)
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(torch.randn(p.shape, generator=noise) * 0.3)

    cfg = make_cfg(*EASY, "train.checkpoint_every=0", "train.lr=3e-2")
    summary = train(cfg, tmp_path, hooks=[damage_after_step_100])
    evals = read_metrics(tmp_path / "metrics.csv").dropna(subset=["eval_loss"]).set_index("step")
    best_step = summary["best_checkpoint"]["step"]
    assert best_step <= 100 and evals.loc[150, "eval_loss"] > evals.loc[best_step, "eval_loss"]
    assert evals.loc[best_step, "eval_loss"] == evals["eval_loss"].min()

    from rnn_experiments.training.setup import setup
    _, data, model, _ = setup(cfg)
    for name, step in (("checkpoint_best.pt", best_step), ("checkpoint.pt", 150)):
        state = torch.load(tmp_path / name, weights_only=False)
        assert state["step"] == step
        model.load_state_dict(state["model"])
        model.eval()
        _, eval_loss = evaluate(model, data.eval_x, data.eval_y)
        assert eval_loss == pytest.approx(evals.loc[step, "eval_loss"], rel=1e-5), name


def test_a_sink_that_raises_stoprun_ends_the_run_early_as_a_normal_end(make_cfg, tmp_path):
    """The loop's general early stop (an Optuna trial's pruning uses it): a sink raises StopRun
    at an evaluation; the other sinks still get that row, the step ends as usual, the checkpoint
    is saved at that step and the run ends with the sink's status and reason."""
    from rnn_experiments.run.status import StopRun

    class StopAt:
        def write(self, row):
            if row["step"] == 10:
                raise StopRun("pruned", "held-out accuracy too low at step 10")

    class Record:
        rows: list = []

        def write(self, row):
            self.rows.append(row["step"])

    rec = Record()
    cfg = make_cfg("train.steps=40", "train.log_every=5", "train.eval_every=10", "train.checkpoint_every=0")
    summary = train(cfg, tmp_path, sinks=[StopAt(), rec])
    assert summary["status"] == "pruned" and summary["step"] == 10
    assert summary["stop_reason"] == "held-out accuracy too low at step 10"
    assert rec.rows == [5, 10]                                  # the other sink got the row too
    assert read_metrics(tmp_path / "metrics.csv").step.tolist() == [5, 10]
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "pruned"
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["step"] == 10   # saved at the stop
    assert (tmp_path / "checkpoint_best.pt").exists()
    with pytest.raises(ValueError, match="expected one of pruned, stopped"):
        StopRun("completed", "not a stop status")


def test_the_eta_is_the_pace_since_the_previous_line_so_a_pause_sways_one_estimate(caplog):
    """Progress lines at steps 100, 200, 300 of 1,000, 10 s apart, but 600 s (a suspended job)
    between the first two: the second ETA counts the pause, the third is 10 s per 100 steps again."""
    import logging
    from types import SimpleNamespace
    from omegaconf import OmegaConf
    from rnn_experiments.training.loop import _report
    run = SimpleNamespace(cfg=OmegaConf.create({"train": {"steps": 1000}}), t0=0.0, summary={},
                          step=0, last_report=None)
    row = {"loss": 0.5, "accuracy": 0.5, "examples_per_s": 100.0}
    with caplog.at_level(logging.INFO, logger="rnn_experiments.training.loop"):
        for step, now in [(100, 10.0), (200, 610.0), (300, 620.0)]:
            run.step = step
            _report(run, row, False, now)
    etas = [line.rsplit("ETA ", 1)[1] for line in caplog.messages]
    assert etas == ["1m30s", "1h20m", "1m10s"]   # 900 steps x 0.1 s; 800 x 6 s; 700 x 0.1 s
