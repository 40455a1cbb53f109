"""Vanilla RNN, GRU and bidirectional LSTM against their equations, written out step by step here,
against torch's nn.RNN / bidirectional nn.LSTM with copied weights, and against their closed-form
parameter counts; and each learns an easy task."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from rnn_experiments.models import BiLSTM, GRU, LSTM, PeepLSTM, RNN, build_model, count_params

MODELS = {"rnn": RNN, "gru": GRU, "bilstm": BiLSTM, "lstm": LSTM, "peep_lstm": PeepLSTM}
from rnn_experiments.training.loop import train

B, T, V, C, E, H = 3, 7, 5, 4, 6, 8


def _model(name, seed=0):
    torch.manual_seed(seed)
    model = MODELS[name](vocab_size=V, num_classes=C, embedding_dim=E, hidden_size=H)
    with torch.no_grad():  # nonzero biases, so that a misplaced bias shows
        for pname, p in model.named_parameters():
            if pname.rsplit(".", 1)[-1].startswith("b_"):
                p.normal_(0, 0.5)
    return model.double()


def _tokens(seed=1):
    return torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(seed))


def sigma(a):
    return 1 / (1 + torch.exp(-a))


def lstm_steps(p, xs, prefix=""):
    """The LSTM's equations, one step at a time; p maps W_gx... to tensors. xs: list of (B, E)."""
    g_ = lambda k: p[prefix + k]
    h = torch.zeros(xs[0].shape[0], H, dtype=xs[0].dtype)
    c = torch.zeros_like(h)
    hs = []
    for x in xs:
        g = torch.tanh(x @ g_("W_gx").T + h @ g_("W_gh").T + g_("b_g"))
        i = sigma(x @ g_("W_ix").T + h @ g_("W_ih").T + g_("b_i"))
        f = sigma(x @ g_("W_fx").T + h @ g_("W_fh").T + g_("b_f"))
        o = sigma(x @ g_("W_ox").T + h @ g_("W_oh").T + g_("b_o"))
        c = g * i + c * f
        h = torch.tanh(c) * o
        hs.append(h)
    return hs


def test_rnn_matches_its_equations_step_by_step():
    model, x = _model("rnn"), _tokens()
    p = dict(model.named_parameters())
    e = p["embedding.weight"][x]                                  # (B, T, E)
    h = torch.zeros(B, H, dtype=torch.double)
    for t in range(T):
        h = torch.tanh(p["W_hx"] @ e[:, t].T + p["W_hh"] @ h.T + p["b_h"][:, None]).T
    expected = F.log_softmax(h @ p["W_ph"].T + p["b_p"], dim=1)
    torch.testing.assert_close(model(x), expected)


def test_rnn_matches_torch_nn_rnn_with_copied_weights():
    model, x = _model("rnn"), _tokens()
    ref = nn.RNN(E, H, nonlinearity="tanh", batch_first=True).double()
    with torch.no_grad():
        ref.weight_ih_l0.copy_(model.W_hx)
        ref.weight_hh_l0.copy_(model.W_hh)
        ref.bias_ih_l0.copy_(model.b_h)
        ref.bias_hh_l0.zero_()
    e = model.embedding(x)
    out, h_T = ref(e)
    torch.testing.assert_close(torch.stack(model.recurrence(e), 1), out)
    torch.testing.assert_close(model(x), F.log_softmax(F.linear(h_T[0], model.W_ph, model.b_p), -1))


def test_gru_matches_the_assignments_equations_step_by_step():
    model, x = _model("gru"), _tokens()
    p = dict(model.named_parameters())
    W = {k: torch.cat([p[f"W_{k}h"], p[f"W_{k}x"]], dim=1) for k in "zrh"}  # W_k [h, x]
    e = p["embedding.weight"][x]
    h = torch.zeros(B, H, dtype=torch.double)
    for t in range(T):
        x_t = e[:, t]
        z = sigma(torch.cat([h, x_t], 1) @ W["z"].T + p["b_z"])
        r = sigma(torch.cat([h, x_t], 1) @ W["r"].T + p["b_r"])
        h_tilde = torch.tanh(torch.cat([r * h, x_t], 1) @ W["h"].T + p["b_h"])
        h = (1 - z) * h + z * h_tilde
    expected = F.log_softmax(h @ p["W_ph"].T + p["b_p"], dim=1)
    torch.testing.assert_close(model(x), expected)


def test_gru_differs_from_torch_nn_gru():
    """nn.GRU applies r after the recurrent product and keeps z of the OLD state: with our weights
    copied in it computes torch's documented equations (checked step by step, so the copy is
    right), and those are not the assignment's (test_gru_matches_its_equations): the outputs differ."""
    model, x = _model("gru"), _tokens()
    ref = nn.GRU(E, H, batch_first=True).double()
    with torch.no_grad():  # nn.GRU's rows: r, z, n
        ref.weight_ih_l0.copy_(torch.cat([model.W_rx, model.W_zx, model.W_hx]))
        ref.weight_hh_l0.copy_(torch.cat([model.W_rh, model.W_zh, model.W_hh]))
        ref.bias_ih_l0.copy_(torch.cat([model.b_r, model.b_z, model.b_h]))
        ref.bias_hh_l0.zero_()
    p = dict(model.named_parameters())
    e = model.embedding(x)                                                  # (B, T, E)
    h, hs = torch.zeros(B, H, dtype=torch.double), []
    for t in range(T):    # torch's nn.GRU documentation, with b_hh = 0
        x_t = e[:, t]
        r = sigma(x_t @ p["W_rx"].T + p["b_r"] + h @ p["W_rh"].T)
        z = sigma(x_t @ p["W_zx"].T + p["b_z"] + h @ p["W_zh"].T)
        n = torch.tanh(x_t @ p["W_hx"].T + p["b_h"] + r * (h @ p["W_hh"].T))
        h = (1 - z) * n + z * h
        hs.append(h)
    torch_equations = torch.stack(hs, 1)                                    # (B, T, H)
    torch.testing.assert_close(ref(e)[0], torch_equations)
    ours = torch.stack(model.recurrence(e), 1)
    assert (ours - torch_equations).abs().max() > 0.05


def test_bilstm_matches_two_lstms_step_by_step():
    model, x = _model("bilstm"), _tokens()
    p = dict(model.named_parameters())
    e = p["embedding.weight"][x]
    xs = list(e.unbind(1))
    h_fwd_T = lstm_steps(p, xs, "fwd.")[-1]
    h_bwd_1 = lstm_steps(p, xs[::-1], "bwd.")[-1]               # the backward LSTM reads T..1
    expected = F.log_softmax(torch.cat([h_fwd_T, h_bwd_1], 1) @ p["W_ph"].T + p["b_p"], dim=1)
    torch.testing.assert_close(model(x), expected)


def test_bilstm_matches_torch_bidirectional_lstm_with_copied_weights():
    model, x = _model("bilstm"), _tokens()
    ref = nn.LSTM(E, H, batch_first=True, bidirectional=True).double()
    with torch.no_grad():
        for d, suffix in ((model.fwd, ""), (model.bwd, "_reverse")):  # nn.LSTM's gate order: i, f, g, o
            getattr(ref, "weight_ih_l0" + suffix).copy_(torch.cat([d.W_ix, d.W_fx, d.W_gx, d.W_ox]))
            getattr(ref, "weight_hh_l0" + suffix).copy_(torch.cat([d.W_ih, d.W_fh, d.W_gh, d.W_oh]))
            getattr(ref, "bias_ih_l0" + suffix).copy_(torch.cat([d.b_i, d.b_f, d.b_g, d.b_o]))
            getattr(ref, "bias_hh_l0" + suffix).zero_()
    e = model.embedding(x)
    out, _ = ref(e)                                               # (B, T, 2H): [h_fwd(t); h_bwd(t)]
    torch.testing.assert_close(torch.stack(model.recurrence(e), 1), out)
    features = torch.cat([out[:, -1, :H], out[:, 0, H:]], 1)
    torch.testing.assert_close(model(x), F.log_softmax(F.linear(features, model.W_ph, model.b_p), -1))


CLOSED_FORM = {
    "rnn": lambda E, H, C: H * E + H * H + H + C * H + C,
    "gru": lambda E, H, C: 3 * (H * E + H * H + H) + C * H + C,
    "bilstm": lambda E, H, C: 2 * 4 * (H * E + H * H + H) + 2 * C * H + C,
    "lstm": lambda E, H, C: 4 * (H * E + H * H + H) + C * H + C,
    "peep_lstm": lambda E, H, C: 4 * (H * E + H) + 3 * H * H + C * H + C,
}


@pytest.mark.parametrize("name", sorted(CLOSED_FORM))
@pytest.mark.parametrize("E_, H_, C_", [(64, 256, 2), (8, 16, 15)])
def test_parameter_count_matches_closed_form(make_cfg, name, E_, H_, C_):
    cfg = make_cfg(f"model={name}", f"model.embedding_dim={E_}", f"model.hidden_size={H_}")
    model = build_model(cfg.model, vocab_size=V, num_classes=C_)
    assert count_params(model) - count_params(model.embedding) == CLOSED_FORM[name](E_, H_, C_)


@pytest.mark.parametrize("name", ["rnn", "gru", "bilstm"])
def test_new_models_learn_random_combinations(make_cfg, tmp_path, name):
    """L = 4: three of 0..3 shown, name the fourth. Chance is 25%."""
    cfg = make_cfg(f"model={name}", "dataset=random_comb", "dataset.seq_length=4", "train.steps=120",
                   "train.lr=1e-2", "train.batch_size=64", "train.eval_every=40", "train.eval_size=256",
                   "train.threads=1")
    summary = train(cfg, tmp_path)
    assert summary["status"] == "completed"
    assert summary["final_eval_accuracy"] > 0.9
    E_, H_ = cfg.model.embedding_dim, cfg.model.hidden_size
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["num_params"] - written["num_params_embedding"] == CLOSED_FORM[name](E_, H_, 4)
