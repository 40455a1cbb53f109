"""Hydra callback: analyse a sweep when it ends (seed-averaged plots and tables into
<sweep dir>/analysis/, as `python -m rnn_experiments.analyze SWEEP_DIR` writes them).

On for every sweep (conf/config.yaml selects conf/hydra/callbacks/analyze.yaml), a user's own
preset included; switch it off with `'~hydra.callbacks.analyze'` (quoted for the shell; deletes
the callback's node, so a preset's `compare:` goes with it). Options as in
`python -m rnn_experiments.analyze`:

    hydra:
      callbacks:
        analyze:
          threshold: 0.99
          compare: model.name   # compare.csv/.md/.tex: each pair of models, paired by seed
          seeds_lines: false    # each seed's curve under the band
          band: std             # the band: std (mean ± 1 std over seeds) or ci95 (95 % interval of the mean)
          linear_loss: false    # losses on a linear axis

A sweep with trackers (`logger=mlflow`, `logger=wandb`) then gets its analysis folder sent to
them (rnn_experiments/loggers/: MLflow's parent run, a W&B run in the sweep's group).

With `compare:` set and the sweep holding only one value of that key (e.g. `model=lstm` on the
command line of a preset that compares models), the comparison is skipped with a warning.

Hydra instantiates its callbacks for every run, single runs included, so this module imports
nothing of the analysis until a sweep ends (the analysis package loads pandas, scipy, seaborn).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from rnn_experiments.errors import ConfigError, say
from rnn_experiments.sweeps.guard import jobs_ran

log = logging.getLogger(__name__)
_FAILED: list[str] = []     # why this process's last sweep's analysis failed (the command exits 3)

FIGURE_FORMATS = ("eps", "jpeg", "jpg", "pdf", "pgf", "png", "ps", "raw", "rgba", "svg", "svgz", "tif", "tiff", "webp")


def analysis_failed() -> str | None:
    """Why the analysis of this command's sweep failed; None if it did not (or there was none)."""
    return _FAILED[-1] if _FAILED else None


def forget_analysis() -> None:
    """A new command starts: an earlier sweep's failed analysis (same process: tests) is not its own."""
    _FAILED.clear()


class AnalyzeSweep(Callback):
    def __init__(self, metrics: Optional[Sequence[str]] = None, by: Optional[Sequence[str]] = None,
                 style: Optional[str] = "auto", threshold: float = 0.99,
                 threshold_metric: str = "accuracy", formats: Sequence[str] = ("png", "pdf"),
                 out: Optional[str] = None, panels: Optional[str] = None,
                 compare: Optional[str] = None, seeds_lines: bool = False, linear_loss: bool = False,
                 band: Literal["std", "ci95"] = "std"):   # analysis/plot.py's BANDS (a bad value: refused by its type)
        self.kwargs = dict(by=list(by) if by else None, style=style, threshold=threshold,
                           threshold_metric=threshold_metric, formats=tuple(formats), out=out,
                           panels=panels, compare=compare, seeds_lines=seeds_lines,
                           log_loss=not linear_loss, band=band)
        if metrics:
            self.kwargs["metrics"] = tuple(metrics)

    @staticmethod
    def check(node, cfg) -> None:
        """ConfigError (one line) for an option the analysis would refuse only after every job
        trained: checked with the sweep's other settings, before its first job. (Its keys and
        their types are checked against this class's signature, as every part's.)"""
        import math

        from rnn_experiments.analysis.quantities import METRICS   # lazy: numpy, only when a sweep starts

        where = "hydra.callbacks.analyze"
        columns = [*METRICS, *(f"eval_{n}" for n in (cfg.get("metrics") or {}))]
        absent = object()
        for key in ("compare", "by", "style", "panels"):
            value = node.get(key)
            for k in ([] if value in (None, "auto") else [value] if isinstance(value, str) else list(value)):
                if OmegaConf.select(cfg, str(k), default=absent) is absent:
                    raise ConfigError(f"{where}.{key}={k!r} is invalid: expected a config key of the sweep's runs "
                                      "(e.g. model.name)")
        for key in ("metrics", "threshold_metric"):
            for m in [node.get(key)] if isinstance(node.get(key), str) else list(node.get(key) or []):
                if m not in columns:
                    raise ConfigError(f"{where}.{key}={m!r} is invalid: expected a column of metrics.csv "
                                      f"(one of {', '.join(columns)})")
        threshold, metric = node.get("threshold", 0.99), node.get("threshold_metric", "accuracy")
        low, high = METRICS[metric].bounds if metric in METRICS else (-math.inf, math.inf)
        if not (isinstance(threshold, (int, float)) and math.isfinite(threshold) and low <= threshold <= high):
            raise ConfigError(f"{where}.threshold={threshold!r} is invalid: expected a finite number in "
                              f"[{low:g}, {high:g}] (the range of {metric})")
        for f in node.get("formats") or []:
            if f not in FIGURE_FORMATS:
                raise ConfigError(f"{where}.formats: {f!r} is invalid: expected figure formats "
                                  f"(one of {', '.join(FIGURE_FORMATS)}; [] for none)")

    def analyze(self, sweep_dir: Path) -> dict:
        """The analysis; without the comparison where the sweep has nothing to compare."""
        from rnn_experiments.analysis.report import analyze   # lazy: pandas, scipy, seaborn only when a sweep ends (this callback is built for every run)
        from rnn_experiments.analysis.compare import CompareError   # lazy: as above
        from rnn_experiments.sweeps.search.report import extra_for   # lazy: as above (it reads tables with pandas)
        extra = extra_for([sweep_dir], formats=self.kwargs["formats"])   # a search's report, beside
        try:
            return analyze([sweep_dir], **self.kwargs, extra=extra)
        except CompareError as e:  # raised before anything is written
            log.warning("no comparison table: %s", e)
            return analyze([sweep_dir], **{**self.kwargs, "compare": None}, extra=extra)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        _FAILED.clear()
        if jobs_ran() == 0:   # each job refused (its folder holds another run): nothing new to analyse
            say(f"\nno job of this sweep ran: the analysis in {sweep_dir / 'analysis'} is left as it was")
            return
        say(f"\n== analysis of {sweep_dir} (python -m rnn_experiments.analyze {sweep_dir}) ==")
        analysis_dir = Path(self.kwargs["out"]) if self.kwargs["out"] else sweep_dir / "analysis"
        try:
            self.analyze(sweep_dir)
        except Exception as e:  # the runs are on disk: the sweep goes on to its end, which exits 3
            why = f"{type(e).__name__}: {e}".splitlines()[0]
            _FAILED.append(f"the analysis of {sweep_dir} failed ({why}); the runs are complete: "
                           f"rnn-analyze {sweep_dir}")
            log.error("%s", _FAILED[-1])
            analysis_dir = None
        if config.get("logger"):   # the trackers' sweep-level record: the analysis as artifacts
            from rnn_experiments.loggers import sweep_ended   # lazy: a tracker's package, only when a sweep used one
            sweep_ended(config, sweep_dir, analysis_dir)
