"""The provenance record of a run: what :func:`nwb_autolfads.run` writes as one ``AutoLFADSRun``
(:class:`~nwb_autolfads.io.writing.RunRecord`) besides the estimates: a description of what was
modelled, software versions, the configuration and hyperparameters as used, training metrics and
history, the source's identity and hashes, and the command.

May import: numpy, torch (its version), :mod:`nwb_autolfads.config`, :mod:`nwb_autolfads.io`,
:mod:`nwb_autolfads.model`, :mod:`nwb_autolfads.modalities`, :mod:`nwb_autolfads.train` (result types).
"""

from __future__ import annotations

import platform
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from nwb_autolfads import __version__
from nwb_autolfads.config import RunConfig, configured_hyperparameters
from nwb_autolfads.io.results import interval_percent
from nwb_autolfads.io.writing import Estimate, RunRecord, git_revision
from nwb_autolfads.modalities import MODALITY_SEPARATOR, Binned, modality
from nwb_autolfads.model.inference import interval_quantiles
from nwb_autolfads.model.registry import observation_spec
from nwb_autolfads.train.loop import TrainResult

if TYPE_CHECKING:  # the pipeline imports this module
    from nwb_autolfads.pipeline import FitResult, RunResult

__all__ = ["SMOKE_NOTE", "make_record", "session_entry", "estimate_of", "observation_name", "steps_trained", "software_versions",
           "model_metadata"]

SMOKE_NOTE = ("smoke preset: a check that the data go through the pipeline (a tiny model trained for a few dozen steps); "
              "its results are not meant to be used")


def observation_name(cfg: RunConfig) -> str:
    """How provenance names the EMG's observation model (its registered label)."""
    return observation_spec(cfg.model.observation).label


def steps_trained(t: TrainResult) -> int:
    """Optimisation steps the result's model trained (the winner's own steps for a population)."""
    return int(t.history[-1]["step"]) if t.history else 0


def software_versions() -> dict[str, str]:
    """Versions of nwb-autolfads, Python and the libraries a result depends on."""
    import h5py
    import hdmf
    import pynwb
    import scipy
    import torch

    return {"nwb_autolfads": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "pynwb": pynwb.__version__, "hdmf": hdmf.__version__, "numpy": np.__version__,
            "scipy": scipy.__version__, "h5py": h5py.__version__}


def _hyperparameters(cfg: RunConfig) -> dict:
    """The hyperparameters population-based training tunes (docs/science.md, Population-based training), as used."""
    return configured_hyperparameters(cfg.model, cfg.train, cfg.augment)


def _metrics(result: "RunResult") -> dict:
    t = result.training
    last = t.history[-1] if t.history else {}
    return {"steps": steps_trained(t), "checks": len(t.history), "best_step": t.best_step,
            "best_smoothed_valid_nll": t.best_valid_nll,
            "final_train_nll": last.get("train_nll"), "final_valid_nll": last.get("valid_nll"),
            "stopped_early": t.stopped_early, "nan_recoveries": t.nan_recoveries, "training_seconds": t.seconds,
            "n_windows": result.n_windows, "n_train": result.n_train, "n_valid": result.n_valid,
            "device": result.device, **({"execution": t.execution} if t.execution else {}), **({"plan": result.plan} if result.plan else {}),
            **({"pbt": t.pbt_summary} if t.pbt_summary else {}),
            **({"interval_calibration": result.interval_calibration} if result.interval_calibration else {}),
            **({"lowpass_check": result.lowpass_check} if result.lowpass_check else {})}


def interval_note(interval: float | None) -> str:
    """What the ``lower`` / ``upper`` bounds written with an estimate are (empty without them)."""
    if interval is None:
        return ""
    lo, hi = interval_quantiles(interval)
    return (f"; lower / upper: its approximate central {interval_percent(interval)} credible interval per bin (the {lo:g} and "
            f"{hi:g} quantiles over the posterior samples, merged with the means' weights where windows overlap, "
            "widened by the model's error estimated from the residual beyond the observation noise and the noise "
            "the model follows; see metrics "
            "interval_calibration)")


def describe(cfg: RunConfig, blocks: Mapping[str, Binned]) -> str:
    """One line saying what a run modelled, in ``data.modalities`` order."""
    what = []
    for name in cfg.data.modalities:
        b, label = blocks[name], observation_spec(modality(name).observation_name(cfg)).label
        if name == "emg":
            what.append(f"EMG {b.source_path} ({len(b.channel_names)} channels, {label})")
        elif name == "spikes":
            what.append(f"{len(b.channel_names)} units ({label})")
        else:
            what.append(f"{name} {b.source_path} ({len(b.channel_names)} channel(s), {label})")
    return (f"nwb-autolfads run modelling {' and '.join(what)} in {cfg.windows.bin_size * 1e3:g} ms bins"
            + (f"; {SMOKE_NOTE}" if cfg.preset == "smoke" else ""))


def estimate_of(name: str, b: Binned, data: np.ndarray, cfg: RunConfig, lower: np.ndarray | None,
                upper: np.ndarray | None) -> Estimate:
    """The estimate of the continuous input ``name`` (binned as ``b``), ``data`` (n_bins, C) and its
    interval's bounds in the source's units, as written (``ContinuousEstimate``)."""
    return Estimate(name=modality(name).output, modality=name, data=data, unit=b.unit,
                    channel_names=b.channel_names, offsets=b.offsets, scales=b.scales, source_path=b.source_path,
                    object_id=b.object_id, lower=lower, upper=upper,
                    description=(f"AutoLFADS (LFADS, {observation_spec(modality(name).observation_name(cfg)).label} "
                                 f"observation model) estimate of {name} (posterior {cfg.inference.mode}) in the "
                                 f"source's units; source {b.source_path}" + interval_note(
                                     cfg.inference.interval if lower is not None else None)))


def _ic_times(fit: "FitResult", bin_times: list[np.ndarray], lead: int) -> np.ndarray:
    """Time of each window's first modelled bin."""
    idx = fit.index
    return np.array([bin_times[s][st + lead] for s, st in zip(idx.segment, idx.start)], dtype=np.float64)


def _modelled_series(blocks: Mapping[str, Binned], result: "RunResult") -> tuple[list[str], list[str]]:
    """(object paths, object ids) of the modelled series: the EMG, the units, then each continuous input."""
    paths, ids = [], []
    for name in ("emg", "spikes"):
        if name in blocks:
            paths.append(blocks[name].source_path)
            ids.append(blocks[name].object_id or "")
    for e in result.estimates.values():
        paths.append(e.source_path)
        ids.append(e.object_id or "")
    return paths, ids


def _estimates_fields(cfg: RunConfig, blocks: Mapping[str, Binned], result: "RunResult", doubt: str | None) -> dict:
    """The RunRecord fields of the EMG's activations and the units' rates (None where not modelled)."""
    emg, spikes = blocks.get("emg"), blocks.get("spikes")
    units = spikes.units if spikes is not None else None
    return dict(
        activations=result.activations if emg is not None else None, channel_names=result.channel_names,
        unit=emg.unit if emg is not None else "a.u.", scales=emg.scales if emg is not None else None,
        activations_description=(
            f"AutoLFADS (LFADS, {observation_name(cfg)} observation model) estimate of muscle activation: "
            f"the posterior {cfg.inference.mode} of E[rectified EMG] per bin, in the source's units; source "
            f"{emg.source_path}" + interval_note(result.interval)) if emg is not None else "",
        rates=result.rates if units is not None else None, unit_ids=result.unit_ids,
        rates_description=(f"AutoLFADS (LFADS, Poisson observation model) estimate of firing rates "
                           f"(posterior {cfg.inference.mode}), in Hz" + (f"; units where {units.query}"
                                                                      if units is not None and units.query else "")
                           + interval_note(result.interval)),
        interval=result.interval,
        activations_lower=result.activations_lower if emg is not None else None,
        activations_upper=result.activations_upper if emg is not None else None,
        rates_lower=result.rates_lower if units is not None else None,
        rates_upper=result.rates_upper if units is not None else None,
        emg_object_id=emg.object_id if emg is not None else None)


def _preprocessing(cfg: RunConfig, blocks: Mapping[str, Binned], bin_size: float) -> dict:
    """The preprocessing provenance: the EMG's steps, scales, clip levels and line hum, or the bin size."""
    if "emg" not in blocks:
        return {"bin_size": bin_size, "steps": ["spike counts per bin"]}
    pre = blocks["emg"].preprocessed
    return {"steps": pre.steps, "scales": pre.scales, "clip_levels": pre.clip_levels, "bin_size": pre.bin_size,
            "parameters": cfg.preprocess.__dict__, **({"line_hum": pre.line_hum} if pre.line_hum else {})}


def _columns(cfg: RunConfig, columns: list[tuple[str, Binned, slice]]) -> list[dict]:
    """Per block of model columns (in column order): its modality, observation model, channel
    names in the model's order, unit and source path, the per-channel offsets, scales and
    (EMG) clip levels the data were scaled with, in the source's units (None for spikes), and
    once inferred ``fit``, how well the estimate explains each channel's data
    (:mod:`nwb_autolfads.evaluation.fit_check`; what ``apply`` compares new data against)."""
    out = []
    for name, b, _ in columns:
        pre = getattr(b, "preprocessed", None)
        out.append({"modality": name, "observation": modality(name).observation_name(cfg),
                    "channel_names": [str(c) for c in b.channel_names], "unit": b.unit, "source_path": b.source_path,
                    "offsets": b.offsets, "scales": b.scales,
                    **({"clip_levels": pre.clip_levels} if pre is not None else {}),
                    **({"fit": list(b.fit)} if getattr(b, "fit", None) is not None else {})})
    return out


def session_entry(name: str, source_data: Any, source_sha256: str, columns: list[tuple[str, Binned, slice]],
                  cfg: RunConfig, output: Any) -> dict:
    """One session of a multi-session model as its outputs' provenance (``sessions``) and the saved
    model's ``model.json`` name it: its name, the source's identity, the output written (None:
    none) and its column blocks (:func:`_columns`: channel names, scales)."""
    source = source_data.source
    return {"name": name, "identifier": source_data.identifier, "sha256": source_sha256,
            "location": source.spec if source.remote else str(Path(source_data.path).resolve()),
            "url": source.url or "", "dandi_asset_id": source.asset_id or "",
            "output": str(Path(output).resolve()) if output is not None else None, "columns": _columns(cfg, columns)}


def model_metadata(result: "RunResult", columns: list[tuple[str, Binned, slice]], source_data: Any,
                   source_sha256: str) -> dict:
    """What a saved model's ``model.json`` says about it (:mod:`nwb_autolfads.model.artifact`
    adds the format and the weights' SHA-256): the resolved configuration, modalities, bin size,
    the column blocks (:func:`_columns`), the preprocessing, hyperparameters and training summary,
    software versions, the run and where it was written, and the source's identity.
    ``source_data``: the pipeline's :class:`~nwb_autolfads.pipeline.SourceData`."""
    cfg, t, source = result.config, result.training, source_data.source
    blocks = {name: b for name, b, _ in columns}
    return {
        "run_name": result.run_name, "output": str(result.output) if result.output is not None else None,
        "config": cfg.to_dict(), "modalities": list(cfg.data.modalities), "bin_size": cfg.windows.bin_size,
        "n_channels": sum(sl.stop - sl.start for _, _, sl in columns), "columns": _columns(cfg, columns),
        "preprocessing": _preprocessing(cfg, blocks, cfg.windows.bin_size),
        "hyperparameters": t.hyperparameters or _hyperparameters(cfg),
        "training": {"steps": steps_trained(t), "best_step": t.best_step, "best_smoothed_valid_nll": t.best_valid_nll,
                     "n_windows": result.n_windows, "n_train": result.n_train, "n_valid": result.n_valid,
                     "device": result.device, **({"pbt": t.pbt_summary} if t.pbt_summary else {})},
        "software": software_versions(),
        "source": {"identifier": source_data.identifier, "sha256": source_sha256,
                   "location": source.spec if source.remote else str(Path(source_data.path).resolve()),
                   "url": source.url or "", "dandi_asset_id": source.asset_id or ""},
    }


def make_record(result: "RunResult", fit: "FitResult", blocks: Mapping[str, Binned], bin_times: list[np.ndarray],
                bin_size: float, *, source: Any, path: Any, identifier: str, source_sha256: str, started: datetime,
                finished: datetime, doubt: str | None, command: str | None, run_name: str | None) -> RunRecord:
    """Everything one run writes: ``result``'s estimates (on its covered bins) and the provenance.

    Parameters
    ----------
    result : RunResult
        The run's result, in the source's units.
    fit : FitResult
        The fit it came from (initial conditions and the windows they belong to).
    blocks : mapping of str to Binned
        The modelled modalities as binned, by name.
    bin_times : list of numpy.ndarray
        Per segment, the bin centres (seconds) the model ran on (for the windows' times).
    bin_size : float
        Seconds per bin.
    source, path, identifier, source_sha256 : Source, pathlib.Path or Source, str, str
        The source (resolved), how the run was given it, its NWB identifier and SHA-256 ("" when
        not hashed).
    started, finished : datetime
        Wall-clock start and end (UTC).
    doubt : str or None
        Why the EMG does not look like EMG (noted in the description).
    command : str or None
        The command line (None: the Python call).
    run_name : str or None
        The run's container name (None: from the start time).

    Returns
    -------
    RunRecord
    """
    cfg, train = result.config, result.training
    emg = blocks.get("emg")
    paths, ids = _modelled_series(blocks, result)
    record = RunRecord(
        times=result.times, bin_size=bin_size, factors=result.factors, inferred_inputs=result.inferred_inputs,
        description=describe(cfg, blocks) + (f"; WARNING: {emg.source_path} does not look like EMG: {doubt}"
                                             if doubt else ""),
        config=cfg.to_dict(), software=software_versions(),
        hyperparameters=train.hyperparameters or _hyperparameters(cfg), metrics=_metrics(result), seed=cfg.seed,
        started=started.isoformat(), finished=finished.isoformat(),
        source_identifier=identifier, source_sha256=source_sha256,
        modalities=MODALITY_SEPARATOR.join(cfg.data.modalities), estimates=list(result.estimates.values()),
        **_estimates_fields(cfg, blocks, result, doubt),
        ic_mean=fit.ic_mean, ic_times=_ic_times(fit, bin_times, cfg.model.lead_in_bins),
        source_paths=paths, source_object_ids=ids,
        source_location=source.spec if source.remote else str(Path(path).resolve()), source_url=source.url or "",
        source_asset_id=source.asset_id or "", preprocessing=_preprocessing(cfg, blocks, bin_size),
        history=train.history, pbt_history=train.pbt_history or [
            {"generation": 0, "member": 0, **_hyperparameters(cfg), "metric": train.best_valid_nll,
             "steps": steps_trained(train), "parent_member": -1, "parent_generation": -1}],
        command=command or f"nwb_autolfads.run({str(path)!r}, ...) from {' '.join(sys.argv)}",
        git_revision=git_revision(), name=run_name, source=source.provenance(source_sha256),
        model_location=str(result.model) if result.model is not None else "", model_sha256=result.model_sha256 or "",
        sessions=result.sessions)
    return _applied(record, result) if result.applied is not None else record


def _applied(record: RunRecord, result: "RunResult") -> RunRecord:
    """``record`` of a run that applied a saved model (:func:`nwb_autolfads.apply`): its
    description and metrics name the model and its training source (and the fit check:
    ``fit_check``), its hyperparameters are the model's, and it has no training curves or PBT
    history (nothing was trained)."""
    a = result.applied
    trained_on = a["trained_on"].get("location") or a["trained_on"].get("identifier")
    record.description = (f"applied model {a['location']} (sha256 {a['sha256']}) trained on source {trained_on} "
                          f"(run {a.get('run_name')}); no training; " + record.description)
    record.hyperparameters = a.get("hyperparameters") or record.hyperparameters
    m = record.metrics
    kept = ("n_windows", "device", "interval_calibration", "lowpass_check")
    record.metrics = {"applied_model": a, **{k: m[k] for k in kept if k in m},
                      **({"fit_check": result.fit_check} if result.fit_check else {})}
    record.history, record.pbt_history, record.model_applied = [], None, True
    return record
