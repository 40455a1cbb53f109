"""The optional extras of pyproject.toml ([tensorboard], [optuna]): when a command line asks for
one that is not installed, the command stops with one line naming what to install, before Hydra
composes anything (Hydra's own message would only say that `hydra/sweeper/optuna` is not found).
"""
from __future__ import annotations

import importlib.util
import re

from rnn_experiments.config import conf_dir
from rnn_experiments.errors import ConfigError

OPTUNA_SWEEPER = "hydra_plugins.hydra_optuna_sweeper"
TENSORBOARD = "tensorboard"   # the package; torch.utils.tensorboard exists without it


def missing(what: str, package: str, extra: str) -> str:
    return (f"{what} needs {package}, which is not installed: "
            f"pip install \"rnn-experiments[{extra}]\" (or pip install {package})")


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _uses_optuna(preset: str) -> bool:
    path = conf_dir() / "hparams_search" / f"{preset}.yaml"
    return path.is_file() and re.search(r"override /hydra/sweeper:\s*optuna", path.read_text()) is not None


def check_command_line(args: list[str]) -> None:
    """ConfigError if an override selects the Optuna sweeper (hydra/sweeper=optuna, or one of our
    hparams_search presets) and hydra-optuna-sweeper is not installed, or `logger=tensorboard`
    and tensorboard is not (a sweep would otherwise start every job to have each one fail)."""
    for arg in args:
        key, _, value = arg.lstrip("+").partition("=")
        wants = (key == "hydra/sweeper" and value == "optuna") or (key == "hparams_search" and _uses_optuna(value))
        if wants and not installed(OPTUNA_SWEEPER):
            raise ConfigError(missing(arg, "hydra-optuna-sweeper", "optuna"))
        if key == "logger" and "tensorboard" in value and not installed(TENSORBOARD):
            raise ConfigError(missing(arg, "tensorboard", "tensorboard"))
