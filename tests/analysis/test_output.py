"""Check, then write: every option of rnn-analyze is checked before a byte is written, the output
is moved into place only when all of it was made (a failure leaves the previous analysis as it
was), odd --out paths are refused, only the analysis's own files are ever removed; --keep-runs
keeps the run folders (no checkpoints) so that a table can be re-analysed without re-training;
long analyses say how far they are."""
from __future__ import annotations

import hashlib
import os

import pandas as pd
import pytest

import sys

import rnn_experiments.analysis.report as report
from rnn_experiments.analysis.synthetic import config, metrics_frame, write_run
from rnn_experiments.cli.rnn_analyze import main

STEPS = [10, 20, 30, 40]


def _sweep(root, seeds=range(3)):
    for num, (m, s) in enumerate((m, s) for m in ("lstm", "peep_lstm") for s in seeds):
        acc = [0.5, 0.6 + 0.05 * s, 0.8 + 0.02 * s + 0.03 * (m == "peep_lstm"), 0.95 + 0.01 * s]
        write_run(root / str(num), config(**{"model.name": m, "seed": s}), metrics_frame(STEPS, acc),
                  wall_time_s=10.0 + s)
        (root / str(num) / "checkpoint.pt").write_bytes(b"weights")   # never kept
    return root


def _digest(folder) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


ARGS = ["--formats", "png", "--metrics", "accuracy"]


@pytest.fixture
def analysed(tmp_path):
    sweep = _sweep(tmp_path / "sweep")
    out = tmp_path / "out"
    assert main([str(sweep), "--out", str(out), "--compare", "model.name", *ARGS]) == 0
    return sweep, out


@pytest.mark.parametrize("flags, message", [
    (["--panels", "model.nme"], "--panels: 'model.nme' must be one of the group keys"),
    (["--style", "seed"], "--style: 'seed' must be one of the group keys"),
    (["--metrics", "accuracy,nope"], "--metrics: 'nope' is not a column of metrics.csv"),
    (["--threshold-metric", "nope"], "--threshold-metric: 'nope' is not a column of metrics.csv"),
    (["--where", "model.nme=lstm"], "--where: 'model.nme' is not a config key"),
    (["--where", "model.name=gru"], "--where model.name=gru: no run has model.name=gru (values: lstm, peep_lstm)"),
    (["--compare", "dataset.seq_length"], "--compare: 'dataset.seq_length' has only one value"),
])
def test_a_bad_option_leaves_the_previous_analysis_as_it_was(analysed, capsys, flags, message):
    sweep, out = analysed
    before = _digest(out)
    capsys.readouterr()
    assert main([str(sweep), "--out", str(out), *ARGS, *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"rnn-analyze: error: {message}") and err.count("\n") == 1
    assert _digest(out) == before


def test_a_failure_while_writing_leaves_the_previous_analysis_and_no_temporary_files(analysed, capsys, monkeypatch):
    sweep, out = analysed
    before = _digest(out)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(report, "save_figure", full_disk)
    assert main([str(sweep), "--out", str(out), *ARGS]) == 2
    assert "No space left on device" in capsys.readouterr().err
    assert _digest(out) == before and not [p for p in out.iterdir() if p.name.startswith(".rnn-analyze-")]
    # a new folder that failed is removed again
    assert main([str(sweep), "--out", str(out.parent / "new"), *ARGS]) == 2
    assert not (out.parent / "new").exists()


@pytest.mark.parametrize("make_out, message", [
    (lambda d: "", "--out '': an empty path, expected a folder"),
    (lambda d: (d / "file").write_text("mine") and d / "file", "a file, expected a folder"),
    (lambda d: os.mkfifo(d / "fifo") or d / "fifo", "not a file or folder (a FIFO or device), expected a folder"),
    (lambda d: "/dev/null", "--out /dev/null: not a file or folder"),
    (lambda d: (d / "loop").symlink_to("loop") or d / "loop", "Too many levels of symbolic links"),
    (lambda d: d / "sweep" / "0", "a run folder; the analysis never writes into one"),
])
def test_odd_out_paths_are_refused_before_anything_is_read_or_written(tmp_path, capsys, monkeypatch,
                                                                      make_out, message):
    sweep = _sweep(tmp_path / "sweep")
    monkeypatch.chdir(tmp_path)
    out = make_out(tmp_path)
    before = _digest(tmp_path)
    assert main([str(sweep), "--out", str(out), *ARGS]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert _digest(tmp_path) == before and not (sweep / "analysis").exists()


def test_only_the_analysis_own_stale_files_are_removed(analysed):
    sweep, out = analysed
    (out / "notes.md").write_text("the user's")
    assert (out / "compare.md").is_file()
    assert main([str(sweep), "--out", str(out), *ARGS]) == 0        # no --compare this time
    assert not (out / "compare.md").exists() and not (out / "compare.csv").exists()
    assert (out / "notes.md").read_text() == "the user's" and (out / "summary.md").is_file()


@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
def test_keep_runs_copies_what_a_re_analysis_needs_and_gives_the_same_tables(analysed, tmp_path):
    sweep, _ = analysed
    kept = tmp_path / "docs" / "results" / "study"
    assert main([str(sweep), "--out", str(kept), "--compare", "model.name", "--keep-runs", *ARGS]) == 0
    runs = kept / "runs"
    assert sorted(p.name for p in runs.iterdir()) == [str(i) for i in range(6)]
    assert sorted(str(p.relative_to(runs / "0")) for p in (runs / "0").rglob("*") if p.is_file()) == \
        [".hydra/config.yaml", ".hydra/overrides.yaml", "metrics.csv", "summary.json"]    # no checkpoint
    assert (runs / "3" / "metrics.csv").read_bytes() == (sweep / "3" / "metrics.csv").read_bytes()

    again = tmp_path / "again"
    assert main([str(runs), "--out", str(again), "--compare", "model.name", *ARGS]) == 0
    for name in ("summary.csv", "compare.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(kept / name), pd.read_csv(again / name))
    assert (kept / "compare.md").read_text() == (again / "compare.md").read_text()
    # re-analysing into the same folder keeps runs/ (not stale: only --keep-runs replaces it)
    assert main([str(runs), "--out", str(kept), "--compare", "model.name", *ARGS]) == 0
    assert (runs / "0" / "metrics.csv").is_file()
    assert main([str(sweep), "--out", str(kept), "--keep-runs", *ARGS]) == 0      # replaced, still 6
    assert len(list(runs.iterdir())) == 6


@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
def test_keep_runs_refuses_to_replace_what_it_did_not_write(analysed, tmp_path, capsys):
    sweep, _ = analysed
    foreign = tmp_path / "foreign"
    (foreign / "runs").mkdir(parents=True)
    (foreign / "runs" / "mine.txt").write_text("x")
    assert main([str(sweep), "--out", str(foreign), "--keep-runs", *ARGS]) == 2
    assert "--keep-runs: " in capsys.readouterr().err and (foreign / "runs" / "mine.txt").is_file()
    kept = tmp_path / "kept"
    assert main([str(sweep), "--out", str(kept), "--keep-runs", *ARGS]) == 0
    assert main([str(kept / "runs"), "--out", str(kept), "--keep-runs", *ARGS]) == 2
    assert "is already under" in capsys.readouterr().err


def test_long_analyses_say_how_far_they_are(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sys.modules["rnn_experiments.analysis.collect"], "PROGRESS_S", 0.0)
    sweep = _sweep(tmp_path / "sweep")
    assert main([str(sweep), "--out", str(tmp_path / "out"), "--formats", "png",
                 "--metrics", "accuracy,loss"]) == 0
    out = capsys.readouterr().out
    assert "reading run folders: 5 of 6 read (" in out and "plotting: 1 of 2 metrics drawn (" in out
