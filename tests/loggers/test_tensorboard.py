"""Metrics sinks (trackers beside metrics.csv) and `logger=tensorboard`: the same scalars as
metrics.csv, one TensorBoard run per job, a sweep's runs under one folder, a one-line error
without the extra."""
import sys

import pytest

from conftest import TINY, compose_config, run_command
from rnn_experiments.errors import ConfigError
from rnn_experiments.loggers import loggers_from_config
from rnn_experiments.training.loop import train
from rnn_experiments.run.metrics import COLUMNS, MetricsWriter, read_metrics


class Recorder:
    def __init__(self):
        self.calls = []

    def open(self, out_dir, rows):
        self.calls.append(("open", out_dir, rows))

    def write(self, row):
        self.calls.append(("write", row))

    def close(self):
        self.calls.append(("close",))


class Broken:
    def write(self, row):
        raise OSError("disk of the tracker is full")


def test_sinks_get_every_row_as_written_and_a_failing_sink_is_dropped(tmp_path):
    start = [{k: 1 for k in COLUMNS}]
    rec, broken = Recorder(), Broken()
    writer = MetricsWriter(tmp_path / "metrics.csv", start, sinks=[broken, rec])
    writer.write({"step": 2, "loss": 0.5, "accuracy": 0.75})
    writer.write({"step": 3, "loss": 0.25, "accuracy": 1.0, "eval_accuracy": 0.9})
    writer.close()
    assert writer.sinks == [rec]                      # dropped after its first failure
    assert rec.calls[0] == ("open", tmp_path, start) and rec.calls[-1] == ("close",)
    assert [c[1] for c in rec.calls[1:-1]] == writer.rows[1:]
    assert read_metrics(tmp_path / "metrics.csv").step.tolist() == [1, 2, 3]   # the record is whole


def test_no_logger_by_default_and_one_line_errors(make_cfg):
    assert loggers_from_config(make_cfg()) == []
    with pytest.raises(ConfigError, match=r"^logger.mine: Error locating target 'nowhere.Logger'") as e:
        loggers_from_config(make_cfg("+logger.mine._target_=nowhere.Logger"))
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match=r"^logger.mine is invalid: expected a node with _target_"):
        loggers_from_config(make_cfg("+logger.mine.dir=x"))


def test_missing_extra_is_one_line_naming_the_install(make_cfg, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)   # as if not installed
    with pytest.raises(ConfigError) as e:
        loggers_from_config(make_cfg("logger=tensorboard"))
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("logger=tensorboard needs tensorboard, which is not installed")
    assert 'pip install "rnn-experiments[tensorboard]"' in msg


def test_missing_extra_refuses_the_command_before_any_job(monkeypatch):
    """A sweep with logger=tensorboard and no tensorboard: refused before Hydra starts, not job by job."""
    from rnn_experiments.extras import TENSORBOARD, check_command_line
    monkeypatch.setitem(sys.modules, TENSORBOARD, None)   # as if not installed
    with pytest.raises(ConfigError) as e:
        check_command_line(["-m", "seed=0,1", "logger=tensorboard"])
    assert str(e.value).startswith("logger=tensorboard needs tensorboard, which is not installed")
    assert "\n" not in str(e.value)
    check_command_line(["-m", "seed=0,1", "model=lstm"])   # nothing asked for: nothing needed
    monkeypatch.delitem(sys.modules, TENSORBOARD)
    check_command_line(["-m", "seed=0,1", "logger=tensorboard"])   # installed here (dev extra)


def scalars(log_dir):
    """{tag: [(step, value)]} of the TensorBoard run in `log_dir`, as TensorBoard reads it."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


def as_in_csv(df):
    return {c: [(int(s), pytest.approx(float(v), rel=1e-6)) for s, v in zip(df.step, df[c]) if v == v]
            for c in COLUMNS if c != "step" and df[c].notna().any()}   # eval_bpc: text runs only


def test_tensorboard_has_the_scalars_of_metrics_csv(make_cfg, tmp_path):
    pytest.importorskip("tensorboard")
    (sink,) = loggers_from_config(make_cfg("logger=tensorboard"))
    train(make_cfg(), tmp_path, sinks=[sink])
    assert sink.log_dir == tmp_path / "tensorboard"     # a single run: no sub-folder
    df = read_metrics(tmp_path / "metrics.csv")
    got = scalars(tmp_path / "tensorboard")
    assert set(got) == set(COLUMNS) - {"step", "eval_bpc"}          # a classifier: no bits per character
    assert got == as_in_csv(df)
    assert [s for s, _ in got["eval_accuracy"]] == [10, 20]   # only the evaluated rows


def test_a_resumed_run_hides_tensorboard_steps_past_its_checkpoint(tmp_path):
    pytest.importorskip("tensorboard")
    from rnn_experiments.loggers.tensorboard import TensorBoardLogger

    def row(step, loss):
        return {**{k: "" for k in COLUMNS}, "step": step, "loss": loss}

    first = TensorBoardLogger(name="")
    first.open(tmp_path, [])
    for step in (5, 10, 15):               # a run killed after step 15, its checkpoint at step 10
        first.write(row(step, 1.0))
    first.close()
    again = TensorBoardLogger(name="")
    again.open(tmp_path, [row(5, 1.0), row(10, 1.0)])
    again.write(row(15, 0.5))
    again.close()
    assert scalars(tmp_path / "tensorboard")["loss"] == [(5, 1.0), (10, 1.0), (15, 0.5)]


@pytest.mark.slow   # a whole scenario (tests/conftest.py: tiers)
def test_a_sweep_with_logger_tensorboard_opens_as_one_tensorboard_folder(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
    sweep = tmp_path / "sweep"
    done = run_command("rnn-train", "-m", "logger=tensorboard", "seed=0,1", *TINY, "train.threads=1",
                       f"hydra.sweep.dir={sweep}")
    assert done.code == 0, done.err[-2000:]
    mux = EventMultiplexer().AddRunsFromDirectory(str(sweep))   # tensorboard --logdir SWEEP
    mux.Reload()
    runs = sorted(mux.Runs())
    assert len(runs) == 2
    for job, run in zip("01", runs):
        assert run.startswith(f"{job}/tensorboard/") and f"seed={job}" in run and "logger=" not in run
        df = read_metrics(sweep / job / "metrics.csv")
        got = {t: [(e.step, e.value) for e in mux.Scalars(run, t)] for t in mux.Runs()[run]["scalars"]}
        assert got == as_in_csv(df)


def test_a_sweep_jobs_tensorboard_run_is_named_by_the_overrides_that_tell_it_apart(monkeypatch):
    """In a job of a sweep: its overrides, less those every job shares (logger, experiment), with
    path separators replaced; a single run has no name of its own."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import OmegaConf

    from rnn_experiments.loggers.tensorboard import job_name
    monkeypatch.delenv("RNN_EXPERIMENTS_SWEPT_KEYS", raising=False)   # no sweep guard ran: every override
    task = ["logger=tensorboard", "+experiment=demo", "model=lstm", "seed=0", "dataset.path=a/b:c"]
    cfg = compose_config(["logger=tensorboard"], return_hydra_config=True)
    OmegaConf.set_readonly(cfg.hydra, False)     # Hydra's node is read-only
    cfg.hydra.mode, cfg.hydra.overrides.task = RunMode.MULTIRUN, task
    try:
        HydraConfig.instance().set_config(cfg)
        assert job_name() == "model=lstm,seed=0,dataset.path=a_b_c"
        monkeypatch.setenv("RNN_EXPERIMENTS_SWEPT_KEYS", "model,seed")   # as the sweep guard sets it
        assert job_name() == "model=lstm,seed=0"                           # what differs between the jobs
        OmegaConf.set_readonly(cfg.hydra, False)
        cfg.hydra.mode = RunMode.RUN
        HydraConfig.instance().set_config(cfg)
        assert job_name() == ""
    finally:
        HydraConfig.instance().cfg = None


@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
def test_a_sweeps_runs_feed_the_hparams_dashboard(tmp_path):
    """Each job's TensorBoard run carries its hparams (the swept keys' values, numbers as numbers)
    and names the metrics the dashboard compares; read back with TensorBoard's own reader."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2
    sweep = tmp_path / "sweep"
    done = run_command("rnn-train", "-m", "logger=tensorboard", "seed=0,1", "train.lr=1e-3", *TINY,
                       f"hydra.sweep.dir={sweep}")
    assert done.code == 0, done.err[-2000:]
    for job in "01":
        run, = (sweep / job / "tensorboard").iterdir()
        assert run.name == f"seed={job}"                        # the swept key only, not TINY's settings
        acc = EventAccumulator(str(run))
        acc.Reload()
        content = acc.PluginTagToContent("hparams")
        start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
        assert dict(start.session_start_info.hparams) .keys() == {"seed"}
        assert start.session_start_info.hparams["seed"].number_value == int(job)
        exp = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
        assert [m.name.tag for m in exp.metric_infos] == ["accuracy", "loss", "eval_accuracy", "eval_loss"]
        assert set(acc.Tags()["scalars"]) >= {"accuracy", "loss", "eval_accuracy", "eval_loss"}
