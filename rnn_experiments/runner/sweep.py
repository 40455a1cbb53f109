"""Sweeps (`-m`) in which one bad job never stops the others: the `SweepGuard` Hydra callback,
on for every sweep (conf/config.yaml, `hydra.callbacks.sweep_guard`).

* `on_multirun_start`, before any job starts and before the sweep folder exists: it composes
  every job's config (the job list of Hydra's basic sweeper: sweeper params + command-line
  overrides -> cartesian product) and runs `rnn_experiments.config.validate` on it; the first bad
  job stops the sweep with one line (`Refused`: exit status 2 from rnn_experiments/runner/job.py). It
  also names the sweep (`$RNN_EXPERIMENTS_SWEEP_ID`, inherited by every job's process, written
  into each job's summary.json).
* A job that fails at run time returns normally after recording its failure in its own
  summary.json (rnn_experiments/runner/job.py), so Hydra goes on with the other jobs and the callbacks.
* `on_multirun_end` reads every job's summary.json and keeps the jobs that did not complete in
  this sweep (`failures()`; a trial a search's pruner stopped, `pruned`, ended normally); the
  entry point then exits 1 naming them, after the analysis callback has run. If not one job
  ran (each was refused: its folder holds another run), the sweep folder's earlier
  multirun.yaml, which Hydra overwrote, is put back: the folder still describes the sweep whose
  runs it holds (the analysis rebuilds its job list from it).

Works with any launcher (basic, joblib, submitit): jobs in other processes report through their
folders. With another sweeper the jobs are not known in advance: no check here before the start
(the project's Optuna sweeper checks its whole search space itself, before its first trial:
rnn_experiments/search/checks.py), and the end check covers the job folders holding a summary
of this sweep.
"""
from __future__ import annotations

import logging
import socket
import time
from pathlib import Path
from typing import Any, List, Optional

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, open_dict

from rnn_experiments.errors import one_line
from rnn_experiments.provenance import end_sweep, start_sweep, sweep_id
from rnn_experiments.run_folder import SummaryError, atomic_write, read_summary
from rnn_experiments.training.summary import NORMAL_ENDS

log = logging.getLogger(__name__)

_FAILURES: list[str] = []   # "#N (overrides): reason" of the last sweep's jobs that did not complete

class Refused(BaseException):
    """A sweep refused before any job started; the message is one line. A BaseException, so that
    it passes through Hydra's callback and error handling (which catch Exception)."""


def jobs(sweeper_cfg, overrides: List[str]) -> Optional[List[List[str]]]:
    """The override list of every job, in job-number order, for Hydra's basic sweeper (None for
    another sweeper, e.g. Optuna, whose jobs are chosen as the sweep goes)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    if not str((sweeper_cfg or {}).get("_target_", "")).endswith("BasicSweeper"):
        return None
    params = [f"{k}={v}" for k, v in (sweeper_cfg.get("params") or {}).items()]
    parsed = OverridesParser.create().parse_overrides(params + list(overrides))
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def failures() -> list[str]:
    """The jobs of the last sweep of this process that did not complete."""
    return list(_FAILURES)


def sweep_gone() -> bool:
    """True in a job whose sweep's process has died on this host (killed: a job still queued in
    an orphaned joblib worker must not start)."""
    host, _, rest = (sweep_id() or "").partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    from rnn_experiments.training.lock import pid_alive
    return not pid_alive(int(pid))


def _job_dir(cfg: DictConfig) -> Path:
    return Path(str(cfg.hydra.sweep.dir)) / str(cfg.hydra.sweep.subdir)


class SweepGuard(Callback):
    def __init__(self) -> None:
        self.folders: Optional[List[tuple[int, str, Path]]] = None  # (num, label, folder)
        self.previous: Optional[bytes] = None   # the sweep folder's multirun.yaml before this sweep

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from hydra.core.global_hydra import GlobalHydra
        from rnn_experiments.config import validate   # imports torch: only when sweeping
        _FAILURES.clear()
        start_sweep()
        earlier = Path(str(config.hydra.sweep.dir)) / "multirun.yaml"
        self.previous = earlier.read_bytes() if earlier.is_file() else None
        all_jobs = jobs(config.hydra.sweeper, list(config.hydra.overrides.task))
        if all_jobs is None:
            self.folders = None
            return
        loader, t0, self.folders = GlobalHydra.instance().config_loader(), time.perf_counter(), []
        shared = set.intersection(*map(set, all_jobs)) if len(all_jobs) > 1 else set()
        for num, job in enumerate(all_jobs):
            label = " ".join(o for o in job if o not in shared)   # what tells this job apart
            try:
                cfg = loader.load_sweep_config(master_config=config, sweep_overrides=list(job))
                validate(cfg)
                with open_dict(cfg):
                    cfg.hydra.job.num = num
                self.folders.append((num, label, _job_dir(cfg)))
            except Exception as e:  # Hydra's, OmegaConf's and our ConfigError
                raise Refused(f"job #{num} ({label}): {one_line(e)}; no job was started") from None
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
        if not ran and self.previous is not None:   # every job refused: the folder's sweep is the old one
            _restore(Path(str(config.hydra.sweep.dir)) / "multirun.yaml", self.previous)


def _restore(path: Path, content: bytes) -> None:
    with atomic_write(path, "wb") as f:
        f.write(content)


def _summary(folder: Path) -> dict:
    try:
        return read_summary(folder) or {}
    except SummaryError:
        return {}
