"""The one up-front check: everything about a job that can be known before it starts, by one
function, `check_job`, whoever asks:

    preflight (cli/preflight.py)   a single run, before Hydra starts
    SweepGuard (sweeps/guard.py)      every job of a sweep, before the first one starts,
                                      plus what only a whole sweep can get wrong (`check_jobs`)
    a search                          every value its search space can produce

A job is checked for: every value resolving (interpolations, resolvers, environment variables);
the command's own value check (`validate` for training and the gradient study: ranges, names,
combinations, settings used or refused); and where it will run (`check_where`): the device it
asks for and the memory it needs, on this machine for the local launchers (basic, joblib,
submitit_local; joblib's jobs side by side count together), and against the request for SLURM
(what cannot be known until the job has a node — its GPU, its memory — is checked again when the
job starts, rnn_experiments/training/setup.py, with the same one-line error in the job's log).

Output folders (`check_folder`) and launcher settings (`check_launcher`) are checked once per
command. Every failure is a ConfigError with one line naming the key.
"""
from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path
from typing import Callable, Optional

from omegaconf import DictConfig, OmegaConf

from rnn_experiments.errors import ConfigError, one_line
from rnn_experiments.parts import GIVEN, check_part, name_by_choice
from rnn_experiments.run.multirun import is_slurm_launcher
from rnn_experiments.training.resources import training_bytes, training_sizes
from rnn_experiments.training.resources import available_cores
from rnn_experiments.training.resources import GiB, check_fits
from rnn_experiments.sweeps.slurm import check_slurm_launcher

Needs = Callable[[DictConfig], tuple[int, str]]   # cfg -> (bytes, the sizes that make them)


def training_needs(cfg) -> tuple[int, str]:
    """The memory a training run (or the gradient study) of `cfg` needs, and its sizes."""
    return training_bytes(cfg), training_sizes(cfg)


def launcher_kind(hydra_cfg) -> str:
    """"local" (basic, joblib, submitit_local) or "slurm", from the launcher's _target_."""
    return "slurm" if is_slurm_launcher((hydra_cfg or {}).get("launcher") or {}) else "local"


def concurrent_jobs(hydra_cfg) -> int:
    """How many jobs run side by side on this machine (joblib's n_jobs; 1 otherwise)."""
    launcher = (hydra_cfg or {}).get("launcher") or {}
    n = launcher.get("n_jobs")
    if not isinstance(n, int) or "joblib" not in str(launcher.get("_target_", "")).lower():
        return 1
    return n if n > 0 else max(1, available_cores() + 1 + n)


def settings(cfg) -> dict:
    """The job's own settings (everything but Hydra's node), resolved, as plain containers."""
    out = {}
    for k in cfg:
        if k == "hydra":
            continue
        if OmegaConf.is_missing(cfg, k):     # `???`: the command's own check names it
            out[k] = "???"
            continue
        out[k] = OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k]
    return out


def resolve(cfg) -> None:
    """ConfigError (one line) for a value that does not resolve: an interpolation to a missing key,
    an unknown resolver, an unset environment variable, a loop. Hydra's own node is resolved by
    Hydra (its ${now:...} needs a running job); ${hydra:...} in a value reads this job's node."""
    if not isinstance(cfg, DictConfig):
        return
    try:
        try:
            settings(cfg)
        except Exception:   # perhaps a ${hydra:...}: it needs the job's node set (a copy: slow)
            if "hydra" not in cfg:
                raise
            with hydra_config(cfg):
                settings(cfg)
    except Exception as e:  # OmegaConf's InterpolationResolutionError, a resolver's own error, ...
        raise ConfigError(one_line(e)) from None


def check_where(cfg, needs: Optional[Needs], hydra_cfg=None) -> None:
    """The device and memory a job asks for, against where it will run (see the module doc)."""
    device = str(cfg.get("device", "cpu"))
    kind = launcher_kind(hydra_cfg)
    launcher = (hydra_cfg or {}).get("launcher") or {}
    if kind == "slurm":
        if device == "cuda" and not launcher.get("gpus_per_node") and not launcher.get("gpus_per_task"):
            raise ConfigError("device='cuda' is invalid: expected hydra.launcher.gpus_per_node >= 1 "
                              "(no GPU is requested for the job), or device=auto / cpu")
        if needs is not None and launcher.get("mem_gb"):
            need, sizes = needs(cfg)
            check_fits(need, sizes, device, available=int(launcher.mem_gb * GiB))
        return
    if device == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise ConfigError("device='cuda' is invalid: no CUDA device is available on this machine "
                              "(use device=auto or cpu, or a launcher that runs on a GPU node)")
    if needs is not None:
        need, sizes = needs(cfg)
        jobs = concurrent_jobs(hydra_cfg)
        on = "cuda" if device == "cuda" else "cpu"
        check_fits(need * (jobs if on == "cpu" else 1), sizes + (f" ({jobs} jobs at once)" if jobs > 1 else ""), on)


def check_job(cfg, check: Callable[[DictConfig], None], needs: Optional[Needs] = None,
              hydra_cfg=None, dry: Optional[Callable[[DictConfig], None]] = None) -> None:
    """Everything about one job that can be known before it starts: ConfigError (one line).
    `dry(cfg)`, last (after the memory check): the parts built and run on a batch of two
    (rnn_experiments/contract.py)."""
    resolve(cfg)
    own = cfg.get("hydra") if isinstance(cfg, DictConfig) else None     # the job's own choices, never the sweep's
    name_by_choice(cfg, ((own.get("runtime") or {}).get("choices") if own is not None else None) or {})
    try:
        check(cfg)
    except ConfigError:
        raise
    except Exception as e:   # OmegaConf's: a mandatory value missing (`~model`), ...
        raise ConfigError(one_line(e)) from None
    check_where(cfg, needs, hydra_cfg if hydra_cfg is not None else cfg.get("hydra"))
    if dry is not None:
        try:
            dry(cfg)
        except ConfigError:
            raise
        except Exception as e:   # a part's own error (its constructor, its sample)
            raise ConfigError(one_line(e)) from None


def refuse_a_parts_unknown_key(e: BaseException, overrides, compose: Callable[[list], DictConfig]) -> None:
    """Hydra refuses `model.X=V` when the model's node has no X ("Could not override ... use +"):
    for a part (model, dataset) raise instead the ConfigError that `++model.X=V` gets, naming the
    settings its class takes (rnn_experiments/parts.py), or, where its class does take X, one
    saying so and how to add it. Returns where the error is not of that kind."""
    match = re.match(r"Could not override '(\w+)\.([\w.]+)'", str(e))
    if not match or match.group(1) not in GIVEN:
        return
    part = match.group(1)   # its settings set or added alike (++), as `+part.X=V` would add X
    added = [f"++{o}" if o.startswith(f"{part}.") else o for o in overrides]
    try:
        composed = compose(added)
        own = (composed.get("hydra") or {}).get("runtime", {}).get("choices") or {}
        chosen = {o.lstrip("+").split("=", 1)[0]: o.split("=", 1)[1] for o in overrides
                  if "=" in o and "." not in o.lstrip("+").split("=", 1)[0]}
        name_by_choice(composed, {**own, **chosen})    # a node without a name: its choice's, as the run names it
        node = composed[part]
        cls = check_part(node, part)
    except ConfigError as refused:
        raise ConfigError(str(refused)) from None
    except Exception:
        return
    key = f"{part}.{match.group(2)}"
    given = next((o for o in overrides if o.split("=", 1)[0] == key), key)
    raise ConfigError(f"{given} is not in the {part} node of {part}={node.get('name')}, though "
                      f"{cls.__module__}.{cls.__qualname__} takes it: expected +{given} (or the key in "
                      f"its YAML file)")


NAME_MAX = 255   # bytes in one file name: ext4, xfs, btrfs, APFS, NTFS (in UTF-16 units)


def check_folder(folder, key: str, must_be_new_or_folder: bool = True) -> Path:
    """ConfigError unless `folder` is a usable output folder: a path that is not empty, not a
    link loop, not a file or a device, and can be created and written: a folder is created (and
    removed at once) where it would be, in its nearest existing parent. Returns it, absolute."""
    text = str(folder)
    if text.strip() == "":
        raise ConfigError(f"{key}='' is invalid: expected a folder (an empty path would write "
                          "into the current folder)")
    path = Path(text).absolute()
    long = next((p for p in path.parts if len(os.fsencode(p)) > NAME_MAX), None)
    if long is not None:
        raise ConfigError(f"{key}={str(path)[:80]}... is invalid: the name {long[:40]}... is {len(os.fsencode(long))} "
                          f"bytes, more than a file system allows in one name ({NAME_MAX}); use a shorter "
                          "name (experiment_name, or the folder's)")
    try:
        path.resolve(strict=False)
    except (RuntimeError, OSError) as e:   # a symlink loop
        raise ConfigError(f"{key}={path} is invalid: {e}") from None
    existing = next(p for p in [path, *path.parents] if os.path.lexists(p))
    if existing.is_symlink() and not existing.exists():
        raise ConfigError(f"{key}={path} is invalid: {existing} is a broken link")
    if not existing.is_dir():
        what = "a file" if existing.is_file() else "not a folder"
        raise ConfigError(f"{key}={path} is invalid: {existing} is {what}")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".write-test-", dir=existing))
    except OSError as e:
        raise ConfigError(f"{key}={path} is invalid: cannot write into {existing} "
                          f"({e.strerror or e})") from None
    return path


def check_callbacks(cfg) -> None:
    """Every Hydra callback of a sweep (hydra.callbacks.NAME with _target_) against its class's
    signature, as a part (parts.check_part: an unknown key, a value of the wrong type), then the
    class's own `check(node, cfg)` where it has one (the analysis callback's options)."""
    callbacks = ((cfg.get("hydra") or {}).get("callbacks")) or {}
    for name, node in callbacks.items():
        if node is None or "_target_" not in node:
            continue
        cls = check_part(node, f"hydra.callbacks.{name}")
        if callable(getattr(cls, "check", None)):
            cls.check(node, cfg)


PACK_STRATEGIES = ("auto", "loop", "stacked")   # training/pack.py


def check_pack_settings(pack_size, strategy, n_jobs=1) -> None:
    """hydra/launcher=packed's settings (sweeps/pack.py), and hydra/launcher=slurm's pack_size
    and strategy, in one line naming the key."""
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int) or n_jobs == 0 or n_jobs < -1:
        raise ConfigError(f"hydra.launcher.n_jobs={n_jobs!r} is invalid: expected an integer >= 1 "
                          "(packs at once), or -1 for one per core")
    if isinstance(pack_size, bool) or not isinstance(pack_size, int) or pack_size < 1:
        raise ConfigError(f"hydra.launcher.pack_size={pack_size!r} is invalid: expected an integer >= 1")
    if strategy not in PACK_STRATEGIES:
        raise ConfigError(f"hydra.launcher.strategy={strategy!r} is invalid: expected "
                          + ", ".join(PACK_STRATEGIES[:-1]) + " or " + PACK_STRATEGIES[-1])


def check_launcher(hydra_cfg) -> None:
    """Launcher settings that cannot work, refused in one line before anything is launched."""
    launcher = (hydra_cfg or {}).get("launcher") or {}
    target = str(launcher.get("_target_", ""))

    def need(ok: bool, key: str, allowed: str) -> None:
        if not ok:
            raise ConfigError(f"hydra.launcher.{key}={launcher.get(key)!r} is invalid: expected {allowed}")

    if target.endswith("PackedLauncher"):
        check_pack_settings(launcher.get("pack_size"), launcher.get("strategy"), launcher.get("n_jobs", 1))
    if is_slurm_launcher(launcher):   # its packs: one SLURM task each (hydra_plugins/rnn_experiments_slurm/)
        check_pack_settings(launcher.get("pack_size", 1), launcher.get("strategy", "auto"))
    if "joblib" in target.lower():
        n = launcher.get("n_jobs")
        need(isinstance(n, int) and n != 0, "n_jobs", "an integer >= 1 (jobs at once), or -1 for one per core")
    if "submitit" in target.lower():
        for key in ("timeout_min", "cpus_per_task", "tasks_per_node", "nodes"):
            value = launcher.get(key)
            need(value is None or (isinstance(value, int) and value >= 1), key, "an integer >= 1")
        mem = launcher.get("mem_gb")
        need(mem is None or (isinstance(mem, (int, float)) and mem > 0), "mem_gb", "a number of GB > 0")
        gpus = launcher.get("gpus_per_node")
        need(gpus is None or (isinstance(gpus, int) and gpus >= 0), "gpus_per_node", "an integer >= 0")
    if is_slurm_launcher(launcher):   # what the cluster can take: partition, node sizes, sbatch
        check_slurm_launcher(launcher)


@contextlib.contextmanager
def hydra_config(cfg):
    """Within: HydraConfig holds `cfg`'s hydra node (what ${hydra:...} reads)."""
    from hydra.core.hydra_config import HydraConfig
    saved = HydraConfig.instance().cfg
    HydraConfig.instance().set_config(cfg)
    try:
        yield
    finally:
        HydraConfig.instance().cfg = saved
