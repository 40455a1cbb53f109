"""`logger=mlflow`: a run as an MLflow run; a sweep as one parent run with a nested run per job.

    where            a single run: its own run; a job of a sweep: a run nested under the sweep's
                     parent run (tag mlflow.parentRunId), named by the overrides that tell the
                     sweep's jobs apart (`model=lstm,seed=0`; the job's number if none)
    params           the job's resolved config, flattened (model.hidden_size, train.lr, ...),
                     secrets redacted (rnn_experiments/run/redact.py)
    tags             the telling overrides (model: lstm, seed: 0), `overrides` (all of the job's),
                     `run_folder`, provenance (git.commit and mlflow.source.git.commit, git.dirty,
                     version.<package>, command) and, at the end, `status` (summary.json's)
    metrics          every metrics.csv row at its step; at the end summary.json's numbers
                     (final_*, best_*, best_checkpoint.*, wall_time_s, num_params), at the
                     run's last step
    run status       FINISHED (completed, pruned, stopped), FAILED (failed, diverged), KILLED
                     (interrupted); a resumed run is RUNNING again
    parent's         the sweep's analysis folder (plots, tables, compare.md) as artifacts under
    artifacts        analysis/, logged when the analysis callback ends the sweep; the parent
                     is then FINISHED

Tracking URI: `logger.mlflow.tracking_uri`, else $MLFLOW_TRACKING_URI, else a local store (no
server): sqlite:///<sweep folder>/mlflow/mlflow.db for a sweep, <run folder>/mlflow/mlflow.db for
a single run, artifacts beside it (mlflow/artifacts/); `mlflow ui --backend-store-uri
sqlite:///<that file>` opens it. The sweep's parent run is made once, by its first job, under a
file lock (<sweep folder>/mlflow/.lock: parallel jobs, SLURM), and named in
<sweep folder>/mlflow/parent.json; each run's MLflow run is named in <run folder>/mlflow/run.json,
so that a resumed run continues it (the steps the tracker already has are not sent again: an
exact resume computes the same values).

Never costs a result: each request waits at most `request_timeout_s` and is retried
`request_retries` times (MLflow's MLFLOW_HTTP_REQUEST_TIMEOUT / _MAX_RETRIES, set for the job);
a server that is down, refuses or drops gives one line and the run goes on without it
(run/metrics.py), metrics.csv intact. Needs the `mlflow` package (`pip install
"rnn-experiments[mlflow]"`); without it the command stops with one line saying so.
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import time
import warnings
from pathlib import Path

from rnn_experiments.errors import ConfigError
from rnn_experiments.extras import require
from rnn_experiments.loggers.records import (TrackerRunFile, analysis_files, experiment_name as _experiment_name,
                                             final_values, flat_config, job_overrides, provenance_tags,
                                             row_values, sweep_folder, sweep_name)
from rnn_experiments.loggers.tensorboard import job_hparams, job_name
from rnn_experiments.run.redact import redact_text

log = logging.getLogger(__name__)

STATUS = {"completed": "FINISHED", "pruned": "FINISHED", "stopped": "FINISHED",
          "interrupted": "KILLED", "failed": "FAILED", "diverged": "FAILED"}
MAX_PARAMS, MAX_PARAM_LENGTH = 100, 6000    # per log_batch request; a param's value (MLflow's limits)


def local_store(folder: Path) -> str:
    """The default tracking URI: a SQLite store in `folder`/mlflow/."""
    return f"sqlite:///{(Path(folder) / 'mlflow' / 'mlflow.db').resolve()}"


@contextlib.contextmanager
def _folder_lock(folder: Path):
    """An exclusive lock on `folder`/.lock while the block runs (other processes wait)."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _one_line(e: BaseException) -> str:
    """An MLflow error in one short line: the OS's reason where there is one (Connection refused)."""
    text = " ".join(str(e).split())
    reason = re.search(r"\[Errno -?\d+\] [^\"')]*|Read timed out[^\"')]*|RemoteDisconnected\([^)]*\)", text)
    text = reason.group(0).strip() if reason else text
    return f"{type(e).__name__}: {text[:200]}{'...' if len(text) > 200 else ''}"


@contextlib.contextmanager
def _quiet_retries():
    """urllib3's line per retry of a request left out: a failure is said once, by the caller."""
    pool = logging.getLogger("urllib3.connectionpool")
    level = pool.level
    pool.setLevel(logging.ERROR)
    try:
        yield
    finally:
        pool.setLevel(level)


class MLflowLogger:
    """A metrics sink (rnn_experiments/run/metrics.py) writing an MLflow run (the module doc)."""

    run_config = None   # the job's config, set by loggers_from_config: the run's params

    def __init__(self, tracking_uri: str | None = None, experiment: str | None = None,
                 request_timeout_s: float = 10, request_retries: int = 1):
        self._Client = require("mlflow.tracking", "logger=mlflow", "mlflow", "mlflow").MlflowClient
        if not (isinstance(request_timeout_s, (int, float)) and request_timeout_s > 0):
            raise ConfigError(f"logger.mlflow.request_timeout_s={request_timeout_s!r} is invalid: "
                              "expected seconds > 0")
        if not (isinstance(request_retries, int) and request_retries >= 0):
            raise ConfigError(f"logger.mlflow.request_retries={request_retries!r} is invalid: expected an integer >= 0")
        self.tracking_uri, self.experiment = tracking_uri, experiment
        self.request_timeout_s, self.request_retries = request_timeout_s, request_retries
        self.client = self.run_id = self.uri = None
        self.done_step = 0          # the last step the tracker had when this try began
        self.finished = False

    # ---- the sink ----------------------------------------------------------------------------

    def open(self, out_dir: Path, rows: list[dict]) -> None:
        out_dir = Path(out_dir)
        os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(int(max(1, round(self.request_timeout_s))))
        os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(self.request_retries)
        os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "1"
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"   # the run's line: below, once
        sweep = sweep_folder()
        home = sweep or out_dir
        self.uri = self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or local_store(home)
        record_file = TrackerRunFile(out_dir / "mlflow", "run.json")
        try:
            lock = _folder_lock(home / "mlflow") if sweep else contextlib.nullcontext()
            with lock, _quiet_retries():   # the first job of a sweep makes its store, experiment and parent run
                self.client = self._client()
                record = record_file.read()
                if record and record.get("tracking_uri") == self.shown_uri and self._resumable(record["id"]):
                    self.run_id = record["id"]
                    self.client.update_run(self.run_id, status="RUNNING")
                    history = self.client.get_metric_history(self.run_id, "loss")
                    self.done_step = max((m.step for m in history), default=0)
                    log.info("mlflow: continuing run %s (%s)", self.run_id, self.shown_uri)
                else:
                    self._new_run(out_dir, sweep, home, record_file)
                    log.info("mlflow: run %s in %s", self.run_id, self.shown_uri)
        except ConfigError:
            raise
        except Exception as e:   # the store or server: one line (metrics.py drops the sink)
            raise RuntimeError(f"MLflow at {self.shown_uri}: {_one_line(e)}") from None
        self._send([r for r in rows if int(r["step"]) > self.done_step])   # a checkpoint's rows it lacks

    def write(self, row: dict) -> None:
        if int(row["step"]) > self.done_step:
            self._send([row])

    def close(self) -> None:
        """Nothing to flush (each row was sent as written); the run ends in `finish`."""

    def finish(self, summary: dict) -> None:
        """summary.json's numbers as final metrics, its status as a tag and the run's status."""
        if self.run_id is None or self.finished:
            return
        from mlflow.entities import Metric, RunTag

        self.finished = True
        now, step = int(time.time() * 1000), int(summary.get("step") or 0)
        self._call(self.client.log_batch, self.run_id,
                   metrics=[Metric(k, v, now, step) for k, v in final_values(summary).items()],
                   tags=[RunTag("status", str(summary.get("status")))])
        self._call(self.client.set_terminated, self.run_id, STATUS.get(summary.get("status"), "FAILED"))

    # ---- a sweep's end (rnn_experiments/sweeps/analyze.py) ---------------------------------

    def sweep_ended(self, sweep_dir: Path, analysis_dir: Path | None) -> None:
        """The sweep's analysis files as its parent run's artifacts (analysis/...); the parent
        FINISHED. Nothing where no job of the sweep made a parent run."""
        record = TrackerRunFile(Path(sweep_dir) / "mlflow", "parent.json").read()
        if record is None:
            return
        self.uri = self.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or local_store(sweep_dir)
        if record.get("tracking_uri") != self.shown_uri:
            raise RuntimeError(f"the sweep's parent run is in {record.get('tracking_uri')}, not in {self.shown_uri}")
        os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(int(max(1, round(self.request_timeout_s))))
        os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(self.request_retries)
        self.client = self._client()
        for path in analysis_files(analysis_dir):
            where = path.parent.relative_to(analysis_dir).as_posix()
            self._call(self.client.log_artifact, record["id"], str(path),
                       "analysis" if where == "." else f"analysis/{where}")
        self._call(self.client.set_terminated, record["id"], "FINISHED")
        log.info("mlflow: the sweep's analysis is in the artifacts of run %s (%s)", record["id"], self.shown_uri)

    # ---- helpers -----------------------------------------------------------------------------

    @property
    def shown_uri(self) -> str:
        """The tracking URI as logged and recorded: a password in it redacted (run/redact.py)."""
        return redact_text(str(self.uri))

    def _client(self):
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)   # "Creating ... tables"
        with warnings.catch_warnings():        # SQLAlchemy's deprecations, from MLflow's store
            warnings.simplefilter("ignore", DeprecationWarning)
            client = self._Client(tracking_uri=self.uri)
        return client

    def _call(self, method, *args, **kwargs):
        """`method(*args, **kwargs)`; any failure as one line naming the tracking URI."""
        try:
            with _quiet_retries():
                return method(*args, **kwargs)
        except Exception as e:
            raise RuntimeError(f"MLflow at {self.shown_uri}: {_one_line(e)}") from None

    def _send(self, rows: list[dict]) -> None:
        from mlflow.entities import Metric

        if not rows:
            return
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, int(r["step"])) for r in rows for k, v in row_values(r).items()]
        for i in range(0, len(metrics), 1000):   # MLflow takes up to 1000 metrics a request
            self._call(self.client.log_batch, self.run_id, metrics=metrics[i:i + 1000])

    def _resumable(self, run_id: str) -> bool:
        try:
            run = self.client.get_run(run_id)
        except Exception as e:
            if "RESOURCE_DOES_NOT_EXIST" not in str(e) and "not found" not in str(e).lower():
                raise
            log.warning("mlflow: run %s of this folder is gone from %s; a new run is started", run_id, self.shown_uri)
            return False
        return run.info.lifecycle_stage == "active"

    def _experiment(self, home: Path) -> str:
        from mlflow.exceptions import MlflowException

        name = self.experiment or _experiment_name(self.run_config, "default")
        found = self.client.get_experiment_by_name(name)
        if found is None:
            local = self.uri == local_store(home)
            try:
                return self.client.create_experiment(
                    name, artifact_location=(home / "mlflow" / "artifacts").resolve().as_uri() if local else None)
            except MlflowException:   # made meanwhile by another sweep on the same server
                found = self.client.get_experiment_by_name(name)
                if found is None:
                    raise
        if found.lifecycle_stage != "active":
            raise RuntimeError(f"experiment {name!r} is deleted on {self.shown_uri}: restore it "
                               "(mlflow experiments restore) or set logger.mlflow.experiment")
        return found.experiment_id

    def _parent(self, sweep: Path, experiment_id: str) -> str:
        """The sweep's parent run (made by its first job; the caller holds the sweep's lock)."""
        record_file = TrackerRunFile(sweep / "mlflow", "parent.json")
        record = record_file.read()
        if record and record.get("tracking_uri") == self.shown_uri and self._resumable(record["id"]):
            if self.client.get_run(record["id"]).info.status != "RUNNING":   # the sweep run again
                self.client.update_run(record["id"], status="RUNNING")
            return record["id"]
        tags = {**provenance_tags(), "sweep_folder": str(sweep), "sweep": "true"}
        run = self.client.create_run(experiment_id, tags=tags, run_name=sweep_name(sweep))
        record_file.write({"id": run.info.run_id, "tracking_uri": self.shown_uri, "experiment_id": experiment_id})
        return run.info.run_id

    def _new_run(self, out_dir: Path, sweep: Path | None, home: Path, record_file: TrackerRunFile) -> None:
        from mlflow.entities import Param

        experiment_id = self._experiment(home)
        tags = {**provenance_tags(), "run_folder": str(out_dir.resolve()),
                "overrides": " ".join(job_overrides())[:5000]}
        tags.update({k: str(v) for k, v in job_hparams().items()})
        if "git.commit" in tags:
            tags["mlflow.source.git.commit"] = tags["git.commit"]
        if sweep is not None:
            tags["mlflow.parentRunId"] = self._parent(sweep, experiment_id)
        name = job_name() or (out_dir.name if sweep is not None else f"{out_dir.parent.name}/{out_dir.name}")
        run = self.client.create_run(experiment_id, tags=tags, run_name=name)
        self.run_id = run.info.run_id
        record_file.path.parent.mkdir(parents=True, exist_ok=True)
        record_file.write({"id": self.run_id, "tracking_uri": self.shown_uri, "experiment_id": experiment_id})
        if self.run_config is not None:
            text = lambda v: "null" if v is None else str(v)[:MAX_PARAM_LENGTH]
            params = [Param(k, text(v)) for k, v in flat_config(self.run_config).items()]
            for i in range(0, len(params), MAX_PARAMS):
                self.client.log_batch(self.run_id, params=params[i:i + MAX_PARAMS])
