"""`python -m rnn_experiments.plot_gradients PATH [PATH ...] --out gradients.png` (or
`rnn-plot-gradients`): seed-averaged gradient norms against the distance T - t, log scale, from
the gradients.csv files of a gradient-flow study (rnn_experiments/gradients/plot.py).
"""
from __future__ import annotations

from rnn_experiments.cli.startup import require_cwd, startup_over

require_cwd("rnn-plot-gradients")   # before torch is imported (cli/startup.py)

import argparse
import sys

from rnn_experiments.gradients.plot import check_out, load_gradients, plot_gradients


def main(argv=None) -> None:
    startup_over()   # Ctrl-C: KeyboardInterrupt again (cli/startup.py)
    ap = argparse.ArgumentParser(prog="rnn-plot-gradients", description="Plot a gradient-flow study.")
    ap.add_argument("paths", nargs="+", help="run or sweep folders holding gradients.csv (each must hold one)")
    ap.add_argument("--out", default="gradients.png",
                    help="figure to write; its suffix is the format (.png, .pdf, .svg; default: %(default)s)")
    args = ap.parse_args(argv)
    try:
        check_out(args.out)          # before reading anything
        df = load_gradients(args.paths)
        grid = plot_gradients(df, args.out)
    except (FileNotFoundError, ValueError) as e:  # a missing or damaged gradients.csv, a bad --out format
        print(f"rnn-plot-gradients: error: {e}", file=sys.stderr)
        sys.exit(2)
    except OSError as e:  # --out cannot be written
        print(f"rnn-plot-gradients: error: cannot write {args.out}: {e.strerror or e}", file=sys.stderr)
        sys.exit(2)
    print(f"wrote {args.out} ({df['model'].nunique()} models, {df['seed'].nunique()} seeds)"
          + (f"; left out, no positive norm: {', '.join(grid.left_out)}" if grid.left_out else ""))


if __name__ == "__main__":
    main()
