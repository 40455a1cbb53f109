"""The corpora the text experiments know (SOURCES): fetch one into a local data folder and
verify its sha256 (the command is rnn_experiments/cli/rnn_download.py).

    python -m rnn_experiments.download grimm              # -> data/grimms_fairy_tales.txt
    python -m rnn_experiments.download grimm --dir /somewhere/else

The file is written atomically (temporary name, then rename) and only after its checksum matches
the edition the project's results were made with; a failed download leaves nothing behind and
prints one line saying why. `--no-verify` keeps a file whose checksum differs (Project Gutenberg
re-issues its eBooks now and then); `--url` fetches from a mirror or a `file://` copy.
"""
from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from rnn_experiments.run.folder import atomic_write

DEFAULT_DIR = "data"  # relative to the current directory; conf/dataset/grimm.yaml reads it there


@dataclass(frozen=True)
class Source:
    url: str
    sha256: str
    filename: str
    description: str


SOURCES = {
    "grimm": Source(
        url="https://www.gutenberg.org/files/2591/2591-0.txt",
        # the November 2016 edition (UTF-8 with BOM, 550,595 bytes) used for the reference report
        sha256="e6439bd511820742e842e21b75e89b394d3809eec82ca56b506c39ff39d4a7d6",
        filename="grimms_fairy_tales.txt",
        description="Grimms' Fairy Tales, Project Gutenberg eBook #2591",
    ),
}


class DownloadError(RuntimeError):
    """One line: what could not be fetched or verified, and why (exit status 1)."""
    exit_status = 1


class BadTarget(DownloadError):
    """The target folder or file cannot take the corpus: the command's input (exit status 2)."""
    exit_status = 2


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


MAX_BYTES = 64 * 2**20   # a corpus is a book (the Grimm book: 550 KB); more is not a corpus


def fetch(url: str, timeout: float = 30.0, max_bytes: int = MAX_BYTES) -> bytes:
    """The bytes at `url`; DownloadError (one line) when it cannot be fetched or is larger than
    `max_bytes` (read in chunks: a stream without end, file:///dev/zero, stops there)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            chunks, size = [], 0
            while chunk := response.read(2**20):
                size += len(chunk)
                if size > max_bytes:
                    raise DownloadError(f"{url}: more than {max_bytes // 2**20} MiB, too large for a "
                                        "corpus; nothing written")
                chunks.append(chunk)
            return b"".join(chunks)
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", e)
        raise DownloadError(f"cannot fetch {url}: {reason} (offline? copy the file by hand "
                            f"and point dataset.path at it)") from None


def download(name: str, directory: str | Path = DEFAULT_DIR, url: str | None = None,
             verify: bool = True, force: bool = False) -> Path:
    """Fetch SOURCES[name] into `directory`; return the file's path. Raises DownloadError."""
    if name not in SOURCES:
        raise DownloadError(f"unknown corpus {name!r}: expected one of {sorted(SOURCES)}")
    src = SOURCES[name]
    path = Path(directory).resolve() / src.filename
    if path.is_dir() or (path.exists() and not path.is_file()):
        raise BadTarget(f"{path} is in the way: a folder or not a regular file (choose another --dir)")
    existing = next((p for p in [path.parent, *path.parent.parents] if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise BadTarget(f"--dir {directory}: {existing} is a file, not a folder")
    if path.exists() and not force and sha256_of(path.read_bytes()) == src.sha256:
        return path  # already there and verified
    data = fetch(url or src.url)
    digest = sha256_of(data)
    if verify and digest != src.sha256:
        raise DownloadError(f"{url or src.url}: sha256 {digest} differs from the expected "
                            f"{src.sha256}; nothing written (use --no-verify to keep it anyway)")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise DownloadError(f"{url or src.url}: the downloaded file is not UTF-8 text; nothing written") from None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "wb") as f:
            f.write(data)
    except OSError as e:  # read-only or full folder, a file in the way, ...
        why = f"cannot write {path}: {e.strerror}; nothing was written" if e.strerror else str(e)
        raise DownloadError(f"{why} (choose another --dir)") from None
    return path
