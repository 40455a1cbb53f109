"""`python -m rnn_experiments.gradients [overrides]`: the gradient-flow study (Hydra app).

    python -m rnn_experiments.gradients -m model=rnn,lstm,peep_lstm seed=0,1,2
    python -m rnn_experiments.gradients model=rnn 'gradients.steps=[0,50]' dataset.seq_length=5
    python -m rnn_experiments.gradients.plot multirun/<date>/<time>_gradients --out gradients.png

Config: conf/gradients.yaml (the main config tree plus a `gradients:` section).
"""
from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from rnn_experiments.config import ConfigError
from rnn_experiments.gradients.study import run_study, study_schema
from rnn_experiments.train import CONF_DIR


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="gradients")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig
    try:
        run_study(cfg, HydraConfig.get().runtime.output_dir)
    except ConfigError as e:
        print(f"rnn-gradients: error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    with study_schema():  # the main schema plus the `gradients:` section
        main()
