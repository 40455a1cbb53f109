"""`python -m rnn_experiments.train`: the command's spelling users know; the command is
rnn_experiments/cli/rnn_train.py."""
from rnn_experiments.cli.rnn_train import main

if __name__ == "__main__":
    raise SystemExit(main())
