"""Continue prompts with a trained character model: `python -m rnn_experiments.generate ...`
(or `rnn-generate`).

    python -m rnn_experiments.generate checkpoint=outputs/.../checkpoint.pt prompt="Once upon" length=200 temperature=0.5
    python -m rnn_experiments.generate checkpoint=PATH 'prompt="Sleeping beauty is "' strategy=greedy
    python -m rnn_experiments.generate checkpoint=PATH 'prompt=[t,a,u,v,g]' length=30 strategy=greedy

Config: conf/generate.yaml. Prints one continuation per prompt (and sample); writes nothing.
The decoding itself is rnn_experiments/generation/decode.py.
"""
from __future__ import annotations

import math
import sys

import hydra
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, ListConfig, OmegaConf

from rnn_experiments.config import SEED_LIMIT, SEEDS, conf_dir
from rnn_experiments.errors import ConfigError, check
from rnn_experiments.generation.decode import generate, load_generator
from rnn_experiments.job import run_app
from rnn_experiments.training.checkpoint import CheckpointError
from rnn_experiments.training.setup import resolve_device


MAX_LENGTH = 1_000_000   # characters per continuation: the output tensor is (prompts, length)


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def check_request(cfg) -> None:
    """ConfigError (one line naming the key) for a setting no generation can use. conf/generate.yaml
    has no schema, so `length=abc` arrives as a string: every type is checked here."""
    check(_is_int(cfg.length) and 0 <= cfg.length <= MAX_LENGTH, "length", cfg.length,
          f"an integer from 0 to {MAX_LENGTH:,}")
    check(_is_int(cfg.num_samples) and 1 <= cfg.num_samples <= 10_000, "num_samples", cfg.num_samples,
          "an integer from 1 to 10,000")
    check(_is_int(cfg.top_k) and cfg.top_k >= 0, "top_k", cfg.top_k, "an integer >= 0 (0: all characters)")
    check(_is_int(cfg.seed) and 0 <= cfg.seed < SEED_LIMIT, "seed", cfg.seed, SEEDS)
    check(isinstance(cfg.temperature, (int, float)) and not isinstance(cfg.temperature, bool)
          and math.isfinite(cfg.temperature), "temperature", cfg.temperature, "a finite number")


def check_command(cfg) -> None:
    """ConfigError for a command line that cannot generate, before any checkpoint is read."""
    if OmegaConf.is_missing(cfg, "checkpoint"):
        raise ConfigError("checkpoint is missing: expected checkpoint=PATH (a run folder or its checkpoint.pt)")
    check_request(cfg)


def run(cfg) -> list[str]:
    """The texts `cfg` asks for (ValueError / CheckpointError / ConfigError on bad settings)."""
    check_command(cfg)
    prompts = list(cfg.prompt) if isinstance(cfg.prompt, (list, ListConfig)) else [cfg.prompt]
    prompts = [str(p) for p in prompts]
    model, vocab, _ = load_generator(to_absolute_path(cfg.checkpoint), resolve_device(cfg.device))
    return generate(model, vocab, prompts * cfg.num_samples, cfg.length, cfg.strategy,
                    cfg.temperature, cfg.top_k, cfg.seed)


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="generate")
def _main(cfg: DictConfig) -> None:
    try:
        texts = run(cfg)
    except (ValueError, CheckpointError) as e:  # ConfigError is a ValueError
        print(f"rnn-generate: error: {e}", file=sys.stderr)
        sys.exit(2)
    for text in texts:
        print(text)
        if len(texts) > 1:
            print("---")


def main() -> None:
    """The command: a bad command line (an unknown key, a missing checkpoint=, a bad value) is one
    line and exit status 2 before Hydra starts (rnn_experiments/preflight.py)."""
    run_app("rnn-generate", _main, "generate", check_run=check_command, writes=False)


if __name__ == "__main__":
    main()
