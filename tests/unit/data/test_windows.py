import numpy as np
import pytest

from nwb_autolfads.data.windows import _weights, chop, chop_segments, merge, merge_segments, window_starts


@pytest.mark.parametrize("n_bins", [50, 51, 89, 90, 131, 1000, 1234])
@pytest.mark.parametrize("window, overlap", [(50, 10), (50, 0), (20, 4), (50, 30)])
def test_starts_cover_everything_with_enough_overlap(n_bins, window, overlap):
    starts = window_starts(n_bins, window, overlap)
    assert starts[0] == 0 and starts[-1] + window == n_bins
    assert np.all(np.diff(starts) <= window - overlap)
    assert np.all(np.diff(starts) > 0)


def test_too_short_gives_no_window():
    assert window_starts(49, 50, 10).size == 0
    w, s = chop(np.zeros((49, 3)), 50, 10)
    assert w.shape == (0, 50, 3) and s.size == 0


@pytest.mark.parametrize("n_bins", [50, 77, 130, 1000])
def test_merge_inverts_chop(n_bins):
    x = np.random.default_rng(n_bins).normal(size=(n_bins, 3))
    w, s = chop(x, 50, 10)
    assert w.shape[1:] == (50, 3)
    np.testing.assert_allclose(merge(w, s, n_bins), x)


def test_weights_sum_to_one_and_follow_the_ramp():
    starts = window_starts(130, 50, 10)
    w = _weights(starts, 50, 2.0)
    total = np.zeros(130)
    for i, s in enumerate(starts):
        total[s:s + 50] += w[i]
    np.testing.assert_allclose(total, 1.0)
    overlap = starts[0] + 50 - starts[1]
    r = (np.arange(overlap) + 1) / (overlap + 1)
    np.testing.assert_allclose(w[1, :overlap], r**2)
    np.testing.assert_allclose(w[0, 50 - overlap:], 1 - r**2)


def test_merge_blends_in_overlaps():
    # two windows with constant outputs 0 and 1: the overlap ramps smoothly from 0 to 1
    starts = np.array([0, 40])
    windows = np.stack([np.zeros((50, 1)), np.ones((50, 1))])
    out = merge(windows, starts, 90, power=2.0)[:, 0]
    assert np.all(out[:40] == 0) and np.all(out[50:] == 1)
    assert np.all(np.diff(out[40:50]) > 0)


def test_uncovered_bins_are_nan():
    out = merge(np.ones((1, 10, 2)), np.array([0]), 15)
    assert np.all(out[:10] == 1) and np.all(np.isnan(out[10:]))


def test_segments_never_share_a_window():
    segs = [np.arange(100.0)[:, None], 1000 + np.arange(30.0)[:, None], 5000 + np.arange(60.0)[:, None]]
    windows, index = chop_segments(segs, 50, 10)
    assert index.segment_lengths == (100, 30, 60)
    assert set(index.segment.tolist()) == {0, 2}  # the 30-bin segment is too short
    for k in range(windows.shape[0]):
        span = windows[k, :, 0]
        assert span.max() - span.min() == 49  # contiguous within one segment
    merged = merge_segments(windows, index)
    np.testing.assert_allclose(merged[0], segs[0])
    assert np.all(np.isnan(merged[1]))
    np.testing.assert_allclose(merged[2], segs[2])


def test_fitted_window_shortens_to_the_shortest_segment_only_when_short_segments_matter():
    from nwb_autolfads.data.windows import fitted_window

    assert fitted_window([45] * 20, 50) == 45  # trials all shorter than a window: one window each
    assert fitted_window([30, 60, 42, 55], 50) == 30  # unequal cycles: every one is covered
    assert fitted_window([112, 113, 112], 50) == 50  # they fit: unchanged
    assert fitted_window([100_000, 20], 50) == 50  # a short stretch after a gap: left out, not every window shortened
    assert fitted_window([3] * 50 + [40] * 10, 50) == 40  # stretches of a few bins are never a window
    assert fitted_window([3] * 50, 50) == 50  # nothing usable: the caller refuses
    for lengths in ([45] * 20, [30, 60, 42, 55], [3] * 50 + [40] * 10):
        w = fitted_window(lengths, 50)
        covered = sum(n for n in lengths if n >= w)
        assert covered == sum(n for n in lengths if n >= 10)


@pytest.mark.parametrize("offset", [0, 3])
@pytest.mark.parametrize("overlap", [5, 13])  # 13 of 16: a window's ramps up and down meet
def test_segment_merger_batch_by_batch_equals_merge_segments(offset, overlap):
    from nwb_autolfads.data.windows import SegmentMerger

    rng = np.random.default_rng(0)
    segs = [rng.random((137, 2)), rng.random((30, 2)), rng.random((12, 2)), rng.random((91, 2))]
    windows, index = chop_segments(segs, 16 + offset, overlap + offset)
    outputs = rng.random((index.n_windows, 16, 3))  # what a model gives for the bins after the lead-in
    whole = merge_segments(outputs, index, 2.0, offset)
    merger = SegmentMerger(index, (3, 1), 2.0, offset)
    for first in range(0, index.n_windows, 4):  # batches that cross segment boundaries
        merger.add(first, outputs[first:first + 4], outputs[first:first + 4, :, :1])
    (merged, first_channel), coverage = merger.result()
    for k in range(len(segs)):
        np.testing.assert_allclose(merged[k], whole[k], rtol=1e-12, equal_nan=True)
        np.testing.assert_allclose(first_channel[k], whole[k][:, :1], rtol=1e-12, equal_nan=True)
        np.testing.assert_array_equal(np.isnan(coverage[k][:, 0]), np.isnan(whole[k][:, 0]))
    assert np.isnan(merged[2]).all() and np.isfinite(merged[0][offset:]).all()  # too short for a window
