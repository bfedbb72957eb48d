"""nwb_autolfads.simulate: the synthetic EMG generator, the benchmark family and its split, and
benchmarks/family.py end to end on a tiny setting."""

import importlib.util
import random
from pathlib import Path

import numpy as np
import pytest
from scipy import signal as sps

from nwb_autolfads.evaluation.comparison import bin_mean
from nwb_autolfads.evaluation.metrics import channel_correlation, coverage_of_truth, truth_in_units_of
from nwb_autolfads.simulate import DYNAMICS, EMGSetting, emg_family, simulate_emg, split, write_setting_nwb
from nwb_autolfads.simulate.emg import ARTEFACT_SHAPES, MAX_VALUES
from nwb_autolfads.simulate.family import LONG_SECONDS, recorded_seconds
from nwb_autolfads.testing import read_truth

SCRIPT = Path(__file__).parents[3] / "benchmarks" / "family.py"


def _rectified_bins(synth, bin_size=0.01, highpass=True):
    """Rectified (after a 30 Hz high-pass for raw EMG) and truth, in ``bin_size`` bins."""
    x = synth.raw.astype(float)
    if highpass:
        x = np.abs(sps.sosfiltfilt(sps.butter(4, 30.0, "high", fs=synth.rate, output="sos"), x, axis=0))
    bins = np.arange(synth.times[0] + bin_size / 2, synth.times[-1], bin_size)
    rect = bin_mean(synth.times, x, bins, bin_size)
    truth = bin_mean(synth.times, synth.activations.astype(float), bins, bin_size)
    ok = np.isfinite(rect).all(1)
    return rect[ok], truth[ok]


@pytest.mark.parametrize("dynamics", DYNAMICS)
def test_shapes_truth_and_high_snr_rectified_emg_tracks_the_truth(dynamics):
    s = EMGSetting(dynamics=dynamics, n_muscles=5, duration=20.0, rate=2000.0, snr_db=40.0, seed=3)
    x = simulate_emg(s)
    assert x.raw.shape == x.activations.shape == (40000, 5) and x.times.shape == (40000,)
    assert x.kinematics.shape == (40000, 3) and x.latent.shape[0] == 40000 and x.rate == 2000.0
    assert np.all(x.activations >= 0) and x.raw.min() < 0 < x.raw.max()
    assert x.activations.std(0).min() > 0.05  # activations vary
    rect, truth = _rectified_bins(x)
    r = channel_correlation(rect, truth)
    assert r.min() > 0.7, r
    assert x.segments == [(pytest.approx(0.0), pytest.approx(20.0))]


def test_deterministic_and_seeded():
    s = EMGSetting(dynamics="mixture", n_muscles=4, duration=5.0, artefact_rate=2.0, hum_amplitude=1.0)
    a, b = simulate_emg(s), simulate_emg(s)
    np.testing.assert_array_equal(a.raw, b.raw)
    np.testing.assert_array_equal(a.kinematics, b.kinematics)
    c = simulate_emg(s.replace(seed=1))
    assert not np.allclose(a.activations, c.activations)


def test_noise_floor_sets_the_snr():
    hi = simulate_emg(EMGSetting(n_muscles=4, duration=20.0, snr_db=40.0))
    lo = simulate_emg(EMGSetting(n_muscles=4, duration=20.0, snr_db=0.0))
    r_hi = channel_correlation(*_rectified_bins(hi)).mean()
    r_lo = channel_correlation(*_rectified_bins(lo)).mean()
    assert r_lo < r_hi - 0.1


def test_enveloped_variant_is_rectified_at_its_rate():
    s = EMGSetting(n_muscles=4, duration=10.0, rate=2000.0, enveloped=True, envelope_rate=250.0)
    x = simulate_emg(s)
    assert x.rate == 250.0 and x.raw.shape == (2500, 4)
    np.testing.assert_allclose(np.diff(x.times), 1 / 250.0, rtol=1e-6)
    assert x.raw.min() >= 0
    rect, truth = _rectified_bins(x, bin_size=0.02, highpass=False)
    assert channel_correlation(rect, truth).min() > 0.7


def test_trial_segments_have_gaps_in_the_timestamps():
    s = EMGSetting(n_muscles=4, trials=6, trial_seconds=(0.5, 1.0), trial_gap_seconds=(0.5, 1.0), rate=1000.0)
    x = simulate_emg(s)
    assert len(x.segments) == 6
    steps = np.diff(x.times)
    assert np.sum(steps > 0.4) == 5 and np.allclose(steps[steps < 0.4], 1e-3)
    for a, b in x.segments:
        assert 0.5 - 1e-3 <= b - a <= 1.0 + 1e-3
    inside = np.any([(x.times >= a) & (x.times < b) for a, b in x.segments], axis=0)
    assert inside.all()


@pytest.mark.parametrize("hum_hz", [50.0, 60.0, 50.3])
def test_hum_shows_at_the_requested_frequency(hum_hz):
    x = simulate_emg(EMGSetting(n_muscles=2, duration=10.0, hum_hz=hum_hz, hum_amplitude=1.0, hum_harmonics=(0.5,)))
    f, p = sps.welch(x.raw[:, 0], fs=x.rate, nperseg=2 ** 14)
    for k in (1, 2):
        near = np.abs(f - k * hum_hz) < 0.5
        away = (np.abs(f - k * hum_hz) > 5) & (np.abs(f - k * hum_hz) < 15)
        assert p[near].max() > 10 * np.median(p[away])


@pytest.mark.parametrize("shape", ARTEFACT_SHAPES)
def test_artefacts_are_shared_and_large(shape):
    base = EMGSetting(n_muscles=3, duration=10.0, snr_db=None)
    clean, art = simulate_emg(base), simulate_emg(base.replace(artefact_rate=1.0, artefact_shape=shape))
    diff = art.raw - clean.raw
    assert np.abs(diff).max() > 5 * np.abs(clean.raw).std()
    hit = np.abs(diff) > 0
    assert hit.any(0).all() and (hit == hit[:, :1]).all()  # added to every channel at the same moments
    assert 0 < hit[:, 0].mean() < 0.95  # not everywhere


def test_kinematics_follow_the_true_activations():
    x = simulate_emg(EMGSetting(n_muscles=6, duration=30.0, seed=2))
    from nwb_autolfads.evaluation.metrics import ridge_decode_r2

    step = 20  # 100 Hz
    truth, kin = x.activations[::step].astype(float), x.kinematics[::step]
    shuffled = np.roll(truth, truth.shape[0] // 2, axis=0)
    assert ridge_decode_r2(truth, kin, lags=10).mean() > 0.8
    assert ridge_decode_r2(shuffled, kin, lags=10).mean() < 0.3


def test_memory_cap_is_stated():
    s = EMGSetting(n_muscles=32, rate=10000.0, duration=30 * 60.0)
    with pytest.raises(ValueError, match="exceeds"):
        simulate_emg(s)
    assert 32 * 10000 * 1800 > MAX_VALUES


def test_setting_validation_and_names():
    with pytest.raises(ValueError, match="dynamics"):
        EMGSetting(dynamics="lorenz96")
    s = EMGSetting(dynamics="rhythmic", n_muscles=12, rate=2000.0, duration=60.0, hum_hz=50.0, hum_amplitude=1.0,
                   artefact_rate=0.2, snr_db=None)
    assert s.name == "rhythmic-12m-2kHz-60s-hum50-art"
    assert s.replace(n_muscles=8).name.startswith("rhythmic-8m-")
    assert EMGSetting(name="mine").replace(n_muscles=8).name == "mine"


def test_family_covers_every_axis_value_with_unique_names():
    fam = emg_family()
    assert 20 <= len(fam) <= 30
    assert len({s.name for s in fam}) == len(fam)
    assert {s.dynamics for s in fam} == set(DYNAMICS)
    assert {s.noise for s in fam} == {"laplace", "gaussian"}
    assert {s.artefact_shape for s in fam if s.artefact_rate > 0} == set(ARTEFACT_SHAPES)
    assert any(s.artefact_rate == 0 for s in fam)
    hums = {s.hum_hz for s in fam if s.hum_amplitude > 0}
    assert {50.0, 60.0} <= hums and hums - {50.0, 60.0}  # and off-nominal
    assert any(s.hum_amplitude == 0 for s in fam)
    assert any(s.enveloped for s in fam) and any(s.trials for s in fam)
    assert min(s.n_muscles for s in fam) <= 6 and max(s.n_muscles for s in fam) >= 24
    assert min(s.rate for s in fam) <= 1000 and max(s.rate for s in fam) >= 10000
    long = [s for s in fam if recorded_seconds(s) > LONG_SECONDS]
    assert 1 <= len(long) <= 2 and all(recorded_seconds(s) <= 600 for s in fam)
    assert emg_family() == fam and emg_family(7) != fam


def test_split_is_fixed_by_seed_disjoint_and_order_free():
    fam = emg_family()
    tuning, held = split(fam)
    assert {s.name for s in tuning}.isdisjoint({s.name for s in held})
    assert len(tuning) + len(held) == len(fam)
    assert 0.25 <= len(tuning) / len(fam) <= 0.4
    assert {s.dynamics for s in tuning} == set(DYNAMICS)  # every dynamics in both parts
    assert {s.dynamics for s in held} == set(DYNAMICS)
    assert all(recorded_seconds(s) <= LONG_SECONDS for s in tuning)
    shuffled = fam[::-1]
    random.Random(0).shuffle(shuffled)
    t2, _ = split(shuffled)
    assert {s.name for s in t2} == {s.name for s in tuning}
    assert {s.name for s in split(fam, seed=1)[0]} != {s.name for s in tuning}
    with pytest.raises(ValueError, match="unique"):
        split(fam + fam[:1])


def test_coverage_maps_the_truth_onto_the_rectified_emg_with_the_floor_in_quadrature():
    rng = np.random.default_rng(0)
    truth = rng.uniform(0.0, 2.0, size=(1000, 2))
    rect = np.hypot(3.0 * truth, 0.4)  # gain 3, the noise floor 0.4 adds in quadrature
    assert coverage_of_truth(rect - 0.01, rect + 0.01, truth, rect) == 1.0
    assert coverage_of_truth(rect + 0.02, rect + 0.2, truth, rect) == 0.0
    lower = rect - 0.01
    lower[:500] += 0.2  # half the band misses
    assert coverage_of_truth(lower, rect + 0.01, truth, rect) == pytest.approx(0.5)
    noisy = rect * rng.gamma(20.0, 1 / 20.0, size=rect.shape)  # the map is fitted on noisy data
    assert coverage_of_truth(rect - 0.1, rect + 0.1, truth, noisy) > 0.99


def test_the_truth_map_leaves_no_level_of_simulated_emg_biased():
    # the binned rectified EMG of a simulated recording against its truth: the mapped truth is
    # within the noise of the data's mean at every eighth of the truth's range; an affine map
    # (c x truth + d) is not: at the lowest activations the floor adds in quadrature
    synth = simulate_emg(EMGSetting(n_muscles=3, duration=120.0, dynamics="bursty", snr_db=10.0, seed=11,
                                    hum_amplitude=0.0, artefact_rate=0.0))
    rect, truth = _rectified_bins(synth)
    mapped = truth_in_units_of(rect, truth)
    slope_offset = [np.polyfit(truth[:, c], rect[:, c], 1) for c in range(3)]
    affine = np.stack([a * truth[:, c] + b for c, (a, b) in enumerate(slope_offset)], axis=1)

    def worst_bias(model):  # max over channels and eighths of |mean residual| / its standard error
        z = []
        for c in range(3):
            edges = np.quantile(truth[:, c], np.linspace(0, 1, 9))
            eighth = np.clip(np.searchsorted(edges, truth[:, c], side="right") - 1, 0, 7)
            resid = rect[:, c] - model[:, c]
            z += [abs(resid[eighth == k].mean()) / (resid.std() / np.sqrt((eighth == k).sum())) for k in range(8)]
        return max(z)

    assert worst_bias(mapped) < 4.0  # 3.2 here (24 eighths x channels)
    assert worst_bias(affine) > 6.0  # 7.6 here, at the lowest activations
def test_tiny_setting_runs_end_to_end_and_the_truth_aligns(tmp_path):
    import nwb_autolfads

    s = EMGSetting(n_muscles=4, duration=5.0, seed=1)
    src = write_setting_nwb(tmp_path / f"{s.name}.nwb", s)
    res = nwb_autolfads.run(src, preset="smoke", overwrite=True, progress=False)
    bin_size = res.config.windows.bin_size
    truth = read_truth(src, res.times, bin_size)
    assert truth.shape == res.activations.shape and np.isfinite(truth).all()
    assert channel_correlation(res.rectified, truth).min() > 0.7  # same times, same channels

    from pynwb import NWBHDF5IO

    with NWBHDF5IO(str(src), "r") as io:
        nwb = io.read()
        assert nwb.processing["behavior"]["joint_angles"].data.shape[1] == 3


def test_trial_structured_file_stores_segments_as_trials(tmp_path):
    s = EMGSetting(n_muscles=4, trials=5, rate=1000.0, seed=4)
    src = write_setting_nwb(tmp_path / "trials.nwb", s)
    from pynwb import NWBHDF5IO

    x = simulate_emg(s)
    with NWBHDF5IO(str(src), "r") as io:
        nwb = io.read()
        np.testing.assert_allclose(nwb.acquisition["EMG"].timestamps[:], x.times)
        trials = nwb.trials.to_dataframe()
        np.testing.assert_allclose(trials.start_time, [a for a, _ in x.segments])
        tb = nwb.processing["behavior"]["joint_angles"].timestamps[:]
        assert np.all(np.any([(tb >= a) & (tb < b) for a, b in x.segments], axis=0))


def _family_module():
    spec = importlib.util.spec_from_file_location("family_benchmark", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_family_benchmark_runs_a_tiny_setting_and_prints_the_table(tmp_path, capsys, monkeypatch):
    mod = _family_module()
    out = tmp_path / "family.json"
    args = ["--tiny", "--only", mod.TINY, "--presets", "smoke", "--out", str(out), "--workdir", str(tmp_path / "w")]
    assert mod.main(args) == 0
    text = capsys.readouterr().out
    assert "squared Pearson correlation per channel, averaged over channels" in text
    row = next(line for line in text.splitlines() if line.startswith(f"| {mod.TINY} | smoke |"))
    assert "Hz)" in row and row.count("|") == 11 and "| n/a |" in row  # smoke: no band, so no check
    assert "win rate" in text
    saved = out.read_text()
    assert mod.TINY in saved
    # a rerun skips what is saved; --table-only runs nothing
    monkeypatch.setattr(mod, "score", lambda *a: pytest.fail("should not rerun a saved setting"))
    assert mod.main(args) == 0 and mod.main(args + ["--table-only"]) == 0
    assert mod.main(["--tiny", "--only", "nope", "--out", str(out)]) == 2


def test_family_table_reports_calibration_when_the_run_has_bands():
    mod = _family_module()
    rec = {"setting": "x", "preset": "quick", "r2": {"model": 0.9, "lowpass": 0.8, "bayes": 0.7}, "margin": 0.1,
           "lowpass_cutoff_hz": 4.0, "decoding": {"model": 0.8, "lowpass": 0.7, "bayes": 0.6, "truth": 0.9},
           "calibration": 0.88, "wall_s": 12.0}
    text = mod.table([rec, dict(rec, setting="y", calibration=None, margin=-0.05)])
    assert "| 0.88 |" in text and "| n/a |" in text
    assert "win rate (model beats both baselines on R^2 vs truth): 50% of 2" in text
    assert "check against a low-pass" not in text  # no run had a check


def test_family_table_counts_the_check_against_a_lowpass_against_the_truth():
    mod = _family_module()
    rec = {"setting": "x", "preset": "quick", "r2": {"model": 0.9, "lowpass": 0.8, "bayes": 0.7}, "margin": 0.1,
           "lowpass_cutoff_hz": 4.0, "decoding": {"model": 0.8, "lowpass": 0.7, "bayes": 0.6, "truth": 0.9},
           "calibration": 0.9, "wall_s": 12.0, "r2_channels": {"model": [0.9, 0.8, 0.95], "lowpass": [0.85, 0.9, 0.95]}}
    per = {"model_r2": 0.9, "lowpass_r2": 0.9, "lowpass_cutoff_hz": 4.0, "bins": 500}
    won = dict(rec, lowpass_check={"channels": {"a": per, "b": per, "c": None}, "flagged": []})
    lost = dict(rec, setting="y", margin=-0.02, lowpass_check={"channels": {"a": per, "b": per, "c": per}, "flagged": ["b"]})
    unchecked = dict(rec, setting="z", lowpass_check={"channels": {"a": None}, "flagged": []})
    text = mod.table([won, lost, unchecked])
    # flagged / channels with an estimate [channels lost on the truth by more than 0.01: only b]
    assert "| 0/2 [1] |" in text and "| 1/3 [1] |" in text and "| n/a |" in text
    assert "the run warned on 1 of the 1 recordings the model lost and on 0 of the 1 it won" in text


@pytest.mark.parametrize("bad", [{"snr_db": float("nan")}, {"hum_harmonics": [0.1, float("inf")]},
                                 {"trial_seconds": (0.5, float("nan"))}, {"noise_scale": 0.0}])
def test_a_setting_that_would_draw_nan_emg_is_refused(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        EMGSetting(**bad)
