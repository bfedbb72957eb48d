"""The run directory: where an unfinished run keeps its training state beside its output, so
that the same command run again after a crash resumes it (``--resume``, ``--fresh``).

A run directory holds a fingerprint of the data and settings it was made for, and the format of
its layout (:data:`RUNDIR_FORMAT`); one left by a run with other data or settings, or by another
version of nwb-autolfads, is never deleted. May import: numpy, :mod:`nwb_autolfads.config`,
:mod:`nwb_autolfads.errors`.
"""

from __future__ import annotations

import json
import logging
import shlex
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from nwb_autolfads.config import RunConfig
from nwb_autolfads.errors import ConfigError, StateFormatError

__all__ = ["RUN_FINGERPRINT", "RUNDIR_FORMAT", "default_rundir", "choose_rundir", "prepare_rundir", "remove_rundir"]

log = logging.getLogger(__name__)

RUN_FINGERPRINT = "fingerprint.json"
"""The file in a run directory that says which data and settings its state belongs to."""

RUNDIR_FORMAT = 2
"""The format of a run directory this version writes (``format`` in :data:`RUN_FINGERPRINT`):
which state files it holds and what they hold. Raised whenever either changes. Version 1 (no
``format``) kept a Ray population's state in ``ray/`` and ``ray_resume/``, and checkpoints this
version cannot read; each checkpoint also carries its own format
(:data:`nwb_autolfads.train.loop.CHECKPOINT_FORMAT`)."""


def default_rundir(target: Path) -> Path:
    """Where a run writing ``target`` keeps its training state: ``.<name>.rundir`` beside it."""
    return target.with_name(f".{target.name}.rundir")


def choose_rundir(resume: str | Path | None, target: Path, write: bool) -> Path | None:
    """The run directory of a run: ``resume`` (checked to be one), else beside ``target`` (the file
    the run writes) when it writes one, else None (a run that writes nothing keeps no state).

    Raises
    ------
    ConfigError
        ``resume`` is not a run directory of nwb-autolfads.
    """
    if resume is not None:
        rundir = Path(resume)
        if not (rundir / RUN_FINGERPRINT).is_file():
            raise ConfigError(f"--resume {str(rundir)!r} is not a run directory of nwb-autolfads (no {RUN_FINGERPRINT}):"
                              " give the directory an interrupted run left, or leave out --resume")
        return rundir
    return default_rundir(target) if write else None


def remove_rundir(rundir: Path | None, resumed: bool) -> None:
    """Remove the state of a run whose result is written (a directory named with ``--resume`` is kept)."""
    if rundir is not None and not resumed:
        shutil.rmtree(rundir, ignore_errors=True)


def prepare_rundir(rundir: Path, cfg: RunConfig, segments: list[np.ndarray], explicit: bool,
                    fresh: bool = False) -> None:
    """Make ``rundir`` hold the state of *this* run. A run directory left by a run with other data
    or settings is never deleted: it is an error, unless ``fresh``. With ``fresh`` any previous
    state is moved aside to ``<rundir>.<UTC time>`` and this run starts afresh."""
    import hashlib

    digest = hashlib.sha256()
    for seg in segments:
        digest.update(np.ascontiguousarray(seg).tobytes())
    fingerprint = {"format": RUNDIR_FORMAT,
                   "config": {k: v for k, v in cfg.to_dict().items() if k not in ("device", "inference", "output")},
                   "data_sha256": digest.hexdigest()}
    marker = rundir / RUN_FINGERPRINT
    if marker.is_file():
        try:
            old = json.loads(marker.read_text())
        except (OSError, ValueError):
            old = None
        if not fresh and not _readable_fingerprint(old):
            raise StateFormatError(f"the run directory {str(rundir)!r} holds an interrupted run whose {RUN_FINGERPRINT} "
                                   "is damaged or unreadable (cut short, or not what nwb-autolfads writes): which "
                                   "data and settings its state belongs to is unknown, so it cannot be resumed. Run "
                                   "again with --fresh (and without --resume), which moves it aside (nothing is "
                                   "deleted) and starts afresh")
        if not fresh and _check_format(rundir, old):  # another version's, holding nothing: taken over
            marker.write_text(json.dumps(fingerprint))
            return
        old = _with_new_defaults(old)
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


def _with_new_defaults(old: Any) -> Any:
    """``old`` (a readable fingerprint) with the settings an earlier version did not record read as
    this version's defaults (:func:`~nwb_autolfads.config.migrations.missing_as_defaults`), so a run
    interrupted before a setting was added resumes when the setting has its default."""
    from nwb_autolfads.config.migrations import missing_as_defaults

    if not _readable_fingerprint(old):
        return old
    return {**old, "config": missing_as_defaults(old["config"], RunConfig().to_dict())}  # adds no section


def _readable_fingerprint(old: Any) -> bool:
    """Whether ``old`` (a parsed :data:`RUN_FINGERPRINT`, None when it is not JSON) is one that
    nwb-autolfads writes: a mapping with ``config`` (a mapping) and ``data_sha256``."""
    return isinstance(old, dict) and isinstance(old.get("config"), dict) and "data_sha256" in old


def _check_format(rundir: Path, old: Any) -> bool:
    """Whether ``rundir`` (whose fingerprint is ``old``) is of another :data:`RUNDIR_FORMAT` but
    holds only its fingerprint (nothing to lose: it may be taken over); refuse one that holds
    training state.

    Raises
    ------
    StateFormatError
        ``rundir`` holds state written by another version of nwb-autolfads.
    """
    found = old.get("format", 1) if isinstance(old, dict) else None
    if found in (None, RUNDIR_FORMAT):  # unreadable fingerprint: the settings check says so
        return False
    state = sorted(p.name for p in rundir.iterdir() if p.name != RUN_FINGERPRINT)
    if state:
        raise StateFormatError(f"the run directory {str(rundir)!r} holds the training state of an interrupted run "
                               f"({', '.join(state[:3])}{', ...' if len(state) > 3 else ''}) written by another "
                               f"version of nwb-autolfads (run directory format {found}, this version writes "
                               f"{RUNDIR_FORMAT}): this version cannot resume it. Run again with --fresh (and "
                               "without --resume), which moves it aside (nothing is deleted) and starts afresh, or "
                               "finish the run with the nwb-autolfads version that wrote it")
    return True


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
