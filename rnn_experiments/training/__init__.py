"""Training: build a run (setup.py), take a step (step.py), loop with logging and checkpoints
(loop.py), stop cleanly on signals (stop.py); metrics.csv, checkpoint.pt and summary.json
(metrics.py, checkpoint.py, summary.py)."""
