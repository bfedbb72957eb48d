"""EMG preprocessing (science.md section 2).

raw EMG -> notch (line frequency + harmonics, zero-phase) -> 4th-order Butterworth high-pass
(zero-phase) -> full-wave rectification -> anti-aliased polyphase resampling -> binning to the
model bin -> per-channel clipping at a high quantile -> per-channel scaling by the 95th
percentile -> a small positive floor.

The rectified signal is *not* low-pass smoothed: smoothing is what the model replaces. For EMG
that is already rectified/enveloped/binned the first three steps are skipped. Every step that
was applied is listed in :attr:`Preprocessed.steps`, and the per-channel scales are kept so
that model outputs can be reported in the source's units.

Each segment (a stretch of samples without a gap in the timestamps) is filtered on its own, so
no filter ever runs across a gap.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
from scipy import signal as sps

from .config import PreprocessConfig
from .errors import SignalError
from .signals import Signal, split_segments

__all__ = ["Preprocessed", "preprocess_emg", "notch_filter", "highpass_filter", "resample",
           "bin_average", "looks_rectified"]

log = logging.getLogger(__name__)


@dataclass
class Preprocessed:
    """Model-ready EMG: binned, clipped and scaled segments with their bin times."""

    segments: list[np.ndarray]
    """Per segment, (n_bins, n_channels) float32 in scaled units (q95 = 1)."""
    bin_times: list[np.ndarray]
    """Per segment, the centre time of each bin in the source's clock (seconds)."""
    bin_size: float
    scales: np.ndarray
    """(n_channels,) divide physical values by this to get model units; multiply to go back."""
    clip_levels: np.ndarray
    """(n_channels,) clipping level in physical units (inf if not clipped)."""
    rectified: list[np.ndarray]
    """Per segment, binned rectified EMG in physical units before clipping/scaling (a baseline)."""
    channel_names: list[str]
    steps: list[str] = field(default_factory=list)
    was_raw: bool = True

    @property
    def n_channels(self) -> int:
        return len(self.channel_names)


def looks_rectified(values: np.ndarray, fs: float | None = None) -> bool:
    """Whether EMG looks already rectified / enveloped rather than raw.

    Raw EMG swings both ways around its baseline: values of both signs mean raw. Non-negative
    data can still be raw with a DC offset (e.g. an unsigned ADC): that is recognised by a
    symmetric distribution around the median (|skewness| < 0.5) with most of its variance above
    20 Hz. Rectified EMG is strongly right-skewed, and envelopes hold their variance at low
    frequencies. The decision is taken per channel on up to 2**16 samples; the majority wins.
    """
    finite = values[np.all(np.isfinite(values), axis=1)][: 2**16]
    if finite.size == 0 or float(finite.min()) < 0.0:
        return False
    votes = []
    for c in range(finite.shape[1]):
        x = finite[:, c] - np.median(finite[:, c])
        sd = x.std()
        if sd == 0:
            continue
        skew = float(np.mean((x - x.mean()) ** 3) / sd**3)
        high = 0.0
        if fs is not None and fs > 80.0 and x.size >= 64:
            power = np.abs(np.fft.rfft(x - x.mean())) ** 2
            freqs = np.fft.rfftfreq(x.size, 1.0 / fs)
            high = float(power[freqs > 20.0].sum() / max(power.sum(), 1e-300))
        votes.append(not (abs(skew) < 0.5 and high > 0.5))
    return bool(np.mean(votes) >= 0.5) if votes else True


def notch_filter(x: np.ndarray, fs: float, freq: float, harmonics: int, quality: float) -> tuple[np.ndarray, list[float]]:
    """Zero-phase notch at ``freq`` and its harmonics below Nyquist. Returns (filtered, notched freqs)."""
    done = []
    for k in range(1, harmonics + 1):
        f0 = k * freq
        if f0 >= 0.95 * fs / 2:
            break
        b, a = sps.iirnotch(f0, quality, fs=fs)
        # pad by ~6 time constants (Q / (pi f0)) so the start-up ringing dies out in the padding
        padlen = min(int(6 * quality * fs / (np.pi * f0)), x.shape[0] - 1)
        x = sps.filtfilt(b, a, x, axis=0, padlen=padlen)
        done.append(f0)
    return x, done


def highpass_filter(x: np.ndarray, fs: float, cutoff: float, order: int) -> np.ndarray:
    """Zero-phase Butterworth high-pass."""
    sos = sps.butter(order, cutoff, btype="highpass", fs=fs, output="sos")
    padlen = min(3 * (2 * len(sos) + 1), x.shape[0] - 1)
    return sps.sosfiltfilt(sos, x, axis=0, padlen=padlen)


def resample(x: np.ndarray, fs: float, target: float) -> tuple[np.ndarray, float]:
    """Anti-aliased polyphase resampling to (a rational approximation of) ``target`` Hz.
    Returns (resampled, achieved rate)."""
    ratio = Fraction(target / fs).limit_denominator(1000)
    if ratio == 1:
        return x, fs
    y = sps.resample_poly(x, ratio.numerator, ratio.denominator, axis=0, padtype="line")
    return y, fs * ratio.numerator / ratio.denominator


def bin_average(x: np.ndarray, times: np.ndarray, bin_size: float) -> tuple[np.ndarray, np.ndarray]:
    """Average samples into consecutive bins of ``bin_size`` seconds starting at ``times[0]``.
    Only complete bins are kept. Returns (binned (n_bins, C), bin centre times)."""
    t0 = times[0]
    sample_period = float(np.median(np.diff(times))) if times.size > 1 else bin_size
    # A bin is complete if the samples cover it: the last bin ends at the last sample's end.
    n_bins = int(np.floor((times[-1] + sample_period - t0) / bin_size + 1e-9))
    if n_bins <= 0:
        return np.zeros((0, x.shape[1])), np.zeros(0)
    idx = np.floor((times - t0) / bin_size + 1e-9).astype(np.int64)
    keep = idx < n_bins
    idx, xs = idx[keep], x[keep]
    counts = np.bincount(idx, minlength=n_bins).astype(float)
    sums = np.zeros((n_bins, x.shape[1]))
    _bincount_2d(sums, idx, xs)
    with np.errstate(invalid="ignore", divide="ignore"):
        binned = sums / counts[:, None]
    centres = t0 + (np.arange(n_bins) + 0.5) * bin_size
    return binned, centres


def _bincount_2d(out: np.ndarray, idx: np.ndarray, xs: np.ndarray) -> None:
    for c in range(xs.shape[1]):
        out[:, c] = np.bincount(idx, weights=xs[:, c], minlength=out.shape[0])


def _drop_non_finite(sig: Signal, values: np.ndarray, segments: list[slice],
                     steps: list[str]) -> tuple[np.ndarray, list[slice]]:
    """NaN/inf samples: a channel with nothing finite is set to 0 (a flat channel, modelled at the
    floor); samples where any other channel is not finite are left out, and the stretches between
    them become separate segments (like gaps in time). Warns; fails only if nothing is left."""
    finite = np.isfinite(values)
    if finite.all():
        return values, segments
    dead = ~finite.any(axis=0)
    if dead.all():
        raise SignalError(f"{sig.source_path}: every sample is NaN or inf: choose another series with --emg")
    if dead.any():
        names = [sig.channel_names[i] for i in np.flatnonzero(dead)]
        log.warning("%s: channel(s) %s hold no finite sample; they are modelled as flat", sig.source_path,
                    ", ".join(names))
        values = values.copy()
        values[:, dead] = 0.0
        finite[:, dead] = True
        steps.append(f"channel(s) {', '.join(names)} without finite samples set to 0")
    bad = ~finite.all(axis=1)
    if not bad.any():
        return values, segments
    kept = []
    for seg in segments:
        good = ~bad[seg]
        edges = np.flatnonzero(np.diff(np.r_[0, good.astype(np.int8), 0]))
        kept += [slice(seg.start + a, seg.start + b) for a, b in zip(edges[::2], edges[1::2])]
    n_bad = int(bad.sum())
    log.warning("%s: %d samples (%.2f%%) with NaN/inf are left out; the %d stretches around them are modelled "
                "separately", sig.source_path, n_bad, 100.0 * n_bad / bad.size, len(kept))
    steps.append(f"left out {n_bad} samples with NaN/inf (the stretches between them are separate segments)")
    if not kept:
        raise SignalError(f"{sig.source_path}: no stretch without NaN/inf samples: interpolate or remove them")
    return values, kept


def _warn_saturated(sig: Signal, values: np.ndarray, fraction: float = 0.01) -> None:
    """Warn about channels that sit at their extreme value in more than ``fraction`` of samples
    (amplifier or ADC saturation): their activations are underestimated there."""
    if values.shape[0] < 100:
        return
    peak = np.max(np.abs(values), axis=0)
    at_peak = np.mean(np.abs(values) >= peak[None, :] * (1 - 1e-9), axis=0)
    saturated = [sig.channel_names[i] for i in np.flatnonzero((at_peak > fraction) & (peak > 0))]
    if saturated:
        log.warning("%s: channel(s) %s look saturated (at their extreme value in more than %g%% of samples); "
                    "activations are underestimated where they clip", sig.source_path, ", ".join(saturated),
                    100 * fraction)


def preprocess_emg(sig: Signal, cfg: PreprocessConfig, bin_size: float, preprocessed: bool | None = None,
                   gap_factor: float = 1.5) -> Preprocessed:
    """Turn an EMG :class:`Signal` into model-ready binned, scaled segments."""
    values = sig.values
    times = sig.times()
    fs = sig.sampling_rate()
    segments = split_segments(times, gap_factor) if sig.timestamps is not None else [slice(0, sig.n_samples)]
    steps: list[str] = []
    if len(segments) > 1:
        steps.append(f"split into {len(segments)} segments at gaps in the timestamps (no filter crosses a gap)")
    values, segments = _drop_non_finite(sig, values, segments, steps)
    _warn_saturated(sig, values)

    if preprocessed is None:
        preprocessed = looks_rectified(values, fs)
        steps.append("detected already-rectified/enveloped EMG (non-negative, skewed or slow; override with "
                     "--emg-raw)" if preprocessed else
                     "detected raw EMG (symmetric about its baseline; override with --emg-preprocessed)")
    raw = not preprocessed

    eff_bin = bin_size
    if 1.0 / fs > bin_size * (1 + 1e-6):
        eff_bin = 1.0 / fs
        steps.append(f"data are sampled at {fs:g} Hz, coarser than the {bin_size * 1e3:g} ms bin: each sample "
                     f"is one {eff_bin * 1e3:g} ms bin")

    binned, centres = [], []
    notched: list[float] = []
    rate_after = fs
    for seg in segments:
        x = values[seg]
        t = times[seg]
        if raw:
            if x.shape[0] < 16:
                log.warning("%s: skipping a segment of %d samples (too short to filter)", sig.source_path, x.shape[0])
                continue
            if cfg.line_frequency is not None:
                x, notched = notch_filter(x, fs, cfg.line_frequency, cfg.notch_harmonics, cfg.notch_quality)
            if cfg.highpass_hz is not None and cfg.highpass_hz < 0.95 * fs / 2:
                x = highpass_filter(x, fs, cfg.highpass_hz, cfg.highpass_order)
            x = np.abs(x)
        rate_after = fs
        if cfg.resample_hz is not None and fs > cfg.resample_hz * 1.01 and eff_bin > 1.0 / cfg.resample_hz:
            x, rate_after = resample(x, fs, cfg.resample_hz)
            if raw:
                x = np.abs(x)  # resampling can ring slightly below zero
            else:
                x = np.maximum(x, 0.0)
            t = t[0] + np.arange(x.shape[0]) / rate_after
        if eff_bin == bin_size:
            b, c = bin_average(x, t, eff_bin)
        else:
            b, c = x, t + eff_bin / 2
        if b.shape[0]:
            binned.append(b)
            centres.append(c)
    if not binned:
        raise SignalError(f"{sig.source_path}: no complete {eff_bin * 1e3:g} ms bin could be formed: the recording "
                          "is too short")

    if raw:
        if notched:
            steps.append("notch filters (zero-phase, Q=%g) at %s Hz" % (cfg.notch_quality,
                                                                         ", ".join(f"{f:g}" for f in notched)))
        if cfg.highpass_hz is not None and cfg.highpass_hz < 0.95 * fs / 2:
            steps.append(f"high-pass Butterworth order {cfg.highpass_order} at {cfg.highpass_hz:g} Hz (zero-phase)")
        steps.append("full-wave rectification")
    if rate_after != fs:
        steps.append(f"anti-aliased polyphase resampling {fs:g} Hz -> {rate_after:g} Hz")
    if eff_bin == bin_size:
        steps.append(f"averaged into {bin_size * 1e3:g} ms bins")

    allb = np.concatenate(binned, axis=0)
    n_ch = allb.shape[1]
    if cfg.clip_quantile is not None and cfg.clip_quantile < 1.0:
        clip = np.quantile(allb, cfg.clip_quantile, axis=0)
        steps.append(f"per-channel clipping at the {cfg.clip_quantile:g} quantile")
    else:
        clip = np.full(n_ch, np.inf)
    clipped_all = np.minimum(allb, clip[None, :])
    scales = np.quantile(clipped_all, cfg.scale_quantile, axis=0)
    flat = ~(scales > 0)
    if np.any(flat):
        names = [sig.channel_names[i] for i in np.flatnonzero(flat)]
        log.warning("%s: channel(s) %s are flat (zero %g quantile); they are modelled at the floor value",
                    sig.source_path, ", ".join(names), cfg.scale_quantile)
        scales = np.where(flat, 1.0, scales)
    steps.append(f"per-channel division by the {cfg.scale_quantile:g} quantile")
    steps.append(f"floor at {cfg.floor:g}")

    segs = [np.maximum(np.minimum(b, clip[None, :]) / scales[None, :], cfg.floor).astype(np.float32)
            for b in binned]
    return Preprocessed(segments=segs, bin_times=centres, bin_size=eff_bin, scales=scales,
                        clip_levels=clip, rectified=binned, channel_names=list(sig.channel_names),
                        steps=steps, was_raw=raw)
