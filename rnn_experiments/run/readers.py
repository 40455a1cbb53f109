"""Reading the files of a run folder with bounded cost: regular files only (a FIFO, a device such
as /dev/urandom, a symlink loop or a folder is refused without being read), YAML capped by size
and by its size once aliases are expanded (an alias bomb is refused before it is built).

Every refusal is a ReadError (ValueError): one line naming the file and what is wrong with it.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

import yaml

try:  # libyaml's C loader: ~10x faster than the pure-Python one on 1,000 configs
    _Loader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _Loader = yaml.SafeLoader

MAX_YAML_BYTES = 4 << 20       # Hydra's config.yaml is a few KiB, a sweep's multirun.yaml tens
MAX_YAML_NODES = 100_000       # values after expanding aliases (a config has a few hundred)


class ReadError(ValueError):
    """A run-folder file that cannot be read as what it should be (one line naming it)."""


_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder"}


def _describe(mode: int) -> str:
    return _KINDS.get(stat.S_IFMT(mode), "not a regular file")


def read_bytes(path, limit: int | None = None) -> bytes:
    """The bytes of a regular file (symlinks followed). Opened without blocking, then checked:
    a FIFO or device is never read. FileNotFoundError if it does not exist; ReadError for
    anything else that is not a regular file (or larger than `limit` bytes) or cannot be read."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        if os.path.islink(path):
            raise ReadError(f"{path}: a broken symbolic link") from None
        raise
    except OSError as e:
        raise ReadError(f"{path}: cannot be opened ({e.strerror or type(e).__name__})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ReadError(f"{path}: {_describe(st.st_mode)}, not a regular file")
        if limit is not None and st.st_size > limit:
            raise ReadError(f"{path}: {st.st_size:,} bytes, more than the {limit:,} this reader accepts")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=True) as f:
            fd = -1
            data = f.read() if limit is None else f.read(limit + 1)
        if limit is not None and len(data) > limit:   # grew since fstat
            raise ReadError(f"{path}: more than the {limit:,} bytes this reader accepts")
        return data
    except OSError as e:
        raise ReadError(f"{path}: cannot be read ({e.strerror or type(e).__name__})") from None
    finally:
        if fd >= 0:
            os.close(fd)


def read_text(path, limit: int | None = None) -> str:
    """`read_bytes` decoded as UTF-8 (ReadError naming the file if it is not UTF-8)."""
    try:
        return read_bytes(path, limit).decode("utf-8")
    except UnicodeDecodeError as e:
        raise ReadError(f"{path}: not UTF-8 text ({e})") from None


def _expanded_size(node, memo: dict, active: set) -> int:
    """The number of values `node` stands for once every alias is expanded (shared nodes are
    counted each time they are used, but computed once). ReadError for an alias that refers to
    itself (a recursive structure no config holds)."""
    key = id(node)
    if key in memo:
        return memo[key]
    if key in active:
        raise ReadError("a recursive alias")
    active.add(key)
    if isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo, active) + _expanded_size(v, memo, active) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(v, memo, active) for v in node.value)
    else:
        size = 1
    active.discard(key)
    memo[key] = size
    return size


def read_yaml(path, max_nodes: int = MAX_YAML_NODES):
    """A YAML file's content (safe loader). ReadError naming the file when it is not a regular
    file, larger than MAX_YAML_BYTES, not YAML, or more than `max_nodes` values once its aliases
    are expanded (measured on the parsed node graph, before any value is built)."""
    text = read_text(path, MAX_YAML_BYTES)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        try:
            size = _expanded_size(node, {}, set())
        except RecursionError:
            raise ReadError(f"{path}: nested too deeply") from None
        except ReadError as e:
            raise ReadError(f"{path}: {e}") from None
        if size > max_nodes:
            raise ReadError(f"{path}: {size:,} values once its aliases are expanded, more than "
                            f"{max_nodes:,} (an alias bomb?)")
        return loader.construct_document(node)
    except yaml.YAMLError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ReadError(f"{path}: not YAML ({first})") from None
    finally:
        loader.dispose()
