"""Filters, resampling and binning of sampled signals (arrays of samples x channels).

Zero-phase notch and Butterworth high-pass filters, anti-aliased polyphase resampling and
averaging into bins, and the two properties of the filters that chunked filtering needs: how
long their response takes to settle and their gain at a frequency.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy import signal as sps

from nwb_autolfads.config import PreprocessConfig
from nwb_autolfads.data.timebase import bin_centres

__all__ = ["notch_filter", "notch_frequencies", "apply_notches", "highpass_filter", "resample_ratio", "resample",
           "bin_average", "Binner", "settling_samples", "notch_gain"]


def notch_filter(x: np.ndarray, fs: float, freq: float, harmonics: int | tuple[int, ...],
                 quality: float) -> tuple[np.ndarray, list[float]]:
    """Zero-phase notch at ``freq`` and its harmonics below Nyquist: ``harmonics`` is their number
    (fundamental included) or the harmonic numbers (1 = the fundamental). Returns (filtered,
    notched freqs)."""
    freqs = notch_frequencies(fs, freq, harmonics)
    return apply_notches(x, fs, freqs, quality), freqs


def notch_frequencies(fs: float, freq: float | None, harmonics: int | tuple[int, ...]) -> list[float]:
    """The frequencies (Hz) notched for line frequency ``freq`` and ``harmonics`` (a number, or
    harmonic numbers) at sampling rate ``fs``: those below 0.95 x Nyquist. ``freq=None``: none."""
    if freq is None:
        return []
    ks = range(1, harmonics + 1) if isinstance(harmonics, int) else sorted(set(harmonics))
    return [round(k * freq, 6) for k in ks if k * freq < 0.95 * fs / 2]


def apply_notches(x: np.ndarray, fs: float, freqs: list[float], quality: float) -> np.ndarray:
    for f0 in freqs:
        b, a = sps.iirnotch(f0, quality, fs=fs)
        # pad by ~6 time constants (Q / (pi f0)) so the start-up ringing dies out in the padding
        padlen = min(int(6 * quality * fs / (np.pi * f0)), x.shape[0] - 1)
        x = sps.filtfilt(b, a, x, axis=0, padlen=padlen)
    return x


def highpass_filter(x: np.ndarray, fs: float, cutoff: float, order: int) -> np.ndarray:
    """Zero-phase Butterworth high-pass."""
    sos = sps.butter(order, cutoff, btype="highpass", fs=fs, output="sos")
    padlen = min(3 * (2 * len(sos) + 1), x.shape[0] - 1)
    return sps.sosfiltfilt(sos, x, axis=0, padlen=padlen)


def resample_ratio(fs: float, target: float) -> tuple[int, int]:
    """(up, down): the rational approximation of ``target / fs`` the resampling uses."""
    ratio = Fraction(target / fs).limit_denominator(1000)
    return ratio.numerator, ratio.denominator


def resample(x: np.ndarray, fs: float, target: float) -> tuple[np.ndarray, float]:
    """Anti-aliased polyphase resampling to (a rational approximation of) ``target`` Hz.
    Returns (resampled, achieved rate)."""
    up, down = resample_ratio(fs, target)
    if up == down:
        return x, fs
    y = sps.resample_poly(x, up, down, axis=0, padtype="symmetric")
    return y, fs * up / down


def bin_average(x: np.ndarray, times: np.ndarray, bin_size: float) -> tuple[np.ndarray, np.ndarray]:
    """Average samples into consecutive bins of ``bin_size`` seconds, the first starting where the
    first sample's span starts (a sample at t_j covers [t_j - p/2, t_j + p/2), p the median sample
    period; docs/science.md, Bin times), so that each bin's time is the centre of the span its
    samples cover (for a whole number of samples per bin: their mean time).
    Only complete bins are kept. Returns (binned (n_bins, C), bin centre times)."""
    sample_period = float(np.median(np.diff(times))) if times.size > 1 else bin_size
    half = sample_period / 2
    binner = Binner(float(times[0]) - half, float(times[-1]) + half, bin_size, x.shape[1])
    binner.add(x, times)
    return binner.result()


class Binner:
    """Averages samples into the bins of one segment, one chunk of samples after another. Bins
    start at ``t0``; a bin is complete if the samples cover it (up to ``t_end``, the end of the
    last sample's span), and only complete bins are kept. A sample belongs to the bin that holds
    its timestamp; bin k is labelled at its centre, ``t0 + (k + 0.5) * bin_size``, computed as a
    reader of the written file rebuilds it (:func:`~nwb_autolfads.data.timebase.bin_centres`).

    For those labels to be the centre of what the samples represent, ``t0`` must be where the
    first sample's span starts: half a sample period before its timestamp (a sample at t_j covers
    [t_j - p/2, t_j + p/2); docs/science.md, Bin times), and ``t_end`` half a period after the
    last one's. Bins starting at the first timestamp itself would be labelled p/2 late."""

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
        return binned, bin_centres(self.t0, self.n_bins, self.bin_size)


def settling_samples(fs: float, cfg: PreprocessConfig, notch_freqs: list[float]) -> int:
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


def notch_gain(fs: float, notches: list[float], quality: float, freq: float) -> float:
    """Amplitude gain at ``freq`` of the zero-phase notches (each applied forward and backward)."""
    gain = 1.0
    for f0 in notches:
        b, a = sps.iirnotch(f0, quality, fs=fs)
        _, h = sps.freqz(b, a, worN=[freq], fs=fs)
        gain *= float(np.abs(h[0])) ** 2
    return gain
