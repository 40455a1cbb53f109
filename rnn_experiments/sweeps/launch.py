"""What a sweep job does differently under Hydra's launchers (conf/hydra/launcher/).

* Threads. Jobs run side by side (joblib) must not each start one torch thread per core:
  `job_threads` gives each job cores // n_jobs threads (at least 1), or the launcher's
  cpus_per_task (submitit), unless `train.threads` is set explicitly.
* Preemption and time limits (submitit). SLURM sends SIGUSR2 before a job's time limit (and on
  preemption where the cluster is set up so). The training loop treats it like SIGTERM: it
  finishes the step, saves checkpoint.pt and stops. `requeue_if_preempted` then hands the signal
  back to submitit's handler, which calls the Hydra launcher's `checkpoint` (resubmit the same
  job: same overrides, same folder) and requeues; the requeued run resumes from checkpoint.pt
  because `train.resume` is true. A pack's task (hydra.launcher.pack_size > 1): the signal stops
  every member with its checkpoint, the first member's end hands it back, and submitit's handler
  calls the pack's `checkpoint` instead (hydra_plugins/rnn_experiments_slurm/launcher.py:
  PackTask, the same pack), so that every member resumes.
* SIGTERM in a SLURM job: SLURM itself is ending the job (`scontrol requeue`, preemption with
  requeue, scancel, a node set DOWN, the time limit). The loop saves checkpoint.pt as for any
  stop; the job then exits without a result, so that the sweep keeps waiting: a requeued job runs
  again and resumes from the checkpoint, and a job that ended for good is reported from SLURM's
  accounting (rnn_experiments/sweeps/slurm.py).
"""
from __future__ import annotations

import logging
import os
import signal
import sys

from rnn_experiments.training.resources import available_cores

log = logging.getLogger(__name__)


def _launcher_cfg():
    from hydra.core.hydra_config import HydraConfig
    if not HydraConfig.initialized():
        return None
    return HydraConfig.get().get("launcher")


def job_threads(cfg, cores: int | None = None) -> int:
    """torch threads for this job: train.threads if > 0, else what the launcher leaves per job
    (0: leave torch's default, e.g. for a single run)."""
    if cfg.train.threads != 0:  # a negative value is left for validate() to report
        return cfg.train.threads
    launcher = _launcher_cfg()
    if launcher is None:
        return 0
    cores = cores or available_cores()
    n_jobs = launcher.get("n_jobs")
    if isinstance(n_jobs, int) and n_jobs != 0:           # joblib: -1 = all cores, -2 = all but one
        n_jobs = n_jobs if n_jobs > 0 else max(1, cores + 1 + n_jobs)
        return max(1, cores // n_jobs)
    cpus = launcher.get("cpus_per_task")
    return int(cpus) if cpus else 0


def preempt_signal() -> signal.Signals:
    """The signal submitit treats as 'preempted or timed out' ($SUBMITIT_PREEMPT_SIGNAL, USR2)."""
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"))


def in_submitit_job() -> bool:
    try:
        import submitit
    except ImportError:
        return False
    return submitit.JobEnvironment().activated()


def in_slurm_job() -> bool:
    """Inside a job that submitit started on SLURM (its sbatch script sets SUBMITIT_EXECUTOR)."""
    return os.environ.get("SUBMITIT_EXECUTOR") == "slurm"


def requeue_if_preempted(signal_name: str) -> None:
    """After the loop stopped on `signal_name` with its checkpoint saved: if that is submitit's
    preemption signal inside a submitit job, raise it again so that submitit's handler resubmits
    the job and exits; if it is SIGTERM in a SLURM job, exit without a result (the module doc).
    Returns otherwise."""
    if signal_name == "SIGTERM" and in_slurm_job():
        log.warning("stopped by SIGTERM with checkpoint saved: SLURM ends this job (a requeued "
                    "job resumes from the checkpoint); exiting without a result")
        sys.exit(128 + signal.SIGTERM)
    sig = preempt_signal()
    if signal_name != sig.name or not in_submitit_job():
        return
    log.warning("stopped by %s with checkpoint saved: requeueing through submitit", sig.name)
    os.kill(os.getpid(), sig)   # submitit's handler (restored by the loop) requeues and exits
