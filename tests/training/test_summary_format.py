"""summary.json's `format` (run_folder.SUMMARY_FORMAT): written by every run from now on; a run
folder of the previous release (format 1: no `format` key) still resumes and still analyses."""
from __future__ import annotations

import json

from rnn_experiments.analysis import collect
from rnn_experiments.run.folder import SUMMARY_FORMAT
from rnn_experiments.training.loop import train


def test_a_format_1_run_folder_resumes_and_analyses(tmp_path, make_cfg):
    run = tmp_path / "run"
    train(make_cfg("dataset.seq_length=3", "train.steps=10", "train.threads=1"), run)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["format"] == SUMMARY_FORMAT == 2
    del summary["format"]                                   # as the previous release wrote it
    (run / "summary.json").write_text(json.dumps(summary))
    df = collect(run)                                       # analyses as it is (train() alone writes no .hydra/)
    assert set(df["problem"]) == {"no .hydra/config.yaml"} and set(df["status"]) == {"completed"}

    resumed = train(make_cfg("dataset.seq_length=3", "train.steps=20", "train.threads=1"), run)
    assert resumed["resumed_from_step"] == 10 and resumed["status"] == "completed"
    assert resumed["format"] == SUMMARY_FORMAT               # rewritten in this release's format
    df = collect(run)
    assert df["step"].max() == 20 and set(df["status"]) == {"completed"}
