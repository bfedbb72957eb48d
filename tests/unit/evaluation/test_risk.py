"""The model's and a low-pass's squared correlation with the signal under the noise, without the
truth (evaluation.risk)."""

import numpy as np
import pytest
from scipy import signal as sps

from nwb_autolfads.evaluation.baselines import lowpass
from nwb_autolfads.evaluation.risk import (MIN_BINS, MIN_BIN_SIZE, ORDER, ChannelCheck, compare_with_lowpass, filter_diagonal,
                                           lowpass_r2s, lowpass_verdict, model_r2)

BIN = 0.01


def _matrix_diagonal(n, cutoff):
    sos = sps.butter(ORDER, cutoff, fs=1 / BIN, output="sos")
    return np.diag(sps.sosfiltfilt(sos, np.eye(n), axis=0))


@pytest.mark.parametrize("n, cutoff", [(40, 4.0), (300, 2.0), (700, 12.0), (2000, 30.0)])
def test_the_filter_diagonal_is_the_filter_matrix_diagonal(n, cutoff):
    # short segments: every bin from impulses; long ones (> 3 x the response's reach): ends and middle
    np.testing.assert_allclose(filter_diagonal(n, cutoff, BIN), _matrix_diagonal(n, cutoff), atol=1e-9)


def test_the_filter_diagonal_refuses_short_segments_and_bad_cutoffs():
    with pytest.raises(ValueError, match="too short"):
        filter_diagonal(10, 4.0, BIN)
    with pytest.raises(ValueError, match="cutoff 60"):
        filter_diagonal(100, 60.0, BIN)


def _recording(seed=0, n=20000, sizes=(0.3,)):
    """Smooth signals (0.5-5 Hz) under white noise whose SD grows with the level, in two segments."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) * BIN
    s = np.stack([1 + 0.5 * np.sin(2 * np.pi * f * t + k) for k, f in enumerate((0.5, 2.0, 5.0))], axis=1)
    sd = sizes[0] * s
    x = s + sd * rng.standard_normal(s.shape)
    cut = n // 3
    return [x[:cut], x[cut:]], [s[:cut], s[cut:]], [sd[:cut] ** 2, sd[cut:] ** 2]


def _true_r2(est, signal):
    e, t = np.concatenate(est), np.concatenate(signal)
    return np.array([np.corrcoef(e[:, c], t[:, c])[0, 1] ** 2 for c in range(e.shape[1])])


def test_the_r2_of_a_linear_estimate_matches_its_true_r2_with_the_signal():
    x, s, v = _recording()
    # a "model" that is itself a 3 Hz low-pass, scaled and shifted (the statistic is free of both):
    # the noise it follows is known exactly
    mu = [2.0 * lowpass(a, 1 / BIN, 3.0) + 1.0 for a in x]
    followed = [2.0 * var * filter_diagonal(len(a), 3.0, BIN)[:, None] for a, var in zip(x, v)]
    r2, signal, bins = model_r2(x, mu, v, followed)
    np.testing.assert_allclose(r2, _true_r2(mu, s), atol=0.01)
    np.testing.assert_allclose(signal, np.var(np.concatenate(s), axis=0), rtol=0.05)
    assert list(bins) == [20000] * 3
    # without the followed noise the estimate looks more like the signal than it is
    naive, _, _ = model_r2(x, mu, v, [np.zeros_like(a) for a in x])
    assert np.all(naive > r2 + 0.005) and np.all(naive > _true_r2(mu, s) + 0.005)
    # every low-pass of the sweep: the estimate tracks the true r2
    for fc, est in lowpass_r2s(x, mu, v, BIN).items():
        np.testing.assert_allclose(est, _true_r2([lowpass(a, 1 / BIN, fc) for a in x], s), atol=0.015,
                                   err_msg=f"{fc} Hz")


def test_the_comparison_flags_an_estimate_worse_than_a_lowpass_and_not_a_better_one():
    x, s, v = _recording(seed=1)
    rng = np.random.default_rng(2)
    # better: the signal with a small smooth error; worse: a 1 Hz low-pass misses the 2 and 5 Hz signals
    good = [a + 0.02 * lowpass(rng.standard_normal(a.shape), 1 / BIN, 2.0) for a in s]
    bad = [lowpass(a, 1 / BIN, 1.0) for a in x]
    zeros = [np.zeros_like(a) for a in x]
    bad_followed = [var * filter_diagonal(len(a), 1.0, BIN)[:, None] for a, var in zip(x, v)]
    names = ["slow", "mid", "fast"]
    good_check = lowpass_verdict(dict(zip(names, compare_with_lowpass(x, good, v, zeros, BIN))))
    bad_check = lowpass_verdict(dict(zip(names, compare_with_lowpass(x, bad, v, bad_followed, BIN))))
    assert good_check["flagged"] == []
    assert all(v["model_r2"] > v["lowpass_r2"] for v in good_check["channels"].values())
    # the 0.5 Hz channel is followed well by the 1 Hz low-pass; the 2 and 5 Hz ones are not
    assert bad_check["flagged"] == ["mid", "fast"]
    per = bad_check["channels"]
    assert per["mid"]["lowpass_r2"] > 0.9 > per["mid"]["model_r2"]
    # the cutoff chosen on the data is near the best on the truth (for the 5 Hz channel: above 5 Hz)
    assert per["fast"]["lowpass_cutoff_hz"] >= 6.0 and per["slow"]["lowpass_cutoff_hz"] <= 4.0


def test_bins_without_an_estimate_short_segments_and_pure_noise_are_left_out():
    x, s, v = _recording(n=3000)
    mu = [a.copy() for a in s]
    mu[0][:100] = np.nan  # no window covered these bins
    short = [a[:20] for a in x[:1]]
    data = x + short
    means = mu + [a[:20] for a in s[:1]]
    noise = v + [b[:20] for b in v[:1]]
    zeros = [np.zeros_like(a) for a in data]
    _, _, bins = model_r2(data, means, noise, zeros)
    assert list(bins) == [2900] * 3  # neither the uncovered bins nor the 20-bin segment
    # a channel of noise alone (no signal above it) and a channel with too few bins: no estimate
    rng = np.random.default_rng(3)
    flat = [np.column_stack([1 + 0.1 * rng.standard_normal(len(a)), a[:, 1]]) for a in x]
    var = [np.column_stack([np.full(len(a), 0.02), b[:, 1]]) for a, b in zip(x, v)]
    est = [np.column_stack([np.ones(len(a)), a[:, 1]]) for a in s]
    est[0][:, 1] = np.nan
    est[1][MIN_BINS - 1:, 1] = np.nan
    assert compare_with_lowpass(flat, est, var, [np.zeros_like(a) for a in flat], BIN) == [None, None]
    assert lowpass_verdict({"a": None})["flagged"] == []


def test_the_comparison_refuses_inputs_that_do_not_match():
    x, s, v = _recording(n=1000)
    with pytest.raises(ValueError, match="same"):
        compare_with_lowpass(x, s[:1], v, v, BIN)
    with pytest.raises(ValueError, match="same"):
        compare_with_lowpass(x, [a[:, :2] for a in s], v, v, BIN)


def test_a_channel_check_has_a_margin_and_plain_numbers():
    r = ChannelCheck(model_r2=0.98, lowpass_r2=0.95123456, cutoff_hz=4.0, bins=1000)
    assert r.margin == pytest.approx(0.02876544)
    assert r.as_dict() == {"model_r2": 0.98, "lowpass_r2": 0.9512, "lowpass_cutoff_hz": 4.0, "bins": 1000}


def test_a_flat_estimate_is_flagged_and_pure_noise_or_fine_bins_get_no_check():
    x, s, v = _recording(n=6000)
    zeros = [np.zeros_like(a) for a in x]
    flat = lowpass_verdict(dict(zip("abc", compare_with_lowpass(x, [np.ones_like(a) for a in x], v, zeros, BIN))))
    assert flat["flagged"] == ["a", "b", "c"]  # follows none of the signal: r2 0
    assert all(per["model_r2"] == 0.0 for per in flat["channels"].values())
    # channels of white noise alone: no check, whatever the draw (tester: 69 of 200 draws were flagged)
    rng = np.random.default_rng(5)
    for _ in range(20):
        noise = [1 + 0.3 * rng.standard_normal((3000, 2))]
        est = [lowpass(noise[0], 1 / BIN, 2.0)]
        assert compare_with_lowpass(noise, est, [np.full((3000, 2), 0.09)], [np.zeros((3000, 2))], BIN) == [None, None]
    # bins narrower than 5 ms: none (their noise is correlated from bin to bin)
    assert compare_with_lowpass(x, s, v, zeros, MIN_BIN_SIZE / 2) == [None] * 3
    # a perfect estimate is never flagged, and no r2 is recorded above 1
    perfect = lowpass_verdict(dict(zip("abc", compare_with_lowpass(x, s, v, zeros, BIN))))
    assert perfect["flagged"] == [] and all(per["model_r2"] <= 1.0 for per in perfect["channels"].values())
