"""The fit check of apply: the noise-corrected correlation of the estimate with its input, and the
rule that flags a channel far below its training level."""

import numpy as np

from nwb_autolfads.evaluation.fit_check import MAX_FIT_DROP, channel_fit, fit_verdict


def _smooth(n: int, rng, period: float = 200.0) -> np.ndarray:
    """A slow signal of unit standard deviation."""
    t = np.arange(n)
    phase = rng.uniform(0, 2 * np.pi, 3)
    s = sum(np.sin(2 * np.pi * t / (period * k) + p) for k, p in zip((1.0, 1.7, 2.9), phase))
    return (s - s.mean()) / s.std()


def test_a_perfect_estimate_scores_about_one_whatever_the_noise_and_the_scale():
    rng = np.random.default_rng(0)
    n = 20_000
    signal = 2.0 + 0.5 * _smooth(n, rng)
    fits, raw = [], []
    for noise_sd in (0.1, 0.5, 1.5):  # signal-to-noise ratio from 25 to 1/9 in variance
        x = signal + rng.normal(0, noise_sd, n)
        fits.append(channel_fit([x[:, None]], [signal[:, None]], np.array([False]))[0])
        raw.append(np.corrcoef(x, signal)[0, 1])
    assert all(abs(f - 1.0) < 0.1 for f in fits), fits  # signal variance 0.25 beside noise up to 2.25
    assert raw[-1] < 0.5 < raw[0]  # the plain correlation would read the noise as a misfit
    x = signal + rng.normal(0, 0.5, n)
    plain = channel_fit([x[:, None]], [signal[:, None]], np.array([False]))[0]
    scaled = channel_fit([1e-4 * x[:, None] + 5.0], [1e-4 * signal[:, None] + 3e-4], np.array([False]))[0]
    assert abs(scaled - plain) < 1e-3  # free of each channel's scale and offset


def test_a_wrong_estimate_scores_low_and_counts_use_their_expected_noise():
    rng = np.random.default_rng(1)
    n = 20_000
    a, b = 2.0 + 0.5 * _smooth(n, rng), 2.0 + 0.5 * _smooth(n, rng, period=37.0)
    x = np.stack([a + rng.normal(0, 0.5, n), rng.poisson(3.0 * a).astype(float)], axis=1)
    est = np.stack([b, 3.0 * a], axis=1)
    got = channel_fit([x], [est], np.array([False, True]))
    assert abs(got[0]) < 0.3 and abs(got[1] - 1.0) < 0.06, got


def test_bins_without_an_estimate_segments_and_short_or_flat_channels():
    rng = np.random.default_rng(2)
    n = 4_000
    s = 2.0 + 0.5 * _smooth(n, rng)
    x = s + rng.normal(0, 0.3, n)
    m = s.copy()
    m[:500] = np.nan  # bins no window covers
    whole = channel_fit([x[:, None]], [m[:, None]], np.array([False]))[0]
    split = channel_fit([x[:2000, None], x[2000:, None]], [m[:2000, None], m[2000:, None]], np.array([False]))[0]
    assert abs(whole - 1.0) < 0.06 and abs(split - whole) < 0.02
    assert channel_fit([x[:10, None]], [s[:10, None]], np.array([False])) == [None]  # too few bins
    flat = np.full((n, 1), 2.0)
    assert channel_fit([flat], [flat], np.array([False])) == [None]  # no signal above the noise
    assert all(isinstance(v, float) for v in channel_fit([x[:, None]], [m[:, None]], np.array([False])))


def test_only_a_large_drop_below_the_training_level_is_flagged():
    trained = {"TA": 0.95, "MG": 0.9, "LG": 0.3, "Sol": None, "ST": 0.9, "VL": 0.5}
    now = {"TA": 0.95 - MAX_FIT_DROP + 0.05, "MG": 0.9 - MAX_FIT_DROP - 0.05, "LG": -0.2, "Sol": 0.1, "ST": None,
           "VL": 0.9}
    assert fit_verdict(trained, now) == ["MG", "LG"]  # Sol, ST: not known; VL fits better than when trained
    assert fit_verdict({}, now) == []
