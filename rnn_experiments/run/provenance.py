"""What made a run, for summary.json: the code's git commit and whether its checkout had
uncommitted changes, the versions of the packages that decide the numbers, and the command line.

    git       {"commit": "<sha>", "dirty": true|false}, only when the package runs from a git
              checkout (a clone, editable install or not); absent for an installed wheel. `dirty`
              means tracked files differ from the commit (as `git describe --dirty`); untracked
              files, such as outputs/, do not count.
    versions  python, torch, hydra-core, omegaconf, numpy and rnn-experiments (null if that
              distribution is not installed, e.g. the source tree run without `pip install`)
    command   the command line that started the run, secrets redacted (redact.py). The entry
              points call `remember_command()` first, which puts it in the environment, so the
              jobs of a sweep started in other processes (joblib, submitit) record the sweep's
              command, not their worker's.
    parts     per part of the run (model, dataset, optimizer): its class, the settings that class
              takes with their defaults, the version of the distribution that installed it (null:
              a folder on PYTHONPATH) and, for code outside this package, the git state of the
              checkout its file is in (absent if none)
    sweep_id  (in summary.json beside these) "host:pid:ns" of the sweep whose job made the run,
              None for a single run; set in the environment when a sweep starts
              (`start_sweep`), so every job's process inherits it. A sweep's end check counts the
              runs that carry its id.
"""
from __future__ import annotations

import importlib.metadata
import os
import platform
import shlex
import socket
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path

from rnn_experiments.parts import part_nodes, signature_of, target_of
from rnn_experiments.run.redact import redact_command

COMMAND_ENV = "RNN_EXPERIMENTS_COMMAND"
SWEEP_ENV = "RNN_EXPERIMENTS_SWEEP_ID"
SWEPT_ENV = "RNN_EXPERIMENTS_SWEPT_KEYS"
PACKAGES = ("torch", "hydra-core", "omegaconf", "numpy", "rnn-experiments")


def provenance() -> dict:
    """{"git": ... (from a checkout only), "versions": ..., "command": ...}."""
    out = {"versions": versions(), "command": command_line()}
    git = git_state()
    if git is not None:
        out = {"git": git, **out}
    return out


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def remember_command(argv: list[str] | None = None) -> str:
    """Put this process's command line in the environment (inherited by sweep workers)."""
    os.environ[COMMAND_ENV] = _command(sys.argv if argv is None else argv)
    return os.environ[COMMAND_ENV]


def command_line() -> str:
    """The command that started the run: the entry point's (remember_command), else this
    process's; the values of secret overrides (`api_key=...`) redacted."""
    return redact_command(os.environ.get(COMMAND_ENV) or _command(sys.argv))


def _command(argv: list[str]) -> str:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name and spec.name != "__main__":   # python -m package.module
        return shlex.join([sys.executable, "-m", spec.name.removesuffix(".__main__"), *argv[1:]])
    return shlex.join(argv)


@lru_cache(maxsize=1)
def git_state() -> dict | None:
    """{"commit", "dirty"} of the git checkout this package's code is tracked in; None if it is
    not (an installed wheel, even in a venv inside some repository) or git is unavailable."""
    package = Path(__file__).resolve().parents[1]   # rnn_experiments/ (this file is run/provenance.py)
    return git_state_of(package / "config.py")


@lru_cache(maxsize=64)
def git_state_of(file: Path) -> dict | None:
    """{"commit", "dirty"} of the git checkout that tracks `file`; None if none does."""
    root = Path(file).parent

    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30)

    try:
        if not root.is_dir() or git("ls-files", "--error-unmatch", Path(file).name).returncode != 0:
            return None
        commit = git("rev-parse", "HEAD")
        status = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    if commit.returncode != 0 or status.returncode != 0:
        return None
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}


@lru_cache(maxsize=1)
def _distributions() -> dict:
    return importlib.metadata.packages_distributions()   # top-level module -> distributions (~0.1 s)


def parts_provenance(cfg) -> dict:
    """{part: {"target", "settings", "version", ["git"]}} for the parts of `cfg` (the module doc)."""
    out = {}
    for key, node in part_nodes(cfg):
        if "_target_" not in node:
            continue
        cls = target_of(node, key)
        top = cls.__module__.split(".")[0]
        dists = _distributions().get(top, [])
        version = None
        if dists:
            try:
                version = importlib.metadata.version(dists[0])
            except importlib.metadata.PackageNotFoundError:
                pass
        record = {**signature_of(node, key), "version": version}
        module = sys.modules.get(cls.__module__)
        file = getattr(module, "__file__", None) if top not in ("rnn_experiments", "torch") else None
        git = git_state_of(Path(file).resolve()) if file else None
        if git is not None:
            record["git"] = git
        out[key] = record
    return out


def start_sweep() -> str:
    """Name the sweep this process starts: a new id in the environment (inherited by its jobs)."""
    os.environ[SWEEP_ENV] = f"{socket.gethostname()}:{os.getpid()}:{time.time_ns()}"
    return os.environ[SWEEP_ENV]


def end_sweep() -> str | None:
    """Forget this process's sweep id (and its swept keys); returns it."""
    os.environ.pop(SWEPT_ENV, None)
    return os.environ.pop(SWEEP_ENV, None)


def set_swept(keys) -> None:
    """The keys whose values differ between the jobs of the sweep this process starts (inherited
    by its jobs): what tells its runs apart, e.g. in a tracker's run names."""
    os.environ[SWEPT_ENV] = ",".join(keys)


def swept() -> list[str] | None:
    """The keys set_swept named for this job's sweep; None where none were named."""
    value = os.environ.get(SWEPT_ENV)
    return None if value is None else [k for k in value.split(",") if k]


def sweep_id() -> str | None:
    """The id of the sweep this process runs a job of (None outside a sweep)."""
    return os.environ.get(SWEEP_ENV)
