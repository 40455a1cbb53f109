"""Secrets stay home (rnn_experiments/run/redact.py): a setting whose name looks secret, or whose
value came from ${oc.env:...} (directly, inside a text, or through other settings), is never in
clear in what a run records (.hydra/, summary.json, checkpoint.pt) or sends to a tracker."""
import pytest
from omegaconf import OmegaConf

from rnn_experiments.run.redact import (REDACTED, redact_command, redact_text, redacted_record, redacted_values,
                                        secret_key)

SECRET = "s3cr3t-from-the-environment"


@pytest.mark.parametrize("name, secret", [
    ("api_key", True), ("apiKey", True), ("WANDB_API_KEY", True), ("logger.x.token", True),
    ("db_password", True), ("client-secret", True), ("auth", True), ("credentials", True),
    ("exclude_keys", False), ("hidden_size", False), ("tokenizer", False), ("kv_sep", False),
    ("monkey", False), ("keyboard", False), ("seed", False)])
def test_which_names_are_secret(name, secret):
    assert secret_key(name) is secret


def config(monkeypatch):
    monkeypatch.setenv("RNN_TEST_SECRET", SECRET)
    return OmegaConf.create({
        "db": {"api_key": "literal-key", "from_env": "${oc.env:RNN_TEST_SECRET}", "url": "https://u:${db.from_env}@host",
               "port": 5432, "exclude_keys": ["seed"]},
        "copy": "${db.api_key}", "sibling": {"a": "${oc.env:RNN_TEST_SECRET,none}", "b": "${.a}"},
        "auth": {"user": "me"}, "model": {"hidden_size": 16, "name": "lstm"}})


def test_a_tracker_gets_no_secret_value_however_it_is_reached(monkeypatch):
    values = redacted_values(config(monkeypatch))
    assert values == {
        "db": {"api_key": REDACTED, "from_env": REDACTED, "url": REDACTED, "port": 5432, "exclude_keys": ["seed"]},
        "copy": REDACTED, "sibling": {"a": REDACTED, "b": REDACTED},
        "auth": {"user": REDACTED}, "model": {"hidden_size": 16, "name": "lstm"}}
    assert SECRET not in str(values) and "literal-key" not in str(values)


def test_the_recorded_config_keeps_interpolations_and_hides_literal_secrets(monkeypatch):
    cfg = config(monkeypatch)
    cfg.overrides = ["seed=1", "+wandb.api_key=abc", "model.hidden_size=3"]
    cfg.override_dirname = "api_key=abc,seed=1"
    record = OmegaConf.to_yaml(redacted_record(cfg))
    back = OmegaConf.create(record)
    assert back.db.api_key == REDACTED and back.auth.user == REDACTED
    assert OmegaConf.to_container(back.db)["from_env"] == "${oc.env:RNN_TEST_SECRET}"   # the variable's name, not its value
    assert back.db.from_env == SECRET          # ... so the record still resolves where the variable is set
    assert list(back.overrides) == ["seed=1", f"+wandb.api_key={REDACTED}", "model.hidden_size=3"]
    assert back.override_dirname == f"api_key={REDACTED},seed=1"
    assert "abc" not in record and "literal-key" not in record and SECRET not in record
    assert cfg.db.api_key == "literal-key"     # the run's own config is untouched


def test_command_lines_and_override_texts_hide_secret_values():
    assert redact_command("python -m rnn_experiments.train -m api_key=abc seed=0,1 '+logger.x.token=a b'") == \
        f"python -m rnn_experiments.train -m 'api_key={REDACTED}' seed=0,1 '+logger.x.token={REDACTED}'"
    assert redact_command("rnn-train model=gru seed=1") == "rnn-train model=gru seed=1"
    assert redact_text("model=lstm,db_password=hunter2,seed=0") == f"model=lstm,db_password={REDACTED},seed=0"
    assert redact_command("rnn-train logger=mlflow logger.mlflow.tracking_uri=https://me:hunter2@host:5000/x") == \
        f"rnn-train logger=mlflow 'logger.mlflow.tracking_uri=https://me:{REDACTED}@host:5000/x'"
    assert redacted_record(OmegaConf.create({"uri": "postgresql://me:hunter2@db/mlflow"})).uri == \
        f"postgresql://me:{REDACTED}@db/mlflow"


def test_the_full_config_has_no_false_secret():
    """Nothing of the project's own config (Hydra's node included) is taken for a secret."""
    from conftest import compose_config
    from rnn_experiments.run.redact import secret_paths
    cfg = compose_config(["+experiment=demo", "logger=[mlflow,wandb]"], return_hydra_config=True)
    assert secret_paths(cfg) == {}
