"""Plots people read without the docs (issue 26): axis labels with units from one table, bands cut
to each metric's range, losses on a log axis (linear on request), "1 run" legends, legends that
name their key, `key=value` headers; per-seed lines (issue 25); long runs thinned (issue 21);
the gradient plot's paths and zero norms. Plots a paper accepts (issue 34): the 95 % interval of
the mean as a band option, a colour per line and band, legends outside the data, the task's
chance level, plain decimal ticks on a narrow log axis."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rnn_experiments.analysis import aggregate, collect, plot_curves
from rnn_experiments.analysis.plot import MAX_POINTS, legend_of
from rnn_experiments.analysis.quantities import METRICS
from rnn_experiments.analysis.synthetic import config, metrics_frame, write_run

STEPS = [10, 20, 30, 40]


def _sweep(root, acc, loss=None, models=("lstm", "peep_lstm"), extra=None):
    """Runs (model, seed) with the given accuracy (and loss) curves."""
    for num, (m, s) in enumerate((m, s) for m in models for s in range(len(acc))):
        write_run(root / str(num), config(**{"model.name": m, "seed": s, **(extra or {})}),
                  metrics_frame(STEPS, acc[s], loss=None if loss is None else loss[s]))
    return collect(root)


def _bands(ax):
    """(min y, max y) of every filled band of the axes."""
    ys = [p.vertices[:, 1] for coll in ax.collections for p in coll.get_paths()]
    ys = np.concatenate([y[np.isfinite(y)] for y in ys])
    return ys.min(), ys.max()


ACC = [[0.5, 0.9, 1.0, 1.0], [0.5, 0.6, 0.8, 1.0], [0.5, 0.5, 0.6, 0.9]]   # std large where mean near 1
LOSS = [[0.7, 0.1, 1e-3, 1e-4], [0.7, 0.5, 0.3, 1e-3], [0.7, 0.69, 0.6, 0.2]]  # std > mean late


def test_labels_have_units_from_the_one_table(tmp_path):
    df = _sweep(tmp_path / "s", ACC, LOSS)
    for metric, label in (("accuracy", "training accuracy (fraction)"), ("eval_accuracy", "held-out accuracy (fraction)"),
                          ("loss", "training loss (nats)")):
        ax = plot_curves(df, metric).axes[0]
        assert ax.get_ylabel() == label == METRICS[metric].label and ax.get_xlabel() == "training step"
    assert METRICS["eval_loss"].label == "held-out loss (nats)"
    assert METRICS["eval_bpc"].label == "held-out bits per character (bits)"


def test_bands_stay_in_the_metric_range(tmp_path):
    df = _sweep(tmp_path / "s", ACC, LOSS)
    agg = aggregate(df, metric="accuracy")
    assert (agg["mean"] + agg["std"]).max() > 1.02          # an unclipped band would pass 1
    ax = plot_curves(df, "accuracy").axes[0]
    assert _bands(ax)[1] == pytest.approx(1.0) and ax.get_ylim()[1] <= 1.02
    agg = aggregate(df, metric="loss")
    assert (agg["mean"] - agg["std"]).min() < 0               # ... and a loss band below 0
    ax = plot_curves(df, "loss", log_loss=False).axes[0]
    assert ax.get_yscale() == "linear" and _bands(ax)[0] == pytest.approx(0.0)
    ax = plot_curves(df, "loss").axes[0]                      # log: the lowest seed's value, not 0
    assert ax.get_yscale() == "log" and _bands(ax)[0] == pytest.approx(1e-4)


def test_one_run_legends_and_the_key_in_every_legend(tmp_path):
    one = _sweep(tmp_path / "one", ACC[:1], models=("lstm",))
    legend = legend_of(plot_curves(one, "accuracy", chance=None))      # one group: its entry says it
    assert [t.get_text() for t in legend.get_texts()] == ["1 run"] and not legend.get_title().get_text()
    assert not plot_curves(one, "accuracy").axes[0].collections     # no band
    df = _sweep(tmp_path / "two", ACC[:1], extra={"dataset.seq_length": 10})
    _sweep(tmp_path / "two20", ACC[:1], extra={"dataset.seq_length": 20})
    df = collect([tmp_path / "two", tmp_path / "two20"])
    fig = plot_curves(df, "accuracy", panels="dataset.seq_length")
    assert [a.get_title() for a in fig.axes] == ["seq_length=10", "seq_length=20"]
    legend = legend_of(fig)
    assert legend.get_title().get_text() == "model.name\n1 run each"          # names the colour key
    assert {t.get_text() for t in legend.get_texts()} == {"lstm", "peep_lstm", "chance (majority class): 0.67"}
    fig = plot_curves(df, "accuracy", chance=None)                  # seq_length as line style: an entry per line
    texts = {t.get_text() for t in legend_of(fig).get_texts()}
    assert texts == {"lstm, seq_length=10", "peep_lstm, seq_length=10", "lstm, seq_length=20", "peep_lstm, seq_length=20"}


def test_seeds_lines_draw_each_run_under_the_band(tmp_path):
    df = _sweep(tmp_path / "s", ACC)
    ax = plot_curves(df, "accuracy", seeds_lines=True).axes[0]
    thin = [ln for ln in ax.lines if ln.get_linewidth() < 1 and ln.get_gid() != "chance"]
    assert len(thin) == 6 and all(ln.get_zorder() < c.get_zorder() for ln in thin for c in ax.collections)
    runs = {tuple(np.round(ln.get_ydata(), 6)) for ln in thin}
    assert runs == {tuple(a) for a in ACC}                    # both models, three seeds each
    assert "thin lines: single seeds" in legend_of(ax.figure).get_title().get_text()
    assert len([ln for ln in plot_curves(df, "accuracy").axes[0].lines if ln.get_gid() != "chance"]) == 2


@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
def test_a_long_run_is_drawn_through_every_kth_step_exactly(tmp_path):
    steps = np.arange(1, 50_001)
    for s in range(2):
        write_run(tmp_path / "s" / str(s), config(seed=s), metrics_frame(steps, 0.5 + 0.5 * steps / steps[-1]))
    df = collect(tmp_path / "s")
    line, = (ln for ln in plot_curves(df, "accuracy").axes[0].lines if ln.get_gid() != "chance")
    x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata())
    assert len(x) <= MAX_POINTS + 1 and x[-1] == 50_000
    agg = aggregate(df, metric="accuracy").set_index("step")["mean"]
    assert np.allclose(y, agg.loc[x].to_numpy())


def test_gradient_plot_refuses_odd_outs_and_empty_folders_and_names_what_it_left_out(tmp_path, capsys):
    from rnn_experiments.gradients.plot import load_gradients, plot_gradients
    from rnn_experiments.cli.rnn_plot_gradients import main
    rows = [dict(step=s, t=t, distance=4 - t, grad_norm=0.0 if m == "peep_lstm" else 1.0 / (1 + t),
                 input_grad_norm=0.5, model=m, seed=0, loss=0.5) for m in ("lstm", "peep_lstm")
            for s in (0, 3) for t in range(4)]
    (tmp_path / "good").mkdir()
    pd.DataFrame(rows).to_csv(tmp_path / "good" / "gradients.csv", index=False)
    (tmp_path / "empty").mkdir()
    for argv, message in (([str(tmp_path / "good"), str(tmp_path / "empty")], "empty: no gradients.csv under it"),
                          ([str(tmp_path / "good"), "--out", str(tmp_path / "q")], "expected a file name ending in a figure format"),
                          ([str(tmp_path / "good"), "--out", str(tmp_path)], "a folder, expected a figure file"),
                          ([str(tmp_path / "good"), "--out", ""], "an empty path")):
        with pytest.raises(SystemExit) as e:
            main(argv + (["--out", str(tmp_path / "g.png")] if "--out" not in argv else []))
        err = capsys.readouterr().err
        assert e.value.code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "g.png").exists() and not (tmp_path / "q.png").exists()

    zero = pd.DataFrame(rows).assign(grad_norm=0.0, input_grad_norm=0.0)
    with pytest.raises(ValueError, match="no positive gradient norm"):
        plot_gradients(zero, tmp_path / "z.png")                  # was a KeyError
    grid = plot_gradients(load_gradients([tmp_path / "good"]).assign(grad_norm=0.0), tmp_path / "h.png")
    assert grid.left_out == ["‖∂L/∂h_t‖"] and (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"


def test_the_band_is_mean_plus_minus_the_sample_std_of_the_aggregate(tmp_path):
    """Inside the metric's range the band spans exactly mean ± std (ddof = 1) of `aggregate` at every
    step: not the standard error, not a percentile interval."""
    mid = [[0.50, 0.60, 0.70, 0.80], [0.55, 0.66, 0.74, 0.81], [0.62, 0.70, 0.72, 0.88]]
    df = _sweep(tmp_path / "s", mid, models=("lstm",))
    agg = aggregate(df, metric="accuracy").set_index("step")
    ax = plot_curves(df, "accuracy").axes[0]
    (band,) = ax.collections
    vertices = np.concatenate([p.vertices for p in band.get_paths()])
    for step in STEPS:
        ys = vertices[np.isclose(vertices[:, 0], step), 1]
        mean, std = agg.loc[step, "mean"], agg.loc[step, "std"]
        assert std == pytest.approx(np.std([a[STEPS.index(step)] for a in mid], ddof=1))
        assert ys.min() == pytest.approx(mean - std) and ys.max() == pytest.approx(mean + std)


# ---- issue 34: plots a paper accepts ----------------------------------------------------------

MID = [[0.50, 0.60, 0.70, 0.80], [0.55, 0.66, 0.74, 0.81], [0.62, 0.70, 0.72, 0.88]]


def _edges(band, step):
    """(low, high) of a band's polygon at `step`."""
    vertices = np.concatenate([p.vertices for p in band.get_paths()])
    ys = vertices[np.isclose(vertices[:, 0], step), 1]
    return ys.min(), ys.max()


def test_the_ci95_band_is_the_t_interval_of_the_seed_mean_and_the_legend_says_so(tmp_path):
    """band="ci95": mean ± t_{0.975, n-1} · s / sqrt(n) at every step, n the seeds that logged
    it (a fourth seed stops after two steps: n = 4 there, 3 after); ±1 std stays the
    default, and each legend names its band."""
    from scipy import stats as st
    df = _sweep(tmp_path / "s", MID, models=("lstm",))
    write_run(tmp_path / "s" / "9", config(seed=3), metrics_frame(STEPS[:2], [0.58, 0.64]))
    df = collect(tmp_path / "s")
    seeds = {step: [a[i] for a in MID] + ([[0.58, 0.64][i]] if i < 2 else []) for i, step in enumerate(STEPS)}
    fig = plot_curves(df, "accuracy", band="ci95", chance=None)
    (band,) = fig.axes[0].collections
    for step, x in seeds.items():
        n, mean, s = len(x), np.mean(x), np.std(x, ddof=1)
        half = st.t.ppf(0.975, n - 1) * s / np.sqrt(n)          # by hand: 4.30 s/√3 for n = 3
        assert _edges(band, step) == pytest.approx((mean - half, mean + half))
    assert legend_of(fig).get_texts()[0].get_text() == "mean, 95 % CI over 4 seeds"
    (band,) = plot_curves(df, "accuracy", chance=None).axes[0].collections           # the default: ± 1 std
    assert _edges(band, 30) == pytest.approx((np.mean(seeds[30]) - np.std(seeds[30], ddof=1),
                                              np.mean(seeds[30]) + np.std(seeds[30], ddof=1)))
    one = collect(tmp_path / "s" / "0"), collect([tmp_path / "s" / str(i) for i in range(3)])
    assert legend_of(plot_curves(one[1], "accuracy", chance=None)).get_texts()[0].get_text() == \
        "mean ± 1 std over 3 seeds"
    with pytest.raises(ValueError, match=r"^--band 'sd' is invalid: expected one of std, ci95"):
        plot_curves(df, "accuracy", band="sd")


def test_every_line_and_every_band_has_its_own_colour(tmp_path):
    """Two models x two lengths, length as line style: four colours for the four lines (shades of
    one hue per model), the band of each in its line's colour, so four distinct bands."""
    from matplotlib.colors import to_rgb
    for L in (10, 20):
        _sweep(tmp_path / str(L), MID, extra={"dataset.seq_length": L})
    df = collect([tmp_path / "10", tmp_path / "20"])
    ax = plot_curves(df, "accuracy", chance=None).axes[0]
    lines = [ln for ln in ax.lines if ln.get_gid() != "chance"]
    colours = [to_rgb(ln.get_color()) for ln in lines]
    bands = [tuple(c.get_facecolor()[0][:3]) for c in ax.collections]
    assert len(lines) == len(set(colours)) == 4 and len(set(bands)) == 4
    assert sorted(bands) == pytest.approx(sorted(colours))           # a band in its own line's colour
    assert {ln.get_linestyle() for ln in lines} == {"-", "--"}      # the length, as a second cue


def test_the_chance_line_is_the_tasks_majority_class_accuracy(tmp_path):
    """The palindromes' chance level is computed by the task (its label is 1 with probability
    2/3: the same share as its held-out set's labels) and drawn, labelled, on accuracy plots
    only; random combinations declare 1/L (two lengths: two lines, each labelled); a task class
    that cannot be imported gets no line and says why."""
    from rnn_experiments.analysis.chance import chance_accuracy
    from rnn_experiments.data.palindrome import PalindromeDataset
    level = PalindromeDataset.chance_accuracy(seq_length=10)
    ones = PalindromeDataset(10, seed=0, device="cpu", eval_size=6000).eval_y.float().mean()   # sd 0.006
    assert level == pytest.approx(2 / 3) and ones == pytest.approx(level, abs=0.02)
    df = _sweep(tmp_path / "p", MID)                     # config: dataset.name=palindrome (its class from its name)
    fig = plot_curves(df, "accuracy")
    (chance,) = [ln for ln in fig.axes[0].lines if ln.get_gid() == "chance"]
    assert np.allclose(chance.get_ydata(), level)
    assert "chance (majority class): 0.67" in [t.get_text() for t in legend_of(fig).get_texts()]
    assert not [ln for ln in plot_curves(df, "loss").axes[0].lines if ln.get_gid() == "chance"]

    comb = "rnn_experiments.data.random_comb.RandomCombinationsDataset"
    for L in (5, 10):
        _sweep(tmp_path / f"c{L}", MID, models=("lstm",),
               extra={"dataset.name": "random_comb", "dataset._target_": comb, "dataset.seq_length": L})
    ax = plot_curves(collect([tmp_path / "c5", tmp_path / "c10"]), "accuracy").axes[0]
    assert sorted(ln.get_ydata()[0] for ln in ax.lines if ln.get_gid() == "chance") == pytest.approx([0.1, 0.2])
    assert sorted(t.get_text() for t in ax.texts) == ["0.1", "0.2"]

    _sweep(tmp_path / "u", MID, models=("lstm",), extra={"dataset._target_": "my_tasks.Gone"})
    levels = chance_accuracy(collect(tmp_path / "u"))
    assert levels.isna().all() and len(levels.attrs["problems"]) == 1
    assert levels.attrs["problems"][0].startswith("no chance line for dataset._target_=my_tasks.Gone: ")


def test_a_log_axis_over_less_than_a_decade_has_plain_decimal_ticks(tmp_path):
    """Losses between 0.6 and 0.9: ticks 0.6, 0.7, 0.8, 0.9 (matplotlib's default: 6×10⁻¹); over
    five decades the decades stay 10⁻ⁿ."""
    narrow = [[0.9, 0.8, 0.7, 0.62], [0.88, 0.79, 0.71, 0.6], [0.9, 0.82, 0.69, 0.61]]
    df = _sweep(tmp_path / "n", MID, loss=narrow)
    fig = plot_curves(df, "loss")
    fig.draw_without_rendering()
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels(which="both") if t.get_text()]
    assert ax.get_yscale() == "log" and {"0.6", "0.7", "0.8", "0.9"} <= set(labels)
    assert all(float(t) > 0 for t in labels)                             # every label a plain number
    wide = [[1.0, 1e-2, 1e-4, 1e-5]] * 3
    fig = plot_curves(_sweep(tmp_path / "w", MID, loss=wide), "loss")
    fig.draw_without_rendering()
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels() if t.get_text()]
    assert labels and all("10^{" in t for t in labels)


def test_a_bad_band_is_refused_up_front_by_the_command_and_the_sweep_callback(tmp_path, capsys):
    """--band and hydra.callbacks.analyze.band: one line naming the option and the values it
    takes, before anything is written; the sweep callback's allowed values are the plot's."""
    import typing
    from omegaconf import OmegaConf
    from rnn_experiments.analysis.plot import BANDS
    from rnn_experiments.cli.rnn_analyze import main
    from rnn_experiments.errors import ConfigError
    from rnn_experiments.sweeps.analyze import AnalyzeSweep
    from rnn_experiments.sweeps.checks import check_callbacks
    sweep = tmp_path / "s"
    _sweep(sweep, MID)
    assert main([str(sweep), "--band", "sd"]) == 2
    err = capsys.readouterr().err
    assert err == "rnn-analyze: error: --band 'sd' is invalid: expected one of std, ci95 (±1 std over seeds; " \
                  "the 95 % t interval of the mean)\n"
    assert not (sweep / "analysis").exists()
    allowed = typing.get_args(typing.get_type_hints(AnalyzeSweep.__init__)["band"])
    assert allowed == tuple(BANDS)
    node = {"_target_": "rnn_experiments.sweeps.analyze.AnalyzeSweep", "band": "sd"}
    with pytest.raises(ConfigError) as e:
        check_callbacks(OmegaConf.create({"hydra": {"callbacks": {"analyze": node}}}))
    assert str(e.value) == ("hydra.callbacks.analyze.band='sd' is invalid: expected one of 'std', 'ci95' "
                            "(an argument of rnn_experiments.sweeps.analyze.AnalyzeSweep)")
    assert AnalyzeSweep(band="ci95").kwargs["band"] == "ci95"


def test_the_command_draws_the_band_it_is_asked_for(tmp_path, monkeypatch):
    from rnn_experiments.analysis import report
    from rnn_experiments.cli.rnn_analyze import main
    drawn = []
    monkeypatch.setattr(report, "plot_curves", lambda *a, **k: drawn.append(plot_curves(*a, **k)) or drawn[-1])
    _sweep(tmp_path / "s", MID)
    assert main([str(tmp_path / "s"), "--band", "ci95", "--metrics", "accuracy", "--formats", "png"]) == 0
    assert legend_of(drawn[0]).get_title().get_text() == "model.name\nmean, 95 % CI over 3 seeds"
    assert (tmp_path / "s" / "analysis" / "accuracy.png").is_file()
