"""`logger=mlflow` against a real tracking server started here (`mlflow server`, a SQLite backend,
a port bound free, stopped by its PID): a sweep as a parent run with one nested run per job, the
params, tags and metric histories read back with MlflowClient and compared with metrics.csv and
summary.json value by value, the analysis as the parent's artifacts; a resumed run continuing
its MLflow run; a server killed mid-sweep costing one line per job and no result; parallel jobs
(joblib) with the default local store, each its own run under one parent. The default tier
checks only what needs no MLflow import (the missing extra, what is sent)."""
from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import ROOT, TINY, has_rows, run_command, summary_of, wait_for
from rnn_experiments.errors import ConfigError
from rnn_experiments.loggers.records import final_values
from rnn_experiments.run.metrics import TIMING_COLUMNS, read_metrics

SWEEP_TINY = [*TINY, "dataset.seq_length=3", "train.threads=1", "hydra.callbacks.analyze.formats=[png]"]


# ---- default tier: no MLflow import ---------------------------------------------------------

def test_a_missing_extra_is_refused_before_anything_is_written(make_cfg, monkeypatch, tmp_path):
    from rnn_experiments.extras import check_command_line
    from rnn_experiments.loggers import loggers_from_config
    monkeypatch.setitem(sys.modules, "mlflow", None)   # as if not installed
    with pytest.raises(ConfigError) as e:
        check_command_line(["-m", "+experiment=demo", "logger=mlflow"])
    assert str(e.value) == ('logger=mlflow needs mlflow, which is not installed: '
                            'pip install "rnn-experiments[mlflow]" (or pip install mlflow)')
    with pytest.raises(ConfigError, match=r"^logger=mlflow needs mlflow"):
        loggers_from_config(make_cfg("logger=mlflow"))
    done = run_command("rnn-train", "logger=mlflow", f"hydra.run.dir={tmp_path / 'run'}")
    assert done.code == 2 and done.err.strip().splitlines() == [f"rnn-train: error: {e.value}"]
    assert not (tmp_path / "run").exists()


def test_the_final_metrics_are_summary_jsons_numbers():
    summary = {"status": "completed", "step": 20, "seed": 0, "final_loss": 0.5, "best_accuracy": 0.75,
               "final_eval_accuracy": 0.625, "wall_time_s": 1.5, "num_params": 1234, "pid": 99,
               "deterministic": True, "best_checkpoint": {"file": "checkpoint_best.pt", "step": 10, "eval_loss": 0.4}}
    assert final_values(summary) == {"final_loss": 0.5, "best_accuracy": 0.75, "final_eval_accuracy": 0.625,
                                     "wall_time_s": 1.5, "num_params": 1234.0, "best_checkpoint.step": 10.0,
                                     "best_checkpoint.eval_loss": 0.4}


# ---- slow tier: a real server --------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def mlflow_server(folder: Path):
    """A tracking server on a free port, its store in `folder`; yields (uri, process); stopped by
    its PID (its process group: the server's workers too) at the end."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = open(folder / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                             "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
                             "--artifacts-destination", str(folder / "artifacts"), "--workers", "1"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, (folder / "server.log").read_text()[-2000:]
            assert time.time() < deadline, "mlflow server did not start"
            time.sleep(0.25)
        yield uri, proc
    finally:
        stop(proc)
        log.close()


def stop(proc, sig=signal.SIGTERM) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    pytest.importorskip("mlflow", reason="needs the [mlflow] extra (in [dev]; .ci/run installs it)")
    with mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as (uri, _):
        yield uri


def client(uri):
    import warnings

    from mlflow.tracking import MlflowClient
    with warnings.catch_warnings():     # SQLAlchemy's deprecations, from MLflow's SQLite store
        warnings.simplefilter("ignore", DeprecationWarning)
        return MlflowClient(tracking_uri=uri)


def history(c, run_id, key):
    return sorted((m.step, m.value) for m in c.get_metric_history(run_id, key))


def assert_run_matches_its_folder(c, run_id, folder: Path, timing=True):
    """The MLflow run has every metrics.csv column's values at their steps (each once), the
    config as params, summary.json's numbers as final metrics, its status. `timing`: the timing
    columns too (not for a resumed run: a step it redid keeps the first try's timing in MLflow)."""
    df = read_metrics(folder / "metrics.csv")
    run = c.get_run(run_id)
    for col in df.columns:
        if col == "step" or not df[col].notna().any() or (not timing and col in TIMING_COLUMNS):
            continue
        expected = [(int(s), pytest.approx(float(v), rel=1e-6)) for s, v in zip(df.step, df[col]) if v == v]
        assert history(c, run_id, col) == expected, col
    summary = summary_of(folder)
    assert {k: run.data.metrics[k] for k in final_values(summary)} == pytest.approx(final_values(summary))
    config = OmegaConf.load(folder / ".hydra" / "config.yaml")
    for key in ("model.name", "model.hidden_size", "train.steps", "train.lr", "seed", "dataset.seq_length"):
        assert run.data.params[key] == str(OmegaConf.select(config, key)), key
    assert run.data.tags["status"] == summary["status"] and run.info.status == "FINISHED"
    assert json.loads((folder / "mlflow" / "run.json").read_text())["id"] == run_id
    return run


@pytest.mark.slow
@pytest.mark.xdist_group("mlflow_server")
def test_a_sweep_is_a_parent_run_with_a_nested_run_per_job(server, tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", "+experiment=demo", "logger=mlflow", f"logger.mlflow.tracking_uri={server}", *SWEEP_TINY,
            f"hydra.sweep.dir={sweep}"]
    done = run_command("rnn-train", *args)
    assert done.code == 0, done.err[-3000:]
    c = client(server)
    parent_id = json.loads((sweep / "mlflow" / "parent.json").read_text())["id"]
    parent = c.get_run(parent_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["sweep_folder"] == str(sweep.resolve())
    assert c.get_experiment(parent.info.experiment_id).name == "demo"
    children = c.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")
    assert sorted(r.info.run_name for r in children) == sorted(
        f"model={m},seed={s}" for m in ("lstm", "peep_lstm") for s in (0, 1))   # the overrides that differ
    for job in range(4):
        folder = sweep / str(job)
        run_id = json.loads((folder / "mlflow" / "run.json").read_text())["id"]
        run = assert_run_matches_its_folder(c, run_id, folder)
        summary = summary_of(folder)
        assert (run.data.tags["model"], run.data.tags["seed"]) == (summary["model"], str(summary["seed"]))
        assert run.data.tags["git.commit"] == summary["git"]["commit"] == run.data.tags["mlflow.source.git.commit"]
        assert run.data.tags["version.torch"] == summary["versions"]["torch"]
    artifacts = {a.path for a in c.list_artifacts(parent_id, "analysis")}
    assert {"analysis/compare.md", "analysis/summary.md", "analysis/accuracy.png"} <= artifacts
    assert "analysis/.rnn-analyze.json" not in artifacts
    # the same command again: each job finds its run completed and rewrites nothing, so no
    # second MLflow run either (the sweep itself reports its jobs as not run by it: exit 1)
    run_command("rnn-train", *args)
    assert len(c.search_runs([parent.info.experiment_id])) == 5


class StopAt:
    """A sink that interrupts the run (as Ctrl-C would) when it gets the row of `step`."""

    def __init__(self, step):
        self.step = step

    def write(self, row):
        if int(row["step"]) == self.step:
            raise KeyboardInterrupt


@pytest.mark.slow
@pytest.mark.xdist_group("mlflow_server")
def test_a_resumed_run_continues_the_same_mlflow_run(server, make_cfg, tmp_path):
    """Interrupted at step 15 (its checkpoint at step 10), resumed: the same MLflow run, RUNNING
    then FINISHED again, each step once, equal to metrics.csv."""
    from rnn_experiments.loggers import loggers_from_config
    from rnn_experiments.training.loop import train
    cfg = make_cfg("logger=mlflow", f"logger.mlflow.tracking_uri={server}", "train.checkpoint_every=10",
                   "experiment_name=resume")
    (sink,) = loggers_from_config(cfg)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, tmp_path, sinks=[sink, StopAt(15)])
    first = sink.run_id
    c = client(server)
    assert c.get_run(first).info.status == "KILLED"
    assert [s for s, _ in history(c, first, "loss")] == [5, 10, 15]
    (again,) = loggers_from_config(cfg)
    summary = train(cfg, tmp_path, sinks=[again])
    assert summary["resumed_from_step"] == 10 and again.run_id == first
    assert len(c.search_runs([c.get_run(first).info.experiment_id])) == 1
    (tmp_path / ".hydra").mkdir()
    OmegaConf.save(cfg, tmp_path / ".hydra" / "config.yaml")
    assert_run_matches_its_folder(c, first, tmp_path, timing=False)   # steps 5..20, 15 once


@pytest.mark.slow
def test_a_server_killed_mid_sweep_costs_one_line_per_job_and_no_result(tmp_path):
    pytest.importorskip("mlflow", reason="needs the [mlflow] extra (in [dev]; .ci/run installs it)")
    sweep = tmp_path / "sweep"
    with mlflow_server(tmp_path / "server") as (uri, server_proc):
        cmd = [sys.executable, "-m", "rnn_experiments.train", "-m", "seed=0,1", "logger=mlflow",
               f"logger.mlflow.tracking_uri={uri}", *[o for o in TINY if not o.startswith(("train.steps", "train.log_every"))],
               "train.steps=400", "train.log_every=2",
               "dataset.seq_length=3", "train.threads=1", "hydra.callbacks.analyze.formats=[]",
               f"hydra.sweep.dir={sweep}"]
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wait_for(lambda: has_rows(sweep / "0", 20), proc)
        stop(server_proc, signal.SIGKILL)       # the server goes away mid-run
        started = time.time()
        out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    assert time.time() - started < 120          # no minutes of retries
    for job in "01":
        summary = summary_of(sweep / job)
        assert summary["status"] == "completed" and summary["metrics_csv"]["last_step"] == 400
        assert read_metrics(sweep / job / "metrics.csv").step.tolist() == list(range(2, 401, 2))  # intact
    failed = [line for line in out.splitlines() if "MLflowLogger." in line and "failed" in line]
    assert len(failed) == 2, out[-3000:]     # job 0 mid-run (write), job 1 at its start (open): one line each
    assert "MLflowLogger.write failed" in failed[0] and "MLflowLogger.open failed" in failed[1]
    assert all("going on without it (metrics.csv is complete)" in line for line in failed)
    assert "Traceback" not in out and "Retrying" not in out


def local_store_sweep(sweep, *overrides):
    """`rnn-train -m ... logger=mlflow` with no tracking URI, in a subprocess: the sweep's local
    store's client and its parent run's id."""
    cmd = [sys.executable, "-m", "rnn_experiments.train", "-m", "logger=mlflow", *SWEEP_TINY, *overrides,
           f"hydra.sweep.dir={sweep}"]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    c = client(f"sqlite:///{(sweep / 'mlflow' / 'mlflow.db').resolve()}")
    return c, json.loads((sweep / "mlflow" / "parent.json").read_text())["id"]


@pytest.mark.slow
def test_parallel_jobs_share_one_parent_each_its_own_run_in_the_local_store(tmp_path):
    """hydra/launcher=parallel (2 worker processes) with no tracking URI: the local store in the
    sweep folder, made once under its lock; one parent, a run per job, none interleaved."""
    pytest.importorskip("mlflow", reason="needs the [mlflow] extra (in [dev]; .ci/run installs it)")
    sweep = tmp_path / "sweep"
    c, parent_id = local_store_sweep(sweep, "seed=0,1", "model=lstm,gru", "hydra/launcher=parallel",
                                     "hydra.launcher.n_jobs=2")
    runs = c.search_runs([c.get_run(parent_id).info.experiment_id])
    assert len(runs) == 5 and [r.info.run_id for r in runs if r.data.tags.get("sweep") == "true"] == [parent_id]
    ids = set()
    for job in range(4):
        run_id = json.loads((sweep / str(job) / "mlflow" / "run.json").read_text())["id"]
        run = assert_run_matches_its_folder(c, run_id, sweep / str(job))
        assert run.data.tags["mlflow.parentRunId"] == parent_id
        ids.add(run_id)
    assert len(ids) == 4
    assert {a.path for a in c.list_artifacts(parent_id, "analysis")} >= {"analysis/loss.png", "analysis/summary.md"}
    assert (sweep / "mlflow" / "artifacts").is_dir()     # the artifacts beside the store, in the sweep folder


@pytest.mark.slow
def test_bad_settings_and_a_refusing_server_are_one_line(make_cfg, tmp_path):
    pytest.importorskip("mlflow", reason="needs the [mlflow] extra (in [dev]; .ci/run installs it)")
    from rnn_experiments.loggers import loggers_from_config
    from rnn_experiments.loggers.mlflow import MLflowLogger
    with pytest.raises(ConfigError, match=r"^logger.mlflow.request_timeout_s=0 is invalid: expected seconds > 0$"):
        loggers_from_config(make_cfg("logger=mlflow", "logger.mlflow.request_timeout_s=0"))
    sink = MLflowLogger(tracking_uri=f"http://127.0.0.1:{free_port()}")   # nothing listens there
    started = time.time()
    with pytest.raises(RuntimeError) as e:
        sink.open(tmp_path, [])
    assert time.time() - started < 30 and "\n" not in str(e.value)
    assert str(e.value).startswith(f"MLflow at {sink.uri}: ") and "Connection refused" in str(e.value)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["loop", "stacked"])
def test_a_packs_members_are_one_mlflow_run_each(tmp_path, strategy):
    """hydra/launcher=packed: one parent for the sweep, one nested run per member (never one run
    for the pack), each holding what its own folder's metrics.csv and summary.json hold."""
    pytest.importorskip("mlflow", reason="needs the [mlflow] extra (in [dev]; .ci/run installs it)")
    sweep = tmp_path / "sweep"
    c, parent_id = local_store_sweep(sweep, "seed=0,1,2", "model=lstm", "hydra/launcher=packed",
                                     f"hydra.launcher.strategy={strategy}")
    ids = set()
    for job in range(3):
        assert json.loads((sweep / str(job) / "summary.json").read_text())["pack"]["size"] == 3
        run_id = json.loads((sweep / str(job) / "mlflow" / "run.json").read_text())["id"]
        run = assert_run_matches_its_folder(c, run_id, sweep / str(job))
        assert run.data.tags["mlflow.parentRunId"] == parent_id
        ids.add(run_id)
    assert len(ids) == 3
    assert len(c.search_runs([c.get_run(parent_id).info.experiment_id])) == 4   # the parent and 3 members
