from pathlib import Path

import h5py
import numpy as np
import pytest

from nwb_autolfads.errors import SignalError, SignalNotFoundError
from nwb_autolfads.io.reading import open_nwb
from nwb_autolfads.io.series import find_emg, read_emg
from nwb_autolfads.testing import synthetic_emg, write_emg_nwb

SHARED = Path(__file__).parents[2] / "data" / "nwb"


@pytest.fixture(scope="module")
def synth():
    return synthetic_emg(duration=2.0, rate=1000.0, n_muscles=4, seed=0)


@pytest.mark.parametrize("layout", ["timeseries", "electricalseries", "container"])
@pytest.mark.parametrize("location", ["acquisition", "processing"])
def test_finds_and_reads_emg_in_every_layout(tmp_path, synth, layout, location):
    path = write_emg_nwb(tmp_path / "f.nwb", synth, layout=layout, location=location)
    with open_nwb(path) as (_io, nwb):
        sig = read_emg(nwb)
    assert sig.values.shape == synth.raw.shape
    assert sorted(sig.channel_names) == sorted(synth.names)
    if layout != "container":  # one 2-D series: the file's column order
        assert sig.channel_names == synth.names
    order = [synth.names.index(n) for n in sig.channel_names]
    np.testing.assert_allclose(sig.values, synth.raw[:, order], rtol=1e-6, atol=1e-12)
    assert sig.unit == "volts"
    assert sig.source_path.startswith(location)
    assert sig.rate == pytest.approx(1000.0)
    assert sig.object_id


def test_conversion_and_offset_are_applied(tmp_path, synth):
    path = write_emg_nwb(tmp_path / "f.nwb", synth, int16=True)
    with h5py.File(path, "r") as f:
        assert f["acquisition/EMG/data"].dtype == np.int16
    with open_nwb(path) as (_io, nwb):
        sig = read_emg(nwb)
    np.testing.assert_allclose(sig.values, synth.raw, atol=np.abs(synth.raw).max() / 30000)


def test_timestamps_and_gaps(tmp_path, synth):
    path = write_emg_nwb(tmp_path / "f.nwb", synth, gap=(0.5, 0.8))
    with open_nwb(path) as (_io, nwb):
        sig = read_emg(nwb)
    assert sig.timestamps is not None and sig.rate is None
    assert sig.n_samples == synth.raw.shape[0] - 300
    assert sig.sampling_rate() == pytest.approx(1000.0)


def test_explicit_path_and_channel_names(tmp_path, synth):
    path = write_emg_nwb(tmp_path / "f.nwb", synth, name="signals")  # description still says EMG
    with open_nwb(path) as (_io, nwb):
        assert find_emg(nwb, "acquisition/signals").path == "acquisition/signals"
        assert find_emg(nwb, "/acquisition/signals/").path == "acquisition/signals"
        sig = read_emg(nwb, "acquisition/signals", channel_names=["a", "b", "c", "d"])
        assert sig.channel_names == ["a", "b", "c", "d"]
        with pytest.raises(SignalError, match="give exactly 4 names"):
            read_emg(nwb, channel_names=["a"])
        with pytest.raises(SignalNotFoundError, match="acquisition/signals"):
            read_emg(nwb, "acquisition/nope")


def test_ground_truth_is_not_mistaken_for_emg(tmp_path, synth):
    path = write_emg_nwb(tmp_path / "f.nwb", synth)
    with open_nwb(path) as (_io, nwb):
        assert find_emg(nwb).path == "acquisition/EMG"


def test_bad_shapes(tmp_path, synth):
    from datetime import datetime, timezone

    from pynwb import NWBHDF5IO, NWBFile, TimeSeries

    nwb = NWBFile(session_description="x", identifier="x", session_start_time=datetime.now(timezone.utc))
    nwb.add_acquisition(TimeSeries(name="EMG3d", data=np.zeros((10, 2, 2)), unit="V", rate=10.0))
    nwb.add_acquisition(TimeSeries(name="EMGempty", data=np.zeros((0, 2)), unit="V", rate=10.0))
    path = tmp_path / "bad.nwb"
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    with open_nwb(path) as (_io, nwb):
        with pytest.raises(SignalError, match="shape"):
            read_emg(nwb, "acquisition/EMG3d")
        with pytest.raises(SignalError, match="empty"):
            read_emg(nwb, "acquisition/EMGempty")


@pytest.mark.parametrize("name", sorted(p.name for p in SHARED.glob("*.nwb")))
def test_real_files_without_emg_fail_clearly(name):
    """Real files written by other software: they open, and lacking EMG give a clear message."""
    with open_nwb(SHARED / name) as (_io, nwb):
        with pytest.raises(SignalNotFoundError, match="no EMG found.*--emg"):
            find_emg(nwb)


def test_lazy_reading_leaves_samples_in_the_file(tmp_path, synth):
    from nwb_autolfads.data.signals import SeriesValues
    for layout in ("timeseries", "container"):
        path = write_emg_nwb(tmp_path / f"{layout}.nwb", synth, int16=True, layout=layout)
        with open_nwb(path) as (_io, nwb):
            lazy = read_emg(nwb, lazy=True)
            loaded = read_emg(nwb)
            assert isinstance(lazy.values, SeriesValues) and isinstance(loaded.values, np.ndarray)
            np.testing.assert_array_equal(lazy.values[100:200], loaded.values[100:200])
            np.testing.assert_array_equal(np.asarray(lazy.values), loaded.values)


@pytest.mark.parametrize("layout, time_kw, told_by", [
    ("timeseries", {"use_timestamps": True}, "timestamps match the second axis"),
    ("timeseries", {}, "channel names in the description"),
    ("electricalseries", {}, "electrodes table"),
])
def test_series_stored_channels_x_time_is_read_transposed_with_a_warning(tmp_path, synth, layout, time_kw, told_by,
                                                                          caplog):
    path = write_emg_nwb(tmp_path / "t.nwb", synth, layout=layout, transposed=True, **time_kw)
    with h5py.File(path, "r") as f:
        assert f["acquisition/EMG/data"].shape == (4, 2000)
    with caplog.at_level("WARNING"), open_nwb(path) as (_io, nwb):
        lazy = read_emg(nwb, lazy=True)
        assert lazy.values.shape == (2000, 4)
        np.testing.assert_allclose(lazy.values[100:200], synth.raw[100:200], rtol=1e-6)  # read on demand
        sig = read_emg(nwb)
    assert sig.values.shape == (2000, 4) and sig.channel_names == synth.names
    np.testing.assert_allclose(sig.values, synth.raw, rtol=1e-6, atol=1e-12)
    assert sig.sampling_rate() == pytest.approx(1000.0)
    note = [r.getMessage() for r in caplog.records if "channels x time" in r.getMessage()]
    assert note and told_by in note[0] and "data.T" in note[0]


def test_transposed_without_names_is_recognised_by_its_shape(tmp_path):
    from datetime import datetime, timezone

    from pynwb import NWBHDF5IO, NWBFile, TimeSeries

    def write(name, data):
        nwb = NWBFile(session_description="x", identifier=name, session_start_time=datetime(2026, 1, 1, tzinfo=timezone.utc))
        nwb.add_acquisition(TimeSeries(name="EMG", data=data, unit="V", rate=2000.0, description="EMG"))
        with NWBHDF5IO(str(tmp_path / name), "w") as io:
            io.write(nwb)
        return tmp_path / name

    clear = write("clear.nwb", np.zeros((4, 16000)))  # 4 x 16000 at 2 kHz: 8 s of 4 channels
    with open_nwb(clear) as (_io, nwb):
        assert read_emg(nwb).values.shape == (16000, 4)
    unclear = write("unclear.nwb", np.zeros((300, 400)))  # more channels than samples, neither axis clear
    with open_nwb(unclear) as (_io, nwb), pytest.raises(SignalError, match=r"shape \(300, 400\).*channels x time.*data\.T"):
        read_emg(nwb)


@pytest.mark.parametrize("column", ["channel_name", "label", "group_name", "muscle", "location"])
def test_channel_names_through_an_unsorted_electrodes_region(tmp_path, synth, column):
    """The series selects rows [6, 2, 0, 4] of a 7-row table: its columns are named by those rows,
    in that order, from whichever column the converter put the names in."""
    path = write_emg_nwb(tmp_path / "f.nwb", synth, layout="electricalseries", electrode_rows=[6, 2, 0, 4],
                         name_column=column)
    with open_nwb(path) as (_io, nwb):
        table = nwb.electrodes
        assert len(table) == 7
        assert [table[column][r] for r in (0, 2, 4, 6)] == ["LG", "MG", "Sol", "TA"]  # the table's own order differs from the series'
        sig = read_emg(nwb)
    assert sig.channel_names == ["TA", "MG", "LG", "Sol"]
    np.testing.assert_allclose(sig.values, synth.raw, rtol=1e-6, atol=1e-12)


def test_channel_names_skip_columns_that_do_not_tell_channels_apart(tmp_path, synth):
    """NeuroConv writes location 'unknown' and one group for all channels: those are not names."""
    from nwb_autolfads.io.series import electrode_names

    path = write_emg_nwb(tmp_path / "f.nwb", synth, layout="electricalseries", electrode_rows=[3, 1, 0, 2],
                         name_column="label")
    with open_nwb(path) as (_io, nwb):
        assert set(nwb.electrodes["location"].data[:]) == {"unknown"}
        series = nwb.acquisition["EMG"]
        assert electrode_names(series, 4) == ["TA", "MG", "LG", "Sol"]
        assert electrode_names(series, 3) is None  # the region does not select one row per column
    same = write_emg_nwb(tmp_path / "g.nwb", synth, layout="electricalseries", name_column="channel_name")
    with h5py.File(same, "a") as f:  # a name repeated: the column no longer tells the channels apart
        f["general/extracellular_ephys/electrodes/channel_name"][1] = "TA"
    with open_nwb(same) as (_io, nwb):
        assert read_emg(nwb).channel_names == ["ch0", "ch1", "ch2", "ch3"]


def _container_file(path, starts, rate=1000.0, n=3000, timestamps=False, stamps=None, names=("A", "B")):
    """Two muscles (``names``), each its own 1-D TimeSeries in a BehavioralTimeSeries, starting at
    ``starts`` (``stamps``: each muscle's own timestamps instead)."""
    from datetime import datetime, timezone

    from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    from pynwb.behavior import BehavioralTimeSeries

    nwb = NWBFile("c", "c", datetime(2024, 1, 1, tzinfo=timezone.utc))
    emg = BehavioralTimeSeries(name="EMG")
    rng = np.random.default_rng(0)
    for name, t0 in zip(names, starts):
        kw = ({"timestamps": t0 + np.arange(n) / rate} if timestamps else {"starting_time": t0, "rate": rate})
        if stamps is not None:
            kw = {"timestamps": stamps[name]}
        emg.add_timeseries(TimeSeries(name=name, data=rng.normal(0, 1e-4, len(kw.get("timestamps", range(n)))),
                                      unit="volts", **kw))
    nwb.create_processing_module("behavior", "b").add(emg)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


@pytest.mark.parametrize("timestamps", [False, True])
@pytest.mark.parametrize("t0, offset", [(1234.5678, 0.012), (20000.0, 0.15), (0.0, 0.0005), (3.0, 0.004)])
def test_container_series_on_other_clocks_are_refused_at_any_start_time(tmp_path, t0, offset, timestamps):
    """Per-muscle series offset by a few ms (or by half a sample) are not one recording: read on
    the first one's times, a muscle would move in time. The check is absolute (it once was
    relative to the time: 12 ms passed at 1234 s, 150 ms at 20000 s)."""
    path = _container_file(tmp_path / "c.nwb", (t0, t0 + offset), timestamps=timestamps)
    with open_nwb(path) as (_io, nwb):
        with pytest.raises(SignalError, match=r"do not share one time base: B is not on A's clock \(its first samples "
                                              r"are \+[0-9.]+ ms from the other's"):
            read_emg(nwb)


@pytest.mark.parametrize("timestamps", [False, True])
def test_container_series_on_one_clock_are_read_together_late_in_a_session(tmp_path, timestamps):
    path = _container_file(tmp_path / "c.nwb", (20000.123, 20000.123), timestamps=timestamps)
    with open_nwb(path) as (_io, nwb):
        sig = read_emg(nwb)
    assert sig.values.shape == (3000, 2) and sig.times()[0] == pytest.approx(20000.123)


def test_container_series_with_jitter_or_float32_rounding_are_one_clock(tmp_path):
    """Each muscle's timestamps jittered on their own (SD 2% of a period) over 60 s, or rounded to
    float32 late in a session, are still one clock (the check once took the largest offset of any
    sample, so jitter failed it more the longer the recording)."""
    rng = np.random.default_rng(0)
    t = 50.0 + np.arange(120_000) / 2000.0
    path = _container_file(tmp_path / "j.nwb", (0, 0), stamps={"A": t + rng.normal(0, 1e-5, t.size),
                                                                "B": t + rng.normal(0, 1e-5, t.size)})
    with open_nwb(path) as (_io, nwb):
        assert read_emg(nwb).n_channels == 2
    t = 1234.5678 + np.arange(4000) / 2000.0
    path = _container_file(tmp_path / "f.nwb", (0, 0), stamps={"A": t, "B": t.astype(np.float32).astype(float)})
    with open_nwb(path) as (_io, nwb):
        assert read_emg(nwb).n_channels == 2


@pytest.mark.parametrize("kind", ["gaps", "rate", "length"])
def test_container_series_with_other_gaps_rates_or_lengths_are_refused_by_name(tmp_path, kind):
    """Gaps at other places, another rate (drift), or one sample fewer: never one muscle alone
    (per-muscle EMG of unequal lengths was not offered as a whole, so one muscle was modelled)."""
    t = np.arange(4000) / 2000.0
    other = {"gaps": np.where(t < 1.0, t, t + 0.2), "rate": np.arange(4000) / 2000.5, "length": t[:-1]}[kind]
    path = _container_file(tmp_path / "g.nwb", (0, 0), stamps={"A": t, "B": other})
    with open_nwb(path) as (_io, nwb):
        with pytest.raises(SignalError, match="processing/behavior/EMG: the per-channel series do not share one time "
                                              "base"):
            read_emg(nwb)


def test_inspect_says_run_refuses_a_container_on_two_clocks(tmp_path):
    from nwb_autolfads.io.inspection import inspect_file

    path = _container_file(tmp_path / "c.nwb", (3.0, 3.004))
    default = inspect_file(path)["default"]
    assert default["emg"] is None and "do not share one time base" in default["reason"]


def test_container_series_in_other_voltage_units_are_converted_and_other_units_refused(tmp_path, caplog):
    """One muscle stored in mV beside others in volts was modelled as is (unit "mixed", that muscle
    1000x the others); now it is converted to the first series' unit, with a warning; units that
    are not all voltages are refused naming each."""
    path = _container_file(tmp_path / "c.nwb", (0.0, 0.0))
    with open_nwb(path) as (_io, nwb):
        volts = np.asarray(read_emg(nwb).values)
    for unit, factor in (("mV", 1e-3), ("microvolts", 1e-6)):
        with h5py.File(path, "a") as f:
            f["processing/behavior/EMG/B/data"][...] = volts[:, 1] / factor
            f["processing/behavior/EMG/B/data"].attrs["unit"] = unit
        with open_nwb(path) as (_io, nwb):
            sig = read_emg(nwb)
        assert sig.unit == "volts" and f"B: '{unit}'" in caplog.text
        np.testing.assert_allclose(np.asarray(sig.values), volts, rtol=1e-12)
    with h5py.File(path, "a") as f:
        f["processing/behavior/EMG/B/data"].attrs["unit"] = "m"
    with open_nwb(path) as (_io, nwb):
        with pytest.raises(SignalError, match=r"different units \(A: 'volts', B: 'm'\), not all SI voltage"):
            read_emg(nwb)


def test_container_series_in_nv_and_kv_are_converted_to_the_unit_most_are_in(tmp_path, caplog):
    """A tester's file: a muscle in nV and one in kV beside four in volts made the automatic choice
    fall back to one muscle; now all six are converted to volts (the unit most are in)."""
    names = ("LG", "MG", "Sol", "TA", "VL", "VM")
    path = _container_file(tmp_path / "c.nwb", (0.0,) * 6, names=names)
    with open_nwb(path) as (_io, nwb):
        volts = np.asarray(read_emg(nwb).values)
    with h5py.File(path, "a") as f:
        for name, unit, factor in (("LG", "kV", 1e3), ("MG", "nV", 1e-9)):
            column = names.index(name)
            f[f"processing/behavior/EMG/{name}/data"][...] = volts[:, column] / factor
            f[f"processing/behavior/EMG/{name}/data"].attrs["unit"] = unit
    with open_nwb(path) as (_io, nwb):
        sig = read_emg(nwb)
    assert sig.unit == "volts" and list(sig.channel_names) == list(names) and "converted to 'volts'" in caplog.text
    np.testing.assert_allclose(np.asarray(sig.values), volts, rtol=1e-12)
