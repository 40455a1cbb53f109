"""The plugin class Hydra instantiates for conf/hydra/sweeper/optuna.yaml; the work is done by
rnn_experiments.sweeps.search.sweeper.Search (imported when the sweep starts: Hydra imports this module
whenever it scans its plugins, and it must stay cheap)."""
from typing import Any, List

from hydra.plugins.sweeper import Sweeper


class OptunaSweeper(Sweeper):
    def __init__(self, **settings: Any) -> None:
        from rnn_experiments.sweeps.search.sweeper import Search   # lazy: Hydra imports this module at every plugin scan; optuna loads when the search starts
        self.search = Search(**settings)

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.search.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> Any:
        return self.search.sweep(arguments)
