"""`python -m rnn_experiments.download`: offline and checksum failures are one line, nothing kept."""
from __future__ import annotations

import urllib.error

from conftest import BOOK
from rnn_experiments.data import corpora as dl
from rnn_experiments.cli.rnn_download import main as download_main


def test_download_offline_is_a_clear_error(tmp_path, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(dl.urllib.request, "urlopen", offline)
    assert download_main(["grimm", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot fetch https://www.gutenberg.org/" in err
    assert "Traceback" not in err and list(tmp_path.iterdir()) == []


def test_download_verifies_the_checksum(tmp_path, capsys):
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("Not the Grimm book.\n")
    target = tmp_path / "data"
    assert download_main(["grimm", "--dir", str(target), "--url", wrong.as_uri()]) == 1
    assert "differs from the expected" in capsys.readouterr().err and not target.exists()
    assert download_main(["grimm", "--dir", str(target), "--url", wrong.as_uri(), "--no-verify"]) == 0
    assert (target / "grimms_fairy_tales.txt").read_text() == "Not the Grimm book.\n"
    if BOOK is not None:  # the real file passes the check (a file:// URL: no network)
        assert download_main(["grimm", "--dir", str(target), "--url", BOOK.as_uri(), "--force"]) == 0
        assert (target / "grimms_fairy_tales.txt").read_bytes() == BOOK.read_bytes()


def test_download_into_an_unwritable_folder_is_one_line(tmp_path, capsys, unwritable_dir):
    source = tmp_path / "book.txt"
    source.write_text("A book.\n")
    target = unwritable_dir / "data"
    assert download_main(["grimm", "--dir", str(target), "--url", source.as_uri(), "--no-verify"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"download grimm: error: cannot write {target}/grimms_fairy_tales.txt: ")
    assert err.count("\n") == 1 and "Traceback" not in err
