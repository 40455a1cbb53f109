"""summary.json: what a run is (status, seed, model, ...) and what it reached, written atomically.

status: running | completed | failed (+ error) | interrupted (+ signal) | diverged (+ step).
"""
from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path

from rnn_experiments.sweep import sweep_id


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_summary(cfg) -> dict:
    """The summary of a run that starts now; host and pid let the analysis spot dead runs, the
    sweep's id (None for a single run) tells the sweep's end check which run it is."""
    return {"status": "running", "seed": cfg.seed, "model": cfg.model.name,
            "dataset": cfg.dataset.name, "experiment": cfg.experiment_name, "started": now(),
            "host": socket.gethostname(), "pid": os.getpid(), "sweep_id": sweep_id()}


def write_summary(out_dir: Path, summary: dict) -> None:
    """summary.json, written atomically; OSError naming the path if it cannot be written."""
    path = Path(out_dir) / "summary.json"
    tmp = path.with_name("summary.json.tmp")
    try:
        tmp.write_text(json.dumps(summary, indent=2, default=str) + "\n")
        os.replace(tmp, path)
    except OSError as e:  # disk full, ...: leave no partial file behind, keep the previous one
        tmp.unlink(missing_ok=True)
        raise OSError(f"{path}: cannot write ({e.strerror or e}); the previous summary.json is kept") from None


def final_metrics(rows: list[dict]) -> dict:
    """Last and best values of the metrics.csv rows."""
    if not rows:
        return {}
    evals = [float(r["eval_accuracy"]) for r in rows if r["eval_accuracy"] != ""]
    last = rows[-1]
    out = {"final_loss": float(last["loss"]), "final_accuracy": float(last["accuracy"]),
           "best_accuracy": max(float(r["accuracy"]) for r in rows)}
    if evals:
        out.update(final_eval_accuracy=evals[-1], best_eval_accuracy=max(evals))
    return out
