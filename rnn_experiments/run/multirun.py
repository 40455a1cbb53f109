"""A sweep folder's multirun.yaml, as the analysis and the sweeps read it: the job list it
describes (Hydra's basic sweeper: sweeper params + command-line overrides -> cartesian product)
and whether its launcher submits to SLURM."""
from __future__ import annotations

from typing import List, Optional


def is_slurm_launcher(launcher_cfg) -> bool:
    """Whether this `hydra.launcher` config submits to SLURM (ours or the plugin's launcher)."""
    return str((launcher_cfg or {}).get("_target_", "")).endswith(".SlurmLauncher")


def jobs(sweeper_cfg, overrides: List[str], config_loader=None) -> Optional[List[List[str]]]:
    """The override list of every job, in job-number order, for Hydra's basic sweeper (None for
    another sweeper, e.g. Optuna, whose jobs are chosen as the sweep goes). `config_loader`
    expands glob() sweeps over config groups. Hydra's errors (a sweep type the basic sweeper
    does not support, a bad override) pass through."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    if not str((sweeper_cfg or {}).get("_target_", "")).endswith("BasicSweeper"):
        return None
    params = [f"{k}={v}" for k, v in (sweeper_cfg.get("params") or {}).items()]
    parsed = OverridesParser.create(config_loader=config_loader).parse_overrides(params + list(overrides))
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
