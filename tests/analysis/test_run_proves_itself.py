"""A run folder proves itself: summary.json records what metrics.csv must be when the run ends
(rows, last step, sha256), and the analysis leaves out, naming the cause, a run whose file is not
that file (cut mid-row, a row appended), whose steps do not increase, or with a value outside its
metric's range — also in folders without a record. The same command run again on a completed
run leaves its record as it was."""
from __future__ import annotations

import json

import pytest

from rnn_experiments.analysis import collect, table
from rnn_experiments.run.metrics import record_of
from rnn_experiments.training.loop import train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from conftest import compose_config
    root = tmp_path_factory.mktemp("two_seeds")
    for seed in (0, 1):
        train(compose_config([f"seed={seed}"]), root / str(seed))
    return root


@pytest.fixture
def two_seeds(trained, tmp_path):
    """Two tiny runs (trained once per worker), copied for each test to damage."""
    import shutil
    shutil.copytree(trained, tmp_path / "S")
    return tmp_path / "S"


def problem_of(sweep, run="1") -> str:
    df = collect(sweep)
    return df.drop_duplicates("run_dir").set_index("run_dir").loc[str(sweep / run), "problem"]


def test_the_record_is_the_file(two_seeds):
    summary = json.loads((two_seeds / "0" / "summary.json").read_text())
    lines = (two_seeds / "0" / "metrics.csv").read_text().splitlines()
    assert summary["metrics_csv"] == record_of(two_seeds / "0" / "metrics.csv")
    assert summary["metrics_csv"]["rows"] == len(lines) - 1 == 4          # 20 steps, a row every 5
    assert summary["metrics_csv"]["last_step"] == 20
    assert table(collect(two_seeds))["seeds"].tolist() == [2]


@pytest.mark.parametrize("damage, says", [
    (lambda text: text[: text.rindex("\n", 0, len(text) - 1) + 12], "not the file the run wrote (summary.json: "
                                                                     "4 rows to step 20; the file: 4 rows to step 20)"),
    (lambda text: text.rsplit("\n", 2)[0] + "\n", "the file: 3 rows to step 15"),        # the last row gone
    (lambda text: text + "1,0.1,3.0,,,,0.01,1.0,1.0\n", "the file: 5 rows to step 1"),   # a stray row
])
def test_a_file_that_is_not_the_one_the_run_wrote_is_left_out_by_name(two_seeds, damage, says):
    path = two_seeds / "1" / "metrics.csv"
    path.write_text(damage(path.read_text()))
    assert says in problem_of(two_seeds)
    assert table(collect(two_seeds))["seeds"].tolist() == [1]              # the other seed only


@pytest.mark.parametrize("damage, says", [
    (lambda text: text + "1,0.1,0.5,,,,0.01,1.0,1.0\n", "step 1 after step 20 (row 5): rows out of order"),
    (lambda text: text + "25,0.1,3.0,,,,0.01,1.0,1.0\n", "accuracy is 3 at step 25, outside its range [0, 1]"),
    (lambda text: text.replace("\n5,", "\n99,", 1), "step 10 after step 99 (row 2)"),
])
def test_without_a_record_steps_and_ranges_are_checked(two_seeds, damage, says):
    summary = json.loads((two_seeds / "1" / "summary.json").read_text())
    del summary["metrics_csv"]                                         # a folder of an earlier release
    (two_seeds / "1" / "summary.json").write_text(json.dumps(summary))
    path = two_seeds / "1" / "metrics.csv"
    path.write_text(damage(path.read_text()))
    assert says in problem_of(two_seeds)


def test_the_same_command_again_keeps_a_completed_runs_record(make_cfg, tmp_path):
    cfg = make_cfg("train.checkpoint_every=10")
    train(cfg, tmp_path)
    before = {f: (tmp_path / f).read_bytes() for f in ("summary.json", "metrics.csv")}
    again = train(make_cfg("train.checkpoint_every=10"), tmp_path)
    assert again["status"] == "completed" and "resumed_from_step" not in again
    assert {f: (tmp_path / f).read_bytes() for f in before} == before


def test_the_analysis_never_writes_inside_a_run_folder(two_seeds):
    from rnn_experiments.analysis import AnalysisError
    from rnn_experiments.analysis.report import analyze
    with pytest.raises(AnalysisError, match=f"--out {two_seeds / '0' / 'an'}: inside the run folder {two_seeds / '0'}"):
        analyze([str(two_seeds)], out=two_seeds / "0" / "an", formats=())
    assert not (two_seeds / "0" / "an").exists()
