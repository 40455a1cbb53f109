"""How a run may end early at a metrics sink's request (`StopRun`), and the statuses it may end with.

A metrics sink (metrics.py) that decides the run should end early (an Optuna trial the pruner
stops: rnn_experiments/sweeps/search/trial.py) raises `StopRun(status, reason)` from `write(row)`.
The loop finishes that step as usual (best checkpoint, progress line), saves checkpoint.pt and ends
with that status: a normal end (exit 0), like `completed`, but short of train.steps. Signals are
the loop's (rnn_experiments/training/signals.py).
"""
from __future__ import annotations

STOP_STATUSES = ("pruned", "stopped")   # what a StopRun may end a run with (summary.json's status)


class StopRun(Exception):
    """Raised by a metrics sink: end the run after this step with `status` (one of STOP_STATUSES),
    `reason` a line for summary.json (`stop_reason`) and the log."""

    def __init__(self, status: str, reason: str):
        if status not in STOP_STATUSES:
            raise ValueError(f"StopRun status {status!r}: expected one of {', '.join(STOP_STATUSES)}")
        super().__init__(reason)
        self.status, self.reason = status, reason
