"""hydra/launcher=slurm without a cluster: the checks before submission against `scontrol`
output, the launcher's wait for jobs that SLURM ended or requeued, SIGTERM in a SLURM job, and a
re-run sweep keeping its folder's multirun.yaml. On a real cluster: tests/cluster/."""
from __future__ import annotations

import pytest
import yaml
from omegaconf import OmegaConf

from conftest import compose_config
from rnn_experiments.errors import ConfigError
from hydra_plugins.rnn_experiments_slurm.launcher import wait_for
from rnn_experiments.sweeps.slurm import Cluster, Node, check_slurm_launcher, parse_cluster

# `scontrol show partition -o` and `scontrol show node -o` of a small cluster: partition cpu (the
# default, two 2-core nodes), partition gpu (no default), one GPU node; OS fields hold spaces
PARTITIONS = """\
PartitionName=cpu AllowGroups=ALL Default=YES QoS=N/A DefaultTime=NONE MaxNodes=UNLIMITED Nodes=n[1-2] State=UP TotalCPUs=4
PartitionName=gpu AllowGroups=ALL Default=NO QoS=N/A DefaultTime=NONE MaxNodes=UNLIMITED Nodes=g1 State=UP TotalCPUs=32
"""
NODES = """\
NodeName=n1 Arch=x86_64 CoresPerSocket=2  CPUAlloc=0 CPUEfctv=2 CPUTot=2 CPULoad=0.01 Gres=(null) NodeAddr=n1 OS=Linux 6.1.0 #1 SMP PREEMPT_DYNAMIC @0  RealMemory=24105 AllocMem=0 State=IDLE Partitions=cpu  BootTime=2026-01-01T00:00:00
NodeName=n2 Arch=x86_64 CoresPerSocket=2  CPUAlloc=0 CPUEfctv=2 CPUTot=2 CPULoad=0.01 Gres=(null) NodeAddr=n2 OS=Linux 6.1.0 #1 SMP  RealMemory=16000 AllocMem=0 State=IDLE Partitions=cpu  BootTime=2026-01-01T00:00:00
NodeName=g1 Arch=x86_64 CoresPerSocket=16  CPUAlloc=0 CPUEfctv=30 CPUTot=32 Gres=gpu:a100:4(S:0-1),shard:8 NodeAddr=g1 OS=Linux 6.1.0 #1 SMP  RealMemory=512000 State=IDLE Partitions=gpu,cpu_all
"""
SLURM_TARGET = "hydra_plugins.rnn_experiments_slurm.launcher.SlurmLauncher"


def launcher(**kw):
    return OmegaConf.create({"_target_": SLURM_TARGET, "partition": None, "cpus_per_task": 1,
                             "tasks_per_node": 1, "mem_gb": 1, "gpus_per_node": None, **kw})


def check(cfg, cluster=None, which=lambda name: f"/usr/bin/{name}"):
    check_slurm_launcher(cfg, cluster or parse_cluster(PARTITIONS, NODES), which=which)


def test_scontrol_output_gives_partitions_default_and_nodes():
    c = parse_cluster(PARTITIONS, NODES)
    assert (c.partitions, c.default) == (["cpu", "gpu"], "cpu")
    assert [(n.name, n.cpus, n.memory_mb, n.gpus, n.partitions) for n in c.nodes] == [
        ("n1", 2, 24105, 0, ["cpu"]), ("n2", 2, 16000, 0, ["cpu"]),
        ("g1", 30, 512000, 4, ["gpu", "cpu_all"])]   # CPUEfctv: the CPUs jobs may use


@pytest.mark.parametrize("kw", [{}, {"partition": "cpu", "cpus_per_task": 2, "mem_gb": 23},
                                {"partition": "gpu", "gpus_per_node": 4, "cpus_per_task": 15, "tasks_per_node": 2}])
def test_a_sweep_the_cluster_can_take_passes(kw):
    check(launcher(**kw))


@pytest.mark.parametrize("kw, message", [
    ({"partition": "gpus"}, "hydra.launcher.partition='gpus' is invalid: expected one of the cluster's "
                            "partitions (cpu, gpu)"),
    ({"cpus_per_task": 4}, "hydra.launcher.cpus_per_task=4 is invalid: expected at most 2 "
                           "(the largest node of partition cpu has 2 CPUs)"),
    ({"partition": "gpu", "cpus_per_task": 16, "tasks_per_node": 2},
     "hydra.launcher.cpus_per_task=16 x tasks_per_node=2 is invalid: expected at most 15 "
     "(the largest node of partition gpu has 30 CPUs)"),
    ({"mem_gb": 24}, "hydra.launcher.mem_gb=24 is invalid: expected at most 23 "
                     "(the largest node of partition cpu has 24105 MB of memory)"),
    ({"gpus_per_node": 1}, "hydra.launcher.gpus_per_node=1 is invalid: expected at most 0 "
                           "(the largest node of partition cpu has 0 GPUs)"),
    ({"partition": "gpu", "gpus_per_node": 8}, "hydra.launcher.gpus_per_node=8 is invalid: expected at most 4"),
])
def test_what_no_node_of_the_partition_has_is_refused_in_one_line(kw, message):
    with pytest.raises(ConfigError) as e:
        check(launcher(**kw))
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_several_partitions_and_resources_no_single_node_has():
    check(launcher(partition="cpu,gpu", gpus_per_node=2))      # sbatch --partition=cpu,gpu: one of them
    with pytest.raises(ConfigError, match=r"^hydra.launcher.partition='cpu,gpus' is invalid: expected one "
                                          r"of the cluster's partitions \(cpu, gpu\); gpus is not one$"):
        check(launcher(partition="cpu,gpus"))
    two_kinds = Cluster(partitions=["p"], default="p", nodes=[Node("big", 64, 1000, 0, ["p"]),
                                                              Node("gpu", 4, 1000, 1, ["p"])])
    with pytest.raises(ConfigError, match=r"^hydra.launcher.cpus_per_task=8, hydra.launcher.gpus_per_node=1: "
                                          r"no node of partition p has all of these together$"):
        check(launcher(cpus_per_task=8, gpus_per_node=1, mem_gb=0), two_kinds)


def test_no_partition_on_a_cluster_without_default_is_refused():
    c = parse_cluster(PARTITIONS.replace("Default=YES", "Default=NO"), NODES)
    with pytest.raises(ConfigError, match=r"^hydra.launcher.partition=None is invalid: expected one of the "
                                          r"cluster's partitions \(cpu, gpu\); the cluster has no default"):
        check(launcher(), c)
    check(launcher(partition="cpu"), c)


def test_no_sbatch_is_refused_and_other_launchers_are_not_checked():
    with pytest.raises(ConfigError, match="^hydra/launcher=slurm needs SLURM's sbatch, which is not on PATH"):
        check(launcher(), which=lambda name: None)
    empty = Cluster(partitions=[], default=None, nodes=[])
    check(OmegaConf.create({"_target_": "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"}),
          empty, which=lambda name: None)


def test_the_preset_is_checked_as_composed(monkeypatch):
    """conf/hydra/launcher/slurm.yaml (4 CPUs, 8 GB: a real cluster's node) on a 2-core node; the
    command line's preflight refuses it before Hydra starts."""
    import rnn_experiments.sweeps.slurm as slurm
    from rnn_experiments.cli.preflight import preflight
    cfg = compose_config(["hydra/launcher=slurm"], return_hydra_config=True).hydra.launcher
    assert cfg._target_ == SLURM_TARGET
    with pytest.raises(ConfigError, match="^hydra.launcher.cpus_per_task=4 is invalid: expected at most 2"):
        check(cfg)
    monkeypatch.setattr(slurm, "read_cluster", lambda: parse_cluster(PARTITIONS, NODES))
    monkeypatch.setattr(slurm.shutil, "which", lambda name: f"/usr/bin/{name}")
    with pytest.raises(ConfigError, match="^hydra.launcher.mem_gb=30 is invalid"):
        preflight(["-m", "hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=30"],
                  "config")
    preflight(["-m", "hydra/launcher=slurm", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2"], "config")


def test_the_launcher_is_a_hydra_plugin_also_where_hydras_scan_misses_it():
    """Hydra's scan of the hydra_plugins folders finds it in a checkout or a wheel, not in an
    editable install run outside the source tree: register_launchers() (the commands' entry
    points, before the config is composed) covers that."""
    from hydra.core.plugins import Plugins
    from hydra.plugins.launcher import Launcher
    from rnn_experiments.cli.plugins import register_launchers
    plugins = Plugins.instance()
    assert SLURM_TARGET in {f"{c.__module__}.{c.__name__}" for c in plugins.discover(Launcher)}
    cls = plugins.class_name_to_class.pop(SLURM_TARGET)
    plugins.plugin_type_to_subclass_list[Launcher].remove(cls)
    assert SLURM_TARGET not in {f"{c.__module__}.{c.__name__}" for c in plugins.discover(Launcher)}
    register_launchers()
    assert plugins.class_name_to_class[SLURM_TARGET] is cls and cls in plugins.discover(Launcher)


class FakeJob:
    """A submitit job: results() raises until `result` is set; sacct's states in turn."""

    def __init__(self, states, result=None):
        from submitit.core.utils import UncompletedJobError
        self.job_id, self.states, self.result, self.error = "7_1", list(states), result, UncompletedJobError
        self.watcher = self

    def get_state(self, job_id, mode):
        assert (job_id, mode) == ("7_1", "force")
        state = self.states.pop(0)
        if not self.states and self.result is not None:
            self.ready = True
        return state

    def results(self):
        if getattr(self, "ready", False):
            return [self.result]
        raise self.error("no result")


def test_a_job_slurm_ended_without_a_result_is_failed_logged_and_the_sweep_goes_on(caplog):
    """Not COMPLETED: status FAILED, its error naming the job and SLURM's state; reading its
    return_value (as Hydra's BasicSweeper does for every job) gives None instead of raising."""
    from hydra.core.utils import JobStatus
    from hydra_plugins.rnn_experiments_slurm.launcher import EndedWithoutResult
    ret = wait_for(FakeJob(["CANCELLED by 0"]), 1, ["seed=1"], poll_s=0)
    assert ret.status == JobStatus.FAILED and ret.overrides == ["seed=1"]
    assert isinstance(ret._return_value, EndedWithoutResult)
    assert str(ret._return_value) == "job #1 (SLURM job 7_1): ended CANCELLED without a result"
    assert ret.return_value is None
    assert "job #1 (SLURM job 7_1): ended CANCELLED without a result" in caplog.text


def test_hydras_basic_sweeper_runs_every_batch_past_a_job_without_a_result(tmp_path, monkeypatch):
    """Hydra's BasicSweeper, two batches of one job (max_batch_size=1): the first job ended
    without a result (FAILED), the second batch is still launched and the sweep returns both
    (a plain FAILED JobReturn holding an error would end the sweep at the first batch)."""
    from types import SimpleNamespace
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.utils import JobReturn, JobStatus
    from hydra_plugins.rnn_experiments_slurm.launcher import no_result
    launched = []

    class Launcher:
        def __init__(self, first):
            self.first = first

        def launch(self, batch, initial_job_idx):
            launched.append((initial_job_idx, [list(o) for o in batch]))
            if initial_job_idx == 0:
                return [self.first(batch[0])]
            return [JobReturn(overrides=list(batch[0]), status=JobStatus.COMPLETED, _return_value=0.5)]

    def sweep(first):
        launched.clear()
        sweeper = BasicSweeper(max_batch_size=1)
        sweeper.config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}})
        sweeper.hydra_context = SimpleNamespace(config_loader=None)
        sweeper.launcher = Launcher(first)
        monkeypatch.setattr(sweeper, "validate_batch_is_legal", lambda batch: None)
        return sweeper.sweep(["seed=0,1"])

    returns = sweep(lambda o: no_result(o, "job #0 (SLURM job 7_0): ended CANCELLED without a result"))
    assert launched == [(0, [["seed=0"]]), (1, [["seed=1"]])]
    assert [r[0].status for r in returns] == [JobStatus.FAILED, JobStatus.COMPLETED]
    assert returns[1][0].return_value == 0.5
    with pytest.raises(RuntimeError, match="boom"):   # what the launcher avoids: Hydra's FAILED raises
        sweep(lambda o: JobReturn(overrides=list(o), status=JobStatus.FAILED, _return_value=RuntimeError("boom")))
    assert launched == [(0, [["seed=0"]])]


def test_a_requeued_job_is_waited_for():
    job = FakeJob(["PENDING", "RUNNING"], result="the JobReturn")   # e.g. after NODE_FAIL: requeued
    assert wait_for(job, 1, ["seed=1"], poll_s=0) == "the JobReturn" and job.states == []


def test_a_node_failure_is_not_an_end_until_slurm_had_time_to_requeue_it(caplog):
    """sacct says NODE_FAIL for a while before slurmctld requeues the job (PENDING): the job is
    waited for through it (the slurm tier's node-failure test failed when a poll fell in that
    window); NODE_FAIL that lasts the grace period is an end, logged."""
    job = FakeJob(["NODE_FAIL", "NODE_FAIL", "PENDING", "RUNNING"], result="the JobReturn")
    assert wait_for(job, 1, ["seed=1"], poll_s=0, grace_s=60) == "the JobReturn" and job.states == []
    ret = wait_for(FakeJob(["NODE_FAIL"] * 3), 1, ["seed=1"], poll_s=0, grace_s=0)
    assert ret.status.name == "FAILED" and "ended NODE_FAIL without a result" in caplog.text


def test_the_launcher_runs_upstreams_launch_with_jobs_that_wait(monkeypatch):
    """SlurmLauncher.launch is hydra-submitit-launcher's own, run with an executor whose jobs wait
    as wait_for does: a job SLURM ended without a result gives a JobReturn without a value, the
    others their results; submitit.AutoExecutor is the plain one again afterwards."""
    import submitit
    from hydra_plugins.rnn_experiments_slurm.launcher import SlurmLauncher
    # upstream's class as this SlurmLauncher derives from it (Hydra's plugin scan may import it anew)
    BaseSubmititLauncher = next(c for c in SlurmLauncher.__mro__ if c.__name__ == "BaseSubmititLauncher")

    made = {}

    class Executor:   # what upstream's launch does with submitit.AutoExecutor: build, map_array
        def __init__(self, **kwargs):
            made["executor"] = self

        def map_array(self, fn, overrides, keys, nums, ids, states):
            made["nums"] = list(nums)
            return [FakeJob(["CANCELLED by 0"]), FakeJob(["PENDING", "RUNNING"], result="ret #1")]

    def upstream_launch(self, job_overrides, initial_job_idx):   # its last line, over what it built
        jobs = submitit.AutoExecutor(cluster="slurm").map_array(
            self, job_overrides, ["hydra.sweep.dir"] * 2, [0, 1], ["a", "b"], [None, None])
        return [j.results()[0] for j in jobs]

    monkeypatch.setattr(submitit, "AutoExecutor", Executor)
    monkeypatch.setattr(BaseSubmititLauncher, "launch", upstream_launch)
    import hydra_plugins.rnn_experiments_slurm.launcher as launcher
    monkeypatch.setattr(launcher, "wait_for", lambda job, num, o, poll_s=5.0: wait_for(job, num, o, poll_s=0))
    plain = object.__new__(SlurmLauncher)
    plain.pack_size = 1                               # the preset: a task a job
    returns = SlurmLauncher.launch(plain, [["seed=0"], ["seed=1"]], 0)
    assert returns[0].overrides == ["seed=0"] and returns[0].status.name == "FAILED" and returns[1] == "ret #1"
    assert made["nums"] == [0, 1] and isinstance(made["executor"], Executor)
    assert submitit.AutoExecutor is Executor          # put back after the launch


def test_sigterm_in_a_slurm_job_exits_without_a_result(monkeypatch):
    from rnn_experiments.sweeps.launch import requeue_if_preempted
    monkeypatch.delenv("SUBMITIT_EXECUTOR", raising=False)
    assert requeue_if_preempted("SIGTERM") is None          # outside SLURM: the job ends as usual
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    with pytest.raises(SystemExit) as e:
        requeue_if_preempted("SIGTERM")
    assert e.value.code == 128 + 15


def test_a_rerun_of_some_jobs_of_the_sweep_keeps_its_multirun_yaml():
    from rnn_experiments.sweeps.guard import _jobs_of
    earlier = yaml.safe_dump({"hydra": {
        "sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
                    "params": {"model": "lstm,peep_lstm"}},
        "overrides": {"task": ["seed=0,1", "train.steps=30"]}}}).encode()
    assert _jobs_of(earlier, [["train.steps=30", "model=peep_lstm", "seed=1"]])
    assert not _jobs_of(earlier, [["train.steps=30", "model=peep_lstm", "seed=2"]])   # another sweep
    assert not _jobs_of(earlier, [["model=lstm", "seed=1"]])
    assert not _jobs_of(None, [["seed=1"]]) and not _jobs_of(b"not: [yaml", [["seed=1"]])


def test_a_slurm_job_starts_even_when_its_sweeps_process_is_gone(monkeypatch, capsys):
    """SLURM runs a job whether or not the sweep's process lives (on a one-node cluster, too);
    a job of an orphaned joblib worker is not started."""
    import rnn_experiments.cli.job as job
    monkeypatch.setattr(job, "_where", lambda: (True, False))   # a sweep's job, in a worker
    monkeypatch.setattr(job, "sweep_gone", lambda: True)
    monkeypatch.delenv("SUBMITIT_EXECUTOR", raising=False)
    assert job.end_job("rnn-train", lambda: 0.75) is None
    assert "the sweep's process is gone" in capsys.readouterr().err
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "slurm")
    assert job.end_job("rnn-train", lambda: 0.75) == 0.75


def _fake_scontrol(tmp_path, monkeypatch, script: str | None):
    """PATH with only a fake `scontrol` (or none at all)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if script is not None:
        exe = bin_dir / "scontrol"
        exe.write_text("#!/bin/sh\n" + script)
        exe.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))


def test_the_cluster_is_read_from_scontrol(tmp_path, monkeypatch):
    from rnn_experiments.sweeps.slurm import read_cluster
    (tmp_path / "p").write_text(PARTITIONS)
    (tmp_path / "n").write_text(NODES)
    _fake_scontrol(tmp_path, monkeypatch,
                   f'case "$*" in *partition*) /bin/cat {tmp_path}/p;; *) /bin/cat {tmp_path}/n;; esac\n')
    c = read_cluster()
    assert (c.partitions, c.default, [n.name for n in c.nodes]) == (["cpu", "gpu"], "cpu", ["n1", "n2", "g1"])


@pytest.mark.parametrize("script, message", [
    (None, "`scontrol --all --oneliner show partition` failed ([Errno 2] No such file or directory"),
    ("echo 'slurm_load_partitions: Unable to contact slurm controller' >&2; exit 1\n",
     "`scontrol --all --oneliner show partition` failed: slurm_load_partitions: Unable to contact "
     "slurm controller (is the SLURM controller up?)"),
    ("exit 1\n", "failed: no output (is the SLURM controller up?)"),
])
def test_a_cluster_that_cannot_be_read_is_one_line(tmp_path, monkeypatch, script, message):
    from rnn_experiments.sweeps.slurm import read_cluster
    _fake_scontrol(tmp_path, monkeypatch, script)
    with pytest.raises(ConfigError) as e:
        read_cluster()
    assert str(e.value).startswith("hydra/launcher=slurm: ") and message in str(e.value)
    assert "\n" not in str(e.value)


def test_sigusr2_in_a_slurm_job_checkpoints_then_submitit_requeues_it(tmp_path, monkeypatch):
    """SLURM's time-limit signal, in this process without a cluster: submitit's own signal
    handlers as a SLURM job has them (JobEnvironment._handle_signals), SIGUSR2 sent after
    training step 6 of a run; the loop finishes the step, saves the checkpoint of step 6 and
    ends `interrupted`; then submitit's handler is called (launch.py: requeue_if_preempted),
    which pickles the launcher's checkpoint (the same job, resubmitted) and asks SLURM to
    requeue the job (`scontrol requeue`, here recorded) with the time-outs it has left."""
    import json
    import os
    import signal
    import submitit
    from submitit.core.utils import DelayedSubmission, JobPaths
    from conftest import TINY, run_command
    import rnn_experiments.training.loop as loop
    from hydra_plugins.rnn_experiments_slurm.launcher import SlurmLauncher

    for k, v in {"SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": "7", "SLURM_PROCID": "0"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("SUBMITIT_PREEMPT_SIGNAL", raising=False)
    env = submitit.JobEnvironment()
    requeued = []
    monkeypatch.setattr(type(env), "_requeue", lambda self, countdown: requeued.append(countdown))
    paths = JobPaths(tmp_path / "submitit", job_id="7")
    paths.folder.mkdir()
    delayed = DelayedSubmission(object.__new__(SlurmLauncher), [["seed=0"]], 0)
    delayed.set_timeout(120, 3)                 # the preset's timeout_min; max_num_timeout 3

    real_step = loop.make_step

    def make_step(*args, **kwargs):
        take, taken = real_step(*args, **kwargs), [0]

        def step_then_signal(x, y):
            out = take(x, y)
            taken[0] += 1
            if taken[0] == 6:
                os.kill(os.getpid(), signal.SIGUSR2)   # what SLURM sends signal_delay_s before the limit
            return out
        return step_then_signal
    monkeypatch.setattr(loop, "make_step", make_step)

    handlers = {s: signal.getsignal(s) for s in (signal.SIGUSR2, signal.SIGTERM, signal.SIGCONT)}
    env._handle_signals(paths, delayed)
    try:
        run_dir = tmp_path / "run"
        done = run_command("rnn-train", *TINY, "train.steps=10", f"hydra.run.dir={run_dir}")
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
    assert (run_dir / "summary.json").is_file(), done.err[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert (summary["status"], summary["signal"], summary["step"]) == ("interrupted", "SIGUSR2", 6), done.err
    import torch
    assert torch.load(run_dir / "checkpoint.pt", weights_only=False)["step"] == 6
    assert requeued == [3]                                 # no time-out spent: a preemption
    assert done.code == -1                                 # submitit's sys.exit(-1) after requeueing (255 as a process)
    resubmitted = DelayedSubmission.load(paths.submitted_pickle)
    assert isinstance(resubmitted.function, SlurmLauncher) and resubmitted.args == ([["seed=0"]], 0)



# packs (hydra.launcher.pack_size > 1): one SLURM task per pack, with a stand-in executor

class StandInExecutor:
    """submitit.AutoExecutor as upstream's launch uses it: what map_array was given (`calls`),
    and jobs that have their result at once, `ret of OVERRIDES` (a pack: a list, one a member),
    but those of the tasks in `cancelled`, which sacct says SLURM cancelled."""

    calls: list = []
    cancelled: tuple = ()

    def __init__(self, **kwargs):
        pass

    def update_parameters(self, **kwargs):
        pass

    def map_array(self, fn, *iterables):
        from hydra_plugins.rnn_experiments_slurm.launcher import PackTask
        StandInExecutor.calls.append((fn, [list(i) for i in iterables]))
        jobs = []
        for k, args in enumerate(zip(*iterables)):
            job = FakeJob(["CANCELLED by 0"])
            if k not in StandInExecutor.cancelled:
                job.ready = True
                job.result = ([f"ret of {' '.join(o)}" for o in args[0]] if isinstance(fn, PackTask)
                              else f"ret of {' '.join(args[0])}")
            jobs.append(job)
        return jobs


def packable(cfg):   # a task with a packed form (the contract of sweeps/pack.py); not run here
    raise AssertionError("the stand-in executor runs nothing")


packable.pack = lambda cfg: None


def slurm_sweep(tmp_path, monkeypatch, jobs, *settings, task=packable, cancelled=()):
    """SlurmLauncher.launch of `jobs` (override lists) with the stand-in executor: the launcher,
    its returns. A job's config is the sweep's with its overrides set, as Hydra's loader sets
    value overrides."""
    import copy
    import submitit
    from types import SimpleNamespace
    from hydra_plugins.rnn_experiments_slurm.launcher import SlurmLauncher
    sweep = compose_config(["hydra/launcher=slurm", *settings, f"hydra.sweep.dir={tmp_path}"], return_hydra_config=True)

    class Loader:
        def load_sweep_config(self, config, overrides):
            cfg = copy.deepcopy(sweep)
            for o in overrides:
                key, value = o.split("=", 1)
                OmegaConf.update(cfg, key, yaml.safe_load(value))
            return cfg

    StandInExecutor.calls, StandInExecutor.cancelled = [], cancelled
    monkeypatch.setattr(submitit, "AutoExecutor", StandInExecutor)
    monkeypatch.setattr("hydra.core.utils.configure_log", lambda *a, **k: None)   # pytest's log capture stays
    params = {k: v for k, v in OmegaConf.to_container(sweep.hydra.launcher).items() if k not in ("_target_", "name")}
    launcher = SlurmLauncher(**{**params, "submitit_folder": str(tmp_path / ".submitit" / "%j")})
    launcher.setup(hydra_context=SimpleNamespace(config_loader=Loader()), task_function=task, config=sweep)
    return launcher, launcher.launch(jobs, 0)


def seeds(*groups, n=3):
    """Hydra's job list: the groups' overrides (outer), seeds 0..n-1 (inner)."""
    return [[*g, f"seed={s}"] for g in groups for s in range(n)]


def test_a_packed_sweep_is_one_slurm_task_per_pack_and_one_return_per_job_in_job_order(tmp_path, monkeypatch, caplog):
    """2 learning rates x 3 seeds, pack_size=2: the jobs equal but for `seed`, in packs of at most
    2 (3 in a group: 2 + 1), one task of the array each (PackTask, with the launcher and the
    members' overrides and job numbers); the sweep gets one JobReturn per job, in job order."""
    import logging
    jobs = seeds(["train.lr=0.001"], ["train.lr=0.003"])
    with caplog.at_level(logging.INFO):
        launcher, returns = slurm_sweep(tmp_path, monkeypatch, jobs, "hydra.launcher.pack_size=2",
                                        "hydra.launcher.strategy=loop")
    from hydra_plugins.rnn_experiments_slurm.launcher import PackTask   # as the composition's plugin scan left it
    (fn, (overrides, nums, states)), = StandInExecutor.calls          # one array
    assert isinstance(fn, PackTask) and fn.launcher is launcher and launcher.strategy == "loop"
    assert nums == [[0, 1], [2], [3, 4], [5]]
    assert overrides == [[jobs[i] for i in pack] for pack in nums] and len(states) == 4
    assert returns == [f"ret of {' '.join(o)}" for o in jobs]
    assert "slurm launcher: 6 jobs in 4 packs (2, 1, 2, 1)" in caplog.text
    assert "slurm launcher: one SLURM task per pack: #0 #1; #2; #3 #4; #5" in caplog.text
    assert "2 of 6 jobs have no other job that differs from them only in `seed`" in caplog.text


def test_a_pack_that_slurm_ended_without_a_result_fails_each_member(tmp_path, monkeypatch, caplog):
    """The first pack's task cancelled: each of its members gets a NoResult of its own (FAILED,
    its overrides), said in one line; the other pack's members their results."""
    from hydra_plugins.rnn_experiments_slurm.launcher import EndedWithoutResult
    jobs = seeds([], n=4)
    _, returns = slurm_sweep(tmp_path, monkeypatch, jobs, "hydra.launcher.pack_size=2", cancelled=(0,))
    assert [r.status.name for r in returns[:2]] == ["FAILED", "FAILED"]
    assert [r.overrides for r in returns[:2]] == jobs[:2] and [r.return_value for r in returns[:2]] == [None, None]
    why = "jobs #0, #1 (a pack, SLURM job 7_1): ended CANCELLED without a result"
    assert all(isinstance(r._return_value, EndedWithoutResult) and str(r._return_value) == why for r in returns[:2])
    assert caplog.text.count(why) == 1
    assert returns[2:] == ["ret of seed=2", "ret of seed=3"]


@pytest.mark.parametrize("settings, task, said", [
    (["hydra.launcher.pack_size=1"], packable, None),                       # the preset: a task a job
    (["hydra.launcher.pack_size=4"], None, "the 3 jobs run one per SLURM task: the task 'plain' has no packed form"),
], ids=["pack_size=1", "no packed form"])
def test_jobs_that_cannot_be_packed_run_one_per_task_as_upstream_runs_them(tmp_path, monkeypatch, caplog,
                                                                            settings, task, said):
    """Upstream's map_array: the launcher itself (its __call__, Hydra's run_job) with each job's
    overrides, number and id; why the jobs are not packed, said once."""
    from hydra_plugins.rnn_experiments_slurm.launcher import SlurmLauncher

    def plain(cfg):
        raise AssertionError("not run")
    jobs = seeds([])
    launcher, returns = slurm_sweep(tmp_path, monkeypatch, jobs, *settings, task=task or plain)
    (fn, (overrides, keys, nums, ids, states)), = StandInExecutor.calls
    assert isinstance(fn, SlurmLauncher) and fn is launcher
    assert (overrides, nums, ids) == (jobs, [0, 1, 2], ["job_id_for_0", "job_id_for_1", "job_id_for_2"])
    assert returns == [f"ret of {' '.join(o)}" for o in jobs]
    assert (said in caplog.text) if said else "slurm launcher" not in caplog.text


def test_packs_are_split_to_fit_in_a_tasks_memory(tmp_path, monkeypatch, caplog):
    """A member needs 600 MiB (a stand-in for training.resources' estimate); a task has mem_gb=2:
    3 members a pack at most (3 x 600 MiB <= 2 GiB < 4 x 600 MiB), however large pack_size."""
    import rnn_experiments.sweeps.pack as pack
    monkeypatch.setattr(pack, "training_bytes", lambda cfg: 600 * 2**20)
    _, returns = slurm_sweep(tmp_path, monkeypatch, seeds([], n=5), "hydra.launcher.pack_size=8",
                             "hydra.launcher.mem_gb=2")
    (_, (_, nums, _)), = StandInExecutor.calls
    assert nums == [[0, 1, 2], [3, 4]] and len(returns) == 5
    assert "slurm launcher: packs split to fit in memory: 3 members a pack at most (each needs about 600 MiB)" in caplog.text


@pytest.mark.parametrize("override, message", [
    ("hydra.launcher.pack_size=0", "hydra.launcher.pack_size=0 is invalid: expected an integer >= 1"),
    ("hydra.launcher.strategy=fast", "hydra.launcher.strategy='fast' is invalid: expected auto, loop or stacked"),
])
def test_pack_settings_are_refused_in_one_line_before_anything_is_submitted(monkeypatch, override, message):
    """By the command line's preflight, before Hydra starts (no cluster read: refused first)."""
    import rnn_experiments.sweeps.slurm as slurm
    from rnn_experiments.cli.preflight import preflight
    monkeypatch.setattr(slurm, "read_cluster", lambda: pytest.fail("the cluster was read"))
    with pytest.raises(ConfigError) as e:
        preflight(["-m", "seed=0,1", "hydra/launcher=slurm", override], "config")
    assert str(e.value) == message


def test_sigusr2_in_a_packs_task_resubmits_the_same_pack(tmp_path, monkeypatch):
    """submitit's handler as a SLURM task has it, for a PackTask: SIGUSR2 (once the pack's
    members have stopped with their checkpoints, launch.py hands it back) pickles
    PackTask.checkpoint's submission, the same pack with the same members, and requeues the
    task with no time-out spent."""
    import os
    import signal
    import submitit
    from submitit.core.utils import DelayedSubmission, JobPaths
    from hydra_plugins.rnn_experiments_slurm.launcher import PackTask, SlurmLauncher

    for k, v in {"SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": "7", "SLURM_PROCID": "0"}.items():
        monkeypatch.setenv(k, v)
    env = submitit.JobEnvironment()
    requeued = []
    monkeypatch.setattr(type(env), "_requeue", lambda self, countdown: requeued.append(countdown))
    paths = JobPaths(tmp_path / "submitit", job_id="7")
    paths.folder.mkdir()
    launcher = object.__new__(SlurmLauncher)
    launcher.pack_size, launcher.strategy = 2, "loop"
    members = ([["seed=0"], ["seed=1"]], [0, 1], None)
    delayed = DelayedSubmission(PackTask(launcher), *members)
    delayed.set_timeout(120, 3)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGUSR2, signal.SIGTERM, signal.SIGCONT)}
    env._handle_signals(paths, delayed)
    try:
        with pytest.raises(SystemExit) as e:
            os.kill(os.getpid(), signal.SIGUSR2)      # submitit's handler: checkpoint, requeue, exit
    finally:
        for s, h in handlers.items():
            signal.signal(s, h)
    assert e.value.code == -1 and requeued == [3]
    again = DelayedSubmission.load(paths.submitted_pickle)
    assert isinstance(again.function, PackTask) and again.args == members
    assert (again.function.launcher.pack_size, again.function.launcher.strategy) == (2, "loop")
