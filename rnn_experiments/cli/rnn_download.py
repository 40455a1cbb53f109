"""`python -m rnn_experiments.download grimm [--dir DIR] [--url URL] [--no-verify] [--force]` (or
`rnn-download`): fetch a corpus for the text experiments (rnn_experiments/data/corpora.py)."""
from __future__ import annotations

from rnn_experiments.cli.startup import require_cwd, startup_over

require_cwd("rnn-download")   # before torch is imported (cli/startup.py)

import argparse
import sys
from pathlib import Path

from rnn_experiments.data.corpora import DEFAULT_DIR, SOURCES, DownloadError, download, sha256_of


def main(argv=None) -> int:
    startup_over()   # Ctrl-C: KeyboardInterrupt again (cli/startup.py)
    dl = argparse.ArgumentParser(prog="rnn-download", description="Download and verify a corpus "
                                 "for the text experiments.")
    dl.add_argument("name", choices=sorted(SOURCES), help="which corpus")
    dl.add_argument("--dir", default=DEFAULT_DIR, help=f"target folder (default: ./{DEFAULT_DIR})")
    dl.add_argument("--url", default=None, help="fetch from here instead (a mirror, file://...)")
    dl.add_argument("--no-verify", action="store_true", help="keep the file even if its sha256 differs")
    dl.add_argument("--force", action="store_true", help="download again even if a verified copy exists")
    args = dl.parse_args(argv)
    target = Path(args.dir) / SOURCES[args.name].filename
    existed = target.is_file() and not args.force and sha256_of(target.read_bytes()) == SOURCES[args.name].sha256
    try:
        path = download(args.name, args.dir, url=args.url, verify=not args.no_verify, force=args.force)
    except DownloadError as e:
        print(f"download {args.name}: error: {e}", file=sys.stderr)
        return e.exit_status
    except KeyboardInterrupt:   # nothing half-written: the file is moved into place only when whole
        print(f"download {args.name}: interrupted; nothing written", file=sys.stderr)
        return 130
    print(f"{SOURCES[args.name].description}: {path}" + (" (already there)" if existed else ""))
    if args.dir != DEFAULT_DIR:
        print(f"train on it with dataset.path={path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
