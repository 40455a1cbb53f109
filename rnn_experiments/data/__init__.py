"""The data. Each task is a class that a config's `dataset` node names by `_target_`
(conf/dataset/*.yaml); `build_dataset` builds the one a config names.

A dataset object offers `sample(batch_size) -> (x, y)` (fresh training batch from its own seeded
generator), `eval_x, eval_y` (a fixed held-out set), `vocab_size`, `num_classes`, and
`state_dict()/load_state_dict()` for its generator state (exact resume): docs/extending.md.
"""
from __future__ import annotations

from rnn_experiments.data.baum_sweet import BaumSweetDataset
from rnn_experiments.data.palindrome import PalindromeDataset
from rnn_experiments.data.random_comb import RandomCombinationsDataset
from rnn_experiments.data.text import TextDataset
from rnn_experiments.parts import build_part


def build_dataset(cfg, device):
    """The `dataset` node's task, seeded by the run's seed, its held-out set train.eval_size long."""
    return build_part(cfg.dataset, "dataset", seed=cfg.seed, device=device, eval_size=cfg.train.eval_size)


__all__ = ["build_dataset", "BaumSweetDataset", "PalindromeDataset", "RandomCombinationsDataset", "TextDataset"]
