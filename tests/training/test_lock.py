"""run.lock: one process per run folder; a lock whose process is gone never blocks a resume."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from rnn_experiments.training import lock as lock_mod
from rnn_experiments.training.lock import LOCK, RunLock, RunLocked, heartbeat_age, read_lock


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
