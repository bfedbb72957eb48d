"""The trials table of an NWB file: the alignment times of trial windows."""

from __future__ import annotations

import numpy as np
from pynwb import NWBFile

from nwb_autolfads.errors import ConfigError, SignalNotFoundError

__all__ = ["read_trial_times"]


def read_trial_times(nwbfile: NWBFile, column: str) -> np.ndarray:
    """The times in ``column`` of ``nwbfile.trials`` (seconds), one per trial, NaN kept."""
    trials = nwbfile.trials
    if trials is None or len(trials) == 0:
        raise SignalNotFoundError(f"--align-to {column!r}: the file has no trials table: leave out --align-to and "
                                  "--window to model the recording continuously")
    names = ["start_time", "stop_time", *[c for c in trials.colnames if c not in ("start_time", "stop_time")]]
    if column not in names:
        raise ConfigError(f"--align-to {column!r} is not a column of the trials table: choose one of "
                          f"{', '.join(names)}")
    values = np.asarray(trials[column].data[:])
    if values.ndim != 1 or not np.issubdtype(values.dtype, np.number):
        raise ConfigError(f"--align-to {column!r}: the column does not hold one time per trial: choose a time "
                          "column such as start_time")
    return values.astype(float)
