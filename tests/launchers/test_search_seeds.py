"""A search of k seeds a trial (rnn_experiments/sweeps/search/seeds.py), its pieces without Hydra
runs: the pruner judges the mean over the seeds at a step (in lock-step, and one seed after the
other), every run of a pruned trial stops, a trial's value and spread from its runs' folders, a
study keeps the number of seeds it was made with, the report shows each trial's spread."""
from __future__ import annotations

import json
import math

import pytest
from omegaconf import OmegaConf

optuna = pytest.importorskip("optuna", minversion="4")

from rnn_experiments.run.status import StopRun  # noqa: E402
from rnn_experiments.sweeps.guard import Refused  # noqa: E402
from rnn_experiments.sweeps.search import SearchError  # noqa: E402
from rnn_experiments.sweeps.search.seeds import PRUNED, last_judged, report_key, with_seed  # noqa: E402
from rnn_experiments.sweeps.search.space import parse  # noqa: E402
from rnn_experiments.sweeps.search.sweeper import trial_outcome  # noqa: E402
from rnn_experiments.sweeps.search.trial import TrialReporter  # noqa: E402

LOWER = 0.5   # ThresholdPruner(lower=LOWER): a trial whose value at a step is below it is pruned


def folder(tmp_path, name: str, status: str | None, **summary):
    """A run folder whose summary.json says `status` (None: the run has not started)."""
    path = tmp_path / name
    path.mkdir(exist_ok=True)
    if status is not None:
        (path / "summary.json").write_text(json.dumps({"status": status, **summary}))
    return path


def seeded_trial(tmp_path, k: int, statuses):
    """A study with ThresholdPruner(lower=LOWER) and one trial of k seeds whose folders say
    `statuses`; (study, trial, its k reporters, the folders)."""
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=LOWER))
    trial = study.ask()
    folders = [folder(tmp_path, str(j), statuses[j]) for j in range(k)]
    trial.set_user_attr("seeds", list(range(k)))
    trial.set_user_attr("run_dirs", [str(f) for f in folders])
    trial.set_user_attr("run_dir", str(folders[0]))
    return study, trial, [TrialReporter(trial, j, folders) for j in range(k)], folders


def intermediate(study, trial) -> dict:
    return study._storage.get_trial(trial._trial_id).intermediate_values


@pytest.mark.parametrize("values", [(0.4, 0.8), (0.2, 0.6), (0.3, 0.65)])
def test_a_trial_of_two_seeds_in_lock_step_is_judged_on_their_mean(tmp_path, values):
    """Both runs running (a pack): the first seed's report at step 20 waits for the second's,
    which sets the trial's intermediate value to the mean and asks the pruner; each of these
    pairs straddles the threshold, so the decision is the mean's, not either seed's. A pruned
    trial's other run stops at its next metrics row."""
    study, trial, (first, second), _ = seeded_trial(tmp_path, 2, ["running", "running"])
    mean = sum(values) / 2
    prunes = mean < LOWER
    first.write({"step": 20, "eval_accuracy": values[0]})          # the other seed has not reported 20
    assert intermediate(study, trial) == {}
    if not prunes:
        second.write({"step": 20, "eval_accuracy": values[1]})
        first.write({"step": 30, "eval_accuracy": ""})             # goes on
        assert intermediate(study, trial) == {20: pytest.approx(mean)}
        assert PRUNED not in study._storage.get_trial(trial._trial_id).user_attrs
        return
    with pytest.raises(StopRun) as judged:
        second.write({"step": 20, "eval_accuracy": values[1]})
    assert intermediate(study, trial) == {20: pytest.approx(mean)}
    assert judged.value.status == "pruned"
    assert judged.value.reason == (f"ThresholdPruner stopped trial 0 (mean eval_accuracy {mean:.4g} over 2 of its "
                                   f"2 seeds at step 20)")
    with pytest.raises(StopRun) as follows:
        first.write({"step": 30, "eval_accuracy": ""})              # its next row: it stops too
    assert follows.value.status == "pruned"
    assert follows.value.reason.startswith(judged.value.reason) and "this one at step 30" in follows.value.reason


def test_one_seed_alone_is_judged_on_its_own_value(tmp_path):
    """The reference the means above differ from: a trial of one run is judged on its value."""
    study, trial, (only,), _ = seeded_trial(tmp_path, 1, ["running"])
    only = TrialReporter(trial)
    with pytest.raises(StopRun, match=r"^ThresholdPruner stopped trial 0 \(eval_accuracy 0.4 at step 20\)$"):
        only.write({"step": 20, "eval_accuracy": 0.4})
    assert intermediate(study, trial) == {20: 0.4}


def test_seeds_run_one_after_the_other_are_judged_on_the_seeds_that_reported(tmp_path):
    """The second seed's run has not started while the first trains (basic launcher): the first
    is judged on its own value, then the second on the mean of both, which replaces it."""
    study, trial, (first, second), folders = seeded_trial(tmp_path, 2, ["running", None])
    first.write({"step": 20, "eval_accuracy": 0.6})                 # alone: 0.6 >= LOWER, goes on
    assert intermediate(study, trial) == {20: 0.6}
    folder(tmp_path, "0", "completed")
    folder(tmp_path, "1", "running")
    with pytest.raises(StopRun, match=r"mean eval_accuracy 0.4 over 2 of its 2 seeds at step 20"):
        second.write({"step": 20, "eval_accuracy": 0.2})            # (0.6 + 0.2) / 2 < LOWER
    assert intermediate(study, trial) == {20: pytest.approx(0.4)}

    # pruned on the first seed alone: the second stops at its first row
    (tmp_path / "b").mkdir()
    study, trial, (first, second), folders = seeded_trial(tmp_path / "b", 2, ["running", None])
    with pytest.raises(StopRun, match=r"over 1 of its 2 seeds at step 20"):
        first.write({"step": 20, "eval_accuracy": 0.3})
    folder(tmp_path / "b", "0", "pruned")
    folder(tmp_path / "b", "1", "running")
    with pytest.raises(StopRun, match="every seed of the trial stops, this one at step 10"):
        second.write({"step": 10, "eval_accuracy": ""})
    assert study._storage.get_trial(trial._trial_id).user_attrs[PRUNED]["step"] == 20


def test_a_later_seeds_report_at_an_earlier_step_is_judged_at_that_step(tmp_path):
    """Seeds out of step (the first ran ahead alone): the mean at step 20 is judged when the second
    seed reports it, not the first seed's later value at step 40; the pruned trial's value and
    spread are those of step 20."""
    study, trial, (first, second), folders = seeded_trial(tmp_path, 2, ["running", None])
    first.write({"step": 20, "eval_accuracy": 0.6})
    first.write({"step": 40, "eval_accuracy": 0.6})                 # alone, ahead: goes on
    folder(tmp_path, "0", "completed")
    folder(tmp_path, "1", "running")
    with pytest.raises(StopRun, match=r"mean eval_accuracy 0.4 over 2 of its 2 seeds at step 20"):
        second.write({"step": 20, "eval_accuracy": 0.2})            # (0.6 + 0.2) / 2 < LOWER at 20
    frozen = study._storage.get_trial(trial._trial_id)
    assert frozen.user_attrs[PRUNED]["step"] == 20
    assert last_judged(frozen) == {0: 0.6, 1: 0.2}


def test_a_seed_that_ended_is_not_waited_for(tmp_path):
    """A seed that diverged before step 40 never reports it: the others are judged without it."""
    study, trial, reporters, _ = seeded_trial(tmp_path, 3, ["running", "diverged", "running"])
    reporters[0].write({"step": 40, "eval_accuracy": 0.9})
    assert intermediate(study, trial) == {}                        # seed 2 runs and has not reported
    reporters[2].write({"step": 40, "eval_accuracy": 0.7})
    assert intermediate(study, trial) == {40: pytest.approx(0.8)}


def test_a_trial_of_k_seeds_ends_as_its_run_folders_say(tmp_path):
    """Completed: the mean of the k final values, their sample standard deviation, n = k. A seed
    that diverged fails the trial (named); one killed (no summary.json) fails it as killed; a
    pruned trial's value and spread are those of the seeds at its last judged step."""
    values = [0.5, 0.75, 1.0]
    study, trial, _, folders = seeded_trial(tmp_path, 3, ["completed"] * 3)
    for f, v in zip(folders, values):
        folder(tmp_path, f.name, "completed", final_eval_accuracy=v)
    state, value, attrs = trial_outcome(study, trial)
    mean = sum(values) / 3
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (3 - 1))
    assert state == "COMPLETE" and value == pytest.approx(mean)
    assert attrs["seed_values"] == values and attrs["std"] == pytest.approx(std) and attrs["n"] == 3

    folder(tmp_path, "1", "diverged", diverged_at_step=7)
    state, value, attrs = trial_outcome(study, trial)
    assert (state, value) == ("FAIL", None) and "killed" not in attrs
    assert attrs["failure"] == f"seed 1 ({folders[1]}): diverged at step 7"
    assert attrs["seed_values"] == [0.5, None, 1.0]

    (folders[1] / "summary.json").unlink()                        # killed before it wrote anything
    state, _, attrs = trial_outcome(study, trial)
    assert state == "FAIL" and attrs["killed"].startswith(f"seed 1 ({folders[1]}): no summary.json")

    folder(tmp_path, "1", "pruned")
    reports = {(0, 20): 0.2, (1, 20): 0.4, (0, 40): 0.3}          # judged at 40 on seed 0 alone
    for (j, step), v in reports.items():
        study._storage.set_trial_system_attr(trial._trial_id, report_key(j, step), v)
    for step in (20, 40):
        study._storage.set_trial_intermediate_value(trial._trial_id, step, 0.3)
    state, value, attrs = trial_outcome(study, trial)
    assert (state, value) == ("PRUNED", None)
    assert attrs["seed_values"] == [0.3, None, None] and attrs["n"] == 1 and attrs["std"] is None


def test_a_trials_seed_replaces_any_seed_override():
    assert with_seed(["a=1", "seed=3", "+b=2"], 5) == ["a=1", "+b=2", "seed=5"]
    assert with_seed(["++seed=3"], 4) == ["++seed=4"] and with_seed(["x=1", "+seed=3"], 4) == ["x=1", "+seed=4"]


def test_a_resumed_study_keeps_its_seeds_per_trial(tmp_path):
    """A study records the seeds a trial it was made with; a search on it with another number
    is refused in one line naming the key (its trials' values are means over that number)."""
    from rnn_experiments.sweeps.search.sweeper import Search
    spec = str(tmp_path / "optuna.journal")

    def open_with(k: int, name: str = "s"):
        search = Search()
        search.config = OmegaConf.create({"hydra": {"sweeper": {
            "direction": "maximize", "pruner": None, "n_jobs": 1, "seeds_per_trial": k,
            "sampler": {"_target_": "optuna.samplers.RandomSampler", "seed": 0}}}})
        search.space = parse({"train.lr": "interval(1e-4, 1e-2)"}, [])
        return search._open(spec, name)

    assert open_with(2).user_attrs["seeds_per_trial"] == 2
    assert open_with(2).study_name == "s"                           # the same number: continued
    with pytest.raises(Refused) as e:
        open_with(3)
    assert str(e.value).startswith("hydra.sweeper.seeds_per_trial=3 is invalid: study 's' in ")
    assert "holds trials of 2 seed(s) each" in str(e.value) and "\n" not in str(e.value)

    from rnn_experiments.sweeps.search.study import load
    before = load(spec, "old", direction="maximize")      # a study made before the setting: one seed a trial
    before.add_trial(optuna.trial.create_trial(value=1.0))
    with pytest.raises(Refused, match="holds trials of 1 seed"):
        open_with(2, "old")


def test_the_report_shows_each_trials_spread_over_its_seeds(tmp_path):
    from rnn_experiments.sweeps.search.report import report
    from rnn_experiments.sweeps.search.seeds import spread
    study = optuna.create_study(study_name="s", direction="maximize")
    study.set_user_attr("seeds_per_trial", 2)
    dist = {"train.lr": optuna.distributions.FloatDistribution(1e-4, 1e-2)}
    packed = {"pack": {"size": 2, "members": ["2", "3"]}, "wall_time_s": 3.0}   # trial 1's seeds: one pack
    for n, values in enumerate([(0.5, 0.9), (0.6, 0.65)]):
        t = study.ask(dist)
        folders = [folder(tmp_path, f"{2 * n + j}", "completed", final_eval_accuracy=v, step=40,
                          **({"wall_time_s": 1.0} if n == 0 else packed)) for j, v in enumerate(values)]
        for k, v in {"seeds": [3, 4], "run_dirs": [str(f) for f in folders], "run_dir": str(folders[0]),
                     "seed_values": list(values), **spread(values)}.items():
            t.set_user_attr(k, v)
        study.tell(t, sum(values) / 2)
    lines = []
    out = report(study, tmp_path / "r", sweep_dir=tmp_path, echo=lines.append, formats=())
    text = (tmp_path / "r" / "search.md").read_text()
    header = next(line for line in text.splitlines() if line.startswith("| trial"))
    assert header.startswith("| trial | state | value | std | n |")
    best = study.best_trial
    assert f"| {best.number} | complete | {best.value:.4f} | {best.user_attrs['std']:.4f} | 2 |" in text
    assert (f"best: trial {best.number}, value {best.value:.4f} (the mean over 2 seeds 3, 4; "
            f"std {best.user_attrs['std']:.4f})") in text
    table = out["table"].set_index("trial")
    for t in study.trials:   # search_trials.csv: each seed's value
        assert table.loc[t.number, "std"] == pytest.approx(t.user_attrs["std"]) and table.loc[t.number, "n"] == 2
        assert table.loc[t.number, "seed_values"] == " ".join(map(repr, t.user_attrs["seed_values"]))
    assert list(table["wall_time_s"].sort_index()) == [1.0 + 1.0, 3.0]   # its seeds' sum; a pack's time once
    res = out["results"]
    assert res["seeds_per_trial"] == 2 and res["best_n"] == 2 and res["best_std"] == best.user_attrs["std"]


def test_a_config_without_an_integer_seed_cannot_have_seeds_a_trial():
    from rnn_experiments.sweeps.search.checks import check_seeds_per_trial
    space = parse({"x": "interval(0, 1)"}, [])
    app = OmegaConf.create({"x": 0.5, "hydra": {"sweeper": {"seeds_per_trial": 2}}})   # another app's config
    with pytest.raises(SearchError, match=r"^hydra.sweeper.seeds_per_trial=2 is invalid: the config has no "
                                          r"integer `seed` for a trial's seeds \(seed, seed\+1, ..., seed\+1\)$"):
        check_seeds_per_trial(app, space, loader=None)
    check_seeds_per_trial(OmegaConf.merge(app, {"seed": 7}), space, loader=None)   # an app's seed: fine
