"""Continue prompts with a trained character model: `python -m rnn_experiments.generate ...`
(or `rnn-generate`).

    python -m rnn_experiments.generate checkpoint=outputs/.../checkpoint.pt prompt="Once upon" length=200 temperature=0.5
    python -m rnn_experiments.generate checkpoint=PATH 'prompt="Sleeping beauty is "' strategy=greedy
    python -m rnn_experiments.generate checkpoint=PATH 'prompt=[t,a,u,v,g]' length=30 strategy=greedy

Config: conf/generate.yaml. Prints one continuation per prompt (and sample); writes nothing.
The decoding itself is rnn_experiments/generation/decode.py.
"""
from __future__ import annotations

import sys

import hydra
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, ListConfig, OmegaConf

from rnn_experiments.config import conf_dir
from rnn_experiments.generation.decode import generate, load_generator
from rnn_experiments.training.checkpoint import CheckpointError
from rnn_experiments.training.setup import resolve_device


def run(cfg) -> list[str]:
    """The texts `cfg` asks for (ValueError / CheckpointError / ConfigError on bad settings)."""
    if OmegaConf.is_missing(cfg, "checkpoint"):
        raise ValueError("checkpoint is missing: expected checkpoint=PATH (a run's checkpoint.pt)")
    prompts = list(cfg.prompt) if isinstance(cfg.prompt, (list, ListConfig)) else [cfg.prompt]
    prompts = [str(p) for p in prompts]
    if cfg.num_samples < 1:
        raise ValueError(f"num_samples={cfg.num_samples!r} is invalid: expected an integer >= 1")
    model, vocab, _ = load_generator(to_absolute_path(cfg.checkpoint), resolve_device(cfg.device))
    return generate(model, vocab, prompts * cfg.num_samples, cfg.length, cfg.strategy,
                    cfg.temperature, cfg.top_k, cfg.seed)


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="generate")
def main(cfg: DictConfig) -> None:
    try:
        texts = run(cfg)
    except (ValueError, CheckpointError) as e:  # ConfigError is a ValueError
        print(f"rnn-generate: error: {e}", file=sys.stderr)
        sys.exit(2)
    for text in texts:
        print(text)
        if len(texts) > 1:
            print("---")


if __name__ == "__main__":
    main()
