"""Hand-written backpropagation through time for the LSTM and the peephole LSTM, on the CPU.

The models' `recurrence` is a plain autograd loop (every h_t is in the graph, which the
gradient-flow study needs). When only h_T is read, `forward` calls the Functions below instead:
the same equations, evaluated in a loop that writes into preallocated buffers without recording a
graph, and a backward loop with one (B, 4H) x (4H, H) product per step. Both loops are a few
ATen calls per timestep, so at small sizes their cost is the calls themselves and at large sizes
the products and the passes over memory; what follows removes calls and passes without changing
what is computed (docs/speed_and_scale.md has the measurements):

  * Inputs are tokens, x_t = Emb[v_t], so W_x x_t + b = P[v_t] with the (V, 4H) table
    P = Emb W_x^T + b: one tiny product instead of a (T·B, E) x (E, 4H) product and its two
    backward products; autograd takes dP back to Emb, W_x, b. For small vocabularies
    (V <= ONEHOT_MAX_VOCAB; V = 3 for palindromes) the LSTM adds P[v_t] inside its step's
    product, a_t = [h_{t-1} | onehot(v_t)] [W_h^T; P], so no pass gathers rows and the
    backward's weight product gives dP too; otherwise rows are gathered per block of
    timesteps and dP[v] = Σ_{t,b: v_tb = v} dA_tb is an index_add.
  * The recurrent weight gradient is formed after the loop, one product per block of timesteps
    instead of one small product per step:
        [dW_h^T; dP] = Σ_t [h_{t-1} | onehot(v_t)]^T dA_t = X^T dA      dA: (T·B, 4H)
    (X without its one-hot columns for larger vocabularies; the peephole LSTM's likewise with
    c_{t-1}).
  * Every per-step view (a gate's columns of step t, c_{t-1}, h_t, ...) is made once per buffer
    set and kept with it, so the loops only compute; operands the backward multiplies by the same
    factor sit side by side, so one broadcast product serves two gates:
    [g_t | c_{t-1}] ⊙ dc_t gives the i and f gates' factors, [i_t | f_t] ⊙ dc_t gives dA_t^g's
    factor and the carry dc_t ⊙ f_t (LSTM); [c_{t-1} | q_t] ⊙ dc_t (peephole LSTM).
  * The LSTM's forward stores K_t = o_t ⊙ (1 - tanh² c_t) = o_t - h_t ⊙ tanh c_t (one call) over
    the consumed pre-activation of g, so the backward's dc_t is one call:
    dc_t = dc_{t+1} ⊙ f_{t+1} + dh_t ⊙ K_t.
  * dA_t overwrites the step's gate activations once they are used (no second (T, B, 4H)
    buffer), buffers come in blocks of at most 16 MiB (see _TimeBlocks), and one step's buffers
    are kept for the next step (see _Spare). So the backward can run once per forward (as in
    training); reuse_buffers=False copies what it overwrites instead (gradcheck, retain_graph).
    keep=False (evaluation, no backward) keeps two steps only.
  * tanh is ATen's tanh, or 2σ(2x) - 1 on CPUs where ATen's tanh is much slower than its
    sigmoid (see tanh_by_sigmoid).
  * Both loops also exist compiled for this machine (kernels=("native", ...): native.py), one
    call each for all T steps, chosen per machine by measurement (training/impl.py).
  * The peephole LSTM reads h_t at t = T only, so its output gate is computed at t = T only:
    the per-step products are (B, H) x (H, 2H) forward and (B, 2H) x (2H, H) backward.

Notation: a_t are a step's pre-activations (B, 4H) and dA_t = dL/da_t; dA stacks them (T, B, 4H).
"""
from __future__ import annotations

import torch

from rnn_experiments.models.kernels import measured, native


BLOCK_BYTES = 16 * 2**20
TANH_BY_SIGMOID: bool | None = None   # None: measured at the first call (see tanh_by_sigmoid)
SIGMOID_TANH_MIN_SIZE = 128 * 128     # B·H from which 2σ(2x) - 1 may replace tanh
ONEHOT_MAX_VOCAB = 64                 # up to this many tokens, P[v_t] is a product with onehot(v_t)
GEMM: str | None = None               # "mkl" | "onednn"; None: measured per shape (see gemm_library)
_CHOSEN: dict = {}                    # this process's measured kernel choices (measured.choose)


class _TimeBlocks:
    """A (T, *shape) buffer held as blocks of at most BLOCK_BYTES along time, with one view per
    timestep (`steps`) and, made once and cached, per-step views of column ranges (`cols`).

    Why blocks: glibc serves single allocations above 32 MiB with fresh pages on every call, and
    faulting those pages in cost as much as the step's matrix products; smaller blocks come from
    the heap (and _Spare keeps them from one step to the next, since glibc also trims a freed heap).
    `ring=n` holds n steps only, step t in slot t mod n (evaluation: no backward reads them).
    """

    def __init__(self, T: int, shape: tuple, like: torch.Tensor, ring: int | None = None):
        if ring:
            self.k, self.blocks = ring, [like.new_empty(ring, *shape)]
            self.steps = [self.blocks[0][t % ring] for t in range(T)]
        else:
            step_bytes = like.element_size() * torch.Size(shape).numel()
            self.k = max(1, BLOCK_BYTES // step_bytes)      # timesteps per block
            self.blocks = [like.new_empty(min(self.k, T - s), *shape) for s in range(0, T, self.k)]
            self.steps = [step for block in self.blocks for step in block.unbind(0)]
        self._cols: dict = {}

    def clone(self) -> "_TimeBlocks":
        copy = object.__new__(_TimeBlocks)
        copy.k, copy.blocks, copy._cols = self.k, [b.clone() for b in self.blocks], {}
        copy.steps = [step for block in copy.blocks for step in block.unbind(0)]
        return copy

    def cols(self, start: int, stop: int, split: int = 0) -> list:
        """[step[..., start:stop] for each step]; split=n: each viewed as (..., n, (stop-start)/n)."""
        key = (start, stop, split)
        if key not in self._cols:
            views = [s[..., start:stop] for s in self.steps]
            if split:
                views = [s.view(*s.shape[:-1], split, -1) for s in views]
            self._cols[key] = views
        return self._cols[key]

    def spans(self):
        """(first timestep, block) pairs."""
        return [(n * self.k, block) for n, block in enumerate(self.blocks)]


class _Spare:
    """One forward's buffers, handed on by its backward to the next forward of the same sizes.

    A training step allocates the same buffers every step (about 8·T·B·H floats for the LSTM).
    Freed, glibc gives most of them back to the kernel (heap trim, or munmap above 32 MiB) and
    the next step faults every page in again. Holding one step's buffers in between adds nothing
    to the peak memory, and keeps their per-step views too.
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


def _calls(fn, n):
    """fn called n times: one timed candidate of `measured.choose`."""
    def run():
        for _ in range(n):
            fn()
    return run


def tanh_by_sigmoid() -> bool:
    """Whether to evaluate tanh x as 2σ(2x) - 1: where ATen's float tanh takes more than twice as
    long as its sigmoid (it depends on the CPU and the vector math library ATen picks for it), the
    identity's sigmoid and two cheap passes are faster; where it does not, ATen's tanh is
    (docs/results/speed_measurements.md has kernel times of two machines). Measured on a 128 x 128
    tensor (one thread: below ATen's grain size; 20 calls per repeat, interleaved rounds, a few
    ms; the two cases differ by far more than a busy machine's noise) once per machine and torch
    version (this user's cache of measured choices, measured.py), unless TANH_BY_SIGMOID is set;
    ATen's tanh under torch.use_deterministic_algorithms (results must not depend on a timing).
    A training step's own choice (training/impl.py) may set it per model instead. The identity
    is exact; in float32 its absolute error stays below 1.2e-7, the rounding of the values."""
    if TANH_BY_SIGMOID is not None:
        return TANH_BY_SIGMOID
    if torch.are_deterministic_algorithms_enabled():
        return False
    key = "kernel tanh-or-sigmoid 128x128"
    if key not in _CHOSEN:
        x, out = torch.linspace(-4, 4, 128 * 128).view(128, 128), torch.empty(128, 128)  # no RNG draw
        _CHOSEN[key] = measured.choose(key, {"tanh": _calls(lambda: torch.tanh(x, out=out), 20),
                                             "sigmoid": _calls(lambda: torch.sigmoid(x, out=out), 20)},
                                       "tanh", rounds=3, repeats=5, margin=2.0, drop=float("inf"))[0]
    return _CHOSEN[key] == "sigmoid"


def _onednn_linear():
    """oneDNN's fp32 matmul as torch exposes it (x W^T, the op torch.compile's CPU backend
    calls for linear layers), or None in a build without it."""
    if not torch.backends.mkldnn.is_available():
        return None
    return getattr(torch.ops.mkldnn, "_linear_pointwise", None)


def gemm_library(M: int, K: int, N: int, dtype: torch.dtype, forced: str | None = None) -> str:
    """Which library computes a per-step product (M, K) x (K, N): "mkl" (torch.mm, what ATen
    calls for float32) or "onednn" (what torch.nn.LSTM calls).

    Where the products are large enough for the kernel's vector width to matter, the two can
    differ: MKL's sgemm takes its AVX2 path on AMD CPUs, oneDNN takes AVX-512 wherever the CPU
    has it. So from M·K·N = 2^23 on (B = 128, H = 128 and up), float32 only, both are timed once
    per machine, shape and thread count (this user's cache of measured choices, measured.py), in
    two rounds of 8 calls each, and oneDNN is used if it was at least 1.25x faster in both (a busy
    machine's noise should not pick it). Smaller products, where oneDNN's per-call overhead makes
    it the slower, and runs under torch.use_deterministic_algorithms (whose results must not
    depend on a timing) use MKL. GEMM overrides the choice; `forced` (a training step's own
    choice, training/impl.py) too, oneDNN for float32 only. Both compute the product in float32,
    up to the order of sums."""
    linear = _onednn_linear()
    if forced is not None:
        return forced if forced == "mkl" or (dtype == torch.float32 and linear is not None) else "mkl"
    if GEMM is not None:
        return GEMM
    if (dtype != torch.float32 or linear is None or M * K * N < 2**23
            or torch.are_deterministic_algorithms_enabled()):
        return "mkl"
    key = f"kernel gemm {M}x{K}x{N} threads={torch.get_num_threads()}"
    if key not in _CHOSEN:
        x = torch.linspace(-1, 1, M * K).view(M, K)         # no RNG draw
        w = torch.linspace(-1, 1, N * K).view(N, K)
        out = torch.empty(M, N)
        try:
            linear(x, w, None, "none", [], "")
        except RuntimeError:                                # this shape not supported: MKL
            _CHOSEN[key] = "mkl"
            return "mkl"
        _CHOSEN[key] = measured.choose(key, {"mkl": lambda: torch.mm(x, w.t(), out=out),
                                             "onednn": lambda: linear(x, w, None, "none", [], "")},
                                       "mkl", rounds=2, repeats=8, margin=1.25, drop=float("inf"))[0]
    return _CHOSEN[key]


def _tanh_into(x, out, by_sigmoid: bool, minus_one):
    """tanh x into out: one call, or 2σ(2x) - 1 in three."""
    if not by_sigmoid:
        return torch.tanh(x, out=out)
    torch.mul(x, 2, out=out).sigmoid_()
    return torch.add(minus_one, out, alpha=2, out=out)


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


def _member_rows(v: torch.Tensor, V: int) -> torch.Tensor:
    """Token ids v (T, K, B) as rows of the members' tables flattened to (K·V, ·): k·V + v."""
    return v + torch.arange(v.shape[1], device=v.device).view(1, -1, 1) * V


def _check_backward(ctx) -> None:
    """A clear error where the forward kept nothing for a backward."""
    if not ctx.keep:
        raise RuntimeError("backward through a forward run with keep=False (evaluation: "
                           "it keeps no buffers; call it with keep=True to backpropagate)")
    if ctx.buf is None:
        raise RuntimeError("backward ran twice on a graph built with reuse_buffers=True "
                           "(pass reuse_buffers=False to backpropagate more than once)")


class _LSTMBuffers:
    """The LSTM forward's storage, per step t (0-based, T steps), with its views:
        x[t]     = [h_{t-1} | onehot(v_t)] (B, H + V), h_{-1} := h_0 = 0: the left operand of
                   step t's product with [W_h^T; P] (one (T, B, H + V) tensor, for dW_h and dP);
                   [h_{t-1}] (B, H) where V > ONEHOT_MAX_VOCAB (P[v_t] is gathered instead)
        gates[t] = [g-slot | i | f | o] (B, 4H): a_t, then i, f, o after σ and K_t in the g
                   slot, then dA_t (backward)
        gc[t]    = [g_t | c_{t-1}] (B, 2H), c_{-1} := c_0 = 0; c_T in c_last
        tanh_c[t] = tanh c_{t+1}; h_{t+1} in x[t+1] (h_T in h_last)
    and the backward's per-step temporaries. keep=False: rings of one or two steps. A pack's
    members (LSTMFunction's member axis) add a leading K to every per-step shape: (K, B, 4H), ..."""

    def __init__(self, T: int, lead: tuple, H: int, V: int, like: torch.Tensor, keep: bool):
        """lead: (B,), or (K, B) for K members; V: the one-hot columns of x (0: none)."""
        ring = None if keep else 1
        self.gates = _TimeBlocks(T, (*lead, 4 * H), like, ring)
        self.gc = _TimeBlocks(T, (*lead, 2 * H), like, None if keep else 2)
        self.tanh_c = _TimeBlocks(T, (*lead, H), like, ring)
        self.x = like.new_zeros(T if keep else 2, *lead, H + V)
        self.x_steps = [self.x[t if keep else t % 2] for t in range(T)]
        self.h_last, self.c_last = like.new_empty(*lead, H), like.new_empty(*lead, H)
        self.h_next = [x[..., :H] for x in self.x_steps[1:]] + [self.h_last]   # where step t writes h_t
        self.minus_one = like.new_full((), -1.0)
        c_prev = self.gc.cols(H, 2 * H)                     # c_{t-1} of step t
        self.c_next = c_prev[1:] + [self.c_last]            # where step t writes c_t
        self.dh, self.dc = like.new_empty(*lead, H), like.new_empty(*lead, H)
        self.grad = like.new_empty(*lead, 3 * H)            # dL/d(i, f, o) after σ, one step
        self.di_df = like.new_empty(*lead, 2, H)            # [dc_t ⊙ i_t, dc_t ⊙ f_t]


class LSTMFunction(torch.autograd.Function):
    r"""h_T of the LSTM from token ids v (T, B), the table P (V, 4H) [gate order g, i, f, o]
    and W_h (4H, H); reset_token (an int, or None): c_t = 0 where v_t == reset_token
    (model.reset_at_padding), i.e. c_t is multiplied by m_t = [v_t ≠ reset_token]; kernels:
    (tanh: "aten" | "sigmoid" | "native", gemm: "mkl" | "onednn"), either None for the kernel's
    own choice (tanh_by_sigmoid, gemm_library): a training step's measured choice
    (training/impl.py); "native": both loops below as one call each of the compiled loop
    (native.py, native_lstm.c: the same buffers and equations, tanh as 2σ(2x) - 1, BLAS products).

        a_t = P[v_t] + h_{t-1} W_h^T
        g_t = tanh(a_t^g),  i_t, f_t, o_t = σ(a_t^i), σ(a_t^f), σ(a_t^o)
        c_t = (g_t ⊙ i_t + c_{t-1} ⊙ f_t) ⊙ m_t,   h_t = tanh(c_t) ⊙ o_t,   h_0 = c_0 = 0

    Backward, with dh_T given and dc_{T+1} ⊙ f_{T+1} := 0, for t = T..1:
        dc_t  = (dc_{t+1} ⊙ f_{t+1} + dh_t ⊙ K_t) ⊙ m_t,   K_t = o_t ⊙ (1 - tanh² c_t)
        dA_t  = [dc_t ⊙ i_t ⊙ (1 - g_t²),  dc_t ⊙ g_t ⊙ i_t(1 - i_t),
                 dc_t ⊙ c_{t-1} ⊙ f_t(1 - f_t),  dh_t ⊙ tanh c_t ⊙ o_t(1 - o_t)]
        dh_{t-1} = dA_t W_h
    (m_t = 1 everywhere without a reset_token.)

    A pack's members (training/pack.py): v (T, K, B), P (K, V, 4H), W_h (K, 4H, H) -> h_T
    (K, B, H), member k's recurrence on its own tokens and weights. Every element-wise call
    then works on all K members' (K, B, ·) rows at once, and the products are batched products
    over k (MKL; oneDNN takes 2-D products only); dW_h, dP are summed over the steps with one
    batched product a step (a member's rows of a block are not one matrix in memory, and a
    member-major copy of the stored steps cost more than the products it saves). Member k's numbers equal its own call's up to the
    order of sums in the products (tests/models/test_stacked.py).
    """

    spare = _Spare()                    # buffers of the last backward
    eval_spare = _Spare()               # buffers of the last forward with keep=False

    @staticmethod
    def forward(ctx, v, P, W_h, reuse_buffers=True, keep=True, reset_token=None, kernels=None):
        T, lead = v.shape[0], tuple(v.shape[1:])            # (B,), or (K, B): K members
        K = lead[0] if len(lead) == 2 else None
        H, V = W_h.shape[-1], P.shape[-2]
        rows = torch.Size(lead).numel()                     # B, or K·B
        tanh_kernel, gemm = kernels or (None, None)         # a step's choice (training/impl.py), or None
        fold = V <= ONEHOT_MAX_VOCAB                        # P[v_t] through the product
        if tanh_kernel == "native":                         # the loop compiled (native.py)
            if gemm is not None:
                raise ValueError(f"kernels=('native', {gemm!r}): the compiled loop takes BLAS's products "
                                 "(its gemm must be None)")
            return LSTMFunction._native_forward(ctx, v, P, W_h, reuse_buffers, keep, reset_token, fold)
        if tanh_kernel is None:                             # by a member's size: as its own run's
            by_sigmoid = lead[-1] * H >= SIGMOID_TANH_MIN_SIZE and tanh_by_sigmoid()
        else:
            by_sigmoid = tanh_kernel == "sigmoid"
        W_hT = W_h.transpose(-1, -2)                        # (H, 4H) or (K, H, 4H)
        W = torch.cat([W_hT, P], dim=-2) if fold else W_hT  # (..., H + V, 4H) or (..., H, 4H)
        if by_sigmoid:                                      # a^g doubled: g_t = 2σ(2a^g) - 1
            W, P = W.clone(), P.clone()
            W[..., :H] *= 2
            P[..., :H] *= 2
        if K is None:
            onednn = _onednn_linear() if gemm_library(rows, W.shape[-2], 4 * H, P.dtype, gemm) == "onednn" else None
        else:                                               # the members' products: batched (MKL)
            onednn = None
        W_rows = W.t().contiguous() if onednn else None     # (4H, H + V): oneDNN's x W_rows^T
        mm, mm_add = (torch.mm, torch.Tensor.addmm_) if K is None else (torch.bmm, torch.Tensor.baddbmm_)
        ids, table = v, P                                   # rows of the table to gather (not fold)
        if K is not None and not fold:
            ids, table = _member_rows(v, V), P.reshape(K * V, 4 * H)
        key, spare, buf = LSTMFunction._buffers(T, lead, H, V, P, keep, fold)
        m = None if reset_token is None else (v != reset_token).unsqueeze(-1).to(P.dtype).unbind(0)
        gates, tanh_cs, xs, h_next = buf.gates.steps, buf.tanh_c.steps, buf.x_steps, buf.h_next
        a_g, a_ifo = buf.gates.cols(0, H), buf.gates.cols(H, 4 * H)
        i, f, o = buf.gates.cols(H, 2 * H), buf.gates.cols(2 * H, 3 * H), buf.gates.cols(3 * H, 4 * H)
        g, c_prev, c_next = buf.gc.cols(0, H), buf.gc.cols(H, 2 * H), buf.c_next
        c_prev[0].zero_()                                   # c_0 = 0
        xs[0][..., :H].zero_()                              # h_0 = 0
        v_t, ids_t = v.unbind(0), ids.unbind(0)
        if keep and fold:                                   # onehot(v_t) for every t
            buf.x[..., H:].zero_().scatter_(-1, v.unsqueeze(-1), 1.0)
        elif keep:                                          # P[v_t] for every t, by blocks
            for s, block in buf.gates.spans():
                n = block.shape[0]
                torch.index_select(table, 0, ids[s:s + n].reshape(-1), out=block.view(-1, 4 * H))
        mul, addcmul, tanh, minus_one = torch.mul, torch.addcmul, torch.tanh, buf.minus_one
        for t, (a, ag, aifo, it, ft, ot, gt, cp, c, tc, x, h) in enumerate(zip(
                gates, a_g, a_ifo, i, f, o, g, c_prev, c_next, tanh_cs, xs, h_next)):
            pre = a                                         # a_t, before the gates' functions
            if fold:
                if not keep:
                    x[..., H:].zero_().scatter_(-1, v_t[t].unsqueeze(-1), 1.0)   # onehot(v_t)
                if onednn:
                    pre = onednn(x, W_rows, None, "none", [], "")
                else:
                    mm(x, W, out=a)                         # (..., B, 4H) = P[v_t] + h_{t-1} W_h^T
            else:
                if not keep:
                    torch.index_select(table, 0, ids_t[t].reshape(-1), out=a.view(-1, 4 * H))  # P[v_t]
                if t > 0 and onednn:                        # h_0 = 0
                    pre = onednn.binary(x, a, W_rows, None, "add")
                elif t > 0:
                    mm_add(a, x, W)
            if by_sigmoid:
                torch.sigmoid(pre, out=a)
                torch.add(minus_one, ag, alpha=2, out=gt)   # g_t = 2σ(2a^g) - 1
            elif pre is a:
                tanh(ag, out=gt)
                aifo.sigmoid_()
            else:
                tanh(pre[:, :H], out=gt)
                torch.sigmoid(pre[:, H:], out=aifo)
            if t > 0:
                mul(cp, ft, out=c).addcmul_(gt, it)         # c_t
            else:
                mul(gt, it, out=c)
            if m is not None:
                c.mul_(m[t])                                # c_t = 0 at the reset token
            _tanh_into(c, tc, by_sigmoid, minus_one)
            mul(tc, ot, out=h)                              # h_t
            if keep:
                addcmul(ot, h, tc, value=-1, out=ag)        # K_t = o_t (1 - tanh² c_t)
        h_T = buf.h_last.clone()                            # (..., B, H)
        if not keep:                                        # nothing to keep for a backward
            LSTMFunction.eval_spare.put(key, buf)
            buf = None
        ctx.buf, ctx.m, ctx.v, ctx.ids, ctx.W_h, ctx.keep = buf, m, v, ids, W_h, keep
        ctx.num_tokens, ctx.reuse, ctx.key, ctx.gemm, ctx.native = V, reuse_buffers, key, gemm, None
        return h_T

    @staticmethod
    def _buffers(T, lead, H, V, like, keep, fold):
        """(key, the spare it came from, buffers): the last ones of these sizes handed back (a
        step's backward, or an evaluation), else new ones."""
        key = (T, lead, H, V, like.dtype, like.device, BLOCK_BYTES, keep, fold)
        spare = LSTMFunction.spare if keep else LSTMFunction.eval_spare
        return key, spare, spare.take(key) or _LSTMBuffers(T, lead, H, V if fold else 0, like, keep)

    @staticmethod
    def _native_forward(ctx, v, P, W_h, reuse_buffers, keep, reset_token, fold):
        """The forward's loop as one call of the compiled loop (native.py, native_lstm.c): the
        same buffers, filled as the Python loop fills them (tanh as 2σ(2x) - 1)."""
        lib = native.lib()
        if lib is None:
            raise RuntimeError(f"the compiled LSTM loop is not available here: {native.why_not()}")
        if (P.dtype not in (torch.float32, torch.float64) or W_h.dtype != P.dtype
                or {P.device.type, W_h.device.type, v.device.type} != {"cpu"}):
            raise RuntimeError(f"the compiled LSTM loop takes float32 or float64 CPU tensors of one dtype "
                               f"(P: {P.dtype} on {P.device}, W_h: {W_h.dtype} on {W_h.device}, v on {v.device})")
        if v.shape[0] == 0:
            raise ValueError("the LSTM's input has no timesteps (v: (0, ...))")
        v = v.to(torch.int64)                               # the C loop reads int64 ids
        T, lead = v.shape[0], tuple(v.shape[1:])
        K, B = (lead[0], lead[1]) if len(lead) == 2 else (1, lead[0])
        H, V = W_h.shape[-1], P.shape[-2]
        W_hT = W_h.transpose(-1, -2)                        # (..., H, 4H)
        W = torch.cat([W_hT, P], dim=-2) if fold else W_hT.contiguous()   # (..., X, 4H)
        ids = v if fold or len(lead) == 1 else _member_rows(v, V)
        ids = ids.reshape(T, -1).contiguous()               # (T, K·B)
        table = P.reshape(-1, 4 * H).contiguous()           # the gathered rows (not fold)
        key, spare, buf = LSTMFunction._buffers(T, lead, H, V, P, keep, fold)
        if getattr(buf, "ptrs", None) is None:              # made once per buffer set
            buf.ptrs = [native.pointers(steps) for steps in (buf.x_steps, buf.gates.steps, buf.gc.steps,
                                                              buf.tanh_c.steps)]
        m = None if reset_token is None else (v != reset_token).to(P.dtype).reshape(T, -1).contiguous()
        bad = lib.forward(P.dtype)(T, K, B, H, W.shape[-2], V, int(fold), W.data_ptr(), table.data_ptr(),
                                   ids.data_ptr(), *(p.data_ptr() for p in buf.ptrs), buf.h_last.data_ptr(),
                                   buf.c_last.data_ptr(), None if m is None else m.data_ptr(), lib.gemm[P.dtype])
        if bad:                                             # checked before any step ran
            spare.put(key, buf)
            t, row = divmod(bad - 1, K * B)
            raise IndexError(f"token id {v.reshape(T, -1)[t, row].item()} at step {t}, row {row} is outside "
                             f"the vocabulary [0, {V}) of the LSTM's input table")
        h_T = buf.h_last.clone()                            # (..., B, H)
        if not keep:
            LSTMFunction.eval_spare.put(key, buf)
            buf = None
        ctx.buf, ctx.m, ctx.v, ctx.ids, ctx.W_h, ctx.keep = buf, None, v, ids.view(v.shape), W_h, keep
        ctx.num_tokens, ctx.reuse, ctx.key, ctx.gemm, ctx.native = V, reuse_buffers, key, None, (lib, m)
        return h_T

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dh_T):
        buf, m, v, W_h = ctx.buf, ctx.m, ctx.v, ctx.W_h
        _check_backward(ctx)
        if ctx.reuse:
            ctx.buf = None
        dA_blocks = buf.gates if ctx.reuse else buf.gates.clone()  # dA_t overwrites gates[t]
        T, lead = v.shape[0], tuple(v.shape[1:])
        K = lead[0] if len(lead) == 2 else None
        H = W_h.shape[-1]
        dA, Kt = dA_blocks.steps, dA_blocks.cols(0, H)
        ifo, i_f = dA_blocks.cols(H, 4 * H), dA_blocks.cols(H, 3 * H, split=2)
        g, gc, tanh_cs = buf.gc.cols(0, H), buf.gc.cols(0, 2 * H, split=2), buf.tanh_c.steps
        dh, dc, grad, di_df = buf.dh, buf.dc, buf.grad, buf.di_df
        dh.copy_(dh_T)                                      # (..., B, H), then dh_{t-1} = dA_t W_h
        if ctx.native is not None:                          # the loop compiled (native.py)
            lib, mask = ctx.native
            W_hc = W_h.contiguous()
            ptrs = [buf.ptrs[1] if ctx.reuse else native.pointers(dA), buf.ptrs[2], buf.ptrs[3]]
            lib.backward(W_h.dtype)(T, lead[0] if K else 1, lead[-1], H, W_hc.data_ptr(),
                                    *(p.data_ptr() for p in ptrs), dh.data_ptr(), dc.data_ptr(),
                                    None if mask is None else mask.data_ptr(), lib.gemm[W_h.dtype])
            return LSTMFunction._weight_grads(ctx, buf, dA_blocks, lead, H, K)
        grad_if, grad_o = grad[..., :2 * H].view(*lead, 2, H), grad[..., 2 * H:]
        di, dc_f = di_df[..., 0, :], di_df[..., 1, :]       # dc_t ⊙ i_t, dc_t ⊙ f_t
        dc_b = dc.unsqueeze(-2)                             # (..., B, 1, H)
        mul, addcmul, mm = torch.mul, torch.addcmul, (torch.mm if K is None else torch.bmm)
        tanh_bw, sigmoid_bw = torch.ops.aten.tanh_backward.grad_input, torch.ops.aten.sigmoid_backward.grad_input
        onednn = (_onednn_linear() if K is None and gemm_library(lead[0], 4 * H, H, W_h.dtype, ctx.gemm) == "onednn"
                  else None)
        W_h_rows = W_h.t().contiguous() if onednn else None  # (H, 4H): oneDNN's dA_t W_h_rows^T
        steps = zip(dA, Kt, ifo, i_f, g, gc, tanh_cs, m if m is not None else [None] * T)
        for t, (a, k, a_ifo, a_if, gt, gct, tc, mt) in reversed(list(enumerate(steps))):
            if t == T - 1:
                mul(dh, k, out=dc)
            else:
                addcmul(dc_f, dh, k, out=dc)                # dc_t
            if mt is not None:
                dc.mul_(mt)                                 # ⊙ m_t
            mul(dc_b, gct, out=grad_if)                     # [dc_t ⊙ g_t, dc_t ⊙ c_{t-1}]
            mul(dh, tc, out=grad_o)                         # dh_t ⊙ tanh c_t
            mul(dc_b, a_if, out=di_df)                      # [dc_t ⊙ i_t, dc_t ⊙ f_t]
            tanh_bw(di, gt, grad_input=k)                   # dA_t^g = dc_t ⊙ i_t ⊙ (1 - g_t²)
            sigmoid_bw(grad, a_ifo, grad_input=a_ifo)       # dA_t^{i,f,o}
            if t > 0 and onednn:
                dh = onednn(a, W_h_rows, None, "none", [], "")   # (B, H) = dh_{t-1}
            elif t > 0:
                mm(a, W_h, out=dh)                          # (..., B, H) = dh_{t-1}
        return LSTMFunction._weight_grads(ctx, buf, dA_blocks, lead, H, K)

    @staticmethod
    def _weight_grads(ctx, buf, dA_blocks, lead, H, K):
        """The backward's outputs from dA (T, ..., B, 4H): dP and dW_h, one product per block."""
        W_h, V = ctx.W_h, ctx.num_tokens
        X = buf.x.shape[-1]                                 # H + V (fold) or H
        dW = W_h.new_zeros(*lead[:-1], H + V, 4 * H)        # [dW_h^T; dP] = X^T dA (each member's)
        dP = W_h.new_zeros(torch.Size(lead[:-1]).numel() * V, 4 * H) if X == H else None   # gathered rows' grad
        for s, block in dA_blocks.spans():                  # dA: (n, ..., B, 4H) for t = s .. s+n-1
            n = block.shape[0]                              # Σ_t [h_{t-1} | onehot v_t]^T dA_t
            if K is None:
                dA_n, X_n = block.view(-1, 4 * H), buf.x[s:s + n].view(-1, X)
                dW[:X].addmm_(X_n.t(), dA_n)
            else:                                           # one batched product a step: each is
                for x_t, dA_t in zip(buf.x[s:s + n], block):  # as large as a member's block product
                    dW[:, :X].baddbmm_(x_t.transpose(1, 2), dA_t)   # (K, X, B) x (K, B, 4H)
            if dP is not None:                              # dP[v] = Σ_{v_tb = v} dA_tb
                dP.index_add_(0, ctx.ids[s:s + n].reshape(-1), block.reshape(-1, 4 * H))
        if dP is not None:
            dW[..., H:, :] = dP.view(*lead[:-1], V, 4 * H)
        if ctx.reuse:
            LSTMFunction.spare.put(ctx.key, buf)
        return None, dW[..., H:, :], dW[..., :H, :].transpose(-1, -2).contiguous(), None, None, None, None


class _PeepBuffers:
    """The peephole forward's storage, per step t (0-based, T steps), with its views:
        gates[t] = [f | i] (B, 2H): P^{fi}[v_t] + c_{t-1} W_c^{fi T}, σ of it, then dA_t^{fi}
        cq[t]    = [c_{t-1} | q_t] (B, 2H), q_t = Q[v_t] (then dq_t); c_T in c_last
    keep=False: rings of one or two steps. A pack's members add a leading K: (K, B, 2H), ..."""

    def __init__(self, T: int, lead: tuple, H: int, like: torch.Tensor, keep: bool):
        """lead: (B,), or (K, B) for K members."""
        self.gates = _TimeBlocks(T, (*lead, 2 * H), like, None if keep else 1)
        self.cq = _TimeBlocks(T, (*lead, 2 * H), like, None if keep else 2)
        self.c_last = like.new_empty(*lead, H)
        self.c_next = self.cq.cols(0, H)[1:] + [self.c_last]   # where step t writes c_t
        self.grad = like.new_empty(*lead, 2, H)             # [dc_t ⊙ c_{t-1}, dc_t ⊙ q_t]


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

    A pack's members: v (T, K, B), P (K, V, 3H), Q (K, V, H), W_c (K, 3H, H) -> h_T (K, B, H),
    as LSTMFunction's member axis (every element-wise call on all members' rows, batched
    products over k).
    """

    spare = _Spare()                    # buffers of the last backward
    eval_spare = _Spare()               # buffers of the last forward with keep=False

    @staticmethod
    def forward(ctx, v, P, Q, W_c, reuse_buffers=True, keep=True):
        T, lead = v.shape[0], tuple(v.shape[1:])            # (B,), or (K, B): K members
        K = lead[0] if len(lead) == 2 else None
        H, V = W_c.shape[-1], P.shape[-2]
        W_fi_t = W_c[..., :2 * H, :].transpose(-1, -2)      # (..., H, 2H)
        ids = v if K is None else _member_rows(v, V)
        P_fi = P[..., :2 * H].reshape(-1, 2 * H)            # (K·V, 2H) or (V, 2H)
        Q_rows = Q.reshape(-1, H)                           # (K·V, H) or (V, H)
        addmm_ = torch.Tensor.addmm_ if K is None else torch.Tensor.baddbmm_
        key = (T, lead, H, P.dtype, P.device, BLOCK_BYTES, keep)
        spare = PeepLSTMFunction.spare if keep else PeepLSTMFunction.eval_spare
        buf = spare.take(key) or _PeepBuffers(T, lead, H, P, keep)
        gates, f, i = buf.gates.steps, buf.gates.cols(0, H), buf.gates.cols(H, 2 * H)
        c_prev, q, c_next = buf.cq.cols(0, H), buf.cq.cols(H, 2 * H), buf.c_next
        c_prev[0].zero_()                                   # c_0 = 0
        ids_t = ids.unbind(0)
        if keep:                                            # P^{fi}[v_t], Q[v_t] for every t
            for (s, block), (_, cq) in zip(buf.gates.spans(), buf.cq.spans()):
                rows = ids[s:s + block.shape[0]].reshape(-1)
                torch.index_select(P_fi, 0, rows, out=block.view(-1, 2 * H))
                torch.index_select(Q_rows, 0, rows, out=cq.view(-1, 2 * H)[:, H:])
        mul = torch.mul
        for t, (a, ft, it, cp, qt, c) in enumerate(zip(gates, f, i, c_prev, q, c_next)):
            if not keep:
                torch.index_select(P_fi, 0, ids_t[t].reshape(-1), out=a.view(-1, 2 * H))   # P^{fi}[v_t]
                qt.copy_(Q_rows[ids_t[t]])                  # (..., B, H) = Q[v_t]
            if t > 0:                                       # c_0 = 0
                addmm_(a, cp, W_fi_t)
            a.sigmoid_()                                    # f_t, i_t
            if t > 0:
                mul(cp, ft, out=c).addcmul_(qt, it)         # c_t
            else:
                mul(qt, it, out=c)
        c_T, c_Tm1 = buf.c_last, c_prev[T - 1]
        P_o = P[..., 2 * H:].reshape(-1, H)[ids_t[T - 1]]    # (..., B, H) = P^o[v_T]
        W_oT = W_c[..., 2 * H:, :].transpose(-1, -2)        # (..., H, H)
        o = (torch.addmm(P_o, c_Tm1, W_oT) if K is None else torch.baddbmm(P_o, c_Tm1, W_oT)).sigmoid_()  # o_T
        tanh_c = torch.tanh(c_T)                            # (..., B, H)
        if not keep:                                        # nothing to keep for a backward
            PeepLSTMFunction.eval_spare.put(key, buf)
            buf = None
        ctx.buf, ctx.v, ctx.ids, ctx.W_c, ctx.o, ctx.tanh_c, ctx.keep = buf, v, ids, W_c, o, tanh_c, keep
        ctx.num_tokens, ctx.reuse, ctx.key = V, reuse_buffers, key
        return tanh_c * o                                   # h_T = tanh(c_T) ⊙ o_T

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dh_T):
        buf, v, ids, W_c, o, tanh_c = ctx.buf, ctx.v, ctx.ids, ctx.W_c, ctx.o, ctx.tanh_c
        _check_backward(ctx)
        if ctx.reuse:
            ctx.buf = None
            dA_blocks, cq_blocks = buf.gates, buf.cq        # overwritten by dA_t, dq_t below
        else:
            dA_blocks, cq_blocks = buf.gates.clone(), buf.cq.clone()
        T, lead = v.shape[0], tuple(v.shape[1:])
        K = lead[0] if len(lead) == 2 else None
        H, V = W_c.shape[-1], ctx.num_tokens
        W_fi, W_o = W_c[..., :2 * H, :], W_c[..., 2 * H:, :]   # (..., 2H, H), (..., H, H)
        dA, f, i = dA_blocks.steps, dA_blocks.cols(0, H), dA_blocks.cols(H, 2 * H)
        cq, dq = cq_blocks.cols(0, 2 * H, split=2), cq_blocks.cols(H, 2 * H)
        c_Tm1 = cq_blocks.cols(0, H)[T - 1]
        grad = buf.grad                                     # (..., B, 2, H)
        dc = _tanh_backward(dh_T * o, tanh_c)               # (..., B, H) = dc_T
        dA_o = _sigmoid_backward(dh_T * tanh_c, o)          # (..., B, H) = dA_T^o
        dc_b, grad_fi = dc.unsqueeze(-2), grad.view(*lead, 2 * H)
        mul, sigmoid_bw = torch.mul, torch.ops.aten.sigmoid_backward.grad_input
        addmm_ = torch.Tensor.addmm_ if K is None else torch.Tensor.baddbmm_
        for t, (a, ft, it, cqt, dqt) in reversed(list(enumerate(zip(dA, f, i, cq, dq)))):
            mul(dc_b, cqt, out=grad)                        # [dc_t ⊙ c_{t-1}, dc_t ⊙ q_t]
            mul(dc, it, out=dqt)                            # dq_t (over q_t)
            if t > 0:
                dc.mul_(ft)                                 # dc_t ⊙ f_t
            sigmoid_bw(grad_fi, a, grad_input=a)            # dA_t^{f,i}
            if t > 0:
                addmm_(dc, a, W_fi)                         # dc_{t-1}
                if t == T - 1:
                    addmm_(dc, dA_o, W_o)                   # o_T reads c_{T-1} too
        members = torch.Size(lead[:-1]).numel()             # K, or 1
        dW_fi_t = W_c.new_zeros(*lead[:-1], H, 2 * H)       # (dW_c^{fi})^T = C_prev^T dA^{fi}
        dP_fi = W_c.new_zeros(members * V, 2 * H)           # (index_add_ into contiguous
        dQ = W_c.new_zeros(members * V, H)                  # tensors, not views: faster)
        for (s, block), (_, cq_block) in zip(dA_blocks.spans(), cq_blocks.spans()):
            n = block.shape[0]
            idx = ids[s:s + n].reshape(-1)
            dP_fi.index_add_(0, idx, block.reshape(-1, 2 * H))
            dQ.index_add_(0, idx, cq_block.reshape(-1, 2 * H)[:, H:])
            if K is None:                                   # Σ_t c_{t-1}^T dA_t (c_0 = 0)
                dW_fi_t.addmm_(cq_block.view(-1, 2 * H)[:, :H].t(), block.view(-1, 2 * H))
            else:                                           # one batched product a step (see LSTMFunction)
                for cq_t, dA_t in zip(cq_block, block):
                    dW_fi_t.baddbmm_(cq_t[..., :H].transpose(1, 2), dA_t)
        dW_o = dA_o.transpose(-1, -2) @ c_Tm1               # dA_T^{oT} c_{T-1}
        dP_o = W_c.new_zeros(members * V, H).index_add_(0, ids[T - 1].reshape(-1), dA_o.reshape(-1, H))
        if ctx.reuse:
            PeepLSTMFunction.spare.put(ctx.key, buf)
        shape = (*lead[:-1], V)
        dP = torch.cat([dP_fi.view(*shape, 2 * H), dP_o.view(*shape, H)], dim=-1)   # (..., V, 3H)
        dW_c = torch.cat([dW_fi_t.transpose(-1, -2), dW_o], dim=-2)                  # (..., 3H, H)
        return None, dP, dQ.view(*shape, H), dW_c, None, None
