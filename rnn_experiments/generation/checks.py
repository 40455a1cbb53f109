"""The up-front check of an `rnn-generate` config (conf/generate.yaml, typed by
config.GenerateConfig), before any checkpoint is read."""
from __future__ import annotations

import math

from omegaconf import ListConfig, OmegaConf

from rnn_experiments.config import (MAX_GENERATE_LENGTH, MAX_SAMPLES, SEED_LIMIT, SEEDS, GenerateConfig,
                                    check_known)
from rnn_experiments.errors import ConfigError, check
from rnn_experiments.generation.sampling import check_sampling


def validate_generate(cfg) -> None:
    """Check an `rnn-generate` config (types are the schema's) before any checkpoint is read."""
    check_known(cfg, GenerateConfig)
    if OmegaConf.is_missing(cfg, "checkpoint"):
        raise ConfigError("checkpoint is missing: expected checkpoint=PATH (a run folder or its checkpoint.pt)")
    check(cfg.checkpoint != "", "checkpoint", cfg.checkpoint, "a run folder or a checkpoint file")
    prompts = list(cfg.prompt) if isinstance(cfg.prompt, (list, ListConfig)) else [cfg.prompt]
    check(len(prompts) > 0 and all(isinstance(p, (str, int, float)) and not isinstance(p, bool)
                                   and str(p) != "" for p in prompts),
          "prompt", cfg.prompt, "a non-empty string or a non-empty list of non-empty strings")
    check(0 <= cfg.length <= MAX_GENERATE_LENGTH, "length", cfg.length,
          f"an integer from 0 to {MAX_GENERATE_LENGTH:,}")
    check(1 <= cfg.num_samples <= MAX_SAMPLES, "num_samples", cfg.num_samples,
          f"an integer from 1 to {MAX_SAMPLES:,}")
    check(math.isfinite(cfg.temperature), "temperature", cfg.temperature, "a finite number")
    check_sampling(cfg.strategy, cfg.temperature, cfg.top_k)
    check(0 <= cfg.seed < SEED_LIMIT, "seed", cfg.seed, SEEDS)
    check(cfg.device in ("auto", "cpu", "cuda"), "device", cfg.device, "auto, cpu or cuda")
