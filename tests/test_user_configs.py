"""Users' own configs: a folder of their own experiment/ and model/ YAML files, added with
--config-dir (or hydra.searchpath), beside the packaged configs, which stay the defaults."""
import json
import shlex

import pytest

from conftest import TINY, compose_config, run_command
from rnn_experiments.analysis import collect
from rnn_experiments.analysis.rerun import reruns


def user_configs(folder):
    """A user's folder: a model variant and an experiment preset that uses it."""
    (folder / "model").mkdir(parents=True)
    (folder / "experiment").mkdir()
    (folder / "model" / "small_peep.yaml").write_text("defaults: [peep_lstm]\nname: small_peep\nhidden_size: 8\nembedding_dim: 4\n")
    (folder / "experiment" / "mine.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /model: small_peep\n"
        "experiment_name: mine\ndataset:\n  seq_length: 4\ntrain:\n  steps: 10\n")
    return folder


def test_user_presets_and_models_beside_the_packaged_ones(tmp_path):
    search = f"hydra.searchpath=[file://{user_configs(tmp_path / 'mine')}]"
    cfg = compose_config([search, "+experiment=mine"], tiny=False)
    assert (cfg.experiment_name, cfg.model.name, cfg.model.hidden_size, cfg.train.steps) == ("mine", "small_peep", 8, 10)
    assert compose_config([search, "model=small_peep"]).model.name == "small_peep"
    assert compose_config([search, "model=gru"]).model.name == "gru"       # the packaged ones are still there
    assert compose_config([search], tiny=False).model.name == "lstm"        # and still the defaults


@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
def test_config_dir_on_the_command_line_and_in_the_rerun_command(tmp_path):
    mine = user_configs(tmp_path / "my_configs")
    run_dir = tmp_path / "run"
    args = ["--config-dir", str(mine), "+experiment=mine",
            *[o for o in TINY if o.split("=")[0] not in ("model.hidden_size", "model.embedding_dim", "train.steps")],
            f"hydra.run.dir={run_dir}"]
    done = run_command("rnn-train", *args, cwd=tmp_path)
    assert done.code == 0, done.err[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["experiment"], summary["model"], summary["step"]) == ("mine", "small_peep", 10)

    # the analysis's re-run command for this run finds the user's configs again
    (run_dir / "summary.json").write_text(json.dumps({**summary, "status": "failed"}))
    df = collect(run_dir)
    (_, again), = reruns(df, [])
    assert again.startswith(f"python -m rnn_experiments.train --config-dir {mine} +experiment=mine")
    redo = run_command("rnn-train", *shlex.split(again)[3:], cwd=tmp_path)
    assert redo.code == 0, redo.err[-2000:]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"


@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
def test_config_dir_command_lines_are_checked_before_hydra_starts(tmp_path):
    """--config-dir gets the same one-line checks as the packaged configs (rnn_experiments/cli/preflight.py)."""
    from rnn_experiments.errors import ConfigError
    from rnn_experiments.cli.preflight import preflight
    mine = user_configs(tmp_path / "my_configs")
    (mine / "experiment" / "bad.yaml").write_text("# @package _global_\ntrain:\n  lr: -1.0\n")
    run_dir = tmp_path / "run"
    ok = ["--config-dir", str(mine), "+experiment=mine", f"hydra.run.dir={run_dir}"]
    preflight(ok, "config")   # the user's preset composes and its values are valid
    cases = [
        (["--config-dir", str(mine), "+experiment=bad", f"hydra.run.dir={run_dir}"], "train.lr=-1.0 is invalid"),
        ([*ok, "model.hidden_sizee=3"], "model.hidden_sizee"),
        ([*ok, "model.hidden_size=abc"], "model.hidden_size"),
        (["--config-dir", str(mine), "+experiment=theirs", f"hydra.run.dir={run_dir}"], "theirs"),
        (["--config-dir", str(tmp_path / "nowhere"), "+experiment=mine"], f"--config-dir {tmp_path / 'nowhere'} is invalid"),
    ]
    for argv, message in cases:
        with pytest.raises(ConfigError) as e:
            preflight(argv, "config")
        assert message in str(e.value) and "\n" not in str(e.value), (argv, str(e.value))
    assert not run_dir.exists()


def test_config_dir_bad_value_is_one_line_and_makes_no_folder(tmp_path):
    mine = user_configs(tmp_path / "my_configs")
    run_dir = tmp_path / "run"
    done = run_command("rnn-train", "--config-dir", str(mine), "+experiment=mine", "train.lr=-1",
                       f"hydra.run.dir={run_dir}", cwd=tmp_path)
    assert done.code == 2
    assert done.err.startswith("rnn-train: error: train.lr=-1") and done.err.count("\n") == 1
    assert not run_dir.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["my_configs"]
