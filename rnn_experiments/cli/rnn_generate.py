"""Continue prompts with a trained character model: `python -m rnn_experiments.generate ...`
(or `rnn-generate`).

    python -m rnn_experiments.generate checkpoint=outputs/.../checkpoint.pt prompt="Once upon" length=200 temperature=0.5
    python -m rnn_experiments.generate checkpoint=PATH 'prompt="Sleeping beauty is "' strategy=greedy
    python -m rnn_experiments.generate checkpoint=PATH 'prompt=[t,a,u,v,g]' length=30 strategy=greedy

Config: conf/generate.yaml, typed by GenerateConfig and checked by generation/checks.py:validate_generate
(rnn_experiments/config.py). Prints one continuation per prompt (and sample); writes nothing.
The decoding itself is rnn_experiments/generation/decode.py.
"""
from __future__ import annotations

from rnn_experiments.cli.startup import require_cwd

require_cwd("rnn-generate")   # before torch is imported (cli/startup.py)

import sys

import hydra
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, ListConfig

from rnn_experiments.config import conf_dir
from rnn_experiments.generation.checks import validate_generate
from rnn_experiments.generation.decode import generate, load_generator
from rnn_experiments.training.resources import generation_bytes
from rnn_experiments.cli.job import run_app
from rnn_experiments.run.checkpoint import CheckpointError
from rnn_experiments.training.setup import resolve_device


def prompts_of(cfg) -> list[str]:
    """The prompts of a (validated) config, as strings."""
    return [str(p) for p in (list(cfg.prompt) if isinstance(cfg.prompt, (list, ListConfig)) else [cfg.prompt])]


def needs(cfg) -> tuple[int, str]:
    """The memory the continuations need (sweeps/checks.py), and the settings that make it."""
    return (generation_bytes(cfg, prompts_of(cfg)),
            f"num_samples={cfg.num_samples}, length={cfg.length}, {len(prompts_of(cfg))} prompt(s)")


def run(cfg) -> list[str]:
    """The texts `cfg` asks for (ConfigError / CheckpointError / ValueError on bad settings)."""
    validate_generate(cfg)
    prompts = prompts_of(cfg)
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
    line and exit status 2 before Hydra starts (rnn_experiments/cli/preflight.py)."""
    run_app("rnn-generate", _main, "generate", check_run=validate_generate, needs=needs, writes=False, dry=None)


if __name__ == "__main__":
    main()
