"""Kinematics and force: reading them, and resampling them onto the model's time bins.

Kinematics are SpatialSeries (in Position or CompassDirection), series in a
BehavioralTimeSeries (one 2-D series, or one 1-D series per joint), ndx-pose
PoseEstimationSeries (read from the spec cached in the file: ndx-pose need not be installed),
or any TimeSeries whose name or description says joint/angle/position/marker...; force is any
TimeSeries that says force/torque/load cell/grip. Every reader honours timestamps vs
starting_time + rate, conversion/offset and gaps in time (see :mod:`nwb_autolfads.io.series`).

:func:`to_bins` puts a signal on bin centres: a zero-phase low-pass below the bins' Nyquist
frequency first when the signal is sampled faster than the bins (anti-aliasing), then linear
interpolation at the centres, separately in every segment (a segment covers half a sample
period beyond its first and last samples, see :func:`to_bins`); bins outside the signal's
segments are NaN.
"""

from __future__ import annotations

import numpy as np
from scipy import signal as sps

from nwb_autolfads.errors import SignalNotFoundError
from nwb_autolfads.io.reading import Candidate
from nwb_autolfads.io.series import iter_series, modality_of, read_candidate
from nwb_autolfads.data.signals import Signal, split_segments

__all__ = ["find_behavior", "read_behavior", "to_bins"]

MODALITIES = ("kinematics", "force")


def find_behavior(nwbfile, modality: str = "kinematics", path: str | None = None) -> list[Candidate]:
    """The candidates of ``modality`` (or the one at ``path``). A container of 1-D series is
    preferred over its members; members of a container listed as a whole are not repeated."""
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}")
    candidates = list(iter_series(nwbfile))
    if path is not None:
        wanted = path.strip("/")
        for cand in candidates:
            if cand.path == wanted:
                return [cand]
        raise SignalNotFoundError(f"{path!r} is not a TimeSeries in this file: available series are "
                                  f"{', '.join(c.path for c in candidates) or 'none'}")
    found = [c for c in candidates if modality_of(c) == modality]
    containers = {c.path for c in found if c.kind == "container"}
    return [c for c in found if c.kind == "container" or c.path.rsplit("/", 1)[0] not in containers]


def read_behavior(nwbfile, modality: str = "kinematics", path: str | None = None) -> list[Signal]:
    """Every kinematic (or force) signal of the file, or the one at ``path``. Channel names
    are ``<series>.<column>`` for multi-column series (x, y, z for 2-3 columns)."""
    signals = []
    for cand in find_behavior(nwbfile, modality, path):
        sig = read_candidate(cand).load()
        if cand.kind == "series":
            base = cand.path.rsplit("/", 1)[-1]
            names = sig.channel_names
            if sig.n_channels in (2, 3) and all(n.startswith("ch") for n in names):
                names = ["x", "y", "z"][:sig.n_channels]
            sig.channel_names = [base if sig.n_channels == 1 else f"{base}.{n}" for n in names]
        signals.append(sig)
    return signals


def to_bins(sig: Signal, centres: np.ndarray, bin_size: float, gap_factor: float = 1.5,
            order: int = 4) -> np.ndarray:
    """``sig`` at the bin ``centres`` (seconds): (n_bins, n_channels) float64, NaN where the
    signal has no data (outside its segments, or NaN samples).

    A sample is the signal's value at its timestamp t_j and covers [t_j - p/2, t_j + p/2) (p the
    sample period; docs/science.md, Bin times): the low-passed signal is read at each centre
    (no offset), and a segment covers the centres from half a period before its first sample to
    half a period after its last (its end values held there)."""
    centres = np.asarray(centres, dtype=float)
    times = sig.times()
    values = np.asarray(sig.values, dtype=float)
    out = np.full((centres.size, sig.n_channels), np.nan)
    segments = split_segments(times, gap_factor) if sig.timestamps is not None else [slice(0, sig.n_samples)]
    fs = sig.sampling_rate()
    cutoff = 0.4 / bin_size  # 80% of the bins' Nyquist frequency
    for seg in segments:
        t, x = times[seg], values[seg]
        if t.size < 2:
            continue
        if fs > 2 * cutoff * 1.05:  # faster than the bins: low-pass first so nothing aliases
            sos = sps.butter(order, cutoff, fs=fs, output="sos")
            pad = 3 * (2 * len(sos) + 1)
            if t.size > pad:
                finite = np.isfinite(x)
                filled = np.where(finite, x, 0.0)
                x = np.where(finite, sps.sosfiltfilt(sos, filled, axis=0), np.nan)
        half = 0.5 / fs
        inside = (centres >= t[0] - half) & (centres < t[-1] + half)
        for k in range(sig.n_channels):
            out[inside, k] = np.interp(centres[inside], t, x[:, k])
    return out
