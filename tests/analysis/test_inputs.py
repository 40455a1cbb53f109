"""The analysis's inputs one by one: PATH arguments that name nothing usable, a config that is
YAML but not settings, summaries of runs whose process is gone or on another host, --where
items that cannot select, and the bounded readers' refusals. Each is a one-line AnalysisError or
ReadError naming the path or option, or a run status that says what is known."""
from __future__ import annotations

import importlib
import json
import os
import socket
import subprocess
import sys

import pytest

from rnn_experiments.analysis import AnalysisError, collect, find_runs
from rnn_experiments.run.readers import ReadError, read_bytes, read_yaml
from rnn_experiments.analysis.report import analyze
from rnn_experiments.analysis.synthetic import config, metrics_frame, write_run

collect_mod = importlib.import_module("rnn_experiments.analysis.collect")


def _runs(root, seeds=(0, 1)):
    return [write_run(root / str(s), config(seed=s), metrics_frame([10, 20], [0.5, 1.0]), wall_time_s=1.0)
            for s in seeds]


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_paths_that_name_no_run_folder_are_one_line(tmp_path):
    (tmp_path / "file.txt").write_text("x")
    for paths, message in [([], "no PATH given (expected a multirun folder, a run folder or a glob)"),
                           ([tmp_path / "file.txt"], f"{tmp_path / 'file.txt'}: not a folder"),
                           ([tmp_path / "nope"], f"{tmp_path / 'nope'}: no such folder"),
                           ([str(tmp_path / "x*")], f"{tmp_path / 'x*'}: the pattern matches nothing"),
                           ([tmp_path], f"{tmp_path}: no run folders found")]:
        with pytest.raises(AnalysisError) as e:
            find_runs(paths)
        assert str(e.value).startswith(message) and "\n" not in str(e.value)
    _runs(tmp_path / "sweep")
    assert len(find_runs([str(tmp_path / "*")])) == 2   # a glob matching a file and a folder: the file is passed over


def test_a_config_that_is_yaml_but_not_settings_is_listed_not_used(tmp_path):
    a, b = _runs(tmp_path)
    (b / ".hydra" / "config.yaml").write_text("- just\n- a list\n")
    df = collect(tmp_path)
    problems = df.drop_duplicates("run_dir").set_index("run_dir")["problem"]
    assert problems[str(b)] == ".hydra/config.yaml unreadable (not a mapping of settings)"
    assert problems[str(a)] == ""


def test_a_running_summary_is_running_or_crashed_by_its_process(tmp_path):
    runs = _runs(tmp_path, seeds=(0, 1, 2))
    here = socket.gethostname()
    for run, who in zip(runs, [{"pid": os.getpid(), "host": here},        # alive: running
                               {"pid": _dead_pid(), "host": here},        # gone: crashed
                               {"pid": 1, "host": "another-node"}]):      # cannot tell: trust it
        s = json.loads((run / "summary.json").read_text())
        s = {k: v for k, v in s.items() if k != "heartbeat_s"}          # a run of the older kind
        (run / "summary.json").write_text(json.dumps({**s, "status": "running", **who}))
    status = collect(tmp_path).drop_duplicates("run_dir").set_index("run_dir")["status"]
    assert [status[str(r)] for r in runs] == ["running", "crashed", "running"]


def test_reading_many_megabytes_says_so_first(tmp_path, monkeypatch):
    _runs(tmp_path)
    monkeypatch.setattr(collect_mod, "PROGRESS_BYTES", 0)
    heard = []
    collect(tmp_path, progress=heard.append)
    assert heard[0].startswith("reading 2 run folder(s), ") and heard[0].endswith("MB of metrics.csv")


@pytest.mark.parametrize("item, message", [
    ("model.name", "--where 'model.name': expected KEY=VALUE"),
    ("=lstm", "--where '=lstm': expected KEY=VALUE"),
    ("model.nope=1", "--where: 'model.nope' is not a config key of these runs"),
    ("model.name=[gru", "--where model.name=[gru: no run has model.name=[gru (values: lstm)"),
])
def test_a_where_that_cannot_select_is_one_line_and_writes_nothing(tmp_path, item, message):
    _runs(tmp_path / "sweep")
    with pytest.raises(AnalysisError) as e:
        analyze([tmp_path / "sweep"], out=tmp_path / "out", where=[item], echo=lambda *_: None)
    assert str(e.value).startswith(message) and not (tmp_path / "out").exists()


def test_the_readers_refuse_what_is_not_a_small_regular_file(tmp_path):
    (tmp_path / "link").symlink_to(tmp_path / "gone")
    with pytest.raises(ReadError, match=r"link: a broken symbolic link$"):
        read_bytes(tmp_path / "link")
    (tmp_path / "big").write_bytes(b"x" * 100)
    with pytest.raises(ReadError, match=r"big: 100 bytes, more than the 10 this reader accepts$"):
        read_bytes(tmp_path / "big", limit=10)
    (tmp_path / "deep.yaml").write_text("[" * 5000 + "]" * 5000)
    with pytest.raises(ReadError, match=r"deep.yaml: (nested too deeply|not YAML)"):
        read_yaml(tmp_path / "deep.yaml")
    (tmp_path / "empty.yaml").write_text("")
    assert read_yaml(tmp_path / "empty.yaml") is None
    with pytest.raises(FileNotFoundError):
        read_bytes(tmp_path / "missing")
