"""Simple scores of estimated against true signals."""

from __future__ import annotations

import numpy as np

__all__ = ["channel_correlation", "r2_score"]


def _valid_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    return np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)


def channel_correlation(estimate: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Pearson r per column over the rows where both are finite. (n, C) x (n, C) -> (C,)."""
    ok = _valid_rows(estimate, truth)
    e = estimate[ok] - estimate[ok].mean(0)
    t = truth[ok] - truth[ok].mean(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (e * t).sum(0) / np.sqrt((e**2).sum(0) * (t**2).sum(0))


def r2_score(estimate: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Coefficient of determination per column (1 - SSE / SST), finite rows only."""
    ok = _valid_rows(estimate, truth)
    sse = ((truth[ok] - estimate[ok]) ** 2).sum(0)
    sst = ((truth[ok] - truth[ok].mean(0)) ** 2).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1.0 - sse / sst
