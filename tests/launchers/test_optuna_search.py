"""hparams_search=palindrome_optuna: Hydra's Optuna sweeper searches learning rate and hidden size,
maximising what rnn-train returns (final_eval_accuracy); without the extra, one line."""
import json
import subprocess
import sys

import pytest
import yaml

from conftest import ROOT, TINY, compose_config
from rnn_experiments.errors import ConfigError
from rnn_experiments.runner.extras import OPTUNA_SWEEPER, check_command_line, installed

needs_optuna = pytest.mark.skipif(not installed(OPTUNA_SWEEPER),
                                  reason='needs pip install "rnn-experiments[optuna]"')


@needs_optuna
def test_the_search_preset_maximises_the_returned_accuracy_over_lr_and_hidden_size():
    cfg = compose_config(["hparams_search=palindrome_optuna"], tiny=False, return_hydra_config=True)
    s = cfg.hydra.sweeper
    assert s._target_.endswith("OptunaSweeper") and s.direction == "maximize"
    assert dict(s.params) == {"train.lr": "tag(log, interval(1e-4, 1e-2))",
                              "model.hidden_size": "choice(32, 64, 128, 256)"}
    assert cfg.hydra.mode.name == "MULTIRUN" and cfg.experiment_name == "palindrome_optuna"
    assert cfg.dataset.name == "palindrome" and cfg.dataset.seq_length == 20


def test_missing_optuna_extra_is_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, OPTUNA_SWEEPER, None)     # as if not installed
    with pytest.raises(ConfigError, match=r'^hparams_search=palindrome_optuna needs hydra-optuna-sweeper, '
                                          r'which is not installed: pip install "rnn-experiments\[optuna\]"'):
        check_command_line(["model=lstm", "hparams_search=palindrome_optuna"])
    check_command_line(["model=lstm", "seed=0,1"])           # nothing asked for: nothing needed
    from rnn_experiments import train
    from rnn_experiments.provenance import COMMAND_ENV
    monkeypatch.setenv(COMMAND_ENV, "")              # main() sets it: restored after the test
    monkeypatch.setattr(sys, "argv", ["rnn-train", "hydra/sweeper=optuna"])
    with pytest.raises(SystemExit) as e:
        train.main()
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and err.startswith("rnn-train: error: hydra/sweeper=optuna needs")


@needs_optuna
@pytest.mark.slow
def test_a_short_real_search(tmp_path):
    """Three trials of a tiny model, without -m (the preset is a multirun): each trial a run folder
    with lr and hidden size from the search space, the best value the highest accuracy."""
    sweep = tmp_path / "search"
    tiny = [o for o in TINY if not o.startswith("model.hidden_size=")]
    done = subprocess.run(
        [sys.executable, "-m", "rnn_experiments.train", "hparams_search=palindrome_optuna",
         "hydra.sweeper.n_trials=3", "model.hidden_size=choice(4, 8)", *tiny, "dataset.seq_length=4",
         "train.threads=1", "hydra.callbacks.analyze.formats=[]", f"hydra.sweep.dir={sweep}"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    trials = sorted(p for p in sweep.iterdir() if p.is_dir() and p.name != "analysis")
    assert [p.name for p in trials] == ["0", "1", "2"]
    assert (sweep / "analysis" / "summary.md").is_file()           # a search ends with its analysis too
    accuracy = []
    for trial in trials:
        cfg = yaml.safe_load((trial / ".hydra" / "config.yaml").read_text())
        assert 1e-4 <= cfg["train"]["lr"] <= 1e-2 and cfg["model"]["hidden_size"] in (4, 8)
        summary = json.loads((trial / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["experiment"] == "palindrome_optuna"
        accuracy.append(summary["final_eval_accuracy"])
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert set(result["best_params"]) == {"train.lr", "model.hidden_size"}
    assert result["best_value"] == pytest.approx(max(accuracy))     # maximised
    assert "alembic" not in done.stdout + done.stderr               # its plugin log is silenced
