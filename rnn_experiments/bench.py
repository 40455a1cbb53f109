"""Speed benchmark: one command, a table of medians over repeats and the ratios the targets name.

    python -m rnn_experiments.bench                  # everything (a few minutes on 2 CPU cores)
    python -m rnn_experiments.bench --quick          # fewer repeats, for a smoke test
    python -m rnn_experiments.bench --only train --threads 1
    python -m rnn_experiments.bench --device cuda    # where there is a GPU

Sections:
  train   one training step (forward + NLL + backward + clip + Adam) of our LSTM and peephole LSTM
          against torch.nn.LSTM of the same sizes (embedding 64); the models are timed
          interleaved, repeat after repeat, so a busy machine slows all of them alike.
          Target: ratio <= 0.8 at batch 256, hidden 256, input lengths 41 and 81.
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
from rnn_experiments.training.setup import available_cores, resolve_device, setup
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


def interleaved(fns: dict, repeats: int, warmup: int = 1, key: str = "") -> dict:
    """{name: median seconds}: every repeat runs each fn once, in turn (minima kept in MINIMA)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
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


def bench_train(device, repeats, sizes, with_plain: bool, cuda_graphs: bool = True):
    rows = []
    for B, H, L in sizes:
        runs = {}
        for name in ("lstm", "peep_lstm") + (("lstm (autograd loop)",) if with_plain else ()):
            cfg = train_config(name.split()[0], B, H, L, device)
            _, data, model, optimizer = setup(cfg)
            model.fused = not name.endswith("loop)")
            runs[name] = (model, optimizer)
        x, y = data.sample(B)                                 # (B, 4L+1) palindromes, (B,) labels
        torch.manual_seed(0)
        baseline = TorchLSTMClassifier(data.vocab_size, data.num_classes, cfg.model.embedding_dim, H).to(device)
        runs = {"nn.LSTM": (baseline, torch.optim.Adam(baseline.parameters(), lr=cfg.train.lr)), **runs}
        fns = {k: step_fn(m, opt, x, y, cfg.train.max_norm, device, cuda_graphs and k != "nn.LSTM")
               for k, (m, opt) in runs.items()}
        case = f"B={B} H={H} T={x.shape[1]}"
        med = interleaved(fns, repeats, key=case, warmup=5 if device.type == "cuda" else 1)
        for name, t in med.items():
            rows.append({"section": "train", "case": case, "what": name,
                         "median_ms": t * 1e3, "ratio": t / med["nn.LSTM"],
                         "min_ratio": MINIMA[case, name] / MINIMA[case, "nn.LSTM"],
                         "target": "<= 0.8" if (B, H) == (256, 256) and name in ("lstm", "peep_lstm") else ""})
    return rows


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


def check_args(args, repeats: int, sections) -> torch.device:
    """The device to time on; ConfigError (one line naming the flag) for a bad argument."""
    check(repeats >= 1, "--repeats", repeats, "an integer >= 1")
    check(0 <= args.threads <= available_cores(), "--threads", args.threads,
          f"an integer from 0 to {available_cores()} (the cores this process may use; 0: torch's default)")
    check(args.sweep_steps >= 1, "--sweep-steps", args.sweep_steps, "an integer >= 1")
    if "data" in sections and args.book.exists():   # an absent book only skips its row
        read_text(args.book)                        # TextDataError naming the file
    return resolve_device(args.device)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7, help="timed repeats per case (medians)")
    ap.add_argument("--quick", action="store_true", help="3 repeats, no T=81 case")
    ap.add_argument("--only", choices=["train", "gen", "data", "memory", "analysis", "sweep"], action="append",
                    help="run only these sections (repeatable)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    ap.add_argument("--plain", action="store_true", help="also time the plain autograd loop")
    ap.add_argument("--eager", action="store_true", help="on a GPU: no CUDA graphs for our models")
    ap.add_argument("--book", type=Path, default=BOOK, help="text file for the text-data row")
    ap.add_argument("--sweep-steps", type=int, default=400, help="steps per run of the sweep section")
    args = ap.parse_args(argv)
    repeats = 3 if args.quick else args.repeats
    sections = args.only or ["train", "gen", "data", "memory", "analysis"]
    try:   # every argument checked before the first timed section (they take minutes)
        device = check_args(args, repeats, sections)
    except ConfigError as e:
        ap.exit(2, f"rnn-bench: error: {e}\n")
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = [(256, 256, 10), (32, 64, 10)] if args.quick else [(256, 256, 10), (256, 256, 20), (32, 64, 10)]  # B, H, L
    name = (torch.cuda.get_device_name(device) if device.type == "cuda"
            else f"CPU {cpu_model()}, {os.cpu_count()} cores, ATen {torch.backends.cpu.get_cpu_capability()}")
    header = (f"rnn_experiments.bench: {name}, torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads, medians of {repeats} repeats, "
              f"load average {os.getloadavg()[0]:.1f}")
    rows = []
    if "train" in sections or "data" in sections:
        rows += bench_train(device, repeats, sizes if "train" in sections else sizes[:1], args.plain,
                            not args.eager)
    if "gen" in sections:
        rows += bench_gen(device, repeats)
    if "data" in sections:
        rows += bench_data(device, repeats, rows, args.book)
    if "memory" in sections:
        rows += bench_memory()
    if "analysis" in sections:
        rows += bench_analysis()
    if "sweep" in sections:
        rows += bench_sweep(args.sweep_steps, 1 if args.quick else 2)
    print_table(rows, header)
    return rows


if __name__ == "__main__":
    main()
