"""Synthetic EMG with known muscle activations, written to NWB in the layouts real files use.

A low-dimensional Lorenz latent, mapped through a random map and a softplus to M non-negative
activations a_m(t); raw EMG_m = a_m(t) x band-limited Laplacian noise, plus mains hum and a DC
offset (what the preprocessing removes), and optionally sparse high-amplitude artefacts shared
across channels. Also already binned, rectified EMG of separate cycles, and long recordings
generated block by block.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from scipy import signal as sps

from nwb_autolfads.testing.common import BlockSeries, lorenz_latent, write_nwb_atomically
from nwb_autolfads.testing.spikes import spike_fault

__all__ = ["DEFAULT_MUSCLES", "SyntheticEMG", "synthetic_emg", "bump_emg", "bump_lags", "BUMP_PEAKS_S", "write_emg_nwb", "behavior_from", "mock_emg_nwb",
           "BinnedCycles", "binned_cycles", "mock_binned_trials_nwb", "chunked_emg_nwb"]

DEFAULT_MUSCLES = ("TA", "MG", "LG", "Sol", "VL", "VM", "RF", "BF", "ST", "GMax", "Add", "IP")


@dataclass
class SyntheticEMG:
    raw: np.ndarray  # (n, M) raw EMG in volts
    activations: np.ndarray  # (n, M) true activations (envelope scale, dimensionless)
    times: np.ndarray  # (n,) seconds
    rate: float
    names: list[str]
    latent: np.ndarray  # (n, 3)
    kinematics: np.ndarray | None = None  # (n, J) joint angles driven by the activations (simulate.emg)
    segments: list[tuple[float, float]] | None = None  # recorded (start, stop) seconds; gaps between them


def synthetic_emg(duration: float = 60.0, rate: float = 2000.0, n_muscles: int = 12, seed: int = 0,
                  latent_rate: float = 150.0, noise_scale: float = 1e-4, line_noise: float = 0.2,
                  artefacts: float = 0.0, line_frequency: float = 60.0, line_harmonics: tuple[float, ...] = (),
                  line_channels: tuple[int, ...] | None = None) -> SyntheticEMG:
    """Raw EMG of several muscles with known activations (a Lorenz latent, softplus, noise).

    Activations a_m(t) = softplus(gain_m (z(t) W_m + b_m)) of a 3-D Lorenz latent z; raw EMG =
    (a_m(t) x band-limited (20-450 Hz) unit-SD Laplacian noise + mains hum + a DC offset of
    0.05) x ``noise_scale`` volts (docs/science.md, Synthetic data).

    Parameters
    ----------
    duration : float
        Seconds of data.
    rate : float
        Sampling rate in Hz.
    n_muscles : int
        Channels; named after :data:`DEFAULT_MUSCLES`, then ``m12``, ``m13``, ...
    seed : int
        Seed of every draw.
    latent_rate : float
        Lorenz steps per second (sets how fast activations change; 150 gives features of a few
        hundred ms).
    noise_scale : float
        Volts per unit of activation (the raw EMG's scale).
    line_noise : float
        Amplitude of the mains hum, in units of the activations (before ``noise_scale``); 0 for
        none.
    artefacts : float
        Rate (per second) of shared high-amplitude artefacts (5-20 ms bumps on every channel),
        0 for none.
    line_frequency : float
        Mains frequency in Hz (60 in the Americas, 50 in Europe, or off-nominal such as 50.3).
    line_harmonics : tuple of float
        Amplitudes of harmonics 2, 3, ... of the hum (e.g. ``(0.5, 0.3)`` for 100 and 150 Hz
        with 0.5 and 0.3 at 50 Hz).
    line_channels : tuple of int, optional
        Indices of the channels with hum; ``None``: all.

    Returns
    -------
    SyntheticEMG
        ``raw`` (n, M) volts, ``activations`` (n, M) dimensionless, ``times`` (n,) seconds from
        0, ``rate``, ``names``, ``latent`` (n, 3), with n = round(duration x rate).
    """
    rng = np.random.default_rng(seed)
    rate = float(rate)
    n = int(round(duration * rate))
    n_lat = int(np.ceil(duration * latent_rate)) + 2
    z_coarse = lorenz_latent(n_lat, rng)
    t = np.arange(n) / rate
    t_lat = np.arange(n_lat) / latent_rate
    latent = np.stack([np.interp(t, t_lat, z_coarse[:, k]) for k in range(3)], axis=1)
    W = rng.normal(0.0, 1.0, size=(3, n_muscles)) / np.sqrt(3)
    b = rng.uniform(-1.0, 0.0, size=n_muscles)
    gain = rng.uniform(1.0, 2.0, size=n_muscles)
    activations = np.log1p(np.exp(gain * (latent @ W + b)))  # softplus >= 0

    noise = rng.laplace(size=(n, n_muscles)) / np.sqrt(2)
    band = sps.butter(4, [20.0, min(450.0, 0.45 * rate)], btype="bandpass", fs=rate, output="sos")
    noise = sps.sosfiltfilt(band, noise, axis=0)
    noise /= noise.std(0, keepdims=True)
    raw = activations * noise
    if artefacts > 0:
        n_art = rng.poisson(artefacts * duration)
        for _ in range(n_art):
            start = int(rng.integers(0, max(1, n - int(0.02 * rate))))
            length = int(rng.integers(int(0.005 * rate), int(0.02 * rate)))
            shape = np.hanning(length) * rng.uniform(10, 30) * np.sign(rng.normal())
            raw[start:start + length] += shape[:, None] * rng.uniform(0.5, 1.0, size=n_muscles)[None, :]
    hum = line_noise * np.sin(2 * np.pi * line_frequency * t)
    for k, amplitude in enumerate(line_harmonics, start=2):
        hum = hum + amplitude * np.sin(2 * np.pi * k * line_frequency * t + 0.3 * k)
    on = np.ones(n_muscles, bool) if line_channels is None else np.isin(np.arange(n_muscles), line_channels)
    raw = raw + hum[:, None] * on[None, :] + 0.05  # mains hum + DC offset
    names = list(DEFAULT_MUSCLES[:n_muscles]) + [f"m{i}" for i in range(len(DEFAULT_MUSCLES), n_muscles)]
    return SyntheticEMG(raw=raw * noise_scale, activations=activations, times=t, rate=rate, names=names,
                        latent=latent)


BUMP_PEAKS_S = (0.8137, 1.9071, 3.0413)
"""Where the bumps of :func:`bump_emg` peak by default (seconds): on no sample or bin grid."""


def bump_emg(rate: float, duration: float = 4.0, peaks: tuple[float, ...] = BUMP_PEAKS_S, width: float = 0.04,
             floor: float = 0.1, carrier_hz: float | None = None, n_muscles: int = 2,
             noise_scale: float = 1e-4) -> SyntheticEMG:
    """EMG whose activation is a smooth envelope of Gaussian bumps peaking at known times, for
    checking where bins are placed in time (docs/science.md, Bin times).

    Parameters
    ----------
    rate : float
        Sampling rate (Hz); sample j is at j / ``rate`` seconds.
    duration : float
        Seconds of data.
    peaks : tuple of float
        The bumps' peak times (seconds); keep them several ``width`` from each other and the ends.
    width : float
        The bumps' SD (seconds).
    floor : float
        The envelope between bumps (the bumps rise from it to ``1 + floor``).
    carrier_hz : float, optional
        None: the stored samples are the envelope itself (rectified/enveloped EMG). A frequency:
        raw EMG, the envelope times a cosine carrier at that frequency (deterministic, so binned
        rectified EMG is the envelope times a constant without noise). ``rate / 6`` (333.3 Hz at
        2 kHz) is taken for no mains hum, and its rectified samples repeat every 3 samples: after
        resampling to 1 kHz only their mean is left.
    n_muscles : int
        Channels, all alike (muscle ``k`` scaled by ``1 + k / 2``).
    noise_scale : float
        Volts per unit of envelope.

    Returns
    -------
    SyntheticEMG
        ``raw`` (n, M) volts, ``activations`` (n, M) the envelope at the sample times, ``times``
        (n,), ``latent`` zeros (n, 3); write it with :func:`write_emg_nwb`.
    """
    rate = float(rate)
    t = np.arange(int(round(duration * rate))) / rate
    # a ripple of 0.1% keeps the floor off one repeated value (which would look saturated)
    env = floor * (1.0 + 1e-3 * np.sin(2 * np.pi * 7.3 * t)) + sum(np.exp(-0.5 * ((t - p0) / width) ** 2)
                                                                   for p0 in peaks)
    act = env[:, None] * (1.0 + 0.5 * np.arange(n_muscles))[None, :]
    carrier = np.ones_like(t) if carrier_hz is None else np.cos(2 * np.pi * carrier_hz * t + 0.3)
    names = list(DEFAULT_MUSCLES[:n_muscles]) + [f"m{i}" for i in range(len(DEFAULT_MUSCLES), n_muscles)]
    return SyntheticEMG(raw=act * carrier[:, None] * noise_scale, activations=act, times=t, rate=rate, names=names,
                        latent=np.zeros((t.size, 3)))


def bump_lags(times: np.ndarray, values: np.ndarray, peaks: tuple[float, ...] = BUMP_PEAKS_S,
              width: float = 0.04) -> np.ndarray:
    """How late each bump of :func:`bump_emg` comes out in binned data (seconds; negative: early).

    The centroid of each bump (bins within 5 ``width`` of its peak, above the median of the bins
    more than 6 ``width`` from every peak, summed over channels) minus its true peak time. Bin
    averaging keeps a bump's centroid to second order, so with bins labelled at the centre of the
    span their samples cover this is ~0 at any rate and bin size.

    Parameters
    ----------
    times : numpy.ndarray, shape (n,)
        Bin times (seconds).
    values : numpy.ndarray, shape (n, C)
        Binned (rectified) EMG.
    peaks, width
        As given to :func:`bump_emg`.

    Returns
    -------
    numpy.ndarray, shape (len(peaks),)
    """
    times = np.asarray(times, dtype=float)
    values = np.asarray(values, dtype=float).reshape(times.size, -1)
    far = np.all(np.abs(times[:, None] - np.asarray(peaks)[None, :]) > 6 * width, axis=1)
    base = np.median(values[far], axis=0)
    lags = []
    for p0 in peaks:
        near = np.abs(times - p0) < 5 * width
        w = (values[near] - base).sum(axis=1)
        lags.append(float((times[near] * w).sum() / w.sum()) - p0)
    return np.array(lags)


def write_emg_nwb(path: str | Path, synth: SyntheticEMG, layout: str = "timeseries", location: str = "acquisition",
                  use_timestamps: bool = False, gap: tuple[float, float] | None = None, include_truth: bool = True,
                  name: str = "EMG", int16: bool = False, n_units: int = 0, seed: int = 0,
                  behavior: bool = False, start_time: float = 0.0, float32_timestamps: bool = False,
                  jitter: float = 0.0, transposed: bool = False, electrode_rows: list[int] | None = None,
                  name_column: str = "location", unit_faults: dict[int, str] | None = None,
                  backend: str = "hdf5", description: str | None = None, session: dict | None = None) -> Path:
    """Write synthetic EMG as an NWB file, with its ground truth and optional extras.

    Parameters
    ----------
    path : str or pathlib.Path
        The file (or, with ``backend="zarr"``, the store directory) to write.
    synth : SyntheticEMG
        The recording (:func:`synthetic_emg`, or :func:`nwb_autolfads.simulate.simulate_emg`).
    layout, location, use_timestamps, gap, include_truth, name, int16, n_units, seed, behavior, \
start_time, float32_timestamps, jitter, transposed, electrode_rows, name_column, unit_faults, \
backend, description, session
        As in the Notes below.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        An unknown ``layout`` or ``backend``, ``transposed`` with the ``container`` layout, or
        ``electrode_rows`` of another length than the channels.

    Notes
    -----
    layout: ``timeseries`` (one 2-D TimeSeries, muscle names in the description),
    ``electricalseries`` (ElectricalSeries with an electrodes table whose ``name_column`` -
    ``location`` by default; ``channel_name``, ``label``, ``group_name`` (one electrode group per
    muscle) or any other - holds the muscle names; ``electrode_rows`` are the rows of the table
    the series' columns select, in column order, e.g. [6, 2, 0, 4]: the other rows are named
    ``spare<row>``, and the other columns hold ``unknown``/``emg`` like converters write), or ``container`` (a BehavioralTimeSeries with one 1-D TimeSeries per muscle).
    location: ``acquisition`` or ``processing`` (module ``ecephys``/``behavior``).
    ``gap=(start, stop)`` removes that stretch (seconds on the file's clock, ``start_time``
    included) and forces timestamps; a gap that removes no sample raises ValueError.
    ``int16``: store int16 counts with ``conversion`` (and an ``offset``) like acquisition systems do.
    ``n_units``: also write a Units table of neurons driven by the same latent as the muscles
    (log-rate = W z + log 10 Hz, W entries +-U(0.5, 1)), with a ``quality`` column (every third
    unit 'mua', the rest 'good'), and their true rates in ``ground_truth/true_rates``.
    ``unit_faults``: {unit index: fault} writes those units' spike times wrong the way real files
    are (see :func:`spike_fault`).
    ``behavior``: also write what the muscles move (see :func:`behavior_from`): 3 joint angles
    (``processing/behavior/joint_angles``, 100 Hz), a force (``processing/behavior/force``,
    100 Hz) and a trials table (one trial per 2 s with a ``go_cue_time``); when ``synth`` carries
    ``kinematics`` those are the joint angles, and when it carries several ``segments`` (separate
    trials) there is one trial per segment and behaviour only inside them.
    ``description``: the EMG series' description (default: raw EMG and the muscle names).
    ``session``: the file's metadata instead of the defaults, any of ``identifier``,
    ``session_id``, ``session_start_time`` (a datetime), ``session_description`` and
    ``subject_id`` (several sessions of one subject: :mod:`nwb_autolfads.simulate.sessions`).
    Real-world time bases and layouts: ``start_time`` shifts every time (seconds);
    ``float32_timestamps`` stores timestamps as float32 (rounded: late in a session their
    spacing is a sizeable part of a sample period); ``jitter`` adds Gaussian noise of that SD
    (seconds) to each timestamp, like a software-stamped acquisition clock; both force
    timestamps. ``transposed`` stores the data channels x time (against NWB's time-first rule).
    The ground truth is always stored at the exact sample times.
    ``backend``: ``hdf5`` (an ``.nwb`` file) or ``zarr`` (an NWB Zarr store, a directory such as
    ``x.nwb.zarr``; needs hdmf-zarr).
    """
    raw, t, truth, stamps, use_timestamps = _samples_and_times(synth, start_time, gap, jitter, float32_timestamps,
                                                               use_timestamps, seed)
    if transposed and layout == "container":
        raise ValueError("transposed needs a 2-D layout (timeseries or electricalseries)")
    nwb = _emg_nwbfile(synth, session)
    time_kw = {"timestamps": stamps} if use_timestamps else {"starting_time": float(t[0]), "rate": synth.rate}
    truth_kw = {"timestamps": t} if use_timestamps else time_kw
    data, conversion, offset = _stored(raw, int16)
    desc = description or "Raw EMG (synthetic); muscles: " + ", ".join(synth.names)
    obj = _emg_series(nwb, synth, layout, name, data, conversion, offset, desc, time_kw, electrode_rows, name_column)
    if location == "acquisition":
        nwb.add_acquisition(obj)
    else:
        nwb.create_processing_module("ecephys" if layout != "container" else "behavior", "EMG recordings").add(obj)
    if include_truth:
        _add_true_activations(nwb, synth, truth, truth_kw)
    if n_units:
        _add_units(nwb, synth, n_units, seed, start_time, gap, unit_faults, include_truth)
    if behavior:
        _add_behavior(nwb, synth, t, truth, start_time, seed)
    return _save(nwb, Path(path), backend, transposed, f"acquisition/{name}/data" if location == "acquisition"
                 else f"processing/ecephys/{name}/data")


def _samples_and_times(synth: SyntheticEMG, start_time: float, gap: tuple[float, float] | None, jitter: float,
                       float32_timestamps: bool, use_timestamps: bool, seed: int):
    """The samples :func:`write_emg_nwb` stores and their times: (raw (n, M), true times (n,),
    true activations (n, M), stored timestamps (n,), whether timestamps are stored)."""
    raw, t = synth.raw, synth.times + start_time
    truth = synth.activations
    if gap is not None:
        keep = (t < gap[0]) | (t >= gap[1])
        if keep.all():
            raise ValueError(f"gap={gap} removes no sample: the samples span {t[0]:g}-{t[-1]:g} s on the file's "
                             f"clock (start_time {start_time:g} s included); give the gap in those times")
        raw, t, truth = raw[keep], t[keep], truth[keep]
        use_timestamps = True
    stamps = t
    if jitter:
        stamps = stamps + np.random.default_rng(seed + 2000).normal(0.0, jitter, size=t.size)
        use_timestamps = True
    if float32_timestamps:
        stamps = stamps.astype(np.float32).astype(np.float64)  # NWB stores float64: the rounded values
        use_timestamps = True
    return raw, t, truth, stamps, use_timestamps


def _emg_nwbfile(synth: SyntheticEMG, session: dict | None = None):
    """An empty NWBFile with the session and subject metadata of the synthetic recordings
    (``session``: :func:`write_emg_nwb`'s overrides)."""
    from pynwb import NWBFile
    from pynwb.file import Subject

    meta = {"session_description": "synthetic multi-muscle EMG (nwb_autolfads.testing)",
            "identifier": f"synthetic-emg-{synth.rate:g}Hz-{len(synth.names)}ch",
            "session_start_time": datetime(2024, 1, 1, 12, 0, tzinfo=timezone.utc), "subject_id": "synth01"}
    unknown = set(session or {}) - set(meta) - {"session_id"}
    if unknown:
        raise ValueError(f"session: unknown keys {sorted(unknown)}; known: {sorted(set(meta) | {'session_id'})}")
    meta.update(session or {})
    subject_id = meta.pop("subject_id")
    nwb = NWBFile(**meta, experimenter=["nwb-autolfads test factory"], lab="synthetic", institution="synthetic")
    nwb.subject = Subject(subject_id=subject_id, species="Rattus norvegicus", sex="U", age="P90D")
    return nwb


def _stored(raw: np.ndarray, int16: bool) -> tuple[np.ndarray, float, float]:
    """(data, conversion, offset): the volts as they are, or as int16 counts like acquisition
    systems store them."""
    if not int16:
        return raw, 1.0, 0.0
    conversion = float(np.abs(raw).max() / 30000.0)
    offset = 1e-6
    return np.round((raw - offset) / conversion).astype(np.int16), conversion, offset


def _emg_series(nwb, synth: SyntheticEMG, layout: str, name: str, data: np.ndarray, conversion: float, offset: float,
                desc: str, time_kw: dict, electrode_rows: list[int] | None, name_column: str):
    """The EMG in ``layout`` (see :func:`write_emg_nwb`), not yet added to ``nwb``."""
    from pynwb import TimeSeries
    from pynwb.behavior import BehavioralTimeSeries
    from pynwb.ecephys import ElectricalSeries

    if layout == "timeseries":
        return TimeSeries(name=name, data=data, unit="volts", conversion=conversion, offset=offset,
                          description=desc, **time_kw)
    if layout == "electricalseries":
        rows = list(range(len(synth.names))) if electrode_rows is None else [int(r) for r in electrode_rows]
        if len(rows) != len(synth.names):
            raise ValueError(f"electrode_rows selects {len(rows)} rows for {len(synth.names)} channels")
        _add_electrodes(nwb, synth.names, rows, name_column)
        region = nwb.create_electrode_table_region(rows, "EMG electrodes")
        return ElectricalSeries(name=name, data=data, electrodes=region, conversion=conversion, offset=offset,
                                description="Raw EMG (synthetic)", **time_kw)
    if layout == "container":
        obj = BehavioralTimeSeries(name=name)
        for k, muscle in enumerate(synth.names):
            obj.add_timeseries(TimeSeries(name=muscle, data=data[:, k], unit="volts", conversion=conversion,
                                          offset=offset, description=f"EMG of {muscle}", **time_kw))
        return obj
    raise ValueError(f"unknown layout {layout!r}")


def _add_electrodes(nwb, names: list[str], rows: list[int], name_column: str) -> None:
    """The electrodes table: the series' columns select ``rows`` (in column order), named ``names``
    in ``name_column``; the other rows are ``spare<row>``."""
    label = {r: f"spare{r}" for r in range(max(rows) + 1)}  # rows the series does not select
    label.update(zip(rows, names))
    device = nwb.create_device(name="emg_amplifier", description="synthetic EMG amplifier")
    groups = {}

    def group_of(name):
        if name not in groups:
            groups[name] = nwb.create_electrode_group(name=name, description="intramuscular EMG electrodes",
                                                      location="hindlimb", device=device)
        return groups[name]

    if name_column not in ("location", "group_name"):
        nwb.add_electrode_column(name=name_column, description="name of the channel (muscle)")
    for r in sorted(label):
        extra = {} if name_column in ("location", "group_name") else {name_column: label[r]}
        nwb.add_electrode(group=group_of(label[r] if name_column == "group_name" else "emg"),
                          location=label[r] if name_column == "location" else "unknown", **extra)


def _add_true_activations(nwb, synth: SyntheticEMG, truth: np.ndarray, truth_kw: dict) -> None:
    """``processing/ground_truth/true_activations``: ``truth`` (n, M) at the times ``truth_kw``."""
    from pynwb import TimeSeries

    gt = nwb.create_processing_module("ground_truth", "simulation ground truth (not a recording)")
    gt.add(TimeSeries(name="true_activations", data=truth.astype(np.float32), unit="a.u.",
                      description="noiseless drive of each channel (simulation ground truth); channels: "
                      + ", ".join(synth.names), **truth_kw))


def _add_units(nwb, synth: SyntheticEMG, n_units: int, seed: int, start_time: float, gap: tuple[float, float] | None,
               unit_faults: dict[int, str] | None, include_truth: bool) -> None:
    """The Units table of :func:`write_emg_nwb` (``n_units``), with the true rates in the ground truth."""
    from pynwb import TimeSeries
    from pynwb.misc import Units

    rng = np.random.default_rng(seed + 1000)
    W = rng.uniform(0.5, 1.0, size=(3, n_units)) * rng.choice([-1.0, 1.0], size=(3, n_units))
    rates = 10.0 * np.exp(synth.latent @ W)  # Hz, on the raw time grid
    nwb.units = Units(name="units", description="simulated units", resolution=1.0 / synth.rate)
    nwb.add_unit_column(name="quality", description="sorting quality: good or mua")
    dt = 1.0 / synth.rate
    for k in range(n_units):
        spikes = start_time + synth.times[rng.random(synth.times.size) < rates[:, k] * dt]
        if gap is not None:
            spikes = spikes[(spikes < gap[0]) | (spikes >= gap[1])]
        if unit_faults and k in unit_faults:
            spikes = spike_fault(spikes, unit_faults[k], float(synth.times[-1]))
        nwb.add_unit(spike_times=spikes, quality="mua" if k % 3 == 2 else "good")
    if include_truth:
        nwb.processing["ground_truth"].add(TimeSeries(
            name="true_rates", data=rates.astype(np.float32), unit="Hz",
            description="true firing rate of each unit (simulation ground truth)", starting_time=start_time,
            rate=synth.rate))


def _add_behavior(nwb, synth: SyntheticEMG, t: np.ndarray, truth: np.ndarray, start_time: float, seed: int) -> None:
    """The behaviour of :func:`write_emg_nwb` (``behavior=True``): joint angles, force, trials."""
    from pynwb import TimeSeries

    fs = 100.0
    tb = np.arange(t[0], t[-1], 1.0 / fs)
    segments = synth.segments if synth.segments and len(synth.segments) > 1 else None
    if segments:
        segments = [(a + start_time, b + start_time) for a, b in segments]
        tb = tb[np.any([(tb >= a) & (tb < b) for a, b in segments], axis=0)]
    drive = np.stack([np.interp(tb, t, truth[:, k]) for k in range(truth.shape[1])], axis=1)
    angles, force = behavior_from(drive, fs, seed)
    if synth.kinematics is not None:
        angles = np.stack([np.interp(tb, synth.times + start_time, synth.kinematics[:, j])
                           for j in range(synth.kinematics.shape[1])], axis=1)
    module = nwb.create_processing_module("behavior", "what the muscles move (simulated from the true activations)")
    joints = ", ".join((["hip", "knee", "ankle"] + [f"joint{j}" for j in range(3, angles.shape[1])])[:angles.shape[1]])
    module.add(TimeSeries(name="joint_angles", data=angles, unit="radians", timestamps=tb,
                          description=f"joint angles ({joints}) driven by the true activations; "
                          f"channels: {joints}"))
    module.add(TimeSeries(name="force", data=force, unit="N", timestamps=tb,
                          description="ground reaction force driven by the true activations"))
    nwb.add_trial_column(name="go_cue_time", description="time of the go cue (s)")
    if segments:
        for a, b in segments:
            nwb.add_trial(start_time=float(a), stop_time=float(b), go_cue_time=float(a + 0.4 * (b - a)))
    else:
        for start in np.arange(t[0], t[-1] - 2.0, 2.0):
            nwb.add_trial(start_time=float(start), stop_time=float(start + 2.0), go_cue_time=float(start + 0.8))


def _save(nwb, path: Path, backend: str, transposed: bool, where: str) -> Path:
    """Write ``nwb`` to ``path`` with ``backend`` (``hdf5`` or ``zarr``); ``transposed``: then store
    the HDF5 dataset ``where`` channels x time, as other software would have."""
    from pynwb import NWBHDF5IO

    if backend == "zarr":
        from hdmf_zarr.nwb import NWBZarrIO

        with NWBZarrIO(str(path), mode="w") as io:
            io.write(nwb)
        return path
    if backend != "hdf5":
        raise ValueError(f"unknown backend {backend!r}: hdf5 or zarr")
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    if transposed:  # pynwb refuses to write it: rewrite the dataset as other software would have
        import h5py

        with h5py.File(path, "a") as f:
            attrs = dict(f[where].attrs)
            stored = f[where][()]
            del f[where]
            f.create_dataset(where, data=np.ascontiguousarray(stored.T))
            f[where].attrs.update(attrs)
    return path


def behavior_from(activations: np.ndarray, fs: float, seed: int = 0, n_joints: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Joint angles and a force driven by ``activations`` (n, C) sampled at ``fs`` Hz: angles are
    a random signed mix of the muscles through a causal 2nd-order 2 Hz low-pass (muscle force
    -> movement); the force is the sum of the first half of the muscles through a causal 5 Hz
    low-pass (twitch dynamics). 5% measurement noise on both. Returns ((n, n_joints), (n, 1))."""
    rng = np.random.default_rng(seed + 7)
    act = np.nan_to_num(activations)
    w = rng.normal(size=(act.shape[1], n_joints))
    b, a = sps.butter(2, 2.0, fs=fs)
    angles = sps.lfilter(b, a, act @ w, axis=0)
    angles = angles + 0.05 * angles.std(0) * rng.normal(size=angles.shape)
    b, a = sps.butter(2, 5.0, fs=fs)
    force = sps.lfilter(b, a, act[:, : max(1, act.shape[1] // 2)].sum(1, keepdims=True), axis=0)
    force = force + 0.05 * force.std(0) * rng.normal(size=force.shape)
    return angles, force


def mock_emg_nwb(path: str | Path, duration: float = 60.0, rate: float = 2000.0, n_muscles: int = 12,
                 seed: int = 0, **kwargs) -> Path:
    """Synthesise raw EMG (:func:`synthetic_emg`) and write it as NWB (:func:`write_emg_nwb`).

    Parameters
    ----------
    path : str or pathlib.Path
        The NWB file to write.
    duration : float
        Seconds of data.
    rate : float
        Sampling rate in Hz.
    n_muscles : int
        Channels.
    seed : int
        Seed of the EMG and of the extras (units, behaviour).
    **kwargs
        ``artefacts``, ``line_noise``, ``line_frequency``, ``line_harmonics``,
        ``line_channels``, ``noise_scale`` and ``latent_rate`` go to :func:`synthetic_emg`;
        ``channel_order`` (positions, e.g. ``[2, 0, 1]``) stores the muscles (their EMG, names
        and true activations) in that order; every other keyword to :func:`write_emg_nwb` (e.g.
        ``layout``, ``gap``, ``n_units``, ``behavior``).

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> from nwb_autolfads.testing import mock_emg_nwb
    >>> path = mock_emg_nwb("emg.nwb", duration=5.0, n_muscles=4, behavior=True)  # doctest: +SKIP
    """
    synth_keys = {"artefacts", "line_noise", "line_frequency", "line_harmonics", "line_channels", "noise_scale",
                  "latent_rate"}
    synth_kw = {k: kwargs.pop(k) for k in list(kwargs) if k in synth_keys}
    order = kwargs.pop("channel_order", None)
    synth = synthetic_emg(duration=duration, rate=rate, n_muscles=n_muscles, seed=seed, **synth_kw)
    if order is not None:  # the same muscles stored in another order (as another acquisition system might)
        order = [int(k) for k in order]
        synth = replace(synth, raw=synth.raw[:, order], activations=synth.activations[:, order],
                        names=[synth.names[k] for k in order])
    return write_emg_nwb(path, synth, seed=seed, **kwargs)


@dataclass
class BinnedCycles:
    """Rectified EMG already averaged into bins, recorded as separate cycles (e.g. step cycles)."""

    values: np.ndarray  # (n, M) binned rectified EMG in volts
    activations: np.ndarray  # (n, M) true activations (dimensionless)
    times: np.ndarray  # (n,) each bin's timestamp (seconds)
    starts: np.ndarray  # (n_cycles,) time of each cycle's first bin
    stops: np.ndarray  # (n_cycles,) end of each cycle's last bin
    lengths: np.ndarray  # (n_cycles,) bins per cycle
    bin_size: float
    names: list[str]


def binned_cycles(n_cycles: int = 189, cycle_duration: float | tuple[float, float] = 0.45, bin_size: float = 0.004,
                  gap: tuple[float, float] | None = (0.1, 0.3), n_muscles: int = 4, seed: int = 0,
                  t0: float = 1.0) -> BinnedCycles:
    """Already rectified and binned EMG of separate cycles, as stored by labs that keep only
    the step cycles of a treadmill session.

    Parameters
    ----------
    n_cycles : int
        Cycles (segments).
    cycle_duration : float or (float, float)
        Seconds per cycle, or a (low, high) range of uniform draws.
    bin_size : float
        Bin width in seconds.
    gap : (float, float) or None
        Range (seconds) of the uniform gap between cycles; None: contiguous cycles.
    n_muscles : int
        Channels.
    seed : int
        Seed of every draw.
    t0 : float
        Time of the first bin (seconds).

    Returns
    -------
    BinnedCycles
        ``values`` (n, M) volts, ``activations`` (n, M), ``times`` (n,), per-cycle ``starts``,
        ``stops`` and ``lengths``, ``bin_size``, ``names``.

    Notes
    -----
    Each cycle lasts ``cycle_duration`` seconds (or a uniform draw from a (low, high) range) and
    holds that many ``bin_size`` bins (rounded up or down at random, so 0.45 s at 4 ms gives 112
    or 113 bins). Cycles are separated by a gap drawn from ``gap`` (seconds), or follow each other
    without one with ``gap=None``. The true activation of each muscle is a smooth function of the
    cycle phase (two harmonics, a random phase per muscle, softplus) with a random gain per cycle;
    the binned EMG is that activation x Gamma noise (shape 6) x 1e-4 V, so it is non-negative and
    right-skewed like binned rectified EMG.
    """
    rng = np.random.default_rng(seed)
    lo, hi = (cycle_duration, cycle_duration) if np.isscalar(cycle_duration) else cycle_duration
    durations = rng.uniform(lo, hi, size=n_cycles)
    lengths = np.floor(durations / bin_size + rng.random(n_cycles)).astype(np.int64)
    theta = rng.uniform(0, 2 * np.pi, size=(2, n_muscles))
    amp = rng.uniform(0.5, 1.5, size=(2, n_muscles))
    times, acts, starts, stops = [], [], [], []
    t = float(t0)
    for k, n in enumerate(lengths):
        if k and gap is not None:
            t += float(rng.uniform(*gap))
        phase = np.arange(n) / n
        drive = sum(amp[h] * np.cos(2 * np.pi * (h + 1) * phase[:, None] + theta[h]) for h in range(2))
        acts.append(np.log1p(np.exp(2.0 * drive - 0.5)) * rng.uniform(0.8, 1.2))
        times.append(t + np.arange(n) * bin_size)
        starts.append(t)
        t += n * bin_size
        stops.append(t)
    activations = np.concatenate(acts)
    values = activations * rng.gamma(6.0, 1.0 / 6.0, size=activations.shape) * 1e-4
    names = list(DEFAULT_MUSCLES[:n_muscles]) + [f"m{i}" for i in range(len(DEFAULT_MUSCLES), n_muscles)]
    return BinnedCycles(values=values, activations=activations, times=np.concatenate(times), starts=np.array(starts),
                        stops=np.array(stops), lengths=lengths, bin_size=float(bin_size), names=names)


def mock_binned_trials_nwb(path: str | Path, n_cycles: int = 189, cycle_duration: float | tuple[float, float] = 0.45,
                           bin_size: float = 0.004, gap: tuple[float, float] | None = (0.1, 0.3), n_muscles: int = 4,
                           seed: int = 0, trials: bool = True) -> Path:
    """Write :func:`binned_cycles` as an NWB file.

    The file holds ``acquisition/EMG`` (a TimeSeries of binned rectified EMG in volts, with
    timestamps; with ``gap=None`` the cycles are contiguous and it has ``starting_time`` and
    ``rate`` instead), a trials table with one row per cycle (``start_time`` = its first bin's
    timestamp, ``stop_time`` = the end of its last bin) and the true activations in
    ``processing/ground_truth/true_activations`` on the same times.

    Parameters
    ----------
    path : str or pathlib.Path
        The NWB file to write.
    n_cycles, cycle_duration, bin_size, gap, n_muscles, seed
        As in :func:`binned_cycles`.
    trials : bool
        Write the trials table.

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries

    c = binned_cycles(n_cycles, cycle_duration, bin_size, gap, n_muscles, seed)
    nwb = NWBFile(session_description="synthetic binned, rectified EMG of separate cycles (nwb_autolfads.testing)",
                  identifier=f"synthetic-binned-cycles-{bin_size * 1e3:g}ms-{n_cycles}",
                  session_start_time=datetime(2024, 1, 1, 12, 0, tzinfo=timezone.utc))
    time_kw = ({"starting_time": float(c.times[0]), "rate": 1.0 / bin_size} if gap is None
               else {"timestamps": c.times})
    nwb.add_acquisition(TimeSeries(name="EMG", data=c.values, unit="volts",
                                   description=f"rectified EMG averaged into {bin_size * 1e3:g} ms bins, one stretch "
                                   "per cycle; muscles: " + ", ".join(c.names), **time_kw))
    gt = nwb.create_processing_module("ground_truth", "simulation ground truth (not a recording)")
    gt.add(TimeSeries(name="true_activations", data=c.activations.astype(np.float32), unit="a.u.",
                      description="noiseless drive of each channel (simulation ground truth); channels: "
                      + ", ".join(c.names), **time_kw))
    if trials:
        for start, stop in zip(c.starts, c.stops):
            nwb.add_trial(start_time=float(start), stop_time=float(stop))
    path = Path(path)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


_NOISE_BLOCK_S = 1.0  # the EMG's noise is drawn in blocks of this length, each from its own seed

_NOISE_WARMUP_S = 0.5  # filter warm-up before each segment (the band-pass forgets its start within ~0.2 s)


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _long_emg_rows(duration: float, rate: float, n_muscles: int, seed: int, latent_rate: float, noise_scale: float,
                   line_noise: float, d: int):
    """The recording of :func:`chunked_emg_nwb` as two functions of a row range [a, c): the raw
    EMG's int16 counts, and the true activations averaged over groups of ``d`` samples. Returns
    (raw rows, truth rows, volts per count)."""
    rng = np.random.default_rng(seed)
    n_lat = int(np.ceil(duration * latent_rate)) + 2
    z = lorenz_latent(n_lat, rng)
    t_lat = np.arange(n_lat) / latent_rate
    W = rng.normal(0.0, 1.0, size=(3, n_muscles)) / np.sqrt(3)
    b = rng.uniform(-1.0, 0.0, size=n_muscles)
    gain = rng.uniform(1.0, 2.0, size=n_muscles)
    sos = sps.butter(4, [20.0, min(450.0, 0.45 * rate)], btype="bandpass", fs=rate, output="sos")
    impulse = np.zeros(int(2 * rate))
    impulse[0] = 1.0
    noise_sd = float(np.sqrt(np.sum(sps.sosfilt(sos, impulse) ** 2)))  # SD of the filtered unit-variance noise
    nb, warm = int(round(_NOISE_BLOCK_S * rate)), int(round(_NOISE_WARMUP_S * rate))
    full_scale = 80.0 * noise_scale
    conversion = full_scale / 32767

    def activations(a: int, c: int) -> np.ndarray:
        t = np.arange(a, c) / rate
        lat = np.stack([np.interp(t, t_lat, z[:, k]) for k in range(3)], axis=1)
        return _softplus(gain * (lat @ W + b))

    def noise(a: int, c: int) -> np.ndarray:
        """Filtered noise at samples [a, c): the white noise from ``warm`` samples before a."""
        a0 = max(0, a - warm)
        blocks = range(a0 // nb, (c - 1) // nb + 1)
        white = np.concatenate([np.random.default_rng([seed, 77, k]).laplace(size=(nb, n_muscles))
                                for k in blocks]) / np.sqrt(2)
        first = blocks[0] * nb
        filtered = sps.sosfilt(sos, white[a0 - first:c - first], axis=0)
        return filtered[a - a0:] / noise_sd

    def raw_rows(a: int, c: int) -> np.ndarray:
        t = np.arange(a, c) / rate
        volts = (activations(a, c) * noise(a, c) + line_noise * np.sin(2 * np.pi * 60.0 * t)[:, None] + 0.05)
        volts *= noise_scale
        return np.clip(np.round(volts / conversion), -32767, 32767).astype(np.int16)

    def truth_rows(a: int, c: int) -> np.ndarray:
        return activations(a * d, c * d).reshape(c - a, d, n_muscles).mean(axis=1).astype(np.float32)

    return raw_rows, truth_rows, conversion


def chunked_emg_nwb(path: str | Path, duration: float = 60.0, rate: float = 2000.0, n_muscles: int = 16,
                    seed: int = 0, latent_rate: float = 150.0, noise_scale: float = 1e-4, line_noise: float = 0.2,
                    truth_decimation: int = 4, block_seconds: float = 10.0) -> Path:
    """Raw EMG of ``n_muscles`` muscles for ``duration`` seconds at ``rate`` Hz with its true
    activations, generated and written ``block_seconds`` at a time (memory does not grow with
    the duration, apart from the Lorenz latent at ``latent_rate`` Hz: 24 bytes per step).

    The model is that of :func:`synthetic_emg`: a Lorenz latent, a random map and a softplus to
    the activations a_m(t); EMG = a_m(t) x band-limited (20-450 Hz) Laplacian noise of unit
    SD, plus mains hum (``line_noise`` at 60 Hz) and a DC offset, x ``noise_scale`` volts. The
    band-pass is causal, run over each segment after a warm-up on the noise before it (the
    noise is drawn in 1 s blocks from seeds (``seed``, block)), so the noise is one stationary
    process whatever the blocks. Stored as an acquisition system would: int16 counts with a
    ``conversion`` (full scale 80 x ``noise_scale`` V; rare larger samples saturate),
    HDF5-chunked and gzip-compressed, in ``acquisition/EMG``; the true activations (float32)
    averaged over groups of ``truth_decimation`` samples, at the groups' centres, in
    ``processing/ground_truth/true_activations`` (read them into bins with :func:`read_truth`).

    Returns ``path`` (written atomically: a hidden partial file renamed when complete).
    """
    from pynwb import NWBFile, TimeSeries

    rate = float(rate)
    n = int(round(duration * rate))
    d = int(truth_decimation)
    if n < d or d < 1:
        raise ValueError(f"duration {duration} s at {rate} Hz gives {n} samples: need at least truth_decimation "
                         f"({truth_decimation} >= 1)")
    raw_rows, truth_rows, conversion = _long_emg_rows(duration, rate, n_muscles, seed, latent_rate, noise_scale,
                                                      line_noise, d)
    names = list(DEFAULT_MUSCLES[:n_muscles]) + [f"m{i}" for i in range(len(DEFAULT_MUSCLES), n_muscles)]
    block = max(1, int(round(block_seconds * rate)))
    nwb = NWBFile(session_description="synthetic long multi-muscle EMG (nwb_autolfads.testing.chunked_emg_nwb)",
                  identifier=f"synthetic-long-emg-{duration:g}s-{rate:g}Hz-{n_muscles}ch-seed{seed}",
                  session_start_time=datetime(2024, 1, 1, 12, 0, tzinfo=timezone.utc),
                  experimenter=["nwb-autolfads test factory"], lab="synthetic", institution="synthetic")
    nwb.add_acquisition(TimeSeries(
        name="EMG", data=BlockSeries(raw_rows, n, n_muscles, np.int16, block, int(rate)), unit="volts",
        conversion=conversion, starting_time=0.0, rate=rate,
        description="Raw EMG (synthetic); muscles: " + ", ".join(names)))
    gt = nwb.create_processing_module("ground_truth", "simulation ground truth (not a recording)")
    n_truth = n // d
    gt.add(TimeSeries(name="true_activations",
                      data=BlockSeries(truth_rows, n_truth, n_muscles, np.float32, max(1, block // d),
                                        max(1, int(rate) // d)),
                      unit="a.u.", starting_time=(d - 1) / 2 / rate, rate=rate / d,
                      description=f"noiseless drive of each channel (simulation ground truth), the mean of each "
                      f"{d} samples; channels: " + ", ".join(names)))
    return write_nwb_atomically(Path(path), nwb)
