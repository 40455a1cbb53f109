"""`logger=tensorboard`: metrics.csv's scalars as TensorBoard event files, one TensorBoard run per
training run, in the run folder:

    <run folder>/tensorboard/events.out.tfevents.*                      a single run
    <sweep folder>/<job>/tensorboard/<job's overrides>/events.out.tfevents.*   a job of a sweep

so `tensorboard --logdir multirun/DATE/TIME_NAME` opens every run of a sweep together, each named
by its job number and overrides (`0/tensorboard/model=lstm,seed=0`), and `--logdir outputs` or
`--logdir multirun` opens many. Tags are the metrics.csv columns (loss, accuracy, eval_accuracy,
lr, examples_per_s, elapsed_s) at the row's step. A resumed run first hides what TensorBoard has
past its checkpoint's last row (`purge_step`), so its curves match metrics.csv.

Needs the `tensorboard` package (`pip install "rnn-experiments[tensorboard]"`); without it the
command stops with one line saying so.
"""
from __future__ import annotations

import re
from pathlib import Path

from rnn_experiments.errors import ConfigError
from rnn_experiments.extras import missing


def _require_tensorboard():
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # torch raises ImportError without the tensorboard package
        raise ConfigError(missing("logger=tensorboard", "tensorboard", "tensorboard")) from None
    return SummaryWriter


# overrides that every job of a sweep shares, left out of the TensorBoard run's name
SHARED = ("logger", "experiment", "hparams_search")


def job_name() -> str:
    """For a job of a sweep, its overrides as a folder name (`model=lstm,seed=0`: what tells the
    sweep's runs apart in TensorBoard's run list); '' for a single run or outside Hydra."""
    try:
        from hydra.core.hydra_config import HydraConfig
        if not HydraConfig.initialized() or HydraConfig.get().mode.name != "MULTIRUN":
            return ""
        overrides = list(HydraConfig.get().overrides.task)
    except Exception:  # not a Hydra job: no name
        return ""
    kept = [o for o in overrides if o.lstrip("+~").split("=", 1)[0] not in SHARED]
    return re.sub(r"[/\\:\0]", "_", ",".join(kept))[:200]


class TensorBoardLogger:
    """A metrics sink (rnn_experiments/run/metrics.py) writing TensorBoard scalars."""

    def __init__(self, dir: str = "tensorboard", name: str | None = None):
        """`dir`: relative to the run folder (or absolute); `name`: the TensorBoard run's folder
        inside it (None: job_name(), a sweep job's overrides; '' for a single run)."""
        self._SummaryWriter = _require_tensorboard()
        self.dir, self.name = dir, name
        self.writer = None
        self.log_dir: Path | None = None

    def open(self, out_dir: Path, rows: list[dict]) -> None:
        name = job_name() if self.name is None else self.name
        self.log_dir = Path(out_dir) / self.dir / name if name else Path(out_dir) / self.dir
        # resumed (rows from the checkpoint) or started over: hide any later steps of a previous try
        purge_step = int(rows[-1]["step"]) + 1 if rows else 0
        self.writer = self._SummaryWriter(log_dir=str(self.log_dir), purge_step=purge_step)

    def write(self, row: dict) -> None:
        step = int(row["step"])
        for tag, value in row.items():
            if tag != "step" and value != "" and value is not None:
                self.writer.add_scalar(tag, float(value), step)
        self.writer.flush()   # like metrics.csv: on disk row by row

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
