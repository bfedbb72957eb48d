import hashlib

import numpy as np
import pytest
from pynwb import NWBHDF5IO

from nwb_autolfads.errors import OutputError
from nwb_autolfads.testing import mock_run_record
from nwb_autolfads.writing import check_output_path, default_output_path, write_results


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


def _emg_id(path):
    with NWBHDF5IO(str(path), "r") as io:
        return io.read().acquisition["EMG"].object_id


def test_write_keeps_source_content_and_leaves_the_input_alone(tmp_path, emg_copy):
    before = _sha(emg_copy)
    emg_id = _emg_id(emg_copy)
    out, name = write_results(emg_copy, tmp_path / "out.nwb", mock_run_record(emg_object_id=emg_id, name="r1"))
    assert _sha(emg_copy) == before
    assert name == "r1"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []
    with NWBHDF5IO(str(out), "r") as io:
        nwb = io.read()
        assert "EMG" in nwb.acquisition  # the source content is there
        run = nwb.processing["autolfads"]["r1"]
        ts = run.emg_activations
        assert ts.data.shape == (100, 6) and ts.rate == pytest.approx(100.0)
        assert ts.starting_time == pytest.approx(0.005)
        assert list(ts.channel_names[:]) == [f"m{i}" for i in range(6)]
        assert run.source_emg is nwb.acquisition["EMG"]  # the link resolves to the exported source
        assert run.source_emg.object_id == emg_id
        with NWBHDF5IO(str(emg_copy), "r") as src_io:
            assert nwb.identifier != src_io.read().identifier


def test_irregular_times_are_written_as_timestamps(tmp_path, emg_copy):
    times = np.concatenate([0.005 + np.arange(50) * 0.01, 2.005 + np.arange(50) * 0.01])
    out, name = write_results(emg_copy, tmp_path / "out.nwb", mock_run_record(times=times))
    with NWBHDF5IO(str(out), "r") as io:
        ts = io.read().processing["autolfads"][name].emg_activations
        np.testing.assert_allclose(ts.timestamps[:], times)


def test_runs_coexist_with_unique_names(tmp_path, emg_copy):
    first, a = write_results(emg_copy, tmp_path / "one.nwb", mock_run_record(name="run"))
    second, b = write_results(first, tmp_path / "two.nwb", mock_run_record(name="run"))
    assert (a, b) == ("run", "run_2")
    with NWBHDF5IO(str(second), "r") as io:
        assert set(io.read().processing["autolfads"].data_interfaces) == {"run", "run_2"}


def test_default_run_name_comes_from_the_start_time(tmp_path, emg_copy):
    _, name = write_results(emg_copy, tmp_path / "out.nwb", mock_run_record())
    assert name == "run_20260101T000000Z"


def test_in_place_adds_a_run_to_the_source(tmp_path, emg_copy):
    record = mock_run_record(emg_object_id=_emg_id(emg_copy))
    from nwb_autolfads.writing import file_sha256
    record.source_sha256 = file_sha256(emg_copy)
    path, name = write_results(emg_copy, None, record, in_place=True)
    assert path == emg_copy
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emg.nwb"]
    with NWBHDF5IO(str(emg_copy), "r") as io:
        nwb = io.read()
        assert nwb.processing["autolfads"][name].source_emg is nwb.acquisition["EMG"]
        assert nwb.processing["autolfads"][name].factors.data.shape == (100, 4)


def test_in_place_refuses_a_source_that_changed_during_training(tmp_path, emg_copy):
    before = _sha(emg_copy)
    with pytest.raises(OutputError, match="changed while the run was training"):
        write_results(emg_copy, None, mock_run_record(), in_place=True)  # sha256 '000...' != the file's
    assert _sha(emg_copy) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emg.nwb"]


@pytest.mark.parametrize("in_place", [False, True])
def test_failed_write_leaves_nothing(tmp_path, emg_copy, monkeypatch, in_place):
    import nwb_autolfads.writing as writing

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    before = _sha(emg_copy)
    record = mock_run_record()
    record.source_sha256 = before
    monkeypatch.setattr(writing.os, "replace", boom)
    with pytest.raises(OutputError, match="No space left"):
        write_results(emg_copy, tmp_path / "out.nwb", record, in_place=in_place)
    assert not (tmp_path / "out.nwb").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emg.nwb"]
    assert _sha(emg_copy) == before
