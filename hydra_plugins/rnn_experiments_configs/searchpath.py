"""The plugins' configs for any Hydra app: `hydra/sweeper=optuna` (with its samplers and pruners)
and `hydra/launcher=slurm`.

rnn-experiments keeps them in conf/hydra/ (installed as the package data rnn_experiments/conf/),
which only its own commands have on their search path. Hydra calls every SearchPathPlugin of the
`hydra_plugins` namespace before it composes a config; this one looks at the app's search path:

* the project's conf/ on it (rnn-train, --config-dir mine beside it): nothing to add (and any
  entries stored for another app of this process are taken back: Hydra 1.3 would take a
  ConfigStore entry of the same group and name as a schema for the file, an error with the
  file's defaults list);
* otherwise the files of those groups are stored in Hydra's ConfigStore under the same group and
  name, as Hydra's own plugins store theirs. Only those groups: a search path entry for the
  whole of conf/ would add the project's model, dataset, ... groups to every app. An app's own
  config of the same group and name wins (the ConfigStore comes last in the search path).

Kept cheap (Hydra imports this module at every plugin scan): nothing of rnn_experiments, ~15 small
files read with libyaml, and only for an app that needs them.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import yaml
from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin

# what the plugins own, under conf/ (parallel.yaml is the project's: joblib with its thread limit)
FILES = ("hydra/sweeper", "hydra/launcher/slurm.yaml")
PROVIDER = "rnn-experiments"


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """YAML as OmegaConf reads it: 1e-4 is a float (YAML 1.1 wants 1.0e-4)."""


_Loader.yaml_implicit_resolvers = {k: list(v) for k, v in _Loader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                   |\.[0-9_]+(?:[eE][-+][0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def conf_root() -> Path | None:
    """The project's config folder, as rnn_experiments.config.conf_dir() finds it: the package
    data beside hydra_plugins/ (a wheel) or the checkout's conf/ (a checkout, an editable install)."""
    top = Path(__file__).resolve().parent.parent.parent
    for candidate in (top / "rnn_experiments" / "conf", top / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    return None


def _files(root: Path) -> list[Path]:
    out = []
    for given in FILES:
        path = root / given
        out += sorted(path.rglob("*.yaml")) if path.is_dir() else [path]
    return out


def _on_path(search_path: ConfigSearchPath, root: Path) -> bool:
    for element in search_path.get_path():
        where = str(element.path or "")
        if where == "pkg://rnn_experiments.conf":
            return True
        if "://" in where and not where.startswith("file://"):
            continue
        folder = Path(where.removeprefix("file://"))
        if folder.is_absolute() and folder.resolve() == root.resolve():
            return True
    return False


def store(root: Path) -> None:
    """Each file of FILES in the ConfigStore under its group and name."""
    from hydra.core.config_store import ConfigStore
    cs = ConfigStore.instance()
    for f in _files(root):
        rel = f.relative_to(root)
        with open(f, encoding="utf-8") as stream:
            node = yaml.load(stream, Loader=_Loader) or {}
        cs.store(group=rel.parent.as_posix(), name=rel.stem, node=node, provider=PROVIDER)


def forget(root: Path) -> None:
    """Take back what `store` put in the ConfigStore (only entries this plugin stored)."""
    from hydra.core.config_store import ConfigStore
    repo = ConfigStore.instance().repo
    for f in _files(root):
        rel = f.relative_to(root)
        group = repo
        for part in rel.parent.parts:
            group = group.get(part, {}) if isinstance(group, dict) else {}
        node = group.get(rel.name) if isinstance(group, dict) else None
        if node is not None and getattr(node, "provider", None) == PROVIDER:
            del group[rel.name]


class RnnExperimentsPluginConfigs(SearchPathPlugin):
    """hydra/sweeper=optuna and hydra/launcher=slurm for an app without the project's conf/."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        root = conf_root()
        if root is None:
            warnings.warn("rnn-experiments: its configs (rnn_experiments/conf/) are missing, so "
                          "hydra/sweeper=optuna and hydra/launcher=slurm cannot be used: reinstall it")
            return
        if _on_path(search_path, root):
            forget(root)
        else:
            store(root)
