"""The stacked recurrences of a pack: K members at once through the fused Functions' member axis
(models/kernels/fused.py), each equal to its own model's equations (the plain recurrence),
forward and gradients, and to its own call; gradcheck of the hand-written backward passes, for
every way the LSTM's kernel adds P[v_t] and evaluates tanh."""
from __future__ import annotations

import pytest
import torch
from torch.func import stack_module_state

from rnn_experiments.models.kernels import fused
from rnn_experiments.models.kernels.fused import LSTMFunction, PeepLSTMFunction
from rnn_experiments.models.lstm import LSTM
from rnn_experiments.models.peep_lstm import PeepLSTM


@pytest.fixture(params=[("aten", 64), ("sigmoid", 64), ("aten", 0)], ids=["onehot", "tanh_by_sigmoid", "gathered_rows"])
def lstm_kernel(request, monkeypatch):
    """The ways LSTMFunction's member axis runs: P[v_t] through the product with onehot(v_t)
    (ATen's tanh, or 2σ(2x) - 1 at every size), or gathered rows."""
    tanh, max_vocab = request.param
    monkeypatch.setattr(fused, "ONEHOT_MAX_VOCAB", max_vocab)
    monkeypatch.setattr(fused, "SIGMOID_TANH_MIN_SIZE", 0)
    monkeypatch.setattr(fused, "TANH_BY_SIGMOID", tanh == "sigmoid")
    return tanh


@pytest.mark.parametrize("reset", [None, 2])
def test_the_lstm_kernels_member_axis_passes_gradcheck(lstm_kernel, reset):
    g = torch.Generator().manual_seed(0)
    K, T, B, H, V = 3, 5, 4, 3, 3
    v = torch.randint(0, V, (T, K, B), generator=g)
    f64 = dict(dtype=torch.float64)
    P = torch.randn(K, V, 4 * H, generator=g, **f64).requires_grad_()
    W = (0.5 * torch.randn(K, 4 * H, H, generator=g, **f64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda P, W: LSTMFunction.apply(v, P, W, False, True, reset), (P, W))


def test_the_member_axis_equals_each_members_own_call(lstm_kernel):
    """float64: member k of one call with a member axis is the call on member k's tokens and
    weights alone, h_T and gradients, to 1e-12 (only the products' order of sums differs)."""
    g = torch.Generator().manual_seed(3)
    K, T, B, H, V = 3, 7, 5, 4, 3
    v = torch.randint(0, V, (T, K, B), generator=g)
    P = torch.randn(K, V, 4 * H, generator=g, dtype=torch.float64, requires_grad=True)
    W = (0.5 * torch.randn(K, 4 * H, H, generator=g, dtype=torch.float64)).requires_grad_()
    dh = torch.randn(K, B, H, generator=g, dtype=torch.float64)
    h = LSTMFunction.apply(v, P, W, False)
    (h * dh).sum().backward()
    for k in range(K):
        P_k, W_k = P.detach()[k].requires_grad_(), W.detach()[k].requires_grad_()
        h_k = LSTMFunction.apply(v[:, k].contiguous(), P_k, W_k, False)
        (h_k * dh[k]).sum().backward()
        torch.testing.assert_close(h[k], h_k, rtol=0, atol=1e-12)
        torch.testing.assert_close(P.grad[k], P_k.grad, rtol=0, atol=1e-12)
        torch.testing.assert_close(W.grad[k], W_k.grad, rtol=0, atol=1e-12)
    with torch.no_grad():                                        # keep=False: evaluation's rings
        h_eval = LSTMFunction.apply(v, P, W, False, False)
        for k in range(K):
            torch.testing.assert_close(h_eval[k], LSTMFunction.apply(v[:, k].contiguous(), P[k], W[k], False, False),
                                       rtol=0, atol=1e-12)


@pytest.mark.parametrize("keep", [True, False])
def test_the_peephole_kernels_member_axis_passes_gradcheck_and_equals_each_members_call(keep):
    """gradcheck (keep=True; keep=False: evaluation, forward only), and member k of one call is
    the call on member k's tokens and tables alone (float64, 1e-12)."""
    g = torch.Generator().manual_seed(0)
    K, T, B, H, V = 3, 5, 4, 3, 3
    v = torch.randint(0, V, (T, K, B), generator=g)
    f64 = dict(dtype=torch.float64)
    P = torch.randn(K, V, 4 * H, generator=g, **f64)[..., :3 * H].requires_grad_()   # strided, as in use
    Q = torch.rand(K, V, H, generator=g, **f64).requires_grad_()
    W_c = (0.5 * torch.randn(K, 3 * H, H, generator=g, **f64)).requires_grad_()
    if keep:
        assert torch.autograd.gradcheck(lambda P, Q, W: PeepLSTMFunction.apply(v, P, Q, W, False), (P, Q, W_c))
    with torch.set_grad_enabled(keep):
        h = PeepLSTMFunction.apply(v, P, Q, W_c, False, keep)
        for k in range(K):
            h_k = PeepLSTMFunction.apply(v[:, k].contiguous(), P[k], Q[k], W_c[k], False, keep)
            torch.testing.assert_close(h[k], h_k, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cls, reset", [(LSTM, False), (LSTM, True), (PeepLSTM, False)],
                         ids=["lstm", "lstm-reset_at_padding", "peep_lstm"])
def test_each_member_of_the_stacked_forward_is_its_own_models_recurrence(cls, reset):
    """float64: the members' log-probabilities and every parameter's gradient equal those of
    each model's plain autograd recurrence (fused off) to 1e-10."""
    K, B, T = 3, 5, 9
    models = []
    for k in range(K):
        torch.manual_seed(k)
        m = cls(3, 2, embedding_dim=4, hidden_size=6, **({"reset_at_padding": True, "pad_token": 2} if reset else {})).double()
        m.fused = False
        models.append(m)
    params, _ = stack_module_state(models)                       # (K, ...) leaves
    x = torch.randint(0, 3, (K, B, T), generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, 2, (K, B), generator=torch.Generator().manual_seed(2))
    assert models[0].stacked_ready()
    out = models[0].forward_stacked(params, x)                   # (K, B, C)
    out.gather(-1, y.unsqueeze(-1)).sum().backward()
    for k, m in enumerate(models):
        ref = m(x[k])
        torch.testing.assert_close(out[k], ref, rtol=0, atol=1e-10)
        ref.gather(-1, y[k].unsqueeze(-1)).sum().backward()
        for name, p in m.named_parameters():
            torch.testing.assert_close(params[name].grad[k], p.grad, rtol=0, atol=1e-10, msg=name)


def test_a_model_the_stacked_kernel_does_not_cover_says_so():
    assert not LSTM(3, 2, embedding_dim=4, hidden_size=6, log_softmax_axis="batch").stacked_ready()
