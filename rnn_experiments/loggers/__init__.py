"""Trackers that mirror metrics.csv (`logger=tensorboard`, `logger=mlflow`, `logger=wandb`; several:
`logger=[mlflow,tensorboard]`): built from the config by the entry point and handed to the
training loop as metrics sinks (rnn_experiments/run/metrics.py says what a sink is). metrics.csv
stays the record; the loop imports no tracker. docs/tracking.md says what each shows where.

`cfg.logger` maps a name to a node with `_target_` (conf/logger/*.yaml), instantiated by Hydra,
so a user's own tracker is one YAML file in their config folder (README, "Your own configs"). A
tracker class with a `run_config` attribute gets the job's config there (its params); one with
`sweep_ended(sweep_dir, analysis_dir)` is told when a sweep's analysis is written
(`sweep_ended` below, called by rnn_experiments/sweeps/analyze.py).
"""
from __future__ import annotations

import logging
from pathlib import Path

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import OmegaConf

from rnn_experiments.errors import ConfigError

log = logging.getLogger(__name__)


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
        sink = _build(name, node)
        if hasattr(sink, "run_config"):
            sink.run_config = cfg
        sinks.append(sink)
    return sinks


def _build(name: str, node):
    try:
        return instantiate(node)
    except InstantiationException as e:
        if isinstance(e.__cause__, ConfigError):
            raise e.__cause__ from None
        first = str(e).strip().splitlines()[0]
        raise ConfigError(f"logger.{name}: {first}") from None


def sweep_ended(cfg, sweep_dir, analysis_dir) -> None:
    """Tell the sweep's trackers that have `sweep_ended` where its analysis is (None: it failed);
    a tracker that fails says so in one line (the sweep's result is on disk either way)."""
    for name, node in (cfg.get("logger") or {}).items():
        if node is None or not hasattr(node, "get") or "_target_" not in node:
            continue
        try:
            tracker = _build(name, node)
            if hasattr(tracker, "run_config"):   # the sweep's config, less Hydra's node (its job values are unset)
                tracker.run_config = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
            hook = getattr(tracker, "sweep_ended", None)
            if hook is not None:
                hook(Path(sweep_dir), Path(analysis_dir) if analysis_dir is not None else None)
        except Exception as e:   # never the sweep's failure: its runs and analysis are on disk
            log.warning("logger.%s: the sweep's analysis was not sent (%s: %s)", name, type(e).__name__,
                        " ".join(str(e).split())[:300])
