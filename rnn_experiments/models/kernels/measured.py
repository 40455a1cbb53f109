"""Choices made by measurement on this machine, kept per user: which of several implementations of
the same computation is fastest here (a kernel: ATen's tanh or 2σ(2x) - 1, MKL or oneDNN for a
product; a whole training step, with its thread count where a run leaves that to choose:
training/impl.py).

    choice, how, times = choose(key, {"a": fn_a, "b": fn_b}, default="a")

On first use of `key` on this machine the candidates are timed briefly (`measure`: interleaved
rounds, the fastest of a few calls per round, a margin that the winner must beat the default by
in every round, so noise does not flip a choice) and the choice is written to the cache file of
this CPU model and torch version:

    $RNN_EXPERIMENTS_CACHE/, else $XDG_CACHE_HOME/rnn-experiments/, else ~/.cache/rnn-experiments/
        choices-<cpu>-torch-<version>.json      {"cpu", "torch", "choices": {key: entry}}

Later uses (any process of this user) read it, so every run on this machine makes the same choice.
The file is replaced atomically (a temporary file renamed over it); one that cannot be read (cut
short, edited by hand) is ignored with one warning line and rewritten, and one that cannot be
written costs one warning line: neither stops a run. Under torch.use_deterministic_algorithms
nothing is timed: the default is used (a result must not depend on a timing). Every candidate
computes the same thing up to the order of float sums (each is tested equal to the equations).
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import platform
import re
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

log = logging.getLogger(__name__)

MARGIN = 1.1        # the winner must be this much faster than the default in every round
_MEMO: dict = {}    # cache file -> its choices, read once per process (and kept in step with it)


@functools.lru_cache(maxsize=1)
def cpu_name() -> str:
    """This CPU's model name with its family and model number (virtual machines may report a
    bare "AMD EPYC"): from /proc/cpuinfo on Linux, else platform.processor()."""
    try:
        with open("/proc/cpuinfo") as f:
            first = f.read().split("\n\n")[0]
        info = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in first.splitlines() if ":" in line)}
        if "model name" in info:
            return f"{info['model name']} (family {info.get('cpu family', '?')}, model {info.get('model', '?')})"
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cache_dir() -> Path:
    """Where this user's choices are kept (module doc)."""
    if os.environ.get("RNN_EXPERIMENTS_CACHE"):
        return Path(os.environ["RNN_EXPERIMENTS_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "rnn-experiments"


def cache_file(cpu: str | None = None, version: str | None = None) -> Path:
    """The cache file of a CPU model and torch version (default: this machine's)."""
    cpu, version = cpu or cpu_name(), version or torch.__version__
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", f"{cpu}-torch-{version}").strip("-")[:80]
    digest = hashlib.sha1(f"{cpu}\0{version}".encode()).hexdigest()[:8]
    return cache_dir() / f"choices-{slug}-{digest}.json"


def _read(path: Path, quiet: bool = False) -> dict:
    """{key: entry} from the cache file; {} if absent; {} and one warning if unreadable (none
    where `quiet`: read again just before writing)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as e:
        if not quiet:
            log.warning("cannot read the cache of measured choices %s (%s): measuring again", path, e.strerror or e)
        return {}
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("choices"), dict):
            raise ValueError("not a choices file")
        if data.get("cpu") != cpu_name() or data.get("torch") != torch.__version__:
            raise ValueError("written for another CPU or torch")
        return data["choices"]
    except ValueError as e:
        if quiet:
            return {}
        log.warning("ignoring the corrupt cache of measured choices %s (%s): it is rewritten", path, e)
        return {}


def _write(path: Path, choices: dict) -> None:
    """Replace the file atomically; one warning line where it cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"cpu": cpu_name(), "torch": torch.__version__, "choices": choices}, f,
                          indent=1, sort_keys=True)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as e:
        log.warning("cannot write the cache of measured choices %s (%s): this choice holds for this "
                    "process only", path, e.strerror or e)


def cached(key: str) -> dict | None:
    """The cached entry of `key` ({"choice", "times_ms", ...}), or None."""
    path = cache_file()
    if path not in _MEMO:
        _MEMO[path] = _read(path)
    return _MEMO[path].get(key)


def remember(key: str, entry: dict) -> None:
    """Add `key` to the cache file (merged with what other processes wrote since it was read)."""
    path = cache_file()
    choices = {**_read(path, quiet=True), key: entry}
    _MEMO[path] = choices
    _write(path, choices)


def forget() -> None:
    """Drop what this process read from cache files (tests; a changed $XDG_CACHE_HOME)."""
    _MEMO.clear()


def measure(candidates: dict[str, Callable[[], object]], default: str, rounds: int = 2, repeats: int = 2,
            margin: float = MARGIN, drop: float = 2.0, clock=time.perf_counter) -> tuple[str, dict]:
    """(the choice, {name: [fastest call of each round, seconds]}).

    A warm-up round calls every candidate once; then each round calls every candidate still in
    the race `repeats` times, interleaved (a busy machine slows them alike), and keeps the fastest.
    A candidate more than `drop` times slower than a round's fastest leaves the race, and one
    whose warm-up took 2·drop times the fastest warm-up never enters it (a hopeless one, e.g. two
    threads on cores that other processes keep busy, is not timed again: its warm-up is its
    time); the default stays. The fastest
    (by its best round) is chosen if it beat `default` by `margin` in every round; otherwise the
    default."""
    warm = {}
    for name, fn in candidates.items():
        t0 = clock()
        fn()
        warm[name] = clock() - t0
    alive = {name: fn for name, fn in candidates.items()   # a warm-up far slower: not timed again
             if name == default or warm[name] <= 2 * drop * min(warm.values())}
    times: dict[str, list] = {name: [] if name in alive else [warm[name]] for name in candidates}
    for _ in range(rounds):
        for name, fn in alive.items():
            best = float("inf")
            for _ in range(repeats):
                t0 = clock()
                fn()
                best = min(best, clock() - t0)
            times[name].append(best)
        fastest = min(times[name][-1] for name in alive)
        alive = {name: fn for name, fn in alive.items() if name == default or times[name][-1] <= drop * fastest}
    winner = min((name for name in candidates if times[name]), key=lambda n: min(times[n]))
    if winner == default:
        return winner, times
    both = zip(times[default], times[winner])
    return (winner if all(t_def > margin * t_win for t_def, t_win in both) else default), times


def choose(key: str, candidates: dict[str, Callable[[], object]], default: str, **kwargs) -> tuple[str, str, dict]:
    """(choice, how, {name: fastest ms}) for `key` on this machine: how is "cached" (this user's
    cache file had it), "measured" (timed now and cached: `measure`, kwargs go to it) or
    "deterministic" (under torch.use_deterministic_algorithms: the default, nothing timed)."""
    if torch.are_deterministic_algorithms_enabled():
        return default, "deterministic", {}
    entry = cached(key)
    if entry is not None and entry.get("choice") in candidates:
        return entry["choice"], "cached", entry.get("times_ms", {})
    choice, times = measure(candidates, default, **kwargs)
    times_ms = {name: round(min(ts) * 1e3, 4) for name, ts in times.items() if ts}
    remember(key, {"choice": choice, "times_ms": times_ms, "measured": time.strftime("%Y-%m-%d %H:%M:%S"),
                   "load": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None})
    return choice, "measured", times_ms
