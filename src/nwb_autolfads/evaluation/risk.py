"""The model against a low-pass filter on the data it was run on, without the truth: each
estimate's squared correlation with the signal under the noise, corrected for the noise it follows
(Stein's lemma; Stein 1981).

A run has no ground truth, and usually nothing else to score against. It does have the pieces
the credible band is built from (:mod:`nwb_autolfads.evaluation.calibration`), in the model's
units (x: the scaled, binned input; x = s + n, s = E[x] the signal under the observation noise n,
independent from bin to bin with variance s2_t). For any estimate f(x) of s, over the bins,

    cov(s, f) = cov(x, f) - mean(n f),    var(s) = var(x) - mean(s2),

so its squared correlation with the signal, the R^2 the benchmarks score against the truth (free
of each estimate's scale and offset, as a per-channel affine map onto s would be), is

    r2 = (cov(x, f) - mean(n f))^2 / (var(f) (var(x) - mean(s2)))   (0 when cov(s, f) < 0).

mean(n f) is the noise the estimate follows, which makes it look more like the data than like
the signal:

- for the model, the band's probe estimate
  (:func:`~nwb_autolfads.evaluation.calibration.copied_noise`, Stein's lemma with Hutchinson
  probes through the model, weights fixed);
- for a linear filter lp = H x, exactly mean(s2_t H_tt) for any noise distribution, with H_tt the
  filter's weight of a bin on its own output (:func:`filter_diagonal`: about 2 fc x bin in the
  middle of a segment for a zero-phase low-pass at fc Hz; other values near the segment's ends).

s2 is the band's estimate (from the data's differences over 1 and 2 bins, per level of the
estimate); the two estimates share it. The best low-pass is the one of highest estimated r2 over
the cutoffs of :data:`~nwb_autolfads.evaluation.baselines.LOWPASS_CUTOFFS_HZ` (the cutoff sweep of
``evaluate``; chosen on the data, no truth); the filter is
:func:`~nwb_autolfads.evaluation.baselines.lowpass` (4th-order Butterworth, zero phase) on the
model's binned input. (A first version compared mean squared errors, Stein's unbiased risk
estimate; that also counts each estimate's scale and offset against it, and it flagged two
muscles of the README's example that the model won on the truth; this statistic flags none
there, the low-pass's largest lead being 0.008.)

What it does not see: noise correlated over bins (an envelope already applied, artefacts), which
the differences take for signal; the weights' own fit of the noise (as in the band). It compares
each estimate with the signal of the binned input (the rectified EMG's expected value, artefacts
included), not with an activation behind it, so its r2 is no accuracy: on an enveloped recording
with step artefacts the model read 0.97 against the signal where its R^2 against the true
activation was 0.14 (it followed the artefacts), and on channels whose signal is small against
the noise it reads far below the R^2 against the truth (0.54 vs about 0.93 on one muscle of the
README's example). The check is one-sided: a flagged channel is one where the model does not
follow the data's signal as well as a low-pass; an unflagged one is not shown to be right.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import signal as sps

from nwb_autolfads.evaluation.baselines import LOWPASS_CUTOFFS_HZ, lowpass

__all__ = ["ChannelCheck", "filter_diagonal", "lowpass_r2s", "model_r2", "compare_with_lowpass",
           "lowpass_verdict", "MAX_LOSS", "METHOD", "MIN_BINS", "MIN_BIN_SIZE", "MIN_SEGMENT_BINS", "MIN_SNR", "ORDER"]

METHOD = ("squared correlation with the signal under the noise, corrected for the noise each estimate follows "
          "(Stein's lemma), of the model (probes) and of a 4th-order zero-phase low-pass of the binned input, cutoff "
          "of the highest estimate (nwb_autolfads.evaluation.risk)")
"""How the provenance names the check."""
MAX_LOSS = 0.015
"""A channel is flagged when the best low-pass's estimated r2 is above the model's by more than
this. Set on the synthetic EMG family's tuning part (quick preset, 8 recordings, 101 channels)
before the held-out part was scored: where the model won on the truth, the estimated difference
(low-pass - model) was at most 0.010 on any channel (benchmarks/README.md, "Check against a
low-pass")."""
MIN_BIN_SIZE = 0.005
"""Bins narrower than this (seconds) get no check: neighbouring bins' noise is correlated there
(the rectified carrier's own time scale), the noise estimate from the differences falls 30-40%
short at 1 ms, and a perfect estimate was flagged (tester, 1-2 ms bins)."""
MIN_SNR = 0.1
"""A channel needs a signal variance of at least this fraction of its noise variance per bin (and
at least 5 standard errors of the estimate of it) for a check: below, the signal's variance is
estimation noise and so is the r2."""

ORDER = 4
"""Order of the Butterworth low-pass compared with (zero phase: filtered forward and back)."""
MIN_SEGMENT_BINS = 32
"""Segments shorter than this are not filtered; their bins are left out of both estimates."""
MIN_BINS = 200
"""Bins a channel needs for an estimate (None below)."""


@dataclass(frozen=True)
class ChannelCheck:
    """One channel's estimates against the signal under the noise (module docstring).

    ``model_r2``: the model's estimated squared correlation with the signal; ``lowpass_r2``: the
    best low-pass's; ``cutoff_hz``: that low-pass's cutoff; ``bins``: bins used."""

    model_r2: float
    lowpass_r2: float
    cutoff_hz: float
    bins: int

    @property
    def margin(self) -> float:
        """model_r2 - lowpass_r2 (> 0: the model is estimated closer to the signal)."""
        return self.model_r2 - self.lowpass_r2

    def as_dict(self, digits: int = 4) -> dict:
        """Plain numbers for the provenance."""
        return {"model_r2": round(self.model_r2, digits), "lowpass_r2": round(self.lowpass_r2, digits),
                "lowpass_cutoff_hz": self.cutoff_hz, "bins": self.bins}


@lru_cache(maxsize=256)
def _diagonal(n: int, cutoff: float, fs: float) -> np.ndarray:
    sos = sps.butter(ORDER, cutoff, fs=fs, output="sos")
    # the impulse response of forward + backward filtering is negligible (< 1e-6 of its peak)
    # beyond ~6 / cutoff seconds; bins farther than that from both ends see the same weight
    reach = int(np.ceil(6.0 / cutoff * fs))
    if n <= 3 * reach:
        positions, length = np.arange(n), n
    else:
        positions, length = np.arange(reach), 3 * reach
    diag = np.empty(positions.size)
    for start in range(0, positions.size, 512):  # a block of unit impulses at a time
        p = positions[start:start + 512]
        e = np.zeros((length, p.size))
        e[p, np.arange(p.size)] = 1.0
        diag[start:start + p.size] = sps.sosfiltfilt(sos, e, axis=0)[p, np.arange(p.size)]
    if n <= 3 * reach:
        return diag
    e = np.zeros(length)
    e[length // 2] = 1.0
    middle = sps.sosfiltfilt(sos, e)[length // 2]
    ends = np.zeros((length, reach))
    last = length - reach + np.arange(reach)
    ends[last, np.arange(reach)] = 1.0
    tail = sps.sosfiltfilt(sos, ends, axis=0)[last, np.arange(reach)]
    return np.concatenate([diag, np.full(n - 2 * reach, middle), tail])


def filter_diagonal(n: int, cutoff: float, bin_size: float) -> np.ndarray:
    """(n,) the weight of each bin on its own output, d lp_t / d x_t, for
    :func:`~nwb_autolfads.evaluation.baselines.lowpass` (order :data:`ORDER`, zero phase) of a
    segment of ``n`` bins of ``bin_size`` s at ``cutoff`` Hz: the diagonal of the linear filter's
    matrix, exact (from unit impulses; odd padding at the ends as scipy's ``sosfiltfilt``).

    Raises
    ------
    ValueError
        ``n`` < :data:`MIN_SEGMENT_BINS`, or ``cutoff`` outside (0, Nyquist)."""
    fs = 1.0 / bin_size
    if n < MIN_SEGMENT_BINS:
        raise ValueError(f"a segment of {n} bins is too short to filter (at least {MIN_SEGMENT_BINS})")
    if not 0 < cutoff < fs / 2:
        raise ValueError(f"cutoff {cutoff} Hz must be in (0, {fs / 2}) for {bin_size * 1e3:g} ms bins")
    return _diagonal(int(n), float(cutoff), float(fs)).copy()


def _usable(data: list[np.ndarray], mean: list[np.ndarray]) -> list[np.ndarray]:
    """Per segment (n_bins, C) bool: the bin has an input and an estimate, in a segment long enough
    to filter."""
    return [np.isfinite(x) & np.isfinite(m) & (len(x) >= MIN_SEGMENT_BINS) for x, m in zip(data, mean)]


def _r2(data, estimate, followed, signal, use) -> np.ndarray:
    """(C,) the estimate's squared correlation with the signal: (cov(x, f) - mean(n f))^2 /
    (var(f) x signal), 0 where the corrected covariance is not positive or the estimate is flat
    (a flat estimate follows none of the signal)."""
    mx, mf = _channel_means(data, use), _channel_means(estimate, use)
    cov = _channel_means([(x - mx) * (f - mf) for x, f in zip(data, estimate)], use) - _channel_means(followed, use)
    var = _channel_means([(f - mf) ** 2 for f in estimate], use)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((cov > 0) & (var > 0), cov ** 2 / (var * signal), 0.0)


def model_r2(data: list[np.ndarray], mean: list[np.ndarray], noise_var: list[np.ndarray],
             copied: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The model's estimated squared correlation with the signal per channel (module docstring).

    Parameters
    ----------
    data, mean : per segment (n_bins, C) the input and the posterior-mean estimate, model units
        (NaN where none).
    noise_var : per segment (n_bins, C) s2_t, the observation noise's variance per bin.
    copied : per segment (n_bins, C) per bin an estimate of n_t mu_t
        (:func:`~nwb_autolfads.evaluation.calibration.copied_noise`).

    Returns
    -------
    (C,) the estimated r2, (C,) the signal's variance var(x) - mean(s2), (C,) the bins used; over
    the bins with an input and an estimate in segments of at least :data:`MIN_SEGMENT_BINS` bins.
    """
    use, signal, _ = _bins_and_signal(data, mean, noise_var)
    return _r2(data, mean, copied, signal, use), signal, sum(u.sum(axis=0) for u in use)


def lowpass_r2s(data: list[np.ndarray], mean: list[np.ndarray], noise_var: list[np.ndarray], bin_size: float,
                cutoffs: tuple[float, ...] = LOWPASS_CUTOFFS_HZ) -> dict[float, np.ndarray]:
    """The estimated squared correlation with the signal of a low-pass of the input, per cutoff and
    channel, over the bins :func:`model_r2` uses (``mean`` only marks them).

    Returns
    -------
    {cutoff in Hz: (C,) estimated r2}, for the cutoffs below 0.95 x Nyquist.
    """
    use, signal, _ = _bins_and_signal(data, mean, noise_var)
    return _sweep(data, noise_var, bin_size, cutoffs, use, signal)


def _bins_and_signal(data, mean, noise_var) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """The bins used (:func:`_usable`), and over them (C,) the signal's variance var(x) - mean(s2)
    and (C,) the mean noise variance mean(s2)."""
    use = _usable(data, mean)
    noise = _channel_means(noise_var, use)
    return use, _signal(data, use) - noise, noise


def _sweep(data, noise_var, bin_size, cutoffs, use, signal) -> dict[float, np.ndarray]:
    """:func:`lowpass_r2s` over the bins ``use`` with the signal's variance ``signal``."""
    out = {}
    for fc in cutoffs:
        if not fc < 0.95 / (2.0 * bin_size):
            continue
        smooth, follow = [], []
        for x, v in zip(data, noise_var):
            if len(x) < MIN_SEGMENT_BINS:
                smooth.append(np.zeros_like(x))
                follow.append(np.zeros_like(x))
                continue
            fill = np.nanmean(x, axis=0) if np.isfinite(x).any() else 0.0
            smooth.append(lowpass(np.where(np.isfinite(x), x, fill), 1.0 / bin_size, fc, order=ORDER))
            follow.append(v * filter_diagonal(len(x), fc, bin_size)[:, None])
        out[fc] = _r2(data, smooth, follow, signal, use)
    return out


def compare_with_lowpass(data: list[np.ndarray], mean: list[np.ndarray], noise_var: list[np.ndarray],
                         copied: list[np.ndarray], bin_size: float,
                         cutoffs: tuple[float, ...] = LOWPASS_CUTOFFS_HZ) -> list[ChannelCheck | None]:
    """The model's and the best low-pass's estimated squared correlation with the signal, per
    channel (module docstring).

    Parameters
    ----------
    data, mean, noise_var, copied : as :func:`model_r2`, per segment (n_bins, C), model units.
    bin_size : the bins' width in seconds.
    cutoffs : low-pass cutoffs in Hz to choose from (by the highest estimated r2).

    Returns
    -------
    Per channel a :class:`ChannelCheck` (r2 above 1, estimation noise, recorded as 1), or None
    for every channel when ``bin_size`` < :data:`MIN_BIN_SIZE`, and for a channel where fewer than
    :data:`MIN_BINS` bins can be used, whose signal is too small to tell from the noise
    (:data:`MIN_SNR`) or where a number is not finite.

    Raises
    ------
    ValueError
        The four inputs differ in segments or shapes.
    """
    shapes = [[np.shape(a) for a in part] for part in (data, mean, noise_var, copied)]
    if any(s != shapes[0] for s in shapes) or not data or any(len(s) != 2 for s in shapes[0]):
        raise ValueError(f"data, mean, noise_var and copied must be the same (n_bins, C) segments, got {shapes}")
    if bin_size < MIN_BIN_SIZE:
        return [None] * shapes[0][0][1]
    use, signal, noise = _bins_and_signal(data, mean, noise_var)
    bins = sum(u.sum(axis=0) for u in use)
    r2 = _r2(data, mean, copied, signal, use)
    sweep = _sweep(data, noise_var, bin_size, cutoffs, use, signal)
    out: list[ChannelCheck | None] = []
    for c in range(r2.size):
        finite = [fc for fc in sweep if np.isfinite(sweep[fc][c])]
        enough = signal[c] > max(MIN_SNR, 5.0 * np.sqrt(2.0 / max(bins[c], 1))) * noise[c]
        if bins[c] < MIN_BINS or not enough or not finite or not np.isfinite(r2[c]):
            out.append(None)
            continue
        best = max(finite, key=lambda fc: sweep[fc][c])
        # above 1 is estimation noise: recorded as 1
        out.append(ChannelCheck(model_r2=float(min(r2[c], 1.0)), lowpass_r2=float(min(sweep[best][c], 1.0)),
                                cutoff_hz=float(best), bins=int(bins[c])))
    return out


def lowpass_verdict(checks: dict[str, ChannelCheck | None], max_loss: float = MAX_LOSS) -> dict:
    """The record of :func:`compare_with_lowpass`'s result for the provenance and the summary.

    Parameters
    ----------
    checks : per channel name its :class:`ChannelCheck` (None: no estimate).
    max_loss : flag a channel whose best low-pass's estimated r2 is above the model's by more than
        this.

    Returns
    -------
    dict with ``method``, ``rule``, ``channels`` (name -> :meth:`ChannelCheck.as_dict` or None) and
    ``flagged`` (names; empty when none is, or when no channel has an estimate).
    """
    flagged = [k for k, r in checks.items() if r is not None and r.margin < -max_loss]
    return {"method": METHOD,
            "rule": f"flagged: the best low-pass's estimated r2 above the model's by more than {max_loss:g}",
            "channels": {k: (r.as_dict() if r is not None else None) for k, r in checks.items()},
            "flagged": flagged}


def _channel_means(values: list[np.ndarray], use: list[np.ndarray]) -> np.ndarray:
    """(C,) the mean over the used bins of all segments (0 where none)."""
    total = sum(np.where(u, v, 0.0).sum(axis=0) for v, u in zip(values, use))
    count = sum(u.sum(axis=0) for u in use)
    return np.asarray(total, float) / np.maximum(count, 1)


def _signal(data: list[np.ndarray], use: list[np.ndarray]) -> np.ndarray:
    """(C,) the variance of the input over the used bins."""
    mean = _channel_means(data, use)
    return _channel_means([(x - mean) ** 2 for x in data], use)
