"""Simple scores of estimated against true signals."""

from __future__ import annotations

import numpy as np

__all__ = ["channel_correlation", "r2_score", "lagged", "ridge_decode_r2", "fold_edges", "ridge_fit", "ridge_path",
           "RIDGE_ALPHAS", "interval_coverage", "truth_in_units_of", "coverage_of_truth"]

RIDGE_ALPHAS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
"""Ridge penalties tried (relative to the number of samples, on standardised features)."""


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


def interval_coverage(lower: np.ndarray, upper: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per column, the fraction of the finite true values inside their bin's interval
    ``[lower, upper]`` (bounds included): the calibration of a credible interval, e.g. about 0.9
    for a well-calibrated 90% interval.

    Parameters
    ----------
    lower, upper : (n, C) bounds of the interval per row (bin) and column (channel).
    truth : (n, C) true values, on the same rows and in the same units (NaN: not known, left out).

    Returns
    -------
    (C,) fraction in [0, 1]; NaN for a column without a finite true value inside finite bounds.

    Raises
    ------
    ValueError
        The three arrays do not have the same shape.
    """
    lower, upper, truth = (np.asarray(a, dtype=float) for a in (lower, upper, truth))
    if not lower.shape == upper.shape == truth.shape:
        raise ValueError(f"shapes differ: lower {lower.shape}, upper {upper.shape}, truth {truth.shape}")
    known = np.isfinite(truth) & np.isfinite(lower) & np.isfinite(upper)
    inside = known & (truth >= lower) & (truth <= upper)
    n = known.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, inside.sum(axis=0) / np.maximum(n, 1), np.nan)


def lagged(features: np.ndarray, lags: int) -> np.ndarray:
    """(n, F) -> (n, F * (lags + 1)): the features at t, t-1, ..., t-lags (edges repeat the
    first row)."""
    cols = [features]
    for k in range(1, lags + 1):
        shifted = np.concatenate([np.repeat(features[:1], k, axis=0), features[:-k]], axis=0)
        cols.append(shifted)
    return np.concatenate(cols, axis=1)


def fold_edges(n: int, folds: int) -> list[tuple[int, int]]:
    """``folds`` contiguous (start, stop) test blocks covering range(n)."""
    edges = np.linspace(0, n, folds + 1).astype(int)
    return list(zip(edges[:-1], edges[1:]))


def ridge_fit(X: np.ndarray, Y: np.ndarray, alpha: float):
    """Ridge regression of Y (n, K) on standardised X (n, F), penalty ``alpha`` x n. Returns a
    function that predicts Y for new X."""
    mu_x, mu_y = X.mean(0), Y.mean(0)
    sd = X.std(0) + 1e-12
    Z = (X - mu_x) / sd
    W = np.linalg.solve(Z.T @ Z + alpha * Z.shape[0] * np.eye(Z.shape[1]), Z.T @ (Y - mu_y))
    return lambda Xb: ((Xb - mu_x) / sd) @ W + mu_y


def ridge_path(X: np.ndarray, Y: np.ndarray, X_new: np.ndarray, alphas) -> list[np.ndarray]:
    """Predictions for ``X_new`` of ridge fits of Y on X (as :func:`ridge_fit`) for every penalty
    in ``alphas``, from one eigendecomposition."""
    mu_x, mu_y = X.mean(0), Y.mean(0)
    sd = X.std(0) + 1e-12
    Z = (X - mu_x) / sd
    evals, V = np.linalg.eigh(Z.T @ Z)
    Q = V.T @ (Z.T @ (Y - mu_y))
    P = ((X_new - mu_x) / sd) @ V
    return [P @ (Q / (np.maximum(evals, 0.0) + a * Z.shape[0])[:, None]) + mu_y for a in alphas]


def _best_alpha(X: np.ndarray, Y: np.ndarray, alphas) -> tuple[float, float]:
    """The penalty with the least error on the last fifth of (X, Y) when fitted on the rest.
    Returns (alpha, validation R^2 averaged over targets)."""
    inner = int(0.8 * X.shape[0])
    preds = ridge_path(X[:inner], Y[:inner], X[inner:], alphas)
    scores = {a: float(np.nanmean(r2_score(p, Y[inner:]))) for a, p in zip(alphas, preds)}
    best = max(scores, key=lambda a: scores[a])
    return best, scores[best]


def ridge_decode_r2(features: np.ndarray, targets: np.ndarray, lags: int = 10, folds: int = 5,
                    alphas: tuple[float, ...] = RIDGE_ALPHAS, per_fold: bool = False):
    """Cross-validated ridge decoding of ``targets`` (n, K) from ``features`` (n, F) with a
    history of ``lags`` bins: contiguous folds; in each, the ridge penalty is chosen on the last
    fifth of the training part (never on the test fold), the model refitted on the whole
    training part, and R^2 computed on the test fold. Returns R^2 per target, pooled over folds
    (and, with ``per_fold=True``, also the (folds, K) R^2 of each test fold).
    Rows with NaN are dropped first."""
    X = lagged(features, lags)
    ok = np.isfinite(X).all(axis=1) & np.isfinite(targets).all(axis=1)
    X, Y = X[ok], targets[ok]
    pred = np.empty_like(Y, dtype=float)
    fold_r2 = []
    for a, b in fold_edges(X.shape[0], folds):
        train = np.r_[0:a, b:X.shape[0]]
        alpha, _ = _best_alpha(X[train], Y[train], alphas)
        pred[a:b] = ridge_fit(X[train], Y[train], alpha)(X[a:b])
        fold_r2.append(r2_score(pred[a:b], Y[a:b]))
    pooled = r2_score(pred, Y)
    return (pooled, np.array(fold_r2)) if per_fold else pooled


def truth_in_units_of(reference: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The truth (n, C) mapped per channel into the units of ``reference`` (n, C) by the
    least-squares affine map ``reference ~ c x truth + d``. With ``reference`` the binned
    rectified EMG, the map does not depend on any model: synthetic activations have no unit,
    and E[rectified EMG] = c x activation + d (d: the rectified additive noise floor). Rows with a
    non-finite value are ignored in the fit; NaN truth stays NaN."""
    reference, truth = np.asarray(reference, float), np.asarray(truth, float)
    if reference.shape != truth.shape:
        raise ValueError(f"reference {reference.shape} and truth {truth.shape} must have one shape")
    out = np.full_like(truth, np.nan)
    for c in range(truth.shape[1]):
        ok = np.isfinite(reference[:, c]) & np.isfinite(truth[:, c])
        if ok.sum() < 2 or np.ptp(truth[ok, c]) == 0:
            continue
        slope, offset = np.polyfit(truth[ok, c], reference[ok, c], 1)
        out[:, c] = slope * truth[:, c] + offset
    return out


def coverage_of_truth(lower: np.ndarray, upper: np.ndarray, truth: np.ndarray, reference: np.ndarray) -> float:
    """Fraction of the true values inside per-bin bands [lower, upper] (n, C), averaged over
    channels, the truth first put in the bands' units by :func:`truth_in_units_of` (``reference``:
    the binned rectified EMG in those units). NaN when no bin can be scored."""
    per_channel = interval_coverage(lower, upper, truth_in_units_of(reference, truth))
    return float(np.nanmean(per_channel)) if np.isfinite(per_channel).any() else float("nan")
