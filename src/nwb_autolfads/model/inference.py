"""Inference with a trained LFADS model: posterior mean or posterior-sample averaging.

With posterior samples, a central credible interval of the estimates (``inference.interval``)
comes from the same samples: per window, bin and channel, the (1 - q) / 2 and (1 + q) / 2
quantiles of the observation model's mean (the EMG activation, the expected spike count) over
the samples. Where windows overlap, the bounds are merged with the ramp weights of the means:
a weighted average of quantiles, not the quantile of the mixture, so an approximation (exact
outside overlaps).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from nwb_autolfads.config import InferenceConfig
from nwb_autolfads.model.lfads import LFADS
from nwb_autolfads.data.windows import SegmentMerger, WindowIndex

__all__ = ["Inferred", "infer", "Merged", "infer_merged", "sample_quantiles", "interval_quantiles", "session_windows"]


@dataclass
class Inferred:
    """Per-window outputs, all float32 numpy arrays."""

    mean: np.ndarray  # (N, T, C) denoised signal in model units (E[x])
    factors: np.ndarray  # (N, T, F)
    inputs: np.ndarray  # (N, T, U)
    ic_mean: np.ndarray  # (N, I) posterior mean of the initial condition
    lower: np.ndarray | None = None  # (N, T, C) lower bound of the credible interval of ``mean`` (sample mode)
    upper: np.ndarray | None = None  # (N, T, C) upper bound


def interval_quantiles(interval: float) -> tuple[float, float]:
    """The probabilities ((1 - interval) / 2, (1 + interval) / 2) bounding a central credible
    interval of probability ``interval`` (e.g. 0.9 -> (0.05, 0.95))."""
    return (1.0 - interval) / 2.0, (1.0 + interval) / 2.0


def sample_quantiles(samples: torch.Tensor, probs: tuple[float, ...], dim: int = 1) -> list[torch.Tensor]:
    """Quantiles of ``samples`` along ``dim``, one tensor per probability in ``probs`` (that
    dimension removed), with linear interpolation between order statistics (numpy's default
    ``method='linear'``). Unlike ``torch.quantile`` it has no limit on the tensor's size."""
    ordered = torch.sort(samples, dim=dim).values
    n = samples.shape[dim]
    out = []
    for p in probs:
        pos = p * (n - 1)
        lo = int(np.floor(pos))
        hi = min(lo + 1, n - 1)
        frac = pos - lo
        a, b = ordered.select(dim, lo), ordered.select(dim, hi)
        out.append(a + (b - a) * frac if frac > 0 else a.clone())
    return out


def session_windows(model: LFADS, windows: torch.Tensor, session: int | None
                    ) -> tuple[torch.Tensor, int | None, int]:
    """The windows of one session (N, T, C_s) as ``model`` reads them: (the windows, padded with
    zeros to the model's C channels for a model of several sessions; the session index, None for a
    single-session model; C_s, the channels to keep of the outputs).

    Raises
    ------
    ValueError
        A model of several sessions without ``session`` or with one out of range, a session other
        than 0 for a single-session model, or windows with another channel count than the session's.
    """
    C = int(windows.shape[-1])
    counts = model.session_channels
    if counts is None:
        if session not in (None, 0):
            raise ValueError(f"inference: session {session} given for a single-session model (use None or 0)")
        return windows, None, C
    if session is None or not 0 <= int(session) < len(counts):
        raise ValueError(f"inference: this model stitches {len(counts)} sessions: pass session= (0..{len(counts) - 1}, "
                         f"got {session!r}), the session whose windows these are")
    session = int(session)
    if C != counts[session]:
        raise ValueError(f"inference: session {session} has {counts[session]} channels, the windows {C}: give that "
                         "session's windows with its own channels, in the order it was trained with")
    return torch.nn.functional.pad(windows, (0, model.n_channels - C)), session, C


def _batches(model: LFADS, windows: torch.Tensor, cfg: InferenceConfig, progress: bool,
             generator: torch.Generator | None = None, session: int | None = None):
    """Yield (first window, mean, factors, inputs, ic_mean, lower, upper) per batch, float32
    numpy arrays; ``lower`` and ``upper`` (the credible interval of ``mean``) are None unless
    ``mode='sample'`` with an ``interval``. ``session``: the session of every window (a model of
    several sessions: windows padded, outputs cut to the session's channels, :func:`session_windows`)."""
    windows, session, C = session_windows(model, windows, session)
    model.eval()
    N = windows.shape[0]
    n_samples = 1 if cfg.mode == "mean" else cfg.n_samples
    limit = cfg.gpu_batch_size if windows.device.type == "cuda" else cfg.batch_size
    per_batch = max(1, limit // n_samples)  # windows per batch
    starts = range(0, N, per_batch)
    for i in tqdm(starts, desc="inference", unit="batch", disable=not progress or len(starts) < 2, leave=False):
        xb = windows[i:i + per_batch]  # (b, T, C)
        b = xb.shape[0]
        sb = None if session is None else torch.full((b,), session, dtype=torch.int64, device=xb.device)
        bounds: tuple = (None, None)
        if n_samples == 1:  # ``mode='mean'`` (or a single sample: the posterior mean too, and no interval)
            out = model(xb, sample=False, session=sb)
            m, f, u = model.observation.mean(out.params), out.factors, out.inputs
        else:
            out = model(xb, sample=True, n_samples=n_samples, generator=generator,
                        session=sb)  # (b * S, ...): encoders run once per window
            def per_sample(t):
                return t.reshape(b, n_samples, *t.shape[1:])
            samples = per_sample(model.observation.mean(out.params))  # (b, S, T, C)
            m, f, u = samples.mean(dim=1), per_sample(out.factors).mean(dim=1), per_sample(out.inputs).mean(dim=1)
            if cfg.with_interval:
                bounds = tuple(q[..., :C].float().cpu().numpy()
                               for q in sample_quantiles(samples, interval_quantiles(cfg.interval), dim=1))
        ic = out.ic_mean[::n_samples]  # the IC posterior mean does not depend on the sample
        yield i, *(t.float().cpu().numpy() for t in (m[..., :C], f, u, ic)), *bounds


@torch.no_grad()
def infer(model: LFADS, windows: torch.Tensor, cfg: InferenceConfig, progress: bool = False,
          generator: torch.Generator | None = None, session: int | None = None) -> Inferred:
    """Run ``model`` on windows (N, T, C). ``mode='mean'``: one pass with posterior means;
    ``mode='sample'``: average over ``n_samples`` posterior samples, evaluated in batches of at
    most ``batch_size`` window-samples (``gpu_batch_size`` on a GPU) so memory stays bounded;
    with ``interval``, also the bounds of that central credible interval of the mean
    (:attr:`Inferred.lower`, :attr:`Inferred.upper`; None otherwise). ``generator``: where the
    posterior samples are drawn from (torch's default generator when None). ``session``: for a
    model of several sessions, the session whose windows these are, with its own C_s channels (not
    padded); the outputs have C_s channels (:func:`session_windows`, which raises ValueError for a
    missing or wrong session)."""
    means, factors, inputs, ics, lowers, uppers = [], [], [], [], [], []
    for _, m, f, u, ic, lo, hi in _batches(model, windows, cfg, progress, generator, session):
        means.append(m)
        factors.append(f)
        inputs.append(u)
        ics.append(ic)
        if lo is not None:
            lowers.append(lo)
            uppers.append(hi)
    return Inferred(np.concatenate(means), np.concatenate(factors), np.concatenate(inputs), np.concatenate(ics),
                    np.concatenate(lowers) if lowers else None, np.concatenate(uppers) if uppers else None)


@dataclass
class Merged:
    """Inference merged onto the segments' bins (float64; NaN where no window covers a bin)."""

    mean: list[np.ndarray]  # per segment (n_bins, C) in model units
    factors: list[np.ndarray]  # per segment (n_bins, F)
    inputs: list[np.ndarray]  # per segment (n_bins, U)
    coverage: list[np.ndarray]  # per segment (n_bins, 1): 1 where a window covers the bin, NaN elsewhere
    ic_mean: np.ndarray  # (N, I) float32, per window
    lower: list[np.ndarray] | None = None  # per segment (n_bins, C): lower bound of ``mean``'s credible interval
    upper: list[np.ndarray] | None = None  # per segment (n_bins, C): its upper bound; both None without samples


@torch.no_grad()
def infer_merged(model: LFADS, windows: torch.Tensor, index: WindowIndex, cfg: InferenceConfig, power: float = 2.0,
                 offset: int = 0, progress: bool = False, generator: torch.Generator | None = None,
                 session: int | None = None) -> Merged:
    """:func:`infer` on the windows of :func:`~nwb_autolfads.data.windows.chop_segments` (``index``)
    and :func:`~nwb_autolfads.data.windows.merge_segments` of its outputs (``power``; ``offset``:
    lead-in bins), batch by batch: each batch's outputs are added into preallocated per-segment
    arrays (:class:`~nwb_autolfads.data.windows.SegmentMerger`) and dropped, so long recordings
    never hold every window's outputs at once. Shows a progress bar with ``progress``.

    The credible interval's bounds (``mode='sample'`` with ``interval``) are merged like the
    means, with the same ramp weights: in overlaps a weighted average of the windows' quantiles,
    an approximation of the quantiles of their weighted mixture. ``generator``, ``session``: as for
    :func:`infer` (one session's windows, its C_s channels in and out)."""
    merger = None
    ics = []
    for first, m, f, u, ic, lo, hi in _batches(model, windows, cfg, progress, generator, session):
        outputs = (m, f, u) if lo is None else (m, f, u, lo, hi)
        if merger is None:
            merger = SegmentMerger(index, tuple(o.shape[2] for o in outputs), power, offset)
        merger.add(first, *outputs)
        ics.append(ic)
    merged, coverage = merger.result()
    mean, factors, inputs = merged[:3]
    lower, upper = merged[3:] if len(merged) == 5 else (None, None)
    return Merged(mean, factors, inputs, coverage, np.concatenate(ics), lower, upper)
