"""The benchmark command runs its sections (figures are printed, never asserted: see docs)."""
from __future__ import annotations

import re

import pytest
import torch

from conftest import BOOK
from rnn_experiments.cli import rnn_bench
from rnn_experiments.cli.bench import pipeline, steps
from rnn_experiments.cli.bench.timing import train_config
from rnn_experiments.models import LSTM, PeepLSTM
from rnn_experiments.models.kernels import measured
from rnn_experiments.training import impl
from rnn_experiments.training.resources import available_cores
from rnn_experiments.training.setup import setup


@pytest.fixture(autouse=True)
def threads_restored():
    """rnn_bench.run sets torch's thread count for its timings: give later tests theirs back."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
def test_bench_data_section_times_a_batch_against_the_step_that_consumes_it(tmp_path):
    """The data section on a small text: a row per palindrome length and one for the text, each
    a batch's time; the palindrome's ratio is the timed train step (here given: 100 ms) over the
    batch, a length without a timed step has none; without a book, a row says why the text was
    skipped. (The command itself runs its sections in the slow tier's bench test.)"""
    book = tmp_path / "book.txt"
    book.write_text("the cat sat on the mat. " * 400)
    step = [{"section": "train", "case": "B=256 H=256 T=41", "what": "lstm", "median_ms": 100.0}]
    rows = {r["case"]: r for r in pipeline.bench_data(torch.device("cpu"), 1, step, book=book)}
    assert list(rows) == ["palindrome L=10 B=256", "palindrome L=20 B=256", "text B=64 T=30"]
    L10, L20, text = rows.values()
    assert L10["ratio"] == pytest.approx(100.0 / L10["median_ms"]) and L20["ratio"] is None
    assert text["median_ms"] > 0 and text["ratio"] > 0
    rows = pipeline.bench_data(torch.device("cpu"), 1, [], book=tmp_path / "none.txt")
    assert rows[-1]["what"] == f"skipped: {tmp_path / 'none.txt'} not found (--book PATH)"
    assert [r["ratio"] for r in rows[:2]] == [None, None]    # no train step timed to compare with


@pytest.mark.slow   # a whole scenario (tests/conftest.py: tiers)
def test_bench_data_section_runs(capsys):
    """The benchmark command's data section with its own train step (the book where it is)."""
    rnn_bench.run(["--quick", "--only", "data", "--threads", "1"] + (["--book", str(BOOK)] if BOOK else []))
    out = capsys.readouterr().out
    assert "palindrome L=10 B=256" in out
    assert ("text B=64 T=30" if BOOK else "skipped") in out



def test_bench_analysis_section_times_collect_and_table_of_real_folders():
    """The analysis section on a small fake sweep: its rows name the runs it read, and the
    ratio is the measured total over the target."""
    rows = pipeline.bench_analysis(runs=8, steps=100, target_s=5.0)
    collect_row, total_row = rows
    assert collect_row["case"] == total_row["case"] == "8 runs x 10 rows"   # 2 models x 2 L x 2 seeds
    assert 0 < collect_row["median_ms"] <= total_row["median_ms"]
    assert total_row["ratio"] == pytest.approx(total_row["median_ms"] / 1e3 / 5.0)


@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
def test_bench_train_section_prints_the_machine_the_cases_and_the_worst_ratio(capsys):
    """Two tiny cases through the real command: the header names the CPU's vector extensions,
    torch, the threads and the load; each case has nn.LSTM and both models; the summary names
    the worst ratio per model."""
    rows = rnn_bench.run(["--only", "train", "--case", "8,4,9", "--case", "4,4,17", "--repeats", "1",
                       "--threads", "1", "--clock", "thread"])
    out = capsys.readouterr().out
    header = out.splitlines()[0]
    assert "CPU " in header and "ATen" in header and f"torch {torch.__version__}" in header
    assert "1 threads" in header and "(thread clock)" in header and "load average (1/5/15 min) at start" in header
    assert "at end" in out and out.splitlines()[1].startswith("kernels: tanh")
    assert [(r["case"], r["what"]) for r in rows] == [
        (case, what) for case in ("B=8 H=4 T=9", "B=4 H=4 T=17") for what in ("nn.LSTM", "lstm", "peep_lstm")]
    worst = max((r for r in rows if r["what"] == "lstm"), key=lambda r: r["min_ratio"])
    assert f"worst lstm: {worst['min_ratio']:.2f} x nn.LSTM ({worst['case']})" in out
    # each model runs as a run of its size would on this machine, and the table says which way
    for r in rows:
        model = {"lstm": LSTM, "peep_lstm": PeepLSTM}.get(r["what"])
        assert r["impl"] is None if model is None else r["impl"] in impl.candidates(model(3, 2, 4, 4))
        shown = f"{r['what']} [{r['impl']}]" if r["impl"] else r["what"]
        assert f"{r['case']:38s} {shown[:26]:26s}" in out
    assert re.search(r"B=8 H=4 T=9: nn.LSTM .* lstm \S+ \(\S+\) \[fused\S*, (measured|cached); "
                     r"1 thread, train\.threads\]", out)            # --threads 1: nothing to choose
    assert {r["threads"] for r in rows} == {1}


@pytest.mark.skipif(available_cores() < 2, reason="one core: one thread is all there is")
def test_each_model_steps_at_the_threads_chosen_for_it_and_nn_lstm_at_the_bench_s(tmp_path, monkeypatch, capsys):
    """At 2 bench threads our models take what a run would (here read from a cache of this test:
    the LSTM 2σ(2x) - 1 at one thread, the peephole LSTM the autograd loop at two), each timed
    step runs at its count, nn.LSTM at the bench's 2, and the printed case and the rows say which."""
    monkeypatch.setenv("RNN_EXPERIMENTS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(impl, "others_running", lambda *a, **k: 0.0)            # a quiet machine
    monkeypatch.setattr(impl, "_LOWERED", [])                # (what this test's choices lower: not kept)
    measured.forget()
    torch.set_num_threads(2)
    for name, choice in (("lstm", "fused:sigmoid-tanh threads=1"), ("peep_lstm", "autograd threads=2")):
        cfg = train_config(name, 8, 4, 2, torch.device("cpu"))
        _, data, model, _ = setup(cfg)
        measured.remember(impl._key(cfg, data, model, "auto(2)"), {"choice": choice})
    ran_at = {}                                              # model class -> torch's threads in its step
    step_fn = steps.step_fn

    def spied(model, *a):
        fn = step_fn(model, *a)
        return lambda: (ran_at.setdefault(type(model).__name__, set()).add(torch.get_num_threads()), fn())
    monkeypatch.setattr(steps, "step_fn", spied)
    rows = steps.bench_train(torch.device("cpu"), 1, [(8, 4, 9)], with_plain=False)
    assert ran_at == {"TorchLSTMClassifier": {2}, "LSTM": {1}, "PeepLSTM": {2}}
    assert [(r["what"], r["impl"], r["threads"]) for r in rows] == [
        ("nn.LSTM", None, 2), ("lstm", "fused:sigmoid-tanh", 1), ("peep_lstm", "autograd", 2)]
    out = capsys.readouterr().out
    assert "[fused:sigmoid-tanh, cached; 1 thread, cached]" in out and "[autograd, cached; 2 threads, cached]" in out
    assert torch.get_num_threads() == 2
    measured.forget()


def test_train_grid_and_targets_are_the_issues():
    assert {B for B, _, _ in steps.TRAIN_GRID} == {32, 128, 256}
    assert {H for _, H, _ in steps.TRAIN_GRID} == {32, 64, 128, 256, 512}
    assert {T for _, _, T in steps.TRAIN_GRID} == {41, 81} and len(steps.TRAIN_GRID) == 30
    assert set(steps.QUICK_GRID) <= set(steps.TRAIN_GRID)
    assert steps.train_target(256, 256, "lstm") == 0.8
    assert steps.train_target(256, 256, "peep_lstm") == steps.train_target(128, 32, "lstm") == 1.0
    assert steps.train_target(32, 64, "lstm") == steps.train_target(32, 64, "peep_lstm") == 1.3
    assert steps.train_target(32, 512, "lstm") is None and steps.train_target(256, 64, "nn.LSTM") is None


def test_train_summary_names_the_worst_case_and_the_misses():
    row = lambda case, what, r, limit: {"section": "train", "case": case, "what": what, "min_ratio": r,
                                        "limit": limit, "target": f"<= {limit:g}" if limit else ""}
    lines = steps.train_summary([row("B=32 H=32 T=41", "lstm", 1.4, None),
                                 row("B=128 H=32 T=81", "lstm", 1.05, 1.0),
                                 row("B=256 H=256 T=41", "lstm", 0.7, 0.8)])
    assert lines == ["worst lstm: 1.40 x nn.LSTM (B=32 H=32 T=41); at B >= 128: 1.05 (B=128 H=32 T=81)",
                     "targets met (ratio of the fastest repeats): 1 of 2; "
                     "missed: lstm B=128 H=32 T=81 1.05 (target <= 1)"]


@pytest.mark.parametrize("argv, message", [
    (["--repeats", "0"], "--repeats=0 is invalid"),
    (["--threads", "-1"], "--threads=-1 is invalid"),
    (["--threads", "100000"], "--threads=100000 is invalid"),
    (["--sweep-steps", "0"], "--sweep-steps=0 is invalid"),
    (["--shared-steps", "0"], "--shared-steps=0 is invalid"),
    (["--pack-steps", "0"], "--pack-steps=0 is invalid"),
    (["--case", "256,256"], "--case='256,256' is invalid"),
    (["--clock", "thread", "--threads", "0"], "--clock='thread' is invalid"),
    (["--case", "256,256,40"], "--case='256,256,40' is invalid"),
    (["--case", "256,256,45"], "--case='256,256,45' is invalid"),
    (["--book", "/bin/ls"], "/bin/ls: not UTF-8 text"),
    (["--book", "/no/such/book.txt"], "--book='/no/such/book.txt' is invalid: expected an existing text file"),
    (["--book", "/tmp"], "--book='/tmp' is invalid: expected an existing text file"),
    pytest.param(["--device", "cuda"], "device='cuda' is invalid: no CUDA device",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")),
])
def test_bad_arguments_are_refused_before_any_timing(capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        rnn_bench.run(argv)
    assert e.value.code == 2
    out, err = capsys.readouterr()
    assert err.startswith(f"rnn-bench: error: {message}") and err.count("\n") == 1 and out == ""


def test_bench_run_splits_a_real_training_run_and_restores_the_loop():
    """A 12-step run: every part is timed (12 steps, the final evaluation, the final checkpoint
    plus the best one), the parts and the rest add up to the whole, and the loop's functions are
    its own again afterwards."""
    import rnn_experiments.training.loop as loop
    originals = (loop.make_step, loop.evaluate, loop.setup, loop.checkpoint.save_run)
    rows = pipeline.bench_run(torch.device("cpu"), steps=12, B=8, H=4, L=2)
    assert (loop.make_step, loop.evaluate, loop.setup, loop.checkpoint.save_run) == originals
    ms = {r["what"].split(" (")[0]: r["median_ms"] for r in rows}
    whats = [r["what"] for r in rows]
    assert "steps (12" in whats[1] and "evaluation (1)" in whats and "batches (12)" in whats
    assert any(w.startswith("checkpoints (") for w in whats)
    parts = ms["steps"] + ms["evaluation"] + ms["checkpoints"] + ms["batches"] + ms["setup"] + ms["rest"]
    assert parts == pytest.approx(ms["train() in all"])
    overhead = rows[-1]
    assert overhead["what"].startswith("overhead") and overhead["ratio"] == pytest.approx(
        ms["train() in all"] / ms["steps"] - 1)


@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
def test_bench_gen_times_100_and_1000_greedy_characters_and_derives_its_ratios(capsys):
    rows = rnn_bench.run(["--only", "gen", "--repeats", "1", "--threads", "1"])
    assert [r["what"] for r in rows] == ["100 chars", "1000 chars", "chars/s (1000)"]
    assert all(r["case"] == "TextGenerator(64->256, 2 layers), 1 thr" for r in rows)
    t100, t1000 = rows[0]["median_ms"], rows[1]["median_ms"]
    assert t100 > 0 and t1000 > 0                     # figures are printed, never compared here
    assert rows[1]["ratio"] == pytest.approx(t1000 / t100) and rows[2]["ratio"] == pytest.approx(1e6 / t1000)
    assert "chars/s (1000)" in capsys.readouterr().out


@pytest.mark.slow   # four demo runs in subprocesses beside busy processes
def test_bench_shared_section_times_the_demo_beside_busy_processes(capsys):
    """The shared row: the demo run with the default threads and with one, beside two busy
    processes the section starts and stops; the ratio is of the two times, the default row names
    the threads that run chose, and the verdict line says whether it held."""
    rows = rnn_bench.run(["--only", "shared", "--quick", "--shared-steps", "5"])
    one, default = rows
    assert one["what"] == "train.threads=1" and re.fullmatch(r"default \(chose \d+ thr\)", default["what"])
    assert default["ratio"] == pytest.approx(default["median_ms"] / one["median_ms"])
    assert default["case"] == "demo lstm, 5 steps, beside 2 busy" and default["limit"] == 1.3
    verdict = "met" if default["ratio"] <= 1.3 else "missed"
    assert (f"shared machine: {default['what']} {default['ratio']:.2f} x train.threads=1 "
            f"(demo lstm, 5 steps, beside 2 busy; target <= 1.3): {verdict}") in capsys.readouterr().out


@pytest.mark.slow   # three real sweeps in subprocesses
def test_the_pack_section_times_a_seeds_sweep_with_each_launcher():
    from rnn_experiments.cli.bench.packs import bench_pack
    case = [("2 seeds B=8 H=8 T=9", ["model.hidden_size=8", "model.embedding_dim=4", "train.batch_size=8",
                                     "dataset.seq_length=2", "seed=0,1"], 1.0, 1 / 3, 1 / 2)]
    rows = bench_pack(steps=5, repeats=1, cases=case, memory_cases=())   # memory: the tests below
    assert [r["what"] for r in rows] == ["basic launcher (1 job at a time)", "joblib 2 jobs x 1 thread",
                                         "packed / basic", "packed, 2 packs x 1 thread / basic", "packed / joblib"]
    basic, joblib, packed = (rows[i]["median_ms"] for i in range(3))
    assert rows[2]["ratio"] == pytest.approx(packed / basic) and rows[4]["ratio"] == pytest.approx(packed / joblib)
    assert all(r["case"] == "2 seeds B=8 H=8 T=9, 5 steps" for r in rows)


def test_the_pack_sections_memory_rows_set_a_packs_peak_beside_k_separate_runs():
    """From given records (MiB): a process's peak is the larger of its high-water mark before
    training and during it; a pack's ratio is its peak over one run's (= K one after the other),
    K side by side is K x one run; the estimate's ratio is over the larger growth of the two
    packs, and the row says whether it bounds it."""
    from rnn_experiments.cli.bench.packs import memory_rows
    rec = lambda before, peak, startup, **more: {"rss_before_mib": before, "peak_rss_mib": peak,
                                                 "startup_mib": startup, **more}
    measured = {"alone": rec(400.0, 410.0, 405.0),
                "stacked": rec(402.0, 450.0, 402.0, strategy="stacked", estimate_mib=60.0),
                "loop": rec(401.0, 420.0, 430.0, strategy="loop", estimate_mib=60.0)}   # startup above training
    rows = memory_rows("4 seeds, memory", 4, measured)
    assert [r["what"] for r in rows] == ["1 run 410 MiB (+10)", "4 side by side 1640 MiB", "stacked 450 MiB (+48)",
                                         "loop 430 MiB (+19)", "estimate 60 MiB"]
    assert rows[2]["ratio"] == pytest.approx(450 / 410) and rows[3]["ratio"] == pytest.approx(430 / 410)
    assert f"{450 / 1640:.2f} x 4 side by side" in rows[2]["target"]
    assert rows[4]["ratio"] == pytest.approx(60 / 48) and rows[4]["target"].endswith(": met")
    measured["stacked"]["peak_rss_mib"] = 480.0                  # grew 78 MiB: more than the 60 estimated
    below = memory_rows("4 seeds, memory", 4, measured)[4]
    assert below["ratio"] == pytest.approx(60 / 78) and below["target"].endswith("NOT an upper bound")
    measured["stacked"]["strategy"] = "loop"                     # stacking fell back: the row says so
    assert memory_rows("4 seeds, memory", 4, measured)[2]["what"].startswith("loop ")


@pytest.mark.slow   # three fresh processes, each training a few steps
def test_the_pack_sections_memory_rows_come_from_fresh_processes():
    """A real tiny case: each way's record comes from its own process, the pack's with the
    launcher's estimate (K x training_bytes), and each figure is at least the process's memory
    before training."""
    from rnn_experiments.cli.bench.packs import WAYS, measure_peak, memory_rows
    from rnn_experiments.config import compose
    from rnn_experiments.training.resources import MiB, training_bytes
    overrides = ["model.hidden_size=8", "model.embedding_dim=4", "train.batch_size=8", "dataset.seq_length=2"]
    records = {way: measure_peak(way, 2, overrides) for way in WAYS}
    for way, r in records.items():
        assert r["peak_rss_since"] == "start" and r["peak_rss_mib"] >= r["rss_before_mib"] > 0, way
    assert records["stacked"]["strategy"] == "stacked" and records["loop"]["strategy"] == "loop"
    cfg = compose(overrides)
    assert records["stacked"]["estimate_mib"] == round(2 * training_bytes(cfg) / MiB, 1)
    rows = memory_rows("2 seeds B=8 H=8 T=9", 2, records)
    assert [r["what"].split(" ")[0] for r in rows] == ["1", "2", "stacked", "loop", "estimate"]
