"""The LSTM and the peephole LSTM compute exactly their docstrings' equations: compared with
torch.nn.LSTM (copied weights) and with a step-by-step transcription of the equations, for both
the fast `forward` (fused Function) and the autograd `recurrence`."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from rnn_experiments.models import LSTM, PeepLSTM

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
