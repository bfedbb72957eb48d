"""Inference with a trained LFADS model: posterior mean or posterior-sample averaging."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import InferenceConfig
from .model import LFADS

__all__ = ["Inferred", "infer"]


@dataclass
class Inferred:
    """Per-window outputs, all float32 numpy arrays."""

    mean: np.ndarray  # (N, T, C) denoised signal in model units (E[x])
    factors: np.ndarray  # (N, T, F)
    inputs: np.ndarray  # (N, T, U)
    ic_mean: np.ndarray  # (N, I) posterior mean of the initial condition


@torch.no_grad()
def infer(model: LFADS, windows: torch.Tensor, cfg: InferenceConfig, progress: bool = False) -> Inferred:
    """Run ``model`` on windows (N, T, C). ``mode='mean'``: one pass with posterior means;
    ``mode='sample'``: average over ``n_samples`` posterior samples, evaluated in batches of at
    most ``batch_size`` window-samples (``gpu_batch_size`` on a GPU) so memory stays bounded."""
    model.eval()
    N = windows.shape[0]
    n_samples = 1 if cfg.mode == "mean" else cfg.n_samples
    limit = cfg.gpu_batch_size if windows.device.type == "cuda" else cfg.batch_size
    per_batch = max(1, limit // n_samples)  # windows per batch
    means, factors, inputs, ics = [], [], [], []
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
        means.append(m.float().cpu().numpy())
        factors.append(f.float().cpu().numpy())
        inputs.append(u.float().cpu().numpy())
        ics.append(ic.float().cpu().numpy())
    return Inferred(np.concatenate(means), np.concatenate(factors), np.concatenate(inputs), np.concatenate(ics))
