"""Metric vs step, one line per group: the mean over seeds with a ±1 std band (the numbers of
`aggregate`: sample std, ddof = 1), optionally each seed's own curve as a thin line under it
(`seeds_lines`). Colour by the group keys, line style by `style`, panels by `panels`.

What a reader needs without the docs comes from quantities.py: the y label with its unit
("held-out loss (nats)"), bands cut to the metric's range (an accuracy band never passes 1, a
loss band never goes below 0; on a log axis, where std >= mean, its lower edge is the lowest
seed's value), losses on a logarithmic axis (`log_loss=False`: linear). The
legend names the colour key in its title and what the band is ("mean ± std over 3 seeds"; "1
run" where a group has a single run, which gets no band); style entries and panel titles read
`key=value`.

Figures are built without pyplot (no GUI backend, safe in a Hydra callback or on a cluster) and
sized for one report column (3.5 x 2.6 inches). The legend sits inside the axes for up to four
short entries and beside the plot otherwise, so it never covers a curve. A curve of more than
MAX_POINTS logged steps is drawn through every k-th of them (the means there are exact): a
2,000,000-row metrics.csv plots in seconds.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from rnn_experiments.analysis.aggregate import aggregate, check_keys, check_metric
from rnn_experiments.analysis.quantities import metric as metric_info

FIGSIZE = (3.5, 2.6)  # inches: one column of a two-column report
LEGEND_INSIDE_MAX = 4  # legend entries drawn inside the axes; more (or longer labels) go beside the plot
LEGEND_LABEL_MAX = 20  # characters of the longest label drawn inside
MAX_POINTS = 2000      # points per curve; more than the 700 pixels of a 3.5-inch plot at 200 dpi
LINESTYLES = ["-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3))]
YLABELS = {m: metric_info(m).label for m in ("accuracy", "eval_accuracy", "loss", "eval_loss",
                                             "eval_bpc", "lr", "examples_per_s", "elapsed_s")}


def default_style(by: list[str]) -> str | None:
    """Line style separates sequence lengths when there is something else to colour by."""
    return "dataset.seq_length" if "dataset.seq_length" in by and len(by) > 1 else None


def _short(key: str) -> str:
    return key.split(".")[-1]


def _label(keys: list[str], values: tuple) -> str:
    """The colour legend's entry: the value for one key (the key is the legend's title), else
    `key=value` pairs."""
    if len(keys) == 1:
        return str(values[0])
    return ", ".join(f"{_short(k)}={v}" for k, v in zip(keys, values))


def _num_key(label: str):
    value = str(label).split("=")[-1]
    try:
        return (0, float(value), str(label))
    except ValueError:
        return (1, 0.0, str(label))


def _thin(frame: pd.DataFrame) -> pd.DataFrame:
    """Every k-th row (and the last) of a curve longer than MAX_POINTS."""
    if len(frame) <= MAX_POINTS:
        return frame
    k = math.ceil(len(frame) / MAX_POINTS)
    keep = np.zeros(len(frame), dtype=bool)
    keep[::k] = True
    keep[-1] = True
    return frame[keep]


def _band_text(n_runs: pd.Series, seeds_lines: bool) -> str:
    lo, hi = int(n_runs.min()), int(n_runs.max())
    if hi == 1:
        text = "1 run" if len(n_runs) == 1 else "1 run each"
    elif lo == hi:
        text = f"mean ± std over {hi} seeds"
    else:
        text = f"mean ± std over {lo}–{hi} seeds" + (" (1 run: no band)" if lo == 1 else "")
    return text + ("\nthin lines: single seeds" if seeds_lines and hi > 1 else "")


def plot_curves(df: pd.DataFrame, metric: str = "accuracy", by=None, style: str | None = "auto",
                panels: str | None = None, ax=None, seeds_lines: bool = False,
                log_loss: bool = True) -> Figure:
    """The figure of `metric` vs step per group (mean ± std over seeds); returns the Figure.

    by: group keys (None: every varying config key but seed); style: the key drawn as line
    style ("auto": dataset.seq_length when it is one of several group keys and `panels` is not
    set; None: colour only); panels: a group key drawn as side-by-side panels (one per value);
    seeds_lines: each run's curve as a thin line under the band; log_loss: a metric drawn on a
    log axis by default (losses, quantities.py) stays so (False: linear).
    ValueError for a style or panels key that is not a group key ("--style: ..."), or a metric
    no run has logged.
    """
    by = check_keys(df, by)
    check_metric(df, metric)
    for name, key in (("--style", style), ("--panels", panels)):
        if key not in (None, "auto") and key not in by:
            raise ValueError(f"{name}: {key!r} must be one of the group keys {by}")
    if style == "auto":
        style = default_style([k for k in by if k != panels])
    hue_keys = [k for k in by if k not in (style, panels)]
    d = df.dropna(subset=["step", metric])
    if d.empty:
        raise ValueError(f"no run has logged {metric!r} yet")
    q = metric_info(metric)
    log = log_loss and q.log
    agg = aggregate(d, by, metric)
    agg["min"] = d.groupby(by + ["step"], dropna=False, sort=True)[metric].min().to_numpy()
    n_runs = d.groupby(by, dropna=False)["run_dir"].nunique() if by else pd.Series([d["run_dir"].nunique()])

    groups = list(agg.groupby(by, dropna=False, sort=False)) if by else [((), agg)]
    groups = [(k if isinstance(k, tuple) else (k,), g) for k, g in groups]
    value = lambda key, k: k[by.index(key)]  # noqa: E731
    band = _band_text(n_runs, seeds_lines)
    hue_of = lambda k: _label(hue_keys, tuple(value(h, k) for h in hue_keys)) if hue_keys else band  # noqa: E731
    style_of = lambda k: f"{_short(style)}={value(style, k)}" if style else None  # noqa: E731
    hue_order = sorted({hue_of(k) for k, _ in groups}, key=_num_key)
    colours = dict(zip(hue_order, sns.color_palette(n_colors=len(hue_order))))  # same in every panel
    style_order = sorted({style_of(k) for k, _ in groups}, key=_num_key) if style else []
    dashes = {s: LINESTYLES[i % len(LINESTYLES)] for i, s in enumerate(style_order)}
    panel_values = sorted({value(panels, k) for k, _ in groups}, key=lambda v: _num_key(f"={v}")) \
        if panels else [None]

    with sns.plotting_context("paper", font_scale=0.8), sns.axes_style("whitegrid"):
        if ax is None:
            width = FIGSIZE[0] if len(panel_values) == 1 else min(7.0, 2.4 * len(panel_values))
            fig = Figure(figsize=(width, FIGSIZE[1]), layout="constrained")
            axes = list(fig.subplots(1, len(panel_values), sharey=True, squeeze=False)[0])
        elif len(panel_values) == 1:
            fig, axes = ax.figure, [ax]
        else:
            raise ValueError("panels need a new figure (leave ax out)")
        where = lambda k: axes[panel_values.index(value(panels, k))] if panels else axes[0]  # noqa: E731
        if seeds_lines:   # under the bands and means
            for k, run in d.groupby(by + ["run_dir"], dropna=False, sort=False):
                k = k[:len(by)]
                run = _thin(run)
                where(k).plot(run["step"], run[metric], color=colours[hue_of(k)],
                              linestyle=dashes.get(style_of(k), "-"), linewidth=0.4, alpha=0.45, zorder=1)
        for k, g in groups:
            a, colour, dash = where(k), colours[hue_of(k)], dashes.get(style_of(k), "-")
            g = _thin(g)
            a.plot(g["step"], g["mean"], color=colour, linestyle=dash, linewidth=1.0, zorder=3)
            if (g["n"] > 1).any():
                low, high = (np.clip(g["mean"] + sign * g["std"], *q.bounds) for sign in (-1, 1))
                if log:   # std >= mean: no lower edge on a log axis; cut at the lowest seed's value
                    low = np.where(low > 0, low, g["min"].where(g["min"] > 0))
                a.fill_between(g["step"], low, high, color=colour, alpha=0.2, linewidth=0, zorder=2)
        for a, v in zip(axes, panel_values):
            a.set_xlabel("training step")
            if log:
                a.set_yscale("log")
            if panels is not None:
                a.set_title(f"{_short(panels)}={v}", fontsize=7)
            a.grid(True, linewidth=0.4, alpha=0.5)
        axes[0].set_ylabel(q.label)
        if not log:   # a band is cut to the range; so is the axis, with a margin
            low, high = axes[0].get_ylim()
            margin = 0.02 * (q.bounds[1] - q.bounds[0]) if np.isfinite(q.bounds).all() else 0.0
            axes[0].set_ylim(max(low, q.bounds[0] - margin), min(high, q.bounds[1] + margin))
        _legend(axes[-1], hue_keys, hue_order, colours, style_order, dashes,
                band if hue_keys else None, "loss" in metric or q.better == "lower")
    return fig


def _legend(ax, hue_keys, hue_order, colours, style_order, dashes, band: str, upper: bool) -> None:
    """The colour entries (titled by their key), then the line-style entries (key=value); the
    title says what the lines and bands are (without colour keys the one colour entry says it,
    band=None). Inside the axes when short, else beside them."""
    handles = [Line2D([], [], color=colours[h], linewidth=1.0, label=h) for h in hue_order]
    handles += [Line2D([], [], color="0.3", linestyle=dashes[s], linewidth=1.0, label=s) for s in style_order]
    title = f"{hue_keys[0]}\n{band}" if len(hue_keys) == 1 and band else band
    labels = [h.get_label() for h in handles]
    measured = labels if band else labels[1:] or [""]    # the band's own entry may be longer
    outside = len(labels) > LEGEND_INSIDE_MAX or max(map(len, measured)) > LEGEND_LABEL_MAX
    where = (dict(loc="upper left", bbox_to_anchor=(1.02, 1.0)) if outside else
             dict(loc="upper right" if upper else "lower right"))
    legend = ax.legend(handles=handles, title=title, fontsize=6, title_fontsize=6, frameon=True, **where)
    if outside:  # kept out of the constrained layout (it would squeeze the axes); saved by bbox_inches
        legend.set_in_layout(False)


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
