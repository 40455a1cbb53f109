"""The data. `DATASETS` maps a config's `dataset.name` to a class; `build_dataset` constructs one.

A dataset object offers `sample(batch_size) -> (x, y)` (fresh training batch from its own seeded
generator), `eval_x, eval_y` (a fixed held-out set), `vocab_size`, `num_classes`, and
`state_dict()/load_state_dict()` for its generator state (exact resume).
"""
from __future__ import annotations

from rnn_experiments.data.palindrome import PalindromeDataset

DATASETS = {
    "palindrome": PalindromeDataset,
}


def build_dataset(cfg, device):
    return DATASETS[cfg.dataset.name](cfg.dataset, seed=cfg.seed, device=device,
                                      eval_size=cfg.train.eval_size)
