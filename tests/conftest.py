"""Shared fixtures and constants: compose the REAL config tree under conf/, then shrink it for
fast tests; run the real commands in this process (`run_command`); one tiny real sweep shared by
the tests that only read a sweep (`demo_sweep`). Test modules import from here as
`from conftest import ...`.

Tiers (markers; pyproject.toml's addopts runs the default tier, .ci/run every tier the machine can):
default  everything not marked below: in-process, plus the subprocess tests of the command line
slow     whole scenarios: launchers (joblib, submitit), concurrent and complete searches, signals
         sent to real training processes, sweeps run end to end to test how their jobs fail, the
         bench's data section: python -m pytest -q -m slow (the default tier keeps one real sweep
         end to end, the docs' demo, one small search, the Triton interpreter's checks, and the dry
         runs of every sweep)
wheel    the built wheel installed in a fresh venv: python -m pytest -q -m wheel
slurm    the one-node SLURM cluster of tests/cluster/: python -m pytest -m slurm
gpu      a CUDA device: python -m pytest -q -m gpu (skips without one)

In this process, Hydra's parsed config files are kept between compositions (`_cached_config_files`):
the tests compose the real config a thousand times, and each composition would parse every YAML
file again. A file is read anew whenever its size or modification time changes.
"""
from __future__ import annotations

import contextlib
import importlib
import io
import json
import logging
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from rnn_experiments.config import compose, conf_dir


def _cached_config_files() -> None:
    """Hydra's FileConfigSource.load_config, parsing each config file once per process: later
    loads get a copy of the parsed file (Hydra changes what it loads: it pops `defaults`)."""
    import copy

    from hydra._internal.core_plugins.file_config_source import FileConfigSource
    from hydra.plugins.config_source import ConfigResult

    parse, parsed = FileConfigSource.load_config, {}

    def load_config(self, config_path):
        path = os.path.realpath(os.path.join(self.path, self._normalize_file_name(config_path)))
        try:
            st = os.stat(path)
        except OSError:
            return parse(self, config_path)   # Hydra's own error
        key = (self.path, config_path, st.st_mtime_ns, st.st_size, st.st_ino)
        if key not in parsed:
            parsed[key] = parse(self, config_path)
        done = parsed[key]
        return ConfigResult(config=copy.deepcopy(done.config), path=done.path, provider=done.provider,
                            header=dict(done.header))

    FileConfigSource.load_config = load_config


def _cached_compositions() -> None:
    """Hydra's ConfigLoaderImpl.load_configuration, composing each command line once per process:
    a command composes its config in its preflight and again in Hydra's run, and tests compose
    the same configs over and over. A composition is reused only while every config file of its
    search path (hydra.searchpath included) is unchanged, in the same folder and job name; the
    caller gets a copy (Hydra writes into what it composed)."""
    import copy

    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.utils import JobRuntime

    compose_, composed = ConfigLoaderImpl.load_configuration, {}

    def folders_state(folders):
        state = []
        for folder in folders:
            for d, _, files in sorted(os.walk(folder)):
                for f in sorted(files):
                    with contextlib.suppress(OSError):
                        st = os.stat(os.path.join(d, f))
                        state.append((d, f, st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(state)

    def file_folders(paths):
        return [p.removeprefix("file://") for p in paths if p.startswith("file://") or p.startswith("/")]

    def load_configuration(self, config_name, overrides, run_mode, from_shell=True,
                           validate_sweep_overrides=True):
        job = JobRuntime.instance().get("name")
        searched = [e.path for e in self.config_search_path.get_path() if e.provider != "hydra"]
        key = (config_name, tuple(overrides), run_mode, from_shell, validate_sweep_overrides,
               os.getcwd(), job, tuple(searched))
        hit = composed.get(key)
        if hit is not None and folders_state(hit[1]) == hit[2]:
            return copy.deepcopy(hit[0])
        cfg = compose_(self, config_name, overrides, run_mode, from_shell, validate_sweep_overrides)
        folders = file_folders([str(p) for p in searched] + [str(p) for p in cfg.hydra.get("searchpath", [])])
        composed[key] = (copy.deepcopy(cfg), folders, folders_state(folders))
        return cfg

    ConfigLoaderImpl.load_configuration = load_configuration


_cached_config_files()
_cached_compositions()

# the choices measured on this machine (rnn_experiments/models/kernels/measured.py) go to a cache of
# this test session (shared by its workers and the commands they start), not to the user's
if "RNN_EXPERIMENTS_CACHE" not in os.environ:
    import atexit
    import shutil
    os.environ["RNN_EXPERIMENTS_CACHE"] = tempfile.mkdtemp(prefix="rnn-experiments-cache-")
    atexit.register(shutil.rmtree, os.environ["RNN_EXPERIMENTS_CACHE"], True)

ROOT = Path(__file__).resolve().parent.parent   # the project's root (subprocess tests run commands from here)
CONF_DIR = str(conf_dir())        # the configs the commands load: ROOT/conf in a checkout

# Grimms' Fairy Tales (../shared/data/ beside the project, or a worktree's ../../shared/data/,
# or $RNN_EXPERIMENTS_BOOK); tests that need it skip when it is absent.
BOOK = next((p for p in [Path(os.environ.get("RNN_EXPERIMENTS_BOOK", "/nonexistent")),
                         ROOT / "data/grimms_fairy_tales.txt",
                         ROOT.parent / "shared/data/grimms_fairy_tales.txt",
                         ROOT.parent.parent / "shared/data/grimms_fairy_tales.txt"] if p.is_file()), None)

# Small enough to train in a second or two on 2 CPU cores.
TINY = [
    "model.hidden_size=16",
    "model.embedding_dim=8",
    "train.steps=20",
    "train.batch_size=16",
    "train.log_every=5",
    "train.eval_every=10",
    "train.eval_size=64",
    "train.checkpoint_every=0",
    "device=cpu",
]

# The gradient study's share of TINY: it trains to the last of gradients.steps, so the loop's own
# settings (train.steps, log_every, eval_every, checkpoint_every) are refused there (not used).
STUDY_TINY = [o for o in TINY if o.split("=")[0] not in ("train.steps", "train.log_every", "train.eval_every",
                                                         "train.checkpoint_every")]

REPETITIVE = "the cat sat on the mat. " * 40  # the next character is a function of a few before


GROUPS = {p.name for p in Path(CONF_DIR).iterdir() if p.is_dir()}   # model, dataset, train, ...
_BASES: dict = {}


def compose_config(overrides=(), tiny=True, return_hydra_config=False):
    """The composed config of `python -m rnn_experiments.train <overrides>` (shrunk unless tiny=False).

    As the sweep guard's JobComposer does (rnn_experiments/sweeps/guard.py, tested equal to Hydra's
    composition): the config groups chosen (model=gru, +experiment=demo, ...) are composed by Hydra
    once per process, and overrides that only set values of existing settings are then set on a copy;
    anything else (a new key, ~, a list of groups, a value Hydra would refuse) is composed in full."""
    overrides = (TINY if tiny else []) + list(overrides)
    if return_hydra_config:
        return compose(overrides, return_hydra_config=True)
    cfg = _from_base(overrides)
    return cfg if cfg is not None else compose(overrides)


def _from_base(overrides):
    import copy

    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    group = lambda o: o.lstrip("+~").split("=", 1)[0].split("@")[0].split("/")[0] in GROUPS or o.startswith(("~", "hydra"))
    base, values = [o for o in overrides if group(o)], [o for o in overrides if not group(o)]
    try:
        parsed = OverridesParser.create().parse_overrides(values)
    except Exception:
        return None
    key = tuple(base)
    if key not in _BASES:
        _BASES[key] = compose(base)
    cfg = copy.deepcopy(_BASES[key])
    try:
        for o in parsed:
            leaf = OmegaConf.select(cfg, o.key_or_group, throw_on_missing=False, default="<absent>")
            if o.is_sweep_override() or o.is_delete() or o.is_add() or o.is_force_add() \
                    or leaf == "<absent>" or OmegaConf.is_config(leaf):
                return None
            OmegaConf.update(cfg, o.key_or_group, o.value(), merge=False)
    except Exception:
        return None
    return cfg


def text_overrides(path, *extra):
    """A tiny character model on `path` (added to the TINY overrides)."""
    return ["model=generator", "dataset=text", f"dataset.path={path}", "dataset.seq_length=12",
            "model.num_layers=1", "model.hidden_size=32", "model.embedding_dim=8",
            "train.lr=1e-2", "train.max_norm=5", "train.threads=1", *extra]


@pytest.fixture
def make_cfg():
    """make_cfg("model=peep_lstm", "dataset.seq_length=4") -> a tiny, fully composed config."""
    return lambda *overrides, tiny=True: compose_config(overrides, tiny=tiny)


@pytest.fixture
def tiny_text(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text(REPETITIVE, encoding="utf-8")
    return path


@pytest.fixture
def unwritable_dir(tmp_path):
    """A folder in which nothing can be created: a read-only folder for a normal user; as root,
    who may write anywhere, /sys (read-only to everyone in a container); skipped where none is."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o500)
        yield folder
        folder.chmod(0o700)
        return
    for folder in (Path("/sys/fs"), Path("/sys")):
        try:
            os.rmdir(tempfile.mkdtemp(dir=folder))
        except OSError:
            yield folder
            return
    pytest.skip("no unwritable folder here (root, and /sys is writable)")


# ---- the commands, run in this process --------------------------------------------------------

COMMANDS = {"rnn-train": "rnn_experiments.train", "rnn-analyze": "rnn_experiments.analyze",
            "rnn-generate": "rnn_experiments.generate", "rnn-measure-gradients": "rnn_experiments.measure_gradients",
            "rnn-plot-gradients": "rnn_experiments.plot_gradients", "rnn-download": "rnn_experiments.download",
            "rnn-bench": "rnn_experiments.bench"}


@dataclass
class Result:
    code: int      # the exit status the command would have
    out: str       # what it printed to stdout
    err: str       # ... and to stderr


def run_command(prog: str, *args, cwd=None) -> Result:
    """`prog args` as the installed command runs it (its `main()`, with sys.argv), in this process:
    the exit status, stdout and stderr. Afterwards the process is as before: environment, current
    folder, logging handlers (Hydra configures its own per run) and Hydra's global state."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    module = importlib.import_module(COMMANDS[prog])
    argv, env, here = sys.argv, dict(os.environ), os.getcwd()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    out, err = io.StringIO(), io.StringIO()
    sys.argv = [prog, *map(str, args)]
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = module.main(list(map(str, args))) if prog in ARGPARSE else module.main()
            except SystemExit as e:
                code = e.code
        code = 0 if code is None else code if isinstance(code, int) else 1
    finally:
        sys.argv = argv
        os.chdir(here)
        os.environ.clear()
        os.environ.update(env)
        for h in root.handlers:
            if h not in handlers:
                with contextlib.suppress(Exception):
                    h.close()
        root.handlers[:] = handlers
        root.setLevel(level)
        HydraConfig.instance().cfg = None
        GlobalHydra.instance().clear()
    return Result(code, out.getvalue(), err.getvalue())


ARGPARSE = ("rnn-analyze", "rnn-plot-gradients", "rnn-download", "rnn-bench")   # main(argv) -> status


@pytest.fixture(scope="session")
def demo_sweep(tmp_path_factory):
    """One real sweep for the tests that only read one (all in tests/test_docs.py, so that it is
    made once per test run): the README's demo command (the demo preset: 2 models x 2 seeds, its
    analysis callback compares model.name), shrunk as the doc tests shrink every training
    command (doc_commands.SHRINK: a tiny model, 20 steps each). Returns (sweep folder, Result)."""
    from doc_commands import run_shared_sweep
    sweep = tmp_path_factory.mktemp("demo") / "sweep"
    result = run_shared_sweep(sweep)
    assert result.code == 0, result.err[-3000:]
    return sweep, result


# ---- waiting on subprocess runs (launcher and signal tests) ----------------------------------

def summary_of(run_dir) -> dict:
    """A run folder's summary.json."""
    return json.loads((Path(run_dir) / "summary.json").read_text())


def has_rows(run, n: int = 2) -> bool:
    """Whether a run's metrics.csv holds more than `n` lines (its header and n-1 rows)."""
    try:
        return len((Path(run) / "metrics.csv").read_text().splitlines()) > n
    except FileNotFoundError:
        return False


def wait_for(predicate, proc, timeout=120):
    """Poll `predicate` until it holds; AssertionError with the output if `proc` ends first."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        time.sleep(0.05)
    raise TimeoutError


# Files whose tests share a module- or session-scoped fixture (a real sweep, a reference run, the
# wheel): each goes to one worker whole (xdist_group, under --dist loadgroup) so that the fixture is
# built once; every other test goes to whichever worker is free.
SHARED_FIXTURE_FILES = ("test_triton_cells.py", "test_docs.py", "test_reliability.py", "test_run_folder.py",
                        "test_packaging.py")


@pytest.hookimpl(wrapper=True)   # before every plain implementation: xdist's reads the groups
def pytest_collection_modifyitems(session, config, items):
    """The files of SHARED_FIXTURE_FILES first (the doc tests are the longest unit of work), each
    as one group; then the rest in collection order, spread test by test. Where xdist's grouping
    does not take (it marks a group in the node id), the run stops here with one line."""
    for item in items:
        if item.path.name in SHARED_FIXTURE_FILES:
            item.add_marker(pytest.mark.xdist_group(item.path.name))
    items.sort(key=lambda item: item.path.name not in SHARED_FIXTURE_FILES)   # stable
    return (yield)


def pytest_xdist_node_collection_finished(node, ids):
    """Nothing silent: where xdist's grouping did not take (it marks the group in the node id), a
    file of SHARED_FIXTURE_FILES would be split across workers and fail in odd ways; stop instead."""
    loose = [i for i in ids if i.split("::")[0].rsplit("/", 1)[-1] in SHARED_FIXTURE_FILES and "@" not in i]
    if node.config.getvalue("dist") == "loadgroup" and loose:
        pytest.exit(f"--dist loadgroup did not group {loose[0]} (pytest-xdist#1386: pytest >= 9.2 with "
                    "xdist <= 3.8; pyproject.toml pins pytest below 9.2)", returncode=4)
