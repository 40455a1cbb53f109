"""The stacked recurrences of a pack (models/kernels/stacked.py): K members at once, each equal to
its own model's equations (the plain recurrence), forward and gradients; gradcheck of the
hand-written backward passes."""
from __future__ import annotations

import pytest
import torch
from torch.func import stack_module_state

from rnn_experiments.models.kernels.stacked import StackedLSTMFunction, StackedPeepLSTMFunction
from rnn_experiments.models.lstm import LSTM
from rnn_experiments.models.peep_lstm import PeepLSTM


def test_the_stacked_backward_passes_pass_gradcheck():
    g = torch.Generator().manual_seed(0)
    K, T, B, H, V = 3, 5, 4, 3, 3
    v = torch.randint(0, V, (K, T, B), generator=g)
    f64 = dict(dtype=torch.float64)
    P = torch.randn(K, V, 4 * H, generator=g, **f64).requires_grad_()
    W = (0.5 * torch.randn(K, 4 * H, H, generator=g, **f64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda P, W: StackedLSTMFunction.apply(v, P, W), (P, W))
    P3 = torch.randn(K, V, 3 * H, generator=g, **f64).requires_grad_()
    Q = torch.rand(K, V, H, generator=g, **f64).requires_grad_()
    W_c = (0.5 * torch.randn(K, 3 * H, H, generator=g, **f64)).requires_grad_()
    assert torch.autograd.gradcheck(lambda P, Q, W: StackedPeepLSTMFunction.apply(v, P, Q, W), (P3, Q, W_c))


@pytest.mark.parametrize("cls", [LSTM, PeepLSTM])
def test_each_member_of_the_stacked_forward_is_its_own_models_recurrence(cls):
    """float64: the members' log-probabilities and every parameter's gradient equal those of
    each model's plain autograd recurrence (fused off) to 1e-10."""
    K, B, T = 3, 5, 9
    models = []
    for k in range(K):
        torch.manual_seed(k)
        m = cls(3, 2, embedding_dim=4, hidden_size=6).double()
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
    lstm = LSTM(3, 2, embedding_dim=4, hidden_size=6, reset_at_padding=True, pad_token=2)
    assert not lstm.stacked_ready()                              # the reset token: vmap instead
    assert not LSTM(3, 2, embedding_dim=4, hidden_size=6, log_softmax_axis="batch").stacked_ready()
