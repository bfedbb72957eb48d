"""A family of synthetic EMG settings covering the axes real EMG varies, and a fixed split of it
into a tuning part and a held-out part.

:func:`emg_family` draws about 24 :class:`~nwb_autolfads.simulate.emg.EMGSetting` from ranges
with a seed, with every value of each categorical axis present (each dynamics, both noise
models, each artefact shape and none, 50 Hz / 60 Hz / off-nominal / no hum, raw and enveloped,
continuous and trial-structured). :func:`split` assigns each setting to the tuning or held-out
part from a hash of the seed and its name only, so the split does not depend on the order of
the list or on which other settings are in it. Defaults may be tuned on the tuning part only;
the held-out part is what gets reported.
"""

from __future__ import annotations

import hashlib

import numpy as np

from nwb_autolfads.simulate.emg import ARTEFACT_SHAPES, DYNAMICS, NOISE_MODELS, EMGSetting

__all__ = ["FAMILY_SEED", "LONG_SECONDS", "emg_family", "recorded_seconds", "split"]

FAMILY_SEED = 2026
LONG_SECONDS = 120.0
"""Settings longer than this (recorded seconds) are always held out (too slow to tune on)."""


def _balanced(rng: np.random.Generator, values, n: int) -> list:
    """``n`` values cycling through ``values`` (each occurs), in a random order."""
    return [values[i] for i in rng.permutation(np.arange(n) % len(values))]


def emg_family(seed: int = FAMILY_SEED, n: int = 24, n_long: int = 2) -> list[EMGSetting]:
    """The benchmark family of synthetic EMG settings.

    Parameters
    ----------
    seed : int
        Seeds every draw (the family is a deterministic function of ``seed``, ``n``, ``n_long``).
    n : int
        Settings (at least 5, so that each categorical axis value occurs).
    n_long : int
        Of them, long recordings (5-10 min); the others last 30-120 s (or 20-60 trials).

    Returns
    -------
    list of EMGSetting with unique readable names.

    Ranges: 4-32 muscles (log-uniform), activation bandwidth 1.5-10 Hz (log-uniform), rhythm
    0.5-3 Hz (at most bandwidth / 1.5), SNR 5-30 dB, raw rate 1, 2, 4, 5 or 10 kHz, artefacts
    0.05-1 per second of 5-50 x the EMG RMS, hum 0.2-2 x the EMG RMS with 0-2 harmonics,
    envelopes at 100-500 Hz, trials of 0.5-3 s with 0.5-2 s gaps.
    """
    if n < 5:
        raise ValueError(f"n = {n}: at least 5 settings are needed to cover every dynamics")
    rng = np.random.default_rng([seed, 15])
    dynamics = _balanced(rng, DYNAMICS, n)
    noise = _balanced(rng, NOISE_MODELS, n)
    artefacts = _balanced(rng, ("none",) + ARTEFACT_SHAPES, n)
    hum = _balanced(rng, ("none", "50", "60", "off"), n)
    layout = _balanced(rng, ("raw", "raw", "raw", "enveloped", "trials", "raw"), n)
    rates = _balanced(rng, (1000.0, 2000.0, 4000.0, 5000.0, 10000.0), n)
    muscles = np.round(np.exp(rng.uniform(np.log(4), np.log(32), size=n))).astype(int)
    muscles[rng.permutation(n)[:2]] = (4, 32)  # both ends of the range occur
    long_ones = set(rng.choice([i for i in range(n) if layout[i] == "raw"], size=min(n_long, n), replace=False))
    out, names = [], set()
    for i in range(n):
        bandwidth = float(np.exp(rng.uniform(np.log(1.5), np.log(10.0))))
        kw = dict(
            seed=int(rng.integers(0, 2**31 - 1)), dynamics=dynamics[i], noise=noise[i],
            n_muscles=int(muscles[i]), bandwidth=round(bandwidth, 2),
            rhythm_hz=round(float(rng.uniform(0.5, min(3.0, bandwidth / 1.5))), 2),
            burst_rate=round(float(rng.uniform(0.3, 2.0)), 2), drift_hz=round(float(rng.uniform(0.05, 0.3)), 3),
            snr_db=round(float(rng.uniform(5.0, 30.0)), 1),
            rate=rates[i],
            duration=float(round(rng.uniform(5 * 60, 10 * 60), -1) if i in long_ones else round(rng.uniform(30, 120))),
        )
        if artefacts[i] != "none":
            kw.update(artefact_shape=artefacts[i], artefact_rate=round(float(np.exp(rng.uniform(np.log(0.05), 0.0))), 3),
                      artefact_amplitude=round(float(rng.uniform(5.0, 50.0)), 1))
        if hum[i] != "none":
            base = {"50": 50.0, "60": 60.0, "off": float(rng.choice([50.0, 60.0])) + round(float(rng.uniform(-0.5, 0.5)), 2)}
            kw.update(hum_hz=base[hum[i]], hum_amplitude=round(float(rng.uniform(0.2, 2.0)), 2),
                      hum_harmonics=tuple(round(float(v), 2) for v in rng.uniform(0.1, 0.6, size=rng.integers(0, 3))))
        if layout[i] == "enveloped":
            kw.update(enveloped=True, envelope_rate=float(rng.choice([100.0, 200.0, 250.0, 500.0])))
        elif layout[i] == "trials":
            kw.update(trials=int(rng.integers(20, 61)))
        setting = EMGSetting(**kw)
        name, k = setting.name, 1
        while name in names:
            k += 1
            name = f"{setting.name}-{k}"
        names.add(name)
        out.append(setting.replace(name=name))
    return out


def recorded_seconds(setting: EMGSetting) -> float:
    """The recorded length (s): ``duration``, or the mean trial length x the number of trials."""
    return float(setting.duration) if not setting.trials else setting.trials * float(np.mean(setting.trial_seconds))


def _score(seed: int, name: str) -> float:
    digest = hashlib.sha256(f"{seed}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def split(settings: list[EMGSetting], seed: int = FAMILY_SEED,
          fraction: float = 1 / 3) -> tuple[list[EMGSetting], list[EMGSetting]]:
    """The fixed (tuning, held-out) split of ``settings``.

    Stratified by dynamics: among the settings of each dynamics not longer than
    :data:`LONG_SECONDS`, the ``round(fraction x count)`` (at least one when there are two or
    more) with the smallest hash of ``seed`` and name are in the tuning part; the rest, and every
    longer setting, are held out. So every dynamics is in both parts where it can be, and the
    assignment depends on the seed and the names only, never on the order of ``settings``.
    Both parts keep the order of ``settings``.

    Raises
    ------
    ValueError
        When two settings share a name.
    """
    names = [s.name for s in settings]
    if len(set(names)) != len(names):
        raise ValueError("settings must have unique names to be split: "
                         + ", ".join(sorted({x for x in names if names.count(x) > 1})))
    chosen = set()
    for dynamics in {s.dynamics for s in settings}:
        group = sorted((s.name for s in settings if s.dynamics == dynamics and recorded_seconds(s) <= LONG_SECONDS),
                       key=lambda name: _score(seed, name))
        count = int(round(fraction * len(group)))
        chosen.update(group[:max(count, 1 if len(group) >= 2 else 0)])
    tuning = [s for s in settings if s.name in chosen]
    held = [s for s in settings if s.name not in chosen]
    return tuning, held
