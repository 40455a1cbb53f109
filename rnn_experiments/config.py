"""Structured-config schema and value checks.

The dataclasses below are registered in Hydra's ConfigStore as `base_config`; `conf/config.yaml`
puts that node first in its defaults list, so every YAML file and every command-line override is
merged onto typed fields: `train.lr=abc` or an unknown key fails while composing. Ranges and
names (lr > 0, model.name in the registry, ...) are checked by `validate(cfg)` before any work.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING


class ConfigError(ValueError):
    """A config value is out of its allowed range; the message is one line naming the key."""


@dataclass
class ModelConfig:
    name: str = MISSING          # registry name, see rnn_experiments.models.MODELS
    hidden_size: int = 256
    embedding_dim: int = 64
    num_layers: int = 1          # used by multi-layer models (the text generator)
    dropout: float = 0.0         # between stacked layers, where a model has them
    init: str = "kaiming_normal"  # kaiming_normal | xavier_uniform | uniform (PyTorch's default)


@dataclass
class DatasetConfig:
    name: str = MISSING          # registry name, see rnn_experiments.data.DATASETS
    seq_length: int = 10
    num_classes: int = 2
    eval_seed: int = 1234        # seed of the fixed held-out set (shared by all runs)
    path: Optional[str] = None   # text datasets: a UTF-8 .txt file
    gutenberg: bool = False      # text datasets: keep only the book between the *** START/END lines


@dataclass
class TrainConfig:
    steps: int = 3000
    batch_size: int = 256
    lr: float = 1.0e-4
    max_norm: float = 10.0       # gradient-norm clip
    log_every: int = 10          # a metrics.csv row every N steps (means over those N steps)
    eval_every: int = 100        # held-out accuracy every N steps
    eval_size: int = 2048        # size of the fixed held-out set
    checkpoint_every: int = 500  # atomic checkpoint every N steps (0: only at the end)
    resume: bool = True          # continue from checkpoint.pt if the run folder has one
    lr_decay_every: int = 0      # step decay: multiply lr by lr_decay every N steps (0: off)
    lr_decay: float = 1.0
    threads: int = 0             # torch intra-op threads (0: leave torch's default)


@dataclass
class SampleConfig:
    """Text samples written during training (rnn_experiments/generation/hooks.py)."""
    enabled: bool = False
    at_fractions: List[float] = field(default_factory=lambda: [1 / 3, 2 / 3, 1.0])  # greedy samples
    starts: List[str] = field(default_factory=lambda: ["t", "a", "u", "v", "g"])    # start strings
    length: int = 30             # characters generated per greedy sample
    # at the end: samples at these temperatures, p ∝ exp(logits / T) (the report's τ = 1/T)
    temperatures: List[float] = field(default_factory=list)
    temperature_length: int = 150
    top_k: int = 0               # 0: sample from all characters
    seed: int = 0                # seed of the temperature samples


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    seed: int = 0
    device: str = "auto"         # auto | cpu | cuda
    experiment_name: str = "default"  # set by experiment presets; recorded in summary.json


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=Config)


register_configs()


def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is invalid: expected {allowed}")


def validate(cfg) -> None:
    """Check every value that types alone cannot check. Raises ConfigError (one line)."""
    from rnn_experiments.data import DATASETS
    from rnn_experiments.models import MODELS

    m, d, t = cfg.model, cfg.dataset, cfg.train
    _check(m.name in MODELS, "model.name", m.name, f"one of {sorted(MODELS)}")
    _check(d.name in DATASETS, "dataset.name", d.name, f"one of {sorted(DATASETS)}")
    _check(cfg.device in ("auto", "cpu", "cuda"), "device", cfg.device, "auto, cpu or cuda")
    _check(cfg.seed >= 0, "seed", cfg.seed, "an integer >= 0")
    for key in ("hidden_size", "embedding_dim", "num_layers"):
        _check(m[key] >= 1, f"model.{key}", m[key], "an integer >= 1")
    _check(0.0 <= m.dropout < 1.0, "model.dropout", m.dropout, "0 <= dropout < 1")
    _check(m.init in ("kaiming_normal", "xavier_uniform", "uniform"), "model.init", m.init,
           "kaiming_normal, xavier_uniform or uniform")
    _check(d.seq_length >= 1, "dataset.seq_length", d.seq_length, "an integer >= 1")
    _check(d.num_classes >= 2, "dataset.num_classes", d.num_classes, "an integer >= 2")
    for key in ("steps", "batch_size", "log_every", "eval_every", "eval_size"):
        _check(t[key] >= 1, f"train.{key}", t[key], "an integer >= 1")
    _check(t.lr > 0, "train.lr", t.lr, "a number > 0")
    _check(t.max_norm > 0, "train.max_norm", t.max_norm, "a number > 0")
    _check(t.checkpoint_every >= 0, "train.checkpoint_every", t.checkpoint_every, "an integer >= 0")
    _check(t.lr_decay_every >= 0, "train.lr_decay_every", t.lr_decay_every, "an integer >= 0")
    _check(0 < t.lr_decay <= 1, "train.lr_decay", t.lr_decay, "0 < lr_decay <= 1")
    _check(t.threads >= 0, "train.threads", t.threads, "an integer >= 0")
    text_data = d.name in ("text", "grimm")
    _check((m.name == "generator") == text_data, "model.name", m.name,
           "generator for a text dataset" if text_data else
           f"a sequence classifier for dataset={d.name} (model=generator needs dataset=text or grimm)")
    DATASETS[d.name].validate(cfg)
