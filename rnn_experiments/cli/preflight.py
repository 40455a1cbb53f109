"""Checks a Hydra command makes before Hydra starts (and creates any folder).

`preflight(argv, config_name)` composes the config from the command line as Hydra will, and
raises `ConfigError` (one line naming the key or folder) for

* a composition error: an unknown key, a value of the wrong type, a missing config group
  option, a bad override (Hydra's own report is several lines and exit status 1), a config file
  that is not UTF-8 (named);
* a single run that cannot run: the one up-front check, sweeps/checks.py:check_job (values,
  settings used or refused, interpolations, device, memory); a sweep's jobs get the same check,
  each, from sweeps/guard.py before any starts;
* launcher settings that cannot work (sweeps/checks.py:check_launcher);
* an output folder (`hydra.run.dir` / `hydra.sweep.dir`) that cannot be created or written, or
  an empty or odd path (sweeps/checks.py:check_folder);
* a current folder that no longer exists.

Users' config folders (`--config-dir DIR`) are searched as Hydra searches them (after the
packaged configs). Commands that only print (`--help`, `--cfg`, `--info`, ...) or name another
primary config (`--config-name`, `--config-path`) are left to Hydra.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Optional

from omegaconf import OmegaConf

from rnn_experiments.config import conf_dir, validate
from rnn_experiments.contract import check_contract
from rnn_experiments.errors import ConfigError, one_line
from rnn_experiments.sweeps.checks import (Needs, check_callbacks, check_folder, check_job, check_launcher,
                                          refuse_a_parts_unknown_key, training_needs)
from rnn_experiments.run.multirun import jobs
from rnn_experiments.sweeps.guard import check_sweep


def _args(argv):
    from hydra._internal.utils import get_args_parser
    return get_args_parser().parse_args(argv)


ONE_OPTION = ("model", "dataset", "optimizer", "scheduler", "stopping", "train", "logger", "experiment",
              "hparams_search")   # groups of which a run takes one option (metrics takes several)


def check_overrides(overrides) -> None:
    """ConfigError (one line) for a command line that would not do what was typed: an override
    Hydra cannot read (with how to quote it), a key given twice (the last would silently win), a
    list of options for a group of which a run takes one (Hydra would merge them). (A plain value
    replaced by a later one is Hydra's "the last wins", which presets' commands rely on: allowed;
    a sweep's values replaced are not.)"""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser, seen, sweeps = OverridesParser.create(), {}, set()
    for text in overrides:
        try:
            o, = parser.parse_overrides([text])
        except Exception as e:   # hydra.errors.OverrideParseException: LexerNoViableAltException, ...
            key, _, value = text.partition("=")
            raise ConfigError(f"{text!r}: Hydra cannot read this override ({one_line(e).split(';')[0]}); a value "
                              f"with non-ASCII letters or Hydra's special characters needs quotes Hydra sees: "
                              f"'{key}=\"{value}\"'") from None
        key = o.key_or_group
        if key in seen and not o.is_delete() and key in sweeps:     # a sweep's values would be dropped
            raise ConfigError(f"{key} is given twice ({seen[key]} and {text}): expected it once (the second "
                              "would silently drop the first's values)")
        seen[key] = text
        if o.is_sweep_override():
            sweeps.add(key)
        if key in ONE_OPTION and not o.is_delete() and isinstance(o.value(), list):
            raise ConfigError(f"{text} would merge {len(o.value())} {key} configs into one: expected one option "
                              f"(a sweep over them: -m {key}={','.join(map(str, o.value()))})")


def compose_command(overrides, config_name: str, multirun: bool, config_dir: str | None = None):
    """(the config with its `hydra` node that Hydra composes for this command line, the config
    loader that composed it: a sweep's jobs are composed with it); `config_dir` is `--config-dir`,
    put in the search path where Hydra puts it (after the packaged configs)."""
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_config_search_path
    from hydra.core.config_search_path import SearchPathQuery
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    search_path = create_config_search_path(str(conf_dir()))
    if config_dir is not None:
        folder = Path(config_dir).absolute()
        if not folder.is_dir():
            raise ConfigError(f"--config-dir {config_dir} is invalid: expected a folder of configs, "
                              f"{folder} {'is a file' if folder.exists() else 'does not exist'}")
        search_path.prepend(provider="command-line", path=f"file://{folder}",
                            anchor=SearchPathQuery(provider="schema"))
    GlobalHydra.instance().clear()
    try:
        hydra = Hydra.create_main_hydra2(task_name="preflight", config_search_path=search_path)
        cfg = hydra.compose_config(
            config_name=config_name, overrides=list(overrides), with_log_configuration=False,
            run_mode=RunMode.MULTIRUN if multirun else RunMode.RUN)
        return cfg, hydra.config_loader
    finally:
        GlobalHydra.instance().clear()


def preflight(argv, config_name: str, check_run: Callable = validate, writes: bool = True,
              needs: Optional[Needs] = training_needs, dry: Optional[Callable] = check_contract) -> None:
    """Raise ConfigError (one line) for a command line that cannot run; see the module doc.
    check_run(cfg) checks a single run's values, needs(cfg) its memory (sweeps/checks.py);
    writes=False: the command writes no output folder (rnn-generate), so none is checked."""
    args = _args(argv)
    if (args.help or args.hydra_help or args.cfg or args.info or args.shell_completion
            or args.experimental_rerun or args.config_path or args.config_name):
        return
    check_cwd()
    check_overrides(args.overrides)
    cfg, multirun, _ = _compose(args.overrides, config_name, args.multirun, args.config_dir)
    if multirun:
        check_launcher(cfg.hydra)
        check_callbacks(cfg)        # the analysis callback's options, before the first job
    if writes:
        key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
        try:
            folder = str(OmegaConf.select(cfg, key, throw_on_resolution_failure=True))
        except Exception as e:   # an interpolation that does not resolve (${oc.env:UNSET}, ...)
            raise ConfigError(f"{key} is invalid: {one_line(e)}") from None
        check_folder(folder, key)
    if not multirun:
        check_job(cfg, check_run, needs, dry=dry)


def check_cwd() -> None:
    """ConfigError when the current folder no longer exists (it was deleted under the shell):
    every relative path would fail later, some in C libraries without a word."""
    try:
        os.getcwd()
    except FileNotFoundError:
        raise ConfigError("the current folder no longer exists (deleted?): cd into an existing "
                          "folder and run the command again") from None


def _compose(overrides, config_name: str, multirun: bool, config_dir: str | None = None):
    """(config, whether Hydra will run a sweep, the config loader): -m, or a preset with
    `hydra.mode: MULTIRUN`, which also takes sweep values (`seed=0,1`) without -m."""
    from hydra.types import RunMode

    try:
        cfg, loader = compose_command(overrides, config_name, multirun, config_dir)
    except ConfigError:
        raise
    except Exception as e:  # HydraException, OmegaConfBaseException, ...: Hydra would report it
        undecodable = _undecodable(e, config_dir)
        if undecodable is not None:
            raise ConfigError(f"{undecodable}: not UTF-8 text (configs are UTF-8 YAML files)") from None
        if not multirun:
            try:
                cfg, loader = compose_command(overrides, config_name, True, config_dir)
                if cfg.hydra.mode == RunMode.MULTIRUN:
                    return cfg, True, loader
            except Exception:
                pass
        refuse_a_parts_unknown_key(e, overrides, lambda o: compose_command(o, config_name, multirun, config_dir)[0])
        raise ConfigError(one_line(e)) from None
    return cfg, multirun or cfg.hydra.mode == RunMode.MULTIRUN, loader


def dry_run(argv, config_name: str, check_run: Callable = validate,
            needs: Optional[Needs] = training_needs, dry: Optional[Callable] = check_contract) -> str:
    """`--jobs`: the jobs this command line would launch, each through the up-front check
    (a sweep's jobs as the sweep guard checks them), as text; nothing is launched or written.
    ConfigError or sweeps.guard.Refused (one line) for what the command itself would refuse."""
    args = _args(argv)
    check_overrides(args.overrides)
    cfg, multirun, loader = _compose(args.overrides, config_name, args.multirun, args.config_dir)
    if not multirun:
        check_job(cfg, check_run, needs, dry=dry)
        return (f"1 job, a single run -> {cfg.hydra.run.dir}\n"
                f"  {' '.join(args.overrides) or '(the defaults)'}\nchecked; nothing was launched\n")
    check_launcher(cfg.hydra)
    check_callbacks(cfg)
    all_jobs = jobs(cfg.hydra.sweeper, list(cfg.hydra.overrides.task), loader)
    if all_jobs is None:
        if str(cfg.hydra.sweeper._target_).endswith("OptunaSweeper"):   # the project's: checkable
            from rnn_experiments.sweeps.search.checks import check_search   # lazy: the search's checks load optuna (extra [optuna])
            check_search(cfg, loader)
        return (f"a search ({cfg.hydra.sweeper._target_}): its trials are chosen as it runs, each "
                f"value of its space checked -> {cfg.hydra.sweep.dir}\nnothing was launched\n")
    folders = check_sweep(cfg, all_jobs, loader)
    launcher = str(cfg.hydra.launcher._target_).rsplit(".", 1)[-1]
    lines = [f"{len(folders)} job(s) of a sweep ({launcher}) -> {cfg.hydra.sweep.dir}"]
    lines += [f"  #{num:<3} {label}" for num, label, _ in folders]
    return "\n".join(lines) + "\neach checked; nothing was launched\n"


def _undecodable(e: BaseException, config_dir: str | None) -> Path | None:
    """The config file a UnicodeDecodeError came from (Hydra's message does not name it)."""
    chain, err = [], e
    while err is not None and len(chain) < 10:
        chain.append(err)
        err = err.__cause__ or err.__context__
    if not any(isinstance(x, UnicodeDecodeError) for x in chain):
        return None
    for folder in [conf_dir()] + ([Path(config_dir)] if config_dir else []):
        for path in sorted(Path(folder).rglob("*.yaml")):
            try:
                path.read_bytes().decode("utf-8")
            except UnicodeDecodeError:
                return path
    return None
