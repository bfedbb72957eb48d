"""Calibration of the credible band: the model's own error added to the posterior's spread.

The quantiles of the posterior samples (:mod:`nwb_autolfads.model.inference`) spread the latent
states only; a variational posterior is overconfident, and on synthetic truth the 90% band of
the posterior samples held 2-28% of the true activation (median 18%, synthetic EMG family). This module widens the band by
an estimate of the model's error, made per channel from the data the model was fitted to, in
the model's units (x: the scaled, binned input; mu: the posterior-mean estimate E[x]):

- the residual x - mu holds the observation noise (white: independent from bin to bin) and the
  model's error mu - E[x] (smooth): mean((x - mu)^2) ~ noise variance + error variance, a
  decomposition of the residual variance into its two parts;
- the noise variance of the bins is estimated without the model from the data's differences over
  1 and 2 bins, for EMG and (in a run) for spike counts too: with
  white noise of variance s2 and a signal smooth at the scale of a bin (its differences over 2
  bins twice those over 1), D(k) = mean((x_t - x_{t-k})^2) / 2 = s2 + S k^2 / 2, so
  s2 = D(1) - (D(2) - D(1)) / 3. (Taking the signal's differences from the estimate instead,
  s2 = D(1) - mean((mu_t - mu_{t-1})^2) / 2, overestimated the noise wherever the model is
  smoother than the truth and so hid its error: on the synthetic family's tuning part the 90%
  band then held a median 86% of the truth instead of 89%, 79% instead of 86% on one setting).
  ``poisson=True`` takes the expected count, mean(mu), instead (the Poisson variance); runs do
  not: it assumes Poisson counts and takes their mean from the estimate, whose bias it inherits
  (a mock unit estimated at 0.39 spikes per bin against 0.37 counted got no error at all). From
  the differences, 20 mock units at 12-35 Hz (quick preset): band median 0.53 -> 0.77; Lorenz
  spikes (``benchmarks/lorenz_spikes.py``): 0.70 -> 0.82; a tester's nine 30-unit settings: better
  or equal in 7, 0.04-0.05 lower in 2. Neither handles counts correlated over bins: bursts that
  cross bins hide noise from the differences (band far too wide, 0.99-1.00), regular (refractory)
  firing inflates them (no widening, 0.62);
- the residual is smaller than the noise plus the error where the model follows part of the
  noise (x = E[x] + n, mu = E[x] + e: mean((x - mu)^2) = noise variance + error variance - 2
  mean(n e)). The part it follows, mean(n mu) (= mean(n e): the noise is independent of E[x]), is
  estimated by :func:`copied_noise` from the model's response to a probe of noise of the
  estimated size (Stein's lemma: for Gaussian noise of variance s2, mean(n mu) = s2 x mean(d mu_t /
  d x_t); Hutchinson's estimator of that trace with central differences). The response holds the
  model's weights fixed: weights fitted to these very data also follow their noise, which the
  probe does not see (on the bins of its training windows the followed part was about twice the
  probe's, synthetic family); counting it twice changed the calibration on the family's tuning
  part by 0.01 or less and is not done, so the term is the same for a trained and an applied
  model. With the term the 90% band held a median 0.945 of the truth on the tuning part (0.937
  without it; 0.875 instead of 0.837 and 0.917 instead of 0.881 on the two held-out recordings of
  white noise where the model follows the most noise);
- both are taken per level of the estimate (the bins grouped by quantiles of mu: the noise of
  EMG grows with its level), and the error at any level is interpolated between the
  groups' median levels (held constant beyond the first and last), the error variance of a group
  being max(mean((x - mu)^2) - noise + 2 mean(n mu), 0);
- the band: the posterior's half-widths and z x error (z: the standard normal quantile of the
  interval, 1.645 at 0.9) combined as independent parts in quadrature, lower =
  mu - sqrt((mu - q_lo)^2 + (z err)^2), upper = mu + sqrt((q_hi - mu)^2 + (z err)^2), the lower
  bound kept >= 0 (activations and rates are not negative).

Only bins with an estimate are used, and differences are never taken across a gap (between
segments, or next to a bin without an estimate). The band is approximate: a normal error of
the estimated size is assumed at each level, and the model's fit of part of the noise makes the
residual a little smaller than the noise plus the error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

__all__ = ["ChannelError", "estimate_errors", "copied_noise", "noise_sd", "widen_band", "normal_quantile",
           "MIN_BINS_PER_GROUP", "N_GROUPS", "N_PROBES", "PROBE_SCALE"]

N_GROUPS = 8
"""Groups of bins (quantiles of the estimate's level) the error is estimated in, at most."""
MIN_BINS_PER_GROUP = 200
"""Bins each group holds at least (fewer groups with fewer bins; one group below that)."""
N_PROBES = 4
"""Noise probes of :func:`copied_noise` (each: two inference passes with posterior means)."""
PROBE_SCALE = 0.5
"""Size of a probe relative to the estimated noise (central differences at +-0.5 noise SD)."""


@dataclass
class ChannelError:
    """The model's error of one channel as a function of the estimate's level (model units).

    ``levels`` (G,): median estimate of each group of bins, increasing; ``error`` (G,): the
    model's error (standard deviation) there; ``noise`` (G,): the observation noise's standard
    deviation per bin there; ``bins`` (G,): bins in each group; ``copied`` (G,): the noise the
    estimate follows there, mean(n mu) (a variance; zeros when not estimated). G = 0 when no bin
    could be used (the error is then 0)."""

    levels: np.ndarray
    error: np.ndarray
    noise: np.ndarray
    bins: np.ndarray
    copied: np.ndarray | None = None

    def __post_init__(self):
        if self.copied is None:
            self.copied = np.zeros_like(np.asarray(self.levels, dtype=float))

    def __call__(self, mu: np.ndarray) -> np.ndarray:
        """The error (standard deviation) at the estimate's levels ``mu`` (any shape), linearly
        interpolated between the groups' levels and held constant beyond them."""
        return self._at(mu, self.error)

    def noise_at(self, mu: np.ndarray) -> np.ndarray:
        """The observation noise's standard deviation at the levels ``mu``, interpolated like
        :meth:`__call__` (zeros without groups)."""
        return self._at(mu, self.noise)

    def _at(self, mu: np.ndarray, values: np.ndarray) -> np.ndarray:
        mu = np.asarray(mu, dtype=float)
        return np.zeros_like(mu) if self.levels.size == 0 else np.interp(mu, self.levels, values)

    def as_dict(self, scale: float = 1.0, offset: float = 0.0, digits: int = 4) -> dict:
        """Plain lists for the provenance in the source's units: levels x ``scale`` + ``offset``
        (model units -> the source's, e.g. a z-scored force), standard deviations x ``scale``,
        ``copied`` (a variance) x ``scale`` ** 2."""
        def r(a, k=scale, add=0.0):
            return [float(f"{v * k + add:.{digits}g}") for v in a]
        return {"levels": r(self.levels, add=offset), "error": r(self.error), "noise": r(self.noise),
                "copied": r(self.copied, scale * scale), "bins": [int(b) for b in self.bins]}


def _triples(seg: np.ndarray) -> np.ndarray:
    """(n,) bool: bins t, t - 1 and t - 2 all finite (differences over 1 and 2 bins can be taken
    at t without crossing a bin without an estimate)."""
    ok = np.isfinite(seg)
    out = np.zeros_like(ok)
    out[2:] = ok[2:] & ok[1:-1] & ok[:-2]
    return out


def estimate_errors(data: list[np.ndarray], mean: list[np.ndarray], poisson: np.ndarray | None = None,
                    n_groups: int = N_GROUPS, min_bins: int = MIN_BINS_PER_GROUP,
                    copied: list[np.ndarray] | None = None) -> list[ChannelError]:
    """Estimate the model's error per channel from the residual beyond the observation noise.

    Parameters
    ----------
    data : per segment (n_bins, C) the model's input (scaled EMG, spike counts per bin).
    mean : per segment (n_bins, C) the posterior-mean estimate E[x] in the same units; NaN where
        the bin has no estimate (such bins, and differences next to them, are not used).
    poisson : (C,) bool, True for channels whose noise variance is taken as the expected count
        (Poisson), False for the noise variance from the data's differences over 1 and 2 bins;
        None (what runs use, spike counts included: module docstring): False for every channel.
    n_groups : at most this many groups of bins by quantiles of the estimate.
    min_bins : bins per group at least (fewer groups when there are fewer bins).
    copied : per segment (n_bins, C), per bin an estimate of n_t x mu_t, the noise the estimate
        follows (:func:`copied_noise`); 2 x its mean per group is added to the error variance
        (the residual lacks 2 mean(n mu)).
        None: not estimated (taken as 0: the error is then underestimated where the model follows
        the noise).

    Returns
    -------
    One :class:`ChannelError` per channel.

    Raises
    ------
    ValueError
        ``data`` and ``mean`` differ in segments or shapes, or ``poisson`` in channels.
    """
    if len(data) != len(mean) or any(np.shape(x) != np.shape(m) for x, m in zip(data, mean)):
        raise ValueError("data and mean must have the same segments and shapes: "
                         f"{[np.shape(x) for x in data]} vs {[np.shape(m) for m in mean]}")
    if not data or any(np.ndim(x) != 2 for x in data):
        raise ValueError(f"data must be one or more (n_bins, C) segments, got {[np.shape(x) for x in data]}")
    n_channels = data[0].shape[1]
    poisson = np.zeros(n_channels, bool) if poisson is None else np.asarray(poisson, dtype=bool)
    if poisson.shape != (n_channels,):
        raise ValueError(f"poisson has shape {poisson.shape}, expected ({n_channels},)")
    if copied is not None and (len(copied) != len(data)
                               or any(np.shape(c) != np.shape(x) for c, x in zip(copied, data))):
        raise ValueError("copied must have the segments and shapes of data: "
                         f"{[np.shape(c) for c in copied]} vs {[np.shape(x) for x in data]}")
    out = []
    for c in range(n_channels):
        x_parts, m_parts, usable = [], [], []
        for x, m in zip(data, mean):  # per segment: differences never reach into another one
            xc, mc = np.asarray(x[:, c], float), np.asarray(m[:, c], float)
            mc = np.where(np.isfinite(xc), mc, np.nan)
            x_parts.append(xc)
            m_parts.append(mc)
            usable.append(_triples(mc))
        x, m, triple = np.concatenate(x_parts), np.concatenate(m_parts), np.concatenate(usable)
        follow = (np.zeros_like(x) if copied is None
                  else np.nan_to_num(np.concatenate([np.asarray(k[:, c], float) for k in copied])))
        d1, d2 = np.zeros_like(x), np.zeros_like(x)
        d1[1:], d2[2:] = x[1:] - x[:-1], x[2:] - x[:-2]
        out.append(_channel_error(x, m, triple, d1, d2, follow, bool(poisson[c]), n_groups, min_bins))
    return out


def _channel_error(x, m, triple, d1, d2, follow, poisson: bool, n_groups: int, min_bins: int) -> ChannelError:
    ok = np.isfinite(m)
    n = int(ok.sum())
    groups = max(1, min(n_groups, n // max(min_bins, 1)))
    if n < 2 or (not poisson and triple.sum() < 2):
        empty = np.zeros(0)
        return ChannelError(empty, empty, empty, np.zeros(0, int))
    edges = np.quantile(m[ok], np.linspace(0.0, 1.0, groups + 1))
    which = np.full(m.shape, -1)
    which[ok] = np.clip(np.searchsorted(edges, m[ok], side="right") - 1, 0, groups - 1)
    levels, errors, noises, counts, copies = [], [], [], [], []
    for g in range(groups):
        here = which == g
        if not here.any():
            continue
        if poisson:
            noise_var = float(np.mean(m[here]))
        else:
            p = here & triple
            if not p.any():
                continue
            lag1, lag2 = float(np.mean(d1[p] ** 2)) / 2.0, float(np.mean(d2[p] ** 2)) / 2.0
            noise_var = max(lag1 - (lag2 - lag1) / 3.0, 0.0)
        resid_var = float(np.mean((x[here] - m[here]) ** 2))
        copy = float(np.mean(follow[here]))
        levels.append(float(np.median(m[here])))
        errors.append(np.sqrt(max(resid_var - noise_var + 2.0 * copy, 0.0)))
        noises.append(np.sqrt(noise_var))
        counts.append(int(here.sum()))
        copies.append(copy)
    order = np.argsort(levels, kind="stable")
    return ChannelError(np.asarray(levels)[order], np.asarray(errors)[order], np.asarray(noises)[order],
                        np.asarray(counts, dtype=int)[order], np.asarray(copies)[order])


def copied_noise(respond: Callable[[list[np.ndarray]], list[np.ndarray]], data: list[np.ndarray],
                 mean: list[np.ndarray], errors: list[ChannelError], n_probes: int = N_PROBES,
                 scale: float = PROBE_SCALE, seed: int = 0) -> list[np.ndarray]:
    """The noise the estimate follows, per bin: Stein's lemma with Hutchinson probes.

    For x = E[x] + n with Gaussian noise of variance s2 (per bin), the mean over bins of n_t mu_t
    equals the mean of s2_t d mu_t / d x_t (Stein's lemma). Each probe b (independent normal
    noise of each bin's estimated standard deviation, :meth:`ChannelError.noise_at` of the
    estimate) gives b_t x (mu(x + eps b) - mu(x - eps b))_t / (2 eps), whose expectation is s2_t
    d mu_t / d x_t (Hutchinson, Avron & Toledo 2011; central differences, eps = ``scale``); the
    products are averaged over ``n_probes`` probes. Their mean over a group of bins estimates the
    group's mean(n mu) (noisy bin by bin: use only means over many bins).

    Parameters
    ----------
    respond : the estimate as a function of the input, with the model's weights and every other
        setting fixed: per segment (n_bins, C) input -> per segment (n_bins, C) estimate (NaN
        where none), deterministic (posterior means, no sampling).
    data : per segment (n_bins, C) the input the estimate was made from (NaN: no value).
    mean : per segment (n_bins, C) the estimate (NaN where none).
    errors : per channel its :class:`ChannelError` (for the noise's size at each level).
    n_probes : probes (each costs two calls of ``respond``); >= 1.
    scale : eps, the probe's size relative to the noise (> 0).
    seed : seed of the probes' generator (the result is reproducible).

    Returns
    -------
    Per segment (n_bins, C): the average product per bin (0 where the bin or the estimate has no
    value). The noise of a probe is white: noise correlated over bins (enveloped input,
    artefacts) that the model follows is not measured.

    Raises
    ------
    ValueError
        ``n_probes`` < 1, ``scale`` <= 0, or ``data``/``mean``/``errors`` that do not match.
    """
    if n_probes < 1 or not scale > 0:
        raise ValueError(f"n_probes must be >= 1 and scale > 0, got {n_probes} and {scale}")
    if len(data) != len(mean) or any(np.shape(x) != np.shape(m) for x, m in zip(data, mean)) \
            or (data and data[0].shape[1] != len(errors)):
        raise ValueError(f"data {[np.shape(x) for x in data]}, mean {[np.shape(m) for m in mean]} and "
                         f"{len(errors)} channel errors do not match")
    rng = np.random.default_rng(seed)
    sd = [np.where(np.isfinite(x) & np.isfinite(m), s, 0.0) for x, m, s in zip(data, mean, noise_sd(errors, mean))]
    total = [np.zeros(np.shape(x)) for x in data]
    for _ in range(n_probes):
        probe = [s * rng.standard_normal(s.shape) for s in sd]
        plus = respond([np.nan_to_num(x) + scale * b for x, b in zip(data, probe)])
        minus = respond([np.nan_to_num(x) - scale * b for x, b in zip(data, probe)])
        for t, b, p, q in zip(total, probe, plus, minus):
            t += np.nan_to_num(b * (np.asarray(p, float) - np.asarray(q, float)) / (2.0 * scale))
    return [t / n_probes for t in total]


def noise_sd(errors: list[ChannelError], mean: list[np.ndarray]) -> list[np.ndarray]:
    """Per segment (n_bins, C) the observation noise's standard deviation at each bin's estimated
    level (:meth:`ChannelError.noise_at`; a bin without an estimate is taken at level 0), one
    :class:`ChannelError` per column of ``mean``."""
    out = []
    for m in mean:
        level = np.where(np.isfinite(m), m, 0.0)
        out.append(np.stack([e.noise_at(level[:, c]) for c, e in enumerate(errors)], axis=1) if errors
                   else np.zeros_like(level))
    return out


def normal_quantile(interval: float) -> float:
    """z: the standard normal's central ``interval`` lies within +-z (0.9 -> 1.645)."""
    return float(norm.ppf(0.5 + interval / 2.0))


def widen_band(mean: np.ndarray, lower: np.ndarray, upper: np.ndarray, errors: list[ChannelError],
               interval: float, signed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The posterior band widened by the model's error, per bin and channel.

    Parameters
    ----------
    mean, lower, upper : (n_bins, C) the estimate and the posterior samples' quantiles, model units.
    errors : one :class:`ChannelError` per channel (:func:`estimate_errors`).
    interval : the band's probability (0.9 -> z = 1.645).
    signed : (C,) bool, True for channels of signed data (force): their lower bound is not clipped.

    Returns
    -------
    (lower, upper), each (n_bins, C): mu -/+ sqrt(posterior half-width^2 + (z err(mu))^2), the
    lower bound clipped at 0 (except ``signed`` channels); NaN where ``mean`` is NaN. The band
    always holds ``mean``.
    """
    mean, lower, upper = (np.asarray(a, dtype=float) for a in (mean, lower, upper))
    if not mean.shape == lower.shape == upper.shape or mean.shape[1] != len(errors):
        raise ValueError(f"mean {mean.shape}, lower {lower.shape}, upper {upper.shape} and {len(errors)} channel "
                         "errors do not match")
    z = normal_quantile(interval)
    err = np.stack([e(mean[:, c]) for c, e in enumerate(errors)], axis=1) if errors else np.zeros_like(mean)
    extra = (z * err) ** 2
    below = np.maximum(mean - lower, 0.0)
    above = np.maximum(upper - mean, 0.0)
    new_lower = mean - np.sqrt(below ** 2 + extra)
    clip = np.ones(mean.shape[1], bool) if signed is None else ~np.asarray(signed, bool)
    new_lower[:, clip] = np.maximum(new_lower[:, clip], 0.0)
    new_upper = mean + np.sqrt(above ** 2 + extra)
    return new_lower, new_upper
