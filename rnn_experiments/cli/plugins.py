"""The project's Hydra plugins made known to Hydra by the entry point, before Hydra starts."""
from __future__ import annotations

from hydra.core.plugins import Plugins


def register_sweeper() -> None:
    """Make the sweeper class known to Hydra where its scan of the `hydra_plugins` namespace does
    not see it: an editable install (pip install -e) puts the namespace behind an import hook
    that the scan (pkgutil) cannot list. An installed wheel needs no help; registering again is
    harmless. Called by the entry point before Hydra starts."""
    try:
        from hydra_plugins.rnn_experiments_sweeper.optuna_sweeper import OptunaSweeper   # lazy: optional extra [optuna]
    except ImportError:   # not installed with this package: Hydra says what is missing
        return
    Plugins.instance().register(OptunaSweeper)


def register_launchers() -> None:
    """The same for the packed launcher (hydra/launcher=packed) and the SLURM launcher
    (hydra/launcher=slurm, whose config's schema its module stores: before the command's config
    is composed), which need no extra."""
    from hydra_plugins.rnn_experiments_packed.launcher import PackedLauncher   # lazy: as the sweeper's
    from hydra_plugins.rnn_experiments_slurm.launcher import SlurmLauncher     # lazy: as the sweeper's
    Plugins.instance().register(PackedLauncher)
    Plugins.instance().register(SlurmLauncher)
