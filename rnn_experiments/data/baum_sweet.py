"""Baum–Sweet: is there no block of consecutive zeros of odd length in n's binary representation?

Same distribution as the course's generator for length L:
  1. draw an integer n uniformly from 10..10^L (both ends included, as Python's randint);
  2. label b(n) = 1 iff the binary representation of n (no leading zeros) has no block of
     consecutive zeros of odd length (124 = 1111100 -> 1; 3234 = 110010100010 -> 0);
  3. keep n if b(n) = 1, otherwise keep it only with probability 0.016724, else go back to 1.
     Label-1 integers are rare (about 1% for L = 6), so this raises their share towards a half.
  4. input: n's binary digits, most significant first, left-padded with PAD to 4L tokens
     (10^L < 16^L, so 4L digits always suffice); label b(n).

Tokens: 0 and 1 are digits, 2 is padding (the palindrome task's convention). Candidates are drawn
and labelled as tensors, a block at a time; the accepted ones are kept in draw order, which gives
the same distribution as the course's one-at-a-time rejection loop.
"""
from __future__ import annotations

import torch

from rnn_experiments.data.base import SeededBatches

PAD = 2
LOW = 10                # the course draws from randint(10, 10**L)
KEEP_LABEL_0 = 0.016724  # probability of keeping a label-0 draw (the course's constant)
MAX_L = 15              # 10^15 < 2^50: integers and their 4L digits fit int64 comfortably


def baum_sweet_label(n: torch.Tensor, width: int) -> torch.Tensor:
    """(N,) positive integers below 2^width -> (N,) long: 1 iff no block of zeros is odd.

    A two-flag automaton read from the least significant digit up, one vector step per digit:
    `parity` of the zero block being read, `odd` once an odd block was closed by a 1. n's leading
    1 closes its last block; the zeros above it are not digits of n (`inside` is False there).
    """
    parity = torch.zeros(n.shape, dtype=torch.bool)                               # (N,)
    odd = torch.zeros_like(parity)                                                # (N,)
    rest = n.clone()                                                              # (N,)
    for _ in range(width):
        bit, inside = (rest & 1).bool(), rest > 0                                 # (N,), (N,)
        odd |= bit & parity
        parity ^= inside & ~bit
        parity &= ~bit
        rest >>= 1
    return (~(odd | parity)).long()


def sample_integers(L: int, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(B,) accepted integers and (B,) their labels, with the course's rejection step."""
    kept_n, kept_y, have = [], [], 0
    while have < batch_size:
        N = max(1024, 40 * (batch_size - have))                  # ~3% are kept for L = 6
        n = torch.randint(LOW, 10 ** L + 1, (N,), generator=generator)            # (N,)
        y = baum_sweet_label(n, 4 * L)                                             # (N,)
        keep = (y == 1) | (torch.rand(N, generator=generator) < KEEP_LABEL_0)      # (N,)
        kept_n.append(n[keep])
        kept_y.append(y[keep])
        have += int(keep.sum())
    return torch.cat(kept_n)[:batch_size], torch.cat(kept_y)[:batch_size]


def encode(n: torch.Tensor, L: int) -> torch.Tensor:
    """(B,) integers -> (B, 4L) tokens: binary digits, most significant first, left-padded with PAD."""
    prefix = n.unsqueeze(1) >> torch.arange(4 * L - 1, -1, -1)                   # (B, 4L)
    return torch.where(prefix > 0, prefix & 1, torch.full_like(prefix, PAD))     # (B, 4L)


class BaumSweetDataset(SeededBatches):
    """Fresh training batches from a seeded generator, plus a fixed held-out set."""

    vocab_size = 3  # digits 0, 1 and PAD
    pad_token = PAD
    seq_length_range = (1, MAX_L)  # integers up to 10^L must fit int64

    def __init__(self, seq_length: int = 10, eval_seed: int = 1234, *, seed: int, device: torch.device,
                 eval_size: int):
        self.L = seq_length
        self.num_classes = 2
        super().__init__(eval_seed, seed, device, eval_size)

    @classmethod
    def sizes(cls, seq_length: int) -> tuple[int, int, int]:
        return 4 * seq_length, cls.vocab_size, 2

    def draw(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, 4L) tokens, y: (B,) Baum-Sweet labels."""
        n, y = sample_integers(self.L, batch_size, generator)
        return encode(n, self.L), y
