"""Character-level text: any UTF-8 .txt file (`dataset=text dataset.path=...`) or the Grimm book.

    vocab   = sorted(set(text))                      characters ↔ ids 0..V-1
    data    = [id(c) for c in text]                  one encoded tensor (N,)
    window  = data[o : o + T + 1]  at random o       T = dataset.seq_length
    x, y    = window[:-1], window[1:]                target = input shifted by one

With `dataset.gutenberg=true` (the Grimm preset) the Project Gutenberg header and licence are cut
off first. A whole batch of windows is gathered with one index tensor (B, T+1). The last 10% of the text
is held out: the fixed eval windows come from it (drawn with `dataset.eval_seed`), training
windows from the rest. A text whose tail cannot hold one window (fewer than 10 x (seq_length + 1)
characters) is refused: a run is never evaluated on its training text.

The vocabulary travels in `state_dict()`, hence in every checkpoint, so sampling later needs no
text file; so does the text's sha256, so that a run is never resumed on another text. Bad input
(missing, empty, undecodable or too-short file) raises `TextDataError`, one line naming the path.
"""
from __future__ import annotations

import hashlib
import math
from typing import Optional
from pathlib import Path

import torch

from rnn_experiments.errors import ConfigError

HELD_OUT = 0.1  # share of the text (its end) that only the eval windows see
MAX_VOCAB = 256  # what memory estimates assume before the text is read (a book has ~90 characters)
DOWNLOAD_HINT = "python -m rnn_experiments.download grimm"


class TextDataError(ConfigError):
    """The text file cannot serve as a dataset; the message is one line naming the path."""


def resolve_path(path: str) -> Path:
    """A relative `dataset.path` is relative to the directory the command was started from."""
    from hydra.utils import to_absolute_path  # Hydra's runtime cwd, or os.getcwd() outside Hydra
    return Path(to_absolute_path(str(path)))


def read_text(path: str | Path, min_chars: int = 1) -> str:
    """The file's text (a leading BOM removed), or TextDataError naming the path and the problem."""
    path = Path(path)
    hint = f" (for the Grimm book run `{DOWNLOAD_HINT}` or set dataset.path=FILE)"
    if not path.exists():
        raise TextDataError(f"{path}: no such file{hint}")
    if not path.is_file():
        raise TextDataError(f"{path}: not a file (dataset.path must name a UTF-8 .txt file)")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise TextDataError(f"{path}: not UTF-8 text (undecodable byte {raw[e.start]:#04x} "
                            f"at offset {e.start})") from None
    if not text:
        raise TextDataError(f"{path}: the file is empty")
    if len(text) < min_chars:
        raise TextDataError(f"{path}: {len(text)} characters is too short, need at least "
                            f"{min_chars} (dataset.seq_length + 1)")
    return text


def strip_gutenberg(text: str, path) -> str:
    """The book between Project Gutenberg's `*** START OF ...` and `*** END OF ...` lines."""
    start, end = text.find("*** START OF"), text.find("*** END OF")
    if start < 0 or end < start:
        raise TextDataError(f"{path}: no '*** START OF' ... '*** END OF' Project Gutenberg lines "
                            "(set dataset.gutenberg=false for a plain text)")
    return text[text.index("\n", start) + 1:end].strip() + "\n"


class Vocab:
    """Sorted distinct characters; `encode` / `decode` map between text and ids."""

    def __init__(self, chars: str):
        self.chars = "".join(chars)
        self.index = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> "Vocab":
        return cls("".join(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars)

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocab) and self.chars == other.chars

    def encode(self, text: str) -> torch.Tensor:
        """(len(text),) long tensor; ValueError listing the characters outside the vocabulary."""
        unknown = sorted(set(text) - self.index.keys())
        if unknown:
            raise ValueError(f"{text!r} has characters not in the vocabulary: "
                             f"{''.join(unknown)!r} (the model knows {len(self)} characters)")
        return torch.tensor([self.index[c] for c in text], dtype=torch.long)

    def decode(self, ids) -> str:
        return "".join(self.chars[i] for i in torch.as_tensor(ids).tolist())


def windows(data: torch.Tensor, offsets: torch.Tensor, T: int) -> tuple[torch.Tensor, torch.Tensor]:
    """data (N,), offsets (B,) -> x, y (B, T): y is x shifted by one character."""
    idx = offsets.unsqueeze(1) + torch.arange(T + 1, device=offsets.device)   # (B, T+1)
    w = data[idx]                                                             # (B, T+1)
    return w[:, :-1], w[:, 1:]


class TextDataset:
    """Random windows of a text file, whole batches at once, from a seeded generator."""

    model_kind = "generator"         # what rnn_experiments.config.validate checks
    seq_length_range = (1, None)
    required = ("path",)             # dataset.path=FILE
    pad_token = None
    per_character = True             # held-out loss is per character: also report bits per character

    def __init__(self, path: Optional[str] = None, seq_length: int = 30, eval_seed: int = 1234,
                 gutenberg: bool = False, *, seed: int, device: torch.device, eval_size: int):
        self.T = seq_length
        self.path = resolve_path(path)
        self.device = device
        text = read_text(self.path, min_chars=self.T + 1)
        if gutenberg:  # without the licence, the held-out tail is the end of the book
            text = strip_gutenberg(text, self.path)
            if len(text) < self.T + 1:
                raise TextDataError(f"{self.path}: the book between the Project Gutenberg lines has "
                                    f"{len(text)} characters, too short: need at least {self.T + 1} "
                                    "(dataset.seq_length + 1)")
        self.sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()   # resuming checks it
        self.vocab = Vocab.from_text(text)
        self.vocab_size = self.num_classes = len(self.vocab)
        data = self.vocab.encode(text)                                          # (N,)
        n_eval = int(len(data) * HELD_OUT)
        if n_eval < self.T + 1:   # never evaluated on its training text: too short is refused
            raise TextDataError(f"{self.path}: {len(data)} characters, too short for a held-out tail: its last "
                                f"{HELD_OUT:.0%} must hold a window of dataset.seq_length + 1 = {self.T + 1} "
                                f"characters: expected at least {math.ceil((self.T + 1) / HELD_OUT)} characters "
                                "(or a smaller dataset.seq_length)")
        train_data, eval_data = data[:-n_eval], data[-n_eval:]
        self.data = train_data.to(device)
        self.generator = torch.Generator().manual_seed(seed)
        eval_gen = torch.Generator().manual_seed(eval_seed)
        offsets = torch.randint(0, len(eval_data) - self.T, (eval_size,), generator=eval_gen)
        self.eval_x, self.eval_y = (t.to(device) for t in windows(eval_data, offsets, self.T))

    @classmethod
    def sizes(cls, seq_length: int) -> tuple[int, int, int]:
        """(T, at most 256, at most 256): the vocabulary is known once the text is read."""
        return seq_length, MAX_VOCAB, MAX_VOCAB

    def sample(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """x, y: (B, T) character ids, y[:, t] = x[:, t+1] (y's last = the window's last char)."""
        offsets = torch.randint(0, len(self.data) - self.T, (batch_size,), generator=self.generator)
        return windows(self.data, offsets.to(self.device), self.T)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "vocab": self.vocab.chars,
                "path": str(self.path), "sha256": self.sha256}

    def load_state_dict(self, state: dict) -> None:
        if state.get("vocab", self.vocab.chars) != self.vocab.chars:
            raise TextDataError(f"{self.path}: its vocabulary differs from the checkpoint's "
                                f"(trained on {state.get('path')}); resume with the same text")
        if state.get("sha256", self.sha256) != self.sha256:   # checkpoints before the hash: not checked
            raise TextDataError(f"{self.path}: the text differs from the one the checkpoint was trained "
                                f"on ({state.get('path')}, same characters, sha256 {state['sha256'][:12]}... "
                                f"vs {self.sha256[:12]}...); resume with the same text, or use another "
                                "run folder or train.resume=false")
        self.generator.set_state(state["generator"])
