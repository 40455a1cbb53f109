"""Trackers that mirror metrics.csv (`logger=tensorboard`): built from the config by the entry
point and handed to the training loop as metrics sinks (rnn_experiments/run/metrics.py says
what a sink is). metrics.csv stays the record; the loop imports no tracker.

`cfg.logger` maps a name to a node with `_target_` (conf/logger/*.yaml), instantiated by Hydra,
so a user's own tracker is one YAML file in their config folder (README, "Your own configs").
"""
from __future__ import annotations

from hydra.errors import InstantiationException
from hydra.utils import instantiate

from rnn_experiments.errors import ConfigError


def loggers_from_config(cfg) -> list:
    """The metrics sinks `cfg.logger` asks for (none without a `logger=...`). ConfigError (one
    line) for a node without `_target_`, a target that cannot be built or a missing extra."""
    sinks = []
    for name, node in (cfg.get("logger") or {}).items():
        if node is None:
            continue
        if not hasattr(node, "get") or "_target_" not in node:
            raise ConfigError(f"logger.{name} is invalid: expected a node with _target_ "
                              "(a class whose objects have write(row); see conf/logger/)")
        try:
            sinks.append(instantiate(node))
        except InstantiationException as e:
            if isinstance(e.__cause__, ConfigError):
                raise e.__cause__ from None
            first = str(e).strip().splitlines()[0]
            raise ConfigError(f"logger.{name}: {first}") from None
    return sinks
