"""One optimisation step and the held-out evaluation, for any model of the registry.

    loss = mean NLL of log ŷ against y        (classes on the last axis: (B, C) or (B, T, V))
    θ ← Adam(θ, clip(∇θ loss, max_norm))

Both return tensors on the model's device and never synchronise with it: the caller reads them
when it writes a metrics row.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def nll_and_accuracy(log_probs: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean NLL and accuracy; classes on the last axis, any leading shape ((B,) or (B, T))."""
    C = log_probs.shape[-1]
    loss = F.nll_loss(log_probs.reshape(-1, C), y.reshape(-1))
    acc = (log_probs.argmax(-1) == y).float().mean()
    return loss, acc


def train_step(model, optimizer, x: torch.Tensor, y: torch.Tensor, max_norm: float):
    """Forward, NLL, backward, clip the gradient norm, Adam: -> (loss, accuracy), 0-d tensors."""
    loss, acc = nll_and_accuracy(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    optimizer.step()
    return loss.detach(), acc


@torch.no_grad()
def evaluate(model, x: torch.Tensor, y: torch.Tensor, chunk: int = 1024) -> float:
    """Accuracy on (x, y), in chunks of `chunk` examples (one synchronisation at the end)."""
    was_training = model.training
    model.eval()
    correct = sum((model(x[i:i + chunk]).argmax(-1) == y[i:i + chunk]).sum()
                  for i in range(0, len(x), chunk))
    model.train(was_training)
    return correct.item() / y.numel()
