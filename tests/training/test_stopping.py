"""Early stopping (stopping=early, rnn_experiments/training/stopping.py): the rule against a
worked sequence, a run that stops with its reason and keeps its best checkpoint, a resume that
counts as the uninterrupted run did, and the refusals of a monitor the run does not evaluate or
a mode against the metric's direction."""
from __future__ import annotations


import pytest

from rnn_experiments.config import validate
from rnn_experiments.errors import ConfigError
from rnn_experiments.run.metrics import read_metrics
from rnn_experiments.run.status import StopRun
from rnn_experiments.training.loop import train
from rnn_experiments.training.stopping import EarlyStopping


def rows(values, every=10):
    return [{"step": every * (i + 1), "eval_loss": "" if v is None else v} for i, v in enumerate(values)]


@pytest.mark.parametrize("values, patience, min_delta, mode, stops_at", [
    ([1.0, 0.9, 0.95, 0.93, 0.8], 2, 0.0, "min", 40),      # 0.95, 0.93: two evaluations not below 0.9
    ([1.0, 0.9, 0.95, 0.85, 0.86, 0.87], 2, 0.0, "min", 60),
    ([1.0, 0.99, 0.98, 0.97], 3, 0.05, "min", 40),          # improvements under min_delta do not count
    ([0.5, 0.6, 0.6, 0.7], 2, 0.0, "max", None),            # accuracy rising, ties do not count
    ([0.5, None, 0.5, None, 0.5], 2, 0.0, "max", 50),       # rows without an evaluation are not counted
])
def test_the_rule(values, patience, min_delta, mode, stops_at):
    s = EarlyStopping("eval_loss", patience, min_delta, mode)
    s.open(None, [])
    stopped = None
    for row in rows(values):
        try:
            s.write(row)
        except StopRun as e:
            assert e.status == "stopped" and f"for {patience} evaluations" in e.reason
            stopped = row["step"]
            break
    assert stopped == stops_at


def test_a_run_stops_with_its_reason_and_keeps_its_best_checkpoint(make_cfg, tmp_path):
    # min_delta 10 nats: no evaluation after the first counts as better; patience 2: the third stops it
    cfg = make_cfg("stopping=early", "stopping.patience=2", "stopping.min_delta=10", "train.steps=100")
    summary = train(cfg, tmp_path)
    assert (summary["status"], summary["step"]) == ("stopped", 30)
    assert summary["stop_reason"].startswith("eval_loss did not improve for 2 evaluations (best ")
    assert summary["stop_reason"].endswith("at step 10)")
    assert (tmp_path / "checkpoint_best.pt").is_file() and (tmp_path / "checkpoint.pt").is_file()
    assert read_metrics(tmp_path / "metrics.csv")["step"].max() == 30


def test_a_resumed_run_counts_the_evaluations_before_its_interruption(make_cfg, tmp_path):
    args = ("stopping=early", "stopping.patience=2", "stopping.min_delta=10", "train.checkpoint_every=20")
    first = train(make_cfg(*args, "train.steps=20"), tmp_path)             # evaluations at 10, 20
    assert first["status"] == "completed"
    summary = train(make_cfg(*args, "train.steps=100"), tmp_path)          # the third: step 30
    assert (summary["status"], summary["step"], summary["resumed_from_step"]) == ("stopped", 30, 20)


@pytest.mark.parametrize("overrides, message", [
    (["stopping.monitor=eval_bpc"], "stopping.monitor='eval_bpc' is invalid: expected a column this run "
                                    "evaluates: one of eval_accuracy, eval_loss"),
    (["stopping.monitor=eval_accuracy"], "stopping.mode='min' is invalid: expected max for eval_accuracy"),
    (["+stopping.patience_steps=3"], "stopping.patience_steps=3 is not a setting of stopping=early"),
])
def test_a_monitor_the_run_does_not_evaluate_or_a_wrong_mode_is_refused(make_cfg, overrides, message):
    with pytest.raises(ConfigError) as e:
        validate(make_cfg("stopping=early", *overrides))
    assert str(e.value).startswith(message), str(e.value)
