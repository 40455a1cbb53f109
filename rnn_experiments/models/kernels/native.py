"""The LSTM's time loops compiled for this machine (native_lstm.c), where a C compiler is at hand.

At small sizes a step of the fused CPU path (fused.py) is the cost of its ATen calls, about a
dozen per timestep from Python, not their arithmetic; nn.LSTM runs its loop in C++. native_lstm.c
runs all T steps of LSTMFunction's forward or backward in one call: per step one BLAS product per
member (the sgemm_/dgemm_ that torch's own library exports: the MKL of torch's CPU builds) and one
vectorized pass over the step's rows, on the same buffers as the Python loop.

It is built on first use with the system's C compiler (`$CC`, else `cc`) for this CPU
(-O3 -march=native; glibc's vector exp where the C library has it), about half a second, and kept in
this user's cache of measured choices (measured.cache_dir(): native-<hash>.so, the hash of the
source, flags, compiler and CPU); later processes load it. Where there is no compiler, the build
fails or torch's library exports no BLAS, `lib()` is None and `why_not()` says why in one line:
the training step's measured choice (training/impl.py) then has no "fused:native" candidate.
"""
from __future__ import annotations

import ctypes
import glob
import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

import torch

from rnn_experiments.models.kernels import measured

SOURCE = Path(__file__).with_name("native_lstm.c")
FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fopenmp-simd", "-shared", "-fPIC"]
MVEC = (["-DRNN_MVEC"], ["-lmvec", "-lm"])             # vectorized exp from glibc's libmvec
_STATE: dict = {}                                      # "lib", "why", "gemm": this process's


class _Lib:
    """The loaded library with its functions' argument types and the BLAS products."""

    def __init__(self, path: Path, gemm: dict):
        self.path, self.gemm = path, gemm
        cdll = ctypes.CDLL(str(path))
        i, p = ctypes.c_int, ctypes.c_void_p
        for suffix in ("f32", "f64"):
            fwd = getattr(cdll, f"lstm_forward_{suffix}")
            fwd.argtypes = [i] * 7 + [p] * 11
            fwd.restype = ctypes.c_int64                # 0, or 1 + the index of a bad token id
            bwd = getattr(cdll, f"lstm_backward_{suffix}")
            bwd.argtypes = [i] * 4 + [p] * 8
            bwd.restype = None
            setattr(self, f"forward_{suffix}", fwd)
            setattr(self, f"backward_{suffix}", bwd)

    def forward(self, dtype):
        return self.forward_f32 if dtype == torch.float32 else self.forward_f64

    def backward(self, dtype):
        return self.backward_f32 if dtype == torch.float32 else self.backward_f64


def _blas() -> dict | None:
    """{dtype: address of the Fortran sgemm_/dgemm_} from torch's CPU library, or None."""
    here = Path(torch.__file__).parent / "lib"
    for name in sorted(glob.glob(str(here / "libtorch_cpu.*"))):
        try:
            found = ctypes.CDLL(name)
            return {torch.float32: ctypes.cast(found.sgemm_, ctypes.c_void_p).value,
                    torch.float64: ctypes.cast(found.dgemm_, ctypes.c_void_p).value}
        except (OSError, AttributeError):
            continue
    return None


def _compiler() -> list[str] | None:
    """$CC (split as a shell would: "ccache gcc"), else cc, where its program is on PATH."""
    words = shlex.split(os.environ.get("CC", "") or "cc")
    found = shutil.which(words[0]) if words else None
    return [found, *words[1:]] if found else None


def _cpu_flags() -> str:
    """The CPU's instruction-set flags (a virtual machine may hide some of a model's): part of
    the built library's name, as -march=native compiles for them."""
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        return ""


def target(cc: list[str]) -> Path:
    """Where the library built by `cc` is kept: named by the hash of the source, flags, the
    compiler's version and the CPU (OSError, SubprocessError where `cc` does not run)."""
    version = subprocess.run([*cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    tag = hashlib.sha1("\0".join([SOURCE.read_text(), *FLAGS, version, measured.cpu_name(), _cpu_flags()]
                                 ).encode()).hexdigest()[:16]
    return measured.cache_dir() / f"native-{tag}.so"


def _build(cc: list[str]) -> tuple[Path | None, str]:
    """(the built library, "") or (None, why not): from the cache where it loads, else compiled
    into it (a cached file that does not load, e.g. cut short, is built again)."""
    if not SOURCE.is_file():
        return None, f"{SOURCE} is missing (an install without the package's data files)"
    name = " ".join(cc)
    try:
        path = target(cc)
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"the C compiler {name} does not run ({e})"
    if path.exists():
        try:
            ctypes.CDLL(str(path))
            return path, ""
        except OSError:
            pass                                        # built again below
    error = ""
    for extra, libs in (MVEC, ([], ["-lm"])):           # glibc's vector exp, else the scalar one
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
            os.close(fd)
            done = subprocess.run([*cc, *FLAGS, *extra, str(SOURCE), "-o", tmp, *libs],
                                  capture_output=True, text=True, timeout=120)
            if done.returncode == 0:
                ctypes.CDLL(tmp)                        # loads (every symbol resolved)
                os.chmod(tmp, 0o755)                    # (mkstemp's 0600: a shared cache's other users)
                os.replace(tmp, path)                # atomic: a reader never sees half a file
                return path, ""
            error = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        except (OSError, subprocess.SubprocessError) as e:
            error = str(e)
        finally:
            if tmp is not None and os.path.exists(tmp):
                os.unlink(tmp)
    return None, f"{name} could not build {SOURCE.name} ({error})"


def lib() -> _Lib | None:
    """The compiled loops for this machine, built on first use (module doc); None where they
    cannot be had (`why_not`)."""
    if "lib" not in _STATE:
        _STATE["lib"], _STATE["why"] = None, ""
        gemm = _blas()
        cc = _compiler()
        if gemm is None:
            _STATE["why"] = "torch's CPU library exports no BLAS sgemm_/dgemm_"
        elif cc is None:
            _STATE["why"] = f"no C compiler ({os.environ.get('CC', '') or 'cc'}) on PATH"
        else:
            path, why = _build(cc)
            if path is None:
                _STATE["why"] = why
            else:
                try:
                    _STATE["lib"] = _Lib(path, gemm)
                except (OSError, AttributeError) as e:
                    _STATE["why"] = f"cannot load {path} ({e})"
    return _STATE["lib"]


def why_not() -> str:
    """Why `lib()` is None (one line), or "" where it is not."""
    lib()
    return _STATE["why"]


def pointers(steps: list) -> torch.Tensor:
    """The data pointers of a list of per-step tensors, as an int64 tensor (the C loops' `*_ptrs`)."""
    return torch.tensor([s.data_ptr() for s in steps], dtype=torch.int64)
