"""`python -m rnn_experiments.download`: the command's spelling users know; the command is
rnn_experiments/cli/rnn_download.py."""
from rnn_experiments.cli.rnn_download import main

if __name__ == "__main__":
    raise SystemExit(main())
