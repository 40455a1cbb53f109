"""Text generation: character data, the character LSTM, sampling, samples during training,
checkpoints, the generate and download commands."""
from __future__ import annotations

import json
import os
import urllib.error
from pathlib import Path

import pytest

from rnn_experiments.training.checkpoint import CheckpointError
import torch
from omegaconf import OmegaConf

from rnn_experiments.config import ConfigError
from rnn_experiments.data import download as dl
from rnn_experiments.data.__main__ import main as data_main
from rnn_experiments.data.text import TextDataError, TextDataset, Vocab, read_text
from rnn_experiments.generation import generate, load_generator, next_token, probabilities
from rnn_experiments.models.generator import TextGenerator
from rnn_experiments.training.loop import train
from rnn_experiments.training.metrics import read_metrics

ROOT = Path(__file__).resolve().parent.parent
# the book lives at ../shared/data from the project root; a git worktree sits one level deeper
BOOK_CANDIDATES = [Path(os.environ.get("RNN_EXPERIMENTS_BOOK", "/nonexistent")),
                   ROOT.parent / "shared/data/grimms_fairy_tales.txt",
                   ROOT.parent.parent / "shared/data/grimms_fairy_tales.txt"]
BOOK = next((p for p in BOOK_CANDIDATES if p.is_file()), None)

REPETITIVE = "the cat sat on the mat. " * 40  # the next character is a function of a few before


def text_overrides(path, *extra):
    """A tiny character model on `path` (added to conftest's TINY overrides)."""
    return ["model=generator", "dataset=text", f"dataset.path={path}", "dataset.seq_length=12",
            "model.num_layers=1", "model.hidden_size=32", "model.embedding_dim=8",
            "train.lr=1e-2", "train.max_norm=5", "train.threads=1", *extra]


@pytest.fixture
def tiny_text(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text(REPETITIVE, encoding="utf-8")
    return path


def tiny_dataset(path, seed=0, T=12):
    cfg = OmegaConf.create({"seq_length": T, "path": str(path), "eval_seed": 1234})
    return TextDataset(cfg, seed=seed, device=torch.device("cpu"), eval_size=32)


# ---------------------------------------------------------------- data
def test_windows_target_is_input_shifted_by_one(tiny_text):
    data = tiny_dataset(tiny_text)
    x, y = data.sample(64)
    assert x.shape == y.shape == (64, 12)
    assert torch.equal(y[:, :-1], x[:, 1:])
    full = data.vocab.decode(data.data)  # the training part of the text
    for row_x, row_y in zip(x, y):  # each window is a real substring: x = text[o:o+T], y = text[o+1:o+T+1]
        s = data.vocab.decode(row_x) + data.vocab.decode(row_y)[-1]
        assert s in full
    assert torch.equal(data.eval_y[:, :-1], data.eval_x[:, 1:])


def test_vocabulary_is_sorted_distinct_chars_and_round_trips():
    text = "Hänsel & Gretel: 'Knusper, knusper, Knäuschen!'\n"
    vocab = Vocab.from_text(text)
    assert vocab.chars == "".join(sorted(set(text)))
    assert vocab.decode(vocab.encode(text)) == text
    assert Vocab(vocab.chars) == vocab
    with pytest.raises(ValueError, match="not in the vocabulary: 'Zab'"):
        vocab.encode("Zauber")


def test_batches_are_reproducible_from_the_seed(tiny_text):
    a, b, c = tiny_dataset(tiny_text, seed=3), tiny_dataset(tiny_text, seed=3), tiny_dataset(tiny_text, seed=4)
    xa, xb, xc = a.sample(32)[0], b.sample(32)[0], c.sample(32)[0]
    assert torch.equal(xa, xb) and not torch.equal(xa, xc)
    assert torch.equal(a.eval_x, c.eval_x)  # the eval windows depend on eval_seed only
    state = a.state_dict()  # resume: the generator state continues the same stream
    expected = a.sample(8)[0]
    b2 = tiny_dataset(tiny_text, seed=99)
    b2.load_state_dict(state)
    assert torch.equal(b2.sample(8)[0], expected)


def test_a_text_of_exactly_one_window(tmp_path):
    path = tmp_path / "one.txt"
    path.write_text("abcdefghijklm")  # 13 characters = seq_length + 1
    x, y = tiny_dataset(path).sample(4)
    vocab = Vocab("abcdefghijklm")
    assert [vocab.decode(r) for r in x] == ["abcdefghijkl"] * 4
    assert [vocab.decode(r) for r in y] == ["bcdefghijklm"] * 4


@pytest.mark.parametrize("content, problem", [
    (None, "no such file"),
    (b"", "empty"),
    (b"short", "too short"),
    (b"caf\xe9 au lait, " * 5, "not UTF-8"),
])
def test_bad_text_files_give_one_line_naming_the_path(tmp_path, make_cfg, content, problem):
    path = tmp_path / "book.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(TextDataError, match=problem) as err:
        read_text(path, min_chars=13)
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    cfg = make_cfg(*text_overrides(path))
    with pytest.raises(ConfigError, match=problem):  # train() checks before it writes anything
        train(cfg, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_text_dataset_config_errors(make_cfg, tiny_text, tmp_path):
    with pytest.raises(ConfigError, match="dataset.path"):
        train(make_cfg("model=generator", "dataset=text"), tmp_path / "a")
    with pytest.raises(ConfigError, match="model.name='lstm'"):
        train(make_cfg("dataset=text", f"dataset.path={tiny_text}"), tmp_path / "b")
    with pytest.raises(ConfigError, match="sample.temperatures"):
        train(make_cfg(*text_overrides(tiny_text, "sample.enabled=true", "sample.temperatures=[1.0,0]")),
              tmp_path / "c")


# ---------------------------------------------------------------- model and training
def test_loss_falls_and_accuracy_rises_on_repetitive_text(make_cfg, tiny_text, tmp_path):
    cfg = make_cfg(*text_overrides(tiny_text, "train.steps=150", "train.log_every=10",
                                   "train.eval_every=50"))
    summary = train(cfg, tmp_path)
    df = read_metrics(tmp_path / "metrics.csv")
    first, last = df.iloc[0], df.iloc[-1]
    assert summary["status"] == "completed"
    assert last["loss"] < 0.3 * first["loss"]
    assert first["accuracy"] < 0.5 < 0.9 < last["accuracy"]
    assert summary["final_eval_accuracy"] > 0.9


def test_training_resumes_from_a_checkpoint_exactly(make_cfg, tiny_text, tmp_path):
    straight = train(make_cfg(*text_overrides(tiny_text, "train.steps=30")), tmp_path / "a")
    train(make_cfg(*text_overrides(tiny_text, "train.steps=15")), tmp_path / "b")
    resumed = train(make_cfg(*text_overrides(tiny_text, "train.steps=30")), tmp_path / "b")
    assert resumed["resumed_from_step"] == 15
    assert resumed["final_loss"] == pytest.approx(straight["final_loss"], rel=1e-6)
    # resuming on another text is refused
    other = tmp_path / "other.txt"
    other.write_text("a completely different text, with other letters! " * 5)
    with pytest.raises(CheckpointError, match="dataset.path"):
        train(make_cfg(*text_overrides(other, "train.steps=40")), tmp_path / "b")


def test_generator_architecture_dropout_and_lr_decay(make_cfg, tiny_text, tmp_path):
    from rnn_experiments.models import build_model, count_params
    cfg = make_cfg("+experiment=grimm_textgen", "model.dropout=0.25", tiny=False)
    V, E, H = 86, 64, 256
    model = build_model(cfg.model, V, V)
    assert model.lstm.num_layers == 2 and model.lstm.dropout == 0.25
    lstm = 4 * H * (E + H) + 8 * H + 4 * H * (2 * H) + 8 * H  # two layers, two biases each
    assert count_params(model) == V * E + lstm + H * V + V
    assert model(torch.zeros(3, 7, dtype=torch.long)).shape == (3, 7, V)

    train(make_cfg(*text_overrides(tiny_text, "train.steps=30", "train.lr_decay_every=10",
                                   "train.lr_decay=0.5")), tmp_path)
    lr = read_metrics(tmp_path / "metrics.csv").set_index("step")["lr"]
    assert lr[5] == pytest.approx(1e-2) and lr[15] == pytest.approx(5e-3) and lr[30] == pytest.approx(1.25e-3)


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
    train(cfg, tmp_path)
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

    # ... and so does the generate command's code path (conf/generate.yaml)
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from rnn_experiments.generate import run
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        gcfg = compose("generate", [f"checkpoint={tmp_path / 'checkpoint.pt'}", "prompt=[t,c,' ']",
                                    "length=20", "temperature=0.5"])
    assert run(gcfg) == [r["text"] for r in records if r["temperature"] == 0.5]


def test_download_offline_is_a_clear_error(tmp_path, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(dl.urllib.request, "urlopen", offline)
    assert data_main(["download", "grimm", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot fetch https://www.gutenberg.org/" in err
    assert "Traceback" not in err and list(tmp_path.iterdir()) == []


def test_download_verifies_the_checksum(tmp_path, capsys):
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("Not the Grimm book.\n")
    target = tmp_path / "data"
    assert data_main(["download", "grimm", "--dir", str(target), "--url", wrong.as_uri()]) == 1
    assert "differs from the expected" in capsys.readouterr().err and not target.exists()
    assert data_main(["download", "grimm", "--dir", str(target), "--url", wrong.as_uri(), "--no-verify"]) == 0
    assert (target / "grimms_fairy_tales.txt").read_text() == "Not the Grimm book.\n"
    if BOOK is not None:  # the real file passes the check (a file:// URL: no network)
        assert data_main(["download", "grimm", "--dir", str(target), "--url", BOOK.as_uri(), "--force"]) == 0
        assert (target / "grimms_fairy_tales.txt").read_bytes() == BOOK.read_bytes()


def test_grimm_preset_composes_the_report_settings(make_cfg):
    cfg = make_cfg("+experiment=grimm_textgen", tiny=False)
    assert (cfg.model.name, cfg.model.num_layers, cfg.model.hidden_size, cfg.model.embedding_dim) == \
        ("generator", 2, 256, 64)
    assert (cfg.train.steps, cfg.train.batch_size, cfg.train.lr, cfg.train.max_norm) == (5000, 64, 2e-3, 5.0)
    assert cfg.dataset.name == "grimm" and cfg.dataset.seq_length == 30
    assert list(cfg.sample.starts) == list("tauvg") and list(cfg.sample.temperatures) == [2.0, 1.0, 0.5]


@pytest.mark.skipif(BOOK is None, reason="../shared/data/grimms_fairy_tales.txt not present")
def test_the_grimm_book_loads(make_cfg, tmp_path):
    cfg = make_cfg(*text_overrides(BOOK, "dataset=grimm", "dataset.seq_length=30", "train.steps=2"))
    data = TextDataset(cfg.dataset, seed=0, device=torch.device("cpu"), eval_size=16)
    # dataset=grimm cuts the Project Gutenberg header and licence: 80 distinct characters remain
    assert len(data.vocab) == 80 and "\ufeff" not in data.vocab.chars
    assert data.vocab.decode(data.data[:40]).startswith("Produced by Emma Dudding")
    assert "Gutenberg" not in data.vocab.decode(data.eval_x[:, :].reshape(-1))
    assert train(cfg, tmp_path)["status"] == "completed"


def test_generate_command_bad_input_is_one_line(tmp_path):
    import subprocess
    import sys
    ckpt = tmp_path / "nothing.pt"
    proc = subprocess.run([sys.executable, "-m", "rnn_experiments.generate", f"checkpoint={ckpt}",
                           "prompt=t"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == f"rnn-generate: error: {ckpt}: no such checkpoint\n" and proc.stdout == ""
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_gutenberg_header_and_licence_are_cut(tmp_path):
    from rnn_experiments.data.text import TextDataError, strip_gutenberg
    text = "Title\n*** START OF THIS PROJECT GUTENBERG EBOOK X ***\n\nOnce upon a time.\n*** END OF THIS PROJECT GUTENBERG EBOOK X ***\nLicence"
    assert strip_gutenberg(text, "book.txt") == "Once upon a time.\n"
    with pytest.raises(TextDataError, match="book.txt: no '\\*\\*\\* START OF'"):
        strip_gutenberg("just a text", "book.txt")


def test_resumed_run_does_not_repeat_samples(make_cfg, tiny_text, tmp_path):
    import json
    import shutil

    overrides = text_overrides(tiny_text, "train.steps=30", "train.checkpoint_every=10",
                               "sample.enabled=true", "sample.at_fractions=[0.5,1.0]", "sample.starts=[t,c]",
                               "sample.temperatures=[1.0]", "sample.temperature_length=10")

    def keep_step_20_checkpoint(step, model, data, out_dir):
        if step == 21:  # the checkpoint on disk is the one of step 20
            shutil.copy(out_dir / "checkpoint.pt", out_dir / "step20.pt")

    train(make_cfg(*overrides), tmp_path, hooks=[keep_step_20_checkpoint])
    straight = (tmp_path / "samples.jsonl").read_text()
    # as if killed at step 29: back to the step-20 checkpoint, then the same command again
    shutil.copy(tmp_path / "step20.pt", tmp_path / "checkpoint.pt")
    assert train(make_cfg(*overrides), tmp_path)["resumed_from_step"] == 20
    assert (tmp_path / "samples.jsonl").read_text() == straight
    steps = [json.loads(line)["step"] for line in straight.splitlines()]
    assert steps.count(15) == 2 and steps.count(30) == 4  # greedy at 15 and 30, T=1 at 30
    assert (tmp_path / "samples.md").read_text().count("## step 30") == 1
