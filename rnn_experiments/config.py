"""The configs: where they are, their structured schemas, and the functions that check their
values (`validate` for training and the gradient study, `validate_generate` for generation).

The dataclasses below are registered in Hydra's ConfigStore as the group `schema`: `train`
(Config), `gradients` (Config plus a `gradients:` section) and `generate` (GenerateConfig). Each
primary config puts its schema first in its defaults list (conf/config.yaml: `schema: train`;
conf/gradients.yaml overrides it with `schema: gradients`; conf/generate.yaml: `schema:
generate`), so every YAML file and every command-line override is merged onto typed fields:
`train.lr=abc` or an unknown key fails while composing. The `model` and `dataset` nodes are parts
(rnn_experiments/parts.py): what they accept is their class's signature. Ranges and combinations
(lr > 0, a model the dataset accepts, ...) are checked by the validate functions before any work;
each dataset class declares what it accepts (`model_kind`, `seq_length_range`, `required`) and
each model its `kind`, so no rule is written twice.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Dict, List

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from rnn_experiments.errors import ConfigError, check
from rnn_experiments.parts import check_conditions, check_part, check_part_conditions, part_nodes, same_results


def conf_dir() -> Path:
    """The folder of the project's YAML configs, the one place every command finds it.

    Installed from a wheel (`pip install .`, an index), they are the package data
    `rnn_experiments/conf/` (pyproject.toml maps conf/ there); in a source checkout, editable
    install or not, they are the checkout's top-level `conf/`, so edits there take effect at once.
    Users add their own configs beside these with `--config-dir DIR` (README, "Your own configs").
    """
    package = Path(__file__).resolve().parent
    for candidate in (package / "conf", package.parent / "conf"):  # wheel, source checkout
        if (candidate / "config.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"no configs (config.yaml) in {package / 'conf'} or {package.parent / 'conf'}: "
                            "a broken install of rnn-experiments; reinstall it")


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
    threads: int = 0             # torch intra-op threads (0: chosen on this machine, training/impl.py)
    cuda_graphs: bool = True     # on a GPU, replay each training step from a CUDA graph
    deterministic: bool = False  # torch.use_deterministic_algorithms (recorded in summary.json)
    impl: str = "auto"           # the CPU step: auto (measured per machine) | fused | autograd

    # settings read only under a condition (parts.check_conditions): set otherwise, refused
    read_if: ClassVar[dict] = {"cuda_graphs": ("the run is on a GPU (device=cuda, or auto with CUDA)",
                                               lambda t, cfg: _on_gpu(cfg.device)),
                               "impl": ("the run is on the CPU (device=cpu, or auto without CUDA)",
                                        lambda t, cfg: not _on_gpu(cfg.device))}
    # settings that do not change what a run computes: the analysis never groups runs by them
    same_results: ClassVar[tuple] = ("checkpoint_every", "resume")


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

    read_if: ClassVar[dict] = {k: ("sample.temperatures is not empty", lambda s, cfg: len(s["temperatures"]) > 0)
                               for k in ("temperature_length", "top_k", "seed")}


@dataclass
class Config:
    # parts: a node with `_target_` (the class), `name` and the class's own arguments, checked
    # against its signature by rnn_experiments.parts (conf/model/*.yaml, conf/dataset/*.yaml)
    model: Dict[str, Any] = field(default_factory=dict)
    dataset: Dict[str, Any] = field(default_factory=dict)
    optimizer: Dict[str, Any] = field(default_factory=dict)   # conf/optimizer/*.yaml, at train.lr
    scheduler: Dict[str, Any] = field(default_factory=dict)   # conf/scheduler/*.yaml; {}: a constant lr
    # held-out metrics of your own, name -> node with _target_: column eval_NAME of metrics.csv
    metrics: Dict[str, Any] = field(default_factory=dict)
    stopping: Dict[str, Any] = field(default_factory=dict)    # conf/stopping/*.yaml; {}: train.steps
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    seed: int = 0
    device: str = "auto"         # auto | cpu | cuda
    experiment_name: str = "default"  # set by experiment presets; recorded in summary.json
    # trackers mirroring metrics.csv, name -> node with _target_ (conf/logger/, rnn_experiments/loggers/)
    logger: Dict[str, Any] = field(default_factory=dict)


@dataclass
class GradientsConfig:
    """The gradient-flow study's section (conf/gradients.yaml, rnn_experiments/gradients/)."""
    steps: List[int] = field(default_factory=lambda: [0, 100, 500])  # 0: at initialisation
    batch_size: int = 256        # examples of the held-out set to measure on


@dataclass
class GradientsStudyConfig(Config):
    gradients: GradientsConfig = field(default_factory=GradientsConfig)


@dataclass
class GenerateConfig:
    """`rnn-generate` (conf/generate.yaml): continue prompts with a trained text model."""
    checkpoint: str = MISSING    # a run folder (its checkpoint_best.pt, else checkpoint.pt) or a file
    prompt: Any = "t"            # a string, or a list of strings continued together as one batch
    length: int = 200            # characters generated after each prompt
    strategy: str = "sample"     # sample | greedy
    temperature: float = 1.0     # p ∝ exp(logits / T)
    top_k: int = 0               # sample among the k most likely characters (0: all)
    num_samples: int = 1         # continuations per prompt
    seed: int = 0
    device: str = "cpu"          # cpu | cuda | auto


def _on_gpu(device: str) -> bool:
    """Whether device=cpu|cuda|auto runs on a GPU here."""
    if device in ("cpu", "cuda"):
        return device == "cuda"
    import torch   # lazy: only for device=auto
    return torch.cuda.is_available()


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(group="schema", name="train", node=Config, package="_global_")
    cs.store(group="schema", name="gradients", node=GradientsStudyConfig, package="_global_")
    cs.store(group="schema", name="generate", node=GenerateConfig, package="_global_")


register_configs()


def compose(overrides=(), config_name: str = "config", return_hydra_config: bool = False):
    """The config a command would compose from conf/ with these overrides (Hydra's compose API);
    return_hydra_config: with its `hydra` node (launcher, sweeper, run folders)."""
    from hydra import compose as hydra_compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            return hydra_compose(config_name=config_name, overrides=list(overrides),
                                 return_hydra_config=return_hydra_config)
    finally:
        GlobalHydra.instance().clear()


SEED_LIMIT = 2**32   # numpy's seeds are 32-bit
SEEDS = "an integer from 0 to 2**32 - 1"


def parts_of(cfg) -> tuple[type, type]:
    """(model class, dataset class) of a config, each node checked against its class's signature."""
    return check_part(cfg.model, "model"), check_part(cfg.dataset, "dataset")


def kind_of(cls: type) -> str:
    return getattr(cls, "kind", "classifier")


def validate(cfg) -> None:
    """Check every value that types alone cannot check, and that every setting given is one this
    run uses (`check_settings`). Raises ConfigError (one line)."""
    m, d, t = cfg.model, cfg.dataset, cfg.train
    check_settings(cfg)
    check(cfg.device in ("auto", "cpu", "cuda"), "device", cfg.device, "auto, cpu or cuda")
    check(0 <= cfg.seed < SEED_LIMIT, "seed", cfg.seed, SEEDS)
    name = cfg.experiment_name
    check(0 < len(name) <= 100 and "/" not in name and "\\" not in name and name not in (".", ".."),
          "experiment_name", name, "a name for the run's folder: 1 to 100 characters, no / (it is part of "
          "the folder's name, outputs/DATE/TIME_NAME)")
    if "eval_seed" in d:
        check(0 <= d.eval_seed < SEED_LIMIT, "dataset.eval_seed", d.eval_seed, SEEDS)
    for key in ("hidden_size", "embedding_dim", "num_layers"):   # the sizes every built-in has
        if key in m:
            check(m[key] >= 1, f"model.{key}", m[key], "an integer >= 1")
    if "dropout" in m:
        check(0.0 <= m.dropout < 1.0, "model.dropout", m.dropout, "0 <= dropout < 1")
    for key in ("steps", "batch_size", "log_every", "eval_every", "eval_size"):
        check(t[key] >= 1, f"train.{key}", t[key], "an integer >= 1")
    check(0 < t.lr < math.inf, "train.lr", t.lr, "a finite number > 0")
    check(0 < t.max_norm < math.inf, "train.max_norm", t.max_norm, "a finite number > 0")
    check(t.checkpoint_every >= 0, "train.checkpoint_every", t.checkpoint_every, "an integer >= 0")
    check(t.threads >= 0, "train.threads", t.threads, "an integer >= 0")
    _validate_impl(cfg)
    _validate_dataset(cfg)
    _validate_switches(cfg)
    if cfg.get("sample") is not None and cfg.sample.enabled:
        _validate_sample(cfg)
    if cfg.get("gradients") is not None:
        _validate_gradients(cfg)


# ---- a setting is used or refused -------------------------------------------------------------

def unknown_keys(node, schema, prefix: str = "") -> list[str]:
    """The keys of `node` that the dataclass `schema` does not have (a typo, or a key added with
    Hydra's `++`, which struct mode lets through), recursively; free-form dicts (logger) and
    Hydra's own node are not looked into."""
    hints = typing.get_type_hints(schema)
    out = []
    for key in node.keys():
        if not prefix and key == "hydra":
            continue
        if key not in hints:
            out.append(f"{prefix}{key}")
        elif dataclasses.is_dataclass(hints[key]) and isinstance(node.get(key), DictConfig):
            out += unknown_keys(node[key], hints[key], f"{prefix}{key}.")
    return out


def check_known(cfg, schema) -> None:
    """ConfigError naming the first key `schema` does not have, and the keys of its section."""
    for key in unknown_keys(cfg, schema):
        section, _, name = key.rpartition(".")
        node = schema
        for part in section.split(".") if section else []:
            node = typing.get_type_hints(node)[part]
        known = ", ".join(typing.get_type_hints(node))
        where = f"of {section}" if section else "at the top level"
        raise ConfigError(f"{key} is not a setting (a typo?): expected one of the settings {where}: {known}")


_DEFAULTS: dict = {}


def _defaults(schema):
    """The schema's defaults as a config (built once per schema)."""
    if schema not in _DEFAULTS:
        _DEFAULTS[schema] = OmegaConf.structured(schema)
    return _DEFAULTS[schema]


def _plain(value):
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def check_settings(cfg) -> None:
    """A setting is used or refused. ConfigError (one line) for a key that is not a setting
    (`check_known`; in `model` and `dataset`: not an argument of the part's class), and for a
    setting given a value other than its schema default that this run does not read:
    `sample.*` without `sample.enabled`, and in
    the gradient study the training settings it does not use."""
    study = cfg.get("gradients") is not None
    schema = GradientsStudyConfig if study else Config
    check_known(cfg, schema)

    def refuse_if_set(key: str, why: str) -> None:
        value, default = _plain(OmegaConf.select(cfg, key)), _plain(OmegaConf.select(_defaults(schema), key))
        if value != default:
            raise ConfigError(f"{key}={value!r} is not used {why}: expected its default ({default!r})")

    parts_of(cfg)   # model.* and dataset.*: the keys their classes take (rnn_experiments/parts.py)
    check_part(cfg.optimizer, "optimizer")
    if cfg.get("scheduler"):
        check_part(cfg.scheduler, "scheduler")
    for name, node in (cfg.get("metrics") or {}).items():
        check_metric(name, node)
    if cfg.get("stopping"):
        check_stopping(cfg)
    for key, node in part_nodes(cfg):       # conditions of use a part declares (`read_if`)
        check_part_conditions(node, key, cfg)
    same_results(cfg, TrainConfig.same_results)   # each part's declaration: its own settings
    for section, schema_ in (("train", TrainConfig), ("sample", SampleConfig)):
        if cfg.get(section) is not None:
            check_conditions(section, _plain(cfg[section]), _plain(_defaults(schema_)), schema_.read_if, cfg)
    if not cfg.sample.enabled or study:
        for key in _defaults(schema).sample:
            if key != "enabled":
                refuse_if_set(f"sample.{key}", "while sample.enabled=false")
    if study:
        for key in ("steps", "log_every", "eval_every", "checkpoint_every", "resume"):
            refuse_if_set(f"train.{key}", "by rnn-measure-gradients (it trains to the last of gradients.steps)")
        refuse_if_set("sample.enabled", "by rnn-measure-gradients")
        if cfg.get("logger"):
            raise ConfigError(f"logger={list(cfg.logger)} is not used by rnn-measure-gradients: expected none")


BUILT_IN_COLUMNS = ("eval_accuracy", "eval_loss", "eval_bpc")


def check_metric(name: str, node) -> type:
    """A `metrics.NAME` node: a class by _target_ (its settings checked as every part's) whose
    instances are called on the held-out predictions, declaring `higher_is_better`; NAME makes the
    column eval_NAME, so it must be an identifier that is not a built-in column's."""
    check(name.isidentifier() and f"eval_{name}" not in BUILT_IN_COLUMNS, f"metrics.{name}", name,
          f"a name for the column eval_NAME: letters, digits, _ and not one of {', '.join(BUILT_IN_COLUMNS)}")
    cls = check_part(node, f"metrics.{name}")
    better = getattr(cls, "higher_is_better", None)
    if not isinstance(better, bool):
        raise ConfigError(f"metrics.{name}._target_={node['_target_']} is invalid: expected a class with "
                          f"`higher_is_better = True` or `False` (has {better!r}; the analysis ranks runs by it; "
                          "docs/extending.md)")
    if not any("__call__" in vars(c) for c in cls.__mro__[:-1]):
        raise ConfigError(f"metrics.{name}._target_={node['_target_']} is invalid: expected a class whose "
                          "instances are called as metric(log_probs, y) -> a number (docs/extending.md)")
    return cls


def check_stopping(cfg) -> None:
    """The `stopping` node: a part that is a metrics sink (`write(row)`); where it has `monitor`
    and `mode` (EarlyStopping), a column this run evaluates, watched in the direction it improves."""
    cls = check_part(cfg.stopping, "stopping")
    if not callable(getattr(cls, "write", None)):
        raise ConfigError(f"stopping._target_={cfg.stopping._target_} is invalid: expected a metrics sink, "
                          "a class with write(row) (rnn_experiments/run/metrics.py)")
    monitor, mode = cfg.stopping.get("monitor"), cfg.stopping.get("mode")
    if monitor is None:
        return
    higher = {"eval_accuracy": True, "eval_loss": False}
    if getattr(parts_of(cfg)[1], "per_character", False):
        higher["eval_bpc"] = False
    for name, node in (cfg.get("metrics") or {}).items():
        higher[f"eval_{name}"] = getattr(check_part(node, f"metrics.{name}"), "higher_is_better", None)
    check(monitor in higher, "stopping.monitor", monitor, f"a column this run evaluates: one of {', '.join(higher)}")
    if mode is not None and higher[monitor] is not None:
        want = "max" if higher[monitor] else "min"
        check(mode == want, "stopping.mode", mode, f"{want} for {monitor} ({'higher' if higher[monitor] else 'lower'} "
              "is better)")


def _validate_dataset(cfg) -> None:
    """What the dataset class declares: the kind of model it feeds, its lengths, required keys."""
    m, d = cfg.model, cfg.dataset
    model, dataset = parts_of(cfg)
    kind = getattr(dataset, "model_kind", "classifier")
    check(kind_of(model) == kind, "model.name", m.name,
          f"a {kind} for dataset={d.name} ({m._target_} is a {kind_of(model)})")
    low, high = getattr(dataset, "seq_length_range", (1, None))
    if "seq_length" in d:
        allowed = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
        check(low <= d.seq_length and (high is None or d.seq_length <= high), "dataset.seq_length",
              d.seq_length, f"{allowed} for dataset={d.name}")
    for key in getattr(dataset, "required", ()):
        check(d.get(key) not in (None, ""), f"dataset.{key}", d.get(key),
              f"a value for dataset={d.name} (dataset.{key}=...)")


def _validate_switches(cfg) -> None:
    """The report author's choices apply to classifiers; padding resets need a task that pads."""
    m, d = cfg.model, cfg.dataset
    if m.get("reset_at_padding"):
        check(getattr(parts_of(cfg)[1], "pad_token", None) is not None, "model.reset_at_padding", True,
              f"false for dataset={d.name} (its inputs have no padding)")


def _validate_impl(cfg) -> None:
    """train.impl: auto, or a path the model has (fused: a class with `fused = True`, the LSTMs)."""
    impl = cfg.train.get("impl", "auto")
    check(impl in ("auto", "fused", "autograd"), "train.impl", impl,
          "auto (chosen by measurement on this machine), fused or autograd")
    if impl == "fused":
        model = parts_of(cfg)[0]
        check(isinstance(getattr(model, "fused", None), bool), "train.impl", impl,
              f"auto or autograd for model={cfg.model.name} ({model.__name__} has no fused path)")


def _validate_sample(cfg) -> None:
    s = cfg.sample
    model = parts_of(cfg)[0]
    check(kind_of(model) == "generator", "model.name", cfg.model.name,
          f"a generator when sample.enabled=true ({cfg.model._target_} is a {kind_of(model)})")
    check(len(s.at_fractions) > 0 or len(s.temperatures) > 0, "sample.at_fractions",
          list(s.at_fractions), "a non-empty list (or set sample.temperatures)")
    check(all(0 < f <= 1 for f in s.at_fractions), "sample.at_fractions", list(s.at_fractions),
          "fractions of training in (0, 1]")
    check(len(s.starts) > 0 and all(len(x) > 0 for x in s.starts), "sample.starts",
          list(s.starts), "a non-empty list of non-empty strings")
    check(all(T > 0 and math.isfinite(T) for T in s.temperatures), "sample.temperatures",
          list(s.temperatures), "numbers > 0 (greedy samples come from sample.at_fractions)")
    for key in ("length", "temperature_length"):
        check(1 <= s[key] <= MAX_GENERATE_LENGTH, f"sample.{key}", s[key],
              f"an integer from 1 to {MAX_GENERATE_LENGTH:,}")
    check(s.top_k >= 0, "sample.top_k", s.top_k, "an integer >= 0 (0: all characters)")
    check(0 <= s.seed < SEED_LIMIT, "sample.seed", s.seed, SEEDS)


MAX_GENERATE_LENGTH = 1_000_000   # characters per continuation
MAX_SAMPLES = 10_000                # continuations per prompt


def _validate_gradients(cfg) -> None:
    g, name = cfg.gradients, cfg.model.name
    model = parts_of(cfg)[0]
    check(kind_of(model) == "classifier" and getattr(model, "one_directional", False), "model.name", name,
          "a one-directional classifier (it reads h_T), e.g. rnn, gru, lstm, peep_lstm")
    check(len(g.steps) > 0 and min(g.steps) >= 0, "gradients.steps", list(g.steps),
          "a non-empty list of training steps >= 0")
    check(1 <= g.batch_size <= cfg.train.eval_size, "gradients.batch_size", g.batch_size,
          f"an integer from 1 to train.eval_size ({cfg.train.eval_size})")
