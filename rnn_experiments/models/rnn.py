"""Vanilla (Elman) RNN written from its equations (course Question 1.1), nn.Parameter only."""
from __future__ import annotations

import torch
import torch.nn as nn

from rnn_experiments.models.base import Axis, Init, RecurrentClassifier, init_weights


class RNN(RecurrentClassifier):
    r"""Vanilla recurrent classifier.

        h_t = tanh(W_hx x_t + W_hh h_{t-1} + b_h)
        p   = W_ph h_T + b_p,   ŷ = softmax(p)

    with h_0 = 0 and x_t the embedding of token t. The input projections W_hx x_t + b_h of all
    steps are one matrix product before the time loop.
    Parameters (embedding apart): H·E + H·H + H + C·H + C.
    """
    gates = 1

    def __init__(self, vocab_size: int, num_classes: int, embedding_dim: int = 64,
                 hidden_size: int = 256, init: Init = "kaiming_normal", log_softmax_axis: Axis = "class"):
        super().__init__(vocab_size, num_classes, embedding_dim, hidden_size, log_softmax_axis)
        H, E = hidden_size, embedding_dim
        self.W_hx = nn.Parameter(torch.empty(H, E))
        self.W_hh = nn.Parameter(torch.empty(H, H))
        self.b_h = nn.Parameter(torch.zeros(H))
        init_weights(self, init)

    def recurrence(self, e: torch.Tensor, state=None) -> list[torch.Tensor]:
        B, T, _ = e.shape
        x_proj = torch.addmm(self.b_h, e.reshape(B * T, -1), self.W_hx.t()).view(B, T, -1)  # (B, T, H)
        h = state if state is not None else e.new_zeros(B, self.hidden_size)                # (B, H)
        W_hh_t = self.W_hh.t()                                                              # (H, H)
        hs = []
        for a_x in x_proj.unbind(1):                                                        # T x (B, H)
            h = torch.tanh(torch.addmm(a_x, h, W_hh_t))                                     # (B, H)
            hs.append(h)
        return hs
