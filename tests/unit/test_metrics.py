import numpy as np
import pytest

from nwb_autolfads.metrics import channel_correlation, r2_score


def test_correlation_and_r2_known_answers():
    t = np.linspace(0, 10, 500)
    truth = np.stack([np.sin(t), np.cos(t)], 1)
    np.testing.assert_allclose(channel_correlation(2 * truth + 1, truth), [1, 1])
    np.testing.assert_allclose(channel_correlation(-truth, truth), [-1, -1])
    np.testing.assert_allclose(r2_score(truth, truth), [1, 1])
    assert r2_score(truth + 1.0, truth)[0] < 0


def test_nan_rows_are_ignored_and_shapes_checked():
    x = np.random.default_rng(0).normal(size=(100, 2))
    y = x.copy()
    y[:10] = np.nan
    np.testing.assert_allclose(channel_correlation(x, y), [1, 1])
    with pytest.raises(ValueError):
        channel_correlation(x, x[:, :1])
