"""The one Hydra entry point: `python -m rnn_experiments.train [overrides]` (or `rnn-train`).

    python -m rnn_experiments.train model=peep_lstm dataset.seq_length=20 seed=1
    python -m rnn_experiments.train -m +experiment=palindrome_compare
    python -m rnn_experiments.train --cfg job          # print the composed config
    python -m rnn_experiments.train hparams_search=palindrome_optuna   # an Optuna search (extra [optuna])

It runs the task-agnostic loop (rnn_experiments/training/loop.py) in Hydra's output folder with
the hooks the config asks for (text samples: rnn_experiments/generation/hooks.py), the trackers
(`logger=tensorboard`: rnn_experiments/loggers/) and, in a trial of an Optuna search, the sink
that reports to the trial and stops it when pruned (rnn_experiments/sweeps/search/trial.py). Exit
status: 0 completed (or pruned: a normal end), 2 refused input (one line naming the key or file;
nothing on disk changed), 1 the run failed or diverged, or jobs of a sweep did not complete,
3 every job of a sweep completed but its analysis failed (said last; `rnn-analyze SWEEP` redoes
it), 130 interrupted (rnn_experiments/cli/job.py).
"""
from __future__ import annotations

from rnn_experiments.cli.startup import require_cwd

require_cwd("rnn-train")   # before torch is imported (cli/startup.py)

import copy
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from rnn_experiments.config import conf_dir
from rnn_experiments.errors import ConfigError
from rnn_experiments.generation.hooks import hooks_from_config
from rnn_experiments.loggers import loggers_from_config
from rnn_experiments.parts import name_by_choice
from rnn_experiments.run.provenance import remember_command
from rnn_experiments.extras import check_command_line
from rnn_experiments.cli.plugins import register_launchers, register_sweeper
from rnn_experiments.cli.job import RunFailed, end_job, run_app, save_hydra_files
from rnn_experiments.sweeps.launch import job_threads
from rnn_experiments.sweeps.search.trial import objective, trial_sinks
from rnn_experiments.training.loop import run_to_end, start


def _run(cfg: DictConfig, packed: bool = False):
    """The job's run, as the generator training.loop.start makes (packed: for a pack)."""
    out_dir = HydraConfig.get().runtime.output_dir
    name_by_choice(cfg)                    # a part's name, where its node has none: its config choice
    as_given = copy.deepcopy(cfg)          # what .hydra/config.yaml records
    cfg.train.threads = job_threads(cfg)   # parallel sweep jobs share the cores (launch.py)
    return start(cfg, out_dir, hooks=hooks_from_config(cfg), sinks=loggers_from_config(cfg) + trial_sinks(cfg),
                 on_accept=lambda: save_hydra_files(as_given, out_dir), packed=packed)


def _result(summary: dict, out_dir: str) -> float | None:
    """The job's return value: what Hydra's sweepers optimise (hparams_search=palindrome_optuna:
    direction maximize), final_eval_accuracy; None (no held-out evaluation yet, or a trial the
    pruner stopped) is a failed or pruned trial, as its summary.json says. RunFailed: diverged."""
    if summary["status"] == "diverged":
        raise RunFailed(f"{out_dir}: the loss is not finite at step "
                        f"{summary['diverged_at_step']} (status diverged; the last good checkpoint is kept)")
    return objective(summary) if summary["status"] == "completed" else None


def _task(cfg: DictConfig) -> float | None:
    out_dir = HydraConfig.get().runtime.output_dir
    return end_job("rnn-train", lambda: _result(run_to_end(_run(cfg)), out_dir))


def _pack(cfg: DictConfig):
    """The task's packed form (hydra/launcher=packed; rnn_experiments/sweeps/pack.py): the job's
    run for a pack, and how the job ends given its outcome."""
    out_dir = HydraConfig.get().runtime.output_dir
    try:
        run = _run(cfg, packed=True)
    except Exception as e:        # refused before the run exists (a hook's or tracker's config)
        run = _raising(e)
    return run, lambda outcome: end_job("rnn-train", lambda: _result(outcome(), out_dir))


def _raising(error: Exception):
    raise error
    yield


_task.pack = _pack
_main = hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="config")(_task)


def main() -> None:
    remember_command()   # summary.json's command line, also in sweep jobs run by other processes
    try:
        check_command_line(sys.argv[1:])   # an optional extra it needs and lacks: one line
    except ConfigError as e:
        print(f"rnn-train: error: {e}", file=sys.stderr)
        sys.exit(2)
    register_sweeper()                     # hydra/sweeper=optuna, also from an editable install
    register_launchers()                   # hydra/launcher=packed and slurm, likewise
    run_app("rnn-train", _main, "config")


if __name__ == "__main__":
    main()
