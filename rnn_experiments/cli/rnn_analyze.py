"""`python -m rnn_experiments.analyze PATH [PATH ...] [--flags]` (or `rnn-analyze`): seed-averaged
plots and comparison tables from run folders (rnn_experiments/analysis/report.py does the work).

    python -m rnn_experiments.analyze multirun/2026-11-25/12-00-00-000000_demo
    rnn-analyze 'multirun/2026-11-25/*' --by model.name,dataset.seq_length --compare model.name
"""
from __future__ import annotations

from rnn_experiments.cli.startup import require_cwd, startup_over

require_cwd("rnn-analyze")   # before torch is imported (cli/startup.py)

import argparse
import sys

from rnn_experiments.analysis.collect import AnalysisError
from rnn_experiments.analysis.report import DEFAULT_METRICS, analyze
from rnn_experiments.sweeps.search.report import extra_for


def _csv(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="rnn-analyze",
        description="Seed-averaged plots (mean ± std, or the 95 % interval of the mean) and comparison "
                    "tables from run folders.",
        epilog="example: python -m rnn_experiments.analyze multirun/2026-11-25/12-00-00-000000_demo "
               "--by model.name --threshold 0.95")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="a multirun folder, a run folder, or a glob (quote it) of either")
    p.add_argument("--metrics", type=_csv, default=list(DEFAULT_METRICS), metavar="M1,M2",
                   help="metrics.csv columns to plot, one figure each (default: %(default)s)")
    p.add_argument("--by", type=_csv, default=None, metavar="KEY1,KEY2",
                   help="config keys that define a group (default: every key that varies, except seed)")
    p.add_argument("--style", default="auto", metavar="KEY",
                   help="group key drawn as line style; 'none' for colour only (default: "
                        "dataset.seq_length when it is one of several group keys)")
    p.add_argument("--panels", default=None, metavar="KEY",
                   help="group key drawn as side-by-side panels, one per value (default: none)")
    p.add_argument("--compare", default=None, metavar="KEY",
                   help="config key whose values are compared pair by pair within each group of the "
                        "other keys: A - B per statistic, paired by seed where the runs share seeds "
                        "(paired t, Wilcoxon) else Welch's t and Mann-Whitney, bootstrap interval, "
                        "Holm-corrected p, P(A better), seeds for 80%% power -> compare.csv/.md/.tex "
                        "(default: none)")
    p.add_argument("--where", action="append", default=[], metavar="KEY=VALUE",
                   help="analyse only the runs with this setting (repeatable), e.g. "
                        "model.reset_at_padding=true")
    p.add_argument("--threshold", type=float, default=0.99,
                   help="'steps to reach' counts the first step with accuracy >= this (default: %(default)s)")
    p.add_argument("--threshold-metric", default="accuracy", metavar="M",
                   help="metric the threshold applies to (default: %(default)s)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default: PATH/analysis/ for one multirun folder or a folder of "
                        "them; needed for a run folder, a glob or several PATHs inside one sweep)")
    p.add_argument("--max-step", type=int, default=None, metavar="N",
                   help="plot only steps <= N (the tables still use every step)")
    p.add_argument("--formats", type=_csv, default=["png", "pdf"], metavar="F1,F2",
                   help="figure formats (default: png,pdf)")
    p.add_argument("--seeds-lines", action="store_true",
                   help="draw each seed's curve as a thin line under the mean and its band")
    p.add_argument("--band", default="std", metavar="std|ci95",
                   help="the band around each mean: std (mean ± 1 sample std over seeds) or ci95 (the "
                        "95%% t interval of the mean, mean ± t(0.975, n-1)·s/√n) (default: %(default)s)")
    p.add_argument("--linear-loss", action="store_true",
                   help="losses on a linear axis (default: logarithmic)")
    p.add_argument("--keep-runs", action="store_true",
                   help="copy the run folders analysed (metrics.csv, summary.json, .hydra/; no "
                        "checkpoints) into DIR/runs/, so that the tables can be re-analysed later")
    return p


def main(argv=None) -> int:
    startup_over()   # Ctrl-C: KeyboardInterrupt again (cli/startup.py)
    args = parser().parse_args(argv)
    style = None if args.style.lower() == "none" else args.style
    metrics = tuple(args.metrics) if args.metrics != list(DEFAULT_METRICS) else DEFAULT_METRICS
    try:
        analyze(args.paths, metrics, args.by, style, args.threshold, args.threshold_metric,
                args.out, tuple(args.formats), args.panels, max_step=args.max_step, compare=args.compare,
                seeds_lines=args.seeds_lines, log_loss=not args.linear_loss, keep_runs=args.keep_runs,
                where=args.where, band=args.band, extra=extra_for(args.paths, formats=tuple(args.formats)))
    except AnalysisError as e:
        print(f"rnn-analyze: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # --out cannot be written (read-only, full, a file in the way, ...)
        print(f"rnn-analyze: error: cannot write the analysis: {e.strerror or e}: {e.filename or args.out}",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
