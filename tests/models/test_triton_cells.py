"""The Triton step kernels (models/kernels/triton_cells.py) against the CPU Functions of models/kernels/fused.py:
on CPU through Triton's interpreter (tiny sizes), and compiled on CUDA when a GPU is present
(realistic sizes, and against torch.nn.LSTM).

Whether Triton interprets is fixed when it is imported (TRITON_INTERPRET=1 then), for the whole
process. So the checks run in a child process, `python tests/models/test_triton_cells.py cpu|cuda`, with
the variable set (cpu) or removed (cuda) before anything imports triton; each test reads its
check's outcome from the child's report. This process never imports triton.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import traceback

import pytest
import torch
import torch.nn as nn

if importlib.util.find_spec("triton") is None:
    pytest.skip("triton is not installed", allow_module_level=True)

from rnn_experiments.config import conf_dir  # noqa: E402
from fused_check import assert_fused_equals_recurrence  # noqa: E402
from rnn_experiments.models import LSTM  # noqa: E402
from rnn_experiments.models.kernels import triton_cells  # noqa: E402  (imports no triton)
from rnn_experiments.models.kernels.fused import LSTMFunction, PeepLSTMFunction  # noqa: E402
from rnn_experiments.models.kernels.triton_cells import (  # noqa: E402
    LSTMTritonFunction, PeepLSTMTritonFunction)




def lstm_inputs(T, B, H, V, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    v = torch.randint(0, V, (T, B), generator=g)
    P = torch.randn(V, 4 * H, generator=g) * 0.5                       # (V, 4H)
    W_h = torch.randn(4 * H, H, generator=g) / H ** 0.5                 # (4H, H)
    dh_T = torch.randn(B, H, generator=g)
    return [x.to(device) for x in (v, P, W_h, dh_T)]


def peep_inputs(T, B, H, V, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    v = torch.randint(0, V, (T, B), generator=g)
    P = (torch.randn(V, 4 * H, generator=g) * 0.5)[:, :3 * H]          # (V, 3H), strided, as in use
    Q = torch.rand(V, H, generator=g)                                   # (V, H)
    W_c = torch.randn(3 * H, H, generator=g) / H ** 0.5                 # (3H, H)
    dh_T = torch.randn(B, H, generator=g)
    return [x.to(device) for x in (v, P, Q, W_c, dh_T)]


def run(fn, v, *weights_and_dh, extra=()):
    """h_T and the gradients of <h_T, dh_T> with respect to the weights."""
    *weights, dh_T = weights_and_dh
    weights = [w.detach().requires_grad_() for w in weights]
    h = fn(v, *weights, *extra)
    return (h.detach(), *torch.autograd.grad(h, weights, dh_T))


def check_lstm(T, B, H, V, device, tol):
    v, P, W_h, dh_T = lstm_inputs(T, B, H, V, device)
    ours = run(LSTMTritonFunction.apply, v, P, W_h, dh_T, extra=(True,))
    ref = run(LSTMFunction.apply, v, P, W_h, dh_T, extra=(True, True))
    for name, a, b in zip(("h_T", "dP", "dW_h"), ours, ref):
        torch.testing.assert_close(a, b, atol=tol, rtol=tol, msg=name)
    with torch.no_grad():
        torch.testing.assert_close(LSTMTritonFunction.apply(v, P, W_h, False), ref[0],
                                   atol=tol, rtol=tol)


def check_peep(T, B, H, V, device, tol):
    v, P, Q, W_c, dh_T = peep_inputs(T, B, H, V, device)
    ours = run(PeepLSTMTritonFunction.apply, v, P, Q, W_c, dh_T, extra=(True,))
    ref = run(PeepLSTMFunction.apply, v, P, Q, W_c, dh_T, extra=(True, True))
    for name, a, b in zip(("h_T", "dP", "dQ", "dW_c"), ours, ref):
        torch.testing.assert_close(a, b, atol=tol, rtol=tol, msg=name)
    with torch.no_grad():
        torch.testing.assert_close(PeepLSTMTritonFunction.apply(v, P, Q, W_c, False), ref[0],
                                   atol=tol, rtol=tol)


def check_errors_and_availability():
    v, P, W_h, _ = lstm_inputs(3, 2, 16, 3, "cpu")
    assert triton_cells.available(P)
    with pytest.raises(TypeError, match="float32"):
        LSTMTritonFunction.apply(v, P.double(), W_h.double(), True)
    P.requires_grad_()
    h = LSTMTritonFunction.apply(v, P, W_h, True)
    h.sum().backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="backward ran twice"):
        h.sum().backward()
    with pytest.raises(RuntimeError, match="keep=False"):
        LSTMTritonFunction.apply(v, P, W_h, False).sum().backward()
    del os.environ["TRITON_INTERPRET"]
    assert not triton_cells.available(P)


def check_against_nn_lstm(V=3, E=32, H=256, B=256, T=41):
    torch.manual_seed(0)
    ours = LSTM(V, 2, E, H).cuda()
    ref = nn.LSTM(E, H).cuda()                          # (T, B, E) inputs
    with torch.no_grad():                               # torch's gate order is i, f, g, o
        ref.weight_ih_l0.copy_(torch.cat([ours.W_ix, ours.W_fx, ours.W_gx, ours.W_ox]))
        ref.weight_hh_l0.copy_(torch.cat([ours.W_ih, ours.W_fh, ours.W_gh, ours.W_oh]))
        ref.bias_ih_l0.copy_(torch.cat([ours.b_i, ours.b_f, ours.b_g, ours.b_o]))
        ref.bias_hh_l0.zero_()
    v = torch.randint(0, V, (T, B), device="cuda")
    dh_T = torch.randn(B, H, device="cuda")
    W_x, W_h, b = ours._stacked()
    P = torch.addmm(b, ours.embedding.weight, W_x.t())                 # (V, 4H)
    h = LSTMTritonFunction.apply(v, P, W_h, True)
    out, _ = ref(ours.embedding(v).detach())                           # (T, B, H)
    torch.testing.assert_close(h, out[-1], atol=1e-4, rtol=1e-4)
    (h * dh_T).sum().backward()
    (out[-1] * dh_T).sum().backward()
    in_torch_order = lambda name: torch.cat([getattr(ours, name.format(g)).grad for g in "ifgo"])
    for name, ref_grad in (("W_{}h", ref.weight_hh_l0.grad), ("W_{}x", ref.weight_ih_l0.grad),
                           ("b_{}", ref.bias_ih_l0.grad)):
        torch.testing.assert_close(in_torch_order(name), ref_grad, atol=1e-4, rtol=1e-4, msg=name)


def check_models_forward(device="cpu", tol=1e-5):
    """LSTM, PeepLSTM and BiLSTM `forward` take the Triton path here (available() is True) and
    equal their autograd `recurrence`, outputs and every parameter's gradient."""
    from rnn_experiments.models import BiLSTM, PeepLSTM
    for cls in (LSTM, PeepLSTM, BiLSTM):
        torch.manual_seed(0)
        model = cls(3, 2, 8, 20).to(device)
        x = torch.randint(0, 3, (5, 7), device=device)
        assert_fused_equals_recurrence(model, x, column=1, tol=tol, msg=cls.__name__)


def check_reset_at_padding(device="cpu", tol=1e-5):
    """reset_token (model.reset_at_padding): the Triton path equals the autograd recurrence."""
    torch.manual_seed(0)
    model = LSTM(3, 2, 8, 20).to(device)
    model.reset_token = 2
    x = torch.tensor([[2, 2, 0, 1, 1, 0], [2, 0, 1, 2, 1, 1], [0, 1, 0, 0, 1, 1]], device=device)
    assert_fused_equals_recurrence(model, x, column=0, tol=tol)


CHECKS = {   # device -> check name -> check, run in the child process
    "cpu": {
        "lstm-T5-B3-H20": lambda: check_lstm(5, 3, 20, 3, "cpu", 1e-5),   # 2 unit tiles, masks
        "lstm-T1-B17-H8": lambda: check_lstm(1, 17, 8, 3, "cpu", 1e-5),   # one step: first = last
        "peep-T5-B3-H20": lambda: check_peep(5, 3, 20, 3, "cpu", 1e-5),
        "peep-T1-B17-H8": lambda: check_peep(1, 17, 8, 3, "cpu", 1e-5),
        "models-forward-vs-recurrence": check_models_forward,
        "reset-at-padding": check_reset_at_padding,
        "errors-and-availability": check_errors_and_availability,
    },
    "cuda": {
        "lstm-T41-B256-H256": lambda: check_lstm(41, 256, 256, 3, "cuda", 1e-4),
        "lstm-T7-B5-H20": lambda: check_lstm(7, 5, 20, 3, "cuda", 1e-4),
        "peep-T41-B256-H256": lambda: check_peep(41, 256, 256, 3, "cuda", 1e-4),
        "peep-T7-B5-H20": lambda: check_peep(7, 5, 20, 3, "cuda", 1e-4),
        "lstm-vs-nn.LSTM": check_against_nn_lstm,
        "models-forward-vs-recurrence": lambda: check_models_forward("cuda", 1e-4),
        "reset-at-padding": lambda: check_reset_at_padding("cuda", 1e-4),
    },
}


@pytest.fixture(scope="module")
def reports():
    """device -> the child's report {check name: "" or its traceback}, computed once per device."""
    cache = {}

    def report(device):
        if device not in cache:
            env = {k: x for k, x in os.environ.items() if k != "TRITON_INTERPRET"}
            if device == "cpu":
                env["TRITON_INTERPRET"] = "1"
            env["PYTHONPATH"] = os.pathsep.join([str(conf_dir().parent), env.get("PYTHONPATH", "")])
            child = subprocess.run([sys.executable, __file__, device], env=env, cwd=conf_dir().parent,
                                   capture_output=True, text=True, timeout=600)
            assert child.returncode == 0, child.stdout + child.stderr
            cache[device] = json.loads(child.stdout.splitlines()[-1])
        return cache[device]
    return report


@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
@pytest.mark.parametrize("name", list(CHECKS["cpu"]))
def test_in_the_interpreter_on_cpu(reports, name):
    failure = reports("cpu")[name]
    assert not failure, failure


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", list(CHECKS["cuda"]))
def test_compiled_on_cuda(reports, name):
    failure = reports("cuda")[name]
    assert not failure, failure


if __name__ == "__main__":              # the child: python tests/models/test_triton_cells.py cpu|cuda
    torch.backends.cuda.matmul.allow_tf32 = False   # fp32 references (addmm, cuDNN's nn.LSTM)
    torch.backends.cudnn.allow_tf32 = False
    outcomes = {}
    for name, check in CHECKS[sys.argv[1]].items():
        try:
            check()
            outcomes[name] = ""
        except Exception:
            outcomes[name] = traceback.format_exc()
    print(json.dumps(outcomes))
