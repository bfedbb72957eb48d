"""Synthetic multi-muscle EMG with known activations, varied along the axes real EMG varies.

One :class:`EMGSetting` (a frozen dataclass: a name and every parameter, all with defaults)
describes a recording; :func:`simulate_emg` draws it (deterministically, from the setting's
``seed``) and :func:`write_setting_nwb` writes it to NWB with the truth beside it.

The model
---------
1. A latent drive on a coarse grid (``max(100, 10 x bandwidth)`` Hz) by ``dynamics``:

   - ``rhythmic``: a gait-like oscillator at ``rhythm_hz`` whose instantaneous frequency
     wanders (10% SD, 2 s correlation: phase noise) and whose amplitude is slowly modulated
     (log-amplitude SD 0.3, 5 s); each muscle bursts at its own preferred phase (first and
     second harmonic of the phase);
   - ``chaotic``: the Lorenz system (:func:`nwb_autolfads.testing.lorenz_latent`) run at 50 x
     ``bandwidth`` steps per second, randomly mixed into the muscles;
   - ``bursty``: three on-off (telegraph) sources switching ``burst_rate`` times per second,
     each muscle following mostly one of them (step-like, sparse bursts);
   - ``drift``: three slow sources (``drift_hz``) plus weak (30%) fast modulation;
   - ``mixture``: rhythmic + chaotic, each at half the variance.

2. The drive is low-passed at ``bandwidth`` Hz (zero-phase, 2nd order: this sets how fast
   activations change; a rhythm faster than it is attenuated), z-scored per muscle and mapped
   through a softplus with a random gain (1-2) and offset (-1-0): activations a_m(t) >= 0.

3. Raw EMG at ``rate`` Hz: a_m(t) x band-limited (20-450 Hz, at most 0.45 ``rate``) noise of
   unit SD (``noise`` ``laplace`` or ``gaussian``), plus an additive Gaussian noise floor in the
   same band independent of the activation, ``snr_db`` below each muscle's EMG RMS (``None``:
   none), plus shared artefacts (Poisson, ``artefact_rate`` per second, of ``artefact_shape``
   ``spike`` (5-20 ms bump), ``step`` (a jump decaying over 0.1-0.5 s, like an electrode pop) or
   ``motion`` (a 0.2-0.8 s smooth bump), ``artefact_amplitude`` x the mean EMG RMS, per-channel
   weights 0.5-1), plus mains hum (``hum_hz``, amplitude ``hum_amplitude`` and harmonics 2, 3,
   ... of amplitudes ``hum_harmonics``, all x the mean EMG RMS, per-channel factor 0.5-1.5) and
   a DC offset, all x ``noise_scale`` volts.

4. ``enveloped``: the recording holds instead the rectified EMG (hum and DC removed and the
   artefacts band-passed 20-450 Hz, as a lab's pipeline would; noise floor kept) averaged over bins of
   ``round(rate / envelope_rate)`` raw samples, at the bins' centres; the true activations are
   averaged over the same bins.

5. ``trials`` > 0: only ``trials`` segments of ``trial_seconds`` (uniform range) separated by
   gaps of ``trial_gap_seconds`` (uniform range) are kept (``duration`` is then ignored): the
   timestamps jump over the gaps, the underlying activity runs on through them.

Kinematics: ``n_joints`` joint angles driven by the true activations (:func:`kinematics_from`).

Memory: the noise is drawn in 1 s blocks, each from its own seed, and the recording is built
block by block, so the result does not depend on the block size; the result itself is held in
memory as float32 (raw and activations): at most ``MAX_VALUES`` values per array (2e8, 800 MB;
30 min x 32 muscles x 10 kHz is 5.8e8 and is refused: use ``enveloped``, fewer muscles, a lower
rate or :func:`nwb_autolfads.testing.chunked_emg_nwb` for such files).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import signal as sps

from nwb_autolfads.testing import DEFAULT_MUSCLES, SyntheticEMG, lorenz_latent, write_emg_nwb

__all__ = ["DYNAMICS", "NOISE_MODELS", "ARTEFACT_SHAPES", "MAX_VALUES", "EMGSetting", "SyntheticEMG", "simulate_emg",
           "kinematics_from", "setting_name", "write_setting_nwb"]

DYNAMICS = ("rhythmic", "chaotic", "bursty", "drift", "mixture")
NOISE_MODELS = ("laplace", "gaussian")
ARTEFACT_SHAPES = ("spike", "step", "motion")
MAX_VALUES = 200_000_000
"""The most samples x channels one :func:`simulate_emg` array may hold (float32: 800 MB)."""

_NOISE_BLOCK_S = 1.0  # white noise drawn in blocks of this length, each from its own seed
_NOISE_WARMUP_S = 0.5  # the causal band-pass runs this long on the noise before each segment
_BLOCK_S = 10.0  # the recording is built this many seconds at a time


@dataclass(frozen=True)
class EMGSetting:
    """One synthetic EMG recording: every parameter of :func:`simulate_emg`.

    Parameters
    ----------
    name : str
        Readable unique label; empty: built from the parameters (:func:`setting_name`).
    seed : int
        Seeds every random draw (the result is a deterministic function of the setting).
    dynamics : str
        Latent dynamics, one of :data:`DYNAMICS`.
    n_muscles : int
        Channels, 1-64 (the family uses 4-32).
    bandwidth : float
        Hz; low-pass cutoff of the latent drive (how fast activations change).
    rhythm_hz : float
        Hz; the oscillator's mean frequency (``rhythmic``, ``mixture``).
    burst_rate : float
        Switches per second of each on-off source (``bursty``).
    drift_hz : float
        Hz; cutoff of the slow sources (``drift``).
    noise : str
        Carrier distribution, ``laplace`` or ``gaussian``.
    snr_db : float or None
        Additive noise floor this many dB below each muscle's EMG RMS; ``None``: no floor.
    artefact_rate : float
        Shared artefacts per second (0: none).
    artefact_amplitude : float
        Artefact peak in units of the mean EMG RMS.
    artefact_shape : str
        One of :data:`ARTEFACT_SHAPES`.
    hum_hz : float
        Mains frequency (50, 60 or off-nominal such as 50.3).
    hum_amplitude : float
        Hum amplitude in units of the mean EMG RMS (0: none).
    hum_harmonics : tuple of float
        Amplitudes of harmonics 2, 3, ... in the same units.
    rate : float
        Raw sampling rate, Hz (1-10 kHz in the family).
    duration : float
        Seconds (ignored when ``trials`` > 0).
    enveloped : bool
        Store the rectified, binned envelope instead of raw EMG.
    envelope_rate : float
        Hz; rate of the envelope (rounded to a whole number of raw samples per bin).
    trials : int
        0: one continuous recording; n > 0: n separate segments.
    trial_seconds, trial_gap_seconds : tuple of float
        (low, high) of the uniform draws of each segment's length and each gap.
    n_joints : int
        Joint angles driven by the activations.
    noise_scale : float
        Volts per unit of activation.
    """

    name: str = ""
    seed: int = 0
    dynamics: str = "chaotic"
    n_muscles: int = 8
    bandwidth: float = 4.0
    rhythm_hz: float = 1.5
    burst_rate: float = 1.0
    drift_hz: float = 0.1
    noise: str = "laplace"
    snr_db: float | None = 20.0
    artefact_rate: float = 0.0
    artefact_amplitude: float = 20.0
    artefact_shape: str = "spike"
    hum_hz: float = 60.0
    hum_amplitude: float = 0.0
    hum_harmonics: tuple[float, ...] = ()
    rate: float = 2000.0
    duration: float = 60.0
    enveloped: bool = False
    envelope_rate: float = 200.0
    trials: int = 0
    trial_seconds: tuple[float, float] = (0.5, 3.0)
    trial_gap_seconds: tuple[float, float] = (0.5, 2.0)
    n_joints: int = 3
    noise_scale: float = 1e-4

    def __post_init__(self):
        numbers = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                   if isinstance(getattr(self, f.name), (int, float, tuple, list)) and not isinstance(getattr(self, f.name), bool)}
        bad = [f"{k} {v!r}" for k, v in numbers.items()
               if not np.all(np.isfinite(np.asarray(v, dtype=float)))]  # NaN/inf would give NaN EMG or truth
        if bad:
            raise ValueError(f"EMGSetting: {', '.join(bad)}: must be finite numbers (snr_db None: no noise floor)")
        checks = (
            (self.dynamics in DYNAMICS, f"dynamics {self.dynamics!r}: one of {', '.join(DYNAMICS)}"),
            (self.noise in NOISE_MODELS, f"noise {self.noise!r}: one of {', '.join(NOISE_MODELS)}"),
            (self.artefact_shape in ARTEFACT_SHAPES,
             f"artefact_shape {self.artefact_shape!r}: one of {', '.join(ARTEFACT_SHAPES)}"),
            (1 <= self.n_muscles <= 64, f"n_muscles {self.n_muscles}: 1-64"),
            (self.bandwidth > 0, f"bandwidth {self.bandwidth} Hz: must be > 0"),
            (self.rate >= 200, f"rate {self.rate} Hz: at least 200 Hz of raw EMG"),
            (self.duration > 0 or self.trials > 0, f"duration {self.duration} s: must be > 0"),
            (self.trials >= 0, f"trials {self.trials}: 0 (continuous) or more"),
            (0 < self.envelope_rate <= self.rate, f"envelope_rate {self.envelope_rate} Hz: in (0, rate {self.rate}]"),
            (self.artefact_rate >= 0 and self.hum_amplitude >= 0, "artefact_rate and hum_amplitude must be >= 0"),
            (self.noise_scale > 0, f"noise_scale {self.noise_scale} V: must be > 0"),
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(f"EMGSetting: {message}")
        object.__setattr__(self, "hum_harmonics", tuple(float(h) for h in self.hum_harmonics))
        object.__setattr__(self, "trial_seconds", tuple(float(v) for v in self.trial_seconds))
        object.__setattr__(self, "trial_gap_seconds", tuple(float(v) for v in self.trial_gap_seconds))
        if not self.name:
            object.__setattr__(self, "name", setting_name(self))

    def replace(self, **changes) -> "EMGSetting":
        """A copy with ``changes``; the name is rebuilt unless given or set by hand before."""
        if "name" not in changes and self.name == setting_name(self):
            changes["name"] = ""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        """The parameters as plain JSON-able values."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


def setting_name(s: EMGSetting) -> str:
    """A readable label such as ``rhythmic-12m-2kHz-60s-hum50-art`` built from the parameters."""
    rate = f"{s.rate / 1000:g}kHz"
    span = f"{s.trials}tr" if s.trials else (f"{s.duration / 60:g}min" if s.duration >= 600 else f"{s.duration:g}s")
    parts = [s.dynamics, f"{s.n_muscles}m", rate, span]
    if s.enveloped:
        parts.append(f"env{s.rate / max(1, round(s.rate / s.envelope_rate)):g}Hz")
    if s.hum_amplitude > 0 and not s.enveloped:
        parts.append(f"hum{s.hum_hz:g}")
    if s.artefact_rate > 0:
        parts.append("art" if s.artefact_shape == "spike" else f"art-{s.artefact_shape}")
    if s.noise != "laplace":
        parts.append(s.noise[:5])
    if s.snr_db is not None:
        parts.append(f"snr{s.snr_db:g}")
    return "-".join(parts)


def kinematics_from(truth: np.ndarray, fs: float, seed: int, n_joints: int = 3) -> np.ndarray:
    """Joint angles driven by the true activations.

    A random signed mix of the muscles through a causal 2nd-order 2 Hz low-pass (muscle force
    -> movement), plus 5% measurement noise.

    Parameters
    ----------
    truth : (n, M) array
        Activations sampled at ``fs`` Hz (NaN read as 0).
    fs : float
        Hz.
    seed : int
        Seeds the mix and the noise (``seed + 7``).
    n_joints : int
        Joints J.

    Returns
    -------
    (n, J) array of angles (arbitrary units).
    """
    rng = np.random.default_rng(seed + 7)
    w = rng.normal(size=(truth.shape[1], n_joints))
    drive = np.nan_to_num(truth) @ w
    b, a = sps.butter(2, 2.0, fs=fs)
    angles = sps.lfilter(b, a, drive, axis=0)
    return angles + 0.05 * angles.std(0) * rng.normal(size=angles.shape)


# ------------------------------------------------------------------------------ latent drive
def _smooth_noise(rng: np.random.Generator, n: int, k: int, cutoff: float, fs: float) -> np.ndarray:
    """(n, k) Gaussian noise low-passed (zero-phase, 2nd order) at ``cutoff`` Hz, z-scored."""
    x = rng.normal(size=(n, k))
    if cutoff < 0.45 * fs:
        x = sps.sosfiltfilt(sps.butter(2, cutoff, fs=fs, output="sos"), x, axis=0)
    return (x - x.mean(0)) / x.std(0)


def _zscore(x: np.ndarray) -> np.ndarray:
    sd = x.std(0)
    return (x - x.mean(0)) / np.where(sd > 0, sd, 1.0)


def _rhythmic(rng, n, fs, s: EMGSetting):
    freq = s.rhythm_hz * (1.0 + 0.1 * _smooth_noise(rng, n, 1, 1 / (2 * np.pi * 2.0), fs)[:, 0])
    phase = 2 * np.pi * np.cumsum(freq) / fs + rng.uniform(0, 2 * np.pi)
    amp = np.exp(0.3 * _smooth_noise(rng, n, 1, 1 / (2 * np.pi * 5.0), fs)[:, 0])
    sources = amp[:, None] * np.stack([np.cos(phase), np.sin(phase), np.cos(2 * phase), np.sin(2 * phase)], axis=1)
    theta = rng.uniform(0, 2 * np.pi, size=s.n_muscles)
    theta2 = rng.uniform(0, 2 * np.pi, size=s.n_muscles)
    w2 = rng.uniform(0.2, 0.6, size=s.n_muscles)
    W = np.stack([np.cos(theta), np.sin(theta), w2 * np.cos(theta2), w2 * np.sin(theta2)])
    return sources, sources @ W


def _chaotic(rng, n, fs, s: EMGSetting):
    steps_per_s = 50.0 * s.bandwidth
    n_l = int(np.ceil(n / fs * steps_per_s)) + 2
    z = lorenz_latent(n_l, rng)
    t = np.arange(n) / fs
    sources = np.stack([np.interp(t, np.arange(n_l) / steps_per_s, z[:, k]) for k in range(3)], axis=1)
    W = rng.normal(0.0, 1.0, size=(3, s.n_muscles)) / np.sqrt(3)
    return sources, sources @ W


def _bursty(rng, n, fs, s: EMGSetting):
    k = 3
    switch = rng.random((n, k)) < s.burst_rate / fs
    state = (np.cumsum(switch, axis=0) + rng.integers(0, 2, size=k)) % 2
    sources = state.astype(float)
    W = 0.15 * rng.normal(size=(k, s.n_muscles))
    W[rng.permutation(np.arange(s.n_muscles) % k), np.arange(s.n_muscles)] += 1.0
    return sources, sources @ W


def _drift(rng, n, fs, s: EMGSetting):
    slow = _smooth_noise(rng, n, 3, s.drift_hz, fs)
    fast = _smooth_noise(rng, n, 3, s.bandwidth, fs)
    W = rng.normal(0.0, 1.0, size=(3, s.n_muscles)) / np.sqrt(3)
    Wf = rng.normal(0.0, 1.0, size=(3, s.n_muscles)) / np.sqrt(3)
    return np.concatenate([slow, fast], axis=1), _zscore(slow @ W) + 0.3 * _zscore(fast @ Wf)


def _mixture(rng, n, fs, s: EMGSetting):
    src_r, drive_r = _rhythmic(rng, n, fs, s)
    src_c, drive_c = _chaotic(rng, n, fs, s)
    return np.concatenate([src_r, src_c], axis=1), (_zscore(drive_r) + _zscore(drive_c)) / np.sqrt(2)


_DRIVES = {"rhythmic": _rhythmic, "chaotic": _chaotic, "bursty": _bursty, "drift": _drift, "mixture": _mixture}


# ------------------------------------------------------------------------------ raw signal
def _band_noise(seed: int, key: int, kind: str, a: int, c: int, n_ch: int, rate: float, sos, sd: float) -> np.ndarray:
    """Band-limited noise of unit SD at raw samples [a, c), the same whatever stretch is asked:
    white noise in 1 s blocks seeded by (seed, key, block), filtered causally from a warm-up
    before ``a``."""
    nb, warm = int(round(_NOISE_BLOCK_S * rate)), int(round(_NOISE_WARMUP_S * rate))
    a0 = max(0, a - warm)
    blocks = range(a0 // nb, (c - 1) // nb + 1)
    draws = []
    for b in blocks:
        g = np.random.default_rng([seed, key, b])
        draws.append(g.laplace(size=(nb, n_ch)) / np.sqrt(2) if kind == "laplace" else g.normal(size=(nb, n_ch)))
    white = np.concatenate(draws)
    first = blocks[0] * nb
    return sps.sosfilt(sos, white[a0 - first:c - first], axis=0)[a - a0:] / sd


def _artefact_events(rng, span_samples: int, rate: float, s: EMGSetting, rms: float, sos=None):
    """[(start sample, waveform (L,), channel weights (M,))] of the shared artefacts; with
    ``sos``, each waveform passed through that band-pass (zero-phase, 0.2 s of padding)."""
    events = []
    if s.artefact_rate <= 0:
        return events
    for _ in range(rng.poisson(s.artefact_rate * span_samples / rate)):
        start = int(rng.integers(0, span_samples))
        peak = s.artefact_amplitude * rms * rng.uniform(0.5, 1.5) * rng.choice([-1.0, 1.0])
        if s.artefact_shape == "spike":
            wave = np.hanning(max(3, int(rng.uniform(0.005, 0.02) * rate)))
        elif s.artefact_shape == "step":
            tau = rng.uniform(0.1, 0.5)
            wave = np.exp(-np.arange(int(5 * tau * rate)) / (tau * rate))
        else:
            wave = np.hanning(max(3, int(rng.uniform(0.2, 0.8) * rate)))
        if sos is not None:
            pad = int(0.2 * rate)
            wave = sps.sosfiltfilt(sos, np.r_[np.zeros(pad), wave, np.zeros(pad)])
            start -= pad
        events.append((start, peak * wave, rng.uniform(0.5, 1.0, size=s.n_muscles)))
    return events


def _segments(rng, s: EMGSetting) -> tuple[list[tuple[float, float]] | None, float]:
    """The kept segments (start, stop) in seconds (None: all) and the simulated span (s)."""
    if not s.trials:
        return None, float(s.duration)
    t, segs = float(rng.uniform(*s.trial_gap_seconds)), []
    for _ in range(s.trials):
        length = float(rng.uniform(*s.trial_seconds))
        segs.append((t, t + length))
        t += length + float(rng.uniform(*s.trial_gap_seconds))
    return segs, t


def simulate_emg(setting: EMGSetting) -> SyntheticEMG:
    """Draw the recording described by ``setting`` (see the module docstring for the model).

    Parameters
    ----------
    setting : EMGSetting

    Returns
    -------
    SyntheticEMG
        ``raw`` (n, M) float32 volts (the envelope when ``setting.enveloped``), ``activations``
        (n, M) float32 true activations (>= 0; bin means for an envelope), ``times`` (n,)
        seconds, ``rate`` (Hz of the stored samples), ``names``, ``latent`` (n, K) the latent
        sources, ``kinematics`` (n, J) joint angles, ``segments`` [(start, stop) seconds] of
        the kept segments (one for a continuous recording).

    Raises
    ------
    ValueError
        When an array would exceed :data:`MAX_VALUES` values.
    """
    s = setting
    rng = np.random.default_rng(s.seed)  # one stream: the order of the draws below is the setting's identity
    rate = float(s.rate)
    ranges, k, span, n_span = _sample_ranges(rng, s)
    lat = _latent(rng, s, span)
    carrier = _carrier(rng, s, lat.activations, n_span)
    raw, truth, times = _render(s, ranges, k, lat, carrier)
    M = s.n_muscles
    names = list(DEFAULT_MUSCLES[:M]) + [f"m{i}" for i in range(len(DEFAULT_MUSCLES), M)]
    latent = np.stack([np.interp(times, lat.times, lat.sources[:, j]) for j in range(lat.sources.shape[1])], axis=1)
    kinematics = np.stack([np.interp(times, lat.times, lat.kinematics[:, j]) for j in range(lat.kinematics.shape[1])],
                          axis=1)
    segments = [(a / rate, c / rate) for a, c in ranges]
    return SyntheticEMG(raw=raw, activations=truth, times=times, rate=rate / k, names=names, latent=latent,
                        kinematics=kinematics, segments=segments)


def _sample_ranges(rng: np.random.Generator, s: EMGSetting) -> tuple[list[tuple[int, int]], int, float, int]:
    """The kept segments as sample ranges [(a, c)] (each a whole number of ``k``-sample envelope
    bins), ``k`` (samples per stored sample), the span in seconds and its length in samples.
    Raises ValueError when the recording would exceed :data:`MAX_VALUES` values."""
    rate = float(s.rate)
    segs, span = _segments(rng, s)
    n_span = int(np.ceil(span * rate))
    k = max(1, int(round(rate / s.envelope_rate))) if s.enveloped else 1
    ranges = ([(0, n_span)] if segs is None else
              [(int(np.ceil(a * rate)), int(np.ceil(b * rate))) for a, b in segs])
    ranges = [(a, a + (c - a) // k * k) for a, c in ranges if c - a >= k]
    n_out = sum((c - a) // k for a, c in ranges)
    if n_out * s.n_muscles > MAX_VALUES:
        raise ValueError(f"setting {s.name!r}: {n_out} samples x {s.n_muscles} channels exceeds {MAX_VALUES:.0e} "
                         "values held in memory: shorten it, use fewer muscles, a lower rate or enveloped=True (or "
                         "testing.chunked_emg_nwb for long raw files)")
    return ranges, k, span, n_span


@dataclass(frozen=True)
class _Latent:
    """The slow truth on its own grid: ``times`` (n,) s, ``sources`` (n, K), ``activations`` (n, M)
    (>= 0) and ``kinematics`` (n, J)."""
    times: np.ndarray
    sources: np.ndarray
    activations: np.ndarray
    kinematics: np.ndarray


def _latent(rng: np.random.Generator, s: EMGSetting, span: float) -> _Latent:
    """Draw the latent sources of ``s.dynamics``, band-limit the drive to ``s.bandwidth`` and map it
    to activations through a softplus with a per-muscle gain and offset; joint angles follow."""
    fs_lat = max(100.0, 10.0 * s.bandwidth)
    n_lat = int(np.ceil(span * fs_lat)) + 2
    sources, drive = _DRIVES[s.dynamics](rng, n_lat, fs_lat, s)
    if s.bandwidth < 0.45 * fs_lat:
        drive = sps.sosfiltfilt(sps.butter(2, s.bandwidth, fs=fs_lat, output="sos"), drive, axis=0)
    gain = rng.uniform(1.0, 2.0, size=s.n_muscles)
    offset = rng.uniform(-1.0, 0.0, size=s.n_muscles)
    act_lat = np.logaddexp(0.0, gain * _zscore(drive) + offset)
    return _Latent(times=np.arange(n_lat) / fs_lat, sources=sources, activations=act_lat,
                   kinematics=kinematics_from(act_lat, fs_lat, s.seed, s.n_joints))


@dataclass(frozen=True)
class _Carrier:
    """What turns activations into recorded EMG: the additive floor (per muscle), hum gains and
    phases, DC offsets, the recording band (``sos``, unit-SD noise after it: ``sd``) and the
    artefact events [(start sample, waveform, per-muscle weights)]."""
    floor: np.ndarray | float
    hum_gain: np.ndarray
    hum_phase: np.ndarray
    dc: np.ndarray
    sos: np.ndarray
    sd: float
    events: list


def _carrier(rng: np.random.Generator, s: EMGSetting, act_lat: np.ndarray, n_span: int) -> _Carrier:
    rate, M = float(s.rate), s.n_muscles
    rms = np.sqrt((act_lat ** 2).mean(0))  # EMG RMS per muscle (unit-SD carrier)
    mean_rms = float(rms.mean())
    floor = 0.0 if s.snr_db is None else rms * 10 ** (-s.snr_db / 20)
    hum_gain = rng.uniform(0.5, 1.5, size=M) * mean_rms
    hum_phase = rng.uniform(0, 2 * np.pi, size=1 + len(s.hum_harmonics))
    dc = rng.uniform(-0.5, 0.5, size=M) * mean_rms
    sos = sps.butter(4, [20.0, min(450.0, 0.45 * rate)], btype="bandpass", fs=rate, output="sos")
    # drawn last: artefacts change nothing else; an envelope's lab band-passed them before rectifying
    events = _artefact_events(rng, n_span, rate, s, mean_rms, sos if s.enveloped else None)
    impulse = np.zeros(int(2 * rate))
    impulse[0] = 1.0
    sd = float(np.sqrt(np.sum(sps.sosfilt(sos, impulse) ** 2)))
    return _Carrier(floor=floor, hum_gain=hum_gain, hum_phase=hum_phase, dc=dc, sos=sos, sd=sd, events=events)


def _render(s: EMGSetting, ranges: list[tuple[int, int]], k: int, lat: _Latent, carrier: _Carrier):
    """Build the stored samples block by block (memory stays bounded by :data:`_BLOCK_S`): returns
    raw (n, M) float32, truth (n, M) float32 and times (n,) s."""
    rate, M = float(s.rate), s.n_muscles
    n_out = sum((c - a) // k for a, c in ranges)
    raw = np.empty((n_out, M), np.float32)
    truth = np.empty((n_out, M), np.float32)
    times = np.empty(n_out)
    block = max(k, int(_BLOCK_S * rate) // k * k)
    row = 0
    for a0, c0 in ranges:
        for a in range(a0, c0, block):
            c = min(c0, a + block)
            out, act, t = _render_block(s, a, c, k, lat, carrier)
            n = out.shape[0]
            raw[row:row + n] = out * s.noise_scale
            truth[row:row + n] = act
            times[row:row + n] = t
            row += n
    return raw, truth, times


def _render_block(s: EMGSetting, a: int, c: int, k: int, lat: _Latent, carrier: _Carrier):
    """Samples ``a:c`` (a multiple of ``k`` long): the stored values, the truth and the times."""
    rate, M = float(s.rate), s.n_muscles
    t = np.arange(a, c) / rate
    act = np.stack([np.interp(t, lat.times, lat.activations[:, m]) for m in range(M)], axis=1)
    emg = act * _band_noise(s.seed, 1, s.noise, a, c, M, rate, carrier.sos, carrier.sd)
    if s.snr_db is not None:
        emg += carrier.floor * _band_noise(s.seed, 2, "gaussian", a, c, M, rate, carrier.sos, carrier.sd)
    for start, wave, weights in carrier.events:
        lo, hi = max(a, start, 0), min(c, start + wave.size)
        if lo < hi:
            emg[lo - a:hi - a] += wave[lo - start:hi - start, None] * weights[None, :]
    n = (c - a) // k
    if s.enveloped:
        return np.abs(emg).reshape(n, k, M).mean(1), act.reshape(n, k, M).mean(1), t.reshape(n, k).mean(1)
    hum = np.sin(2 * np.pi * s.hum_hz * t + carrier.hum_phase[0]) * s.hum_amplitude
    for h, amp in enumerate(s.hum_harmonics, start=2):
        hum = hum + amp * np.sin(2 * np.pi * h * s.hum_hz * t + carrier.hum_phase[h - 1])
    return emg + hum[:, None] * carrier.hum_gain[None, :] + carrier.dc, act, t


def write_setting_nwb(path: str | Path, setting: EMGSetting, synth: SyntheticEMG | None = None) -> Path:
    """Simulate ``setting`` and write it to NWB with :func:`nwb_autolfads.testing.write_emg_nwb`.

    The recording is ``acquisition/EMG`` (timestamps when it has trials), the truth
    ``processing/ground_truth/true_activations`` (read it into bins with
    :func:`nwb_autolfads.testing.read_truth`), the joint angles ``processing/behavior/joint_angles``
    (100 Hz, inside the recorded segments) and one trial per segment (a trial every 2 s for a
    continuous recording). ``synth``: ``simulate_emg(setting)`` when already drawn. Returns ``path``.
    """
    synth = simulate_emg(setting) if synth is None else synth
    kind = (f"rectified EMG averaged into {1e3 / synth.rate:g} ms bins (an envelope)" if setting.enveloped
            else "Raw EMG")
    return write_emg_nwb(path, synth, use_timestamps=bool(setting.trials), behavior=True, seed=setting.seed,
                         description=f"{kind} (synthetic, setting {setting.name}); muscles: " + ", ".join(synth.names))
