"""Stopping a run cleanly: on a signal, or when a metrics sink asks for it (`StopRun`).

SIGTERM and SIGINT (Ctrl-C), SIGHUP (the terminal or ssh session closed) and SIGUSR2 (SLURM's
time-limit / preemption signal, through submitit) only set a flag; the loop checks it after each
step, saves a checkpoint and raises `Interrupted`, which carries the signal's name to the entry
point (exit 130, or a requeue). A second Ctrl-C stops at once. A signal the process was started
to ignore (`nohup` ignores SIGHUP) stays ignored.

A metrics sink (metrics.py) that decides the run should end early (an Optuna trial the pruner
stops: rnn_experiments/search/trial.py) raises `StopRun(status, reason)` from `write(row)`. The
loop finishes that step as usual (best checkpoint, progress line), saves checkpoint.pt and ends
with that status: a normal end (exit 0), like `completed`, but short of train.steps.
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


STOP_STATUSES = ("pruned", "stopped")   # what a StopRun may end a run with (summary.json's status)


class StopRun(Exception):
    """Raised by a metrics sink: end the run after this step with `status` (one of STOP_STATUSES),
    `reason` a line for summary.json (`stop_reason`) and the log."""

    def __init__(self, status: str, reason: str):
        if status not in STOP_STATUSES:
            raise ValueError(f"StopRun status {status!r}: expected one of {', '.join(STOP_STATUSES)}")
        super().__init__(reason)
        self.status, self.reason = status, reason


@contextmanager
def stop_on_signals():
    """Within: the stop signals append their number to the yielded list instead of killing."""
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
    try:
        yield received
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)
