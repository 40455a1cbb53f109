"""The study a search adds trials to: where it is kept, its sampler and its pruner.

Storage (`hydra.sweeper.storage`):

    null                           a journal file in the sweep folder, <sweep dir>/optuna.journal
    /path/to/study.journal         Optuna's journal file (a path, no "://"): one machine, or a
                                   shared file system (NFS: its lock is a symlink, as Optuna's)
    sqlite:///optuna.db            a database URL (SQLAlchemy): sqlite for one process at a
                                   time; postgresql://user:pass@host/db for a cluster

Every trial's job reaches the study through the storage (pruning needs its reports), so there is
always one; the same command with the same storage and study name continues the study.

Sampler (`hydra.sweeper.sampler`, a node with `_target_`, conf/hydra/sweeper/sampler/): when it
has a seed, a study that already holds N trials gets seed + N, so a continued search draws new
parameters (reproducibly) instead of the first ones again. It is wrapped in `Unrepeated`, which
never proposes a parameter set the study already holds (GridSampler and BruteForceSampler never
do by themselves and are not wrapped).

Pruner (`hydra.sweeper.pruner`, conf/hydra/sweeper/pruner/; `pruner=none` or null: none).
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import optuna

from rnn_experiments.errors import one_line
from rnn_experiments.sweeps.search import SearchError
from rnn_experiments.sweeps.search.space import Space, grid, key, untried

DEFAULT_JOURNAL = "optuna.journal"
SEED_LIMIT = 2**32
STORAGE_KEY = "hydra.sweeper.storage"


def storage_spec(sweeper_cfg, sweep_dir) -> str:
    """hydra.sweeper.storage, or the default journal file in the sweep folder."""
    spec = sweeper_cfg.get("storage")
    return str(Path(str(sweep_dir)) / DEFAULT_JOURNAL) if spec in (None, "") else str(spec)


def absolute(spec: str) -> str:
    """`spec` with a relative file path made absolute (a journal file, an sqlite database), so
    that it names the same study from any folder (the sweep folder's study.yaml keeps it)."""
    if not is_url(spec):
        return str(Path(spec).absolute())
    prefix = "sqlite:///"
    rest = spec[len(prefix):] if spec.startswith(prefix) else ""
    if rest and not rest.startswith("/") and rest != ":memory:":
        return prefix + str(Path(rest).absolute())
    return spec


def study_name(sweeper_cfg, experiment_name: str) -> str:
    """hydra.sweeper.study_name, else the experiment's name."""
    return str(sweeper_cfg.get("study_name") or experiment_name)


def default_study_name(cfg) -> str:
    """The study's name when hydra.sweeper.study_name is null: the experiment's name
    (experiment_name), or, in another Hydra app's config, its job's name."""
    from omegaconf import OmegaConf
    name = OmegaConf.select(cfg, "experiment_name", default=None, throw_on_missing=False)
    return str(name or cfg.hydra.job.name)


def is_url(spec: str) -> bool:
    return "://" in spec


def check_storage(spec: str, default: bool) -> None:
    """SearchError (one line) for a storage that cannot be opened: a database URL that does not
    parse, whose driver is not installed, an sqlite file in a folder that does not exist or an
    in-memory sqlite database (not shared with the trials); a journal file in a missing folder.
    The default journal (in the sweep folder, which the search creates) is not checked here."""
    given = f"{STORAGE_KEY}={spec} is invalid"
    if not is_url(spec):
        folder = Path(spec).absolute().parent
        if not default and not folder.is_dir():
            raise SearchError(f"{given}: the folder {folder} of the journal file does not exist")
        return
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError
    try:
        url = make_url(spec)
        dialect = url.get_dialect()
    except (ArgumentError, NoSuchModuleError, ValueError) as e:
        raise SearchError(f"{given}: not a database URL SQLAlchemy knows ({e})") from None
    try:
        (getattr(dialect, "import_dbapi", None) or dialect.dbapi)()
    except ImportError as e:
        raise SearchError(f"{given}: its database driver is not installed ({e}); install it, "
                          "e.g. pip install psycopg2-binary for postgresql://") from None
    if url.get_backend_name() == "sqlite":
        if url.database in (None, "", ":memory:"):
            raise SearchError(f"{given}: an in-memory database is not shared with the trials; give a "
                              f"file (sqlite:///optuna.db) or leave it null (a journal file in the sweep folder)")
        folder = Path(url.database).absolute().parent
        if not folder.is_dir():
            raise SearchError(f"{given}: the folder {folder} of the database file does not exist")


def open_storage(spec: str):
    """The Optuna storage `spec` names (a journal file's folder is created)."""
    if is_url(spec):
        return optuna.storages.RDBStorage(spec)
    from optuna.storages.journal import JournalFileBackend, JournalStorage
    Path(spec).absolute().parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(spec)))


def load(spec: str, name: str, sampler=None, pruner=None, direction: str | None = None):
    """The study `name` in storage `spec`, created when `direction` is given and it does not
    exist; SearchError (one line) when the storage cannot be opened or the study is not there."""
    try:
        storage = open_storage(spec)
        if direction is not None:
            return optuna.create_study(storage=storage, study_name=name, sampler=sampler, pruner=pruner,
                                       direction=direction, load_if_exists=True)
        return optuna.load_study(storage=storage, study_name=name, sampler=sampler, pruner=pruner)
    except KeyError:
        raise SearchError(f"no study {name!r} in {spec}") from None
    except Exception as e:  # SQLAlchemy's, the OS's, ...: one line
        first = (str(e).strip().splitlines() or [""])[0]
        raise SearchError(f"{STORAGE_KEY}={spec}: cannot open the study {name!r} "
                          f"({type(e).__name__}: {first})") from None


# packages a sampler needs beyond Optuna's own (Optuna imports them only when it first samples)
NEEDS = {"CmaEsSampler": "cmaes"}


def _instantiate(node, what: str, **kwargs):
    """The object `node` (hydra.sweeper.<what>) describes; SearchError (one line) for a node
    without _target_, a setting the class does not take, a package it needs, or its own error."""
    import importlib.util
    import inspect
    from hydra.errors import InstantiationException
    from hydra.utils import get_class, instantiate
    from omegaconf import OmegaConf
    if not OmegaConf.is_dict(node) or "_target_" not in node:
        raise SearchError(f"hydra.sweeper.{what} is invalid: expected a node with _target_ "
                          f"(conf/hydra/sweeper/{what}/)")
    try:
        cls = get_class(node._target_)
    except Exception as e:
        raise SearchError(f"hydra.sweeper.{what}._target_={node._target_} is invalid: {one_line(e)}") from None
    try:
        taken = inspect.signature(cls).parameters
    except (ValueError, TypeError):   # a builtin class without a signature: its own error says
        taken = {"": inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD)}
    if not any(p.kind == p.VAR_KEYWORD for p in taken.values()):
        for k in node:
            if not str(k).startswith("_") and k not in taken:
                raise SearchError(f"hydra.sweeper.{what}.{k} is not a setting of {cls.__name__} (a preset's "
                                  f"setting for another {what}?): remove it with '~hydra.sweeper.{what}.{k}'")
    package = NEEDS.get(cls.__name__)
    if package and importlib.util.find_spec(package) is None:
        raise SearchError(f"hydra.sweeper.{what}={cls.__name__} needs the {package} package, which is "
                          f"not installed: pip install {package}")
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as e:
        cause = e.__cause__ or e
        first = (str(cause).strip().splitlines() or [""])[0]
        raise SearchError(f"hydra.sweeper.{what} ({node._target_}) cannot be built: "
                          f"{type(cause).__name__}: {first}") from None


def is_exhaustive(node) -> bool:
    """Whether the sampler config is one that walks a discrete space without repeats by itself."""
    return str(node.get("_target_", "")).rsplit(".", 1)[-1] in ("GridSampler", "BruteForceSampler")


def make_sampler(node, space: Space, n_existing: int = 0):
    """The sampler `node` describes, seeded with seed + n_existing (see the module doc),
    wrapped in `Unrepeated` unless it is exhaustive; SearchError (one line) if it cannot be built."""
    seed = node.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < SEED_LIMIT):
        raise SearchError(f"hydra.sweeper.sampler.seed={seed} is invalid: expected null or an "
                          f"integer from 0 to 2**32 - 1")
    kwargs: dict[str, Any] = {}
    if seed is not None:
        kwargs["seed"] = (seed + n_existing) % SEED_LIMIT
    if str(node.get("_target_", "")).endswith("GridSampler"):
        continuous = [n for n, values in grid(space).items() if values is None]
        if continuous:
            raise SearchError(f"hydra.sweeper.sampler=grid needs a discrete space: {space.given[continuous[0]]} "
                              "is continuous (give choice(...) or range(...))")
        kwargs["search_space"] = grid(space)
    sampler = _instantiate(node, "sampler", **kwargs)
    if not isinstance(sampler, optuna.samplers.BaseSampler):
        raise SearchError(f"hydra.sweeper.sampler._target_={node._target_} is invalid: expected an "
                          "Optuna sampler (optuna.samplers.*)")
    if is_exhaustive(node):
        return sampler
    return Unrepeated(sampler, space, random.Random(kwargs.get("seed")))


def make_pruner(node):
    """The pruner `node` describes (null: none, NopPruner)."""
    if node is None:
        return optuna.pruners.NopPruner()
    pruner = _instantiate(node, "pruner")
    if not isinstance(pruner, optuna.pruners.BasePruner):
        raise SearchError(f"hydra.sweeper.pruner._target_={node._target_} is invalid: expected an "
                          "Optuna pruner (optuna.pruners.*)")
    return pruner


def prunes(pruner) -> bool:
    return not isinstance(pruner, optuna.pruners.NopPruner)


def check_compatible(study, space: Space) -> None:
    """SearchError when the space gives a parameter the study holds a different kind of
    distribution or other choices for (Optuna keeps them fixed within a study)."""
    seen = {}
    for t in study.get_trials(deepcopy=False):
        for n, d in t.distributions.items():
            seen.setdefault(n, d)
    for n, d in space.distributions.items():
        try:
            if n in seen:
                optuna.distributions.check_distribution_compatibility(seen[n], d)
        except ValueError:
            raise SearchError(f"{space.given[n]}: study {study.study_name!r} holds trials with {n} from "
                              f"{_describe(seen[n])}; Optuna cannot change that within a study: keep it, "
                              f"or give another hydra.sweeper.study_name") from None


def _describe(d) -> str:
    if isinstance(d, optuna.distributions.CategoricalDistribution):
        return "choice(" + ", ".join(map(str, d.choices)) + ")"
    return f"{type(d).__name__}({d.low}, {d.high})"


# ---- parameter sets tried once ----------------------------------------------------------------

def tried(study, space: Space, but: int | None = None) -> set:
    """The keys of the parameter sets of `space` the study holds: every trial's but `but`'s,
    those not run (user attribute `not_run`: they repeated another) and those killed (`killed`:
    their parameters may be tried again)."""
    return {key(t.params) for t in study.get_trials(deepcopy=False)
            if t.number != but and space.contains(t.params)
            and not ({"not_run", "killed"} & set(t.user_attrs))}


class Unrepeated(optuna.samplers.BaseSampler):
    """A sampler that proposes only parameter sets the study does not hold yet.

    All of a trial's parameters are drawn at once, as "relative" parameters: the inner
    sampler's own relative draw (multivariate TPE, CMA-ES, GP), its independent draw for the
    rest. A set the study holds is drawn again (up to ATTEMPTS times: the inner sampler's
    random state moves on); then, in a discrete space, a set not tried yet is taken at
    random, and in a continuous one the RandomSampler's draw (a repeat has probability 0).
    """
    ATTEMPTS = 10

    def __init__(self, inner, space: Space, rng: random.Random):
        self.inner, self.space, self.rng = inner, space, rng

    def infer_relative_search_space(self, study, trial):
        return dict(self.space.distributions)

    def sample_relative(self, study, trial, search_space):
        seen = tried(study, self.space, but=trial.number)
        params = {}
        for _ in range(self.ATTEMPTS):
            params = self._draw(study, trial)
            if key(params) not in seen:
                return params
        if self.space.size() != float("inf"):
            return untried(self.space, seen, self.rng) or params   # none left: the search stops
        fallback = optuna.samplers.RandomSampler(seed=self.rng.randrange(SEED_LIMIT))
        return {n: fallback.sample_independent(study, trial, n, d)
                for n, d in self.space.distributions.items()}

    def _draw(self, study, trial) -> dict:
        inner_space = {n: d for n, d in self.inner.infer_relative_search_space(study, trial).items()
                       if self.space.distributions.get(n) == d}
        params = dict(self.inner.sample_relative(study, trial, inner_space)) if inner_space else {}
        for n, d in self.space.distributions.items():
            if n not in params:
                params[n] = self.inner.sample_independent(study, trial, n, d)
        return params

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self.inner.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study, trial):
        self.inner.before_trial(study, trial)

    def after_trial(self, study, trial, state, values):
        self.inner.after_trial(study, trial, state, values)

    def reseed_rng(self):
        self.inner.reseed_rng()
        self.rng = random.Random()
