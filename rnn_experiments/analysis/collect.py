"""Run folders -> one long DataFrame: a row per run x logged step, the run's config flattened
into columns (`model.name`, `dataset.seq_length`, `seed`, ...), plus run-level columns.

A run folder is what rnn_experiments/run_folder.py says (a folder holding summary.json,
metrics.csv, checkpoint.pt or .hydra/config.yaml). Nothing is ever written into a run folder.

Run-level columns (RUN_COLUMNS):
    run_dir      the run folder
    status       from summary.json; without one: "crashed" (metrics but no summary) or "failed";
                 "running" with its process gone (no heartbeat, see _alive): "crashed"
    problem      "" or one line saying why the run's metrics were skipped (corrupt metrics.csv, ...)
    wall_time_s  summary.json's wall_time_s, else the last elapsed_s in metrics.csv
    overrides    the run's command-line overrides (.hydra/overrides.yaml), space-separated; None
                 when that file is missing or unreadable (no re-run command can be made)
A run without usable metrics keeps one row with `step` = NaN, so tables still count it.
"""
from __future__ import annotations

import glob
import os
import re
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from rnn_experiments.run_folder import RUN_FILES, SummaryError, is_run_folder, read_summary
from rnn_experiments.training.lock import heartbeat_age, is_stale, pid_alive, read_lock
from rnn_experiments.training.metrics import read_metrics

try:  # libyaml's C loader: ~10x faster than the pure-Python one on 1,000 configs
    _Loader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _Loader = yaml.SafeLoader

RUN_COLUMNS = ["run_dir", "status", "problem", "wall_time_s", "overrides"]


class AnalysisError(Exception):
    """Bad input to the analysis (a path, a key, a metric); the message is one line."""


def _natural_key(path: Path):
    """Hydra's job folders 0, 1, ..., 10 in numeric order."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def _run_dirs_under(root: Path) -> list[Path]:
    if is_run_folder(root):
        return [root]
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        if is_run_folder(dirpath):
            found.append(Path(dirpath))
            dirnames[:] = []  # a run folder holds no further runs
        else:  # skip our own output folders and hidden folders
            dirnames[:] = [d for d in dirnames if d != "analysis" and not d.startswith(".")]
    return sorted(found, key=_natural_key)


def find_runs(paths) -> list[Path]:
    """Run folders named by `paths` (multirun folders, run folders or globs), in order, no repeats.

    Raises AnalysisError (one line) for a path that does not exist or holds no run folder.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    if not paths:
        raise AnalysisError("no PATH given (expected a multirun folder, a run folder or a glob)")
    runs: dict[Path, None] = {}
    for p in map(str, paths):
        matches = sorted(glob.glob(p), key=_natural_key) if glob.has_magic(p) else [p]
        if not matches:
            raise AnalysisError(f"{p}: the pattern matches nothing")
        found = []
        for m in map(Path, matches):
            if not m.exists():
                raise AnalysisError(f"{m}: no such folder")
            if m.is_dir():
                found += _run_dirs_under(m)
            elif not glob.has_magic(p):
                raise AnalysisError(f"{m}: not a folder (expected a multirun folder, a run folder or a glob)")
        if not found:
            raise AnalysisError(f"{p}: no run folders found (a run folder holds "
                                f"{', '.join(RUN_FILES)})")
        runs.update(dict.fromkeys(found))
    return list(runs)


def flatten(d: dict, prefix: str = "") -> dict:
    """{"model": {"name": "lstm"}} -> {"model.name": "lstm"}; lists become strings (hashable)."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = str(v) if isinstance(v, (list, tuple)) else v
    return out


def _load_yaml(path: Path):
    return yaml.load(path.read_text(), Loader=_Loader)


def read_run(run_dir: Path) -> tuple[dict, dict, pd.DataFrame | None]:
    """(flattened config, run-level info, metrics or None) of one run folder; never raises for
    a damaged run: the reason goes into info["problem"]."""
    run_dir = Path(run_dir)
    problems, config, overrides, summary = [], {}, [], {}
    try:
        config = flatten(_load_yaml(run_dir / ".hydra" / "config.yaml") or {})
    except FileNotFoundError:
        problems.append("no .hydra/config.yaml")
    except (OSError, ValueError, AttributeError, yaml.YAMLError) as e:  # not YAML, not a mapping, ...
        problems.append(f".hydra/config.yaml unreadable ({type(e).__name__})")
    try:
        overrides = list(_load_yaml(run_dir / ".hydra" / "overrides.yaml") or [])
    except (OSError, ValueError, TypeError, yaml.YAMLError):
        overrides = None   # no re-run command can be rebuilt
    try:
        summary = read_summary(run_dir) or {}
    except SummaryError as e:
        problems.append(str(e).replace(f"{run_dir}/", ""))
    if "seed" not in config and "seed" in summary:
        config["seed"] = summary["seed"]

    metrics, metrics_path = None, run_dir / "metrics.csv"
    if metrics_path.is_file():
        try:
            metrics = read_metrics(metrics_path)
            text_columns = metrics.columns[[k not in "iufb" for k in metrics.dtypes.map(lambda d: d.kind)]]
            if len(text_columns):  # a damaged value leaves its column as text: ValueError here
                metrics[text_columns] = metrics[text_columns].apply(pd.to_numeric)
        except (ValueError, UnicodeDecodeError) as e:
            msg = str(e).split("\n")[0]
            problems.append(msg if str(metrics_path) in msg else f"{metrics_path}: {msg}")
            metrics = None
        if metrics is not None and metrics.empty:
            metrics = None
    if metrics is None and not problems and summary.get("status") == "diverged":
        problems.append(f"diverged at step {summary.get('diverged_at_step', '?')}, before its first metrics row")
    elif metrics is None and not problems and metrics_path.is_file():
        problems.append("metrics.csv has no rows yet")
    status = summary.get("status") or ("crashed" if metrics_path.is_file() else "failed")
    if status == "running" and not _alive(run_dir, summary):
        status = "crashed"  # killed (SIGKILL, out of memory, a lost node, ...) before it could say so
    wall = summary.get("wall_time_s")
    if wall is None and metrics is not None and "elapsed_s" in metrics:
        wall = metrics["elapsed_s"].max()
    info = {"run_dir": str(run_dir), "status": status, "problem": "; ".join(problems),
            "wall_time_s": float(wall) if wall is not None else np.nan,
            "overrides": " ".join(map(str, overrides)) if overrides is not None else None}
    return config, info, metrics


def _alive(run_dir: Path, summary: dict) -> bool:
    """False when the run's process is known to be gone. Runs that keep a heartbeat (their
    summary has `heartbeat_s`): their run.lock is gone or stale (training/lock.py: a dead pid on
    this host, or no heartbeat for STALE_AFTER_S on any host). Older runs: same host, no such pid."""
    if "heartbeat_s" in summary:
        holder = read_lock(run_dir)
        return holder is not None and not is_stale(holder, heartbeat_age(run_dir))
    pid, host = summary.get("pid"), summary.get("host")
    if not isinstance(pid, int) or host != socket.gethostname():
        return True  # another machine (a cluster node): cannot tell, trust the summary
    return pid_alive(pid)


def without_config(df: pd.DataFrame) -> set[str]:
    """The runs of a `collect` frame whose config could not be read (every config key but the
    seed, which summary.json also holds, is missing): they cannot be put in a group."""
    keys = [k for k in config_keys(df) if k != "seed"]
    runs = df.drop_duplicates("run_dir")
    if not keys:
        return set(runs["run_dir"])
    return set(runs.loc[runs[keys].isna().all(axis=1), "run_dir"])


def collect(paths) -> pd.DataFrame:
    """All runs under `paths` as one DataFrame (see the module docstring for its columns).

    df.attrs["config_keys"] and df.attrs["metrics"] name the config and metric columns.
    """
    run_dirs = find_runs(paths)
    # ~1.6 ms a run (libyaml + pandas' C parser); a thread pool measured no faster on 2 cores
    results = [read_run(d) for d in run_dirs]

    config_keys = list(dict.fromkeys(k for cfg, _, _ in results for k in cfg))
    runs = pd.DataFrame([{**cfg, **info} for cfg, info, _ in results],
                        columns=config_keys + RUN_COLUMNS)
    runs["_run"] = np.arange(len(runs))
    frames = [m.assign(_run=i) for i, (_, _, m) in enumerate(results) if m is not None]
    if frames:
        metrics = pd.concat(frames, ignore_index=True)
    else:
        metrics = pd.DataFrame({"_run": pd.Series(dtype=int), "step": pd.Series(dtype=float)})
    metric_keys = [c for c in metrics.columns if c not in ("_run", "step")]
    # left join: a run without metrics keeps one row (step NaN); rows stay in run, then step order
    df = runs.merge(metrics, on="_run", how="left").drop(columns="_run")
    df.attrs["config_keys"] = config_keys
    df.attrs["metrics"] = metric_keys
    return df


def config_keys(df: pd.DataFrame) -> list[str]:
    """The config columns of a `collect` frame."""
    if "config_keys" in df.attrs:
        return [k for k in df.attrs["config_keys"] if k in df.columns]
    from rnn_experiments.training.metrics import COLUMNS
    return [c for c in df.columns if c not in RUN_COLUMNS and c not in COLUMNS]


def runs_of(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run (the run-level and config columns)."""
    return df.drop_duplicates("run_dir")[config_keys(df) + RUN_COLUMNS].reset_index(drop=True)
