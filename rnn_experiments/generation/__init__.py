"""Text generation: choosing characters (sampling.py), continuing prompts (decode.py) and
sampling during training (hooks.py, passed to the training loop by the train command)."""
from rnn_experiments.generation.decode import generate, load_generator
from rnn_experiments.generation.hooks import SampleHook, hooks_from_config
from rnn_experiments.generation.sampling import next_token, probabilities

__all__ = ["generate", "load_generator", "next_token", "probabilities", "SampleHook", "hooks_from_config"]
