"""How well a model explains the data it is run on, per channel, without the truth: the fit check
of ``apply`` (docs/science.md, Evaluation).

The statistic (:func:`channel_fit`) is the noise-corrected correlation of the model's estimate
mu (the posterior mean E[x]) with its input x (the scaled, binned data), per channel over the
bins with an estimate::

    fit = cov(mu, x) / sqrt(var(mu) * (var(x) - noise))

with ``noise`` the observation noise's variance per bin, estimated as the interval calibration
does it (:func:`~nwb_autolfads.evaluation.calibration.estimate_errors`, one group of bins: for
counts the expected count, for EMG from the data's differences over 1 and 2 bins). Since
var(x) - noise is the variance of the data's smooth (signal) part, ``fit`` is the correlation of
the estimate with the signal under the noise: about 1 for a model that explains the signal
whatever the recording's signal-to-noise ratio, lower where the estimate misses what the data
do. It is free of each channel's scale and offset (the same with or without ``rescale``), and
costs one pass over the data. It is None for a channel with too few bins or no signal above the
noise.

A saved model records it per channel of the data it was trained on (``model.json``, each column
block's ``fit``); ``apply`` computes it on the new file and :func:`fit_verdict` flags the
channels whose fit falls far below their training level (both numbers, the statistic's name
and the rule are recorded in the applied run's metrics, ``fit_check``).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from nwb_autolfads.evaluation.calibration import estimate_errors

__all__ = ["FIT_STATISTIC", "MAX_FIT_DROP", "channel_fit", "fit_verdict"]

FIT_STATISTIC = "noise-corrected correlation of the estimate with the binned input"
"""The name the provenance gives the statistic of :func:`channel_fit`."""
MAX_FIT_DROP = 0.25
"""A channel is flagged when its fit on new data is more than this below its fit on the training
data. Measured (docs/science.md, Evaluation): on a second day of the same muscles the fit moved by
at most 0.09; on recordings whose muscles mix the drive otherwise, it dropped by 0.33-1.6 on the
channels whose estimates went wrong and by at most 0.16 on the others."""
MIN_BINS = 20
"""Bins with an estimate a channel needs for a statistic."""


def channel_fit(data: Sequence[np.ndarray], mean: Sequence[np.ndarray], counts: np.ndarray) -> list[float | None]:
    """The noise-corrected correlation of the estimate with the data, per channel (module docstring).

    Parameters
    ----------
    data : sequence of numpy.ndarray
        Per segment, (n_bins, C) the model's input (scaled EMG, counts per bin, scaled continuous input).
    mean : sequence of numpy.ndarray
        Per segment, (n_bins, C) the posterior-mean estimate E[x] in the same units; NaN where no
        window covers the bin (such bins are left out).
    counts : numpy.ndarray
        (C,) bool: True for channels of counts (Poisson noise).

    Returns
    -------
    list of float or None
        (C,) the statistic, at most 1 up to estimation error (rounded to 4 digits); None for a
        channel with fewer than :data:`MIN_BINS` bins, a constant estimate, or no variance above
        the noise.
    """
    errors = estimate_errors(list(data), list(mean), np.asarray(counts, dtype=bool), n_groups=1, min_bins=1)
    x_all, m_all = np.concatenate(data), np.concatenate(mean)
    out: list[float | None] = []
    for c, err in enumerate(errors):
        x, m = np.asarray(x_all[:, c], float), np.asarray(m_all[:, c], float)
        ok = np.isfinite(x) & np.isfinite(m)
        noise = float(err.noise[0]) ** 2 if err.noise.size else np.nan
        if ok.sum() < MIN_BINS:
            out.append(None)
            continue
        x, m = x[ok] - x[ok].mean(), m[ok] - m[ok].mean()
        signal, spread = float(np.mean(x * x)) - noise, float(np.mean(m * m))
        if not (np.isfinite(signal) and signal > 0 and spread > 0):
            out.append(None)
            continue
        out.append(round(float(np.mean(m * x) / np.sqrt(spread * signal)), 4))
    return out


def fit_verdict(trained: Mapping[str, float | None], now: Mapping[str, float | None]) -> list[str]:
    """The channels whose fit on new data falls far below their training level: by more than
    :data:`MAX_FIT_DROP`.

    Parameters
    ----------
    trained, now : mapping of str to float or None
        Per channel name, the statistic of :func:`channel_fit` on the training data and on the
        new data (None: not known; such channels are not judged).

    Returns
    -------
    list of str
        The names of the channels flagged, in the order of ``now``.
    """
    return [name for name, value in now.items()
            if value is not None and trained.get(name) is not None and trained[name] - value > MAX_FIT_DROP]
