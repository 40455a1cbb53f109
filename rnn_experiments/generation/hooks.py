"""Samples during training (report Question 2.1 b, c), driven by the config's `sample` section.

At round(f · train.steps) for each f in `sample.at_fractions`, every start character in
`sample.starts` is continued greedily by `sample.length` characters; at the last step, also by
`sample.temperature_length` characters at each of `sample.temperatures`. Each sample is a line of
`samples.jsonl` (step, fraction, strategy, temperature, start, text) and a line of `samples.md`.
"""
from __future__ import annotations

import json
from pathlib import Path

from rnn_experiments.errors import ConfigError
from rnn_experiments.generation.decode import generate


class SampleHook:
    def __init__(self, sample_cfg, steps: int):
        self.cfg = sample_cfg
        self.steps = steps
        self.at = {max(1, round(f * steps)): f for f in sample_cfg.at_fractions}  # step -> fraction
        self.checked = False

    def __call__(self, step: int, model, data, out_dir: Path) -> None:
        s = self.cfg
        if not self.checked:  # the vocabulary is known only once the data is loaded
            unknown = sorted(set("".join(s.starts)) - set(data.vocab.chars))
            if unknown:
                raise ConfigError(f"sample.starts={list(s.starts)!r} is invalid: expected characters "
                                  f"of the text (not in its vocabulary: {''.join(unknown)!r})")
            self.checked = True
            restart_files(Path(out_dir), first_step=step)  # a resumed run replays later steps
        records = []
        if step in self.at:
            texts = generate(model, data.vocab, list(s.starts), s.length, strategy="greedy")
            records += [self._record(step, "greedy", None, st, tx) for st, tx in zip(s.starts, texts)]
        if step == self.steps:
            for T in s.temperatures:
                texts = generate(model, data.vocab, list(s.starts), s.temperature_length,
                                 strategy="sample", temperature=T, top_k=s.top_k, seed=s.seed)
                records += [self._record(step, "sample", T, st, tx) for st, tx in zip(s.starts, texts)]
        if records:
            write_records(Path(out_dir), records)

    def _record(self, step, strategy, temperature, start, text) -> dict:
        return {"step": step, "fraction": round(step / self.steps, 4), "strategy": strategy,
                "temperature": temperature, "top_k": self.cfg.top_k if strategy == "sample" else None,
                "start": start, "text": text}


def write_records(out_dir: Path, records: list[dict]) -> None:
    """Append to samples.jsonl (one JSON object a line) and samples.md (readable)."""
    with open(out_dir / "samples.jsonl", "a") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    md = out_dir / "samples.md"
    with open(md, "a") as f:
        if md.stat().st_size == 0:
            f.write("# Samples\n\nT: temperature, p ∝ exp(logits / T); the report's τ is 1/T.\n")
        r0 = records[0]
        f.write(f"\n## step {r0['step']} ({r0['fraction']:.0%} of training)\n\n")
        f.write("| strategy | T | start | text |\n|---|---|---|---|\n")
        for r in records:
            T = "" if r["temperature"] is None else f"{r['temperature']:g}"
            text = r["text"].replace("\\", "\\\\").replace("|", "\\|").replace("\n", "⏎")
            f.write(f"| {r['strategy']} | {T} | `{r['start']}` | {text} |\n")


def restart_files(out_dir: Path, first_step: int) -> None:
    """Keep only the samples of steps before `first_step`; a resumed run writes the rest again."""
    path = out_dir / "samples.jsonl"
    kept = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # the partial last line of a killed process
                continue
            if record["step"] < first_step:
                kept.append(record)
    for p in (path, out_dir / "samples.md"):
        p.unlink(missing_ok=True)
    for step in sorted({r["step"] for r in kept}):
        write_records(out_dir, [r for r in kept if r["step"] == step])


def hooks_from_config(cfg) -> list:
    """The hooks a (validated) config asks for: text samples when `sample.enabled`."""
    if cfg.get("sample") is None or not cfg.sample.enabled:
        return []
    return [SampleHook(cfg.sample, cfg.train.steps)]
