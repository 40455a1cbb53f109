"""The training command as a user meets it: one-line errors and exit status 2 before anything is
written (preflight), sweeps in which one bad job never stops the others (sweep.py, job.py), a
refused command that never touches a finished run, one process per run folder."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT
from rnn_experiments.errors import ConfigError
from rnn_experiments.runner.preflight import preflight
from rnn_experiments.errors import one_line

T = ["model.hidden_size=16", "model.embedding_dim=8", "train.batch_size=8", "train.steps=20",
     "train.eval_size=64", "train.eval_every=10", "train.log_every=5", "device=cpu", "train.threads=1"]


def train_cmd(*args, cwd=ROOT, timeout=300):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "rnn_experiments.train", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


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
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        preflight(["-m", f"hydra.sweep.dir={tmp_path}/file/sweep"], "config")


def test_one_line_drops_omegaconf_detail_lines():
    class E(Exception):
        pass
    err = E("Error merging override x=1")
    err.__cause__ = E("Value 'a' is bad\n    full_key: x\n    object_type=Foo")
    assert one_line(err) == "Error merging override x=1; Value 'a' is bad"


# ---- real commands -----------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("override", ["train.lr=abc", "train.foo=1", "train.lr=-1", "train.threads=-1"])
def test_bad_command_is_one_line_exit_2_and_writes_nothing(tmp_path, override):
    proc = train_cmd(*T, override, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("rnn-train: error: ") and proc.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []   # no outputs/ folder


@pytest.mark.slow
def test_refused_command_never_touches_a_finished_run(tmp_path):
    run = tmp_path / "X"
    assert train_cmd(*T, f"hydra.run.dir={run}").returncode == 0
    before = digest(run)
    for change in ("seed=1", "model.hidden_size=32", "train.steps=10"):
        proc = train_cmd(*T, change, f"hydra.run.dir={run}")
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert digest(run) == before, change   # .hydra/, summary.json, train.log, ... as they were
    from rnn_experiments.analysis.report import analyze
    result = analyze([str(run)], out=tmp_path / "a", formats=("png",), echo=lambda *a: None)
    assert list(result["data"]["status"].unique()) == ["completed"]
    assert not (tmp_path / "a" / "rerun.sh").exists()


@pytest.mark.slow
def test_sweep_with_a_bad_value_starts_no_job(tmp_path):
    proc = train_cmd("-m", *T, "seed=0,-1,2", f"hydra.sweep.dir={tmp_path / 'S'}")
    assert proc.returncode == 2
    assert proc.stderr == ("rnn-train: error: job #1 (seed=-1): seed=-1 is invalid: expected an integer "
                           "from 0 to 2**32 - 1; no job was started\n")
    assert not (tmp_path / "S").exists()


@pytest.mark.slow
@pytest.mark.parametrize("launcher", [["hydra/launcher=basic"], ["hydra/launcher=parallel"],
                                      ["hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5",
                                       "hydra.launcher.cpus_per_task=1"]], ids=["basic", "joblib", "submitit"])
def test_a_job_that_fails_at_run_time_fails_alone(tmp_path, launcher):
    sweep = tmp_path / "S"
    proc = train_cmd("-m", *T, "train.steps=10", "seed=0,1", "train.lr=1e-3,3e37", "hydra/callbacks=analyze",
                     *launcher, f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 1, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert re.match(r"rnn-train: error: 2 job\(s\) of the sweep did not complete: "
                    r"#1 \(seed=0 train.lr=3e\+37\): diverged \(at step [23]\); #3 \(seed=1 train.lr=3e\+37\)", last)
    assert [summary(sweep / str(i))["status"] for i in range(4)] == ["completed", "diverged"] * 2
    rerun = (sweep / "analysis" / "rerun.sh").read_text()           # the analysis callback ran
    assert f"hydra.run.dir={sweep / '1'}" in rerun and f"hydra.run.dir={sweep / '3'}" in rerun
    assert (sweep / "analysis" / "summary.md").exists()


CRASH_IN_SEED_1 = """
import sys
import rnn_experiments.training.loop as loop
real = loop.evaluate
def evaluate(*args, **kwargs):   # a bug that shows only in job #1, mid-training
    from hydra.core.hydra_config import HydraConfig
    if HydraConfig.get().job.num == 1:
        raise RuntimeError("boom in evaluate")
    return real(*args, **kwargs)
loop.evaluate = evaluate
from rnn_experiments.train import main
sys.argv = ["rnn-train", *sys.argv[1:]]
main()
"""


@pytest.mark.slow
def test_a_job_that_crashes_fails_alone_with_its_traceback_in_its_log(tmp_path):
    """A bug (an unexpected exception) in one job of a sweep: the job fails, the others complete,
    the sweep exits 1 naming it (basic launcher: the jobs run in this process, where the bug is)."""
    sweep = tmp_path / "S"
    proc = subprocess.run([sys.executable, "-c", CRASH_IN_SEED_1, "-m", *T, "seed=0,1,2",
                           "hydra/callbacks=analyze", f"hydra.sweep.dir={sweep}"], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "rnn-train: error: RuntimeError: boom in evaluate (traceback in the job's log)" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "rnn-train: error: 1 job(s) of the sweep did not complete: #1 (seed=1)")
    assert [summary(sweep / str(i))["status"] for i in range(3)] == ["completed", "failed", "completed"]
    assert summary(sweep / "1")["error"] == "RuntimeError: boom in evaluate"
    log = (sweep / "1" / "train.log").read_text()
    assert "Traceback (most recent call last)" in log and "boom in evaluate" in log
    assert f"hydra.run.dir={sweep / '1'}" in (sweep / "analysis" / "rerun.sh").read_text()


@pytest.mark.slow
def test_a_job_refused_at_run_time_is_recorded_and_listed(tmp_path):
    """A text file that is missing: only the job that reads it can tell."""
    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat. " * 40)
    sweep = tmp_path / "S"
    proc = train_cmd("-m", *T, "model=generator", "dataset=text", "dataset.seq_length=8",
                     f"dataset.path={text},{tmp_path / 'gone.txt'}", "hydra/callbacks=analyze",
                     f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert f"rnn-train: error: {tmp_path / 'gone.txt'}: no such file" in proc.stderr
    assert summary(sweep / "0")["status"] == "completed"
    assert summary(sweep / "1")["status"] == "failed" and "gone.txt" in summary(sweep / "1")["error"]
    assert "gone.txt" in (sweep / "1" / ".hydra" / "overrides.yaml").read_text()
    assert f"hydra.run.dir={sweep / '1'}" in (sweep / "analysis" / "rerun.sh").read_text()


def start(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "rnn_experiments.train", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(predicate, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        time.sleep(0.1)
    raise TimeoutError


def has_rows(run: Path) -> bool:
    try:
        return len((run / "metrics.csv").read_text().splitlines()) > 2
    except FileNotFoundError:
        return False


def read_or_empty(path: Path) -> bytes:
    return path.read_bytes() if path.exists() else b""


LONG = [*T, "train.steps=100000", "train.log_every=10", "train.eval_every=1000", "train.checkpoint_every=50"]


@pytest.mark.slow
def test_second_run_in_a_folder_is_refused_naming_the_first(tmp_path):
    run = tmp_path / "X"
    first = start(*LONG, f"hydra.run.dir={run}")
    try:
        wait_for(lambda: has_rows(run), first)
        log_before = read_or_empty(run / "train.log")
        proc = train_cmd(*LONG, f"hydra.run.dir={run}")
        assert proc.returncode == 2
        assert proc.stderr.startswith(f"rnn-train: error: {run}: another run is using this folder (pid {first.pid} on ")
        assert read_or_empty(run / "train.log").startswith(log_before) and first.poll() is None
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=60)
    assert first.returncode == 130 and summary(run)["status"] == "interrupted"
    assert not (run / "run.lock").exists()


@pytest.mark.slow
def test_sigterm_to_one_joblib_worker_leaves_the_other_running(tmp_path):
    sweep = tmp_path / "S"
    proc = start("-m", *LONG[:-4], "train.steps=1500", "train.log_every=10", "train.eval_every=500",
                 "train.checkpoint_every=100", "seed=0,1", "hydra/launcher=parallel", f"hydra.sweep.dir={sweep}")
    wait_for(lambda: has_rows(sweep / "0") and has_rows(sweep / "1"), proc)
    os.kill(summary(sweep / "0")["pid"], signal.SIGTERM)          # one worker, not the sweep
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 1, err[-3000:]
    assert summary(sweep / "0")["status"] == "interrupted"
    assert summary(sweep / "1")["status"] == "completed" and summary(sweep / "1")["step"] == 1500
    assert "#0 (seed=0): interrupted" in err.strip().splitlines()[-1]


@pytest.mark.slow
def test_diverged_run_exits_1_with_one_line(tmp_path):
    proc = train_cmd(*T, "train.lr=3e37", f"hydra.run.dir={tmp_path / 'X'}")
    assert proc.returncode == 1
    step = json.loads((tmp_path / "X" / "summary.json").read_text())["diverged_at_step"]
    assert step in (2, 3)   # the overflow's step depends on the CPU's arithmetic
    assert proc.stderr == (f"rnn-train: error: {tmp_path / 'X'}: the loss is not finite at step {step} "
                           "(status diverged; the last good checkpoint is kept)\n")


@pytest.mark.slow
def test_killed_joblib_sweep_starts_no_queued_job(tmp_path):
    """SIGTERM to the whole sweep (its process group): the running jobs stop with a checkpoint,
    the queued ones are not started by the orphaned workers."""
    sweep = tmp_path / "S"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "rnn_experiments.train", "-m", *LONG[:-4], "train.steps=5000",
                             "train.checkpoint_every=100", "seed=0,1,2,3", "hydra/launcher=parallel",
                             f"hydra.sweep.dir={sweep}"], cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: has_rows(sweep / "0") and has_rows(sweep / "1"), proc)
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)   # (the orphaned workers keep its pipes open: no communicate)
        deadline = time.time() + 60
        while time.time() < deadline and not all((sweep / str(i) / "summary.json").exists()
                                                 and summary(sweep / str(i))["status"] == "interrupted"
                                                 for i in (0, 1)):
            time.sleep(0.5)
        time.sleep(5)   # time for a worker to pick up a queued job
        assert [summary(sweep / str(i))["status"] for i in (0, 1)] == ["interrupted", "interrupted"]
        assert not any((sweep / str(i) / "summary.json").exists() for i in (2, 3))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)   # the orphaned, idle workers
        proc.communicate(timeout=60)


@pytest.mark.slow
def test_refused_sweep_never_touches_a_finished_sweep(tmp_path):
    sweep = tmp_path / "S"
    assert train_cmd("-m", *T, "train.steps=10", "seed=0,1", f"hydra.sweep.dir={sweep}").returncode == 0
    before = digest(sweep)
    proc = train_cmd("-m", *T, "train.steps=10", "seed=0,1", "train.lr=0.01", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f"rnn-train: error: 2 job(s) of the sweep did not complete: #0 (seed=0): no record of this sweep in "
        f"{sweep / '0'} (refused or not started); #1 (seed=1): no record of this sweep in {sweep / '1'} "
        "(refused or not started)")
    assert digest(sweep) == before   # multirun.yaml too: the analysis still rebuilds the old job list
