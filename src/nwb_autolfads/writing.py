"""Writing results into a new NWB file, atomically.

The source file is opened read-only; its content plus a processing module ``autolfads`` with
the results is *exported* (never ``nwbfile.copy()``) to a temporary file in the target
directory, which is re-opened to check it and only then renamed to the output path. An
interrupted or failed write leaves no file at the output path, and the input is never touched.
"""

from __future__ import annotations

import json
import os
import re
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pynwb import NWBHDF5IO, ProcessingModule, TimeSeries

from .errors import OutputError
from .reading import OUTPUT_MODULE

__all__ = ["SeriesToWrite", "default_output_path", "check_output_path", "write_results", "provenance_json"]

_DANDI_NAME = re.compile(r"^(sub-[A-Za-z0-9]+)(_ses-[A-Za-z0-9]+)?")


@dataclass
class SeriesToWrite:
    """One TimeSeries of results, on the bins' time base."""

    name: str
    data: np.ndarray  # (n_bins, n_columns)
    unit: str
    description: str
    times: np.ndarray  # (n_bins,) bin centres in the source's clock
    bin_size: float
    comments: str = "no comments"


def default_output_path(input_path: str | Path, modalities: str = "emg") -> Path:
    """``sub-X_ses-Y_desc-autolfads_<modalities>.nwb`` for DANDI-named inputs, else
    ``<stem>_autolfads.nwb``; beside the input."""
    input_path = Path(input_path)
    match = _DANDI_NAME.match(input_path.stem)
    if match:
        name = f"{match.group(1)}{match.group(2) or ''}_desc-autolfads_{modalities}.nwb"
    else:
        name = f"{input_path.stem}_autolfads.nwb"
    return input_path.with_name(name)


def check_output_path(output: str | Path, input_path: str | Path, overwrite: bool) -> Path:
    """Fail early (before any training) if the output cannot be written."""
    output = Path(output)
    if output.suffix != ".nwb":
        raise OutputError(f"output {str(output)!r} does not end in .nwb: give a path like result.nwb")
    if output.exists() and output.resolve() == Path(input_path).resolve():
        raise OutputError(f"output {str(output)!r} is the input file: choose another --output "
                          "(the input is never modified)")
    if output.is_dir():
        raise OutputError(f"output {str(output)!r} is a directory: give a file path ending in .nwb")
    if output.exists() and not overwrite:
        raise OutputError(f"output {str(output)!r} already exists: pass --overwrite to replace it, or choose "
                          "another --output")
    parent = output.parent if str(output.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"output directory {str(parent)!r} does not exist: create it or choose another --output")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"output directory {str(parent)!r} is not writable: choose another --output")
    return output


def _time_kwargs(times: np.ndarray, bin_size: float) -> dict:
    if times.size > 1 and np.allclose(np.diff(times), bin_size, rtol=1e-6, atol=1e-9):
        return {"starting_time": float(times[0]), "rate": 1.0 / bin_size}
    if times.size == 1:
        return {"starting_time": float(times[0]), "rate": 1.0 / bin_size}
    return {"timestamps": times}


def write_results(input_path: str | Path, output: str | Path, series: list[SeriesToWrite],
                  module_description: str, overwrite: bool = False) -> Path:
    """Export the input plus ``series`` (in processing module ``autolfads``) to ``output``."""
    output = check_output_path(output, input_path, overwrite)
    tmp = output.with_name(f".{output.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with NWBHDF5IO(str(input_path), "r", load_namespaces=True) as src_io:
                nwbfile = src_io.read()
                module = nwbfile.processing.get(OUTPUT_MODULE)
                if module is None:
                    module = ProcessingModule(name=OUTPUT_MODULE, description=module_description)
                    nwbfile.add_processing_module(module)
                existing = set(module.data_interfaces)
                suffix = ""
                k = 1
                while any(f"{s.name}{suffix}" in existing for s in series):
                    k += 1
                    suffix = f"_{k}"
                for s in series:
                    module.add(TimeSeries(name=f"{s.name}{suffix}", data=s.data, unit=s.unit,
                                          description=s.description, comments=s.comments,
                                          resolution=-1.0, **_time_kwargs(s.times, s.bin_size)))
                # A new file gets a new identifier that still names its source. Object ids are kept, so
                # the copied source series keeps the id that the provenance refers to.
                nwbfile.fields["identifier"] = f"{nwbfile.identifier}-autolfads-{uuid.uuid4().hex[:12]}"
                with NWBHDF5IO(str(tmp), "w") as out_io:
                    out_io.export(src_io=src_io, nwbfile=nwbfile)
            # Re-open the result before it takes the output's name.
            with NWBHDF5IO(str(tmp), "r", load_namespaces=True) as check_io:
                written = check_io.read()
                for s in series:
                    got = written.processing[OUTPUT_MODULE][f"{s.name}{suffix}"].data.shape
                    if tuple(got) != s.data.shape:
                        raise OutputError(f"written {s.name} has shape {tuple(got)}, expected {s.data.shape}")
        os.replace(tmp, output)
    except OSError as exc:
        raise OutputError(f"could not write {str(output)!r}: {exc.strerror or exc}: check free disk space and "
                          "permissions, or choose another --output") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return output


def provenance_json(data: dict) -> str:
    return json.dumps(data, indent=None, sort_keys=False, default=_json_default)


def _json_default(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
