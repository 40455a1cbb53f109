"""Random combinations: which number of 0..L-1 is missing?

As in the course: draw a uniformly random permutation of 0..L-1; the input is its first L-1
numbers, the label is the last one (L classes). Permutations are the argsort of uniform noise,
a whole batch in one call.
"""
from __future__ import annotations

import torch

from rnn_experiments.data.base import SeededBatches


def random_permutations(L: int, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """(B, L) long tensor, each row a uniformly random permutation of 0..L-1."""
    return torch.rand(batch_size, L, generator=generator).argsort(dim=1)          # (B, L)


class RandomCombinationsDataset(SeededBatches):
    """Fresh training batches from a seeded generator, plus a fixed held-out set."""

    seq_length_range = (2, None)  # a permutation of one number leaves nothing to predict

    def __init__(self, seq_length: int = 10, eval_seed: int = 1234, *, seed: int, device: torch.device,
                 eval_size: int):
        self.L = seq_length
        self.vocab_size = self.num_classes = self.L  # tokens are the numbers 0..L-1
        super().__init__(eval_seed, seed, device, eval_size)

    @classmethod
    def sizes(cls, seq_length: int) -> tuple[int, int, int]:
        return seq_length - 1, seq_length, seq_length

    @classmethod
    def chance_accuracy(cls, seq_length: int = 10) -> float:
        """Every number is the missing one with probability 1/L: chance is 1/L."""
        return 1.0 / seq_length

    def draw(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, L-1) numbers, y: (B,) the missing one."""
        perm = random_permutations(self.L, batch_size, generator)                 # (B, L)
        return perm[:, :-1], perm[:, -1]
