"""Speed benchmark: one command, a table of medians over repeats and the ratios the targets name.

    python -m rnn_experiments.bench                  # train, gen, data, memory, analysis, shared (minutes)
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
  shared  the demo's training run (its LSTM, 40 steps, start-up included) beside two busy
          processes the bench starts and stops, with the default threads and with
          train.threads=1. Target: the default <= 1.3 x one thread (training/impl.py chooses the
          threads where other processes share the cores).
  sweep   wall time of the small `+experiment=demo` sweep (4 runs) run one job at a time (basic
          launcher, torch's default threads) vs 2 jobs at once (hydra/launcher=parallel, 1 thread
          each). Not in the default set (minutes); ask for it with `--only sweep`.
  pack    a seeds sweep end to end with the basic launcher, joblib (2 jobs x 1 thread) and
          hydra/launcher=packed (the seeds trained together): 10 seeds at B=32 H=32, the demo,
          10 seeds at the demo's and at the course's size. Targets: packed <= 1/3 of basic and
          <= 1/2 of joblib at B=32 H=32; elsewhere packed <= 1/0.95 of basic. Then a pack's
          peak resident memory (stacked, loop) beside one run's (= K one after the other) and
          K side by side, each from a fresh process, and the launcher's estimate checked to
          bound what the pack added. Not in the default set (many minutes); `--only pack`,
          steps per run `--pack-steps` (the memory rows: 3 steps).

Every classifier is built by `rnn_experiments.training.setup` from the real config, and every
training step (the text-data row's generator too) is timed through
`rnn_experiments.training.step.make_step`, the step the training loop takes (on a GPU: replayed
from a CUDA graph unless --eager; the nn.LSTM baseline always runs eagerly).
"""
from __future__ import annotations

from rnn_experiments.cli.startup import require_cwd, startup_over

require_cwd("rnn-bench")   # before torch is imported (cli/startup.py)

import argparse
import os
import sys
from pathlib import Path

import torch

from rnn_experiments.cli.bench import timing
from rnn_experiments.cli.bench.machine import cpu_flags, cpu_kernels, cpu_model, library_versions
from rnn_experiments.cli.bench.packs import bench_pack
from rnn_experiments.cli.bench.pipeline import (BOOK, bench_analysis, bench_data, bench_memory, bench_run,
                                                bench_shared, bench_sweep)
from rnn_experiments.cli.bench.steps import QUICK_GRID, TRAIN_GRID, bench_gen, bench_train, train_summary
from rnn_experiments.data.text import read_text
from rnn_experiments.errors import ConfigError, check
from rnn_experiments.training.resources import available_cores
from rnn_experiments.training.setup import resolve_device


def print_table(rows, header):
    print(header)
    print(f"{'section':8s} {'case':38s} {'what':26s} {'median ms':>10s} {'ratio':>8s} "
          f"{'(of mins)':>9s}  target")
    for r in rows:
        ms = f"{r['median_ms']:10.2f}" if r["median_ms"] is not None else f"{'':10s}"
        ratio = f"{r['ratio']:8.2f}" if r["ratio"] is not None else f"{'':8s}"
        mins = f"{r['min_ratio']:9.2f}" if r.get("min_ratio") is not None else f"{'':9s}"
        what = f"{r['what']} [{r['impl']}]" if r.get("impl") else r["what"]   # the implementation chosen here
        print(f"{r['section']:8s} {r['case'][:38]:38s} {what[:26]:26s} {ms} {ratio} {mins}  {r['target']}")
    print("ratio: of the medians over repeats (chars/s for gen); (of mins): of the fastest repeats, the less noisy "
          "figure when other processes share the cores")
    for line in train_summary(rows):
        print(line)
    for r in rows:
        if r["section"] == "shared" and r.get("limit"):
            print(f"shared machine: {r['what']} {r['ratio']:.2f} x train.threads=1 ({r['case']}; target "
                  f"<= {r['limit']:g}): {'met' if r['ratio'] <= r['limit'] else 'missed'}")


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
    check(args.pack_steps >= 1, "--pack-steps", args.pack_steps, "an integer >= 1")
    check(args.run_steps >= 1, "--run-steps", args.run_steps, "an integer >= 1")
    check(args.shared_steps >= 1, "--shared-steps", args.shared_steps, "an integer >= 1")
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


def run(argv=None) -> list[dict]:
    """The command, in this process: prints the table, returns its rows."""
    ap = argparse.ArgumentParser(prog="rnn-bench", description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7, help="timed repeats per case (medians)")
    ap.add_argument("--quick", action="store_true",
                    help=f"3 repeats; train cases {', '.join(map(str, QUICK_GRID))} only")
    ap.add_argument("--only", choices=["train", "gen", "data", "memory", "analysis", "run", "sweep", "pack",
                                             "shared"], action="append",
                    help="run only these sections (repeatable)")
    ap.add_argument("--case", action="append", metavar="B,H,T",
                    help="train cases to time instead of the grid (repeatable), e.g. 128,32,81")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    ap.add_argument("--clock", choices=sorted(timing.CLOCKS), default="wall",
                    help="thread: time the train/gen/data repeats by this thread's CPU time, which "
                         "other processes do not inflate (needs --threads 1)")
    ap.add_argument("--plain", action="store_true", help="also time the plain autograd loop")
    ap.add_argument("--eager", action="store_true", help="on a GPU: no CUDA graphs for our models")
    ap.add_argument("--book", type=Path, default=None,
                    help=f"text file for the text-data row (default {BOOK}; without it the row is skipped)")
    ap.add_argument("--sweep-steps", type=int, default=400, help="steps per run of the sweep section")
    ap.add_argument("--pack-steps", type=int, default=200, help="steps per run of the pack section")
    ap.add_argument("--run-steps", type=int, default=300, help="steps of the run section's training run")
    ap.add_argument("--shared-steps", type=int, default=40, help="steps of the shared section's demo runs")
    args = ap.parse_args(argv)
    repeats = 3 if args.quick else args.repeats
    sections = args.only or ["train", "gen", "data", "memory", "analysis", "shared"]
    try:   # every argument checked before the first timed section (they take minutes)
        device = check_args(args, repeats, sections)
    except ConfigError as e:
        ap.exit(2, f"rnn-bench: error: {e}\n")
    if args.threads:
        torch.set_num_threads(args.threads)
    timing.set_clock(args.clock)
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
    if "shared" in sections:
        rows += bench_shared(args.shared_steps, repeats=1 if args.quick else 2)
    if "sweep" in sections:
        rows += bench_sweep(args.sweep_steps, 1 if args.quick else 2)
    if "pack" in sections:
        rows += bench_pack(args.pack_steps, 1 if args.quick else 2)
    load_end = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print_table(rows, f"{header}, at end {load_end}")
    return rows


def main(argv=None) -> int:
    startup_over()   # Ctrl-C: KeyboardInterrupt again (cli/startup.py)
    run(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
