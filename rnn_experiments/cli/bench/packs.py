"""The `pack` section of rnn-bench: a seeds sweep's wall time, end to end (processes started,
analysis off), with Hydra's basic launcher (one job after the other, torch's default threads),
with joblib (2 jobs at once, 1 thread each), packed (hydra/launcher=packed: the seeds trained
together in one process) and packed with 2 packs at once (n_jobs=2, packs of at most 5, 1 thread
each); docs/speed_and_scale.md, "Packed seeds". Runs alternate between the launchers
(`interleaved`), medians."""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time

from rnn_experiments.cli.bench.timing import interleaved

LAUNCHERS = {
    "basic": [],
    "joblib": ["hydra/launcher=parallel", "hydra.launcher.n_jobs=2", "train.threads=1"],
    "packed": ["hydra/launcher=packed"],
    "packed x2": ["hydra/launcher=packed", "hydra.launcher.n_jobs=2", "hydra.launcher.pack_size=5"],
}
# (case, overrides, share of --pack-steps, goal of packed / basic, goal of packed / joblib): the
# goals of docs/speed_and_scale.md; at the course's size a step takes ~0.3 s on 2 cores, so it
# runs a fifth of the steps
CASES = [
    ("10 seeds B=32 H=32 T=41", ["model.hidden_size=32", "model.embedding_dim=16", "train.batch_size=32",
                                 "seed=range(10)"], 1.0, 1 / 3, 1 / 2),
    ("demo: 2 models x 2 seeds, B=128 H=64 T=41", ["+experiment=demo"], 1.0, 1 / 0.95, None),
    ("10 seeds B=128 H=64 T=41", ["+experiment=demo", "model=lstm", "seed=range(10)"], 1.0, 1 / 0.95, None),
    ("10 seeds B=256 H=256 T=41", ["seed=range(10)"], 0.2, 1 / 0.95, None),
]


def sweep_seconds(overrides: list[str], launcher: str, steps: int) -> float:
    """One sweep's wall time, start-up included, in a fresh folder."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "rnn_experiments.train", "-m", *overrides, *LAUNCHERS[launcher],
               f"train.steps={steps}", "train.eval_every=50", "train.checkpoint_every=0", "device=cpu",
               f"hydra.sweep.dir={tmp}/sweep", "~hydra.callbacks.analyze",
               "hydra/job_logging=none", "hydra/hydra_logging=none"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{launcher} sweep failed: {proc.stderr.strip()[-300:]}")
        return time.perf_counter() - t0


def bench_pack(steps: int, repeats: int, cases=None) -> list[dict]:
    rows = []
    for case, overrides, share, goal_basic, goal_joblib in CASES if cases is None else cases:
        n = max(1, round(steps * share))
        med = interleaved({name: (lambda name=name: sweep_seconds(overrides, name, n)) for name in LAUNCHERS},
                          repeats, warmup=0, key=f"pack {case}")
        label = f"{case}, {n} steps"
        rows.append({"section": "pack", "case": label, "what": "basic launcher (1 job at a time)",
                     "median_ms": med["basic"] * 1e3, "ratio": 1.0, "target": ""})
        rows.append({"section": "pack", "case": label, "what": "joblib 2 jobs x 1 thread",
                     "median_ms": med["joblib"] * 1e3, "ratio": med["joblib"] / med["basic"], "target": "reported"})
        rows.append({"section": "pack", "case": label, "what": "packed / basic",
                     "median_ms": med["packed"] * 1e3, "ratio": med["packed"] / med["basic"],
                     "target": f"<= {goal_basic:.2f}"})
        rows.append({"section": "pack", "case": label, "what": "packed, 2 packs x 1 thread / basic",
                     "median_ms": med["packed x2"] * 1e3, "ratio": med["packed x2"] / med["basic"],
                     "target": "reported"})
        if goal_joblib is not None:
            rows.append({"section": "pack", "case": label, "what": "packed / joblib", "median_ms": None,
                         "ratio": med["packed"] / med["joblib"], "target": f"<= {goal_joblib:.2f}"})
    return rows
