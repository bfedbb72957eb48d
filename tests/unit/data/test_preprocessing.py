import logging

import numpy as np
import pytest

from nwb_autolfads.config import PreprocessConfig
from nwb_autolfads.errors import SignalError
from nwb_autolfads.data.filters import bin_average, highpass_filter, notch_filter, resample
from nwb_autolfads.data.preprocessing import preprocess_emg
from nwb_autolfads.data.scan import looks_rectified
from nwb_autolfads.data.signals import SeriesValues, Signal
from nwb_autolfads.testing import BUMP_PEAKS_S, bump_emg, bump_lags

FS = 2000.0


def _power_at(x, fs, f):
    spec = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(x.size, 1 / fs)
    return spec[np.argmin(np.abs(freqs - f))]


def test_notch_removes_line_frequency_and_harmonics_only():
    t = np.arange(int(4 * FS)) / FS
    x = (np.sin(2 * np.pi * 60 * t) + np.sin(2 * np.pi * 120 * t) + np.sin(2 * np.pi * 300 * t))[:, None]
    y, freqs = notch_filter(x, FS, 60.0, 3, 30.0)
    assert freqs == [60.0, 120.0, 180.0]
    mid = slice(2000, 6000)
    assert _power_at(y[mid, 0], FS, 60) < 1e-4 * _power_at(x[mid, 0], FS, 60)
    assert _power_at(y[mid, 0], FS, 120) < 1e-4 * _power_at(x[mid, 0], FS, 120)
    assert _power_at(y[mid, 0], FS, 300) == pytest.approx(_power_at(x[mid, 0], FS, 300), rel=0.05)


def test_notch_skips_harmonics_above_nyquist():
    _, freqs = notch_filter(np.random.default_rng(0).normal(size=(1000, 1)), 250.0, 60.0, 5, 30.0)
    assert freqs == [60.0]


def test_highpass_is_zero_phase_and_removes_slow_drift():
    t = np.arange(int(4 * FS)) / FS
    slow = np.sin(2 * np.pi * 2 * t)
    fast = np.sin(2 * np.pi * 200 * t)
    y = highpass_filter((slow + fast)[:, None], FS, 65.0, 4)[:, 0]
    mid = slice(1000, -1000)
    np.testing.assert_allclose(y[mid], fast[mid], atol=0.02)  # no phase shift of the pass band


def test_resample_rational_rate():
    x = np.random.default_rng(0).normal(size=(3000, 2))
    y, rate = resample(x, 3000.0, 1000.0)
    assert rate == 1000.0 and y.shape == (1000, 2)
    same, rate = resample(x, 1000.0, 1000.0)
    assert same is x and rate == 1000.0


def test_bin_average_exact_values():
    times = np.arange(10) * 0.001 + 5.0
    x = np.arange(10.0)[:, None] * np.array([[1.0, 2.0]])
    b, centres = bin_average(x, times, 0.005)
    np.testing.assert_allclose(b, [[2.0, 4.0], [7.0, 14.0]])
    # each bin is labelled at the mean time of its samples (5.000-5.004 s -> 5.002 s), not p/2 later
    np.testing.assert_allclose(centres, [5.002, 5.007])


@pytest.mark.parametrize("period, per_bin, t0", [(0.001, 5, 5.0), (0.005, 2, 12.3456), (0.02, 2, 0.0),
                                                 (1 / 2000, 20, 3.21), (1 / 30000, 300, 100.0)])
def test_bin_labels_are_the_mean_sample_time(period, per_bin, t0):
    """A sample at t_j covers [t_j - p/2, t_j + p/2): a bin of whole samples is labelled at their
    mean time and holds exactly those samples (docs/science.md, Bin times)."""
    n_bins = 7
    times = t0 + np.arange(n_bins * per_bin) * period
    x = np.random.default_rng(1).random((times.size, 3))
    b, centres = bin_average(x, times, per_bin * period)
    np.testing.assert_allclose(centres, times.reshape(n_bins, per_bin).mean(axis=1), rtol=0, atol=1e-9 * period)
    np.testing.assert_allclose(b, x.reshape(n_bins, per_bin, 3).mean(axis=1), rtol=1e-12)


def _bump_lags_ms(sig, start, cfg=None, bin_size=None, **kw):
    pre = preprocess_emg(sig, cfg or PreprocessConfig(), bin_size, **kw)
    peaks = tuple(p + start for p in BUMP_PEAKS_S)
    return bump_lags(np.concatenate(pre.bin_times), np.concatenate(pre.rectified), peaks) * 1e3, pre


def _bump_signal(rate, carrier_hz=None, start=0.0, timestamps=False):
    s = bump_emg(rate, carrier_hz=carrier_hz)  # its bumps peak at start + BUMP_PEAKS_S
    t = s.times + start
    if timestamps:
        return Signal(s.raw, s.names, "volts", "acquisition/EMG", timestamps=t)
    return Signal(s.raw, s.names, "volts", "acquisition/EMG", rate=rate, starting_time=start)


@pytest.mark.parametrize("case, rate, carrier, bin_size, cfg, chunk", [
    ("envelope at 100 Hz, its own bins", 100.0, None, None, {}, None),
    ("envelope at 200 Hz re-binned to 10 ms", 200.0, None, 0.01, {}, None),
    ("envelope at 50 Hz re-binned to 40 ms", 50.0, None, 0.04, {}, None),
    ("envelope at 500 Hz re-binned to 10 ms, in chunks", 500.0, None, 0.01, {}, 700),
    ("raw at 2 kHz, resampled to 1 kHz", 2000.0, 2000 / 6, None, {}, None),
    ("raw at 2 kHz, resampled, in chunks", 2000.0, 2000 / 6, None, {}, 1000),
    ("raw at 2 kHz, not resampled", 2000.0, 2000 / 6, None, {"resample_hz": None}, None),
    ("raw at 3 kHz, resampled to 1 kHz", 3000.0, 3000 / 6, None, {}, None),
])
@pytest.mark.parametrize("start, timestamps", [(0.0, False), (41.2345, True)])
def test_binned_emg_is_where_the_samples_are(case, rate, carrier, bin_size, cfg, chunk, start, timestamps):
    """The same envelope at any rate, kept in its own bins or averaged into bins (with or
    without resampling, whole or in chunks, with a rate or timestamps), comes out at its true
    times: bins averaging samples are no longer labelled half a sample period late (it was 2.5 ms
    for 200 Hz in 10 ms bins, 10 ms for 50 Hz in 40 ms, 0.5 ms for resampled 2 kHz)."""
    sig = _bump_signal(rate, carrier, start, timestamps)
    lags, pre = _bump_lags_ms(sig, start, PreprocessConfig(**cfg), bin_size, chunk_samples=chunk)
    assert pre.was_raw == (carrier is not None)
    assert np.all(np.abs(lags) < 0.05), f"{case}: bumps {lags} ms late"


def test_rebinned_envelope_keeps_its_samples_and_moves_only_its_times():
    """Re-binning a whole number of samples per bin: each bin holds the same samples as before
    the fix (the mean of consecutive pairs) and is labelled at their mean time."""
    sig = _bump_signal(200.0, start=7.0)
    pre = preprocess_emg(sig, PreprocessConfig(), 0.01)
    x, t = sig.values, sig.times()
    n = x.shape[0] // 2
    np.testing.assert_allclose(pre.rectified[0], x[:2 * n].reshape(n, 2, -1).mean(axis=1), rtol=1e-12)
    np.testing.assert_allclose(pre.bin_times[0], t[:2 * n].reshape(n, 2).mean(axis=1), rtol=0, atol=1e-9)


def test_resampled_bins_are_labelled_at_the_resampled_samples_mean_time():
    """Raw 2 kHz EMG resampled to 1 kHz: resampled sample k is at t0 + k ms and covers +-0.5 ms,
    so a 10 ms bin of 10 of them is labelled at t0 + 4.5 ms + 10 ms x k (without resampling,
    20 samples: t0 + 4.75 ms + 10 ms x k)."""
    sig = _bump_signal(2000.0, 2000 / 6, start=3.0)
    pre = preprocess_emg(sig, PreprocessConfig(), None)
    k = np.arange(pre.bin_times[0].size)
    np.testing.assert_allclose(pre.bin_times[0], 3.0 + 0.0045 + 0.01 * k, rtol=0, atol=1e-9)
    pre = preprocess_emg(sig, PreprocessConfig(resample_hz=None), None)
    np.testing.assert_allclose(pre.bin_times[0], 3.0 + 0.00475 + 0.01 * k[:pre.bin_times[0].size], rtol=0, atol=1e-9)


def test_looks_rectified():
    rng = np.random.default_rng(0)
    t = np.arange(20000) / FS
    envelope = (1.5 + np.sin(2 * np.pi * 1.3 * t))[:, None]
    raw = envelope * rng.normal(size=(t.size, 3))
    assert not looks_rectified(raw, FS)  # both signs
    assert looks_rectified(np.abs(raw), FS)  # rectified at the raw rate
    assert looks_rectified(envelope.repeat(3, 1) + 0.5, FS)  # a tonic envelope, far from zero
    assert not looks_rectified(raw - raw.min() + 100.0, FS)  # raw with an ADC offset: all positive
    assert looks_rectified(np.abs(raw)[::20], FS / 20)  # binned rectified EMG


def test_looks_rectified_is_not_fooled_by_undershoot_padding_or_a_wandering_offset():
    """Files of testers' reports: an envelope whose zero-phase low-pass undershoots zero once was
    "raw" (rectified again: r with the truth 0.95 -> 0.05); raw EMG after 35 s of zeros
    (amplifier enabled late) or on an unsigned ADC whose offset wanders was "an envelope"."""
    from scipy import signal as sps

    from nwb_autolfads.data.scan import spread_samples
    from nwb_autolfads.testing import synthetic_emg

    synth = synthetic_emg(duration=20.0, rate=2000.0, n_muscles=3, seed=4)
    raw, fs = synth.raw, 2000.0
    envelope = sps.sosfiltfilt(sps.butter(2, 10.0, fs=fs, output="sos"), np.abs(raw), axis=0)
    assert (envelope < 0).any()  # the filter's own undershoot
    assert looks_rectified(envelope, fs)
    one_below = envelope - envelope.min() + 1e-12
    one_below[1234, 1] = -1e-9  # a single sample below zero
    assert looks_rectified(one_below, fs)
    assert not looks_rectified(raw, fs) and not looks_rectified(-np.abs(raw).max() + raw, fs)  # both / negative
    wander = raw - raw.min() + 2.0 * raw.std() * (1.0 + np.sin(2 * np.pi * 0.3 * synth.times))[:, None]
    assert wander.min() > 0 and not looks_rectified(wander, fs)
    padded = np.concatenate([np.zeros((70000, 3)), raw])  # 35 s of zeros, then the EMG
    segments, dead = [slice(0, len(padded))], np.zeros(3, bool)
    assert not looks_rectified(spread_samples(padded, segments, dead), fs)
    assert not looks_rectified(padded[:80000], fs)  # 35 s of zeros and 5 s of EMG: the zeros are left out
    assert looks_rectified(np.concatenate([np.zeros((70000, 3)), envelope]), fs)
    pieces = spread_samples(padded, segments, dead, n=8000, pieces=8)
    assert len(pieces) == 8 and sum(len(p) for p in pieces) == 8000 and pieces[-1].any()


def _not_raw(x, fs) -> bool:
    """Taken for an envelope, or asked about (AmbiguousEmg): never rectified again silently."""
    from nwb_autolfads.data.scan import AmbiguousEmg

    try:
        return looks_rectified(x, fs)
    except AmbiguousEmg:
        return True


@pytest.mark.parametrize("fs", [1000.0, 2000.0])
def test_an_envelope_with_its_baseline_or_mean_subtracted_is_not_rectified_again(fs):
    """Testers' files: an envelope with its 2nd-5th percentile subtracted (2-5% negative) at 1-2 kHz
    was taken for raw EMG and rectified again (r with the truth 0.02); a z-scored envelope alike."""
    from scipy import signal as sps

    from nwb_autolfads.testing import synthetic_emg

    raw = synthetic_emg(duration=20.0, rate=fs, n_muscles=3, seed=3).raw
    for order, cutoff in ((2, 3.0), (4, 6.0), (2, 10.0), (4, 20.0)):
        env = sps.sosfiltfilt(sps.butter(order, cutoff, fs=fs, output="sos"), np.abs(raw - raw.mean(0)), axis=0)
        for q in (0.02, 0.05, 0.2):
            below = env - np.quantile(env, q, axis=0)
            assert np.mean(below < 0) >= q - 0.001 and _not_raw(below, fs), (order, cutoff, q)
        assert _not_raw((env - env.mean(0)) / env.std(0), fs), (order, cutoff)
    # raw EMG under movement artefacts (1-15 Hz) with 9 times its power is still raw
    moving = sps.sosfiltfilt(sps.butter(4, [1.0, 15.0], btype="band", fs=fs, output="sos"),
                             np.random.default_rng(1).normal(size=raw.shape), axis=0)
    assert not looks_rectified(raw + 3.0 * raw.std(0) * moving / moving.std(0), fs)


def test_an_envelope_that_keeps_fast_content_with_its_mean_taken_off_is_asked_about():
    """A break-it tester's files: a Hilbert envelope z-scored, Teager-Kaiser energy and rectified EMG
    binned at 2-4 ms and z-scored swing both ways with power above 60 Hz like raw EMG, and were
    rectified again silently (r with the truth 0.4-0.9 instead of 0.8-0.97). Their fast part is
    skewed like a magnitude's: the run now stops and asks, naming the channels and the reason.
    (Over seeds 20-31, 5-60 s at 1-4 kHz, with and without hum: all asked; the raw EMG: all raw.)"""
    from scipy import signal as sps

    from nwb_autolfads.data.scan import AmbiguousEmg
    from nwb_autolfads.testing import synthetic_emg

    for fs in (1000.0, 2000.0):
        raw = synthetic_emg(duration=12.0, rate=fs, n_muscles=3, seed=5).raw
        raw = raw - raw.mean(0)
        hilbert = np.abs(sps.hilbert(raw, axis=0))
        teager = np.vstack([raw[:1] ** 2, raw[1:-1] ** 2 - raw[:-2] * raw[2:], raw[-1:] ** 2])
        for env in (hilbert, teager):
            with pytest.raises(AmbiguousEmg) as info:
                looks_rectified((env - env.mean(0)) / env.std(0), fs)
            assert info.value.channels and "skewed like a magnitude's" in info.value.evidence
        assert not looks_rectified(raw, fs) and not looks_rectified(-raw, fs)  # the sign of raw EMG is no matter
    for seed in (20, 21, 22):  # 4 ms bins (250 Hz) of 5 s: 1250 samples
        short = synthetic_emg(duration=5.0, rate=1000.0, n_muscles=4, seed=seed).raw
        bins4 = np.abs(short - short.mean(0)).reshape(-1, 4, 4).mean(1)
        with pytest.raises(AmbiguousEmg):
            looks_rectified((bins4 - bins4.mean(0)) / bins4.std(0), 250.0)
    raw = synthetic_emg(duration=12.0, rate=2000.0, n_muscles=3, seed=5).raw
    binned = np.abs(raw - raw.mean(0)).reshape(-1, 4, 3).mean(1)  # 2 ms bins: 500 Hz
    z = (binned - binned.mean(0)) / binned.std(0)
    assert looks_rectified(binned, 500.0)
    sig = Signal(z, ["TA", "MG", "SOL"], "a.u.", "processing/emg/binned", rate=500.0)
    with pytest.raises(SignalError, match=r"processing/emg/binned: cannot tell whether the EMG is raw or already an "
                                          r"envelope \((TA, )?MG, SOL\): .*skewed like a magnitude's.*--emg-raw or "
                                          r"--emg-preprocessed"):
        preprocess_emg(sig, PreprocessConfig(), bin_size=None)
    assert preprocess_emg(sig, PreprocessConfig(), bin_size=None, preprocessed=True).was_raw is False


def test_a_held_envelope_is_judged_at_the_rate_it_was_sampled():
    """A 250 Hz envelope upsampled to 2 kHz by repeating each sample 8 times, minus its 5th
    percentile or z-scored, was taken for raw EMG (the steps put power in every band; r 0.36-0.62).
    It is judged at 250 Hz now; raw EMG, also quantised to a few int16 counts, is not held."""
    from scipy import signal as sps

    from nwb_autolfads.data.scan import held_period
    from nwb_autolfads.testing import synthetic_emg

    fs = 2000.0
    raw = synthetic_emg(duration=12.0, rate=fs, n_muscles=3, seed=6).raw
    raw = raw - raw.mean(0)
    envelope = sps.sosfiltfilt(sps.butter(2, 10.0, fs=fs, output="sos"), np.abs(raw), axis=0)
    for k in (8, 40):  # from 250 Hz, and from 50 Hz (no raw EMG there at all)
        held = np.repeat(envelope[::k], k, axis=0)[5 : len(raw) + 5]  # any phase
        assert held_period([held[:, 0]]) == k
        for x in (held, held - np.percentile(held, 5, axis=0), (held - held.mean(0)) / held.std(0)):
            assert looks_rectified(x, fs)
    counts = np.round(raw / raw.std() * 2.0)  # raw EMG a few counts wide: many repeats, at no fixed phase
    assert np.mean(np.diff(counts[:, 0]) == 0) > 0.1
    assert held_period([counts[:, 0]]) == 1 and held_period([raw[:, 0]]) == 1
    assert not looks_rectified(counts, fs)
    assert not looks_rectified(np.repeat(raw[::2], 2, axis=0), fs)  # 1 kHz raw EMG held at 2 kHz is still raw


def test_an_unsigned_recording_whose_fast_part_does_not_follow_its_level_is_asked_about():
    """Raw EMG on an unsigned ADC under movement artefacts of 10 times its SD was taken for an
    envelope (r with the truth ~0). An envelope's ripple grows with its level; raw EMG's size does
    not follow the baseline the artefacts move: such a channel is asked about. Envelopes, also
    stored as integers or low-passed (their fast part only the filter's residue), are not."""
    from scipy import signal as sps

    from nwb_autolfads.data.scan import AmbiguousEmg
    from nwb_autolfads.testing import synthetic_emg

    fs = 2000.0
    raw = synthetic_emg(duration=12.0, rate=fs, n_muscles=3, seed=8).raw
    raw = raw - raw.mean(0)
    rng = np.random.default_rng(8)
    moving = sps.sosfiltfilt(sps.butter(4, [5, 20], btype="band", fs=fs, output="sos"), rng.normal(size=raw.shape), axis=0)
    unsigned = raw + 10 * raw.std(0) * moving / moving.std(0)
    unsigned = np.round((unsigned - unsigned.min() + raw.std()) / raw.std() * 50.0)  # ADC counts, all positive
    with pytest.raises(AmbiguousEmg, match="unsigned ADC under large movement artefacts"):
        looks_rectified(unsigned, fs)
    envelope = sps.sosfiltfilt(sps.butter(2, 10.0, fs=fs, output="sos"), np.abs(raw), axis=0)
    for env in (envelope, np.round(envelope / envelope.max() * 100.0), np.sqrt(sps.sosfiltfilt(
            sps.butter(2, 5.0, fs=fs, output="sos"), raw**2, axis=0).clip(0))):
        assert looks_rectified(env, fs)


def test_envelopes_with_a_noise_floor_or_short_windows_are_not_taken_for_raw():
    """A break-it tester's files, taken for raw EMG and rectified again: a 10 Hz envelope with a
    noise floor of 1-3% of its peak, z-scored or on an offset (r about 0), and envelopes of short
    windows (moving RMS or average of 10 ms, rectified EMG low-passed at 50 Hz) with an offset
    added, or a 5 ms moving RMS z-scored (r 0.58-0.88). Their fast part's size is steady under a
    moving level, or follows the level: asked about. Raw EMG under movement artefacts is not."""
    from scipy import signal as sps

    from nwb_autolfads.data.scan import AmbiguousEmg
    from nwb_autolfads.testing import synthetic_emg

    fs = 2000.0
    raw = synthetic_emg(duration=12.0, rate=fs, n_muscles=3, seed=1).raw
    raw = raw - raw.mean(0)
    rng = np.random.default_rng(1)
    envelope = sps.sosfiltfilt(sps.butter(2, 10.0, fs=fs, output="sos"), np.abs(raw), axis=0)
    box = np.stack([np.convolve(np.abs(raw[:, c]), np.ones(20) / 20, "same") for c in range(3)], 1)
    rms5 = np.sqrt(np.stack([np.convolve(raw[:, c] ** 2, np.ones(10) / 10, "same") for c in range(3)], 1))
    noisy = envelope + 0.03 * envelope.max(0) * rng.normal(size=envelope.shape)
    for x in ((noisy - noisy.mean(0)) / noisy.std(0), noisy + 0.5 * envelope.max(0), box + 3 * box.std(0),
              (rms5 - rms5.mean(0)) / rms5.std(0)):
        with pytest.raises(AmbiguousEmg, match="steady size|follows their level"):
            looks_rectified(x, fs)
    moving = sps.sosfiltfilt(sps.butter(4, [1, 12], btype="band", fs=fs, output="sos"), rng.normal(size=raw.shape), axis=0)
    assert not looks_rectified(raw + 3 * raw.std(0) * moving / moving.std(0), fs)


def test_an_excerpt_shorter_than_the_skewness_window_does_not_crash():
    """A 15 ms gap-free segment of raw EMG at 10 kHz (150 samples, under the 25 ms running RMS)
    crashed the run with a numpy broadcasting error."""
    from nwb_autolfads.testing import synthetic_emg

    raw = synthetic_emg(duration=2.0, rate=10000.0, n_muscles=2, seed=2).raw
    pieces = [raw[:150], raw[5000:15000]]
    assert not looks_rectified(pieces, 10000.0)
    assert looks_rectified([np.abs(p) for p in pieces], 10000.0)


def test_channels_asked_about_that_could_decide_the_vote_are_asked_about():
    """One raw channel, one envelope and one that cannot be told: the tie used to go to 'envelope'
    (raw EMG rectified by the way of a vote). Now the run asks. A channel whose fast part is skewed
    like a magnitude's is asked about even when the others look raw: a Hilbert envelope z-scored
    had one such channel and two that hum made look raw (seed 6 here)."""
    from scipy import signal as sps

    from nwb_autolfads.data.scan import AmbiguousEmg
    from nwb_autolfads.testing import synthetic_emg

    fs = 2000.0
    raw = synthetic_emg(duration=12.0, rate=fs, n_muscles=5, seed=7).raw
    raw = raw - raw.mean(0)
    envelope = sps.sosfiltfilt(sps.butter(2, 10.0, fs=fs, output="sos"), np.abs(raw), axis=0)
    hilbert = np.abs(sps.hilbert(raw, axis=0))
    unsure = (hilbert - hilbert.mean(0)) / hilbert.std(0)
    with pytest.raises(AmbiguousEmg) as info:
        looks_rectified(np.column_stack([raw[:, 0], envelope[:, 1], unsure[:, 2]]), fs)
    assert info.value.channels == [2]
    with pytest.raises(AmbiguousEmg):
        looks_rectified(np.column_stack([raw[:, :4], unsure[:, 4]]), fs)
    raw6 = synthetic_emg(duration=12.0, rate=fs, n_muscles=3, seed=6).raw
    hilbert6 = np.abs(sps.hilbert(raw6 - raw6.mean(0), axis=0))
    with pytest.raises(AmbiguousEmg):
        looks_rectified((hilbert6 - hilbert6.mean(0)) / hilbert6.std(0), fs)


def test_a_series_of_raw_and_enveloped_channels_is_asked_about_or_named(caplog):
    """A break-it tester's file: 64 channels, 32 of raw EMG and 32 of envelopes, was processed as
    envelopes (the tie went to 'envelope'; the raw half was never rectified), and 9 raw + 3
    envelopes went through as raw without a word (the envelopes high-passed and rectified). The
    channels of one series are processed alike: a split asks which, a lone channel of the other kind
    is named in a warning. A second round: channels that cannot be told (9 raw + 3 moving-RMS
    envelopes z-scored, 48 envelopes + 16 raw under large movement artefacts) dropped out of the
    count and went through silently; they count now."""
    from scipy import signal as sps

    from nwb_autolfads.data.scan import AmbiguousEmg
    from nwb_autolfads.testing import synthetic_emg

    fs = 2000.0
    raw = synthetic_emg(duration=10.0, rate=fs, n_muscles=4, seed=3).raw
    raw = raw - raw.mean(0)
    envelope = sps.sosfiltfilt(sps.butter(4, 5.0, fs=fs, output="sos"), np.abs(raw), axis=0)
    rms = np.sqrt(sps.lfilter(np.ones(200) / 200, 1.0, raw**2, axis=0))
    rms = (rms - rms.mean(0)) / rms.std(0)
    moving = sps.sosfiltfilt(sps.butter(4, [1, 12], btype="band", fs=fs, output="sos"),
                             np.random.default_rng(0).normal(size=raw.shape), axis=0)
    buried = raw + 10 * raw.std(0) * moving / moving.std(0)
    names = [f"m{c}" for c in range(8)]  # and "force", the ninth
    for x, minority in ((np.hstack([raw, envelope]), 4),  # a tie
                        (np.hstack([raw, raw[::-1], raw[:, :1], envelope[:, :3]]), 3),  # 9 raw + 3 envelopes
                        (np.hstack([raw, raw[::-1], raw[:, :1], rms[:, :3]]), 3),  # 9 raw + 3 that cannot be told
                        (np.hstack([envelope] * 12 + [buried] * 4), 16)):  # 48 envelopes + 16 raw under artefacts
        with pytest.raises(AmbiguousEmg, match="are not like the other .*two kinds of signal in one series") as info:
            looks_rectified(x, fs, [f"m{c}" for c in range(x.shape[1])])
        assert len(info.value.channels) == minority and info.value.mixed
    with pytest.raises(AmbiguousEmg):  # 2 + 2 with the envelopes' mean taken off
        looks_rectified(np.hstack([raw[:, :2], envelope[:, :2] - envelope[:, :2].mean(0)]), fs)
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert not looks_rectified(np.hstack([raw, raw[::-1], envelope[:, :1]]), fs, names + ["force"])
    assert "1 of 9 EMG channel(s) (force) are not like the other 8 (raw EMG): 1 looks like an envelope. All are " \
        "processed as raw EMG" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert not looks_rectified(raw, fs) and looks_rectified(envelope, fs)  # one kind: nothing said
    assert not caplog.text
    # Through preprocessing: one line naming the channels once, pointing to data.channel_names.
    sig = Signal(np.hstack([raw, raw[::-1], raw[:, :1], envelope[:, :3]]), [f"m{c}" for c in range(12)], "volts",
                 "acquisition/EMG", rate=fs)
    with pytest.raises(SignalError) as info:
        preprocess_emg(sig, PreprocessConfig(), None)
    message = str(info.value)
    assert "not all of one kind" in message and "data.channel_names" in message and message.count("m9") == 1


def test_the_envelope_of_a_steady_contraction_is_not_taken_for_raw_emg_on_an_offset():
    """Found by a sweep over envelope kinds: a steady contraction (level within 5%) rectified and
    low-passed at 50 Hz, stored as it is, was raw EMG on an offset in 117 of 216 settings (rectified
    again: the ripple's magnitude). Its power above 60 Hz falls off like a filter's stopband; raw
    EMG's, even surface EMG of low median frequency, does not."""
    from scipy import signal as sps

    from nwb_autolfads.data.scan import AmbiguousEmg

    rng = np.random.default_rng(0)
    for fs in (1000.0, 2000.0):
        n = int(12 * fs)
        carrier = sps.sosfiltfilt(sps.butter(4, [20, 450], btype="band", fs=fs, output="sos"),
                                  rng.normal(size=(n, 3)), axis=0)
        steady = carrier * (1 + 0.05 * np.sin(2 * np.pi * 0.3 * np.arange(n) / fs))[:, None]
        envelope = sps.sosfiltfilt(sps.butter(2, 50.0, fs=fs, output="sos"), np.abs(steady), axis=0)
        with pytest.raises(AmbiguousEmg, match="falls off like a low-pass filter"):
            looks_rectified(envelope, fs)
        assert not looks_rectified(steady - steady.min() + 1.0, fs)  # the raw EMG itself on an unsigned ADC


def test_raw_emg_buried_under_large_slow_artefacts_is_asked_about():
    """Raw EMG under 1-12 Hz movement artefacts of 10-30 times its SD has under 2% of its power
    above 5 Hz above 20 Hz, as an envelope with its mean taken off has, and was taken for one (40 s
    at 0.5-4 kHz; r with the truth about 0.2). What lies above 20 Hz is shaped like raw EMG's band
    (mostly above 60 Hz, symmetric, reaching 150 Hz): asked about. Slow envelopes with their mean
    taken off are still envelopes."""
    from scipy import signal as sps

    from nwb_autolfads.data.scan import AmbiguousEmg
    from nwb_autolfads.testing import synthetic_emg

    fs = 2000.0
    raw = synthetic_emg(duration=20.0, rate=fs, n_muscles=3, seed=0).raw
    raw = raw - raw.mean(0)
    moving = sps.sosfiltfilt(sps.butter(4, [1, 12], btype="band", fs=fs, output="sos"),
                             np.random.default_rng(0).normal(size=raw.shape), axis=0)
    with pytest.raises(AmbiguousEmg, match="shaped like raw EMG's band"):
        looks_rectified(raw + 30 * raw.std(0) * moving / moving.std(0), fs)
    for hz in (2.0, 5.0, 10.0):
        envelope = sps.sosfiltfilt(sps.butter(4, hz, fs=fs, output="sos"), np.abs(raw), axis=0)
        assert looks_rectified((envelope - envelope.mean(0)) / envelope.std(0), fs)


def test_a_slow_envelope_in_few_integer_counts_is_not_taken_for_raw():
    """A break-it tester's file: 2 Hz envelopes stored as integer counts (the strongest channel's
    peak 50 counts) hold each value for 10 samples or more; the removal of such runs (meant for a
    dead amplifier, zero padding, rails) took most samples, left 7 of 8 channels "flat" and the
    last one, a string of steps, was judged raw: the series was processed as raw without a word.
    Runs at 5 values or more are a coarse slow signal and are kept."""
    from scipy import signal as sps

    from nwb_autolfads.data.scan import AmbiguousEmg
    from nwb_autolfads.testing import synthetic_emg

    fs = 2000.0
    for seed in (41, 43):
        raw = synthetic_emg(duration=20.0, rate=fs, n_muscles=8, seed=seed).raw
        envelope = sps.sosfiltfilt(sps.butter(4, 2.0, fs=fs, output="sos"), np.abs(raw - raw.mean(0)), axis=0)
        counts = np.round(envelope / np.abs(envelope).max() * 50)
        try:
            assert looks_rectified(counts, fs)
        except AmbiguousEmg:
            pass  # asked is right too; raw is not
    padded = synthetic_emg(duration=10.0, rate=fs, n_muscles=3, seed=0).raw
    padded[:4000] = 0.0
    padded[8000:9000] = padded[8000]  # a dead stretch at one value: still left out
    assert not looks_rectified(padded, fs)


def test_raw_emg_on_an_unsigned_adc_with_large_artefacts_is_raw():
    """A tester's file: raw EMG in counts of an unsigned 16-bit ADC (all positive) with 15 positive
    artefacts of 10 ms was "already rectified" (model input r with the truth 0.03)."""
    from nwb_autolfads.testing import synthetic_emg

    raw = synthetic_emg(duration=20.0, rate=2000.0, n_muscles=4, seed=0).raw
    counts = (raw - raw.mean(0)) / np.abs(raw - raw.mean(0)).max() * 8000.0
    for i in np.random.default_rng(0).choice(len(counts) - 40, 15, replace=False):
        counts[i:i + 20] += 20000.0
    counts = np.clip(np.round(counts + 32768.0), 0, 65535)
    assert counts.min() > 0 and not looks_rectified(counts, 2000.0)
    rectified = np.abs(counts - 32768.0)  # the same, rectified, artefacts and all
    assert looks_rectified(rectified, 2000.0) and looks_rectified(rectified + 0.02 * rectified.max(), 2000.0)


@pytest.mark.parametrize("rate", [100.0, 1000.0, 2000.0, 5000.0])
def test_an_envelope_mostly_below_zero_is_warned_about(caplog, rate):
    """A tester's report: the warning was given at 1 kHz and not at 2-5 kHz (resampling there
    floors at zero before the bins were looked at)."""
    t = np.arange(int(40 * rate)) / rate
    env = np.abs(np.sin(2 * np.pi * 0.5 * t))[:, None] * np.ones((1, 2))
    env[:, 1] = (env[:, 1] - env[:, 1].mean()) / env[:, 1].std()  # z-scored: about half below zero
    sig = Signal(env, ["BIC", "TRI"], "V", "acquisition/EMG", rate=rate)
    with caplog.at_level("WARNING"):
        preprocess_emg(sig, PreprocessConfig(), None, preprocessed=True)
    text = " ".join(r.getMessage() for r in caplog.records if "below zero" in r.getMessage())
    assert "TRI (" in text and "BIC" not in text and "z-scored" in text


def _raw_signal(seconds=4.0, n=3, seed=0, **kw):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * FS)) / FS
    amp = 1.0 + 0.5 * np.sin(2 * np.pi * 1.0 * t)[:, None] * np.arange(1, n + 1)[None, :] / n
    x = amp * rng.normal(size=(t.size, n)) + 0.3 * np.sin(2 * np.pi * 60 * t)[:, None] + 0.1
    return Signal(x, [f"m{i}" for i in range(n)], "V", "acquisition/EMG", rate=FS, **kw)


def test_raw_pipeline_scales_q95_to_one_and_lists_steps():
    sig = _raw_signal()
    cfg = PreprocessConfig()
    pre = preprocess_emg(sig, cfg, bin_size=0.01)
    assert pre.was_raw and len(pre.segments) == 1
    seg = pre.segments[0]
    assert seg.shape == (400, 3) and seg.dtype == np.float32
    assert seg.min() >= cfg.floor
    np.testing.assert_allclose(np.quantile(np.minimum(pre.rectified[0], pre.clip_levels) / pre.scales, 0.95,
                                           axis=0), 1.0, rtol=1e-6)
    assert seg.max() <= np.max(pre.clip_levels / pre.scales) + 1e-5  # clipped
    text = " | ".join(pre.steps)
    for word in ("raw EMG", "notch", "high-pass", "rectification", "resampling", "10 ms bins", "clipping",
                 "0.95 quantile", "floor"):
        assert word in text
    # resampled to 1 kHz (samples at 0, 1, ... ms): each 10 ms bin at its 10 samples' mean time
    np.testing.assert_allclose(pre.bin_times[0][:2], [0.0045, 0.0145])
    # the envelope follows the true amplitude modulation
    amp = 1.0 + 0.5 * np.sin(2 * np.pi * pre.bin_times[0])
    assert np.corrcoef(seg[:, 2], amp)[0, 1] > 0.7


def test_steps_can_be_disabled():
    sig = _raw_signal()
    cfg = PreprocessConfig(line_frequency=None, highpass_hz=None, resample_hz=None, clip_quantile=None)
    pre = preprocess_emg(sig, cfg, bin_size=0.01)
    text = " | ".join(pre.steps)
    assert "notch" not in text and "high-pass" not in text and "resampling" not in text and "clipping" not in text
    assert "rectification" in text
    assert np.all(np.isinf(pre.clip_levels))


def test_already_rectified_input_skips_filters():
    sig = _raw_signal()
    env = Signal(np.abs(sig.values), sig.channel_names, "V", "x", rate=FS)
    pre = preprocess_emg(env, PreprocessConfig(), bin_size=0.01)
    assert not pre.was_raw
    text = " | ".join(pre.steps)
    assert "already-rectified" in text and "notch" not in text and "rectification" not in text
    # forcing raw processing is possible too
    assert preprocess_emg(env, PreprocessConfig(), 0.01, preprocessed=False).was_raw


def test_coarsely_binned_input_uses_its_own_bins():
    rng = np.random.default_rng(0)
    env = Signal(rng.uniform(0.1, 1.0, size=(500, 2)), ["a", "b"], "V", "x", rate=50.0, starting_time=1.0)
    pre = preprocess_emg(env, PreprocessConfig(), bin_size=0.01)
    assert pre.bin_size == pytest.approx(0.02)
    assert pre.segments[0].shape == (500, 2)
    np.testing.assert_allclose(pre.bin_times[0], env.times())  # each sample is a bin at its own timestamp
    assert "each sample is one 20 ms bin" in " | ".join(pre.steps)


def _binned_cycles_signal(**kwargs):
    from nwb_autolfads.testing import binned_cycles

    c = binned_cycles(**kwargs)
    return c, Signal(c.values, c.names, "volts", "acquisition/EMG", timestamps=c.times)


@pytest.mark.parametrize("bin_ms, cycle", [(4.0, 0.45), (2.0, 0.45), (4.0, (0.3, 0.6))])
def test_already_binned_cycles_keep_their_bins_and_timestamps(bin_ms, cycle):
    c, sig = _binned_cycles_signal(n_cycles=6, cycle_duration=cycle, bin_size=bin_ms / 1e3, n_muscles=3, seed=2)
    for preprocessed in (True, None):  # given, or detected (non-negative, skewed)
        pre = preprocess_emg(sig, PreprocessConfig(), bin_size=None, preprocessed=preprocessed)
        assert pre.bin_size == pytest.approx(bin_ms / 1e3, rel=1e-9)
        assert [s.shape[0] for s in pre.segments] == c.lengths.tolist()  # one segment per cycle, every bin kept
        np.testing.assert_allclose(np.concatenate(pre.bin_times), c.times, rtol=0, atol=1e-12)
        np.testing.assert_allclose(np.concatenate(pre.rectified), c.values)  # not re-binned, not smoothed
        assert f"own {bin_ms:g} ms bins" in " | ".join(pre.steps)
        assert not any("averaged into" in step for step in pre.steps)


def test_already_binned_continuous_emg_at_100_hz_keeps_its_bins():
    rng = np.random.default_rng(1)
    env = Signal(rng.gamma(4.0, 0.25, size=(300, 2)), ["a", "b"], "V", "x", rate=100.0, starting_time=0.5)
    pre = preprocess_emg(env, PreprocessConfig(), bin_size=None)
    assert pre.bin_size == pytest.approx(0.01) and len(pre.segments) == 1
    np.testing.assert_allclose(pre.bin_times[0], env.times())


def test_jittered_timestamps_of_binned_emg_are_kept_and_no_bin_is_empty():
    c, _ = _binned_cycles_signal(n_cycles=3, bin_size=0.004, n_muscles=2, seed=3)
    t = c.times + np.random.default_rng(0).uniform(-4e-4, 4e-4, c.times.size)  # +-10% jitter
    pre = preprocess_emg(Signal(c.values, c.names, "V", "x", timestamps=t), PreprocessConfig(), bin_size=None,
                         preprocessed=True)
    np.testing.assert_array_equal(np.concatenate(pre.bin_times), t)
    assert all(np.all(np.isfinite(s)) for s in pre.segments)


def test_a_set_bin_size_re_bins_already_binned_emg(caplog):
    c, sig = _binned_cycles_signal(n_cycles=4, cycle_duration=0.4, bin_size=0.004, n_muscles=2, seed=4)
    pre = preprocess_emg(sig, PreprocessConfig(), bin_size=0.008, preprocessed=True)
    assert pre.bin_size == pytest.approx(0.008)
    first = c.values[:2].mean(0)
    np.testing.assert_allclose(pre.rectified[0][0], first)  # two 4 ms samples per 8 ms bin
    # labelled at the mean time of its two samples (they cover c.times[0] - 2 ms to + 6 ms)
    assert pre.bin_times[0][0] == pytest.approx(c.times[0] + 0.002)
    assert "averaged into 8 ms bins" in " | ".join(pre.steps)
    with caplog.at_level(logging.WARNING):
        preprocess_emg(sig, PreprocessConfig(), bin_size=0.01, preprocessed=True)
    assert "not a multiple" in caplog.text
    same = preprocess_emg(sig, PreprocessConfig(), bin_size=0.004, preprocessed=True)  # as evaluate re-runs it
    np.testing.assert_allclose(np.concatenate(same.bin_times), c.times, rtol=0, atol=1e-12)


def test_default_bin_for_signals_that_are_not_already_binned():
    rng = np.random.default_rng(5)
    env = Signal(rng.gamma(4.0, 0.25, size=(3000, 2)), ["a", "b"], "V", "x", rate=1000.0)
    assert preprocess_emg(env, PreprocessConfig(), bin_size=None).bin_size == pytest.approx(0.01)  # an envelope
    raw = Signal(rng.normal(size=(1000, 2)), ["a", "b"], "V", "x", rate=250.0)  # implausible as raw, not a crash
    pre = preprocess_emg(raw, PreprocessConfig(), bin_size=None, preprocessed=False)
    assert pre.bin_size == pytest.approx(0.01) and pre.was_raw


def test_raw_emg_at_a_rate_that_cannot_hold_emg_is_refused():
    """A 30 kHz recording whose timestamps are in ms reads as 30 Hz raw EMG: refused, not modelled
    (it was: exit 0, every time 1000x off)."""
    rng = np.random.default_rng(6)
    t_ms = np.arange(12000) / 30.0  # 0.4 s at 30 kHz, stamped in milliseconds
    raw = Signal(rng.normal(size=(12000, 2)) * 1e-4, ["a", "b"], "V", "acquisition/EMG", timestamps=t_ms)
    with pytest.raises(SignalError, match=r"acquisition/EMG: raw EMG .* sampled at 30 Hz .*milliseconds.*30000 Hz"):
        preprocess_emg(raw, PreprocessConfig(), bin_size=None)
    env = Signal(np.abs(raw.values), ["a", "b"], "V", "acquisition/EMG", timestamps=t_ms)
    assert preprocess_emg(env, PreprocessConfig(), bin_size=None, preprocessed=True).was_raw is False


def test_gaps_make_separate_segments():
    sig = _raw_signal(seconds=4.0)
    t = sig.times()
    keep = (t < 1.5) | (t >= 2.0)
    gapped = Signal(sig.values[keep], sig.channel_names, "V", "x", timestamps=t[keep])
    pre = preprocess_emg(gapped, PreprocessConfig(), bin_size=0.01)
    assert len(pre.segments) == 2
    assert [s.shape[0] for s in pre.segments] == [150, 200]
    assert pre.bin_times[1][0] == pytest.approx(2.0045)  # the mean time of its 10 samples resampled to 1 kHz
    assert "segments" in pre.steps[0]


def test_flat_channel_warns_and_stays_finite(caplog):
    sig = _raw_signal()
    values = sig.values.copy()
    values[:, 1] = 0.0
    flat = Signal(values, sig.channel_names, "V", "x", rate=FS)
    with caplog.at_level(logging.WARNING):
        pre = preprocess_emg(flat, PreprocessConfig(), bin_size=0.01)
    assert "m1" in caplog.text and "flat" in caplog.text
    assert np.all(np.isfinite(pre.segments[0]))


def test_nan_samples_split_the_data_and_all_nan_is_a_clear_error():
    sig = _raw_signal()
    values = sig.values.copy()
    n = values.shape[0]
    values[n // 2:n // 2 + 50, 0] = np.nan  # a stretch lost on one channel
    out = preprocess_emg(Signal(values, sig.channel_names, "V", "x", rate=FS), PreprocessConfig(), 0.01)
    assert len(out.segments) == 2 and any("NaN/inf" in s for s in out.steps)
    assert all(np.all(np.isfinite(s)) for s in out.segments)
    gap_start, gap_end = out.bin_times[0][-1], out.bin_times[1][0]
    assert gap_start < (n // 2) / FS and gap_end > (n // 2 + 50) / FS  # no bin covers the lost samples
    dead = sig.values.copy()
    dead[:, 1] = np.nan  # a channel with nothing finite is flat, the rest is intact
    out = preprocess_emg(Signal(dead, sig.channel_names, "V", "x", rate=FS), PreprocessConfig(), 0.01)
    assert len(out.segments) == 1 and np.all(out.segments[0][:, 1] == PreprocessConfig().floor)
    with pytest.raises(SignalError, match="every sample is NaN"):
        preprocess_emg(Signal(np.full_like(dead, np.nan), sig.channel_names, "V", "x", rate=FS), PreprocessConfig(),
                       0.01)


class _CountingRows:
    """A dataset stand-in that records how many rows each read asks for."""

    def __init__(self, array):
        self.array, self.shape, self.reads = array, array.shape, []

    def __getitem__(self, key):
        self.reads.append(key.stop - key.start)
        return self.array[key]


def _awkward_signal():
    """Raw EMG with a gap in time, a NaN stretch and a dead channel."""
    sig = _raw_signal(seconds=30.0, n=4, seed=3)
    values = sig.values.copy()
    values[31000:31020, 1] = np.nan
    values[:, 3] = np.nan
    t = np.arange(values.shape[0]) / FS
    keep = np.ones(t.size, bool)
    keep[10000:12500] = False
    return Signal(values[keep], sig.channel_names, "V", "x", timestamps=t[keep])


@pytest.mark.parametrize("cfg", [PreprocessConfig(), PreprocessConfig(resample_hz=None),
                                 PreprocessConfig(line_frequency=50.0, resample_hz=900.0)],
                         ids=["default", "no-resampling", "50Hz-900Hz"])
def test_chunked_preprocessing_equals_the_whole_segment_path(cfg):
    sig = _awkward_signal()
    whole = preprocess_emg(sig, cfg, 0.01, chunk_samples=0)
    assert len(whole.segments) == 3  # the gap and the NaN stretch split the recording
    for chunk in (3001, 8000):
        part = preprocess_emg(sig, cfg, 0.01, chunk_samples=chunk)
        assert part.steps == whole.steps
        np.testing.assert_allclose(part.scales, whole.scales, rtol=1e-9)
        for a, b, ta, tb in zip(part.rectified, whole.rectified, part.bin_times, whole.bin_times):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-15)
            np.testing.assert_allclose(ta, tb, rtol=0, atol=1e-12)


def test_samples_are_read_chunk_by_chunk():
    sig = _raw_signal(seconds=60.0, n=3, seed=1)
    rows = _CountingRows(sig.values)
    lazy = Signal(SeriesValues([rows]), sig.channel_names, "V", "x", rate=FS)
    part = preprocess_emg(lazy, PreprocessConfig(), 0.01, chunk_samples=10000)
    # never the whole recording at once: chunks with their overlaps, and 2**16 samples to tell raw from rectified
    assert max(rows.reads) <= 2**16 < sig.n_samples
    assert sorted(rows.reads)[-2] < 30000  # 10000 plus ~4.5 s of overlap each side for the 60 Hz notch to settle
    whole = preprocess_emg(sig, PreprocessConfig(), 0.01, chunk_samples=0)
    np.testing.assert_allclose(part.rectified[0], whole.rectified[0], rtol=1e-9)


def test_series_values_apply_conversion_offset_and_channel_conversion():
    raw = np.arange(12, dtype=np.int16).reshape(6, 2)
    v = SeriesValues([raw], conversion=0.5, channel_conversion=np.array([1.0, 10.0]), offset=1.0)
    expect = raw * 0.5 * np.array([1.0, 10.0]) + 1.0
    assert v.shape == (6, 2) and v.ndim == 2
    np.testing.assert_allclose(v[1:4], expect[1:4])
    np.testing.assert_allclose(np.asarray(v), expect)
    np.testing.assert_allclose(v[:, 1], expect[:, 1])
    cols = SeriesValues([raw[:, 0], raw[:, 1]], conversion=2.0)
    np.testing.assert_allclose(cols[2:5], raw[2:5] * 2.0)


def test_the_callers_values_are_not_changed():
    sig = _awkward_signal()
    before = sig.values.copy()
    preprocess_emg(sig, PreprocessConfig(), 0.01, chunk_samples=0)
    np.testing.assert_array_equal(sig.values, before)


def test_shared_artefact_bins_are_found_and_interpolated():
    from nwb_autolfads.data.artefacts import reject_shared_artefacts, shared_artefact_bins

    rng = np.random.default_rng(0)
    b = rng.gamma(4.0, 0.25, size=(400, 6))
    b[100, :5] += 20.0  # shared by 5 of 6 channels: an artefact
    b[250, 0] += 20.0  # one channel only: activity, kept
    b[0, :] += 20.0  # at the edge of the segment
    level = np.quantile(b, 0.99, axis=0)
    bad = shared_artefact_bins(b, level, 0.5)
    assert np.flatnonzero(bad).tolist() == [0, 1, 99, 100, 101]
    steps: list[str] = []
    original = b.copy()
    (clean,) = reject_shared_artefacts([b], 0.5, 0.99, steps)
    assert np.array_equal(b, original)  # the input is not modified
    assert np.array_equal(clean[~bad], b[~bad]) and clean[250, 0] == b[250, 0]
    np.testing.assert_allclose(clean[100], (b[98] + b[102]) / 2)  # a straight line across 99..101
    np.testing.assert_allclose(clean[0], b[2])  # before the first clean bin: its value
    assert "5 bins" in steps[0] and "shared-artefact rejection" in steps[0]


def test_artefact_rejection_in_preprocessing_leaves_clean_emg_alone():
    from nwb_autolfads.config import PreprocessConfig
    from nwb_autolfads.data.signals import Signal
    from nwb_autolfads.testing import synthetic_emg

    for artefacts, expect_some in ((0.0, False), (0.5, True)):
        s = synthetic_emg(duration=20.0, seed=1, artefacts=artefacts)
        sig = Signal(values=s.raw, channel_names=s.names, unit="V", source_path="EMG", rate=s.rate)
        off = preprocess_emg(sig, PreprocessConfig(), 0.01)
        on = preprocess_emg(sig, PreprocessConfig(artefact_fraction=0.5), 0.01)
        changed = ~np.isclose(on.rectified[0], off.rectified[0]).all(axis=1)
        assert changed.any() == expect_some
        if expect_some:  # the flagged bins held the artefacts: far above the clean bins
            assert off.rectified[0][changed].mean() > 3 * off.rectified[0][~changed].mean()
            assert changed.mean() < 0.03
        assert any(step.startswith("shared-artefact rejection") for step in on.steps)
        assert not any("artefact" in step for step in off.steps)


def test_artefact_settings_are_checked():
    from nwb_autolfads.config import PreprocessConfig
    from nwb_autolfads.errors import ConfigError

    with pytest.raises(ConfigError, match="preprocess.artefact_fraction"):
        PreprocessConfig(artefact_fraction=1.5)
    with pytest.raises(ConfigError, match="preprocess.artefact_quantile"):
        PreprocessConfig(artefact_quantile=0.2)


# ----------------------------------------------------------------------------- line hum
def _hum_emg(seconds=20.0, n=4, rate=FS, **hum):
    """Synthetic EMG (with its true activations) and hum as asked (none by default)."""
    from nwb_autolfads.testing import synthetic_emg

    s = synthetic_emg(duration=seconds, rate=rate, n_muscles=n, seed=0, **{"line_noise": 0.0, **hum})
    return s, Signal(s.raw, s.names, "V", "acquisition/EMG", rate=s.rate)


def _envelope_correlation(s, pre):
    from nwb_autolfads.evaluation.comparison import bin_mean

    truth = bin_mean(s.times, s.activations, pre.bin_times[0], pre.bin_size)
    return float(np.mean([np.corrcoef(pre.segments[0][:, c], truth[:, c])[0, 1] for c in range(truth.shape[1])]))


EUROPEAN = {"line_noise": 5.0, "line_frequency": 50.0, "line_harmonics": (2.5, 5.0 / 3)}


def test_european_mains_hum_is_found_notched_and_reported(caplog):
    # 20 s of 4 muscles with strong 50/100/150 Hz hum: a 60 Hz notch left the binned input at r = 0.53
    # with the true envelope; the hum found and notched gives 0.89 (as without any hum)
    s, sig = _hum_emg(**EUROPEAN)
    pre = preprocess_emg(sig, PreprocessConfig(), 0.01)
    hum = pre.line_hum
    assert hum["setting"] == "auto" and hum["frequency"] == 50.0 and hum["nominal"] == 50.0
    assert hum["harmonics"] == [1, 2, 3] and hum["notched_hz"] == [50.0, 100.0, 150.0]
    assert pre.resolved == {"line_frequency": 50.0, "notch_harmonics": [1, 2, 3]}
    step = next(st for st in pre.steps if "line hum" in st)
    assert step.startswith("line hum found at 50 Hz with harmonics 100, 150 Hz") and "notch filters" in step
    assert _envelope_correlation(s, pre) > 0.85
    # an explicit setting is honoured, and hum it leaves standing is said
    with caplog.at_level(logging.WARNING):
        wrong = preprocess_emg(sig, PreprocessConfig(line_frequency=60.0), 0.01)
    assert wrong.line_hum["notched_hz"] == [60.0, 120.0, 180.0] and wrong.resolved == {}
    assert "50, 100, 150 Hz not removed by the configured notches at 60, 120, 180 Hz" in caplog.text
    assert any("not removed" in st for st in wrong.steps)
    assert _envelope_correlation(s, wrong) < 0.6
    right = preprocess_emg(sig, PreprocessConfig(line_frequency=50.0, notch_harmonics=(1, 2, 3)), 0.01)
    np.testing.assert_array_equal(right.rectified[0], pre.rectified[0])  # what the resolved settings repeat


@pytest.mark.parametrize("freq, harmonics, expect", [(60.0, (1.0,), [1, 2]), (50.3, (2.0, 1.0), [1, 2, 3]),
                                                     (59.9, (), [1]), (49.8, (0.0, 2.0, 0.0, 1.0), [1, 3, 5])],
                         ids=["60Hz", "50.3Hz", "59.9Hz", "49.8Hz-odd"])
def test_line_hum_is_measured_where_it_is(freq, harmonics, expect):
    s, sig = _hum_emg(seconds=8.0, line_noise=3.0, line_frequency=freq, line_harmonics=harmonics)
    pre = preprocess_emg(sig, PreprocessConfig(), 0.01)
    assert pre.line_hum["nominal"] == (50.0 if freq < 55 else 60.0)
    assert pre.line_hum["frequency"] == pytest.approx(freq, abs=0.02)  # off-nominal mains: notched where it is
    assert pre.line_hum["harmonics"] == expect
    assert pre.line_hum["notched_hz"] == pytest.approx([k * freq for k in expect], abs=0.02 * max(expect))
    assert _envelope_correlation(s, pre) > 0.85


def test_no_hum_no_notch():
    s, sig = _hum_emg(seconds=8.0)
    pre = preprocess_emg(sig, PreprocessConfig(), 0.01)
    assert pre.line_hum["frequency"] is None and pre.line_hum["notched_hz"] == []
    assert pre.resolved == {"line_frequency": None}
    assert max(pre.line_hum["candidates_peak_to_floor"].values()) < 10
    assert any(st.startswith("no line hum found at 50 or 60 Hz") and st.endswith("no notch") for st in pre.steps)
    assert not any("notch filters" in st for st in pre.steps)


def test_no_false_hum_in_short_bursty_emg():
    from nwb_autolfads.data.scan import detect_line_hum
    from nwb_autolfads.testing import synthetic_emg

    for seed in range(4):
        for rate in (1000.0, 4000.0):
            s = synthetic_emg(duration=2.0, rate=rate, n_muscles=12, seed=seed, line_noise=0.0)
            hum = detect_line_hum([s.raw], rate, s.names)
            assert not hum.found and not hum.reason and max(hum.candidates.values()) < 10


def test_hum_on_some_channels_is_found_and_named():
    s, sig = _hum_emg(seconds=8.0, line_noise=3.0, line_frequency=50.0, line_channels=(1,))
    pre = preprocess_emg(sig, PreprocessConfig(), 0.01)
    assert pre.line_hum["frequency"] == 50.0 and pre.line_hum["channels"] == ["MG"]
    assert "on channel(s) MG of 4" in next(st for st in pre.steps if "line hum" in st)


def test_line_frequency_off_notches_nothing_but_says_so(caplog):
    s, sig = _hum_emg(seconds=8.0, **EUROPEAN)
    with caplog.at_level(logging.WARNING):
        pre = preprocess_emg(sig, PreprocessConfig(line_frequency=None), 0.01)
    assert pre.line_hum["setting"] == "off" and pre.line_hum["notched_hz"] == [] and pre.resolved == {}
    assert "left in (preprocess.line_frequency is off)" in caplog.text
    assert not any("notch filters" in st for st in pre.steps)


def test_line_hum_is_not_looked_for_in_rectified_emg():
    s, sig = _hum_emg(seconds=4.0, line_noise=0.5, line_frequency=50.0, line_harmonics=(0.3,))
    for preprocessed in (None, True):  # detected as rectified, or said to be
        pre = preprocess_emg(Signal(np.abs(s.raw), s.names, "V", "x", rate=s.rate), PreprocessConfig(), 0.01,
                             preprocessed)
        assert not pre.was_raw and pre.line_hum == {} and pre.resolved == {}
        assert not any("line hum" in st or "notch" in st for st in pre.steps)


def test_line_hum_that_cannot_be_checked_is_said(caplog):
    from nwb_autolfads.data.scan import detect_line_hum

    slow = detect_line_hum([np.random.default_rng(0).normal(size=(2000, 2))], 100.0)
    assert not slow.found and "too slowly" in slow.reason
    s, sig = _hum_emg(seconds=0.6, **EUROPEAN)
    with caplog.at_level(logging.WARNING):
        pre = preprocess_emg(sig, PreprocessConfig(), 0.01)
    assert "too short" in pre.line_hum["not_checked"] and pre.line_hum["notched_hz"] == []
    assert "line hum not checked" in caplog.text and "set preprocess.line_frequency to 50 or 60" in caplog.text


def test_line_hum_detection_reads_a_bounded_excerpt():
    sig = _raw_signal(seconds=120.0, n=2, seed=2)
    rows = _CountingRows(sig.values)
    lazy = Signal(SeriesValues([rows]), sig.channel_names, "V", "x", rate=FS)
    from nwb_autolfads.data.scan import hum_excerpt

    excerpts = hum_excerpt(lazy.values, [slice(0, 100000), slice(100000, sig.n_samples)], np.zeros(2, bool), FS)
    assert len(excerpts) == 4 and sum(p.shape[0] for p in excerpts) <= 32 * FS and max(rows.reads) <= 2**16
    pre = preprocess_emg(lazy, PreprocessConfig(), 0.01, chunk_samples=20000)
    assert pre.line_hum["frequency"] == 60.0 and pre.line_hum["seconds"] <= 32


def test_chunked_and_whole_paths_agree_on_found_hum():
    s, sig = _hum_emg(seconds=12.0, line_noise=3.0, line_frequency=50.3, line_harmonics=(1.0, 1.0))
    t = sig.times()
    keep = (t < 4.0) | (t >= 4.5)
    gapped = Signal(sig.values[keep], sig.channel_names, "V", "x", timestamps=t[keep])
    whole = preprocess_emg(gapped, PreprocessConfig(), 0.01, chunk_samples=0)
    part = preprocess_emg(gapped, PreprocessConfig(), 0.01, chunk_samples=3001)
    assert whole.line_hum == part.line_hum and whole.steps == part.steps and len(whole.segments) == 2
    assert whole.line_hum["harmonics"] == [1, 2, 3]
    for a, b in zip(part.rectified, whole.rectified):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-15)


def _burst_signal(t0, seconds=10.0, fs=2000.0, float32=True, burst=(8.0, 8.3), seed=0):
    """Raw EMG, 10x louder during ``burst`` (seconds after ``t0``), with timestamps rounded to
    float32 as some acquisition software writes them late in a session."""
    rng = np.random.default_rng(seed)
    true = t0 + np.arange(int(seconds * fs)) / fs
    loud = (true >= t0 + burst[0]) & (true < t0 + burst[1])
    x = rng.normal(size=(true.size, 2)) * np.where(loud, 10.0, 1.0)[:, None]
    stamps = true.astype(np.float32).astype(np.float64) if float32 else true
    return Signal(x, ["a", "b"], "V", "acquisition/EMG", timestamps=stamps)


@pytest.mark.parametrize("t0", [1500.0, 5000.0, 20000.0])
def test_float32_timestamps_give_bins_at_their_true_times(t0, caplog):
    sig = _burst_signal(t0)
    with caplog.at_level(logging.WARNING):
        pre = preprocess_emg(sig, PreprocessConfig(), bin_size=0.01)
    assert len(pre.segments) == 1  # at 5000 s quantisation steps were taken for gaps ("too short")
    centres = pre.bin_times[0]
    assert abs(centres.size - 1000) <= 1  # was 976 bins ending 0.24 s early at 1500 s
    assert abs(centres[-1] + 0.005 - (t0 + 10.0)) <= 0.005  # the last bin ends within half a bin of the true end
    assert abs(centres[0] - 0.005 - t0) <= 0.005
    loud = centres[pre.rectified[0].mean(axis=1) > 4.0]  # the burst (10x) at t0 + 8.0 - 8.3 s
    assert loud[0] - 0.005 == pytest.approx(t0 + 8.0, abs=0.011) and loud[-1] + 0.005 == pytest.approx(t0 + 8.3, abs=0.011)
    notes = [r.getMessage() for r in caplog.records if "float32" in r.getMessage()]
    assert len(notes) == 1 and "resolution" in notes[0]  # one warning, naming the cause
    assert any("float32" in s for s in pre.steps)


def test_float64_timestamps_and_rate_give_the_same_bins():
    a = preprocess_emg(_burst_signal(1500.0, float32=False), PreprocessConfig(), bin_size=0.01)
    sig = _burst_signal(1500.0, float32=False)
    b = preprocess_emg(Signal(sig.values, sig.channel_names, "V", "x", rate=2000.0, starting_time=1500.0),
                       PreprocessConfig(), bin_size=0.01)
    assert a.bin_times[0].size == b.bin_times[0].size == 1000
    np.testing.assert_allclose(a.bin_times[0], b.bin_times[0], atol=1e-9)
    np.testing.assert_allclose(a.rectified[0], b.rectified[0], rtol=1e-6)


def test_hour_long_drifting_float32_clock_keeps_bins_at_their_true_times():
    """An hour of 200 Hz envelope whose clock runs 50 ppm fast, stamped in float32 from t = 3000 s:
    bin times come from the timestamps, so they do not drift by the 0.18 s that start + k / rate would."""
    fs_true = 200.0 * (1 + 50e-6)
    n = int(3600 * 200)
    true = 3000.0 + np.arange(n) / fs_true
    env = np.ones((n, 1))
    env[(true >= 6500.0) & (true < 6500.5)] = 10.0  # a marker near the end
    sig = Signal(env, ["a"], "V", "x", timestamps=true.astype(np.float32).astype(np.float64))
    pre = preprocess_emg(sig, PreprocessConfig(resample_hz=None, clip_quantile=None), 0.01, preprocessed=True)
    centres = pre.bin_times[0]
    assert len(pre.segments) == 1 and abs(centres[-1] + 0.005 - (true[-1] + 1 / fs_true)) <= 0.005
    x = pre.rectified[0][:, 0] - 1.0
    marked = true[env[:, 0] > 5.0]  # its samples cover [6500, 6500.5) - p/2 (docs/science.md, Bin times)
    assert np.sum(centres * x) / np.sum(x) == pytest.approx(marked.mean(), abs=0.001)
    hot = centres[x > 4.0]  # bins at least half in the marker (the clock drifts: bins split sample pairs)
    half = 0.5 / fs_true
    assert hot[0] - 0.005 == pytest.approx(6500.0 - half, abs=0.0101)
    assert hot[-1] + 0.005 == pytest.approx(6500.5 - half, abs=0.0101)


def test_timestamps_in_milliseconds_are_refused_naming_the_unit():
    sig = _burst_signal(0.0, seconds=2.0, float32=False)
    ms = Signal(sig.values, sig.channel_names, "V", "acquisition/EMG", timestamps=sig.timestamps * 1000.0)
    with pytest.raises(SignalError, match="milliseconds"):
        preprocess_emg(ms, PreprocessConfig(), bin_size=0.01)


def test_implausible_rate_and_volts_are_warned_about(caplog):
    rng = np.random.default_rng(0)
    slow = Signal(rng.normal(size=(2000, 2)) * 1e3, ["a", "b"], "volts", "acquisition/EMG", rate=200.0)
    with caplog.at_level(logging.WARNING):
        preprocess_emg(slow, PreprocessConfig(), bin_size=0.01, preprocessed=False)
    text = " ".join(r.getMessage() for r in caplog.records)
    assert "raw EMG sampled at 200 Hz" in text and "probably ADC counts, uV or mV" in text


@pytest.mark.parametrize("unit, scale, says", [
    ("uV", 1e-4, "below any amplifier's noise"),  # volts under a uV label: 1e-4 "uV" = 0.1 pV
    ("nV", 1e-4, "below any amplifier's noise"),
    ("mV", 1e-4, "below any amplifier's noise"),  # 0.1 uV
    ("volts", 3e4, "probably ADC counts, uV or mV"),  # ADC counts, no conversion
    ("kV", 1.0, "probably ADC counts, uV or mV"),
    ("uV", 300.0, None), ("mV", 1.0, None), ("volts", 1e-3, None), ("a.u.", 1e-9, None),
])
def test_volts_under_another_units_label_are_warned_about(unit, scale, says, caplog):
    """A tester's files: EMG in volts (~1e-4) labelled uV or mV was modelled without a word."""
    rng = np.random.default_rng(0)
    sig = Signal(rng.normal(size=(4000, 2)) * scale, ["a", "b"], unit, "acquisition/EMG", rate=2000.0)
    with caplog.at_level(logging.WARNING):
        preprocess_emg(sig, PreprocessConfig(), None)
    found = [r.getMessage() for r in caplog.records if "median over channels" in r.getMessage()]
    assert (found == []) if says is None else (len(found) == 1 and says in found[0] and repr(unit) in found[0])


def test_one_channel_in_volts_under_a_uv_label_is_named(caplog):
    """A tester's file: one muscle of a per-muscle container held volts under a uV label (its input
    1e6 too small); the median over channels hid it."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 3)) * 300.0  # uV
    x[:, 2] *= 1e-6  # volts, labelled uV
    with caplog.at_level(logging.WARNING):
        preprocess_emg(Signal(x, ["TA", "MG", "SOL"], "uV", "acquisition/EMG", rate=2000.0), PreprocessConfig(), None)
    found = [r.getMessage() for r in caplog.records if "median over channels" in r.getMessage()]
    assert len(found) == 1 and "channel(s) SOL (" in found[0] and "TA" not in found[0].split("channel(s)")[1]


def test_preprocessing_a_long_recording_from_its_file_holds_a_fraction_of_one_full_rate_copy(tmp_path, capsys):
    import tracemalloc

    from nwb_autolfads.io.reading import open_nwb
    from nwb_autolfads.io.series import read_emg
    from nwb_autolfads.testing import chunked_emg_nwb

    path = chunked_emg_nwb(tmp_path / "long.nwb", duration=300.0, n_muscles=8, block_seconds=20.0)
    with open_nwb(path) as (_io, nwb):
        sig = read_emg(nwb, lazy=True)
        copy = sig.n_samples * sig.n_channels * 8  # one float64 copy of the samples: 38 MB
        peaks = {}
        for chunk in (20000, 0):
            tracemalloc.start()
            try:
                pre = preprocess_emg(sig, PreprocessConfig(), 0.01, chunk_samples=chunk, progress=chunk > 0)
                peaks[chunk] = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            assert pre.segments[0].shape == (30000, 8)
    assert peaks[20000] < 0.5 * copy  # measured 0.36 copies
    assert peaks[0] > 2 * copy  # the whole-array path holds several (what the chunks avoid)
    assert "reading EMG twice (scan + filter)" in capsys.readouterr().err  # the progress bar, on stderr


def test_scan_finds_runs_of_one_value_whatever_the_chunks():
    from nwb_autolfads.data.scan import scan_samples

    x = np.random.default_rng(0).normal(size=(10000, 3))
    x[100:700, 1] = 0.0  # one channel off
    x[2000:2600] = 5.0  # every channel at once
    x[9500:, 2] = 1.0  # open at the end
    x[3000:3400, 0] = 0.0  # too short
    want = [[0, 2000, 2600], [1, 100, 700], [1, 2000, 2600], [2, 2000, 2600], [2, 9500, 10000]]
    for chunk in (7, 256, 599, 100000):
        assert sorted(scan_samples(x, chunk, min_flat=500).flat.tolist()) == want
    assert scan_samples(x, 256).flat.size == 0  # not asked


@pytest.mark.parametrize("chunk", [97, 1000, 20000])
def test_a_channel_clipped_at_both_rails_is_saturated(chunk, caplog):
    """A tester's file: an int16 channel clipped at -32768 and +32767, 0.9% of samples at each, was
    not called saturated (only the samples at the largest magnitude were counted)."""
    from nwb_autolfads.data.artefacts import warn_saturated
    from nwb_autolfads.data.scan import scan_samples

    rng = np.random.default_rng(0)
    x = rng.normal(size=(20000, 3)) * 8000.0
    rails = np.quantile(x[:, 0], [0.009, 0.991])
    x[:, 0] = np.clip(np.round(x[:, 0]), rails[0], rails[1])  # 0.9% at each rail
    x[:, 1] = np.abs(x[:, 1])  # rectified: its smallest values (near 0) are not a rail
    x[:, 2] = np.maximum(x[:, 2], 0.0)  # half the samples at 0 (floored): not a rail either
    scan = scan_samples(x, chunk)
    assert scan.at_peak[0] == np.sum((x[:, 0] == rails[0]) | (x[:, 0] == rails[1])) > 0.017 * len(x)
    assert scan.at_peak[1] == 1 and scan.at_peak[2] == 1
    np.testing.assert_allclose(scan.peak, np.abs(x).max(axis=0))
    sig = Signal(x, ["TA", "MG", "SOL"], "V", "acquisition/EMG", rate=2000.0)
    with caplog.at_level("WARNING"):
        warn_saturated(sig, scan, raw=False)  # rectified: only a rail below zero counts besides the top
    assert "channel(s) TA look saturated" in caplog.text
    # an unsigned ADC (all positive): clipped 0.6% at 0 and 0.6% at 65535; raw, so both rails count
    counts = np.clip(np.round(x[:, :1] / 8000.0 * 20000.0 + 32768.0), 0, 65535)
    counts = np.clip(counts, *np.quantile(counts, [0.006, 0.994]))
    caplog.clear()
    with caplog.at_level("WARNING"):
        warn_saturated(Signal(counts, ["TA"], "V", "acquisition/EMG", rate=2000.0), scan_samples(counts, chunk), raw=True)
    assert "channel(s) TA look saturated" in caplog.text


def test_a_rail_with_glitches_beyond_it_is_still_saturated(caplog):
    """A break-it tester's file: raw EMG clipped at +-5 mV in 3% of samples, with one glitch sample
    beyond each rail (a spike the amplifier passed), was not called saturated: only the samples at
    the very extreme were counted. The excerpts' values near the extremes are looked at for a
    pile-up; a steep tail, coarse rounding and rectified EMG's quiet floor are not rails."""
    from nwb_autolfads.data.artefacts import pile_up_rails
    from nwb_autolfads.testing import synthetic_emg

    raw = synthetic_emg(duration=10.0, rate=2000.0, n_muscles=3, seed=9).raw
    raw = raw - raw.mean(0)
    rail = np.quantile(np.abs(raw[:, 0]), 0.97)
    clipped = raw.copy()
    clipped[:, 0] = np.clip(raw[:, 0], -rail, rail)
    clipped[[1000, 9000, 15000], 0] = [3 * rail, -2.5 * rail, 1.7 * rail]  # glitches beyond the rails
    rounded = np.round(raw / raw.std(0) * 2.0)  # a few ADC counts wide: ties, but no pile-up
    fractions = pile_up_rails([clipped], raw=True)
    assert fractions[0] == pytest.approx(np.mean(np.abs(clipped[:, 0]) == rail), abs=1e-9) and fractions[0] > 0.02
    assert fractions[1] == fractions[2] == 0.0
    assert not pile_up_rails([rounded], raw=True).any() and not pile_up_rails([np.abs(raw)], raw=False).any()
    sig = Signal(clipped, ["TA", "MG", "SOL"], "V", "acquisition/EMG", rate=2000.0)
    with caplog.at_level("WARNING"):
        preprocess_emg(sig, PreprocessConfig(), bin_size=0.01)
    assert "channel(s) TA look saturated" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        preprocess_emg(Signal(rounded, ["TA", "MG", "SOL"], "V", "acquisition/EMG", rate=2000.0), PreprocessConfig(),
                       bin_size=0.01, preprocessed=False)
    assert "saturated" not in caplog.text


@pytest.mark.parametrize("fs", [500.0, 2000.0])
def test_raw_or_envelope_over_the_kinds_testers_files_held(fs):
    """benchmarks/raw_or_envelope.py's kinds (raw EMG, flat-band and with surface-EMG spectra, with
    hum, movement artefacts, ECG, on signed and unsigned ADCs; rectified EMG, Butterworth, RMS and
    box envelopes as they are, minus a low percentile, minus the mean and z-scored), 8 s each.
    Before, 35-41 of the first 87 were told wrong way round silently (an envelope with its mean
    subtracted was rectified again; raw EMG under movement artefacts or ECG on an unsigned ADC was
    taken for an envelope). Now nothing is told wrong: what cannot be told is asked. That includes
    Hilbert and Teager-Kaiser envelopes z-scored and envelopes held from rate / 8 (zero-order
    hold), once taken for raw, and low-frequency raw EMG under strong movement artefacts on an
    unsigned ADC, once taken for an envelope (its fast part's size does not follow its level);
    needle EMG: raw or asked. A series of raw and enveloped channels (3 + 3, 6 + 2) is asked about
    (a tie went to 'envelope')."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[3] / "benchmarks" / "raw_or_envelope.py"
    spec = importlib.util.spec_from_file_location("raw_or_envelope", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    said = {name: (bench.verdict(x, fs), is_raw) for name, x, is_raw in bench.cases(fs, 8.0)}
    wrong = {name for name, (verdict, is_raw) in said.items()
             if (verdict != "asked" and (verdict == "raw") != is_raw) or (is_raw is None and verdict != "asked")}
    assert not wrong, wrong
    assert sum(v == "asked" for v, is_raw in said.values() if is_raw is not None) <= 28
    assert all(said[name][0] == "asked" for name in ("raw + movement 5-20 Hz x10 (uADC)",
                                                      "surface EMG f_l 40 f_h 40 Hz + movement x3 (uADC)"))
    assert all(said[name][0] != "raw" for name in said if name.startswith(("Hilbert", "Teager", "10 Hz envelope held")))
    assert said["10 Hz envelope held 8 samples z-scored"][0] == "envelope"
    assert said["rectified + offset"][0] == "envelope"
    assert said["raw clean"][0] == "raw" and said["surface EMG f_l 60 f_h 120 Hz + movement x3"][0] == "raw"
    assert all(said[f"butter {hz} Hz order {o} z-scored"][0] == "envelope" for hz in (20, 30, 50) for o in (2, 4))
