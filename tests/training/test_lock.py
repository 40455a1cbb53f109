"""run.lock: one process per run folder; a lock whose process is gone never blocks a resume."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from rnn_experiments.run import lock as lock_mod
from rnn_experiments.run.lock import LOCK, RunLock, RunLocked, heartbeat_age, read_lock


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_lock(folder, pid, host, age_s=0.0):
    path = folder / LOCK
    path.write_text(json.dumps({"pid": pid, "host": host, "started": "2026-01-01T00:00:00"}) + "\n")
    os.utime(path, (time.time() - age_s, time.time() - age_s))


def test_lock_is_exclusive_and_names_the_holder(tmp_path):
    with RunLock(tmp_path):
        assert read_lock(tmp_path)["pid"] == os.getpid()
        with pytest.raises(RunLocked, match=rf"pid {os.getpid()} on {socket.gethostname()}") as e:
            RunLock(tmp_path).acquire()
        assert "\n" not in str(e.value)
    assert not (tmp_path / LOCK).exists()   # released


def test_stale_lock_of_a_dead_process_on_this_host_is_taken_over(tmp_path):
    write_lock(tmp_path, dead_pid(), socket.gethostname())
    with RunLock(tmp_path):
        assert read_lock(tmp_path)["pid"] == os.getpid()


def test_lock_of_another_host_counts_until_its_heartbeat_is_old(tmp_path):
    write_lock(tmp_path, 12345, "node-17", age_s=60)
    with pytest.raises(RunLocked, match="pid 12345 on node-17"):
        RunLock(tmp_path).acquire()
    write_lock(tmp_path, 12345, "node-17", age_s=lock_mod.STALE_AFTER_S + 60)   # node died
    with RunLock(tmp_path):
        assert read_lock(tmp_path)["host"] == socket.gethostname()


def test_a_live_pid_with_a_frozen_heartbeat_is_stale(tmp_path):
    """pid reuse or a frozen process: an old heartbeat wins over a live pid."""
    write_lock(tmp_path, os.getppid(), socket.gethostname(), age_s=lock_mod.STALE_AFTER_S + 60)
    with RunLock(tmp_path):
        assert read_lock(tmp_path)["pid"] == os.getpid() and heartbeat_age(tmp_path) < 5


def test_heartbeat_touches_the_lock(tmp_path):
    with RunLock(tmp_path, heartbeat_s=0.05):
        os.utime(tmp_path / LOCK, (time.time() - 100, time.time() - 100))
        time.sleep(0.3)
        assert heartbeat_age(tmp_path) < 5


def test_unreadable_lock_is_judged_by_its_age(tmp_path):
    (tmp_path / LOCK).write_bytes(b"\x00garbage")
    with pytest.raises(RunLocked, match=r"pid \? on \?"):
        RunLock(tmp_path).acquire()
    os.utime(tmp_path / LOCK, (0, 0))
    with RunLock(tmp_path):
        pass


def test_a_pid_of_another_user_counts_as_alive_and_no_lock_as_stale(monkeypatch):
    def not_yours(pid, sig):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "kill", not_yours)
    assert lock_mod.pid_alive(12345) is True
    assert lock_mod.is_stale({"pid": 12345, "host": socket.gethostname()}, 1.0) is False
    assert lock_mod.is_stale({}, None) is True


def test_a_run_goes_on_when_its_lock_is_removed_under_it(tmp_path, monkeypatch):
    import threading
    failed = threading.Event()
    real_utime = os.utime

    def utime(path, *a, **k):
        try:
            return real_utime(path, *a, **k)
        except OSError:
            failed.set()
            raise

    monkeypatch.setattr(os, "utime", utime)
    lock = RunLock(tmp_path, heartbeat_s=0.01)
    lock.acquire()
    (tmp_path / LOCK).unlink()          # someone removed it: the heartbeat's utime fails
    assert failed.wait(10)              # a beat met the missing file ...
    time.sleep(0.05)
    assert lock._thread.is_alive() and heartbeat_age(tmp_path) is None   # ... and the heartbeat goes on
    lock.release()
    assert not (tmp_path / LOCK).exists()


def test_a_lock_retaken_between_the_two_tries_is_refused(tmp_path, monkeypatch):
    write_lock(tmp_path, dead_pid(), socket.gethostname())
    real_open = os.open

    def always_taken(path, flags, mode=0o777):   # another run takes the stale lock first, every time
        if str(path).endswith(LOCK) and flags & os.O_EXCL:
            raise FileExistsError(17, "File exists", path)
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", always_taken)
    with pytest.raises(RunLocked, match="another run took this folder's lock .* just now"):
        RunLock(tmp_path).acquire()
