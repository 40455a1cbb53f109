"""Bidirectional LSTM: two independent LSTMs, one reading t = 1..T, the other t = T..1."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from rnn_experiments.models.base import Axis, Init, RecurrentClassifier, init_weights
from rnn_experiments.models.lstm import LSTM, last_state


class LSTMDirection(nn.Module):
    """The gate parameters of one direction; its recurrence is `LSTM.recurrence`, reused as is."""

    recurrence = LSTM.recurrence
    _stacked = LSTM._stacked

    def __init__(self, embedding_dim: int, hidden_size: int):
        super().__init__()
        H, E = hidden_size, embedding_dim
        self.hidden_size = hidden_size
        for gate in "gifo":
            setattr(self, f"W_{gate}x", nn.Parameter(torch.empty(H, E)))
            setattr(self, f"W_{gate}h", nn.Parameter(torch.empty(H, H)))
            setattr(self, f"b_{gate}", nn.Parameter(torch.zeros(H)))


class BiLSTM(RecurrentClassifier):
    r"""Bidirectional LSTM classifier.

        h→_t = LSTM→(x_1..x_t)          forward direction, t = 1..T   (equations in lstm.py)
        h←_t = LSTM←(x_T..x_t)          backward direction, t = T..1, its own parameters
        p    = W_ph [h→_T ; h←_1] + b_p,   ŷ = softmax(p)       W_ph: (C, 2H)

    Both directions start from zero states and have the LSTM's equations: g, i, f, o gates,
    c_t = g ⊙ i + c_{t-1} ⊙ f, h_t = tanh(c_t) ⊙ o. `recurrence` returns [h→_t ; h←_t] for every t
    (B, 2H); the classifier reads the forward half at T and the backward half at 1, the two
    states that have seen the whole sequence. `forward` needs only those two, so it computes each
    as the last state of its direction with the LSTM's fast path (`lstm.last_state`: fused CPU
    Function or Triton kernels); `model.fused = False` uses `recurrence` instead.
    Parameters (embedding apart): 2·4(H·E + H·H + H) + 2·C·H + C.
    """
    gates = 8

    one_directional = False
    fused = True                        # forward through lstm.last_state (False: recurrence)
    kernels: tuple | None = None        # (tanh, gemm) for the fused CPU path; None: its own choice

    def __init__(self, vocab_size: int, num_classes: int, embedding_dim: int = 64,
                 hidden_size: int = 256, init: Init = "kaiming_normal", log_softmax_axis: Axis = "class"):
        super().__init__(vocab_size, num_classes, embedding_dim, hidden_size, log_softmax_axis)
        self.W_ph = nn.Parameter(torch.empty(num_classes, 2 * hidden_size))
        self.fwd = LSTMDirection(embedding_dim, hidden_size)
        self.bwd = LSTMDirection(embedding_dim, hidden_size)
        init_weights(self, init)
        self.fused = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T) token ids -> log-probabilities (B, C)."""
        if not self.fused:
            return super().forward(x)
        emb, k = self.embedding.weight, self.kernels
        h_fwd = last_state(x, emb, *self.fwd._stacked(), kernels=k)                 # (B, H) = h→_T
        h_bwd = last_state(x.flip(1), emb, *self.bwd._stacked(), kernels=k)         # (B, H) = h←_1
        p = F.linear(torch.cat([h_fwd, h_bwd], dim=1), self.W_ph, self.b_p)         # (B, C)
        return F.log_softmax(p, dim=self.log_softmax_dim)

    def recurrence(self, e: torch.Tensor, state=None) -> list[torch.Tensor]:
        hs_fwd = self.fwd.recurrence(e)                                   # T x (B, H), t = 1..T
        hs_bwd = self.bwd.recurrence(e.flip(1))[::-1]                     # T x (B, H), back in t order
        return [torch.cat(pair, dim=1) for pair in zip(hs_fwd, hs_bwd)]   # T x (B, 2H)

    def readout_state(self, hs: list[torch.Tensor]) -> torch.Tensor:
        H = self.hidden_size
        return torch.cat([hs[-1][:, :H], hs[0][:, H:]], dim=1)           # (B, 2H): [h→_T ; h←_1]
