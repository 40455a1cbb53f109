"""The run folder: what makes a folder hold a run, its summary, and how its files are written.

A run folder holds any of RUN_FILES; `rnn-train` writes them (metrics.csv row by row, the others
whole), `rnn-measure-gradients` its gradients.csv and summary.json, the analysis only reads them.
Every file that is written whole goes through `atomic_write`: a temporary file in the same
folder, flushed to disk, then renamed over the old one, so a process killed (or a disk filled)
mid-write leaves the previous version intact, never a truncated file.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import IO, Iterator

# a folder holding one of these holds a run (.hydra/config.yaml: the config it ran with)
RUN_FILES = ("summary.json", "metrics.csv", "checkpoint.pt", ".hydra/config.yaml")

# The run folder's format, written as `format_version` into summary.json and checkpoint.pt. The
# rule for reading older folders (docs/run_folders.md, "Format versions"): a reader takes every
# version up to its own, each as that version defines it; 4 gives the config's `model` and
# `dataset` nodes their `_target_` (a folder before has none: parts.upgrade reads its nodes with
# the built-in class of their name); 3 adds `format_version` to checkpoints (2 wrote `format` in
# summary.json only; 1, no version at all). A key a later version adds is optional for every
# reader; renaming or re-meaning a key needs a new version and a reading rule.
FORMAT_VERSION = 4


def format_version(record: dict) -> int:
    """The format version of a summary.json or checkpoint.pt read as a dict (1: none recorded)."""
    version = record.get("format_version", record.get("format", 1))
    return version if isinstance(version, int) and not isinstance(version, bool) else 1


def is_run_folder(path) -> bool:
    """Whether `path` holds a run (one of RUN_FILES exists there, even as a broken link)."""
    return any(os.path.lexists(Path(path) / f) for f in RUN_FILES)


@contextlib.contextmanager
def atomic_write(path, mode: str = "w") -> Iterator[IO]:
    """`with atomic_write(path) as f: f.write(...)`: `path` is replaced only when the block ends
    without an error: the data fsync'ed, then renamed over `path`, then the folder fsync'ed (the
    rename itself survives a power cut). On an error (disk full, ...) the temporary file is closed
    and removed (its space freed) and OSError names `path`, the OS's reason and what was kept."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8", "newline": ""})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_folder(path.parent)
    except (OSError, RuntimeError) as e:  # torch.save reports a failed write as a RuntimeError
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        kept = f"the previous {path.name} is kept" if path.exists() else "nothing was written"
        error = OSError(f"{path}: cannot write ({_reason(e)}); {kept}")
        error.errno = _errno(e)
        raise error from None


def _fsync_folder(folder: Path) -> None:
    """fsync a folder (its entries: a rename into it); where folders cannot be opened, nothing."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:   # some file systems do not fsync folders
        pass
    finally:
        os.close(fd)


def write_text(path, text: str) -> None:
    """`path` replaced by `text` atomically (see atomic_write)."""
    with atomic_write(path) as f:
        f.write(text)


def _errno(e: BaseException) -> int | None:
    while e is not None:
        if isinstance(e, OSError) and e.errno:
            return e.errno
        e = e.__cause__ or e.__context__
    return None


def _reason(e: BaseException) -> str:
    """The OS's reason (e.g. "No space left on device") where the error chain has one."""
    err = e
    while err is not None:
        if isinstance(err, OSError) and err.strerror:
            return err.strerror
        err = err.__cause__ or err.__context__
    return "the write failed"


class SummaryError(ValueError):
    """summary.json exists but cannot be read as a run's summary (one line naming it)."""


def read_summary(folder) -> dict | None:
    """The run's summary.json as a dict; None where there is none; SummaryError naming the file
    where it is not a regular file, not UTF-8 JSON or not a JSON object."""
    path = Path(folder) / "summary.json"
    if not path.exists() and not path.is_symlink():
        return None
    if not path.is_file():
        raise SummaryError(f"{path}: not a regular file")
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SummaryError(f"{path}: unreadable ({type(e).__name__})") from None
    if not isinstance(summary, dict):
        raise SummaryError(f"{path}: not a JSON object")
    return summary
