"""evaluation.comparison: reading the source signals on the run's bins."""
import numpy as np


def test_behaviour_on_two_clocks_is_said_not_scored_never_dropped_silently(tmp_path):
    """A joint-angle container whose series are 5 ms apart cannot be read as one recording: the
    evaluation says kinematics are not scored and why (the error was once swallowed)."""
    from datetime import datetime, timezone

    from pynwb import NWBHDF5IO, NWBFile, TimeSeries
    from pynwb.behavior import BehavioralTimeSeries

    from nwb_autolfads.evaluation.comparison import _source_behavior
    from nwb_autolfads.io.reading import open_nwb

    nwb = NWBFile("k", "k", datetime(2024, 1, 1, tzinfo=timezone.utc))
    angles = BehavioralTimeSeries(name="JointAngles")
    for name, t0 in (("hip", 0.0), ("knee", 0.005)):
        angles.add_timeseries(TimeSeries(name=name, data=np.sin(np.arange(1000) / 50.0), unit="radians",
                                         starting_time=t0, rate=100.0, description="joint angle"))
    nwb.create_processing_module("behavior", "b").add(angles)
    with NWBHDF5IO(str(tmp_path / "k.nwb"), "w") as io:
        io.write(nwb)
    with open_nwb(tmp_path / "k.nwb") as (_io, f):
        out = _source_behavior(f, np.arange(0.005, 9.9, 0.01), 0.01)
    assert "kinematics" not in out
    assert len(out["unread"]) == 1 and out["unread"][0].startswith("kinematics not scored: ")
    assert "do not share one time base" in out["unread"][0]
