"""--compare KEY: the values of one config key side by side, pair by pair, with tests a reviewer
accepts.

Within every group of the other group keys (e.g. for each dataset.seq_length), for each pair of
KEY's values A < B (sorted order) and each per-run statistic X (final accuracy, steps to the
threshold, ...):

Design. A seed fixes a run's data stream (each task draws its batches from its own generator
seeded by `seed`) and its initial weights, so "A, seed 1" and "B, seed 1" see the same batches:
they are a pair. The comparison is PAIRED when A and B share at least 2 seeds, each seed occurs
once a side, and the two runs of every shared seed differ only in KEY (and in keys that do not
change what a run computes: collect.RUN_ONLY_KEYS); it uses the shared seeds and says how many
runs it leaves without a partner. Otherwise it is UNPAIRED, and the `why` column says why.

    paired     d_i = A_i − B_i over the shared seeds; difference = mean d, 95 % t interval of
               mean d, paired t-test (scipy.stats.ttest_rel), Wilcoxon signed-rank test
               (scipy.stats.wilcoxon), BCa bootstrap interval of mean d
    unpaired   difference = mean A − mean B, Welch's interval and t-test (scipy.stats.ttest_ind,
               equal_var=False; Welch–Satterthwaite df), Mann–Whitney U test, BCa bootstrap
               interval of the difference (each side resampled on its own)

and for both: p_holm, Holm's correction of p_value over every test of the table (all groups,
pairs and statistics); p_improvement, P(A better than B) ("better" from quantities.py: higher
accuracy, lower loss, fewer steps; a run that never reached the threshold counts as worse than any
that did); wins (paired: pairs in which A is better, ties ½); seeds_needed, the seeds per side
(pairs) for 80 % power at alpha = 0.05 for the observed standardised effect (stats.seeds_needed).

A run without a value of X is left out of X's tests and counted in the note: for
steps_to_threshold a run that never reached the threshold. No t-test (NaN, "–") where a side has
fewer than 2 values or nothing varies (t is 0/0 or ±inf); the note says what a small sample cannot
give (Wilcoxon on 3 pairs never goes below p = 0.25; no bootstrap below 5 values).
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from rnn_experiments.analysis.aggregate import (FORMATS, NEVER_GROUP, STATS, check_keys, stats_of,
                                                latex_tabular, markdown_table, per_run)
from rnn_experiments.analysis.collect import AnalysisError, config_keys, is_run_only, runs_of, setting
from rnn_experiments.analysis.quantities import stat_name, statistic
from rnn_experiments.analysis.stats import (ALPHA, MAX_SEEDS, MIN_BOOTSTRAP, POWER, bootstrap_ci,
                                            effect_size, holm, paired, prob_improvement,
                                            seeds_needed, welch, wilcoxon_floor, wins)

COMPARE_STATS = STATS + ("wall_time_s",)
FEW_SEEDS = 3     # fewer than this on a side: say so in the note
COLUMNS = ["key", "a", "b", "statistic", "design", "test", "n_a", "n_b", "n_pairs", "excluded_a",
           "excluded_b", "mean_a", "mean_b", "difference", "ci_low", "ci_high", "df", "p_value",
           "p_holm", "rank_test", "p_rank", "boot_low", "boot_high", "p_improvement", "wins",
           "seeds_needed", "why", "note"]
TESTS = {"paired": ("paired t", "Wilcoxon signed-rank"), "unpaired": ("Welch t", "Mann–Whitney U")}


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


def _seeds(seeds) -> str:
    return ", ".join(f"{s:g}" if isinstance(s, (float, np.floating)) else str(s) for s in seeds)


def pairing(ga: pd.DataFrame, gb: pd.DataFrame, key: str, keys: list[str], a, b) -> tuple[list, str]:
    """(the shared seeds to pair on, or [] for an unpaired comparison; why, in words). Runs of a
    seed pair when their configs differ only in `key`; where `key` is a part's name (model.name),
    the part's other settings (model.*: its _target_ and arguments) are what the two parts are,
    so they may differ too."""
    name_a, name_b = f"{key}={a}", f"{key}={b}"
    if "seed" not in ga or ga["seed"].isna().any() or gb["seed"].isna().any():
        return [], "unpaired: a run without a recorded seed"
    for g, name in ((ga, name_a), (gb, name_b)):
        repeated = g["seed"][g["seed"].duplicated()]
        if len(repeated):
            return [], (f"unpaired: seed {_seeds(repeated.unique()[:1])} occurs more than once in "
                        f"{name} (its runs differ in a key outside the group)")
    common = _sorted_values(set(ga["seed"]) & set(gb["seed"]))
    if len(common) < 2:
        return [], f"unpaired: {name_a} and {name_b} share {len(common)} seed(s), a paired test needs 2"
    part = key.removesuffix(".name") + "." if key.endswith(".name") and key.count(".") == 1 else None
    cfg_keys = [k for k in keys if k not in (key, "seed") and not (part and k.startswith(part))]
    by_seed_a, by_seed_b = ga.set_index("seed"), gb.set_index("seed")
    for s in common:
        ca, cb = by_seed_a.loc[s, cfg_keys].to_dict(), by_seed_b.loc[s, cfg_keys].to_dict()
        if setting(ca) != setting(cb):
            diff = [k for k in cfg_keys if not is_run_only(k) and setting({k: ca[k]}) != setting({k: cb[k]})]
            return [], (f"unpaired: the runs of seed {_seeds([s])} differ in {', '.join(diff[:3])} "
                        f"besides {key}")
    alone_a, alone_b = len(ga) - len(common), len(gb) - len(common)
    why = (f"paired by seed: {len(common)} shared seeds ({_seeds(common)}), the runs of a seed differ "
           f"only in {key}")
    if alone_a or alone_b:
        why += f"; left out without a partner: {name_a} {alone_a} run(s), {name_b} {alone_b} run(s)"
    return common, why


def _values(g: pd.DataFrame, stat: str, censored: bool) -> pd.Series:
    """The statistic of each run; `censored`: a run that never reached the threshold as +inf."""
    v = g[stat].astype(float)
    return v.fillna(np.inf) if censored else v


def _row(ga, gb, stat, common, better) -> dict:
    """The numbers of one statistic of one pair of values (see the module docstring)."""
    censored = stat == "steps_to_threshold"
    if common:
        xa = ga.set_index("seed").loc[common, stat].astype(float).to_numpy()
        xb = gb.set_index("seed").loc[common, stat].astype(float).to_numpy()
        r = paired(xa, xb)
        keep = ~(np.isnan(xa) | np.isnan(xb))
        r["boot_low"], r["boot_high"] = bootstrap_ci(xa[keep] - xb[keep])
        fa = ga.set_index("seed").loc[common].pipe(_values, stat, censored).to_numpy()
        fb = gb.set_index("seed").loc[common].pipe(_values, stat, censored).to_numpy()
        r["p_improvement"] = prob_improvement(fa, fb, better)
        r["wins"], _ = wins(fa, fb, better)
        r["seeds_needed"] = seeds_needed(effect_size(xa, xb, True), True)
        r["excluded_a"] = int(np.isnan(xa).sum())
        r["excluded_b"] = int(np.isnan(xb).sum())
        r["n_pairs"] = len(common)     # n_a = n_b: the pairs with a value on both sides
    else:
        va, vb = ga[stat].astype(float), gb[stat].astype(float)
        r = welch(va, vb)
        r.update(n_pairs=np.nan, wins=np.nan)
        r["boot_low"], r["boot_high"] = bootstrap_ci(va, vb)
        r["p_improvement"] = prob_improvement(_values(ga, stat, censored), _values(gb, stat, censored), better)
        r["seeds_needed"] = seeds_needed(effect_size(va, vb, False), False)
        r["excluded_a"], r["excluded_b"] = int(va.isna().sum()), int(vb.isna().sum())
    return r


def _note(r: dict, stat: str, threshold: float, threshold_metric: str) -> str:
    """What a row's numbers cannot say, and which runs it leaves out."""
    notes = []
    is_paired = r["design"] == "paired"
    n = f"{r['n_a']} pairs" if is_paired else f"{r['a']} {r['n_a']}, {r['b']} {r['n_b']}"
    if min(r["n_a"], r["n_b"]) < 2:
        notes.append(f"n < 2 ({n}): no test")
    elif min(r["n_a"], r["n_b"]) < FEW_SEEDS:
        notes.append(f"n < {FEW_SEEDS} seeds ({n})")
    if min(r["n_a"], r["n_b"]) >= 2 and np.isnan(r["p_value"]):
        notes.append("the differences do not vary: no t-test" if is_paired
                     else "no spread on either side: no t-test")
    if min(r["n_a"], r["n_b"]) >= 1 and not np.isnan(r["p_rank"]):
        floor = (wilcoxon_floor(r["n_a"]) if is_paired
                 else 2.0 / math.comb(r["n_a"] + r["n_b"], r["n_a"]))
        if floor > ALPHA:
            test = "Wilcoxon" if is_paired else "Mann–Whitney"
            notes.append(f"{test} on {n} cannot give p < {floor:.2g}")
    if min(r["n_a"], r["n_b"]) >= 1 and min(r["n_a"], r["n_b"]) < MIN_BOOTSTRAP:
        notes.append(f"no bootstrap below {MIN_BOOTSTRAP} {'pairs' if is_paired else 'seeds a side'}")
    if min(r["n_a"], r["n_b"]) >= 2 and np.isnan(r["seeds_needed"]):
        notes.append("no spread: no estimate of the seeds needed" if r["difference"] != 0
                     else "no difference: no estimate of the seeds needed")
    if r["excluded_a"] or r["excluded_b"]:
        why = (f"never reached {threshold_metric} ≥ {threshold:g}" if stat == "steps_to_threshold"
               else "no value")
        total_a = r["n_pairs"] if is_paired else r["n_a"] + r["excluded_a"]
        total_b = r["n_pairs"] if is_paired else r["n_b"] + r["excluded_b"]
        notes.append(f"{why}, excluded: {r['a']} {r['excluded_a']} of {total_a}, "
                     f"{r['b']} {r['excluded_b']} of {total_b}"
                     + (f" ({r['n_pairs'] - r['n_a']} pair(s) left out)" if is_paired else ""))
    return "; ".join(notes)


def _pair_rows(g: pd.DataFrame, key: str, a, b, stats, keys, threshold, threshold_metric) -> list[dict]:
    ga, gb = g[g[key] == a], g[g[key] == b]
    common, why = pairing(ga, gb, key, keys, a, b)
    design = "paired" if common else "unpaired"
    rows = []
    for stat in stats:
        r = dict(key=key, a=a, b=b, statistic=stat, design=design, test=TESTS[design][0],
                 rank_test=TESTS[design][1], why=why,
                 **_row(ga, gb, stat, common, statistic(stat).better))
        r["note"] = _note(r, stat, threshold, threshold_metric)
        rows.append(r)
    return rows


def compare(df: pd.DataFrame, key: str, by=None, threshold: float = 0.99,
            threshold_metric: str = "accuracy") -> pd.DataFrame:
    """The comparison table (numbers; see `format_compare`): a row per group of the other group
    keys, pair (A, B) of `key`'s values present in that group, and per-run statistic.

    Columns: *other keys, then COLUMNS: key, a, b, statistic, design (paired | unpaired), test,
    n_a, n_b (values used; paired: both the pairs with a value on both sides), n_pairs (paired:
    the same-seed pairs, complete or not; the `wins` are out of these), excluded_a, excluded_b
    (runs with metrics but no value: never reached the threshold), mean_a, mean_b, difference
    (A − B), ci_low, ci_high (its 95 % t interval), df, p_value (the t-test), p_holm, rank_test,
    p_rank, boot_low, boot_high (BCa bootstrap interval of the difference), p_improvement
    (P(A better than B)), wins (paired: pairs in which A is better), seeds_needed (seeds a side
    for 80 % power; inf: more than stats.MAX_SEEDS), why (the design's reason), note. Only runs
    with metrics count.
    """
    check_compare(df, key)
    others = [k for k in check_keys(df, by) if k != key]
    keys = config_keys(df)
    r = per_run(df, threshold, threshold_metric)
    r = r[r["has_metrics"]]
    stats = stats_of(r, COMPARE_STATS)
    rows = []
    for group, g in (r.groupby(others, dropna=False, sort=True) if others else [((), r)]):
        group = group if isinstance(group, tuple) else (group,)
        for a, b in itertools.combinations(_sorted_values(g[key].dropna().unique()), 2):
            rows += [{**dict(zip(others, group)), **row}
                     for row in _pair_rows(g, key, a, b, stats, keys, threshold, threshold_metric)]
    if not rows:
        raise CompareError(f"--compare: no group of {', '.join(others)} holds two values of {key!r}")
    out = pd.DataFrame(rows, columns=others + COLUMNS)
    out["p_holm"] = holm(out["p_value"])
    out.attrs.update(by=others, key=key, threshold=threshold, threshold_metric=threshold_metric,
                     n_tests=int(out["p_value"].notna().sum()))
    return out


# ---- text renderings ---------------------------------------------------------------------------

def _num(x, fmt: str) -> str:
    """x formatted, "–" for NaN, never "-0.0"."""
    if pd.isna(x):
        return "–"
    text = f"{x:{fmt}}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text


def _interval(low, high, fmt: str) -> str:
    return "–" if pd.isna(low) else f"[{_num(low, fmt)}, {_num(high, fmt)}]"


def _diff(d, low, high, fmt: str) -> str:
    """"-0.080 [-0.341, 0.181]"; the interval left out where there is none."""
    if pd.isna(low):
        return _num(d, fmt)
    return f"{_num(d, fmt)} {_interval(low, high, fmt)}"


def _improvement(p, w, n, design) -> str:
    if pd.isna(p):
        return "–"
    return f"{p:.2f}" + (f" ({w:g} of {n:g} pairs)" if design == "paired" and not pd.isna(w) else "")


def _seeds_needed(n) -> str:
    if pd.isna(n):
        return "–"
    return f"> {MAX_SEEDS}" if np.isinf(n) else f"{n:.0f}"


def format_compare(c: pd.DataFrame) -> pd.DataFrame:
    """`compare`'s numbers as the strings of the report table. With a single pair (A, B) in the
    whole table the columns are named after it (`model.name=lstm mean (n)`, `model.name=lstm −
    model.name=peep_lstm`); with several pairs, A and B get columns of their own."""
    by, key = c.attrs["by"], c.attrs["key"]
    thr, m = c.attrs["threshold"], c.attrs["threshold_metric"]
    fmt = [FORMATS.get(s, ".3g") for s in c["statistic"]]
    one_pair = len(c[["a", "b"]].drop_duplicates()) == 1
    a, b = ((f"{key}={c['a'].iloc[0]}", f"{key}={c['b'].iloc[0]}") if one_pair else ("A", "B"))
    out = pd.DataFrame({k: c[k].astype(str) for k in by})
    if not one_pair:
        out[f"A: {key}="], out[f"B: {key}="] = c["a"].astype(str), c["b"].astype(str)
    out["statistic"] = [stat_name(s, thr, m) for s in c["statistic"]]
    for side, name in (("a", a), ("b", b)):
        out[f"{name} mean (n)"] = [f"{_num(x, f)} ({n})"
                                   for x, n, f in zip(c[f"mean_{side}"], c[f"n_{side}"], fmt)]
    out[f"{a} − {b} [95 % CI]"] = [_diff(d, lo, hi, f) for d, lo, hi, f
                                   in zip(c["difference"], c["ci_low"], c["ci_high"], fmt)]
    out["bootstrap 95 % CI"] = [_interval(lo, hi, f) for lo, hi, f in zip(c["boot_low"], c["boot_high"], fmt)]
    out["test"] = c["test"]
    out["p"] = [_num(p, "#.2g") for p in c["p_value"]]
    out["p (Holm)"] = [_num(p, "#.2g") for p in c["p_holm"]]
    out["p (Wilcoxon / Mann–Whitney)"] = [_num(p, "#.2g") for p in c["p_rank"]]
    out[f"P({a if one_pair else 'A'} better)"] = [
        _improvement(p, w, n, d) for p, w, n, d in zip(c["p_improvement"], c["wins"], c["n_pairs"], c["design"])]
    out[f"seeds for {POWER * 100:.0f} % power"] = [_seeds_needed(n) for n in c["seeds_needed"]]
    out["note"] = c["note"]
    return out


def _designs(c: pd.DataFrame) -> list[str]:
    """One line per group and pair: the design and why."""
    by, key = c.attrs["by"], c.attrs["key"]
    lines = []
    for _, r in c.drop_duplicates(by + ["a", "b"]).iterrows():
        group = ", ".join(f"{k}={r[k]}" for k in by)
        lines.append(f"{group + ': ' if group else ''}{key}={r['a']} vs {key}={r['b']}: {r['why']}")
    return lines


def caption(c: pd.DataFrame) -> str:
    return ("A − B: difference of the means over seeds [95 % t interval: of the same-seed "
            "differences (paired t) or Welch–Satterthwaite (Welch t)]; p: the t-test of the test "
            "column (scipy.stats.ttest_rel or ttest_ind with equal_var=False); p (Holm): Holm's "
            f"correction over the {c.attrs.get('n_tests', 0)} t-tests of this table (statsmodels); "
            "Wilcoxon signed-rank (paired) or Mann–Whitney U p; bootstrap: 95 % BCa interval "
            "(scipy.stats.bootstrap, 9,999 resamples, seed 0), from "
            f"{MIN_BOOTSTRAP} values a side; P(A better): probability of improvement, a run of A "
            "better than one of B (higher accuracy, lower loss, fewer steps; a run that never "
            "reached the threshold worse than any that did; ties ½); seeds for "
            f"{POWER * 100:.0f} % power: seeds a side (pairs) for a two-sided t-test at α = {ALPHA:g} to "
            "detect the observed effect (statsmodels)")


def compare_markdown(c: pd.DataFrame) -> str:
    table = markdown_table(format_compare(c), caption(c))
    return table + "\n" + "\n".join(f"* {line}" for line in _designs(c)) + "\n"


def compare_latex(c: pd.DataFrame) -> str:
    """The booktabs tabular; its caption and the design lines as comments above it."""
    tex = latex_tabular(format_compare(c), caption(c))
    first, rest = tex.split("\n", 1)
    return first + "\n" + "".join(f"% {line}\n" for line in _designs(c)) + rest
