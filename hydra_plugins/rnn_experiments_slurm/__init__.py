"""rnn-experiments' SLURM launcher for Hydra (conf/hydra/launcher/slurm.yaml): Hydra instantiates
launchers only from the hydra_plugins package, so the class lives in this one; what it does
differently is in rnn_experiments/runner/slurm.py."""
