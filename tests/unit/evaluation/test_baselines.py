import numpy as np
import pytest

from nwb_autolfads.evaluation.baselines import bayesian_filter, bayesian_grid, gaussian_smooth, lowpass, lowpass_grid


def test_lowpass_keeps_slow_and_removes_fast_sinusoids():
    fs = 100.0
    t = np.arange(2000) / fs
    slow, fast = np.sin(2 * np.pi * 1.0 * t), np.sin(2 * np.pi * 20.0 * t)
    y = lowpass((slow + fast)[:, None], fs, 5.0)[:, 0]
    mid = slice(200, -200)
    np.testing.assert_allclose(y[mid], slow[mid], atol=0.01)
    with pytest.raises(ValueError):
        lowpass(slow[:, None], fs, 60.0)


def test_lowpass_step_response_is_symmetric_about_the_step():
    fs = 100.0
    step = np.r_[np.zeros(300), np.ones(300)][:, None]
    y = lowpass(step, fs, 3.0)[:, 0]
    assert abs(y[300] + y[299] - 1.0) < 0.05  # zero phase: the step's midpoint stays in place
    assert abs(y[100]) < 1e-3 and abs(y[-100] - 1.0) < 1e-3


def test_bayesian_filter_tracks_a_step_in_drive():
    rng = np.random.default_rng(0)
    fs = 1000.0
    drive = np.r_[np.full(3000, 0.2), np.full(3000, 1.0)]
    emg = np.abs(drive * rng.laplace(size=drive.size))[:, None]
    est = bayesian_filter(np.c_[emg, emg], fs, alpha=0.01, beta=1e-3, sigma_max=3.0)
    assert est.shape == (6000, 2)
    np.testing.assert_allclose(est[:, 0], est[:, 1])  # channels are independent and identical
    assert abs(np.median(est[1500:3000, 0]) - 0.2) < 0.08
    assert abs(np.median(est[4500:, 0]) - 1.0) < 0.3
    assert 1000 + np.argmax(est[1000:, 0] > 0.6) > 3000  # after the uniform start settles, rises only after the step


def test_fast_diffusion_is_sub_stepped_and_smooths_less():
    rng = np.random.default_rng(1)
    drive = np.r_[np.full(500, 0.2), np.full(500, 1.0)]
    emg = np.abs(drive * rng.laplace(size=drive.size))[:, None]
    limit = 0.03**2 * 100  # ds^2 / dt for 100 levels up to 3.0 at 100 Hz
    slow = bayesian_filter(emg, 100.0, alpha=0.1 * limit, beta=1e-4, sigma_max=3.0)
    fast = bayesian_filter(emg, 100.0, alpha=20 * limit, beta=1e-4, sigma_max=3.0)  # sub-stepped
    assert np.all(np.isfinite(fast)) and np.all((fast > 0) & (fast <= 3.0))
    assert np.std(fast[600:]) > 1.5 * np.std(slow[600:])  # more diffusion: a less smoothed estimate


def test_bayesian_filter_checks_its_parameters():
    x = np.ones((10, 1))
    with pytest.raises(ValueError, match="beta"):
        bayesian_filter(x, 1000.0, alpha=0.0, beta=2e3, sigma_max=1.0)
    with pytest.raises(ValueError, match="likelihood"):
        bayesian_filter(x, 1000.0, alpha=0.01, beta=0.0, likelihood="cauchy")


def test_blocked_filter_equals_one_pass():
    """Long inputs run as parallel blocks with a burn-in; the result equals the one-pass filter."""
    rng = np.random.default_rng(2)
    n = 40000
    drive = 0.5 + 0.4 * np.sin(2 * np.pi * np.arange(n) / 3000.0)
    emg = np.abs(drive[:, None] * rng.laplace(size=(n, 2)))
    for alpha, beta in ((0.01, 0.1), (1.0, 10.0)):  # jumps of 1e-4 and 1e-2 per sample
        blocked = bayesian_filter(emg, 1000.0, alpha, beta, sigma_max=3.0, burn_in=2000)  # 5 blocks
        one_pass = bayesian_filter(emg, 1000.0, alpha, beta, sigma_max=3.0, burn_in=n)  # a single block
        np.testing.assert_allclose(blocked, one_pass, atol=1e-7)


def test_gaussian_smoothing_of_an_impulse():
    counts = np.zeros((201, 1))
    counts[100] = 1.0
    rate = gaussian_smooth(counts, 0.01, 0.05)[:, 0]
    assert rate.sum() * 0.01 == pytest.approx(1.0, rel=1e-6)  # one spike: unit area in Hz x s
    t = (np.arange(201) - 100) * 0.01
    assert np.sqrt(np.sum(rate * t**2) / rate.sum()) == pytest.approx(0.05, rel=0.02)  # SD = sigma
    assert np.argmax(rate) == 100  # centred: no delay
    flat = gaussian_smooth(np.full((50, 2), 3.0), 0.01, 0.05)
    np.testing.assert_allclose(flat, 300.0)  # edges are renormalised, not decayed
    with pytest.raises(ValueError):
        gaussian_smooth(counts, 0.01, 0.0)


def test_parameter_grids():
    assert list(lowpass_grid(100.0)) == ["0.5 Hz", "1 Hz", "2 Hz", "3 Hz", "4 Hz", "6 Hz", "8 Hz", "12 Hz", "16 Hz",
                                         "20 Hz", "30 Hz"]
    assert "30 Hz" not in lowpass_grid(50.0)  # at Nyquist
    x = np.abs(np.random.default_rng(0).normal(size=(1000, 3))) * np.array([1.0, 10.0, 100.0])
    scaled, grid, scale = bayesian_grid(x, 100.0)
    assert len(grid) == 20 and np.allclose(np.quantile(x / scale, 0.95, axis=0), 1.0)
    assert scaled.max() <= next(iter(grid.values()))["sigma_max"]


def test_per_segment_filters_each_segment_alone_and_leaves_short_ones_nan():
    from nwb_autolfads.evaluation.baselines import MIN_FILTER_BINS, filterable_segments, per_segment

    n = MIN_FILTER_BINS
    times = np.r_[np.arange(2 * n), 100 + np.arange(n - 1)] * 0.01  # a gap, then a segment too short to filter
    segments = filterable_segments(times)
    assert [(s.start, s.stop) for s in segments] == [(0, 2 * n)]
    values = np.r_[np.ones(2 * n), 5 * np.ones(n - 1)][:, None]
    out = per_segment(lambda v: v - v.mean(axis=0), values, segments)  # a filter that sees only its segment
    assert np.allclose(out[:2 * n], 0.0) and np.isnan(out[2 * n:]).all()


@pytest.mark.parametrize("old, new", [("stretches", "bin_segments"), ("gap_free_runs", "filterable_segments"),
                                      ("per_run", "per_segment")])
def test_former_segment_names_warn_and_are_the_new_functions(old, new):
    from nwb_autolfads.evaluation import baselines

    with pytest.warns(DeprecationWarning, match=f"baselines.{old} is deprecated: use {new}"):
        assert getattr(baselines, old) is getattr(baselines, new)
    with pytest.raises(AttributeError):
        baselines.no_such_name  # noqa: B018
