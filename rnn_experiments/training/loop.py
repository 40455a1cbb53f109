"""The training loop: forward, NLL, backward, clip, Adam step — plus logging, checkpoints, resume.

`train(cfg, out_dir)` is a plain function (tests call it directly; `rnn_experiments.train` wraps
it in Hydra). It writes into `out_dir`:

    metrics.csv     a row every `train.log_every` steps (means over those steps), flushed per row
    summary.json    status (running | completed | failed | interrupted | diverged), final and
                    best metrics, parameter counts, wall time
    checkpoint.pt   model, optimizer, step, RNG states, data-generator state, metrics so far
"""
from __future__ import annotations

import json
import logging
import math
import os
import random
import signal
import socket
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from rnn_experiments.config import validate
from rnn_experiments.data import build_dataset
from rnn_experiments.generation.hooks import hooks_from_config
from rnn_experiments.models import build_model, count_params
from rnn_experiments.training import checkpoint
from rnn_experiments.training.metrics import MetricsWriter

log = logging.getLogger(__name__)

# A hook is called after every optimizer step: hook(step, model, data, out_dir).
Hook = Callable[[int, torch.nn.Module, object, Path], None]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(name: str) -> torch.device:
    if name not in ("auto", "cpu", "cuda"):
        from rnn_experiments.config import ConfigError
        raise ConfigError(f"device={name!r} is invalid: expected auto, cpu or cuda")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        from rnn_experiments.config import ConfigError
        raise ConfigError("device='cuda' is invalid: no CUDA device is available (use auto or cpu)")
    return torch.device(name)


def write_summary(out_dir: Path, summary: dict) -> None:
    """summary.json, written atomically."""
    path = Path(out_dir) / "summary.json"
    tmp = path.with_name("summary.json.tmp")
    tmp.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def nll_and_accuracy(log_probs: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean NLL and accuracy; classes on the last axis, any leading shape ((B,) or (B, T))."""
    C = log_probs.shape[-1]
    loss = F.nll_loss(log_probs.reshape(-1, C), y.reshape(-1))
    acc = (log_probs.argmax(-1) == y).float().mean()
    return loss, acc


@torch.no_grad()
def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, chunk: int = 1024) -> float:
    was_training = model.training
    model.eval()
    correct = sum((model(x[i:i + chunk]).argmax(-1) == y[i:i + chunk]).sum().item()
                  for i in range(0, len(x), chunk))
    model.train(was_training)
    return correct / y.numel()


STOP_SIGNALS_EXTRA = (signal.SIGUSR2,) if hasattr(signal, "SIGUSR2") else ()


@contextmanager
def stop_on_signals():
    """SIGTERM/SIGINT (and SIGUSR2, the time-limit/preemption signal of SLURM via submitit) set a
    flag that the loop checks after each step (then it checkpoints)."""
    received: list[int] = []

    def handler(signum, frame):
        if received:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        received.append(signum)

    old = {}
    try:
        for sig in (signal.SIGTERM, signal.SIGINT, *STOP_SIGNALS_EXTRA):
            old[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread: leave signals alone
        pass
    try:
        yield received
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def _fmt_time(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def train(cfg, out_dir: str | Path | None = None, hooks: Iterable[Hook] = ()) -> dict:
    """Train the model `cfg` describes; return the summary (also written to summary.json).

    `hooks` run after every step, followed by those `cfg` asks for (text samples: `cfg.sample`)."""
    out_dir = Path(out_dir if out_dir is not None else _hydra_output_dir())
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {"status": "running", "seed": cfg.seed, "model": cfg.model.name,
               "dataset": cfg.dataset.name, "experiment": cfg.experiment_name,
               "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "host": socket.gethostname(), "pid": os.getpid()}  # lets the analysis spot dead runs
    try:
        validate(cfg)
        return _train(cfg, out_dir, summary, list(hooks) + hooks_from_config(cfg))
    except BaseException as e:
        if summary["status"] == "running":
            summary.update(status="interrupted" if isinstance(e, KeyboardInterrupt) else "failed",
                           error=f"{type(e).__name__}: {e}")
            write_summary(out_dir, summary)
        raise


def _train(cfg, out_dir: Path, summary: dict, hooks: list[Hook]) -> dict:
    t_cfg = cfg.train
    if t_cfg.threads > 0:
        torch.set_num_threads(t_cfg.threads)
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    data = build_dataset(cfg, device)
    model = build_model(cfg.model, data.vocab_size, data.num_classes).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=t_cfg.lr)
    scheduler = (torch.optim.lr_scheduler.StepLR(optimizer, t_cfg.lr_decay_every, t_cfg.lr_decay)
                 if t_cfg.lr_decay_every > 0 else None)
    summary.update(num_params=count_params(model),
                   num_params_embedding=count_params(model.embedding) if hasattr(model, "embedding") else 0,
                   device=str(device), torch=torch.__version__, threads=torch.get_num_threads())

    ckpt_path = out_dir / "checkpoint.pt"
    step, rows, elapsed_before = 0, [], 0.0
    window = {"loss": 0.0, "correct": 0.0, "n": 0, "examples": 0}
    if t_cfg.resume and ckpt_path.exists():
        state = checkpoint.load(ckpt_path, map_location="cpu")  # RNG states must stay CPU tensors
        checkpoint.check_same_run(state, cfg, ckpt_path)
        data.load_state_dict(state["data"])  # first: a text dataset checks its vocabulary here
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler"):
            scheduler.load_state_dict(state["scheduler"])
        checkpoint.set_rng_state(state["rng"])
        step, rows, elapsed_before, window = state["step"], state["metrics"], state["elapsed_s"], state["window"]
        log.info("resuming from %s at step %d", ckpt_path, step)
        summary["resumed_from_step"] = step

    def save_checkpoint():
        checkpoint.save_atomic({
            "step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "data": data.state_dict(), "rng": checkpoint.rng_state(), "metrics": writer.rows,
            "window": dict(window), "elapsed_s": elapsed_before + time.perf_counter() - t0,
            "config": OmegaConf.to_container(cfg, resolve=True),
        }, ckpt_path)

    writer = MetricsWriter(out_dir / "metrics.csv", rows)
    write_summary(out_dir, summary)
    t0 = t_window = time.perf_counter()
    steps, B = t_cfg.steps, t_cfg.batch_size
    report_every = max(t_cfg.eval_every, steps // 20)
    model.train()
    with stop_on_signals() as received:
        while step < steps:
            x, y = data.sample(B)
            loss, acc = nll_and_accuracy(model(x), y)
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                summary.update(status="diverged", diverged_at_step=step + 1)
                log.error("loss is %s at step %d: stopping (status diverged; the last good "
                          "checkpoint is kept)", loss_value, step + 1)
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), t_cfg.max_norm)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            step += 1
            window["loss"] += loss_value
            window["correct"] += acc.item()
            window["n"] += 1
            window["examples"] += len(x)

            is_eval = step % t_cfg.eval_every == 0 or step == steps
            if step % t_cfg.log_every == 0 or is_eval:
                now = time.perf_counter()
                row = {"step": step, "loss": window["loss"] / window["n"],
                       "accuracy": window["correct"] / window["n"],
                       "eval_accuracy": evaluate(model, data.eval_x, data.eval_y) if is_eval else "",
                       "lr": optimizer.param_groups[0]["lr"],
                       "examples_per_s": round(window["examples"] / max(now - t_window, 1e-9), 1),
                       "elapsed_s": round(elapsed_before + now - t0, 3)}
                writer.write(row)
                window = {"loss": 0.0, "correct": 0.0, "n": 0, "examples": 0}
                t_window = now
                if step % report_every == 0 or step == steps:
                    run_s = now - t0
                    eta = run_s / max(step - summary.get("resumed_from_step", 0), 1) * (steps - step)
                    log.info("step %d/%d | loss %.4f | acc %.3f%s | %.0f ex/s | ETA %s", step, steps,
                             row["loss"], row["accuracy"],
                             f" | eval {row['eval_accuracy']:.3f}" if is_eval else "",
                             row["examples_per_s"], _fmt_time(eta))
            for hook in hooks:
                hook(step, model, data, out_dir)
            if t_cfg.checkpoint_every and step % t_cfg.checkpoint_every == 0 and step < steps:
                save_checkpoint()
            if received:
                save_checkpoint()
                writer.close()
                summary.update(status="interrupted", step=step, signal=signal.Signals(received[0]).name,
                               wall_time_s=round(elapsed_before + time.perf_counter() - t0, 3))
                write_summary(out_dir, summary)
                log.warning("stopped by %s at step %d; checkpoint saved, resume by re-running "
                            "in this folder", summary["signal"], step)
                raise KeyboardInterrupt(f"stopped by {summary['signal']} at step {step}")

    if summary["status"] == "running":
        save_checkpoint()
        summary["status"] = "completed"
    writer.close()
    summary.update(step=step, wall_time_s=round(elapsed_before + time.perf_counter() - t0, 3),
                   finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   **_final_metrics(writer.rows))
    write_summary(out_dir, summary)
    return summary


def _final_metrics(rows: list[dict]) -> dict:
    if not rows:
        return {}
    evals = [float(r["eval_accuracy"]) for r in rows if r["eval_accuracy"] != ""]
    last = rows[-1]
    out = {"final_loss": float(last["loss"]), "final_accuracy": float(last["accuracy"]),
           "best_accuracy": max(float(r["accuracy"]) for r in rows)}
    if evals:
        out.update(final_eval_accuracy=evals[-1], best_eval_accuracy=max(evals))
    return out


def _hydra_output_dir() -> str:
    from hydra.core.hydra_config import HydraConfig
    if HydraConfig.initialized():
        return HydraConfig.get().runtime.output_dir
    return os.getcwd()
