"""Seed averages: which keys make a group, mean ± std curves per group, and the summary table.

Spread is the sample standard deviation over seeds (ddof = 1, as seaborn's errorbar="sd"):
    mean_t = (1/n) sum_i m_i(t),   std_t = sqrt( sum_i (m_i(t) - mean_t)^2 / (n - 1) )
where i runs over the seeds that logged step t (runs of different lengths align on step).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from rnn_experiments.analysis.collect import AnalysisError, config_keys, runs_of

NEVER_GROUP = ("seed",)                 # seeds are what we average over
REDUNDANT_IF_DETERMINED = ("experiment_name",)  # a label, dropped when the other keys imply it


def _n_groups(runs: pd.DataFrame, keys: list[str]) -> int:
    return len(runs.groupby(keys, dropna=False)) if keys else 1


def group_keys(df: pd.DataFrame) -> list[str]:
    """Every config key whose value varies across the runs, except `seed`.

    `experiment_name` is dropped when the other varying keys already tell the groups apart
    (two presets compared: their names duplicate `model.name`).
    """
    runs = runs_of(df)
    keys = [k for k in config_keys(df)
            if k not in NEVER_GROUP and runs[k].nunique(dropna=False) > 1]
    for k in REDUNDANT_IF_DETERMINED:
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


def check_metric(df: pd.DataFrame, metric: str) -> None:
    have = df.attrs.get("metrics") or [c for c in df.columns if c not in config_keys(df)]
    if metric not in have:
        raise AnalysisError(f"--metrics: {metric!r} is not a column of metrics.csv "
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
    check_metric(df, threshold_metric)
    runs = runs_of(df).set_index("run_dir")
    d = df.dropna(subset=["step"]).sort_values(["run_dir", "step"], kind="stable")
    g = d.groupby("run_dir", sort=False)
    metrics = [m for m in ("loss", "accuracy", "eval_accuracy") if m in d.columns]
    final = g[metrics].last().add_prefix("final_")            # last non-NaN value per column
    best = g[[m for m in metrics if m != "loss"]].max().add_prefix("best_")
    hit = d[d[threshold_metric] >= threshold].groupby("run_dir", sort=False)["step"].min()
    out = runs.join(final).join(best)
    out["has_metrics"] = out.index.isin(final.index)
    out["steps_to_threshold"] = hit.reindex(out.index)
    return out.reset_index()


def table(df: pd.DataFrame, by=None, threshold: float = 0.99,
          threshold_metric: str = "accuracy") -> pd.DataFrame:
    """The comparison table, one row per group (numbers, not strings; see `format_table`).

    runs: run folders; seeds: runs with metrics; finished: runs with status completed;
    <X>_mean/_std over the runs with metrics; never_reached: runs with metrics that never
    reached threshold_metric >= threshold; wall_time_s: mean wall time per run.
    """
    by = check_keys(df, by)
    r = per_run(df, threshold, threshold_metric)
    r["finished"] = (r["status"] == "completed") & r["has_metrics"]
    r["never"] = r["has_metrics"] & r["steps_to_threshold"].isna()
    stats = [c for c in ("final_accuracy", "best_accuracy", "final_eval_accuracy",
                         "steps_to_threshold", "final_loss") if c in r.columns]
    rows = []
    for key, g in (r.groupby(by, dropna=False, sort=True) if by else [((), r)]):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key))
        ok = g[g["has_metrics"]]
        row.update(runs=len(g), seeds=len(ok), finished=int(g["finished"].sum()))
        for c in stats:
            row[f"{c}_mean"] = ok[c].mean()
            row[f"{c}_std"] = ok[c].std()
        row["never_reached"] = int(g["never"].sum())
        row["wall_time_s"] = ok["wall_time_s"].mean()
        rows.append(row)
    out = pd.DataFrame(rows)
    out.attrs.update(by=by, threshold=threshold, threshold_metric=threshold_metric)
    return out


# ---- text renderings ---------------------------------------------------------------------------

def _pm(mean, std, fmt) -> str:
    if pd.isna(mean):
        return "–"
    return f"{mean:{fmt}}" if pd.isna(std) else f"{mean:{fmt}} ± {std:{fmt}}"


SHORT = {"accuracy": "acc", "eval_accuracy": "eval acc", "loss": "loss"}


def format_table(t: pd.DataFrame) -> pd.DataFrame:
    """`table`'s numbers as the strings of the report table ("0.998 ± 0.002")."""
    by, thr, m = t.attrs.get("by", []), t.attrs.get("threshold"), t.attrs.get("threshold_metric")
    out = pd.DataFrame({k: t[k].astype(str) for k in by})
    out["seeds (finished)"] = [f"{s} ({f})" + (f" of {r}" if r != s else "")
                               for s, f, r in zip(t["seeds"], t["finished"], t["runs"])]
    for c, name, fmt in (("final_accuracy", "final acc", ".3f"), ("best_accuracy", "best acc", ".3f"),
                         ("final_eval_accuracy", "final eval acc", ".3f")):
        if f"{c}_mean" in t:
            out[name] = [_pm(a, b, fmt) for a, b in zip(t[f"{c}_mean"], t[f"{c}_std"])]
    out[f"steps to {SHORT.get(m, m)} ≥ {thr:g}"] = [
        _pm(a, b, ".0f") + (f" ({n} never)" if n else "")
        for a, b, n in zip(t["steps_to_threshold_mean"], t["steps_to_threshold_std"], t["never_reached"])]
    if "final_loss_mean" in t:
        out["final loss"] = [_pm(a, b, ".3g") for a, b in zip(t["final_loss_mean"], t["final_loss_std"])]
    out["wall time / run"] = ["–" if pd.isna(w) else f"{w:.1f} s" for w in t["wall_time_s"]]
    return out


def to_markdown(t: pd.DataFrame) -> str:
    f = format_table(t)
    lines = ["| " + " | ".join(f.columns) + " |", "|" + "|".join("---" for _ in f.columns) + "|"]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in f.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def to_latex(t: pd.DataFrame) -> str:
    """A booktabs tabular (\\toprule/\\midrule/\\bottomrule; needs \\usepackage{booktabs})."""
    f = format_table(t)
    tex = f.to_latex(index=False, escape=True, column_format="l" * len(f.columns))
    return tex.replace("±", r"$\pm$").replace("≥", r"$\geq$").replace("–", "--")
