"""The end-to-end job behind ``nwb-autolfads run``:

NWB in -> EMG signal -> preprocessing -> windows -> LFADS -> training -> inference + merge
-> new NWB file with the activations (source units, source channel order), factors and
inferred inputs in processing module ``autolfads``, with the resolved config as provenance.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import platform
import shlex
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from nwb_autolfads import __version__
from nwb_autolfads.evaluation.calibration import estimate_errors, interval_percent, normal_quantile, widen_band
from nwb_autolfads.config import DEFAULT_BIN_SIZE, RunConfig, build_config, configured_hyperparameters
from nwb_autolfads.train.devices import resolve_device, seed_everything
from nwb_autolfads.errors import ConfigError, SignalError, SignalNotFoundError, TrainingError
from nwb_autolfads.model.inference import infer_merged, interval_quantiles
from nwb_autolfads.model.lfads import LFADS
from nwb_autolfads.model.observations import Composite, ObservationModel, Poisson, get_observation
from nwb_autolfads.data.preprocessing import preprocess_emg
from nwb_autolfads.io.reading import (bin_spikes, check_spike_span, check_unit_clocks, emg_doubt, find_emg, iter_series, open_nwb,
                      read_emg, read_trial_times, read_units, spike_bin_centres)
from nwb_autolfads.train.pbt.embedded import train_population
from nwb_autolfads.train.isolation import planned_steps, train_single
from nwb_autolfads.train.seeds import SeedTree
from nwb_autolfads.train.training_data import TrainingData
from nwb_autolfads.train.resources import Execution, choose_execution, using_threads
from nwb_autolfads.train.loop import TrainResult, split_train_valid, time_steps
from nwb_autolfads.data.windows import MIN_FITTED_WINDOW, WindowIndex, chop_segments, fitted_window
from nwb_autolfads.io.sources import Source, resolve_source, source_sha256 as input_sha256
from nwb_autolfads.io.writing import (OutputLock, RunRecord, check_in_place, check_output_path, compact_float, default_output_path,
                      git_revision, write_results)

__all__ = ["RunResult", "FitResult", "StageClock", "run", "fit_signal"]

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """What :func:`run` did and where the result is."""

    output: Path | None
    input: Path | Any  # a local Path, or a remote Source (URL / DANDI asset)
    config: RunConfig
    source_path: str
    channel_names: list[str]
    unit: str
    times: np.ndarray  # (n_bins,) bin centres, source clock
    activations: np.ndarray  # (n_bins, C) in the source's units (C = 0 when EMG is not modelled)
    rates: np.ndarray  # (n_bins, U) firing rates in Hz (U = 0 when spikes are not modelled)
    unit_ids: list[int]
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
    run_name: str | None = None
    """Name of the run's container in processing/autolfads of the output."""
    chosen_by: str = "found automatically"
    doubt: str | None = None
    """Why the modelled series does not look like EMG (None when nothing speaks against it)."""
    score_targets: list[str] = field(default_factory=list)
    """What in the input ``evaluate`` can score the run against (kinematics, force, spikes, ground truth)."""
    plan: dict = field(default_factory=dict)
    """The training budget and the expected time printed before training (also in the provenance's metrics)."""
    stages: dict[str, dict] = field(default_factory=dict)
    """Wall time and memory of each stage, in order (see :class:`StageClock`): ``read``,
    ``preprocess``, ``train``, ``infer``, ``write`` (absent without a file written)."""
    interval: float | None = None
    """Probability of the central credible interval below (``inference.interval``); None when
    there is none (``inference.mode: mean``, or ``inference.interval: null``)."""
    activations_lower: np.ndarray | None = None
    """(n_bins, C) lower bound of that interval of ``activations``, in the source's units (None
    without an interval; C = 0 when EMG is not modelled, as for ``activations``)."""
    activations_upper: np.ndarray | None = None
    """(n_bins, C) its upper bound."""
    rates_lower: np.ndarray | None = None
    """(n_bins, U) lower bound of that interval of ``rates``, in Hz (None without an interval; U = 0
    when spikes are not modelled)."""
    rates_upper: np.ndarray | None = None
    """(n_bins, U) its upper bound."""
    interval_calibration: dict | None = None
    """The model's error estimated per channel and level that widened the band
    (:mod:`nwb_autolfads.evaluation.calibration`), in the source's units (Hz for units); None without an
    interval. Recorded in the provenance's metrics."""

    def summary(self, report: str | Path | None = None) -> str:
        """A readable account of the run. ``report``: the folder a report is written to next
        (``run --report``), named instead of the command that would write one."""
        t = self.training
        dur = self.times.size * self.config.windows.bin_size  # the time modelled (gaps between segments excluded)
        lines = ["nwb-autolfads run finished", f"  input       {self.input}"]
        if self.channel_names:
            lines.append(f"  modelled    {self.source_path}: {len(self.channel_names)} channels "
                         f"({', '.join(self.channel_names)}), {dur:.1f} s in {self.config.windows.bin_size * 1e3:g} ms "
                         f"bins [{self.chosen_by}]")
        if self.unit_ids:
            query = self.config.data.units
            lines.append(f"  modelled    units: {len(self.unit_ids)} units" + (f" ({query})" if query else "")
                         + f", {dur:.1f} s in {self.config.windows.bin_size * 1e3:g} ms bins, Poisson")
        if self.doubt and self.channel_names:
            lines.append(f"  WARNING     {self.source_path} does not look like EMG: {self.doubt}")
        if self.other_candidates and self.channel_names:
            lines.append(f"              also EMG-like, not modelled (choose with --emg): "
                         f"{', '.join(self.other_candidates)}")
        lines += [
            f"  preprocess  {'; '.join(self.preprocessing_steps) or 'spike counts per bin'}",
            f"  windows     {self.n_windows} of {self.config.windows.window_bins} bins "
            f"({self.n_train} train / {self.n_valid} validation)",
            (f"  training    population-based: {t.pbt_summary['population']} members x "
             f"{t.pbt_summary['generations']} generations of {self.config.pbt.generation_steps} steps in "
             f"{t.seconds:.1f} s on {self.device}" + (" (stopping rule)" if t.stopped_early else "")
             + f"; winner: member {t.pbt_summary['best_member']} of generation {t.pbt_summary['best_generation'] + 1}, "
             f"smoothed validation NLL {t.best_valid_nll:.4f}; "
             + ", ".join(f"{k} {v:.3g}" for k, v in (t.hyperparameters or {}).items())
             if t.pbt_summary else
             f"  training    {_steps_trained(t)} steps in {t.seconds:.1f} s on {self.device}; best smoothed "
             f"validation NLL {t.best_valid_nll:.4f} at step {t.best_step}"
             + (f" (stopped early: no improvement of the smoothed validation NLL for "
                f"{self.config.train.early_stopping_patience} steps)" if t.stopped_early else "")),
        ]
        if self.config.preset == "smoke":
            lines.append(f"  NOTE        {SMOKE_NOTE}: run with --preset quick or default for results to use")
        if self.output is not None:
            lines.append(f"  output      {self.output}" + (" (results only: the source's data stay in the input; "
                                                          "--output-content full copies them too)"
                                                          if self.config.output.content == "results" else ""))
            written = []
            band = f" with {interval_percent(self.interval)} credible interval" if self.interval is not None else ""
            if self.channel_names:
                written.append(f"emg_activations ({self.activations.shape[0]} x {self.activations.shape[1]}, "
                               f"{self.unit}{band})")
            if self.unit_ids:
                written.append(f"firing_rates ({self.rates.shape[0]} x {self.rates.shape[1]}, Hz{band})")
            lines.append(f"              processing/autolfads/{self.run_name}: {', '.join(written)}, factors, "
                         "inferred_inputs, initial_conditions, provenance")
            if self.interval is None and self.config.inference.interval is not None and not \
                    self.config.inference.with_interval:
                inf = self.config.inference
                fix = ("inference.mode: sample" if inf.mode != "sample" else
                       f"inference.n_samples: at least 2, not {inf.n_samples}")
                lines.append("              no credible interval: inference used the posterior mean, not samples "
                             f"({fix} for one)")
            lines.append(f"  read with   nwb_autolfads.load_results({str(self.output)!r})  or  "
                         f"nwb-autolfads runs {self.output}")
            baselines = " and ".join(
                (["rectified EMG, low-pass and Bayesian filtering"] if self.channel_names else [])
                + (["smoothed spikes"] if self.unit_ids else []))
            if not self.score_targets:
                lines.append(f"  compare     nothing in the input to score against (no kinematics, force"
                             f"{', units' if self.channel_names else ''} or ground truth): `evaluate` would show no "
                             "scores")
            elif report is not None:
                lines.append(f"  report      evaluated next (vs {baselines}, scored on "
                             f"{', '.join(self.score_targets)}): {Path(report) / 'index.html'}")
            else:
                lines.append(f"  compare     nwb-autolfads evaluate {self.output} --report report/   (vs {baselines}, "
                             f"scored on {', '.join(self.score_targets)})")
        return "\n".join(lines)


class StageClock:
    """Per-stage record of a run: ``stages[name]`` = {``seconds``: wall time since the previous
    mark, ``maxrss_mb``: this process's peak resident memory so far (MB, ``ru_maxrss``; a
    high-water mark, so a stage's own peak is this value only where it rose during the stage),
    ``children_maxrss_mb``: the largest peak of its finished child processes (workers) so far}.
    Stages: ``read`` (open the file, find the series, read spike times), ``preprocess`` (read
    and filter the EMG chunk by chunk, bin spikes, hash the input), ``train`` (chop windows,
    train), ``infer`` (posterior estimates, merge windows), ``write`` (the output file). Memory
    is None where the platform has no ``resource`` module (Windows)."""

    def __init__(self) -> None:
        self.stages: dict[str, dict] = {}
        self._last = time.perf_counter()

    def mark(self, name: str) -> None:
        """Close stage ``name``: it ran from the previous mark (or the clock's creation) to now."""
        now = time.perf_counter()
        try:
            import resource
        except ImportError:  # Windows
            peaks = [None, None]
        else:
            per_mb = 2**20 if sys.platform == "darwin" else 2**10  # macOS reports bytes, Linux KiB
            peaks = [resource.getrusage(who).ru_maxrss / per_mb
                     for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
        self.stages[name] = {"seconds": now - self._last, "maxrss_mb": peaks[0], "children_maxrss_mb": peaks[1]}
        self._last = now


RUN_FINGERPRINT = "fingerprint.json"
SMOKE_NOTE = ("smoke preset: a check that the data go through the pipeline (a tiny model trained for a few dozen steps); "
              "its results are not meant to be used")



def _trial_windows(align: np.ndarray, start: float, n_bins: int, lead: int, bin_size: float,
                   bin_times: list[np.ndarray], *lists: list[np.ndarray]) -> tuple[list[np.ndarray], ...]:
    """Cut ``n_bins`` bins (plus ``lead`` lead-in bins before them) starting at each trial's
    alignment time + ``start``, from the gap-free segment that holds them. Trials with no time,
    or not fully inside the data, are skipped with a warning; overlapping trial windows are an
    error (results are written on one time axis)."""
    if n_bins < 2:
        raise ConfigError(f"--window spans {n_bins} bin(s) of {bin_size * 1e3:g} ms: give a window of at least two "
                          "bins")
    out: tuple[list[np.ndarray], ...] = tuple([] for _ in (bin_times, *lists))
    skipped, last_stop = 0, -np.inf
    for t in np.sort(align[np.isfinite(align)]):
        first = t + start - lead * bin_size
        for k, centres in enumerate(bin_times):
            i = int(np.searchsorted(centres, first - 1e-9 * bin_size))
            if i < centres.size and abs(centres[i] - bin_size / 2 - first) <= bin_size / 2 + 1e-9 and \
                    i + lead + n_bins <= centres.size and \
                    np.allclose(np.diff(centres[i:i + lead + n_bins]), bin_size, rtol=1e-6):
                break
        else:
            skipped += 1
            continue
        window = slice(i, i + lead + n_bins)
        if centres[i + lead] - bin_size / 2 < last_stop - 1e-9:
            raise ConfigError(f"trial windows overlap (the trial at {t:g} s starts before the previous one ends): "
                              "use a shorter --window, or align to another column")
        last_stop = centres[i + lead + n_bins - 1] + bin_size / 2
        for dst, src in zip(out, (bin_times, *lists)):
            dst.append(src[k][window])
    skipped += int(np.sum(~np.isfinite(align)))
    if skipped:
        log.warning("%d of %d trials have no alignment time or are not fully inside the data: skipped", skipped,
                    align.size)
    if len(out[0]) < 2:
        raise SignalError(f"trial-aligned mode needs at least 2 trials whose window lies inside the data, found "
                          f"{len(out[0])}: check --align-to and --window")
    return out


def _fit_windows(cfg: RunConfig, lengths: list[int], bin_size: float) -> RunConfig:
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


def _split_where(masks: list[np.ndarray], *lists: list[np.ndarray]) -> tuple[list[np.ndarray], ...]:
    """Split every segment of each list at the bins where its mask is False (those are dropped)."""
    out: tuple[list[np.ndarray], ...] = tuple([] for _ in lists)
    for k, mask in enumerate(masks):
        edges = np.flatnonzero(np.diff(np.r_[0, mask.astype(np.int8), 0]))
        for a, b in zip(edges[::2], edges[1::2]):
            for dst, src in zip(out, lists):
                dst.append(src[k][a:b])
    return out


def default_rundir(target: Path) -> Path:
    """Where a run writing ``target`` keeps its training state: ``.<name>.rundir`` beside it."""
    return target.with_name(f".{target.name}.rundir")


def _prepare_rundir(rundir: Path, cfg: RunConfig, segments: list[np.ndarray], explicit: bool,
                    fresh: bool = False) -> None:
    """Make ``rundir`` hold the state of *this* run. A run directory left by a run with other data
    or settings is never deleted: it is an error, unless ``fresh``. With ``fresh`` any previous
    state is moved aside to ``<rundir>.<UTC time>`` and this run starts afresh."""
    import hashlib

    digest = hashlib.sha256()
    for seg in segments:
        digest.update(np.ascontiguousarray(seg).tobytes())
    fingerprint = {"config": {k: v for k, v in cfg.to_dict().items() if k not in ("device", "inference", "output")},
                   "data_sha256": digest.hexdigest()}
    marker = rundir / RUN_FINGERPRINT
    if marker.is_file():
        try:
            old = json.loads(marker.read_text())
        except ValueError:
            old = None
        if old == json.loads(json.dumps(fingerprint)) and not fresh:
            log.warning("resuming the interrupted run in %s", rundir)
            return
        changed = _changed_settings(old, fingerprint)
        if explicit:
            raise ConfigError(f"--resume {str(rundir)!r} holds a run with other {changed}: resume with the same "
                              "input and configuration, or leave out --resume and pass --fresh to start afresh")
        if not fresh:
            raise ConfigError(f"{str(rundir)!r} holds an interrupted run with other {changed}: continue it with "
                              f"--resume {shlex.quote(str(rundir))} and the old settings, or pass --fresh to move "
                              "its state aside and start afresh (nothing was deleted)")
        aside = rundir.with_name(f"{rundir.name}.{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%SZ')}")
        while aside.exists():
            aside = aside.with_name(aside.name + "_")
        rundir.rename(aside)
        log.warning("the interrupted run's state in %s was moved aside to %s: starting afresh", rundir, aside)
    elif rundir.exists() and any(rundir.iterdir()):
        raise ConfigError(f"run directory {str(rundir)!r} exists and is not an nwb-autolfads run directory: move it "
                          "away")
    rundir.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(fingerprint))


def _score_targets(nwbfile, emg: bool, spikes: bool) -> list[str]:
    """What ``evaluate`` can score a run against in ``nwbfile`` (as :mod:`~nwb_autolfads.evaluation.comparison`
    finds it): kinematics and force series, the units (for an EMG run) and ground truth."""
    from nwb_autolfads.io.reading import modality_of

    found = {modality_of(c) for c in iter_series(nwbfile)}
    out = [m for m in ("kinematics", "force") if m in found]
    if emg and nwbfile.units is not None and len(nwbfile.units):
        out.append("spikes")
    truth = nwbfile.processing.get("ground_truth")
    names = set(truth.data_interfaces) if truth is not None else set()
    if (emg and "true_activations" in names) or (spikes and "true_rates" in names):
        out.append("ground truth")
    return out


def _changed_settings(old: Any, new: dict) -> str:
    """What differs between two run-directory fingerprints, for a message: ``settings
    (train.max_steps: 2000 -> 20)``, ``data``, or both."""
    if not isinstance(old, dict) or not isinstance(old.get("config"), dict):
        return "data or settings"

    def flat(d: Any, prefix: str = "") -> dict:
        if not isinstance(d, dict):
            return {prefix.rstrip("."): d}
        out: dict = {}
        for k, v in d.items():
            out.update(flat(v, f"{prefix}{k}."))
        return out

    a, b = flat(old["config"]), flat(json.loads(json.dumps(new["config"])))
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    what = []
    if keys:
        shown = ", ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in keys[:3])
        what.append(f"settings ({shown}{', ...' if len(keys) > 3 else ''})")
    if old.get("data_sha256") != new.get("data_sha256"):
        what.append("data")
    return " and ".join(what) or "data or settings"


def _describe(cfg: RunConfig, sig, units) -> str:
    what = []
    if sig is not None:
        what.append(f"EMG {sig.source_path} ({sig.n_channels} channels, {observation_name(cfg)})")
    if units is not None:
        what.append(f"{units.n_units} units (Poisson)")
    return (f"nwb-autolfads run modelling {' and '.join(what)} in {cfg.windows.bin_size * 1e3:g} ms bins"
            + (f"; {SMOKE_NOTE}" if cfg.preset == "smoke" else ""))


def _hyperparameters(cfg: RunConfig) -> dict:
    """The hyperparameters population-based training tunes (science.md section 6), as used."""
    from nwb_autolfads.config import configured_hyperparameters

    return configured_hyperparameters(cfg.model, cfg.train, cfg.augment)


def _metrics(result: "RunResult") -> dict:
    t = result.training
    last = t.history[-1] if t.history else {}
    return {"steps": _steps_trained(t), "checks": len(t.history), "best_step": t.best_step,
            "best_smoothed_valid_nll": t.best_valid_nll,
            "final_train_nll": last.get("train_nll"), "final_valid_nll": last.get("valid_nll"),
            "stopped_early": t.stopped_early, "nan_recoveries": t.nan_recoveries, "training_seconds": t.seconds,
            "n_windows": result.n_windows, "n_train": result.n_train, "n_valid": result.n_valid,
            "device": result.device, **({"execution": t.execution} if t.execution else {}), **({"plan": result.plan} if result.plan else {}),
            **({"pbt": t.pbt_summary} if t.pbt_summary else {}),
            **({"interval_calibration": result.interval_calibration} if result.interval_calibration else {})}


def _steps_trained(t: TrainResult) -> int:
    """Optimisation steps the result's model trained (the winner's own steps for a population)."""
    return int(t.history[-1]["step"]) if t.history else 0


def _interval_note(interval: float | None) -> str:
    """What the ``lower`` / ``upper`` bounds written with an estimate are (empty without them)."""
    if interval is None:
        return ""
    lo, hi = interval_quantiles(interval)
    return (f"; lower / upper: its approximate central {interval_percent(interval)} credible interval per bin (the {lo:g} and "
            f"{hi:g} quantiles over the posterior samples, merged with the means' weights where windows overlap, "
            "widened by the model's error estimated from the residual beyond the observation noise; see metrics "
            "interval_calibration)")


def _calibrated_band(segments: list[np.ndarray], fit: "FitResult", n_units: int, interval: float, bin_size: float,
                     scale, channel_names: list[str], unit_ids: list) -> tuple[np.ndarray, np.ndarray, dict]:
    """The posterior band of ``fit`` widened by the model's error (:mod:`nwb_autolfads.evaluation.calibration`),
    in model units: ``segments`` are the model's input per segment (the first ``n_units`` columns
    spike counts, Poisson; the rest scaled EMG). Returns (lower, upper), each (n_bins, C) over all
    segments, and the per-channel error estimates in the source's units for the provenance
    (spikes: Hz, with ``bin_size``; EMG: times ``scale``)."""
    n_channels = segments[0].shape[1]
    errors = estimate_errors(segments, fit.mean, np.arange(n_channels) < n_units)
    parts = [widen_band(m, lo, hi, errors, interval) for m, lo, hi in zip(fit.mean, fit.lower, fit.upper)]
    scales = np.broadcast_to(np.asarray(scale, dtype=float).reshape(-1), (n_channels - n_units,)) \
        if n_channels > n_units else np.zeros(0)
    record = {"method": "residual beyond the observation noise, per channel and level (nwb_autolfads.evaluation.calibration)",
              "z": round(normal_quantile(interval), 4),
              **({"units_hz": {str(u): errors[i].as_dict(1.0 / bin_size) for i, u in enumerate(unit_ids)}}
                 if n_units else {}),
              **({"emg": {str(name): errors[n_units + i].as_dict(float(scales[i]))
                          for i, name in enumerate(channel_names)}} if n_channels > n_units else {})}
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), record)


def _ic_times(fit: "FitResult", bin_times: list[np.ndarray], lead: int) -> np.ndarray:
    """Time of each window's first modelled bin."""
    idx = fit.index
    return np.array([bin_times[s][st + lead] for s, st in zip(idx.segment, idx.start)], dtype=np.float64)


def observation_name(cfg: RunConfig) -> str:
    return {"gamma": "Gamma", "zigamma": "zero-inflated Gamma"}[cfg.model.observation]


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
    ic_mean: np.ndarray  # (n_windows, I) posterior mean of each window's initial condition
    coverage: list[np.ndarray]  # per segment (n_bins, 1): 1 where a window covers the bin, NaN elsewhere
    training: TrainResult
    index: WindowIndex
    n_train: int
    n_valid: int
    device: str
    model: LFADS
    plan: dict = field(default_factory=dict)
    """The budget and the time expected before training (:func:`training_plan`), for the provenance."""
    lower: list[np.ndarray] | None = None
    """Per segment (n_bins, C): lower bound of the credible interval of ``mean`` (``inference.interval``;
    None without posterior samples)."""
    upper: list[np.ndarray] | None = None
    """Per segment (n_bins, C): its upper bound."""


WORKER_START_SECONDS = 6.0
"""Time to start PBT worker processes (spawned, each importing torch), added to the plan's
estimate: measured 2-9 s on 2 shared cores (benchmarks/README.md, threads and processes)."""


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "under 1 s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def stacked_share(population: int, execution: Execution) -> int:
    """Members one stacked program trains: all of them (``stacked``), or the largest block of one
    worker process (``stacked-processes``: :func:`~nwb_autolfads.train.pbt.embedded.member_blocks`)."""
    return -(-population // execution.workers) if execution.mode == "stacked-processes" else population


def _stacked_estimate(p, execution: Execution, per_step: float, member_seconds: float, checks: int,
                      stacked_timing: tuple[float, float] | None) -> tuple[float, str, dict]:
    """(seconds, how, provenance) of a stacked population's training (see :func:`training_plan`):
    one stacked program of all members in this process, or (``stacked-processes``) one per worker
    process, the workers in parallel, so a generation takes as long as the largest block's.
    ``stacked_timing`` is of one stacked program of :func:`stacked_share` members (a block, timed
    alone in this process on the workers' thread count)."""
    split = execution.mode == "stacked-processes"
    share = stacked_share(p.population, execution)
    where = (f"the {p.population} members in {execution.workers} worker processes in parallel, each a block of at "
             f"most {share} members as one stacked program" if split else
             f"the {p.population} members as one stacked program")
    extra: dict = {"members_per_worker": share} if split else {}
    if stacked_timing is None:
        seconds = member_seconds * share
        how = f"{where}, counted as {share} x one model's time (no stacking gain assumed: an upper bound)"
    else:
        st_step, st_check = stacked_timing
        seconds = p.max_generations * (p.generation_steps * st_step + checks * st_check)
        gain = share * per_step / st_step if st_step > 0 else math.nan
        how = (f"{where}: {st_step * 1e3:.0f} ms per step of {'a block' if split else 'all of them'} and "
               f"{st_check * 1e3:.0f} ms per check, timed here on 2 steps ({gain:.1f}x faster than one after "
               "another)")
        extra |= {"seconds_per_stacked_step": st_step, "seconds_per_stacked_check": st_check}
    if split:  # each worker starts fresh (spawned: a Python with torch)
        seconds += WORKER_START_SECONDS
        how += (f"; a block timed alone: the workers share the cores with each other and any other program; plus "
                f"~{WORKER_START_SECONDS:.0f} s to start them")
    return seconds, how, extra


def training_plan(cfg: RunConfig, n_train: int, n_valid: int, device, timing: tuple[float, float],
                  execution: Execution | None = None, stacked_timing: tuple[float, float] | None = None) -> dict:
    """What training will do and an estimate of how long it takes at most, before it starts.

    ``timing``: (seconds per step, seconds per validation check) of one model measured on this
    data (:func:`~nwb_autolfads.train.loop.time_steps`). ``execution``: how training will use the
    machine (:func:`~nwb_autolfads.train.resources.choose_execution`; chosen here from the configuration
    when None, for the embedded backend). ``stacked_timing``: for the stacked mode, (seconds per
    step of all members, seconds per check of all members) measured on this data
    (:func:`~nwb_autolfads.train.stacked.time_stacked`; for ``stacked-processes``, of one worker's block
    of members, the workers taken to run in parallel); without it the stacked estimate assumes no gain
    from stacking (members x one model's time: an upper bound, and said so). The estimate is the
    budget's upper bound (early stopping and the PBT stopping rule usually end sooner) for
    training only; members in worker processes are taken to run side by side. Returns a dict for
    the provenance with the printable block under ``text``."""
    t, p = cfg.train, cfg.pbt
    per_step, per_check = timing
    n_checked = min(n_valid, t.valid_windows)
    per_epoch = -(-n_train // t.batch_size)
    timed = f"{per_step * 1e3:.0f} ms per step and {per_check * 1e3:.0f} ms per check of one model"
    extra: dict = {}
    if execution is None and (p.population == 1 or p.backend == "embedded"):
        execution = choose_execution(p.population, cfg.model, 0, device.type, workers=p.workers,  # 0: the width
                                     threads=t.threads, execution=p.execution)  # does not depend on channels
    if p.population > 1:
        steps = p.generation_steps * p.max_generations
        checks_per_generation = -(-p.generation_steps // t.valid_every)
        budget = (f"{p.population} members x at most {p.max_generations} generations x {p.generation_steps} steps "
                  f"(= {steps} steps per member, {p.population * steps} in all; exploit/explore after each generation)")
        member_seconds = p.max_generations * (p.generation_steps * per_step + checks_per_generation * per_check)
        if p.backend == "ray":
            seconds = member_seconds * p.population
            how = "as if one member after another (Ray spreads them over its cluster: less)"
        elif execution.mode in ("stacked", "stacked-processes"):
            seconds, how, extra = _stacked_estimate(p, execution, per_step, member_seconds, checks_per_generation,
                                                    stacked_timing)
        else:
            side_by_side = min(execution.workers if execution.mode == "processes" else 1, p.population)
            seconds = member_seconds * -(-p.population // side_by_side)
            how = (f"{side_by_side} worker processes side by side" if side_by_side > 1 else "one member after another")
            if side_by_side > 1:  # each worker starts fresh (spawned: a Python with torch): measured 2-9 s
                seconds += WORKER_START_SECONDS
                how += f", plus ~{WORKER_START_SECONDS:.0f} s to start them"
    else:
        steps = t.max_steps
        seconds = steps * per_step + -(-steps // t.valid_every) * per_check
        budget = (f"1 model, at most {steps} steps (early stopping after {t.early_stopping_patience} steps without "
                  f"improvement, not before step {max(t.min_steps, t.ramp_steps)})")
        how = "one model"
    lines = [
        "nwb-autolfads plan (before training):",
        f"  windows   {n_train} training / {n_valid} validation ({n_checked} evaluated every {t.valid_every} steps); "
        f"{t.batch_size} windows per step, {per_epoch} steps per pass over the training windows",
        f"  budget    {budget}"]
    shown = execution is not None and not (p.population > 1 and p.backend == "ray")
    if shown:
        lines.append(f"  execution {execution.describe()}")
    lines.append(
        f"  expected  at most {'~' if seconds >= 1 else ''}{_duration(seconds)} of training on {device.type} (an estimate: {timed}, timed here "
        f"on {min(3, steps)} steps; {how}; stopping rules usually end sooner; inference and writing not included)")
    return {"steps_per_member": steps, "members": p.population if p.population > 1 else 1,
            "n_train": n_train, "n_valid_checked": n_checked, "seconds_per_step": per_step,
            "seconds_per_check": per_check, **extra, "expected_training_seconds_at_most": seconds,
            **({"execution": execution.describe()} if shown else {}),
            "text": "\n".join(lines)}


def fit_signal(segments: list[np.ndarray], bin_size: float, observation: ObservationModel, cfg: RunConfig,
               progress: bool = True, rundir: str | Path | None = None, resume: bool = False,
               fresh: bool = False, clock: StageClock | None = None) -> FitResult:
    """Chop, train, infer and merge. ``segments``: per gap-free stretch, (n_bins, C) model-ready
    data; ``observation``: the distribution of each channel. ``cfg`` must be resolved for the
    channel count (:meth:`RunConfig.resolved`). ``rundir``: where the training state is kept
    (and resumed from); ``resume``: it was named by the user; ``fresh``: a run directory of a run
    with other data or settings is moved aside instead of refused. ``clock``: marks the ``train``
    and ``infer`` stages."""
    w = cfg.windows
    lead = cfg.model.lead_in_bins  # windows carry a lead-in before the bins they model
    windows, index = chop_segments(segments, w.window_bins + lead, w.overlap_bins + lead)
    if index.n_windows < 2:
        longest = max(index.segment_lengths) * bin_size if index.segment_lengths else 0.0
        need = (w.window_bins + lead) * bin_size
        raise SignalError(f"recording too short: {index.n_windows} window(s) of {w.window_bins + lead} bins "
                          f"({need:g} s) fit in the longest gap-free stretch ({longest:g} s, "
                          f"{max(index.segment_lengths, default=0)} bins); at least 2 are needed: use a longer "
                          "recording, smaller windows.window_bins / windows.bin_size, or --align-to COLUMN --window "
                          "START,STOP for one window per trial")
    uncovered = [n for n in index.segment_lengths if n < w.window_bins + lead]
    if uncovered:
        log.warning("%d segment(s) shorter than one window (%d bins) are left as NaN", len(uncovered),
                    w.window_bins + lead)
    if lead:
        log.info("the first %d bins of each segment are lead-in only (NaN in the outputs)", lead)

    device = resolve_device(cfg.device)  # before the run directory is made: a bad option leaves nothing
    if cfg.pbt.population > 1 and cfg.pbt.backend == "ray":
        from nwb_autolfads.train.pbt.ray_executor import train_population_ray  # noqa: F401  (a missing Ray fails here, before any state)
    if rundir is not None:
        _prepare_rundir(Path(rundir), cfg, segments, explicit=resume, fresh=fresh)
    seed_everything(cfg.seed)
    train_idx, valid_idx = split_train_valid(index.n_windows, w.valid_every)
    x_all = torch.from_numpy(windows).to(device)
    data = TrainingData(x_all[train_idx], x_all[valid_idx], observation)
    data_mean = data.train.mean(dim=(0, 1))

    def make_model() -> LFADS:
        m = LFADS(segments[0].shape[1], cfg.model, observation).to(device)
        m.init_readout_bias(data_mean)
        return m

    # the plan's steps are timed with the threads training will use (a step timed with torch's default
    # threads on a busy machine can take 10-50x one with the single thread training then uses), and
    # for a single model where it trains (in its child process: this one never holds a training step)
    timing_model = make_model()  # a throwaway model for timing the steps (the same in every execution mode)
    n_channels, population = segments[0].shape[1], cfg.pbt.population
    plan: dict = {}

    def announce(timing: tuple[float, float], stacked_timing: tuple[float, float] | None = None) -> None:
        plan.update(training_plan(cfg, int(train_idx.size), int(valid_idx.size), device, timing, execution,
                                  stacked_timing))
        if progress:
            sys.stderr.write(plan["text"] + "\n")
            sys.stderr.flush()

    if population > 1:  # chosen once: the plan states what the training then does
        execution = choose_execution(population, cfg.model, n_channels, device.type, workers=cfg.pbt.workers,
                                     threads=cfg.train.threads, execution=cfg.pbt.execution) \
            if cfg.pbt.backend == "embedded" else None
        with using_threads(execution.threads) if execution is not None else contextlib.nullcontext():
            timing = time_steps(timing_model, data, cfg.train, cfg.augment)
            stacked_timing = None
            if execution is not None and execution.mode in ("stacked", "stacked-processes"):
                from nwb_autolfads.train.stacked import time_stacked

                stacked_timing = time_stacked(timing_model, data, cfg.train,
                                              cfg.augment, configured_hyperparameters(cfg.model, cfg.train,
                                                                                      cfg.augment),
                                              stacked_share(population, execution))  # a worker's block
        del timing_model
        announce(timing, stacked_timing)
        if cfg.pbt.backend == "ray":
            from nwb_autolfads.train.pbt.ray_executor import train_population_ray as trainer
            how = {}
        else:
            trainer, how = train_population, {"execution": execution}
        model, result = trainer(make_model, data, cfg.model, cfg.train,
                                         cfg.augment, cfg.pbt, seed=cfg.seed, rundir=rundir, progress=progress, **how)
    else:
        with SeedTree(cfg.seed).initialising(0):  # the initial weights from the seed tree's init stream
            model = make_model()
        ck = Path(rundir) / "model_state.pt" if rundir is not None else None
        if ck is not None:
            ck.parent.mkdir(parents=True, exist_ok=True)
        work = planned_steps(cfg.train, train_idx.size) * sum(p.numel() for p in model.parameters())
        execution = choose_execution(1, cfg.model, n_channels, device.type, threads=cfg.train.threads,
                                     execution=cfg.pbt.execution, work=work)
        log.info("training: %s", execution.describe())
        result = train_single(model, data, cfg.train, cfg.augment, execution,
                              progress=progress, checkpoint=ck, timing_model=timing_model,
                              on_timing=announce, seed=cfg.seed)  # in a child process, or here
        del timing_model
        result.execution = execution.describe()
    if clock is not None:
        clock.mark("train")
    merged = infer_merged(model, x_all, index, cfg.inference, w.merge_power, lead, progress=progress,
                          generator=SeedTree(cfg.seed).torch("inference", device=device))
    fit = FitResult(mean=merged.mean, factors=merged.factors, inputs=merged.inputs, ic_mean=merged.ic_mean,
                     training=result, coverage=merged.coverage, index=index, n_train=int(train_idx.size),
                     n_valid=int(valid_idx.size), device=str(device), model=model,
                     plan={k: v for k, v in plan.items() if k != "text"}, lower=merged.lower, upper=merged.upper)
    if clock is not None:
        clock.mark("infer")
    return fit


def run(path: str | Path, output: str | Path | None = None, *, preset: str | None = None,
        config: RunConfig | str | Path | None = None, overrides: Mapping[str, Any] | None = None,
        emg: str | None = None, seed: int | None = None, device: str | None = None, overwrite: bool = False,
        in_place: bool = False, run_name: str | None = None, write: bool = True,
        progress: bool = True, command: str | None = None, resume: str | Path | None = None,
        fresh: bool = False) -> RunResult:
    """Run AutoLFADS-style muscle-activation estimation on the EMG of an NWB file.

    Parameters
    ----------
    path : input NWB file (opened read-only, never modified): a local path, an http(s) URL, or a
        DANDI asset (``dandi://dandi/<id>[@version]/<path>`` or ``DANDI:<id>/<path>``), streamed.
    output : output NWB path; default ``<stem>_autolfads.nwb`` beside the input (DANDI-style
        ``sub-X_ses-Y_desc-autolfads_emg.nwb`` for DANDI-named inputs).
    preset : ``smoke`` (a pipeline check: a tiny model trained for a few dozen steps, not a result
        to use), ``quick`` (minutes), ``default`` (the full method) or ``paper``.
    config : a :class:`RunConfig`, or the path of a YAML config file.
    overrides : extra settings, nested or dotted (``{"train.max_steps": 1000}``).
    emg : object path of the EMG series (``acquisition/EMG``); found automatically if None.
    seed, device : shortcuts for the ``seed`` and ``device`` settings.
    overwrite : replace an existing output file.
    in_place : add the results to the input file itself instead of writing a new file (the
        input is updated atomically: an interruption leaves it untouched or complete).
        What a new file holds is the setting ``output.content``: ``results`` (the results and
        where the source is; the default for remote inputs) or ``full`` (a copy of the source's
        content too; the default for local files).
    run_name : name of the run's container in ``processing/autolfads`` (default
        ``run_<UTC start time>``; a suffix keeps names unique).
    write : set False to compute without writing a file (``RunResult.output`` is then None).
    progress : show progress bars.
    command : how the run was started, for the provenance (the CLI passes its command line).
    resume : run directory of an interrupted run to continue. Without it, a run that writes a
        file keeps its state in ``.<output name>.rundir`` beside the output (every validation
        check for one model, every generation for a population) and the same command run again after
        a crash continues from there; the directory is removed once the output is written. A
        run directory left by a run with other data or settings is never deleted: the run is
        refused (:class:`~nwb_autolfads.errors.ConfigError`) unless ``fresh``.
    fresh : start afresh even when the run directory holds an interrupted run with other data or
        settings; its state is moved aside to ``<rundir>.<UTC time>``, never deleted.

    Returns a :class:`RunResult` (arrays, training history, output path, :meth:`~RunResult.summary`).
    """
    t_start = time.perf_counter()
    clock = StageClock()
    started = datetime.now(timezone.utc)
    source = resolve_source(path)
    path = source.path if not source.remote else source  # a local Path, or the remote Source
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
    resolve_device(cfg.device)  # every option is checked before anything is created
    if fresh and resume is not None:
        raise ConfigError("give either --resume RUNDIR (continue that run) or --fresh (start afresh), not both")

    # what a new output holds: by default only the results for a remote input (nothing downloaded whole)
    content = "full" if in_place else cfg.output.content or ("results" if source.remote else "full")
    if content != cfg.output.content:
        cfg = cfg.updated({"output.content": content})

    modalities = cfg.data.model.split("+")
    with open_nwb(path) as (_io, nwbfile):
        try:
            sig = read_emg(nwbfile, cfg.data.emg, cfg.data.channel_names, lazy=True) if "emg" in modalities else None
        except SignalNotFoundError as exc:
            n_units = len(nwbfile.units) if nwbfile.units is not None else 0
            if cfg.data.emg is not None or not n_units:
                raise
            raise SignalNotFoundError(f"{exc}; or model the {n_units} units of nwbfile.units with --model spikes") \
                from None
        doubt = emg_doubt(find_emg(nwbfile, cfg.data.emg)) if sig is not None else None
        if doubt:
            log.warning("%s does not look like EMG (%s): it is modelled as EMG because it was chosen with --emg; "
                        "check with `nwb-autolfads inspect` that it is the EMG", sig.source_path, doubt)
        units = read_units(nwbfile, cfg.data.units, cfg.data.bad_units) if "spikes" in modalities else None
        others = [c.path for c in iter_series(nwbfile) if sig is not None and c.score > 0
                  and c.path != sig.source_path and not c.path.startswith(sig.source_path + "/")]
        if others and cfg.data.emg is None:  # found automatically: say what else could be the EMG
            log.warning("modelling %s (%d channels) as the EMG; %d other EMG-like series are not modelled: %s. "
                        "Choose one with --emg PATH; EMG stored as one 1-D series per muscle is modelled together "
                        "when the series sit in one container (e.g. a BehavioralTimeSeries)", sig.source_path,
                        sig.n_channels, len(others), ", ".join(others[:8]) + (", ..." if len(others) > 8 else ""))
        targets = _score_targets(nwbfile, sig is not None, "spikes" in modalities)
        # a remote input's results go to the current directory
        out_path = Path(output) if output is not None else default_output_path(
            Path(source.name) if source.remote else path, cfg.data.model)
        if write and in_place:
            if output is not None:
                raise ConfigError("give either --output or --in-place, not both")
            if source.remote:
                raise ConfigError(f"--in-place cannot change a remote file ({source.spec}): leave out --in-place to "
                                  "write the results to a new local file")
            check_in_place(path)
        elif write:
            check_output_path(out_path, None if source.remote else path, overwrite)  # fail before training
        source_identifier = nwbfile.identifier
        trial_times = read_trial_times(nwbfile, cfg.data.align_to) if cfg.data.align_to else None
        clock.mark("read")
        pre = None
        if sig is not None:  # while the file is open: big recordings are read and filtered in chunks
            log.info("read %s: %s samples x %s channels", sig.source_path, sig.n_samples, sig.n_channels)
            pre = preprocess_emg(sig, cfg.preprocess, cfg.windows.bin_size, cfg.data.preprocessed,
                                 cfg.windows.gap_factor, progress=progress)
            if pre.resolved:  # `auto` settings as found (the line frequency): saved, and repeated by evaluate
                cfg = cfg.updated({f"preprocess.{key}": value for key, value in pre.resolved.items()})
    with contextlib.ExitStack() as stack:
        if write:
            stack.enter_context(OutputLock(path if in_place else out_path))
        return _run_locked(path, out_path, cfg, sig, pre, units, others, source_identifier, started, t_start, write,
                           in_place, overwrite, run_name, progress, command, resume, trial_times, fresh, doubt,
                           targets, source, clock)


def _run_locked(path, out_path, cfg, sig, pre, units, others, source_identifier, started, t_start, write, in_place,
                overwrite, run_name, progress, command, resume, trial_times, fresh=False, doubt=None,
                targets=(), source=None, clock: StageClock | None = None) -> RunResult:
    """The part of :func:`run` after the input is read and the output checked, under the output's lock."""
    # a remote file is not hashed (that would download all of it): a DANDI asset's SHA-256 is the one the
    # archive publishes, another URL has none; its identity is recorded in the provenance's ``source``
    if source is None:
        source = path if isinstance(path, Source) else resolve_source(Path(path))
    source_sha256 = input_sha256(source) if write else ""

    # ---- model-ready segments: spike counts (Poisson) then EMG (Gamma), on one bin grid
    parts: list[tuple[ObservationModel, int]] = []
    if pre is not None:
        bin_size, bin_times, emg_segments = pre.bin_size, pre.bin_times, pre.segments
        if units is not None:  # spikes are binned on the EMG's bins: those outside its stretches are not modelled
            spans = [(c[0] - bin_size / 2, c[-1] + bin_size / 2) for c in bin_times if len(c)]
            units = check_spike_span(units, spans, f"the EMG's time ({sig.source_path})", cfg.data.bad_units)
    else:
        bin_size = cfg.windows.bin_size if cfg.windows.bin_size is not None else DEFAULT_BIN_SIZE
        units = check_unit_clocks(units, cfg.data.bad_units)  # the grid spans every spike: none far from the rest
        bin_times = [spike_bin_centres(units, bin_size)]
        emg_segments = [np.zeros((len(bin_times[0]), 0), np.float32)]
    rectified_segments = list(pre.rectified) if pre is not None else [np.zeros((len(c), 0)) for c in bin_times]
    if units is not None:
        spike_segments = [bin_spikes(units, centres, bin_size) for centres in bin_times]
        parts.append((Poisson(), units.n_units))
        if units.obs_intervals is not None:  # model only the bins every selected unit was observed in
            observed = [units.observed(centres, bin_size) for centres in bin_times]
            n_out = int(sum((~m).sum() for m in observed))
            if n_out:
                lost = int(sum(seg[~m].sum() for seg, m in zip(spike_segments, observed)))
                log.warning("%d bins (%.1f s) outside the units' obs_intervals are not modelled (%d of %d spikes)",
                            n_out, n_out * bin_size, lost, int(sum(seg.sum() for seg in spike_segments)))
            bin_times, spike_segments, emg_segments, rectified_segments = _split_where(
                observed, bin_times, spike_segments, emg_segments, rectified_segments)
            if not bin_times:
                raise SignalError("no time bin lies inside the obs_intervals of every selected unit: select units "
                                  "observed at the same time with --units")
    else:
        spike_segments = [np.zeros((len(c), 0), np.float32) for c in bin_times]
    if sig is not None:
        parts.append((get_observation(cfg.model.observation), sig.n_channels))
    if trial_times is not None:  # trial-aligned mode: one window per trial
        lead = cfg.model.lead_in_bins
        n_bins = int(round((cfg.data.window[1] - cfg.data.window[0]) / bin_size))
        bin_times, spike_segments, emg_segments, rectified_segments = _trial_windows(
            trial_times, cfg.data.window[0], n_bins, lead, bin_size, bin_times, spike_segments, emg_segments,
            rectified_segments)
        cfg = cfg.updated({"windows.window_bins": n_bins,
                           "windows.overlap_bins": min(cfg.windows.overlap_bins, n_bins - 1)})
    segments = [np.concatenate([a, b], axis=1) for a, b in zip(spike_segments, emg_segments)]
    observation = parts[0][0] if len(parts) == 1 else Composite(parts)
    n_units = units.n_units if units is not None else 0
    cfg = _fit_windows(cfg, [len(s) for s in segments], bin_size)
    cfg = cfg.resolved(segments[0].shape[1])
    if bin_size != cfg.windows.bin_size:
        cfg = cfg.updated({"windows.bin_size": bin_size})

    if resume is not None:
        rundir = Path(resume)
        if not (rundir / RUN_FINGERPRINT).is_file():
            raise ConfigError(f"--resume {str(rundir)!r} is not a run directory of nwb-autolfads (no {RUN_FINGERPRINT}):"
                              " give the directory an interrupted run left, or leave out --resume")
    elif write:
        rundir = default_rundir(path if in_place else out_path)
    else:
        rundir = None
    if clock is not None:
        clock.mark("preprocess")
    fit = fit_signal(segments, bin_size, observation, cfg, progress=progress, rundir=rundir,
                     resume=resume is not None, fresh=fresh, clock=clock)
    times = np.concatenate(bin_times)
    mean = np.concatenate(fit.mean)
    # Bins no window covers (segments shorter than a window, lead-in bins) have no estimate: they are
    # left out of the results. A non-finite value anywhere else is a numerical fault, never written.
    covered = np.isfinite(np.concatenate(fit.coverage)[:, 0])
    outputs_finite = np.all(np.isfinite(mean), axis=1) & np.all(np.isfinite(np.concatenate(fit.factors)), axis=1)
    if np.any(covered & ~outputs_finite):
        raise TrainingError(f"the trained model produced NaN/inf for {int(np.sum(covered & ~outputs_finite))} bins: "
                            "nothing was written; lower train.lr (or pbt.lr.high) or check the input data")
    if not covered.all():
        log.warning("%d bins (%.1f s) that no window covers are left out of the results", int((~covered).sum()),
                    (~covered).sum() * bin_size)
    scale = pre.scales[None, :] if pre is not None else 1.0

    def source_units(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Model units -> (rates in Hz, activations in the source's units), covered bins only."""
        return (m[:, :n_units] / bin_size)[covered], (m[:, n_units:] * scale)[covered]  # spikes per bin -> Hz

    rates, activations = source_units(mean)
    bands = {}
    if fit.lower is not None:  # the credible interval's bounds, converted exactly like the means
        lower, upper = np.concatenate(fit.lower), np.concatenate(fit.upper)
        if np.any(covered & ~(np.isfinite(lower).all(axis=1) & np.isfinite(upper).all(axis=1))):
            raise TrainingError("the trained model's posterior samples gave NaN/inf interval bounds: nothing was "
                                "written; lower train.lr (or pbt.lr.high), or set inference.interval: null")
        lower, upper, calibration = _calibrated_band(segments, fit, n_units, cfg.inference.interval, bin_size,
                                                     scale, pre.channel_names if pre is not None else [],
                                                     list(units.ids) if units is not None else [])
        (rl, al), (ru, au) = source_units(lower), source_units(upper)
        bands = {"interval": cfg.inference.interval, "activations_lower": compact_float(al),
                 "activations_upper": compact_float(au), "rates_lower": compact_float(rl),
                 "rates_upper": compact_float(ru), "interval_calibration": calibration}
    factors = np.concatenate(fit.factors)
    inputs = np.concatenate(fit.inputs)
    rectified = np.concatenate(rectified_segments)
    times, factors, inputs, rectified = (a[covered] for a in (times, factors, inputs, rectified))
    train = fit.training
    channel_names = list(pre.channel_names) if pre is not None else []

    result = RunResult(output=None, input=path, config=cfg, source_path=sig.source_path if sig else "units",
                       channel_names=channel_names, unit=sig.unit if sig else "Hz", times=times,
                       activations=compact_float(activations), rates=compact_float(rates),
                       unit_ids=list(units.ids) if units is not None else [],
                       factors=factors.astype(np.float32), inputs=inputs.astype(np.float32),
                       rectified=compact_float(rectified), preprocessing_steps=pre.steps if pre else [],
                       training=train, n_windows=fit.index.n_windows, n_train=fit.n_train, n_valid=fit.n_valid,
                       seconds=0.0, device=fit.device, plan=fit.plan, other_candidates=others,
                       chosen_by="--emg" if cfg.data.emg else "found automatically", doubt=doubt,
                       score_targets=list(targets), **bands)
    if write:
        paths, ids = [], []
        if sig is not None:
            paths.append(sig.source_path)
            ids.append(sig.object_id or "")
        if units is not None:
            paths.append("units")
            ids.append(units.object_id or "")
        record = RunRecord(
            times=times, bin_size=bin_size, factors=result.factors, inputs=result.inputs,
            description=_describe(cfg, sig, units) + (f"; WARNING: {sig.source_path} does not look like EMG: "
                                                       f"{doubt}" if doubt else ""),
            config=cfg.to_dict(), software=_versions(),
            hyperparameters=train.hyperparameters or _hyperparameters(cfg), metrics=_metrics(result), seed=cfg.seed,
            started=started.isoformat(), finished=datetime.now(timezone.utc).isoformat(),
            source_identifier=source_identifier, source_sha256=source_sha256, modalities=cfg.data.model,
            activations=result.activations if sig is not None else None, channel_names=channel_names,
            unit=sig.unit if sig is not None else "a.u.", scales=pre.scales if pre is not None else None,
            activations_description=(
                f"AutoLFADS (LFADS, {observation_name(cfg)} observation model) estimate of muscle activation: "
                f"the posterior {cfg.inference.mode} of E[rectified EMG] per bin, in the source's units; source "
                f"{sig.source_path}" + _interval_note(result.interval)) if sig is not None else "",
            rates=result.rates if units is not None else None, unit_ids=result.unit_ids,
            rates_description=(f"AutoLFADS (LFADS, Poisson observation model) estimate of firing rates "
                               f"(posterior {cfg.inference.mode}), in Hz" + (f"; units where {units.query}"
                                                                          if units is not None and units.query else "")
                               + _interval_note(result.interval)),
            interval=result.interval,
            activations_lower=result.activations_lower if sig is not None else None,
            activations_upper=result.activations_upper if sig is not None else None,
            rates_lower=result.rates_lower if units is not None else None,
            rates_upper=result.rates_upper if units is not None else None,
            ic_mean=fit.ic_mean, ic_times=_ic_times(fit, bin_times, cfg.model.lead_in_bins),
            source_paths=paths, source_object_ids=ids, emg_object_id=sig.object_id if sig is not None else None,
            source_location=source.spec if source.remote else str(Path(path).resolve()), source_url=source.url or "",
            source_asset_id=source.asset_id or "",
            preprocessing=({"steps": pre.steps, "scales": pre.scales, "clip_levels": pre.clip_levels,
                            "bin_size": pre.bin_size, "parameters": cfg.preprocess.__dict__,
                            **({"line_hum": pre.line_hum} if pre.line_hum else {})}
                           if pre is not None else {"bin_size": bin_size, "steps": ["spike counts per bin"]}),
            history=train.history, pbt_history=train.pbt_history or [
                {"generation": 0, "member": 0, **_hyperparameters(cfg), "metric": train.best_valid_nll,
                 "steps": _steps_trained(train), "parent_member": -1, "parent_generation": -1}],
            command=command or f"nwb_autolfads.run({str(path)!r}, ...) from {' '.join(sys.argv)}", git_revision=git_revision(), name=run_name,
            source=source.provenance(source_sha256))
        result.output, result.run_name = write_results(path, None if in_place else out_path, record,
                                                       overwrite=overwrite, in_place=in_place,
                                                       content=cfg.output.content)
        if resume is None and rundir is not None:
            import shutil
            shutil.rmtree(rundir, ignore_errors=True)  # the result is written: the state is not needed
        if clock is not None:
            clock.mark("write")
    if clock is not None:
        result.stages = clock.stages
    result.seconds = time.perf_counter() - t_start
    return result
