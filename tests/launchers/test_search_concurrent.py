"""Two search processes started at once on one journal-file storage add their trials to one
study: none repeats another's parameters, the study reaches n_trials (those of both counted),
trial N runs in folder N of the process that asked it."""
from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from conftest import ROOT
from rnn_experiments.extras import OLD_OPTUNA_SWEEPER, installed, optuna_problem

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(optuna_problem() is not None or installed(OLD_OPTUNA_SWEEPER),
                                 reason='needs pip install "rnn-experiments[optuna]", without hydra-optuna-sweeper')]


def test_two_processes_share_one_study_without_repeats(tmp_path):
    storage = tmp_path / "shared.journal"
    cmd = [sys.executable, "-m", "rnn_experiments.train", "hparams_search=palindrome_optuna",
           "model.hidden_size=choice(8, 16)", "train.lr=tag(log, interval(1e-3, 0.05))", "model.embedding_dim=8",
           "dataset.seq_length=4", "train.steps=60", "train.batch_size=32", "train.log_every=20",
           "train.eval_every=20", "train.eval_size=64", "device=cpu", "train.threads=1",
           "hydra.sweeper.n_trials=6", f"hydra.sweeper.storage={storage}",
           "hydra.callbacks.analyze.formats=[]"]   # the report, no figures
    procs = [subprocess.Popen(cmd + [f"hydra.sweep.dir={tmp_path / name}"], cwd=ROOT, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for name in ("a", "b")]
    outs = [p.communicate(timeout=240)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(o[-2000:] for o in outs)

    from rnn_experiments.sweeps.search.study import load
    trials = [t for t in load(str(storage), "palindrome_optuna").trials if "not_run" not in t.user_attrs]
    assert len(trials) == 6 and all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    params = [(t.params["train.lr"], t.params["model.hidden_size"]) for t in trials]
    assert len(set(params)) == 6                                      # no repeats across the processes
    assert len({t.user_attrs["process"] for t in trials}) == 2        # both took part
    for t in trials:
        folder = [tmp_path / name / str(t.number) for name in ("a", "b") if (tmp_path / name / str(t.number)).is_dir()]
        assert len(folder) == 1 and t.user_attrs["run_dir"] == str(folder[0])
        cfg = yaml.safe_load((folder[0] / ".hydra" / "config.yaml").read_text())
        assert cfg["train"]["lr"] == t.params["train.lr"]
