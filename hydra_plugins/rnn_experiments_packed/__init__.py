"""rnn-experiments' packed launcher for Hydra (`hydra/launcher=packed`, conf/hydra/launcher/
packed.yaml): a sweep's jobs that differ only in `seed` trained together in one process
(launcher.py; the work is rnn_experiments/sweeps/pack.py)."""
