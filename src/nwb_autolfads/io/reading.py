"""Reading signals from NWB files.

Opens files read-only, checks that they are NWB, finds the EMG (or takes the object path the
user gives) and returns a :class:`~nwb_autolfads.data.signals.Signal` in physical units with its
time base (``timestamps`` or ``starting_time`` + ``rate``), channel names and source path.
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import h5py
import numpy as np
from pynwb import NWBHDF5IO, NWBFile, TimeSeries

from nwb_autolfads.ndx import namespace  # noqa: F401  loads the ndx-autolfads namespace wherever NWB is read
from nwb_autolfads.errors import ConfigError, InputFileError, SignalError, SignalNotFoundError
from nwb_autolfads.io.formats import describe_bytes, describe_directory, describe_file, is_zarr_store, zarr_nwb_version
from nwb_autolfads.data.signals import SeriesValues, Signal

__all__ = ["open_nwb", "Candidate", "iter_series", "find_emg", "read_emg", "SpikeUnits", "read_units", "bin_spikes",
           "OUTPUT_MODULE", "ELECTRODE_NAME_COLUMNS", "electrode_names", "channel_names_of", "spike_time_problems",
           "check_spike_span", "check_unit_clocks", "spike_bin_centres", "MAX_SPIKE_BINS", "MAX_OUTSIDE_FRACTION",
           "MIN_MEDIAN_RATE_HZ", "check_external_links", "spike_bin_edges"]

log = logging.getLogger(__name__)

OUTPUT_MODULE = "autolfads"
"""Name of the processing module our results go into (never read back as input)."""

_EMG_WORDS = re.compile(r"emg|electromyo|muscle", re.IGNORECASE)
_NAMES_IN_TEXT = re.compile(r"(?:muscles|channels|channel names)\s*[:=]\s*([^\n;.]+)", re.IGNORECASE)


@contextlib.contextmanager
def open_nwb(path) -> Iterator[tuple[NWBHDF5IO, NWBFile]]:
    """Open an NWB file read-only; raise :class:`InputFileError` with a clear message if the path
    is missing, not NWB (naming what it is instead: MATLAB, EDF, CSV, Intan, Open Ephys, plain
    HDF5...), or holds an HDF5 external link to a missing file. ``path``: a local path, or a
    :class:`~nwb_autolfads.io.sources.Source` (local, http(s) URL or DANDI asset; remote files are
    streamed lazily with remfile). NWB Zarr stores (``*.nwb.zarr`` directories, local or remote)
    are read with hdmf-zarr (``pip install "nwb-autolfads[zarr]"``): the io is then an
    ``NWBZarrIO``."""
    from nwb_autolfads.io.sources import Source, resolve_source

    src = path if isinstance(path, Source) else resolve_source(Path(path) if not isinstance(path, str) else path)
    if src.remote:
        with (_open_zarr(src.url, src.spec) if src.zarr else _open_remote(src)) as opened:
            yield opened
        return
    path = src.path
    if not path.exists():
        raise InputFileError(f"input file {str(path)!r} does not exist: check the path")
    if path.is_dir():
        if is_zarr_store(path) and zarr_nwb_version(path):
            with _open_zarr(str(path), str(path)) as opened:
                yield opened
            return
        what = describe_directory(path)
        raise InputFileError(f"input {str(path)!r} is a directory" + (f", {what}" if what else
                             ": give the path of an .nwb file (or of an NWB Zarr store, a *.nwb.zarr folder)"))
    what = describe_file(path)
    hdf5 = h5py.is_hdf5(str(path))
    if hdf5:
        _check_hdf5_opens(path)
    if what is not None:
        raise InputFileError(f"input {str(path)!r} is {'HDF5 but' if hdf5 else 'not an HDF5 file, so'} not NWB: it is "
                             f"{what}")
    if not hdf5:
        raise InputFileError(f"input {str(path)!r} is not an HDF5 file, so not NWB, and not a format nwb-autolfads "
                             "recognises: give an NWB file (HDF5 .nwb, or an NWB Zarr store *.nwb.zarr); other "
                             "formats can be converted to NWB with NeuroConv (https://neuroconv.readthedocs.io)")
    with h5py.File(str(path), "r") as f:
        if "nwb_version" not in f.attrs and "general" not in f:
            raise InputFileError(f"input {str(path)!r} is HDF5 but not NWB (no nwb_version attribute): "
                                 "give an NWB file, or convert the data with NeuroConv "
                                 "(https://neuroconv.readthedocs.io)")
        check_external_links(f, str(path), folder=path.parent)
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


def _check_hdf5_opens(path: Path) -> None:
    """Raise :class:`InputFileError` when an HDF5 file cannot be opened (truncated by an
    interrupted copy or download, or otherwise damaged)."""
    try:
        with h5py.File(str(path), "r"):
            pass
    except OSError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        size = path.stat().st_size
        raise InputFileError(f"input {str(path)!r} is a damaged HDF5 file ({first}; {size:,} bytes): "
                             "an interrupted copy or download? Copy or download it again") from None


def check_external_links(f: h5py.File, where: str, folder: Path | None) -> None:
    """Raise :class:`InputFileError` naming the first HDF5 external link of ``f`` that cannot be
    followed (its file is missing, or lacks the object): pynwb would silently leave that
    object out, and a series stored elsewhere would then simply be absent. ``where``: the
    input as given; ``folder``: the local file's folder (None for a remote file)."""
    base = folder
    broken: list[tuple[str, h5py.ExternalLink]] = []

    def walk(group: h5py.Group, prefix: str) -> None:
        for name in group:
            link = group.get(name, getlink=True)
            inner = f"{prefix}/{name}" if prefix else name
            if isinstance(link, h5py.ExternalLink):
                if base is None:  # a remote file's links would be looked up on this machine: never followed
                    broken.append((inner, link))
                    continue
                try:
                    group[name]
                except (KeyError, OSError, ValueError):
                    broken.append((inner, link))
            elif isinstance(link, h5py.HardLink):
                obj = group.get(name)
                if isinstance(obj, h5py.Group):
                    walk(obj, inner)

    walk(f, "")
    if not broken:
        return
    inner, link = broken[0]
    target = Path(link.filename)
    resolved = target if target.is_absolute() or base is None else base / target
    missing = base is None or not resolved.exists()
    more = f" ({len(broken) - 1} more broken link(s) besides)" if len(broken) > 1 else ""
    if missing:
        if base is None:
            problem = (f"the file {link.filename!r} it points to cannot be reached (a remote file's links are not "
                       "followed)")
            fix = "download both files into one folder and give the local path, or a file with the data embedded"
        else:
            problem = f"the file {link.filename!r} it points to is missing (looked for {str(resolved)!r})"
            fix = (f"put {target.name} where the link expects it (relative links are resolved from the folder of "
                   "the file), or give a file with the data embedded instead of linked")
    else:
        problem = f"{link.filename!r} has no object {link.path!r}"
        fix = "give the linked file that holds it, or a file with the data embedded instead of linked"
    raise InputFileError(f"input {where!r}: {inner} is an HDF5 external link to {link.filename}:{link.path}, and "
                         f"{problem}{more}: {fix}")


@contextlib.contextmanager
def _open_zarr(location: str, spec: str) -> Iterator[tuple[object, NWBFile]]:
    """Open an NWB Zarr store (a local directory, or an http(s) URL read through fsspec)."""
    try:
        from hdmf_zarr.nwb import NWBZarrIO
    except ImportError:
        raise InputFileError(f"{spec} is an NWB Zarr store; install with pip install 'nwb-autolfads[zarr]'") from None
    io = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                io = NWBZarrIO(location, mode="r", load_namespaces=True)
                nwbfile = io.read()
            except Exception as exc:
                raise InputFileError(f"{spec!r} could not be read as an NWB Zarr store ({type(exc).__name__}: "
                                     f"{str(exc).splitlines()[0][:200] if str(exc) else ''}): check the path or URL, "
                                     "and the store with nwbinspector") from None
        yield io, nwbfile
    finally:
        if io is not None:
            try:
                io.close()
            except Exception:
                pass


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
            head = None
            try:
                rf = remfile.File(src.url)
                head = rf.read(4096)  # what the file is, if it is not HDF5
                rf.seek(0)
                h5 = h5py.File(rf, "r")
            except Exception as exc:
                what = describe_bytes(head, src.name) if head is not None else None
                raise InputFileError(f"could not open {src.spec!r}" + (
                    f": it is not NWB but {what}" if what else
                    f" ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}): check the URL and "
                    "the network connection (the server must allow HTTP range requests)")) from None
            what = describe_bytes(head, src.name)
            if what is not None:  # HDF5 inside another format (a MATLAB 7.3 file)
                raise InputFileError(f"{src.spec!r} is HDF5 but not NWB: it is {what}")
            if "nwb_version" not in h5.attrs and "general" not in h5:
                raise InputFileError(f"{src.spec!r} is HDF5 but not NWB (no nwb_version attribute): give an NWB file, "
                                     "or convert the data with NeuroConv (https://neuroconv.readthedocs.io)")
            check_external_links(h5, src.spec, folder=None)
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
        n_ch = len(_children_series(c.obj)) if c.kind == "container" else (  # the shorter axis: channels
            min(c.obj.data.shape[:2]) if len(c.obj.data.shape) > 1 else 1)
        return (c.score, n_ch, c.path.startswith("acquisition"))
    return max(emg, key=rank)


def read_emg(nwbfile: NWBFile, path: str | None = None,
             channel_names: tuple[str, ...] | list[str] | None = None, lazy: bool = False) -> Signal:
    """Read the EMG (found automatically or at ``path``) into a :class:`Signal`.

    ``lazy=True`` leaves the samples in the file (:class:`~nwb_autolfads.data.signals.SeriesValues`,
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
    if len(convs) == 1 and all(_in_file(ts.data) for ts in series):  # read on demand
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
    where = f"{what} ({lo:.6g}-{hi:.6g} s" + (f" in {len(spans)} stretches)" if len(spans) > 1 else ")")
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
    return t0 + (np.arange(n_bins) + 0.5) * bin_size


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
