"""The registry of modalities: what a run can model, one entry per kind of signal.

``data.modalities`` names a list of them (``[emg, spikes]``; the CLI spells it ``--model
emg+spikes``). Each entry says how its signal is read from NWB, put on the model's time bins,
which observation model describes it (:mod:`nwb_autolfads.model.registry`), how the model's
output goes back to the source's units, and under which name the estimate is written.

- ``emg``: an EMG series (:func:`~nwb_autolfads.io.series.read_emg`), preprocessed and binned by
  :func:`~nwb_autolfads.data.preprocessing.preprocess_emg` (it defines the bins), divided by a
  per-channel scale; ``model.observation`` (Gamma); written as ``emg_activations``.
- ``spikes``: the units table (:func:`~nwb_autolfads.io.units.read_units`), counted per bin (on
  the EMG's bins, or on bins of its own without EMG); Poisson; rates in Hz, ``firing_rates``.
- ``force``: a force TimeSeries (:func:`~nwb_autolfads.io.behavior.read_behavior`; chosen with
  ``data.force`` or found), resampled onto the bins (:func:`~nwb_autolfads.io.behavior.to_bins`)
  and z-scored per channel; Gaussian; written back in the source's units as ``inferred_force``
  (``ContinuousEstimate``). It is modelled alongside a modality that defines the bins.

Each entry reads its signal (:meth:`Modality.read`) and puts it on the model's bins as a
:class:`Binned` block that converts the model's output back to the source's units
(:meth:`Modality.bin`; the EMG's preprocessing, :meth:`EmgModality.preprocess`, defines the bins,
or without EMG the spikes' own bins, :meth:`SpikesModality.own_bins`); :func:`nwb_autolfads.run`
loops over the entries. Model columns follow :attr:`Modality.rank` (spikes, EMG, then continuous
inputs), whatever the order the config names them in.

Importing this module is light (the configuration validates names with it): the readers and
binning import the NWB stack and scipy on first use. May import: :mod:`nwb_autolfads.errors`,
:mod:`nwb_autolfads.model.registry` at import time; :mod:`nwb_autolfads.io`,
:mod:`nwb_autolfads.data` inside functions.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from nwb_autolfads.errors import ConfigError, SignalError, SignalNotFoundError
from nwb_autolfads.model.registry import observation_spec

__all__ = ["Modality", "EmgModality", "SpikesModality", "ContinuousInput", "Binned", "BinnedEmg", "BinnedSpikes", "register_modality", "modality", "modality_names",
           "parse_modalities", "MODALITY_SEPARATOR"]

log = logging.getLogger(__name__)

MODALITY_SEPARATOR = "+"
"""How the CLI (``--model emg+spikes``), output file names and the provenance join modality names."""


@dataclass(frozen=True)
class Modality(ABC):
    """One kind of signal a run can model.

    Attributes
    ----------
    name : its name in ``data.modalities`` (e.g. ``emg``).
    rank : place of its channels among the model's columns (lower first).
    grid : whether it can define the model's time bins (a modality without it is modelled with
        one that has it).
    observation : the registered observation model of its channels; None: ``model.observation``.
    output : name of its estimate in the run (``processing/autolfads/<run>/<output>``) and in
        :func:`~nwb_autolfads.io.results.load_results`.
    doc : one line for the CLI's help.
    """

    name: str
    rank: int
    grid: bool
    observation: str | None
    output: str
    doc: str

    def observation_name(self, cfg) -> str:
        """The observation model of this modality's channels under ``cfg``."""
        return self.observation or cfg.model.observation

    @abstractmethod
    def read(self, nwbfile, cfg):
        """This modality's signal in ``nwbfile`` as ``cfg`` selects it (each entry defines it)."""

    def names(self, signal) -> list[str]:
        """The names of ``signal``'s channels as read (what a saved model matches by name)."""
        return [str(n) for n in signal.channel_names]

    def select(self, signal, keep: list[int]):
        """``signal`` with only its channels at positions ``keep``, in that order."""
        return signal.select(keep)

    def bin(self, signal, bin_times: list, bin_size: float, gap_factor: float,
            scaling: tuple | None = None) -> tuple["Binned", list | None]:
        """``signal`` on the model's bins ``bin_times`` (per segment, centres in seconds): its
        model-ready columns, and per segment the mask of bins it covers (None: all of them).
        ``scaling``: (offsets, scales) to use instead of estimating them (a saved model's).

        Every entry that can be modelled on another's bins defines it; one that cannot (the EMG:
        its preprocessing defines the bins whenever it is modelled) is never asked to: the
        pipeline's grid (``pipeline._grid``) takes the EMG's bins first."""
        raise TypeError(f"modality {self.name!r} defines the model's bins and is never binned onto another's")


@dataclass
class Binned:
    """A continuous input on the model's bins: per gap-free segment (n_bins, C) model-ready values
    (``(x - offsets) / scales``), and what converts the model's output back."""

    segments: list
    channel_names: list[str]
    unit: str
    source_path: str
    object_id: str | None
    offsets: Any  # (C,) source units
    scales: Any  # (C,) source units
    description: str = ""
    modality: str = ""
    """The modality's name (the key of its error estimates in the interval calibration)."""
    fit: list | None = None
    """Per channel, how well the model's estimate explains these data
    (:func:`~nwb_autolfads.evaluation.fit_check.channel_fit`; None until inferred)."""

    counts = False
    """Whether the columns are counts per bin (their model error is estimated as for counts)."""
    signed = True
    """Whether the values may be negative (a credible band is not clipped at 0)."""

    def to_source(self, values):
        """Model units -> the source's units: ``values * scales + offsets`` (values (n, C))."""
        return values * self.scales[None, :] + self.offsets[None, :]

    @property
    def error_key(self) -> str:
        """Key of this block's error estimates in the provenance's ``interval_calibration``."""
        return self.modality

    def error_scale(self, k: int) -> float:
        """Factor from model units to the source's units of channel ``k``'s error estimate."""
        return float(self.scales[k])

    def error_offset(self, k: int) -> float:
        """What is added to channel ``k``'s levels after :meth:`error_scale` to put them in the
        source's units (:meth:`to_source`; 0 for blocks without ``offsets``)."""
        return 0.0 if self.offsets is None else float(self.offsets[k])


@dataclass
class BinnedEmg(Binned):
    """The EMG on its own bins (it defines them): preprocessed segments divided by per-channel
    ``scales`` (``offsets`` None); ``preprocessed`` is the whole
    :class:`~nwb_autolfads.data.preprocessing.Preprocessed` (steps, clip levels, rectified EMG)."""

    preprocessed: Any = None

    signed = False

    def to_source(self, values):
        """Model units -> the source's units: ``values * scales``."""
        return values * self.scales[None, :]

    @property
    def error_key(self) -> str:
        return "emg"

    def error_scale(self, k: int) -> float:
        import numpy as np

        return float(np.broadcast_to(np.asarray(self.scales, dtype=float).reshape(-1),
                                     (len(self.channel_names),))[k])


@dataclass
class BinnedSpikes(Binned):
    """Spike counts per bin of the selected ``units`` (channel names: their ids); model units are
    counts per bin of ``bin_size`` seconds (``offsets``, ``scales`` None)."""

    units: Any = None
    bin_size: float = 0.0

    counts = True
    signed = False

    def to_source(self, values):
        """Counts per bin -> rates in Hz: ``values / bin_size``."""
        return values / self.bin_size

    @property
    def error_key(self) -> str:
        return "units_hz"

    def error_scale(self, k: int) -> float:
        return 1.0 / self.bin_size


@dataclass(frozen=True)
class EmgModality(Modality):
    """The EMG: read lazily (preprocessed chunk by chunk while the file is open); its
    preprocessing defines the model's bins (:meth:`preprocess`)."""

    def read(self, nwbfile, cfg):
        """The EMG series (``data.emg``, or found), its samples left in the file.

        Raises
        ------
        SignalNotFoundError
            No EMG series (naming ``--model spikes`` when the file has units).
        """
        from nwb_autolfads.io.series import read_emg

        try:
            return read_emg(nwbfile, cfg.data.emg, cfg.data.channel_names, lazy=True)
        except SignalNotFoundError as exc:
            n_units = len(nwbfile.units) if nwbfile.units is not None else 0
            if cfg.data.emg is not None or not n_units:
                raise
            raise SignalNotFoundError(f"{exc}; or model the {n_units} units of nwbfile.units with --model spikes") \
                from None

    def preprocess(self, sig, cfg, progress: bool = True, scaling: tuple | None = None) -> BinnedEmg:
        """``sig`` preprocessed and binned (:func:`~nwb_autolfads.data.preprocessing.preprocess_emg`),
        while its file is open: big recordings are read and filtered in chunks. ``scaling``:
        (clip levels, scales) to use instead of estimating them (a saved model's)."""
        from nwb_autolfads.data.preprocessing import preprocess_emg

        log.info("read %s: %s samples x %s channels", sig.source_path, sig.n_samples, sig.n_channels)
        pre = preprocess_emg(sig, cfg.preprocess, cfg.windows.bin_size, cfg.data.preprocessed,
                             cfg.windows.gap_factor, progress=progress, scaling=scaling)
        return BinnedEmg(segments=pre.segments, channel_names=list(pre.channel_names), unit=sig.unit,
                         source_path=sig.source_path, object_id=sig.object_id, offsets=None, scales=pre.scales,
                         modality=self.name, preprocessed=pre)


@dataclass(frozen=True)
class SpikesModality(Modality):
    """The spikes of ``nwbfile.units``: counted per bin, on the EMG's bins or on bins of their own."""

    def read(self, nwbfile, cfg):
        """The units ``data.units`` selects (:func:`~nwb_autolfads.io.units.read_units`)."""
        from nwb_autolfads.io.units import read_units

        return read_units(nwbfile, cfg.data.units, cfg.data.bad_units)

    def names(self, units) -> list[str]:
        """The units' ids, as text (their channel names in a model)."""
        return [str(u) for u in units.ids]

    def select(self, units, keep: list[int]):
        """The units at positions ``keep``, in that order."""
        return units.subset(keep)

    def own_bins(self, units, bin_size: float, bad_units: str):
        """(units kept, bin centres) of bins of their own spanning every spike, after the check
        that none lies far from the rest (:func:`~nwb_autolfads.io.units.check_unit_clocks`)."""
        from nwb_autolfads.io.units import check_unit_clocks, spike_bin_centres

        units = check_unit_clocks(units, bad_units)
        return units, spike_bin_centres(units, bin_size)

    def within(self, units, bin_times: list, bin_size: float, what: str, bad_units: str):
        """The units kept after the check that their spikes lie in the bins of another modality,
        described by ``what`` (:func:`~nwb_autolfads.io.units.check_spike_span`)."""
        from nwb_autolfads.io.units import check_spike_span

        spans = [(c[0] - bin_size / 2, c[-1] + bin_size / 2) for c in bin_times if len(c)]
        return check_spike_span(units, spans, what, bad_units)

    def bin(self, units, bin_times: list, bin_size: float, gap_factor: float,
            scaling: tuple | None = None) -> tuple[BinnedSpikes, list | None]:
        """Spike counts per bin; with ``obs_intervals``, the mask of bins every unit was observed in.

        Raises
        ------
        SignalError
            No bin lies inside the ``obs_intervals`` of every unit.
        """
        from nwb_autolfads.io.units import bin_spikes

        segments = [bin_spikes(units, centres, bin_size) for centres in bin_times]
        binned = BinnedSpikes(segments=segments, channel_names=[str(u) for u in units.ids], unit="Hz",
                              source_path="units", object_id=units.object_id, offsets=None, scales=None,
                              modality=self.name, units=units, bin_size=bin_size)
        if units.obs_intervals is None:
            return binned, None
        masks = [units.observed(centres, bin_size) for centres in bin_times]
        n_out = int(sum((~m).sum() for m in masks))
        if n_out:
            lost = int(sum(seg[~m].sum() for seg, m in zip(segments, masks)))
            log.warning("%d bins (%.1f s) outside the units' obs_intervals are not modelled (%d of %d spikes)",
                        n_out, n_out * bin_size, lost, int(sum(seg.sum() for seg in segments)))
        if not any(m.any() for m in masks):
            raise SignalError("no time bin lies inside the obs_intervals of every selected unit: select units "
                              "observed at the same time with --units")
        return binned, masks


@dataclass(frozen=True)
class ContinuousInput(Modality):
    """A continuous behavioural signal modelled as data (force, kinematics): read from the file,
    resampled onto the bins, z-scored per channel, Gaussian. ``behavior``: its kind for
    :func:`~nwb_autolfads.io.behavior.find_behavior`; ``path_key``: the ``data`` setting that
    names its series (None: found automatically)."""

    behavior: str = "force"
    path_key: str = "force"
    min_coverage: float = 0.5
    """Smallest fraction of the model's bins the series must cover (less: refused, a clock mismatch)."""

    def read(self, nwbfile, cfg):
        """The one series of this kind in ``nwbfile`` (loaded :class:`~nwb_autolfads.data.signals.Signal`).

        Raises
        ------
        SignalNotFoundError
            None is found, or several are and none is chosen with ``data.<path_key>``.
        """
        from nwb_autolfads.io.behavior import find_behavior, read_behavior

        path = getattr(cfg.data, self.path_key)
        if path is None:
            found = find_behavior(nwbfile, self.behavior)
            if not found:
                raise SignalNotFoundError(
                    f"no {self.name} series in the file (a TimeSeries whose name or description says "
                    f"{self.behavior}): name it with --set data.{self.path_key}=PATH, or leave {self.name} out of "
                    "--model")
            if len(found) > 1:
                raise SignalNotFoundError(
                    f"{len(found)} {self.name} series in the file ({', '.join(c.path for c in found)}): choose one with "
                    f"--set data.{self.path_key}=PATH")
            path = found[0].path
        (sig,) = read_behavior(nwbfile, self.behavior, path)
        return sig

    def bin(self, sig, bin_times: list, bin_size: float, gap_factor: float,
            scaling: tuple | None = None) -> tuple[Binned, list]:
        """``sig`` on the bins ``bin_times`` (per segment, centres in seconds), z-scored per channel
        (with ``scaling``, by the given (offsets, scales) instead), and per segment the mask of
        bins it covers (finite in every channel): the others cannot be modelled.

        Raises
        ------
        SignalError
            It covers under ``min_coverage`` of the bins (likely another clock, or another
            recording), or a channel is constant.
        """
        import numpy as np

        from nwb_autolfads.io.behavior import to_bins

        raw = [to_bins(sig, centres, bin_size, gap_factor) for centres in bin_times]
        masks = [np.isfinite(r).all(axis=1) for r in raw]
        n_all, n_in = sum(m.size for m in masks), int(sum(m.sum() for m in masks))
        if n_all == 0 or n_in < self.min_coverage * n_all:
            t = sig.times()
            span = f"{t[0]:g}-{t[-1]:g} s" if t.size else "no samples"
            lo = min((c[0] for c in bin_times if len(c)), default=np.nan)
            hi = max((c[-1] for c in bin_times if len(c)), default=np.nan)
            raise SignalError(f"{self.name} series {sig.source_path} ({span}) covers {n_in} of the {n_all} bins "
                              f"modelled ({lo:g}-{hi:g} s): check its timestamps / starting_time (another clock?), "
                              f"or leave {self.name} out of --model")
        values = np.concatenate([r[m] for r, m in zip(raw, masks)])
        offsets, scales = (values.mean(axis=0), values.std(axis=0)) if scaling is None else \
            (np.asarray(scaling[0], dtype=float), np.asarray(scaling[1], dtype=float))
        size = np.abs(values).max(axis=0)
        flat = [name for name, s, m in zip(sig.channel_names, scales, size) if not (np.isfinite(s) and s > 1e-9 * m)]
        if flat and scaling is None:
            raise SignalError(f"{self.name} channel(s) {', '.join(flat)} of {sig.source_path} are constant over the "
                              f"modelled time: nothing to model; leave {self.name} out of --model")
        segments = [np.where(m[:, None], (r - offsets) / scales, 0.0).astype(np.float32) for r, m in zip(raw, masks)]
        binned = Binned(segments=segments, channel_names=list(sig.channel_names), unit=sig.unit,
                        source_path=sig.source_path, object_id=sig.object_id, offsets=offsets, scales=scales,
                        description=sig.description, modality=self.name)
        n_out = n_all - n_in
        if n_out:
            log.warning("%d bins (%.1f s) outside the %s series %s are not modelled", n_out, n_out * bin_size,
                        self.name, sig.source_path)
        return binned, masks


_REGISTRY: dict[str, Modality] = {}


def register_modality(entry: Modality) -> Modality:
    """Add ``entry`` to the registry (its observation model must be registered).

    Raises
    ------
    ValueError
        Its name is taken, or its observation model is unknown.
    """
    if entry.name in _REGISTRY or MODALITY_SEPARATOR in entry.name or not entry.name:
        raise ValueError(f"modality {entry.name!r} is already registered or not a valid name")
    if entry.observation is not None:
        observation_spec(entry.observation)  # KeyError naming the registered ones
    _REGISTRY[entry.name] = entry
    return entry


def modality(name: str) -> Modality:
    """The registered modality ``name`` (KeyError listing the registered ones)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown modality {name!r}: use one of {', '.join(_REGISTRY)}") from None


def modality_names() -> list[str]:
    """Registered modality names, in registration order (the order a config lists them in)."""
    return list(_REGISTRY)


def parse_modalities(value: Any, key: str = "data.modalities") -> tuple[str, ...]:
    """``value`` (a list, or a string ``emg+spikes`` / ``emg,spikes``) as the canonical tuple:
    registered names, each once, in registration order (``[spikes, emg]`` -> ``("emg", "spikes")``).

    Raises
    ------
    ConfigError
        An unknown name, a repeated one, an empty list, or no modality that defines the bins.
    """
    if value is not None and not isinstance(value, (str, list, tuple)):  # e.g. a YAML `data.model: true`
        raise ConfigError(f"invalid config value {key}={value!r}: expected a list of modality names such as "
                          f"[emg, spikes] (or a string emg+spikes), got {type(value).__name__}")
    items = value.replace(",", MODALITY_SEPARATOR).split(MODALITY_SEPARATOR) if isinstance(value, str) else \
        [p for v in (value or ()) for p in str(v).split(MODALITY_SEPARATOR)]
    items = [str(v).strip() for v in items if str(v).strip()]
    known = modality_names()
    unknown = [v for v in items if v not in _REGISTRY]
    if unknown or not items or len(set(items)) != len(items):
        raise ConfigError(f"invalid config value {key}={value!r}: name one or more of {', '.join(known)}, each once "
                          f"(a list, e.g. [emg, spikes], or on the command line --model emg+spikes)")
    if not any(_REGISTRY[v].grid for v in items):
        grid = [n for n in known if _REGISTRY[n].grid]
        raise ConfigError(f"invalid config value {key}={value!r}: {' and '.join(items)} is modelled alongside "
                          f"{' or '.join(grid)}, which define the model's time bins (e.g. --model "
                          f"{grid[0]}{MODALITY_SEPARATOR}{items[0]})")
    return tuple(n for n in known if n in items)


register_modality(EmgModality("emg", rank=1, grid=True, observation=None, output="emg_activations",
                           doc="the EMG (model.observation, Gamma by default): muscle activations"))
register_modality(SpikesModality("spikes", rank=0, grid=True, observation="poisson", output="firing_rates",
                           doc="the spikes of nwbfile.units (Poisson): firing rates"))
register_modality(ContinuousInput("force", rank=2, grid=False, observation="gaussian", output="inferred_force",
                                  doc="a force TimeSeries (Gaussian), with emg or spikes: inferred force",
                                  behavior="force", path_key="force"))
