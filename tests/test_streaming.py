"""Remote inputs: URL handling, and the real streaming path (remfile + h5py over HTTP range
requests) against a local HTTP server on 127.0.0.1 serving a test file."""

import contextlib
import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pynwb
import pytest

import nwb_autolfads
from nwb_autolfads.errors import InputFileError
from nwb_autolfads.io.sources import parse_dandi, resolve_source
from nwb_autolfads.testing import mock_emg_nwb


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Static files with single-range GET support (what remfile needs)."""

    def log_message(self, *args):
        pass

    def copyfile(self, source, outputfile):
        try:
            super().copyfile(source, outputfile)
        except (BrokenPipeError, ConnectionResetError):  # clients stop reading once they have what they need
            pass

    def do_GET(self):
        path = Path(self.translate_path(self.path))
        rng = self.headers.get("Range")
        if not rng or not path.is_file():
            return super().do_GET()
        size = path.stat().st_size
        start, _, end = rng.removeprefix("bytes=").partition("-")
        start, end = int(start), min(int(end) if end else size - 1, size - 1)
        if start >= size:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.end_headers()
            return
        with open(path, "rb") as f:
            f.seek(start)
            body = f.read(end - start + 1)
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextlib.contextmanager
def _serve(directory):
    handler = lambda *a, **k: _RangeHandler(*a, directory=str(directory), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("www")
    mock_emg_nwb(root / "sub-R3_ses-2_ecephys.nwb", duration=8.0, rate=1000.0, n_muscles=3, seed=6)
    # 8 s of 4 muscles at 10 kHz (2.6 MB) with behaviour: for the size of a results-only file, and evaluate
    mock_emg_nwb(root / "sub-R4_ses-1_ecephys.nwb", duration=8.0, rate=10000.0, n_muscles=4, seed=7, behavior=True)
    (root / "notes.nwb").write_text("not hdf5")
    with _serve(root) as url:
        yield root, url


@pytest.fixture
def offline_dandi(monkeypatch):
    """dandi's parser without the network: instances resolve to dandi's own hard-coded table
    (the parser otherwise asks each server for its /info/)."""
    import dandi.utils

    def known_only(url, is_api, instance, dandi_id):
        if instance is None:
            raise RuntimeError(f"Could not retrieve server info from {url}, and client does not recognize URL")
        return instance

    monkeypatch.setattr(dandi.utils, "_get_instance", known_only)


ASSET = "7a3c1f2e-0000-4000-8000-000000000941"


@pytest.mark.parametrize("url, instance, dandiset, version, what", [
    ("dandi://dandi/000941@0.240101.1200/sub-1/sub-1_ses-1.nwb", "dandi", "000941", "0.240101.1200",
     "sub-1/sub-1_ses-1.nwb"),
    ("dandi://dandi/000941/sub-1/f.nwb", "dandi", "000941", None, "sub-1/f.nwb"),
    ("DANDI:000941/sub-1/f.nwb", "dandi", "000941", None, "sub-1/f.nwb"),
    ("DANDI:000941@draft/sub-1/f.nwb", "dandi", "000941", "draft", "sub-1/f.nwb"),
    ("dandi:000941/0.240101.1200/sub-1/f.nwb", "dandi", "000941", "0.240101.1200", "sub-1/f.nwb"),
    ("dandi://dandi-sandbox/200123@draft/sub-1/f.nwb", "dandi-sandbox", "200123", "draft", "sub-1/f.nwb"),
    ("EMBER-DANDI:000123/sub-1/f.nwb.zarr", "ember-dandi", "000123", None, "sub-1/f.nwb.zarr"),
    (f"https://api.dandiarchive.org/api/dandisets/000941/versions/draft/assets/{ASSET}/download/", "dandi", "000941",
     "draft", ASSET),
    (f"https://api.dandiarchive.org/api/assets/{ASSET}/download/", "dandi", None, None, ASSET),
    (f"https://api-dandi.emberarchive.org/api/assets/{ASSET}/", "ember-dandi", None, None, ASSET),
])
def test_dandi_url_forms_are_parsed_by_dandi(offline_dandi, url, instance, dandiset, version, what):
    parsed = parse_dandi(url)
    assert (parsed.instance.name, parsed.dandiset_id, parsed.version_id) == (instance, dandiset, version)
    assert getattr(parsed, "path", None) == what or getattr(parsed, "asset_id", None) == what


def test_other_urls_and_paths_are_not_dandi(offline_dandi, tmp_path):
    assert parse_dandi("session.nwb") is None and parse_dandi("https://example.org/data/f.nwb") is None
    for bad, words in (("dandi://dandi/94/f.nwb", "cannot read DANDI URL.*dandi://dandi/000941"),
                       ("dandi://nowhere/000941/f.nwb", "Unknown instance 'nowhere'"),
                       ("dandi://dandi-staging/000941/f.nwb", "dandi-sandbox"),
                       ("https://dandiarchive.org/dandiset/000941/draft", "names a dandiset, not one file"),
                       ("https://dandiarchive.org/dandiset/000941/draft/files?location=sub-1/", "not one file"),
                       ("dandi://dandi/000941/sub-1/x.nwb.zarr/acquisition/EMG", "inside the Zarr asset")):
        with pytest.raises(InputFileError, match=words):
            parse_dandi(bad)
    src = resolve_source("https://example.org/data/sub-1_ses-1.nwb?x=1")
    assert src.remote and src.name == "sub-1_ses-1.nwb" and src.dandi is None
    local = resolve_source(str(tmp_path / "a.nwb"))
    assert not local.remote and local.path == tmp_path / "a.nwb"
    assert resolve_source(f"file://{tmp_path}/b.nwb").path == tmp_path / "b.nwb"
    with pytest.raises(InputFileError, match="supported inputs"):
        resolve_source("s3://bucket/f.nwb")


class FakeDandiArchive:
    """Stands in for the DANDI API (dandi.dandiapi.DandiAPIClient): dandiset 000941 has two
    published versions and a draft, 000942 only a draft; the asset's content URL is the local
    server's, its published digests are the served file's real SHA-256 and a dandi-etag."""

    def __init__(self, url, root, name="sub-R3_ses-2_ecephys.nwb"):
        import hashlib

        data = (root / name).read_bytes()
        self.metadata = {"digest": {"dandi:sha2-256": hashlib.sha256(data).hexdigest(),
                                    "dandi:dandi-etag": "0123456789abcdef0123456789abcdef-1"},
                         "contentUrl": [f"{url}/{name}"]}
        self.size = len(data)
        self.calls = []
        archive = self

        class Asset:
            identifier, path, size = ASSET, f"{name.split('_')[0]}/{name}", len(data)

            def __init__(self, version):
                self.version_id = version

            def get_raw_metadata(self):
                return archive.metadata

            def get_content_url(self, regex=".*", follow_redirects=False, strip_query=False):
                return archive.metadata["contentUrl"][0]

        class Dandiset:
            def __init__(self, identifier, version):
                self.identifier, self.version_id = identifier, version

            def get_asset_by_path(self, path):
                if path != Asset.path:
                    raise LookupError(f"No asset at path {path!r}")
                return Asset(self.version_id)

            def get_asset(self, asset_id):
                assert asset_id == ASSET
                return Asset(self.version_id)

        class Client:
            def __init__(self, *a, dandi_instance=None, **k):
                archive.calls.append(("client", dandi_instance.name))

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

            def get_dandiset(self, dandiset, version=None, lazy=True):
                archive.calls.append(("get_dandiset", dandiset, version))
                published = {"000941": ["0.230101.0000", "0.240101.1200"], "000942": []}[dandiset]
                # dandi's rule: the version given, else the most recent published one, else the draft
                return Dandiset(dandiset, version or (published[-1] if published else "draft"))

            def get_asset(self, asset_id):
                assert asset_id == ASSET
                return Asset(None)

        self.Client = Client


@pytest.fixture
def archive(monkeypatch, offline_dandi, served):
    import dandi.dandiapi as api

    root, url = served
    fake = FakeDandiArchive(url, root)
    monkeypatch.setattr(api, "DandiAPIClient", fake.Client)
    return fake


@pytest.mark.parametrize("url, version, rule", [
    ("DANDI:000941/sub-R3/sub-R3_ses-2_ecephys.nwb", "0.240101.1200", "most recent published"),
    ("dandi://dandi/000942/sub-R3/sub-R3_ses-2_ecephys.nwb", "draft", "draft: no version given"),
    ("dandi://dandi/000941@0.230101.0000/sub-R3/sub-R3_ses-2_ecephys.nwb", "0.230101.0000", "given in the URL"),
    (f"https://api.dandiarchive.org/api/dandisets/000941/versions/draft/assets/{ASSET}/download/", "draft",
     "given in the URL"),
])
def test_dandi_urls_resolve_with_dandis_version_rule(archive, served, url, version, rule):
    src = resolve_source(url)
    assert src.url == archive.metadata["contentUrl"][0] and src.name == "sub-R3_ses-2_ecephys.nwb"
    d = src.dandi
    assert (d.instance, d.version, d.asset_id, d.path) == ("dandi", version, ASSET, "sub-R3/sub-R3_ses-2_ecephys.nwb")
    assert rule in d.version_rule and d.sha256 == archive.metadata["digest"]["dandi:sha2-256"]
    assert archive.calls[0] == ("client", "dandi")
    assert archive.calls[1][2] == (None if "no version" in rule or "published" in rule else version)


def test_dandi_resolution_failures_are_clear(archive, monkeypatch):
    with pytest.raises(InputFileError, match="could not resolve .* DANDI API .*LookupError.*No asset at path"):
        resolve_source("DANDI:000941/sub-R3/nope.nwb")

    class Offline(archive.Client):
        def get_dandiset(self, *a, **k):
            raise ConnectionError("Failed to resolve 'api.dandiarchive.org'")

    import dandi.dandiapi as api
    monkeypatch.setattr(api, "DandiAPIClient", Offline)
    with pytest.raises(InputFileError, match="could not resolve .* DANDI API .*ConnectionError.*local path"):
        resolve_source("dandi://dandi/000941@draft/sub-R3/sub-R3_ses-2_ecephys.nwb")


def test_run_on_a_dandi_asset_records_its_identity(archive, served, tmp_path):
    out = tmp_path / "out.nwb"
    nwb_autolfads.run("DANDI:000941/sub-R3/sub-R3_ses-2_ecephys.nwb", out, preset="smoke", progress=False)
    ds = nwb_autolfads.load_results(out)
    source = json.loads(ds.attrs["source"])
    assert source["kind"] == "dandi" and source["asset_id"] == ASSET and source["dandiset_id"] == "000941"
    assert source["dandiset_version"] == "0.240101.1200" and "most recent published" in source["version_rule"]
    assert source["asset_path"] == "sub-R3/sub-R3_ses-2_ecephys.nwb" and source["asset_size"] == archive.size
    assert source["asset_digests"] == archive.metadata["digest"]
    # the archive's SHA-256 of the file streamed, as the source SHA-256 (it is not downloaded to hash it)
    assert ds.attrs["source_file_sha256"] == archive.metadata["digest"]["dandi:sha2-256"] == source["sha256"]


def test_run_streams_a_remote_file_and_writes_locally(served, tmp_path):
    root, url = served
    remote = f"{url}/sub-R3_ses-2_ecephys.nwb"
    proc = subprocess.run([sys.executable, "-m", "nwb_autolfads", "inspect", remote], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "acquisition/EMG" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "nwb_autolfads", "run", remote, "--preset", "smoke", "-q"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "sub-R3_ses-2_desc-autolfads_emg.nwb"  # DANDI-style name, in the current directory
    # the result and its trained model (apply-able to other sessions), nothing else
    assert out.is_file() and sorted(os.listdir(tmp_path)) == sorted([out.name, out.stem + ".autolfads-model"])
    streamed = nwb_autolfads.load_results(out)
    local = nwb_autolfads.run(root / "sub-R3_ses-2_ecephys.nwb", preset="smoke", write=False, progress=False)
    np.testing.assert_array_equal(streamed.emg_activations.values, local.activations)  # same data, same result
    assert streamed.attrs["source_file_sha256"] == ""  # not hashed: that would download the whole file
    assert json.loads(streamed.attrs["source"]) == {"input": remote, "format": "NWB HDF5", "kind": "url", "url": remote}
    # by default a remote input is not copied: the file holds the results and where the source is
    assert streamed.attrs["source_in_file"] == 0 and streamed.attrs["source_url"] == remote
    assert streamed.attrs["source_location"] == remote and "(results only" in proc.stdout
    assert json.loads(streamed.attrs["config"])["output"]["content"] == "results"
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        assert len(io.read().acquisition) == 0
    assert pynwb.validate(path=str(out)) == []


def test_a_dandi_input_gives_a_small_results_only_file_that_evaluate_streams_the_source_for(monkeypatch, offline_dandi,
                                                                                             served, tmp_path):
    import dandi.dandiapi as api

    from nwb_autolfads.evaluation.comparison import evaluate

    root, url = served
    asset = "sub-R4/sub-R4_ses-1_ecephys.nwb"
    monkeypatch.setattr(api, "DandiAPIClient", FakeDandiArchive(url, root, "sub-R4_ses-1_ecephys.nwb").Client)
    res = nwb_autolfads.run(f"DANDI:000941/{asset}", tmp_path / "sub-R4_ses-1_desc-autolfads_emg.nwb",
                            preset="smoke", progress=False)
    source_size, size = (root / "sub-R4_ses-1_ecephys.nwb").stat().st_size, res.output.stat().st_size
    assert size < source_size / 5, (size, source_size)
    ds = nwb_autolfads.load_results(res.output)
    assert (ds.attrs["source_location"], ds.attrs["source_url"], ds.attrs["source_dandi_asset_id"]) == (
        f"DANDI:000941/{asset}", f"{url}/sub-R4_ses-1_ecephys.nwb", ASSET)
    assert ds.attrs["source_in_file"] == 0 and ds.attrs["source_object_ids"]
    assert pynwb.validate(path=str(res.output)) == []
    streamed = evaluate(res.output)  # the source signals are streamed from the recorded URL
    assert {"kinematics", "force", "truth"} <= set(streamed.scores)
    local = evaluate(res.output, source=root / "sub-R4_ses-1_ecephys.nwb")  # the same file, moved
    assert streamed.to_dict()["scores"] == local.to_dict()["scores"]
    with pytest.raises(InputFileError, match="holds results only, and its source could not be opened .*--source"):
        evaluate(res.output, source=f"{url}/missing.nwb")
    with pytest.raises(InputFileError, match="is not the source of run"):
        evaluate(res.output, source=f"{url}/sub-R3_ses-2_ecephys.nwb")


def test_remote_errors_are_one_line_exit_2(served, tmp_path):
    root, url = served
    for target, words in ((f"{url}/missing.nwb", "could not open"), (f"{url}/notes.nwb", "it is not NWB but a text")):
        proc = subprocess.run([sys.executable, "-m", "nwb_autolfads", "run", target, "--preset", "smoke", "-q"],
                              capture_output=True, text=True, cwd=tmp_path, timeout=300)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and words in proc.stderr, proc.stderr
    proc = subprocess.run([sys.executable, "-m", "nwb_autolfads", "run", f"{url}/sub-R3_ses-2_ecephys.nwb",
                           "--in-place", "--preset", "smoke", "-q"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and "remote" in proc.stderr
    assert os.listdir(tmp_path) == []


def test_a_dandi_zarr_asset_is_streamed_from_its_store(monkeypatch, offline_dandi, served):
    pytest.importorskip("hdmf_zarr")
    import types

    import dandi.dandiapi as api
    from nwb_autolfads.io.reading import open_nwb

    root, url = served
    mock_emg_nwb(root / "zarr" / "0d5b9be5", duration=2.0, rate=500.0, n_muscles=2, backend="zarr")

    class Asset:  # a Zarr asset: its contentUrl lists the API's download URL and the store's own URL
        identifier, path, size, asset_type = ASSET, "sub-Z/sub-Z_ses-1_ecephys.nwb.zarr", 0, types.SimpleNamespace(
            name="ZARR")

        def get_raw_metadata(self):
            return {"digest": {"dandi:dandi-zarr-checksum": "f" * 32 + "-12--3456"},
                    "contentUrl": [f"https://api.dandiarchive.org/api/assets/{ASSET}/download/",
                                   f"{url}/zarr/0d5b9be5/"]}

    class Client:
        def __init__(self, *a, **k):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def get_dandiset(self, dandiset, version=None, lazy=True):
            return types.SimpleNamespace(version_id="draft", get_asset_by_path=lambda path: Asset())

    monkeypatch.setattr(api, "DandiAPIClient", Client)
    src = resolve_source("DANDI:000943/sub-Z/sub-Z_ses-1_ecephys.nwb.zarr")
    assert src.zarr and src.url == f"{url}/zarr/0d5b9be5" and src.dandi.sha256 == ""
    assert src.provenance()["asset_digests"] == {"dandi:dandi-zarr-checksum": "f" * 32 + "-12--3456"}
    with open_nwb(src) as (_io, nwb):
        assert nwb.acquisition["EMG"].data.shape == (1000, 2)
