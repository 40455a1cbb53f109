import math

import pytest
import torch

from rnn_experiments.data.palindrome import PAD, binary_palindromes, padded_length
from rnn_experiments.parts import build_part


def unpad(row):
    digits = row[row != PAD]
    return digits.tolist()


@pytest.mark.parametrize("L", [1, 2, 3, 4, 5, 10, 20])
def test_every_sequence_is_a_left_padded_palindrome(L):
    seqs = binary_palindromes(L, 500, torch.Generator().manual_seed(L))
    assert seqs.shape == (500, padded_length(L))
    for row in seqs:
        digits = unpad(row)
        assert digits == digits[::-1]                       # palindrome, label included
        n_pad = len(row) - len(digits)
        assert (row[:n_pad] == PAD).all()                   # padding only on the left
        assert set(digits) <= {0, 1}
        # ceil(L/2) numbers of 1-4 binary digits, mirrored
        assert 2 * math.ceil(L / 2) <= len(digits) <= 8 * math.ceil(L / 2)


def test_course_lengths_for_even_L_and_true_maximum_for_odd_L():
    assert padded_length(10) - 1 == 41 and padded_length(20) - 1 == 81
    assert padded_length(3) == 16  # two 4-bit numbers mirror to 16 digits > 4L+2 = 14


def test_distribution_matches_the_generator():
    """Numbers drawn uniformly from 0..8: the first number is 0 w.p. 1/9 and 8 w.p. 1/9.

    Length of s (before mirroring) for L=2 is the binary length of one number in 0..8:
    1,1,2,2,3,3,3,3,4 -> E = 22/9. Labels: the last digit is the first digit of s; s is
    reversed w.p. 1/2; unreversed s starts with 1 unless the number is 0.
    """
    seqs = binary_palindromes(2, 20000, torch.Generator().manual_seed(0))
    lengths = (seqs != PAD).sum(1).float() / 2
    assert lengths.mean().item() == pytest.approx(22 / 9, abs=0.03)
    # P(label = 1): unreversed: 8/9; reversed: P(last bit of n is 1) = 4/9 -> mean 2/3
    assert (seqs[:, -1] == 1).float().mean().item() == pytest.approx(2 / 3, abs=0.015)


def test_same_seed_same_batch_and_different_seed_differs(make_cfg):
    cfg = make_cfg()
    a = build_part(cfg.dataset, "dataset", seed=3, device="cpu", eval_size=64)
    b = build_part(cfg.dataset, "dataset", seed=3, device="cpu", eval_size=64)
    c = build_part(cfg.dataset, "dataset", seed=4, device="cpu", eval_size=64)
    xa, ya = a.sample(32)
    xb, yb = b.sample(32)
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(xa, c.sample(32)[0])
    # the held-out set depends on eval_seed only, not on the run's seed
    assert torch.equal(a.eval_x, c.eval_x)
    assert xa.shape == (32, 4 * cfg.dataset.seq_length + 1)


def test_generator_state_round_trips(make_cfg):
    data = build_part(make_cfg().dataset, "dataset", seed=0, device="cpu", eval_size=8)
    data.sample(4)
    state = data.state_dict()
    x1, _ = data.sample(16)
    data.load_state_dict(state)
    x2, _ = data.sample(16)
    assert torch.equal(x1, x2)
