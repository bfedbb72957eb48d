"""Where the input comes from: a local path, an http(s) URL, or a DANDI asset.

    session.nwb                                         a local file
    https://example.org/data/session.nwb                streamed with HTTP range requests
    dandi://dandi/000941@draft/sub-X/sub-X_ses-Y.nwb    a DANDI asset (version optional: draft)
    DANDI:000941/sub-X/sub-X_ses-Y.nwb                  the same, short form (draft version)

Remote files are read lazily (remfile + h5py: only the bytes that are read are fetched); the
output is always written locally. DANDI URLs are resolved to the asset's download URL through
the DANDI API (``dandi`` package; ``pip install "nwb-autolfads[dandi]"``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlparse

from .errors import InputFileError

__all__ = ["Source", "resolve_source", "parse_dandi"]

_SHORT_DANDI = re.compile(r"^DANDI:(?P<id>\d{6})(?:@(?P<version>[^/]+))?/(?P<path>.+)$", re.IGNORECASE)


@dataclass(frozen=True)
class Source:
    """A resolved input. ``path`` for local files, ``url`` (http/https) for remote ones."""

    spec: str
    path: Path | None = None
    url: str | None = None
    name: str = ""
    """File name (for default output names)."""
    dandi: tuple[str, str, str] | None = None
    """(dandiset id, version, asset path) for DANDI inputs."""
    asset_id: str | None = None
    """DANDI asset id, for DANDI inputs."""

    @property
    def remote(self) -> bool:
        return self.url is not None

    def __str__(self) -> str:
        return self.spec


def parse_dandi(spec: str) -> tuple[str, str, str] | None:
    """(dandiset id, version, asset path) of a ``dandi://`` or ``DANDI:`` URL, None otherwise."""
    short = _SHORT_DANDI.match(spec)
    if short:
        return short["id"], short["version"] or "draft", short["path"]
    if not spec.startswith("dandi://"):
        return None
    rest = spec[len("dandi://"):]
    instance, _, tail = rest.partition("/")
    head, _, path = tail.partition("/")
    dandiset, _, version = head.partition("@")
    if instance.lower() != "dandi" or not re.fullmatch(r"\d{6}", dandiset) or not path:
        raise InputFileError(f"cannot read DANDI URL {spec!r}: write dandi://dandi/<6-digit id>[@version]/<asset path>,"
                             " e.g. dandi://dandi/000941@draft/sub-1/sub-1_ses-1.nwb")
    return dandiset, version or "draft", path


def _dandi_download_url(dandiset: str, version: str, path: str, spec: str) -> tuple[str, str | None]:
    """(content URL, asset id) of a DANDI asset."""
    try:
        from dandi.dandiapi import DandiAPIClient
    except ImportError:
        raise InputFileError(f"reading {spec!r} needs the dandi package: pip install \"nwb-autolfads[dandi]\"") from None
    try:
        with DandiAPIClient() as client:
            asset = client.get_dandiset(dandiset, version).get_asset_by_path(path)
            return asset.get_content_url(follow_redirects=1, strip_query=True), getattr(asset, "identifier", None)
    except Exception as exc:  # network, HTTP and not-found errors all end here
        raise InputFileError(f"could not resolve {spec!r} through the DANDI API ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:200] if str(exc) else ''}): check the dandiset id, version and "
                             "path, and the network connection; or download the file and give its local path") from None


def resolve_source(spec: str | Path) -> Source:
    """Classify (and for DANDI, resolve) an input given on the command line or to :func:`run`."""
    if isinstance(spec, Path):
        return Source(spec=str(spec), path=spec, name=spec.name)
    text = str(spec)
    dandi = parse_dandi(text)
    if dandi is not None:
        url, asset_id = _dandi_download_url(*dandi, text)
        return Source(spec=text, url=url, name=PurePosixPath(dandi[2]).name, dandi=dandi, asset_id=asset_id)
    parsed = urlparse(text)
    if parsed.scheme in ("http", "https"):
        name = PurePosixPath(unquote(parsed.path)).name or "remote.nwb"
        return Source(spec=text, url=text, name=name)
    if parsed.scheme and len(parsed.scheme) > 1 and parsed.scheme not in ("file",):
        raise InputFileError(f"cannot read {text!r}: supported inputs are local paths, http(s) URLs, "
                             "dandi://dandi/<id>[@version]/<path> and DANDI:<id>/<path>")
    if parsed.scheme == "file":
        text = unquote(parsed.path)
    path = Path(text)
    return Source(spec=str(spec), path=path, name=path.name)
