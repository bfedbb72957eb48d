"""Baseline estimates of muscle activation from rectified EMG (science.md section 8).

- :func:`lowpass`: 4th-order zero-phase Butterworth low-pass (the cutoff is a parameter; sweep
  it and keep the best for an optimistic baseline).
- :func:`bayesian_filter`: Sanger's (2007) Bayesian estimate of the latent drive of EMG,
  vectorised over channels.
"""

from __future__ import annotations

import numpy as np
from scipy import signal as sps

__all__ = ["lowpass", "bayesian_filter"]


def lowpass(rectified: np.ndarray, fs: float, cutoff: float, order: int = 4) -> np.ndarray:
    """Zero-phase Butterworth low-pass of rectified EMG (n, C) sampled at ``fs`` Hz."""
    if not 0 < cutoff < fs / 2:
        raise ValueError(f"cutoff {cutoff} Hz must be in (0, {fs / 2}) for fs = {fs} Hz")
    sos = sps.butter(order, cutoff, fs=fs, output="sos")
    return sps.sosfiltfilt(sos, rectified, axis=0)


def bayesian_filter(rectified: np.ndarray, fs: float, alpha: float, beta: float, n_levels: int = 100,
                    sigma_max: float | None = None, likelihood: str = "laplace", output: str = "mean") -> np.ndarray:
    """Sanger's Bayesian filter of rectified EMG (n, C) sampled at ``fs`` Hz.

    The latent drive sigma in (0, sigma_max] is discretised into ``n_levels`` levels; starting
    from a uniform prior, each sample applies
    (1) a time update: diffusion ``alpha`` (reflecting edges) and jumps with rate ``beta``,
        p_k <- dt alpha (p_{k-1} - 2 p_k + p_{k+1}) / ds^2 + dt beta + (1 - dt beta) p_k
        (split into sub-steps where dt alpha / ds^2 would exceed the stable 1/2);
    (2) a measurement update with the Laplace likelihood exp(-|e| / s_k) / s_k (or a Gaussian
        one), then normalisation;
    (3) the output: posterior mean (``output='mean'``) or MAP (``'map'``).
    alpha and beta depend on the data's units: grid-search them on held-out data.
    ``sigma_max`` defaults to the largest value of each channel.
    """
    x = np.abs(np.asarray(rectified, dtype=float))
    if x.ndim == 1:
        x = x[:, None]
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
    diff = diff / substeps
    jump = dt * beta / substeps
    if jump >= 1:
        raise ValueError(f"beta * dt = {dt * beta:.3g} must be < 1 (a jump probability per sample): lower beta")
    p = np.full((C, n_levels), 1.0 / n_levels)
    out = np.empty((n, C))
    for i in range(n):
        for _ in range(substeps):
            padded = np.concatenate([p[:, :1], p, p[:, -1:]], axis=1)  # reflecting edges
            p = diff[:, None] * (padded[:, :-2] - 2 * p + padded[:, 2:]) + jump + (1 - jump) * p
        e = x[i][:, None]
        if likelihood == "laplace":
            p = p * np.exp(-e / levels) / levels
        elif likelihood == "gaussian":
            p = p * np.exp(-0.5 * (e / levels) ** 2) / levels
        else:
            raise ValueError(f"unknown likelihood {likelihood!r}: use 'laplace' or 'gaussian'")
        p /= np.maximum(p.sum(axis=1, keepdims=True), 1e-300)
        out[i] = (p * levels).sum(axis=1) if output == "mean" else levels[np.arange(C), p.argmax(axis=1)]
    return out
