"""What rnn-bench's header says of the machine: the CPU model, its vector extensions, the MKL and
oneDNN versions torch was built with, and what the fused cells' kernels cost on it."""
from __future__ import annotations

import platform
import subprocess
import time

import torch

from rnn_experiments.models.kernels import fused


def cpu_model() -> str:
    """The CPU's model name: /proc/cpuinfo (Linux), else `lscpu`, else platform.processor().
    Virtual machines may report a bare "AMD EPYC", so family and model number are added."""
    try:
        with open("/proc/cpuinfo") as f:
            info = dict(line.split(":", 1) for line in f.read().split("\n\n")[0].splitlines()
                        if ":" in line)
        info = {k.strip(): v.strip() for k, v in info.items()}
        if "model name" in info:
            return f"{info['model name']} (family {info.get('cpu family', '?')}, model {info.get('model', '?')})"
    except OSError:
        pass
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or "unknown model"


def cpu_flags() -> str:
    """The vector extensions the matrix and element-wise kernels can use, from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return "flags unknown"
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile")
    return " ".join(flag for flag in wanted if flag in flags) or "no AVX2"


def library_versions() -> str:
    """MKL and oneDNN as torch was built with them (from torch.__config__.show())."""
    found = []
    for line in torch.__config__.show().splitlines():
        line = line.strip(" -")
        if line.startswith("Intel(R) oneAPI Math Kernel Library Version") or line.startswith("Intel(R) Math Kernel"):
            found.append("MKL " + line.split("Version", 1)[1].split("-")[0].strip())
        elif line.startswith("Intel(R) MKL-DNN") or line.startswith("Intel(R) oneDNN"):
            found.append("oneDNN " + line.split()[2])
    return ", ".join(found) or "no MKL/oneDNN"


def cpu_kernels() -> str:
    """What the fused cells' kernels cost on this CPU at its thread count: ATen's tanh against
    its sigmoid on a (256, 256) tensor (and which the cells use), and the recurrent product
    (256, 256) x (256, 1024) through MKL (what the cells call) and through oneDNN (what
    nn.LSTM calls), in GFLOP/s. Fastest of a few repeats."""

    def best(fn, calls):
        for _ in range(3):
            fn()
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)
    x, out = torch.linspace(-4, 4, 256 * 256).view(256, 256), torch.empty(256, 256)
    t_tanh = best(lambda: torch.tanh(x, out=out), 50)
    t_sig = best(lambda: torch.sigmoid(x, out=out), 50)
    h, W = torch.linspace(-1, 1, 256 * 256).view(256, 256), torch.linspace(-1, 1, 1024 * 256).view(1024, 256)
    flops = 2 * 256 * 256 * 1024
    mkl = flops / best(lambda: torch.mm(h, W.t()), 20) / 1e9
    text = (f"tanh {t_tanh * 1e6:.0f} us vs sigmoid {t_sig * 1e6:.0f} us per 256x256 "
            f"(cells use {'2*sigmoid(2x)-1' if fused.tanh_by_sigmoid() else 'tanh'}); "
            f"256x256x1024 product: MKL {mkl:.0f} GFLOP/s")
    linear = getattr(torch.ops.mkldnn, "_linear_pointwise", None)
    if torch.backends.mkldnn.is_available() and linear is not None:
        try:
            dnnl = flops / best(lambda: linear(h, W, None, "none", [], ""), 20) / 1e9
            text += f", oneDNN {dnnl:.0f} GFLOP/s"
        except RuntimeError:
            pass
    return text
