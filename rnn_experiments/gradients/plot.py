"""Plot a gradient-flow study: seed-averaged gradient norm against the distance T - t, log y.

    python -m rnn_experiments.plot_gradients multirun/<date>/<time>_gradients [more folders] \
        --out gradients.png

Every `gradients.csv` under the given folders is read; one panel per (quantity, training step),
a line per model: the mean over seeds, with the range over seeds as a band (a ± sd band would
cross zero on the log axis). Zero norms (the peephole LSTM's ∂L/∂h_t for t < T, see measure.py)
cannot be drawn on a log axis and are left out.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

QUANTITIES = {"grad_norm": "‖∂L/∂h_t‖", "input_grad_norm": "‖∂L/∂x_t‖"}


def load_gradients(paths) -> pd.DataFrame:
    """All gradients.csv files under `paths` (folders or files), concatenated."""
    files = []
    for p in map(Path, paths):
        if p.is_file():
            files.append(p)
        elif p.is_dir():
            files += sorted(p.rglob("gradients.csv"))
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    if not files:
        raise FileNotFoundError(f"no gradients.csv under {', '.join(map(str, paths))}")
    return pd.concat([_read(f) for f in files], ignore_index=True)


def _read(path: Path) -> pd.DataFrame:
    """One gradients.csv; ValueError naming it when it is not one."""
    try:
        df = pd.read_csv(path)
        missing = [c for c in ("step", "distance", "model", "seed", *QUANTITIES) if c not in df.columns]
        if missing:
            raise ValueError(f"no column {', '.join(missing)}")
        for c in ("step", "distance", *QUANTITIES):
            df[c] = pd.to_numeric(df[c])
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as e:
        raise ValueError(f"{path}: not a readable gradients.csv ({str(e).splitlines()[0]})") from None
    return df


def plot_gradients(df: pd.DataFrame, out, quantities=tuple(QUANTITIES)):
    """df: rows of gradients.csv -> a PNG at `out`; returns the seaborn FacetGrid."""
    long = df.melt(id_vars=["step", "distance", "model", "seed"], value_vars=list(quantities),
                   var_name="quantity", value_name="norm")
    long = long[long["norm"] > 0]
    long["quantity"] = long["quantity"].map(QUANTITIES)
    grid = sns.relplot(data=long, x="distance", y="norm", hue="model", row="quantity", col="step",
                       kind="line", errorbar=("pi", 100), height=3, aspect=1.2,
                       facet_kws={"sharey": "row"})
    grid.set(yscale="log")
    grid.set_axis_labels("distance T − t", "mean gradient norm")
    grid.set_titles("{row_name}, step {col_name}")
    grid.savefig(out, dpi=120)
    return grid
