"""How much memory a run, an evaluation or a generation will need, estimated from its sizes before
anything is built, and what the machine has: a request that cannot fit is refused in one line
instead of dying in the allocator (or being killed by the kernel) minutes later.

The estimates are upper bounds of the large terms, in bytes (float32 = 4 bytes):

    parameters     4 copies (weights, gradients, Adam's two moments) of the model's P numbers
    training step  the recurrence's saved activations, T x B x H x (gates + 3) numbers, twice
                   (this step's and the buffers kept for the next), and the batch itself
    evaluation     the held-out set (eval_size x T tokens) and one chunk's activations
    generation     the (prompts x samples, prompt + length) token tensor, int64

They ignore what is small (Python, torch's own ~0.5 GiB), so a refusal means the run cannot fit,
not that every accepted run will.
"""
from __future__ import annotations

import os

from rnn_experiments.errors import ConfigError

GATES = {"rnn": 1, "gru": 3, "lstm": 4, "peep_lstm": 4, "bilstm": 8, "generator": 4}
EVAL_CHUNK = 1024   # examples evaluated at a time (training/step.py:evaluate)
GiB = 2**30


def parameters(model_cfg, vocab: int, classes: int) -> int:
    """The number of parameters of the model `model_cfg` describes (exact for the classifiers;
    for the generator: embedding, nn.LSTM's layers and the read-out)."""
    H, E, g = model_cfg.hidden_size, model_cfg.embedding_dim, GATES.get(model_cfg.name, 4)
    if model_cfg.name == "generator":
        L = model_cfg.num_layers
        lstm = 4 * H * (E + H + 2) + (L - 1) * 4 * H * (2 * H + 2)
        return vocab * E + lstm + classes * (H + 1)
    directions = 2 if model_cfg.name == "bilstm" else 1
    return vocab * E + g * H * (E + H + 1) + classes * (directions * H + 1)


def training_bytes(cfg) -> int:
    """Memory a training run (or the gradient study) of `cfg` needs at its peak, in bytes."""
    from rnn_experiments.data import DATASETS   # lazy: data imports torch, which the checks of rnn-analyze and rnn-generate do not need
    m, t = cfg.model, cfg.train
    T, V, C = DATASETS[cfg.dataset.name].sizes(cfg.dataset.seq_length)
    H, g, B = m.hidden_size, GATES.get(m.name, 4), t.batch_size
    layers = m.num_layers if m.name == "generator" else 1
    P = parameters(m, V, C)
    step = 2 * T * B * H * (g + 3) * layers + T * B * (2 * C if m.name == "generator" else 0)
    chunk = min(t.eval_size, EVAL_CHUNK)
    evaluation = chunk * H * (g + 3) * layers + chunk * T * (C if m.name == "generator" else 1)
    data = 8 * T * (B + t.eval_size)                  # int64 tokens: a batch and the held-out set
    return 4 * (4 * P + step + evaluation) + data


def generation_bytes(cfg, prompts: list[str], vocab: int = 256) -> int:
    """Memory `rnn-generate` needs for its token tensor and per-step logits, in bytes."""
    rows = len(prompts) * cfg.num_samples
    longest = max((len(str(p)) for p in prompts), default=1)
    return 8 * rows * (longest + cfg.length) + 4 * 3 * rows * vocab


def available_bytes(device: str = "cpu") -> int | None:
    """Memory this process can still get: the GPU's free memory for cuda, else the machine's
    MemAvailable (Linux) or its physical memory; None where neither can be read."""
    if device == "cuda":
        import torch
        if torch.cuda.is_available():
            return torch.cuda.mem_get_info()[0]
        return None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(needed: int, what: str, device: str = "cpu", available: int | None = None) -> None:
    """ConfigError (one line) when `needed` bytes are more than the device has; `what` names the
    sizes that make the need ("model.hidden_size=100000, train.batch_size=256")."""
    have = available_bytes(device) if available is None else available
    if have is not None and needed > have:
        where = "on the GPU" if device == "cuda" else "on this machine"
        raise ConfigError(f"{what} is invalid: expected a run that fits in memory: it needs about "
                          f"{needed / GiB:,.1f} GiB, and {have / GiB:,.1f} GiB are available {where}")


def training_sizes(cfg) -> str:
    """The settings a training run's memory grows with, as `key=value, ...`."""
    m, d, t = cfg.model, cfg.dataset, cfg.train
    sizes = [f"model.hidden_size={m.hidden_size}", f"model.embedding_dim={m.embedding_dim}",
             f"train.batch_size={t.batch_size}", f"train.eval_size={t.eval_size}",
             f"dataset.seq_length={d.seq_length}"] + ([f"model.num_layers={m.num_layers}"]
                                                      if m.name == "generator" else [])
    return ", ".join(sizes)


def check_training_fits(cfg, device: str = "cpu", available: int | None = None) -> None:
    """ConfigError when the run `cfg` describes cannot fit in `device`'s memory."""
    check_fits(training_bytes(cfg), training_sizes(cfg), device, available)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
