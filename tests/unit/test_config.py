import json

import pytest
import yaml

from nwb_autolfads.config import PRESETS, RunConfig, build_config, load_config_file
from nwb_autolfads.errors import ConfigError


def test_defaults_round_trip_through_yaml_and_json():
    cfg = RunConfig()
    assert RunConfig.from_dict(yaml.safe_load(cfg.to_yaml())) == cfg
    assert RunConfig.from_dict(json.loads(cfg.to_json())) == cfg


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_builds(preset):
    cfg = build_config(preset)
    assert cfg.preset == preset


def test_smoke_preset_is_small_and_default_is_full():
    smoke, default = build_config("smoke"), build_config("default")
    assert smoke.train.max_steps <= 50 and smoke.model.gen_dim < default.model.gen_dim
    assert default.inference.mode == "sample" and default.inference.n_samples == 50


def test_priority_defaults_preset_file_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("preset: smoke\ntrain:\n  lr: 0.001\n  max_steps: 7\nseed: 3\n")
    cfg = build_config(file=f, overrides={"train.max_steps": 9})
    assert cfg.preset == "smoke"  # from the file
    assert cfg.model.gen_dim == PRESETS["smoke"]["model"]["gen_dim"]
    assert cfg.train.lr == 0.001 and cfg.seed == 3
    assert cfg.train.max_steps == 9  # override beats file
    # the file's preset and an explicit one must agree (see test_preset_and_config_file_rule)
    assert build_config(preset="smoke", file=f).preset == "smoke"


def test_preset_and_config_file_rule(tmp_path):
    """The preset applies underneath the file, the file's values win; a file naming another preset is refused."""
    dumped = tmp_path / "my.yaml"
    dumped.write_text(build_config().to_yaml(comments=True))  # what `config --show > my.yaml` writes
    with pytest.raises(ConfigError, match="made with preset 'default'.*config --show --preset quick"):
        build_config(preset="quick", file=dumped)
    partial = tmp_path / "partial.yaml"
    partial.write_text("train:\n  max_steps: 7\n")  # names no preset: the preset applies underneath
    cfg = build_config(preset="quick", file=partial)
    assert cfg.preset == "quick" and cfg.train.max_steps == 7
    assert cfg.pbt.population == 1 and cfg.model.gen_dim == PRESETS["quick"]["model"]["gen_dim"]
    assert build_config(file=partial).pbt.population == 20


def test_commented_yaml_documents_every_setting_and_round_trips():
    from nwb_autolfads.config import field_docs

    cfg = build_config("quick")
    text = cfg.to_yaml(comments=True)
    assert yaml.safe_load(text) == cfg.to_dict()
    assert "  # Model bin width in seconds. null (the default): EMG that is already rectified and binned\n" in text
    assert "  bin_size: null\n" in text

    def leaves(d, prefix=""):
        for k, v in d.items():
            yield from leaves(v, f"{prefix}{k}.") if isinstance(v, dict) else [prefix + k]
    docs = field_docs()
    assert [k for k in leaves(cfg.to_dict()) if not docs.get(k)] == []


def test_yaml_number_written_without_dot_is_accepted(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  lr: 1e-3\n")
    assert build_config(file=f).train.lr == pytest.approx(1e-3)


@pytest.mark.parametrize("overrides, words", [
    ({"train.bogus": 1}, ["train.bogus", "valid keys"]),
    ({"bogus": 1}, ["bogus"]),
    ({"train.max_steps": "ten"}, ["train.max_steps", "integer"]),
    ({"train.max_steps": 2.5}, ["train.max_steps", "integer"]),
    ({"train.valid_every": 0}, ["train.valid_every", "steps"]),
    ({"train.valid_windows": 0}, ["train.valid_windows"]),
    ({"pbt.generation_steps": 0}, ["pbt.generation_steps"]),
    ({"train.lr": -1.0}, ["train.lr", "learning rate"]),
    ({"augment.cd_rate": 1.0}, ["augment.cd_rate"]),
    ({"windows.overlap_bins": 50}, ["windows.overlap_bins"]),
    ({"data.preprocessed": "yes"}, ["data.preprocessed", "true or false"]),
    ({"model.observation": "cauchy"}, ["model.observation"]),
    ({"train": 3}, ["train", "mapping"]),
    ({"device": "tpu"}, ["device"]),
])
def test_bad_values_name_the_key_and_the_fix(overrides, words):
    with pytest.raises(ConfigError) as info:
        build_config("default", overrides=overrides)
    for word in words:
        assert word in str(info.value)


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset"):
        build_config("turbo")


def test_config_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config_file(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config_file(lst)


def test_channel_names_from_comma_string():
    cfg = build_config(overrides={"data.channel_names": "TA, MG,LG"})
    assert cfg.data.channel_names == ("TA", "MG", "LG")


def test_resolved_infers_factor_count_from_channels():
    cfg = RunConfig()
    assert cfg.model.factor_dim is None
    assert cfg.resolved(12).model.factor_dim == 9
    assert cfg.resolved(2).model.factor_dim == 2
    fixed = cfg.updated({"model.factor_dim": 4})
    assert fixed.resolved(12).model.factor_dim == 4
    floor = cfg.updated({"model.min_factors": 8})  # the quick preset's: 8 for few muscles, the rule above
    assert [floor.resolved(n).model.factor_dim for n in (4, 5, 12, 20)] == [8, 8, 9, 15]
    assert build_config("quick").resolved(5).model.factor_dim == 8
    assert build_config("quick", overrides={"data.modalities": ["spikes"]}).resolved(5).model.factor_dim == 4
    assert build_config("default").resolved(5).model.factor_dim == 4
    assert floor.updated({"model.factor_dim": 3}).resolved(5).model.factor_dim == 3  # an explicit count wins
    with pytest.raises(ConfigError, match="model.min_factors"):
        RunConfig().updated({"model.min_factors": 0})


def test_configs_are_frozen():
    cfg = RunConfig()
    with pytest.raises(Exception):
        cfg.seed = 3  # type: ignore[misc]


def test_zero_floor_needs_the_zero_inflated_gamma():
    with pytest.raises(ConfigError, match="zigamma"):
        build_config(overrides={"preprocess.floor": 0.0})
    cfg = build_config(overrides={"preprocess.floor": 0.0, "model.observation": "zigamma"})
    assert cfg.model.observation == "zigamma"


def test_line_frequency_is_auto_by_default_and_can_be_set_or_turned_off(tmp_path):
    assert build_config().preprocess.line_frequency == "auto"
    assert build_config(overrides={"preprocess.line_frequency": 50}).preprocess.line_frequency == 50.0
    for off in ("off", "None", None, False):
        assert build_config(overrides={"preprocess.line_frequency": off}).preprocess.line_frequency is None
    path = tmp_path / "c.yaml"
    path.write_text("preprocess:\n  line_frequency: off\n  notch_harmonics: [1, 3]\n")  # YAML reads off as false
    cfg = build_config(file=path)
    assert cfg.preprocess.line_frequency is None and cfg.preprocess.notch_harmonics == (1, 3)
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="preprocess.line_frequency.*auto"):
        build_config(overrides={"preprocess.line_frequency": "fifty"})
    with pytest.raises(ConfigError, match="preprocess.notch_harmonics"):
        build_config(overrides={"preprocess.notch_harmonics": [0, 2]})
def test_bad_units_choice():
    assert build_config().data.bad_units == "refuse"
    assert build_config(overrides={"data.bad_units": "exclude"}).data.bad_units == "exclude"
    with pytest.raises(ConfigError, match="data.bad_units='sort'.*'exclude'"):
        build_config(overrides={"data.bad_units": "sort"})


def test_a_file_that_overrides_its_presets_values_is_warned_about(tmp_path, caplog):
    """`config --show` of the default preset with only its `preset:` line changed to quick: the
    file's 20-member population wins, which must not pass silently as a 'quick' run."""
    path = tmp_path / "my.yaml"
    path.write_text(build_config().to_yaml().replace("preset: default", "preset: quick"))
    with caplog.at_level("WARNING"):
        cfg = build_config(preset="quick", file=path)
    assert cfg.pbt.population == 20  # the documented rule: the file's values win
    assert "sets" in caplog.text and "pbt.population 20 (preset: 1)" in caplog.text
    caplog.clear()
    path.write_text(build_config("quick").to_yaml())  # a file made for the preset: no warning
    with caplog.at_level("WARNING"):
        build_config(preset="quick", file=path)
    assert "preset sets otherwise" not in caplog.text


@pytest.mark.parametrize("old, new", [("train.max_epochs", "train.max_steps"), ("train.min_epochs", "train.min_steps"),
                                      ("train.ramp_epochs", "train.ramp_steps"),
                                      ("pbt.generation_epochs", "pbt.generation_steps")])
def test_an_epoch_budget_is_refused_naming_the_step_key(tmp_path, old, new):
    section, key = old.split(".")
    f = tmp_path / "old.yaml"
    f.write_text(f"{section}:\n  {key}: 30\n")
    for kwargs in ({"file": f}, {"overrides": {old: 30}}):
        with pytest.raises(ConfigError) as info:
            build_config("quick", **kwargs)
        message = str(info.value)
        assert old in message and repr(new) in message and "ceil(training windows / train.batch_size)" in message
        assert "\n" not in message


def test_a_config_file_written_by_an_earlier_version_is_refused(tmp_path):
    f = tmp_path / "show.yaml"
    old = build_config("quick").to_dict()
    old["train"] = {**{k: v for k, v in old["train"].items() if not k.endswith("_steps")}, "max_epochs": 150}
    f.write_text(yaml.safe_dump(old))
    with pytest.raises(ConfigError, match="train.max_epochs.*train.max_steps"):
        build_config(file=f)


def test_saved_configs_of_earlier_versions_load_with_their_budgets_in_steps():
    saved = {"train": {"max_epochs": 150, "min_epochs": 30, "ramp_epochs": 30, "early_stopping_patience": 30,
                       "batch_size": 16, "lr_patience": 6}, "pbt": {"population": 20, "generation_epochs": 25}}
    cfg = RunConfig.from_saved(saved, n_train=119)  # 8 steps per epoch
    assert (cfg.train.max_steps, cfg.train.min_steps, cfg.train.ramp_steps) == (1200, 240, 240)
    assert cfg.train.early_stopping_patience == 240 and cfg.pbt.generation_steps == 200
    assert cfg.train.valid_every == 8 and cfg.train.lr_patience == 6  # one check per epoch, as they validated
    unknown = RunConfig.from_saved(saved)  # no window count: the budgets are not guessed
    assert unknown.train.max_steps == RunConfig().train.max_steps
    assert RunConfig.from_saved(RunConfig().to_dict()) == RunConfig()  # a current config is left as it is


def test_budgets_that_contradict_each_other_are_warned(caplog):
    """Settings the run would silently not honour are said: a ramp longer than the training, a
    patience shorter than one check, single-model budgets given to a population."""
    import logging

    with caplog.at_level(logging.WARNING, logger="nwb_autolfads.config"):
        build_config("quick")
        build_config("default")
        build_config("smoke", overrides={"pbt.population": 1})
    assert caplog.text == ""  # the presets themselves are consistent
    with caplog.at_level(logging.WARNING, logger="nwb_autolfads.config"):
        build_config("quick", overrides={"train.ramp_steps": 5000, "train.early_stopping_patience": 3})
    assert "never reach full weight (at most 40%)" in caplog.text
    assert "shorter than one validation interval" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="nwb_autolfads.config"):
        build_config("smoke", overrides={"train.max_steps": 5})
    assert "train.max_steps set but not used: a population of 2" in caplog.text


@pytest.mark.parametrize("value", [0, 0.0, 1, 1.0, 90, -0.1, "ninety", True])
def test_a_credible_interval_is_a_probability_strictly_between_0_and_1(value):
    with pytest.raises(ConfigError) as info:
        build_config("quick", overrides={"inference.interval": value})
    assert "inference.interval" in str(info.value)


def test_the_credible_interval_defaults_to_90_percent_is_documented_and_can_be_turned_off():
    from nwb_autolfads.config import field_docs

    cfg = build_config("quick")
    assert cfg.inference.interval == 0.9 and cfg.inference.with_interval
    assert build_config("quick", overrides={"inference.interval": 0.5}).inference.interval == 0.5
    off = build_config("quick", overrides={"inference.interval": None})
    assert off.inference.interval is None and not off.inference.with_interval
    smoke = build_config("smoke")  # posterior means: no samples, so no interval whatever interval says
    assert smoke.inference.mode == "mean" and not smoke.inference.with_interval
    text = cfg.to_yaml(comments=True)
    assert "  interval: 0.9\n" in text and "credible interval" in field_docs()["inference.interval"]
    assert "mode: mean" in field_docs()["inference.interval"]


@pytest.mark.parametrize("interval, n_samples, warned", [(0.99, 20, True), (0.99, 200, False), (0.9, 20, False),
                                                         (0.9, 19, True), (0.5, 4, False), (0.95, 39, True),
                                                         # float error in 2 / (1 - 0.9998) = 10000.000000001
                                                         (0.9998, 10000, False), (0.9998, 9999, True),
                                                         (1e-9, 2, False), (0.5, 3, True)])
def test_too_few_posterior_samples_for_the_interval_are_warned_about(caplog, interval, n_samples, warned):
    """With fewer than one sample expected beyond each bound the interval's bounds are the extreme
    samples: the band is too narrow, which must not pass silently (quick preset: 20 samples)."""
    with caplog.at_level("WARNING"):
        build_config("quick", overrides={"inference.interval": interval, "inference.n_samples": n_samples})
    assert ("inference.n_samples >=" in caplog.text) is warned
    if warned:
        assert f"inference.interval={interval!r} with inference.n_samples={n_samples}" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):  # no interval, no samples: nothing to warn about
        build_config("quick", overrides={"inference.interval": None, "inference.n_samples": n_samples})
        build_config("quick", overrides={"inference.mode": "mean", "inference.interval": interval})
    assert "inference.n_samples >=" not in caplog.text


def test_an_interval_next_to_one_is_named_as_given_and_not_answered_with_billions_of_samples(caplog):
    with caplog.at_level("WARNING"):
        build_config("quick", overrides={"inference.interval": 0.9999999999})
    assert "inference.interval=0.9999999999 " in caplog.text and "use a smaller interval" in caplog.text
    assert "n_samples >=" not in caplog.text


def test_the_quick_preset_sets_its_emg_controller_for_emg_alone():
    """Issue 15: the controller values that made the quick preset follow few-muscle EMG made it much
    worse on spikes, so they apply when EMG is the only modality; a file's or an override's value wins."""
    emg = build_config("quick")
    assert (emg.model.co_dim, emg.model.co_prior_var, emg.model.dropout, emg.model.min_factors,
            emg.train.kl_co_scale) == (6, 1.0, 0.0, 8, 1e-6)
    for modalities in (["spikes"], "emg+spikes"):
        other = build_config("quick", overrides={"data.modalities": modalities})
        assert (other.model.co_dim, other.model.co_prior_var, other.model.dropout, other.model.min_factors,
                other.train.kl_co_scale) == (2, 0.1, 0.1, 2, 1e-4)
    assert build_config("quick", overrides={"model.dropout": 0.2}).model.dropout == 0.2
    assert build_config("quick", overrides={"data.model": "spikes", "model.co_dim": 5}).model.co_dim == 5
    assert build_config("default").model.co_dim == RunConfig().model.co_dim  # other presets: unchanged


def test_a_quick_emg_file_used_for_spikes_warns(tmp_path, caplog):
    """A `config --show --preset quick` file holds the EMG controller values; used for a spikes run its
    values still win, and the warning names them against the spikes run's preset values."""
    path = tmp_path / "quick.yaml"
    path.write_text(build_config("quick").to_yaml())
    with caplog.at_level("WARNING", logger="nwb_autolfads.config"):
        cfg = build_config(file=path, overrides={"data.modalities": ["spikes"]})
    assert cfg.model.dropout == 0.0 and cfg.model.co_dim == 6
    assert "model.dropout 0.0 (preset: 0.1)" in caplog.text
    assert "config --show --preset quick --set data.modalities=spikes" in caplog.text  # a file for this run
    caplog.clear()
    with caplog.at_level("WARNING", logger="nwb_autolfads.config"):
        build_config(file=path)  # the file was made for this very run: no warning
    assert "sets" not in caplog.text


def test_a_quick_emg_config_object_used_for_spikes_warns(caplog):
    """A RunConfig object keeps what it was built with: a quick config built for EMG and switched to
    spikes (``updated``, or run(config=..., overrides=...)) keeps the EMG controller and says so."""
    emg = build_config("quick")
    with caplog.at_level("WARNING", logger="nwb_autolfads.config"):
        spikes = emg.updated({"data.modalities": ["spikes"]})
    assert spikes.model.co_dim == 6 and spikes.preset == "quick"
    assert "model.dropout 0.0 (for spikes: 0.1)" in caplog.text and "--model spikes" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="nwb_autolfads.config"):
        emg.updated({"data.modalities": ["spikes"], "model.dropout": 0.1, "model.co_dim": 2, "model.co_prior_var": 0.1,
                     "model.min_factors": 2, "train.kl_co_scale": 1e-4})  # every such value set: nothing kept
        build_config("default").updated({"data.modalities": ["spikes"]})  # no modality-dependent values
        emg.updated({"train.lr": 1e-3})
    assert "keeps the values" not in caplog.text
    with caplog.at_level("WARNING", logger="nwb_autolfads.config"):
        build_config("quick", overrides={"data.model": "spikes"}).updated({"data.modalities": ["emg"]})
    assert "model.co_dim 2 (for emg: 6)" in caplog.text  # the other way round too


def test_missing_settings_of_an_earlier_version_read_as_defaults():
    from nwb_autolfads.config.migrations import missing_as_defaults

    old = {"model": {"co_dim": 2}, "seed": 1}
    defaults = {"model": {"co_dim": 3, "min_factors": 2}, "train": {"lr": 1.0}, "seed": 0}
    assert missing_as_defaults(old, defaults) == {"model": {"co_dim": 2, "min_factors": 2}, "seed": 1}
    assert old == {"model": {"co_dim": 2}, "seed": 1}  # left as it was


def test_a_malformed_data_section_is_named_not_the_modalities(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("data: spikes\n")
    with pytest.raises(ConfigError, match="config section 'data' must be a mapping"):
        build_config("quick", file=path)
