"""The benchmark command runs its sections (figures are printed, never asserted: see docs)."""
from __future__ import annotations

from conftest import BOOK
from rnn_experiments import bench


def test_bench_data_section_runs(capsys):
    """The benchmark command itself (its data rows need the text dataset and the generator)."""
    bench.main(["--quick", "--only", "data", "--threads", "1"] + (["--book", str(BOOK)] if BOOK else []))
    out = capsys.readouterr().out
    assert "palindrome L=10 B=256" in out
    assert ("text B=64 T=30" if BOOK else "skipped") in out

