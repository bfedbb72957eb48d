"""The end-to-end job behind ``nwb-autolfads run``, as named stages (read top to bottom):

1. resolve the configuration once (:func:`_resolve_config`);
2. read the source: every modality of ``data.modalities`` from the source (:func:`_read_source`);
3. plan the output: where the result goes and the run directory, checked before any work
   (:func:`_plan_output`);
4. bin: the EMG preprocessed onto its bins (:func:`_preprocess`), every other modality binned
   onto them, or without EMG onto the spikes' own bins (:func:`_bin`);
5. fit: chop into windows, train (one model or a population), infer and merge the windows back
   (:func:`fit_signal`);
6. collect: the estimates in the source's units on the bins a window covers (:func:`_collect`);
7. make the provenance record (:func:`nwb_autolfads.provenance.make_record`) and write it as a
   new NWB file with the activations (source units, source channel order), rates, factors and
   inferred inputs in processing module ``autolfads`` (:func:`_run_locked`).

The state carried between stages: :class:`SourceData`, :class:`OutputPlan`, :class:`ModelData`,
:class:`FitResult`; what a run returns: :class:`~nwb_autolfads.run_result.RunResult`. The training plan printed before training is :mod:`nwb_autolfads.plan`, the
run directory :mod:`nwb_autolfads.rundir`.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from nwb_autolfads.config import (DEFAULT_BIN_SIZE, RunConfig, build_config, configured_hyperparameters,
                                  warn_interval_samples)
from nwb_autolfads.data.grid import fit_windows, split_where, trial_windows
from nwb_autolfads.data.windows import WindowIndex, chop_segments
from nwb_autolfads.errors import ConfigError, OutputError, SignalError, TrainingError
from nwb_autolfads.evaluation.calibration import copied_noise, estimate_errors, noise_sd, normal_quantile, widen_band
from nwb_autolfads.evaluation.fit_check import channel_fit
from nwb_autolfads.evaluation.risk import compare_with_lowpass, lowpass_verdict
from nwb_autolfads.io.reading import OUTPUT_MODULE, open_nwb
from nwb_autolfads.io.series import emg_doubt, find_emg, iter_series
from nwb_autolfads.io.trials import read_trial_times
from nwb_autolfads.train.seeds import SeedTree
from nwb_autolfads.train.training_data import TrainingData
from nwb_autolfads.io.sources import Source, resolve_source, source_sha256 as input_sha256
from nwb_autolfads.io.writing import (OutputLock, check_in_place, check_output_path, compact_float, default_output_path,
                                      check_run_name, default_run_name, uninterrupted, unique_run_name,
                                      write_results)
from nwb_autolfads.modalities import MODALITY_SEPARATOR, Binned, BinnedEmg, modality
from nwb_autolfads.model.artifact import check_model_path, model_path_for, stage_model
from nwb_autolfads.model.inference import infer_merged
from nwb_autolfads.model.lfads import LFADS
from nwb_autolfads.model.observations import Composite, ObservationModel, get_observation
from nwb_autolfads.plan import stacked_share, training_plan
from nwb_autolfads.provenance import estimate_of, make_record, model_metadata
from nwb_autolfads.rundir import choose_rundir, prepare_rundir, remove_rundir
from nwb_autolfads.run_result import RunResult, _renamed
from nwb_autolfads.train.devices import resolve_device, seed_everything
from nwb_autolfads.train.isolation import planned_steps, train_single
from nwb_autolfads.train.loop import TrainResult, split_train_valid, time_steps
from nwb_autolfads.train.pbt.embedded import train_population
from nwb_autolfads.train.resources import Execution, choose_execution, using_threads

__all__ = ["RunResult", "FitResult", "StageClock", "run", "fit_signal", "infer_signal"]

# names that lived here before the plan, the run directory and the provenance had modules of their own
from nwb_autolfads.plan import WORKER_START_SECONDS  # noqa: E402,F401
from nwb_autolfads.provenance import observation_name  # noqa: E402,F401
from nwb_autolfads.rundir import RUN_FINGERPRINT, default_rundir  # noqa: E402,F401

log = logging.getLogger(__name__)


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


@dataclass
class FitResult:
    """What :func:`fit_signal` produced: per-segment merged outputs in model units."""

    mean: list[np.ndarray]  # per segment (n_bins, C): E[x] in scaled units
    factors: list[np.ndarray]  # per segment (n_bins, F)
    inferred_inputs: list[np.ndarray]  # per segment (n_bins, co_dim)
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
    session: int | None = None
    """For a model of several sessions, the session these data went through (its read-in/out)."""

    inputs = _renamed("inputs", "inferred_inputs")  # the former name


@dataclass
class SourceData:
    """What the read stage took from the source (:func:`_read_source`)."""

    source: Source
    """Where the source is (local, URL, DANDI)."""
    path: Path | Any
    """How the stages open it: a local Path, or the remote Source."""
    identifier: str
    """The source's NWB identifier."""
    signals: dict[str, Any]
    """Per modality in ``data.modalities``: its signal as read (the EMG lazily: see ``emg``)."""
    trial_times: np.ndarray | None
    """Alignment time of each trial (trial-aligned mode), else None."""
    score_targets: list[str]
    """What ``evaluate`` can score the run against."""
    others: list[str]
    """Other EMG-like series, not modelled."""
    doubt: str | None
    """Why the EMG does not look like EMG (None when nothing speaks against it)."""
    emg: BinnedEmg | None = None
    """The EMG preprocessed onto its bins (:func:`_preprocess`), while the file was open."""
    runs: tuple[str, ...] = ()
    """The names of the nwb-autolfads runs the source holds already (``processing/autolfads``)."""


@dataclass
class OutputPlan:
    """Where the result goes (:func:`_plan_output`), checked before any work."""

    path: Path
    """The file written: the output, or the source itself with ``in_place``."""
    write: bool
    in_place: bool
    overwrite: bool
    run_name: str | None
    rundir: Path | None
    """Where the training state is kept (None without a file written)."""
    resumed: bool
    """The run directory was named with ``--resume`` (then it is kept after the write)."""
    fresh: bool
    model: Path | None = None
    """The model folder to save (None: none), checked before any work."""


@dataclass
class ModelData:
    """The modelled modalities on one grid of bins (:func:`_bin`): per gap-free segment, the bin
    centres and each modality's model-ready columns."""

    bin_size: float
    bin_times: list[np.ndarray]
    """Per segment, (n_bins,) bin centres in seconds on the source's clock."""
    rectified: list[np.ndarray]
    """Per segment, (n_bins, C) binned rectified EMG in the source's units (C = 0 without EMG)."""
    blocks: dict[str, Binned] = field(default_factory=dict)
    """Per modality, its columns on these bins."""
    observations: dict[str, ObservationModel] = field(default_factory=dict)
    """Per modality, the observation model of its columns."""

    def add(self, name: str, block: Binned, observation: ObservationModel, masks: list[np.ndarray] | None) -> None:
        """Add modality ``name``'s columns; with ``masks``, keep only the bins they cover (per
        segment): every segment is split there."""
        self.blocks[name], self.observations[name] = block, observation
        if masks is not None:
            self.bin_times, self.rectified, *segments = split_where(
                masks, self.bin_times, self.rectified, *(b.segments for b in self.blocks.values()))
            for b, segs in zip(self.blocks.values(), segments):
                b.segments = segs

    def cut_trials(self, trial_times: np.ndarray, cfg: RunConfig) -> RunConfig:
        """Trial-aligned mode: one window per trial (:func:`~nwb_autolfads.data.grid.trial_windows`);
        returns ``cfg`` with windows of the trial window's bins."""
        n_bins = int(round((cfg.data.window[1] - cfg.data.window[0]) / self.bin_size))
        self.bin_times, self.rectified, *segments = trial_windows(
            trial_times, cfg.data.window[0], n_bins, cfg.model.lead_in_bins, self.bin_size, self.bin_times,
            self.rectified, *(b.segments for b in self.blocks.values()))
        for b, segs in zip(self.blocks.values(), segments):
            b.segments = segs
        return cfg.updated({"windows.window_bins": n_bins,
                            "windows.overlap_bins": min(cfg.windows.overlap_bins, n_bins - 1)})

    def columns(self) -> list[tuple[str, Binned, slice]]:
        """(modality, its block, its model columns), in the model's column order (:attr:`Modality.rank`)."""
        out, start = [], 0
        for name in sorted(self.blocks, key=lambda n: modality(n).rank):
            width = len(self.blocks[name].channel_names)
            out.append((name, self.blocks[name], slice(start, start + width)))
            start += width
        return out

    def segments(self) -> list[np.ndarray]:
        """Per segment, (n_bins, C) the model's input: every modality's columns side by side."""
        blocks = [b for _, b, _ in self.columns()]
        return [np.concatenate([b.segments[k] for b in blocks], axis=1) for k in range(len(self.bin_times))]

    def observation(self) -> ObservationModel:
        """The distribution of each column: one modality's, or a composite of theirs."""
        parts = [(self.observations[name], sl.stop - sl.start) for name, _, sl in self.columns()]
        return parts[0][0] if len(parts) == 1 else Composite(parts)

    def to_source(self, values: np.ndarray, covered: np.ndarray) -> dict[str, np.ndarray]:
        """Model units (n_bins, C) -> per modality its columns in the source's units, covered bins only."""
        return {name: compact_float(b.to_source(values[:, sl])[covered]) for name, b, sl in self.columns()}


def run(path: str | Path, output: str | Path | None = None, *, preset: str | None = None,
        config: RunConfig | str | Path | None = None, overrides: Mapping[str, Any] | None = None,
        emg: str | None = None, seed: int | None = None, device: str | None = None, overwrite: bool = False,
        in_place: bool = False, run_name: str | None = None, write: bool = True,
        progress: bool = True, command: str | None = None, resume: str | Path | None = None,
        fresh: bool = False, save_model: bool | str | Path | None = None) -> RunResult:
    """Estimate muscle activation (and firing rates) from an NWB file with AutoLFADS.

    Reads the EMG (and/or the units) of ``path``, preprocesses and bins it, chops it into
    windows, trains LFADS (one model, or a population tuned by population-based training), infers
    the denoised signals, merges the windows back and writes them with the run's provenance into
    an NWB file (``processing/autolfads/<run name>``, the ndx-autolfads extension).

    Parameters
    ----------
    path : str or pathlib.Path
        The source: an NWB file (HDF5, or an NWB Zarr store) opened read-only and never modified;
        a local path, an http(s) URL, or a DANDI asset (``dandi://dandi/<id>[@version]/<path>``
        or ``DANDI:<id>/<path>``), streamed.
    output : str or pathlib.Path, optional
        Output NWB path; default ``<stem>_autolfads.nwb`` beside the input (DANDI-style
        ``sub-X_ses-Y_desc-autolfads_emg.nwb`` for DANDI-named inputs; for a remote input, in
        the current directory).
    preset : str, optional
        ``smoke`` (a pipeline check: a tiny model trained for a few dozen steps, not a result
        to use), ``quick`` (minutes), ``default`` (the full method) or ``paper``.
    config : RunConfig, str or pathlib.Path, optional
        A :class:`~nwb_autolfads.config.RunConfig`, or the path of a YAML config file (see
        :func:`~nwb_autolfads.config.build_config` for how it combines with ``preset``).
    overrides : mapping, optional
        Extra settings, nested or dotted (``{"train.max_steps": 1000}``); they win over the
        preset and the config.
    emg : str, optional
        Object path of the EMG series (``acquisition/EMG``); found automatically if None.
    seed : int, optional
        Shortcut for the ``seed`` setting (non-negative).
    device : str, optional
        Shortcut for the ``device`` setting: ``auto``, ``cpu`` or ``cuda``.
    overwrite : bool
        Replace an existing output file.
    in_place : bool
        Add the results to the input file itself instead of writing a new file (the input is
        updated atomically: an interruption leaves it untouched or complete). What a new file
        holds is the setting ``output.content``: ``results`` (the results and where the source
        is; the default for remote inputs) or ``full`` (a copy of the source's content too; the
        default for local files).
    run_name : str, optional
        Name of the run's container in ``processing/autolfads`` (default ``run_<UTC start
        time>``; a suffix keeps names unique).
    write : bool
        Set False to compute without writing a file (``RunResult.output`` is then None).
    progress : bool
        Show progress bars (stderr).
    command : str, optional
        How the run was started, for the provenance (the CLI passes its command line).
    resume : str or pathlib.Path, optional
        Run directory of an interrupted run to continue. Without it, a run that writes a file
        keeps its state in ``.<output name>.rundir`` beside the output (every validation check
        for one model, every generation for a population) and the same command run again after
        a crash continues from there; the directory is removed once the output is written. A
        run directory left by a run with other data or settings is never deleted: the run is
        refused unless ``fresh``.
    fresh : bool
        Start afresh even when the run directory holds an interrupted run with other data or
        settings; its state is moved aside to ``<rundir>.<UTC time>``, never deleted.
    save_model : bool, str or pathlib.Path, optional
        Keep the trained model (:mod:`nwb_autolfads.model.artifact`) for
        :func:`nwb_autolfads.apply`: a folder path, True (``<output stem>.autolfads-model``
        beside the output; needs ``write``) or False. None (default): the setting
        ``output.save_model`` (true) for a run that writes a file, none without. An existing
        folder is replaced only with ``overwrite``; the output records the model's path and
        SHA-256 (``RunResult.model``, ``RunResult.model_sha256``).

    Returns
    -------
    RunResult
        The estimates on the model's bins (``times``, seconds on the source's clock):
        ``activations`` (n_bins, C) in the source's units, ``rates`` (n_bins, U) in Hz,
        ``factors``, ``inferred_inputs``, the credible interval's bounds when sampled,
        the training history, the output path and :meth:`RunResult.summary`.

    Raises
    ------
    ConfigError
        A setting, the preset, the config file or the option combination is invalid (e.g. a
        ``RunConfig`` together with ``preset``, ``resume`` with ``fresh``, ``output`` with
        ``in_place``), or the run directory holds another run's state.
    InputFileError
        The source is missing, unreadable, not NWB, or a remote source cannot be reached.
    SignalNotFoundError
        No EMG (or no units) to model, or ``emg`` names no usable series.
    SignalError
        The signal cannot be modelled (implausible rate, timestamps, shape or spike times;
        too short for one window).
    OutputError
        The output exists (without ``overwrite``), its folder is missing or read-only, or
        another run is writing it.
    StateFormatError
        The run directory holds training state of another version of nwb-autolfads (kept;
        ``fresh`` moves it aside).
    TrainingError
        Training diverged or the trained model produced NaN/inf: nothing is written.

    Notes
    -----
    The stages and their published sources are described in the repository's documentation
    (docs/science.md, EMG preprocessing; Windows and merging; LFADS; Training objective;
    Augmentations; Population-based training; Inference).

    References
    ----------
    Wimalasena LN et al. (2022), J. Neural Eng. 19:036013 (LFADS on EMG); Keshtkaran MR et al.
    (2022), Nature Methods 19:1572 (AutoLFADS); Pandarinath C et al. (2018), Nature Methods
    15:805 (LFADS).
    """
    clock, started, t_start = StageClock(), datetime.now(timezone.utc), time.perf_counter()
    source = resolve_source(path)
    cfg = _resolve_config(source, preset, config, overrides, emg=emg, seed=seed, device=device, in_place=in_place,
                          resume=resume, fresh=fresh)
    if isinstance(config, RunConfig):  # build_config warned otherwise (apply reuses a trained model's: not here)
        warn_interval_samples(cfg.inference)
    with open_nwb(source.path if not source.remote else source) as (_io, nwbfile):
        source_data = _read_source(nwbfile, source, cfg)
        target = _plan_output(source_data, cfg, output, write=write, in_place=in_place, overwrite=overwrite,
                              run_name=run_name, resume=resume, fresh=fresh, save_model=save_model, started=started)
        clock.mark("read")
        cfg = _preprocess(source_data, cfg, progress)  # while the file is open: big recordings are read in chunks
    with OutputLock(target.path) if target.write else contextlib.nullcontext():
        return _run_locked(source_data, target, cfg, clock, started=started, t_start=t_start, progress=progress,
                           command=command)


# ---- the stages of `run`, in order


def _resolve_config(source: Source, preset: str | None, config: RunConfig | str | Path | None,
                    overrides: Mapping[str, Any] | None, *, emg: str | None, seed: int | None, device: str | None,
                    in_place: bool, resume: str | Path | None, fresh: bool) -> RunConfig:
    """The configuration, resolved once: preset, file or object, overrides and the shortcuts
    (``emg``, ``seed``, ``device``), every option checked; ``output.content`` chosen for the
    source (by default only the results for a remote source: nothing downloaded whole)."""
    extra = {key: value for key, value in (("data.emg", emg), ("seed", seed), ("device", device))
             if value is not None}
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
    content = "full" if in_place else cfg.output.content or ("results" if source.remote else "full")
    return cfg.updated({"output.content": content}) if content != cfg.output.content else cfg


def _read_source(nwbfile, source: Source, cfg: RunConfig) -> SourceData:
    """Read every modality of ``data.modalities`` (the EMG lazily), the trials' alignment times,
    and what else the file holds that matters (other EMG-like series, what ``evaluate`` can score)."""
    signals = {name: modality(name).read(nwbfile, cfg) for name in cfg.data.modalities}
    sig = signals.get("emg")
    doubt, others = _emg_notes(nwbfile, sig, cfg) if sig is not None else (None, [])
    return SourceData(source=source, path=source.path if not source.remote else source, identifier=nwbfile.identifier,
                  signals=signals, trial_times=read_trial_times(nwbfile, cfg.data.align_to) if cfg.data.align_to
                  else None, score_targets=_score_targets(nwbfile, sig is not None, "spikes" in signals),
                  others=others, doubt=doubt, runs=tuple(nwbfile.processing[OUTPUT_MODULE].data_interfaces)
                  if OUTPUT_MODULE in nwbfile.processing else ())


def _emg_notes(nwbfile, sig, cfg: RunConfig) -> tuple[str | None, list[str]]:
    """(why the EMG does not look like EMG, other EMG-like series not modelled), each warned about."""
    chosen = find_emg(nwbfile, cfg.data.emg)
    doubt = emg_doubt(chosen)
    if doubt and cfg.data.emg is None:
        raise SignalError(f"the only EMG-like series, {chosen.path}, does not look like EMG ({doubt}): not modelled "
                          f"without being asked; if it is the EMG, pass --emg {chosen.path}, else pass the EMG's series "
                          "with --emg PATH (`nwb-autolfads inspect` lists them)")
    if doubt:
        log.warning("%s does not look like EMG (%s): it is modelled as EMG because it was chosen with --emg; "
                    "check with `nwb-autolfads inspect` that it is the EMG", sig.source_path, doubt)
    others = [c.path for c in iter_series(nwbfile) if c.score > 0
              and c.path != sig.source_path and not c.path.startswith(sig.source_path + "/")]
    if others and cfg.data.emg is None:  # found automatically: say what else could be the EMG
        log.warning("modelling %s (%d channels) as the EMG; %d other EMG-like series are not modelled: %s. "
                    "Choose one with --emg PATH; EMG stored as one 1-D series per muscle is modelled together "
                    "when the series sit in one container (e.g. a BehavioralTimeSeries)", sig.source_path,
                    sig.n_channels, len(others), ", ".join(others[:8]) + (", ..." if len(others) > 8 else ""))
    return doubt, others


def _score_targets(nwbfile, emg: bool, spikes: bool) -> list[str]:
    """What ``evaluate`` can score a run against in ``nwbfile`` (as :mod:`~nwb_autolfads.evaluation.comparison`
    finds it): kinematics and force series, the units (for an EMG run) and ground truth."""
    from nwb_autolfads.io.series import modality_of

    found = {modality_of(c) for c in iter_series(nwbfile)}
    out = [m for m in ("kinematics", "force") if m in found]
    if emg and nwbfile.units is not None and len(nwbfile.units):
        out.append("spikes")
    truth = nwbfile.processing.get("ground_truth")
    names = set(truth.data_interfaces) if truth is not None else set()
    if (emg and "true_activations" in names) or (spikes and "true_rates" in names):
        out.append("ground truth")
    return out


def _plan_output(source_data: SourceData, cfg: RunConfig, output: str | Path | None, *, write: bool, in_place: bool,
                 overwrite: bool, run_name: str | None, resume: str | Path | None, fresh: bool,
                 save_model: bool | str | Path | None = False, started: datetime | None = None) -> OutputPlan:
    """Where the result goes, checked before any work: the output file (default beside the source,
    or in the current directory for a remote one), or the source itself with ``in_place``; the
    run directory that keeps the training state; and the model folder (:func:`_model_folder`).
    When the file written will hold earlier runs too (``in_place``, or a full copy of a source
    that holds runs), the run's name is fixed here (``run_name``, else from ``started``; made
    unique among them) and names the model folder."""
    source = source_data.source
    out_path = Path(output) if output is not None else default_output_path(
        Path(source.name) if source.remote else source_data.path, MODALITY_SEPARATOR.join(cfg.data.modalities))
    if write and in_place:
        if output is not None:
            raise ConfigError("give either --output or --in-place, not both")
        if source.remote:
            raise ConfigError(f"--in-place cannot change a remote file ({source.spec}): leave out --in-place to "
                              "write the results to a new local file")
        check_in_place(source_data.path)
    elif write:
        check_output_path(out_path, None if source.remote else source_data.path, overwrite,
                          cfg.output.content)  # fail before training
    target = source_data.path if in_place else out_path
    accumulates = write and (in_place or (cfg.output.content == "full" and bool(source_data.runs)))
    check_run_name(run_name, source_data.runs if accumulates else ())
    if accumulates:  # the name the writer gives it (the in-place write checks that the file is unchanged)
        run_name = unique_run_name(source_data.runs, run_name or default_run_name(
            (started or datetime.now(timezone.utc)).isoformat()))
    model = _model_folder(save_model, cfg, target, write, run_name if accumulates else None)
    if model is not None:
        check_model_path(model, overwrite)
    return OutputPlan(path=target, write=write, in_place=in_place, overwrite=overwrite, run_name=run_name,
                      rundir=choose_rundir(resume, target, write), resumed=resume is not None, fresh=fresh,
                      model=model)


def _model_folder(save_model: bool | str | Path | None, cfg: RunConfig, target: Path, write: bool,
                  run_name: str | None = None) -> Path | None:
    """Where the trained model is saved (None: nowhere): ``save_model`` as a path, or with True
    (None: ``output.save_model`` when a file is written) beside the output file ``target``
    (:func:`~nwb_autolfads.model.artifact.model_path_for`; named after ``run_name`` when given:
    a file that holds other runs)."""
    if save_model is None:
        save_model = cfg.output.save_model and write
    if isinstance(save_model, (str, Path)):
        return Path(save_model)
    if save_model and not write:
        raise ConfigError("save_model=True keeps the model beside the output file, and write=False writes none: "
                          "give save_model a folder path (e.g. 'session.autolfads-model')")
    return model_path_for(target, run_name) if save_model else None


def _preprocess(source_data: SourceData, cfg: RunConfig, progress: bool, scaling: tuple | None = None) -> RunConfig:
    """Preprocess the EMG onto its bins (its ``auto`` settings as found are saved in the returned
    config, and repeated by ``evaluate``); nothing to do without EMG. ``scaling``: the EMG's
    (clip levels, scales) to use instead of estimating them (a saved model's)."""
    if "emg" not in source_data.signals:
        return cfg
    source_data.emg = modality("emg").preprocess(source_data.signals["emg"], cfg, progress=progress, scaling=scaling)
    resolved = source_data.emg.preprocessed.resolved  # e.g. the line frequency
    return cfg.updated({f"preprocess.{key}": value for key, value in resolved.items()}) if resolved else cfg


def _run_locked(source_data: SourceData, target: OutputPlan, cfg: RunConfig, clock: StageClock, *, started: datetime,
                t_start: float, progress: bool, command: str | None) -> RunResult:
    """The stages after the source is read and the output checked, under the output's lock: bin,
    fit, collect, and with a file to write, the provenance record and the write (:func:`_keep`)."""
    source_sha256 = _source_sha256(source_data, target)  # before training: an in-place write checks it is unchanged
    data, cfg = _bin(source_data, cfg)
    clock.mark("preprocess")
    fit = fit_signal(data.segments(), data.bin_size, data.observation(), cfg, progress=progress,
                     rundir=target.rundir, resume=target.resumed, fresh=target.fresh, clock=clock)
    result = _collect(source_data, data, fit, cfg)
    return _keep(result, fit, data, source_data, target, clock, source_sha256=source_sha256, started=started,
                 t_start=t_start, command=command)


def _source_sha256(source_data: SourceData, target: OutputPlan) -> str:
    """The source's SHA-256 when a file or a model is written, else "". A remote file is not hashed
    (that would download all of it): a DANDI asset's SHA-256 is the one the archive publishes,
    another URL has none; its identity is recorded in the provenance's ``source``."""
    return input_sha256(source_data.source) if target.write or target.model is not None else ""


def _keep(result: RunResult, fit: "FitResult", data: "ModelData", source_data: SourceData, target: OutputPlan,
          clock: StageClock, *, source_sha256: str, started: datetime, t_start: float,
          command: str | None) -> RunResult:
    """The last stages, shared by :func:`run` and :func:`nwb_autolfads.apply`: with a file to write,
    the provenance record and the write; with a model folder planned, the trained model (its
    weights staged first, so that the output records their SHA-256; moved into place after the
    output is written, removed if it is not)."""
    staged = stage_model(target.model, fit.model) if target.model is not None else None
    try:
        if staged is not None:
            result.model, result.model_sha256 = target.model.resolve(), staged.sha256
        with uninterrupted("the output and the model folder"):  # a signal after the rename lost the model
            if target.write:
                record = make_record(result, fit, data.blocks, data.bin_times, data.bin_size,
                                     source=source_data.source, path=source_data.path,
                                     identifier=source_data.identifier, source_sha256=source_sha256, started=started,
                                     finished=datetime.now(timezone.utc), doubt=source_data.doubt, command=command,
                                     run_name=target.run_name)
                try:
                    result.output, result.run_name = write_results(
                        source_data.path, None if target.in_place else target.path, record,
                        overwrite=target.overwrite, in_place=target.in_place, content=result.config.output.content)
                except OutputError as exc:
                    if target.rundir is None or not Path(target.rundir).is_dir():
                        raise
                    raise OutputError(f"{exc}; the trained state is kept in {str(target.rundir)!r}: once that is "
                                      "fixed, the same command writes the result without training again") from None
                remove_rundir(target.rundir, target.resumed)  # the result is written: the state is not needed
            if staged is not None:
                result.model = staged.commit(model_metadata(result, data.columns(), source_data, source_sha256),
                                             target.overwrite).resolve()
        if target.write or staged is not None:
            clock.mark("write")
    finally:
        if staged is not None:
            staged.discard()  # nothing once committed; the weights when the output could not be written
    result.stages = clock.stages
    result.seconds = time.perf_counter() - t_start
    return result



def _bin(source_data: SourceData, cfg: RunConfig,
         scalings: Mapping[str, tuple] | None = None) -> tuple[ModelData, RunConfig]:
    """Every modality on one grid of bins (:func:`_grid`), then the others binned onto it in the
    model's column order, each keeping only the bins it covers; in trial-aligned mode one window
    per trial; windows fitted to short segments. ``scalings``: per modality, the (offsets, scales)
    to use instead of estimating them (a saved model's). Returns the data and ``cfg`` resolved
    for them."""
    data, signals = _grid(source_data, cfg)
    for name in sorted(signals, key=lambda n: modality(n).rank):
        if name in data.blocks:
            continue
        entry = modality(name)
        block, masks = entry.bin(signals[name], data.bin_times, data.bin_size, cfg.windows.gap_factor,
                                 **({"scaling": scalings[name]} if scalings and name in scalings else {}))
        data.add(name, block, get_observation(entry.observation_name(cfg)), masks)
    if source_data.trial_times is not None:  # trial-aligned mode: one window per trial
        cfg = data.cut_trials(source_data.trial_times, cfg)
    cfg = fit_windows(cfg, [len(t) for t in data.bin_times], data.bin_size)
    cfg = cfg.resolved(data.columns()[-1][2].stop)  # the model's channel count
    if data.bin_size != cfg.windows.bin_size:
        cfg = cfg.updated({"windows.bin_size": data.bin_size})
    return data, cfg


def _grid(source_data: SourceData, cfg: RunConfig) -> tuple[ModelData, dict[str, Any]]:
    """The model's bins: the EMG's (its preprocessing defines them; the spikes must lie in its time),
    or without EMG bins of the spikes' own spanning every spike. Returns the grid (with the EMG's
    columns) and the signals to bin onto it (the units as checked)."""
    signals, spikes = dict(source_data.signals), modality("spikes")
    emg = source_data.emg
    if emg is not None:
        pre = emg.preprocessed
        data = ModelData(bin_size=pre.bin_size, bin_times=pre.bin_times, rectified=list(pre.rectified))
        data.add("emg", emg, get_observation(cfg.model.observation), None)
        if "spikes" in signals:  # binned on the EMG's bins: those outside its segments are not modelled
            signals["spikes"] = spikes.within(signals["spikes"], data.bin_times, data.bin_size,
                                              f"the EMG's time ({emg.source_path})", cfg.data.bad_units)
        return data, signals
    bin_size = cfg.windows.bin_size if cfg.windows.bin_size is not None else DEFAULT_BIN_SIZE
    signals["spikes"], centres = spikes.own_bins(signals["spikes"], bin_size, cfg.data.bad_units)
    return ModelData(bin_size=bin_size, bin_times=[centres], rectified=[np.zeros((len(centres), 0))]), signals


def _collect(source_data: SourceData, data: ModelData, fit: "FitResult", cfg: RunConfig) -> RunResult:
    """The fit's outputs on the bins a window covers, in the source's units, as a :class:`RunResult`
    (the credible interval's bounds converted exactly like the means). Each block of ``data``
    gets its channels' fit statistic (:func:`_channel_fits`)."""
    _channel_fits(data, fit)
    mean = np.concatenate(fit.mean)
    covered = _covered(fit, mean, data.bin_size)
    values = data.to_source(mean, covered)
    bands, lower, upper = _bands(data, fit, cfg, covered) if fit.lower is not None else ({}, {}, {})
    estimates = {name: estimate_of(name, b, values[name], cfg, lower.get(name), upper.get(name))
                 for name, b, _ in data.columns() if name not in ("emg", "spikes")}
    times, factors, inferred, rectified = (a[covered] for a in (
        np.concatenate(data.bin_times), np.concatenate(fit.factors), np.concatenate(fit.inferred_inputs),
        np.concatenate(data.rectified)))
    emg, spikes = data.blocks.get("emg"), data.blocks.get("spikes")
    empty = mean[:, :0][covered]
    return RunResult(
        output=None, source=source_data.path, config=cfg, source_path=emg.source_path if emg else "units",
        channel_names=list(emg.channel_names) if emg else [], emg_unit=emg.unit if emg else "Hz", times=times,
        activations=compact_float(values.get("emg", empty)), rates=compact_float(values.get("spikes", empty)),
        unit_ids=list(spikes.units.ids) if spikes else [], factors=factors.astype(np.float32),
        inferred_inputs=inferred.astype(np.float32), rectified=compact_float(rectified),
        preprocessing_steps=emg.preprocessed.steps if emg else [], training=fit.training,
        n_windows=fit.index.n_windows, n_train=fit.n_train, n_valid=fit.n_valid, seconds=0.0, device=fit.device,
        plan=fit.plan, other_candidates=source_data.others, chosen_by="--emg" if cfg.data.emg else "found automatically",
        doubt=source_data.doubt, score_targets=list(source_data.score_targets), estimates=estimates, **bands)


def _channel_fits(data: ModelData, fit: "FitResult") -> None:
    """Set each block's ``fit``: per channel, how well the estimate explains its input
    (:func:`~nwb_autolfads.evaluation.fit_check.channel_fit`), what a saved model records of its
    training data and ``apply`` checks new data against."""
    columns = data.columns()
    counts = np.concatenate([np.full(sl.stop - sl.start, b.counts) for _, b, sl in columns])
    values = channel_fit(data.segments(), fit.mean, counts)
    for _, b, sl in columns:
        b.fit = values[sl]


def _covered(fit: "FitResult", mean: np.ndarray, bin_size: float) -> np.ndarray:
    """(n_bins,) True where a window covers the bin. Bins no window covers (segments shorter than
    a window, lead-in bins) have no estimate: they are left out of the results. A non-finite
    value anywhere else is a numerical fault, never written (:class:`TrainingError`)."""
    covered = np.isfinite(np.concatenate(fit.coverage)[:, 0])
    outputs_finite = np.all(np.isfinite(mean), axis=1) & np.all(np.isfinite(np.concatenate(fit.factors)), axis=1)
    if np.any(covered & ~outputs_finite):
        raise TrainingError(f"the trained model produced NaN/inf for {int(np.sum(covered & ~outputs_finite))} bins: "
                            "nothing was written; lower train.lr (or pbt.lr.high) or check the input data")
    if not covered.all():
        log.warning("%d bins (%.1f s) that no window covers are left out of the results", int((~covered).sum()),
                    (~covered).sum() * bin_size)
    return covered


def _bands(data: ModelData, fit: "FitResult", cfg: RunConfig, covered: np.ndarray) -> tuple[dict, dict, dict]:
    """The credible interval's bounds in the source's units: (the RunResult fields of the EMG's and
    the units' bounds and the calibration, then per modality its lower and its upper bounds)."""
    lower, upper = np.concatenate(fit.lower), np.concatenate(fit.upper)
    if np.any(covered & ~(np.isfinite(lower).all(axis=1) & np.isfinite(upper).all(axis=1))):
        raise TrainingError("the trained model's posterior samples gave NaN/inf interval bounds: nothing was "
                            "written; lower train.lr (or pbt.lr.high), or set inference.interval: null")
    lower, upper, calibration, check = _calibrated_band(data, fit, cfg)
    lo, hi = data.to_source(lower, covered), data.to_source(upper, covered)
    empty = lower[:, :0][covered]
    return ({"interval": cfg.inference.interval, "activations_lower": compact_float(lo.get("emg", empty)),
             "activations_upper": compact_float(hi.get("emg", empty)),
             "rates_lower": compact_float(lo.get("spikes", empty)),
             "rates_upper": compact_float(hi.get("spikes", empty)), "interval_calibration": calibration,
             "lowpass_check": check}, lo, hi)


def _calibrated_band(data: ModelData, fit: "FitResult", cfg: RunConfig
                     ) -> tuple[np.ndarray, np.ndarray, dict, dict | None]:
    """The posterior band of ``fit`` widened by the model's error (:mod:`nwb_autolfads.evaluation.calibration`),
    in model units, per channel of ``data`` (counts for the spikes; not clipped at 0 for signed
    continuous inputs). Returns (lower, upper), each (n_bins, C) over all segments, the
    per-channel error estimates in the source's units for the provenance (spikes: Hz; the EMG and
    continuous inputs: times their scales), by modality, and the EMG's check against a low-pass
    made from the same estimates (:func:`_lowpass_check`; None without EMG). The noise the model
    follows is measured with probes through ``fit``'s model (:func:`_responder`)."""
    interval = cfg.inference.interval
    columns = data.columns()
    signed = np.concatenate([np.full(sl.stop - sl.start, b.signed) for _, b, sl in columns])
    segments = data.segments()
    # the noise from the data's differences for every channel, spike counts too (poisson=None): the
    # Poisson variance takes the counts' mean from the estimate and inherits its bias (calibration's
    # module docstring). The first pass gives the noise's size per level the probes are drawn with
    first = estimate_errors(segments, fit.mean)
    followed = copied_noise(_responder(fit, cfg), segments, fit.mean, first, seed=SeedTree(cfg.seed).integer("calibration"))
    errors = estimate_errors(segments, fit.mean, copied=followed)
    parts = [widen_band(m, lo, hi, errors, interval, signed=signed)
             for m, lo, hi in zip(fit.mean, fit.lower, fit.upper)]
    record = {"method": "residual beyond the observation noise and the noise the model follows (probes), per "
                        "channel and level (nwb_autolfads.evaluation.calibration)",
              "z": round(normal_quantile(interval), 4)}
    for _, b, sl in columns:
        record[b.error_key] = {ch: errors[sl.start + i].as_dict(b.error_scale(i), b.error_offset(i))
                               for i, ch in enumerate(_unique(b.channel_names))}
    check = _lowpass_check(data, segments, fit, errors, followed)
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), record, check)


def _lowpass_check(data: ModelData, segments: list[np.ndarray], fit: "FitResult", errors: list,
                   followed: list[np.ndarray]) -> dict | None:
    """The EMG's estimates against the best low-pass of the same binned EMG, without the truth
    (:func:`~nwb_autolfads.evaluation.risk.compare_with_lowpass`, from the band's noise and probe
    estimates on the model's input ``segments``), with the channels where the low-pass's estimated
    r2 is above the model's by more than :data:`~nwb_autolfads.evaluation.risk.MAX_LOSS`; None
    without EMG."""
    emg = [(b, sl) for name, b, sl in data.columns() if name == "emg"]
    if not emg:
        return None
    b, sl = emg[0]
    noise_var = [s[:, sl] ** 2 for s in noise_sd(errors, fit.mean)]
    checks = compare_with_lowpass([x[:, sl] for x in segments], [m[:, sl] for m in fit.mean], noise_var,
                                  [f[:, sl] for f in followed], data.bin_size)
    return lowpass_verdict(dict(zip(_unique(b.channel_names), checks)))


def _unique(names) -> list[str]:
    """``names`` as strings, a repeated one suffixed by its occurrence (TA, TA#2) so no entry of a
    record keyed by name is lost."""
    seen: dict[str, int] = {}
    out = []
    for name in map(str, names):
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return out


def _responder(fit: "FitResult", cfg: RunConfig):
    """The estimate as a function of the input for :func:`~nwb_autolfads.evaluation.calibration.copied_noise`:
    per segment (n_bins, C) input -> per segment (n_bins, C) posterior-mean estimate, chopped and
    merged as ``fit`` was, through ``fit``'s model (and session) with its weights fixed."""
    w, lead = cfg.windows, cfg.model.lead_in_bins
    means_only = replace(cfg.inference, mode="mean", interval=None)
    device = next(fit.model.parameters()).device
    extra = {"session": fit.session} if fit.session is not None else {}

    def respond(segments: list[np.ndarray]) -> list[np.ndarray]:
        windows, index = chop_segments([np.asarray(x, np.float32) for x in segments], w.window_bins + lead,
                                       w.overlap_bins + lead)
        return infer_merged(fit.model, torch.from_numpy(windows).to(device), index, means_only, w.merge_power, lead,
                            **extra).mean
    return respond


def fit_signal(segments: list[np.ndarray], bin_size: float, observation: ObservationModel, cfg: RunConfig,
               progress: bool = True, rundir: str | Path | None = None, resume: bool = False,
               fresh: bool = False, clock: StageClock | None = None) -> FitResult:
    """Chop, train, infer and merge. ``segments``: per gap-free segment, (n_bins, C) model-ready
    data; ``observation``: the distribution of each channel. ``cfg`` must be resolved for the
    channel count (:meth:`RunConfig.resolved`). ``rundir``: where the training state is kept
    (and resumed from); ``resume``: it was named by the user; ``fresh``: a run directory of a run
    with other data or settings is moved aside instead of refused. ``clock``: marks the ``train``
    and ``infer`` stages."""
    windows, index = _chop(segments, bin_size, cfg)
    device = resolve_device(cfg.device)  # before the run directory is made: a bad option leaves nothing
    if cfg.pbt.population > 1 and cfg.pbt.backend == "ray":
        from nwb_autolfads.train.pbt.ray_executor import train_population_ray  # noqa: F401  (a missing Ray fails here, before any state)
    if rundir is not None:
        prepare_rundir(Path(rundir), cfg, segments, explicit=resume, fresh=fresh)
    seed_everything(cfg.seed)
    train_idx, valid_idx = split_train_valid(index.n_windows, cfg.windows.valid_every)
    x_all = torch.from_numpy(windows).to(device)
    data = TrainingData(x_all[train_idx], x_all[valid_idx], observation)
    model, result, plan = train_data(data, cfg, device, rundir, progress)
    if clock is not None:
        clock.mark("train")
    fit = _infer(model, x_all, index, cfg, result, progress=progress, n_train=int(train_idx.size),
                 n_valid=int(valid_idx.size), plan={k: v for k, v in plan.items() if k != "text"})
    if clock is not None:
        clock.mark("infer")
    return fit


def infer_signal(segments: list[np.ndarray], bin_size: float, model: LFADS, cfg: RunConfig, progress: bool = True,
                 clock: StageClock | None = None, session: int | None = None) -> FitResult:
    """Chop, infer and merge with a trained ``model`` (no training): what :func:`fit_signal` does
    after training, with the same windows, inference settings and seed. ``segments``: per gap-free
    segment, (n_bins, C) model-ready data in the model's column order. ``clock``: marks ``infer``.
    ``session``: for a multi-session model, the session whose read-in/out the data go through."""
    windows, index = _chop(segments, bin_size, cfg)
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    fit = _infer(model.to(device), torch.from_numpy(windows).to(device), index, cfg, TrainResult(),
                 progress=progress, n_train=0, n_valid=0, plan={}, session=session)
    if clock is not None:
        clock.mark("infer")
    return fit


def _infer(model: LFADS, x_all: torch.Tensor, index: WindowIndex, cfg: RunConfig, training: TrainResult, *,
           progress: bool, n_train: int, n_valid: int, plan: dict, session: int | None = None) -> FitResult:
    """Posterior estimates of every window ``x_all`` (on the model's device), merged back onto
    the segments (the inference generator from the seed tree's ``inference`` stream).
    ``session``: a multi-session model's session the windows belong to (their own channels)."""
    device = x_all.device
    merged = infer_merged(model, x_all, index, cfg.inference, cfg.windows.merge_power, cfg.model.lead_in_bins,
                          progress=progress, generator=SeedTree(cfg.seed).torch("inference", device=device),
                          **({"session": session} if session is not None else {}))
    return FitResult(mean=merged.mean, factors=merged.factors, inferred_inputs=merged.inputs, ic_mean=merged.ic_mean,
                     training=training, coverage=merged.coverage, index=index, n_train=n_train, n_valid=n_valid,
                     device=str(device), model=model, plan=plan, lower=merged.lower, upper=merged.upper,
                     session=session)


def _chop(segments: list[np.ndarray], bin_size: float, cfg: RunConfig) -> tuple[np.ndarray, WindowIndex]:
    """The windows (with their lead-in) of ``segments`` and where they lie; at least two.

    Raises
    ------
    SignalError
        Fewer than two windows fit in the data.
    """
    w = cfg.windows
    lead = cfg.model.lead_in_bins  # windows carry a lead-in before the bins they model
    windows, index = chop_segments(segments, w.window_bins + lead, w.overlap_bins + lead)
    if index.n_windows < 2:
        longest = max(index.segment_lengths) * bin_size if index.segment_lengths else 0.0
        need = (w.window_bins + lead) * bin_size
        raise SignalError(f"recording too short: {index.n_windows} window(s) of {w.window_bins + lead} bins "
                          f"({need:g} s) fit in the longest gap-free segment ({longest:g} s, "
                          f"{max(index.segment_lengths, default=0)} bins); at least 2 are needed: use a longer "
                          "recording, smaller windows.window_bins / windows.bin_size, or --align-to COLUMN --window "
                          "START,STOP for one window per trial")
    uncovered = [n for n in index.segment_lengths if n < w.window_bins + lead]
    if uncovered:
        log.warning("%d segment(s) shorter than one window (%d bins): no window covers them, so they are left "
                    "out of the results", len(uncovered), w.window_bins + lead)
    if lead:
        log.info("the first %d bins of each segment are lead-in only (left out of the results)", lead)
    return windows, index


def train_data(data: TrainingData, cfg: RunConfig, device, rundir: str | Path | None,
               progress: bool) -> tuple[LFADS, TrainResult, dict]:
    """The one place training is called: one model (:func:`~nwb_autolfads.train.isolation.train_single`)
    or a population (embedded or Ray executor), after the plan is printed. ``data``: the training
    and validation windows on ``device`` (of one session, or of several: then the model has a
    read-in and a read-out per session). Returns (the trained model, its result, the plan)."""
    n_channels, population, n_sessions = data.n_channels, cfg.pbt.population, data.n_sessions
    n_train, n_valid = int(data.train.shape[0]), int(data.valid.shape[0])

    def make_model() -> LFADS:
        m = LFADS(n_channels, cfg.model, data.observation,
                  session_channels=data.session_channels if n_sessions > 1 else None).to(device)
        m.init_from_data(data)
        return m

    # the plan's steps are timed with the threads training will use (a step timed with torch's default
    # threads on a busy machine can take 10-50x one with the single thread training then uses), and
    # for a single model where it trains (in its child process: this one never holds a training step)
    timing_model = make_model()  # a throwaway model for timing the steps (the same in every execution mode)
    plan: dict = {}

    def announce(timing: tuple[float, float], stacked_timing: tuple[float, float] | None = None) -> None:
        plan.update(training_plan(cfg, n_train, n_valid, device, timing, execution, stacked_timing))
        if progress:
            sys.stderr.write(plan["text"] + "\n")
            sys.stderr.flush()

    if population > 1:  # chosen once: the plan states what the training then does
        execution = choose_execution(population, cfg.model, n_channels, device.type, workers=cfg.pbt.workers,
                                     threads=cfg.train.threads, execution=cfg.pbt.execution, sessions=n_sessions) \
            if cfg.pbt.backend == "embedded" else None
        announce(*_time_population(timing_model, data, cfg, execution))
        del timing_model
        if cfg.pbt.backend == "ray":
            from nwb_autolfads.train.pbt.ray_executor import train_population_ray as trainer
            how = {}
        else:
            trainer, how = train_population, {"execution": execution}
        model, result = trainer(make_model, data, cfg.model, cfg.train, cfg.augment, cfg.pbt, seed=cfg.seed, rundir=rundir, progress=progress, **how)
    else:
        with SeedTree(cfg.seed).initialising(0):  # the initial weights from the seed tree's init stream
            model = make_model()
        ck = Path(rundir) / "model_state.pt" if rundir is not None else None
        if ck is not None:
            ck.parent.mkdir(parents=True, exist_ok=True)
        work = planned_steps(cfg.train, n_train) * sum(p.numel() for p in model.parameters())
        execution = choose_execution(1, cfg.model, n_channels, device.type, threads=cfg.train.threads,
                                     execution=cfg.pbt.execution, work=work, sessions=n_sessions)
        log.info("training: %s", execution.describe())
        result = train_single(model, data, cfg.train, cfg.augment, execution,
                              progress=progress, checkpoint=ck, timing_model=timing_model,
                              on_timing=announce, seed=cfg.seed)  # in a child process, or here
        del timing_model
        result.execution = execution.describe()
    return model, result, plan


def _time_population(timing_model: LFADS, data: TrainingData, cfg: RunConfig,
                     execution: Execution | None) -> tuple[tuple[float, float], tuple[float, float] | None]:
    """(seconds per step and per check of one model, and for a stacked execution of one stacked
    program of a worker's block of members), timed on the data with the threads training will use."""
    with using_threads(execution.threads) if execution is not None else contextlib.nullcontext():
        timing = time_steps(timing_model, data, cfg.train, cfg.augment)
        if execution is None or execution.mode not in ("stacked", "stacked-processes"):
            return timing, None
        from nwb_autolfads.train.stacked import time_stacked

        return timing, time_stacked(timing_model, data, cfg.train, cfg.augment,
                                    configured_hyperparameters(cfg.model, cfg.train, cfg.augment),
                                    stacked_share(cfg.pbt.population, execution))  # a worker's block
