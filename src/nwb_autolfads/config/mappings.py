"""Plain nested mappings of settings: dotted keys expanded, mappings merged, keys flattened, and
dataclass dumps turned into YAML/JSON-ready values."""

from __future__ import annotations

import math
from pathlib import PurePath
from typing import Any, Mapping

from nwb_autolfads.errors import ConfigError

__all__ = ["to_plain", "json_values", "expand_dotted", "deep_merge", "flat_keys"]


def to_plain(obj: Any) -> Any:
    """``obj`` with every tuple turned into a list, recursively (what YAML and JSON write).

    Parameters
    ----------
    obj : Any
        A value of :func:`dataclasses.asdict` (dicts, lists, tuples, scalars).

    Returns
    -------
    Any
        The same values in dicts, lists and scalars.
    """
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj



def json_values(obj: Any) -> Any:
    """``obj`` as plain JSON values: dicts (keys as text), lists (tuples too), numpy arrays and
    scalars as lists and numbers (through their ``tolist``: float64 values round-trip exactly),
    paths as text, a non-finite number as None (JSON has no NaN or infinity). Used for every JSON
    file the package writes that must be strict JSON (a saved model's ``model.json``, an
    evaluation's JSON)."""
    if isinstance(obj, dict):
        return {str(k): json_values(v) for k, v in obj.items()}
    if hasattr(obj, "tolist"):  # numpy arrays and scalars (numpy is not imported here)
        obj = obj.tolist()
    if isinstance(obj, (list, tuple)):
        return [json_values(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, PurePath):
        return str(obj)
    return obj

def expand_dotted(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Overrides with dotted keys (``{"train.lr": 1e-3}``) as nested mappings (``{"train": {"lr": 1e-3}}``).

    Parameters
    ----------
    overrides : mapping
        Dotted keys or nested mappings, or both; mappings under the same key are merged.

    Returns
    -------
    dict
        The nested mapping.

    Raises
    ------
    ConfigError
        When one override sets a value where another sets a section (``train=1`` and ``train.lr``).
    """
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        parts = str(key).split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {key!r} conflicts with another override")
        last = parts[-1]
        if isinstance(value, Mapping) and isinstance(node.get(last), dict):
            node[last] = deep_merge(node[last], dict(value))
        else:
            node[last] = dict(value) if isinstance(value, Mapping) else value
    return out


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``update``'s values over it, merging the mappings both hold under one key.

    Parameters
    ----------
    base, update : mapping
        Nested mappings of settings; ``update`` wins.

    Returns
    -------
    dict
        A new mapping (``base`` and ``update`` are left as they are).
    """
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def flat_keys(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """The settings of a config mapping by dotted key, one level of sections deep.

    Parameters
    ----------
    data : mapping
        Sections (``{"train": {"lr": 1e-3}}``) or top-level settings (``{"seed": 1}``).
    prefix : str
        Prepended to every key (used for the sections' own keys).

    Returns
    -------
    dict
        ``{"train.lr": 1e-3, "seed": 1}``; values below the sections' keys stay mappings.
    """
    out = {}
    for key, value in data.items():
        if isinstance(value, Mapping) and not prefix:
            out.update(flat_keys(value, f"{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
