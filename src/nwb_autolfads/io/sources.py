"""Where the input comes from: a local path, an http(s) URL, or a DANDI asset.

    session.nwb                                         a local file
    session.nwb.zarr                                    a local NWB Zarr store (hdmf-zarr)
    https://example.org/data/session.nwb                streamed with HTTP range requests
    dandi://dandi/000941@0.240101.1200/sub-X/f.nwb      a DANDI asset (any DANDI instance:
    DANDI:000941/sub-X/f.nwb                            dandi, dandi-sandbox, ember-dandi, linc...)
    https://dandiarchive.org/dandiset/000941/draft/files?location=sub-X/f.nwb
    https://api.dandiarchive.org/api/dandisets/000941/versions/draft/assets/<asset id>/
    https://api.dandiarchive.org/api/assets/<asset id>/download/

DANDI URLs are parsed by the ``dandi`` package's own parser (``dandi.dandiarchive``; every form
it accepts, plus the short ``<INSTANCE>:<id>[@version]/<path>``) and resolved through its
``DandiAPIClient``. The version rule is dandi's: the version the URL names, else the dandiset's
most recent published version, else its draft. The asset's id, the resolved version, its path,
size and the digests the archive publishes (``dandi:sha2-256`` when computed, and the
``dandi:dandi-etag``) are recorded in the output's provenance (:meth:`Source.provenance`).

Remote files are read lazily (remfile + h5py: only the bytes that are read are fetched; Zarr
stores through fsspec); the output is always written locally. ``pip install
"nwb-autolfads[dandi]"`` for DANDI and URLs, ``"nwb-autolfads[zarr]"`` for Zarr stores.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

from nwb_autolfads.errors import InputFileError

__all__ = ["Source", "DandiAsset", "resolve_source", "parse_dandi", "dandi_collection", "source_sha256", "tree_sha256"]

_VERSION = r"(?:[0-9]+\.[0-9]+\.[0-9]+|draft)"  # dandi.consts.VERSION_REGEX
# <INSTANCE>:<6-digit id>[@version][/<asset path>] (dandi itself accepts <INSTANCE>:<id>[/<version>])
_SHORT = re.compile(r"^(?P<instance>[A-Za-z][-\w.]*):(?P<id>\d{6})(?:@(?P<version>[^/]+))?(?:/(?P<rest>.*))?$")
_EXAMPLE = "dandi://dandi/000941@draft/sub-1/sub-1_ses-1.nwb"


@dataclass(frozen=True)
class DandiAsset:
    """A DANDI asset as the archive describes it (what :func:`resolve_source` found)."""

    instance: str
    """DANDI instance name (``dandi``, ``dandi-sandbox``, ``ember-dandi``...)."""
    api_url: str
    dandiset_id: str | None
    version: str | None
    """The dandiset version read (resolved when the URL gave none)."""
    version_rule: str
    """How the version was chosen: given in the URL, or dandi's default rule."""
    path: str
    asset_id: str
    size: int | None = None
    digests: dict[str, str] = field(default_factory=dict)
    """The digests the archive publishes for the asset (``dandi:sha2-256``, ``dandi:dandi-etag``...)."""
    content_url: str = ""
    zarr: bool = False

    @property
    def sha256(self) -> str:
        """The SHA-256 the archive publishes for the asset ('' when it has not computed it)."""
        return self.digests.get("dandi:sha2-256", "")


@dataclass(frozen=True)
class Source:
    """A resolved input. ``path`` for local files, ``url`` (http/https) for remote ones."""

    spec: str
    path: Path | None = None
    url: str | None = None
    name: str = ""
    """File name (for default output names)."""
    dandi: DandiAsset | None = None
    """The DANDI asset, for DANDI inputs."""
    zarr: bool = False
    """An NWB Zarr store (read with hdmf-zarr) rather than an HDF5 file."""

    @property
    def remote(self) -> bool:
        return self.url is not None

    @property
    def asset_id(self) -> str | None:
        """DANDI asset id, for DANDI inputs."""
        return self.dandi.asset_id if self.dandi is not None else None

    def __str__(self) -> str:
        return self.spec

    def provenance(self, sha256: str = "") -> dict[str, Any]:
        """Where the input came from, for the output's provenance: the input as given, the local
        path or URL, the storage format, the SHA-256, and for DANDI assets the instance,
        dandiset, version (and how it was chosen), asset path, asset id, size and the
        archive's digests."""
        out: dict[str, Any] = {"input": self.spec, "format": "NWB Zarr" if self.zarr else "NWB HDF5"}
        if self.path is not None:
            out.update(kind="local", path=str(self.path.resolve()))
        else:
            out.update(kind="dandi" if self.dandi else "url", url=self.url)
        if sha256:
            out["sha256"] = sha256
            out["sha256_of"] = ("the folder's files (relative paths and contents, sorted by path)"
                                if self.zarr and self.path is not None else "the file")
        if self.dandi is not None:
            d = self.dandi
            out.update(dandi_instance=d.instance, dandi_api=d.api_url, dandiset_id=d.dandiset_id,
                       dandiset_version=d.version, version_rule=d.version_rule, asset_path=d.path,
                       asset_id=d.asset_id, asset_size=d.size, asset_digests=dict(d.digests))
            if d.sha256 and sha256 == d.sha256:
                out["sha256_from"] = "the DANDI archive's published dandi:sha2-256 (not recomputed)"
        return out


def _dandi_hosts() -> set[str]:
    """Host names of the known DANDI instances (web and API), for recognising their URLs."""
    try:
        from dandi.consts import known_instances
    except ImportError:
        known = {"dandiarchive.org", "api.dandiarchive.org", "sandbox.dandiarchive.org",
                 "api.sandbox.dandiarchive.org"}
    else:
        known = {urlparse(u).hostname for inst in known_instances.values() for u in (inst.gui, inst.api) if u}
        known.discard("localhost")
    return {h for h in known if h} | {"gui.dandiarchive.org", "www.dandiarchive.org", "identifiers.org"}


def _looks_like_dandi(text: str) -> bool:
    if text.startswith("dandi://") or _SHORT.match(text):
        return True
    parsed = urlparse(text)
    return parsed.scheme in ("http", "https") and (parsed.hostname or "") in _dandi_hosts()


def _rewrite_short(text: str) -> str:
    """``<INSTANCE>:<id>[@version]/<path>`` (and ``<INSTANCE>:<id>/<version>/<path>``) ->
    ``dandi://<instance>/<id>[@version]/<path>``; forms dandi parses itself are left alone."""
    m = _SHORT.match(text)
    if not m or text.startswith("dandi://"):
        return text
    instance, version, rest = m["instance"].lower(), m["version"], m["rest"] or ""
    first, _, tail = rest.partition("/")
    if version is None and re.fullmatch(_VERSION, first):
        if not tail:  # DANDI:<id>/<version>: dandi's own form (a dandiset, not an asset)
            return f"{m['instance'].upper()}:{m['id']}/{first}"
        version, rest = first, tail
    return f"dandi://{instance}/{m['id']}" + (f"@{version}" if version else "") + (f"/{rest}" if rest else "")


def _has_glob(spec: str) -> bool:
    return "*" in spec.partition("?")[0]  # the archive's globs know only * (any characters, / included)


def dandi_collection(spec: str):
    """The ``dandi`` package's parse of a DANDI URL that names several assets (a dandiset, a
    folder, a path prefix or a glob: ``DANDI:000941``, ``dandi://dandi/000941@draft/sub-1/``,
    ``DANDI:000941/sub-*/*.nwb``), or None when ``spec`` is not a DANDI URL or names one asset.

    Raises
    ------
    InputFileError
        A DANDI URL that dandi cannot parse, or that points inside a Zarr asset."""
    if not _looks_like_dandi(spec):
        return None
    from dandi.dandiarchive import SingleAssetURL

    parsed = parse_dandi(spec, collection=True)
    return None if isinstance(parsed, SingleAssetURL) else parsed


def parse_dandi(spec: str, collection: bool = False):
    """The ``dandi`` package's parse of a DANDI URL (a ``dandi.dandiarchive.ParsedDandiURL``),
    or None when ``spec`` is not a DANDI URL. Raises :class:`InputFileError` for a DANDI URL
    that dandi cannot parse, or (unless ``collection``) that names a dandiset, folder or glob
    rather than one asset (:func:`dandi_collection` reads those)."""
    if not _looks_like_dandi(spec):
        return None
    try:
        from dandi.dandiarchive import AssetIDURL, AssetItemURL, AssetZarrEntryURL, BaseAssetIDURL, parse_dandi_url
    except ImportError:
        raise InputFileError(f"reading {spec!r} needs the dandi package: pip install \"nwb-autolfads[dandi]\""
                             ) from None
    try:
        parsed = parse_dandi_url(_rewrite_short(spec), glob=collection and _has_glob(spec))
    except Exception as exc:  # UnknownURLError, unknown instance (ValueError), redirect failures
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise InputFileError(f"cannot read DANDI URL {spec!r} ({first}): write e.g. {_EXAMPLE}, "
                             "DANDI:000941/<asset path>, or a dandiarchive.org URL of one file") from None
    if isinstance(parsed, AssetZarrEntryURL):
        raise InputFileError(f"DANDI URL {spec!r} points inside the Zarr asset {parsed.asset_path!r}: give the "
                             "asset itself (the *.nwb.zarr path)")
    if not collection and not isinstance(parsed, (AssetItemURL, AssetIDURL, BaseAssetIDURL)):
        what = {"DandisetURL": "a dandiset", "AssetFolderURL": "a folder of assets",
                "AssetPathPrefixURL": "the assets under a path prefix", "AssetGlobURL": "a glob of assets"}.get(
            type(parsed).__name__, "several assets")
        raise InputFileError(f"DANDI URL {spec!r} names {what}, not one file: add the asset path, e.g. {_EXAMPLE} "
                             "(`nwb-autolfads run` runs each of several assets)")
    return parsed


def _describe_exc(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"


def _resolve_dandi(parsed, spec: str) -> DandiAsset:
    """Look the parsed URL's asset up through the DANDI API (dandi's version rule)."""
    from dandi import dandiapi
    from dandi.dandiarchive import AssetIDURL, BaseAssetIDURL

    try:
        with dandiapi.DandiAPIClient(dandi_instance=parsed.instance) as client:
            dandiset = None
            if isinstance(parsed, BaseAssetIDURL):
                asset = client.get_asset(parsed.asset_id)
            else:
                # version None: dandi picks the most recent published version, else the draft
                dandiset = client.get_dandiset(parsed.dandiset_id, parsed.version_id, lazy=False)
                asset = (dandiset.get_asset(parsed.asset_id) if isinstance(parsed, AssetIDURL)
                         else dandiset.get_asset_by_path(parsed.path))
            metadata = asset.get_raw_metadata()
            zarr = str(getattr(getattr(asset, "asset_type", None), "name", "")).upper() == "ZARR"
            if zarr:
                # the store's own URL (.../zarr/<zarr id>/), read through fsspec; not the API's download URL
                urls = [u for u in metadata.get("contentUrl", []) if "/zarr/" in u]
                url = (urls[0] if urls else asset.get_content_url()).rstrip("/")
            else:
                url = asset.get_content_url(follow_redirects=1, strip_query=True)
    except InputFileError:
        raise
    except Exception as exc:  # network, HTTP and not-found errors all end here
        raise InputFileError(f"could not resolve {spec!r} through the DANDI API ({_describe_exc(exc)}): check the "
                             "dandiset id, version and path, and the network connection; or download the file and "
                             "give its local path") from None
    version = dandiset.version_id if dandiset is not None else getattr(asset, "version_id", None)
    if isinstance(parsed, BaseAssetIDURL):
        rule = "not known: the URL names the asset by id only"
    elif parsed.version_id is not None:
        rule = "given in the URL"
    elif version == "draft":
        rule = "draft: no version given, and the dandiset has no published version (dandi's rule)"
    else:
        rule = "most recent published version: no version given (dandi's rule)"
    digests = {str(k): str(v) for k, v in (metadata.get("digest") or {}).items()}
    return DandiAsset(instance=parsed.instance.name, api_url=parsed.instance.api, dandiset_id=parsed.dandiset_id,
                      version=version, version_rule=rule, path=asset.path, asset_id=asset.identifier,
                      size=getattr(asset, "size", None), digests=digests, content_url=url, zarr=zarr)


def _is_zarr_name(name: str) -> bool:
    return name.rstrip("/").endswith(".zarr")


def resolve_source(spec: str | Path) -> Source:
    """Classify (and for DANDI, resolve) an input given on the command line or to :func:`run`."""
    if isinstance(spec, Path):
        return Source(spec=str(spec), path=spec, name=spec.name, zarr=_is_local_zarr(spec))
    text = str(spec)
    parsed = parse_dandi(text)
    if parsed is not None:
        asset = _resolve_dandi(parsed, text)
        return Source(spec=text, url=asset.content_url, name=PurePosixPath(asset.path).name, dandi=asset,
                      zarr=asset.zarr or _is_zarr_name(asset.path))
    url = urlparse(text)
    if url.scheme in ("http", "https"):
        name = PurePosixPath(unquote(url.path.rstrip("/"))).name or "remote.nwb"
        return Source(spec=text, url=text, name=name, zarr=_is_zarr_name(unquote(url.path)))
    if url.scheme and len(url.scheme) > 1 and url.scheme not in ("file",):
        raise InputFileError(f"cannot read {text!r}: supported inputs are local paths, http(s) URLs, "
                             f"DANDI URLs ({_EXAMPLE}, DANDI:<id>/<path>, dandiarchive.org URLs)")
    if url.scheme == "file":
        text = unquote(url.path)
    path = Path(text)
    return Source(spec=str(spec), path=path, name=path.name, zarr=_is_local_zarr(path))


def _is_local_zarr(path: Path) -> bool:
    from nwb_autolfads.io.formats import is_zarr_store

    return is_zarr_store(path)


def tree_sha256(root: str | Path, chunk: int = 1 << 22) -> str:
    """SHA-256 of a folder (a Zarr store): over each file's path relative to ``root`` and its
    contents, in sorted path order. Changes when any file is added, removed, renamed or edited."""
    root = Path(root)
    digest = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(f.relative_to(root).as_posix().encode() + b"\0")
        with open(f, "rb") as fh:
            while block := fh.read(chunk):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def source_sha256(source: Source) -> str:
    """SHA-256 of the input: of the local file (or Zarr folder, :func:`tree_sha256`); for a DANDI
    asset, the one the archive publishes; '' for other remote files (hashing would download
    all of it)."""
    if source.remote:
        return source.dandi.sha256 if source.dandi is not None else ""
    from nwb_autolfads.io.writing import file_sha256

    return tree_sha256(source.path) if source.path.is_dir() else file_sha256(source.path)
