"""The one check every section's validation uses: a condition, and the error that names the key."""

from __future__ import annotations

from typing import Any

from nwb_autolfads.errors import ConfigError

__all__ = ["check"]


def check(cond: bool, key: str, value: Any, fix: str) -> None:
    """Refuse a setting whose value breaks a rule.

    Parameters
    ----------
    cond : bool
        The rule holds.
    key : str
        The setting's dotted key, e.g. ``train.lr``.
    value : Any
        The value given.
    fix : str
        What to give instead.

    Returns
    -------
    None

    Raises
    ------
    ConfigError
        When ``cond`` is false: ``invalid config value KEY=VALUE: FIX``.
    """
    if not cond:
        raise ConfigError(f"invalid config value {key}={value!r}: {fix}")
