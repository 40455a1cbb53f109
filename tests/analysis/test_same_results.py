"""Settings a part declares do not change what a run computes (`same_results` on its class,
parts.same_results): recorded in summary.json, not group keys in the analysis, not a distinct run
for the sweep guard, and a declaration that names no setting of the class refused."""
from __future__ import annotations

import json

import pytest

from rnn_experiments.analysis.aggregate import group_keys, table
from rnn_experiments.analysis.collect import collect
from rnn_experiments.analysis.synthetic import config, metrics_frame, write_run
from rnn_experiments.errors import ConfigError
from rnn_experiments.sweeps.checks import settings
from rnn_experiments.sweeps.guard import what_it_computes
from rnn_experiments.training.loop import train

QUIET = '''
from rnn_experiments.models.lstm import LSTM


class QuietLSTM(LSTM):
    """The LSTM, with a setting of how much it prints, which changes nothing it computes."""
    same_results = ("verbose",)

    def __init__(self, vocab_size, num_classes, embedding_dim: int = 64, hidden_size: int = 256,
                 verbose: bool = False):
        super().__init__(vocab_size, num_classes, embedding_dim, hidden_size)
        self.verbose = verbose


class Wrong(QuietLSTM):
    same_results = ("loudness",)
'''


@pytest.fixture
def quiet(tmp_path, monkeypatch):
    (tmp_path / "quiet_parts.py").write_text(QUIET)
    monkeypatch.syspath_prepend(str(tmp_path))
    return ["model._target_=quiet_parts.QuietLSTM", "+model.verbose=false", "~model.init",
            "~model.log_softmax_axis", "~model.reset_at_padding"]


def test_a_parts_declaration_is_recorded_and_refused_when_it_names_no_setting(make_cfg, quiet, tmp_path):
    summary = train(make_cfg(*quiet, "train.steps=2", "train.eval_every=2"), tmp_path / "run")
    assert summary["same_results"] == ["train.checkpoint_every", "train.resume", "model.verbose"]
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["same_results"] == summary["same_results"]
    with pytest.raises(ConfigError, match=r"Wrong.same_results=\('loudness',\) is invalid: expected a tuple of its settings"):
        train(make_cfg(*[o.replace("QuietLSTM", "Wrong") for o in quiet]), tmp_path / "wrong")


def test_runs_that_differ_only_in_a_declared_setting_are_one_group_and_one_run(make_cfg, quiet, tmp_path):
    for s in range(2):
        run = write_run(tmp_path / str(s), config(**{"seed": s, "model.verbose": s == 0}),
                        metrics_frame([10, 20], [0.5, 0.9]))
        summary = json.loads((run / "summary.json").read_text())
        (run / "summary.json").write_text(json.dumps({**summary, "same_results": ["model.verbose"]}))
    df = collect(tmp_path)
    assert group_keys(df) == [] and table(df)["seeds"].tolist() == [2]
    a, b = (what_it_computes(settings(make_cfg(*quiet, f"model.verbose={v}"))) for v in ("true", "false"))
    assert a == b and "verbose" not in a["model"]
