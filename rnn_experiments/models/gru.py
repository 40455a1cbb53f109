"""Gated recurrent unit written from its equations, nn.Parameter only."""
from __future__ import annotations

import torch
import torch.nn as nn

from rnn_experiments.models.base import Axis, Init, RecurrentClassifier, init_weights


class GRU(RecurrentClassifier):
    r"""GRU classifier, with the equations of the assignment ([a, b] is concatenation):

        z_t = σ(W_z [h_{t-1}, x_t] + b_z)            update gate
        r_t = σ(W_r [h_{t-1}, x_t] + b_r)            reset gate
        h̃_t = tanh(W_h [r_t ⊙ h_{t-1}, x_t] + b_h)   candidate
        h_t = (1 − z_t) ⊙ h_{t-1} + z_t ⊙ h̃_t
        p   = W_ph h_T + b_p,   ŷ = softmax(p)

    with h_0 = 0. Each W_* [h, x] is stored as its two blocks, W_*h h + W_*x x. The biases (zero
    at initialisation, like the LSTM's) are the only addition to the assignment's equations.
    This is NOT torch's nn.GRU: that one applies the reset gate after the recurrent product,
    r ⊙ (W_hn h + b_hn), and its z keeps the OLD state (h = (1 − z) ⊙ n + z ⊙ h_{t-1}).
    The input projections of all three blocks are one matrix product before the time loop.
    Parameters (embedding apart): 3(H·E + H·H + H) + C·H + C.
    """
    gates = 3

    def __init__(self, vocab_size: int, num_classes: int, embedding_dim: int = 64,
                 hidden_size: int = 256, init: Init = "kaiming_normal", log_softmax_axis: Axis = "class"):
        super().__init__(vocab_size, num_classes, embedding_dim, hidden_size, log_softmax_axis)
        H, E = hidden_size, embedding_dim
        for gate in "zrh":
            setattr(self, f"W_{gate}x", nn.Parameter(torch.empty(H, E)))
            setattr(self, f"W_{gate}h", nn.Parameter(torch.empty(H, H)))
            setattr(self, f"b_{gate}", nn.Parameter(torch.zeros(H)))
        init_weights(self, init)

    def recurrence(self, e: torch.Tensor, state=None) -> list[torch.Tensor]:
        B, T, _ = e.shape
        H = self.hidden_size
        W_x = torch.cat([self.W_zx, self.W_rx, self.W_hx])                # (3H, E)
        b = torch.cat([self.b_z, self.b_r, self.b_h])                     # (3H,)
        x_proj = torch.addmm(b, e.reshape(B * T, -1), W_x.t()).view(B, T, 3 * H)  # (B, T, 3H)
        W_zr_t = torch.cat([self.W_zh, self.W_rh]).t()                    # (H, 2H)
        W_hh_t = self.W_hh.t()                                            # (H, H)
        h = state if state is not None else e.new_zeros(B, H)             # (B, H)
        hs = []
        for a_x in x_proj.unbind(1):                                      # T x (B, 3H)
            z, r = torch.sigmoid(torch.addmm(a_x[:, :2 * H], h, W_zr_t)).chunk(2, dim=1)  # 2 x (B, H)
            h_tilde = torch.tanh(torch.addmm(a_x[:, 2 * H:], r * h, W_hh_t))  # (B, H)
            h = (1 - z) * h + z * h_tilde                                 # (B, H)
            hs.append(h)
        return hs
