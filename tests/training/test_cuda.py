"""The GPU path of training (Triton kernels, CUDA-graph steps, device-side metrics), evaluation
and generation; every test is skipped where CUDA is absent (CI is CPU-only)."""
from __future__ import annotations

import os
import signal

import pandas as pd
import pytest
import torch

from conftest import compose_config
from rnn_experiments.training.loop import train
from rnn_experiments.run.metrics import TIMING_COLUMNS, read_metrics

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

RUN = ["dataset.seq_length=4", "model.hidden_size=32", "model.embedding_dim=8", "train.lr=3e-3",
       "train.steps=60", "train.batch_size=32", "train.log_every=5", "train.eval_every=20",
       "train.eval_size=128", "train.checkpoint_every=0", "seed=3"]


def metrics(run_dir):
    return read_metrics(run_dir / "metrics.csv").drop(columns=TIMING_COLUMNS)


@pytest.fixture(autouse=True)
def fp32_matmuls():
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


@pytest.mark.parametrize("model", ["lstm", "peep_lstm", "bilstm"])
def test_graphed_steps_equal_eager_steps_and_the_cpu(tmp_path, model):
    runs = {}
    for name, extra in (("graphs", ["device=cuda"]), ("eager", ["device=cuda", "train.cuda_graphs=false"]),
                        ("cpu", ["device=cpu", "train.threads=1"])):
        summary = train(compose_config(RUN + [f"model={model}", *extra], tiny=False), tmp_path / name)
        assert summary["status"] == "completed" and summary["device"].startswith(extra[0][7:])
        runs[name] = metrics(tmp_path / name)
    pd.testing.assert_frame_equal(runs["graphs"], runs["eager"], rtol=1e-4)   # the same kernels
    # the CPU sums in another order: losses agree closely, accuracies up to a few flipped answers
    pd.testing.assert_series_equal(runs["graphs"]["loss"], runs["cpu"]["loss"], rtol=1e-2)
    assert (runs["graphs"]["accuracy"] - runs["cpu"]["accuracy"]).abs().max() < 0.05


def test_interrupt_and_resume_on_the_gpu_is_exact(tmp_path):
    cfg = compose_config(RUN + ["device=cuda", "train.checkpoint_every=20"], tiny=False)
    train(cfg, tmp_path / "straight")

    def sigterm_at_33(step, model, data, out_dir):
        if step == 33:
            os.kill(os.getpid(), signal.SIGTERM)   # as `kill PID` would: the loop checkpoints

    with pytest.raises(KeyboardInterrupt, match="SIGTERM at step 33"):
        train(cfg, tmp_path / "resumed", hooks=[sigterm_at_33])
    summary = train(cfg, tmp_path / "resumed")
    assert summary["resumed_from_step"] == 33 and summary["status"] == "completed"
    pd.testing.assert_frame_equal(metrics(tmp_path / "resumed"), metrics(tmp_path / "straight"), rtol=1e-5)


def test_divergence_is_caught_with_graphs_and_keeps_the_last_good_checkpoint(tmp_path):
    cfg = compose_config(RUN + ["device=cuda", "train.lr=3e37", "train.checkpoint_every=1"], tiny=False)
    summary = train(cfg, tmp_path)
    assert summary["status"] == "diverged" and 1 < summary["diverged_at_step"] <= 60
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=False)["step"] == summary["diverged_at_step"] - 1


def test_greedy_generation_on_the_gpu_equals_the_cpu():
    from rnn_experiments.data.text import Vocab
    from rnn_experiments.generation import generate
    from rnn_experiments.models.generator import TextGenerator
    torch.manual_seed(0)
    model = TextGenerator(vocab_size=11, embedding_dim=8, hidden_size=16, num_layers=2,
                          init="kaiming_normal").eval()
    vocab = Vocab("abcdefghijk")
    cpu = generate(model, vocab, ["fed", "a"], 40, "greedy")
    assert generate(model.cuda(), vocab, ["fed", "a"], 40, "greedy") == cpu
