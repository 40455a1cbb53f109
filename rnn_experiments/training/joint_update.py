"""A pack's members' gradient clipping and optimizer steps, taken for all members at once.

After a stacked step (training/pack.py) each member k has its own gradient g_k and its own
optimizer. Its update, as in its separate run, is

    g_k ← g_k · min(1, max_norm / (‖g_k‖ + 1e-6)),   ‖g_k‖ = ‖(‖g_k,1‖, ..., ‖g_k,n‖)‖₂
    θ_k ← optimizer_k.step(θ_k, g_k)

(torch.nn.utils.clip_grad_norm_'s formula over member k's n tensors). Taken member after member
that is K clip calls and K optimizer steps, each a few calls over a small model's ~15 tensors:
at B = 32, H = 32 they cost about as much as the stacked forward and backward of all members.
`JointUpdate` takes them in two passes over all K·n tensors instead:

  * the clip: every tensor's norm in one foreach call, each member's ‖g_k‖ from its own n
    norms (the same calls clip_grad_norm_ makes, so the same numbers), then each member's
    gradients scaled by its own factor;
  * the step: one optimizer of the members' class and settings over all their parameters,
    whose state per parameter IS the member's own (the same dict), so each member's optimizer
    (and its checkpoint) holds what its own step would have left. This is exact only for an
    update that is element-wise per parameter, with no state across parameters: torch's Adam,
    AdamW and SGD (`ELEMENT_WISE`), with the same settings (learning rate included) in every
    member's one parameter group. Other optimizers — a user's, which may keep state across its
    parameters — step member after member (`why_not`), which is always exact.
"""
from __future__ import annotations

import torch
import torch.optim.optimizer as _optim

ELEMENT_WISE = (torch.optim.Adam, torch.optim.AdamW, torch.optim.SGD)


def _settings(optimizer) -> dict:
    group = optimizer.param_groups[0]
    return {k: v for k, v in group.items() if k != "params"}


def why_not(optimizers) -> str | None:
    """Why the members' steps cannot be one optimizer step (None: they can): one of torch's
    element-wise optimizers, one parameter group each with the same settings, no step hooks."""
    first = optimizers[0]
    if type(first) not in ELEMENT_WISE:
        return f"{type(first).__name__} is not one of torch's element-wise optimizers (Adam, AdamW, SGD)"
    if any(type(o) is not type(first) or len(o.param_groups) != 1 for o in optimizers):
        return "the members' optimizers differ in their class or have more than one parameter group"
    if any(o._optimizer_step_pre_hooks or o._optimizer_step_post_hooks for o in optimizers) or \
            _optim._global_optimizer_pre_hooks or _optim._global_optimizer_post_hooks:
        return "an optimizer has step hooks (each member's own step() runs them)"
    settings = _settings(first)
    if any(_settings(o) != settings for o in optimizers[1:]):
        return "the members' optimizer settings differ (a learning rate, ...)"
    return None


class JointUpdate:
    """clip + step of the module doc for members with optimizers `optimizers` (one each, in the
    members' order), clip norm `max_norm` and `params`, each member's model parameters (what its
    run clips: every parameter, whatever its optimizer holds); `__call__()` after every member's
    gradients are set."""

    def __init__(self, optimizers, max_norm: float, params):
        self.optimizers, self.max_norm = list(optimizers), float(max_norm)
        self.params = [list(ps) for ps in params]                    # per member, for the clip
        self.joint = None
        if why_not(self.optimizers) is None:
            flat = [p for o in self.optimizers for p in o.param_groups[0]["params"]]
            self.joint = type(self.optimizers[0])(flat, lr=_settings(self.optimizers[0])["lr"])
            self.joint.param_groups[0].update(_settings(self.optimizers[0]))   # every setting, as the members

    def clip(self) -> None:
        """Each member's gradients scaled by min(1, max_norm / (‖g_k‖ + 1e-6))."""
        grads = [[p.grad for p in ps if p.grad is not None] for ps in self.params]
        norms = torch._foreach_norm([g for gs in grads for g in gs], 2.0)   # every tensor's ‖·‖₂
        start = 0
        for gs in grads:
            if not gs:
                continue
            total = torch.linalg.vector_norm(torch.stack(norms[start:start + len(gs)]), 2.0)   # ‖g_k‖
            start += len(gs)
            torch._foreach_mul_(gs, torch.clamp(self.max_norm / (total + 1e-6), max=1.0))

    def step(self) -> None:
        """Every member's optimizer step: one step of the joint optimizer where the members'
        settings agree now (a scheduler may have changed them), else member after member."""
        if self.joint is None or why_not(self.optimizers) is not None:
            for o in self.optimizers:
                o.step()
            return
        self.joint.param_groups[0].update(_settings(self.optimizers[0]))   # lr and all, as now
        for o in self.optimizers:
            for p in o.param_groups[0]["params"]:
                self.joint.state[p] = o.state[p]          # the member's own state dict (made if new)
        self.joint.step()
        for o in self.optimizers:                         # each has stepped: what a schedule checks
            o._opt_called = True

    def __call__(self) -> None:
        self.clip()
        self.step()
