"""Synthetic spikes with known rates: Lorenz-driven trials, long recordings written block by
block, and spike times made wrong the way real files are."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from nwb_autolfads.testing.common import BlockSeries, lorenz_latent, write_nwb_atomically

__all__ = ["SPIKE_FAULTS", "spike_fault", "LorenzSpikes", "lorenz_spikes", "chunked_spikes_nwb"]

SPIKE_FAULTS = ("restart", "nan", "inf", "negative", "ms", "us", "late")


def spike_fault(spikes: np.ndarray, fault: str, duration: float) -> np.ndarray:
    """Ascending spike times ``spikes`` (s) of a session of ``duration`` s made wrong like real files:
    ``restart`` (the clock restarts at 0 halfway: the second half of the spikes is shifted back by
    the time of the first of them, so times drop once), ``nan``/``inf`` (every 10th time is
    NaN/inf), ``negative`` (all times shifted back by half the session), ``ms``/``us``
    (milliseconds/microseconds stored as seconds: times x 1e3/1e6), ``late`` (another clock: all times shifted past the end of
    the session by one session length)."""
    spikes = np.asarray(spikes, dtype=float).copy()
    if fault == "restart":
        half = spikes.size // 2
        spikes[half:] -= spikes[half] - 0.001
    elif fault in ("nan", "inf"):
        spikes[::10] = np.nan if fault == "nan" else np.inf
    elif fault == "negative":
        spikes -= duration / 2
    elif fault in ("ms", "us"):
        spikes *= 1e3 if fault == "ms" else 1e6
    elif fault == "late":
        spikes += 2 * duration
    else:
        raise ValueError(f"unknown spike fault {fault!r}: one of {', '.join(SPIKE_FAULTS)}")
    return spikes


@dataclass
class LorenzSpikes:
    counts: np.ndarray  # (trials, T, N) spike counts per bin
    rates: np.ndarray  # (trials, T, N) true rates in spikes per bin
    latents: np.ndarray  # (trials, T, 3) Lorenz state, mean-subtracted, scaled to max |x| = 1
    condition: np.ndarray  # (trials,) condition of each trial
    bin_size: float


def lorenz_spikes(n_conditions: int = 40, trials_per_condition: int = 10, n_bins: int = 50, n_neurons: int = 30,
                  bin_size: float = 0.01, base_rate: float = 5.0, steps_per_bin: int = 2, seed: int = 0) -> LorenzSpikes:
    """Poisson spikes driven by a Lorenz system, in trials (docs/science.md, Synthetic data).

    Sigma 10, rho 28, beta 8/3, Euler dt 0.006, 500 burn-in steps; one random initial state per
    condition; trajectories mean-subtracted and scaled to max 1; log-rates = W x +
    log(base_rate x bin_size) with W entries +-U(1, 2).

    Parameters
    ----------
    n_conditions : int
        Conditions (initial states).
    trials_per_condition : int
        Trials per condition (same rates, new spikes).
    n_bins : int
        Bins per trial.
    n_neurons : int
        Neurons.
    bin_size : float
        Bin width in seconds.
    base_rate : float
        Rate in Hz at a latent state of 0.
    steps_per_bin : int
        Euler steps per bin.
    seed : int
        Seed of every draw.

    Returns
    -------
    LorenzSpikes
        ``counts`` and ``rates`` (trials, n_bins, n_neurons) in spikes per bin, ``latents``
        (trials, n_bins, 3), ``condition`` (trials,), ``bin_size``.

    References
    ----------
    Sussillo D et al. (2016), arXiv:1608.06315; Pandarinath C et al. (2018), Nature Methods
    15:805.
    """
    rng = np.random.default_rng(seed)
    n_steps = n_bins * steps_per_bin
    states = np.stack([lorenz_latent(n_steps, rng) for _ in range(n_conditions)])  # z-scored (cond, steps, 3)
    states = states[:, ::steps_per_bin]  # (cond, T, 3)
    states = states - states.mean(axis=(0, 1))
    states = states / np.abs(states).max()
    W = rng.uniform(1.0, 2.0, size=(3, n_neurons)) * rng.choice([-1.0, 1.0], size=(3, n_neurons))
    log_rates = states @ W + np.log(base_rate * bin_size)
    rates_c = np.exp(log_rates)  # (cond, T, N)
    condition = np.repeat(np.arange(n_conditions), trials_per_condition)
    rates = rates_c[condition]
    counts = rng.poisson(rates).astype(np.float32)
    return LorenzSpikes(counts=counts, rates=rates, latents=states[condition], condition=condition,
                        bin_size=bin_size)


def _long_latent(latent: str, duration: float, latent_rate: float,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The latent of :func:`chunked_spikes_nwb` at ``latent_rate`` steps per second over
    ``duration`` seconds (and two steps more): (times (n_lat,), z (n_lat, 3), z-scored)."""
    n_lat = int(np.ceil(duration * latent_rate)) + 2
    t_lat = np.arange(n_lat) / latent_rate
    if latent == "lorenz":
        z = lorenz_latent(n_lat, rng)
    else:
        speed = 2 * np.pi * 1.5 * (1.0 + 0.3 * np.sin(2 * np.pi * t_lat / 37.0 + rng.uniform(0, 2 * np.pi)))
        phase = np.cumsum(speed) / latent_rate
        z = np.stack([np.cos(phase), np.sin(phase), np.sin(2 * np.pi * t_lat / 23.0)], axis=1)
        z = (z - z.mean(0)) / z.std(0)
    return t_lat, z


def _poisson_spike_times(rates, n: int, n_units: int, step: float, block: int, seed: int) -> list[list[np.ndarray]]:
    """Spike times (s) of ``n_units`` units on a grid of ``n`` steps of ``step`` s: Poisson counts of
    ``rates(a, c)`` (Hz, (c - a, n_units)) per step, each spike at a uniform time inside its step,
    drawn ``block`` steps at a time from seeds (``seed``, 91, block). Per unit, one array per block."""
    spikes: list[list[np.ndarray]] = [[] for _ in range(n_units)]
    for k, a in enumerate(range(0, n, block)):
        c = min(n, a + block)
        brng = np.random.default_rng([seed, 91, k])
        counts = brng.poisson(rates(a, c) * step)  # (steps, units)
        rows, cols = np.nonzero(counts)
        reps = counts[rows, cols]
        times = (a + np.repeat(rows, reps) + brng.random(int(reps.sum()))) * step
        units_of = np.repeat(cols, reps)
        order = np.lexsort((times, units_of))
        times, units_of = times[order], units_of[order]
        edges = np.searchsorted(units_of, np.arange(n_units + 1))
        for u in range(n_units):
            spikes[u].append(times[edges[u]:edges[u + 1]])
    return spikes


def chunked_spikes_nwb(path: str | Path, duration: float = 1200.0, n_units: int = 30, seed: int = 0,
                       latent: str = "lorenz", base_rate: float = 8.0, latent_rate: float = 150.0,
                       step: float = 0.001, truth_rate: float = 200.0, block_seconds: float = 10.0) -> Path:
    """Spike times of ``n_units`` units for ``duration`` seconds with their true rates,
    generated ``block_seconds`` at a time (memory grows with the number of spikes, never with
    units x time on a fine grid).

    ``latent``: ``lorenz`` (the z-scored Lorenz system of :func:`lorenz_latent` at
    ``latent_rate`` steps per second) or ``rotational`` (a 2-D rotation at 1.5 Hz whose speed
    drifts slowly, plus a slow third dimension; z-scored). Rates: ``base_rate`` x exp(W z) Hz
    with W entries +-U(0.3, 0.8) per unit and latent dimension. Spikes: Poisson counts on a grid
    of ``step`` seconds, each spike at a uniform time inside its step (seeds (``seed``, block)),
    in the Units table. The true rates (float32, Hz), the mean of the rate over each
    1/``truth_rate`` s, at the centres of those spans, are in
    ``processing/ground_truth/true_rates`` (read them into bins with :func:`read_truth`,
    ``name="true_rates"``). Returns ``path`` (written atomically).
    """
    from pynwb import NWBFile, TimeSeries
    from pynwb.misc import Units

    if latent not in ("lorenz", "rotational"):
        raise ValueError(f"unknown latent {latent!r}: lorenz or rotational")
    rng = np.random.default_rng(seed)
    per_truth = int(round(1.0 / (truth_rate * step)))
    if per_truth < 1 or abs(per_truth * step * truth_rate - 1.0) > 1e-9:
        raise ValueError(f"1/truth_rate ({1 / truth_rate} s) must be a whole number of steps ({step} s)")
    n_truth = int(duration * truth_rate)
    n = n_truth * per_truth  # grid steps (the duration rounded down to whole truth samples)
    t_lat, z = _long_latent(latent, duration, latent_rate, rng)
    W = rng.uniform(0.3, 0.8, size=(3, n_units)) * rng.choice([-1.0, 1.0], size=(3, n_units))

    def rates(a: int, c: int) -> np.ndarray:
        t = (np.arange(a, c) + 0.5) * step
        lat = np.stack([np.interp(t, t_lat, z[:, k]) for k in range(3)], axis=1)
        return base_rate * np.exp(lat @ W)

    block = max(per_truth, int(round(block_seconds / step)) // per_truth * per_truth)
    spikes = _poisson_spike_times(rates, n, n_units, step, block, seed)

    def truth_rows(a: int, c: int) -> np.ndarray:
        return rates(a * per_truth, c * per_truth).reshape(c - a, per_truth, n_units).mean(axis=1).astype(np.float32)

    nwb = NWBFile(session_description=f"synthetic spikes of {n_units} units driven by a {latent} latent "
                  "(nwb_autolfads.testing.chunked_spikes_nwb)",
                  identifier=f"synthetic-long-spikes-{duration:g}s-{n_units}u-{latent}-seed{seed}",
                  session_start_time=datetime(2024, 1, 1, 12, 0, tzinfo=timezone.utc),
                  experimenter=["nwb-autolfads test factory"], lab="synthetic", institution="synthetic")
    nwb.units = Units(name="units", description="simulated units", resolution=step)
    for u in range(n_units):
        nwb.add_unit(spike_times=np.concatenate(spikes[u]))
    del spikes
    gt = nwb.create_processing_module("ground_truth", "simulation ground truth (not a recording)")
    gt.add(TimeSeries(name="true_rates",
                      data=BlockSeries(truth_rows, n_truth, n_units, np.float32,
                                        max(1, int(block_seconds * truth_rate)), max(1, int(truth_rate))),
                      unit="Hz", starting_time=0.5 / truth_rate, rate=float(truth_rate),
                      description=f"true firing rate of each unit (simulation ground truth), the mean over each "
                      f"{1e3 / truth_rate:g} ms"))
    return write_nwb_atomically(Path(path), nwb)
