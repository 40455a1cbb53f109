"""Plot a gradient-flow study: seed-averaged gradient norm against the distance T - t, log y.

    python -m rnn_experiments.plot_gradients multirun/<date>/<time>_gradients [more folders] \
        --out gradients.png

Every `gradients.csv` under the given folders is read (each folder given must hold one); one
panel per (quantity, training step), a line per model: the mean over seeds, with the range over
seeds as a band (a ± sd band would cross zero on the log axis). Zero norms (the peephole LSTM's
∂L/∂h_t for t < T, see measure.py) cannot be drawn on a log axis and are left out; a quantity
with no positive norm at all has no panel, and `plot_gradients` says which it left out.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.backend_bases import FigureCanvasBase  # noqa: E402

from rnn_experiments.run.readers import read_text  # noqa: E402
from rnn_experiments.run.folder import atomic_write  # noqa: E402

QUANTITIES = {"grad_norm": "‖∂L/∂h_t‖", "input_grad_norm": "‖∂L/∂x_t‖"}


def load_gradients(paths) -> pd.DataFrame:
    """All gradients.csv files under `paths` (folders or files), concatenated.
    FileNotFoundError naming a path that does not exist or a folder that holds none."""
    files = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.rglob("gradients.csv"))
            if not found:
                raise FileNotFoundError(f"{p}: no gradients.csv under it")
            files += found
        elif os.path.lexists(p):
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    if not files:
        raise FileNotFoundError(f"no gradients.csv under {', '.join(map(str, paths))}")
    return pd.concat([_read(f) for f in files], ignore_index=True)


def check_out(out) -> Path:
    """--out as a Path: ValueError unless it names a file (not a folder, not empty) whose suffix
    is a figure format matplotlib writes (.png, .pdf, .svg, ...)."""
    if not str(out).strip():
        raise ValueError(f"--out {str(out)!r}: an empty path, expected a figure file such as gradients.png")
    path = Path(out)
    if path.is_dir():
        raise ValueError(f"--out {path}: a folder, expected a figure file such as {path / 'gradients.png'}")
    if os.path.lexists(path) and not path.is_file():
        raise ValueError(f"--out {path}: not a regular file, expected a figure file")
    supported = FigureCanvasBase.get_supported_filetypes()
    if path.suffix.lstrip(".").lower() not in supported:
        raise ValueError(f"--out {path}: expected a file name ending in a figure format "
                         f"(.{', .'.join(sorted(supported))})")
    return path


def _read(path: Path) -> pd.DataFrame:
    """One gradients.csv; ValueError naming it when it is not one (or not a regular file)."""
    try:
        df = pd.read_csv(io.StringIO(read_text(path)))
        missing = [c for c in ("step", "distance", "model", "seed", *QUANTITIES) if c not in df.columns]
        if missing:
            raise ValueError(f"no column {', '.join(missing)}")
        for c in ("step", "distance", *QUANTITIES):
            df[c] = pd.to_numeric(df[c])
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as e:
        raise ValueError(f"{path}: not a readable gradients.csv ({str(e).splitlines()[0]})") from None
    return df


def plot_gradients(df: pd.DataFrame, out, quantities=tuple(QUANTITIES)):
    """df: rows of gradients.csv -> a figure at `out` (its suffix names the format; written
    atomically); returns the seaborn FacetGrid, whose `left_out` lists the quantities without a
    positive norm. ValueError when no norm at all is positive."""
    out = check_out(out)
    long = df.melt(id_vars=["step", "distance", "model", "seed"], value_vars=list(quantities),
                   var_name="quantity", value_name="norm")
    long = long[long["norm"] > 0]
    left_out = [QUANTITIES[q] for q in quantities if q not in set(long["quantity"])]
    if long.empty:
        raise ValueError(f"no positive gradient norm to draw on a log axis (every {', '.join(left_out)} is 0)")
    long["quantity"] = long["quantity"].map(QUANTITIES)
    grid = sns.relplot(data=long, x="distance", y="norm", hue="model", row="quantity", col="step",
                       kind="line", errorbar=("pi", 100), height=3, aspect=1.2,
                       facet_kws={"sharey": "row"})
    grid.set(yscale="log")
    grid.set_axis_labels("distance T − t", "mean gradient norm")
    grid.set_titles("{row_name}, step {col_name}")
    with atomic_write(out, "wb") as f:
        grid.savefig(f, dpi=120, format=out.suffix.lstrip(".").lower())
    grid.left_out = left_out
    return grid
