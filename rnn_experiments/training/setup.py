"""What every trainer builds before its first step: seeds, device, data, model, optimiser.

The training loop, the gradient-flow study and the benchmark all call `setup(cfg)`, so they train
exactly the same model on exactly the same batches.
"""
from __future__ import annotations

import logging
import os
import random

import numpy as np
import torch
from omegaconf import OmegaConf

from rnn_experiments.data import build_dataset
from rnn_experiments.errors import ConfigError
from rnn_experiments.models import build_model
from rnn_experiments.parts import build_part
from rnn_experiments.training.resources import available_cores, check_training_fits

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    """`device=auto|cpu|cuda` -> a torch.device; ConfigError if CUDA is asked for and absent."""
    if name not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"device={name!r} is invalid: expected auto, cpu or cuda")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device='cuda' is invalid: no CUDA device is available (use auto or cpu)")
    return torch.device(name)


def use_deterministic_algorithms(on: bool, device: torch.device) -> None:
    """train.deterministic: torch.use_deterministic_algorithms(on), set for every run (jobs of a
    sweep share a process). On: an op without a deterministic implementation raises an error
    naming it; on a GPU, cuBLAS gets the workspace setting it needs (CUBLAS_WORKSPACE_CONFIG)."""
    if on and device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    # the call imports torch._inductor (~900 modules, a second): made only to change the state
    if torch.are_deterministic_algorithms_enabled() != on or torch.is_deterministic_algorithms_warn_only_enabled():
        torch.use_deterministic_algorithms(on)
    if on:
        log.info("deterministic algorithms on (torch.use_deterministic_algorithms)")


def capped_threads(threads: int) -> int:
    """`threads`, but at most the cores this process may use: more threads than cores only make
    every parallel call wait for the threads that are not scheduled."""
    cores = available_cores()
    if threads > cores:
        log.warning("train.threads=%d is more than the %d cores this process may use: using %d",
                    threads, cores, cores)
    return min(threads, cores)


def setup(cfg):
    """-> (device, data, model, optimizer) for a validated config; seeds everything first."""
    if cfg.train.threads > 0:
        torch.set_num_threads(capped_threads(cfg.train.threads))
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    check_training_fits(cfg, device.type)   # on the node the job got (checked up front where possible)
    use_deterministic_algorithms(bool(cfg.train.get("deterministic", False)), device)
    data = build_dataset(cfg, device)
    model = build_model(cfg.model, data.vocab_size, data.num_classes,
                        getattr(data, "pad_token", None)).to(device)
    optimizer = build_optimizer(cfg.optimizer, model.parameters(), cfg.train.lr, device)
    return device, data, model, optimizer


def build_optimizer(node, params, lr: float, device: torch.device) -> torch.optim.Optimizer:
    """The `optimizer` node's optimizer (conf/optimizer/*.yaml, default Adam) over `params` at
    `lr` (train.lr). `fused: null`, for torch's optimizers that have it: fused on the CPU (one
    kernel for all parameters instead of a few per tensor: the same update up to rounding, 2.5x
    faster for a small model's 15 tensors), the default on a GPU, which CUDA graphs capture
    (training/step.py)."""
    if node.get("fused", False) is None:
        node = OmegaConf.merge(node, {"fused": device.type == "cpu"})
    return build_part(node, "optimizer", params=params, lr=lr)


def build_metrics(cfg) -> dict:
    """{NAME: metric} of the `metrics` nodes: each class built with its settings, called on the
    held-out set at every evaluation as metric(log_probs, y) -> a number (column eval_NAME)."""
    return {name: build_part(node, f"metrics.{name}") for name, node in (cfg.get("metrics") or {}).items()}


def build_scheduler(node, optimizer):
    """The `scheduler` node's learning-rate schedule over `optimizer` (conf/scheduler/*.yaml),
    stepped once per training step; None for an empty node (a constant lr, the default)."""
    return build_part(node, "scheduler", optimizer=optimizer) if node else None
