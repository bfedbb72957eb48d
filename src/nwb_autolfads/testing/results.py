"""Results for tests: a run record of random numbers, and ground truth read into bins."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nwb_autolfads.data.timebase import regular_times

__all__ = ["read_truth", "mock_run_record"]


def read_truth(path: str | Path, times: np.ndarray, bin_size: float, name: str = "true_activations") -> np.ndarray:
    """A ground-truth series of a synthetic file, averaged into the model's bins.

    Parameters
    ----------
    path : str or pathlib.Path
        A file written by :func:`write_emg_nwb` (or the other writers of this module).
    times : numpy.ndarray, shape (n,)
        Bin centres in seconds (e.g. ``RunResult.times``).
    bin_size : float
        Bin width in seconds.
    name : str
        The series in ``processing/ground_truth``: ``true_activations`` (dimensionless), or
        ``true_rates`` of the units (Hz).

    Returns
    -------
    numpy.ndarray, shape (n, M)
        The mean true value in each bin; NaN where a bin holds no true sample.
    """
    from pynwb import NWBHDF5IO

    with NWBHDF5IO(str(path), "r") as io:
        ts = io.read().processing["ground_truth"][name]
        truth = np.asarray(ts.data[:], dtype=float)
        t = (np.asarray(ts.timestamps[:]) if ts.timestamps is not None
             else regular_times(ts.starting_time, truth.shape[0], ts.rate))
    from nwb_autolfads.evaluation.comparison import bin_mean

    return bin_mean(t, truth, np.asarray(times, dtype=float), bin_size)


def mock_run_record(n_bins: int = 100, n_channels: int = 6, unit_ids: list[int] | None = None, bin_size: float = 0.01,
                    t0: float = 0.005, times: np.ndarray | None = None, emg_object_id: str | None = None,
                    seed: int = 0, name: str | None = None, pbt: bool = True, interval: float | None = None):
    """A :class:`~nwb_autolfads.io.writing.RunRecord` of random numbers with every field filled:
    ``n_channels`` EMG activations (0 for none) and, with ``unit_ids``, firing rates of those
    rows of the Units table; with ``interval``, the bounds of a credible interval of that
    probability around each (random, from 0.5 to 1 and from 1 to 1.5 times the estimate).
    For writing/reading tests without training anything."""
    from nwb_autolfads.io.writing import RunRecord

    rng = np.random.default_rng(seed)
    times = regular_times(t0, n_bins, 1.0 / bin_size) if times is None else np.asarray(times, dtype=float)
    n_bins = times.size
    n_windows = max(1, n_bins // 20)
    history = [{"step": 10 * (e + 1), "train_nll": 1.0 / (e + 1), "valid_nll": 1.1 / (e + 1),
                "smoothed_valid_nll": 1.2 / (e + 1), "lr": 0.004} for e in range(5)]
    pbt_history = [{"generation": g, "member": m, "lr": 0.004 * (1 + m), "kl_co_scale": 1e-4, "metric": 1.0 / (g + m + 1),
                    "parent_member": -1 if g == 0 else m} for g in range(2) for m in range(3)] if pbt else None
    record = RunRecord(
        times=times, bin_size=bin_size, factors=rng.random((n_bins, 4)).astype(np.float32),
        inferred_inputs=rng.random((n_bins, 2)).astype(np.float32), description="mock run", config={"seed": seed},
        software={"nwb_autolfads": "test"}, hyperparameters={"lr": 0.004}, metrics={"steps": 50},
        seed=seed, started="2026-01-01T00:00:00+00:00", finished="2026-01-01T00:01:00+00:00",
        source_identifier="source-id", source_sha256="0" * 64,
        modalities="+".join(m for m, on in (("emg", n_channels > 0), ("spikes", bool(unit_ids))) if on),
        activations=rng.random((n_bins, n_channels)).astype(np.float32) if n_channels else None,
        channel_names=[f"m{i}" for i in range(n_channels)], unit="volts",
        scales=rng.random(n_channels) if n_channels else None, activations_description="mock activations",
        rates=rng.random((n_bins, len(unit_ids))).astype(np.float32) * 20 if unit_ids else None,
        unit_ids=list(unit_ids or []), rates_description="mock rates",
        ic_mean=rng.random((n_windows, 3)).astype(np.float32), ic_times=times[::20][:n_windows],
        source_paths=["acquisition/EMG"], source_object_ids=[emg_object_id or ""], emg_object_id=emg_object_id,
        preprocessing={"steps": ["mock"]}, history=history, pbt_history=pbt_history, command="pytest",
        git_revision=None, name=name)
    if interval is not None:  # drawn from their own generator: the other fields do not depend on ``interval``
        spread = np.random.default_rng(seed + 1)
        record.interval = interval
        for kind, estimate in (("activations", record.activations), ("rates", record.rates)):
            if estimate is not None:
                setattr(record, f"{kind}_lower", (estimate * spread.uniform(0.5, 1.0, estimate.shape)).astype(np.float32))
                setattr(record, f"{kind}_upper", (estimate * spread.uniform(1.0, 1.5, estimate.shape)).astype(np.float32))
    return record
