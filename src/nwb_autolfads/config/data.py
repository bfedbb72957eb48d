"""The sections that say what is read and how it becomes model input: ``data`` (which signals),
``preprocess`` (raw-EMG filters and scaling) and ``windows`` (bins, windows, merging)."""

from __future__ import annotations

from dataclasses import dataclass

from nwb_autolfads.config.checks import check
from nwb_autolfads.modalities import parse_modalities

__all__ = ["DataConfig", "PreprocessConfig", "WindowConfig", "DEFAULT_BIN_SIZE", "ALREADY_BINNED_BELOW_HZ"]


@dataclass(frozen=True)
class DataConfig:
    """Which signal to read from the NWB file."""

    modalities: tuple[str, ...] = ("emg",)
    """What to model, one model for all (:mod:`nwb_autolfads.modalities`): a list of ``emg``,
    ``spikes`` (nwbfile.units) and ``force`` (a force TimeSeries, with emg or spikes), e.g.
    ``[emg, spikes]``; on the command line ``--model emg+spikes``. The key ``data.model`` of earlier
    versions (``"emg+spikes"``) is read as this."""
    emg: str | None = None
    """Object path of the EMG series (e.g. ``acquisition/EMG``); ``None`` finds it automatically."""
    force: str | None = None
    """Object path of the force series modelled with ``force`` (e.g. ``processing/behavior/force``);
    ``None`` finds it (refused when the file holds several)."""
    units: str | None = None
    """Filter of the units table (a pandas query on its columns, e.g. ``quality == 'good'``)."""
    bad_units: str = "refuse"
    """What to do with units whose spike times cannot be right (NaN/inf or negative times, times
    that are not ascending, most spikes outside the modelled time span): ``refuse`` (stop with an
    error naming them) or ``exclude`` (leave them out of the model, with a warning). Spike times
    are never re-sorted."""
    preprocessed: bool | None = None
    """``True``: EMG is already rectified/enveloped (skip notch, high-pass, rectification);
    ``False``: raw EMG; ``None``: detect (non-negative data is taken as already rectified)."""
    channel_names: tuple[str, ...] | None = None
    """Override the channel (muscle) names read from the file."""
    align_to: str | None = None
    """Trial-aligned mode: a time column of ``nwbfile.trials`` (e.g. ``start_time``, ``go_cue_time``);
    every trial's ``window`` around it is one model window, instead of continuous chopping."""
    window: tuple[float, ...] | None = None
    """Trial-aligned mode: (start, stop) in seconds relative to ``align_to``, e.g. (-0.5, 1.0)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "modalities", parse_modalities(self.modalities))  # canonical order
        check(self.bad_units in ("refuse", "exclude"), "data.bad_units", self.bad_units,
              "use 'refuse' (stop on units with impossible spike times) or 'exclude' (leave them out)")
        check((self.align_to is None) == (self.window is None), "data.window", self.window,
              "give both --align-to COLUMN and --window START,STOP (seconds), or neither")
        if self.window is not None:
            check(len(self.window) == 2 and self.window[0] < self.window[1], "data.window", self.window,
                  "give START,STOP in seconds with START < STOP, e.g. -0.5,1.0")
        if self.channel_names is not None:
            check(len(self.channel_names) > 0, "data.channel_names", self.channel_names,
                  "give at least one name, or leave it unset")


@dataclass(frozen=True)
class PreprocessConfig:
    """Raw-EMG preprocessing (docs/science.md, EMG preprocessing). Set a step to ``None`` to skip it."""

    line_frequency: float | str | bool | None = "auto"
    """Mains (line) frequency to notch out. ``auto``: found from a Welch spectrum of the raw EMG
    (50 or 60 Hz, measured to 0.01 Hz, with the harmonics that stand out; no notch where no hum
    is found); a number (e.g. 50 or 60) notches that frequency and ``notch_harmonics``;
    ``null`` or ``off`` skips the notch filters. A run saves the frequency and harmonics it
    notched in its config, so ``evaluate`` repeats exactly what the run did."""
    notch_harmonics: int | tuple[int, ...] = 3
    """With a given ``line_frequency``: the number of harmonics notched, fundamental included,
    or the harmonic numbers (1 = the fundamental) as a list, e.g. [1, 3, 5]; those above
    Nyquist are skipped. With ``auto`` the harmonics found are notched instead."""
    notch_quality: float = 30.0
    """Quality factor Q of each notch (bandwidth = frequency / Q)."""
    highpass_hz: float | None = 65.0
    """High-pass cutoff in Hz (Butterworth, zero-phase) before rectification; ``None`` skips it."""
    highpass_order: int = 4
    """Order of the high-pass Butterworth filter."""
    resample_hz: float | None = 1000.0
    """Anti-aliased polyphase resampling target before binning; ``None`` skips it."""
    clip_quantile: float | None = 0.99
    """Per-channel quantile of the binned rectified EMG above which values are clipped; ``None`` skips clipping."""
    scale_quantile: float = 0.95
    """Each channel is divided by this quantile of its binned rectified EMG (the model sees ~unit scale)."""
    floor: float = 1e-3
    """Smallest value after scaling (the Gamma likelihood has no support at zero)."""
    artefact_fraction: float | None = None
    """Shared-artefact rejection (off by default): bins where more than this fraction of the
    channels exceed their ``artefact_quantile`` at once, and one bin either side, are replaced
    by linear interpolation before clipping and scaling - for the model and, in ``evaluate``,
    for the baselines alike. 0.5 suits brief high-amplitude bursts that most channels share
    (movement, cable or stimulation artefacts); leave it off where most muscles can be at their
    peak together."""
    artefact_quantile: float = 0.99
    """Per-channel quantile a bin must exceed to count towards ``artefact_fraction``."""

    def __post_init__(self) -> None:
        self._normalise_line_frequency()
        self._check_notch()
        self._check_filters()
        self._check_scaling()

    def _normalise_line_frequency(self) -> None:
        """``line_frequency`` as ``"auto"``, ``None`` (off) or a positive number, from the words and
        booleans a YAML file may hold."""
        if isinstance(self.line_frequency, bool):  # YAML reads an unquoted off/no as false
            check(not self.line_frequency, "preprocess.line_frequency", self.line_frequency,
                  "use auto (find it from the spectrum), 50 or 60 (Hz), or off to skip the notch")
            object.__setattr__(self, "line_frequency", None)
        elif isinstance(self.line_frequency, str):
            word = self.line_frequency.strip().lower()
            check(word in ("auto", "off", "none"), "preprocess.line_frequency", self.line_frequency,
                  "use auto (find it from the spectrum), 50 or 60 (Hz), or off to skip the notch")
            object.__setattr__(self, "line_frequency", "auto" if word == "auto" else None)
        elif self.line_frequency is not None:
            check(self.line_frequency > 0, "preprocess.line_frequency", self.line_frequency,
                  "use auto (find it from the spectrum), 50 or 60 (Hz), or off to skip the notch")

    def _check_notch(self) -> None:
        """The notch filters' harmonics and quality factor."""
        if isinstance(self.notch_harmonics, tuple):
            check(len(self.notch_harmonics) > 0 and all(k >= 1 for k in self.notch_harmonics),
                  "preprocess.notch_harmonics", list(self.notch_harmonics),
                  "list harmonic numbers >= 1 (1 is the fundamental), e.g. [1, 2, 3], or give their number")
        else:
            check(self.notch_harmonics >= 1, "preprocess.notch_harmonics", self.notch_harmonics,
                  "use an integer >= 1, or a list of harmonic numbers such as [1, 3, 5]")
        check(self.notch_quality > 0, "preprocess.notch_quality", self.notch_quality, "use a value > 0")

    def _check_filters(self) -> None:
        """The high-pass filter and the resampling rate."""
        if self.highpass_hz is not None:
            check(self.highpass_hz > 0, "preprocess.highpass_hz", self.highpass_hz,
                  "use a cutoff > 0 Hz, or null to skip the high-pass")
        check(1 <= self.highpass_order <= 10, "preprocess.highpass_order", self.highpass_order,
              "use an order between 1 and 10")
        if self.resample_hz is not None:
            check(self.resample_hz > 0, "preprocess.resample_hz", self.resample_hz, "use a rate > 0 Hz")

    def _check_scaling(self) -> None:
        """Clipping, scaling, the floor and the artefact rejection of the binned EMG."""
        if self.clip_quantile is not None:
            check(0.5 < self.clip_quantile <= 1.0, "preprocess.clip_quantile", self.clip_quantile,
                  "use a quantile in (0.5, 1], or null to skip clipping")
        check(0.0 < self.scale_quantile <= 1.0, "preprocess.scale_quantile", self.scale_quantile,
              "use a quantile in (0, 1]")
        check(0.0 <= self.floor < 1.0, "preprocess.floor", self.floor,
              "use a small positive value such as 1e-3 (0 only with a model.observation that accepts exact zeros, "
              "e.g. zigamma)")
        if self.artefact_fraction is not None:
            check(0.0 <= self.artefact_fraction < 1.0, "preprocess.artefact_fraction", self.artefact_fraction,
                  "use a fraction of the channels in [0, 1), e.g. 0.5, or null to skip artefact rejection")
        check(0.5 < self.artefact_quantile < 1.0, "preprocess.artefact_quantile", self.artefact_quantile,
              "use a quantile in (0.5, 1), e.g. 0.99")


DEFAULT_BIN_SIZE = 0.01
"""Model bin (seconds) when ``windows.bin_size`` is not set and the input is not already binned."""
ALREADY_BINNED_BELOW_HZ = 1000.0
"""Already-rectified EMG sampled below this rate (a sample period above 1 ms) is taken as
already binned: each sample is one model bin, at the sample's own timestamp."""


@dataclass(frozen=True)
class WindowConfig:
    """Binning and chopping of continuous data into overlapping windows (docs/science.md, Windows and merging)."""

    bin_size: float | None = None
    """Model bin width in seconds. null (the default): EMG that is already rectified and binned
    (sampled below 1 kHz) keeps its own bin, anything else is averaged into 10 ms bins. The
    resolved value is stored with every result."""
    window_bins: int = 50
    """Bins per model window (window length = window_bins x bin_size seconds)."""
    overlap_bins: int = 10
    """Bins shared by consecutive windows (merged with ramps)."""
    merge_power: float = 2.0
    """Exponent p of the overlap ramps x**p / 1 - x**p used when merging windows."""
    valid_every: int = 5
    """Every k-th window is held out for validation."""
    gap_factor: float = 1.5
    """Consecutive timestamps further apart than gap_factor x the median step start a new segment."""
    fit_segments: bool = True
    """When gap-free segments shorter than a window (separate trials or step cycles, say) hold
    more than 1% of the bins, shorten the windows to the shortest of them (never below 10 bins)
    so that every segment is modelled, with a warning saying so. ``False`` keeps
    ``window_bins``; shorter segments are then left out of the results (also with a warning)."""

    def __post_init__(self) -> None:
        check(self.bin_size is None or 0 < self.bin_size <= 1.0, "windows.bin_size", self.bin_size,
              "use a bin width in seconds, e.g. 0.01, or null for the input's own bin (already-binned EMG) or 10 ms")
        check(self.window_bins >= 4, "windows.window_bins", self.window_bins, "use at least 4 bins per window")
        check(0 <= self.overlap_bins < self.window_bins, "windows.overlap_bins", self.overlap_bins,
              f"use an overlap between 0 and window_bins - 1 ({self.window_bins - 1})")
        check(self.merge_power > 0, "windows.merge_power", self.merge_power, "use a positive exponent, e.g. 2")
        check(self.valid_every >= 2, "windows.valid_every", self.valid_every,
              "use an integer >= 2 (1 in k windows is held out)")
        check(self.gap_factor > 1.0, "windows.gap_factor", self.gap_factor, "use a value > 1, e.g. 1.5")
