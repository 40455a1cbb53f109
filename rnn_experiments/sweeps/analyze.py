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
          linear_loss: false    # losses on a linear axis

With `compare:` set and the sweep holding only one value of that key (e.g. `model=lstm` on the
command line of a preset that compares models), the comparison is skipped with a warning.

Hydra instantiates its callbacks for every run, single runs included, so this module imports
nothing of the analysis until a sweep ends (the analysis package loads pandas, scipy, seaborn).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional, Sequence

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from rnn_experiments.sweeps.guard import jobs_ran

log = logging.getLogger(__name__)


class AnalyzeSweep(Callback):
    def __init__(self, metrics: Optional[Sequence[str]] = None, by: Optional[Sequence[str]] = None,
                 style: Optional[str] = "auto", threshold: float = 0.99,
                 threshold_metric: str = "accuracy", formats: Sequence[str] = ("png", "pdf"),
                 out: Optional[str] = None, panels: Optional[str] = None,
                 compare: Optional[str] = None, seeds_lines: bool = False, linear_loss: bool = False):
        self.kwargs = dict(by=list(by) if by else None, style=style, threshold=threshold,
                           threshold_metric=threshold_metric, formats=tuple(formats), out=out,
                           panels=panels, compare=compare, seeds_lines=seeds_lines,
                           log_loss=not linear_loss)
        if metrics:
            self.kwargs["metrics"] = tuple(metrics)

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
        if jobs_ran() == 0:   # each job refused (its folder holds another run): nothing new to analyse
            print(f"\nno job of this sweep ran: the analysis in {sweep_dir / 'analysis'} is left as it was")
            return
        print(f"\n== analysis of {sweep_dir} (python -m rnn_experiments.analyze {sweep_dir}) ==")
        try:
            self.analyze(sweep_dir)
        except Exception as e:  # the sweep's results are on disk already: never fail the sweep here
            log.error("analysis of %s failed: %s: %s (run python -m rnn_experiments.analyze %s)",
                      sweep_dir, type(e).__name__, e, sweep_dir)
