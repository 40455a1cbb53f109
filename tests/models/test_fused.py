"""The fused Functions (hand-written backward through time) against autograd."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import rnn_experiments.models.kernels.fused as fused
from fused_check import assert_fused_equals_recurrence
from rnn_experiments.models import LSTM, BiLSTM, PeepLSTM
from rnn_experiments.models.kernels.fused import LSTMFunction, PeepLSTMFunction
from rnn_experiments.training import impl


def test_lstm_function_gradcheck():
    T, B, H, V = 4, 3, 5, 3
    v = torch.randint(0, V, (T, B), generator=torch.Generator().manual_seed(0))
    P = torch.randn(V, 4 * H, dtype=torch.double, requires_grad=True)
    W_h = torch.randn(4 * H, H, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda P, W: LSTMFunction.apply(v, P, W, False), (P, W_h))


def test_lstm_function_with_a_reset_token_gradcheck_and_equals_the_recurrence():
    """model.reset_at_padding on the CPU's fused path: gradcheck, and the autograd recurrence."""
    H, V = 4, 3   # T = 5 steps, B = 3 sequences (the rows and columns of v)
    v = torch.tensor([[2, 2, 0], [2, 0, 1], [0, 1, 2], [1, 1, 0], [0, 2, 1]])   # (T, B), 2 resets
    P = torch.randn(V, 4 * H, dtype=torch.double, requires_grad=True)
    W_h = torch.randn(4 * H, H, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda P, W: LSTMFunction.apply(v, P, W, False, True, 2), (P, W_h))
    torch.manual_seed(0)
    model = LSTM(V, 2, 6, H).double()
    model.reset_token = 2
    assert_fused_equals_recurrence(model, v.t())                                 # x: (B, T)


def test_peep_lstm_function_gradcheck():
    T, B, H, V = 4, 3, 5, 3
    v = torch.randint(0, V, (T, B), generator=torch.Generator().manual_seed(0))
    P = torch.randn(V, 4 * H, dtype=torch.double)[:, :3 * H].requires_grad_()  # strided, as in use
    Q = torch.rand(V, H, dtype=torch.double, requires_grad=True)
    W_c = torch.randn(3 * H, H, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda P, Q, W: PeepLSTMFunction.apply(v, P, Q, W, False),
                                    (P, Q, W_c))


@pytest.fixture(params=[False, True], ids=["tanh", "tanh_by_sigmoid"])
def tanh_kernel(request, monkeypatch):
    """Both ways the cells evaluate tanh (ATen's tanh, or 2σ(2x) - 1), at every size."""
    monkeypatch.setattr(fused, "TANH_BY_SIGMOID", request.param)
    monkeypatch.setattr(fused, "SIGMOID_TANH_MIN_SIZE", 0)
    return request.param


def test_lstm_function_gradcheck_both_tanh_kernels(tanh_kernel, token_rows):
    T, B, H, V = 4, 3, 5, 3
    v = torch.randint(0, V, (T, B), generator=torch.Generator().manual_seed(1))
    P = torch.randn(V, 4 * H, dtype=torch.double, requires_grad=True)
    W_h = torch.randn(4 * H, H, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda P, W: LSTMFunction.apply(v, P, W, False, True, 1), (P, W_h),
                                    fast_mode=True)


@pytest.fixture(params=[64, 0], ids=["onehot_product", "gathered_rows"])
def token_rows(request, monkeypatch):
    """Both ways the LSTM adds P[v_t]: through its product with onehot(v_t), or gathered."""
    monkeypatch.setattr(fused, "ONEHOT_MAX_VOCAB", request.param)


@pytest.mark.parametrize("cls", [LSTM, PeepLSTM])
@pytest.mark.parametrize("T", [1, 13])
def test_fused_forward_equals_the_autograd_recurrence(cls, T, monkeypatch, tanh_kernel, token_rows):
    monkeypatch.setattr(fused, "BLOCK_BYTES", 3000)  # several time blocks, uneven last one
    torch.manual_seed(0)
    m = cls(3, 2, 8, 16, init="kaiming_normal").double()
    x, y = torch.randint(0, 3, (6, T)), torch.randint(0, 2, (6,))
    results = []
    for use_fused in (True, False):
        m.fused = use_fused
        m.zero_grad()
        logp = m(x)
        F.nll_loss(logp, y).backward()
        results.append((logp.detach(), {n: p.grad.clone() for n, p in m.named_parameters()}))
    (lp_f, g_f), (lp_a, g_a) = results
    torch.testing.assert_close(lp_f, lp_a, atol=1e-12, rtol=0)
    for name in g_a:
        torch.testing.assert_close(g_f[name], g_a[name], atol=1e-12, rtol=0, msg=name)


def test_second_backward_through_reused_buffers_is_one_clear_error():
    m = LSTM(3, 2, 4, 6)
    loss = m(torch.randint(0, 3, (2, 5))).sum()
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="reuse_buffers"):
        loss.backward()


def test_recurrence_keeps_every_h_t_in_the_graph():
    m = LSTM(3, 2, 4, 6)
    hs = m.recurrence(m.embedding(torch.randint(0, 3, (2, 5))))
    assert len(hs) == 5 and all(h.requires_grad for h in hs)
    (g,) = torch.autograd.grad(hs[-1].sum(), hs[1], retain_graph=True)
    assert g.abs().sum() > 0                          # dh_T/dh_2 flows through the graph


@pytest.mark.parametrize("cls", [LSTM, PeepLSTM])
def test_evaluation_without_grad_gives_the_same_outputs(cls, token_rows):
    torch.manual_seed(0)
    m = cls(3, 2, 8, 16)
    x = torch.randint(0, 3, (5, 11))
    with torch.no_grad():
        lp_eval = m(x)                                  # buffers of one or two steps
        lp_again = m(x)                                 # the same buffers, reused
    torch.testing.assert_close(lp_eval, m(x).detach(), atol=0, rtol=0)
    torch.testing.assert_close(lp_again, lp_eval, atol=0, rtol=0)


def test_backward_through_an_evaluation_forward_is_one_clear_error():
    v = torch.randint(0, 3, (5, 2))
    P, W_h = torch.randn(3, 8, requires_grad=True), torch.randn(8, 2, requires_grad=True)
    with pytest.raises(RuntimeError, match="keep=False"):
        LSTMFunction.apply(v, P, W_h, True, False).sum().backward()
    P3, Q, W_c = torch.randn(3, 6, requires_grad=True), torch.rand(3, 2), torch.randn(6, 2)
    with pytest.raises(RuntimeError, match="keep=False"):
        PeepLSTMFunction.apply(v, P3, Q, W_c, True, False).sum().backward()


def test_training_steps_reuse_buffers_and_match_fresh_ones():
    """A second forward + backward of the same sizes takes the first one's buffers (no new
    allocation) and computes what fresh buffers give."""
    torch.manual_seed(0)
    m = LSTM(3, 2, 4, 6).double()
    x = torch.randint(0, 3, (4, 9))
    grads = []
    for _ in range(2):
        m.zero_grad()
        m(x).sum().backward()
        grads.append(m.W_fh.grad.clone())
    assert LSTMFunction.spare.buffers is not None      # handed on to the next step
    kept = LSTMFunction.spare.buffers
    m.zero_grad()
    m(x).sum().backward()
    assert LSTMFunction.spare.buffers is kept           # taken and put back, not reallocated
    torch.testing.assert_close(grads[1], grads[0], atol=0, rtol=0)


def test_tanh_kernel_choice_is_a_bool_and_can_be_set(monkeypatch):
    monkeypatch.setattr(fused, "TANH_BY_SIGMOID", None)
    state = torch.random.get_rng_state()
    assert fused.tanh_by_sigmoid() in (True, False)     # measured once ...
    assert torch.equal(torch.random.get_rng_state(), state)   # ... without drawing random numbers
    monkeypatch.setattr(fused, "TANH_BY_SIGMOID", True)
    assert fused.tanh_by_sigmoid() is True
    monkeypatch.setattr(fused, "TANH_BY_SIGMOID", None)
    torch.use_deterministic_algorithms(True)
    try:
        assert fused.tanh_by_sigmoid() is False          # no timing decides a deterministic run
    finally:
        torch.use_deterministic_algorithms(False)


@pytest.mark.skipif(fused._onednn_linear() is None, reason="torch built without oneDNN")
def test_lstm_with_onednn_products_equals_the_recurrence(monkeypatch, token_rows):
    """The per-step products through oneDNN (float32; chosen where it is faster) give what the
    autograd recurrence gives, outputs and every gradient, and evaluation the same outputs."""
    monkeypatch.setattr(fused, "GEMM", "onednn")
    torch.manual_seed(0)
    model = LSTM(3, 2, 8, 16)
    x = torch.randint(0, 3, (6, 11))
    assert_fused_equals_recurrence(model, x, tol=1e-5)
    with torch.no_grad():
        reference = model(x)                             # model.fused is False here
        model.fused = True
        torch.testing.assert_close(model(x), reference, atol=1e-5, rtol=1e-5)


def test_gemm_library_is_mkl_where_results_must_not_depend_on_timing(monkeypatch):
    monkeypatch.setattr(fused, "GEMM", None)
    assert fused.gemm_library(8, 8, 32, torch.float64) == "mkl"
    torch.use_deterministic_algorithms(True)
    try:
        assert fused.gemm_library(256, 256, 1024, torch.float32) == "mkl"
    finally:
        torch.use_deterministic_algorithms(False)
    assert fused.gemm_library(256, 256, 1024, torch.float32) in ("mkl", "onednn")


@pytest.mark.parametrize("cls", [LSTM, PeepLSTM, BiLSTM])
def test_every_implementation_a_training_step_may_choose_equals_the_recurrence(cls, token_rows):
    """Each candidate of the measured choice (training/impl.py: the fused path with its own kernel
    choices, with every step's tanh as 2σ(2x) - 1, with oneDNN's products; the autograd loop),
    in float32 as trained: outputs and every gradient as the autograd recurrence gives them."""
    torch.manual_seed(0)
    model = cls(3, 2, 8, 16)
    x = torch.randint(0, 3, (6, 11))
    names = list(impl.candidates(model))
    assert names[0] == "fused" and names[-1] == "autograd"
    for name, attributes in impl.candidates(model).items():
        impl.apply(model, attributes)
        assert_fused_equals_recurrence(model, x, tol=1e-5, msg=name)


def test_the_tanh_kernel_a_step_chooses_is_exact_in_float64_at_every_size(token_rows):
    """kernels=("sigmoid", ...) applies 2σ(2x) - 1 below SIGMOID_TANH_MIN_SIZE too: gradcheck, and
    the recurrence to 1e-12 through the model (BiLSTM: both directions)."""
    T, B, H, V = 4, 3, 5, 3
    v = torch.randint(0, V, (T, B), generator=torch.Generator().manual_seed(2))
    P = torch.randn(V, 4 * H, dtype=torch.double, requires_grad=True)
    W_h = torch.randn(4 * H, H, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda P, W: LSTMFunction.apply(v, P, W, False, True, None, ("sigmoid", "mkl")),
                                    (P, W_h), fast_mode=True)
    for cls in (LSTM, BiLSTM):
        torch.manual_seed(0)
        model = cls(3, 2, 8, 16).double()
        model.kernels = ("sigmoid", None)
        assert_fused_equals_recurrence(model, torch.randint(0, 3, (6, 9)), tol=1e-12, msg=cls.__name__)
