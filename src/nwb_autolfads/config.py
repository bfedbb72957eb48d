"""Configuration: small frozen dataclasses grouped by concern.

The whole run is described by one :class:`RunConfig`. It is built from (in increasing
priority) the defaults below, a named preset, a YAML/JSON config file and explicit overrides
(CLI options or keyword arguments). Unknown keys, wrong types and out-of-range values raise
:class:`~nwb_autolfads.errors.ConfigError` naming the key, the value and the fix.

Sizes that depend on the data (number of channels, number of factors when left as ``None``)
are resolved from the data by :func:`RunConfig.resolved`; the resolved config is saved with
every result.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import types
import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

import yaml

from nwb_autolfads.errors import ConfigError

__all__ = [
    "DataConfig",
    "PreprocessConfig",
    "WindowConfig",
    "DEFAULT_BIN_SIZE",
    "ALREADY_BINNED_BELOW_HZ",
    "ModelConfig",
    "AugmentConfig",
    "TrainConfig",
    "SearchRange",
    "PBTConfig",
    "PBT_HYPERPARAMETERS",
    "configured_hyperparameters",
    "InferenceConfig",
    "OutputConfig",
    "RunConfig",
    "PRESETS",
    "build_config",
    "load_config_file",
]


def _check(cond: bool, key: str, value: Any, fix: str) -> None:
    if not cond:
        raise ConfigError(f"invalid config value {key}={value!r}: {fix}")


@dataclass(frozen=True)
class DataConfig:
    """Which signal to read from the NWB file."""

    model: str = "emg"
    """What to model: ``emg``, ``spikes`` (nwbfile.units) or ``emg+spikes`` (one model for both)."""
    emg: str | None = None
    """Object path of the EMG series (e.g. ``acquisition/EMG``); ``None`` finds it automatically."""
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
        _check(self.model in ("emg", "spikes", "emg+spikes"), "data.model", self.model,
               "use 'emg', 'spikes' or 'emg+spikes'")
        _check(self.bad_units in ("refuse", "exclude"), "data.bad_units", self.bad_units,
               "use 'refuse' (stop on units with impossible spike times) or 'exclude' (leave them out)")
        _check((self.align_to is None) == (self.window is None), "data.window", self.window,
               "give both --align-to COLUMN and --window START,STOP (seconds), or neither")
        if self.window is not None:
            _check(len(self.window) == 2 and self.window[0] < self.window[1], "data.window", self.window,
                   "give START,STOP in seconds with START < STOP, e.g. -0.5,1.0")
        if self.channel_names is not None:
            _check(len(self.channel_names) > 0, "data.channel_names", self.channel_names,
                   "give at least one name, or leave it unset")


@dataclass(frozen=True)
class PreprocessConfig:
    """Raw-EMG preprocessing (science.md section 2). Set a step to ``None`` to skip it."""

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
        if isinstance(self.line_frequency, bool):  # YAML reads an unquoted off/no as false
            _check(not self.line_frequency, "preprocess.line_frequency", self.line_frequency,
                   "use auto (find it from the spectrum), 50 or 60 (Hz), or off to skip the notch")
            object.__setattr__(self, "line_frequency", None)
        elif isinstance(self.line_frequency, str):
            word = self.line_frequency.strip().lower()
            _check(word in ("auto", "off", "none"), "preprocess.line_frequency", self.line_frequency,
                   "use auto (find it from the spectrum), 50 or 60 (Hz), or off to skip the notch")
            object.__setattr__(self, "line_frequency", "auto" if word == "auto" else None)
        elif self.line_frequency is not None:
            _check(self.line_frequency > 0, "preprocess.line_frequency", self.line_frequency,
                   "use auto (find it from the spectrum), 50 or 60 (Hz), or off to skip the notch")
        if isinstance(self.notch_harmonics, tuple):
            _check(len(self.notch_harmonics) > 0 and all(k >= 1 for k in self.notch_harmonics),
                   "preprocess.notch_harmonics", list(self.notch_harmonics),
                   "list harmonic numbers >= 1 (1 is the fundamental), e.g. [1, 2, 3], or give their number")
        else:
            _check(self.notch_harmonics >= 1, "preprocess.notch_harmonics", self.notch_harmonics,
                   "use an integer >= 1, or a list of harmonic numbers such as [1, 3, 5]")
        _check(self.notch_quality > 0, "preprocess.notch_quality", self.notch_quality, "use a value > 0")
        if self.highpass_hz is not None:
            _check(self.highpass_hz > 0, "preprocess.highpass_hz", self.highpass_hz,
                   "use a cutoff > 0 Hz, or null to skip the high-pass")
        _check(1 <= self.highpass_order <= 10, "preprocess.highpass_order", self.highpass_order,
               "use an order between 1 and 10")
        if self.resample_hz is not None:
            _check(self.resample_hz > 0, "preprocess.resample_hz", self.resample_hz, "use a rate > 0 Hz")
        if self.clip_quantile is not None:
            _check(0.5 < self.clip_quantile <= 1.0, "preprocess.clip_quantile", self.clip_quantile,
                   "use a quantile in (0.5, 1], or null to skip clipping")
        _check(0.0 < self.scale_quantile <= 1.0, "preprocess.scale_quantile", self.scale_quantile,
               "use a quantile in (0, 1]")
        _check(0.0 <= self.floor < 1.0, "preprocess.floor", self.floor,
               "use a small positive value such as 1e-3 (0 only with model.observation: zigamma)")
        if self.artefact_fraction is not None:
            _check(0.0 <= self.artefact_fraction < 1.0, "preprocess.artefact_fraction", self.artefact_fraction,
                   "use a fraction of the channels in [0, 1), e.g. 0.5, or null to skip artefact rejection")
        _check(0.5 < self.artefact_quantile < 1.0, "preprocess.artefact_quantile", self.artefact_quantile,
               "use a quantile in (0.5, 1), e.g. 0.99")


DEFAULT_BIN_SIZE = 0.01
"""Model bin (seconds) when ``windows.bin_size`` is not set and the input is not already binned."""
ALREADY_BINNED_BELOW_HZ = 1000.0
"""Already-rectified EMG sampled below this rate (a sample period above 1 ms) is taken as
already binned: each sample is one model bin, at the sample's own timestamp."""


@dataclass(frozen=True)
class WindowConfig:
    """Binning and chopping of continuous data into overlapping windows (science.md section 7)."""

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
        _check(self.bin_size is None or 0 < self.bin_size <= 1.0, "windows.bin_size", self.bin_size,
               "use a bin width in seconds, e.g. 0.01, or null for the input's own bin (already-binned EMG) or 10 ms")
        _check(self.window_bins >= 4, "windows.window_bins", self.window_bins, "use at least 4 bins per window")
        _check(0 <= self.overlap_bins < self.window_bins, "windows.overlap_bins", self.overlap_bins,
               f"use an overlap between 0 and window_bins - 1 ({self.window_bins - 1})")
        _check(self.merge_power > 0, "windows.merge_power", self.merge_power, "use a positive exponent, e.g. 2")
        _check(self.valid_every >= 2, "windows.valid_every", self.valid_every,
               "use an integer >= 2 (1 in k windows is held out)")
        _check(self.gap_factor > 1.0, "windows.gap_factor", self.gap_factor, "use a value > 1, e.g. 1.5")


@dataclass(frozen=True)
class ModelConfig:
    """LFADS architecture (science.md section 4)."""

    observation: str = "gamma"
    """Likelihood of the EMG: ``gamma``, or ``zigamma`` (zero-inflated Gamma) for EMG with exact zeros."""
    ic_enc_dim: int = 64
    """Units of the initial-condition encoder GRU (per direction)."""
    ci_enc_dim: int = 64
    """Units of the controller-input encoder GRU (per direction)."""
    con_dim: int = 64
    """Units of the controller GRU."""
    co_dim: int = 2
    """Number of inferred inputs; 0 removes the controller."""
    ic_dim: int = 64
    """Dimension of the initial condition of the generator."""
    gen_dim: int = 64
    """Units of the generator GRU."""
    factor_dim: int | None = None
    """Number of factors; ``None`` = inferred from the number of channels."""
    dropout: float = 0.1
    """Dropout rate (data into the encoders, encoder outputs, generator states)."""
    cell_clip: float = 5.0
    """Bound on the GRU hidden states (numerical safety)."""
    ci_lag: int = 1
    """Bins by which the controller inputs lag the data (so the controller cannot copy it)."""
    lead_in_bins: int = 0
    """Bins before each window that only the initial-condition encoder sees (e.g. 12)."""
    ic_prior_var: float = 0.1
    """Variance of the Gaussian prior of the initial condition."""
    ic_post_var_min: float = 1e-4
    """Smallest variance of the initial condition's posterior."""
    co_prior_tau: float = 10.0
    """Autocorrelation time constant (bins) of the AR(1) prior of the inferred inputs."""
    co_prior_var: float = 0.1
    """Variance of the AR(1) prior of the inferred inputs."""

    def __post_init__(self) -> None:
        _check(self.observation in ("gamma", "zigamma"), "model.observation", self.observation,
               "use 'gamma' for EMG, or 'zigamma' for EMG with exact zeros")
        for name in ("ic_enc_dim", "ic_dim", "gen_dim"):
            _check(getattr(self, name) >= 1, f"model.{name}", getattr(self, name), "use an integer >= 1")
        _check(self.co_dim >= 0, "model.co_dim", self.co_dim, "use an integer >= 0 (0 removes the controller)")
        if self.co_dim > 0:
            for name in ("ci_enc_dim", "con_dim"):
                _check(getattr(self, name) >= 1, f"model.{name}", getattr(self, name),
                       "use an integer >= 1 (or set co_dim: 0)")
        if self.factor_dim is not None:
            _check(self.factor_dim >= 1, "model.factor_dim", self.factor_dim, "use an integer >= 1, or null (auto)")
        _check(0.0 <= self.dropout < 1.0, "model.dropout", self.dropout, "use a rate in [0, 1)")
        _check(self.cell_clip > 0, "model.cell_clip", self.cell_clip, "use a positive bound, e.g. 5")
        _check(self.ci_lag >= 0, "model.ci_lag", self.ci_lag, "use an integer >= 0")
        _check(self.lead_in_bins >= 0, "model.lead_in_bins", self.lead_in_bins, "use an integer >= 0")
        for name in ("ic_prior_var", "ic_post_var_min", "co_prior_tau", "co_prior_var"):
            _check(getattr(self, name) > 0, f"model.{name}", getattr(self, name), "use a positive value")

    def factors_for(self, n_channels: int) -> int:
        """Number of factors for ``n_channels`` channels (explicit value or the EMG rule)."""
        if self.factor_dim is not None:
            return self.factor_dim
        # Fewer factors than channels for EMG (e.g. 8-10 for 12 muscles), at least 2.
        return max(2, min(40, int(round(0.75 * n_channels))))


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentations (science.md section 5)."""

    cd_rate: float = 0.3
    """Coordinated dropout: fraction of input elements masked; 0 disables."""
    shift_std: float = 1.0
    """Temporal shift: standard deviation (bins) of per-channel shifts; 0 disables."""
    shift_max: int = 3
    """Largest per-channel temporal shift in bins."""
    sv_rate: float = 0.0
    """Sample validation: fraction of training data elements never shown to the encoder nor used in
    the loss; their NLL is a second validation metric (``sample_valid_nll``). 0 disables."""

    def __post_init__(self) -> None:
        _check(0.0 <= self.cd_rate < 1.0, "augment.cd_rate", self.cd_rate, "use a rate in [0, 1)")
        _check(0.0 <= self.sv_rate < 0.5, "augment.sv_rate", self.sv_rate, "use a fraction in [0, 0.5), e.g. 0.1")
        _check(self.shift_std >= 0, "augment.shift_std", self.shift_std, "use a value >= 0 (bins)")
        _check(self.shift_max >= 0, "augment.shift_max", self.shift_max, "use an integer >= 0 (bins)")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and regularisation (science.md section 4)."""

    max_steps: int = 2000
    """Largest number of optimisation steps (batches of ``batch_size`` windows) one model trains;
    a population uses ``pbt.generation_steps`` per generation instead. A budget in steps costs
    the same on a 1-minute and a 1-hour recording (an epoch is ceil(training windows /
    batch_size) steps)."""
    min_steps: int = 200
    """Steps trained before early stopping may stop training."""
    batch_size: int = 32
    """Windows per training step."""
    lr: float = 4e-3
    """Initial learning rate of Adam."""
    lr_min: float = 1e-5
    """The learning rate is never decayed below this."""
    lr_decay: float = 0.95
    """Factor applied to the learning rate when the validation NLL stalls."""
    lr_patience: int = 6
    """Validation checks (one every ``valid_every`` steps) without improvement before the
    learning rate is decayed."""
    adam_eps: float = 1e-8
    """Epsilon of Adam."""
    max_grad_norm: float = 200.0
    """Gradients are clipped to this global norm (of the scaled loss)."""
    loss_scale: float = 1e4
    """The optimised loss is multiplied by this (gradient clipping acts on that scale)."""
    kl_ic_scale: float = 1e-4
    """Weight of the KL penalty of the initial conditions."""
    kl_co_scale: float = 1e-4
    """Weight of the KL penalty of the inferred inputs."""
    l2_gen_scale: float = 1e-3
    """Weight of the L2 penalty of the generator's recurrent weights."""
    l2_con_scale: float = 1e-3
    """Weight of the L2 penalty of the controller's recurrent weights."""
    ramp_steps: int = 200
    """KL and L2 weights ramp linearly from 0 to 1 over this many steps."""
    early_stopping_patience: int = 200
    """Stop when the smoothed validation NLL has not improved for this many steps (checked
    after ``min_steps`` and the ramp)."""
    valid_every: int = 10
    """Steps between two validation checks (each check evaluates the ``valid_windows`` subset)."""
    valid_windows: int = 256
    """Validation evaluates a fixed subset of at most this many validation windows, spread
    evenly over the recording and chosen once, so a check costs the same on any recording."""
    smoothing: float = 0.7
    """Exponential smoothing factor of the validation NLL (weight of the previous value)."""
    cuda_graphs: bool = True
    """On a GPU, replay each training step's forward and backward pass from a CUDA graph
    (:mod:`nwb_autolfads.train.cudagraphs`); no effect on the CPU. False runs every kernel eagerly."""
    threads: int = 0
    """Torch intra-op threads of each training process (the run's own, and each PBT worker's).
    0 (auto): chosen by :func:`nwb_autolfads.train.resources.choose_execution` from the model's size and
    the cores this process may use (CPU affinity and cgroup quota): one per process for the small
    recurrent models of EMG, which are latency-bound (a second thread costs a core and gains
    little; see benchmarks/threads.py), and never more than cores // workers. A number > 0 is
    used as given, still capped so that workers x threads <= the cores available."""

    def __post_init__(self) -> None:
        _check(self.max_steps >= 1, "train.max_steps", self.max_steps, "use an integer >= 1")
        _check(0 <= self.min_steps, "train.min_steps", self.min_steps, "use an integer >= 0")
        _check(self.batch_size >= 1, "train.batch_size", self.batch_size, "use an integer >= 1")
        _check(0 < self.lr < 1, "train.lr", self.lr, "use a learning rate in (0, 1), e.g. 4e-3")
        _check(0 <= self.lr_min <= self.lr, "train.lr_min", self.lr_min, "use a value in [0, train.lr]")
        _check(0 < self.lr_decay <= 1, "train.lr_decay", self.lr_decay, "use a factor in (0, 1]")
        _check(self.lr_patience >= 1, "train.lr_patience", self.lr_patience, "use an integer >= 1")
        _check(self.adam_eps > 0, "train.adam_eps", self.adam_eps, "use a small positive value")
        _check(self.max_grad_norm > 0, "train.max_grad_norm", self.max_grad_norm, "use a positive norm")
        _check(self.loss_scale > 0, "train.loss_scale", self.loss_scale, "use a positive factor")
        for name in ("kl_ic_scale", "kl_co_scale", "l2_gen_scale", "l2_con_scale"):
            _check(getattr(self, name) >= 0, f"train.{name}", getattr(self, name), "use a value >= 0")
        _check(self.ramp_steps >= 0, "train.ramp_steps", self.ramp_steps, "use an integer >= 0")
        _check(self.early_stopping_patience >= 1, "train.early_stopping_patience",
               self.early_stopping_patience, "use an integer >= 1 (steps)")
        _check(self.valid_every >= 1, "train.valid_every", self.valid_every,
               "use an integer >= 1 (steps between validation checks)")
        _check(self.valid_windows >= 1, "train.valid_windows", self.valid_windows,
               "use an integer >= 1 (validation windows evaluated per check)")
        _check(0 <= self.smoothing < 1, "train.smoothing", self.smoothing, "use a factor in [0, 1)")
        _check(self.threads >= 0, "train.threads", self.threads,
               "use 0 (chosen from the model size and the cores available) or a number of threads >= 1")


@dataclass(frozen=True)
class SearchRange:
    """Bounds and explore weight of one hyperparameter tuned by population-based training."""

    low: float
    """Smallest value PBT may give the hyperparameter."""
    high: float
    """Largest value PBT may give the hyperparameter."""
    log: bool = False
    """Initial values of the population are drawn log-uniformly (else uniformly) in [low, high]."""
    weight: float = 0.3
    """Explore multiplies the value by a factor drawn uniformly in [1 - weight, 1 + weight]."""

    def check(self, key: str) -> None:
        _check(self.low <= self.high, f"{key}.low", self.low, f"use low <= high ({self.high})")
        _check(self.low > 0 or not self.log, f"{key}.low", self.low, "a log range needs low > 0")
        _check(0 < self.weight < 1, f"{key}.weight", self.weight, "use an explore weight in (0, 1), e.g. 0.3")


# The hyperparameters PBT tunes, and the config key each one sets.
PBT_HYPERPARAMETERS = {"lr": "train.lr", "dropout": "model.dropout", "cd_rate": "augment.cd_rate",
                       "l2_gen_scale": "train.l2_gen_scale", "l2_con_scale": "train.l2_con_scale",
                       "kl_co_scale": "train.kl_co_scale", "kl_ic_scale": "train.kl_ic_scale"}


def configured_hyperparameters(model: "ModelConfig", train: "TrainConfig", augment: "AugmentConfig") -> dict[str, float]:
    """The values the configuration gives the hyperparameters PBT tunes (``PBT_HYPERPARAMETERS``):
    what a single model trains with, and where member 0 of a population starts."""
    sections = {"model": model, "train": train, "augment": augment}
    out = {}
    for name, key in PBT_HYPERPARAMETERS.items():
        section, field_name = key.split(".")
        out[name] = float(getattr(sections[section], field_name))
    return out


@dataclass(frozen=True)
class PBTConfig:
    """Population-based training (science.md section 6). ``population: 1`` trains one model
    with the configured hyperparameters (``train``/``model``/``augment``) instead."""

    population: int = 20
    """Members trained in parallel and tuned together; 1 trains one model."""
    generation_steps: int = 100
    """Optimisation steps every member trains between two exploit/explore steps (the member is
    validated every ``train.valid_every`` steps and at the end of the generation)."""
    max_generations: int = 40
    """Largest number of generations."""
    stop_improvement: float = 0.0005
    """Stop when the best metric improved by less than this fraction over ``stop_generations``."""
    stop_generations: int = 4
    """Generations over which ``stop_improvement`` is measured."""
    workers: int = 0
    """Processes that train members in parallel (one torch thread each); 0: one per core (at
    most one per member; for ``stacked-processes`` chosen by ``auto``, one per idle core); 1: all
    members in this process. Each member-generation has its own
    seed, so only thread-count effects on float sums (last bits) can differ between settings."""
    execution: str = "auto"
    """How the embedded backend trains a generation: ``stacked`` (all members as one vectorised
    tensor program, :mod:`nwb_autolfads.train.stacked`: for small models, where one member's step is
    overhead, not arithmetic, in this process), ``stacked-processes`` (the members split into
    ``workers`` contiguous blocks, each block one stacked program in its own worker process, the
    workers in parallel: ``auto``'s choice for small models on 2 or more idle cores), ``processes``
    (``workers`` processes, a member per task), ``sequential`` (one member after another in this
    process) or ``auto`` (:func:`nwb_autolfads.train.resources.choose_execution`: by model size, cores,
    device and ``workers``). Every mode gives the same population for a
    seed, to float rounding (each member-generation has its own random stream)."""
    backend: str = "embedded"
    """``embedded`` (this machine, nothing to start) or ``ray`` (Ray: a private local Ray
    instance, or the cluster at ``ray_address``; needs ``pip install "nwb-autolfads[ray]"``)."""
    ray_address: str | None = None
    """Address of a running Ray cluster (``HEAD:6379``, or ``auto``); None starts a local one."""
    ray_cpus_per_member: int = 1
    """CPUs (and torch threads) each member's task gets on Ray."""
    ray_gpus_per_member: float = 0.0
    """GPUs each member's trial gets on Ray (fractions share a GPU); 0 trains on CPU."""
    lr: SearchRange = SearchRange(1e-5, 5e-3, log=True, weight=0.3)
    dropout: SearchRange = SearchRange(0.0, 0.6, weight=0.3)
    cd_rate: SearchRange = SearchRange(0.01, 0.7, weight=0.3)
    l2_gen_scale: SearchRange = SearchRange(1e-4, 1.0, log=True, weight=0.8)
    l2_con_scale: SearchRange = SearchRange(1e-4, 1.0, log=True, weight=0.8)
    kl_co_scale: SearchRange = SearchRange(1e-6, 1e-4, log=True, weight=0.8)
    kl_ic_scale: SearchRange = SearchRange(1e-6, 1e-3, log=True, weight=0.8)

    def __post_init__(self) -> None:
        _check(self.population >= 1, "pbt.population", self.population, "use an integer >= 1 (1: a single model)")
        _check(self.generation_steps >= 1, "pbt.generation_steps", self.generation_steps, "use an integer >= 1")
        _check(self.max_generations >= 1, "pbt.max_generations", self.max_generations, "use an integer >= 1")
        _check(self.stop_improvement >= 0, "pbt.stop_improvement", self.stop_improvement, "use a fraction >= 0")
        _check(self.stop_generations >= 1, "pbt.stop_generations", self.stop_generations, "use an integer >= 1")
        _check(self.workers >= 0, "pbt.workers", self.workers, "use 0 (one per core), 1 (no extra processes) or more")
        _check(self.execution in ("auto", "stacked", "stacked-processes", "processes", "sequential"), "pbt.execution",
               self.execution, "use 'auto', 'stacked' (one vectorised program), 'stacked-processes' (one per worker "
               "process), 'processes' or 'sequential'")
        _check(self.backend in ("embedded", "ray"), "pbt.backend", self.backend, "use 'embedded' or 'ray'")
        _check(self.ray_cpus_per_member >= 1, "pbt.ray_cpus_per_member", self.ray_cpus_per_member,
               "use an integer >= 1")
        _check(self.ray_gpus_per_member >= 0, "pbt.ray_gpus_per_member", self.ray_gpus_per_member, "use a value >= 0")
        for name in PBT_HYPERPARAMETERS:
            getattr(self, name).check(f"pbt.{name}")
        _check(self.dropout.high < 1, "pbt.dropout.high", self.dropout.high, "use a rate < 1")
        _check(self.cd_rate.high < 1, "pbt.cd_rate.high", self.cd_rate.high, "use a rate < 1")

    def ranges(self) -> dict[str, SearchRange]:
        return {name: getattr(self, name) for name in PBT_HYPERPARAMETERS}


@dataclass(frozen=True)
class InferenceConfig:
    """How outputs are inferred from the trained model (science.md section 4)."""

    mode: str = "sample"
    """``mean``: one pass with posterior means; ``sample``: average over posterior samples."""
    n_samples: int = 50
    """Posterior samples averaged per window with ``mode: sample``."""
    batch_size: int = 256
    """Windows x samples evaluated at once on the CPU (bounds memory; larger batches are not
    faster there)."""
    gpu_batch_size: int = 4096
    """The same on a GPU, where a pass is launch-bound and larger batches are faster."""
    interval: float | None = 0.9
    """Probability of the approximate central credible interval written with the estimates in
    ``mode: sample`` (``lower`` / ``upper`` per bin and channel); ``null``: none. The band starts
    from the (1 - interval) / 2 and (1 + interval) / 2 quantiles of the posterior samples, which
    spread the latent states only (far too narrow alone: about a third of the true activation
    inside a 90% band), and is widened by the model's own error, estimated per channel and level
    of the estimate from the residual beyond the observation noise (a residual-variance
    decomposition; :mod:`nwb_autolfads.evaluation.calibration`; the estimates are in the run's metrics,
    ``interval_calibration``): half-widths sqrt(posterior^2 + (z x error)^2), the lower bound >= 0.
    Noise the model follows (smooth artefacts, enveloped input) is not seen as error, so the band
    is then too narrow. ``mode: mean`` (and ``n_samples: 1``) has no samples and writes none."""

    def __post_init__(self) -> None:
        _check(self.mode in ("mean", "sample"), "inference.mode", self.mode, "use 'mean' or 'sample'")
        _check(self.n_samples >= 1, "inference.n_samples", self.n_samples, "use an integer >= 1")
        _check(self.batch_size >= 1, "inference.batch_size", self.batch_size, "use an integer >= 1")
        _check(self.gpu_batch_size >= 1, "inference.gpu_batch_size", self.gpu_batch_size, "use an integer >= 1")
        _check(self.interval is None or 0.0 < self.interval < 1.0, "inference.interval", self.interval,
               "use a probability between 0 and 1 (0.9: the central 90% credible interval), or null for none")

    @property
    def with_interval(self) -> bool:
        """Whether inference gives a credible interval: posterior samples (``mode: sample``, at
        least 2) and an ``interval``."""
        return self.mode == "sample" and self.n_samples >= 2 and self.interval is not None


@dataclass(frozen=True)
class OutputConfig:
    """What a new output file holds (``--in-place`` adds the run to the input itself, whatever this says)."""

    content: str | None = None
    """``results``: the run's results plus what identifies the source (location, DANDI asset,
    identifier, object ids), not the source's data: small, and ``evaluate`` reads the source
    again when it needs its signals. ``full``: a copy of the source's content plus the run.
    ``None``: ``results`` for remote inputs (URL or DANDI asset: nothing is downloaded whole),
    ``full`` for local files."""

    def __post_init__(self) -> None:
        _check(self.content in (None, "results", "full"), "output.content", self.content,
               "use 'results' (the results and a reference to the source), 'full' (a copy of the source "
               "plus the results) or null (results for remote inputs, full for local files)")


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one run. Serialisable to YAML/JSON."""

    seed: int = 0
    """Random seed of the run (weights, batches, augmentations, PBT)."""
    device: str = "auto"
    """``auto`` (CUDA when available), ``cpu`` or ``cuda``."""
    preset: str = "default"
    """The preset the configuration was built on (smoke, quick, default, paper). Budgets in
    optimisation steps, the same for any recording length: smoke 2 members x 2 generations x 10
    steps (seconds); quick one model, at most 2000 steps of 16 windows (~30 s, at most ~75 s of
    training on 2 cores); default 20 members x at most 40 generations x 100 steps of 32 windows
    (at most ~35 min on 2 cores); paper the same with at most 100 generations (at most ~1.5 h).
    Times are estimates for a 12-muscle EMG model; GPU not measured. A run prints its own
    estimate, timed on its data, before training. A config file
    that names one must agree with --preset; the preset applies underneath the file's values."""
    data: DataConfig = field(default_factory=DataConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    windows: WindowConfig = field(default_factory=WindowConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    pbt: PBTConfig = field(default_factory=PBTConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def __post_init__(self) -> None:
        _check(self.seed >= 0, "seed", self.seed, "use a non-negative integer")
        _check(self.device in ("auto", "cpu", "cuda"), "device", self.device, "use 'auto', 'cpu' or 'cuda'")
        _check(self.preset in PRESETS, "preset", self.preset, f"use one of {sorted(PRESETS)}")
        _check(self.preprocess.floor > 0 or self.model.observation == "zigamma", "preprocess.floor",
               self.preprocess.floor, "the Gamma likelihood has no support at zero: use a floor > 0, or "
               "model.observation: zigamma for data with exact zeros")

    # ----------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        return _to_plain(dataclasses.asdict(self))

    def to_yaml(self, comments: bool = False) -> str:
        """The configuration as YAML; ``comments=True`` writes each setting's documentation (with
        its unit) as a YAML comment above it (:func:`field_docs`), as ``config --show`` does."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        return _commented(text, field_docs()) if comments else text

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunConfig":
        return _from_dict(cls, data, prefix="")

    @classmethod
    def from_saved(cls, data: Mapping[str, Any], n_train: int | None = None) -> "RunConfig":
        """The configuration a result was written with, including results of versions that
        counted budgets in epochs (converted by :func:`legacy_to_steps` with ``n_train``, the
        run's training windows). New settings are refused in a config file, never here."""
        return _from_dict(cls, legacy_to_steps(data, n_train), prefix="")

    def updated(self, overrides: Mapping[str, Any]) -> "RunConfig":
        """A copy with (possibly nested, dotted or dict) overrides applied and validated."""
        merged = _deep_merge(self.to_dict(), _expand_dotted(overrides))
        return RunConfig.from_dict(merged)

    def resolved(self, n_channels: int) -> "RunConfig":
        """Fill in the sizes that depend on the data."""
        return replace(self, model=replace(self.model, factor_dim=self.model.factors_for(n_channels)))


# ----------------------------------------------------------------------------- presets
# Budgets are optimisation steps (batches), so a preset costs about the same on any recording length
# (an epoch is ceil(training windows / batch_size) steps: a minute of EMG in 10 ms bins chops into
# ~150 windows of 50 bins, ~120 of them for training). Times below: one 12-muscle EMG model on a
# 2-core laptop CPU at ~35 ms per step (batch 16) or ~50 ms (batch 32) without other load; measured
# here under heavy load with one torch thread: 109 and 178 ms per step. GPU: not measured.
PRESETS: dict[str, dict[str, Any]] = {
    # A pipeline check (tests, a first look at a file): a tiny model, 2 members x 2 generations x
    # 10 steps. Its results are not meant to be used. Seconds of training on any recording.
    "smoke": {
        "model": {"ic_enc_dim": 8, "ci_enc_dim": 8, "con_dim": 8, "co_dim": 1, "ic_dim": 8,
                  "gen_dim": 16, "factor_dim": 3},
        "train": {"max_steps": 20, "min_steps": 0, "ramp_steps": 5, "batch_size": 16, "valid_every": 5},
        "pbt": {"population": 2, "generation_steps": 10, "max_generations": 2, "workers": 1},
        "windows": {"window_bins": 20, "overlap_bins": 4},
        "inference": {"mode": "mean"},
    },
    # One model, at most 2000 steps of 16 windows (the epoch budget before was 150 epochs = 1200 steps on
    # a minute of 12-muscle EMG, and grew with the recording: 12000 steps for 10 minutes). Measured on
    # that minute (benchmarks/synthetic_emg_quality.py, seed 0): early stopping ends at ~800 steps with
    # the same quality as the epoch budget (r with the truth 0.984 both; decoding R^2 0.960 vs 0.954).
    # Expected: ~30 s of training on 2 cores (at most ~75 s at 2000 steps), for any recording length.
    "quick": {
        "model": {"ic_enc_dim": 32, "ci_enc_dim": 32, "con_dim": 32, "co_dim": 2, "ic_dim": 32,
                  "gen_dim": 64},
        "train": {"max_steps": 2000, "min_steps": 300, "ramp_steps": 300, "early_stopping_patience": 300,
                  "batch_size": 16, "valid_every": 10},
        "pbt": {"population": 1},
        "inference": {"mode": "sample", "n_samples": 20},
    },
    # AutoLFADS: a population of 20 tuned by PBT in generations of 100 steps of 32 windows (what 25
    # epochs were on a minute of EMG: the same budget there, so its quality there is unchanged; not
    # re-measured), the stopping rule, at most 40 generations = at most 80000 member-steps.
    # Expected: at most ~35 min on 2 cores (two worker processes, ~50 ms per member-step; an estimate
    # from the step time, not a measured run), for any recording length; the stopping rule often ends
    # it sooner. The run prints its own estimate, timed on the data, before training.
    "default": {},
    # The published AutoLFADS settings (Keshtkaran et al. 2022, Wimalasena et al. 2022): as the
    # default preset with 100 generations at most (at most 200000 member-steps: ~1.5 h on 2 cores).
    "paper": {"pbt": {"population": 20, "max_generations": 100}},
}


def build_config(preset: str | None = None, file: str | Path | None = None,
                 overrides: Mapping[str, Any] | None = None) -> RunConfig:
    """Defaults <- preset <- config file <- overrides, validated.

    ``overrides`` may be nested dicts or dotted keys (``{"train.lr": 1e-3}``). The rule for a
    preset and a config file together: the preset applies *underneath* the file, and every value
    the file sets wins. A file that names its preset (``nwb-autolfads config --show`` writes
    ``preset:``, and every value of that preset) uses it when no preset is passed; a preset
    passed that differs from the file's is refused (:class:`ConfigError`), since the file's
    values would silently undo it while the run is labelled with it.
    """
    file_data: dict[str, Any] = load_config_file(file) if file is not None else {}
    file_preset = file_data.get("preset")
    if preset is not None and file_preset is not None and preset != file_preset:
        raise ConfigError(f"--preset {preset} but config file {str(file)!r} was made with preset {file_preset!r} "
                          f"(its values would override the {preset!r} preset): write a config for it with "
                          f"`nwb-autolfads config --show --preset {preset} > FILE`, set 'preset: {preset}' and only "
                          "the values you change in the file, or leave out --preset")
    if preset is None:
        preset = file_preset if file_preset is not None else "default"
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}: use one of {', '.join(sorted(PRESETS))}")
    merged = _deep_merge(RunConfig().to_dict(), PRESETS[preset])
    merged["preset"] = preset
    _warn_preset_overridden(preset, file, file_data)
    merged = _deep_merge(merged, {k: v for k, v in file_data.items() if k != "preset"})
    merged = _deep_merge(merged, _expand_dotted(overrides or {}))
    cfg = RunConfig.from_dict(merged)
    _warn_budget_conflicts(cfg, {**_flat_keys(file_data), **_flat_keys(_expand_dotted(overrides or {}))})
    return cfg


def _flat_keys(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in data.items():
        if isinstance(value, Mapping) and not prefix:
            out.update(_flat_keys(value, f"{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _warn_budget_conflicts(cfg: "RunConfig", given: Mapping[str, Any]) -> None:
    """Warn where the step budgets contradict each other, so the run would silently do less than
    its settings say: penalties that never reach full weight, a patience shorter than the checks
    it counts, or single-model budgets set for a population (which trains ``pbt.max_generations``
    x ``pbt.generation_steps`` steps per member instead)."""
    t, p = cfg.train, cfg.pbt
    log = logging.getLogger(__name__)
    steps = t.max_steps if p.population == 1 else p.generation_steps * p.max_generations
    where = ("train.max_steps" if p.population == 1 else
             f"pbt.max_generations x pbt.generation_steps = {p.max_generations} x {p.generation_steps}")
    if t.ramp_steps > steps:
        log.warning("train.ramp_steps=%d is longer than the training (%s = %d steps): the KL and L2 penalties never "
                    "reach full weight (at most %.0f%%); lower train.ramp_steps or raise the budget", t.ramp_steps,
                    where, steps, 100.0 * steps / t.ramp_steps)
    if t.early_stopping_patience < t.valid_every:
        log.warning("train.early_stopping_patience=%d steps is shorter than one validation interval "
                    "(train.valid_every=%d): training stops at the first check without improvement; use a patience "
                    "of several intervals", t.early_stopping_patience, t.valid_every)
    if p.population == 1 and t.min_steps > t.max_steps:
        log.warning("train.min_steps=%d is above train.max_steps=%d: early stopping never applies", t.min_steps,
                    t.max_steps)
    if p.population == 1 and t.valid_every > t.max_steps:
        log.warning("train.valid_every=%d is above train.max_steps=%d: the model is validated once, at the end",
                    t.valid_every, t.max_steps)
    unused = [k for k in ("train.max_steps", "train.min_steps", "train.early_stopping_patience") if k in given]
    if p.population > 1 and unused:
        log.warning("%s set but not used: a population of %d trains pbt.max_generations x pbt.generation_steps "
                    "(%d x %d) steps per member and stops by the PBT rule; set those, or --population 1 for one "
                    "model", ", ".join(unused), p.population, p.max_generations, p.generation_steps)


def _warn_preset_overridden(preset: str, file, file_data: Mapping[str, Any]) -> None:
    """Warn when a config file sets values its preset also sets, to other values: the file wins,
    so the run is that preset in name only for those settings (e.g. a `config --show` of the
    default preset whose ``preset:`` line was changed to ``quick`` trains a 20-member population)."""
    changed = []
    for section, values in PRESETS[preset].items():
        given = file_data.get(section)
        if not isinstance(given, Mapping):
            continue
        for key, value in values.items():
            if key in given and given[key] != value:
                changed.append(f"{section}.{key} {given[key]!r} (preset: {value!r})")
    if changed:
        logging.getLogger(__name__).warning(
            "config file %r sets %d value(s) that the %r preset sets otherwise, and the file's values are used: %s. "
            "Make a file for this preset with `nwb-autolfads config --show --preset %s`, or keep only the values you "
            "change", str(file), len(changed), preset, ", ".join(changed),
            preset)


def load_config_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist: give the path of a YAML file "
                          "(`nwb-autolfads config --show > my.yaml` writes one to start from)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" (line {line + 1})" if line is not None else ""
        raise ConfigError(f"config file {str(path)!r} is not valid YAML{where}: fix the syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of sections "
                          f"(seed, data, preprocess, windows, model, augment, train, inference, output), "
                          f"not a {type(data).__name__}")
    return data


def field_docs() -> dict[str, str]:
    """The documentation of every setting by dotted key (``train.max_steps``), and of every
    section (``train``): the strings written under the fields and classes of this module, the
    same text the code and the API documentation show."""
    import ast
    import inspect
    import sys

    try:
        tree = ast.parse(inspect.getsource(sys.modules[__name__]))
    except (OSError, TypeError):  # no source shipped
        return {}
    per_class: dict[str, dict[str, str]] = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        docs = {"": " ".join((ast.get_docstring(node) or "").split())}
        for a, b in zip(node.body, node.body[1:]):
            if isinstance(a, ast.AnnAssign) and isinstance(a.target, ast.Name) and isinstance(b, ast.Expr) \
                    and isinstance(b.value, ast.Constant) and isinstance(b.value.value, str):
                docs[a.target.id] = " ".join(b.value.value.split())
        per_class[node.name] = docs
    out: dict[str, str] = {}

    def walk(cls: type, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            key = f"{prefix}{f.name}"
            doc = per_class.get(cls.__name__, {}).get(f.name, "")
            if dataclasses.is_dataclass(hints[f.name]):
                doc = doc or per_class.get(hints[f.name].__name__, {}).get("", "")
                walk(hints[f.name], key + ".")
            if doc:
                out[key] = doc
    walk(RunConfig, "")
    return out


def _commented(text: str, docs: Mapping[str, str], width: int = 100) -> str:
    """``text`` (block-style YAML of a config) with each key's documentation as comment lines above it."""
    import re
    import textwrap

    out, path = [], []
    for line in text.splitlines():
        m = re.match(r"^( *)([A-Za-z_]\w*):", line)
        if m:
            depth = len(m.group(1)) // 2
            path = path[:depth] + [m.group(2)]
            doc = docs.get(".".join(path))
            if doc:
                for python, plain in (("``None``", "null"), ("``True``", "true"), ("``False``", "false"),
                                      ("``", "")):
                    doc = doc.replace(python, plain)
                out += textwrap.wrap(doc, width, initial_indent=m.group(1) + "# ",
                                     subsequent_indent=m.group(1) + "# ")
        out.append(line)
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------- helpers
def _to_plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_plain(v) for v in obj]
    return obj


def _expand_dotted(overrides: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        parts = str(key).split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {key!r} conflicts with another override")
        last = parts[-1]
        if isinstance(value, Mapping) and isinstance(node.get(last), dict):
            node[last] = _deep_merge(node[last], dict(value))
        else:
            node[last] = dict(value) if isinstance(value, Mapping) else value
    return out


def _deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _from_dict(cls: type, data: Any, prefix: str) -> Any:
    where = prefix.rstrip(".") or "config"
    if not isinstance(data, Mapping):
        raise ConfigError(f"config section {where!r} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    for key in unknown:
        _refuse_epoch_key(f"{prefix}{key}")
    if unknown:
        raise ConfigError(f"unknown config key '{prefix}{unknown[0]}': valid keys in {where!r} are "
                          f"{', '.join(sorted(names))}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, f"{prefix}{name}")
    return cls(**kwargs)


# Budget keys of versions before 0.3 (counted in epochs) and the keys (counted in steps) that replace them.
EPOCH_KEYS = {"train.max_epochs": "train.max_steps", "train.min_epochs": "train.min_steps",
              "train.ramp_epochs": "train.ramp_steps", "pbt.generation_epochs": "pbt.generation_steps"}


def _refuse_epoch_key(key: str) -> None:
    new = EPOCH_KEYS.get(key)
    if new is not None:
        raise ConfigError(f"config key {key!r} is gone: budgets are counted in optimisation steps, use {new!r} "
                          "(steps ~= epochs x ceil(training windows / train.batch_size); a run prints its windows "
                          "and steps before training)")


def legacy_to_steps(data: Mapping[str, Any], n_train: int | None = None) -> dict[str, Any]:
    """A saved configuration (a result's provenance) with the epoch budgets of earlier versions
    converted to steps: ``steps = epochs x ceil(n_train / batch_size)`` with the run's number
    of training windows ``n_train`` (from its metrics), or the epoch budgets left out (the
    defaults stand in) when it is unknown. The units of ``early_stopping_patience`` (epochs,
    then steps) and ``lr_patience`` (epochs, then validation checks) changed too: with epoch
    keys present they are converted the same way (patience) or kept (one check per epoch)."""
    import math

    out = json.loads(json.dumps(dict(data)))
    train, pbt = out.get("train") or {}, out.get("pbt") or {}
    legacy = any(k in train for k in ("max_epochs", "min_epochs", "ramp_epochs")) or "generation_epochs" in pbt
    if not legacy:
        return out
    batch = int(train.get("batch_size", TrainConfig.batch_size))
    per_epoch = math.ceil(n_train / batch) if n_train else None
    for section, old, new in (("train", "max_epochs", "max_steps"), ("train", "min_epochs", "min_steps"),
                              ("train", "ramp_epochs", "ramp_steps"), ("pbt", "generation_epochs", "generation_steps")):
        values = out.get(section) or {}
        if old in values:
            epochs = values.pop(old)
            if per_epoch is not None:
                values[new] = max(int(epochs) * per_epoch, 1 if new in ("max_steps", "generation_steps") else 0)
    if "early_stopping_patience" in train:
        if per_epoch is not None:
            train["early_stopping_patience"] = max(1, int(train["early_stopping_patience"]) * per_epoch)
        else:
            train.pop("early_stopping_patience")
    if per_epoch is not None:
        train.setdefault("valid_every", per_epoch)  # the earlier versions validated once per epoch
    return out


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _from_dict(tp, value, prefix=key + ".")
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, key)
            except ConfigError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"config key {key!r} must be a list, got {value!r}")
        (item_tp, _ellipsis) = typing.get_args(tp)
        return tuple(_coerce(item_tp, v, key) for v in value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key {key!r} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"config key {key!r} must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML reads 1e-3 (no dot) as a string
            except ValueError:
                pass
        raise ConfigError(f"config key {key!r} must be a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"config key {key!r} must be a string, got {value!r}")
    raise ConfigError(f"config key {key!r} has an unsupported type {tp!r}")  # pragma: no cover
