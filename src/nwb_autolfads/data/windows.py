"""Chopping continuous data into overlapping windows and merging window outputs back.

:func:`chop` and :func:`merge` are pure and inverse: ``merge(chop(x), ...) == x`` wherever a
window covers ``x``. In each overlap the earlier window is weighted by ``1 - r**p`` and the
later one by ``r**p`` (``r`` rising from 0 to 1 across the overlap), so merged outputs are
continuous. Samples that no window covers come back as NaN, never dropped silently.

Data with gaps is handled as a list of segments; windows never span two segments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["window_starts", "chop", "merge", "WindowIndex", "chop_segments", "merge_segments", "fitted_window",
           "MIN_FITTED_WINDOW", "SegmentMerger"]

MIN_FITTED_WINDOW = 10
"""Fewest bins :func:`fitted_window` shortens a window to."""


def window_starts(n_bins: int, window: int, overlap: int) -> np.ndarray:
    """Start bins of windows covering ``n_bins`` with at least ``overlap`` bins of overlap.

    Windows are spread evenly from 0 to ``n_bins - window`` so the last one ends exactly at the
    end; the number of windows is the smallest that keeps the overlap >= ``overlap``. Returns an
    empty array when ``n_bins < window``.
    """
    if n_bins < window:
        return np.zeros(0, dtype=np.int64)
    if n_bins == window:
        return np.zeros(1, dtype=np.int64)
    stride = window - overlap
    n_windows = int(np.ceil((n_bins - window) / stride)) + 1
    return np.round(np.linspace(0, n_bins - window, n_windows)).astype(np.int64)


def fitted_window(lengths: list[int] | np.ndarray, window: int, min_window: int = MIN_FITTED_WINDOW,
                  max_left_out: float = 0.01) -> int:
    """Window length (bins) for segments of ``lengths`` bins, windows never crossing segments.

    ``window`` when the segments shorter than it hold at most ``max_left_out`` of all bins (a
    short segment after a gap in a long recording is then left out, not the whole recording
    modelled in short windows); otherwise the length of the shortest segment of at least
    ``min_window`` bins, so that every segment that long is covered. ``window`` too when no
    segment of ``min_window`` bins or more is shorter than it.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    short = lengths[lengths < window]
    if total == 0 or short.sum() <= max_left_out * total:
        return int(window)
    usable = short[short >= min_window]
    return int(usable.min()) if usable.size else int(window)


def chop(x: np.ndarray, window: int, overlap: int) -> tuple[np.ndarray, np.ndarray]:
    """(n_bins, ...) -> windows (n_windows, window, ...) and their start bins."""
    starts = window_starts(x.shape[0], window, overlap)
    if starts.size == 0:
        return np.zeros((0, window, *x.shape[1:]), dtype=x.dtype), starts
    idx = starts[:, None] + np.arange(window)[None, :]
    return x[idx], starts


def _weights(starts: np.ndarray, window: int, power: float) -> np.ndarray:
    """(n_windows, window) merge weights: ramps up over the overlap with the previous window and
    down over the overlap with the next one."""
    w = np.ones((starts.size, window))
    for i in range(starts.size):
        if i > 0:
            n = int(starts[i - 1] + window - starts[i])  # overlap with previous
            if n > 0:
                r = (np.arange(n) + 1.0) / (n + 1.0)
                w[i, :n] = r**power
        if i + 1 < starts.size:
            n = int(starts[i] + window - starts[i + 1])  # overlap with next
            if n > 0:
                r = (np.arange(n) + 1.0) / (n + 1.0)
                w[i, window - n:] = 1.0 - r**power
    return w


def merge(windows: np.ndarray, starts: np.ndarray, n_bins: int, power: float = 2.0) -> np.ndarray:
    """Inverse of :func:`chop`: (n_windows, window, ...) -> (n_bins, ...), NaN where uncovered."""
    window = windows.shape[1]
    tail = windows.shape[2:]
    out = np.zeros((n_bins, *tail), dtype=np.float64)
    total = np.zeros(n_bins, dtype=np.float64)
    if starts.size:
        w = _weights(np.asarray(starts), window, power)
        for i, s in enumerate(starts):
            ww = w[i].reshape(window, *([1] * len(tail)))
            out[s:s + window] += ww * windows[i]
            total[s:s + window] += w[i]
    covered = total > 0
    out[covered] /= total[covered].reshape(-1, *([1] * len(tail)))
    out[~covered] = np.nan
    return out


@dataclass(frozen=True)
class WindowIndex:
    """Where each window of :func:`chop_segments` came from."""

    segment: np.ndarray  # (n_windows,) segment number
    start: np.ndarray  # (n_windows,) start bin within the segment
    segment_lengths: tuple[int, ...]
    window: int

    @property
    def n_windows(self) -> int:
        return int(self.segment.size)


def chop_segments(segments: list[np.ndarray], window: int, overlap: int) -> tuple[np.ndarray, WindowIndex]:
    """Chop every segment; windows never cross segment boundaries."""
    all_windows, seg_ids, starts = [], [], []
    for k, seg in enumerate(segments):
        w, s = chop(seg, window, overlap)
        all_windows.append(w)
        seg_ids.append(np.full(s.size, k, dtype=np.int64))
        starts.append(s)
    tail = segments[0].shape[1:] if segments else ()
    windows = (np.concatenate(all_windows, axis=0) if all_windows
               else np.zeros((0, window, *tail), dtype=np.float32))
    index = WindowIndex(segment=np.concatenate(seg_ids) if seg_ids else np.zeros(0, np.int64),
                        start=np.concatenate(starts) if starts else np.zeros(0, np.int64),
                        segment_lengths=tuple(int(s.shape[0]) for s in segments), window=window)
    return windows, index


def merge_segments(windows: np.ndarray, index: WindowIndex, power: float = 2.0, offset: int = 0) -> list[np.ndarray]:
    """Inverse of :func:`chop_segments`: one merged array per segment. ``offset``: the outputs
    start that many bins into each chopped window (a lead-in seen only as input), and are
    shorter by as much."""
    out = []
    for k, n_bins in enumerate(index.segment_lengths):
        sel = index.segment == k
        out.append(merge(windows[sel], index.start[sel] + offset, n_bins, power))
    return out


class SegmentMerger:
    """:func:`merge_segments` done batch by batch into preallocated arrays: window outputs are
    added as they are computed (``add``), so the outputs of all windows are never held at once.
    ``widths``: the channel count of each output merged (e.g. mean, factors, inputs);
    ``power`` and ``offset`` as in :func:`merge_segments`. :meth:`result` equals
    ``merge_segments`` of the stacked window outputs (float64, NaN where no window covers)."""

    def __init__(self, index: WindowIndex, widths: list[int] | tuple[int, ...], power: float = 2.0,
                 offset: int = 0) -> None:
        self.index, self.power, self.offset = index, power, offset
        self.sums = [[np.zeros((n, w)) for n in index.segment_lengths] for w in widths]
        self.total = [np.zeros(n) for n in index.segment_lengths]
        # each window's overlap with the previous and the next window of its segment (0 at its ends)
        seg, start = index.segment, index.start
        same = seg[1:] == seg[:-1]
        gap = np.where(same, start[1:] - start[:-1], np.iinfo(np.int64).max // 2)
        self._gap_prev = np.r_[np.iinfo(np.int64).max // 2, gap]  # start distances; overlap = window - distance
        self._gap_next = np.r_[gap, np.iinfo(np.int64).max // 2]

    def add(self, first: int, *outputs: np.ndarray) -> None:
        """Add the outputs (each (b, T, width)) of windows ``first`` to ``first + b`` (in the
        order of :func:`chop_segments`)."""
        idx = self.index
        b, window = outputs[0].shape[:2]
        rows = slice(first, first + b)
        # the weights of :func:`_weights`: up over the overlap with the previous window, down over
        # the overlap with the next one (which wins where the two meet)
        j = np.arange(window)[None, :]
        n_prev = np.maximum(window - self._gap_prev[rows], 0)[:, None]
        n_next = np.maximum(window - self._gap_next[rows], 0)[:, None]
        w = np.where(j < n_prev, ((j + 1.0) / (n_prev + 1.0)) ** self.power, 1.0)
        w = np.where(j >= window - n_next, 1.0 - ((j - (window - n_next) + 1.0) / (n_next + 1.0)) ** self.power, w)
        for r, i in enumerate(range(first, first + b)):
            k, s = int(idx.segment[i]), int(idx.start[i]) + self.offset
            self.total[k][s:s + window] += w[r]
            for sums, out in zip(self.sums, outputs):
                sums[k][s:s + window] += w[r][:, None] * out[r]

    def result(self) -> tuple[list[list[np.ndarray]], list[np.ndarray]]:
        """(per output, per segment merged (n_bins, width) float64; per segment the coverage
        (n_bins, 1): 1 where a window covers the bin, NaN elsewhere). The sums are divided in
        place: call once."""
        covered = [t > 0 for t in self.total]
        for sums in self.sums:
            for k, a in enumerate(sums):
                a[covered[k]] /= self.total[k][covered[k], None]
                a[~covered[k]] = np.nan
        return self.sums, [np.where(c, 1.0, np.nan)[:, None] for c in covered]
