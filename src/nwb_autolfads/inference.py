"""Inference with a trained LFADS model: posterior mean or posterior-sample averaging."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import InferenceConfig
from .model import LFADS
from .windows import SegmentMerger, WindowIndex

__all__ = ["Inferred", "infer", "Merged", "infer_merged"]


@dataclass
class Inferred:
    """Per-window outputs, all float32 numpy arrays."""

    mean: np.ndarray  # (N, T, C) denoised signal in model units (E[x])
    factors: np.ndarray  # (N, T, F)
    inputs: np.ndarray  # (N, T, U)
    ic_mean: np.ndarray  # (N, I) posterior mean of the initial condition


def _batches(model: LFADS, windows: torch.Tensor, cfg: InferenceConfig, progress: bool):
    """Yield (first window, mean, factors, inputs, ic_mean) per batch, float32 numpy arrays."""
    model.eval()
    N = windows.shape[0]
    n_samples = 1 if cfg.mode == "mean" else cfg.n_samples
    limit = cfg.gpu_batch_size if windows.device.type == "cuda" else cfg.batch_size
    per_batch = max(1, limit // n_samples)  # windows per batch
    starts = range(0, N, per_batch)
    for i in tqdm(starts, desc="inference", unit="batch", disable=not progress or len(starts) < 2, leave=False):
        xb = windows[i:i + per_batch]  # (b, T, C)
        b = xb.shape[0]
        if n_samples == 1:
            out = model(xb, sample=False)
            m, f, u = model.observation.mean(out.params), out.factors, out.inputs
        else:
            out = model(xb, sample=True, n_samples=n_samples)  # (b * S, ...): encoders run once per window
            def avg(t):
                return t.reshape(b, n_samples, *t.shape[1:]).mean(dim=1)
            m, f, u = avg(model.observation.mean(out.params)), avg(out.factors), avg(out.inputs)
        ic = out.ic_mean[::n_samples]  # the IC posterior mean does not depend on the sample
        yield i, *(t.float().cpu().numpy() for t in (m, f, u, ic))


@torch.no_grad()
def infer(model: LFADS, windows: torch.Tensor, cfg: InferenceConfig, progress: bool = False) -> Inferred:
    """Run ``model`` on windows (N, T, C). ``mode='mean'``: one pass with posterior means;
    ``mode='sample'``: average over ``n_samples`` posterior samples, evaluated in batches of at
    most ``batch_size`` window-samples (``gpu_batch_size`` on a GPU) so memory stays bounded."""
    means, factors, inputs, ics = [], [], [], []
    for _, m, f, u, ic in _batches(model, windows, cfg, progress):
        means.append(m)
        factors.append(f)
        inputs.append(u)
        ics.append(ic)
    return Inferred(np.concatenate(means), np.concatenate(factors), np.concatenate(inputs), np.concatenate(ics))


@dataclass
class Merged:
    """Inference merged onto the segments' bins (float64; NaN where no window covers a bin)."""

    mean: list[np.ndarray]  # per segment (n_bins, C) in model units
    factors: list[np.ndarray]  # per segment (n_bins, F)
    inputs: list[np.ndarray]  # per segment (n_bins, U)
    coverage: list[np.ndarray]  # per segment (n_bins, 1): 1 where a window covers the bin, NaN elsewhere
    ic_mean: np.ndarray  # (N, I) float32, per window


@torch.no_grad()
def infer_merged(model: LFADS, windows: torch.Tensor, index: WindowIndex, cfg: InferenceConfig, power: float = 2.0,
                 offset: int = 0, progress: bool = False) -> Merged:
    """:func:`infer` on the windows of :func:`~nwb_autolfads.windows.chop_segments` (``index``)
    and :func:`~nwb_autolfads.windows.merge_segments` of its outputs (``power``; ``offset``:
    lead-in bins), batch by batch: each batch's outputs are added into preallocated per-segment
    arrays (:class:`~nwb_autolfads.windows.SegmentMerger`) and dropped, so long recordings
    never hold every window's outputs at once. Shows a progress bar with ``progress``."""
    merger = None
    ics = []
    for first, m, f, u, ic in _batches(model, windows, cfg, progress):
        if merger is None:
            merger = SegmentMerger(index, (m.shape[2], f.shape[2], u.shape[2]), power, offset)
        merger.add(first, m, f, u)
        ics.append(ic)
    (mean, factors, inputs), coverage = merger.result()
    return Merged(mean, factors, inputs, coverage, np.concatenate(ics))
