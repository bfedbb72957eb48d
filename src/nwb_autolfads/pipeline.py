"""The end-to-end job behind ``nwb-autolfads run``:

NWB in -> EMG signal -> preprocessing -> windows -> LFADS -> training -> inference + merge
-> new NWB file with the activations (source units, source channel order), factors and
inferred inputs in processing module ``autolfads``, with the resolved config as provenance.
"""

from __future__ import annotations

import logging
import platform
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from . import __version__
from .config import RunConfig, build_config
from .devices import resolve_device, seed_everything
from .errors import ConfigError, SignalError
from .inference import infer
from .model import LFADS
from .observations import get_observation
from .preprocessing import Preprocessed, preprocess_emg
from .reading import iter_series, open_nwb, read_emg
from .training import TrainResult, split_train_valid, train_model
from .windows import WindowIndex, chop_segments, merge_segments
from .writing import SeriesToWrite, default_output_path, provenance_json, write_results, check_output_path

__all__ = ["RunResult", "FitResult", "run", "fit_signal"]

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What :func:`run` did and where the result is."""

    output: Path | None
    input: Path
    config: RunConfig
    source_path: str
    channel_names: list[str]
    unit: str
    times: np.ndarray  # (n_bins,) bin centres, source clock
    activations: np.ndarray  # (n_bins, C) in the source's units
    factors: np.ndarray  # (n_bins, F)
    inputs: np.ndarray  # (n_bins, U)
    rectified: np.ndarray  # (n_bins, C) binned rectified EMG (the model's input, source units)
    preprocessing_steps: list[str]
    training: TrainResult
    n_windows: int
    n_train: int
    n_valid: int
    seconds: float
    device: str
    other_candidates: list[str] = field(default_factory=list)
    """Other series that look like EMG but were not modelled."""
    chosen_by: str = "found automatically"

    def summary(self) -> str:
        t = self.training
        dur = self.times[-1] - self.times[0] + self.config.windows.bin_size if self.times.size else 0.0
        lines = [
            "nwb-autolfads run finished",
            f"  input       {self.input}",
            f"  modelled    {self.source_path}: {len(self.channel_names)} channels "
            f"({', '.join(self.channel_names)}), {dur:.1f} s in {self.config.windows.bin_size * 1e3:g} ms bins "
            f"[{self.chosen_by}]",
        ]
        if self.other_candidates:
            lines.append(f"              also EMG-like, not modelled (choose with --emg): "
                         f"{', '.join(self.other_candidates)}")
        lines += [
            f"  preprocess  {'; '.join(self.preprocessing_steps)}",
            f"  windows     {self.n_windows} of {self.config.windows.window_bins} bins "
            f"({self.n_train} train / {self.n_valid} validation)",
            f"  training    {len(t.history)} epochs in {t.seconds:.1f} s on {self.device}; best smoothed "
            f"validation NLL {t.best_valid_nll:.4f} at epoch {t.best_epoch}"
            + (" (early stop)" if t.stopped_early else ""),
        ]
        if self.output is not None:
            lines.append(f"  output      {self.output}")
            lines.append(f"              processing/autolfads/emg_activations ({self.activations.shape[0]} x "
                         f"{self.activations.shape[1]}, {self.unit}), factors, inferred_inputs")
        return "\n".join(lines)


def _versions() -> dict[str, str]:
    import h5py
    import hdmf
    import pynwb
    import scipy
    return {"nwb_autolfads": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "pynwb": pynwb.__version__, "hdmf": hdmf.__version__, "numpy": np.__version__,
            "scipy": scipy.__version__, "h5py": h5py.__version__}


@dataclass
class FitResult:
    """What :func:`fit_signal` produced: per-segment merged outputs in model units."""

    mean: list[np.ndarray]  # per segment (n_bins, C): E[x] in scaled units
    factors: list[np.ndarray]  # per segment (n_bins, F)
    inputs: list[np.ndarray]  # per segment (n_bins, U)
    training: TrainResult
    index: WindowIndex
    n_train: int
    n_valid: int
    device: str
    model: LFADS


def fit_signal(pre: Preprocessed, cfg: RunConfig, progress: bool = True) -> FitResult:
    """Chop, train, infer and merge for preprocessed EMG. ``cfg`` must be resolved for the
    channel count (:meth:`RunConfig.resolved`)."""
    w = cfg.windows
    lead = cfg.model.lead_in_bins  # windows carry a lead-in before the bins they model
    windows, index = chop_segments(pre.segments, w.window_bins + lead, w.overlap_bins + lead)
    if index.n_windows < 2:
        longest = max(index.segment_lengths) * pre.bin_size if index.segment_lengths else 0.0
        need = (w.window_bins + lead) * pre.bin_size
        raise SignalError(f"recording too short: {index.n_windows} window(s) of {w.window_bins + lead} bins "
                          f"({need:g} s) fit in the longest gap-free stretch ({longest:g} s); at least 2 are "
                          "needed: use a longer recording or smaller windows.window_bins / windows.bin_size")
    uncovered = [n for n in index.segment_lengths if n < w.window_bins + lead]
    if uncovered:
        log.warning("%d segment(s) shorter than one window (%d bins) are left as NaN", len(uncovered),
                    w.window_bins + lead)
    if lead:
        log.info("the first %d bins of each segment are lead-in only (NaN in the outputs)", lead)

    seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    train_idx, valid_idx = split_train_valid(index.n_windows, w.valid_every)
    x_all = torch.from_numpy(windows).to(device)
    model = LFADS(pre.n_channels, cfg.model, get_observation(cfg.model.observation)).to(device)
    model.init_readout_bias(x_all[train_idx].mean(dim=(0, 1)))
    result = train_model(model, x_all[train_idx], x_all[valid_idx], cfg.train, cfg.augment, progress=progress)
    inferred = infer(model, x_all, cfg.inference, progress=progress)
    return FitResult(mean=merge_segments(inferred.mean, index, w.merge_power, lead),
                     factors=merge_segments(inferred.factors, index, w.merge_power, lead),
                     inputs=merge_segments(inferred.inputs, index, w.merge_power, lead),
                     training=result, index=index, n_train=int(train_idx.size), n_valid=int(valid_idx.size),
                     device=str(device), model=model)


def run(path: str | Path, output: str | Path | None = None, *, preset: str | None = None,
        config: RunConfig | str | Path | None = None, overrides: Mapping[str, Any] | None = None,
        emg: str | None = None, seed: int | None = None, device: str | None = None, overwrite: bool = False,
        write: bool = True, progress: bool = True) -> RunResult:
    """Run AutoLFADS-style muscle-activation estimation on the EMG of an NWB file.

    Parameters
    ----------
    path : input NWB file (opened read-only, never modified).
    output : output NWB path; default ``<stem>_autolfads.nwb`` beside the input (DANDI-style
        ``sub-X_ses-Y_desc-autolfads_emg.nwb`` for DANDI-named inputs).
    preset : ``smoke`` (seconds), ``quick`` (minutes) or ``default`` (the full method).
    config : a :class:`RunConfig`, or the path of a YAML config file.
    overrides : extra settings, nested or dotted (``{"train.max_epochs": 100}``).
    emg : object path of the EMG series (``acquisition/EMG``); found automatically if None.
    seed, device : shortcuts for the ``seed`` and ``device`` settings.
    overwrite : replace an existing output file.
    write : set False to compute without writing a file (``RunResult.output`` is then None).
    progress : show progress bars.

    Returns a :class:`RunResult` (arrays, training history, output path, :meth:`~RunResult.summary`).
    """
    t_start = time.perf_counter()
    started = datetime.now(timezone.utc)
    path = Path(path)
    extra: dict[str, Any] = {}
    if emg is not None:
        extra["data.emg"] = emg
    if seed is not None:
        extra["seed"] = seed
    if device is not None:
        extra["device"] = device
    if isinstance(config, RunConfig):
        if preset is not None:
            raise ConfigError("give either a RunConfig or a preset, not both: build the config with "
                              "build_config(preset, ...) instead")
        cfg = config.updated({**dict(overrides or {}), **extra})
    else:
        cfg = build_config(preset=preset, file=config, overrides={**dict(overrides or {}), **extra})

    with open_nwb(path) as (_io, nwbfile):
        sig = read_emg(nwbfile, cfg.data.emg, cfg.data.channel_names)
        others = [c.path for c in iter_series(nwbfile) if c.score > 0 and c.path != sig.source_path
                  and not c.path.startswith(sig.source_path + "/")]
        out_path = Path(output) if output is not None else default_output_path(path)
        if write:
            check_output_path(out_path, path, overwrite)  # fail before training, not after
        source_identifier = nwbfile.identifier
    log.info("read %s: %s samples x %s channels", sig.source_path, sig.n_samples, sig.n_channels)
    pre = preprocess_emg(sig, cfg.preprocess, cfg.windows.bin_size, cfg.data.preprocessed, cfg.windows.gap_factor)
    cfg = cfg.resolved(pre.n_channels)
    if pre.bin_size != cfg.windows.bin_size:
        cfg = cfg.updated({"windows.bin_size": pre.bin_size})

    fit = fit_signal(pre, cfg, progress=progress)
    times = np.concatenate(pre.bin_times)
    activations = np.concatenate(fit.mean) * pre.scales[None, :]  # back to source units
    factors = np.concatenate(fit.factors)
    inputs = np.concatenate(fit.inputs)
    rectified = np.concatenate(pre.rectified)
    train = fit.training

    result = RunResult(output=None, input=path, config=cfg, source_path=sig.source_path,
                       channel_names=list(pre.channel_names), unit=sig.unit, times=times,
                       activations=activations.astype(np.float32), factors=factors.astype(np.float32),
                       inputs=inputs.astype(np.float32), rectified=rectified.astype(np.float32),
                       preprocessing_steps=pre.steps, training=train, n_windows=fit.index.n_windows,
                       n_train=fit.n_train, n_valid=fit.n_valid, seconds=0.0, device=fit.device,
                       other_candidates=others, chosen_by="--emg" if cfg.data.emg else "found automatically")
    if write:
        provenance = {
            "software": _versions(), "command": " ".join(sys.argv), "config": cfg.to_dict(),
            "source": {"file": str(path), "identifier": source_identifier, "series": sig.source_path,
                       "object_id": sig.object_id, "neurodata_type": sig.neurodata_type, "unit": sig.unit},
            "channel_names": pre.channel_names,
            "preprocessing": {"steps": pre.steps, "scales": pre.scales, "clip_levels": pre.clip_levels,
                              "bin_size": pre.bin_size},
            "training": {"epochs": len(train.history), "best_epoch": train.best_epoch,
                         "best_smoothed_valid_nll": train.best_valid_nll, "stopped_early": train.stopped_early,
                         "seconds": train.seconds, "n_windows": result.n_windows, "n_train": result.n_train,
                         "n_valid": result.n_valid, "device": result.device,
                         "valid_nll_curve": [h["valid_nll"] for h in train.history],
                         "train_nll_curve": [h["train_nll"] for h in train.history]},
            "started": started.isoformat(), "finished": datetime.now(timezone.utc).isoformat(),
        }
        comments = provenance_json(provenance)
        channels = ", ".join(pre.channel_names)
        series = [
            SeriesToWrite("emg_activations", result.activations, sig.unit,
                          f"AutoLFADS (LFADS, Gamma observation model) estimate of muscle activation: the "
                          f"posterior {cfg.inference.mode} of E[rectified EMG] per bin, in the source's units; "
                          f"source {sig.source_path}; channels: {channels}", times, pre.bin_size, comments),
            SeriesToWrite("factors", result.factors, "a.u.",
                          f"LFADS latent factors ({result.factors.shape[1]}) underlying emg_activations",
                          times, pre.bin_size),
        ]
        if result.inputs.shape[1] > 0:
            series.append(SeriesToWrite("inferred_inputs", result.inputs, "a.u.",
                                        f"LFADS inferred inputs u_t ({result.inputs.shape[1]}) to the generator",
                                        times, pre.bin_size))
        result.output = write_results(path, out_path, series,
                                      "AutoLFADS results (nwb-autolfads); provenance JSON in the comments of "
                                      "emg_activations", overwrite=overwrite)
    result.seconds = time.perf_counter() - t_start
    return result
