import torch

from rnn_experiments.data.base import SeededBatches


class ParityDataset(SeededBatches):
    """Bits in, their parity (sum mod 2) out: x (B, L) in {0, 1}, y (B,)."""
    vocab_size, num_classes = 2, 2

    def __init__(self, seq_length: int = 8, eval_seed: int = 1234, *, seed: int, device, eval_size: int):
        self.L = seq_length
        super().__init__(eval_seed, seed, device, eval_size)

    @classmethod
    def sizes(cls, seq_length: int):
        return seq_length, 2, 2

    def draw(self, batch_size: int, generator: torch.Generator):
        x = torch.randint(0, 2, (batch_size, self.L), generator=generator)
        return x, x.sum(1) % 2
