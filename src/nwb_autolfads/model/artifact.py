"""A trained model kept as a self-describing folder, ``<name>.autolfads-model/``:

- ``model.safetensors``: the weights (every tensor of the model's ``state_dict``, on the CPU);
- ``model.json``: what is needed to use them again: the format and its version, the resolved
  configuration, the modalities and the bin size, per block of model columns its modality,
  observation model, channel names in the model's order and the per-channel offsets / scales
  (and for the EMG the clip levels and the preprocessing parameters) and ``fit``, how well the
  estimate explained each channel's training data (:mod:`nwb_autolfads.evaluation.fit_check`;
  absent in models saved before it was recorded), the software versions,
  the run's name and the source's identity, and the SHA-256 of the weights; for a model of
  several sessions (docs/science.md, Multi-session models) ``sessions``: per session its ``name``
  and ``n_channels``, in the model's session order (what its read-ins and read-outs are built for).

The model's identity (:attr:`ModelArtifact.sha256`, recorded by the run that wrote it) is the
SHA-256 of ``model.safetensors``. Saving is atomic (a temporary folder beside the target,
renamed into place; :class:`StagedModel`); loading reads JSON and safetensors only, never a
pickle, and checks the weights against the SHA-256 recorded beside them.

May import: torch, safetensors, :mod:`nwb_autolfads.errors`, :mod:`nwb_autolfads.config` and
the model's own modules. Never NWB.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nwb_autolfads.config import RunConfig
from nwb_autolfads.config.mappings import json_values
from nwb_autolfads.errors import ConfigError, OutputError
from nwb_autolfads.model.lfads import LFADS
from nwb_autolfads.model.observations import Composite, ObservationModel, get_observation

__all__ = ["FORMAT", "FORMAT_VERSION", "MODEL_SUFFIX", "ModelArtifact", "StagedModel", "model_path_for",
           "check_model_path", "check_meta", "stage_model", "load_model"]

FORMAT = "nwb-autolfads-model"
FORMAT_VERSION = 1
"""Version of the folder's layout and of ``model.json``; a reader refuses a newer one."""
MODEL_SUFFIX = ".autolfads-model"
WEIGHTS, META = "model.safetensors", "model.json"


def model_path_for(output: str | Path, run_name: str | None = None) -> Path:
    """Where a run that writes ``output`` (``x.nwb``) keeps its model, beside it:
    ``x.autolfads-model``, or with ``run_name`` (a run added to a file that holds other runs:
    ``--in-place``) ``x.<run_name>.autolfads-model``, so that each run keeps its own."""
    output = Path(output)
    return output.with_name(output.stem + (f".{run_name}" if run_name else "") + MODEL_SUFFIX)


def check_model_path(path: str | Path, overwrite: bool) -> Path:
    """Fail early (before any training) when the model folder ``path`` cannot be written.

    Raises
    ------
    OutputError
        It exists (without ``overwrite``), is a file, or its folder is missing or read-only.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"model folder {str(path)!r} is a file: remove it or choose another --output")
    _check_replaceable_model(path)
    if path.exists() and not overwrite:
        raise OutputError(f"model folder {str(path)!r} already exists: pass --overwrite to replace it, choose another "
                          "--output, or --set output.save_model=false to keep no model")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise OutputError(f"cannot write the model folder {str(path)!r}: {str(parent)!r} is missing or not writable")
    return path


def _check_replaceable_model(path: Path) -> None:
    """Refuse a folder at ``path`` that is not a saved model (``model.json`` and
    ``model.safetensors``, nothing else): ``--overwrite`` replaces an earlier model only (a
    user's folder of that name, holding notes, was once replaced whole)."""
    if not path.is_dir():
        return
    names = {p.name for p in path.iterdir()}
    try:
        ours = json.loads((path / META).read_text(encoding="utf-8")).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        ours = False
    if names and (not names <= {WEIGHTS, META} or not ours):
        others = sorted(names - {WEIGHTS, META})
        shown = ", ".join(others[:3]) + (" ..." if len(others) > 3 else "") if others else f"no {META} of nwb-autolfads"
        raise OutputError(f"{str(path)!r} exists and is not a saved model (it holds {shown}); a model folder is "
                          "replaced only when it is an earlier model: move it away, choose another --output, or "
                          "--set output.save_model=false to keep no model")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class StagedModel:
    """A model's weights written to a temporary folder beside its target, not yet in place:
    :meth:`commit` adds ``model.json`` and renames the folder there (replacing an existing one
    only with ``overwrite``), :meth:`discard` removes it. ``sha256``: the weights' SHA-256, known
    before the commit (the output that records it is written in between)."""

    tmp: Path
    target: Path
    sha256: str

    def commit(self, meta: dict[str, Any], overwrite: bool = False) -> Path:
        """Write ``meta`` (JSON-able; completed with the format, its version and the weights'
        SHA-256) as ``model.json`` and move the model into place; returns its path.

        Raises
        ------
        OutputError
            The target exists (without ``overwrite``) or cannot be written or replaced.
        """
        old = None
        try:
            full = {"format": FORMAT, "format_version": FORMAT_VERSION, "weights": WEIGHTS,
                    "weights_sha256": self.sha256, **meta}
            (self.tmp / META).write_text(json.dumps(json_values(full), indent=2, allow_nan=False), encoding="utf-8")
            if self.target.exists():
                _check_replaceable_model(self.target)
                if not overwrite:
                    self.discard()
                    raise OutputError(f"model folder {str(self.target)!r} already exists: pass --overwrite to "
                                      "replace it")
                old = self.target.with_name(f".{self.target.name}.{uuid.uuid4().hex[:8]}.old")
                os.replace(self.target, old)
            os.replace(self.tmp, self.target)
        except (OSError, ValueError, TypeError) as exc:  # disk, permissions; a non-finite value in meta
            self.discard()
            raise OutputError(f"could not write the model folder {str(self.target)!r}: "
                              f"{getattr(exc, 'strerror', None) or exc}") from None
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.target

    def discard(self) -> None:
        """Remove the temporary folder (nothing is left half-written)."""
        shutil.rmtree(self.tmp, ignore_errors=True)


def stage_model(target: str | Path, model: torch.nn.Module) -> StagedModel:
    """Write ``model``'s weights into a temporary folder beside ``target`` (:class:`StagedModel`).

    Raises
    ------
    OutputError
        The folder cannot be written (disk full, permissions).
    """
    from safetensors.torch import save_file

    target = Path(target)
    tmp = target.with_name(f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial")
    try:
        tmp.mkdir()
        state = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
        # one metadata entry: safetensors writes a map's entries in no fixed order, and the same
        # weights must give the same file (the model's identity is the file's SHA-256)
        save_file(state, str(tmp / WEIGHTS), metadata={FORMAT: str(FORMAT_VERSION)})
        sha = _sha256(tmp / WEIGHTS)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(f"could not write the model folder {str(target)!r}: {exc.strerror or exc}: check free disk "
                          "space and permissions") from None
    return StagedModel(tmp=tmp, target=target, sha256=sha)



@dataclass
class ModelArtifact:
    """A saved model as loaded (:func:`load_model`).

    Attributes
    ----------
    path : pathlib.Path
        The model folder.
    meta : dict
        ``model.json`` as read.
    state : dict of str to torch.Tensor
        The weights (CPU tensors).
    sha256 : str
        SHA-256 of ``model.safetensors`` (checked against ``meta['weights_sha256']``).
    """

    path: Path
    meta: dict
    state: dict
    sha256: str

    @property
    def config(self) -> RunConfig:
        """The resolved configuration the model was trained (and infers) with."""
        return RunConfig.from_saved(self.meta["config"])

    @property
    def columns(self) -> list[dict]:
        """Per block of model columns, in column order: ``modality``, ``observation``,
        ``channel_names``, and where the modality has them ``offsets``, ``scales`` (and for the
        EMG ``clip_levels``), lists in the channel order."""
        return list(self.meta["columns"])

    def block(self, modality: str) -> dict | None:
        """The column block of ``modality`` (None when the model does not model it)."""
        return next((c for c in self.columns if c["modality"] == modality), None)

    def scaling(self, modality: str) -> tuple[np.ndarray, np.ndarray] | None:
        """What the model's input was scaled with, for ``modality``, each (C,) float64 in the
        model's channel order: the EMG's (clip levels, scales) (a null clip level: inf), a
        continuous input's (offsets, scales); None for counts (spikes) or a modality not modelled."""
        block = self.block(modality)
        if block is None or block.get("scales") is None:
            return None
        first = block.get("clip_levels") if modality == "emg" else block.get("offsets")
        first = np.array([np.inf if v is None else v for v in first], dtype=np.float64)
        return first, np.asarray(block["scales"], dtype=np.float64)

    def observation(self) -> ObservationModel:
        """The observation model of the columns: one modality's, or a composite of theirs."""
        parts = [(get_observation(c["observation"]), len(c["channel_names"])) for c in self.columns]
        return parts[0][0] if len(parts) == 1 else Composite(parts)

    @property
    def session_channels(self) -> tuple[int, ...] | None:
        """A model of several sessions (``meta["sessions"]``: per session its ``name`` and
        ``n_channels``): the channel count of each session, in the model's session order; None for
        a single-session model (no ``sessions``, or one)."""
        sessions = self.meta.get("sessions")
        if not sessions or len(sessions) < 2:
            return None
        return tuple(int(s["n_channels"]) for s in sessions)

    def build(self, device: torch.device | str = "cpu") -> LFADS:
        """The LFADS model with the saved weights, on ``device``, in evaluation mode (several
        sessions: with their read-ins and read-outs, :attr:`session_channels`).

        Raises
        ------
        ConfigError
            The weights do not fit the configured model (a damaged or hand-edited folder).
        """
        sessions = self.session_channels
        n_channels = max(sessions) if sessions else sum(len(c["channel_names"]) for c in self.columns)
        model = LFADS(n_channels, self.config.model, self.observation(), sessions)
        try:
            model.load_state_dict(self.state, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0][:200]
            raise ConfigError(f"model {str(self.path)!r}: its weights do not fit its model.json ({first}): the folder "
                              "is damaged; use the folder the run wrote") from None
        return model.to(device).eval()


def _damaged(path: Path, why: str) -> ConfigError:
    """The one error for a ``model.json`` that cannot be used, ``why`` naming the first fault."""
    return ConfigError(f"model folder {str(path)!r} is damaged or not a model folder of this version ({why}): use "
                       f"the *{MODEL_SUFFIX} folder a run of this nwb-autolfads wrote beside its output, unedited")


def _numbers(value, n: int, *, positive: bool = False, nulls: bool = False, least: float = -math.inf) -> bool:
    """``value`` is a list of ``n`` finite numbers (> 0 with ``positive``, >= ``least``; null
    allowed with ``nulls``)."""
    if not isinstance(value, list) or len(value) != n:
        return False
    for v in value:
        if v is None and nulls:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or (positive and v <= 0) \
                or v < least:
            return False
    return True


def _column_fault(i: int, col) -> str | None:
    """What is wrong with block ``i`` of ``columns`` (None when nothing)."""
    if not isinstance(col, dict):
        return f"columns[{i}] is not an object"
    names = col.get("channel_names")
    if not isinstance(col.get("modality"), str) or not isinstance(col.get("observation"), str):
        return f"columns[{i}] lacks its modality or observation"
    try:
        get_observation(col["observation"])
    except Exception:  # noqa: BLE001 - any refusal of the name: unknown observation model
        return f"columns[{i}] has an unknown observation {col['observation']!r}"
    if not isinstance(names, list) or not names or not all(isinstance(n, (str, int)) for n in names) \
            or len(set(map(str, names))) != len(names):
        return f"columns[{i}].channel_names is not a list of distinct names"
    n = len(names)
    if col.get("scales") is not None and not _numbers(col["scales"], n, positive=True):
        return f"columns[{i}].scales is not {n} positive numbers"
    if col.get("offsets") is not None and not _numbers(col["offsets"], n):
        return f"columns[{i}].offsets is not {n} numbers"
    if col.get("clip_levels") is not None and not _numbers(col["clip_levels"], n, nulls=True, least=0.0):
        return f"columns[{i}].clip_levels is not {n} numbers >= 0 or nulls"
    if col.get("fit") is not None and not _numbers(col["fit"], n, nulls=True):
        return f"columns[{i}].fit is not {n} numbers or nulls"
    if col.get("scales") is not None and col["modality"] == "emg" and col.get("clip_levels") is None:
        return f"columns[{i}] has scales but no clip_levels"
    return None


def _sessions_fault(sessions) -> str | None:
    """What is wrong with ``model.json``'s ``sessions`` (absent: a single-session model; else a
    list of ``{"name": str, "n_channels": int >= 1}`` with distinct names), None when nothing."""
    if sessions is None:
        return None
    if not isinstance(sessions, list) or not sessions:
        return "sessions is not a list of sessions"
    for i, entry in enumerate(sessions):
        n = entry.get("n_channels") if isinstance(entry, dict) else None
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str) or isinstance(n, bool) \
                or not isinstance(n, int) or n < 1:
            return f"sessions[{i}] is not a name and a channel count >= 1"
    if len({s["name"] for s in sessions}) != len(sessions):
        return "sessions repeat a name"
    return None


def _meta_fault(meta) -> str | None:
    """The first thing wrong with the structure of ``model.json`` as read (None when nothing)."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        return f"{META} is not an nwb-autolfads model description"
    if not isinstance(meta.get("format_version"), int) or isinstance(meta["format_version"], bool):
        return "format_version is not a whole number"
    if not isinstance(meta.get("weights_sha256"), str):
        return "weights_sha256 is missing"
    bin_size = meta.get("bin_size")
    if isinstance(bin_size, bool) or not isinstance(bin_size, (int, float)) or not (math.isfinite(bin_size)
                                                                                    and bin_size > 0):
        return f"bin_size {bin_size!r} is not a positive number of seconds"
    columns = meta.get("columns")
    if not isinstance(columns, list) or not columns:
        return "columns is missing or empty"
    for i, col in enumerate(columns):
        fault = _column_fault(i, col)
        if fault:
            return fault
    kinds = [c["modality"] for c in columns]
    stated = meta.get("modalities", kinds)  # in data.modalities' order; the blocks are in column order
    if len(set(kinds)) != len(kinds) or not isinstance(stated, list) or sorted(map(str, stated)) != sorted(kinds):
        return f"modalities {meta.get('modalities')!r} do not match the column blocks' {kinds}"
    total = sum(len(c["channel_names"]) for c in columns)
    fault = _sessions_fault(meta.get("sessions"))
    if fault:
        return fault
    sessions = meta.get("sessions") or []
    allowed = {total} | ({max(s["n_channels"] for s in sessions)} if len(sessions) > 1 else set())
    if "n_channels" in meta and meta["n_channels"] not in allowed:
        return f"n_channels {meta['n_channels']!r} is not the {total} channels of its column blocks"
    if not isinstance(meta.get("config"), dict):
        return "config is missing"
    try:
        cfg = RunConfig.from_saved(meta["config"])
    except Exception as exc:  # noqa: BLE001 - any refusal of the saved settings
        return f"config: {str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}"
    if cfg.windows.bin_size is not None and abs(cfg.windows.bin_size - bin_size) > 1e-12 * bin_size:
        return f"bin_size {bin_size:g} s is not its config's windows.bin_size {cfg.windows.bin_size:g} s"
    return None


def check_meta(meta, path: str | Path) -> None:
    """Check the structure of a model folder's ``model.json`` (as read) in one place: the format,
    the bin size, per column block its modality, observation, distinct channel names and the
    per-channel scales / offsets / clip levels (numbers, one per channel), the channel count and
    modalities stated beside them, and the configuration.

    Raises
    ------
    ConfigError
        One line: the folder is damaged or not a model folder of this version, naming the fault.
    """
    fault = _meta_fault(meta)
    if fault:
        raise _damaged(Path(path), fault)


def load_model(path: str | Path) -> ModelArtifact:
    """Read a model folder written by a run (or its ``model.json``): JSON and safetensors only.

    Raises
    ------
    ConfigError
        Not a model folder, a newer format than this version reads, a ``model.json`` that cannot be
        read or whose structure is wrong (:func:`check_meta`; one line: damaged or not a model
        folder of this version), or weights whose SHA-256 differs from the one recorded.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if path.name == META:
        path = path.parent
    weights, meta_file = path / WEIGHTS, path / META
    if not path.is_dir() or not weights.is_file() or not meta_file.is_file():
        raise ConfigError(f"model {str(path)!r} is not a model folder (one holding {WEIGHTS} and {META}): give the "
                          f"*{MODEL_SUFFIX} folder a run wrote beside its output")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _damaged(path, f"{META} cannot be read: {exc}") from None
    if isinstance(meta, dict) and meta.get("format") == FORMAT and isinstance(meta.get("format_version"), int) \
            and meta["format_version"] > FORMAT_VERSION:
        raise ConfigError(f"model {str(path)!r} has format version {meta.get('format_version')}, newer than this "
                          f"nwb-autolfads reads ({FORMAT_VERSION}): upgrade nwb-autolfads")
    check_meta(meta, path)
    sha = _sha256(weights)
    if sha != meta.get("weights_sha256"):
        raise ConfigError(f"model {str(path)!r}: {WEIGHTS} has SHA-256 {sha[:12]}..., not the "
                          f"{str(meta.get('weights_sha256'))[:12]}... recorded in {META}: the folder is damaged or "
                          "was changed")
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise ConfigError(f"model {str(path)!r}: {WEIGHTS} cannot be read ({exc})") from None
    return ModelArtifact(path=path.resolve(), meta=meta, state=state, sha256=sha)
