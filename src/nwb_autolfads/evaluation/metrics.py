"""Simple scores of estimated against true signals, and cross-validated ridge decoding on
scikit-learn (``Ridge``; the penalty chosen on a ``TimeSeriesSplit`` with a gap of the lag count;
contiguous test folds with the same gap on either side)."""

from __future__ import annotations

import numpy as np

from nwb_autolfads.errors import SignalError

__all__ = ["channel_correlation", "r2_of", "lagged", "ridge_decode_r2", "blocked_folds", "fit_ridge",
           "RIDGE_ALPHAS", "interval_coverage", "truth_in_units_of", "coverage_of_truth"]

RIDGE_ALPHAS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
"""Ridge penalties tried (relative to the number of training samples, on features scaled to unit
variance)."""


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


def r2_of(estimate: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Coefficient of determination of ``estimate`` against ``truth`` per column (1 - SSE / SST,
    SST about the truth's mean), over the rows where both are finite. (n, C) x (n, C) -> (C,);
    NaN for a constant true column. (The estimate comes first: the reverse of scikit-learn's
    ``r2_score(y_true, y_pred)``, hence the other name.)"""
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


def blocked_folds(n: int, folds: int, gap: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cross-validation over time: ``folds`` contiguous test blocks covering range(n); each one's
    training rows are all the others except ``gap`` rows on either side of the block (with
    ``gap`` = the decoder's lag count, no training row's history overlaps the test block and no
    test row's history is trained on). Returns [(train indices, test indices)] per fold."""
    edges = np.linspace(0, n, folds + 1).astype(int)
    rows = np.arange(n)
    return [(rows[(rows < a - gap) | (rows >= b + gap)], rows[a:b]) for a, b in zip(edges[:-1], edges[1:])]


def fit_ridge(X: np.ndarray, Y: np.ndarray, alphas=RIDGE_ALPHAS, gap: int = 0):
    """Ridge regression of ``Y`` (n, K) on ``X`` (n, F) (scikit-learn ``Ridge``, features scaled
    to unit variance on these rows), its penalty chosen among ``alphas`` (x n) by validation R^2
    on a ``TimeSeriesSplit`` of these rows (2 validation blocks of a fifth each, each after the
    rows fitted, ``gap`` rows between), then refitted on all of them.

    The search is ``GridSearchCV``'s (same splits, R^2 averaged over targets and blocks, the first
    best penalty), done with one ``Ridge`` fit per block for all penalties at once (one alpha per
    copy of the targets): ``GridSearchCV`` itself, a fit per penalty and block, made
    ``evaluate`` about 5 times slower.

    Returns
    -------
    (predict, score): ``predict(X_new)`` -> (m, K), and the chosen penalty's mean validation R^2.

    Raises
    ------
    SignalError
        Too few rows for the validation blocks and the gap.
    """
    import sklearn
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import TimeSeriesSplit

    Y = np.asarray(Y, dtype=float).reshape(len(Y), -1)
    n, k = Y.shape
    block = n // 5
    if block < 2 or n - 2 * block - gap < 2:
        raise SignalError(f"only {n} usable bins to choose a ridge penalty on with a gap of {gap} bins: evaluate a "
                          "longer recording, or use fewer folds or lags")
    scale = X.std(axis=0)
    scale[~(scale > 1e-12)] = 1.0
    Z = X / scale
    penalties = np.asarray(alphas, dtype=float) * n
    copies = np.tile(Y, len(penalties))  # copy j of the targets gets penalty j
    scores = np.zeros(len(penalties))
    with sklearn.config_context(assume_finite=bool(np.isfinite(Z).all() and np.isfinite(Y).all())):
        for fit_rows, val_rows in TimeSeriesSplit(n_splits=2, test_size=block, gap=gap).split(Z):
            pred = Ridge(alpha=np.repeat(penalties, k)).fit(Z[fit_rows], copies[fit_rows]).predict(Z[val_rows])
            scores += _r2_uniform(Y[val_rows], pred.reshape(len(val_rows), len(penalties), k))
        best = int(np.argmax(scores))
        model = Ridge(alpha=penalties[best]).fit(Z, Y)
    return (lambda X_new: model.predict(X_new / scale).reshape(len(X_new), k)), float(scores[best] / 2)


def _r2_uniform(truth: np.ndarray, preds: np.ndarray) -> np.ndarray:
    """scikit-learn's ``r2_score(truth, pred)`` (targets averaged uniformly; a constant target
    scores 1 if predicted exactly, else 0) for each of several predictions at once:
    truth (m, K), preds (m, P, K) -> (P,)."""
    ss_res = ((truth[:, None, :] - preds) ** 2).sum(axis=0)
    ss_tot = ((truth - truth.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, np.where(ss_res == 0, 1.0, 0.0))
    return r2.mean(axis=1)


def ridge_decode_r2(features: np.ndarray, targets: np.ndarray, lags: int = 10, folds: int = 5,
                    alphas: tuple[float, ...] = RIDGE_ALPHAS, per_fold: bool = False):
    """Cross-validated ridge decoding of ``targets`` (n, K) from ``features`` (n, F) with a
    history of ``lags`` bins: contiguous test folds with ``lags`` rows left out of training on
    either side (:func:`blocked_folds`); in each, the penalty is chosen inside the training part
    (:func:`fit_ridge`, never on the test fold) and R^2 computed on the test fold. Rows with NaN
    are dropped first.

    Returns
    -------
    R^2 per target (K,), pooled over folds (and, with ``per_fold=True``, also the (folds, K) R^2
    of each test fold).
    """
    X = lagged(features, lags)
    ok = np.isfinite(X).all(axis=1) & np.isfinite(targets).all(axis=1)
    X, Y = X[ok], targets[ok]
    pred = np.empty_like(Y, dtype=float)
    fold_r2 = []
    for train, test in blocked_folds(X.shape[0], folds, gap=lags):
        predict, _ = fit_ridge(X[train], Y[train], alphas, gap=lags)
        pred[test] = predict(X[test])
        fold_r2.append(r2_of(pred[test], Y[test]))
    pooled = r2_of(pred, Y)
    return (pooled, np.array(fold_r2)) if per_fold else pooled


OUTLIER_MADS = 5.0
"""Bins whose relative residual lies beyond this many MAD standard deviations are left out of the
second fit of :func:`truth_in_units_of` (artefacts)."""


def truth_in_units_of(reference: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The truth (n, C) mapped per channel into the units of ``reference`` (n, C), the binned
    rectified EMG: E[reference] = sqrt((c x truth)^2 + d^2), c and d fitted by least squares
    (scipy ``least_squares``), then again without the outliers: bins whose residual relative to
    the fitted value (the noise of rectified EMG grows with its level) lies beyond 5 MAD standard
    deviations of all bins'.

    Synthetic activations have no unit; the EMG is activation x carrier + a noise floor
    independent of it, and for zero-mean normal carrier and floor (SDs a and f) the rectified sum
    has mean sqrt(2 / pi) x sqrt(a^2 + f^2): the floor adds in quadrature, not as an offset. An
    affine map c x truth + d put the truth of the lowest activations below the data by 4-6
    standard errors of the mean (synthetic family, mixture-5m: the lowest eighth of the truth);
    this map leaves no level biased beyond the noise of its mean. Artefacts are in the reference
    and not in the truth: a plain least-squares fit was pulled by them (bursty-9m of the family's
    tuning part: the truth at rest mapped 0.03 above the data, 3/8 of the bins); a robust loss
    instead biased the map of clean data (the rectified EMG's noise is skewed). The map depends on
    no model.
    The truth must be an activation: >= 0, and 0 at rest (as :mod:`nwb_autolfads.simulate` makes
    it); a truth with a baseline or z-scored cannot be told apart and is mapped wrongly.
    Rows with a non-finite value are ignored in the fit; NaN truth stays NaN; a channel whose
    truth is constant (or with fewer than 2 rows) stays NaN.

    Raises
    ------
    ValueError
        ``reference`` and ``truth`` are not 2-D arrays of one shape, or the truth is negative."""
    from scipy.optimize import least_squares

    reference, truth = np.asarray(reference, float), np.asarray(truth, float)
    if reference.shape != truth.shape or truth.ndim != 2:
        raise ValueError(f"reference {reference.shape} and truth {truth.shape} must be (n_bins, n_channels) "
                         "arrays of one shape")
    if np.nanmin(truth, initial=0.0) < 0:
        raise ValueError(f"truth has negative values (min {np.nanmin(truth):g}): it must be an activation, >= 0 and "
                         "0 at rest (the map is sqrt((c x truth)^2 + d^2))")
    out = np.full_like(truth, np.nan)
    for c in range(truth.shape[1]):
        ok = np.isfinite(reference[:, c]) & np.isfinite(truth[:, c])
        if ok.sum() < 2 or np.ptp(truth[ok, c]) == 0:
            continue
        # the fit on unit scales (a truth of 1e-300 or EMG in volts is as good as one of 1)
        t_unit, r_unit = float(truth[ok, c].max()), float(np.abs(reference[ok, c]).max())
        if r_unit == 0:
            continue
        t, r = truth[ok, c] / t_unit, reference[ok, c] / r_unit
        slope, offset = np.polyfit(t, r, 1)  # the start: the affine fit's slope and floor
        r_sd = max(float(np.std(r)), 1e-12)
        start = [slope if slope != 0 else r_sd / float(np.std(t)), max(abs(offset), 1e-3 * r_sd)]

        def residual(p):
            return np.hypot(p[0] * t, p[1]) - r

        gain, floor = least_squares(residual, start).x
        fitted = np.hypot(gain * t, floor)
        relative = (r - fitted) / np.maximum(fitted, 1e-12 * max(float(fitted.max()), 1e-300))
        mad_sd = 1.4826 * float(np.median(np.abs(relative - np.median(relative))))
        keep = np.abs(relative - np.median(relative)) <= OUTLIER_MADS * mad_sd
        if mad_sd > 0 and 2 <= keep.sum() < keep.size:
            t, r = t[keep], r[keep]
            gain, floor = least_squares(residual, [gain, floor]).x
        out[:, c] = r_unit * np.hypot(gain * truth[:, c] / t_unit, floor)
    return out


def coverage_of_truth(lower: np.ndarray, upper: np.ndarray, truth: np.ndarray, reference: np.ndarray) -> float:
    """Fraction of the true values inside per-bin bands [lower, upper] (n, C), averaged over
    channels, the truth first put in the bands' units by :func:`truth_in_units_of` (``reference``:
    the binned rectified EMG in those units). NaN when no bin can be scored."""
    per_channel = interval_coverage(lower, upper, truth_in_units_of(reference, truth))
    return float(np.nanmean(per_channel)) if np.isfinite(per_channel).any() else float("nan")
