"""rnn-experiments' SLURM launcher for Hydra (conf/hydra/launcher/slurm.yaml): Hydra instantiates
launchers only from the hydra_plugins package, so the class lives in this one (launcher.py: how it
waits for its jobs, and packs of seeds as one SLURM task each, handed over to
rnn_experiments/sweeps/pack.py; config.py: slurm.yaml's schema); the checks before submission are
rnn_experiments/sweeps/slurm.py."""
