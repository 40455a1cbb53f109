"""Run folders the release before format_version 3 wrote (commit 237bcc0: `"format": 2`, the
config's `model` and `dataset` nodes without `_target_`), committed under
tests/fixtures/format2_runs/: a palindrome LSTM and a text generator, 20 steps each. Today's
release gives the same command the same metrics.csv (bit for bit on the machine that made them,
an AMD Zen 5; to float32 rounding on another CPU, whose kernels sum in another order), analyses
such a folder beside one of its own, resumes it, and generates from it."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import yaml

from conftest import ROOT, run_command
from rnn_experiments.run.metrics import TIMING_COLUMNS, read_metrics

FORMER = ROOT / "tests" / "fixtures" / "format2_runs"


def command(run: str, **replace) -> list[str]:
    """The run's own overrides (its .hydra/overrides.yaml), some replaced."""
    overrides = yaml.safe_load((FORMER / run / ".hydra" / "overrides.yaml").read_text())
    out = []
    for o in overrides:
        key = o.split("=", 1)[0]
        out.append(f"{key}={replace.pop(key)}" if key in replace else o)
    return out + [f"{k}={v}" for k, v in replace.items()]


def results(run_dir) -> pd.DataFrame:
    return read_metrics(run_dir / "metrics.csv").drop(columns=TIMING_COLUMNS)


@pytest.mark.parametrize("run, replace", [("lstm", {}),
                                          ("generator", {"dataset.path": str(FORMER / "cat.txt")})])
@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
def test_the_same_command_gives_the_same_metrics(tmp_path, run, replace):
    assert json.loads((FORMER / run / "summary.json").read_text())["format"] == 2
    r = run_command("rnn-train", *command(run, **replace), f"hydra.run.dir={tmp_path / run}")
    assert r.code == 0, r.err[-2000:]
    today, former = results(tmp_path / run), results(FORMER / run)
    counts = ["step", "accuracy", "eval_accuracy", "lr"]     # exact on any machine
    pd.testing.assert_frame_equal(today[counts], former[counts], check_exact=True)
    pd.testing.assert_frame_equal(today, former, check_exact=False, rtol=1e-5, atol=0)


@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
def test_a_former_folder_is_analysed_beside_one_of_today(tmp_path):
    sweep = tmp_path / "S"
    shutil.copytree(FORMER / "lstm", sweep / "0")
    assert run_command("rnn-train", *command("lstm", seed=4), f"hydra.run.dir={sweep / '1'}").code == 0
    r = run_command("rnn-analyze", str(sweep), "--formats", "")
    assert r.code == 0, r.err[-2000:]
    table = pd.read_csv(sweep / "analysis" / "summary.csv")
    assert len(table) == 1 and table["seeds"].iloc[0] == 2        # one group: lstm, seeds 3 and 4


@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
def test_a_former_folder_resumes_and_generates(tmp_path):
    run = tmp_path / "lstm"
    shutil.copytree(FORMER / "lstm", run)
    r = run_command("rnn-train", *command("lstm", **{"train.steps": 30}), f"hydra.run.dir={run}")
    assert r.code == 0, r.err[-2000:]
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["status"], summary["step"], summary["resumed_from_step"]) == ("completed", 30, 20)
    shutil.copytree(FORMER / "generator", tmp_path / "generator")
    r = run_command("rnn-generate", f"checkpoint={tmp_path / 'generator'}", "prompt=the", "length=12")
    assert r.code == 0, r.err[-2000:]
    assert r.out.startswith("the") and len(r.out.strip()) >= 12
