"""--compare KEY: the values of one config key side by side, pair by pair, with a test.

Within every group of the other group keys (e.g. for each dataset.seq_length), for each pair of
KEY's values A < B (sorted order) and each per-run statistic X (final accuracy, steps to the
threshold, ...), with n_A, n_B runs, means m_A, m_B and sample variances s_A², s_B² (ddof = 1):

    difference      d = m_A − m_B
    95 % interval   d ± t_{0.975, ν} · sqrt(s_A²/n_A + s_B²/n_B)
    Welch df        ν = (s_A²/n_A + s_B²/n_B)² / [(s_A²/n_A)²/(n_A − 1) + (s_B²/n_B)²/(n_B − 1)]
    p               two-sided Welch's t-test, scipy.stats.ttest_ind(A, B, equal_var=False)

(the interval is scipy's TtestResult.confidence_interval(), ν its .df). A run without a value of X
is left out of X and counted in the note: for steps_to_threshold that is a run that never reached
the threshold. No test ("–", NaN) where a side has fewer than 2 values, or where neither side
varies (s_A = s_B = 0: t is 0/0 or ±inf; scipy returns p = nan or 0, neither means anything).
"""
from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
from scipy import stats as st

from rnn_experiments.analysis.aggregate import (CONFIDENCE, FORMATS, NEVER_GROUP, STATS,
                                                check_keys, latex_tabular, markdown_table,
                                                per_run, stat_name)
from rnn_experiments.analysis.collect import AnalysisError, config_keys, runs_of

COMPARE_STATS = STATS + ("wall_time_s",)
FEW_SEEDS = 3     # fewer than this on a side: say so in the note
CAPTION = ("A − B: difference of the means over seeds [95 % interval, Welch–Satterthwaite df]; "
           "p: two-sided Welch's t-test (scipy.stats.ttest_ind, equal_var=False); "
           "with 3 seeds a side these intervals are wide")
COLUMNS = ["key", "a", "b", "statistic", "n_a", "n_b", "excluded_a", "excluded_b", "mean_a",
           "mean_b", "difference", "ci_low", "ci_high", "df", "p_value", "note"]


class CompareError(AnalysisError):
    """--compare names no key whose values can be compared (one line)."""


def check_compare(df: pd.DataFrame, key: str) -> str:
    """`key` if it is a config key, not seed, with at least two values; else CompareError."""
    have = config_keys(df)
    if key not in have:
        raise CompareError(f"--compare: {key!r} is not a config key of these runs "
                           f"(have: {', '.join(have)})")
    if key in NEVER_GROUP:
        raise CompareError(f"--compare: {key!r} cannot be compared: the analysis averages over it")
    values = runs_of(df)[key].unique()
    if len(values) < 2:
        raise CompareError(f"--compare: {key!r} has only one value in these runs ({values[0]}): "
                           f"nothing to compare")
    return key


def _sorted_values(values) -> list:
    """Numbers in numeric order, then strings in text order."""
    return sorted(values, key=lambda v: (0, float(v), "") if isinstance(v, (int, float, np.number))
                  else (1, 0.0, str(v)))


def welch(a, b, confidence: float = CONFIDENCE) -> dict:
    """Means, A − B, its Welch interval and Welch's t-test p-value of two samples (NaN skipped).

    n_a, n_b count the values used; ci_low, ci_high, df, p_value are NaN where a side has fewer
    than 2 values or neither side varies (see the module docstring).
    """
    a, b = (pd.Series(x, dtype=float).dropna() for x in (a, b))
    out = dict(n_a=len(a), n_b=len(b), mean_a=a.mean(), mean_b=b.mean(), difference=a.mean() - b.mean(),
               ci_low=np.nan, ci_high=np.nan, df=np.nan, p_value=np.nan)
    if min(len(a), len(b)) < 2 or (a.std() == 0 and b.std() == 0):
        return out
    with warnings.catch_warnings():  # scipy warns of precision loss for nearly constant samples
        warnings.simplefilter("ignore", RuntimeWarning)
        res = st.ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(confidence)
    out.update(ci_low=ci.low, ci_high=ci.high, df=res.df, p_value=res.pvalue)
    return out


def _note(r: dict, stat: str, threshold: float, threshold_metric: str) -> str:
    """Why a row's interval or test is missing or weak, and which runs it leaves out."""
    notes = []
    n = f"{r['a']} {r['n_a']}, {r['b']} {r['n_b']}"
    if min(r["n_a"], r["n_b"]) < 2:
        notes.append(f"n < 2 seeds ({n}): no test")
    elif min(r["n_a"], r["n_b"]) < FEW_SEEDS:
        notes.append(f"n < {FEW_SEEDS} seeds ({n})")
    if min(r["n_a"], r["n_b"]) >= 2 and np.isnan(r["p_value"]):
        notes.append("no spread on either side: no t-test")
    if r["excluded_a"] or r["excluded_b"]:
        why = (f"never reached {threshold_metric} ≥ {threshold:g}" if stat == "steps_to_threshold"
               else "no value")
        notes.append(f"{why}, excluded: {r['a']} {r['excluded_a']} of {r['n_a'] + r['excluded_a']}, "
                     f"{r['b']} {r['excluded_b']} of {r['n_b'] + r['excluded_b']}")
    return "; ".join(notes)


def _pair_rows(g: pd.DataFrame, key: str, a, b, stats, threshold, threshold_metric) -> list[dict]:
    ga, gb = g[g[key] == a], g[g[key] == b]
    rows = []
    for stat in stats:
        r = dict(key=key, a=a, b=b, statistic=stat, **welch(ga[stat], gb[stat]),
                 excluded_a=int(ga[stat].isna().sum()), excluded_b=int(gb[stat].isna().sum()))
        r["note"] = _note(r, stat, threshold, threshold_metric)
        rows.append(r)
    return rows


def compare(df: pd.DataFrame, key: str, by=None, threshold: float = 0.99,
            threshold_metric: str = "accuracy") -> pd.DataFrame:
    """The comparison table (numbers; see `format_compare`): a row per group of the other group
    keys, pair (A, B) of `key`'s values present in that group, and per-run statistic.

    Columns: *other keys, key, a, b, statistic, n_a, n_b (runs used), excluded_a, excluded_b
    (runs with metrics but no value: never reached the threshold), mean_a, mean_b, difference (A − B),
    ci_low, ci_high (its 95 % Welch interval), df (Welch–Satterthwaite), p_value (Welch's t-test),
    note. Only runs with metrics count.
    """
    check_compare(df, key)
    others = [k for k in check_keys(df, by) if k != key]
    r = per_run(df, threshold, threshold_metric)
    r = r[r["has_metrics"]]
    stats = [c for c in COMPARE_STATS if c in r.columns]
    rows = []
    for group, g in (r.groupby(others, dropna=False, sort=True) if others else [((), r)]):
        group = group if isinstance(group, tuple) else (group,)
        for a, b in itertools.combinations(_sorted_values(g[key].dropna().unique()), 2):
            rows += [{**dict(zip(others, group)), **row}
                     for row in _pair_rows(g, key, a, b, stats, threshold, threshold_metric)]
    if not rows:
        raise CompareError(f"--compare: no group of {', '.join(others)} holds two values of {key!r}")
    out = pd.DataFrame(rows, columns=others + COLUMNS)
    out.attrs.update(by=others, key=key, threshold=threshold, threshold_metric=threshold_metric)
    return out


# ---- text renderings ---------------------------------------------------------------------------

def _num(x, fmt: str) -> str:
    """x formatted, "–" for NaN, never "-0.0"."""
    if pd.isna(x):
        return "–"
    text = f"{x:{fmt}}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def _diff(d, low, high, fmt: str) -> str:
    """"-0.080 [-0.341, 0.181]"; the interval left out where there is none."""
    if pd.isna(low):
        return _num(d, fmt)
    return f"{_num(d, fmt)} [{_num(low, fmt)}, {_num(high, fmt)}]"


def format_compare(c: pd.DataFrame) -> pd.DataFrame:
    """`compare`'s numbers as the strings of the report table. With a single pair (A, B) in the
    whole table the columns are named after its values ("lstm (n)", "lstm − peep_lstm"); with
    several pairs, A and B get columns of their own."""
    by, key = c.attrs["by"], c.attrs["key"]
    thr, m = c.attrs["threshold"], c.attrs["threshold_metric"]
    fmt = [FORMATS.get(s, ".3g") for s in c["statistic"]]
    one_pair = len(c[["a", "b"]].drop_duplicates()) == 1
    a, b = (str(c["a"].iloc[0]), str(c["b"].iloc[0])) if one_pair else ("A", "B")
    out = pd.DataFrame({k: c[k].astype(str) for k in by})
    if not one_pair:
        out[f"{key} A"], out[f"{key} B"] = c["a"].astype(str), c["b"].astype(str)
    out["statistic"] = [stat_name(s, thr, m) for s in c["statistic"]]
    for side, name in (("a", a), ("b", b)):
        out[f"{name} mean (n)"] = [f"{_num(x, f)} ({n})"
                                   for x, n, f in zip(c[f"mean_{side}"], c[f"n_{side}"], fmt)]
    out[f"{a} − {b} [95 % CI]"] = [_diff(d, lo, hi, f) for d, lo, hi, f
                                   in zip(c["difference"], c["ci_low"], c["ci_high"], fmt)]
    out["p (Welch t)"] = [_num(p, "#.2g") for p in c["p_value"]]
    out["note"] = c["note"]
    return out


def compare_markdown(c: pd.DataFrame) -> str:
    return markdown_table(format_compare(c), CAPTION)


def compare_latex(c: pd.DataFrame) -> str:
    return latex_tabular(format_compare(c), CAPTION)
