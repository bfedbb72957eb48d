"""The time base of a recording as real files hold it: sampling rate, gaps, and the true time
of every sample.

Timestamps in real files are not an exact ``t0 + i / rate``: they can be rounded to float32
(late in a session the float32 spacing is a sizeable part of a sample period: 0.12 ms at
1500 s, 0.49 ms at 5000 s, 2 ms at 20000 s, so consecutive steps alternate or repeat),
jittered (software-stamped acquisition clocks), slowly drifting against the master clock, and
interrupted by real gaps. :func:`analyse_timestamps` estimates the rate from whole segments
(gap-free stretches of samples; least squares, never the median step), measures the
timestamps' resolution and jitter, and calls a step a gap only when it is clearly larger than
one period plus that resolution and jitter (and the later samples stay shifted, so one late
timestamp is not a gap). :class:`Clock` gives the time of any (fractional) sample index of a
segment from block means of its timestamps, so quantisation and jitter average out while slow
drift is followed: bins built on it sit at their true times over hours.

:func:`check_rate` refuses rates no EMG recording has (and names the likely unit mistake).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nwb_autolfads.errors import SignalError

__all__ = ["TimeBase", "analyse_timestamps", "regular_time_base", "Clock", "check_rate", "regular_times", "bin_centres",
           "stored_rate", "BIN_SIZE_RTOL", "same_bin_size"]

_GAP_SIGMAS = 8.0
"""A gap must exceed gap_factor x the period + the resolution + this many jitter SDs of a step."""
_SHIFT_WINDOW = 16
"""Samples on each side of a candidate gap whose median offset must shift by the gap."""


@dataclass(frozen=True)
class TimeBase:
    """What the timestamps (or ``starting_time`` + ``rate``) of a recording say.

    Attributes
    ----------
    rate : float
        Sampling rate in Hz: the least-squares slope over the segments.
    segments : list of slice
        The segments: gap-free stretches of samples.
    resolution : float
        Seconds; the largest quantisation step of the timestamps (the float32 spacing at their
        largest magnitude when they are float32 values, a common step of repeated values, else
        the float64 spacing).
    jitter : float
        Seconds; robust standard deviation of one timestamp around a regular clock (0 when exact).
    float32 : bool
        The timestamps are float32 values (stored as float32, or rounded to it on the way).
    """

    rate: float
    segments: list[slice] = field(default_factory=list)
    resolution: float = 0.0
    jitter: float = 0.0
    float32: bool = False

    @property
    def quantised(self) -> bool:
        """Whether the timestamps' resolution is a noticeable part (>= 5%) of a sample period."""
        return self.resolution * self.rate >= 0.05

    @property
    def jittered(self) -> bool:
        """Whether the timestamps scatter by >= 5% of a sample period around a regular clock."""
        return self.jitter * self.rate >= 0.05

    def notes(self) -> list[str]:
        """Plain-language remarks on the timestamps (quantisation, jitter); empty when exact."""
        out = []
        if self.quantised:
            kind = "rounded to float32" if self.float32 else "quantised"
            out.append(f"timestamps are {kind} (resolution {self.resolution * 1e3:.3g} ms = "
                       f"{self.resolution * self.rate:.2g} sample periods at {self.rate:g} Hz): rate and bin times "
                       "are taken from a fit over whole segments, not from single steps; store timestamps as "
                       "float64, or starting_time + rate, to avoid this")
        if self.jittered:
            out.append(f"timestamps jitter by {self.jitter * 1e3:.3g} ms (SD) around a regular {self.rate:g} Hz "
                       "clock: bin times follow a smoothed clock")
        return out


def regular_time_base(rate: float, n: int) -> TimeBase:
    """The time base of ``starting_time`` + ``rate``: one segment, exact."""
    return TimeBase(rate=float(rate), segments=[slice(0, n)] if n else [])


def regular_times(start: float, n: int, rate: float, first: int = 0) -> np.ndarray:
    """The times of samples ``first`` .. ``first + n - 1`` of a series that starts at ``start``
    seconds and has ``rate`` samples per second: ``start + arange(first, first + n) / rate``.

    This is exactly how pynwb (``TimeSeries.get_timestamps``), pynapple and this package's
    :func:`~nwb_autolfads.load_results` rebuild the times of a series stored as ``starting_time``
    + ``rate``, so every regular time this package makes (bin centres, results, baselines) is
    bit-for-bit the time a reader of the file gets back; ``t0 + k * period`` can differ from it in
    the last bits, which silently drops bins from xarray arithmetic between the two.

    Returns (n,) float64 seconds."""
    return float(start) + np.arange(first, first + n, dtype=np.float64) / float(rate)


def bin_centres(t0: float, n_bins: int, bin_size: float) -> np.ndarray:
    """The centres of ``n_bins`` bins of ``bin_size`` seconds from ``t0`` (the first bin's start),
    made as a reader of the file rebuilds them (:func:`regular_times` from the first centre at
    ``1 / bin_size`` Hz). Returns (n_bins,) float64 seconds."""
    return regular_times(float(t0) + 0.5 * float(bin_size), n_bins, 1.0 / float(bin_size))


BIN_SIZE_RTOL = 1e-3
"""Two bin sizes within this fraction of each other are one (0.1%, the tolerance with which
preprocessing keeps one sample per bin when the bin is the sample period: clocks of two
acquisition systems differ by tens to hundreds of ppm, so a 100 Hz envelope's fitted period, e.g.
10.000008 ms, or 9.998 ms, and another's 10 ms are the same bins; over a 100-bin window the
difference is at most 0.1 bin)."""


def same_bin_size(a: float, b: float) -> bool:
    """Whether bins of ``a`` and ``b`` seconds are the same bins (:data:`BIN_SIZE_RTOL`, 0.1%): a
    model or filter fitted on one applies to data binned at the other."""
    return abs(float(a) - float(b)) <= BIN_SIZE_RTOL * max(abs(float(a)), abs(float(b)))


def stored_rate(times: np.ndarray, period: float) -> float | None:
    """The ``rate`` with which ``starting_time = times[0]`` + ``rate`` rebuilds ``times`` (n,)
    exactly, to the last bit, in every reader (:func:`regular_times`): ``1 / period`` or one of its
    neighbouring floats (``1 / (1 / rate)`` can be a float away from a file's own rate). None when
    no rate does: times with gaps, jitter, or a regular series that does not start at its grid's
    first time (leading bins left out, trial windows), which must be written as timestamps so that
    the file holds the times the run used. Returns Hz."""
    times = np.asarray(times, dtype=np.float64)
    nominal = 1.0 / float(period)
    if times.size <= 1:
        return nominal
    for rate in (nominal, np.nextafter(nominal, np.inf), np.nextafter(nominal, -np.inf)):
        if np.array_equal(regular_times(times[0], times.size, float(rate)), times):
            return float(rate)
    return None


def _resolution(t: np.ndarray, steps: np.ndarray, period: float) -> tuple[np.ndarray, bool]:
    """Per step, the quantisation step of the timestamps there, and whether they are float32
    values. Repeated timestamps whose steps are all multiples of one quantum clearly coarser than
    the ``period`` (e.g. whole milliseconds at 2 kHz) are quantised to it; a repeat in finer
    timestamps is a duplicate sample, not quantisation."""
    def f32(x):
        return bool(np.all(np.abs(x) < 3e38)) and np.array_equal(x.astype(np.float32).astype(np.float64), x)

    is_f32 = f32(t[:1000]) and f32(t)  # most float64 timestamps fail on the first values
    if is_f32:
        mag = np.maximum(np.abs(t[1:]), np.abs(t[:-1]))
        q = np.spacing(mag.astype(np.float32)).astype(np.float64)
    else:
        q = np.broadcast_to(float(np.spacing(np.max(np.abs(t[[0, -1]])))), steps.shape)
    zero = steps == 0
    if zero.any() and not is_f32:  # repeated values: rounded to a common step (e.g. whole milliseconds)?
        pos = steps[~zero]
        if pos.size:
            quantum = float(pos.min())
            k = pos / quantum
            if quantum >= 1.2 * period and np.all(np.abs(k - np.round(k)) < 1e-6 * np.maximum(k, 1.0)):
                q = np.broadcast_to(max(float(q.max()), quantum), steps.shape)
    return q, is_f32


def _mean_period(t: np.ndarray, steps: np.ndarray) -> float:
    """Mean step between obvious gaps (steps over 4 x the median positive step), not across
    them: robust to quantisation (rounded steps average out over many steps) and to gaps, even
    when gaps are frequent (short trials or step cycles, every few samples)."""
    positive = steps[steps > 0]
    if not positive.size:
        return float("nan")
    big = steps > 4.0 * float(np.median(positive))
    if big.all():
        return float(np.median(positive))
    return float(steps[~big].sum() / np.count_nonzero(~big))


def _confirmed(t: np.ndarray, candidates: np.ndarray, period: float, threshold: np.ndarray) -> np.ndarray:
    """The candidate gaps (step indices) after which the timestamps stay shifted: the median
    offset from a regular clock over up to ``_SHIFT_WINDOW`` samples after the step exceeds the
    one before it by ``threshold``. One late timestamp followed by an early one is jitter, not a gap."""
    if candidates.size == 0:
        return candidates
    bounds = np.r_[0, candidates + 1, t.size]
    keep = []
    for j, i in enumerate(candidates):
        lo = max(bounds[j], i + 1 - _SHIFT_WINDOW)
        hi = min(bounds[j + 2], i + 1 + _SHIFT_WINDOW)
        before = t[lo:i + 1] - period * np.arange(lo, i + 1)
        after = t[i + 1:hi] - period * np.arange(i + 1, hi)
        if np.median(after) - np.median(before) > 0.5 * (threshold[j] - period):  # half: medians of quantised times
            keep.append(i)
    return np.asarray(keep, dtype=np.int64)


def _lsq_period(t: np.ndarray, segments: list[slice], block: int = 256) -> float | None:
    """Common least-squares slope (seconds per sample) over the ``segments``, each with its own
    offset; fitted to the means of blocks of ``block`` samples (and the rest, weighted by its
    length) so hours of timestamps take little time and memory."""
    num = den = 0.0
    for seg in segments:
        n = seg.stop - seg.start
        if n < 2:
            continue
        y = t[seg] - t[seg.start]
        b = block if n >= 4 * block else 1
        full = n // b * b
        x = np.arange(full // b) * float(b) + (b - 1) / 2.0
        ym = y[:full].reshape(-1, b).mean(axis=1)
        w = np.full(x.size, float(b))
        if full < n:
            x, ym, w = np.r_[x, (full + n - 1) / 2.0], np.r_[ym, y[full:].mean()], np.r_[w, n - full]
        xc = x - np.average(x, weights=w)
        num += float(np.sum(w * xc * (ym - np.average(ym, weights=w))))
        den += float(np.sum(w * xc * xc))
    return num / den if den > 0 else None


def analyse_timestamps(times: np.ndarray, gap_factor: float = 1.5) -> TimeBase:
    """Rate, segments, resolution and jitter of a vector of timestamps (seconds).

    A step is a gap when it exceeds ``gap_factor`` x the period + the timestamps' resolution
    there + 8 jitter SDs of a step, and the timestamps after it stay shifted. Steps of zero are
    allowed only where the resolution is coarser than a sample period (float32 late in a
    session).

    Raises
    ------
    SignalError
        Non-finite timestamps, decreasing timestamps, or repeated ones that quantisation does not
        explain (duplicate samples).
    """
    t = np.asarray(times, dtype=np.float64).ravel()
    n = t.size
    if n == 0:
        return TimeBase(rate=float("nan"))
    if not np.all(np.isfinite(t)):
        raise SignalError("timestamps contain NaN or inf: fix the file's timestamps")
    if n == 1:
        return TimeBase(rate=float("nan"), segments=[slice(0, 1)])
    steps = np.diff(t)
    if np.any(steps < 0):
        i = int(np.argmax(steps < 0))
        raise SignalError(f"timestamps are not strictly increasing (sample {i + 1}: {float(t[i + 1])!r} after "
                          f"{float(t[i])!r}): sort the data or fix the file's timestamps")
    if t[-1] == t[0]:
        raise SignalError(f"all {n} timestamps are {float(t[0])!r}: fix the file's timestamps")
    period = _mean_period(t, steps)
    q, is_f32 = _resolution(t, steps, period)
    zero = steps == 0
    if np.any(zero & (q <= period)):  # rounding to a grid finer than a period never merges two samples
        i = int(np.argmax(zero & (q <= period)))
        raise SignalError(f"timestamps are not strictly increasing (sample {i + 1}: {float(t[i + 1])!r} after "
                          f"{float(t[i])!r}): sort the data or remove duplicate samples")
    sub = slice(None, None, max(1, steps.size // 2**18))  # a robust spread needs no more than 2**18 steps
    dev = steps[sub] - period
    spread = 1.4826 * float(np.median(np.abs(dev - np.median(dev))))
    jitter_step = max(0.0, spread - float(np.median(q[sub])))  # the part of the spread quantisation does not explain
    threshold = gap_factor * period + q + _GAP_SIGMAS * jitter_step
    candidates = np.flatnonzero(steps > threshold)
    breaks = _confirmed(t, candidates, period, threshold[candidates]) + 1
    edges = [0, *breaks.tolist(), n]
    segments = [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]
    refined = _lsq_period(t, segments)
    if refined is not None and refined > 0:
        period = refined
    return TimeBase(rate=1.0 / period, segments=segments, resolution=float(q.max()),
                    jitter=jitter_step / np.sqrt(2.0), float32=is_f32)


class Clock:
    """True time (seconds) of fractional sample indices ``0 .. n`` of one segment.

    Built from the segment's timestamps: knots at the mean index and mean time of blocks of
    about one second of samples, joined linearly and extended with the end blocks' slope (the
    nominal period when there is one block). Exact for a regular clock; averages quantisation
    and jitter away (by the square root of the block length) and follows slow drift. Without
    timestamps, ``start + index / rate``.

    Parameters
    ----------
    times : (n,) float array or None
        The segment's timestamps; None for a regular clock.
    rate : float
        Nominal rate (Hz).
    start : float
        Time of index 0 when ``times`` is None.
    """

    def __init__(self, times: np.ndarray | None, rate: float, start: float = 0.0) -> None:
        self.period = 1.0 / float(rate)
        if times is None:
            self.knot_i, self.knot_t = np.array([0.0]), np.array([float(start)])
            self.slopes = (self.period, self.period)
            return
        t = np.asarray(times, dtype=np.float64)
        n = t.size
        block = max(16, int(round(rate)))
        if n <= block:
            self.knot_i, self.knot_t = np.array([(n - 1) / 2.0]), np.array([float(t.mean())])
        else:
            full = n // block * block
            idx = np.arange(n, dtype=np.float64)
            ki = idx[:full].reshape(-1, block).mean(axis=1)
            kt = (t[:full] - t[0]).reshape(-1, block).mean(axis=1) + t[0]
            if full < n:
                ki = np.r_[ki, idx[full:].mean()]
                kt = np.r_[kt, (t[full:] - t[0]).mean() + t[0]]
            self.knot_i, self.knot_t = ki, kt
        if self.knot_i.size >= 2:
            self.slopes = (float((self.knot_t[1] - self.knot_t[0]) / (self.knot_i[1] - self.knot_i[0])),
                           float((self.knot_t[-1] - self.knot_t[-2]) / (self.knot_i[-1] - self.knot_i[-2])))
        else:
            self.slopes = (self.period, self.period)

    def __call__(self, index) -> np.ndarray:
        """Times (seconds) of the sample indices ``index`` (any float array)."""
        x = np.asarray(index, dtype=np.float64)
        out = np.interp(x, self.knot_i, self.knot_t)
        lo, hi = x < self.knot_i[0], x > self.knot_i[-1]
        out = np.where(lo, self.knot_t[0] + (x - self.knot_i[0]) * self.slopes[0], out)
        return np.where(hi, self.knot_t[-1] + (x - self.knot_i[-1]) * self.slopes[1], out)


_EMG_RATE_RANGE = (10.0, 500e3)
"""Hz: below, even an envelope is too coarse for muscle activation; above, no EMG amplifier samples."""


def check_rate(rate: float, where: str, from_timestamps: bool) -> None:
    """Refuse an EMG sampling rate outside 10 Hz - 500 kHz, naming the likely unit mistake.

    Raises
    ------
    SignalError
        With the rate, what it would be in other units, and the fix.
    """
    lo, hi = _EMG_RATE_RANGE
    if lo <= rate <= hi:
        return
    source = "the timestamps' step" if from_timestamps else "the series' rate"
    if from_timestamps and abs(rate - 1.0) < 1e-9:
        cause = ("the timestamps are probably sample numbers (one per sample) or in milliseconds: store them in "
                 "seconds")
    elif rate < lo:
        for factor, unit in ((1e3, "milliseconds"), (1e6, "microseconds"), (1e9, "nanoseconds")):
            if lo <= rate * factor <= hi:
                cause = (f"the timestamps are probably in {unit} (NWB wants seconds): divide them by {factor:g}"
                         if from_timestamps else
                         f"the rate is probably given in {'kHz' if factor == 1e3 else 'MHz' if factor == 1e6 else 'GHz'}"
                         f" or as a period: store it in Hz ({rate * factor:g})")
                break
        else:
            cause = ("the timestamps are probably sample numbers or not in seconds: store them in seconds"
                     if from_timestamps else "store the rate in Hz")
    else:
        cause = ("the timestamps are probably in another unit than seconds: store them in seconds"
                 if from_timestamps else "the rate is probably not in Hz (or is a period): store it in Hz")
    raise SignalError(f"{where}: {source} gives {rate:.6g} Hz, implausible for EMG (recorded at 1-50 kHz, "
                      f"envelopes at >= 10 Hz): {cause}")
