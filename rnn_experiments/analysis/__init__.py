"""From run folders to seed-averaged plots and comparison tables.

    python -m rnn_experiments.analyze multirun/2026-11-25/12-00-00-000000_demo
    rnn-analyze 'multirun/2026-11-25/*' --by model.name,dataset.seq_length --threshold 0.95

    from rnn_experiments.analysis import collect, aggregate, plot_curves, table
    df = collect("multirun/...")            # a row per run x logged step, config as columns
    aggregate(df, by=["model.name"], metric="accuracy")   # mean, std, n per group and step
    table(df, threshold=0.99)               # the summary table: mean, std, 95 % t and bootstrap intervals
    compare(df, "model.name")               # A − B per pair of models: paired by seed (else Welch),
                                            # rank test, bootstrap, Holm, P(A better), seeds needed
"""
from rnn_experiments.analysis.aggregate import (aggregate, format_table, group_keys, mean_ci,
                                                per_run, table, to_latex, to_markdown)
from rnn_experiments.analysis.collect import AnalysisError, collect, find_runs
from rnn_experiments.analysis.compare import (CompareError, compare, compare_latex,
                                              compare_markdown, format_compare)
from rnn_experiments.analysis.stats import paired, welch
from rnn_experiments.analysis.plot import plot_curves, save_figure
from rnn_experiments.analysis.report import analyze

__all__ = ["collect", "find_runs", "aggregate", "group_keys", "per_run", "table", "format_table",
           "to_markdown", "to_latex", "plot_curves", "save_figure", "AnalysisError", "analyze",
           "mean_ci", "compare", "format_compare", "compare_markdown", "compare_latex", "welch",
           "paired", "CompareError"]

