"""Metric vs step, one line per group: the mean over seeds with a ±1 std band (seaborn's
errorbar="sd", the same numbers as `aggregate`). Colour by the group keys, line style by `style`.

Figures are built without pyplot (no GUI backend, safe in a Hydra callback or on a cluster) and
sized for one report column (3.5 x 2.6 inches). The legend sits inside the axes for up to four
short entries and beside the plot otherwise, so it never covers a curve.
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
LEGEND_INSIDE_MAX = 4  # legend entries drawn inside the axes; more (or longer labels) go beside the plot
LEGEND_LABEL_MAX = 20  # characters of the longest label drawn inside


def default_style(by: list[str]) -> str | None:
    """Line style separates sequence lengths when there is something else to colour by."""
    return "dataset.seq_length" if "dataset.seq_length" in by and len(by) > 1 else None


def _label(keys: list[str], row) -> str:
    if len(keys) == 1:
        return str(row[keys[0]])
    return ", ".join(f"{k.split('.')[-1]}={row[k]}" for k in keys)


def plot_curves(df: pd.DataFrame, metric: str = "accuracy", by=None, style: str | None = "auto",
                panels: str | None = None, ax=None) -> Figure:
    """The figure of `metric` vs step per group (mean ± std over seeds); returns the Figure.

    by: group keys (None: every varying config key but seed); style: the key drawn as line
    style ("auto": dataset.seq_length when it is one of several group keys and `panels` is not
    set; None: colour only); panels: a group key drawn as side-by-side panels (one per value).
    """
    by = check_keys(df, by)
    check_metric(df, metric)
    for name, key in (("--style", style), ("--panels", panels)):
        if key not in (None, "auto") and key not in by:
            raise ValueError(f"{name}: {key!r} must be one of the group keys {by}")
    if style == "auto":
        style = default_style([k for k in by if k != panels])
    hue_keys = [k for k in by if k not in (style, panels)]
    d = df.dropna(subset=["step", metric]).copy()
    if d.empty:
        raise ValueError(f"no run has logged {metric!r} yet")
    runs = d.drop_duplicates("run_dir").set_index("run_dir")
    labels = {r: _label(hue_keys, row) for r, row in runs.iterrows()} if hue_keys else {}
    d["_hue"] = d["run_dir"].map(labels) if hue_keys else "all runs"  # a label per run, not per row
    d["_style"] = d[style].map(lambda v: f"{style.split('.')[-1]}={v}") if style else None
    n_seeds = d.groupby(by, dropna=False)["run_dir"].nunique() if by else pd.Series([d["run_dir"].nunique()])
    n_text = str(n_seeds.iloc[0]) if n_seeds.nunique() == 1 else f"{n_seeds.min()}–{n_seeds.max()}"
    hue_order = sorted(d["_hue"].unique())
    palette = dict(zip(hue_order, sns.color_palette(n_colors=len(hue_order))))  # same in every panel
    style_order = sorted(d["_style"].unique(), key=_num_key) if style else None
    values = sorted(d[panels].unique(), key=lambda v: _num_key(f"={v}")) if panels else [None]

    if ax is None:
        width = FIGSIZE[0] if len(values) == 1 else min(7.0, 2.4 * len(values))
        fig = Figure(figsize=(width, FIGSIZE[1]), layout="constrained")
        axes = fig.subplots(1, len(values), sharey=True, squeeze=False)[0]
    elif len(values) == 1:
        fig, axes = ax.figure, [ax]
    else:
        raise ValueError("panels need a new figure (leave ax out)")
    with sns.plotting_context("paper", font_scale=0.8), sns.axes_style("whitegrid"):
        for i, (a, v) in enumerate(zip(axes, values)):
            sub = d if panels is None else d[d[panels] == v]
            sns.lineplot(data=sub, x="step", y=metric, hue="_hue", hue_order=hue_order,
                         palette=palette, style="_style" if style else None, style_order=style_order,
                         estimator="mean", errorbar="sd", err_kws={"alpha": 0.2, "linewidth": 0},
                         linewidth=1.0, ax=a, legend=i == len(values) - 1)
            a.set_xlabel("training step")
            a.set_ylabel(YLABELS.get(metric, metric))
            if panels is not None:
                a.set_title(f"{panels.split('.')[-1]} = {v}", fontsize=7)
            a.grid(True, linewidth=0.4, alpha=0.5)
        if "accuracy" in metric:  # a fraction: mean + std may pass 1, the axis need not
            axes[0].set_ylim(top=min(axes[0].get_ylim()[1], 1.02))
        # a legend that would cover the curves (many groups, long labels) goes right of the plot
        entries = hue_order + (style_order or [])
        outside = len(entries) > LEGEND_INSIDE_MAX or max(map(len, entries)) > LEGEND_LABEL_MAX
        where = (dict(loc="upper left", bbox_to_anchor=(1.02, 1.0)) if outside else
                 dict(loc="upper right" if "loss" in metric else "lower right"))
        sns.move_legend(axes[-1], **where,
                        title=f"mean ± std over {n_text} seed{'' if n_text == '1' else 's'}", fontsize=6, title_fontsize=6,
                        frameon=True)
        if outside:  # kept out of the constrained layout (it would squeeze the axes); saved by bbox_inches
            axes[-1].get_legend().set_in_layout(False)
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
        legends = [a.get_legend() for a in fig.axes if a.get_legend() is not None]
        fig.savefig(path, dpi=dpi, bbox_inches="tight", bbox_extra_artists=legends)  # one beside the plot too
        paths.append(path)
    return paths
