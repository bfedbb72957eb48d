"""What is wrong in an EMG signal, and what is done about it.

Non-finite samples (left out, the segments between them modelled separately), saturated
channels and values implausible for their unit (warnings), and artefacts shared across channels
at once (replaced by interpolation between clean bins).
"""

from __future__ import annotations

import logging

import numpy as np

from nwb_autolfads.data.scan import SampleScan
from nwb_autolfads.data.signals import Signal, volts_per_unit
from nwb_autolfads.errors import SignalError

__all__ = ["drop_non_finite", "warn_saturated", "warn_implausible_volts", "warn_below_zero", "shared_artefact_bins",
           "reject_shared_artefacts"]

log = logging.getLogger(__name__)


def split_around(segments: list[slice], bad: np.ndarray) -> list[slice]:
    """``segments`` without the samples where ``bad`` (n_samples,) is True: the runs of good
    samples between them, each a segment of its own (no filter crosses a left-out sample)."""
    kept = []
    for seg in segments:
        good = ~bad[seg]
        edges = np.flatnonzero(np.diff(np.r_[0, good.astype(np.int8), 0]))
        kept += [slice(seg.start + a, seg.start + b) for a, b in zip(edges[::2], edges[1::2])]
    return kept


def drop_non_finite(sig: Signal, scan: SampleScan, segments: list[slice],
                     steps: list[str]) -> tuple[np.ndarray, list[slice]]:
    """NaN/inf samples: a channel with nothing finite is set to 0 (a flat channel, modelled at the
    floor); samples where any other channel is not finite are left out, and the samples between
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
    kept = split_around(segments, bad)
    n_bad = int(bad_rows.size)
    log.warning("%s: %d samples (%.2f%%) with NaN/inf are left out; the %d segments around them are modelled "
                "separately", sig.source_path, n_bad, 100.0 * n_bad / bad.size, len(kept))
    steps.append(f"left out {n_bad} samples with NaN/inf (the samples between them form separate segments)")
    if not kept:
        raise SignalError(f"{sig.source_path}: no segment without NaN/inf samples: interpolate or remove them")
    return dead, kept


def invalid_samples(sig: Signal, intervals: np.ndarray) -> np.ndarray:
    """(n_samples,) bool: the samples of ``sig`` whose time lies in one of ``intervals`` ((k, 2)
    start, stop in s, both ends included). On a regular time base a sample within a rounding of an
    interval's end counts as inside (a sample too many is left out rather than one too few)."""
    bad = np.zeros(sig.n_samples, bool)
    if sig.timestamps is not None:
        stamps = np.asarray(sig.timestamps, dtype=float)
        for start, stop in intervals:
            bad[np.searchsorted(stamps, start, "left"):np.searchsorted(stamps, stop, "right")] = True
        return bad
    rate, t0 = float(sig.rate), float(sig.starting_time)
    for start, stop in intervals:
        lo = max(int(np.floor((start - t0) * rate - 1e-6)), 0)
        hi = min(int(np.ceil((stop - t0) * rate + 1e-6)) + 1, sig.n_samples)
        if hi > lo:
            bad[lo:hi] = True
    return bad


def drop_invalid_times(sig: Signal, segments: list[slice], steps: list[str]) -> list[slice]:
    """Leave out the samples inside the file's ``invalid_times`` (:attr:`Signal.invalid_times`),
    like NaN samples: the samples between them become separate segments (no filter crosses them),
    and no bin, scale or result is made from them. Warns naming the intervals; raises
    :class:`SignalError` if nothing is left."""
    intervals = np.zeros((0, 2)) if sig.invalid_times is None else np.asarray(sig.invalid_times, dtype=float)
    if not intervals.size:
        return segments
    bad = invalid_samples(sig, intervals)
    if not bad.any():
        log.warning("%s: the file's invalid_times mark %d interval(s) (%s), none of them within the EMG's samples",
                    sig.source_path, len(intervals), _intervals_text(intervals))
        return segments
    kept = split_around(segments, bad)
    n_bad = int(bad.sum())
    text = (f"left out {n_bad} samples ({100.0 * n_bad / bad.size:.2f}%) inside the file's invalid_times "
            f"({len(intervals)} interval(s): {_intervals_text(intervals)})")
    log.warning("%s: %s; the %d segments around them are modelled separately and no result is written there",
                sig.source_path, text, len(kept))
    steps.append(text)
    if not kept:
        raise SignalError(f"{sig.source_path}: every EMG sample lies inside the file's invalid_times "
                          f"({_intervals_text(intervals)}): nothing is left to model; check the intervals (seconds on "
                          "the file's clock) or choose another series with --emg")
    return kept


def _intervals_text(intervals: np.ndarray, most: int = 3) -> str:
    parts = [f"{a:g}-{b:g} s" for a, b in intervals[:most]]
    return ", ".join(parts) + (f" and {len(intervals) - most} more" if len(intervals) > most else "")


FLAT_SECONDS = 0.25
"""Raw EMG holding one value this long is not recording (a disconnected electrode, dropped
packets filled with zeros, a buffer padded at the end): :func:`drop_flat_stretches`."""


def _intersect(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The overlaps of two sorted lists of disjoint [start, stop) intervals."""
    out, i, j = [], 0, 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if hi > lo:
            out.append((lo, hi))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def drop_flat_stretches(sig: Signal, scan: SampleScan, segments: list[slice], dead: np.ndarray,
                        steps: list[str], min_samples: int) -> list[slice]:
    """Raw EMG that holds one value for ``min_samples`` or more (:attr:`SampleScan.flat`) is not
    recording. Where every live channel does so at once (dropped packets, zero padding) those
    samples are left out like NaN samples (segments split around them; warned); where some
    channels do (a disconnected electrode) a warning names them and the times, and says how to
    leave them out (the file's ``invalid_times``): they would be modelled as a silent muscle."""
    flat = scan.flat[np.argsort(scan.flat[:, 1], kind="stable")] if scan.flat.size else scan.flat
    live = np.flatnonzero(~dead)
    if not flat.size or not live.size:
        return segments
    per = {c: [(int(a), int(b)) for ch, a, b in flat if ch == c] for c in live}
    common = per[live[0]]
    for c in live[1:]:
        common = _intersect(common, per[c])
    common = [(a, b) for a, b in common if b - a >= min_samples]

    def when(runs: list[tuple[int, int]]) -> str:  # the runs' first and last sample times
        return _intervals_text(np.array([[sig.times(a, a + 1)[0], sig.times(b - 1, b)[0]] for a, b in runs]))

    if common:
        bad = np.zeros(sig.n_samples, bool)
        for a, b in common:
            bad[a:b] = True
        kept = split_around(segments, bad)
        n_bad = int(bad.sum())
        text = (f"left out {n_bad} samples ({100.0 * n_bad / bad.size:.2f}%) where every channel holds one value for "
                f"{min_samples} samples or more ({when(common)}: dropped data or padding, not EMG)")
        log.warning("%s: %s; the segments around them are modelled separately", sig.source_path, text)
        steps.append(text)
        if not kept:
            raise SignalError(f"{sig.source_path}: every channel holds one value throughout: there is no EMG to model")
        segments = kept
    for c in live:  # the runs not wholly inside a stretch left out for every channel
        own = [(a, b) for a, b in per[c] if sum(y - x for x, y in _intersect([(a, b)], common)) < b - a]
        if own:
            total = sum(b - a for a, b in own) / max(sig.sampling_rate(), 1e-12)
            log.warning("%s: channel %s holds one value for %.3g s in all (%d stretch(es), e.g. %s): a disconnected "
                        "electrode? It is modelled as a silent muscle there; to leave such times out, mark them in "
                        "the file's invalid_times", sig.source_path, sig.channel_names[c], total, len(own),
                        when(own[:1]))
    return segments


RAIL_PILE_UP = 3.0
"""A value near a channel's extremes is a rail (:func:`pile_up_rails`) when more than this many
times as many samples sit at it as at the next value inward: clipping piles samples up at one
value, a steep tail or coarse rounding does not (its counts grow inward)."""

RAIL_CANDIDATES = 8
"""How many of a channel's largest (and smallest) distinct values :func:`pile_up_rails` looks at:
a few glitch samples beyond a clipping rail (a spike the amplifier passed, a stuck bit) once hid it,
as only the samples at the very extreme were counted."""


def pile_up_rails(samples: list[np.ndarray], raw: bool = True) -> np.ndarray:
    """Per channel, the fraction of ``samples`` (excerpts (n, C), e.g.
    :func:`~nwb_autolfads.data.scan.spread_samples`) at a rail: among its :data:`RAIL_CANDIDATES`
    largest distinct values, one with :data:`RAIL_PILE_UP` times as many samples as the next
    value inward and more than 4 times as many as all the values beyond it; likewise among the
    smallest when ``raw`` (both rails, an unsigned ADC's 0 included) or when that value is below
    zero. (C,) floats, 0 where none."""
    if not samples:
        return np.zeros(0)
    x = np.concatenate([np.asarray(v, dtype=float) for v in samples], axis=0)
    out = np.zeros(x.shape[1])
    for c in range(x.shape[1]):
        v = x[:, c][np.isfinite(x[:, c])]
        if v.size < 100:
            continue
        values, counts = np.unique(v, return_counts=True)
        for side in (1, -1):
            vals, cnts = (values[::-1], counts[::-1]) if side == 1 else (values, counts)
            for i in range(min(RAIL_CANDIDATES, vals.size - 1)):
                at, beyond = cnts[i], cnts[:i].sum()
                if at >= 2 and at > RAIL_PILE_UP * cnts[i + 1] and 4 * beyond < at:
                    if side == 1 or raw or vals[i] < 0:
                        out[c] += at / v.size
                    break
    return out


def warn_saturated(sig: Signal, scan: SampleScan, raw: bool = True, fraction: float = 0.01,
                   samples: list[np.ndarray] | None = None) -> None:
    """Warn about channels that sit at their extreme values in more than ``fraction`` of samples
    (amplifier or ADC saturation): the largest value, plus the smallest when the EMG is ``raw``
    (both rails, an unsigned ADC's 0 included) or the smallest is below zero
    (:func:`~nwb_autolfads.data.scan.scan_samples`), or, in the excerpts ``samples``, a value near
    the extremes that samples pile up at with a few glitches beyond it (:func:`pile_up_rails`);
    their activations are underestimated there."""
    if sig.n_samples < 100:
        return
    rails = (scan.at_high + scan.at_low if raw else scan.at_peak) / sig.n_samples
    if samples:
        rails = np.maximum(rails, pile_up_rails(samples, raw))
    saturated = [sig.channel_names[i] for i in np.flatnonzero((rails > fraction) & (scan.peak > 0))]
    if saturated:
        log.warning("%s: channel(s) %s look saturated (at their extreme values, the rails, in more than %g%% of "
                    "samples); activations are underestimated where they clip", sig.source_path, ", ".join(saturated),
                    100 * fraction)


def warn_implausible_volts(sig: Signal, scan: SampleScan, limit: float = 20.0, floor: float = 2e-6) -> None:
    """Warn when EMG in a voltage unit (:data:`~nwb_autolfads.data.signals.VOLT_EXPONENTS`) peaks
    above ``limit`` volts or below ``floor`` volts, per channel (one channel of a per-muscle
    container stored in volts under a uV label was once missed by the median over channels): EMG
    is microvolts to millivolts (amplified, at most the volts of an ADC's range), and a whole
    recording's peak stays above an amplifier's noise (a few uV). Above: the values are probably
    ADC counts, uV or mV, or a conversion is missing; below: volts stored under a uV/mV/nV label,
    or a conversion applied twice. Results, reported in the file's unit, would be as far off."""
    per_unit = volts_per_unit(sig.unit)
    if per_unit is None or not scan.peak.size:
        return
    peaks = scan.peak * per_unit
    for wrong, words in ((peaks > limit, "above %g V: probably ADC counts, uV or mV, or the series' conversion is "
                          "missing" % limit),
                         ((peaks > 0) & (peaks < floor), "below any amplifier's noise (a few uV): probably volts or mV "
                          "under a smaller unit's label, or a conversion applied twice")):
        if wrong.any():
            which = "every channel" if wrong.all() else "channel(s) " + ", ".join(
                f"{sig.channel_names[i]} ({peaks[i]:.3g} V)" for i in np.flatnonzero(wrong)[:6])
            log.warning("%s: EMG in %r peaks at %.3g V (median over channels); %s: %s; results are reported in the "
                        "file's unit", sig.source_path, sig.unit, float(np.median(peaks)), which, words)


def warn_below_zero(sig: Signal, samples: list[np.ndarray], limit: float = 0.1) -> None:
    """Warn when more than ``limit`` of an already-rectified channel's samples (``samples``:
    excerpts (n, C), e.g. :func:`~nwb_autolfads.data.scan.spread_samples`, read before any
    resampling, which floors at zero) are below zero (an envelope with its mean subtracted or
    z-scored): the model's input is floored at a small positive value, so those samples, and the
    muscle's quiet times with them, are all modelled alike."""
    allb = np.concatenate([np.asarray(x, dtype=float) for x in samples], axis=0) if samples else np.zeros((0, 0))
    if not allb.size:
        return
    with np.errstate(invalid="ignore"):
        below = np.nanmean(np.where(np.isfinite(allb), allb < 0, np.nan), axis=0)
    names = [f"{sig.channel_names[i]} ({100 * below[i]:.0f}%)" for i in np.flatnonzero(below > limit)]
    if names:
        log.warning("%s: already-rectified EMG with many samples below zero: %s; an envelope with its mean "
                    "subtracted or z-scored? Values below zero are floored (modelled as rest), so quiet times are "
                    "lost; store the envelope without subtracting its mean, or pass --emg-raw if it is raw EMG",
                    sig.source_path, ", ".join(names[:8]) + (" ..." if len(names) > 8 else ""))


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
