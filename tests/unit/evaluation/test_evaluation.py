import json
import subprocess
import sys

import numpy as np
import pytest

import nwb_autolfads
from nwb_autolfads.evaluation.baselines import lowpass
from nwb_autolfads.evaluation.baselines import bin_segments
from nwb_autolfads.evaluation.comparison import MODEL, evaluate, nested_cv, transfer_function
from nwb_autolfads.evaluation.report import write_report
from nwb_autolfads.testing import mock_emg_nwb


def test_nested_cv_chooses_the_informative_candidate_inside_the_training_folds():
    rng = np.random.default_rng(0)
    n = 2000
    truth = np.cumsum(rng.normal(size=(n, 2)), axis=0)
    cands = {"good": truth + 0.1 * rng.normal(size=(n, 2)), "bad": rng.normal(size=(n, 2))}
    out = nested_cv(cands, truth, lags=0, folds=5, per_channel=True)
    assert out["chosen"] == ["good"] * 5
    assert out["mean"] > 0.99 and out["folds"].shape == (5, 2)
    fixed = nested_cv(cands, truth, lags=0, folds=5, per_channel=True, fixed=["bad"] * 5)
    assert fixed["chosen"] == ["bad"] * 5 and fixed["mean"] < 0.1
    done = []
    nested_cv(cands, truth, lags=0, folds=4, on_fold=lambda: done.append(1))  # what evaluate's progress counts
    assert len(done) == 4


def test_nested_cv_recovers_a_known_linear_relation_with_history():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3000, 3))
    y = np.r_[np.zeros((2, 1)), (x @ [[1.0], [-1.0], [0.5]])[:-2]]  # two bins later
    assert nested_cv({"": x}, y, lags=3)["mean"] > 0.99
    assert nested_cv({"": x}, y, lags=0)["mean"] < 0.1


def test_transfer_function_of_a_low_pass():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(20000, 2))
    y = lowpass(x, 100.0, 5.0)
    tf = transfer_function(x, y, 100.0, [slice(0, 20000)], nperseg=256)
    f = tf["freq"]
    assert np.all(np.abs(tf["gain"][(f > 0) & (f < 2)] - 1) < 0.05)  # passes below the cutoff
    assert np.all(tf["gain"][f > 15] < 0.01)  # cuts above it
    assert np.all(tf["coherence"][(f > 0) & (f < 2)] > 0.95)
    assert transfer_function(x, y, 100.0, [slice(0, 100)], nperseg=256) is None  # too short


def test_bin_segments_split_at_gaps_and_masks():
    t = np.r_[np.arange(10), np.arange(20, 30)] * 0.01
    mask = np.ones(20, bool)
    mask[3] = False
    assert [(s.start, s.stop) for s in bin_segments(t, 0.01, mask)] == [(0, 3), (4, 10), (10, 20)]


@pytest.fixture(scope="module")
def result_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("evaluate")
    src = mock_emg_nwb(folder / "src.nwb", duration=20.0, rate=1000.0, n_muscles=3, seed=0, behavior=True, n_units=4)
    res = nwb_autolfads.run(src, folder / "out.nwb", preset="smoke", progress=False)
    return res.output


def test_evaluate_scores_the_model_and_every_baseline(result_file):
    ev = evaluate(result_file)
    assert ev.methods == [MODEL, "rectified", "low-pass", "Bayesian"]
    assert set(ev.scores) == {"truth", "kinematics", "force", "spikes"}
    for metric, per_method in ev.scores.items():
        assert set(per_method) == set(ev.methods)
        for method, s in per_method.items():
            assert np.isfinite(s["mean"]) and np.asarray(s["folds"]).shape[0] == 5
            if method in ("low-pass", "Bayesian"):
                assert len(s["chosen"]) == 5  # parameters chosen per fold
    kin = ev.scores["kinematics"]["low-pass"]
    assert kin["targets"][:3] == ["joint_angles.hip", "joint_angles.knee", "joint_angles.ankle"]
    assert len(kin["targets"]) == 6  # and their velocities
    # the truth is a smooth drive: a low-pass filter of rectified EMG recovers much of it
    assert ev.scores["truth"]["low-pass"]["mean"] > ev.scores["truth"]["rectified"]["mean"] > 0.3
    assert "all" in ev.spectra and "go_cue -> stop" in ev.spectra and MODEL in ev.spectra["all"]
    text = ev.table()
    assert all(m in text for m in ev.methods)
    data = json.loads(ev.to_json())
    assert data["primary_metric"] == "truth" and data["scores"]["force"]["Bayesian"]["chosen"]


def test_evaluate_a_spike_model_against_gaussian_smoothing(result_file, tmp_path):
    src = result_file.parent / "src.nwb"
    res = nwb_autolfads.run(src, tmp_path / "spikes.nwb", preset="smoke", progress=False,
                            overrides={"data.model": "spikes", "pbt.population": 1})
    ev = evaluate(res.output)
    assert ev.methods == [MODEL, "smoothed spikes"] and ev.channel_names[0].startswith("unit")
    assert set(ev.scores) == {"truth", "kinematics", "force"}  # truth: the true rates
    assert len(ev.scores["kinematics"]["smoothed spikes"]["chosen"]) == 5
    assert not ev.spectra  # the EMG filter analysis needs EMG


def test_an_emg_and_spikes_run_is_scored_per_muscle_and_per_unit_and_reported(result_file, tmp_path):
    src = result_file.parent / "src.nwb"
    res = nwb_autolfads.run(src, tmp_path / "joint.nwb", preset="smoke", progress=False,
                            overrides={"data.model": "emg+spikes", "pbt.population": 1})
    ev = evaluate(res.output)
    units = [f"unit {u}" for u in range(4)]
    assert ev.scores["truth"]["rates: " + MODEL]["targets"] == units  # the true rates, named by unit
    assert ev.scores["truth"][MODEL]["targets"] == ["TA", "MG", "LG"]
    assert ev.traces["unit_names"] == units and ev.traces["spikes"].shape == (ev.n_bins, 4)
    page = write_report(ev, tmp_path / "report").read_text()  # drew muscles and units side by side
    assert "src='rates.png'" in page and "src='traces.png'" in page and "src='scores_truth.png'" in page


def test_report_writes_every_figure(result_file, tmp_path):
    ev = evaluate(result_file)
    index = write_report(ev, tmp_path / "report")
    page = index.read_text()
    for name in ("traces.png", "scores_truth.png", "scores_kinematics.png", "scores_force.png", "scores_spikes.png",
                 "transfer_functions.png", "training_curves.png", "pbt_hyperparameters.png", "factors.png"):
        assert f"src='{name}'" in page and (tmp_path / "report" / name).stat().st_size > 5000
    assert json.loads((tmp_path / "report" / "evaluation.json").read_text())["run"] == ev.run


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "nwb_autolfads", *map(str, args)], capture_output=True, text=True)


def test_cli_evaluate(result_file, tmp_path):
    proc = _cli("evaluate", result_file, "--json", "--report", tmp_path / "r", "--folds", "3")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert np.asarray(data["scores"]["kinematics"][MODEL]["folds"]).shape[0] == 3
    assert (tmp_path / "r" / "index.html").is_file()
    table = _cli("evaluate", result_file)
    assert table.returncode == 0 and "low-pass" in table.stdout and "Bayesian" in table.stdout
    bad = _cli("evaluate", result_file, "--run", "nope")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "no run 'nope'" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_cli_run_with_report(tmp_path):
    src = mock_emg_nwb(tmp_path / "s.nwb", duration=12.0, rate=1000.0, n_muscles=2, seed=1, behavior=True)
    proc = _cli("run", src, "--preset", "smoke", "-q", "--report", tmp_path / "rep")
    assert proc.returncode == 0, proc.stderr
    assert "kinematics R^2" in proc.stdout and (tmp_path / "rep" / "index.html").is_file()


def test_a_run_that_rejected_artefacts_is_compared_on_the_same_cleaned_emg(tmp_path):
    src = mock_emg_nwb(tmp_path / "art.nwb", duration=20.0, rate=1000.0, n_muscles=4, seed=3, artefacts=1.0,
                       behavior=True)
    plain = nwb_autolfads.run(src, tmp_path / "plain.nwb", preset="smoke", progress=False)
    clean = nwb_autolfads.run(src, tmp_path / "clean.nwb", preset="smoke", progress=False,
                              overrides={"preprocess.artefact_fraction": 0.5})
    assert any(s.startswith("shared-artefact rejection") for s in clean.preprocessing_steps)
    ev_plain, ev_clean = evaluate(plain.output), evaluate(clean.output)
    assert not any("artefact" in n for n in ev_plain.notes)
    assert any("cleaned rectified EMG" in n for n in ev_clean.notes)
    r_plain, r_clean = ev_plain.traces["rectified"], ev_clean.traces["rectified"]
    changed = ~np.isclose(r_clean, r_plain).all(axis=1)  # the baselines filter the EMG without the artefacts
    assert 0 < changed.mean() < 0.05
    assert r_plain[changed].mean() > 2 * r_clean[changed].mean()  # (the changed bins include one either side)
    np.testing.assert_array_equal(r_clean[~changed], r_plain[~changed])


def test_a_run_records_the_line_hum_it_found_and_evaluate_repeats_it(tmp_path):
    from nwb_autolfads.io.results import load_results

    src = mock_emg_nwb(tmp_path / "eu.nwb", duration=10.0, rate=1000.0, n_muscles=3, seed=2, line_noise=3.0,
                       line_frequency=50.2, line_harmonics=(1.5, 1.0))
    res = nwb_autolfads.run(src, tmp_path / "eu_out.nwb", preset="smoke", progress=False,
                            overrides={"pbt.population": 1, "train.max_steps": 1})  # what is checked needs no model
    assert any(s.startswith("line hum found at 50.2 Hz (+0.20 Hz off the nominal 50 Hz) with harmonics 100.4, 150.6 Hz")
               for s in res.preprocessing_steps)
    ds = load_results(res.output)
    saved = json.loads(ds.attrs["config"])["preprocess"]  # the settings auto resolved to
    assert saved["line_frequency"] == 50.2 and saved["notch_harmonics"] == [1, 2, 3]
    hum = json.loads(ds.attrs["preprocessing"])["line_hum"]
    assert hum["setting"] == "auto" and hum["frequency"] == 50.2 and hum["harmonics"] == [1, 2, 3]
    assert hum["notched_hz"] == pytest.approx([50.2, 100.4, 150.6])
    # evaluate preprocesses the source as the run did: the baselines start from the model's own input
    ev = evaluate(res.output)
    np.testing.assert_allclose(ev.traces["rectified"], res.rectified, rtol=1e-5)


def test_a_results_only_file_is_scored_on_its_source_which_must_be_the_one_the_run_read(tmp_path):
    import shutil

    from pynwb import NWBHDF5IO

    from nwb_autolfads.errors import InputFileError
    from nwb_autolfads.testing import mock_run_record
    from nwb_autolfads.io.writing import file_sha256, write_results

    src = mock_emg_nwb(tmp_path / "src.nwb", duration=8.0, rate=1000.0, n_muscles=3, seed=4)
    with NWBHDF5IO(str(src), "r") as io:
        nwb = io.read()
        identifier, emg_id = nwb.identifier, nwb.acquisition["EMG"].object_id
    record = mock_run_record(n_bins=790, n_channels=3, emg_object_id=emg_id,  # random "estimates", no training
                             interval=0.9)
    record.source_identifier, record.source_location = identifier, str(src)
    record.source_sha256 = file_sha256(src)
    full, _ = write_results(src, tmp_path / "full.nwb", record)
    only, _ = write_results(src, tmp_path / "only.nwb", record, content="results")
    fast = {"folds": 2, "lags": 1}
    ev = evaluate(full, **fast)
    level, lower, upper = ev.traces[("emg", "band")]  # the credible interval, for the report's band
    assert level == 0.9 and np.array_equal(lower, record.activations_lower) and upper.shape == (790, 3)
    expected = ev.to_dict()["scores"]
    assert set(expected) == {"truth"}
    assert evaluate(only, **fast).to_dict()["scores"] == expected  # the same signals, read from the source
    moved = shutil.move(src, tmp_path / "moved.nwb")
    with pytest.raises(InputFileError, match=r"holds results only, and its source could not be opened from "
                                             r"'.*src.nwb' \(input file .* does not exist.*--source"):
        evaluate(only, **fast)
    assert evaluate(only, source=moved, **fast).to_dict()["scores"] == expected
    other = mock_emg_nwb(tmp_path / "other.nwb", duration=8.0, rate=1000.0, n_muscles=3, seed=5)
    with NWBHDF5IO(str(other), "a") as io:  # same identifier, other objects: a rewritten file
        assert io.read().identifier == identifier
    with pytest.raises(InputFileError, match="not the objects it modelled .*acquisition/EMG"):
        evaluate(only, source=other, **fast)
    import h5py  # data edited in place keep the identifier and ids: the run's SHA-256 tells
    with h5py.File(moved, "a") as f:
        f["acquisition/EMG/data"][:, 1] *= 3.0
    with pytest.raises(InputFileError, match=r"is not the file run .* read: its SHA-256 is .*edited or rewritten"):
        evaluate(only, source=moved, **fast)


def test_a_run_on_some_units_is_scored_and_drawn_against_those_units_truth_and_spikes(tmp_path):
    """The ground truth (one column per Units row) and the spike counts are matched to the run's
    units by id: a --units filter (here units 0, 1, 3, 4 of 6) must not pair unit 3 with unit 2's
    true rate in the scores and the report's rates figure."""
    from pynwb import NWBHDF5IO

    from nwb_autolfads.evaluation.comparison import bin_mean
    from nwb_autolfads.io.units import bin_spikes, read_units
    from nwb_autolfads.testing import mock_run_record
    from nwb_autolfads.io.writing import file_sha256, write_results

    src = mock_emg_nwb(tmp_path / "src.nwb", duration=6.0, rate=1000.0, n_muscles=2, seed=4, n_units=6)
    chosen = [0, 1, 3, 4]
    times = 0.005 + np.arange(590) * 0.01
    record = mock_run_record(n_channels=0, unit_ids=chosen, times=times, interval=0.9)
    with NWBHDF5IO(str(src), "r") as io:
        nwb = io.read()
        record.source_identifier = nwb.identifier
        record.source_paths, record.source_object_ids = ["units"], [nwb.units.object_id]
    out, _ = write_results(src, tmp_path / "out.nwb", record)
    times = nwb_autolfads.load_results(out).time.values  # as stored (rate and starting time)
    with NWBHDF5IO(str(src), "r") as io:
        nwb = io.read()
        gt = nwb.processing["ground_truth"]["true_rates"]
        t = gt.starting_time + np.arange(gt.data.shape[0]) / gt.rate
        truth = bin_mean(t, np.asarray(gt.data[:], dtype=float), times, 0.01)[:, chosen]
        counts = np.asarray(bin_spikes(read_units(nwb), times, 0.01), dtype=float)[:, chosen]
    ev = evaluate(out, folds=2, lags=1)
    assert np.allclose(ev.traces[("spikes", "truth")], truth, equal_nan=True)
    assert np.array_equal(ev.traces["spikes"], counts)
    assert "truth" in ev.to_dict()["scores"]  # scored, on the matched columns
