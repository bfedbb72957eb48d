"""Applying a saved model to new data (``nwb-autolfads apply MODEL NEW.nwb``): the stages of
:func:`nwb_autolfads.run` without training.

A run keeps its trained model as a folder (:mod:`nwb_autolfads.model.artifact`). :func:`apply`
reads a new file with the model's modalities and settings, matches its channels to the model's
by name (reordered to the model's order; :func:`match_channels`), preprocesses and bins them as
the training data were (with the model's stored scales, or re-estimated ones with
``rescale``), chops the model's windows, infers with the model's inference settings and seed,
checks how well the model explains the new data against its training data (:func:`check_fit`,
a warning where a channel falls far below), and writes a run whose provenance names the model
applied, the source it was trained on and the fit check. Its messages speak as the caller does
(:class:`Voice`: the command line's flags, or Python's arguments). The read, bin, inference,
collect and write stages are :mod:`nwb_autolfads.pipeline`'s own.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from nwb_autolfads.data.timebase import same_bin_size
from nwb_autolfads.errors import ConfigError, NwbAutolfadsError, SignalError
from nwb_autolfads.evaluation.fit_check import FIT_STATISTIC, MAX_FIT_DROP, fit_verdict
from nwb_autolfads.io.reading import open_nwb
from nwb_autolfads.data.signals import VOLT_EXPONENTS as _VOLT_EXPONENTS
from nwb_autolfads.io.sources import resolve_source, source_sha256 as input_sha256
from nwb_autolfads.io.writing import OutputLock
from nwb_autolfads.modalities import modality
from nwb_autolfads.model.artifact import ModelArtifact, load_model
from nwb_autolfads.pipeline import (ModelData, RunResult, StageClock, _bin, _collect, _keep, _plan_output, _preprocess,
                                    _read_source, _resolve_config, _source_sha256, infer_signal)
from nwb_autolfads.train.devices import resolve_device

__all__ = ["Voice", "apply", "check_fit", "match_channels", "select_by_name"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Voice:
    """How :func:`apply`'s messages speak to their reader: in the command line's flags
    (``--session NAME``) or in Python's arguments (``session='NAME'``), and how they name the
    model (its folder, or e.g. ``the fitted model`` for the estimator's temporary folder)."""

    cli: bool = True
    model: str | None = None
    """How the model is named; None: ``model '<its folder>'``."""

    def arg(self, name: str, value: str | None = None) -> str:
        """The option ``name`` (Python spelling, ``drop_extra``) as the reader gives it: a flag
        ``--drop-extra`` / ``--session NAME``, or ``drop_extra=True`` / ``session='NAME'``."""
        if self.cli:
            return f"--{name.replace('_', '-')}" + (f" {value}" if value is not None else "")
        return f"{name}={value!r}" if value is not None else f"{name}=True"

    def named(self, path: str | Path) -> str:
        """The model as the messages name it."""
        return self.model or f"model {str(path)!r}"

    def train(self) -> str:
        """How to train a model on the file instead."""
        return "`nwb-autolfads run FILE`" if self.cli else "nwb_autolfads.run(path)"


def select_by_name(signals: Mapping[str, Any], wanted: Mapping[str, list[str]], drop_extra: bool = False,
                   owner: str = "the model") -> tuple[dict[str, Any], list[str]]:
    """Each modality's signal with the ``wanted`` channels only, in that order, matched by name
    (the units by id as text): the rules of :func:`match_channels` without a model, for whatever
    was fitted on named channels (:mod:`nwb_autolfads.baseline_estimators`).

    Parameters
    ----------
    signals : mapping of str to signal
        Per modality, its signal as read (:meth:`Modality.read`).
    wanted : mapping of str to list of str
        Per modality to match, the channel names in the order wanted; modalities not named here
        are returned as they are.
    drop_extra : bool
        Leave out channels not wanted (with a warning) instead of counting them as a problem.
    owner : str
        What wants the channels, as the phrases name it (``"the model"``).

    Returns
    -------
    (dict, list of str)
        Per modality, the signal (matched where wanted and every wanted channel is there), and
        one phrase per problem: a wanted channel missing, a name used twice, an extra channel
        (without ``drop_extra``). The caller raises with them.
    """
    out, problems = dict(signals), []
    for name, want in wanted.items():
        signal, entry = signals[name], modality(name)
        have = entry.names(signal)
        twice = sorted(n for n, k in Counter(have).items() if k > 1 and n in want)
        missing = [n for n in want if n not in have]
        extra = [n for n in have if n not in want]
        where = f"{name} ({getattr(signal, 'source_path', name)})"
        if twice:
            problems.append(f"{where} names channel(s) {', '.join(twice)} more than once")
        if missing:
            problems.append(f"{where} lacks {owner}'s channel(s) {', '.join(missing)}")
        if extra and not drop_extra:
            problems.append(f"{where} has channel(s) {owner} does not know: {', '.join(extra)}")
        if twice or missing or (extra and not drop_extra):
            continue
        if extra:
            log.warning("%s: channel(s) %s that %s does not know are left out (--drop-extra, drop_extra=True)", where,
                        ", ".join(extra), owner)
        out[name] = entry.select(signal, [have.index(n) for n in want])
    return out, problems


def match_channels(signals: Mapping[str, Any], model: ModelArtifact, drop_extra: bool = False, *,
                   session: str | None = None, voice: Voice | None = None) -> dict[str, Any]:
    """Each modality's signal with the model's channels only, in the model's order, matched by name
    (the units of a spikes model by id).

    Parameters
    ----------
    signals : mapping of str to signal
        Per modality of the model, its signal as read (:meth:`Modality.read`).
    model : ModelArtifact
        The saved model (for a model of several sessions, as :func:`session_of` gives it).
    drop_extra : bool
        Leave out channels the model does not know (with a warning) instead of refusing them.
    session : str, optional
        The session of a multi-session model the channels are matched to (named in the error,
        with the session whose channels match the file's exactly, if one does).
    voice : Voice, optional
        How the error names options and the model (default: the command line's flags).

    Returns
    -------
    dict
        Per modality, the signal with the model's channels in its order.

    Raises
    ------
    SignalError
        One line naming, per modality, the model's channels missing from the file and (without
        ``drop_extra``) the file's channels the model does not know, or a name used twice.
    """
    voice = voice or Voice()
    wanted = {name: [str(c) for c in model.block(name)["channel_names"]] for name in signals}
    out, problems = select_by_name(signals, wanted, drop_extra)
    if not problems:
        return out
    have = {name: [str(n) for n in modality(name).names(signals[name])] for name in signals}
    missing = any(n not in have[name] for name, want in wanted.items() for n in want)
    whose = f"session {session!r} of {voice.named(model.path)}" if session is not None else voice.named(model.path)
    knows = "; ".join(f"{c['modality']}: {', '.join(map(str, c['channel_names']))}" for c in model.columns)
    fixes = ["apply it to a recording with the same channels", "rename the file's channels to the model's in a copy "
             "of the file"] + ([] if missing else [f"pass {voice.arg('drop_extra')} to leave the extra channels out"])
    raise SignalError(f"the file's channels do not match {whose} (matched by name): {'; '.join(problems)}; "
                      f"{'it' if session is None else 'that session'} knows {knows}{_other_sessions(model, have, session, voice)}"
                      f" ({', '.join(fixes)}, or train a model on this file with {voice.train()})")


def _other_sessions(model: ModelArtifact, have: Mapping[str, list[str]], session: str | None, voice: Voice) -> str:
    """For a multi-session model: the phrase naming the session whose channels are exactly the
    file's ``have`` (per modality, the names as read), or saying that none is ("" for a model of one
    session)."""
    entries = model.meta.get("sessions") or []
    if not entries:
        return ""
    exact = []
    for entry in entries:
        cols = {c.get("modality"): [str(n) for n in c.get("channel_names", [])] for c in entry.get("columns") or []}
        if str(entry.get("name")) != session and all(
                name in cols and len(set(names)) == len(names) and set(names) == set(cols[name])
                for name, names in have.items()):
            exact.append(str(entry.get("name")))
    if exact:
        return (f"; the file's channels are those of the model's session {exact[0]!r}: apply it with "
                f"{voice.arg('session', exact[0])}")
    return (f"; no session of the model ({', '.join(str(e.get('name')) for e in entries)}) has exactly the file's "
            "channels")


MAX_CLIPPED_SHARE = 0.2
"""With the model's stored scaling, more bins than this share of a channel at its clip level means
the data's amplitude is not the training data's."""
MAX_SCALE_RATIO = 10.0
"""With the model's stored scaling, a channel whose scale quantile differs from the stored scale by
more than this factor (either way) is refused."""


def _unit_factor(unit: str | None, model_unit: str | None, where: str, voice: Voice | None = None) -> float:
    """The factor that takes a value in the model's unit to the file's ``unit`` (1.0 when they
    are the same or one is not known).

    Raises
    ------
    SignalError
        The units differ and are not both SI voltage spellings (V, mV, uV and their names).
    """
    a, b = (str(u or "").strip().lower() for u in (unit, model_unit))
    if not a or not b or a == b:
        return 1.0
    if a in _VOLT_EXPONENTS and b in _VOLT_EXPONENTS:
        return 10.0 ** (_VOLT_EXPONENTS[b] - _VOLT_EXPONENTS[a])
    raise SignalError(f"{where} is in {unit!r}, the model's training data were in {model_unit!r}: the model's stored "
                      f"scales cannot be used on it; pass {(voice or Voice()).arg('rescale')} to estimate the scales "
                      "on this file (or store the data in the model's unit)")


def _stored_scaling(model: ModelArtifact, name: str, signal, voice: Voice | None = None) -> tuple | None:
    """The model's stored scaling of modality ``name`` (:meth:`ModelArtifact.scaling`) in the unit
    of the file's ``signal``: converted between SI voltage units, so that the estimates come out
    in the file's own unit."""
    scaling = model.scaling(name)
    if scaling is None:
        return None
    where = f"{name} ({getattr(signal, 'source_path', name)})"
    factor = _unit_factor(getattr(signal, "unit", None), model.block(name).get("unit"), where, voice)
    if factor == 1.0:
        return scaling
    log.info("%s: the model's scales converted from %s to %s (x %g)", where, model.block(name).get("unit"),
             signal.unit, factor)
    return tuple(np.asarray(a, dtype=np.float64) * factor for a in scaling)


def _check_amplitude(pre, quantile: float, where: str, voice: Voice | None = None) -> None:
    """The EMG preprocessed with the model's stored scaling (``pre``, :class:`Preprocessed`) has the
    training data's amplitude: per channel at most :data:`MAX_CLIPPED_SHARE` of its bins at the
    stored clip level, and its ``quantile`` (the scale quantile) within :data:`MAX_SCALE_RATIO` of
    the stored scale.

    Raises
    ------
    SignalError
        One line naming the channels and their numbers, suggesting --rescale.
    """
    rect = np.concatenate([np.asarray(r, dtype=np.float64) for r in pre.rectified], axis=0)
    if rect.size == 0:
        return
    clip, scales = np.asarray(pre.clip_levels, dtype=np.float64), np.asarray(pre.scales, dtype=np.float64)
    share = np.mean(rect >= clip[None, :], axis=0)
    ratio = np.nanquantile(rect, quantile, axis=0) / scales
    bad = []
    for i, name in enumerate(pre.channel_names):
        if share[i] > MAX_CLIPPED_SHARE:
            bad.append(f"{name}: {share[i]:.0%} of bins at the clip level")
        elif not (1.0 / MAX_SCALE_RATIO <= ratio[i] <= MAX_SCALE_RATIO):
            bad.append(f"{name}: {quantile:g} quantile {ratio[i]:.3g} x the stored scale")
    if bad:
        raise SignalError(f"{where}: the amplitude does not match the model's training data ({'; '.join(bad)}): a "
                          f"different gain or unit than the training recording; pass {(voice or Voice()).arg('rescale')} "
                          "to estimate the scales on this file")


def _check_grid(data: ModelData, cfg, model: ModelArtifact) -> None:
    """The binned data fit the model: its bin size, and per block its channels in its order.

    Raises
    ------
    SignalError
        Another bin size (data sampled coarser than the model's bins), or channels lost on the
        way (units excluded as bad).
    """
    want_bin = float(model.meta["bin_size"])
    if not same_bin_size(data.bin_size, want_bin):
        raise SignalError(f"the file's data are on {data.bin_size * 1e3:.9g} ms bins, the model's on "
                          f"{want_bin * 1e3:.9g} ms: it can only be applied to data sampled at least as finely as its "
                          "bins")
    got = [(name, [str(c) for c in b.channel_names]) for name, b, _ in data.columns()]
    want = [(c["modality"], [str(n) for n in c["channel_names"]]) for c in model.columns]
    if got != want:
        raise SignalError(f"the binned data's channels {got} are not the model's {want} (channels were left out "
                          "while binning, e.g. units excluded as bad): apply the model to data that has all of them")
    w = model.config.windows
    if (cfg.windows.window_bins, cfg.windows.overlap_bins) != (w.window_bins, w.overlap_bins):
        log.warning("windows of %d bins (the model's: %d) to fit this file's short segments", cfg.windows.window_bins,
                    w.window_bins)


def session_of(model: ModelArtifact, session: str | None, voice: Voice | None = None,
               hint: str = "") -> tuple[ModelArtifact, int | None]:
    """The model as one of its sessions sees it: for a model trained over several sessions
    (``model.json`` lists ``sessions``), the session named ``session`` (its column blocks: channel
    names and scales) and its index; a model of one session as it is (index None).

    Raises
    ------
    ConfigError
        A multi-session model without ``session``, or with a name it does not list (``hint``
        added to the message: e.g. the session whose channels are the file's); ``session`` given
        for a model of one session.
    """
    voice = voice or Voice()
    entries = model.meta.get("sessions") or []
    if not entries:
        if session is not None:
            raise ConfigError(f"{voice.named(model.path)} was trained on one session: leave out "
                              f"{voice.arg('session', session)}")
        return model, None
    names = [str(e.get("name")) for e in entries]
    if session is None or session not in names:
        option = voice.arg('session', 'NAME') if voice.cli else 'session=NAME'
        what = "name" if session is None else f"it has no session {session!r}: name"
        raise ConfigError(f"{voice.named(model.path)} was trained over {len(names)} sessions ({', '.join(names)}): "
                          f"{what} the session whose read-in and read-out fit the new file's channels with {option}"
                          f"{hint}")
    k = names.index(session)
    own = {key: entries[k][key] for key in ("columns", "config", "output") if key in entries[k]}  # channels, prep.
    own["source"] = {key: entries[k].get(key, "") for key in ("identifier", "sha256", "location", "url",
                                                               "dandi_asset_id")}  # what ITS read-in was trained on
    return ModelArtifact(model.path, {**model.meta, **own}, model.state, model.sha256), k


def _session_hint(model: ModelArtifact, source, emg: str | None, voice: Voice) -> str:
    """For a multi-session model applied without a session it lists: the phrase naming the session
    whose channels are exactly the file's (:func:`_other_sessions`; "" when the file's channels
    cannot be read)."""
    first, _ = session_of(model, str(model.meta["sessions"][0].get("name")), voice)
    try:
        cfg = _resolve_config(source, None, first.config.updated({"output.content": None}), None, emg=emg, seed=None,
                              device=None, in_place=False, resume=None, fresh=False)
        with open_nwb(source.path if not source.remote else source) as (_io, nwbfile):
            signals = _read_source(nwbfile, source, cfg).signals
            have = {name: [str(n) for n in modality(name).names(signals[name])] for name in signals}
    except NwbAutolfadsError:  # the file's own fault is reported once a session is named
        return ""
    return _other_sessions(model, have, None, voice)


def check_session_source(model: ModelArtifact, session: str, sha256: str, where: str,
                         voice: Voice | None = None) -> None:
    """Refuse a file that is (by SHA-256) another of the model's sessions than ``session``: its
    channels may match ``session``'s by name, but its read-in, read-out and scales are another's.

    Raises
    ------
    ConfigError
        The file's ``sha256`` is the one recorded for another session, naming it.
    """
    for entry in model.meta.get("sessions") or []:
        if sha256 and entry.get("sha256") == sha256 and str(entry.get("name")) != session:
            raise ConfigError(f"{where} is the model's session {entry.get('name')!r} (the same SHA-256), not "
                              f"{session!r}: apply it with {(voice or Voice()).arg('session', str(entry.get('name')))}"
                              ", whose read-in, read-out and scales were trained on it")


def check_fit(model: ModelArtifact, data: ModelData, voice: Voice | None = None) -> dict:
    """How well the model explains the new data against how well it explained its training data,
    per channel (:mod:`nwb_autolfads.evaluation.fit_check`; the blocks of ``data`` carry the new
    statistic, the model's column blocks the training one), with a warning (one line: the channels
    flagged and their numbers) when some fall far below their training level.

    Returns
    -------
    dict
        ``statistic`` (its name), ``rule``, ``trained`` and ``applied`` (per modality, per channel
        the statistic; None where not known), ``flagged`` (per modality, the channels far below
        their training level) and ``verdict``: ``fits``, ``misfit`` or ``not checked`` (a model
        saved without the statistic, by a version before it was recorded).
    """
    voice = voice or Voice()
    trained, applied, flagged = {}, {}, {}
    for name, b, _ in data.columns():
        stored = (model.block(name) or {}).get("fit")
        names = [str(c) for c in b.channel_names]
        applied[name] = dict(zip(names, b.fit or [None] * len(names)))
        trained[name] = dict(zip(names, stored)) if stored else {}
        flagged[name] = fit_verdict(trained[name], applied[name])
    record = {"statistic": FIT_STATISTIC, "rule": f"flagged: more than {MAX_FIT_DROP:g} below the training level",
              "trained": trained, "applied": applied,
              "flagged": {k: v for k, v in flagged.items() if v}}
    if not any(trained.values()):
        log.info("%s was saved without its fit statistic (by a version that did not record it): how "
                 "well it fits this file is not checked", voice.named(model.path))
        return {**record, "verdict": "not checked"}
    if not record["flagged"]:
        return {**record, "verdict": "fits"}
    listed = "; ".join(f"{ch} {applied[name][ch]:.2f} (trained {trained[name][ch]:.2f})"
                       for name, chans in record["flagged"].items() for ch in chans)
    log.warning("%s explains this file's data far worse than its training data on channel(s) %s (%s, 1 = the estimate "
                "follows the data's signal): its estimates there are likely wrong (other muscles, placement or "
                "animal than it was trained on); train a model on this recording with %s", voice.named(model.path),
                listed, FIT_STATISTIC, voice.train())
    return {**record, "verdict": "misfit"}


def _model_sessions(model: ModelArtifact, index: int | None) -> dict | None:
    """An applied run's ``sessions`` provenance for a model of several sessions: ``this``, the
    session applied, and every session of the model as its ``model.json`` names it (without each
    session's configuration); None for a model of one session."""
    entries = model.meta.get("sessions") or []
    if index is None or not entries:
        return None
    return {"this": index, "sessions": [{k: v for k, v in e.items() if k != "config"} for e in entries]}


def apply(model: str | Path, path: str | Path, output: str | Path | None = None, *, rescale: bool = False,
          emg: str | None = None, drop_extra: bool = False, device: str | None = None, overwrite: bool = False,
          run_name: str | None = None, write: bool = True, progress: bool = True,
          command: str | None = None, session: str | None = None, model_name: str | None = None) -> RunResult:
    """Apply a saved model to an NWB file: the same preprocessing, bins, windows, inference and
    seed as the run that trained it, and no training (seconds, not hours).

    Parameters
    ----------
    model : str or pathlib.Path
        The model folder a run saved (``<output stem>.autolfads-model``), or its ``model.json``.
    path : str or pathlib.Path
        The new source: a local NWB file (HDF5 or Zarr), an http(s) URL or a DANDI asset; opened
        read-only, never modified. Its channels are matched to the model's by name (units by id)
        and reordered to the model's order.
    output : str or pathlib.Path, optional
        Output NWB path; default beside the source, as :func:`nwb_autolfads.run` names it.
    rescale : bool
        Estimate the per-channel scales (and the EMG's clip levels, a continuous input's
        offsets) on this file instead of using the model's stored ones (for a recording whose
        gain differs); by default the stored ones, so that the estimates are in the training
        data's scale.
    emg : str, optional
        Object path of the EMG series in the new file (default: the model's setting, else found).
    drop_extra : bool
        Leave out (with a warning) channels the model does not know; by default they are refused.
    device : str, optional
        ``auto``, ``cpu`` or ``cuda`` (default: the model's setting). Results are bit-identical
        to the training run's on the same file only on the same kind of device.
    overwrite, run_name, write, progress, command
        As for :func:`nwb_autolfads.run`.
    session : str, optional
        For a model trained over several sessions (:func:`nwb_autolfads.run_sessions`): the
        session whose read-in and read-out (and stored scales) are used; required there.
    model_name : str, optional
        How messages name the model (default: ``model '<its folder>'``; the estimator: ``the
        fitted model``). Messages name options as flags (``--rescale``) when ``command`` is given
        (the command line), else as Python arguments (``rescale=True``).

    Returns
    -------
    RunResult
        The estimates (as :func:`nwb_autolfads.run`'s), with ``applied`` naming the model and its
        training source, ``model`` / ``model_sha256`` the model applied; ``training`` empty;
        ``fit_check`` how well the model explains this file's data against its training data
        (:func:`check_fit`; a warning names the channels far below their training level);
        ``sessions`` the model's sessions (a model of several sessions).

    Raises
    ------
    ConfigError
        ``model`` is not a model folder, is damaged (its weights' SHA-256 differs from the one
        recorded), or of a newer format.  With ``session``: the file is (by SHA-256) another of the model's
        sessions.
    SignalError
        The file's channels do not match the model's (missing or extra channels, named in one
        line), its data cannot be put on the model's bins, or it is too short for one window.
    InputFileError, SignalNotFoundError, OutputError
        As for :func:`nwb_autolfads.run`.
    """
    clock, started, t_start = StageClock(), datetime.now(timezone.utc), time.perf_counter()
    voice = Voice(cli=command is not None, model=model_name)
    model_art = load_model(model)
    source = resolve_source(path)
    listed = [str(e.get("name")) for e in model_art.meta.get("sessions") or []]
    hint = _session_hint(model_art, source, emg, voice) if listed and session not in listed else ""
    art, session_index = session_of(model_art, session, voice, hint)
    known_sha256 = ""
    if session_index is not None:  # a session's read-in: not another session's recording
        known_sha256 = input_sha256(source)
        check_session_source(model_art, session, known_sha256, repr(str(path)), voice)
    cfg = _resolve_config(source, None, art.config.updated({"output.content": None}), None, emg=emg, seed=None,
                          device=device, in_place=False, resume=None, fresh=False)
    with open_nwb(source.path if not source.remote else source) as (_io, nwbfile):
        source_data = _read_source(nwbfile, source, cfg)
        source_data.signals = match_channels(source_data.signals, art, drop_extra, session=session, voice=voice)
        target = replace(_plan_output(source_data, cfg, output, write=write, in_place=False, overwrite=overwrite,
                                      run_name=run_name, resume=None, fresh=False, save_model=False), rundir=None)
        clock.mark("read")
        signals = source_data.signals
        stored = {} if rescale else {name: _stored_scaling(art, name, signals[name], voice) for name in signals}
        cfg = _preprocess(source_data, cfg, progress, scaling=stored.get("emg"))
        if stored.get("emg") is not None:
            _check_amplitude(source_data.emg.preprocessed, cfg.preprocess.scale_quantile,
                             f"emg ({source_data.emg.source_path})", voice)
    with OutputLock(target.path) if target.write else contextlib.nullcontext():
        source_sha256 = known_sha256 or _source_sha256(source_data, target)
        scalings = {name: value for name, value in stored.items() if name != "emg" and value is not None}
        data, cfg = _bin(source_data, cfg, scalings)
        _check_grid(data, cfg, art)
        clock.mark("preprocess")
        fit = infer_signal(data.segments(), data.bin_size, art.build(resolve_device(cfg.device)), cfg,
                           progress=progress, clock=clock, session=session_index)
        result = _collect(source_data, data, fit, cfg)
        result.model, result.model_sha256 = art.path, art.sha256
        result.fit_check, result.sessions = check_fit(art, data, voice), _model_sessions(model_art, session_index)
        result.applied = {"location": str(art.path), "sha256": art.sha256, "run_name": art.meta.get("run_name"),
                          "output": art.meta.get("output"), "trained_on": dict(art.meta.get("source") or {}),
                          "rescaled": bool(rescale), "hyperparameters": art.meta.get("hyperparameters"),
                          **({"session": session} if session_index is not None else {})}
        return _keep(result, fit, data, source_data, target, clock, source_sha256=source_sha256, started=started,
                     t_start=t_start, command=command or f"nwb_autolfads.apply({str(model)!r}, {str(path)!r}, ...)")
