"""Speed benchmark: one command, a table of medians over repeats and the ratios the targets name.

    python -m rnn_experiments.bench                  # train, gen, data, memory, analysis (minutes)
    python -m rnn_experiments.bench --only train     # the training-step grid alone
    python -m rnn_experiments.bench --quick          # 3 repeats, 4 cases of the grid
    python -m rnn_experiments.bench --only train --case 128,32,81 --case 256,256,41
    python -m rnn_experiments.bench --only train --threads 1 --clock thread   # on a busy machine
    python -m rnn_experiments.bench --device cuda    # where there is a GPU

Sections:
  train   one training step (forward + NLL + backward + clip + Adam) of our LSTM and peephole LSTM
          against torch.nn.LSTM of the same sizes (embedding 64), over a grid: batch B in
          {32, 128, 256}, hidden size H in {32, 64, 128, 256, 512}, input length T in {41, 81}
          (palindromes of L = 10 and 20, the course's lengths; --case B,H,T for others). The
          models are timed interleaved, repeat after repeat, so a busy machine slows all of them
          alike; fewer repeats at the largest sizes. Targets (ratios to nn.LSTM): the LSTM
          <= 0.8 at B=256, H=256 (the course's size); both models <= 1.0 wherever B >= 128;
          <= 1.3 at B=32, H=64. The header names the CPU, its vector extensions, torch, the
          threads and the load average; the section ends with the worst ratio per model.
  gen     greedy generation, batch 1, state carried from character to character, with the
          2-layer text generator (rnn_experiments.models.generator: Embedding 64 ->
          nn.LSTM(64, 256, 2) -> Linear).
          Targets: >= 2000 characters/s; time(1000 chars) <= 12 x time(100 chars).
  data    producing a batch vs a training step consuming it. Target: >= 100x faster.
  memory  peak resident memory (VmHWM) of a short palindrome training run in a subprocess.
  analysis  collecting and tabulating 1,000 synthetic run folders of the palindrome study's shape
          (300 metrics rows each). Target: under 5 s.
  sweep   wall time of the small `+experiment=demo` sweep (4 runs) run one job at a time (basic
          launcher, torch's default threads) vs 2 jobs at once (hydra/launcher=parallel, 1 thread
          each). Not in the default set (minutes); ask for it with `--only sweep`.

Every classifier is built by `rnn_experiments.training.setup` from the real config, and every
training step (the text-data row's generator too) is timed through
`rnn_experiments.training.step.make_step`, the step the training loop takes (on a GPU: replayed
from a CUDA graph unless --eager; the nn.LSTM baseline always runs eagerly).
"""
from __future__ import annotations

from rnn_experiments.runner.startup import require_cwd

require_cwd("rnn-bench")   # before torch is imported (runner/startup.py)

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from rnn_experiments.config import compose
from rnn_experiments.data.text import read_text
from rnn_experiments.errors import ConfigError, check
from rnn_experiments.training.setup import available_cores, make_optimizer, resolve_device, setup
from rnn_experiments.training.step import make_step

BOOK = Path("data/grimms_fairy_tales.txt")  # where `python -m rnn_experiments.download grimm` puts it


class TorchLSTMClassifier(nn.Module):
    """The baseline: the same classifier around torch.nn.LSTM."""

    def __init__(self, vocab_size, num_classes, embedding_dim, hidden_size):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden_size, batch_first=True)
        self.out = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        h, _ = self.lstm(self.embedding(x))                   # (B, T, H)
        return F.log_softmax(self.out(h[:, -1]), dim=-1)      # (B, C)


MINIMA: dict = {}   # (section, name) -> fastest repeat, printed next to the medians
CLOCKS = {"wall": time.perf_counter, "thread": time.thread_time}
CLOCK = time.perf_counter   # --clock thread: the CPU time of this thread (with --threads 1 only)


def interleaved(fns: dict, repeats: int, warmup: int = 1, key: str = "") -> dict:
    """{name: median seconds}: every repeat runs each fn once, in turn (minima kept in MINIMA)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = CLOCK()
            fn()
            times[name].append(CLOCK() - t0)
    MINIMA.update({(key, name): min(ts) for name, ts in times.items()})
    return {name: statistics.median(ts) for name, ts in times.items()}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def step_fn(model, optimizer, x, y, max_norm, device, cuda_graphs=False):
    take_step = make_step(model, optimizer, max_norm, device, cuda_graphs)

    def step():
        take_step(x, y)
        sync(device)
    return step


def train_config(model: str, B: int, H: int, L: int, device, extra=()):
    """The config of a palindrome run of this size (input length 4L+1), as the loop would get it."""
    return compose([f"model={model}", f"model.hidden_size={H}", f"train.batch_size={B}",
                    f"dataset.seq_length={L}", f"device={device.type}", "train.eval_size=16", *extra])


TRAIN_GRID = [(B, H, T) for B in (32, 128, 256) for H in (32, 64, 128, 256, 512) for T in (41, 81)]
QUICK_GRID = [(256, 256, 41), (128, 32, 81), (128, 256, 81), (32, 64, 41)]


def train_target(B: int, H: int, model: str) -> float | None:
    """The ratio to nn.LSTM a model's training step must stay under at this size (None: none)."""
    if model not in ("lstm", "peep_lstm"):
        return None
    if (B, H) == (256, 256) and model == "lstm":
        return 0.8
    if B >= 128:
        return 1.0
    if (B, H) == (32, 64):
        return 1.3
    return None


def case_repeats(B: int, H: int, T: int, repeats: int) -> int:
    """Fewer repeats where one step of nn.LSTM takes ~1 s on 2 cores (B·H²·T beyond 256·256²·81)."""
    return repeats if B * H * H * T <= 256 * 256 * 256 * 81 else max(3, repeats // 2)


def bench_train(device, repeats, sizes, with_plain: bool, cuda_graphs: bool = True):
    """sizes: (B, H, T) with T = 4L + 1 (palindromes of length L)."""
    rows = []
    for B, H, T in sizes:
        runs = {}
        for name in ("lstm", "peep_lstm") + (("lstm (autograd loop)",) if with_plain else ()):
            cfg = train_config(name.split()[0], B, H, (T - 1) // 4, device)
            _, data, model, optimizer = setup(cfg)
            model.fused = not name.endswith("loop)")
            runs[name] = (model, optimizer)
        x, y = data.sample(B)                                 # (B, 4L+1) palindromes, (B,) labels
        torch.manual_seed(0)
        baseline = TorchLSTMClassifier(data.vocab_size, data.num_classes, cfg.model.embedding_dim, H).to(device)
        runs = {"nn.LSTM": (baseline, make_optimizer(baseline, cfg.train.lr, device)), **runs}   # the same Adam
        fns = {k: step_fn(m, opt, x, y, cfg.train.max_norm, device, cuda_graphs and k != "nn.LSTM")
               for k, (m, opt) in runs.items()}
        case = f"B={B} H={H} T={x.shape[1]}"
        med = interleaved(fns, case_repeats(B, H, T, repeats), key=case,
                          warmup=5 if device.type == "cuda" else 1)
        for name, t in med.items():
            target = train_target(B, H, name) if device.type == "cpu" else None
            rows.append({"section": "train", "case": case, "what": name,
                         "median_ms": t * 1e3, "ratio": t / med["nn.LSTM"],
                         "min_ratio": MINIMA[case, name] / MINIMA[case, "nn.LSTM"],
                         "target": f"<= {target:g}" if target else "", "limit": target})
        print(f"  {case}: nn.LSTM {med['nn.LSTM'] * 1e3:.2f} ms; " + ", ".join(
            f"{r['what']} {r['ratio']:.2f} ({r['min_ratio']:.2f})" for r in rows[-len(med) + 1:]), flush=True)
    return rows


def train_summary(rows) -> list[str]:
    """The worst ratio (of the fastest repeats) per model, at B >= 128 and everywhere, and the
    cases that miss their target."""
    lines = []
    train = [r for r in rows if r["section"] == "train" and r["what"] != "nn.LSTM"]
    for name in dict.fromkeys(r["what"] for r in train):
        mine = [r for r in train if r["what"] == name]
        worst = max(mine, key=lambda r: r["min_ratio"])
        big = [r for r in mine if int(r["case"].split()[0][2:]) >= 128]
        text = f"worst {name}: {worst['min_ratio']:.2f} x nn.LSTM ({worst['case']})"
        if big and big != mine:
            worst_big = max(big, key=lambda r: r["min_ratio"])
            text += f"; at B >= 128: {worst_big['min_ratio']:.2f} ({worst_big['case']})"
        lines.append(text)
    missed = [f"{r['what']} {r['case']} {r['min_ratio']:.2f} (target {r['target']})"
              for r in train if r.get("limit") and r["min_ratio"] > r["limit"]]
    judged = sum(1 for r in train if r.get("limit"))
    if judged:
        lines.append(f"targets met (ratio of the fastest repeats): {judged - len(missed)} of {judged}"
                     + (f"; missed: {'; '.join(missed)}" if missed else ""))
    return lines


def make_generator(vocab_size):
    from rnn_experiments.models.generator import TextGenerator
    return TextGenerator(vocab_size, 64, 256, num_layers=2), "TextGenerator(64->256, 2 layers)"


@torch.no_grad()
def greedy(model, n, device):
    x, state = torch.zeros(1, dtype=torch.long, device=device), None
    out = []
    for _ in range(n):
        logits, state = model.step(x, state)                  # (1, V)
        x = logits.argmax(-1)                                 # (1,)
        out.append(x)
    torch.cat(out).tolist()                                   # one transfer at the end
    sync(device)


def bench_gen(device, repeats, vocab_size=86):
    """Greedy generation at torch's thread count and at 1 thread (batch 1 has little to share
    between threads, and a busy machine makes every multi-threaded call wait for a core)."""
    torch.manual_seed(0)
    model, label = make_generator(vocab_size)
    model = model.to(device).eval()
    rows, threads = [], torch.get_num_threads()
    for n in sorted({threads, 1}, reverse=True) if device.type == "cpu" else [threads]:
        torch.set_num_threads(n)
        key = f"gen{n}"
        med = interleaved({100: lambda: greedy(model, 100, device),
                           1000: lambda: greedy(model, 1000, device)}, repeats, key=key)
        case = f"{label}, {n} thr"
        rows += [
            {"section": "gen", "case": case, "what": "100 chars", "median_ms": med[100] * 1e3,
             "ratio": None, "target": ""},
            {"section": "gen", "case": case, "what": "1000 chars", "median_ms": med[1000] * 1e3,
             "ratio": med[1000] / med[100], "min_ratio": MINIMA[key, 1000] / MINIMA[key, 100],
             "target": "<= 12 (x 100 chars)"},
            {"section": "gen", "case": case, "what": "chars/s (1000)", "median_ms": None,
             "ratio": 1000 / med[1000], "min_ratio": 1000 / MINIMA[key, 1000], "target": ">= 2000"},
        ]
    torch.set_num_threads(threads)
    return rows


def text_dataset(device, book: Path = BOOK):
    """`dataset=text` on the book, built from the real config (None and why if the book is absent)."""
    from rnn_experiments.data import build_dataset
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
    from rnn_experiments.analysis import collect, group_keys, table, to_markdown
    from rnn_experiments.analysis.synthetic import fake_sweep
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
    checkpoints, batches, setup, and what remains (metrics rows, summaries). The loop's own
    functions are wrapped with timers for the run (rnn_experiments.training.loop); --clock thread
    counts this thread's CPU time instead of wall time."""
    import rnn_experiments.training.loop as loop
    spent: dict = {}

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            t0 = CLOCK()
            try:
                return fn(*args, **kwargs)
            finally:
                n, total = spent.get(name, (0, 0.0))
                spent[name] = (n + 1, total + CLOCK() - t0)
        return wrapper

    def timed_setup(cfg):
        device_, data, model_, optimizer = originals["setup"](cfg)
        data.sample = timed("batches", data.sample)
        return device_, data, model_, optimizer

    originals = {"make_step": loop.make_step, "evaluate": loop.evaluate, "setup": loop.setup,
                 "save_run": loop.checkpoint.save_run}
    loop.make_step = lambda *a, **k: timed("steps", originals["make_step"](*a, **k))
    loop.evaluate = timed("evaluation", originals["evaluate"])
    loop.setup = timed("setup", timed_setup)
    loop.checkpoint.save_run = timed("checkpoints", originals["save_run"])
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = train_config(model, B, H, L, device, [f"train.steps={steps}", "train.eval_size=2048",
                                                         "train.log_every=10", "train.eval_every=100",
                                                         "train.checkpoint_every=500"])
            t0 = CLOCK()
            summary = loop.train(cfg, Path(tmp) / "run")
            wall = CLOCK() - t0
    finally:
        loop.make_step, loop.evaluate, loop.setup = originals["make_step"], originals["evaluate"], originals["setup"]
        loop.checkpoint.save_run = originals["save_run"]
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


def cpu_model() -> str:
    """The CPU's model name: /proc/cpuinfo (Linux), else `lscpu`, else platform.processor().
    Virtual machines may report a bare "AMD EPYC", so family and model number are added."""
    try:
        with open("/proc/cpuinfo") as f:
            info = dict(line.split(":", 1) for line in f.read().split("\n\n")[0].splitlines()
                        if ":" in line)
        info = {k.strip(): v.strip() for k, v in info.items()}
        if "model name" in info:
            return f"{info['model name']} (family {info.get('cpu family', '?')}, model {info.get('model', '?')})"
    except OSError:
        pass
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    import platform
    return platform.processor() or "unknown model"


def cpu_flags() -> str:
    """The vector extensions the matrix and element-wise kernels can use, from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return "flags unknown"
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile")
    return " ".join(flag for flag in wanted if flag in flags) or "no AVX2"


def library_versions() -> str:
    """MKL and oneDNN as torch was built with them (from torch.__config__.show())."""
    found = []
    for line in torch.__config__.show().splitlines():
        line = line.strip(" -")
        if line.startswith("Intel(R) oneAPI Math Kernel Library Version") or line.startswith("Intel(R) Math Kernel"):
            found.append("MKL " + line.split("Version", 1)[1].split("-")[0].strip())
        elif line.startswith("Intel(R) MKL-DNN") or line.startswith("Intel(R) oneDNN"):
            found.append("oneDNN " + line.split()[2])
    return ", ".join(found) or "no MKL/oneDNN"


def cpu_kernels() -> str:
    """What the fused cells' kernels cost on this CPU at its thread count: ATen's tanh against
    its sigmoid on a (256, 256) tensor (and which the cells use), and the recurrent product
    (256, 256) x (256, 1024) through MKL (what the cells call) and through oneDNN (what
    nn.LSTM calls), in GFLOP/s. Fastest of a few repeats."""
    from rnn_experiments.models import fused

    def best(fn, calls):
        for _ in range(3):
            fn()
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)
    x, out = torch.linspace(-4, 4, 256 * 256).view(256, 256), torch.empty(256, 256)
    t_tanh = best(lambda: torch.tanh(x, out=out), 50)
    t_sig = best(lambda: torch.sigmoid(x, out=out), 50)
    h, W = torch.linspace(-1, 1, 256 * 256).view(256, 256), torch.linspace(-1, 1, 1024 * 256).view(1024, 256)
    flops = 2 * 256 * 256 * 1024
    mkl = flops / best(lambda: torch.mm(h, W.t()), 20) / 1e9
    text = (f"tanh {t_tanh * 1e6:.0f} us vs sigmoid {t_sig * 1e6:.0f} us per 256x256 "
            f"(cells use {'2*sigmoid(2x)-1' if fused.tanh_by_sigmoid() else 'tanh'}); "
            f"256x256x1024 product: MKL {mkl:.0f} GFLOP/s")
    linear = getattr(torch.ops.mkldnn, "_linear_pointwise", None)
    if torch.backends.mkldnn.is_available() and linear is not None:
        try:
            dnnl = flops / best(lambda: linear(h, W, None, "none", [], ""), 20) / 1e9
            text += f", oneDNN {dnnl:.0f} GFLOP/s"
        except RuntimeError:
            pass
    return text


def print_table(rows, header):
    print(header)
    print(f"{'section':8s} {'case':38s} {'what':26s} {'median ms':>10s} {'ratio':>8s} "
          f"{'(of mins)':>9s}  target")
    for r in rows:
        ms = f"{r['median_ms']:10.2f}" if r["median_ms"] is not None else f"{'':10s}"
        ratio = f"{r['ratio']:8.2f}" if r["ratio"] is not None else f"{'':8s}"
        mins = f"{r['min_ratio']:9.2f}" if r.get("min_ratio") is not None else f"{'':9s}"
        print(f"{r['section']:8s} {r['case'][:38]:38s} {r['what'][:26]:26s} {ms} {ratio} {mins}  {r['target']}")
    print("ratio: of the medians over repeats (chars/s for gen); (of mins): of the fastest repeats, the less noisy "
          "figure when other processes share the cores")
    for line in train_summary(rows):
        print(line)


def parse_case(text: str) -> tuple[int, int, int]:
    """'B,H,T' -> (B, H, T); ConfigError naming --case otherwise."""
    parts = text.split(",")
    ok = len(parts) == 3 and all(p.strip().isdigit() for p in parts)
    B, H, T = (int(p) for p in parts) if ok else (0, 0, 0)
    check(ok and B >= 1 and H >= 1 and T >= 9 and T % 8 == 1, "--case", text,
          "B,H,T: batch, hidden size and a palindrome input length T = 4L + 1, L even (9, 17, ..., 41, 81)")
    return B, H, T


def check_args(args, repeats: int, sections) -> torch.device:
    """The device to time on; ConfigError (one line naming the flag) for a bad argument."""
    check(repeats >= 1, "--repeats", repeats, "an integer >= 1")
    check(0 <= args.threads <= available_cores(), "--threads", args.threads,
          f"an integer from 0 to {available_cores()} (the cores this process may use; 0: torch's default)")
    check(args.sweep_steps >= 1, "--sweep-steps", args.sweep_steps, "an integer >= 1")
    check(args.run_steps >= 1, "--run-steps", args.run_steps, "an integer >= 1")
    for case in args.case or []:
        parse_case(case)
    check(args.clock == "wall" or (args.threads == 1 and args.device == "cpu"), "--clock", args.clock,
          "'wall', or 'thread' with --threads 1 on the CPU (it counts this thread's CPU time only)")
    if "data" in sections and (args.book is not None or BOOK.exists()):   # given: used or refused
        book = args.book or BOOK                                         # (an absent default: skipped)
        check(book.is_file(), "--book", str(book), "an existing text file (e.g. the one "
              "`python -m rnn_experiments.download grimm` writes to data/grimms_fairy_tales.txt)")
        read_text(book)                                                  # TextDataError naming the file
    return resolve_device(args.device)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7, help="timed repeats per case (medians)")
    ap.add_argument("--quick", action="store_true",
                    help=f"3 repeats; train cases {', '.join(map(str, QUICK_GRID))} only")
    ap.add_argument("--only", choices=["train", "gen", "data", "memory", "analysis", "run", "sweep"], action="append",
                    help="run only these sections (repeatable)")
    ap.add_argument("--case", action="append", metavar="B,H,T",
                    help="train cases to time instead of the grid (repeatable), e.g. 128,32,81")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                    help="thread: time the train/gen/data repeats by this thread's CPU time, which "
                         "other processes do not inflate (needs --threads 1)")
    ap.add_argument("--plain", action="store_true", help="also time the plain autograd loop")
    ap.add_argument("--eager", action="store_true", help="on a GPU: no CUDA graphs for our models")
    ap.add_argument("--book", type=Path, default=None,
                    help=f"text file for the text-data row (default {BOOK}; without it the row is skipped)")
    ap.add_argument("--sweep-steps", type=int, default=400, help="steps per run of the sweep section")
    ap.add_argument("--run-steps", type=int, default=300, help="steps of the run section's training run")
    args = ap.parse_args(argv)
    repeats = 3 if args.quick else args.repeats
    sections = args.only or ["train", "gen", "data", "memory", "analysis"]
    try:   # every argument checked before the first timed section (they take minutes)
        device = check_args(args, repeats, sections)
    except ConfigError as e:
        ap.exit(2, f"rnn-bench: error: {e}\n")
    if args.threads:
        torch.set_num_threads(args.threads)
    global CLOCK
    CLOCK = CLOCKS[args.clock]
    sizes = ([parse_case(c) for c in args.case] if args.case
             else QUICK_GRID if args.quick else TRAIN_GRID)               # (B, H, T)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = (f"CPU {cpu_model()}, {os.cpu_count()} cores, {cpu_flags()}, ATen "
                f"{torch.backends.cpu.get_cpu_capability()}, {library_versions()}")
    load_start = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    header = (f"rnn_experiments.bench: {name}, torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads, medians of {repeats} repeats ({args.clock} clock), "
              f"load average (1/5/15 min) at start {load_start}")
    print(header, flush=True)
    if device.type == "cpu" and "train" in sections:
        print(f"kernels: {cpu_kernels()}", flush=True)
    rows = []
    if "train" in sections or "data" in sections:
        rows += bench_train(device, repeats, sizes if "train" in sections else [(256, 256, 41)],
                            args.plain, not args.eager)
    if "gen" in sections:
        rows += bench_gen(device, repeats)
    if "data" in sections:
        rows += bench_data(device, repeats, rows, args.book or BOOK)
    if "memory" in sections:
        rows += bench_memory()
    if "analysis" in sections:
        rows += bench_analysis()
    if "run" in sections:
        rows += bench_run(device, args.run_steps, train_rows=rows)
    if "sweep" in sections:
        rows += bench_sweep(args.sweep_steps, 1 if args.quick else 2)
    load_end = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print_table(rows, f"{header}, at end {load_end}")
    return rows


if __name__ == "__main__":
    main()
