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

from rnn_experiments.sweeps.search import SearchError                     # noqa: E402
from rnn_experiments.sweeps.search import study as st                      # noqa: E402
from rnn_experiments.sweeps.search.space import key, parse, untried, values  # noqa: E402
from rnn_experiments.sweeps.search.seeds import run_status  # noqa: E402
from rnn_experiments.sweeps.search.sweeper import (_alive, _consecutive, outcome,  # noqa: E402
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
    assert run_status(run(tmp_path, "a", None)) is None
    assert run_status(run(tmp_path, "b", "[1, 2")) is None
    assert run_status(run(tmp_path, "c", {"status": "completed"})) == "completed"


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


@pytest.mark.parametrize("spec, message", [
    ("{tmp}/missing/s.journal", "the folder {tmp}/missing of the journal file does not exist"),
    ("nosuchdialect://x/y", "not a database URL SQLAlchemy knows"),
    ("postgresql://u@h/db", "its database driver is not installed"),
    ("sqlite:///:memory:", "an in-memory database is not shared with the trials"),
    ("sqlite:///{tmp}/missing/s.db", "the folder {tmp}/missing of the database file does not exist"),
])
def test_a_storage_that_cannot_be_opened_is_refused_up_front(tmp_path, spec, message):
    if spec.startswith("postgresql") and any(__import__("importlib").util.find_spec(m)
                                             for m in ("psycopg2", "psycopg")):
        pytest.skip("a postgresql driver is installed here")
    spec, message = spec.format(tmp=tmp_path), message.format(tmp=tmp_path)
    with pytest.raises(SearchError) as e:
        st.check_storage(spec, default=False)
    assert str(e.value).startswith(f"hydra.sweeper.storage={spec} is invalid: ") and message in str(e.value)
    assert "\n" not in str(e.value)


def test_storages_that_can_be_opened_pass_and_hold_a_study(tmp_path):
    st.check_storage(str(tmp_path / "a" / "s.journal"), default=True)   # the sweep folder is made later
    db = f"sqlite:///{tmp_path / 's.db'}"
    st.check_storage(db, default=False)
    made = st.load(db, "s", direction="maximize")
    assert st.load(db, "s").study_name == made.study_name == "s"
    (tmp_path / "bad.db").write_text("not a database")
    with pytest.raises(SearchError, match=r"hydra.sweeper.storage=sqlite:///.*bad.db: cannot open the study 's' \("):
        st.load(f"sqlite:///{tmp_path / 'bad.db'}", "s", direction="maximize")


def test_samplers_and_pruners_are_checked_for_their_kind():
    space = parse({"train.lr": "interval(1e-4, 1e-2)"}, [])
    with pytest.raises(SearchError, match="expected an Optuna sampler"):
        st.make_sampler(OmegaConf.create({"_target_": "collections.OrderedDict"}), space)
    with pytest.raises(SearchError, match="expected an Optuna pruner"):
        st.make_pruner(OmegaConf.create({"_target_": "collections.OrderedDict"}))
    with pytest.raises(SearchError, match=r"hydra.sweeper.pruner \(optuna.pruners.MedianPruner\) cannot be built: "):
        st.make_pruner(OmegaConf.create({"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": -1}))
    assert not st.prunes(st.make_pruner(None))
    assert st.prunes(st.make_pruner(OmegaConf.create({"_target_": "optuna.pruners.MedianPruner"})))
    with pytest.raises(SearchError, match="sampler=grid needs a discrete space: train.lr=interval"):
        st.make_sampler(OmegaConf.create({"_target_": "optuna.samplers.GridSampler"}), space)
    with pytest.raises(SearchError, match="hydra.sweeper.sampler.seed=-1 is invalid"):
        st.make_sampler(OmegaConf.create({"_target_": "optuna.samplers.RandomSampler", "seed": -1}), space)


def test_a_study_refuses_a_space_that_changes_a_parameters_distribution():
    study = optuna.create_study()
    old = parse({"model.hidden_size": "choice(8, 16)", "train.lr": "interval(1e-4, 1e-2)"}, [])
    study.add_trial(optuna.trial.create_trial(params={"model.hidden_size": 8, "train.lr": 1e-3},
                                              distributions=old.distributions, value=1.0))
    st.check_compatible(study, old)
    with pytest.raises(SearchError, match=r"model.hidden_size=choice\(8, 32\): study .* holds trials with "
                                          r"model.hidden_size from choice\(8, 16\)"):
        st.check_compatible(study, parse({"model.hidden_size": "choice(8, 32)"}, []))
    with pytest.raises(SearchError, match=r"from FloatDistribution\(0.0001, 0.01\)"):
        st.check_compatible(study, parse({"train.lr": "choice(0.1, 0.2)"}, []))


class Stuck(optuna.samplers.RandomSampler):
    """A sampler that always proposes the same point (what a converged sampler can do)."""

    def sample_independent(self, study, trial, name, distribution):
        return distribution.low if hasattr(distribution, "low") else distribution.choices[0]


@pytest.mark.parametrize("entry", ["interval(1e-4, 1e-2)", "choice(0.1, 0.2, 0.3)"])
def test_a_sampler_stuck_on_one_point_still_gets_new_parameter_sets(entry):
    space = parse({"train.lr": entry}, [])
    sampler = st.Unrepeated(Stuck(seed=0), space, __import__("random").Random(0))
    study = optuna.create_study(sampler=sampler)
    seen = []
    for _ in range(3):
        trial = study.ask()
        seen.append(suggest(trial, "train.lr", space.distributions["train.lr"]))
        study.tell(trial, 1.0)
    assert len(set(seen)) == 3 and seen[0] == (1e-4 if entry.startswith("interval") else 0.1)


def test_space_membership_grids_and_untried_sets_of_a_large_space():
    import random
    space = parse({"a": "range(0, 400)", "b": "range(0, 400)", "c": "choice(x, y)"}, [])
    assert space.contains({"a": 3, "b": 4, "c": "x"}) and not space.contains({"a": 3, "b": 4})
    assert not space.contains({"a": 3, "b": 4, "c": "z"}) and not space.contains({"a": "x", "b": 4, "c": "x"})
    assert space.size() == 320_000
    rng = random.Random(0)
    p = untried(space, {key({"a": 0, "b": 0, "c": "x"})}, rng)          # drawn: too many to list
    assert space.contains(p) and key(p) != key({"a": 0, "b": 0, "c": "x"})
    tiny = parse({"c": "choice(x, y)"}, [])
    assert untried(tiny, {key({"c": "x"}), key({"c": "y"})}, rng, limit=0) is None   # none left
    stepped = optuna.distributions.FloatDistribution(0.0, 1.0, step=0.25)
    assert values(stepped) == [0.0, 0.25, 0.5, 0.75, 1.0]
    with pytest.raises(SearchError, match=r"train.lr=range\(5, 1\): the range is empty"):
        parse({"train.lr": "range(5, 1)"}, [])
    with pytest.raises(SearchError, match="expected finite interval ends"):
        parse({"train.lr": "interval(0, inf)"}, [])
    assert parse({"x": "range(0.0, 1.0, 0.5)"}, []).distributions["x"] == \
        optuna.distributions.FloatDistribution(0.0, 0.5, step=0.5)      # a float range: stepped floats


def test_the_report_of_a_search_with_no_completed_trial_says_so(tmp_path):
    from rnn_experiments.sweeps.search.report import report, report_folder
    study = optuna.create_study(study_name="s", direction="maximize")
    t = study.ask()
    study.tell(t, state=optuna.trial.TrialState.FAIL)
    lines = []
    out = report(study, tmp_path / "r", sweep_dir=tmp_path, echo=lines.append, formats=())
    assert lines[-1].endswith("(table: " + str(tmp_path / "r" / "search_trials.csv") + ")")   # no history drawn
    assert not list((tmp_path / "r").glob("search_history*"))
    assert out["results"]["best_params"] is None and out["results"]["trials"]["fail"] == 1
    text = (tmp_path / "r" / "search.md").read_text()
    assert "best: none (no trial completed)" in text and "none (need two completed trials" in text
    assert "best_value: null" in (tmp_path / "optimization_results.yaml").read_text()
    said = []
    assert report_folder(tmp_path / "nowhere", tmp_path / "r2", echo=said.append) is None
    (tmp_path / "s2").mkdir()
    (tmp_path / "s2" / "study.yaml").write_text(f"storage: {tmp_path / 'empty.journal'}\nstudy_name: gone\n")
    assert report_folder(tmp_path / "s2", tmp_path / "r2", echo=said.append) is None
    assert said[0].startswith("no search report: ") and "study.yaml is unreadable (FileNotFoundError)" in said[0]
    assert said[1].startswith("no search report: no study 'gone' in ")
    assert not (tmp_path / "r2").exists()


GOOD = {"n_trials": 4, "n_jobs": 1, "direction": "maximize", "max_failure_rate": 0.5,
        "study_name": None, "storage": None, "params": {"train.lr": "interval(1e-4, 1e-2)"}}


@pytest.mark.parametrize("key, value, expected", [
    ("n_trials", 0, "an integer >= 1"),
    ("n_jobs", True, "an integer >= 1 (trials launched at a time)"),
    ("direction", "up", "minimize or maximize"),
    ("max_failure_rate", 1.5, "a number from 0 to 1"),
    ("max_failure_rate", "half", "a number from 0 to 1"),
    ("study_name", " ", "null (the experiment's name) or a non-empty name"),
    ("storage", 3, "null (a journal file in the sweep folder), a journal file path or a database URL"),
    ("params", [1, 2], "a mapping of config keys to search-space entries"),
    ("seeds_per_trial", 0, "an integer >= 1 (the runs of a trial, at the seeds seed, seed+1, ..., seed+k-1"),
    ("seeds_per_trial", 1.5, "an integer >= 1 (the runs of a trial"),
    ("seeds_per_trial", True, "an integer >= 1 (the runs of a trial"),
    ("seeds_per_trial", "2", "an integer >= 1 (the runs of a trial"),
])
def test_each_search_setting_that_cannot_work_is_named(key, value, expected):
    from rnn_experiments.sweeps.search.checks import check_settings
    check_settings(OmegaConf.create(GOOD))
    with pytest.raises(SearchError) as e:
        check_settings(OmegaConf.create({**GOOD, key: value}))
    assert str(e.value).startswith(f"hydra.sweeper.{key}=") and f"is invalid: expected {expected}" in str(e.value)


def test_trials_this_search_launched_that_never_reported_count_against_n_trials():
    """A killed trial (its job cancelled or dead: no summary) of this search process uses up one
    of n_trials, so a search whose jobs never report stops after n_trials launches; one killed
    under an earlier search process does not (it may be tried again); completed ones count."""
    from rnn_experiments.sweeps.search.sweeper import counted, process_id, used
    study = optuna.create_study()
    for process, state, killed in [(process_id(), "COMPLETE", False), (process_id(), "FAIL", True),
                                   (process_id(), "FAIL", True), ("gone:1", "FAIL", True)]:
        t = study.ask()
        t.set_user_attr("process", process)
        if killed:
            t.set_user_attr("killed", "its job ended without a summary.json")
        study.tell(t, 1.0 if state == "COMPLETE" else None, state=optuna.trial.TrialState[state])
    assert counted(study) == 1 and used(study) == 3


def test_a_resumed_search_does_not_replay_the_first_searchs_draws(tmp_path):
    """The same command again on the same storage (Search._open, as a resumed search opens its
    study): its sampler must not be seeded as the first search's was. What the inner sampler
    draws (before the no-repeat filter, which would hide a replay by drawing again) must hold
    none of the first search's parameters, and must be reproducible (the same seed + 3)."""
    from rnn_experiments.sweeps.search.sweeper import Search, suggest

    space = parse({"train.lr": "tag(log, interval(1e-4, 1e-2))"}, [])
    config = OmegaConf.create({"hydra": {"sweeper": {
        "direction": "maximize", "pruner": None, "n_jobs": 1,
        "sampler": {"_target_": "optuna.samplers.RandomSampler", "seed": 7}}}})
    spec = str(tmp_path / "optuna.journal")

    def search_once(n: int) -> tuple[list, list]:
        """Open the study as a search does, ask n trials: (their values, the inner sampler's draws)."""
        search = Search()
        search.config, search.space = config, space
        study = search._open(spec, "s")
        inner, drawn = study.sampler.inner, []
        real = inner.sample_independent
        inner.sample_independent = lambda *a: drawn.append(real(*a)) or drawn[-1]
        asked = []
        for _ in range(n):
            t = study.ask()
            for name, d in space.distributions.items():
                suggest(t, name, d)
            study.tell(t, 0.5)
            asked.append(t.params["train.lr"])
        return asked, drawn

    first, _ = search_once(3)
    resumed, drawn = search_once(2)
    assert not set(drawn) & set(first)            # a replayed seed draws the first search's values again
    assert len(set(first + resumed)) == 5
    expected = optuna.samplers.RandomSampler(seed=7 + 3)
    probe = optuna.create_study(sampler=expected)
    assert drawn[0] == probe.ask().suggest_float("train.lr", 1e-4, 1e-2, log=True)   # seed + trials held
