"""`Search`: the Optuna sweeper's work, an ask-and-tell loop over a study in a storage.

    check_search            every setting and every value the space can produce (checks.py)
    open the study          create it, or continue it: the same storage and study name
    settle orphans          RUNNING trials whose search process is gone: told what their run
                            folder says (completed, pruned) or failed, marked `killed`
    until the study holds n_trials trials (those it had included):
        ask n_jobs trials   the sampler never proposes a parameter set the study holds
                            (study.py); a discrete space with none left: said, and the search stops
        launch them         through the chosen Hydra launcher (basic, joblib, submitit, packed),
                            trial N as job N, in <sweep dir>/N (trial.py finds its trial by that
                            number); with seeds_per_trial = k, its k seeds as jobs N·k ... N·k+k-1
                            in the same batch (seeds.py)
        tell each           what its run folders' summary.json say: completed (the value the
                            job returned; k seeds: their mean), pruned, or failed (its error;
                            killed: no summary)
    report                  the trials table, best run, importances, history (report.py)

A trial's user attributes: `run_dir`, `process` (host:pid of the search that ran it), `failure`
(why it failed), `killed` (its job died or was interrupted: its parameters may be tried again by
a later search, but it counts against this search's n_trials and max_failure_rate: `used`),
`not_run` (never launched: it repeated another trial, or its folder held another run; not counted);
with k seeds a trial also `seeds`, `run_dirs`, `seed_values`, `std`, `n` (seeds.py).
"""
from __future__ import annotations

import logging
import math
import os
import socket
from pathlib import Path
from typing import Any, List, Optional

import yaml
from omegaconf import DictConfig, OmegaConf, open_dict

from rnn_experiments.errors import one_line
from rnn_experiments.run.folder import SummaryError, atomic_write, is_run_folder, read_summary
from rnn_experiments.sweeps.guard import Refused
from rnn_experiments.sweeps.search import STUDY_FILE, SearchError
from rnn_experiments.sweeps.search.checks import NOT_STARTED, check_search
from rnn_experiments.sweeps.search.seeds import (KEY as SEEDS_KEY, combine, last_judged, run_dirs,
                                                 run_status, seeds_per_trial, with_seed)
from rnn_experiments.sweeps.search.space import key
from rnn_experiments.sweeps.search.study import (absolute, check_compatible, default_study_name, load,
                                          make_pruner, make_sampler,
                                          prunes, storage_spec, study_name, tried)
from rnn_experiments.sweeps.search.trial import objective
from rnn_experiments.run.status import STOP_STATUSES
from rnn_experiments.run.lock import pid_alive
from rnn_experiments.run.lock import heartbeat_age, is_stale, read_lock
from rnn_experiments.sweeps.search.report import report

log = logging.getLogger(__name__)

MAX_REPEATS = 10   # trials in a row not run because they repeated another: the sampler is stuck


def process_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def counted(study) -> int:
    """The trials n_trials counts: all but those not run, killed or only enqueued."""
    import optuna
    return sum(1 for t in study.get_trials(deepcopy=False)
               if t.state != optuna.trial.TrialState.WAITING
               and not ({"not_run", "killed"} & set(t.user_attrs)))


def used(study, process: str | None = None) -> int:
    """What this search has spent of n_trials: the trials `counted` counts, plus those this
    process launched that ended without a result (killed: a cancelled or dead job). Killed
    trials of an earlier search are not counted (their parameters may be tried again), but a
    search never launches more than n_trials trials whose jobs never report."""
    process = process or process_id()
    return counted(study) + sum(1 for t in study.get_trials(deepcopy=False)
                                if "killed" in t.user_attrs and t.user_attrs.get("process") == process)


def outcome(run_dir: Path, returned: Any = None, raised: Optional[BaseException] = None
            ) -> tuple[str, Optional[float], dict]:
    """(state, value, user attributes) of a trial from its run folder's summary.json and what
    its job's JobReturn said (None if unknown): `returned`, the value of a COMPLETED job;
    `raised`, the error of a FAILED one. COMPLETE with the value, PRUNED, or FAIL.

    A folder without summary.json is not a run of the project's commands (another Hydra app's
    job, or one killed before it wrote anything): the JobReturn tells, a number returned
    COMPLETE, an error raised FAIL (counted, as hydra-optuna-sweeper counts it); with neither,
    or a job SLURM ended without a result, the trial was killed."""
    try:
        summary = read_summary(run_dir) or {}
    except SummaryError as e:
        return "FAIL", None, {"failure": str(e), "killed": "its summary.json is unreadable"}
    status = summary.get("status")
    if status is None and raised is not None and type(raised).__name__ != "EndedWithoutResult":
        return "FAIL", None, {"failure": f"{type(raised).__name__}: {one_line(raised)}"}
    if status is None and _is_number(returned):
        if math.isfinite(returned):
            return "COMPLETE", float(returned), {}
        return "FAIL", None, {"failure": f"the job returned {returned!r}, not a finite number"}
    if status == "completed":
        value = returned if _is_number(returned) else objective(summary)
        if value is not None and math.isfinite(value):
            return "COMPLETE", float(value), {}
        return "FAIL", None, {"failure": "completed without a held-out value"}
    if status in STOP_STATUSES:
        return "PRUNED", None, {}
    if status in ("failed", "diverged"):
        why = summary.get("error") or (f"diverged at step {summary['diverged_at_step']}"
                                       if "diverged_at_step" in summary else status)
        return "FAIL", None, {"failure": why}
    why = {None: f"no summary.json in {run_dir}: the job never started or was killed",
           "running": f"{run_dir} still says running: its job was killed",
           "interrupted": f"interrupted ({summary.get('signal', '')})"}.get(status, f"status {status}")
    return "FAIL", None, {"failure": why, "killed": why}


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def trial_outcome(study, trial, returned: Optional[dict] = None, raised: Optional[dict] = None
                  ) -> tuple[str, Optional[float], dict]:
    """`outcome` of a trial from its run folders: its one run's, or (k seeds) `seeds.combine` of
    its runs' (the mean and spread; a pruned trial's from the seeds' reports at its last judged
    step). `returned` / `raised`: {seed index: what its job's JobReturn said}."""
    returned, raised = returned or {}, raised or {}
    folders = run_dirs(trial)
    outcomes = [outcome(Path(d), returned.get(j), raised.get(j)) for j, d in enumerate(folders)]
    if len(outcomes) == 1:
        return outcomes[0]
    return combine(outcomes, trial.user_attrs["seeds"], folders,
                   last_judged(study._storage.get_trial(trial._trial_id)))


def tell(study, trial_number: int, state: str, value: Optional[float], attrs: dict) -> None:
    """Record a trial's end (its user attributes first: a finished trial takes none)."""
    import optuna
    frozen = next((t for t in study.get_trials(deepcopy=False) if t.number == trial_number), None)
    if frozen is None or frozen.state.is_finished():
        return
    for k, v in attrs.items():
        study._storage.set_trial_user_attr(frozen._trial_id, k, v)
    try:
        study.tell(trial_number, value if state == "COMPLETE" else None,
                   state=optuna.trial.TrialState[state], skip_if_finished=True)
    except RuntimeError as e:   # GridSampler / BruteForceSampler stop a study they have exhausted
        if "Study.stop" not in str(e):
            raise


def suggest(trial, name: str, d) -> Any:
    """trial.suggest_* for a distribution of the search space (space.py)."""
    import optuna
    if isinstance(d, optuna.distributions.CategoricalDistribution):
        return trial.suggest_categorical(name, d.choices)
    if isinstance(d, optuna.distributions.IntDistribution):
        return trial.suggest_int(name, d.low, d.high, step=d.step, log=d.log)
    return trial.suggest_float(name, d.low, d.high, step=d.step, log=d.log)


def _alive(process: str) -> Optional[bool]:
    """Whether the search process "host:pid" lives (None: on another host, cannot tell)."""
    host, _, pid = process.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    return pid_alive(int(pid))


def settle_orphans(study) -> int:
    """Tell every RUNNING trial whose search process is gone what its run folders say; a trial
    of a process on another host only once its folders say they ended or their heartbeats are
    stale. Returns how many were settled."""
    import optuna
    n = 0
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        if "process" not in t.user_attrs:   # not one of a search of this sweeper (or just asked)
            continue
        alive = _alive(str(t.user_attrs["process"]))
        folders = [Path(d) for d in run_dirs(t)]
        if alive is None and folders:
            alive = any(_running(d) for d in folders)
        if alive:
            continue
        state, value, attrs = trial_outcome(study, t) if folders else (
            "FAIL", None, {"failure": "its search process is gone", "killed": "its search process is gone"})
        log.warning("trial %d (%s) was left running by a search process that is gone: recorded as %s",
                    t.number, ", ".join(map(str, folders)) or None, state.lower())
        tell(study, t.number, state, value, attrs)
        n += 1
    return n


def _running(run_dir: Path) -> bool:
    """Whether a run of another host may still be running: its folder says so, and its lock's
    heartbeat is fresh."""
    holder = read_lock(run_dir)
    ended = run_status(run_dir) not in (None, "running")
    return not ended and holder is not None and not is_stale(holder, heartbeat_age(run_dir))


def _consecutive(trials: list) -> list[list]:
    """The trials in runs of consecutive numbers (each run is launched as jobs N, N+1, ...)."""
    groups: list[list] = []
    for t in trials:
        if groups and groups[-1][-1].number + 1 == t.number:
            groups[-1].append(t)
        else:
            groups.append([t])
    return groups


class Search:
    """The sweeper (see the module doc); Hydra gives it `setup`, then calls `sweep`."""

    def __init__(self, **settings: Any) -> None:
        self.settings = settings   # also in config.hydra.sweeper, which `sweep` reads (resolved)
        self.config: Optional[DictConfig] = None

    @property
    def k(self) -> int:
        """Seeds a trial (hydra.sweeper.seeds_per_trial)."""
        return seeds_per_trial(self.config.hydra.sweeper)

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        import optuna
        from hydra.core.plugins import Plugins
        optuna.logging.set_verbosity(optuna.logging.WARNING)   # the search logs what it does itself
        logging.getLogger("alembic").setLevel(logging.WARNING)  # a database storage's migrations, every plugin
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function)

    def sweep(self, arguments: List[str]) -> Any:
        cfg = self.config
        s = cfg.hydra.sweeper
        space = check_search(cfg, self.hydra_context.config_loader)
        self.space, self.sweep_dir = space, Path(str(cfg.hydra.sweep.dir))
        spec, name = storage_spec(s, self.sweep_dir), study_name(s, default_study_name(cfg))
        study = self._open(spec, name)
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        with atomic_write(self.sweep_dir / "multirun.yaml") as f:
            f.write(OmegaConf.to_yaml(cfg))
        with atomic_write(self.sweep_dir / STUDY_FILE) as f:   # where rnn-analyze finds the study
            yaml.safe_dump({"storage": absolute(spec), "study_name": name}, f)
        had = counted(study)
        log.info("study %r in %s: %d trial(s) so far, %d to go (n_trials=%d); sampler %s, pruner %s%s",
                 name, spec, had, max(0, s.n_trials - had), s.n_trials,
                 type(getattr(study.sampler, "inner", study.sampler)).__name__, type(study.pruner).__name__,
                 f"; {self.k} seeds a trial (its value: their mean)" if self.k > 1 else "")
        ran, failed, repeats, first = 0, 0, 0, None
        while used(study) < s.n_trials:
            held = len(tried(study, space))
            if held >= space.size():
                log.warning("the search space is exhausted: the study holds all %d of its parameter "
                            "sets; stopping at %d trial(s) (n_trials=%d)", held, counted(study), s.n_trials)
                break
            batch = self._ask(study, min(s.n_jobs, s.n_trials - used(study)))
            if not batch:
                repeats += 1
                if repeats >= MAX_REPEATS:
                    log.warning("the sampler proposed only parameter sets the study holds, %d times in a "
                                "row: stopping at %d trial(s)", repeats, counted(study))
                    break
                continue
            repeats = 0
            states = self._run(study, batch)
            ran += len(states)
            failed += sum(st == "FAIL" for st, _ in states)
            first = first or next((a.get("failure") for st, a in states if st == "FAIL"), None)
            if failed / ran > s.max_failure_rate:
                log.error("%d of the %d trials run failed (max_failure_rate %s): stopping the search; "
                          "the first: %s", failed, ran, s.max_failure_rate, first)
                break
        try:
            report(study, self.sweep_dir / "analysis", sweep_dir=self.sweep_dir, storage=spec)
        except Exception as e:   # the trials are in the study and their folders: never fail the search here
            log.error("the search's report failed (%s: %s); rnn-analyze %s makes it", type(e).__name__,
                      one_line(e), self.sweep_dir)
        return None

    def _open(self, spec: str, name: str):
        """The study, created or continued, with orphans settled and the sampler seeded for it;
        Refused (exit 2) when it cannot be opened or was made for the other direction."""
        s = self.config.hydra.sweeper
        try:
            study = load(spec, name, pruner=make_pruner(s.get("pruner")), direction=s.direction)
            if study.direction.name.lower() != s.direction:
                raise SearchError(f"hydra.sweeper.direction={s.direction} is invalid: study {name!r} in "
                                  f"{spec} {study.direction.name.lower()}s its objective")
            check_compatible(study, self.space)
            self._check_seeds_per_trial(study, spec)
            settle_orphans(study)
            study.sampler = make_sampler(s.sampler, self.space, n_existing=len(study.trials))
        except SearchError as e:
            raise Refused(f"{e}; {NOT_STARTED}") from None
        if prunes(study.pruner) and spec.startswith("sqlite") and s.n_jobs > 1:
            log.warning("%s: SQLite serialises writers; with n_jobs=%d and pruning, a journal file "
                        "(storage: null or a path) is faster", spec, s.n_jobs)
        return study

    def _check_seeds_per_trial(self, study, spec: str) -> None:
        """SearchError when the study's trials have another number of seeds (a study keeps the
        seeds_per_trial it was made with, in its user attributes; one made before: 1)."""
        held = study.user_attrs.get(SEEDS_KEY, 1 if study.get_trials(deepcopy=False) else None)
        if held is None:
            study.set_user_attr(SEEDS_KEY, self.k)
        elif held != self.k:
            raise SearchError(f"hydra.sweeper.{SEEDS_KEY}={self.k} is invalid: study {study.study_name!r} in "
                              f"{spec} holds trials of {held} seed(s) each (their values are means over "
                              f"{held}); keep {held}, or give another hydra.sweeper.study_name")

    def _ask(self, study, n: int) -> list:
        """Up to n new trials, each with its run folder; a trial that repeats another's
        parameters (two processes drew them at once) or whose folder holds another run is not run."""
        batch = []
        for _ in range(n):
            trial = study.ask()   # no parameters yet: its process is recorded before the sampler runs
            trial.set_user_attr("process", process_id())
            try:
                for name, d in self.space.distributions.items():
                    suggest(trial, name, d)
            except Exception as e:
                tell(study, trial.number, "FAIL", None, {"not_run": f"the sampler failed: {e}"})
                raise Refused(f"the sampler failed at trial {trial.number} ({type(e).__name__}: "
                              f"{one_line(e)}); the study keeps the trials it holds") from None
            twin = next((t.number for t in study.get_trials(deepcopy=False)
                         if t.number != trial.number and key(t.params) == key(trial.params)
                         and not ({"not_run", "killed"} & set(t.user_attrs))), None)
            if twin is not None:   # drawn at the same moment by another process from the same state
                tell(study, trial.number, "FAIL", None, {"not_run": f"repeats trial {twin}"})
                study.sampler.reseed_rng()   # so that the two do not draw alike again
                continue
            seeds, folders = self._jobs(trial)
            for run_dir in folders:
                if is_run_folder(run_dir):   # e.g. another study's trial in the same sweep folder
                    for t in batch + [trial]:
                        tell(study, t.number, "FAIL", None, {"not_run": f"{run_dir} holds another run"})
                    raise Refused(f"{run_dir} holds a run that is not trial {trial.number} of study "
                                  f"{study.study_name!r}: give the search its own hydra.sweep.dir (or keep "
                                  f"the storage and study_name of the search that made it)")
            trial.set_user_attr("run_dir", os.path.abspath(folders[0]))   # as Hydra's output_dir: no ..
            if self.k > 1:
                trial.set_user_attr("seeds", seeds)
                trial.set_user_attr("run_dirs", [os.path.abspath(f) for f in folders])
            batch.append(trial)
        return batch

    def _jobs(self, trial) -> tuple[list[int], list[Path]]:
        """The seeds of trial N's runs and the folders they will run in, as the launcher composes
        them: job N (k = 1: no seed given, the config's), or jobs N·k + j at seed s + j (seeds.py)."""
        overrides = self.space.overrides(trial.params)
        if self.k == 1:
            return [], [self._folder(overrides, trial.number)]
        base = int(self._compose(overrides).seed)
        seeds = [base + j for j in range(self.k)]
        return seeds, [self._folder(with_seed(overrides, seed), trial.number * self.k + j)
                       for j, seed in enumerate(seeds)]

    def _compose(self, overrides: list[str]) -> DictConfig:
        return self.hydra_context.config_loader.load_sweep_config(
            master_config=self.config, sweep_overrides=list(overrides))

    def _folder(self, overrides: list[str], num: int) -> Path:
        """The folder job `num` of the sweep with these overrides runs in."""
        job = self._compose(overrides)
        with open_dict(job):
            job.hydra.job.num = num
            job.hydra.job.id = num
        return Path(str(job.hydra.sweep.dir)) / str(job.hydra.sweep.subdir)

    def _overrides(self, trial) -> list[list[str]]:
        """The override lists of a trial's jobs, one a seed."""
        overrides = self.space.overrides(trial.params)
        if self.k == 1:
            return [overrides]
        return [with_seed(overrides, seed) for seed in trial.user_attrs["seeds"]]

    def _run(self, study, batch: list) -> list[tuple[str, dict]]:
        """Launch the batch (trial N as job N; k seeds: jobs N·k ... N·k+k-1, all in one launch),
        tell each trial its outcome; returns the (state, user attributes) of each.
        An interruption (Ctrl-C) tells the batch's trials what their folders say, then goes on."""
        from hydra.core.utils import JobStatus
        returned: dict[int, dict[int, Any]] = {t.number: {} for t in batch}   # trial -> seed index -> value
        raised: dict[int, dict[int, BaseException]] = {t.number: {} for t in batch}
        try:
            for group in _consecutive(batch):
                overrides = [o for t in group for o in self._overrides(t)]
                try:
                    results = self.launcher.launch(overrides, initial_job_idx=group[0].number * self.k)
                except Exception as e:   # a worker or cluster job died: the folders tell
                    log.error("launching trials %s failed (%s: %s); their run folders tell how they ended",
                              ", ".join(str(t.number) for t in group), type(e).__name__, e)
                    continue
                for i, r in enumerate(results):
                    t, j = group[i // self.k], i % self.k
                    if r.status == JobStatus.COMPLETED:
                        returned[t.number][j] = r.return_value
                    elif r.status == JobStatus.FAILED and isinstance(r._return_value, BaseException):
                        raised[t.number][j] = r._return_value   # its error (return_value would raise it)
        finally:   # also on an interruption: no trial is left RUNNING
            states = []
            for t in batch:
                state, value, attrs = trial_outcome(study, t, returned[t.number], raised[t.number])
                tell(study, t.number, state, value, attrs)
                states.append((state, attrs))
        return states
