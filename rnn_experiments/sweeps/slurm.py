"""SLURM through hydra-submitit-launcher (`hydra/launcher=slurm`, conf/hydra/launcher/slurm.yaml).

* `check_slurm_launcher(launcher_cfg)`, before anything is submitted: ConfigError (one line
  naming the key) for `sbatch` not on PATH, a controller that does not answer, no partition on a
  cluster without a default one, a partition the cluster does not have, or more CPUs, memory or
  GPUs per node than any node of the partition has (each, or all together). SLURM would refuse
  such a job only at submission (submitit's multi-line traceback), or, for resources, leave it
  pending for ever.
  The cluster is read with `scontrol show partition` and `scontrol show node` (hidden
  partitions included).

The launcher itself, how it waits for its jobs and runs packs as tasks:
hydra_plugins/rnn_experiments_slurm/ (made known to Hydra by rnn_experiments/cli/plugins.py).
"""
from __future__ import annotations

import logging
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Callable, Optional

from rnn_experiments.errors import ConfigError
from rnn_experiments.run.multirun import is_slurm_launcher

log = logging.getLogger(__name__)


@dataclass
class Node:
    name: str
    cpus: int
    memory_mb: int
    gpus: int
    partitions: list[str] = field(default_factory=list)


@dataclass
class Cluster:
    partitions: list[str]
    default: Optional[str]
    nodes: list[Node]


def _records(text: str) -> list[dict[str, str]]:
    """`scontrol show ... -o` output: one record a line, KEY=VALUE fields (a value such as OS's
    may hold spaces; only the fields this module reads matter)."""
    return [dict(re.findall(r"(?:^|\s)([A-Za-z]+)=(\S*)", line)) for line in text.splitlines() if "=" in line]


def _gpus(gres: str) -> int:
    """GPUs in a node's Gres field: gpu:4, gpu:a100:2(S:0-1), ... ; (null): 0."""
    total = 0
    for item in gres.split(","):
        parts = re.sub(r"\(.*?\)", "", item).split(":")
        if parts[0] == "gpu" and parts[-1].isdigit():
            total += int(parts[-1])
    return total


def parse_cluster(partitions_text: str, nodes_text: str) -> Cluster:
    """The partitions, the default one and the nodes from `scontrol show partition -o` and
    `scontrol show node -o`."""
    parts = _records(partitions_text)
    nodes = [Node(name=r["NodeName"], cpus=int(r.get("CPUEfctv") or r.get("CPUTot") or 0),
                  memory_mb=int(r.get("RealMemory") or 0), gpus=_gpus(r.get("Gres", "")),
                  partitions=[p for p in r.get("Partitions", "").split(",") if p])
             for r in _records(nodes_text) if "NodeName" in r]
    return Cluster(partitions=[p["PartitionName"] for p in parts if "PartitionName" in p],
                   default=next((p["PartitionName"] for p in parts if p.get("Default") == "YES"), None),
                   nodes=nodes)


def _scontrol(*args: str) -> str:
    try:
        proc = subprocess.run(["scontrol", *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ConfigError(f"hydra/launcher=slurm: `scontrol {' '.join(args)}` failed ({e})") from None
    if proc.returncode != 0:
        said = (proc.stderr.strip().splitlines() or ["no output"])[0]
        raise ConfigError(f"hydra/launcher=slurm: `scontrol {' '.join(args)}` failed: {said} "
                          "(is the SLURM controller up?)")
    return proc.stdout


def read_cluster() -> Cluster:
    """The cluster as the controller describes it (hidden partitions included)."""
    return parse_cluster(_scontrol("--all", "--oneliner", "show", "partition"),
                         _scontrol("--all", "--oneliner", "show", "node"))


def _read_cluster() -> Cluster:
    return read_cluster()   # looked up at call time: a stand-in cluster can replace read_cluster


def check_slurm_launcher(launcher_cfg, cluster: Optional[Cluster] = None,
                         which: Optional[Callable[[str], Optional[str]]] = None) -> None:
    """ConfigError (one line) for a SLURM sweep that cannot start; see the module doc. Does
    nothing for another launcher. `cluster`: the cluster as read by `read_cluster()`; `which`:
    how a program is found (shutil.which)."""
    if not is_slurm_launcher(launcher_cfg):
        return
    which = which or shutil.which
    if which("sbatch") is None:
        raise ConfigError("hydra/launcher=slurm needs SLURM's sbatch, which is not on PATH: run the "
                          "sweep on a machine of the cluster (a login node), or use hydra/launcher=parallel")
    cluster = cluster or _read_cluster()
    key = "hydra.launcher.partition"
    partition = launcher_cfg.get("partition")
    known = ", ".join(cluster.partitions) or "none"
    if partition is None:   # sbatch without --partition: the default partition
        if cluster.default is None:
            raise ConfigError(f"{key}=None is invalid: expected one of the cluster's partitions "
                              f"({known}); the cluster has no default partition")
        partition = cluster.default
    asked = str(partition).split(",")   # sbatch takes a list: the job runs in one of them
    unknown = [p for p in asked if p not in cluster.partitions]
    if unknown:
        raise ConfigError(f"{key}={partition!r} is invalid: expected one of the cluster's partitions ({known})"
                          + (f"; {', '.join(unknown)} is not one" if len(asked) > 1 else ""))
    nodes = [n for n in cluster.nodes if set(asked) & set(n.partitions)]
    tasks = int(launcher_cfg.get("tasks_per_node") or 1)
    wanted = [("cpus_per_task", int(launcher_cfg.get("cpus_per_task") or 0) * tasks, "cpus", "CPUs"),
              ("mem_gb", int(launcher_cfg.get("mem_gb") or 0) * 1024, "memory_mb", "MB of memory"),
              ("gpus_per_node", int(launcher_cfg.get("gpus_per_node") or 0), "gpus", "GPUs")]
    for name, need, attr, unit in wanted:
        most = max((getattr(n, attr) for n in nodes), default=0)
        if need > most:
            per = f" x tasks_per_node={tasks}" if name == "cpus_per_task" and tasks > 1 else ""
            allowed = most // 1024 if name == "mem_gb" else most // tasks if name == "cpus_per_task" else most
            raise ConfigError(f"hydra.launcher.{name}={launcher_cfg.get(name)}{per} is invalid: expected at "
                              f"most {allowed} (the largest node of partition {partition} has {most} {unit})")
    if not any(all(need <= getattr(n, attr) for _, need, attr, _ in wanted) for n in nodes):
        asked_for = ", ".join(f"hydra.launcher.{name}={launcher_cfg.get(name)}" for name, need, _, _ in wanted if need)
        raise ConfigError(f"{asked_for}: no node of partition {partition} has all of these together")

