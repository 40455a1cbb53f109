"""The config tree composes for every choice; presets list their sweeps; bad values fail clearly."""
import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from conftest import CONF_DIR, TINY, compose_config, run_command, text_overrides
from rnn_experiments.config import validate
from rnn_experiments.errors import ConfigError
from rnn_experiments.training.loop import train

MODELS = sorted(p.stem for p in Path(CONF_DIR, "model").glob("*.yaml"))
DATASETS = sorted(p.stem for p in Path(CONF_DIR, "dataset").glob("*.yaml"))
EXPERIMENTS = sorted(p.stem for p in Path(CONF_DIR, "experiment").glob("*.yaml"))


def test_defaults_are_the_course_table_2():
    cfg = compose_config(tiny=False)
    assert (cfg.model.name, cfg.dataset.name, cfg.seed, cfg.device) == ("lstm", "palindrome", 0, "auto")
    t = cfg.train
    assert (t.steps, t.batch_size, t.lr, t.max_norm) == (3000, 256, 1e-4, 10.0)
    assert (cfg.model.hidden_size, cfg.model.init, cfg.dataset.seq_length) == (256, "kaiming_normal", 10)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("dataset", DATASETS)
def test_every_model_and_dataset_composes(model, dataset, tmp_path):
    book = tmp_path / "book.txt"
    book.write_text("a small text for the text datasets. " * 20)
    text = [f"dataset.path={book}", "dataset.gutenberg=false"] if dataset in ("text", "grimm") else []
    cfg = compose_config([f"model={model}", f"dataset={dataset}", *text])
    assert cfg.model.name == model and cfg.dataset.name == dataset
    if (model == "generator") == (dataset in ("text", "grimm")):  # declared by the dataset classes
        validate(cfg)
    else:  # a character model needs text, a classifier a classification task: one clear line
        with pytest.raises(ConfigError, match="^model.name="):
            validate(cfg)


def sweep_of(experiment):
    cfg = compose_config([f"+experiment={experiment}"], tiny=False, return_hydra_config=True)
    params = OmegaConf.to_container(cfg.hydra.sweeper.params or OmegaConf.create({}))
    return cfg, {k: str(v).split(",") for k, v in params.items()}


def test_report_ablation_preset_sweeps_the_three_switches_at_l20():
    cfg, sweep = sweep_of("report_ablation")
    assert sweep == {"model.log_softmax_axis": ["class", "batch"], "model.reset_at_padding": ["false", "true"],
                     "model.init": ["kaiming_normal", "kaiming_normal_fan_out"], "seed": ["0", "1", "2"]}
    assert (cfg.model.name, cfg.dataset.seq_length, cfg.train.steps) == ("lstm", 20, 3000)
    assert cfg.hydra.callbacks.analyze.compare == "model.init"


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_preset_composes(experiment):
    cfg, sweep = sweep_of(experiment)
    assert cfg.experiment_name == experiment
    if cfg.dataset.name == "palindrome":  # text presets: validated with the book in tests/training/test_text_training.py
        validate(cfg)
    assert "seed" in sweep or experiment == "grimm_textgen"  # a single run


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_a_preset_that_sweeps_is_a_multirun_without_dash_m(experiment):
    cfg, sweep = sweep_of(experiment)
    mode = cfg.hydra.mode.name if cfg.hydra.mode is not None else "RUN"
    assert mode == ("MULTIRUN" if sweep else "RUN")


@pytest.mark.slow   # a whole scenario (tests/conftest.py: tiers)
def test_compare_preset_runs_its_sweep_without_dash_m_and_one_job_with_mode_run(tmp_path):
    args = ["+experiment=demo", "model=lstm", *TINY, "train.steps=10", "dataset.seq_length=3", "train.threads=1",
            "~hydra.callbacks.analyze"]
    sweep = run_command("rnn-train", *args, f"hydra.sweep.dir={tmp_path / 'sweep'}")   # no -m
    assert sweep.code == 0, sweep.err[-2000:]
    runs = sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir())
    assert runs == ["0", "1"]                     # the preset's seeds 0, 1 (model=lstm fixed): no analysis/
    assert "Callback" not in sweep.err + sweep.out  # the off switch leaves no half callback for Hydra to warn about
    assert [json.loads((tmp_path / "sweep" / r / "summary.json").read_text())["seed"] for r in runs] == [0, 1]
    one = run_command("rnn-train", *args, "seed=1", "hydra.mode=RUN", f"hydra.run.dir={tmp_path / 'one'}")
    assert one.code == 0, one.err[-2000:]
    assert json.loads((tmp_path / "one" / "summary.json").read_text())["status"] == "completed"


@pytest.mark.parametrize("experiment,model", [("palindrome_lstm", "lstm"), ("palindrome_peep_lstm", "peep_lstm")])
def test_report_figure_presets(experiment, model):
    cfg, sweep = sweep_of(experiment)
    assert cfg.model.name == model
    assert sweep == {"dataset.seq_length": ["10", "20"], "seed": ["0", "1", "2"]}
    assert (cfg.train.steps, cfg.train.lr, cfg.train.batch_size, cfg.model.hidden_size) == (3000, 1e-4, 256, 256)


def test_compare_preset_sweeps_both_models():
    _, sweep = sweep_of("palindrome_compare")
    assert sweep == {"model": ["lstm", "peep_lstm"], "dataset.seq_length": ["10", "20"], "seed": ["0", "1", "2"]}


@pytest.mark.parametrize("override,key", [
    ("model._target_=rnn_experiments.models.no_such.Model", "model._target_"),
    ("model.name=", "model.name"),
    ("dataset.seq_length=0", "dataset.seq_length"),
    ("train.batch_size=0", "train.batch_size"),
    ("train.lr=-0.1", "train.lr"),
    ("train.lr=0", "train.lr"),
    ("train.steps=0", "train.steps"),
    ("train.max_norm=0", "train.max_norm"),
    ("model.hidden_size=0", "model.hidden_size"),
    ("model=generator model.dropout=1.0", "model.dropout"),
    ("model.hidden_size=abc", "model.hidden_size"),
    ("+model.num_layers=2", "model.num_layers"),
    ("model=generator model.init=kaiming_normal_fan_out", "model.init"),
    ("model.init=orthogonal", "model.init"),
    ("device=tpu", "device"),
    ("train.threads=-1", "train.threads"),
    ("seed=-1", "seed"),
    ("seed=4294967296", "seed"),
    ("dataset.eval_seed=-1", "dataset.eval_seed"),
    ("train.lr=inf", "train.lr"),
    ("train.lr=nan", "train.lr"),
    ("train.max_norm=inf", "train.max_norm"),
    ("model.log_softmax_axis=rows", "model.log_softmax_axis"),
    ("+model.reset_at_padding=true model=peep_lstm", "model.reset_at_padding"),
    ("+model.vocab_size=3", "model.vocab_size"),
    ("model.reset_at_padding=true dataset=random_comb", "model.reset_at_padding"),
])
def test_bad_values_name_the_key(override, key):
    cfg = compose_config(override.split())
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    message = str(err.value)
    assert message.startswith(f"{key}=") and "expected" in message and "\n" not in message


def test_wrong_type_or_unknown_key_is_rejected_while_composing():
    with pytest.raises(Exception, match="train.lr"):
        compose_config(["train.lr=fast"])
    with pytest.raises(Exception, match="num_classes"):  # the task knows its classes
        compose_config(["dataset.num_classes=3"])


def test_cfg_job_prints_the_composed_config():
    proc = run_command("rnn-train", "model=peep_lstm", "dataset.seq_length=20", "--cfg", "job")
    assert proc.code == 0, proc.err
    cfg = OmegaConf.create(proc.out)
    assert cfg.model.name == "peep_lstm" and cfg.dataset.seq_length == 20


def test_text_dataset_config_errors(make_cfg, tiny_text, tmp_path):
    with pytest.raises(ConfigError, match="dataset.path"):
        train(make_cfg("model=generator", "dataset=text"), tmp_path / "a")
    with pytest.raises(ConfigError, match="model.name='lstm'"):
        train(make_cfg("dataset=text", f"dataset.path={tiny_text}"), tmp_path / "b")
    with pytest.raises(ConfigError, match="sample.temperatures"):
        train(make_cfg(*text_overrides(tiny_text, "sample.enabled=true", "sample.temperatures=[1.0,0]")),
              tmp_path / "c")


def test_grimm_preset_composes_the_report_settings(make_cfg):
    cfg = make_cfg("+experiment=grimm_textgen", tiny=False)
    assert (cfg.model.name, cfg.model.num_layers, cfg.model.hidden_size, cfg.model.embedding_dim) == \
        ("generator", 2, 256, 64)
    assert (cfg.train.steps, cfg.train.batch_size, cfg.train.lr, cfg.train.max_norm) == (5000, 64, 2e-3, 5.0)
    assert cfg.dataset.name == "grimm" and cfg.dataset.seq_length == 30
    assert list(cfg.sample.starts) == list("tauvg") and list(cfg.sample.temperatures) == [2.0, 1.0, 0.5]
