"""Errors caused by what the user gave us (a config value, a file, a folder), not by a bug.

Every command prints one of these as a single line naming the key or path and exits with
status 2; nothing on disk has been changed when one is raised before a run starts.
"""
from __future__ import annotations

import re
from typing import Any


class ConfigError(ValueError):
    """A config value is outside what it may be; the message is one line naming the key."""


def check(ok: bool, key: str, value: Any, allowed: str) -> None:
    """Raise ConfigError("key=value is invalid: expected allowed") unless `ok`."""
    if not ok:
        raise ConfigError(f"{key}={value!r} is invalid: expected {allowed}")


# OmegaConf's and Hydra's lines that repeat what the first line says or only point elsewhere
_DETAIL = ("full_key:", "object_type=", "reference_type=", "See https://", "Set the environment variable")


def one_line(e: BaseException) -> str:
    """An error (Hydra's and OmegaConf's are several lines) as one line: its own lines and its
    cause's, without OmegaConf's full_key/object_type lines, Hydra's hints and search path."""
    lines: list[str] = []
    for err in (e, e.__cause__):
        for line in str(err or "").splitlines():
            line = line.strip().rstrip(".")
            if line.startswith("Config search path"):
                break
            if line and not line.startswith(_DETAIL) and line not in lines:
                lines.append(line)
    return re.sub(r":; ", ": ", "; ".join(lines)) or type(e).__name__


def say(*args, **kwargs) -> None:
    """print() to stdout for a reader that may go away (`rnn-train -m ... | head`): after a broken
    pipe, stdout is sent to os.devnull and the command goes on (a sweep's analysis, rnn-analyze's
    files are still written); what it had to say is not an error of the work."""
    import os
    import sys

    try:
        print(*args, **kwargs)
        sys.stdout.flush()
    except BrokenPipeError:
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):   # no real file behind sys.stdout
            sys.stdout = open(os.devnull, "w")
