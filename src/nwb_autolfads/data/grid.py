"""The model's bin grid after binning: splitting segments at the bins a modality does not cover,
one window per trial in trial-aligned mode, and windows shortened to fit short segments.

Every function works on parallel lists (one array per gap-free segment, rows = bins), so that
the bin times and each modality's columns stay aligned. May import: numpy,
:mod:`nwb_autolfads.config`, :mod:`nwb_autolfads.errors`, :mod:`nwb_autolfads.data`.
"""

from __future__ import annotations

import logging

import numpy as np

from nwb_autolfads.config import RunConfig
from nwb_autolfads.data.windows import MIN_FITTED_WINDOW, fitted_window
from nwb_autolfads.errors import ConfigError, SignalError

__all__ = ["split_where", "trial_windows", "fit_windows"]

log = logging.getLogger(__name__)


def split_where(masks: list[np.ndarray], *lists: list[np.ndarray]) -> tuple[list[np.ndarray], ...]:
    """Split every segment of each list at the bins where its mask is False (those are dropped)."""
    out: tuple[list[np.ndarray], ...] = tuple([] for _ in lists)
    for k, mask in enumerate(masks):
        edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8), 0]))
        for a, b in zip(edges[::2], edges[1::2]):
            for dst, src in zip(out, lists):
                dst.append(src[k][a:b])
    return out


def trial_windows(align: np.ndarray, start: float, n_bins: int, lead: int, bin_size: float,
                   bin_times: list[np.ndarray], *lists: list[np.ndarray]) -> tuple[list[np.ndarray], ...]:
    """Cut ``n_bins`` bins (plus ``lead`` lead-in bins before them) starting at each trial's
    alignment time + ``start``, from the gap-free segment that holds them. Trials with no time,
    or not fully inside the data (or across a gap), are skipped with a warning naming them (their
    row in the trials table and time); overlapping trial windows are an error (results are
    written on one time axis)."""
    if n_bins < 2:
        raise ConfigError(f"--window spans {n_bins} bin(s) of {bin_size * 1e3:g} ms: give a window of at least two "
                          "bins")
    out: tuple[list[np.ndarray], ...] = tuple([] for _ in (bin_times, *lists))
    outside, last_stop = [], -np.inf
    finite = np.flatnonzero(np.isfinite(align))
    for row in finite[np.argsort(align[finite], kind="stable")]:
        t = float(align[row])
        first = t + start - lead * bin_size
        for k, centres in enumerate(bin_times):
            i = int(np.searchsorted(centres, first - 1e-9 * bin_size))
            if i < centres.size and abs(centres[i] - bin_size / 2 - first) <= bin_size / 2 + 1e-9 and \
                    i + lead + n_bins <= centres.size and \
                    np.allclose(np.diff(centres[i:i + lead + n_bins]), bin_size, rtol=1e-6):
                break
        else:
            outside.append((int(row), t))
            continue
        window = slice(i, i + lead + n_bins)
        if centres[i + lead] - bin_size / 2 < last_stop - 1e-9:
            raise ConfigError(f"trial windows overlap (the trial at {t:g} s starts before the previous one ends): "
                              "use a shorter --window, or align to another column")
        last_stop = centres[i + lead + n_bins - 1] + bin_size / 2
        for dst, src in zip(out, (bin_times, *lists)):
            dst.append(src[k][window])
    no_time = np.flatnonzero(~np.isfinite(align)).tolist()
    if outside or no_time:
        parts = []
        if outside:
            shown = ", ".join(f"row {r} at {t:.6g} s" for r, t in outside[:5]) + (" ..." if len(outside) > 5 else "")
            parts.append(f"{len(outside)} whose window is not fully inside the data or spans a gap ({shown})")
        if no_time:
            shown = ", ".join(f"row {r}" for r in no_time[:5]) + (" ..." if len(no_time) > 5 else "")
            parts.append(f"{len(no_time)} with no alignment time ({shown})")
        log.warning("%d of %d trials skipped: %s", len(outside) + len(no_time), align.size, "; ".join(parts))
    if len(out[0]) < 2:
        raise SignalError(f"trial-aligned mode needs at least 2 trials whose window lies inside the data, found "
                          f"{len(out[0])}: check --align-to and --window")
    return out


def fit_windows(cfg: RunConfig, lengths: list[int], bin_size: float) -> RunConfig:
    """``cfg`` with windows shortened to fit short gap-free segments (separate trials or step
    cycles; :func:`~nwb_autolfads.data.windows.fitted_window`), with a warning saying so; unchanged
    when they fit or ``windows.fit_segments`` is off."""
    w, lead = cfg.windows, cfg.model.lead_in_bins
    if not w.fit_segments:
        return cfg
    bins = fitted_window(lengths, w.window_bins + lead, MIN_FITTED_WINDOW + lead) - lead
    if bins == w.window_bins:
        return cfg
    overlap = min(w.overlap_bins, int(round(w.overlap_bins * bins / w.window_bins)), bins - 1)
    n_short = sum(n < w.window_bins + lead for n in lengths)
    log.warning("%d of %d gap-free segments are shorter than a %d-bin window: windows shortened to %d bins (%g s, "
                "overlap %d) so that every segment of at least %d bins is modelled (windows.fit_segments: false keeps "
                "%d-bin windows and leaves shorter segments out)", n_short, len(lengths), w.window_bins + lead,
                bins, bins * bin_size, overlap, bins + lead, w.window_bins)
    return cfg.updated({"windows.window_bins": bins, "windows.overlap_bins": overlap})
