"""Character-level language model: Embedding -> stacked nn.LSTM -> linear read-out at every step.

    e_t        = Embedding(x_t)                                  # (B, E)
    h_t^1..L   = LSTM_L(... LSTM_1(e_t, h_{t-1}^1, c_{t-1}^1))   # L layers, dropout between them
    p_t        = W h_t^L + b                                     # (B, V) logits
    log ŷ_t    = log_softmax(p_t)                                # next-character distribution

Trained with teacher forcing: the loss is the mean cross-entropy over all B·T positions (report
eq. 43), computed by the training loop from `forward`'s (B, T, V) log-probabilities.
`step` carries the state (h, c) from one character to the next, so generating N characters costs
N single-step calls, never a re-run of the prefix.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

State = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (L, B, H)


class TextGenerator(nn.Module):
    kind = "generator"   # next-character model: what a text dataset's `model_kind` asks for
    gates = 4            # nn.LSTM's (the memory estimate, training/resources.py)
    # nn.LSTM applies dropout between layers only: with one layer a dropout would not be used
    read_if = {"dropout": ("num_layers > 1", lambda s, cfg: s["num_layers"] > 1)}

    def __init__(self, vocab_size: int, embedding_dim: int = 64, hidden_size: int = 256,
                 num_layers: int = 2, dropout: float = 0.0,
                 init: Literal["uniform", "kaiming_normal", "xavier_uniform"] = "uniform"):
        super().__init__()
        self.vocab_size, self.hidden_size, self.num_layers = vocab_size, hidden_size, num_layers
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        # nn.LSTM applies dropout to the outputs of every layer but the last
        self.lstm = nn.LSTM(embedding_dim, hidden_size, num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.head = nn.Linear(hidden_size, vocab_size)
        if init != "uniform":  # "uniform" = PyTorch's default U(-1/sqrt(H), 1/sqrt(H))
            scheme = {"kaiming_normal": nn.init.kaiming_normal_, "xavier_uniform": nn.init.xavier_uniform_}[init]
            for name, param in [*self.lstm.named_parameters(), *self.head.named_parameters()]:
                if name.startswith("weight"):
                    scheme(param)
                else:
                    nn.init.zeros_(param)

    @staticmethod
    def num_parameters(vocab_size: int, embedding_dim: int = 64, hidden_size: int = 256, num_layers: int = 2,
                       **_) -> int:
        """Its parameter count without building it (the memory check of a run with thousands of
        layers must not take minutes): embedding, nn.LSTM's layers (two bias vectors each), read-out."""
        E, H, L, V = embedding_dim, hidden_size, num_layers, vocab_size
        return V * E + 4 * H * (E + H + 2) + (L - 1) * 4 * H * (2 * H + 2) + V * (H + 1)

    def logits(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """x: (B, T) ids, state from the previous call (zeros if None) -> logits (B, T, V), state."""
        out, state = self.lstm(self.embedding(x), state)   # (B, T, H), 2 x (L, B, H)
        return self.head(out), state                       # (B, T, V)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T) ids -> log-probabilities of the next character (B, T, V)."""
        return F.log_softmax(self.logits(x)[0], dim=-1)

    def step(self, x_t: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """One character per row: x_t (B,) ids -> logits (B, V) of the next one, new state."""
        p, state = self.logits(x_t.unsqueeze(1), state)    # (B, 1, V)
        return p.squeeze(1), state
