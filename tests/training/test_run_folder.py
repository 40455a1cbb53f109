"""A run folder is never damaged: a refused run writes nothing into a folder holding a run, a
full disk loses nothing already saved, a damaged checkpoint is a one-line error."""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from conftest import TINY, compose_config, run_command, text_overrides
from rnn_experiments.errors import ConfigError
from rnn_experiments.run import checkpoint
from rnn_experiments.run.checkpoint import CheckpointError
from rnn_experiments.run.lock import LOCK, RunLock, RunLocked
from rnn_experiments.training.loop import train
from rnn_experiments.training.setup import capped_threads


def digest(folder) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def finished_once(tmp_path_factory):
    run = tmp_path_factory.mktemp("finished") / "run"
    train(compose_config(), run)
    return run


@pytest.fixture
def finished(finished_once, tmp_path):
    """A copy of a completed tiny run (20 steps)."""
    return Path(shutil.copytree(finished_once, tmp_path / "run"))


@pytest.mark.parametrize("override, match", [
    ("seed=1", "made with seed=0, but this run has seed=1"),
    ("model.hidden_size=32", "model.hidden_size=16"),
    ("train.lr=0.01", "train.lr"),
    ("train.steps=10", "at step 20, beyond train.steps=10"),
])
def test_refused_run_leaves_a_finished_run_as_it_was(finished, override, match):
    before = digest(finished)
    with pytest.raises(CheckpointError, match=match) as e:
        train(compose_config([override]), finished)
    assert "\n" not in str(e.value)
    assert digest(finished) == before


def test_refused_run_in_a_fresh_folder_records_its_error(tmp_path):
    with pytest.raises(ConfigError):
        train(compose_config(text_overrides(tmp_path / "missing.txt")), tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "failed" and "missing.txt: no such file" in summary["error"]
    assert not (tmp_path / "run" / LOCK).exists()


def test_run_refused_while_another_holds_the_folder(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(RunLocked, match="another run is using this folder"):
            train(compose_config(), tmp_path)
        assert sorted(p.name for p in tmp_path.iterdir()) == [LOCK]


def test_checkpoint_without_rng_state_is_refused_and_kept(finished):
    state = torch.load(finished / "checkpoint.pt", weights_only=False)
    del state["rng"]
    torch.save(state, finished / "checkpoint.pt")
    before = digest(finished)
    with pytest.raises(CheckpointError, match="incomplete checkpoint \\(no 'rng'\\)"):
        train(compose_config(["train.steps=40"]), finished)
    assert digest(finished) == before


def test_resuming_on_a_changed_text_with_the_same_characters_is_refused(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat. " * 40)
    train(compose_config(text_overrides(text)), tmp_path / "run")
    text.write_text("the mat sat on the cat. " * 40)   # same vocabulary, another text
    with pytest.raises(ConfigError, match="the text differs from the one the checkpoint was trained on"):
        train(compose_config(text_overrides(text, "train.steps=40")), tmp_path / "run")


def test_disk_full_while_checkpointing_keeps_the_last_checkpoint(finished, monkeypatch):
    run = finished
    good = (run / "checkpoint.pt").read_bytes()
    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)   # a partial file, then the write fails
        raise RuntimeError("[enforce fail at inline_container.cc:603] . PytorchStreamWriter failed "
                           "writing file data/3: file write failed")

    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    good_best = (run / "checkpoint_best.pt").read_bytes()
    # the first save at step 30 is checkpoint_best.pt's, if the held-out loss fell, else checkpoint.pt's
    with pytest.raises(OSError, match=r"checkpoint(_best)?.pt: cannot write \(the write failed\); the "
                                      r"previous checkpoint(_best)?.pt is kept") as e:
        train(compose_config(["train.checkpoint_every=10", "train.steps=40"]), run)   # at step 30
    assert "\n" not in str(e.value)
    assert (run / "checkpoint.pt").read_bytes() == good
    assert (run / "checkpoint_best.pt").read_bytes() == good_best
    assert sorted(p.name for p in run.iterdir() if p.name.endswith(".tmp")) == []
    assert json.loads((run / "summary.json").read_text())["status"] == "failed"


@pytest.mark.parametrize("errno, reason, status", [(28, "No space left on device", "completed"),
                                                  (5, "Input/output error", "running")])
def test_summary_on_a_full_disk_is_written_in_place_and_never_partial(tmp_path, monkeypatch, errno, reason, status):
    """No room for a new summary.json beside the old one (ENOSPC): the old one is overwritten in
    place, so the run's end is recorded; any other failure keeps the old one and says so."""
    from rnn_experiments.run import summary as summary_mod
    summary_mod.write_summary(tmp_path, {"status": "running"})

    def fails(src, dst):
        raise OSError(errno, reason)

    monkeypatch.setattr(summary_mod.os, "replace", fails)
    if status == "running":
        with pytest.raises(OSError, match=f"summary.json: cannot write \\({reason}\\)"):
            summary_mod.write_summary(tmp_path, {"status": "completed"})
    else:
        summary_mod.write_summary(tmp_path, {"status": "completed", "step": 20})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == status


def test_threads_are_capped_at_the_cores(caplog):
    from rnn_experiments.training.resources import available_cores
    with caplog.at_level(logging.WARNING):
        assert capped_threads(1000) == available_cores()
    assert "train.threads=1000 is more than" in caplog.text
    assert capped_threads(1) == 1


@pytest.fixture
def small_disk(tmp_path):
    """A 300 KiB tmpfs (needs root and the right to mount; skipped elsewhere)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_real_full_disk_is_one_line_and_keeps_the_last_checkpoint(small_disk):
    run = small_disk / "run"   # checkpoint ~260 KB: the one at step 10 fits, the next one does not
    proc = run_command("rnn-train", *TINY, "model.hidden_size=64", "train.checkpoint_every=10",
                       "train.eval_every=20", f"hydra.run.dir={run}")
    assert proc.code == 1     # at step 20 the evaluation's checkpoint_best.pt does not fit
    assert proc.err == (f"rnn-train: error: {run}/checkpoint_best.pt: cannot write (No space left on "
                           "device); nothing was written\n")
    assert sorted(p.name for p in run.iterdir()) == [".hydra", "checkpoint.pt", "metrics.csv",
                                                     "summary.json"]   # (nothing logged yet: no train.log)
    assert torch.load(run / "checkpoint.pt", weights_only=False)["step"] == 10
    assert json.loads((run / "summary.json").read_text())["status"] == "failed"


@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
def test_a_disk_that_fills_mid_run_records_the_failure_in_one_line(small_disk):
    """The disk fills between two metrics rows (another process's file): the next row cannot be
    written; the run ends `failed` with the reason in summary.json (written in place), one line,
    exit 1, and the log says nothing in "--- Logging error ---" blocks."""
    import rnn_experiments.training.loop as loop
    run = small_disk / "run"
    real = loop.make_step

    def make_step(*args, **kwargs):
        step, taken = real(*args, **kwargs), [0]

        def fill_after_step_7(x, y):
            taken[0] += 1
            if taken[0] == 7:
                with open(small_disk / "filler", "wb") as f, contextlib.suppress(OSError):
                    while True:
                        f.write(b"\0" * 4096)
                        f.flush()
            return step(x, y)
        return fill_after_step_7
    loop.make_step, before = make_step, loop.make_step
    try:
        proc = run_command("rnn-train", *TINY, f"hydra.run.dir={run}")
    finally:
        loop.make_step = before
    assert proc.code == 1 and proc.err.count("\n") == 1, proc.err
    assert "No space left on device" in proc.err and "Logging error" not in proc.err + proc.out
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "failed" and "No space left on device" in summary["error"]


def test_checkpoint_with_damaged_weights_is_one_line_and_kept(finished):
    state = torch.load(finished / "checkpoint.pt", weights_only=False)
    state["model"] = {k: v[:1] for k, v in state["model"].items()}   # wrong shapes
    torch.save(state, finished / "checkpoint.pt")
    before = digest(finished)
    with pytest.raises(CheckpointError, match="damaged checkpoint \\(RuntimeError: Error\\(s\\) in loading") as e:
        train(compose_config(), finished)
    assert "\n" not in str(e.value) and digest(finished) == before


@pytest.mark.parametrize("content, message", [
    (b"{broken", "unreadable (JSONDecodeError)"),
    (b"\xff\xfe{}", "unreadable (UnicodeDecodeError)"),
    (b"[1, 2]", "not a JSON object"),
    (None, "not a regular file"),
])
def test_a_summary_that_is_not_a_runs_summary_is_named(tmp_path, content, message):
    from rnn_experiments.run.folder import SummaryError, read_summary
    path = tmp_path / "summary.json"
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(SummaryError) as e:
        read_summary(tmp_path)
    assert str(e.value) == f"{path}: {message}"
    assert read_summary(tmp_path / "nothing") is None


def test_an_atomic_write_reaches_the_disk_before_and_after_its_rename(tmp_path, monkeypatch):
    """atomic_write: the data fsync'ed before the rename, the folder fsync'ed after it (else a
    power cut can leave the old file, or an empty new one, under the name)."""
    import os
    import stat as st
    from rnn_experiments.run.folder import atomic_write
    events = []
    fsync, replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync folder" if st.S_ISDIR(os.fstat(fd).st_mode)
                                                               else "fsync file"), fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append("rename"), replace(a, b))[1])
    with atomic_write(tmp_path / "x.json") as f:
        f.write("{}")
    assert events == ["fsync file", "rename", "fsync folder"]
    assert (tmp_path / "x.json").read_text() == "{}"
