"""Metric vs step, one line per group: the mean over seeds with a ±1 std band (seaborn's
errorbar="sd", the same numbers as `aggregate`). Colour by the group keys, line style by `style`.

Figures are built without pyplot (no GUI backend, safe in a Hydra callback or on a cluster) and
sized for one report column (3.5 x 2.6 inches).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from rnn_experiments.analysis.aggregate import check_keys, check_metric

YLABELS = {
    "accuracy": "training accuracy (fraction)",
    "eval_accuracy": "held-out accuracy (fraction)",
    "loss": "training loss (NLL, nats)",
    "lr": "learning rate",
    "examples_per_s": "throughput (examples/s)",
    "elapsed_s": "elapsed time (s)",
}
FIGSIZE = (3.5, 2.6)  # inches: one column of a two-column report


def default_style(by: list[str]) -> str | None:
    """Line style separates sequence lengths when there is something else to colour by."""
    return "dataset.seq_length" if "dataset.seq_length" in by and len(by) > 1 else None


def _label(keys: list[str], row) -> str:
    if len(keys) == 1:
        return str(row[keys[0]])
    return ", ".join(f"{k.split('.')[-1]}={row[k]}" for k in keys)


def plot_curves(df: pd.DataFrame, metric: str = "accuracy", by=None, style: str | None = "auto",
                ax=None) -> Figure:
    """The figure of `metric` vs step per group (mean ± std over seeds); returns the Figure.

    by: group keys (None: every varying config key but seed); style: the key drawn as line
    style ("auto": dataset.seq_length when it is one of several group keys; None: colour only).
    """
    by = check_keys(df, by)
    check_metric(df, metric)
    if style == "auto":
        style = default_style(by)
    if style is not None and style not in by:
        raise ValueError(f"--style: {style!r} must be one of the group keys {by}")
    hue_keys = [k for k in by if k != style]
    d = df.dropna(subset=["step", metric]).copy()
    if d.empty:
        raise ValueError(f"no run has logged {metric!r} yet")
    runs = d.drop_duplicates("run_dir").set_index("run_dir")
    labels = {r: _label(hue_keys, row) for r, row in runs.iterrows()} if hue_keys else {}
    d["_hue"] = d["run_dir"].map(labels) if hue_keys else "all runs"  # a label per run, not per row
    d["_style"] = d[style].map(lambda v: f"{style.split('.')[-1]}={v}") if style else None
    n_seeds = d.groupby(by, dropna=False)["run_dir"].nunique() if by else pd.Series([d["run_dir"].nunique()])
    n_text = str(n_seeds.iloc[0]) if n_seeds.nunique() == 1 else f"{n_seeds.min()}–{n_seeds.max()}"

    if ax is None:
        fig = Figure(figsize=FIGSIZE, layout="constrained")
        ax = fig.subplots()
    else:
        fig = ax.figure
    with sns.plotting_context("paper", font_scale=0.8), sns.axes_style("whitegrid"):
        sns.lineplot(data=d, x="step", y=metric, hue="_hue", hue_order=sorted(d["_hue"].unique()),
                     style="_style" if style else None,
                     style_order=sorted(d["_style"].unique(), key=_num_key) if style else None,
                     estimator="mean", errorbar="sd", err_kws={"alpha": 0.2, "linewidth": 0},
                     linewidth=1.0, ax=ax)
        ax.set_xlabel("training step")
        ax.set_ylabel(YLABELS.get(metric, metric))
        ax.grid(True, linewidth=0.4, alpha=0.5)
        sns.move_legend(ax, "upper right" if "loss" in metric else "lower right",
                        title=f"mean ± std over {n_text} seeds", fontsize=6, title_fontsize=6,
                        frameon=True)
    return fig


def _num_key(label: str):
    value = label.split("=")[-1]
    try:
        return (0, float(value), label)
    except ValueError:
        return (1, 0.0, label)


def save_figure(fig: Figure, stem: Path, formats=("png", "pdf"), dpi: int = 200) -> list[Path]:
    """stem.png, stem.pdf, ...: the paths written."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        fig.savefig(path, dpi=dpi)
        paths.append(path)
    return paths
