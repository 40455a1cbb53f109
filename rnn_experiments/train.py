"""The one Hydra entry point: `python -m rnn_experiments.train [overrides]` (or `rnn-train`).

    python -m rnn_experiments.train model=peep_lstm dataset.seq_length=20 seed=1
    python -m rnn_experiments.train -m +experiment=palindrome_compare
    python -m rnn_experiments.train --cfg job          # print the composed config
"""
from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

import rnn_experiments.config  # noqa: F401  (registers the structured configs)
from rnn_experiments.config import ConfigError
from rnn_experiments.launch import job_threads, requeue_if_preempted
from rnn_experiments.training.checkpoint import CheckpointError
from rnn_experiments.training.loop import _hydra_output_dir, train

CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> float | None:
    cfg.train.threads = job_threads(cfg)   # parallel sweep jobs share the cores (launch.py)
    try:
        summary = train(cfg)
    except (ConfigError, CheckpointError) as e:
        print(f"rnn-train: error: {e}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as e:
        requeue_if_preempted(_hydra_output_dir())   # under submitit: requeue, resume later
        print(f"rnn-train: interrupted: {e}", file=sys.stderr)
        sys.exit(130)
    # the return value is what Hydra's sweepers (e.g. Optuna) optimise
    return summary.get("final_eval_accuracy")


if __name__ == "__main__":
    main()
