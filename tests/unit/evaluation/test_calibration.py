"""The credible band's calibration: the model's error from the residual beyond the noise."""

import numpy as np
import pytest

from nwb_autolfads.evaluation.calibration import (ChannelError, copied_noise, estimate_errors, normal_quantile,
                                                  widen_band)


def _smooth(n: int, rng, period: float = 400.0) -> np.ndarray:
    """A slow signal of unit standard deviation (bin-to-bin changes far below any noise here)."""
    t = np.arange(n)
    phase = rng.uniform(0, 2 * np.pi, 3)
    s = sum(np.sin(2 * np.pi * t / (period * k) + p) for k, p in zip((1.0, 1.7, 2.9), phase))
    return (s - s.mean()) / s.std()


def test_known_error_and_noise_are_recovered():
    rng = np.random.default_rng(0)
    n = 80_000
    truth = 2.0 + 0.5 * _smooth(n, rng)
    mu = truth + 0.1 * _smooth(n, rng, period=700.0)  # the model's error: smooth, sd 0.1
    x = truth + rng.normal(0.0, 0.3, n)  # white observation noise, sd 0.3
    (err,) = estimate_errors([x[:, None]], [mu[:, None]], np.array([False]))
    assert err.levels.size == 8 and np.all(np.diff(err.levels) > 0) and err.bins.sum() == n
    np.testing.assert_allclose(err.noise, 0.3, rtol=0.05)
    rms = np.sqrt(np.mean(err(mu) ** 2))
    assert rms == pytest.approx(0.1, rel=0.2)


def test_the_noise_may_grow_with_the_level_and_the_error_follows_the_level():
    rng = np.random.default_rng(1)
    n = 80_000
    truth = np.exp(0.8 * _smooth(n, rng))  # positive, like EMG
    err_sd = 0.15 * truth  # the model's error grows with the level too
    mu = truth + err_sd * _smooth(n, rng, period=900.0)
    x = truth + rng.normal(0.0, 1.0, n) * 0.4 * truth  # Gamma-like: noise sd proportional to the mean
    (err,) = estimate_errors([x[:, None]], [mu[:, None]], np.array([False]))
    np.testing.assert_allclose(err.noise, 0.4 * err.levels, rtol=0.15)
    assert err.error[-1] > 2 * err.error[0]  # larger at high levels


def test_a_perfect_model_has_about_no_error_and_zero_error_leaves_the_posterior_band():
    rng = np.random.default_rng(2)
    n = 40_000
    truth = 1.0 + 0.3 * _smooth(n, rng)
    x = truth + rng.normal(0.0, 0.2, n)
    (err,) = estimate_errors([x[:, None]], [truth[:, None]], np.array([False]))
    assert np.sqrt(np.mean(err(truth) ** 2)) < 0.03  # vs noise 0.2: at most a small fraction of it
    lower, upper = truth[:, None] - 0.05, truth[:, None] + 0.07
    zero = ChannelError(np.array([0.5, 1.5]), np.zeros(2), np.full(2, 0.2), np.array([10, 10]))
    lo, hi = widen_band(truth[:, None], lower, upper, [zero], 0.9)
    np.testing.assert_allclose(lo, lower)
    np.testing.assert_allclose(hi, upper)


def test_poisson_noise_is_the_expected_count():
    rng = np.random.default_rng(3)
    n = 80_000
    lam = 3.0 * np.exp(0.4 * _smooth(n, rng))  # expected spikes per bin
    mu = lam * (1.0 + 0.1 * _smooth(n, rng, period=800.0))
    x = rng.poisson(lam).astype(float)
    (err,) = estimate_errors([x[:, None]], [mu[:, None]], np.array([True]))
    np.testing.assert_allclose(err.noise ** 2, err.levels, rtol=0.1)  # variance = mean count (per group)
    true_rms = np.sqrt(np.mean((mu - lam) ** 2))
    assert np.sqrt(np.mean(err(mu) ** 2)) == pytest.approx(true_rms, rel=0.3)


def test_the_band_holds_the_estimate_and_is_not_negative():
    mu = np.array([[0.01, 5.0], [0.2, 4.0], [1.0, 6.0]])
    lower, upper = mu * 0.9, mu * 1.1
    lower[0, 0] = 0.02  # a posterior quantile above the mean (possible after merging overlaps)
    errors = [ChannelError(np.array([0.0, 1.0]), np.array([0.5, 1.0]), np.ones(2), np.array([5, 5])),
              ChannelError(np.array([4.0, 6.0]), np.array([0.1, 0.3]), np.ones(2), np.array([5, 5]))]
    lo, hi = widen_band(mu, lower, upper, errors, 0.9)
    assert np.all(lo >= 0) and np.all(lo <= mu) and np.all(mu <= hi)
    assert np.all(lo <= lower) and np.all(hi >= upper)
    z = normal_quantile(0.9)
    assert z == pytest.approx(1.6449, abs=1e-4)
    # channel 1, bin 1: level 4.0 -> error 0.1; half-widths combine in quadrature
    assert hi[1, 1] == pytest.approx(4.0 + np.hypot(0.4, z * 0.1))
    assert lo[1, 1] == pytest.approx(4.0 - np.hypot(0.4, z * 0.1))
    assert lo[0, 0] == 0.0  # mu - z x 0.5 x ... < 0: clamped
    # beyond the groups' levels the error is held constant
    assert errors[1](np.array([0.0, 100.0])).tolist() == [0.1, 0.3]
    nan_lo, nan_hi = widen_band(np.full((1, 2), np.nan), np.zeros((1, 2)), np.ones((1, 2)), errors, 0.9)
    assert np.isnan(nan_lo).all() and np.isnan(nan_hi).all()


def test_differences_are_never_taken_across_gaps_or_bins_without_an_estimate():
    rng = np.random.default_rng(4)
    n = 3000
    level = [np.full(n, 1.0), np.full(n, 50.0)]  # two segments far apart
    xs = [lv + rng.normal(0.0, 0.2, n) for lv in level]
    mus = [lv.copy() for lv in level]
    mus[0][1000:1010] = np.nan  # bins no window covers, with a jump in the data across them
    xs[0][1010:] += 30.0
    mus[0][1010:] += 30.0
    (err,) = estimate_errors([x[:, None] for x in xs], [m[:, None] for m in mus], np.array([False]), n_groups=1)
    assert err.noise[0] == pytest.approx(0.2, rel=0.1)  # a cross-gap difference would add ~30-50 / sqrt(2 n)
    assert err.bins[0] == 2 * n - 10


def test_mismatched_inputs_are_refused_and_no_bins_give_no_error():
    with pytest.raises(ValueError, match="same segments and shapes"):
        estimate_errors([np.zeros((5, 2))], [np.zeros((5, 3))], np.array([False, False]))
    with pytest.raises(ValueError, match="poisson"):
        estimate_errors([np.zeros((5, 2))], [np.zeros((5, 2))], np.array([False]))
    (err,) = estimate_errors([np.ones((4, 1))], [np.full((4, 1), np.nan)], np.array([False]))
    assert err.levels.size == 0 and err(np.array([1.0, 2.0])).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="do not match"):
        widen_band(np.zeros((3, 2)), np.zeros((3, 2)), np.zeros((3, 2)), [err], 0.9)


def test_an_estimate_smoother_than_the_truth_does_not_hide_its_error():
    # the noise is estimated from the data alone: taking the signal's bin-to-bin changes from the
    # estimate would overestimate the noise where the estimate misses fast changes, and the error
    # would vanish into it (here: 0.024 instead of 0.042)
    rng = np.random.default_rng(5)
    n = 100_000
    fast = 0.3 * np.sin(2 * np.pi * np.arange(n) / 16.0)
    slow = 2.0 + 0.5 * _smooth(n, rng)
    mu = slow + 0.8 * fast  # 80% of the fast part: error sd 0.2 x 0.3 / sqrt(2) = 0.042
    x = slow + fast + rng.normal(0.0, 0.1, n)
    (err,) = estimate_errors([x[:, None]], [mu[:, None]], np.array([False]), n_groups=1)
    assert err.noise[0] == pytest.approx(0.1, rel=0.03)
    assert err.error[0] == pytest.approx(0.2 * 0.3 / np.sqrt(2), rel=0.15)


def test_noise_the_estimate_follows_is_measured_by_the_probes_and_counted_as_error():
    # mu = truth + smooth error + a x noise: the estimate follows a fraction a of the noise. Its error
    # variance is err^2 + a^2 s2, but the residual is err^2 + (1 - a)^2 s2: without the followed part
    # the error is underestimated (here to 0); Stein's lemma gives mean(n mu) = a s2 from the response
    rng = np.random.default_rng(6)
    n, a, sd = 60_000, 0.4, 0.3
    truth = 2.0 + 0.5 * _smooth(n, rng)
    smooth_err = 0.1 * _smooth(n, rng, period=700.0)
    x = truth + rng.normal(0.0, sd, n)

    def respond(segments):  # the "model": linear in its input, d mu_t / d x_t = a
        return [(truth + smooth_err + a * (seg[:, 0] - truth))[:, None] for seg in segments]

    (mu,) = respond([x[:, None]])
    (naive,) = estimate_errors([x[:, None]], [mu], np.array([False]))
    followed = copied_noise(respond, [x[:, None]], [mu], [naive], n_probes=2)
    assert followed[0].shape == (n, 1)
    assert followed[0].mean() == pytest.approx(a * sd ** 2, rel=0.05)
    (err,) = estimate_errors([x[:, None]], [mu], np.array([False]), copied=followed)
    true_rms = np.sqrt(np.mean((mu[:, 0] - truth) ** 2))  # sqrt(0.1^2 + (0.4 x 0.3)^2) = 0.156
    assert np.sqrt(np.mean(naive(mu) ** 2)) < 0.6 * true_rms
    assert np.sqrt(np.mean(err(mu) ** 2)) == pytest.approx(true_rms, rel=0.15)
    np.testing.assert_allclose(err.copied, a * sd ** 2, rtol=0.2)
    # the same seed gives the same probes; an estimate that ignores its input follows nothing
    again = copied_noise(respond, [x[:, None]], [mu], [naive], n_probes=2)
    np.testing.assert_array_equal(again[0], followed[0])
    blind = copied_noise(lambda segs: [mu for _ in segs], [x[:, None]], [mu], [naive])
    assert np.all(blind[0] == 0.0)


def test_probe_arguments_are_checked():
    err = ChannelError(np.array([0.0, 1.0]), np.zeros(2), np.ones(2), np.array([5, 5]))
    with pytest.raises(ValueError, match="n_probes"):
        copied_noise(lambda s: s, [np.zeros((5, 1))], [np.zeros((5, 1))], [err], n_probes=0)
    with pytest.raises(ValueError, match="do not match"):
        copied_noise(lambda s: s, [np.zeros((5, 2))], [np.zeros((5, 2))], [err])
    with pytest.raises(ValueError, match="copied must have"):
        estimate_errors([np.zeros((5, 1))], [np.zeros((5, 1))], np.array([False]), copied=[np.zeros((4, 1))])


def test_no_segments_or_one_dimensional_ones_are_refused_by_name():
    with pytest.raises(ValueError, match="one or more"):
        estimate_errors([], [], np.array([], bool))
    with pytest.raises(ValueError, match="one or more"):
        estimate_errors([np.zeros(5)], [np.zeros(5)], np.array([False]))


def test_the_provenance_record_is_in_the_source_units_offset_included():
    err = ChannelError(np.array([-0.5, 0.5]), np.array([0.1, 0.2]), np.array([0.3, 0.3]), np.array([9, 9]),
                       np.array([0.01, -0.001]))
    d = err.as_dict(scale=2.0, offset=10.0)  # a z-scored force: source = model x 2 + 10
    assert d["levels"] == [9.0, 11.0] and d["error"] == [0.2, 0.4] and d["noise"] == [0.6, 0.6]
    assert d["copied"] == [0.04, -0.004] and d["bins"] == [9, 9]  # a variance: x scale^2


def test_sub_poisson_counts_get_their_error_from_the_data_not_the_poisson_variance():
    # counts of at most one spike per bin, independent from bin to bin (variance p(1 - p) < p): the
    # Poisson variance (the expected count) exceeds the residual and leaves little error; the noise
    # from the data's differences (what a run uses for counts) keeps it
    rng = np.random.default_rng(7)
    n = 60_000
    p = 0.3 + 0.1 * np.tanh(_smooth(n, rng))  # 0.2-0.4 spikes per bin
    mu = p + 0.05 * _smooth(n, rng, period=700.0)  # the model's error: sd 0.05
    x = (rng.uniform(size=n) < p).astype(float)
    (as_poisson,) = estimate_errors([x[:, None]], [mu[:, None]], np.array([True]))
    (from_data,) = estimate_errors([x[:, None]], [mu[:, None]], np.array([False]))
    true_rms = np.sqrt(np.mean((mu - p) ** 2))
    assert np.sqrt(np.mean(as_poisson(mu) ** 2)) < 0.4 * true_rms  # 0.017 vs 0.05
    assert np.sqrt(np.mean(from_data(mu) ** 2)) == pytest.approx(true_rms, rel=0.25)  # 0.046
