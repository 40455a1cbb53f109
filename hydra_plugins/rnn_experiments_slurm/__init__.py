"""rnn-experiments' SLURM launcher for Hydra (conf/hydra/launcher/slurm.yaml): Hydra instantiates
launchers only from the hydra_plugins package, so the class lives in this one (launcher.py: how it
waits for its jobs); the checks before submission are rnn_experiments/sweeps/slurm.py."""
