"""Parts: a class plus a YAML node with its `_target_`, as in lightning-hydra-template.

    model:                                          # conf/model/lstm.yaml
      _target_: rnn_experiments.models.lstm.LSTM    # the class (importable: installed or on PYTHONPATH)
      name: lstm                                    # what tables, plots and `compare` call it
      hidden_size: 256                              # the class's own arguments
      embedding_dim: 64

What a part accepts is its constructor's signature, read by `settings`: every key of the node but
`_target_` and `name` must be one of its parameters and hold a value of the parameter's annotated
type (int, float, str, bool, Optional, Literal, list), and a parameter without a default must be
given. The arguments the framework passes itself (`GIVEN`) cannot be set in the node. A class
whose constructor takes **kwargs declares what it accepts as a dataclass `Settings` (its fields,
types and defaults), or is refused. `check_part` checks a node this way before anything is
written, with a one-line ConfigError naming the key and the class; `build_part` builds it. What each kind of part must provide beyond its settings (a model's
`kind`, a dataset's `sample`, ...) is the contract in docs/extending.md.
"""
from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import types
import typing
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rnn_experiments.errors import ConfigError, one_line

# what the framework passes to each kind of part (a part takes those of them it needs)
GIVEN = {
    "model": ("vocab_size", "num_classes", "pad_token"),      # from the dataset
    "dataset": ("seed", "device", "eval_size"),               # seed, device, train.eval_size
    "optimizer": ("params", "lr"),                            # the model's parameters, train.lr
    "scheduler": ("optimizer",),                              # the optimizer it schedules
    "metrics": (),                                            # metrics.NAME: called on held-out predictions
    "stopping": (),                                           # a metrics sink that may end the run
}
# keys of a node that are not arguments of its class (`_partial_`: lightning-hydra-template's
# mark of a node completed later, here with GIVEN's arguments: accepted, changes nothing)
RESERVED = ("_target_", "name", "_partial_")

# Run folders written before parts had a `_target_` (format_version <= 3: `model.name: lstm`
# and every built-in's settings in one flat section) are read with these classes; the keys the
# class does not take are dropped (`upgrade`). Nothing else looks a part up by its name.
FORMER_TARGETS = {
    "model": {"lstm": "rnn_experiments.models.lstm.LSTM", "peep_lstm": "rnn_experiments.models.peep_lstm.PeepLSTM",
              "rnn": "rnn_experiments.models.rnn.RNN", "gru": "rnn_experiments.models.gru.GRU",
              "bilstm": "rnn_experiments.models.bilstm.BiLSTM",
              "generator": "rnn_experiments.models.generator.TextGenerator"},
    "dataset": {"palindrome": "rnn_experiments.data.palindrome.PalindromeDataset",
                "baum_sweet": "rnn_experiments.data.baum_sweet.BaumSweetDataset",
                "random_comb": "rnn_experiments.data.random_comb.RandomCombinationsDataset",
                "text": "rnn_experiments.data.text.TextDataset", "grimm": "rnn_experiments.data.text.TextDataset"},
}


@dataclasses.dataclass(frozen=True)
class Setting:
    name: str
    annotation: Any                   # typing.Any where the class does not say
    default: Any = inspect.Parameter.empty

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty


def target_of(node, key: str) -> type:
    """The class `node._target_` names; ConfigError (one line) if it is absent or cannot be imported."""
    from hydra._internal.utils import _locate

    path = node.get("_target_") if isinstance(node, (dict, DictConfig)) else None
    if not path:
        name = node.get("name") if isinstance(node, (dict, DictConfig)) else None
        former = FORMER_TARGETS.get(key, {}).get(name)
        hint = (f"for {key}.name={name}: _target_: {former}, or `defaults: [{name}]` at the top of your "
                f"{key} file to start from the packaged one" if former else
                f"e.g. {next(iter(FORMER_TARGETS.get(key, {'': 'torch.optim.Adam'}).values()))}")
        raise ConfigError(f"{key}._target_ is missing: expected the class that builds the {key} ({hint}; "
                          "docs/extending.md)")
    try:
        found = _locate(str(path))   # as hydra.utils.get_class, which also logs the error: one line here
    except Exception as e:   # ImportError, AttributeError: Hydra says which
        raise ConfigError(f"{key}._target_={path!r} is invalid: expected an importable class ({one_line(e)}; "
                          "is its package installed or its folder on PYTHONPATH?)") from None
    if not inspect.isclass(found):
        raise ConfigError(f"{key}._target_={path!r} is invalid: expected a class, found a "
                          f"{type(found).__name__} (a part is a class and its settings; docs/extending.md)")
    return found


def part_nodes(cfg):
    """(key, node) of every part a config holds: model, dataset, optimizer, the scheduler if set,
    and each `metrics.NAME`."""
    for key in GIVEN:
        node = cfg.get(key)
        if key == "metrics":
            yield from ((f"metrics.{name}", m) for name, m in (node or {}).items())
        elif node:
            yield key, node


NAMED = ("model", "dataset", "optimizer", "scheduler", "stopping")   # parts chosen from a config group


def name_by_choice(cfg, choices=None) -> None:
    """A part's `name` is, where its node does not give one, its config choice (`model=ln_lstm`:
    name ln_lstm), as Hydra recorded it: `choices`, else the config's `hydra.runtime.choices`, else
    the running job's (HydraConfig). In place; a node whose choice is unknown is left as it is
    (check_part then asks for a name)."""
    from omegaconf import open_dict

    if choices is None:
        hydra = cfg.get("hydra") if isinstance(cfg, DictConfig) else None
        choices = (hydra.get("runtime") or {}).get("choices") if hydra is not None else None
    if choices is None:
        try:
            from hydra.core.hydra_config import HydraConfig
            choices = HydraConfig.get().runtime.choices if HydraConfig.initialized() else None
        except Exception:
            choices = None
    for key in NAMED:
        node, choice = cfg.get(key), (choices or {}).get(key)
        if node and "_target_" in node and not node.get("name") and isinstance(choice, str):
            with open_dict(node):
                node.name = choice.rsplit("/", 1)[-1]


def kind(key: str) -> str:
    """The kind of part a node key names: `metrics.brier` -> `metrics` (a member of a collection,
    named by its key), `model` -> `model`."""
    return key.split(".")[0]


def settings(cls: type, key: str) -> dict[str, Setting]:
    """What `cls` accepts from a `key` node: its dataclass `Settings`, else its constructor's
    parameters less those in GIVEN.get(kind(key), ())."""
    schema = getattr(cls, "Settings", None)
    if dataclasses.is_dataclass(schema):
        hints = typing.get_type_hints(schema)
        out = {}
        for f in dataclasses.fields(schema):
            default = (f.default if f.default is not dataclasses.MISSING else
                       f.default_factory() if f.default_factory is not dataclasses.MISSING else inspect.Parameter.empty)
            out[f.name] = Setting(f.name, hints.get(f.name, Any), default)
        return out
    params = inspect.signature(cls).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        raise ConfigError(f"{key}._target_={qualname(cls)} is invalid: expected a class whose constructor "
                          "names its arguments (it takes **kwargs: declare them as a dataclass `Settings` "
                          "on the class)")
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:   # an annotation that cannot be evaluated: that parameter takes any value
        hints = {}
    return {p.name: Setting(p.name, hints.get(p.name, Any), p.default) for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in GIVEN.get(kind(key), ())}


def qualname(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def check_part(node, key: str) -> type:
    """The class of the `key` node, after checking the node against what it accepts (the module
    doc); ConfigError (one line) naming the first key that is wrong."""
    cls = target_of(node, key)
    name = node.get("name", key if "." in key else None)   # a collection's member: named by its key
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{key}.name={name!r} is invalid: expected the name tables and plots show "
                          f"for {qualname(cls)} (e.g. name: {cls.__name__.lower()})")
    accepted = settings(cls, key)
    for k in node:
        if k in RESERVED:
            continue
        if k in GIVEN.get(kind(key), ()):
            raise ConfigError(f"{key}.{k}={_plain(node[k])!r} is not a setting: expected it unset (the "
                              f"framework passes {k} to {qualname(cls)})")
        if k not in accepted:
            part = key if "." in key else f"{key}={name}"      # metrics.brier, model=lstm
            raise ConfigError(f"{key}.{k}={_plain(node[k])!r} is not a setting of {part} "
                              f"({qualname(cls)}): expected one of {', '.join(accepted) or 'none'}")
        value, expected = _plain(node[k]), accepted[k].annotation
        if not conforms(value, expected):
            raise ConfigError(f"{key}.{k}={value!r} is invalid: expected {describe(expected)} "
                              f"(an argument of {qualname(cls)})")
    for s in accepted.values():
        if s.required and s.name not in node:
            raise ConfigError(f"{key}.{s.name} is missing: expected a value for {qualname(cls)} "
                              f"(+{key}.{s.name}=...)")
    return cls


def build_part(node, key: str, **given):
    """The part `node` describes: its class called with the node's settings and those of `given`
    (GIVEN[key]) that it takes. (Called directly, not through hydra.utils.instantiate, so that an
    error of the user's input the class raises, a missing text file, stays the one-line error it is.)"""
    cls = target_of(node, key)
    takes = inspect.signature(cls).parameters
    kwargs = {k: v for k, v in given.items()
              if k in takes or any(p.kind is p.VAR_KEYWORD for p in takes.values())}
    return cls(**{k: _plain(v) for k, v in node.items() if k not in RESERVED}, **kwargs)


def check_conditions(where: str, values: dict, defaults: dict, read_if: dict, cfg) -> None:
    """A setting read only under a condition is refused where the condition fails and the
    setting is not at its default. `read_if`: {setting: (the condition in words, test(values,
    cfg) -> bool)}, declared by a part's class (or a config section's schema) as its `read_if`;
    `values`: the node's settings over `defaults`. ConfigError (one line) naming the setting."""
    merged = {**defaults, **values}
    for name, (words, test) in read_if.items():
        if name in values and values[name] != defaults.get(name) and not test(merged, cfg):
            raise ConfigError(f"{where}.{name}={values[name]!r} is not used unless {words}: expected its "
                              f"default ({defaults.get(name)!r})")


def same_results_of(cls, key: str) -> tuple[str, ...]:
    """The settings a part's class declares do not change what a run computes (its
    `same_results`, e.g. a setting of how often something is printed), as config keys
    (`model.NAME`); ConfigError (one line) for a declaration that is not a tuple of the class's
    own settings."""
    declared = getattr(cls, "same_results", ())
    accepted = settings(cls, key)
    if not isinstance(declared, (tuple, list)) or not all(isinstance(s, str) and s in accepted for s in declared):
        raise ConfigError(f"{qualname(cls)}.same_results={declared!r} is invalid: expected a tuple of "
                          f"its settings ({', '.join(accepted) or 'none'})")
    return tuple(f"{key}.{s}" for s in declared)


def same_results(cfg, train_keys=()) -> list[str]:
    """Every config key of `cfg` declared not to change what the run computes: `train_keys`
    (the schema's, TrainConfig.same_results) and each part's `same_results` (same_results_of).
    Two runs that differ only in these are one run: the sweep guard refuses the second, the
    analysis does not group by them (summary.json records the list)."""
    keys = [f"train.{k}" for k in train_keys]
    for key, node in part_nodes(cfg):
        keys += same_results_of(target_of(node, key), key)
    return keys


def check_part_conditions(node, key: str, cfg) -> None:
    """check_conditions for a part's node, with its class's `read_if` and defaults."""
    cls = target_of(node, key)
    read_if = getattr(cls, "read_if", None)
    if not read_if:
        return
    defaults = {s.name: s.default for s in settings(cls, key).values() if not s.required}
    values = {k: _plain(v) for k, v in node.items() if k not in RESERVED}
    check_conditions(key, values, defaults, read_if, cfg)


def upgrade(node, key: str):
    """A node of a run folder written before `_target_` (see FORMER_TARGETS) as today's: its class
    from its name, only the keys that class takes. Today's nodes are returned as they are."""
    plain = _plain(node)
    if not isinstance(plain, dict) or plain.get("_target_") or plain.get("name") not in FORMER_TARGETS[key]:
        return node
    target = FORMER_TARGETS[key][plain["name"]]
    from hydra.utils import get_class
    accepted = settings(get_class(target), key)
    kept = {k: v for k, v in plain.items() if k in accepted}
    return OmegaConf.create({"_target_": target, "name": plain["name"], **kept})


def _plain(value):
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def conforms(value, annotation) -> bool:
    """Whether `value` (a YAML value: None, bool, int, float, str, list, dict) is of `annotation`."""
    if annotation is Any or annotation is inspect.Parameter.empty:
        return True
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(conforms(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin in (list, tuple, typing.Sequence, collections.abc.Sequence) or annotation in (list, tuple):
        return isinstance(value, (list, tuple)) and (not args or all(conforms(v, args[0]) for v in value))
    if origin is dict or annotation is dict:
        return isinstance(value, dict)
    return True   # a type YAML cannot hold (a tensor, a class): the class checks it


def describe(annotation) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(map(repr, args))
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", type(None): "null"}
    if annotation in names:
        return names[annotation]
    if origin in (list, tuple, typing.Sequence) or annotation in (list, tuple):
        return "a list" + (f" of {describe(args[0]).removeprefix('a ').removeprefix('an ')}s" if args else "")
    return getattr(annotation, "__name__", str(annotation))


def signature_of(node, key: str) -> dict:
    """What the class of a node accepts, as recorded in checkpoints: {"target", "settings": {name:
    repr(default), or "required"}}. A resume compares it with the class as it is then."""
    cls = target_of(node, key)
    return {"target": qualname(cls),
            "settings": {s.name: "required" if s.required else repr(s.default) for s in settings(cls, key).values()}}
