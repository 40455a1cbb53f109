"""Sweeps (`-m`) in which one bad job never stops the others: the `SweepGuard` Hydra callback,
on for every sweep (conf/config.yaml, `hydra.callbacks.sweep_guard`).

* `on_multirun_start`, before any job starts and before the sweep folder exists: it composes
  every job's config (the job list of Hydra's basic sweeper: sweeper params + command-line
  overrides -> cartesian product, glob() expanded) and gives each the one up-front check of a
  single run (sweeps/checks.py:check_job), then checks the sweep as a whole (`check_sweep`: no
  jobs, shared folders, the same run twice); the first problem stops the sweep with one line
  (`Refused`: exit status 2 from cli/job.py). It also names the sweep (provenance.start_sweep:
  an id inherited by every job's process, written into each job's summary.json).
* A job that fails at run time returns normally after recording its failure in its own
  summary.json (rnn_experiments/cli/job.py), so Hydra goes on with the other jobs and the callbacks.
* `on_multirun_end` reads every job's summary.json and keeps the jobs that did not complete in
  this sweep (`failures()`; a trial a search's pruner stopped, `pruned`, ended normally); the
  entry point then exits 1 naming them, after the analysis callback has run. If not one job
  ran (each was refused: its folder holds another run), or if every job of this sweep is a job
  of the sweep that the folder held before (a re-run of some of its jobs, as
  rnn_experiments/analysis/rerun.py prints them for a SLURM sweep), the sweep folder's earlier
  multirun.yaml, which Hydra overwrote, is put back: the folder still describes the sweep whose
  runs it holds (the analysis rebuilds its job list from it).

Works with any launcher (basic, joblib, submitit): jobs in other processes report through their
folders. With another sweeper the jobs are not known in advance: no check here before the start
(the project's Optuna sweeper checks its whole search space itself, before its first trial:
rnn_experiments/sweeps/search/checks.py), and the end check covers the job folders holding a summary
of this sweep.
"""
from __future__ import annotations

import json
import os
import logging
import socket
import time
from pathlib import Path
from typing import Any, List, Optional

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict

from rnn_experiments.errors import ConfigError, one_line
from rnn_experiments.parts import NAMED, name_by_choice
from rnn_experiments.run.provenance import end_sweep, set_swept, start_sweep, sweep_id
from rnn_experiments.sweeps.checks import (check_callbacks, check_folder, check_job, check_launcher, refuse_a_parts_unknown_key,
                                          settings, training_needs)
from rnn_experiments.run.folder import SummaryError, atomic_write, read_summary
from rnn_experiments.run.multirun import jobs
from rnn_experiments.run.summary import NORMAL_ENDS
from rnn_experiments.run.lock import pid_alive

log = logging.getLogger(__name__)

_FAILURES: list[str] = []   # "#N (overrides): reason" of the last sweep's jobs that did not complete
_RAN: list[int] = []        # [jobs of the last sweep that ran in it], once its end check is done

class Refused(BaseException):
    """A sweep refused before any job started; the message is one line. A BaseException, so that
    it passes through Hydra's callback and error handling (which catch Exception)."""


def failures() -> list[str]:
    """The jobs of the last sweep of this process that did not complete."""
    return list(_FAILURES)


def forget() -> None:
    """Forget the last sweep's outcome (a new command starts in this process)."""
    _FAILURES.clear()
    _RAN.clear()


def jobs_ran() -> Optional[int]:
    """How many jobs of the sweep that is ending ran (None until its end check is done): the
    analysis callback leaves a sweep folder as it was when not one job ran (each refused)."""
    return _RAN[0] if _RAN else None


def sweep_gone() -> bool:
    """True in a job whose sweep's process has died on this host (killed: a job still queued in
    an orphaned joblib worker must not start)."""
    host, _, rest = (sweep_id() or "").partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    return not pid_alive(int(pid))


def what_it_computes(run: dict) -> dict:
    """A job's settings as far as they decide what it computes: `device=auto` as the device it
    means here (device=cpu,auto on a machine without CUDA is one run twice), and without the
    settings declared not to change results (TrainConfig.same_results, and each part's own
    `same_results`: parts.same_results)."""
    import copy

    from rnn_experiments.config import TrainConfig, _on_gpu   # lazy: config imports torch, as check_sweep's
    from rnn_experiments.parts import same_results            # lazy: as config's
    out = copy.deepcopy(dict(run))
    if out.get("device") == "auto":
        out["device"] = "cuda" if _on_gpu("auto") else "cpu"
    for key in same_results(out, TrainConfig.same_results):
        *path, leaf = key.split(".")
        node = out
        for p in path:
            node = node.get(p) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    return out


def job_choices(config: DictConfig, job: List[str]) -> dict:
    """The config-group choices of one job: the sweep's, with those the job's overrides make
    (model=ln_lstm). (A job's composed `hydra.runtime.choices` is the sweep's: Hydra merges the
    sweep's runtime node into each job's config.)"""
    choices = dict((config.hydra.get("runtime") or {}).get("choices") or {})
    for o in job:
        key, _, value = o.lstrip("+").partition("=")
        if key in NAMED:
            choices[key] = value
    return choices


def _varying(all_jobs) -> list[str]:
    """The keys whose values differ between the jobs (overrides KEY=VALUE), in command-line order:
    a key every job gives the same value is shared, any other varies."""
    shared = set.intersection(*(set(job) for job in all_jobs)) if all_jobs else set()
    keys = [o.partition("=")[0].lstrip("+~") for job in all_jobs for o in job if o not in shared]
    return list(dict.fromkeys(keys))


def check_inside(folder: Path, sweep_dir: Path, subdir: str) -> None:
    """ConfigError unless a job's folder is a folder of its own inside the sweep's folder (an empty
    subdir is the sweep folder itself; ../x is outside it)."""
    inside = os.path.normpath(folder.absolute())
    top = os.path.normpath(sweep_dir.absolute())
    if os.path.commonpath([inside, top]) != top or inside == top:
        raise ConfigError(f"hydra.sweep.subdir={subdir!r} is invalid: the job's folder {inside} is "
                          f"{'the sweep folder itself' if inside == top else 'outside the sweep folder ' + top}; "
                          "expected a folder inside it, e.g. the default ${hydra.job.num}")


def _job_dir(cfg: DictConfig) -> Path:
    return Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)


def _swept_keys(config: DictConfig) -> set[str]:
    """The keys the command line and the sweeper's params sweep (seed in `seed=0,0`)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    params = [f"{k}={v}" for k, v in (config.hydra.sweeper.get("params") or {}).items()]
    parsed = OverridesParser.create().parse_overrides(params + list(config.hydra.overrides.task))
    return {o.key_or_group for o in parsed if o.is_sweep_override()}


class JobComposer:
    """A sweep's job configs, as Hydra composes them (loader.load_sweep_config), but quicker: a
    job whose overrides differ from the job composed last only in values of existing settings
    (seed=1, train.lr=0.01: no config group, no + or ~) is that job's config with the values
    set, as Hydra's override step sets them; any other job is composed in full. The config
    returned is valid until the next call (it is updated in place)."""

    def __init__(self, config: DictConfig, loader):
        from hydra.core.override_parser.overrides_parser import OverridesParser
        self.config, self.loader, self.parser = config, loader, OverridesParser.create()
        self.last: Optional[tuple[list[str], DictConfig]] = None

    def __call__(self, job: List[str]) -> DictConfig:
        cfg = self._from_last(job) if self.last is not None else None
        if cfg is None:
            cfg = self.loader.load_sweep_config(master_config=self.config, sweep_overrides=list(job))
        self.last = (list(job), cfg)
        return cfg

    def _from_last(self, job: List[str]) -> Optional[DictConfig]:
        from hydra._internal.config_loader_impl import get_overrides_dirname
        last_job, cfg = self.last
        changed = [o for o in job if o not in last_job]
        keys = [o.split("=", 1)[0] for o in changed]
        if len(job) != len(last_job) or any(k.startswith(("+", "~")) or "/" in k or "@" in k for k in keys) \
                or sorted(keys) != sorted(o.split("=", 1)[0] for o in last_job if o not in job):
            return None
        overrides = self.parser.parse_overrides(changed)
        for override in overrides:   # all checked before anything is set
            key = override.key_or_group
            if override.is_sweep_override() or not _has_leaf(cfg, key) or \
                    OmegaConf.is_config(OmegaConf.select(cfg, key, throw_on_missing=False)):
                return None      # a group choice, a new key, a sweep: compose it as Hydra does
        with open_dict(cfg):
            for override in overrides:
                OmegaConf.update(cfg, override.key_or_group, override.value(), merge=False)
            cfg.hydra.overrides.task = list(job)
            od = cfg.hydra.job.config.override_dirname   # as Hydra's loader names the job
            cfg.hydra.job.override_dirname = get_overrides_dirname(
                overrides=self.parser.parse_overrides(list(job)), kv_sep=od.kv_sep,
                item_sep=od.item_sep, exclude_keys=od.exclude_keys)
        return cfg


def _has_leaf(cfg: DictConfig, key: str) -> bool:
    parent_key, _, leaf = key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_key) if parent_key else cfg
    return OmegaConf.is_dict(parent) and leaf in parent


def check_sweep(config: DictConfig, all_jobs: List[List[str]], loader) -> List[tuple[int, str, Path]]:
    """Every job of a sweep through the one up-front check of a single job (sweeps/checks.py),
    then what only a whole sweep can get wrong: no job at all, two jobs in one folder, a job
    folder that is a file, the same run twice (a repeated seed would count as two seeds).
    Returns (num, label, folder) per job; raises Refused (one line) for the first problem."""
    from rnn_experiments.config import validate   # imports torch: only when sweeping   # lazy: config imports torch (models, data): only when sweeping
    from rnn_experiments.contract import check_contract   # lazy: as above
    if not all_jobs:
        raise Refused(f"the sweep has no jobs ({' '.join(config.hydra.overrides.task) or 'no overrides'}): "
                      "expected at least one value for every swept key; nothing was started")
    shared = set.intersection(*map(set, all_jobs)) if len(all_jobs) > 1 else set()
    swept = _swept_keys(config)
    composer = JobComposer(config, loader)
    folders, runs = [], {}
    for num, job in enumerate(all_jobs):
        label = (" ".join(o for o in job if o not in shared)   # what tells it apart
                 or " ".join(o for o in job if o.split("=", 1)[0].lstrip("+~") in swept) or " ".join(job))
        try:
            cfg = composer(job)
            with open_dict(cfg):
                cfg.hydra.job.num = num
            name_by_choice(cfg, job_choices(config, job))   # the job's own choices (Hydra's runtime: the sweep's)
            check_job(cfg, validate, training_needs, hydra_cfg=config.hydra, dry=check_contract)
            folder = check_folder(_job_dir(cfg), "hydra.sweep.subdir")
            check_inside(folder, Path(str(cfg.hydra.sweep.dir)), str(cfg.hydra.sweep.subdir))
            run = json.dumps(what_it_computes(settings(cfg)), sort_keys=True, default=str)
        except Exception as e:  # Hydra's, OmegaConf's and our ConfigError
            try:
                refuse_a_parts_unknown_key(e, job, lambda added: loader.load_sweep_config(
                    master_config=config, sweep_overrides=added))
            except ConfigError as refused:
                e = refused
            raise Refused(f"job #{num} ({label}): {one_line(e)}; no job was started") from None
        for other, other_label, other_folder in folders:
            if other_folder == folder:
                raise Refused(f"jobs #{other} ({other_label}) and #{num} ({label}) would share the folder "
                              f"{folder} (hydra.sweep.subdir={config.hydra.sweep.subdir}): expected a folder "
                              "per job, e.g. the default ${hydra.job.num}; no job was started")
        if run in runs:
            other, other_label = runs[run]
            raise Refused(f"jobs #{other} ({other_label}) and #{num} ({label}) are the same run: "
                          "expected each configuration once (a repeated seed would be counted as "
                          "two seeds); no job was started")
        runs[run] = (num, label)
        folders.append((num, label, folder))
    return folders


class SweepGuard(Callback):
    def __init__(self) -> None:
        self.folders: Optional[List[tuple[int, str, Path]]] = None  # (num, label, folder)
        self.previous: Optional[bytes] = None   # the sweep folder's multirun.yaml before this sweep
        self.rerun = False                      # every job of this sweep is a job of that sweep

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from hydra.core.global_hydra import GlobalHydra
        forget()
        start_sweep()
        earlier = Path(str(config.hydra.sweep.dir)) / "multirun.yaml"
        self.previous = earlier.read_bytes() if earlier.is_file() else None
        loader = GlobalHydra.instance().config_loader()
        try:
            check_launcher(config.hydra)
            check_callbacks(config)
            all_jobs = jobs(config.hydra.sweeper, list(config.hydra.overrides.task), loader)
        except Exception as e:  # a sweep the basic sweeper cannot run, launcher settings, ...
            raise Refused(f"{one_line(e)}; no job was started") from None
        self.rerun = all_jobs is not None and _jobs_of(self.previous, all_jobs)
        set_swept(_varying(all_jobs) if all_jobs is not None else
                  list((config.hydra.sweeper.get("params") or {}).keys()))   # a search: its space's keys
        if all_jobs is None:
            self.folders = None
            return
        t0 = time.perf_counter()
        self.folders = check_sweep(config, all_jobs, loader)
        log.debug("checked %d job configs in %.2f s", len(all_jobs), time.perf_counter() - t0)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        me = end_sweep()
        folders = self.folders
        if folders is None:   # another sweeper: the job folders with a summary of this sweep
            root = Path(str(config.hydra.sweep.dir))
            folders = [(i, "", p.parent) for i, p in enumerate(sorted(root.glob("**/summary.json")))]
            folders = [f for f in folders if _summary(f[2]).get("sweep_id") == me]
        ran = 0
        for num, job, folder in folders:
            summary = _summary(folder)
            label = f"#{num} ({job})" if job else str(folder)
            ran += summary.get("sweep_id") == me
            if summary.get("sweep_id") != me:
                _FAILURES.append(f"{label}: no record of this sweep in {folder} (refused or not started)")
            elif summary.get("status") not in NORMAL_ENDS:   # pruned: a normal end
                why = summary.get("error") or (f"at step {summary['diverged_at_step']}"
                                               if "diverged_at_step" in summary else "")
                _FAILURES.append(f"{label}: {summary.get('status')}" + (f" ({why})" if why else ""))
        _RAN[:] = [ran]
        if self.previous is not None and (not ran or self.rerun):   # the folder's sweep is the old one
            _restore(Path(str(config.hydra.sweep.dir)) / "multirun.yaml", self.previous)


def _jobs_of(multirun_yaml: Optional[bytes], these: List[List[str]]) -> bool:
    """Whether every job of `these` is a job (the same overrides) of the sweep that this
    multirun.yaml describes."""
    import yaml
    try:
        h = yaml.safe_load(multirun_yaml or b"")["hydra"]
        earlier = jobs(h["sweeper"], list(h["overrides"]["task"]))
    except Exception:   # no earlier sweep, or one whose jobs cannot be rebuilt
        return False
    return earlier is not None and {frozenset(j) for j in these} <= {frozenset(j) for j in earlier}


def _restore(path: Path, content: bytes) -> None:
    with atomic_write(path, "wb") as f:
        f.write(content)


def _summary(folder: Path) -> dict:
    try:
        return read_summary(folder) or {}
    except SummaryError:
        return {}
