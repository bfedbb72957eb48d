"""The baselines as estimators (nwb_autolfads.baseline_estimators): they read a file as `run` does
(checked against the preprocessing and binning called directly), filter each gap-free segment with
evaluation.baselines' own functions, match channels by name, and keep scikit-learn's conventions."""

import numpy as np
import pytest

import nwb_autolfads
from nwb_autolfads import BayesianFilter, GaussianSmoothing, LowPass, Rectified
from nwb_autolfads.config import build_config
from nwb_autolfads.errors import ConfigError, SignalError
from nwb_autolfads.evaluation import baselines as bl
from nwb_autolfads.testing import mock_emg_nwb


def _session(path, **kw):
    kw.setdefault("n_muscles", 3)
    return mock_emg_nwb(path, duration=kw.pop("duration", 4.0), rate=1000.0, seed=kw.pop("seed", 3), **kw)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("baselines")
    return {"plain": _session(tmp / "a.nwb", n_units=4),
            "gap": _session(tmp / "gap.nwb", duration=6.0, gap=(2.5, 3.0)),
            "shuffled": _session(tmp / "shuffled.nwb", channel_order=[2, 0, 1], n_units=4),
            "fewer": _session(tmp / "fewer.nwb", n_muscles=2)}


def _pipeline_emg(path, cfg=None):
    """The binned rectified EMG, its bin centres and names, by the preprocessing called directly."""
    from nwb_autolfads.data.preprocessing import preprocess_emg
    from nwb_autolfads.io.reading import open_nwb
    from nwb_autolfads.io.series import read_emg

    cfg = cfg or build_config()
    with open_nwb(path) as (_io, nwb):
        sig = read_emg(nwb, None, lazy=True)
        pre = preprocess_emg(sig, cfg.preprocess, cfg.windows.bin_size, cfg.data.preprocessed, cfg.windows.gap_factor)
    return pre


def _by_segment(fn, pre):
    return np.concatenate([fn(np.asarray(r, dtype=float)) for r in pre.rectified])


def test_lowpass_filters_the_pipelines_rectified_emg_on_its_bins(files):
    pre = _pipeline_emg(files["plain"])
    est = LowPass(cutoff=6.0).fit(files["plain"])
    ds = est.transform(files["plain"])
    assert np.array_equal(ds.time.values, np.concatenate(pre.bin_times))
    assert list(ds.channel.values) == list(pre.channel_names) == est.channel_names_
    assert est.bin_size_ == pre.bin_size == ds.attrs["bin_size"] and ds.emg_activations.attrs["units"] == est.unit_
    np.testing.assert_allclose(ds.emg_activations.values, _by_segment(lambda r: bl.lowpass(r, 1 / pre.bin_size, 6.0), pre))
    assert ds.attrs["method"] == "LowPass(cutoff=6.0, order=4)" and ds.attrs["source"] == str(files["plain"])


def test_each_gap_free_segment_is_filtered_on_its_own(files):
    pre = _pipeline_emg(files["gap"])
    assert len(pre.bin_times) == 2  # the file has a gap: two segments
    ds = LowPass(cutoff=4.0, order=2).fit_transform(files["gap"])
    times = ds.time.values
    assert np.array_equal(times, np.concatenate(pre.bin_times)) and np.max(np.diff(times)) > 0.4  # no bins in the gap
    want = _by_segment(lambda r: bl.lowpass(r, 1 / pre.bin_size, 4.0, 2), pre)
    np.testing.assert_allclose(ds.emg_activations.values, want)
    whole = bl.lowpass(np.concatenate(pre.rectified).astype(float), 1 / pre.bin_size, 4.0, 2)
    assert not np.allclose(ds.emg_activations.values, whole)  # filtering across the gap would differ


def test_rectified_and_the_bayesian_filter(files):
    pre = _pipeline_emg(files["plain"])
    rect, fs = np.concatenate(pre.rectified).astype(float), 1 / pre.bin_size
    np.testing.assert_array_equal(Rectified().fit_transform(files["plain"]).emg_activations.values, rect)
    est = BayesianFilter().fit(files["plain"])
    x, grid, scale = bl.bayesian_grid(rect, fs)  # the defaults: the middle of evaluate's grid
    params = grid["alpha 0.4x limit, jump 0.01/bin"]
    assert (est.alpha_, est.beta_, est.sigma_max_) == pytest.approx((params["alpha"], params["beta"], params["sigma_max"]))
    np.testing.assert_allclose(est.scales_, scale)
    ds = est.transform(files["plain"])
    np.testing.assert_allclose(ds.emg_activations.values, bl.bayesian_filter(x, fs, **params) * scale)
    assert est.alpha is None and "alpha=" in ds.attrs["method"]  # the argument as given, the value used in the method
    chosen = BayesianFilter(alpha=0.5, beta=2.0, output="map").fit(files["plain"])
    assert (chosen.alpha_, chosen.beta_) == (0.5, 2.0)
    np.testing.assert_allclose(chosen.transform(files["plain"]).emg_activations.values,
                               bl.bayesian_filter(x, fs, 0.5, 2.0, sigma_max=params["sigma_max"], output="map") * scale)


def test_gaussian_smoothing_gives_rates_in_hz_on_the_runs_bins(files):
    from nwb_autolfads.io.reading import open_nwb
    from nwb_autolfads.io.units import bin_spikes, read_units, spike_bin_centres

    est = GaussianSmoothing(sigma=0.04).fit(files["plain"])  # the default config models EMG: spikes read alone
    ds = est.transform(files["plain"])
    with open_nwb(files["plain"]) as (_io, nwb):
        units = read_units(nwb, None, "error")
    centres = spike_bin_centres(units, 0.01)
    assert np.array_equal(ds.time.values, centres) and list(ds.unit.values) == list(units.ids)
    assert ds.firing_rates.attrs["units"] == "Hz" and est.channel_names_ == [str(u) for u in units.ids]
    np.testing.assert_allclose(ds.firing_rates.values, bl.gaussian_smooth(bin_spikes(units, centres, 0.01), 0.01, 0.04))
    # modelled with the EMG, the units are binned on the EMG's bins
    both = GaussianSmoothing(sigma=0.04, overrides={"data.modalities": ["emg", "spikes"]}).fit_transform(files["plain"])
    assert np.array_equal(both.time.values, np.concatenate(_pipeline_emg(files["plain"]).bin_times))


def test_channels_are_matched_by_name(files):
    est = LowPass(cutoff=6.0).fit(files["plain"])
    same = est.transform(files["plain"])
    shuffled = est.transform(files["shuffled"])  # the same muscles stored as LG, TA, MG
    assert list(shuffled.channel.values) == list(same.channel.values) == ["TA", "MG", "LG"]
    np.testing.assert_array_equal(shuffled.emg_activations.values, same.emg_activations.values)
    with pytest.raises(SignalError, match="lacks the fitted LowPass's channel\\(s\\) LG") as err:
        est.transform(files["fewer"])
    assert "\n" not in str(err.value) and "TA, MG, LG" in str(err.value)
    with pytest.raises(SignalError, match="channel\\(s\\) the fitted LowPass does not know: LG"):
        LowPass(cutoff=6.0).fit(files["fewer"]).transform(files["plain"])
    kept = LowPass(cutoff=6.0).fit(files["fewer"]).transform(files["plain"], drop_extra=True)
    assert list(kept.channel.values) == ["TA", "MG"]


def test_units_are_matched_by_id(files, tmp_path):
    est = GaussianSmoothing(sigma=0.02).fit(files["plain"])
    with pytest.raises(SignalError, match="lacks the fitted GaussianSmoothing's channel"):
        est.transform(_session(tmp_path / "two_units.nwb", n_units=2))


def test_scikit_learn_conventions(files):
    from sklearn.base import clone

    est = LowPass(cutoff=6, overrides={"preprocess.highpass_hz": 30.0})
    assert est.get_params() == {"cutoff": 6, "order": 4, "bin_size": None, "config": None,
                                "overrides": {"preprocess.highpass_hz": 30.0}}
    assert est.set_params(cutoff=8.0) is est and est.cutoff == 8.0
    copy = clone(est)
    assert copy.get_params() == est.get_params() and copy is not est
    assert repr(est) == "LowPass(cutoff=8.0, overrides={'preprocess.highpass_hz': 30.0})"
    with pytest.raises(ConfigError, match="no parameter\\(s\\) sigma"):
        est.set_params(sigma=1.0)
    with pytest.raises(ConfigError, match="not fitted"):
        est.transform(files["plain"])
    assert est.fit(files["plain"]) is est and est.config_.preprocess.highpass_hz == 30.0
    assert set(BayesianFilter().get_params()) == {"alpha", "beta", "n_levels", "likelihood", "output", "bin_size",
                                                  "config", "overrides"}
    assert nwb_autolfads.GaussianSmoothing is GaussianSmoothing
    with pytest.raises(ConfigError, match="one NWB file at a time, got a list of 2"):
        LowPass(cutoff=6.0).fit([files["plain"], files["shuffled"]])
    with pytest.raises(ConfigError, match="AutoLFADS is not fitted"):  # config=an unfitted model
        LowPass(cutoff=6.0, config=nwb_autolfads.AutoLFADS()).fit(files["plain"])


@pytest.mark.parametrize("est, match", [
    (LowPass(cutoff=-1.0), "cutoff=-1.0\\): cutoff must be a frequency in Hz > 0"),
    (LowPass(cutoff=60.0), "below the Nyquist frequency of the bins \\(50 Hz for 10 ms bins\\)"),
    (LowPass(cutoff=6.0, order=0), "order must be an integer"),
    (BayesianFilter(alpha=0.0), "alpha must be None or a rate > 0"),
    (BayesianFilter(beta=200.0), "beta must be below the bins per second \\(100\\)"),
    (BayesianFilter(likelihood="poisson"), "'laplace' or 'gaussian'"),
    (GaussianSmoothing(sigma=0), "sigma must be a number of seconds > 0"),
    (Rectified(bin_size=-0.01), "bin_size must be a number of seconds > 0"),
])
def test_parameters_out_of_range_name_themselves(files, est, match):
    with pytest.raises(ConfigError, match=match):
        est.fit(files["plain"])
    with pytest.raises(ConfigError, match="is not fitted"):  # a refused fit leaves nothing half-fitted
        est.transform(files["plain"])


def test_a_bin_size_and_a_config_are_read_as_run_reads_them(files):
    cfg = build_config(overrides={"windows.bin_size": 0.005})
    pre = _pipeline_emg(files["plain"], cfg)
    by_config = Rectified(config=cfg).fit_transform(files["plain"])
    by_bin_size = Rectified(bin_size=0.005).fit_transform(files["plain"])
    assert by_config.attrs["bin_size"] == by_bin_size.attrs["bin_size"] == 0.005
    np.testing.assert_array_equal(by_config.time.values, np.concatenate(pre.bin_times))
    np.testing.assert_array_equal(by_bin_size.emg_activations.values, by_config.emg_activations.values)


def test_the_bayesian_filters_scales_follow_the_files_unit_and_amplitude(files):
    from types import SimpleNamespace

    est = BayesianFilter().fit(files["plain"])
    pre = _pipeline_emg(files["plain"])
    rect = np.concatenate(pre.rectified).astype(float)
    seg = [slice(0, len(rect))]

    def data(unit):
        return SimpleNamespace(blocks={"emg": SimpleNamespace(unit=unit, source_path="acquisition/EMG")})

    volts = est._estimate(rect, 100.0, seg, data("volts"))
    np.testing.assert_allclose(est._estimate(rect * 1e3, 100.0, seg, data("mV")), 1e3 * volts)  # converted
    with pytest.raises(SignalError, match="is in 'a.u.', BayesianFilter was fitted on EMG in 'volts'"):
        est._estimate(rect, 100.0, seg, data("a.u."))
    for factor in (1e3, 1e-3):  # another gain in the same unit: refused, not clipped or flattened
        with pytest.raises(SignalError, match="amplitude does not match .* fit it on this file"):
            est._estimate(rect * factor, 100.0, seg, data("volts"))


def _envelope(path, timestamps):
    """A 4-muscle 100 Hz envelope (already rectified and smoothed) with the given timestamps."""
    from datetime import datetime, timezone

    from pynwb import NWBHDF5IO, NWBFile, TimeSeries

    rng = np.random.default_rng(1)
    t = np.asarray(timestamps)
    data = np.abs(np.sin(2 * np.pi * 0.7 * t[:, None] + np.arange(4))) * 1e-4 + rng.gamma(6, 1e-6, (t.size, 4))
    nwb = NWBFile("e", "e", datetime(2024, 1, 1, tzinfo=timezone.utc))
    nwb.add_acquisition(TimeSeries(name="EMG", data=data, unit="volts", timestamps=t,
                                   description="rectified enveloped EMG"))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


def test_a_jittered_envelope_is_on_the_same_bins_as_a_regular_one(tmp_path):
    """A 100 Hz envelope with jittered timestamps is binned at its fitted period (10.000008 ms
    here), another at 10 ms: the same bins (within 0.1%), so a filter fitted on one applies to
    the other (it once refused it, saying '10 ms bins ... fitted on 10 ms bins'); a 12 ms envelope
    is still refused, with digits enough to tell the sizes apart."""
    n = 3000
    regular = _envelope(tmp_path / "regular.nwb", 0.3 + np.arange(n) * 0.01)
    jittered = _envelope(tmp_path / "jittered.nwb",
                         0.3 + np.arange(n) * 0.01 + np.random.default_rng(2).normal(0, 5e-4, n))
    coarser = _envelope(tmp_path / "coarser.nwb", 0.3 + np.arange(n) * 0.012)
    own = Rectified(overrides={"data.preprocessed": True}).fit(jittered).bin_size_
    assert own != 0.01 and abs(own - 0.01) < 1e-6
    lp = LowPass(cutoff=5.0, overrides={"data.preprocessed": True}).fit(regular)
    out = lp.transform(jittered)
    values = np.asarray(out.to_array() if hasattr(out, "data_vars") else out, dtype=float)
    assert out.sizes["time"] > 0.95 * n and np.all(np.isfinite(values))
    with pytest.raises(SignalError, match=r"on 12 ms bins, LowPass was fitted on 10 ms bins"):
        lp.transform(coarser)
