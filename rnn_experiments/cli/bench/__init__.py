"""The sections of rnn-bench (rnn_experiments/cli/rnn_bench.py): timing.py, steps.py, pipeline.py, machine.py."""
