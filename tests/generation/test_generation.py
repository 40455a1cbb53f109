"""Text generation: carried state, batched prompts, greedy / temperature / top-k sampling, samples
during training (the hook the train command passes to the loop), checkpoints and the generate
command."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from conftest import REPETITIVE, run_command, text_overrides
from rnn_experiments.config import compose
from rnn_experiments.data.text import Vocab
from rnn_experiments.generation import generate, hooks_from_config, load_generator, next_token, probabilities
from rnn_experiments.models.generator import TextGenerator
from rnn_experiments.training.loop import train


def test_carried_state_equals_rerunning_the_prefix():
    torch.manual_seed(0)
    model = TextGenerator(vocab_size=11, embedding_dim=8, hidden_size=16, num_layers=2,
                          init="kaiming_normal").eval()  # larger weights: the past matters more
    x = torch.randint(0, 11, (3, 20))
    full, _ = model.logits(x)                                   # (3, 20, 11) in one call
    state, stepped = None, []
    for t in range(20):
        p, state = model.step(x[:, t], state)
        stepped.append(p)
    torch.testing.assert_close(torch.stack(stepped, 1), full, atol=1e-5, rtol=1e-5)

    # sampling with a carried state draws the same characters as re-running the prefix each step
    model = model.double()
    vocab = Vocab("abcdefghijk")
    [text] = generate(model, vocab, ["c"], 25, "sample", temperature=1.5, seed=7)
    gen, ids = torch.Generator().manual_seed(7), vocab.encode("c")
    with torch.no_grad():
        for _ in range(25):
            logits = model.logits(ids[None])[0][:, -1]          # (1, V), whole prefix again
            ids = torch.cat([ids, next_token(logits, "sample", 1.5, 0, gen)])
    assert text == vocab.decode(ids)


def test_prompts_of_different_lengths_batch_like_alone():
    torch.manual_seed(1)
    model = TextGenerator(vocab_size=11, embedding_dim=8, hidden_size=16, num_layers=2)
    vocab = Vocab("abcdefghijk")
    prompts = ["a", "hijk", "bad", "k"]
    together = generate(model, vocab, prompts, 15, "greedy")
    alone = [generate(model, vocab, [p], 15, "greedy")[0] for p in prompts]
    assert together == alone and [len(t) for t in together] == [16, 19, 18, 16]
    with pytest.raises(ValueError, match="not in the vocabulary: 'z'"):
        generate(model, vocab, ["az"], 5)


def test_greedy_is_argmax_and_tiny_temperature_is_greedy():
    torch.manual_seed(2)
    model = TextGenerator(vocab_size=11, embedding_dim=8, hidden_size=16, num_layers=2,
                          init="kaiming_normal").eval()  # larger weights: livelier untrained output
    vocab = Vocab("abcdefghijk")
    [text] = generate(model, vocab, ["fed"], 30, "greedy")
    assert len(set(text[3:])) > 2
    ids = vocab.encode(text)
    with torch.no_grad():
        logits = model.logits(ids[None])[0][0]                   # (T, V)
    assert torch.equal(logits[2:-1].argmax(-1), ids[3:])         # each generated char = argmax
    for T in (1e-4, 1e-30):
        assert generate(model, vocab, ["fed"], 30, "sample", temperature=T, seed=3) == [text]
    p = probabilities(torch.tensor([[1.0, 3.0, -2.0, 3.0 - 1e-3]]), 1e-30)
    assert torch.equal(p, torch.tensor([[0.0, 1.0, 0.0, 0.0]]))  # one-hot, no NaN
    for T in (0.0, -1.0):
        with pytest.raises(ValueError, match="strategy=greedy"):
            generate(model, vocab, ["a"], 5, "sample", temperature=T)
    assert generate(model, vocab, ["fed"], 30, "greedy", temperature=0.0) == [text]


def test_huge_temperature_is_near_uniform_and_top_k_restricts():
    V, N = 10, 20000
    logits = torch.linspace(-4.0, 4.0, V).expand(N, V)  # the model's distribution is far from uniform
    gen = torch.Generator().manual_seed(0)
    expected = N / V

    def chi2(counts):  # Pearson's statistic against the uniform distribution
        return (((counts - expected) ** 2) / expected).sum().item()

    hot = torch.bincount(next_token(logits, "sample", 1e6, 0, gen), minlength=V).float()
    cold = torch.bincount(next_token(logits, "sample", 1.0, 0, gen), minlength=V).float()
    assert chi2(hot) < 27.88       # 99.9% quantile of chi-square with 9 degrees of freedom
    assert chi2(cold) > 1000       # the same test rejects T = 1
    top3 = torch.bincount(next_token(logits, "sample", 1e6, 3, gen), minlength=V)
    assert top3[:7].sum() == 0 and (top3[7:] > 0.3 * N / 3).all()


# ---------------------------------------------------------------- samples, checkpoints, commands
def test_samples_during_training_and_checkpoint_round_trip(make_cfg, tiny_text, tmp_path):
    cfg = make_cfg(*text_overrides(tiny_text, "train.steps=30", "sample.enabled=true",
                                   "sample.starts=[t,c,' ']", "sample.length=12",
                                   "sample.temperatures=[2.0,0.5]", "sample.temperature_length=20"))
    train(cfg, tmp_path, hooks=hooks_from_config(cfg))  # what the train command passes
    records = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    greedy = [r for r in records if r["strategy"] == "greedy"]
    assert [r["step"] for r in greedy] == [10] * 3 + [20] * 3 + [30] * 3
    assert {(r["temperature"], r["start"]) for r in records if r["strategy"] == "sample"} == \
        {(T, s) for T in (2.0, 0.5) for s in ("t", "c", " ")}
    assert all(len(r["text"]) == 13 for r in greedy)
    assert "| greedy |  | `t` |" in (tmp_path / "samples.md").read_text()

    # the checkpoint alone regenerates the end-of-training samples
    model, vocab, run_cfg = load_generator(tmp_path / "checkpoint.pt")
    assert vocab.chars == "".join(sorted(set(REPETITIVE))) and run_cfg.dataset.seq_length == 12
    for T in (2.0, 0.5):
        saved = [r["text"] for r in records if r["temperature"] == T]
        assert generate(model, vocab, ["t", "c", " "], 20, "sample", T, seed=0) == saved
    saved = [r["text"] for r in greedy if r["step"] == 30]
    assert generate(model, vocab, ["t", "c", " "], 12, "greedy") == saved

    # a run folder stands for its best checkpoint (lowest held-out loss): made different from the
    # last one here, so that loading checkpoint.pt instead could not pass
    best_state = torch.load(tmp_path / "checkpoint_best.pt", weights_only=False)
    best_state["model"] = {k: v + 0.5 for k, v in best_state["model"].items()}
    torch.save(best_state, tmp_path / "checkpoint_best.pt")
    best_model, _, _ = load_generator(tmp_path)
    assert all(torch.equal(best_state["model"][k], v) for k, v in best_model.state_dict().items())
    last = torch.load(tmp_path / "checkpoint.pt", weights_only=False)["model"]
    assert not any(torch.equal(last[k], v) for k, v in best_model.state_dict().items())

    # ... and so does the generate command's code path (conf/generate.yaml)
    from rnn_experiments.cli.rnn_generate import run
    gcfg = compose([f"checkpoint={tmp_path / 'checkpoint.pt'}", "prompt=[t,c,' ']", "length=20",
                    "temperature=0.5"], config_name="generate")
    assert run(gcfg) == [r["text"] for r in records if r["temperature"] == 0.5]


def test_resumed_run_does_not_repeat_samples(make_cfg, tiny_text, tmp_path):
    overrides = text_overrides(tiny_text, "train.steps=30", "train.checkpoint_every=10",
                               "sample.enabled=true", "sample.at_fractions=[0.5,1.0]", "sample.starts=[t,c]",
                               "sample.temperatures=[1.0]", "sample.temperature_length=10")

    def keep_step_20_checkpoint(step, model, data, out_dir):
        if step == 21:  # the checkpoint on disk is the one of step 20
            shutil.copy(out_dir / "checkpoint.pt", out_dir / "step20.pt")

    cfg = make_cfg(*overrides)
    train(cfg, tmp_path, hooks=[keep_step_20_checkpoint, *hooks_from_config(cfg)])
    straight = (tmp_path / "samples.jsonl").read_text()
    # as if killed at step 29: back to the step-20 checkpoint, then the same command again
    shutil.copy(tmp_path / "step20.pt", tmp_path / "checkpoint.pt")
    assert train(cfg, tmp_path, hooks=hooks_from_config(cfg))["resumed_from_step"] == 20
    assert (tmp_path / "samples.jsonl").read_text() == straight
    steps = [json.loads(line)["step"] for line in straight.splitlines()]
    assert steps.count(15) == 2 and steps.count(30) == 4  # greedy at 15 and 30, T=1 at 30
    assert (tmp_path / "samples.md").read_text().count("## step 30") == 1


def test_generate_command_bad_input_is_one_line(tmp_path):
    ckpt = tmp_path / "nothing.pt"
    proc = run_command("rnn-generate", f"checkpoint={ckpt}", "prompt=t")
    assert proc.code == 2
    assert proc.err == f"rnn-generate: error: {ckpt}: no such checkpoint\n" and proc.out == ""
    # checked before Hydra starts: an unknown key, no checkpoint= at all (Hydra's own reports are
    # several lines), a bad value
    for args, message in ((["checkpoint=x", "lenght=3"], "Could not override 'lenght'"),
                          (["prompt=t"], "checkpoint is missing"),
                          (["checkpoint=x", "temperature=-1"], "temperature=-1.0 is invalid")):
        proc = run_command("rnn-generate", *args, cwd=tmp_path)
        assert proc.code == 2 and proc.out == "", (args, proc.err)
        assert proc.err.startswith(f"rnn-generate: error: {message}") and proc.err.count("\n") == 1, proc.err
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize("override, message", [
    ("length=1000000000000", "length=1000000000000 is invalid: expected an integer from 0 to 1,000,000"),
    ("length=-1", "length=-1 is invalid"),
    ("temperature=inf", "temperature=inf is invalid: expected a finite number"),
    ("temperature=0", "temperature=0.0 is invalid: expected a number > 0"),
    ("top_k=-2", "top_k=-2 is invalid: expected an integer >= 0"),
    ("strategy=beam", "strategy='beam' is invalid"),
    ("seed=4294967296", "seed=4294967296 is invalid"),
    ("num_samples=0", "num_samples=0 is invalid"),
    ("prompt=null", "prompt=None is invalid: expected a non-empty string"),
    ("prompt=''", "prompt='' is invalid"),
])
def test_generate_settings_are_checked_before_loading(tmp_path, override, message):
    from rnn_experiments.errors import ConfigError
    from rnn_experiments.cli.rnn_generate import run
    cfg = compose([f"checkpoint={tmp_path / 'never-read.pt'}", "top_k=5", override], config_name="generate")
    with pytest.raises(ConfigError) as e:
        run(cfg)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


@pytest.mark.parametrize("override", ["length=abc", "length=2.5", "top_k=2.5", "temperature=abc",
                                      "num_samples=[1]", "lenght=5"])
def test_generate_types_and_keys_come_from_its_schema(tmp_path, override):
    """conf/generate.yaml is typed by GenerateConfig: a wrong type or an unknown key is refused
    while composing, in one line naming it, before any checkpoint is read."""
    from rnn_experiments.generation.checks import validate_generate
    from rnn_experiments.errors import ConfigError
    from rnn_experiments.cli.preflight import preflight
    key = override.split("=")[0]
    with pytest.raises(ConfigError) as e:
        preflight([f"checkpoint={tmp_path / 'never-read.pt'}", override], "generate",
                  check_run=validate_generate, writes=False)
    assert key in str(e.value) and "\n" not in str(e.value)
