"""The study: train exactly as the training loop does (`setup` and `train_step` of
rnn_experiments/training) and, at the steps listed in `gradients.steps` (0 = at initialisation),
measure the per-timestep gradient norms on a fixed batch (the first `gradients.batch_size`
examples of the held-out set, the same for every seed and step). Writes `gradients.csv` into the
run folder, a row per (step, t):

    step, t, distance (= T - t), grad_norm, input_grad_norm, loss, model, seed

Training runs for max(gradients.steps) steps; `train.steps` is not used. Its training steps take
the implementation and threads a training run of that many steps would take on this machine
(training/impl.py: choose_impl, recorded in summary.json's `impl`, `train.impl`/`train.threads`
force them); the norms are always measured through the autograd `recurrence` (they read every
h_t's gradient, which the fused path does not keep), whatever that choice. The config is the main
one (conf/config.yaml) plus a `gradients:` section (conf/gradients.yaml; schema and checks in
rnn_experiments/config.py).
"""
from __future__ import annotations

import csv
import logging
import signal
from pathlib import Path
from typing import Callable

from omegaconf import OmegaConf

from rnn_experiments.config import validate
from rnn_experiments.errors import ConfigError
from rnn_experiments.run.folder import is_run_folder
from rnn_experiments.run.lock import RunLock
from rnn_experiments.training.signals import Interrupted, stop_on_signals
from rnn_experiments.gradients.measure import grad_norms_per_step
from rnn_experiments.training.impl import choose_impl, describe
from rnn_experiments.training.setup import build_scheduler, setup
from rnn_experiments.training.step import train_step
from rnn_experiments.run.summary import new_summary, now, write_summary

log = logging.getLogger(__name__)

COLUMNS = ["step", "t", "distance", "grad_norm", "input_grad_norm", "loss", "model", "seed"]
NORMS_PATH = "the norms: the autograd recurrence (every h_t's gradient), whatever the training steps take"


def run_study(cfg, out_dir, on_accept: Callable[[], None] = lambda: None) -> list[dict]:
    """Measure, train, measure, ...; return the rows also written to out_dir/gradients.csv.

    The run-folder contract of `rnn-train` (training/loop.py): one process per folder (run.lock),
    and a folder that holds another run (another config) is refused before anything is written;
    the same study again starts it afresh. Then `on_accept()` (the entry point saves .hydra/).
    summary.json says running, then completed, interrupted (a stop signal: `Interrupted` is
    raised after the summary is written) or failed (+ error), as for a training run; once the
    model is built it also holds the device, torch's threads and the training step's `impl`
    (training/impl.py's record, with `norms`: how the norms are computed)."""
    validate(cfg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with RunLock(out_dir):
        refuse_another_run(cfg, out_dir)
        on_accept()
        summary = new_summary(cfg)
        write_summary(out_dir, summary)
        try:
            with stop_on_signals() as received:
                rows = _measure(cfg, out_dir, summary, received)
        except BaseException as e:
            summary.update(status="interrupted" if isinstance(e, KeyboardInterrupt) else "failed",
                           error=f"{type(e).__name__}: {e}", finished=now())
            if isinstance(e, Interrupted):
                summary.update(signal=e.signal, step=e.step)
            write_summary(out_dir, summary)
            raise
        summary.update(status="completed", finished=now())
        write_summary(out_dir, summary)
    return rows


def refuse_another_run(cfg, out_dir: Path) -> None:
    """ConfigError (one line) when `out_dir` holds a run made with another config (its
    .hydra/config.yaml), or one whose config cannot be read."""
    if not is_run_folder(out_dir):
        return
    try:
        old = OmegaConf.to_container(OmegaConf.load(out_dir / ".hydra" / "config.yaml"), resolve=True)
    except Exception:  # no or an unreadable .hydra/config.yaml: not a study of this command
        raise ConfigError(f"{out_dir}: holds a run without a readable .hydra/config.yaml; "
                          "use another folder (hydra.run.dir=...)") from None
    new = OmegaConf.to_container(cfg, resolve=True)
    new.pop("hydra", None)
    for key in sorted(set(_flat(old)) | set(_flat(new))):
        if _flat(old).get(key) != _flat(new).get(key):
            raise ConfigError(f"{out_dir}: holds another run (made with {key}={_flat(old).get(key)!r}, "
                              f"this one has {key}={_flat(new).get(key)!r}); use another folder "
                              "(hydra.run.dir=...)")


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def _measure(cfg, out_dir: Path, summary: dict, received: list) -> list[dict]:
    device, data, model, optimizer = setup(cfg)
    measure_at = sorted(set(cfg.gradients.steps))
    impl = choose_impl(cfg, device, data, model, steps=measure_at[-1])   # and torch's threads
    summary.update(device=str(device), threads=impl["threads"], impl={**impl, "norms": NORMS_PATH})
    write_summary(out_dir, summary)
    log.info("training step: %s; %s", describe(impl), NORMS_PATH)
    scheduler = build_scheduler(cfg.get("scheduler"), optimizer)
    x, y = data.eval_x[: cfg.gradients.batch_size], data.eval_y[: cfg.gradients.batch_size]
    T = x.shape[1]
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
            if received:
                raise Interrupted(signal.Signals(received[0]).name, step + 1)
    return rows
