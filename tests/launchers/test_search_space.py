"""The Optuna search's parts without Hydra runs: the search space read from Hydra's grammar, the
sampler that never proposes a parameter set twice, the trial reporter that prunes, a trial's
outcome from its run folder, the report's table and files."""
from __future__ import annotations

import json
import math
import random
import re

import pytest

optuna = pytest.importorskip("optuna", minversion="4")

from omegaconf import OmegaConf  # noqa: E402

from rnn_experiments.sweeps.search import SearchError  # noqa: E402
from rnn_experiments.sweeps.search.space import combinations, ends, format_value, key, parse, untried  # noqa: E402
from rnn_experiments.sweeps.search.study import Unrepeated, make_sampler, tried  # noqa: E402
from rnn_experiments.sweeps.search.sweeper import outcome, tell  # noqa: E402
from rnn_experiments.sweeps.search.trial import TrialReporter  # noqa: E402
from rnn_experiments.run.status import StopRun  # noqa: E402

D = optuna.distributions
CONFIG = OmegaConf.create({"model": {"hidden_size": 256}, "train": {"lr": 1e-4}, "seed": 0})


def test_the_presets_syntax_becomes_optuna_distributions():
    space = parse({"train.lr": "tag(log, interval(1e-4, 1e-2))", "model.hidden_size": "choice(32, 64, 128)"},
                  ["model=lstm,peep_lstm", "device=cpu", "+x.y=range(16, 65, 16)"], CONFIG)
    assert space.distributions == {
        "train.lr": D.FloatDistribution(1e-4, 1e-2, log=True),
        "model.hidden_size": D.CategoricalDistribution((32, 64, 128)),
        "model": D.CategoricalDistribution(("lstm", "peep_lstm")),
        "x.y": D.IntDistribution(16, 64, step=16)}
    assert space.fixed == ["device=cpu"]
    assert space.overrides({"train.lr": 1e-05, "model.hidden_size": 64, "model": "lstm", "x.y": 32}) == [
        "device=cpu", "train.lr=1e-05", "model.hidden_size=64", "model=lstm", "+x.y=32"]
    assert space.size() == math.inf                        # a continuous dimension


def test_an_interval_of_an_integer_key_is_integer_and_the_command_line_wins():
    space = parse({"model.hidden_size": "choice(32, 64)"}, ["model.hidden_size=interval(16, 256)"], CONFIG)
    assert space.distributions == {"model.hidden_size": D.IntDistribution(16, 256)}
    fixed = parse({"model.hidden_size": "choice(32, 64)"}, ["model.hidden_size=48"], CONFIG)
    assert fixed.distributions == {} and fixed.fixed == ["model.hidden_size=48"]


def test_casts_and_float_ranges_become_the_distributions_hydra_optuna_sweeper_makes():
    """int(interval(...)) is integer for any key (its ends are ints), also on a log scale; a range
    with a float step is the stepped float distribution over exactly its values."""
    space = parse({"train.lr": "tag(log, int(interval(1, 100)))", "x.a": "int(interval(2, 9))",
                   "x.b": "range(0.1, 0.5, step=0.1)"}, [], CONFIG)
    assert space.distributions == {"train.lr": D.IntDistribution(1, 100, log=True), "x.a": D.IntDistribution(2, 9),
                                   "x.b": D.FloatDistribution(0.1, 0.4, step=0.1)}
    b = space.distributions["x.b"]
    values = sorted({round(b.low + k * b.step, 12) for k in range(round((b.high - b.low) / b.step) + 1)})
    assert values == [0.1, 0.2, 0.3, 0.4]                  # range(0.1, 0.5, step=0.1)'s values


@pytest.mark.parametrize("entry, message", [
    ("tag(log, interval(-1, 1e-2))", "a log interval needs ends > 0"),
    ("interval(1e-2, 1e-4)", "low end 0.01 is above its high end 0.0001"),
    ("tag(foo, choice(1, 2))", "the only tag a search reads is tag(log, interval(low, high))"),
    ("choice([1, 2], [3])", "choices must be numbers, strings or booleans"),
    ("choice(1, 1)", "a value appears twice"),
    ("interval(1e-4", "no viable alternative"),
])
def test_entries_that_cannot_be_searched_are_one_line_errors(entry, message):
    with pytest.raises(SearchError, match=re.escape(f"train.lr={entry}: ") + ".*" + re.escape(message)) as e:
        parse({"train.lr": entry}, [], CONFIG)
    assert "\n" not in str(e.value)


def test_the_ends_of_a_space_are_what_the_up_front_check_composes():
    space = parse({"train.lr": "tag(log, interval(1e-4, 1e-2))", "model.hidden_size": "choice(32, 64, 128)"},
                  [], CONFIG)
    assert ends(space.distributions["train.lr"]) == [1e-4, 1e-2]
    combos = list(combinations(space))
    assert len(combos) == 6 and {c["model.hidden_size"] for c in combos} == {32, 64, 128}
    assert {c["train.lr"] for c in combos} == {1e-4, 1e-2}
    # beyond the limit: each end once, the other dimensions at their first end
    one_at_a_time = list(combinations(space, limit=4))
    assert len(one_at_a_time) == 1 + 1 + 2


def test_format_value_reads_back_through_hydras_grammar():
    from hydra.core.override_parser.overrides_parser import OverridesParser
    for value in (1e-05, 0.0012345678901234567, 3, True, "peep_lstm", "a b,c"):
        parsed = OverridesParser.create().parse_override(f"k={format_value(value)}")
        assert parsed.value() == value


def _study(space, sampler_cfg, n_existing=0):
    sampler = make_sampler(OmegaConf.create(sampler_cfg), space, n_existing)
    return optuna.create_study(sampler=sampler, direction="maximize")


def _ask(study, space):
    from rnn_experiments.sweeps.search.sweeper import suggest
    trial = study.ask()
    for n, d in space.distributions.items():
        suggest(trial, n, d)
    return trial


def test_the_sampler_never_proposes_a_parameter_set_twice_and_exhausts_a_discrete_space():
    space = parse({"model.hidden_size": "choice(4, 8, 16)", "train.lr": "choice(0.1, 0.01)"}, [], CONFIG)
    study = _study(space, {"_target_": "optuna.samplers.TPESampler", "seed": 0, "n_startup_trials": 2})
    assert isinstance(study.sampler, Unrepeated)
    seen = []
    for _ in range(6):                       # TPE alone repeats itself in a space this small
        t = _ask(study, space)
        seen.append(key(t.params))
        study.tell(t, 0.5)
    assert len(set(seen)) == 6 == space.size()
    assert len(tried(study, space)) == 6 and untried(space, tried(study, space), random.Random(0)) is None


def test_a_continued_study_gets_other_parameters_from_the_same_seed():
    space = parse({"train.lr": "tag(log, interval(1e-4, 1e-2))"}, [], CONFIG)
    cfg = {"_target_": "optuna.samplers.TPESampler", "seed": 0, "n_startup_trials": 10}
    first = _study(space, cfg)
    a = [_ask(first, space).params["train.lr"] for _ in range(3)]
    again = [_ask(_study(space, cfg), space).params["train.lr"] for _ in range(1)]
    assert again[0] == a[0]                                 # the same seed, the same first trial ...
    continued = _study(space, cfg, n_existing=3)
    assert _ask(continued, space).params["train.lr"] not in a   # ... a continued study: seed + 3


def _reporting_study():
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner(n_startup_trials=1))
    good = study.ask()
    for step, v in ((20, 0.9), (40, 1.0)):
        good.report(v, step)
    study.tell(good, 1.0)
    return study


def test_the_trial_reporter_reports_each_evaluation_and_prunes_a_trial_below_the_median():
    study = _reporting_study()
    trial = study.ask()
    sink = TrialReporter(trial)
    sink.write({"step": 10, "loss": 0.6, "eval_accuracy": ""})    # no evaluation: nothing reported
    with pytest.raises(StopRun) as e:
        sink.write({"step": 20, "loss": 0.6, "eval_accuracy": 0.47})
    assert e.value.status == "pruned" and "MedianPruner" in e.value.reason and "at step 20" in e.value.reason
    assert study.trials[1].intermediate_values == {20: 0.47}
    better = TrialReporter(study.ask())
    better.write({"step": 20, "eval_accuracy": 0.95})            # above the median: goes on
    assert study.trials[2].intermediate_values == {20: 0.95}


@pytest.mark.parametrize("summary, state, attrs", [
    ({"status": "completed", "final_eval_accuracy": 0.75}, "COMPLETE", {}),
    ({"status": "pruned", "stop_reason": "x"}, "PRUNED", {}),
    ({"status": "diverged", "diverged_at_step": 7}, "FAIL", {"failure": "diverged at step 7"}),
    ({"status": "interrupted", "signal": "SIGTERM"}, "FAIL", {"killed": "interrupted (SIGTERM)"}),
    ({"status": "running"}, "FAIL", {"killed": "still says running: its job was killed"}),
    (None, "FAIL", {"killed": "no summary.json"}),
])
def test_a_trial_ends_as_its_run_folder_says(tmp_path, summary, state, attrs):
    if summary is not None:
        (tmp_path / "summary.json").write_text(json.dumps(summary))
    got_state, value, got_attrs = outcome(tmp_path)
    assert got_state == state
    assert value == (0.75 if state == "COMPLETE" else None)
    for k, v in attrs.items():
        assert v in got_attrs[k]
    if state != "FAIL" or "failure" in attrs:
        assert "killed" not in got_attrs      # killed trials alone are not counted and may be re-tried
    study = _reporting_study()
    trial = study.ask()
    trial.report(0.5, 20)
    tell(study, trial.number, got_state, value, got_attrs)
    assert study.trials[-1].state.name == state


def _conf(group: str):
    from rnn_experiments.config import conf_dir
    return sorted((conf_dir() / "hydra" / "sweeper" / group).glob("*.yaml"))


@pytest.mark.parametrize("path", _conf("sampler"), ids=lambda p: p.stem)
def test_every_sampler_config_builds_and_proposes_new_parameter_sets(path):
    import importlib.util
    if path.stem == "cmaes" and importlib.util.find_spec("cmaes") is None:
        with pytest.raises(SearchError, match="needs the cmaes package, which is not installed: pip install cmaes"):
            make_sampler(OmegaConf.load(path), parse({"model.hidden_size": "choice(4, 8)"}, [], CONFIG))
        return
    space = parse({"model.hidden_size": "choice(4, 8, 16)", "train.lr": "choice(0.1, 0.01)"}, [], CONFIG)
    study = optuna.create_study(sampler=make_sampler(OmegaConf.merge(OmegaConf.load(path), {"seed": 1}), space))
    seen = set()
    for _ in range(4):
        t = _ask(study, space)
        seen.add(key(t.params))
        study.tell(t, float(len(seen)))
    assert len(seen) == 4


@pytest.mark.parametrize("path", _conf("pruner"), ids=lambda p: p.stem)
def test_every_pruner_config_builds(path):
    from rnn_experiments.sweeps.search.study import make_pruner
    node = OmegaConf.load(path)
    if path.stem == "threshold":            # needs a bound: refused in one line without one
        with pytest.raises(SearchError, match=r"hydra.sweeper.pruner \(optuna.pruners.ThresholdPruner\) cannot be built"):
            make_pruner(node)
        node.lower = 0.5
    assert isinstance(make_pruner(node), optuna.pruners.BasePruner)
