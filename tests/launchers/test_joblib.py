"""hydra/launcher=parallel (joblib): thread limits per job, jobs side by side with the command
recorded, a failing job and a signalled worker that fail alone, a killed sweep that starts no
queued job."""
from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time

import pytest
from omegaconf import OmegaConf

from conftest import ROOT, has_rows, summary_of, wait_for
from rnn_experiments.sweeps.launch import job_threads

# a sweep's jobs small enough to start, train a few steps and be preempted in seconds
LAUNCH_TINY = ["model.hidden_size=16", "model.embedding_dim=8", "dataset.seq_length=4",
        "train.batch_size=16", "train.eval_size=64", "device=cpu"]


@pytest.mark.parametrize("threads, launcher, cores, expected", [
    (3, {"n_jobs": 2}, 8, 3),               # explicit train.threads wins
    (0, {"n_jobs": 2}, 8, 4),               # joblib: cores // n_jobs
    (0, {"n_jobs": 3}, 2, 1),               # never below 1
    (0, {"n_jobs": -1}, 8, 1),              # joblib's -1 = one job per core
    (0, {"cpus_per_task": 4}, 16, 4),       # submitit: what the job was given
    (0, {"cpus_per_task": None}, 16, 0),    # nothing said: torch's default
])
def test_job_threads_share_the_cores(monkeypatch, threads, launcher, cores, expected):
    import rnn_experiments.sweeps.launch as launch
    monkeypatch.setattr(launch, "_launcher_cfg", lambda: OmegaConf.create(launcher))
    cfg = OmegaConf.create({"train": {"threads": threads}})
    assert job_threads(cfg, cores=cores) == expected




STEPS = ["train.steps=10", "train.log_every=5", "train.eval_every=5", "train.checkpoint_every=0"]


@pytest.mark.slow
def test_joblib_sweep_shares_the_cores_records_the_command_and_a_failing_job_fails_alone(tmp_path):
    """hydra/launcher=parallel: 2 jobs at a time in worker processes, each with cores // 2 torch
    threads; every job's summary has the command that was typed; a diverging job fails alone and
    the sweep exits 1 naming it, after its analysis callback."""
    from rnn_experiments.training.resources import available_cores
    cmd = [sys.executable, "-m", "rnn_experiments.train", "-m", *LAUNCH_TINY, *STEPS, "seed=0,1",
           "train.lr=1e-3,3e37", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", "hydra/callbacks=analyze",
           "hydra.callbacks.analyze.formats=[]", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr[-2000:]
    runs = [summary_of(tmp_path / "sweep" / str(i)) for i in range(4)]
    assert [(r["seed"], r["status"]) for r in runs] == [(0, "completed"), (0, "diverged"),
                                                        (1, "completed"), (1, "diverged")]
    assert all(r["threads"] == max(1, available_cores() // 2) for r in runs)   # 2 jobs x threads <= cores
    assert all(r["command"] == shlex.join(cmd) for r in runs)    # typed once, recorded in every worker
    assert len({r["pid"] for r in runs}) == 2                    # two worker processes ...
    assert proc.returncode is not None and all(r["pid"] != os.getpid() for r in runs)   # ... not this one
    last = proc.stderr.strip().splitlines()[-1]
    assert re.match(r"rnn-train: error: 2 job\(s\) of the sweep did not complete: "
                    r"#1 \(seed=0 train.lr=3e\+37\): diverged \(at step [23]\); #3 \(seed=1 train.lr=3e\+37\)", last)
    rerun = (tmp_path / "sweep" / "analysis" / "rerun.sh").read_text()
    assert f"hydra.run.dir={tmp_path / 'sweep' / '1'}" in rerun and f"hydra.run.dir={tmp_path / 'sweep' / '3'}" in rerun






LONG = [*LAUNCH_TINY, "train.log_every=10", "train.eval_every=1000", "train.checkpoint_every=100",
        "train.threads=1", "~hydra.callbacks.analyze"]


@pytest.mark.slow
def test_sigterm_to_one_worker_stops_its_job_alone_and_a_killed_sweep_starts_no_queued_job(tmp_path):
    """Four jobs, two at a time. SIGTERM to the worker running #0: that job saves its checkpoint
    and is `interrupted`, its sibling #1 trains on (a signalled worker does not take the other
    down). Then SIGTERM to the whole sweep (its process group): the running jobs stop with a
    checkpoint, and the orphaned workers start no queued job (the guard itself:
    test_a_job_whose_sweep_is_gone_is_not_started)."""
    sweep_dir = tmp_path / "S"
    proc = subprocess.Popen([sys.executable, "-m", "rnn_experiments.train", "-m", *LONG, "train.steps=5000",
                             "seed=0,1,2,3", "hydra/launcher=parallel", f"hydra.sweep.dir={sweep_dir}"],
                            cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)

    def status(i):
        return summary_of(sweep_dir / str(i))["status"] if (sweep_dir / str(i) / "summary.json").exists() else None

    def rows(i):
        return len((sweep_dir / str(i) / "metrics.csv").read_text().splitlines())

    try:
        wait_for(lambda: has_rows(sweep_dir / "0") and has_rows(sweep_dir / "1"), proc)
        os.kill(summary_of(sweep_dir / "0")["pid"], signal.SIGTERM)          # one worker, not the sweep
        wait_for(lambda: status(0) == "interrupted", proc)
        before = rows(1)
        wait_for(lambda: rows(1) > before + 2, proc)                         # #1 goes on training
        assert status(1) == "running" and summary_of(sweep_dir / "0")["signal"] == "SIGTERM"

        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        deadline = time.time() + 60
        while time.time() < deadline and status(1) != "interrupted":
            time.sleep(0.1)
        time.sleep(2)   # a worker that took a queued job would have written its summary.json by now
        assert [status(i) for i in (0, 1)] == ["interrupted", "interrupted"]
        assert status(2) in (None, "interrupted") and status(3) is None      # #2 may have started
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)   # the orphaned, idle workers


def test_a_job_whose_sweep_is_gone_is_not_started(monkeypatch, capsys):
    """A job handed to a worker process (joblib, submitit) after its sweep's process died on this
    host returns without running; in the sweep's own process, or with the sweep alive, it runs."""
    import socket
    from rnn_experiments.run.provenance import SWEEP_ENV
    from rnn_experiments.cli import job
    ran = []
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    monkeypatch.setattr(job, "_where", lambda: (True, False))            # a sweep job in a worker
    monkeypatch.setenv(SWEEP_ENV, f"{socket.gethostname()}:{dead.pid}:0")
    assert job.end_job("rnn-train", lambda: ran.append(1)) is None and ran == []
    assert capsys.readouterr().err == ("rnn-train: error: the sweep's process is gone (killed?): "
                                       "this job is not started\n")
    monkeypatch.setenv(SWEEP_ENV, f"{socket.gethostname()}:{os.getpid()}:0")   # alive
    job.end_job("rnn-train", lambda: ran.append(1))
    monkeypatch.setattr(job, "_where", lambda: (True, True))             # the sweep's own process
    monkeypatch.setenv(SWEEP_ENV, f"{socket.gethostname()}:{dead.pid}:0")
    job.end_job("rnn-train", lambda: ran.append(1))
    assert ran == [1, 1]
