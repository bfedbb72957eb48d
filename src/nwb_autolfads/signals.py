"""The common signal object every reader returns and every later stage consumes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import SignalError

__all__ = ["Signal", "split_segments"]


@dataclass
class Signal:
    """A multi-channel time series with its time base and where it came from.

    ``values`` has shape (n_samples, n_channels) in physical units (conversion and offset
    applied). Time is either regular (``starting_time`` + ``rate``) or given by ``timestamps``.
    """

    values: np.ndarray
    channel_names: list[str]
    unit: str
    source_path: str
    object_id: str | None = None
    neurodata_type: str = "TimeSeries"
    rate: float | None = None
    starting_time: float = 0.0
    timestamps: np.ndarray | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if self.values.ndim != 2:
            raise SignalError(f"{self.source_path}: expected 2-D data (time x channels), got shape "
                              f"{self.values.shape}")
        if len(self.channel_names) != self.values.shape[1]:
            raise SignalError(f"{self.source_path}: {len(self.channel_names)} channel names for "
                              f"{self.values.shape[1]} channels")
        if self.timestamps is None and (self.rate is None or not self.rate > 0):
            raise SignalError(f"{self.source_path}: neither timestamps nor a positive rate")

    @property
    def n_samples(self) -> int:
        return int(self.values.shape[0])

    @property
    def n_channels(self) -> int:
        return int(self.values.shape[1])

    def times(self) -> np.ndarray:
        """Sample times in seconds (the source's clock)."""
        if self.timestamps is not None:
            return np.asarray(self.timestamps, dtype=float)
        return self.starting_time + np.arange(self.n_samples) / float(self.rate)

    def sampling_rate(self) -> float:
        """Nominal rate: ``rate``, or 1 / median timestamp step."""
        if self.rate is not None:
            return float(self.rate)
        ts = self.times()
        if ts.size < 2:
            raise SignalError(f"{self.source_path}: fewer than 2 samples, cannot tell the sampling rate")
        return float(1.0 / np.median(np.diff(ts)))


def split_segments(times: np.ndarray, gap_factor: float = 1.5) -> list[slice]:
    """Contiguous stretches of ``times``: a step larger than ``gap_factor`` x the median step
    starts a new segment. Raises :class:`SignalError` for non-increasing timestamps."""
    times = np.asarray(times, dtype=float)
    if times.size == 0:
        return []
    if not np.all(np.isfinite(times)):
        raise SignalError("timestamps contain NaN or inf: fix the file's timestamps")
    if times.size == 1:
        return [slice(0, 1)]
    steps = np.diff(times)
    if np.any(steps <= 0):
        i = int(np.argmax(steps <= 0))
        raise SignalError(f"timestamps are not strictly increasing (sample {i + 1}: {float(times[i + 1])!r} after "
                          f"{float(times[i])!r}): sort the data or remove duplicate samples")
    median = float(np.median(steps))
    breaks = np.flatnonzero(steps > gap_factor * median) + 1
    edges = [0, *breaks.tolist(), times.size]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]
