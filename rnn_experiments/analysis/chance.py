"""The chance level of the accuracy plots: the accuracy of always predicting the most frequent
class, as each run's task declares it.

A task declares it with an optional classmethod `chance_accuracy(**settings) -> float | None`
on its dataset class (docs/extending.md; the palindromes: 2/3, random combinations: 1/L). It
is called with those of the settings a run's config records for its `dataset` node that the
method names (all of them where it takes **kwargs). A run whose config names no
`dataset._target_` (older or synthetic folders), whose class has no such method, or whose method
returns None has no chance level; a class that cannot be imported (the package is not installed
where the analysis runs) or a method that fails or returns a value outside [0, 1] neither, and
says why (`problems`).

Importing a task's module imports torch (about 1.5 s), so this is done only for the accuracy
metrics (`CHANCE_METRICS`) of runs that name a task class.
"""
from __future__ import annotations

import inspect
import math

import pandas as pd

from rnn_experiments.analysis.collect import config_keys, runs_of
from rnn_experiments.errors import ConfigError, one_line
from rnn_experiments.parts import target_of

CHANCE_METRICS = ("accuracy", "eval_accuracy")   # metrics.csv columns a chance line is drawn on
RESERVED = ("_target_", "name")                 # the node's keys that are not the class's settings


def _call(method, settings: dict) -> float | None:
    """method(**the settings it names) as a float (None: the task has no chance level)."""
    params = inspect.signature(method).parameters.values()
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    names = {p.name for p in params}
    value = method(**{k: v for k, v in settings.items() if takes_all or k in names})
    return None if value is None else float(value)


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _level(node: dict, problems: list) -> float | None:
    """The chance level of one dataset node; None (and a line in `problems` where it is not
    simply undeclared) where there is none."""
    settings = {k: v for k, v in node.items() if k not in RESERVED}
    where = f"no chance line for dataset._target_={node['_target_']}"
    try:
        method = getattr(target_of(node, "dataset"), "chance_accuracy", None)
        value = _call(method, settings) if callable(method) else None
    except ConfigError as e:
        problems.append(f"{where}: {e}")
        return None
    except Exception as e:   # the task's own method failed
        problems.append(f"{where}: its chance_accuracy failed ({one_line(e)})")
        return None
    if value is not None and not 0.0 <= value <= 1.0:
        problems.append(f"{where}: its chance_accuracy returned {value!r}, expected an accuracy in [0, 1]")
        return None
    return value


def chance_accuracy(df: pd.DataFrame) -> pd.Series:
    """The chance accuracy of every run of a `collect` frame: a Series indexed by run_dir, NaN
    where there is none. Its attrs["problems"]: one line per task class whose chance level could
    not be had, and why."""
    runs = runs_of(df)
    out = pd.Series(math.nan, index=runs["run_dir"], dtype=float)
    out.attrs["problems"] = []
    keys = [k for k in config_keys(df) if k.startswith("dataset.")]
    if "dataset._target_" not in keys:
        return out
    levels: dict[tuple, float | None] = {}    # a run's dataset node -> its chance level
    for _, row in runs[["run_dir", *keys]].iterrows():
        node = {k.removeprefix("dataset."): v for k, v in row[keys].items() if not _missing(v)}
        if not node.get("_target_"):
            continue
        key = tuple(sorted(node.items(), key=lambda kv: kv[0]))
        if key not in levels:
            levels[key] = _level(node, out.attrs["problems"])
        if levels[key] is not None:
            out.loc[row["run_dir"]] = levels[key]
    return out
