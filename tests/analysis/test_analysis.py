"""rnn_experiments.analysis on synthetic run folders with known numbers (a real sweep:
tests/test_docs.py, its last section)."""
from __future__ import annotations

import hashlib
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats as st

from rnn_experiments.analysis import (AnalysisError, aggregate, collect, group_keys, plot_curves,
                                      save_figure, table, to_latex, to_markdown)
from rnn_experiments.analysis.plot import legend_of
from rnn_experiments.analysis.report import analyze
from rnn_experiments.cli.rnn_analyze import main
from rnn_experiments.analysis.compare import CompareError, compare, compare_latex, compare_markdown
from rnn_experiments.analysis.rerun import reruns
from rnn_experiments.analysis.synthetic import config, metrics_frame, write_run

STEPS = [10, 20, 30, 40]
# training accuracy per step of three LSTM seeds and three peephole-LSTM seeds
ACC = {
    ("lstm", 0): [0.5, 0.6, 0.9, 1.0],    # reaches 0.9 at step 30
    ("lstm", 1): [0.5, 0.7, 0.8, 0.95],   # ... at step 40
    ("lstm", 2): [0.6, 0.6, 0.7, 0.8],    # never
    ("peep_lstm", 0): [0.9, 1.0, 1.0, 1.0],   # step 10
    ("peep_lstm", 1): [0.7, 0.95, 1.0, 1.0],  # step 20
    ("peep_lstm", 2): [0.5, 0.8, 0.92, 0.99],  # step 30
}
WALL = {0: 10.0, 1: 12.0, 2: 17.0}


def _sweep(root: Path, acc=ACC, seq_length=10) -> Path:
    for num, ((model, seed), a) in enumerate(acc.items()):
        cfg = config(**{"model.name": model, "seed": seed, "dataset.seq_length": seq_length})
        write_run(root / str(num), cfg, metrics_frame(STEPS, a), wall_time_s=WALL[seed])
    return root


def _tree_digest(root: Path) -> dict:
    """Every file under root except our output folder root/analysis."""
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file() and "analysis" not in p.relative_to(root).parts}


def test_collect_one_row_per_run_and_step(tmp_path):
    df = collect(_sweep(tmp_path / "sweep"))
    assert len(df) == len(ACC) * len(STEPS)
    for col in ("model.name", "dataset.seq_length", "train.lr", "seed", "run_dir", "status", "step"):
        assert col in df.columns
    assert set(df["status"]) == {"completed"}
    row = df[(df["model.name"] == "lstm") & (df["seed"] == 1) & (df["step"] == 40)].iloc[0]
    assert row["accuracy"] == 0.95 and row["dataset.seq_length"] == 10


def test_table_equals_hand_computed_mean_std_and_steps_to_threshold(tmp_path):
    df = collect(_sweep(tmp_path / "sweep"))
    t = table(df, threshold=0.9).set_index("model.name")
    for model, reach, never in (("lstm", [30, 40], 1), ("peep_lstm", [10, 20, 30], 0)):
        finals = [ACC[(model, s)][-1] for s in range(3)]
        bests = [max(ACC[(model, s)]) for s in range(3)]
        row = t.loc[model]
        assert row["seeds"] == 3 and row["finished"] == 3
        assert row["final_accuracy_mean"] == pytest.approx(statistics.mean(finals))
        assert row["final_accuracy_std"] == pytest.approx(statistics.stdev(finals))
        assert row["best_accuracy_mean"] == pytest.approx(statistics.mean(bests))
        assert row["final_loss_mean"] == pytest.approx(statistics.mean(1 - f for f in finals))
        assert row["steps_to_threshold_mean"] == pytest.approx(statistics.mean(reach))
        assert row["steps_to_threshold_std"] == pytest.approx(statistics.stdev(reach))
        assert row["never_reached"] == never
        assert row["wall_time_s"] == pytest.approx(statistics.mean(WALL.values()))
    # lstm: final 0.917 ± 0.104, steps 35 ± 7 with one run never reaching 0.9
    md = to_markdown(table(df, threshold=0.9))
    assert "| lstm | 3 (3) | 0.917 ± 0.104 [0.658, 1.000] |" in md and "35 ± 7 [0, 99] (1 never)" in md
    tex = to_latex(table(df, threshold=0.9))
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"peep\_lstm" in tex and r"$\pm$" in tex


def test_threshold_never_reached_by_anyone(tmp_path):
    t = table(collect(_sweep(tmp_path / "sweep")), threshold=1.01)
    assert t["steps_to_threshold_mean"].isna().all() and list(t["never_reached"]) == [3, 3]
    assert "– (3 never)" in to_markdown(t)


def test_grouping_picks_exactly_the_varying_keys(tmp_path):
    _sweep(tmp_path / "a", seq_length=10)
    _sweep(tmp_path / "b", seq_length=20)
    df = collect([tmp_path / "a", tmp_path / "b"])
    assert group_keys(df) == ["model.name", "dataset.seq_length"]   # seed varies too, never a group
    assert group_keys(collect(tmp_path / "a")) == ["model.name"]
    with pytest.raises(AnalysisError, match="seed"):
        table(df, by=["seed"])
    with pytest.raises(AnalysisError, match="model.nme"):
        table(df, by=["model.nme"])

    # only seeds differ: one group; experiment_name is dropped when the model already tells it
    for s in range(2):
        write_run(tmp_path / "c" / str(s), config(seed=s), metrics_frame(STEPS, ACC[("lstm", s)]))
        write_run(tmp_path / "d" / str(s), config(**{"seed": s, "model.name": "peep_lstm",
                                                     "experiment_name": "peep", "train.lr": 1e-3}),
                  metrics_frame(STEPS, ACC[("lstm", s)]))
    assert group_keys(collect(tmp_path / "c")) == []
    assert group_keys(collect([tmp_path / "c", tmp_path / "d"])) == ["model.name", "train.lr"]

    # a setting declared not to change results (TrainConfig.same_results) makes no group of its own
    for s in range(2):
        write_run(tmp_path / "e" / str(s), config(**{"seed": s, "train.checkpoint_every": 100 * (s + 1),
                                                     "train.resume": s == 0}), metrics_frame(STEPS, ACC[("lstm", s)]))
    assert group_keys(collect([tmp_path / "c", tmp_path / "e"])) == []
    assert table(collect(tmp_path / "e"))["seeds"].tolist() == [2]


def test_the_seed_averaged_curve_is_the_mean_with_the_sample_std(tmp_path):
    """Three seeds whose mean, median and middle differ at every step (the two-seed tests cannot
    tell a mean from a median): the curve is the mean, its band the sample std (ddof = 1)."""
    acc = {0: [0.1, 0.2, 0.5, 0.6], 1: [0.2, 0.3, 0.6, 0.7], 2: [0.9, 1.0, 1.0, 0.95]}
    for s, a in acc.items():
        write_run(tmp_path / str(s), config(seed=s), metrics_frame(STEPS, a))
    agg = aggregate(collect(tmp_path), metric="accuracy").set_index("step")
    for i, step in enumerate(STEPS):
        values = [acc[s][i] for s in acc]
        assert statistics.median(values) != pytest.approx(statistics.mean(values))
        assert agg.loc[step, "mean"] == pytest.approx(statistics.mean(values))
        assert agg.loc[step, "std"] == pytest.approx(statistics.stdev(values)) and agg.loc[step, "n"] == 3


def test_runs_of_different_lengths_align_on_step(tmp_path):
    acc = {("lstm", 0): [0.5, 0.6, 0.9, 1.0], ("lstm", 1): [0.7, 0.8]}  # seed 1 stopped at step 20
    for num, ((m, s), a) in enumerate(acc.items()):
        write_run(tmp_path / str(num), config(seed=s), metrics_frame(STEPS[:len(a)], a))
    agg = aggregate(collect(tmp_path), metric="accuracy").set_index("step")
    assert list(agg["n"]) == [2, 2, 1, 1]
    assert agg.loc[20, "mean"] == pytest.approx(0.7) and agg.loc[20, "std"] == pytest.approx(np.std([0.6, 0.8], ddof=1))
    assert agg.loc[40, "mean"] == pytest.approx(1.0) and np.isnan(agg.loc[40, "std"])


def test_plot_lines_are_the_aggregated_means_and_files_are_valid(tmp_path):
    _sweep(tmp_path / "a", seq_length=10)
    _sweep(tmp_path / "b", seq_length=20, acc={k: [v * 0.9 for v in a] for k, a in ACC.items()})
    df = collect([tmp_path / "a", tmp_path / "b"])
    fig = plot_curves(df, "accuracy")
    ax = fig.axes[0]
    lines = [ln for ln in ax.lines if ln.get_gid() != "chance"]     # the curves
    agg = aggregate(df, metric="accuracy")
    groups = list(agg.groupby(["model.name", "dataset.seq_length"]))
    assert len(lines) == len(groups) == 4
    for _, g in groups:
        assert sum(np.allclose(ln.get_xdata(), g["step"]) and np.allclose(ln.get_ydata(), g["mean"])
                   for ln in lines) == 1
    assert {ln.get_linestyle() for ln in lines} == {"-", "--"}      # seq_length as line style
    assert legend_of(fig).get_title().get_text() == "mean ± 1 std over 3 seeds"  # entries name the keys
    assert "step" in ax.get_xlabel() and "fraction" in ax.get_ylabel()
    png, pdf = save_figure(fig, tmp_path / "out" / "accuracy", ("png", "pdf"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and pdf.read_bytes()[:5] == b"%PDF-"

    # one panel per sequence length, a line per model in each, the same means
    fig = plot_curves(df, "accuracy", panels="dataset.seq_length")
    assert [a.get_title() for a in fig.axes] == ["seq_length=10", "seq_length=20"]
    for a, L in zip(fig.axes, (10, 20)):
        lines = [ln for ln in a.lines if ln.get_gid() != "chance"]
        for _, g in agg[agg["dataset.seq_length"] == L].groupby("model.name"):
            assert sum(np.allclose(ln.get_ydata(), g["mean"]) for ln in lines) == 1
        assert len(lines) == 2


def test_the_legend_sits_below_the_data_and_is_saved(tmp_path):
    # 8 groups with long labels (an ablation's three switches): below the axes, never on them
    for num, (axis, reset, init) in enumerate((a, r, i) for a in ("batch", "class") for r in (False, True)
                                               for i in ("kaiming_normal", "kaiming_normal_fan_out")):
        cfg = config(**{"model.log_softmax_axis": axis, "model.reset_at_padding": reset, "model.init": init})
        write_run(tmp_path / "sweep" / str(num), cfg, metrics_frame(STEPS, ACC[("lstm", 0)]))
    fig = plot_curves(collect(tmp_path / "sweep"), "accuracy", chance=None)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw_without_rendering()     # the constrained layout places the axes and the legend
    ax, legend = fig.axes[0], legend_of(fig)
    assert len(legend.get_texts()) == 8
    box, axes_box = legend.get_window_extent(renderer), ax.get_tightbbox(renderer)   # with its tick labels
    assert box.y1 <= axes_box.y0                                               # below the axes and x label
    png, = save_figure(fig, tmp_path / "accuracy", ("png",))
    from matplotlib.image import imread
    height, width = imread(png).shape[:2]
    assert height >= box.height * 200 / fig.dpi + ax.get_window_extent(renderer).height * 200 / fig.dpi

    # four short entries (the palindrome comparison's models x lengths) and the chance line: below too
    _sweep(tmp_path / "a", seq_length=10)
    _sweep(tmp_path / "b", seq_length=20)
    fig = plot_curves(collect([tmp_path / "a", tmp_path / "b"]), "accuracy")
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw_without_rendering()
    assert not legend_of(fig).get_window_extent(renderer).overlaps(fig.axes[0].get_window_extent(renderer))
    assert len(legend_of(fig).get_texts()) == 5


def test_partial_crashed_corrupt_runs_are_reported_not_fatal(tmp_path):
    sweep = _sweep(tmp_path / "sweep", acc={k: v for k, v in ACC.items() if k[0] == "lstm"})
    peep = lambda s: config(**{"model.name": "peep_lstm", "seed": s})  # noqa: E731
    # crashed: metrics but no summary.json, last line half-written
    crashed = write_run(sweep / "3", peep(0), metrics_frame(STEPS, ACC[("peep_lstm", 0)]), status=None)
    with open(crashed / "metrics.csv", "a") as f:
        f.write("50,0.01,0.99")
    # failed before logging anything: no metrics.csv
    failed = write_run(sweep / "4", peep(1), None, status="failed")
    # corrupt metrics.csv (not a table of numbers)
    corrupt = write_run(sweep / "5", peep(2), metrics_frame(STEPS, ACC[("peep_lstm", 2)]))
    (corrupt / "metrics.csv").write_text("step,loss,accuracy\n10,0.5,garbage\n")
    before = _tree_digest(sweep)

    lines = []
    res = analyze([sweep], threshold=0.9, echo=lines.append, formats=("png",))
    text = "\n".join(lines)
    assert _tree_digest(sweep) == before                      # run folders untouched
    t = res["table"].set_index("model.name")
    assert (t.loc["lstm", "seeds"], t.loc["lstm", "finished"]) == (3, 3)
    assert (t.loc["peep_lstm", "runs"], t.loc["peep_lstm", "seeds"], t.loc["peep_lstm", "finished"]) == (3, 1, 0)
    assert t.loc["peep_lstm", "final_accuracy_mean"] == 1.0   # the crashed run, its partial line dropped
    assert f"{corrupt / 'metrics.csv'}" in text               # reported by path
    for run, status, seed in ((crashed, "crashed", 0), (failed, "failed", 1), (corrupt, "completed", 2)):
        assert f"# {run} ({status}" in text
        assert (f"python -m rnn_experiments.train model=peep_lstm seed={seed} dataset.seq_length=10 "
                f"hydra.run.dir={run}") in text
    assert (sweep / "analysis" / "accuracy.png").is_file() and (sweep / "analysis" / "rerun.sh").is_file()


def test_missing_jobs_from_multirun_yaml(tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"hydra": {
        "sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
                    "params": {"model": "lstm,peep_lstm", "seed": "0,1"}},
        "overrides": {"task": ["+experiment=demo"]}}}))
    jobs = [("lstm", 0), ("lstm", 1), ("peep_lstm", 0)]                  # job #3 never started
    for num, (m, s) in enumerate(jobs):
        write_run(sweep / str(num), config(**{"model.name": m, "seed": s}), metrics_frame(STEPS, ACC[(m, s)]),
                  overrides=[f"model={m}", f"seed={s}", "+experiment=demo"])
    df = collect(sweep)
    todo = reruns(df, group_keys(df))
    assert [cmd for _, cmd in todo] == [
        f"python -m rnn_experiments.train model=peep_lstm seed=1 +experiment=demo hydra.mode=RUN "
        f"hydra.run.dir={sweep / '3'}"]   # the preset sweeps by itself: RUN makes it the one job


def test_jobs_of_a_slurm_sweep_are_rerun_on_slurm_in_their_own_folders(tmp_path):
    """An interrupted job and a job never started, of a sweep whose launcher was SLURM: each
    command is a one-job sweep with the sweep's launcher settings, into the job's folder."""
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    hydra = {"mode": "MULTIRUN", "launcher": {"_target_": "hydra_plugins.rnn_experiments_slurm.launcher.SlurmLauncher"},
             "sweeper": {"_target_": "hydra._internal.core_plugins.basic_sweeper.BasicSweeper", "params": {}},
             "overrides": {"task": ["seed=0,1,2"], "hydra": [
                 "hydra/launcher=slurm", "hydra.launcher.partition=gpu", f"hydra.sweep.dir={sweep}",
                 "hydra.mode=MULTIRUN"]},
             "runtime": {"config_sources": []}}
    (sweep / "multirun.yaml").write_text(yaml.safe_dump({"hydra": hydra}))
    for seed, status in ((0, "completed"), (1, "interrupted")):             # job #2 never started
        run = write_run(sweep / str(seed), config(**{"model.name": "lstm", "seed": seed}),
                        metrics_frame(STEPS, ACC[("lstm", seed)]), status=status, overrides=[f"seed={seed}"])
        (run / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": hydra}))
    df = collect(sweep)
    slurm = f"hydra/launcher=slurm hydra.launcher.partition=gpu hydra.sweep.dir={sweep} hydra.sweep.subdir="
    assert [cmd for _, cmd in reruns(df, group_keys(df))] == [
        f"python -m rnn_experiments.train -m seed=1 {slurm}1", f"python -m rnn_experiments.train -m seed=2 {slurm}2"]
    hydra["launcher"]["_target_"] = "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
    (sweep / "1" / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": hydra}))
    assert reruns(df, group_keys(df))[0][1] == f"python -m rnn_experiments.train seed=1 hydra.run.dir={sweep / '1'}"


def test_missing_seed_without_multirun_yaml(tmp_path):
    acc = {k: v for k, v in ACC.items() if k != ("peep_lstm", 2)}
    df = collect(_sweep(tmp_path / "runs", acc=acc))
    todo = reruns(df, group_keys(df))
    assert todo == [("model.name=peep_lstm: seed 2 missing",
                     "python -m rnn_experiments.train model=peep_lstm dataset.seq_length=10 seed=2")]


@pytest.mark.parametrize("args, expected", [
    (["{tmp}/nope"], "{tmp}/nope: no such folder"),
    (["{tmp}/empty"], "{tmp}/empty: no run folders found"),
    (["{tmp}/empty/*"], "{tmp}/empty/*: the pattern matches nothing"),
    (["{tmp}/sweep", "--by", "model.nme"], "--by: 'model.nme' is not a config key"),
    (["{tmp}/sweep", "--metrics", "acc"], "--metrics: 'acc' is not a column of metrics.csv"),
    (["{tmp}/sweep", "--compare", "model.nme"], "--compare: 'model.nme' is not a config key"),
    (["{tmp}/sweep", "--compare", "seed"], "--compare: 'seed' cannot be compared"),
    (["{tmp}/sweep", "--compare", "dataset.seq_length"],
     "--compare: 'dataset.seq_length' has only one value in these runs (10)"),
    (["{tmp}/sweep/0"], "--out is needed for {tmp}/sweep/0"),   # never writes into a run folder
])
def test_bad_input_one_line_error(tmp_path, capsys, args, expected):
    (tmp_path / "empty").mkdir()
    _sweep(tmp_path / "sweep")
    rc = main([a.format(tmp=tmp_path) for a in args] + ["--formats", "png"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert err.startswith("rnn-analyze: error: " + expected.format(tmp=tmp_path))


@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
def test_max_step_zooms_the_plots_not_the_table(tmp_path, monkeypatch):
    import rnn_experiments.analysis.report as cli
    sweep = _sweep(tmp_path / "sweep")
    full = analyze([sweep], out=tmp_path / "full", formats=("png",), echo=lambda *a: None)
    plotted = []
    real_plot = cli.plot_curves
    monkeypatch.setattr(cli, "plot_curves", lambda df, *a, **k: plotted.append(df) or real_plot(df, *a, **k))
    zoom = analyze([sweep], out=tmp_path / "zoom", formats=("png",), echo=lambda *a: None,
                   max_step=20)
    pd.testing.assert_frame_equal(full["table"], zoom["table"])
    assert plotted and all(set(df["step"]) == {10, 20} for df in plotted)


# ---- confidence intervals and Welch's t-test -----------------------------------------------------

STEPS5 = [10, 20, 30, 40, 50]
# chosen curves: 4 LSTM seeds vs 3 peephole seeds (unequal n); threshold 0.9
CURVES = {
    ("lstm", 0): [0.5, 0.6, 0.92, 0.93, 0.94],        # reaches 0.9 at 30, final 0.94
    ("lstm", 1): [0.5, 0.7, 0.8, 0.91, 0.95],         # 40
    ("lstm", 2): [0.6, 0.91, 0.9, 0.9, 0.97],         # 20
    ("lstm", 3): [0.5, 0.5, 0.6, 0.7, 0.95],          # 50
    ("peep_lstm", 0): [0.9, 0.95, 0.96, 0.97, 0.98],  # 10
    ("peep_lstm", 1): [0.8, 0.92, 0.99, 0.99, 0.99],  # 20
    ("peep_lstm", 2): [0.6, 0.7, 0.8, 0.85, 0.89],    # never
}
WALL5 = {("lstm", 0): 10.0, ("lstm", 1): 12.0, ("lstm", 2): 11.0, ("lstm", 3): 15.0,
         ("peep_lstm", 0): 20.0, ("peep_lstm", 1): 18.0, ("peep_lstm", 2): 25.0}


def _curves_sweep(root: Path, curves=CURVES, wall=WALL5, peep_seeds_from=0) -> Path:
    """The runs of `curves`; peep_seeds_from=10 gives the peephole runs seeds 10, 11, ... (no seed
    shared with the LSTM runs: an unpaired, Welch comparison)."""
    for num, ((model, seed), acc) in enumerate(curves.items()):
        seed = seed + peep_seeds_from if model == "peep_lstm" else seed
        write_run(root / str(num), config(**{"model.name": model, "seed": seed}),
                  metrics_frame(STEPS5[:len(acc)], acc), wall_time_s=wall[(model, seed % 10)])
    return root


def _per_run_values(curves, model, threshold=0.9) -> dict[str, list]:
    """The per-run statistics computed by hand from the chosen curves (NaN: never reached)."""
    runs = [a for (m, _), a in curves.items() if m == model]
    return {"final_accuracy": [a[-1] for a in runs], "best_accuracy": [max(a) for a in runs],
            "final_eval_accuracy": [a[-1] for a in runs], "final_loss": [1 - a[-1] for a in runs],
            "steps_to_threshold": [next((s for s, x in zip(STEPS5, a) if x >= threshold), np.nan)
                                   for a in runs],
            "wall_time_s": [w for (m, _), w in WALL5.items() if m == model]}


def test_table_ci_is_the_t_interval_of_the_mean(tmp_path):
    t = table(collect(_curves_sweep(tmp_path / "sweep")), threshold=0.9).set_index("model.name")
    lstm = _per_run_values(CURVES, "lstm")["final_accuracy"]       # 0.94, 0.95, 0.97, 0.95
    n, m, s = len(lstm), np.mean(lstm), np.std(lstm, ddof=1)
    half = st.t.ppf(0.975, n - 1) * s / np.sqrt(n)                  # hand formula: t_{0.975,3} s/√n
    low, high = st.t.interval(0.95, n - 1, loc=m, scale=st.sem(lstm))
    assert (low, high) == pytest.approx((m - half, m + half))
    assert t.loc["lstm", "final_accuracy_ci_low"] == pytest.approx(low)
    assert t.loc["lstm", "final_accuracy_ci_high"] == pytest.approx(high)
    # peephole: 0.98, 0.99, 0.89 -> the t interval passes 1 and is cut there
    peep = _per_run_values(CURVES, "peep_lstm")["final_accuracy"]
    low, high = st.t.interval(0.95, 2, loc=np.mean(peep), scale=st.sem(peep))
    assert high > 1 and t.loc["peep_lstm", "final_accuracy_ci_high"] == 1.0
    assert t.loc["peep_lstm", "final_accuracy_ci_low"] == pytest.approx(low)
    # steps: peephole's third seed never reached 0.9 -> interval over the two that did (10, 20)
    low, high = st.t.interval(0.95, 1, loc=15, scale=st.sem([10, 20]))
    assert t.loc["peep_lstm", "steps_to_threshold_ci_low"] == pytest.approx(max(low, 0))
    assert t.loc["peep_lstm", "steps_to_threshold_ci_high"] == pytest.approx(high)

    md = to_markdown(table(collect(tmp_path / "sweep"), threshold=0.9))
    cell = f"{m:.3f} ± {s:.3f} [{m - half:.3f}, {m + half:.3f}]"
    assert f"| lstm | 4 (4) | {cell} |" in md
    assert md.rstrip().endswith("[95 % t interval of the mean over seeds, cut to the statistic's "
                                "range]; steps to a threshold: over the runs that reached it")
    tex = to_latex(table(collect(tmp_path / "sweep"), threshold=0.9))
    assert tex.startswith(r"% \caption{mean $\pm$ sample std over seeds; [95 \% t interval")
    assert r"\begin{tabular}" in tex


def test_table_ci_is_nan_for_one_seed(tmp_path):
    one = {k: v for k, v in CURVES.items() if k in (("lstm", 0), ("peep_lstm", 0), ("peep_lstm", 1))}
    t = table(collect(_curves_sweep(tmp_path / "sweep", one)), threshold=0.9).set_index("model.name")
    assert np.isnan(t.loc["lstm", "final_accuracy_ci_low"]) and np.isnan(t.loc["lstm", "final_accuracy_ci_high"])
    assert "| lstm | 1 (1) | 0.940 | 0.940 |" in to_markdown(table(collect(tmp_path / "sweep"), threshold=0.9))


def test_compare_equals_scipy_welch(tmp_path):
    df = collect(_curves_sweep(tmp_path / "sweep", peep_seeds_from=10))
    c = compare(df, "model.name", threshold=0.9)
    assert list(c["statistic"]) == ["final_accuracy", "best_accuracy", "final_eval_accuracy",
                                    "steps_to_threshold", "final_loss", "wall_time_s"]  # no eval_loss logged
    assert set(c["a"]) == {"lstm"} and set(c["b"]) == {"peep_lstm"}
    A, B = _per_run_values(CURVES, "lstm"), _per_run_values(CURVES, "peep_lstm")
    for row in c.itertuples(index=False):
        a, b = (np.array(v[row.statistic], dtype=float) for v in (A, B))
        a, b = a[~np.isnan(a)], b[~np.isnan(b)]
        res = st.ttest_ind(a, b, equal_var=False)
        assert (row.n_a, row.n_b) == (len(a), len(b))
        assert row.mean_a == pytest.approx(a.mean()) and row.mean_b == pytest.approx(b.mean())
        assert row.difference == pytest.approx(a.mean() - b.mean())
        assert row.p_value == pytest.approx(res.pvalue) and row.df == pytest.approx(res.df)
        # hand formula: Welch–Satterthwaite df, d ± t_{0.975, df} · sqrt(s_a²/n_a + s_b²/n_b)
        va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
        df_w = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
        half = st.t.ppf(0.975, df_w) * np.sqrt(va + vb)
        assert df_w == pytest.approx(res.df)
        assert (row.ci_low, row.ci_high) == pytest.approx((row.difference - half, row.difference + half))
        assert (row.ci_low, row.ci_high) == pytest.approx(tuple(res.confidence_interval(0.95)))
    steps = c.set_index("statistic").loc["steps_to_threshold"]
    assert (steps.n_a, steps.n_b, steps.excluded_a, steps.excluded_b) == (4, 2, 0, 1)
    assert "never reached accuracy ≥ 0.9, excluded: lstm 0 of 4, peep_lstm 1 of 3" in steps.note
    assert "n < 3 seeds (lstm 4, peep_lstm 2)" in steps.note
    assert set(c["design"]) == {"unpaired"} and set(c["test"]) == {"Welch t"}
    assert c["why"].iloc[0] == "unpaired: model.name=lstm and model.name=peep_lstm share 0 seed(s), a paired test needs 2"

    md = compare_markdown(c)
    head = md.splitlines()[0]
    assert head.startswith("| statistic | model.name=lstm mean (n) | model.name=peep_lstm mean (n) | "
                           "model.name=lstm − model.name=peep_lstm [95 % CI] | bootstrap 95 % CI | test | p |")
    r = c.iloc[0]
    assert (f"| final acc | {r.mean_a:.3f} (4) | {r.mean_b:.3f} (3) | {r.difference:.3f} "
            f"[{r.ci_low:.3f}, {r.ci_high:.3f}] | – | Welch t | {r.p_value:#.2g} |") in md
    assert "ttest_ind with equal_var=False" in md
    tex = compare_latex(c)
    assert r"\toprule" in tex and r"model.name=lstm $-$ model.name=peep\_lstm [95 \% CI]" in tex


def test_compare_within_each_group_of_the_other_keys(tmp_path):
    for L in (10, 20):
        for num, ((m, s), acc) in enumerate(CURVES.items()):
            write_run(tmp_path / "sweep" / f"{L}_{num}",      # no shared seeds: Welch
                      config(**{"model.name": m, "seed": s + 10 * (m == "peep_lstm"), "dataset.seq_length": L}),
                      metrics_frame(STEPS5, [x * L / 20 for x in acc]), wall_time_s=WALL5[(m, s)])
    c = compare(collect(tmp_path / "sweep"), "model.name", threshold=0.9)
    assert list(c.columns[:2]) == ["dataset.seq_length", "key"]
    assert c.groupby("dataset.seq_length").size().to_dict() == {10: 6, 20: 6}
    row = c[(c["dataset.seq_length"] == 10) & (c["statistic"] == "final_accuracy")].iloc[0]
    a = [x[-1] / 2 for (m, _), x in CURVES.items() if m == "lstm"]
    b = [x[-1] / 2 for (m, _), x in CURVES.items() if m == "peep_lstm"]
    assert row.p_value == pytest.approx(st.ttest_ind(a, b, equal_var=False).pvalue)
    # L = 10 halves every accuracy: nobody reaches 0.9
    steps = c[(c["dataset.seq_length"] == 10) & (c["statistic"] == "steps_to_threshold")].iloc[0]
    assert (steps.n_a, steps.n_b) == (0, 0) and np.isnan(steps.difference) and np.isnan(steps.p_value)
    assert "n < 2 (lstm 0, peep_lstm 0): no test" in steps.note
    assert "| 10 | steps to acc ≥ 0.9 | – (0) | – (0) | – | – | Welch t | – | – |" in compare_markdown(c)


def test_compare_one_seed_and_no_spread(tmp_path):
    same = [0.5, 0.7, 0.9, 1.0, 1.0]
    curves = {("lstm", 0): same, ("lstm", 1): same, ("peep_lstm", 0): same, ("peep_lstm", 1): same}
    wall = {k: 10.0 for k in curves}
    c = compare(collect(_curves_sweep(tmp_path / "flat", curves, wall, peep_seeds_from=10)), "model.name",
                threshold=0.9).set_index("statistic")
    assert c["p_value"].isna().all() and c["ci_low"].isna().all() and (c["difference"] == 0).all()
    assert all("no spread on either side: no t-test" in n for n in c["note"])
    assert all("n < 3 seeds (lstm 2, peep_lstm 2)" in n for n in c["note"])

    one = {k: v for k, v in CURVES.items() if k in (("lstm", 0), ("peep_lstm", 0), ("peep_lstm", 1))}
    c = compare(collect(_curves_sweep(tmp_path / "one", one)), "model.name", threshold=0.9)
    assert c["p_value"].isna().all() and c["difference"].notna().all()
    assert set(c["design"]) == {"unpaired"}            # one shared seed (0): no paired test
    assert all(n.startswith("n < 2 (lstm 1, peep_lstm 2): no test") for n in c["note"])
    assert "| final acc | 0.940 (1) | 0.985 (2) | -0.045 | – | Welch t | – | – |" in compare_markdown(c)


def test_compare_needs_two_values_in_some_group(tmp_path):
    write_run(tmp_path / "s" / "0", config(**{"model.name": "lstm", "dataset.seq_length": 10}),
              metrics_frame(STEPS, ACC[("lstm", 0)]))
    write_run(tmp_path / "s" / "1", config(**{"model.name": "peep_lstm", "dataset.seq_length": 20}),
              metrics_frame(STEPS, ACC[("lstm", 0)]))
    df = collect(tmp_path / "s")
    with pytest.raises(CompareError, match="no group of dataset.seq_length holds two values of 'model.name'"):
        compare(df, "model.name", by=["model.name", "dataset.seq_length"])
    assert len(compare(df, "model.name", by=["model.name"])) == 6   # seq_length not a group key


@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
def test_group_values_are_readable_numbers_that_stay_distinct(tmp_path):
    """A searched learning rate (0.0012345678901234567) shows 4 significant digits in the tables,
    more only where 4 would make two groups look alike."""
    from rnn_experiments.analysis.aggregate import readable
    assert readable(pd.Series([0.0012345678901234567, 0.01, 3e-05])) == ["0.001235", "0.01", "3e-05"]
    assert readable(pd.Series([0.00123451, 0.00123459])) == ["0.0012345", "0.0012346"]
    assert readable(pd.Series(["lstm", 64, np.nan])) == ["lstm", "64", "nan"]
    for i, lr in enumerate((0.0012345678901234567, 0.0003000000000000001)):
        write_run(tmp_path / str(i), config(**{"train.lr": lr}), metrics_frame(STEPS, [0.5] * len(STEPS)))
    md = analyze([tmp_path], echo=lambda *_: None, formats=("png",))["tables"][1].read_text()
    assert "| 0.0003 |" in md and "| 0.001235 |" in md and "0.0012345678901234567" not in md
