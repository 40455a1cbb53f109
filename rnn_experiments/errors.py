"""Errors caused by what the user gave us (a config value, a file, a folder), not by a bug.

Every command prints one of these as a single line naming the key or path and exits with
status 2; nothing on disk has been changed when one is raised before a run starts.
"""
from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """A config value is outside what it may be; the message is one line naming the key."""


def check(ok: bool, key: str, value: Any, allowed: str) -> None:
    """Raise ConfigError("key=value is invalid: expected allowed") unless `ok`."""
    if not ok:
        raise ConfigError(f"{key}={value!r} is invalid: expected {allowed}")
