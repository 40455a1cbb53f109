"""The step sections of rnn-bench: a training step of our models against nn.LSTM over a grid of
sizes (`train`), and greedy generation with the text generator (`gen`)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from rnn_experiments.cli.bench.timing import MINIMA, interleaved, step_fn, sync, train_config
from rnn_experiments.models.generator import TextGenerator
from rnn_experiments.training.impl import choose_impl
from rnn_experiments.training.setup import build_optimizer, setup


class TorchLSTMClassifier(nn.Module):
    """The baseline: the same classifier around torch.nn.LSTM."""

    def __init__(self, vocab_size, num_classes, embedding_dim, hidden_size):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden_size, batch_first=True)
        self.out = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        h, _ = self.lstm(self.embedding(x))                   # (B, T, H)
        return F.log_softmax(self.out(h[:, -1]), dim=-1)      # (B, C)


TRAIN_GRID = [(B, H, T) for B in (32, 128, 256) for H in (32, 64, 128, 256, 512) for T in (41, 81)]
QUICK_GRID = [(256, 256, 41), (128, 32, 81), (128, 256, 81), (32, 64, 41)]


def train_target(B: int, H: int, model: str) -> float | None:
    """The ratio to nn.LSTM a model's training step must stay under at this size (None: none)."""
    if model not in ("lstm", "peep_lstm"):
        return None
    if (B, H) == (256, 256) and model == "lstm":
        return 0.8
    if B >= 128:
        return 1.0
    if (B, H) == (32, 64):
        return 1.3
    return None


def case_repeats(B: int, H: int, T: int, repeats: int) -> int:
    """Fewer repeats for the largest cases (B·H²·T beyond 256·256²·81), whose steps take longest."""
    return repeats if B * H * H * T <= 256 * 256 * 256 * 81 else max(3, repeats // 2)


def bench_train(device, repeats, sizes, with_plain: bool, cuda_graphs: bool = True):
    """sizes: (B, H, T) with T = 4L + 1 (palindromes of length L). Our models take the
    implementation and threads a 3000-step run of each size would take on this machine with
    torch's count at the bench's (training/impl.py: cached, or measured now and cached; one
    thread or the bench's), and each step runs at its count; nn.LSTM and the autograd loop run
    at the bench's. Each row names the implementation (`impl`) and the threads (`threads`)."""
    rows, threads = [], torch.get_num_threads()
    extra = [] if threads > 1 else ["train.threads=1"]       # one: nothing to choose
    for B, H, T in sizes:
        runs, chosen = {}, {}
        for name in ("lstm", "peep_lstm") + (("lstm (autograd loop)",) if with_plain else ()):
            cfg = train_config(name.split()[0], B, H, (T - 1) // 4, device, extra)
            _, data, model, optimizer = setup(cfg)
            if name.endswith("loop)"):
                model.fused = False
            else:                                             # what a run of this size would use here
                chosen[name] = choose_impl(cfg, device, data, model)
                torch.set_num_threads(threads)
            runs[name] = (model, optimizer)
        x, y = data.sample(B)                                 # (B, 4L+1) palindromes, (B,) labels
        torch.manual_seed(0)
        baseline = TorchLSTMClassifier(data.vocab_size, data.num_classes, cfg.model.embedding_dim, H).to(device)
        runs = {"nn.LSTM": (baseline, build_optimizer(cfg.optimizer, baseline.parameters(), cfg.train.lr, device)), **runs}   # the same Adam
        fns = {k: at_threads(step_fn(m, opt, x, y, cfg.train.max_norm, device, cuda_graphs and k != "nn.LSTM"),
                             chosen[k]["threads"] if k in chosen and device.type == "cpu" else threads)
               for k, (m, opt) in runs.items()}
        case = f"B={B} H={H} T={x.shape[1]}"
        med = interleaved(fns, case_repeats(B, H, T, repeats), key=case,
                          warmup=5 if device.type == "cuda" else 1)
        for name, t in med.items():
            target = train_target(B, H, name) if device.type == "cpu" else None
            rows.append({"section": "train", "case": case, "what": name,
                         "median_ms": t * 1e3, "ratio": t / med["nn.LSTM"],
                         "min_ratio": MINIMA[case, name] / MINIMA[case, "nn.LSTM"],
                         "target": f"<= {target:g}" if target else "", "limit": target,
                         "impl": chosen[name]["choice"] if name in chosen else None,
                         "threads": chosen[name]["threads"] if name in chosen else threads})
        print(f"  {case}: nn.LSTM {med['nn.LSTM'] * 1e3:.2f} ms; " + ", ".join(
            f"{r['what']} {r['ratio']:.2f} ({r['min_ratio']:.2f})"
            + (f" [{shown(chosen[r['what']])}]" if r["impl"] else "") for r in rows[-len(med) + 1:]),
            flush=True)
    torch.set_num_threads(threads)
    return rows


def at_threads(fn, n: int):
    """fn, called at n torch threads (each timed model at its own count; interleaved calls)."""
    def call():
        torch.set_num_threads(n)
        fn()
    return call


def shown(record: dict) -> str:
    """A model's choice, as the train section prints it: implementation, how; threads, how."""
    n = record["threads"]
    return f"{record['choice']}, {record['how']}; {n} thread{'s' if n != 1 else ''}, {record['threads_how']}"


def train_summary(rows) -> list[str]:
    """The worst ratio (of the fastest repeats) per model, at B >= 128 and everywhere, and the
    cases that miss their target."""
    lines = []
    train = [r for r in rows if r["section"] == "train" and r["what"] != "nn.LSTM"]
    for name in dict.fromkeys(r["what"] for r in train):
        mine = [r for r in train if r["what"] == name]
        worst = max(mine, key=lambda r: r["min_ratio"])
        big = [r for r in mine if int(r["case"].split()[0][2:]) >= 128]
        text = f"worst {name}: {worst['min_ratio']:.2f} x nn.LSTM ({worst['case']})"
        if big and big != mine:
            worst_big = max(big, key=lambda r: r["min_ratio"])
            text += f"; at B >= 128: {worst_big['min_ratio']:.2f} ({worst_big['case']})"
        lines.append(text)
    missed = [f"{r['what']} {r['case']} {r['min_ratio']:.2f} (target {r['target']})"
              for r in train if r.get("limit") and r["min_ratio"] > r["limit"]]
    judged = sum(1 for r in train if r.get("limit"))
    if judged:
        lines.append(f"targets met (ratio of the fastest repeats): {judged - len(missed)} of {judged}"
                     + (f"; missed: {'; '.join(missed)}" if missed else ""))
    return lines


def make_generator(vocab_size):
    return TextGenerator(vocab_size, 64, 256, num_layers=2), "TextGenerator(64->256, 2 layers)"


@torch.no_grad()
def greedy(model, n, device):
    x, state = torch.zeros(1, dtype=torch.long, device=device), None
    out = []
    for _ in range(n):
        logits, state = model.step(x, state)                  # (1, V)
        x = logits.argmax(-1)                                 # (1,)
        out.append(x)
    torch.cat(out).tolist()                                   # one transfer at the end
    sync(device)


def bench_gen(device, repeats, vocab_size=86):
    """Greedy generation at torch's thread count and at 1 thread (batch 1 has little to share
    between threads, and a busy machine makes every multi-threaded call wait for a core)."""
    torch.manual_seed(0)
    model, label = make_generator(vocab_size)
    model = model.to(device).eval()
    rows, threads = [], torch.get_num_threads()
    for n in sorted({threads, 1}, reverse=True) if device.type == "cpu" else [threads]:
        torch.set_num_threads(n)
        key = f"gen{n}"
        med = interleaved({100: lambda: greedy(model, 100, device),
                           1000: lambda: greedy(model, 1000, device)}, repeats, key=key)
        case = f"{label}, {n} thr"
        rows += [
            {"section": "gen", "case": case, "what": "100 chars", "median_ms": med[100] * 1e3,
             "ratio": None, "target": ""},
            {"section": "gen", "case": case, "what": "1000 chars", "median_ms": med[1000] * 1e3,
             "ratio": med[1000] / med[100], "min_ratio": MINIMA[key, 1000] / MINIMA[key, 100],
             "target": "<= 12 (x 100 chars)"},
            {"section": "gen", "case": case, "what": "chars/s (1000)", "median_ms": None,
             "ratio": 1000 / med[1000], "min_ratio": 1000 / MINIMA[key, 1000], "target": ">= 2000"},
        ]
    torch.set_num_threads(threads)
    return rows
