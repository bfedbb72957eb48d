"""How well raw EMG is told from an already-rectified / enveloped signal, over the kinds of
signal testers' files held (:func:`nwb_autolfads.data.scan.looks_rectified`).

    python benchmarks/raw_or_envelope.py [--rates 250 500 1000 2000 10000] [--seconds 20]

Per sampling rate, synthetic raw EMG (3 muscles, :func:`nwb_autolfads.testing.synthetic_emg`) is
turned into each kind below, and the detector's answer is compared with the truth:

- raw: clean (the generator's flat 20-450 Hz carrier); surface-EMG spectra (median frequency
  45-96 Hz), also under movement artefacts; with mains hum at 50 or 60 Hz and two harmonics (5x the EMG's SD); with movement
  artefacts (band-limited noise at 1-12 or 5-20 Hz, 1, 3 and 10 times the EMG's SD); with ECG
  (10 and 30 times); needle EMG (sparse lopsided motor-unit potentials, the large phase up or
  down); each also shifted to be all positive (an unsigned ADC, "uADC");
- envelope: rectified EMG unsmoothed, and with an offset of 3 times its peak; Hilbert envelope and
  Teager-Kaiser energy, as they are and z-scored; a 10 Hz envelope at rate / 8 held for 8
  samples (zero-order hold) as it is, minus its 5th percentile and z-scored; Butterworth low-pass
  envelopes (2-50 Hz, orders 2 and 4), moving RMS and box averages (50 and 100 ms); each as it
  is, with its 5th percentile subtracted, with its mean subtracted and z-scored;
- mixed: raw and enveloped channels in one series (3 + 3, 6 + 2), which only asking gets right.

Prints a markdown table: per rate, the cases, those told right, those where the user is asked
(``AmbiguousEmg``: the run stops and asks for --emg-raw / --emg-preprocessed) and those told wrong,
named. A wrong answer is a silently wrong result (r with the truth falls to 0.0-0.7), an asked one
is not.
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
from scipy import signal as sps

from nwb_autolfads.data.scan import AmbiguousEmg, looks_rectified
from nwb_autolfads.testing import synthetic_emg


def _envelope(raw: np.ndarray, fs: float, kind: str, hz: float, order: int) -> np.ndarray:
    rect = np.abs(raw - raw.mean(0))
    if kind == "butter":
        return sps.sosfiltfilt(sps.butter(order, hz, fs=fs, output="sos"), rect, axis=0)
    width = max(int(fs / hz), 1)
    kernel = np.ones(width) / width
    smooth = np.apply_along_axis(lambda c: np.convolve(c, kernel, mode="same"), 0, rect ** 2 if kind == "rms" else rect)
    return np.sqrt(smooth) if kind == "rms" else smooth


def _surface_carrier(shape: tuple, fs: float, low: float, high: float, rng) -> np.ndarray:
    """Unit-SD noise with a surface-EMG spectrum (Shwedyk et al. 1977: f_h^4 f^2 / ((f^2 + f_l^2)
    (f^2 + f_h^2)^2)) in 20-450 Hz: most power at 40-150 Hz, unlike the flat 20-450 Hz band of
    :func:`~nwb_autolfads.testing.synthetic_emg`."""
    freqs = np.fft.rfftfreq(shape[0], 1.0 / fs)
    gain = np.sqrt(high**4 * freqs**2 / ((freqs**2 + low**2) * (freqs**2 + high**2) ** 2))
    gain[(freqs < 20.0) | (freqs > min(450.0, 0.45 * fs))] = 0.0
    x = np.fft.irfft(np.fft.rfft(rng.normal(size=shape), axis=0) * gain[:, None], n=shape[0], axis=0)
    return x / x.std(axis=0)


def cases(fs: float, seconds: float):
    """(name, samples (n, 3; 6-8 for the mixed), is it raw (None: a mix, to be asked about)) for
    every kind at rate ``fs``."""
    synth = synthetic_emg(duration=seconds, rate=fs, n_muscles=3, seed=0)
    raw, t = synth.raw - synth.raw.mean(0), synth.times
    rng = np.random.default_rng(1)
    raws = [("raw clean", raw)]
    level = 0.2 + synth.activations / synth.activations.max(axis=0)
    for low, high in ((20.0, 60.0), (40.0, 80.0), (60.0, 120.0), (40.0, 40.0)):
        surface = level * _surface_carrier(raw.shape, fs, low, high, rng)
        raws.append((f"surface EMG f_l {low:g} f_h {high:g} Hz", surface))
        moving = sps.sosfiltfilt(sps.butter(4, [1, 12], btype="band", fs=fs, output="sos"),
                                 rng.normal(size=raw.shape), axis=0)
        raws.append((f"surface EMG f_l {low:g} f_h {high:g} Hz + movement x3",
                     surface + 3 * surface.std(0) * moving / moving.std(0)))
    for line in (50.0, 60.0):
        hum = sum(a * np.sin(2 * np.pi * k * line * t) for k, a in ((1, 5.0), (2, 2.5), (3, 1.6)))
        raws.append((f"raw + {line:g} Hz hum", raw + hum[:, None] * raw.std()))
    for lo, hi in ((1, 12), (5, 20)):
        moving = sps.sosfiltfilt(sps.butter(4, [lo, hi], btype="band", fs=fs, output="sos"),
                                 rng.normal(size=raw.shape), axis=0)
        for k in (1, 3, 10):
            raws.append((f"raw + movement {lo}-{hi} Hz x{k}", raw + k * raw.std(0) * moving / moving.std(0)))
    ecg = np.zeros_like(t)
    for beat in np.arange(0.3, seconds, 0.9):
        ecg += 5 * np.exp(-((t - beat) / 0.01) ** 2) - np.exp(-((t - beat - 0.25) / 0.05) ** 2)
    for k in (10, 30):
        raws.append((f"raw + ECG x{k}", raw + k * raw.std(0) * ecg[:, None] / ecg.std()))
    lag = np.arange(-int(0.004 * fs), int(0.004 * fs) + 1) / fs
    for sign in (1, -1):  # needle EMG: sparse lopsided motor-unit potentials, the large phase up or down
        muap = sign * (np.exp(-(lag / 0.0005) ** 2) - 0.3 * np.exp(-((lag + 0.0012) / 0.0004) ** 2)
                       - 0.5 * np.exp(-((lag - 0.0013) / 0.0006) ** 2))
        firing = rng.random(raw.shape) < (level - 0.2) * 60.0 / fs
        needle = np.stack([np.convolve(firing[:, c].astype(float), muap, "same") for c in range(raw.shape[1])], 1)
        raws.append((f"needle EMG, large phase {'up' if sign > 0 else 'down'}",
                     needle + 0.02 * rng.normal(size=raw.shape)))
    for name, x in raws:
        yield name, x, True
        yield name + " (uADC)", x - x.min() + 1.0, True
    rectified = np.abs(raw)
    yield "rectified", rectified, False
    yield "rectified + offset", rectified + 3.0 * rectified.max(0), False
    hilbert = np.abs(sps.hilbert(raw, axis=0))
    teager = np.vstack([raw[:1] ** 2, raw[1:-1] ** 2 - raw[:-2] * raw[2:], raw[-1:] ** 2])
    for name, env in (("Hilbert envelope", hilbert), ("Teager-Kaiser energy", teager)):
        yield name, env, False
        yield name + " z-scored", (env - env.mean(0)) / env.std(0), False
    held = np.repeat(_envelope(raw, fs, "butter", 10, 2)[::8], 8, axis=0)[: len(raw)]
    yield "10 Hz envelope held 8 samples", held, False
    yield "10 Hz envelope held 8 samples - p5", held - np.percentile(held, 5, axis=0), False
    yield "10 Hz envelope held 8 samples z-scored", (held - held.mean(0)) / held.std(0), False
    kinds = [("butter", hz, order) for hz in (2, 5, 10, 20, 30, 50) for order in (2, 4)]
    kinds += [("rms", 20, 0), ("rms", 10, 0), ("box", 20, 0), ("box", 10, 0)]
    for kind, hz, order in kinds:
        env = _envelope(raw, fs, kind, hz, order)
        name = f"{kind} {hz} Hz" + (f" order {order}" if order else "")
        yield name, env, False
        yield name + " - p5", env - np.percentile(env, 5, axis=0), False
        yield name + " - mean", env - env.mean(0), False
        yield name + " z-scored", (env - env.mean(0)) / env.std(0), False
    # Two kinds in one series: no answer processes both right, so the user must be asked.
    env = _envelope(raw, fs, "butter", 5, 4)
    yield "mixed: 3 raw + 3 envelope channels", np.hstack([raw, env]), None
    yield "mixed: 3 raw (uADC) + 3 envelope channels z-scored", np.hstack([raw - raw.min(0) + 1.0,
                                                                          (env - env.mean(0)) / env.std(0)]), None
    yield "mixed: 6 raw + 2 envelope channels", np.hstack([raw, raw[::-1], env[:, :2]]), None


def verdict(x: np.ndarray, fs: float) -> str:
    """'raw', 'envelope' or 'asked'."""
    try:
        return "envelope" if looks_rectified(x, fs) else "raw"
    except AmbiguousEmg:
        return "asked"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[250.0, 500.0, 1000.0, 2000.0, 10000.0])
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args(argv)
    logging.getLogger("nwb_autolfads").setLevel(logging.ERROR)  # a mixed case's warning; the table says it all
    print("| rate (Hz) | cases | right | asked | wrong |\n|---|---|---|---|---|")
    for fs in args.rates:
        right, asked, wrong = 0, [], []
        for name, x, is_raw in cases(fs, args.seconds):
            said = verdict(x, fs)
            if is_raw is None:
                if said == "asked":
                    right += 1
                else:
                    wrong.append(f"{name} -> {said}")
            elif said == "asked":
                asked.append(name)
            elif (said == "raw") == is_raw:
                right += 1
            else:
                wrong.append(f"{name} -> {said}")
        print(f"| {fs:g} | {right + len(asked) + len(wrong)} | {right} | {len(asked)} {'; '.join(asked)} | "
              f"{len(wrong)} {'; '.join(wrong)} |", flush=True)


if __name__ == "__main__":
    main()
