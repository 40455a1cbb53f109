"""The benchmark command runs its sections (figures are printed, never asserted: see docs)."""
from __future__ import annotations

import pytest
import torch

from conftest import BOOK
from rnn_experiments import bench


def test_bench_data_section_runs(capsys):
    """The benchmark command itself (its data rows need the text dataset and the generator)."""
    bench.main(["--quick", "--only", "data", "--threads", "1"] + (["--book", str(BOOK)] if BOOK else []))
    out = capsys.readouterr().out
    assert "palindrome L=10 B=256" in out
    assert ("text B=64 T=30" if BOOK else "skipped") in out



def test_bench_analysis_section_times_collect_and_table_of_real_folders():
    """The analysis section on a small fake sweep: its rows name the runs it read, and the
    ratio is the measured total over the target."""
    rows = bench.bench_analysis(runs=8, steps=100, target_s=5.0)
    collect_row, total_row = rows
    assert collect_row["case"] == total_row["case"] == "8 runs x 10 rows"   # 2 models x 2 L x 2 seeds
    assert 0 < collect_row["median_ms"] <= total_row["median_ms"]
    assert total_row["ratio"] == pytest.approx(total_row["median_ms"] / 1e3 / 5.0)


@pytest.mark.parametrize("argv, message", [
    (["--repeats", "0"], "--repeats=0 is invalid"),
    (["--threads", "-1"], "--threads=-1 is invalid"),
    (["--threads", "100000"], "--threads=100000 is invalid"),
    (["--sweep-steps", "0"], "--sweep-steps=0 is invalid"),
    (["--book", "/bin/ls"], "/bin/ls: not UTF-8 text"),
    pytest.param(["--device", "cuda"], "device='cuda' is invalid: no CUDA device",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")),
])
def test_bad_arguments_are_refused_before_any_timing(capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        bench.main(argv)
    assert e.value.code == 2
    out, err = capsys.readouterr()
    assert err.startswith(f"rnn-bench: error: {message}") and err.count("\n") == 1 and out == ""
