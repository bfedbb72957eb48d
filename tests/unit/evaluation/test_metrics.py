import numpy as np
import pytest

from nwb_autolfads.evaluation.metrics import channel_correlation, r2_of


def test_correlation_and_r2_known_answers():
    t = np.linspace(0, 10, 500)
    truth = np.stack([np.sin(t), np.cos(t)], 1)
    np.testing.assert_allclose(channel_correlation(2 * truth + 1, truth), [1, 1])
    np.testing.assert_allclose(channel_correlation(-truth, truth), [-1, -1])
    np.testing.assert_allclose(r2_of(truth, truth), [1, 1])
    assert r2_of(truth + 1.0, truth)[0] < 0


def test_nan_rows_are_ignored_and_shapes_checked():
    x = np.random.default_rng(0).normal(size=(100, 2))
    y = x.copy()
    y[:10] = np.nan
    np.testing.assert_allclose(channel_correlation(x, y), [1, 1])
    with pytest.raises(ValueError):
        channel_correlation(x, x[:, :1])


def test_lagged_features():
    from nwb_autolfads.evaluation.metrics import lagged

    x = np.arange(5.0)[:, None]
    np.testing.assert_array_equal(lagged(x, 2), [[0, 0, 0], [1, 0, 0], [2, 1, 0], [3, 2, 1], [4, 3, 2]])


def test_ridge_decoding_recovers_a_known_delayed_linear_relation():
    from nwb_autolfads.evaluation.metrics import ridge_decode_r2

    rng = np.random.default_rng(0)
    feats = rng.normal(size=(3000, 4))
    target = np.r_[np.zeros(3), (feats @ [1.0, -2.0, 0.5, 0.0])[:-3]]  # depends on features 3 bins ago
    noisy = target + 0.1 * rng.normal(size=target.size)
    y = np.c_[noisy, rng.normal(size=3000)]  # the second target is unpredictable noise
    r2 = ridge_decode_r2(feats, y, lags=5)
    assert r2[0] > 0.99 and abs(r2[1]) < 0.05
    assert ridge_decode_r2(feats, y, lags=1)[0] < 0.1  # without enough history it fails


def test_blocked_folds_cover_every_row_once_and_leave_the_lag_count_out_around_each_test_fold():
    from nwb_autolfads.evaluation.metrics import blocked_folds

    splits = blocked_folds(103, 5, gap=4)
    np.testing.assert_array_equal(np.concatenate([test for _, test in splits]), np.arange(103))
    for train, test in splits:
        assert np.all(np.diff(test) == 1)  # contiguous
        distance = np.abs(train[:, None] - test[None, :]).min(axis=1)
        assert distance.min() == 5 and train.size == 103 - test.size - 4 * (int(test[0] > 0) + int(test[-1] < 102))


def test_ridge_decoding_scores_each_fold_and_refuses_too_few_rows_for_the_gap():
    from nwb_autolfads.errors import SignalError
    from nwb_autolfads.evaluation.metrics import fit_ridge, ridge_decode_r2

    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 5))
    Y = X @ rng.normal(size=(5, 2)) + 0.1 * rng.normal(size=(300, 2))
    pooled, folds = ridge_decode_r2(X, Y, lags=0, folds=4, per_fold=True)
    assert folds.shape == (4, 2) and np.all(folds > 0.95) and np.all(pooled > 0.95)
    predict, score = fit_ridge(X[:200], Y[:200], gap=3)
    assert predict(X[200:]).shape == (100, 2) and score > 0.95
    with pytest.raises(SignalError, match="gap of 30 bins"):
        fit_ridge(X[:40], Y[:40], gap=30)


def test_interval_coverage_counts_finite_truth_inside_the_bounds_per_channel():
    from nwb_autolfads.evaluation.metrics import interval_coverage

    lower = np.zeros((4, 3))
    upper = np.ones((4, 3))
    truth = np.array([[0.5, 0.0, 2.0],  # inside; on the lower bound (inside); above
                      [1.0, -1.0, 0.5],  # on the upper bound; below; inside
                      [np.nan, 0.5, 0.5],  # unknown (left out); inside; inside
                      [0.2, 0.3, np.inf]])  # inside; inside; not finite (left out)
    np.testing.assert_allclose(interval_coverage(lower, upper, truth), [1.0, 0.75, 2 / 3])
    lower[0, 0] = np.nan  # a bin without an estimate is left out too
    np.testing.assert_allclose(interval_coverage(lower, upper, truth)[0], 1.0)
    assert np.isnan(interval_coverage(lower[:1], upper[:1], np.full((1, 3), np.nan))).all()
    # a calibrated 90% interval of Gaussian noise covers about 90% of it
    rng = np.random.default_rng(0)
    truth = rng.normal(size=(20000, 2))
    cov = interval_coverage(np.full_like(truth, -1.6449), np.full_like(truth, 1.6449), truth)
    np.testing.assert_allclose(cov, 0.9, atol=0.01)
    with pytest.raises(ValueError, match="shapes differ"):
        interval_coverage(lower, upper, truth)


def test_fit_ridge_chooses_the_penalty_gridsearchcv_chooses_on_a_gapped_time_series_split():
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GridSearchCV, TimeSeriesSplit

    from nwb_autolfads.evaluation.metrics import RIDGE_ALPHAS, fit_ridge

    rng = np.random.default_rng(1)
    for signal in (0.02, 0.1, 1.0):  # weak signals want strong penalties
        X = rng.normal(size=(400, 8))
        Y = signal * X @ rng.normal(size=(8, 3)) + rng.normal(size=(400, 3))
        predict, score = fit_ridge(X, Y, gap=5)
        Z = X / X.std(axis=0)
        search = GridSearchCV(Ridge(), {"alpha": [a * 400 for a in RIDGE_ALPHAS]}, scoring="r2",
                              cv=TimeSeriesSplit(n_splits=2, test_size=80, gap=5)).fit(Z, Y)
        assert score == pytest.approx(search.best_score_, abs=1e-12)
        np.testing.assert_allclose(predict(X[:50]), search.predict(Z[:50]), atol=1e-10)


def test_the_truth_map_refuses_what_is_not_an_activation_and_takes_any_scale():
    from nwb_autolfads.evaluation.metrics import truth_in_units_of

    rng = np.random.default_rng(3)
    truth = rng.uniform(0.0, 2.0, size=(500, 2))
    ref = np.hypot(3.0 * truth, 0.4)
    with pytest.raises(ValueError, match="negative"):
        truth_in_units_of(ref, truth - 1.0)  # a z-scored or negated truth has no place on the map
    with pytest.raises(ValueError, match=r"\(n_bins, n_channels\)"):
        truth_in_units_of(ref[:, 0], truth[:, 0])
    np.testing.assert_allclose(truth_in_units_of(ref, truth * 1e-300), ref, rtol=1e-6)  # scale-free
    np.testing.assert_allclose(truth_in_units_of(ref * 1e-7, truth), ref * 1e-7, rtol=1e-6)
    flat = truth_in_units_of(ref, np.ones_like(truth))
    assert np.isnan(flat).all()  # a constant truth cannot be mapped
