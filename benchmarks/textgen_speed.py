"""Speed of the character model: training steps/s, and generation with a carried state (O(N))
against re-running the whole prefix for every character (O(N^2)). Prints times and ratios.

    python -m benchmarks.textgen_speed                 # from the project root; report-sized model
    python -m benchmarks.textgen_speed --threads 1 --length 400
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from rnn_experiments.data.text import Vocab
from rnn_experiments.generation import generate, next_token
from rnn_experiments.models.generator import TextGenerator


def timed(fn, repeat=3):
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab", type=int, default=86)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seq", type=int, default=30)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--length", type=int, default=200)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    V = args.vocab
    model = TextGenerator(V)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    x = torch.randint(0, V, (args.batch, args.seq))
    y = torch.randint(0, V, (args.batch, args.seq))

    def train_steps():
        for _ in range(args.steps):
            loss = F.nll_loss(model(x).reshape(-1, V), y.reshape(-1))
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            opt.step()

    train_steps()  # warm-up
    t = timed(train_steps, repeat=2)
    print(f"training: {args.steps / t:.1f} steps/s (batch {args.batch}, seq {args.seq}, "
          f"{torch.get_num_threads()} threads)")

    vocab = Vocab("".join(chr(33 + i) for i in range(V)))
    N = args.length
    carried = timed(lambda: generate(model, vocab, ["a"], N, "sample", 1.0))

    @torch.no_grad()
    def rerun_prefix():
        gen, ids = torch.Generator().manual_seed(0), vocab.encode("a")
        for _ in range(N):
            logits = model.logits(ids[None])[0][:, -1]
            ids = torch.cat([ids, next_token(logits, "sample", 1.0, 0, gen)])

    rerun = timed(rerun_prefix, repeat=1)
    print(f"generation of {N} chars: carried state {carried * 1e3:.0f} ms ({N / carried:.0f} chars/s), "
          f"re-running the prefix {rerun * 1e3:.0f} ms; ratio {rerun / carried:.1f}x")
    batch = timed(lambda: generate(model, vocab, ["a"] * 64, N, "sample", 1.0))
    print(f"64 prompts as one batch: {batch * 1e3:.0f} ms, {64 * carried / batch:.1f}x faster than 64 one by one")


if __name__ == "__main__":
    main()
