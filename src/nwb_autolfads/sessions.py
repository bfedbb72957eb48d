"""One model over several sessions: :func:`run_sessions` (docs/science.md, Multi-session models).

The sessions (recordings of one subject, possibly with other muscles or units each) share ONE
dynamical model (encoders, controller, generator, factors) and have each their own linear read-in
(their channels -> the model's inputs) and read-out (the shared factors -> their channels). Each
session is read, preprocessed (its own scales) and binned as :func:`nwb_autolfads.run` does it;
the windows of all sessions train the model together (one model, or a population under PBT); then
each session's windows are inferred through its own read-in/out and merged, and each session's
result is written into its own output file, whose provenance names every session of the model
(``sessions``, ndx-autolfads 0.6.0). The model is saved once, beside the first output.

May import what :mod:`nwb_autolfads.pipeline` imports, and the pipeline itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from nwb_autolfads.config import RunConfig, warn_interval_samples
from nwb_autolfads.data.timebase import same_bin_size
from nwb_autolfads.errors import ConfigError, NwbAutolfadsError, SignalError
from nwb_autolfads.io.reading import open_nwb
from nwb_autolfads.io.sources import resolve_source
from nwb_autolfads.io.writing import OutputLock, write_results
from nwb_autolfads.model.artifact import check_model_path, stage_model
from nwb_autolfads.pipeline import (FitResult, ModelData, OutputPlan, RunResult, SourceData, StageClock, _bin, _chop,
                                    _collect, _infer, _model_folder, _plan_output, _preprocess, _read_source,
                                    _resolve_config, _source_sha256, train_data)
from nwb_autolfads.provenance import make_record, model_metadata, session_entry
from nwb_autolfads.rundir import choose_rundir, prepare_rundir, remove_rundir
from nwb_autolfads.train.devices import resolve_device, seed_everything
from nwb_autolfads.train.loop import split_train_valid
from nwb_autolfads.train.training_data import TrainingData

log = logging.getLogger(__name__)

__all__ = ["run_sessions", "session_names"]


@dataclass
class _Session:
    """One session as the stages see it."""

    name: str
    source_data: SourceData
    target: OutputPlan
    cfg: RunConfig
    """Its configuration (its own resolved preprocessing), then with the shared windows and model."""
    data: ModelData | None = None
    sha256: str = ""


def session_names(paths: Sequence[str | Path]) -> list[str]:
    """A short unique name per session: the file's name without ``.nwb`` (``sub-A_ses-2_ecephys``),
    numbered where two are alike."""
    stems = []
    for p in paths:
        name = str(p).rstrip("/").rsplit("/", 1)[-1]
        for suffix in (".zarr", ".nwb"):
            name = name[: -len(suffix)] if name.endswith(suffix) else name
        stems.append(name or "session")
    return [s if stems.count(s) == 1 else f"{s}-{i}" for i, s in enumerate(stems)]


def run_sessions(paths: Sequence[str | Path], outputs: Sequence[str | Path] | None = None, *,
                 preset: str | None = None, config: RunConfig | str | Path | None = None,
                 overrides: Mapping[str, Any] | None = None, emg: str | None = None, seed: int | None = None,
                 device: str | None = None, overwrite: bool = False, write: bool = True, progress: bool = True,
                 command: str | None = None, fresh: bool = False, resume: str | Path | None = None,
                 save_model: bool | str | Path | None = None) -> list[RunResult]:
    """Train ONE model over several sessions and write each session's estimates to its own file.

    Parameters
    ----------
    paths : sequence of str or pathlib.Path
        Two or more NWB sources (local files, URLs or DANDI assets), e.g. the sessions of one
        subject; each opened read-only, never modified. They may hold other channels (muscles,
        units) each, but the same modality: ``emg`` or ``spikes`` (one model of several modalities
        over several sessions is not supported).
    outputs : sequence of str or pathlib.Path, optional
        One output NWB path per session; default beside each source, as :func:`nwb_autolfads.run`
        names it.
    preset, config, overrides, emg, seed, device, overwrite, write, progress, command, fresh
        As for :func:`nwb_autolfads.run`; the settings apply to every session.
    resume : str or pathlib.Path, optional
        Run directory of an interrupted run over the same sessions. By default the state is kept in
        ``.<first output name>.sessions.rundir`` beside the first output, and the same command run
        again after a crash continues from there.
    save_model : bool, str or pathlib.Path, optional
        Keep the trained model (one folder for all sessions): a folder path, True (``<first
        output stem>.sessions.autolfads-model`` beside the first output) or False; None: the
        setting ``output.save_model`` when files are written. ``nwb-autolfads apply MODEL FILE
        --session NAME`` applies it through one session's read-in and read-out.

    Returns
    -------
    list of RunResult
        One per session, in the order of ``paths``, each in its own source's units and channels,
        with ``sessions`` naming every session of the model.

    Raises
    ------
    ConfigError
        Fewer than two sources, as many outputs as sources not given, two sessions writing one
        output, one recording given twice (the same data), several modalities, or a setting as for
        :func:`nwb_autolfads.run`.
    SignalError
        The sessions' bins differ (bin size), or a session is too short for one window.
    InputFileError, SignalNotFoundError, OutputError, TrainingError
        As for :func:`nwb_autolfads.run`, naming the session.
    """
    paths = [p for p in paths]
    if len(paths) < 2:
        raise ConfigError(f"a multi-session model needs at least two sessions, got {len(paths)}: give two or more NWB "
                          "files (or use nwb-autolfads run FILE for one)")
    if outputs is not None and len(outputs) != len(paths):
        raise ConfigError(f"give one output per session: {len(paths)} sessions, {len(outputs)} outputs")
    clock, started, t_start = StageClock(), datetime.now(timezone.utc), time.perf_counter()
    sources = []
    for name, p in zip(session_names(paths), paths):
        with _naming(name, p):
            sources.append(resolve_source(p))
    with _naming(session_names(paths)[0], paths[0], but=ConfigError):  # the settings, resolved on session 1
        cfg = _resolve_config(sources[0], preset, config, overrides, emg=emg, seed=seed, device=device,
                              in_place=False, resume=resume, fresh=fresh)
    if isinstance(config, RunConfig):  # build_config warned otherwise
        warn_interval_samples(cfg.inference)
    if len(cfg.data.modalities) != 1:
        raise ConfigError(f"a multi-session model models one modality (emg or spikes), not "
                          f"{'+'.join(cfg.data.modalities)}: run the sessions with --model emg or --model spikes")
    names = session_names(paths)
    sessions = []
    for i, (name, source) in enumerate(zip(names, sources)):
        with _naming(name, paths[i]):
            sessions.append(_read(name, source, cfg, None if outputs is None else outputs[i], write=write,
                                  overwrite=overwrite, progress=progress))
    _check_outputs(sessions)
    clock.mark("read")
    model_path = _model_path(save_model, cfg, sessions[0].target.path, write)
    if model_path is not None:
        check_model_path(model_path, overwrite)
    with contextlib.ExitStack() as stack:
        for s in sessions:
            if s.target.write:
                stack.enter_context(OutputLock(s.target.path))
            s.sha256 = _source_sha256(s.source_data, replace(s.target, model=model_path))
        shared = _bin_sessions(sessions)
        clock.mark("preprocess")
        rundir = choose_rundir(resume, _state_target(sessions[0].target.path), write)
        fits = _fit_sessions(sessions, shared, rundir, resume is not None, fresh, progress, clock)
        results = [_collect(s.source_data, s.data, fit, s.cfg) for s, fit in zip(sessions, fits)]
        _keep_sessions(sessions, results, fits, model_path, rundir, resume is not None, clock, started=started,
                       command=command)
    seconds = time.perf_counter() - t_start
    for r in results:
        r.stages, r.seconds = clock.stages, seconds
    return results


@contextlib.contextmanager
def _naming(name: str, path, but: type | tuple = ()) -> Any:
    """Errors of one session's stage name the session: the same error, its message prefixed with
    ``session NAME (PATH):`` (errors of the kinds ``but`` as they are)."""
    try:
        yield
    except but:
        raise
    except NwbAutolfadsError as exc:
        raise type(exc)(f"session {name!r} ({path}): {exc}") from exc


def _read(name: str, source, cfg: RunConfig, output, *, write: bool, overwrite: bool, progress: bool) -> _Session:
    """Read and preprocess one session (its own scales), and check its output before any work."""
    with open_nwb(source.path if not source.remote else source) as (_io, nwbfile):
        source_data = _read_source(nwbfile, source, cfg)
        target = _plan_output(source_data, cfg, output, write=write, in_place=False, overwrite=overwrite,
                              run_name=None, resume=None, fresh=False, save_model=False)
        own = _preprocess(source_data, cfg, progress)
    return _Session(name=name, source_data=source_data, target=replace(target, rundir=None), cfg=own)


def bin_size_hint(sizes: Sequence[float]) -> str:
    """What to set ``windows.bin_size`` to for sessions binned at ``sizes`` (seconds): their
    smallest common multiple (:func:`common_bin`) when it is at most 4x the coarsest, else (clocks
    slightly apart, whose common multiple is seconds long) at least twice the coarsest, in ms."""
    common, coarsest = common_bin(sizes), max(sizes)
    if common <= 4 * coarsest:
        return f"a multiple of all of them (e.g. --set windows.bin_size={common:g}), so that every session is binned alike"
    return (f"at least twice the coarsest (e.g. --set windows.bin_size={math.ceil(2e3 * coarsest) / 1e3:g}); its bins "
            "then average unequal numbers of samples")


def common_bin(sizes: Sequence[float], least: float = 0.005) -> float:
    """The smallest common multiple (seconds) of the bin sizes ``sizes`` (each read as the nearest
    fraction of a second with a denominator up to 100000, e.g. 1/300 s) that is at least ``least``:
    a bin that every session's samples fill evenly."""
    from fractions import Fraction
    from math import gcd, lcm

    fractions = [Fraction(s).limit_denominator(100_000) for s in sizes]
    step = Fraction(lcm(*(f.numerator for f in fractions)), gcd(*(f.denominator for f in fractions)))
    k = max(1, -(-Fraction(least) // step))
    return float(step * k)


def _check_outputs(sessions: list[_Session]) -> None:
    seen: dict[Path, str] = {}
    for s in sessions:
        if not s.target.write:
            continue
        key = Path(s.target.path).resolve()
        if key in seen:
            raise ConfigError(f"sessions {seen[key]!r} and {s.name!r} would both write {str(s.target.path)!r}: give "
                              "each session its own output")
        seen[key] = s.name


def _state_target(first_output: Path) -> Path:
    """What names the run directory and the default model folder: ``<first output stem>.sessions``."""
    first_output = Path(first_output)
    return first_output.with_name(first_output.stem + ".sessions" + first_output.suffix)


def _model_path(save_model, cfg: RunConfig, first_output: Path, write: bool) -> Path | None:
    """Where the one model of the sessions is kept: as a run keeps its model
    (:func:`~nwb_autolfads.pipeline._model_folder`), named after the first output:
    ``<first output stem>.sessions.autolfads-model``."""
    return _model_folder(save_model, cfg, _state_target(first_output), write)


def _bin_sessions(sessions: list[_Session]) -> RunConfig:
    """Bin every session and agree on the shared settings: one bin size (else SignalError), the
    smallest window any session needs, and the factor count of the session with most channels.
    Returns the shared configuration; each session's ``cfg`` keeps its own preprocessing."""
    binned = []
    for s in sessions:
        with _naming(s.name, s.source_data.path):
            binned.append(_bin(s.source_data, s.cfg))
    sizes = {d.bin_size for d, _ in binned}
    if not all(same_bin_size(a, b) for a in sizes for b in sizes):
        listed = ", ".join(f"{s.name}: {d.bin_size * 1e3:.9g} ms" for s, (d, _) in zip(sessions, binned))
        raise SignalError(f"the sessions' bins differ ({listed}): a multi-session model needs one bin size; set "
                          f"windows.bin_size to {bin_size_hint(sorted(sizes))}")
    channels = [d.columns()[-1][2].stop for d, _ in binned]
    shortest = min((c for _, c in binned), key=lambda c: c.windows.window_bins)
    unresolved = sessions[0].cfg.model  # the factor rule on the session with most channels (or the set value)
    shared = shortest.updated({"model.factor_dim": unresolved.factors_for(max(channels))})
    for s, (d, own) in zip(sessions, binned):
        s.data, s.cfg = d, replace(own, windows=shared.windows, model=shared.model)
    _check_distinct(sessions)
    log.info("%d sessions, channels %s, %d factors", len(sessions), channels, shared.model.factor_dim)
    return shared


def _check_distinct(sessions: list[_Session]) -> None:
    """Refuse one recording given twice (the same file, a copy, or the same data in another file).

    Raises
    ------
    ConfigError
        Two sessions whose binned model inputs are identical, naming both.
    """
    seen: dict[str, _Session] = {}
    for s in sessions:
        digest = hashlib.sha256()
        for seg in s.data.segments():
            digest.update(repr(seg.shape).encode())
            digest.update(np.ascontiguousarray(seg).tobytes())
        first = seen.setdefault(digest.hexdigest(), s)
        if first is not s:
            raise ConfigError(f"sessions {first.name!r} ({first.source_data.path}) and {s.name!r} "
                              f"({s.source_data.path}) hold the same data: one recording given twice (the same file or "
                              "a copy); its training windows would also be its validation windows: give each session "
                              "once")


def _fit_sessions(sessions: list[_Session], cfg: RunConfig, rundir: Path | None, resumed: bool, fresh: bool,
                  progress: bool, clock: StageClock) -> list[FitResult]:
    """Chop every session, train one model on all their windows, then infer each session's."""
    chopped = []
    for s in sessions:
        with _naming(s.name, s.source_data.path):
            chopped.append(_chop(s.data.segments(), s.data.bin_size, cfg))
    device = resolve_device(cfg.device)
    if rundir is not None:
        prepare_rundir(Path(rundir), cfg, [seg for s in sessions for seg in s.data.segments()], explicit=resumed,
                       fresh=fresh)
    seed_everything(cfg.seed)
    windows = [torch.from_numpy(w).to(device) for w, _ in chopped]
    splits = [split_train_valid(index.n_windows, cfg.windows.valid_every) for _, index in chopped]
    data = TrainingData.from_sessions([w[t] for w, (t, _) in zip(windows, splits)],
                                      [w[v] for w, (_, v) in zip(windows, splits)],
                                      sessions[0].data.observation(), [s.name for s in sessions])
    model, result, plan = train_data(data, cfg, device, rundir, progress)
    clock.mark("train")
    plan = {k: v for k, v in plan.items() if k != "text"}
    fits = [_infer(model, w, index, cfg, result, progress=progress, n_train=int(t.size), n_valid=int(v.size),
                   plan=plan, session=k)
            for k, (w, (_, index), (t, v)) in enumerate(zip(windows, chopped, splits))]
    clock.mark("infer")
    return fits


def _keep_sessions(sessions: list[_Session], results: list[RunResult], fits: list[FitResult], model_path: Path | None,
                   rundir: Path | None, resumed: bool, clock: StageClock, *, started: datetime,
                   command: str | None) -> None:
    """Stage the model (once), write each session's output (its provenance names every session and
    the model), then move the model into place; the run directory goes once every output is written."""
    staged = stage_model(model_path, fits[0].model) if model_path is not None else None
    table = [session_entry(s.name, s.source_data, s.sha256, s.data.columns(), s.cfg, s.target.path
                           if s.target.write else None) for s in sessions]
    try:
        for k, (s, result, fit) in enumerate(zip(sessions, results, fits)):
            result.sessions = {"this": k, "sessions": table}
            if staged is not None:
                result.model, result.model_sha256 = model_path.resolve(), staged.sha256
            if not s.target.write:
                continue
            record = make_record(result, fit, s.data.blocks, s.data.bin_times, s.data.bin_size,
                                 source=s.source_data.source, path=s.source_data.path,
                                 identifier=s.source_data.identifier, source_sha256=s.sha256, started=started,
                                 finished=datetime.now(timezone.utc), doubt=s.source_data.doubt,
                                 command=command or f"nwb_autolfads.run_sessions([...{len(sessions)} sessions])",
                                 run_name=None)
            result.output, result.run_name = write_results(s.source_data.path, s.target.path, record,
                                                           overwrite=s.target.overwrite, in_place=False,
                                                           content=result.config.output.content)
        if staged is not None:
            meta = model_metadata(results[0], sessions[0].data.columns(), sessions[0].source_data, sessions[0].sha256)
            # each session's own resolved configuration (its preprocessing: e.g. the line frequency found)
            meta["sessions"] = [dict(e, n_channels=int(s.data.columns()[-1][2].stop), config=r.config.to_dict())
                                for e, s, r in zip(table, sessions, results)]
            path = staged.commit(meta, any(s.target.overwrite for s in sessions)).resolve()
            for r in results:
                r.model = path
        remove_rundir(rundir, resumed)
        clock.mark("write")
    finally:
        if staged is not None:
            staged.discard()
