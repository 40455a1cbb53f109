"""The training loop (`loop.train`), its metrics file, checkpoints and run summary."""
