"""One process at a time in a run folder: `run.lock`, created with O_EXCL, naming pid and host.

    with RunLock(out_dir):      # RunLocked (one line naming the pid and host) if another run holds it
        ...                     # a thread touches run.lock every HEARTBEAT_S seconds meanwhile

The lock is removed when the run ends (completed, failed, interrupted, diverged). A process
killed without a word (SIGKILL, the out-of-memory killer, a node that went down) leaves it
behind; such a lock is stale, and taken over, when

* its host is this host and its pid is not running, or
* its heartbeat (the file's modification time) is older than STALE_AFTER_S: the process is gone
  or frozen on another host (a cluster node), where its pid cannot be checked.

`heartbeat_age(out_dir)` is what the analysis reads to call a `running` run on another host
crashed (rnn_experiments/analysis/collect.py).
"""
from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

LOCK = "run.lock"
HEARTBEAT_S = 30.0
STALE_AFTER_S = 10 * HEARTBEAT_S


class RunLocked(RuntimeError):
    """Another live process runs in this folder; the message names its pid and host."""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_lock(out_dir) -> dict | None:
    """The lock's content ({"pid", "host", "started"}; {} if unreadable), None if there is none."""
    try:
        return json.loads((Path(out_dir) / LOCK).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}


def heartbeat_age(out_dir) -> float | None:
    """Seconds since the lock's last heartbeat, None if there is no lock."""
    try:
        return time.time() - (Path(out_dir) / LOCK).stat().st_mtime
    except FileNotFoundError:
        return None


def is_stale(holder: dict, age: float | None) -> bool:
    """A lock whose process is known to be gone (see the module doc). A heartbeat in the future
    (another host's clock ahead of ours) counts as fresh: its age is not known."""
    if age is None:
        return True
    if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int) \
            and not pid_alive(holder["pid"]):
        return True
    return age > STALE_AFTER_S


class RunLock:
    def __init__(self, out_dir, heartbeat_s: float = HEARTBEAT_S):
        self.path = Path(out_dir) / LOCK
        self.heartbeat_s = heartbeat_s
        self.me = {"pid": os.getpid(), "host": socket.gethostname(),
                   "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> None:
        for _ in range(2):   # the second try after removing a stale lock
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder, age = read_lock(self.path.parent) or {}, heartbeat_age(self.path.parent)
                if not is_stale(holder, age):
                    raise RunLocked(
                        f"{self.path.parent}: another run is using this folder (pid {holder.get('pid', '?')} "
                        f"on {holder.get('host', '?')}, since {holder.get('started', '?')}; lock {self.path}"
                        + (f"; its heartbeat is {-age:,.0f} s in the future: the clocks of the two hosts "
                           "differ" if age is not None and age < -1 else "")
                        + "); wait for it or use another run folder, or, if no run is using it, remove "
                        f"{self.path} to take the folder over") from None
                if (read_lock(self.path.parent) or {}) == holder:   # still the stale one: take it over
                    self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(self.me) + "\n")
            self._thread = threading.Thread(target=self._beat, name="run.lock heartbeat", daemon=True)
            self._thread.start()
            return
        raise RunLocked(f"{self.path.parent}: another run took this folder's lock {self.path} just now")

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                os.utime(self.path)
            except OSError:  # removed or unwritable: the run goes on; the analysis will judge
                pass

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if read_lock(self.path.parent) == self.me:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
