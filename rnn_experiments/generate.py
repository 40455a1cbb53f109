"""`python -m rnn_experiments.generate`: the command's spelling users know; the command is
rnn_experiments/cli/rnn_generate.py."""
from rnn_experiments.cli.rnn_generate import main

if __name__ == "__main__":
    raise SystemExit(main())
