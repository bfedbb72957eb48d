"""What an EMG signal is, found by looking at its samples before anything is filtered.

Raw or already rectified (:func:`looks_rectified`), whether mains hum stands out in its spectrum
and at which frequency and harmonics (:func:`detect_line_hum`), and one pass over all samples,
read chunk by chunk, for non-finite values and each channel's peak (:func:`scan_samples`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from scipy import signal as sps

__all__ = ["DEFAULT_CHUNK_VALUES", "looks_rectified", "LineHum", "detect_line_hum", "line_hum_spectrum", "hum_excerpt",
           "LINE_FREQUENCIES", "HUM_RATIO", "HUM_DRIFT_HZ", "HUM_MAX_HZ", "HUM_EXCERPT_SECONDS", "HUM_WINDOW_SECONDS",
           "SampleScan", "scan_samples", "chunk_bounds", "spread_samples", "FLAT_RUN",
           "STAIRCASE_LEVELS", "TWO_SIGNED_FRACTION", "TWO_SIGNED_DEPTH", "SYMMETRY_LIMIT", "SLOW_FRACTION", "ARTEFACT_MADS",
           "MID_BAND_HZ", "HIGH_BAND_HZ", "RAW_MID", "ENVELOPE_MID", "ENVELOPE_HIGH", "HIGH_SYMMETRY_LIMIT",
           "LOCAL_SKEW_WINDOW", "LOCAL_SKEW_LIMIT", "BLOCK_SECONDS", "COUPLING_LIMIT", "RIPPLE_LIMIT", "STEADY_CV", "SLOW_DOMINANCE", "FAST_SIZE", "HELD_FRACTION", "held_period", "SPLIT_CHANNELS", "SPLIT_FRACTION", "ROLL_OFF_LIMIT",
           "AmbiguousEmg"]

log = logging.getLogger(__name__)

DEFAULT_CHUNK_VALUES = 2**23
"""Values (samples x channels) read and filtered at a time: 64 MB of float64."""


FLAT_RUN = 10
"""Runs of at least this many identical samples (a disconnected or not yet enabled amplifier, a
zero-padded buffer) are left out of the raw/rectified decision."""

STAIRCASE_LEVELS = 5
"""Runs of :data:`FLAT_RUN` or more identical samples at this many values or more are not a dead
amplifier, zero padding or a rail (one or two values each) but a slow signal stored coarsely: a
2 Hz envelope in integer counts (peak 50-1000) lost most of its samples to the runs' removal, and
what was left was judged raw EMG (the series processed as raw without a word)."""

TWO_SIGNED_FRACTION = 0.01
"""A channel is raw EMG about zero when more than this fraction of its samples are negative and
they reach :data:`TWO_SIGNED_DEPTH` of its 99th percentile of magnitude (an envelope's filter
undershoot is far smaller and rarer)."""

TWO_SIGNED_DEPTH = 0.05
"""See :data:`TWO_SIGNED_FRACTION`."""

SLOW_FRACTION = 0.02
"""A channel that swings both ways is an envelope (its baseline or mean subtracted) when, of its
power above 5 Hz, less than this fraction lies above 20 Hz: raw EMG has 0.14 and more even under
movement artefacts with 9 times its power (this share depends on the powers alone, not on the
EMG's spectrum); with 100 times, 0.01-0.05, and it is asked about when what lies above 20 Hz is
shaped like raw EMG's band (:func:`_raw_band_under_slow`)."""

MID_BAND_HZ = 60.0
"""Raw EMG's power peaks at 40-150 Hz (surface EMG's median frequency is 40-120 Hz), above
movement artefacts (under 20 Hz) and most of ECG; an envelope's low-pass leaves little there."""

HIGH_BAND_HZ = 150.0
"""Where a Butterworth envelope (cut-off up to 50 Hz) leaves almost nothing (see
:data:`ENVELOPE_HIGH`)."""

RAW_MID = 0.40
"""A channel that swings both ways, with at least this share of its power above 20 Hz lying above
:data:`MID_BAND_HZ`, is raw EMG. Surface-EMG spectra (f_l 20-60 Hz, f_h 40-120 Hz, band 20-450 Hz;
median frequency 39-96 Hz) give 0.22-0.77, 0.45 and more from a median of 55 Hz on; the synthetic
generator's 0.63-0.91; moving RMS and box envelopes 0.26-0.35, Butterworth ones with a 20-50 Hz
cut-off 0.00-0.09. Between :data:`ENVELOPE_MID` and this the samples cannot tell and the user is
asked (very low-frequency raw EMG, moving-average envelopes with their mean subtracted)."""

ENVELOPE_MID = 0.12
"""At most this share above :data:`MID_BAND_HZ` (see :data:`RAW_MID`), with at most
:data:`ENVELOPE_HIGH` above :data:`HIGH_BAND_HZ`, is an envelope."""

ENVELOPE_HIGH = 0.03
"""See :data:`ENVELOPE_MID` (Butterworth envelopes of 20-50 Hz: 0.000-0.009; surface EMG: 0.02-0.24)."""

HIGH_SYMMETRY_LIMIT = 0.08
"""Raw EMG's part above :data:`MID_BAND_HZ` is symmetric: |Bowley skewness| below this; rectified
EMG's is skewed."""

ARTEFACT_MADS = 8.0
"""Before its fast part is looked at, an excerpt is clipped at this many robust SDs (1.4826 x the
median absolute deviation) about its median: 15 artefacts of 10 ms on an unsigned ADC rang through
the 5 Hz high-pass and made raw EMG look skewed, i.e. rectified."""

SYMMETRY_LIMIT = 0.15
"""Raw EMG's fast part (above 5 Hz) is symmetric: |Bowley skewness (5th, 50th, 95th percentiles)|
below this; rectified EMG's is skewed (0.35 for a rectified normal carrier at a constant level, more
when its level varies)."""

LOCAL_SKEW_WINDOW = 0.025
"""Seconds of the running RMS that :func:`_fast_part` divides the part above 20 Hz by before its
skewness is taken (:data:`LOCAL_SKEW_LIMIT`): the level's changes, which mix skewness across
levels, are taken out."""

LOCAL_SKEW_LIMIT = 0.10
"""Raw EMG's part above 20 Hz, divided by its running RMS, is symmetric: moment skewness -0.06 to
+0.05 over 20 s (flat-band and surface-EMG spectra, mains hum, movement artefacts, ECG of 30 times
its SD, 0.5-10 kHz), more spread in shorter excerpts (the limit adds 3 standard errors). The fast part of a magnitude is skewed the positive way, whatever was
subtracted from it: rectified EMG 0.5-1.0, a Hilbert envelope 0.20-0.57, TKEO 0.4-1.1, rectified
EMG binned at 2-4 ms 0.15-0.61. Above this, a channel that the spectrum calls raw is asked about
(raw EMG whose motor-unit potentials are all lopsided one way, needle EMG with one unit, could be
skewed too)."""

BLOCK_SECONDS = 0.1
"""Blocks in which a channel's level (mean) and fast part's size (RMS above 20 Hz) are measured
(:func:`_blocks`): 5 and 6 periods of 50 and 60 Hz mains, so hum does not move the level."""

COUPLING_LIMIT = 0.5
"""An envelope's ripple grows with its level: over blocks (:data:`BLOCK_SECONDS`), the rank
correlation of level and fast part's size is 0.7-0.99 for rectified EMG and moving RMS/box/
Butterworth envelopes with ripple; for raw EMG on an unsigned ADC under movement artefacts -0.15
to +0.1 (the baseline moves with the artefacts, the EMG's size with the muscle). A channel on one
side of zero with a symmetric fast part in the band above an envelope's and a coupling below this
is asked about (such recordings were taken for envelopes)."""

RIPPLE_LIMIT = 0.7
"""A channel its spectrum calls raw, whose fast part's size follows its level with a rank
correlation of at least this, is asked about: envelopes of short windows (moving RMS or average
of 5-10 ms, a 50 Hz low-pass of rectified EMG) with an offset added or z-scored gave 0.81-0.99 and
were taken for raw (r 0.58-0.88); raw EMG gives -0.13 to +0.08, under ECG of 10-30 times its SD
0.50-0.52 (the heartbeats raise level and size in a few blocks only)."""

STEADY_CV = 0.2
"""A channel its spectrum calls raw whose fast part's size varies over the blocks by less than
this (coefficient of variation) while its level varies by more than :data:`SLOW_DOMINANCE` times
that size is asked about: a noise floor (0.3-3% of the peak) added to an envelope gave 0.05-0.20
(its size 0.02-0.23 of the level's SD) and was taken for raw (r about 0); raw EMG's size follows
the muscle (0.40-1.7 under movement artefacts and ECG; a tonic muscle under movement artefacts of
3 times its SD 0.24-0.27, its size 0.42-0.52 of the level's SD). Raw EMG of one steady
contraction under larger movement artefacts would be asked about too."""

SLOW_DOMINANCE = 1.0 / 0.3
"""See :data:`STEADY_CV`."""

FAST_SIZE = 0.07
"""See :data:`COUPLING_LIMIT`: the RMS of the part above 20 Hz must also be at least this fraction
of the SD of the blocks' levels (raw EMG under movement artefacts of 10 times its SD: 0.13-0.71;
the filter's residue in a low-passed envelope, and the rounding of one stored as integers,
0.001-0.04)."""

ROLL_OFF_LIMIT = 0.04
"""Of the power above :data:`MID_BAND_HZ`, raw EMG has 0.074 or more above :data:`HIGH_BAND_HZ`
(surface EMG of median frequency ~45 Hz, whose spectrum falls as f^-4, at 0.5-4 kHz; the flat
20-450 Hz carrier 0.4-0.8), a 50 Hz low-pass of rectified EMG 0.001-0.07. A channel on one side
of zero that is raw so far (symmetric and fast, or far from zero with a raw-like band) with less
than this is asked about: the envelope of a steady contraction, low-passed at 50 Hz and left as it
is, was taken for raw EMG on an offset in 117 of 216 settings (its level hardly moves, so the
ripple test (:data:`RIPPLE_LIMIT`) cannot see it)."""

HELD_FRACTION = 0.95
"""A channel whose value changes at one phase of every k-th sample (k >= 2) in at least this
fraction of its changes is held, i.e. a signal sampled at rate / k and upsampled by repeating
samples (zero-order hold); it is judged at rate / k (the repeats put the steps' power in every
band: a 250 Hz envelope held at 2 kHz was taken for raw EMG)."""


def _without_flat_runs(x: np.ndarray) -> np.ndarray:
    """``x`` without the runs of :data:`FLAT_RUN` or more identical samples, unless those runs hold
    :data:`STAIRCASE_LEVELS` or more values: then ``x`` is a slow signal stored coarsely (an
    envelope in integer counts), whose runs are its values, and is kept whole."""
    if x.size < FLAT_RUN:
        return x
    change = np.flatnonzero(np.diff(x) != 0) + 1
    starts = np.r_[0, change]
    lengths = np.diff(np.r_[starts, x.size])
    long = lengths >= FLAT_RUN
    if np.unique(x[starts[long]]).size >= STAIRCASE_LEVELS:
        return x
    keep = np.repeat(~long, lengths)
    return x[keep]


def _power_above(y: np.ndarray, fs: float, hz: float = 20.0) -> tuple[float, float]:
    """(power above ``hz``, all power) of ``y`` (:func:`_powers_above`)."""
    above, total = _powers_above(y, fs, (hz,))
    return above[0], total


def _powers_above(y: np.ndarray, fs: float, edges: tuple[float, ...]) -> tuple[list[float], float]:
    """(power above each of ``edges``, all power) of ``y`` from one spectrum, mains lines left out
    (within 1.5 Hz of every multiple of 50 and 60 Hz: strong hum once made raw EMG look slow)."""
    power = np.abs(np.fft.rfft(y)) ** 2
    freqs = np.fft.rfftfreq(y.size, 1.0 / fs)
    mains = np.zeros(freqs.size, bool)
    for line in (50.0, 60.0):
        mains |= (np.abs(freqs - line * np.round(freqs / line)) <= 1.5) & (freqs > 25.0)
    power = np.where(mains, 0.0, power)
    return [float(power[freqs > hz].sum()) for hz in edges], float(power.sum())


def _symmetric_and_fast(x: np.ndarray, fs: float) -> bool:
    """Raw EMG on a steady offset: symmetric about its median (|skewness| < 0.5) with most of its
    variance above 20 Hz (rectified EMG is strongly right-skewed; an envelope is slow)."""
    x = x - np.median(x)
    sd = x.std()
    if sd == 0 or x.size < 64:
        return False
    skew = float(np.mean((x - x.mean()) ** 3) / sd**3)
    high, total = _power_above(x - x.mean(), fs)
    return bool(abs(skew) < 0.5 and high / max(total, 1e-300) > 0.5)


def _far_from_zero(x: np.ndarray) -> bool:
    """The values stay well above zero (1st percentile above half the 1st-99th percentile range):
    not rectified EMG, which comes down to its noise floor whenever the muscle rests."""
    q01, q99 = np.quantile(x, [0.01, 0.99])
    return bool(q01 > 0.5 * (q99 - q01))


@dataclass(frozen=True)
class FastPart:
    """One channel's part above 5 Hz, as :func:`_fast_part` measures it."""

    above_20: float
    """Fraction of its power above 20 Hz (see :data:`SLOW_FRACTION`)."""
    above_mid: float | None
    """Fraction of its power above 20 Hz that lies above :data:`MID_BAND_HZ` (see
    :data:`RAW_MID`); None under 4 x :data:`MID_BAND_HZ`."""
    above_high: float | None
    """Fraction of its power above 20 Hz that lies above :data:`HIGH_BAND_HZ`; None under
    2.5 x :data:`HIGH_BAND_HZ`."""
    skew: float
    """Bowley skewness (5th, 50th, 95th percentiles) of the part above 5 Hz."""
    skew_mid: float | None
    """Bowley skewness of the part above :data:`MID_BAND_HZ`; None with ``above_mid``."""
    local_skew: float | None
    """Moment skewness of the part above 20 Hz divided by its running RMS (:data:`LOCAL_SKEW_LIMIT`);
    None at 80 Hz and less."""
    local_independent: float = 0.0
    """About how many independent samples ``local_skew`` rests on (samples x min(1, 1000 Hz / rate))."""


def _bowley(y: np.ndarray) -> float:
    q05, q50, q95 = np.quantile(y, [0.05, 0.5, 0.95])
    return float((q95 + q05 - 2.0 * q50) / (q95 - q05)) if q95 > q05 else 0.0


def _moment_skew(y: np.ndarray) -> float:
    y = y - y.mean()
    sd = float(y.std())
    return float(np.mean(y**3) / sd**3) if sd > 0 else 0.0


def _locally_scaled(y: np.ndarray, fs: float) -> np.ndarray:
    """``y`` divided by its running RMS over :data:`LOCAL_SKEW_WINDOW` (clipped at 6: a sample
    alone in a quiet window)."""
    width = min(max(int(round(LOCAL_SKEW_WINDOW * fs)), 3), y.size)  # an excerpt shorter than the window
    rms = np.sqrt(np.convolve(y * y, np.ones(width) / width, mode="same"))
    floor = 1e-12 * float(np.abs(y).max())
    return np.clip(y / np.maximum(rms, floor if floor > 0 else 1e-300), -6.0, 6.0)


def _fast_part(pieces: list[np.ndarray], fs: float) -> FastPart | None:
    """One channel's part above 5 Hz, per excerpt (an offset and its wander removed by a zero-phase
    high-pass; samples beyond :data:`ARTEFACT_MADS` robust SDs of the excerpt's median clipped
    first, so that a few large artefacts do not ring through the filter), the shares of its power
    above :data:`MID_BAND_HZ` and :data:`HIGH_BAND_HZ` (mains lines left out), its part above
    :data:`MID_BAND_HZ` and the skewness of its part above 20 Hz in units of its running RMS
    (:class:`FastPart`). None: too little data."""
    sos = sps.butter(2, 5.0, btype="highpass", fs=fs, output="sos")
    mid = fs >= 4 * MID_BAND_HZ
    high = fs >= 2.5 * HIGH_BAND_HZ
    mid_sos = sps.butter(4, MID_BAND_HZ, btype="highpass", fs=fs, output="sos") if mid else None
    local_sos = sps.butter(4, 20.0, btype="highpass", fs=fs, output="sos") if fs > 80.0 else None
    fast, mid_parts, scaled, power = [], [], [], np.zeros(4)
    for x in pieces:
        if x.size < 64 or np.ptp(x) == 0:
            continue
        centre = float(np.median(x))
        spread = ARTEFACT_MADS * 1.4826 * float(np.median(np.abs(x - centre)))
        x = np.clip(x, centre - spread, centre + spread) - centre if spread > 0 else x - centre
        y = sps.sosfiltfilt(sos, x) if x.size > 3 * 2 * 6 else x - x.mean()
        fast.append(y)
        (above_20, above_mid, above_high), total = _powers_above(y, fs, (20.0, MID_BAND_HZ, HIGH_BAND_HZ))
        power += (above_20, total, above_mid if mid else 0.0, above_high if high else 0.0)
        if mid and x.size > 3 * 2 * 12:
            mid_parts.append(sps.sosfiltfilt(mid_sos, x))
        if local_sos is not None and x.size > 3 * 2 * 12:
            scaled.append(_locally_scaled(sps.sosfiltfilt(local_sos, x), fs))
    if not fast or power[1] <= 0:
        return None
    mid = mid and power[0] > 0 and bool(mid_parts)
    return FastPart(above_20=power[0] / power[1], above_mid=power[2] / power[0] if mid else None,
                    above_high=power[3] / power[0] if mid and high else None, skew=_bowley(np.concatenate(fast)),
                    skew_mid=_bowley(np.concatenate(mid_parts)) if mid else None,
                    local_skew=_moment_skew(np.concatenate(scaled)) if scaled else None,
                    local_independent=sum(v.size for v in scaled) * min(1.0, 1000.0 / fs))


def _lopsided(part: FastPart, fs: float) -> bool:
    """The fast part is skewed the way a magnitude's is: by more than :data:`LOCAL_SKEW_LIMIT` plus
    3 standard errors of a skewness (sqrt(6 / n) for n independent samples; raw EMG's band holds
    about 1000 a second: measured SD 0.03-0.19 for 0.2-5 s of raw EMG at 1-10 kHz); judged from
    4 x :data:`MID_BAND_HZ` on only, where the spectrum can say raw (slower series are refused or
    warned about as raw EMG that cannot hold its band); under 500 Hz, where raw EMG is warned
    about, without the standard errors."""
    if part.above_mid is None or part.local_skew is None:
        return False
    if fs < 500.0:  # raw EMG cannot hold its band here (warned about): no allowance for short excerpts
        return part.local_skew > LOCAL_SKEW_LIMIT
    return part.local_skew > LOCAL_SKEW_LIMIT + 3.0 * np.sqrt(6.0 / max(part.local_independent, 1.0))


def held_period(pieces: list[np.ndarray]) -> int:
    """k >= 2 when the samples change only at one phase of every k-th sample (zero-order hold from
    a rate k times lower: :data:`HELD_FRACTION`), else 1. ``pieces``: one channel's excerpts."""
    steps = [np.flatnonzero(np.diff(p) != 0) for p in pieces if p.size > 64]
    changes = sum(s.size for s in steps)
    size = sum(p.size - 1 for p in pieces if p.size > 64)
    if changes < 16 or changes > size / 2:
        return 1
    gaps = np.concatenate([np.diff(s) for s in steps if s.size > 1])
    if gaps.size == 0:
        return 1
    k = int(np.bincount(gaps).argmax())
    if k < 2 or np.mean(gaps % k == 0) < HELD_FRACTION:
        return 1
    return k


def _unheld(pieces: list[np.ndarray], k: int) -> list[np.ndarray]:
    """Each excerpt's samples at the held rate: one per hold, from each excerpt's own phase."""
    out = []
    for p in pieces:
        steps = np.flatnonzero(np.diff(p) != 0) + 1
        phase = int(np.bincount(steps % k, minlength=k).argmax()) if steps.size else 0
        out.append(p[phase::k])
    return out


def _grid_step(x: np.ndarray) -> float:
    """The smallest step between the values ``x`` takes (an ADC's count, or the resolution an
    envelope was stored at); 0 for fewer than two values."""
    steps = np.diff(np.unique(x))
    return float(steps.min()) if steps.size else 0.0


@dataclass(frozen=True)
class Blocks:
    """One channel's excerpts in blocks of :data:`BLOCK_SECONDS`: each block's mean (its level)
    and the RMS of its part above 20 Hz (its fast part's size)."""

    coupling: float | None
    """Rank (Spearman) correlation of level and size over the blocks; None when either is constant."""
    size_cv: float
    """Coefficient of variation of the size over the blocks."""
    fast_rms: float
    """RMS of the part above 20 Hz over all blocks."""
    level_sd: float
    """SD of the blocks' levels."""


def _blocks(pieces: list[np.ndarray], fs: float) -> Blocks | None:
    """:class:`Blocks` of one channel's excerpts; None: fewer than 16 blocks."""
    from scipy.stats import spearmanr

    sos = sps.butter(4, 20.0, btype="highpass", fs=fs, output="sos")
    block = max(int(BLOCK_SECONDS * fs), 4)
    levels, sizes = [], []
    for x in pieces:
        n = x.size // block
        if n < 2 or x.size <= 3 * 2 * 12:
            continue
        y = sps.sosfiltfilt(sos, x - np.median(x))
        levels.append(x[: n * block].reshape(n, block).mean(1))
        sizes.append(np.sqrt((y[: n * block] ** 2).reshape(n, block).mean(1)))
    if sum(v.size for v in levels) < 16:
        return None
    level, size = np.concatenate(levels), np.concatenate(sizes)
    mean_size = float(size.mean())
    constant = np.ptp(level) == 0 or np.ptp(size) == 0
    return Blocks(coupling=None if constant else float(spearmanr(level, size)[0]),
                  size_cv=float(size.std() / mean_size) if mean_size > 0 else 0.0,
                  fast_rms=float(np.sqrt(np.mean(size**2))), level_sd=float(level.std()))


def _envelope_like_blocks(pieces: list[np.ndarray], fs: float) -> str | None:
    """For a channel its spectrum calls raw: ``"ripple"`` when its fast part's size follows its
    level (:data:`RIPPLE_LIMIT`: a short-window envelope), ``"floor"`` when that size is steady
    (:data:`STEADY_CV`) under a level that moves more (a noise floor added to an envelope), else
    None."""
    b = _blocks(pieces, fs)
    if b is None:
        return None
    if b.coupling is not None and b.coupling >= RIPPLE_LIMIT:
        return "ripple"
    if b.size_cv < STEADY_CV and SLOW_DOMINANCE * b.fast_rms < b.level_sd:
        return "floor"
    return None


def _raw_band_under_slow(part: FastPart) -> bool:
    """A slow channel whose little power above 20 Hz is shaped like raw EMG's band: mostly above
    :data:`MID_BAND_HZ` (:data:`RAW_MID`), symmetric there, not falling off like a filter's stopband
    (twice :data:`ROLL_OFF_LIMIT`): raw EMG under movement artefacts of 10 times its SD or more."""
    return (part.above_mid is not None and part.above_mid >= RAW_MID and abs(part.skew_mid) < HIGH_SYMMETRY_LIMIT
            and part.above_high is not None and part.above_high >= 2 * ROLL_OFF_LIMIT * part.above_mid)


def _rolls_off(part: FastPart | None) -> bool:
    """The part above :data:`MID_BAND_HZ` falls off like a low-pass filter's stopband
    (:data:`ROLL_OFF_LIMIT`)."""
    return (part is not None and part.above_mid is not None and part.above_high is not None and part.above_mid > 0
            and part.above_high / part.above_mid < ROLL_OFF_LIMIT)


def _one_signed_verdict(x: np.ndarray, pieces: list[np.ndarray], fs: float) -> bool | str:
    """Whether one channel's excerpts that stay on one side of zero are raw EMG on an offset
    (True), an envelope (False), or cannot be told (``"skew"``, ``"offset"``).

    Raw when symmetric and fast (:func:`_symmetric_and_fast`), or when far from zero
    (:func:`_far_from_zero`) with a share above :data:`MID_BAND_HZ` like raw EMG's
    (:data:`RAW_MID`) that is symmetric (:data:`HIGH_SYMMETRY_LIMIT`; movement artefacts and most
    of ECG do not reach it), or with most power above 5 Hz lying above 20 Hz, symmetric
    (:data:`SYMMETRY_LIMIT`): an offset that wanders, movement artefacts or ECG on an unsigned ADC.
    ``"skew"``: raw so far, yet its fast part is skewed like a magnitude's
    (:data:`LOCAL_SKEW_LIMIT`: rectified EMG with an offset added?). ``"offset"``: an envelope so
    far, yet its part above :data:`MID_BAND_HZ` is symmetric, its share more than an envelope's
    (:data:`ENVELOPE_MID`), its size more than twice the values' step and :data:`FAST_SIZE` of the
    level's changes (not the residue of a low-pass, nor the rounding of an envelope stored as
    integers) and not following its level (:data:`COUPLING_LIMIT`): raw EMG on an unsigned ADC
    under movement artefacts large enough to hide the rest."""
    part = _fast_part(pieces, fs)
    if _symmetric_and_fast(x, fs):
        return _envelope_like_blocks(pieces, fs) or ("rolloff" if _rolls_off(part) else True)
    if part is None:
        return False
    raw_like = ((part.above_mid is not None and part.above_mid >= RAW_MID and abs(part.skew_mid) < HIGH_SYMMETRY_LIMIT)
                or (part.above_20 > 0.5 and abs(part.skew) < SYMMETRY_LIMIT))
    if raw_like and _far_from_zero(x):
        if _lopsided(part, fs):
            return "skew"
        return _envelope_like_blocks(pieces, fs) or ("rolloff" if _rolls_off(part) else True)
    if (part.above_mid is not None and part.above_mid > ENVELOPE_MID and abs(part.skew_mid) < HIGH_SYMMETRY_LIMIT
            and not _lopsided(part, fs)):
        b = _blocks(pieces, fs)
        if (b is not None and b.coupling is not None and b.coupling < COUPLING_LIMIT
                and b.fast_rms > 2.0 * _grid_step(x) and b.fast_rms >= FAST_SIZE * b.level_sd):
            return "offset"
    return False


def _two_signed_is_envelope(pieces: list[np.ndarray], fs: float) -> bool | str:
    """Whether one channel's excerpts that swing both ways are an envelope with its baseline or mean
    subtracted (True), raw EMG (False), or cannot be told apart (the reason, ``"band"`` or
    ``"skew"``): slow (:data:`SLOW_FRACTION`) is an envelope; else, from 4 x :data:`MID_BAND_HZ`
    on, a share above :data:`MID_BAND_HZ` of :data:`RAW_MID` or more is raw, one of
    :data:`ENVELOPE_MID` or less with :data:`ENVELOPE_HIGH` or less above :data:`HIGH_BAND_HZ` is
    an envelope, anything between is ``"band"``; under 4 x :data:`MID_BAND_HZ`, raw. What would
    be raw but has a fast part skewed like a magnitude's (:data:`LOCAL_SKEW_LIMIT`: a Hilbert or
    TKEO envelope, finely binned rectified EMG, with its mean subtracted) is ``"skew"``."""
    part = _fast_part(pieces, fs)
    if part is None:
        return False
    if part.above_20 < SLOW_FRACTION:
        return "buried" if _raw_band_under_slow(part) else True
    if part.above_mid is not None and part.above_mid < RAW_MID:
        if part.above_mid <= ENVELOPE_MID and (part.above_high is None or part.above_high <= ENVELOPE_HIGH):
            return True
        return "band"
    if _lopsided(part, fs):
        return "skew"
    return _envelope_like_blocks(pieces, fs) or False


class AmbiguousEmg(ValueError):
    """The samples do not tell raw EMG from an envelope (:func:`looks_rectified`); ``channels``:
    the channel indices, ``evidence``: what was measured, in words; ``mixed``: the channels split
    into kinds (leaving some out is the fix, not saying which kind all are)."""

    def __init__(self, channels: list[int], evidence: str, mixed: bool = False):
        super().__init__(evidence)
        self.channels, self.evidence, self.mixed = channels, evidence, mixed


SPLIT_CHANNELS = 2
"""Channels that look like the other kind (raw among envelopes, or the reverse) in this number or
more, and :data:`SPLIT_FRACTION` of those judged or more, or as many as the rest, make the
series' processing a question for the user (:func:`looks_rectified`): the channels of one series
are processed alike, so a series of half raw EMG and half envelopes was processed wrongly for one
half (a tie went to "envelope"). Fewer are named in a warning: one channel of raw EMG under large
movement artefacts, or of needle EMG on an unsigned ADC, can look like an envelope."""

SPLIT_FRACTION = 0.25
"""See :data:`SPLIT_CHANNELS`."""


def looks_rectified(values, fs: float | None = None, names: list[str] | None = None) -> bool:
    """Whether EMG looks already rectified / enveloped rather than raw.

    Parameters
    ----------
    values : (n_samples, C) array, or a list of such excerpts (e.g. :func:`spread_samples`; each
        filtered on its own, never across another).
    fs : sampling rate (Hz); None or 80 Hz and less: only the sign test below.
    names : the channels' names, for the messages (default: their indices).

    Returns
    -------
    bool
        True when most channels (that are not flat) look rectified/enveloped; the channels that
        look like the other kind, fewer than :data:`SPLIT_CHANNELS`, are named in a warning.

    Raises
    ------
    AmbiguousEmg
        A channel has a fast part skewed like a magnitude's where its spectrum says raw
        (:data:`LOCAL_SKEW_LIMIT`), or the channels whose high band lies between an envelope's and
        raw EMG's (:func:`_two_signed_is_envelope`) are as many as the margin between the others'
        votes, so they could decide, or the channels judged split into raw and envelopes
        (:data:`SPLIT_CHANNELS`): the caller asks the user to say which.

    Notes
    -----
    Per channel, runs of :data:`FLAT_RUN` or more identical samples left out (a disconnected
    amplifier, zero padding: an all-zero lead-in once made raw EMG "rectified"), a channel held for
    k samples at a time judged at rate / k (:func:`held_period`; held from 80 Hz or less: an
    envelope), and large sparse artefacts clipped (:data:`ARTEFACT_MADS`):

    - when it swings both ways (more than 1% of samples negative, reaching 5% of its 99th
      percentile of magnitude): **raw** unless it is an envelope with its baseline or mean
      subtracted (:func:`_two_signed_is_envelope`: slow, or almost no power above
      :data:`HIGH_BAND_HZ`; such envelopes, 2-63% negative, were rectified again: r with the
      truth 0.02-0.7); asked about when slow, yet what little lies above 20 Hz is shaped like raw
      EMG's band (:func:`_raw_band_under_slow`: raw EMG under movement artefacts of 10-30 times
      its SD). Raw EMG under movement artefacts with up to 100 times its power is still
      raw: they do not reach the high band. An envelope's few tiny undershoots below zero (a
      zero-phase low-pass after rectifying leaves them) are not "both ways": a single -1e-9 once
      made an envelope "raw". Asked about when its fast part is skewed like a magnitude's
      (:data:`LOCAL_SKEW_LIMIT`: Hilbert and Teager-Kaiser envelopes and rectified EMG binned at
      2-4 ms, z-scored, were taken for raw, r 0.4-0.9);
    - else **raw** when it is symmetric and fast, or stays far above zero with a high band like
      raw EMG's (:func:`_one_signed_verdict`): an offset that wanders, movement artefacts or ECG on
      an unsigned ADC were once taken for an envelope; asked about when such a channel's fast part
      is skewed like a magnitude's (rectified EMG with a large offset added), or when its high band
      is symmetric and between an envelope's and raw EMG's and its size does not follow its level
      (:data:`COUPLING_LIMIT`: raw EMG on an unsigned ADC under large movement artefacts), or when
      its power above :data:`MID_BAND_HZ` falls off like a low-pass filter's
      (:data:`ROLL_OFF_LIMIT`: the envelope of a steady contraction, low-passed at 50 Hz).
      Rectified EMG with its mean subtracted, binned at 10 ms and coarser, can be taken for raw:
      the log's "detected ..." line says which, and ``--emg-raw`` / ``--emg-preprocessed``
      override;
    - else **rectified** (non-negative and skewed, or slow: an envelope).
    """
    pieces = [np.asarray(v, dtype=float) for v in (values if isinstance(values, list) else [values])]
    pieces = [p[np.all(np.isfinite(p), axis=1)] for p in pieces if np.ndim(p) == 2 and len(p)]
    if not pieces:
        return True
    judged, unsure = {}, {reason: [] for reason in _UNSURE}
    for c in range(pieces[0].shape[1]):
        verdict = _channel_verdict([_without_flat_runs(p[:, c]) for p in pieces], fs)
        if isinstance(verdict, str):
            unsure[verdict].append(c)
        elif verdict is not None:
            judged[c] = verdict
    votes = list(judged.values())
    asked = sorted(sum(unsure.values(), []))
    # A channel skewed like a magnitude puts the whole series' processing in question (the channels
    # of one series are processed alike; the Hilbert envelope of a muscle at rest under mains hum is
    # not skewed); a channel of the band between is asked about when it could decide the vote.
    decisive = unsure["skew"] + unsure["ripple"] + unsure["floor"] + unsure["rolloff"]
    if decisive or (asked and abs(2 * sum(votes) - len(votes)) <= len(asked)):
        raise AmbiguousEmg(asked, f"of {len(asked) + len(votes)} channel(s), " + "; ".join(_unsure_reasons(unsure)))
    if not votes:
        return True
    envelope = bool(np.mean(votes) > 0.5)
    _check_split(judged, unsure, envelope, names)
    return envelope


def _channel_verdict(parts: list[np.ndarray], fs: float | None) -> bool | str | None:
    """One channel's excerpts (flat runs left out): True an envelope, False raw EMG, a reason
    (a key of :func:`_unsure_reasons`) when it cannot be told, None when it is flat."""
    x = np.concatenate(parts)
    if x.size < 2 or np.ptp(x) == 0:
        return None
    rate = fs
    if fs is not None:
        k = held_period(parts)
        if k > 1:
            parts, rate = _unheld(parts, k), fs / k
            if rate <= 80.0:  # held from a rate that cannot hold raw EMG at all: an envelope
                return True
    fast = rate is not None and rate > 80.0
    depth = float(np.quantile(np.abs(x), 0.99))
    if np.mean(x < 0) > TWO_SIGNED_FRACTION and float(x.min()) < -TWO_SIGNED_DEPTH * depth:
        return _two_signed_is_envelope(parts, rate) if fast else False
    raw = _one_signed_verdict(np.concatenate(parts), parts, rate) if fast else False
    return raw if isinstance(raw, str) else not raw


_UNSURE = {
    "band": "swing both ways, yet the share of their power above 20 Hz that lies above "
            f"{MID_BAND_HZ:g} Hz is between an envelope's and raw EMG's ({ENVELOPE_MID:g}-{RAW_MID:g}): an envelope "
            "with its mean subtracted, or raw EMG under large slow artefacts?",
    "offset": f"stay on one side of zero, yet their part above {MID_BAND_HZ:g} Hz is symmetric, between an "
              "envelope's and raw EMG's in share, and its size does not follow their level as an envelope's ripple "
              "does: raw EMG on an unsigned ADC under large movement artefacts?",
    "ripple": "look like raw EMG in their spectrum, yet the size of their fast part follows their level (rank "
              f"correlation {RIPPLE_LIMIT:g} or more) as an envelope's ripple does: a short-window envelope (a moving "
              "RMS or average of 5-10 ms, a low-pass of 50 Hz or more) with an offset added or its mean taken off?",
    "floor": "look like raw EMG in their spectrum, yet their fast part has a steady size under a level that moves "
             "more: a noise floor added to an envelope, or raw EMG of one steady contraction under movement "
             "artefacts?",
    "buried": f"are slow like an envelope with its mean taken off (under {SLOW_FRACTION:g} of their power above 5 Hz "
              f"lies above 20 Hz), yet what lies above 20 Hz is shaped like raw EMG's band (mostly above "
              f"{MID_BAND_HZ:g} Hz, symmetric, reaching {HIGH_BAND_HZ:g} Hz): raw EMG under movement artefacts ten or "
              "more times its size?",
    "rolloff": f"stay on one side of zero and look like raw EMG on an offset, yet their power above {MID_BAND_HZ:g} Hz "
               f"falls off like a low-pass filter's (less than {ROLL_OFF_LIMIT:g} of it above {HIGH_BAND_HZ:g} Hz; raw "
               "EMG has 0.07 or more): the envelope of a steady contraction, low-passed at 50 Hz or so, or raw EMG "
               "behind a steep anti-alias filter?",
    "skew": f"have power above {MID_BAND_HZ:g} Hz like raw EMG, yet their fast part is skewed like a magnitude's "
            f"(skewness above {LOCAL_SKEW_LIMIT:g} and 3 standard errors; raw surface EMG is symmetric): a Hilbert or "
            "Teager-Kaiser envelope, or finely binned rectified EMG, with its mean or an offset taken off or added; or "
            "needle EMG with lopsided motor-unit potentials?",
}
"""Why a channel cannot be told (the reasons :func:`_channel_verdict` gives), in words, in the
order the message lists them."""


def _unsure_reasons(unsure: dict[str, list[int]]) -> list[str]:
    """What was measured on the channels that cannot be told (``unsure``: reason -> indices), in words."""
    return [f"{len(unsure[reason])} channel(s) {text}" for reason, text in _UNSURE.items() if unsure[reason]]


def _check_split(judged: dict[int, bool], unsure: dict[str, list[int]], envelope: bool,
                 names: list[str] | None) -> None:
    """The channels that are not of the series' answer ``envelope``: those ``judged`` (index: an
    envelope?) of the other kind and those ``unsure`` (reason: indices), which cannot be told.
    :class:`AmbiguousEmg` when they are many (:data:`SPLIT_CHANNELS`), else a warning naming them.
    (Channels that could not be told once dropped out of the count: 9 raw channels and 3 moving-RMS
    envelopes z-scored, whose band is between, went through as raw without a word.)"""
    others = [c for c, v in judged.items() if v != envelope]
    untold = sorted(sum(unsure.values(), []))
    odd = sorted(others + untold)
    if not odd:
        return
    name = (lambda c: names[c]) if names is not None else (lambda c: f"channel {c}")
    listed = ", ".join(name(c) for c in odd[:20]) + (f" and {len(odd) - 20} more" if len(odd) > 20 else "")
    kind, rest = ("raw EMG", "envelopes") if envelope else ("an envelope", "raw EMG")
    n = len(judged) + len(untold)
    what = " and ".join(([f"{len(others)} look{'s' if len(others) == 1 else ''} like {kind}"] if others else [])
                        + ([f"{len(untold)} cannot be told"] if untold else []))
    if 2 * len(odd) >= n or len(odd) >= max(SPLIT_CHANNELS, SPLIT_FRACTION * n):
        raise AmbiguousEmg(odd, f"{len(odd)} of {n} channel(s) ({listed}) are not like the other {n - len(odd)} "
                                f"({rest}): {what}. The channels of one series are processed alike: two kinds of "
                                "signal in one series? Leave one kind out with the setting data.channel_names"
                           + ("; " + "; ".join(_unsure_reasons(unsure)) if untold else ""), mixed=True)
    log.warning("%d of %d EMG channel(s) (%s) are not like the other %d (%s): %s. All are processed as %s (the "
                "channels of one series are processed alike). If they are another kind of signal, leave them out "
                "with the setting data.channel_names; if a heavy artefact misleads the check, ignore this",
                len(odd), n, listed, n - len(odd), rest, what, rest)


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
"""Seconds of raw EMG (in up to 4 excerpts spread over the recording) the detection reads."""

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


def line_hum_spectrum(segments: list[np.ndarray], fs: float) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Welch power spectrum (Hann, 50% overlap) of raw EMG ``segments`` (each (n_i, C): a
    segment or an excerpt of one, :func:`hum_excerpt`) for finding line hum. The Welch window is
    :data:`HUM_WINDOW_SECONDS` long (at most 2**15 samples, at most a third of the longest
    segment). Each window's spectrum is divided by its median power (per channel) before the
    windows are averaged: EMG's loudness changes with muscle activity, and unnormalised bursts
    would leave few effective averages and spurious peaks. Returns (freqs, power (n_freqs, C)
    in units of the median, resolution Hz), or ``None`` if the segments are too short for a
    3 Hz resolution."""
    longest = max((p.shape[0] for p in segments), default=0)
    nper = int(min(round(HUM_WINDOW_SECONDS * fs), 2**15, longest // 3))
    if nper < fs / 3.0 or nper < 16:
        return None
    total, weight = None, 0
    for p in segments:
        if p.shape[0] < nper:
            continue
        freqs, _, spec = sps.spectrogram(p, fs=fs, window="hann", nperseg=nper, noverlap=nper // 2, axis=0)
        level = np.median(spec, axis=0, keepdims=True)  # (1, C, n_segments)
        spec = np.where(level > 0, spec / np.where(level > 0, level, 1.0), 0.0)
        total = spec.sum(axis=2) if total is None else total + spec.sum(axis=2)
        weight += spec.shape[2]
    return freqs, total / weight, fs / nper


def detect_line_hum(segments: list[np.ndarray], fs: float, channel_names: list[str] | None = None) -> LineHum:
    """Find mains hum in raw EMG: a narrow peak near 50 or 60 Hz (or at their 2nd/3rd harmonic)
    at least :data:`HUM_RATIO` x above its neighbourhood on some channel, in the Welch spectrum
    of ``segments`` (each (n_i, C), a segment or an excerpt of one, sampled at ``fs`` Hz). The fundamental is measured
    (parabolic peak interpolation, to 0.01 Hz; mains can be off nominal) and the harmonics up to
    :data:`HUM_MAX_HZ` that stand out at multiples of it are listed.

    Returns a :class:`LineHum` (``frequency=None`` if no hum was found or none could be checked:
    then ``reason`` says why)."""
    n_ch = segments[0].shape[1] if segments else 0
    names = list(channel_names) if channel_names is not None else [str(c) for c in range(n_ch)]
    seconds = sum(p.shape[0] for p in segments) / fs
    spectrum = line_hum_spectrum(segments, fs)
    if spectrum is None:
        return LineHum(None, None, (), {}, (), seconds, 0.0,
                       f"the longest gap-free segment is too short ({max((p.shape[0] for p in segments), default=0) / fs:.3g} s;"
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


def hum_excerpt(values, segments: list[slice], dead: np.ndarray, fs: float) -> list[np.ndarray]:
    """Raw samples of the live channels for the line-hum spectrum: at most
    :data:`HUM_EXCERPT_SECONDS` and about 2**23 values (64 MB) in all - the whole recording if it
    is that short, else excerpts (4 where they can be two Welch windows long) spread evenly
    over it, each inside one segment. Read at most 2**16 rows at a time."""
    live = np.flatnonzero(~dead)
    lengths = np.array([s.stop - s.start for s in segments])
    total = int(lengths.sum())
    window = int(min(round(HUM_WINDOW_SECONDS * fs), 2**15))
    budget = int(min(HUM_EXCERPT_SECONDS * fs, max(DEFAULT_CHUNK_VALUES // max(1, live.size), 3 * window)))
    if total <= budget:
        picks = [(s.start, s.stop) for s in segments]
    else:
        excerpt = min(budget, max(budget // 4, 2 * window))
        picks = _spread_picks(segments, budget // excerpt, excerpt)
    out = []
    for a, b in picks:
        x = np.concatenate([np.asarray(values[a + c:a + d], dtype=float) for c, d in chunk_bounds(b - a, 2**16)])
        out.append(x[:, live])
    return out


def _spread_picks(segments: list[slice], count: int, size: int) -> list[tuple[int, int]]:
    """``count`` (start, stop) excerpts of up to ``size`` samples centred evenly over the samples of
    ``segments`` (counted as if back to back), each inside one segment."""
    lengths = np.array([s.stop - s.start for s in segments])
    total = int(lengths.sum())
    starts = np.cumsum(lengths) - lengths
    picks = []
    for i in range(count):
        centre = int((i + 0.5) * total / count)
        j = int(np.searchsorted(starts, centre, side="right") - 1)
        a = segments[j].start + max(0, min(centre - int(starts[j]) - size // 2, int(lengths[j]) - size))
        picks.append((a, min(segments[j].stop, a + size)))
    return picks


@dataclass
class SampleScan:
    """What one pass over the raw samples finds (read chunk by chunk)."""

    any_finite: np.ndarray  # (C,) whether the channel has a finite sample
    bad_rows: np.ndarray  # indices of samples with a non-finite value in some channel
    bad_masks: np.ndarray  # (len(bad_rows), C) which channels are non-finite there
    peak: np.ndarray  # (C,) largest |finite value|
    at_peak: np.ndarray  # (C,) samples at the largest value if above 0, plus those at the smallest if below 0 (the rails)
    at_high: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    """(C,) samples at the channel's largest value (within a relative 1e-9)."""
    at_low: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    """(C,) samples at its smallest value: with :attr:`at_high`, the samples at both rails of an
    amplifier or ADC that clips (an unsigned ADC's lower rail is 0)."""
    flat: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.int64))
    """(k, 3) channel, start, stop (sample indices) of the runs of identical samples at least
    ``min_flat`` long (:func:`scan_samples`; none when it was not given)."""


def chunk_bounds(n: int, size: int):
    for a in range(0, n, size):
        yield a, min(n, a + size)


def _flat_runs(x: np.ndarray, a: int, last: np.ndarray, open_at: np.ndarray, min_flat: int, out: list) -> None:
    """Runs of identical samples in the chunk ``x`` (rows ``a:``) per channel, continuing those open
    at the chunk's start (``last`` value, ``open_at`` start; updated): runs of ``min_flat`` or more
    samples that end in this chunk go to ``out`` as (channel, start, stop)."""
    n = x.shape[0]
    for c in range(x.shape[1]):
        xc = x[:, c]
        edges = np.flatnonzero(xc[1:] != xc[:-1]) + 1 + a
        first = open_at[c] if (a > 0 and xc[0] == last[c]) else a
        if a > 0 and first == a and a - open_at[c] >= min_flat:
            out.append((c, int(open_at[c]), a))
        starts = np.r_[first, edges]
        stops = np.r_[edges, a + n]
        long = np.flatnonzero(stops[:-1] - starts[:-1] >= min_flat)
        out.extend((c, int(starts[i]), int(stops[i])) for i in long)
        open_at[c], last[c] = starts[-1], xc[-1]


def _running_top(top: np.ndarray, count: np.ndarray, new_top: np.ndarray, new_count: np.ndarray) -> None:
    """Fold one chunk's per-channel largest value and its count (within a relative 1e-9) into the
    running ones (in place)."""
    tol = 1e-9 * np.maximum(np.where(np.isfinite(top), np.abs(top), 0.0), np.where(np.isfinite(new_top), np.abs(new_top), 0.0))
    with np.errstate(invalid="ignore"):  # -inf - -inf: a channel with no finite value yet
        higher, same = new_top > top + tol, np.abs(new_top - top) <= tol
    count[:] = np.where(higher, new_count, np.where(same, count + new_count, count))
    top[:] = np.where(higher, new_top, top)


def scan_samples(values, chunk: int, bar=None, min_flat: int | None = None) -> SampleScan:
    """One pass over ``values`` (n, C), ``chunk`` rows at a time: non-finite samples, each channel's
    peak, how often it sits at its largest and smallest values (both rails of a clipping amplifier
    or ADC: 0.9% at each was once not called saturated), and (with ``min_flat``) the runs of at
    least ``min_flat`` identical samples per channel (:attr:`SampleScan.flat`)."""
    n, n_ch = values.shape
    any_finite = np.zeros(n_ch, bool)
    rows, masks = [], []
    high, at_high = np.full(n_ch, -np.inf), np.zeros(n_ch, np.int64)
    low, at_low = np.full(n_ch, -np.inf), np.zeros(n_ch, np.int64)  # of -x: the smallest values
    flat: list = []
    last, open_at = np.full(n_ch, np.nan), np.zeros(n_ch, np.int64)
    for a, b in chunk_bounds(n, chunk):
        x = np.asarray(values[a:b], dtype=float)
        if min_flat:
            _flat_runs(x, a, last, open_at, int(min_flat), flat)
        finite = np.isfinite(x)
        any_finite |= finite.any(axis=0)
        bad = np.flatnonzero(~finite.all(axis=1))
        if bad.size:
            rows.append(bad + a)
            masks.append(~finite[bad])
        for signed, top, at_top in ((x, high, at_high), (-x, low, at_low)):
            v = np.where(finite, signed, -np.inf)
            chunk_top = v.max(axis=0, initial=-np.inf)
            tol = 1e-9 * np.where(np.isfinite(chunk_top), np.abs(chunk_top), 0.0)
            _running_top(top, at_top, chunk_top, np.sum(np.isfinite(v) & (v >= (chunk_top - tol)[None, :]), axis=0))
        if bar is not None:
            bar.update(b - a)
    if min_flat and n:
        for c in range(n_ch):  # the runs still open at the end
            if n - open_at[c] >= min_flat:
                flat.append((c, int(open_at[c]), n))
    peak = np.maximum(np.where(np.isfinite(high), np.abs(high), 0.0), np.where(np.isfinite(low), np.abs(low), 0.0))
    at_peak = np.where(high > 0, at_high, 0) + np.where(low > 0, at_low, 0)  # low > 0: the smallest value below 0
    return SampleScan(any_finite, np.concatenate(rows) if rows else np.zeros(0, np.int64),
                      np.concatenate(masks) if masks else np.zeros((0, n_ch), bool), peak, at_peak, at_high,
                      at_low, np.asarray(flat, dtype=np.int64).reshape(-1, 3))


def spread_samples(values, segments: list[slice], dead: np.ndarray, n: int = 2**16,
                   pieces: int = 8) -> list[np.ndarray]:
    """About ``n`` usable samples in up to ``pieces`` excerpts spread evenly over the segments
    (for telling raw from rectified EMG: the first samples alone can be a zero-filled lead-in or
    an amplifier not yet on). Dead channels read as 0; each excerpt lies inside one segment."""
    lengths = np.array([s.stop - s.start for s in segments])
    total = int(lengths.sum())
    if total <= n:
        picks = [(s.start, s.stop) for s in segments]
    else:
        picks = _spread_picks(segments, pieces, max(n // pieces, 1))
    out = []
    for a, b in picks:
        x = np.asarray(values[a:b], dtype=float)
        out.append(np.where(dead[None, :], 0.0, x))  # a new array: the caller's values are never changed
    return out
