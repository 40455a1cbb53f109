"""`python -m rnn_experiments.bench`: the command's spelling users know; the command is
rnn_experiments/cli/rnn_bench.py."""
from rnn_experiments.cli.rnn_bench import main

if __name__ == "__main__":
    raise SystemExit(main())
