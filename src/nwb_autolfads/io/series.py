"""Finding the EMG (and the other time series) in an NWB file and reading it.

Finds the EMG (or takes the object path the user gives) and returns a
:class:`~nwb_autolfads.data.signals.Signal` in physical units with its time base
(``timestamps`` or ``starting_time`` + ``rate``), channel names and source path; tells EMG from
kinematics and force (:func:`modality_of`) for ``inspect`` and :mod:`.behavior`.
"""

from __future__ import annotations

import logging
import re
from typing import Iterator

import h5py
import numpy as np
from pynwb import NWBFile, TimeSeries

from nwb_autolfads.data.signals import VOLT_EXPONENTS, SeriesValues, Signal
from nwb_autolfads.errors import SignalError, SignalNotFoundError
from nwb_autolfads.io.reading import OUTPUT_MODULE, Candidate

__all__ = ["iter_series", "find_emg", "read_emg", "read_candidate", "modality_of", "emg_doubt", "orientation",
           "ELECTRODE_NAME_COLUMNS", "electrode_names", "channel_names_of", "invalid_times"]

log = logging.getLogger(__name__)

_EMG_WORDS = re.compile(r"emg|electromyo|muscle", re.IGNORECASE)

_NAMES_IN_TEXT = re.compile(r"(?:muscles|channels|channel names)\s*[:=]\s*([^\n;.]+)", re.IGNORECASE)


def _emg_score(obj) -> int:
    score = 0
    if _EMG_WORDS.search(getattr(obj, "name", "") or ""):
        score += 2
    if _EMG_WORDS.search(getattr(obj, "description", "") or ""):
        score += 1
    return score


def _children_series(container) -> list[TimeSeries]:
    out = []
    for child in getattr(container, "children", []):
        if isinstance(child, TimeSeries):
            out.append(child)
    return out


def iter_series(nwbfile: NWBFile) -> Iterator[Candidate]:
    """Every TimeSeries in acquisition and processing (our own output module excluded), plus
    containers holding several 1-D TimeSeries (one per channel)."""
    places = [("acquisition", nwbfile.acquisition)]
    for mod_name, module in nwbfile.processing.items():
        if mod_name == OUTPUT_MODULE:
            continue
        places.append((f"processing/{mod_name}", module.data_interfaces))
    for prefix, objects in places:
        for name, obj in objects.items():
            path = f"{prefix}/{name}"
            if isinstance(obj, TimeSeries):
                yield Candidate(path, obj, "series", _emg_score(obj))
                continue
            series = _children_series(obj)
            for ts in series:
                yield Candidate(f"{path}/{ts.name}", ts, "series", max(_emg_score(ts), _emg_score(obj) and 1))
            one_d = [ts for ts in series if ts.data is not None and len(ts.data.shape) == 1]
            score = _emg_score(obj) + max((_emg_score(t) for t in one_d), default=0)
            # one channel per series; per-muscle EMG of unequal lengths too, so that choosing it
            # refuses it by name (reading) instead of modelling one of its muscles alone
            if len(one_d) >= 2 and (len({ts.data.shape[0] for ts in one_d}) == 1 or score > 0):
                yield Candidate(path, obj, "container", score)


_KINEMATIC_TYPES = {"SpatialSeries", "PoseEstimationSeries"}

_KINEMATIC_WORDS = re.compile(r"kinemat|joint|angle|position|velocity|pose|marker|trajector", re.IGNORECASE)

_FORCE_WORDS = re.compile(r"force|torque|load cell|grip", re.IGNORECASE)


def modality_of(c: Candidate) -> str:
    """``emg``, ``kinematics`` (SpatialSeries in Position/CompassDirection, ndx-pose
    PoseEstimationSeries, or names/descriptions saying joint/angle/position/marker...), ``force``
    (force/torque/load cell/grip) or ``other``."""
    text = f"{getattr(c.obj, 'name', '')} {getattr(c.obj, 'description', '') or ''}"
    if c.score > 0:
        return "emg"
    if c.neurodata_type in _KINEMATIC_TYPES or _KINEMATIC_WORDS.search(text) or _KINEMATIC_WORDS.search(c.path):
        return "kinematics"
    if _FORCE_WORDS.search(text) or _FORCE_WORDS.search(c.path):
        return "force"
    return "other"


_EMG_UNITS = re.compile(r"volt|^[munµμk]?v$|^a\.?u\.?$|arbitrary|^unknown$|^no unit$|^$", re.IGNORECASE)


def emg_doubt(c: Candidate) -> str | None:
    """Why the series ``c`` does not look like EMG (``inspect`` lists it as kinematics or force,
    or its unit is not a voltage), or None when nothing speaks against it."""
    why = []
    modality = modality_of(c)
    if modality in ("kinematics", "force"):
        why.append(f"`inspect` lists it as {modality} ({c.neurodata_type})")
    obj = c.obj if c.kind == "series" else next(iter(_children_series(c.obj)), None)
    unit = str(getattr(obj, "unit", "") or "").strip()
    if not _EMG_UNITS.search(unit):
        why.append(f"its unit is {unit!r}, not a voltage")
    return "; ".join(why) or None


def find_emg(nwbfile: NWBFile, path: str | None = None) -> Candidate:
    """The EMG candidate at ``path`` or, if ``path`` is None, the best one found automatically."""
    candidates = list(iter_series(nwbfile))
    if path is not None:
        wanted = path.strip("/")
        for cand in candidates:
            if cand.path == wanted:
                return cand
        available = ", ".join(c.path for c in candidates) or "none"
        raise SignalNotFoundError(f"--emg {path!r} is not a TimeSeries in this file: available series are "
                                  f"{available}")
    emg = [c for c in candidates if c.score > 0]
    if not emg:
        available = ", ".join(f"{c.path} ({c.neurodata_type})" for c in candidates) or "none"
        raise SignalNotFoundError("no EMG found (no TimeSeries or ElectricalSeries whose name or description "
                                  f"mentions EMG/muscle; series in the file: {available}): pass the series "
                                  "with --emg PATH")
    # Prefer series that nothing speaks against (emg_doubt: a unit that is not a voltage, listed as
    # kinematics/force: a MuscleLength in m once won over the EMG), then strong matches, then
    # containers/2-D series with more channels, then acquisition.
    def rank(c: Candidate):
        n_ch = len(_children_series(c.obj)) if c.kind == "container" else (  # the shorter axis: channels
            min(c.obj.data.shape[:2]) if len(c.obj.data.shape) > 1 else 1)
        return (emg_doubt(c) is None, c.score, n_ch, c.path.startswith("acquisition"))
    return max(emg, key=rank)


def read_emg(nwbfile: NWBFile, path: str | None = None,
             channel_names: tuple[str, ...] | list[str] | None = None, lazy: bool = False) -> Signal:
    """Read the EMG (found automatically or at ``path``) into a :class:`Signal`.

    ``lazy=True`` leaves the samples in the file (:class:`~nwb_autolfads.data.signals.SeriesValues`,
    read on demand, valid while the file is open): how ``run`` preprocesses recordings too big
    for memory, and streams remote ones. By default the values are loaded into an array."""
    cand = find_emg(nwbfile, path)
    signal = read_candidate(cand)
    signal.invalid_times = invalid_times(nwbfile)
    if not lazy:
        signal = signal.load()
    if channel_names is not None:
        if len(channel_names) != signal.n_channels:
            raise SignalError(f"{len(channel_names)} channel names given for {signal.n_channels} channels of "
                              f"{cand.path}: give exactly {signal.n_channels} names")
        signal.channel_names = list(channel_names)
    return signal


def invalid_times(nwbfile: NWBFile) -> np.ndarray:
    """(k, 2) start and stop times (s) of ``nwbfile.invalid_times``, the periods the file marks as
    not to be analysed (empty when it has none): EMG samples inside them are left out.

    Raises
    ------
    SignalError
        An interval with a NaN/inf time or a stop before its start (naming the row)."""
    table = getattr(nwbfile, "invalid_times", None)
    if table is None or len(table) == 0:
        return np.zeros((0, 2))
    out = np.column_stack([np.asarray(table["start_time"][:], dtype=float),
                           np.asarray(table["stop_time"][:], dtype=float)])
    bad = np.flatnonzero(~np.isfinite(out).all(axis=1) | (out[:, 1] < out[:, 0]))
    if bad.size:
        i = int(bad[0])
        raise SignalError(f"invalid_times row {i} runs from {float(out[i, 0])!r} to {float(out[i, 1])!r} s: an interval needs finite "
                          "times with stop >= start (seconds on the file's clock); fix or remove that row")
    return out


def _unit_factors(path: str, series: list) -> tuple[list[float], str]:
    """Per series the factor that takes its values to the unit most of them are in (ties: the
    first's), and that unit, when the per-channel series of one container are in different SI
    voltage units (nV to kV; a warning says so).

    Raises
    ------
    SignalError
        Their units differ and are not all SI voltage units (the channels cannot be put on one
        scale): naming each series' unit."""
    names = [str(ts.unit or "").strip().lower() for ts in series]
    listing = ", ".join(f"{ts.name}: {ts.unit!r}" for ts in series)
    if not all(n in VOLT_EXPONENTS for n in names):
        raise SignalError(f"{path}: its per-channel series are in different units ({listing}), not all SI voltage "
                          "units that could be converted: store them in one unit, or choose one series with --emg")
    exponents = [VOLT_EXPONENTS[n] for n in names]
    common = max(exponents, key=lambda e: (exponents.count(e), -exponents.index(e)))
    unit = str(series[exponents.index(common)].unit)
    log.warning("%s: its per-channel series are in different units (%s): converted to %r", path, listing, unit)
    return [10.0 ** (e - common) for e in exponents], unit


def read_candidate(cand: Candidate) -> Signal:
    if cand.kind == "container":
        return _read_container(cand)
    return _read_series(cand.obj, cand.path)


def _time_base(ts: TimeSeries, path: str, n: int) -> dict:
    if ts.timestamps is not None:
        stamps = np.asarray(ts.timestamps[:], dtype=float)
        if stamps.shape[0] != n:
            raise SignalError(f"{path}: {stamps.shape[0]} timestamps for {n} samples: fix the file")
        return {"timestamps": stamps, "rate": None, "starting_time": float(stamps[0]) if n else 0.0}
    if ts.rate is None or not ts.rate > 0:
        raise SignalError(f"{path}: no timestamps and no positive rate: the file must give one of them")
    return {"timestamps": None, "rate": float(ts.rate), "starting_time": float(ts.starting_time or 0.0)}


def _in_file(data) -> bool:
    """True for an array still in its file (an HDF5 or a Zarr dataset): read on demand."""
    return isinstance(data, h5py.Dataset) or type(data).__module__.split(".")[0] == "zarr"


def _physical(ts: TimeSeries, columns: list, transposed: bool = False) -> SeriesValues | np.ndarray:
    """The series' values in physical units: read on demand when stored in a file (so big and
    remote recordings are never loaded whole), as an array when the data are in memory.
    ``transposed``: the one 2-D dataset is stored channels x time."""
    columns = [c if _in_file(c) else np.asarray(c) for c in columns]
    channel_conversion = getattr(ts, "channel_conversion", None)
    values = SeriesValues(columns, float(ts.conversion if ts.conversion is not None else 1.0),
                          None if channel_conversion is None else np.asarray(channel_conversion[:], dtype=float),
                          float(getattr(ts, "offset", 0.0) or 0.0), transposed=transposed)
    return values if all(_in_file(c) for c in columns) else np.asarray(values)


ELECTRODE_NAME_COLUMNS = ("muscle", "channel_name", "electrode_name", "label", "name", "location", "group_name")
"""Columns of the electrodes table that can name a channel, in order of preference: ``channel_name``
is what NeuroConv / SpikeInterface write (the acquisition system's channel id), ``group_name`` and
``location`` are standard columns (used only when they tell the selected channels apart)."""


def _text(value) -> str | None:
    """A table cell as a stripped string, or None when it is not text."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return value.strip() if isinstance(value, str) else None


def electrode_names(ts: TimeSeries, n: int) -> list[str] | None:
    """Names of the ``n`` channels of ``ts`` read through its ``electrodes`` region, in region order
    (the order of the series' columns, whatever rows of the table it selects): from the first column
    of :data:`ELECTRODE_NAME_COLUMNS` whose values over the selected rows are distinct non-empty
    strings. None when the series has no region, the region does not select ``n`` rows of the
    table, or no column names the channels apart."""
    electrodes = getattr(ts, "electrodes", None)
    if electrodes is None:
        return None
    table = electrodes.table
    rows = np.asarray(electrodes.data[:]).astype(int).ravel()
    if rows.size != n or rows.size == 0 or rows.min() < 0 or rows.max() >= len(table):
        return None
    for col in ELECTRODE_NAME_COLUMNS:
        if col not in table.colnames:
            continue
        column = table[col]
        if type(column).__name__ == "VectorIndex":  # a ragged column holds lists, not one name per row
            continue
        values = np.asarray(column.data[:], dtype=object)
        if values.ndim != 1 or values.size != len(table):
            continue
        names = [_text(values[r]) for r in rows]
        if all(names) and len(set(names)) == n:
            return names
    return None


def _series_channel_names(ts: TimeSeries, n: int) -> list[str]:
    names = electrode_names(ts, n)
    if names is not None:
        return names
    for text in (ts.description or "", getattr(ts, "comments", "") or ""):
        match = _NAMES_IN_TEXT.search(text)
        if match:
            names = [s.strip() for s in match.group(1).split(",") if s.strip()]
            if len(names) == n:
                return names
    if n == 1:
        return [ts.name]
    return [f"ch{i}" for i in range(n)]


def channel_names_of(cand: Candidate) -> list[str]:
    """The channel names ``run`` would give the candidate's channels (reads metadata only)."""
    if cand.kind == "container":
        return [ts.name for ts in _children_series(cand.obj) if ts.data is not None and len(ts.data.shape) == 1]
    if cand.obj.data is None:
        return []
    shape = cand.obj.data.shape
    if len(shape) == 2:
        try:
            transposed = orientation(cand.obj, cand.path)[0]
        except SignalError:  # no clear time axis: `run` refuses it, `inspect` says so in its notes
            transposed = False
        return _series_channel_names(cand.obj, int(shape[0] if transposed else shape[1]))
    return _series_channel_names(cand.obj, 1)


def _check_shape(path: str, shape: tuple) -> None:
    if len(shape) == 0 or len(shape) > 2:
        raise SignalError(f"{path}: data has shape {shape}, expected (time,) or (time, channels): "
                          "pass a 1-D or 2-D series with --emg")
    if shape[0] == 0 or (len(shape) == 2 and shape[1] == 0):
        raise SignalError(f"{path}: data is empty (shape {shape}): pass a series that holds samples")


_MAX_CHANNELS = 1024
"""More than this many channels along an axis is never a channel axis of EMG."""


def _channel_count_hints(ts: TimeSeries) -> dict[int, str]:
    """Channel counts the file states besides the data's shape: {count: where it is stated}."""
    hints: dict[int, str] = {}
    electrodes = getattr(ts, "electrodes", None)
    if electrodes is not None:
        try:
            hints[len(electrodes.data)] = "the electrodes table region"
        except Exception:  # odd regions: no hint
            pass
    for text in (ts.description or "", getattr(ts, "comments", "") or ""):
        match = _NAMES_IN_TEXT.search(text)
        if match:
            names = [s.strip() for s in match.group(1).split(",") if s.strip()]
            if len(names) > 1:
                hints.setdefault(len(names), "the channel names in the description")
    return hints


def orientation(ts: TimeSeries, path: str) -> tuple[bool, str | None]:
    """Whether a 2-D series is stored channels x time (against NWB's time-first rule).

    It is when the time axis is unambiguous: the timestamps' length matches the second axis
    (not the first), or, with ``starting_time`` + ``rate``, a channel count the file states
    (electrodes, channel names) matches the first axis, or the first axis is a plausible channel
    count (<= 1024) and the second at least 10 times longer. Returns (transposed, note for the
    user, or None).

    Raises
    ------
    SignalError
        More channels than samples and no unambiguous time axis: names the shape and the fix.
    """
    shape = tuple(int(n) for n in ts.data.shape)
    if len(shape) != 2 or shape[0] == shape[1]:
        return False, None
    a, b = shape
    fix = "NWB stores time first: rewrite the series with data.T (time x channels)"
    n_ts = None
    if ts.timestamps is not None:
        n_ts = int(ts.timestamps.shape[0]) if hasattr(ts.timestamps, "shape") else len(ts.timestamps)
    if n_ts is not None and n_ts != a:
        if n_ts == b:
            return True, (f"{path}: data are stored channels x time (shape {shape}; the {n_ts} timestamps match the "
                          f"second axis): read as {b} samples x {a} channels; {fix}")
        raise SignalError(f"{path}: {n_ts} timestamps for data of shape {shape} (neither axis has {n_ts} samples): "
                          "fix the file's timestamps or data")
    if n_ts is None:
        hints = _channel_count_hints(ts)
        if b in hints:
            return False, None
        if a in hints:
            return True, (f"{path}: data are stored channels x time (shape {shape}; {hints[a]} lists {a} channels): "
                          f"read as {b} samples x {a} channels; {fix}")
        if a < b and a <= _MAX_CHANNELS and b >= 10 * a:
            return True, (f"{path}: data look stored channels x time (shape {shape}: {b} channels of {a} samples "
                          f"is no recording): read as {b} samples x {a} channels; {fix}")
    if a < b:
        raise SignalError(f"{path}: data of shape {shape} would be {a} samples of {b} channels: the series looks "
                          f"stored channels x time, but which axis is time is not clear; {fix}, or pass another "
                          "series with --emg")
    return False, None


def _read_series(ts: TimeSeries, path: str) -> Signal:
    if ts.data is None:
        raise SignalError(f"{path}: the series holds no data")
    shape = tuple(ts.data.shape)
    _check_shape(path, shape)
    dtype = getattr(ts.data, "dtype", None)
    if dtype is None:
        dtype = np.asarray(ts.data[:1]).dtype
    if not np.issubdtype(dtype, np.number):
        raise SignalError(f"{path}: data has non-numeric dtype {dtype}: pass a numeric series")
    transposed, note = orientation(ts, path)
    if note:
        log.warning("%s", note)
    values = _physical(ts, [ts.data], transposed)
    return Signal(values=values, channel_names=_series_channel_names(ts, values.shape[1]),
                  unit=str(ts.unit or "unknown"), source_path=path, object_id=ts.object_id,
                  neurodata_type=type(ts).__name__, description=ts.description or "",
                  **_time_base(ts, path, values.shape[0]))


SAME_CLOCK_FRACTION = 0.1
"""Per-channel series share one clock when their times differ systematically (the median offset
over their first and their last samples) by at most this fraction of a sample period, and no
sample by more than :data:`SAME_CLOCK_MAX` of a period (absolute: a tolerance relative to the time
itself once let 12 ms pass at 20 min). Jitter of each series' timestamps and float32 rounding
pass; a start offset, another rate or gaps at other places do not."""
SAME_CLOCK_MAX = 0.5
_CLOCK_EDGE = 1000
"""Samples at each end whose median offset tells a systematic shift (at the start) or drift (at the end)."""


def _clock_mismatch(ref_times: np.ndarray, period: float, sig: Signal) -> str | None:
    """Why ``sig`` is not sampled at ``ref_times`` (the first series' sample times, whose period is
    ``period`` seconds; what differs, by how much), or None when it is (:data:`SAME_CLOCK_FRACTION`,
    :data:`SAME_CLOCK_MAX`). ``sig`` must have as many samples."""
    if sig.n_samples == 0:
        return None
    offset = sig.times() - ref_times
    for where, part in (("first", offset[:_CLOCK_EDGE]), ("last", offset[-_CLOCK_EDGE:])):
        shift = float(np.median(part))
        if abs(shift) > SAME_CLOCK_FRACTION * period:
            return (f"its {where} samples are {shift * 1e3:+.6g} ms from the other's (median), more than "
                    f"{SAME_CLOCK_FRACTION:g} of a {period * 1e3:.6g} ms sample")
    worst = int(np.argmax(np.abs(offset)))
    if abs(offset[worst]) > SAME_CLOCK_MAX * period:
        return (f"its sample {worst} is at {ref_times[worst] + offset[worst]:.6f} s, the other's at "
                f"{ref_times[worst]:.6f} s ({offset[worst] * 1e3:+.6g} ms, more than "
                f"{SAME_CLOCK_MAX:g} of a {period * 1e3:.6g} ms sample: gaps at other places, or another rate)")
    return None


def _check_same_clock(path: str, ref_name: str, ref: Signal, ref_times: np.ndarray, period: float, name: str,
                      sig: Signal) -> None:
    """Refuse per-channel series that are not sampled at the same times: they are read on the
    first one's times (``ref_times``, of ``period`` seconds), so an offset would silently move a
    channel in time.

    Raises
    ------
    SignalError
        Another sample count, or another clock (:func:`_clock_mismatch`), naming both series, the
        offset and the fix.
    """
    fix = ("choose one series (--emg PATH for EMG, --set data.force=PATH for force), or store the channels "
           "as one 2-D series on one clock")
    if sig.n_samples != ref.n_samples:
        raise SignalError(f"{path}: the per-channel series do not share one time base ({name} has {sig.n_samples} "
                          f"samples, {ref_name} {ref.n_samples}): {fix}")
    why = _clock_mismatch(ref_times, period, sig)
    if why is not None:
        raise SignalError(f"{path}: the per-channel series do not share one time base: {name} is not on {ref_name}'s "
                          f"clock ({why}); reading them as one recording would shift {name} in time: {fix}")


def _read_container(cand: Candidate) -> Signal:
    series = [ts for ts in _children_series(cand.obj) if ts.data is not None and len(ts.data.shape) == 1]
    ref = ref_times = period = None
    for ts in series:
        sig = _read_series(ts, f"{cand.path}/{ts.name}")
        if ref is None:  # the first series' times, read and fitted once
            ref, ref_times = sig, sig.times()
            period = 1.0 / sig.sampling_rate() if sig.n_samples > 1 else 0.0
        else:
            _check_same_clock(cand.path, series[0].name, ref, ref_times, period, ts.name, sig)
    factors, unit = _unit_factors(cand.path, series) if len({ts.unit for ts in series}) > 1 else (None, series[0].unit)
    convs = {(float(ts.conversion if ts.conversion is not None else 1.0), float(getattr(ts, "offset", 0.0) or 0.0))
             for ts in series}
    if factors is None and len(convs) == 1 and all(_in_file(ts.data) for ts in series):  # read on demand
        conversion, offset = convs.pop()
        values = SeriesValues([ts.data for ts in series], conversion, None, offset)
    else:
        values = np.stack([np.asarray(_physical(ts, [ts.data]))[:, 0] * (1.0 if factors is None else factors[i])
                           for i, ts in enumerate(series)], axis=1)
    return Signal(values=values, channel_names=[ts.name for ts in series],
                  unit=str(unit), source_path=cand.path,
                  object_id=cand.obj.object_id, neurodata_type=type(cand.obj).__name__,
                  rate=ref.rate, starting_time=ref.starting_time, timestamps=ref.timestamps,
                  description=getattr(cand.obj, "description", "") or "")
