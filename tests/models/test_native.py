"""The LSTM's compiled time loops (models/kernels/native.py, native_lstm.c): gradcheck, equal to
the Python loops of LSTMFunction and to the model's recurrence, with and without the member axis;
and where they cannot be built, the step choice says why instead of failing."""
from __future__ import annotations

import shutil

import pytest
import torch

from fused_check import assert_fused_equals_recurrence
from rnn_experiments.models import LSTM, BiLSTM
from rnn_experiments.models.kernels import fused, native
from rnn_experiments.models.kernels.fused import LSTMFunction
from rnn_experiments.training import impl

NATIVE = ("native", None)
needs_lib = pytest.mark.skipif(native.lib() is None, reason=f"no compiled loop here: {native.why_not()}")


@pytest.fixture(params=[64, 0], ids=["onehot_product", "gathered_rows"])
def token_rows(request, monkeypatch):
    """Both ways P[v_t] enters: the product with onehot(v_t) (small vocabularies), or gathered."""
    monkeypatch.setattr(fused, "ONEHOT_MAX_VOCAB", request.param)


def _inputs(lead, H=4, V=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    K = lead[:-1]
    v = torch.randint(0, V, (6, *lead), generator=g)                              # (T, [K,] B)
    P = torch.randn(*K, V, 4 * H, generator=g, dtype=torch.float64).requires_grad_()
    W = (0.5 * torch.randn(*K, 4 * H, H, generator=g, dtype=torch.float64)).requires_grad_()
    return v, P, W


@needs_lib
@pytest.mark.parametrize("lead", [(3,), (2, 3)], ids=["one", "members"])
@pytest.mark.parametrize("reset", [None, 2])
def test_the_compiled_loops_pass_gradcheck(token_rows, lead, reset):
    v, P, W = _inputs(lead)
    assert torch.autograd.gradcheck(lambda P, W: LSTMFunction.apply(v, P, W, False, True, reset, NATIVE), (P, W))


@needs_lib
@pytest.mark.parametrize("lead", [(5,), (3, 5)], ids=["one", "members"])
@pytest.mark.parametrize("reset", [None, 1])
@pytest.mark.parametrize("block_steps", [None, 2], ids=["one_block", "blocks_of_2_steps"])
def test_the_compiled_loops_equal_the_python_loops(token_rows, lead, reset, block_steps, monkeypatch):
    """float64: h_T, dP, dW_h as LSTMFunction's Python loops give them (ATen's tanh) to 1e-12;
    evaluation (keep=False, the rings of buffers) and a second backward (reuse_buffers=False) too;
    buffers held as one block, or as blocks of two timesteps (the per-step pointers cross them)."""
    if block_steps:
        monkeypatch.setattr(fused, "BLOCK_BYTES", block_steps * 8 * 4 * 4 * torch.Size(lead).numel())
    results = {}
    for kernels in (("aten", "mkl"), NATIVE):
        v, P, W = _inputs(lead, seed=4)
        dh = torch.randn(*lead, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
        h = LSTMFunction.apply(v, P, W, False, True, reset, kernels)
        (h * dh).sum().backward(retain_graph=True)
        (h * dh).sum().backward()                                 # twice: the gradients doubled
        with torch.no_grad():
            h_eval = LSTMFunction.apply(v, P, W, True, False, reset, kernels)
        results[kernels[0]] = (h, P.grad, W.grad, h_eval)
    for python, compiled in zip(results["aten"], results["native"]):
        torch.testing.assert_close(compiled, python, rtol=0, atol=1e-12)


@needs_lib
@pytest.mark.parametrize("cls", [LSTM, BiLSTM])
def test_the_model_with_compiled_loops_is_its_recurrence(cls, token_rows):
    """Through the model (embedding, readout; BiLSTM: both directions): float64 to 1e-12, and
    in float32 as trained, to 1e-5."""
    torch.manual_seed(0)
    model = cls(3, 2, 8, 16)
    model.kernels = NATIVE
    x = torch.randint(0, 3, (6, 11))
    assert_fused_equals_recurrence(model, x, tol=1e-5, msg="float32")
    assert_fused_equals_recurrence(model.double(), x, tol=1e-12, msg="float64")


@needs_lib
@pytest.mark.parametrize("lead", [(3,), (2, 3)], ids=["one", "members"])
def test_a_token_outside_the_vocabulary_is_an_index_error_as_in_the_python_loop(token_rows, lead):
    v, P, W = _inputs(lead)
    v[4].view(-1)[-1] = 3                                      # V = 3: ids 0..2
    with pytest.raises((IndexError, RuntimeError), match="out of"):   # the Python loop: ATen's error
        LSTMFunction.apply(v, P, W, False, True, None, ("aten", "mkl"))
    with pytest.raises(IndexError, match=r"token id 3 at step 4, row \d is outside the vocabulary \[0, 3\)"):
        LSTMFunction.apply(v, P, W, False, True, None, NATIVE)
    v[4].view(-1)[-1] = 0
    LSTMFunction.apply(v, P, W, False, True, None, NATIVE)     # the buffers are still good


@needs_lib
def test_the_compiled_loop_is_a_candidate_of_the_step_where_it_builds():
    model = LSTM(3, 2, 8, 16)
    assert impl.candidates(model)["fused:native"] == {"fused": True, "kernels": NATIVE}
    assert impl.unavailable(model) == {}


@pytest.fixture
def fresh_native(monkeypatch, tmp_path):
    """native.py as in a new process with its own cache folder."""
    monkeypatch.setattr(native, "_STATE", {})
    monkeypatch.setenv("RNN_EXPERIMENTS_CACHE", str(tmp_path))
    return tmp_path


def test_without_a_compiler_the_step_choice_says_why_and_the_python_loops_run(fresh_native, monkeypatch):
    monkeypatch.setenv("CC", "no-such-cc")
    model = LSTM(3, 2, 8, 16)
    assert native.lib() is None and native.why_not() == "no C compiler (no-such-cc) on PATH"
    assert "fused:native" not in impl.candidates(model) and "fused:sigmoid-tanh" in impl.candidates(model)
    assert impl.unavailable(model) == {"fused:native": "no C compiler (no-such-cc) on PATH"}
    v, P, W = _inputs((3,))
    with pytest.raises(RuntimeError, match="compiled LSTM loop is not available here: no C compiler"):
        LSTMFunction.apply(v, P, W, False, True, None, NATIVE)


def test_a_compiler_that_fails_is_one_line_naming_it(fresh_native, monkeypatch):
    monkeypatch.setenv("CC", "false")                       # runs, builds nothing
    assert native.lib() is None
    assert native.why_not() == f"{shutil.which('false')} could not build native_lstm.c (exit status 1)"
    assert not list(fresh_native.glob("native-*"))          # nothing half-written left behind


@needs_lib
@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
def test_a_cached_library_cut_short_is_built_again(fresh_native):
    """(As another process finds it: a cached file that does not load is replaced, not used.)"""
    path = native.target(native._compiler())
    path.write_bytes(b"\x7fELF" + bytes(96))               # cut short (a full disk, a killed copy)
    lib = native.lib()
    assert lib is not None and lib.path == path and path.stat().st_size > 1000
    v, P, W = _inputs((3,))
    torch.testing.assert_close(LSTMFunction.apply(v, P, W, False, True, None, NATIVE),
                               LSTMFunction.apply(v, P, W, False, True, None, ("aten", "mkl")), rtol=0, atol=1e-12)


def test_without_blas_in_torch_s_library_the_step_choice_says_why(fresh_native, monkeypatch):
    monkeypatch.setattr(native, "_blas", lambda: None)
    assert native.lib() is None and native.why_not() == "torch's CPU library exports no BLAS sgemm_/dgemm_"
    assert impl.unavailable(LSTM(3, 2, 8, 16)) == {"fused:native": native.why_not()}


def test_the_run_s_step_record_names_what_this_machine_cannot_offer(fresh_native, monkeypatch, make_cfg):
    """summary.json's impl record: `unavailable` where the compiled loop cannot be had, absent where it can."""
    from rnn_experiments.config import validate
    from rnn_experiments.training.setup import setup
    monkeypatch.setenv("CC", "no-such-cc")
    cfg = make_cfg("train.threads=1")
    validate(cfg)
    device, data, model, _ = setup(cfg)
    assert impl.choose_impl(cfg, device, data, model)["unavailable"] == {
        "fused:native": "no C compiler (no-such-cc) on PATH"}


@needs_lib
def test_inputs_the_compiled_loop_cannot_take_are_refused_or_converted():
    v, P, W = _inputs((3,))
    with pytest.raises(RuntimeError, match="one dtype"):
        LSTMFunction.apply(v, P, W.float(), False, True, None, NATIVE)           # float64 P, float32 W_h
    with pytest.raises(ValueError, match="its gemm must be None"):
        LSTMFunction.apply(v, P, W, False, True, None, ("native", "mkl"))
    torch.testing.assert_close(LSTMFunction.apply(v.int(), P, W, False, True, None, NATIVE),   # int32 ids
                               LSTMFunction.apply(v, P, W, False, True, None, NATIVE), rtol=0, atol=0)
