"""Choices by measurement, cached per user (rnn_experiments/models/kernels/measured.py): the
timing rule on a scripted clock (no real timing is asserted), and the cache file."""
from __future__ import annotations

import json
import logging

import pytest
import torch

from rnn_experiments.models.kernels import measured


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """A cache folder of this test, read afresh."""
    monkeypatch.setenv("RNN_EXPERIMENTS_CACHE", str(tmp_path / "cache"))
    measured.forget()
    yield tmp_path / "cache"
    measured.forget()


class Clock:
    """A clock that only the candidates advance: each call of a candidate takes its scripted time."""

    def __init__(self):
        self.now, self.calls = 0.0, {}

    def __call__(self):
        return self.now

    def candidate(self, name, *seconds):
        """A candidate whose calls take these times in turn (the last one repeated)."""
        def run():
            n = self.calls.get(name, 0)
            self.calls[name] = n + 1
            self.now += seconds[min(n, len(seconds) - 1)]
        return run


def never_called(name):
    def run():
        raise AssertionError(f"{name} was timed")
    return run


def test_a_clearly_faster_candidate_wins_and_a_slightly_faster_one_does_not():
    clock = Clock()
    choice, times = measured.measure({"a": clock.candidate("a", 1.0), "b": clock.candidate("b", 0.5)}, "a",
                                     clock=clock)
    assert choice == "b" and times == {"a": [1.0, 1.0], "b": [0.5, 0.5]}
    assert clock.calls == {"a": 5, "b": 5}                  # a warm-up, then 2 rounds of 2, interleaved
    clock = Clock()
    choice, _ = measured.measure({"a": clock.candidate("a", 1.0), "b": clock.candidate("b", 0.95)}, "a",
                                 clock=clock)
    assert choice == "a"                                    # 5% faster: within the margin (10%)


def test_the_winner_must_beat_the_default_in_every_round():
    """Fast in one round only (noise): the default stays."""
    clock = Clock()
    choice, times = measured.measure({"a": clock.candidate("a", 1.0),
                                      "b": clock.candidate("b", 1.0, 0.5, 0.5, 1.0, 1.0)}, "a", clock=clock)
    assert times["b"] == [0.5, 1.0] and choice == "a"


def test_a_hopeless_candidate_is_timed_once_and_the_default_always_stays():
    """A candidate whose warm-up is far slower (two threads on busy cores) is not timed again,
    and its warm-up is its time; the default is timed in every round even when it is slow."""
    clock = Clock()
    choice, times = measured.measure({"one": clock.candidate("one", 1.0), "two": clock.candidate("two", 30.0)},
                                     "one", clock=clock)
    assert choice == "one" and clock.calls["two"] == 1 and times["two"] == [30.0]
    clock = Clock()
    choice, times = measured.measure({"slow": clock.candidate("slow", 30.0), "fast": clock.candidate("fast", 1.0)},
                                     "slow", clock=clock)
    assert choice == "fast" and len(times["slow"]) == 2


def test_a_miss_is_measured_and_written_and_a_hit_is_read_without_timing(own_cache):
    clock = Clock()
    choice, how, times = measured.choose("k", {"a": clock.candidate("a", 1.0), "b": clock.candidate("b", 0.1)}, "a",
                                         clock=clock)
    assert (choice, how, times) == ("b", "measured", {"a": 1000.0, "b": 100.0})
    (path,) = own_cache.iterdir()
    assert path == measured.cache_file()
    data = json.loads(path.read_text())
    assert data["cpu"] == measured.cpu_name() and data["torch"] == torch.__version__
    assert data["choices"]["k"]["choice"] == "b" and data["choices"]["k"]["times_ms"] == {"a": 1000.0, "b": 100.0}
    measured.forget()                                        # another process: reads the file
    assert measured.choose("k", {"a": never_called("a"), "b": never_called("b")}, "a")[:2] == ("b", "cached")
    # a cached choice that is no longer a candidate is measured again
    clock = Clock()
    assert measured.choose("k", {"a": clock.candidate("a", 1.0), "c": clock.candidate("c", 1.0)}, "a",
                           clock=clock)[:2] == ("a", "measured")


def test_the_cache_file_is_per_cpu_model_and_torch_version(own_cache, monkeypatch):
    here = measured.cache_file()
    assert measured.cache_file("Other CPU (family 1, model 2)") != here
    assert measured.cache_file(version="1.0.0") != here
    assert here.parent == own_cache
    monkeypatch.delenv("RNN_EXPERIMENTS_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(own_cache / "xdg"))
    assert measured.cache_file().parent == own_cache / "xdg" / "rnn-experiments"


def test_a_file_written_for_another_cpu_or_torch_is_not_used(own_cache, caplog):
    path = measured.cache_file()
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"cpu": "Another CPU", "torch": torch.__version__, "choices": {"k": {"choice": "b"}}}))
    clock = Clock()
    with caplog.at_level(logging.WARNING):
        choice, how, _ = measured.choose("k", {"a": clock.candidate("a", 1.0), "b": clock.candidate("b", 1.0)}, "a",
                                         clock=clock)
    assert (choice, how) == ("a", "measured") and "another CPU or torch" in caplog.text
    assert json.loads(path.read_text())["cpu"] == measured.cpu_name()


@pytest.mark.parametrize("text", ["{\"choices\": {\"k\": ", "[1, 2]", "\x00\x01"])
def test_a_corrupt_cache_file_costs_one_line_and_is_rewritten(own_cache, caplog, text):
    path = measured.cache_file()
    path.parent.mkdir(parents=True)
    path.write_text(text)
    clock = Clock()
    with caplog.at_level(logging.WARNING):
        choice, how, _ = measured.choose("k", {"a": clock.candidate("a", 1.0), "b": clock.candidate("b", 0.1)}, "a",
                                         clock=clock)
    assert (choice, how) == ("b", "measured")
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "corrupt" in warnings[0].getMessage() and "rewritten" in warnings[0].getMessage()
    assert json.loads(path.read_text())["choices"]["k"]["choice"] == "b"
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]   # no temporary file left


def test_an_unwritable_cache_costs_one_line_and_the_choice_still_holds(own_cache, unwritable_dir, monkeypatch, caplog):
    monkeypatch.setenv("RNN_EXPERIMENTS_CACHE", str(unwritable_dir / "cache"))
    clock = Clock()
    with caplog.at_level(logging.WARNING):
        choice, how, _ = measured.choose("k", {"a": clock.candidate("a", 1.0), "b": clock.candidate("b", 0.1)}, "a",
                                         clock=clock)
    assert (choice, how) == ("b", "measured") and "cannot write" in caplog.text
    assert measured.choose("k", {"a": never_called("a"), "b": never_called("b")}, "a")[:2] == ("b", "cached")


def test_entries_other_processes_wrote_meanwhile_are_kept(own_cache):
    clock = Clock()
    measured.choose("mine", {"a": clock.candidate("a", 1.0)}, "a", clock=clock)
    path = measured.cache_file()
    data = json.loads(path.read_text())
    data["choices"]["theirs"] = {"choice": "x"}              # another process, after this one read it
    path.write_text(json.dumps(data))
    measured.choose("mine too", {"a": clock.candidate("a", 1.0)}, "a", clock=clock)
    assert set(json.loads(path.read_text())["choices"]) == {"mine", "theirs", "mine too"}


def test_nothing_is_timed_or_written_under_deterministic_algorithms(own_cache, monkeypatch):
    monkeypatch.setattr(torch, "are_deterministic_algorithms_enabled", lambda: True)  # (turning it on costs 2 s)
    assert measured.choose("k", {"a": never_called("a"), "b": never_called("b")}, "a") == ("a", "deterministic", {})
    assert not own_cache.exists()
