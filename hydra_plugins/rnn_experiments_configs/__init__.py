"""The configs of rnn-experiments' two Hydra plugins (hydra/sweeper=optuna, hydra/launcher=slurm)
for any Hydra app, not only the project's commands (searchpath.py)."""
