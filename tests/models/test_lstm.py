"""The LSTM and the peephole LSTM compute exactly their docstrings' equations: compared with
torch.nn.LSTM (copied weights) and with a step-by-step transcription of the equations, for both
the fast `forward` (fused Function) and the autograd `recurrence`."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from rnn_experiments.models import LSTM, PeepLSTM, count_params

V, C, E, H, B, T = 3, 2, 5, 7, 4, 9


def tokens(seed=0):
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


def grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("fused", [True, False])
def test_lstm_matches_nn_lstm(fused):
    torch.manual_seed(0)
    ours = LSTM(V, C, E, H, init="uniform")
    ours.fused = fused
    for b in ("b_g", "b_i", "b_f", "b_o"):          # non-zero biases, so their order is tested
        nn.init.normal_(getattr(ours, b))
    ref = nn.LSTM(E, H, batch_first=True)
    with torch.no_grad():                            # torch's gate order is i, f, g, o
        ref.weight_ih_l0.copy_(torch.cat([ours.W_ix, ours.W_fx, ours.W_gx, ours.W_ox]))
        ref.weight_hh_l0.copy_(torch.cat([ours.W_ih, ours.W_fh, ours.W_gh, ours.W_oh]))
        ref.bias_ih_l0.copy_(torch.cat([ours.b_i, ours.b_f, ours.b_g, ours.b_o]))
        ref.bias_hh_l0.zero_()
    x = tokens()
    e = ours.embedding(x)
    out, _ = ref(e)                                                   # (B, T, H)
    ref_logp = F.log_softmax(F.linear(out[:, -1], ours.W_ph, ours.b_p), -1)
    logp = ours(x)
    torch.testing.assert_close(logp, ref_logp, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.stack(ours.recurrence(e), 1), out, atol=1e-5, rtol=0)

    y = torch.tensor([0, 1, 1, 0])
    F.nll_loss(logp, y).backward()
    g = grads(ours)
    ours.zero_grad()
    F.nll_loss(ref_logp, y).backward()               # through nn.LSTM (and our embedding/read-out)
    for k, gate in enumerate("ifgo"):
        rows = slice(k * H, (k + 1) * H)
        torch.testing.assert_close(g[f"W_{gate}x"], ref.weight_ih_l0.grad[rows], atol=1e-5, rtol=0)
        torch.testing.assert_close(g[f"W_{gate}h"], ref.weight_hh_l0.grad[rows], atol=1e-5, rtol=0)
        torch.testing.assert_close(g[f"b_{gate}"], ref.bias_ih_l0.grad[rows], atol=1e-5, rtol=0)
    for name in ("embedding.weight", "W_ph", "b_p"):
        torch.testing.assert_close(g[name], dict(ours.named_parameters())[name].grad, atol=1e-5, rtol=0)


def peep_by_the_equations(m: PeepLSTM, x):
    """The docstring's equations, one gate at a time: [h_1, ..., h_T] and log ŷ."""
    e = m.embedding(x)
    c = e.new_zeros(x.shape[0], m.hidden_size)
    hs = []
    for t in range(x.shape[1]):
        x_t = e[:, t]
        f = torch.sigmoid(x_t @ m.W_fx.T + c @ m.W_fh.T + m.b_f)
        i = torch.sigmoid(x_t @ m.W_ix.T + c @ m.W_ih.T + m.b_i)
        o = torch.sigmoid(x_t @ m.W_ox.T + c @ m.W_oh.T + m.b_o)
        c = torch.sigmoid(x_t @ m.W_cx.T + m.b_c) * i + c * f
        hs.append(torch.tanh(c) * o)
    return hs, F.log_softmax(hs[-1] @ m.W_ph.T + m.b_p, -1)


@pytest.mark.parametrize("fused", [True, False])
def test_peep_lstm_matches_equations(fused):
    torch.manual_seed(1)
    m = PeepLSTM(V, C, E, H, init="uniform")
    m.fused = fused
    for b in ("b_f", "b_i", "b_o", "b_c"):
        nn.init.normal_(getattr(m, b))
    x, y = tokens(1), torch.tensor([1, 0, 1, 0])
    hs_ref, logp_ref = peep_by_the_equations(m, x)
    F.nll_loss(logp_ref, y).backward()
    g_ref = grads(m)
    m.zero_grad()
    logp = m(x)
    F.nll_loss(logp, y).backward()
    torch.testing.assert_close(logp, logp_ref, atol=1e-5, rtol=0)
    for a, b in zip(m.recurrence(m.embedding(x)), hs_ref):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    for name, g in grads(m).items():
        torch.testing.assert_close(g, g_ref[name], atol=1e-5, rtol=0, msg=name)


@pytest.mark.parametrize("E,H,C", [(64, 256, 2), (10, 7, 3), (1, 1, 2)])
def test_parameter_counts_match_closed_forms(E, H, C):
    lstm = LSTM(vocab_size=3, num_classes=C, embedding_dim=E, hidden_size=H)
    peep = PeepLSTM(vocab_size=3, num_classes=C, embedding_dim=E, hidden_size=H)
    embedding = 3 * E
    # report, Question 1.2: 4(N_h N_in + N_h N_h + N_h) + N_out N_h + N_out
    assert count_params(lstm) - embedding == 4 * (H * E + H * H + H) + C * H + C
    assert count_params(peep) - embedding == 4 * (H * E + H) + 3 * H * H + C * H + C


@pytest.mark.parametrize("cls", [LSTM, PeepLSTM])
def test_output_is_normalised_over_classes_not_batch(cls):
    torch.manual_seed(0)
    model = cls(vocab_size=3, num_classes=2, embedding_dim=4, hidden_size=8)
    x = torch.randint(0, 3, (5, 9))
    out = model(x)
    torch.testing.assert_close(out.exp().sum(dim=1), torch.ones(5))
    # one example's prediction must not depend on the other examples of its batch
    torch.testing.assert_close(model(x[:1]), out[:1])


@pytest.mark.parametrize("cls", [LSTM, PeepLSTM])
def test_any_batch_size_and_length(cls):
    model = cls(vocab_size=3, num_classes=2, embedding_dim=4, hidden_size=8)
    for B, T in [(1, 1), (4, 17), (2, 81)]:
        assert model(torch.randint(0, 3, (B, T))).shape == (B, 2)


def test_init_zero_biases_and_kaiming_weights():
    torch.manual_seed(0)
    model = LSTM(vocab_size=3, num_classes=2, embedding_dim=256, hidden_size=512)
    assert all((getattr(model, f"b_{g}") == 0).all() for g in "gifo")
    # kaiming normal: std = sqrt(2 / fan_in)
    assert model.W_gh.std().item() == pytest.approx((2 / 512) ** 0.5, rel=0.02)
    assert model.W_gx.std().item() == pytest.approx((2 / 256) ** 0.5, rel=0.02)


# ---- the report author's choices, as switches (model.reset_at_padding, log_softmax_axis, init)
def test_reset_at_padding_equals_running_from_the_first_digit():
    """c_t = 0 at padding makes h_t = 0 there too, so h_T is the LSTM's on the unpadded suffix."""
    torch.manual_seed(0)
    model = LSTM(V, C, E, H).double()
    model.reset_token = 2
    x = torch.tensor([[2, 2, 2, 0, 1, 1, 0], [2, 0, 1, 1, 0, 0, 1], [1, 0, 1, 1, 1, 0, 0]])
    got = model(x)                                                   # (3, C), autograd path on CPU
    model.reset_token = None
    for b, row in enumerate(x):
        suffix = row[(row != 2).nonzero()[0, 0]:]                   # from the first digit on
        torch.testing.assert_close(got[b], model(suffix[None])[0])
    assert not torch.allclose(got[0], model(x[:1])[0])              # without the reset: differs


def test_switches_reach_the_model_from_the_config_and_are_off_by_default():
    """setup(cfg) builds what the config asks: the palindrome's padding token as the reset token
    with model.reset_at_padding=true, nothing (and class-axis log-softmax) by default."""
    from rnn_experiments.config import compose
    from rnn_experiments.data import PalindromeDataset
    from rnn_experiments.training.setup import setup
    small = ["model.hidden_size=8", "model.embedding_dim=4", "device=cpu", "train.eval_size=16"]
    default = compose(small).model
    assert (default.log_softmax_axis, default.reset_at_padding, default.init) == ("class", False, "kaiming_normal")
    _, data, model, _ = setup(compose(small))
    assert model.reset_token is None and model.log_softmax_dim == -1
    _, data, model, _ = setup(compose([*small, "model.reset_at_padding=true"]))
    assert model.reset_token == PalindromeDataset.pad_token is not None
    x = data.eval_x[:4]                                              # (4, T), left-padded palindromes
    assert (x == model.reset_token).any()
    reset = model(x)
    model.reset_token = None
    assert not torch.allclose(reset, model(x))                      # the reset changes the outputs


def test_batch_axis_log_softmax_normalises_over_the_batch():
    from rnn_experiments.config import compose
    from rnn_experiments.models import build_model
    cfg = compose(["model.log_softmax_axis=batch", "model.hidden_size=8", "model.embedding_dim=4"])
    model = build_model(cfg.model, V, C)
    out = model(tokens())                                            # (B, C)
    torch.testing.assert_close(out.exp().sum(0), torch.ones(C))     # columns sum to 1 ...
    assert not torch.allclose(out.exp().sum(1), torch.ones(B))      # ... rows do not


def test_fan_out_init_has_std_one_over_sqrt_of_the_output_size():
    torch.manual_seed(0)
    model = LSTM(3, 2, 64, 512, init="kaiming_normal_fan_out")
    assert model.W_gx.std().item() == pytest.approx(512 ** -0.5, rel=0.05)   # (H, E): fan = H
    assert model.W_ph.std().item() == pytest.approx(2 ** -0.5, rel=0.1)      # (C, H): fan = C = 2
    assert torch.all(model.b_g == 0)
