"""What the trackers (MLflow, Weights & Biases) send about a run, the same for each: the job's
config flattened with secrets redacted, its overrides, its provenance, its final values from
summary.json; where the run stands in a sweep; and the small file in the run folder that names
the tracker's run, so that a resumed run continues it (`TrackerRunFile`).
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from rnn_experiments.run.folder import write_text
from rnn_experiments.run.provenance import provenance
from rnn_experiments.run.redact import redact_text, redacted_values

log = logging.getLogger(__name__)


def flat_config(cfg) -> dict:
    """The job's resolved config, flattened to {"model.hidden_size": 64, ...} (lists as their
    text), every secret setting REDACTED (run/redact.py)."""
    out = {}

    def walk(value, prefix):
        if isinstance(value, dict) and value:
            for k, v in value.items():
                walk(v, f"{prefix}{k}.")
        else:
            out[prefix[:-1]] = value

    walk(redacted_values(cfg), "")
    return out


def experiment_name(cfg, default: str) -> str:
    """The config's experiment_name (redacted if secret: it may come from ${oc.env:...}); `default`
    without a config or a name."""
    name = flat_config(cfg).get("experiment_name") if cfg is not None else None
    return str(name) if name else default


def job_overrides() -> list[str]:
    """All of this Hydra job's overrides (its task overrides, secrets redacted); [] outside Hydra."""
    try:
        from hydra.core.hydra_config import HydraConfig
        if not HydraConfig.initialized():
            return []
        return [redact_text(o) for o in HydraConfig.get().overrides.task]
    except Exception:  # not a Hydra job
        return []


def sweep_folder() -> Path | None:
    """The sweep folder of this job (hydra.sweep.dir), None for a single run or outside Hydra."""
    try:
        from hydra.core.hydra_config import HydraConfig
        if not HydraConfig.initialized() or HydraConfig.get().mode.name != "MULTIRUN":
            return None
        return Path(str(HydraConfig.get().sweep.dir)).resolve()
    except Exception:  # not a Hydra job
        return None


def sweep_name(sweep: Path) -> str:
    """A sweep's name in a tracker: its folder's last two parts (`2026-12-07/10-00-00-123456_demo`)."""
    return "/".join(Path(sweep).parts[-2:])


def provenance_tags() -> dict:
    """Provenance as flat tags: git.commit, git.dirty (from a checkout only), version.<package>, command."""
    p = provenance()
    tags = {f"version.{k}": str(v) for k, v in p["versions"].items()}
    if "git" in p:
        tags.update({"git.commit": p["git"]["commit"], "git.dirty": str(p["git"]["dirty"]).lower()})
    tags["command"] = p["command"]
    return tags


def final_values(summary: dict) -> dict:
    """summary.json's numbers as final metrics: final_*, best_*, wall_time_s, num_params, and
    best_checkpoint.* (its step and held-out values)."""
    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
    out = {k: float(v) for k, v in summary.items() if number(v)
           and (k.startswith(("final_", "best_")) or k in ("wall_time_s", "num_params"))}
    for k, v in (summary.get("best_checkpoint") or {}).items():
        if number(v):
            out[f"best_checkpoint.{k}"] = float(v)
    return out


def analysis_files(folder) -> list[Path]:
    """The files of a sweep's analysis folder that a tracker gets (plots, tables, compare.md, a
    search's report), not its hidden ones (.rnn-analyze.json: what the analysis keeps for itself)."""
    if folder is None or not Path(folder).is_dir():
        return []
    return sorted(p for p in Path(folder).rglob("*") if p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def row_values(row: dict) -> dict:
    """A metrics.csv row's filled columns as numbers (not the step)."""
    return {k: float(v) for k, v in row.items() if k != "step" and v != "" and v is not None}


class TrackerRunFile:
    """`<run folder>/<name>`: which tracker run this run folder's run is ({"id", ...}), written
    atomically once the tracker's run exists; a resumed run reads it to continue that run."""

    def __init__(self, out_dir, name: str):
        self.path = Path(out_dir) / name

    def read(self) -> dict | None:
        try:
            record = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as e:
            log.warning("%s: unreadable (%s); a new tracker run is started", self.path, e)
            return None
        return record if isinstance(record, dict) and record.get("id") else None

    def write(self, record: dict) -> None:
        write_text(self.path, json.dumps(record, indent=2) + "\n")
