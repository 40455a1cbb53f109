"""summary.json: what a run is (status, seed, model, ...) and what it reached, written atomically.

format_version: FORMAT_VERSION (folder.py, with the rule for reading older summaries).
status: running | completed | failed (+ error) | interrupted (+ signal) | diverged (+ step) |
pruned or stopped (+ stop_reason: a metrics sink ended the run early, run/status.py).
NORMAL_ENDS are the statuses of a run that ended as asked: not a failure for a sweep's exit
status, not re-run by the analysis.
Provenance (git commit and dirty flag, package versions, command line): rnn_experiments/run/provenance.py.
"""
from __future__ import annotations

import errno
import json
import os
import socket
from datetime import datetime, timezone
from pathlib import Path

from rnn_experiments.parts import target_of
from rnn_experiments.run.provenance import parts_provenance, provenance, sweep_id
from rnn_experiments.run.folder import FORMAT_VERSION, write_text
from rnn_experiments.run.redact import REDACTED, secret_paths
from rnn_experiments.run.status import STOP_STATUSES

NORMAL_ENDS = ("completed",) + STOP_STATUSES


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_summary(cfg) -> dict:
    """The summary of a run that starts now; host and pid let the analysis spot dead runs, the
    sweep's id (None for a single run) tells the sweep's end check which run it is."""
    secret = secret_paths(cfg)     # names that came from ${oc.env:...}: not in clear (run/redact.py)
    clear = lambda path, value: REDACTED if path in secret else value
    return {"format_version": FORMAT_VERSION, "status": "running", "seed": cfg.seed,
            "model": clear("model.name", cfg.model.name), "dataset": clear("dataset.name", cfg.dataset.name),
            "experiment": clear("experiment_name", cfg.experiment_name), "started": now(),
            "host": socket.gethostname(), "pid": os.getpid(), "sweep_id": sweep_id(), **provenance(),
            "parts": parts_provenance(cfg), **declared_metrics(cfg)}


def declared_metrics(cfg) -> dict:
    """{"metrics": {"eval_NAME": {"higher_is_better": bool}}} for a run with `metrics.NAME` parts
    (their class's declaration, which the analysis ranks runs by); {} for a run without."""
    nodes = cfg.get("metrics") or {}
    return {"metrics": {f"eval_{name}": {"higher_is_better": getattr(target_of(node, f"metrics.{name}"),
                                                                     "higher_is_better", None)}
                        for name, node in nodes.items()}} if nodes else {}


def write_summary(out_dir: Path, summary: dict) -> None:
    """summary.json, written atomically; OSError naming the path if it cannot be written.

    On a full disk there is no room for the new file beside the old one, so the old one is
    overwritten in place, where its blocks are (a summary grows by a few hundred bytes from
    `running` to its end, within the file system's block): the run's end is recorded rather than
    left saying `running`."""
    path = Path(out_dir) / "summary.json"
    text = json.dumps(summary, indent=2, default=str) + "\n"
    try:
        write_text(path, text)
    except OSError as e:
        if e.errno != errno.ENOSPC or not path.is_file() or not _overwrite(path, text.encode()):
            raise


def _overwrite(path: Path, data: bytes) -> bool:
    """Write `data` over `path` in place (no new file); False if even that fails."""
    try:
        with open(path, "r+b") as f:
            f.write(data)
            f.truncate()
            f.flush()
            os.fsync(f.fileno())
        return True
    except OSError:
        return False


def final_metrics(rows: list[dict], declared: dict | None = None) -> dict:
    """Last and best values of the metrics.csv rows; `best_checkpoint`: the evaluation with the
    lowest held-out loss (the step of checkpoint_best.pt) and its metrics. `declared`: the run's
    own metrics (summary.json "metrics"): final_ and best_ of each column too."""
    if not rows:
        return {}
    out = {}
    for col, how in (declared or {}).items():
        values = [float(r[col]) for r in rows if r.get(col, "") != ""]
        if values:
            out[f"final_{col}"] = values[-1]
            out[f"best_{col}"] = (max if how.get("higher_is_better") else min)(values)
    return {**_built_in_final(rows), **out}


def _built_in_final(rows: list[dict]) -> dict:
    last = rows[-1]
    out = {"final_loss": float(last["loss"]), "final_accuracy": float(last["accuracy"]),
           "best_accuracy": max(float(r["accuracy"]) for r in rows)}
    evals = [r for r in rows if r.get("eval_accuracy", "") != ""]
    if evals:
        out.update(final_eval_accuracy=float(evals[-1]["eval_accuracy"]),
                   best_eval_accuracy=max(float(r["eval_accuracy"]) for r in evals))
    with_loss = [r for r in evals if r.get("eval_loss", "") != ""]  # (older runs did not log it)
    if with_loss:
        best = min(with_loss, key=lambda r: float(r["eval_loss"]))
        out["final_eval_loss"] = float(with_loss[-1]["eval_loss"])
        out["best_checkpoint"] = {"file": "checkpoint_best.pt", "step": int(best["step"]),
                                  **{k: float(best[k]) for k in ("eval_loss", "eval_accuracy", "eval_bpc")
                                     if best.get(k, "") != ""}}
        if with_loss[-1].get("eval_bpc", "") != "":
            out["final_eval_bpc"] = float(with_loss[-1]["eval_bpc"])
    return out
