"""The LSTM against torch.nn.LSTM with copied weights; the peephole LSTM against its equations."""
import pytest
import torch
import torch.nn as nn

from rnn_experiments.models import LSTM, PeepLSTM, count_params


def lstm_hidden_states(model, x):
    return torch.stack(model.recurrence(model.embedding(x)), dim=1)  # (B, T, H)


@pytest.mark.parametrize("B,T,E,H", [(3, 7, 5, 4), (2, 41, 8, 16)])
def test_lstm_matches_nn_lstm(B, T, E, H):
    torch.manual_seed(0)
    model = LSTM(vocab_size=3, num_classes=2, embedding_dim=E, hidden_size=H)
    with torch.no_grad():  # non-zero biases, so a wrong bias mapping cannot pass
        for name in "gifo":
            getattr(model, f"b_{name}").normal_()
    ref = nn.LSTM(E, H, batch_first=True)
    # nn.LSTM stacks its gates as (i, f, g, o); ours are named g, i, f, o.
    with torch.no_grad():
        ref.weight_ih_l0.copy_(torch.cat([model.W_ix, model.W_fx, model.W_gx, model.W_ox]))
        ref.weight_hh_l0.copy_(torch.cat([model.W_ih, model.W_fh, model.W_gh, model.W_oh]))
        ref.bias_ih_l0.copy_(torch.cat([model.b_i, model.b_f, model.b_g, model.b_o]))
        ref.bias_hh_l0.zero_()
    x = torch.randint(0, 3, (B, T))
    ours = lstm_hidden_states(model, x)
    theirs, (h_T, _) = ref(model.embedding(x))
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    expected = torch.log_softmax(h_T[0] @ model.W_ph.T + model.b_p, dim=-1)
    torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=1e-5)


def peephole_by_the_equations(m, x):
    """Eqs. (35)-(41) evaluated one timestep and one gate at a time, independently of the model."""
    sig = torch.sigmoid
    e = m.embedding(x)
    B, T, _ = e.shape
    c = torch.zeros(B, m.hidden_size)
    for t in range(T):
        x_t = e[:, t]
        f = sig(x_t @ m.W_fx.T + c @ m.W_fh.T + m.b_f)
        i = sig(x_t @ m.W_ix.T + c @ m.W_ih.T + m.b_i)
        o = sig(x_t @ m.W_ox.T + c @ m.W_oh.T + m.b_o)
        c = sig(x_t @ m.W_cx.T + m.b_c) * i + c * f
        h = torch.tanh(c) * o
    p = h @ m.W_ph.T + m.b_p
    return h, torch.log_softmax(p, dim=1)


@pytest.mark.parametrize("B,T,E,H", [(3, 7, 5, 4), (2, 41, 8, 16)])
def test_peep_lstm_matches_equations(B, T, E, H):
    torch.manual_seed(1)
    model = PeepLSTM(vocab_size=3, num_classes=2, embedding_dim=E, hidden_size=H)
    with torch.no_grad():
        for name in "fioc":
            getattr(model, f"b_{name}").normal_()
    x = torch.randint(0, 3, (B, T))
    h_T, log_probs = peephole_by_the_equations(model, x)
    torch.testing.assert_close(model.recurrence(model.embedding(x))[-1], h_T, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model(x), log_probs, atol=1e-5, rtol=1e-5)


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
