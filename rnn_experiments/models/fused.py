"""Hand-written backpropagation through time for the LSTM and the peephole LSTM.

The models' `recurrence` is a plain autograd loop (every h_t is in the graph, which the
gradient-flow study needs). When only h_T is read, `forward` calls the Functions below instead:
the same equations, evaluated in a loop that writes into preallocated buffers without recording a
graph, and a backward loop with one (B, 4H) x (4H, H) product per step. Two rearrangements make
it cheaper than autograd's loop, without changing what is computed:

  * Inputs are tokens, x_t = Emb[v_t], so W_x x_t + b = P[v_t] with the (V, 4H) table
    P = Emb W_x^T + b: one tiny product, then a row lookup per step (V = 3 for palindromes, so
    this replaces a (T·B, E) x (E, 4H) product and its two backward products). Its gradient is
    dP[v] = Σ_{t,b: v_tb = v} dA_tb (an index_add), and autograd takes dP back to Emb, W_x, b.
  * The recurrent weight gradient is ONE product over all timesteps after the loop:
        dW_h = Σ_t dA_t^T h_{t-1} = dA^T H_prev      dA: (T·B, 4H), H_prev: (T·B, H)

Notation: a_t are a step's pre-activations (B, 4H) and dA_t = dL/da_t; dA stacks them (T, B, 4H).
"""
from __future__ import annotations

import torch


def _tanh_backward(grad, tanh_out, out=None):
    """grad ⊙ (1 - tanh²), one kernel."""
    if out is None:
        return torch.ops.aten.tanh_backward(grad, tanh_out)
    return torch.ops.aten.tanh_backward.grad_input(grad, tanh_out, grad_input=out)


def _sigmoid_backward(grad, sig_out, out):
    """grad ⊙ σ(1 - σ), one kernel."""
    return torch.ops.aten.sigmoid_backward.grad_input(grad, sig_out, grad_input=out)


class LSTMFunction(torch.autograd.Function):
    r"""h_T of the LSTM from token ids v (T, B), the table P (V, 4H) [gate order g, i, f, o]
    and W_h (4H, H).

        a_t = P[v_t] + h_{t-1} W_h^T
        g_t = tanh(a_t^g),  i_t, f_t, o_t = σ(a_t^i), σ(a_t^f), σ(a_t^o)
        c_t = g_t ⊙ i_t + c_{t-1} ⊙ f_t,   h_t = tanh(c_t) ⊙ o_t,   h_0 = c_0 = 0

    Backward, with dh_T given and dc_{T+1} ⊙ f_{T+1} := 0, for t = T..1:
        dc_t  = dc_{t+1} ⊙ f_{t+1} + dh_t ⊙ o_t ⊙ (1 - tanh² c_t)
        dA_t  = [dc_t ⊙ i_t ⊙ (1 - g_t²),  dc_t ⊙ g_t ⊙ i_t(1 - i_t),
                 dc_t ⊙ c_{t-1} ⊙ f_t(1 - f_t),  dh_t ⊙ tanh c_t ⊙ o_t(1 - o_t)]
        dh_{t-1} = dA_t W_h
    """

    @staticmethod
    def forward(ctx, v, P, W_h):
        T, B = v.shape
        H = W_h.shape[1]
        W_h_t = W_h.t()                                     # (H, 4H)
        gates = P.new_empty(T, B, 4 * H)                    # g, i, f, o after tanh / σ
        cs = P.new_zeros(T + 1, B, H)                       # c_0 .. c_T
        hs = P.new_zeros(T + 1, B, H)                       # h_0 .. h_T
        tanh_cs = P.new_empty(T, B, H)                      # tanh(c_1) .. tanh(c_T)
        for t in range(T):
            a = torch.index_select(P, 0, v[t], out=gates[t])  # (B, 4H) = P[v_t]
            if t > 0:                                       # h_0 = 0
                a.addmm_(hs[t], W_h_t)
            a[:, :H].tanh_()
            a[:, H:].sigmoid_()
            g, i, f, o = a.chunk(4, dim=1)                  # 4 x (B, H)
            c = torch.mul(cs[t], f, out=cs[t + 1]).addcmul_(g, i)
            torch.mul(torch.tanh(c, out=tanh_cs[t]), o, out=hs[t + 1])
        ctx.save_for_backward(v, gates, cs, tanh_cs, hs, W_h)
        ctx.num_tokens = P.shape[0]
        return hs[T].clone()                                # (B, H)

    @staticmethod
    def backward(ctx, dh_T):
        v, gates, cs, tanh_cs, hs, W_h = ctx.saved_tensors
        T, B, H4 = gates.shape
        H = H4 // 4
        dA = torch.empty_like(gates)                        # (T, B, 4H)
        grad_ifo = gates.new_empty(B, 3 * H)                # dL/d(i, f, o) of one step
        dh = dh_T.contiguous()                              # (B, H)
        dc_f = torch.zeros_like(dh)                         # dc_{t+1} ⊙ f_{t+1}
        for t in range(T - 1, -1, -1):
            g, i, f, o = gates[t].chunk(4, dim=1)           # 4 x (B, H)
            tanh_c = tanh_cs[t]
            dc = _tanh_backward(dh * o, tanh_c).add_(dc_f)                      # (B, H)
            torch.mul(dc, g, out=grad_ifo[:, :H])
            torch.mul(dc, cs[t], out=grad_ifo[:, H:2 * H])
            torch.mul(dh, tanh_c, out=grad_ifo[:, 2 * H:])
            dA_t = dA[t]                                    # (B, 4H)
            _tanh_backward(dc * i, g, out=dA_t[:, :H])
            _sigmoid_backward(grad_ifo, gates[t, :, H:], out=dA_t[:, H:])
            if t > 0:
                dh = dA_t @ W_h                                                 # (B, H)
                dc_f = dc.mul_(f)
        dA_flat = dA.view(T * B, H4)
        dW_h = dA_flat[B:].t() @ hs[1:T].reshape((T - 1) * B, H)               # (4H, H); h_0 = 0
        dP = dA.new_zeros(ctx.num_tokens, H4).index_add_(0, v.reshape(-1), dA_flat)  # (V, 4H)
        return None, dP, dW_h


class PeepLSTMFunction(torch.autograd.Function):
    r"""h_T of the peephole LSTM from token ids v (T, B), the gates' table P (V, 3H)
    [order f, i, o], the candidates' table Q (V, H) = σ(Emb W_cx^T + b_c) and W_c (3H, H).

        f_t, i_t, o_t = σ(P[v_t] + c_{t-1} W_c^T)
        c_t = Q[v_t] ⊙ i_t + c_{t-1} ⊙ f_t,   h_t = tanh(c_t) ⊙ o_t,   c_0 = 0

    Backward, with dh_T given (dh_t = 0 for t < T since only h_T is read), q_t = Q[v_t]:
        dc_T  = dh_T ⊙ o_T ⊙ (1 - tanh² c_T),  dA_T^o = dh_T ⊙ tanh c_T ⊙ o_T(1 - o_T)
        dA_t^f = dc_t ⊙ c_{t-1} ⊙ f_t(1 - f_t),  dA_t^i = dc_t ⊙ q_t ⊙ i_t(1 - i_t)
        dq_t = dc_t ⊙ i_t,   dc_{t-1} = dc_t ⊙ f_t + dA_t W_c
    """

    @staticmethod
    def forward(ctx, v, P, Q, W_c):
        T, B = v.shape
        H = W_c.shape[1]
        W_c_t = W_c.t()                                     # (H, 3H)
        gates = P.new_empty(T, B, 3 * H)                    # f, i, o after σ
        cand = Q.new_empty(T, B, H)                         # q_t = Q[v_t]
        cs = P.new_zeros(T + 1, B, H)                       # c_0 .. c_T
        for t in range(T):
            a = torch.index_select(P, 0, v[t], out=gates[t])  # (B, 3H) = P[v_t]
            if t > 0:                                       # c_0 = 0
                a.addmm_(cs[t], W_c_t)
            f, i, o = a.sigmoid_().chunk(3, dim=1)          # 3 x (B, H)
            q = torch.index_select(Q, 0, v[t], out=cand[t])  # (B, H)
            torch.mul(cs[t], f, out=cs[t + 1]).addcmul_(q, i)
        tanh_c = torch.tanh(cs[T])                          # (B, H)
        ctx.save_for_backward(v, gates, cand, cs, tanh_c, W_c)
        ctx.num_tokens = P.shape[0]
        return tanh_c * gates[T - 1, :, 2 * H:]             # h_T = tanh(c_T) ⊙ o_T

    @staticmethod
    def backward(ctx, dh_T):
        v, gates, cand, cs, tanh_c, W_c = ctx.saved_tensors
        T, B, H3 = gates.shape
        H = H3 // 3
        dA = torch.zeros_like(gates)                        # (T, B, 3H); dA^o = 0 for t < T
        dcand = torch.empty_like(cand)                      # (T, B, H)
        grad_fi = gates.new_empty(B, 2 * H)                 # dL/d(f, i) of one step
        o_T = gates[T - 1, :, 2 * H:]
        dc = _tanh_backward(dh_T * o_T, tanh_c)             # (B, H) = dc_T
        _sigmoid_backward(dh_T * tanh_c, o_T, out=dA[T - 1, :, 2 * H:])
        for t in range(T - 1, -1, -1):
            f, i = gates[t, :, :H], gates[t, :, H:2 * H]    # 2 x (B, H)
            torch.mul(dc, cs[t], out=grad_fi[:, :H])
            torch.mul(dc, cand[t], out=grad_fi[:, H:])
            dA_t = dA[t]                                    # (B, 3H)
            _sigmoid_backward(grad_fi, gates[t, :, :2 * H], out=dA_t[:, :2 * H])
            torch.mul(dc, i, out=dcand[t])
            if t > 0:
                dc = torch.addmm(dc.mul_(f), dA_t, W_c)                         # dc_{t-1}
        dA_flat, idx = dA.view(T * B, H3), v.reshape(-1)
        dW_c = dA_flat[B:].t() @ cs[1:T].reshape((T - 1) * B, H)               # (3H, H); c_0 = 0
        dP = dA.new_zeros(ctx.num_tokens, H3).index_add_(0, idx, dA_flat)      # (V, 3H)
        dQ = dA.new_zeros(ctx.num_tokens, H).index_add_(0, idx, dcand.view(T * B, H))  # (V, H)
        return None, dP, dQ, dW_c
