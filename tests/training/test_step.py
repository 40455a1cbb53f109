"""The training step and the held-out evaluation against what they claim: the gradient is clipped
to max_norm, and the held-out loss is the mean NLL over every prediction (every character, for
text), whatever the evaluation chunk."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from conftest import compose_config, text_overrides
from rnn_experiments.training.setup import setup
from rnn_experiments.training.step import evaluate, make_step


def grad_norm(model) -> float:
    return math.sqrt(sum(float(p.grad.pow(2).sum()) for p in model.parameters() if p.grad is not None))


@pytest.mark.parametrize("max_norm", [1e-3, 0.05])
def test_the_step_clips_the_gradient_norm_to_max_norm(max_norm):
    """After the step the loop takes (make_step), the gradient Adam used has norm max_norm when
    the raw gradient is larger: at initialisation it is ~1 here."""
    cfg = compose_config(["train.batch_size=32", f"train.max_norm={max_norm}"])
    device, data, model, optimizer = setup(cfg)
    x, y = data.sample(32)
    raw = model(x)                                              # the unclipped gradient, for reference
    F.nll_loss(raw, y).backward()
    unclipped = grad_norm(model)
    assert unclipped > 10 * max_norm
    step = make_step(model, optimizer, cfg.train.max_norm, device)
    step(x, y)
    assert grad_norm(model) == pytest.approx(max_norm, rel=1e-4)


def test_a_large_max_norm_leaves_the_gradient_as_it_is():
    cfg = compose_config(["train.batch_size=32", "train.max_norm=1e6"])
    device, data, model, optimizer = setup(cfg)
    x, y = data.sample(32)
    F.nll_loss(model(x), y).backward()
    unclipped = grad_norm(model)
    make_step(model, optimizer, cfg.train.max_norm, device)(x, y)
    assert grad_norm(model) == pytest.approx(unclipped, rel=1e-5)


@pytest.mark.parametrize("chunk", [5, 1024])
def test_text_held_out_loss_is_per_character(tiny_text, chunk):
    """eval_loss of a text model = -(1/N) sum over all N = windows x T characters of log p(next),
    computed by hand; the same with an evaluation chunk smaller than the held-out set."""
    cfg = compose_config(text_overrides(tiny_text, "train.eval_size=13"))
    _, data, model, _ = setup(cfg)
    x, y = data.eval_x, data.eval_y                             # (13, T), (13, T)
    assert x.shape == (13, 12)
    with torch.no_grad():
        log_probs = model(x)                                    # (13, T, V)
    picked = log_probs.gather(-1, y.unsqueeze(-1)).squeeze(-1)  # (13, T) log p of each next character
    by_hand = -picked.sum().item() / y.numel()
    accuracy = (log_probs.argmax(-1) == y).double().mean().item()
    got_accuracy, got_loss = evaluate(model, x, y, chunk=chunk)
    assert got_loss == pytest.approx(by_hand, rel=1e-6)
    assert got_accuracy == pytest.approx(accuracy)
    assert got_loss == pytest.approx(math.log(data.vocab_size), rel=0.1)   # untrained: near uniform
