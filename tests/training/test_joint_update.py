"""A pack's joint clip and optimizer step (training/joint_update.py) leaves every member's
parameters, gradients and optimizer state bit for bit as its own clip_grad_norm_ and step would."""
from __future__ import annotations

import copy

import pytest
import torch

from rnn_experiments.training.joint_update import JointUpdate, why_not


class GlobalScaleSGD(torch.optim.Optimizer):
    """A user's optimizer with state across its parameters: every update divided by the norm of
    all its gradients together (not element-wise)."""

    def __init__(self, params, lr=0.1):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            grads = [p.grad for p in group["params"] if p.grad is not None]
            scale = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])) + 1e-8
            for p in group["params"]:
                p.add_(p.grad, alpha=-group["lr"] / float(scale))


OPTIMIZERS = {
    "adam-fused": lambda ps: torch.optim.Adam(ps, lr=0.01, fused=True),
    "adam-foreach": lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.01),
    "adamw": lambda ps: torch.optim.AdamW(ps, lr=0.01, fused=True),
    "sgd-momentum": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True),
    "user": lambda ps: GlobalScaleSGD(ps),
}


def members(K=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [[torch.randn(4, 5, generator=g).requires_grad_(), torch.randn(5, generator=g).requires_grad_()]
            for _ in range(K)]


def set_grads(params, step):
    """Gradients of different sizes per member: member 0's are clipped, member 2's are not."""
    g = torch.Generator().manual_seed(100 + step)
    for k, ps in enumerate(params):
        for p in ps:
            p.grad = torch.randn(p.shape, generator=g) * (3.0 if k == 0 else 0.05)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_the_joint_update_equals_each_members_own_clip_and_step(name):
    mine, ref = members(), members()
    opt_mine = [OPTIMIZERS[name](ps) for ps in mine]
    opt_ref = [OPTIMIZERS[name](ps) for ps in ref]
    update = JointUpdate(opt_mine, max_norm=1.0, params=mine)
    assert (update.joint is None) == (name == "user")
    for step in range(6):
        if step == 3:                              # a schedule changes every member's lr alike
            for o in opt_mine + opt_ref:
                o.param_groups[0]["lr"] *= 0.5
        set_grads(mine, step)
        set_grads(ref, step)
        update()
        for o, ps in zip(opt_ref, ref):
            torch.nn.utils.clip_grad_norm_(ps, 1.0)
            o.step()
        for ps_m, ps_r in zip(mine, ref):
            for p_m, p_r in zip(ps_m, ps_r):
                assert torch.equal(p_m, p_r) and torch.equal(p_m.grad, p_r.grad)
    for o_m, o_r in zip(opt_mine, opt_ref):        # the members' own state: what a checkpoint saves
        s_m, s_r = o_m.state_dict(), o_r.state_dict()
        assert s_m["param_groups"] == s_r["param_groups"]
        for i in s_r["state"]:
            for key, value in s_r["state"][i].items():
                assert torch.equal(torch.as_tensor(s_m["state"][i][key]), torch.as_tensor(value)), (i, key)


def test_members_whose_settings_differ_step_one_after_the_other_and_stay_exact():
    mine, ref = members(), members()
    opt_mine = [torch.optim.Adam(ps, lr=0.01 * (k + 1)) for k, ps in enumerate(mine)]
    opt_ref = [torch.optim.Adam(ps, lr=0.01 * (k + 1)) for k, ps in enumerate(ref)]
    assert "settings differ" in why_not(opt_mine)
    update = JointUpdate(opt_mine, max_norm=1.0, params=mine)
    set_grads(mine, 0)
    set_grads(ref, 0)
    update()
    for o, ps in zip(opt_ref, ref):
        torch.nn.utils.clip_grad_norm_(ps, 1.0)
        o.step()
    assert all(torch.equal(a, b) for ps_m, ps_r in zip(mine, ref) for a, b in zip(ps_m, ps_r))


def test_a_users_optimizer_is_named_in_why_not():
    opts = [GlobalScaleSGD(ps) for ps in members()]
    assert why_not(opts) == "GlobalScaleSGD is not one of torch's element-wise optimizers (Adam, AdamW, SGD)"
    assert why_not([torch.optim.SGD(ps, lr=0.1) for ps in copy.deepcopy(members())]) is None


def test_every_parameter_is_clipped_whatever_the_optimizer_holds_and_groups_step_alone():
    """Member k's clip covers all its parameters, as its run's clip_grad_norm_(model.parameters())
    does: a second parameter group (no weight decay on biases) or a parameter the optimizer does
    not hold included; two groups step member after member."""
    def build(ps):
        return torch.optim.AdamW([{"params": [ps[0]]}, {"params": [ps[1]], "weight_decay": 0.0}], lr=0.01)
    mine, ref = members(), members()
    extra_m, extra_r = [torch.ones(3, requires_grad=True) for _ in mine], [torch.ones(3, requires_grad=True) for _ in ref]
    opt_mine, opt_ref = [build(ps) for ps in mine], [build(ps) for ps in ref]
    assert "more than one parameter group" in why_not(opt_mine)
    update = JointUpdate(opt_mine, 1.0, [ps + [e] for ps, e in zip(mine, extra_m)])
    set_grads(mine, 0)
    set_grads(ref, 0)
    for e_m, e_r in zip(extra_m, extra_r):
        e_m.grad, e_r.grad = torch.full((3,), 5.0), torch.full((3,), 5.0)
    update()
    for o, ps, e in zip(opt_ref, ref, extra_r):
        torch.nn.utils.clip_grad_norm_(ps + [e], 1.0)
        o.step()
    for ps_m, ps_r, e_m, e_r in zip(mine, ref, extra_m, extra_r):
        assert torch.equal(e_m.grad, e_r.grad) and all(torch.equal(a, b) for a, b in zip(ps_m, ps_r))


def test_a_schedule_over_a_member_sees_its_step_and_hooks_make_members_step_alone(recwarn):
    mine = members()
    opts = [torch.optim.Adam(ps, lr=0.01, fused=True) for ps in mine]
    schedules = [torch.optim.lr_scheduler.StepLR(o, step_size=1, gamma=0.5) for o in opts]
    update = JointUpdate(opts, 1.0, mine)
    assert update.joint is not None
    set_grads(mine, 0)
    update()
    for s in schedules:
        s.step()
    assert not [w for w in recwarn if "lr_scheduler.step()" in str(w.message)]
    assert all(o.param_groups[0]["lr"] == 0.005 for o in opts)
    calls = []
    opts[1].register_step_post_hook(lambda *a: calls.append(1))
    assert "step hooks" in why_not(opts)
    set_grads(mine, 1)
    JointUpdate(opts, 1.0, mine)()
    assert calls == [1]
