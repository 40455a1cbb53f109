"""The whole-run sections of rnn-bench: a batch against the step that consumes it (`data`), a run's
peak memory (`memory`), the analysis of 1,000 run folders (`analysis`), a training run split into
its phases (`run`), the demo sweep with one job or two at a time (`sweep`) and the demo's run
beside busy processes, default threads against one (`shared`)."""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from rnn_experiments.cli.bench import timing
from rnn_experiments.cli.bench.steps import make_generator
from rnn_experiments.cli.bench.timing import PhaseTimes, interleaved, step_fn, sync, train_config
from rnn_experiments.config import compose
from rnn_experiments.data import build_dataset
from rnn_experiments.training.loop import train
from rnn_experiments.training.resources import available_cores
from rnn_experiments.training.setup import setup

BOOK = Path("data/grimms_fairy_tales.txt")  # where `python -m rnn_experiments.download grimm` puts it


def text_dataset(device, book: Path = BOOK):
    """`dataset=text` on the book, built from the real config (None and why if the book is absent)."""
    if not book.exists():
        return None, f"{book} not found (--book PATH)"
    cfg = compose(["model=generator", "dataset=text", f"dataset.path={Path(book).resolve()}",
                   "device=cpu", "train.eval_size=256"])
    return build_dataset(cfg, device), "text"


def bench_data(device, repeats, train_rows, book: Path = BOOK):
    rows = []
    step_ms = {r["case"]: r["median_ms"] for r in train_rows if r["what"] == "lstm"}
    for L in (10, 20):
        _, data, _, _ = setup(train_config("lstm", 256, 256, L, device))
        case = f"B=256 H=256 T={4 * L + 1}"
        t = interleaved({"sample": lambda: (data.sample(256), sync(device))}, repeats * 5)["sample"]
        ref = step_ms.get(case)
        rows.append({"section": "data", "case": f"palindrome L={L} B=256", "what": "batch",
                     "median_ms": t * 1e3, "ratio": ref / (t * 1e3) if ref else None,
                     "target": ">= 100 (step / batch)" if ref else "(no train step timed)"})
    data, label = text_dataset(device, book)
    if data is None:
        rows.append({"section": "data", "case": "text", "what": f"skipped: {label}",
                     "median_ms": None, "ratio": None, "target": ""})
    else:
        t = interleaved({"sample": lambda: (data.sample(64), sync(device))}, repeats * 5)["sample"]
        gen, _ = make_generator(data.vocab_size)
        gen = gen.to(device)
        x, y = data.sample(64)
        opt = torch.optim.Adam(gen.parameters(), lr=1e-3)
        step = interleaved({"step": step_fn(gen, opt, x, y, 5.0, device)}, repeats)["step"]
        rows.append({"section": "data", "case": f"{label} B=64 T={x.shape[1]}", "what": "batch",
                     "median_ms": t * 1e3, "ratio": step / t, "target": ">= 100 (step / batch)"})
    return rows


def bench_analysis(runs: int = 1000, steps: int = 3000, target_s: float = 5.0):
    """Collect + tabulate `runs` synthetic run folders (300 metrics rows each at 3000 steps)."""
    from rnn_experiments.analysis import collect, group_keys, table, to_markdown   # lazy: pandas, scipy and seaborn only for --only analysis
    from rnn_experiments.analysis.synthetic import fake_sweep   # lazy: as above
    with tempfile.TemporaryDirectory() as tmp:
        fake_sweep(Path(tmp) / "sweep", seeds=range(max(1, runs // 4)), steps=steps)  # 2 models x 2 L
        t0 = time.perf_counter()
        df = collect(Path(tmp) / "sweep")
        t_collect = time.perf_counter() - t0
        to_markdown(table(df, group_keys(df)))
        total = time.perf_counter() - t0
    case = f"{df['run_dir'].nunique()} runs x {steps // 10} rows"
    return [{"section": "analysis", "case": case, "what": "collect", "median_ms": t_collect * 1e3,
             "ratio": None, "target": ""},
            {"section": "analysis", "case": case, "what": "collect + table", "median_ms": total * 1e3,
             "ratio": total / target_s, "target": f"<= 1 (x {target_s:g} s)"}]


PEAK_CODE = """
import runpy, sys
sys.argv = ["rnn-train"] + sys.argv[1:]
try:
    runpy.run_module("rnn_experiments.train", run_name="__main__")
finally:
    hwm = [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")]
    print("VmHWM_KIB", hwm[0] if hwm else "", file=sys.stderr)
"""


def bench_memory(steps=20, seq_length=10):
    """Peak resident memory (VmHWM) of a palindrome training run (batch 256, hidden 256) in a
    subprocess. Read in the child: the parent's getrusage would count a forked copy of itself."""
    with tempfile.TemporaryDirectory() as tmp:
        args = [f"dataset.seq_length={seq_length}", f"train.steps={steps}", "train.eval_every=10",
                "train.checkpoint_every=0", f"hydra.run.dir={tmp}/run", "hydra/job_logging=none",
                "hydra/hydra_logging=none"]
        proc = subprocess.run([sys.executable, "-c", PEAK_CODE, *args], cwd=tmp,
                              capture_output=True, text=True)
    peak = [line.split()[1] for line in proc.stderr.splitlines()
            if line.startswith("VmHWM_KIB") and len(line.split()) > 1]
    if proc.returncode != 0 or not peak:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1][:80]
        return [{"section": "memory", "case": "palindrome run", "what": f"failed: {last}",
                 "median_ms": None, "ratio": None, "target": ""}]
    return [{"section": "memory", "case": f"palindrome L={seq_length} B=256 H=256, {steps} steps",
             "what": f"peak RSS {int(peak[0]) / 1024:.0f} MiB", "median_ms": None, "ratio": None,
             "target": "reported"}]


def bench_run(device, steps: int = 300, model: str = "lstm", L: int = 10, B: int = 256, H: int = 256,
              train_rows=()):
    """A palindrome training run at the course's settings (log every 10 steps, held-out
    evaluation of 2048 examples every 100, checkpoint every 500 and at every better held-out
    loss), in this process, with its wall time split into the steps and the rest: evaluation,
    checkpoints, batches, setup, and what remains (metrics rows, summaries), as the loop's timer
    sees them (rnn_experiments/training/loop.py); --clock thread counts this thread's CPU time
    instead of wall time."""
    timer = PhaseTimes()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = train_config(model, B, H, L, device, [f"train.steps={steps}", "train.eval_size=2048",
                                                     "train.log_every=10", "train.eval_every=100",
                                                     "train.checkpoint_every=500"])
        t0 = timing.CLOCK()
        summary = train(cfg, Path(tmp) / "run", timer=timer)
        wall = timing.CLOCK() - t0
    spent = timer.spent
    case = f"{model} L={L} B={B} H={H}, {steps} steps"
    n_steps, t_steps = spent["steps"]
    rows = [{"section": "run", "case": case, "what": "train() in all", "median_ms": wall * 1e3,
             "ratio": None, "target": ""},
            {"section": "run", "case": case, "what": f"steps ({n_steps}, {t_steps / n_steps * 1e3:.0f} ms each)",
             "median_ms": t_steps * 1e3, "ratio": None, "target": ""}]
    for name in ("evaluation", "checkpoints", "batches", "setup"):
        n, t = spent.get(name, (0, 0.0))
        rows.append({"section": "run", "case": case, "what": f"{name} ({n})", "median_ms": t * 1e3,
                     "ratio": t / t_steps, "target": ""})
    rest = wall - t_steps - sum(spent.get(k, (0, 0.0))[1] for k in ("evaluation", "checkpoints", "batches", "setup"))
    rows.append({"section": "run", "case": case, "what": "rest (rows, summaries)", "median_ms": rest * 1e3,
                 "ratio": rest / t_steps, "target": ""})
    rows.append({"section": "run", "case": case, "what": "overhead: all / steps - 1", "median_ms": None,
                 "ratio": wall / t_steps - 1, "target": "<= 0.1"})
    bench_ms = {r["case"]: r["median_ms"] for r in train_rows if r["what"] == model}.get(f"B={B} H={H} T={4 * L + 1}")
    if bench_ms:
        rows.append({"section": "run", "case": case, "what": "all / (steps x bench step)", "median_ms": None,
                     "ratio": wall / (steps * bench_ms / 1e3), "target": "reported"})
    assert summary["status"] == "completed", summary
    return rows


def bench_sweep(steps: int, repeats: int):
    """Wall time of the demo sweep, sequential vs 2-way parallel, alternating; medians."""
    def run(parallel: bool):
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-m", "rnn_experiments.train", "-m", "+experiment=demo",
                   f"train.steps={steps}", "device=cpu", f"hydra.sweep.dir={tmp}/sweep",
                   "hydra/job_logging=none", "hydra/hydra_logging=none"]
            if parallel:
                cmd += ["hydra/launcher=parallel", "hydra.launcher.n_jobs=2"]
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"sweep failed: {proc.stderr.strip()[-300:]}")
            return time.perf_counter() - t0
    med = interleaved({"sequential": lambda: run(False), "parallel": lambda: run(True)},
                      repeats, warmup=0)
    case = f"demo sweep: 4 runs x {steps} steps"
    return [{"section": "sweep", "case": case, "what": "sequential (1 job)", "median_ms": med["sequential"] * 1e3,
             "ratio": 1.0, "target": ""},
            {"section": "sweep", "case": case, "what": "joblib 2 jobs x 1 thread", "median_ms": med["parallel"] * 1e3,
             "ratio": med["parallel"] / med["sequential"], "target": "reported (< 1: faster)"}]


SHARED_TARGET = 1.3   # the default beside busy processes, at most this many times one thread's time


def busy_processes(n: int) -> list:
    """n processes that keep a core busy each (`python -c 'while True: pass'`); stop_processes ends them."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]


def stop_processes(procs) -> None:
    for p in procs:
        p.kill()
        p.wait()


def bench_shared(steps: int = 40, busy: int = 2, repeats: int = 1, extra=()):
    """The demo's training run (`+experiment=demo`, its LSTM, `steps` steps, start-up included)
    in a subprocess beside `busy` busy processes that this starts and stops, with the default
    threads and with train.threads=1, alternating; the fastest of `repeats` each. The default
    row names the threads the run chose (summary.json's impl). Target: default <= 1.3 x one thread."""
    if available_cores() < 2:
        return [{"section": "shared", "case": "demo beside busy processes", "what": "skipped: one core",
                 "median_ms": None, "ratio": None, "target": ""}]
    times, chose = {"default": [], "train.threads=1": []}, {}
    hogs = busy_processes(busy)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(repeats):
                for name in times:
                    run_dir = Path(tmp) / f"{'default' if name == 'default' else 'one'}-{r}"
                    cmd = [sys.executable, "-m", "rnn_experiments.train", "+experiment=demo", "hydra.mode=RUN",
                           "model=lstm", f"train.steps={steps}", "device=cpu", f"hydra.run.dir={run_dir}",
                           "hydra/job_logging=none", "hydra/hydra_logging=none", *extra,
                           *(["train.threads=1"] if name != "default" else [])]
                    t0 = time.perf_counter()
                    proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
                    times[name].append(time.perf_counter() - t0)
                    if proc.returncode != 0:
                        raise RuntimeError(f"the demo run failed: {proc.stderr.strip()[-300:]}")
                    chose[name] = json.loads((run_dir / "summary.json").read_text())["impl"]["threads"]
    finally:
        stop_processes(hogs)
    default, one = min(times["default"]), min(times["train.threads=1"])
    case = f"demo lstm, {steps} steps, beside {busy} busy"
    return [{"section": "shared", "case": case, "what": "train.threads=1", "median_ms": one * 1e3,
             "ratio": 1.0, "target": ""},
            {"section": "shared", "case": case, "what": f"default (chose {chose['default']} thr)",
             "median_ms": default * 1e3, "ratio": default / one, "target": f"<= {SHARED_TARGET:g} (x 1 thread)",
             "limit": SHARED_TARGET}]
