"""A pack: the runs of one configuration that differ only in their seed, trained in one process.

Each member is an ordinary run (`loop.start(..., packed=True)`): its own data stream, initial
weights, optimizer (Adam state), gradient clipping, scheduler, evaluation, checkpoints and
summary. Only its steps are taken by the pack, in one of two ways:

    "loop"     each member's own step, one member after the other: the same code as a run
               alone, so a member equals the separate run of its seed bit for bit. What it saves
               is the process: one start-up (imports, data, threads) for K runs.
    "stacked"  one forward and backward for all K members: their parameters stacked on a leading
               seed axis; the model's `forward_stacked(params, x)` where it has one and
               `stacked_ready()` (the LSTM's and peephole LSTM's: their fused CPU kernels with a
               member axis, every element-wise call on all members' rows at once, batched
               products, models/kernels/fused.py), else its plain
               autograd path (`model.fused = False`) mapped over the axis with torch.func.vmap
               (so every product is a batched product over the K members);
                   L = Σ_k loss_k(θ_k)  ⇒  ∂L/∂θ_k = ∂loss_k/∂θ_k
               then each member's own clip and optimizer step on its own slice of the gradient
               (taken for all members in two passes where that is exact, training/joint_update.py).
               Equal to the separate run up to float reassociation (a batched product sums in
               another order), so losses agree to ~1e-6 relative and drift apart slowly.

Random numbers: every member draws from its own torch / numpy / python generators, swapped in
whenever the pack works for it (`RNGStates`), so dropout and text samples draw what the
separate run would.
"""
from __future__ import annotations

import copy
import random
import time

import numpy as np
import torch
from torch.func import functional_call, vmap

from rnn_experiments.run.folder import SummaryError, read_summary
from rnn_experiments.run.lock import RunLock, RunLocked
from rnn_experiments.run.summary import write_summary
from rnn_experiments.training.resources import MiB, PeakMemory, available_cores, training_bytes
from rnn_experiments.training import impl
from rnn_experiments.training.joint_update import JointUpdate
from rnn_experiments.training.signals import stop_on_signals
from rnn_experiments.training.step import make_step, nll_and_accuracy

STRATEGIES = ("loop", "stacked")
TRIAL_ROUNDS = 3       # "auto": steps of each way taken (alternately) before the faster one is kept
MARGIN = 1.1           # ... and stacked is kept only if at least this much faster than loop


class CannotStack(Exception):
    """vmap could not map the model's code (an op without a batching rule, a random draw, ...):
    raised before any member's parameters changed."""


class RNGStates:
    """One member's random generators (python, numpy, torch CPU and CUDA), kept while the pack
    works for another member: `swap_in()` makes them the process's, `swap_out()` keeps them."""

    def __init__(self):
        self.saved = None

    def swap_out(self) -> None:
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
        self.saved = (random.getstate(), np.random.get_state(), torch.get_rng_state(), cuda)

    def swap_in(self) -> None:
        if self.saved is None:
            return
        py, npy, cpu, cuda = self.saved
        random.setstate(py)
        np.random.set_state(npy)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


def why_not_stacked(runs) -> str | None:
    """Why the members' steps cannot be stacked exactly (None: they can): stacking needs one
    model class with the same parameter shapes and no buffers. The optimizer does not matter:
    the stacked step only computes each member's gradient (∂L/∂θ_k = ∂loss_k/∂θ_k), then each
    member's own clip and optimizer step update that member's parameters alone, as in its
    separate run (training/joint_update.py: one joint step only for torch's element-wise
    optimizers, where it is the same update; any other member after member, its own
    `optimizer.step()`), so any optimizer the contract accepts (one that steps without a
    closure, rnn_experiments/contract.py) is exact, one whose update is not element-wise (a
    norm over all its parameters, state of its own) included."""
    first = runs[0].model
    shapes = [(n, tuple(p.shape)) for n, p in first.named_parameters()]
    for run in runs[1:]:
        if type(run.model) is not type(first) or [(n, tuple(p.shape)) for n, p in run.model.named_parameters()] != shapes:
            return "the members' models differ in their parameters"
    if any(True for _ in first.buffers()):
        return f"{type(first).__name__} has buffers"
    if runs[0].device.type != "cpu" and runs[0].device.type != "cuda":
        return f"device {runs[0].device}"
    return None


class LoopStep:
    """Each member's own step (loop.make_step), member after member."""
    strategy = "loop"

    def __init__(self, runs):
        self.steps = {id(r): make_step(r.model, r.optimizer, r.cfg.train.max_norm, r.device, cuda_graphs=False)
                      for r in runs}

    def __call__(self, runs, batches, enter=lambda k: None):
        out = []
        for k, (run, (x, y)) in enumerate(zip(runs, batches)):
            enter(k)
            out.append(self.steps[id(run)](x, y))
        return out


class StackedStep:
    """One forward and backward over the members' stacked parameters (the module doc's
    equations); then each member's own gradient clipping and optimizer step."""
    strategy = "stacked"

    def __init__(self, runs):
        """`runs`: members that why_not_stacked() passes (the pack checks it first)."""
        self.base = copy.deepcopy(runs[0].model).to("meta")   # the code, not the numbers
        if hasattr(self.base, "fused"):
            self.base.fused = False                           # the plain autograd path: vmap-able
        self.names = [n for n, _ in runs[0].model.named_parameters()]
        self.params = {id(r): dict(r.model.named_parameters()) for r in runs}   # the members' own

        def member(params, x, y):
            return nll_and_accuracy(functional_call(self.base, params, (x,)), y)
        ready = getattr(self.base, "stacked_ready", None)
        self.way = "kernel" if callable(ready) and ready() else "vmap"
        self.updates: dict = {}                           # the members' JointUpdate (training/joint_update.py)
        self.mapped = self._kernel if self.way == "kernel" else vmap(member, randomness="error")  # dropout: refused, see LoopStep

    def _kernel(self, params, X, Y):
        """The model's own stacked forward, then each member's NLL and accuracy: (K,), (K,)."""
        log_probs = self.base.forward_stacked(params, X)                     # (K, B, C)
        picked = log_probs.gather(-1, Y.unsqueeze(-1)).squeeze(-1)           # (K, B)
        return -picked.mean(1), (log_probs.argmax(-1) == Y).float().mean(1)

    def __call__(self, runs, batches, enter=lambda k: None):
        per_run = [self.params[id(r)] for r in runs]
        stacked = {n: torch.stack([p[n].detach() for p in per_run]).requires_grad_() for n in self.names}  # (K, ...)
        X = torch.stack([x for x, _ in batches])                 # (K, B, T)
        Y = torch.stack([y for _, y in batches])                 # (K, B) or (K, B, T)
        self.base.train(runs[0].model.training)
        try:
            loss, acc = self.mapped(stacked, X, Y)               # (K,), (K,)
            loss.sum().backward()
        except Exception as e:
            raise CannotStack(str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__) from e
        for k, (run, params) in enumerate(zip(runs, per_run)):
            run.optimizer.zero_grad(set_to_none=True)
            for n in self.names:
                params[n].grad = stacked[n].grad[k]
        key = tuple(id(r) for r in runs)                  # the members still training
        if key not in self.updates:
            self.updates = {key: JointUpdate([r.optimizer for r in runs], runs[0].cfg.train.max_norm,
                                             [r.model.parameters() for r in runs])}
        self.updates[key]()                               # each member's own clip and optimizer step
        loss = loss.detach()
        return [(loss[k], acc[k]) for k in range(len(runs))]


class AutoStep:
    """"auto": the first steps go round the ways (each takes the same update, so any step may be
    either), TRIAL_ROUNDS each, timed: the members' own steps ("loop"), stacked, and stacked at
    `threads` where given (the count the pack's process had before its members chose theirs for
    one member's size: a stacked step has K times the rows). Then the fastest stacked way is kept
    if it is MARGIN times faster than the members' own steps, else the pack goes on `sequential`:
    each member's own steps, one member to its end after the other (as separate runs in one
    process are, with their cache to themselves). `strategy` is "auto" until then."""

    def __init__(self, runs, log=None, threads: int | None = None):
        stacked, here = StackedStep(runs), torch.get_num_threads()
        self.ways = {"loop": LoopStep(runs), "stacked": stacked}
        self.threads = {"loop": here, "stacked": here}
        if threads and threads != here:
            self.ways[f"stacked threads={threads}"], self.threads[f"stacked threads={threads}"] = stacked, threads
        self.times: dict[str, list[float]] = {way: [] for way in self.ways}
        self.chosen, self.log = None, log

    @property
    def strategy(self) -> str:
        if self.chosen is None:
            return "auto"
        return "sequential" if self.chosen == "loop" else "stacked"

    @property
    def sequential(self) -> bool:
        return self.chosen == "loop"

    def __call__(self, runs, batches, enter=lambda k: None):
        if self.chosen:
            return self.ways[self.chosen](runs, batches, enter)
        way = min(self.ways, key=lambda w: len(self.times[w]))     # round the ways, in order
        torch.set_num_threads(self.threads[way])
        t0 = time.perf_counter()
        out = self.ways[way](runs, batches, enter)
        torch.stack([loss for loss, _ in out]).sum().item()   # the step done (a GPU's, too)
        self.times[way].append(time.perf_counter() - t0)
        if all(len(t) == TRIAL_ROUNDS for t in self.times.values()):
            best = {w: min(t[1:]) for w, t in self.times.items()}   # the first: warm-up
            stacked = min((w for w in best if w != "loop"), key=best.get)
            self.chosen = stacked if best[stacked] * MARGIN < best["loop"] else "loop"
            torch.set_num_threads(self.threads[self.chosen])
            if self.log is not None:
                self.log.info("pack: %d members' steps %s (a step of all: %s; one after the other %.1f ms)",
                              len(runs), f"stacked, {self.threads[self.chosen]} threads" if self.chosen != "loop"
                              else "their own, one member after the other to its end",
                              ", ".join(f"{w} {best[w] * 1e3:.1f} ms" for w in best if w != "loop"),
                              best["loop"] * 1e3)
        return out


def pack_step(runs, strategy: str, log=None, threads: int | None = None):
    """The pack's step for `runs` (their `_Run`s): `strategy` "loop", or "stacked" / "auto" for
    runs that why_not_stacked() passes; `threads`: auto's other thread count for stacked steps."""
    if strategy not in STRATEGIES + ("auto",):
        raise ValueError(f"strategy {strategy!r}: expected auto or one of {', '.join(STRATEGIES)}")
    if strategy == "auto":
        return AutoStep(runs, log, threads)
    return LoopStep(runs) if strategy == "loop" else StackedStep(runs)


class Member:
    """One run of a pack: `run`, the generator `loop.start(..., packed=True)` made; `enter`, a
    callable that makes the member's surroundings current (its Hydra config and log file, set by
    the launcher). After the pack: `summary` (its summary) or `error` (what ended it)."""

    def __init__(self, run, enter=lambda: None, name: str = ""):
        self.gen, self.enter_context, self.name = run, enter, name
        self.rng = RNGStates()
        self.run = None          # its _Run, once ready
        self.batch = None        # the batch it waits to have its step taken on
        self.summary: dict | None = None
        self.error: BaseException | None = None

    @property
    def done(self) -> bool:
        return self.summary is not None or self.error is not None


class _Current:
    """The member whose generators and context are the process's now."""

    def __init__(self):
        self.member: Member | None = None

    def switch(self, member: Member) -> None:
        if self.member is member:
            return
        if self.member is not None:
            self.member.rng.swap_out()
        member.rng.swap_in()
        member.enter_context()
        self.member = member


def _advance(current: _Current, member: Member, value) -> None:
    """Resume `member` with `value` until it yields again (kept in `run` / `batch`) or ends."""
    current.switch(member)
    try:
        got = member.gen.send(value)
    except StopIteration as end:
        member.summary = end.value
    except BaseException as e:   # recorded in its summary.json by the run itself
        member.error = e
    else:
        if member.run is None:
            member.run = got
        else:
            member.batch = got


def run_pack(members: list[Member], strategy: str = "loop", log=None, record: dict | None = None) -> str:
    """Train the members' runs together until each has ended; returns the strategy used. A
    member that fails or diverges ends alone (its summary says so) and the others go on.
    "stacked" where it cannot be exact (why_not_stacked, or the model's code cannot be mapped
    by vmap) takes the members' steps one after the other instead ("loop"), said once in `log`.
    `record` (the launcher's): each member's summary.json gets it as `pack`, its "strategy"
    kept to the way the steps are taken; when the pack has ended, the pack's memory is added
    (`_record_memory`) and each member's summary.json written again with it."""
    current = _Current()
    memory = PeakMemory() if record is not None else None    # the pack's peak, from here on
    threads = torch.get_num_threads()             # the pack's count, before its members chose theirs
    with stop_on_signals():                       # one signal stops every member
        try:
            for member in members:
                _advance(current, member, None)   # accepted and ready: yields its _Run
                if member.run is not None and not member.done and record is not None:
                    member.run.summary["pack"] = record
            for member in members:
                if not member.done:
                    _advance(current, member, None)   # its first batch
            active = [m for m in members if not m.done]
            step = _step_for(active, strategy, log, _stacked_threads(threads))
            while active:
                if getattr(step, "sequential", False):    # auto: one member to its end, then the next
                    member = active[0]
                    result, = step.ways["loop"]([member.run], [member.batch], enter=lambda k: current.switch(member))
                    _advance(current, member, result)
                    active = [m for m in active if not m.done]
                    continue
                runs, batches = [m.run for m in active], [m.batch for m in active]
                try:
                    results = step(runs, batches, enter=lambda k: current.switch(active[k]))
                except CannotStack as e:
                    step = _fall_back(runs, e, log)  # no member changed: the same batches again
                    continue
                finally:
                    if record is not None:
                        record["strategy"] = step.strategy
                for member, result in zip(active, results):
                    _advance(current, member, result)
                active = [m for m in active if not m.done]
        except BaseException:
            for member in members:      # the pack itself failed (or a second Ctrl-C): each run records it
                if member.run is not None and not member.done:
                    current.switch(member)
                    try:
                        member.gen.throw(KeyboardInterrupt("the pack stopped"))
                    except BaseException as e:
                        member.error = e
            raise
        finally:
            if current.member is not None:
                current.member.rng.swap_out()
    if record is not None:
        _record_memory(members, memory, record, log)
    return step.strategy if members and any(m.run is not None for m in members) else strategy


def _record_memory(members: list[Member], memory: PeakMemory, record: dict, log) -> None:
    """The pack's memory in `record` (resources.PeakMemory.record: rss_before_mib, peak_rss_mib,
    peak_rss_since, on a GPU peak_cuda_mib) beside the launcher's estimate, `estimate_mib`: K ×
    training_bytes (sweeps/pack.py splits packs by it); then the summary.json of every member
    that records the pack written again, so that each holds the whole pack's peak (a member
    writes its summary when it ends, before the pack's end). A member's run ended and let its
    folder go: it is written again under the folder's lock, and only while its summary.json is
    still that run's (its start, host and pid), never over another run that took the folder."""
    ready = [m for m in members if m.run is not None]
    record.update(memory.record(ready[0].run.device if ready else None))
    try:
        record["estimate_mib"] = round(sum(training_bytes(m.run.cfg) for m in ready) / MiB, 1)
    except Exception:   # a model the estimate does not know: no estimate to set beside the peak
        pass
    same = lambda a, b: all(a.get(k) == b.get(k) for k in ("started", "host", "pid"))
    for m in ready:
        if m.run.summary.get("pack") is not record:
            continue
        try:
            with RunLock(m.run.out_dir):
                if same(read_summary(m.run.out_dir) or {}, m.run.summary):
                    write_summary(m.run.out_dir, m.run.summary)
        except (RunLocked, SummaryError, OSError) as e:
            if log is not None:
                log.warning("pack: %s (the pack's peak memory is not recorded there)", str(e).splitlines()[0])


def memory_words(record: dict) -> str:
    """The pack's measured memory beside the estimate, in words (the launcher's log line)."""
    peak, before, estimate = (record.get(k) for k in ("peak_rss_mib", "rss_before_mib", "estimate_mib"))
    if peak is None:
        return "peak memory not measured here"
    since = "" if record.get("peak_rss_since") == "start" else " (the process's peak: it could not be reset)"
    words = f"peak resident memory {peak:.0f} MiB{since}"
    if before is not None:
        words += f", {peak - before:+.0f} MiB over the {before:.0f} MiB before the pack"
    if estimate is not None:
        words += f"; estimated {estimate:.0f} MiB (K x training_bytes)"
    if record.get("peak_cuda_mib") is not None:
        words += f"; CUDA peak {record['peak_cuda_mib']:.0f} MiB allocated"
    return words


def _stacked_threads(threads: int) -> int | None:
    """The pack's thread count as auto's other count for stacked steps, where the cores are free
    for it now (training/impl.py's test: a busy machine keeps the members' own count)."""
    if threads == torch.get_num_threads() or impl.others_running() + threads > available_cores() + 0.5:
        return None
    return threads


def _step_for(runs_of: list[Member], strategy: str, log, threads: int | None = None):
    runs = [m.run for m in runs_of]
    if not runs:
        return LoopStep([])
    if strategy in ("stacked", "auto"):
        reason = why_not_stacked(runs)
        if reason is None:
            return pack_step(runs, strategy, log, threads)
        if log is not None:
            log.warning("pack: the members' steps are taken one after the other (not stacked): %s", reason)
        return LoopStep(runs)
    return pack_step(runs, strategy, log)


def _fall_back(runs, error: Exception, log) -> LoopStep:
    if log is not None:
        log.warning("pack: the members' steps are taken one after the other (not stacked): "
                    "vmap cannot map %s (%s)", type(runs[0].model).__name__, str(error)[:200])
    for run in runs:
        run.optimizer.zero_grad(set_to_none=True)
    return LoopStep(runs)
