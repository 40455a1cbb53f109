"""Shared fixtures: compose the REAL config tree under conf/, then shrink it for fast tests."""
from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

import rnn_experiments.config  # noqa: F401  (registers the structured configs)

ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = str(ROOT / "conf")

# Small enough to train in a second or two on 2 CPU cores.
TINY = [
    "model.hidden_size=16",
    "model.embedding_dim=8",
    "train.steps=20",
    "train.batch_size=16",
    "train.log_every=5",
    "train.eval_every=10",
    "train.eval_size=64",
    "train.checkpoint_every=0",
    "device=cpu",
]


def compose_config(overrides=(), tiny=True, return_hydra_config=False):
    """The composed config of `python -m rnn_experiments.train <overrides>` (shrunk unless tiny=False)."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=(TINY if tiny else []) + list(overrides),
                       return_hydra_config=return_hydra_config)


@pytest.fixture
def make_cfg():
    """make_cfg("model=peep_lstm", "dataset.seq_length=4") -> a tiny, fully composed config."""
    return lambda *overrides, tiny=True: compose_config(overrides, tiny=tiny)
