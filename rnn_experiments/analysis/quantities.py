"""What each metric and per-run statistic is: its name, unit, the range it can take, which way is
better and how its axis is drawn. The one table the plots (axis labels, band clipping, log axes),
the summary and comparison tables (names, formats, interval cuts) and the probability of
improvement ("better") read.

    metric          a metrics.csv column (accuracy, eval_loss, ...): METRICS
    statistic       one number per run made from a metric (final_accuracy, steps_to_threshold,
                    wall_time_s, ...): STATISTICS
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HIGHER, LOWER = "higher", "lower"


@dataclass(frozen=True)
class Quantity:
    name: str                     # what a reader calls it ("held-out loss")
    unit: str                     # "fraction", "nats", "" (none)
    bounds: tuple[float, float]   # the values it can take: bands and intervals are cut to these
    better: str | None            # HIGHER, LOWER or None (neither: lr, throughput)
    log: bool = False             # drawn on a logarithmic axis by default (losses)
    fmt: str = ".3g"              # how the tables print it

    @property
    def label(self) -> str:
        """The axis label: "held-out loss (nats)"."""
        return f"{self.name} ({self.unit})" if self.unit else self.name


FRACTION, NONNEG = (0.0, 1.0), (0.0, np.inf)

METRICS = {
    "accuracy": Quantity("training accuracy", "fraction", FRACTION, HIGHER, fmt=".3f"),
    "eval_accuracy": Quantity("held-out accuracy", "fraction", FRACTION, HIGHER, fmt=".3f"),
    "loss": Quantity("training loss", "nats", NONNEG, LOWER, log=True),
    "eval_loss": Quantity("held-out loss", "nats", NONNEG, LOWER, log=True),
    "eval_bpc": Quantity("held-out bits per character", "bits", NONNEG, LOWER, log=True, fmt=".3f"),
    "lr": Quantity("learning rate", "", NONNEG, None),
    "examples_per_s": Quantity("throughput", "examples/s", NONNEG, None),
    "elapsed_s": Quantity("elapsed time", "s", NONNEG, None),
}

# per-run statistics of the summary and comparison tables, in table order, with the metric each
# is made from (its bounds and direction); steps_to_threshold: the first step the threshold
# metric reached the threshold (fewer is better)
STATISTICS = {
    "final_accuracy": Quantity("final acc", "fraction", FRACTION, HIGHER, fmt=".3f"),
    "best_accuracy": Quantity("best acc", "fraction", FRACTION, HIGHER, fmt=".3f"),
    "final_eval_accuracy": Quantity("final eval acc", "fraction", FRACTION, HIGHER, fmt=".3f"),
    "steps_to_threshold": Quantity("steps to threshold", "steps", NONNEG, LOWER, fmt=".0f"),
    "final_loss": Quantity("final loss", "nats", NONNEG, LOWER),
    "final_eval_loss": Quantity("final eval loss", "nats", NONNEG, LOWER),
    "best_eval_loss": Quantity("best eval loss", "nats", NONNEG, LOWER),
    "final_eval_bpc": Quantity("final eval bpc", "bits", NONNEG, LOWER, fmt=".3f"),
    "wall_time_s": Quantity("wall time / run (s)", "s", NONNEG, LOWER, fmt=".1f"),
}

SHORT = {"accuracy": "acc", "eval_accuracy": "eval acc", "loss": "loss"}

# the per-run statistics of the runs' own metrics (final_eval_NAME), in the order they were
# declared: the summary and comparison tables show them after the built-in ones
DECLARED: list[str] = []


def declare(column: str, higher_is_better: bool) -> None:
    """A run's own metric (metrics.csv column eval_NAME, declared in its summary.json "metrics"),
    known from now on as the built-ins are: unbounded, better as its class says; its
    final_ and best_ statistics too. Declaring it again changes nothing."""
    if column in METRICS:
        return
    better = HIGHER if higher_is_better else LOWER
    METRICS[column] = Quantity(column, "", (-np.inf, np.inf), better)
    for prefix in ("final", "best"):
        STATISTICS[f"{prefix}_{column}"] = Quantity(f"{prefix} {column.removeprefix('eval_')}", "",
                                                    (-np.inf, np.inf), better)
    DECLARED.append(f"final_{column}")


def metric(name: str) -> Quantity:
    """METRICS[name], or an unbounded quantity named by the column for a column not in the table."""
    return METRICS.get(name, Quantity(name, "", (-np.inf, np.inf), None))


def statistic(name: str) -> Quantity:
    return STATISTICS.get(name, Quantity(name, "", (-np.inf, np.inf), None))


def stat_name(stat: str, threshold: float, threshold_metric: str) -> str:
    """The report's name of a per-run statistic ("final acc", "steps to acc ≥ 0.99")."""
    if stat == "steps_to_threshold":
        return f"steps to {SHORT.get(threshold_metric, threshold_metric)} ≥ {threshold:g}"
    return statistic(stat).name
