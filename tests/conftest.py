"""Shared fixtures and constants: compose the REAL config tree under conf/, then shrink it for
fast tests. Test modules import from here as `from conftest import ...`.

Tests that start a subprocess are marked `slow`: `python -m pytest -q -m "not slow"` skips them.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from rnn_experiments.config import compose, conf_dir

ROOT = Path(__file__).resolve().parent.parent   # the project's root (subprocess tests run commands from here)
CONF_DIR = str(conf_dir())        # the configs the commands load: ROOT/conf in a checkout

# Grimms' Fairy Tales (../shared/data/ beside the project, or a worktree's ../../shared/data/,
# or $RNN_EXPERIMENTS_BOOK); tests that need it skip when it is absent.
BOOK = next((p for p in [Path(os.environ.get("RNN_EXPERIMENTS_BOOK", "/nonexistent")),
                         ROOT / "data/grimms_fairy_tales.txt",
                         ROOT.parent / "shared/data/grimms_fairy_tales.txt",
                         ROOT.parent.parent / "shared/data/grimms_fairy_tales.txt"] if p.is_file()), None)

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

REPETITIVE = "the cat sat on the mat. " * 40  # the next character is a function of a few before


def compose_config(overrides=(), tiny=True, return_hydra_config=False):
    """The composed config of `python -m rnn_experiments.train <overrides>` (shrunk unless tiny=False)."""
    return compose((TINY if tiny else []) + list(overrides), return_hydra_config=return_hydra_config)


def text_overrides(path, *extra):
    """A tiny character model on `path` (added to the TINY overrides)."""
    return ["model=generator", "dataset=text", f"dataset.path={path}", "dataset.seq_length=12",
            "model.num_layers=1", "model.hidden_size=32", "model.embedding_dim=8",
            "train.lr=1e-2", "train.max_norm=5", "train.threads=1", *extra]


@pytest.fixture
def make_cfg():
    """make_cfg("model=peep_lstm", "dataset.seq_length=4") -> a tiny, fully composed config."""
    return lambda *overrides, tiny=True: compose_config(overrides, tiny=tiny)


@pytest.fixture
def tiny_text(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text(REPETITIVE, encoding="utf-8")
    return path


@pytest.fixture
def unwritable_dir(tmp_path):
    """A folder in which nothing can be created: a read-only folder for a normal user; as root,
    who may write anywhere, /sys (read-only to everyone in a container); skipped where none is."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o500)
        yield folder
        folder.chmod(0o700)
        return
    for folder in (Path("/sys/fs"), Path("/sys")):
        try:
            os.rmdir(tempfile.mkdtemp(dir=folder))
        except OSError:
            yield folder
            return
    pytest.skip("no unwritable folder here (root, and /sys is writable)")
