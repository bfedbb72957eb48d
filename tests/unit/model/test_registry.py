"""The observation registry: one place that config, CLI and pipeline read from."""

import subprocess
import sys

import pytest
import torch

from nwb_autolfads.cli import build_parser
from nwb_autolfads.config import build_config
from nwb_autolfads.errors import ConfigError
from nwb_autolfads.model.observations import Gamma, ObservationModel, get_observation
from nwb_autolfads.model.registry import (observation_names, observation_spec, register_observation,
                                          unregister_observation)


def test_builtin_models_resolve_to_classes_of_the_same_name():
    for name in observation_names():
        spec = observation_spec(name)
        cls = spec.load()
        assert issubclass(cls, ObservationModel) and cls.name == name
        assert spec.doc and spec.label
    assert observation_names("nonnegative") == ["gamma", "zigamma"]
    assert observation_spec("gaussian").data == "real" and observation_spec("poisson").data == "counts"


def test_registry_and_config_import_without_torch():
    code = ("import sys, nwb_autolfads.config, nwb_autolfads.model.registry as r; "
            "assert r.observation_names()[:2] == ['gamma', 'zigamma']; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.fixture
def throwaway():
    """A registered throwaway observation model (Gamma's maths under another name, zeros allowed)."""

    @register_observation("throwaway", label="Throwaway", doc="a model registered by a test", zeros=True)
    class Throwaway(Gamma):
        name = "throwaway"

    yield Throwaway
    unregister_observation("throwaway")


def test_a_registered_model_is_accepted_by_config_cli_and_pipeline(throwaway):
    cfg = build_config(overrides={"model.observation": "throwaway", "preprocess.floor": 0.0})
    assert cfg.model.observation == "throwaway"  # and its `zeros` allows floor 0
    args = build_parser().parse_args(["run", "x.nwb", "--observation", "throwaway"])
    assert args.observation == "throwaway"
    run_help = build_parser()._subparsers._group_actions[0].choices["run"].format_help()
    assert "throwaway: a model registered by a test" in " ".join(run_help.split())
    obs = get_observation("throwaway")
    assert isinstance(obs, throwaway)
    from nwb_autolfads.provenance import observation_name

    assert observation_name(cfg) == "Throwaway"


def test_after_unregistering_config_refuses_it(throwaway):
    unregister_observation("throwaway")
    with pytest.raises(ConfigError, match="model.observation"):
        build_config(overrides={"model.observation": "throwaway"})


def test_floor_rule_follows_the_models_support():
    with pytest.raises(ConfigError, match="no support at zero.*zigamma"):
        build_config(overrides={"preprocess.floor": 0.0})
    with pytest.raises(ConfigError, match="model.observation"):  # spikes' model is not one for the EMG
        build_config(overrides={"model.observation": "poisson"})


def test_a_name_cannot_be_registered_twice_for_another_class(throwaway):
    with pytest.raises(ValueError, match="already registered"):
        register_observation("throwaway", target=Gamma)
    with pytest.raises(ValueError, match="data="):
        register_observation("odd", target=Gamma, data="complex")


def test_make_observation_of_every_builtin_gives_a_torch_model():
    for name in observation_names():
        obs = get_observation(name)
        bias = obs.init_bias(torch.tensor([0.5, 1.5]))
        assert bias.shape == (2, obs.n_params)
