"""Baseline estimates of muscle activation from rectified EMG, and of firing rates from spikes
(docs/science.md, Evaluation).

- :func:`rectified`: the binned rectified EMG itself.
- :func:`lowpass`: 4th-order zero-phase Butterworth low-pass (the cutoff is a parameter; sweep
  it and keep the best for an optimistic baseline).
- :func:`bayesian_filter`: Sanger's (2007) Bayesian estimate of the latent drive of EMG,
  vectorised over channels and blocks of time.
- :func:`gaussian_smooth`: Gaussian-kernel smoothing of binned spike counts.

Each has a parameter grid (:func:`lowpass_grid`, :func:`bayesian_grid`, ``SMOOTHING_SD_S``);
:mod:`nwb_autolfads.evaluation.comparison` picks the parameters by cross-validation, never on a test fold.
On synthetic data, :func:`best_lowpass` and :func:`best_bayesian` pick them on the truth itself
(an optimistic baseline for benchmarks).
"""

from __future__ import annotations

import numpy as np
from scipy import signal as sps

__all__ = ["rectified", "lowpass", "bayesian_filter", "gaussian_smooth", "lowpass_grid", "bayesian_grid",
           "LOWPASS_CUTOFFS_HZ", "BAYES_ALPHA_FRACTIONS", "BAYES_JUMPS", "SMOOTHING_SD_S", "best_lowpass",
           "best_bayesian", "filterable_segments", "bin_segments", "per_segment", "MIN_FILTER_BINS"]


def lowpass(rectified: np.ndarray, fs: float, cutoff: float, order: int = 4) -> np.ndarray:
    """Zero-phase Butterworth low-pass of rectified EMG (n, C) sampled at ``fs`` Hz."""
    if not 0 < cutoff < fs / 2:
        raise ValueError(f"cutoff {cutoff} Hz must be in (0, {fs / 2}) for fs = {fs} Hz")
    sos = sps.butter(order, cutoff, fs=fs, output="sos")
    return sps.sosfiltfilt(sos, rectified, axis=0)


def bayesian_filter(rectified: np.ndarray, fs: float, alpha: float, beta: float, n_levels: int = 100,
                    sigma_max: float | np.ndarray | None = None, likelihood: str = "laplace", output: str = "mean",
                    burn_in: int = 4000) -> np.ndarray:
    """Sanger's Bayesian filter of rectified EMG (n, C) sampled at ``fs`` Hz.

    The latent drive sigma in (0, sigma_max] is discretised into ``n_levels`` levels; starting
    from a uniform prior, each sample applies
    (1) a time update: diffusion ``alpha`` (reflecting edges) and jumps with rate ``beta``,
        p_k <- dt alpha (p_{k-1} - 2 p_k + p_{k+1}) / ds^2 + dt beta + (1 - dt beta) p_k
        (split into sub-steps where dt alpha / ds^2 would exceed the stable 1/2);
    (2) a measurement update with the Laplace likelihood exp(-|e| / s_k) / s_k (or a Gaussian
        one), then normalisation;
    (3) the output: posterior mean (``output='mean'``) or MAP (``'map'``).
    alpha and beta depend on the data's units: grid-search them on held-out data
    (:func:`bayesian_grid`). ``sigma_max`` defaults to the largest value of each channel.

    Speed: the recursion is vectorised over channels and over blocks of time. A filter forgets
    where it started (each measurement update sharpens the posterior; jumps mix it), so long
    recordings are cut into blocks that each start ``burn_in`` samples early from the uniform
    prior and run side by side; the burn-in is discarded. The result equals the one-pass filter
    to about 1e-9 even for the slowest settings of the usual grid (jump 1e-4 per sample); an hour of
    12-channel data at 1 kHz takes well under a minute on one core.
    """
    x = np.abs(np.asarray(rectified, dtype=float))
    if x.ndim == 1:
        x = x[:, None]
    if likelihood not in ("laplace", "gaussian"):
        raise ValueError(f"unknown likelihood {likelihood!r}: use 'laplace' or 'gaussian'")
    n, C = x.shape
    dt = 1.0 / fs
    smax = np.asarray(sigma_max if sigma_max is not None else np.maximum(x.max(axis=0), 1e-12), dtype=float)
    smax = np.broadcast_to(smax, (C,))
    levels = smax[:, None] * np.arange(1, n_levels + 1)[None, :] / n_levels  # (C, N), p(0) = 0
    ds = smax / n_levels  # (C,)
    diff = dt * alpha / ds**2  # (C,)
    # The explicit time update is stable for dt alpha / ds^2 < 1/2: faster diffusion is split
    # into that many sub-steps per sample.
    substeps = int(np.ceil(diff.max() / 0.45)) if diff.max() >= 0.45 else 1
    diff = (diff / substeps)[None, :, None]  # (1, C, 1)
    jump = dt * beta / substeps
    if jump >= 1:
        raise ValueError(f"beta * dt = {dt * beta:.3g} must be < 1 (a jump probability per sample): lower beta")

    # blocks of L samples, each preceded by W burn-in samples (the first block needs none)
    W = int(burn_in)
    L = max(4 * W, -(-n // 256))
    K = max(1, -(-n // L)) if n > L + W else 1
    L, W = (L, W) if K > 1 else (n, 0)
    starts = np.array([0] + [k * L - W for k in range(1, K)])
    xs = x[np.minimum(starts[:, None] + np.arange(L + W)[None, :], n - 1)]  # (K, L + W, C)
    inv, log_levels = 1.0 / levels, np.log(levels)
    p = np.full((K, C, n_levels), 1.0 / n_levels)  # (K, C, N)
    lap = np.empty_like(p)
    outs = np.empty((K, L + W, C))
    for i in range(L + W):
        for _ in range(substeps):
            lap[..., 1:-1] = p[..., :-2] + p[..., 2:] - 2 * p[..., 1:-1]
            lap[..., 0] = p[..., 1] - p[..., 0]  # reflecting edges
            lap[..., -1] = p[..., -2] - p[..., -1]
            lap *= diff
            p *= 1 - jump
            p += lap
            p += jump
        e = xs[:, i, :, None]  # (K, C, 1)
        if likelihood == "laplace":
            p *= np.exp(-e * inv - log_levels)
        else:
            p *= np.exp(-0.5 * (e * inv) ** 2 - log_levels)
        p /= np.maximum(p.sum(axis=2, keepdims=True), 1e-300)
        outs[:, i] = (p * levels).sum(axis=2) if output == "mean" else levels[np.arange(C), p.argmax(axis=2)]
    out = np.empty((n, C))
    out[:L] = outs[0, :L]
    for k in range(1, K):
        a, b = k * L, min(n, (k + 1) * L)
        out[a:b] = outs[k, W:W + b - a]
    return out


def rectified(rect: np.ndarray, fs: float) -> np.ndarray:
    """The binned rectified EMG itself (the simplest baseline)."""
    return np.asarray(rect, dtype=float)


def gaussian_smooth(counts: np.ndarray, bin_size: float, sigma: float) -> np.ndarray:
    """Spike counts (n, U) in bins of ``bin_size`` s smoothed with a Gaussian kernel of SD
    ``sigma`` seconds (truncated at 4 SD, normalised to unit area), returned as rates in Hz."""
    counts = np.asarray(counts, dtype=float)
    if not sigma > 0:
        raise ValueError(f"sigma {sigma!r} s must be > 0")
    half = max(1, int(np.ceil(4 * sigma / bin_size)))
    k = np.exp(-0.5 * (np.arange(-half, half + 1) * bin_size / sigma) ** 2)
    k /= k.sum()
    # 'same'-size convolution that renormalises at the edges (no decay towards zero there)
    num = np.apply_along_axis(lambda c: np.convolve(c, k, mode="same"), 0, counts)
    den = np.convolve(np.ones(counts.shape[0]), k, mode="same")[:, None]
    return num / den / bin_size


LOWPASS_CUTOFFS_HZ = (0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 20.0, 30.0)
"""The cutoff sweep of the low-pass baseline (those at or above Nyquist are skipped)."""
BAYES_ALPHA_FRACTIONS = (1e-2, 1e-1, 0.4, 2.0, 10.0)
"""Diffusion alpha as a fraction of the single-step stability limit ds^2 / dt."""
BAYES_JUMPS = (1e-4, 1e-3, 1e-2, 1e-1)
"""Jump probability per sample (beta * dt)."""
SMOOTHING_SD_S = (0.01, 0.02, 0.04, 0.08, 0.16)
"""Gaussian kernel SDs of the spike-smoothing baseline."""


def lowpass_grid(fs: float, cutoffs: tuple[float, ...] = LOWPASS_CUTOFFS_HZ) -> dict[str, dict]:
    """The low-pass sweep as {label: parameters}."""
    return {f"{fc:g} Hz": {"cutoff": fc} for fc in cutoffs if fc < 0.95 * fs / 2}


def bayesian_grid(rect: np.ndarray, fs: float, fractions=BAYES_ALPHA_FRACTIONS, jumps=BAYES_JUMPS,
                  n_levels: int = 100) -> tuple[np.ndarray, dict[str, dict], np.ndarray]:
    """Channels scaled to their 95th percentile and clipped at the 99.9th (so one sigma grid fits
    all), the alpha/beta grid in those units as {label: parameters}, and the (C,) scales
    (multiply the filter's output by them to return to the input's units)."""
    x = np.asarray(rect, dtype=float)
    scale = np.nanquantile(x, 0.95, axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    x = x / scale
    smax = float(np.nanquantile(x, 0.999)) or 1.0
    ds = smax / n_levels
    grid = {f"alpha {f:g}x limit, jump {j:g}/bin": {"alpha": f * ds**2 * fs, "beta": j * fs, "sigma_max": smax,
                                                   "n_levels": n_levels}
            for f in fractions for j in jumps}
    return np.minimum(x, smax), grid, scale


MIN_FILTER_BINS = 32
"""Bins a segment needs before a filter is applied to it (shorter ones stay NaN)."""


def bin_segments(times: np.ndarray, bin_size: float, mask: np.ndarray | None = None) -> list[slice]:
    """Segments of consecutive bins (no step in ``times`` over 1.5 x ``bin_size``), optionally
    only where ``mask`` holds (a bin where it does not ends a segment)."""
    good = np.ones(times.size, bool) if mask is None else mask.astype(bool)
    brk = np.r_[True, np.diff(times) > 1.5 * bin_size] | np.r_[True, good[1:] != good[:-1]]
    starts = np.flatnonzero(brk)
    ends = np.r_[starts[1:], times.size]
    return [slice(s, e) for s, e in zip(starts, ends) if good[s]]


def filterable_segments(times: np.ndarray, min_length: int = MIN_FILTER_BINS) -> list[slice]:
    """Segments of ``times`` (ascending bin centres, s; a gap is a step over 1.5 x the median
    step) of at least ``min_length`` bins (filters need that many)."""
    times = np.asarray(times, dtype=float)
    if times.size < 2:
        return []
    return [s for s in bin_segments(times, float(np.median(np.diff(times)))) if s.stop - s.start >= min_length]


def per_segment(fn, values: np.ndarray, segments: list[slice] | None) -> np.ndarray:
    """``fn`` applied to each segment of ``values`` on its own (filters never cross a gap); NaN
    elsewhere and on segments under :data:`MIN_FILTER_BINS` bins. ``segments`` None: ``fn`` of all."""
    if segments is None:
        return fn(values)
    out = np.full(values.shape, np.nan)
    for s in segments:
        if s.stop - s.start >= MIN_FILTER_BINS:
            out[s] = fn(values[s])
    return out


def _mean_r2(estimate: np.ndarray, truth: np.ndarray) -> np.ndarray:
    from nwb_autolfads.evaluation.metrics import channel_correlation

    return channel_correlation(estimate, truth) ** 2


def best_lowpass(rect: np.ndarray, truth: np.ndarray, fs: float, times: np.ndarray | None = None,
                 cutoffs: tuple[float, ...] = LOWPASS_CUTOFFS_HZ) -> tuple[float, np.ndarray, np.ndarray]:
    """The :func:`lowpass` of ``rect`` whose cutoff best fits ``truth`` (optimistic: chosen on the truth).

    Parameters
    ----------
    rect, truth : (n, C) arrays
        Binned rectified EMG and the true activations in the same bins (NaN rows are skipped
        when scoring).
    fs : float
        Bins per second.
    times : (n,) array, optional
        Bin centres (s): each segment is filtered separately (NaN on segments under
        :data:`MIN_FILTER_BINS` bins); None: one segment.
    cutoffs : tuple of float
        Hz; those at or above 0.95 x Nyquist are skipped.

    Returns
    -------
    (cutoff Hz, (C,) squared Pearson r per channel, (n, C) estimate), the cutoff maximising the
    channel mean of r^2.
    """
    segments = None if times is None else filterable_segments(times)
    best = (-np.inf, None, None, None)
    for label, params in lowpass_grid(fs, cutoffs).items():
        est = per_segment(lambda x: lowpass(x, fs, params["cutoff"]), np.asarray(rect, float), segments)
        r2 = _mean_r2(est, truth)
        if np.nanmean(r2) > best[0]:
            best = (float(np.nanmean(r2)), params["cutoff"], r2, est)
    return best[1], best[2], best[3]


def best_bayesian(rect: np.ndarray, truth: np.ndarray, fs: float,
                  times: np.ndarray | None = None) -> tuple[str, np.ndarray, np.ndarray]:
    """The :func:`bayesian_filter` of ``rect`` whose alpha/beta (from :func:`bayesian_grid`)
    best fit ``truth`` (optimistic: chosen on the truth). Arguments as :func:`best_lowpass`.

    Returns
    -------
    (label of the parameters, (C,) squared Pearson r per channel, (n, C) estimate in the
    input's units).
    """
    x, grid, scale = bayesian_grid(rect, fs)
    x = np.nan_to_num(x)
    segments = None if times is None else filterable_segments(times)
    best = (-np.inf, None, None, None)
    for label, params in grid.items():
        est = per_segment(lambda v: bayesian_filter(v, fs, **params), x, segments) * scale
        r2 = _mean_r2(est, truth)
        if np.nanmean(r2) > best[0]:
            best = (float(np.nanmean(r2)), label, r2, est)
    return best[1], best[2], best[3]


_FORMER_NAMES = {"stretches": "bin_segments", "gap_free_runs": "filterable_segments", "per_run": "per_segment"}
"""Former names of the segment helpers (docs/glossary.md, "segment"), still importable with a warning."""


def __getattr__(name: str):
    """The former names of :data:`_FORMER_NAMES`, with a ``DeprecationWarning`` (PEP 562)."""
    if name in _FORMER_NAMES:
        import warnings

        new = _FORMER_NAMES[name]
        warnings.warn(f"nwb_autolfads.evaluation.baselines.{name} is deprecated: use {new} (docs/glossary.md)",
                      DeprecationWarning, stacklevel=2)
        return globals()[new]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
