import hashlib

import numpy as np
import pytest
from pynwb import NWBHDF5IO

from nwb_autolfads.errors import OutputError
from nwb_autolfads.testing import mock_run_record
from nwb_autolfads.io.writing import check_output_path, default_output_path, write_results


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
    with pytest.raises(OutputError, match="cannot be read as an NWB HDF5 file"):
        check_output_path(existing, emg_copy, True)  # not a result: never replaced
    result, _ = write_results(emg_copy, tmp_path / "result.nwb", mock_run_record())
    assert check_output_path(result, emg_copy, True) == result


def test_overwrite_replaces_only_earlier_results_and_says_when_several_runs_go(tmp_path, emg_copy, caplog):
    """Testers' reports: ``-o b.nwb --overwrite`` replaced b.nwb, another raw recording, without a
    word; on a result holding 4 runs it dropped them all silently."""
    recording = tmp_path / "other_recording.nwb"
    recording.write_bytes(emg_copy.read_bytes())
    with pytest.raises(OutputError, match="not a result of nwb-autolfads.*a recording"):
        check_output_path(recording, emg_copy, True)
    one, _ = write_results(emg_copy, tmp_path / "one.nwb", mock_run_record(name="a"))
    two, _ = write_results(one, tmp_path / "two.nwb", mock_run_record(name="b"))
    from nwb_autolfads.io.writing import file_sha256

    in_place = tmp_path / "recording_with_runs.nwb"
    in_place.write_bytes(emg_copy.read_bytes())
    record = mock_run_record(emg_object_id=_emg_id(in_place))
    record.source_sha256 = file_sha256(in_place)
    with NWBHDF5IO(str(in_place), "r") as io:
        record.source_identifier = io.read().identifier  # as a run records its source
    write_results(in_place, None, record, in_place=True)  # a recording given a run with --in-place
    with pytest.raises(OutputError, match="a recording that runs were added to with --in-place"):
        check_output_path(in_place, emg_copy, True)
    # an output given a second run with --in-place is still an output
    three, _ = write_results(emg_copy, tmp_path / "three.nwb", mock_run_record(name="c"))
    record = mock_run_record(emg_object_id=_emg_id(three))
    record.source_sha256 = file_sha256(three)
    with NWBHDF5IO(str(three), "r") as io:
        record.source_identifier = io.read().identifier
    write_results(three, None, record, in_place=True)
    check_output_path(three, emg_copy, True)
    # a recording with a module named "autolfads" from another pipeline (no AutoLFADSRun in it)
    import h5py

    foreign = tmp_path / "lab_recording.nwb"
    foreign.write_bytes(emg_copy.read_bytes())
    with h5py.File(foreign, "a") as f:
        f.require_group("processing/autolfads/lab_rates").attrs["neurodata_type"] = "TimeSeries"
    with pytest.raises(OutputError, match="not a result of nwb-autolfads"):
        check_output_path(foreign, emg_copy, True)
    caplog.clear()
    with caplog.at_level("WARNING"):
        check_output_path(one, emg_copy, True)
        assert "runs" not in caplog.text  # one run: the ordinary replacement
        check_output_path(two, emg_copy, True)
    assert "holds 2 runs (a, b)" in caplog.text


def test_overwrite_says_which_data_of_the_user_goes_with_the_file_replaced(tmp_path, emg_copy, caplog):
    """A break-it tester's report: a results-only output to which the user had added a dataset in
    scratch was replaced under --overwrite without a word about it. Data nwb-autolfads did not
    write there are named before any work (once per file; the write checks again): all of them in
    a results-only result, those its input does not hold in a full copy."""
    import h5py

    results_only, _ = write_results(emg_copy, tmp_path / "results.nwb", mock_run_record(), content="results")
    full, _ = write_results(emg_copy, tmp_path / "full.nwb", mock_run_record())
    caplog.clear()
    with caplog.at_level("WARNING"):
        check_output_path(results_only, emg_copy, True, "results")
        check_output_path(full, emg_copy, True)
    assert "did not write" not in caplog.text  # nothing of the user's: the ordinary replacement
    with h5py.File(results_only, "a") as f:
        f.require_group("scratch").create_dataset("my_notes", data=np.arange(3))
    with h5py.File(full, "a") as f:
        f.require_group("analysis").create_dataset("my_fit", data=np.arange(3))
    caplog.clear()
    with caplog.at_level("WARNING"):
        check_output_path(results_only, emg_copy, True, "results")
        check_output_path(full, emg_copy, True)
        check_output_path(full, emg_copy, True)  # again, as the write does: said once
    assert "results.nwb holds data nwb-autolfads did not write there (scratch/my_notes)" in caplog.text
    assert caplog.text.count("full.nwb holds data nwb-autolfads did not write there (analysis/my_fit)") == 1
    assert "acquisition" not in caplog.text  # the copy of the input's EMG is not the user's addition


def test_run_names_are_checked_before_any_work():
    from nwb_autolfads.io.writing import check_run_name

    for bad in ("a/b", "", " x", ".hidden", "x" * 101, "tab\there"):
        with pytest.raises(OutputError, match="cannot be used"):
            check_run_name(bad)
    with pytest.raises(OutputError, match="'mine' is taken.*runs: mine, other"):
        check_run_name("mine", ["mine", "other"])
    check_run_name("bin5ms_v2.1", ["mine"])
    check_run_name(None, ["mine"])


def test_in_place_through_a_symbolic_link_changes_the_file_it_points_to(tmp_path, emg_copy):
    """A tester's report (datalad / git-annex layout): --in-place on a link replaced the link by a
    file with the run; the real file got none."""
    from nwb_autolfads.io.writing import file_sha256

    store = tmp_path / "store"
    store.mkdir()
    real = store / "emg.nwb"
    emg_copy.rename(real)
    link = tmp_path / "emg.nwb"
    link.symlink_to(real)
    record = mock_run_record(emg_object_id=_emg_id(real))
    record.source_sha256 = file_sha256(real)
    path, name = write_results(link, None, record, in_place=True)
    assert path == link and link.is_symlink() and link.resolve() == real
    with NWBHDF5IO(str(real), "r") as io:
        assert name in io.read().processing["autolfads"].data_interfaces
    assert sorted(p.name for p in store.iterdir()) == ["emg.nwb"]


@pytest.mark.parametrize("message, falls_back", [
    ("Disable slist on flush dest failure failed (file write failed: time = ...)", False),  # h5py, disk full
    ("Can't write data (no space left on device)", False),
    ("an export hdmf cannot do", True),
])
def test_a_full_disk_is_an_error_not_a_results_only_file(tmp_path, emg_copy, monkeypatch, message, falls_back):
    """A tester's report: a full disk during the full write gave a results-only file and exit 0
    (h5py raises RuntimeError, not OSError); with --overwrite it replaced a complete output."""
    import nwb_autolfads.io.writing as writing

    def fail(*a, **k):
        raise RuntimeError(message)

    monkeypatch.setattr(writing, "_write_full", fail)
    if falls_back:
        path, _ = write_results(emg_copy, tmp_path / "out.nwb", mock_run_record())
        with NWBHDF5IO(str(path), "r") as io:
            assert not io.read().acquisition  # results only, said in a warning
        return
    with pytest.raises(OutputError, match="check free disk space"):
        write_results(emg_copy, tmp_path / "out.nwb", mock_run_record())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emg.nwb"]


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
        assert run.source_in_file == True  # noqa: E712 (numpy bool)
        assert run.source_object_ids == emg_id  # the provenance names the source's object
        with NWBHDF5IO(str(emg_copy), "r") as src_io:
            source = src_io.read()
            assert nwb.identifier != source.identifier and nwb.identifier.startswith(source.identifier)
            # a new file is a new object: no object id of the source is reused (DANDI tells files apart by them)
            assert len(nwb.objects) > len(source.objects) >= 5
            assert not set(nwb.objects) & set(source.objects)
            assert nwb.object_id != source.object_id


def _ids_everywhere(path):
    """Every object_id attribute in the HDF5 file (not only those pynwb builds containers for)."""
    import h5py
    ids = set()
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: ids.add(obj.attrs["object_id"]) if "object_id" in obj.attrs else None)
        ids.add(f.attrs["object_id"])
    return ids


def test_a_new_file_shares_no_object_id_with_its_source_in_place_keeps_them(tmp_path, emg_copy):
    out, _ = write_results(emg_copy, tmp_path / "out.nwb", mock_run_record(emg_object_id=_emg_id(emg_copy)))
    source_ids = _ids_everywhere(emg_copy)
    assert len(source_ids) >= 5 and not source_ids & _ids_everywhere(out)
    record = mock_run_record(emg_object_id=_emg_id(emg_copy))
    record.source_sha256 = _sha(emg_copy)
    write_results(emg_copy, None, record, in_place=True)  # the same file: its objects keep their ids
    assert source_ids < _ids_everywhere(emg_copy)


@pytest.fixture()
def units_source(tmp_path):
    from nwb_autolfads.testing import mock_emg_nwb
    return mock_emg_nwb(tmp_path / "sub-U1_ses-1_ecephys.nwb", duration=2.0, rate=1000.0, n_muscles=3, n_units=4,
                        seed=3)


def test_results_only_file_holds_the_run_and_where_its_source_is(tmp_path, units_source):
    import pynwb
    from nwb_autolfads.io.results import load_results

    before = _sha(units_source)
    record = mock_run_record(n_channels=3, unit_ids=[3, 0], emg_object_id=_emg_id(units_source), name="r")
    record.source_location, record.source_url, record.source_asset_id = str(units_source), "https://x/y.nwb", "a-1"
    out, name = write_results(units_source, tmp_path / "results.nwb", record, content="results")
    assert _sha(units_source) == before
    with NWBHDF5IO(str(units_source), "r") as src_io, NWBHDF5IO(str(out), "r") as io:
        source, nwb = src_io.read(), io.read()
        # none of the source's data, but its session and subject (DANDI places and validates files by them)
        assert len(nwb.acquisition) == 0 and nwb.units is None and set(nwb.processing) == {"autolfads"}
        assert nwb.session_start_time == source.session_start_time
        assert nwb.session_description == source.session_description
        assert list(nwb.experimenter) == list(source.experimenter) and nwb.lab == source.lab
        for key in ("subject_id", "species", "sex", "age"):
            assert getattr(nwb.subject, key) == getattr(source.subject, key)
        assert nwb.identifier != source.identifier and nwb.identifier.startswith(source.identifier)
        assert not set(nwb.objects) & set(source.objects)
        run = nwb.processing["autolfads"][name]
        assert run.source_in_file == False and run.source_emg is None  # noqa: E712
        assert (run.source_location, run.source_url, run.source_dandi_asset_id) == (str(units_source),
                                                                                   "https://x/y.nwb", "a-1")
        assert run.firing_rates.units is None and list(run.firing_rates.unit_ids[:]) == [3, 0]
    assert pynwb.validate(path=str(out)) == []
    ds = load_results(out)
    assert list(ds.unit.values) == [3, 0] and ds.firing_rates.shape == (100, 2)
    assert ds.attrs["source_in_file"] == 0 and ds.attrs["source_location"] == str(units_source)
    assert out.stat().st_size < units_source.stat().st_size


def test_full_file_names_units_by_row_and_by_id(tmp_path, units_source):
    from nwb_autolfads.io.results import load_results

    out, name = write_results(units_source, tmp_path / "full.nwb", mock_run_record(unit_ids=[3, 0]))
    with NWBHDF5IO(str(out), "r") as io:
        rates = io.read().processing["autolfads"][name].firing_rates
        assert list(rates.units.data[:]) == [3, 0] and list(rates.unit_ids[:]) == [3, 0]
    assert list(load_results(out).unit.values) == [3, 0]
    with pytest.raises(OutputError, match=r"units \[7\] that the file's Units table does not hold"):
        write_results(units_source, tmp_path / "bad.nwb", mock_run_record(unit_ids=[0, 7]))
    assert not (tmp_path / "bad.nwb").exists()


def test_irregular_times_are_written_as_timestamps(tmp_path, emg_copy):
    times = np.concatenate([0.005 + np.arange(50) * 0.01, 2.005 + np.arange(50) * 0.01])
    out, name = write_results(emg_copy, tmp_path / "out.nwb", mock_run_record(times=times))
    with NWBHDF5IO(str(out), "r") as io:
        ts = io.read().processing["autolfads"][name].emg_activations
        np.testing.assert_allclose(ts.timestamps[:], times)
        assert ts.credible_interval is None and ts.lower is None  # not the timestamps' own "interval" attribute
    with_band, name = write_results(emg_copy, tmp_path / "band.nwb", mock_run_record(times=times, interval=0.9))
    with NWBHDF5IO(str(with_band), "r") as io:
        ts = io.read().processing["autolfads"][name].emg_activations
        np.testing.assert_allclose(ts.timestamps[:], times)
        assert ts.credible_interval == 0.9 and ts.lower.shape == ts.upper.shape == (100, 6)


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
    from nwb_autolfads.io.writing import file_sha256
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
    import nwb_autolfads.io.writing as writing

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


_HOLD_LOCK = """
import os, signal, sys, time
from nwb_autolfads.io.writing import OutputLock
lock = OutputLock(sys.argv[1]).__enter__()
print("held", flush=True)
if sys.argv[2] == "die":
    os.kill(os.getpid(), signal.SIGKILL)  # killed while holding it: the lock file stays behind
time.sleep(60)
"""


def _holder(target, how):
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(target), how], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_lock_held_by_another_process_refuses_naming_it_and_a_killed_holders_lock_does_not_block(tmp_path):
    from nwb_autolfads.io.writing import OutputLock

    target = tmp_path / "out.nwb"
    live = _holder(target, "wait")
    try:
        with pytest.raises(OutputError, match=f"being written by another nwb-autolfads run \\(pid {live.pid}\\)"):
            with OutputLock(target):
                pass
    finally:
        live.kill()
        live.wait()
    dead = _holder(target, "die")
    dead.wait()
    assert (tmp_path / ".out.nwb.lock").exists()  # left by the killed holder
    with OutputLock(target) as lock:
        assert lock.path.read_text() == f"pid {__import__('os').getpid()}"
    assert list(tmp_path.iterdir()) == []  # released and removed


def test_write_results_under_the_pipelines_lock_and_a_dead_writers_partial_is_removed(tmp_path, emg_copy):
    from nwb_autolfads.io.writing import OutputLock

    target = tmp_path / "out.nwb"
    stale = tmp_path / ".out.nwb.999999-0badcafe.partial"  # a killed writer's temporary file
    stale.write_bytes(b"half a file")
    with OutputLock(target):  # as pipeline.run holds it: write_results takes it again, re-entrantly
        out, _ = write_results(emg_copy, target, mock_run_record(emg_object_id=_emg_id(emg_copy)))
        assert (tmp_path / ".out.nwb.lock").exists()  # still held by the outer one
    assert out == target and not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emg.nwb", "out.nwb"]


def test_in_place_refuses_a_read_only_or_hard_linked_file_even_for_root(tmp_path, emg_copy):
    """Testers' reports, run as root: --in-place rewrote a git-annex object (mode 0444 in a 0555
    folder); a hard-linked input split silently (its other name kept the old content)."""
    import os

    from nwb_autolfads.io.writing import check_in_place

    os.chmod(emg_copy, 0o444)
    with pytest.raises(OutputError, match="read-only .*git annex unlock"):
        check_in_place(emg_copy)
    os.chmod(emg_copy, 0o644)
    check_in_place(emg_copy)
    os.link(emg_copy, tmp_path / "other_name.nwb")
    with pytest.raises(OutputError, match="2 hard links"):
        check_in_place(emg_copy)


def test_too_little_free_space_is_refused_before_writing(tmp_path, emg_copy, monkeypatch):
    """A tester's report: with less free space than the output needs, h5py crashed the process
    (segmentation fault, exit 139) after the error line; now the write is refused first."""
    import collections

    import nwb_autolfads.io.writing as writing

    usage = collections.namedtuple("usage", "total used free")
    needed = writing._bytes_needed(emg_copy, mock_run_record(), False, "full", False)
    assert needed > emg_copy.stat().st_size
    monkeypatch.setattr(writing.shutil, "disk_usage", lambda p: usage(10**9, 10**9 - needed + 1, needed - 1))
    with pytest.raises(OutputError, match="not enough free disk space .* MB needed"):
        write_results(emg_copy, tmp_path / "out.nwb", mock_run_record())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emg.nwb"]
    monkeypatch.setattr(writing.shutil, "disk_usage", lambda p: usage(10**9, 0, needed))
    write_results(emg_copy, tmp_path / "out.nwb", mock_run_record())
