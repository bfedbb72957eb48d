"""Several sessions of one subject: synthetic EMG recordings that share their latent dynamics but
differ in muscles, gains and noise (issue 18: the benchmark of multi-session "stitched" models).

One :class:`SessionsSetting` (a frozen dataclass, every parameter with a default) describes the
set; :func:`simulate_sessions` draws it (deterministically, from ``seed``) and
:func:`write_sessions_nwb` writes one NWB file per session, DANDI-named, with the truth beside
the recording as :func:`~nwb_autolfads.simulate.emg.write_setting_nwb` stores it.

The model
---------
1. **Shared latent** (one for all sessions): the sources of ``dynamics`` (the functions of
   :mod:`nwb_autolfads.simulate.emg`: a Lorenz system, a gait-like oscillator, ...) drawn once
   over one long span on a coarse grid (``max(100, 10 x bandwidth)`` Hz); session k records its
   own stretch of it (``duration`` seconds starting at ``k x (duration + gap)``), so every
   session follows the SAME dynamics from its own state. A fixed signed map of the sources, low-
   passed at ``bandwidth`` Hz, z-scored over the whole span and passed through a softplus (gain
   1-2, offset -1-0) gives ``n_synergies`` non-negative synergies h_r(t) (muscle synergies, the
   shared latent), z-scored with the statistics of the whole span, so the map from latent to
   synergies is the same in every session.

2. **Per session** (seeded by ``(seed, k)``): a muscle count in ``muscles`` (inclusive), the
   muscles' names (:data:`CORE_MUSCLES` are in every session, the others drawn from a pool, so
   some names are shared and some are not), a non-negative mixing from the synergies to the
   muscles (each column sums to 1; with ``same_muscles`` a muscle of a given name mixes the
   synergies the same way in every session, as the same animal's muscle would; otherwise each
   session draws its own), per-channel gains log-uniform in [1, ``gain_spread``] (electrodes,
   skin, amplifier: a 10x spread by default), its own noise floor (``snr_db`` range), mains hum
   and DC offset. True activation of channel m: ``gain_m x sum_r W_rm h_r(t)`` (>= 0).

3. The raw EMG at ``rate`` Hz is rendered from the activations as in
   :func:`~nwb_autolfads.simulate.emg.simulate_emg` (band-limited Laplacian carrier x activation
   + noise floor + hum + DC, x ``noise_scale`` volts; the same block-by-block code).

Joint angles (``n_joints``) follow the synergies through one map shared by all sessions
(:func:`~nwb_autolfads.simulate.emg.kinematics_from`), so behaviour is comparable across sessions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
from scipy import signal as sps

from nwb_autolfads.simulate.emg import (_DRIVES, DYNAMICS, EMGSetting, _carrier, _Latent, _render, _sample_ranges,
                                        _zscore, kinematics_from)
from nwb_autolfads.testing import DEFAULT_MUSCLES, SyntheticEMG, write_emg_nwb

__all__ = ["CORE_MUSCLES", "MUSCLE_POOL", "SessionsSetting", "SyntheticSessions", "simulate_sessions",
           "session_files", "write_sessions_nwb"]

MUSCLE_POOL = DEFAULT_MUSCLES + ("EDL", "PL", "FDL", "TP", "Gr", "SM", "VI", "TFL", "GMed", "Pec", "LD", "Del")
"""Names the sessions' muscles are drawn from (hind limb, then others; ``m<i>`` beyond them)."""
CORE_MUSCLES = 3
"""The first this many names of :data:`MUSCLE_POOL` are recorded in every session."""


@dataclass(frozen=True)
class SessionsSetting:
    """Several sessions of one subject: every parameter of :func:`simulate_sessions`.

    Parameters
    ----------
    name : str
        Readable label; empty: built from the parameters.
    seed : int
        Seeds every draw (the sessions are a deterministic function of the setting).
    subject : str
        Subject id written into every file (letters and digits: a DANDI label).
    n_sessions : int
        Sessions S (1-50).
    dynamics : str
        Shared latent dynamics, one of :data:`~nwb_autolfads.simulate.emg.DYNAMICS`.
    n_synergies : int
        Non-negative synergies the shared latent is mapped to (2-10).
    muscles : tuple of int
        (low, high) muscle count of a session, inclusive; low >= :data:`CORE_MUSCLES`, high <= 64.
    same_muscles : bool
        A muscle of a given name has the same mixing in every session (else: each session its own).
    gain_spread : float
        Per-channel gains are log-uniform in [1, gain_spread] (>= 1).
    snr_db : tuple of float
        (low, high) of each session's noise floor, dB below its EMG RMS (uniform).
    hum_amplitude : tuple of float
        (low, high) of each session's mains hum at ``hum_hz``, x its mean EMG RMS.
    hum_hz : float
        Mains frequency, Hz.
    bandwidth, rhythm_hz, burst_rate, drift_hz : float
        As in :class:`~nwb_autolfads.simulate.emg.EMGSetting` (Hz).
    rate : float
        Raw sampling rate, Hz.
    duration : float
        Seconds per session.
    gap : float
        Seconds of the shared latent between two sessions' stretches (not recorded).
    n_joints : int
        Joint angles driven by the synergies.
    noise_scale : float
        Volts per unit of activation.
    """

    name: str = ""
    seed: int = 0
    subject: str = "synth01"
    n_sessions: int = 4
    dynamics: str = "chaotic"
    n_synergies: int = 4
    muscles: tuple[int, int] = (6, 16)
    same_muscles: bool = True
    gain_spread: float = 10.0
    snr_db: tuple[float, float] = (10.0, 25.0)
    hum_amplitude: tuple[float, float] = (0.2, 1.0)
    hum_hz: float = 60.0
    bandwidth: float = 4.0
    rhythm_hz: float = 1.5
    burst_rate: float = 1.0
    drift_hz: float = 0.1
    rate: float = 2000.0
    duration: float = 20.0
    gap: float = 30.0
    n_joints: int = 3
    noise_scale: float = 1e-4

    def __post_init__(self):
        object.__setattr__(self, "muscles", tuple(int(v) for v in self.muscles))
        for key in ("snr_db", "hum_amplitude"):
            object.__setattr__(self, key, tuple(float(v) for v in getattr(self, key)))
        lo, hi = self.muscles
        checks = (
            (self.dynamics in DYNAMICS, f"dynamics {self.dynamics!r}: one of {', '.join(DYNAMICS)}"),
            (1 <= self.n_sessions <= 50, f"n_sessions {self.n_sessions}: 1-50"),
            (2 <= self.n_synergies <= 10, f"n_synergies {self.n_synergies}: 2-10"),
            (CORE_MUSCLES <= lo <= hi <= 64, f"muscles {self.muscles}: (low, high) with {CORE_MUSCLES} <= low <= high <= 64"),
            (self.gain_spread >= 1, f"gain_spread {self.gain_spread}: at least 1 (1: equal gains)"),
            (len(self.snr_db) == 2 and self.snr_db[0] <= self.snr_db[1], f"snr_db {self.snr_db}: (low, high) in dB"),
            (len(self.hum_amplitude) == 2 and 0 <= self.hum_amplitude[0] <= self.hum_amplitude[1],
             f"hum_amplitude {self.hum_amplitude}: (low, high) >= 0"),
            (self.duration > 0 and self.gap >= 0, f"duration {self.duration} s / gap {self.gap} s: > 0 / >= 0"),
            (self.subject.isalnum(), f"subject {self.subject!r}: letters and digits only (a DANDI label)"),
        )
        for ok, message in checks:
            if not ok:
                raise ValueError(f"SessionsSetting: {message}")
        self.session_setting(0, lo, 20.0, 0.0)  # the rest (rate, bandwidth, ...) checked by EMGSetting
        if not self.name:
            object.__setattr__(self, "name", f"{self.dynamics}-{self.n_sessions}ses-{lo}-{hi}m-{self.duration:g}s"
                               f"-seed{self.seed}")

    def replace(self, **changes) -> "SessionsSetting":
        """A copy with ``changes`` (the name is rebuilt unless given)."""
        changes.setdefault("name", "")
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        """The parameters as plain JSON-able values."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    def session_setting(self, k: int, n_muscles: int, snr_db: float, hum: float) -> EMGSetting:
        """The :class:`EMGSetting` of session ``k`` (its carrier, noise and rendering)."""
        return EMGSetting(name=f"{self.subject}-ses-{k + 1}", seed=_session_seed(self.seed, k), dynamics=self.dynamics,
                          n_muscles=n_muscles, bandwidth=self.bandwidth, rhythm_hz=self.rhythm_hz,
                          burst_rate=self.burst_rate, drift_hz=self.drift_hz, snr_db=snr_db, hum_hz=self.hum_hz,
                          hum_amplitude=hum, rate=self.rate, duration=self.duration, n_joints=self.n_joints,
                          noise_scale=self.noise_scale)


def _session_seed(seed: int, k: int) -> int:
    return int(np.random.default_rng([seed, 101, k]).integers(0, 2**31 - 1))


@dataclass
class SyntheticSessions:
    """What :func:`simulate_sessions` drew.

    Attributes
    ----------
    setting : SessionsSetting
    sessions : list of SyntheticEMG
        Per session: ``raw`` (n_k, M_k) volts, ``activations`` (n_k, M_k) true activations
        (>= 0, with the channel's gain), ``times`` (n_k,) s from 0 (each session its own clock),
        ``names`` (M_k muscles), ``latent`` (n_k, R) the shared synergies on the session's
        samples, ``kinematics`` (n_k, J).
    mixing : list of numpy.ndarray
        Per session, (R, M_k) non-negative synergy -> muscle weights (columns sum to 1).
    gains : list of numpy.ndarray
        Per session, (M_k,) channel gains.
    starts : list of float
        Where each session's stretch starts in the shared latent's time, s.
    """

    setting: SessionsSetting
    sessions: list[SyntheticEMG]
    mixing: list[np.ndarray]
    gains: list[np.ndarray]
    starts: list[float]

    def truth_in_bins(self, k: int, times: np.ndarray, bin_size: float) -> np.ndarray:
        """Session ``k``'s true activations averaged into the bins centred at ``times`` (s) of
        width ``bin_size`` (s): (n_bins, M_k), NaN where a bin holds no sample (as
        :func:`nwb_autolfads.testing.read_truth` reads them back from the file)."""
        from nwb_autolfads.evaluation.comparison import bin_mean

        synth = self.sessions[k]
        return bin_mean(synth.times, synth.activations.astype(float), np.asarray(times, float), bin_size)


@dataclass(frozen=True)
class _Shared:
    """The shared latent on its grid: ``times`` (n,) s, ``sources`` (n, K), ``synergies`` (n, R)
    (>= 0), ``kinematics`` (n, J); the per-name mixing ``by_name`` {name: (R,)} of the pool."""
    times: np.ndarray
    sources: np.ndarray
    synergies: np.ndarray
    kinematics: np.ndarray
    by_name: dict


def _shared(s: SessionsSetting) -> _Shared:
    rng = np.random.default_rng([s.seed, 100])
    fs = max(100.0, 10.0 * s.bandwidth)
    span = s.n_sessions * (s.duration + s.gap)
    n = int(np.ceil(span * fs)) + 2
    master = s.session_setting(0, s.n_synergies, 20.0, 0.0)  # only its dynamics parameters are used
    sources, _ = _DRIVES[s.dynamics](rng, n, fs, master)
    A = rng.normal(size=(sources.shape[1], s.n_synergies)) / np.sqrt(sources.shape[1])
    drive = _zscore(sources) @ A
    if s.bandwidth < 0.45 * fs:
        drive = sps.sosfiltfilt(sps.butter(2, s.bandwidth, fs=fs, output="sos"), drive, axis=0)
    gain, offset = rng.uniform(1.0, 2.0, size=s.n_synergies), rng.uniform(-1.0, 0.0, size=s.n_synergies)
    synergies = np.logaddexp(0.0, gain * _zscore(drive) + offset)
    pool = _pool(s.muscles[1])
    by_name = {name: _mixing_column(rng, s.n_synergies) for name in pool}
    kin = kinematics_from(synergies, fs, s.seed, s.n_joints)
    return _Shared(times=np.arange(n) / fs, sources=sources, synergies=synergies, kinematics=kin, by_name=by_name)


def _pool(n: int) -> tuple[str, ...]:
    return MUSCLE_POOL + tuple(f"m{i}" for i in range(len(MUSCLE_POOL), n))


def _mixing_column(rng: np.random.Generator, r: int) -> np.ndarray:
    """(r,) non-negative weights summing to 1, mostly on one or two synergies (Dirichlet 0.5)."""
    return rng.dirichlet(np.full(r, 0.5))


def simulate_sessions(setting: SessionsSetting) -> SyntheticSessions:
    """Draw the sessions described by ``setting`` (see the module docstring for the model).

    Parameters
    ----------
    setting : SessionsSetting

    Returns
    -------
    SyntheticSessions
        The sessions (one :class:`~nwb_autolfads.testing.SyntheticEMG` each), their mixing,
        gains and where each starts in the shared latent.
    """
    s = setting
    shared = _shared(s)
    counts_rng = np.random.default_rng([s.seed, 102])
    lo, hi = s.muscles
    counts = counts_rng.choice(np.arange(lo, hi + 1), size=s.n_sessions, replace=s.n_sessions > hi - lo + 1)
    out = SyntheticSessions(setting=s, sessions=[], mixing=[], gains=[], starts=[])
    for k in range(s.n_sessions):
        synth, mixing, gains = _session(s, shared, k, int(counts[k]))
        out.sessions.append(synth)
        out.mixing.append(mixing)
        out.gains.append(gains)
        out.starts.append(k * (s.duration + s.gap))
    return out


def _session(s: SessionsSetting, shared: _Shared, k: int, n_muscles: int):
    """Session ``k``: (SyntheticEMG, mixing (R, M), gains (M,))."""
    rng = np.random.default_rng([s.seed, 103, k])
    pool = _pool(s.muscles[1])
    extra = rng.choice(np.arange(CORE_MUSCLES, len(pool)), size=n_muscles - CORE_MUSCLES, replace=False)
    names = [pool[i] for i in sorted([*range(CORE_MUSCLES), *extra.tolist()])]
    mixing = np.stack([shared.by_name[m] if s.same_muscles else _mixing_column(rng, s.n_synergies) for m in names],
                      axis=1)
    gains = np.exp(rng.uniform(0.0, np.log(s.gain_spread), size=n_muscles))
    es = s.session_setting(k, n_muscles, float(rng.uniform(*s.snr_db)), float(rng.uniform(*s.hum_amplitude)))
    fs = 1.0 / (shared.times[1] - shared.times[0])
    i0 = int(round(k * (s.duration + s.gap) * fs))
    n_lat = int(np.ceil(s.duration * fs)) + 2
    stretch = slice(i0, i0 + n_lat)
    syn = shared.synergies[stretch]
    lat = _Latent(times=np.arange(n_lat) / fs, sources=shared.sources[stretch], activations=(syn @ mixing) * gains,
                  kinematics=shared.kinematics[stretch])
    carrier_rng = np.random.default_rng(es.seed)
    ranges, step, _span, n_span = _sample_ranges(carrier_rng, es)
    carrier = _carrier(carrier_rng, es, lat.activations, n_span)
    raw, truth, times = _render(es, ranges, step, lat, carrier)
    on_samples = [np.stack([np.interp(times, lat.times, x[:, j]) for j in range(x.shape[1])], axis=1)
                  for x in (syn, lat.kinematics)]
    synth = SyntheticEMG(raw=raw, activations=truth, times=times, rate=float(s.rate), names=names,
                         latent=on_samples[0], kinematics=on_samples[1], segments=[(0.0, float(times[-1]) + 1 / s.rate)])
    return synth, mixing, gains


def session_files(folder: str | Path, setting: SessionsSetting) -> list[Path]:
    """Where :func:`write_sessions_nwb` writes: ``folder/sub-<subject>/sub-<subject>_ses-<k>_ecephys.nwb``
    for k = 1..S (DANDI's layout)."""
    sub = f"sub-{setting.subject}"
    return [Path(folder) / sub / f"{sub}_ses-{k + 1}_ecephys.nwb" for k in range(setting.n_sessions)]


def write_sessions_nwb(folder: str | Path, setting: SessionsSetting,
                       synth: SyntheticSessions | None = None) -> list[Path]:
    """Simulate ``setting`` and write one NWB file per session (:func:`session_files`).

    Each file holds the session's raw EMG as an ElectricalSeries ``acquisition/EMG`` (muscle
    names in the electrodes table's ``location``), its truth in
    ``processing/ground_truth/true_activations`` (read it into bins with
    :func:`nwb_autolfads.testing.read_truth`), joint angles and a trial every 2 s, the same
    subject (``setting.subject``), ``session_id`` k and a start one day after the previous
    session's. ``synth``: ``simulate_sessions(setting)`` when already drawn. Existing files are
    replaced. Returns the paths in session order.
    """
    synth = simulate_sessions(setting) if synth is None else synth
    paths = session_files(folder, setting)
    day0 = datetime(2024, 1, 1, 12, 0, tzinfo=timezone.utc)
    for k, (path, session) in enumerate(zip(paths, synth.sessions)):
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"identifier": f"{setting.name}-ses-{k + 1}", "session_id": str(k + 1), "subject_id": setting.subject,
                "session_start_time": day0 + timedelta(days=k),
                "session_description": f"synthetic EMG, session {k + 1} of {setting.n_sessions} of subject "
                                       f"{setting.subject} (nwb_autolfads.simulate.sessions, {setting.name})"}
        write_emg_nwb(path, session, layout="electricalseries", behavior=True, seed=_session_seed(setting.seed, k),
                      session=meta, description="Raw EMG (synthetic, session " + f"{k + 1}); muscles: "
                      + ", ".join(session.names))
    return paths
