"""Character data: windows, vocabulary, reproducible batches, bad files, the Gutenberg cut and
the Grimm book."""
from __future__ import annotations

import pytest
import torch

from conftest import BOOK, text_overrides
from rnn_experiments.data.text import TextDataError, TextDataset, Vocab, read_text, strip_gutenberg
from rnn_experiments.parts import build_part
from rnn_experiments.errors import ConfigError
from rnn_experiments.training.loop import train


def tiny_dataset(path, seed=0, T=12):
    return TextDataset(seq_length=T, path=str(path), eval_seed=1234, seed=seed, device=torch.device("cpu"),
                       eval_size=32)


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


def test_the_shortest_text_holds_out_exactly_one_window_and_never_trains_on_it(tmp_path):
    """130 characters with seq_length 12: the last 10 % (13 characters) is one window, the only
    held-out window; no training window reaches into it. One character less is refused."""
    import string
    text = (string.ascii_lowercase * 5)[:117] + "ABCDEFGHIJKLM"
    (tmp_path / "a.txt").write_text(text)
    data = tiny_dataset(tmp_path / "a.txt")
    vocab = data.vocab
    assert {vocab.decode(r) for r in data.eval_x} == {"ABCDEFGHIJKL"}
    assert {vocab.decode(r) for r in data.eval_y} == {"BCDEFGHIJKLM"}
    x, y = data.sample(256)
    assert not any(set(vocab.decode(r)) & set("ABCDEFGHIJKLM") for r in torch.cat([x, y]))
    (tmp_path / "b.txt").write_text(text[1:])
    with pytest.raises(TextDataError, match=r"b.txt: 129 characters, too short for a held-out tail: .* expected at "
                                            r"least 130 characters \(or a smaller dataset.seq_length\)"):
        tiny_dataset(tmp_path / "b.txt")


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


def test_gutenberg_header_and_licence_are_cut(tmp_path):
    from rnn_experiments.data.text import TextDataError
    text = "Title\n*** START OF THIS PROJECT GUTENBERG EBOOK X ***\n\nOnce upon a time.\n*** END OF THIS PROJECT GUTENBERG EBOOK X ***\nLicence"
    assert strip_gutenberg(text, "book.txt") == "Once upon a time.\n"
    with pytest.raises(TextDataError, match="book.txt: no '\\*\\*\\* START OF'"):
        strip_gutenberg("just a text", "book.txt")


@pytest.mark.skipif(BOOK is None, reason="../shared/data/grimms_fairy_tales.txt not present")
def test_the_grimm_book_loads(make_cfg, tmp_path):
    cfg = make_cfg(*text_overrides(BOOK, "dataset=grimm", "dataset.seq_length=30", "train.steps=2"))
    data = build_part(cfg.dataset, "dataset", seed=0, device=torch.device("cpu"), eval_size=16)
    # dataset=grimm cuts the Project Gutenberg header and licence: 80 distinct characters remain
    assert len(data.vocab) == 80 and "\ufeff" not in data.vocab.chars
    assert data.vocab.decode(data.data[:40]).startswith("Produced by Emma Dudding")
    assert "Gutenberg" not in data.vocab.decode(data.eval_x[:, :].reshape(-1))
    assert train(cfg, tmp_path)["status"] == "completed"


def test_gutenberg_body_shorter_than_a_window_is_one_line(tmp_path, make_cfg):
    path = tmp_path / "book.txt"
    path.write_text("A long Project Gutenberg header with a lot of text in it.\n*** START OF THE BOOK ***\n"
                    "Short.\n*** END OF THE BOOK ***\nAnd a licence that is long enough, too.\n")
    cfg = make_cfg(*text_overrides(path, "dataset.gutenberg=true", "dataset.seq_length=20"))
    with pytest.raises(TextDataError, match=r"book.txt: the book between the Project Gutenberg lines has 7 "
                                            r"characters, too short: need at least 21"):
        build_part(cfg.dataset, "dataset", seed=0, device=torch.device("cpu"), eval_size=16)
