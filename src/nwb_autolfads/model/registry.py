"""The registry of observation models: name -> metadata and class, without importing torch.

Configuration checks (``model.observation``), the CLI's choices and help, and the pipeline read
from here, so adding an observation model is one class plus its test: decorate a subclass of
:class:`~nwb_autolfads.model.observations.ObservationModel` with :func:`register_observation`
(or register a ``"module:Class"`` path, imported on first use). The built-in models are
registered by path below, so that ``import nwb_autolfads.config`` and ``nwb-autolfads --help``
stay fast (torch is imported only when a model is built by :func:`make_observation`).

May import: :mod:`nwb_autolfads.errors` only (no torch, no numpy): :mod:`nwb_autolfads.config`
imports it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["ObservationSpec", "register_observation", "observation_spec", "observation_names",
           "make_observation", "unregister_observation", "DATA_KINDS"]


@dataclass(frozen=True)
class ObservationSpec:
    """What the rest of the package needs to know about one observation model.

    Attributes
    ----------
    name : the value of ``model.observation`` (and of the class's ``name``), e.g. ``gamma``.
    target : the class, or its ``"module:Class"`` path (imported by :func:`make_observation`).
    label : how provenance and summaries name it, e.g. ``zero-inflated Gamma``.
    doc : one line for the CLI's help: what data it is for.
    zeros : whether the likelihood has support at exactly 0 (``False``: the preprocessing must
        floor the data above 0, ``preprocess.floor > 0``).
    data : the data it describes: ``nonnegative`` (continuous, >= 0: the EMG envelope; what
        ``model.observation`` accepts), ``counts`` (spike counts) or ``real`` (signed continuous
        data: force, kinematics).
    """

    name: str
    target: Any
    label: str
    doc: str
    zeros: bool = False
    data: str = "nonnegative"

    def load(self) -> type:
        """The class (imports its module for a ``"module:Class"`` path)."""
        if isinstance(self.target, str):
            module, _, attr = self.target.partition(":")
            return getattr(importlib.import_module(module), attr)
        return self.target


DATA_KINDS = ("nonnegative", "counts", "real")
"""What an observation model may describe (:attr:`ObservationSpec.data`)."""

_REGISTRY: dict[str, ObservationSpec] = {}


def register_observation(name: str | None = None, *, label: str | None = None, doc: str = "",
                         zeros: bool = False, data: str = "nonnegative",
                         target: Any = None) -> Callable[[type], type] | ObservationSpec:
    """Register an observation model under ``name``.

    As a class decorator (``target`` not given)::

        @register_observation("tweedie", label="Tweedie", doc="non-negative data with exact zeros", zeros=True)
        class Tweedie(ObservationModel): ...

    or directly with ``target`` (a class or a ``"module:Class"`` path), which returns the spec.
    ``name`` defaults to the class's ``name`` attribute.

    Raises
    ------
    ValueError
        ``name`` is already registered for another class, or is empty, or ``data`` is not one of
        :data:`DATA_KINDS`.
    """

    def add(obj: Any) -> ObservationSpec:
        key = name or getattr(obj, "name", "")
        if not key or not isinstance(key, str):
            raise ValueError("an observation model needs a name (the value of model.observation)")
        old = _REGISTRY.get(key)
        if old is not None and old.target is not obj and old.target != obj:
            raise ValueError(f"observation model {key!r} is already registered ({old.target!r}): choose another name")
        if data not in DATA_KINDS:
            raise ValueError(f"observation model {key!r}: data={data!r}, use one of {', '.join(DATA_KINDS)}")
        spec = ObservationSpec(name=key, target=obj, label=label or key, doc=doc, zeros=zeros, data=data)
        _REGISTRY[key] = spec
        return spec

    if target is not None:
        return add(target)

    def decorator(cls: type) -> type:
        add(cls)
        return cls

    return decorator


def unregister_observation(name: str) -> None:
    """Remove ``name`` from the registry (for tests that register a throwaway model)."""
    _REGISTRY.pop(name, None)


def observation_names(data: str | None = None) -> list[str]:
    """The registered names, in registration order (the built-in ones first); with ``data``, those
    that describe that kind of data (``nonnegative``: the choices of ``model.observation``)."""
    return [k for k, s in _REGISTRY.items() if data is None or s.data == data]


def observation_spec(name: str) -> ObservationSpec:
    """The spec of ``name``.

    Raises
    ------
    KeyError
        ``name`` is not registered (the message lists the registered names).
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown observation model {name!r}: use one of {', '.join(_REGISTRY)}") from None


def make_observation(name: str):
    """A new instance of the observation model ``name`` (imports torch).

    Raises
    ------
    ValueError
        ``name`` is not registered.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown observation model {name!r}: use one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name].load()()


# The built-in models, by path: their classes are in nwb_autolfads.model.observations (torch).
_OBS = "nwb_autolfads.model.observations"
register_observation("gamma", target=f"{_OBS}:Gamma", label="Gamma",
                     doc="non-negative continuous data, e.g. the EMG envelope (needs preprocess.floor > 0)")
register_observation("zigamma", target=f"{_OBS}:ZeroInflatedGamma", label="zero-inflated Gamma",
                     doc="non-negative data with exact zeros (EMG from systems that zero small values)", zeros=True)
register_observation("poisson", target=f"{_OBS}:Poisson", label="Poisson", doc="spike counts per bin", zeros=True,
                     data="counts")
register_observation("gaussian", target=f"{_OBS}:Gaussian", label="Gaussian",
                     doc="signed continuous data: force, kinematics", zeros=True, data="real")
