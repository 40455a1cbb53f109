"""hydra-submitit-launcher's SLURM launcher, but for how the sweep waits for its jobs, and packs.

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

Packs (`hydra.launcher.pack_size` > 1): the sweep's jobs that differ only in `seed` are grouped
as hydra/launcher=packed groups them (rnn_experiments/sweeps/pack.py: `plan`, split to fit in a
task's memory, `mem_gb`), and each pack is one task of the array, `PackTask`: on the node it
loads its members' configs as upstream's job loads its own and trains them together
(sweeps/pack.py: `one_pack`), returning their JobReturns. Upstream's `launch` still runs
unchanged: its executor's `map_array` submits one task per pack and hands back one job per
Hydra job (`_Member`: its share of the pack's result, waited for once, `wait_for_pack`; a pack
that SLURM ended without a result gives each member a NoResult). Preemption and time limits:
SIGUSR2 stops every member with its checkpoint (training/pack.py), the first member's end hands
the signal back to submitit (sweeps/launch.py: requeue_if_preempted), whose handler calls
`PackTask.checkpoint` (the same pack resubmitted) and requeues the task; every member resumes
from its checkpoint. A sweep with no two jobs to pack runs one task per job, as with pack_size=1.

The schema of conf/hydra/launcher/slurm.yaml, upstream's keys and the packs': config.py.

The plugin imports nothing of rnn_experiments but when a sweep is packed (rnn_experiments.sweeps,
then): Hydra imports it whenever it scans its plugins, and other Hydra apps use it.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Optional, Sequence

from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as SubmititSlurmLauncher
from hydra_plugins.rnn_experiments_slurm.config import SlurmConf   # slurm.yaml's schema, stored in Hydra's ConfigStore

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


def _result(job, poll_s: float, grace_s: float) -> tuple[Any, Optional[str]]:
    """(the job's result, None), or (None, SLURM's state) once SLURM ended the job without one;
    a job that SLURM requeued is waited for again (see wait_for)."""
    from submitit.core.utils import UncompletedJobError

    failed_since = None
    while True:
        try:
            return job.results()[0], None
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
            return None, state


def wait_for(job, num: int, overrides: Sequence[str], poll_s: float = 5.0, grace_s: float = REQUEUE_GRACE_S):
    """The job's Hydra JobReturn; for a job that SLURM ended without a result, one line in the
    log and a `NoResult` (status FAILED). A job that SLURM requeued (a node failure shows as
    NODE_FAIL for a while, then PENDING) is waited for again: NODE_FAIL counts as an end only
    after `grace_s` seconds in which it was not requeued."""
    result, state = _result(job, poll_s, grace_s)
    if state is None:
        return result
    why = f"job #{num} (SLURM job {job.job_id}): ended {state} without a result"
    log.error("%s; its run folder says how far it got", why)
    return no_result(overrides, why)


def wait_for_pack(job, nums: Sequence[int], overrides: Sequence[Sequence[str]], poll_s: float = 5.0,
                  grace_s: float = REQUEUE_GRACE_S) -> list:
    """The JobReturns of a pack's members (jobs `nums`), its task's result, waited for as
    `wait_for` waits; a pack that SLURM ended without a result: one line in the log and a
    `NoResult` for each member."""
    results, state = _result(job, poll_s, grace_s)
    if state is None:
        return results
    why = (f"jobs {', '.join(f'#{n}' for n in nums)} (a pack, SLURM job {job.job_id}): ended {state} "
           "without a result")
    log.error("%s; their run folders say how far they got", why)
    return [no_result(o, why) for o in overrides]


class _Waiting:
    """A submitted job whose `results()` waits as `wait_for` does; anything else is the job's."""

    def __init__(self, job, num: int, overrides: Sequence[str]):
        self._job, self._num, self._overrides = job, num, overrides

    def results(self):
        return [wait_for(self._job, self._num, self._overrides)]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._job, name)


class PackTask:
    """What a task of the array runs for a pack: `launcher` (this module's SlurmLauncher, as
    upstream pickles it for a job) and, per call, the members' overrides and job numbers."""

    def __init__(self, launcher: "SlurmLauncher"):
        self.launcher = launcher

    def __call__(self, overrides: Sequence[Sequence[str]], nums: Sequence[int], singleton_state) -> list:
        """On the node: Hydra's state as the sweep's process has it, each member's config loaded
        as upstream's job loads its own (hydra.job.id: the SLURM job's id), then the pack
        trained (a pack of one: Hydra's run_job, as upstream); the members' JobReturns."""
        import submitit
        from hydra.core.singleton import Singleton
        from hydra.core.utils import setup_globals
        from omegaconf import open_dict

        from rnn_experiments.sweeps.pack import one_pack   # lazy: only a packed sweep's tasks need it

        launcher = self.launcher
        Singleton.set_state(singleton_state)
        setup_globals()
        configs = []
        for member, num in zip(overrides, nums):
            cfg = launcher.hydra_context.config_loader.load_sweep_config(launcher.config, list(member))
            with open_dict(cfg.hydra.job) as job:
                job.id = submitit.JobEnvironment().job_id
                job.num = num
            configs.append(cfg)
        return one_pack(launcher.hydra_context, launcher.task_function, configs, launcher.strategy)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """submitit's requeue (SIGUSR2): the same pack again, whose members resume."""
        import submitit
        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


class _PackWaiting:
    """A pack's submitted task; its members' JobReturns, waited for once (`wait_for_pack`)."""

    def __init__(self, job, nums: Sequence[int], overrides: Sequence[Sequence[str]]):
        self.job, self.nums, self.overrides, self._returns = job, nums, overrides, None

    def returns(self) -> list:
        if self._returns is None:
            self._returns = wait_for_pack(self.job, self.nums, self.overrides)
        return self._returns


class _Member:
    """One Hydra job of a pack, as upstream's launch reads a job: `results()` its JobReturn of
    the pack's; anything else is the pack's task's."""

    def __init__(self, pack: _PackWaiting, k: int):
        self._pack, self._k = pack, k

    def results(self):
        return [self._pack.returns()[self._k]]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pack.job, name)


def waiting_executor(executor_class, packs: Optional[list[list[int]]] = None):
    """`executor_class` (submitit.AutoExecutor) whose `map_array` returns `_Waiting` jobs. Hydra's
    launcher calls map_array(launcher, overrides, key, job numbers, job ids, states). With
    `packs` (lists of indices into the jobs), it submits one PackTask per pack instead and
    returns one `_Member` per job, in the jobs' order."""

    class WaitingExecutor(executor_class):
        def map_array(self, fn, *iterables):
            overrides, nums = list(iterables[0]), list(iterables[2])
            if packs is None:
                jobs = super().map_array(fn, *iterables)
                return [_Waiting(job, num, o) for job, num, o in zip(jobs, nums, overrides)]
            states = list(iterables[4])
            tasks = super().map_array(PackTask(fn), [[overrides[i] for i in p] for p in packs],
                                      [[nums[i] for i in p] for p in packs], [states[p[0]] for p in packs])
            members = {}
            for task, pack in zip(tasks, packs):
                waiting = _PackWaiting(task, [nums[i] for i in pack], [overrides[i] for i in pack])
                members.update({i: _Member(waiting, k) for k, i in enumerate(pack)})
            return [members[i] for i in range(len(overrides))]

    return WaitingExecutor


class SlurmLauncher(SubmititSlurmLauncher):
    """Upstream's `launch`, run with an executor whose jobs wait as `wait_for` does, and which
    submits one task per pack where the sweep has jobs to pack (the module doc)."""

    def __init__(self, pack_size: int = SlurmConf.pack_size, strategy: str = SlurmConf.strategy,
                 **params: Any) -> None:
        super().__init__(**params)   # upstream hands every one of its params to sbatch
        self.pack_size, self.strategy = pack_size, strategy

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[Any]:
        import submitit   # as upstream: imported at launch, so that plugin discovery stays fast

        packs = None if self.pack_size == 1 else self._packs(job_overrides, initial_job_idx)
        plain = submitit.AutoExecutor
        submitit.AutoExecutor = waiting_executor(plain, packs)   # upstream builds submitit.AutoExecutor(...)
        try:
            return super().launch(job_overrides, initial_job_idx)
        finally:
            submitit.AutoExecutor = plain

    def _packs(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Optional[list[list[int]]]:
        """The packs (indices into job_overrides) of sweeps/pack.py's plan, fitted to a task's
        memory (mem_gb; a GPU's is not known before the task has its node: not split); None
        where no two jobs share a pack (a task a job, as upstream)."""
        from rnn_experiments.sweeps.checks import check_pack_settings   # lazy: only a packed sweep needs it
        from rnn_experiments.sweeps.pack import plan                     # lazy: likewise

        check_pack_settings(self.pack_size, self.strategy)   # checked already by the sweep guard
        mem_gb = self.params.get("mem_gb")
        if not mem_gb:
            log.warning("slurm launcher: packs are not split to fit in memory: hydra.launcher.mem_gb is not "
                        "set (a task's memory by mem_per_cpu or mem_per_gpu is not known here)")
        _, packs = plan(self.hydra_context, self.config, self.task_function, job_overrides, initial_job_idx,
                        self.pack_size, "slurm launcher", "one per SLURM task",
                        available=lambda device: int(mem_gb * 2**30) if mem_gb and device != "cuda" else None)
        if not any(len(p) > 1 for p in packs):
            return None
        log.info("slurm launcher: one SLURM task per pack: %s",
                 "; ".join(" ".join(f"#{initial_job_idx + i}" for i in p) for p in packs))
        return packs
