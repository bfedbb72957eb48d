import numpy as np
import pytest

from nwb_autolfads.errors import SignalError
from nwb_autolfads.data.signals import Signal, split_segments


def test_regular_time_base():
    s = Signal(np.zeros((5, 2)), ["a", "b"], "V", "acquisition/x", rate=10.0, starting_time=2.0)
    np.testing.assert_allclose(s.times(), [2.0, 2.1, 2.2, 2.3, 2.4])
    assert s.sampling_rate() == 10.0


def test_timestamps_time_base():
    ts = np.array([0.0, 0.5, 1.0])
    s = Signal(np.zeros((3, 1)), ["a"], "V", "x", timestamps=ts)
    np.testing.assert_allclose(s.times(), ts)
    assert s.sampling_rate() == pytest.approx(2.0)


def test_signal_checks_shape_and_names():
    with pytest.raises(SignalError, match="2-D"):
        Signal(np.zeros(5), ["a"], "V", "x", rate=1.0)
    with pytest.raises(SignalError, match="channel names"):
        Signal(np.zeros((5, 2)), ["a"], "V", "x", rate=1.0)
    with pytest.raises(SignalError, match="rate"):
        Signal(np.zeros((5, 1)), ["a"], "V", "x")


def test_split_segments_at_gaps():
    t = np.concatenate([np.arange(10) * 0.1, 5 + np.arange(5) * 0.1])
    segs = split_segments(t)
    assert [(s.start, s.stop) for s in segs] == [(0, 10), (10, 15)]
    assert split_segments(np.arange(4.0)) == [slice(0, 4)]


@pytest.mark.parametrize("bad", [[0.0, 1.0, 1.0, 2.0], [0.0, 2.0, 1.0], [0.0, np.nan, 1.0]])
def test_split_segments_rejects_bad_timestamps(bad):
    with pytest.raises(SignalError, match="timestamps"):
        split_segments(np.array(bad))
