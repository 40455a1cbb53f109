"""SIGTERM, SIGHUP and SIGKILL mid-training, exact resume, divergence, bad checkpoints. A signal
from another process and SIGKILL use a real child process; the rest run the command in this
process, which sends itself the signal from inside the training step."""
import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from conftest import ROOT, compose_config, run_command
from rnn_experiments.run.checkpoint import CheckpointError
from rnn_experiments.training.loop import train
from rnn_experiments.run.metrics import TIMING_COLUMNS, read_metrics

RUN = ["dataset.seq_length=4", "model.hidden_size=32", "model.embedding_dim=8", "train.lr=3e-3",
       "train.steps=300", "train.batch_size=32", "train.log_every=10", "train.eval_every=100",
       "train.eval_size=256", "train.threads=1", "device=cpu", "seed=3"]


def start(run_dir, *extra):
    """A training run in a child process, with SIGHUP's default action even where the test suite
    itself runs under nohup (which would otherwise be inherited)."""
    return subprocess.Popen(
        [sys.executable, "-m", "rnn_experiments.train", *RUN, *extra, f"hydra.run.dir={run_dir}"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_DFL))


def wait_for_step(run_dir, step, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        try:
            if read_metrics(run_dir / "metrics.csv").step.max() >= step:
                return
        except (FileNotFoundError, ValueError):
            pass
        time.sleep(0.02)
    raise TimeoutError(f"run did not reach step {step}")


def final_metrics(run_dir):
    return read_metrics(run_dir / "metrics.csv").drop(columns=TIMING_COLUMNS)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    train(compose_config(RUN, tiny=False), out)
    return final_metrics(out)


def status(run_dir):
    return json.loads((run_dir / "summary.json").read_text())


def resume(run_dir, *extra):
    """The same command again in the same folder (in this process): it continues the run."""
    done = run_command("rnn-train", *RUN, *extra, f"hydra.run.dir={run_dir}")
    assert done.code == 0, done.err[-2000:]
    assert status(run_dir)["status"] == "completed"


def signal_at(monkeypatch, step: int, sig: int):
    """This process sends itself `sig` right after training step `step` of the next run."""
    import rnn_experiments.training.loop as loop
    real = loop.make_step

    def make_step(*args, **kwargs):
        take_step, taken = real(*args, **kwargs), [0]

        def step_then_signal(x, y):
            out = take_step(x, y)
            taken[0] += 1
            if taken[0] == step:
                os.kill(os.getpid(), sig)
            return out
        return step_then_signal
    monkeypatch.setattr(loop, "make_step", make_step)


@pytest.mark.slow
def test_sigterm_checkpoints_then_resume_is_exact(tmp_path, uninterrupted):
    run_dir = tmp_path / "run"
    proc = start(run_dir)
    wait_for_step(run_dir, 60, proc)
    proc.send_signal(signal.SIGTERM)
    t0 = time.time()
    proc.communicate(timeout=30)
    assert proc.returncode == 130 and time.time() - t0 < 10
    summary = status(run_dir)
    assert summary["status"] == "interrupted" and summary["signal"] == "SIGTERM"
    assert 60 <= summary["step"] < 300
    assert (run_dir / "checkpoint.pt").exists() and not (run_dir / "run.lock").exists()
    assert read_metrics(run_dir / "metrics.csv").step.max() == summary["step"] - summary["step"] % 10

    resume(run_dir)
    assert status(run_dir)["resumed_from_step"] == summary["step"]
    pd.testing.assert_frame_equal(final_metrics(run_dir), uninterrupted)


@pytest.mark.slow
def test_sigkill_then_resume_from_last_checkpoint_is_exact(tmp_path, uninterrupted):
    run_dir = tmp_path / "run"
    proc = start(run_dir, "train.checkpoint_every=40")
    wait_for_step(run_dir, 100, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert status(run_dir)["status"] == "running"  # what a killed process leaves behind ...
    from rnn_experiments.analysis import collect
    assert set(collect([str(run_dir)]).status) == {"crashed"}  # ... and what the analysis sees
    resume(run_dir, "train.checkpoint_every=40")
    assert status(run_dir)["resumed_from_step"] % 40 == 0 and status(run_dir)["resumed_from_step"] >= 80
    pd.testing.assert_frame_equal(final_metrics(run_dir), uninterrupted)


SMALL = [o for o in RUN if not o.startswith(("train.steps", "train.eval_every"))] + [
    "train.steps=30", "train.eval_every=10", "train.checkpoint_every=10"]


@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
def test_sigterm_in_the_loop_checkpoints_and_the_same_command_resumes_exactly(tmp_path, monkeypatch):
    """The loop's own handling of a signal, in this process (the slow tier sends it from outside):
    SIGTERM after step 13 stops the run at that step with status interrupted, exit 130, the
    checkpoint of step 13 saved and the lock gone; the same command then finishes the run with
    the metrics of a run never stopped."""
    whole = tmp_path / "whole"
    assert run_command("rnn-train", *SMALL, f"hydra.run.dir={whole}").code == 0
    run_dir = tmp_path / "run"
    signal_at(monkeypatch, 13, signal.SIGTERM)
    done = run_command("rnn-train", *SMALL, f"hydra.run.dir={run_dir}")
    assert done.code == 130 and done.err.startswith("rnn-train: interrupted: stopped by SIGTERM at step 13")
    assert (status(run_dir)["status"], status(run_dir)["signal"], status(run_dir)["step"]) == ("interrupted", "SIGTERM", 13)
    assert (run_dir / "checkpoint.pt").exists() and not (run_dir / "run.lock").exists()
    monkeypatch.undo()
    assert run_command("rnn-train", *SMALL, f"hydra.run.dir={run_dir}").code == 0
    assert status(run_dir)["status"] == "completed" and status(run_dir)["step"] == 30
    pd.testing.assert_frame_equal(final_metrics(run_dir), final_metrics(whole))


@pytest.mark.slow   # a whole scenario (tests/conftest.py: tiers)
def test_sighup_checkpoints_like_sigterm_unless_ignored(tmp_path, monkeypatch, uninterrupted):
    """A closed terminal or ssh session (SIGHUP) stops cleanly, and the run resumes exactly; a
    process started to ignore it (nohup) goes on."""
    run_dir = tmp_path / "run"
    signal_at(monkeypatch, 50, signal.SIGHUP)
    done = run_command("rnn-train", *RUN, f"hydra.run.dir={run_dir}")
    assert done.code == 130 and done.err.startswith("rnn-train: interrupted: stopped by SIGHUP at step 50")
    assert status(run_dir)["signal"] == "SIGHUP" and status(run_dir)["step"] == 50
    assert (run_dir / "checkpoint.pt").exists() and not (run_dir / "run.lock").exists()
    monkeypatch.undo()
    resume(run_dir)
    pd.testing.assert_frame_equal(final_metrics(run_dir), uninterrupted)

    ignored = tmp_path / "nohup"
    signal_at(monkeypatch, 50, signal.SIGHUP)
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)   # as nohup starts a process
    try:
        done = run_command("rnn-train", *RUN, "train.steps=100", f"hydra.run.dir={ignored}")
    finally:
        signal.signal(signal.SIGHUP, before)
    assert done.code == 0 and status(ignored)["status"] == "completed" and status(ignored)["step"] == 100


def test_absurd_learning_rate_diverges(tmp_path):
    cfg = compose_config(["train.lr=3e37", "train.steps=50", "train.checkpoint_every=1"])
    summary = train(cfg, tmp_path)
    assert summary["status"] == "diverged"
    assert 1 < summary["diverged_at_step"] <= 50
    assert status(tmp_path)["status"] == "diverged"
    # the last good checkpoint is kept: it is from before the divergence
    import torch
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["step"] == summary["diverged_at_step"] - 1


def test_corrupt_checkpoint_is_a_clear_error_and_is_left_alone(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="checkpoint.pt: cannot load checkpoint"):
        train(compose_config(), tmp_path)
    assert (tmp_path / "checkpoint.pt").read_bytes() == b"not a checkpoint"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]   # nothing else written


def test_a_dangling_checkpoint_link_is_refused_not_replaced(tmp_path):
    (tmp_path / "checkpoint.pt").symlink_to(tmp_path / "gone.pt")
    with pytest.raises(CheckpointError, match="checkpoint.pt: a broken symbolic link"):
        train(compose_config(), tmp_path)
    assert (tmp_path / "checkpoint.pt").is_symlink() and sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]


def test_resuming_with_another_model_is_refused(tmp_path):
    train(compose_config(), tmp_path)
    with pytest.raises(CheckpointError, match="model.hidden_size=16"):
        train(compose_config(["model.hidden_size=32"]), tmp_path)


@pytest.mark.slow   # a process of its own under a file-size limit
def test_a_metrics_file_the_disk_refuses_ends_the_run_failed_with_the_file_named(tmp_path):
    """RLIMIT_FSIZE (the file-size limit a full disk or a quota also hits): metrics.csv cannot
    grow past 8000 bytes; the run stops with one line naming the file, and summary.json says
    `failed` with that error (it stayed `running`)."""
    import subprocess
    import sys
    from conftest import TINY
    code = ("import resource, sys\n"
            "resource.setrlimit(resource.RLIMIT_FSIZE, (8000, resource.RLIM_INFINITY))\n"
            "from rnn_experiments.cli.rnn_train import main\n"
            "sys.argv = ['rnn-train', *sys.argv[1:]]\nmain()\n")
    done = subprocess.run([sys.executable, "-c", code, *TINY, "train.steps=300", "train.log_every=1", "train.eval_every=1000",
                           f"hydra.run.dir={tmp_path / 'run'}"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1] == (f"rnn-train: error: {tmp_path / 'run' / 'metrics.csv'}: cannot "
                                                    "write (File too large)")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "failed" and "metrics.csv: cannot write (File too large)" in summary["error"]
