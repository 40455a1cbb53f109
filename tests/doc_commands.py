"""The commands of the documentation, found and run by tests/test_docs.py (how a page marks a
command, and what each kind of command gets: docs/contributing.md, "Doc tests").

Every fenced or indented code block of README.md and docs/*.md is read (```yaml, ```python and
other non-shell blocks aside). In a block, a line (with its `\\` continuation lines) that starts
with `python -m rnn_experiments.X` or `rnn-X` (an optional `$ ` prompt before it) is a command;
in a ```bash / ```sh block every other line is too (pip, tensorboard, ...), and must be a shell
command of `EXEMPT` below, a variable (`R=path`, used later as `$R`) or a comment. Commands run
in this process (conftest.run_command), each page in a fresh temporary folder; what each gets:

    rnn-train, rnn-measure-gradients   a single run of the README: run, shrunk by SHRINK
                                       (STUDY_SHRINK); of the guide: composed and checked as
                                       `--jobs` checks it (running each costs ~0.4 s);
                                       a sweep, or --jobs: a dry run (one job per value of every
                                       swept key, each composed and checked as `--jobs` checks it);
                                       device=cuda: the same dry run, on device=cpu (no GPU here);
                                       --help, --cfg, --info: as written (they only print);
                                       a transcript that shows its error: as written (refused)
    rnn-analyze                        run on a copy of the shared tiny sweep (any PATH but one
                                       an earlier command of the page made), without figures; when it names keys that do not vary there, its
                                       options parsed and its keys checked against the config
    rnn-generate                       run on the tiny text model (RUN_DIR)
    rnn-plot-gradients                 run on a tiny gradient study
    rnn-download                       run, from a local copy (--url file://BOOK --no-verify)
    rnn-bench                          its flags checked against its --help (a benchmark: minutes)

Placeholders in commands (upper case, explained where a page uses them): SWEEP_DIR, RUN_DIR,
BOOK, PARTITION. Output folders (hydra.run.dir, hydra.sweep.dir, --out, --dir) land in the
page's temporary folder, an absolute one too: a doc command never writes into the repository.
A page exempts a block with `<!-- doc-test: skip REASON -->` on the line before it, and writes
a block's text into a file before its commands run with `<!-- doc-test: file PATH -->`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from conftest import ROOT, STUDY_TINY, TINY, run_command

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Appended to every training command that is run: a tiny model, 20 steps, one thread, png plots.
SHRINK = [*TINY, "dataset.seq_length=3", "train.threads=1", "hydra.callbacks.analyze.formats=[png]"]
# ... and to every gradient study that is run (its loop settings come from gradients.steps).
STUDY_SHRINK = [*STUDY_TINY, "dataset.seq_length=3", "train.threads=1", "gradients.steps=[0,2]",
                "gradients.batch_size=8"]

# Appended to every analysis that is run: no figures (every option is still checked before the
# analysis writes anything; the plots themselves are tested in tests/analysis/).
ANALYZE_SHRINK = ["--formats", ""]

# Shell lines a page may show that the doc tests do not run, each with the reason.
EXEMPT = {
    "pip": "installs packages (CI runs the README's install command itself: .ci/run)",
    "python -m pytest": "the test suite itself",
    "pytest": "the test suite itself",
    "tensorboard": "starts a web server",
    "cd": "changes folder (each page's commands run in a fresh temporary folder)",
    "git": "needs a repository or the network",
    "sbatch": "needs a SLURM cluster", "srun": "needs a SLURM cluster", "squeue": "needs a SLURM cluster",
    "sinfo": "needs a SLURM cluster", "scancel": "needs a SLURM cluster", "sacct": "needs a SLURM cluster",
    "nvidia-smi": "needs a GPU",
    "lscpu": "prints the machine", "uptime": "prints the machine",
    "python tests/doc_samples.py": "runs the real demo (minutes) and rewrites the docs' samples",
    "ssh": "needs a remote machine", "scp": "needs a remote machine",
    "module": "a cluster's environment modules",
    "sudo bash tests/cluster/slurm.sh": "starts the SLURM test cluster (as root; CI runs it: .ci/run)",
    "python tests/cluster/measure_delays.py": "needs the SLURM test cluster (CI's slurm step)",
}

NOT_COMMANDS = {"yaml", "yml", "python", "py", "json", "csv", "toml", "ini", "diff", "markdown", "md"}
SHELL = {"bash", "sh", "shell", "console", "zsh"}
COMMAND = re.compile(r"^(?:python -m rnn_experiments\.(\w+)|rnn-([a-z-]+))(?=\s|$)")
MARKER = re.compile(r"^\s*<!--\s*doc-test:\s*(\w+)\s*(.*?)\s*-->\s*$")
PLACEHOLDERS = ("SWEEP_DIR", "RUN_DIR", "BOOK", "PARTITION")
PROGS = {"train": "rnn-train", "analyze": "rnn-analyze", "generate": "rnn-generate",
         "measure_gradients": "rnn-measure-gradients", "plot_gradients": "rnn-plot-gradients",
         "download": "rnn-download", "bench": "rnn-bench"}
HYDRA = {"rnn-train": "config", "rnn-measure-gradients": "gradients"}


@dataclass
class Block:
    page: Path
    line: int                        # of its first content line
    lang: str                        # the fence's info word, "" or "indented"
    lines: list[tuple[int, str]]     # (line number, text)
    marker: Optional[tuple[str, str]] = None   # ("skip", reason) or ("file", path)


@dataclass
class Command:
    page: Path
    line: int
    text: str                        # as the page shows it (continuations joined)
    words: list[str]                 # shell words, variables substituted
    prog: Optional[str]              # rnn-train, ...; None for a shell line
    block: Block = field(repr=False)
    shown: list[str] = field(default_factory=list)   # a transcript's output lines under `$ command`

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def shows_error(self) -> bool:
        """A transcript that shows the command's one-line error (it must exit 2)."""
        return any(re.match(r"^rnn-[a-z-]+: error: ", line) for line in self.shown)

    @property
    def args(self) -> list[str]:
        return self.words[3:] if self.words[:2] == ["python", "-m"] else self.words[1:]


def blocks(page: Path) -> list[Block]:
    """The code blocks of a markdown page: fenced (``` or ~~~) and indented (4 spaces)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found, i = [], 0

    def marker_before(n):   # the nearest non-blank line above line index n
        j = n - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        m = MARKER.match(lines[j]) if j >= 0 else None
        return (m.group(1), m.group(2)) if m else None

    while i < len(lines):
        fence = re.match(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)", lines[i])
        if fence:
            indent, mark, lang = fence.groups()
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith(mark):
                j += 1
            body = [(k + 1, lines[k][len(indent):] if lines[k].startswith(indent) else lines[k].lstrip())
                    for k in range(i + 1, j)]
            found.append(Block(page, i + 2, lang.lower(), body, marker_before(i)))
            i = j + 1
            continue
        if lines[i].startswith("    ") and lines[i].strip() and (i == 0 or not lines[i - 1].strip()):
            j, body = i, []
            while j < len(lines) and (lines[j].startswith("    ") or not lines[j].strip()):
                body.append((j + 1, lines[j][4:]))
                j += 1
            while body and not body[-1][1].strip():
                body.pop()
            found.append(Block(page, i + 1, "indented", body, marker_before(i)))
            i = j
            continue
        i += 1
    return found


def _logical_lines(block: Block):
    """(line number, text) with `\\` continuations joined."""
    pending, start = "", None
    for n, text in block.lines:
        if start is None:
            start = n
        if text.rstrip().endswith("\\"):
            pending += text.rstrip()[:-1] + " "
            continue
        yield start, pending + text
        pending, start = "", None
    if start is not None:
        yield start, pending


def _split(text: str) -> list[list[str]]:
    """Shell words of a line, split at && ; | (comments dropped)."""
    lex = shlex.shlex(text, posix=True, punctuation_chars=";&|")
    lex.whitespace_split = True
    lex.commenters = "#"
    parts, words = [], []
    for w in lex:
        if w in ("&&", ";", "|", "||", "&"):
            parts.append(words)
            words = []
        else:
            words.append(w)
    return [p for p in parts + [words] if p]


def commands(page: Path) -> list[Command]:
    """Every command of a page, in order (see the module doc for what counts)."""
    found = []
    for block in blocks(page):
        if block.lang in NOT_COMMANDS or (block.marker and block.marker[0] == "file"):
            continue
        shell = block.lang in SHELL
        variables: dict[str, str] = {}
        transcript = None          # the `$ command` whose output lines follow
        for n, text in _logical_lines(block):
            prompt = text.strip().startswith("$ ")
            line = re.sub(r"^\$\s+", "", text.strip())
            if transcript is not None and not prompt:
                transcript.shown.append(text.rstrip())
                continue
            if not line or line.startswith("#"):
                continue
            if not (shell or COMMAND.match(line) or prompt):
                continue          # output in a text block
            line = re.sub(r"\$\{?([A-Za-z_]\w*)\}?", lambda m: variables.get(m.group(1), m.group(0)), line)
            for words in _split(line):
                names = words[1:] if words[0] == "export" else words
                assigns = [re.fullmatch(r"([A-Za-z_]\w*)=(\S*)", w) for w in names]
                if names and all(assigns):      # R=path, export A=1 B=2: variables for later lines
                    variables.update(a.groups() for a in assigns)
                    continue
                head = " ".join(words)
                m = COMMAND.match(head)
                prog = (PROGS.get(m.group(1)) or f"rnn-{m.group(1)}") if m and m.group(1) else (
                    f"rnn-{m.group(2)}" if m else None)
                found.append(Command(page, n, text.strip(), words, prog, block))
            transcript = found[-1] if prompt and found else None
    return found


def all_commands() -> list[Command]:
    return [c for page in PAGES for c in commands(page)]


def files(page: Path) -> list[tuple[str, str]]:
    """(path, text) of the blocks a page marks `<!-- doc-test: file PATH -->`."""
    return [(b.marker[1], "\n".join(t for _, t in b.lines) + "\n") for b in blocks(page)
            if b.marker and b.marker[0] == "file"]


def exempt_reason(cmd: Command) -> Optional[str]:
    """Why a command is not run (None: it is run or checked)."""
    if cmd.block.marker and cmd.block.marker[0] == "skip":
        return cmd.block.marker[1] or "(no reason given)"
    if cmd.prog is not None:
        return None
    head = " ".join(cmd.words[:3])
    for prefix, reason in EXEMPT.items():
        if head == prefix or head.startswith(prefix + " "):
            return reason
    return None


# ---- running them ----------------------------------------------------------------------------

@dataclass
class StandIns:
    """What placeholders and the paths of analysis and generation commands stand for."""
    sweep: Path          # the shared tiny sweep (SWEEP_DIR): the README's demo command, shrunk
    text_run: Path       # a tiny character model's run folder (RUN_DIR of rnn-generate)
    gradients: Path      # a tiny gradient study (the paths of rnn-plot-gradients)
    book: Path           # a tiny text with the Project Gutenberg START/END lines (BOOK)


def book(folder: Path) -> Path:
    path = folder / "book.txt"
    tale = "Once upon a time a king and a queen lived in a valley. Sleeping beauty is a good tale, they said.\n"
    path.write_text("The Project Gutenberg eBook of a test\n*** START OF THE PROJECT GUTENBERG EBOOK TEST ***\n"
                    + tale * 12 + "*** END OF THE PROJECT GUTENBERG EBOOK TEST ***\nlicence\n", encoding="utf-8")
    return path


def readme_sweep_command() -> Command:
    """The README's first training command: the demo sweep of its set-up lines."""
    return next(c for c in commands(ROOT / "README.md") if c.prog == "rnn-train")


def run_shared_sweep(folder: Path):
    """The README's demo command, shrunk by SHRINK, into `folder` (the shared tiny sweep)."""
    cmd = readme_sweep_command()
    return run_command("rnn-train", *cmd.args, *SHRINK, f"hydra.sweep.dir={folder}", cwd=folder.parent)


def make_text_run(folder: Path, book_path: Path):
    return run_command("rnn-train", "+experiment=grimm_textgen", f"dataset.path={book_path}", *SHRINK,
                       f"hydra.run.dir={folder}", cwd=folder.parent)


def make_gradient_study(folder: Path):
    return run_command("rnn-measure-gradients", "model=lstm", *STUDY_SHRINK, f"hydra.run.dir={folder}",
                       cwd=folder.parent)


@dataclass
class Outcome:
    how: str             # what was done: "run", "dry run", "checked", ...
    code: Optional[int]  # None: not run, an optional extra it needs is not installed (the test skips)
    out: str = ""
    err: str = ""


def _inside(path: str, here: Path) -> str:
    """An output path inside the page's folder (an absolute one elsewhere re-rooted there)."""
    if os.path.isabs(path) and not Path(path).is_relative_to(here):
        return str(here / path.lstrip("/"))
    return path


def _substitute(arg: str, values: dict[str, str]) -> str:
    return re.sub(r"\b(" + "|".join(PLACEHOLDERS) + r")\b", lambda m: values.get(m.group(1), m.group(1)), arg)


def _outputs_inside(args: list[str], here: Path) -> list[str]:
    out, it = [], iter(args)
    for a in it:
        if a in ("--out", "--dir"):
            out += [a, _inside(next(it, ""), here)]
        elif re.match(r"^(--out|--dir)=", a):
            k, v = a.split("=", 1)
            out.append(f"{k}={_inside(v, here)}")
        elif re.match(r"^hydra\.(run|sweep)\.dir=", a):
            k, v = a.split("=", 1)
            out.append(f"{k}={_inside(v, here)}")
        elif re.match(r"^hydra\.sweeper\.storage=/", a):   # a journal file on a shared file system
            k, v = a.split("=", 1)
            path = Path(_inside(v, here))
            path.parent.mkdir(parents=True, exist_ok=True)    # the shared folder a cluster has
            out.append(f"{k}={path}")
        else:
            out.append(a)
    return out


def same_as_key(cmd: Command):
    """Training commands that differ only in their output folder (and the order of their
    overrides) are run once: the key they share (None: a command that reads files)."""
    if cmd.prog not in HYDRA or cmd.shows_error:
        return None
    args = [a for a in cmd.args if not re.match(r"^hydra\.(run|sweep)\.dir=", a)]
    if any(a == "--config-dir" or "path=" in a or "BOOK" in a for a in args):
        return None
    return cmd.prog, tuple(sorted(args))


def run(cmd: Command, here: Path, stand: StandIns, page_sweep: Path) -> Outcome:
    """Run or check one command in the page's folder `here` (see the module doc). A command
    whose transcript shows its error is refused before any work: it runs as written."""
    values = {"SWEEP_DIR": str(page_sweep), "RUN_DIR": str(page_sweep / "0"), "BOOK": str(stand.book),
              "PARTITION": "debug"}
    if cmd.prog == "rnn-generate":
        values["RUN_DIR"] = str(stand.text_run)
    args = _outputs_inside([_substitute(a, values) for a in cmd.args], here)
    prog = cmd.prog
    if prog in HYDRA:
        from rnn_experiments.errors import ConfigError
        from rnn_experiments.extras import check_command_line
        try:
            check_command_line(args)
        except ConfigError as e:    # as the tests of the extras skip where they are not installed
            return Outcome(f"not run: {e}", None)
    if prog in HYDRA and cmd.shows_error:
        r = run_command(prog, *args, cwd=here)
        return Outcome("run as written (refused input)", r.code, r.out, r.err)
    if prog in HYDRA:
        return _hydra(prog, args, here, run_single=cmd.page.name == "README.md" and cmd.page.parent == ROOT)
    if prog == "rnn-analyze":
        return _analyze(args, here, page_sweep)
    if prog == "rnn-generate":
        r = run_command(prog, *args, cwd=here)
        return Outcome("run on the tiny text model", r.code, r.out, r.err)
    if prog == "rnn-plot-gradients":
        paths = [a for a in args if not a.startswith("-")]
        flags = _flags(args)
        r = run_command(prog, *([str(stand.gradients)] * (len(paths) - (1 if "--out" in args else 0))), *flags,
                        cwd=here)
        return Outcome("run on a tiny gradient study", r.code, r.out, r.err)
    if prog == "rnn-download":
        r = run_command(prog, *args, "--url", f"file://{stand.book}", "--no-verify", cwd=here)
        return Outcome("run from a local copy", r.code, r.out, r.err)
    if prog == "rnn-bench":
        return _flags_in_help(prog, args)
    return Outcome(f"unknown command {cmd.words[0]}", 1, err=f"{cmd.text}: not a command the doc tests know")


def _flags(args: list[str]) -> list[str]:
    """The --flag VALUE pairs of an argparse command line."""
    out, i = [], 0
    while i < len(args):
        if args[i].startswith("--"):
            out.append(args[i])
            if "=" not in args[i] and i + 1 < len(args) and not args[i + 1].startswith("--"):
                out.append(args[i + 1])
                i += 1
        i += 1
    return out


def _flags_in_help(prog: str, args: list[str]) -> Outcome:
    helped = run_command(prog, "--help")
    missing = [a.split("=")[0] for a in args if a.startswith("--") and a.split("=")[0] not in helped.out]
    return Outcome("flags checked against --help", 1 if missing or helped.code else 0,
                   err=f"not in {prog} --help: {missing}" if missing else helped.err)


# A stand-in for the cluster a SLURM command names (the doc tests run where no SLURM is): what
# `scontrol show partition/node` would say of a cluster with a default partition `debug` (two
# 16-core, 64 GB nodes) and a partition `gpu` (one node with 4 GPUs); SLURM commands are checked
# against it as against a real cluster (sweeps/slurm.py), then dry-run.
STAND_IN_PARTITIONS = """\
PartitionName=debug Default=YES Nodes=c[1-2] State=UP TotalCPUs=32
PartitionName=gpu Default=NO Nodes=g1 State=UP TotalCPUs=32
"""
STAND_IN_NODES = """\
NodeName=c1 CPUTot=16 CPUEfctv=16 Gres=(null) RealMemory=64000 State=IDLE Partitions=debug
NodeName=c2 CPUTot=16 CPUEfctv=16 Gres=(null) RealMemory=64000 State=IDLE Partitions=debug
NodeName=g1 CPUTot=32 CPUEfctv=32 Gres=gpu:a100:4 RealMemory=512000 State=IDLE Partitions=gpu
"""


@contextlib.contextmanager
def stand_in_cluster():
    """Within: sweeps/slurm.py sees the stand-in cluster and finds sbatch."""
    from rnn_experiments.sweeps import slurm
    read, which = slurm.read_cluster, slurm.shutil.which
    slurm.read_cluster = lambda: slurm.parse_cluster(STAND_IN_PARTITIONS, STAND_IN_NODES)
    slurm.shutil.which = lambda name, *a, **k: f"/usr/bin/{name}" if name in ("sbatch", "scontrol") else which(name, *a, **k)
    try:
        yield
    finally:
        slurm.read_cluster, slurm.shutil.which = read, which


def _hydra(prog: str, args: list[str], here: Path, run_single: bool = True) -> Outcome:
    if "hydra/launcher=slurm" in args:
        with stand_in_cluster():
            outcome = _hydra_checked(prog, args, here, run_single)
        return dataclasses.replace(outcome, how=outcome.how + " against a stand-in cluster")
    return _hydra_checked(prog, args, here, run_single)


def _hydra_checked(prog: str, args: list[str], here: Path, run_single: bool = True) -> Outcome:
    from rnn_experiments.config import validate
    from rnn_experiments.errors import ConfigError
    from rnn_experiments.sweeps.checks import check_folder, check_job, check_launcher, training_needs
    from rnn_experiments.cli.preflight import _args, _compose
    from rnn_experiments.run.multirun import jobs
    from rnn_experiments.sweeps.guard import Refused

    if {"--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i"} & set(args):
        r = run_command(prog, *args, cwd=here)
        return Outcome("run as written (it only prints)", r.code, r.out, r.err)
    config = HYDRA[prog]
    how = "dry run"
    if "--jobs" in args:            # the command's own dry run: the same checks, on fewer jobs
        args, how = [a for a in args if a != "--jobs"], "dry run (--jobs)"
    if "device=cuda" in args:
        args, how = args + ["device=cpu"], "dry run on device=cpu (no GPU here)"
    cwd = os.getcwd()
    os.chdir(here)
    try:
        parsed = _args(args)
        cfg, multirun, loader = _compose(parsed.overrides, config, parsed.multirun, parsed.config_dir)
        if not multirun and how == "dry run" and run_single:
            shrink = STUDY_SHRINK if prog == "rnn-measure-gradients" else SHRINK
            r = run_command(prog, *args, *shrink, cwd=here)
            return Outcome("run, shrunk", r.code, r.out, r.err)
        if not multirun:          # as preflight checks a run before Hydra starts
            check_folder(cfg.hydra.run.dir, "hydra.run.dir")
            check_job(cfg, validate, training_needs)
            return Outcome(how + ", a single run", 0)
        check_launcher(cfg.hydra)
        all_jobs = jobs(cfg.hydra.sweeper, list(cfg.hydra.overrides.task), loader)
        if all_jobs is None:
            if str(cfg.hydra.sweeper._target_).endswith("OptunaSweeper"):
                from rnn_experiments.sweeps.search.checks import check_search
                check_search(cfg, loader)    # every value its space can produce, as the search does
            return Outcome(f"{how}: composed and its search space checked ({cfg.hydra.sweeper._target_})", 0)
        some = covering(all_jobs)
        check_jobs(cfg, some, loader)
        return Outcome(f"{how}: {len(some)} of its {len(all_jobs)} jobs checked, one per value of each "
                       "swept key", 0)
    except (ConfigError, Refused) as e:    # as the command itself would report it
        return Outcome(how, 2, err=f"{prog}: error: {e}")
    finally:
        os.chdir(cwd)
        from hydra.core.global_hydra import GlobalHydra
        GlobalHydra.instance().clear()


def check_jobs(master, some: list[list[str]], loader) -> None:
    """Each job through the up-front check of a sweep's jobs (sweeps/checks.py:check_job). A job
    is composed as the sweep guard composes it where it picks a config-group option other than
    the sweep's own (composed once per such choice); a job that differs from the sweep's config
    only in values gets that config with Hydra's own override step applied
    (ConfigLoaderImpl._apply_overrides_to_config: what composing it again would do after the
    defaults list, at a fraction of the cost). ConfigError (one line) for the first bad job."""
    import copy

    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType

    from rnn_experiments.config import validate
    from rnn_experiments.errors import ConfigError, one_line
    from rnn_experiments.sweeps.checks import check_job, training_needs

    parser = OverridesParser.create(config_loader=loader)
    choices = master.hydra.runtime.choices
    for job in some:
        try:
            values, same_choices = [], True
            for o in parser.parse_overrides(list(job)):
                group = o.key_or_group.replace(".", "/")
                if o.package is None and loader.repository.group_exists(group):
                    same_choices &= o.type in (OverrideType.CHANGE, OverrideType.ADD) and \
                        choices.get(group) == o.value()
                elif o.type == OverrideType.CHANGE and o.package is None:
                    values.append(o)
                else:
                    same_choices = False
            if same_choices:
                cfg = copy.deepcopy(master)
                ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
            else:
                cfg = loader.load_sweep_config(master_config=master, sweep_overrides=list(job))
            check_job(cfg, validate, training_needs, hydra_cfg=master.hydra)
        except Exception as e:  # Hydra's, OmegaConf's and our ConfigError
            raise ConfigError(f"job ({' '.join(job)}): {one_line(e)}") from None


def covering(all_jobs: list[list[str]]) -> list[list[str]]:
    """Jobs in which every value of every swept key occurs at least once: the i-th job of the
    'diagonal' (i-th value of each key, cycling), as many as the longest list of values."""
    shared = set.intersection(*map(set, all_jobs)) if len(all_jobs) > 1 else set()
    parsed = [dict(o.split("=", 1) for o in job if o not in shared and "=" in o) for job in all_jobs]
    values: dict[str, list[str]] = {}
    for p in parsed:
        for k, v in p.items():
            values.setdefault(k, [])
            if v not in values[k]:
                values[k].append(v)
    picked: list[int] = []
    for i in range(max((len(v) for v in values.values()), default=1)):
        want = {k: v[i % len(v)] for k, v in values.items()}
        match = next((n for n, p in enumerate(parsed) if p == want), None)
        if match is not None and match not in picked:
            picked.append(match)
    for k, vs in values.items():   # anything the diagonal missed (a sweep that is not a product)
        for v in vs:
            if not any(parsed[n].get(k) == v for n in picked):
                picked.append(next(n for n, p in enumerate(parsed) if p.get(k) == v))
    return [all_jobs[n] for n in sorted(picked)]


@functools.lru_cache(maxsize=None)
def varying_keys(sweep: Path) -> dict[str, set]:
    """Config keys that vary across the runs of a sweep, with their values (as strings)."""
    from rnn_experiments.analysis import collect
    df = collect(sweep).drop_duplicates("run_dir")
    return {c: {str(v).lower() for v in df[c].dropna().unique()} for c in df.columns
            if ("." in c or c == "seed") and df[c].astype(str).nunique() > 1}


def _analyze(args: list[str], here: Path, page_sweep: Path) -> Outcome:
    """rnn-analyze on the page's copy of the shared sweep; checked when it names keys that do not
    vary there (a study's own keys: --compare model.init)."""
    from rnn_experiments.cli.rnn_analyze import parser

    try:
        ns = parser().parse_args(args)
    except SystemExit:
        return Outcome("options parsed", 2, err=f"rnn-analyze does not accept: {args}")
    vary = varying_keys(page_sweep)
    named = [k for k in [ns.compare, ns.panels, *(ns.by or [])] if k] + [
        s for s in [ns.style] if s not in ("auto", "none")]
    where = [w.split("=", 1) for w in ns.where]
    fits = all(k in vary for k in named) and all(k in vary and v.lower() in vary[k] for k, v in where)
    def stand_in(p: str) -> str:    # what an earlier command of the page made is read as it is
        if (here / p).exists() and not p.startswith(str(page_sweep)):
            return p
        return str(page_sweep / "0") if ("outputs/" in p or p == str(page_sweep / "0")) else str(page_sweep)
    paths = [stand_in(p) for p in ns.paths]
    paths = list(dict.fromkeys(paths))    # one sweep stands for every sweep the command names
    flags = _flags([a for a in args if a not in ns.paths])
    if fits:
        if "--out" not in flags and paths == [str(page_sweep / "0")]:
            flags += ["--out", "one_run"]
        r = run_command("rnn-analyze", *paths, *flags, *ANALYZE_SHRINK, cwd=here)
        return Outcome("run on the shared tiny sweep", r.code, r.out, r.err)
    return _check_keys(named + [k for k, _ in where], ns, "options parsed, keys checked against the config "
                       "(they do not vary in the shared tiny sweep)")


@functools.lru_cache(maxsize=None)
def _default_config():
    from conftest import compose_config
    return compose_config([], tiny=False)


def _check_keys(keys: list[str], ns, how: str) -> Outcome:
    from omegaconf import OmegaConf

    from rnn_experiments.analysis.quantities import METRICS
    cfg = _default_config()
    missing = [k for k in keys if k != "seed" and OmegaConf.select(cfg, k, default="<none>") == "<none>"]
    metrics = [m for m in (ns.metrics or []) + [ns.threshold_metric] if m not in METRICS]
    if missing or metrics:
        return Outcome(how, 2, err=f"not config keys: {missing}; not metrics: {metrics}")
    return Outcome(how, 0)


def page_sweep(stand: StandIns, here: Path) -> Path:
    """A copy of the shared sweep for one page (its analyses write into it), checkpoints left out."""
    copy = here / "sweep"
    if not copy.exists():
        shutil.copytree(stand.sweep, copy, ignore=shutil.ignore_patterns("checkpoint*.pt"))
    return copy
