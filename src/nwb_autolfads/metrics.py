"""Simple scores of estimated against true signals."""

from __future__ import annotations

import numpy as np

__all__ = ["channel_correlation", "r2_score", "lagged", "ridge_decode_r2"]


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


def lagged(features: np.ndarray, lags: int) -> np.ndarray:
    """(n, F) -> (n, F * (lags + 1)): the features at t, t-1, ..., t-lags (edges repeat the
    first row)."""
    cols = [features]
    for k in range(1, lags + 1):
        shifted = np.concatenate([np.repeat(features[:1], k, axis=0), features[:-k]], axis=0)
        cols.append(shifted)
    return np.concatenate(cols, axis=1)


def ridge_decode_r2(features: np.ndarray, targets: np.ndarray, lags: int = 10, folds: int = 5,
                    alphas: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)) -> np.ndarray:
    """Cross-validated ridge decoding of ``targets`` (n, K) from ``features`` (n, F) with a
    history of ``lags`` bins: contiguous folds; in each, the ridge penalty is chosen on the last
    fifth of the training part (never on the test fold), the model refitted on the whole
    training part, and R^2 computed on the test fold. Returns R^2 per target, pooled over folds.
    Rows with NaN are dropped first."""
    X = lagged(features, lags)
    ok = np.isfinite(X).all(axis=1) & np.isfinite(targets).all(axis=1)
    X, Y = X[ok], targets[ok]
    n = X.shape[0]
    edges = np.linspace(0, n, folds + 1).astype(int)
    pred = np.empty_like(Y, dtype=float)

    def fit(Xa, Ya, alpha):
        mu_x, mu_y = Xa.mean(0), Ya.mean(0)
        sd = Xa.std(0) + 1e-12
        Z = (Xa - mu_x) / sd
        W = np.linalg.solve(Z.T @ Z + alpha * Z.shape[0] * np.eye(Z.shape[1]), Z.T @ (Ya - mu_y))
        return lambda Xb: ((Xb - mu_x) / sd) @ W + mu_y

    for k in range(folds):
        test = np.arange(edges[k], edges[k + 1])
        train = np.setdiff1d(np.arange(n), test)
        inner = int(0.8 * train.size)
        best = min(alphas, key=lambda a: ((fit(X[train[:inner]], Y[train[:inner]], a)(X[train[inner:]])
                                           - Y[train[inner:]]) ** 2).sum())
        pred[test] = fit(X[train], Y[train], best)(X[test])
    return r2_score(pred, Y)
