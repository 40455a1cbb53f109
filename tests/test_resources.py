"""Where the memory estimates' "available" comes from: /proc/meminfo's MemAvailable, else the
physical pages sysconf reports, else None (no refusal can be made); the GPU's free memory for
cuda, None without one."""
from __future__ import annotations

import builtins
import os

import pytest
import torch

from rnn_experiments import resources


def _meminfo_kb() -> int:
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("MemAvailable:"))


@pytest.mark.skipif(not os.path.exists("/proc/meminfo"), reason="Linux only")
def test_available_memory_is_meminfos_available(monkeypatch):
    got = resources.available_bytes()
    assert abs(got - _meminfo_kb() * 1024) < 512 * 2 ** 20   # the same figure, read moments apart


def test_without_meminfo_the_physical_pages_are_used_and_else_none(monkeypatch):
    real_open = builtins.open

    def no_meminfo(path, *a, **k):
        if str(path) == "/proc/meminfo":
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, *a, **k)

    monkeypatch.setattr(builtins, "open", no_meminfo)
    monkeypatch.setattr(os, "sysconf", lambda name: {"SC_PAGE_SIZE": 4096, "SC_AVPHYS_PAGES": 1000}[name])
    assert resources.available_bytes() == 4096 * 1000

    def unknown(name):
        raise ValueError(f"unrecognized configuration name {name}")

    monkeypatch.setattr(os, "sysconf", unknown)
    assert resources.available_bytes() is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_cuda_memory_without_a_gpu_is_unknown():
    assert resources.available_bytes("cuda") is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_memory_is_the_free_memory():
    free, total = torch.cuda.mem_get_info()
    assert 0 < resources.available_bytes("cuda") <= total
