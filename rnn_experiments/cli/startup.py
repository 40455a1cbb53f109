"""What every command checks before it imports anything heavy.

A command started in a folder that has since been deleted cannot resolve any relative path, and
torch's MKL fails to load in it with a fatal error of its own before any of our code runs; so
each command module calls `require_cwd` first, at import, before importing torch.
"""
from __future__ import annotations

import os
import sys


def require_cwd(prog: str) -> None:
    """One line and exit status 2 when the current folder no longer exists."""
    try:
        os.getcwd()
    except FileNotFoundError:
        print(f"{prog}: error: the current folder no longer exists (deleted?): cd into an existing "
              "folder and run the command again", file=sys.stderr)
        sys.exit(2)
