"""`logger=wandb`: a run as a Weights & Biases run; a sweep's runs as one group.

    project     `logger.wandb.project`, else the config's experiment_name (demo, ...)
    group       a job of a sweep: the sweep (its folder's last two parts, 2026-12-07/10-00-00-..._demo);
                a single run: none
    job_type    `train` (the sweep's analysis: `analysis`)
    name        the overrides that tell the sweep's jobs apart (model=lstm,seed=0); a single run:
                its folder's name
    tags        those overrides (each at most 64 characters, W&B's limit)
    config      the job's resolved config (nested: model.hidden_size, ...), secrets redacted
                (rnn_experiments/run/redact.py), with `overrides` (all of the job's) and
                `provenance` (git.commit, git.dirty, version.<package>, command)
    history     every metrics.csv row at its step (W&B's step is metrics.csv's)
    summary     summary.json's numbers (final_*, best_*, best_checkpoint.*, wall_time_s,
                num_params) and `status`; the run's exit code 0 for a normal end, 1 otherwise
    analysis    when the sweep's analysis callback ends the sweep: one more run in the group,
                job_type `analysis`, with the plots as images (analysis/<plot name>) and every
                file of the analysis folder (tables, compare.md) among its files

The W&B run's files are in <run folder>/wandb/ (`dir`: elsewhere); its id in
<run folder>/wandb/run.json, so that a resumed run continues it (resume="allow"; the steps W&B
already has are not sent again). Offline (`mode: offline` or WANDB_MODE=offline) needs no
account; `wandb sync <run folder>/wandb/offline-run-*` uploads later. W&B's own client never
stops a run: it queues and retries uploads in its own process, and a failure here gives one
line (run/metrics.py), metrics.csv intact. Needs the `wandb` package (`pip install
"rnn-experiments[wandb]"`); without it the command stops with one line saying so.
"""
from __future__ import annotations

import logging
import uuid
from pathlib import Path

from rnn_experiments.errors import ConfigError
from rnn_experiments.extras import require
from rnn_experiments.loggers.records import (TrackerRunFile, analysis_files, experiment_name as _experiment_name,
                                             final_values, job_overrides, provenance_tags, row_values,
                                             sweep_folder, sweep_name)
from rnn_experiments.loggers.tensorboard import job_name, telling_overrides
from rnn_experiments.run.redact import redacted_values
from rnn_experiments.run.summary import NORMAL_ENDS

log = logging.getLogger(__name__)

MODES = ("online", "offline", "disabled")
MAX_TAG = 64    # W&B's limit on a tag's length


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text[:300]}{'...' if len(text) > 300 else ''}"


class WandbLogger:
    """A metrics sink (rnn_experiments/run/metrics.py) writing a W&B run (the module doc)."""

    run_config = None   # the job's config, set by loggers_from_config: the run's config

    def __init__(self, project: str | None = None, entity: str | None = None, mode: str | None = None,
                 dir: str | None = None, init_timeout_s: float = 60):
        self._wandb = require("wandb", "logger=wandb", "wandb", "wandb")
        if mode is not None and mode not in MODES:
            raise ConfigError(f"logger.wandb.mode={mode!r} is invalid: expected one of {', '.join(MODES)} "
                              "(null: $WANDB_MODE, else online)")
        if not (isinstance(init_timeout_s, (int, float)) and init_timeout_s > 0):
            raise ConfigError(f"logger.wandb.init_timeout_s={init_timeout_s!r} is invalid: expected seconds > 0")
        self.project, self.entity, self.mode, self.dir = project, entity, mode, dir
        self.init_timeout_s = init_timeout_s
        self.run = None
        self.first_step = 0      # a resumed run: the steps W&B has already are not sent again
        self.finished = False

    def _project(self) -> str:
        return self.project or _experiment_name(self.run_config, "rnn-experiments")

    def _init(self, where: Path, **kwargs):
        where.mkdir(parents=True, exist_ok=True)
        settings = self._wandb.Settings(init_timeout=self.init_timeout_s, quiet=True)
        return self._wandb.init(project=self._project(), entity=self.entity, mode=self.mode, dir=str(where),
                                reinit="create_new", settings=settings, **kwargs)

    # ---- the sink ----------------------------------------------------------------------------

    def open(self, out_dir: Path, rows: list[dict]) -> None:
        out_dir = Path(out_dir)
        sweep = sweep_folder()
        record_file = TrackerRunFile(out_dir / "wandb", "run.json")
        record = record_file.read()
        try:
            run_id = record["id"] if record else uuid.uuid4().hex[:12]   # W&B's ids: [a-z0-9]
            if record is None:   # named before W&B starts: a run killed meanwhile resumes the same id
                record_file.path.parent.mkdir(parents=True, exist_ok=True)
                record_file.write({"id": run_id, "project": self._project(), "entity": self.entity})
            config = redacted_values(self.run_config) if self.run_config is not None else {}
            config.update(overrides=job_overrides(), provenance=provenance_tags())
            self.run = self._init(Path(self.dir) if self.dir else out_dir, id=run_id, resume="allow",
                                  group=sweep_name(sweep) if sweep is not None else None, job_type="train",
                                  name=job_name() or out_dir.name, tags=[t[:MAX_TAG] for t in telling_overrides()],
                                  config=config, allow_val_change=True)
            self.first_step = int(getattr(self.run, "step", 0) or 0) if record else 0
        except ConfigError:
            raise
        except Exception as e:
            raise RuntimeError(f"W&B: {_one_line(e)}") from None
        for row in rows:            # a checkpoint's rows W&B lacks
            self.write(row)

    def write(self, row: dict) -> None:
        step = int(row["step"])
        if step >= self.first_step:
            self.run.log(row_values(row), step=step)

    def close(self) -> None:
        """Nothing to flush here (W&B's own process holds what was logged); the run ends in `finish`."""

    def finish(self, summary: dict) -> None:
        """summary.json's numbers and status into the run's summary; the run finished (exit code
        0 for a normal end)."""
        if self.run is None or self.finished:
            return
        self.finished = True
        self.run.summary.update({**final_values(summary), "status": summary.get("status")})
        self.run.finish(exit_code=0 if summary.get("status") in NORMAL_ENDS else 1)

    # ---- a sweep's end (rnn_experiments/sweeps/analyze.py) ---------------------------------

    def sweep_ended(self, sweep_dir: Path, analysis_dir: Path | None) -> None:
        """One run in the sweep's group (job_type analysis): the plots as images, every file of
        the analysis folder saved with it."""
        files = analysis_files(analysis_dir)
        if not files:
            return
        sweep_dir, analysis_dir = Path(sweep_dir), Path(analysis_dir)
        run = self._init(Path(self.dir) if self.dir else sweep_dir, group=sweep_name(sweep_dir.resolve()),
                         job_type="analysis", name="analysis")
        images = {f"analysis/{p.relative_to(analysis_dir).with_suffix('').as_posix()}": self._wandb.Image(str(p))
                  for p in files if p.suffix == ".png"}
        if images:
            run.log(images)
        for folder in sorted({p.parent for p in files}):   # one call (and one line of W&B's) per folder
            run.save(str(folder / "*"), base_path=str(analysis_dir.parent), policy="now")
        run.finish()
        log.info("wandb: the sweep's analysis is in run %s (group %s)", run.id, sweep_name(sweep_dir.resolve()))
