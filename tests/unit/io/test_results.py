import json
import re
import subprocess
import sys

import numpy as np
import pytest

from nwb_autolfads import list_runs, load_results
from nwb_autolfads.errors import InputFileError, ResultsNotFoundError
from nwb_autolfads.testing import mock_emg_nwb, mock_run_record
from nwb_autolfads.io.writing import write_results


@pytest.fixture()
def two_runs(tmp_path):
    src = mock_emg_nwb(tmp_path / "src.nwb", duration=2.0, rate=1000.0, n_muscles=3, n_units=4, seed=0)
    first = mock_run_record(n_bins=200, n_channels=3, unit_ids=[3, 1], name="early", seed=1, interval=0.8)
    second = mock_run_record(n_bins=200, n_channels=3, unit_ids=None, name="late", seed=2)
    second.started, second.finished = "2026-02-01T00:00:00+00:00", "2026-02-01T00:05:00+00:00"
    one, _ = write_results(src, tmp_path / "one.nwb", first)
    two, _ = write_results(one, tmp_path / "two.nwb", second)
    return two, first, second


def test_list_runs_oldest_first(two_runs):
    path, first, second = two_runs
    runs = list_runs(path)
    assert [r.name for r in runs] == ["early", "late"]
    assert runs[0].channels == ["m0", "m1", "m2"] and runs[0].n_units == 2 and runs[1].n_units == 0
    assert runs[0].steps == 50 and runs[0].epochs is None and runs[0].seed == 1 and runs[0].n_bins == 200


def test_load_results_latest_by_default_and_by_name(two_runs):
    path, first, second = two_runs
    ds = load_results(path)
    assert ds.attrs["run"] == "late" and "firing_rates" not in ds
    ds = load_results(path, run="early")
    assert ds.emg_activations.dims == ("time", "channel")
    assert list(ds.channel.values) == ["m0", "m1", "m2"]
    np.testing.assert_allclose(ds.emg_activations.values, first.activations)
    np.testing.assert_allclose(ds.time.values, first.times)
    np.testing.assert_allclose(ds.channel_scale.values, first.scales)
    assert ds.emg_activations.attrs["units"] == "volts"
    assert list(ds.unit.values) == [3, 1]  # Units ids, in column order
    np.testing.assert_allclose(ds.firing_rates.values, first.rates)
    assert ds.firing_rates.attrs["units"] == "Hz"
    assert ds.factors.shape == (200, 4) and ds.inferred_inputs.shape == (200, 2)
    assert ds.initial_conditions.dims == ("window", "ic_dim")
    np.testing.assert_allclose(ds.window_time.values, first.ic_times)
    np.testing.assert_allclose(ds.valid_nll.values, [h["valid_nll"] for h in first.history])
    assert json.loads(ds.attrs["config"]) == {"seed": 1}
    assert ds.attrs["random_seed"] == 1 and ds.attrs["source_file_sha256"] == "0" * 64
    pbt = json.loads(ds.attrs["pbt_history"])
    assert len(pbt) == 6 and {"generation", "member", "metric", "parent_member"} <= set(pbt[0])


def test_credible_interval_bounds_load_as_variables_with_their_probability(two_runs):
    import pynwb

    path, first, second = two_runs
    ds = load_results(path, run="early")
    for name, lower, upper, dims, units in (
            ("emg_activations", first.activations_lower, first.activations_upper, ("time", "channel"), "volts"),
            ("firing_rates", first.rates_lower, first.rates_upper, ("time", "unit"), "Hz")):
        for side, want in (("lower", lower), ("upper", upper)):
            var = ds[f"{name}_{side}"]
            assert var.dims == dims and var.attrs["interval"] == 0.8 and var.attrs["units"] == units
            assert "80% credible interval" in var.attrs["description"]
            np.testing.assert_array_equal(var.values, want)
        assert np.all(ds[f"{name}_lower"].values <= ds[name].values)
        assert np.all(ds[name].values <= ds[f"{name}_upper"].values)
    later = load_results(path, run="late")  # a run without an interval has none
    assert not [v for v in later.data_vars if v.endswith(("_lower", "_upper"))]
    assert pynwb.validate(path=str(path)) == []


def test_load_results_errors(two_runs, emg_copy, tmp_path):
    path = two_runs[0]
    with pytest.raises(ResultsNotFoundError, match="no run 'nope'.*early, late"):
        load_results(path, run="nope")
    with pytest.raises(ResultsNotFoundError, match="holds no nwb-autolfads run"):
        load_results(emg_copy)
    with pytest.raises(InputFileError, match="does not exist"):
        load_results(tmp_path / "missing.nwb")
    (tmp_path / "text.nwb").write_text("not hdf5")
    with pytest.raises(InputFileError, match="not a readable NWB file"):
        load_results(tmp_path / "text.nwb")
    assert list_runs(emg_copy) == []


def test_runs_command(two_runs, emg_copy):
    path = two_runs[0]
    proc = subprocess.run([sys.executable, "-m", "nwb_autolfads", "runs", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "2 nwb-autolfads run(s)" in proc.stdout and "early" in proc.stdout and "late" in proc.stdout
    assert "3 EMG channels, 2 units" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "nwb_autolfads", "runs", str(path), "--json"], capture_output=True,
                          text=True)
    assert [r["name"] for r in json.loads(proc.stdout)] == ["early", "late"]
    proc = subprocess.run([sys.executable, "-m", "nwb_autolfads", "runs", str(emg_copy)], capture_output=True,
                          text=True)
    assert proc.returncode == 0 and "no nwb-autolfads runs" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "nwb_autolfads", "runs", str(emg_copy) + ".missing"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "does not exist" in proc.stderr


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0"])
def test_results_of_versions_that_counted_epochs_still_list_load_and_report(version, tmp_path):
    """Fixtures written before budgets were counted in steps (configs with train.max_epochs ...)."""
    import shutil
    from pathlib import Path

    from nwb_autolfads.config import RunConfig
    from nwb_autolfads.evaluation.report import training_curves_figure
    from nwb_autolfads.io.results import format_runs

    copy = tmp_path / "old.nwb"
    shutil.copy(Path(__file__).parents[2] / "data" / "results" / f"ndx-autolfads-{version}.nwb", copy)
    runs = list_runs(copy)
    assert runs[0].steps is None and runs[0].epochs in (2, 4)
    assert f"{runs[0].epochs} epochs (a run of an earlier version" in format_runs(copy, runs)
    ds = load_results(copy)
    assert "epoch" in ds.coords and "valid_nll" in ds
    assert training_curves_figure(ds) is not None
    saved = json.loads(ds.attrs["config"])
    assert "max_epochs" in saved["train"]
    cfg = RunConfig.from_saved(saved, n_train=json.loads(ds.attrs["metrics"])["n_train"])  # what evaluate does
    assert cfg.train.max_steps == 2 * 2 and cfg.train.valid_every == 2  # 31 windows in batches of 16: 2 per epoch


def test_the_bounds_description_says_whether_the_band_was_widened_by_the_model_error(tmp_path):
    """A band widened by the model's estimated error (metrics interval_calibration) must not be
    described as the bare posterior-sample quantiles, which are far narrower; older runs' bands were."""
    src = mock_emg_nwb(tmp_path / "src.nwb", duration=2.0, rate=500.0, n_muscles=3, n_units=2)
    plain = mock_run_record(n_bins=150, n_channels=3, unit_ids=[1], name="plain", interval=0.9)
    widened = mock_run_record(n_bins=150, n_channels=3, unit_ids=[1], name="widened", interval=0.9)
    widened.metrics = {**widened.metrics, "interval_calibration": {"method": "test", "z": 1.645}}
    one, _ = write_results(src, tmp_path / "one.nwb", plain)
    two, _ = write_results(one, tmp_path / "two.nwb", widened)
    for run, says in (("plain", "posterior-sample quantiles"), ("widened", "widened by the model's estimated error")):
        ds = load_results(two, run=run)
        for var in ("emg_activations_lower", "emg_activations_upper", "firing_rates_lower", "firing_rates_upper"):
            assert says in ds[var].attrs["description"], (run, var)
    assert "widened" not in load_results(two, run="plain").emg_activations_lower.attrs["description"]


def test_a_995_percent_band_is_not_described_as_a_100_percent_one(tmp_path):
    src = mock_emg_nwb(tmp_path / "src.nwb", duration=2.0, rate=500.0, n_muscles=2)
    one, _ = write_results(src, tmp_path / "one.nwb", mock_run_record(n_bins=150, n_channels=2, interval=0.995))
    description = load_results(one).emg_activations_upper.attrs["description"]
    assert "central 99.5% credible interval" in description and "100%" not in description


def test_runs_listing_says_which_runs_hold_a_credible_interval(two_runs):
    from nwb_autolfads.io.results import format_runs, list_runs

    path = two_runs[0]
    runs = list_runs(path)
    assert [(r.name, r.interval) for r in runs] == [("early", 0.8), ("late", None)]
    text = format_runs(path, runs)
    assert "10 ms; 80% credible interval per bin" in text and "no credible interval" in text


def test_to_pynapple_carries_the_credible_interval_with_the_estimates_columns(two_runs):
    pytest.importorskip("pynapple")
    from nwb_autolfads.io.results import to_pynapple

    path, first, _ = two_runs
    got = to_pynapple(path, run="early")
    for name, lower, upper in (("emg_activations", first.activations_lower, first.activations_upper),
                               ("firing_rates", first.rates_lower, first.rates_upper)):
        assert list(got[f"{name}_lower"].columns) == list(got[name].columns)
        np.testing.assert_array_equal(got[f"{name}_lower"].values, lower)
        np.testing.assert_array_equal(got[f"{name}_upper"].values, upper)
    assert [int(c) for c in got["firing_rates_upper"].columns] == [3, 1]
    assert not [k for k in to_pynapple(path, run="late") if k.endswith(("_lower", "_upper"))]


def test_interval_labels_never_round_to_another_level():
    from nwb_autolfads.io.results import interval_percent

    assert [interval_percent(p) for p in (0.9, 0.5, 0.995, 0.999, 0.955, 0.001)] == \
        ["90%", "50%", "99.5%", "99.9%", "95.5%", "0.1%"]  # ':.0%' printed 100%, 100%, 96%, 0%


def test_runs_listing_shows_each_runs_check_against_a_low_pass(tmp_path):
    from nwb_autolfads.io.results import format_runs

    src = mock_emg_nwb(tmp_path / "src.nwb", duration=2.0, rate=1000.0, n_muscles=3, seed=0)
    per = {"m0": {"model_r2": 0.91, "lowpass_r2": 0.95, "lowpass_cutoff_hz": 4.0, "bins": 200},
           "m1": {"model_r2": 0.97, "lowpass_r2": 0.96, "lowpass_cutoff_hz": 6.0, "bins": 200}, "m2": None}
    records = {"flagged": {"channels": per, "flagged": ["m0"]}, "clean": {"channels": per, "flagged": []},
               "unchecked": {"channels": {"m0": None, "m1": None, "m2": None}, "flagged": []}, "none": None}
    path = src
    for k, (name, check) in enumerate(records.items()):
        rec = mock_run_record(n_bins=200, n_channels=3, name=name, seed=k)
        rec.started = f"2026-0{k + 1}-01T00:00:00+00:00"
        if check is not None:
            rec.metrics = {**rec.metrics, "lowpass_check": check}
        path, _ = write_results(path, tmp_path / f"{name}.nwb", rec)
    runs = list_runs(path)
    assert [r.name for r in runs] == list(records) and runs[0].lowpass_check == records["flagged"]
    assert runs[3].lowpass_check is None
    blocks = re.split(r"\n  (?=\S)", format_runs(path, runs))[1:]  # one block per run
    assert "WARNING check against a low-pass: flagged 1 of 2 muscles" in blocks[0]
    assert "m0 (4 Hz low-pass 0.950 vs model 0.910)" in blocks[0] and "m1 (" not in blocks[0]
    assert "check against a low-pass: no muscle flagged (2 checked)" in blocks[1] and "WARNING" not in blocks[1]
    assert "check against a low-pass: none (too few bins" in blocks[2]
    assert "low-pass" not in blocks[3]
