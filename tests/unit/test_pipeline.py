import numpy as np
import pytest

import nwb_autolfads
from nwb_autolfads.config import build_config
from nwb_autolfads.errors import SignalError
from nwb_autolfads.model.observations import Gamma
from nwb_autolfads.pipeline import fit_signal
from nwb_autolfads.data.preprocessing import Preprocessed


def _pre(lengths, n_ch=3, seed=0):
    rng = np.random.default_rng(seed)
    segs = [rng.gamma(4.0, 0.25, size=(n, n_ch)).astype(np.float32) for n in lengths]
    times, t0 = [], 0.0
    for n in lengths:
        times.append(t0 + 0.005 + 0.01 * np.arange(n))
        t0 += 0.01 * n + 1.0
    return Preprocessed(segments=segs, bin_times=times, bin_size=0.01, scales=np.ones(n_ch),
                        clip_levels=np.full(n_ch, np.inf), rectified=segs, channel_names=["a", "b", "c"][:n_ch])


def test_fit_signal_merges_back_to_every_segment():
    cfg = build_config("smoke").resolved(3)
    pre = _pre([100, 10, 60])
    fit = fit_signal(pre.segments, pre.bin_size, Gamma(), cfg, progress=False)
    means = fit.mean
    assert [m.shape for m in means] == [(100, 3), (10, 3), (60, 3)]
    assert np.all(np.isfinite(means[0])) and np.all(np.isfinite(means[2]))
    assert np.all(np.isnan(means[1]))  # shorter than one window: NaN, not dropped
    assert fit.factors[0].shape == (100, 3)
    assert fit.n_train + fit.n_valid == fit.index.n_windows
    with pytest.warns(DeprecationWarning, match=r"FitResult\.inputs is deprecated: use FitResult\.inferred_inputs"):
        assert fit.inputs is fit.inferred_inputs  # the former name


def test_fit_signal_needs_two_windows():
    cfg = build_config("smoke").resolved(3)
    with pytest.raises(SignalError, match="too short"):
        fit_signal(_pre([15]).segments, 0.01, Gamma(), cfg, progress=False)  # smoke windows are 20 bins


def test_run_without_writing_and_summary(emg_copy):
    res = nwb_autolfads.run(emg_copy, preset="smoke", write=False, progress=False)
    assert res.output is None
    assert not emg_copy.with_name("emg_autolfads.nwb").exists()
    assert res.activations.shape == res.rectified.shape == (2000, 6)
    assert res.times.shape == (2000,)
    text = res.summary()
    for word in ("acquisition/EMG", "6 channels", "found automatically", "rectification", "steps"):
        assert word in text
    # where the time went, stage by stage (no file written: no write stage)
    timings = next(line for line in text.splitlines() if line.startswith("  timings"))
    assert all(f"{stage} " in timings for stage in ("read", "preprocess", "train", "infer")), timings
    assert "write" not in timings and f"total {sum(v['seconds'] for v in res.stages.values()):.1f} s" in timings
    # the plan made before training: the smoke budget, and a time estimated from steps timed on the data
    assert res.plan["members"] == 2 and res.plan["steps_per_member"] == 20
    assert res.plan["seconds_per_step"] > 0 and res.plan["expected_training_seconds_at_most"] > 0
    # smoke: 2 small members, pbt.workers 1: stacked, timed as such, and trained as the plan said
    assert res.plan["execution"].startswith("stacked") and res.plan["seconds_per_stacked_step"] > 0
    assert res.plan["execution"] == res.training.execution


def test_run_result_former_names_warn_and_read_the_glossary_names(tmp_path):
    """``input`` / ``inputs`` / ``unit`` read as the source, the inferred inputs and a neuron:
    renamed (docs/glossary.md); the old names still read, with a DeprecationWarning, and cannot be set."""
    from nwb_autolfads.pipeline import RunResult

    z = np.zeros((4, 1), np.float32)
    res = RunResult(output=None, source=tmp_path / "in.nwb", config=build_config("smoke"), source_path="acquisition/EMG",
                    channel_names=["TA"], emg_unit="volts", times=np.arange(4.0), activations=z, rates=z[:, :0],
                    unit_ids=[], factors=z, inferred_inputs=np.ones((4, 2), np.float32), rectified=z,
                    preprocessing_steps=[], training=None, n_windows=0, n_train=0, n_valid=0, seconds=0.0, device="cpu")
    for old, new in (("input", "source"), ("inputs", "inferred_inputs"), ("unit", "emg_unit")):
        with pytest.warns(DeprecationWarning, match=rf"RunResult\.{old} is deprecated: use RunResult\.{new}"):
            assert getattr(res, old) is getattr(res, new)
        with pytest.raises(AttributeError):
            setattr(res, old, None)


def test_a_split_stacked_population_trains_as_the_plan_says():
    """pbt.execution stacked-processes end to end: the plan times a worker's block (1 member of 2)
    and training runs that mode in 2 worker processes."""
    cfg = build_config("smoke", overrides={"pbt.execution": "stacked-processes", "pbt.workers": 2,
                                           "pbt.max_generations": 1}).resolved(3)
    fit = fit_signal(_pre([100]).segments, 0.01, Gamma(), cfg, progress=False)
    assert fit.plan["execution"] == fit.training.execution
    assert fit.training.execution.startswith("stacked-processes: 2 worker processes x 1 thread")
    assert fit.plan["members_per_worker"] == 1 and fit.plan["seconds_per_stacked_step"] > 0
    assert np.isfinite(fit.mean).any()


@pytest.mark.parametrize("population", [1, 2])
def test_the_plan_times_steps_with_the_threads_training_uses(monkeypatch, population):
    """The plan's estimate comes from steps timed with training's thread count, not torch's
    default: on a busy machine a step timed with two threads took 15x one with one thread."""
    import torch

    from nwb_autolfads import pipeline

    seen = {}
    real_time, real_single, real_population = pipeline.time_steps, pipeline.train_single, pipeline.train_population

    def timed(*args, **kwargs):
        seen["timed"] = torch.get_num_threads()
        return real_time(*args, **kwargs)

    def single(*args, **kwargs):
        seen["trained"] = args[4].threads  # the Execution train_single is given (after model, data, cfg, aug)
        return real_single(*args, **kwargs)

    def population_(*args, **kwargs):
        seen["trained"] = kwargs["execution"].threads  # the choice the plan was timed with, given to training
        return real_population(*args, **kwargs)

    monkeypatch.setattr(pipeline, "time_steps", timed)
    monkeypatch.setattr("nwb_autolfads.train.isolation.time_steps", timed)  # a single model is timed where it trains
    monkeypatch.setattr(pipeline, "train_single", single)
    monkeypatch.setattr(pipeline, "train_population", population_)
    cfg = build_config("smoke", overrides={"pbt.population": population, "train.threads": 1}).resolved(3)
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # torch's default on a 2-core machine
    try:
        fit_signal(_pre([100]).segments, 0.01, Gamma(), cfg, progress=False)
        assert torch.get_num_threads() == 2  # left as it was
    finally:
        torch.set_num_threads(before)
    assert seen["timed"] == seen["trained"] == 1


def test_run_rejects_a_config_object_and_a_preset(emg_copy):
    from nwb_autolfads.errors import ConfigError

    with pytest.raises(ConfigError, match="either a RunConfig or a preset"):
        nwb_autolfads.run(emg_copy, config=build_config("smoke"), preset="quick", write=False)


def test_zero_inflated_gamma_runs_end_to_end(emg_copy):
    res = nwb_autolfads.run(emg_copy, preset="smoke", write=False, progress=False,
                            overrides={"model.observation": "zigamma", "preprocess.floor": 0.0})
    assert np.all(np.isfinite(res.activations)) and np.all(res.activations >= 0)


def test_lead_in_windows_merge_back_in_place():
    cfg = build_config("smoke", overrides={"model.lead_in_bins": 5}).resolved(3)
    fit = fit_signal(_pre([100, 60]).segments, 0.01, Gamma(), cfg, progress=False)
    for m, n in zip(fit.mean, (100, 60)):
        assert m.shape == (n, 3)
        assert np.all(np.isnan(m[:5]))  # lead-in only: never modelled
        assert np.all(np.isfinite(m[5:]))


def test_lead_in_bins_are_left_out_of_the_results(emg_copy):
    res = nwb_autolfads.run(emg_copy, preset="smoke", write=False, progress=False,
                            overrides={"model.lead_in_bins": 5})
    assert res.times.shape == (1995,) and res.activations.shape == (1995, 6)
    assert np.all(np.isfinite(res.activations)) and np.all(np.isfinite(res.factors))
    assert res.times[0] > 0.05


def test_non_finite_model_outputs_are_never_written(emg_copy, monkeypatch):
    import nwb_autolfads.pipeline as pipeline
    from nwb_autolfads.errors import TrainingError

    real = pipeline.infer_merged

    def broken(*args, **kwargs):
        out = real(*args, **kwargs)
        out.mean[0][100, 3] = np.nan  # a bin a window covers
        return out

    monkeypatch.setattr(pipeline, "infer_merged", broken)
    with pytest.raises(TrainingError, match="NaN/inf.*nothing was written"):
        nwb_autolfads.run(emg_copy, preset="smoke", progress=False)
    assert sorted(p.name for p in emg_copy.parent.iterdir() if not p.name.startswith(".")) == ["emg.nwb"]


def _input_times(path):
    from pynwb import NWBHDF5IO

    with NWBHDF5IO(str(path), "r") as io:
        emg = io.read().acquisition["EMG"]
        if emg.timestamps is not None:
            return np.asarray(emg.timestamps[:])
        return emg.starting_time + np.arange(emg.data.shape[0]) / emg.rate


def test_short_unequal_cycles_get_shorter_windows_and_keep_their_times(tmp_path, caplog):
    import logging

    from nwb_autolfads.testing import mock_binned_trials_nwb

    path = mock_binned_trials_nwb(tmp_path / "cycles.nwb", n_cycles=8, cycle_duration=(0.3, 0.6), bin_size=0.01,
                                  n_muscles=2, seed=3)
    with caplog.at_level(logging.WARNING):
        res = nwb_autolfads.run(path, preset="smoke", write=False, progress=False,
                                overrides={"data.preprocessed": True, "windows.window_bins": 50})
    t = _input_times(path)
    lengths = [len(c) for c in np.split(t, np.flatnonzero(np.diff(t) > 0.015) + 1)]
    assert min(lengths) < 50 < max(lengths)
    assert f"windows shortened to {min(lengths)} bins" in caplog.text
    assert res.config.windows.window_bins == min(lengths) and res.config.windows.bin_size == pytest.approx(0.01)
    np.testing.assert_allclose(res.times, t, rtol=0, atol=1e-9)  # every bin of every cycle, at its own time
    assert np.all(np.isfinite(res.activations))


def test_contiguous_binned_cycles_with_a_trials_table_run_at_their_own_bins(tmp_path):
    from nwb_autolfads.testing import mock_binned_trials_nwb

    path = mock_binned_trials_nwb(tmp_path / "contiguous.nwb", n_cycles=8, bin_size=0.01, gap=None, n_muscles=2)
    res = nwb_autolfads.run(path, preset="smoke", write=False, progress=False)  # detected as rectified
    np.testing.assert_allclose(res.times, _input_times(path), rtol=0, atol=1e-9)
    assert res.config.windows.bin_size == pytest.approx(0.01) and res.config.windows.window_bins == 20
    assert any("already binned (100 Hz" in s for s in res.preprocessing_steps)


def test_segments_of_a_few_bins_are_refused_naming_the_options(tmp_path):
    from nwb_autolfads.testing import mock_binned_trials_nwb

    path = mock_binned_trials_nwb(tmp_path / "tiny.nwb", n_cycles=30, cycle_duration=0.03, bin_size=0.004,
                                  n_muscles=2)
    with pytest.raises(SignalError, match=r"too short.*\(0\.03\d* s, [78] bins\).*--align-to"):
        nwb_autolfads.run(path, preset="smoke", write=False, progress=False, overrides={"data.preprocessed": True})


def test_other_emg_like_series_left_out_are_warned_about(tmp_path, caplog):
    """Three loose 1-D EMG series in acquisition: one is modelled; the others must not be left out
    with only a line on stdout."""
    from datetime import datetime, timezone

    from pynwb import NWBHDF5IO, NWBFile, TimeSeries

    nwb = NWBFile(session_description="loose", identifier="loose", session_start_time=datetime(2026, 1, 1, tzinfo=timezone.utc))
    rng = np.random.default_rng(0)
    for m in ("TA", "SOL", "GM"):
        nwb.add_acquisition(TimeSeries(name=f"EMG_{m}", data=rng.normal(size=6000) * 1e-4, unit="volts", rate=2000.0,
                                       description=f"raw EMG of {m}"))
    with NWBHDF5IO(str(tmp_path / "loose.nwb"), "w") as io:
        io.write(nwb)
    with caplog.at_level("WARNING"):
        res = nwb_autolfads.run(tmp_path / "loose.nwb", preset="smoke", write=False, progress=False)
    assert len(res.channel_names) == 1
    assert "2 other EMG-like series are not modelled" in caplog.text and "--emg" in caplog.text


def test_run_records_wall_time_and_memory_of_each_stage(emg_copy):
    res = nwb_autolfads.run(emg_copy, preset="smoke", progress=False)
    assert list(res.stages) == ["read", "preprocess", "train", "infer", "write"]
    seconds = [s["seconds"] for s in res.stages.values()]
    assert all(s >= 0 for s in seconds) and seconds[2] > 0  # training takes time
    assert sum(seconds) <= res.seconds
    assert sum(seconds) > 0.9 * res.seconds  # the stages cover the run
    peaks = [s["maxrss_mb"] for s in res.stages.values()]
    assert peaks == sorted(peaks) and peaks[0] > 50  # a high-water mark in MB (torch alone is more than 50 MB)
    unwritten = nwb_autolfads.run(emg_copy, preset="smoke", progress=False, write=False)
    assert list(unwritten.stages) == ["read", "preprocess", "train", "infer"]


def test_model_data_puts_columns_in_rank_order_and_splits_every_modality_at_a_mask():
    """The EMG added first, the spikes after: the model's columns are spikes then EMG (the ranks),
    and a modality's mask splits the bin times, the rectified EMG and every modality's columns."""
    from nwb_autolfads.model.observations import Poisson
    from nwb_autolfads.modalities import BinnedEmg, BinnedSpikes
    from nwb_autolfads.pipeline import ModelData

    times = [0.005 + 0.01 * np.arange(6)]
    emg = BinnedEmg(segments=[np.full((6, 2), 2.0, np.float32)], channel_names=["TA", "SOL"], unit="volts",
                    source_path="acquisition/EMG", object_id=None, offsets=None, scales=np.array([0.5, 4.0]),
                    modality="emg")
    spikes = BinnedSpikes(segments=[np.arange(6, dtype=np.float32)[:, None]], channel_names=["3"], unit="Hz",
                          source_path="units", object_id=None, offsets=None, scales=None, modality="spikes",
                          bin_size=0.01)
    data = ModelData(bin_size=0.01, bin_times=list(times), rectified=[np.ones((6, 2))])
    data.add("emg", emg, Gamma(), None)
    data.add("spikes", spikes, Poisson(), [np.array([1, 1, 0, 1, 1, 1], bool)])
    assert [(name, sl) for name, _, sl in data.columns()] == [("spikes", slice(0, 1)), ("emg", slice(1, 3))]
    assert [len(t) for t in data.bin_times] == [2, 3] and [len(r) for r in data.rectified] == [2, 3]
    segments = data.segments()
    np.testing.assert_array_equal(segments[1], [[3, 2, 2], [4, 2, 2], [5, 2, 2]])
    assert type(data.observation()).__name__ == "Composite"
    back = data.to_source(np.concatenate(segments), np.ones(5, bool))
    np.testing.assert_allclose(back["spikes"][:, 0], np.array([0, 1, 3, 4, 5]) / 0.01)  # Hz
    np.testing.assert_allclose(back["emg"], np.tile([1.0, 8.0], (5, 1)))  # times the scales: volts


def test_a_run_given_a_config_object_warns_about_too_few_samples_as_a_preset_run_does(emg_copy, caplog):
    cfg = build_config("smoke")
    with caplog.at_level("WARNING"):
        nwb_autolfads.run(emg_copy, config=cfg, write=False, progress=False,
                          overrides={"inference.mode": "sample", "inference.n_samples": 3, "pbt.population": 1,
                                     "train.max_steps": 4})
    assert caplog.text.count("inference.interval=0.9 with inference.n_samples=3") == 1


def test_records_keyed_by_channel_name_keep_every_channel_when_names_repeat():
    from nwb_autolfads.pipeline import _unique

    assert _unique(["TA", "TA", "MG", "TA", 3]) == ["TA", "TA#2", "MG", "TA#3", "3"]
