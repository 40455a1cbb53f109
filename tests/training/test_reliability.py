"""Real processes: SIGTERM and SIGKILL mid-training, exact resume, divergence, bad checkpoints."""
import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from conftest import ROOT, compose_config
from rnn_experiments.training.checkpoint import CheckpointError
from rnn_experiments.training.loop import train
from rnn_experiments.training.metrics import TIMING_COLUMNS, read_metrics

RUN = ["dataset.seq_length=4", "model.hidden_size=32", "model.embedding_dim=8", "train.lr=3e-3",
       "train.steps=1200", "train.batch_size=32", "train.log_every=10", "train.eval_every=100",
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
        time.sleep(0.05)
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


@pytest.mark.slow
def test_sigterm_checkpoints_then_resume_is_exact(tmp_path, uninterrupted):
    run_dir = tmp_path / "run"
    proc = start(run_dir)
    wait_for_step(run_dir, 200, proc)
    proc.send_signal(signal.SIGTERM)
    t0 = time.time()
    proc.communicate(timeout=30)
    assert proc.returncode == 130 and time.time() - t0 < 10
    summary = status(run_dir)
    assert summary["status"] == "interrupted" and summary["signal"] == "SIGTERM"
    assert 200 <= summary["step"] < 1200
    assert (run_dir / "checkpoint.pt").exists()
    assert read_metrics(run_dir / "metrics.csv").step.max() == summary["step"] - summary["step"] % 10

    resumed = start(run_dir)  # the same command in the same folder continues the run
    _, err = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, err[-2000:]
    assert status(run_dir)["status"] == "completed"
    assert status(run_dir)["resumed_from_step"] == summary["step"]
    pd.testing.assert_frame_equal(final_metrics(run_dir), uninterrupted)


@pytest.mark.slow
def test_sigkill_then_resume_from_last_checkpoint_is_exact(tmp_path, uninterrupted):
    run_dir = tmp_path / "run"
    proc = start(run_dir, "train.checkpoint_every=70")
    wait_for_step(run_dir, 300, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert status(run_dir)["status"] == "running"  # what a killed process leaves behind ...
    from rnn_experiments.analysis import collect
    assert set(collect([str(run_dir)]).status) == {"crashed"}  # ... and what the analysis sees
    resumed = start(run_dir, "train.checkpoint_every=70")
    _, err = resumed.communicate(timeout=180)
    assert resumed.returncode == 0, err[-2000:]
    assert status(run_dir)["resumed_from_step"] % 70 == 0
    pd.testing.assert_frame_equal(final_metrics(run_dir), uninterrupted)


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


def test_resuming_with_another_model_is_refused(tmp_path):
    train(compose_config(), tmp_path)
    with pytest.raises(CheckpointError, match="model.hidden_size=16"):
        train(compose_config(["model.hidden_size=32"]), tmp_path)


@pytest.mark.slow
def test_sighup_checkpoints_like_sigterm_unless_ignored(tmp_path):
    """A closed terminal or ssh session (SIGHUP) stops cleanly; under nohup it is ignored."""
    run_dir = tmp_path / "run"
    proc = start(run_dir)
    wait_for_step(run_dir, 50, proc)
    proc.send_signal(signal.SIGHUP)
    proc.communicate(timeout=60)
    assert proc.returncode == 130 and status(run_dir)["signal"] == "SIGHUP"
    assert (run_dir / "checkpoint.pt").exists() and not (run_dir / "run.lock").exists()

    ignored = tmp_path / "nohup"
    proc = subprocess.Popen(["nohup", sys.executable, "-m", "rnn_experiments.train", *RUN, "train.steps=300",
                             f"hydra.run.dir={ignored}"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for_step(ignored, 50, proc)
    proc.send_signal(signal.SIGHUP)
    proc.communicate(timeout=180)
    assert proc.returncode == 0 and status(ignored)["status"] == "completed"
