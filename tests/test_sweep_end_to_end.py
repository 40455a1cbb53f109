"""One real tiny sweep (conftest.demo_sweep: the demo preset, 2 models x 2 seeds) read from every
side: its jobs' folders, the analysis callback that ran when it ended, and the analysis command
run on it afterwards, checked against the runs' own metrics.csv with scipy."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats as st

from conftest import run_command
from rnn_experiments.analysis import collect
from rnn_experiments.training.metrics import read_metrics


def jobs(sweep):
    return sorted((p for p in sweep.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def test_every_job_ran_in_its_own_folder(demo_sweep):
    sweep, result = demo_sweep
    runs = jobs(sweep)
    assert [p.name for p in runs] == ["0", "1", "2", "3"]
    seen = []
    for run in runs:
        summary = json.loads((run / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["step"] == 20
        assert read_metrics(run / "metrics.csv").step.tolist() == [5, 10, 15, 20]
        overrides = yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text())
        seen.append((summary["model"], summary["seed"]))
        assert f"seed={summary['seed']}" in overrides and f"model={summary['model']}" in overrides
    assert seen == [("lstm", 0), ("lstm", 1), ("peep_lstm", 0), ("peep_lstm", 1)]
    assert (sweep / "multirun.yaml").is_file()


def test_the_callback_analysed_the_sweep_when_it_ended(demo_sweep):
    sweep, result = demo_sweep
    analysis = sweep / "analysis"
    assert f"plots (png): {analysis / 'accuracy.png'}" in result.out
    assert {"summary.csv", "summary.md", "summary.tex", "compare.csv", "compare.md", "compare.tex",
            "accuracy.png", "eval_accuracy.png", "loss.png", "eval_loss.png"} <= {p.name for p in analysis.iterdir()}
    assert not (analysis / "rerun.sh").exists()     # nothing failed or missing
    assert (analysis / "summary.md").read_text() in result.out


def test_the_analysis_command_equals_the_runs_metrics(demo_sweep, tmp_path):
    sweep, _ = demo_sweep
    out = tmp_path / "out"
    res = run_command("rnn-analyze", sweep, "--out", out, "--formats", "png", "--compare", "model.name")
    assert res.code == 0, res.err[-2000:]
    t = pd.read_csv(out / "summary.csv")
    assert list(t["model.name"]) == ["lstm", "peep_lstm"] and list(t["seeds"]) == [2, 2]
    df = collect(sweep)
    finals = df.sort_values("step").groupby(["model.name", "run_dir"])["accuracy"].last().groupby("model.name").mean()
    assert t["final_accuracy_mean"].tolist() == pytest.approx(finals.tolist())
    assert "failed or missing" not in res.out and (out / "accuracy.png").is_file()
    # the command and the callback agree
    c = pd.read_csv(out / "compare.csv", keep_default_na=False, na_values=[""])
    pd.testing.assert_frame_equal(c, pd.read_csv(sweep / "analysis" / "compare.csv",
                                                 keep_default_na=False, na_values=[""]))
    assert (out / "compare.md").read_text() in res.out and (out / "compare.tex").is_file()


def test_compare_p_values_equal_scipy_on_the_runs_own_metrics(demo_sweep):
    sweep, _ = demo_sweep
    c = pd.read_csv(sweep / "analysis" / "compare.csv", keep_default_na=False, na_values=[""])
    assert list(c["statistic"]) == ["final_accuracy", "best_accuracy", "final_eval_accuracy",
                                    "steps_to_threshold", "final_loss", "final_eval_loss",
                                    "best_eval_loss", "wall_time_s"]
    assert (set(c["a"]), set(c["b"])) == ({"lstm"}, {"peep_lstm"})
    values = {"lstm": {}, "peep_lstm": {}}     # statistic -> per-run values, from the run folders
    for d in jobs(sweep):
        model = yaml.safe_load((d / ".hydra" / "config.yaml").read_text())["model"]["name"]
        m = pd.read_csv(d / "metrics.csv")
        reached = m.loc[m["accuracy"] >= 0.99, "step"]
        for k, v in {"final_accuracy": m["accuracy"].iloc[-1], "best_accuracy": m["accuracy"].max(),
                     "final_eval_accuracy": m["eval_accuracy"].dropna().iloc[-1],
                     "final_loss": m["loss"].iloc[-1],
                     "final_eval_loss": m["eval_loss"].dropna().iloc[-1],
                     "best_eval_loss": m["eval_loss"].min(),
                     "steps_to_threshold": reached.min() if len(reached) else np.nan}.items():
            values[model].setdefault(k, []).append(v)
    for row in c[c["statistic"] != "wall_time_s"].itertuples(index=False):
        a, b = (np.array(values[m][row.statistic], dtype=float) for m in ("lstm", "peep_lstm"))  # seeds 0, 1
        keep = ~(np.isnan(a) | np.isnan(b))      # same seed, same batches: the runs are pairs
        a, b = a[keep], b[keep]
        assert row.design == "paired" and (row.n_a, row.n_b) == (len(a), len(b))
        assert "n < 3 seeds (2 pairs)" in row.note or "n < 2 (" in row.note
        if len(a) < 2 or np.std(a - b) == 0:
            assert np.isnan(row.p_value)
        else:
            assert row.p_value == pytest.approx(st.ttest_rel(a, b).pvalue)
            assert row.p_holm >= row.p_value
