"""Inside a trial's job: report the held-out metric to the study, stop when the pruner says so.

`trial_sinks(cfg)` is called by the entry point (rnn_experiments/cli/rnn_train.py) like
`loggers_from_config`: in a job of the project's Optuna sweeper it returns a `TrialReporter`,
a metrics sink (run/metrics.py) that reports every evaluation's OBJECTIVE to the trial
and raises `StopRun("pruned", ...)` when the pruner says the trial is worse than the others
were at that step; the loop then saves the checkpoint and ends the run with status `pruned`, a
normal end. Elsewhere it returns nothing.

A trial of k seeds (seeds.py) is judged on the mean over its seeds: each run records its value
at step t, and the run that completes step t's reports (every seed that is running has
reported t) sets the trial's intermediate value at t to the mean over the seeds that reported
it and asks the pruner; when it prunes, the trial records it (user attribute `pruned`) and every
run of the trial stops at its next metrics row (within train.log_every steps), status pruned.
In a pack (hydra/launcher=packed) the members step in lock-step, so every seed has reported a
step before it is judged; with runs one after the other, a step is judged on the seeds that
have reported it by then (the first seed alone, then the first two, ...).

The job finds its trial through the study's storage (study.py: the same storage and study name
the sweeper uses, from the same settings) and its job number, N·k + j for seed j of trial N
(sweeper.py). It works the same way in the sweep's process (basic launcher), a pack, a joblib
worker or a SLURM job.
"""
from __future__ import annotations

import copy
import logging
import math
import os
import statistics
from pathlib import Path
from typing import Sequence

from rnn_experiments.sweeps.search import SWEEPER, SearchError
from rnn_experiments.sweeps.search.seeds import (PRUNED, report_key, reports_at, run_dirs, run_status,
                                                 seeds_per_trial)
from rnn_experiments.run.status import StopRun

log = logging.getLogger(__name__)

OBJECTIVE = "eval_accuracy"   # the metrics.csv column a trial reports; rnn-train returns its final value


def objective(summary: dict) -> float | None:
    """The value a run's summary gives the search: its final OBJECTIVE (None without one)."""
    value = summary.get(f"final_{OBJECTIVE}")
    return float(value) if value is not None and math.isfinite(value) else None


class TrialReporter:
    """A metrics sink that reports each evaluation's OBJECTIVE to an Optuna trial and asks the
    run to stop (`StopRun("pruned", ...)`) when the study's pruner prunes the trial.

    `seed`: which of the trial's runs this is (0 ... k-1); `folders`: the trial's run folders,
    one a seed (k = len(folders); none: a trial of one run). With k > 1 the value judged at a
    step is the mean over the seeds that reported it (the module doc says when it is judged)."""

    def __init__(self, trial, seed: int = 0, folders: Sequence = ()):
        self.trial, self.seed, self.folders = trial, seed, [Path(f) for f in folders]
        self.k = max(1, len(self.folders))

    def write(self, row: dict) -> None:
        storage, trial_id = self.trial.storage, self.trial._trial_id
        if self.k > 1:
            self._stop_if_pruned(storage.get_trial(trial_id), row)
        value = row.get(OBJECTIVE, "")
        if value == "" or value is None:
            return
        step, value = int(row["step"]), float(value)
        values = {0: value}
        if self.k > 1:
            storage.set_trial_system_attr(trial_id, report_key(self.seed, step), value)
            values = reports_at(storage.get_trial(trial_id).system_attrs, step)
            if any(j not in values and run_status(self.folders[j]) == "running" for j in range(self.k)):
                return   # a seed still running has yet to report this step: its report judges it
        mean = statistics.fmean(values.values())
        storage.set_trial_intermediate_value(trial_id, step, mean)   # a later seed's mean replaces it
        study = self.trial.study
        judged = storage.get_trial(trial_id)
        if self.k > 1:   # the step just reported, not a later one a seed ahead reported before
            judged = copy.deepcopy(judged)
            judged.intermediate_values = {s: v for s, v in judged.intermediate_values.items() if s <= step}
        if not study.pruner.prune(study, judged):
            return
        what = (f"{OBJECTIVE} {mean:.4g}" if self.k == 1
                else f"mean {OBJECTIVE} {mean:.4g} over {len(values)} of its {self.k} seeds")
        reason = f"{type(study.pruner).__name__} stopped trial {self.trial.number} ({what} at step {step})"
        if self.k > 1:
            storage.set_trial_user_attr(trial_id, PRUNED, {"step": step, "reason": reason})
        raise StopRun("pruned", reason)

    def _stop_if_pruned(self, frozen, row: dict) -> None:
        """StopRun when the trial was pruned on another seed's report (or before this run began)."""
        pruned = frozen.user_attrs.get(PRUNED)
        if pruned:
            raise StopRun("pruned", f"{pruned['reason']}; every seed of the trial stops, this one "
                                    f"at step {row['step']}")


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
    k = seeds_per_trial(hc.sweeper)
    number, seed = divmod(int(hc.job.num), k)   # the sweeper launches seed j of trial N as job N·k + j
    try:
        pruner = make_pruner(hc.sweeper.get("pruner"))
        study = load(spec, name, sampler=optuna.samplers.RandomSampler(), pruner=pruner)
        frozen = next(t for t in study.get_trials(deepcopy=False) if t.number == number)
    except (SearchError, StopIteration) as e:
        log.error("no trial %d of study %r in %s (%s): the run is not reported, nor pruned",
                  number, name, spec, e or "no such trial")
        return []
    folders = run_dirs(frozen) if k > 1 else []
    if k > 1 and (len(folders) != k or os.path.abspath(folders[seed]) != os.path.abspath(hc.runtime.output_dir)):
        log.error("trial %d of study %r holds the run folders %s, not %s as its seed %d of %d: the "
                  "run is not reported, nor pruned", number, name, folders, hc.runtime.output_dir, seed, k)
        return []
    return [TrialReporter(optuna.trial.Trial(study, frozen._trial_id), seed, folders)]
