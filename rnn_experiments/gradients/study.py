"""The study: train exactly as the training loop does (`setup` and `train_step` of
rnn_experiments/training) and, at the steps listed in `gradients.steps` (0 = at initialisation),
measure the per-timestep gradient norms on a fixed batch (the first `gradients.batch_size`
examples of the held-out set, the same for every seed and step). Writes `gradients.csv` into the
run folder, a row per (step, t):

    step, t, distance (= T - t), grad_norm, input_grad_norm, loss, model, seed

Training runs for max(gradients.steps) steps; `train.steps` is not used. The config is the main
one (conf/config.yaml) plus a `gradients:` section (conf/gradients.yaml; schema and checks in
rnn_experiments/config.py).
"""
from __future__ import annotations

import csv
import logging
from pathlib import Path

from rnn_experiments.config import validate
from rnn_experiments.gradients.measure import grad_norms_per_step
from rnn_experiments.training.setup import make_scheduler, setup
from rnn_experiments.training.step import train_step
from rnn_experiments.training.summary import new_summary, now, write_summary

log = logging.getLogger(__name__)

COLUMNS = ["step", "t", "distance", "grad_norm", "input_grad_norm", "loss", "model", "seed"]


def run_study(cfg, out_dir) -> list[dict]:
    """Measure, train, measure, ...; return the rows also written to out_dir/gradients.csv.
    summary.json says running, then completed or failed (+ error), as for a training run."""
    validate(cfg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = new_summary(cfg)
    write_summary(out_dir, summary)
    try:
        rows = _measure(cfg, out_dir)
    except BaseException as e:
        summary.update(status="interrupted" if isinstance(e, KeyboardInterrupt) else "failed",
                       error=f"{type(e).__name__}: {e}", finished=now())
        write_summary(out_dir, summary)
        raise
    summary.update(status="completed", finished=now())
    write_summary(out_dir, summary)
    return rows


def _measure(cfg, out_dir: Path) -> list[dict]:
    device, data, model, optimizer = setup(cfg)
    scheduler = make_scheduler(optimizer, cfg.train)
    x, y = data.eval_x[: cfg.gradients.batch_size], data.eval_y[: cfg.gradients.batch_size]
    T = x.shape[1]
    measure_at = sorted(set(cfg.gradients.steps))
    rows = []
    with open(out_dir / "gradients.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for step in range(measure_at[-1] + 1):
            if step in measure_at:
                m = grad_norms_per_step(model, x, y)
                new = [{"step": step, "t": t + 1, "distance": T - (t + 1),
                        "grad_norm": m["grad_norm"][t].item(),
                        "input_grad_norm": m["input_grad_norm"][t].item(),
                        "loss": round(m["loss"], 6), "model": cfg.model.name, "seed": cfg.seed}
                       for t in range(T)]
                writer.writerows(new)
                f.flush()
                rows += new
                log.info("step %d | loss %.4f | ||dL/dh|| at T-t = 0: %.3g, %d: %.3g", step, m["loss"],
                         new[-1]["grad_norm"], T - 1, new[0]["grad_norm"])
            if step == measure_at[-1]:
                break
            xb, yb = data.sample(cfg.train.batch_size)
            train_step(model, optimizer, xb, yb, cfg.train.max_norm)
            if scheduler is not None:
                scheduler.step()
    return rows
