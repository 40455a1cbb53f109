"""The search's pieces on their own, against what each promises: how a trial's end is read from
its run folder, which trials launch together, a trial left RUNNING by a dead search process,
storage paths, the sampler and pruner settings a search refuses."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from types import SimpleNamespace

import pytest
from omegaconf import OmegaConf

optuna = pytest.importorskip("optuna", minversion="4")

from rnn_experiments.search import SearchError                     # noqa: E402
from rnn_experiments.search import study as st                      # noqa: E402
from rnn_experiments.search.sweeper import (_alive, _consecutive, _status, outcome,  # noqa: E402
                                            settle_orphans, suggest)


def run(tmp_path, name, summary):
    folder = tmp_path / name
    folder.mkdir()
    if summary is not None:
        (folder / "summary.json").write_text(json.dumps(summary) if isinstance(summary, dict) else summary)
    return folder


@pytest.mark.parametrize("summary, returned, expected", [
    ({"status": "completed", "final_eval_accuracy": 0.75}, None, ("COMPLETE", 0.75)),
    ({"status": "completed", "final_eval_accuracy": 0.75}, 0.5, ("COMPLETE", 0.5)),   # what the job returned
    ({"status": "completed"}, None, ("FAIL", None)),                                   # no held-out value
    ({"status": "pruned"}, None, ("PRUNED", None)),
    ({"status": "diverged", "diverged_at_step": 7}, None, ("FAIL", None)),
    ({"status": "failed", "error": "boom"}, None, ("FAIL", None)),
    ({"status": "running"}, None, ("FAIL", None)),
    ({"status": "interrupted", "signal": "SIGTERM"}, None, ("FAIL", None)),
    (None, None, ("FAIL", None)),                                                      # never started
    ("{not json", None, ("FAIL", None)),                                               # damaged
])
def test_a_trials_end_is_read_from_its_run_folder(tmp_path, summary, returned, expected):
    state, value, attrs = outcome(run(tmp_path, "r", summary), returned)
    assert (state, value) == expected
    if state == "FAIL":
        why = attrs["failure"]
        assert why and ("killed" in attrs) == (summary is None or summary == "{not json"
                                                 or summary.get("status") in ("running", "interrupted"))
        if isinstance(summary, dict) and summary.get("status") == "diverged":
            assert why == "diverged at step 7"
        if isinstance(summary, dict) and summary.get("status") == "failed":
            assert why == "boom"


def test_status_of_a_damaged_or_missing_summary_is_none(tmp_path):
    assert _status(run(tmp_path, "a", None)) is None
    assert _status(run(tmp_path, "b", "[1, 2")) is None
    assert _status(run(tmp_path, "c", {"status": "completed"})) == "completed"


def test_trials_launch_together_only_with_consecutive_numbers():
    trials = [SimpleNamespace(number=n) for n in (0, 1, 2, 5, 6, 9)]
    assert [[t.number for t in g] for g in _consecutive(trials)] == [[0, 1, 2], [5, 6], [9]]
    assert _consecutive([]) == []


def test_whether_a_search_process_lives():
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    assert _alive(f"{host}:{os.getpid()}") is True and _alive(f"{host}:{dead.pid}") is False
    assert _alive(f"another-host:{os.getpid()}") is None and _alive(f"{host}:x") is None


def test_suggest_draws_from_each_kind_of_distribution():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    d = optuna.distributions
    assert suggest(trial, "c", d.CategoricalDistribution([8, 16])) in (8, 16)
    n = suggest(trial, "n", d.IntDistribution(2, 6, step=2))
    assert n in (2, 4, 6)
    x = suggest(trial, "x", d.FloatDistribution(1e-4, 1e-2, log=True))
    assert 1e-4 <= x <= 1e-2 and set(trial.params) == {"c", "n", "x"}


def test_a_trial_left_running_by_a_dead_search_is_settled_from_its_folder(tmp_path):
    study = optuna.create_study(direction="maximize")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    me, gone = f"{socket.gethostname()}:{os.getpid()}", f"{socket.gethostname()}:{dead.pid}"
    done = run(tmp_path, "0", {"status": "completed", "final_eval_accuracy": 0.9})
    for attrs in ({"process": gone, "run_dir": str(done)},        # its folder says completed
                  {"process": gone},                             # no folder: failed
                  {"process": me, "run_dir": str(done)},          # its process lives: left alone
                  {}):                                            # not this sweeper's: left alone
        trial = study.ask()
        for k, v in attrs.items():
            trial.set_user_attr(k, v)
    assert settle_orphans(study) == 2
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "FAIL", "RUNNING", "RUNNING"] and study.trials[0].value == 0.9
    assert study.trials[1].user_attrs["killed"] == "its search process is gone"
    assert settle_orphans(study) == 0   # nothing left to settle


def test_storage_paths_name_the_same_study_from_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert st.absolute("s.journal") == str(tmp_path / "s.journal")
    assert st.absolute("sqlite:///s.db") == f"sqlite:///{tmp_path / 's.db'}"
    assert st.absolute("sqlite:////abs/s.db") == "sqlite:////abs/s.db"
    assert st.absolute("sqlite:///:memory:") == "sqlite:///:memory:"
    assert st.absolute("postgresql://u@h/db") == "postgresql://u@h/db"
    with pytest.raises(SearchError, match="no study 'nope' in"):
        st.load(str(tmp_path / "empty.journal"), "nope")


@pytest.mark.parametrize("node, message", [
    ({"seed": 0}, "hydra.sweeper.sampler is invalid: expected a node with _target_"),
    ({"_target_": "optuna.samplers.NoSuchSampler"}, "hydra.sweeper.sampler._target_=optuna.samplers.NoSuchSampler is invalid"),
    ({"_target_": "optuna.samplers.RandomSampler", "n_startup_trials": 5},
     "hydra.sweeper.sampler.n_startup_trials is not a setting of RandomSampler"),
])
def test_a_sampler_setting_that_cannot_work_is_one_line(node, message):
    with pytest.raises(SearchError) as e:
        st._instantiate(OmegaConf.create(node), "sampler")
    assert str(e.value).startswith(message) and "\n" not in str(e.value)
