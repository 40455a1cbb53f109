"""The statistics of the comparison tables, each from scipy.stats or statsmodels (none written by
hand): the paired and the unpaired (Welch) comparison of two samples with their rank tests,
bootstrap intervals, the probability of improvement, Holm's correction and the number of seeds a
test needs for 80 % power.

    paired(a, b)       d_i = a_i − b_i over same-seed pairs: mean d, its t interval, the paired
                       t-test (scipy.stats.ttest_rel) and the Wilcoxon signed-rank test
                       (scipy.stats.wilcoxon, exact for small n)
    welch(a, b)        mean a − mean b, Welch's interval and t-test (scipy.stats.ttest_ind,
                       equal_var=False) and the Mann–Whitney U test (scipy.stats.mannwhitneyu)
    bootstrap_ci       scipy.stats.bootstrap (BCa, 9,999 resamples, fixed seed) of a mean or of a
                       difference of means; none below MIN_BOOTSTRAP values a side
    prob_improvement   P(A better than B): a run of A against a run of B drawn at random, ties
                       counting one half (Agarwal et al. 2021) = U / (n_a n_b), U from
                       scipy.stats.mannwhitneyu
    holm(p)            statsmodels.stats.multitest.multipletests(p, method="holm")
    seeds_needed       the smallest n (pairs, or runs a side) with power >= 0.8 at alpha = 0.05 for
                       the observed standardised effect: statsmodels' TTestPower (paired: d_z =
                       mean d / sd d) or TTestIndPower (unpaired: Cohen's d with the pooled sd)

Small samples: with n pairs and no ties the Wilcoxon signed-rank test cannot give a two-sided p
below 2 / 2^n (0.25 for n = 3, 0.0625 for n = 5): `wilcoxon_floor`. A bootstrap of n values sees
at most C(2n − 1, n) distinct resamples (10 for n = 3, 35 for n = 4) and its interval never
leaves the sample's range, so it is not computed below MIN_BOOTSTRAP values.
"""
from __future__ import annotations

import contextlib
import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats as st

from rnn_experiments.analysis.quantities import HIGHER, LOWER

CONFIDENCE = 0.95
ALPHA, POWER = 0.05, 0.8
MIN_BOOTSTRAP = 5        # fewer values (a side): no bootstrap interval
BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 0       # the same intervals at every run of the analysis
MAX_SEEDS = 1000         # seeds_needed beyond this: reported as > MAX_SEEDS


def _values(x) -> np.ndarray:
    return pd.Series(x, dtype=float).dropna().to_numpy()


@contextlib.contextmanager
def _quiet():
    """scipy's warnings for nearly constant samples, ties and degenerate resamples: the tables
    say in words what they mean."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def welch(a, b, confidence: float = CONFIDENCE) -> dict:
    """Means, A − B, its Welch interval, Welch's t-test p and the Mann–Whitney U p of two
    independent samples (NaN skipped). n_a, n_b count the values used; the t results are NaN
    where a side has fewer than 2 values or neither side varies (t is 0/0 or ±inf), the rank
    test's where a side is empty."""
    a, b = _values(a), _values(b)
    out = dict(n_a=len(a), n_b=len(b), mean_a=_mean(a), mean_b=_mean(b),
               difference=_mean(a) - _mean(b), ci_low=np.nan, ci_high=np.nan, df=np.nan,
               p_value=np.nan, p_rank=np.nan)
    with _quiet():
        if len(a) and len(b):
            out["p_rank"] = st.mannwhitneyu(a, b, alternative="two-sided").pvalue
        if min(len(a), len(b)) >= 2 and not (a.std() == 0 and b.std() == 0):
            res = st.ttest_ind(a, b, equal_var=False)
            ci = res.confidence_interval(confidence)
            out.update(ci_low=ci.low, ci_high=ci.high, df=res.df, p_value=res.pvalue)
    return out


def paired(a, b, confidence: float = CONFIDENCE) -> dict:
    """The paired comparison of a[i] with b[i] (same seed); pairs with a NaN on either side are
    left out. Keys as `welch`'s, plus n_pairs. The t results are NaN for
    fewer than 2 pairs or differences that do not vary; the Wilcoxon p for no pair or all
    differences zero."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    d = a - b
    n = len(d)
    out = dict(n_a=n, n_b=n, n_pairs=n, mean_a=_mean(a), mean_b=_mean(b), difference=_mean(d),
               ci_low=np.nan, ci_high=np.nan, df=np.nan, p_value=np.nan, p_rank=np.nan)
    with _quiet():
        if n and np.any(d != 0):
            out["p_rank"] = st.wilcoxon(a, b, alternative="two-sided").pvalue
        if n >= 2 and np.std(d) > 0:
            res = st.ttest_rel(a, b)
            ci = res.confidence_interval(confidence)
            out.update(ci_low=ci.low, ci_high=ci.high, df=res.df, p_value=res.pvalue)
    return out


def _mean(x: np.ndarray) -> float:
    return float(np.mean(x)) if len(x) else np.nan


def wilcoxon_floor(n: int) -> float:
    """The smallest two-sided p of the exact Wilcoxon signed-rank test on n pairs: 2 / 2^n."""
    return 2.0 / 2 ** n if n > 0 else 1.0


def bootstrap_ci(*samples, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """BCa bootstrap interval (scipy.stats.bootstrap, fixed seed) of the mean of one sample, or
    of mean(a) − mean(b) for two independent samples (each resampled on its own); (NaN, NaN)
    where a sample has fewer than MIN_BOOTSTRAP values or the resamples are degenerate (no
    spread)."""
    xs = [_values(s) for s in samples]
    if min(map(len, xs)) < MIN_BOOTSTRAP or all(np.ptp(x) == 0 for x in xs):
        return np.nan, np.nan
    if len(xs) == 1:
        statistic = np.mean
    else:
        def statistic(x, y, axis=-1):
            return np.mean(x, axis=axis) - np.mean(y, axis=axis)
    with _quiet():
        res = st.bootstrap(tuple(xs), statistic, n_resamples=BOOTSTRAP_RESAMPLES, method="BCa",
                           confidence_level=confidence, vectorized=True,
                           rng=np.random.default_rng(BOOTSTRAP_SEED))
    ci = res.confidence_interval
    return float(ci.low), float(ci.high)


def prob_improvement(a, b, better: str) -> float:
    """P(A better than B): the share of the n_a · n_b pairs (a run of A, a run of B) in which A's
    value is the better one (HIGHER: larger; LOWER: smaller), ties counting one half; the
    Mann–Whitney U of A against B (against A for LOWER) over n_a n_b. Values may be ±inf (a run
    that never reached a threshold: worse than any that did); NaN where a side is empty."""
    a, b = (pd.Series(x, dtype=float).dropna().to_numpy() for x in (a, b))
    if not len(a) or not len(b) or better not in (HIGHER, LOWER):
        return np.nan
    x, y = (a, b) if better == HIGHER else (-a, -b)
    with _quiet():
        u = st.mannwhitneyu(x, y, alternative="two-sided", method="asymptotic").statistic
    return float(u) / (len(a) * len(b))


def wins(a, b, better: str) -> tuple[float, int]:
    """(pairs in which a[i] is the better value, ties one half; pairs compared): the paired
    counterpart of `prob_improvement`. Pairs with a NaN are left out; ±inf compare as numbers."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    if better not in (HIGHER, LOWER):
        return np.nan, len(a)
    ahead = a > b if better == HIGHER else a < b
    return float(np.sum(ahead) + 0.5 * np.sum(a == b)), len(a)


def holm(p_values) -> np.ndarray:
    """Holm's step-down correction (statsmodels) of the non-NaN p-values; NaN stays NaN."""
    from statsmodels.stats.multitest import multipletests
    p = np.asarray(p_values, dtype=float)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = multipletests(p[ok], alpha=ALPHA, method="holm")[1]
    return out


def effect_size(a, b, is_paired: bool) -> float:
    """The standardised effect the power analysis uses: d_z = mean(a − b) / sd(a − b) for pairs,
    Cohen's d = (mean a − mean b) / pooled sd for independent samples (sd with ddof = 1); NaN
    where there is no spread or too few values."""
    if is_paired:
        a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        d = (a - b)[~(np.isnan(a) | np.isnan(b))]
        if len(d) < 2 or np.std(d, ddof=1) == 0:
            return np.nan
        return float(np.mean(d) / np.std(d, ddof=1))
    a, b = _values(a), _values(b)
    if min(len(a), len(b)) < 2:
        return np.nan
    pooled = math.sqrt(((len(a) - 1) * a.var(ddof=1) + (len(b) - 1) * b.var(ddof=1))
                       / (len(a) + len(b) - 2))
    return float((a.mean() - b.mean()) / pooled) if pooled > 0 else np.nan


def power(effect: float, n: int, is_paired: bool, alpha: float = ALPHA) -> float:
    """The power of the two-sided t-test (paired on n pairs, or two groups of n) at `alpha` for
    a true standardised effect `effect` (statsmodels: the noncentral t)."""
    from statsmodels.stats.power import TTestIndPower, TTestPower
    if is_paired:
        return float(TTestPower().power(effect_size=effect, nobs=n, alpha=alpha))
    return float(TTestIndPower().power(effect_size=effect, nobs1=n, ratio=1.0, alpha=alpha))


def seeds_needed(effect: float, is_paired: bool, alpha: float = ALPHA, target: float = POWER) -> float:
    """The smallest n >= 2 (pairs, or runs in each group) whose two-sided t-test has power >=
    `target` at `alpha` for the standardised effect `effect` (`effect_size`); NaN where the
    effect is NaN or 0, inf beyond MAX_SEEDS. Power grows with n, so a bisection over integers
    finds it exactly: the first n of a doubling search, then a bisection."""
    if not np.isfinite(effect) or effect == 0:
        return np.nan
    hi = 2                     # doubled until enough (small n first: the noncentral t is
    while power(effect, hi, is_paired, alpha) < target:   # exact there, NaN at huge n)
        if hi >= MAX_SEEDS:
            return np.inf
        hi = min(2 * hi, MAX_SEEDS)
    lo = hi // 2               # power(lo) < target <= power(hi) (lo = 1: never enough)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if power(effect, mid, is_paired, alpha) >= target:
            hi = mid
        else:
            lo = mid
    return float(hi)
