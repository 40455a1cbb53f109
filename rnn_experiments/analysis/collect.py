"""Run folders -> one long DataFrame: a row per run x logged step, the run's config flattened
into columns (`model.name`, `dataset.seq_length`, `seed`, ...), plus run-level columns.

A run folder is what rnn_experiments/run/folder.py says (a folder holding summary.json,
metrics.csv, checkpoint.pt or .hydra/config.yaml). Nothing is ever written into a run folder.

Run-level columns (RUN_COLUMNS):
    run_dir      the run folder
    status       from summary.json; without one: "crashed" (metrics but no summary) or "failed";
                 "running" with its process gone (no heartbeat, see _alive): "crashed"
    problem      "" or one line saying why the run's metrics were skipped (corrupt metrics.csv, ...)
    wall_time_s  summary.json's wall_time_s, else the last elapsed_s in metrics.csv; a member of a
                 pack (hydra/launcher=packed: summary.json's `pack`) trained beside the others, so
                 its share is the pack's time over its size: wall_time_s / pack.size
    overrides    the run's command-line overrides (.hydra/overrides.yaml), space-separated; None
                 when that file is missing or unreadable (no re-run command can be made)
    duplicate_of "" or the run this one repeats (same settings and seed): counted once, as that
                 run; this one's metrics are left out (`mark_duplicates`)
A run without usable metrics keeps one row with `step` = NaN, so tables still count it. A run
whose metrics.csv is not a regular file, not a table, or holds NaN or inf where every row has a
number (loss, accuracy) has no usable metrics; its `problem` says why. Files are read through
run/readers.py: regular files only, YAML bounded by size and by alias expansion.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import socket
import stat
import time
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from rnn_experiments.analysis.quantities import METRICS, declare
from rnn_experiments.config import conf_dir
from rnn_experiments.parts import FORMER_TARGETS, upgrade
from rnn_experiments.run.readers import ReadError, read_bytes, read_yaml
from rnn_experiments.run.status import STOP_STATUSES
from rnn_experiments.run.folder import (RUN_FILES, FORMAT_VERSION, format_version, SummaryError, is_run_folder,
                                        read_summary)
from rnn_experiments.run.lock import LOCK, heartbeat_age, is_stale, pid_alive
from rnn_experiments.run.metrics import parse_metrics
from rnn_experiments.run.metrics import COLUMNS

RUN_COLUMNS = ["run_dir", "status", "problem", "wall_time_s", "overrides", "duplicate_of"]


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


STATUSES = ("running", "completed", "failed", "interrupted", "diverged") + STOP_STATUSES  # run/summary.py
_NUMBER = (int, float)
# summary.json keys the analysis reads, with the type each must have; a key of another type is
# listed as a problem and ignored (bool is not a number here, though Python calls it an int)
SUMMARY_TYPES = {"format_version": (int, "an integer"), "format": (int, "an integer"), "status": (str, f"one of {', '.join(STATUSES)}"), "seed": (int, "an integer"),
                 "wall_time_s": (_NUMBER, "a number"), "pid": (int, "an integer"), "host": (str, "a string"),
                 "heartbeat_s": (_NUMBER, "a number"), "diverged_at_step": (int, "an integer"),
                 "metrics_csv": (dict, "a record of metrics.csv (rows, last_step, sha256)"),
                 "pack": (dict, "a record of the run's pack (size, members, strategy)"),
                 "same_results": (list, "a list of config keys")}
FINITE_COLUMNS = ("loss", "accuracy")    # logged in every metrics.csv row: NaN or inf is damage


def check_summary(summary: dict) -> tuple[dict, list[str]]:
    """(the summary with every key of the wrong type dropped, one problem line per such key)."""
    summary, problems = dict(summary), []
    for key, (types, what) in SUMMARY_TYPES.items():
        if key not in summary:
            continue
        v = summary[key]
        ok = isinstance(v, types) and not isinstance(v, bool)
        if ok and key == "status":
            ok = v in STATUSES
        if ok and isinstance(v, float):
            ok = np.isfinite(v)
        if ok and key == "pack":
            size = v.get("size")
            ok = isinstance(size, int) and not isinstance(size, bool) and size >= 1
        if not ok:
            problems.append(f"summary.json: {key}={v!r} is not {what} (ignored)")
            del summary[key]
    fmt = format_version(summary)
    if fmt > FORMAT_VERSION:
        problems.append(f"summary.json: format_version {fmt} is newer than this release reads (up "
                        f"to {FORMAT_VERSION}); read as format_version {FORMAT_VERSION}")
    return summary, problems


def _read_metrics(path: Path, record=None) -> tuple[pd.DataFrame | None, str]:
    """(metrics.csv as numbers, "") or (None, why not); None, "" when there is no such file. The
    file proves itself: against the record the run wrote when it ended (summary.json
    "metrics_csv": rows, last step, sha256), its steps increasing, every value in its metric's range."""
    if not os.path.lexists(path):
        return None, ""
    try:
        data = read_bytes(path)
        if isinstance(record, dict) and hashlib.sha256(data).hexdigest() != record.get("sha256"):
            found = [line for line in data.decode("utf-8", "replace").splitlines()[1:] if line]
            last = found[-1].split(",")[0] if found else "none"
            return None, (f"{path}: not the file the run wrote (summary.json: {record.get('rows')} rows to step "
                          f"{record.get('last_step')}; the file: {len(found)} rows to step {last}); the run's "
                          "metrics are not used (re-run it)")
        metrics = parse_metrics(data.decode("utf-8"), path)
        text_columns = metrics.columns[[k not in "iufb" for k in metrics.dtypes.map(lambda d: d.kind)]]
        if len(text_columns):  # a damaged value leaves its column as text: ValueError here
            metrics[text_columns] = metrics[text_columns].apply(pd.to_numeric)
    except (ValueError, UnicodeDecodeError) as e:   # ReadError is a ValueError too
        msg = str(e).split("\n")[0]
        return None, msg if str(path) in msg else f"{path}: {msg}"
    for col in (c for c in FINITE_COLUMNS if c in metrics.columns):
        bad = ~np.isfinite(metrics[col].to_numpy(dtype=float))
        if bad.any():
            i = int(np.argmax(bad))
            return None, (f"{path}: {col} is {metrics[col].iloc[i]} at step {metrics['step'].iloc[i]} "
                          f"({int(bad.sum())} of {len(bad)} rows); the run's metrics are not used")
    steps = metrics["step"].to_numpy()
    if len(steps) > 1 and not (np.diff(steps) > 0).all():
        i = int(np.argmax(np.diff(steps) <= 0)) + 1
        return None, (f"{path}: step {steps[i]} after step {steps[i - 1]} (row {i + 1}): rows out of order or "
                      "appended; the run's metrics are not used")
    for col in (c for c in metrics.columns if c in METRICS):
        low, high = METRICS[col].bounds
        values = metrics[col].to_numpy(dtype=float)
        bad = (values < low) | (values > high)          # NaN (not logged at that row) is neither
        if bad.any():
            i = int(np.argmax(bad))
            return None, (f"{path}: {col} is {values[i]:g} at step {steps[i]}, outside its range [{low:g}, {high:g}]; "
                          "the run's metrics are not used")
    return (None if metrics.empty else metrics), ""


def former_parts_upgraded(config: dict) -> dict:
    """A config of a folder before format_version 4 with its `model` and `dataset` nodes as
    today's (parts.upgrade: their class from their name, only the settings it takes) and the
    optimizer those releases used (Adam at train.lr: the packaged conf/optimizer/adam.yaml), so
    that it groups with today's runs of the same parts; the step decay of the releases before the
    scheduler part (`train.lr_decay_every`, `train.lr_decay`) as today's `scheduler` node (none
    where it was off); a train node of the releases before `train.impl` with its default (auto);
    any other config as it is."""
    if not isinstance(config, dict):
        return config
    out = dict(config)
    train = out.get("train")
    if isinstance(train, dict) and "lr_decay_every" in train:
        train = dict(train)
        every, gamma = train.pop("lr_decay_every"), train.pop("lr_decay", 1.0)
        out["train"] = train
        if every and "scheduler" not in out:
            out["scheduler"] = {**read_yaml(conf_dir() / "scheduler" / "step.yaml"), "step_size": every, "gamma": gamma}
    if isinstance(out.get("train"), dict) and "impl" not in out["train"]:   # before train.impl: its default
        out["train"] = {**out["train"], "impl": "auto"}
    former = False
    for part in FORMER_TARGETS:
        node = out.get(part)
        if isinstance(node, dict) and "_target_" not in node and node.get("name") in FORMER_TARGETS[part]:
            out[part], former = OmegaConf.to_container(upgrade(node, part)), True
    if former and "optimizer" not in out:
        out["optimizer"] = read_yaml(conf_dir() / "optimizer" / "adam.yaml")
    return out


def read_run(run_dir: Path) -> tuple[dict, dict, pd.DataFrame | None]:
    """(flattened config, run-level info, metrics or None) of one run folder; never raises for
    a damaged run: the reason goes into info["problem"]."""
    run_dir = Path(run_dir)
    problems, config, overrides, summary = [], {}, [], {}
    try:
        loaded = read_yaml(run_dir / ".hydra" / "config.yaml")
        config = flatten(former_parts_upgraded(loaded or {}))
    except FileNotFoundError:
        problems.append("no .hydra/config.yaml")
    except ReadError as e:
        problems.append(str(e).replace(f"{run_dir}/", "").replace("config.yaml: ", "config.yaml unreadable: ", 1))
    except (ValueError, AttributeError, TypeError):  # YAML, but not a mapping
        problems.append(".hydra/config.yaml unreadable (not a mapping of settings)")
    try:
        overrides = list(read_yaml(run_dir / ".hydra" / "overrides.yaml") or [])
    except (OSError, ValueError, TypeError):
        overrides = None   # no re-run command can be rebuilt
    try:
        summary, bad = check_summary(read_summary(run_dir) or {})
        problems += bad
    except SummaryError as e:
        problems.append(str(e).replace(f"{run_dir}/", ""))
    if "seed" not in config and "seed" in summary:
        config["seed"] = summary["seed"]

    metrics_path = run_dir / "metrics.csv"
    metrics, why = _read_metrics(metrics_path, summary.get("metrics_csv"))
    if why:
        problems.append(why)
    if metrics is None and not problems and summary.get("status") == "diverged":
        problems.append(f"diverged at step {summary.get('diverged_at_step', '?')}, before its first metrics row")
    elif metrics is None and not problems and metrics_path.is_file():
        problems.append("metrics.csv has no rows yet")
    status = summary.get("status") or ("crashed" if os.path.lexists(metrics_path) else "failed")
    if status == "running" and not _alive(run_dir, summary):
        status = "crashed"  # killed (SIGKILL, out of memory, a lost node, ...) before it could say so
    wall = summary.get("wall_time_s")
    if wall is None and metrics is not None and "elapsed_s" in metrics:
        wall = metrics["elapsed_s"].max()
    if wall is not None and "pack" in summary:
        wall = wall / summary["pack"]["size"]     # the pack's time, shared by its members
    info = {"run_dir": str(run_dir), "status": status, "problem": "; ".join(problems),
            "wall_time_s": float(wall) if wall is not None else np.nan,
            "overrides": " ".join(map(str, overrides)) if overrides is not None else None,
            "duplicate_of": ""}
    if isinstance(summary.get("same_results"), list):   # settings its parts declare change nothing
        info["same_results"] = [k for k in summary["same_results"] if isinstance(k, str)]
    declared = summary.get("metrics")
    if isinstance(declared, dict):   # the run's own metrics: {"eval_NAME": {"higher_is_better": bool}}
        info["declared"] = {c: d["higher_is_better"] for c, d in declared.items()
                            if isinstance(d, dict) and isinstance(d.get("higher_is_better"), bool)}
    return config, info, metrics


def _alive(run_dir: Path, summary: dict) -> bool:
    """False when the run's process is known to be gone. Runs that keep a heartbeat (their
    summary has `heartbeat_s`): their run.lock is gone or stale (run/lock.py: a dead pid on
    this host, or no heartbeat for STALE_AFTER_S on any host). Older runs: same host, no such pid."""
    if "heartbeat_s" in summary:
        holder = _read_lock(run_dir)
        return holder is not None and not is_stale(holder, heartbeat_age(run_dir))
    pid, host = summary.get("pid"), summary.get("host")
    if not isinstance(pid, int) or host != socket.gethostname():
        return True  # another machine (a cluster node): cannot tell, trust the summary
    return pid_alive(pid)


def _read_lock(run_dir: Path) -> dict | None:
    """run.lock's content as run/lock.py's read_lock gives it (None: no lock; {}: unreadable),
    read through `read_bytes`: a FIFO or device in its place is not waited on."""
    try:
        holder = json.loads(read_bytes(Path(run_dir) / LOCK, limit=1 << 16))
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError):   # ReadError, JSONDecodeError
        return {}
    return holder if isinstance(holder, dict) else {}


# Config keys that do not change what a run computes from its seed (a label, the threads, the
# device, checkpointing, logging): two runs that differ only in these, with one seed, are the same
# run twice (duplicates), and two runs that differ in them and in the compared key are a pair.
RUN_ONLY_KEYS = ("experiment_name", "device", "train.threads", "train.resume", "train.checkpoint_every",
                 "train.cuda_graphs")
RUN_ONLY_PREFIXES = ("logger.", "sample.", "hydra.")


def is_run_only(key: str) -> bool:
    return key in RUN_ONLY_KEYS or key.startswith(RUN_ONLY_PREFIXES)


def setting(config: dict, leave_out=()) -> tuple:
    """What a run computes, as a hashable key: its config (seed included) without RUN_ONLY keys
    and the keys in `leave_out`; NaN (a key another run has and this one lacks) as None."""
    return tuple(sorted((k, None if _isna(v) else repr(v)) for k, v in config.items()
                        if not is_run_only(k) and k not in leave_out))


def _isna(v) -> bool:
    return isinstance(v, float) and np.isnan(v)


def mark_duplicates(results: list) -> None:
    """Runs with the same setting (`setting`, seed included) are one seed run twice (`-m
    seed=0,0`, a run copied, a sweep repeated): the first with usable metrics is counted, every
    other one keeps its folder in the list with the problem "duplicate of ..." and no metrics."""
    groups: dict[tuple, list[int]] = {}
    for i, (cfg, info, _) in enumerate(results):
        if "seed" in cfg and len(cfg) > 1:   # a config was read (not only summary.json's seed)
            groups.setdefault(setting(cfg), []).append(i)
    for members in (m for m in groups.values() if len(m) > 1):
        kept = next((i for i in members if results[i][2] is not None), members[0])
        for i in members:
            if i == kept:
                continue
            cfg, info, _ = results[i]
            info["duplicate_of"] = results[kept][1]["run_dir"]
            why = (f"duplicate of {info['duplicate_of']} (same settings, seed {cfg['seed']}): "
                   "counted once, as that run")
            info["problem"] = "; ".join(p for p in (why, info["problem"]) if p)
            results[i] = (cfg, info, None)


def without_config(df: pd.DataFrame) -> set[str]:
    """The runs of a `collect` frame whose config could not be read (every config key but the
    seed, which summary.json also holds, is missing): they cannot be put in a group."""
    keys = [k for k in config_keys(df) if k != "seed"]
    runs = df.drop_duplicates("run_dir")
    if not keys:
        return set(runs["run_dir"])
    return set(runs.loc[runs[keys].isna().all(axis=1), "run_dir"])


def collect(paths, progress=None) -> pd.DataFrame:
    """All runs under `paths` as one DataFrame (see the module docstring for its columns).
    Duplicates (`mark_duplicates`) are listed, counted once. `progress(line)`, if given, hears
    how far the reading is every PROGRESS_S seconds.

    df.attrs["config_keys"] and df.attrs["metrics"] name the config and metric columns.
    """
    run_dirs = find_runs(paths)
    size = sum(_size(d / "metrics.csv") for d in run_dirs)
    if progress is not None and size > PROGRESS_BYTES:   # pandas reads ~50 MB/s: say it will take a while
        progress(f"reading {len(run_dirs)} run folder(s), {size / 1e6:,.0f} MB of metrics.csv")
    # one run at a time: libyaml and pandas' C parser do the work, and hold the GIL for most of it
    results, ticker = [], Ticker(progress)
    for i, d in enumerate(run_dirs):
        ticker(lambda: f"reading run folders: {i} of {len(run_dirs)} read")
        results.append(read_run(d))
    mark_duplicates(results)
    for _, info, _ in results:      # the runs' own metrics, ranked as their classes say
        for column, higher in info.get("declared", {}).items():
            declare(column, higher)

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
    df.attrs["same_results"] = sorted({k for _, info, _ in results for k in info.get("same_results", ())})
    return df


PROGRESS_S = 2.0
PROGRESS_BYTES = 64 << 20


def _size(path: Path) -> int:
    """The size of a regular file, 0 for anything else (missing, a FIFO, a device)."""
    try:
        st = os.stat(path)
    except OSError:
        return 0
    return st.st_size if stat.S_ISREG(st.st_mode) else 0


class Ticker:
    """`ticker(make_line)` calls progress(make_line() + elapsed) when PROGRESS_S seconds have
    passed since the start or the last line; nothing when `progress` is None."""

    def __init__(self, progress, every: float = None):
        self.progress, self.every = progress, PROGRESS_S if every is None else every
        self.t0 = self.last = time.perf_counter()

    def __call__(self, make_line) -> None:
        now = time.perf_counter()
        if self.progress is not None and now - self.last >= self.every:
            self.progress(f"{make_line()} ({now - self.t0:.0f} s)")
            self.last = now


def config_keys(df: pd.DataFrame) -> list[str]:
    """The config columns of a `collect` frame."""
    if "config_keys" in df.attrs:
        return [k for k in df.attrs["config_keys"] if k in df.columns]
    return [c for c in df.columns if c not in RUN_COLUMNS and c not in COLUMNS]


def runs_of(df: pd.DataFrame) -> pd.DataFrame:
    """One row per run (the run-level and config columns)."""
    return df.drop_duplicates("run_dir")[config_keys(df) + RUN_COLUMNS].reset_index(drop=True)
