"""LSTM written from its equations (course eqs. 4-11), nn.Parameter only."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from rnn_experiments.models.base import Axis, Init, RecurrentClassifier, init_weights
from rnn_experiments.models.kernels.fused import LSTMFunction
from rnn_experiments.models.kernels.triton_cells import LSTMTritonFunction, available as triton_available


class LSTM(RecurrentClassifier):
    r"""Long short-term memory classifier.

        g_t = tanh(W_gx x_t + W_gh h_{t-1} + b_g)      input modulation
        i_t = σ(W_ix x_t + W_ih h_{t-1} + b_i)         input gate
        f_t = σ(W_fx x_t + W_fh h_{t-1} + b_f)         forget gate
        o_t = σ(W_ox x_t + W_oh h_{t-1} + b_o)         output gate
        c_t = g_t ⊙ i_t + c_{t-1} ⊙ f_t
        h_t = tanh(c_t) ⊙ o_t
        p   = W_ph h_T + b_p,   ŷ = softmax(p)

    with h_0 = c_0 = 0 and x_t the embedding of token t. The four gates are evaluated with one
    matrix product per step: all inputs' projections W_{gifo,x} x_t are computed for every t in a
    single product before the time loop.

    `recurrence` is the plain autograd loop (every h_t stays in the graph). `forward` reads only
    h_T, so it uses `last_state`: the same equations with a hand-written backward through time
    (`LSTMFunction`, models/kernels/fused.py, on the CPU; one fused Triton kernel per timestep,
    `LSTMTritonFunction`, models/kernels/triton_cells.py, on a GPU), with W_x x_t + b looked up from a
    (vocab, 4H) table instead of multiplied per token. Set `model.fused = False` to make
    `forward` use `recurrence`.

    `reset_token` (model.reset_at_padding, the report author's choice; None: off): c_t = 0
    wherever x_t is that token (the padding), so the state restarts at every padding position.
    Parameters (embedding apart): 4(H·E + H·H + H) + C·H + C.
    """
    gates = 4

    reset_token: int | None = None
    fused = True                        # forward through last_state (False: through recurrence)
    kernels: tuple | None = None        # (tanh | "native", gemm) for the fused CPU path; None: its own choice

    def __init__(self, vocab_size: int, num_classes: int, embedding_dim: int = 64,
                 hidden_size: int = 256, init: Init = "kaiming_normal", log_softmax_axis: Axis = "class",
                 reset_at_padding: bool = False, pad_token: int | None = None):
        super().__init__(vocab_size, num_classes, embedding_dim, hidden_size, log_softmax_axis)
        self.reset_token = pad_token if reset_at_padding else None   # the task's padding token
        H, E = hidden_size, embedding_dim
        for gate in "gifo":
            setattr(self, f"W_{gate}x", nn.Parameter(torch.empty(H, E)))
            setattr(self, f"W_{gate}h", nn.Parameter(torch.empty(H, H)))
            setattr(self, f"b_{gate}", nn.Parameter(torch.zeros(H)))
        init_weights(self, init)
        self.fused = True

    def _stacked(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        W_x = torch.cat([self.W_gx, self.W_ix, self.W_fx, self.W_ox])   # (4H, E)
        W_h = torch.cat([self.W_gh, self.W_ih, self.W_fh, self.W_oh])   # (4H, H)
        b = torch.cat([self.b_g, self.b_i, self.b_f, self.b_o])         # (4H,)
        return W_x, W_h, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T) token ids -> log-probabilities (B, C)."""
        if not self.fused or type(self).readout_state is not RecurrentClassifier.readout_state:
            e = self.embedding(x)                                       # (B, T, E)
            reset = None if self.reset_token is None else x == self.reset_token  # (B, T)
            h = self.readout_state(self.recurrence(e, reset=reset))     # (B, H)
        else:
            h = last_state(x, self.embedding.weight, *self._stacked(), self.reset_token, self.kernels)  # h_T
        return F.log_softmax(F.linear(h, self.W_ph, self.b_p), dim=self.log_softmax_dim)  # (B, C)

    def forward_stacked(self, params: dict, x: torch.Tensor) -> torch.Tensor:
        """K members at once (a pack; rnn_experiments/training/pack.py): `params` each of this
        model's parameters stacked on a leading member axis, x (K, B, T) -> (K, B, C), through
        LSTMFunction's member axis (models/kernels/fused.py), reset token and kernels included."""
        cat = lambda kind: torch.cat([params[kind.format(g)] for g in "gifo"], dim=1)
        W_x, W_h, b = cat("W_{}x"), cat("W_{}h"), cat("b_{}")              # (K, 4H, E), (K, 4H, H), (K, 4H)
        P = torch.baddbmm(b.unsqueeze(1), params["embedding.weight"], W_x.transpose(1, 2))  # (K, V, 4H)
        v = x.permute(2, 0, 1).contiguous()                                 # (T, K, B)
        h = LSTMFunction.apply(v, P, W_h, True, torch.is_grad_enabled(), self.reset_token, self.kernels)  # (K, B, H)
        return self.readout_stacked(params, h)

    def recurrence(self, e: torch.Tensor, state=None, reset=None) -> list[torch.Tensor]:
        """e: (B, T, E) -> [h_1, ..., h_T]; reset (B, T) bool: c_t = 0 where True."""
        B, T, _ = e.shape
        H = self.hidden_size
        W_x, W_h, b = self._stacked()
        x_proj = torch.addmm(b, e.reshape(B * T, -1), W_x.t()).view(B, T, 4 * H)  # (B, T, 4H)
        h, c = state if state is not None else (e.new_zeros(B, H), e.new_zeros(B, H))
        W_h_t = W_h.t()                                                 # (H, 4H)
        hs = []
        for x_t in x_proj.unbind(1):                                    # T x (B, 4H)
            a = torch.addmm(x_t, h, W_h_t)                              # (B, 4H)
            g = torch.tanh(a[:, :H])
            i, f, o = torch.sigmoid(a[:, H:]).chunk(3, dim=1)           # 3 x (B, H)
            c = g * i + c * f                                           # (B, H)
            if reset is not None:
                c = c.masked_fill(reset[:, len(hs), None], 0.0)         # (B, H)
            h = torch.tanh(c) * o                                       # (B, H)
            hs.append(h)
        return hs


def last_state(x: torch.Tensor, embedding: torch.Tensor, W_x: torch.Tensor, W_h: torch.Tensor,
               b: torch.Tensor, reset_token: int | None = None, kernels: tuple | None = None) -> torch.Tensor:
    """h_T of the LSTM's equations for token ids x (B, T), embedding (V, E) and the stacked
    weights, through the fast Function for x's device (no graph of every step is recorded).
    reset_token: c_t = 0 where x_t is that token (model.reset_at_padding); kernels: the CPU
    Function's (tanh, gemm) (LSTMFunction), None: its own choice."""
    P = torch.addmm(b, embedding, W_x.t())                              # (V, 4H): W_x e_v + b
    v = x.t().contiguous()                                              # (T, B)
    keep = torch.is_grad_enabled()                                      # False: no backward
    if triton_available(x):
        return LSTMTritonFunction.apply(v, P, W_h, keep, reset_token)   # (B, H)
    return LSTMFunction.apply(v, P, W_h, True, keep, reset_token, kernels)  # (B, H)
