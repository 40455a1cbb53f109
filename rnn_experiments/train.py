"""The one Hydra entry point: `python -m rnn_experiments.train [overrides]` (or `rnn-train`).

    python -m rnn_experiments.train model=peep_lstm dataset.seq_length=20 seed=1
    python -m rnn_experiments.train -m +experiment=palindrome_compare
    python -m rnn_experiments.train --cfg job          # print the composed config
    python -m rnn_experiments.train hparams_search=palindrome_optuna   # an Optuna search (extra [optuna])

It runs the task-agnostic loop (rnn_experiments/training/loop.py) with the hooks the config asks
for (text samples: rnn_experiments/generation/hooks.py) and the trackers (`logger=tensorboard`:
rnn_experiments/loggers/) in Hydra's output folder.
"""
from __future__ import annotations

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from rnn_experiments.config import conf_dir
from rnn_experiments.errors import ConfigError
from rnn_experiments.extras import check_command_line
from rnn_experiments.generation.hooks import hooks_from_config
from rnn_experiments.launch import job_threads, requeue_if_preempted
from rnn_experiments.loggers import loggers_from_config
from rnn_experiments.provenance import remember_command
from rnn_experiments.training.checkpoint import CheckpointError
from rnn_experiments.training.loop import train
from rnn_experiments.training.stop import Interrupted


def main() -> None:
    remember_command()   # summary.json's command line, also in sweep jobs run by other processes
    try:
        check_command_line(sys.argv[1:])   # an optional extra it needs and lacks: one line
    except ConfigError as e:
        print(f"rnn-train: error: {e}", file=sys.stderr)
        sys.exit(2)
    _main()


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="config")
def _main(cfg: DictConfig) -> float | None:
    cfg.train.threads = job_threads(cfg)   # parallel sweep jobs share the cores (launch.py)
    try:
        summary = train(cfg, HydraConfig.get().runtime.output_dir, hooks=hooks_from_config(cfg),
                        sinks=loggers_from_config(cfg))
    except (ConfigError, CheckpointError) as e:
        print(f"rnn-train: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as e:
        if isinstance(e, Interrupted):
            requeue_if_preempted(e.signal)   # under submitit: requeue, resume later
        print(f"rnn-train: interrupted: {e}", file=sys.stderr)
        sys.exit(130)
    # the return value is what Hydra's sweepers optimise (hparams_search=palindrome_optuna:
    # direction maximize); None (no held-out evaluation yet) is a failed trial for Optuna
    return summary.get("final_eval_accuracy")


if __name__ == "__main__":
    main()
