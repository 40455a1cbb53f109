"""hydra-submitit-launcher's SLURM launcher, but for how the sweep waits for its jobs.

The upstream launcher submits the jobs and then returns `[job.results()[0] for job in jobs]`:
the first job that SLURM ended without a result (cancelled, killed at its time limit or for
memory, its node lost and not requeued) raises, with the other jobs still running, and the sweep
ends in a traceback without its analysis. This launcher runs upstream's `launch` unchanged and
hands it jobs whose `results()` is `wait_for`: such a job is logged in one line and the sweep
goes on waiting for the others (its run folder says how far it got; the sweep's report names
it). A job that SLURM requeued is waited for (after a node failure sacct says NODE_FAIL for a
few seconds, then PENDING).

Such a job's JobReturn is `NoResult`: status FAILED (never COMPLETED: a sweeper that reads the
status, as the project's Optuna sweeper does, counts it failed), `_return_value` the
`EndedWithoutResult` error naming the job and SLURM's state; reading its `return_value` gives
None instead of raising that error, because Hydra's BasicSweeper reads every job's
`return_value` and would end the sweep there, without its other batches and its end callbacks
(the project's end check then names the job from its run folder and the command exits 1,
rnn_experiments/cli/job.py). A job whose task raised is upstream's: its error is raised.

The plugin imports nothing of rnn_experiments: Hydra imports it whenever it scans its plugins.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Sequence

from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as SubmititSlurmLauncher

log = logging.getLogger(__name__)

# states in which a job may still run (submitit's list, core.py: Watcher.is_done)
RUNNING_STATES = ("READY", "PENDING", "RUNNING", "UNKNOWN", "REQUEUED", "COMPLETING", "PREEMPTED",
                  "CONFIGURING", "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING", "SUSPENDED")


# states after which SLURM may still requeue the job (a node failure: NODE_FAIL, then PENDING once
# slurmctld requeues it): watched for REQUEUE_GRACE_S before the job counts as ended
MAYBE_REQUEUED = ("NODE_FAIL", "BOOT_FAIL")
REQUEUE_GRACE_S = 120.0


class EndedWithoutResult(RuntimeError):
    """A job that SLURM ended without a result (cancelled, timed out, out of memory, node lost)."""


@dataclass
class NoResult(JobReturn):
    """The JobReturn of a job that ended without a result: status FAILED, `_return_value` its
    EndedWithoutResult; `return_value` is None (not raised: see the module doc)."""

    @property
    def return_value(self) -> Any:
        return None

    @return_value.setter
    def return_value(self, value: Any) -> None:
        self._return_value = value


def no_result(overrides: Sequence[str], why: str) -> NoResult:
    return NoResult(overrides=list(overrides), status=JobStatus.FAILED, _return_value=EndedWithoutResult(why))


def wait_for(job, num: int, overrides: Sequence[str], poll_s: float = 5.0, grace_s: float = REQUEUE_GRACE_S):
    """The job's Hydra JobReturn; for a job that SLURM ended without a result, one line in the
    log and a `NoResult` (status FAILED). A job that SLURM requeued (a node failure shows as
    NODE_FAIL for a while, then PENDING) is waited for again: NODE_FAIL counts as an end only
    after `grace_s` seconds in which it was not requeued."""
    from submitit.core.utils import UncompletedJobError

    failed_since = None
    while True:
        try:
            return job.results()[0]
        except UncompletedJobError:
            state = (job.watcher.get_state(job.job_id, mode="force").split() or ["UNKNOWN"])[0].upper()
            if state in RUNNING_STATES:
                failed_since = None
                time.sleep(poll_s)
                continue
            if state in MAYBE_REQUEUED:
                failed_since = failed_since if failed_since is not None else time.monotonic()
                if time.monotonic() - failed_since < grace_s:
                    time.sleep(poll_s)
                    continue
            why = f"job #{num} (SLURM job {job.job_id}): ended {state} without a result"
            log.error("%s; its run folder says how far it got", why)
            return no_result(overrides, why)


class _Waiting:
    """A submitted job whose `results()` waits as `wait_for` does; anything else is the job's."""

    def __init__(self, job, num: int, overrides: Sequence[str]):
        self._job, self._num, self._overrides = job, num, overrides

    def results(self):
        return [wait_for(self._job, self._num, self._overrides)]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._job, name)


def waiting_executor(executor_class):
    """`executor_class` (submitit.AutoExecutor) whose `map_array` returns `_Waiting` jobs. Hydra's
    launcher calls map_array(launcher, overrides, key, job numbers, job ids, states)."""

    class WaitingExecutor(executor_class):
        def map_array(self, fn, *iterables):
            overrides, nums = list(iterables[0]), list(iterables[2])
            jobs = super().map_array(fn, *iterables)
            return [_Waiting(job, num, o) for job, num, o in zip(jobs, nums, overrides)]

    return WaitingExecutor


class SlurmLauncher(SubmititSlurmLauncher):
    """Upstream's `launch`, run with an executor whose jobs wait as `wait_for` does."""

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[Any]:
        import submitit   # as upstream: imported at launch, so that plugin discovery stays fast

        plain = submitit.AutoExecutor
        submitit.AutoExecutor = waiting_executor(plain)   # upstream builds submitit.AutoExecutor(...)
        try:
            return super().launch(job_overrides, initial_job_idx)
        finally:
            submitit.AutoExecutor = plain
