"""`hydra/launcher=slurm` on a real SLURM cluster (tests/cluster/slurm.sh starts a one-node one):
a job array and its analysis, the time limit (SIGUSR2, checkpoint, requeue, resume), an admin
requeue (SIGTERM), a node failure, a cancelled array task and its rerun command, a job failing at
run time, packs of seeds (one task per pack, and its SIGUSR2 requeue), and the sweeps refused
before anything is submitted. Every test reads the run folders.

    sudo bash tests/cluster/slurm.sh && python -m pytest -m slurm -n 0

Marked `slurm` (deselected by the plain `pytest -q`) and `slow`. Without a cluster they skip;
with RNN_EXPERIMENTS_REQUIRE_SLURM=1 (CI) they fail instead. They take the cluster's whole node
(the node-failure test marks it DOWN), so they run one at a time, also under pytest-xdist (a lock
file). Timings in docs/slurm.md.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT
from rnn_experiments.run.metrics import TIMING_COLUMNS, read_metrics

pytestmark = [pytest.mark.slurm]

TINY = ["model.hidden_size=16", "model.embedding_dim=8", "dataset.seq_length=4", "train.batch_size=16",
        "train.eval_size=64", "device=cpu", "train.threads=1"]
# the preset asks for 4 CPUs and 8 GB per job (a real cluster's node); the test node has 2 cores
SLURM = ["hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1"]
LOCK = Path("/tmp/rnn-experiments-slurm-tests.lock")


def sh(*cmd: str, check: bool = True) -> str:
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=60).stdout.strip()


def cluster_problem() -> str | None:
    """Why the tests cannot run (None: a cluster answers, with accounting and a node up)."""
    if shutil.which("sbatch") is None:
        return "no SLURM cluster (sbatch not on PATH); start one: sudo bash tests/cluster/slurm.sh"
    for cmd in (["sinfo", "-h", "-o", "%P %t"], ["sacct", "-n", "-X", "-S", "now"]):
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            return f"`{' '.join(cmd)}` failed: {done.stderr.strip()[:200]} (sudo bash tests/cluster/slurm.sh)"
    states = sh("sinfo", "-h", "-o", "%t").split()
    if not any(s.rstrip("*") in ("idle", "mix", "alloc", "comp") for s in states):
        return f"no SLURM node up (sinfo: {' '.join(states)}); sudo bash tests/cluster/slurm.sh"
    if os.geteuid() != 0:
        return "the SLURM tests change the node's state (scontrol update): run them as root"
    return None


@pytest.fixture(autouse=True)
def cluster():
    """Skip (fail under RNN_EXPERIMENTS_REQUIRE_SLURM=1) without a cluster; one test at a time."""
    problem = cluster_problem()
    if problem:
        if os.environ.get("RNN_EXPERIMENTS_REQUIRE_SLURM") == "1":
            pytest.fail(f"RNN_EXPERIMENTS_REQUIRE_SLURM=1: {problem}")
        pytest.skip(problem)
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def sweep(tmp_path, *overrides, env=None, python=sys.executable):
    """The sweep's process, started (stdout and stderr to files under tmp_path)."""
    cmd = [python, "-m", "rnn_experiments.train", "-m", *TINY, *SLURM, *overrides,
           f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    out = open(tmp_path / "sweep.out", "w")
    err = open(tmp_path / "sweep.err", "w")
    return subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=err, text=True, env=env)


def finish(proc, tmp_path, timeout=600) -> tuple[int, str, str]:
    proc.wait(timeout=timeout)
    return proc.returncode, (tmp_path / "sweep.out").read_text(), (tmp_path / "sweep.err").read_text()


def reference(tmp_path, *overrides, name="reference"):
    """The same run, uninterrupted, alone, outside SLURM, in tmp_path/name (a child process;
    .wait() for it)."""
    return subprocess.Popen([sys.executable, "-m", "rnn_experiments.train", *TINY, *overrides,
                             f"hydra.run.dir={tmp_path / name}"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def metrics(run_dir: Path) -> pd.DataFrame:
    return read_metrics(run_dir / "metrics.csv").drop(columns=TIMING_COLUMNS)


def assert_same_as_reference(run_dir: Path, ref_proc, tmp_path, name="reference", exact=False) -> None:
    """run_dir's metrics.csv (timing columns aside) equal to the reference run's; exact: bit for bit."""
    _, err = ref_proc.communicate(timeout=600)
    assert ref_proc.returncode == 0, err[-2000:]
    pd.testing.assert_frame_equal(metrics(run_dir), metrics(tmp_path / name), check_exact=exact)


def last_step(run_dir: Path) -> int:
    try:
        return int(read_metrics(run_dir / "metrics.csv").step.max())
    except (FileNotFoundError, ValueError):
        return -1


def wait_until(what: str, cond, proc=None, timeout: float = 300, every: float = 0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = cond()
        if value:
            return value
        assert proc is None or proc.poll() is None, f"the sweep ended before {what}"
        time.sleep(every)
    raise TimeoutError(f"not {what} after {timeout} s")


def job_ids(sweep_dir: Path) -> list[str]:
    """The SLURM ids of the sweep's jobs (array tasks "A_k"), from submitit's folders."""
    names = [p.name for p in (sweep_dir / ".submitit").glob("*") if re.fullmatch(r"\d+(_\d+)?", p.name)]
    tasks = sorted((n for n in names if "_" in n), key=lambda n: int(n.split("_")[1]))
    return tasks or sorted(names)


def attempts(job: str) -> list[dict]:
    """sacct's records of a job, one per run of it (a requeued job has several), once it has
    ended (its result is written a moment before SLURM counts it as ended)."""
    def records():
        lines = sh("sacct", "-n", "-P", "-X", "--duplicates", "-j", job,
                   "-o", "JobID,State,ElapsedRaw,Start,End").splitlines()
        keys = ["id", "state", "elapsed_s", "start", "end"]
        found = [dict(zip(keys, line.split("|"))) for line in lines]
        return found if found and found[-1]["state"] not in ("PENDING", "RUNNING", "COMPLETING") else None
    return wait_until(f"job {job} ended", records, timeout=60)


def speed(tmp_path) -> float:
    """Training steps per second of the TINY model (one thread) on the machine running the tests."""
    run = tmp_path / "speed"
    subprocess.run([sys.executable, "-m", "rnn_experiments.train", *TINY, "train.steps=1000",
                    "train.log_every=500", "train.eval_every=1000", "train.checkpoint_every=0",
                    f"hydra.run.dir={run}"], cwd=ROOT, check=True, capture_output=True, timeout=300)
    return 1000 / summary(run)["wall_time_s"]


def test_sweep_is_one_job_array_run_one_task_at_a_time_then_analysed(tmp_path):
    """The demo sweep (2 models x 2 seeds) as a job array with array_parallelism=1, watched in
    squeue; the analysis callback's tables on disk."""
    proc = sweep(tmp_path, "+experiment=demo", "train.steps=200", "hydra.launcher.array_parallelism=1")
    running_at_once, seen = 0, set()
    while proc.poll() is None:
        ids = job_ids(tmp_path / "sweep")
        if ids:
            array = ids[0].split("_")[0]
            running = sh("squeue", "-h", "-r", "-j", array, "-t", "RUNNING", "-o", "%i", check=False).split()
            running_at_once = max(running_at_once, len(running))
            seen.update(running)
        time.sleep(0.2)
    rc, out, err = finish(proc, tmp_path)
    assert rc == 0, err[-3000:]
    ids = job_ids(tmp_path / "sweep")
    assert len(ids) == 4 and len({i.split("_")[0] for i in ids}) == 1    # one array of 4 tasks
    assert running_at_once == 1 and len(seen) >= 3                       # squeue: one task at a time
    records = [attempts(i)[-1] for i in ids]
    assert [r["state"] for r in records] == ["COMPLETED"] * 4
    assert all(a["end"] <= b["start"] for a, b in zip(records, records[1:]))   # one after the other
    runs = [summary(tmp_path / "sweep" / str(k)) for k in range(4)]
    assert [(r["model"], r["seed"], r["status"], r["step"]) for r in runs] == [
        ("lstm", 0, "completed", 200), ("lstm", 1, "completed", 200),
        ("peep_lstm", 0, "completed", 200), ("peep_lstm", 1, "completed", 200)]
    table = pd.read_csv(tmp_path / "sweep" / "analysis" / "summary.csv")
    assert sorted(table["model.name"]) == ["lstm", "peep_lstm"]
    assert (tmp_path / "sweep" / "analysis" / "compare.md").is_file()
    assert "== analysis of" in out and not (tmp_path / "sweep" / "analysis" / "rerun.sh").exists()


def test_time_limit_sends_sigusr2_then_checkpoint_requeue_resume_exact(tmp_path):
    """A 2-minute time limit with signal_delay_s=60: SLURM sends SIGUSR2 (up to 60 s early, by
    its 30-s timer) while the run trains; it saves checkpoint.pt (no periodic checkpoints), submitit
    requeues the job, the next run resumes. About 70 s of training, sized by this machine's speed:
    the signal comes 30 to 60 s after the job starts, and the resumed run should not need another."""
    steps = max(5000, round(speed(tmp_path) * 70 / 1000) * 1000)
    run = ["seed=5", f"train.steps={steps}", f"train.log_every={steps // 50}",
           f"train.eval_every={steps // 5}", "train.checkpoint_every=0"]
    ref = reference(tmp_path, *run)
    proc = sweep(tmp_path, *run, "hydra.launcher.timeout_min=2", "hydra.launcher.signal_delay_s=60")
    rc, _, err = finish(proc, tmp_path)
    assert rc == 0, err[-3000:]
    s = summary(tmp_path / "sweep" / "0")
    assert (s["status"], s["step"]) == ("completed", steps) and 0 < s["resumed_from_step"] < steps
    job, = job_ids(tmp_path / "sweep")
    runs = attempts(job)
    assert [r["state"] for r in runs[:-1]] == ["REQUEUED"] * (len(runs) - 1) and runs[-1]["state"] == "COMPLETED"
    assert all(int(r["elapsed_s"]) <= 120 - 60 + 10 for r in runs[:-1])   # stopped by the signal, not the limit
    log = "".join(p.read_text() for p in (tmp_path / "sweep" / ".submitit").rglob("*_log.*"))
    assert "Caught signal SIGUSR2" in log and "requeueing through submitit" in log
    assert_same_as_reference(tmp_path / "sweep" / "0", ref, tmp_path)


def test_admin_requeue_sigterm_resumes_from_its_checkpoint_and_counts_as_completed(tmp_path):
    """`scontrol requeue` (what preemption with PreemptMode=REQUEUE does too) sends SIGTERM: the
    run saves checkpoint.pt and exits without a result, SLURM starts it again, it resumes; the
    sweep waited and reports no failure."""
    run = ["seed=6", "train.steps=4000", "train.log_every=100", "train.eval_every=1000",
           "train.checkpoint_every=500"]
    ref = reference(tmp_path, *run)
    proc = sweep(tmp_path, *run)
    run_dir = tmp_path / "sweep" / "0"
    wait_until("step 1000", lambda: last_step(run_dir) >= 1000, proc)
    job, = job_ids(tmp_path / "sweep")
    sh("scontrol", "requeue", job)
    rc, _, err = finish(proc, tmp_path)
    assert rc == 0 and "did not complete" not in err, err[-3000:]
    s = summary(run_dir)
    assert (s["status"], s["step"]) == ("completed", 4000) and s["resumed_from_step"] >= 1000
    assert [r["state"] for r in attempts(job)] == ["REQUEUED", "COMPLETED"]
    log = "".join(p.read_text() for p in (tmp_path / "sweep" / ".submitit").rglob("*_log.*"))
    assert f"stopped by SIGTERM at step {s['resumed_from_step']}" in log and "exiting without a result" in log
    assert_same_as_reference(run_dir, ref, tmp_path)


PACKED = ["hydra.launcher.pack_size=2", "hydra.launcher.strategy=loop"]   # loop: bit-identical to a run alone


def test_a_seeds_sweep_in_packs_of_two_is_two_slurm_tasks_of_ordinary_runs_equal_to_runs_alone(tmp_path):
    """4 seeds, pack_size=2: one array of 2 tasks, each training 2 members in one process; 4
    ordinary run folders (summary.json records the pack), each equal bit for bit (strategy
    loop) to the run of its seed alone; the analysis reads them as 4 seeds."""
    run = ["train.steps=200", "train.log_every=20", "train.eval_every=100"]
    refs = {k: reference(tmp_path, f"seed={k}", *run, name=f"reference_{k}") for k in (0, 3)}
    proc = sweep(tmp_path, "seed=0,1,2,3", *run, *PACKED, "hydra.launcher.array_parallelism=2")
    rc, out, err = finish(proc, tmp_path)
    assert rc == 0, err[-3000:]
    assert "slurm launcher: one SLURM task per pack: #0 #1; #2 #3" in out + err
    ids = job_ids(tmp_path / "sweep")
    assert len(ids) == 2 and len({i.split("_")[0] for i in ids}) == 1     # one array of 2 tasks
    assert [attempts(i)[-1]["state"] for i in ids] == ["COMPLETED"] * 2
    runs = [summary(tmp_path / "sweep" / str(k)) for k in range(4)]
    assert [(r["seed"], r["status"], r["step"]) for r in runs] == [(k, "completed", 200) for k in range(4)]
    assert [r["pack"]["members"] for r in runs] == [["0", "1"]] * 2 + [["2", "3"]] * 2
    assert {r["pack"]["strategy"] for r in runs} == {"loop"} and {r["threads"] for r in runs} == {1}
    assert runs[0]["pid"] == runs[1]["pid"] != runs[2]["pid"] == runs[3]["pid"]   # a process a pack
    for k in range(4):
        for f in ("metrics.csv", "checkpoint.pt", "checkpoint_best.pt", "train.log", ".hydra/config.yaml"):
            assert (tmp_path / "sweep" / str(k) / f).is_file(), (k, f)
    for k, ref in refs.items():
        assert_same_as_reference(tmp_path / "sweep" / str(k), ref, tmp_path, name=f"reference_{k}", exact=True)
    table = pd.read_csv(tmp_path / "sweep" / "analysis" / "summary.csv")
    assert table["seeds"].tolist() == [4]


def test_sigusr2_to_a_packs_task_stops_every_member_and_the_requeued_task_resumes_them_exact(tmp_path):
    """SIGUSR2 (what SLURM sends before the time limit, here by scancel) to the task of a pack of
    2 mid-run: every member saves its checkpoint and stops, submitit requeues the task (the same
    pack), and both members resume from their checkpoints and complete, each equal bit for bit
    to the run of its seed alone."""
    run = ["train.steps=600", "train.log_every=20", "train.eval_every=200", "train.checkpoint_every=0"]
    refs = {k: reference(tmp_path, f"seed={k}", *run, name=f"reference_{k}") for k in (0, 1)}
    proc = sweep(tmp_path, "seed=0,1", *run, *PACKED)
    folders = [tmp_path / "sweep" / str(k) for k in (0, 1)]
    wait_until("both members at step 100", lambda: min(last_step(f) for f in folders) >= 100, proc)
    task, = job_ids(tmp_path / "sweep")
    sh("scancel", "--signal=USR2", task)
    rc, _, err = finish(proc, tmp_path)
    assert rc == 0 and "did not complete" not in err, err[-3000:]
    runs = [summary(f) for f in folders]
    assert [(r["status"], r["step"]) for r in runs] == [("completed", 600)] * 2
    assert all(100 <= r["resumed_from_step"] < 600 for r in runs), [r.get("resumed_from_step") for r in runs]
    assert [r["state"] for r in attempts(task)] == ["REQUEUED", "COMPLETED"]
    log = "".join(p.read_text() for p in (tmp_path / "sweep" / ".submitit").rglob("*_log.*"))
    assert "Caught signal SIGUSR2" in log and "requeueing through submitit" in log
    for r in runs:
        assert f"stopped by SIGUSR2 at step {r['resumed_from_step']}" in log
    for k, ref in refs.items():
        assert_same_as_reference(folders[k], ref, tmp_path, name=f"reference_{k}", exact=True)


def processes_of(job: str) -> list[int]:
    """Every process of a running job on this node: its slurmstepd's and theirs."""
    pids = {int(line.split()[0]) for line in sh("scontrol", "listpids", job).splitlines()[1:]}
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and f"[{job}.".encode() in (proc / "cmdline").read_bytes():
                pids.add(int(proc.name))   # slurmstepd: [JOB.batch], [JOB.0]
        except OSError:
            pass
    return sorted(pids)


def test_node_failure_resumes_from_last_checkpoint(tmp_path):
    """The node fails: every process of the job is killed (SIGKILL: no checkpoint at the end)
    and the node is marked DOWN, as slurmctld does with a node that stops answering; back in
    service, SLURM starts the requeued job, which resumes from its last periodic checkpoint."""
    run = ["seed=7", "train.steps=4000", "train.log_every=100", "train.eval_every=1000",
           "train.checkpoint_every=500"]
    ref = reference(tmp_path, *run)
    proc = sweep(tmp_path, *run)
    run_dir = tmp_path / "sweep" / "0"
    wait_until("step 1100", lambda: last_step(run_dir) >= 1100, proc)
    job, = job_ids(tmp_path / "sweep")
    node = sh("squeue", "-h", "-j", job, "-o", "%N")
    try:
        for pid in processes_of(job):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        sh("scontrol", "update", f"nodename={node}", "state=down", "reason=node failure (test)")
        wait_until("the job requeued", lambda: sh("squeue", "-h", "-j", job, "-o", "%T") == "PENDING")
        assert summary(run_dir)["status"] == "running"     # killed: it could not say otherwise
    finally:
        sh("scontrol", "update", f"nodename={node}", "state=resume", check=False)
    rc, _, err = finish(proc, tmp_path)
    assert rc == 0, err[-3000:]
    s = summary(run_dir)
    assert (s["status"], s["step"]) == ("completed", 4000)
    assert s["resumed_from_step"] >= 1000 and s["resumed_from_step"] % 500 == 0
    assert [r["state"] for r in attempts(job)] == ["NODE_FAIL", "COMPLETED"]
    assert_same_as_reference(run_dir, ref, tmp_path)


def test_cancelled_array_task_is_reported_and_its_rerun_command_resumes_it_on_slurm(tmp_path):
    """scancel of one task of three: the others finish, the sweep names the cancelled one and
    exits 1, the analysis prints a command that resubmits it to SLURM into its own folder, where
    it resumes; the sweep's multirun.yaml (the analysis's job list) is left as it was."""
    run = ["seed=0,1,2", "train.steps=3000", "train.log_every=100", "train.eval_every=1000",
           "train.checkpoint_every=500"]
    proc = sweep(tmp_path, *run, "hydra/callbacks=analyze", "hydra.launcher.array_parallelism=2")
    sweep_dir = tmp_path / "sweep"
    wait_until("task 1 at step 600", lambda: last_step(sweep_dir / "1") >= 600, proc)
    task = next(i for i in job_ids(sweep_dir) if i.endswith("_1"))
    sh("scancel", task)
    rc, out, err = finish(proc, tmp_path)
    assert rc == 1
    assert "1 job(s) of the sweep did not complete: #1 (seed=1): interrupted" in err, err[-3000:]
    assert [summary(sweep_dir / str(k))["status"] for k in range(3)] == ["completed", "interrupted", "completed"]
    stopped_at = summary(sweep_dir / "1")["step"]
    assert attempts(task)[-1]["state"].startswith("CANCELLED")

    rerun = (sweep_dir / "analysis" / "rerun.sh").read_text().splitlines()
    assert rerun[1] == f"# {sweep_dir / '1'} (interrupted)"
    cmd = shlex.split(rerun[2])
    assert cmd[:4] == ["python", "-m", "rnn_experiments.train", "-m"] and "hydra/launcher=slurm" in cmd
    assert f"hydra.sweep.dir={sweep_dir}" in cmd and "hydra.sweep.subdir=1" in cmd
    multirun = (sweep_dir / "multirun.yaml").read_bytes()
    before = set(os.listdir(sweep_dir / ".submitit"))
    ref = reference(tmp_path, "seed=1", *run[1:])
    done = subprocess.run([sys.executable, *cmd[1:]], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    new = {n for n in os.listdir(sweep_dir / ".submitit") if re.fullmatch(r"\d+(_\d+)?", n)} - before
    assert new and all([r["state"] for r in attempts(j)] == ["COMPLETED"] for j in new)   # on SLURM
    s = summary(sweep_dir / "1")
    assert (s["status"], s["step"], s["resumed_from_step"]) == ("completed", 3000, stopped_at)
    assert (sweep_dir / "multirun.yaml").read_bytes() == multirun
    assert not (sweep_dir / "analysis" / "rerun.sh").exists()  # the sweep's analysis, again: all done
    assert_same_as_reference(sweep_dir / "1", ref, tmp_path)


def test_job_failing_at_run_time_fails_alone_and_the_analysis_marks_it(tmp_path):
    proc = sweep(tmp_path, "train.lr=3e-3,3e37", "train.steps=300", "train.log_every=10",
                 "train.eval_every=100", "train.checkpoint_every=0", "hydra/callbacks=analyze",
                 "hydra.launcher.array_parallelism=2")
    rc, out, err = finish(proc, tmp_path)
    assert rc == 1
    assert err.strip().splitlines()[-1].startswith(
        "rnn-train: error: 1 job(s) of the sweep did not complete: #1 (train.lr=3e+37): diverged")
    ok, bad = summary(tmp_path / "sweep" / "0"), summary(tmp_path / "sweep" / "1")
    assert (ok["status"], ok["step"]) == ("completed", 300) and bad["status"] == "diverged"
    assert [attempts(i)[-1]["state"] for i in job_ids(tmp_path / "sweep")] == ["COMPLETED", "COMPLETED"]
    table = pd.read_csv(tmp_path / "sweep" / "analysis" / "summary.csv").set_index("train.lr")
    assert table.loc[3e-3, "finished"] == 1 and table.loc[3e37, "finished"] == 0
    assert f"{tmp_path / 'sweep' / '1'}: diverged at step" in out


@pytest.mark.parametrize("overrides, message", [
    (["hydra.launcher.partition=nosuch"],
     "hydra.launcher.partition='nosuch' is invalid: expected one of the cluster's partitions ("),
    (["hydra.launcher.cpus_per_task=4"], "hydra.launcher.cpus_per_task=4 is invalid: expected at most "),
    (["hydra.launcher.mem_gb=100000"], "hydra.launcher.mem_gb=100000 is invalid: expected at most "),
    (["hydra.launcher.gpus_per_node=1"], "hydra.launcher.gpus_per_node=1 is invalid: expected at most 0 "),
    ("no sbatch", "hydra/launcher=slurm needs SLURM's sbatch, which is not on PATH"),
    ("no default partition", "hydra.launcher.partition=None is invalid: expected one of the cluster's "
                             "partitions ("),
], ids=["unknown partition", "cpus", "memory", "gpus", "no sbatch", "no default partition"])
def test_refused_before_anything_is_submitted(tmp_path, overrides, message):
    """One line, exit 2, no sweep folder, no job in SLURM's accounting. The node has 2 cores,
    not the preset's 4 (the other tests ask for 1), less than 100000 GB and no GPU."""
    jobs_before = sh("sacct", "-n", "-X", "-o", "JobID", "-S", "now-1days")
    env, default = None, None
    if overrides == "no sbatch":
        env = {**os.environ, "PATH": "/nonexistent"}
    elif overrides == "no default partition":
        default = next(p.rstrip("*") for p in sh("sinfo", "-h", "-o", "%P").split() if p.endswith("*"))
        sh("scontrol", "update", f"partitionname={default}", "default=no")
    try:
        proc = sweep(tmp_path, "train.steps=10", *(overrides if isinstance(overrides, list) else []), env=env)
        rc, _, err = finish(proc, tmp_path, timeout=120)
    finally:
        if default:
            sh("scontrol", "update", f"partitionname={default}", "default=yes")
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith(f"rnn-train: error: {message}"), err
    assert not (tmp_path / "sweep").exists()
    assert sh("sacct", "-n", "-X", "-o", "JobID", "-S", "now-1days") == jobs_before


def test_a_sweep_of_a_users_parts_runs_on_the_cluster(tmp_path):
    """docs/extending.md's folder (a layer-norm LSTM, a parity task, a metric) on PYTHONPATH, its
    configs by hydra.searchpath: each
    array task imports the user's classes on the node; the runs record them and the analysis
    compares them with the built-in."""
    sys.path.insert(0, str(ROOT / "tests"))
    import doc_commands as dc
    project = tmp_path / "project"
    for path, text in dc.files(ROOT / "docs" / "extending.md"):
        (project / path).parent.mkdir(parents=True, exist_ok=True)
        (project / path).write_text(text, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(project)}
    proc = sweep(tmp_path, "model=ln_lstm,lstm", "dataset=parity", "seed=0", "+metrics=brier", "train.steps=40",
                 "train.eval_every=20", "hydra.callbacks.analyze.compare=model.name",
                 f"hydra.searchpath=[file://{project / 'my_configs'}]", env=env)
    rc, out, err = finish(proc, tmp_path)
    assert rc == 0, err[-3000:]
    assert [attempts(i)[-1]["state"] for i in job_ids(tmp_path / "sweep")] == ["COMPLETED"] * 2
    runs = [summary(tmp_path / "sweep" / str(k)) for k in range(2)]
    assert [(r["model"], r["status"], r["parts"]["model"]["target"]) for r in runs] == [
        ("ln_lstm", "completed", "my_parts.lnlstm.LayerNormLSTM"), ("lstm", "completed", "rnn_experiments.models.lstm.LSTM")]
    assert all("final_eval_brier" in r for r in runs)
    assert "final_eval_brier" in (tmp_path / "sweep" / "analysis" / "compare.csv").read_text()
