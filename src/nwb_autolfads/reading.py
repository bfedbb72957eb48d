"""Reading signals from NWB files.

Opens files read-only, checks that they are NWB, finds the EMG (or takes the object path the
user gives) and returns a :class:`~nwb_autolfads.signals.Signal` in physical units with its
time base (``timestamps`` or ``starting_time`` + ``rate``), channel names and source path.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np
from pynwb import NWBHDF5IO, NWBFile, TimeSeries

from .errors import ConfigError, InputFileError, SignalError, SignalNotFoundError
from .signals import SeriesValues, Signal

__all__ = ["open_nwb", "Candidate", "iter_series", "find_emg", "read_emg", "SpikeUnits", "read_units", "bin_spikes",
           "OUTPUT_MODULE"]

OUTPUT_MODULE = "autolfads"
"""Name of the processing module our results go into (never read back as input)."""

_EMG_WORDS = re.compile(r"emg|electromyo|muscle", re.IGNORECASE)
_NAMES_IN_TEXT = re.compile(r"(?:muscles|channels|channel names)\s*[:=]\s*([^\n;.]+)", re.IGNORECASE)


@contextlib.contextmanager
def open_nwb(path) -> Iterator[tuple[NWBHDF5IO, NWBFile]]:
    """Open an NWB file read-only; raise :class:`InputFileError` with a clear message if the path
    is missing, a directory, not HDF5 or not NWB. ``path``: a local path, or a
    :class:`~nwb_autolfads.sources.Source` (local, http(s) URL or DANDI asset; remote files are
    streamed lazily with remfile)."""
    from .sources import Source, resolve_source

    src = path if isinstance(path, Source) else resolve_source(Path(path) if not isinstance(path, str) else path)
    if src.remote:
        with _open_remote(src) as opened:
            yield opened
        return
    path = src.path
    if not path.exists():
        raise InputFileError(f"input file {str(path)!r} does not exist: check the path")
    if path.is_dir():
        raise InputFileError(f"input {str(path)!r} is a directory: give the path of an .nwb file")
    if not h5py.is_hdf5(str(path)):
        raise InputFileError(f"input {str(path)!r} is not an HDF5 file, so not NWB: give an NWB (HDF5) file")
    with h5py.File(str(path), "r") as f:
        if "nwb_version" not in f.attrs and "general" not in f:
            raise InputFileError(f"input {str(path)!r} is HDF5 but not NWB (no nwb_version attribute): "
                                 "give an NWB file")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # old files warn about cached namespaces; we report what matters
        io = NWBHDF5IO(str(path), mode="r", load_namespaces=True)
        try:
            nwbfile = io.read()
        except Exception as exc:  # pynwb raises many kinds of errors for broken files
            io.close()
            raise InputFileError(f"input {str(path)!r} could not be read as NWB ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0] if str(exc) else ''}): check the file with "
                                 "pynwb-validate") from None
    try:
        yield io, nwbfile
    finally:
        io.close()


@contextlib.contextmanager
def _open_remote(src) -> Iterator[tuple[NWBHDF5IO, NWBFile]]:
    """Stream a remote NWB file: remfile fetches only the byte ranges h5py reads."""
    try:
        import remfile
    except ImportError:
        raise InputFileError(f"reading {src.spec!r} needs remfile: pip install \"nwb-autolfads[dandi]\"") from None
    rf = h5 = io = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                rf = remfile.File(src.url)
                h5 = h5py.File(rf, "r")
            except Exception as exc:
                raise InputFileError(f"could not open {src.spec!r} ({type(exc).__name__}: "
                                     f"{str(exc).splitlines()[0][:200] if str(exc) else ''}): check the URL and the "
                                     "network connection (the server must allow HTTP range requests)") from None
            if "nwb_version" not in h5.attrs and "general" not in h5:
                raise InputFileError(f"{src.spec!r} is HDF5 but not NWB (no nwb_version attribute): give an NWB file")
            io = NWBHDF5IO(file=h5, mode="r", load_namespaces=True)
            try:
                nwbfile = io.read()
            except Exception as exc:
                raise InputFileError(f"{src.spec!r} could not be read as NWB ({type(exc).__name__}): check the file "
                                     "with pynwb-validate") from None
        yield io, nwbfile
    finally:
        for obj in (io, h5, rf):
            if obj is not None:
                try:
                    obj.close()
                except Exception:
                    pass


@dataclass
class Candidate:
    """A series (or a container of 1-D series, one per channel) that could be read."""

    path: str
    obj: object
    kind: str  # "series" (one 1-D/2-D TimeSeries) or "container" (one 1-D TimeSeries per channel)
    score: int  # how strongly name/description say EMG (0 = not at all)

    @property
    def neurodata_type(self) -> str:
        return type(self.obj).__name__


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
            if len(one_d) >= 2 and len({ts.data.shape[0] for ts in one_d}) == 1:  # one channel per series
                yield Candidate(path, obj, "container", _emg_score(obj) + max(_emg_score(t) for t in one_d))


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


_EMG_UNITS = re.compile(r"volt|^[munµμ]?v$|^a\.?u\.?$|arbitrary|^unknown$|^no unit$|^$", re.IGNORECASE)


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
    # Prefer strong matches, then containers/2-D series with more channels, then acquisition.
    def rank(c: Candidate):
        n_ch = len(_children_series(c.obj)) if c.kind == "container" else (
            c.obj.data.shape[1] if len(c.obj.data.shape) > 1 else 1)
        return (c.score, n_ch, c.path.startswith("acquisition"))
    return max(emg, key=rank)


def read_emg(nwbfile: NWBFile, path: str | None = None,
             channel_names: tuple[str, ...] | list[str] | None = None, lazy: bool = False) -> Signal:
    """Read the EMG (found automatically or at ``path``) into a :class:`Signal`.

    ``lazy=True`` leaves the samples in the file (:class:`~nwb_autolfads.signals.SeriesValues`,
    read on demand, valid while the file is open): how ``run`` preprocesses recordings too big
    for memory, and streams remote ones. By default the values are loaded into an array."""
    cand = find_emg(nwbfile, path)
    signal = read_candidate(cand)
    if not lazy:
        signal = signal.load()
    if channel_names is not None:
        if len(channel_names) != signal.n_channels:
            raise SignalError(f"{len(channel_names)} channel names given for {signal.n_channels} channels of "
                              f"{cand.path}: give exactly {signal.n_channels} names")
        signal.channel_names = list(channel_names)
    return signal


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


def _physical(ts: TimeSeries, columns: list) -> SeriesValues | np.ndarray:
    """The series' values in physical units: read on demand when stored in a file (so big and
    remote recordings are never loaded whole), as an array when the data are in memory."""
    columns = [c if isinstance(c, h5py.Dataset) else np.asarray(c) for c in columns]
    channel_conversion = getattr(ts, "channel_conversion", None)
    values = SeriesValues(columns, float(ts.conversion if ts.conversion is not None else 1.0),
                          None if channel_conversion is None else np.asarray(channel_conversion[:], dtype=float),
                          float(getattr(ts, "offset", 0.0) or 0.0))
    return values if all(isinstance(c, h5py.Dataset) for c in columns) else np.asarray(values)


def _series_channel_names(ts: TimeSeries, n: int) -> list[str]:
    electrodes = getattr(ts, "electrodes", None)
    if electrodes is not None:
        try:
            table = electrodes.table
            rows = np.asarray(electrodes.data[:])
            for col in ("label", "location", "group_name"):
                if col in table.colnames:
                    names = [str(table[col][int(r)]) for r in rows]
                    if len(set(names)) == n:
                        return names
        except Exception:  # unusual electrode tables: fall back to numbered channels
            pass
    for text in (ts.description or "", getattr(ts, "comments", "") or ""):
        match = _NAMES_IN_TEXT.search(text)
        if match:
            names = [s.strip() for s in match.group(1).split(",") if s.strip()]
            if len(names) == n:
                return names
    if n == 1:
        return [ts.name]
    return [f"ch{i}" for i in range(n)]


def _check_shape(path: str, shape: tuple) -> None:
    if len(shape) == 0 or len(shape) > 2:
        raise SignalError(f"{path}: data has shape {shape}, expected (time,) or (time, channels): "
                          "pass a 1-D or 2-D series with --emg")
    if shape[0] == 0 or (len(shape) == 2 and shape[1] == 0):
        raise SignalError(f"{path}: data is empty (shape {shape}): pass a series that holds samples")


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
    values = _physical(ts, [ts.data])
    return Signal(values=values, channel_names=_series_channel_names(ts, values.shape[1]),
                  unit=str(ts.unit or "unknown"), source_path=path, object_id=ts.object_id,
                  neurodata_type=type(ts).__name__, description=ts.description or "",
                  **_time_base(ts, path, values.shape[0]))


def _read_container(cand: Candidate) -> Signal:
    series = [ts for ts in _children_series(cand.obj) if ts.data is not None and len(ts.data.shape) == 1]
    ref = None
    for ts in series:
        sig = _read_series(ts, f"{cand.path}/{ts.name}")
        if ref is None:
            ref = sig
        elif sig.n_samples != ref.n_samples or not np.allclose(sig.times()[[0, -1]], ref.times()[[0, -1]]):
            raise SignalError(f"{cand.path}: the per-channel series do not share one time base "
                              f"({ts.name} differs from {series[0].name}): pass one series with --emg")
    units = {ts.unit for ts in series}
    convs = {(float(ts.conversion if ts.conversion is not None else 1.0), float(getattr(ts, "offset", 0.0) or 0.0))
             for ts in series}
    if len(convs) == 1 and all(isinstance(ts.data, h5py.Dataset) for ts in series):  # read on demand
        conversion, offset = convs.pop()
        values = SeriesValues([ts.data for ts in series], conversion, None, offset)
    else:
        values = np.stack([np.asarray(_physical(ts, [ts.data]))[:, 0] for ts in series], axis=1)
    return Signal(values=values, channel_names=[ts.name for ts in series],
                  unit=str(series[0].unit if len(units) == 1 else "mixed"), source_path=cand.path,
                  object_id=cand.obj.object_id, neurodata_type=type(cand.obj).__name__,
                  rate=ref.rate, starting_time=ref.starting_time, timestamps=ref.timestamps,
                  description=getattr(cand.obj, "description", "") or "")


# ----------------------------------------------------------------------------------- trials
def read_trial_times(nwbfile: NWBFile, column: str) -> np.ndarray:
    """The times in ``column`` of ``nwbfile.trials`` (seconds), one per trial, NaN kept."""
    trials = nwbfile.trials
    if trials is None or len(trials) == 0:
        raise SignalNotFoundError(f"--align-to {column!r}: the file has no trials table: leave out --align-to and "
                                  "--window to model the recording continuously")
    names = ["start_time", "stop_time", *[c for c in trials.colnames if c not in ("start_time", "stop_time")]]
    if column not in names:
        raise ConfigError(f"--align-to {column!r} is not a column of the trials table: choose one of "
                          f"{', '.join(names)}")
    values = np.asarray(trials[column].data[:])
    if values.ndim != 1 or not np.issubdtype(values.dtype, np.number):
        raise ConfigError(f"--align-to {column!r}: the column does not hold one time per trial: choose a time "
                          "column such as start_time")
    return values.astype(float)


# ----------------------------------------------------------------------------------- spikes
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


def read_units(nwbfile: NWBFile, query: str | None = None) -> SpikeUnits:
    """Spike times of the units table, optionally filtered by a pandas query on its scalar
    columns (e.g. ``"quality == 'good'"``)."""
    units = nwbfile.units
    if units is None or len(units) == 0 or "spike_times" not in units.colnames:
        raise SignalNotFoundError("no spikes: the file has no Units table with spike_times: use --model emg, or "
                                  "a file with sorted units")
    ids = [int(i) for i in units.id[:]]
    rows = list(range(len(ids)))
    if query:
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
    spike_times = [np.sort(np.asarray(units["spike_times"][r], dtype=float)) for r in rows]
    if all(t.size == 0 for t in spike_times):
        raise SignalError("all selected units are empty (no spike times): select other units with --units, or "
                          "use --model emg")
    obs = None
    if "obs_intervals" in units.colnames:
        obs = [np.asarray(units["obs_intervals"][r], dtype=float).reshape(-1, 2) for r in rows]
    return SpikeUnits(spike_times=spike_times, ids=[ids[r] for r in rows], query=query, object_id=units.object_id,
                      obs_intervals=obs)


def bin_spikes(units: SpikeUnits, centres: np.ndarray, bin_size: float) -> np.ndarray:
    """Spike counts in the bins centred at ``centres`` (seconds): (n_bins, n_units) float32."""
    edges = np.r_[centres - bin_size / 2, centres[-1] + bin_size / 2]
    counts = np.stack([np.histogram(t, bins=edges)[0] for t in units.spike_times], axis=1)
    return counts.astype(np.float32)
