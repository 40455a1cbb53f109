r"""The LSTM and peephole LSTM of models/kernels/fused.py with one fused Triton kernel per timestep.

Same equations, arguments (less reuse_buffers: the backward overwrites the forward's gate buffer,
so it runs once per forward, as in training) and results as `LSTMFunction` / `PeepLSTMFunction`;
the docstrings below repeat the equations. Each step's recurrent matrix product and its gates'
element-wise maths happen in one kernel, forward and backward:

  * Grid (⌈B / BLOCK_B⌉, ⌈H / BLOCK_H⌉): a program owns a tile of batch rows b × hidden units j.
    Forward, it accumulates the tile's columns of every gate (4 for the LSTM: g, i, f, o; 3 for
    the peephole LSTM: f, i, o) with tl.dot over K = H, adds the looked-up rows P[v_t], and
    finishes c_t, h_t in registers; it writes the activated gates, c_t and h_t (h_T only, for
    the peephole LSTM) to preallocated buffers.
  * Backward, everything at unit j is local once dh_t[:, j] (LSTM: dA_{t+1} W_h, K = 4H) or
    (dA_{t+1} W_c)[:, j] (peephole, K = 3H) is accumulated: dc_t, dA_t (written over the step's
    gates), dc_t ⊙ f_t (the carry to step t-1, in place) and, peephole, dq_t = dc_t ⊙ i_t.
  * After the loop, in torch: dW = dA^T H_prev (one product over all T·B rows) and
    dP = onehot(v)^T dA, a product instead of index_add's atomics (deterministic).

Cost per step and direction: 2·B·H·4H flops (LSTM; 3H peephole) in fp32 IEEE dots (FMA units,
not TF32 tensor cores), plus reading W_h once per row of tiles (⌈B/BLOCK_B⌉ × 16H² bytes, from
L2). At B = H = 256 that is 134 MFLOP over 128 programs, a few µs: the time loop is bound by
launch latency (2T launches) unless the step is replayed from a CUDA graph (figures in
docs/speed_and_scale.md).
Nothing here syncs with the host or allocates by data, and block sizes come from B and H alone
(no autotuning), so forward and backward can be captured in a CUDA graph (replaying one matched
eager results exactly); kernels compile at the first call, so run one step before capturing.

Triton is imported at the first call (it is not a dependency on CPU machines). With
TRITON_INTERPRET=1 set before triton is first imported in the process (Triton reads it then),
the kernels run on CPU tensors through Triton's interpreter (the tests do so in a child
process). fp32 only.
"""
from __future__ import annotations

import functools
import importlib.util
import os
from types import SimpleNamespace

import torch

tl = None  # triton.language, bound by _kernels() (the kernels' source refers to it)


def available(x: torch.Tensor) -> bool:
    """Whether the Functions below can run on x's device: triton is installed and x is on CUDA,
    or TRITON_INTERPRET=1 and x is a CPU tensor."""
    if importlib.util.find_spec("triton") is None:
        return False
    return x.is_cuda or (x.device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1")


def _blocks(B: int, H: int) -> dict:
    """Tile sizes from the shapes alone: tl.dot needs ≥ 16; aim at ≥ 128 programs per step."""
    BLOCK_B = 16 if B <= 16 else 32
    wide = -(-B // BLOCK_B) * -(-H // 32) >= 128
    return dict(BLOCK_B=BLOCK_B, BLOCK_H=32 if wide else 16, BLOCK_K=16 if H <= 16 else 32)


# ---------------------------------------------------------------------------------------------
# Kernels (plain functions, wrapped by triton.jit in _kernels). Pointers are to one timestep's
# rows; row-major (B, nH) buffers, k runs over the product's inner dimension. H is a compile-time
# constant (one compilation per hidden size; static loop bounds, folded index maths).

def _lstm_forward_step(v_t, P, W_hT, h_prev, c_prev, gates_t, c_t, h_t, B, H: tl.constexpr,
                       stride_P, reset_token, FIRST: tl.constexpr, RESET: tl.constexpr,
                       BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr):
    """a_t = P[v_t] + h_{t-1} W_h^T for the tile's units of all 4 gates; g, i, f, o, c_t, h_t.
    RESET: c_t = 0 where v_t is reset_token (the padding)."""
    b = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)              # batch rows
    j = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)              # hidden units
    rows, units = b < B, j < H
    tile = rows[:, None] & units[None, :]
    a_g = tl.zeros((BLOCK_B, BLOCK_H), tl.float32)
    a_i = tl.zeros((BLOCK_B, BLOCK_H), tl.float32)
    a_f = tl.zeros((BLOCK_B, BLOCK_H), tl.float32)
    a_o = tl.zeros((BLOCK_B, BLOCK_H), tl.float32)
    if not FIRST:                                                       # h_0 = 0
        for k0 in range(0, H, BLOCK_K):
            k = k0 + tl.arange(0, BLOCK_K)
            h = tl.load(h_prev + b[:, None] * H + k[None, :],
                        mask=rows[:, None] & (k < H)[None, :], other=0.0)  # (BB, BK)
            w = W_hT + k[:, None] * (4 * H) + j[None, :]                # (BK, BH) of gate g
            w_mask = (k < H)[:, None] & units[None, :]
            a_g = tl.dot(h, tl.load(w, mask=w_mask, other=0.0), acc=a_g, input_precision="ieee")
            a_i = tl.dot(h, tl.load(w + H, mask=w_mask, other=0.0), acc=a_i,
                         input_precision="ieee")
            a_f = tl.dot(h, tl.load(w + 2 * H, mask=w_mask, other=0.0), acc=a_f,
                         input_precision="ieee")
            a_o = tl.dot(h, tl.load(w + 3 * H, mask=w_mask, other=0.0), acc=a_o,
                         input_precision="ieee")
    v = tl.load(v_t + b, mask=rows, other=0)                            # (BB,) token ids
    p = P + v[:, None] * stride_P + j[None, :]                          # (BB, BH) of P[v_t]^g
    g = 2 * tl.sigmoid(2 * (a_g + tl.load(p, mask=tile, other=0.0))) - 1  # tanh
    i = tl.sigmoid(a_i + tl.load(p + H, mask=tile, other=0.0))
    f = tl.sigmoid(a_f + tl.load(p + 2 * H, mask=tile, other=0.0))
    o = tl.sigmoid(a_o + tl.load(p + 3 * H, mask=tile, other=0.0))
    if FIRST:                                                           # c_0 = 0
        c = g * i
    else:
        c = g * i + tl.load(c_prev + b[:, None] * H + j[None, :], mask=tile, other=0.0) * f
    if RESET:
        c = tl.where((v == reset_token)[:, None], 0.0, c)
    h = (2 * tl.sigmoid(2 * c) - 1) * o
    out = gates_t + b[:, None] * (4 * H) + j[None, :]
    tl.store(out, g, mask=tile)
    tl.store(out + H, i, mask=tile)
    tl.store(out + 2 * H, f, mask=tile)
    tl.store(out + 3 * H, o, mask=tile)
    tl.store(c_t + b[:, None] * H + j[None, :], c, mask=tile)
    tl.store(h_t + b[:, None] * H + j[None, :], h, mask=tile)


def _lstm_backward_step(dA_next, W_h, dh_T, v_t, gates_t, c_prev, c_t, dc_f, B, H: tl.constexpr,
                        reset_token, LAST: tl.constexpr, RESET: tl.constexpr,
                        BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr):
    """dh_t = dA_{t+1} W_h (dh_T at t = T), dc_t; dA_t over gates_t, dc_t ⊙ f_t over dc_f.
    RESET: no gradient reaches c_t's inputs where v_t is reset_token (c_t was set to 0)."""
    b = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    j = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    rows, units = b < B, j < H
    tile = rows[:, None] & units[None, :]
    at = b[:, None] * H + j[None, :]                                    # (BB, BH) in a (B, H) row
    if LAST:
        dh = tl.load(dh_T + at, mask=tile, other=0.0)
        dc_next = tl.zeros((BLOCK_B, BLOCK_H), tl.float32)              # dc_{T+1} ⊙ f_{T+1} := 0
    else:
        dh = tl.zeros((BLOCK_B, BLOCK_H), tl.float32)
        for k0 in range(0, 4 * H, BLOCK_K):
            k = k0 + tl.arange(0, BLOCK_K)
            dA = tl.load(dA_next + b[:, None] * (4 * H) + k[None, :],
                         mask=rows[:, None] & (k < 4 * H)[None, :], other=0.0)  # (BB, BK)
            w = tl.load(W_h + k[:, None] * H + j[None, :],
                        mask=(k < 4 * H)[:, None] & units[None, :], other=0.0)  # (BK, BH)
            dh = tl.dot(dA, w, acc=dh, input_precision="ieee")
        dc_next = tl.load(dc_f + at, mask=tile, other=0.0)
    gate = gates_t + b[:, None] * (4 * H) + j[None, :]
    g = tl.load(gate, mask=tile, other=0.0)
    i = tl.load(gate + H, mask=tile, other=0.0)
    f = tl.load(gate + 2 * H, mask=tile, other=0.0)
    o = tl.load(gate + 3 * H, mask=tile, other=0.0)
    tanh_c = 2 * tl.sigmoid(2 * tl.load(c_t + at, mask=tile, other=0.0)) - 1
    dc = dc_next + dh * o * (1 - tanh_c * tanh_c)
    if RESET:
        v = tl.load(v_t + b, mask=rows, other=0)
        dc = tl.where((v == reset_token)[:, None], 0.0, dc)
    tl.store(gate, dc * i * (1 - g * g), mask=tile)
    tl.store(gate + H, dc * g * i * (1 - i), mask=tile)
    tl.store(gate + 2 * H, dc * tl.load(c_prev + at, mask=tile, other=0.0) * f * (1 - f),
             mask=tile)
    tl.store(gate + 3 * H, dh * tanh_c * o * (1 - o), mask=tile)
    tl.store(dc_f + at, dc * f, mask=tile)


def _peep_forward_step(v_t, P, Q, W_cT, c_prev, gates_t, c_t, h_T, B, H: tl.constexpr,
                       stride_P, stride_Q, FIRST: tl.constexpr, LAST: tl.constexpr,
                       BLOCK_B: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr):
    """f, i, o = σ(P[v_t] + c_{t-1} W_c^T) for the tile's units, c_t; h_T = tanh(c_T) ⊙ o_T."""
    b = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    j = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    rows, units = b < B, j < H
    tile = rows[:, None] & units[None, :]
    at = b[:, None] * H + j[None, :]
    a_f = tl.zeros((BLOCK_B, BLOCK_H), tl.float32)
    a_i = tl.zeros((BLOCK_B, BLOCK_H), tl.float32)
    a_o = tl.zeros((BLOCK_B, BLOCK_H), tl.float32)
    if not FIRST:                                                       # c_0 = 0
        for k0 in range(0, H, BLOCK_K):
            k = k0 + tl.arange(0, BLOCK_K)
            c = tl.load(c_prev + b[:, None] * H + k[None, :],
                        mask=rows[:, None] & (k < H)[None, :], other=0.0)  # (BB, BK)
            w = W_cT + k[:, None] * (3 * H) + j[None, :]                # (BK, BH) of gate f
            w_mask = (k < H)[:, None] & units[None, :]
            a_f = tl.dot(c, tl.load(w, mask=w_mask, other=0.0), acc=a_f, input_precision="ieee")
            a_i = tl.dot(c, tl.load(w + H, mask=w_mask, other=0.0), acc=a_i,
                         input_precision="ieee")
            a_o = tl.dot(c, tl.load(w + 2 * H, mask=w_mask, other=0.0), acc=a_o,
                         input_precision="ieee")
    v = tl.load(v_t + b, mask=rows, other=0)                            # (BB,) token ids
    p = P + v[:, None] * stride_P + j[None, :]                          # (BB, BH) of P[v_t]^f
    f = tl.sigmoid(a_f + tl.load(p, mask=tile, other=0.0))
    i = tl.sigmoid(a_i + tl.load(p + H, mask=tile, other=0.0))
    o = tl.sigmoid(a_o + tl.load(p + 2 * H, mask=tile, other=0.0))
    q = tl.load(Q + v[:, None] * stride_Q + j[None, :], mask=tile, other=0.0)  # Q[v_t]
    if FIRST:
        c = q * i
    else:
        c = q * i + tl.load(c_prev + at, mask=tile, other=0.0) * f
    out = gates_t + b[:, None] * (3 * H) + j[None, :]
    tl.store(out, f, mask=tile)
    tl.store(out + H, i, mask=tile)
    tl.store(out + 2 * H, o, mask=tile)
    tl.store(c_t + at, c, mask=tile)
    if LAST:
        tl.store(h_T + at, (2 * tl.sigmoid(2 * c) - 1) * o, mask=tile)


def _peep_backward_step(dA_next, W_c, dh_T, v_t, Q, gates_t, c_prev, c_t, dq_t, dc_f, B,
                        H: tl.constexpr, stride_Q, LAST: tl.constexpr, BLOCK_B: tl.constexpr,
                        BLOCK_H: tl.constexpr, BLOCK_K: tl.constexpr):
    """dc_t (from dh_T at t = T, else dc_{t+1} ⊙ f_{t+1} + dA_{t+1} W_c), then dA_t over gates_t,
    dq_t = dc_t ⊙ i_t and dc_t ⊙ f_t over dc_f."""
    b = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    j = tl.program_id(1) * BLOCK_H + tl.arange(0, BLOCK_H)
    rows, units = b < B, j < H
    tile = rows[:, None] & units[None, :]
    at = b[:, None] * H + j[None, :]
    gate = gates_t + b[:, None] * (3 * H) + j[None, :]
    f = tl.load(gate, mask=tile, other=0.0)
    i = tl.load(gate + H, mask=tile, other=0.0)
    if LAST:                                                            # h_T = tanh(c_T) ⊙ o_T
        o = tl.load(gate + 2 * H, mask=tile, other=0.0)
        dh = tl.load(dh_T + at, mask=tile, other=0.0)
        tanh_c = 2 * tl.sigmoid(2 * tl.load(c_t + at, mask=tile, other=0.0)) - 1
        dc = dh * o * (1 - tanh_c * tanh_c)
        tl.store(gate + 2 * H, dh * tanh_c * o * (1 - o), mask=tile)   # dA_T^o
    else:
        dc = tl.load(dc_f + at, mask=tile, other=0.0)
        for k0 in range(0, 3 * H, BLOCK_K):
            k = k0 + tl.arange(0, BLOCK_K)
            dA = tl.load(dA_next + b[:, None] * (3 * H) + k[None, :],
                         mask=rows[:, None] & (k < 3 * H)[None, :], other=0.0)  # (BB, BK)
            w = tl.load(W_c + k[:, None] * H + j[None, :],
                        mask=(k < 3 * H)[:, None] & units[None, :], other=0.0)  # (BK, BH)
            dc = tl.dot(dA, w, acc=dc, input_precision="ieee")
        tl.store(gate + 2 * H, tl.zeros((BLOCK_B, BLOCK_H), tl.float32), mask=tile)  # h_t unread
    v = tl.load(v_t + b, mask=rows, other=0)
    q = tl.load(Q + v[:, None] * stride_Q + j[None, :], mask=tile, other=0.0)  # Q[v_t]
    tl.store(gate, dc * tl.load(c_prev + at, mask=tile, other=0.0) * f * (1 - f), mask=tile)
    tl.store(gate + H, dc * q * i * (1 - i), mask=tile)
    tl.store(dq_t + at, dc * i, mask=tile)
    tl.store(dc_f + at, dc * f, mask=tile)


@functools.cache
def _kernels() -> SimpleNamespace:
    """Import triton and wrap the kernels, once (TRITON_INTERPRET is read here)."""
    global tl
    import triton
    import triton.language

    tl = triton.language
    return SimpleNamespace(cdiv=triton.cdiv, **{fn.__name__.lstrip("_"): triton.jit(fn) for fn in (
        _lstm_forward_step, _lstm_backward_step, _peep_forward_step, _peep_backward_step)})


# ---------------------------------------------------------------------------------------------

def _check(*tensors: torch.Tensor) -> None:
    for x in tensors:
        if x.dtype != torch.float32:
            raise TypeError(f"triton_cells supports float32 only, got {x.dtype}")


def _onehot(v: torch.Tensor, num_tokens: int, like: torch.Tensor) -> torch.Tensor:
    """(T·B, V) rows e_{v_tb}: dP = onehot^T dA sums dA's rows by token, without atomics."""
    flat = v.reshape(-1, 1)
    return like.new_zeros(flat.shape[0], num_tokens).scatter_(1, flat, 1.0)


def _take_gates(ctx) -> torch.Tensor:
    if not ctx.keep:
        raise RuntimeError("backward through a Function applied with keep=False (evaluation)")
    if ctx.gates is None:
        raise RuntimeError("backward ran twice: the first overwrote the forward's gates")
    gates, ctx.gates = ctx.gates, None
    return gates


class LSTMTritonFunction(torch.autograd.Function):
    r"""h_T of the LSTM from token ids v (T, B), the table P (V, 4H) [gate order g, i, f, o]
    and W_h (4H, H); keep=False: evaluation (no backward, one step's gates kept);
    reset_token (an int, or None): c_t = 0 where v_t == reset_token (model.reset_at_padding).

        a_t = P[v_t] + h_{t-1} W_h^T
        g_t = tanh(a_t^g),  i_t, f_t, o_t = σ(a_t^i), σ(a_t^f), σ(a_t^o)
        c_t = g_t ⊙ i_t + c_{t-1} ⊙ f_t,   h_t = tanh(c_t) ⊙ o_t,   h_0 = c_0 = 0

    Backward, with dh_T given and dc_{T+1} ⊙ f_{T+1} := 0, for t = T..1:
        dh_t  = dA_{t+1} W_h  (t < T)
        dc_t  = dc_{t+1} ⊙ f_{t+1} + dh_t ⊙ o_t ⊙ (1 - tanh² c_t)
        dA_t  = [dc_t ⊙ i_t ⊙ (1 - g_t²),  dc_t ⊙ g_t ⊙ i_t(1 - i_t),
                 dc_t ⊙ c_{t-1} ⊙ f_t(1 - f_t),  dh_t ⊙ tanh c_t ⊙ o_t(1 - o_t)]
        dW_h = Σ_t dA_t^T h_{t-1},   dP[v] = Σ_{t,b: v_tb = v} dA_tb
    """

    @staticmethod
    def forward(ctx, v, P, W_h, keep=True, reset_token=None):
        _check(P, W_h)
        k = _kernels()
        T, B = v.shape
        H = W_h.shape[1]
        v, P = v.contiguous(), P if P.stride(1) == 1 else P.contiguous()
        W_hT = W_h.t().contiguous()                         # (H, 4H)
        gates = P.new_empty(T if keep else 1, B, 4 * H)     # g, i, f, o after tanh / σ
        cs = P.new_empty(T + 1 if keep else 2, B, H)        # c_0 .. c_T (keep=False: alternate)
        hs = P.new_empty(T + 1 if keep else 2, B, H)        # h_0 .. h_T
        cs[0], hs[0] = 0, 0
        n = len(cs)
        blocks = _blocks(B, H)
        grid = (k.cdiv(B, blocks["BLOCK_B"]), k.cdiv(H, blocks["BLOCK_H"]))
        for t in range(T):
            k.lstm_forward_step[grid](v[t], P, W_hT, hs[t % n], cs[t % n], gates[t % len(gates)],
                                      cs[(t + 1) % n], hs[(t + 1) % n], B, H, P.stride(0),
                                      -1 if reset_token is None else reset_token, FIRST=t == 0,
                                      RESET=reset_token is not None, **blocks)
        ctx.save_for_backward(v, cs, hs, W_h)
        ctx.gates, ctx.num_tokens, ctx.keep, ctx.reset_token = gates, P.shape[0], keep, reset_token
        return hs[T % n].clone()                            # (B, H)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dh_T):
        v, cs, hs, W_h = ctx.saved_tensors
        gates = _take_gates(ctx)                            # (T, B, 4H), becomes dA
        k = _kernels()
        T, B = v.shape
        H = W_h.shape[1]
        dh_T = dh_T.contiguous()                            # (B, H)
        dc_f = torch.empty_like(dh_T)                       # dc_{t+1} ⊙ f_{t+1}
        blocks = _blocks(B, H)
        grid = (k.cdiv(B, blocks["BLOCK_B"]), k.cdiv(H, blocks["BLOCK_H"]))
        for t in range(T - 1, -1, -1):
            k.lstm_backward_step[grid](gates[min(t + 1, T - 1)], W_h, dh_T, v[t], gates[t], cs[t],
                                       cs[t + 1], dc_f, B, H,
                                       -1 if ctx.reset_token is None else ctx.reset_token,
                                       LAST=t == T - 1, RESET=ctx.reset_token is not None, **blocks)
        dA = gates.view(T * B, 4 * H)
        dW_h = dA.t() @ hs[:T].reshape(T * B, H)                            # (4H, H)
        dP = _onehot(v, ctx.num_tokens, dA).t() @ dA                        # (V, 4H)
        return None, dP, dW_h, None, None


class PeepLSTMTritonFunction(torch.autograd.Function):
    r"""h_T of the peephole LSTM from token ids v (T, B), the gates' table P (V, 3H)
    [order f, i, o], the candidates' table Q (V, H) = σ(Emb W_cx^T + b_c) and W_c (3H, H);
    keep=False: evaluation (no backward, one step's gates kept).

        f_t, i_t, o_t = σ(P[v_t] + c_{t-1} W_c^T)
        c_t = Q[v_t] ⊙ i_t + c_{t-1} ⊙ f_t,   h_T = tanh(c_T) ⊙ o_T,   c_0 = 0

    Backward, with dh_T given (dh_t = 0 for t < T since only h_T is read), q_t = Q[v_t]:
        dc_T  = dh_T ⊙ o_T ⊙ (1 - tanh² c_T),  dA_T^o = dh_T ⊙ tanh c_T ⊙ o_T(1 - o_T)
        dA_t^f = dc_t ⊙ c_{t-1} ⊙ f_t(1 - f_t),  dA_t^i = dc_t ⊙ q_t ⊙ i_t(1 - i_t),  dA_t^o = 0
        dq_t = dc_t ⊙ i_t,   dc_{t-1} = dc_t ⊙ f_t + dA_t W_c
        dW_c = Σ_t dA_t^T c_{t-1},   dP[v], dQ[v] = Σ_{t,b: v_tb = v} dA_tb, dq_tb
    """

    @staticmethod
    def forward(ctx, v, P, Q, W_c, keep=True):
        _check(P, Q, W_c)
        k = _kernels()
        T, B = v.shape
        H = W_c.shape[1]
        v = v.contiguous()
        P = P if P.stride(1) == 1 else P.contiguous()       # P may be a column slice (V, 4H)
        Q = Q if Q.stride(1) == 1 else Q.contiguous()
        W_cT = W_c.t().contiguous()                         # (H, 3H)
        gates = P.new_empty(T if keep else 1, B, 3 * H)     # f, i, o after σ
        cs = P.new_empty(T + 1 if keep else 2, B, H)        # c_0 .. c_T (keep=False: alternate)
        cs[0] = 0
        h_T = P.new_empty(B, H)
        n = len(cs)
        blocks = _blocks(B, H)
        grid = (k.cdiv(B, blocks["BLOCK_B"]), k.cdiv(H, blocks["BLOCK_H"]))
        for t in range(T):
            k.peep_forward_step[grid](v[t], P, Q, W_cT, cs[t % n], gates[t % len(gates)],
                                      cs[(t + 1) % n], h_T, B, H, P.stride(0), Q.stride(0),
                                      FIRST=t == 0, LAST=t == T - 1, **blocks)
        ctx.save_for_backward(v, Q, cs, W_c)
        ctx.gates, ctx.num_tokens, ctx.keep = gates, P.shape[0], keep
        return h_T                                          # (B, H)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dh_T):
        v, Q, cs, W_c = ctx.saved_tensors
        gates = _take_gates(ctx)                            # (T, B, 3H), becomes dA
        k = _kernels()
        T, B = v.shape
        H = W_c.shape[1]
        dh_T = dh_T.contiguous()                            # (B, H)
        dq = torch.empty_like(cs[1:])                       # (T, B, H): dq_t = dc_t ⊙ i_t
        dc_f = torch.empty_like(dh_T)                       # dc_{t+1} ⊙ f_{t+1}
        blocks = _blocks(B, H)
        grid = (k.cdiv(B, blocks["BLOCK_B"]), k.cdiv(H, blocks["BLOCK_H"]))
        for t in range(T - 1, -1, -1):
            k.peep_backward_step[grid](gates[min(t + 1, T - 1)], W_c, dh_T, v[t], Q, gates[t],
                                       cs[t], cs[t + 1], dq[t], dc_f, B, H, Q.stride(0),
                                       LAST=t == T - 1, **blocks)
        dA = gates.view(T * B, 3 * H)
        onehot = _onehot(v, ctx.num_tokens, dA)                             # (T·B, V)
        dW_c = dA.t() @ cs[:T].reshape(T * B, H)                            # (3H, H)
        dP = onehot.t() @ dA                                                # (V, 3H)
        dQ = onehot.t() @ dq.view(T * B, H)                                 # (V, H)
        return None, dP, dQ, dW_c, None
