"""How a Hydra command (train, measure_gradients, generate) starts, and how each of its jobs ends.

`run_app(prog, hydra_main, config_name)` is the command: `preflight` (one line and exit status 2
for a composition error, a bad value, an unwritable output folder) before Hydra starts; exit 2
when a sweep is refused before its first job (sweeps/guard.py); after a sweep whose jobs did
not all complete, one line naming them and exit 1 (the analysis callback has run by then); after
a sweep whose jobs completed but whose own analysis failed, one line saying so, last, and exit 3.

`end_job(prog, work)` runs one job inside Hydra's task function and ends it:

    what work() raised                 a single run                 a job of a sweep (-m)
    ConfigError, CheckpointError,      one line, exit 2             one line; the job returns:
      RunLocked (the input)                                           its summary.json says why,
    RunFailed (diverged), OSError      one line, exit 1               the other jobs go on, the
    any other exception (a bug)        Hydra's traceback, exit 1      sweep exits 1 at the end
                                                                      (traceback in the job's log)
    an interruption (Interrupted)      one line, exit 130           in the sweep's own process
                                                                      (basic launcher): exit 130,
                                                                      the sweep stops; in a worker
                                                                      (joblib, submitit): as above

A job never raises out of a sweep, because Hydra's basic sweeper stops the whole sweep (and skips
the analysis callback) at a job that raises, and a sys.exit in a joblib worker kills the worker
together with the jobs running beside it. A job queued in a joblib worker whose sweep process is
gone is not started (nobody would wait for it). A SLURM job does start: SLURM runs it whether or not the
sweep's process lives.

`save_hydra_files(cfg, out_dir)` writes `.hydra/` (config.yaml, hydra.yaml, overrides.yaml) once a
run is accepted: conf/config.yaml sets `hydra.output_subdir: null`, so Hydra itself writes
nothing there before the run has checked its folder (a refused command never overwrites the
config of the run that folder holds). Secrets are redacted there (rnn_experiments/run/redact.py).
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any, Callable

from omegaconf import OmegaConf

from rnn_experiments.errors import ConfigError
from rnn_experiments.run.folder import write_text
from rnn_experiments.run.redact import redacted_record
from rnn_experiments.sweeps.launch import in_slurm_job, requeue_if_preempted
from rnn_experiments.cli.help import help_text
from rnn_experiments.cli.startup import startup_over
from rnn_experiments.cli.preflight import dry_run, preflight
from rnn_experiments.sweeps.analyze import analysis_failed, forget_analysis
from rnn_experiments.sweeps.guard import Refused, failures, forget, sweep_gone
from rnn_experiments.run.checkpoint import CheckpointError
from rnn_experiments.run.lock import RunLocked
from rnn_experiments.training.signals import Interrupted

log = logging.getLogger(__name__)

INPUT_ERRORS = (ConfigError, CheckpointError, RunLocked)
ANALYSIS_FAILED = 3   # every job completed, the sweep's own analysis did not (rnn-analyze SWEEP reruns it)


class RunFailed(Exception):
    """The run ended without completing (it diverged); the message is one line."""


def run_app(prog: str, hydra_main: Callable[[], Any], config_name: str, argv=None, **checks) -> None:
    """The whole command: preflight, Hydra, the sweep's exit status (see the module doc);
    `checks` go to `preflight` (check_run, needs, writes)."""
    startup_over()                    # Ctrl-C: KeyboardInterrupt again, handled below and in each job
    logging.raiseExceptions = False   # a log line that cannot be written (disk full) is dropped quietly
    argv = sys.argv[1:] if argv is None else list(argv)
    if "--help" in argv or "-h" in argv:
        config_dir = argv[argv.index("--config-dir") + 1] if "--config-dir" in argv[:-1] else None
        print(help_text(prog, config_dir), end="")
        sys.exit(0)
    try:
        if "--jobs" in argv:   # a dry run: the jobs, checked; nothing launched
            argv.remove("--jobs")
            print(dry_run(argv, config_name, **{k: v for k, v in checks.items() if k != "writes"}), end="")
            sys.exit(0)
        preflight(argv, config_name, **checks)
        forget()   # the failures reported below are this command's sweep's
        forget_analysis()
        hydra_main()
    except (ConfigError, Refused) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:   # Ctrl-C where no job handles it (rnn-generate, Hydra's own startup)
        print(f"{prog}: interrupted", file=sys.stderr)
        sys.exit(130)
    failed, analysis = failures(), analysis_failed()
    if failed:
        print(f"{prog}: error: {len(failed)} job(s) of the sweep did not complete: {'; '.join(failed)}",
              file=sys.stderr)
    if analysis:                 # said last: what the reader must do next
        print(f"{prog}: error: {analysis}", file=sys.stderr)
    if failed or analysis:
        sys.exit(1 if failed else ANALYSIS_FAILED)


def _where():
    """(in a sweep, in the sweep's own process)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return False, True
    hc = HydraConfig.get()
    target = str(hc.launcher.get("_target_", ""))
    return True, target.endswith("BasicLauncher") or (target.endswith("PackedLauncher")
                                                      and hc.launcher.get("n_jobs", 1) == 1)


def end_job(prog: str, work: Callable[[], Any]) -> Any:
    """work()'s return value, or the job's end as the module doc's table says (None in a sweep)."""
    in_sweep, in_process = _where()

    def fail(message: str, status: int) -> None:
        print(f"{prog}: error: {message}", file=sys.stderr)
        if not in_sweep:
            sys.exit(status)

    if in_sweep and not in_process and not in_slurm_job() and sweep_gone():
        print(f"{prog}: error: the sweep's process is gone (killed?): this job is not started",
              file=sys.stderr)
        return None
    try:
        return work()
    except KeyboardInterrupt as e:
        if isinstance(e, Interrupted):
            requeue_if_preempted(e.signal)   # under submitit: requeue, resume later
        if in_process:
            print(f"{prog}: interrupted: {e}", file=sys.stderr)
            sys.exit(130)
        fail(f"interrupted: {e}", 130)
    except INPUT_ERRORS as e:
        fail(str(e), 2)
    except (RunFailed, OSError) as e:
        fail(str(e), 1)
    except Exception as e:
        if not in_sweep:
            raise
        log.exception("the job failed")
        fail(f"{type(e).__name__}: {e} (traceback in the job's log)", 1)
    return None


def save_hydra_files(cfg, out_dir) -> None:
    """.hydra/config.yaml, hydra.yaml and overrides.yaml of the running Hydra job, as Hydra
    writes them, each atomically, secrets redacted (run/redact.py: a secret key's value, a
    secret override's value; interpolations such as ${oc.env:TOKEN} stay as written)."""
    from hydra.core.hydra_config import HydraConfig
    hydra_cfg = HydraConfig.instance().cfg
    folder = Path(out_dir) / ".hydra"
    folder.mkdir(parents=True, exist_ok=True)
    for name, node in (("config.yaml", cfg), ("hydra.yaml", hydra_cfg),
                       ("overrides.yaml", hydra_cfg.hydra.overrides.task)):
        write_text(folder / name, OmegaConf.to_yaml(redacted_record(node)))
