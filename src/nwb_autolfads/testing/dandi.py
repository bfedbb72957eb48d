"""A fake DANDI archive for offline tests: the files of a local folder, served over HTTP (on
127.0.0.1 by the test), listed as the assets of one dandiset through a stand-in for
``dandi.dandiapi.DandiAPIClient`` with the methods nwb-autolfads uses (``get_dandiset``,
``get_assets``, ``get_assets_by_glob``, ``get_assets_with_path_prefix``, ``get_asset_by_path``,
``get_asset``; an asset's ``path``, ``identifier``, ``size``, ``asset_type``,
``get_raw_metadata``, ``get_content_url``).

:func:`install_fake_dandi` puts it in place of dandi's client (and dandi's URL parser offline),
in this process: a test's subprocess calls it before ``nwb_autolfads.cli.main``.
"""

from __future__ import annotations

import hashlib
import re
import types
import uuid
from pathlib import Path

__all__ = ["FakeDandiArchive", "install_fake_dandi"]


class FakeDandiArchive:
    """Dandiset ``dandiset_id`` holding every file under ``root`` (paths relative to it, hidden
    files left out), its content at ``<url>/<path>``; ``published`` lists its published
    versions (oldest first; dandi's rule reads the last, else the draft)."""

    def __init__(self, root: str | Path, url: str, dandiset_id: str = "000941", published: tuple[str, ...] = ()):
        self.root, self.url, self.dandiset_id, self.published = Path(root), url.rstrip("/"), dandiset_id, published
        self.calls: list[tuple] = []

    def assets(self, version: str) -> list:
        files = sorted(p for p in self.root.rglob("*") if p.is_file() and not any(
            part.startswith(".") for part in p.relative_to(self.root).parts))
        return [_asset(self, f.relative_to(self.root).as_posix(), f, version) for f in files]

    def client(self):
        """A class standing in for ``dandi.dandiapi.DandiAPIClient``."""
        archive = self

        class Client:
            def __init__(self, *a, dandi_instance=None, **k):
                archive.calls.append(("client", getattr(dandi_instance, "name", None)))

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

            def get_dandiset(self, dandiset_id, version_id=None, lazy=True):
                archive.calls.append(("get_dandiset", dandiset_id, version_id))
                if dandiset_id != archive.dandiset_id:
                    raise LookupError(f"No such Dandiset: {dandiset_id!r}")
                version = version_id or (archive.published[-1] if archive.published else "draft")
                return _dandiset(archive, version)

            def get_asset(self, asset_id):
                for asset in archive.assets("draft"):
                    if asset.identifier == asset_id:
                        return asset
                raise LookupError(f"No such asset: {asset_id!r}")

        return Client


def _dandiset(archive: FakeDandiArchive, version: str):
    def by_glob(pattern, order=None):  # the archive's glob: * matches any characters, / included
        rx = re.compile(re.escape(pattern).replace(r"\*", ".*"), re.IGNORECASE)
        return iter([a for a in archive.assets(version) if rx.fullmatch(a.path)])

    def by_path(path):
        for asset in archive.assets(version):
            if asset.path == path:
                return asset
        raise LookupError(f"No asset at path {path!r}")

    def by_id(asset_id):
        for asset in archive.assets(version):
            if asset.identifier == asset_id:
                return asset
        raise LookupError(f"No such asset: {asset_id!r}")

    return types.SimpleNamespace(
        identifier=archive.dandiset_id, version_id=version,
        get_assets=lambda order=None: iter(archive.assets(version)), get_assets_by_glob=by_glob,
        get_assets_with_path_prefix=lambda prefix, order=None: iter(
            [a for a in archive.assets(version) if a.path.startswith(prefix)]),
        get_asset_by_path=by_path, get_asset=by_id)


def _asset(archive: FakeDandiArchive, path: str, file: Path, version: str):
    data = file.read_bytes()
    url = f"{archive.url}/{path}"
    metadata = {"digest": {"dandi:sha2-256": hashlib.sha256(data).hexdigest(),
                           "dandi:dandi-etag": hashlib.md5(data).hexdigest() + "-1"}, "contentUrl": [url]}
    return types.SimpleNamespace(
        identifier=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{archive.dandiset_id}/{path}")), path=path, size=len(data),
        version_id=version, asset_type=types.SimpleNamespace(name="BLOB"), get_raw_metadata=lambda: metadata,
        get_content_url=lambda regex=".*", follow_redirects=False, strip_query=False: url)


def install_fake_dandi(root: str | Path, url: str, dandiset_id: str = "000941",
                       published: tuple[str, ...] = ()) -> FakeDandiArchive:
    """Replace dandi's API client by a :class:`FakeDandiArchive` of ``root`` served at ``url``,
    and make dandi's URL parser use its built-in table of instances (no request for server
    info), in this process. Returns the archive (its ``calls`` record what was asked)."""
    import dandi.dandiapi
    import dandi.utils

    def known_only(url, is_api, instance, dandi_id):
        if instance is None:
            raise RuntimeError(f"Could not retrieve server info from {url}, and client does not recognize URL")
        return instance

    archive = FakeDandiArchive(root, url, dandiset_id, published)
    dandi.utils._get_instance = known_only
    dandi.dandiapi.DandiAPIClient = archive.client()
    return archive
