"""Runs to do again: failed/crashed/interrupted runs and jobs of a sweep that never started,
each with the exact command that re-runs just it.

A sweep's job list is rebuilt from its multirun.yaml the way Hydra's BasicSweeper builds it
(sweeper params + command-line overrides -> cartesian product), and matched to the run folders
by their .hydra/overrides.yaml. Without a multirun.yaml, a group missing some of the seeds seen
in other groups gets one command per missing seed.

A job of a sweep that ran on SLURM (hydra/launcher=slurm) is re-run on SLURM: its command is a
one-job sweep with the sweep's own launcher settings, into the same job folder
(hydra.sweep.dir = the sweep's folder, hydra.sweep.subdir = the job's), where it resumes from its
checkpoint. The sweep's multirun.yaml is kept (rnn_experiments/sweeps/guard.py).
"""
from __future__ import annotations

import shlex
from pathlib import Path

import pandas as pd

from rnn_experiments.analysis.collect import config_keys, runs_of
from rnn_experiments.run.multirun import is_slurm_launcher, jobs
from rnn_experiments.run.readers import read_yaml

TRAIN = "python -m rnn_experiments.train"
RERUN_STATUSES = ("failed", "crashed", "interrupted")


def command(overrides: list[str], run_dir: str | Path | None = None, config_dirs: list[str] = ()) -> str:
    """One run with these overrides (hydra.mode=RUN: a preset that sweeps by itself would
    otherwise start its whole sweep), in `run_dir` if given, finding the user's own configs in
    `config_dirs` as the original command did (--config-dir)."""
    args = [a for d in config_dirs for a in ("--config-dir", d)] + list(overrides) \
        + (["hydra.mode=RUN"] if any(_may_sweep(o) for o in overrides) else []) \
        + ([f"hydra.run.dir={run_dir}"] if run_dir is not None else [])
    return " ".join([TRAIN] + [shlex.quote(a) for a in args])


def slurm_command(overrides: list[str], job_dir: Path, sweep_dir: Path, hydra_overrides: list[str],
                  config_dirs: list[str] = ()) -> str:
    """A one-job sweep (-m) of a job of a SLURM sweep, submitted with the sweep's own hydra
    overrides (the launcher's settings) into the job's folder `job_dir` under `sweep_dir`."""
    keep = [o for o in hydra_overrides
            if o.split("=", 1)[0] not in ("hydra.sweep.dir", "hydra.sweep.subdir", "hydra.mode")]
    args = [a for d in config_dirs for a in ("--config-dir", d)] + list(overrides) + keep \
        + [f"hydra.sweep.dir={sweep_dir}", f"hydra.sweep.subdir={Path(job_dir).relative_to(sweep_dir)}"]
    return " ".join([TRAIN, "-m"] + [shlex.quote(a) for a in args])


def slurm_overrides(hydra_yaml: Path) -> list[str] | None:
    """The hydra overrides of a sweep that ran on SLURM, from its multirun.yaml or a job's
    .hydra/hydra.yaml; None for a single run or another launcher."""
    try:
        h = read_yaml(hydra_yaml)["hydra"]
        if h.get("mode") != "MULTIRUN" or not is_slurm_launcher(h.get("launcher")):
            return None
        return [str(o) for o in (h["overrides"].get("hydra") or [])]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _sweep_of(run_dir: Path) -> Path | None:
    """The folder holding the sweep's multirun.yaml that `run_dir` is a job folder of."""
    return next((p for p in Path(run_dir).parents if (p / "multirun.yaml").is_file()), None)


def rerun_command(overrides: list[str], run_dir: Path, hydra_yaml: Path) -> str:
    """The command that re-runs one job in `run_dir`: on SLURM when its sweep ran there (see
    the module doc), else a single run."""
    dirs = config_dirs(hydra_yaml)
    on_slurm, sweep = slurm_overrides(hydra_yaml), _sweep_of(run_dir)
    if on_slurm is not None and sweep is not None:
        return slurm_command(overrides, Path(run_dir), sweep, on_slurm, dirs)
    return command(overrides, run_dir, dirs)


def config_dirs(hydra_yaml: Path) -> list[str]:
    """The folders of users' own configs that a run or sweep was started with (--config-dir or a
    command-line hydra.searchpath), from its .hydra/hydra.yaml or multirun.yaml; [] if none."""
    try:
        h = read_yaml(hydra_yaml)["hydra"]
        return [src["path"] for src in h["runtime"]["config_sources"]
                if src["schema"] == "file" and src["provider"] in ("command-line", "hydra.searchpath in command-line")]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def _may_sweep(override: str) -> bool:
    """Whether an override selects a preset, which may set hydra.mode=MULTIRUN."""
    return override.lstrip("+~").split("=", 1)[0] in ("experiment", "hparams_search")


def expected_jobs(sweep_dir: Path) -> list[list[str]] | None:
    """The override lists of every job of a BasicSweeper sweep, in job-number order (None if
    the sweep's job list cannot be rebuilt)."""
    try:
        cfg = read_yaml(Path(sweep_dir) / "multirun.yaml")
        h = cfg["hydra"]
        return jobs(h["sweeper"], list(h["overrides"]["task"]))
    except Exception:  # an unreadable or unusual multirun.yaml: fall back to the seed check
        return None


def _overrides(run_dir: Path) -> list[str]:
    try:
        return list(read_yaml(run_dir / ".hydra" / "overrides.yaml") or [])
    except (OSError, ValueError, TypeError):
        return []


def _rerun_failed(runs: pd.DataFrame, with_metrics: set[str]) -> list[tuple[str, str]]:
    out = []
    for r in runs.itertuples(index=False):
        if r.duplicate_of:   # counted as the run it repeats: nothing to re-run
            continue
        usable = r.run_dir in with_metrics
        if r.status in RERUN_STATUSES or (not usable and r.status != "running"):
            why = r.status + (f": {r.problem}" if r.problem else "")
            if not isinstance(r.overrides, str):
                out.append((f"{r.run_dir} ({why}; no readable .hydra/overrides.yaml, so no command: "
                            "re-run it by hand)", ":"))
                continue
            out.append((f"{r.run_dir} ({why})", rerun_command(r.overrides.split(), Path(r.run_dir),
                                                               Path(r.run_dir) / ".hydra" / "hydra.yaml")))
    return out


def _missing_in_sweeps(runs: pd.DataFrame) -> tuple[list[tuple[str, str]], set[str]]:
    out, covered = [], set()
    parents = {str(Path(d).parent) for d in runs["run_dir"]}
    for sweep in sorted(p for p in parents if (Path(p) / "multirun.yaml").is_file()):
        jobs = expected_jobs(Path(sweep))
        if jobs is None:
            continue
        covered.add(sweep)
        # every job folder on disk counts, collected or not (PATH may name just some of them)
        have = {frozenset(_overrides(d)) for d in Path(sweep).iterdir() if d.is_dir()}
        for num, job in enumerate(jobs):
            if frozenset(job) not in have:
                run_dir = Path(sweep) / str(num)
                out.append((f"{run_dir} (job #{num} of {sweep}: no run folder; not started yet or lost)",
                            rerun_command(job, run_dir, Path(sweep) / "multirun.yaml")))
    return out, covered


def _missing_seeds(runs: pd.DataFrame, by: list[str]) -> list[tuple[str, str]]:
    if "seed" not in runs or runs.empty:
        return []
    seeds = sorted(runs["seed"].dropna().unique())
    out = []
    groups = runs.groupby(by, dropna=False) if by else [((), runs)]
    for key, g in groups:
        known = g["overrides"].dropna()
        if known.empty:
            continue
        template = known.iloc[0].split()
        dirs = config_dirs(Path(g.loc[known.index[0], "run_dir"]) / ".hydra" / "hydra.yaml")
        for s in seeds:
            if s not in set(g["seed"]):
                args = [o for o in template if not o.lstrip("+~").startswith("seed=")] + [f"seed={s}"]
                key_t = key if isinstance(key, tuple) else (key,)
                label = ", ".join(f"{k}={v}" for k, v in zip(by, key_t)) or "all runs"
                out.append((f"{label}: seed {s} missing", command(args, config_dirs=dirs)))
    return out


def reruns(df: pd.DataFrame, by: list[str]) -> list[tuple[str, str]]:
    """[(what is wrong, command that re-runs it)] for failed runs, missing jobs, missing seeds."""
    runs = runs_of(df)
    with_metrics = set(df.loc[df["step"].notna(), "run_dir"]) if "step" in df else set()
    out = _rerun_failed(runs, with_metrics)
    missing, covered = _missing_in_sweeps(runs)
    out += missing
    loose = runs[~runs["run_dir"].map(lambda d: str(Path(d).parent)).isin(covered)]
    out += _missing_seeds(loose, [k for k in by if k in config_keys(df)])
    return out
