"""What an input that is not readable NWB actually is, named from its signature.

nwb-autolfads reads NWB (HDF5 files, and Zarr stores with hdmf-zarr). Users also hand it the
raw files of their acquisition system, MATLAB exports or CSV tables; the error then names the
format (from the file's first bytes, not its extension) and how to get NWB from it, instead of
a generic "not NWB".

    describe_file(path)     -> "a MATLAB 5.0 MAT-file", ... or None for HDF5 / unknown bytes
    describe_directory(path) -> "an Open Ephys recording folder", ... or None
    is_zarr_store(path)     -> whether a directory is a Zarr store (.zgroup / .zattrs / .zarr)
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

__all__ = ["describe_file", "describe_directory", "describe_bytes", "is_zarr_store", "zarr_nwb_version",
           "NEUROCONV"]

NEUROCONV = "convert it to NWB first, e.g. with NeuroConv (https://neuroconv.readthedocs.io)"

_HOW_TO_WRITE = ("write the signal into an NWB file first (a TimeSeries in acquisition, with pynwb; see the "
                 "README), or convert it with NeuroConv (https://neuroconv.readthedocs.io)")

# (magic bytes at offset 0, what the file is, how to get NWB from it)
_MAGIC: list[tuple[bytes, str, str]] = [
    (b"MATLAB 5.0 MAT-file", "a MATLAB 5 MAT-file (.mat)", _HOW_TO_WRITE),
    (b"MATLAB 7.3 MAT-file", "a MATLAB 7.3 MAT-file (.mat, HDF5 inside but not NWB)", _HOW_TO_WRITE),
    (b"\xffBIOSEMI", "a BioSemi BDF file", NEUROCONV),
    (b"TDSm", "a National Instruments TDMS file", _HOW_TO_WRITE),
    (b"\x02\x27\x91\xc6", "an Intan RHD file (.rhd)", NEUROCONV),
    (b"\xac\x27\x91\xd6", "an Intan RHS file (.rhs)", NEUROCONV),
    (b"\x93NUMPY", "a NumPy array file (.npy)", _HOW_TO_WRITE),
    (b"NEURALEV", "a Blackrock NEV file", NEUROCONV),
    (b"NEURALCD", "a Blackrock NSx file", NEUROCONV),
    (b"NEURALSG", "a Blackrock NSx file", NEUROCONV),
    (b"PLEX", "a Plexon PLX file", NEUROCONV),
    (b"ABF2", "an Axon ABF2 file", NEUROCONV),
    (b"ABF ", "an Axon ABF file", NEUROCONV),
    (b"######## Neuralynx", "a Neuralynx data file", NEUROCONV),
    (b"header.format = 'Open Ephys Data Format'", "an Open Ephys .continuous/.events file", NEUROCONV),
    (b"\x1f\x8b", "a gzip-compressed file", "decompress it first (gunzip); if it holds NWB, give the .nwb file"),
    (b"PAR1", "an Apache Parquet table", _HOW_TO_WRITE),
    (b"%PDF", "a PDF document", "give the NWB file of the recording"),
]


def describe_bytes(head: bytes, name: str = "") -> str | None:
    """What a file whose first bytes are ``head`` (and whose name is ``name``) is, with the fix;
    None for HDF5 and for contents that match no known format.

    Returns text like ``"a MATLAB 5 MAT-file (.mat): write the signal into an NWB file ..."``."""
    if not head:
        return "an empty file (0 bytes): check that it was copied or downloaded completely"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return None
    for magic, what, fix in _MAGIC:
        if head.startswith(magic):
            return f"{what}: {fix}"
    if head.startswith(b"PK\x03\x04"):
        if name.lower().endswith(".npz"):
            return f"a NumPy .npz archive: {_HOW_TO_WRITE}"
        if name.lower().endswith(".zarr.zip") or name.lower().endswith(".nwb.zip"):
            return ("a zip archive: unzip it first; if it holds an NWB Zarr store (a *.nwb.zarr folder) give that "
                    "folder")
        return "a zip archive: unzip it first and give the .nwb file inside"
    if head[:8] == b"0       " and len(head) >= 256 and head[8:88].isascii():
        return f"an EDF/EDF+ file (European Data Format): {NEUROCONV}"
    text = _as_text(head)
    if text is not None:
        first = text.splitlines()[0] if text.strip() else ""
        if first.lstrip().startswith(("{", "[")):
            return f"a JSON/text file, not NWB: {_HOW_TO_WRITE}"
        for sep, what in ((",", "a CSV text table"), ("\t", "a tab-separated text table"),
                          (";", "a semicolon-separated text table")):
            if first.count(sep) >= 1:
                return f"{what} (first line {first[:60]!r}): {_HOW_TO_WRITE}"
        return f"a text file (first line {first[:60]!r}), not NWB: {_HOW_TO_WRITE}"
    return None


def _as_text(head: bytes) -> str | None:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        try:  # a multi-byte character cut at the end of the head
            text = head[:-4].decode("utf-8")
        except UnicodeDecodeError:
            return None
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return text if text and printable >= 0.98 * len(text) else None


def describe_file(path: str | Path, head_bytes: int = 4096) -> str | None:
    """:func:`describe_bytes` of a local file (its first ``head_bytes`` bytes), plus the formats
    that need more than a prefix (a MATLAB 7.3 userblock, a zip of .npy files)."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(head_bytes)
    what = describe_bytes(head, path.name)
    if what is not None and what.startswith("a zip archive") and zipfile.is_zipfile(path):
        try:
            names = zipfile.ZipFile(path).namelist()
        except (OSError, zipfile.BadZipFile):
            names = []
        if names and all(n.endswith(".npy") for n in names):
            return f"a NumPy .npz archive: {_HOW_TO_WRITE}"
    return what


def is_zarr_store(path: str | Path) -> bool:
    """True for a directory that is a Zarr store: named ``*.zarr``, or holding ``.zgroup``,
    ``.zattrs`` or ``zarr.json`` (Zarr v3) at its top."""
    path = Path(path)
    if not path.is_dir():
        return False
    return path.suffix == ".zarr" or any((path / n).is_file() for n in (".zgroup", ".zattrs", "zarr.json"))


def zarr_nwb_version(path: str | Path) -> str | None:
    """The ``nwb_version`` attribute at the top of a local Zarr store, None when there is none."""
    for name in (".zattrs", "zarr.json"):
        f = Path(path) / name
        if f.is_file():
            try:
                attrs = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
            attrs = attrs.get("attributes", attrs) if name == "zarr.json" else attrs
            if isinstance(attrs, dict) and attrs.get("nwb_version"):
                return str(attrs["nwb_version"])
    return None


def describe_directory(path: str | Path) -> str | None:
    """What a directory that is not an NWB Zarr store holds, when it is a known recording
    layout; None otherwise."""
    path = Path(path)
    if is_zarr_store(path):
        return ("a Zarr store but not NWB (no nwb_version attribute in its .zattrs): give an NWB file or an NWB "
                "Zarr store (*.nwb.zarr)")
    names = {p.name for p in path.iterdir()} if path.is_dir() else set()
    if "structure.oebin" in names or "settings.xml" in names or any(n.endswith(".continuous") for n in names) \
            or any(n.startswith("Record Node") for n in names):
        return f"an Open Ephys recording folder: {NEUROCONV}"
    if any(n.endswith(".rhd") for n in names) or "info.rhd" in names:
        return f"an Intan recording folder: {NEUROCONV}"
    if any(n.endswith((".tev", ".tsq", ".Tbk")) for n in names):
        return f"a TDT block folder: {NEUROCONV}"
    nwbs = sorted(n for n in names if n.endswith(".nwb"))
    if nwbs:
        return f"a folder holding {len(nwbs)} NWB file(s) (e.g. {nwbs[0]}): give the path of one file"
    return None
