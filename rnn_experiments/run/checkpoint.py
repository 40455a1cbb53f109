"""checkpoint.pt: everything an exact resume needs, saved atomically (run_folder.atomic_write:
a process killed while saving leaves the previous checkpoint intact, never a truncated file)."""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import torch

from rnn_experiments.parts import signature_of
from rnn_experiments.run.folder import FORMAT_VERSION, atomic_write, format_version
from rnn_experiments.run.readers import ReadError, read_bytes
from rnn_experiments.run.redact import REDACTED, redacted_values


class CheckpointError(RuntimeError):
    pass


def save_atomic(obj, path: Path) -> None:
    """torch.save through run_folder.atomic_write: the previous file stays whole if this fails
    (OSError naming `path` and the reason)."""
    with atomic_write(path, "wb") as f:
        torch.save(obj, f)


def load(path: Path, map_location="cpu") -> dict:
    """A checkpoint file's state; CheckpointError (one line) for anything else, read without
    blocking first (readers.read_bytes: a link to a FIFO or a device is refused, never opened
    for a read that would hang)."""
    import io

    try:
        data = read_bytes(path)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except ReadError as e:
        raise CheckpointError(str(e)) from None
    try:
        state = torch.load(io.BytesIO(data), map_location=map_location, weights_only=False)
    except Exception as e:
        raise CheckpointError(f"{path}: cannot load checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or "model" not in state or "step" not in state:
        raise CheckpointError(f"{path}: not a checkpoint of this project (missing 'model'/'step')")
    return state


# What `restore_run` needs from a checkpoint, besides model and step.
RESUME_KEYS = ("optimizer", "data", "rng", "metrics", "window", "elapsed_s")


def save_run(path: Path, *, step: int, model, optimizer, scheduler, data, rows: list[dict],
             window: dict, elapsed_s: float, cfg) -> None:
    """Everything an exact resume needs, saved atomically to `path`."""
    save_atomic({
        "format_version": FORMAT_VERSION, "step": step, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "data": data.state_dict(), "rng": rng_state(), "metrics": list(rows),
        "window": window, "elapsed_s": elapsed_s,
        "config": redacted_values(cfg),   # resolved, secrets redacted (run/redact.py)
        "parts": {key: signature_of(cfg[key], key) for key in CHECKED_PARTS if cfg.get(key)},
    }, path)


def restore_run(path: Path, cfg, model, optimizer, scheduler, data) -> dict:
    """Load `path` into the run's objects (refusing another run's checkpoint); returns the state
    (step, metrics, window, elapsed_s, ...)."""
    state = load(path, map_location="cpu")  # RNG states must stay CPU tensors
    missing = [k for k in RESUME_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{path}: incomplete checkpoint (no {', '.join(map(repr, missing))}); "
                              "cannot resume from it: use another run folder or train.resume=false")
    if format_version(state) > FORMAT_VERSION:
        raise CheckpointError(f"{path}: format_version {format_version(state)} is newer than this release "
                              f"reads (up to {FORMAT_VERSION}); resume it with the release that wrote it")
    check_same_run(state, cfg, path)
    check_same_parts(state, cfg, path)
    if state["step"] > cfg.train.steps:
        raise CheckpointError(f"{path}: the run is at step {state['step']}, beyond train.steps="
                              f"{cfg.train.steps}; use train.steps >= {state['step']} or another run folder")
    data.load_state_dict(state["data"])  # first: a text dataset checks its vocabulary and text here
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler"):
            scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
    except (KeyError, ValueError, RuntimeError, TypeError) as e:
        raise CheckpointError(f"{path}: damaged checkpoint ({type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''}); use another run folder "
                              "or train.resume=false") from None
    return state


# Keys that may change between an interrupted run and its resumption (also any sample.*, logger.*).
RESUMABLE_CHANGES = {"train.steps", "train.resume", "train.checkpoint_every", "train.threads",
                     "train.cuda_graphs", "device"}


def check_same_run(state: dict, cfg, path: Path) -> None:
    """Refuse to resume a checkpoint made with another model, data or optimiser setting (a
    secret setting, redacted on either side, is not compared)."""
    def flat(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from flat(v, f"{prefix}{k}.")
            else:
                yield f"{prefix}{k}", v

    old = dict(flat(state.get("config", {})))
    new = dict(flat(redacted_values(cfg)))
    for key in sorted(set(old) | set(new)):
        if key not in RESUMABLE_CHANGES and not key.startswith(("sample.", "logger.")) and key in old and key in new \
                and old[key] != new[key] and REDACTED not in (old[key], new[key]):
            raise CheckpointError(
                f"{path}: made with {key}={old.get(key)!r}, but this run has {key}={new.get(key)!r}; "
                "use another run folder or train.resume=false")


CHECKED_PARTS = ("model", "dataset")   # the parts whose class's signature a resume compares


def check_same_parts(state: dict, cfg, path: Path) -> None:
    """Refuse to resume where a part's class now accepts other settings, or other defaults, than
    when the checkpoint was written (its code changed: resumed, the run would be a mix of two
    models). Checkpoints before format_version 4 recorded none: not checked."""
    for key, old in (state.get("parts") or {}).items():
        if key not in CHECKED_PARTS or not cfg.get(key):
            continue
        new = signature_of(cfg[key], key)
        if old.get("target") == new["target"] and old.get("settings") != new["settings"]:
            was, now = old["settings"], new["settings"]
            changes = ", ".join(f"{k}: {was.get(k, 'absent')} -> {now.get(k, 'absent')}"
                                for k in sorted(set(was) | set(now)) if was.get(k) != now.get(k))
            raise CheckpointError(
                f"{path}: {new['target']} changed since the checkpoint was written (its settings {changes}); "
                "resume with the class as it was, or use another run folder or train.resume=false")


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
