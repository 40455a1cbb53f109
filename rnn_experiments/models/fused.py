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
    timesteps (all of them when T·B·4H floats fit in 16 MiB), without step 1 (h_0 = 0):
        dW_h^T = Σ_t h_{t-1}^T dA_t = H_prev^T dA      dA: (T·B, 4H), H_prev: (T·B, H)
    (MKL forms H_prev^T dA 7% faster than dA^T H_prev.)
  * dA_t overwrites the step's gate activations once they are used (no second (T, B, 4H)
    buffer), buffers come in blocks of at most 16 MiB (see _TimeBlocks), and one step's buffers
    are kept for the next step (see _Spare). So the backward can run once per forward (as in
    training); reuse_buffers=False copies the buffers instead (gradcheck, retain_graph).
    keep=False (evaluation, no backward) keeps one step's gates only.
  * tanh is evaluated as tanh x = 2σ(2x) - 1 (see _tanh), and the forward keeps tanh(c_t) for
    the backward instead of recomputing it.
  * The peephole LSTM reads h_t at t = T only, so its output gate is computed at t = T only:
    the per-step products are (B, H) x (H, 2H) forward and (B, 2H) x (2H, H) backward.

Notation: a_t are a step's pre-activations (B, 4H) and dA_t = dL/da_t; dA stacks them (T, B, 4H).
"""
from __future__ import annotations

import torch


BLOCK_BYTES = 16 * 2**20


class _TimeBlocks:
    """A (T, *shape) buffer held as blocks of at most 16 MiB along time, indexed by t.

    glibc serves single allocations above 32 MiB with fresh pages on every call, and faulting
    those pages in cost as much as the step's matrix products; smaller blocks come from the heap
    (and _Spare keeps them from one step to the next, since glibc also trims a freed heap).
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


class _Spare:
    """One forward's buffers, handed on by its backward to the next forward of the same sizes.

    A training step allocates the same buffers every step (4·T·B·H floats for the LSTM's gates,
    3·T·B·H for c, h, tanh c). Freed, glibc gives most of them back to the kernel (heap trim,
    or munmap above 32 MiB) and the next step faults every page in again: ~7,600 faults and
    37 ms of system time per LSTM step at B=256, H=256, T=41 on a 2-core AMD EPYC VM (nn.LSTM's
    step: ~40,000). Holding one step's buffers in between adds nothing to the peak memory.
    """

    def __init__(self):
        self.key, self.buffers = None, None

    def take(self, key):
        """The buffers put with this key (then forgotten), or None."""
        buffers = self.buffers if key == self.key else None
        self.key, self.buffers = None, None
        return buffers

    def put(self, key, buffers):
        self.key, self.buffers = key, buffers


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


def _tanh(x, out):
    """tanh x = 2σ(2x) - 1 into out: on AVX2 ATen's float tanh (Sleef tanhf) takes 3.5x as long
    as its sigmoid (Sleef expf), and these four passes half as long as one tanh. The identity is
    exact; in float32 its absolute error stays below 1.2e-7, the rounding of c_t itself."""
    return torch.mul(x, 2, out=out).sigmoid_().mul_(2).sub_(1)


def _tanh_backward(grad, tanh_out, out=None):
    """grad ⊙ (1 - tanh²), one kernel."""
    if out is None:
        return torch.ops.aten.tanh_backward(grad, tanh_out)
    return torch.ops.aten.tanh_backward.grad_input(grad, tanh_out, grad_input=out)


def _sigmoid_backward(grad, sig_out, out=None):
    """grad ⊙ σ(1 - σ), one kernel."""
    if out is None:
        return torch.ops.aten.sigmoid_backward(grad, sig_out)
    return torch.ops.aten.sigmoid_backward.grad_input(grad, sig_out, grad_input=out)


class LSTMFunction(torch.autograd.Function):
    r"""h_T of the LSTM from token ids v (T, B), the table P (V, 4H) [gate order g, i, f, o]
    and W_h (4H, H); reset_token (an int, or None): c_t = 0 where v_t == reset_token
    (model.reset_at_padding), i.e. c_t is multiplied by m_t = [v_t ≠ reset_token].

        a_t = P[v_t] + h_{t-1} W_h^T
        g_t = tanh(a_t^g),  i_t, f_t, o_t = σ(a_t^i), σ(a_t^f), σ(a_t^o)
        c_t = (g_t ⊙ i_t + c_{t-1} ⊙ f_t) ⊙ m_t,   h_t = tanh(c_t) ⊙ o_t,   h_0 = c_0 = 0

    Backward, with dh_T given and dc_{T+1} ⊙ f_{T+1} := 0, for t = T..1:
        dc_t  = (dc_{t+1} ⊙ f_{t+1} + dh_t ⊙ o_t ⊙ (1 - tanh² c_t)) ⊙ m_t
        dA_t  = [dc_t ⊙ i_t ⊙ (1 - g_t²),  dc_t ⊙ g_t ⊙ i_t(1 - i_t),
                 dc_t ⊙ c_{t-1} ⊙ f_t(1 - f_t),  dh_t ⊙ tanh c_t ⊙ o_t(1 - o_t)]
        dh_{t-1} = dA_t W_h
    (m_t = 1 everywhere without a reset_token.)
    """

    spare = _Spare()                    # gates, tanh_cs, cs, hs of the last backward

    @staticmethod
    def forward(ctx, v, P, W_h, reuse_buffers=True, keep=True, reset_token=None):
        T, B = v.shape
        H = W_h.shape[1]
        W_h_t = W_h.t()                                     # (H, 4H)
        m = None if reset_token is None else (v != reset_token).unsqueeze(-1).to(P.dtype)  # (T, B, 1)
        key = (T, B, H, P.dtype, P.device, BLOCK_BYTES)
        buffers = LSTMFunction.spare.take(key) if keep else None
        if buffers is None:
            Buffer = _TimeBlocks if keep else _OneStep      # keep=False: no backward to come
            buffers = (Buffer(T, (B, 4 * H), P),            # g, i, f, o after tanh / σ
                       Buffer(T, (B, H), P),                # tanh c_1 .. tanh c_T
                       P.new_empty(T + 1, B, H),            # c_0 .. c_T
                       P.new_empty(T + 1, B, H))            # h_0 .. h_T
        gates, tanh_cs, cs, hs = buffers
        cs[0], hs[0] = 0, 0
        for t in range(T):
            a = torch.index_select(P, 0, v[t], out=gates[t])  # (B, 4H) = P[v_t]
            if t > 0:                                       # h_0 = 0
                a.addmm_(hs[t], W_h_t)
            a[:, :H].mul_(2)                                # σ over all four gates, then
            a.sigmoid_()                                    # g_t = 2σ(2a^g) - 1 (see _tanh)
            a[:, :H].mul_(2).sub_(1)
            g, i, f, o = a.chunk(4, dim=1)                  # 4 x (B, H)
            c = torch.mul(cs[t], f, out=cs[t + 1]).addcmul_(g, i)
            if m is not None:
                c.mul_(m[t])                                # c_t = 0 at the reset token
            tanh_c = _tanh(c, out=tanh_cs[t])
            torch.mul(tanh_c, o, out=hs[t + 1])
        ctx.save_for_backward(v, cs, hs, W_h)
        ctx.gates, ctx.tanh_cs, ctx.num_tokens, ctx.reuse = gates, tanh_cs, P.shape[0], reuse_buffers
        ctx.m = m
        ctx.key = key
        return hs[T].clone()                                # (B, H)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dh_T):
        v, cs, hs, W_h = ctx.saved_tensors
        gates = _take(ctx, "gates")                         # dA_t overwrites gates[t] below
        tanh_cs = ctx.tanh_cs                               # read only
        T, B = v.shape
        H = W_h.shape[1]
        grad_ifo = hs.new_empty(B, 3 * H)                   # dL/d(i, f, o) of one step
        dh = dh_T.contiguous().clone()                      # (B, H), then dh_{t-1} = dA_t W_h
        dc, tmp = torch.empty_like(dh), torch.empty_like(dh)
        dc_f = torch.zeros_like(dh)                         # dc_{t+1} ⊙ f_{t+1}
        for t in range(T - 1, -1, -1):
            gates_t = gates[t]                              # (B, 4H), becomes dA_t
            g, i, f, o = gates_t.chunk(4, dim=1)            # 4 x (B, H)
            tanh_c = tanh_cs[t]
            _tanh_backward(torch.mul(dh, o, out=tmp), tanh_c, out=dc).add_(dc_f)  # dc_t
            if ctx.m is not None:
                dc.mul_(ctx.m[t])                                               # ⊙ m_t
            torch.mul(dc, g, out=grad_ifo[:, :H])
            torch.mul(dc, cs[t], out=grad_ifo[:, H:2 * H])
            torch.mul(dh, tanh_c, out=grad_ifo[:, 2 * H:])
            torch.mul(dc, i, out=tmp)                                           # dc_t ⊙ i_t
            torch.mul(dc, f, out=dc_f)                                          # dc_t ⊙ f_t
            _tanh_backward(tmp, g, out=g)                                       # dA_t^g
            _sigmoid_backward(grad_ifo, gates_t[:, H:], out=gates_t[:, H:])     # dA_t^{i,f,o}
            if t > 0:
                torch.mm(gates_t, W_h, out=dh)                                  # (B, H)
        dW_h_t = W_h.new_zeros(H, 4 * H)                    # dW_h^T = H_prev^T dA
        dP = W_h.new_zeros(ctx.num_tokens, 4 * H)
        for s, dA in gates.spans():                         # dA: (n, B, 4H) for t = s .. s+n-1
            n = dA.shape[0]
            dA = dA.view(n * B, 4 * H)
            dP.index_add_(0, v[s:s + n].reshape(-1), dA)                       # Σ over v_tb = v
            skip = B if s == 0 else 0                                           # h_0 = 0
            dW_h_t.addmm_(hs[s:s + n].view(n * B, H)[skip:].t(), dA[skip:])    # Σ_t h_{t-1}^T dA_t
        if ctx.reuse:
            LSTMFunction.spare.put(ctx.key, (gates, tanh_cs, cs, hs))
        return None, dP, dW_h_t.t().contiguous(), None, None, None


class PeepLSTMFunction(torch.autograd.Function):
    r"""h_T of the peephole LSTM from token ids v (T, B), the gates' table P (V, 3H)
    [order f, i, o], the candidates' table Q (V, H) = σ(Emb W_cx^T + b_c) and W_c (3H, H).

        f_t, i_t, o_t = σ(P[v_t] + c_{t-1} W_c^T)
        c_t = Q[v_t] ⊙ i_t + c_{t-1} ⊙ f_t,   h_t = tanh(c_t) ⊙ o_t,   c_0 = 0

    Only h_T is returned, so only o_T is computed: the loop evaluates f_t, i_t with the rows
    W_c^{fi} (2H, H), and o_T = σ(P^o[v_T] + c_{T-1} W_c^{o T}) comes after it.

    Backward, with dh_T given (dh_t = 0 for t < T since only h_T is read), q_t = Q[v_t]:
        dc_T  = dh_T ⊙ o_T ⊙ (1 - tanh² c_T),  dA_T^o = dh_T ⊙ tanh c_T ⊙ o_T(1 - o_T)
        dA_t^f = dc_t ⊙ c_{t-1} ⊙ f_t(1 - f_t),  dA_t^i = dc_t ⊙ q_t ⊙ i_t(1 - i_t)
        dq_t = dc_t ⊙ i_t,   dc_{t-1} = dc_t ⊙ f_t + dA_t^{fi} W_c^{fi} (+ dA_T^o W_c^o at t = T)
    and dA_t^o = 0 for t < T, so dW_c^o = dA_T^{oT} c_{T-1} and dP^o gets step T only.
    """

    spare = _Spare()                    # gates, cand, cs of the last backward

    @staticmethod
    def forward(ctx, v, P, Q, W_c, reuse_buffers=True, keep=True):
        T, B = v.shape
        H = W_c.shape[1]
        W_fi_t = W_c[:2 * H].t()                            # (H, 2H)
        key = (T, B, H, P.dtype, P.device, BLOCK_BYTES)
        buffers = PeepLSTMFunction.spare.take(key) if keep else None
        if buffers is None:
            Buffer = _TimeBlocks if keep else _OneStep      # keep=False: no backward to come
            buffers = (Buffer(T, (B, 2 * H), P),            # f, i after σ
                       Buffer(T, (B, H), Q),                # q_t = Q[v_t]
                       P.new_empty(T + 1, B, H))            # c_0 .. c_T
        gates, cand, cs = buffers
        cs[0] = 0
        for t in range(T):
            a = torch.index_select(P[:, :2 * H], 0, v[t], out=gates[t])  # (B, 2H) = P^{fi}[v_t]
            if t > 0:                                       # c_0 = 0
                a.addmm_(cs[t], W_fi_t)
            f, i = a.sigmoid_().chunk(2, dim=1)             # 2 x (B, H)
            q = torch.index_select(Q, 0, v[t], out=cand[t])  # (B, H)
            torch.mul(cs[t], f, out=cs[t + 1]).addcmul_(q, i)
        o = torch.addmm(P[v[T - 1], 2 * H:], cs[T - 1], W_c[2 * H:].t()).sigmoid_()  # (B, H) = o_T
        tanh_c = torch.tanh(cs[T])                          # (B, H)
        ctx.save_for_backward(v, cs, tanh_c, o, W_c)
        ctx.gates, ctx.cand, ctx.num_tokens, ctx.reuse = gates, cand, P.shape[0], reuse_buffers
        ctx.key = key
        return tanh_c * o                                   # h_T = tanh(c_T) ⊙ o_T

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dh_T):
        v, cs, tanh_c, o, W_c = ctx.saved_tensors
        gates, cand = _take(ctx, "gates"), _take(ctx, "cand")  # overwritten by dA_t, dq_t below
        T, B = v.shape
        H = W_c.shape[1]
        W_fi, W_o = W_c[:2 * H], W_c[2 * H:]                # (2H, H), (H, H)
        dc = _tanh_backward(dh_T * o, tanh_c)               # (B, H) = dc_T
        dA_o = _sigmoid_backward(dh_T * tanh_c, o)          # (B, H) = dA_T^o
        grad_fi = cs.new_empty(B, 2 * H)                    # dL/d(f, i) of one step
        for t in range(T - 1, -1, -1):
            gates_t = gates[t]                              # (B, 2H), becomes dA_t^{fi}
            f, i = gates_t.chunk(2, dim=1)                  # 2 x (B, H)
            torch.mul(dc, cs[t], out=grad_fi[:, :H])
            torch.mul(dc, cand[t], out=grad_fi[:, H:])
            torch.mul(dc, i, out=cand[t])                                       # dq_t
            dc.mul_(f)                                                          # dc_t ⊙ f_t
            _sigmoid_backward(grad_fi, gates_t, out=gates_t)                    # dA_t^{f,i}
            if t > 0:
                dc.addmm_(gates_t, W_fi)                                        # dc_{t-1}
                if t == T - 1:
                    dc.addmm_(dA_o, W_o)                    # o_T reads c_{T-1} too
        dW_fi_t = W_c.new_zeros(H, 2 * H)                   # (dW_c^{fi})^T = C_prev^T dA^{fi}
        dP_fi = W_c.new_zeros(ctx.num_tokens, 2 * H)        # (index_add_ into a contiguous
        dQ = W_c.new_zeros(ctx.num_tokens, H)               # tensor: 4x faster than into a view)
        for s, dA in gates.spans():                         # dA: (n, B, 2H) for t = s .. s+n-1
            n = dA.shape[0]
            dA = dA.view(n * B, 2 * H)
            dP_fi.index_add_(0, v[s:s + n].reshape(-1), dA)
            skip = B if s == 0 else 0                                           # c_0 = 0
            dW_fi_t.addmm_(cs[s:s + n].view(n * B, H)[skip:].t(), dA[skip:])   # Σ_t c_{t-1}^T dA_t
        dW_o = torch.mm(dA_o.t(), cs[T - 1])                                    # dA_T^{oT} c_{T-1}
        dP_o = W_c.new_zeros(ctx.num_tokens, H).index_add_(0, v[T - 1], dA_o)
        for s, dq in cand.spans():
            n = dq.shape[0]
            dQ.index_add_(0, v[s:s + n].reshape(-1), dq.view(n * B, H))
        if ctx.reuse:
            PeepLSTMFunction.spare.put(ctx.key, (gates, cand, cs))
        dP, dW_c = torch.cat([dP_fi, dP_o], dim=1), torch.cat([dW_fi_t.t(), dW_o])  # (V, 3H), (3H, H)
        return None, dP, dQ, dW_c, None, None
