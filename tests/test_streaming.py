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
from nwb_autolfads.sources import parse_dandi, resolve_source
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


def test_url_forms_are_recognised(tmp_path):
    assert parse_dandi("dandi://dandi/000941@0.240101.1200/sub-1/sub-1_ses-1.nwb") == (
        "000941", "0.240101.1200", "sub-1/sub-1_ses-1.nwb")
    assert parse_dandi("dandi://dandi/000941/sub-1/f.nwb") == ("000941", "draft", "sub-1/f.nwb")
    assert parse_dandi("DANDI:000941/sub-1/f.nwb") == ("000941", "draft", "sub-1/f.nwb")
    assert parse_dandi("DANDI:000941@draft/sub-1/f.nwb") == ("000941", "draft", "sub-1/f.nwb")
    assert parse_dandi("session.nwb") is None
    with pytest.raises(InputFileError, match="dandi://dandi/<6-digit id>"):
        parse_dandi("dandi://dandi/94/f.nwb")
    src = resolve_source("https://example.org/data/sub-1_ses-1.nwb?x=1")
    assert src.remote and src.name == "sub-1_ses-1.nwb"
    local = resolve_source(str(tmp_path / "a.nwb"))
    assert not local.remote and local.path == tmp_path / "a.nwb"
    assert resolve_source(f"file://{tmp_path}/b.nwb").path == tmp_path / "b.nwb"
    with pytest.raises(InputFileError, match="supported inputs"):
        resolve_source("s3://bucket/f.nwb")


def _fake_dandi_api(monkeypatch, url: str, asset_path: str) -> type:
    """Replace the DANDI API client by one that serves dandiset 000941 (draft), whose asset
    ``asset_path`` (id ``fake-asset-id``) is the local server's file of the same name."""
    import dandi.dandiapi as api

    class FakeClient:
        identifier = "fake-asset-id"

        def __init__(self, *a, **k):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def get_dandiset(self, dandiset, version):
            assert (dandiset, version) == ("000941", "draft")
            return self

        def get_asset_by_path(self, path):
            assert path == asset_path
            return self

        def get_content_url(self, follow_redirects=1, strip_query=True):
            return f"{url}/{Path(asset_path).name}"

    monkeypatch.setattr(api, "DandiAPIClient", FakeClient)
    return FakeClient


def test_dandi_urls_resolve_through_the_api_and_fail_clearly_offline(monkeypatch, served):
    import dandi.dandiapi as api

    root, url = served
    FakeClient = _fake_dandi_api(monkeypatch, url, "sub-R3/sub-R3_ses-2_ecephys.nwb")
    src = resolve_source("DANDI:000941/sub-R3/sub-R3_ses-2_ecephys.nwb")
    assert src.url == f"{url}/sub-R3_ses-2_ecephys.nwb" and src.dandi[0] == "000941"
    assert src.asset_id == "fake-asset-id"

    class Offline(FakeClient):
        def get_dandiset(self, *a):
            raise ConnectionError("Failed to resolve 'api.dandiarchive.org'")

    monkeypatch.setattr(api, "DandiAPIClient", Offline)
    with pytest.raises(InputFileError, match="could not resolve .* DANDI API .*ConnectionError.*local path"):
        resolve_source("dandi://dandi/000941@draft/sub-R3/sub-R3_ses-2_ecephys.nwb")


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
    assert out.is_file() and sorted(os.listdir(tmp_path)) == [out.name]
    streamed = nwb_autolfads.load_results(out)
    local = nwb_autolfads.run(root / "sub-R3_ses-2_ecephys.nwb", preset="smoke", write=False, progress=False)
    np.testing.assert_array_equal(streamed.emg_activations.values, local.activations)  # same data, same result
    assert streamed.attrs["source_file_sha256"] == ""  # not hashed: that would download the whole file
    # by default a remote input is not copied: the file holds the results and where the source is
    assert streamed.attrs["source_in_file"] == 0 and streamed.attrs["source_url"] == remote
    assert streamed.attrs["source_location"] == remote and "(results only" in proc.stdout
    assert json.loads(streamed.attrs["config"])["output"]["content"] == "results"
    with pynwb.NWBHDF5IO(str(out), "r") as io:
        assert len(io.read().acquisition) == 0
    assert pynwb.validate(path=str(out)) == []


def test_a_dandi_input_gives_a_small_results_only_file_that_evaluate_streams_the_source_for(monkeypatch, served,
                                                                                             tmp_path):
    from nwb_autolfads.evaluation import evaluate

    root, url = served
    asset = "sub-R4/sub-R4_ses-1_ecephys.nwb"
    _fake_dandi_api(monkeypatch, url, asset)
    res = nwb_autolfads.run(f"DANDI:000941/{asset}", tmp_path / "sub-R4_ses-1_desc-autolfads_emg.nwb",
                            preset="smoke", progress=False)
    source_size, size = (root / "sub-R4_ses-1_ecephys.nwb").stat().st_size, res.output.stat().st_size
    assert size < source_size / 5, (size, source_size)
    ds = nwb_autolfads.load_results(res.output)
    assert (ds.attrs["source_location"], ds.attrs["source_url"], ds.attrs["source_dandi_asset_id"]) == (
        f"DANDI:000941/{asset}", f"{url}/sub-R4_ses-1_ecephys.nwb", "fake-asset-id")
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
    for target, words in ((f"{url}/missing.nwb", "could not open"), (f"{url}/notes.nwb", "could not open")):
        proc = subprocess.run([sys.executable, "-m", "nwb_autolfads", "run", target, "--preset", "smoke", "-q"],
                              capture_output=True, text=True, cwd=tmp_path, timeout=300)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and words in proc.stderr, proc.stderr
    proc = subprocess.run([sys.executable, "-m", "nwb_autolfads", "run", f"{url}/sub-R3_ses-2_ecephys.nwb",
                           "--in-place", "--preset", "smoke", "-q"], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2 and "remote" in proc.stderr
    assert os.listdir(tmp_path) == []
