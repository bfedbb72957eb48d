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
    # the plan made before training: the smoke budget, and a time estimated from steps timed on the data
    assert res.plan["members"] == 2 and res.plan["steps_per_member"] == 20
    assert res.plan["seconds_per_step"] > 0 and res.plan["expected_training_seconds_at_most"] > 0
    # smoke: 2 small members, pbt.workers 1: stacked, timed as such, and trained as the plan said
    assert res.plan["execution"].startswith("stacked") and res.plan["seconds_per_stacked_step"] > 0
    assert res.plan["execution"] == res.training.execution


def test_the_plan_states_members_steps_windows_and_an_estimate():
    import torch

    from nwb_autolfads.config import build_config
    from nwb_autolfads.pipeline import WORKER_START_SECONDS, training_plan

    cpu = torch.device("cpu")
    one = training_plan(build_config("quick"), 1200, 300, cpu, (0.035, 0.02))
    assert one["steps_per_member"] == 2000 and one["n_valid_checked"] == 256
    assert one["expected_training_seconds_at_most"] == pytest.approx(2000 * 0.035 + 200 * 0.02)
    assert "1 model, at most 2000 steps" in one["text"] and "an estimate" in one["text"]
    assert "1200 training / 300 validation (256 evaluated every 10 steps)" in one["text"]
    pop = training_plan(build_config("default", overrides={"pbt.workers": 2, "pbt.execution": "processes"}), 120, 30,
                        cpu, (0.05, 0.02))
    assert pop["steps_per_member"] == 4000 and pop["members"] == 20
    assert "20 members x at most 40 generations x 100 steps" in pop["text"] and "2 worker processes" in pop["text"]
    assert pop["expected_training_seconds_at_most"] == pytest.approx(10 * 40 * (100 * 0.05 + 10 * 0.02) + WORKER_START_SECONDS)
    assert "  execution processes: 2 worker processes x 1 thread" in pop["text"]


def test_the_plan_of_a_stacked_population_uses_the_stacked_step_time():
    import torch

    from nwb_autolfads.config import build_config
    from nwb_autolfads.pipeline import training_plan
    from nwb_autolfads.train.resources import Execution

    cpu = torch.device("cpu")
    cfg = build_config("default")
    stacked = Execution("stacked", 1, 1, "20 members of 64-unit layers as one stacked program on 1 thread")
    timed = training_plan(cfg, 120, 30, cpu, (0.05, 0.02), stacked, stacked_timing=(0.25, 0.1))
    # 40 generations x (100 steps of all 20 members at 0.25 s + 10 checks of all of them at 0.1 s)
    assert timed["expected_training_seconds_at_most"] == pytest.approx(40 * (100 * 0.25 + 10 * 0.1))
    assert timed["seconds_per_stacked_step"] == 0.25 and timed["execution"].startswith("stacked")
    assert "  execution stacked: 1 process, 1 thread" in timed["text"]
    assert "one stacked program: 250 ms per step of all of them" in timed["text"] and "4.0x faster" in timed["text"]
    # not timed: no stacking gain assumed, and said so
    untimed = training_plan(cfg, 120, 30, cpu, (0.05, 0.02), stacked)
    assert untimed["expected_training_seconds_at_most"] == pytest.approx(20 * 40 * (100 * 0.05 + 10 * 0.02))
    assert "no stacking gain assumed" in untimed["text"]


def test_the_plan_of_a_split_stacked_population_times_one_block_and_runs_the_workers_in_parallel():
    import torch

    from nwb_autolfads.config import build_config
    from nwb_autolfads.pipeline import WORKER_START_SECONDS, stacked_share, training_plan
    from nwb_autolfads.train.resources import choose_execution

    cpu = torch.device("cpu")
    cfg = build_config("default")  # 20 members of a small model
    split = choose_execution(20, cfg.model, 16, "cpu", cores=2)
    assert split.mode == "stacked-processes" and stacked_share(20, split) == 10
    assert stacked_share(5, choose_execution(5, cfg.model, 16, "cpu", cores=2)) == 3  # the larger block (2 | 3)
    timed = training_plan(cfg, 120, 30, cpu, (0.05, 0.02), split, stacked_timing=(0.2, 0.1))
    # the 2 workers in parallel: 40 generations x (100 steps of a 10-member block at 0.2 s + 10 checks at 0.1 s)
    assert timed["expected_training_seconds_at_most"] == pytest.approx(40 * (100 * 0.2 + 10 * 0.1)
                                                                       + WORKER_START_SECONDS)
    assert timed["members_per_worker"] == 10 and timed["seconds_per_stacked_step"] == 0.2
    assert "  execution stacked-processes: 2 worker processes x 1 thread, each training a block" in timed["text"]
    assert ("20 members in 2 worker processes in parallel, each a block of at most 10 members as one stacked "
            "program: 200 ms per step of a block") in timed["text"] and "2.5x faster" in timed["text"]
    untimed = training_plan(cfg, 120, 30, cpu, (0.05, 0.02), split)
    assert untimed["expected_training_seconds_at_most"] == pytest.approx(10 * 40 * (100 * 0.05 + 10 * 0.02)
                                                                         + WORKER_START_SECONDS)



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


def test_fit_windows_respects_fit_segments():
    from nwb_autolfads.pipeline import _fit_windows

    cfg = build_config("default")
    fitted = _fit_windows(cfg, [45] * 10, 0.01)
    assert (fitted.windows.window_bins, fitted.windows.overlap_bins) == (45, 9)
    assert _fit_windows(cfg, [120] * 10, 0.01) is cfg
    kept = cfg.updated({"windows.fit_segments": False})
    assert _fit_windows(kept, [45] * 10, 0.01) is kept
    lead = cfg.updated({"model.lead_in_bins": 5})
    assert _fit_windows(lead, [45] * 10, 0.01).windows.window_bins == 40  # lead-in + window = one segment


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
