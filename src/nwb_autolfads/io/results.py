"""Reading results back: the runs stored in a file, and one run as an ``xarray.Dataset``.

    >>> import nwb_autolfads
    >>> ds = nwb_autolfads.load_results("sub-1_ses-1_desc-autolfads_emg.nwb")   # the latest run
    >>> ds.emg_activations.sel(channel="TA").plot()
    >>> nwb_autolfads.to_pynapple("sub-1_ses-1_desc-autolfads_emg.nwb")["emg_activations"]["TA"]  # pynapple

Works on any file holding ndx-autolfads runs (the namespace is read from the file's cached spec).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nwb_autolfads.data.timebase import regular_times
from nwb_autolfads.errors import InputFileError, ResultsNotFoundError
from nwb_autolfads.io.reading import OUTPUT_MODULE

__all__ = ["RunInfo", "list_runs", "load_results", "format_runs", "to_pynapple", "interval_percent"]


def interval_percent(interval: float) -> str:
    """The band's probability as a percentage for labels and descriptions, never rounded to
    another level: 0.9 -> '90%', 0.995 -> '99.5%' (``:.0%`` would print '100%'), 0.001 -> '0.1%'."""
    return f"{float(interval) * 100:.6g}%"


@dataclass(frozen=True)
class RunInfo:
    """Key provenance of one stored run."""

    name: str
    started: str
    finished: str
    software_version: str
    modalities: str
    sources: str
    n_bins: int
    bin_size: float
    channels: list[str]
    n_units: int
    seed: int
    steps: int | None
    """Optimisation steps the chosen model trained (None for runs of versions that counted epochs)."""
    best_valid_nll: float | None
    description: str
    preset: str = ""
    """The preset the run's configuration was built on (smoke, quick, default, paper)."""
    git_revision: str = ""
    source_location: str = ""
    """Where the source file was read (local path or URL; empty for files before spec 0.2.0)."""
    source_in_file: bool = True
    """False for a results-only file: the source's data are at ``source_location``."""
    epochs: int | None = None
    """Epochs trained, for runs of versions before 0.3 that counted budgets in epochs (else None)."""
    interval: float | None = None
    """Probability of the credible interval stored with the estimates (``lower`` / ``upper``);
    None when the run stored none (posterior means, or a file before spec 0.3.0)."""
    model_location: str = ""
    """Where the run's trained model is (the model it kept, or for an applied run the model it
    applied); empty when none was kept (and for files before spec 0.5.0)."""
    model_applied: bool = False
    """True for a run made by ``apply`` (a saved model on this file, no training)."""
    sessions: list[str] = field(default_factory=list)
    """For a model trained over several sessions: the names of all its sessions, in the model's
    order (empty for one session, and for files before spec 0.6.0)."""
    lowpass_check: dict | None = None
    """The run's check of its EMG estimates against a low-pass without the truth (metrics
    ``lowpass_check``: ``channels``, ``flagged``, ``method``, ``rule``); None when it made none
    (no credible band, no EMG, or a run of a version before 0.7)."""

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _open(path: str | Path):
    from pynwb import NWBHDF5IO

    from nwb_autolfads.io.reading import check_not_locked

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"results file {str(path)!r} does not exist: give the path of an nwb-autolfads output")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            io = NWBHDF5IO(str(path), "r", load_namespaces=True)
            nwbfile = io.read()
    except Exception as exc:
        check_not_locked(path, exc)  # a program writing it (once "not a readable NWB file (BlockingIOError)")
        raise InputFileError(f"{str(path)!r} is not a readable NWB file ({type(exc).__name__}): give an nwb-autolfads "
                         "output file") from None
    return io, nwbfile


def _runs(nwbfile) -> dict:
    module = nwbfile.processing.get(OUTPUT_MODULE)
    if module is None:
        return {}
    return {name: obj for name, obj in module.data_interfaces.items()
            if type(obj).__name__ == "AutoLFADSRun"}


def _info(run) -> RunInfo:
    metrics = json.loads(run.metrics) if run.metrics else {}
    act, rates = run.emg_activations, run.firing_rates
    return RunInfo(name=run.name, started=run.started, finished=run.finished, software_version=run.software_version,
                   modalities=run.modalities, sources=run.source_paths, n_bins=int(run.factors.data.shape[0]),
                   bin_size=float(run.bin_size), channels=[str(c) for c in act.channel_names[:]] if act else [],
                   n_units=int(rates.data.shape[1]) if rates is not None else 0, seed=int(run.random_seed),
                   steps=metrics.get("steps"), epochs=metrics.get("epochs"), best_valid_nll=metrics.get("best_smoothed_valid_nll"),
                   description=run.description, source_location=run.source_location or "",
                   source_in_file=source_in_file(run), preset=_preset(run.config),
                   git_revision=run.git_revision or "", interval=_stored_interval(act, rates),
                   model_location=getattr(run, "model_location", None) or "",
                   model_applied=bool(getattr(run, "model_applied", None)), sessions=_session_names(run),
                   lowpass_check=metrics.get("lowpass_check"))


def _session_names(run) -> list[str]:
    """The names of the sessions of a multi-session model (spec 0.6.0 ``sessions``), else []."""
    text = getattr(run, "sessions", None)
    return [str(e.get("name")) for e in json.loads(text).get("sessions", [])] if text else []


def _stored_interval(*series) -> float | None:
    """The probability of the credible interval the estimates ``series`` hold (None: none)."""
    for s in series:
        if s is not None and getattr(s, "credible_interval", None) is not None and getattr(s, "lower", None) is not None:
            return float(s.credible_interval)
    return None


def source_in_file(run) -> bool:
    """Whether the source's data are in the run's own file (absent before spec 0.2.0: they were)."""
    return run.source_in_file is None or bool(run.source_in_file)


def _unit_ids(rates) -> np.ndarray:
    """Ids of the units whose rates a ``FiringRates`` holds, in column order: stored as ``unit_ids``
    (spec 0.2.0), or as a region of the file's Units table."""
    if rates.unit_ids is not None:
        return np.asarray(rates.unit_ids[:], dtype=np.int64)
    return np.asarray(rates.units.table.id[:])[np.asarray(rates.units.data[:])]


def _json_dict(text: str | None) -> dict:
    """A JSON object stored as text (provenance), {} when missing or not an object."""
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _preset(config_json: str | None) -> str:
    try:
        return str(json.loads(config_json or "{}").get("preset", ""))
    except (ValueError, AttributeError):
        return ""


def list_runs(path: str | Path) -> list[RunInfo]:
    """The runs stored in a file, oldest first.

    Parameters
    ----------
    path : str or pathlib.Path
        A local NWB file (an nwb-autolfads output, or any file holding ndx-autolfads runs).

    Returns
    -------
    list of RunInfo
        One per run in ``processing/autolfads``, sorted by start time then name; empty when
        the file holds none.

    Raises
    ------
    InputFileError
        ``path`` does not exist or is not a readable NWB file.
    """
    io, nwbfile = _open(path)
    try:
        return sorted((_info(r) for r in _runs(nwbfile).values()), key=lambda i: (i.started, i.name))
    finally:
        io.close()


def format_runs(path: str | Path, runs: list[RunInfo]) -> str:
    if not runs:
        return f"{path}: no nwb-autolfads runs"
    lines = [f"{path}: {len(runs)} nwb-autolfads run(s)"]
    for r in runs:
        what = []
        if r.channels:
            what.append(f"{len(r.channels)} EMG channels")
        if r.n_units:
            what.append(f"{r.n_units} units")
        nll = f"{r.best_valid_nll:.4f}" if r.best_valid_nll is not None else "n/a"
        lines += [f"  {r.name}",
                  f"    started {r.started}, finished {r.finished}, nwb-autolfads {r.software_version} "
                  f"({r.git_revision or 'no git revision recorded'}), preset {r.preset or '?'}, seed {r.seed}",
                  f"    {r.modalities}: {', '.join(what)} from {r.sources}; {r.n_bins} bins of {r.bin_size * 1e3:g} ms"
                  + (f"; {interval_percent(r.interval)} credible interval per bin" if r.interval is not None
                     else "; no credible interval"),
                  f"    applied model {r.model_location or '(location not recorded)'}: no training" if r.model_applied
                  else f"    {_budget(r)}, best smoothed validation NLL {nll}"
                  + (f"; model {r.model_location}" if r.model_location else "")]
        if r.channels and r.lowpass_check is not None:
            lines.append(f"    {_check_line(r.lowpass_check)}")
        if not r.source_in_file:
            lines.append(f"    results only: the source's data are in {r.source_location}")
    return "\n".join(lines)


def _check_line(check: dict) -> str:
    """One line on a run's check against a low-pass (:attr:`RunInfo.lowpass_check`)."""
    per = check.get("channels") or {}
    known = [k for k, v in per.items() if v is not None]
    flagged = list(check.get("flagged") or [])
    if not known:
        return "check against a low-pass: none (too few bins, no signal above the noise, or bins under 5 ms)"
    if not flagged:
        return f"check against a low-pass: no muscle flagged ({len(known)} checked)"
    shown = ", ".join(f"{k} ({per[k]['lowpass_cutoff_hz']:g} Hz low-pass {per[k]['lowpass_r2']:.3f} vs model "
                      f"{per[k]['model_r2']:.3f})" for k in flagged[:4])
    more = f" and {len(flagged) - 4} more" if len(flagged) > 4 else ""
    return (f"WARNING check against a low-pass: flagged {len(flagged)} of {len(known)} muscles, a low-pass estimated "
            f"closer to the EMG's signal: {shown}{more}")


def _budget(r: RunInfo) -> str:
    if r.steps is not None:
        return f"{r.steps} steps"
    if r.epochs is not None:
        return f"{r.epochs} epochs (a run of an earlier version, counted in epochs)"
    return "training length not recorded"


def _times(ts) -> np.ndarray:
    if ts.timestamps is not None:
        return np.asarray(ts.timestamps[:], dtype=np.float64)
    n = ts.data.shape[0]
    return regular_times(ts.starting_time, n, ts.rate)


def _bounds(name: str, series, dims: tuple[str, str], units: str, widened: bool = False) -> dict:
    """``<name>_lower`` / ``<name>_upper``: the credible interval's bounds a ``MuscleActivations`` or
    ``FiringRates`` holds (spec 0.3.0; none in older files or runs without posterior samples).
    ``widened``: the run widened the posterior band by the model's estimated error (its metrics
    hold ``interval_calibration``), as the variables' description then says."""
    lower, upper, interval = (getattr(series, k, None) for k in ("lower", "upper", "credible_interval"))
    if lower is None or upper is None or interval is None:
        return {}
    level = float(interval)
    how = ("the posterior samples' quantiles widened by the model's estimated error, see the metrics' "
           "interval_calibration; approximate" if widened else "posterior-sample quantiles")
    return {f"{name}_{side}": (dims, np.asarray(bound[:]),
                               {"units": units, "interval": level,
                                "description": f"{side} bound of the central {interval_percent(level)} credible interval of "
                                               f"{name} ({how})"})
            for side, bound in (("lower", lower), ("upper", upper))}


def load_results(path: str | Path, run: str | None = None):
    """One run of a file as an :class:`xarray.Dataset`.

    Parameters
    ----------
    path : str or pathlib.Path
        A local NWB file holding nwb-autolfads runs.
    run : str, optional
        The run's name (see :func:`list_runs` or ``nwb-autolfads runs``); default the latest
        (by start time).

    Returns
    -------
    xarray.Dataset
        Dimensions ``time`` (n_bins; coordinate: bin centres in seconds on the source's clock),
        ``channel`` (the muscle names), ``unit`` (ids of the Units table rows), ``factor``,
        ``inferred_input``, ``window`` / ``ic_dim`` and ``step``, as described in the Notes.

    Raises
    ------
    InputFileError
        ``path`` does not exist or is not a readable NWB file.
    ResultsNotFoundError
        The file holds no nwb-autolfads run, or none named ``run``.

    Notes
    -----
    Variables (those the run modelled): ``emg_activations`` (time x channel, the source's units),
    ``firing_rates`` (time x unit, Hz), each continuous input modelled (spec 0.4.0), e.g.
    ``inferred_force`` (time x ``inferred_force_channel``, the force's own units, with
    ``inferred_force_offsets`` / ``_scales``), with runs that sampled the posterior (spec 0.3.0 on)
    ``emg_activations_lower`` / ``_upper`` and ``firing_rates_lower`` / ``_upper`` (the bounds
    of a central credible interval, same units; its probability in their attribute
    ``interval``, e.g. 0.9), ``factors`` (time x factor), ``inferred_inputs``
    (time x inferred_input), ``initial_conditions`` (window x ic_dim, with ``window_time``),
    and the training curves (``step``: one row per validation check; ``epoch`` for runs of
    versions that counted epochs). Attributes: the run's provenance (config, software,
    hyperparameters and metrics as JSON text; seed, times, source file identifier and SHA-256,
    where the source is: ``source_location``, ``source_url``, ``source_dandi_asset_id``, and
    ``source_in_file``, 0 for a results-only file whose source's data are elsewhere;
    ``source``: where the input came from, JSON text, e.g. the DANDI asset id, version and digests).
    """
    import xarray as xr

    io, nwbfile = _open(path)
    try:
        runs = _runs(nwbfile)
        if not runs:
            raise ResultsNotFoundError(f"{str(path)!r} holds no nwb-autolfads run (processing/{OUTPUT_MODULE}): run "
                                       "nwb-autolfads run on it first, or open its output file")
        if run is None:
            run = max(runs.values(), key=lambda r: (r.started, r.name)).name
        if run not in runs:
            raise ResultsNotFoundError(f"{str(path)!r} has no run {run!r}: choose one of {', '.join(sorted(runs))}")
        r = runs[run]
        coords: dict = {"time": ("time", _times(r.factors), {"units": "s", "long_name": "bin centre"})}
        data_vars: dict = {}
        _add_estimates(r, coords, data_vars)
        _add_latents(r, coords, data_vars)
        _add_training_curves(r, coords, data_vars)
        attrs = _run_attrs(r, path)
        return xr.Dataset(data_vars, coords=coords, attrs=attrs)
    finally:
        io.close()


def _add_estimates(r, coords: dict, data_vars: dict) -> None:
    """The run's estimates in source units (EMG activations, firing rates, continuous inputs such
    as force), with their credible bounds and per-channel scales, into ``coords``/``data_vars``."""
    widened = "interval_calibration" in _json_dict(r.metrics)
    if r.emg_activations is not None:
        a = r.emg_activations
        coords["channel"] = ("channel", [str(c) for c in a.channel_names[:]])
        data_vars["emg_activations"] = (("time", "channel"), np.asarray(a.data[:]),
                                        {"units": a.unit, "description": a.description})
        data_vars.update(_bounds("emg_activations", a, ("time", "channel"), a.unit, widened))
        if a.scales is not None:
            data_vars["channel_scale"] = (("channel",), np.asarray(a.scales[:]),
                                          {"units": a.unit, "description": "per-channel preprocessing scale"})
    if r.firing_rates is not None:
        f = r.firing_rates
        coords["unit"] = ("unit", _unit_ids(f))
        data_vars["firing_rates"] = (("time", "unit"), np.asarray(f.data[:]),
                                     {"units": "Hz", "description": f.description})
        data_vars.update(_bounds("firing_rates", f, ("time", "unit"), "Hz", widened))
    for name, e in sorted((getattr(r, "continuous_estimates", None) or {}).items()):  # spec 0.4.0: force
        channel = f"{name}_channel"
        coords[channel] = (channel, [str(c) for c in e.channel_names[:]])
        data_vars[name] = (("time", channel), np.asarray(e.data[:]),
                           {"units": e.unit, "description": e.description, "modality": e.modality or ""})
        data_vars.update(_bounds(name, e, ("time", channel), e.unit, widened))
        for part in ("offsets", "scales"):
            if getattr(e, part, None) is not None:
                data_vars[f"{name}_{part}"] = ((channel,), np.asarray(getattr(e, part)[:]),
                                               {"units": e.unit, "description": f"per-channel {part[:-1]} the "
                                                "signal was z-scored with before modelling"})


def _add_latents(r, coords: dict, data_vars: dict) -> None:
    """Factors, inferred inputs and the per-window initial conditions."""
    data_vars["factors"] = (("time", "factor"), np.asarray(r.factors.data[:]),
                            {"units": "a.u.", "description": r.factors.description})
    if r.inferred_inputs is not None:
        data_vars["inferred_inputs"] = (("time", "inferred_input"), np.asarray(r.inferred_inputs.data[:]),
                                        {"units": "a.u.", "description": r.inferred_inputs.description})
    table = getattr(r, "window_initial_conditions", None)  # spec 0.7.0 on
    if table is not None:
        coords["window_time"] = ("window", np.asarray(table["time"].data[:], dtype=np.float64), {"units": "s"})
        data_vars["initial_conditions"] = (("window", "ic_dim"), np.asarray(table["initial_condition"].data[:]),
                                           {"description": table.description})
    elif r.initial_conditions is not None:  # files of spec 0.6.0 and before: a TimeSeries
        ic = r.initial_conditions
        coords["window_time"] = ("window", _times(ic), {"units": "s"})
        data_vars["initial_conditions"] = (("window", "ic_dim"), np.asarray(ic.data[:]),
                                           {"description": ic.description})


def _add_training_curves(r, coords: dict, data_vars: dict) -> None:
    """One row per validation check at its ``step`` (runs of earlier versions: one per ``epoch``);
    none for a run that applied a saved model (it trained nothing)."""
    if r.training_curves is None:
        return
    curves = r.training_curves.to_dataframe()
    axis = "step" if "step" in curves else "epoch"
    if axis in curves and len(curves) > 0:
        coords[axis] = (axis, curves[axis].to_numpy())
        for col in curves.columns:
            if col != axis and np.issubdtype(curves[col].dtype, np.number):
                data_vars[col] = ((axis,), curves[col].to_numpy(), {"description": f"training curve: {col}"})


def _run_attrs(r, path) -> dict:
    """The run's provenance as Dataset attributes (JSON text for the nested parts)."""
    attrs = {"run": r.name, "file": str(path), "description": r.description, "modalities": r.modalities,
             "software_version": r.software_version, "git_revision": r.git_revision or "",
             "random_seed": int(r.random_seed), "started": r.started, "finished": r.finished,
             "bin_size": float(r.bin_size), "source_file_identifier": r.source_file_identifier,
             "source_file_sha256": r.source_file_sha256, "source_paths": r.source_paths,
             "source_object_ids": r.source_object_ids, "source_location": r.source_location or "",
             "source_url": r.source_url or "", "source_dandi_asset_id": r.source_dandi_asset_id or "",
             "source_in_file": int(source_in_file(r)), "config": r.config, "software": r.software,
             "hyperparameters": r.hyperparameters, "metrics": r.metrics,
             "preprocessing": r.preprocessing or "", "command": r.command or "",
             "source": getattr(r, "source", None) or "",
             # since ndx-autolfads 0.5.0: the model the run saved (or applied) and its weights' SHA-256
             "model_location": getattr(r, "model_location", None) or "",
             "model_sha256": getattr(r, "model_sha256", None) or "",
             "model_applied": int(bool(getattr(r, "model_applied", None))),
             # since ndx-autolfads 0.6.0: every session of a multi-session model (JSON; "" for one session)
             "sessions": getattr(r, "sessions", None) or ""}
    if r.pbt_history is not None:
        attrs["pbt_history"] = r.pbt_history.to_dataframe().to_json(orient="records")
    return attrs


def to_pynapple(path: str | Path, run: str | None = None) -> dict:
    """One run of ``path`` as pynapple ``TsdFrame`` objects whose columns carry the names.

    ``pynapple.load_file`` builds column names only for ``ElectricalSeries`` (electrodes) and
    ``RoiResponseSeries`` (ROIs); for any other time series, ours included, it numbers the
    columns 0..N-1. This helper gives them their names instead.

    Parameters
    ----------
    path : str or pathlib.Path
        A local NWB file holding nwb-autolfads runs.
    run : str, optional
        The run's name; default the latest (as :func:`load_results`).

    Returns
    -------
    dict of str to pynapple.TsdFrame
        Time in seconds, on the run's bin centres, for what the run modelled:
        ``emg_activations`` (columns: the muscle names; the source's units; metadata ``scale``:
        the per-channel preprocessing scale), ``firing_rates`` (columns: the ids of the Units
        table rows; Hz), each continuous input modelled, e.g. ``inferred_force`` (columns: its
        channel names; its own units; metadata ``offsets`` / ``scales``), their credible
        interval's bounds when the run stored one (``emg_activations_lower`` / ``_upper``,
        ``firing_rates_lower`` / ``_upper``, ``inferred_force_lower`` / ``_upper``, same columns
        and units), ``factors`` and ``inferred_inputs`` (columns 0..N-1).

    Raises
    ------
    InputFileError, ResultsNotFoundError
        As :func:`load_results`.
    MissingDependencyError
        pynapple is not installed (``pip install pynapple``); an ImportError too.
    """
    try:
        import pynapple as nap
    except ImportError:
        from nwb_autolfads.errors import MissingDependencyError

        raise MissingDependencyError("to_pynapple needs pynapple, which is not installed: pip install pynapple "
                                     "(or read the results with nwb_autolfads.load_results, an xarray.Dataset)") from None

    ds = load_results(path, run)
    t = ds.time.values
    out = {}
    if "emg_activations" in ds:
        meta = ({"scale": ds.channel_scale.values} if "channel_scale" in ds else None)
        out["emg_activations"] = nap.TsdFrame(t=t, d=ds.emg_activations.values, columns=list(ds.channel.values),
                                              metadata=meta)
    if "firing_rates" in ds:
        out["firing_rates"] = nap.TsdFrame(t=t, d=ds.firing_rates.values,
                                           columns=[int(u) for u in ds.unit.values])
    estimates = [v for v in ds.data_vars if f"{v}_channel" in ds.coords]  # continuous inputs, e.g. inferred_force
    for name in estimates:
        meta = {part: ds[f"{name}_{part}"].values for part in ("offsets", "scales") if f"{name}_{part}" in ds}
        out[name] = nap.TsdFrame(t=t, d=ds[name].values, columns=[str(c) for c in ds[f"{name}_channel"].values],
                                 metadata=meta or None)
    for name in ("emg_activations", "firing_rates", *estimates):
        for side in ("lower", "upper"):  # the credible interval's bounds, named like their estimate's columns
            if f"{name}_{side}" in ds:
                out[f"{name}_{side}"] = nap.TsdFrame(t=t, d=ds[f"{name}_{side}"].values,
                                                     columns=list(out[name].columns))
    out["factors"] = nap.TsdFrame(t=t, d=ds.factors.values)
    if "inferred_inputs" in ds:
        out["inferred_inputs"] = nap.TsdFrame(t=t, d=ds.inferred_inputs.values)
    return out
