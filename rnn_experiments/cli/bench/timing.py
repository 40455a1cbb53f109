"""How rnn-bench times: repeats interleaved across the timed functions (a busy machine slows all
of them alike), medians and fastest repeats, the clock (wall or this thread's CPU time), the
palindrome config of a size, and the loop's phases (`PhaseTimes`: a timer for training.loop.train)."""
from __future__ import annotations

import contextlib
import statistics
import time

import torch

from rnn_experiments.config import compose
from rnn_experiments.training.step import make_step

MINIMA: dict = {}   # (section, name) -> fastest repeat, printed next to the medians
CLOCKS = {"wall": time.perf_counter, "thread": time.thread_time}
CLOCK = time.perf_counter   # --clock thread: the CPU time of this thread (with --threads 1 only)


def set_clock(name: str) -> None:
    global CLOCK
    CLOCK = CLOCKS[name]


def interleaved(fns: dict, repeats: int, warmup: int = 1, key: str = "") -> dict:
    """{name: median seconds}: every repeat runs each fn once, in turn (minima kept in MINIMA)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = CLOCK()
            fn()
            times[name].append(CLOCK() - t0)
    MINIMA.update({(key, name): min(ts) for name, ts in times.items()})
    return {name: statistics.median(ts) for name, ts in times.items()}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def step_fn(model, optimizer, x, y, max_norm, device, cuda_graphs=False):
    take_step = make_step(model, optimizer, max_norm, device, cuda_graphs)

    def step():
        take_step(x, y)
        sync(device)
    return step


def train_config(model: str, B: int, H: int, L: int, device, extra=()):
    """The config of a palindrome run of this size (input length 4L+1), as the loop would get it."""
    return compose([f"model={model}", f"model.hidden_size={H}", f"train.batch_size={B}",
                    f"dataset.seq_length={L}", f"device={device.type}", "train.eval_size=16", *extra])


class PhaseTimes:
    """A timer for `training.loop.train`: {phase: (calls, seconds)} by the chosen clock."""

    def __init__(self):
        self.spent: dict[str, tuple[int, float]] = {}

    @contextlib.contextmanager
    def __call__(self, phase: str):
        t0 = CLOCK()
        try:
            yield
        finally:
            n, total = self.spent.get(phase, (0, 0.0))
            self.spent[phase] = (n + 1, total + CLOCK() - t0)
