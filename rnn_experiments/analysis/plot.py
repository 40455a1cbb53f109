"""Metric vs step, one line per group: the mean over seeds with a band, ±1 std by default (the
numbers of `aggregate`: sample std, ddof = 1) or the 95 % t interval of the mean (`band="ci95"`:
mean ± t_{0.975, n-1} · s / sqrt(n), aggregate.ci_half_width), optionally each seed's own curve
as a thin line under it (`seeds_lines`). Every condition (the group keys but `panels`) has its
own colour, and so its own band colour; `style` adds line style as a second cue (with other
keys to colour by, the colours of one value of theirs are shades of one hue); panels by `panels`.

What a reader needs without the docs comes from quantities.py: the y label with its unit
("held-out loss (nats)"), bands cut to the metric's range (an accuracy band never passes 1, a
loss band never goes below 0; on a log axis, where the lower edge would be <= 0, its lower edge is
the lowest seed's value), losses on a logarithmic axis (`log_loss=False`: linear), ticks of a log
axis that spans less than a decade in plain decimals (0.6, 0.8, not 6×10⁻¹). Accuracy plots
draw the chance level of the runs' task (the accuracy of always predicting the most frequent
class, chance.py), labelled. The legend says what the band is ("mean ± 1 std over 3 seeds",
"mean, 95 % CI over 3 seeds"; "1 run" where a group has a single run, which gets no band) and
names a single colour key in its title; entries read `value` for a part's name and
`key=value` otherwise.

Figures are built without pyplot (no GUI backend, safe in a Hydra callback or on a cluster) and
sized for one report column (3.5 inches wide); the legend sits below the axes, outside the data
(beside them for an `ax` the caller gives). A curve of more than MAX_POINTS logged steps is
drawn through every k-th of them (the means there are exact): a 2,000,000-row metrics.csv
plots in seconds.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import LogFormatterSciNotation

from rnn_experiments.analysis.aggregate import aggregate, check_keys, check_metric, ci_half_width
from rnn_experiments.analysis.chance import CHANCE_METRICS, chance_accuracy
from rnn_experiments.analysis.quantities import metric as metric_info

FIGSIZE = (3.5, 2.6)  # inches: one column of a two-column report (the axes; the legend adds rows below)
LEGEND_ROW = 0.13     # inches per legend row (6-point text)
LEGEND_HANDLE, LEGEND_CHAR, LEGEND_GAP = 0.4, 0.042, 0.17   # inches: a legend entry's handle, a character
                                                            # of its 6-point label, between columns
MAX_POINTS = 2000     # points per curve; more than the 700 pixels of a 3.5-inch plot at 200 dpi
LINESTYLES = ["-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3))]
CHANCE_STYLE = dict(color="0.35", linestyle=(0, (1, 1.5)), linewidth=0.9)
PLAIN_DECADES, PLAIN_RANGE = 3, (1e-3, 1e4)   # log axes: plain decimal tick labels within these
BANDS = {"std": "mean ± 1 std", "ci95": "mean, 95 % CI"}   # band= -> what the legend calls it
YLABELS = {m: metric_info(m).label for m in ("accuracy", "eval_accuracy", "loss", "eval_loss",
                                             "eval_bpc", "lr", "examples_per_s", "elapsed_s")}


def check_band(band: str, option: str = "--band") -> None:
    """ValueError (one line, naming `option`) for a band that is not one of BANDS."""
    if band not in BANDS:
        raise ValueError(f"{option} {band!r} is invalid: expected one of {', '.join(BANDS)} "
                         "(±1 std over seeds; the 95 % t interval of the mean)")


def default_style(by: list[str]) -> str | None:
    """Line style separates sequence lengths when there is something else to colour by."""
    return "dataset.seq_length" if "dataset.seq_length" in by and len(by) > 1 else None


def _short(key: str) -> str:
    return key.split(".")[-1]


def _label(keys: list[str], values: tuple) -> str:
    """A condition's legend entry: the value for one key (the key is the legend's title), else
    the value of a part's name (`lstm`) and `key=value` for the others."""
    if len(keys) == 1:
        return str(values[0])
    return ", ".join(str(v) if k.endswith(".name") else f"{_short(k)}={v}" for k, v in zip(keys, values))


def _num_key(label: str):
    value = str(label).split("=")[-1]
    try:
        return (0, float(value), str(label))
    except ValueError:
        return (1, 0.0, str(label))


def _order(values: tuple) -> tuple:
    return tuple(_num_key(f"={v}") for v in values)


def _thin(frame: pd.DataFrame) -> pd.DataFrame:
    """Every k-th row (and the last) of a curve longer than MAX_POINTS."""
    if len(frame) <= MAX_POINTS:
        return frame
    k = math.ceil(len(frame) / MAX_POINTS)
    keep = np.zeros(len(frame), dtype=bool)
    keep[::k] = True
    keep[-1] = True
    return frame[keep]


def _band_text(n_runs: pd.Series, seeds_lines: bool, band: str = "std") -> str:
    lo, hi = int(n_runs.min()), int(n_runs.max())
    if hi == 1:
        text = "1 run" if len(n_runs) == 1 else "1 run each"
    elif lo == hi:
        text = f"{BANDS[band]} over {hi} seeds"
    else:
        text = f"{BANDS[band]} over {lo}–{hi} seeds" + (" (1 run: no band)" if lo == 1 else "")
    return text + ("\nthin lines: single seeds" if seeds_lines and hi > 1 else "")


def band_edges(g: pd.DataFrame, band: str, bounds, log: bool) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) edge of a group's band at each of its steps (g: `aggregate` rows plus the
    lowest seed's value, "min"): mean ± std (band "std") or mean ± t_{0.975, n-1} · std / sqrt(n)
    ("ci95"), cut to `bounds`; on a log axis a lower edge <= 0 becomes the lowest seed's value."""
    half = g["std"].to_numpy() if band == "std" else ci_half_width(g["std"], g["n"])
    low, high = (np.clip(g["mean"].to_numpy() + sign * half, *bounds) for sign in (-1, 1))
    if log:   # no lower edge on a log axis: cut at the lowest seed's value
        low = np.where(low > 0, low, g["min"].where(g["min"] > 0).to_numpy())
    return low, high


def _shades(colour, k: int) -> list:
    """k distinct shades of one colour, dark to light (k = 1: the colour itself)."""
    c = np.asarray(colour, dtype=float)
    return [tuple(c * (1 + t) if t < 0 else c + (1 - c) * t) for t in np.linspace(-0.35, 0.45, k)] \
        if k > 1 else [tuple(c)]


def _colours(conditions: list[tuple], keys: list[str], style: str | None) -> dict:
    """A colour per condition (a tuple of `keys` values): with a style key and other keys, the
    conditions that share the other keys' values are shades of one hue; else a hue each."""
    if style is None or len(keys) < 2:
        return dict(zip(conditions, sns.color_palette(n_colors=len(conditions))))
    i = keys.index(style)
    family = lambda c: c[:i] + c[i + 1:]  # noqa: E731
    families = sorted({family(c) for c in conditions}, key=_order)
    styles = sorted({c[i] for c in conditions}, key=lambda v: _order((v,)))
    hues = dict(zip(families, sns.color_palette(n_colors=len(families))))
    return {c: _shades(hues[family(c)], len(styles))[styles.index(c[i])] for c in conditions}


class DecimalLogFormatter(LogFormatterSciNotation):
    """Log-axis tick labels in plain decimals (0.6, 0.8, 0.1, 0.03) where the view spans less
    than PLAIN_DECADES decades between PLAIN_RANGE (matplotlib: 6×10⁻¹, 8×10⁻¹, 10⁻¹); 10⁻⁴ at
    the decades beyond. Which ticks get a label is matplotlib's choice (all of them over less
    than a decade, fewer over more)."""

    def __call__(self, x, pos=None):
        text = super().__call__(x, pos)
        low, high = sorted(self.axis.get_view_interval())
        if text and PLAIN_RANGE[0] <= low and high <= PLAIN_RANGE[1] and high < 10 ** PLAIN_DECADES * low:
            return f"{x:.3g}"
        return text


def _group_chance(d: pd.DataFrame, by: list[str], chance) -> dict:
    """{group key tuple: its runs' chance accuracy} for the groups whose runs share one."""
    if chance is None:
        return {}
    if not isinstance(chance, pd.Series):   # a number: every group's
        levels = pd.Series(float(chance), index=d["run_dir"].unique())
    else:
        levels = chance
    out = {}
    runs = d.drop_duplicates("run_dir")
    for k, g in (runs.groupby(by, dropna=False, sort=False) if by else [((), runs)]):
        values = levels.reindex(g["run_dir"]).to_numpy(dtype=float)
        if len(values) and not np.isnan(values).any() and np.ptp(values) < 1e-12:
            out[k if isinstance(k, tuple) else (k,)] = float(values[0])
    return out


def plot_curves(df: pd.DataFrame, metric: str = "accuracy", by=None, style: str | None = "auto",
                panels: str | None = None, ax=None, seeds_lines: bool = False,
                log_loss: bool = True, band: str = "std", chance="auto") -> Figure:
    """The figure of `metric` vs step per group (mean and band over seeds); returns the Figure.

    by: group keys (None: every varying config key but seed); style: the key drawn as line
    style as well ("auto": dataset.seq_length when it is one of several group keys and `panels`
    is not set; None: colour only); panels: a group key drawn as side-by-side panels (one per
    value); seeds_lines: each run's curve as a thin line under the band; log_loss: a metric
    drawn on a log axis by default (losses, quantities.py) stays so (False: linear); band: "std"
    (±1 sample std) or "ci95" (the 95 % t interval of the mean); chance: for accuracy metrics,
    the chance level drawn as a labelled line ("auto": from the runs' task, chance.py; a number;
    a Series of chance_accuracy's; None: no line).
    ValueError for a style or panels key that is not a group key ("--style: ..."), a band not in
    BANDS, or a metric no run has logged.
    """
    check_band(band)
    by = check_keys(df, by)
    check_metric(df, metric)
    for name, key in (("--style", style), ("--panels", panels)):
        if key not in (None, "auto") and key not in by:
            raise ValueError(f"{name}: {key!r} must be one of the group keys {by}")
    if style == "auto":
        style = default_style([k for k in by if k != panels])
    keys = [k for k in by if k != panels]        # a condition: one line, one colour
    d = df.dropna(subset=["step", metric])
    if d.empty:
        raise ValueError(f"no run has logged {metric!r} yet")
    q = metric_info(metric)
    log = log_loss and q.log
    agg = aggregate(d, by, metric)
    agg["min"] = d.groupby(by + ["step"], dropna=False, sort=True)[metric].min().to_numpy()
    n_runs = d.groupby(by, dropna=False)["run_dir"].nunique() if by else pd.Series([d["run_dir"].nunique()])
    if metric not in CHANCE_METRICS:
        chance = None
    elif isinstance(chance, str) and chance == "auto":
        chance = chance_accuracy(d)
    chance_of = _group_chance(d, by, chance)

    groups = list(agg.groupby(by, dropna=False, sort=False)) if by else [((), agg)]
    groups = [(k if isinstance(k, tuple) else (k,), g) for k, g in groups]
    value = lambda key, k: k[by.index(key)]  # noqa: E731
    condition = lambda k: tuple(value(c, k) for c in keys)  # noqa: E731
    band_text = _band_text(n_runs, seeds_lines, band)
    conditions = sorted({condition(k) for k, _ in groups}, key=_order)
    colours = _colours(conditions, keys, style)                 # the same in every panel
    style_order = sorted({value(style, k) for k, _ in groups}, key=lambda v: _order((v,))) if style else []
    dash = lambda c: LINESTYLES[style_order.index(c[keys.index(style)]) % len(LINESTYLES)] if style else "-"  # noqa: E731
    panel_values = sorted({value(panels, k) for k, _ in groups}, key=lambda v: _order((v,))) \
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
                where(k).plot(run["step"], run[metric], color=colours[condition(k)], linestyle=dash(condition(k)),
                              linewidth=0.4, alpha=0.45, zorder=1)
        for k, g in groups:
            a, colour = where(k), colours[condition(k)]
            g = _thin(g)
            a.plot(g["step"], g["mean"], color=colour, linestyle=dash(condition(k)), linewidth=1.0, zorder=3)
            if (g["n"] > 1).any():
                low, high = band_edges(g, band, q.bounds, log)
                a.fill_between(g["step"], low, high, color=colour, alpha=0.2, linewidth=0, zorder=2)
        chance_entry = _draw_chance(axes, groups, where, chance_of)
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
        else:         # plain decimals over a narrow range (decided when drawn, on the final limits)
            for a in axes:
                a.yaxis.set_major_formatter(DecimalLogFormatter(10))
                a.yaxis.set_minor_formatter(DecimalLogFormatter(10, labelOnlyBase=False))
        entries = [(Line2D([], [], color=colours[c], linestyle=dash(c), linewidth=1.0),
                    _label(keys, c) if keys else band_text) for c in conditions]
        if chance_entry is not None:
            entries.append(chance_entry)
        title = (f"{keys[0]}\n{band_text}" if len(keys) == 1 else band_text) if keys else None
        shaded = style is not None and len(keys) > 1          # a row per hue, a column per style value
        _legend(fig, axes, entries, title, ax is None, len(style_order) if shaded else None)
    return fig


def _draw_chance(axes, groups, where, chance_of: dict):
    """The chance level(s) of each axes' groups as dotted lines; the legend's entry for them
    (None where there is none). One level: "chance (majority class): 0.67"; several (tasks or
    lengths that differ): each line labelled with its value at the right edge."""
    per_axes: dict = {}
    for k, _ in groups:
        if k in chance_of:
            per_axes.setdefault(id(where(k)), (where(k), set()))[1].add(round(chance_of[k], 12))
    if not per_axes:
        return None
    levels = sorted(set().union(*(v for _, v in per_axes.values())))
    for a, values in per_axes.values():
        for v in sorted(values):
            a.axhline(v, zorder=1.5, gid="chance", **CHANCE_STYLE)   # gid: how to find it
            if len(levels) > 1:
                a.annotate(f"{v:.2g}", (1.0, v), xycoords=("axes fraction", "data"), xytext=(-2, 1.5),
                           textcoords="offset points", ha="right", va="bottom", fontsize=5.5, color="0.3")
    label = f"chance (majority class): {levels[0]:.2g}" if len(levels) == 1 else "chance (majority class)"
    return Line2D([], [], **CHANCE_STYLE), label


def _legend(fig: Figure, axes, entries, title, own_figure: bool, per_row: int | None = None) -> None:
    """The legend, outside the data: below the axes of a figure of our own (as many columns as
    fit, at most `per_row`: one row per hue of shaded conditions; entries read row by row; the
    figure made taller by its rows), beside the axes the caller gave."""
    handles, labels = [h for h, _ in entries], [t for _, t in entries]
    kw = dict(handles=handles, labels=labels, title=title, fontsize=6, title_fontsize=6, frameon=False)
    if not own_figure:
        legend = axes[-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), **kw)
        legend.set_in_layout(False)   # saved by bbox_inches (save_figure)
        return
    width = fig.get_size_inches()[0]
    ncols = next(n for n in range(min(len(entries), per_row or len(entries)), 0, -1)
                 if n == 1 or _legend_width(labels, n) <= width)
    rows = math.ceil(len(entries) / ncols)
    fig.set_size_inches(width, FIGSIZE[1] + 0.1 + LEGEND_ROW * (rows + (title.count("\n") + 1 if title else 0)))
    order = [i for c in range(ncols) for i in range(c, len(entries), ncols)]   # read row by row:
    kw.update(handles=[handles[i] for i in order], labels=[labels[i] for i in order])  # matplotlib fills columns
    fig.legend(loc="outside lower center", ncols=ncols, **kw).get_title().set_multialignment("center")


def _legend_width(labels: list[str], ncols: int) -> float:
    """Inches a legend of `labels` takes in `ncols` columns, filled row by row."""
    columns = [labels[c::ncols] for c in range(ncols)]
    chars = [max(len(line) for text in col for line in text.split("\n")) for col in columns]
    return sum(LEGEND_HANDLE + LEGEND_CHAR * n for n in chars) + LEGEND_GAP * (ncols - 1)


def legend_of(fig: Figure):
    """The figure's legend (below the axes), or the one beside the caller's axes."""
    if fig.legends:
        return fig.legends[0]
    return next((a.get_legend() for a in fig.axes if a.get_legend() is not None), None)


def save_figure(fig: Figure, stem: Path, formats=("png", "pdf"), dpi: int = 200) -> list[Path]:
    """stem.png, stem.pdf, ...: the paths written."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = stem.with_suffix(f".{fmt}")
        legends = [a.get_legend() for a in fig.axes if a.get_legend() is not None] + list(fig.legends)
        fig.savefig(path, dpi=dpi, bbox_inches="tight", bbox_extra_artists=legends)  # one beside the plot too
        paths.append(path)
    return paths
