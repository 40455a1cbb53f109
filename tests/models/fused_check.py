"""One check shared by the fused-path tests (CPU Functions, Triton kernels): a model's fast path
and its autograd `recurrence` give the same outputs and parameter gradients. A plain module beside
the tests, so that the Triton child process (`python tests/models/test_triton_cells.py`) imports it too."""
from __future__ import annotations

import torch


def assert_fused_equals_recurrence(model, x, column: int = 0, tol: float | None = None, msg: str = "") -> None:
    """model(x) and the gradients of model(x)[:, column].sum(), with model.fused True and False,
    equal within tol (None: assert_close's defaults for the dtype)."""
    outs = []
    for fused in (True, False):
        model.fused = fused
        model.zero_grad()
        out = model(x)
        out[:, column].sum().backward()
        outs.append((out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (a, ga), (b, gb) = outs
    torch.testing.assert_close(a, b, atol=tol, rtol=tol, msg=msg or None)
    for n in ga:
        torch.testing.assert_close(ga[n], gb[n], atol=tol, rtol=tol, msg=f"{msg}.{n}" if msg else n)
