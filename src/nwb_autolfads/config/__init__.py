"""Configuration: small frozen dataclasses grouped by concern.

The whole run is described by one :class:`RunConfig`. It is built from (in increasing
priority) the defaults of its sections, a named preset, a YAML/JSON config file and explicit
overrides (CLI options or keyword arguments). Unknown keys, wrong types and out-of-range values raise
:class:`~nwb_autolfads.errors.ConfigError` naming the key, the value and the fix.

Sizes that depend on the data (number of channels, number of factors when left as ``None``)
are resolved from the data by :func:`RunConfig.resolved`; the resolved config is saved with
every result.

One module per concern: the sections in :mod:`~nwb_autolfads.config.data` (``data``,
``preprocess``, ``windows``), :mod:`~nwb_autolfads.config.model` (``model``, ``augment``),
:mod:`~nwb_autolfads.config.train` (``train``, ``pbt``) and :mod:`~nwb_autolfads.config.output`
(``inference``, ``output``); :mod:`~nwb_autolfads.config.run` (:class:`RunConfig`),
:mod:`~nwb_autolfads.config.presets`, :mod:`~nwb_autolfads.config.build` (:func:`build_config`),
:mod:`~nwb_autolfads.config.coercion` (typed sections from mappings),
:mod:`~nwb_autolfads.config.mappings` (merging), :mod:`~nwb_autolfads.config.migrations` (keys
of earlier versions) and :mod:`~nwb_autolfads.config.show` (the settings' documentation, as
``config --show`` prints it). Import the names from here.

May import: PyYAML, :mod:`nwb_autolfads.errors`, :mod:`nwb_autolfads.modalities` and
:mod:`nwb_autolfads.model.registry` (both light). Never torch, numpy or pynwb: the CLI's
``--help`` and every stage import this package.
"""

from __future__ import annotations

from nwb_autolfads.config.build import build_config, load_config_file, warn_interval_samples
from nwb_autolfads.config.data import (ALREADY_BINNED_BELOW_HZ, DEFAULT_BIN_SIZE, DataConfig, PreprocessConfig,
                                       WindowConfig)
from nwb_autolfads.config.migrations import EPOCH_KEYS, legacy_to_steps
from nwb_autolfads.config.model import AugmentConfig, ModelConfig
from nwb_autolfads.config.output import InferenceConfig, OutputConfig
from nwb_autolfads.config.presets import PRESETS
from nwb_autolfads.config.run import RunConfig
from nwb_autolfads.config.show import field_docs
from nwb_autolfads.config.train import (PBT_HYPERPARAMETERS, PBTConfig, SearchRange, TrainConfig,
                                        configured_hyperparameters)

__all__ = [
    "DataConfig",
    "PreprocessConfig",
    "WindowConfig",
    "DEFAULT_BIN_SIZE",
    "ALREADY_BINNED_BELOW_HZ",
    "ModelConfig",
    "AugmentConfig",
    "TrainConfig",
    "SearchRange",
    "PBTConfig",
    "PBT_HYPERPARAMETERS",
    "configured_hyperparameters",
    "InferenceConfig",
    "OutputConfig",
    "RunConfig",
    "PRESETS",
    "build_config",
    "warn_interval_samples",
    "load_config_file",
]
