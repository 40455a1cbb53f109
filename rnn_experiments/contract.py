"""The dry check of a run's parts against their contract (docs/extending.md), before anything
is written: the dataset built with a held-out set of two, a batch of two drawn from it, and the
model built on PyTorch's meta device (shapes only: no memory, whatever its size) run on it.

    dataset  sample(2) -> (x, y): int64 tensors, x (2, T); y (2,) for a classifier's task,
             (2, T) for a generator's; eval_x, eval_y of the held-out size; vocab_size,
             num_classes; state_dict() / load_state_dict(): the same batch again after a
             round trip (exact resume)
    model    an nn.Module; forward(x) -> floating (2, num_classes) for a classifier, (2, T,
             vocab_size) for a generator, which also has step(x_t, state) (sampling)
    optimizer  built over one parameter at train.lr: a torch.optim.Optimizer whose step() needs
             no argument (no closure: the training step, alone or packed, computes the gradient
             and calls optimizer.step())
    scheduler  built over that optimizer: has step() and state_dict() / load_state_dict()
    metrics  each called on log-probabilities of the model's output shape (uniform) and the
             batch's y: returns a finite number (a float or a 0-d tensor)

A part that breaks it is refused with one line naming the class and the missing piece (a
ConfigError), not a traceback at step 1 of a job. The same nodes of the same classes are
checked once per process.
"""
from __future__ import annotations

import inspect
import json

from rnn_experiments.errors import ConfigError
from rnn_experiments.parts import build_part, part_nodes, qualname, target_of

_CHECKED: set = set()
DATASET_NEEDS = ("sample", "eval_x", "eval_y", "vocab_size", "num_classes", "state_dict", "load_state_dict")


def check_contract(cfg) -> None:
    """ConfigError (one line) where cfg's dataset or model breaks its contract (the module doc)."""
    from omegaconf import OmegaConf
    key = json.dumps([OmegaConf.to_container(cfg[part], resolve=True) for part in PARTS if cfg.get(part) is not None]
                     + [cfg.get("train", {}).get("lr")], sort_keys=True, default=str) + \
        repr([id(target_of(node, k)) for k, node in part_nodes(cfg)])    # the classes, as imported now
    if key in _CHECKED:
        return
    x, y, data = _check_dataset(cfg)
    out_shape = _check_model(cfg, x, y, data)
    if cfg.get("optimizer"):
        _check_optimizer(cfg)
    for name, node in (cfg.get("metrics") or {}).items():
        _check_metric(name, node, out_shape, y)
    _CHECKED.add(key)


PARTS = ("model", "dataset", "optimizer", "scheduler", "metrics")


def _check_dataset(cfg):
    import torch   # lazy: the checks of rnn-analyze and rnn-generate do not need torch

    cls = target_of(cfg.dataset, "dataset")
    where = f"dataset={cfg.dataset.name} ({qualname(cls)})"

    def refuse(why: str):
        raise ConfigError(f"{where} breaks the dataset contract: {why} (docs/extending.md)")

    data = build_part(cfg.dataset, "dataset", seed=cfg.seed, device=torch.device("cpu"), eval_size=2)
    missing = [name for name in DATASET_NEEDS if not hasattr(data, name)]
    if missing:
        refuse(f"it has no {', '.join(missing)}")
    state = data.state_dict()
    batch = data.sample(2)
    if not (isinstance(batch, tuple) and len(batch) == 2 and all(isinstance(t, torch.Tensor) for t in batch)):
        refuse(f"sample(2) returned {type(batch).__name__}, expected a tuple (x, y) of tensors")
    x, y = batch
    if x.dtype != torch.long or x.dim() != 2 or x.shape[0] != 2:
        refuse(f"sample(2) gave x {tuple(x.shape)} {x.dtype}, expected int64 (2, T)")
    generator = getattr(cls, "model_kind", "classifier") == "generator"
    want = (2, x.shape[1]) if generator else (2,)
    if y.dtype != torch.long or tuple(y.shape) != want:
        refuse(f"sample(2) gave y {tuple(y.shape)} {y.dtype}, expected int64 {want}")
    if len(data.eval_x) != 2 or len(data.eval_y) != 2:
        refuse(f"eval_x, eval_y hold {len(data.eval_x)}, {len(data.eval_y)} examples, expected eval_size (2)")
    data.load_state_dict(state)
    again = data.sample(2)
    if not (torch.equal(again[0], x) and torch.equal(again[1], y)):
        refuse("load_state_dict(state_dict()) does not give the same batch again (a resumed run would "
               "train on other batches)")
    return x, y, data


def _check_model(cfg, x, y, data) -> None:
    import torch   # lazy: as above
    import torch.nn as nn   # lazy: as above

    cls = target_of(cfg.model, "model")
    where = f"model={cfg.model.name} ({qualname(cls)})"

    def refuse(why: str):
        raise ConfigError(f"{where} breaks the {kind} contract: {why} (docs/extending.md)")

    kind = getattr(cls, "kind", "classifier")
    with torch.device("meta"):
        model = build_part(cfg.model, "model", vocab_size=data.vocab_size, num_classes=data.num_classes,
                           pad_token=getattr(data, "pad_token", None))
    if not isinstance(model, nn.Module):
        refuse(f"it built a {type(model).__name__}, expected a torch.nn.Module")
    if kind == "generator" and not callable(getattr(model, "step", None)):
        refuse("it has no step(x_t, state) -> (logits, state), which sampling calls (rnn-generate, sample.*)")
    want = (2, x.shape[1], data.vocab_size) if kind == "generator" else (2, data.num_classes)
    try:
        with torch.no_grad(), torch.device("meta"):   # what forward allocates: shapes only too
            out = model(x.to("meta"))
    except Exception as e:   # an error of the user's forward, on shapes only
        refuse(f"forward(x {tuple(x.shape)} int64) raised {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    if not isinstance(out, torch.Tensor) or not out.is_floating_point() or tuple(out.shape) != want:
        got = f"{tuple(out.shape)} {out.dtype}" if isinstance(out, torch.Tensor) else type(out).__name__
        refuse(f"forward(x {tuple(x.shape)} int64) returned {got}, expected floating {want} log-probabilities")
    return want


def _check_optimizer(cfg) -> None:
    import torch   # lazy: as above

    cls = target_of(cfg.optimizer, "optimizer")
    try:
        optimizer = build_part(cfg.optimizer, "optimizer", params=[torch.nn.Parameter(torch.zeros(1))],
                               lr=cfg.train.lr)
    except (TypeError, ValueError) as e:   # torch's own checks of its arguments
        raise ConfigError(f"optimizer={cfg.optimizer.name} ({qualname(cls)}) refused its settings: "
                          f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ConfigError(f"optimizer={cfg.optimizer.name} ({qualname(cls)}) breaks the optimizer contract: "
                          f"it built a {type(optimizer).__name__}, expected a torch.optim.Optimizer "
                          "(docs/extending.md)")
    needs = [p.name for p in inspect.signature(optimizer.step).parameters.values()
             if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if needs:   # the training step (training/step.py, a pack's alike) calls optimizer.step() after its backward
        raise ConfigError(f"optimizer._target_={cfg.optimizer._target_} breaks the optimizer contract: its "
                          f"step() requires `{', '.join(needs)}` (a closure that evaluates the loss again), "
                          "expected an optimizer whose step() takes no argument: the training step computes "
                          "the gradient, then calls optimizer.step() (docs/extending.md)")
    if cfg.get("scheduler"):
        _check_scheduler(cfg, optimizer)


def _check_scheduler(cfg, optimizer) -> None:
    cls = target_of(cfg.scheduler, "scheduler")
    where = f"scheduler={cfg.scheduler.name} ({qualname(cls)})"
    try:
        scheduler = build_part(cfg.scheduler, "scheduler", optimizer=optimizer)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where} refused its settings: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    missing = [m for m in ("step", "state_dict", "load_state_dict") if not callable(getattr(scheduler, m, None))]
    if missing:
        raise ConfigError(f"{where} breaks the scheduler contract: it has no {', '.join(missing)} (docs/extending.md)")


def _check_metric(name: str, node, shape: tuple, y) -> None:
    import math

    import torch   # lazy: as above

    cls = target_of(node, f"metrics.{name}")
    where = f"metrics.{name} ({qualname(cls)})"
    log_probs = torch.full(shape, -math.log(shape[-1]))      # uniform predictions
    try:
        value = build_part(node, f"metrics.{name}")(log_probs, y)
        value = float(value)
    except Exception as e:   # the user's code, on a batch of two
        raise ConfigError(f"{where} breaks the metric contract: metric(log_probs {tuple(shape)}, y {tuple(y.shape)}) "
                          f"raised {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
                          "(expected a number; docs/extending.md)") from None
    if not math.isfinite(value):
        raise ConfigError(f"{where} breaks the metric contract: it gave {value} on uniform predictions, expected "
                          "a finite number (docs/extending.md)")
