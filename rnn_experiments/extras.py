"""The optional extras of pyproject.toml ([tensorboard], [mlflow], [wandb], [optuna]): when a command line asks for
one that is not installed, the command stops with one line naming what to install, before Hydra
composes anything. The Optuna sweeper is the project's own (rnn_experiments/sweeps/search/); it needs
Optuna 4 or later (an older one is refused the same way), and Hydra's own Optuna plugin
(hydra-optuna-sweeper, which an earlier version of the [optuna] extra installed) must be gone: its
configs have the same names.
"""
from __future__ import annotations

import importlib.metadata
import importlib
import importlib.util
import re

from rnn_experiments.config import conf_dir
from rnn_experiments.errors import ConfigError

OLD_OPTUNA_SWEEPER = "hydra_plugins.hydra_optuna_sweeper"   # Hydra's plugin (optuna < 3), the name's former owner
OPTUNA = "optuna"
OPTUNA_MIN = 4                # ask-and-tell with the journal file storage (optuna.storages.journal)
TENSORBOARD = "tensorboard"   # the package; torch.utils.tensorboard exists without it
# logger=NAME -> (the module it needs, its package and extra)
LOGGER_EXTRAS = {"tensorboard": (TENSORBOARD, "tensorboard", "tensorboard"),
                 "mlflow": ("mlflow", "mlflow", "mlflow"),
                 "wandb": ("wandb", "wandb", "wandb")}


def missing(what: str, package: str, extra: str) -> str:
    return (f"{what} needs {package}, which is not installed: "
            f"pip install \"rnn-experiments[{extra}]\" (or pip install {package})")


def require(module: str, what: str, package: str, extra: str):
    """The module `module`, imported; ConfigError (one line, `missing`'s install line) where
    `package` is not installed — the trackers' check when they are built."""
    try:
        return importlib.import_module(module)
    except ImportError:   # torch.utils.tensorboard too raises ImportError without the package
        raise ConfigError(missing(what, package, extra)) from None


def installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def optuna_problem() -> str | None:
    """Why the installed Optuna cannot run a search (None: it can)."""
    if not installed(OPTUNA):
        return "not installed"
    try:
        major = int(importlib.metadata.version(OPTUNA).split(".")[0])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None
    if major >= OPTUNA_MIN:
        return None
    return f"{importlib.metadata.version(OPTUNA)} is installed, not >= {OPTUNA_MIN}"


def _uses_optuna(preset: str) -> bool:
    path = conf_dir() / "hparams_search" / f"{preset}.yaml"
    return path.is_file() and re.search(r"override /hydra/sweeper:\s*optuna", path.read_text()) is not None


def check_command_line(args: list[str]) -> None:
    """ConfigError if an override selects the Optuna sweeper (hydra/sweeper=optuna, or one of our
    hparams_search presets) and Optuna >= 4 is not installed, or a tracker (`logger=tensorboard`,
    `logger=mlflow`, `logger=wandb`, also in a list or a sweep of them) whose package is not (a
    sweep would otherwise start every job to have each one fail)."""
    for arg in args:
        key, _, value = arg.lstrip("+").partition("=")
        wants = (key == "hydra/sweeper" and value == "optuna") or (key == "hparams_search" and _uses_optuna(value))
        if wants and installed(OLD_OPTUNA_SWEEPER):
            raise ConfigError(f"{arg}: hydra-optuna-sweeper is installed, and its configs take the names of "
                              "this project's Optuna sweeper (hydra/sweeper=optuna): pip uninstall "
                              "hydra-optuna-sweeper (rnn-experiments has its own, on optuna >= 4)")
        problem = optuna_problem() if wants else None
        if problem == "not installed":
            raise ConfigError(missing(arg, "optuna", "optuna"))
        if problem:
            raise ConfigError(f"{arg} needs optuna >= {OPTUNA_MIN} ({problem}): "
                              f"pip install -U \"rnn-experiments[optuna]\"")
        for name in re.findall(r"[\w-]+", value) if key == "logger" else ():
            module, package, extra = LOGGER_EXTRAS.get(name, (None, None, None))
            if module is not None and not installed(module):
                raise ConfigError(missing(arg, package, extra))
