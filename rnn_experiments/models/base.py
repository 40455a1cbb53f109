"""What every sequence classifier shares: token embedding, a recurrence, a linear read-out.

    e_t = Embedding(x_t)                       # (B, E)
    h_1..h_T = recurrence(e_1..e_T)            # defined by the subclass
    p = W_ph h_T + b_p                         # (B, C)
    log ŷ = log_softmax(p)   over the CLASS axis (dim=-1)

`log_softmax_dim = 0` (model.log_softmax_axis=batch) normalises over the BATCH axis instead: the
reference report's bug, kept as a switch to reproduce its curves (docs/RESULTS.md); never use it
for real work. `init="kaiming_normal_fan_out"` is the report author's initialisation: Kaiming
normal with gain 1 on (in, out)-shaped matrices, i.e. std = 1/sqrt(output size) for ours.
"""
from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F


Init = Literal["kaiming_normal", "kaiming_normal_fan_out", "xavier_uniform", "uniform"]
Axis = Literal["class", "batch"]   # model.log_softmax_axis


class RecurrentClassifier(nn.Module):
    kind = "classifier"      # what a dataset's `model_kind` must be (rnn_experiments.config.validate)
    one_directional = True   # reads h_T of a left-to-right recurrence (the gradient-flow study needs it)
    graphable = True         # its training step can be captured in a CUDA graph (training/step.py)
    log_softmax_dim = -1     # -1: over the classes; 0: over the batch (the report's bug, a switch)
    gates = 1                # gate blocks of its recurrence (the memory estimate, training/resources.py)

    def __init__(self, vocab_size: int, num_classes: int, embedding_dim: int, hidden_size: int,
                 log_softmax_axis: Axis = "class"):
        super().__init__()
        self.hidden_size = hidden_size
        self.log_softmax_dim = 0 if log_softmax_axis == "batch" else -1
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.W_ph = nn.Parameter(torch.empty(num_classes, hidden_size))
        self.b_p = nn.Parameter(torch.zeros(num_classes))

    def stacked_ready(self) -> bool:
        """Whether `forward_stacked` computes this model's forward for a pack (a subclass that
        has one and whose settings it covers): the readout of h_T, log-softmax over classes."""
        return (hasattr(self, "forward_stacked") and self.log_softmax_dim == -1
                and type(self).readout_state is RecurrentClassifier.readout_state)

    def readout_stacked(self, params: dict, h: torch.Tensor) -> torch.Tensor:
        """The classifier on h_T of K members at once: (K, B, H) -> log-probabilities (K, B, C)."""
        p = torch.baddbmm(params["b_p"].unsqueeze(1), h, params["W_ph"].transpose(1, 2))  # (K, B, C)
        return F.log_softmax(p, dim=-1)

    def recurrence(self, e: torch.Tensor) -> list[torch.Tensor]:
        """e: (B, T, E) embedded inputs -> the hidden states [h_1, ..., h_T], each (B, H)."""
        raise NotImplementedError

    def readout_state(self, hs: list[torch.Tensor]) -> torch.Tensor:
        """The vector the classifier reads (h_T by default)."""
        return hs[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T) token ids -> log-probabilities (B, C)."""
        e = self.embedding(x)                                 # (B, T, E)
        h = self.readout_state(self.recurrence(e))            # (B, H)
        p = F.linear(h, self.W_ph, self.b_p)                  # (B, C)
        return F.log_softmax(p, dim=self.log_softmax_dim)


def init_weights(model: nn.Module, scheme: str) -> None:
    """Weight matrices W_* get `scheme`, biases b_* are zeroed. The embedding keeps its N(0, 1)."""
    for name, param in model.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        if leaf.startswith("b_"):
            nn.init.zeros_(param)
        elif leaf.startswith("W_"):
            if scheme == "kaiming_normal":
                nn.init.kaiming_normal_(param)  # fan_in = columns, gain sqrt(2), as torch does
            elif scheme == "kaiming_normal_fan_out":  # the report's: std = 1/sqrt(rows)
                nn.init.kaiming_normal_(param, mode="fan_out", nonlinearity="linear")
            elif scheme == "xavier_uniform":
                nn.init.xavier_uniform_(param)
            elif scheme == "uniform":  # nn.LSTM's default: U(-1/sqrt(H), 1/sqrt(H))
                bound = 1.0 / math.sqrt(model.hidden_size)
                nn.init.uniform_(param, -bound, bound)
            else:
                raise ValueError(f"unknown init scheme {scheme!r}")


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
