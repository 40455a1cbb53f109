"""Plots people read without the docs (issue 26): axis labels with units from one table, bands cut
to each metric's range, losses on a log axis (linear on request), "1 run" legends, legends that
name their key, `key=value` headers; per-seed lines (issue 25); long runs thinned (issue 21);
the gradient plot's paths and zero norms."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rnn_experiments.analysis import aggregate, collect, plot_curves
from rnn_experiments.analysis.plot import MAX_POINTS
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
    legend = plot_curves(one, "accuracy").axes[0].get_legend()      # one group: its entry says it
    assert [t.get_text() for t in legend.get_texts()] == ["1 run"] and not legend.get_title().get_text()
    assert not plot_curves(one, "accuracy").axes[0].collections     # no band
    df = _sweep(tmp_path / "two", ACC[:1], extra={"dataset.seq_length": 10})
    _sweep(tmp_path / "two20", ACC[:1], extra={"dataset.seq_length": 20})
    df = collect([tmp_path / "two", tmp_path / "two20"])
    fig = plot_curves(df, "accuracy", panels="dataset.seq_length")
    assert [a.get_title() for a in fig.axes] == ["seq_length=10", "seq_length=20"]
    legend = fig.axes[-1].get_legend()
    assert legend.get_title().get_text() == "model.name\n1 run each"          # names the colour key
    assert [t.get_text() for t in legend.get_texts()] == ["lstm", "peep_lstm"]
    fig = plot_curves(df, "accuracy")                                           # seq_length as line style
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert texts == ["lstm", "peep_lstm", "seq_length=10", "seq_length=20"]


def test_seeds_lines_draw_each_run_under_the_band(tmp_path):
    df = _sweep(tmp_path / "s", ACC)
    ax = plot_curves(df, "accuracy", seeds_lines=True).axes[0]
    thin = [ln for ln in ax.lines if ln.get_linewidth() < 1]
    assert len(thin) == 6 and all(ln.get_zorder() < c.get_zorder() for ln in thin for c in ax.collections)
    runs = {tuple(np.round(ln.get_ydata(), 6)) for ln in thin}
    assert runs == {tuple(a) for a in ACC}                    # both models, three seeds each
    assert "thin lines: single seeds" in ax.get_legend().get_title().get_text()
    assert len([ln for ln in plot_curves(df, "accuracy").axes[0].lines if len(ln.get_xdata())]) == 2


def test_a_long_run_is_drawn_through_every_kth_step_exactly(tmp_path):
    steps = np.arange(1, 50_001)
    for s in range(2):
        write_run(tmp_path / "s" / str(s), config(seed=s), metrics_frame(steps, 0.5 + 0.5 * steps / steps[-1]))
    df = collect(tmp_path / "s")
    line, = (ln for ln in plot_curves(df, "accuracy").axes[0].lines if len(ln.get_xdata()))
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
