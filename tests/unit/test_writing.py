import hashlib

import numpy as np
import pytest
from pynwb import NWBHDF5IO

from nwb_autolfads.errors import OutputError
from nwb_autolfads.writing import SeriesToWrite, check_output_path, default_output_path, write_results


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name, expected", [
    ("sub-R1_ses-20240101_ecephys.nwb", "sub-R1_ses-20240101_desc-autolfads_emg.nwb"),
    ("sub-R1_behavior+ecephys.nwb", "sub-R1_desc-autolfads_emg.nwb"),
    ("session3.nwb", "session3_autolfads.nwb"),
])
def test_default_output_names(tmp_path, name, expected):
    assert default_output_path(tmp_path / name) == tmp_path / expected


def test_output_checks(tmp_path, emg_copy):
    with pytest.raises(OutputError, match=r"\.nwb"):
        check_output_path(tmp_path / "out.h5", emg_copy, False)
    with pytest.raises(OutputError, match="is the input"):
        check_output_path(emg_copy, emg_copy, True)
    with pytest.raises(OutputError, match="does not exist"):
        check_output_path(tmp_path / "nodir" / "out.nwb", emg_copy, False)
    existing = tmp_path / "exists.nwb"
    existing.write_bytes(b"")
    with pytest.raises(OutputError, match="--overwrite"):
        check_output_path(existing, emg_copy, False)
    assert check_output_path(existing, emg_copy, True) == existing


def _series(n=100, bin_size=0.01, t0=0.005, times=None):
    times = t0 + np.arange(n) * bin_size if times is None else times
    return [SeriesToWrite("emg_activations", np.random.default_rng(0).random((n, 6)).astype(np.float32), "volts",
                          "test; channels: a, b, c, d, e, f", times, bin_size, comments='{"x": 1}')]


def test_write_keeps_source_content_and_leaves_the_input_alone(tmp_path, emg_copy):
    before = _sha(emg_copy)
    out = write_results(emg_copy, tmp_path / "out.nwb", _series(), "desc")
    assert _sha(emg_copy) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []
    with NWBHDF5IO(str(out), "r") as io:
        nwb = io.read()
        assert "EMG" in nwb.acquisition  # the source content is there
        ts = nwb.processing["autolfads"]["emg_activations"]
        assert ts.data.shape == (100, 6) and ts.rate == pytest.approx(100.0)
        assert ts.starting_time == pytest.approx(0.005)
        assert ts.comments == '{"x": 1}'
        with NWBHDF5IO(str(emg_copy), "r") as src_io:
            assert nwb.identifier != src_io.read().identifier


def test_irregular_times_are_written_as_timestamps(tmp_path, emg_copy):
    times = np.concatenate([0.005 + np.arange(50) * 0.01, 2.005 + np.arange(50) * 0.01])
    out = write_results(emg_copy, tmp_path / "out.nwb", _series(times=times), "desc")
    with NWBHDF5IO(str(out), "r") as io:
        ts = io.read().processing["autolfads"]["emg_activations"]
        np.testing.assert_allclose(ts.timestamps[:], times)


def test_second_write_into_a_result_file_gets_a_new_name(tmp_path, emg_copy):
    first = write_results(emg_copy, tmp_path / "one.nwb", _series(), "desc")
    second = write_results(first, tmp_path / "two.nwb", _series(), "desc")
    with NWBHDF5IO(str(second), "r") as io:
        names = set(io.read().processing["autolfads"].data_interfaces)
    assert names == {"emg_activations", "emg_activations_2"}


def test_failed_write_leaves_nothing(tmp_path, emg_copy, monkeypatch):
    import nwb_autolfads.writing as writing

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writing.os, "replace", boom)
    with pytest.raises(OutputError, match="No space left"):
        write_results(emg_copy, tmp_path / "out.nwb", _series(), "desc")
    assert not (tmp_path / "out.nwb").exists()
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []
