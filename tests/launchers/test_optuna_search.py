"""hparams_search=palindrome_optuna on the project's Optuna sweeper (rnn_experiments/sweeps/search/):
the preset, a search run in-process as `rnn-train` runs it (basic launcher), continued by the
same command, an exhausted discrete space, a pruned trial, a killed search, the report, every
setting that cannot work refused in one line before any trial; without the extra, one line."""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path
import socket
import subprocess
import sys

import pytest
import yaml

from conftest import compose_config
from rnn_experiments.errors import ConfigError
from rnn_experiments.run.provenance import COMMAND_ENV, SWEEP_ENV
from rnn_experiments.extras import (OLD_OPTUNA_SWEEPER, OPTUNA, check_command_line, installed,
                                          optuna_problem)

needs_optuna = pytest.mark.skipif(optuna_problem() is not None or installed(OLD_OPTUNA_SWEEPER),
                                  reason='needs pip install "rnn-experiments[optuna]" (optuna >= 4), '
                                         'without hydra-optuna-sweeper')

# a palindrome task a good learning rate solves by step 20 and a tiny one never does
FAST = ["hparams_search=palindrome_optuna", "model.hidden_size=16", "model.embedding_dim=8",
        "dataset.seq_length=4", "train.steps=40", "train.batch_size=32", "train.log_every=20",
        "train.eval_every=20", "train.eval_size=64", "device=cpu", "train.threads=1",
        "hydra.callbacks.analyze.formats=[]"]   # plots only where a test looks at one


def rnn_train(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    """`rnn-train ARGS` in this process: (exit status, stdout, stderr). Hydra's global state and
    the root logger are put back afterwards."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from rnn_experiments import train
    monkeypatch.setattr(sys, "argv", ["rnn-train", *args])
    monkeypatch.setenv(COMMAND_ENV, "")             # main() sets both: restored after the test
    monkeypatch.setenv(SWEEP_ENV, "")
    monkeypatch.delenv(SWEEP_ENV)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    code = 0
    try:
        train.main()
    except SystemExit as e:
        code = e.code
    finally:
        root.handlers[:], root.level = handlers, level
        HydraConfig.instance().cfg = None
        GlobalHydra.instance().clear()
    out = capsys.readouterr()
    return code, out.out, out.err


def load_study(storage: str, name: str = "palindrome_optuna"):
    from rnn_experiments.sweeps.search.study import load
    return load(storage, name)


def summary(run_dir) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


@needs_optuna
def test_the_preset_searches_lr_and_hidden_size_with_the_projects_sweeper():
    cfg = compose_config(["hparams_search=palindrome_optuna"], tiny=False, return_hydra_config=True)
    s = cfg.hydra.sweeper
    assert s._target_ == "hydra_plugins.rnn_experiments_sweeper.optuna_sweeper.OptunaSweeper"
    assert s.direction == "maximize" and s.n_trials == 20 and s.storage is None
    assert dict(s.params) == {"train.lr": "tag(log, interval(1e-4, 1e-2))",
                              "model.hidden_size": "choice(32, 64, 128, 256)"}
    assert s.sampler._target_ == "optuna.samplers.TPESampler" and s.sampler.seed == 0
    assert s.pruner._target_ == "optuna.pruners.MedianPruner"
    assert cfg.hydra.mode.name == "MULTIRUN" and cfg.experiment_name == "palindrome_optuna"
    assert cfg.dataset.name == "palindrome" and cfg.dataset.seq_length == 20


def test_missing_optuna_extra_is_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, OPTUNA, None)     # as if not installed
    monkeypatch.setitem(sys.modules, OLD_OPTUNA_SWEEPER, None)
    with pytest.raises(ConfigError, match=r'^hparams_search=palindrome_optuna needs optuna, '
                                          r'which is not installed: pip install "rnn-experiments\[optuna\]"'):
        check_command_line(["model=lstm", "hparams_search=palindrome_optuna"])
    check_command_line(["model=lstm", "seed=0,1"])           # nothing asked for: nothing needed
    code, _, err = rnn_train(monkeypatch, capsys, "hydra/sweeper=optuna")
    assert code == 2 and err.count("\n") == 1 and err.startswith("rnn-train: error: hydra/sweeper=optuna needs")


def test_hydras_old_optuna_plugin_beside_it_is_refused_in_one_line(monkeypatch):
    import rnn_experiments.extras as extras
    monkeypatch.setattr(extras, "installed", lambda module: True)   # hydra-optuna-sweeper too
    with pytest.raises(ConfigError, match=r"hydra-optuna-sweeper is installed.*pip uninstall hydra-optuna-sweeper"):
        check_command_line(["hparams_search=palindrome_optuna"])


def test_an_optuna_older_than_4_is_refused_in_one_line(monkeypatch):
    import importlib.metadata
    import rnn_experiments.extras as extras
    monkeypatch.setattr(extras, "installed", lambda module: module == "optuna")
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "2.10.1")
    with pytest.raises(ConfigError, match=r"needs optuna >= 4 \(2\.10\.1 is installed, not >= 4\): pip install -U"):
        check_command_line(["hparams_search=palindrome_optuna"])


@needs_optuna
@pytest.mark.slow   # a whole scenario (tests/conftest.py: tiers)
def test_a_search_reports_and_the_same_command_continues_it(tmp_path, monkeypatch, capsys):
    """Two trials, then the same command with n_trials=4 in another sweep folder (the default
    folder is new each time) and the same storage: two new trials with new parameters, trial N
    in folder N; the study's report ranks all four; a third run has nothing left to do."""
    storage = tmp_path / "study.journal"
    cmd = [*FAST, "train.lr=tag(log, interval(1e-7, 0.05))", "model.hidden_size=choice(8, 16)",
           f"hydra.sweeper.storage={storage}", "hydra/sweeper/pruner=none"]
    code, out, err = rnn_train(monkeypatch, capsys, *cmd, "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={tmp_path / 'a'}")
    assert code == 0, err
    code, out, err = rnn_train(monkeypatch, capsys, *cmd, "hydra.sweeper.n_trials=4", f"hydra.sweep.dir={tmp_path / 'b'}",
                               "hydra.callbacks.analyze.formats=[png]")
    assert code == 0, err
    assert "2 trial(s) so far, 2 to go (n_trials=4)" in out + err

    study = load_study(str(storage))
    trials = study.trials
    assert [t.number for t in trials] == [0, 1, 2, 3] and all(t.state.name == "COMPLETE" for t in trials)
    assert len({(t.params["train.lr"], t.params["model.hidden_size"]) for t in trials}) == 4   # no repeats
    for t in trials:
        folder = tmp_path / ("a" if t.number < 2 else "b") / str(t.number)
        assert t.user_attrs["run_dir"] == str(folder)
        cfg = yaml.safe_load((folder / ".hydra" / "config.yaml").read_text())
        assert cfg["train"]["lr"] == t.params["train.lr"] and cfg["model"]["hidden_size"] == t.params["model.hidden_size"]
        assert t.value == summary(folder)["final_eval_accuracy"]

    # the report of the second command: the whole study, best first, readable numbers
    report = (tmp_path / "b" / "analysis" / "search.md").read_text()
    assert report in out
    rows = [line.split(" | ") for line in report.splitlines() if re.match(r"^\| \d", line)]
    assert len(rows) == 4 and [r[2] for r in rows] == [f"{v:.4f}" for v in sorted((t.value for t in trials), reverse=True)]
    assert all(len(re.sub(r"[^0-9]", "", r[3].split("e")[0]).lstrip("0")) <= 4 for r in rows)   # lr: 4 digits
    best = max(trials, key=lambda t: t.value)
    assert f"best run folder: {best.user_attrs['run_dir']}" in report
    if len({t.value for t in trials}) >= 2:                    # importances over both parameters, summing to 1
        imp = dict(re.findall(r"(train\.lr|model\.hidden_size) (\d\.\d{3})", report.split("importances")[1]))
        assert set(imp) == {"train.lr", "model.hidden_size"} and abs(sum(map(float, imp.values())) - 1) < 0.003
    else:
        assert "parameter importances (PED-ANOVA): none (need two completed trials with different values" in report
    assert (tmp_path / "b" / "analysis" / "search_history.png").stat().st_size > 0
    shown = [Path(p) for p in re.findall(r"report: (\S+) \(table: (\S+?);", out)[-1]]
    assert shown == [tmp_path / "b" / "analysis" / "search.md", tmp_path / "b" / "analysis" / "search_trials.csv"]
    assert all(p.is_file() for p in shown)                   # the paths printed are where the files are
    result = yaml.safe_load((tmp_path / "b" / "optimization_results.yaml").read_text())
    assert result["best_value"] == best.value and result["best_run_dir"] == best.user_attrs["run_dir"]
    assert set(result["best_params"]) == {"train.lr", "model.hidden_size"}
    assert "seed=1 hydra.mode=RUN" in report     # the best setting at another seed, as a single run

    # rnn-analyze on a sweep folder of the search gives the same report
    from rnn_experiments.cli.rnn_analyze import main as analyze_main
    assert analyze_main([str(tmp_path / "a"), "--formats", "png"]) == 0
    assert (tmp_path / "a" / "analysis" / "search.md").read_text().splitlines()[2:] == report.splitlines()[2:]
    capsys.readouterr()

    code, out, err = rnn_train(monkeypatch, capsys, *cmd, "hydra.sweeper.n_trials=4", f"hydra.sweep.dir={tmp_path / 'c'}")
    assert code == 0 and "4 trial(s) so far, 0 to go" in out + err and len(load_study(str(storage)).trials) == 4


@needs_optuna
@pytest.mark.slow   # a whole scenario (tests/conftest.py: tiers)
def test_an_exhausted_discrete_space_says_so_and_stops(tmp_path, monkeypatch, capsys):
    code, out, err = rnn_train(monkeypatch, capsys, *FAST, "train.steps=20", "model.hidden_size=choice(4, 8)",
                               "train.lr=choice(0.01, 0.03)", "hydra.sweeper.n_trials=6",
                               f"hydra.sweep.dir={tmp_path}")
    assert code == 0, err
    assert "the search space is exhausted: the study holds all 4 of its parameter sets; stopping at 4" in out + err
    trials = load_study(str(tmp_path / "optuna.journal")).trials
    assert len(trials) == 4 and len({tuple(t.params.items()) for t in trials}) == 4
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.isdigit()) == ["0", "1", "2", "3"]


@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
@needs_optuna
def test_a_trial_worse_than_the_median_is_pruned_as_a_normal_end(tmp_path, monkeypatch, capsys):
    """A good trial, then (the same study) one with a learning rate that learns nothing: the
    median pruner stops it at its first evaluation. Its folder says pruned, with the checkpoint
    and metrics up to there; the study records it pruned; the command exits 0; the analysis
    counts it as pruned and offers no re-run."""
    cmd = [*FAST, "hydra.sweeper.pruner.n_startup_trials=1", f"hydra.sweep.dir={tmp_path}"]
    code, _, err = rnn_train(monkeypatch, capsys, *cmd, "hydra.sweeper.n_trials=1", "train.lr=tag(log, interval(0.03, 0.03))")
    assert code == 0, err
    code, out, err = rnn_train(monkeypatch, capsys, *cmd, "hydra.sweeper.n_trials=2", "train.lr=tag(log, interval(1e-7, 2e-7))")
    assert code == 0, err
    s = summary(tmp_path / "1")
    assert s["status"] == "pruned" and s["step"] == 20 < 40
    assert s["stop_reason"] == "MedianPruner stopped trial 1 (eval_accuracy %.4g at step 20)" % s["final_eval_accuracy"]
    assert (tmp_path / "1" / "checkpoint.pt").is_file()
    assert [r.split(",")[0] for r in (tmp_path / "1" / "metrics.csv").read_text().splitlines()[1:]] == ["20"]
    study = load_study(str(tmp_path / "optuna.journal"))
    assert [t.state.name for t in study.trials] == ["COMPLETE", "PRUNED"]
    assert study.trials[1].intermediate_values == {20: s["final_eval_accuracy"]}
    assert "| 1 | pruned |" in out and "MedianPruner stopped trial 1" in out

    from rnn_experiments.analysis.report import analyze
    from rnn_experiments.sweeps.search.report import extra_for
    lines = []
    res = analyze([str(tmp_path)], echo=lines.append, formats=(),
                  extra=extra_for([str(tmp_path)], echo=lines.append, formats=()))
    assert "1 (0, 1 pruned)" in "\n".join(lines)
    assert not (tmp_path / "analysis" / "rerun.sh").exists()
    assert res["extra"]["results"]["trials"] == {"complete": 1, "pruned": 1, "fail": 0}


def _values(folders) -> list[float]:
    return [summary(f)["final_eval_accuracy"] for f in folders]


@needs_optuna
@pytest.mark.slow   # a whole scenario (tests/conftest.py: tiers)
def test_a_search_of_two_seeds_a_trial_takes_their_mean_and_continues(tmp_path, monkeypatch, capsys):
    """seeds_per_trial=2 at seed=3: trial N is jobs 2N and 2N+1 at seeds 3 and 4, its value the
    mean of their final held-out accuracies, the report shows the std over them and n; the same
    command continues the study with 2 seeds a trial, and one with another number is refused."""
    import statistics
    storage = tmp_path / "study.journal"
    cmd = [*FAST, "train.lr=tag(log, interval(1e-3, 0.05))", "seed=3", "hydra.sweeper.seeds_per_trial=2",
           f"hydra.sweeper.storage={storage}", "hydra/sweeper/pruner=none"]
    code, out, err = rnn_train(monkeypatch, capsys, *cmd, "hydra.sweeper.n_trials=2", f"hydra.sweep.dir={tmp_path / 'a'}")
    assert code == 0, err
    assert "2 seeds a trial (its value: their mean)" in out + err
    trials = load_study(str(storage)).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    for t in trials:
        folders = [tmp_path / "a" / str(2 * t.number + j) for j in range(2)]
        assert t.user_attrs["run_dirs"] == [str(f) for f in folders] and t.user_attrs["seeds"] == [3, 4]
        assert [summary(f)["seed"] for f in folders] == [3, 4]
        for f in folders:
            cfg = yaml.safe_load((f / ".hydra" / "config.yaml").read_text())
            assert cfg["train"]["lr"] == t.params["train.lr"]            # the same parameters at each seed
        values = _values(folders)
        assert t.value == pytest.approx(sum(values) / 2, rel=1e-12) and t.user_attrs["seed_values"] == values
        assert t.user_attrs["std"] == pytest.approx(statistics.stdev(values)) and t.user_attrs["n"] == 2
    report = (tmp_path / "a" / "analysis" / "search.md").read_text()
    best = max(trials, key=lambda t: t.value)
    assert f"| {best.number} | complete | {best.value:.4f} | {best.user_attrs['std']:.4f} | 2 |" in report
    assert "the search ran it at seeds 3, 4" in report and "seed=5 hydra.mode=RUN" in report

    code, out, err = rnn_train(monkeypatch, capsys, *cmd, "hydra.sweeper.n_trials=3", f"hydra.sweep.dir={tmp_path / 'b'}")
    assert code == 0, err
    assert "2 trial(s) so far, 1 to go (n_trials=3)" in out + err
    third = load_study(str(storage)).trials[2]
    assert third.state.name == "COMPLETE" and third.user_attrs["run_dirs"] == [str(tmp_path / "b" / n) for n in ("4", "5")]
    assert third.value == pytest.approx(sum(_values([tmp_path / "b" / "4", tmp_path / "b" / "5"])) / 2, rel=1e-12)

    code, out, err = rnn_train(monkeypatch, capsys, *cmd, "hydra.sweeper.seeds_per_trial=1", "hydra.sweeper.n_trials=4",
                               f"hydra.sweep.dir={tmp_path / 'c'}")
    assert code == 2 and err.count("\n") == 1
    assert "hydra.sweeper.seeds_per_trial=1 is invalid: study 'palindrome_optuna' in " in err
    assert "holds trials of 2 seed(s) each" in err and not (tmp_path / "c" / "0").exists()


@needs_optuna
@pytest.mark.slow   # a whole scenario (tests/conftest.py: tiers)
def test_with_the_packed_launcher_a_trials_seeds_are_one_pack_and_pruned_together(tmp_path, monkeypatch, capsys):
    """hydra/launcher=packed (members in lock-step: strategy loop): a trial's two seeds are one
    pack (summary.json pack.size 2, its members the trial's folders). A good trial, then one
    that learns nothing: judged on the mean of its two seeds at its first evaluation (step 20),
    pruned; the seed whose report judged it stops at step 20, the other at its next row (30)."""
    cmd = [*FAST, "hydra.sweeper.seeds_per_trial=2", "hydra/launcher=packed", "hydra.launcher.strategy=loop",
           "train.steps=60", "train.log_every=10", "hydra.sweeper.pruner.n_startup_trials=1",
           f"hydra.sweep.dir={tmp_path}"]
    code, _, err = rnn_train(monkeypatch, capsys, *cmd, "hydra.sweeper.n_trials=1", "train.lr=tag(log, interval(0.03, 0.03))")
    assert code == 0, err
    code, out, err = rnn_train(monkeypatch, capsys, *cmd, "hydra.sweeper.n_trials=2", "train.lr=tag(log, interval(1e-7, 2e-7))")
    assert code == 0, err
    study = load_study(str(tmp_path / "optuna.journal"))
    assert [t.state.name for t in study.trials] == ["COMPLETE", "PRUNED"]
    for t in study.trials:
        folders = [Path(d) for d in t.user_attrs["run_dirs"]]
        assert [f.name for f in folders] == [str(2 * t.number), str(2 * t.number + 1)]
        packs = [summary(f)["pack"] for f in folders]
        assert all(p["size"] == 2 and p["members"] == [f.name for f in folders] for p in packs)
    good, pruned = study.trials
    assert good.value == pytest.approx(sum(_values([tmp_path / "0", tmp_path / "1"])) / 2, rel=1e-12)
    first, second = (summary(tmp_path / n) for n in ("2", "3"))
    assert first["status"] == second["status"] == "pruned"
    assert (second["step"], first["step"]) == (20, 30)            # judged at the second's report, then the first
    at_20 = [float(next(r for r in (tmp_path / n / "metrics.csv").read_text().splitlines() if r.startswith("20,"))
                   .split(",")[3]) for n in ("2", "3")]          # eval_accuracy at step 20, each seed
    assert pruned.intermediate_values == {20: pytest.approx(sum(at_20) / 2)}
    assert pruned.value == pytest.approx(sum(at_20) / 2) and pruned.user_attrs["seed_values"] == pytest.approx(at_20)
    assert second["stop_reason"] == ("MedianPruner stopped trial 1 (mean eval_accuracy %.4g over 2 of its 2 seeds "
                                     "at step 20)" % (sum(at_20) / 2))
    assert first["stop_reason"].startswith(second["stop_reason"]) and "this one at step 30" in first["stop_reason"]
    assert "| 1 | pruned |" in out


@needs_optuna
@pytest.mark.slow   # a whole scenario (tests/conftest.py: tiers)
def test_a_trial_of_a_killed_search_is_recorded_failed_not_left_running(tmp_path, monkeypatch, capsys):
    """A trial RUNNING in the study whose search process is gone (killed) and whose folder has
    no summary: the next search records it failed (killed), does not count it, runs new trials.
    An interruption in the middle of a launch records the trials it stopped the same way."""
    import optuna
    from rnn_experiments.sweeps.search.study import load
    storage = str(tmp_path / "optuna.journal")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])   # a search process that is gone
    dead.wait()
    study = load(storage, "palindrome_optuna", direction="maximize")
    orphan = study.ask({"train.lr": optuna.distributions.FloatDistribution(1e-3, 0.05, log=True)})
    orphan.set_user_attr("process", f"{socket.gethostname()}:{dead.pid}")
    orphan.set_user_attr("run_dir", str(tmp_path / "0"))
    (tmp_path / "0").mkdir()                               # its job was killed before writing anything

    cmd = [*FAST, "train.lr=tag(log, interval(1e-3, 0.05))", "hydra.sweeper.n_trials=1", f"hydra.sweep.dir={tmp_path}",
           "hydra/sweeper/pruner=none"]
    code, out, err = rnn_train(monkeypatch, capsys, *cmd)
    assert code == 0, err
    trials = load(storage, "palindrome_optuna").trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    assert "no summary.json" in trials[0].user_attrs["killed"]
    assert "trial 0" in out + err and "recorded as fail" in out + err

    # Ctrl-C during a launch (in the sweep's process the job exits 130): the trial is told failed
    from hydra._internal.core_plugins.basic_launcher import BasicLauncher

    def interrupted(self, job_overrides, initial_job_idx):
        raise SystemExit(130)
    monkeypatch.setattr(BasicLauncher, "launch", interrupted)
    code, _, _ = rnn_train(monkeypatch, capsys, *cmd[:-2], "hydra.sweeper.n_trials=3",
                           f"hydra.sweep.dir={tmp_path}", "hydra/sweeper/pruner=none")
    assert code == 130
    last = load(storage, "palindrome_optuna").trials[-1]
    assert last.state.name == "FAIL" and "killed" in last.user_attrs


REFUSED = [
    ("hydra.sweeper.n_trials=0", "hydra.sweeper.n_trials=0 is invalid: expected an integer >= 1"),
    ("hydra.sweeper.n_trials=-3", "hydra.sweeper.n_trials=-3 is invalid: expected an integer >= 1"),
    ("hydra.sweeper.direction=sideways", "hydra.sweeper.direction=sideways is invalid: expected minimize or maximize"),
    ("train.lr=tag(log, interval(-1, 1e-2))", "train.lr=tag(log, interval(-1, 1e-2)): a log interval needs ends > 0"),
    ("train.lr=interval(1e-2, 1e-4)", "train.lr=interval(1e-2, 1e-4): the interval's low end 0.01 is above its high end 0.0001"),
    ("hydra.sweeper.storage=sqlite:///no/such/folder/optuna.db", "the folder"),
    ("hydra.sweeper.sampler.seed=-1", "hydra.sweeper.sampler.seed=-1 is invalid: expected null or an integer from 0 to 2**32 - 1"),
    ("model.hidden_size=choice(0,-4)", "model.hidden_size=0 would fail: model.hidden_size=0 is invalid: expected an integer >= 1"),
    ("train.lr=-1", "every trial would fail: train.lr=-1.0 is invalid: expected a finite number > 0"),
    ("seed=0,1", "seed=0,1: a search compares settings at the same seeds, so the seed cannot be searched; "
                 "give one (seed=0) and hydra.sweeper.seeds_per_trial=K"),
    ("hydra.sweeper.seeds_per_trial=0", "hydra.sweeper.seeds_per_trial=0 is invalid: expected an integer >= 1"),
    pytest.param(("seed=4294967295", "hydra.sweeper.seeds_per_trial=2"),   # composes every trial's config: slow
                 "hydra.sweeper.seeds_per_trial=2 is invalid: a trial's last seed would fail: seed=4294967296 "
                 "is invalid", marks=pytest.mark.slow),
    (("+hydra.sweeper.sampler.n_startup_trials=5", "hydra/sweeper/sampler=random"),
     "hydra.sweeper.sampler.n_startup_trials is not a setting of RandomSampler"),
    ("hydra.sweeper.storage=sqlite://", "an in-memory database is not shared with the trials"),
    ("hydra/sweeper/sampler=grid", "hydra.sweeper.sampler=grid needs a discrete space"),
]


@needs_optuna
@pytest.mark.parametrize("arg, message", REFUSED, ids=[" ".join(a) if isinstance(a, tuple) else a
                                                         for a, _ in (getattr(r, "values", r) for r in REFUSED)])
def test_a_search_that_cannot_work_is_refused_in_one_line_before_any_trial(tmp_path, monkeypatch, capsys, arg, message):
    code, out, err = rnn_train(monkeypatch, capsys, "hparams_search=palindrome_optuna", "device=cpu",
                               f"hydra.sweep.dir={tmp_path / 'sweep'}", *(arg if isinstance(arg, tuple) else [arg]))
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("rnn-train: error: ") and message in err and err.endswith("no trial was started\n")
    assert not (tmp_path / "sweep").exists()          # nothing written
    assert "Launching" not in out
