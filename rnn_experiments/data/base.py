"""What the synthetic tasks share: batches drawn from the dataset's own seeded generator."""
from __future__ import annotations

import torch


class SeededBatches:
    """A synthetic task defines `draw(batch_size, generator) -> (x, y)` (CPU tensors).

    From it, this base makes fresh training batches from the run's seed (`sample`) and a fixed
    held-out set from `dataset.eval_seed` (`eval_x`, `eval_y`). The training generator's state
    goes into checkpoints for exact resume. Subclasses set their own attributes (L, ...) before
    calling `super().__init__`.

    Its settings are its constructor's arguments (`dataset.seq_length`, `dataset.eval_seed`; the
    framework passes seed, device and eval_size: rnn_experiments/parts.py). What else it declares,
    read by `rnn_experiments.config.validate`: the kind of model it feeds (`model_kind`), the range
    of `dataset.seq_length` (`seq_length_range`, None: no upper bound) and the settings that must
    not be left null (`required`). `sizes(seq_length)` is (input length, vocabulary, classes),
    what a run's memory grows with. Optionally `chance_accuracy(**settings) -> float | None`
    (a classmethod): the accuracy of always predicting the most frequent class, which the
    analysis draws as the chance line of its accuracy plots (called with those of the node's
    settings it names; absent or None: no line).
    """

    model_kind = "classifier"
    seq_length_range: tuple[int, int | None] = (1, None)
    required: tuple[str, ...] = ()
    pad_token: int | None = None    # the token that left-pads inputs, if the task pads

    def __init__(self, eval_seed: int, seed: int, device: torch.device, eval_size: int):
        self.device = torch.device(device)
        self.generator = torch.Generator().manual_seed(seed)
        x, y = self.draw(eval_size, torch.Generator().manual_seed(eval_seed))
        self.eval_x, self.eval_y = x.to(device), y.to(device)

    @classmethod
    def sizes(cls, seq_length: int) -> tuple[int, int, int]:
        """(input length T, vocabulary size, number of classes) for this seq_length."""
        raise NotImplementedError

    def draw(self, batch_size: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def sample(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.draw(batch_size, self.generator)
        if self.device.type == "cuda":  # pinned + asynchronous: the GPU need not wait for the copy
            return x.pin_memory().to(self.device, non_blocking=True), y.pin_memory().to(self.device, non_blocking=True)
        return x, y

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
