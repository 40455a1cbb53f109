"""The comparison's statistics (issue 25) against scipy and statsmodels on hand-made numbers:
paired and Welch tests with their rank tests, bootstrap intervals, probability of improvement,
Holm's correction, seeds needed for 80 % power; the pairing by seed and its premise (one seed,
one data stream, whatever the model)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats as st

from rnn_experiments.analysis import collect, compare, compare_latex, compare_markdown, table, to_markdown
from rnn_experiments.analysis import stats as S
from rnn_experiments.sweeps.analyze import AnalyzeSweep
from rnn_experiments.analysis.compare import format_compare
from rnn_experiments.analysis.synthetic import config, metrics_frame, write_run

A = np.array([0.91, 0.84, 0.97, 0.88, 0.93, 0.80])
B = np.array([0.86, 0.83, 0.90, 0.85, 0.87, 0.79])     # A − B all > 0: 0.05, 0.01, 0.07, 0.03, 0.06, 0.01


def test_paired_equals_scipy():
    r = S.paired(A, B)
    ref = st.ttest_rel(A, B)
    d = A - B
    half = st.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d))   # hand: mean d ± t s/√n
    assert r["difference"] == pytest.approx(d.mean()) and r["n_pairs"] == 6
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((d.mean() - half, d.mean() + half))
    assert (r["ci_low"], r["ci_high"]) == pytest.approx(tuple(ref.confidence_interval(0.95)))
    assert r["p_value"] == pytest.approx(ref.pvalue) and r["df"] == 5
    assert r["p_rank"] == pytest.approx(st.wilcoxon(A, B).pvalue)
    assert r["p_rank"] == pytest.approx(2 / 2 ** 6)            # every difference positive: the exact floor
    # a pair with a NaN (a run that never reached the threshold) is left out
    r5 = S.paired(np.r_[A, np.nan], np.r_[B, 0.5])
    assert r5["n_pairs"] == 6 and r5["p_value"] == pytest.approx(ref.pvalue)


def test_welch_equals_scipy():
    a, b = A[:4], B[1:]
    r = S.welch(a, b)
    ref = st.ttest_ind(a, b, equal_var=False)
    assert (r["n_a"], r["n_b"]) == (4, 5) and r["difference"] == pytest.approx(a.mean() - b.mean())
    assert r["p_value"] == pytest.approx(ref.pvalue) and r["df"] == pytest.approx(ref.df)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx(tuple(ref.confidence_interval(0.95)))
    assert r["p_rank"] == pytest.approx(st.mannwhitneyu(a, b).pvalue)


def test_small_samples_give_no_number_that_means_nothing():
    three = S.paired([3.0, 2.0, 5.0], [1.0, 1.0, 1.0])
    assert three["p_rank"] == pytest.approx(0.25) == S.wilcoxon_floor(3)   # 3 pairs: never below 0.25
    assert np.isnan(S.bootstrap_ci([1.0, 2.0, 4.0])).all()                # 10 distinct resamples
    assert np.isnan(S.bootstrap_ci(A, [1.0, 2.0, 3.0])).all()
    same = S.paired([1.0, 2.0], [0.0, 1.0])                                 # differences 1, 1: no spread
    assert np.isnan(same["p_value"]) and same["difference"] == 1.0
    assert np.isnan(S.seeds_needed(S.effect_size([1.0, 2.0], [0.0, 1.0], True), True))


def test_bootstrap_is_scipys_bca_with_a_fixed_seed():
    low, high = S.bootstrap_ci(A)
    ref = st.bootstrap((A,), np.mean, n_resamples=9999, method="BCa", rng=np.random.default_rng(0))
    assert (low, high) == pytest.approx(tuple(ref.confidence_interval))
    assert S.bootstrap_ci(A) == (low, high)                                 # the same at every run
    two = S.bootstrap_ci(A, B)
    ref2 = st.bootstrap((A, B), lambda x, y, axis=-1: x.mean(axis) - y.mean(axis), n_resamples=9999,
                        method="BCa", rng=np.random.default_rng(0))
    assert two == pytest.approx(tuple(ref2.confidence_interval))


def test_probability_of_improvement_counts_pairs_of_runs():
    a, b = [1.0, 2.0, 3.0], [2.0, 2.0, 0.0]
    # by hand, higher is better: 1 beats 0; 2 ties 2, 2 and beats 0; 3 beats all: 1 + (1 + 1) + 3 = 6 of 9
    assert S.prob_improvement(a, b, "higher") == pytest.approx(6 / 9)
    # lower is better: 1 beats 2, 2; 2 ties twice: 2 + 1 = 3 of 9
    assert S.prob_improvement(a, b, "lower") == pytest.approx(3 / 9)
    # a run that never reached the threshold (+inf steps) is worse than any that did
    assert S.prob_improvement([100.0, np.inf], [200.0, 300.0], "lower") == pytest.approx(2 / 4)
    assert S.wins([100.0, np.inf, 50.0], [200.0, 300.0, 50.0], "lower") == (1.5, 3)


@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
def test_holm_equals_statsmodels_and_the_hand_rule():
    from statsmodels.stats.multitest import multipletests
    p = [0.01, np.nan, 0.04, 0.03]
    got = S.holm(p)
    # hand: sorted 0.01, 0.03, 0.04 times 3, 2, 1 -> 0.03, 0.06, 0.04, made monotone: 0.03, 0.06, 0.06
    assert np.isnan(got[1]) and list(got[[0, 2, 3]]) == pytest.approx([0.03, 0.06, 0.06])
    assert list(got[[0, 2, 3]]) == pytest.approx(list(multipletests([0.01, 0.04, 0.03], method="holm")[1]))


@pytest.mark.parametrize("effect, is_paired", [(1.0, True), (1.0, False), (0.5, True), (2.5, False)])
def test_seeds_needed_is_the_first_n_with_80_percent_power(effect, is_paired):
    def power(n):   # the noncentral t by hand (scipy): paired df n−1, nc d√n; two groups df 2n−2, nc d√(n/2)
        df, nc = (n - 1, effect * math.sqrt(n)) if is_paired else (2 * n - 2, effect * math.sqrt(n / 2))
        crit = st.t.ppf(0.975, df)
        return st.nct.sf(crit, df, nc) + st.nct.cdf(-crit, df, nc)
    n = S.seeds_needed(effect, is_paired)
    assert power(n) >= 0.8 > power(n - 1)
    assert S.power(effect, int(n), is_paired) == pytest.approx(power(n), abs=1e-6)
    assert S.seeds_needed(effect, True) <= S.seeds_needed(effect, False)    # pairing needs fewer
    assert S.seeds_needed(0.01, is_paired) == np.inf                        # more than MAX_SEEDS
    assert S.effect_size(A, B, True) == pytest.approx((A - B).mean() / (A - B).std(ddof=1))
    pooled = math.sqrt((A.var(ddof=1) + B.var(ddof=1)) / 2)
    assert S.effect_size(A, B, False) == pytest.approx((A.mean() - B.mean()) / pooled)


# ---- the comparison table on synthetic run folders -------------------------------------------------

STEPS = [10, 20, 30, 40]


def _runs(root, finals: dict, extra=None):
    """A run per (model, seed) whose accuracy ends at finals[(model, seed)] (rising to it)."""
    for num, ((model, seed), final) in enumerate(finals.items()):
        cfg = config(**{"model.name": model, "seed": seed, **(extra(model, seed) if extra else {})})
        write_run(root / str(num), cfg, metrics_frame(STEPS, np.linspace(0.5, final, 4)), wall_time_s=10.0)
    return root


SEED_EFFECT = {0: 0.60, 1: 0.70, 2: 0.80, 3: 0.90, 4: 0.65}     # what a seed's data and init give
NOISE = {0: 0.001, 1: -0.002, 2: 0.0015, 3: -0.001, 4: 0.0005}
FINALS = {**{("lstm", s): e for s, e in SEED_EFFECT.items()},
          **{("peep_lstm", s): e + 0.02 + NOISE[s] for s, e in SEED_EFFECT.items()}}


@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
def test_pairing_finds_a_difference_welch_cannot(tmp_path):
    """A shared seed effect (0.6-0.9) hides a small model effect (0.02) from Welch; the same-seed
    differences show it."""
    df = collect(_runs(tmp_path / "s", FINALS))
    c = compare(df, "model.name").set_index("statistic")
    row = c.loc["final_accuracy"]
    a = np.array([FINALS[("lstm", s)] for s in range(5)])
    b = np.array([FINALS[("peep_lstm", s)] for s in range(5)])
    assert row["design"] == "paired" and row["test"] == "paired t" and row["n_pairs"] == 5
    assert row["p_value"] == pytest.approx(st.ttest_rel(a, b).pvalue) and row["p_value"] < 0.001
    assert st.ttest_ind(a, b, equal_var=False).pvalue > 0.5                  # what Welch would say
    assert row["p_rank"] == pytest.approx(st.wilcoxon(a, b).pvalue) == pytest.approx(0.0625)
    assert row["p_improvement"] == pytest.approx(st.mannwhitneyu(a, b).statistic / 25)
    assert row["wins"] == 0                                                   # peep better in every pair
    assert (row["boot_low"], row["boot_high"]) == pytest.approx(S.bootstrap_ci(a - b))
    assert row["seeds_needed"] == 2
    assert "paired by seed: 5 shared seeds (0, 1, 2, 3, 4)" in row["why"]
    assert "Wilcoxon on 5 pairs cannot give p < 0.062" in row["note"]
    # Holm over the table's t-tests: statsmodels on the same p-values
    from statsmodels.stats.multitest import multipletests
    ok = c["p_value"].notna()
    assert list(c.loc[ok, "p_holm"]) == pytest.approx(list(multipletests(c.loc[ok, "p_value"], method="holm")[1]))
    assert compare(df, "model.name").attrs["n_tests"] == ok.sum()


def test_partly_shared_seeds_pair_the_common_ones_and_say_so(tmp_path):
    finals = {k: v for k, v in FINALS.items() if k[0] == "lstm" or k[1] in (1, 2, 3)}
    c = compare(collect(_runs(tmp_path / "s", finals)), "model.name").set_index("statistic")
    row = c.loc["final_accuracy"]
    assert row["design"] == "paired" and row["n_pairs"] == 3
    assert row["why"].endswith("left out without a partner: model.name=lstm 2 run(s), model.name=peep_lstm 0 run(s)")
    a = [FINALS[("lstm", s)] for s in (1, 2, 3)]
    b = [FINALS[("peep_lstm", s)] for s in (1, 2, 3)]
    assert row["p_value"] == pytest.approx(st.ttest_rel(a, b).pvalue)
    assert "Wilcoxon on 3 pairs cannot give p < 0.25" in row["note"] and "no bootstrap below 5 pairs" in row["note"]
    assert np.isnan(row["boot_low"])


@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
def test_runs_that_differ_in_another_setting_are_not_paired(tmp_path):
    lr = lambda model, seed: {"train.lr": 1e-3 if model == "lstm" else 1e-4}  # noqa: E731
    df = collect(_runs(tmp_path / "s", FINALS, extra=lr))
    c = compare(df, "model.name", by=["model.name"])       # lr is not a group key here
    assert set(c["design"]) == {"unpaired"} and set(c["test"]) == {"Welch t"}
    assert c["why"].iloc[0] == "unpaired: the runs of seed 0 differ in train.lr besides model.name"
    a = [FINALS[("lstm", s)] for s in range(5)]
    b = [FINALS[("peep_lstm", s)] for s in range(5)]
    row = c.set_index("statistic").loc["final_accuracy"]
    assert row["p_value"] == pytest.approx(st.ttest_ind(a, b, equal_var=False).pvalue)
    # ... but a setting that does not change what a run computes (threads, device) keeps the pairs
    threads = lambda model, seed: {"train.threads": 1 if model == "lstm" else 2}  # noqa: E731
    c = compare(collect(_runs(tmp_path / "t", FINALS, extra=threads)), "model.name", by=["model.name"])
    assert set(c["design"]) == {"paired"}


def test_steps_never_reached_count_as_worse_in_p_improvement_only(tmp_path):
    # threshold 0.81, reached at the last step only: by lstm seed 3, by peep seeds 2 and 3
    c = compare(collect(_runs(tmp_path / "s", FINALS)), "model.name", threshold=0.81).set_index("statistic")
    row = c.loc["steps_to_threshold"]
    assert row["n_pairs"] == 5 and row["n_a"] == row["n_b"] == 1       # 5 pairs, 1 with both values (seed 3)
    assert row["excluded_a"] == 4 and row["excluded_b"] == 3
    assert np.isnan(row["p_value"]) and "n < 2 (1 pairs): no test" in row["note"]
    # runs as steps (inf: never), fewer is better: seeds 0, 1, 3, 4 tie; seed 2: peep
    lstm, peep = [np.inf, np.inf, np.inf, 40, np.inf], [np.inf, np.inf, 40, 40, np.inf]
    assert row["p_improvement"] == pytest.approx(S.prob_improvement(lstm, peep, "lower"))
    assert row["p_improvement"] < 0.5
    assert row["wins"] == S.wins(lstm, peep, "lower")[0] == 2.0
    assert "never reached accuracy ≥ 0.81, excluded: lstm 4 of 5, peep_lstm 3 of 5 (4 pair(s) left out)" in row["note"]


def test_renderings_agree_and_name_the_key(tmp_path):
    finals = {(v, s): 0.6 + 0.05 * s + (0.01 + 0.003 * s * s) * v for v in (False, True) for s in range(3)}
    root = tmp_path / "s"
    for num, ((reset, seed), final) in enumerate(finals.items()):
        write_run(root / str(num), config(**{"model.reset_at_padding": reset, "seed": seed}),
                  metrics_frame(STEPS, np.linspace(0.5, final, 4)))
    c = compare(collect(root), "model.reset_at_padding")
    md, tex = compare_markdown(c), compare_latex(c)
    head = md.splitlines()[0]
    assert "model.reset_at_padding=False − model.reset_at_padding=True [95 % CI]" in head
    assert "False − True" not in head.replace("padding=False − model.reset_at_padding=True", "")
    body = [ln for ln in md.splitlines() if ln.startswith("| ")][1:]
    assert len(body) == len(c) == len(format_compare(c)) == tex.count(r"\\" + "\n") - 1
    for row, line in zip(c.itertuples(), body):
        if not np.isnan(row.p_value):
            assert f"| {row.p_value:#.2g} | {row.p_holm:#.2g} |" in line
    assert "* model.reset_at_padding=False vs model.reset_at_padding=True: paired by seed" in md
    assert "% model.reset_at_padding=False vs model.reset_at_padding=True: paired by seed" in tex
    c.to_csv(tmp_path / "c.csv", index=False)
    back = pd.read_csv(tmp_path / "c.csv")
    assert list(back.columns) == list(c.columns) and np.allclose(back["p_holm"], c["p_holm"], equal_nan=True)


def test_summary_table_has_bootstrap_intervals_from_five_seeds(tmp_path):
    df = collect(_runs(tmp_path / "s", FINALS))
    t = table(df).set_index("model.name")
    finals = [FINALS[("lstm", s)] for s in range(5)]
    low, high = S.bootstrap_ci(finals)
    assert (t.loc["lstm", "final_accuracy_boot_low"], t.loc["lstm", "final_accuracy_boot_high"]) == (low, high)
    assert f"boot [{low:.3f}, {high:.3f}]" in to_markdown(table(df))
    three = table(collect(_runs(tmp_path / "t", {k: v for k, v in FINALS.items() if k[1] < 3})))
    assert three["final_accuracy_boot_low"].isna().all() and "boot [" not in to_markdown(three)


@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
def test_callback_writes_the_paired_comparison(tmp_path):
    sweep = _runs(tmp_path / "sweep", FINALS)
    res = AnalyzeSweep(compare="model.name", formats=["png"], seeds_lines=True, metrics=["accuracy"]).analyze(sweep)
    c = pd.read_csv(sweep / "analysis" / "compare.csv")
    assert set(c["design"]) == {"paired"} and res["compare"]["p_holm"].notna().any()
    assert (sweep / "analysis" / "accuracy.png").is_file()


def test_one_seed_is_one_data_stream_whatever_the_model(make_cfg):
    """The premise of the pairing: the batches of a run come from its seed alone (the task's own
    generator), not from the model it trains; another seed gives another stream."""
    from rnn_experiments.training.setup import setup

    def batches(*overrides, n=3):
        _, data, _, _ = setup(make_cfg(*overrides, "dataset.seq_length=5"))
        return [data.sample(8) for _ in range(n)]

    lstm, peep = batches("model=lstm", "seed=1"), batches("model=peep_lstm", "seed=1")
    for (xa, ya), (xb, yb) in zip(lstm, peep):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    other = batches("model=lstm", "seed=2")
    assert not torch.equal(lstm[0][0], other[0][0])
