"""Binary palindromes: predict the last digit of a left-padded binary palindrome.

Same distribution as the course's generator for length L:
  1. draw n = ceil(L/2) integers uniformly from 0..8;
  2. write each in binary without leading zeros ("0" for 0) and concatenate: s (m ≤ 4n digits);
  3. reverse s with probability 1/2, append its mirror image: s + reversed(s) (2m digits);
  4. left-pad with the PAD token to P digits; input = the first P-1 digits, label = the last.

P = 4L+2 as in the course (41 input digits for L=10, 81 for L=20). For odd L the course's length
under-counts (L=3: two 4-bit numbers give a 16-digit palindrome > 14), so we pad to the true
maximum P = max(4L+2, 8·ceil(L/2)).

Tokens: 0 and 1 are digits, 2 is padding. Batches are built with tensor operations only.
"""
from __future__ import annotations

import math

import torch

from rnn_experiments.data.base import SeededBatches

PAD = 2
MAX_INT = 8  # integers are drawn from 0..MAX_INT
BITS = 4     # binary digits needed for MAX_INT


def padded_length(L: int) -> int:
    """P: the length of a padded palindrome (input length P-1 plus the label)."""
    return max(4 * L + 2, 8 * math.ceil(L / 2))


def binary_palindromes(L: int, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """(B, P) long tensor of left-padded binary palindromes."""
    n, P, B = math.ceil(L / 2), padded_length(L), batch_size
    ints = torch.randint(0, MAX_INT + 1, (B, n), generator=generator)             # (B, n)
    flip = torch.rand(B, generator=generator) < 0.5                               # (B,)
    shifts = torch.arange(BITS - 1, -1, -1)                                       # (4,) MSB first
    bits = (ints.unsqueeze(-1) >> shifts) & 1                                     # (B, n, 4)
    nbits = torch.where(ints > 0, torch.floor(torch.log2(ints.clamp(min=1).float())) + 1,
                        torch.ones_like(ints, dtype=torch.float)).long()          # (B, n)
    valid = torch.arange(BITS) >= (BITS - nbits.unsqueeze(-1))                    # (B, n, 4)
    bits, valid = bits.reshape(B, n * BITS), valid.reshape(B, n * BITS)           # (B, 4n)
    m = valid.sum(1, keepdim=True)                                                # (B, 1)
    pos = valid.cumsum(1) - 1                                                     # (B, 4n) index in s
    pos = torch.where(flip.unsqueeze(1), m - 1 - pos, pos)                        # reversed s
    out = torch.full((B, P), PAD, dtype=torch.long)
    rows = torch.arange(B).unsqueeze(1).expand_as(pos)[valid]
    k, d = pos[valid], bits[valid]
    out[rows, (P - 2 * m).expand_as(pos)[valid] + k] = d                          # first half
    out[rows, P - 1 - k] = d                                                      # mirror half
    return out


class PalindromeDataset(SeededBatches):
    """Fresh training batches from a seeded generator, plus a fixed held-out set."""

    vocab_size = 3  # digits 0, 1 and PAD
    pad_token = PAD

    def __init__(self, seq_length: int = 10, eval_seed: int = 1234, *, seed: int, device: torch.device,
                 eval_size: int):
        self.L = seq_length
        self.num_classes = 2
        super().__init__(eval_seed, seed, device, eval_size)

    @classmethod
    def sizes(cls, seq_length: int) -> tuple[int, int, int]:
        return padded_length(seq_length) - 1, cls.vocab_size, 2

    @classmethod
    def chance_accuracy(cls, seq_length: int = 10) -> float:
        """The accuracy of always predicting the more frequent label (2/3 for every L). The label
        is the first digit of s: the leading digit of the first integer (1 unless it is 0) when s
        is not reversed, the last digit of the last integer (its parity) when it is."""
        ints = range(MAX_INT + 1)
        ones = 0.5 * sum(i > 0 for i in ints) / len(ints) + 0.5 * sum(i % 2 for i in ints) / len(ints)
        return max(ones, 1.0 - ones)

    def draw(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, P-1) tokens, y: (B,) last digit."""
        seqs = binary_palindromes(self.L, batch_size, generator)                  # (B, P)
        return seqs[:, :-1], seqs[:, -1]
