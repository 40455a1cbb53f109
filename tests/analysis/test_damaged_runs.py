"""The analysis of a sweep with damaged runs: each is listed by folder with its cause, the rest
are analysed as usual; with no usable run at all, the list, rerun.sh and one error line. Dead
runs on another host are found by their heartbeat (run.lock)."""
from __future__ import annotations

import json
import os
import socket
import time

import pytest

from rnn_experiments.analysis import collect
from rnn_experiments.analysis.report import analyze
from rnn_experiments.analysis.synthetic import config, metrics_frame, write_run
from rnn_experiments.cli.rnn_analyze import main
from rnn_experiments.run.lock import LOCK, STALE_AFTER_S

STEPS = [10, 20, 30, 40]
HEADER = "step,loss,accuracy,eval_accuracy,lr,examples_per_s,elapsed_s\n"


def good(root, n=2):
    for s in range(n):
        write_run(root / str(s), config(seed=s), metrics_frame(STEPS, [0.5, 0.7, 0.9, 1.0]))


def damage(root):
    """Runs 2..6 of a sweep, each damaged another way; returns {folder: expected cause}."""
    causes = {}
    write_run(root / "2", config(seed=2), None, status="diverged")
    (root / "2" / "metrics.csv").write_text(HEADER)
    summary = json.loads((root / "2" / "summary.json").read_text())
    (root / "2" / "summary.json").write_text(json.dumps({**summary, "diverged_at_step": 2}))
    causes["2"] = "diverged at step 2, before its first metrics row"
    write_run(root / "3", config(seed=3), None, status="completed")
    (root / "3" / "metrics.csv").write_text(HEADER)
    causes["3"] = "metrics.csv has no rows yet"
    write_run(root / "4", config(seed=4), None, status="completed")
    (root / "4" / "metrics.csv").write_text("this is not,a table\nat all\n,,,,\n")
    causes["4"] = "not a readable metrics table"
    write_run(root / "5", config(seed=5), None, status="completed")
    (root / "5" / "metrics.csv").write_bytes(os.urandom(64) + b"\xff\n")
    causes["5"] = "codec can't decode"
    write_run(root / "6", config(seed=6), metrics_frame(STEPS, [0.5, 0.6, 0.7, 0.8]))
    (root / "6" / ".hydra" / "config.yaml").write_text("{ not: [yaml")
    causes["6"] = ".hydra/config.yaml unreadable"
    return causes


@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
def test_damaged_runs_are_listed_and_the_rest_analysed(tmp_path):
    good(tmp_path)
    causes = damage(tmp_path)
    lines = []
    result = analyze([str(tmp_path)], formats=("png",), echo=lines.append)
    text = "\n".join(lines)
    for folder, cause in causes.items():
        line = next(x for x in lines if x.startswith(f"  {tmp_path / folder}: "))
        assert cause in line, (folder, line)
    assert "groups by: (one group)" in text                 # not by ~every key of the broken config
    assert "1 without a readable config left out" in text
    t = result["table"]
    assert len(t) == 1 and t["seeds"].iloc[0] == 2 and t["runs"].iloc[0] == 6
    rerun = (tmp_path / "analysis" / "rerun.sh").read_text()
    for folder in ("2", "3", "4", "5"):
        assert f"hydra.run.dir={tmp_path / folder}" in rerun


def test_no_usable_run_says_why_per_run_and_writes_rerun_sh(tmp_path, capsys):
    write_run(tmp_path / "0", config(seed=0), None, status="diverged")
    (tmp_path / "0" / "metrics.csv").write_text(HEADER)
    assert main([str(tmp_path)]) == 2
    out, err = capsys.readouterr()
    assert f"{tmp_path / '0'}: diverged at step ?, before its first metrics row" in out
    assert err == f"rnn-analyze: error: no run under {tmp_path} has usable metrics (1 run(s), their problems listed above)\n"
    assert f"hydra.run.dir={tmp_path / '0'}" in (tmp_path / "analysis" / "rerun.sh").read_text()


def test_run_without_overrides_gets_no_made_up_command(tmp_path):
    good(tmp_path)
    write_run(tmp_path / "2", config(seed=2), None, status="failed")
    (tmp_path / "2" / ".hydra" / "overrides.yaml").unlink()
    analyze([str(tmp_path)], formats=("png",), echo=lambda *a: None)
    rerun = (tmp_path / "analysis" / "rerun.sh").read_text()
    assert "no readable .hydra/overrides.yaml, so no command" in rerun
    assert f"hydra.run.dir={tmp_path / '2'}" not in rerun


@pytest.mark.parametrize("flags, message", [
    (["--threshold", "nan"], "--threshold nan: expected a finite number"),
    (["--max-step", "-1"], "--max-step -1: expected a step >= 0"),
    (["--formats", "png,xyz"], "--formats: 'xyz' is not a figure format"),
])
def test_bad_flags_are_refused_before_anything_is_written(tmp_path, capsys, flags, message):
    good(tmp_path)
    assert main([str(tmp_path), *flags]) == 2
    assert capsys.readouterr().err.startswith(f"rnn-analyze: error: {message}")
    assert not (tmp_path / "analysis").exists()


def test_unwritable_out_is_one_line(tmp_path, capsys, unwritable_dir):
    good(tmp_path)
    assert main([str(tmp_path), "--out", str(unwritable_dir / "a")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rnn-analyze: error: cannot write the analysis: ") and err.count("\n") == 1


def running(root, host, lock_age=None):
    write_run(root, config(seed=0), metrics_frame(STEPS[:2], [0.5, 0.6]), status="running")
    s = json.loads((root / "summary.json").read_text())
    (root / "summary.json").write_text(json.dumps({**s, "pid": 4242, "host": host, "heartbeat_s": 30.0}))
    if lock_age is not None:
        (root / LOCK).write_text(json.dumps({"pid": 4242, "host": host}))
        os.utime(root / LOCK, (time.time() - lock_age, time.time() - lock_age))


def test_a_run_on_another_host_is_crashed_once_its_heartbeat_stops(tmp_path):
    running(tmp_path / "alive", "node-3", lock_age=20)
    running(tmp_path / "gone", "node-3", lock_age=STALE_AFTER_S + 60)   # killed by the OOM killer
    running(tmp_path / "nolock", socket.gethostname())                   # the lock is gone
    df = collect(tmp_path).drop_duplicates("run_dir").set_index("run_dir")["status"]
    assert df[str(tmp_path / "alive")] == "running"
    assert df[str(tmp_path / "gone")] == "crashed" and df[str(tmp_path / "nolock")] == "crashed"
