"""`python -m rnn_experiments.plot_gradients`: the command's spelling users know; the command is
rnn_experiments/cli/rnn_plot_gradients.py."""
from rnn_experiments.cli.rnn_plot_gradients import main

if __name__ == "__main__":
    raise SystemExit(main())
