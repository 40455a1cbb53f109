"""A trial of k seeds (`hydra.sweeper.seeds_per_trial = k`): its runs, its value, its spread.

Trial N of a search with k seeds is k runs of its parameters at the seeds s, s+1, ..., s+k-1
(s: the config's `seed`, 0 unless given), launched together in one launcher batch as jobs
N·k, ..., N·k+k-1 (folders <sweep dir>/N·k, ...): with hydra/launcher=packed they are one pack,
as they differ only in `seed`. k = 1 is a trial of one run, trial N as job N.

    value   the mean of the k runs' objectives      m = (1/n) Σ_j v_j
    std     their sample standard deviation          sqrt(Σ_j (v_j - m)² / (n - 1))   (None for n = 1)
    n       how many runs the value is the mean of

A trial is COMPLETE when all k runs completed (n = k). A run that failed, diverged or was killed
fails the trial (`failure` names its seed; `killed` only when no run failed outright): a setting
that diverges at one seed in k is not to be chosen by its other seeds' mean, and no completed
trial's value is a mean over fewer seeds than it says. A run stopped (pruned) makes the trial
PRUNED: its value is the mean the pruner judged last, its std and n those of that step.

Pruning (trial.py's reporter, in each run) judges the trial on the mean over its seeds at each
evaluation step: each run records its value at step t in the trial's system attributes
(`report_key(j, t)`); step t is judged once every seed whose run is running has reported it, on
the mean over the seeds that reported it (a seed whose run has not started yet, or has ended, is
not waited for), which becomes the trial's intermediate value at t. When the pruner prunes, the
trial's user attribute PRUNED says so and each of its runs stops at its next metrics row.

The trial's user attributes (k > 1): `seeds`, `run_dirs` (one a seed, in order; `run_dir` is the
first), `seed_values` (what the value is the mean of, None for a run without one), `std`, `n`.
"""
from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Optional, Sequence

from rnn_experiments.run.folder import SummaryError, read_summary

KEY = "seeds_per_trial"   # hydra.sweeper's setting; also the study's user attribute (a resumed study keeps it)
SEED = "seed"             # the config key a trial's seeds go to
PRUNED = "pruned"         # the trial's user attribute once the pruner stopped it: {"step", "reason"}
REPORT = "seed_report"    # system attributes "seed_report:j:t": seed j's value at step t


def seeds_per_trial(sweeper_cfg) -> int:
    """hydra.sweeper.seeds_per_trial (1 where the config has none: a sweeper config of its own)."""
    return int(sweeper_cfg.get(KEY) or 1)


def with_seed(overrides: Sequence[str], seed: int) -> list[str]:
    """The overrides with `seed=<seed>` in place of any override of the seed (with its prefix:
    `+seed=3`, which adds the key, becomes `+seed=<seed>`)."""
    mine = [o.split("=", 1)[0] for o in overrides if o.split("=", 1)[0].lstrip("+~") == SEED]
    prefix = mine[-1][: -len(SEED)].replace("~", "") if mine else ""
    return [o for o in overrides if o.split("=", 1)[0].lstrip("+~") != SEED] + [f"{prefix}{SEED}={seed}"]


def run_dirs(trial) -> list[str]:
    """A trial's run folders, one a seed in order (a trial of one run: [its run_dir])."""
    attrs = trial.user_attrs
    return list(attrs.get("run_dirs") or ([attrs["run_dir"]] if attrs.get("run_dir") else []))


def run_status(run_dir) -> Optional[str]:
    """The status a run folder's summary.json says (None: none yet, or unreadable)."""
    try:
        return (read_summary(Path(run_dir)) or {}).get("status")
    except SummaryError:
        return None


def report_key(seed_index: int, step: int) -> str:
    return f"{REPORT}:{seed_index}:{step}"


def reports_at(system_attrs: dict, step: int) -> dict[int, float]:
    """{seed index: the value it reported at `step`} from a trial's system attributes."""
    out = {}
    for name, value in system_attrs.items():
        parts = str(name).split(":")
        if len(parts) == 3 and parts[0] == REPORT and parts[2] == str(step):
            out[int(parts[1])] = float(value)
    return dict(sorted(out.items()))


def last_judged(frozen) -> dict[int, float]:
    """The seeds' values at the step the pruner stopped the trial at (PRUNED's step), else at its
    last judged step (its last intermediate value); {} if none. (Seeds out of step: a later seed's
    report at an earlier step is judged after a first seed's at a later one.)"""
    pruned = frozen.user_attrs.get(PRUNED)
    if pruned and "step" in pruned:
        return reports_at(frozen.system_attrs, int(pruned["step"]))
    if not frozen.intermediate_values:
        return {}
    return reports_at(frozen.system_attrs, max(frozen.intermediate_values))


def spread(values: Sequence[float]) -> dict:
    """{"std": the sample standard deviation (None for fewer than 2 values), "n": how many}."""
    values = [float(v) for v in values]
    std = statistics.stdev(values) if len(values) > 1 else None
    return {"std": std if std is None or math.isfinite(std) else None, "n": len(values)}


def combine(outcomes: Sequence[tuple], seeds: Sequence[int], folders: Sequence[str],
            judged: Optional[dict] = None) -> tuple[str, Optional[float], dict]:
    """(state, value, user attributes) of a trial from its runs' outcomes, one a seed, each
    (state, value, attrs) as sweeper.outcome reads a run folder (see the module doc). `judged`:
    {seed index: value} at the step the pruner judged last (a pruned trial's value and spread)."""
    k = len(outcomes)
    attrs: dict = {"seed_values": [v if st == "COMPLETE" else None for st, v, _ in outcomes]}
    failed = [j for j, (st, _, _) in enumerate(outcomes) if st == "FAIL"]
    if failed:
        outright = [j for j in failed if "killed" not in outcomes[j][2]]
        j = (outright or failed)[0]
        why = f"seed {seeds[j]} ({folders[j]}): {outcomes[j][2].get('failure', 'failed')}"
        if len(failed) > 1:
            why += f" ({len(failed)} of its {k} seeds failed)"
        attrs["failure"] = why
        if not outright:
            attrs["killed"] = why
        return "FAIL", None, attrs
    if any(st == "PRUNED" for st, _, _ in outcomes):
        judged = judged or {}
        attrs["seed_values"] = [judged.get(j) for j in range(k)]
        return "PRUNED", None, {**attrs, **spread(list(judged.values()))}
    values = [float(v) for _, v, _ in outcomes]
    return "COMPLETE", statistics.fmean(values), {**attrs, **spread(values)}
