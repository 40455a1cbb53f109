"""The training loop: sample a batch, take a step, log, evaluate, checkpoint — for any task.

`train(cfg, out_dir, hooks, sinks)` is a plain function (tests call it; `rnn_experiments.train`
wraps it in Hydra). It knows no task and no tracker: whatever a task adds (text samples) comes in
as `hooks`, called after every step as hook(step, model, data, out_dir); trackers (TensorBoard)
come in as `sinks`, which receive every metrics.csv row (metrics.py). It writes into `out_dir`:

    metrics.csv         a row every `train.log_every` steps (means over those steps), flushed per
                        row; held-out accuracy and loss (and bits per character for text) every
                        `train.eval_every` steps
    summary.json        status, final and best metrics, parameter counts, wall time (summary.py)
    checkpoint.pt       model, optimizer, step, RNG states, data-generator state, metrics so far
    checkpoint_best.pt  the same, at the evaluation with the lowest held-out loss so far

Loss and accuracy stay on the device and are read once per metrics row, so a GPU is never made
to wait for the host inside the window; a non-finite loss is caught at the next row or
checkpoint (with the step it happened at), before anything is saved from the diverged model.
"""
from __future__ import annotations

import logging
import math
import signal
import time
from pathlib import Path
from typing import Callable, Iterable

import torch

from rnn_experiments.config import validate
from rnn_experiments.models import count_params
from rnn_experiments.training import checkpoint
from rnn_experiments.training.lock import HEARTBEAT_S, RunLock
from rnn_experiments.training.metrics import MetricsWriter
from rnn_experiments.training.setup import make_scheduler, setup
from rnn_experiments.training.step import evaluate, make_step
from rnn_experiments.training.stop import Interrupted, stop_on_signals
from rnn_experiments.training.summary import final_metrics, new_summary, now, write_summary

log = logging.getLogger(__name__)

# A hook is called after every optimizer step: hook(step, model, data, out_dir).
Hook = Callable[[int, torch.nn.Module, object, Path], None]

RUN_FILES = ("summary.json", "metrics.csv", "checkpoint.pt")   # a folder with one of them holds a run


class Window:
    """Sums over the steps since the last metrics row, kept on the device, and the first step
    whose loss was not finite (0: none)."""

    def __init__(self, device, loss=0.0, correct=0.0, n=0, examples=0):
        self.loss = torch.tensor(loss, dtype=torch.float64, device=device)
        self.correct = torch.tensor(correct, dtype=torch.float64, device=device)
        self.first_bad = torch.zeros((), dtype=torch.long, device=device)
        self.n, self.examples = n, examples

    def add(self, step: int, loss: torch.Tensor, acc: torch.Tensor, batch_size: int) -> None:
        self.loss += loss
        self.correct += acc
        bad = ~torch.isfinite(loss) & (self.first_bad == 0)
        self.first_bad.masked_fill_(bad, step)
        self.n += 1
        self.examples += batch_size

    def read(self) -> tuple[dict, int]:
        """(the sums as numbers, in the checkpoint's format; first_bad), one synchronisation."""
        loss, correct, first_bad = torch.stack([self.loss, self.correct, self.first_bad.double()]).tolist()
        return {"loss": loss, "correct": correct, "n": self.n, "examples": self.examples}, int(first_bad)


def train(cfg, out_dir: str | Path, hooks: Iterable[Hook] = (), sinks: Iterable = (),
          on_accept: Callable[[], None] = lambda: None) -> dict:
    """Train the model `cfg` describes; return the summary (also written to summary.json).
    `sinks` get every metrics.csv row too (trackers: rnn_experiments/loggers/).

    Nothing is written into `out_dir` until the run is accepted: the folder's lock taken
    (lock.py), the config valid, the checkpoint (if resuming) made by this run. Then
    `on_accept()` is called (the entry point saves .hydra/ there) and the run starts. A refused
    run leaves a folder that holds a run as it was; in a fresh folder it records its error in
    summary.json (status failed), so that a sweep's analysis lists it.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = new_summary(cfg)
    fresh = not any((out_dir / f).exists() for f in RUN_FILES)
    accepted = []

    def accept() -> None:
        on_accept()
        accepted.append(True)

    with RunLock(out_dir):
        try:
            validate(cfg)
            return _train(cfg, out_dir, summary, list(hooks), list(sinks), accept)
        except BaseException as e:
            if summary["status"] == "running" and (accepted or fresh):
                if not accepted:
                    on_accept()
                summary.update(status="interrupted" if isinstance(e, KeyboardInterrupt) else "failed",
                               error=f"{type(e).__name__}: {e}")
                _write_summary_if_possible(out_dir, summary)
            raise


def _write_summary_if_possible(out_dir: Path, summary: dict) -> None:
    """The final summary; if even that cannot be written (disk full), the run stays `running`,
    which the analysis reports as crashed once the process is gone."""
    try:
        write_summary(out_dir, summary)
    except OSError as e:
        log.error("%s: the summary still says 'running'", e)


def _train(cfg, out_dir: Path, summary: dict, hooks: list[Hook], sinks: list,
           accept: Callable[[], None]) -> dict:
    t_cfg, steps, B = cfg.train, cfg.train.steps, cfg.train.batch_size
    device, data, model, optimizer = setup(cfg)
    scheduler = make_scheduler(optimizer, t_cfg)
    summary.update(num_params=count_params(model),
                   num_params_embedding=count_params(model.embedding) if hasattr(model, "embedding") else 0,
                   device=str(device), torch=torch.__version__, threads=torch.get_num_threads(),
                   deterministic=torch.are_deterministic_algorithms_enabled(),
                   heartbeat_s=HEARTBEAT_S)   # run.lock is touched this often while the run lives

    ckpt_path, best_path = out_dir / "checkpoint.pt", out_dir / "checkpoint_best.pt"
    step, rows, elapsed_before, window = 0, [], 0.0, Window(device)
    if t_cfg.resume and ckpt_path.exists():
        state = checkpoint.restore_run(ckpt_path, cfg, model, optimizer, scheduler, data)
        step, rows, elapsed_before = state["step"], state["metrics"], state["elapsed_s"]
        w = state["window"]
        window = Window(device, w["loss"], w["correct"], w["n"], w["examples"])
        log.info("resuming from %s at step %d", ckpt_path, step)
        summary["resumed_from_step"] = step

    accept()
    writer = MetricsWriter(out_dir / "metrics.csv", rows, sinks)
    write_summary(out_dir, summary)
    t0 = t_window = time.perf_counter()

    def elapsed() -> float:
        return elapsed_before + time.perf_counter() - t0

    def save(at_step: int, path=ckpt_path) -> bool:
        """Checkpoint unless the window saw a non-finite loss (then: status diverged)."""
        w, first_bad = window.read()
        if first_bad:
            return diverged(first_bad)
        checkpoint.save_run(path, step=at_step, model=model, optimizer=optimizer,
                            scheduler=scheduler, data=data, rows=writer.rows, window=w,
                            elapsed_s=elapsed(), cfg=cfg)
        return True

    def diverged(at_step: int) -> bool:
        summary.update(status="diverged", diverged_at_step=at_step)
        log.error("loss is not finite at step %d: stopping (status diverged; the last good "
                  "checkpoint is kept)", at_step)
        return False

    report_every = max(t_cfg.eval_every, steps // 20)
    take_step = make_step(model, optimizer, t_cfg.max_norm, device,
                          cuda_graphs=t_cfg.cuda_graphs and scheduler is None)  # graphs: fixed lr
    model.train()
    with stop_on_signals() as received:
        while step < steps:
            x, y = data.sample(B)
            loss, acc = take_step(x, y)
            if scheduler is not None:
                scheduler.step()
            step += 1
            window.add(step, loss, acc, len(x))

            is_eval = step % t_cfg.eval_every == 0 or step == steps
            if step % t_cfg.log_every == 0 or is_eval:
                (w, first_bad), now_s = window.read(), time.perf_counter()
                if first_bad:
                    diverged(first_bad)
                    break
                row = {"step": step, "loss": w["loss"] / w["n"], "accuracy": w["correct"] / w["n"],
                       "lr": float(optimizer.param_groups[0]["lr"]),
                       "examples_per_s": round(w["examples"] / max(now_s - t_window, 1e-9), 1),
                       "elapsed_s": round(elapsed(), 3)}
                if is_eval:
                    row["eval_accuracy"], row["eval_loss"] = evaluate(model, data.eval_x, data.eval_y)
                    if getattr(data, "per_character", False):
                        row["eval_bpc"] = row["eval_loss"] / math.log(2)
                    improved = row["eval_loss"] < min(_eval_losses(writer.rows), default=math.inf)
                writer.write(row)
                window, t_window = Window(device), now_s
                if is_eval and improved:
                    save(step, best_path)
                if step % report_every == 0 or step == steps:
                    eta = (now_s - t0) / max(step - summary.get("resumed_from_step", 0), 1) * (steps - step)
                    log.info("step %d/%d | loss %.4f | acc %.3f%s | %.0f ex/s | ETA %s", step, steps,
                             row["loss"], row["accuracy"],
                             f" | eval {row['eval_accuracy']:.3f}" if is_eval else "",
                             row["examples_per_s"], _fmt_time(eta))
            for hook in hooks:
                hook(step, model, data, out_dir)
            if t_cfg.checkpoint_every and step % t_cfg.checkpoint_every == 0 and step < steps:
                if not save(step):
                    break
            if received:
                if not save(step):
                    break
                writer.close()
                name = signal.Signals(received[0]).name
                summary.update(status="interrupted", step=step, signal=name, wall_time_s=round(elapsed(), 3))
                write_summary(out_dir, summary)
                log.warning("stopped by %s at step %d; checkpoint saved, resume by re-running "
                            "in this folder", name, step)
                raise Interrupted(name, step)

    if summary["status"] == "running" and save(step):
        summary["status"] = "completed"
    writer.close()
    summary.update(step=step, wall_time_s=round(elapsed(), 3), finished=now(), **final_metrics(writer.rows))
    write_summary(out_dir, summary)
    return summary


def _eval_losses(rows: list[dict]) -> list[float]:
    return [float(r["eval_loss"]) for r in rows if r.get("eval_loss", "") != ""]


def _fmt_time(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"
