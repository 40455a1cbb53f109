"""Seed averages: which keys make a group, mean ± std curves per group, and the summary table.

Spread is the sample standard deviation over seeds (ddof = 1, as seaborn's errorbar="sd"):
    mean_t = (1/n) sum_i m_i(t),   std_t = sqrt( sum_i (m_i(t) - mean_t)^2 / (n - 1) )
where i runs over the seeds that logged step t (runs of different lengths align on step).

The summary table adds a 95 % t interval of each mean over seeds (`mean_ci`):
    mean ± t_{0.975, n-1} · s / sqrt(n)
cut to the range the statistic can take (accuracies [0, 1]; steps, loss >= 0), which keeps its
coverage: the mean lies in that range anyway; and, from MIN_BOOTSTRAP seeds on, the BCa bootstrap
interval of the mean (stats.bootstrap_ci, fixed seed). Ranges and names: quantities.py.
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd
from scipy import stats as st

from rnn_experiments.analysis.collect import AnalysisError, config_keys, runs_of, without_config
from rnn_experiments.analysis.quantities import DECLARED, LOWER, STATISTICS, metric, stat_name, statistic
from rnn_experiments.analysis.stats import CONFIDENCE, MIN_BOOTSTRAP, bootstrap_ci
from rnn_experiments.config import TrainConfig
from rnn_experiments.run.status import STOP_STATUSES

NEVER_GROUP = ("seed",)                 # seeds are what we average over
# settings the config schema declares do not change what a run computes (TrainConfig.same_results):
# two runs that differ only in them are the same run of the study, not two groups
SAME_RESULTS = tuple(f"train.{k}" for k in TrainConfig.same_results)
REDUNDANT_IF_DETERMINED = ("experiment_name",)  # a label, dropped when the other keys imply it
PARTS = ("model", "dataset")            # config nodes of a class (_target_) and its settings
# per-run statistics of the summary table (per_run's columns), each as mean, std and 95 % interval
STATS = ("final_accuracy", "best_accuracy", "final_eval_accuracy", "steps_to_threshold", "final_loss",
         "final_eval_loss", "best_eval_loss", "final_eval_bpc")
BUILT_IN = ("loss", "accuracy", "eval_accuracy", "eval_loss", "eval_bpc")   # metrics with final_ and best_


def stats_of(r: pd.DataFrame, built_in=STATS) -> list[str]:
    """The statistics the tables show for per-run rows `r`: the built-in ones, then those of the
    runs' own metrics (quantities.DECLARED), where `r` has them."""
    return [c for c in (*built_in, *DECLARED) if c in r.columns]
CAPTION = ("mean ± sample std over seeds; [95 % t interval of the mean over seeds, cut to the "
           "statistic's range]; steps to a threshold: over the runs that reached it")
CAPTION_BOOT = (f"; boot [...]: 95 % BCa bootstrap interval of the mean (scipy.stats.bootstrap, "
                f"fixed seed), for groups with ≥ {MIN_BOOTSTRAP} seeds")


def _n_groups(runs: pd.DataFrame, keys: list[str]) -> int:
    return len(runs.groupby(keys, dropna=False)) if keys else 1


def group_keys(df: pd.DataFrame) -> list[str]:
    """Every config key whose value varies across the runs, except `seed`.

    Settings declared not to change results (SAME_RESULTS: train.checkpoint_every, ...; and
    those the runs' parts declare, summary.json's `same_results`) are not group keys. `experiment_name` is dropped when the other varying keys already tell the groups apart
    (two presets compared: their names duplicate `model.name`), and so is a setting of a part
    (`model.*`, `dataset.*`) that the part's `name` determines: lstm against peep_lstm differ in
    `model._target_` and in the settings only one of them has, which are what the two models
    are, not a factor of the study (a setting swept for both stays a group key).
    """
    runs = runs_of(df)
    runs = runs[~runs["run_dir"].isin(without_config(df))]   # an unreadable config varies nothing
    same = SAME_RESULTS + tuple(df.attrs.get("same_results", ()))   # the runs' parts' own (summary.json)
    keys = [k for k in config_keys(df)
            if k not in NEVER_GROUP + same and runs[k].nunique(dropna=False) > 1]
    of_a_named_part = [k for k in keys for part in PARTS
                       if k.startswith(f"{part}.") and k != f"{part}.name" and f"{part}.name" in keys]
    for k in [*REDUNDANT_IF_DETERMINED, *of_a_named_part]:
        rest = [x for x in keys if x != k]
        if k in keys and rest and _n_groups(runs, rest) == _n_groups(runs, keys):
            keys = rest
    return keys


def check_keys(df: pd.DataFrame, by) -> list[str]:
    """`by` as a list (None: group_keys(df)); AnalysisError for a key that is not a config key."""
    if by is None:
        return group_keys(df)
    by = [by] if isinstance(by, str) else list(by)
    have = config_keys(df)
    for k in by:
        if k not in have:
            raise AnalysisError(f"--by: {k!r} is not a config key of these runs "
                                f"(have: {', '.join(have)})")
        if k in NEVER_GROUP:
            raise AnalysisError(f"--by: {k!r} cannot be a group: the analysis averages over it")
    return by


def check_metric(df: pd.DataFrame, metric: str, option: str = "--metrics") -> None:
    """AnalysisError naming `option` unless `metric` is a column of these runs' metrics.csv."""
    have = df.attrs.get("metrics") or [c for c in df.columns if c not in config_keys(df)]
    if metric not in have:
        raise AnalysisError(f"{option}: {metric!r} is not a column of metrics.csv "
                            f"(have: {', '.join(have) or 'no readable metrics.csv'})")


def aggregate(df: pd.DataFrame, by=None, metric: str = "accuracy") -> pd.DataFrame:
    """Mean, std and number of seeds of `metric` per group and step.

    Columns: *by, step, mean, std, n. Rows where the metric was not logged (eval_accuracy
    between evaluations) are skipped; std is NaN where n = 1.
    """
    by = check_keys(df, by)
    check_metric(df, metric)
    d = df.dropna(subset=["step", metric])
    out = (d.groupby(by + ["step"], dropna=False, sort=True)[metric]
           .agg(["mean", "std", "count"]).rename(columns={"count": "n"}).reset_index())
    return out


def per_run(df: pd.DataFrame, threshold: float = 0.99, threshold_metric: str = "accuracy") -> pd.DataFrame:
    """One row per run: config, status, final/best metrics, steps to reach the threshold.

    final_X is the last logged value of X; steps_to_threshold is the first logged step with
    threshold_metric >= threshold (NaN: never reached).
    """
    check_metric(df, threshold_metric, "--threshold-metric")
    runs = runs_of(df).set_index("run_dir")
    d = df.dropna(subset=["step"]).sort_values(["run_dir", "step"], kind="stable")
    g = d.groupby("run_dir", sort=False)
    metrics = [m for m in (*BUILT_IN, *(s.removeprefix("final_") for s in DECLARED))
               if m in d.columns and d[m].notna().any()]
    final = g[metrics].last().add_prefix("final_")            # last non-NaN value per column
    lower = [m for m in metrics if metric(m).better == LOWER]  # their best is the minimum
    best = pd.concat([g[[m for m in metrics if m not in lower]].max(),
                      g[[m for m in lower if m != "loss"]].min()], axis=1).add_prefix("best_")
    hit = d[d[threshold_metric] >= threshold].groupby("run_dir", sort=False)["step"].min()
    out = runs.join(final).join(best)
    out["has_metrics"] = out.index.isin(final.index)
    out["steps_to_threshold"] = hit.reindex(out.index)
    return out.reset_index()


def ci_half_width(std, n, confidence: float = CONFIDENCE) -> np.ndarray:
    """The half-width of the t interval of a mean, t_{(1+c)/2, n-1} · s / sqrt(n), elementwise
    for sample stds `std` (ddof = 1) of `n` values; NaN where n < 2. `mean_ci`'s interval and
    the plots' `band="ci95"`."""
    std, n = np.asarray(std, dtype=float), np.asarray(n, dtype=float)
    ok = n >= 2
    t = st.t.ppf((1 + confidence) / 2, np.where(ok, n - 1, 1.0))
    return np.where(ok, t * std / np.sqrt(np.where(ok, n, 1.0)), np.nan)


def mean_ci(x: pd.Series, confidence: float = CONFIDENCE,
            bounds: tuple[float, float] = (-np.inf, np.inf)) -> tuple[float, float]:
    """The t interval of the mean of x's non-NaN values: mean ± t_{(1+c)/2, n-1} · s / sqrt(n),
    s the sample std (ddof = 1), clipped to `bounds`; (NaN, NaN) for n < 2.
    With n = 3, t_{0.975, 2} = 4.30: the half-width is 2.48 s."""
    x = pd.Series(x, dtype=float).dropna()
    n = len(x)
    if n < 2:
        return np.nan, np.nan
    half = float(ci_half_width(x.std(ddof=1), n, confidence))
    low, high = np.clip([x.mean() - half, x.mean() + half], *bounds)
    return float(low), float(high)


def table(df: pd.DataFrame, by=None, threshold: float = 0.99,
          threshold_metric: str = "accuracy") -> pd.DataFrame:
    """The comparison table, one row per group (numbers, not strings; see `format_table`).

    runs: run folders; seeds: runs with metrics; finished: runs with status completed; pruned:
    runs a search's pruner stopped early (status pruned or stopped: a normal end, not a failure);
    <X>_mean/_std/_ci_low/_ci_high over the runs with metrics (std: ddof = 1; ci: `mean_ci`'s
    95 % t interval, cut to the statistic's bounds; NaN skipped: steps_to_threshold is over the runs that reached
    it); <X>_n: the runs with a value of X (the mean is over these); <X>_boot_low/_boot_high:
    the BCa bootstrap interval of the mean (NaN below
    MIN_BOOTSTRAP values or without spread); never_reached: runs with metrics that never reached threshold_metric >= threshold;
    wall_time_s: mean wall time per run.
    """
    by = check_keys(df, by)
    r = per_run(df, threshold, threshold_metric)
    r["finished"] = (r["status"] == "completed") & r["has_metrics"]
    r["pruned"] = r["status"].isin(STOP_STATUSES)   # stopped early on purpose (a search's pruner)
    r["never"] = r["has_metrics"] & r["steps_to_threshold"].isna()
    stats = stats_of(r)
    rows = []
    for key, g in (r.groupby(by, dropna=False, sort=True) if by else [((), r)]):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key))
        ok = g[g["has_metrics"]]
        row.update(runs=len(g), seeds=len(ok), finished=int(g["finished"].sum()),
                   pruned=int(g["pruned"].sum()))
        for c in stats:
            row[f"{c}_n"] = int(ok[c].notna().sum())
            row[f"{c}_mean"] = ok[c].mean()
            row[f"{c}_std"] = ok[c].std()
            row[f"{c}_ci_low"], row[f"{c}_ci_high"] = mean_ci(ok[c], bounds=statistic(c).bounds)
            row[f"{c}_boot_low"], row[f"{c}_boot_high"] = bootstrap_ci(ok[c])
        row["never_reached"] = int(g["never"].sum())
        row["wall_time_s"] = ok["wall_time_s"].mean()
        rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs.update(by=by, threshold=threshold, threshold_metric=threshold_metric)
    return out


# ---- text renderings ---------------------------------------------------------------------------

FORMATS = {k: q.fmt for k, q in STATISTICS.items()}


def readable(values: pd.Series, digits: int = 4) -> list[str]:
    """Config values as text, floats with `digits` significant digits (a sampled learning rate
    0.0012345678901234567 -> "0.001235"), more where fewer would make two values look alike."""
    floats = [v for v in values if isinstance(v, float) and not pd.isna(v)]
    for d in range(digits, 18):
        if len({f"{v:.{d}g}" for v in floats}) == len(set(floats)):
            break
    return [f"{v:.{d}g}" if isinstance(v, float) and not pd.isna(v) else str(v) for v in values]


def _pm(mean, std, fmt, low=np.nan, high=np.nan, boot_low=np.nan, boot_high=np.nan) -> str:
    """"0.917 ± 0.104 [0.658, 1.000]", then " boot [0.85, 0.97]" where there is a bootstrap
    interval; the std and the intervals are left out where NaN (n < 2)."""
    if pd.isna(mean):
        return "–"
    text = f"{mean:{fmt}}" if pd.isna(std) else f"{mean:{fmt}} ± {std:{fmt}}"
    text = text if pd.isna(low) else f"{text} [{low:{fmt}}, {high:{fmt}}]"
    return text if pd.isna(boot_low) else f"{text} boot [{boot_low:{fmt}}, {boot_high:{fmt}}]"


def format_table(t: pd.DataFrame) -> pd.DataFrame:
    """`table`'s numbers as the strings of the report table ("0.998 ± 0.002 [0.993, 1.003]")."""
    by, thr, m = t.attrs.get("by", []), t.attrs.get("threshold"), t.attrs.get("threshold_metric")
    out = pd.DataFrame({k: readable(t[k]) for k in by})
    pruned = t["pruned"] if "pruned" in t else [0] * len(t)
    out["seeds (finished)"] = [f"{s} ({f}" + (f", {p} pruned" if p else "") + ")"
                               + (f" of {r}" if r != s else "")
                               for s, f, p, r in zip(t["seeds"], t["finished"], pruned, t["runs"])]
    for c in (c for c in (*STATS, *DECLARED) if f"{c}_mean" in t):
        cols = [t[f"{c}_{x}"] if f"{c}_{x}" in t else pd.Series(np.nan, index=t.index)
                for x in ("mean", "std", "ci_low", "ci_high", "boot_low", "boot_high")]
        cells = [_pm(v[0], v[1], statistic(c).fmt, *v[2:]) for v in zip(*cols)]
        if c == "steps_to_threshold":
            cells = [x + (f" ({n} never)" if n else "") for x, n in zip(cells, t["never_reached"])]
        elif f"{c}_n" in t:   # runs without this value (no evaluation yet): said, not hidden
            cells = [x + (f" ({n} of {s} runs)" if n < s else "")
                     for x, n, s in zip(cells, t[f"{c}_n"], t["seeds"])]
        out[stat_name(c, thr, m)] = cells
    out["wall time / run"] = ["–" if pd.isna(w) else f"{w:.1f} s" for w in t["wall_time_s"]]
    return out


def markdown_table(f: pd.DataFrame, caption: str) -> str:
    """A pipe table of strings with its caption as a line under it."""
    lines = ["| " + " | ".join(f.columns) + " |", "|" + "|".join("---" for _ in f.columns) + "|"]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in f.itertuples(index=False)]
    return "\n".join(lines) + f"\n\n{caption}\n"


def latex_tabular(f: pd.DataFrame, caption: str) -> str:
    """A booktabs tabular (\\toprule/\\midrule/\\bottomrule; needs \\usepackage{booktabs}), its
    caption as a `% \\caption{...}` line above it, ready for a table environment."""
    tex = f.to_latex(index=False, escape=True, column_format="l" * len(f.columns))
    cap = caption.replace("%", r"\%").replace("_", r"\_")
    return _tex_symbols(f"% \\caption{{{cap}}}\n" + tex)


def _tex_symbols(tex: str) -> str:
    tex = re.sub(r"(?<![\w.$])-(?=\d)", "$-$", tex)             # a minus sign, not a hyphen
    return (tex.replace("±", r"$\pm$").replace("≥", r"$\geq$").replace("−", "$-$")
            .replace("–", "--").replace("<", "$<$").replace(">", "$>$"))   # < > in text: ¡ ¿


def _caption(t: pd.DataFrame) -> str:
    has_boot = any(c.endswith("_boot_low") and t[c].notna().any() for c in t.columns)
    return CAPTION + (CAPTION_BOOT if has_boot else "")


TERMINAL = 100   # columns the terminal summaries fit in (the files keep every column)


def fitted(f: pd.DataFrame, width: int = TERMINAL) -> str:
    """A frame of strings as an aligned plain-text table of at most `width` columns: its columns
    in order, each taken only if the table still fits (the first always), so that the most
    telling ones, which come first, are the ones shown."""
    def w(col):
        return max(len(str(col)), *(len(str(v)) for v in f[col])) if len(f) else len(str(col))

    kept, used = [], 0
    for col in f.columns:
        extra = w(col) + (2 if kept else 0)
        if not kept or used + extra <= width:
            kept.append(col)
            used += extra
    lines = ["  ".join(f"{str(c):<{w(c)}}" for c in kept).rstrip()]
    lines += ["  ".join(f"{str(v):<{w(c)}}" for c, v in zip(kept, row)).rstrip()
              for row in f[kept].itertuples(index=False)]
    return "\n".join(lines)


TERMINAL_STATS = ("final_eval_accuracy", "steps_to_threshold", "final_eval_bpc", "final_eval_loss", "final_accuracy")


def terminal_summary(t: pd.DataFrame, width: int = TERMINAL) -> str:
    """The summary table as the terminal shows it: the group keys, the seeds, then the statistics
    that answer "which is better, by how much, how sure" (held-out accuracy, steps to the
    threshold, ...: mean ± std [95 % interval]) as far as `width` allows."""
    f = format_table(t)
    by = list(t.attrs.get("by", []))
    names = {stat_name(s, t.attrs.get("threshold"), t.attrs.get("threshold_metric")): s for s in (*STATS, *DECLARED)}
    first = [c for s in TERMINAL_STATS for c in f.columns if names.get(c) == s]
    cols = [*by, "seeds (finished)", *first]
    f = f[[c for c in cols if c in f.columns]].copy()
    for c in first:   # the bootstrap interval is in the files
        f[c] = [v.split(" boot ")[0] for v in f[c]]
    return fitted(f, width)


def to_markdown(t: pd.DataFrame) -> str:
    return markdown_table(format_table(t), _caption(t))


def to_latex(t: pd.DataFrame) -> str:
    return latex_tabular(format_table(t), _caption(t))
