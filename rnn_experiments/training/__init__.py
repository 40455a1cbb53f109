"""Training: build a run (setup.py), take a step (step.py), loop with logging, evaluation and
checkpoints (loop.py), stop cleanly on signals (signals.py), the memory a run needs
(resources.py). What a run writes (metrics.csv, checkpoint.pt, summary.json) is the run folder's
contract: rnn_experiments/run/."""
