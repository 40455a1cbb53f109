"""The `pack` section of rnn-bench: a seeds sweep's wall time, end to end (processes started,
analysis off), with Hydra's basic launcher (one job after the other, torch's default threads),
with joblib (2 jobs at once, 1 thread each), packed (hydra/launcher=packed: the seeds trained
together in one process) and packed with 2 packs at once (n_jobs=2, packs of at most 5, 1 thread
each); docs/speed_and_scale.md, "Packed seeds". Runs alternate between the launchers
(`interleaved`), medians.

Then a pack's peak memory beside K separate runs' (`bench_pack_memory`), each measured in a fresh
process (`peak_child`) over a few steps (the peak comes with the first step and evaluation): the
peak resident memory (VmHWM) of a pack of K (stacked, loop) and of one separate run, which is
also the peak of K runs one after the other in one process; K side by side (K processes) is K ×
it. The packed launcher's estimate, K × training_bytes, counts what training adds (not Python or
torch), so it is checked against what the pack added over the process's resident memory before
it: an upper bound, or the row says it is not.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time

from rnn_experiments.cli.bench.timing import interleaved

LAUNCHERS = {
    "basic": [],
    "joblib": ["hydra/launcher=parallel", "hydra.launcher.n_jobs=2", "train.threads=1"],
    "packed": ["hydra/launcher=packed"],
    "packed x2": ["hydra/launcher=packed", "hydra.launcher.n_jobs=2", "hydra.launcher.pack_size=5"],
}
# (case, overrides, share of --pack-steps, goal of packed / basic, goal of packed / joblib): the
# goals of docs/speed_and_scale.md; at the course's size a step takes ~0.3 s on 2 cores, so it
# runs a fifth of the steps
CASES = [
    ("10 seeds B=32 H=32 T=41", ["model.hidden_size=32", "model.embedding_dim=16", "train.batch_size=32",
                                 "seed=range(10)"], 1.0, 1 / 3, 1 / 2),
    ("demo: 2 models x 2 seeds, B=128 H=64 T=41", ["+experiment=demo"], 1.0, 1 / 0.95, None),
    ("10 seeds B=128 H=64 T=41", ["+experiment=demo", "model=lstm", "seed=range(10)"], 1.0, 1 / 0.95, None),
    ("10 seeds B=256 H=256 T=41", ["seed=range(10)"], 0.2, 1 / 0.95, None),
]


def sweep_seconds(overrides: list[str], launcher: str, steps: int) -> float:
    """One sweep's wall time, start-up included, in a fresh folder."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "rnn_experiments.train", "-m", *overrides, *LAUNCHERS[launcher],
               f"train.steps={steps}", "train.eval_every=50", "train.checkpoint_every=0", "device=cpu",
               f"hydra.sweep.dir={tmp}/sweep", "~hydra.callbacks.analyze",
               "hydra/job_logging=none", "hydra/hydra_logging=none"]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"{launcher} sweep failed: {proc.stderr.strip()[-300:]}")
        return time.perf_counter() - t0


def bench_pack(steps: int, repeats: int, cases=None, memory_cases=None) -> list[dict]:
    """The timed rows of each case (CASES), then the memory rows (bench_pack_memory,
    MEMORY_CASES where `memory_cases` is None)."""
    rows = []
    for case, overrides, share, goal_basic, goal_joblib in CASES if cases is None else cases:
        n = max(1, round(steps * share))
        med = interleaved({name: (lambda name=name: sweep_seconds(overrides, name, n)) for name in LAUNCHERS},
                          repeats, warmup=0, key=f"pack {case}")
        label = f"{case}, {n} steps"
        rows.append({"section": "pack", "case": label, "what": "basic launcher (1 job at a time)",
                     "median_ms": med["basic"] * 1e3, "ratio": 1.0, "target": ""})
        rows.append({"section": "pack", "case": label, "what": "joblib 2 jobs x 1 thread",
                     "median_ms": med["joblib"] * 1e3, "ratio": med["joblib"] / med["basic"], "target": "reported"})
        rows.append({"section": "pack", "case": label, "what": "packed / basic",
                     "median_ms": med["packed"] * 1e3, "ratio": med["packed"] / med["basic"],
                     "target": f"<= {goal_basic:.2f}"})
        rows.append({"section": "pack", "case": label, "what": "packed, 2 packs x 1 thread / basic",
                     "median_ms": med["packed x2"] * 1e3, "ratio": med["packed x2"] / med["basic"],
                     "target": "reported"})
        if goal_joblib is not None:
            rows.append({"section": "pack", "case": label, "what": "packed / joblib", "median_ms": None,
                         "ratio": med["packed"] / med["joblib"], "target": f"<= {goal_joblib:.2f}"})
    return rows + bench_pack_memory(memory_cases)


MEMORY_STEPS = 3     # steps of each run of the memory rows, evaluation and checkpoint at the last
# (case, overrides, K): the timed cases' configs with 10 seeds
MEMORY_CASES = [
    ("10 seeds B=32 H=32 T=41", ["model.hidden_size=32", "model.embedding_dim=16", "train.batch_size=32"], 10),
    ("10 seeds B=128 H=64 T=41", ["+experiment=demo", "model=lstm"], 10),
    ("10 seeds B=256 H=256 T=41", [], 10),
]
WAYS = ("alone", "stacked", "loop")   # one separate run; a pack of K, stacked and loop


def peak_child(argv: list[str]) -> None:
    """In a fresh process (`python -c`): argv = [way, K, folder, *overrides]; trains one run
    ("alone", seed 0) or a pack of seeds 0..K-1 ("stacked", "loop") of `overrides` into `folder`
    and prints one JSON line: the measured memory (resources.PeakMemory.record, from just before
    training; a pack's with the launcher's estimate, `estimate_mib`) and the process's
    high-water mark before it (`startup_mib`: imports, composition, a warm-up: the same way
    for one step at batch 2, so that what torch loads on a first run is not counted as the
    training's growth)."""
    from omegaconf import open_dict   # lazy: only the child trains (as the imports below)

    from rnn_experiments.config import compose   # lazy: as above
    from rnn_experiments.training.loop import start, train   # lazy: as above
    from rnn_experiments.training.pack import Member, run_pack   # lazy: as above
    from rnn_experiments.training.resources import MiB, PeakMemory, resident_bytes   # lazy: as above

    way, K, folder, *overrides = argv

    def runs(n: int, *more: str) -> list:
        base = compose([*overrides, "train.checkpoint_every=0", "device=cpu", *more])
        cfgs = [base.copy() for _ in range(n)]
        for k, cfg in enumerate(cfgs):
            with open_dict(cfg):
                cfg.seed = k
        return cfgs

    def trained(cfgs: list, where: str, record: dict | None) -> None:
        if way == "alone":
            train(cfgs[0], f"{where}/0")
        else:
            run_pack([Member(start(c, f"{where}/{k}", packed=True)) for k, c in enumerate(cfgs)], way, record=record)
    n = 1 if way == "alone" else int(K)
    cfgs = runs(n, f"train.steps={MEMORY_STEPS}", f"train.eval_every={MEMORY_STEPS}")
    # the same way once at the smallest size first: what torch loads on a first run (torch._dynamo,
    # for the model built on the meta device: ~900 modules) is not the training's own memory
    trained(runs(min(n, 2), "train.steps=1", "train.eval_every=1", "train.log_every=1",
                 "train.batch_size=2", "train.eval_size=2"), f"{folder}/warm-up", {})
    startup = resident_bytes("VmHWM")
    if way == "alone":
        memory = PeakMemory()
        trained(cfgs, folder, None)
        measured = memory.record()
    else:
        measured = {"size": n}
        trained(cfgs, folder, measured)
    print(json.dumps({**measured, "startup_mib": None if startup is None else startup / MiB}))


PEAK_CODE = "import sys; from rnn_experiments.cli.bench.packs import peak_child; peak_child(sys.argv[1:])"


def measure_peak(way: str, K: int, overrides: list[str]) -> dict:
    """peak_child's record, from a fresh process."""
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.run([sys.executable, "-c", PEAK_CODE, way, str(K), f"{tmp}/runs", *overrides],
                              cwd=tmp, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{way} run failed: {proc.stderr.strip()[-300:]}")
    return json.loads(lines[-1])


def bench_pack_memory(cases=None) -> list[dict]:
    """The memory rows of each case (memory_rows), every figure from a fresh process."""
    rows = []
    for case, overrides, K in MEMORY_CASES if cases is None else cases:
        measured = {way: measure_peak(way, K, overrides) for way in WAYS}
        label = f"{case}, memory, {MEMORY_STEPS} steps"
        if any("rss_before_mib" not in m for m in measured.values()):   # no /proc/self/status (not Linux)
            rows.append({"section": "pack", "case": label, "what": "skipped: no VmRSS here", "median_ms": None,
                         "ratio": None, "target": "resident memory is read from /proc/self/status (Linux)"})
            continue
        rows += memory_rows(label, K, measured)
    return rows


def memory_rows(case: str, K: int, measured: dict) -> list[dict]:
    """Rows from peak_child's records of each way (WAYS): a process's peak is the larger of its
    high-water mark before training and during it (MiB); `+` is what training added over the
    resident memory before it. Ratios: a pack's peak over one run's (= K runs one after the other
    in one process); the launcher's estimate (the pack's `estimate_mib`: K × training_bytes) over
    the larger growth of the two packs: >= 1 where it is an upper bound."""
    peak = {w: max(m["peak_rss_mib"], m.get("startup_mib") or 0.0) for w, m in measured.items()}
    grew = {w: m["peak_rss_mib"] - m["rss_before_mib"] for w, m in measured.items()}
    one = peak["alone"]
    row = lambda what, ratio, target: {"section": "pack", "case": case, "what": what, "median_ms": None,
                                       "ratio": ratio, "target": target}
    rows = [row(f"1 run {one:.0f} MiB (+{grew['alone']:.0f})", None,
                f"peak RSS of a fresh process (+: over its RSS before training); also {K} runs one "
                "after the other in one process"),
            row(f"{K} side by side {K * one:.0f} MiB", None,
                f"{K} x 1 run ({K} processes at once; each counts the shared libraries again)")]
    for way in ("stacked", "loop"):      # named by how the steps were taken (stacked may fall back)
        rows.append(row(f"{measured[way].get('strategy', way)} {peak[way]:.0f} MiB (+{grew[way]:.0f})",
                        peak[way] / one,
                        f"reported: x 1 run; {peak[way] / (K * one):.2f} x {K} side by side"))
    estimate = measured["stacked"]["estimate_mib"]
    most = max(grew["stacked"], grew["loop"])
    bound = estimate >= most
    rows.append(row(f"estimate {estimate:.0f} MiB", estimate / most if most > 0 else None,
                    f"K x training_bytes >= the pack's growth (+{most:.0f}): "
                    + ("met" if bound else "NOT an upper bound")))
    return rows
