"""`--help` of the Hydra commands (rnn-train, rnn-measure-gradients, rnn-generate), written from
the configs themselves so that it cannot go stale: each option of a config group is listed with the
first line of its YAML file's comment (conf/<group>/<option>.yaml, and the same folders under a
`--config-dir`). `--hydra-help` is still Hydra's own.

`--jobs` (rnn-train, rnn-measure-gradients) prints the jobs a command line would launch, each
through the one up-front check (sweeps/checks.py), and launches nothing: a dry run of a sweep or
a preset.
"""
from __future__ import annotations

import functools
from pathlib import Path

from rnn_experiments.config import conf_dir

USAGE = {
    "rnn-train": """\
rnn-train: train a recurrent network: one run, or a sweep of runs with -m; each run writes a folder
with metrics.csv, summary.json, checkpoint.pt; a sweep ends with its seed-averaged analysis.

  rnn-train [KEY=VALUE ...]                  one run -> outputs/DATE/TIME_NAME/
  rnn-train -m KEY=A,B seed=0,1,2 [...]      a sweep -> multirun/DATE/TIME_NAME/<job>/ and analysis/
  rnn-train +experiment=NAME [KEY=VALUE ...] a preset: a whole study (the sweeping ones need no -m)
  rnn-train ... --jobs                       list the jobs it would launch, each checked; run nothing
  rnn-train ... --cfg job                    print the composed config
""",
    "rnn-measure-gradients": """\
rnn-measure-gradients: the gradient-flow study: train as rnn-train does and, at gradients.steps,
measure how strongly the last step's loss depends on each earlier step (gradients.csv per run).

  rnn-measure-gradients [KEY=VALUE ...]            one study -> outputs/DATE/TIME_gradients/
  rnn-measure-gradients -m model=rnn,lstm seed=0,1 a sweep    -> multirun/DATE/TIME_gradients/<job>/
  rnn-plot-gradients FOLDER --out gradients.png   the seed-averaged plot
  rnn-measure-gradients ... --jobs                 list the jobs it would launch; run nothing
""",
    "rnn-generate": """\
rnn-generate: continue prompts with a trained character model; prints the texts, writes nothing.

  rnn-generate checkpoint=RUN_FOLDER [prompt="Once upon"] [length=200] [temperature=0.5]
  rnn-generate checkpoint=RUN_FOLDER 'prompt=[t,a,u,v,g]' strategy=greedy length=30
""",
}

GROUPS = {   # the config groups each command uses, in the order shown
    "rnn-train": ["experiment", "hparams_search", "model", "dataset", "optimizer", "scheduler", "stopping",
                  "metrics", "train", "logger", "hydra/launcher", "hydra/callbacks"],
    "rnn-measure-gradients": ["model", "dataset", "train", "hydra/launcher"],
    "rnn-generate": [],
}

OVERRIDES = {   # the most used settings, with one line each
    "rnn-train": [
        ("model=peep_lstm", "the model (see model above)"),
        ("dataset.seq_length=20", "the task's length L (palindromes: 4L+1 input digits)"),
        ("seed=0  /  -m seed=0,1,2", "the run's seed (the data stream and the initial weights); sweep several"),
        ("train.steps=3000 train.lr=1e-4", "training length and Adam's learning rate"),
        ("device=auto", "auto | cpu | cuda"),
        ("hydra/launcher=parallel", "run a sweep's jobs side by side (slurm: on a SLURM cluster)"),
    ],
    "rnn-measure-gradients": [
        ("model=lstm", "the model"),
        ("'gradients.steps=[0,100,500]'", "measure at these training steps (0: at initialisation)"),
        ("gradients.batch_size=256", "held-out examples measured on"),
        ("dataset.seq_length=10", "the task's length"),
        ("seed=0", "the run's seed"),
    ],
    "rnn-generate": [
        ("checkpoint=PATH", "a run folder (its best checkpoint) or a checkpoint file; required"),
        ("prompt=TEXT or 'prompt=[a,b]'", "what to continue (a list: together, as one batch)"),
        ("length=200", "characters generated after each prompt"),
        ("strategy=sample|greedy", "sample from p ∝ exp(logits / T), or take the arg-max"),
        ("temperature=1.0 top_k=0", "T (small: near greedy; large: near uniform); sample among the k likeliest"),
        ("num_samples=1 seed=0 device=cpu", "continuations per prompt, their seed, where to run"),
    ],
}

OUTPUTS = {
    "rnn-train": "Outputs: a run folder holds metrics.csv (a row every train.log_every steps), summary.json\n"
                 "(status, final and best metrics, provenance), checkpoint.pt, checkpoint_best.pt, .hydra/\n"
                 "and train.log; the same command in the same folder resumes it. A sweep's folder holds\n"
                 "one run folder per job and analysis/ (plots, summary.md/.csv/.tex; rnn-analyze FOLDER).",
    "rnn-measure-gradients": "Outputs: a run folder holds gradients.csv (step, t, distance T - t, grad_norm,\n"
                             "input_grad_norm, loss, model, seed), summary.json and .hydra/.",
    "rnn-generate": "Outputs: the continuations on stdout (--- between several); nothing is written.",
}


def summary_line(path) -> str:
    """The first comment line of a YAML config (after `# @package ...`), without the `# `;
    `path` a Path or an importlib.resources Traversable."""
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("# @package"):
                continue
            if line.startswith("#"):
                return line.lstrip("#").strip()
            break
    except (OSError, UnicodeDecodeError):
        pass
    return ""


ADDED = ("experiment", "metrics")   # groups not in the defaults list: chosen with +GROUP=NAME


@functools.lru_cache(maxsize=4)   # one search path per --help, not one per group listed
def folders(config_dir: str | None = None) -> list:
    """The config folders of the search path, in Hydra's order reversed (a later one's option of
    the same name wins): the packaged conf/, those search path plugins add (a package of your
    own parts: pkg://your_package.conf) and --config-dir."""
    import importlib.resources

    from hydra._internal.utils import create_config_search_path   # what Hydra itself builds

    found = []
    for element in create_config_search_path(None).get_path():
        scheme, _, where = element.path.partition("://")
        if element.provider in ("hydra", "main") or not where:
            continue
        try:
            found.append(Path(where) if scheme == "file" else importlib.resources.files(where))
        except (ModuleNotFoundError, TypeError):
            continue
    return [conf_dir(), *found] + ([Path(config_dir)] if config_dir else [])


def options(group: str, config_dir: str | None = None) -> list[tuple[str, str]]:
    """(option, summary line) of a config group, the packaged ones, those of search path plugins
    (for the groups of the configs; Hydra's own groups: ours) and a --config-dir's."""
    found: dict[str, str] = {}
    folders_ = folders(config_dir) if not group.startswith("hydra/") else \
        [conf_dir()] + ([Path(config_dir)] if config_dir else [])
    for folder in folders_:
        here = folder.joinpath(*group.split("/"))
        for path in sorted((p for p in here.iterdir() if p.name.endswith(".yaml")) if here.is_dir() else [],
                           key=lambda p: p.name):
            found[path.name.removesuffix(".yaml")] = summary_line(path)
    if group == "hydra/launcher":   # Hydra's own launchers beside ours
        found.setdefault("basic", "one job after another in this process (the default)")
        found.setdefault("submitit_local", "each job in a process of its own, on this machine (submitit)")
    return sorted(found.items())


def help_text(prog: str, config_dir: str | None = None) -> str:
    lines = [USAGE[prog].rstrip(), ""]
    for group in GROUPS[prog]:
        opts = options(group, config_dir)
        if not opts:
            continue
        how = f"+{group}=NAME" if group in ADDED else f"{group}=NAME"
        lines.append(f"{group} ({how}):")
        width = max(len(name) for name, _ in opts)
        lines += [f"  {name:<{width}}  {text}" for name, text in opts]
        lines.append("")
    lines.append("Most used settings (every key of `--cfg job` can be set as KEY=VALUE):")
    width = max(len(o) for o, _ in OVERRIDES[prog])
    lines += [f"  {o:<{width}}  {text}" for o, text in OVERRIDES[prog]]
    lines += ["", OUTPUTS[prog], "",
              "Docs: docs/README.md in the project (configuring, sweeps and clusters, analysis, ...);",
              "--hydra-help: Hydra's own flags."]
    return "\n".join(lines) + "\n"
