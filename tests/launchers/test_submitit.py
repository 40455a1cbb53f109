"""Hydra's submitit launchers: submitit_local runs each job in its own process, a failing job
fails alone, preemption -> checkpoint -> requeue -> resume (one sweep shows all three); the SLURM
preset's sbatch script (the real SLURM cluster: tests/cluster/)."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import ROOT, compose_config, has_rows, summary_of, wait_for

# a sweep's jobs small enough to start, train a few steps and be preempted in seconds
LAUNCH_TINY = ["model.hidden_size=16", "model.embedding_dim=8", "dataset.seq_length=4",
        "train.batch_size=16", "train.eval_size=64", "device=cpu"]


def sweep(tmp_path, *overrides, wait=True):
    cmd = [sys.executable, "-m", "rnn_experiments.train", "-m", *LAUNCH_TINY, *overrides,
           "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5",
           "hydra.launcher.cpus_per_task=1", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if wait:
        out, _ = proc.communicate(timeout=120)
        return proc, out
    return proc




def descendants(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            out += [int(child), *descendants(int(child))]
    return out


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc")
def test_submitit_jobs_run_alone_fail_alone_and_a_preempted_one_requeues_and_resumes(tmp_path):
    """submitit_local: each job in a process of its own. Job #1 diverges and fails alone; job #0
    gets SIGUSR2 (what SLURM sends before a time limit): it saves checkpoint.pt, submitit
    requeues it, and it resumes from the checkpoint to the end. The sweep exits 1 naming #1 only,
    and its analysis's rerun.sh lists #1 only."""
    proc = sweep(tmp_path, "train.steps=600", "train.log_every=50", "train.eval_every=1000",
                 "train.checkpoint_every=0", "train.lr=3e-3,3e37", "hydra.callbacks.analyze.formats=[]",
                 wait=False)
    runs = [tmp_path / "sweep" / str(i) for i in (0, 1)]
    wait_for(lambda: has_rows(runs[0]), proc)
    task = summary_of(runs[0])["pid"]             # the job's own process: submitit.core._submit
    assert b"submitit.core._submit" in Path(f"/proc/{task}/cmdline").read_bytes() and task in descendants(proc.pid)
    os.kill(task, signal.SIGUSR2)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, out[-3000:]
    first, second = summary_of(runs[0]), summary_of(runs[1])
    assert (first["status"], first["step"]) == ("completed", 600) and first["resumed_from_step"] > 0
    assert second["status"] == "diverged" and len({first["pid"], second["pid"], task, proc.pid}) == 4
    assert re.search(r"rnn-train: error: 1 job\(s\) of the sweep did not complete: #1 \(train.lr=3e\+37\): "
                     r"diverged \(at step [23]\)", out)
    rerun = (tmp_path / "sweep" / "analysis" / "rerun.sh").read_text()
    assert f"hydra.run.dir={runs[1]}" in rerun and f"hydra.run.dir={runs[0]}" not in rerun
    logs = "".join(p.read_text() for p in (tmp_path / "sweep" / ".submitit").rglob("*_log.*"))
    assert "requeueing through submitit" in logs and "Requeued job" in logs


def test_slurm_preset_makes_an_sbatch_script_with_its_settings(tmp_path, monkeypatch):
    """conf/hydra/launcher/slurm.yaml, passed to submitit the way hydra-submitit-launcher does
    (no cluster needed: only the sbatch file is written); the launcher keeps its own keys
    (pack_size, strategy) from sbatch."""
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from hydra_plugins.rnn_experiments_slurm.launcher import SlurmLauncher

    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", staticmethod(lambda: 1))  # "srun" found
    cfg = compose_config(["hydra/launcher=slurm", "hydra.launcher.partition=gpu",
                          "hydra.launcher.gpus_per_node=1"], return_hydra_config=True)
    given = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)
    params = SlurmLauncher(**{k: v for k, v in given.items() if k != "_target_"}).params   # what upstream's launch gets
    params = {k: v for k, v in params.items() if k not in ("submitit_folder", "name")}
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
