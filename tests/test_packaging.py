"""The package as a user installs it: the wheel holds every config and module, and the installed
commands run from anywhere, without the source tree."""
import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import ROOT, STUDY_TINY, TINY
from rnn_experiments.config import conf_dir

COMMANDS = ["rnn-train", "rnn-analyze", "rnn-generate", "rnn-measure-gradients", "rnn-plot-gradients",
            "rnn-download", "rnn-bench"]


def test_a_checkout_uses_its_own_conf_folder():
    assert conf_dir() == ROOT / "conf"


def _source_files(folder: Path, pattern: str) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob(pattern) if "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """Build the wheel from a copy of the sources, install it (no dependencies) into a fresh venv
    that sees this environment's packages (torch, hydra, ...) through a .pth file, and return
    (wheel, venv bin folder, env for commands, a working folder outside the source tree)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for name in ("conf", "rnn_experiments", "hydra_plugins"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            "-w", str(tmp / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    wheel, = (tmp / "dist").glob("rnn_experiments-*.whl")

    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # this environment's site folders, after the venv's own (a .pth's lines are appended to sys.path;
    # the .pth files inside them, such as an editable install's finder, are not run)
    ours = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()]
    Path(purelib, "_test_environment.pth").write_text("\n".join(dict.fromkeys(ours)) + "\n")
    inst = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                           "--no-index", str(wheel)], capture_output=True, text=True, timeout=300)
    assert inst.returncode == 0, inst.stdout[-3000:] + inst.stderr[-3000:]

    work = tmp / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    return wheel, bin_dir, env, work


@pytest.mark.wheel
def test_wheel_holds_every_config_module_and_command(installed):
    import zipfile
    wheel = installed[0]
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = _source_files(ROOT / "conf", "*.yaml")
    assert len(configs) > 20
    assert {f"rnn_experiments/conf/{c}" for c in configs} <= names
    assert {f"rnn_experiments/{m}" for m in _source_files(ROOT / "rnn_experiments", "*.py")} <= names
    assert {f"rnn_experiments/{m}" for m in _source_files(ROOT / "rnn_experiments", "*.c")} <= names   # built on use
    plugins = _source_files(ROOT / "hydra_plugins", "*.py")     # the Optuna sweeper, the SLURM launcher
    assert plugins and {f"hydra_plugins/{m}" for m in plugins} <= names
    assert "hydra_plugins/__init__.py" not in names             # a namespace shared with other plugins
    entry_points, = (n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert all(f"{c} = " in text for c in COMMANDS)


@pytest.mark.wheel
def test_installed_wheel_runs_every_command_outside_the_source_tree(installed):
    _, bin_dir, env, work = installed
    venv = bin_dir.parent
    (work / "mine" / "experiment").mkdir(parents=True)   # a user's own preset (README, "Your own configs")
    (work / "mine" / "experiment" / "small.yaml").write_text(
        "# @package _global_\ndefaults:\n  - override /model: peep_lstm\nexperiment_name: small\n")

    def run(*args, timeout=300):
        done = subprocess.run([str(a) for a in args], cwd=work, env=env, capture_output=True, text=True,
                              timeout=timeout)
        assert done.returncode == 0, f"{args}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
        return done.stdout

    def installed_code_and_configs():
        # rnn-bench builds its models through rnn_experiments.config.compose, as here
        where = json.loads(run(bin_dir / "python", "-c", "import json, rnn_experiments.config as c; "
                               "assert c.compose(['model=peep_lstm']).model.name == 'peep_lstm'; "
                               "import hydra_plugins.rnn_experiments_slurm.launcher as s; "   # hydra/launcher=slurm,
                               "from hydra.core.plugins import Plugins; "                       # found by Hydra's scan
                               "from hydra.plugins.launcher import Launcher; "
                               "assert s.SlurmLauncher in Plugins.instance().discover(Launcher); "
                               "import hydra_plugins.rnn_experiments_sweeper.optuna_sweeper as o; "   # hparams_search=...
                               "from hydra.plugins.sweeper import Sweeper; "
                               "assert o.OptunaSweeper in Plugins.instance().discover(Sweeper); "
                               "print(json.dumps([c.__file__, str(c.conf_dir()), s.__file__, o.__file__]))"))
        assert all(Path(p).is_relative_to(venv) for p in where), where   # the wheel's code and configs
        assert not any(Path(p).is_relative_to(ROOT) for p in where)

    def a_foreign_hydra_app_sees_the_plugins_and_their_configs():
        """Another Hydra app (no config folder of the project's, run outside the source tree):
        hydra/sweeper=optuna with a sampler and hydra/launcher=slurm compose, from the wheel."""
        (work / "foreign_app.py").write_text(FOREIGN_APP)
        seen = json.loads(run(bin_dir / "python", "foreign_app.py").splitlines()[-1])
        assert seen["sweeper"] == "hydra_plugins.rnn_experiments_sweeper.optuna_sweeper.OptunaSweeper"
        assert seen["sampler"] == "optuna.samplers.RandomSampler" and seen["pruner"] == "optuna.pruners.MedianPruner"
        assert seen["launcher"] == "hydra_plugins.rnn_experiments_slurm.launcher.SlurmLauncher"
        assert seen["slurm_defaults"] == [120, 4]        # conf/hydra/launcher/slurm.yaml over submitit's
        assert all(Path(p).is_relative_to(venv) for p in seen["files"]), seen

    def train_then_analyze():
        run(bin_dir / "rnn-train", *TINY, "train.steps=5", "hydra.run.dir=run")
        summary = json.loads((work / "run" / "summary.json").read_text())
        assert (summary["status"], summary["step"]) == ("completed", 5)
        assert summary["versions"]["rnn-experiments"] and "git" not in summary   # not a git checkout
        run(bin_dir / "rnn-analyze", "run", "--out", "analysis", "--formats", "png")
        assert (work / "analysis" / "summary.csv").is_file()

    def gradients_then_plot():
        run(bin_dir / "rnn-measure-gradients", "model=rnn", "dataset.seq_length=2", "gradients.steps=[0,2]",
            "gradients.batch_size=8", *STUDY_TINY, "hydra.run.dir=grad")
        run(bin_dir / "rnn-plot-gradients", "grad", "--out", "gradients.png")
        assert (work / "gradients.png").is_file()

    def configs_shown():
        shown = run(bin_dir / "rnn-train", "--config-dir", "mine", "+experiment=small", "--cfg", "job")
        assert "name: peep_lstm" in shown and "experiment_name: small" in shown and "steps: 3000" in shown
        assert "strategy: sample" in run(bin_dir / "rnn-generate", "--cfg", "job")

    def help_texts():
        run(bin_dir / "rnn-bench", "--help")
        run(bin_dir / "rnn-download", "--help")

    def the_compiled_loop_builds_from_the_wheels_source():
        """native_lstm.c is package data: the installed package builds it (where there is a C
        compiler; else says why, as the source tree's does)."""
        built = run(bin_dir / "python", "-c", "from rnn_experiments.models.kernels import native; "
                    "print(native.lib().path if native.lib() else native.why_not())").strip()
        if shutil.which(os.environ.get("CC", "") or "cc") is None:
            assert built.startswith("no C compiler"), built
        else:
            assert built.endswith(".so") and Path(built).is_file(), built

    # independent commands side by side (each starts Python and torch)
    with ThreadPoolExecutor(max_workers=3) as pool:
        for job in [pool.submit(f) for f in (train_then_analyze, gradients_then_plot, configs_shown,
                                             installed_code_and_configs, help_texts,
                                             the_compiled_loop_builds_from_the_wheels_source,
                                             a_foreign_hydra_app_sees_the_plugins_and_their_configs)]:
            job.result()


# a Hydra app of its own: the plugins' classes as Hydra's scan finds them, their configs composed
FOREIGN_APP = """\
import json
from hydra import compose, initialize
from hydra.core.plugins import Plugins
from hydra.plugins.launcher import Launcher
from hydra.plugins.sweeper import Sweeper

with initialize(version_base=None, config_path=None):
    cfg = compose(overrides=["hydra/sweeper=optuna", "hydra/sweeper/sampler=random", "hydra/launcher=slurm"],
                  return_hydra_config=True)
found = {c.__module__: c for kind in (Sweeper, Launcher) for c in Plugins.instance().discover(kind)}
mine = [found[m] for m in ("hydra_plugins.rnn_experiments_sweeper.optuna_sweeper",
                           "hydra_plugins.rnn_experiments_slurm.launcher")]
import sys
print(json.dumps({"sweeper": cfg.hydra.sweeper._target_, "sampler": cfg.hydra.sweeper.sampler._target_,
                  "pruner": cfg.hydra.sweeper.pruner._target_, "launcher": cfg.hydra.launcher._target_,
                  "slurm_defaults": [cfg.hydra.launcher.timeout_min, cfg.hydra.launcher.cpus_per_task],
                  "files": [sys.modules[c.__module__].__file__ for c in mine]}))
"""


def _venv_seeing_this_environment(venv: Path) -> Path:
    """A fresh venv whose Python sees this environment's packages (no .pth of theirs run)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / ("Scripts" if os.name == "nt" else "bin") / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    ours = [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()]
    Path(purelib, "_test_environment.pth").write_text("\n".join(dict.fromkeys(ours)) + "\n")
    return python


@pytest.mark.wheel
def test_an_editable_install_is_found_by_a_foreign_hydra_app_outside_the_source_tree(tmp_path):
    """pip install -e of a copy of the sources, then another Hydra app in a folder of its own:
    Hydra's plugin scan finds both plugins (it lists the folders on hydra_plugins.__path__, which
    the editable install adds only because pyproject.toml lists the namespace) and their configs."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("conf", "rnn_experiments", "hydra_plugins"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    python = _venv_seeing_this_environment(tmp_path / "venv")
    inst = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                           "--no-build-isolation", "-e", str(src)], capture_output=True, text=True, timeout=300)
    assert inst.returncode == 0, inst.stdout[-3000:] + inst.stderr[-3000:]
    work = tmp_path / "work"
    work.mkdir()
    (work / "foreign_app.py").write_text(FOREIGN_APP)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([str(python), "foreign_app.py"], cwd=work, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["sweeper"].endswith("OptunaSweeper") and seen["launcher"].endswith("rnn_experiments_slurm.launcher.SlurmLauncher")
    assert all(Path(p).is_relative_to(src) for p in seen["files"]), seen   # the sources, edited in place


EXAMPLE = ROOT / "examples" / "my_project"     # docs/extending.md's parts as a package of their own


@pytest.mark.wheel
def test_the_example_package_runs_the_documented_workflow_from_its_wheel(installed, tmp_path):
    """examples/my_project built and installed from its wheel beside rnn-experiments' wheel, in a
    folder outside the source tree: its configs found through its search path plugin (no
    --config-dir, no PYTHONPATH); a sweep of its model against a built-in with its metric,
    analysed and compared paired by seed; an Optuna search over its model's own arguments; a
    resume; a part that breaks the contract and an argument its class does not take, each
    refused in one line with nothing written."""
    _, bin_dir, env, _ = installed
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w",
                            str(tmp_path / "dist"), str(EXAMPLE)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    wheel, = (tmp_path / "dist").glob("my_parts-*.whl")
    inst = subprocess.run([sys.executable, "-m", "pip", "--python", str(bin_dir / "python"), "install", "--no-deps",
                           "--no-index", str(wheel)], capture_output=True, text=True, timeout=300)
    assert inst.returncode == 0, inst.stdout[-3000:] + inst.stderr[-3000:]
    work = tmp_path / "work"
    work.mkdir()
    easy = [*TINY, "dataset.seq_length=2", "train.lr=1e-2", "train.batch_size=64"]

    def train(*args, code=0, path=None):
        done = subprocess.run([str(bin_dir / "rnn-train"), *map(str, args)], cwd=work,
                              env={**env, "PYTHONPATH": str(path)} if path else env,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == code, f"{args}: {done.stdout[-2000:]}{done.stderr[-3000:]}"
        return done

    assert "ln_lstm" in train("--help").stdout                      # listed beside the packaged models

    sweep = work / "S"
    train("-m", "model=ln_lstm,lstm", "dataset=parity", "seed=0,1", "+metrics=brier", *easy,
          "hydra.callbacks.analyze.formats=[]", "hydra.callbacks.analyze.compare=model.name", f"hydra.sweep.dir={sweep}")
    compare = (sweep / "analysis" / "compare.csv").read_text()
    assert "ln_lstm" in compare and "paired" in compare and "final_eval_brier" in compare
    summary = json.loads((sweep / "0" / "summary.json").read_text())
    model = summary["parts"]["model"]
    assert (model["target"], model["version"]) == ("my_parts.lnlstm.LayerNormLSTM", "0.1.0")   # its wheel

    search = work / "O"
    searched = ("model.hidden_size", "model.embedding_dim", "train.lr")     # the search's own, not fixed
    train("hparams_search=ln_lstm_optuna", "dataset=parity", *[a for a in easy if a.split("=")[0] not in searched],
          "hydra.sweeper.n_trials=3",
          "hydra/sweeper/pruner=none", f"hydra.sweep.dir={search}")
    sizes = {json.loads((search / str(i) / "summary.json").read_text())["parts"]["model"]["target"] for i in range(3)}
    configs = [(search / str(i) / ".hydra" / "config.yaml").read_text() for i in range(3)]
    assert sizes == {"my_parts.lnlstm.LayerNormLSTM"} and (search / "optimization_results.yaml").is_file()
    assert len({c.split("hidden_size: ")[1].split()[0] + c.split("embedding_dim: ")[1].split()[0] for c in configs}) > 1

    run = work / "R"
    train("model=ln_lstm", "dataset=parity", *easy, "train.steps=10", "train.checkpoint_every=10", f"hydra.run.dir={run}")
    train("model=ln_lstm", "dataset=parity", *easy, "train.steps=20", "train.checkpoint_every=10", f"hydra.run.dir={run}")
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["status"], summary["step"], summary["resumed_from_step"]) == ("completed", 20, 10)

    (work / "broken.py").write_text(
        "import torch\n\nclass WrongShape(torch.nn.Module):\n"
        "    def __init__(self, vocab_size: int, num_classes: int):\n        super().__init__()\n"
        "        self.w = torch.nn.Linear(1, 1)\n"
        "    def forward(self, x):\n        return self.w(x[:, :1].float())\n")
    refused = {"contract": train("model=ln_lstm", "dataset=parity", "~model.hidden_size", "~model.embedding_dim",
                                 "model._target_=broken.WrongShape", "hydra.run.dir=B1", code=2, path=work).stderr,
               "argument": train("model=ln_lstm", "dataset=parity", "+model.depth=3", "hydra.run.dir=B2", code=2).stderr}
    assert refused["contract"].startswith("rnn-train: error: model=ln_lstm (broken.WrongShape) breaks the "
                                          "classifier contract: forward(x (2, 8) int64) returned (2, 1)")
    assert refused["argument"].startswith("rnn-train: error: model.depth=3 is not a setting of model=ln_lstm "
                                          "(my_parts.lnlstm.LayerNormLSTM): expected one of hidden_size, embedding_dim")
    assert all(r.count("\n") == 1 for r in refused.values()), refused
    assert not (work / "B1").exists() and not (work / "B2").exists()
