"""Continue prompts with a trained TextGenerator, several prompts at once as one batch.

Each prompt is fed one character per step through `model.step`, carrying the LSTM state (h, c),
then the model's own choices are fed back: a prompt of P characters continued by N costs P + N
single-step calls, O(P + N), with no re-run of the prefix. Rows with shorter prompts start
generating earlier; every row gets exactly `length` new characters.
"""
from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import OmegaConf

from rnn_experiments.data.text import Vocab
from rnn_experiments.generation.sampling import check_sampling, next_token
from rnn_experiments.models import build_model
from rnn_experiments.parts import upgrade
from rnn_experiments.run import checkpoint


@torch.no_grad()
def generate(model, vocab: Vocab, prompts: list[str], length: int, strategy: str = "sample",
             temperature: float = 1.0, top_k: int = 0, seed: int = 0) -> list[str]:
    """Return each prompt followed by `length` generated characters."""
    check_sampling(strategy, temperature, top_k)
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one character (the model must start somewhere)")
    if length < 0:
        raise ValueError(f"length={length!r} is invalid: expected an integer >= 0")
    encoded = [vocab.encode(p) for p in prompts]                          # ValueError on unknown chars
    was_training = model.training
    model.eval()  # no dropout while generating
    device = next(model.parameters()).device
    B, P_max = len(prompts), max(len(p) for p in prompts)
    lengths = torch.tensor([len(p) for p in prompts], device=device)      # (B,)
    prompt_ids = torch.zeros(B, P_max, dtype=torch.long, device=device)   # (B, P_max), right-padded
    for b, ids in enumerate(encoded):
        prompt_ids[b, : len(ids)] = ids
    gen = torch.Generator(device=device).manual_seed(seed)
    out = torch.zeros(B, P_max + length, dtype=torch.long, device=device)  # chosen chars after step t
    x_t, state = prompt_ids[:, 0], None
    for t in range(P_max - 1 + length):
        logits, state = model.step(x_t, state)                            # (B, V)
        chosen = next_token(logits, strategy, temperature, top_k, gen)    # (B,)
        in_prompt = t + 1 < lengths                                       # (B,) still reading the prompt
        x_t = torch.where(in_prompt, prompt_ids[:, min(t + 1, P_max - 1)], chosen)
        out[:, t] = chosen
    model.train(was_training)
    # row b's continuation: the choices made at steps len_b - 1 .. len_b - 2 + length
    return [p + vocab.decode(out[b, len(p) - 1: len(p) - 1 + length]) for b, p in enumerate(prompts)]


def load_generator(path: str | Path, device: str | torch.device = "cpu"):
    """A checkpoint file (checkpoint.pt or checkpoint_best.pt), or a run folder: its
    checkpoint_best.pt (lowest held-out loss) if it has one, else its checkpoint.pt
    -> (model in eval mode, Vocab, config)."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint_best.pt" if (path / "checkpoint_best.pt").exists() else path / "checkpoint.pt"
    state = checkpoint.load(path, map_location="cpu")
    data_state = state.get("data") or {}
    if "vocab" not in data_state or "config" not in state:
        raise checkpoint.CheckpointError(f"{path}: not a text-generation checkpoint (no vocabulary "
                                         f"saved; was it trained with model=generator?)")
    cfg = OmegaConf.create(state["config"])
    vocab = Vocab(data_state["vocab"])
    model = build_model(upgrade(cfg.model, "model"), len(vocab), len(vocab))   # a folder before _target_ too
    model.load_state_dict(state["model"])
    return model.to(device).eval(), vocab, cfg
