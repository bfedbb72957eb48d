"""The modality registry: names in the config and CLI, and the force entry's reading and binning."""

import logging
import subprocess
import sys

import numpy as np
import pytest
import yaml

from nwb_autolfads.cli import build_parser, main
from nwb_autolfads.config import RunConfig, build_config
from nwb_autolfads.data.signals import Signal
from nwb_autolfads.errors import ConfigError, SignalError
from nwb_autolfads.modalities import ContinuousInput, modality, modality_names, parse_modalities


def test_registered_modalities_and_their_observation_models():
    assert modality_names() == ["emg", "spikes", "force"]
    cfg = build_config()
    assert [modality(n).observation_name(cfg) for n in modality_names()] == ["gamma", "poisson", "gaussian"]
    assert sorted(modality_names(), key=lambda n: modality(n).rank) == ["spikes", "emg", "force"]  # model columns
    assert isinstance(modality("force"), ContinuousInput) and modality("force").output == "inferred_force"


@pytest.mark.parametrize("given, expected", [
    ("emg", ("emg",)), ("emg+spikes", ("emg", "spikes")), (["spikes", "emg"], ("emg", "spikes")),
    ("force+emg", ("emg", "force")), ("emg,force", ("emg", "force")), (["emg+spikes"], ("emg", "spikes"))])
def test_parse_modalities_gives_one_canonical_order(given, expected):
    assert parse_modalities(given) == expected


@pytest.mark.parametrize("given, match", [
    ("emg+emg", "each once"), ("emg+kinematic", "each once"), ([], "each once"),
    ("force", "alongside emg or spikes.*emg\\+force")])
def test_parse_modalities_refuses_with_the_fix(given, match):
    with pytest.raises(ConfigError, match=match):
        parse_modalities(given)


def test_config_names_a_list_and_reads_the_former_data_model_key(tmp_path):
    cfg = build_config(overrides={"data.modalities": ["emg", "force"]})
    assert cfg.data.modalities == ("emg", "force")
    assert cfg.to_dict()["data"]["modalities"] == ["emg", "force"] and "model" not in cfg.to_dict()["data"]
    assert build_config(overrides={"data.model": "emg+spikes"}).data.modalities == ("emg", "spikes")
    assert cfg.updated({"data.model": "spikes"}).data.modalities == ("spikes",)  # an old override replaces it
    old_file = tmp_path / "old.yaml"
    old_file.write_text(yaml.safe_dump({"data": {"model": "emg+spikes"}}))
    assert build_config(file=old_file).data.modalities == ("emg", "spikes")
    saved = build_config().to_dict()
    saved["data"] = {k: v for k, v in saved["data"].items() if k != "modalities"} | {"model": "spikes"}
    assert RunConfig.from_saved(saved).data.modalities == ("spikes",)  # a result of an earlier version
    with pytest.raises(ConfigError, match="disagree"):
        build_config(overrides={"data": {"model": "spikes", "modalities": ["emg"]}})
    shown = yaml.safe_load(build_config(overrides={"data.model": "emg+force"}).to_yaml())
    assert shown["data"]["modalities"] == ["emg", "force"]


def test_cli_model_is_a_spelling_of_the_list(capsys):
    assert build_parser().parse_args(["run", "x.nwb", "--model", "emg+force"]).model == ("emg", "force")
    with pytest.raises(SystemExit) as exc:
        main(["run", "x.nwb", "--model", "emg+torque"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "emg, spikes, force" in err


def test_modalities_import_without_the_nwb_stack_or_torch():
    code = ("import sys, nwb_autolfads.modalities; "
            "bad = [m for m in ('torch', 'pynwb', 'h5py') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def _force(times, values, unit="N"):
    return Signal(values=np.asarray(values, float).reshape(len(times), -1), channel_names=["force"], unit=unit,
                  source_path="processing/behavior/force", timestamps=np.asarray(times, float))


def test_force_is_zscored_on_the_bins_and_converted_back(caplog):
    t = np.arange(0, 10, 0.01) + 0.003  # 100 Hz, 0.003 - 9.993 s: its samples cover -0.002 - 9.998 s
    f = 20.0 + 5.0 * np.sin(2 * np.pi * 0.5 * t)
    centres = [np.arange(0.005, 10.01, 0.01)]
    with caplog.at_level(logging.WARNING):
        binned, masks = modality("force").bin(_force(t, f), centres, 0.01, 1.5)
    # 9.995 s is after the last sample but within the half period it covers (docs/science.md, Bin
    # times); the last centre, 10.005 s, is beyond it: not modelled, and said
    assert masks[0].sum() == centres[0].size - 1 and not masks[0][-1]
    assert "1 bins (0.0 s) outside the force series" in caplog.text
    z = binned.segments[0][masks[0]]
    assert abs(z.mean()) < 1e-5 and abs(z.std() - 1) < 1e-5
    assert binned.offsets[0] == pytest.approx(20.0, abs=0.1) and binned.scales[0] == pytest.approx(5 / np.sqrt(2), rel=0.01)
    back = binned.to_source(z.astype(float))
    np.testing.assert_allclose(back[:, 0], np.interp(centres[0][masks[0]], t, f), atol=0.05)
    assert binned.unit == "N" and binned.channel_names == ["force"]


def test_force_on_another_clock_or_constant_is_refused():
    t = np.arange(0, 10, 0.01)
    centres = [np.arange(100.005, 110.0, 0.01)]  # the model's bins: 100 s later (another clock)
    with pytest.raises(SignalError, match="covers 0 of the 1000 bins.*another clock"):
        modality("force").bin(_force(t, np.sin(t)), centres, 0.01, 1.5)
    with pytest.raises(SignalError, match="constant"):
        modality("force").bin(_force(t, np.ones_like(t)), [np.arange(0.005, 9.9, 0.01)], 0.01, 1.5)


def test_spikes_entry_counts_per_bin_and_keeps_the_bins_every_unit_was_observed_in(caplog):
    from nwb_autolfads.io.units import SpikeUnits
    from nwb_autolfads.modalities import BinnedSpikes

    centres = [np.arange(0.05, 1.0, 0.1)]  # 10 bins of 100 ms
    units = SpikeUnits(spike_times=[np.array([0.01, 0.02, 0.55]), np.array([0.31, 0.95])], ids=[7, 3],
                       obs_intervals=[np.array([[0.0, 1.5]]), np.array([[0.2, 1.5]])])
    binned, masks = modality("spikes").bin(units, centres, 0.1, 1.5)
    assert isinstance(binned, BinnedSpikes) and binned.channel_names == ["7", "3"] and binned.units is units
    np.testing.assert_array_equal(binned.segments[0][:, 0], [2, 0, 0, 0, 0, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(masks[0], np.arange(10) >= 2)  # unit 3 observed from 0.2 s
    assert "2 bins (0.2 s) outside the units' obs_intervals" in caplog.text and "(2 of 5 spikes)" in caplog.text
    np.testing.assert_array_equal(binned.to_source(np.array([[1.0, 2.0]])), [[10.0, 20.0]])  # counts per bin -> Hz
    assert binned.error_key == "units_hz" and binned.error_scale(1) == pytest.approx(10.0) and binned.counts
    apart = SpikeUnits(spike_times=units.spike_times, ids=[7, 3],
                       obs_intervals=[np.array([[0.0, 0.4]]), np.array([[0.5, 1.0]])])
    with pytest.raises(SignalError, match="no time bin lies inside the obs_intervals of every selected unit"):
        modality("spikes").bin(apart, centres, 0.1, 1.5)
    assert modality("spikes").bin(SpikeUnits(spike_times=units.spike_times, ids=[7, 3]), centres, 0.1, 1.5)[1] is None
