"""The run folder's `format_version` (run/folder.py: FORMAT_VERSION, and the rule for older
folders): written into summary.json and checkpoint.pt by every run; folders of earlier versions
(1: no version; 2: `format` in summary.json, none in the checkpoint) still resume and analyse; a
checkpoint of a newer version is refused, a summary of a newer version analysed with a warning."""
from __future__ import annotations

import json

import pytest
import torch

from rnn_experiments.analysis import collect
from rnn_experiments.run.checkpoint import CheckpointError
from rnn_experiments.run.folder import FORMAT_VERSION, format_version
from rnn_experiments.training.loop import train


def test_the_version_of_a_record_follows_the_rule():
    assert format_version({"format_version": 3}) == 3
    assert format_version({"format": 2}) == 2          # version 2 named it `format`
    assert format_version({}) == 1                      # version 1 named no version
    assert format_version({"format_version": "3"}) == 1 and format_version({"format_version": True}) == 1


@pytest.mark.parametrize("older", [1, 2])
def test_an_older_run_folder_resumes_and_analyses(tmp_path, make_cfg, older):
    run = tmp_path / "run"
    train(make_cfg("dataset.seq_length=3", "train.steps=10", "train.threads=1"), run)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["format_version"] == FORMAT_VERSION == 4
    del summary["format_version"]                           # as the earlier release wrote it
    if older == 2:
        summary["format"] = 2
    (run / "summary.json").write_text(json.dumps(summary))
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    assert state.pop("format_version") == FORMAT_VERSION    # checkpoints had no version before 3
    torch.save(state, run / "checkpoint.pt")
    df = collect(run)                                       # analyses as it is (train() alone writes no .hydra/)
    assert set(df["problem"]) == {"no .hydra/config.yaml"} and set(df["status"]) == {"completed"}

    resumed = train(make_cfg("dataset.seq_length=3", "train.steps=20", "train.threads=1"), run)
    assert resumed["resumed_from_step"] == 10 and resumed["status"] == "completed"
    assert resumed["format_version"] == FORMAT_VERSION      # rewritten in this release's format
    df = collect(run)
    assert df["step"].max() == 20 and set(df["status"]) == {"completed"}


def test_a_checkpoint_of_a_newer_version_is_refused_and_kept(tmp_path, make_cfg):
    run = tmp_path / "run"
    train(make_cfg("dataset.seq_length=3", "train.steps=10", "train.threads=1"), run)
    state = torch.load(run / "checkpoint.pt", weights_only=False)
    state["format_version"] = FORMAT_VERSION + 1
    torch.save(state, run / "checkpoint.pt")
    before = (run / "checkpoint.pt").read_bytes()
    with pytest.raises(CheckpointError, match=f"format_version {FORMAT_VERSION + 1} is newer than this release reads"):
        train(make_cfg("dataset.seq_length=3", "train.steps=20", "train.threads=1"), run)
    assert (run / "checkpoint.pt").read_bytes() == before
