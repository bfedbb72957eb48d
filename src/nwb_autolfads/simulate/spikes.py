"""Spike trains with known firing rates, driven by three kinds of latent dynamics.

``chaotic_rnn``
    The first synthetic experiment of LFADS (Sussillo et al. 2016, arXiv:1608.06315;
    Pandarinath et al. 2018, Nature Methods): a continuous-time "data RNN" of ``rnn_dim`` (50)
    units, ``tau dx/dt = -x + gamma J tanh(x)`` with ``tau`` 25 ms, gain ``gamma`` 1.5 (gently
    chaotic) and ``J`` drawn once with entries N(0, 1/N) (so gamma J has entries
    N(0, gamma^2/N)). At N = 50 about half of the draws settle into a fixed point within a
    second (a finite-size effect): J is redrawn until four random starts still move after 3 s
    (mean temporal SD of tanh(x) over the last second > 0.1). Each condition starts from its own random state x0 ~ N(0, 1). In the paper
    the neurons are the network's units and their rates are tanh of the states rescaled to
    [0, max_rate] (30 spikes/s), sampled every 10 ms for 1 s trials. Here the equation is
    integrated with Euler steps of ``step`` (1 ms: tau / 25, finer than the paper's 10 ms
    sampling so the truth is smooth within a model bin); unit k's drive is ``x_k`` when
    ``n_units == rnn_dim`` (the paper) and otherwise a random unit-norm combination of the
    states; its rate is ``base_rate + (max_rate - base_rate) (1 + tanh(drive)) / 2``.
``lorenz``
    The Lorenz system (sigma 10, rho 28, beta 8/3) of :func:`nwb_autolfads.testing.lorenz_latent`
    at ``lorenz_rate`` Euler steps (dt 0.006) per second, one random initial state per
    condition; the 3-D trajectories are mean-subtracted and scaled to max |z| = 1 over the data
    set (as :func:`nwb_autolfads.testing.lorenz_spikes`); log-rates are ``W z`` with W entries
    +-U(1, 2), mapped per unit linearly onto [log base_rate, log max_rate] over its range.
``rotational``
    jPCA-like rotation: a 2-D state ``A_c e^{-t/decay} (cos(2 pi f t + phi_c), sin(...))`` at
    ``rotation_hz`` with a condition-dependent amplitude A_c ~ U(0.5, 1) and phase
    phi_c ~ U(0, 2 pi), plus a third, slowly decaying condition offset; mapped to rates like
    Lorenz.

Trial-structured data (``trials=True``): ``n_trials`` trials of ``trial_duration`` s cycling
through ``n_conditions`` conditions (trial i has condition i % n_conditions), separated by
``inter_trial`` s during which every unit fires at its rate for a zero latent. Continuous data
(``trials=False``): the same span without trial boundaries: the chaotic RNN and Lorenz run one
uninterrupted trajectory; the rotation keeps its phase and is re-kicked to a new amplitude every
``trial_duration`` s. Spikes are Poisson counts on a grid of ``step`` s, each spike at a uniform
time inside its step. The truth is the mean rate over each ``truth_bin`` (5 ms).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

__all__ = ["DYNAMICS", "SpikeSetting", "SimulatedSpikes", "simulate_spikes", "write_spikes_nwb"]

DYNAMICS = ("chaotic_rnn", "lorenz", "rotational")


@dataclass(frozen=True)
class SpikeSetting:
    """One simulated spikes data set (see the module docstring for the dynamics).

    Rates are in Hz between ``base_rate`` and ``max_rate``; durations in seconds."""

    name: str = "chaotic_rnn"
    dynamics: str = "chaotic_rnn"
    n_units: int = 50
    base_rate: float = 0.0
    max_rate: float = 30.0
    trials: bool = True
    n_trials: int = 800
    n_conditions: int = 400
    trial_duration: float = 1.0
    inter_trial: float = 0.0
    step: float = 0.001
    truth_bin: float = 0.005
    seed: int = 0
    rnn_dim: int = 50
    gamma: float = 1.5
    tau: float = 0.025
    lorenz_rate: float = 150.0
    rotation_hz: float = 2.0
    decay: float = 1.0

    def __post_init__(self) -> None:
        def bad(what: str, fix: str) -> None:
            raise ValueError(f"SpikeSetting {self.name!r}: {what} = {getattr(self, what)!r}: {fix}")

        numbers = {k: v for k, v in asdict(self).items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        for k, v in numbers.items():
            if not np.isfinite(v):
                bad(k, "use a finite number")
        if self.step <= 0:
            bad("step", "use a time step > 0 s (e.g. 0.001)")
        if self.dynamics not in DYNAMICS:
            bad("dynamics", f"use one of {', '.join(DYNAMICS)}")
        if self.n_units < 1:
            bad("n_units", "use at least 1 unit")
        if not 0 <= self.base_rate < self.max_rate:
            bad("base_rate", f"use 0 <= base_rate < max_rate ({self.max_rate} Hz)")
        if self.dynamics != "chaotic_rnn" and self.base_rate <= 0:
            bad("base_rate", "log-linear rates (lorenz, rotational) need base_rate > 0 Hz")
        if self.n_trials < 1 or self.n_conditions < 1:
            bad("n_trials", "use n_trials >= 1 and n_conditions >= 1")
        if self.trial_duration <= 0 or self.inter_trial < 0:
            bad("trial_duration", "use trial_duration > 0 and inter_trial >= 0 (seconds)")
        per = self.truth_bin / self.step
        if self.step <= 0 or per < 1 or abs(per - round(per)) > 1e-9:
            bad("truth_bin", f"use a whole number (>= 1) of steps of {self.step} s")
        for name in ("trial_duration", "inter_trial"):
            n = getattr(self, name) / self.truth_bin
            if abs(n - round(n)) > 1e-6:
                bad(name, f"use a whole number of truth bins ({self.truth_bin} s)")

    @property
    def period(self) -> float:
        """Seconds from one trial's start to the next."""
        return self.trial_duration + self.inter_trial

    @property
    def duration(self) -> float:
        """Seconds simulated (the last trial ends at the end)."""
        return self.n_trials * self.period - self.inter_trial


@dataclass
class SimulatedSpikes:
    """What :func:`simulate_spikes` returns.

    spike_times: one ascending array per unit (seconds); rates: (n_truth, n_units) true rates
    (Hz), the mean over each truth bin, centred at ``times`` (n_truth,) s; latent: (n_truth, D)
    the latent state at ``times``; trial_start / trial_stop / condition: (n_trials,) (start and
    stop in seconds); empty arrays for continuous data."""

    spike_times: list[np.ndarray]
    rates: np.ndarray
    times: np.ndarray
    latent: np.ndarray
    trial_start: np.ndarray
    trial_stop: np.ndarray
    condition: np.ndarray
    setting: SpikeSetting


def _chaotic_rnn(s: SpikeSetting, rng: np.random.Generator, n_steps_trial: int) -> np.ndarray:
    """States (n_conditions, n_steps_trial, N) per condition, or (1, n_total, N) when continuous."""
    N = s.rnn_dim
    a = s.step / s.tau

    def run(x: np.ndarray, n_steps: int, gJt: np.ndarray) -> np.ndarray:
        out = np.empty((x.shape[0], n_steps, N))
        for i in range(n_steps):
            out[:, i] = x
            x = x + a * (-x + np.tanh(x) @ gJt)
        return out

    for _ in range(100):  # a finite network often settles into a fixed point: draw J until it does not
        gJt = s.gamma * rng.normal(0.0, 1.0 / np.sqrt(N), size=(N, N)).T
        test = run(rng.normal(0.0, 1.0, size=(4, N)), int(round(3.0 / s.step)), gJt)
        if np.tanh(test[:, -int(round(1.0 / s.step)):]).std(axis=1).mean() > 0.1:
            break
    else:
        raise ValueError(f"SpikeSetting {s.name!r}: no chaotic network in 100 draws at gamma {s.gamma}: "
                         "raise gamma (e.g. 1.5-2.5) or rnn_dim")
    burn = int(round(1.0 / s.step))  # continuous: 1 s from the random start onto the attractor
    n_rows, n_steps = (s.n_conditions, n_steps_trial) if s.trials else (1, _n_steps(s) + burn)
    out = run(rng.normal(0.0, 1.0, size=(n_rows, N)), n_steps, gJt)
    return out if s.trials else out[:, burn:]


def _lorenz(s: SpikeSetting, rng: np.random.Generator, n_steps_trial: int) -> np.ndarray:
    from nwb_autolfads.testing import lorenz_latent

    def run(n_fine: int) -> np.ndarray:
        n_lat = int(np.ceil(n_fine * s.step * s.lorenz_rate)) + 2
        z = lorenz_latent(n_lat, rng)
        t_lat, t = np.arange(n_lat) / s.lorenz_rate, np.arange(n_fine) * s.step
        return np.stack([np.interp(t, t_lat, z[:, k]) for k in range(3)], axis=1)

    z = (np.stack([run(n_steps_trial) for _ in range(s.n_conditions)]) if s.trials
         else run(_n_steps(s))[None])
    z = z - z.mean(axis=(0, 1))
    return z / np.abs(z).max()


def _rotational(s: SpikeSetting, rng: np.random.Generator, n_steps_trial: int) -> np.ndarray:
    amp = rng.uniform(0.5, 1.0, size=s.n_conditions)
    phase = rng.uniform(0.0, 2 * np.pi, size=s.n_conditions)
    offset = rng.uniform(-1.0, 1.0, size=s.n_conditions)

    def trial(t: np.ndarray, c: np.ndarray, ph: np.ndarray) -> np.ndarray:
        env = np.exp(-t / s.decay)
        return np.stack([amp[c] * env * np.cos(ph), amp[c] * env * np.sin(ph),
                         offset[c] * np.exp(-t / (3 * s.decay))], axis=-1)

    if s.trials:
        t = np.arange(n_steps_trial) * s.step
        c = np.arange(s.n_conditions)
        return trial(t[None, :], c[:, None], 2 * np.pi * s.rotation_hz * t[None, :] + phase[:, None])
    t = np.arange(_n_steps(s)) * s.step
    k = np.minimum((t // s.period).astype(int), s.n_trials - 1)  # kick index
    return trial(t - k * s.period, k % s.n_conditions, 2 * np.pi * s.rotation_hz * t)[None]


def _n_steps(s: SpikeSetting) -> int:
    return int(round(s.duration / s.step))


def _rates_from(latent: np.ndarray, s: SpikeSetting, rng: np.random.Generator
                ) -> Callable[[np.ndarray], np.ndarray]:
    """A function latent (..., D) -> rates (..., n_units) in Hz, drawn once for the data set."""
    D = latent.shape[-1]
    lo, hi = s.base_rate, s.max_rate
    if s.dynamics == "chaotic_rnn":
        if s.n_units == D:
            W = np.eye(D)
        else:
            W = rng.normal(size=(D, s.n_units))
            W /= np.linalg.norm(W, axis=0, keepdims=True)
        return lambda z: lo + (hi - lo) * 0.5 * (1.0 + np.tanh(z @ W))
    W = rng.uniform(1.0, 2.0, size=(D, s.n_units)) * rng.choice([-1.0, 1.0], size=(D, s.n_units))
    drive = latent.reshape(-1, D) @ W
    d0, d1 = drive.min(axis=0), drive.max(axis=0)
    span = np.log(hi / lo)
    return lambda z: lo * np.exp(span * np.clip((z @ W - d0) / (d1 - d0), 0.0, 1.0))


def simulate_spikes(setting: SpikeSetting) -> SimulatedSpikes:
    """Simulate ``setting``: spike times, true rates and latent (see the module docstring).

    Deterministic in ``setting.seed``. Memory: the fine-grid latent of one condition set plus the
    truth ((duration / truth_bin) x n_units float32); spikes are drawn trial by trial."""
    s = setting
    rng = np.random.default_rng([s.seed, 15])
    n_trial = int(round(s.trial_duration / s.step))
    make = {"chaotic_rnn": _chaotic_rnn, "lorenz": _lorenz, "rotational": _rotational}[s.dynamics]
    lat = make(s, rng, n_trial)  # (conditions, n_trial, D) or (1, n_total, D)
    rate_of = _rates_from(lat, s, rng)
    per = int(round(s.truth_bin / s.step))
    n_total = _n_steps(s)
    D = lat.shape[-1]
    n_truth = n_total // per
    rates = np.empty((n_truth, s.n_units), np.float32)
    latent = np.empty((n_truth, D), np.float32)
    srng = np.random.default_rng([s.seed, 16])
    spikes: list[list[np.ndarray]] = [[] for _ in range(s.n_units)]

    def emit(a: int, z: np.ndarray) -> None:
        """Steps a.. of the fine grid with latent z (n, D): truth rows and spikes."""
        r = rate_of(z)  # (n, U) Hz
        n = z.shape[0]
        rates[a // per:(a + n) // per] = r.reshape(n // per, per, -1).mean(axis=1)
        latent[a // per:(a + n) // per] = z[per // 2::per]
        counts = srng.poisson(r * s.step)
        rows, cols = np.nonzero(counts)
        reps = counts[rows, cols]
        times = (a + np.repeat(rows, reps) + srng.random(int(reps.sum()))) * s.step
        units_of = np.repeat(cols, reps)
        order = np.argsort(units_of, kind="stable")
        edges = np.searchsorted(units_of[order], np.arange(s.n_units + 1))
        times = times[order]
        for u in range(s.n_units):
            spikes[u].append(times[edges[u]:edges[u + 1]])

    if s.trials:
        n_iti = int(round(s.inter_trial / s.step))
        rest = np.zeros((n_iti, D))
        for i in range(s.n_trials):
            a = int(round(i * s.period / s.step))
            emit(a, lat[i % s.n_conditions])
            if n_iti and i < s.n_trials - 1:
                emit(a + n_trial, rest)
        start = np.arange(s.n_trials) * s.period
        stop, condition = start + s.trial_duration, np.arange(s.n_trials) % s.n_conditions
    else:
        block = max(per, int(round(10.0 / s.step)) // per * per)
        for a in range(0, n_total, block):
            emit(a, lat[0, a:a + block])
        start = stop = np.zeros(0)
        condition = np.zeros(0, int)
    times = (np.arange(n_truth) + 0.5) * s.truth_bin
    return SimulatedSpikes(spike_times=[np.sort(np.concatenate(p)) for p in spikes], rates=rates, times=times,
                           latent=latent, trial_start=start, trial_stop=stop, condition=condition, setting=s)


def write_spikes_nwb(path: str | Path, setting: SpikeSetting) -> Path:
    """Simulate ``setting`` and write it as an NWB file at ``path`` (atomically).

    The file holds the Units table (spike times in seconds), a trials table (``start_time``,
    ``stop_time``, ``condition``) when ``setting.trials``, and the ground truth in the
    ``ground_truth`` processing module like :mod:`nwb_autolfads.testing` stores it:
    ``true_rates`` (Hz, the mean over each truth bin, at the bins' centres: read it into model
    bins with :func:`nwb_autolfads.testing.read_truth`, ``name="true_rates"``) and ``latent``.
    The setting is recorded in the session description. Returns ``path``."""
    from pynwb import NWBFile, TimeSeries
    from pynwb.misc import Units

    from nwb_autolfads.testing.common import write_nwb_atomically

    s = setting
    sim = simulate_spikes(s)
    nwb = NWBFile(session_description=f"simulated spikes (nwb_autolfads.simulate.spikes): {asdict(s)}",
                  identifier=f"simulated-spikes-{s.name}-{s.dynamics}-{s.n_units}u-seed{s.seed}",
                  session_start_time=datetime(2024, 1, 1, 12, 0, tzinfo=timezone.utc),
                  experimenter=["nwb-autolfads simulator"], lab="synthetic", institution="synthetic")
    nwb.units = Units(name="units", description=f"simulated units ({s.dynamics})", resolution=s.step)
    for times in sim.spike_times:
        nwb.add_unit(spike_times=times)
    if s.trials:
        nwb.add_trial_column(name="condition", description="condition (initial state of the latent) of the trial")
        for a, b, c in zip(sim.trial_start, sim.trial_stop, sim.condition):
            nwb.add_trial(start_time=float(a), stop_time=float(b), condition=int(c))
    gt = nwb.create_processing_module("ground_truth", "simulation ground truth (not a recording)")
    gt.add(TimeSeries(name="true_rates", data=sim.rates, unit="Hz", starting_time=0.5 * s.truth_bin,
                      rate=1.0 / s.truth_bin, description=f"true firing rate of each unit (simulation ground truth), "
                      f"the mean over each {s.truth_bin * 1e3:g} ms"))
    gt.add(TimeSeries(name="latent", data=sim.latent, unit="a.u.", starting_time=0.5 * s.truth_bin,
                      rate=1.0 / s.truth_bin, description=f"latent state ({s.dynamics}) driving the rates"))
    return write_nwb_atomically(Path(path), nwb)
