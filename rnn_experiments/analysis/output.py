"""The analysis's output folder, written all at once or not at all.

`Output(out)` checks the folder (`check_out`); `with output.staged() as stage:` gives a
temporary folder inside it (hidden, so never mistaken for runs) to write every file into; when
the block ends without an error each file is moved into place (os.replace, one folder: atomic
per file), files an earlier analysis wrote there and this one did not are removed, and the list
of what this analysis wrote is kept in `.rnn-analyze.json`. When the block fails, the temporary
folder is removed and the output folder is as it was (a folder created for it is removed again).

Only files named in that list (and rerun.sh, which analyses before the list wrote) are ever
removed; `runs/`, the run folders kept by --keep-runs, is replaced only by another --keep-runs
and never removed as stale.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Iterator

from rnn_experiments.analysis.collect import AnalysisError
from rnn_experiments.run.readers import read_bytes
from rnn_experiments.run.folder import is_run_folder, write_text

MANIFEST = ".rnn-analyze.json"
RUNS = "runs"
# what --keep-runs copies of a run folder (no checkpoints, no logs): enough to analyse it again
KEPT_FILES = ("metrics.csv", "summary.json", ".hydra/config.yaml", ".hydra/overrides.yaml",
              ".hydra/hydra.yaml")


def check_out(out) -> Path:
    """--out as a Path: AnalysisError for an empty path, a path that exists and is not a folder
    (a file, a FIFO, /dev/null), a symlink loop, or a run folder or a folder inside one (never
    written to)."""
    if out is None or not str(out).strip():
        raise AnalysisError(f"--out {str(out or '')!r}: an empty path, expected a folder (for the "
                            "current folder, say --out .)")
    path = Path(out)
    run = next((p for p in Path(os.path.abspath(path)).parents if is_run_folder(p)), None)
    if run is not None:
        raise AnalysisError(f"--out {path}: inside the run folder {run}; the analysis never writes into one "
                            "(give another folder)")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise AnalysisError(f"--out {path}: a broken symbolic link, expected a folder") from None
        return path
    except OSError as e:   # a symlink loop, a path through a file, no permission
        raise AnalysisError(f"--out {path}: {e.strerror or type(e).__name__}") from None
    if not stat.S_ISDIR(st.st_mode):
        kind = "a file" if stat.S_ISREG(st.st_mode) else "not a file or folder (a FIFO or device)"
        raise AnalysisError(f"--out {path}: {kind}, expected a folder")
    if is_run_folder(path):
        raise AnalysisError(f"--out {path}: a run folder; the analysis never writes into one "
                            "(give another folder)")
    return path


class Output:
    def __init__(self, out: Path):
        self.out = Path(out)
        self.manifest = self._read_manifest()

    def _read_manifest(self) -> dict:
        try:
            m = json.loads(read_bytes(self.out / MANIFEST, limit=1 << 20))
        except (FileNotFoundError, ValueError, UnicodeDecodeError):
            return {}
        return m if isinstance(m, dict) else {}

    def owns_runs(self) -> bool:
        return bool(self.manifest.get(RUNS))

    def check_keep_runs(self, run_dirs) -> None:
        """AnalysisError where --keep-runs would replace a runs/ folder this command did not write,
        or the runs analysed are themselves under out/runs."""
        runs = self.out / RUNS
        if os.path.lexists(runs) and not self.owns_runs():
            raise AnalysisError(f"--keep-runs: {runs} exists and was not written by --keep-runs; "
                                "move it away or choose another --out")
        target = runs.resolve()
        for d in run_dirs:
            if Path(d).resolve().is_relative_to(target):
                raise AnalysisError(f"--keep-runs: {d} is already under {runs} (analyse the kept "
                                    "runs without --keep-runs)")

    @contextlib.contextmanager
    def staged(self, remove_stale: bool = True) -> Iterator[Path]:
        created = not self.out.exists()
        self.out.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(dir=self.out, prefix=".rnn-analyze-"))
        try:
            yield stage
            self._commit(stage, remove_stale)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            if created:
                with contextlib.suppress(OSError):
                    self.out.rmdir()   # only if still empty
            raise
        shutil.rmtree(stage, ignore_errors=True)

    def _commit(self, stage: Path, remove_stale: bool) -> None:
        files = sorted(p.name for p in stage.iterdir() if p.is_file())
        for name in files:
            os.replace(stage / name, self.out / name)
        kept_runs = (stage / RUNS).is_dir()
        if kept_runs:
            old = self.out / RUNS
            if os.path.lexists(old):
                os.replace(old, stage / "old-runs")   # removed with the stage
            os.replace(stage / RUNS, old)
        if remove_stale:
            stale = set(self.manifest.get("files", [])) | ({"rerun.sh"} if not self.manifest else set())
            stale -= set(files)   # rerun.sh: written by analyses before the manifest
            for name in sorted(stale):
                path = self.out / name
                if name and "/" not in name and path.is_file() and not path.is_symlink():
                    path.unlink()
        written = files if remove_stale else sorted(set(files) | set(self.manifest.get("files", [])))
        write_text(self.out / MANIFEST, json.dumps(
            {"files": written, RUNS: kept_runs or self.owns_runs()}, indent=1) + "\n")


def keep_runs(run_dirs, stage: Path, echo) -> int:
    """Copy KEPT_FILES of each run folder into stage/runs/<path relative to the runs' common
    parent>; files that are missing are skipped, files that are not regular (a FIFO, a device)
    are skipped with a line. Returns the number of run folders copied."""
    dirs = [Path(d) for d in run_dirs]
    if not dirs:
        return 0
    base = Path(os.path.commonpath([str(d.parent.resolve()) for d in dirs]))
    for d in dirs:
        rel = d.resolve().relative_to(base)
        for name in KEPT_FILES:
            try:
                data = read_bytes(d / name)
            except FileNotFoundError:
                continue
            except ValueError as e:   # ReadError
                echo(f"--keep-runs: {e}: not copied")
                continue
            target = stage / RUNS / rel / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    return len(dirs)
