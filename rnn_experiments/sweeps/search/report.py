"""A search's report, printed and written when it ends and by `rnn-analyze` on its folder.

    search.md                   the trials table, best first, with readable numbers; the best
                                run's folder; the parameter importances; the commands that run
                                the best setting at other seeds
    search_trials.csv           the same table, numbers in full

A search of k seeds a trial (seeds.py) shows each trial's spread: the table's `std` (the sample
standard deviation over the seeds its value is the mean of) and `n` (how many: k for a completed
trial; a pruned trial's are those of the step it was judged at last, where fewer seeds may have
reported), the best trial's line the same; search_trials.csv also has each seed's value.
    search_history.png/.pdf     the objective by trial (pruned trials at their last report, open
                                markers) and the best so far
    optimization_results.yaml   in the sweep folder (written by the search): best_params,
                                best_value, best_trial, best_run_dir, the study's name and storage

Importances: Optuna's PED-ANOVA evaluator (optuna.importance.PedAnovaImportanceEvaluator, no
other package needed), over the completed trials; they need at least two with different values.
"""
from __future__ import annotations

import glob
import math
from pathlib import Path

import pandas as pd
import yaml

from rnn_experiments.analysis.aggregate import markdown_table, readable
from rnn_experiments.sweeps.search import STUDY_FILE
from rnn_experiments.run.folder import SummaryError, read_summary, write_text
from rnn_experiments.analysis.rerun import _overrides, command, config_dirs
from rnn_experiments.extras import OPTUNA_MIN, optuna_problem
from rnn_experiments.sweeps.search import SearchError
from rnn_experiments.sweeps.search.seeds import KEY as SEEDS_KEY, run_dirs
from rnn_experiments.sweeps.search.trial import OBJECTIVE

STATE_ORDER = {"complete": 0, "pruned": 1, "running": 2, "fail": 3, "waiting": 4}


def _summary(run_dir) -> dict:
    if not run_dir:
        return {}
    try:
        return read_summary(run_dir) or {}
    except SummaryError:
        return {}


def _number(x) -> float:
    return math.nan if x is None else float(x)


def trials_table(study) -> pd.DataFrame:
    """One row per trial that ran (not those `not_run`), best first: completed by value, then
    pruned (by their last reported value), then running, then failed; columns trial, state,
    value, (k seeds a trial: std, n,) the parameters, steps trained, wall time, run folder, note
    (why it failed or stopped), (k seeds: seeds, seed_values, run_dirs). A trial of k seeds:
    its steps are its seeds' most, its wall time their sum (a packed run's: its share of its
    pack's time, wall_time_s / pack.size, as the analysis counts it), its run folder its first seed's."""
    maximize = study.direction.name == "MAXIMIZE"
    trials = [t for t in study.get_trials(deepcopy=False) if "not_run" not in t.user_attrs]
    seeded = any("seeds" in t.user_attrs for t in trials)
    rows = []
    for t in trials:
        folders = run_dirs(t)
        summaries = [_summary(d) for d in folders] or [{}]
        state = t.state.name.lower()
        note = t.user_attrs.get("failure") or next((s["stop_reason"] for s in summaries if s.get("stop_reason")), "")
        steps = [s["step"] for s in summaries if "step" in s]
        walls = [s["wall_time_s"] / s.get("pack", {}).get("size", 1)     # a packed run: its share
                 for s in summaries if "wall_time_s" in s]
        row = {"trial": t.number, "state": "failed" if state == "fail" else state,
               "value": t.value if t.value is not None else math.nan}
        if seeded:
            row.update(std=_number(t.user_attrs.get("std")), n=_number(t.user_attrs.get("n")))
        row.update(t.params)
        row.update(steps=max(steps) if steps else math.nan,
                   wall_time_s=sum(walls) if walls else math.nan, run_dir=folders[0] if folders else "",
                   note=note, _order=STATE_ORDER.get(state, 9))
        if seeded:
            values = t.user_attrs.get("seed_values", [])
            row.update(seeds=" ".join(map(str, t.user_attrs.get("seeds", []))),
                       seed_values=" ".join("–" if v is None else repr(v) for v in values),
                       run_dirs=" ".join(folders))
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    df["_key"] = -df["value"] if maximize else df["value"]
    df = df.sort_values(["_order", "_key", "trial"], na_position="last").drop(columns=["_order", "_key"])
    df.attrs["params"] = [c for c in df.columns if c not in ("trial", "state", "value", "std", "n", "steps",
                                                             "wall_time_s", "run_dir", "note", "seeds",
                                                             "seed_values", "run_dirs")]
    return df.reset_index(drop=True)


def format_trials(df: pd.DataFrame) -> pd.DataFrame:
    """The table's numbers as text: value and std to 4 decimals, parameters to 4 significant
    digits (the seeds' values and folders are left to search_trials.csv)."""
    out = pd.DataFrame({"trial": df["trial"].astype(str), "state": df["state"],
                        "value": ["–" if pd.isna(v) else f"{v:.4f}" for v in df["value"]]})
    if "std" in df:
        out["std"] = ["–" if pd.isna(v) else f"{v:.4f}" for v in df["std"]]
        out["n"] = ["–" if pd.isna(v) else str(int(v)) for v in df["n"]]
    for p in df.attrs.get("params", []):
        out[p] = readable(df[p].astype(object).where(df[p].notna(), "–"))
    out["steps"] = ["–" if pd.isna(s) else str(int(s)) for s in df["steps"]]
    out["wall time"] = ["–" if pd.isna(w) else f"{w:.1f} s" for w in df["wall_time_s"]]
    out["run folder"] = df["run_dir"]
    out["note"] = df["note"]
    return out


def importances(study) -> tuple[dict, str]:
    """({param: importance}, "") or ({}, why there are none)."""
    import optuna
    complete = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
    if len({t.value for t in complete}) < 2:
        return {}, f"need two completed trials with different values (have {len(complete)})"
    try:
        return optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.PedAnovaImportanceEvaluator()), ""
    except (ValueError, RuntimeError) as e:
        return {}, str(e).strip().splitlines()[0]


def plot_history(study, path_stem: Path, formats=("png", "pdf")) -> list[Path]:
    """The optimisation history: each completed trial's value, each pruned trial's last reported
    value (open marker), and the best so far. No formats: nothing drawn."""
    if not formats:
        return []
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna
    from matplotlib.ticker import MaxNLocator
    from rnn_experiments.analysis.plot import save_figure   # lazy: matplotlib only when figures are asked for
    maximize = study.direction.name == "MAXIMIZE"
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    pruned = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.PRUNED,))
              if t.value is not None]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([t.number for t in done], [t.value for t in done], "o", color="C0", label="completed")
    if pruned:
        ax.plot([t.number for t in pruned], [t.value for t in pruned], "o", mfc="none", color="C1",
                label="pruned (last report)")
    best, xs, ys = None, [], []
    for t in sorted(done, key=lambda t: t.number):
        if best is None or (t.value > best if maximize else t.value < best):
            best = t.value
        xs.append(t.number)
        ys.append(best)
    last = max((t.number for t in study.get_trials(deepcopy=False)), default=0)
    if xs:
        ax.step(xs + [last], ys + [ys[-1]], where="post", color="C2", label="best so far")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel(f"final {OBJECTIVE} ({'higher' if maximize else 'lower'} is better)")   # what a trial returns
    ax.set_title(f"study {study.study_name}: optimisation history")
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    paths = save_figure(fig, path_stem, formats)
    plt.close(fig)
    return paths


def results(study, storage: str | None = None) -> dict:
    """optimization_results.yaml's content (best_params and best_value as before this sweeper,
    plus the best trial's number and run folder, the study's name and storage, trial counts)."""
    import optuna
    counts = {s.name.lower(): len(study.get_trials(deepcopy=False, states=(s,)))
              for s in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
                        optuna.trial.TrialState.FAIL)}
    out = {"name": "optuna", "study_name": study.study_name, "storage": storage,
           "direction": study.direction.name.lower(), "trials": counts}
    out[SEEDS_KEY] = study.user_attrs.get(SEEDS_KEY, 1)
    try:
        best = study.best_trial
    except ValueError:   # no completed trial
        return {**out, "best_params": None, "best_value": None}
    seeded = {f"best_{k}": best.user_attrs[k] for k in ("std", "n", "seeds", "run_dirs") if k in best.user_attrs}
    return {**out, "best_params": dict(best.params), "best_value": float(best.value),
            "best_trial": best.number, "best_run_dir": best.user_attrs.get("run_dir"), **seeded}


def seed_commands(best_run_dir: str | None, seeds=(1, 2)) -> list[str]:
    """Single runs of the best trial's overrides at other seeds (those the search did not run it at)."""
    if not best_run_dir:
        return []
    overrides = [o for o in _overrides(Path(best_run_dir)) if not o.lstrip("+~").startswith("seed=")]
    if not overrides:
        return []
    dirs = config_dirs(Path(best_run_dir) / ".hydra" / "hydra.yaml")
    return [command(overrides + [f"seed={s}"], config_dirs=dirs) for s in seeds]


def report(study, out: Path, sweep_dir: Path | None = None, storage: str | None = None,
           echo=print, formats=("png", "pdf"), shown: Path | None = None) -> dict:
    """Print the report and write it into `out` (see the module doc); with `sweep_dir`, also
    <sweep_dir>/optimization_results.yaml. `shown`: the folder the files will be in when the
    reader looks (an analysis staged in `out`, then moved there: the paths printed are those).
    Returns {"table", "results", "importances", "files"}."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    df = trials_table(study)
    res = results(study, storage)
    imp, why = importances(study)
    lines = [f"# Search: study {study.study_name} ({res['direction']})", ""]
    counts = res["trials"]
    not_run = sum("not_run" in t.user_attrs for t in study.get_trials(deepcopy=False))
    lines.append(f"{counts['complete']} completed, {counts['pruned']} pruned, {counts['fail']} failed"
                 + (f" ({not_run} proposed again and not run)" if not_run else "")
                 + (f"; storage {storage}" if storage else ""))
    if res["best_params"] is not None:
        params = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in res["best_params"].items())
        spread = ""
        if "best_n" in res:
            std = "–" if res.get("best_std") is None else f"{res['best_std']:.4f}"
            spread = f" (the mean over {res['best_n']} seeds {', '.join(map(str, res['best_seeds']))}; std {std})"
        lines += ["", f"best: trial {res['best_trial']}, value {res['best_value']:.4f}{spread}, {params}",
                  f"best run folder: {res['best_run_dir']}"]
    else:
        lines += ["", "best: none (no trial completed)"]
    if not df.empty:
        caption = ("trials, best first (value: the objective; pruned: the last value reported before the "
                   "pruner stopped it)")
        if "std" in df:
            caption = ("trials, best first (value: the mean of the objective over the trial's seeds, std their "
                       "sample standard deviation, n how many; pruned: the mean the pruner judged last, over the "
                       "seeds that had reported that step; steps: its seeds' most; wall time: their sum, a pack's "
                       "counted once; run folder: its first seed's, the others in search_trials.csv)")
        lines += ["", markdown_table(format_trials(df), caption).rstrip()]
    lines += ["", "parameter importances (PED-ANOVA): " + (", ".join(f"{k} {v:.3f}" for k, v in imp.items())
                                                          if imp else f"none ({why})")]
    used = res.get("best_seeds")
    commands = seed_commands(res.get("best_run_dir"), (max(used) + 1, max(used) + 2) if used else (1, 2))
    if commands:
        lines += ["", (f"the best setting at other seeds (the search ran it at seeds {', '.join(map(str, used))}):"
                       if used else "the best setting at other seeds (a search compares settings at one seed):")]
        lines += [f"    {c}" for c in commands]
    text = "\n".join(lines) + "\n"
    files = [out / "search.md", out / "search_trials.csv"]
    write_text(files[0], text)
    df.to_csv(files[1], index=False)
    files += plot_history(study, out / "search_history", formats)
    if imp:
        files.append(out / "search_importances.csv")
        pd.DataFrame({"param": list(imp), "importance": list(imp.values())}).to_csv(files[-1], index=False)
    if sweep_dir is not None:
        files.append(Path(sweep_dir) / "optimization_results.yaml")
        write_text(files[-1], yaml.safe_dump(res, sort_keys=False))
    where = Path(shown) if shown is not None else out
    history = f"; history: {where / 'search_history'}.{formats[0]}" if formats else ""
    echo("\n" + text + f"report: {where / files[0].name} (table: {where / files[1].name}{history})")
    return {"table": df, "results": res, "importances": imp, "files": files}


def report_folder(sweep_dir, out, echo=print, formats=("png", "pdf"), shown=None) -> dict | None:
    """`report` of the search whose sweep folder is `sweep_dir` (its study.yaml names the study);
    None, with a line saying why, when the study cannot be read (no Optuna, storage gone)."""
    path = Path(sweep_dir) / STUDY_FILE
    try:
        where = yaml.safe_load(path.read_text())
        spec, name = str(where["storage"]), str(where["study_name"])
    except (OSError, yaml.YAMLError, KeyError, TypeError) as e:
        echo(f"no search report: {path} is unreadable ({type(e).__name__})")
        return None
    problem = optuna_problem()
    if problem:
        echo(f"no search report: it needs optuna >= {OPTUNA_MIN} ({problem}): "
             "pip install \"rnn-experiments[optuna]\"")
        return None
    from rnn_experiments.sweeps.search.study import load   # lazy: optuna, checked installed just above
    try:
        study = load(spec, name)
    except SearchError as e:
        echo(f"no search report: {e}")
        return None
    return report(study, out, storage=spec, echo=echo, formats=formats, shown=shown)


def extra_for(paths, echo=print, formats=("png", "pdf")):
    """For `analysis.report.analyze(paths, extra=...)`: when PATHS is the sweep folder of a
    search (it holds study.yaml), a callable that writes the search's report into the analysis
    being written; None otherwise."""
    paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if len(paths) != 1 or glob.has_magic(str(paths[0])) or not (Path(paths[0]) / STUDY_FILE).is_file():
        return None
    return lambda out, shown=None: report_folder(paths[0], out, echo=echo, formats=formats, shown=shown)
