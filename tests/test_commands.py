"""The training command as a user meets it: one-line errors and exit status 2 before anything is
written (preflight), sweeps in which one bad job never stops the others (sweeps/guard.py,
cli/job.py), a refused command that never touches a finished run, one process per run folder.
The commands run in this process (conftest.run_command); launchers and signals between processes
are tested in tests/launchers/ and tests/training/test_reliability.py."""
from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

import pytest

from conftest import run_command
from rnn_experiments.errors import ConfigError
from rnn_experiments.cli.preflight import preflight
from rnn_experiments.errors import one_line

T = ["model.hidden_size=16", "model.embedding_dim=8", "train.batch_size=8", "train.steps=20",
     "train.eval_size=64", "train.eval_every=10", "train.log_every=5", "device=cpu", "train.threads=1"]


def summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


# ---- before Hydra starts (no subprocess) -------------------------------------------------------

@pytest.mark.parametrize("overrides, message", [
    (["train.lr=abc"], "Error merging override train.lr=abc; Value 'abc' of type 'str' could not be converted to Float"),
    (["train.foo=1"], "Could not override 'train.foo'; To append to your config use +train.foo=1; Key 'foo' not in 'TrainConfig'"),
    (["model=nope"], "In 'config': Could not find 'model/nope'; Available options in 'model': bilstm; generator"),
    (["seed=0,1"], "Ambiguous value for argument 'seed=0,1'"),
    (["train.lr=inf"], "train.lr=inf is invalid: expected a finite number > 0"),
    (["seed=4294967296"], "seed=4294967296 is invalid: expected an integer from 0 to 2**32 - 1"),
])
def test_preflight_turns_composition_and_value_errors_into_one_line(overrides, message):
    with pytest.raises(ConfigError) as e:
        preflight(overrides, "config")
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_preflight_leaves_sweeps_and_printing_commands_to_hydra():
    preflight(["-m", "seed=0,1"], "config")             # jobs are checked by the sweep guard
    preflight(["--cfg", "job", "train.lr=abc"], "config")  # Hydra reports it as it always did


def test_preflight_refuses_an_output_folder_that_cannot_be_written(unwritable_dir, tmp_path):
    with pytest.raises(ConfigError, match=f"hydra.run.dir={unwritable_dir}/x is invalid: cannot write into"):
        preflight([f"hydra.run.dir={unwritable_dir}/x"], "config")
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=r"file/sweep is invalid: .*/file is a file$"):
        preflight(["-m", f"hydra.sweep.dir={tmp_path}/file/sweep"], "config")


def test_one_line_drops_omegaconf_detail_lines():
    class E(Exception):
        pass
    err = E("Error merging override x=1")
    err.__cause__ = E("Value 'a' is bad\n    full_key: x\n    object_type=Foo")
    assert one_line(err) == "Error merging override x=1; Value 'a' is bad"


# ---- real commands -----------------------------------------------------------------------------

def train_cmd(*args, cwd=None):
    return run_command("rnn-train", *args, cwd=cwd)


@pytest.mark.parametrize("override, message", [
    ("train.lr=abc", "Error merging override train.lr=abc"),
    ("train.foo=1", "Could not override 'train.foo'"),
    ("train.lr=-1", "train.lr=-1.0 is invalid: expected a finite number > 0"),
    ("train.threads=-1", "train.threads=-1 is invalid"),
])
def test_bad_command_is_one_line_exit_2_and_writes_nothing(tmp_path, override, message):
    proc = train_cmd(*T, override, cwd=tmp_path)
    assert proc.code == 2, proc.err
    assert proc.err.startswith(f"rnn-train: error: {message}") and proc.err.count("\n") == 1, proc.err
    assert list(tmp_path.iterdir()) == []   # no outputs/ folder


@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
def test_refused_command_never_touches_a_finished_run(tmp_path):
    run = tmp_path / "X"
    assert train_cmd(*T, f"hydra.run.dir={run}").code == 0
    before = digest(run)
    for change in ("seed=1", "model.hidden_size=32", "train.steps=10"):
        proc = train_cmd(*T, change, f"hydra.run.dir={run}")
        assert proc.code == 2 and proc.err.count("\n") == 1, proc.err
        assert digest(run) == before, change   # .hydra/, summary.json, train.log, ... as they were
    from rnn_experiments.analysis.report import analyze
    result = analyze([str(run)], out=tmp_path / "a", formats=(), echo=lambda *a: None)
    assert list(result["data"]["status"].unique()) == ["completed"]
    assert not (tmp_path / "a" / "rerun.sh").exists()


@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
def test_sweep_with_a_bad_value_starts_no_job(tmp_path):
    proc = train_cmd("-m", *T, "seed=0,-1,2", f"hydra.sweep.dir={tmp_path / 'S'}")
    assert proc.code == 2
    assert proc.err == ("rnn-train: error: job #1 (seed=-1): seed=-1 is invalid: expected an integer "
                        "from 0 to 2**32 - 1; no job was started\n")
    assert not (tmp_path / "S").exists()


@pytest.mark.slow   # a whole scenario (tests/conftest.py: tiers)
def test_a_job_that_fails_at_run_time_fails_alone(tmp_path):
    """Jobs run one after another in this process (basic launcher); a diverging job does not stop
    the others, the analysis callback runs, the sweep exits 1 naming the jobs that did not
    complete (the parallel and submitit launchers: tests/launchers/test_joblib.py, test_submitit.py)."""
    sweep = tmp_path / "S"
    proc = train_cmd("-m", *T, "train.steps=10", "seed=0,1", "train.lr=1e-3,3e37", "hydra/callbacks=analyze",
                     "hydra.callbacks.analyze.formats=[]", f"hydra.sweep.dir={sweep}")
    assert proc.code == 1, proc.err[-3000:]
    last = proc.err.strip().splitlines()[-1]
    assert re.match(r"rnn-train: error: 2 job\(s\) of the sweep did not complete: "
                    r"#1 \(seed=0 train.lr=3e\+37\): diverged \(at step [23]\); #3 \(seed=1 train.lr=3e\+37\)", last)
    assert [summary(sweep / str(i))["status"] for i in range(4)] == ["completed", "diverged"] * 2
    rerun = (sweep / "analysis" / "rerun.sh").read_text()           # the analysis callback ran
    assert f"hydra.run.dir={sweep / '1'}" in rerun and f"hydra.run.dir={sweep / '3'}" in rerun
    assert (sweep / "analysis" / "summary.md").exists()


@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
def test_a_job_that_crashes_fails_alone_with_its_traceback_in_its_log(tmp_path, monkeypatch):
    """A bug (an unexpected exception) in one job of a sweep: the job fails, the others complete,
    the sweep exits 1 naming it."""
    import rnn_experiments.training.loop as loop
    real = loop.evaluate

    def evaluate(*args, **kwargs):   # a bug that shows only in job #1, mid-training
        from hydra.core.hydra_config import HydraConfig
        if HydraConfig.get().job.num == 1:
            raise RuntimeError("boom in evaluate")
        return real(*args, **kwargs)
    monkeypatch.setattr(loop, "evaluate", evaluate)
    sweep = tmp_path / "S"
    proc = train_cmd("-m", *T, "seed=0,1,2", "hydra/callbacks=analyze", "hydra.callbacks.analyze.formats=[]",
                     f"hydra.sweep.dir={sweep}")
    assert proc.code == 1, proc.err[-3000:]
    assert "rnn-train: error: RuntimeError: boom in evaluate (traceback in the job's log)" in proc.err
    assert proc.err.strip().splitlines()[-1].startswith(
        "rnn-train: error: 1 job(s) of the sweep did not complete: #1 (seed=1)")
    assert [summary(sweep / str(i))["status"] for i in range(3)] == ["completed", "failed", "completed"]
    assert summary(sweep / "1")["error"] == "RuntimeError: boom in evaluate"
    log = (sweep / "1" / "train.log").read_text()
    assert "Traceback (most recent call last)" in log and "boom in evaluate" in log
    assert f"hydra.run.dir={sweep / '1'}" in (sweep / "analysis" / "rerun.sh").read_text()


@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
def test_a_job_refused_at_run_time_is_recorded_and_listed(tmp_path, monkeypatch):
    """A text file that is there when the sweep is checked and gone when its job starts (deleted
    meanwhile): only the job that reads it can tell."""
    import rnn_experiments.training.loop as loop
    text, gone = tmp_path / "t.txt", tmp_path / "gone.txt"
    for path in (text, gone):
        path.write_text("the cat sat on the mat. " * 40)
    real = loop.run_to_end

    def train_then_delete(run):   # job #0 runs, then the other job's file goes
        try:
            return real(run)
        finally:
            gone.unlink(missing_ok=True)
    import rnn_experiments.cli.rnn_train as rnn_train
    monkeypatch.setattr(rnn_train, "run_to_end", train_then_delete)
    sweep = tmp_path / "S"
    proc = train_cmd("-m", *T, "model=generator", "dataset=text", "dataset.seq_length=8",
                     f"dataset.path={text},{gone}", "hydra/callbacks=analyze",
                     "hydra.callbacks.analyze.formats=[]", f"hydra.sweep.dir={sweep}")
    assert proc.code == 1, proc.err[-3000:]
    assert f"rnn-train: error: {gone}: no such file" in proc.err
    assert summary(sweep / "0")["status"] == "completed"
    assert summary(sweep / "1")["status"] == "failed" and "gone.txt" in summary(sweep / "1")["error"]
    assert "gone.txt" in (sweep / "1" / ".hydra" / "overrides.yaml").read_text()
    assert f"hydra.run.dir={sweep / '1'}" in (sweep / "analysis" / "rerun.sh").read_text()


def test_a_missing_text_file_is_refused_before_any_job_starts(tmp_path):
    """The same sweep with the file missing from the start: the up-front check builds each
    job's dataset (rnn_experiments/contract.py), so no job starts."""
    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat. " * 40)
    sweep = tmp_path / "S"
    proc = train_cmd("-m", *T, "model=generator", "dataset=text", "dataset.seq_length=8",
                     f"dataset.path={text},{tmp_path / 'gone.txt'}", f"hydra.sweep.dir={sweep}")
    assert proc.code == 2 and proc.err.startswith(f"rnn-train: error: job #1 (dataset.path={tmp_path / 'gone.txt'}): "
                                                  f"{tmp_path / 'gone.txt'}: no such file")
    assert not sweep.exists()


def test_second_run_in_a_folder_is_refused_naming_the_first(tmp_path):
    """run.lock: while a run holds its folder (here: this process), a second run there is refused
    in one line naming the holder, and writes nothing (between real processes:
    tests/training/test_reliability.py)."""
    import os
    import socket
    from rnn_experiments.run.lock import RunLock
    run = tmp_path / "X"
    run.mkdir()
    (run / "train.log").write_text("the first run's log\n")
    with RunLock(run):
        before = digest(run)
        proc = train_cmd(*T, f"hydra.run.dir={run}")
        assert digest(run) == before
    assert proc.code == 2 and proc.err.count("\n") == 1
    assert proc.err.startswith(f"rnn-train: error: {run}: another run is using this folder "
                               f"(pid {os.getpid()} on {socket.gethostname()}")


def test_diverged_run_exits_1_with_one_line(tmp_path):
    proc = train_cmd(*T, "train.lr=3e37", f"hydra.run.dir={tmp_path / 'X'}")
    assert proc.code == 1
    step = summary(tmp_path / "X")["diverged_at_step"]
    assert step in (2, 3)   # the overflow's step depends on the CPU's arithmetic
    assert proc.err == (f"rnn-train: error: {tmp_path / 'X'}: the loss is not finite at step {step} "
                        "(status diverged; the last good checkpoint is kept)\n")


@pytest.mark.slow   # a whole scenario (tests/conftest.py: tiers)
def test_refused_sweep_never_touches_a_finished_sweep(tmp_path):
    sweep = tmp_path / "S"
    assert train_cmd("-m", *T, "train.steps=10", "seed=0,1", f"hydra.sweep.dir={sweep}").code == 0
    before = digest(sweep)
    proc = train_cmd("-m", *T, "train.steps=10", "seed=0,1", "train.lr=0.01", f"hydra.sweep.dir={sweep}")
    assert proc.code == 1
    assert proc.err.strip().splitlines()[-1] == (
        f"rnn-train: error: 2 job(s) of the sweep did not complete: #0 (seed=0): no record of this sweep in "
        f"{sweep / '0'} (refused or not started); #1 (seed=1): no record of this sweep in {sweep / '1'} "
        "(refused or not started)")
    assert digest(sweep) == before   # multirun.yaml too: the analysis still rebuilds the old job list
    assert f"no job of this sweep ran: the analysis in {sweep / 'analysis'} is left as it was" in proc.out


# ---- --help and --jobs --------------------------------------------------------------------------

def test_help_lists_every_preset_and_option_with_its_summary_line():
    from rnn_experiments.config import conf_dir
    from rnn_experiments.cli.help import summary_line
    out = run_command("rnn-train", "--help")
    assert out.code == 0 and out.err == ""
    for group in ("experiment", "model", "dataset", "hparams_search", "hydra/launcher"):
        for path in (conf_dir() / group).glob("*.yaml"):
            line = summary_line(path)
            assert line and re.search(rf"^  {path.stem} +{re.escape(line)}$", out.out, re.M), path
    assert "schema" not in out.out and "Outputs: a run folder holds metrics.csv" in out.out


def test_each_command_lists_only_the_groups_it_uses():
    generate = run_command("rnn-generate", "--help").out
    assert "checkpoint=PATH" in generate and not re.search(r"^(dataset|experiment|hparams_search|model) \(", generate, re.M)
    gradients = run_command("rnn-measure-gradients", "--help").out
    assert "gradients.steps" in gradients and re.search(r"^model \(model=NAME\):", gradients, re.M)
    assert not re.search(r"^(experiment|hparams_search|logger) \(", gradients, re.M)


def test_help_lists_a_users_own_presets(tmp_path):
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "mine.yaml").write_text("# @package _global_\n# My own small study.\nseed: 3\n")
    out = run_command("rnn-train", "--config-dir", tmp_path, "--help").out
    assert re.search(r"^  mine +My own small study\.$", out, re.M)


@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
def test_jobs_lists_what_a_preset_would_launch_and_launches_nothing(tmp_path):
    out = run_command("rnn-train", "+experiment=demo", f"hydra.sweep.dir={tmp_path / 'S'}", "--jobs")
    assert out.code == 0, out.err
    assert out.out.splitlines() == [f"4 job(s) of a sweep (BasicLauncher) -> {tmp_path / 'S'}",
                                    "  #0   model=lstm seed=0", "  #1   model=lstm seed=1",
                                    "  #2   model=peep_lstm seed=0", "  #3   model=peep_lstm seed=1",
                                    "each checked; nothing was launched"]
    assert not (tmp_path / "S").exists()
    one = run_command("rnn-train", *T, f"hydra.run.dir={tmp_path / 'R'}", "--jobs")
    assert one.code == 0 and one.out.startswith(f"1 job, a single run -> {tmp_path / 'R'}")
    bad = run_command("rnn-train", "-m", *T, "seed=0,0", "--jobs")
    assert bad.code == 2 and bad.err.startswith("rnn-train: error: jobs #0 (seed=0) and #1 (seed=0) are the same run")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [["+experiment=report_ablation"], ["-m", "model=lstm,peep_lstm", "seed=0,1,2",
                                                                    "train.lr=1e-3,0.01", "dataset.seq_length=4,5"]])
@pytest.mark.slow   # a whole scenario (tests/conftest.py: tiers)
def test_a_sweeps_jobs_composed_quickly_equal_hydras_own(args):
    """JobComposer sets a job's values on an already composed job where only values differ:
    every job's config equals the one Hydra composes for it in full (groups recomposed)."""
    from omegaconf import OmegaConf
    from rnn_experiments.cli.preflight import _args, _compose
    from rnn_experiments.run.multirun import jobs
    from rnn_experiments.sweeps.guard import JobComposer
    parsed = _args(args)
    cfg, multirun, loader = _compose(parsed.overrides, "config", parsed.multirun)
    all_jobs = jobs(cfg.hydra.sweeper, list(cfg.hydra.overrides.task), loader)
    composer = JobComposer(cfg, loader)
    for job in all_jobs:
        quick, full = composer(job), loader.load_sweep_config(master_config=cfg, sweep_overrides=list(job))
        assert OmegaConf.to_container(quick) == OmegaConf.to_container(full), job



@pytest.mark.parametrize("module, prog", [
    ("train", "rnn-train"), ("analyze", "rnn-analyze"), ("generate", "rnn-generate"),
    ("measure_gradients", "rnn-measure-gradients"), ("plot_gradients", "rnn-plot-gradients"),
    ("download", "rnn-download"), ("bench", "rnn-bench")])
def test_python_m_spellings_reach_their_commands(module, prog, monkeypatch, capsys):
    """`python -m rnn_experiments.<command> --help` (run here as runpy runs it for `-m`) is the
    command's own help, exit 0: the spellings users know stay after the commands moved to cli/."""
    import runpy
    monkeypatch.setattr(sys, "argv", [f"rnn_experiments/{module}.py", "--help"])
    monkeypatch.delitem(sys.modules, f"rnn_experiments.{module}", raising=False)   # as a fresh `-m` finds it
    with pytest.raises(SystemExit) as stop:
        runpy.run_module(f"rnn_experiments.{module}", run_name="__main__")
    out = capsys.readouterr().out
    assert stop.value.code in (0, None) and out.startswith((f"{prog}: ", f"usage: {prog} ")), out[:300]


@pytest.mark.slow   # a process of its own, importing torch
def test_ctrl_c_while_a_command_starts_is_one_line_and_130(tmp_path):
    """Ctrl-C after the command module's first line (require_cwd) and before its main: one line,
    exit status 130, nothing written (it was Python's traceback of whatever import it hit); once
    main has started, Ctrl-C is KeyboardInterrupt again, which the command handles itself."""
    import subprocess
    import sys
    code = ("import os, signal, sys\nsys.argv = ['rnn-train']\n"
            "import rnn_experiments.cli.rnn_train\n"                  # imports torch, Hydra: the start-up
            "os.kill(os.getpid(), signal.SIGINT)\nimport time; time.sleep(30)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stderr) == (130, "rnn-train: interrupted (while starting; nothing was written)\n")
    assert list(tmp_path.iterdir()) == []
    code = ("import signal, sys\nsys.argv = ['rnn-train']\nimport rnn_experiments.cli.rnn_train\n"
            "from rnn_experiments.cli.startup import startup_over\nstartup_over()\n"
            "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "True", done.stderr[-2000:]
