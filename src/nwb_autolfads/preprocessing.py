"""EMG preprocessing (science.md section 2).

raw EMG -> notch (line frequency + harmonics, zero-phase) -> 4th-order Butterworth high-pass
(zero-phase) -> full-wave rectification -> anti-aliased polyphase resampling -> binning to the
model bin -> per-channel clipping at a high quantile -> per-channel scaling by the 95th
percentile -> a small positive floor.

The rectified signal is *not* low-pass smoothed: smoothing is what the model replaces. For EMG
that is already rectified/enveloped/binned the first three steps are skipped, and EMG that is
already binned (rectified and sampled below 1 kHz) keeps its own bins unless
``windows.bin_size`` is set: each sample is one bin, at its own timestamp. Every step that
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

from .config import ALREADY_BINNED_BELOW_HZ, DEFAULT_BIN_SIZE, PreprocessConfig
from .errors import SignalError
from .signals import Signal, split_segments

__all__ = ["Preprocessed", "preprocess_emg", "notch_filter", "highpass_filter", "resample",
           "bin_average", "looks_rectified", "shared_artefact_bins", "reject_shared_artefacts"]

log = logging.getLogger(__name__)

DEFAULT_CHUNK_VALUES = 2**23
"""Values (samples x channels) read and filtered at a time: 64 MB of float64."""


@dataclass
class Preprocessed:
    """Model-ready EMG: binned, clipped and scaled segments with their bin times."""

    segments: list[np.ndarray]
    """Per segment, (n_bins, n_channels) float32 in scaled units (q95 = 1)."""
    bin_times: list[np.ndarray]
    """Per segment, the time of each bin in the source's clock (seconds): its centre when samples
    are averaged into bins, the sample's own timestamp when each sample is one bin."""
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


def _resample_ratio(fs: float, target: float) -> tuple[int, int]:
    """(up, down): the rational approximation of ``target / fs`` the resampling uses."""
    ratio = Fraction(target / fs).limit_denominator(1000)
    return ratio.numerator, ratio.denominator


def resample(x: np.ndarray, fs: float, target: float) -> tuple[np.ndarray, float]:
    """Anti-aliased polyphase resampling to (a rational approximation of) ``target`` Hz.
    Returns (resampled, achieved rate)."""
    up, down = _resample_ratio(fs, target)
    if up == down:
        return x, fs
    y = sps.resample_poly(x, up, down, axis=0, padtype="symmetric")
    return y, fs * up / down


def bin_average(x: np.ndarray, times: np.ndarray, bin_size: float) -> tuple[np.ndarray, np.ndarray]:
    """Average samples into consecutive bins of ``bin_size`` seconds starting at ``times[0]``.
    Only complete bins are kept. Returns (binned (n_bins, C), bin centre times)."""
    sample_period = float(np.median(np.diff(times))) if times.size > 1 else bin_size
    binner = _Binner(float(times[0]), float(times[-1]), sample_period, bin_size, x.shape[1])
    binner.add(x, times)
    return binner.result()


@dataclass
class _Scan:
    """What one pass over the raw samples finds (read chunk by chunk)."""

    any_finite: np.ndarray  # (C,) whether the channel has a finite sample
    bad_rows: np.ndarray  # indices of samples with a non-finite value in some channel
    bad_masks: np.ndarray  # (len(bad_rows), C) which channels are non-finite there
    peak: np.ndarray  # (C,) largest |finite value|
    at_peak: np.ndarray  # (C,) samples at the peak (within 1e-9)


def _chunks(n: int, size: int):
    for a in range(0, n, size):
        yield a, min(n, a + size)


def _scan(values, chunk: int) -> _Scan:
    n, n_ch = values.shape
    any_finite = np.zeros(n_ch, bool)
    rows, masks = [], []
    peak, at_peak = np.zeros(n_ch), np.zeros(n_ch, np.int64)
    for a, b in _chunks(n, chunk):
        x = np.asarray(values[a:b], dtype=float)
        finite = np.isfinite(x)
        any_finite |= finite.any(axis=0)
        bad = np.flatnonzero(~finite.all(axis=1))
        if bad.size:
            rows.append(bad + a)
            masks.append(~finite[bad])
        mag = np.where(finite, np.abs(x), 0.0)
        top = mag.max(axis=0, initial=0.0)
        count = np.sum(mag >= top[None, :] * (1 - 1e-9), axis=0)
        higher = top > peak
        keep_old = higher & (peak >= top * (1 - 1e-9))
        at_peak = np.where(higher, count + np.where(keep_old, at_peak, 0),
                           np.where(top >= peak * (1 - 1e-9), at_peak + count, at_peak))
        peak = np.maximum(peak, top)
    return _Scan(any_finite, np.concatenate(rows) if rows else np.zeros(0, np.int64),
                 np.concatenate(masks) if masks else np.zeros((0, n_ch), bool), peak, at_peak)


def _drop_non_finite(sig: Signal, scan: _Scan, segments: list[slice],
                     steps: list[str]) -> tuple[np.ndarray, list[slice]]:
    """NaN/inf samples: a channel with nothing finite is set to 0 (a flat channel, modelled at the
    floor); samples where any other channel is not finite are left out, and the stretches between
    them become separate segments (like gaps in time). Warns; fails only if nothing is left.
    Returns (dead-channel mask, segments)."""
    dead = ~scan.any_finite
    if dead.all():
        raise SignalError(f"{sig.source_path}: every sample is NaN or inf: choose another series with --emg")
    if dead.any():
        names = [sig.channel_names[i] for i in np.flatnonzero(dead)]
        log.warning("%s: channel(s) %s hold no finite sample; they are modelled as flat", sig.source_path,
                    ", ".join(names))
        steps.append(f"channel(s) {', '.join(names)} without finite samples set to 0")
    bad_rows = scan.bad_rows[scan.bad_masks[:, ~dead].any(axis=1)]
    if not bad_rows.size:
        return dead, segments
    bad = np.zeros(sig.n_samples, bool)
    bad[bad_rows] = True
    kept = []
    for seg in segments:
        good = ~bad[seg]
        edges = np.flatnonzero(np.diff(np.r_[0, good.astype(np.int8), 0]))
        kept += [slice(seg.start + a, seg.start + b) for a, b in zip(edges[::2], edges[1::2])]
    n_bad = int(bad_rows.size)
    log.warning("%s: %d samples (%.2f%%) with NaN/inf are left out; the %d stretches around them are modelled "
                "separately", sig.source_path, n_bad, 100.0 * n_bad / bad.size, len(kept))
    steps.append(f"left out {n_bad} samples with NaN/inf (the stretches between them are separate segments)")
    if not kept:
        raise SignalError(f"{sig.source_path}: no stretch without NaN/inf samples: interpolate or remove them")
    return dead, kept


def _warn_saturated(sig: Signal, scan: _Scan, fraction: float = 0.01) -> None:
    """Warn about channels that sit at their extreme value in more than ``fraction`` of samples
    (amplifier or ADC saturation): their activations are underestimated there."""
    if sig.n_samples < 100:
        return
    at_peak = scan.at_peak / sig.n_samples
    saturated = [sig.channel_names[i] for i in np.flatnonzero((at_peak > fraction) & (scan.peak > 0))]
    if saturated:
        log.warning("%s: channel(s) %s look saturated (at their extreme value in more than %g%% of samples); "
                    "activations are underestimated where they clip", sig.source_path, ", ".join(saturated),
                    100 * fraction)


def _head(values, segments: list[slice], dead: np.ndarray, n: int = 2**16) -> np.ndarray:
    """The first ``n`` usable samples (for telling raw from rectified EMG)."""
    out, have = [], 0
    for seg in segments:
        x = np.asarray(values[seg.start:min(seg.stop, seg.start + n - have)], dtype=float)
        x = np.where(dead[None, :], 0.0, x)  # a new array: the caller's values are never changed
        out.append(x)
        have += x.shape[0]
        if have >= n:
            break
    return np.concatenate(out, axis=0)


def _settling_samples(fs: float, cfg: PreprocessConfig, notch_freqs: list[float]) -> int:
    """Samples after which the slowest filter's response has decayed below ~1e-12: chunks are
    filtered with this much overlap on each side, so chunk edges leave no trace."""
    radius = 0.0
    for f0 in notch_freqs:
        _, a = sps.iirnotch(f0, cfg.notch_quality, fs=fs)
        radius = max(radius, float(np.max(np.abs(np.roots(a)))))
    if cfg.highpass_hz is not None and cfg.highpass_hz < 0.95 * fs / 2:
        sos = sps.butter(cfg.highpass_order, cfg.highpass_hz, btype="highpass", fs=fs, output="sos")
        for section in sos:
            radius = max(radius, float(np.max(np.abs(np.roots(section[3:])))))
    if radius <= 0.0:
        return 0
    return int(np.ceil(28.0 / -np.log(radius))) + 32


def _notch_freqs(fs: float, cfg: PreprocessConfig) -> list[float]:
    if cfg.line_frequency is None:
        return []
    return [k * cfg.line_frequency for k in range(1, cfg.notch_harmonics + 1)
            if k * cfg.line_frequency < 0.95 * fs / 2]


class _Binner:
    """Averages samples into the bins of one segment, one chunk of samples after another. Bins
    start at ``t0``; a bin is complete if the samples cover it (the last bin ends at the last
    sample's end), and only complete bins are kept."""

    def __init__(self, t0: float, t_last: float, sample_period: float, bin_size: float, n_ch: int) -> None:
        self.t0, self.bin_size = t0, bin_size
        self.n_bins = max(0, int(np.floor((t_last + sample_period - t0) / bin_size + 1e-9)))
        self.sums = np.zeros((self.n_bins, n_ch))
        self.counts = np.zeros(self.n_bins)

    def add(self, x: np.ndarray, t: np.ndarray) -> None:
        idx = np.floor((t - self.t0) / self.bin_size + 1e-9).astype(np.int64)
        keep = idx < self.n_bins
        idx, x = idx[keep], x[keep]
        if not idx.size:
            return
        lo, width = int(idx[0]), int(idx[-1] - idx[0] + 1)
        rel = idx - lo
        self.counts[lo:lo + width] += np.bincount(rel, minlength=width)
        for c in range(x.shape[1]):
            self.sums[lo:lo + width, c] += np.bincount(rel, weights=x[:, c], minlength=width)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        with np.errstate(invalid="ignore", divide="ignore"):
            binned = self.sums / self.counts[:, None]
        return binned, self.t0 + (np.arange(self.n_bins) + 0.5) * self.bin_size


def _segment_bins(sig: Signal, seg: slice, dead: np.ndarray, fs: float, cfg: PreprocessConfig, raw: bool,
                  bin_size: float | None, eff_bin: float, chunk: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Filter, rectify, resample and bin one segment, reading ``chunk`` samples at a time with
    enough overlap that the result equals that of filtering the whole segment at once.
    ``bin_size=None``: every sample is one bin of ``eff_bin`` seconds, at the sample's own time.
    Returns (binned (n_bins, C), bin centres, rate after resampling)."""
    length = seg.stop - seg.start
    notches = _notch_freqs(fs, cfg) if raw else []
    up = down = 1
    if cfg.resample_hz is not None and fs > cfg.resample_hz * 1.01 and eff_bin > 1.0 / cfg.resample_hz:
        up, down = _resample_ratio(fs, cfg.resample_hz)
    rate = fs * up / down
    margin = _settling_samples(fs, cfg, notches) if raw else 0
    if (up, down) != (1, 1):
        margin += int(np.ceil(10 * max(up, down) / up)) + 2 * down  # the polyphase filter's half-length
        margin = -(-margin // down) * down  # chunk starts stay on the resampling grid
    if chunk <= 0 or length <= chunk + 2 * margin:
        chunk = length
    else:
        chunk = max(down, chunk // down * down)
    t_start = float(sig.times(seg.start, seg.start + 1)[0])
    if (up, down) != (1, 1):
        n_out = -(-length * up // down)
        period, t_last = 1.0 / rate, t_start + (n_out - 1) / rate
    else:
        seg_times = sig.times(seg.start, seg.stop)
        period = float(np.median(np.diff(seg_times))) if length > 1 else eff_bin
        t_last = float(seg_times[-1])
    binner = _Binner(t_start, t_last, period, bin_size, sig.n_channels) if bin_size is not None else None
    direct_x, direct_t = [], []
    for a, b in _chunks(length, chunk):
        ea, eb = max(0, a - margin), min(length, b + margin)
        x = np.asarray(sig.values[seg.start + ea:seg.start + eb], dtype=float)
        if dead.any():
            x = np.where(dead[None, :], 0.0, x)  # a new array: the caller's values are never changed
        if raw:
            if notches:
                x, _ = notch_filter(x, fs, cfg.line_frequency, cfg.notch_harmonics, cfg.notch_quality)
            if cfg.highpass_hz is not None and cfg.highpass_hz < 0.95 * fs / 2:
                x = highpass_filter(x, fs, cfg.highpass_hz, cfg.highpass_order)
            x = np.abs(x)
        if (up, down) != (1, 1):
            y = sps.resample_poly(x, up, down, axis=0, padtype="symmetric")
            k0, k1 = (a - ea) * up // down, -(-(b - ea) * up // down)
            x = np.abs(y[k0:k1]) if raw else np.maximum(y[k0:k1], 0.0)  # resampling can ring below zero
            t = t_start + (a * up // down + np.arange(x.shape[0])) / rate
        else:
            x = x[a - ea:b - ea]
            t = sig.times(seg.start + a, seg.start + b)
        if binner is not None:
            binner.add(x, t)
        else:
            direct_x.append(x)
            direct_t.append(t)  # an already-binned sample keeps its own timestamp
    if binner is not None:
        binned, centres = binner.result()
    else:
        binned, centres = np.concatenate(direct_x), np.concatenate(direct_t)
    return binned, centres, rate


def shared_artefact_bins(binned: np.ndarray, level: np.ndarray, fraction: float) -> np.ndarray:
    """Bins (n,) where more than ``fraction`` of the channels of ``binned`` (n, C) exceed their
    ``level`` (C,) at once, widened by one bin on each side."""
    hit = (binned > level[None, :]).mean(axis=1) > fraction
    wide = hit.copy()
    wide[1:] |= hit[:-1]
    wide[:-1] |= hit[1:]
    return wide


def reject_shared_artefacts(binned: list[np.ndarray], fraction: float, quantile: float,
                            steps: list[str] | None = None) -> list[np.ndarray]:
    """Replace shared-artefact bins (:func:`shared_artefact_bins`, levels = each channel's
    ``quantile`` over all segments) by linear interpolation between the nearest clean bins of
    the same segment (the end values at its edges). Returns new arrays; a segment with no clean
    bin is left as it is."""
    level = np.quantile(np.concatenate(binned, axis=0), quantile, axis=0)
    out, n_bad = [], 0
    for b in binned:
        bad = shared_artefact_bins(b, level, fraction)
        if bad.any() and not bad.all():
            idx = np.arange(b.shape[0])
            b = b.copy()
            for c in range(b.shape[1]):
                b[bad, c] = np.interp(idx[bad], idx[~bad], b[~bad, c])
            n_bad += int(bad.sum())
        out.append(b)
    if steps is not None:
        total = sum(b.shape[0] for b in binned)
        steps.append(f"shared-artefact rejection: {n_bad} bins ({100 * n_bad / max(total, 1):.2g}%) where more than "
                     f"{fraction:g} of the channels exceeded their {quantile:g} quantile at once (and one bin either "
                     "side) replaced by linear interpolation")
    return out


def _model_bin(sig: Signal, fs: float, bin_size: float | None, preprocessed: bool,
               steps: list[str]) -> tuple[float, bool]:
    """The model bin and whether every sample is one bin (the data are not finer than the bin).

    ``bin_size=None``: already-rectified EMG sampled below ``ALREADY_BINNED_BELOW_HZ`` is already
    binned and keeps its own bin (one sample per bin, at its own timestamp); anything else gets
    ``DEFAULT_BIN_SIZE``. A bin within 0.1% of the sample period, or finer, also means one sample
    per bin. The choice is added to ``steps``. Returns (bin size in seconds, one sample per bin)."""
    period = 1.0 / fs
    if bin_size is None:
        if preprocessed and fs < ALREADY_BINNED_BELOW_HZ * (1 - 1e-6):
            steps.append(f"already binned ({fs:g} Hz, below {ALREADY_BINNED_BELOW_HZ:g} Hz): modelled in its own "
                         f"{period * 1e3:g} ms bins, one per sample at its own timestamp (set windows.bin_size to "
                         "re-bin)")
            return period, True
        bin_size = DEFAULT_BIN_SIZE
    if bin_size <= period * (1 + 1e-3):
        steps.append(f"data are sampled at {fs:g} Hz, not finer than the {bin_size * 1e3:g} ms bin: each sample is "
                     f"one {period * 1e3:g} ms bin, at its own timestamp")
        return period, True
    if preprocessed and fs < ALREADY_BINNED_BELOW_HZ * (1 - 1e-6):
        ratio = bin_size / period
        if abs(ratio - round(ratio)) > 0.01:
            log.warning("%s: the already-binned %g ms samples are re-binned into %g ms bins, not a multiple of "
                        "them: bins average unequal numbers of samples (set windows.bin_size to a multiple of "
                        "%g ms, or leave it unset to keep the input's bins)", sig.source_path, period * 1e3,
                        bin_size * 1e3, period * 1e3)
    return bin_size, False


def preprocess_emg(sig: Signal, cfg: PreprocessConfig, bin_size: float | None, preprocessed: bool | None = None,
                   gap_factor: float = 1.5, chunk_samples: int | None = None) -> Preprocessed:
    """Turn an EMG :class:`Signal` into model-ready binned, scaled segments.

    The samples are read and filtered ``chunk_samples`` at a time (default: about 2**23 values,
    64 MB, per chunk), with overlaps long enough for every filter to settle, so memory stays
    bounded for recordings of any length and the result equals filtering each segment whole
    (``chunk_samples=0``) to float tolerance. With :class:`~nwb_autolfads.signals.SeriesValues`
    the file is read chunk by chunk too.

    ``bin_size``: the model bin in seconds; ``None`` keeps the bins of EMG that is already
    rectified and binned (sampled below 1 kHz: each sample is one bin, at its own timestamp)
    and uses 10 ms otherwise. Data sampled no finer than the bin are never re-binned.
    """
    fs = sig.sampling_rate()
    chunk = max(1024, DEFAULT_CHUNK_VALUES // max(1, sig.n_channels)) if chunk_samples is None else chunk_samples
    scan_chunk = chunk if chunk > 0 else sig.n_samples
    segments = (split_segments(sig.timestamps, gap_factor) if sig.timestamps is not None
                else [slice(0, sig.n_samples)])
    steps: list[str] = []
    if len(segments) > 1:
        steps.append(f"split into {len(segments)} segments at gaps in the timestamps (no filter crosses a gap)")
    scan = _scan(sig.values, scan_chunk)
    dead, segments = _drop_non_finite(sig, scan, segments, steps)
    _warn_saturated(sig, scan)

    if preprocessed is None:
        preprocessed = looks_rectified(_head(sig.values, segments, dead), fs)
        steps.append("detected already-rectified/enveloped EMG (non-negative, skewed or slow; override with "
                     "--emg-raw)" if preprocessed else
                     "detected raw EMG (symmetric about its baseline; override with --emg-preprocessed)")
    raw = not preprocessed

    bin_size, per_sample = _model_bin(sig, fs, bin_size, preprocessed, steps)
    eff_bin = 1.0 / fs if per_sample else bin_size

    binned, centres = [], []
    rate_after = fs
    for seg in segments:
        if raw and seg.stop - seg.start < 16:
            log.warning("%s: skipping a segment of %d samples (too short to filter)", sig.source_path,
                        seg.stop - seg.start)
            continue
        b, c, rate_after = _segment_bins(sig, seg, dead, fs, cfg, raw, None if per_sample else bin_size, eff_bin,
                                         chunk)
        if b.shape[0]:
            binned.append(b)
            centres.append(c)
    if not binned:
        raise SignalError(f"{sig.source_path}: no complete {eff_bin * 1e3:g} ms bin could be formed: the recording "
                          "is too short")

    notched = _notch_freqs(fs, cfg) if raw else []
    if raw:
        if notched:
            steps.append("notch filters (zero-phase, Q=%g) at %s Hz" % (cfg.notch_quality,
                                                                         ", ".join(f"{f:g}" for f in notched)))
        if cfg.highpass_hz is not None and cfg.highpass_hz < 0.95 * fs / 2:
            steps.append(f"high-pass Butterworth order {cfg.highpass_order} at {cfg.highpass_hz:g} Hz (zero-phase)")
        steps.append("full-wave rectification")
    if rate_after != fs:
        steps.append(f"anti-aliased polyphase resampling {fs:g} Hz -> {rate_after:g} Hz")
    if not per_sample:
        steps.append(f"averaged into {bin_size * 1e3:g} ms bins")

    if cfg.artefact_fraction is not None:
        binned = reject_shared_artefacts(binned, cfg.artefact_fraction, cfg.artefact_quantile, steps)
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
