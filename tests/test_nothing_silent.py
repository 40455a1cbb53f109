"""Nothing silent, command side: a setting is used or refused; a sweep is checked as a whole by the
function that checks a single run; resources are bounded; every refusal is one line, exit 2,
before anything is written (docs/reliability.md, "Nothing silent"). The analysis side:
tests/analysis/."""
from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import pytest

from conftest import STUDY_TINY, TINY, compose_config, run_command
from rnn_experiments.config import validate
from rnn_experiments.errors import ConfigError


def refused(result, message: str, folder=None) -> None:
    """One line naming the problem, exit 2, and (when given) no folder made."""
    assert result.code == 2, result.err[-2000:]
    assert result.err.count("\n") == 1 and result.err.startswith(f"{_prog(result)}: error: "), result.err
    assert message in result.err, result.err
    if folder is not None:
        assert not os.path.lexists(folder) or list(folder.iterdir()) == []


def _prog(result) -> str:
    return result.err.split(":", 1)[0]


# ---- 1. a setting is used or refused ------------------------------------------------------------

@pytest.mark.parametrize("overrides, message", [
    (["+model.num_layers=3"], "model.num_layers=3 is not a setting of model=lstm (rnn_experiments.models.lstm.LSTM): "
                              "expected one of embedding_dim, hidden_size, init, log_softmax_axis, reset_at_padding"),
    (["+model.dropout=0.5"], "model.dropout=0.5 is not a setting of model=lstm"),
    (["+dataset.path=/x.txt"], "dataset.path='/x.txt' is not a setting of dataset=palindrome "
                               "(rnn_experiments.data.palindrome.PalindromeDataset): expected one of seq_length, eval_seed"),
    (["+dataset.gutenberg=true"], "dataset.gutenberg=True is not a setting of dataset=palindrome"),
    (["model=peep_lstm", "+model.reset_at_padding=true"], "model.reset_at_padding=True is not a setting of model=peep_lstm"),
    (["scheduler=step", "+scheduler.step=3"], "scheduler.step=3 is not a setting of scheduler=step "
                                              "(torch.optim.lr_scheduler.StepLR): expected one of step_size, gamma"),
    (["sample.length=50"], "sample.length=50 is not used while sample.enabled=false"),
    (["train.cuda_graphs=false"], "train.cuda_graphs=False is not used unless the run is on a GPU"),
    (["model=generator", "dataset=text", "dataset.path=/x", "model.num_layers=1", "model.dropout=0.3"],
     "model.dropout=0.3 is not used unless num_layers > 1: expected its default (0.0)"),
    (["model=generator", "dataset=text", "dataset.path=/x", "sample.enabled=true", "sample.top_k=3"],
     "sample.top_k=3 is not used unless sample.temperatures is not empty"),
    (["model=generator", "dataset=text", "dataset.path=/x", "sample.enabled=true", "sample.seed=7"],
     "sample.seed=7 is not used unless sample.temperatures is not empty"),
    (["++train.lrr=1"], "train.lrr is not a setting (a typo?): expected one of the settings of train: steps,"),
    (["++foo=1"], "foo is not a setting (a typo?): expected one of the settings at the top level"),
    (["experiment_name=x/../../../.."], "experiment_name='x/../../../..' is invalid: expected a name for the run's folder"),
    (["experiment_name=" + "n" * 101], "experiment_name='nnnn"),
])
def test_a_setting_the_run_does_not_read_is_refused(overrides, message):
    with pytest.raises(ConfigError) as e:
        validate(compose_config(overrides))
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


@pytest.mark.parametrize("overrides", [["model.reset_at_padding=false"], ["model=generator", "dataset=text", "dataset.path=/x",
                                       "model.num_layers=3", "model.dropout=0.5"],
                                      ["scheduler=step", "scheduler.step_size=10", "scheduler.gamma=0.1"],
                                      ["model=generator", "dataset=text", "dataset.path=/x", "sample.enabled=true",
                                       "sample.temperatures=[1.0]", "sample.top_k=3", "sample.seed=7"]])
def test_a_setting_the_run_reads_or_left_at_its_default_is_accepted(overrides):
    validate(compose_config(overrides))


def test_the_gradient_study_refuses_the_loops_own_settings():
    from rnn_experiments.config import compose
    study = [*STUDY_TINY, "gradients.batch_size=8"]
    with pytest.raises(ConfigError, match=r"^train.steps=5 is not used by rnn-measure-gradients"):
        validate(compose([*study, "train.steps=5"], config_name="gradients"))
    with pytest.raises(ConfigError, match=r"^logger=\['tensorboard'\] is not used by rnn-measure-gradients"):
        validate(compose([*study, "logger=tensorboard"], config_name="gradients"))
    validate(compose([*study, "gradients.steps=[0,2]"], config_name="gradients"))


def test_a_sweep_over_a_setting_the_model_does_not_read_starts_no_job(tmp_path):
    r = run_command("rnn-train", "-m", *TINY, "model=generator,lstm", "model.num_layers=1",
                    "dataset=text", "dataset.path=/x.txt", f"hydra.sweep.dir={tmp_path / 'S'}")
    refused(r, "model.num_layers=1 is not a setting of model=lstm (rnn_experiments.models.lstm.LSTM)", tmp_path / "S")


def test_rnn_generate_refuses_an_unknown_key_even_with_plus_plus(tmp_path):
    r = run_command("rnn-generate", f"checkpoint={tmp_path / 'x.pt'}", "++lenght=5")
    refused(r, "lenght is not a setting (a typo?): expected one of the settings at the top level: checkpoint,")


# ---- 3. check, then write: odd paths --------------------------------------------------------

@pytest.mark.parametrize("override, message", [
    ("hydra.run.dir=", "hydra.run.dir='' is invalid: expected a folder (an empty path would write into the current folder)"),
    ("hydra.run.dir=/dev/null/run", "hydra.run.dir=/dev/null/run is invalid: /dev/null is not a folder"),
])
def test_an_odd_output_folder_is_refused(tmp_path, override, message):
    refused(run_command("rnn-train", *TINY, override, cwd=tmp_path), message, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_run_folder_through_a_symlink_loop_is_refused(tmp_path):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    refused(run_command("rnn-train", *TINY, f"hydra.run.dir={tmp_path / 'a' / 'run'}"), "is invalid: Symlink loop")


def test_a_command_started_in_a_deleted_folder_says_so(tmp_path, capsys):
    """Every command module calls require_cwd before it imports torch (whose MKL fails to load in a
    deleted folder with a fatal error of its own); the preflight checks it again."""
    from rnn_experiments.cli.preflight import check_cwd
    from rnn_experiments.cli.startup import require_cwd
    gone = tmp_path / "gone"
    gone.mkdir()
    here = os.getcwd()
    os.chdir(gone)
    try:
        gone.rmdir()
        with pytest.raises(SystemExit) as e:
            require_cwd("rnn-train")
        with pytest.raises(ConfigError, match="^the current folder no longer exists"):
            check_cwd()
    finally:
        os.chdir(here)
    assert e.value.code == 2
    assert capsys.readouterr().err == ("rnn-train: error: the current folder no longer exists (deleted?): "
                                       "cd into an existing folder and run the command again\n")
    for module in ("train", "generate", "measure_gradients", "analyze", "plot_gradients", "download", "bench"):
        source = (Path(__file__).parent.parent / "rnn_experiments" / "cli" / f"rnn_{module}.py").read_text()
        code = source.split('"""', 2)[2] if source.startswith('"""') else source   # after the docstring
        first_import = next(line for line in code.splitlines()
                            if line.startswith(("import ", "from ")) and "__future__" not in line)
        assert first_import.startswith("from rnn_experiments.cli.startup import require_cwd"), module


def test_a_config_file_that_is_not_utf8_is_named(tmp_path):
    mine = tmp_path / "mine" / "experiment"
    mine.mkdir(parents=True)
    (mine / "latin.yaml").write_bytes("# @package _global_\nexperiment_name: caf\xe9\n".encode("latin-1"))
    r = run_command("rnn-train", "--config-dir", tmp_path / "mine", "+experiment=latin", *TINY,
                    f"hydra.run.dir={tmp_path / 'run'}")
    refused(r, f"{mine / 'latin.yaml'}: not UTF-8 text", tmp_path / "run")


# ---- interpolations and resolvers: one line, single runs and sweeps alike -----------------------

@pytest.mark.parametrize("override, message", [
    ("train.lr=${train.foo}", "Interpolation key 'train.foo' not found"),
    ("seed=${oc.env:RNN_EXPERIMENTS_UNSET_VAR}", "Environment variable 'RNN_EXPERIMENTS_UNSET_VAR' not found"),
    ("train.lr=${oc.env:HOME}", "could not be converted to Float"),
    ("seed=${seed}", "Recursive interpolation detected"),
    ("train.lr=${nope:1}", "Unsupported interpolation type nope"),
    ("~model", "model._target_ is missing: expected the class that builds the model"),
])
@pytest.mark.parametrize("sweep", [False, True], ids=["run", "sweep"])
def test_interpolation_and_resolver_errors_are_one_line(tmp_path, override, message, sweep):
    args = ["-m", "seed=0,1"] if sweep and override.startswith("train") else []
    r = run_command("rnn-train", *args, *TINY, override, f"hydra.run.dir={tmp_path / 'R'}",
                    f"hydra.sweep.dir={tmp_path / 'S'}")
    refused(r, message)
    assert list(tmp_path.iterdir()) == []


# ---- 4. a sweep is checked as a whole ---------------------------------------------------------

@pytest.mark.parametrize("overrides, message", [
    (["seed=0,0"], "jobs #0 (seed=0) and #1 (seed=0) are the same run: expected each configuration once"),
    (["seed=range(3,0)"], "the sweep has no jobs"),
    (["seed=0,1", "hydra.sweep.subdir=same"], "jobs #0 (seed=0) and #1 (seed=1) would share the folder"),
    (["seed=0,1", "hydra.sweep.subdir=/dev/null"], "job #0 (seed=0): hydra.sweep.subdir=/dev/null is invalid: /dev/null is not a folder"),
    (["model=glob(*)"], "job #1 (model=generator): model.name='generator' is invalid: expected a classifier"),
    (["train.lr=interval(0.1,1)"], "BasicSweeper does not support sweep type : INTERVAL_SWEEP; no job was started"),
    (["seed=0,1", "hydra/launcher=parallel", "hydra.launcher.n_jobs=0"], "hydra.launcher.n_jobs=0 is invalid: expected an integer >= 1"),
    (["seed=0,1", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=0"], "hydra.launcher.timeout_min=0 is invalid"),
    (["seed=0,1", "device=cuda"], "job #0 (seed=0): device='cuda' is invalid: no CUDA device is available"),
    (["seed=0,1", "hydra.callbacks.analyze.compare=nope"], "hydra.callbacks.analyze.compare='nope' is invalid: "
                                                           "expected a config key of the sweep's runs"),
    (["seed=0,1", "hydra.callbacks.analyze.threshold=nan"], "hydra.callbacks.analyze.threshold=nan is invalid: "
                                                            "expected a finite number in [0, 1] (the range of accuracy)"),
    (["seed=0,1", "hydra.callbacks.analyze.formats=[xyz]"], "hydra.callbacks.analyze.formats: 'xyz' is invalid"),
    (["seed=0,1", "+hydra.callbacks.analyze.foo=1"], "hydra.callbacks.analyze.foo=1 is not a setting of "
                                                     "hydra.callbacks.analyze (rnn_experiments.sweeps.analyze.AnalyzeSweep)"),
    (["seed=0,1", "hydra.sweep.subdir="], "hydra.sweep.subdir='' is invalid: the job's folder"),
    (["seed=0,1", "hydra.sweep.subdir=../escape${seed}"], "hydra.sweep.subdir='../escape0' is invalid: the job's folder"),
    (["seed=0,1", "seed=2,3"], "seed is given twice (seed=0,1 and seed=2,3): expected it once"),
    (["train.checkpoint_every=100,200"], "jobs #0 (train.checkpoint_every=100) and #1 (train.checkpoint_every=200) "
                                         "are the same run"),
    (["model=[lstm,gru]"], "model=[lstm,gru] would merge 2 model configs into one: expected one option "
                           "(a sweep over them: -m model=lstm,gru)"),
    (["seed=0,1", "+hydra.callbacks.analyze.metrics=[eval_brier]"], "hydra.callbacks.analyze.metrics='eval_brier' is "
                                                                   "invalid: expected a column of metrics.csv"),
])
def test_a_sweep_that_cannot_run_as_a_whole_starts_no_job(tmp_path, overrides, message):
    if "device=cuda" in overrides:
        import torch
        if torch.cuda.is_available():
            pytest.skip("this machine has CUDA")
    r = run_command("rnn-train", "-m", *TINY, *overrides, f"hydra.sweep.dir={tmp_path / 'S'}")
    refused(r, message)
    assert not (tmp_path / "S").exists()


def test_a_job_folder_that_exists_as_a_file_is_refused_up_front(tmp_path):
    (tmp_path / "S").mkdir()
    (tmp_path / "S" / "1").write_text("a file of the user's\n")
    r = run_command("rnn-train", "-m", *TINY, "seed=0,1", f"hydra.sweep.dir={tmp_path / 'S'}")
    refused(r, f"job #1 (seed=1): hydra.sweep.subdir={tmp_path / 'S' / '1'} is invalid:")
    assert sorted(p.name for p in (tmp_path / "S").iterdir()) == ["1"]


@pytest.mark.slow   # a whole scenario (tests/conftest.py: tiers)
def test_the_same_seed_in_different_configurations_is_the_paired_design(tmp_path):
    """model=lstm,peep_lstm seed=0: the same seed twice, in two configurations: accepted."""
    r = run_command("rnn-train", "-m", *TINY, "train.steps=5", "model=lstm,peep_lstm", "seed=0",
                    f"hydra.sweep.dir={tmp_path / 'S'}")
    assert r.code == 0, r.err[-2000:]


# ---- 5. resources are bounded ---------------------------------------------------------------

@pytest.mark.parametrize("override", ["model.hidden_size=100000", "train.batch_size=10000000",
                                      "train.eval_size=1000000000", "model.embedding_dim=1000000000"])
def test_a_run_that_cannot_fit_in_memory_is_refused_before_anything_is_built(tmp_path, override):
    t0 = time.perf_counter()
    r = run_command("rnn-train", *TINY, override, f"hydra.run.dir={tmp_path / 'R'}")
    refused(r, "is invalid: expected a run that fits in memory: it needs about", tmp_path / "R")
    assert override in r.err and time.perf_counter() - t0 < 30


def test_a_model_too_big_to_build_is_refused_before_building(tmp_path):
    r = run_command("rnn-train", *TINY, "model=generator", "dataset=text", f"dataset.path={tmp_path}/t.txt",
                    "model.num_layers=100000", f"hydra.run.dir={tmp_path / 'R'}")
    refused(r, "model.num_layers=100000 is invalid: expected a run that fits in memory", tmp_path / "R")


def test_memory_estimate_is_an_upper_bound_of_the_parameters():
    from rnn_experiments.models import count_params
    from rnn_experiments.training.resources import parameters, training_bytes
    from rnn_experiments.training.setup import setup
    for model in ("lstm", "peep_lstm", "gru", "rnn", "bilstm"):
        cfg = compose_config([f"model={model}"])
        _, data, net, _ = setup(cfg)
        assert parameters(cfg.model, data.vocab_size, data.num_classes) >= count_params(net)
        assert training_bytes(cfg) >= 16 * count_params(net)   # weights, gradients, Adam's two moments
    assert parameters(compose_config(["model=lstm"]).model, 3, 2) == count_params(setup(compose_config([]))[2])


def test_generation_that_cannot_fit_is_refused_before_the_checkpoint_is_read(tmp_path):
    r = run_command("rnn-generate", f"checkpoint={tmp_path / 'never.pt'}", "num_samples=10000", "length=1000000")
    refused(r, "num_samples=10000, length=1000000, 1 prompt(s) is invalid: expected a run that fits in memory")


def test_a_memory_refusal_names_the_joblib_jobs_side_by_side(tmp_path):
    from rnn_experiments.training.resources import GiB, training_bytes
    cfg = compose_config(["model.hidden_size=4096", "train.batch_size=256"])
    one = training_bytes(cfg)
    from rnn_experiments.training.resources import available_bytes
    if not one < available_bytes() < 64 * one:
        pytest.skip("needs a machine where one such job fits and 64 do not")
    r = run_command("rnn-train", "-m", *TINY, "model.hidden_size=4096", "train.batch_size=256", "seed=0,1",
                    "hydra/launcher=parallel", "hydra.launcher.n_jobs=64", f"hydra.sweep.dir={tmp_path / 'S'}")
    refused(r, "(64 jobs at once) is invalid: expected a run that fits in memory")
    assert one > GiB / 1024


# ---- 6. signals and locks --------------------------------------------------------------------

def test_ctrl_c_in_rnn_generate_is_one_line_and_exit_130(monkeypatch, tmp_path):
    import rnn_experiments.cli.rnn_generate as gen

    def interrupted(cfg):
        raise KeyboardInterrupt
    monkeypatch.setattr(gen, "run", interrupted)
    r = run_command("rnn-generate", f"checkpoint={tmp_path / 'x.pt'}")
    assert r.code == 130 and r.err == "rnn-generate: interrupted\n" and r.out == ""


def test_sigterm_to_the_gradient_study_stops_it_as_interrupted(tmp_path, monkeypatch):
    import rnn_experiments.gradients.study as study
    real = study.train_step

    def step_then_sigterm(*args, **kwargs):
        out = real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        return out
    monkeypatch.setattr(study, "train_step", step_then_sigterm)
    run = tmp_path / "study"
    r = run_command("rnn-measure-gradients", *STUDY_TINY, "model=rnn", "gradients.steps=[0,5]",
                    "gradients.batch_size=8", f"hydra.run.dir={run}")
    assert r.code == 130 and r.err.startswith("rnn-measure-gradients: interrupted: stopped by SIGTERM at step 1")
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["status"], summary["signal"], summary["step"]) == ("interrupted", "SIGTERM", 1)
    assert not (run / "run.lock").exists()


@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
def test_the_gradient_study_never_overwrites_another_run(tmp_path):
    run = tmp_path / "study"
    args = [*STUDY_TINY, "gradients.steps=[0,2]", "gradients.batch_size=8", f"hydra.run.dir={run}"]
    assert run_command("rnn-measure-gradients", "model=rnn", *args).code == 0
    before = {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    r = run_command("rnn-measure-gradients", "model=lstm", *args)
    refused(r, f"{run}: holds another run (made with model._target_='rnn_experiments.models.rnn.RNN', this one has model._target_='rnn_experiments.models.lstm.LSTM')")
    assert {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    assert run_command("rnn-measure-gradients", "model=rnn", *args).code == 0   # the same study again


def test_a_lock_with_a_heartbeat_in_the_future_says_so_and_how_to_take_over(tmp_path):
    from rnn_experiments.run.lock import LOCK, RunLock, RunLocked
    path = tmp_path / LOCK
    path.write_text(json.dumps({"pid": 4242, "host": "node-9", "started": "2026-01-01T00:00:00"}))
    future = time.time() + 3600 * 24 * 365
    os.utime(path, (future, future))
    with pytest.raises(RunLocked) as e:
        RunLock(tmp_path).acquire()
    message = str(e.value)
    assert "heartbeat is" in message and "in the future: the clocks of the two hosts differ" in message
    assert f"remove {path} to take the folder over" in message and "\n" not in message
    assert socket.gethostname() not in message.split("pid 4242 on ")[1].split(",")[0]


# ---- the download command -------------------------------------------------------------------

def test_a_download_without_end_stops_at_its_cap(tmp_path, capsys, monkeypatch):
    from rnn_experiments.data import corpora
    from rnn_experiments.cli.rnn_download import main
    monkeypatch.setattr(corpora, "MAX_BYTES", 3 * 2**20)
    monkeypatch.setattr(corpora.fetch, "__defaults__", (30.0, 3 * 2**20))
    assert main(["grimm", "--dir", str(tmp_path), "--url", "file:///dev/zero", "--no-verify"]) == 1
    err = capsys.readouterr().err
    assert err == "download grimm: error: file:///dev/zero: more than 3 MiB, too large for a corpus; nothing written\n"
    assert list(tmp_path.iterdir()) == []


def test_a_download_target_in_the_way_is_one_line_exit_2(tmp_path, capsys):
    from rnn_experiments.cli.rnn_download import main
    (tmp_path / "grimms_fairy_tales.txt").mkdir()
    assert main(["grimm", "--dir", str(tmp_path), "--url", "file:///dev/null"]) == 2
    assert capsys.readouterr().err.startswith(f"download grimm: error: {tmp_path / 'grimms_fairy_tales.txt'} is in the way")
    (tmp_path / "file").write_text("x")
    assert main(["grimm", "--dir", str(tmp_path / "file" / "sub"), "--url", "file:///dev/null"]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def _shell(cmd: str, cwd) -> tuple[int, int, str]:
    """(the first command's exit status, the pipeline's last, stderr) of a bash pipeline."""
    import subprocess
    done = subprocess.run(["bash", "-c", f"{cmd}; echo \"${{PIPESTATUS[0]}} ${{PIPESTATUS[-1]}}\" >&2"],
                          cwd=cwd, capture_output=True, text=True, timeout=300)
    first, last = done.stderr.strip().splitlines()[-1].split()
    return int(first), int(last), done.stderr


@pytest.mark.slow   # real processes: a closed pipe is the operating system's
def test_a_reader_that_goes_away_does_not_skip_the_analysis(tmp_path):
    """`rnn-train -m ... | head -1`: the sweep's analysis is still written and the sweep exits 0;
    `rnn-analyze S | head -1` writes its outputs and exits 0."""
    import sys
    sweep = tmp_path / "S"
    train = " ".join([sys.executable, "-m", "rnn_experiments.train", "-m", *TINY, "seed=0,1",
                      "hydra.callbacks.analyze.formats=[]", f"hydra.sweep.dir={sweep}"])
    code, _, err = _shell(f"{train} | head -1", tmp_path)
    assert code == 0 and (sweep / "analysis" / "summary.md").is_file(), err[-2000:]
    (sweep / "analysis" / "summary.md").unlink()
    code, _, err = _shell(f"{sys.executable} -m rnn_experiments.analyze {sweep} --formats '' | head -1", tmp_path)
    assert code == 0 and (sweep / "analysis" / "summary.md").is_file(), err[-2000:]


@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
def test_a_sweep_whose_analysis_failed_exits_3_and_says_so_last(tmp_path):
    sweep = tmp_path / "S"
    sweep.mkdir()
    (sweep / "analysis").write_text("a file where the analysis folder goes\n")
    r = run_command("rnn-train", "-m", *TINY, "seed=0,1", "hydra.callbacks.analyze.formats=[]",
                    f"hydra.sweep.dir={sweep}")
    assert r.code == 3, r.err[-2000:]
    last = r.err.strip().splitlines()[-1]
    assert last.startswith(f"rnn-train: error: the analysis of {sweep} failed (") and \
        last.endswith(f"the runs are complete: rnn-analyze {sweep}"), last
    assert all(json.loads((sweep / str(i) / "summary.json").read_text())["status"] == "completed" for i in (0, 1))


@pytest.mark.parametrize("overrides, message", [
    (["hydra.run.dir=${oc.env:RNN_EXPERIMENTS_NOT_SET}"], "hydra.run.dir is invalid: KeyError raised while resolving "
                                                          "interpolation: \"Environment variable 'RNN_EXPERIMENTS_NOT_SET' not found\""),
    (['experiment_name="' + "😀" * 60 + '"'], "is 256 bytes, more than a file system allows in one name (255)"),
    (["model.name=héllo wörld"], "'model.name=héllo wörld': Hydra cannot read this override (LexerNoViableAltException"),
])
def test_a_run_whose_folder_or_command_line_cannot_be_what_was_typed_is_refused(tmp_path, overrides, message):
    r = run_command("rnn-train", *TINY, *overrides, cwd=tmp_path)
    refused(r, message)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
def test_a_checkpoint_that_links_to_a_fifo_is_refused_not_read(tmp_path):
    import subprocess
    import sys
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "checkpoint.pt").symlink_to(fifo)
    code = ("from rnn_experiments.run.checkpoint import load, CheckpointError\n"
            f"try:\n    load({str(tmp_path / 'checkpoint.pt')!r})\nexcept CheckpointError as e:\n    print(e)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == f"{tmp_path / 'checkpoint.pt'}: a FIFO, not a regular file", done.stderr


def test_device_auto_beside_the_device_it_means_is_the_same_run_twice(tmp_path):
    import torch
    means = "cuda" if torch.cuda.is_available() else "cpu"
    r = run_command("rnn-train", "-m", *TINY, f"device={means},auto", f"hydra.sweep.dir={tmp_path / 'S'}")
    refused(r, f"jobs #0 (device={means}) and #1 (device=auto) are the same run")
    assert not (tmp_path / "S").exists()
