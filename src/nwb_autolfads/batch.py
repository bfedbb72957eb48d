"""Many inputs in one command: a whole dandiset, some of its assets, several files, a folder or a glob.

    nwb-autolfads run DANDI:000941                    every NWB asset of the dandiset (dandi's version rule)
    nwb-autolfads run DANDI:000941@0.240101.1200      one version; also dandi://dandi/000941[@version]
    nwb-autolfads run "DANDI:000941/sub-R3/*.nwb"     a glob (or a folder: DANDI:000941/sub-R3/)
    nwb-autolfads run a.nwb b.nwb | data/ | "data/**/*.nwb"
    nwb-autolfads run DANDI:000941 --dry-run          print the plan and stop

The plan (:func:`plan_batch`) lists every asset, its size and where its result goes, and which
are skipped and why (not NWB; an nwb-autolfads output; done in an earlier run of the same
command). Whether an asset holds the signals to model is checked when it is opened (cheaply:
its metadata, streamed): one that has none ends ``skipped`` with the reason. The assets are
run one by one (or ``jobs`` at a time in separate processes, or as Ray tasks over a cluster's
machines with ``backend="ray"``: :mod:`nwb_autolfads.batch_ray`) with :func:`nwb_autolfads.run`,
each result in a DANDI-organised folder (``<out>/sub-X/sub-X_ses-Y_desc-autolfads_emg.nwb``:
the asset's BIDS-like entities, ``desc-autolfads`` and the modelled modalities). The manifest
``<out>/autolfads-manifest.json`` (replaced atomically after each asset) records for each
asset its path, id, version, status (``done``, ``failed``, ``skipped`` with the reason), its
output and the output's SHA-256, its model folder and the weights' SHA-256, what identified its
input when it was run (a local file: size, modification time and SHA-256), and timings. Running
the same command again skips the assets whose output is listed done and still has that checksum
(or still opens and holds the recorded run), whose input is unchanged (:func:`_input_changed`)
and whose model folder is intact; it runs the others again (the plan says why), retries the
failed ones, and continues an interrupted asset from its run directory. A rerun whose settings
differ only in how runs use the machine (:data:`EXECUTION_KEYS`) is the same batch; other
settings are refused. A dandiset is read at one version for the whole batch: the one given, else
the one dandi's rule chooses when the plan is made (every asset's URL then names it).

With ``multi_session`` (``--multi-session``) the inputs are grouped by subject (the ``sub-<label>``
of their path, else the ``general/subject/subject_id`` of a local file, :func:`file_subject_id`;
inputs that name neither form one group) and each group of two or more sessions trains ONE model
(:func:`nwb_autolfads.run_sessions`: a read-in and read-out per session), each session's result
still written to its own output; a group is run again as a whole until all its sessions are
done, and when any of them has to run again.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Mapping, Sequence

from nwb_autolfads.errors import ConfigError, InputFileError, NwbAutolfadsError, OutputError, SignalNotFoundError

__all__ = ["MANIFEST", "EXECUTION_KEYS", "BatchItem", "BatchPlan", "BatchResult", "is_batch", "plan_batch",
           "run_batch", "output_name", "file_subject_id"]

log = logging.getLogger(__name__)

MANIFEST = "autolfads-manifest.json"
"""The manifest's file name, in the output folder."""
_FORMAT = "nwb-autolfads batch manifest"
_NWB = re.compile(r"\.nwb(\.zarr)?/?$", re.IGNORECASE)
_OURS = re.compile(r"(_desc-autolfads_[^/]*|_autolfads)\.nwb$")


@dataclass
class BatchItem:
    """One input of a batch and what became of it (a row of the manifest)."""

    name: str
    """The asset's path in the dandiset, or the file's path relative to the batch's root."""
    input: str
    """What :func:`nwb_autolfads.run` reads: a local path, a URL, or the DANDI asset's URL
    (``dandi://<instance>/<id>@<version>/<path>``, the version pinned)."""
    output: str = ""
    """The result's path relative to the output folder (POSIX)."""
    size: int | None = None
    """Bytes (the archive's size for a DANDI asset); for a done item, the input's when it was run."""
    asset_id: str | None = None
    version: str | None = None
    input_mtime_ns: int | None = None
    """A local input's modification time (ns) when it was run (a folder: its newest file's)."""
    input_sha256: str = ""
    """A local input's SHA-256 when it was run (a Zarr store: ``tree_sha256``); with ``size`` and
    ``input_mtime_ns`` what a rerun checks the input against (:func:`_input_changed`)."""
    subject: str = ""
    """With ``multi_session``: the subject the item is grouped under ("" for none)."""
    subject_from: str = ""
    """Where ``subject`` was read: ``path`` (its ``sub-<label>``), ``file`` (the NWB file's
    ``general/subject/subject_id``) or "" (neither names one)."""
    status: str = "pending"
    """``pending``, ``started``, ``done``, ``failed``, ``skipped``, or ``kept``: an earlier result
    that would have to be replaced (its input, output or the batch's settings changed) is left as
    it is without ``overwrite`` (``reason`` says why and what to do)."""
    reason: str = ""
    output_sha256: str = ""
    model: str = ""
    """The trained model's folder relative to the output folder (POSIX; ``nwb-autolfads apply``
    takes it), empty when no model was kept."""
    model_sha256: str = ""
    run_name: str = ""
    started: str = ""
    seconds: float | None = None
    earlier: bool = field(default=False, repr=False)
    """Done in an earlier run of the batch (not written to the manifest)."""
    ours: bool = field(default=False, repr=False)
    """The manifest lists its output as this batch's (an existing one is replaced when run again)."""
    timed: float | None = field(default=None, repr=False)
    """The seconds it took when an earlier run of the batch did it (kept when it runs again: the
    plan's time estimate; not written to the manifest)."""
    trained: str = field(default="", repr=False)
    """The model folder of its result of an earlier run of the batch (not written to the manifest)."""

    def row(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("earlier", "ours", "timed", "trained"):
            out.pop(key)
        return out

    @property
    def key(self) -> str:
        return self.output or self.name


@dataclass
class BatchPlan:
    """What a batch will do, before it starts (:func:`plan_batch`)."""

    inputs: list[str]
    out: Path
    items: list[BatchItem]
    modalities: str
    settings: dict[str, Any]
    dandiset: dict[str, Any] | None = None
    multi_session: bool = False
    """One model per subject over its sessions (:func:`nwb_autolfads.run_sessions`)."""
    replaced_settings: list[str] = field(default_factory=list)
    """With ``overwrite``, what differs from the settings of the manifest's batch (``key: then ->
    now``): the results of its inputs that this batch does not run are marked ``outdated`` in the
    manifest, so that no later run counts them done with these settings."""
    resolved: dict[str, Any] = field(default_factory=dict)
    """The configuration every input runs with (preset, file, overrides, ``emg`` and ``seed``
    resolved, the device left out); a rerun is compared by what of it decides the results
    (:data:`EXECUTION_KEYS` left out)."""
    preset: str = ""
    """The preset the configuration is built on."""
    budget: str = ""
    """Each model's training budget in words (:func:`_budget`)."""
    execution: str = ""
    """Where the inputs run, in words, when not one after another here (``--jobs``, Ray)."""

    @property
    def manifest(self) -> Path:
        return self.out / MANIFEST

    def todo(self) -> list[BatchItem]:
        return [i for i in self.items if i.status not in ("done", "skipped", "kept")]

    def estimate(self) -> str:
        """The time left, from the timings of the assets done in earlier runs of the batch
        (seconds per byte; with ``multi_session`` per subject's model); unknown before any asset
        has finished."""
        if self.multi_session:
            return _eta_groups(self._timed(), self.groups_left())
        return _eta([i for g in self._timed() for i in g], self.todo(), 1)

    def _timed(self) -> list[list[BatchItem]]:
        """The groups (else items) that earlier runs of the batch timed (copies, ``seconds`` the time
        then), whether done now or to run again."""
        return [[replace(i, seconds=i.timed) for i in g] for g in self.groups() if all(i.timed for i in g)]

    def groups_left(self) -> int:
        """The groups (with ``multi_session`` the subjects' models, else the items) still to run or
        running (not finished: neither done, failed nor skipped)."""
        return sum(any(i.status in ("pending", "started") for i in g) for g in self.groups())

    def per_input(self) -> str:
        """The mean time an input (with ``multi_session`` a subject's model) took in earlier runs
        of the batch, in words ("" when none was timed)."""
        groups = self._timed()
        if not groups:
            return ""
        mean = sum(sum(i.seconds for i in g) for g in groups) / len(groups)
        what = "subject's model" if self.multi_session else "input"
        return f"~{_duration(mean)} per {what} in earlier runs of this batch (mean of {len(groups)})"

    def groups(self) -> list[list[BatchItem]]:
        """What runs together: with ``multi_session`` the items of one subject (:func:`subject_of`;
        the items skipped at planning left out), in the plan's order; else each item alone."""
        if not self.multi_session:
            return [[i] for i in self.items]
        groups: dict[tuple[str, str], list[BatchItem]] = {}
        for i in self.items:
            if i.status != "skipped":
                key = (i.subject_from, i.subject) if i.subject_from else ("path", subject_of(i.name))
                groups.setdefault(key if key[1] else ("", ""), []).append(i)
        return list(groups.values())

    def format(self) -> str:
        """The plan as text: a line per asset, the totals, the output folder and the time."""
        where = ", ".join(self.inputs)
        if self.dandiset:
            d = self.dandiset
            where += f" -> dandiset {d['id']} version {d['version']} ({d['version_rule']}) on {d['instance']}"
        lines = [f"batch plan: {where}: {len(self.items)} input(s)"]
        width = max([len(i.name) for i in self.items] + [10])
        for i in self.items:
            what = {"skipped": f"skip  {i.reason}", "kept": f"keep  {i.reason}",
                    "done": "done  earlier (output, input and model verified)" if not i.reason else
                    f"done  earlier (output and input verified; {i.reason})"}.get(
                i.status, f"run   -> {i.output}" + (f" (again: {i.reason})" if i.reason else ""))
            lines.append(f"  {i.name:<{width}}  {_size(i.size):>8}  {what}")
        todo = self.todo()
        lines += [f"  total       {len(todo)} to run ({_size(sum(i.size or 0 for i in todo))}), "
                  f"{sum(i.status == 'done' for i in self.items)} done earlier, "
                  f"{sum(i.status == 'skipped' for i in self.items)} skipped"
                  + (f", {sum(i.status == 'kept' for i in self.items)} kept as they are (see above: --overwrite "
                     "replaces them)" if any(i.status == "kept" for i in self.items) else ""),
                  f"  signals     {self.modalities}: checked when each input is opened (one without them is "
                  "skipped then, with the reason)",
                  f"  output      {self.out}{os.sep} (DANDI layout), manifest {self.manifest}",
                  *(self._models() if self.multi_session else []),
                  f"  training    preset {self.preset or '(none)'}: {self.budget}"
                  + (f"; {self.per_input()}" if self.per_input() else ""),
                  *([f"  execution   {self.execution}"] if self.execution else []),
                  f"  time        {self.estimate()}"]
        return "\n".join(lines)

    def _models(self) -> list[str]:
        """The plan's lines on the models of ``multi_session``: one per subject, with its sessions."""
        lines = ["  models      one per subject over its sessions (the sub-<label> of the paths, else the subject_id "
                 "of the files):"]
        for g in self.groups():
            lines.append(f"                {_subject_text(g[0])}: {len(g)} session(s)"
                         + (" (one session: a model of its own)" if len(g) == 1 else ""))
        return lines


@dataclass
class BatchResult:
    """What a batch did (:func:`run_batch`): the plan, with each item's final status."""

    plan: BatchPlan
    dry_run: bool = False

    def count(self, status: str) -> int:
        return sum(i.status == status for i in self.plan.items)

    @property
    def exit_code(self) -> int:
        """0 when no input failed or was kept out of date (and something was modelled, unless a
        dry run), else 1."""
        if self.dry_run:
            return 0
        return 1 if self.count("failed") or self.count("kept") or not self.count("done") else 0

    def summary(self) -> str:
        p = self.plan
        earlier = sum(i.earlier for i in p.items)
        lines = [f"batch: {len(p.items)} input(s): {self.count('done')} done"
                 + (f" ({earlier} earlier)" if earlier else "")
                 + f", {self.count('failed')} failed, {self.count('skipped')} skipped"
                 + (f", {self.count('kept')} kept out of date" if self.count("kept") else ""),
                 f"  outputs   {p.out}{os.sep}", f"  manifest  {p.manifest}"]
        lines += [f"  {i.status:<9} {i.name}: {i.reason}" for i in p.items if i.status in ("failed", "skipped", "kept")]
        if not self.count("done"):
            lines.append("  nothing was modelled: see the reasons above")
        return "\n".join(lines)


# ---- discovery


_SUBJECT = re.compile(r"(?:^|[/_])sub-([A-Za-z0-9]+)")


def subject_of(name: str) -> str:
    """The subject label of a DANDI/BIDS-like path (``sub-R3/sub-R3_ses-1_ecephys.nwb`` -> ``R3``),
    or "" when it names none."""
    m = _SUBJECT.search(str(name))
    return m.group(1) if m else ""


def file_subject_id(path: str | Path) -> str:
    """The ``general/subject/subject_id`` a local NWB file (HDF5, or a Zarr store) names, read
    cheaply (that one value, not the file), or "" when it names none or cannot be read."""
    path = Path(path)
    try:
        if path.is_dir():
            import zarr

            value = zarr.open(str(path), mode="r")["general/subject/subject_id"][()]
        else:
            import h5py

            with h5py.File(path, "r") as f:
                node = f.get("general/subject/subject_id")
                value = node[()] if isinstance(node, h5py.Dataset) else ""
    except Exception:  # not NWB, no subject, unreadable: it fails (or is skipped) when it is run
        return ""
    if hasattr(value, "tolist"):
        value = value.tolist()
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    value = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return value.strip() if isinstance(value, str) else ""


def _subject_text(item: BatchItem) -> str:
    """The subject an item is grouped under, in words (where it was read)."""
    if item.subject_from == "file":
        return f"{item.subject} (the subject_id in the files)"
    label = item.subject if item.subject_from else subject_of(item.name)
    return label or ("(no subject: neither the paths (sub-<label>) nor the files (general/subject/subject_id) name "
                     "one; trained together as ONE subject)")


def _assign_subjects(items: list[BatchItem]) -> None:
    """Each item's subject for ``multi_session``: its path's ``sub-<label>``, else (a local file)
    the subject_id its NWB file names, else none (a remote input's path names none)."""
    for item in items:
        if item.status == "skipped":
            continue
        label = subject_of(item.name)
        if label:
            item.subject, item.subject_from = label, "path"
        elif "://" not in item.input and (sid := file_subject_id(item.input)):
            item.subject, item.subject_from = sid, "file"


def is_batch(inputs: Sequence[str | Path]) -> bool:
    """Whether ``inputs`` are for a batch: several of them, or one that is a folder (not a Zarr
    store), a glob, or a DANDI URL naming a dandiset, folder, prefix or glob of assets."""
    from nwb_autolfads.io.formats import is_zarr_store
    from nwb_autolfads.io.sources import dandi_collection

    if len(inputs) != 1:
        return len(inputs) > 1
    text = str(inputs[0])
    path = Path(text)
    if path.is_dir() and not is_zarr_store(path):
        return True
    if not path.exists() and glob.has_magic(text) and "://" not in text and dandi_collection(text) is None:
        return True
    return dandi_collection(text) is not None


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def _local_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size


def _local_items(paths: list[Path], root: Path | None, out: Path) -> list[BatchItem]:
    items = []
    out = out.resolve()
    for path in paths:
        rel = path.resolve().relative_to(root) if root is not None else Path(path.name)
        item = BatchItem(name=rel.as_posix(), input=str(path), size=_local_size(path))
        if out == path.resolve() or out in path.resolve().parents:
            item.status, item.reason = "skipped", "inside the output folder"
        _classify(item)
        items.append(item)
    return items


def _classify(item: BatchItem) -> None:
    """Skip what is not an NWB file, or is an nwb-autolfads output (by name)."""
    if item.status == "skipped":
        return
    if not _NWB.search(item.name):
        item.status, item.reason = "skipped", "not an NWB file (.nwb or .nwb.zarr)"
    elif _OURS.search(item.name):
        item.status, item.reason = "skipped", "an nwb-autolfads output (by its name)"


def _folder(path: Path) -> list[Path]:
    """The NWB files and stores under a folder (not inside a Zarr store), sorted."""
    from nwb_autolfads.io.formats import is_zarr_store

    found, stack = [], [path]
    while stack:
        for child in sorted(stack.pop().iterdir()):
            if child.name.startswith("."):
                continue  # run directories, locks, hidden files
            if child.is_dir() and not is_zarr_store(child):
                stack.append(child)
            elif child.is_file() or is_zarr_store(child):
                found.append(child)
    return sorted(found)


def _check_found(text: str, found: list[Path], kind: str) -> None:
    """Stop (before anything is created) when the ``kind`` (``directory`` or ``pattern``) ``text``
    gives no NWB file to run (``found``: its files).

    Raises
    ------
    InputFileError
        ``found`` holds no ``.nwb`` / ``.nwb.zarr``, or only nwb-autolfads outputs (by name).
    """
    nwb = [p for p in found if _NWB.search(p.name)]
    verb = "holds" if kind == "directory" else "matches"
    fix = ("give the recordings' NWB files themselves, or a directory or quoted glob that holds some (** matches "
           "any depth)" if kind == "directory" else "check it (quote it so that the shell does not expand it; "
           "** matches any depth), or give the NWB files themselves")
    if not nwb:
        others = f"; {len(found)} other file{'s' if len(found) != 1 else ''}" if found else ""
        what = "matches no file" if kind == "pattern" and not found else f"{verb} no NWB file"
        raise InputFileError(f"{kind} {text!r} {what} (.nwb or .nwb.zarr{others}): nothing to run: {fix}")
    if all(_OURS.search(p.name) for p in nwb):
        raise InputFileError(f"{kind} {text!r} {verb} no NWB file to run, only nwb-autolfads outputs ({len(nwb)}, by "
                             f"name; not run again): {fix}")


def _local_inputs(specs: list[str], out: Path) -> list[BatchItem]:
    """Local files, folders and globs: their files, named relative to their common folder.

    Raises
    ------
    InputFileError
        A file is missing, or a folder or pattern gives no NWB file to run (:func:`_check_found`).
    """
    from nwb_autolfads.io.formats import is_zarr_store

    paths: list[Path] = []
    roots: list[Path] = []
    for text in specs:
        path = Path(text)
        if path.is_dir() and not is_zarr_store(path):
            roots.append(path.resolve())
            found = _folder(path)
            _check_found(text, found, "directory")
            paths += found
        elif not path.exists() and glob.has_magic(text):
            matched = sorted(Path(p) for p in glob.glob(text, recursive=True))
            _check_found(text, matched, "pattern")
            paths += matched
        else:
            if not path.exists():
                raise InputFileError(f"input {text!r} does not exist: check the path")
            paths.append(path)
    paths = list(dict.fromkeys(paths))
    resolved = roots + [p.resolve().parent for p in paths]
    root = Path(os.path.commonpath(resolved)) if resolved else None
    return _local_items(paths, root, out)


def _dandi_items(parsed, spec: str) -> tuple[list[BatchItem], dict[str, Any]]:
    """The assets a DANDI URL names (dandi's client: the dandiset, then its assets, a folder's,
    a prefix's or a glob's), each with an asset URL pinned to the version read."""
    from dandi import dandiapi
    from dandi.dandiarchive import AssetFolderURL, AssetGlobURL, AssetPathPrefixURL

    try:
        with dandiapi.DandiAPIClient(dandi_instance=parsed.instance) as client:
            dandiset = client.get_dandiset(parsed.dandiset_id, parsed.version_id, lazy=False)
            if isinstance(parsed, AssetGlobURL):
                assets = dandiset.get_assets_by_glob(parsed.path, order="path")
            elif isinstance(parsed, (AssetFolderURL, AssetPathPrefixURL)):
                prefix = parsed.path if isinstance(parsed, AssetPathPrefixURL) else parsed.path.rstrip("/") + "/"
                assets = dandiset.get_assets_with_path_prefix(prefix, order="path")
            else:
                assets = dandiset.get_assets(order="path")
            assets = list(assets)
    except Exception as exc:  # network, HTTP and not-found errors all end here
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise InputFileError(f"could not list {spec!r} through the DANDI API ({type(exc).__name__}: {first}): check "
                             "the dandiset id, version and path, and the network connection") from None
    version = dandiset.version_id
    rule = ("given in the URL" if parsed.version_id is not None else
            "draft: no version given, and no published version (dandi's rule)" if version == "draft" else
            "most recent published version: no version given (dandi's rule)")
    info = {"instance": parsed.instance.name, "api": parsed.instance.api, "id": parsed.dandiset_id,
            "version": version, "version_rule": rule}
    items = []
    for asset in assets:
        item = BatchItem(name=asset.path, input=f"dandi://{parsed.instance.name}/{parsed.dandiset_id}@{version}/"
                         f"{asset.path}", size=getattr(asset, "size", None), asset_id=asset.identifier,
                         version=version)
        _classify(item)
        items.append(item)
    if not items:
        raise InputFileError(f"{spec!r} names no asset (dandiset {parsed.dandiset_id} version {version}): check the "
                             "path or glob")
    return items, info


def _one_remote(spec: str) -> BatchItem:
    """A URL or one DANDI asset, resolved (its id, version and size)."""
    from nwb_autolfads.io.sources import resolve_source

    source = resolve_source(spec)
    d = source.dandi
    if d is None:
        item = BatchItem(name=source.name, input=spec)
    else:
        item = BatchItem(name=d.path, input=f"dandi://{d.instance}/{d.dandiset_id}@{d.version}/{d.path}"
                         if d.dandiset_id and d.version else spec, size=d.size, asset_id=d.asset_id, version=d.version)
    _classify(item)
    return item


def _discover(inputs: Sequence[str | Path], out: Path) -> tuple[list[BatchItem], dict[str, Any] | None]:
    from nwb_autolfads.io.sources import dandi_collection

    items: list[BatchItem] = []
    dandiset = None
    local: list[str] = []
    for spec in map(str, inputs):
        parsed = dandi_collection(spec)
        if parsed is not None:
            found, info = _dandi_items(parsed, spec)
            items += found
            dandiset = info if dandiset is None else dandiset
        elif "://" in spec or re.match(r"^[A-Za-z][-\w.]*:\d{6}", spec):
            items.append(_one_remote(spec))
        else:
            local.append(spec)
    items += _local_inputs(local, out) if local else []
    return items, dandiset


# ---- output names


def output_name(name: str, modalities: str = "emg") -> str:
    """The result's path in the output folder for an input named ``name`` (an asset path, or a
    path relative to the batch's root), POSIX.

    A DANDI-named input (``sub-<label>[_<key>-<value>...]_<suffix>.nwb``) gives
    ``sub-<label>/sub-<label>[_<key>-<value>...]_desc-autolfads_<modalities>.nwb``: every entity
    kept (``ses``, ``acq``...), a ``desc`` replaced. Another name gives ``<its
    folder>/<stem>_autolfads.nwb``."""
    path = PurePosixPath(name.rstrip("/"))
    stem = _NWB.sub("", path.name)
    parts = stem.split("_")
    if parts[0].startswith("sub-") and len(parts[0]) > 4:
        entities = [p for p in parts if re.fullmatch(r"[a-zA-Z]+-[A-Za-z0-9]+", p) and not p.startswith("desc-")]
        return f"{parts[0]}/{'_'.join(entities)}_desc-autolfads_{modalities}.nwb"
    return str(path.with_name(f"{stem}_autolfads.nwb"))


def _name_outputs(items: list[BatchItem], modalities: str) -> None:
    seen: dict[str, str] = {}
    for item in items:
        if item.status == "skipped":
            continue
        item.output = output_name(item.name, modalities)
        other = seen.setdefault(item.output.lower(), item.name)
        if other != item.name:
            raise ConfigError(f"{other!r} and {item.name!r} would both write {item.output!r}: give the inputs "
                              "separately (a glob or a list that names one of them), or run them into different "
                              "output folders with -o")


# ---- the manifest


def _settings(preset, config, overrides, emg, seed) -> dict[str, Any]:
    """What decides the results (compared on a rerun): preset, config file and its SHA-256,
    overrides, EMG path, seed."""
    from nwb_autolfads.io.writing import file_sha256

    cfg: Any = config
    if isinstance(config, (str, Path)):
        cfg = {"file": str(config), "sha256": file_sha256(config) if Path(config).is_file() else ""}
    elif config is not None:
        cfg = json.loads(json.dumps(asdict(config), default=str))
    return {"preset": preset, "config": cfg, "overrides": {str(k): v for k, v in sorted((overrides or {}).items())},
            "emg": emg, "seed": seed}


def _settings_with(settings: dict[str, Any], multi_session: bool) -> dict[str, Any]:
    """``settings`` and, when set, ``multi_session`` (absent otherwise: earlier manifests compare equal)."""
    return {**settings, "multi_session": True} if multi_session else settings


def _read_manifest(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OutputError(f"the batch manifest {str(path)!r} cannot be read ({exc}): move it away (the outputs "
                          "beside it are then run again) or choose another output folder") from None
    if not isinstance(data, dict) or data.get("format") != _FORMAT:
        raise OutputError(f"{str(path)!r} is not an nwb-autolfads batch manifest: choose another output folder")
    return data


def _write_manifest(plan: BatchPlan, previous: Mapping[str, Any] | None, command: str | None) -> None:
    """Replace the manifest atomically (a temporary file renamed over it): a kill leaves the
    old one or the new one. Rows of earlier inputs that are not in this batch are kept."""
    rows = {r.get("output") or r.get("name"): r for r in (previous or {}).get("assets", [])}
    if plan.replaced_settings:  # results of other inputs, made with the settings replaced now
        mine = {i.key for i in plan.items}
        why = "made with other settings (" + "; ".join(plan.replaced_settings[:3]) + (
            "; ..." if len(plan.replaced_settings) > 3 else "") + ")"
        for key, row in rows.items():
            if key not in mine and row.get("status") in ("done", "kept"):
                rows[key] = {**row, "status": "outdated", "reason": why}
    for i in plan.items:  # a result kept keeps its row (what it was made from), with the reason; one
        if i.status != "kept" or i.key not in rows:  # out of date stays so (its reason is why)
            rows[i.key] = i.row()
        elif rows[i.key].get("status") not in ("outdated", "started"):  # started: nothing recorded to check
            rows[i.key] = {**rows[i.key], "status": "kept", "reason": i.reason}
    data = {"format": _FORMAT, "version": 1, "inputs": plan.inputs, "dandiset": plan.dandiset,
            "modalities": plan.modalities, "settings": plan.settings, "resolved": plan.resolved, "command": command,
            "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"), "assets": list(rows.values())}
    tmp = plan.manifest.with_name(f".{MANIFEST}.tmp")
    tmp.write_text(json.dumps(data, indent=1, default=str) + "\n", encoding="utf-8")
    os.replace(tmp, plan.manifest)


def _output_ok(path: Path, row: Mapping[str, Any]) -> bool:
    """A done output is still good: the same SHA-256, or it opens and holds the recorded run."""
    from nwb_autolfads.io.writing import file_sha256

    if not path.is_file():
        return False
    if row.get("output_sha256") and file_sha256(path) == row["output_sha256"]:
        return True
    try:
        from nwb_autolfads.io.results import list_runs

        return any(r.name == row.get("run_name") for r in list_runs(path))
    except Exception:  # unreadable: run it again
        return False


def _local_stat(path: Path) -> tuple[int, int]:
    """(bytes, modification time in ns) of a local file, or of a folder (a Zarr store: its files'
    total, its newest entry's time)."""
    if not path.is_dir():
        st = path.stat()
        return st.st_size, st.st_mtime_ns
    entries = [path, *path.rglob("*")]
    return (sum(p.stat().st_size for p in entries if p.is_file()), max(p.stat().st_mtime_ns for p in entries))


def _local_sha256(path: Path) -> str:
    from nwb_autolfads.io.sources import tree_sha256
    from nwb_autolfads.io.writing import file_sha256

    return tree_sha256(path) if path.is_dir() else file_sha256(path)


def _input_identity(input: str) -> dict[str, Any]:
    """What identifies a local input (a path) now, recorded with its result: ``size``,
    ``input_mtime_ns`` and ``input_sha256``; a remote input (a URL): {} (a DANDI asset's
    ``asset_id``, ``version`` and ``size`` come from the archive's listing when the plan is made)."""
    if "://" in input or not Path(input).exists():
        return {}
    size, mtime = _local_stat(Path(input))
    return {"size": size, "input_mtime_ns": mtime, "input_sha256": _local_sha256(Path(input))}


def _recorded_source_sha256(output: Path, run_name: str) -> str:
    """The source's SHA-256 the output's provenance records for ``run_name`` ("" if unreadable)."""
    try:
        from nwb_autolfads.io.results import load_results

        with load_results(output, run=run_name or None) as ds:
            return str(ds.attrs.get("source_file_sha256") or "")
    except Exception:  # unreadable or of another layout: not a proof that the input is the same
        return ""


def _input_changed(item: BatchItem, row: Mapping[str, Any], output: Path) -> bool:
    """Whether a done item's input differs from the one its result was made from (``row``: its
    manifest row; ``output``: the result). A DANDI asset: another asset id (a replaced file is a new
    asset) or size. A local input: the same SHA-256 as recorded, always hashed (a file replaced by
    another of the same size with its modification time kept, e.g. ``cp -p`` or ``rsync -a``, is
    still seen: size and time alone would miss it; hashing costs about a second per GB, as the
    outputs' own check does); a row of a manifest that recorded none (an earlier version): the
    SHA-256 the output's provenance records for its source. An unchanged local input's identity is
    kept on ``item``. Another URL: not checked (its size only)."""
    if item.asset_id or "://" in item.input:
        return bool(row.get("asset_id") and item.asset_id and row["asset_id"] != item.asset_id) or \
            (row.get("size") is not None and item.size is not None and row["size"] != item.size)
    path = Path(item.input)
    if not path.exists():
        return True
    size, mtime = _local_stat(path)
    recorded = row.get("input_sha256") or _recorded_source_sha256(output, row.get("run_name", ""))
    sha = _local_sha256(path)
    if sha != recorded:
        return True
    item.size, item.input_mtime_ns, item.input_sha256 = size, mtime, sha
    return False


def _model_ok(folder: Path, sha256: str, cache: dict[Path, bool]) -> bool:
    """A result's model folder is still there with the weights of SHA-256 ``sha256`` (``cache``:
    folders checked already, a multi-session model being every session's)."""
    from nwb_autolfads.io.writing import file_sha256

    if folder not in cache:
        weights, meta = folder / "model.safetensors", folder / "model.json"
        cache[folder] = weights.is_file() and meta.is_file() and (not sha256 or file_sha256(weights) == sha256)
    return cache[folder]


def _stale(item: BatchItem, row: Mapping[str, Any], out: Path) -> str:
    """Why a done item's result (``row``: its manifest row) is not this batch's result, or "" when
    it is: its output or its input changed (:func:`_output_ok`, :func:`_input_changed`), or a
    later batch with other settings marked it ``outdated``."""
    if not _output_ok(out / item.output, row):
        return "its output is missing or changed"
    if _input_changed(item, row, out / item.output):
        return "its input changed since its result was written"
    if row.get("status") == "outdated":
        return str(row.get("reason") or "made with other settings")
    return ""


def _finished_unrecorded(item: BatchItem, out: Path) -> None:
    """Mark ``item`` done when its manifest row says ``started`` but its output is complete and
    made from its input as it is now (the batch was stopped, by SIGTERM say, after the job wrote
    the output and before the manifest recorded it; a rerun then kept it as "run again" and asked
    for --overwrite, i.e. training again): a local input whose SHA-256 the output's latest run
    records. Its model folder beside the output is recorded when it holds a model."""
    output = out / item.output
    if "://" in item.input or not output.is_file() or not Path(item.input).exists():
        return
    try:
        from nwb_autolfads.io.results import list_runs

        runs = list_runs(output)
    except Exception:  # unreadable: not finished
        return
    if not runs or _recorded_source_sha256(output, runs[-1].name) != _local_sha256(Path(item.input)):
        return
    from nwb_autolfads.io.writing import file_sha256
    from nwb_autolfads.model.artifact import model_path_for

    model = model_path_for(output)
    item.status, item.earlier, item.run_name = "done", True, runs[-1].name
    item.output_sha256 = file_sha256(output)
    item.size, item.input_mtime_ns = _local_stat(Path(item.input))
    item.input_sha256 = _local_sha256(Path(item.input))
    if (model / "model.safetensors").is_file() and (model / "model.json").is_file():
        item.model, item.model_sha256 = model.relative_to(out).as_posix(), file_sha256(model / "model.safetensors")


def _model_note(row: Mapping[str, Any], out: Path, models: dict[Path, bool]) -> str:
    """A note when a done result's model folder is gone or changed (deleted to save space, say):
    the result stays done (it is what it was); only ``apply`` of that model is lost."""
    if row.get("model") and not _model_ok(out / row["model"], row.get("model_sha256", ""), models):
        return f"its model folder {row['model']} is missing or changed (the result is kept; remove it to train again)"
    return ""


EXECUTION_KEYS = ("device", "train.threads", "train.cuda_graphs", "pbt.workers", "pbt.execution", "pbt.backend",
                  "pbt.ray_address", "pbt.ray_cpus_per_member", "pbt.ray_gpus_per_member")
"""Settings of how a run uses the machine, not of what it computes (each member-generation has its
own seed, so they change at most the last bits of float sums): a rerun of a batch that differs only
in these (or in the progress options, which are no settings) is the same batch."""


def _flat(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _deciding(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` (a resolved configuration, or recorded options whose ``overrides`` are dotted
    keys) flattened to dotted keys, without :data:`EXECUTION_KEYS`."""
    def key(dotted: str) -> str:  # overrides.train.threads, config.train.threads: train.threads
        return dotted.split(".", 1)[1] if dotted.startswith(("overrides.", "config.")) else dotted

    return {k: v for k, v in _flat(settings).items() if key(k) not in EXECUTION_KEYS}


def _settings_differences(previous: Mapping[str, Any], plan: BatchPlan, default_seed: int) -> list[str]:
    """What differs between a manifest's batch and this plan in what decides the results
    (``key: then -> now``; [] for the same batch): the modalities and the resolved configurations
    without :data:`EXECUTION_KEYS`. A manifest of an earlier version holds no resolved configuration:
    its recorded options are compared, a seed not given counting as ``default_seed`` (the one the
    same options resolve to)."""
    if previous.get("modalities") != plan.modalities:
        return [f"modalities: {previous.get('modalities')} -> {plan.modalities}"]
    if "resolved" in previous:
        from nwb_autolfads.config import RunConfig
        from nwb_autolfads.config.migrations import missing_as_defaults

        # settings added since the manifest was written count as their defaults (the earlier behaviour)
        old = _deciding(missing_as_defaults(previous["resolved"], RunConfig().to_dict()))
        new = _deciding(plan.resolved)
    else:
        settings = dict(previous.get("settings") or {})
        settings["seed"] = default_seed if settings.get("seed") is None else settings["seed"]
        old, new = _deciding(settings), _deciding(plan.settings)
    return [f"{k}: {old.get(k, '(not set)')} -> {new.get(k, '(not set)')}" for k in sorted(set(old) | set(new))
            if old.get(k) != new.get(k)]


def _apply_manifest(plan: BatchPlan, previous: Mapping[str, Any] | None, overwrite: bool,
                    default_seed: int) -> None:
    """Mark the items done in an earlier run (output verified), and refuse a manifest written
    with other settings (its results would be mixed with these) unless ``overwrite``
    (``default_seed``: see :func:`_settings_differences`)."""
    if previous is None:
        return
    differences = _settings_differences(previous, plan, default_seed)
    if differences:
        plan.replaced_settings = differences
        if not overwrite:
            shown = "; ".join(differences[:5]) + (f"; and {len(differences) - 5} more" if len(differences) > 5 else "")
            raise ConfigError(f"{str(plan.manifest)!r} lists a batch run with other settings ({shown}; it ran with "
                              f"{previous.get('settings')}, modalities {previous.get('modalities')}): choose another "
                              "output folder (-o), or pass --overwrite to run every input again with these settings")
        return
    rows = {r.get("output"): r for r in previous.get("assets", []) if r.get("output")}
    models: dict[Path, bool] = {}
    for item in plan.items:
        row = rows.get(item.output)
        if item.status == "skipped" or row is None:
            continue
        # started or done by this batch: an output there is its own (a failed input wrote nothing)
        item.ours = row.get("status") in ("started", "done", "kept", "outdated")
        if row.get("status") == "started" and not plan.multi_session:
            _finished_unrecorded(item, plan.out)
        if row.get("status") not in ("done", "kept", "outdated"):
            continue
        item.timed, item.trained = row.get("seconds"), row.get("model", "")
        item.reason = _stale(item, row, plan.out)
        if not item.reason:
            item.status, item.earlier = "done", True
            for key in ("output_sha256", "run_name", "model", "model_sha256", "started"):
                setattr(item, key, row.get(key, ""))
            item.seconds = row.get("seconds")
            item.reason = _model_note(row, plan.out, models)
    if plan.multi_session:
        _group_again(plan)
    if not overwrite:
        _keep_results(plan)


def _keep_results(plan: BatchPlan) -> None:
    """Without ``overwrite`` an earlier result of the batch is never replaced (a user may have
    annotated it; its input changed, or the settings): an item to run again whose output exists is
    ``kept`` with the reason, and with ``multi_session`` so is every item of its subject's group
    (the group's model would replace it)."""
    for group in plan.groups():
        again = [i for i in group if i.status == "pending" and i.ours and (plan.out / i.output).exists()]
        if not again:
            continue
        first = next((i for i in again if not i.reason.startswith("its subject's model")), again[0])  # the cause
        why = f"{first.reason or 'run again'}: its earlier result is kept; pass --overwrite to run it again and replace it"
        for item in group:
            if item.status == "pending":
                item.status = "kept"
                item.reason = why if item is first or not plan.multi_session else \
                    f"its subject's model would replace earlier results ({first.name}: {why})"


def _group_again(plan: BatchPlan) -> None:
    """Multi-session: a group that runs (a session new, failed or changed) runs as a whole, so its
    sessions done earlier are run again too (one model over all of them), with the reason; so does
    a group whose sessions were done with other models, or whose model was trained with sessions
    now in another group (a subject_id changed)."""
    groups = plan.groups()
    owners: dict[str, set[int]] = {}
    for n, group in enumerate(groups):
        for item in group:
            if item.trained:
                owners.setdefault(item.trained, set()).add(n)
    for group in groups:
        todo = [i for i in group if i.status not in ("done", "skipped")]
        models = {i.trained for i in group if i.status == "done"}
        if todo:
            first = f"{todo[0].name}: {todo[0].reason}" if todo[0].reason else f"{todo[0].name} is new or not done"
            reason = f"its subject's model is trained again ({first})"
        elif len(models) > 1 or any(len(owners.get(m, ())) > 1 for m in models if m):
            reason = "its subject's sessions changed since its model was trained (a session's subject_id changed?)"
        else:
            continue
        for item in group:
            if item.status == "done":
                item.status, item.earlier, item.reason = "pending", False, reason


def plan_batch(inputs: Sequence[str | Path], output: str | Path | None = None, *, preset: str | None = None,
               config: Any = None, overrides: Mapping[str, Any] | None = None, emg: str | None = None,
               seed: int | None = None, overwrite: bool = False, multi_session: bool = False) -> BatchPlan:
    """Find the inputs of a batch and what each will become (see the module's description).

    Parameters
    ----------
    inputs : sequence of str or pathlib.Path
        DANDI URLs of a dandiset or of some of its assets (folder, prefix, glob), DANDI asset
        URLs, http(s) URLs, local files, folders or globs.
    output : str or pathlib.Path, optional
        The output folder (default ``./<dandiset id>-autolfads`` for a dandiset, else
        ``./autolfads-results``).
    preset, config, overrides, emg, seed
        As for :func:`nwb_autolfads.run`; they decide the output names (the modalities) and are
        recorded in the manifest.
    overwrite : bool
        Run every input again, although the manifest lists a batch with other settings (the
        results of other inputs in the folder are then marked ``outdated``), and replace earlier
        results to be run again (input changed, out of date); without it they are ``kept``.
    multi_session : bool
        One model per subject over its sessions (see the module's description).

    Returns
    -------
    BatchPlan

    Raises
    ------
    InputFileError
        An input is missing, a folder or pattern gives no NWB file to run (nor do the inputs
        together), or the DANDI API cannot list the assets.
    ConfigError
        Two inputs would write the same output, or the settings differ from the manifest's.
    OutputError
        ``output`` is a file, or its manifest cannot be read.
    """
    from nwb_autolfads.config import build_config
    from nwb_autolfads.modalities import MODALITY_SEPARATOR

    if not inputs:
        raise ConfigError("no input: give NWB files, a folder, a glob or a dandiset (DANDI:<id>)")
    cfg = config if config is not None and not isinstance(config, (str, Path)) else build_config(
        preset, config, overrides)
    modalities = MODALITY_SEPARATOR.join(cfg.data.modalities)
    out = _output_folder(inputs, output)
    items, dandiset = _discover(inputs, out)
    if not any(item.status != "skipped" for item in items):  # e.g. a dandiset's assets, none NWB
        reasons = "; ".join(sorted({item.reason for item in items}))
        raise InputFileError(f"no NWB file to run in {', '.join(repr(str(i)) for i in inputs)}: each one found was "
                             f"skipped ({reasons}): give the recordings' NWB files (.nwb or .nwb.zarr)")
    _name_outputs(items, modalities)
    if multi_session:
        _assign_subjects(items)
    resolved = cfg.updated({k: v for k, v in (("data.emg", emg), ("seed", seed)) if v is not None})
    plan = BatchPlan(inputs=[str(i) for i in inputs], out=out, items=items, modalities=modalities,
                     settings=_settings_with(_settings(preset, config, overrides, emg, seed), multi_session),
                     dandiset=dandiset, multi_session=multi_session,
                     resolved=json.loads(json.dumps({k: v for k, v in resolved.to_dict().items() if k != "device"},
                                                    default=str)), preset=cfg.preset, budget=_budget(cfg))
    plan.settings["seed"] = resolved.seed  # as resolved: --seed 0 and no --seed are the same batch
    _apply_manifest(plan, _read_manifest(plan.manifest), overwrite, cfg.seed)
    return plan


def _budget(cfg: Any) -> str:
    """Each model's training budget in words (``cfg``: a :class:`~nwb_autolfads.config.RunConfig`)."""
    t, p = cfg.train, cfg.pbt
    if p.population > 1:
        return (f"a population of {p.population} members x at most {p.max_generations} generations x "
                f"{p.generation_steps} steps (= {p.generation_steps * p.max_generations} steps per member) per model")
    return f"1 model (no population), at most {t.max_steps} steps (early stopping usually ends sooner)"


def _output_folder(inputs: Sequence[str | Path], output: str | Path | None) -> Path:
    if output is not None:
        out = Path(output)
        if out.suffix == ".nwb" or out.is_file():
            raise OutputError(f"--output {str(out)!r} is a file, but several inputs give several results: give a "
                              "folder (created if missing), e.g. -o results/")
        return out
    from nwb_autolfads.io.sources import dandi_collection

    for spec in map(str, inputs):
        parsed = dandi_collection(spec)
        if parsed is not None:
            return Path(f"{parsed.dandiset_id}-autolfads")
    return Path("autolfads-results")


# ---- running


def _eta(finished: list[BatchItem], left: list[BatchItem], jobs: int) -> str:
    if not left:
        return "nothing left to run"
    if not finished:
        return "not known before the first input finishes (then the time left is shown after each)"
    spent = sum(i.seconds or 0.0 for i in finished)
    sized = all(i.size for i in finished + left)
    per = spent / sum(i.size for i in finished) if sized else spent / len(finished)
    seconds = per * (sum(i.size for i in left) if sized else len(left)) / max(jobs, 1)
    return f"about {_duration(seconds)} left" + ("" if sized else " (from the mean time per input)")


def _eta_groups(finished: list[list[BatchItem]], left: int) -> str:
    """The time left of a multi-session batch: ``left`` groups (models) to run, each taken to last
    as long as the mean of the ``finished`` ones (a group's time: its sessions' ``seconds`` summed;
    a model's training budget is in steps, whatever the number of its sessions)."""
    if not left:
        return "nothing left to run"
    if not finished:
        return "not known before the first subject's model finishes (then the time left is shown after each)"
    per = sum(sum(i.seconds or 0.0 for i in g) for g in finished) / len(finished)
    return f"about {_duration(per * left)} left (from the mean time per subject's model)"


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min" if seconds < 5400 else \
        f"{seconds / 3600:.1f} h"


def _run_one(input: str, output: str, kwargs: dict[str, Any], root: str) -> dict[str, Any]:
    """Run one input (in this process or a worker) into ``output``, a file under the output
    folder ``root``; its outcome as a dict (never raises a user error: it becomes ``failed`` or,
    for a missing signal, ``skipped``). The model's folder is recorded relative to ``root``."""
    from nwb_autolfads.pipeline import run

    t0 = time.perf_counter()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    identity = _input_identity(input)  # before it is read: a change during the run is seen on the next
    try:
        result = run(input, output, **kwargs)
    except SignalNotFoundError as exc:
        status = "failed" if kwargs.get("emg") else "skipped"  # a path the user named must be there
        return {"status": status, "reason": _one_line(exc), "started": started, "seconds": time.perf_counter() - t0}
    except Exception as exc:  # noqa: BLE001 - recorded (a bug or a library's error too), the batch goes on
        return {"status": "failed", "reason": _failure(exc), "started": started, "seconds": time.perf_counter() - t0}
    return _done(result, root, started, time.perf_counter() - t0, identity)


def _failure(exc: BaseException) -> str:
    """The manifest's reason for a failed run: the error's line, or for an error that is not one of
    ours (a bug or a library's error on odd data) its type and a request to report it."""
    if isinstance(exc, NwbAutolfadsError):
        return _one_line(exc)
    return f"{type(exc).__name__}: {_one_line(exc)} (unexpected: please report it)"


def _done(result, root: str, started: str, seconds: float, identity: Mapping[str, Any]) -> dict[str, Any]:
    """The outcome of a run whose result was written: its output's SHA-256, its run, its model's
    folder relative to the output folder ``root`` and the model's SHA-256, the timings and the
    input's identity (:func:`_input_identity`)."""
    from nwb_autolfads.io.writing import file_sha256

    model = "" if result.model is None else \
        Path(os.path.relpath(Path(result.model).resolve(), Path(root).resolve())).as_posix()
    return {"status": "done", "reason": "", "output_sha256": file_sha256(result.output), "run_name": result.run_name,
            "model": model, "model_sha256": result.model_sha256 or "", "started": started, "seconds": seconds,
            **identity}


def _run_group(inputs: list[str], outputs: list[str], kwargs: dict[str, Any], root: str) -> list[dict[str, Any]]:
    """Run the sessions of one subject into one model (:func:`nwb_autolfads.run_sessions`; one
    session alone: :func:`_run_one`); an outcome per session, as :func:`_run_one` gives it (an error
    fails every session of the group, with its reason)."""
    from nwb_autolfads.sessions import run_sessions

    if len(inputs) == 1:
        return [_run_one(inputs[0], outputs[0], kwargs, root)]
    t0 = time.perf_counter()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    options = {k: v for k, v in kwargs.items() if k not in ("run_name", "in_place")}
    identities = [_input_identity(i) for i in inputs]
    try:
        results = run_sessions(inputs, outputs, **options)
    except Exception as exc:  # noqa: BLE001 - recorded for every session of the group, the batch goes on
        reason = _failure(exc)
        if isinstance(exc, NwbAutolfadsError):
            reason = f"multi-session model of {len(inputs)} sessions: {reason}"
        return [{"status": "failed", "reason": reason, "started": started,
                 "seconds": (time.perf_counter() - t0) / len(inputs)}] * len(inputs)
    seconds = (time.perf_counter() - t0) / len(inputs)  # the model's time shared by its sessions
    return [_done(r, root, started, seconds, identity) for r, identity in zip(results, identities)]


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:1000] or type(exc).__name__


def _record(item: BatchItem, outcome: Mapping[str, Any]) -> None:
    for key, value in outcome.items():
        setattr(item, key, value)


def _job_init() -> None:
    """In each ``--jobs`` process: end with the batch (a job whose batch was killed stopped
    nowhere; its run directory keeps what it had trained, for the same command to continue)."""
    import signal

    from nwb_autolfads.train.resources import end_with_parent

    signal.signal(signal.SIGINT, signal.default_int_handler)  # under nohup SIGINT comes ignored: the batch stops jobs with it
    end_with_parent()


def _progress(plan: BatchPlan, finished: list[list[BatchItem]], t0: float, jobs: int) -> str:
    """The line printed when an item (or a multi-session group: ``finished``' last entry) finishes:
    the counts, the time spent and the time left, from what this run has finished (per group with
    ``multi_session``, as its sessions train one model together)."""
    n = len(plan.items)
    done = sum(i.status in ("done", "failed", "skipped", "kept") for i in plan.items)
    counts = ", ".join(f"{sum(i.status == s for i in plan.items)} {s}" for s in ("done", "failed", "skipped"))
    counts += f", {sum(i.status == 'kept' for i in plan.items)} kept" if any(i.status == "kept" for i in plan.items) else ""
    left = (_eta_groups([g for g in finished if all(i.status == "done" for i in g)], plan.groups_left())
            if plan.multi_session else _eta([i for g in finished for i in g if i.seconds],
                                            [i for i in plan.items if i.status in ("pending", "started")], jobs))
    return f"nwb-autolfads: batch: {done}/{n} finished ({counts}); {_duration(time.perf_counter() - t0)} elapsed, {left}"


def _started(plan: BatchPlan, items: list[BatchItem]) -> str:
    """The line printed when an item, or a multi-session group (one model), starts."""
    if len(items) == 1:
        return f"nwb-autolfads: batch: {items[0].name} -> {plan.out / items[0].output}"
    return (f"nwb-autolfads: batch: subject {_subject_text(items[0])}: one model over {len(items)} sessions ("
            + ", ".join(i.name for i in items) + f") -> {plan.out}{os.sep}")


def _execute_groups(plan: BatchPlan, kwargs: dict[str, Any], note: Callable[[list[BatchItem]], None]) -> None:
    """Multi-session: run each subject's group whose sessions are not all done (one after another),
    calling ``note`` with the group when it starts and when it ends; sessions found without
    signals at run time fail the group."""
    for group in plan.groups():
        if all(i.status in ("done", "skipped", "kept") for i in group):
            continue
        for item in group:
            Path(plan.out / item.output).parent.mkdir(parents=True, exist_ok=True)
        replace = _group_replace(plan, group, kwargs)
        for item in group:
            _record(item, {"status": "started", "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                           "earlier": False})
        note(group)
        outcomes = _run_group([i.input for i in group], [str(plan.out / i.output) for i in group],
                              {**kwargs, "overwrite": replace}, str(plan.out))
        for item, outcome in zip(group, outcomes):
            _record(item, outcome)
        note(group)


def _execute(plan: BatchPlan, kwargs: dict[str, Any], jobs: int, note: Callable[[list[BatchItem]], None],
             ray: Any = None) -> None:
    """Run the items left, one by one or ``jobs`` at a time (processes; with ``ray``, a
    (:class:`~nwb_autolfads.batch_ray.RayTasks`, :class:`~nwb_autolfads.batch_ray.TaskResources`)
    pair: Ray tasks), calling ``note`` ([the item]) when each starts and ends."""
    if ray is not None:
        return _execute_ray(plan, kwargs, jobs, note, *ray)
    if plan.multi_session:
        return _execute_groups(plan, kwargs, note)
    todo = plan.todo()
    for item in todo:
        Path(plan.out / item.output).parent.mkdir(parents=True, exist_ok=True)
    if jobs <= 1:
        for item in todo:
            replace = _replace(plan, item, kwargs)  # before the manifest lists it as this batch's
            _record(item, {"status": "started", "started": datetime.now(timezone.utc).isoformat(timespec="seconds")})
            note([item])
            _record(item, _run_one(item.input, str(plan.out / item.output), {**kwargs, "overwrite": replace},
                                   str(plan.out)))
            note([item])
        return
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    replace = {item.key: _replace(plan, item, kwargs) for item in todo}
    for item in todo:  # queued: an output found later is this batch's
        _record(item, {"status": "started", "started": datetime.now(timezone.utc).isoformat(timespec="seconds")})
        note([item])
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_job_init) as pool:
        waiting, running = list(todo), {}

        def submit() -> None:  # one at a time as jobs end: none queued that an interrupt would still start
            item = waiting.pop(0)
            running[pool.submit(_run_one, item.input, str(plan.out / item.output),
                                {**kwargs, "progress": False, "overwrite": replace[item.key]}, str(plan.out))] = item

        try:
            for _ in range(min(jobs, len(waiting))):
                submit()
            while running:
                for future in wait(running, return_when=FIRST_COMPLETED).done:
                    item = running.pop(future)
                    _record(item, future.result())
                    note([item])
                    if waiting:
                        submit()
        except BaseException:
            processes = list((getattr(pool, "_processes", None) or {}).values())  # the executor's own (CPython)
            pool.shutdown(wait=False, cancel_futures=True)  # forgets them
            _stop_jobs(processes)
            raise


def _stop_jobs(processes: list, grace: float = 2.0) -> None:
    """Stop the ``--jobs`` processes (``processes``) still running as Ctrl-C would (each keeps its run directory for
    the same command to continue). Ctrl-C in a terminal reaches them too: they are given ``grace``
    seconds to stop by themselves first; a SIGTERM or an error reaches this process only (a batch
    once waited for ever on jobs that kept training after "terminated")."""
    import signal

    deadline = time.monotonic() + grace
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.is_alive():
            try:
                os.kill(process.pid, signal.SIGINT)
            except OSError:
                pass


def _execute_ray(plan: BatchPlan, kwargs: dict[str, Any], jobs: int, note: Callable[[list[BatchItem]], None],
                 tasks: Any, res: Any) -> None:
    """Run the items left (with ``multi_session`` the subjects' groups not all done) as Ray tasks
    (``tasks``: a connected :class:`~nwb_autolfads.batch_ray.RayTasks`; ``res``: each task's
    resources), at most ``jobs`` in flight. Each task runs :func:`_run_group` (one input:
    :func:`_run_one`), which writes its outputs itself and returns the outcomes; the driver records
    them (the manifest, ``note``) as they come. A task that dies (its worker or node) fails its
    inputs with the reason. Paths are given absolute: a task runs elsewhere, perhaps on another machine."""
    units = [g for g in plan.groups() if not all(i.status in ("done", "skipped", "kept") for i in g)]
    task_kwargs = _task_kwargs(kwargs, res)
    calls = []
    for group in units:
        for item in group:
            Path(plan.out / item.output).parent.mkdir(parents=True, exist_ok=True)
        replace = _group_replace(plan, group, kwargs) if plan.multi_session else _replace(plan, group[0], kwargs)
        calls.append(([_task_input(i.input) for i in group], [str(plan.out / i.output) for i in group],
                      {**task_kwargs, "overwrite": replace}, str(plan.out)))

    def started(k: int) -> None:
        for item in units[k]:
            _record(item, {"status": "started", "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                           "earlier": False})
        note(units[k])

    def finished(k: int, outcomes: Any, error: str) -> None:
        if error:
            outcomes = [{"status": "failed", "seconds": None, "reason": f"its Ray task failed ({error}): run the same "
                         "command again to retry it (it continues from its run directory)"}] * len(units[k])
        for item, outcome in zip(units[k], outcomes):
            _record(item, outcome)
        note(units[k])

    tasks.map(_run_group, calls, jobs=jobs, res=res, started=started, finished=finished)


def _task_kwargs(kwargs: Mapping[str, Any], res: Any) -> dict[str, Any]:
    """The options of :func:`nwb_autolfads.run` in a Ray task: the task's execution settings and
    device (``res``), no progress, a config file's path absolute."""
    config = kwargs.get("config")
    return {**kwargs, "overrides": {**dict(kwargs.get("overrides") or {}), **res.overrides}, "device": res.device,
            "progress": False, "config": str(Path(config).absolute()) if isinstance(config, (str, Path)) else config}


def _task_input(input: str) -> str:
    """A local input's absolute path (a URL as it is)."""
    return str(Path(input).absolute()) if "://" not in input and Path(input).exists() else input


def _group_replace(plan: BatchPlan, group: list[BatchItem], kwargs: Mapping[str, Any]) -> bool:
    """Whether a multi-session group may replace existing outputs (and its model): those this
    batch wrote, or any with ``overwrite``; a file of someone else's at an output is never
    replaced (the group then fails naming it)."""
    foreign = any((plan.out / i.output).exists() and not i.ours for i in group)
    return bool(kwargs.get("overwrite")) or (not foreign and any(i.ours for i in group))


def _replace(plan: BatchPlan, item: BatchItem, kwargs: Mapping[str, Any]) -> bool:
    """Whether an existing output may be replaced: one of this batch's (a stale or changed
    result), or any with ``overwrite``; another file there is left alone (the input fails)."""
    return bool(kwargs.get("overwrite")) or (item.ours and (plan.out / item.output).exists())


def run_batch(inputs: Sequence[str | Path], output: str | Path | None = None, *, preset: str | None = None,
              config: Any = None, overrides: Mapping[str, Any] | None = None, emg: str | None = None,
              seed: int | None = None, device: str | None = None, overwrite: bool = False, jobs: int | None = None,
              dry_run: bool = False, progress: bool = True, command: str | None = None,
              multi_session: bool = False, backend: str | None = None, ray_address: str | None = None,
              **run_options: Any) -> BatchResult:
    """Run :func:`nwb_autolfads.run` on every input of a batch: a dandiset, some of its assets,
    several files, a folder or a glob (see the module's description for the output layout, the
    manifest and resuming).

    Parameters
    ----------
    inputs : sequence of str or pathlib.Path
        See :func:`plan_batch`.
    output : str or pathlib.Path, optional
        The output folder (created if missing); see :func:`plan_batch`.
    preset, config, overrides, emg, seed, device
        As for :func:`nwb_autolfads.run`, for every input.
    overwrite : bool
        As for :func:`plan_batch`: run the inputs again with these settings although the
        manifest lists other ones, and replace earlier results (else ``kept``, exit code 1).
    jobs : int, optional
        Inputs run at once, each in its own process (default 1: one after the other); on Ray the
        tasks in flight (default: the cluster's CPUs / the CPUs of one run,
        :func:`nwb_autolfads.batch_ray.run_resources`).
    dry_run : bool
        Plan only: nothing is run or written.
    progress : bool
        The plan, a line per finished input (with ``multi_session`` per subject's model) with the
        time left, and each run's progress, on stderr.
    command : str, optional
        How the batch was started (recorded in the manifest and each run's provenance).
    multi_session : bool
        One model per subject over its sessions (:func:`nwb_autolfads.run_sessions`), each
        session's result in its own output; ``jobs`` is then not supported, except on Ray (a
        task per subject's model).
    backend : {"embedded", "ray"}, optional
        ``ray``: each input (with ``multi_session`` each subject's group) is a Ray task
        (:mod:`nwb_autolfads.batch_ray`), on the cluster at ``ray_address`` or a private local
        instance, and each run trains embedded; every node must reach the output folder (and
        local inputs) at the same path. Default: the configuration's ``pbt.backend`` (``ray`` when
        ``ray_address`` is given).
    ray_address : str, optional
        A running Ray cluster (``HEAD:6379``, ``auto``); default the configuration's ``pbt.ray_address``.
    **run_options
        Other options of :func:`nwb_autolfads.run` (``run_name``, ``fresh``).

    Returns
    -------
    BatchResult
        The plan with each input's status; :attr:`BatchResult.exit_code` is 1 if any failed.

    Raises
    ------
    InputFileError, ConfigError, OutputError
        As :func:`plan_batch`; also for options that apply to one file only, and (ConfigError)
        for ``backend`` ``ray`` without Ray installed. Errors of one input do not stop the batch:
        they are recorded in the manifest as ``failed``.
    """
    for name in ("in_place", "resume", "write"):
        if run_options.get(name):
            raise ConfigError(f"{name.replace('_', '-')} is for one input file, not a batch: leave it out (a batch "
                              "continues interrupted inputs by itself when the same command is run again)")
    if jobs is not None and jobs < 1:
        raise ConfigError(f"--jobs {jobs}: give a positive number of inputs to run at once")
    if backend not in (None, "embedded", "ray"):
        raise ConfigError(f"backend {backend!r}: use 'embedded' (this machine) or 'ray' (Ray tasks)")
    plan = plan_batch(inputs, output, preset=preset, config=config, overrides=overrides, emg=emg, seed=seed,
                      overwrite=overwrite, multi_session=multi_session)
    pbt = plan.resolved.get("pbt", {})
    on_ray = (backend or ("ray" if ray_address else pbt.get("backend"))) == "ray"
    ray_address = (ray_address or pbt.get("ray_address")) if on_ray else None
    if multi_session and jobs not in (None, 1) and not on_ray:
        raise ConfigError(f"--jobs {jobs} with --multi-session: the sessions of a subject train one model together; "
                          "leave out --jobs (population-based training uses the cores), or use --backend ray (a Ray "
                          "task per subject)")
    res = _plan_on_ray(plan, ray_address, device) if on_ray else None
    if dry_run:
        return BatchResult(plan, dry_run=True)
    kwargs = dict(preset=preset, config=config, overrides=overrides, emg=emg, seed=seed, device=device,
                  progress=progress, command=command, overwrite=overwrite, **run_options)
    _run_planned(plan, kwargs, jobs, progress, command, (ray_address, res) if on_ray else None)
    return BatchResult(plan)


def _plan_on_ray(plan: BatchPlan, address: str | None, device: str | None) -> Any:
    """Prepare a plan for Ray tasks: its output folder made absolute (a task runs in another
    working directory, perhaps on another machine), its ``execution`` line, a warning when the
    cluster may have other machines (they must reach the output folder and the local inputs at
    the same paths); returns each task's :class:`~nwb_autolfads.batch_ray.TaskResources`.

    Raises
    ------
    ConfigError
        Ray is not installed.
    """
    from nwb_autolfads.batch_ray import import_ray, is_remote, run_resources

    import_ray()  # a missing Ray: before anything is written
    plan.out = plan.out.absolute()
    res = run_resources(plan.resolved, device)
    what = "subject's model" if plan.multi_session else "input"
    plan.execution = (f"Ray tasks on {address or 'a private local Ray instance (127.0.0.1)'}, one per {what}, "
                      f"{res.describe()}")
    if is_remote(address):
        local = any("://" not in i.input for i in plan.items if i.status != "skipped")
        log.warning(f"--ray-address {address}: each run writes its output itself on the node that runs it: the "
                    f"output folder {plan.out}{' and the local inputs' if local else ''} must be reachable at the "
                    "same path from every node (a shared file system), and nwb-autolfads installed on each")
    return res


def _run_planned(plan: BatchPlan, kwargs: dict[str, Any], jobs: int | None, progress: bool, command: str | None,
                 ray: tuple[str | None, Any] | None) -> None:
    """Run a plan (:func:`run_batch`): the output folder locked, with ``ray`` (address, task
    resources) Ray connected (the tasks in flight chosen), the plan printed, the manifest written
    after each input starts and ends, with a progress line per finished input (or group)."""
    from nwb_autolfads.io.writing import OutputLock

    plan.out.mkdir(parents=True, exist_ok=True)
    with OutputLock(plan.manifest), _ray_tasks(ray if plan.todo() else None) as tasks:  # nothing to run: no Ray
        if tasks is not None:
            jobs, how = tasks.slots(jobs, ray[1])
            plan.execution += f"; {jobs} at a time ({how})"
        jobs = jobs or 1
        if progress:
            print(plan.format(), file=sys.stderr)
        previous = _read_manifest(plan.manifest)
        _write_manifest(plan, previous, command)
        finished: list[list[BatchItem]] = []
        t0 = time.perf_counter()

        def note(items: list[BatchItem]) -> None:  # an item, or a multi-session group, started or ended
            _write_manifest(plan, previous, command)
            if items[0].status == "started":
                if progress and jobs == 1:
                    print(_started(plan, items), file=sys.stderr)
                return
            finished.append(items)
            if progress:
                print(_progress(plan, finished, t0, jobs), file=sys.stderr)

        if plan.todo():
            _execute(plan, kwargs, jobs, note, None if tasks is None else (tasks, ray[1]))


def _ray_tasks(ray: tuple[str | None, Any] | None):
    """A connected :class:`~nwb_autolfads.batch_ray.RayTasks` for ``ray`` (address, resources),
    or, without, a context that gives None."""
    import contextlib

    if ray is None:
        return contextlib.nullcontext()
    from nwb_autolfads.batch_ray import RayTasks

    return RayTasks(ray[0])
