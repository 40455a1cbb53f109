"""`analyze(paths, ...)`: what `python -m rnn_experiments.analyze` (rnn-analyze) and the sweep
callback do.

Writes into --out (default: PATH/analysis/): <metric>.png/.pdf per metric, summary.csv,
summary.md, summary.tex (booktabs; mean ± std [95 % t interval] per group), with --compare KEY
also compare.csv, compare.md, compare.tex (A − B per pair of KEY's values: paired by seed where
the runs are pairs, else Welch; rank tests, bootstrap intervals, Holm-corrected p, probability of
improvement, seeds needed), rerun.sh when runs failed or are missing, and with --keep-runs the
run folders themselves without checkpoints (runs/), and whatever the caller's `extra` adds
(for the sweep folder of an Optuna search, its report: rnn_experiments/sweeps/search/report.py);
prints the summary and the comparison as a terminal fits them (100 columns: aggregate.fitted),
the problems found and where everything went. Run folders are only read.

Check, then write: every option is checked (paths, --out, keys, metrics, formats) before a byte
is written, and everything is written into a temporary folder that is moved into place only when
all of it succeeded (output.py): a failure leaves the previous analysis as it was. Runs whose
config cannot be read are listed and left out of the table; when no run has a usable metrics
row, the problems and rerun.sh are written and AnalysisError says so.
"""
from __future__ import annotations

import glob
import math
import os
from pathlib import Path

import yaml
from matplotlib.backend_bases import FigureCanvasBase

from rnn_experiments.analysis.aggregate import (check_keys, check_metric, fitted, table, terminal_summary, to_latex,
                                                to_markdown)
from rnn_experiments.errors import say
from rnn_experiments.analysis.collect import (AnalysisError, Ticker, collect, config_keys, find_runs,
                                              without_config)
from rnn_experiments.analysis.compare import check_compare, compare_latex, compare_markdown, format_compare
from rnn_experiments.analysis.compare import compare as compare_table
from rnn_experiments.analysis.output import Output, check_out, keep_runs as copy_runs
from rnn_experiments.analysis.chance import CHANCE_METRICS, chance_accuracy
from rnn_experiments.analysis.plot import check_band, plot_curves, save_figure
from rnn_experiments.analysis.rerun import reruns
from rnn_experiments.run.folder import is_run_folder

DEFAULT_METRICS = ("accuracy", "eval_accuracy", "loss", "eval_loss", "eval_bpc")


def default_out(paths) -> Path:
    """PATH/analysis for one folder that is not itself a run; for several PATHs or a glob, the
    analysis folder of their common parent, unless that parent is a run or a sweep (whose
    analysis/ is its own). Otherwise --out must be given: nothing is written into a run folder
    and a sweep's analysis is never overwritten by that of a part of it."""
    if len(paths) == 1 and not glob.has_magic(paths[0]) and not is_run_folder(Path(paths[0])):
        return Path(paths[0]) / "analysis"
    dirs = [d.resolve() for d in find_runs(paths)]
    common = Path(os.path.commonpath([str(d) for d in dirs]))
    if not is_run_folder(common) and not any(d.parent == common for d in dirs):
        return common / "analysis"
    raise AnalysisError(f"--out is needed for {' '.join(paths)} (the default PATH/analysis/ is for "
                        f"one multirun folder or a folder of them; a run folder is never written to)")


def analyze(paths, metrics=DEFAULT_METRICS, by=None, style="auto", threshold=0.99,
            threshold_metric="accuracy", out=None, formats=("png", "pdf"), panels=None,
            echo=say, max_step=None, compare=None, seeds_lines=False, log_loss=True,
            keep_runs=False, where=(), extra=None, band="std") -> dict:
    """Collect, tabulate, plot and report; returns {"table": DataFrame, "plots": [...],
    "tables": [...], "compare": DataFrame or None, "compare_tables": [...], "data": DataFrame}.

    compare: a config key whose values are compared pair by pair (rnn_experiments.analysis.compare);
    seeds_lines: each seed's curve under the band; log_loss: losses on a log axis; keep_runs: copy
    the run folders (no checkpoints) into OUT/runs; where: ["KEY=VALUE", ...], only the runs with
    these settings; band: "std" (±1 std over seeds) or "ci95" (the 95 % t interval of the mean)
    around each plotted mean; extra: extra(folder, out) writes more into the same all-or-nothing output (`folder`, the one being
staged; `out`, where its files will be once it is moved there, for the paths it prints) and its result is returned as "extra". Bad options raise AnalysisError (CompareError for --compare) before anything
    is written; paths in the returned lists are the final ones."""
    paths = [str(p) for p in ([paths] if isinstance(paths, (str, Path)) else paths)]
    check_options(threshold, max_step, formats, band)
    out = check_out(out if out is not None else default_out(paths))
    output = Output(out)
    every_run = _where(collect(paths, progress=echo), where)
    n_runs = every_run["run_dir"].nunique()
    run_dirs = list(every_run["run_dir"].unique())
    if keep_runs:
        output.check_keep_runs(run_dirs)
    skipped = without_config(every_run)    # cannot be grouped: listed with the problems, not tabulated
    df = _keep(every_run, ~every_run["run_dir"].isin(skipped))
    if df["step"].notna().sum() == 0:      # not one metrics row to tabulate: say why, run by run
        with output.staged(remove_stale=False) as stage:
            _problems_and_reruns(every_run, by or [], stage, echo)
        raise AnalysisError(f"no run under {', '.join(paths)} has usable metrics ({n_runs} run(s), "
                            "their problems listed above)")
    by = check_keys(df, by)
    if compare is not None:
        check_compare(df, compare)
    have = df.attrs["metrics"]
    if metrics == DEFAULT_METRICS:  # those these runs logged (eval_bpc: text runs only)
        metrics = [m for m in metrics if m in have and df[m].notna().any()]
    metrics = list(metrics)
    for m in metrics:
        check_metric(df, m, "--metrics")
    check_metric(df, threshold_metric, "--threshold-metric")
    for name, key in (("--style", style), ("--panels", panels)):
        if key not in (None, "auto") and key not in by:
            raise AnalysisError(f"{name}: {key!r} must be one of the group keys {by}")
    echo(f"{n_runs} runs under {', '.join(paths)}; groups by: {', '.join(by) or '(one group)'}"
         + (f"; compares: {compare}" if compare is not None else "")
         + (f"; only {' '.join(where)}" if where else "")
         + (f"; {len(skipped)} without a readable config left out" if skipped else ""))

    t = table(df, by, threshold, threshold_metric)
    c = compare_table(df, compare, by, threshold, threshold_metric) if compare is not None else None
    names, plot_names, compare_names = ["summary.csv", "summary.md", "summary.tex"], [], []
    with output.staged() as stage:
        md = to_markdown(t)
        t.to_csv(stage / names[0], index=False)
        (stage / names[1]).write_text(md)
        (stage / names[2]).write_text(to_latex(t))
        echo(f"\nsummary: mean ± std over seeds [95 % interval of the mean] (every statistic: "
             f"{names[1]})\n" + terminal_summary(t))
        if c is not None:
            compare_names = _write_compare(c, stage, echo)
        plot_df = df if max_step is None else df[df["step"] <= max_step]  # zoom; the table keeps all
        ticker = Ticker(echo)
        chance = _chance(plot_df, metrics if formats else (), echo)
        for i, metric in enumerate(metrics if formats else ()):   # no formats: no figure drawn
            ticker(lambda: f"plotting: {i} of {len(metrics)} metrics drawn")
            try:
                fig = plot_curves(plot_df, metric, by, style, panels, seeds_lines=seeds_lines,
                                  log_loss=log_loss, band=band, chance=chance)
            except ValueError as e:
                echo(f"no plot of {metric}: {e}")
                continue
            plot_names += [p.name for p in save_figure(fig, stage / metric, formats)]
        todo = _problems_and_reruns(every_run, by, stage, echo)
        if keep_runs:
            kept = copy_runs(run_dirs, stage, echo)
        more = extra(stage, out) if extra is not None else None   # out: where the staged files will be
    tables = [out / n for n in names] + ([out / "rerun.sh"] if todo else [])
    plots = [out / n for n in plot_names]
    compare_tables = [out / n for n in compare_names]

    running = df.drop_duplicates("run_dir").query("status == 'running'")
    if len(running):
        echo(f"{len(running)} run(s) still running (analysed as they are now)")
    first = [p for p in plots if p.suffix == f".{formats[0]}"] if formats else []
    echo(f"plots ({', '.join(formats)}): {' '.join(map(str, first)) or '(none)'}" if formats
         else "plots: none (no --formats)")
    echo(f"tables (csv, md, tex): {tables[1]}" + (f"\nre-run script: {tables[3]}" if todo else ""))
    if compare_tables:
        echo(f"comparison of {compare} (csv, md, tex): {compare_tables[1]}")
    if keep_runs:
        echo(f"run folders (no checkpoints): {kept} under {out / 'runs'}")
    return {"table": t, "plots": plots, "tables": tables, "data": df, "compare": c,
            "compare_tables": compare_tables, "extra": more}


def check_options(threshold: float, max_step, formats, band: str = "std") -> None:
    """AnalysisError (one line) for a threshold, --max-step, format or band no analysis can use."""
    try:
        check_band(band)
    except ValueError as e:
        raise AnalysisError(str(e)) from None
    if not math.isfinite(threshold):
        raise AnalysisError(f"--threshold {threshold}: expected a finite number")
    if max_step is not None and max_step < 0:
        raise AnalysisError(f"--max-step {max_step}: expected a step >= 0")
    supported = FigureCanvasBase.get_supported_filetypes()
    for f in formats:
        if f not in supported:
            raise AnalysisError(f"--formats: {f!r} is not a figure format "
                                f"(have: {', '.join(sorted(supported))})")


def _chance(df, metrics, echo):
    """The runs' chance accuracy (chance.py) where an accuracy metric is plotted, else None;
    says why a task's could not be had."""
    if not any(m in CHANCE_METRICS for m in metrics):
        return None
    chance = chance_accuracy(df)
    for line in chance.attrs["problems"]:
        echo(line)
    return chance


def _where(df, where):
    """The runs whose config has every KEY=VALUE of `where` (VALUE read as YAML: true, 10, lstm)."""
    for item in where or ():
        key, sep, raw = str(item).partition("=")
        if not sep or not key:
            raise AnalysisError(f"--where {item!r}: expected KEY=VALUE (e.g. model.reset_at_padding=true)")
        if key not in config_keys(df):
            raise AnalysisError(f"--where: {key!r} is not a config key of these runs "
                                f"(have: {', '.join(config_keys(df))})")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        rows = df[key].map(lambda v: v == value or str(v) == raw)
        if not rows.any():
            values = ", ".join(sorted(map(str, df[key].dropna().unique())))
            raise AnalysisError(f"--where {item}: no run has {key}={raw} (values: {values})")
        df = _keep(df, rows)
    return df


def _keep(df, rows):
    """df[rows] with df's attrs (the config and metric column names)."""
    kept = df[rows]
    kept.attrs.update(df.attrs)
    return kept


def _problems_and_reruns(df, by, stage: Path, echo) -> list:
    """Print the runs with problems and the commands that re-run what failed or is missing;
    write them to stage/rerun.sh. Returns the (why, command) list."""
    problems = df.drop_duplicates("run_dir").query("problem != ''")
    if len(problems):
        echo(f"{len(problems)} run(s) with problems (their metrics are skipped or partial):")
        for r in problems.itertuples(index=False):
            echo(f"  {r.run_dir}: {r.problem}")
    todo = reruns(df, [k for k in by if k in df.columns])
    if todo:
        echo(f"{len(todo)} run(s) failed or missing; re-run just them with:")
        for why, cmd in todo:
            echo(f"  # {why}\n  {cmd}")
        (stage / "rerun.sh").write_text("#!/bin/sh\n" + "".join(f"# {w}\n{c}\n" for w, c in todo))
    return todo


def _write_compare(c, stage: Path, echo) -> list[str]:
    """compare.csv, compare.md, compare.tex; prints the comparison's first columns (the means,
    their difference with its 95 % interval, ...) as a terminal fits them."""
    names = ["compare.csv", "compare.md", "compare.tex"]
    md = compare_markdown(c)
    c.to_csv(stage / names[0], index=False)
    (stage / names[1]).write_text(md)
    (stage / names[2]).write_text(compare_latex(c))
    echo(f"\ncomparison of {c.attrs['key']} (every column and what each means: {names[1]})\n"
         + terminal_compare(c))
    return names


def terminal_compare(c) -> str:
    """The comparison as the terminal shows it: the columns that say which row is which (other
    keys, A and B, the statistic), then per statistic the two means, their difference with its
    95 % interval and P(A better), headers without the key (`lstm (n)`), as far as the width
    allows; the tests, the bootstrap and the power are in the files."""
    f = format_compare(c)
    key = c.attrs["key"]
    f.columns = [str(col).replace(f"{key}=", "").replace(" mean (n)", " (n)") for col in f.columns]
    cols = list(f.columns)
    lead = cols[: cols.index("statistic") + 1]
    shown = [col for col in cols if col.endswith(" (n)") or "[95 % CI]" in col or col.startswith("P(")]
    return fitted(f[[*lead, *shown]])
