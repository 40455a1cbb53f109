"""Early stopping: end a run whose held-out metric has not improved for `patience` evaluations.

    better(v, best) = v < best - min_delta    (mode min: eval_loss, eval_bpc)
                      v > best + min_delta    (mode max: eval_accuracy)
    stop at the evaluation where `patience` evaluations in a row were not better than the best

It is a part (conf/stopping/early.yaml, `stopping=early`; any class by `_target_` that is a
metrics sink) and a metrics sink (rnn_experiments/run/metrics.py): it reads every metrics.csv
row, and raises `StopRun("stopped", reason)`, so the run ends as a sink's stop ends it: the
step finished, checkpoint.pt saved, checkpoint_best.pt (the lowest held-out loss) kept, status
`stopped` with the reason in summary.json. A resumed run hands it the rows so far (`open`), so
it counts as the uninterrupted run would.
"""
from __future__ import annotations

import math
from typing import Literal

from rnn_experiments.run.status import StopRun


class EarlyStopping:
    def __init__(self, monitor: str = "eval_loss", patience: int = 5, min_delta: float = 0.0,
                 mode: Literal["min", "max"] = "min"):
        self.monitor, self.patience, self.min_delta, self.mode = monitor, patience, min_delta, mode
        self.best, self.best_step, self.waited = math.nan, None, 0

    def open(self, out_dir, rows: list[dict]) -> None:
        self.best, self.best_step, self.waited = math.nan, None, 0
        for row in rows:
            self._see(row)

    def write(self, row: dict) -> None:
        if self._see(row):
            raise StopRun("stopped", f"{self.monitor} did not improve for {self.patience} evaluations "
                                     f"(best {self.best:.6g} at step {self.best_step})")

    def _see(self, row: dict) -> bool:
        """Take one row; whether the patience ran out at it."""
        value = row.get(self.monitor, "")
        if value == "":
            return False                       # no evaluation at this row
        value = float(value)
        sign = 1.0 if self.mode == "min" else -1.0
        if math.isnan(self.best) or sign * (value - self.best) < -self.min_delta:
            self.best, self.best_step, self.waited = value, int(row["step"]), 0
            return False
        self.waited += 1
        return self.waited >= self.patience
