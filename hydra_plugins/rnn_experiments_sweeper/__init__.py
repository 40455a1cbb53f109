"""rnn-experiments' Optuna sweeper as a Hydra plugin (`hydra/sweeper=optuna`).

Hydra takes sweepers only from classes defined in the `hydra_plugins` namespace package, so the
class lives here and does nothing but hand over to rnn_experiments.sweeps.search.sweeper.Search; its
config is the project's conf/hydra/sweeper/optuna.yaml (samplers and pruners beside it).
"""
