"""EMG preprocessing (docs/science.md, EMG preprocessing): the steps in order.

raw EMG -> notch (line frequency + harmonics, zero-phase; by default the mains hum found in the
spectrum, see :func:`~nwb_autolfads.data.scan.detect_line_hum`) -> 4th-order Butterworth high-pass
(zero-phase) -> full-wave rectification -> anti-aliased polyphase resampling -> binning to the
model bin -> per-channel clipping at a high quantile -> per-channel scaling by the 95th
percentile -> a small positive floor.

The rectified signal is *not* low-pass smoothed: smoothing is what the model replaces. For EMG
that is already rectified/enveloped/binned the first three steps are skipped, and EMG that is
already binned (rectified and sampled below 1 kHz) keeps its own bins unless
``windows.bin_size`` is set: each sample is one bin, at its own timestamp. Every step that
was applied is listed in :attr:`Preprocessed.steps`, and the per-channel scales are kept so
that model outputs can be reported in the source's units.

Each segment (a stretch of samples without a gap in the timestamps) is filtered on its own, so
no filter ever runs across a gap.

The steps themselves live in :mod:`.filters` (filters, resampling, binning), :mod:`.scan` (what
the signal is: raw or rectified, line hum) and :mod:`.artefacts` (what is wrong in it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from scipy import signal as sps
from tqdm.auto import tqdm

from nwb_autolfads.config import ALREADY_BINNED_BELOW_HZ, DEFAULT_BIN_SIZE, PreprocessConfig
from nwb_autolfads.data.artefacts import (FLAT_SECONDS, drop_flat_stretches, drop_invalid_times, drop_non_finite,
                                          reject_shared_artefacts, warn_implausible_volts,
                                          warn_below_zero, warn_saturated)
from nwb_autolfads.data.filters import (Binner, apply_notches, highpass_filter, notch_frequencies, notch_gain,
                                        resample_ratio, settling_samples)
from nwb_autolfads.data.scan import (DEFAULT_CHUNK_VALUES, AmbiguousEmg, HUM_RATIO, LINE_FREQUENCIES, chunk_bounds, detect_line_hum,
                                     hum_excerpt, looks_rectified, SampleScan, scan_samples,
                                     spread_samples)
from nwb_autolfads.data.signals import Signal
from nwb_autolfads.data.timebase import check_rate
from nwb_autolfads.errors import SignalError

__all__ = ["Preprocessed", "preprocess_emg", "MIN_RAW_EMG_HZ"]

log = logging.getLogger(__name__)


@dataclass
class Preprocessed:
    """Model-ready EMG: binned, clipped and scaled segments with their bin times."""

    segments: list[np.ndarray]
    """Per segment, (n_bins, n_channels) float32 in scaled units (q95 = 1)."""
    bin_times: list[np.ndarray]
    """Per segment, the time of each bin in the source's clock (seconds): its centre when samples
    are averaged into bins, the sample's own timestamp when each sample is one bin."""
    bin_size: float
    scales: np.ndarray
    """(n_channels,) divide physical values by this to get model units; multiply to go back."""
    clip_levels: np.ndarray
    """(n_channels,) clipping level in physical units (inf if not clipped)."""
    rectified: list[np.ndarray]
    """Per segment, binned rectified EMG in physical units before clipping/scaling (a baseline)."""
    channel_names: list[str]
    steps: list[str] = field(default_factory=list)
    was_raw: bool = True
    line_hum: dict = field(default_factory=dict)
    """Raw EMG: the line-frequency setting, what the spectrum showed (:meth:`LineHum.to_dict`) and
    ``notched_hz``, the frequencies notched (for the provenance)."""
    resolved: dict = field(default_factory=dict)
    """``preprocess`` settings that ``auto`` resolved to (``line_frequency``, ``notch_harmonics``):
    a run saves them in its config so that its preprocessing can be repeated exactly."""

    @property
    def n_channels(self) -> int:
        return len(self.channel_names)


def _line_notches(sig: Signal, segments: list[slice], dead: np.ndarray, fs: float,
                  cfg: PreprocessConfig) -> tuple[list[float], str | None, dict, dict]:
    """Which frequencies to notch in raw EMG, from ``cfg.line_frequency`` (``auto``: the hum
    :func:`detect_line_hum` finds; a number: that and ``notch_harmonics``; ``None``: none).
    The spectrum is checked in every case: hum that the configured notches leave standing out is
    warned about. Returns (notch freqs, the step to record or None, provenance, resolved settings)."""
    live = [n for n, d in zip(sig.channel_names, dead) if not d]
    hum = detect_line_hum(hum_excerpt(sig.values, segments, dead, fs), fs, live)
    found = hum.describe(len(live))
    setting = cfg.line_frequency
    q = f"zero-phase, Q={cfg.notch_quality:g}"
    resolved: dict = {}
    if setting == "auto":
        notches = notch_frequencies(fs, hum.frequency, hum.harmonics) if hum.found else []
        resolved = ({"line_frequency": hum.frequency, "notch_harmonics": list(hum.harmonics)} if hum.found
                    else {"line_frequency": None})
        listed = ", ".join(f"{f:g}" for f in notches)
        step = found + (f": notch filters ({q}) at {listed} Hz" if notches else ": no notch")
        if hum.reason and notch_frequencies(fs, min(LINE_FREQUENCIES), 1):  # a notch could be applied
            log.warning("%s: %s; no notch filter is applied: set preprocess.line_frequency to 50 or 60 to notch "
                        "anyway", sig.source_path, found)
        else:
            log.info("%s: %s", sig.source_path, step)
    else:
        notches = notch_frequencies(fs, setting, cfg.notch_harmonics)
        listed = ", ".join(f"{f:g}" for f in notches)
        step = (f"notch filters ({q}) at {listed} Hz (preprocess.line_frequency {setting:g} Hz as configured)"
                if notches else None)
        if hum.found:  # hum the configured notches leave standing out above its neighbourhood
            left = [k * hum.frequency for k in hum.harmonics
                    if hum.ratios[k] * notch_gain(fs, notches, cfg.notch_quality, k * hum.frequency) ** 2 >= HUM_RATIO]
            if left:
                at = ", ".join(f"{f:g}" for f in left)
                what = (f"{found}: left in (preprocess.line_frequency is off)" if setting is None else
                        f"{found}: {at} Hz not removed by the configured notches at {listed or 'no frequency'} Hz")
                log.warning("%s: %s; set preprocess.line_frequency: auto (or %g) to notch it", sig.source_path, what,
                            hum.frequency)
                step = (step + "; " if step else "") + what
    record = {"setting": "off" if setting is None else setting, **hum.to_dict(), "notched_hz": notches}
    return notches, step, record, resolved


def _chunk_plan(fs: float, cfg: PreprocessConfig, raw: bool, eff_bin: float, notches: list[float], length: int,
                chunk: int) -> tuple[int, int, int, int]:
    """How :func:`_segment_bins` reads a segment of ``length`` samples: the resampling ratio (up,
    down; (1, 1) when there is none), the overlap (samples) each chunk is read with on either side
    so that the filters settle, and the chunk length (the whole segment when ``chunk <= 0`` or it
    is not much longer; else a multiple of ``down``). Returns (up, down, margin, chunk)."""
    up = down = 1
    if cfg.resample_hz is not None and fs > cfg.resample_hz * 1.01 and eff_bin > 1.0 / cfg.resample_hz:
        up, down = resample_ratio(fs, cfg.resample_hz)
    margin = settling_samples(fs, cfg, notches) if raw else 0
    if (up, down) != (1, 1):
        margin += int(np.ceil(10 * max(up, down) / up)) + 2 * down  # the polyphase filter's half-length
        margin = -(-margin // down) * down  # chunk starts stay on the resampling grid
    if chunk <= 0 or length <= chunk + 2 * margin:
        chunk = length
    else:
        chunk = max(down, chunk // down * down)
    return up, down, margin, chunk


def _segment_bins(sig: Signal, seg: slice, dead: np.ndarray, fs: float, cfg: PreprocessConfig, raw: bool,
                  bin_size: float | None, eff_bin: float, chunk: int, notches: list[float], gap_factor: float = 1.5,
                  bar=None) -> tuple[np.ndarray, np.ndarray, float]:
    """Filter (notches at ``notches`` Hz, high-pass), rectify, resample and bin one segment,
    reading ``chunk`` samples at a time with enough overlap that the result equals that of
    filtering the whole segment at once.
    Every (resampled) sample is placed at its true time by the segment's
    :class:`~nwb_autolfads.data.timebase.Clock` (from the timestamps, not ``start + k / rate``), so
    bins sit at their true times however the timestamps are rounded, jittered or drift.
    A (resampled) sample at t covers [t - p/2, t + p/2) of the clock (p its period after the
    resampling; docs/science.md, Bin times): the bins start half a period before the first
    sample, so each is labelled at the centre of the span its samples cover (for a whole number
    of samples per bin, their mean time), wherever the data come from and whatever their rate.
    ``bin_size=None``: every sample is one bin of ``eff_bin`` seconds, at the sample's own timestamp.
    Returns (binned (n_bins, C), bin centres, rate after resampling)."""
    length = seg.stop - seg.start
    notches = notches if raw else []
    up, down, margin, chunk = _chunk_plan(fs, cfg, raw, eff_bin, notches, length, chunk)
    rate = fs * up / down
    clock = sig.clock(seg, gap_factor)
    half = 0.5 * down / up  # half a (resampled) sample period, in input samples
    t_start, t_end = (float(v) for v in clock([-half, float(length) - half]))
    binner = Binner(t_start, t_end, bin_size, sig.n_channels) if bin_size is not None else None
    direct_x, direct_t = [], []
    for a, b in chunk_bounds(length, chunk):
        ea, eb = max(0, a - margin), min(length, b + margin)
        x = np.asarray(sig.values[seg.start + ea:seg.start + eb], dtype=float)
        if dead.any():
            x = np.where(dead[None, :], 0.0, x)  # a new array: the caller's values are never changed
        if raw:
            if notches:
                x = apply_notches(x, fs, notches, cfg.notch_quality)
            if cfg.highpass_hz is not None and cfg.highpass_hz < 0.95 * fs / 2:
                x = highpass_filter(x, fs, cfg.highpass_hz, cfg.highpass_order)
            x = np.abs(x)
        if (up, down) != (1, 1):
            y = sps.resample_poly(x, up, down, axis=0, padtype="symmetric")
            k0, k1 = (a - ea) * up // down, -(-(b - ea) * up // down)
            x = np.abs(y[k0:k1]) if raw else np.maximum(y[k0:k1], 0.0)  # resampling can ring below zero
            t = clock((a * up // down + np.arange(x.shape[0])) * (down / up))
        else:
            x = x[a - ea:b - ea]
            t = clock(np.arange(a, b))
        if binner is not None:
            binner.add(x, t)
        else:
            direct_x.append(x)
            # an already-binned sample keeps its own timestamp (no resampling happens at these rates)
            direct_t.append(t if (up, down) != (1, 1) else np.asarray(sig.times(seg.start + a, seg.start + b)))
        if bar is not None:
            bar.update(b - a)
    if binner is not None:
        binned, centres = binner.result()
    else:
        binned, centres = np.concatenate(direct_x), np.concatenate(direct_t)
    return binned, centres, rate


def _model_bin(sig: Signal, fs: float, bin_size: float | None, preprocessed: bool,
               steps: list[str]) -> tuple[float, bool]:
    """The model bin and whether every sample is one bin (the data are not finer than the bin).

    ``bin_size=None``: already-rectified EMG sampled below ``ALREADY_BINNED_BELOW_HZ`` is already
    binned and keeps its own bin (one sample per bin, at its own timestamp); anything else gets
    ``DEFAULT_BIN_SIZE``. A bin within 0.1% of the sample period, or finer, also means one sample
    per bin. The choice is added to ``steps``. Returns (bin size in seconds, one sample per bin)."""
    period = 1.0 / fs
    if bin_size is None:
        if preprocessed and fs < ALREADY_BINNED_BELOW_HZ * (1 - 1e-6):
            steps.append(f"already binned ({fs:g} Hz, below {ALREADY_BINNED_BELOW_HZ:g} Hz): modelled in its own "
                         f"{period * 1e3:g} ms bins, one per sample at its own timestamp (set windows.bin_size to "
                         "re-bin)")
            return period, True
        bin_size = DEFAULT_BIN_SIZE
    if bin_size <= period * (1 + 1e-3):
        steps.append(f"data are sampled at {fs:g} Hz, not finer than the {bin_size * 1e3:g} ms bin: each sample is "
                     f"one {period * 1e3:g} ms bin, at its own timestamp")
        return period, True
    if preprocessed and fs < ALREADY_BINNED_BELOW_HZ * (1 - 1e-6):
        ratio = bin_size / period
        if abs(ratio - round(ratio)) > 0.01:
            log.warning("%s: the already-binned %g ms samples are re-binned into %g ms bins, not a multiple of "
                        "them: bins average unequal numbers of samples (set windows.bin_size to a multiple of "
                        "%g ms, or leave it unset to keep the input's bins)", sig.source_path, period * 1e3,
                        bin_size * 1e3, period * 1e3)
    return bin_size, False


MIN_RAW_EMG_HZ = 200.0
"""Raw EMG sampled below this rate is refused: it cannot hold the EMG band, and such a rate
mostly comes from timestamps in milliseconds (a 30 kHz recording read as 30 Hz)."""


def preprocess_emg(sig: Signal, cfg: PreprocessConfig, bin_size: float | None, preprocessed: bool | None = None,
                   gap_factor: float = 1.5, chunk_samples: int | None = None, progress: bool = False,
                   scaling: tuple[np.ndarray, np.ndarray] | None = None) -> Preprocessed:
    """Turn an EMG :class:`Signal` into model-ready binned, scaled segments.

    The samples are read and filtered ``chunk_samples`` at a time (default: about 2**23 values,
    64 MB, per chunk), with overlaps long enough for every filter to settle, so memory stays
    bounded for recordings of any length and the result equals filtering each segment whole
    (``chunk_samples=0``) to float tolerance. With :class:`~nwb_autolfads.data.signals.SeriesValues`
    the file is read chunk by chunk too.

    ``bin_size``: the model bin in seconds; ``None`` keeps the bins of EMG that is already
    rectified and binned (sampled below 1 kHz: each sample is one bin, at its own timestamp)
    and uses 10 ms otherwise. Data sampled no finer than the bin are never re-binned.
    ``progress``: a progress bar (stderr, with the time left) over the samples read, shown when
    the recording takes more than one chunk. ``scaling``: (clip levels, scales), each (C,) in the
    source's units, to use instead of estimating them from these data (a saved model applied to
    new data: its input must be scaled as its training data were).
    """
    timebase = sig.timebase(gap_factor)
    fs = timebase.rate
    check_rate(fs, sig.source_path, sig.timestamps is not None)
    chunk = max(1024, DEFAULT_CHUNK_VALUES // max(1, sig.n_channels)) if chunk_samples is None else chunk_samples
    scan_chunk = chunk if chunk > 0 else sig.n_samples
    bar = tqdm(total=2 * sig.n_samples, desc="reading EMG twice (scan + filter)", unit="sample", unit_scale=True,
               leave=False, disable=not progress or sig.n_samples <= scan_chunk)
    try:
        return _preprocess(sig, cfg, bin_size, preprocessed, gap_factor, chunk, scan_chunk, timebase, bar, scaling)
    finally:
        bar.close()


def _preprocess(sig: Signal, cfg: PreprocessConfig, bin_size: float | None, preprocessed: bool | None,
                gap_factor: float, chunk: int, scan_chunk: int, timebase, bar,
                scaling: tuple[np.ndarray, np.ndarray] | None = None) -> Preprocessed:
    """:func:`preprocess_emg` after the chunk size is chosen; ``bar`` counts the samples read
    (each twice: the scan for NaN/inf and saturation, then the filtering)."""
    fs = timebase.rate
    steps: list[str] = []
    segments, dead, scan = _usable_segments(sig, timebase, scan_chunk, bar, steps)
    # excerpts spread over the recording, read once: the raw/rectified decision, the rails below a
    # glitch and the below-zero check
    excerpts = spread_samples(sig.values, segments, dead)
    raw = _is_raw(sig, fs, preprocessed, excerpts, steps)
    warn_saturated(sig, scan, raw, samples=excerpts)
    if raw:
        segments = drop_flat_stretches(sig, scan, segments, dead, steps, _flat_samples(fs))
    warn_implausible_volts(sig, scan)

    bin_size, per_sample = _model_bin(sig, fs, bin_size, not raw, steps)
    eff_bin = 1.0 / fs if per_sample else bin_size

    notches, notch_step, line_hum, resolved = [], None, {}, {}
    if raw:
        notches, notch_step, line_hum, resolved = _line_notches(sig, segments, dead, fs, cfg)
    binned, centres, rate_after = _bin_segments(sig, segments, dead, fs, cfg, raw, None if per_sample else bin_size,
                                                eff_bin, chunk, notches, gap_factor, bar)
    _record_filtering(steps, cfg, fs, raw, notch_step, rate_after, None if per_sample else bin_size)
    if not raw:
        warn_below_zero(sig, excerpts)

    if cfg.artefact_fraction is not None:
        binned = reject_shared_artefacts(binned, cfg.artefact_fraction, cfg.artefact_quantile, steps)
    segs, clip, scales = _clip_and_scale(sig, binned, cfg, steps) if scaling is None else \
        _apply_scaling(sig, binned, cfg, steps, *scaling)
    return Preprocessed(segments=segs, bin_times=centres, bin_size=eff_bin, scales=scales,
                        clip_levels=clip, rectified=binned, channel_names=list(sig.channel_names),
                        steps=steps, was_raw=raw, line_hum=line_hum, resolved=resolved)


def _usable_segments(sig: Signal, timebase, scan_chunk: int, bar,
                     steps: list[str]) -> tuple[list[slice], np.ndarray, SampleScan]:
    """The gap-free segments of ``timebase`` with NaN/inf samples (:func:`drop_non_finite`) and those
    inside the file's invalid_times (:func:`drop_invalid_times`) left out,
    after one pass over the samples (:func:`scan_samples`).
    Returns (segments, dead-channel mask, the scan)."""
    segments = list(timebase.segments)
    for note in timebase.notes():
        log.warning("%s: %s", sig.source_path, note)
        steps.append(note.split(":")[0])
    if len(segments) > 1:
        steps.append(f"split into {len(segments)} segments at gaps in the timestamps (no filter crosses a gap)")
    scan = scan_samples(sig.values, scan_chunk, bar, min_flat=_flat_samples(timebase.rate))
    dead, segments = drop_non_finite(sig, scan, segments, steps)
    segments = drop_invalid_times(sig, segments, steps)
    bar.total = sig.n_samples + sum(seg.stop - seg.start for seg in segments)  # the samples filtered next
    return segments, dead, scan


def _flat_samples(fs: float) -> int:
    """Samples in :data:`FLAT_SECONDS` at ``fs`` (at least 10)."""
    return max(int(round(FLAT_SECONDS * fs)), 10)


def _is_raw(sig: Signal, fs: float, preprocessed: bool | None, excerpts: list[np.ndarray] | None,
            steps: list[str]) -> bool:
    """Whether the EMG is raw (``preprocessed`` as given, or detected by :func:`looks_rectified` on
    ``excerpts``, :func:`spread_samples`);
    raw EMG sampled too slowly to hold the EMG band raises :class:`SignalError` (under
    :data:`MIN_RAW_EMG_HZ`) or warns (under 500 Hz)."""
    if preprocessed is None:
        try:
            preprocessed = looks_rectified(excerpts, fs, list(sig.channel_names))
        except AmbiguousEmg as exc:
            if exc.mixed:  # the evidence names the channels; saying one kind for all would be wrong for some
                raise SignalError(f"{sig.source_path}: the EMG channels are not all of one kind: {exc.evidence} "
                                  "(or, if they are all of one kind, say which: --emg-raw or --emg-preprocessed)") from None
            names = ", ".join(sig.channel_names[c] for c in exc.channels[:20]) + (
                f" and {len(exc.channels) - 20} more" if len(exc.channels) > 20 else "")
            raise SignalError(f"{sig.source_path}: cannot tell whether the EMG is raw or already an envelope "
                              f"({names}): {exc.evidence} Say which: --emg-raw or --emg-preprocessed (in Python, "
                              "the setting data.preprocessed: False or True)") from None
        steps.append("detected already-rectified/enveloped EMG (not both signs, or little power above 60 Hz; "
                     "override with --emg-raw)" if preprocessed else
                     "detected raw EMG (both signs with power above 60 Hz, or symmetric and fast about a baseline; override with "
                     "--emg-preprocessed)")
    raw = not preprocessed
    if raw and fs < MIN_RAW_EMG_HZ:
        raise SignalError(f"{sig.source_path}: raw EMG (detected: both signs, or fast and symmetric) sampled at "
                          f"{fs:g} Hz cannot hold the EMG band (20-450 Hz): are the timestamps in milliseconds, or the rate in kHz (a "
                          f"{fs * 1000:g} Hz recording)? Fix the file's timestamps or rate; pass --emg-preprocessed if "
                          "the data really are an envelope at this rate")
    if raw and fs < 500.0:
        log.warning("%s: raw EMG sampled at %g Hz cannot hold the EMG band (20-450 Hz): check the rate or timestamps "
                    "(a wrong unit?), or pass --emg-preprocessed if the data are an envelope", sig.source_path, fs)
    return raw


def _bin_segments(sig: Signal, segments: list[slice], dead: np.ndarray, fs: float, cfg: PreprocessConfig, raw: bool,
                  bin_size: float | None, eff_bin: float, chunk: int, notches: list[float], gap_factor: float,
                  bar) -> tuple[list[np.ndarray], list[np.ndarray], float]:
    """:func:`_segment_bins` on every segment (raw segments too short to filter are skipped with a
    warning). Returns (binned per segment, bin centres per segment, rate after resampling);
    :class:`SignalError` when no complete bin could be formed."""
    binned, centres = [], []
    rate_after = fs
    for seg in segments:
        if raw and seg.stop - seg.start < 16:
            log.warning("%s: skipping a segment of %d samples (too short to filter)", sig.source_path,
                        seg.stop - seg.start)
            continue
        b, c, rate_after = _segment_bins(sig, seg, dead, fs, cfg, raw, bin_size, eff_bin, chunk, notches, gap_factor,
                                         bar)
        if b.shape[0]:
            binned.append(b)
            centres.append(c)
    if not binned:
        raise SignalError(f"{sig.source_path}: no complete {eff_bin * 1e3:g} ms bin could be formed: the recording "
                          "is too short")
    return binned, centres, rate_after


def _record_filtering(steps: list[str], cfg: PreprocessConfig, fs: float, raw: bool, notch_step: str | None,
                      rate_after: float, bin_size: float | None) -> None:
    """Add the filtering steps that were applied to ``steps`` (``bin_size=None``: one sample per bin)."""
    if raw:
        if notch_step:
            steps.append(notch_step)
        if cfg.highpass_hz is not None and cfg.highpass_hz < 0.95 * fs / 2:
            steps.append(f"high-pass Butterworth order {cfg.highpass_order} at {cfg.highpass_hz:g} Hz (zero-phase)")
        steps.append("full-wave rectification")
    if rate_after != fs:
        steps.append(f"anti-aliased polyphase resampling {fs:g} Hz -> {rate_after:g} Hz")
    if bin_size is not None:
        steps.append(f"averaged into {bin_size * 1e3:g} ms bins")


def _clip_and_scale(sig: Signal, binned: list[np.ndarray], cfg: PreprocessConfig,
                    steps: list[str]) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Clip each channel at its ``cfg.clip_quantile``, divide it by its ``cfg.scale_quantile`` (flat
    channels: by 1, with a warning) and floor at ``cfg.floor``, over all segments together.
    Returns (float32 segments in model units, clip levels (C,), scales (C,))."""
    allb = np.concatenate(binned, axis=0)
    n_ch = allb.shape[1]
    if cfg.clip_quantile is not None and cfg.clip_quantile < 1.0:
        clip = np.quantile(allb, cfg.clip_quantile, axis=0)
        steps.append(f"per-channel clipping at the {cfg.clip_quantile:g} quantile")
    else:
        clip = np.full(n_ch, np.inf)
    clipped_all = np.minimum(allb, clip[None, :])
    scales = np.quantile(clipped_all, cfg.scale_quantile, axis=0)
    flat = ~(scales > 0)
    if np.any(flat):
        names = [sig.channel_names[i] for i in np.flatnonzero(flat)]
        log.warning("%s: channel(s) %s are flat (zero %g quantile); they are modelled at the floor value",
                    sig.source_path, ", ".join(names), cfg.scale_quantile)
        scales = np.where(flat, 1.0, scales)
    steps.append(f"per-channel division by the {cfg.scale_quantile:g} quantile")
    steps.append(f"floor at {cfg.floor:g}")
    return _scaled(binned, clip, scales, cfg.floor), clip, scales


def _scaled(binned: list[np.ndarray], clip: np.ndarray, scales: np.ndarray, floor: float) -> list[np.ndarray]:
    """Each segment clipped at ``clip``, divided by ``scales`` and floored: float32 model units."""
    return [np.maximum(np.minimum(b, clip[None, :]) / scales[None, :], floor).astype(np.float32) for b in binned]


def _apply_scaling(sig: Signal, binned: list[np.ndarray], cfg: PreprocessConfig, steps: list[str],
                   clip: np.ndarray, scales: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """As :func:`_clip_and_scale` with given clip levels and scales (C,) (a saved model's).

    Raises
    ------
    SignalError
        Their length is not the channel count, or a scale is not positive and finite.
    """
    clip, scales = np.asarray(clip, dtype=np.float64), np.asarray(scales, dtype=np.float64)
    n_ch = binned[0].shape[1]
    if clip.shape != (n_ch,) or scales.shape != (n_ch,) or not np.all(np.isfinite(scales) & (scales > 0)):
        raise SignalError(f"{sig.source_path}: the stored scaling does not fit its {n_ch} channels (clip levels "
                          f"{clip.shape}, scales {scales.shape}, all positive): the model folder is damaged")
    steps.append("per-channel clipping and division by the stored levels and scales of the applied model")
    steps.append(f"floor at {cfg.floor:g}")
    return _scaled(binned, clip, scales, cfg.floor), clip, scales
