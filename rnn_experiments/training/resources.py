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

What a run (a pack) took, measured: `PeakMemory`, the high-water mark of this process's resident
memory from its start on (Linux's VmHWM, reset to the resident size when it starts) and, on a
GPU, torch's peak of allocated memory.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from rnn_experiments.errors import ConfigError
from rnn_experiments.parts import target_of

EVAL_CHUNK = 1024   # examples evaluated at a time (training/step.py:evaluate)
GiB = 2**30


def parameters(model_cfg, vocab: int, classes: int, pad_token=None) -> int:
    """The number of parameters of the model `model_cfg` describes: its class's
    `num_parameters(vocab_size=, num_classes=, **settings)` where it has one, else the model built
    on PyTorch's meta device (shapes only: no memory, no random numbers drawn) and counted."""
    count = getattr(target_of(model_cfg, "model"), "num_parameters", None)
    if count is not None:
        settings = {k: v for k, v in model_cfg.items() if k not in ("_target_", "name")}
        return count(vocab_size=vocab, num_classes=classes, **settings)
    import torch   # lazy: the checks of rnn-analyze and rnn-generate do not need torch

    from rnn_experiments.models import build_model   # lazy: as above
    with torch.device("meta"):
        model = build_model(model_cfg, vocab, classes, pad_token)
    if not isinstance(model, torch.nn.Module):   # no parameters to count: the contract check refuses it
        return 0
    return sum(p.numel() for p in model.parameters())


def training_bytes(cfg) -> int:
    """Memory a training run (or the gradient study) of `cfg` needs at its peak, in bytes. The
    recurrence's activations are counted for a model with a `model.hidden_size` (its class's
    `gates` gate blocks, `model.num_layers` layers); for another, its parameters and the data."""
    m, t = cfg.model, cfg.train
    model, dataset = target_of(m, "model"), target_of(cfg.dataset, "dataset")
    T, V, C = dataset.sizes(cfg.dataset.get("seq_length"))
    H, g, B = m.get("hidden_size", 0), getattr(model, "gates", 4), t.batch_size
    layers = m.get("num_layers", 1)
    per_step = getattr(model, "kind", "classifier") == "generator"   # logits at every step: (B, T, V)
    P = parameters(m, V, C, getattr(dataset, "pad_token", None))
    step = 2 * T * B * H * (g + 3) * layers + T * B * (2 * C if per_step else 0)
    chunk = min(t.eval_size, EVAL_CHUNK)
    evaluation = chunk * H * (g + 3) * layers + chunk * T * (C if per_step else 1)
    data = 8 * T * (B + t.eval_size)                  # int64 tokens: a batch and the held-out set
    return 4 * (4 * P + step + evaluation) + data


def generation_bytes(cfg, prompts: list[str], vocab: int = 256) -> int:
    """Memory `rnn-generate` needs for its token tensor and per-step logits, in bytes."""
    rows = len(prompts) * cfg.num_samples
    longest = max((len(str(p)) for p in prompts), default=1)
    return 8 * rows * (longest + cfg.length) + 4 * 3 * rows * vocab


CGROUP = Path("/sys/fs/cgroup")   # where the cgroup file systems are mounted (a container's, a SLURM job's limits)
# (file of the limit, file of the use, the value that means none) in cgroup v2 and in v1's memory controller
CGROUP_FILES = {"v2": ("memory.max", "memory.current", "max"),
                "v1": ("memory.limit_in_bytes", "memory.usage_in_bytes", None)}


def cgroup_bytes(root: Path = CGROUP, cgroup_file: Path = Path("/proc/self/cgroup")) -> int | None:
    """What this process's memory cgroup still allows: its limit less its use, for its own group
    and every group above it, the smallest; None where no limit is set (or cgroups are not there).
    cgroup v2 (`0::/path`: ROOT/path/memory.max) and v1 (`N:memory:/path`:
    ROOT/memory/path/memory.limit_in_bytes; v1's "no limit" is a huge number, larger than any
    machine's memory, so it never decides)."""
    try:
        lines = cgroup_file.read_text().splitlines()
    except OSError:
        return None
    left = None
    for line in lines:
        _, controllers, group = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":
            kind, top = "v2", root
        elif "memory" in controllers.split(","):
            kind, top = "v1", root / "memory"
        else:
            continue
        limit_file, used_file, unlimited = CGROUP_FILES[kind]
        folder = top / group.strip().lstrip("/")
        while True:
            try:
                limit = (folder / limit_file).read_text().strip()
                if limit != unlimited:
                    free = int(limit) - int((folder / used_file).read_text().strip())
                    left = free if left is None else min(left, free)
            except (OSError, ValueError):
                pass
            if folder == top or top not in folder.parents:
                break
            folder = folder.parent
    return left


def process_limit_bytes() -> int | None:
    """RLIMIT_AS (ulimit -v): the address space this process may still take; None: unlimited."""
    try:
        import resource
        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
    except (ImportError, OSError, ValueError):
        return None
    return None if soft == resource.RLIM_INFINITY else soft


def available_bytes(device: str = "cpu") -> int | None:
    """Memory this process can still get: the GPU's free memory for cuda, else the smallest of
    the machine's MemAvailable (Linux) or its physical memory, its cgroup's limit less what the
    group uses (a container, a SLURM job) and its own address-space limit; None where none can
    be read."""
    if device == "cuda":
        import torch
        if torch.cuda.is_available():
            return torch.cuda.mem_get_info()[0]
        return None
    limits = [b for b in (_machine_bytes(), cgroup_bytes(), process_limit_bytes()) if b is not None]
    return min(limits) if limits else None


def _machine_bytes() -> int | None:
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
    sizes = [f"model.{k}={m[k]}" for k in ("hidden_size", "embedding_dim") if k in m]
    sizes += [f"train.batch_size={t.batch_size}", f"train.eval_size={t.eval_size}"]
    sizes += [f"dataset.seq_length={d.seq_length}"] if "seq_length" in d else []
    sizes += [f"model.num_layers={m.num_layers}"] if "num_layers" in m else []
    return ", ".join(sizes)


def check_training_fits(cfg, device: str = "cpu", available: int | None = None) -> None:
    """ConfigError when the run `cfg` describes cannot fit in `device`'s memory."""
    check_fits(training_bytes(cfg), training_sizes(cfg), device, available)


MiB = 2**20
STATUS = Path("/proc/self/status")        # VmRSS, VmHWM: resident memory now and its high-water mark
CLEAR_REFS = Path("/proc/self/clear_refs")  # writing "5" resets VmHWM to VmRSS (Linux >= 4.0, proc(5))


def resident_bytes(field: str = "VmRSS", status: Path = STATUS) -> int | None:
    """This process's resident memory now (`VmRSS`), or its high-water mark (`VmHWM`), from
    /proc/self/status; None where there is none (not Linux)."""
    try:
        with open(status) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024          # kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def process_peak_bytes() -> int | None:
    """The resident memory this process has had at most (getrusage's ru_maxrss; never below
    VmHWM: the kernel keeps the larger); since it started, unless a PeakMemory reset the mark
    (on Linux the reset lowers it too: then since that reset); None where there is no getrusage."""
    try:
        import resource
    except ImportError:   # not POSIX
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024    # bytes on macOS, KiB elsewhere


class PeakMemory:
    """The peak memory of what runs from now on (a pack, a run), measured:

        before   resident memory when it started, bytes (None where it cannot be read)
        peak()   the high-water mark of resident memory since then: VmHWM, reset to VmRSS at the
                 start (/proc/self/clear_refs), so before <= peak() <= process_peak_bytes(); where
                 it cannot be reset (not Linux, /proc read-only), the process's peak since it
                 started (ru_maxrss), an upper bound; `since` says which: "start", "process start"
        cuda(device)  torch.cuda.max_memory_allocated since the start (its peak statistics reset
                 then), for a CUDA device; else None

    The reset is the process's: a reader of its own peak afterwards (`/usr/bin/time -v`) sees the
    peak since the last PeakMemory began."""

    def __init__(self):
        try:
            CLEAR_REFS.write_text("5")
            self.since = "start"
        except OSError:
            self.since = "process start"
        hwm = resident_bytes("VmHWM") if self.since == "start" else None
        self.before = hwm if hwm is not None else resident_bytes()    # VmHWM just reset: VmRSS then
        torch = sys.modules.get("torch")        # where CUDA is not initialised, its statistics are 0
        if torch is not None and torch.cuda.is_initialized():
            torch.cuda.reset_peak_memory_stats()

    def peak(self) -> int | None:
        hwm = resident_bytes("VmHWM") if self.since == "start" else None
        return hwm if hwm is not None else process_peak_bytes()

    def cuda(self, device) -> int | None:
        if getattr(device, "type", str(device)) != "cuda":
            return None
        import torch   # lazy: only a CUDA run asks
        return int(torch.cuda.max_memory_allocated(device))

    def record(self, device=None) -> dict:
        """What summary.json's `pack` keeps of it, in MiB (0.1): rss_before_mib, peak_rss_mib,
        peak_rss_since and, on a GPU, peak_cuda_mib; what cannot be read is left out."""
        mib = lambda b: None if b is None else round(b / MiB, 1)
        out = {"rss_before_mib": mib(self.before), "peak_rss_mib": mib(self.peak()),
               "peak_rss_since": self.since, "peak_cuda_mib": mib(self.cuda(device))}
        return {k: v for k, v in out.items() if v is not None}


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
