"""Inside a trial's job: report the held-out metric to the study, stop when the pruner says so.

`trial_sinks(cfg)` is called by the entry point (rnn_experiments/cli/rnn_train.py) like
`loggers_from_config`: in a job of the project's Optuna sweeper it returns a `TrialReporter`,
a metrics sink (run/metrics.py) that reports every evaluation's OBJECTIVE to the trial
(trial.report(value, step)) and raises `StopRun("pruned", ...)` when the pruner says the trial
is worse than the others were at that step; the loop then saves the checkpoint and ends the run
with status `pruned`, a normal end. Elsewhere it returns nothing.

The job finds its trial through the study's storage (study.py: the same storage and study name
the sweeper uses, from the same settings) and its job number, which the sweeper makes the trial's
number (sweeper.py). It works the same way in the sweep's process (basic launcher), a joblib
worker or a SLURM job.
"""
from __future__ import annotations

import logging
import math

from rnn_experiments.sweeps.search import SWEEPER, SearchError
from rnn_experiments.run.status import StopRun

log = logging.getLogger(__name__)

OBJECTIVE = "eval_accuracy"   # the metrics.csv column a trial reports; rnn-train returns its final value


def objective(summary: dict) -> float | None:
    """The value a run's summary gives the search: its final OBJECTIVE (None without one)."""
    value = summary.get(f"final_{OBJECTIVE}")
    return float(value) if value is not None and math.isfinite(value) else None


class TrialReporter:
    """A metrics sink that reports each evaluation's OBJECTIVE to an Optuna trial and asks the
    run to stop (`StopRun("pruned", ...)`) when the study's pruner prunes the trial."""

    def __init__(self, trial):
        self.trial = trial

    def write(self, row: dict) -> None:
        value = row.get(OBJECTIVE, "")
        if value == "" or value is None:
            return
        step, value = int(row["step"]), float(value)
        self.trial.report(value, step)
        if self.trial.should_prune():
            pruner = type(self.trial.study.pruner).__name__
            raise StopRun("pruned", f"{pruner} stopped trial {self.trial.number} "
                                    f"({OBJECTIVE} {value:.4g} at step {step})")


def trial_sinks(cfg) -> list:
    """[TrialReporter] in a job of the project's Optuna sweeper, else []. A study that cannot be
    reached is logged and the run goes on unpruned (the sweeper still records its result)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    if not HydraConfig.initialized():
        return []
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN or hc.sweeper.get("_target_") != SWEEPER:
        return []
    import optuna
    from rnn_experiments.sweeps.search.study import load, make_pruner, storage_spec, study_name   # lazy: optuna only in a trial of a search (every run imports this module)
    spec, name = storage_spec(hc.sweeper, hc.sweep.dir), study_name(hc.sweeper, cfg.experiment_name)
    number = hc.job.num   # the sweeper launches trial N as job N
    try:
        pruner = make_pruner(hc.sweeper.get("pruner"))
        study = load(spec, name, sampler=optuna.samplers.RandomSampler(), pruner=pruner)
        trial_id = next(t._trial_id for t in study.get_trials(deepcopy=False) if t.number == number)
        return [TrialReporter(optuna.trial.Trial(study, trial_id))]
    except (SearchError, StopIteration) as e:
        log.error("no trial %d of study %r in %s (%s): the run is not reported, nor pruned",
                  number, name, spec, e or "no such trial")
        return []
