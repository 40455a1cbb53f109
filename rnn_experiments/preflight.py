"""Checks a Hydra command makes before Hydra starts (and creates any folder).

`preflight(argv, config_name)` composes the config from the command line as Hydra will, and
raises `ConfigError` (one line naming the key or folder) for

* a composition error: an unknown key, a value of the wrong type, a missing config group
  option, a bad override (Hydra's own report is several lines and exit status 1);
* a single run's bad value (`rnn_experiments.config.validate`; a sweep's jobs are checked one by
  one by rnn_experiments/sweep.py before any starts);
* an output folder (`hydra.run.dir` / `hydra.sweep.dir`) that cannot be created or written;
* a sweep on SLURM (`hydra/launcher=slurm`) that the cluster cannot take: no sbatch, an unknown
  partition, more CPUs or memory than a node has (rnn_experiments/slurm.py).

Users' config folders (`--config-dir DIR`) are searched as Hydra searches them (after the
packaged configs). Commands that only print (`--help`, `--cfg`, `--info`, ...) or name another
primary config (`--config-name`, `--config-path`) are left to Hydra.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

from rnn_experiments.config import conf_dir, validate
from rnn_experiments.errors import ConfigError


def _args(argv):
    from hydra._internal.utils import get_args_parser
    return get_args_parser().parse_args(argv)


def compose_command(overrides, config_name: str, multirun: bool, config_dir: str | None = None):
    """The config (with its `hydra` node) that Hydra composes for this command line; `config_dir`
    is `--config-dir`, put in the search path where Hydra puts it (after the packaged configs)."""
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
        return hydra.compose_config(
            config_name=config_name, overrides=list(overrides), with_log_configuration=False,
            run_mode=RunMode.MULTIRUN if multirun else RunMode.RUN)
    finally:
        GlobalHydra.instance().clear()


def check_writable(folder: Path, key: str) -> None:
    """ConfigError unless `folder` can be created and written: a folder is created (and removed
    at once) where it would be, in its nearest existing parent."""
    folder = Path(folder).absolute()
    existing = next(p for p in [folder, *folder.parents] if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"{key}={folder} is invalid: {existing} is a file, not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".write-test-", dir=existing))
    except OSError as e:
        raise ConfigError(f"{key}={folder} is invalid: cannot write into {existing} "
                          f"({e.strerror or e})") from None


def preflight(argv, config_name: str, check_run: Callable = validate, writes: bool = True) -> None:
    """Raise ConfigError (one line) for a command line that cannot run; see the module doc.
    check_run(cfg) checks a single run's values; writes=False: the command writes no output
    folder (rnn-generate), so none is checked."""
    args = _args(argv)
    if (args.help or args.hydra_help or args.cfg or args.info or args.shell_completion
            or args.experimental_rerun or args.config_path or args.config_name):
        return
    cfg, multirun = _compose(args.overrides, config_name, args.multirun, args.config_dir)
    if writes:
        key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
        check_writable(Path(str(cfg.hydra.sweep.dir if multirun else cfg.hydra.run.dir)), key)
    if not multirun:
        check_run(cfg)
    else:
        from rnn_experiments.slurm import check_slurm_launcher   # reads the cluster: only for SLURM
        check_slurm_launcher(cfg.hydra.launcher)


def _compose(overrides, config_name: str, multirun: bool, config_dir: str | None = None):
    """(config, whether Hydra will run a sweep): -m, or a preset with `hydra.mode: MULTIRUN`,
    which also takes sweep values (`seed=0,1`) without -m."""
    from hydra.types import RunMode

    from rnn_experiments.sweep import one_line
    try:
        cfg = compose_command(overrides, config_name, multirun, config_dir)
    except ConfigError:
        raise
    except Exception as e:  # HydraException, OmegaConfBaseException, ...: Hydra would report it
        if not multirun:
            try:
                cfg = compose_command(overrides, config_name, True, config_dir)
                if cfg.hydra.mode == RunMode.MULTIRUN:
                    return cfg, True
            except Exception:
                pass
        raise ConfigError(one_line(e)) from None
    return cfg, multirun or cfg.hydra.mode == RunMode.MULTIRUN
