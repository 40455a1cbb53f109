"""summary.json says what made the run: git commit and dirty flag, package versions, command line;
train.deterministic turns on torch's deterministic algorithms and says so."""
import json
import shutil
import subprocess
import sys

import hydra
import numpy
import omegaconf
import pytest
import torch

from conftest import ROOT
from rnn_experiments.run.provenance import COMMAND_ENV, git_state
from rnn_experiments.training.loop import train
from rnn_experiments.run.metrics import TIMING_COLUMNS, read_metrics


def git(*args):
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)


in_checkout = shutil.which("git") is not None and git("ls-files", "--error-unmatch", "rnn_experiments/config.py").returncode == 0


@pytest.fixture
def deterministic_restored():
    before = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(before)


def test_summary_records_versions_and_command(make_cfg, tmp_path, monkeypatch):
    monkeypatch.delenv(COMMAND_ENV, raising=False)
    summary = train(make_cfg(), tmp_path)
    v = summary["versions"]
    assert (v["torch"], v["numpy"], v["hydra-core"], v["omegaconf"]) == \
        (torch.__version__, numpy.__version__, hydra.__version__, omegaconf.__version__)
    assert "rnn-experiments" in v and v["python"].startswith(f"{sys.version_info.major}.{sys.version_info.minor}")
    assert summary["command"] and summary["deterministic"] is False
    assert json.loads((tmp_path / "summary.json").read_text())["versions"] == v


@pytest.mark.skipif(not in_checkout, reason="not run from a git checkout")
def test_summary_records_the_git_commit_and_dirty_flag(make_cfg, tmp_path):
    git_state.cache_clear()   # read once per process: an earlier test in this worker may predate an edit
    summary = train(make_cfg(), tmp_path)
    assert summary["git"] == {"commit": git("rev-parse", "HEAD").stdout.strip(),
                              "dirty": bool(git("status", "--porcelain", "--untracked-files=no").stdout.strip())}
    assert summary["git"] == git_state()


def test_deterministic_run_says_so_and_reproduces(make_cfg, tmp_path, deterministic_restored):
    a = train(make_cfg("train.deterministic=true"), tmp_path / "a")
    assert a["deterministic"] is True and torch.are_deterministic_algorithms_enabled()
    b = train(make_cfg("train.deterministic=true"), tmp_path / "b")
    assert b["deterministic"] is True
    metrics = [read_metrics(tmp_path / r / "metrics.csv").drop(columns=TIMING_COLUMNS) for r in "ab"]
    assert metrics[0].equals(metrics[1])
    c = train(make_cfg(), tmp_path / "c")   # the next run (e.g. of the same sweep) sets its own
    assert c["deterministic"] is False and not torch.are_deterministic_algorithms_enabled()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_dirty_flag_follows_tracked_changes_only(tmp_path):
    """git_state() on a checkout of its own: clean, then a tracked file edited (dirty), while an
    untracked file (outputs/) never counts."""
    import importlib.util
    import rnn_experiments.run.provenance as real
    repo = tmp_path / "checkout"
    (repo / "rnn_experiments" / "run").mkdir(parents=True)
    shutil.copy(real.__file__, repo / "rnn_experiments" / "run" / "provenance.py")
    (repo / "rnn_experiments" / "config.py").write_text("X = 1\n")

    def run_git(*args):
        done = subprocess.run(["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t", *args],
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def state():   # a fresh module each time: git_state() caches its answer per process
        spec = importlib.util.spec_from_file_location(f"prov_{len(seen)}", repo / "rnn_experiments" / "run" / "provenance.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        seen.append(module)
        return module.git_state()

    seen = []
    run_git("init", "-q")
    run_git("add", ".")
    run_git("commit", "-q", "-m", "first")
    head = run_git("rev-parse", "HEAD")
    assert state() == {"commit": head, "dirty": False}
    (repo / "outputs").mkdir()
    (repo / "outputs" / "metrics.csv").write_text("step\n")     # untracked: still clean
    assert state() == {"commit": head, "dirty": False}
    (repo / "rnn_experiments" / "config.py").write_text("X = 2\n")   # tracked and changed
    assert state() == {"commit": head, "dirty": True}
    run_git("commit", "-q", "-am", "second")
    assert state() == {"commit": run_git("rev-parse", "HEAD"), "dirty": False} and run_git("rev-parse", "HEAD") != head


def test_deterministic_mode_is_set_only_to_change_it_and_never_left_warn_only(monkeypatch, deterministic_restored):
    """torch.use_deterministic_algorithms is called when the state differs (its first call
    imports torch._inductor, a second per process) or when warn-only mode would survive."""
    from rnn_experiments.training.setup import use_deterministic_algorithms
    real, calls = torch.use_deterministic_algorithms, []
    monkeypatch.setattr(torch, "use_deterministic_algorithms", lambda on, **kw: (calls.append(on), real(on, **kw)))
    real(False)
    use_deterministic_algorithms(False, torch.device("cpu"))
    assert calls == []                                        # already off: not called
    use_deterministic_algorithms(True, torch.device("cpu"))
    assert calls == [True] and torch.are_deterministic_algorithms_enabled()
    real(True, warn_only=True)
    use_deterministic_algorithms(True, torch.device("cpu"))   # on, but only warning: made strict
    assert calls == [True, True] and not torch.is_deterministic_algorithms_warn_only_enabled()
    use_deterministic_algorithms(False, torch.device("cpu"))
    assert calls == [True, True, False] and not torch.are_deterministic_algorithms_enabled()
