"""The study: train with the usual step (Adam, NLL, gradient clipping) and, at the steps listed in
`gradients.steps` (0 = at initialisation), measure the per-timestep gradient norms on a fixed
batch (the first `gradients.batch_size` examples of the held-out set, the same for every seed and
step). Writes `gradients.csv` into the run folder, a row per (step, t):

    step, t, distance (= T - t), grad_norm, input_grad_norm, loss, model, seed

Training runs for max(gradients.steps) steps; `train.steps` is not used. The config is the main
one (conf/config.yaml) plus a `gradients:` section: conf/gradients.yaml, with this schema.
"""
from __future__ import annotations

import csv
import logging
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from hydra.core.config_store import ConfigStore

from rnn_experiments.config import Config, _check, validate
from rnn_experiments.data import build_dataset
from rnn_experiments.gradients.measure import grad_norms_per_step
from rnn_experiments.models import MODELS, RecurrentClassifier, build_model
from rnn_experiments.training.loop import nll_and_accuracy, resolve_device, seed_everything

log = logging.getLogger(__name__)

COLUMNS = ["step", "t", "distance", "grad_norm", "input_grad_norm", "loss", "model", "seed"]


@dataclass
class GradientsConfig:
    steps: list[int] = field(default_factory=lambda: [0, 100, 500])  # 0: at initialisation
    batch_size: int = 256        # examples of the held-out set to measure on


@dataclass
class GradientsStudyConfig(Config):
    gradients: GradientsConfig = field(default_factory=GradientsConfig)


@contextmanager
def study_schema():
    """Within: the main config tree's `base_config` schema has the `gradients:` section too."""
    cs = ConfigStore.instance()
    cs.store(name="base_config", node=GradientsStudyConfig)
    try:
        yield
    finally:
        cs.store(name="base_config", node=Config)


def validate_study(cfg) -> None:
    validate(cfg)
    g, name = cfg.gradients, cfg.model.name
    cls = MODELS[name]
    _check(issubclass(cls, RecurrentClassifier) and cls.readout_state is RecurrentClassifier.readout_state,
           "model.name", name, "a one-directional classifier (it reads h_T), e.g. rnn, gru, lstm, peep_lstm")
    _check(len(g.steps) > 0 and min(g.steps) >= 0, "gradients.steps", list(g.steps),
           "a non-empty list of training steps >= 0")
    _check(1 <= g.batch_size <= cfg.train.eval_size, "gradients.batch_size", g.batch_size,
           f"an integer from 1 to train.eval_size ({cfg.train.eval_size})")


def run_study(cfg, out_dir) -> list[dict]:
    """Measure, train, measure, ...; return the rows also written to out_dir/gradients.csv."""
    validate_study(cfg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    data = build_dataset(cfg, device)
    model = build_model(cfg.model, data.vocab_size, data.num_classes).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    x, y = data.eval_x[: cfg.gradients.batch_size], data.eval_y[: cfg.gradients.batch_size]
    T = x.shape[1]
    measure_at = sorted(set(cfg.gradients.steps))
    rows = []
    with open(out_dir / "gradients.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for step in range(measure_at[-1] + 1):
            if step in measure_at:
                m = grad_norms_per_step(model, x, y)
                new = [{"step": step, "t": t + 1, "distance": T - (t + 1),
                        "grad_norm": m["grad_norm"][t].item(),
                        "input_grad_norm": m["input_grad_norm"][t].item(),
                        "loss": round(m["loss"], 6), "model": cfg.model.name, "seed": cfg.seed}
                       for t in range(T)]
                writer.writerows(new)
                f.flush()
                rows += new
                log.info("step %d | loss %.4f | ||dL/dh|| at T-t = 0: %.3g, %d: %.3g", step, m["loss"],
                         new[-1]["grad_norm"], T - 1, new[0]["grad_norm"])
            if step == measure_at[-1]:
                break
            xb, yb = data.sample(cfg.train.batch_size)
            loss, _ = nll_and_accuracy(model(xb), yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.max_norm)
            optimizer.step()
    return rows
