"""`python -m rnn_experiments.analyze`: the command's spelling users know; the command is
rnn_experiments/cli/rnn_analyze.py."""
from rnn_experiments.cli.rnn_analyze import main

if __name__ == "__main__":
    raise SystemExit(main())
