"""Where the memory estimates' "available" comes from: /proc/meminfo's MemAvailable, else the
physical pages sysconf reports, else None (no refusal can be made); the GPU's free memory for
cuda, None without one."""
from __future__ import annotations

import builtins
import os

import pytest
import torch

from rnn_experiments.training import resources


def _meminfo(monkeypatch, text: str | None):
    """/proc/meminfo reads as `text`; None: it cannot be opened (PermissionError)."""
    import io
    real_open = builtins.open

    def fake_open(path, *a, **k):
        if str(path) != "/proc/meminfo":
            return real_open(path, *a, **k)
        if text is None:
            raise PermissionError(13, "Permission denied", path)
        return io.StringIO(text)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(resources, "cgroup_bytes", lambda: None)          # the machine's own figure only
    monkeypatch.setattr(resources, "process_limit_bytes", lambda: None)


def _tree(root, files: dict) -> None:
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)


@pytest.mark.parametrize("cgroup, files, left", [
    ("0::/job/step\n", {"job/memory.max": "1000", "job/memory.current": "300",
                        "job/step/memory.max": "max", "job/step/memory.current": "250"}, 700),   # v2: the parent's
    ("0::/job/step\n", {"job/memory.max": "5000", "job/memory.current": "300",
                        "job/step/memory.max": "800", "job/step/memory.current": "250"}, 550),   # the smallest
    ("0::/\n", {"memory.max": "max", "memory.current": "1"}, None),                              # no limit
    ("9:cpu:/x\n4:memory:/slurm/job\n", {"memory/slurm/job/memory.limit_in_bytes": "2048",
                                          "memory/slurm/job/memory.usage_in_bytes": "48"}, 2000),  # v1
])
def test_the_cgroup_limit_less_its_use_is_what_is_left(tmp_path, cgroup, files, left):
    _tree(tmp_path / "fs", files)
    (tmp_path / "cgroup").write_text(cgroup)
    assert resources.cgroup_bytes(tmp_path / "fs", tmp_path / "cgroup") == left


def test_the_smallest_of_machine_cgroup_and_process_limit_decides(monkeypatch):
    from conftest import compose_config
    from rnn_experiments.errors import ConfigError
    monkeypatch.setattr(resources, "_machine_bytes", lambda: 64 << 30)
    monkeypatch.setattr(resources, "process_limit_bytes", lambda: None)
    monkeypatch.setattr(resources, "cgroup_bytes", lambda: 1 << 30)          # a 1 GiB container
    assert resources.available_bytes() == 1 << 30
    cfg = compose_config(["model.hidden_size=4096", "train.batch_size=2048", "train.eval_size=64"])
    with pytest.raises(ConfigError, match="fits in memory"):
        resources.check_training_fits(cfg)
    monkeypatch.setattr(resources, "cgroup_bytes", lambda: None)
    resources.check_training_fits(cfg)                                        # fits in the machine's 64 GiB


def test_available_memory_is_meminfos_available(monkeypatch):
    _meminfo(monkeypatch, "MemTotal:       24685000 kB\nMemFree:  100 kB\nMemAvailable:   21000000 kB\n")
    assert resources.available_bytes() == 21000000 * 1024


def test_a_meminfo_without_memavailable_falls_back_to_the_physical_pages(monkeypatch):
    _meminfo(monkeypatch, "MemTotal:       24685000 kB\nMemFree:  100 kB\n")   # kernels before 3.14
    monkeypatch.setattr(os, "sysconf", lambda name: {"SC_PAGE_SIZE": 4096, "SC_AVPHYS_PAGES": 7}[name])
    assert resources.available_bytes() == 4096 * 7


def test_without_meminfo_the_physical_pages_are_used_and_else_none(monkeypatch):
    _meminfo(monkeypatch, None)
    monkeypatch.setattr(os, "sysconf", lambda name: {"SC_PAGE_SIZE": 4096, "SC_AVPHYS_PAGES": 1000}[name])
    assert resources.available_bytes() == 4096 * 1000

    def unknown(name):
        raise ValueError(f"unrecognized configuration name {name}")

    monkeypatch.setattr(os, "sysconf", unknown)
    assert resources.available_bytes() is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_cuda_memory_without_a_gpu_is_unknown():
    assert resources.available_bytes("cuda") is None


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_memory_is_the_free_memory():
    free, total = torch.cuda.mem_get_info()
    assert 0 < resources.available_bytes("cuda") <= total


@pytest.mark.parametrize("model", ["lstm", "peep_lstm", "rnn", "gru", "bilstm", "generator"])
def test_the_estimates_parameter_count_is_the_built_models(model):
    """resources.parameters (a class's num_parameters, else the model built on the meta device)
    equals the parameters of the model the run builds, for every packaged model."""
    from conftest import compose_config
    from rnn_experiments.models import build_model
    text = ["dataset=text", "dataset.path=/x.txt", "model.num_layers=3"] if model == "generator" else []
    cfg = compose_config([f"model={model}", *text])
    built = build_model(cfg.model, 11, 7, pad_token=2)
    assert resources.parameters(cfg.model, 11, 7, pad_token=2) == sum(p.numel() for p in built.parameters())
