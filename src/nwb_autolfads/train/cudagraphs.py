"""The training forward pass (and its backward) as CUDA graphs, on a GPU.

On a GPU the LFADS recurrences are launch-bound: a training step of the reference model runs
about 4,000 small kernels (every bin of every recurrence, forward and backward), and the Python
that issues them costs far more than the kernels themselves. A CUDA graph records those
launches once and replays them with one call, so a step costs what the kernels cost.

:func:`training_forward` is what training calls instead of ``model(x, sample=True)``. On the CPU
it is exactly that call. On CUDA it captures the sampled forward pass and its backward pass with
:func:`torch.cuda.make_graphed_callables` the first time it sees a batch shape (and dropout rate:
population-based training changes it), then replays them. The sampling noise and dropout masks
come from torch's CUDA generator, which graph replays advance like eager calls do, so a seeded
run is reproducible on the same GPU; the loss, augmentations and the optimizer step stay eager.
:func:`evaluation_forward` does the same for the validation pass (posterior means, no
gradient), which runs at every validation check. Set ``train.cuda_graphs: false`` to run every kernel
eagerly (for debugging).
"""

from __future__ import annotations

import contextlib
import gc
import warnings
import weakref

import torch
from torch import nn

from nwb_autolfads.errors import TrainingError
from nwb_autolfads.model.lfads import LFADS, LFADSOutput

__all__ = ["training_forward", "evaluation_forward"]

# id(model) -> {("train", batch shape, dtype, dropout rate, sample): graphed callable,
#               ("eval", batch shape, dtype): (graph, static input, static outputs)};
# an entry goes when its model does (the graphs hold the parameters, not the model)
_GRAPHS: dict[int, dict[tuple, object]] = {}


@contextlib.contextmanager
def _capturing(what: str):
    """Collect garbage now and not during the capture. Graphs are freed by the cyclic garbage
    collector (torch's graphed callables sit in reference cycles), and a graph destroyed while
    another is being captured invalidates that capture - and leaves torch's CUDA generator
    unusable for the rest of the process; newer torch no longer collects before a capture.
    A failed capture becomes a TrainingError that names the way around it."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    except RuntimeError as exc:  # torch.AcceleratorError is a RuntimeError
        raise TrainingError(f"capturing the {what} as a CUDA graph failed ({str(exc).splitlines()[0]}): rerun with "
                            "--set train.cuda_graphs=false (config: train.cuda_graphs: false) to run it "
                            "eagerly") from exc
    finally:
        if was_enabled:
            gc.enable()


def _cache(model: LFADS) -> dict:
    cache = _GRAPHS.get(id(model))
    if cache is None:
        cache = _GRAPHS[id(model)] = {}
        weakref.finalize(model, _GRAPHS.pop, id(model), None)
    return cache


class _Forward(nn.Module):
    """``model(x, sample=...)`` as a one-argument module whose parameters are the model's.
    Holds the model weakly, so a cached graph does not keep its model alive."""

    def __init__(self, model: LFADS, sample: bool):
        super().__init__()
        object.__setattr__(self, "_model", weakref.ref(model))  # not registered as a submodule
        self.sample = sample

    def parameters(self, recurse: bool = True):
        return self._model().parameters(recurse)

    def forward(self, x: torch.Tensor) -> LFADSOutput:
        return self._model()(x, sample=self.sample)


def training_forward(model: LFADS, x: torch.Tensor, sample: bool = True, graphs: bool = True,
                     session: torch.Tensor | None = None) -> LFADSOutput:
    """``model(x, sample=sample)`` for a training step; on CUDA (with ``graphs``) replayed from a
    CUDA graph captured for this batch shape. The model must be in training mode. With
    ``session`` (a model of several sessions: the session of each window) it runs eagerly."""
    if session is not None:
        return model(x, sample=sample, session=session)
    if not graphs or x.device.type != "cuda":
        return model(x, sample=sample)
    key = ("train", tuple(x.shape), x.dtype, float(model.dropout.p), bool(sample))
    cache = _cache(model)
    graphed = cache.get(key)
    if graphed is None:
        # The captured pass keeps the parameters' gradient accumulators (made on the capture
        # stream) alive; replayed backward passes accumulate through them from the default
        # stream, which is correct (torch synchronises the streams) but warns at every step.
        if hasattr(torch.autograd.graph, "set_warn_on_accumulate_grad_stream_mismatch"):
            torch.autograd.graph.set_warn_on_accumulate_grad_stream_mismatch(False)
        for old in [k for k in cache if k[0] == "train" and k[3] != key[3]]:  # another dropout rate: free it
            del cache[old]
        with warnings.catch_warnings(), _capturing("training step"):  # noise: torch sets the context itself
            warnings.filterwarnings("ignore", message="Attempting to run cuBLAS, but there was no current CUDA context")
            graphed = torch.cuda.make_graphed_callables(_Forward(model, sample), (x.detach().clone(),),
                                                        allow_unused_input=True)
        cache[key] = graphed
    return graphed(x)


@torch.no_grad()
def evaluation_forward(model: LFADS, x: torch.Tensor, graphs: bool = True,
                       session: torch.Tensor | None = None) -> LFADSOutput:
    """``model(x, sample=False)`` without gradients, for validation; on CUDA (with ``graphs``)
    replayed from a graph captured for this shape (in evaluation mode: no dropout). With
    ``session`` (a model of several sessions) it runs eagerly."""
    if session is not None:
        return model(x, sample=False, session=session)
    if not graphs or x.device.type != "cuda" or model.training:
        return model(x, sample=False)
    key = ("eval", tuple(x.shape), x.dtype)
    cache = _cache(model)
    entry = cache.get(key)
    if entry is None:
        static_x = x.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm up outside the capture (lazy initialisation)
            model(static_x, sample=False)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with _capturing("validation pass"), torch.cuda.graph(graph):
            static_out = model(static_x, sample=False)
        entry = cache[key] = (graph, static_x, static_out)
    graph, static_x, static_out = entry
    static_x.copy_(x)
    graph.replay()
    return LFADSOutput(*(t.clone() for t in static_out))  # the next replay overwrites the static outputs
