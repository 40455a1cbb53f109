"""Which implementation a run's training step uses, and on how many threads: chosen on this
machine by measurement (`choose_impl`), or forced (`train.impl`, `train.threads`).

What is fastest differs by CPU and size (docs/speed_and_scale.md): the LSTM's fused CPU path
with ATen's tanh or with 2σ(2x) - 1, its per-step products through MKL or oneDNN, or the plain
autograd loop. So on the CPU, for a run of at least MIN_STEPS steps, the candidates a model has
(`candidates`) are timed on a copy of the model and optimizer (the run's own are not touched, no
batch or random number of the run is drawn) in interleaved rounds (measured.measure: the plain
"fused" path is kept unless another is faster by 10% in every round), once per machine, torch
version, model, B, H, T, vocabulary and threads: the choice is cached per user (measured.py).
Every candidate computes the same equations, up to the order of float sums (tests/models/).

Threads: on a quiet machine with train.threads=0 (the default), the thread count is part of the
measured choice: every candidate is timed at one thread and at torch's count N, in the same
interleaved rounds, and the default (the plain "fused" path at N threads) is kept unless another
pair is faster by 10% in every round; cached under `threads=auto(N)` (the key names no fixed
count: it holds for runs that leave the threads to choose). At small sizes a step is overhead-bound
and one thread can win (MKL runs even a tiny product as a parallel region of all its threads);
at larger sizes the products scale and N wins. Only these two are timed: each count added costs
every candidate's timing again (5 steps each) on the first run of every size; on a machine of
many cores a count between them may be faster still at middling sizes, which this does not find
(train.threads=N sets it).
Where other processes keep the cores busy, a parallel call waits until every one of its
threads gets a core, and each of a step's hundreds of calls pays for it (threads spinning at the
barrier while another is descheduled): two threads ran many times slower than one beside busy
processes. So when other tasks are running now (`others_running`: more than the cores torch's
threads leave free), this comes first: the run times one small product at one thread and at
torch's count (`probe`): COLLAPSED times slower with all threads, it takes one; otherwise it
times its step both ways (a few steps) and keeps one unless more are faster by 10% in every
round. Not cached: it holds for the load of the moment; the implementation is then chosen (and
cached) at that fixed count (`threads=1` or `threads=N` in the key). Where the pace collapses
later, the progress line says so and `lower_threads` goes on with one (training/loop.py).
A count this module lowered is given back to the next run of the process (`_restore_threads`:
jobs of a sweep share a process). train.threads=N > 0 is used as it is (nothing about threads
is timed). The thread count did not change a step's results on the machine this was written on
(bit for bit); elsewhere, as every choice here, it may change the order of float sums only.

Nothing is timed under torch.use_deterministic_algorithms, nor on a GPU (each model's GPU path).
The choice is recorded in summary.json (`impl`).
"""
from __future__ import annotations

import copy
import logging
import os
import random
import time

import numpy as np
import torch

from rnn_experiments.models.kernels import fused as fused_kernels, measured, native
from rnn_experiments.training.resources import available_cores
from rnn_experiments.training.setup import build_optimizer
from rnn_experiments.training.step import train_step

log = logging.getLogger(__name__)

MIN_STEPS = 200                         # shorter runs do not time the implementation (a large share of them)
COLLAPSED = 20.0                        # a probe this many times slower with all threads: one thread
_LOWERED: list = []                     # [(threads before, after)] this process lowered torch's count


def has_fused_path(model_cls: type) -> bool:
    """Whether a model class has the fused path (`fused = True` as a class attribute)."""
    return isinstance(getattr(model_cls, "fused", None), bool)


def candidates(model) -> dict[str, dict]:
    """The implementations a model's step can take on the CPU: name -> attributes to set on it.
    "fused" (the kernels' own choices), for the LSTMs also with every step's tanh as 2σ(2x) - 1,
    with oneDNN's products (float32) and with the time loops compiled for this machine
    ("fused:native", models/kernels/native.py, where it can be built: `unavailable`), and
    "autograd" (the plain loop, `recurrence`)."""
    if not has_fused_path(type(model)):
        return {"autograd": {}}
    found = {"fused": {"fused": True}}
    if hasattr(type(model), "kernels"):
        found["fused:sigmoid-tanh"] = {"fused": True, "kernels": ("sigmoid", None)}
        if fused_kernels._onednn_linear() is not None:
            found["fused:onednn"] = {"fused": True, "kernels": ("aten", "onednn")}
        if native.lib() is not None:
            found["fused:native"] = {"fused": True, "kernels": ("native", None)}
    found["autograd"] = {"fused": False}
    return found


def unavailable(model) -> dict[str, str]:
    """The candidates this machine cannot offer the model, name -> why (one line): recorded
    with the choice, so a missing compiler is not silent."""
    if hasattr(type(model), "kernels") and has_fused_path(type(model)) and native.lib() is None:
        return {"fused:native": native.why_not()}
    return {}


def apply(model, attributes: dict) -> None:
    """Set a candidate's attributes (fused, kernels) on the model; those it leaves out reset."""
    if has_fused_path(type(model)):
        model.fused = attributes.get("fused", True)
    if hasattr(type(model), "kernels"):
        model.kernels = attributes.get("kernels")


def probe(threads: int, calls: int = 3) -> tuple[float, float]:
    """(median seconds of a small matrix product at one thread, at `threads`), interleaved: MKL
    runs even a (32, 32) product as a parallel region of all its threads, so where a thread of
    ours waits for a core, each such call waits for it (tens of ms beside busy processes, against
    a few µs at one thread). The step then collapses whatever its size."""
    a = torch.linspace(-1, 1, 32 * 32).view(32, 32)         # no RNG draw
    out = torch.empty(32, 32)
    times: dict = {1: [], threads: []}
    for _ in range(calls):
        for n in (1, threads):
            torch.set_num_threads(n)
            t0 = time.perf_counter()
            torch.mm(a, a, out=out)
            times[n].append(time.perf_counter() - t0)
    torch.set_num_threads(threads)
    return sorted(times[1])[calls // 2], sorted(times[threads])[calls // 2]


def own_running() -> int:
    """How many threads of this process are running or runnable now (state R in
    /proc/self/task/*/stat; 1 where unknown): this thread, and OpenMP's or MKL's threads of an
    earlier parallel region that still spin, waiting for the next one."""
    count = 0
    try:
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/stat") as f:
                    count += f.read().rsplit(")", 1)[1].split()[0] == "R"   # the state follows the name
            except (OSError, IndexError):
                continue
    except OSError:
        return 1
    return max(count, 1)


def others_running(samples: int = 5, pause_s: float = 0.002) -> float:
    """How many other tasks are running now, on average over a few samples of the kernel's
    count of running tasks (/proc/stat procs_running) less this process's own (`own_running`:
    its threads that spin after a parallel call are not others); 0 where unknown.
    Instantaneous, unlike the load average, which trails by a minute."""
    counts = []
    for _ in range(samples):
        try:
            with open("/proc/stat") as f:
                running = [int(line.split()[1]) for line in f if line.startswith("procs_running")]
        except (OSError, ValueError, IndexError):
            return 0.0
        counts += [n - own_running() for n in running]
        time.sleep(pause_s)
    return max(0.0, sum(counts) / len(counts)) if counts else 0.0


def _restore_threads() -> int:
    """torch's thread count as it was before earlier runs of this process lowered it (jobs of a
    sweep share a process; latest first), unless something else changed it since."""
    while _LOWERED:
        before, after = _LOWERED.pop()
        if torch.get_num_threads() == after:
            torch.set_num_threads(before)
    return torch.get_num_threads()


class _Twin:
    """Training steps of a copy of the model and optimizer on one batch drawn without touching
    the run's data generator or random numbers: the timed candidates."""

    def __init__(self, cfg, device, data, model):
        state = data.state_dict()
        self.x, self.y = data.sample(cfg.train.batch_size)
        data.load_state_dict(state)
        self.model = copy.deepcopy(model)
        self.optimizer = build_optimizer(cfg.optimizer, self.model.parameters(), cfg.train.lr, device)
        self.max_norm = cfg.train.max_norm

    def step(self, attributes: dict, threads: int):
        def run():
            torch.set_num_threads(threads)
            apply(self.model, attributes)
            train_step(self.model, self.optimizer, self.x, self.y, self.max_norm)
        return run


def _measured_quietly(fn):
    """fn() with every random number generator of the run as it was before."""
    py, npy = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            return fn()
        finally:
            random.setstate(py)
            np.random.set_state(npy)


def choose_impl(cfg, device, data, model, steps: int | None = None) -> dict:
    """Choose, apply (model attributes, torch's thread count) and return the record of the
    step's implementation (summary.json's `impl`): choice and how it was made, threads and how
    they were, the cache key (None where none was looked up) and the fastest time of each
    candidate timed (ms; the cached ones where cached; "NAME threads=n" where the threads were
    timed with it). steps: how many the run takes (default train.steps; a shorter one than
    MIN_STEPS times nothing)."""
    forced = cfg.train.get("impl", "auto")
    if device.type != "cpu":
        choice = forced if forced != "auto" else ("fused" if has_fused_path(type(model)) else "autograd")
        apply(model, {"fused": choice == "fused"})
        how = "train.impl" if forced != "auto" else "on a GPU: its GPU path, not timed"
        return {"choice": choice, "how": how, "threads": torch.get_num_threads(), "threads_how": "not timed on a GPU",
                "key": None, "times_ms": {}}
    cands = candidates(model)
    threads = torch.get_num_threads() if cfg.train.threads > 0 else _restore_threads()
    steps = cfg.train.steps if steps is None else steps
    deterministic = torch.are_deterministic_algorithms_enabled()
    times_ms: dict = {}
    key = None
    if forced != "auto":
        cands = {forced: cands.get(forced, {"fused": forced == "fused"})}
    twin = None

    def twin_step(attributes, n):
        nonlocal twin
        twin = twin or _Twin(cfg, device, data, model)
        return twin.step(attributes, n)

    # threads: on a busy machine one, or more where timed faster (first); on a quiet one timed
    # with the implementation below (counts); else as they are
    threads_how = "train.threads" if cfg.train.threads > 0 else f"torch's default ({threads})"
    counts = [threads]
    if cfg.train.threads == 0 and threads > 1 and not deterministic:
        others = others_running()
        if others + threads > available_cores() + 0.5:      # some thread of ours would share a core
            t_one, t_all = probe(threads)
            if t_all > COLLAPSED * t_one:
                threads_how = (f"1: beside {others:.1f} other running tasks a parallel call took {t_all * 1e3:.2f} ms "
                               f"with {threads} threads, {t_one * 1e3:.3f} ms with 1")
                won = "1"
            else:
                first = next(iter(cands.values()))
                timed = {"1": twin_step(first, 1), str(threads): twin_step(first, threads)}
                won, times = _measured_quietly(lambda: (timed["1"](), measured.measure(timed, "1"))[1])
                times_ms.update({f"threads={k}": round(min(v) * 1e3, 3) for k, v in times.items() if v})
                threads_how = f"timed beside {others:.1f} other running tasks"
            if won == "1":
                _LOWERED.append((threads, 1))
                threads = 1
        else:
            counts = [1, threads]
    if len(counts) == 1:
        counts = [threads]                                   # as they are now (lowered, or forced)
    torch.set_num_threads(threads)

    # the implementation (and the threads where counts has two): forced, the only one, cached,
    # measured, or the default untimed
    pairs = {(f"{name} threads={n}" if len(counts) > 1 else name): (name, n) for name in cands for n in counts}
    default = (forced if forced != "auto" else "fused" if "fused" in cands else next(iter(cands)), threads)
    pick, how = default, None
    if len(pairs) > 1 and deterministic:
        how = "deterministic: not timed"
    elif len(pairs) > 1:
        key = _key(cfg, data, model, f"auto({threads})" if len(counts) > 1 else threads)
        key += f" impl={forced}" if forced != "auto" else ""
        entry = measured.cached(key)
        if entry is not None and entry.get("choice") in pairs:
            pick, how = pairs[entry["choice"]], "cached"
            times_ms.update(entry.get("times_ms", {}))
        elif steps < MIN_STEPS:
            how = f"default: a run of fewer than {MIN_STEPS} steps is not timed"
        else:
            timed = {label: twin_step(cands[name], n) for label, (name, n) in pairs.items()}
            default_label = next(label for label, pair in pairs.items() if pair == default)
            won, how, timed_ms = _measured_quietly(lambda: measured.choose(key, timed, default_label))
            pick = pairs[won]
            times_ms.update(timed_ms)
    choice, n = pick
    if len(counts) > 1 and how in ("cached", "measured"):
        threads_how = how                                    # the pair's: the threads were in it
    if forced != "auto" or len(cands) == 1:                  # nothing to choose of the implementation
        how = "train.impl" if forced != "auto" else "the model's only path"
    if n != threads:
        _LOWERED.append((threads, n))                        # given back to the next run of this process
        threads = n
    torch.set_num_threads(threads)
    apply(model, cands[choice])
    record = {"choice": choice, "how": how, "threads": threads, "threads_how": threads_how, "key": key,
              "times_ms": times_ms}
    missing = unavailable(model)
    if missing:
        record["unavailable"] = missing
    log.debug("training step: %s", describe(record))      # (before the run is accepted: no train.log yet)
    return record


def describe(record: dict) -> str:
    """The record in words, for the run's first progress line."""
    n = record["threads"]
    return f"{record['choice']} ({record['how']}), {n} thread{'s' if n != 1 else ''} ({record['threads_how']})"


def _key(cfg, data, model, threads: int | str) -> str:
    """The cache key of a run's step: model class, B, H, T (one batch's length), vocabulary,
    threads: a count (the run's, fixed), or "auto(N)" where the count was chosen with the
    implementation among 1 and torch's N, and the candidates the model has here (`among=`: a
    choice made before a candidate existed, e.g. before a compiler was installed or a release
    added one, is measured again; choose_impl adds " impl=NAME" where train.impl forced it)."""
    state = data.state_dict()
    x, _ = data.sample(min(cfg.train.batch_size, 2))
    data.load_state_dict(state)
    H = getattr(model, "hidden_size", "?")
    return (f"step {type(model).__name__} B={cfg.train.batch_size} H={H} T={x.shape[-1]} "
            f"V={getattr(data, 'vocab_size', '?')} among={','.join(candidates(model))} threads={threads}")


def lower_threads(cfg, record: dict | None, step: int) -> bool:
    """One thread from now on, where the run left its threads to choose (train.threads=0, not
    deterministic): its pace collapsed (training/loop.py's progress line). Recorded in the run's
    `impl` record (threads, threads_how). False where the threads are the run's setting."""
    if cfg.train.get("threads", 0) > 0 or torch.are_deterministic_algorithms_enabled() or torch.get_num_threads() == 1:
        return False
    _LOWERED.append((torch.get_num_threads(), 1))
    torch.set_num_threads(1)
    if record is not None:
        record.update(threads=1, threads_how=f"lowered to 1 at step {step}: the pace collapsed (other processes "
                      f"share the cores); before: {record.get('threads_how')}")
    log.info("1 thread from step %d on", step)
    return True
