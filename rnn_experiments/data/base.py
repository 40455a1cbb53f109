"""What the synthetic tasks share: batches drawn from the dataset's own seeded generator."""
from __future__ import annotations

import torch


class SeededBatches:
    """Holds the training-batch generator; its state goes into checkpoints for exact resume."""

    def __init__(self, seed: int, device: torch.device):
        self.device = device
        self.generator = torch.Generator().manual_seed(seed)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
