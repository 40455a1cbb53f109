"""The plugin class Hydra instantiates for conf/hydra/launcher/packed.yaml; the work is done by
rnn_experiments.sweeps.pack (imported when the sweep launches: Hydra imports this module whenever
it scans its plugins, and it must stay cheap)."""
from __future__ import annotations

from typing import Any, Sequence

from hydra.plugins.launcher import Launcher


class PackedLauncher(Launcher):
    def __init__(self, pack_size: int = 10, strategy: str = "auto", n_jobs: int = 1) -> None:
        self.pack_size, self.strategy, self.n_jobs = pack_size, strategy, n_jobs
        self.config = self.hydra_context = self.task_function = None

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.config, self.hydra_context, self.task_function = config, hydra_context, task_function

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Any:
        from rnn_experiments.sweeps.pack import launch   # lazy: Hydra imports this module at every plugin scan
        return launch(self, job_overrides, initial_job_idx)
