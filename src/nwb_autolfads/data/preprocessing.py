"""EMG preprocessing (docs/science.md, EMG preprocessing).

raw EMG -> notch (line frequency + harmonics, zero-phase; by default the mains hum found in the
spectrum, see :func:`detect_line_hum`) -> 4th-order Butterworth high-pass
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
from tqdm.auto import tqdm

from nwb_autolfads.config import ALREADY_BINNED_BELOW_HZ, DEFAULT_BIN_SIZE, PreprocessConfig
from nwb_autolfads.errors import SignalError
from nwb_autolfads.data.signals import Signal
from nwb_autolfads.data.timebase import check_rate

__all__ = ["Preprocessed", "preprocess_emg", "notch_filter", "notch_frequencies", "LineHum", "detect_line_hum",
           "line_hum_spectrum", "highpass_filter", "resample", "bin_average", "looks_rectified",
           "shared_artefact_bins", "reject_shared_artefacts"]

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
    line_hum: dict = field(default_factory=dict)
    """Raw EMG: the line-frequency setting, what the spectrum showed (:meth:`LineHum.to_dict`) and
    ``notched_hz``, the frequencies notched (for the provenance)."""
    resolved: dict = field(default_factory=dict)
    """``preprocess`` settings that ``auto`` resolved to (``line_frequency``, ``notch_harmonics``):
    a run saves them in its config so that its preprocessing can be repeated exactly."""

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


def notch_filter(x: np.ndarray, fs: float, freq: float, harmonics: int | tuple[int, ...],
                 quality: float) -> tuple[np.ndarray, list[float]]:
    """Zero-phase notch at ``freq`` and its harmonics below Nyquist: ``harmonics`` is their number
    (fundamental included) or the harmonic numbers (1 = the fundamental). Returns (filtered,
    notched freqs)."""
    freqs = notch_frequencies(fs, freq, harmonics)
    return _apply_notches(x, fs, freqs, quality), freqs


def notch_frequencies(fs: float, freq: float | None, harmonics: int | tuple[int, ...]) -> list[float]:
    """The frequencies (Hz) notched for line frequency ``freq`` and ``harmonics`` (a number, or
    harmonic numbers) at sampling rate ``fs``: those below 0.95 x Nyquist. ``freq=None``: none."""
    if freq is None:
        return []
    ks = range(1, harmonics + 1) if isinstance(harmonics, int) else sorted(set(harmonics))
    return [round(k * freq, 6) for k in ks if k * freq < 0.95 * fs / 2]


def _apply_notches(x: np.ndarray, fs: float, freqs: list[float], quality: float) -> np.ndarray:
    for f0 in freqs:
        b, a = sps.iirnotch(f0, quality, fs=fs)
        # pad by ~6 time constants (Q / (pi f0)) so the start-up ringing dies out in the padding
        padlen = min(int(6 * quality * fs / (np.pi * f0)), x.shape[0] - 1)
        x = sps.filtfilt(b, a, x, axis=0, padlen=padlen)
    return x


# ----------------------------------------------------------------------------- line hum
LINE_FREQUENCIES = (50.0, 60.0)
"""Nominal mains frequencies the detection looks for."""
HUM_RATIO = 10.0
"""A spectral peak stands out as line hum when its power is this many times the median power
of its neighbourhood (10 dB). Hum that weak holds ~1% of the EMG's power and barely changes
the envelope; EMG's own spectrum has no peaks this narrow and high."""
HUM_DRIFT_HZ = 1.0
"""How far from its nominal value the mains fundamental is looked for (+- Hz)."""
HUM_MAX_HZ = 1000.0
"""Harmonics are looked for (and notched) up to this frequency (and below 0.95 x Nyquist)."""
HUM_EXCERPT_SECONDS = 32.0
"""Seconds of raw EMG (in up to 4 stretches spread over the recording) the detection reads."""
HUM_WINDOW_SECONDS = 4.0
"""Welch segment length (0.25 Hz resolution), shortened for short recordings."""


@dataclass
class LineHum:
    """What the line-hum detection found in the raw EMG's spectrum (:func:`detect_line_hum`)."""

    frequency: float | None
    """Measured mains fundamental (Hz, to 0.01 Hz); ``None``: no hum found (or not checkable)."""
    nominal: float | None
    """50 or 60: the mains system the hum belongs to."""
    harmonics: tuple[int, ...]
    """Harmonic numbers (1 = the fundamental) whose peaks stand out, up to :data:`HUM_MAX_HZ`."""
    ratios: dict[int, float]
    """Peak-to-floor power ratio (largest over channels) at each harmonic number checked."""
    channels: tuple[str, ...]
    """Channels on which some harmonic stands out."""
    seconds: float
    """Seconds of EMG the spectrum was computed from."""
    resolution: float
    """Frequency resolution of the spectrum (Hz)."""
    reason: str = ""
    """Why no spectrum could be checked (too short, sampled too slowly); empty if checked."""
    candidates: dict[float, float] = field(default_factory=dict)
    """Per nominal frequency checked (50, 60), the largest peak-to-floor ratio at its first three
    harmonics: what decided between them."""

    @property
    def found(self) -> bool:
        return self.frequency is not None and bool(self.harmonics)

    def describe(self, n_channels: int) -> str:
        """One line: what was found."""
        if self.reason:
            return f"line hum not checked: {self.reason}"
        if not self.found:
            return (f"no line hum found at 50 or 60 Hz (Welch spectrum of {self.seconds:.3g} s: no peak "
                    f"{HUM_RATIO:g} x above its neighbourhood)")
        f0 = self.frequency
        others = [k for k in self.harmonics if k > 1]
        text = f"line hum found at {f0:g} Hz"
        if abs(f0 - self.nominal) >= 0.05:
            text += f" ({f0 - self.nominal:+.2f} Hz off the nominal {self.nominal:g} Hz)"
        if 1 not in self.harmonics:
            text += " (not at the fundamental)"
        if others:
            text += " with harmonics " + ", ".join(f"{k * f0:g}" for k in others) + " Hz"
        if len(self.channels) < n_channels:
            text += f" on channel(s) {', '.join(self.channels)} of {n_channels}"
        ratio = max(self.ratios[k] for k in self.harmonics)
        return text + f" (peak up to {ratio:.3g} x its neighbourhood, Welch spectrum of {self.seconds:.3g} s)"

    def to_dict(self) -> dict:
        return {"frequency": self.frequency, "nominal": self.nominal, "harmonics": list(self.harmonics),
                "peak_to_floor": {str(k): round(v, 3) for k, v in self.ratios.items()},
                "channels": list(self.channels), "seconds": self.seconds, "resolution_hz": self.resolution,
                "not_checked": self.reason,
                "candidates_peak_to_floor": {f"{f:g}": round(v, 3) for f, v in self.candidates.items()}}


def _peak_ratio(freqs: np.ndarray, power: np.ndarray, centre: float, half_width: float,
                df: float) -> tuple[np.ndarray, float]:
    """Per channel, the largest power within ``centre +- half_width`` over the median power of
    the flanks (from ``half_width + 2 df`` to ``+ max(8 Hz, 8 df)`` either side), and the
    frequency of the pooled peak (parabolic interpolation of the log power). Returns
    ((C,) ratios, peak frequency)."""
    dist = np.abs(freqs - centre)
    band = np.flatnonzero(dist <= half_width)
    gap = half_width + 2 * df
    flank = (dist >= gap) & (dist <= gap + max(8.0, 8 * df))
    floor = np.median(power[flank], axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(floor[None, :] > 0, power / floor[None, :], 0.0)
    ratio = rel[band].max(axis=0)
    pooled = np.log(np.maximum(rel.mean(axis=1), 1e-300))
    i = int(band[np.argmax(pooled[band])])
    shift = 0.0
    if 0 < i < freqs.size - 1:
        den = pooled[i - 1] - 2 * pooled[i] + pooled[i + 1]
        if den < 0:
            shift = float(np.clip(0.5 * (pooled[i - 1] - pooled[i + 1]) / den, -0.5, 0.5))
    return ratio, float(freqs[i] + shift * df)


def line_hum_spectrum(pieces: list[np.ndarray], fs: float) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Welch power spectrum (Hann, 50% overlap) of raw EMG ``pieces`` (each (n_i, C), gap-free)
    for finding line hum. The segment length is :data:`HUM_WINDOW_SECONDS` (at most 2**15
    samples, at most a third of the longest piece). Each segment's spectrum is divided by its
    median power (per channel) before the segments are averaged: EMG's loudness changes with
    muscle activity, and unnormalised bursts would leave few effective averages and spurious
    peaks. Returns (freqs, power (n_freqs, C) in units of the median, resolution Hz), or
    ``None`` if the pieces are too short for a 3 Hz resolution."""
    longest = max((p.shape[0] for p in pieces), default=0)
    nper = int(min(round(HUM_WINDOW_SECONDS * fs), 2**15, longest // 3))
    if nper < fs / 3.0 or nper < 16:
        return None
    total, weight = None, 0
    for p in pieces:
        if p.shape[0] < nper:
            continue
        freqs, _, spec = sps.spectrogram(p, fs=fs, window="hann", nperseg=nper, noverlap=nper // 2, axis=0)
        level = np.median(spec, axis=0, keepdims=True)  # (1, C, n_segments)
        spec = np.where(level > 0, spec / np.where(level > 0, level, 1.0), 0.0)
        total = spec.sum(axis=2) if total is None else total + spec.sum(axis=2)
        weight += spec.shape[2]
    return freqs, total / weight, fs / nper


def detect_line_hum(pieces: list[np.ndarray], fs: float, channel_names: list[str] | None = None) -> LineHum:
    """Find mains hum in raw EMG: a narrow peak near 50 or 60 Hz (or at their 2nd/3rd harmonic)
    at least :data:`HUM_RATIO` x above its neighbourhood on some channel, in the Welch spectrum
    of ``pieces`` (each (n_i, C), gap-free, sampled at ``fs`` Hz). The fundamental is measured
    (parabolic peak interpolation, to 0.01 Hz; mains can be off nominal) and the harmonics up to
    :data:`HUM_MAX_HZ` that stand out at multiples of it are listed.

    Returns a :class:`LineHum` (``frequency=None`` if no hum was found or none could be checked:
    then ``reason`` says why)."""
    n_ch = pieces[0].shape[1] if pieces else 0
    names = list(channel_names) if channel_names is not None else [str(c) for c in range(n_ch)]
    seconds = sum(p.shape[0] for p in pieces) / fs
    spectrum = line_hum_spectrum(pieces, fs)
    if spectrum is None:
        return LineHum(None, None, (), {}, (), seconds, 0.0,
                       f"the longest gap-free stretch is too short ({max((p.shape[0] for p in pieces), default=0) / fs:.3g} s;"
                       " at least 1 s needed) for a spectrum that tells 50 from 60 Hz")
    freqs, power, df = spectrum
    top = 0.95 * fs / 2

    def checkable(f: float, half_width: float) -> bool:
        return f + half_width + 2 * df + max(8.0, 8 * df) < top

    best, best_score, candidates = None, 0.0, {}
    for nominal in LINE_FREQUENCIES:
        scores = []
        for k in (1, 2, 3):
            hw = max(k * HUM_DRIFT_HZ, 1.5 * df)
            if checkable(k * nominal, hw):
                ratio, peak = _peak_ratio(freqs, power, k * nominal, hw, df)
                scores.append((float(ratio.max()), k, peak))
        if scores:
            score = max(scores)
            candidates[nominal] = score[0]
            if score[0] >= HUM_RATIO and score[0] > best_score:
                best, best_score = (nominal, score[1], score[2]), score[0]
    if not candidates:
        return LineHum(None, None, (), {}, (), seconds, df,
                       f"sampled at {fs:g} Hz, too slowly to hold 50 or 60 Hz hum (Nyquist {fs / 2:g} Hz)")
    if best is None:
        return LineHum(None, None, (), {}, (), seconds, df, candidates=candidates)
    nominal, k_best, peak = best
    f0 = round(peak / k_best, 2)
    ratios, harmonics, on = {}, [], np.zeros(n_ch, bool)
    k = 1
    while k * f0 <= HUM_MAX_HZ and checkable(k * f0, max(1.5 * df, 0.004 * k * f0)):
        ratio, _ = _peak_ratio(freqs, power, k * f0, max(1.5 * df, 0.004 * k * f0), df)
        ratios[k] = float(ratio.max())
        if ratios[k] >= HUM_RATIO:
            harmonics.append(k)
            on |= ratio >= HUM_RATIO
        k += 1
    return LineHum(f0 if harmonics else None, nominal, tuple(harmonics), ratios,
                   tuple(names[c] for c in np.flatnonzero(on)), seconds, df, candidates=candidates)


def _hum_excerpt(values, segments: list[slice], dead: np.ndarray, fs: float) -> list[np.ndarray]:
    """Raw samples of the live channels for the line-hum spectrum: at most
    :data:`HUM_EXCERPT_SECONDS` and about 2**23 values (64 MB) in all - the whole recording if it
    is that short, else stretches (4 where they can be two Welch segments long) spread evenly
    over it, each inside one segment. Read at most 2**16 rows at a time."""
    live = np.flatnonzero(~dead)
    lengths = np.array([s.stop - s.start for s in segments])
    total = int(lengths.sum())
    window = int(min(round(HUM_WINDOW_SECONDS * fs), 2**15))
    budget = int(min(HUM_EXCERPT_SECONDS * fs, max(DEFAULT_CHUNK_VALUES // max(1, live.size), 3 * window)))
    if total <= budget:
        picks = [(s.start, s.stop) for s in segments]
    else:
        piece = min(budget, max(budget // 4, 2 * window))
        starts = np.cumsum(lengths) - lengths
        picks = []
        n_pieces = budget // piece
        for i in range(n_pieces):
            centre = int((i + 0.5) * total / n_pieces)
            j = int(np.searchsorted(starts, centre, side="right") - 1)
            a = segments[j].start + max(0, min(centre - int(starts[j]) - piece // 2, int(lengths[j]) - piece))
            picks.append((a, min(segments[j].stop, a + piece)))
    out = []
    for a, b in picks:
        x = np.concatenate([np.asarray(values[a + c:a + d], dtype=float) for c, d in _chunks(b - a, 2**16)])
        out.append(x[:, live])
    return out


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
    binner = _Binner(float(times[0]), float(times[-1]) + sample_period, bin_size, x.shape[1])
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


def _scan(values, chunk: int, bar=None) -> _Scan:
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
        if bar is not None:
            bar.update(b - a)
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


def _warn_implausible_volts(sig: Signal, scan: _Scan, limit: float = 100.0) -> None:
    """Warn when EMG said to be in volts reaches more than ``limit`` volts on most channels (EMG is
    microvolts to millivolts): the values are probably in uV or mV, or a conversion is missing,
    and the results, reported in the file's unit, would be as far off."""
    if sig.unit.strip().lower() not in ("v", "volt", "volts") or not scan.peak.size:
        return
    if float(np.median(scan.peak)) > limit:
        log.warning("%s: EMG in %r reaches %.3g V (median over channels), implausible for EMG (uV-mV): the values "
                    "are probably in uV or mV, or the series' conversion is missing; results are reported in the "
                    "file's unit", sig.source_path, sig.unit, float(np.median(scan.peak)))


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


def _notch_gain(fs: float, notches: list[float], quality: float, freq: float) -> float:
    """Amplitude gain at ``freq`` of the zero-phase notches (each applied forward and backward)."""
    gain = 1.0
    for f0 in notches:
        b, a = sps.iirnotch(f0, quality, fs=fs)
        _, h = sps.freqz(b, a, worN=[freq], fs=fs)
        gain *= float(np.abs(h[0])) ** 2
    return gain


def _line_notches(sig: Signal, segments: list[slice], dead: np.ndarray, fs: float,
                  cfg: PreprocessConfig) -> tuple[list[float], str | None, dict, dict]:
    """Which frequencies to notch in raw EMG, from ``cfg.line_frequency`` (``auto``: the hum
    :func:`detect_line_hum` finds; a number: that and ``notch_harmonics``; ``None``: none).
    The spectrum is checked in every case: hum that the configured notches leave standing out is
    warned about. Returns (notch freqs, the step to record or None, provenance, resolved settings)."""
    live = [n for n, d in zip(sig.channel_names, dead) if not d]
    hum = detect_line_hum(_hum_excerpt(sig.values, segments, dead, fs), fs, live)
    found = hum.describe(len(live))
    setting = cfg.line_frequency
    q = f"zero-phase, Q={cfg.notch_quality:g}"
    resolved: dict = {}
    if setting == "auto":
        notches = notch_frequencies(fs, hum.frequency, hum.harmonics) if hum.found else []
        resolved = ({"line_frequency": hum.frequency, "notch_harmonics": list(hum.harmonics)} if hum.found
                    else {"line_frequency": None})
        listed = ", ".join(f"{f:g}" for f in notches)
        step = found + (f": notch filters ({q}) at {listed} Hz" if notches else ": no notch")
        if hum.reason and notch_frequencies(fs, min(LINE_FREQUENCIES), 1):  # a notch could be applied
            log.warning("%s: %s; no notch filter is applied: set preprocess.line_frequency to 50 or 60 to notch "
                        "anyway", sig.source_path, found)
        else:
            log.info("%s: %s", sig.source_path, step)
    else:
        notches = notch_frequencies(fs, setting, cfg.notch_harmonics)
        listed = ", ".join(f"{f:g}" for f in notches)
        step = (f"notch filters ({q}) at {listed} Hz (preprocess.line_frequency {setting:g} Hz as configured)"
                if notches else None)
        if hum.found:  # hum the configured notches leave standing out above its neighbourhood
            left = [k * hum.frequency for k in hum.harmonics
                    if hum.ratios[k] * _notch_gain(fs, notches, cfg.notch_quality, k * hum.frequency) ** 2 >= HUM_RATIO]
            if left:
                at = ", ".join(f"{f:g}" for f in left)
                what = (f"{found}: left in (preprocess.line_frequency is off)" if setting is None else
                        f"{found}: {at} Hz not removed by the configured notches at {listed or 'no frequency'} Hz")
                log.warning("%s: %s; set preprocess.line_frequency: auto (or %g) to notch it", sig.source_path, what,
                            hum.frequency)
                step = (step + "; " if step else "") + what
    record = {"setting": "off" if setting is None else setting, **hum.to_dict(), "notched_hz": notches}
    return notches, step, record, resolved


class _Binner:
    """Averages samples into the bins of one segment, one chunk of samples after another. Bins
    start at ``t0``; a bin is complete if the samples cover it (up to ``t_end``, the end of the
    last sample), and only complete bins are kept."""

    def __init__(self, t0: float, t_end: float, bin_size: float, n_ch: int) -> None:
        self.t0, self.bin_size = t0, bin_size
        # a bin missing under 1% of its span at the very end (timestamp rounding) still counts as complete
        self.n_bins = max(0, int(np.floor((t_end - t0) / bin_size + 0.01)))
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
                  bin_size: float | None, eff_bin: float, chunk: int, notches: list[float], gap_factor: float = 1.5,
                  bar=None) -> tuple[np.ndarray, np.ndarray, float]:
    """Filter (notches at ``notches`` Hz, high-pass), rectify, resample and bin one segment,
    reading ``chunk`` samples at a time with enough overlap that the result equals that of
    filtering the whole segment at once.
    Every (resampled) sample is placed at its true time by the segment's
    :class:`~nwb_autolfads.data.timebase.Clock` (from the timestamps, not ``start + k / rate``), so
    bins sit at their true times however the timestamps are rounded, jittered or drift.
    ``bin_size=None``: every sample is one bin of ``eff_bin`` seconds, at the sample's own timestamp.
    Returns (binned (n_bins, C), bin centres, rate after resampling)."""
    length = seg.stop - seg.start
    notches = notches if raw else []
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
    clock = sig.clock(seg, gap_factor)
    t_start, t_end = (float(v) for v in clock([0.0, float(length)]))
    binner = _Binner(t_start, t_end, bin_size, sig.n_channels) if bin_size is not None else None
    direct_x, direct_t = [], []
    for a, b in _chunks(length, chunk):
        ea, eb = max(0, a - margin), min(length, b + margin)
        x = np.asarray(sig.values[seg.start + ea:seg.start + eb], dtype=float)
        if dead.any():
            x = np.where(dead[None, :], 0.0, x)  # a new array: the caller's values are never changed
        if raw:
            if notches:
                x = _apply_notches(x, fs, notches, cfg.notch_quality)
            if cfg.highpass_hz is not None and cfg.highpass_hz < 0.95 * fs / 2:
                x = highpass_filter(x, fs, cfg.highpass_hz, cfg.highpass_order)
            x = np.abs(x)
        if (up, down) != (1, 1):
            y = sps.resample_poly(x, up, down, axis=0, padtype="symmetric")
            k0, k1 = (a - ea) * up // down, -(-(b - ea) * up // down)
            x = np.abs(y[k0:k1]) if raw else np.maximum(y[k0:k1], 0.0)  # resampling can ring below zero
            t = clock((a * up // down + np.arange(x.shape[0])) * (down / up))
        else:
            x = x[a - ea:b - ea]
            t = clock(np.arange(a, b))
        if binner is not None:
            binner.add(x, t)
        else:
            direct_x.append(x)
            # an already-binned sample keeps its own timestamp (no resampling happens at these rates)
            direct_t.append(t if (up, down) != (1, 1) else np.asarray(sig.times(seg.start + a, seg.start + b)))
        if bar is not None:
            bar.update(b - a)
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


MIN_RAW_EMG_HZ = 200.0
"""Raw EMG sampled below this rate is refused: it cannot hold the EMG band, and such a rate
mostly comes from timestamps in milliseconds (a 30 kHz recording read as 30 Hz)."""


def preprocess_emg(sig: Signal, cfg: PreprocessConfig, bin_size: float | None, preprocessed: bool | None = None,
                   gap_factor: float = 1.5, chunk_samples: int | None = None, progress: bool = False) -> Preprocessed:
    """Turn an EMG :class:`Signal` into model-ready binned, scaled segments.

    The samples are read and filtered ``chunk_samples`` at a time (default: about 2**23 values,
    64 MB, per chunk), with overlaps long enough for every filter to settle, so memory stays
    bounded for recordings of any length and the result equals filtering each segment whole
    (``chunk_samples=0``) to float tolerance. With :class:`~nwb_autolfads.data.signals.SeriesValues`
    the file is read chunk by chunk too.

    ``bin_size``: the model bin in seconds; ``None`` keeps the bins of EMG that is already
    rectified and binned (sampled below 1 kHz: each sample is one bin, at its own timestamp)
    and uses 10 ms otherwise. Data sampled no finer than the bin are never re-binned.
    ``progress``: a progress bar (stderr, with the time left) over the samples read, shown when
    the recording takes more than one chunk.
    """
    timebase = sig.timebase(gap_factor)
    fs = timebase.rate
    check_rate(fs, sig.source_path, sig.timestamps is not None)
    chunk = max(1024, DEFAULT_CHUNK_VALUES // max(1, sig.n_channels)) if chunk_samples is None else chunk_samples
    scan_chunk = chunk if chunk > 0 else sig.n_samples
    bar = tqdm(total=2 * sig.n_samples, desc="reading + filtering EMG", unit="sample", unit_scale=True,
               leave=False, disable=not progress or sig.n_samples <= scan_chunk)
    try:
        return _preprocess(sig, cfg, bin_size, preprocessed, gap_factor, chunk, scan_chunk, timebase, bar)
    finally:
        bar.close()


def _preprocess(sig: Signal, cfg: PreprocessConfig, bin_size: float | None, preprocessed: bool | None,
                gap_factor: float, chunk: int, scan_chunk: int, timebase, bar) -> Preprocessed:
    """:func:`preprocess_emg` after the chunk size is chosen; ``bar`` counts the samples read
    (each twice: the scan for NaN/inf and saturation, then the filtering)."""
    fs = timebase.rate
    segments = list(timebase.segments)
    steps: list[str] = []
    for note in timebase.notes():
        log.warning("%s: %s", sig.source_path, note)
        steps.append(note.split(":")[0])
    if len(segments) > 1:
        steps.append(f"split into {len(segments)} segments at gaps in the timestamps (no filter crosses a gap)")
    scan = _scan(sig.values, scan_chunk, bar)
    dead, segments = _drop_non_finite(sig, scan, segments, steps)
    bar.total = sig.n_samples + sum(seg.stop - seg.start for seg in segments)  # the samples filtered next
    _warn_saturated(sig, scan)

    if preprocessed is None:
        preprocessed = looks_rectified(_head(sig.values, segments, dead), fs)
        steps.append("detected already-rectified/enveloped EMG (non-negative, skewed or slow; override with "
                     "--emg-raw)" if preprocessed else
                     "detected raw EMG (symmetric about its baseline; override with --emg-preprocessed)")
    raw = not preprocessed
    if raw and fs < MIN_RAW_EMG_HZ:
        raise SignalError(f"{sig.source_path}: raw EMG (symmetric about its baseline) sampled at {fs:g} Hz cannot hold "
                          "the EMG band (20-450 Hz): are the timestamps in milliseconds, or the rate in kHz (a "
                          f"{fs * 1000:g} Hz recording)? Fix the file's timestamps or rate; pass --emg-preprocessed if "
                          "the data really are an envelope at this rate")
    if raw and fs < 500.0:
        log.warning("%s: raw EMG sampled at %g Hz cannot hold the EMG band (20-450 Hz): check the rate or timestamps "
                    "(a wrong unit?), or pass --emg-preprocessed if the data are an envelope", sig.source_path, fs)
    _warn_implausible_volts(sig, scan)

    bin_size, per_sample = _model_bin(sig, fs, bin_size, preprocessed, steps)
    eff_bin = 1.0 / fs if per_sample else bin_size

    notches, notch_step, line_hum, resolved = [], None, {}, {}
    if raw:
        notches, notch_step, line_hum, resolved = _line_notches(sig, segments, dead, fs, cfg)

    binned, centres = [], []
    rate_after = fs
    for seg in segments:
        if raw and seg.stop - seg.start < 16:
            log.warning("%s: skipping a segment of %d samples (too short to filter)", sig.source_path,
                        seg.stop - seg.start)
            continue
        b, c, rate_after = _segment_bins(sig, seg, dead, fs, cfg, raw, None if per_sample else bin_size, eff_bin,
                                         chunk, notches, gap_factor, bar)
        if b.shape[0]:
            binned.append(b)
            centres.append(c)
    if not binned:
        raise SignalError(f"{sig.source_path}: no complete {eff_bin * 1e3:g} ms bin could be formed: the recording "
                          "is too short")

    if raw:
        if notch_step:
            steps.append(notch_step)
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
                        steps=steps, was_raw=raw, line_hum=line_hum, resolved=resolved)
