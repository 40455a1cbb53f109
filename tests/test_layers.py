"""The package's layer order (docs/contributing.md, "The layers"): every import of the package,
module-level or inside a function, goes to the module's own folder or to a lower layer, so there
is no cycle and no arrow back up; an import inside a function (kept only so that a command starts
fast) says so with a `# lazy:` comment on its line."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# top to bottom; a unit is a folder of rnn_experiments/ (or hydra_plugins/), or one top-level module
LAYERS = [
    ["train", "analyze", "generate", "measure_gradients", "plot_gradients", "download", "bench"],
    ["cli"],                                       # the commands (above: their `python -m` spellings)
    ["hydra_plugins.rnn_experiments_sweeper",      # hydra/sweeper=optuna, handing over to sweeps/search
     "hydra_plugins.rnn_experiments_packed",       # hydra/launcher=packed, handing over to sweeps/pack
     "hydra_plugins.rnn_experiments_slurm"],       # hydra/launcher=slurm; its packs handed over to sweeps/pack
    ["sweeps"],                                    # sweep guard, analysis callback, launchers, search
    ["analysis"],
    ["generation", "gradients", "loggers"],        # what a task or a tracker adds to a run
    ["training"],
    ["extras"],
    ["config"],
    ["contract"],                                  # the dry check of a run's parts
    ["models", "data"],
    ["run"],                                       # the run-folder contract
    ["parts"],                                     # a part: a class plus its node (_target_)
    ["errors", "hydra_plugins.rnn_experiments_configs"],   # the plugins' configs for any Hydra app: imports nothing of ours
]
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def unit_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "hydra_plugins":
        return ".".join(parts[:2])
    return parts[1] if len(parts) > 1 else parts[0]


def modules():
    for top in ("rnn_experiments", "hydra_plugins"):
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            name = ".".join(rel.parts).removesuffix(".__init__")
            yield name, path


def imports(name: str, path: Path):
    """(imported module, line, inside a function) for every import of the package's modules."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())

    def walk(node, in_function):
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            targets = []
            if isinstance(child, ast.Import):
                targets = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    up = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [base]
            for t in targets:
                if t.split(".")[0] in ("rnn_experiments", "hydra_plugins") and unit_of(t) in RANK:
                    yield t, child.lineno, in_function
            yield from walk(child, inner)
    yield from walk(tree, False)


def test_every_unit_has_a_layer():
    units = {unit_of(name) for name, _ in modules() if name.count(".") >= 1}
    assert units - set(RANK) == set(), "give each new folder or top-level module a layer"


def test_no_import_runs_back_up_or_sideways():
    wrong = []
    for name, path in modules():
        if name.count(".") < 1:
            continue
        for target, line, _ in imports(name, path):
            here, there = unit_of(name), unit_of(target)
            if here != there and RANK[there] <= RANK[here]:
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {here} imports {target} "
                             f"({'the same layer' if RANK[there] == RANK[here] else 'a higher layer'})")
    assert not wrong, "\n".join(wrong)


def test_function_local_imports_say_why():
    silent = []
    for name, path in modules():
        lines = path.read_text().splitlines()
        for target, line, in_function in imports(name, path):
            if in_function and "# lazy:" not in lines[line - 1]:
                silent.append(f"{path.relative_to(ROOT)}:{line}: {target}")
    assert not silent, "\n".join(silent)


@pytest.mark.parametrize("wrong", [("rnn_experiments.run.folder", "rnn_experiments.training.loop"),
                                   ("rnn_experiments.analysis.report", "rnn_experiments.sweeps.guard"),
                                   ("rnn_experiments.models.lstm", "rnn_experiments.data.text")])
def test_the_rule_refuses_an_upward_or_sideways_import(wrong):
    here, there = (unit_of(m) for m in wrong)
    assert RANK[there] <= RANK[here]
