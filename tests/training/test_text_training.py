"""Training the character model: it learns repetitive text, resumes exactly, decays its lr."""
from __future__ import annotations

import pytest
import torch

from conftest import text_overrides
from rnn_experiments.run.checkpoint import CheckpointError
from rnn_experiments.training.loop import train
from rnn_experiments.run.metrics import read_metrics


# ---------------------------------------------------------------- model and training
def test_loss_falls_and_accuracy_rises_on_repetitive_text(make_cfg, tiny_text, tmp_path):
    cfg = make_cfg(*text_overrides(tiny_text, "train.steps=150", "train.log_every=10",
                                   "train.eval_every=50"))
    summary = train(cfg, tmp_path)
    df = read_metrics(tmp_path / "metrics.csv")
    first, last = df.iloc[0], df.iloc[-1]
    assert summary["status"] == "completed"
    assert last["loss"] < 0.3 * first["loss"]
    assert first["accuracy"] < 0.5 < 0.9 < last["accuracy"]
    assert summary["final_eval_accuracy"] > 0.9


def test_training_resumes_from_a_checkpoint_exactly(make_cfg, tiny_text, tmp_path):
    straight = train(make_cfg(*text_overrides(tiny_text, "train.steps=30")), tmp_path / "a")
    train(make_cfg(*text_overrides(tiny_text, "train.steps=15")), tmp_path / "b")
    resumed = train(make_cfg(*text_overrides(tiny_text, "train.steps=30")), tmp_path / "b")
    assert resumed["resumed_from_step"] == 15
    assert resumed["final_loss"] == pytest.approx(straight["final_loss"], rel=1e-6)
    # resuming on another text is refused
    other = tmp_path / "other.txt"
    other.write_text("a completely different text, with other letters! " * 5)
    with pytest.raises(CheckpointError, match="dataset.path"):
        train(make_cfg(*text_overrides(other, "train.steps=40")), tmp_path / "b")


def test_generator_architecture_dropout_and_lr_decay(make_cfg, tiny_text, tmp_path):
    from rnn_experiments.models import build_model, count_params
    cfg = make_cfg("+experiment=grimm_textgen", "model.dropout=0.25", tiny=False)
    V, E, H = 86, 64, 256
    model = build_model(cfg.model, V, V)
    assert model.lstm.num_layers == 2 and model.lstm.dropout == 0.25
    lstm = 4 * H * (E + H) + 8 * H + 4 * H * (2 * H) + 8 * H  # two layers, two biases each
    assert count_params(model) == V * E + lstm + H * V + V
    assert model(torch.zeros(3, 7, dtype=torch.long)).shape == (3, 7, V)

    train(make_cfg(*text_overrides(tiny_text, "train.steps=30", "scheduler=step",
                                   "scheduler.step_size=10")), tmp_path)
    lr = read_metrics(tmp_path / "metrics.csv").set_index("step")["lr"]
    assert lr[5] == pytest.approx(1e-2) and lr[15] == pytest.approx(5e-3) and lr[30] == pytest.approx(1.25e-3)


def test_text_runs_report_bits_per_character(make_cfg, tiny_text, tmp_path):
    import math
    summary = train(make_cfg(*text_overrides(tiny_text, "train.steps=20")), tmp_path)
    evals = read_metrics(tmp_path / "metrics.csv").dropna(subset=["eval_loss"])
    assert len(evals) == 2
    assert (evals["eval_bpc"] == evals["eval_loss"] / math.log(2)).all()
    assert summary["final_eval_bpc"] == pytest.approx(summary["final_eval_loss"] / math.log(2))
