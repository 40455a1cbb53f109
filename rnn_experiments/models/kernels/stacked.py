"""The recurrences of K models at once, each with its own weights (a pack of seeds,
rnn_experiments/training/pack.py): the LSTM's and the peephole LSTM's equations with a leading
member axis k, every product a batched product over k, and a hand-written backward through time.

At the sizes a pack pays for (B = 32, H = 32) a step is a few hundred tiny operations; here each
operation does the work of all K members, so a pack step costs about one member's step instead
of K. Member k's numbers are those of its own model up to the order of sums in the batched
products (tests/models/test_stacked.py: equal to the recurrence of each member, gradcheck).

Shapes: v (K, T, B) token ids; tables P (K, V, G·H) of each member's W_x e_v + b; W (K, G·H, H).
"""
from __future__ import annotations

import torch

from rnn_experiments.models.kernels.fused import tanh_by_sigmoid


def _tanh(x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """tanh x into out; as 2σ(2x) - 1 where this CPU's tanh is the slower (fused.tanh_by_sigmoid)."""
    if x.device.type == "cpu" and tanh_by_sigmoid():
        return torch.mul(x, 2, out=out).sigmoid_().mul_(2).sub_(1)
    return torch.tanh(x, out=out)


def _rows(P: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """P_k[v_k] for every member: (K, V, N) tables, (K, T, B) ids -> (T, K, B, N)."""
    K, V, N = P.shape
    flat = (v + torch.arange(K, device=v.device).view(K, 1, 1) * V).transpose(0, 1)   # (T, K, B)
    return P.reshape(K * V, N)[flat]                                                  # (T, K, B, N)


def _table_grad(dA: torch.Tensor, v: torch.Tensor, K: int, V: int) -> torch.Tensor:
    """Σ over (t, b) with v_k[t, b] = u of dA[t, k, b]: the gradient of the tables, (K, V, N)."""
    N = dA.shape[-1]
    flat = (v + torch.arange(K, device=v.device).view(K, 1, 1) * V).transpose(0, 1).reshape(-1)
    return dA.new_zeros(K * V, N).index_add_(0, flat, dA.reshape(-1, N)).view(K, V, N)


class StackedLSTMFunction(torch.autograd.Function):
    r"""h_T of K LSTMs (gate order g, i, f, o), member k on its own tokens v_k:

        a_t = P[v_t] + h_{t-1} W_h^T,   g_t = tanh(a^g),  i_t, f_t, o_t = σ(a^i), σ(a^f), σ(a^o)
        c_t = g_t ⊙ i_t + c_{t-1} ⊙ f_t,   h_t = tanh(c_t) ⊙ o_t,   h_0 = c_0 = 0

    Backward (as LSTMFunction's, per member), for t = T..1 with dc := 0, dh := dh_T:
        dc  ← dc + dh ⊙ o_t ⊙ (1 - tanh² c_t)
        dA_t = [dc ⊙ i_t ⊙ (1 - g_t²), dc ⊙ g_t ⊙ i_t(1 - i_t), dc ⊙ c_{t-1} ⊙ f_t(1 - f_t),
                dh ⊙ tanh c_t ⊙ o_t(1 - o_t)]
        dc  ← dc ⊙ f_t,   dh ← dA_t W_h
    dW_h = Σ_t dA_t^T h_{t-1},  dP[u] = Σ_{v_t = u} dA_t.
    """

    @staticmethod
    def forward(ctx, v, P, W_h):
        K, T, B = v.shape
        H = W_h.shape[2]
        A = _rows(P, v)                                          # (T, K, B, 4H): P[v_t], then the gates
        W_hT = W_h.transpose(1, 2)                               # (K, H, 4H)
        hs = P.new_zeros(T + 1, K, B, H)                         # h_0 .. h_T
        cs = P.new_zeros(T + 1, K, B, H)                         # c_0 .. c_T
        tanh_c = P.new_empty(T, K, B, H)
        for t in range(T):
            a = A[t]
            if t > 0:
                a.baddbmm_(hs[t], W_hT)                          # (K, B, 4H)
            g, i, f, o = a.split(H, dim=-1)
            _tanh(g, out=g)                                      # g_t
            a[..., H:].sigmoid_()                                # i_t, f_t, o_t
            torch.addcmul(cs[t] * f, g, i, out=cs[t + 1])        # c_t
            _tanh(cs[t + 1], out=tanh_c[t])
            torch.mul(tanh_c[t], o, out=hs[t + 1])               # h_t
        ctx.save_for_backward(v, W_h, A, hs, cs, tanh_c)
        ctx.V = P.shape[1]
        return hs[T].clone()                                     # (K, B, H)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dh_T):
        v, W_h, A, hs, cs, tanh_c = ctx.saved_tensors
        T, K, B, G = A.shape
        H = G // 4
        g, i, f, o = A.split(H, dim=-1)                          # (T, K, B, H) each, every t at once
        # the factors of dA_t that do not depend on dc, dh (a few whole-tensor ops, not T small ones)
        D = torch.cat([i * (1 - g * g), g * i * (1 - i), cs[:T] * f * (1 - f),
                       tanh_c * o * (1 - o)], dim=-1)            # (T, K, B, 4H)
        Kt = o * (1 - tanh_c * tanh_c)                           # ∂h_t/∂c_t
        dA = torch.empty_like(A)                                 # (T, K, B, 4H)
        dh, dc = dh_T.contiguous(), torch.zeros_like(dh_T)
        for t in range(T - 1, -1, -1):
            dc.addcmul_(dh, Kt[t])                               # dc ← dc + dh ⊙ o_t (1 - tanh² c_t)
            torch.mul(dc.unsqueeze(2), D[t][..., :3 * H].view(K, B, 3, H),
                      out=dA[t][..., :3 * H].view(K, B, 3, H))   # dA^g, dA^i, dA^f
            torch.mul(dh, D[t][..., 3 * H:], out=dA[t][..., 3 * H:])   # dA^o
            dc.mul_(f[t])
            if t > 0:
                dh = torch.bmm(dA[t], W_h)                       # (K, B, H)
        dW_h = torch.bmm(dA.permute(1, 3, 0, 2).reshape(K, G, T * B),          # Σ_t dA_t^T h_{t-1}
                         hs[:T].permute(1, 0, 2, 3).reshape(K, T * B, H))
        return None, _table_grad(dA, v, K, ctx.V), dW_h


class StackedPeepLSTMFunction(torch.autograd.Function):
    r"""h_T of K peephole LSTMs (PeepLSTMFunction's equations, per member): the gates' tables
    P (K, V, 3H) [order f, i, o], the candidates' Q (K, V, H) = σ(W_cx e_v + b_c), W_c (K, 3H, H):

        f_t, i_t, o_t = σ(P[v_t] + c_{t-1} W_c^T),   c_t = Q[v_t] ⊙ i_t + c_{t-1} ⊙ f_t,
        h_T = tanh(c_T) ⊙ o_T,   c_0 = 0

    Backward, only h_T being read: dc_T = dh_T ⊙ o_T ⊙ (1 - tanh² c_T), dA_T^o = dh_T ⊙ tanh c_T
    ⊙ o_T(1 - o_T) and dA_t^o = 0 before; for t = T..1
        dA_t^f = dc_t ⊙ c_{t-1} ⊙ f_t(1 - f_t),  dA_t^i = dc_t ⊙ q_t ⊙ i_t(1 - i_t),  dq_t = dc_t ⊙ i_t
        dc_{t-1} = dc_t ⊙ f_t + dA_t W_c
    dW_c = Σ_t dA_t^T c_{t-1},  dP[u] = Σ_{v_t = u} dA_t,  dQ[u] = Σ_{v_t = u} dq_t.
    """

    @staticmethod
    def forward(ctx, v, P, Q, W_c):
        K, T, B = v.shape
        H = W_c.shape[2]
        A = _rows(P, v)                                          # (T, K, B, 3H), then the gates
        q = _rows(Q, v)                                          # (T, K, B, H)
        W_cT = W_c.transpose(1, 2)                               # (K, H, 3H)
        cs = P.new_zeros(T + 1, K, B, H)
        for t in range(T):
            a = A[t]
            if t > 0:
                a.baddbmm_(cs[t], W_cT)
            a.sigmoid_()
            f, i, _ = a.split(H, dim=-1)
            torch.addcmul(cs[t] * f, q[t], i, out=cs[t + 1])     # c_t
        tanh_cT = _tanh(cs[T], out=torch.empty_like(cs[T]))
        ctx.save_for_backward(v, W_c, A, q, cs, tanh_cT)
        ctx.V = P.shape[1]
        return tanh_cT * A[T - 1][..., 2 * H:]                   # h_T = tanh(c_T) ⊙ o_T

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dh_T):
        v, W_c, A, q, cs, tanh_cT = ctx.saved_tensors
        T, K, B, G = A.shape
        H = G // 3
        dA = torch.zeros_like(A)                                 # dA^o stays 0 before T
        dq = torch.empty_like(q)
        o_T = A[T - 1][..., 2 * H:]
        dc = dh_T * o_T * (1 - tanh_cT * tanh_cT)
        dA[T - 1][..., 2 * H:] = dh_T * tanh_cT * o_T * (1 - o_T)
        for t in range(T - 1, -1, -1):
            f, i, _ = A[t].split(H, dim=-1)
            torch.mul(dc * cs[t], f * (1 - f), out=dA[t][..., :H])
            torch.mul(dc * q[t], i * (1 - i), out=dA[t][..., H:2 * H])
            torch.mul(dc, i, out=dq[t])
            if t > 0:
                dc = torch.baddbmm(dc * f, dA[t], W_c)           # dc_{t-1}
        dW_c = torch.bmm(dA.permute(1, 3, 0, 2).reshape(K, G, T * B),
                         cs[:T].permute(1, 0, 2, 3).reshape(K, T * B, H))
        return None, _table_grad(dA, v, K, ctx.V), _table_grad(dq, v, K, ctx.V), dW_c
