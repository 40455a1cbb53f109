"""`logger=wandb`: the calls the logger makes to W&B (a recording stand-in for the `wandb` module)
checked against metrics.csv and summary.json, a resumed run continuing its W&B run, a missing
extra refused in one line; and one real offline run (slow tier) that must leave its run folder."""
import json
import sys
import types

import pytest

from rnn_experiments.errors import ConfigError
from rnn_experiments.loggers import loggers_from_config
from rnn_experiments.run.metrics import read_metrics
from rnn_experiments.run.redact import REDACTED
from rnn_experiments.training.loop import train

SECRET = "s3cr3t-name-from-the-environment"


class FakeRun:
    def __init__(self, calls, kwargs):
        self.calls, self.kwargs, self.summary, self.id = calls, kwargs, {}, kwargs.get("id", "analysis1")
        self.step = kwargs.pop("_step", 0)

    def log(self, data, step=None):
        self.calls.append(("log", dict(data), step))

    def save(self, path, base_path=None, policy="live"):
        self.calls.append(("save", path, base_path, policy))

    def finish(self, exit_code=None):
        self.calls.append(("finish", exit_code))


def fake_wandb(calls, step=0):
    """A stand-in for the `wandb` module that records what the logger asks of it."""
    module = types.ModuleType("wandb")
    module.Settings = lambda **kw: ("Settings", kw)
    module.Image = lambda path: ("Image", path)

    def init(**kwargs):
        run = FakeRun(calls, {**kwargs, "_step": step})
        calls.append(("init", kwargs))
        return run
    module.init = init
    return module


def test_the_calls_match_metrics_csv_and_summary_json_and_carry_no_secret(make_cfg, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "wandb", fake_wandb(calls))
    monkeypatch.setenv("RNN_TEST_SECRET", SECRET)
    cfg = make_cfg("logger=wandb", "logger.wandb.mode=offline", "experiment_name=${oc.env:RNN_TEST_SECRET}",
                   "train.checkpoint_every=10")
    (sink,) = loggers_from_config(cfg)
    summary = train(cfg, tmp_path, sinks=[sink])
    (_, init), *logs, finish = calls
    assert init["mode"] == "offline" and init["dir"] == str(tmp_path) and init["job_type"] == "train"
    assert init["group"] is None and init["name"] == tmp_path.name and init["resume"] == "allow"   # a single run
    assert init["id"] == json.loads((tmp_path / "wandb" / "run.json").read_text())["id"]
    assert init["config"]["model"]["hidden_size"] == 16 and init["config"]["train"]["steps"] == 20
    assert init["config"]["experiment_name"] == REDACTED and init["project"] == REDACTED   # never the secret
    assert {"version.torch", "version.rnn-experiments", "command"} <= set(init["config"]["provenance"])
    df = read_metrics(tmp_path / "metrics.csv")
    expected = [("log", {c: pytest.approx(float(r[c]), rel=1e-6) for c in df.columns if c != "step" and r[c] == r[c]},
                 int(r["step"])) for _, r in df.iterrows()]
    assert logs == expected                                   # every row, at its step, value by value
    assert finish == ("finish", 0)
    for key in ("final_loss", "final_eval_accuracy", "best_accuracy", "wall_time_s", "num_params"):
        assert sink.run.summary[key] == pytest.approx(summary[key])
    assert sink.run.summary["status"] == "completed"
    for record in (tmp_path / "summary.json", tmp_path / "checkpoint.pt"):   # the run's records: no secret
        assert SECRET.encode() not in record.read_bytes()


def test_a_resumed_run_continues_its_wandb_run_without_sending_a_step_twice(make_cfg, tmp_path, monkeypatch):
    calls = []
    (tmp_path / "wandb").mkdir()
    (tmp_path / "wandb" / "run.json").write_text(json.dumps({"id": "abc123", "project": "p"}))
    monkeypatch.setitem(sys.modules, "wandb", fake_wandb(calls, step=15))   # W&B has steps up to 14
    from rnn_experiments.loggers.wandb import WandbLogger
    sink = WandbLogger(mode="offline")
    rows = [{"step": s, "loss": 1.0 / s} for s in (5, 10, 15)]     # a checkpoint's rows
    sink.open(tmp_path, rows)
    sink.write({"step": 20, "loss": 0.05})
    assert calls[0][1]["id"] == "abc123" and calls[0][1]["resume"] == "allow"
    assert [c[2] for c in calls[1:]] == [15, 20]                 # what W&B lacked, in order


def test_a_missing_extra_is_refused_in_one_line(make_cfg, monkeypatch):
    from rnn_experiments.extras import check_command_line
    monkeypatch.setitem(sys.modules, "wandb", None)   # as if not installed
    with pytest.raises(ConfigError) as e:
        loggers_from_config(make_cfg("logger=wandb"))
    assert str(e.value) == ('logger=wandb needs wandb, which is not installed: '
                            'pip install "rnn-experiments[wandb]" (or pip install wandb)')
    with pytest.raises(ConfigError, match=r'^logger=\[tensorboard,wandb\] needs wandb, which is not installed'):
        check_command_line(["-m", "seed=0,1", "logger=[tensorboard,wandb]"])   # before any job, before Hydra
    with pytest.raises(ConfigError, match=r"^logger.wandb.mode='cloud' is invalid: expected one of online, offline"):
        monkeypatch.delitem(sys.modules, "wandb")
        monkeypatch.setitem(sys.modules, "wandb", fake_wandb([]))
        loggers_from_config(make_cfg("logger=wandb", "logger.wandb.mode=cloud"))


def test_the_sweeps_analysis_becomes_a_run_of_its_group(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setitem(sys.modules, "wandb", fake_wandb(calls))
    from rnn_experiments.loggers.wandb import WandbLogger
    sweep = tmp_path / "2026-12-07" / "10-00-00_demo"
    (sweep / "analysis").mkdir(parents=True)
    for name in ("loss.png", "compare.md", ".rnn-analyze.json"):
        (sweep / "analysis" / name).write_text("x")
    WandbLogger(project="p").sweep_ended(sweep, sweep / "analysis")
    (_, init), log, *saves, finish = calls
    assert (init["group"], init["job_type"], init["name"]) == ("2026-12-07/10-00-00_demo", "analysis", "analysis")
    assert log == ("log", {"analysis/loss": ("Image", str(sweep / "analysis" / "loss.png"))}, None)
    assert saves == [("save", str(sweep / "analysis" / "*"), str(sweep), "now")]   # the folder's files (glob: not hidden ones)
    assert finish == ("finish", None)


@pytest.mark.slow   # W&B's own service process starts (seconds)
def test_a_real_offline_run_leaves_its_run_folder(make_cfg, tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="needs the [wandb] extra (in [dev]; .ci/run installs it)")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "elsewhere"))   # the logger's dir wins: the run folder
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = make_cfg("logger=wandb")
    (sink,) = loggers_from_config(cfg)
    train(cfg, tmp_path, sinks=[sink])
    run_id = json.loads((tmp_path / "wandb" / "run.json").read_text())["id"]
    (folder,) = (tmp_path / "wandb").glob(f"offline-run-*-{run_id}")
    data = folder / f"run-{run_id}.wandb"
    assert data.is_file() and data.stat().st_size > 0     # W&B's binary record (read back by `wandb sync`)
    assert sink.run.offline and sink.run.id == run_id and sink.finished
