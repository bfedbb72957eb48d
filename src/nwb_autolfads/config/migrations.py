"""Keys of earlier versions: renamed ones read under their names now, the epoch budgets of versions
before 0.3 refused in a config file and converted to steps in a saved result."""

from __future__ import annotations

import json
import math
from typing import Any, Mapping

from nwb_autolfads.config.train import TrainConfig
from nwb_autolfads.errors import ConfigError
from nwb_autolfads.modalities import parse_modalities

__all__ = ["EPOCH_KEYS", "renamed_keys", "refuse_epoch_key", "legacy_to_steps", "missing_as_defaults"]

# Budget keys of versions before 0.3 (counted in epochs) and the keys (counted in steps) that replace them.
EPOCH_KEYS = {"train.max_epochs": "train.max_steps", "train.min_epochs": "train.min_steps",
              "train.ramp_epochs": "train.ramp_steps", "pbt.generation_epochs": "pbt.generation_steps"}


def renamed_keys(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` (a nested config mapping) with the keys of earlier versions under their names now:
    ``data.model: "emg+spikes"`` -> ``data.modalities: [emg, spikes]``.

    Parameters
    ----------
    data : mapping
        A nested config mapping (a file's, the overrides', or a saved result's).

    Returns
    -------
    dict
        A new mapping; ``data`` is left as it is.

    Raises
    ------
    ConfigError
        Both names given, with different values.
    """
    section = data.get("data") if isinstance(data, Mapping) else None
    if not isinstance(section, Mapping) or "model" not in section:
        return dict(data)
    section = dict(section)
    old = section.pop("model")
    new = parse_modalities(old, "data.model")
    if "modalities" in section and parse_modalities(section["modalities"]) != new:
        raise ConfigError(f"data.model={old!r} and data.modalities={section['modalities']!r} disagree: give only "
                          f"data.modalities (data.model is its former name)")
    section["modalities"] = list(new)
    return {**data, "data": section}


def refuse_epoch_key(key: str) -> None:
    """Refuse an epoch budget key of an earlier version (:data:`EPOCH_KEYS`), naming its replacement.

    Parameters
    ----------
    key : str
        A dotted key not known to its section, e.g. ``train.max_epochs``.

    Returns
    -------
    None
        Other unknown keys pass (the caller refuses them).

    Raises
    ------
    ConfigError
        ``key`` is one of :data:`EPOCH_KEYS`.
    """
    new = EPOCH_KEYS.get(key)
    if new is not None:
        raise ConfigError(f"config key {key!r} is gone: budgets are counted in optimisation steps, use {new!r} "
                          "(steps ~= epochs x ceil(training windows / train.batch_size); a run prints its windows "
                          "and steps before training)")


def legacy_to_steps(data: Mapping[str, Any], n_train: int | None = None) -> dict[str, Any]:
    """A saved configuration with the epoch budgets of earlier versions converted to steps.

    ``steps = epochs x ceil(n_train / batch_size)`` with the run's number of training windows
    ``n_train`` (from its metrics), or the epoch budgets left out (the defaults stand in) when it
    is unknown. The units of ``early_stopping_patience`` (epochs, then steps) and ``lr_patience``
    (epochs, then validation checks) changed too: with epoch keys present they are converted the
    same way (patience) or kept (one check per epoch).

    Parameters
    ----------
    data : mapping
        A result's provenance configuration (nested, JSON-ready).
    n_train : int, optional
        The run's number of training windows.

    Returns
    -------
    dict
        A new mapping; a configuration without epoch keys comes back unchanged.
    """
    out = json.loads(json.dumps(dict(data)))
    train, pbt = out.get("train") or {}, out.get("pbt") or {}
    legacy = any(k in train for k in ("max_epochs", "min_epochs", "ramp_epochs")) or "generation_epochs" in pbt
    if not legacy:
        return out
    batch = int(train.get("batch_size", TrainConfig.batch_size))
    per_epoch = math.ceil(n_train / batch) if n_train else None
    for section, old, new in (("train", "max_epochs", "max_steps"), ("train", "min_epochs", "min_steps"),
                              ("train", "ramp_epochs", "ramp_steps"), ("pbt", "generation_epochs", "generation_steps")):
        values = out.get(section) or {}
        if old in values:
            epochs = values.pop(old)
            if per_epoch is not None:
                values[new] = max(int(epochs) * per_epoch, 1 if new in ("max_steps", "generation_steps") else 0)
    if "early_stopping_patience" in train:
        if per_epoch is not None:
            train["early_stopping_patience"] = max(1, int(train["early_stopping_patience"]) * per_epoch)
        else:
            train.pop("early_stopping_patience")
    if per_epoch is not None:
        train.setdefault("valid_every", per_epoch)  # the earlier versions validated once per epoch
    return out


def missing_as_defaults(old: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``old`` (a configuration recorded by an earlier version: a run directory's fingerprint, a
    batch manifest) with the settings it does not hold filled in from ``defaults`` (the same
    sections, this version's defaults), so that a setting added since (e.g. ``model.min_factors``)
    compares equal when it has its default, whose behaviour is the earlier version's. A setting
    ``old`` holds keeps its value; sections of ``defaults`` that ``old`` lacks are not added.

    Parameters
    ----------
    old, defaults : mapping
        Nested mappings of settings.

    Returns
    -------
    dict
        A new mapping."""
    out = dict(old)
    for key, value in defaults.items():
        if key in old and isinstance(value, Mapping) and isinstance(old[key], Mapping):
            out[key] = {**value, **missing_as_defaults(old[key], value)}  # the section's missing keys added
    return out
