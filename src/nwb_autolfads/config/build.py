"""Building a run's configuration: defaults <- preset <- config file <- overrides, with the
warnings that say where a file undoes its preset or step budgets contradict each other."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Mapping

import yaml

from nwb_autolfads.config.mappings import deep_merge, expand_dotted, flat_keys
from nwb_autolfads.config.migrations import renamed_keys
from nwb_autolfads.config.presets import EMG_ONLY, PRESETS, preset_values
from nwb_autolfads.config.run import RunConfig
from nwb_autolfads.errors import ConfigError
from nwb_autolfads.modalities import parse_modalities

__all__ = ["build_config", "load_config_file"]

# The package's logger (its warnings are filtered and captured by this name).
log = logging.getLogger("nwb_autolfads.config")


def build_config(preset: str | None = None, file: str | Path | None = None,
                 overrides: Mapping[str, Any] | None = None) -> RunConfig:
    """Build a validated run configuration: defaults <- preset <- config file <- overrides.
    A preset's values can depend on the modalities the file and overrides ask for
    (:func:`~nwb_autolfads.config.presets.preset_values`: the quick preset's controller for EMG alone).

    The rule for a preset and a config file together: the preset applies *underneath* the file,
    and every value the file sets wins. A file that names its preset (``nwb-autolfads config
    --show`` writes ``preset:``, and every value of that preset) uses it when no preset is
    passed. Warnings (``logging``) say where the file overrides its preset's values and where
    step budgets contradict each other.

    Parameters
    ----------
    preset : str, optional
        One of :data:`PRESETS` (``smoke``, ``quick``, ``default``, ``paper``); default the
        file's preset, else ``default``.
    file : str or pathlib.Path, optional
        A YAML (or JSON) config file: a mapping of sections (``seed``, ``data``, ``preprocess``,
        ``windows``, ``model``, ``augment``, ``train``, ``pbt``, ``inference``, ``output``).
    overrides : mapping, optional
        Settings that win over everything else: nested dicts or dotted keys
        (``{"train.lr": 1e-3}``).

    Returns
    -------
    RunConfig
        The configuration, every value checked.

    Raises
    ------
    ConfigError
        An unknown preset; a preset that differs from the one the file names (the file's values
        would silently undo it while the run is labelled with it); a missing or invalid file;
        an unknown key, a wrong type or an out-of-range value (the message names the key, the
        value and the fix).
    """
    file_data: dict[str, Any] = load_config_file(file) if file is not None else {}
    preset = _choose_preset(preset, file, file_data.get("preset"))
    given = [renamed_keys({k: v for k, v in file_data.items() if k != "preset"}),
             renamed_keys(expand_dotted(overrides or {}))]  # the file's values, then the overrides
    modalities = _modalities(deep_merge(RunConfig().to_dict(), PRESETS[preset]), given)
    merged = deep_merge(RunConfig().to_dict(), preset_values(preset, modalities))
    merged["preset"] = preset
    _warn_preset_overridden(preset, modalities, file, file_data)
    for values in given:
        merged = deep_merge(merged, values)
    cfg = RunConfig.from_dict(merged)
    _warn_budget_conflicts(cfg, {**flat_keys(file_data), **flat_keys(expand_dotted(overrides or {}))})
    warn_interval_samples(cfg.inference)
    return cfg


def _modalities(base: Mapping[str, Any], given: list[Mapping[str, Any]]) -> tuple[str, ...]:
    """The modalities a run will model: ``data.modalities`` of ``base`` with ``given`` over it (a
    preset's values for some modalities depend on them, :func:`~nwb_autolfads.config.presets.preset_values`).

    A malformed ``data`` section counts as the default modalities here; building the configuration
    then refuses it with a message about that section."""
    for values in given:
        base = deep_merge(base, values)
    data = base.get("data")
    try:
        return parse_modalities(data.get("modalities") if isinstance(data, Mapping) else None)
    except ConfigError:  # a malformed data section: RunConfig.from_dict says what is wrong with it
        return RunConfig().data.modalities


def _choose_preset(preset: str | None, file, file_preset: Any) -> str:
    """The preset a configuration is built on: the one passed, else the one the file names, else
    ``default``; refused when the two disagree (the file's values would undo the passed one while
    the run is labelled with it) or when it is not one of :data:`PRESETS`."""
    if preset is not None and file_preset is not None and preset != file_preset:
        raise ConfigError(f"--preset {preset} but config file {str(file)!r} was made with preset {file_preset!r} "
                          f"(its values would override the {preset!r} preset): write a config for it with "
                          f"`nwb-autolfads config --show --preset {preset} > FILE`, set 'preset: {preset}' and only "
                          "the values you change in the file, or leave out --preset")
    if preset is None:
        preset = file_preset if file_preset is not None else "default"
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset {preset!r}: use one of {', '.join(sorted(PRESETS))}")
    return preset



def _preset_keys(preset: str) -> list[str]:
    """The dotted keys ``preset`` sets for some modalities (:func:`~nwb_autolfads.config.presets.preset_values`)."""
    return list(flat_keys(deep_merge(PRESETS[preset], EMG_ONLY.get(preset, {}))))


def _preset_settings(preset: str, modalities) -> dict[str, Any]:
    """Every setting, by dotted key, of the defaults with ``preset``'s values for ``modalities``."""
    return flat_keys(deep_merge(RunConfig().to_dict(), preset_values(preset, modalities)))


def warn_preset_modalities(before: RunConfig, after: RunConfig) -> None:
    """Warn when ``after`` (``before`` with other ``data.modalities``, e.g. ``RunConfig.updated``
    or ``run(config=cfg, overrides={"data.modalities": ...})``) keeps values its preset sets only for
    ``before``'s modalities (:func:`~nwb_autolfads.config.presets.preset_values`: the quick preset's
    controller for EMG alone): a configuration object keeps what it was built with, so a quick config
    built for EMG would train a spikes model with the EMG controller, labelled ``quick``."""
    preset = before.preset
    keys = _preset_keys(preset)
    was, now = _preset_settings(preset, before.data.modalities), _preset_settings(preset, after.data.modalities)
    values = flat_keys(after.to_dict())
    kept = [f"{k} {values[k]!r} (for {'+'.join(after.data.modalities)}: {now[k]!r})" for k in keys
            if was.get(k) != now.get(k) and values.get(k) == was.get(k)]
    if kept:
        log.warning("a configuration built for the %r preset modelling %s now models %s and keeps the values the "
                    "preset sets for %s: %s. Build it for what it models (build_config(%r, overrides={'data.modalities': "
                    "%r}), or nwb-autolfads run FILE --preset %s --model %s), or set those values",
                    preset, "+".join(before.data.modalities), "+".join(after.data.modalities),
                    "+".join(before.data.modalities), ", ".join(kept), preset, list(after.data.modalities), preset,
                    "+".join(after.data.modalities))


def warn_interval_samples(inf) -> None:
    """Warn when the posterior samples are too few for the credible interval asked: with fewer
    than one sample expected beyond each bound ((1 - interval) / 2 x n_samples < 1) the bounds are
    interpolated between the outermost samples, none lies beyond them, so the posterior part of
    the band is too narrow, the more so the fewer the samples. ``inf``: an InferenceConfig.
    Called by :func:`build_config` and where a run is given a RunConfig object."""
    if not inf.with_interval:
        return
    # 1e-6: float error in 2 / (1 - interval) (0.9998 gives 10000.000000001) must not ask one sample more
    need = math.ceil(2.0 / (1.0 - inf.interval) - 1e-6)
    if inf.n_samples < need:
        advice = (f"use inference.n_samples >= {need}, or a smaller interval" if need <= 10_000 else
                  "use a smaller interval (0.9 or 0.95: 20 or 40 samples)")
        log.warning("inference.interval=%r with inference.n_samples=%d: fewer than one posterior sample is expected "
                    "beyond each bound (the %.3g%% and %.6g%% quantiles of %d samples fall between their outermost "
                    "ones), so the band is too narrow; %s", inf.interval, inf.n_samples, 50 * (1 - inf.interval),
                    50 * (1 + inf.interval), inf.n_samples, advice)


def _warn_budget_conflicts(cfg: "RunConfig", given: Mapping[str, Any]) -> None:
    """Warn where the step budgets contradict each other, so the run would silently do less than
    its settings say: penalties that never reach full weight, a patience shorter than the checks
    it counts, or single-model budgets set for a population (which trains ``pbt.max_generations``
    x ``pbt.generation_steps`` steps per member instead)."""
    t, p = cfg.train, cfg.pbt
    steps = t.max_steps if p.population == 1 else p.generation_steps * p.max_generations
    where = ("train.max_steps" if p.population == 1 else
             f"pbt.max_generations x pbt.generation_steps = {p.max_generations} x {p.generation_steps}")
    if t.ramp_steps > steps:
        log.warning("train.ramp_steps=%d is longer than the training (%s = %d steps): the KL and L2 penalties never "
                    "reach full weight (at most %.0f%%); lower train.ramp_steps or raise the budget", t.ramp_steps,
                    where, steps, 100.0 * steps / t.ramp_steps)
    if t.early_stopping_patience < t.valid_every:
        log.warning("train.early_stopping_patience=%d steps is shorter than one validation interval "
                    "(train.valid_every=%d): training stops at the first check without improvement; use a patience "
                    "of several intervals", t.early_stopping_patience, t.valid_every)
    if p.population == 1 and t.min_steps > t.max_steps:
        log.warning("train.min_steps=%d is above train.max_steps=%d: early stopping never applies", t.min_steps,
                    t.max_steps)
    if p.population == 1 and t.valid_every > t.max_steps:
        log.warning("train.valid_every=%d is above train.max_steps=%d: the model is validated once, at the end",
                    t.valid_every, t.max_steps)
    unused = [k for k in ("train.max_steps", "train.min_steps", "train.early_stopping_patience") if k in given]
    if p.population > 1 and unused:
        log.warning("%s set but not used: a population of %d trains pbt.max_generations x pbt.generation_steps "
                    "(%d x %d) steps per member and stops by the PBT rule; set those, or --population 1 for one "
                    "model", ", ".join(unused), p.population, p.max_generations, p.generation_steps)


def _warn_preset_overridden(preset: str, modalities: tuple[str, ...], file, file_data: Mapping[str, Any]) -> None:
    """Warn when a config file sets values its preset also sets, to other values: the file wins,
    so the run is that preset in name only for those settings (e.g. a `config --show` of the
    default preset whose ``preset:`` line was changed to ``quick`` trains a 20-member population)."""
    # every key the preset sets for some modalities, against what it gives this run's (a file made
    # for EMG sets the EMG-only values, which a spikes run gets from the defaults)
    expected, given = _preset_settings(preset, modalities), flat_keys(file_data)
    changed = [f"{k} {given[k]!r} (preset: {expected.get(k)!r})" for k in _preset_keys(preset)
               if "." in k and k in given and given[k] != expected.get(k)]
    if changed:
        # the preset's values for this run's modalities (EMG alone is the default)
        show = preset if modalities == ("emg",) else f"{preset} --set data.modalities={'+'.join(modalities)}"
        log.warning(
            "config file %r sets %d value(s) that the %r preset sets otherwise for modelling %s, and the file's values "
            "are used: %s. Make a file for this run with `nwb-autolfads config --show --preset %s`, or keep only the "
            "values you change", str(file), len(changed), preset, "+".join(modalities), ", ".join(changed), show)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """The settings of a YAML (or JSON) config file, as written; checked by :func:`build_config`.

    Parameters
    ----------
    path : str or pathlib.Path
        The file.

    Returns
    -------
    dict
        Its mapping of sections; ``{}`` for an empty file.

    Raises
    ------
    ConfigError
        The file is missing, is not valid YAML (the line is named) or does not hold a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist: give the path of a YAML file "
                          "(`nwb-autolfads config --show > my.yaml` writes one to start from)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" (line {line + 1})" if line is not None else ""
        raise ConfigError(f"config file {str(path)!r} is not valid YAML{where}: fix the syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping of sections "
                          f"(seed, data, preprocess, windows, model, augment, train, inference, output), "
                          f"not a {type(data).__name__}")
    return data
