"""Peephole LSTM written from its equations (course eqs. 35-41), nn.Parameter only."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from rnn_experiments.models.base import Axis, Init, RecurrentClassifier, init_weights
from rnn_experiments.models.kernels.fused import PeepLSTMFunction
from rnn_experiments.models.kernels.triton_cells import PeepLSTMTritonFunction, available as triton_available


class PeepLSTM(RecurrentClassifier):
    r"""LSTM whose gates read the previous CELL state instead of the previous output.

        f_t = σ(W_fx x_t + W_fh c_{t-1} + b_f)
        i_t = σ(W_ix x_t + W_ih c_{t-1} + b_i)
        o_t = σ(W_ox x_t + W_oh c_{t-1} + b_o)
        c_t = σ(W_cx x_t + b_c) ⊙ i_t + c_{t-1} ⊙ f_t
        h_t = tanh(c_t) ⊙ o_t
        p   = W_ph h_T + b_p,   ŷ = softmax(p)

    with c_0 = 0. σ(W_cx x_t + b_c) does not depend on the past, so it is computed for all t
    before the time loop, together with the gates' input projections (one product).

    `recurrence` is the plain autograd loop (every h_t stays in the graph). `forward` reads only
    h_T, so it uses the same equations with a hand-written backward through time
    (`PeepLSTMFunction`, models/kernels/fused.py, on the CPU; one fused Triton kernel per timestep,
    `PeepLSTMTritonFunction`, models/kernels/triton_cells.py, on a GPU), with W_x x_t + b looked up
    from a (vocab, 4H) table instead of multiplied per token. Set `model.fused = False` to make
    `forward` use `recurrence`.
    Parameters (embedding apart): 4(H·E + H) + 3·H·H + C·H + C.
    """
    gates = 4
    fused = True                        # forward through the fused Functions (False: recurrence)

    def __init__(self, vocab_size: int, num_classes: int, embedding_dim: int = 64,
                 hidden_size: int = 256, init: Init = "kaiming_normal", log_softmax_axis: Axis = "class"):
        super().__init__(vocab_size, num_classes, embedding_dim, hidden_size, log_softmax_axis)
        H, E = hidden_size, embedding_dim
        for gate in "fio":
            setattr(self, f"W_{gate}x", nn.Parameter(torch.empty(H, E)))
            setattr(self, f"W_{gate}h", nn.Parameter(torch.empty(H, H)))
            setattr(self, f"b_{gate}", nn.Parameter(torch.zeros(H)))
        self.W_cx = nn.Parameter(torch.empty(H, E))
        self.b_c = nn.Parameter(torch.zeros(H))
        init_weights(self, init)
        self.fused = True

    def _stacked(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        W_x = torch.cat([self.W_fx, self.W_ix, self.W_ox, self.W_cx])   # (4H, E)
        W_c = torch.cat([self.W_fh, self.W_ih, self.W_oh])              # (3H, H)
        b = torch.cat([self.b_f, self.b_i, self.b_o, self.b_c])         # (4H,)
        return W_x, W_c, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T) token ids -> log-probabilities (B, C)."""
        if not self.fused or type(self).readout_state is not RecurrentClassifier.readout_state:
            return super().forward(x)
        H = self.hidden_size
        W_x, W_c, b = self._stacked()
        P = torch.addmm(b, self.embedding.weight, W_x.t())              # (V, 4H): W_x e_v + b
        Q = torch.sigmoid(P[:, 3 * H:])                                 # (V, H): σ(W_cx e_v + b_c)
        v, keep = x.t().contiguous(), torch.is_grad_enabled()          # (T, B); False: no backward
        if triton_available(x):
            h = PeepLSTMTritonFunction.apply(v, P[:, :3 * H], Q, W_c, keep)  # (B, H) = h_T
        else:
            h = PeepLSTMFunction.apply(v, P[:, :3 * H], Q, W_c, True, keep)  # (B, H) = h_T
        return F.log_softmax(F.linear(h, self.W_ph, self.b_p), dim=self.log_softmax_dim)  # (B, C)

    def forward_stacked(self, params: dict, x: torch.Tensor) -> torch.Tensor:
        """K members at once (a pack; rnn_experiments/training/pack.py): `params` each of this
        model's parameters stacked on a leading member axis, x (K, B, T) -> (K, B, C), through
        PeepLSTMFunction's member axis (models/kernels/fused.py)."""
        H = self.hidden_size
        W_x = torch.cat([params[f"W_{g}x"] for g in "fioc"], dim=1)        # (K, 4H, E)
        W_c = torch.cat([params[f"W_{g}h"] for g in "fio"], dim=1)         # (K, 3H, H)
        b = torch.cat([params[f"b_{g}"] for g in "fioc"], dim=1)           # (K, 4H)
        P = torch.baddbmm(b.unsqueeze(1), params["embedding.weight"], W_x.transpose(1, 2))  # (K, V, 4H)
        Q = torch.sigmoid(P[..., 3 * H:])                                  # (K, V, H)
        v = x.permute(2, 0, 1).contiguous()                                 # (T, K, B)
        h = PeepLSTMFunction.apply(v, P[..., :3 * H], Q, W_c, True, torch.is_grad_enabled())  # (K, B, H)
        return self.readout_stacked(params, h)

    def recurrence(self, e: torch.Tensor, state=None) -> list[torch.Tensor]:
        B, T, _ = e.shape
        H = self.hidden_size
        W_x, W_c, b = self._stacked()
        x_proj = torch.addmm(b, e.reshape(B * T, -1), W_x.t()).view(B, T, 4 * H)  # (B, T, 4H)
        gate_x = x_proj[..., : 3 * H].unbind(1)                         # T x (B, 3H)
        cand = torch.sigmoid(x_proj[..., 3 * H:]).unbind(1)             # T x (B, H)
        c = state if state is not None else e.new_zeros(B, H)
        W_c_t = W_c.t()                                                 # (H, 3H)
        hs = []
        for a_x, g in zip(gate_x, cand):
            f, i, o = torch.sigmoid(torch.addmm(a_x, c, W_c_t)).chunk(3, dim=1)  # 3 x (B, H)
            c = g * i + c * f                                           # (B, H)
            h = torch.tanh(c) * o                                       # (B, H)
            hs.append(h)
        return hs
