"""`python -m rnn_experiments.measure_gradients [overrides]` (or `rnn-measure-gradients`): the
gradient-flow study, a Hydra app (rnn_experiments/gradients/).

    python -m rnn_experiments.measure_gradients -m model=rnn,lstm,peep_lstm seed=0,1,2
    python -m rnn_experiments.measure_gradients model=rnn 'gradients.steps=[0,50]' dataset.seq_length=5
    python -m rnn_experiments.plot_gradients multirun/<date>/<time>_gradients --out gradients.png

Config: conf/gradients.yaml (the main config tree plus a `gradients:` section, typed by
GradientsStudyConfig in rnn_experiments/config.py).
"""
from __future__ import annotations

from rnn_experiments.cli.startup import require_cwd

require_cwd("rnn-measure-gradients")   # before torch is imported (cli/startup.py)

import copy

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from rnn_experiments.config import conf_dir
from rnn_experiments.gradients.study import run_study
from rnn_experiments.parts import name_by_choice
from rnn_experiments.cli.job import end_job, run_app, save_hydra_files
from rnn_experiments.cli.plugins import register_launchers

PROG = "rnn-measure-gradients"


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="gradients")
def _main(cfg: DictConfig) -> None:
    out_dir = HydraConfig.get().runtime.output_dir
    name_by_choice(cfg)                    # a part's name, where its node has none: its config choice
    as_given = copy.deepcopy(cfg)          # what .hydra/config.yaml records
    end_job(PROG, lambda: run_study(cfg, out_dir, on_accept=lambda: save_hydra_files(as_given, out_dir)))


def main() -> None:
    register_launchers()   # hydra/launcher=slurm (and packed) also from an editable install
    run_app(PROG, _main, "gradients")


if __name__ == "__main__":
    main()
