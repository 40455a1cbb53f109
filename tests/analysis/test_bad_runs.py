"""Nothing silent (issue 21), the analysis's side: a statistic counts only what it claims
(duplicate seeds counted once, damaged metrics listed, never dropped silently from a mean),
readers with bounded cost (no FIFO waited on, no alias bomb built), summary.json of the wrong
types or formats, and adding seeds to a finished study. Each case would fail without its
mechanism: the counts, the listed causes and the time limit say so."""
from __future__ import annotations

import json
import os
import signal
import time

import numpy as np
import pytest

from rnn_experiments.analysis import collect, compare, table, to_markdown
from rnn_experiments.analysis.collect import without_config
from rnn_experiments.analysis.rerun import reruns
from rnn_experiments.run.readers import MAX_YAML_NODES, ReadError, read_yaml
from rnn_experiments.analysis.report import analyze
from rnn_experiments.analysis.synthetic import config, metrics_frame, write_run
from rnn_experiments.run.folder import FORMAT_VERSION

STEPS = [10, 20, 30, 40]
ACC = [0.5, 0.7, 0.9, 1.0]
BOMB = "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9) if i else '1, 1, 1, 1, 1, 1, 1, 1, 1'}]\n"
               for i in range(8))   # 9^8 = 43 million values once expanded; 600 bytes on disk


@pytest.fixture
def time_limit():
    """Fail (rather than hang) a test whose reader waits on a FIFO or builds an alias bomb."""
    def expired(*_):
        raise TimeoutError("the analysis blocked or ran away")
    old = signal.signal(signal.SIGALRM, expired)
    signal.alarm(30)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def _good(root, seeds=(0, 1)):
    for s in seeds:
        write_run(root / str(s), config(seed=s), metrics_frame(STEPS, ACC), wall_time_s=5.0)


def _summary(run, **changes):
    s = json.loads((run / "summary.json").read_text())
    (run / "summary.json").write_text(json.dumps({**s, **changes}))


def _replace(path, how):
    path.unlink()
    if how == "fifo":
        os.mkfifo(path)
    elif how == "urandom":
        path.symlink_to("/dev/urandom")
    elif how == "loop":
        path.symlink_to(path.name)
    elif how == "folder":
        path.mkdir()


def _metrics_with(run, column, value, row=1):
    m = metrics_frame(STEPS, ACC)
    m.loc[row, column] = value
    m.to_csv(run / "metrics.csv", index=False)


# (name, how run 2 is damaged, cause listed, runs with metrics counted in the table, runs in it)
CASES = [
    ("the seed of run 1 again (-m seed=1,1)", lambda r: write_run(r, config(seed=1), metrics_frame(STEPS, ACC)),
     "duplicate of {root}/1 (same settings, seed 1): counted once, as that run", 2, 3),
    ("NaN accuracy", lambda r: _metrics_with(r, "accuracy", np.nan),
     "metrics.csv: accuracy is nan at step 20 (1 of 4 rows); the run's metrics are not used", 2, 3),
    ("inf loss", lambda r: _metrics_with(r, "loss", np.inf),
     "metrics.csv: loss is inf at step 20", 2, 3),
    ("metrics.csv -> /dev/urandom", lambda r: _replace(r / "metrics.csv", "urandom"),
     "metrics.csv: a character device, not a regular file", 2, 3),
    ("metrics.csv a FIFO", lambda r: _replace(r / "metrics.csv", "fifo"),
     "metrics.csv: a FIFO, not a regular file", 2, 3),
    ("metrics.csv a symlink loop", lambda r: _replace(r / "metrics.csv", "loop"),
     "metrics.csv: cannot be opened (Too many levels of symbolic links)", 2, 3),
    ("metrics.csv a folder", lambda r: _replace(r / "metrics.csv", "folder"),
     "metrics.csv: a folder, not a regular file", 2, 3),
    ("summary.json a FIFO", lambda r: _replace(r / "summary.json", "fifo"),
     "summary.json: not a regular file", 3, 3),      # its metrics are sound: counted (status unknown)
    ("summary.json of the wrong types", lambda r: _summary(r, status=5, wall_time_s="abc", seed="x", pid=[1]),
     "summary.json: status=5 is not one of running, completed, failed, interrupted, diverged, pruned, stopped (ignored)", 3, 3),
    ("summary.json of a newer format", lambda r: _summary(r, format_version=FORMAT_VERSION + 1),
     f"summary.json: format_version {FORMAT_VERSION + 1} is newer than this release reads", 3, 3),
    (".hydra/config.yaml a FIFO", lambda r: _replace(r / ".hydra" / "config.yaml", "fifo"),
     ".hydra/config.yaml unreadable: a FIFO, not a regular file", 2, 2),   # no group: left out
    (".hydra/config.yaml an alias bomb", lambda r: (r / ".hydra" / "config.yaml").write_text(BOMB),
     "values once its aliases are expanded, more than 100,000 (an alias bomb?)", 2, 2),
]


@pytest.mark.parametrize("name, damage, cause, seeds, runs", CASES, ids=[c[0] for c in CASES])
def test_a_damaged_run_is_listed_with_its_cause_and_counted_only_for_what_it_has(
        tmp_path, time_limit, name, damage, cause, seeds, runs):
    root = tmp_path / "sweep"
    _good(root)
    write_run(root / "2", config(seed=2), metrics_frame(STEPS, ACC), wall_time_s=5.0)
    damage(root / "2")
    df = collect(root)
    listed = df.drop_duplicates("run_dir").set_index("run_dir").loc[str(root / "2"), "problem"]
    assert cause.format(root=root) in listed
    usable = df[~df["run_dir"].isin(without_config(df))]
    t = table(usable)
    assert (t["seeds"].iloc[0], t["runs"].iloc[0]) == (seeds, runs)
    assert t["final_accuracy_mean"].iloc[0] == 1.0 and t["final_accuracy_std"].iloc[0] == 0.0
    rerun = [why for why, _ in reruns(df, [])]
    in_rerun = any(str(root / "2") in why for why in rerun)
    assert not in_rerun if "duplicate" in cause else in_rerun or seeds == runs   # damaged metrics: re-run
    if "duplicate" in cause:
        assert "| 2 (2) of 3 |" in to_markdown(t)


def test_runs_without_a_config_are_not_duplicates_of_each_other(tmp_path):
    for s in (0, 1):   # two unreadable configs, one seed in their summaries: nothing says they are one run
        write_run(tmp_path / str(s), config(seed=0, **{"train.lr": 10.0 ** -s}), metrics_frame(STEPS, ACC))
        (tmp_path / str(s) / ".hydra" / "config.yaml").write_text("[not, a, mapping")
    runs = collect(tmp_path).drop_duplicates("run_dir")
    assert set(runs["duplicate_of"]) == {""}


def test_fifos_in_every_place_are_never_waited_on(tmp_path, time_limit):
    root = tmp_path / "sweep"
    _good(root, seeds=(0, 1, 2))
    _summary(root / "2", status="running", heartbeat_s=30.0, pid=1, host="elsewhere")
    (root / "2" / "run.lock").touch()
    for path in (root / "2" / ".hydra" / "overrides.yaml", root / "2" / "run.lock", root / "2" / ".hydra" / "hydra.yaml"):
        path.touch()
        _replace(path, "fifo")
    os.mkfifo(root / "multirun.yaml")
    old = time.time() - 3600
    os.utime(root / "2" / "run.lock", (old, old))
    t0 = time.perf_counter()
    runs = collect(root).drop_duplicates("run_dir").set_index("run_dir")
    assert runs.loc[str(root / "2"), "status"] == "crashed"    # an unreadable lock is judged by its age: old
    analyze([root], formats=("png",), echo=lambda *a: None, out=tmp_path / "out", metrics=["accuracy"])
    assert time.perf_counter() - t0 < 20


def test_read_yaml_bounds_alias_expansion_not_plain_configs(tmp_path, time_limit):
    (tmp_path / "bomb.yaml").write_text(BOMB)
    with pytest.raises(ReadError, match="an alias bomb"):
        read_yaml(tmp_path / "bomb.yaml")
    (tmp_path / "loop.yaml").write_text("a: &a [1, *a]\n")
    with pytest.raises(ReadError, match="recursive alias"):
        read_yaml(tmp_path / "loop.yaml")
    # a few shared values are fine: counted as often as they are used
    (tmp_path / "ok.yaml").write_text("base: &b {x: 1, y: [1, 2]}\none: *b\ntwo: *b\n")
    assert read_yaml(tmp_path / "ok.yaml")["two"] == {"x": 1, "y": [1, 2]}
    assert MAX_YAML_NODES == 100_000
    (tmp_path / "big.yaml").write_text("\n".join(f"k{i}: {i}" for i in range(600)))
    with pytest.raises(ReadError, match="1,201 values once its aliases are expanded, more than 1,000"):
        read_yaml(tmp_path / "big.yaml", max_nodes=1000)


def test_summary_without_a_format_is_the_previous_release_and_analyses(tmp_path):
    root = tmp_path / "sweep"
    _good(root)                                        # synthetic summaries carry no `format`: format 1
    _summary(root / "1", format_version=FORMAT_VERSION)        # ... and one of this release beside it
    df = collect(root)
    assert set(df["problem"]) == {""} and set(df["status"]) == {"completed"}
    t = table(df)
    assert (t["seeds"].iloc[0], t["finished"].iloc[0]) == (2, 2)


@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
def test_adding_seeds_to_a_finished_study_analyses_them_together(tmp_path):
    """`-m seed=0,1,2`, later `-m seed=3,4,5,6` into a second sweep folder: both folders given
    to the analysis are one study of 7 seeds a model, paired by seed; a seed run twice (2 in
    both) is listed and counted once."""
    first, later = tmp_path / "multirun" / "first", tmp_path / "multirun" / "later"
    for root, seeds in ((first, range(3)), (later, range(3, 7))):
        for num, (m, s) in enumerate((m, s) for m in ("lstm", "peep_lstm") for s in seeds):
            final = 0.8 + 0.02 * s + (0.01 + 0.001 * s * s) * (m == "peep_lstm")
            write_run(root / str(num), config(**{"model.name": m, "seed": s}),
                      metrics_frame(STEPS, np.linspace(0.5, final, 4)), wall_time_s=5.0)
    lines = []
    res = analyze([first, later], compare="model.name", formats=("png",), echo=lines.append, metrics=["accuracy"])
    assert res["tables"][0] == tmp_path / "multirun" / "analysis" / "summary.csv"   # the folders' parent
    assert list(res["table"]["seeds"]) == [7, 7]
    row = res["compare"].set_index("statistic").loc["final_accuracy"]
    assert row["design"] == "paired" and row["n_pairs"] == 7 and row["p_value"] < 0.05
    assert not any("failed or missing" in x for x in lines)

    write_run(later / "8", config(**{"model.name": "lstm", "seed": 2}), metrics_frame(STEPS, ACC))
    df = collect([first, later])
    dup = df.drop_duplicates("run_dir").set_index("run_dir").loc[str(later / "8")]
    assert dup["duplicate_of"] == str(first / "2")                # lstm, seed 2 of the first sweep
    assert list(table(df)["seeds"]) == [7, 7] and list(table(df)["runs"]) == [8, 7]
    assert compare(df, "model.name").set_index("statistic").loc["final_accuracy", "n_pairs"] == 7


def test_a_mean_over_fewer_runs_than_the_group_says_so(tmp_path):
    """A run that has not evaluated yet has no held-out accuracy: the cell says over how many runs
    its mean is, instead of passing for a mean over all of them."""
    _good(tmp_path, seeds=(0, 1))
    m = metrics_frame(STEPS, ACC)
    m["eval_accuracy"] = np.nan
    write_run(tmp_path / "2", config(seed=2), m)
    t = table(collect(tmp_path))
    assert (t["seeds"].iloc[0], t["final_eval_accuracy_n"].iloc[0], t["final_accuracy_n"].iloc[0]) == (3, 2, 3)
    md = to_markdown(t)
    assert "1.000 ± 0.000 [1.000, 1.000] (2 of 3 runs)" in md and md.count("of 3 runs") == 1
