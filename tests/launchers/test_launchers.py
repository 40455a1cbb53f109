"""Hydra launchers: thread limits per parallel job, a real submitit_local sweep, and
preemption -> checkpoint -> requeue -> resume under submitit."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import ROOT, compose_config
from rnn_experiments.launch import job_threads

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
    import rnn_experiments.launch as launch
    monkeypatch.setattr(launch, "_launcher_cfg", lambda: OmegaConf.create(launcher))
    cfg = OmegaConf.create({"train": {"threads": threads}})
    assert job_threads(cfg, cores=cores) == expected


def sweep(tmp_path, *overrides, wait=True):
    cmd = [sys.executable, "-m", "rnn_experiments.train", "-m", *LAUNCH_TINY, *overrides,
           "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5",
           "hydra.launcher.cpus_per_task=1", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if wait:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out[-2000:]
    return proc


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


@pytest.mark.slow
def test_submitit_local_runs_a_tiny_sweep_as_separate_processes(tmp_path):
    sweep(tmp_path, "model=lstm,peep_lstm", "train.steps=30", "train.log_every=10",
          "train.eval_every=10", "train.checkpoint_every=0")
    runs = sorted(p for p in (tmp_path / "sweep").iterdir() if p.name.isdigit())
    assert [summary(r)["model"] for r in runs] == ["lstm", "peep_lstm"]
    assert all(summary(r)["status"] == "completed" and summary(r)["step"] == 30 for r in runs)
    assert (tmp_path / "sweep" / ".submitit").is_dir()           # submitit's job folders


@pytest.mark.slow
def test_joblib_sweep_runs_jobs_in_parallel_with_threads_shared(tmp_path):
    from rnn_experiments.launch import available_cores
    cmd = [sys.executable, "-m", "rnn_experiments.train", "-m", *LAUNCH_TINY, "seed=0,1",
           "train.steps=20", "train.log_every=10", "train.eval_every=10", "train.checkpoint_every=0",
           "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    runs = [summary(tmp_path / "sweep" / str(i)) for i in (0, 1)]
    assert [r["seed"] for r in runs] == [0, 1] and all(r["status"] == "completed" for r in runs)
    assert all(r["threads"] == max(1, available_cores() // 2) for r in runs)   # 2 jobs x threads <= cores


def descendants(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            out += [int(child), *descendants(int(child))]
    return out


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc")
def test_preempted_submitit_job_checkpoints_requeues_and_resumes(tmp_path):
    proc = sweep(tmp_path, "train.steps=2000", "train.log_every=50", "train.eval_every=1000",
                 "train.checkpoint_every=0", "train.lr=3e-3", wait=False)
    metrics = tmp_path / "sweep" / "0" / "metrics.csv"
    deadline = time.time() + 60
    while time.time() < deadline and (not metrics.exists() or len(metrics.read_text().splitlines()) < 3):
        time.sleep(0.2)
    # the job's own process runs `submitit.core._submit`; SLURM would send it SIGUSR2
    task = [p for p in descendants(proc.pid)
            if b"submitit.core._submit" in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert task, "no submitit task process found"
    os.kill(task[0], signal.SIGUSR2)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out[-2000:]
    s = summary(tmp_path / "sweep" / "0")
    assert s["status"] == "completed" and s["step"] == 2000
    assert s["resumed_from_step"] > 0                  # the requeued job went on from checkpoint.pt
    logs = "".join(p.read_text() for p in (tmp_path / "sweep" / ".submitit").rglob("*_log.*"))
    assert "requeueing through submitit" in logs and "Requeued job" in logs


def test_slurm_preset_makes_an_sbatch_script_with_its_settings(tmp_path, monkeypatch):
    """conf/hydra/launcher/slurm.yaml, passed to submitit the way hydra-submitit-launcher does
    (no cluster needed: only the sbatch file is written)."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", staticmethod(lambda: 1))  # "srun" found
    cfg = compose_config(["hydra/launcher=slurm", "hydra.launcher.partition=gpu",
                          "hydra.launcher.gpus_per_node=1"], return_hydra_config=True)
    params = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)
    params = {k: v for k, v in params.items() if k not in ("_target_", "submitit_folder", "name")}
    executor = submitit.AutoExecutor(cluster="slurm", folder=tmp_path,
                                     slurm_max_num_timeout=params.pop("max_num_timeout"))
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    script = executor._executor._make_submission_file_text("python -m rnn_experiments.train", "uid")
    for line in ["--partition=gpu", "--time=120", "--cpus-per-task=4", "--gpus-per-node=1",
                 "--mem=8GB", "--signal=USR2@120", "--requeue"]:
        assert f"#SBATCH {line}" in script, line
    assert executor._executor.max_num_timeout == 5
    assert cfg.hydra.launcher.array_parallelism == 12
