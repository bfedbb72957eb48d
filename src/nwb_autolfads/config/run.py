"""The whole configuration of one run: :class:`RunConfig`, its sections, and its YAML/JSON form."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

import yaml

from nwb_autolfads.config.checks import check
from nwb_autolfads.config.coercion import from_mapping
from nwb_autolfads.config.data import DataConfig, PreprocessConfig, WindowConfig
from nwb_autolfads.config.mappings import deep_merge, expand_dotted, to_plain
from nwb_autolfads.config.migrations import legacy_to_steps, renamed_keys
from nwb_autolfads.config.model import AugmentConfig, ModelConfig
from nwb_autolfads.config.output import InferenceConfig, OutputConfig
from nwb_autolfads.config.presets import PRESETS
from nwb_autolfads.config.show import commented, field_docs
from nwb_autolfads.config.train import PBTConfig, TrainConfig
from nwb_autolfads.model.registry import observation_names, observation_spec

__all__ = ["RunConfig"]


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines one run. Serialisable to YAML/JSON.

    Frozen: change values with :meth:`updated` (validated). Build one with
    :func:`build_config`; the sections and every setting, with its default and unit, are listed
    by ``nwb-autolfads config --show``.

    Attributes
    ----------
    seed, device, preset
        As documented below each field.
    data : DataConfig
        Which signals to read and model.
    preprocess : PreprocessConfig
        Raw-EMG preprocessing (docs/science.md, EMG preprocessing).
    windows : WindowConfig
        Bins, windows and merging (docs/science.md, Windows and merging).
    model : ModelConfig
        The LFADS architecture and observation model (docs/science.md, LFADS).
    augment : AugmentConfig
        Training-time augmentations (docs/science.md, Augmentations).
    train : TrainConfig
        Optimisation and regularisation (docs/science.md, Training objective).
    pbt : PBTConfig
        Population-based training (docs/science.md, Population-based training).
    inference : InferenceConfig
        How the outputs are inferred (docs/science.md, Inference).
    output : OutputConfig
        What a new output file holds.

    Raises
    ------
    ConfigError
        On construction, for an invalid value (e.g. a negative seed, or ``preprocess.floor``
        0 with the Gamma observation model).
    """

    seed: int = 0
    """Random seed of the run (weights, batches, augmentations, PBT)."""
    device: str = "auto"
    """``auto`` (CUDA when available), ``cpu`` or ``cuda``."""
    preset: str = "default"
    """The preset the configuration was built on (smoke, quick, default, paper). Budgets in
    optimisation steps, the same for any recording length: smoke 2 members x 2 generations x 10
    steps (seconds); quick one model, at most 2000 steps of 16 windows (1-3 min of training,
    2-6 min the whole run, measured on 1-60 min of 16-muscle EMG on 2 cores); default 20 members x
    at most 40 generations x 100 steps of 32 windows (measured on an hour of 16-muscle EMG on 2 idle
    cores: 46 min of training, at most ~52 min); paper the same with at most 100 generations (at
    most ~2.1 h of training). A busy machine takes longer; GPU not measured. A run prints its own
    estimate, timed on its data, before training. A config file
    that names one must agree with --preset; the preset applies underneath the file's values."""
    data: DataConfig = field(default_factory=DataConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    windows: WindowConfig = field(default_factory=WindowConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    pbt: PBTConfig = field(default_factory=PBTConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def __post_init__(self) -> None:
        check(self.seed >= 0, "seed", self.seed, "use a non-negative integer")
        check(self.device in ("auto", "cpu", "cuda"), "device", self.device, "use 'auto', 'cpu' or 'cuda'")
        check(self.preset in PRESETS, "preset", self.preset, f"use one of {sorted(PRESETS)}")
        if self.preprocess.floor <= 0 and not observation_spec(self.model.observation).zeros:
            with_zeros = [n for n in observation_names("nonnegative") if observation_spec(n).zeros]
            check(False, "preprocess.floor", self.preprocess.floor,
                  f"the {observation_spec(self.model.observation).label} likelihood has no support at zero: use a "
                  f"floor > 0, or model.observation: {' or '.join(with_zeros) or '(none registered)'} for data "
                  "with exact zeros")

    # ----------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        return to_plain(dataclasses.asdict(self))

    def to_yaml(self, comments: bool = False) -> str:
        """The configuration as YAML; ``comments=True`` writes each setting's documentation (with
        its unit) as a YAML comment above it (:func:`field_docs`), as ``config --show`` does."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        return commented(text, field_docs()) if comments else text

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunConfig":
        return from_mapping(cls, renamed_keys(data), prefix="")

    @classmethod
    def from_saved(cls, data: Mapping[str, Any], n_train: int | None = None) -> "RunConfig":
        """The configuration a result was written with, including results of versions that
        counted budgets in epochs (converted by :func:`legacy_to_steps` with ``n_train``, the
        run's training windows). New settings are refused in a config file, never here."""
        return from_mapping(cls, renamed_keys(legacy_to_steps(data, n_train)), prefix="")

    def updated(self, overrides: Mapping[str, Any]) -> "RunConfig":
        """A copy with (possibly nested, dotted or dict) overrides applied and validated. Changing
        ``data.modalities`` keeps every other value; where the preset sets some values for the old
        modalities only, a warning names them (:func:`~nwb_autolfads.config.build.warn_preset_modalities`)."""
        merged = deep_merge(self.to_dict(), renamed_keys(expand_dotted(overrides)))
        new = RunConfig.from_dict(merged)
        if new.data.modalities != self.data.modalities:
            from nwb_autolfads.config.build import warn_preset_modalities

            warn_preset_modalities(self, new)
        return new

    def resolved(self, n_channels: int) -> "RunConfig":
        """Fill in the sizes that depend on the data."""
        return replace(self, model=replace(self.model, factor_dim=self.model.factors_for(n_channels)))

