"""The common signal object every reader returns and every later stage consumes."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nwb_autolfads.errors import SignalError
from nwb_autolfads.data.timebase import Clock, TimeBase, analyse_timestamps, regular_time_base, regular_times

__all__ = ["Signal", "SeriesValues", "ChannelSelection", "split_segments", "VOLT_EXPONENTS", "volts_per_unit"]

VOLT_EXPONENTS = {"v": 0, "volt": 0, "volts": 0, "mv": -3, "millivolt": -3, "millivolts": -3, "uv": -6, "µv": -6,
                  "μv": -6, "microvolt": -6, "microvolts": -6, "nv": -9, "nanovolt": -9, "nanovolts": -9,
                  "kv": 3, "kilovolt": 3, "kilovolts": 3}
"""SI voltage spellings (lower case) and their power of ten in volts: data in another of them are converted."""


def volts_per_unit(unit: str) -> float | None:
    """Volts in one ``unit`` (an SI voltage spelling of :data:`VOLT_EXPONENTS`, any case), or None."""
    exponent = VOLT_EXPONENTS.get(str(unit).strip().lower())
    return None if exponent is None else 10.0 ** exponent


class SeriesValues:
    """Values of an NWB series read on demand, in physical units.

    Wraps one 2-D (or 1-D) dataset, or several 1-D datasets (one per channel), without loading
    them: indexing reads only the rows asked for (``values[a:b]`` -> float64 (b - a, n_channels))
    and applies ``conversion``, per-channel ``channel_conversion`` and ``offset``. This is how a
    30-minute, 10 kHz recording is preprocessed in chunks instead of as one array (and how a
    remote file is streamed). ``np.asarray(values)`` loads everything. Valid while the file it
    came from is open. ``transposed``: the one 2-D dataset is stored channels x time (read as
    time x channels).
    """

    ndim = 2
    dtype = np.dtype(np.float64)

    def __init__(self, columns: list, conversion: float = 1.0, channel_conversion: np.ndarray | None = None,
                 offset: float = 0.0, transposed: bool = False) -> None:
        self._columns = columns  # one 2-D dataset, or 1-D datasets of equal length
        self._transposed = bool(transposed) and len(columns) == 1 and len(columns[0].shape) == 2
        first = columns[0]
        n_ch = (first.shape[1] if len(first.shape) == 2 else 1) if len(columns) == 1 else len(columns)
        self.shape = (int(first.shape[0]), int(n_ch))
        if self._transposed:  # stored channels x time: rows of time are the dataset's columns
            self.shape = (int(first.shape[1]), int(first.shape[0]))
            n_ch = self.shape[1]
        self._scale = np.full(n_ch, float(conversion))
        if channel_conversion is not None:
            self._scale = self._scale * np.asarray(channel_conversion, dtype=float)
        self._offset = float(offset)

    def __len__(self) -> int:
        return self.shape[0]

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Samples ``start:stop`` of every channel, (stop - start, n_channels) float64."""
        start, stop = max(0, int(start)), min(self.shape[0], int(stop))
        if stop <= start:
            return np.zeros((0, self.shape[1]))
        if self._transposed:
            raw = np.asarray(self._columns[0][:, start:stop]).T
        elif len(self._columns) == 1:
            raw = np.asarray(self._columns[0][start:stop])
            raw = raw.reshape(raw.shape[0], -1)
        else:
            raw = np.stack([np.asarray(c[start:stop]) for c in self._columns], axis=1)
        with np.errstate(invalid="ignore", over="ignore"):  # inf x 0 in odd files: NaN, handled downstream
            out = raw.astype(np.float64) * self._scale[None, :]
            return out + self._offset if self._offset else out

    def __getitem__(self, key):
        rows, cols = key if isinstance(key, tuple) else (key, slice(None))
        if isinstance(rows, slice) and rows.step in (None, 1):
            start, stop, _ = rows.indices(self.shape[0])
            return self.rows(start, stop)[:, cols]
        return np.asarray(self)[rows, cols]

    def __array__(self, dtype=None, copy=None):
        out = self.rows(0, self.shape[0])
        return out if dtype is None else out.astype(dtype)


class ChannelSelection:
    """Some channels of :class:`SeriesValues` (or any array-like read by row slices), in a
    given order, still read on demand: ``sel[a:b]`` -> float64 (b - a, len(keep))."""

    ndim = 2
    dtype = np.dtype(np.float64)

    def __init__(self, values, keep: list[int]) -> None:
        self._values, self._keep = values, list(keep)
        self.shape = (int(values.shape[0]), len(self._keep))

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key):
        rows, cols = key if isinstance(key, tuple) else (key, slice(None))
        return np.asarray(self._values[rows], dtype=float)[:, self._keep][:, cols]

    def __array__(self, dtype=None, copy=None):
        out = self[0:self.shape[0]]
        return out if dtype is None else out.astype(dtype)


@dataclass
class Signal:
    """A multi-channel time series with its time base and where it came from.

    ``values`` has shape (n_samples, n_channels) in physical units (conversion and offset
    applied): an array, or :class:`SeriesValues` that reads rows from the file on demand. Time is either regular (``starting_time`` + ``rate``) or given by ``timestamps``.
    """

    values: np.ndarray | SeriesValues
    channel_names: list[str]
    unit: str
    source_path: str
    object_id: str | None = None
    neurodata_type: str = "TimeSeries"
    rate: float | None = None
    starting_time: float = 0.0
    timestamps: np.ndarray | None = None
    description: str = ""
    invalid_times: np.ndarray | None = None
    """(k, 2) start and stop times (s, the file's clock) of ``NWBFile.invalid_times``: periods the
    file marks as not to be analysed (e.g. an electrode disconnected); their samples are left out
    (:func:`~nwb_autolfads.data.artefacts.drop_invalid_times`). ``None`` or empty: none."""
    _timebases: dict = field(default_factory=dict, init=False, repr=False, compare=False)

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

    def times(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Sample times in seconds (the source's clock), of samples ``start:stop`` (all by default)."""
        stop = self.n_samples if stop is None else stop
        if self.timestamps is not None:
            return np.asarray(self.timestamps[start:stop], dtype=float)
        return regular_times(self.starting_time, stop - start, self.rate, first=start)

    def select(self, keep: list[int]) -> "Signal":
        """This signal with only the channels at positions ``keep``, in that order (the file is
        still read on demand: :class:`ChannelSelection`)."""
        from dataclasses import replace

        keep = [int(k) for k in keep]
        if keep == list(range(self.n_channels)):
            return self
        values = self.values[:, keep] if isinstance(self.values, np.ndarray) else ChannelSelection(self.values, keep)
        return replace(self, values=values, channel_names=[self.channel_names[k] for k in keep])

    def load(self) -> "Signal":
        """This signal with its values in memory (a no-op if they already are)."""
        if isinstance(self.values, np.ndarray):
            return self
        from dataclasses import replace
        return replace(self, values=np.asarray(self.values))

    def timebase(self, gap_factor: float = 1.5) -> TimeBase:
        """Rate, segments, resolution and jitter of the time base
        (:func:`~nwb_autolfads.data.timebase.analyse_timestamps`; computed once per ``gap_factor``).
        Raises :class:`SignalError` for bad timestamps."""
        if gap_factor not in self._timebases:
            if self.timestamps is None:
                tb = regular_time_base(float(self.rate), self.n_samples)
            else:
                try:
                    tb = analyse_timestamps(self.timestamps, gap_factor)
                except SignalError as exc:
                    raise SignalError(f"{self.source_path}: {exc}") from None
            self._timebases[gap_factor] = tb
        return self._timebases[gap_factor]

    def clock(self, seg: slice, gap_factor: float = 1.5) -> Clock:
        """True time of (fractional) sample indices of the segment ``seg``, counted from ``seg.start``."""
        tb = self.timebase(gap_factor)
        if self.timestamps is None:
            return Clock(None, tb.rate, self.starting_time + seg.start / tb.rate)
        return Clock(np.asarray(self.timestamps[seg.start:seg.stop], dtype=float), tb.rate)

    def sampling_rate(self) -> float:
        """Nominal rate (Hz): ``rate``, or the least-squares rate of the timestamps'
        segments (robust to float32 rounding, jitter and gaps; never the median step)."""
        if self.rate is not None:
            return float(self.rate)
        if self.n_samples < 2:
            raise SignalError(f"{self.source_path}: fewer than 2 samples, cannot tell the sampling rate")
        return float(self.timebase().rate)


def split_segments(times: np.ndarray, gap_factor: float = 1.5) -> list[slice]:
    """The segments of ``times``: a step larger than ``gap_factor`` sample periods plus
    the timestamps' resolution and jitter starts a new segment
    (:func:`~nwb_autolfads.data.timebase.analyse_timestamps`). Raises :class:`SignalError` for
    non-increasing timestamps."""
    return analyse_timestamps(times, gap_factor).segments
