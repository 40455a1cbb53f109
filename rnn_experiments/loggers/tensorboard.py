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

from rnn_experiments.extras import require
from rnn_experiments.run.provenance import swept


# overrides that every job of a sweep shares, left out of the TensorBoard run's name
SHARED = ("logger", "experiment", "hparams_search")


def telling_overrides() -> list[str]:
    """For a job of a sweep, its overrides of the keys that differ between the sweep's jobs (what
    tells its runs apart; not the settings every job shares); [] for a single run or outside Hydra."""
    try:
        from hydra.core.hydra_config import HydraConfig
        if not HydraConfig.initialized() or HydraConfig.get().mode.name != "MULTIRUN":
            return []
        overrides = list(HydraConfig.get().overrides.task)
    except Exception:  # not a Hydra job
        return []
    varying = swept()    # the keys that differ between the sweep's jobs (sweeps/guard.py)
    key = lambda o: o.lstrip("+~").split("=", 1)[0]
    return [o for o in overrides if key(o) not in SHARED and (varying is None or key(o) in varying)]


def job_name() -> str:
    """telling_overrides() as a folder name (`model=lstm,seed=0`: the run's name in
    TensorBoard's run list); '' for a single run or outside Hydra."""
    return re.sub(r"[/\\:\0]", "_", ",".join(telling_overrides()))[:200]


HPARAM_METRICS = ("accuracy", "loss", "eval_accuracy", "eval_loss")   # the dashboard's columns


def job_hparams() -> dict:
    """{key: value} of telling_overrides() (numbers and booleans as such); {} for a single run."""
    import yaml

    out = {}
    for o in telling_overrides():
        key, _, raw = o.lstrip("+~").partition("=")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        out[key] = value if isinstance(value, (bool, int, float, str)) else str(raw)
    return out


class TensorBoardLogger:
    """A metrics sink (rnn_experiments/run/metrics.py) writing TensorBoard scalars."""

    def __init__(self, dir: str = "tensorboard", name: str | None = None):
        """`dir`: relative to the run folder (or absolute); `name`: the TensorBoard run's folder
        inside it (None: job_name(), a sweep job's overrides; '' for a single run)."""
        self._SummaryWriter = require("torch.utils.tensorboard", "logger=tensorboard", "tensorboard",
                                      "tensorboard").SummaryWriter
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
            self._hparams()
            self.writer.close()
            self.writer = None

    def _hparams(self) -> None:
        """For a job of a sweep: its hparams (the values of the keys that differ between the
        sweep's jobs) and the metrics the HParams dashboard shows for them (the scalars already
        written: their last values), so that the dashboard compares the sweep's runs."""
        from torch.utils.tensorboard.summary import hparams

        values = job_hparams()
        if not values:
            return
        for summary in hparams(values, {tag: 0.0 for tag in HPARAM_METRICS}):
            self.writer.file_writer.add_summary(summary)
        self.writer.flush()
