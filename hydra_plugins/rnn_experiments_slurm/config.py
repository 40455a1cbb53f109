"""conf/hydra/launcher/slurm.yaml's schema (its `defaults: [rnn_experiments_slurm]`): upstream's
SLURM keys (hydra_plugins/hydra_submitit_launcher/config.py) and the packs' (launcher.py), in
Hydra's ConfigStore as upstream stores its own. Without `from __future__ import annotations`:
Hydra's plugin scan runs this module before it is in sys.modules, where a dataclass cannot read
string annotations."""
from dataclasses import dataclass

from hydra.core.config_store import ConfigStore
from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf


@dataclass
class SlurmConf(SlurmQueueConf):
    """Upstream's keys, and the packs' (checked by rnn_experiments/sweeps/checks.py:
    check_pack_settings, before anything is submitted)."""

    _target_: str = "hydra_plugins.rnn_experiments_slurm.launcher.SlurmLauncher"
    pack_size: int = 1        # jobs that differ only in `seed`, up to this many a SLURM task (1: a task a job)
    strategy: str = "auto"    # how a pack takes its members' steps: auto | loop | stacked (training/pack.py)


ConfigStore.instance().store(group="hydra/launcher", name="rnn_experiments_slurm", node=SlurmConf,
                             provider="rnn_experiments_slurm")
