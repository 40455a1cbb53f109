"""Baum-Sweet and random-combination tasks: labels, encodings, the course's sampling, seeding."""
from __future__ import annotations

import pytest
import torch

from rnn_experiments.config import validate
from rnn_experiments.errors import ConfigError
from rnn_experiments.data import build_dataset
from rnn_experiments.data.baum_sweet import KEEP_LABEL_0, PAD, baum_sweet_label, encode


def reference_label(n: int) -> int:
    """The course's check: split the binary string at the ones, every zero block must be even."""
    return int(all(len(block) % 2 == 0 for block in bin(n)[2:].split("1")))


def decode(tokens: torch.Tensor) -> int:
    digits = "".join(str(int(t)) for t in tokens if t != PAD)
    return int(digits, 2)


@pytest.mark.parametrize("n, label", [(124, 1), (3234, 0), (1, 1), (2, 0), (4, 1), (9, 1), (10, 0),
                                      (16, 1), (0b1001001, 1), (0b10001, 0), (0b1100, 1)])
def test_baum_sweet_hand_checked_labels(n, label):
    # 124 = 1111100 (one block of two zeros); 3234 = 110010100010 (blocks 00, 0, 000, 0)
    assert baum_sweet_label(torch.tensor([n]), 16).item() == label


def test_baum_sweet_labels_match_the_string_rule_on_every_integer_below_2_to_the_16():
    n = torch.arange(1, 2 ** 16)
    expected = torch.tensor([reference_label(k) for k in range(1, 2 ** 16)])
    assert torch.equal(baum_sweet_label(n, 16), expected)


def test_baum_sweet_encoding_is_left_padded_binary():
    assert encode(torch.tensor([124]), 4).tolist() == [[PAD] * 9 + [1, 1, 1, 1, 1, 0, 0]]
    assert encode(torch.tensor([3234]), 4).tolist() == [[PAD] * 4 + [1, 1, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0]]


def _dataset(make_cfg, *overrides, seed=0, eval_size=64):
    cfg = make_cfg(*overrides, f"seed={seed}", f"train.eval_size={eval_size}")
    validate(cfg)
    return build_dataset(cfg, torch.device("cpu"))


@pytest.mark.parametrize("L", [4, 6])
def test_baum_sweet_batches_follow_the_courses_sampling(make_cfg, L):
    data = _dataset(make_cfg, "dataset=baum_sweet", f"dataset.seq_length={L}")
    x, y = data.sample(4000)
    assert x.shape == (4000, 4 * L) and data.vocab_size == 3 and data.num_classes == 2
    ints = [decode(row) for row in x]
    assert min(ints) >= 10 and max(ints) <= 10 ** L
    assert y.tolist() == [reference_label(n) for n in ints]
    # rejection step: label-1 share = p1 / (p1 + (1 - p1) q), p1 the share among 10..10^L
    if L == 4:
        p1 = sum(reference_label(n) for n in range(10, 10 ** 4 + 1)) / (10 ** 4 - 9)
        share = p1 / (p1 + (1 - p1) * KEEP_LABEL_0)
        assert abs(y.float().mean().item() - share) < 0.03   # about 4 standard errors
    else:
        assert 0.3 < y.float().mean().item() < 0.7            # without the step it would be ~1%


def test_random_combinations_are_permutations_missing_the_label(make_cfg):
    L = 10
    data = _dataset(make_cfg, "dataset=random_comb", f"dataset.seq_length={L}")
    assert data.num_classes == L and data.vocab_size == L
    x, y = data.sample(500)
    assert x.shape == (500, L - 1) and y.shape == (500,)
    full = torch.cat([x, y[:, None]], 1)
    assert torch.equal(full.sort(1).values, torch.arange(L).expand(500, L))
    counts = torch.bincount(y, minlength=L)                  # each label ~50 times
    assert counts.min() > 20


@pytest.mark.parametrize("name", ["baum_sweet", "random_comb"])
def test_same_seed_same_batches_and_resume(make_cfg, name):
    a = _dataset(make_cfg, f"dataset={name}", seed=3)
    b = _dataset(make_cfg, f"dataset={name}", seed=3)
    other = _dataset(make_cfg, f"dataset={name}", seed=4)
    xa, ya = a.sample(32)
    xb, yb = b.sample(32)
    assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(xa, other.sample(32)[0])
    assert torch.equal(a.eval_x, other.eval_x)               # the held-out set is shared by seeds
    state = a.state_dict()
    nxt = a.sample(32)
    b.load_state_dict(state)
    assert torch.equal(b.sample(32)[0], nxt[0])


def test_random_comb_classes_follow_seq_length_in_sweeps(make_cfg):
    from rnn_experiments.training.setup import setup
    cfg = make_cfg("dataset=random_comb", "dataset.seq_length=15")
    validate(cfg)
    _, data, model, _ = setup(cfg)
    assert data.num_classes == data.vocab_size == 15
    assert model(data.eval_x[:4]).shape == (4, 15)


@pytest.mark.parametrize("overrides, key", [
    (["dataset=random_comb", "dataset.seq_length=1"], "dataset.seq_length=1 .*>= 2 for dataset=random_comb"),
    (["dataset=baum_sweet", "dataset.seq_length=16"], "dataset.seq_length=16 .*from 1 to 15"),
    (["dataset=baum_sweet", "model=generator"], "model.name='generator' .*a classifier for dataset=baum_sweet"),
])
def test_bad_task_settings_name_the_key(make_cfg, overrides, key):
    with pytest.raises(ConfigError, match=key):
        validate(make_cfg(*overrides))
