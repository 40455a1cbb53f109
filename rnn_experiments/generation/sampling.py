"""Choosing the next character from the model's logits p (B, V).

    greedy        c = argmax_v p_v
    temperature   P(c = v) = softmax(p / T)_v = exp(p_v / T) / Σ_u exp(p_u / T)
    top-k         the same, over the k largest logits only (the rest get probability 0)

T is the usual temperature: T → 0 tends to greedy, T = 1 is the model's own distribution,
T → ∞ tends to uniform. NOTE: the reference report's τ MULTIPLIES the logits (softmax(τ·p)), so
report τ = 0.5, 1.0, 2.0 are T = 2.0, 1.0, 0.5 here (T = 1/τ).

The logits are shifted by their maximum before dividing by T, so the largest becomes exactly 0
and every other -∞ at worst: a tiny T gives a one-hot distribution (greedy), never NaN.
"""
from __future__ import annotations

import torch

from rnn_experiments.errors import check

STRATEGIES = ("greedy", "sample")


def check_sampling(strategy: str, temperature: float, top_k: int) -> None:
    """ConfigError (a ValueError, one line naming the setting) for settings no sampler accepts:
    the one check of these three, for `rnn-generate`'s config and for `generate` itself."""
    check(strategy in STRATEGIES, "strategy", strategy, f"one of {STRATEGIES}")
    check(strategy != "sample" or temperature > 0, "temperature", temperature,
          "a number > 0 (for arg-max decoding use strategy=greedy)")
    check(top_k >= 0, "top_k", top_k, "an integer >= 0 (0: all characters)")


def probabilities(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0) -> torch.Tensor:
    """logits (B, V) -> the sampling distribution (B, V), softmax((p - max p) / T) over the top k."""
    z = logits - logits.amax(-1, keepdim=True)                       # (B, V), max = 0
    if 0 < top_k < z.shape[-1]:
        kth = z.topk(top_k, dim=-1).values[:, -1:]                   # (B, 1)
        z = z.masked_fill(z < kth, float("-inf"))
    return torch.softmax(z / temperature, dim=-1)                    # (B, V)


def next_token(logits: torch.Tensor, strategy: str = "sample", temperature: float = 1.0,
               top_k: int = 0, generator: torch.Generator | None = None) -> torch.Tensor:
    """logits (B, V) -> next ids (B,)."""
    check_sampling(strategy, temperature, top_k)
    if strategy == "greedy":
        return logits.argmax(-1)                                     # (B,)
    probs = probabilities(logits, temperature, top_k)                # (B, V)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)
