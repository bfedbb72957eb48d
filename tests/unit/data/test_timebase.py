"""The time base of real files: float32-rounded, jittered, drifting and gapped timestamps."""

import numpy as np
import pytest

from nwb_autolfads.errors import SignalError
from nwb_autolfads.data.signals import Signal
from nwb_autolfads.data.timebase import Clock, analyse_timestamps, bin_centres, check_rate, regular_times, stored_rate


def _float32(t):
    return np.asarray(t, dtype=np.float32).astype(np.float64)


@pytest.mark.parametrize("t0", [1500.0, 5000.0, 20000.0])
def test_float32_timestamps_give_the_true_rate_and_no_gaps(t0):
    true = t0 + np.arange(20000) / 2000.0
    tb = analyse_timestamps(_float32(true))
    assert tb.rate == pytest.approx(2000.0, rel=1e-5)  # the median step says 2048 Hz at 1500 s
    assert tb.segments == [slice(0, 20000)]  # quantisation steps are no gaps (at 5000 s they were)
    assert tb.float32 and tb.quantised and "float32" in tb.notes()[0]
    assert tb.resolution == pytest.approx(float(np.spacing(np.float32(true[-1]))))


@pytest.mark.parametrize("t0", [1500.0, 20000.0])
def test_clock_puts_float32_samples_at_their_true_times(t0):
    true = t0 + np.arange(20000) / 2000.0
    clock = Clock(_float32(true), 2000.0)
    idx = np.arange(0, 20001, 7)
    assert np.max(np.abs(clock(idx) - (t0 + idx / 2000.0))) < 1e-4  # 0.1 ms; the raw stamps are off by up to 1 ms


def test_float64_timestamps_are_not_flagged():
    tb = analyse_timestamps(1500.0 + np.arange(5000) / 2000.0)
    assert tb.rate == pytest.approx(2000.0, rel=1e-9) and not tb.quantised and not tb.float32 and tb.notes() == []


def test_jittered_clock_has_its_rate_and_splits_only_at_a_real_gap():
    rng = np.random.default_rng(0)
    n = 600 * 2000
    true = 100.0 + np.arange(n) / 2000.0
    true[n // 2:] += 0.1  # a real 100 ms gap
    t = true + rng.normal(0, 5e-5, n)  # 0.05 ms SD: 10% of a period
    tb = analyse_timestamps(t)
    assert tb.rate == pytest.approx(2000.0, rel=1e-6)
    assert tb.segments == [slice(0, n // 2), slice(n // 2, n)]
    assert tb.jitter == pytest.approx(5e-5, rel=0.2) and tb.jittered and "jitter" in tb.notes()[0]


def test_one_late_timestamp_is_jitter_not_a_gap():
    t = np.arange(4000) / 1000.0
    t[2000] += 0.0009  # 0.9 period late, then back on time
    assert analyse_timestamps(t).segments == [slice(0, 4000)]
    t[2000:] += 0.0009  # late from then on: a gap
    assert len(analyse_timestamps(t).segments) == 2


def test_hours_long_drifting_jittered_clock_with_a_gap():
    rate = 1000.0 * (1 + 20e-6)  # a 20 ppm fast sample clock against the master clock
    n = 3600 * 1000
    true = 10.0 + np.arange(n) / rate
    true += 2e-3 * np.sin(2 * np.pi * np.arange(n) / n)  # slow wander of 2 ms over the session
    gap = 2000 * 1000
    true[gap:] += 1.0  # one second lost
    t = true + np.random.default_rng(1).normal(0, 1e-5, n)
    tb = analyse_timestamps(t)
    assert tb.rate == pytest.approx(rate, rel=2e-6)
    assert tb.segments == [slice(0, gap), slice(gap, n)]
    for seg in tb.segments:
        clock = Clock(t[seg], tb.rate)
        idx = np.linspace(0, seg.stop - seg.start - 1, 1001)
        assert np.max(np.abs(clock(idx) - np.interp(idx, np.arange(seg.stop - seg.start), true[seg]))) < 1e-4


def test_timestamps_rounded_to_milliseconds_are_quantised_not_duplicates():
    t = np.round(3.0 + np.arange(4000) / 2000.0, 3)  # 2 kHz stamped in whole ms: half the steps are 0
    tb = analyse_timestamps(t)
    assert tb.rate == pytest.approx(2000.0, rel=1e-4) and tb.segments == [slice(0, 4000)]
    assert tb.quantised and tb.resolution == pytest.approx(1e-3)


@pytest.mark.parametrize("bad, words", [
    (np.insert(np.arange(100) * 0.001, 50, 0.05), "strictly increasing"),  # a duplicate in fine timestamps
    ([0.0, 0.002, 0.001], "sort the data"),
    ([0.0, np.nan, 1.0], "NaN"),
    ([1.0, 1.0, 1.0], "all 3 timestamps"),
])
def test_bad_timestamps_are_refused(bad, words):
    with pytest.raises(SignalError, match=words):
        analyse_timestamps(np.array(bad))


def test_a_duplicate_in_float32_timestamps_finer_than_a_period_is_refused():
    t = _float32(1500.0 + np.arange(4000) / 2000.0)  # float32 spacing 0.12 ms < 0.5 ms period
    t[101] = t[100]
    with pytest.raises(SignalError, match="strictly increasing"):
        analyse_timestamps(t)


def test_starting_time_and_rate_are_used_as_given():
    sig = Signal(np.zeros((1000, 2)), ["a", "b"], "V", "x", rate=2000.0, starting_time=1500.0)
    tb = sig.timebase()
    assert tb.rate == 2000.0 and tb.segments == [slice(0, 1000)] and not tb.quantised
    clock = sig.clock(slice(100, 1000))
    np.testing.assert_allclose(clock([0.0, 900.0]), [1500.05, 1500.5])


@pytest.mark.parametrize("rate, from_ts, words", [
    (2.0, True, "milliseconds"), (0.002, True, "microseconds"), (1.0, True, "sample numbers"),
    (2.0, False, "kHz"), (5e6, False, "not in Hz")])
def test_implausible_emg_rates_are_refused_naming_the_cause(rate, from_ts, words):
    with pytest.raises(SignalError, match=words):
        check_rate(rate, "acquisition/EMG", from_ts)
    check_rate(2000.0, "acquisition/EMG", from_ts)


def test_frequent_gaps_between_short_cycles_keep_the_rate_and_every_gap():
    """Step cycles of 7-8 samples with a gap after each: most blocks of samples hold a gap, which
    must not stretch the period (the old block estimate gave 41 Hz and merged cycles)."""
    from nwb_autolfads.testing import binned_cycles

    c = binned_cycles(n_cycles=30, cycle_duration=0.03, bin_size=0.004, n_muscles=2)
    tb = analyse_timestamps(c.times)
    assert tb.rate == pytest.approx(250.0, rel=1e-6)
    assert [s.stop - s.start for s in tb.segments] == list(c.lengths)
    t = _float32(2000.0 + c.times)  # the same, rounded to float32 late in a session
    tb = analyse_timestamps(t)
    assert tb.rate == pytest.approx(250.0, rel=1e-3) and len(tb.segments) == 30


@pytest.mark.parametrize("start,rate,n", [(0.005, 100.0, 6000), (3.702, 200.0, 5000), (1234.5678, 2000.0 / 3, 999)])
def test_regular_times_are_the_times_pynwb_rebuilds_from_starting_time_and_rate(start, rate, n):
    from pynwb import TimeSeries

    ts = TimeSeries(name="x", data=np.zeros(n), unit="a.u.", starting_time=start, rate=rate)
    assert np.array_equal(regular_times(start, n, rate), ts.get_timestamps())  # to the last bit
    assert np.array_equal(regular_times(start, 10, rate, first=n - 10), ts.get_timestamps()[-10:])


def test_bin_centres_written_and_read_back_are_the_same_floats():
    # start + (k + 0.5) * bin_size differs from what a reader rebuilds on about a third of the bins
    t0, b, n = 0.0, 0.01, 6000
    naive = t0 + (np.arange(n) + 0.5) * b
    rebuilt = lambda t: t[0] + np.arange(t.size) / (1.0 / b)  # noqa: E731  what pynwb does with starting_time + rate
    assert np.sum(naive != rebuilt(naive)) > 100
    centres = bin_centres(t0, n, b)
    assert np.array_equal(centres, rebuilt(centres))
    np.testing.assert_allclose(centres, naive, rtol=0, atol=1e-12)


def test_stored_rate_is_given_only_when_starting_time_and_rate_rebuild_the_times_exactly():
    b = 0.01
    grid = bin_centres(2.0, 1000, b)
    assert stored_rate(grid, b) == 100.0 and stored_rate(grid[:1], b) == 100.0
    # leading bins left out: rebuilt from their own first time they differ in the last bits -> timestamps
    assert stored_rate(grid[7:], b) is None
    gapped = np.r_[bin_centres(0.0, 50, b), bin_centres(1.0, 50, b)]
    assert stored_rate(gapped, b) is None
    assert stored_rate(0.3 + np.arange(1000) * b, b) is None  # k * period: not what a reader rebuilds
    # a file's own rate a float away from 1 / (1 / rate): that rate, so an envelope keeps its own times
    odd = next(r for r in np.linspace(300.0, 400.0, 2001) if 1.0 / (1.0 / r) != r)
    times = regular_times(1.5, 5000, odd)
    assert stored_rate(times, 1.0 / odd) == odd
    slow = regular_times(0.0, 360_000, 1 / (b * (1 + 5e-7)))  # steps 0.5 ppm long: never written as 100 Hz
    assert stored_rate(slow, b) is None


def test_same_bin_size_is_within_a_thousandth():
    from nwb_autolfads.data.timebase import same_bin_size

    assert same_bin_size(0.01, 0.010000008154726937) and same_bin_size(0.004, 0.004 * (1 + 9e-4))
    assert same_bin_size(0.009998, 0.01)  # clocks 200 ppm apart
    assert not same_bin_size(0.01, 0.01002) and not same_bin_size(0.01, 0.012)
    assert same_bin_size(0.005, 0.005)
