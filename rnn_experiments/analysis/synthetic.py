"""Synthetic run folders with known numbers (for tests and the benchmark): the same files
`rnn_experiments.train` writes (.hydra/config.yaml, .hydra/overrides.yaml, summary.json,
metrics.csv), without training anything."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from rnn_experiments.run.metrics import COLUMNS

BASE_CONFIG = {
    "model": {"name": "lstm", "hidden_size": 256, "embedding_dim": 64, "num_layers": 1,
              "dropout": 0.0, "init": "kaiming_normal"},
    "dataset": {"name": "palindrome", "seq_length": 10, "eval_seed": 1234,
                "path": None},
    "train": {"steps": 3000, "batch_size": 256, "lr": 1.0e-4, "max_norm": 10.0, "log_every": 10,
              "eval_every": 100, "eval_size": 2048, "checkpoint_every": 500, "resume": True,
              "threads": 0},
    "seed": 0, "device": "cpu", "experiment_name": "synthetic",
}


def config(**overrides) -> dict:
    """BASE_CONFIG with dotted overrides: config(**{"model.name": "peep_lstm", "seed": 1})."""
    cfg = json.loads(json.dumps(BASE_CONFIG))
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = cfg
        for p in parents:
            node = node[p]
        node[leaf] = value
    return cfg


def metrics_frame(steps, accuracy, loss=None, eval_accuracy=None) -> pd.DataFrame:
    steps = np.asarray(steps)
    acc = np.asarray(accuracy, dtype=float)
    return pd.DataFrame({
        "step": steps, "loss": np.asarray(loss, dtype=float) if loss is not None else 1.0 - acc,
        "accuracy": acc,
        "eval_accuracy": np.asarray(eval_accuracy, dtype=float) if eval_accuracy is not None else acc,
        "eval_loss": np.nan, "eval_bpc": np.nan,  # not logged here (as in runs older than them)
        "lr": 1e-4, "examples_per_s": 1000.0, "elapsed_s": steps * 0.01,
    })[COLUMNS]


def write_run(run_dir, cfg: dict, metrics: pd.DataFrame | None, status: str | None = "completed",
              overrides: list[str] | None = None, wall_time_s: float | None = None) -> Path:
    """A run folder; metrics None: no metrics.csv; status None: no summary.json."""
    run_dir = Path(run_dir)
    (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
    (run_dir / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    if overrides is None:
        overrides = [f"model={cfg['model']['name']}", f"seed={cfg['seed']}",
                     f"dataset.seq_length={cfg['dataset']['seq_length']}"]
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    if metrics is not None:
        metrics.to_csv(run_dir / "metrics.csv", index=False)
    if status is not None:
        summary = {"status": status, "seed": cfg["seed"], "model": cfg["model"]["name"]}
        if wall_time_s is not None:
            summary["wall_time_s"] = wall_time_s
        (run_dir / "summary.json").write_text(json.dumps(summary))
    return run_dir


def fake_sweep(root, models=("lstm", "peep_lstm"), seq_lengths=(10, 20), seeds=range(3),
               steps: int = 3000, log_every: int = 10, seed: int = 0) -> Path:
    """A multirun-like folder root/0, root/1, ... with noisy learning curves."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    grid = [(m, L, s) for m in models for L in seq_lengths for s in seeds]
    t = np.arange(log_every, steps + 1, log_every)
    for num, (m, L, s) in enumerate(grid):
        jump = rng.uniform(0.1, 0.9) * steps
        acc = 0.5 + 0.5 / (1 + np.exp(-(t - jump) / (0.05 * steps))) + rng.normal(0, 0.01, len(t))
        write_run(root / str(num), config(**{"model.name": m, "dataset.seq_length": L, "seed": s}),
                  metrics_frame(t, acc.clip(0, 1)), wall_time_s=float(steps) * 0.01)
    return root
