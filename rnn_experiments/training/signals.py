"""Stopping a run cleanly on a signal.

SIGTERM and SIGINT (Ctrl-C), SIGHUP (the terminal or ssh session closed) and SIGUSR2 (SLURM's
time-limit / preemption signal, through submitit) only set a flag; the loop checks it after each
step, saves a checkpoint and raises `Interrupted`, which carries the signal's name to the entry
point (exit 130, or a requeue). A second Ctrl-C stops at once. A signal the process was started
to ignore (`nohup` ignores SIGHUP) stays ignored. Inside another `stop_on_signals` (the runs of a
pack, inside their pack's) it installs nothing and shares the outer one's list: one signal stops
every run of the pack.
"""
from __future__ import annotations

import signal
from contextlib import contextmanager

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT) + tuple(
    getattr(signal, name) for name in ("SIGHUP", "SIGUSR2") if hasattr(signal, name))


class Interrupted(KeyboardInterrupt):
    """The run stopped on `signal` (a name such as "SIGTERM") after step `step`, checkpoint saved."""

    def __init__(self, signal: str, step: int):
        super().__init__(f"stopped by {signal} at step {step}")
        self.signal, self.step = signal, step


_active: list[int] | None = None   # the list of the outermost stop_on_signals, while one is entered


@contextmanager
def stop_on_signals():
    """Within: the stop signals append their number to the yielded list instead of killing."""
    global _active
    if _active is not None:     # nested (a run of a pack): the outer handlers stay
        yield _active
        return
    received: list[int] = []

    def handler(signum, frame):
        if received:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        received.append(signum)

    old = {}
    try:
        for sig in STOP_SIGNALS:
            if signal.getsignal(sig) is not signal.SIG_IGN:   # nohup: SIGHUP stays ignored
                old[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread: leave signals alone
        pass
    _active = received
    try:
        yield received
    finally:
        _active = None
        for sig, h in old.items():
            signal.signal(sig, h)
