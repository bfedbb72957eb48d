"""Writing one run's results into NWB, atomically, as an ndx-autolfads ``AutoLFADSRun``.

Default: a **new** file. The source is opened read-only; its content plus the run (in the
standard processing module ``autolfads``) is *exported* (never ``nwbfile.copy()``) to a
temporary file in the target directory, which is re-opened to check it and only then renamed
to the output path. An interrupted or failed write leaves no file at the output path.

``in_place=True``: the run is appended to the source itself. The source is copied to a
temporary file beside it, the run is appended to the copy, the copy is re-opened and checked,
and only then renamed over the source, so an interruption at any moment leaves the source
either untouched or complete with the new run (it costs the file's size in free disk space).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from hdmf.common import DynamicTable, DynamicTableRegion, VectorData
from pynwb import NWBHDF5IO, ProcessingModule, TimeSeries

from nwb_autolfads.data.timebase import stored_rate
from nwb_autolfads.errors import NwbAutolfadsError, OutputError
from nwb_autolfads.ndx.namespace import AutoLFADSRun, ContinuousEstimate, FiringRates, MuscleActivations
from nwb_autolfads.io.reading import OUTPUT_MODULE, open_nwb

__all__ = ["uninterrupted", "RunRecord", "Estimate", "OutputLock", "default_output_path", "check_output_path", "check_run_name", "RUN_NAME_PATTERN", "write_results", "build_run",
           "results_only_file", "file_sha256", "git_revision", "to_json"]

log = logging.getLogger(__name__)

_DANDI_NAME = re.compile(r"^(sub-[A-Za-z0-9]+)(_ses-[A-Za-z0-9]+)?")


@dataclass
class Estimate:
    """The estimate of one continuous input a run modelled (force), in its source's units,
    written as a ``ContinuousEstimate`` named ``name`` (e.g. ``inferred_force``)."""

    name: str
    modality: str  # its entry in data.modalities (nwb_autolfads.modalities), e.g. force
    data: np.ndarray  # (n_bins, C) source units
    unit: str
    channel_names: list[str]
    offsets: np.ndarray  # (C,) source units: the model saw (x - offsets) / scales
    scales: np.ndarray  # (C,) source units
    source_path: str
    object_id: str | None = None
    description: str = ""
    lower: np.ndarray | None = None  # (n_bins, C) credible interval's lower bound, source units
    upper: np.ndarray | None = None


@dataclass
class RunRecord:
    """Everything one run writes. Arrays are on the bins' time base ``times`` (bin centres, in
    the source's clock); ``None`` for what the run did not model."""

    times: np.ndarray  # (n_bins,)
    bin_size: float
    factors: np.ndarray  # (n_bins, F)
    inferred_inputs: np.ndarray  # (n_bins, U)
    description: str
    config: dict
    software: dict
    hyperparameters: dict
    metrics: dict
    seed: int
    started: str
    finished: str
    source_identifier: str
    source_sha256: str
    modalities: str
    activations: np.ndarray | None = None  # (n_bins, C) in the source's units
    channel_names: list[str] = field(default_factory=list)
    unit: str = "a.u."
    scales: np.ndarray | None = None  # (C,)
    activations_description: str = ""
    rates: np.ndarray | None = None  # (n_bins, n_units) Hz
    unit_ids: list[int] = field(default_factory=list)  # ids of the Units rows, in column order
    rates_description: str = ""
    ic_mean: np.ndarray | None = None  # (n_windows, I)
    ic_times: np.ndarray | None = None  # (n_windows,)
    source_paths: list[str] = field(default_factory=list)
    source_object_ids: list[str] = field(default_factory=list)
    emg_object_id: str | None = None  # the object the source_emg link points to
    source_location: str = ""  # absolute local path, or the URL given (http(s) or DANDI)
    source_url: str = ""  # the http(s) URL a remote source was streamed from
    source_asset_id: str = ""  # DANDI asset id
    preprocessing: dict | None = None
    history: list[dict] = field(default_factory=list)  # one dict per validation check (with its step)
    pbt_history: list[dict] | None = None  # one dict per generation x member
    command: str = ""
    git_revision: str | None = None
    name: str | None = None  # run name; default run_<started>
    source: dict | None = None  # where the input came from (sources.Source.provenance)
    interval: float | None = None  # probability of the credible interval the bounds below give (None: none)
    activations_lower: np.ndarray | None = None  # (n_bins, C) its lower bound of the activations, source units
    activations_upper: np.ndarray | None = None  # (n_bins, C) its upper bound
    rates_lower: np.ndarray | None = None  # (n_bins, n_units) Hz
    rates_upper: np.ndarray | None = None  # (n_bins, n_units) Hz
    estimates: list[Estimate] = field(default_factory=list)  # continuous inputs modelled (force)
    model_location: str = ""  # absolute path of the model folder this run saved (or applied); "" for none
    model_sha256: str = ""  # SHA-256 of its model.safetensors
    model_applied: bool = False  # the run applied a saved model (no training: no training curves)
    sessions: dict | None = None  # a multi-session model: {"this": k, "sessions": [per-session identity]}


def compact_float(a: np.ndarray) -> np.ndarray:
    """Values stored as float32 (half the file size), unless one in the source's units is beyond
    float32's range: then as float64, so nothing finite is ever written as inf."""
    finite = a[np.isfinite(a)]
    return a.astype(np.float32) if not finite.size or np.abs(finite).max() <= np.finfo(np.float32).max else a


def default_output_path(input_path: str | Path, modalities: str = "emg") -> Path:
    """``sub-X_ses-Y_desc-autolfads_<modalities>.nwb`` for DANDI-named inputs, else
    ``<stem>_autolfads.nwb``; beside the input (the stem of ``x.nwb.zarr`` is ``x``)."""
    input_path = Path(input_path)
    stem = re.sub(r"(\.nwb)?\.zarr$", "", input_path.name.rstrip("/")) if input_path.suffix == ".zarr" \
        else input_path.stem
    match = _DANDI_NAME.match(stem)
    if match:
        name = f"{match.group(1)}{match.group(2) or ''}_desc-autolfads_{modalities}.nwb"
    else:
        name = f"{stem}_autolfads.nwb"
    return input_path.with_name(name)


def check_output_path(output: str | Path, input_path: str | Path | None, overwrite: bool,
                      content: str = "full") -> Path:
    """Fail early (before any training) if the output cannot be written (``content``: the output's,
    "full" or "results"; replacing an earlier result warns about data it drops).

    Raises
    ------
    OutputError
        ``output`` does not end in .nwb, is the input or a folder, or exists: without
        ``overwrite``, or with it when it is not an earlier result (it holds no run of
        nwb-autolfads, or cannot be read); its folder is missing or not writable."""
    output = Path(output)
    if output.suffix != ".nwb":
        raise OutputError(f"output {str(output)!r} does not end in .nwb: give a path like result.nwb")
    if input_path is not None and output.exists() and output.resolve() == Path(input_path).resolve():
        raise OutputError(f"output {str(output)!r} is the input file: choose another --output, or pass "
                          "--in-place to add the results to the input itself")
    if output.is_dir():
        raise OutputError(f"output {str(output)!r} is a directory: give a file path ending in .nwb")
    if output.exists() and not overwrite:
        raise OutputError(f"output {str(output)!r} already exists: pass --overwrite to replace it, or choose "
                          "another --output")
    if output.exists():
        _check_replaceable(output, Path(input_path) if input_path is not None else None, content)
    _check_writable_dir(output)
    return output


def _runs_held(path: Path) -> list[str] | str:
    """The runs (``AutoLFADSRun`` objects in ``processing/autolfads``) an existing NWB HDF5 file
    holds, or why it is not an output of nwb-autolfads: "no runs" (an NWB file, e.g. a recording,
    also one with a module of that name from another pipeline), "added in place" (a recording
    given runs with ``--in-place``: every run's source is the file itself, same identifier; an
    output's first run names another file), or the reason it cannot be read."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            group = f.get(f"processing/{OUTPUT_MODULE}")
            runs = [k for k in group if _attr(group[k], "neurodata_type") == "AutoLFADSRun"] \
                if isinstance(group, h5py.Group) else []
            if not runs:  # no module, or one of that name that another pipeline wrote
                return "no runs"
            identifier = f["identifier"][()] if "identifier" in f else b""
            identifier = identifier.decode() if isinstance(identifier, bytes) else str(identifier)
            sources = {_attr(group[k], "source_file_identifier") for k in runs}
            return "added in place" if sources == {identifier} else sorted(runs)
    except (OSError, ValueError, KeyError) as exc:
        return str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__


def _attr(obj, name: str) -> str:
    """An HDF5 attribute as text ("" when absent)."""
    value = obj.attrs.get(name, "")
    return value.decode() if isinstance(value, bytes) else str(value)


_SAID_REPLACING: set[tuple[str, int, int]] = set()
"""Earlier results (path, mtime, size) whose replacement this process has warned about."""

_DATA_GROUPS = ("acquisition", "analysis", "scratch", "stimulus/presentation", "stimulus/templates", "intervals")


def _data_objects(path: Path) -> set[str] | None:
    """The data objects of an NWB HDF5 file, as paths: the members of acquisition, analysis,
    scratch, stimulus and intervals, the units table, and each processing module's members
    (nwb-autolfads' own module left out). None: not readable as HDF5 (a Zarr store, a remote file)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            found = {f"{top}/{name}" for top in _DATA_GROUPS if isinstance(f.get(top), h5py.Group) for name in f[top]}
            found |= {"units"} if "units" in f else set()
            modules = f.get("processing")
            if isinstance(modules, h5py.Group):
                found |= {f"processing/{m}/{name}" for m in modules if m != OUTPUT_MODULE
                          and isinstance(modules[m], h5py.Group) for name in modules[m]}
            return found
    except (OSError, ValueError, KeyError):
        return None


def _dropped_by_replacing(output: Path, input_path: Path | None, content: str) -> list[str]:
    """The data objects of an earlier result that replacing it drops: in a results-only result all
    of them (nwb-autolfads writes none there); in a full copy those its input does not hold (added
    to the result since, or gone from the input). Empty when the input cannot be compared."""
    held = _data_objects(output) or set()
    if content == "results":
        return sorted(held)
    source = _data_objects(input_path) if input_path is not None else None
    return [] if source is None else sorted(held - source)


def _check_replaceable(output: Path, input_path: Path | None = None, content: str = "full") -> None:
    """``--overwrite`` replaces earlier results only: refuse a file that holds no run of
    nwb-autolfads (a recording, another tool's file) or cannot be read, and say when the result
    replaced holds several runs (added with ``--in-place``), which all go, or data nwb-autolfads
    did not write there (:func:`_dropped_by_replacing`: a user's notes in scratch, a series added
    since), which goes too."""
    runs = _runs_held(output)
    stat = output.stat()
    key = (str(output.resolve()), stat.st_mtime_ns, stat.st_size)
    said = key in _SAID_REPLACING
    _SAID_REPLACING.add(key)
    if runs == "added in place":
        raise OutputError(f"output {str(output)!r} exists and is a recording that runs were added to with --in-place "
                          "(its runs' source is the file itself); --overwrite replaces only outputs of nwb-autolfads: "
                          "choose another --output, or add this run to it with --in-place")
    if runs == "no runs":
        raise OutputError(f"output {str(output)!r} exists and is not a result of nwb-autolfads (it holds no "
                          f"processing/{OUTPUT_MODULE} runs: a recording?); --overwrite replaces only earlier results: "
                          "choose another --output, or move that file away yourself")
    if isinstance(runs, str):
        raise OutputError(f"output {str(output)!r} exists and cannot be read as an NWB HDF5 file ({runs}); "
                          "--overwrite replaces only earlier results: choose another --output, or move that file "
                          "away yourself (if another program has it open, close that first)")
    if said:  # warned before training; the write checks again
        return
    if len(runs) > 1:
        log.warning("--overwrite: %s holds %d runs (%s); all of them are replaced by this run's result when it "
                    "is written (to keep them, choose another --output, or add this run with --in-place)",
                    output, len(runs), ", ".join(runs[:6]) + (" ..." if len(runs) > 6 else ""))
    dropped = _dropped_by_replacing(output, input_path, content)
    if dropped:
        log.warning("--overwrite: %s holds data nwb-autolfads did not write there (%s); it goes when the file is "
                    "replaced by this run's result (to keep it, move it to another file first, or choose another "
                    "--output)", output, ", ".join(dropped[:6]) + (f" and {len(dropped) - 6} more" if len(dropped) > 6
                                                                     else ""))


RUN_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+=-]{0,99}$")
"""What a run's name may be: a letter or digit, then up to 99 letters, digits or ``_ . + = -``
(it names an NWB object, and the model folder ``<output>.<run name>.autolfads-model``)."""


def check_run_name(name: str | None, runs: Iterable[str] = ()) -> None:
    """Fail early (before any training) on a run name that cannot be written, or that a run of the
    file the result is added to (``runs``) has already (it would have become NAME_2, and
    ``load_results(run=NAME)`` would still give the old run).

    Raises
    ------
    OutputError
        ``name`` does not match :data:`RUN_NAME_PATTERN`, or is in ``runs``.
    """
    if name is None:
        return
    if not isinstance(name, str) or not RUN_NAME_PATTERN.match(name):
        raise OutputError(f"run name {name!r} cannot be used: start with a letter or digit and use only letters, "
                          "digits and _ . + = - (at most 100 characters), e.g. --run-name bin5ms")
    runs = list(runs)
    if name in runs:
        raise OutputError(f"run name {name!r} is taken: the file already holds a run of that name (runs: "
                          f"{', '.join(runs[:6])}{' ...' if len(runs) > 6 else ''}); choose another --run-name")


def _check_writable_dir(path: Path) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"output directory {str(parent)!r} does not exist: create it or choose another --output")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"directory {str(parent)!r} is not writable: choose another --output")


def check_in_place(path: str | Path) -> Path:
    """Fail early if ``path`` cannot be updated in place: it must be writable (by its mode bits
    too: root may write anything, and a locked git-annex object once got a run), have one name
    (the file is replaced by a new one: other hard links would keep the old content), and its
    directory (of the file a link points to), which holds the temporary copy, must be writable."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"--in-place: {str(path)!r} is a folder (an NWB Zarr store): results are written as an "
                          "NWB HDF5 file; leave out --in-place to write a new file")
    import stat

    mode = os.stat(path)  # through a link: the file it points to
    if not os.access(path, os.W_OK) or not mode.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        raise OutputError(f"--in-place: {str(path)!r} is read-only (a file git-annex or datalad has locked?): unlock "
                          "it (git annex unlock / datalad unlock), make it writable, or write a new file (leave out "
                          "--in-place)")
    if mode.st_nlink > 1:
        raise OutputError(f"--in-place: {str(path)!r} has {mode.st_nlink} hard links: the file is replaced by a new "
                          "one, and its other names would keep the old content; write a new file (leave out "
                          "--in-place), or copy it first")
    folder = Path(os.path.realpath(path)).parent
    if not os.stat(folder).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH):
        raise OutputError(f"--in-place: the folder {str(folder)!r} is read-only (a git-annex or datalad store?): the "
                          "file is replaced through a copy beside it; make it writable or write a new file (leave out "
                          "--in-place)")
    _check_writable_dir(Path(os.path.realpath(path)))
    return path


class OutputLock:
    """An exclusive lock on writing ``target`` (a new output, or the input for ``--in-place``),
    held from before training until the result is in place: two runs cannot write the same
    file at once. The lock is ``.<name>.lock`` beside the target, taken with :mod:`filelock` (an
    OS lock: released when the process ends, however it ends, so a killed run never leaves a lock
    that blocks), holding ``pid N`` of its holder for the message of a run it turns away, and
    removed when released. Re-entrant within a process (:func:`write_results` takes it again
    under the pipeline's).

    Raises
    ------
    OutputError
        On entry: another process holds the lock."""

    _held: dict[str, int] = {}  # targets this process holds -> nesting depth

    def __init__(self, target: str | Path):
        self.target = Path(target)
        self.path = self.target.with_name(f".{self.target.name}.lock")
        self._key = os.path.realpath(self.path)
        self._lock = None

    def _holder(self) -> str:
        try:
            return self.path.read_text(errors="replace").strip()[:200]
        except OSError:  # missing, or locked against reading (Windows)
            return ""

    def __enter__(self) -> "OutputLock":
        from filelock import FileLock, Timeout

        if self._key in OutputLock._held:
            OutputLock._held[self._key] += 1
            return self
        for _ in range(3):
            holder = self._holder()  # read first: an older filelock truncates the file when it tries
            lock = FileLock(str(self.path), timeout=0)
            try:
                lock.acquire()
                break
            except Timeout:
                if self.path.exists():  # else its holder removed it as we tried: try again
                    raise OutputError(f"{str(self.target)!r} is being written by another nwb-autolfads run "
                                      f"({self._holder() or holder or 'unknown'}): wait for it to finish, or "
                                      "choose another --output") from None
        else:
            raise OutputError(f"could not lock {str(self.path)!r}: another run took it and released it three times "
                              "in a row; run again")
        try:
            self.path.write_text(f"pid {os.getpid()}")
        except OSError:  # locked against writing through another handle (Windows): only the message loses
            pass
        self._lock = lock
        OutputLock._held[self._key] = 1
        return self

    def __exit__(self, *exc) -> None:
        if self._key not in OutputLock._held:
            return
        OutputLock._held[self._key] -= 1
        if OutputLock._held[self._key] > 0 or self._lock is None:
            return
        del OutputLock._held[self._key]
        try:  # removed while still held: a run that opened it meanwhile sees it unlinked and takes a new one
            os.unlink(self.path)
        except OSError:
            pass
        self._lock.release()
        self._lock = None


def file_sha256(path: str | Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def git_revision(root: str | Path | None = None) -> str:
    """The checkout's git revision (with ``-dirty`` if it has changes) when the package runs from
    a git checkout (``root``: the checkout, by default the folder above ``src/``), else a
    statement that says so with the installed version, e.g. ``not a git checkout (installed
    package 0.1.0)``: the provenance is never left empty."""
    from nwb_autolfads import __version__

    here = Path(__file__).resolve().parent  # src/nwb_autolfads/io
    root = Path(root) if root is not None else here.parents[2]
    if not (root / ".git").exists():
        return f"not a git checkout (installed package {__version__})"
    try:
        rev = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty", "--abbrev=40"],
                             capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        rev = None
    return (rev.stdout.strip() if rev is not None else "") or (
        f"unknown: git did not answer in the checkout {root} (package {__version__})")


def to_json(data: Any) -> str:
    return json.dumps(data, default=_json_default)


def _json_default(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _time_kwargs(times: np.ndarray, bin_size: float) -> dict:
    """``starting_time`` + ``rate`` when every reader rebuilds exactly ``times`` from them, else the
    ``timestamps`` themselves: the file always holds the times the run used, to the last bit."""
    rate = stored_rate(times, bin_size)
    if rate is not None:
        return {"starting_time": float(times[0]) if times.size else 0.0, "rate": rate}
    return {"timestamps": np.asarray(times, dtype=np.float64)}


def _table(name: str, description: str, rows: list[dict]) -> DynamicTable:
    """A DynamicTable with one column per key of the rows (numbers as float64/int64, the rest
    as text; missing values NaN or '')."""
    keys: list[str] = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    columns = []
    for k in keys:
        values = [row.get(k) for row in rows]
        present = [v for v in values if v is not None]
        if present and all(isinstance(v, (bool, np.bool_)) for v in present):
            data = np.array([bool(v) if v is not None else False for v in values])
        elif present and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in present):
            data = np.array([int(v) if v is not None else -1 for v in values], dtype=np.int64)
        elif present and all(isinstance(v, (int, float, np.integer, np.floating)) for v in present):
            data = np.array([float(v) if v is not None else np.nan for v in values], dtype=np.float64)
        else:
            data = [v if isinstance(v, str) else ("" if v is None else to_json(v)) for v in values]
        columns.append(VectorData(name=k, description=k.replace("_", " "), data=data))
    return DynamicTable(name=name, description=description, columns=columns,
                        id=list(range(len(rows))))


def default_run_name(started: str) -> str:
    """The name of a run given none: ``run_<its UTC start, e.g. 20240501T120000>Z`` (``started``:
    ISO 8601)."""
    return "run_" + re.sub(r"[^0-9T]", "", started.split(".")[0].split("+")[0]) + "Z"


def unique_run_name(module: ProcessingModule | Iterable[str] | None, wanted: str) -> str:
    """``wanted``, or ``wanted_2``, ``wanted_3``, ... when a run of ``module`` (or a name in the
    given names) has it already."""
    existing = set(module.data_interfaces) if isinstance(module, ProcessingModule) else set(module or ())
    name, k = wanted, 1
    while name in existing:
        k += 1
        name = f"{wanted}_{k}"
    return name


def _bounds(record: RunRecord, lower: np.ndarray | None, upper: np.ndarray | None, shape: tuple) -> dict[str, Any]:
    """The ``lower`` / ``upper`` / ``credible_interval`` fields of an estimate (empty without an interval)."""
    if record.interval is None or lower is None or upper is None:
        return {}
    if lower.shape != shape or upper.shape != shape:
        raise OutputError(f"the credible interval's bounds have shapes {lower.shape} / {upper.shape}, the estimate "
                          f"{shape}: nothing was written (a fault of nwb-autolfads: please report it)")
    return {"lower": compact_float(lower), "upper": compact_float(upper), "credible_interval": float(record.interval)}


def build_run(nwbfile, record: RunRecord, source_in_file: bool = True) -> AutoLFADSRun:
    """Make the ``AutoLFADSRun`` of ``record`` for ``nwbfile`` (the file it will be written into:
    its objects are what the run links to). ``source_in_file``: False for a results-only file
    (the source's data are elsewhere)."""
    module = nwbfile.processing.get(OUTPUT_MODULE)
    wanted = record.name or default_run_name(record.started)
    name = unique_run_name(module, wanted)
    timing = _time_kwargs(record.times, record.bin_size)
    kwargs: dict[str, Any] = {**_estimates(nwbfile, record, timing), **_latents(record, timing),
                              **_provenance(nwbfile, record)}
    from nwb_autolfads import __version__
    return AutoLFADSRun(
        name=name, description=record.description, software_version=__version__, random_seed=int(record.seed),
        started=record.started, finished=record.finished, source_file_identifier=record.source_identifier,
        source_file_sha256=record.source_sha256, source_paths=",".join(record.source_paths),
        source_object_ids=",".join(record.source_object_ids), source_in_file=bool(source_in_file),
        modalities=record.modalities,
        bin_size=float(record.bin_size),
        factors=TimeSeries(name="factors", data=record.factors.astype(np.float32), unit="a.u.", resolution=-1.0,
                           description=f"LFADS latent factors ({record.factors.shape[1]}) shared by the modelled "
                                       "signals", **timing),
        config=to_json(record.config), software=to_json(record.software),
        hyperparameters=to_json(record.hyperparameters), metrics=to_json(record.metrics), **kwargs)


def _estimates(nwbfile, record: RunRecord, timing: dict) -> dict[str, Any]:
    """The run's estimates in source units: ``emg_activations``, ``firing_rates`` (linked to the
    file's Units table when it holds one) and the ``continuous_estimates`` (e.g. force)."""
    kwargs: dict[str, Any] = {}
    if record.activations is not None:
        kwargs["emg_activations"] = MuscleActivations(
            name="emg_activations", data=compact_float(record.activations), unit=record.unit,
            channel_names=list(record.channel_names), description=record.activations_description,
            resolution=-1.0, **({"scales": np.asarray(record.scales, dtype=np.float64)}
                                if record.scales is not None else {}),
            **_bounds(record, record.activations_lower, record.activations_upper, record.activations.shape), **timing)
    if record.rates is not None:
        kwargs["firing_rates"] = FiringRates(name="firing_rates", data=compact_float(record.rates), unit="Hz",
                                             description=record.rates_description, resolution=-1.0,
                                             **_units_of(nwbfile, record),
                                             **_bounds(record, record.rates_lower, record.rates_upper,
                                                       record.rates.shape), **timing)
    if record.estimates:
        kwargs["continuous_estimates"] = [
            ContinuousEstimate(name=e.name, data=compact_float(e.data), unit=e.unit, modality=e.modality,
                               channel_names=list(e.channel_names), offsets=np.asarray(e.offsets, dtype=np.float64),
                               scales=np.asarray(e.scales, dtype=np.float64), description=e.description,
                               resolution=-1.0, **_bounds(record, e.lower, e.upper, e.data.shape), **timing)
            for e in record.estimates]
    return kwargs


def _units_of(nwbfile, record: RunRecord) -> dict[str, Any]:
    """The modelled units by id always; and as rows of the Units table when the file holds it (a
    results-only file does not: its Units table is in the source). Raises OutputError when the
    file's table lacks a modelled unit."""
    kwargs: dict[str, Any] = {"unit_ids": np.asarray(record.unit_ids, dtype=np.int64)}
    if nwbfile.units is not None:
        all_ids = [int(i) for i in nwbfile.units.id[:]]
        missing = [i for i in record.unit_ids if int(i) not in all_ids]
        if missing:
            raise OutputError(f"the run modelled units {missing[:5]} that the file's Units table does not hold: "
                              "write the results to the file the units were read from")
        kwargs["units"] = DynamicTableRegion(name="units", data=[all_ids.index(int(i)) for i in record.unit_ids],
                                             description="the modelled units, in column order",
                                             table=nwbfile.units)
    return kwargs


def _latents(record: RunRecord, timing: dict) -> dict[str, Any]:
    """The model's latent variables: ``inferred_inputs`` (per bin) and ``window_initial_conditions``
    (a table, one row per window), when the run has them."""
    kwargs: dict[str, Any] = {}
    if record.inferred_inputs.shape[1] > 0:
        kwargs["inferred_inputs"] = TimeSeries(
            name="inferred_inputs", data=record.inferred_inputs.astype(np.float32), unit="a.u.", resolution=-1.0,
            description=f"LFADS inferred inputs u_t ({record.inferred_inputs.shape[1]}) to the generator", **timing)
    if record.ic_mean is not None and record.ic_mean.shape[0] > 0:
        # a table, not a TimeSeries (spec 0.7.0): a run with fewer windows than initial-condition
        # dimensions would read as transposed to nwbinspector (CRITICAL, an error to dandi validate)
        n = record.ic_mean.shape[0]
        kwargs["window_initial_conditions"] = DynamicTable(
            name="window_initial_conditions", id=list(range(n)),
            description="one row per window: the posterior mean of its initial condition, at its first modelled bin",
            columns=[VectorData(name="time", description="the window's first modelled bin (seconds)",
                                data=np.asarray(record.ic_times, dtype=np.float64)),
                     VectorData(name="initial_condition", description="posterior mean of the window's initial "
                                "condition (a.u.), one value per dimension", data=record.ic_mean.astype(np.float32))])
    return kwargs


def _provenance(nwbfile, record: RunRecord) -> dict[str, Any]:
    """The optional provenance fields: the PBT history, preprocessing, git revision, command, and
    where the source is (a link to its EMG series when it is in this file)."""
    kwargs: dict[str, Any] = {}
    if not record.model_applied:  # an applied model trained nothing here
        kwargs["training_curves"] = _table("training_curves", "one row per validation check of the chosen model "
                                           "(step: optimisation steps trained)", record.history or [{"step": 0}])
    if record.model_location:
        kwargs.update(model_location=record.model_location, model_sha256=record.model_sha256,
                      model_applied=bool(record.model_applied))
    if record.pbt_history:
        kwargs["pbt_history"] = _table("pbt_history", "population-based training: one row per generation and "
                                       "member (hyperparameters, metric, parent member)", record.pbt_history)
    if record.preprocessing is not None:
        kwargs["preprocessing"] = to_json(record.preprocessing)
    if record.git_revision:
        kwargs["git_revision"] = record.git_revision
    if record.command:
        kwargs["command"] = record.command
    if record.source:
        kwargs["source"] = to_json(record.source)
    if record.sessions:
        kwargs["sessions"] = to_json(record.sessions)
    if record.emg_object_id is not None:
        target = nwbfile.objects.get(record.emg_object_id)
        if target is not None:
            kwargs["source_emg"] = target
    for key, value in (("source_location", record.source_location), ("source_url", record.source_url),
                       ("source_dandi_asset_id", record.source_asset_id)):
        if value:
            kwargs[key] = value
    return kwargs


def _add_run(nwbfile, record: RunRecord, source_in_file: bool = True) -> str:
    module = nwbfile.processing.get(OUTPUT_MODULE)
    if module is None:
        module = ProcessingModule(name=OUTPUT_MODULE, description="nwb-autolfads results: one AutoLFADSRun "
                                  "(ndx-autolfads) per run")
        nwbfile.add_processing_module(module)
    run = build_run(nwbfile, record, source_in_file)
    module.add(run)
    return run.name


_SESSION_FIELDS = ("session_description", "session_start_time", "timestamps_reference_time", "experimenter",
                   "experiment_description", "session_id", "institution", "lab", "keywords", "related_publications")


def _plain(value):
    """A metadata value read from a file as something a new NWBFile accepts (text arrays -> lists)."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        return value.decode() if isinstance(value, bytes) else value
    return [v.decode() if isinstance(v, bytes) else str(v) for v in value[:]]


def results_only_file(source) -> "NWBFile":
    """A new, empty NWBFile for the results of a run on ``source`` (an open NWBFile): the source's
    session metadata and subject (what DANDI needs to place and validate it), a new identifier
    that names the source's, and none of its data."""
    from pynwb import NWBFile
    from pynwb.file import Subject

    kwargs = {k: _plain(getattr(source, k, None)) for k in _SESSION_FIELDS}
    kwargs = {k: v for k, v in kwargs.items() if v is not None and not (isinstance(v, list) and not v)}
    kwargs["identifier"] = f"{source.identifier}-autolfads-{uuid.uuid4().hex[:12]}"
    nwbfile = NWBFile(**kwargs)
    if source.subject is not None:
        keys = ("age", "age__reference", "description", "genotype", "sex", "species", "subject_id", "weight",
                "date_of_birth", "strain")
        nwbfile.subject = Subject(**{k: getattr(source.subject, k) for k in keys
                                     if getattr(source.subject, k, None) is not None})
    return nwbfile


def _check_written(path: Path, run_name: str, record: RunRecord) -> None:
    with NWBHDF5IO(str(path), "r", load_namespaces=True) as io:
        run = io.read().processing[OUTPUT_MODULE][run_name]
        got = tuple(run.factors.data.shape)
        if got != record.factors.shape:
            raise OutputError(f"written factors have shape {got}, expected {record.factors.shape}")
        if record.activations is not None and tuple(run.emg_activations.data.shape) != record.activations.shape:
            raise OutputError("written emg_activations have the wrong shape")
        for e in record.estimates:
            written = run.continuous_estimates.get(e.name) if run.continuous_estimates else None
            if written is None or tuple(written.data.shape) != e.data.shape:
                raise OutputError(f"written {e.name} is missing or has the wrong shape")


def _remove_stale_partials(target: Path) -> None:
    """Delete temporary files left beside ``target`` by writers that were killed. Called with the
    target's :class:`OutputLock` held: every writer of ``target`` holds that lock while its
    temporary file exists, so any other one found now belongs to a writer that is gone."""
    for tmp in target.parent.glob(f".{target.name}.*.partial"):
        try:
            tmp.unlink()
        except OSError:
            pass


def _write_results_only(input_path, tmp: Path, record: RunRecord) -> str:
    """The run alone in ``tmp``, with the input's session metadata and subject."""
    with open_nwb(input_path) as (_src_io, source):
        nwbfile = results_only_file(source)
    run_name = _add_run(nwbfile, record, source_in_file=False)
    with NWBHDF5IO(str(tmp), "w") as out_io:
        out_io.write(nwbfile)
    return run_name


def _write_full(input_path, tmp: Path, record: RunRecord) -> str:
    """The input's content exported into ``tmp`` with the run added."""
    with open_nwb(input_path) as (src_io, nwbfile):
        run_name = _add_run(nwbfile, record)
        # A new file is a new object: a new identifier that still names its source, and new
        # object ids throughout (DANDI tells files apart by them; the source's identifier and
        # the source series' object ids stay in the run's provenance).
        nwbfile.fields["identifier"] = f"{nwbfile.identifier}-autolfads-{uuid.uuid4().hex[:12]}"
        nwbfile.generate_new_id()
        with NWBHDF5IO(str(tmp), "w") as out_io:
            # copy every dataset (never an external link to the source): a self-contained file
            out_io.export(src_io=src_io, nwbfile=nwbfile, write_args={"link_data": False})
    return run_name


def write_results(input_path: str | Path, output: str | Path | None, record: RunRecord,
                  overwrite: bool = False, in_place: bool = False, content: str = "full") -> tuple[Path, str]:
    """Write ``record`` as a new run. Returns (path written, run name).

    ``in_place=False``: a new file ``output``: with ``content="full"`` the input's content (with
    new object ids) plus the run; with ``content="results"`` the run alone, with the input's
    session metadata and subject and, in the run's provenance, where the input is.
    ``in_place=True``: add the run to ``input_path`` itself (a symbolic link: to the file it points
    to; the link stays) (``output`` and ``content`` are ignored). ``overwrite`` replaces an
    earlier result only (:func:`check_output_path`).

    Raises
    ------
    OutputError
        The output cannot be written (exists, not a result though ``overwrite``, directory missing
        or not writable, disk full: h5py's RuntimeError "file write failed" too, never worked
        around by a results-only file), or an in-place input changed while the run was training."""
    from nwb_autolfads.io.sources import Source

    if content not in ("full", "results"):
        raise OutputError(f"output content {content!r}: use 'full' or 'results'")
    remote = isinstance(input_path, Source) and input_path.remote
    if not remote:
        input_path = Path(input_path.path if isinstance(input_path, Source) else input_path)
    if in_place:
        if remote:
            raise OutputError("--in-place cannot change a remote file: write a new local file instead")
        target = Path(os.path.realpath(check_in_place(input_path)))  # a link: the file it points to is changed
    else:
        target = check_output_path(output, None if remote else input_path, overwrite, content)
    with OutputLock(target):  # taken already by a pipeline run; a direct call takes it here
        _remove_stale_partials(target)
        written, run_name = _write_locked(input_path, target, record, in_place, content, remote)
    return (Path(input_path) if in_place else written), run_name


class uninterrupted:
    """Hold SIGINT and SIGTERM while the outputs of a run are put in place (the NWB output renamed
    into place, the training state removed, the model folder moved into place), so that a signal
    cannot leave an output whose model folder is missing or an older run's. A signal that arrives
    meanwhile is logged when the block ends, and the run finishes: its work is in place by then.
    Outside the main thread (where handlers cannot be set) it holds nothing; SIGKILL cannot be held.

    Attributes
    ----------
    received : list of the signal numbers that arrived inside the block.
    """

    def __init__(self, what: str = "the outputs"):
        self.what = what
        self.received: list[int] = []
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "uninterrupted":
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return self
        for number in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[number] = signal.signal(number, lambda n, _frame: self.received.append(n))
            except (ValueError, OSError):  # not settable here
                pass
        return self

    def __exit__(self, *exc) -> None:
        import signal

        for number, handler in self._previous.items():
            signal.signal(number, handler)
        if self.received:
            names = ", ".join(signal.Signals(n).name for n in sorted(set(self.received)))
            log.warning("%s received while %s were put in place: they were completed first (nothing is half "
                        "written)", names, self.what)


def _failed_to_write(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it came from) is the file system refusing a write (a full
    disk, a quota, an I/O error), which h5py may raise as RuntimeError, not OSError."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) or re.search(r"write failed|no space left|quota|input/output error", str(exc),
                                                 re.IGNORECASE):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _bytes_needed(input_path, record: RunRecord, in_place: bool, content: str, remote: bool) -> int:
    """About the bytes a write takes on disk: the run's arrays as they are (uncompressed), plus
    the input's size when its content is copied (a full output, or the copy ``--in-place``
    writes), plus 1 MiB."""
    arrays = [v for v in vars(record).values() if isinstance(v, np.ndarray)]
    arrays += [a for e in record.estimates for a in vars(e).values() if isinstance(a, np.ndarray)]
    copied = 0
    if not remote and (in_place or content != "results"):
        with contextlib.suppress(OSError):
            copied = Path(input_path).stat().st_size
    return copied + sum(a.nbytes for a in arrays) + (1 << 20)


def _check_free_space(folder: Path, needed: int) -> None:
    """Refuse before writing when ``folder``'s file system has less than ``needed`` bytes free: h5py
    on a full disk can crash the process (a segmentation fault) instead of raising."""
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return
    if free < needed:
        raise OutputError(f"not enough free disk space in {str(folder)!r} for the output: about {needed / 1e6:.3g} MB "
                          f"needed, {free / 1e6:.3g} MB free: free some space or choose another --output")


def _write_locked(input_path, target: Path, record: RunRecord, in_place: bool, content: str,
                  remote: bool) -> tuple[Path, str]:
    """:func:`write_results` once ``target`` is checked and locked."""
    _check_free_space(target.parent if str(target.parent) else Path("."),
                      _bytes_needed(input_path, record, in_place, content, remote))
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if in_place:
                shutil.copy2(input_path, tmp)
                with NWBHDF5IO(str(tmp), "a", load_namespaces=True) as io:
                    nwbfile = io.read()
                    run_name = _add_run(nwbfile, record)
                    io.write(nwbfile)
            elif content == "results":
                run_name = _write_results_only(input_path, tmp, record)
            else:
                try:
                    run_name = _write_full(input_path, tmp, record)
                except (OSError, NwbAutolfadsError):  # a full disk, or our own refusals: never worked around
                    raise
                except Exception as exc:  # noqa: BLE001 - an export hdmf cannot do must not lose the trained run
                    if _failed_to_write(exc):  # h5py says "file write failed" as a RuntimeError
                        raise OSError(str(exc).splitlines()[0][:200]) from exc
                    first = str(exc).splitlines()[0][:200] if str(exc) else ""
                    log.warning("the source's content could not be copied into the output (%s: %s): wrote a "
                                "results-only file instead; its source stays at %s", type(exc).__name__, first,
                                record.source_location or input_path)
                    if tmp.exists():
                        tmp.unlink()
                    run_name = _write_results_only(input_path, tmp, record)
            _check_written(tmp, run_name, record)  # re-open before it takes the target's name
        if in_place and file_sha256(input_path) != record.source_sha256:
            raise OutputError(f"{str(input_path)!r} changed while the run was training: its results were not "
                              "added; run again")
        os.replace(tmp, target)
    except OSError as exc:
        raise OutputError(f"could not write {str(target)!r}: {exc.strerror or exc}: check free disk space and "
                          "permissions, or choose another --output") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return target, run_name
