"""Spike times from an NWB file's Units table: reading and checking them, and binning them.

Spike times are used as stored (seconds, the source's clock), never re-sorted: units whose times
cannot be right, or that are on another clock, are refused with a message naming them (or left
out with ``bad_units='exclude'``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from pynwb import NWBFile

from nwb_autolfads.data.timebase import bin_centres
from nwb_autolfads.errors import ConfigError, SignalError, SignalNotFoundError

__all__ = ["SpikeUnits", "read_units", "bin_spikes", "spike_time_problems", "check_spike_span", "check_unit_clocks",
           "spike_bin_centres", "spike_bin_edges", "MAX_SPIKE_BINS", "MAX_OUTSIDE_FRACTION", "MIN_MEDIAN_RATE_HZ"]

log = logging.getLogger(__name__)

MAX_SPIKE_BINS = 20_000_000
"""Most bins a spikes-only model's time grid may have (55 h at 10 ms bins): more means spike times
that are not in seconds (milliseconds, microseconds or sample indices stored as seconds)."""

MAX_OUTSIDE_FRACTION = 0.5
"""A unit with more than this fraction of its spikes outside the modelled time (the EMG's span, or
for spikes alone the span most units fire in) is on another clock or in other time units."""

MIN_MEDIAN_RATE_HZ = 0.05
"""Below this median firing rate over the session (one spike per 20 s) the spike times are
probably not in seconds: a warning."""

_LISTED = 5
"""Units named one by one in a message (the rest are counted)."""


@dataclass
class SpikeUnits:
    """Spike times (seconds, source clock) of the selected rows of ``nwbfile.units``."""

    spike_times: list[np.ndarray]
    ids: list[int]
    query: str | None = None
    source_path: str = "units"
    object_id: str | None = None
    obs_intervals: list[np.ndarray] | None = None
    """Per unit, (k, 2) start/stop times when it was observed (the Units ``obs_intervals``)."""
    rows: list[int] | None = None
    """Row of each unit in the Units table (None: the same as ``ids``' positions)."""

    def label(self, k: int) -> str:
        """How messages name the ``k``-th selected unit."""
        return f"unit id {self.ids[k]}" + (f" (row {self.rows[k]})" if self.rows is not None else "")

    def subset(self, keep: list[int]) -> "SpikeUnits":
        """The units at positions ``keep`` (in that order)."""
        return SpikeUnits(spike_times=[self.spike_times[k] for k in keep], ids=[self.ids[k] for k in keep],
                          query=self.query, source_path=self.source_path, object_id=self.object_id,
                          obs_intervals=None if self.obs_intervals is None else [self.obs_intervals[k] for k in keep],
                          rows=None if self.rows is None else [self.rows[k] for k in keep])

    def observed(self, centres: np.ndarray, bin_size: float) -> np.ndarray:
        """True for the bins (centred at ``centres``) inside an observation interval of every unit."""
        ok = np.ones(centres.shape, dtype=bool)
        if self.obs_intervals is None:
            return ok
        lo, hi = centres - bin_size / 2, centres + bin_size / 2
        for intervals in self.obs_intervals:
            inside = np.zeros(centres.shape, dtype=bool)
            for start, stop in np.asarray(intervals, dtype=float).reshape(-1, 2):
                inside |= (lo >= start) & (hi <= stop)
            ok &= inside
        return ok

    @property
    def n_units(self) -> int:
        return len(self.ids)

    def span(self) -> tuple[float, float]:
        """First and last spike time over all units."""
        nonempty = [t for t in self.spike_times if t.size]
        return float(min(t[0] for t in nonempty)), float(max(t[-1] for t in nonempty))


def spike_time_problems(times: np.ndarray) -> list[str]:
    """What is impossible about one unit's spike times (seconds, as stored): NaN/inf, negative
    (before the session's reference time) or not ascending (equal times are fine). Empty when
    nothing is wrong."""
    times = np.asarray(times, dtype=float)
    problems = []
    finite = np.isfinite(times)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        problems.append(f"{bad.size} NaN/inf spike time(s) (first at index {bad[0]})")
    negative = np.flatnonzero(times < 0)
    if negative.size:
        problems.append(f"{negative.size} negative spike time(s) (first {times[negative[0]]:.6g} s at index "
                        f"{negative[0]}, before the session's reference time)")
    stamps = times[finite]
    where = np.flatnonzero(finite)
    drops = np.flatnonzero(np.diff(stamps) < 0)
    if drops.size:
        i, j = where[drops[0]], where[drops[0] + 1]
        problems.append(f"not ascending at index {j}: time drops from {times[i]:.6g} s to {times[j]:.6g} s"
                        + (f" ({drops.size} drops in all)" if drops.size > 1 else ""))
    return problems


def _listing(items: list[str]) -> str:
    shown = "; ".join(items[:_LISTED])
    return shown + (f"; and {len(items) - _LISTED} more" if len(items) > _LISTED else "")


def _drop_units(units: SpikeUnits, bad: list[int], items: list[str], what: str, cause: str,
                bad_units: str) -> SpikeUnits:
    """Refuse (``bad_units='refuse'``) or leave out (``'exclude'``, with a warning) the units at
    positions ``bad``; ``items`` say what is wrong with each."""
    head = f"{len(bad)} of {units.n_units} selected units {what}: {_listing(items)}"
    if bad_units != "exclude":
        raise SignalError(f"{head} ({cause}): fix the units table, or leave these units out with --bad-units "
                          "exclude (config data.bad_units: exclude)")
    keep = [k for k in range(units.n_units) if k not in set(bad)]
    if not keep:
        raise SignalError(f"{head} ({cause}), and --bad-units exclude leaves no unit: fix the units table, or use "
                          "--model emg")
    log.warning("%s; left out (--bad-units exclude): %d units remain", head, len(keep))
    return units.subset(keep)


def _selected_rows(units, ids: list[int], query: str) -> list[int]:
    """Rows of the Units table ``units`` (whose ids are ``ids``) that the pandas ``query`` on its
    scalar columns selects; :class:`ConfigError` for an invalid query,
    :class:`SignalNotFoundError` when it selects no unit."""
    import pandas as pd

    columns = {}
    for col in units.colnames:
        if col == "spike_times":
            continue
        try:
            values = units[col].data[:]
        except Exception:  # ragged or region columns cannot be filtered on
            continue
        if np.ndim(values) == 1:
            columns[col] = [v.decode() if isinstance(v, bytes) else v for v in values]
    frame = pd.DataFrame(columns, index=pd.Index(ids, name="id"))
    try:
        selected = frame.query(query)
    except Exception as exc:
        raise ConfigError(f"--units {query!r} is not a valid filter of the units table "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); columns "
                          f"are {', '.join(frame.columns) or 'none'}: write e.g. \"quality == 'good'\"") from None
    rows = [ids.index(i) for i in selected.index]
    if not rows:
        raise SignalNotFoundError(f"--units {query!r} selects no unit: relax the filter")
    return rows


def read_units(nwbfile: NWBFile, query: str | None = None, bad_units: str = "refuse") -> SpikeUnits:
    """Spike times of the units table, optionally filtered by a pandas query on its scalar
    columns (e.g. ``"quality == 'good'"``).

    Spike times are used as stored, never re-sorted: units whose times are NaN/inf, negative or
    not ascending (see :func:`spike_time_problems`) raise :class:`SignalError` naming them, or
    with ``bad_units='exclude'`` are left out with a warning.

    Raises
    ------
    SignalNotFoundError
        No Units table with spike_times, or the query selects no unit.
    ConfigError
        The query is not a valid filter of the table.
    SignalError
        Units with impossible spike times (``bad_units='refuse'``), or no unit with spikes left.
    """
    units = nwbfile.units
    if units is None or len(units) == 0 or "spike_times" not in units.colnames:
        raise SignalNotFoundError("no spikes: the file has no Units table with spike_times: use --model emg, or "
                                  "a file with sorted units")
    ids = [int(i) for i in units.id[:]]
    rows = _selected_rows(units, ids, query) if query else list(range(len(ids)))
    spike_times = [np.asarray(units["spike_times"][r], dtype=float).ravel() for r in rows]
    obs = None
    if "obs_intervals" in units.colnames:
        obs = [np.asarray(units["obs_intervals"][r], dtype=float).reshape(-1, 2) for r in rows]
    out = SpikeUnits(spike_times=spike_times, ids=[ids[r] for r in rows], query=query, object_id=units.object_id,
                     obs_intervals=obs, rows=rows)
    bad, items = [], []
    for k, times in enumerate(spike_times):
        problems = spike_time_problems(times)
        if problems:
            bad.append(k)
            items.append(f"{out.label(k)}: {', '.join(problems)}")
    if bad:
        out = _drop_units(out, bad, items, "have spike times that cannot be right", "spike times are used as stored, "
                          "never re-sorted: a clock that restarts or recordings concatenated without an offset would "
                          "put spikes at the wrong times", bad_units)
    if all(t.size == 0 for t in out.spike_times):
        raise SignalError("all selected units are empty (no spike times): select other units with --units, or "
                          "use --model emg")
    return out


def _others_span(units: SpikeUnits, k: int) -> tuple[float, float] | None:
    """The span the other units fire in (first to last spike over all units but the ``k``-th);
    None with fewer than 2 other units with spikes (too few to tell which is on another clock)."""
    others = [t for j, t in enumerate(units.spike_times) if j != k and t.size]
    if len(others) < 2:
        return None
    return float(min(t[0] for t in others)), float(max(t[-1] for t in others))


def check_unit_clocks(units: SpikeUnits, bad_units: str = "refuse") -> SpikeUnits:
    """For spikes alone (the time grid covers every spike): a unit with more than
    :data:`MAX_OUTSIDE_FRACTION` of its spikes outside the span the other units fire in is on
    another clock or in other time units, and would stretch the grid with bins only it fills:
    :class:`SignalError` naming it, or left out with ``bad_units='exclude'``."""
    bad, items = [], []
    for k, times in enumerate(units.spike_times):
        span = _others_span(units, k)
        if span is None or not times.size:
            continue
        outside = times.size - int(np.searchsorted(times, span[1], "right") - np.searchsorted(times, span[0], "left"))
        if outside > MAX_OUTSIDE_FRACTION * times.size:
            bad.append(k)
            items.append(f"{units.label(k)}: {outside} of {times.size} spikes ({times[0]:.6g}-{times[-1]:.6g} s) "
                         f"outside the {span[0]:.6g}-{span[1]:.6g} s the other units fire in")
    if not bad:
        return units
    return _drop_units(units, bad, items, "fire mostly when no other unit does",
                       "spike times on another clock, or in milliseconds/samples instead of seconds?", bad_units)


def check_spike_span(units: SpikeUnits, spans: list[tuple[float, float]], what: str,
                     bad_units: str = "refuse") -> SpikeUnits:
    """Check that the spikes lie in the modelled time ``spans`` (seconds, [start, stop] each),
    described by ``what`` (e.g. "the EMG's time"). Spikes outside are not modelled: a warning
    counts them (the recording of the units may simply outlast the modelled time). A unit with
    more than :data:`MAX_OUTSIDE_FRACTION` of its spikes outside whose spikes inside are far
    sparser than elsewhere (under a tenth of its rate over its own span, or under
    :data:`MIN_MEDIAN_RATE_HZ`) is on another clock or in other time units:
    :class:`SignalError` naming it, or with ``bad_units='exclude'`` it is left out with a
    warning. Returns the units kept."""
    spans = [(float(a), float(b)) for a, b in spans]
    totals, outside = [], []
    for times in units.spike_times:
        inside = np.zeros(times.shape, dtype=bool)
        for a, b in spans:  # a spike on the edge of two touching spans counts once
            inside[np.searchsorted(times, a, "left"):np.searchsorted(times, b, "right")] = True
        totals.append(times.size)
        outside.append(int(times.size - inside.sum()))
    if not any(outside):
        return units
    lo, hi = min(a for a, _ in spans), max(b for _, b in spans)
    where = f"{what} ({lo:.6g}-{hi:.6g} s" + (f" in {len(spans)} segments)" if len(spans) > 1 else ")")
    covered = sum(b - a for a, b in spans)

    def on_another_clock(k: int) -> bool:
        """Most spikes outside, and the few inside far sparser than the unit fires elsewhere (or
        implausibly sparse): not a unit whose session the modelled time covers only in part."""
        if not totals[k] or outside[k] <= MAX_OUTSIDE_FRACTION * totals[k]:
            return False
        times = units.spike_times[k]
        rate_in = (totals[k] - outside[k]) / max(covered, 1e-9)
        rate_all = totals[k] / max(float(times[-1] - times[0]), covered, 1e-9)
        return rate_in < 0.1 * rate_all or rate_in < MIN_MEDIAN_RATE_HZ

    bad = [k for k in range(units.n_units) if on_another_clock(k)]
    if bad:
        items = [f"{units.label(k)}: {outside[k]} of {totals[k]} spikes outside (its spikes span "
                 f"{units.spike_times[k][0]:.6g}-{units.spike_times[k][-1]:.6g} s)" for k in bad]
        units = _drop_units(units, bad, items, f"have most of their spikes outside {where}",
                            "spike times on another clock, or in milliseconds/samples instead of seconds?", bad_units)
        keep = [k for k in range(len(totals)) if k not in set(bad)]
        totals, outside = [totals[k] for k in keep], [outside[k] for k in keep]
    if any(outside):
        log.warning("%d of %d spikes (%.1f%%) of %d units lie outside %s and are not modelled", sum(outside),
                    sum(totals), 100.0 * sum(outside) / max(1, sum(totals)), sum(1 for n in outside if n), where)
    return units


def spike_bin_centres(units: SpikeUnits, bin_size: float) -> np.ndarray:
    """Centres (seconds) of the bins of ``bin_size`` s covering every spike of ``units``: the time
    grid of a spikes-only model. Raises :class:`SignalError` when it would hold more than
    :data:`MAX_SPIKE_BINS` bins, or when the median firing rate is below
    :data:`MIN_MEDIAN_RATE_HZ` (spike times not in seconds, or units too sparse to model)."""
    t0, t1 = units.span()
    n_bins = int(np.floor((t1 - t0) / bin_size)) + 1
    if n_bins > MAX_SPIKE_BINS:
        last = max(range(units.n_units), key=lambda k: units.spike_times[k][-1] if units.spike_times[k].size
                   else -np.inf)
        raise SignalError(f"the spike times span {t0:.6g}-{t1:.6g} s ({(t1 - t0) / 86400:.3g} days; latest spike: "
                          f"{units.spike_times[last][-1]:.6g} s, {units.label(last)}): {n_bins:,} bins of "
                          f"{bin_size * 1e3:g} ms, more than the {MAX_SPIKE_BINS:,} a model can be trained on. Are the "
                          "spike times in milliseconds, microseconds or samples instead of seconds? Fix the units "
                          "table (NWB stores seconds); for a session really this long, set a larger bin with --set "
                          "windows.bin_size=SECONDS")
    duration = max(t1 - t0, bin_size)
    median_rate = float(np.median([t.size / duration for t in units.spike_times]))
    if median_rate < MIN_MEDIAN_RATE_HZ:
        raise SignalError(f"the median firing rate over the {t1 - t0:.6g} s the spikes span is {median_rate:.3g} Hz "
                          f"(under {MIN_MEDIAN_RATE_HZ:g} Hz, fewer than 3 spikes a minute): are the spike times in "
                          "milliseconds or samples instead of seconds? Fix the units table (NWB stores seconds); if "
                          "the rates are real, keep the active units with --units (a query on the units table)")
    return bin_centres(t0, n_bins, bin_size)


def spike_bin_edges(centres: np.ndarray, bin_size: float) -> tuple[np.ndarray, np.ndarray]:
    """Start and stop (seconds) of the bins of ``bin_size`` s centred at ``centres``: [start,
    stop) each. Where one bin's stop and the next bin's start are the same time up to float
    rounding they are made equal, so a spike on the boundary counts in exactly one bin; bins
    need not be contiguous (segments, per-sample bins at their own timestamps)."""
    centres = np.asarray(centres, dtype=float)
    lo, hi = centres - bin_size / 2, centres + bin_size / 2
    touching = np.abs(hi[:-1] - lo[1:]) <= 1e-9 * bin_size
    hi[:-1][touching] = lo[1:][touching]
    return lo, hi


def bin_spikes(units: SpikeUnits, centres: np.ndarray, bin_size: float) -> np.ndarray:
    """Spike counts in the bins centred at ``centres`` (seconds, ascending): (n_bins, n_units)
    float32; bins are [centre - bin_size/2, centre + bin_size/2) (:func:`spike_bin_edges`).

    Each unit's ascending spike times are located in the bin edges with ``np.searchsorted``:
    O(n_bins log n_spikes) time per unit and no array at a finer resolution than the bins, so
    hundreds of units over hours bin in seconds, in the memory of the counts themselves."""
    lo, hi = spike_bin_edges(centres, bin_size)
    counts = np.empty((lo.size, units.n_units), dtype=np.float32)
    for k, times in enumerate(units.spike_times):
        counts[:, k] = np.searchsorted(times, hi, "left") - np.searchsorted(times, lo, "left")
    return counts
