"""`check_search`: a search checked whole before its first trial, as a single run is checked.

Every setting of hydra.sweeper (n_trials, n_jobs, seeds_per_trial, direction, max_failure_rate,
study_name, storage, sampler and its seed, pruner) and every entry of the search space is
checked, then the configs at the ends of the space (each interval's low and high end, every
choice, with the fixed overrides) are composed as the trials' jobs will be and checked by
sweeps/checks.py:check_job, the function a single run is checked with. The first problem stops the search with one line
(`Refused`: exit status 2), before the sweep folder exists.

Another Hydra app's search (its config has no experiment_name and train) gets the checks of
its settings and space, not those of the project's runs (`is_project_config`).

The seed is not a hyperparameter: `seed=0,1` or a seed in the search space is refused (the
trials' differences would otherwise mix settings and seeds, and the best "setting" would include
a lucky seed). A trial's seeds come from `seeds_per_trial` = k instead: every trial runs at the
same seeds seed, seed+1, ..., seed+k-1 (seeds.py), the last of which is checked too; with k = 1,
repeat the best setting over seeds afterwards (the search's report prints the commands).
"""
from __future__ import annotations

import numbers

from omegaconf import DictConfig, OmegaConf

from rnn_experiments.errors import one_line
from rnn_experiments.sweeps.guard import Refused
from rnn_experiments.sweeps.search import SearchError
from rnn_experiments.sweeps.search.seeds import KEY as SEEDS_KEY, SEED, with_seed
from rnn_experiments.sweeps.search.space import Space, combinations, format_value, parse
from rnn_experiments.sweeps.search.study import (check_storage, make_pruner, make_sampler, storage_spec)
from rnn_experiments.sweeps.guard import JobComposer
from rnn_experiments.sweeps.checks import check_job, training_needs

DIRECTIONS = ("minimize", "maximize")
# hydra.sweeper's keys (conf/hydra/sweeper/optuna.yaml); any other is refused
SETTINGS = ("_target_", "_recursive_", "direction", "storage", "study_name", "n_trials", "n_jobs",
            SEEDS_KEY, "max_failure_rate", "params", "sampler", "pruner")


def is_project_config(config: DictConfig) -> bool:
    """Whether `config` is one of the project's commands' (top-level experiment_name and train):
    only then is the seed refused from the space and every trial's config checked as a run; the
    jobs of another Hydra app are that app's own to check."""
    return "experiment_name" in config and "train" in config
NOT_STARTED = "no trial was started"


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def check_settings(s: DictConfig) -> None:
    """SearchError (one line) for a hydra.sweeper setting that cannot work."""
    def bad(key: str, expected: str):
        raise SearchError(f"hydra.sweeper.{key}={s.get(key)} is invalid: expected {expected}")

    unknown = [k for k in s if k not in SETTINGS]
    if unknown:
        why = (" (hydra-optuna-sweeper's; this sweeper has no custom search-space function)"
               if unknown[0] == "custom_search_space" else "")
        raise SearchError(f"hydra.sweeper.{unknown[0]} is not a setting of the Optuna sweeper{why}: "
                          f"expected one of {', '.join(k for k in SETTINGS if not k.startswith('_'))}")
    if not _is_int(s.get("n_trials")) or s.n_trials < 1:
        bad("n_trials", "an integer >= 1 (the trials the study is to hold, counting those it holds)")
    if not _is_int(s.get("n_jobs")) or s.n_jobs < 1:
        bad("n_jobs", "an integer >= 1 (trials launched at a time)")
    k = s.get(SEEDS_KEY, 1)
    if not _is_int(k) or k < 1:
        bad(SEEDS_KEY, "an integer >= 1 (the runs of a trial, at the seeds seed, seed+1, ..., seed+k-1; "
                       "its value: their mean)")
    if s.get("direction") not in DIRECTIONS:
        bad("direction", "minimize or maximize (one objective: what rnn-train returns)")
    rate = s.get("max_failure_rate")
    if not isinstance(rate, numbers.Real) or isinstance(rate, bool) or not 0 <= rate <= 1:
        bad("max_failure_rate", "a number from 0 to 1 (the fraction of failed trials that stops the search)")
    name = s.get("study_name")
    if name is not None and (not isinstance(name, str) or not name.strip()):
        bad("study_name", "null (the experiment's name) or a non-empty name")
    if s.get("storage") is not None and not isinstance(s.storage, str):
        bad("storage", "null (a journal file in the sweep folder), a journal file path or a database URL")
    if s.get("params") is not None and not OmegaConf.is_dict(s.params):
        bad("params", "a mapping of config keys to search-space entries")


def check_seeds(space: Space) -> None:
    """SearchError for a seed in the search space (see the module doc)."""
    if SEED in space.distributions:
        raise SearchError(f"{space.given[SEED]}: a search compares settings at the same seeds, so the seed "
                          f"cannot be searched; give one (seed=0) and hydra.sweeper.{SEEDS_KEY}=K to run "
                          "every trial at the seeds seed, seed+1, ..., seed+K-1")


def check_seeds_per_trial(config: DictConfig, space: Space, loader) -> None:
    """SearchError when seeds_per_trial = k > 1 cannot work: the config has no integer `seed`,
    or (a project config) the trials' last seed, seed + k - 1, is not a valid run."""
    k = config.hydra.sweeper.get(SEEDS_KEY, 1)
    if k == 1:
        return
    given = f"hydra.sweeper.{SEEDS_KEY}={k} is invalid"
    if not _is_int(OmegaConf.select(config, SEED, default=None, throw_on_missing=False)):
        raise SearchError(f"{given}: the config has no integer `{SEED}` for a trial's seeds "
                          f"({SEED}, {SEED}+1, ..., {SEED}+{k - 1})")
    if not is_project_config(config):
        return
    composer = JobComposer(config, loader)
    overrides = space.overrides(next(combinations(space)))
    last = int(composer(list(overrides))[SEED]) + k - 1
    problem = _problem(composer, with_seed(overrides, last))
    if problem is not None:
        raise SearchError(f"{given}: a trial's last seed would fail: {problem}")


def check_values(config: DictConfig, space: Space, loader) -> int:
    """Compose the configs at the ends of the space with the fixed overrides and validate each
    (rnn_experiments.config.validate); SearchError naming the trial overrides that fail.
    Returns how many configs were checked."""
    n, composer = 0, JobComposer(config, loader)
    for params in combinations(space):
        problem = _problem(composer, space.overrides(params))
        if problem is not None:
            if _problem(JobComposer(config, loader), space.fixed) == problem:   # the fixed overrides alone
                raise SearchError(f"every trial would fail: {problem}")
            where = " ".join(f"{k}={format_value(v)}" for k, v in params.items())
            raise SearchError(f"a trial with {where} would fail: {problem}")
        n += 1
    return n


def _problem(composer, overrides: list[str]) -> str | None:
    """Why the job config these overrides compose cannot run (one line), or None: the one
    up-front check of a job (sweeps/checks.py:check_job: values, settings used or refused,
    interpolations, device and memory where the trials will run)."""
    from rnn_experiments.config import validate   # lazy: config imports torch (models, data)
    from rnn_experiments.contract import check_contract   # lazy: as above
    try:
        job = composer(list(overrides))   # composed as the trial's job will be (sweeps/guard.py)
        check_job(job, validate, training_needs, hydra_cfg=composer.config.hydra, dry=check_contract)
    except Exception as e:   # Hydra's, OmegaConf's and our ConfigError
        return one_line(e)
    return None


def check_search(config: DictConfig, loader=None) -> Space:
    """Refused (one line, exit 2) for any search setting that cannot work, before any trial
    starts (see the module doc); returns the search space. `config` is the sweep's composed
    config (with its hydra node); `loader` Hydra's config loader (default: the running Hydra's)."""
    if loader is None:
        from hydra.core.global_hydra import GlobalHydra
        loader = GlobalHydra.instance().config_loader()
    s = config.hydra.sweeper
    try:
        check_settings(s)
        space = parse(s.get("params"), list(config.hydra.overrides.task), config)
        if is_project_config(config):
            check_seeds(space)
        if not space.distributions:
            raise SearchError("the search space is empty: give hydra.sweeper.params or a "
                              "command-line entry such as 'train.lr=tag(log, interval(1e-4, 1e-2))'")
        make_sampler(s.get("sampler"), space)
        make_pruner(s.get("pruner"))
        check_storage(storage_spec(s, config.hydra.sweep.dir), default=s.get("storage") in (None, ""))
        if is_project_config(config):
            check_values(config, space, loader)
        check_seeds_per_trial(config, space, loader)
    except SearchError as e:
        raise Refused(f"{e}; {NOT_STARTED}") from None
    return space

