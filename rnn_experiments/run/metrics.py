"""metrics.csv: one row per logged step, appended and flushed as training goes.

A killed process loses at most the row it was writing; `read_metrics` ignores a partial last line,
so the file is readable by pandas at any moment.

metrics.csv is the record. Sinks mirror its rows elsewhere (a tracker such as TensorBoard,
rnn_experiments/loggers/); the entry point builds them from the config (`logger=...`) and the loop
hands them to the writer. A sink has `write(row)` (a row exactly as written to the file: every
column, "" where empty), and optionally `open(out_dir, rows)`, called first with the rows the file
starts with (a resumed run's, from its checkpoint), `close()`, and `finish(summary)`, called
once summary.json holds the run's end (its final values and status; also for a run that failed).
A sink that raises is logged in one line and dropped; the run and metrics.csv go on. A sink may instead raise `StopRun` (status.py) from
`write` to ask the run to end early: the writer keeps the first such request in `stop` (the
other sinks still get the row) and the loop ends the run after the step.
"""
from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Iterable

from rnn_experiments.run.folder import atomic_write
from rnn_experiments.run.status import StopRun

log = logging.getLogger(__name__)

COLUMNS = ["step", "loss", "accuracy", "eval_accuracy", "eval_loss", "eval_bpc", "lr",
           "examples_per_s", "elapsed_s"]
TIMING_COLUMNS = ["examples_per_s", "elapsed_s"]


class MetricsWriter:
    def __init__(self, path: Path, rows: list[dict] | None = None, sinks: Iterable = (), extra: Iterable[str] = ()):
        """Start `path` afresh holding `rows` (those of a checkpoint, when resuming); mirror the
        rows written from now on to `sinks`. `extra`: the columns of the run's own metrics
        (eval_NAME), after the built-in ones."""
        self.path = Path(path)
        self.columns = COLUMNS[:-len(TIMING_COLUMNS)] + list(extra) + TIMING_COLUMNS
        self.rows = list(rows or [])
        self.sinks = list(sinks)
        self.stop: StopRun | None = None   # the first request of a sink to end the run early
        with atomic_write(self.path) as f:
            w = csv.DictWriter(f, fieldnames=self.columns)
            w.writeheader()
            w.writerows(self.rows)
        self._file = open(self.path, "a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=self.columns)
        self._to_sinks("open", self.path.parent, list(self.rows))

    def write(self, row: dict) -> None:
        row = {k: row.get(k, "") for k in self.columns}
        self.rows.append(row)
        try:
            self._writer.writerow(row)
            self._file.flush()
        except OSError as e:  # disk full, ...: one line naming the file
            raise OSError(f"{self.path}: cannot write ({e.strerror or e})") from None
        self._to_sinks("write", row)

    def close(self) -> None:
        """Close the file and the sinks (once; again does nothing)."""
        if self._file.closed:
            return
        try:
            self._file.close()
        except OSError as e:   # the row a full disk refused is still buffered: lost, said once
            log.error("%s: the last row could not be written (%s)", self.path, e.strerror or e)
        self._to_sinks("close")

    def finish(self, summary: dict) -> None:
        """Hand the final summary (as written to summary.json) to the sinks that take it."""
        self._to_sinks("finish", summary)

    def _to_sinks(self, method: str, *args) -> None:
        for sink in list(self.sinks):
            call = getattr(sink, method, None)
            if call is None:
                continue
            try:
                call(*args)
            except StopRun as e:
                self.stop = self.stop or e
            except Exception as e:  # a tracker's failure never stops the run: metrics.csv is the record
                log.error("%s.%s failed (%s: %s); going on without it (metrics.csv is complete)",
                          type(sink).__name__, method, type(e).__name__, e)
                self.sinks.remove(sink)


def record_of(path) -> dict:
    """What metrics.csv holds, as the run records it in summary.json when it ends
    ("metrics_csv"): {"rows", "last_step", "sha256"}; the analysis checks the file against it."""
    import hashlib

    data = Path(path).read_bytes()
    lines = [line for line in data.decode("utf-8").splitlines()[1:] if line]
    return {"rows": len(lines), "last_step": int(lines[-1].split(",")[0]) if lines else None,
            "sha256": hashlib.sha256(data).hexdigest()}


def read_metrics(path):
    """metrics.csv as a DataFrame; a partial last line (process killed mid-write) is dropped.

    Raises ValueError naming the path if the file is not a metrics table.
    """
    return parse_metrics(Path(path).read_text(), path)


def parse_metrics(text: str, path):
    """The text of metrics.csv (read by the caller) as `read_metrics` returns it; `path` names
    the file in errors."""
    import pandas as pd

    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    try:
        df = pd.read_csv(io.StringIO(text))
    except Exception as e:  # pandas raises several types for malformed files
        raise ValueError(f"{path}: not a readable metrics table ({type(e).__name__}: {e})") from None
    if "step" not in df.columns:
        raise ValueError(f"{path}: not a metrics table (no 'step' column)")
    if len(df) and (not isinstance(df.index, pd.RangeIndex) or df.step.dtype.kind not in "iu"):
        raise ValueError(f"{path}: not a metrics table (rows do not match the header)")
    return df
