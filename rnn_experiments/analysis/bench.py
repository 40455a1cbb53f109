"""Benchmark: collect + tabulate 1,000 synthetic run folders (target: under 5 s).

    python -m rnn_experiments.analysis.bench [--runs 1000] [--steps 3000]

Each run has the palindrome study's shape: 300 metrics rows (3000 steps, a row every 10).
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from rnn_experiments.analysis import collect, group_keys, table, to_markdown
from rnn_experiments.analysis.synthetic import fake_sweep

TARGET_S = 5.0


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=1000)
    p.add_argument("--steps", type=int, default=3000)
    args = p.parse_args(argv)
    seeds = range(max(1, args.runs // 4))  # 2 models x 2 lengths x seeds
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        fake_sweep(Path(tmp) / "sweep", seeds=seeds, steps=args.steps)
        t_build = time.perf_counter() - t0
        t0 = time.perf_counter()
        df = collect(Path(tmp) / "sweep")
        t_collect = time.perf_counter() - t0
        t0 = time.perf_counter()
        t = table(df, group_keys(df))
        to_markdown(t)
        t_table = time.perf_counter() - t0
    n = df["run_dir"].nunique()
    total = t_collect + t_table
    print(f"built {n} run folders ({len(df)} metric rows) in {t_build:.1f} s")
    print(f"collect: {t_collect:.2f} s   table: {t_table:.2f} s   total: {total:.2f} s   "
          f"target: {TARGET_S:.0f} s   ratio total/target: {total / TARGET_S:.2f} "
          f"({'OK' if total < TARGET_S else 'SLOWER THAN TARGET'})")


if __name__ == "__main__":
    main()
