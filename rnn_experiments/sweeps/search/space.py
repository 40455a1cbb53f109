"""A search's space: `hydra.sweeper.params` and the command line's overrides, read with Hydra's
override grammar, as Optuna distributions plus the overrides every trial gets unchanged.

    train.lr: tag(log, interval(1e-4, 1e-2))   FloatDistribution(1e-4, 1e-2, log=True)
    train.lr: interval(1e-4, 1e-2)             FloatDistribution(1e-4, 1e-2)
    model.hidden_size: interval(16, 256)       IntDistribution(16, 256) (an integer key)
    model.hidden_size: range(16, 257, 16)      IntDistribution(16, 256, step=16)
    model.hidden_size: int(interval(16, 256))  IntDistribution(16, 256) (any key: the ends are integers)
    train.lr: tag(log, int(interval(1, 100)))  IntDistribution(1, 100, log=True)
    model.dropout: range(0.1, 0.5, step=0.1)   FloatDistribution(0.1, 0.4, step=0.1) (a float range)
    model.hidden_size: choice(32, 64, 128)     CategoricalDistribution((32, 64, 128))
    model=lstm,peep_lstm                       CategoricalDistribution(("lstm", "peep_lstm"))

A command-line override of a key replaces the preset's entry (`model.hidden_size=64` fixes it,
`model.hidden_size=choice(4, 8)` searches other values). Anything the grammar allows that has no
meaning for a search (glob, a tag other than `log` on an interval, a choice of lists, a log
interval that reaches 0, low > high) raises `SearchError` with one line naming the entry.
"""
from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field
from typing import Any, Iterator

from rnn_experiments.sweeps.search import SearchError

SCALARS = (str, int, float, bool)


@dataclass
class Space:
    """distributions: Optuna's name -> distribution; prefixes: name -> "+" / "++" where the
    override adds a key; fixed: the other overrides as given (every trial gets them)."""
    distributions: dict = field(default_factory=dict)
    prefixes: dict = field(default_factory=dict)
    fixed: list = field(default_factory=list)
    given: dict = field(default_factory=dict)   # name -> the text the user wrote (for messages)

    def overrides(self, params: dict) -> list[str]:
        """The override list of the trial with these parameter values."""
        return self.fixed + [f"{self.prefixes.get(k, '')}{k}={format_value(v)}" for k, v in params.items()]

    def contains(self, params: dict) -> bool:
        """Whether `params` is a point of this space (its names, each value in its distribution)."""
        if set(params) != set(self.distributions):
            return False
        try:
            return all(d._contains(d.to_internal_repr(params[n])) for n, d in self.distributions.items())
        except (ValueError, TypeError):
            return False

    def size(self) -> float:
        """How many distinct parameter sets there are (math.inf with a continuous dimension)."""
        return math.prod(len(values(d)) if values(d) is not None else math.inf
                         for d in self.distributions.values())


def format_value(value: Any) -> str:
    """A value as Hydra's override grammar reads it back (strings escaped, floats exact)."""
    from hydra.core.override_parser.types import Override
    if isinstance(value, float):
        return repr(value)
    return Override._get_value_element_as_str(value)


def parse(params: dict | None, arguments: list[str], config=None) -> Space:
    """The space of `params` (hydra.sweeper.params) and `arguments` (the command line's task
    overrides); `config` (the composed config) tells integer keys, whose intervals are integer."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    lines = [f"{k}={v}" for k, v in (params or {}).items()] + list(arguments)
    parser = OverridesParser.create()
    entries: dict[str, Any] = {}
    for line in lines:
        try:
            o = parser.parse_override(line)
        except HydraException as e:
            why = [x.strip() for x in str(e).splitlines()
                   if x.strip() and not x.startswith(("Error parsing override", "See https://"))]
            raise SearchError(f"{line}: {'; '.join(why) or 'not an override'}") from None
        entries.pop(o.key_or_group, None)   # a later override of the key replaces the earlier
        entries[o.key_or_group] = o
    space = Space()
    for name, o in entries.items():
        if not o.is_sweep_override():
            space.fixed.append(o.input_line)
            continue
        space.given[name] = o.input_line
        space.prefixes[name] = o.get_key_element()[: len(o.get_key_element()) - len(name)]
        space.distributions[name] = _distribution(o, name, config)
    return space


def _distribution(o, name: str, config):
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    v, line = o.value(), o.input_line
    tags = set(getattr(v, "tags", ()) or ())
    if tags and (tags != {"log"} or not isinstance(v, IntervalSweep)):
        raise SearchError(f"{line}: the only tag a search reads is tag(log, interval(low, high))")
    if isinstance(v, IntervalSweep):
        low, high, log = v.start, v.end, "log" in tags
        if not (math.isfinite(low) and math.isfinite(high)):
            raise SearchError(f"{line}: expected finite interval ends")
        if low > high:
            raise SearchError(f"{line}: the interval's low end {low:g} is above its high end {high:g}")
        if log and low <= 0:
            raise SearchError(f"{line}: a log interval needs ends > 0 (its logarithm is sampled)")
        ints = all(isinstance(x, int) and not isinstance(x, bool) for x in (low, high))   # int(interval(...))
        if ints or (_is_int_key(config, name) and float(low).is_integer() and float(high).is_integer()):
            return IntDistribution(int(low), int(high), log=log)
        return FloatDistribution(float(low), float(high), log=log)
    if isinstance(v, RangeSweep):
        choices = list(o.sweep_iterator())
        if not choices:
            raise SearchError(f"{line}: the range is empty")
        if all(isinstance(c, int) and not isinstance(c, bool) for c in choices):
            step = abs(int(v.step)) if len(choices) > 1 else 1
            return IntDistribution(min(choices), max(choices), step=step)
        if all(isinstance(c, float) for c in choices) and len(choices) > 1 and v.step > 0:
            # a float range: the stepped float distribution low, low + step, ... (as hydra-optuna-sweeper)
            low, step = float(v.start), float(v.step)
            high = low + step * (len(choices) - 1)
            return FloatDistribution(low, high, step=step)
        return CategoricalDistribution(tuple(choices))
    if isinstance(v, ChoiceSweep):
        choices = list(o.sweep_iterator())
        if not all(isinstance(c, SCALARS) for c in choices):
            raise SearchError(f"{line}: a search's choices must be numbers, strings or booleans")
        if len(set(map(repr, choices))) != len(choices):
            raise SearchError(f"{line}: a value appears twice among the choices")
        return CategoricalDistribution(tuple(choices))
    raise SearchError(f"{line}: a search space entry is choice(...), range(...), interval(...) or "
                     "tag(log, interval(...))")


def _is_int_key(config, name: str) -> bool:
    if config is None:
        return False
    from omegaconf import OmegaConf
    value = OmegaConf.select(config, name, default=None, throw_on_resolution_failure=False)
    return isinstance(value, int) and not isinstance(value, bool)


def values(d) -> list | None:
    """Every value of a discrete distribution in order; None for a continuous one."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    if isinstance(d, CategoricalDistribution):
        return list(d.choices)
    if isinstance(d, IntDistribution):
        return list(range(d.low, d.high + 1, d.step))
    if isinstance(d, FloatDistribution) and d.step is not None:
        n = int(round((d.high - d.low) / d.step))
        return [d.low + i * d.step for i in range(n + 1)]
    return None


def ends(d) -> list:
    """The values every setting of a distribution lies between: an interval's or a range's low
    and high ends, every choice (what the up-front check composes and validates)."""
    from optuna.distributions import CategoricalDistribution
    if isinstance(d, CategoricalDistribution):
        return list(d.choices)
    return [d.low, d.high] if d.low != d.high else [d.low]


def key(params: dict) -> tuple:
    """A hashable identity of a parameter set (what "the same parameters" means)."""
    return tuple(sorted((k, repr(v)) for k, v in params.items()))


def untried(space: Space, tried: set, rng: random.Random, limit: int = 100_000) -> dict | None:
    """A parameter set of a discrete `space` whose key is not in `tried`, drawn at random (None
    when there is none left). Spaces of up to `limit` sets are listed; larger ones are drawn."""
    names = list(space.distributions)
    grids = [values(space.distributions[n]) for n in names]
    if space.size() <= limit:
        left = [p for p in (dict(zip(names, c)) for c in itertools.product(*grids)) if key(p) not in tried]
        return rng.choice(left) if left else None
    for _ in range(1000):
        p = {n: rng.choice(g) for n, g in zip(names, grids)}
        if key(p) not in tried:
            return p
    return None


def grid(space: Space) -> dict[str, list]:
    """GridSampler's search space: every value of each (discrete) dimension."""
    return {n: values(d) for n, d in space.distributions.items()}


def combinations(space: Space, limit: int = 64) -> Iterator[dict]:
    """Parameter sets at the ends of every dimension (`ends`): all their combinations when
    there are at most `limit`, else each end once with the other dimensions at their first end."""
    names = list(space.distributions)
    edges = [ends(space.distributions[n]) for n in names]
    if math.prod(len(e) for e in edges) <= limit:
        for combo in itertools.product(*edges):
            yield dict(zip(names, combo))
        return
    first = {n: e[0] for n, e in zip(names, edges)}
    yield dict(first)
    for n, e in zip(names, edges):
        for value in e[1:]:
            yield {**first, n: value}
