"""Per-timestep gradient norms of the last step's loss, for one batch.

For example b with per-example loss L_b = -log ŷ_b[y_b] (read from the state after the last step):

    grad_norm[t]       = mean_b || ∂L_b / ∂h_t^(b) ||      h_t: the state `recurrence` returns at t
    input_grad_norm[t] = mean_b || ∂L_b / ∂x_t^(b) ||      x_t: the embedded input token at t

Examples do not interact, so both come from one backward pass of the summed loss. ∂L/∂h_t counts
every path from h_t to the loss (for the LSTM, through the gates into c_{t+1} and on). The
peephole LSTM's h_t feeds nothing but the read-out (its gates read c_{t-1}), so there ∂L/∂h_t = 0
for t < T; its memory shows in input_grad_norm, which is defined for every model.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from rnn_experiments.models.base import RecurrentClassifier


def grad_norms_per_step(model: RecurrentClassifier, x: torch.Tensor, y: torch.Tensor) -> dict:
    """x: (B, T) tokens, y: (B,) labels -> {"grad_norm": (T,), "input_grad_norm": (T,), "loss": float}."""
    e = model.embedding(x)                                                # (B, T, E)
    hs = model.recurrence(e)                                              # T x (B, H)
    p = F.linear(model.readout_state(hs), model.W_ph, model.b_p)          # (B, C), as in forward()
    loss = F.cross_entropy(p, y, reduction="sum")                         # sum_b L_b
    *d_hs, d_e = torch.autograd.grad(loss, [*hs, e], allow_unused=True)
    d_h = torch.stack([torch.zeros_like(h) if d is None else d for d, h in zip(d_hs, hs)], 1)  # (B, T, H)
    return {"grad_norm": d_h.norm(dim=2).mean(0).detach(),               # (T,)
            "input_grad_norm": d_e.norm(dim=2).mean(0).detach(),          # (T,)
            "loss": loss.item() / len(y)}
