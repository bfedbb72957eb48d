"""Typed sections from plain mappings: every key known, every value of its field's type (YAML's
strings for numbers and comma-separated lists accepted), or a :class:`ConfigError` naming the key."""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import fields
from typing import Any, Mapping

from nwb_autolfads.config.migrations import refuse_epoch_key
from nwb_autolfads.errors import ConfigError

__all__ = ["from_mapping", "coerce"]


def from_mapping(cls: type, data: Any, prefix: str) -> Any:
    """An instance of the section dataclass ``cls`` (validated by its ``__post_init__``) from ``data``.

    Parameters
    ----------
    cls : type
        A config dataclass, e.g. :class:`~nwb_autolfads.config.RunConfig`.
    data : Any
        Its settings: a mapping of some or all of its field names (missing ones take the defaults).
    prefix : str
        The dotted key of the section with a trailing dot (``train.``), ``""`` at the top; named
        in the errors.

    Returns
    -------
    object
        The ``cls`` instance.

    Raises
    ------
    ConfigError
        ``data`` is not a mapping; an unknown key (an epoch key of an earlier version named with
        its replacement); a value of the wrong type or out of range.
    """
    where = prefix.rstrip(".") or "config"
    if not isinstance(data, Mapping):
        raise ConfigError(f"config section {where!r} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    for key in unknown:
        refuse_epoch_key(f"{prefix}{key}")
    if unknown:
        raise ConfigError(f"unknown config key '{prefix}{unknown[0]}': valid keys in {where!r} are "
                          f"{', '.join(sorted(names))}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = coerce(hints[name], value, f"{prefix}{name}")
    return cls(**kwargs)


def coerce(tp: Any, value: Any, key: str) -> Any:
    """``value`` as type ``tp`` (a section, an optional or union type, a tuple or a scalar).

    Parameters
    ----------
    tp : type
        The field's resolved type hint.
    value : Any
        The value read from a file, an override or a saved result.
    key : str
        The setting's dotted key, named in the errors.

    Returns
    -------
    Any
        The converted value.

    Raises
    ------
    ConfigError
        ``value`` cannot be read as ``tp``.
    """
    if dataclasses.is_dataclass(tp):
        return from_mapping(tp, value, prefix=key + ".")
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(typing.get_args(tp), value, key)
    if origin is tuple:
        return _coerce_tuple(tp, value, key)
    return _coerce_scalar(tp, value, key)


def _coerce_union(args: tuple, value: Any, key: str) -> Any:
    """``None`` where the union allows it, else the first member type that takes ``value``
    (the first member's error when none does)."""
    if value is None and type(None) in args:
        return None
    errors = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return coerce(arg, value, key)
        except ConfigError as exc:
            errors.append(exc)
    raise errors[0]


def _coerce_tuple(tp: Any, value: Any, key: str) -> tuple:
    """A ``tuple[X, ...]`` from a list, a tuple or a comma-separated string."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"config key {key!r} must be a list, got {value!r}")
    (item_tp, _ellipsis) = typing.get_args(tp)
    return tuple(coerce(item_tp, v, key) for v in value)


def _coerce_scalar(tp: Any, value: Any, key: str) -> Any:
    """A ``bool`` (only a boolean), ``int`` (or a whole float), ``float`` (a number or a numeric
    string: YAML reads 1e-3 without a dot as a string) or ``str``."""
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"config key {key!r} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"config key {key!r} must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)  # YAML reads 1e-3 (no dot) as a string
            except ValueError:
                pass
        raise ConfigError(f"config key {key!r} must be a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"config key {key!r} must be a string, got {value!r}")
    raise ConfigError(f"config key {key!r} has an unsupported type {tp!r}")  # pragma: no cover
