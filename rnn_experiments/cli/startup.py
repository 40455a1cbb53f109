"""What every command checks before it imports anything heavy.

A command started in a folder that has since been deleted cannot resolve any relative path, and
torch's MKL fails to load in it with a fatal error of its own before any of our code runs; so
each command module calls `require_cwd` first, at import, before importing torch.

Ctrl-C while a command is still importing (torch, Hydra: a second or two) would print Python's
traceback of whatever import it hit: from `require_cwd` until the command's `main` starts
(`startup_over`), Ctrl-C prints one line and exits 130 instead. Only in the command's own process
(its program name in sys.argv[0]); a process that imports the module (tests) keeps its handler.
"""
from __future__ import annotations

import os
import signal
import sys
from pathlib import Path


def _quiet(prog: str):
    def interrupted(signum, frame):
        os.write(2, f"{prog}: interrupted (while starting; nothing was written)\n".encode())
        os._exit(130)
    return interrupted


def _is_the_program(prog: str) -> bool:
    """Whether this process runs `prog` (its console script or `python -m` spelling)."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    short = prog.removeprefix("rnn-").replace("-", "_")
    return name in (prog, f"{short}.py", f"{prog.replace('-', '_')}.py")


def startup_over() -> None:
    """The command's main has started: Ctrl-C is KeyboardInterrupt again (each command says
    `interrupted` in one line itself and cleans up what it started)."""
    if getattr(signal.getsignal(signal.SIGINT), "__name__", "") == "interrupted":
        signal.signal(signal.SIGINT, signal.default_int_handler)


def require_cwd(prog: str) -> None:
    """One line and exit status 2 when the current folder no longer exists; from here until
    `startup_over`, Ctrl-C is one line and exit status 130 (the module doc)."""
    if _is_the_program(prog) and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _quiet(prog))
    try:
        os.getcwd()
    except FileNotFoundError:
        print(f"{prog}: error: the current folder no longer exists (deleted?): cd into an existing "
              "folder and run the command again", file=sys.stderr)
        sys.exit(2)
