import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pynwb import NWBHDF5IO, TimeSeries
from pynwb.behavior import Position

from nwb_autolfads.cli import main
from nwb_autolfads.io.inspection import format_report, inspect_file
from nwb_autolfads.testing import synthetic_emg, write_emg_nwb

SHARED = Path(__file__).parents[2] / "data" / "nwb"


@pytest.mark.parametrize("name", sorted(p.name for p in SHARED.glob("*.nwb")))
def test_every_real_file_is_inspected_with_a_clear_verdict(name):
    report = inspect_file(SHARED / name)
    text = format_report(report)
    assert report["default"]["emg"] is None  # none of them holds EMG
    assert "run would model: nothing" in text and "--emg PATH" in text
    json.dumps(report)  # serialisable


def test_real_file_contents_are_listed():
    report = inspect_file(SHARED / "dandicli__sub-anm369963_ses-20170228.nwb")
    assert report["units"]["count"] == 1 and report["trials"]["count"] == 178
    pose = inspect_file(SHARED / "ndxpose__0.3.0_poseestimation_one_camera.nwb")
    paths = [e["path"] for e in pose["modalities"]["kinematics"]]
    assert "processing/behavior/PoseEstimation/front_left_paw" in paths
    # two lick-time series of different lengths are not one multi-channel signal
    other = [e["path"] for e in report["modalities"]["other"]]
    assert "acquisition/lick_times" not in other


def test_synthetic_file_with_emg_kinematics_and_force(tmp_path):
    synth = synthetic_emg(duration=2.0, rate=1000.0, n_muscles=3)
    path = write_emg_nwb(tmp_path / "f.nwb", synth)
    with NWBHDF5IO(str(path), "a") as io:
        nwb = io.read()
        pos = Position(name="Position")
        pos.create_spatial_series(name="hand", data=np.zeros((50, 2)), reference_frame="table", rate=25.0)
        nwb.add_acquisition(pos)
        nwb.add_acquisition(TimeSeries(name="grip_force", data=np.zeros(100), unit="N", rate=50.0,
                                       description="grip force"))
        io.write(nwb)
    report = inspect_file(path)
    emg = report["modalities"]["emg"]
    assert [e["path"] for e in emg] == ["acquisition/EMG"]
    assert emg[0]["shape"] == [2000, 3] and emg[0]["rate"] == 1000.0 and emg[0]["unit"] == "volts"
    assert emg[0]["start"] == 0.0 and emg[0]["end"] == pytest.approx(1.999)
    assert [e["path"] for e in report["modalities"]["kinematics"]] == ["acquisition/Position/hand"]
    assert [e["path"] for e in report["modalities"]["force"]] == ["acquisition/grip_force"]
    assert report["default"]["emg"] == "acquisition/EMG"
    assert "run would model: acquisition/EMG" in format_report(report)


def test_cli_inspect(tmp_path, capsys):
    synth = synthetic_emg(duration=1.0, rate=1000.0, n_muscles=2)
    path = write_emg_nwb(tmp_path / "f.nwb", synth)
    assert main(["inspect", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["default"]["emg"] == "acquisition/EMG"
    bad = tmp_path / "x.nwb"
    bad.write_text("nope")
    proc = subprocess.run([sys.executable, "-m", "nwb_autolfads", "inspect", str(bad)], capture_output=True,
                          text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "not an HDF5" in proc.stderr


def test_float32_timestamps_and_transposed_data_are_reported(tmp_path):
    from nwb_autolfads.testing import mock_emg_nwb

    path = mock_emg_nwb(tmp_path / "f32.nwb", duration=3.0, n_muscles=2, start_time=1500.0, float32_timestamps=True,
                        include_truth=False)
    emg = inspect_file(path)["modalities"]["emg"][0]
    assert emg["rate"] == pytest.approx(2000.0, rel=1e-4)  # not the median step's 2048 Hz
    assert any("float32" in n for n in emg["notes"])
    assert "note: timestamps are rounded to float32" in format_report(inspect_file(path))
    path = mock_emg_nwb(tmp_path / "t.nwb", duration=3.0, n_muscles=2, transposed=True, include_truth=False)
    emg = inspect_file(path)["modalities"]["emg"][0]
    assert emg["shape"] == [2, 6000] and emg["rate"] == 2000.0 and emg["end"] == pytest.approx(2.9995)
    assert any("channels x time" in n for n in emg["notes"])
def test_inspect_shows_channel_names_through_the_electrodes_region(tmp_path, capsys):
    synth = synthetic_emg(duration=1.0, rate=500.0, n_muscles=4)
    path = write_emg_nwb(tmp_path / "f.nwb", synth, layout="electricalseries", electrode_rows=[6, 2, 0, 4],
                         name_column="channel_name")
    assert main(["inspect", str(path)]) == 0
    text = capsys.readouterr().out
    assert "channels: TA, MG, LG, Sol" in text
    assert main(["inspect", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["modalities"]["emg"][0]["channels"] == ["TA", "MG", "LG", "Sol"]
    container = write_emg_nwb(tmp_path / "c.nwb", synth, layout="container")
    entries = {e["path"]: e for e in inspect_file(container)["modalities"]["emg"]}
    assert sorted(entries["acquisition/EMG"]["channels"]) == sorted(["TA", "MG", "LG", "Sol"])
    assert entries["acquisition/EMG/TA"]["channels"] == ["TA"]


def test_channels_of_a_series_stored_channels_x_time_are_its_channels(tmp_path):
    from nwb_autolfads.testing import mock_emg_nwb

    path = mock_emg_nwb(tmp_path / "t.nwb", duration=3.0, n_muscles=2, transposed=True, include_truth=False)
    emg = inspect_file(path)["modalities"]["emg"][0]
    assert emg["channels"] == ["TA", "MG"]  # was ch0 ... (6000 in all): the time axis taken for channels


def test_inspect_names_units_whose_spike_times_run_would_refuse(tmp_path):
    from nwb_autolfads.testing import synthetic_emg, write_emg_nwb

    synth = synthetic_emg(duration=3.0, rate=1000.0, n_muscles=2, seed=0)
    path = write_emg_nwb(tmp_path / "u.nwb", synth, n_units=3, unit_faults={1: "restart"}, include_truth=False)
    report = inspect_file(path)
    assert list(report["units"]["problems"]) == ["1"]
    assert "not ascending" in report["units"]["problems"]["1"][0]
    assert "note: unit id 1: not ascending" in format_report(report)
