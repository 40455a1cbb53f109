"""The training loop: sample a batch, take a step, log, evaluate, checkpoint — for any task.

`train(cfg, out_dir, hooks, sinks)` is a plain function (tests call it; rnn_experiments/cli/
rnn_train.py wraps it in Hydra). It knows no task and no tracker: whatever a task adds (text
samples) comes in as `hooks`, called after every step as hook(step, model, data, out_dir);
trackers (TensorBoard) come in as `sinks`, which receive every metrics.csv row (run/metrics.py);
a `timer` (the benchmark's) is told where the time goes: timer(phase) is a context manager around
each "setup", "batches", "steps", "evaluation" and "checkpoints". It writes into `out_dir`:

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
import contextlib
import math
import signal
import time
from pathlib import Path
from typing import Callable, Iterable

import torch

from rnn_experiments.config import TrainConfig, validate
from rnn_experiments.models import count_params
from rnn_experiments.parts import build_part, same_results
from rnn_experiments.run.folder import SummaryError, is_run_folder, read_summary
from rnn_experiments.run import checkpoint
from rnn_experiments.run.lock import HEARTBEAT_S, RunLock
from rnn_experiments.run.metrics import MetricsWriter, record_of
from rnn_experiments.training.impl import choose_impl, describe, lower_threads
from rnn_experiments.training.setup import build_metrics, build_scheduler, setup
from rnn_experiments.training.step import evaluate, make_step
from rnn_experiments.training.signals import Interrupted, stop_on_signals
from rnn_experiments.run.summary import final_metrics, new_summary, now, write_summary

log = logging.getLogger(__name__)

# A hook is called after every optimizer step: hook(step, model, data, out_dir).
Hook = Callable[[int, torch.nn.Module, object, Path], None]
# A timer gives a context manager around each phase of the run: timer("steps"), ...
Timer = Callable[[str], contextlib.AbstractContextManager]


def untimed(phase: str) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext()


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
          on_accept: Callable[[], None] = lambda: None, timer: Timer = untimed) -> dict:
    """Train the model `cfg` describes; return the summary (also written to summary.json).
    `sinks` get every metrics.csv row too (trackers: rnn_experiments/loggers/).

    Nothing is written into `out_dir` until the run is accepted: the folder's lock taken
    (lock.py), the config valid, the checkpoint (if resuming) made by this run. Then
    `on_accept()` is called (the entry point saves .hydra/ there) and the run starts. A refused
    run leaves a folder that holds a run as it was; in a fresh folder it records its error in
    summary.json (status failed), so that a sweep's analysis lists it.

    The run ends `completed`, `diverged` (a non-finite loss: nothing is saved from that model;
    the last good checkpoint is kept), `interrupted` (a stop signal: checkpoint saved, then
    `Interrupted` is raised for the entry point) or with the status a sink asked for by raising
    `StopRun` (e.g. `pruned`: checkpoint saved, a normal end). An exception that escapes (a bug,
    a full disk) leaves `failed` (or `interrupted` for a second Ctrl-C) with the error in
    summary.json.
    """
    return run_to_end(start(cfg, out_dir, hooks, sinks, on_accept, timer))


def run_to_end(run) -> dict:
    """The summary of a run that `start` made (packed=False): it never waits for a pack."""
    try:
        next(run)
    except StopIteration as end:
        return end.value
    raise RuntimeError("a run outside a pack waits for a packed step")


def start(cfg, out_dir: str | Path, hooks: Iterable[Hook] = (), sinks: Iterable = (),
          on_accept: Callable[[], None] = lambda: None, timer: Timer = untimed, packed: bool = False):
    """`train` as a generator, so that a pack (rnn_experiments/training/pack.py) can take the
    steps of several runs together. With packed=False it yields nothing and returns (as its
    StopIteration's value) the summary. With packed=True, once the run is accepted and ready it
    yields its `_Run` (the pack builds its step from the members' models and optimizers); then,
    for every step, it yields the step's batch (x, y) and is sent back (loss, accuracy) of the
    step the pack took on it; everything else (metrics, evaluation, checkpoints, the summary,
    its errors) is this run's own, exactly as alone."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = new_summary(cfg)
    fresh = not is_run_folder(out_dir)
    accepted = []

    def accept() -> None:
        on_accept()
        accepted.append(True)

    run = None
    with RunLock(out_dir):
        try:
            validate(cfg)
            run = _Run(cfg, out_dir, summary, timer)
            _resume(run)
            done = _already_completed(run)
            if done is not None:      # the same command again: the record stays as it was
                return done
            accept()
            return (yield from _loop(run, list(hooks), list(sinks), packed))
        except BaseException as e:
            if run is not None and run.writer is not None:
                run.writer.close()   # what was written stays; the file is not left open
            if summary["status"] == "running" and (accepted or fresh):
                if not accepted:
                    on_accept()
                summary.update(status="interrupted" if isinstance(e, KeyboardInterrupt) else "failed",
                               error=f"{type(e).__name__}: {e}")
                _write_summary_if_possible(out_dir, summary)
                if run is not None and run.writer is not None:
                    run.writer.finish(summary)   # the trackers' run ends failed too
            raise


def _already_completed(run) -> dict | None:
    """The summary of a completed run this one resumed at its last step (its command run again):
    nothing to train, so nothing is rewritten (its start, command and record stay); else None."""
    if run.step < run.cfg.train.steps or "resumed_from_step" not in run.summary:
        return None
    try:
        before = read_summary(run.out_dir)
    except SummaryError:
        return None
    if not before or before.get("status") != "completed" or before.get("step") != run.step:
        return None
    log.info("%s: completed at step %d already; nothing to do (summary.json unchanged)", run.out_dir, run.step)
    return before


def _write_summary_if_possible(out_dir: Path, summary: dict) -> None:
    """The final summary; if even that cannot be written (disk full), the run stays `running`,
    which the analysis reports as crashed once the process is gone."""
    try:
        write_summary(out_dir, summary)
    except OSError as e:
        log.error("%s: the summary still says 'running'", e)


class _Run:
    """What a run holds while it trains: the objects `setup` builds, where it is (step, the
    metrics rows so far, the current window), its paths and its summary."""

    def __init__(self, cfg, out_dir: Path, summary: dict, timer: Timer = untimed):
        self.cfg, self.out_dir, self.summary, self.timer = cfg, out_dir, summary, timer
        with timer("setup"):
            self.device, self.data, self.model, self.optimizer = setup(cfg)
            impl = choose_impl(cfg, self.device, self.data, self.model)   # and torch's threads
        self.scheduler = build_scheduler(cfg.get("scheduler"), self.optimizer)
        self.metrics = build_metrics(cfg)          # name -> metric: columns eval_NAME
        self.checkpoint, self.best = out_dir / "checkpoint.pt", out_dir / "checkpoint_best.pt"
        self.step, self.rows, self.elapsed_before = 0, [], 0.0
        self.window = Window(self.device)
        self.writer: MetricsWriter | None = None
        self.t0 = time.perf_counter()
        self.last_report: tuple[float, int] | None = None   # (time, step) of the last progress line
        model = self.model
        summary.update(num_params=count_params(model),
                       num_params_embedding=count_params(model.embedding) if hasattr(model, "embedding") else 0,
                       device=str(self.device), torch=torch.__version__, threads=torch.get_num_threads(),
                       deterministic=torch.are_deterministic_algorithms_enabled(), impl=impl,
                       heartbeat_s=HEARTBEAT_S,   # run.lock is touched this often while the run lives
                       same_results=same_results(cfg, TrainConfig.same_results))  # not group keys (analysis)

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.t0

    def save(self, path: Path) -> int:
        """Checkpoint to `path`; returns 0, or (nothing saved) the first step of the window whose
        loss was not finite: a diverged model is never saved."""
        w, first_bad = self.window.read()
        if first_bad:
            return first_bad
        with self.timer("checkpoints"):
            checkpoint.save_run(path, step=self.step, model=self.model, optimizer=self.optimizer,
                                scheduler=self.scheduler, data=self.data, rows=self.writer.rows,
                                window=w, elapsed_s=self.elapsed(), cfg=self.cfg)
        return 0


def _resume(run: _Run) -> None:
    """Continue from checkpoint.pt when the folder has one (train.resume): model, optimiser,
    data generator, RNG states, metrics rows and the partial window, so that the run goes on
    exactly as if it had never stopped. A broken link or unreadable file is refused
    (CheckpointError), never silently replaced."""
    path = run.checkpoint
    if not run.cfg.train.resume or not (path.exists() or path.is_symlink()):
        return
    state = checkpoint.restore_run(path, run.cfg, run.model, run.optimizer, run.scheduler, run.data)
    run.step, run.rows, run.elapsed_before = state["step"], state["metrics"], state["elapsed_s"]
    w = state["window"]
    run.window = Window(run.device, w["loss"], w["correct"], w["n"], w["examples"])
    run.summary["resumed_from_step"] = run.step
    log.info("resuming from %s at step %d", path, run.step)


def _row(run: _Run, is_eval: bool, t_window: float, now_s: float, w: dict) -> dict:
    """The metrics row of the window that ends at this step (means over its steps), with the
    held-out evaluation when `is_eval`."""
    row = {"step": run.step, "loss": w["loss"] / w["n"], "accuracy": w["correct"] / w["n"],
           "lr": float(run.optimizer.param_groups[0]["lr"]),
           "examples_per_s": round(w["examples"] / max(now_s - t_window, 1e-9), 1),
           "elapsed_s": round(run.elapsed(), 3)}
    if is_eval:
        with run.timer("evaluation"):
            if run.metrics:
                row["eval_accuracy"], row["eval_loss"], extra = evaluate(run.model, run.data.eval_x, run.data.eval_y,
                                                                         metrics=run.metrics)
                row.update({f"eval_{name}": value for name, value in extra.items()})
            else:
                row["eval_accuracy"], row["eval_loss"] = evaluate(run.model, run.data.eval_x, run.data.eval_y)
        if getattr(run.data, "per_character", False):
            row["eval_bpc"] = row["eval_loss"] / math.log(2)
    return row


def _loop(run: _Run, hooks: list[Hook], sinks: list, packed: bool = False):
    """Steps until train.steps, a stop signal, a sink's StopRun or a non-finite loss; then
    `_finish`. Packed: the steps are the pack's (`start` says how), else `make_step`'s."""
    t_cfg = run.cfg.train
    steps, B = t_cfg.steps, t_cfg.batch_size
    if run.cfg.get("stopping"):                   # stopping=early: a sink that may end the run
        sinks = sinks + [build_part(run.cfg.stopping, "stopping")]
    run.writer = MetricsWriter(run.out_dir / "metrics.csv", run.rows, sinks,
                               extra=[f"eval_{name}" for name in run.metrics])
    write_summary(run.out_dir, run.summary)
    run.t0 = t_window = time.perf_counter()
    report_every = max(t_cfg.eval_every, steps // 20)
    take_step = None if packed else make_step(run.model, run.optimizer, t_cfg.max_norm, run.device,
                                              cuda_graphs=t_cfg.cuda_graphs and run.scheduler is None)  # graphs: fixed lr
    if packed:
        yield run                                 # ready: the pack builds its step
    status, diverged_at, stop = "completed", 0, None
    run.model.train()
    timer = run.timer
    with stop_on_signals() as received:
        while run.step < steps:
            with timer("batches"):
                x, y = run.data.sample(B)
            with timer("steps"):
                loss, acc = (yield x, y) if packed else take_step(x, y)
            if run.scheduler is not None:
                run.scheduler.step()
            run.step += 1
            run.window.add(run.step, loss, acc, len(x))

            is_eval = run.step % t_cfg.eval_every == 0 or run.step == steps
            if run.step % t_cfg.log_every == 0 or is_eval:
                (w, diverged_at), now_s = run.window.read(), time.perf_counter()
                if diverged_at:
                    break
                row = _row(run, is_eval, t_window, now_s, w)
                best_so_far = min(_eval_losses(run.writer.rows), default=math.inf)
                run.writer.write(row)
                run.window, t_window = Window(run.device), now_s
                if is_eval and row["eval_loss"] < best_so_far:
                    run.save(run.best)
                if run.step % report_every == 0 or run.step == steps:
                    _report(run, row, is_eval, now_s)
            for hook in hooks:
                hook(run.step, run.model, run.data, run.out_dir)
            due = t_cfg.checkpoint_every and run.step % t_cfg.checkpoint_every == 0 and run.step < steps
            if due and (diverged_at := run.save(run.checkpoint)):
                break
            if received:
                stop = signal.Signals(received[0]).name
                break
            if run.writer.stop is not None:   # a sink asked the run to end (StopRun)
                break
    if not diverged_at:
        diverged_at = run.save(run.checkpoint)   # the end of the run, or its stop
    if diverged_at:
        status = "diverged"
    elif stop is not None:
        status = "interrupted"
    elif run.writer.stop is not None:
        status = run.writer.stop.status
    return _finish(run, status, diverged_at, stop)


def _finish(run: _Run, status: str, diverged_at: int, stop: str | None) -> dict:
    """Close metrics.csv, write the final summary; an interrupted run raises `Interrupted`; a
    run a sink stopped (pruned, ...) ends normally with its status and `stop_reason`."""
    run.writer.close()
    summary = run.summary
    summary.update(status=status, step=run.step, wall_time_s=round(run.elapsed(), 3), finished=now(),
                   **final_metrics(run.writer.rows, summary.get("metrics")),
                   metrics_csv=record_of(run.writer.path))    # what the file must be (the analysis checks)
    if status == "diverged":
        summary["diverged_at_step"] = diverged_at
        log.error("loss is not finite at step %d: stopping (status diverged; the last good "
                  "checkpoint is kept)", diverged_at)
    if status == "interrupted":
        summary["signal"] = stop
    requested = run.writer.stop
    if requested is not None and status == requested.status:
        summary["stop_reason"] = requested.reason
        log.info("%s at step %d: %s (checkpoint saved)", status, run.step, requested.reason)
    write_summary(run.out_dir, summary)
    run.writer.finish(summary)   # the sinks' final values (trackers), from the summary as written
    if status == "interrupted":
        log.warning("stopped by %s at step %d; checkpoint saved, resume by re-running "
                    "in this folder", stop, run.step)
        raise Interrupted(stop, run.step)
    return summary


COLLAPSE = 3.0   # a pace this many times slower than the run's fastest so far is called a collapse
_cpu_time = time.process_time   # this process's CPU time, all threads (its spinning threads show in it)


def _report(run: _Run, row: dict, is_eval: bool, now_s: float) -> None:
    """The progress line: step, loss, accuracy, held-out accuracy, throughput, ETA (the first also
    names the step's implementation and threads, training/impl.py). The ETA is the pace since the
    previous line (since the start for the first), so a pause (a suspended job) sways one
    estimate, not every later one. Where that pace is COLLAPSE times slower than the fastest
    between two earlier lines, the line says so (a warning): if the process also spent twice the
    CPU time per step, its threads were spinning at barriers waiting for one another (other
    processes hold the cores), and where the run left its threads to choose (train.threads=0) it
    goes on with one (impl.lower_threads, recorded in summary.json's impl), else the line says to
    set train.threads=1; with the same CPU time per step it was not running (suspended, or
    descheduled), and the line says only that."""
    steps = run.cfg.train.steps
    first = run.last_report is None and run.summary.get("impl") is not None   # the first line names the step
    t_prev, step_prev = run.last_report or (run.t0, run.summary.get("resumed_from_step", 0))
    n = max(run.step - step_prev, 1)
    per_step, cpu_now = (now_s - t_prev) / n, _cpu_time()
    cpu_step = (cpu_now - run.last_cpu) / n if getattr(run, "last_cpu", None) is not None else None
    eta = per_step * (steps - run.step)
    run.last_report, run.last_cpu = (now_s, run.step), cpu_now
    best, best_cpu = getattr(run, "fastest_step_s", None), getattr(run, "cpu_step_s", None)
    notes, lowered = [], False
    if best is not None and per_step > COLLAPSE * best:
        threads, note = torch.get_num_threads(), f"pace {per_step / best:.0f}x slower than earlier in this run"
        spinning = threads > 1 and cpu_step is not None and best_cpu is not None and cpu_step > 2 * best_cpu
        if spinning and lower_threads(run.cfg, run.summary.get("impl"), run.step):
            lowered = True
            note += (f": other processes share the cores, and each parallel call waits for all {threads} threads; "
                     "1 thread from here (train.threads=1 starts with 1)")
        elif spinning:
            note += f": other processes share the cores? with {threads} threads each parallel call waits; set train.threads=1"
        else:
            note += ": the process got no more CPU time per step (suspended, or other processes share the cores?)"
        notes.append(note)
    if lowered:                                             # the pace at one thread is the new reference
        run.fastest_step_s = run.cpu_step_s = None
    else:
        run.fastest_step_s = per_step if best is None else min(best, per_step)
        if cpu_step is not None:
            run.cpu_step_s = cpu_step if best_cpu is None else min(best_cpu, cpu_step)
    if first:
        notes.append(f"step: {describe(run.summary['impl'])}")
    (log.warning if len(notes) > first else log.info)(
        "step %d/%d | loss %.4f | acc %.3f%s | %.0f ex/s%s | ETA %s", run.step, steps, row["loss"], row["accuracy"],
        f" | eval {row['eval_accuracy']:.3f}" if is_eval else "", row["examples_per_s"],
        "".join(f" | {note}" for note in notes), _fmt_time(eta))


def _eval_losses(rows: list[dict]) -> list[float]:
    return [float(r["eval_loss"]) for r in rows if r.get("eval_loss", "") != ""]


def _fmt_time(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"
