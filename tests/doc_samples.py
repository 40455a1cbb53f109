"""The sample outputs the docs show, made from one real run of the README's demo command.

    python tests/doc_samples.py                 # runs the demo (minutes), rewrites every sample
    python tests/doc_samples.py --from DIR      # rewrites them from an earlier run kept in DIR
    python tests/doc_samples.py --keep DIR      # runs the demo in DIR and keeps it there

A sample is the text between `<!-- sample: NAME -->` and `<!-- /sample -->` in README.md or
docs/*.md; NAME is one of SAMPLES below. The demo's accuracy plot is copied to
docs/img/demo_accuracy.png. tests/test_docs.py checks every sample against what the current code
writes (its column headers, file names, keys) on the shared tiny sweep, so a renamed column, file
or key fails the suite until this script is run again.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
REGION = re.compile(r"(<!-- sample: ([\w-]+)[^>]*-->\n)(.*?)(<!-- /sample -->)", re.S)
DEMO = ["-m", "+experiment=demo"]      # the README's demo command (checked by tests/test_docs.py)
NAMES = ("demo-table", "demo-compare", "demo-end", "demo-files", "demo-machine", "summary-json", "metrics-csv")
PLACEHOLDER = "(python tests/doc_samples.py writes this)"


def regions(text: str) -> list[tuple[str, str]]:
    """(name, content) of every sample region of a page."""
    return [(m.group(2), m.group(3)) for m in REGION.finditer(text)]


def the_sweep(run: Path) -> Path:
    """The one sweep folder under run/multirun/DATE/."""
    sweeps = sorted((run / "multirun").glob("*/*_demo"))
    if len(sweeps) != 1:
        sys.exit(f"doc_samples: expected one demo sweep under {run / 'multirun'}, found {len(sweeps)}")
    return sweeps[0]


def analysis_lines(out: str) -> list[str]:
    """The lines the sweep prints at its end after the tables: where the plots and tables are."""
    return [line for line in out.splitlines() if re.match(r"^(plots|tables|comparison of \S+) \(", line)]


def tree(sweep: Path, run: Path) -> str:
    """The sweep folder's files, one line per folder."""
    def names(folder: Path) -> str:
        return "  ".join(sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir()
                                if not p.name.startswith(".rnn-")))
    jobs = sorted((p for p in sweep.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    lines = [f"{sweep.relative_to(run)}/", f"  {jobs[0].name}/        {names(jobs[0])}"]
    lines.append(f"  {'/ '.join(p.name for p in jobs[1:])}/    (the same, one folder per job)")
    lines.append(f"  analysis/ {names(sweep / 'analysis')}")
    lines += [f"  {p.name}" for p in sorted(sweep.iterdir()) if p.is_file()]
    return "\n".join(lines)


def summary_text(job: Path, info: dict) -> str:
    """The run's summary.json as written, the interpreter's path shown as `python` (the command
    records sys.executable, a path of the machine that made the sample)."""
    text = (job / "summary.json").read_text(encoding="utf-8")
    return text.replace(json.dumps(info["python"])[1:-1] + " -m", "python -m") if info.get("python") else text


def metrics_head(job: Path, rows: int = 3) -> str:
    return "\n".join((job / "metrics.csv").read_text(encoding="utf-8").splitlines()[:rows + 1])


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
    except OSError:
        pass
    import torch
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__, "load": os.getloadavg()[0],
            "python": sys.executable}


def fence(lang: str, text: str) -> str:
    return f"```{lang}\n{text.rstrip()}\n```\n"


def samples(run: Path) -> dict[str, str]:
    """Every sample's markdown, from a demo run kept in `run`."""
    sweep = the_sweep(run)
    out = (run / "stdout.txt").read_text(encoding="utf-8")
    info = json.loads((run / "machine.json").read_text(encoding="utf-8"))
    job = sweep / "0"
    made = {
        "demo-table": (sweep / "analysis" / "summary.md").read_text(encoding="utf-8").rstrip() + "\n",
        "demo-compare": (sweep / "analysis" / "compare.md").read_text(encoding="utf-8").rstrip() + "\n",
        "demo-end": fence("text", "\n".join(analysis_lines(out))),
        "demo-files": fence("text", tree(sweep, run)),
        "demo-machine": (f"The demo's 4 runs and their analysis took {info['wall_s']:.0f} s on "
                         f"{info['cores']} cores of an `{info['cpu']}`, torch {info['torch']}, on a machine "
                         f"shared with other jobs (load average {info['load']:.1f} when it started, "
                         f"{info.get('load_end', info['load']):.1f} when it ended).\n"),
        "summary-json": fence("json", summary_text(job, info)),
        "metrics-csv": fence("text", metrics_head(job)),
    }
    assert set(made) == set(NAMES)
    return made


def run_demo(run: Path) -> None:
    """The README's demo command, as a user runs it, from an empty folder."""
    run.mkdir(parents=True, exist_ok=True)
    info = machine()
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "rnn_experiments.train", *DEMO], cwd=run, env=env,
                          capture_output=True, text=True)
    info["wall_s"] = time.perf_counter() - t0
    info["load_end"] = os.getloadavg()[0]
    if proc.returncode != 0:
        sys.exit(f"doc_samples: the demo failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    (run / "stdout.txt").write_text(proc.stdout, encoding="utf-8")
    (run / "machine.json").write_text(json.dumps(info), encoding="utf-8")


def rewrite(run: Path) -> list[Path]:
    """Replace every sample region of every page; copy the accuracy plot. Returns the pages changed."""
    made = samples(run)
    changed = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        unknown = [name for name, _ in regions(text) if name not in made]
        if unknown:
            sys.exit(f"doc_samples: {page.relative_to(ROOT)}: unknown sample(s) {unknown} (have: {sorted(made)})")
        new = REGION.sub(lambda m: m.group(1) + made[m.group(2)] + m.group(4), text)
        if new != text:
            page.write_text(new, encoding="utf-8")
            changed.append(page)
    shutil.copyfile(the_sweep(run) / "analysis" / "accuracy.png", ROOT / "docs" / "img" / "demo_accuracy.png")
    return changed


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python tests/doc_samples.py", description=__doc__.split("\n")[0])
    ap.add_argument("--from", dest="source", type=Path, help="a demo run kept by --keep: rewrite from it")
    ap.add_argument("--keep", type=Path, help="run the demo in this folder and keep it")
    args = ap.parse_args(argv)
    if args.source:
        run = args.source
    else:
        run = args.keep or Path(tempfile.mkdtemp(prefix="doc-samples-"))
        print(f"running the demo in {run} ...", flush=True)
        run_demo(run)
    for page in rewrite(run):
        print(f"rewrote {page.relative_to(ROOT)}")
    print("copied docs/img/demo_accuracy.png")


if __name__ == "__main__":
    main()
