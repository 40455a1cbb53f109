"""One optimisation step and the held-out evaluation, for any model of the registry.

    loss = mean NLL of log ŷ against y        (classes on the last axis: (B, C) or (B, T, V))
    θ ← Adam(θ, clip(∇θ loss, max_norm))

Both return tensors on the model's device and never synchronise with it: the caller reads them
when it writes a metrics row. On a GPU, `make_step` replays the whole step from a CUDA graph.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def nll_and_accuracy(log_probs: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean NLL and accuracy; classes on the last axis, any leading shape ((B,) or (B, T))."""
    C = log_probs.shape[-1]
    loss = F.nll_loss(log_probs.reshape(-1, C), y.reshape(-1))
    acc = (log_probs.argmax(-1) == y).float().mean()
    return loss, acc


def train_step(model, optimizer, x: torch.Tensor, y: torch.Tensor, max_norm: float):
    """Forward, NLL, backward, clip the gradient norm, Adam: -> (loss, accuracy), 0-d tensors."""
    loss, acc = nll_and_accuracy(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
    optimizer.step()
    return loss.detach(), acc


@torch.no_grad()
def evaluate(model, x: torch.Tensor, y: torch.Tensor, chunk: int = 1024, metrics: dict | None = None):
    """(accuracy, mean NLL) on the held-out (x, y), over every prediction (every example, or
    every character of every window), in chunks of `chunk` examples; one synchronisation.
    With `metrics` (name -> metric(log_probs, y), the run's `metrics.NAME` parts): (accuracy,
    NLL, {name: value}), each metric called once on the whole held-out set's log-probabilities."""
    was_training = model.training
    model.eval()
    correct = nll = 0
    kept = []
    for i in range(0, len(x), chunk):
        log_probs, target = model(x[i:i + chunk]), y[i:i + chunk]         # (b, C) or (b, T, V)
        correct = correct + (log_probs.argmax(-1) == target).sum()
        nll = nll + F.nll_loss(log_probs.reshape(-1, log_probs.shape[-1]), target.reshape(-1),
                               reduction="sum")
        if metrics:
            kept.append(log_probs)
    model.train(was_training)
    correct, nll = torch.stack([correct.double(), nll.double()]).tolist()
    if metrics is None:
        return correct / y.numel(), nll / y.numel()
    log_probs = torch.cat(kept) if kept else None                         # (N, C) or (N, T, V)
    return correct / y.numel(), nll / y.numel(), {name: float(m(log_probs, y)) for name, m in metrics.items()}


def set_capturable(optimizer, on: bool) -> None:
    """Adam's `capturable` flag (needed inside a CUDA graph) and where its step counts live:
    on the parameters' device when on, on the CPU when off (a checkpoint may come from either)."""
    for group in optimizer.param_groups:
        if "capturable" not in group:
            continue
        group["capturable"] = on
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            if torch.is_tensor(state.get("step")):
                state["step"] = state["step"].to(p.device if on else "cpu", torch.float32)


class CUDAGraphStep:
    """`train_step` replayed from a CUDA graph, one graph per input shape.

    The first `warmup` steps of a shape run eagerly on a side stream (real training steps: they
    create Adam's state and compile the kernels); the next one is captured (forward, NLL,
    backward, clip, Adam: every kernel of the step, launched by the GPU from then on instead of
    by Python) and each later step copies its batch into the graph's static inputs and replays
    it. The results equal the eager step's: the same kernels on the same numbers.
    """

    def __init__(self, model, optimizer, max_norm: float, warmup: int = 3):
        set_capturable(optimizer, True)
        self.model, self.optimizer, self.max_norm, self.warmup = model, optimizer, max_norm, warmup
        self.graphs: dict = {}     # shape -> (graph, static x, static y, loss, accuracy)
        self.eager_steps: dict = {}
        self.stream = torch.cuda.Stream()

    def __call__(self, x: torch.Tensor, y: torch.Tensor):
        key = (tuple(x.shape), tuple(y.shape))
        if key not in self.graphs:
            if self.eager_steps.get(key, 0) < self.warmup:
                self.eager_steps[key] = self.eager_steps.get(key, 0) + 1
                return self._on_side_stream(lambda: train_step(self.model, self.optimizer, x, y, self.max_norm))
            self.graphs[key] = self._capture(x, y)
        graph, static_x, static_y, loss, acc = self.graphs[key]
        static_x.copy_(x)
        static_y.copy_(y)
        graph.replay()
        return loss, acc

    def _on_side_stream(self, fn):
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            out = fn()
        torch.cuda.current_stream().wait_stream(self.stream)
        return out

    def _capture(self, x, y):
        static_x, static_y = x.clone(), y.clone()
        self.optimizer.zero_grad(set_to_none=True)   # the graph's backward allocates the grads
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            loss, acc = train_step(self.model, self.optimizer, static_x, static_y, self.max_norm)
        return graph, static_x, static_y, loss, acc


def make_step(model, optimizer, max_norm: float, device: torch.device, cuda_graphs: bool = True):
    """The step the loop takes: step(x, y) -> (loss, accuracy). On a GPU, for models that allow
    it (`model.graphable`), a CUDAGraphStep; otherwise `train_step` itself."""
    use_graphs = cuda_graphs and device.type == "cuda" and getattr(model, "graphable", False)
    set_capturable(optimizer, use_graphs)
    if use_graphs:
        return CUDAGraphStep(model, optimizer, max_norm)
    return lambda x, y: train_step(model, optimizer, x, y, max_norm)
