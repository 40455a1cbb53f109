"""`hydra/launcher=packed`: a sweep's jobs that differ only in `seed`, trained together.

The launcher loads every job's config as Hydra's basic launcher does, groups the jobs whose
configs are equal but for `seed` (and Hydra's own node), and splits each group into packs of up
to `pack_size`. A pack's members are ordinary Hydra jobs of the sweep — each gets its folder,
`.hydra/`, train.log, its Hydra callbacks and its JobReturn — whose runs train in this process
through rnn_experiments/training/pack.py. A job that is alone in its group, or whose task has no
packed form, runs as under the basic launcher; why, the sweep says once.

`plan` (the jobs' configs and their packs) and `one_pack` (train one pack, its members' JobReturns)
serve both launchers that pack: this one, and hydra/launcher=slurm with `pack_size` > 1, which
runs each pack as one SLURM task (hydra_plugins/rnn_experiments_slurm/launcher.py).

What a task needs to be packed (the contract; rnn_experiments/cli/rnn_train.py has it): the task
function has an attribute `pack`, `task.pack(cfg) -> (run, end)` where `run` is the job's
generator `training.loop.start(..., packed=True)` (one that raises, where the job is refused
before its run exists) and `end(outcome)` is the job's return value, as the task would end it,
given `outcome()`: the run's summary, or raising what ended the run.
"""
from __future__ import annotations

import copy
import json
import logging
import os
import time
from pathlib import Path
from typing import Callable, Sequence

from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from rnn_experiments.sweeps.checks import check_pack_settings
from rnn_experiments.training.pack import Member, memory_words, run_pack
from rnn_experiments.training.resources import available_bytes, available_cores, training_bytes

log = logging.getLogger(__name__)

PACKED_KEY = "seed"   # the one setting in which a pack's members differ


def pack_key(cfg: DictConfig) -> str:
    """What a job computes apart from its seed: jobs with the same key can share a pack."""
    node = OmegaConf.to_container(cfg, resolve=False)
    node.pop("hydra", None)
    node.pop(PACKED_KEY, None)
    return json.dumps(node, sort_keys=True, default=str)


def packs_of(keys: list[str], pack_size: int) -> list[list[int]]:
    """Indices of the jobs, grouped by key (in the order of their first job) and split into
    packs of at most `pack_size`, as evenly as the group allows (10 in packs of 4: 4, 3, 3)."""
    groups: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    packs = []
    for members in groups.values():
        n = -(-len(members) // pack_size)                     # packs for this group
        size, extra = divmod(len(members), n)
        start = 0
        for p in range(n):
            end = start + size + (p < extra)
            packs.append(members[start:end])
            start = end
    return packs


def fitted(packs: list[list[int]], need: int, available: int | None, n_jobs: int = 1) -> list[list[int]]:
    """`packs` split up front so that the packs running at once fit in memory: a pack needs
    about its size × `need` (each member's peak, training.resources.training_bytes: a stacked
    step holds every member's activations at once), `n_jobs` packs run side by side, `available`
    bytes can be had (None: unknown, nothing split)."""
    if available is None or need <= 0:
        return packs
    most = max(1, int(available // (need * max(n_jobs, 1))))   # members a pack can hold
    out = []
    for pack in packs:
        out += [pack[i:i + most] for i in range(0, len(pack), most)]
    return out


def launch(launcher, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list:
    """Hydra's Launcher.launch for PackedLauncher: the jobs' JobReturns, in their order."""
    from hydra.core.utils import setup_globals

    setup_globals()
    context, task = launcher.hydra_context, launcher.task_function
    check_pack_settings(launcher.pack_size, launcher.strategy, launcher.n_jobs)   # checked already by the sweep guard
    n_jobs = launcher.n_jobs
    jobs, packs = plan(context, launcher.config, task, job_overrides, initial_job_idx, launcher.pack_size,
                       "packed launcher", "one after the other",
                       side_by_side=available_cores() if n_jobs == -1 else n_jobs)
    for pack in packs:
        for i in pack:
            log.info("\t#%d : %s%s", initial_job_idx + i, " ".join(job_overrides[i]),
                     f" (pack of {len(pack)})" if len(pack) > 1 else "")
    if n_jobs != 1 and len(packs) > 1:      # packs side by side: joblib processes, as hydra/launcher=joblib
        from hydra.core.singleton import Singleton
        from joblib import Parallel, delayed

        state = Singleton.get_state()
        done = Parallel(n_jobs=n_jobs, backend="loky")(
            delayed(_pack_in_worker)(context, task, [jobs[i] for i in pack], launcher.strategy, state)
            for pack in packs)
    else:
        done = [one_pack(context, task, [jobs[i] for i in pack], launcher.strategy) for pack in packs]
    returns = {i: ret for pack, rets in zip(packs, done) for i, ret in zip(pack, rets)}
    return [returns[i] for i in range(len(jobs))]


def plan(context, config, task, job_overrides: Sequence[Sequence[str]], initial_job_idx: int, pack_size: int,
         who: str, unpacked: str, side_by_side: int = 1,
         available: Callable[[str], int | None] | None = None) -> tuple[list[DictConfig], list[list[int]]]:
    """A sweep's jobs and their packs, for a launcher (`who`, as the log names it): every job's
    config loaded as Hydra's basic launcher loads it (hydra.job.id job_id_for_N, hydra.job.num
    N), and the packs as lists of indices into them: the jobs equal but for `seed` (pack_key)
    in packs of at most `pack_size` (packs_of), split further so that `side_by_side` packs at
    once fit in `available(device)` bytes (fitted; default: this machine's, available_bytes;
    None: unknown, nothing split). A task without a packed form, or hydra.job.chdir, gives packs
    of one, which the log says once (the jobs then run `unpacked`), as it says which jobs run
    alone. The sweep folder is made."""
    from hydra.core.utils import configure_log

    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    Path(str(config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    jobs = []
    for i, overrides in enumerate(job_overrides):
        idx = initial_job_idx + i
        job_cfg = context.config_loader.load_sweep_config(config, list(overrides))
        with open_dict(job_cfg):
            job_cfg.hydra.job.id = f"job_id_for_{idx}"
            job_cfg.hydra.job.num = idx
        jobs.append(job_cfg)
    why = _why_unpacked(task, config)
    packs = [[i] for i in range(len(jobs))] if why else packs_of([pack_key(c) for c in jobs], pack_size)
    if not why and any(len(p) > 1 for p in packs):
        packs = _fitted_here(packs, jobs, side_by_side, available, who)
    alone = sum(len(p) == 1 for p in packs)
    if why:
        log.warning("%s: the %d jobs run %s: %s", who, len(jobs), unpacked, why)
    elif alone:
        log.info("%s: %d of %d jobs have no other job that differs from them only in `seed`: they "
                 "run alone", who, alone, len(jobs))
    log.info("%s: %d jobs in %d packs (%s)", who, len(jobs), len(packs), ", ".join(str(len(p)) for p in packs))
    return jobs, packs


def _fitted_here(packs: list[list[int]], jobs: list[DictConfig], side_by_side: int,
                 available: Callable[[str], int | None] | None, who: str) -> list[list[int]]:
    """fitted() with the memory `available` for the jobs' device and the first job's peak; one
    line where it splits."""
    try:
        need = training_bytes(jobs[packs[0][0]])
    except Exception:          # a model the estimate does not know: the run's own check decides
        return packs
    device = "cuda" if str(jobs[0].get("device")) == "cuda" else "cpu"
    out = fitted(packs, need, (available or available_bytes)(device), side_by_side)
    if len(out) > len(packs):
        log.warning("%s: packs split to fit in memory: %d members a pack at most (each "
                    "needs about %.0f MiB)", who, max(len(p) for p in out), need / 2**20)
    return out


def one_pack(context, task, configs: list[DictConfig], strategy: str) -> list:
    """The JobReturns of one pack; a pack of one is a job as under the basic launcher."""
    from hydra.core.utils import run_job

    if len(configs) == 1:
        return [run_job(hydra_context=context, task_function=task, config=configs[0],
                        job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")]
    return _run_pack(context, task, configs, strategy)


def _pack_in_worker(context, task, configs, strategy, singleton_state) -> list:
    """one_pack in a joblib worker: Hydra's global state as the sweep's process has it."""
    from hydra.core.singleton import Singleton
    from hydra.core.utils import setup_globals

    setup_globals()
    Singleton.set_state(singleton_state)
    return one_pack(context, task, configs, strategy)


def _why_unpacked(task, config) -> str | None:
    if getattr(task, "pack", None) is None:
        return f"the task {getattr(task, '__name__', task)!r} has no packed form (sweeps/pack.py)"
    if config.hydra.job.get("chdir"):
        return "hydra.job.chdir=true (the members of a pack share one working directory)"
    return None


class _Job:
    """A pack member as a Hydra job: its config with the output folder set (as Hydra's run_job
    sets it), the Hydra config it makes current, its JobReturn."""

    def __init__(self, config: DictConfig):
        from hydra.core.hydra_config import HydraConfig
        from hydra.core.utils import JobReturn

        HydraConfig.instance().set_config(config)
        out = os.path.join(str(OmegaConf.select(config, "hydra.sweep.dir")),
                           str(OmegaConf.select(config, "hydra.sweep.subdir")))
        with read_write(config.hydra.runtime), open_dict(config.hydra.runtime):
            config.hydra.runtime.output_dir = os.path.abspath(out)
        HydraConfig.instance().set_config(config)
        self.config, self.out_dir = config, Path(config.hydra.runtime.output_dir)
        self.hydra_cfg = HydraConfig.instance().cfg            # made current again by enter()
        task_cfg = copy.deepcopy(config)
        with read_write(task_cfg), open_dict(task_cfg):
            del task_cfg["hydra"]
        self.task_cfg = task_cfg
        self.ret = JobReturn(cfg=task_cfg, hydra_cfg=copy.deepcopy(self.hydra_cfg),
                             overrides=OmegaConf.to_container(config.hydra.overrides.task),
                             working_dir=os.getcwd())
        self.num = int(config.hydra.job.num)

    def enter(self) -> None:
        from hydra.core.hydra_config import HydraConfig
        HydraConfig.instance().cfg = self.hydra_cfg   # set_config's result, kept: a switch costs nothing
        _PackLog.current = self.num


def _run_pack(context, task, configs: list[DictConfig], strategy: str) -> list:
    """Train one pack: every member prepared as a Hydra job, trained together, ended as its
    task would end it (task.pack's `result`); their JobReturns."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.utils import JobStatus, _flush_loggers, configure_log, env_override

    original = HydraConfig.instance().cfg
    jobs = [_Job(c) for c in configs]
    for job in jobs:
        job.out_dir.mkdir(parents=True, exist_ok=True)
    configure_log(jobs[0].config.hydra.job_logging, jobs[0].config.hydra.verbose)
    routed = _PackLog.install({job.num: job.out_dir / f"{job.config.hydra.job.name}.log" for job in jobs})
    members, ends = [], {}
    # summary.json's `pack`: its size, the members' folders, how their steps were taken (a
    # member's own wall_time_s is the pack's time: the analysis shares it out); run_pack adds
    # the pack's measured peak memory beside the estimate (training/pack.py: _record_memory)
    record = {"size": len(jobs), "members": [str(job.out_dir.name) for job in jobs], "strategy": strategy}
    t0 = time.perf_counter()
    try:
        with env_override(jobs[0].hydra_cfg.hydra.job.env_set):
            for job in jobs:
                job.enter()
                context.callbacks.on_job_start(config=job.config, task_function=task)
                run, ends[job.num] = task.pack(job.task_cfg)
                members.append((job, Member(run, job.enter, name=str(job.num))))
            used = run_pack([m for _, m in members], strategy, log=log, record=record)
            log.info("packed launcher: %d runs trained together in %.1f s (steps: %s; %s)", len(jobs),
                     time.perf_counter() - t0, used, memory_words(record))
            for job, member in members:
                job.enter()

                def outcome(member=member):
                    if member.error is not None:
                        raise member.error
                    return member.summary
                job.ret.return_value = ends[job.num](outcome)
                job.ret.status = JobStatus.COMPLETED
                job.ret.task_name = job.hydra_cfg.hydra.job.name
                _flush_loggers()
                context.callbacks.on_job_end(config=job.config, job_return=job.ret)
    finally:
        routed.remove()
        HydraConfig.instance().cfg = original
    return [job.ret for job in jobs]


class _PackLog(logging.Handler):
    """The members' train.log files: each record goes to the file of the member the pack works
    for (`current`, set by _Job.enter), as Hydra's file handler would for a job alone; console
    lines start with the member's job number."""

    current: int | None = None

    def __init__(self, paths: dict[int, Path], like: logging.FileHandler | None):
        super().__init__(like.level if like is not None else logging.NOTSET)
        self.paths, self.files = paths, {}
        self.setFormatter(like.formatter if like is not None else logging.Formatter())

    def emit(self, record: logging.LogRecord) -> None:
        num = _PackLog.current
        if num not in self.paths:
            return
        if num not in self.files:
            self.files[num] = logging.FileHandler(self.paths[num], delay=True)
            self.files[num].setFormatter(self.formatter)
        self.files[num].emit(record)

    @classmethod
    def install(cls, paths: dict[int, Path]) -> "_Routed":
        root = logging.getLogger()
        files = [h for h in root.handlers if isinstance(h, logging.FileHandler)]
        for h in files:
            root.removeHandler(h)
            h.close()
        handler = cls(paths, files[0] if files else None)
        root.addHandler(handler)
        consoles = [h for h in root.handlers if type(h) is logging.StreamHandler]
        for h in consoles:
            h.setFormatter(_Prefixed(h.formatter or logging.Formatter()))
        return _Routed(root, handler, consoles)


class _Prefixed(logging.Formatter):
    def __init__(self, inner: logging.Formatter):
        super().__init__()
        self.inner = inner

    def format(self, record: logging.LogRecord) -> str:
        text = self.inner.format(record)
        return f"[job {_PackLog.current}] {text}" if _PackLog.current is not None else text


class _Routed:
    def __init__(self, root, handler, consoles):
        self.root, self.handler, self.consoles = root, handler, consoles

    def remove(self) -> None:
        self.root.removeHandler(self.handler)
        for f in self.handler.files.values():
            f.close()
        for h in self.consoles:
            if isinstance(h.formatter, _Prefixed):
                h.setFormatter(h.formatter.inner)
        _PackLog.current = None
