"""A model and a task of a user's own, from docs/extending.md's worked example (its files written
into a folder that is put on sys.path, as `export PYTHONPATH=$PWD` does), through the same
commands as the built-ins: a run that learns, a sweep against a built-in compared paired by seed,
a resume, --help; and the refusals of a part that does not fit (an unknown argument, **kwargs,
a class that cannot be imported), each one line with nothing written."""
from __future__ import annotations

import json
import sys

import pandas as pd
import pytest
from omegaconf import OmegaConf

import doc_commands as dc
from conftest import ROOT, TINY, run_command
from rnn_experiments.errors import ConfigError
from rnn_experiments.parts import FORMER_TARGETS, check_part, upgrade

PAGE = ROOT / "docs" / "extending.md"
EASY = ["dataset.seq_length=2", "train.lr=1e-2", "train.batch_size=64"]   # parity of 2 bits: XOR


@pytest.fixture
def project(tmp_path, monkeypatch):
    """The page's files (my_parts/, my_configs/) in a folder on sys.path."""
    for path, text in dc.files(PAGE):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m == "my_parts" or m.startswith("my_parts.")]:
        monkeypatch.delitem(sys.modules, name)   # another test's folder of the same name
    yield tmp_path
    for name in [m for m in sys.modules if m == "my_parts" or m.startswith("my_parts.")]:
        del sys.modules[name]


def train(project, *args):
    flags = [a for a in args if a.startswith("-")]          # -m before the overrides, as Hydra parses them
    return run_command("rnn-train", *flags, "--config-dir", str(project / "my_configs"), *TINY,
                       *[a for a in args if not a.startswith("-")], cwd=project)


def test_a_users_model_learns_a_users_task(project):
    run = project / "run"
    r = train(project, "model=ln_lstm", "dataset=parity", *EASY, "train.steps=150", "train.eval_every=50",
              f"hydra.run.dir={run}")
    assert r.code == 0, r.err[-2000:]
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["status"], summary["model"], summary["dataset"]) == ("completed", "ln_lstm", "parity")
    m = pd.read_csv(run / "metrics.csv")
    assert m["loss"].iloc[-3:].mean() < 0.5 * m["loss"].iloc[:3].mean()      # XOR is learnt
    assert m["accuracy"].iloc[-1] > 0.9
    config = OmegaConf.load(run / ".hydra" / "config.yaml")
    assert config.model._target_ == "my_parts.lnlstm.LayerNormLSTM" and config.model.hidden_size == 16


@pytest.mark.slow   # a sweep of 4 runs (the default tier's metric test sweeps and compares too)
def test_a_sweep_of_a_users_model_against_a_built_in_is_compared_paired_by_seed(project):
    sweep = project / "S"
    r = train(project, "-m", "model=ln_lstm,lstm", "dataset=parity", "seed=0,1", *EASY,
              "hydra.callbacks.analyze.formats=[]", "hydra.callbacks.analyze.compare=model.name",
              f"hydra.sweep.dir={sweep}")
    assert r.code == 0, r.err[-3000:]
    c = pd.read_csv(sweep / "analysis" / "compare.csv")
    assert set(c["a"]) | set(c["b"]) == {"ln_lstm", "lstm"}
    assert set(c["design"]) == {"paired"}      # _target_ and reset_at_padding differ: what the models are
    summary = (sweep / "analysis" / "summary.md").read_text()
    assert "| ln_lstm |" in summary and "| lstm |" in summary and "_target_" not in summary


@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
def test_a_users_run_records_its_parts_and_resumes_unless_the_class_changed(project):
    """summary.json names each part's class, the settings it takes with their defaults, and where
    its code comes from (here: a folder on PYTHONPATH, no distribution, a git checkout); the run
    resumes; after the class gained a setting, a resume is refused in one line naming the change."""
    import subprocess
    git = lambda *a: subprocess.run(["git", "-C", str(project), *a], check=True, capture_output=True)
    git("init", "-q")
    git("add", "my_parts")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "my parts")
    run = project / "run"
    args = ["model=ln_lstm", "dataset=parity", "train.checkpoint_every=10", f"hydra.run.dir={run}"]
    assert train(project, *args, "train.steps=10").code == 0
    model = json.loads((run / "summary.json").read_text())["parts"]["model"]
    assert model["target"] == "my_parts.lnlstm.LayerNormLSTM" and model["version"] is None
    assert model["settings"] == {"hidden_size": "64", "embedding_dim": "16"}
    assert model["git"]["dirty"] is False and len(model["git"]["commit"]) == 40
    r = train(project, *args, "train.steps=20")
    assert r.code == 0, r.err[-2000:]
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["status"], summary["step"], summary["resumed_from_step"]) == ("completed", 20, 10)

    lnlstm = project / "my_parts" / "lnlstm.py"      # the class gains a setting
    lnlstm.write_text(lnlstm.read_text().replace("embedding_dim: int = 16):", "embedding_dim: int = 16, "
                                                 "dropout: float = 0.0):"))
    for name in [m for m in sys.modules if m.split(".")[0] == "my_parts"]:
        del sys.modules[name]
    r = train(project, *args, "train.steps=30")
    assert r.code == 2 and r.err == (
        f"rnn-train: error: {run / 'checkpoint.pt'}: my_parts.lnlstm.LayerNormLSTM changed since the checkpoint "
        "was written (its settings dropout: absent -> 0.0); resume with the class as it was, or use another "
        "run folder or train.resume=false\n"), r.err
    assert json.loads((run / "summary.json").read_text()) == summary       # the folder as it was


@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
def test_a_setting_the_class_takes_but_its_node_lacks_is_refused_with_how_to_add_it(project):
    (project / "my_configs" / "model" / "short.yaml").write_text(
        "# ln_lstm without its sizes.\n_target_: my_parts.lnlstm.LayerNormLSTM\nname: short\n")
    r = train(project, "model=short", "dataset=parity", f"hydra.run.dir={project / 'run'}")
    assert r.code == 2 and r.err == (
        "rnn-train: error: model.hidden_size=16 is not in the model node of model=short, though "
        "my_parts.lnlstm.LayerNormLSTM takes it: expected +model.hidden_size=16 (or the key in its YAML file)\n")


def test_help_lists_the_users_parts(project):
    r = run_command("rnn-train", "--config-dir", str(project / "my_configs"), "--help")
    assert r.code == 0 and "ln_lstm" in r.out and "parity" in r.out


@pytest.mark.parametrize("args, message", [
    (["model=ln_lstm", "model.dropout=0.1"],
     "model.dropout=0.1 is not a setting of model=ln_lstm (my_parts.lnlstm.LayerNormLSTM): expected one of "
     "hidden_size, embedding_dim"),
    (["model=ln_lstm", "model.hidden_size=big"],
     "model.hidden_size='big' is invalid: expected an integer (an argument of my_parts.lnlstm.LayerNormLSTM)"),
    (["model=ln_lstm", "model._target_=my_parts.lnlstm.NoSuchModel"],
     "model._target_='my_parts.lnlstm.NoSuchModel' is invalid: expected an importable class"),
    (["model=kwargs"], "model._target_=my_parts.loose.Loose is invalid: expected a class whose constructor "
                       "names its arguments (it takes **kwargs: declare them as a dataclass `Settings`"),
])
def test_a_part_that_does_not_fit_is_refused_in_one_line_before_anything_is_written(project, args, message):
    (project / "my_parts" / "loose.py").write_text(
        "import torch.nn as nn\n\n\nclass Loose(nn.Module):\n    def __init__(self, **kwargs):\n"
        "        super().__init__()\n")
    (project / "my_configs" / "model" / "kwargs.yaml").write_text(
        "# A model that takes anything.\n_target_: my_parts.loose.Loose\nname: loose\nhidden_size: 8\n")
    run = project / "refused"
    r = train(project, "dataset=parity", *args, f"hydra.run.dir={run}")
    assert r.code == 2 and r.err.startswith(f"rnn-train: error: {message}"), r.err
    assert r.err.count("\n") == 1 and not run.exists()


def test_a_dataclass_settings_declares_what_a_kwargs_class_accepts(project):
    (project / "my_parts" / "declared.py").write_text(
        "import dataclasses\n\nimport torch.nn as nn\n\n\nclass Declared(nn.Module):\n"
        "    @dataclasses.dataclass\n    class Settings:\n        hidden_size: int = 8\n\n"
        "    def __init__(self, **kwargs):\n        super().__init__()\n")
    node = OmegaConf.create({"_target_": "my_parts.declared.Declared", "name": "declared", "hidden_size": 4})
    assert check_part(node, "model").__name__ == "Declared"
    node.width = 3
    with pytest.raises(ConfigError, match=r"^model.width=3 is not a setting of model=declared "
                                          r"\(my_parts.declared.Declared\): expected one of hidden_size$"):
        check_part(node, "model")


@pytest.mark.parametrize("name", sorted(FORMER_TARGETS["model"]))
def test_a_node_of_a_run_folder_before_target_is_read_with_its_builtin_class(name):
    """format_version <= 3: `model.name` and every built-in's settings in one flat section: the
    class comes from the name, the settings it does not take are dropped."""
    flat = {"name": name, "hidden_size": 16, "embedding_dim": 8, "num_layers": 1, "dropout": 0.0,
            "init": "uniform" if name == "generator" else "kaiming_normal", "log_softmax_axis": "class",
            "reset_at_padding": False}
    node = upgrade(OmegaConf.create(flat), "model")
    cls = check_part(node, "model")
    assert f"{cls.__module__}.{cls.__qualname__}" == FORMER_TARGETS["model"][name]
    assert node.hidden_size == 16 and set(node) <= set(flat) | {"_target_"}


BROKEN = {   # my_parts/broken.py: parts that break the contract, one way each
    "WrongShape": "class WrongShape(LayerNormLSTM):\n    def forward(self, x):\n"
                  "        return super().forward(x)[:, :1]\n",
    "NotAModule": "class NotAModule:\n    kind = 'classifier'\n\n"
                  "    def __init__(self, vocab_size: int, num_classes: int, hidden_size: int = 8,\n"
                  "                 embedding_dim: int = 4):\n        pass\n",
    "Forgetful": "class Forgetful(ParityDataset):\n    def load_state_dict(self, state):\n        pass\n",
    "FloatTokens": "class FloatTokens(ParityDataset):\n    def draw(self, batch_size, generator):\n"
                   "        x, y = super().draw(batch_size, generator)\n        return x.float(), y\n",
}


@pytest.mark.parametrize("args, message", [
    (["model._target_=my_parts.broken.WrongShape"],
     "model=ln_lstm (my_parts.broken.WrongShape) breaks the classifier contract: forward(x (2, 2) int64) "
     "returned (2, 1) torch.float32, expected floating (2, 2) log-probabilities (docs/extending.md)"),
    (["model=bare"], "model=bare (my_parts.broken.NotAModule) breaks the classifier contract: it built a "
                     "NotAModule, expected a torch.nn.Module"),
    (["dataset._target_=my_parts.broken.Forgetful"],
     "dataset=parity (my_parts.broken.Forgetful) breaks the dataset contract: load_state_dict(state_dict()) "
     "does not give the same batch again"),
    (["dataset._target_=my_parts.broken.FloatTokens"],
     "dataset=parity (my_parts.broken.FloatTokens) breaks the dataset contract: sample(2) gave x (2, 2) "
     "torch.float32, expected int64 (2, T)"),
])
def test_a_part_that_breaks_the_contract_is_refused_before_anything_is_written(project, args, message):
    (project / "my_parts" / "broken.py").write_text(
        "from my_parts.lnlstm import LayerNormLSTM\nfrom my_parts.parity import ParityDataset\n\n\n"
        + "\n\n".join(BROKEN.values()))
    (project / "my_configs" / "model" / "bare.yaml").write_text(
        "# Not a module.\n_target_: my_parts.broken.NotAModule\nname: bare\nhidden_size: 8\nembedding_dim: 4\n")
    model = [] if any(a.startswith("model=") for a in args) else ["model=ln_lstm"]
    for sweep in (False, True):        # a single run, and a sweep's job
        out = project / ("S" if sweep else "run")
        r = train(project, *(["-m", "seed=0,1"] if sweep else []), *model, "dataset=parity",
                  "dataset.seq_length=2", *args, f"hydra.{'sweep' if sweep else 'run'}.dir={out}")
        assert r.code == 2 and message in r.err and r.err.count("\n") == 1, r.err
        assert not out.exists()


@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
def test_the_optimizer_is_a_part_too(project, tmp_path):
    """optimizer=sgd (packaged) and one of the user's own (the page's AdamW) train the user's
    model; a setting the optimizer does not take, or a value torch refuses, is one line."""
    for choice, lr in (("sgd", "0.3"), ("adamw", "0.01")):
        run = project / choice
        r = train(project, "model=ln_lstm", "dataset=parity", *EASY, f"optimizer={choice}", f"train.lr={lr}",
                  "train.steps=100", f"hydra.run.dir={run}")
        assert r.code == 0, r.err[-2000:]
        m = pd.read_csv(run / "metrics.csv")
        assert m["loss"].iloc[-3:].mean() < 0.7 * m["loss"].iloc[:3].mean(), (choice, m["loss"].tolist())
        assert OmegaConf.load(run / ".hydra" / "config.yaml").optimizer.name == choice
    r = train(project, "model=ln_lstm", "dataset=parity", "optimizer.momentum=0.9", f"hydra.run.dir={tmp_path / 'x'}")
    assert r.code == 2 and r.err.startswith("rnn-train: error: optimizer.momentum=0.9 is not a setting of "
                                            "optimizer=adam (torch.optim.adam.Adam): expected one of betas, eps,"), r.err
    r = train(project, "model=ln_lstm", "dataset=parity", "optimizer.eps=-1.0", f"hydra.run.dir={tmp_path / 'y'}")
    assert r.code == 2 and r.err.startswith("rnn-train: error: optimizer=adam (torch.optim.adam.Adam) refused its "
                                            "settings: Invalid epsilon value: -1.0"), r.err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
def test_a_users_metric_is_logged_summarised_and_compared(project):
    """+metrics=brier (the page's Brier score): column eval_brier equal, at the last evaluation,
    to the Brier score of the run's final model on its held-out set computed here; final_ and
    best_ (the minimum: lower is better) in summary.json; the sweep's tables show it."""
    import torch
    from rnn_experiments.training.setup import setup
    sweep = project / "S"
    r = train(project, "-m", "model=ln_lstm,lstm", "dataset=parity", "seed=0,1", *EASY, "+metrics=brier",
              "scheduler=cosine", "hydra.callbacks.analyze.formats=[]", "hydra.callbacks.analyze.compare=model.name",
              f"hydra.sweep.dir={sweep}")
    assert r.code == 0, r.err[-2000:]
    run = sweep / "0"
    m = pd.read_csv(run / "metrics.csv")
    evals = m.dropna(subset=["eval_brier"])
    assert list(m.columns).index("eval_brier") == list(m.columns).index("lr") + 1 and len(evals) >= 2
    summary = json.loads((run / "summary.json").read_text())
    assert summary["metrics"] == {"eval_brier": {"higher_is_better": False}}
    assert summary["final_eval_brier"] == evals["eval_brier"].iloc[-1]
    assert summary["best_eval_brier"] == evals["eval_brier"].min()
    assert m["lr"].iloc[-1] < m["lr"].iloc[0]                      # the cosine schedule ran

    cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
    _, data, model, _ = setup(cfg)
    model.load_state_dict(torch.load(run / "checkpoint.pt", weights_only=False)["model"])
    with torch.no_grad():
        p = model.eval()(data.eval_x).exp()
    brier = ((p - torch.nn.functional.one_hot(data.eval_y, p.shape[-1])) ** 2).sum(-1).mean().item()
    assert evals["eval_brier"].iloc[-1] == pytest.approx(brier, rel=1e-5)

    table = (sweep / "analysis" / "summary.md").read_text()
    assert "final brier" in table
    compare = pd.read_csv(sweep / "analysis" / "compare.csv")
    row = compare[compare["statistic"] == "final_eval_brier"]
    assert len(row) == 1 and row["design"].iloc[0] == "paired"


@pytest.mark.parametrize("metric, message", [
    ("class NoDirection:\n    def __call__(self, log_probs, y):\n        return 0.0\n",
     "metrics.m._target_=my_parts.m.NoDirection is invalid: expected a class with `higher_is_better = True` or `False`"),
    ("class Raises:\n    higher_is_better = True\n    def __call__(self, log_probs, y):\n        return y.foo\n",
     "metrics.m (my_parts.m.Raises) breaks the metric contract: metric(log_probs (2, 2), y (2,)) raised AttributeError"),
    ("class Takes:\n    higher_is_better = True\n    def __init__(self, k: int = 1):\n        pass\n"
     "    def __call__(self, log_probs, y):\n        return 0.0\n",
     "metrics.m.j=3 is not a setting of metrics.m (my_parts.m.Takes): expected one of k"),
])
def test_a_metric_that_breaks_its_contract_is_refused_with_nothing_written(project, metric, message):
    (project / "my_parts" / "m.py").write_text(metric)
    extra = ["+metrics.m.j=3"] if "Takes" in metric else []
    run = project / "run"
    r = train(project, "model=ln_lstm", "dataset=parity", "+metrics.m._target_=my_parts.m." + metric.split()[1].split(":")[0],
              *extra, f"hydra.run.dir={run}")
    assert r.code == 2 and r.err.startswith(f"rnn-train: error: {message}") and r.err.count("\n") == 1, r.err
    assert not run.exists()


def test_the_pages_files_are_the_example_packages():
    """docs/extending.md shows examples/my_project's files: my_parts/ as they are, my_configs/G/F
    as my_parts/conf/G/F (the package ships them; its search path plugin finds them)."""
    example = ROOT / "examples" / "my_project"
    for path, text in dc.files(PAGE):
        shipped = example / path.replace("my_configs/", "my_parts/conf/", 1)
        assert shipped.is_file() and shipped.read_text(encoding="utf-8") == text, path
    ours = {p.relative_to(example / "my_parts").as_posix() for p in (example / "my_parts").rglob("*.py")}
    shown = {p.removeprefix("my_parts/") for p, _ in dc.files(PAGE) if p.startswith("my_parts/")}
    assert ours - shown == {"conf/__init__.py"}      # every module of the example is on the page


GRU_GENERATOR = '''\
import torch.nn as nn
import torch.nn.functional as F


class GRUGenerator(nn.Module):
    kind = "generator"

    def __init__(self, vocab_size: int, hidden_size: int = 32):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size, batch_first=True)
        self.out = nn.Linear(hidden_size, vocab_size)

    def forward(self, x):
        h, _ = self.gru(self.embedding(x))                      # (B, T, H)
        return F.log_softmax(self.out(h), dim=-1)               # (B, T, V)
    {step}
'''
STEP = '''
    def step(self, x_t, state=None):
        h, state = self.gru(self.embedding(x_t)[:, None], state)   # (B, 1, H)
        return self.out(h[:, 0]), state'''


@pytest.mark.slow   # 200 steps of a text model, then generation: a whole scenario
def test_a_users_generator_trains_on_text_and_rnn_generate_continues_it(project):
    """A generator of the user's own (a GRU, kind "generator", forward and step) learns a text
    whose next character is a function of the few before it; greedy continuation of a prompt from
    its run folder gives the text back. Without `step` it is refused before the run."""
    from conftest import REPETITIVE
    (project / "my_parts" / "gru_gen.py").write_text(GRU_GENERATOR.format(step=STEP))
    (project / "cat.txt").write_text(REPETITIVE)
    text = ["dataset=text", f"dataset.path={project / 'cat.txt'}", "dataset.seq_length=16", "train.lr=1e-2",
            "train.steps=200", "train.eval_every=100", "train.batch_size=32"]
    gru = ["~model.hidden_size", "~model.embedding_dim", "~model.num_layers", "~model.dropout", "~model.init",
           "model._target_=my_parts.gru_gen.GRUGenerator", "model.name=gru_gen", "+model.hidden_size=32"]
    run = project / "run"
    r = train(project, "model=generator", *gru, *text, f"hydra.run.dir={run}")
    assert r.code == 0, r.err[-2000:]
    r = run_command("rnn-generate", f"checkpoint={run}", "prompt=the cat", "strategy=greedy", "length=16")
    assert r.code == 0, r.err[-2000:]
    assert r.out.strip() == "the cat sat on the mat."           # 7 + 16 characters

    (project / "my_parts" / "gru_gen.py").write_text(GRU_GENERATOR.format(step=""))
    for name in [m for m in sys.modules if m.split(".")[0] == "my_parts"]:
        del sys.modules[name]
    r = train(project, "model=generator", *gru, *text, f"hydra.run.dir={project / 'r2'}")
    assert r.code == 2 and "breaks the generator contract: it has no step(x_t, state)" in r.err, r.err
    assert not (project / "r2").exists()


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["parallel", "submitit_local"])
def test_a_sweep_of_a_users_parts_runs_in_worker_processes(project, launcher):
    """hydra/launcher=parallel (joblib) and submitit_local: each job a process of its own that
    imports the user's classes (their folder on PYTHONPATH, as the page says); both jobs complete
    and record them."""
    import os
    import subprocess
    sweep = project / "S"
    cmd = [sys.executable, "-m", "rnn_experiments.train", "-m", "--config-dir", str(project / "my_configs"), *TINY,
           "model=ln_lstm,lstm", "dataset=parity", "+metrics=brier", f"hydra/launcher={launcher}",
           "~hydra.callbacks.analyze", f"hydra.sweep.dir={sweep}"]
    if launcher == "submitit_local":
        cmd += ["hydra.launcher.timeout_min=5", "hydra.launcher.cpus_per_task=1"]
    done = subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(project)})
    assert done.returncode == 0, done.stderr[-3000:]
    runs = [json.loads((sweep / str(i) / "summary.json").read_text()) for i in range(2)]
    assert [(r["status"], r["parts"]["model"]["target"]) for r in runs] == [
        ("completed", "my_parts.lnlstm.LayerNormLSTM"), ("completed", "rnn_experiments.models.lstm.LSTM")]
    assert all(r["pid"] != os.getpid() and "final_eval_brier" in r for r in runs)


def test_a_users_part_declares_when_it_reads_a_setting(project):
    """A class's `read_if` (the condition under which it reads a setting) is checked for users'
    parts as for ours: the setting given while the condition fails is refused in one line."""
    (project / "my_parts" / "gated.py").write_text(
        "from my_parts.lnlstm import LayerNormLSTM\n\n\n"
        "class GatedReadout(LayerNormLSTM):\n"
        "    read_if = {'temperature': ('scaled is true', lambda s, cfg: s['scaled'])}\n\n"
        "    def __init__(self, vocab_size: int, num_classes: int, hidden_size: int = 64, embedding_dim: int = 16,\n"
        "                 scaled: bool = False, temperature: float = 1.0):\n"
        "        super().__init__(vocab_size, num_classes, hidden_size, embedding_dim)\n"
        "        self.t = temperature if scaled else 1.0\n")
    model = ["model=ln_lstm", "model._target_=my_parts.gated.GatedReadout", "dataset=parity"]
    r = train(project, *model, "+model.temperature=2.0", f"hydra.run.dir={project / 'r'}")
    assert r.code == 2 and r.err == ("rnn-train: error: model.temperature=2.0 is not used unless scaled is true: "
                                     "expected its default (1.0)\n"), r.err
    assert not (project / "r").exists()
    r = train(project, *model, "+model.temperature=2.0", "+model.scaled=true", f"hydra.run.dir={project / 'r'}")
    assert r.code == 0, r.err[-2000:]


@pytest.mark.slow   # seconds: the default tier keeps to 90 s (docs/contributing.md, Tests)
def test_a_part_without_a_name_is_named_by_its_config_choice(project):
    """`name` left out of a node: the part is called by its config choice (model=tiny_ln: name
    tiny_ln) in the run's config, summary.json and the sweep's tables, also when a sweep's jobs
    choose different files; outside a command (no choice known) a name is asked for."""
    (project / "my_configs" / "model" / "tiny_ln.yaml").write_text(
        "# The layer-norm LSTM, small, without a name\n_target_: my_parts.lnlstm.LayerNormLSTM\nhidden_size: 8\n"
        "embedding_dim: 4\n")
    sweep = project / "S"
    r = train(project, "-m", "model=tiny_ln,ln_lstm", "dataset=parity", "hydra.callbacks.analyze.formats=[]",
              f"hydra.sweep.dir={sweep}")
    assert r.code == 0, r.err[-2000:]
    names = [json.loads((sweep / str(i) / "summary.json").read_text())["model"] for i in (0, 1)]
    assert names == ["tiny_ln", "ln_lstm"]
    assert OmegaConf.load(sweep / "0" / ".hydra" / "config.yaml").model.name == "tiny_ln"
    assert "| tiny_ln |" in (sweep / "analysis" / "summary.md").read_text()
    with pytest.raises(ConfigError, match="model.name=None is invalid: expected the name tables and plots show"):
        check_part(OmegaConf.create({"_target_": "my_parts.lnlstm.LayerNormLSTM"}), "model")
