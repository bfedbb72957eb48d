from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from pynwb import NWBHDF5IO, NWBFile, TimeSeries
from pynwb.behavior import BehavioralTimeSeries, CompassDirection, Position, SpatialSeries

from nwb_autolfads.io.behavior import find_behavior, read_behavior, to_bins
from nwb_autolfads.errors import SignalNotFoundError
from nwb_autolfads.io.reading import open_nwb
from nwb_autolfads.data.signals import Signal

SHARED = Path(__file__).resolve().parents[2] / "data" / "nwb"


@pytest.fixture()
def behavior_file(tmp_path):
    t = np.arange(3000) / 1000.0
    nwb = NWBFile(session_description="behaviour", identifier="beh",
                  session_start_time=datetime(2026, 1, 1, tzinfo=timezone.utc))
    module = nwb.create_processing_module("behavior", "behaviour")
    module.add(Position(spatial_series=SpatialSeries(name="hand", data=np.c_[np.sin(t), np.cos(t)],
                                                     reference_frame="table", rate=1000.0, unit="meters")))
    module.add(CompassDirection(spatial_series=SpatialSeries(name="heading", data=t * 0.1, rate=1000.0,
                                                             reference_frame="north", unit="radians")))
    joints = BehavioralTimeSeries(name="JointAngles")
    for name, f in (("hip", 1.0), ("knee", 2.0)):
        joints.add_timeseries(TimeSeries(name=name, data=np.sin(2 * np.pi * f * t) * 1000, unit="mrad", rate=1000.0,
                                         conversion=1e-3, description=f"{name} joint angle"))
    module.add(joints)
    stamps = np.r_[t[:1000], t[2000:]]  # a one-second gap
    nwb.add_acquisition(TimeSeries(name="grip_force", data=np.r_[t[:1000], t[2000:]] * 5.0, unit="N",
                                   timestamps=stamps, description="grip force from a load cell"))
    path = tmp_path / "beh.nwb"
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


def test_kinematics_and_force_are_found_in_every_layout(behavior_file):
    with open_nwb(behavior_file) as (_io, nwb):
        kin = {c.path: c.kind for c in find_behavior(nwb, "kinematics")}
        assert kin == {"processing/behavior/Position/hand": "series",
                       "processing/behavior/CompassDirection/heading": "series",
                       "processing/behavior/JointAngles": "container"}  # members not repeated
        assert [c.path for c in find_behavior(nwb, "force")] == ["acquisition/grip_force"]
        signals = {s.source_path: s for s in read_behavior(nwb, "kinematics")}
        hand = signals["processing/behavior/Position/hand"]
        assert hand.channel_names == ["hand.x", "hand.y"] and hand.values.shape == (3000, 2)
        joints = signals["processing/behavior/JointAngles"]
        assert joints.channel_names == ["hip", "knee"]
        assert np.max(np.abs(joints.values)) == pytest.approx(1.0, abs=1e-3)  # conversion applied: mrad -> rad
        with pytest.raises(SignalNotFoundError, match="not a TimeSeries"):
            read_behavior(nwb, "kinematics", path="processing/behavior/nope")


def test_pose_estimation_reads_from_the_cached_spec():
    with open_nwb(SHARED / "ndxpose__0.3.0_poseestimation_one_camera.nwb") as (_io, nwb):
        signals = read_behavior(nwb, "kinematics")
    assert [s.neurodata_type for s in signals] == ["PoseEstimationSeries"] * 2
    assert signals[0].channel_names == ["front_left_paw.x", "front_left_paw.y"]


def test_to_bins_interpolates_anti_aliases_and_leaves_gaps_empty(behavior_file):
    fs, bin_size = 1000.0, 0.01
    t = np.arange(5000) / fs
    slow, fast = np.sin(2 * np.pi * 3 * t), 0.5 * np.sin(2 * np.pi * 200 * t + 0.7)
    sig = Signal(np.c_[slow, slow + fast], ["slow", "both"], "rad", "x", rate=fs)
    centres = 0.005 + np.arange(499) * bin_size
    binned = to_bins(sig, centres, bin_size)
    truth = np.sin(2 * np.pi * 3 * centres)
    inner = slice(10, -10)
    np.testing.assert_allclose(binned[inner, 0], truth[inner], atol=0.01)
    # 200 Hz sampled every 10 ms would alias to 0 Hz (a constant 0.5 sin(0.7 + ...)); it is filtered out first
    np.testing.assert_allclose(binned[inner, 1], truth[inner], atol=0.02)
    naive = np.interp(centres, t, slow + fast)
    assert np.max(np.abs(naive[inner] - truth[inner])) > 0.2
    # a signal slower than the bins is interpolated; bins outside it are NaN
    coarse = Signal(np.sin(2 * np.pi * 0.5 * t[::50])[:, None], ["c"], "rad", "x", rate=20.0)
    out = to_bins(coarse, np.r_[centres, 10.0], bin_size)
    np.testing.assert_allclose(out[20:-20, 0], np.sin(2 * np.pi * 0.5 * centres[20:-19]), atol=0.01)
    assert np.isnan(out[-1, 0])
    with open_nwb(behavior_file) as (_io, nwb):
        force, = read_behavior(nwb, "force")
    centres = 0.005 + np.arange(300) * bin_size
    binned = to_bins(force, centres, bin_size)
    gap = (centres > 0.999) & (centres < 2.0)
    assert np.all(np.isnan(binned[gap])) and np.all(np.isfinite(binned[~gap]))
    np.testing.assert_allclose(binned[~gap, 0], centres[~gap] * 5.0, atol=0.02)


def test_to_bins_covers_half_a_sample_period_beyond_the_first_and_last_samples():
    """A sample at t_j covers [t_j - p/2, t_j + p/2) (docs/science.md, Bin times): bins centred
    within half a period of a segment's ends hold its end values; those further out are NaN."""
    t = 1.0 + np.arange(40) / 20.0  # 20 Hz, 1.00 - 2.95 s
    sig = Signal(np.c_[t * 2.0], ["f"], "N", "x", timestamps=t)
    centres = np.array([0.97, 0.98, 1.5, 2.97, 2.98])
    out = to_bins(sig, centres, 0.01)[:, 0]
    assert np.isnan(out[0]) and np.isnan(out[-1])
    np.testing.assert_allclose(out[1:-1], [2.0, 3.0, 5.9])
