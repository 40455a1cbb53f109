"""`python -m rnn_experiments.measure_gradients`: the command's spelling users know; the command is
rnn_experiments/cli/rnn_measure_gradients.py."""
from rnn_experiments.cli.rnn_measure_gradients import main

if __name__ == "__main__":
    raise SystemExit(main())
