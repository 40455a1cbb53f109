"""Hand-written backpropagation through time for the LSTM and the peephole LSTM.

The models' `recurrence` is a plain autograd loop (every h_t is in the graph, which the
gradient-flow study needs). When only h_T is read, `forward` calls the Functions below instead:
the same equations, evaluated in a loop that writes into preallocated buffers without recording a
graph, and a backward loop with one (B, 4H) x (4H, H) product per step. These rearrangements make
it cheaper than autograd's loop, without changing what is computed:

  * Inputs are tokens, x_t = Emb[v_t], so W_x x_t + b = P[v_t] with the (V, 4H) table
    P = Emb W_x^T + b: one tiny product, then a row lookup per step (V = 3 for palindromes, so
    this replaces a (T·B, E) x (E, 4H) product and its two backward products). Its gradient is
    dP[v] = Σ_{t,b: v_tb = v} dA_tb (an index_add), and autograd takes dP back to Emb, W_x, b.
  * The recurrent weight gradient is formed after the loop, one product per block of
    timesteps (all of them when T·B·4H floats fit in 16 MiB):
        dW_h = Σ_t dA_t^T h_{t-1} = dA^T H_prev      dA: (T·B, 4H), H_prev: (T·B, H)
  * dA_t overwrites the step's gate activations once they are used (no second (T, B, 4H)
    buffer), buffers come in blocks of at most 16 MiB (see _TimeBlocks), tanh(c_t) is recomputed.
    So the backward can run once per forward (as in training); reuse_buffers=False copies the
    buffers instead (gradcheck, retain_graph). keep=False (evaluation, no backward) keeps one
    step's gates only.

Notation: a_t are a step's pre-activations (B, 4H) and dA_t = dL/da_t; dA stacks them (T, B, 4H).
"""
from __future__ import annotations

import torch


BLOCK_BYTES = 16 * 2**20


class _TimeBlocks:
    """A (T, *shape) buffer held as blocks of at most 16 MiB along time, indexed by t.

    malloc serves single allocations above 32 MiB with fresh pages on every call, and faulting
    those pages in cost as much as the step's matrix products; blocks are reused from the heap.
    """

    def __init__(self, T: int, shape: tuple, like: torch.Tensor):
        step_bytes = like.element_size() * torch.Size(shape).numel()
        self.k = max(1, BLOCK_BYTES // step_bytes)          # timesteps per block
        self.blocks = [like.new_empty(min(self.k, T - s), *shape) for s in range(0, T, self.k)]

    def clone(self) -> "_TimeBlocks":
        copy = object.__new__(_TimeBlocks)
        copy.k, copy.blocks = self.k, [b.clone() for b in self.blocks]
        return copy

    def __getitem__(self, t: int) -> torch.Tensor:
        return self.blocks[t // self.k][t % self.k]

    def spans(self):
        """(first timestep, block) pairs."""
        return [(n * self.k, block) for n, block in enumerate(self.blocks)]


class _OneStep:
    """Stands in for _TimeBlocks when no backward will run (evaluation): one reused buffer."""

    def __init__(self, T: int, shape: tuple, like: torch.Tensor):
        self.buffer = like.new_empty(*shape)

    def __getitem__(self, t: int) -> torch.Tensor:
        return self.buffer


def _take(ctx, name: str) -> _TimeBlocks:
    """The forward's buffer, to be overwritten by the backward: the buffer itself when
    reuse_buffers (backward runs once, as in training), else a copy (retain_graph, gradcheck)."""
    blocks = getattr(ctx, name)
    if blocks is None:
        raise RuntimeError("backward ran twice on a graph built with reuse_buffers=True "
                           "(pass reuse_buffers=False to backpropagate more than once)")
    if ctx.reuse:
        setattr(ctx, name, None)
        return blocks
    return blocks.clone()


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
    def forward(ctx, v, P, W_h, reuse_buffers=True, keep=True):
        T, B = v.shape
        H = W_h.shape[1]
        W_h_t = W_h.t()                                     # (H, 4H)
        Buffer = _TimeBlocks if keep else _OneStep          # keep=False: no backward to come
        gates = Buffer(T, (B, 4 * H), P)                    # g, i, f, o after tanh / σ
        cs = P.new_empty(T + 1, B, H)                       # c_0 .. c_T
        hs = P.new_empty(T + 1, B, H)                       # h_0 .. h_T
        cs[0], hs[0] = 0, 0
        for t in range(T):
            a = torch.index_select(P, 0, v[t], out=gates[t])  # (B, 4H) = P[v_t]
            if t > 0:                                       # h_0 = 0
                a.addmm_(hs[t], W_h_t)
            a[:, :H].tanh_()
            a[:, H:].sigmoid_()
            g, i, f, o = a.chunk(4, dim=1)                  # 4 x (B, H)
            c = torch.mul(cs[t], f, out=cs[t + 1]).addcmul_(g, i)
            torch.mul(torch.tanh(c), o, out=hs[t + 1])
        ctx.save_for_backward(v, cs, hs, W_h)
        ctx.gates, ctx.num_tokens, ctx.reuse = gates, P.shape[0], reuse_buffers
        return hs[T].clone()                                # (B, H)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dh_T):
        v, cs, hs, W_h = ctx.saved_tensors
        gates = _take(ctx, "gates")                         # dA_t overwrites gates[t] below
        T, B = v.shape
        H = W_h.shape[1]
        grad_ifo = hs.new_empty(B, 3 * H)                   # dL/d(i, f, o) of one step
        dh = dh_T.contiguous()                              # (B, H)
        dc_f = torch.zeros_like(dh)                         # dc_{t+1} ⊙ f_{t+1}
        for t in range(T - 1, -1, -1):
            gates_t = gates[t]                              # (B, 4H), becomes dA_t
            g, i, f, o = gates_t.chunk(4, dim=1)            # 4 x (B, H)
            tanh_c = torch.tanh(cs[t + 1])
            dc = _tanh_backward(dh * o, tanh_c).add_(dc_f)                      # (B, H)
            torch.mul(dc, g, out=grad_ifo[:, :H])
            torch.mul(dc, cs[t], out=grad_ifo[:, H:2 * H])
            torch.mul(dh, tanh_c, out=grad_ifo[:, 2 * H:])
            dc_i = dc * i
            dc_f = dc.mul_(f)
            _tanh_backward(dc_i, g, out=g)                                      # dA_t^g
            _sigmoid_backward(grad_ifo, gates_t[:, H:], out=gates_t[:, H:])     # dA_t^{i,f,o}
            if t > 0:
                dh = gates_t @ W_h                                              # (B, H)
        dW_h = W_h.new_zeros(4 * H, H)
        dP = W_h.new_zeros(ctx.num_tokens, 4 * H)
        for s, dA in gates.spans():                         # dA: (n, B, 4H) for t = s .. s+n-1
            n = dA.shape[0]
            dA = dA.view(n * B, 4 * H)
            dW_h.addmm_(dA.t(), hs[s:s + n].view(n * B, H))                    # Σ_t dA_t^T h_{t-1}
            dP.index_add_(0, v[s:s + n].reshape(-1), dA)                       # Σ over v_tb = v
        return None, dP, dW_h, None, None


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
    def forward(ctx, v, P, Q, W_c, reuse_buffers=True, keep=True):
        T, B = v.shape
        H = W_c.shape[1]
        W_c_t = W_c.t()                                     # (H, 3H)
        Buffer = _TimeBlocks if keep else _OneStep          # keep=False: no backward to come
        gates = Buffer(T, (B, 3 * H), P)                    # f, i, o after σ
        cand = Buffer(T, (B, H), Q)                         # q_t = Q[v_t]
        cs = P.new_empty(T + 1, B, H)                       # c_0 .. c_T
        cs[0] = 0
        for t in range(T):
            a = torch.index_select(P, 0, v[t], out=gates[t])  # (B, 3H) = P[v_t]
            if t > 0:                                       # c_0 = 0
                a.addmm_(cs[t], W_c_t)
            f, i, o = a.sigmoid_().chunk(3, dim=1)          # 3 x (B, H)
            q = torch.index_select(Q, 0, v[t], out=cand[t])  # (B, H)
            torch.mul(cs[t], f, out=cs[t + 1]).addcmul_(q, i)
        tanh_c = torch.tanh(cs[T])                          # (B, H)
        ctx.save_for_backward(v, cs, tanh_c, W_c)
        ctx.gates, ctx.cand, ctx.num_tokens, ctx.reuse = gates, cand, P.shape[0], reuse_buffers
        return tanh_c * gates[T - 1][:, 2 * H:]             # h_T = tanh(c_T) ⊙ o_T

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dh_T):
        v, cs, tanh_c, W_c = ctx.saved_tensors
        gates, cand = _take(ctx, "gates"), _take(ctx, "cand")  # overwritten by dA_t, dq_t below
        T, B = v.shape
        H = W_c.shape[1]
        grad_fi = cs.new_empty(B, 2 * H)                    # dL/d(f, i) of one step
        dc = None
        for t in range(T - 1, -1, -1):
            gates_t = gates[t]                              # (B, 3H), becomes dA_t
            f, i, o = gates_t.chunk(3, dim=1)               # 3 x (B, H)
            if t == T - 1:                                  # h_T = tanh(c_T) ⊙ o_T is read
                dc = _tanh_backward(dh_T * o, tanh_c)       # (B, H) = dc_T
                _sigmoid_backward(dh_T * tanh_c, o, out=o)  # dA_T^o
            else:
                o.zero_()                                   # dA_t^o = 0: h_t, t < T, unused
            torch.mul(dc, cs[t], out=grad_fi[:, :H])
            torch.mul(dc, cand[t], out=grad_fi[:, H:])
            torch.mul(dc, i, out=cand[t])                                       # dq_t
            dc.mul_(f)                                                          # dc_t ⊙ f_t
            _sigmoid_backward(grad_fi, gates_t[:, :2 * H], out=gates_t[:, :2 * H])  # dA_t^{f,i}
            if t > 0:
                dc = dc.addmm_(gates_t, W_c)                                    # dc_{t-1}
        dW_c = W_c.new_zeros(3 * H, H)
        dP = W_c.new_zeros(ctx.num_tokens, 3 * H)
        dQ = W_c.new_zeros(ctx.num_tokens, H)
        for s, dA in gates.spans():                         # dA: (n, B, 3H) for t = s .. s+n-1
            n = dA.shape[0]
            dA = dA.view(n * B, 3 * H)
            dW_c.addmm_(dA.t(), cs[s:s + n].view(n * B, H))                    # Σ_t dA_t^T c_{t-1}
            dP.index_add_(0, v[s:s + n].reshape(-1), dA)
        for s, dq in cand.spans():
            n = dq.shape[0]
            dQ.index_add_(0, v[s:s + n].reshape(-1), dq.view(n * B, H))
        return None, dP, dQ, dW_c, None, None
