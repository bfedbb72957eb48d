"""The baselines of :mod:`nwb_autolfads.evaluation.baselines` as estimators with the shape of
:class:`~nwb_autolfads.estimator.AutoLFADS`'s API, so that ``evaluate``-style comparisons can be
written in a notebook::

    model = AutoLFADS(preset="quick").fit("day1.nwb")
    lowpass = LowPass(cutoff=6.0, config=model).fit("day1.nwb")
    ds_model, ds_lowpass = model.transform("day2.nwb"), lowpass.transform("day2.nwb")

``transform`` returns an ``xarray.Dataset`` with the variables, dims, coords, units and bins of
:meth:`AutoLFADS.transform <nwb_autolfads.estimator.AutoLFADS.transform>`: ``emg_activations``
(time, channel) in the source's units, or ``firing_rates`` (time, unit) in Hz, on ``time`` = bin
centres (s) on the source's clock; ``ds_model.emg_activations`` and ``ds_lowpass.emg_activations``
line up without any shifting. A baseline has every bin of the grid; the model leaves out bins no
window covers (lead-in bins, segments shorter than a window), and xarray's alignment keeps the
shared ones.

A baseline reads a file as :func:`nwb_autolfads.run` reads it, with the pipeline's own stages: the
same EMG series, preprocessing (high-pass, notch, rectification, artefact rejection: as
configured), bins and modalities (the spikes' ``obs_intervals`` and trial-aligned windows cut the
bins as they cut the model's). It then filters the binned rectified EMG (or the spike counts) of
each gap-free segment on its own, as ``evaluate`` does (a segment under
:data:`~nwb_autolfads.evaluation.baselines.MIN_FILTER_BINS` bins is NaN). ``fit`` records what the
reading resolved (the configuration, channel names, bin size and unit; the Bayesian filter's
per-channel scales); ``transform`` reads another file with that configuration, its channels
matched to the fitted ones by name (:func:`nwb_autolfads.reuse.select_by_name`, the rules of
``apply``). Following scikit-learn's conventions, constructor arguments are stored as given, what
fitting learns ends with ``_``, ``fit`` returns the estimator.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
import inspect
import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from nwb_autolfads.data.timebase import same_bin_size
from nwb_autolfads.errors import ConfigError, SignalError
from nwb_autolfads.evaluation import baselines as bl

__all__ = ["LowPass", "BayesianFilter", "GaussianSmoothing", "Rectified", "BAYES_ALPHA_FRACTION", "BAYES_JUMP"]

BAYES_ALPHA_FRACTION = 0.4
"""The Bayesian filter's default diffusion, as a fraction of the single-step stability limit
ds^2 / dt (the middle of :data:`~nwb_autolfads.evaluation.baselines.BAYES_ALPHA_FRACTIONS`)."""
BAYES_JUMP = 1e-2
"""The Bayesian filter's default jump probability per bin (the middle of
:data:`~nwb_autolfads.evaluation.baselines.BAYES_JUMPS`)."""


class _Baseline(ABC):
    """What the baselines share: parameters (``get_params`` / ``set_params``), reading a file as
    :func:`nwb_autolfads.run` does, channels matched by name, the dataset of the estimates."""

    modality = "emg"
    """The modality the baseline filters (``emg``: the binned rectified EMG; ``spikes``: counts)."""
    _filter_params: tuple[str, ...] = ()
    """The parameters of the filter itself (named in the dataset's ``method`` attribute)."""

    # ------------------------------------------------------------------ parameters
    @classmethod
    def _param_names(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The constructor's arguments as given (scikit-learn's ``get_params``)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> "_Baseline":
        """Set constructor arguments (scikit-learn's ``set_params``); returns the estimator.

        Raises
        ------
        ConfigError
            A name that is not a parameter of this estimator.
        """
        unknown = sorted(set(params) - set(self._param_names()))
        if unknown:
            raise ConfigError(f"{type(self).__name__} has no parameter(s) {', '.join(unknown)}: its parameters are "
                              f"{', '.join(self._param_names())}")
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        shown = [f"{k}={v!r}" for k, v in self.get_params().items()
                 if defaults.get(k, inspect.Parameter.empty) is inspect.Parameter.empty or v is not defaults[k]]
        return f"{type(self).__name__}({', '.join(shown)})"

    # ------------------------------------------------------------------ fit / transform
    def fit(self, path: str | Path, y: Any = None) -> "_Baseline":
        """Read the NWB file ``path`` as :func:`nwb_autolfads.run` reads it and record what the
        filter needs: the resolved configuration ``config_``, ``channel_names_`` (the EMG's names;
        for spikes the unit ids as text), ``bin_size_`` (s), ``unit_`` (the EMG's unit) and
        what the filter learns. ``y`` is ignored (scikit-learn's signature). Returns ``self``.

        Raises
        ------
        ConfigError
            A parameter out of range (named with its value), or a configuration that cannot be
            built.
        InputFileError, SignalNotFoundError, SignalError
            As for :func:`nwb_autolfads.run` (the file, its EMG or units, their timing).
        """
        self._check_params()
        data, cfg, _source = _read(path, self._config(path), None, False, type(self).__name__)
        block = data.blocks[self.modality]
        self.config_ = None  # fitted only once everything is learned (a refused parameter leaves it unfitted)
        self.bin_size_ = float(data.bin_size)
        self.channel_names_, self.unit_ = [str(c) for c in block.channel_names], block.unit
        self._learn(self._values(data), 1.0 / self.bin_size_)
        self.config_ = cfg
        return self

    def transform(self, path: str | Path, *, drop_extra: bool = False) -> Any:
        """The baseline's estimates on the NWB file ``path``, read with the fitted configuration,
        its channels matched to the fitted ones by name and put in their order.

        Parameters
        ----------
        path : str or pathlib.Path
            A local NWB file (HDF5 or Zarr), an http(s) URL or a DANDI asset; never modified.
        drop_extra : bool
            Leave out (with a warning) channels not fitted on; by default they are refused.

        Returns
        -------
        xarray.Dataset
            As :meth:`AutoLFADS.transform <nwb_autolfads.estimator.AutoLFADS.transform>`:
            ``emg_activations`` (time, channel) in the source's units, or ``firing_rates``
            (time, unit) in Hz; ``time`` the bin centres (s) on the source's clock. Attributes
            ``bin_size`` (s), ``source`` and ``method`` (the filter and its parameters).

        Raises
        ------
        ConfigError
            Not fitted.
        SignalError
            The file's channels do not match the fitted ones (missing, extra or repeated names,
            in one line), or its data are on other bins than the fitted ones.
        InputFileError, SignalNotFoundError
            As for :func:`nwb_autolfads.run`.
        """
        cfg = self._fitted()
        want = {self.modality: list(self.channel_names_)}
        data, _cfg, source = _read(path, cfg, want, drop_extra, type(self).__name__)
        self._check_bins(data, str(path))
        values = self._estimate(self._values(data), 1.0 / self.bin_size_, _segments(data), data)
        return self._dataset(data, values, source)

    def fit_transform(self, path: str | Path, y: Any = None) -> Any:
        """:meth:`fit` on ``path``, and :meth:`transform` of it."""
        return self.fit(path, y).transform(path)

    # ------------------------------------------------------------------ what subclasses define
    def _check_params(self) -> None:
        """Refuse parameters out of range (:class:`ConfigError`), before any reading."""

    def _learn(self, values: np.ndarray, fs: float) -> None:
        """Learn from the fitting file's (n_bins, C) values sampled at ``fs`` bins per second."""

    @abstractmethod
    def _estimate(self, values: np.ndarray, fs: float, segments: list[slice], data) -> np.ndarray:
        """The (n_bins, C) estimate of ``values``, each segment filtered on its own (every baseline
        defines it)."""

    def _method(self) -> str:
        """The filter and its parameters (the dataset's ``method`` attribute)."""
        return f"{type(self).__name__}({', '.join(f'{k}={getattr(self, k)!r}' for k in self._filter_params)})"

    # ------------------------------------------------------------------ helpers
    def _config(self, path: str | Path):
        """The run configuration to read ``path`` with: ``config`` (a RunConfig, a YAML file, or a
        fitted :class:`~nwb_autolfads.estimator.AutoLFADS`: its model's configuration; of a model
        over several sessions, that of the session ``path`` is, :func:`_session_config`) with
        ``overrides`` and ``bin_size``; without this baseline's modality among
        ``data.modalities``, that one alone."""
        from nwb_autolfads.config import RunConfig, build_config
        from nwb_autolfads.estimator import AutoLFADS

        config = self.config
        if isinstance(config, AutoLFADS):
            from nwb_autolfads.model.artifact import load_model

            config = _session_config(load_model(config._fitted()), path, type(self).__name__)  # ConfigError unfitted
        extra = dict(self.overrides or {})
        if self.bin_size is not None:
            _check(type(self), "bin_size", self.bin_size, self.bin_size > 0, "a number of seconds > 0")
            extra["windows.bin_size"] = float(self.bin_size)
        cfg = config.updated(extra) if isinstance(config, RunConfig) else build_config(file=config, overrides=extra)
        if self.modality not in cfg.data.modalities:
            cfg = cfg.updated({"data.modalities": [self.modality]})
        return cfg

    def _fitted(self):
        if getattr(self, "config_", None) is None:
            raise ConfigError(f"this {type(self).__name__} is not fitted: call fit(path) first")
        return self.config_

    def _values(self, data) -> np.ndarray:
        """(n_bins, C) what the filter filters: the binned rectified EMG in the source's units."""
        return np.concatenate(data.rectified).astype(float)

    def _check_bins(self, data, where: str) -> None:
        """The file's data are on the fitted bins, with the fitted channels.

        Raises
        ------
        SignalError
            Another bin size (data sampled coarser than the fitted bins), or channels lost on the way.
        """
        if not same_bin_size(data.bin_size, self.bin_size_):
            raise SignalError(f"{where}: its data are on {data.bin_size * 1e3:.9g} ms bins, {type(self).__name__} was "
                              f"fitted on {self.bin_size_ * 1e3:.9g} ms bins: fit it on this file (or on files sampled "
                              "as finely)")
        got = [str(c) for c in data.blocks[self.modality].channel_names]
        if got != list(self.channel_names_):
            raise SignalError(f"{where}: its binned {self.modality} channels {got} are not the fitted ones "
                              f"{list(self.channel_names_)} (channels left out while binning, e.g. units excluded as "
                              "bad): transform data that has all of them")

    def _dataset(self, data, values: np.ndarray, source) -> Any:
        """The estimates as :func:`nwb_autolfads.estimator.as_dataset` names them."""
        import xarray as xr

        times = np.concatenate(data.bin_times)
        coords: dict = {"time": ("time", times, {"units": "s", "long_name": "bin centre"})}
        block = data.blocks[self.modality]
        if self.modality == "spikes":
            coords["unit"] = ("unit", list(block.units.ids))
            variables = {"firing_rates": (("time", "unit"), values, {"units": "Hz"})}
        else:
            coords["channel"] = ("channel", [str(c) for c in block.channel_names])
            variables = {"emg_activations": (("time", "channel"), values, {"units": block.unit})}
        attrs = {"bin_size": float(data.bin_size), "source": str(source), "method": self._method()}
        return xr.Dataset(variables, coords=coords, attrs=attrs)


def _check(cls: type, name: str, value: Any, ok: bool, want: str) -> None:
    """Raise :class:`ConfigError` naming ``cls``'s parameter ``name`` and its value unless ``ok``."""
    if not ok:
        raise ConfigError(f"{cls.__name__}({name}={value!r}): {name} must be {want}")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) \
        and math.isfinite(float(value))


def _session_config(model, path: str | Path, who: str):
    """The configuration of ``model`` (a :class:`~nwb_autolfads.model.artifact.ModelArtifact`) to
    read ``path`` with: its own; for a model over several sessions, that of the session whose
    recording ``path`` is (by SHA-256): each session has its own preprocessing (e.g. the line
    frequency found in it).

    Raises
    ------
    ConfigError
        A model over several sessions and a file that is none of its sessions' recordings.
    """
    entries = model.meta.get("sessions") or []
    if not entries:
        return model.config
    from nwb_autolfads.io.sources import resolve_source, source_sha256
    from nwb_autolfads.reuse import session_of

    sha256 = source_sha256(resolve_source(path))
    for entry in entries:
        if sha256 and entry.get("sha256") == sha256:
            return session_of(model, str(entry.get("name")))[0].config
    raise ConfigError(f"{who}(config=AutoLFADS of {len(entries)} sessions: "
                      f"{', '.join(str(e.get('name')) for e in entries)}): {str(path)!r} is none of them, and each "
                      "session has its own preprocessing: fit the baseline on one of those sessions' files, or give "
                      "config the settings to read this file with (a RunConfig or YAML file, or None)")


def _segments(data) -> list[slice]:
    """The gap-free segments of ``data`` as slices of its concatenated bins."""
    ends = np.cumsum([len(t) for t in data.bin_times])
    return [slice(int(a), int(b)) for a, b in zip(np.r_[0, ends[:-1]], ends)]


def _read(path: str | Path, cfg, wanted: Mapping[str, list[str]] | None, drop_extra: bool, who: str):
    """Read ``path`` as :func:`nwb_autolfads.run` does (the pipeline's read, preprocess and bin
    stages) with ``cfg``; with ``wanted``, the channels of those modalities matched by name.
    Returns (the binned data, the configuration resolved for them, the source)."""
    from nwb_autolfads.io.reading import open_nwb
    from nwb_autolfads.io.sources import resolve_source
    from nwb_autolfads.pipeline import _bin, _preprocess, _read_source, _resolve_config
    from nwb_autolfads.reuse import select_by_name

    if isinstance(path, (list, tuple)):
        raise ConfigError(f"{who} reads one NWB file at a time, got a list of {len(path)}: fit on one session and "
                          "transform each of the others")
    source = resolve_source(path)
    cfg = _resolve_config(source, None, cfg, None, emg=None, seed=None, device=None, in_place=False, resume=None,
                          fresh=False)
    with open_nwb(source.path if not source.remote else source) as (_io, nwbfile):
        source_data = _read_source(nwbfile, source, cfg)
        if wanted:
            owner = f"the fitted {who}"
            source_data.signals, problems = select_by_name(source_data.signals, wanted, drop_extra, owner)
            if problems:
                raise SignalError(f"the file's channels do not match those {who} was fitted on (matched by name): "
                                  f"{'; '.join(problems)}; it was fitted on "
                                  + "; ".join(f"{m}: {', '.join(names)}" for m, names in wanted.items())
                                  + " (transform a file with the same channels, pass drop_extra=True to leave extra "
                                    "channels out, or fit on this file)")
        cfg = _preprocess(source_data, cfg, progress=False)
    data, cfg = _bin(source_data, cfg)
    return data, cfg, source_data.path


class LowPass(_Baseline):
    """Zero-phase Butterworth low-pass of the binned rectified EMG
    (:func:`~nwb_autolfads.evaluation.baselines.lowpass`), as an estimator.

    Parameters
    ----------
    cutoff : float
        Cutoff frequency in Hz, below the bins' Nyquist frequency (50 Hz for 10 ms bins).
    order : int
        Butterworth order (applied forwards and backwards: zero phase).
    bin_size : float, optional
        Bin width in seconds (``windows.bin_size``; default the configuration's).
    config : RunConfig, str, pathlib.Path or AutoLFADS, optional
        How to read the file, as :func:`nwb_autolfads.run` takes it (a configuration or a YAML
        file), or a fitted :class:`~nwb_autolfads.AutoLFADS`: its model's configuration, so that
        the baseline reads the EMG exactly as the model did (same preprocessing and bins); of a
        model over several sessions, the configuration of the session fitted on (ConfigError for
        a file that is none of its sessions).
    overrides : mapping, optional
        Extra settings (``{"preprocess.highpass_hz": 30}``).

    Attributes
    ----------
    config_ : RunConfig
        The configuration as resolved on the fitting file (``auto`` settings as found there).
    channel_names_ : list of str
        The EMG channels fitted on, in order (a transformed file's are matched to them by name).
    bin_size_ : float
        Seconds per bin.
    unit_ : str
        The fitting file's EMG unit.
    """

    _filter_params = ("cutoff", "order")

    def __init__(self, cutoff: float, order: int = 4, bin_size: float | None = None, config: Any = None,
                 overrides: Mapping[str, Any] | None = None) -> None:
        self.cutoff, self.order, self.bin_size, self.config, self.overrides = cutoff, order, bin_size, config, overrides

    def _check_params(self) -> None:
        _check(type(self), "cutoff", self.cutoff, _number(self.cutoff) and self.cutoff > 0, "a frequency in Hz > 0")
        _check(type(self), "order", self.order, isinstance(self.order, (int, np.integer)) and not
               isinstance(self.order, bool) and 1 <= self.order <= 12, "an integer from 1 to 12")

    def _learn(self, values: np.ndarray, fs: float) -> None:
        _check(type(self), "cutoff", self.cutoff, self.cutoff < fs / 2,
               f"below the Nyquist frequency of the bins ({fs / 2:g} Hz for {1e3 / fs:g} ms bins): lower it, "
               "or use smaller bins (bin_size)")

    def _estimate(self, values: np.ndarray, fs: float, segments: list[slice], data) -> np.ndarray:
        return bl.per_segment(lambda v: bl.lowpass(v, fs, float(self.cutoff), int(self.order)), values, segments)


class Rectified(_Baseline):
    """The binned rectified EMG itself (the simplest baseline), as an estimator: what the model
    and the filters start from, on the same bins.

    Parameters
    ----------
    bin_size : float, optional
        Bin width in seconds (``windows.bin_size``; default the configuration's).
    config : RunConfig, str, pathlib.Path or AutoLFADS, optional
        How to read the file (as :class:`LowPass` takes it).
    overrides : mapping, optional
        Extra settings.

    Attributes
    ----------
    config_, channel_names_, bin_size_, unit_
        As :class:`LowPass`'s.
    """

    def __init__(self, bin_size: float | None = None, config: Any = None,
                 overrides: Mapping[str, Any] | None = None) -> None:
        self.bin_size, self.config, self.overrides = bin_size, config, overrides

    def _estimate(self, values: np.ndarray, fs: float, segments: list[slice], data) -> np.ndarray:
        return bl.rectified(values, fs)


class BayesianFilter(_Baseline):
    """Sanger's Bayesian filter of the binned rectified EMG
    (:func:`~nwb_autolfads.evaluation.baselines.bayesian_filter`), as an estimator.

    As in ``evaluate``'s grid (:func:`~nwb_autolfads.evaluation.baselines.bayesian_grid`), each
    channel is divided by its 95th percentile on the fitting file (``scales_``) and clipped at
    ``sigma_max_`` (the 99.9th percentile of the scaled values), filtered, and multiplied back:
    the estimates are in the source's units. A transformed file uses the fitted scales (converted
    between SI voltage units when its unit differs).

    Parameters
    ----------
    alpha : float, optional
        Diffusion rate of the latent drive (per second, in units of the scaled EMG). Default
        :data:`BAYES_ALPHA_FRACTION` of the single-step stability limit ds^2 / dt, ds =
        ``sigma_max_ / n_levels``.
    beta : float, optional
        Jump rate per second (beta / bins per second must be < 1). Default :data:`BAYES_JUMP` per bin.
    n_levels : int
        Levels the latent drive is discretised into.
    likelihood : {"laplace", "gaussian"}
        The measurement model.
    output : {"mean", "map"}
        Posterior mean or maximum.
    bin_size : float, optional
        Bin width in seconds (``windows.bin_size``; default the configuration's).
    config : RunConfig, str, pathlib.Path or AutoLFADS, optional
        How to read the file (as :class:`LowPass` takes it).
    overrides : mapping, optional
        Extra settings.

    Attributes
    ----------
    scales_ : numpy.ndarray
        (C,) per-channel 95th percentile of the fitting file's binned rectified EMG (its unit).
    sigma_max_ : float
        The top of the latent drive's range, in scaled units.
    alpha_, beta_ : float
        The diffusion and jump rates used (the defaults resolved).
    config_, channel_names_, bin_size_, unit_
        As :class:`LowPass`'s.
    """

    _filter_params = ("n_levels", "likelihood", "output")

    def __init__(self, alpha: float | None = None, beta: float | None = None, n_levels: int = 100,
                 likelihood: str = "laplace", output: str = "mean", bin_size: float | None = None, config: Any = None,
                 overrides: Mapping[str, Any] | None = None) -> None:
        self.alpha, self.beta, self.n_levels, self.likelihood, self.output = alpha, beta, n_levels, likelihood, output
        self.bin_size, self.config, self.overrides = bin_size, config, overrides

    def _check_params(self) -> None:
        cls = type(self)
        _check(cls, "alpha", self.alpha, self.alpha is None or (_number(self.alpha) and self.alpha > 0),
               "None or a rate > 0 (per second)")
        _check(cls, "beta", self.beta, self.beta is None or (_number(self.beta) and self.beta >= 0),
               "None or a rate >= 0 (per second)")
        _check(cls, "n_levels", self.n_levels, isinstance(self.n_levels, (int, np.integer)) and self.n_levels >= 2,
               "an integer >= 2")
        _check(cls, "likelihood", self.likelihood, self.likelihood in ("laplace", "gaussian"), "'laplace' or 'gaussian'")
        _check(cls, "output", self.output, self.output in ("mean", "map"), "'mean' or 'map'")

    def _learn(self, values: np.ndarray, fs: float) -> None:
        _x, grid, scales = bl.bayesian_grid(values, fs, fractions=(BAYES_ALPHA_FRACTION,), jumps=(BAYES_JUMP,),
                                            n_levels=int(self.n_levels))
        default = next(iter(grid.values()))
        self.scales_, self.sigma_max_ = np.asarray(scales, dtype=float), float(default["sigma_max"])
        self.alpha_ = float(self.alpha) if self.alpha is not None else float(default["alpha"])
        self.beta_ = float(self.beta) if self.beta is not None else float(default["beta"])
        _check(type(self), "beta", self.beta, self.beta_ / fs < 1,
               f"below the bins per second ({fs:g}): a jump probability per bin under 1")

    def _method(self) -> str:
        return super()._method().replace("(", f"(alpha={self.alpha_:.6g}, beta={self.beta_:.6g}, ", 1)

    def _estimate(self, values: np.ndarray, fs: float, segments: list[slice], data) -> np.ndarray:
        scales = self._scales_for(data.blocks["emg"], values)
        x = np.nan_to_num(np.minimum(values / scales, self.sigma_max_))
        return bl.per_segment(lambda v: bl.bayesian_filter(
            v, fs, self.alpha_, self.beta_, n_levels=int(self.n_levels), sigma_max=self.sigma_max_,
            likelihood=self.likelihood, output=self.output), x, segments) * scales

    def _scales_for(self, block, values: np.ndarray) -> np.ndarray:
        """The fitted scales in the unit of the file's EMG ``block`` (converted between SI voltage
        units), checked against its amplitude as ``apply`` checks a model's stored scales.

        Raises
        ------
        SignalError
            Another unit that is not an SI voltage spelling of the fitted one, or an amplitude that
            does not match (over :data:`~nwb_autolfads.reuse.MAX_CLIPPED_SHARE` of a channel's bins
            at ``sigma_max_``, or its 95th percentile over
            :data:`~nwb_autolfads.reuse.MAX_SCALE_RATIO` x off the fitted scale).
        """
        from nwb_autolfads.reuse import MAX_CLIPPED_SHARE, MAX_SCALE_RATIO, _unit_factor

        where = f"emg ({block.source_path})"
        try:
            scales = self.scales_ * _unit_factor(block.unit, self.unit_, where)
        except SignalError:
            raise SignalError(f"{where} is in {block.unit!r}, BayesianFilter was fitted on EMG in {self.unit_!r}: its "
                              "scales cannot be used on it; fit it on this file (or store the data in the fitted "
                              "unit)") from None
        if values.size == 0:
            return scales
        share = np.mean(values / scales >= self.sigma_max_, axis=0)
        ratio = np.nanquantile(values, 0.95, axis=0) / scales
        bad = [f"{name}: {share[i]:.0%} of bins at the clip level" if share[i] > MAX_CLIPPED_SHARE else
               f"{name}: 95th percentile {ratio[i]:.3g} x the fitted scale"
               for i, name in enumerate(self.channel_names_)
               if share[i] > MAX_CLIPPED_SHARE or not 1 / MAX_SCALE_RATIO <= ratio[i] <= MAX_SCALE_RATIO]
        if bad:
            raise SignalError(f"{where}: the amplitude does not match the EMG BayesianFilter was fitted on "
                              f"({'; '.join(bad)}): a different gain or unit; fit it on this file")
        return scales


class GaussianSmoothing(_Baseline):
    """Gaussian-kernel smoothing of binned spike counts into firing rates in Hz
    (:func:`~nwb_autolfads.evaluation.baselines.gaussian_smooth`), as an estimator.

    The units are read and binned as :func:`nwb_autolfads.run` reads them: on the EMG's bins when
    the configuration models EMG and spikes, else on bins of their own; a configuration that does
    not model spikes reads them alone. Units are matched by id.

    Parameters
    ----------
    sigma : float
        Kernel SD in seconds (truncated at 4 SD).
    bin_size : float, optional
        Bin width in seconds (``windows.bin_size``; default the configuration's).
    config : RunConfig, str, pathlib.Path or AutoLFADS, optional
        How to read the file (as :class:`LowPass` takes it); pass the fitted model to get its bins.
    overrides : mapping, optional
        Extra settings (``{"data.units": "quality == 'good'"}``).

    Attributes
    ----------
    config_ : RunConfig
        The configuration as resolved on the fitting file.
    channel_names_ : list of str
        The unit ids fitted on, as text, in order.
    bin_size_ : float
        Seconds per bin.
    unit_ : str
        ``"Hz"``.
    """

    modality = "spikes"
    _filter_params = ("sigma",)

    def __init__(self, sigma: float, bin_size: float | None = None, config: Any = None,
                 overrides: Mapping[str, Any] | None = None) -> None:
        self.sigma, self.bin_size, self.config, self.overrides = sigma, bin_size, config, overrides

    def _check_params(self) -> None:
        _check(type(self), "sigma", self.sigma, _number(self.sigma) and self.sigma > 0, "a number of seconds > 0")

    def _values(self, data) -> np.ndarray:
        return np.concatenate(data.blocks["spikes"].segments).astype(float)

    def _estimate(self, values: np.ndarray, fs: float, segments: list[slice], data) -> np.ndarray:
        return bl.per_segment(lambda v: bl.gaussian_smooth(v, 1.0 / fs, float(self.sigma)), values, segments)
