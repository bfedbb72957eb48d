"""Input formats: NWB Zarr stores (local and streamed), HDF5 external links to missing files, and
files that are not NWB, named by what they are."""

import json
import struct
import sys
import zipfile

import h5py
import numpy as np
import pytest

import nwb_autolfads
from nwb_autolfads.errors import InputFileError, OutputError
from nwb_autolfads.io.inspection import inspect_file
from nwb_autolfads.io.reading import open_nwb
from nwb_autolfads.io.series import find_emg, read_emg
from nwb_autolfads.io.sources import resolve_source, tree_sha256
from nwb_autolfads.testing import mock_emg_nwb
from nwb_autolfads.io.writing import default_output_path

ZARR = dict(duration=6.0, rate=1000.0, n_muscles=2, seed=3)


@pytest.fixture(scope="module")
def zarr_store(tmp_path_factory):
    pytest.importorskip("hdmf_zarr")
    root = tmp_path_factory.mktemp("zarr")
    return mock_emg_nwb(root / "sub-Z1_ses-1_ecephys.nwb.zarr", backend="zarr", **ZARR)


def test_zarr_store_runs_end_to_end_and_matches_the_hdf5_file(zarr_store, tmp_path):
    import pynwb

    report = inspect_file(zarr_store)
    assert report["default"]["emg"] == "acquisition/EMG" and report["modalities"]["emg"][0]["shape"] == [6000, 2]
    with open_nwb(zarr_store) as (_io, nwb):
        sig = read_emg(nwb, lazy=True)
        assert type(sig.values).__name__ == "SeriesValues"  # read lazily from the zarr arrays
    out = tmp_path / "result.nwb"
    result = nwb_autolfads.run(zarr_store, out, preset="smoke", progress=False)
    assert default_output_path(zarr_store).name == "sub-Z1_ses-1_desc-autolfads_emg.nwb"
    assert result.output == out and pynwb.validate(path=str(out)) == []
    ds = nwb_autolfads.load_results(out)
    source = json.loads(ds.attrs["source"])
    assert source["format"] == "NWB Zarr" and source["kind"] == "local"
    assert ds.attrs["source_file_sha256"] == source["sha256"] == tree_sha256(zarr_store)
    with pynwb.NWBHDF5IO(str(out), "r") as io:  # an HDF5 file whose link points at its copy of the source
        nwb = io.read()
        run = next(iter(nwb.processing["autolfads"].data_interfaces.values()))
        assert run.source_emg is nwb.acquisition["EMG"]
    # the store reads exactly as the same recording written as HDF5 (values, time base, names)
    with open_nwb(zarr_store) as (_io, z), open_nwb(mock_emg_nwb(tmp_path / "same.nwb", **ZARR)) as (_io2, h):
        a, b = read_emg(z), read_emg(h)
        np.testing.assert_array_equal(a.values, b.values)
        assert (a.rate, a.starting_time, a.channel_names, a.unit) == (b.rate, b.starting_time, b.channel_names, b.unit)
    np.testing.assert_allclose(ds.time.values, result.times, rtol=0, atol=1e-9)  # stored as start + rate
    np.testing.assert_array_equal(ds.emg_activations.values, result.activations)
    with pytest.raises(OutputError, match="Zarr store.*leave out --in-place"):
        nwb_autolfads.run(zarr_store, preset="smoke", in_place=True, progress=False)


def test_zarr_store_streams_over_http(zarr_store):
    from test_streaming import _serve

    with _serve(zarr_store.parent) as url:
        src = resolve_source(f"{url}/{zarr_store.name}")
        assert src.remote and src.zarr
        with open_nwb(src) as (_io, nwb):
            with open_nwb(zarr_store) as (_io2, local):
                np.testing.assert_array_equal(nwb.acquisition["EMG"].data[:100], local.acquisition["EMG"].data[:100])


def test_zarr_without_hdmf_zarr_says_what_to_install(zarr_store, monkeypatch):
    monkeypatch.setitem(sys.modules, "hdmf_zarr", None)
    monkeypatch.setitem(sys.modules, "hdmf_zarr.nwb", None)
    with pytest.raises(InputFileError, match=r"is an NWB Zarr store; install with pip install 'nwb-autolfads\[zarr\]'"):
        with open_nwb(zarr_store):
            pass


def test_dangling_external_link_names_the_link_and_the_missing_file(tmp_path):
    main = mock_emg_nwb(tmp_path / "session.nwb", duration=2.0, rate=500.0, n_muscles=2, include_truth=False)
    raw = tmp_path / "raw_emg.h5"
    with h5py.File(main, "a") as f, h5py.File(raw, "w") as r:
        f.copy(f["acquisition/EMG"], r, "EMG")
        del f["acquisition/EMG"]
        f["acquisition/EMG"] = h5py.ExternalLink(raw.name, "/EMG")
    with open_nwb(main) as (_io, nwb):  # the link resolves: the series is read through it
        assert find_emg(nwb).path == "acquisition/EMG" and read_emg(nwb).n_channels == 2
    with h5py.File(raw, "a") as r:
        r.move("EMG", "Other")
    with pytest.raises(InputFileError, match="acquisition/EMG is an HDF5 external link to raw_emg.h5:/EMG.*has no "
                                             "object '/EMG'"):
        with open_nwb(main):
            pass
    from test_streaming import _serve

    with _serve(tmp_path) as url:  # a remote file's links are never followed (they would be read from this machine)
        with pytest.raises(InputFileError, match="acquisition/EMG is an HDF5 external link .* remote file's links"):
            inspect_file(f"{url}/session.nwb")
    raw.unlink()
    with pytest.raises(InputFileError, match=r"acquisition/EMG is an HDF5 external link to raw_emg.h5:/EMG, and the "
                                             r"file 'raw_emg.h5' it points to is missing \(looked for .*raw_emg.h5"):
        inspect_file(main)


def _write(name, content):
    def make(d):
        path = d / name
        path.write_bytes(content)
        return path
    return make


def _mat73(d):
    path = d / "emg.mat"
    with h5py.File(path, "w", userblock_size=512) as f:
        f["emg"] = np.zeros((10, 2))
    with open(path, "r+b") as f:
        f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 .")
    return path


def _plain_hdf5(d):
    with h5py.File(d / "data.h5", "w") as f:
        f["emg"] = np.zeros((10, 2))
    return d / "data.h5"


def _npz(d):
    np.savez(d / "emg.npz", emg=np.zeros((10, 2)))
    return d / "emg.npz"


def _npy(d):
    np.save(d / "emg.npy", np.zeros((10, 2)))
    return d / "emg.npy"


def _zip(d):
    with zipfile.ZipFile(d / "session.zip", "w") as z:
        z.writestr("session.nwb", b"x")
    return d / "session.zip"


def _open_ephys(d):
    (d / "Record Node 101").mkdir()
    (d / "Record Node 101" / "settings.xml").write_text("<SETTINGS/>")
    (d / "structure.oebin").write_text("{}")
    return d


def _zarr_not_nwb(d):
    zarr = pytest.importorskip("zarr")
    g = zarr.open_group(str(d / "x.zarr"), mode="w")
    g.create_dataset("emg", data=np.zeros((10, 2)))
    return d / "x.zarr"


EDF = (b"0       " + b"patient".ljust(80) + b"recording".ljust(80) + b"01.01.2401.00.00" + b"512".ljust(8)
       + b"EDF+C".ljust(44) + b"1".ljust(8) + b"1".ljust(8) + b"2".ljust(4)).ljust(512, b" ")

FORMATS = {
    "MATLAB 5": (_write("emg.mat", b"MATLAB 5.0 MAT-file, Platform: PCWIN64".ljust(128, b" ") + bytes(64)),
                 "not an HDF5 file, so not NWB: it is a MATLAB 5 MAT-file"),
    "MATLAB 7.3": (_mat73, "HDF5 but not NWB: it is a MATLAB 7.3 MAT-file"),
    "EDF": (_write("rec.edf", EDF), r"EDF/EDF\+ file.*NeuroConv"),
    "BDF": (_write("rec.bdf", b"\xffBIOSEMI" + bytes(248)), "BioSemi BDF"),
    "CSV": (_write("emg.csv", b"time,TA,MG\n0.0,0.1,0.2\n0.001,0.1,0.3\n"), "CSV text table.*'time,TA,MG'"),
    "TDMS": (_write("rec.tdms", b"TDSm" + bytes(60)), "National Instruments TDMS"),
    "Intan": (_write("rec.rhd", struct.pack("<I", 0xC6912702) + bytes(60)), "Intan RHD.*NeuroConv"),
    "npy": (_npy, "NumPy array file"),
    "npz": (_npz, "NumPy .npz archive"),
    "zip": (_zip, "zip archive: unzip it"),
    "empty": (_write("empty.nwb", b""), "empty file"),
    "plain HDF5": (_plain_hdf5, "HDF5 but not NWB \\(no nwb_version attribute\\).*NeuroConv"),
    "Open Ephys folder": (_open_ephys, "is a directory, an Open Ephys recording folder.*NeuroConv"),
    "Zarr not NWB": (_zarr_not_nwb, "a Zarr store but not NWB"),
}


@pytest.mark.parametrize("kind", list(FORMATS))
def test_other_formats_are_named(tmp_path, kind):
    make, words = FORMATS[kind]
    path = make(tmp_path)
    with pytest.raises(InputFileError, match=words):
        with open_nwb(path):
            pass


def test_unknown_binary_is_not_named_wrongly(tmp_path):
    path = tmp_path / "blob.nwb"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(InputFileError, match="not an HDF5 file, so not NWB, and not a format nwb-autolfads "
                                             "recognises"):
        with open_nwb(path):
            pass


def test_a_truncated_hdf5_file_is_named_damaged(tmp_path):
    """An interrupted copy or download: one line, exit 2 (it was an OSError traceback)."""
    from nwb_autolfads.cli import main

    src = mock_emg_nwb(tmp_path / "full.nwb", duration=2.0, rate=1000.0, n_muscles=2)
    cut = tmp_path / "cut.nwb"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(InputFileError, match=r"damaged HDF5 file \(.*truncated.*\): an interrupted copy or download"):
        with open_nwb(cut):
            pass
    assert main(["inspect", str(cut)]) == 2


def test_a_file_another_program_writes_is_named_locked_not_damaged(tmp_path):
    """A tester's report: an input open for writing in a notebook was called "damaged ... download
    it again"."""
    import subprocess

    src = mock_emg_nwb(tmp_path / "open.nwb", duration=2.0, rate=1000.0, n_muscles=2)
    holder = subprocess.Popen([sys.executable, "-c", "import h5py, sys, time; f = h5py.File(sys.argv[1], 'a'); "
                               "print('open', flush=True); time.sleep(30)", str(src)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(InputFileError, match="open for writing in another program .*close it there") as info:
            with open_nwb(src):
                pass
        assert "damaged" not in str(info.value)
        with pytest.raises(InputFileError, match="open for writing in another program"):  # evaluate, runs
            nwb_autolfads.load_results(src)
    finally:
        holder.kill()
        holder.wait()


def test_an_export_hdmf_cannot_do_leaves_a_results_only_file_not_a_lost_run(tmp_path, caplog):
    """A Zarr store with an ElectricalSeries: hdmf-zarr stores the electrodes' strings with a codec
    that cannot be exported to HDF5. The trained run is written results-only, with a warning."""
    pytest.importorskip("hdmf_zarr")
    from nwb_autolfads.io.results import load_results
    from nwb_autolfads.testing import mock_run_record, synthetic_emg, write_emg_nwb
    from nwb_autolfads.io.writing import write_results

    synth = synthetic_emg(duration=2.0, rate=1000.0, n_muscles=2, seed=3)
    store = write_emg_nwb(tmp_path / "es.nwb.zarr", synth, layout="electricalseries", backend="zarr",
                          include_truth=False)
    record = mock_run_record(n_bins=190, n_channels=2)
    record.source_location = str(store)
    with caplog.at_level("WARNING"):
        out, _ = write_results(store, tmp_path / "out.nwb", record, content="full")
    ds = load_results(out)
    assert "could not be copied" in caplog.text and "results-only" in caplog.text
    assert ds.attrs["source_in_file"] == 0 and ds.attrs["source_location"] == str(store)
    assert ds["emg_activations"].shape == (190, 2)
