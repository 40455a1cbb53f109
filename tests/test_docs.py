"""The documentation cannot go stale: every command of README.md and docs/*.md is run or checked
(tests/doc_commands.py says what each kind of command gets), every sample output the docs show
has the shape of what the current code writes (tests/doc_samples.py made them from a real run),
links stay inside the repository, and the README stays a quick start. How a page marks a command,
and how to regenerate the samples: docs/contributing.md, "Doc tests".

One file, so that one shared tiny sweep (conftest.demo_sweep: the README's demo command, shrunk)
serves every test here (a test file is one unit of pytest-xdist's `--dist loadfile`, and a session
fixture is made once per worker): the last section reads that sweep from every side — its jobs'
folders, the analysis callback that ran when it ended, and the analysis command run on it
afterwards, checked against the runs' own metrics.csv with scipy.
"""
from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats as st

import doc_commands as dc
from conftest import ROOT, run_command
from rnn_experiments.analysis import collect
from rnn_experiments.run.metrics import read_metrics

COMMANDS = dc.all_commands()
RUN = [c for c in COMMANDS if c.prog is not None and dc.exempt_reason(c) is None]
DONE: dict = {}    # same_as_key -> (the first command's id, its outcome)


@pytest.fixture(scope="module")
def stand(demo_sweep, tmp_path_factory):
    sweep, result = demo_sweep
    folder = tmp_path_factory.mktemp("stand-ins")
    book = dc.book(folder)
    text = dc.make_text_run(folder / "text_run", book)
    assert text.code == 0, text.err[-2000:]
    grads = dc.make_gradient_study(folder / "gradients")
    assert grads.code == 0, grads.err[-2000:]
    return dc.StandIns(sweep, folder / "text_run", folder / "gradients", book)


@pytest.fixture(scope="module")
def page_folders(tmp_path_factory, stand):
    """One temporary folder per page, holding a copy of the shared sweep and the page's files."""
    made = {}

    def folder(page):
        if page not in made:
            here = tmp_path_factory.mktemp(page.stem)
            for path, text in dc.files(page):
                (here / path).parent.mkdir(parents=True, exist_ok=True)
                (here / path).write_text(text, encoding="utf-8")
            made[page] = (here, dc.page_sweep(stand, here))
        return made[page]
    return folder


@pytest.mark.parametrize("cmd", RUN, ids=[c.id for c in RUN])
def test_every_doc_command_runs_or_is_checked(cmd, stand, page_folders, demo_sweep):
    if cmd.words == dc.readme_sweep_command().words and cmd.page.name == "README.md":
        sweep, result = demo_sweep     # the shared sweep is this command, run shrunk
        assert result.code == 0 and (sweep / "analysis" / "summary.md").is_file()
        return
    here, sweep = page_folders(cmd.page)
    key = dc.same_as_key(cmd)
    if key in DONE:                    # the same command on another line: run once
        first, outcome = DONE[key]
        assert outcome.code == 0, f"{cmd.id}: the same command as {first}, which failed"
        return
    outcome = dc.run(cmd, here, stand, sweep)
    if outcome.code is None:
        pytest.skip(outcome.how)
    if key is not None:
        DONE[key] = (cmd.id, outcome)
    status = 2 if cmd.shows_error else 0     # a transcript that shows a one-line error: exit 2
    assert outcome.code == status, (f"{cmd.id}: `{cmd.text}` ({outcome.how}) exited {outcome.code}, "
                                    f"expected {status}:\n{outcome.err[-3000:]}")
    for line in cmd.shown:             # a transcript's lines are what the command prints
        if line.strip() and line.strip() != "...":
            assert line.strip() in (outcome.out + outcome.err), f"{cmd.id}: shown {line!r}, got:\n{outcome.err}"


def test_every_shell_line_of_a_doc_is_run_or_exempt_with_a_reason():
    unknown = [f"{c.id}: {c.text}" for c in COMMANDS if c.prog is None and dc.exempt_reason(c) is None]
    assert not unknown, ("shell lines the doc tests neither run nor exempt (add them to EXEMPT in "
                         "tests/doc_commands.py with the reason, or mark the block; docs/contributing.md):\n"
                         + "\n".join(unknown))


# ---- the README is a quick start -----------------------------------------------------------------

SETUP = ["pip install torch==2.13.0 -e . && python -m rnn_experiments.train -m +experiment=demo",
         'pip install torch==2.13.0 -e ".[dev]" && python -m pytest -q']


def test_readme_is_a_quick_start_opened_by_the_two_setup_commands():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 150, f"README.md has {len(lines)} lines; the quick start keeps to 150 (the rest: docs/)"
    first = dc.blocks(ROOT / "README.md")[0]
    assert [t for _, t in first.lines] == SETUP
    assert SETUP[1] in (ROOT / ".ci" / "run").read_text(encoding="utf-8")   # CI runs the README's test command
    assert dc.readme_sweep_command().args == ["-m", "+experiment=demo"]


# ---- links stay inside the repository ----------------------------------------------------------

# pages written in parallel with this one; remove each once it is merged (then a missing one fails)
PENDING = {"docs/slurm.md", "docs/search.md"}


def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_and_images_resolve_inside_the_repository():
    bad = []
    for page in dc.PAGES:
        text = page.read_text(encoding="utf-8")
        if "../shared" in text:
            bad.append(f"{page.relative_to(ROOT)}: mentions ../shared, outside the repository")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"^[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            rel = dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else None
            if rel is None:
                bad.append(f"{page.relative_to(ROOT)}: {target} leaves the repository")
            elif not dest.exists():
                if str(rel) not in PENDING:
                    bad.append(f"{page.relative_to(ROOT)}: {target} does not exist")
            elif anchor and dest.suffix == ".md":
                headings = {slug(h) for h in re.findall(r"^#+ (.*)$", dest.read_text(encoding="utf-8"), re.M)}
                if anchor not in headings:
                    bad.append(f"{page.relative_to(ROOT)}: {target}: no heading #{anchor} in {rel}")
    assert not bad, "\n".join(bad)


# ---- sample outputs: made by tests/doc_samples.py, shaped like what the code writes now --------

import doc_samples as ds  # noqa: E402

SAMPLES = [(page, name, content) for page in ds.PAGES
           for name, content in ds.regions(page.read_text(encoding="utf-8"))]


def test_every_sample_was_made_by_the_script():
    assert {name for _, name, _ in SAMPLES} == set(ds.NAMES)   # each is shown somewhere
    for page, name, content in SAMPLES:
        assert ds.PLACEHOLDER not in content, f"{page.relative_to(ROOT)}: run python tests/doc_samples.py ({name})"


def fenced(content: str) -> list[str]:
    lines = content.strip().splitlines()
    return lines[1:-1] if lines and lines[0].startswith("```") else lines


def table_parts(text: str):
    """(header row, first cells of the rows, the lines after the table)."""
    lines = [line for line in text.strip().splitlines()]
    rows = [line for line in lines if line.startswith("|")]
    return rows[0], [r.split("|")[1].strip() for r in rows[2:]], [line for line in lines if not line.startswith("|")]


def no_pdf(line: str) -> str:
    """The shared sweep draws png only (doc_commands.SHRINK); the demo png and pdf."""
    return re.sub(r"\S+\.pdf\b ?", "", line.replace("(png, pdf)", "(png)")).strip()


def check_sample(name, content, sweep, result):
    analysis, job = sweep / "analysis", sweep / "0"
    if name == "demo-table":
        shown, now = table_parts(content), table_parts((analysis / "summary.md").read_text(encoding="utf-8"))
        assert shown[0] == now[0] and shown[1] == now[1] and shown[2][-1] == now[2][-1]
    elif name == "demo-compare":
        shown, now = table_parts(content), table_parts((analysis / "compare.md").read_text(encoding="utf-8"))
        assert shown[0] == now[0] and shown[1] == now[1]
    elif name == "demo-end":
        now = [re.sub(r"\S*/analysis/", "SWEEP/analysis/", line) for line in ds.analysis_lines(result.out)]
        shown = [no_pdf(re.sub(r"\S*/analysis/", "SWEEP/analysis/", line)) for line in fenced(content)]
        assert shown == now
    elif name == "demo-files":
        lines = fenced(content)
        names = lambda line: {w.rstrip("/") for w in line.split()[1:] if not w.endswith(".pdf")}   # noqa: E731
        run = next(line for line in lines if line.strip().startswith("0/"))
        assert names(run) == {p.name for p in job.iterdir()}
        ana = next(line for line in lines if line.strip().startswith("analysis/"))
        assert names(ana) == {p.name for p in analysis.iterdir() if not p.name.startswith(".rnn-")}
        jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())
        top = {line.strip() for line in lines[1:] if not line.strip().split()[0].rstrip("/").replace("/", "").isdigit()
               and not line.strip().startswith("analysis/") and "(the same" not in line}
        assert top == {p.name for p in sweep.iterdir() if p.is_file()} and jobs == ["0", "1", "2", "3"]
    elif name == "metrics-csv":
        assert fenced(content)[0] == (job / "metrics.csv").read_text(encoding="utf-8").splitlines()[0]
    elif name == "summary-json":
        shown, now = json.loads("\n".join(fenced(content))), json.loads((job / "summary.json").read_text())
        if "git" not in now and not (ROOT / ".git").exists():   # provenance of a git checkout only
            shown.pop("git", None)
        assert set(shown) == set(now)
        for key, value in shown.items():
            if isinstance(value, dict) and isinstance(now[key], dict):
                assert set(value) == set(now[key]), key
    elif name == "demo-machine":
        assert "load average" in content     # the figure comes with its machine and load


@pytest.mark.parametrize("page, name, content", SAMPLES, ids=[f"{p.relative_to(ROOT)}:{n}" for p, n, _ in SAMPLES])
def test_sample_has_the_shape_of_what_the_code_writes_now(page, name, content, demo_sweep):
    sweep, result = demo_sweep
    try:
        check_sample(name, content, sweep, result)
    except (AssertionError, StopIteration, ValueError) as e:
        raise AssertionError(f"{page.relative_to(ROOT)}: sample {name} differs from what the code writes now "
                             f"(run python tests/doc_samples.py): {e!r}") from None


# ---- users' own presets get the analysis at the end of their sweep ------------------------------

def test_a_users_preset_from_the_docs_ends_its_sweep_with_the_analysis(tmp_path):
    """configuring.md's preset, in a --config-dir, as a user runs it (shrunk to its 2 models x 1
    seed, tables only): the sweep analyses itself and compares what the preset asks for."""
    page = ROOT / "docs" / "configuring.md"
    for path, text in dc.files(page):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text, encoding="utf-8")
    cmd = next(c for c in dc.commands(page) if "+experiment=my_study" in c.args and c.prog == "rnn-train")
    sweep = tmp_path / "sweep"
    done = run_command("rnn-train", *cmd.args, *dc.SHRINK, "seed=0", "hydra.callbacks.analyze.formats=[]",
                       f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert done.code == 0, done.err[-3000:]
    assert f"== analysis of {sweep}" in done.out
    summary = (sweep / "analysis" / "summary.md").read_text(encoding="utf-8")
    assert "| lstm_small |" in summary and "| peep_lstm |" in summary      # lstm_small: its own name
    assert (sweep / "analysis" / "compare.md").is_file()                   # its compare: model.name


# ---- the mechanism itself: it finds what a page shows, and a broken command fails ----------------

PAGE = r"""# A page

```bash
R=some/folder
pip install something          # exempt
rnn-train -m model=lstm,peep_lstm \
    seed=0,1                   # a sweep over two lines
python -m rnn_experiments.analyze $R --compare model.name
```

<!-- doc-test: skip needs a quantum computer -->
```bash
rnn-train device=qpu
```

<!-- doc-test: file my/x.yaml -->
```yaml
a: 1
```

```console
$ rnn-train train.lr=-1
rnn-train: error: train.lr=-1.0 is invalid: expected a finite number > 0
```

    rnn-generate checkpoint=RUN_DIR
    some output line
"""


def test_the_parser_finds_commands_variables_markers_and_transcripts(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(PAGE, encoding="utf-8")
    found = dc.commands(page)
    assert [(c.line, c.prog, c.args) for c in found] == [
        (5, None, ["install", "something"]),
        (6, "rnn-train", ["-m", "model=lstm,peep_lstm", "seed=0,1"]),
        (8, "rnn-analyze", ["some/folder", "--compare", "model.name"]),
        (13, "rnn-train", ["device=qpu"]),
        (22, "rnn-train", ["train.lr=-1"]),
        (26, "rnn-generate", ["checkpoint=RUN_DIR"]),
    ]
    assert dc.exempt_reason(found[0]).startswith("installs packages")
    assert dc.exempt_reason(found[3]) == "needs a quantum computer"
    assert found[4].shows_error and not found[1].shows_error
    assert dc.files(page) == [("my/x.yaml", "a: 1\n")]


BROKEN = [
    ("rnn-train -m model=lstm,peep_lsmt seed=0,1", "peep_lsmt"),         # a bad option in a sweep
    ("rnn-train -m seed=0,-1", "seed=-1"),                              # a bad value in a sweep
    ("rnn-train -m train.lrr=1e-3,1e-2", "train.lrr"),                  # an unknown key in a sweep
    ("rnn-train model=gru train.lr=-1", "train.lr"),                    # a single run of the guide
    ("rnn-analyze SWEEP_DIR --compare model.nme", "model.nme"),         # a key that is not one
    ("rnn-generate checkpoint=RUN_DIR lenght=3", "lenght"),
    ("rnn-bench --only sweep --sweep-stepz 3", "--sweep-stepz"),
]


@pytest.mark.parametrize("line, named", BROKEN, ids=[b[1] for b in BROKEN])
def test_a_broken_doc_command_fails(line, named, stand, tmp_path):
    page = tmp_path / "docs" / "page.md"
    page.parent.mkdir()
    page.write_text(f"```bash\n{line}\n```\n", encoding="utf-8")
    cmd, = dc.commands(page)
    here = tmp_path / "here"
    here.mkdir()
    outcome = dc.run(cmd, here, stand, dc.page_sweep(stand, here))
    assert outcome.code != 0 and named in outcome.err, outcome


# ---- the README's demo sweep (shrunk), read from every side ----------------------------------------

def jobs(sweep):
    return sorted((p for p in sweep.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))


def test_every_job_ran_in_its_own_folder(demo_sweep):
    sweep, result = demo_sweep
    runs = jobs(sweep)
    assert [p.name for p in runs] == ["0", "1", "2", "3"]
    seen = []
    for run in runs:
        summary = json.loads((run / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["step"] == 20
        assert read_metrics(run / "metrics.csv").step.tolist() == [5, 10, 15, 20]
        overrides = yaml.safe_load((run / ".hydra" / "overrides.yaml").read_text())
        seen.append((summary["model"], summary["seed"]))
        assert f"seed={summary['seed']}" in overrides and f"model={summary['model']}" in overrides
    assert seen == [("lstm", 0), ("lstm", 1), ("peep_lstm", 0), ("peep_lstm", 1)]
    assert (sweep / "multirun.yaml").is_file()


def test_the_callback_analysed_the_sweep_when_it_ended(demo_sweep):
    sweep, result = demo_sweep
    analysis = sweep / "analysis"
    assert f"plots (png): {analysis / 'accuracy.png'}" in result.out
    assert {"summary.csv", "summary.md", "summary.tex", "compare.csv", "compare.md", "compare.tex",
            "accuracy.png", "eval_accuracy.png", "loss.png", "eval_loss.png"} <= {p.name for p in analysis.iterdir()}
    assert not (analysis / "rerun.sh").exists()     # nothing failed or missing
    # the terminal's tables fit 100 columns; the files hold every column
    from rnn_experiments.analysis.aggregate import TERMINAL
    shown = result.out.split("\nsummary: ", 1)[1].split("\nplots ", 1)[0]
    assert "lstm " in shown and "peep_lstm " in shown and "final eval acc" in shown
    assert max(len(line) for line in shown.splitlines()[1:] if line) <= TERMINAL
    md = (analysis / "summary.md").read_text()
    assert "final eval acc" in md and max(len(line) for line in md.splitlines()) > TERMINAL


def test_the_analysis_command_equals_the_runs_metrics(demo_sweep, tmp_path):
    sweep, _ = demo_sweep
    out = tmp_path / "out"
    res = run_command("rnn-analyze", sweep, "--out", out, "--formats", "png", "--compare", "model.name")
    assert res.code == 0, res.err[-2000:]
    t = pd.read_csv(out / "summary.csv")
    assert list(t["model.name"]) == ["lstm", "peep_lstm"] and list(t["seeds"]) == [2, 2]
    df = collect(sweep)
    finals = df.sort_values("step").groupby(["model.name", "run_dir"])["accuracy"].last().groupby("model.name").mean()
    assert t["final_accuracy_mean"].tolist() == pytest.approx(finals.tolist())
    assert "failed or missing" not in res.out and (out / "accuracy.png").is_file()
    # the command and the callback agree
    c = pd.read_csv(out / "compare.csv", keep_default_na=False, na_values=[""])
    pd.testing.assert_frame_equal(c, pd.read_csv(sweep / "analysis" / "compare.csv",
                                                 keep_default_na=False, na_values=[""]))
    assert (out / "compare.tex").is_file() and "| statistic |" in (out / "compare.md").read_text()
    shown = res.out.split("\ncomparison of model.name (every column", 1)[1].split("\nplots ", 1)[0]
    assert "lstm − peep_lstm [95 % CI]" in shown and "P(lstm better)" in shown    # the terminal's view
    assert max(len(line) for line in shown.splitlines()[1:] if line) <= 100


def test_compare_p_values_equal_scipy_on_the_runs_own_metrics(demo_sweep):
    sweep, _ = demo_sweep
    c = pd.read_csv(sweep / "analysis" / "compare.csv", keep_default_na=False, na_values=[""])
    assert list(c["statistic"]) == ["final_accuracy", "best_accuracy", "final_eval_accuracy",
                                    "steps_to_threshold", "final_loss", "final_eval_loss",
                                    "best_eval_loss", "wall_time_s"]
    assert (set(c["a"]), set(c["b"])) == ({"lstm"}, {"peep_lstm"})
    values = {"lstm": {}, "peep_lstm": {}}     # statistic -> per-run values, from the run folders
    for d in jobs(sweep):
        model = yaml.safe_load((d / ".hydra" / "config.yaml").read_text())["model"]["name"]
        m = pd.read_csv(d / "metrics.csv")
        reached = m.loc[m["accuracy"] >= 0.99, "step"]
        for k, v in {"final_accuracy": m["accuracy"].iloc[-1], "best_accuracy": m["accuracy"].max(),
                     "final_eval_accuracy": m["eval_accuracy"].dropna().iloc[-1],
                     "final_loss": m["loss"].iloc[-1],
                     "final_eval_loss": m["eval_loss"].dropna().iloc[-1],
                     "best_eval_loss": m["eval_loss"].min(),
                     "steps_to_threshold": reached.min() if len(reached) else np.nan}.items():
            values[model].setdefault(k, []).append(v)
    for row in c[c["statistic"] != "wall_time_s"].itertuples(index=False):
        a, b = (np.array(values[m][row.statistic], dtype=float) for m in ("lstm", "peep_lstm"))  # seeds 0, 1
        keep = ~(np.isnan(a) | np.isnan(b))      # same seed, same batches: the runs are pairs
        a, b = a[keep], b[keep]
        assert row.design == "paired" and (row.n_a, row.n_b) == (len(a), len(b))
        assert "n < 3 seeds (2 pairs)" in row.note or "n < 2 (" in row.note
        if len(a) < 2 or np.std(a - b) == 0:
            assert np.isnan(row.p_value)
        else:
            assert row.p_value == pytest.approx(st.ttest_rel(a, b).pvalue)
            assert row.p_holm >= row.p_value
