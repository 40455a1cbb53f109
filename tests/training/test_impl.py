"""The training step's implementation and threads, chosen on this machine (training/impl.py):
untimed, measured once and cached, forced or refused, recorded in summary.json; threads where
other processes share the cores; the progress line when the pace collapses. No timing is
asserted: only which way each choice was made and that it was applied."""
from __future__ import annotations

import json
import logging
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from rnn_experiments.config import validate
from rnn_experiments.errors import ConfigError
from rnn_experiments.models.kernels import measured, native
from rnn_experiments.training import impl, loop
from rnn_experiments.training.loop import train
from rnn_experiments.training.resources import available_cores
from rnn_experiments.training.setup import setup


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """A cache of this test; torch's thread count and the process's record of it given back."""
    monkeypatch.setenv("RNN_EXPERIMENTS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(impl, "others_running", lambda *a, **k: 0.0)      # a quiet machine unless told
    measured.forget()
    threads = torch.get_num_threads()
    yield tmp_path / "cache"
    measured.forget()
    impl._LOWERED.clear()
    torch.set_num_threads(threads)


def chosen(make_cfg, *overrides):
    cfg = make_cfg(*overrides)
    validate(cfg)
    device, data, model, _ = setup(cfg)
    return cfg, data, model, impl.choose_impl(cfg, device, data, model)


def test_a_short_run_is_not_timed_a_long_one_is_measured_once_then_read_from_the_cache(make_cfg, own_cache):
    _, _, model, short = chosen(make_cfg, "train.threads=1")
    assert short["choice"] == "fused" and short["how"].startswith("default: a run of fewer than 200 steps")
    assert short["times_ms"] == {} and model.fused and not measured.cache_file().exists()
    cfg, data, model, first = chosen(make_cfg, "train.steps=200", "train.threads=1")
    assert first["how"] == "measured" and set(first["times_ms"]) <= set(impl.candidates(model))
    assert "fused" in first["times_ms"] and first["key"] == (
        f"step LSTM B=16 H=16 T={data.sample(1)[0].shape[1]} V={data.vocab_size} "
        f"among={','.join(impl.candidates(model))} threads=1")
    entry = json.loads(measured.cache_file().read_text())["choices"][first["key"]]
    assert entry["choice"] == first["choice"]
    measured.forget()                                        # the next run, another process
    _, _, model, again = chosen(make_cfg, "train.steps=200", "train.threads=1")
    assert (again["choice"], again["how"], again["key"]) == (first["choice"], "cached", first["key"])
    assert model.fused == (again["choice"] != "autograd")


@pytest.mark.skipif(native.lib() is None, reason="no compiled loop here: no candidate to add")
def test_a_choice_cached_before_a_candidate_existed_is_measured_again(make_cfg, monkeypatch):
    """The key names the candidates: a cache written when this machine had one fewer (no
    compiler then, an older release) does not keep a run from timing the new one."""
    cfg = make_cfg("train.steps=200", "train.threads=1")
    device, data, model, _ = setup(cfg)
    fewer = {name: a for name, a in impl.candidates(model).items() if name != "fused:native"}
    with monkeypatch.context() as m:
        m.setattr(impl, "candidates", lambda model: fewer)
        measured.remember(impl._key(cfg, data, model, 1), {"choice": "autograd"})
    record = impl.choose_impl(cfg, device, data, model)
    assert record["how"] == "measured" and "among=" in record["key"]
    assert set(record["times_ms"]) == set(impl.candidates(model))


@pytest.mark.parametrize("cached, fused, kernels", [("autograd", False, None),
                                                    ("fused:sigmoid-tanh", True, ("sigmoid", None)),
                                                    pytest.param("fused:native", True, ("native", None), marks=pytest.mark.skipif(
                                                        native.lib() is None, reason="no compiled loop here"))])
def test_the_cached_choice_is_what_the_model_computes_with(make_cfg, cached, fused, kernels):
    cfg = make_cfg("train.steps=500", "train.threads=1")
    device, data, model, _ = setup(cfg)
    measured.remember(impl._key(cfg, data, model, torch.get_num_threads()), {"choice": cached})
    record = impl.choose_impl(cfg, device, data, model)
    assert (record["choice"], record["how"]) == (cached, "cached")
    assert model.fused is fused and model.kernels == kernels


def test_timing_touches_neither_the_run_s_model_nor_its_batches_nor_its_random_numbers(make_cfg):
    cfg = make_cfg("train.steps=200", "model=peep_lstm", "train.threads=1")
    device, data, model, _ = setup(cfg)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    states = (torch.random.get_rng_state(), data.generator.get_state(), random.getstate(), np.random.get_state()[1])
    assert impl.choose_impl(cfg, device, data, model)["how"] == "measured"
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in weights.items())
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.random.get_rng_state(), states[0]) and torch.equal(data.generator.get_state(), states[1])
    assert random.getstate() == states[2] and (np.random.get_state()[1] == states[3]).all()


def test_a_forced_implementation_is_used_untimed_and_a_model_with_one_path_has_nothing_to_choose(make_cfg, own_cache):
    """(With the threads set too: left to choose, they are timed, test_on_a_quiet_machine_...)"""
    _, _, model, record = chosen(make_cfg, "train.steps=500", "train.impl=autograd", "train.threads=1")
    assert (record["choice"], record["how"], model.fused) == ("autograd", "train.impl", False)
    _, _, model, record = chosen(make_cfg, "train.steps=500", "train.impl=fused", "model=bilstm", "train.threads=1")
    assert (record["choice"], record["how"], model.fused, model.kernels) == ("fused", "train.impl", True, None)
    _, _, _, record = chosen(make_cfg, "train.steps=500", "model=gru", "train.threads=1")
    assert (record["choice"], record["how"]) == ("autograd", "the model's only path")
    assert not own_cache.exists()


@pytest.mark.parametrize("overrides, message", [
    (["train.impl=fused", "model=gru"], "train.impl='fused' is invalid: expected auto or autograd for model=gru "
                                        "(GRU has no fused path)"),
    (["train.impl=fast"], "train.impl='fast' is invalid: expected auto (chosen by measurement on this machine), "
                          "fused or autograd"),
    (["train.impl=fused", "device=cuda"], "train.impl='fused' is not used unless the run is on the CPU"),
])
def test_a_forced_implementation_that_does_not_apply_is_refused(make_cfg, overrides, message):
    with pytest.raises(ConfigError) as e:
        validate(make_cfg(*overrides))
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


@pytest.mark.parametrize("others", [0.0, 9.0])          # a quiet machine (threads timed otherwise), a busy one
def test_nothing_is_timed_under_deterministic_algorithms(make_cfg, own_cache, monkeypatch, others):
    cfg = make_cfg("train.steps=500")
    device, data, model, _ = setup(cfg)
    threads = torch.get_num_threads()
    monkeypatch.setattr(torch, "are_deterministic_algorithms_enabled", lambda: True)  # (turning it on costs 2 s)
    monkeypatch.setattr(impl, "others_running", lambda *a, **k: others)
    monkeypatch.setattr(impl._Twin, "step", lambda self, attributes, n: never_timed)
    record = impl.choose_impl(cfg, device, data, model)
    assert (record["choice"], record["how"], record["times_ms"]) == ("fused", "deterministic: not timed", {})
    assert record["threads_how"] == f"torch's default ({threads})" and record["threads"] == torch.get_num_threads()
    assert record["key"] is None and not own_cache.exists()


def never_timed():
    raise AssertionError("a step was timed")


class Clock:
    """A stand-in clock that only the candidates advance: each call takes its scripted time."""

    def __init__(self):
        self.now, self.calls = 0.0, {}

    def __call__(self):
        return self.now

    def candidate(self, name, seconds):
        def run():
            self.calls[name] = self.calls.get(name, 0) + 1
            self.now += seconds
        return run


def scripted(monkeypatch, seconds) -> Clock:
    """The twin's steps take seconds(implementation, threads) on a stand-in clock, which
    measured.measure reads: which candidate wins is the script's, not this machine's."""
    clock, measure = Clock(), measured.measure

    def step(twin, attributes, n):
        name = next(k for k, v in impl.candidates(twin.model).items() if v == attributes)
        return clock.candidate(f"{name} threads={n}", seconds(name, n))
    monkeypatch.setattr(impl._Twin, "step", step)
    monkeypatch.setattr(measured, "measure", lambda *a, **k: measure(*a, **k, clock=clock))
    return clock


def never_timed_twin(monkeypatch):
    monkeypatch.setattr(impl._Twin, "step", lambda self, attributes, n: never_timed)


two_threads = pytest.mark.skipif(available_cores() < 2, reason="one core: one thread is all there is")


@two_threads
def test_on_a_quiet_machine_the_threads_are_measured_with_the_implementation_and_cached(make_cfg, monkeypatch):
    """Every implementation at 1 and at torch's 2 threads, timed in the same rounds: here the
    autograd loop at one thread is scripted 2x faster than the rest. Chosen, applied, recorded,
    cached under threads=auto(2) (no fixed count); the next process reads it; the next run of
    this process (a sweep's next job) starts again from torch's 2 threads."""
    torch.set_num_threads(2)
    clock = scripted(monkeypatch, lambda name, n: 0.5 if (name, n) == ("autograd", 1) else 1.0)
    cfg, data, model, record = chosen(make_cfg, "train.steps=200")
    pairs = {f"{name} threads={n}" for name in impl.candidates(model) for n in (1, 2)}
    assert set(clock.calls) == set(record["times_ms"]) == pairs
    assert (record["choice"], record["how"], record["threads"], record["threads_how"]) == (
        "autograd", "measured", 1, "measured")
    assert torch.get_num_threads() == 1 and model.fused is False
    assert record["key"] == (f"step LSTM B=16 H=16 T={data.sample(1)[0].shape[1]} V={data.vocab_size} "
                             f"among={','.join(impl.candidates(model))} threads=auto(2)")
    assert json.loads(measured.cache_file().read_text())["choices"][record["key"]]["choice"] == "autograd threads=1"
    measured.forget()                                        # another process: read, not timed
    never_timed_twin(monkeypatch)
    _, _, model, again = chosen(make_cfg, "train.steps=200")  # a sweep's next job: torch's 2 threads first
    assert (again["choice"], again["how"], again["threads"], again["threads_how"], again["key"]) == (
        "autograd", "cached", 1, "cached", record["key"])
    assert torch.get_num_threads() == 1 and model.fused is False
    _, _, _, short = chosen(make_cfg, "train.steps=100", "train.batch_size=8")   # another size, too short to time
    assert (short["choice"], short["threads"], short["threads_how"]) == ("fused", 2, "torch's default (2)")
    assert short["key"].endswith("threads=auto(2)") and torch.get_num_threads() == 2


@two_threads
@pytest.mark.parametrize("one_thread_s, chosen_threads", [(0.95, 2), (0.5, 1)])
def test_one_thread_must_beat_the_default_by_the_margin(make_cfg, monkeypatch, one_thread_s, chosen_threads):
    """The default is the fused path at torch's count: one thread 5% faster keeps it (within
    the 10% margin), 2x faster wins."""
    torch.set_num_threads(2)
    scripted(monkeypatch, lambda name, n: one_thread_s if (name, n) == ("fused", 1) else 1.0)
    _, _, model, record = chosen(make_cfg, "train.steps=200")
    assert (record["choice"], record["threads"], torch.get_num_threads()) == ("fused", chosen_threads, chosen_threads)
    assert model.fused is True and model.kernels is None


@two_threads
def test_a_forced_implementation_has_its_threads_measured_under_its_own_key(make_cfg, monkeypatch):
    torch.set_num_threads(2)
    clock = scripted(monkeypatch, lambda name, n: 0.5 if n == 1 else 1.0)
    _, _, model, record = chosen(make_cfg, "train.steps=200", "train.impl=autograd")
    assert set(clock.calls) == {"autograd threads=1", "autograd threads=2"}
    assert (record["choice"], record["how"], record["threads"], record["threads_how"]) == (
        "autograd", "train.impl", 1, "measured")
    assert record["key"].endswith("threads=auto(2) impl=autograd") and model.fused is False
    _, _, _, auto = chosen(make_cfg, "train.steps=200")      # the choice among all is not the forced one's
    assert auto["key"].endswith("threads=auto(2)") and auto["how"] == "measured"


@two_threads
@pytest.mark.parametrize("threads", [1, 2])
def test_forced_threads_are_not_timed(make_cfg, monkeypatch, threads):
    """train.threads=N: only the implementation is timed, at N, under threads=N."""
    torch.set_num_threads(2)
    clock = scripted(monkeypatch, lambda name, n: 0.5 if n != threads else 1.0)
    _, _, model, record = chosen(make_cfg, "train.steps=200", f"train.threads={threads}")
    assert set(clock.calls) == {f"{name} threads={threads}" for name in impl.candidates(model)}
    assert set(record["times_ms"]) == set(impl.candidates(model))       # names without threads
    assert (record["threads"], record["threads_how"], torch.get_num_threads()) == (threads, "train.threads", threads)
    assert record["key"].endswith(f" threads={threads}")


@pytest.mark.skipif(available_cores() < 2, reason="one core: one thread is all there is")
def test_threads_where_other_tasks_share_the_cores_and_given_back_after(make_cfg, monkeypatch):
    """Beside other running tasks: one thread where a parallel call collapses (the probe, here
    scripted), else the step timed both ways; a later quiet run of this process gets torch's count
    back; train.threads is kept as it is."""
    torch.set_num_threads(2)
    monkeypatch.setattr(impl, "others_running", lambda *a, **k: 5.0)
    monkeypatch.setattr(impl, "probe", lambda n: (1e-5, 3e-2))
    _, _, _, collapsed = chosen(make_cfg)
    assert collapsed["threads_how"] == ("1: beside 5.0 other running tasks a parallel call took 30.00 ms with "
                                        "2 threads, 0.010 ms with 1")
    assert collapsed["threads"] == torch.get_num_threads() == 1 and "threads=1" not in collapsed["times_ms"]
    assert collapsed["key"].endswith(" threads=1")          # the implementation: at the count the load left
    monkeypatch.setattr(impl, "probe", lambda n: (1e-5, 2e-5))
    _, _, _, timed = chosen(make_cfg)                        # threads=1 was this process's doing: 2 again
    assert timed["threads_how"] == "timed beside 5.0 other running tasks" and "threads=1" in timed["times_ms"]
    assert torch.get_num_threads() == timed["threads"] in (1, 2)
    torch.set_num_threads(1)                                 # as a lowered earlier run of this process left it
    impl._LOWERED[:] = [(2, 1)]
    monkeypatch.setattr(impl, "others_running", lambda *a, **k: 0.0)
    _, _, _, quiet = chosen(make_cfg)
    assert quiet["threads_how"] == "torch's default (2)" and torch.get_num_threads() == 2
    monkeypatch.setattr(impl, "others_running", lambda *a, **k: 5.0)
    monkeypatch.setattr(impl, "probe", lambda n: (1e-5, 3e-2))
    _, _, _, fixed = chosen(make_cfg, "train.threads=2")
    assert fixed["threads_how"] == "train.threads" and fixed["threads"] == 2


@pytest.mark.skipif(available_cores() < 2, reason="one core: one thread is all there is")
@pytest.mark.parametrize("probe", [(1e-5, 3e-2), (1e-5, 2e-5)], ids=["collapsed", "timed"])
def test_a_long_run_beside_busy_tasks_times_its_implementation_at_the_count_the_load_left(make_cfg, monkeypatch, probe):
    """The implementation is then measured at that count (one thread where the probe collapsed),
    never at a count the run does not use."""
    torch.set_num_threads(2)
    monkeypatch.setattr(impl, "others_running", lambda *a, **k: 5.0)
    monkeypatch.setattr(impl, "probe", lambda n: probe)
    _, _, _, record = chosen(make_cfg, f"train.steps={impl.MIN_STEPS}")
    assert record["how"] == "measured" and record["threads"] == torch.get_num_threads()
    assert record["key"].endswith(f" threads={record['threads']}")
    assert all("threads=" not in name for name in record["times_ms"] if not name.startswith("threads="))


def test_a_thread_of_this_process_that_computes_is_its_own_not_another_task():
    """own_running counts this process's running threads (a thread in a GIL-free product
    included), which others_running leaves out of the machine's count."""
    import threading

    stop = threading.Event()
    a = torch.ones(256, 256)

    def spin():
        with torch.no_grad():
            while not stop.is_set():
                torch.mm(a, a)                               # releases the GIL: state R
    worker = threading.Thread(target=spin)
    worker.start()
    try:
        seen = max(impl.own_running() for _ in range(50))
    finally:
        stop.set()
        worker.join()
    assert seen >= 2 and impl.own_running() >= 1


def test_the_probe_times_a_parallel_call_both_ways_and_restores_the_count():
    threads = torch.get_num_threads()
    state = torch.random.get_rng_state()
    t_one, t_all = impl.probe(threads)
    assert 0 < t_one and 0 < t_all and torch.get_num_threads() == threads
    assert torch.equal(torch.random.get_rng_state(), state)


def test_the_run_records_its_choice_in_summary_json(make_cfg, tmp_path):
    summary = train(make_cfg("train.impl=autograd", "train.threads=1"), tmp_path / "run")
    on_disk = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert on_disk["impl"] == summary["impl"]
    assert set(summary["impl"]) == {"choice", "how", "threads", "threads_how", "key", "times_ms"}
    assert (summary["impl"]["choice"], summary["impl"]["how"]) == ("autograd", "train.impl")
    assert summary["impl"]["threads"] == summary["threads"] == torch.get_num_threads()


@two_threads
def test_the_run_records_the_threads_chosen_with_the_implementation(make_cfg, tmp_path):
    torch.set_num_threads(2)
    cfg = make_cfg()
    device, data, model, _ = setup(cfg)
    measured.remember(impl._key(cfg, data, model, "auto(2)"), {"choice": "fused:sigmoid-tanh threads=1"})
    summary = train(cfg, tmp_path / "run")
    on_disk = json.loads((tmp_path / "run" / "summary.json").read_text())["impl"]
    assert (on_disk["choice"], on_disk["how"], on_disk["threads"], on_disk["threads_how"]) == (
        "fused:sigmoid-tanh", "cached", 1, "cached")
    assert summary["threads"] == 1


def fake_run(cfg, threads_how="torch's default (2)"):
    return SimpleNamespace(cfg=cfg, step=0, t0=0.0, last_report=None,
                           summary={"impl": {"choice": "fused", "how": "cached", "threads": 2, "threads_how": threads_how}})


def report(run, steps, now_s, cpu_s, monkeypatch):
    """A progress line `steps` after the last, at wall time now_s and this process's CPU time cpu_s."""
    monkeypatch.setattr(loop, "_cpu_time", lambda: cpu_s)
    run.step += steps
    loop._report(run, {"loss": 0.5, "accuracy": 0.5, "examples_per_s": 1.0}, False, now_s)


@pytest.mark.skipif(available_cores() < 2, reason="one core: one thread is all there is")
def test_the_progress_line_says_when_the_pace_collapses_and_goes_on_with_one_thread(make_cfg, caplog, monkeypatch):
    """Lines every 10 steps: 1 s apart, then 1.5 s (no word), then 4 s with three times the CPU
    time per step (threads spinning at barriers): a warning, and one thread from there on."""
    torch.set_num_threads(2)
    run = fake_run(make_cfg("train.steps=100"))
    with caplog.at_level(logging.INFO, logger="rnn_experiments.training.loop"):
        report(run, 10, 1.0, 2.0, monkeypatch)
        assert caplog.records[-1].getMessage().endswith(" | step: fused (cached), 2 threads (torch's default (2)) "
                                                        "| ETA 0m09s")
        report(run, 10, 2.0, 4.0, monkeypatch)
        report(run, 10, 3.5, 6.0, monkeypatch)               # 1.5x slower: no word
        assert "slower" not in caplog.text and torch.get_num_threads() == 2
        assert "step:" not in caplog.records[-1].getMessage()          # the first line only
        report(run, 10, 7.5, 12.0, monkeypatch)              # 4x slower than the fastest window, 3x the CPU
    line = caplog.records[-1]
    assert line.levelno == logging.WARNING and "| pace 4x slower than earlier in this run" in line.getMessage()
    assert "1 thread from here (train.threads=1 starts with 1) | ETA" in line.getMessage()
    assert torch.get_num_threads() == 1 and run.summary["impl"]["threads"] == 1
    assert run.summary["impl"]["threads_how"].startswith("lowered to 1 at step 40: the pace collapsed")


@pytest.mark.skipif(available_cores() < 2, reason="one core: one thread is all there is")
def test_with_threads_set_the_progress_line_only_says_what_to_set(make_cfg, caplog, monkeypatch):
    torch.set_num_threads(2)
    run = fake_run(make_cfg("train.steps=100", "train.threads=2"), "train.threads")
    with caplog.at_level(logging.INFO, logger="rnn_experiments.training.loop"):
        for now, cpu in ((1.0, 2.0), (2.0, 4.0), (12.0, 14.0)):
            report(run, 10, now, cpu, monkeypatch)
    message = caplog.records[-1].getMessage()
    assert "| pace 10x slower than earlier in this run: other processes share the cores? with 2 threads" in message
    assert "set train.threads=1 | ETA" in message and torch.get_num_threads() == 2
    assert run.summary["impl"]["threads"] == 2


def test_a_pause_is_not_a_collapse_of_the_threads(make_cfg, caplog, monkeypatch):
    """10 times slower in wall time, the same CPU time per step (a suspended job): said, and the
    threads are left as they are."""
    threads = torch.get_num_threads()
    run = fake_run(make_cfg("train.steps=100"))
    with caplog.at_level(logging.INFO, logger="rnn_experiments.training.loop"):
        for now, cpu in ((1.0, 2.0), (2.0, 4.0), (12.0, 6.0)):
            report(run, 10, now, cpu, monkeypatch)
    assert caplog.records[-1].getMessage().endswith(
        "| pace 10x slower than earlier in this run: the process got no more CPU time per step (suspended, or "
        "other processes share the cores?) | ETA 1m10s")
    assert torch.get_num_threads() == threads and run.summary["impl"]["threads"] == 2
