"""Opening NWB files, and what a series reader finds in them.

Opens files read-only (local HDF5, NWB Zarr stores, remote files streamed by byte range) and
checks that they are NWB, naming what a file is when it is not. The readers of the recording's
parts use it: :mod:`.series` (EMG and other time series), :mod:`.units` (spike times),
:mod:`.trials` and :mod:`.behavior`.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import h5py
from pynwb import NWBHDF5IO, NWBFile

from nwb_autolfads.ndx import namespace  # noqa: F401  loads the ndx-autolfads namespace wherever NWB is read
from nwb_autolfads.errors import InputFileError
from nwb_autolfads.io.formats import describe_bytes, describe_directory, describe_file, is_zarr_store, zarr_nwb_version

__all__ = ["open_nwb", "Candidate", "OUTPUT_MODULE", "check_external_links"]

OUTPUT_MODULE = "autolfads"
"""Name of the processing module our results go into (never read back as input)."""


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


def check_not_locked(path: Path, exc: BaseException) -> None:
    """Raise :class:`InputFileError` saying so when ``exc`` (from opening ``path`` with h5py) is
    HDF5's file lock: another program has the file open for writing (it was once called
    "damaged", with advice to download it again)."""
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, BlockingIOError) or "unable to lock file" in first:
        raise InputFileError(f"{str(path)!r} is open for writing in another program (HDF5 keeps it locked: {first}): "
                             "close it there (a notebook, NWB widgets, another run with --in-place), then run again; "
                             "or set HDF5_USE_FILE_LOCKING=FALSE if nothing writes it") from None


def _check_hdf5_opens(path: Path) -> None:
    """Raise :class:`InputFileError` when an HDF5 file cannot be opened: locked by a program that
    has it open for writing (once called "damaged", with advice to download it again), or
    truncated by an interrupted copy or download, or otherwise damaged."""
    try:
        with h5py.File(str(path), "r"):
            pass
    except OSError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        check_not_locked(path, exc)
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
