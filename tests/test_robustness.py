"""Never lose or corrupt data: every class of bad input is one line on stderr with exit code 2,
no traceback, no output and an untouched input; awkward signals (NaN stretches, dead or
saturated channels) are handled; runs writing the same file are serialised by a lock."""

import hashlib
import subprocess
import sys
import time
from datetime import datetime, timezone

import h5py
import numpy as np
import pytest
from pynwb import NWBHDF5IO, NWBFile, TimeSeries

import nwb_autolfads
from nwb_autolfads.errors import OutputError
from nwb_autolfads.testing import mock_emg_nwb, synthetic_emg, write_emg_nwb
from nwb_autolfads.io.writing import OutputLock


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "nwb_autolfads", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=300)


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def _nwb_with(path, series):
    nwb = NWBFile(session_description="bad input", identifier="bad",
                  session_start_time=datetime(2026, 1, 1, tzinfo=timezone.utc))
    nwb.add_acquisition(series)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


def _plain_hdf5(d):
    with h5py.File(d / "plain.nwb", "w") as f:
        f["x"] = np.arange(3)
    return d / "plain.nwb", []


def _timestamps(d, how):
    path = mock_emg_nwb(d / f"{how}.nwb", duration=3.0, rate=1000.0, n_muscles=2, use_timestamps=True,
                        include_truth=False)
    with h5py.File(path, "a") as f:
        ts = f["acquisition/EMG/timestamps"]
        t = ts[:]
        if how == "unsorted":
            t[100], t[101] = t[101], t[100]
        else:
            t[101] = t[100]
        ts[...] = t
    return path, []


BAD_INPUTS = {
    "hdf5 but not nwb": (_plain_hdf5, "not NWB"),
    "non-monotonic timestamps": (lambda d: _timestamps(d, "unsorted"), "not strictly increasing"),
    "duplicate timestamps": (lambda d: _timestamps(d, "duplicate"), "not strictly increasing"),
    "3-D data": (lambda d: (_nwb_with(d / "3d.nwb", TimeSeries(name="EMG", data=np.zeros((100, 2, 2)), unit="V",
                                                                rate=1000.0, description="EMG")), []), "shape"),
    "empty data": (lambda d: (_nwb_with(d / "empty.nwb", TimeSeries(name="EMG", data=np.zeros((0, 2)), unit="V",
                                                                     rate=1000.0, description="EMG")), []), "empty"),
    "unknown --emg path": (lambda d: (mock_emg_nwb(d / "e.nwb", duration=2.0, rate=1000.0, n_muscles=2),
                                      ["--emg", "acquisition/Nope"]), "acquisition/Nope"),
    "unknown config key": (lambda d: (mock_emg_nwb(d / "e.nwb", duration=2.0, rate=1000.0, n_muscles=2),
                                      ["--set", "train.learning_rate=0.1"]), "unknown config key"),
    "wrong config type": (lambda d: (mock_emg_nwb(d / "e.nwb", duration=2.0, rate=1000.0, n_muscles=2),
                                     ["--set", "pbt.population=many"]), "pbt.population"),
    "out-of-range config value": (lambda d: (mock_emg_nwb(d / "e.nwb", duration=2.0, rate=1000.0, n_muscles=2),
                                             ["--set", "pbt.lr.weight=3"]), "pbt.lr.weight"),
    "bad config file": (lambda d: (mock_emg_nwb(d / "e.nwb", duration=2.0, rate=1000.0, n_muscles=2),
                                   ["--config", (d / "c.yaml").write_text("train: [1, 2") and d / "c.yaml"]),
                        "not valid YAML"),
    "invalid option value": (lambda d: (mock_emg_nwb(d / "e.nwb", duration=2.0, rate=1000.0, n_muscles=2),
                                        ["--population", "0"]), "pbt.population"),
    "unknown --resume directory": (lambda d: (mock_emg_nwb(d / "e.nwb", duration=2.0, rate=1000.0, n_muscles=2),
                                              ["--resume", d / "nowhere"]), "not a run directory"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_exit_2_no_output_input_untouched(tmp_path, case):
    make, words = BAD_INPUTS[case]
    path, extra = make(tmp_path)
    before_sha = _sha(path)
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = _cli("run", path, "--preset", "smoke", "-q", *extra)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("nwb-autolfads: error: ")
    assert "Traceback" not in proc.stderr
    assert words in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no output, no leftovers
    assert _sha(path) == before_sha


def test_read_only_output_directory_and_full_disk_are_clear_errors(tmp_path, monkeypatch):
    import nwb_autolfads.io.writing as writing

    src = mock_emg_nwb(tmp_path / "e.nwb", duration=4.0, rate=1000.0, n_muscles=2)
    real_access = writing.os.access
    monkeypatch.setattr(writing.os, "access", lambda p, mode: False if mode == writing.os.W_OK else real_access(p, mode))
    with pytest.raises(OutputError, match="not writable"):
        nwb_autolfads.run(src, preset="smoke", progress=False)
    monkeypatch.undo()

    def full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writing.os, "replace", full)
    with pytest.raises(OutputError, match="No space left on device.*free disk space"):
        nwb_autolfads.run(src, preset="smoke", progress=False)  # fails saving the first checkpoint
    with pytest.raises(OutputError, match="No space left on device.*free disk space"):
        nwb_autolfads.run(src, preset="smoke", progress=False, overrides={"pbt.population": 1},
                          fresh=True)  # other settings: --fresh; fails at the first check's checkpoint
    monkeypatch.undo()
    # nothing at the output path; only the hidden run directory that a rerun would resume from, and the
    # population run's state that --fresh moved aside
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 3 and names[0] == ".e_autolfads.nwb.rundir" and names[2] == "e.nwb"
    assert names[1].startswith(".e_autolfads.nwb.rundir.")
    assert not list(tmp_path.glob(".e_autolfads.nwb.rundir/*.tmp"))


def test_nan_stretches_and_dead_channels_are_left_out_with_a_warning(tmp_path):
    synth = synthetic_emg(duration=12.0, rate=1000.0, n_muscles=3, seed=4)
    synth.raw[4000:4500] = np.nan  # half a second lost on every channel
    synth.raw[7000:7010, 1] = np.inf  # a glitch on one channel
    path = write_emg_nwb(tmp_path / "nan.nwb", synth)
    proc = _cli("run", path, "--preset", "smoke", "-q")
    assert proc.returncode == 0, proc.stderr
    assert "NaN/inf are left out" in proc.stderr
    ds = nwb_autolfads.load_results(tmp_path / "nan_autolfads.nwb")
    assert np.all(np.isfinite(ds.emg_activations.values)) and np.all(np.isfinite(ds.factors.values))
    t = ds.time.values
    assert not np.any((t > 4.0) & (t < 4.5))  # no estimate inside the lost stretch

    dead = synthetic_emg(duration=12.0, rate=1000.0, n_muscles=3, seed=4)
    dead.raw[:, 2] = np.nan
    path = write_emg_nwb(tmp_path / "dead.nwb", dead)
    proc = _cli("run", path, "--preset", "smoke", "-q")
    assert proc.returncode == 0, proc.stderr
    assert "hold no finite sample" in proc.stderr and "flat" in proc.stderr
    ds = nwb_autolfads.load_results(tmp_path / "dead_autolfads.nwb")
    assert np.all(np.isfinite(ds.emg_activations.values))


def test_values_beyond_float32_are_never_written_as_inf(tmp_path):
    synth = synthetic_emg(duration=10.0, rate=1000.0, n_muscles=2, seed=2)
    synth.raw[:] = synth.raw * 1e45  # absurd units (about 1e41), but finite in float64
    path = write_emg_nwb(tmp_path / "huge.nwb", synth, include_truth=False)
    res = nwb_autolfads.run(path, preset="smoke", progress=False)
    ds = nwb_autolfads.load_results(res.output)
    assert np.all(np.isfinite(ds.emg_activations.values)) and ds.emg_activations.values.max() > 1e39
    small = nwb_autolfads.load_results(
        nwb_autolfads.run(write_emg_nwb(tmp_path / "small.nwb", synthetic_emg(duration=10.0, rate=1000.0,
                                                                              n_muscles=2, seed=2)),
                          preset="smoke", progress=False).output)
    assert small.emg_activations.dtype == np.float32  # float32 whenever the values fit


def test_saturated_channel_warns(tmp_path):
    synth = synthetic_emg(duration=10.0, rate=1000.0, n_muscles=2, seed=1)
    top = np.quantile(np.abs(synth.raw[:, 0]), 0.9)
    synth.raw[:, 0] = np.clip(synth.raw[:, 0], -top, top)
    path = write_emg_nwb(tmp_path / "sat.nwb", synth)
    proc = _cli("run", path, "--preset", "smoke", "-q")
    assert proc.returncode == 0, proc.stderr
    assert "look saturated" in proc.stderr and "TA" in proc.stderr


def test_a_locked_output_is_refused_then_free_again(tmp_path):
    src = mock_emg_nwb(tmp_path / "e.nwb", duration=4.0, rate=1000.0, n_muscles=2)
    out = tmp_path / "e_autolfads.nwb"
    with OutputLock(out):
        proc = _cli("run", src, "--preset", "smoke", "-q")
        assert proc.returncode == 2 and "being written by another nwb-autolfads run" in proc.stderr
        inplace = _cli("run", src, "--preset", "smoke", "-q", "--in-place")
        assert inplace.returncode == 0, inplace.stderr  # another target: not locked
        with OutputLock(src):
            proc = _cli("run", src, "--preset", "smoke", "-q", "--in-place")
            assert proc.returncode == 2 and "being written" in proc.stderr
    assert _cli("run", src, "--preset", "smoke", "-q").returncode == 0
    # no lock files left: the input (with the in-place run), the output, and each run's model folder
    names = sorted(p.name for p in tmp_path.iterdir())
    assert [n for n in names if not n.endswith(".autolfads-model")] == ["e.nwb", "e_autolfads.nwb"]
    models = [n for n in names if n.endswith(".autolfads-model")]
    # both named after their run: the in-place run's beside the input, and the last run's (its output is a
    # full copy of the input, which already holds the in-place run)
    assert len(models) == 2 and models[0].startswith("e.run_") and models[1].startswith("e_autolfads.run_")


def test_two_runs_on_one_input_with_different_outputs_both_succeed(tmp_path):
    src = mock_emg_nwb(tmp_path / "e.nwb", duration=6.0, rate=1000.0, n_muscles=2)
    before = _sha(src)
    procs = [subprocess.Popen([sys.executable, "-m", "nwb_autolfads", "run", str(src), "--preset", "smoke", "-q",
                               "-o", str(tmp_path / f"out{k}.nwb")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for k in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    assert _sha(src) == before
    a, b = (nwb_autolfads.load_results(tmp_path / f"out{k}.nwb") for k in range(2))
    np.testing.assert_array_equal(a.emg_activations.values, b.emg_activations.values)  # deterministic too


_ARMED_RUN = """
import pathlib, sys, time
from nwb_autolfads.cli import main
import nwb_autolfads.pipeline  # noqa: F401  (imported before the race starts: only the run itself is timed)
ready, go = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
ready.touch()
while not go.exists():
    time.sleep(0.005)
sys.exit(main(sys.argv[3:]))
"""


def test_two_runs_racing_for_one_output_never_interleave(tmp_path):
    src = mock_emg_nwb(tmp_path / "e.nwb", duration=6.0, rate=1000.0, n_muscles=2)
    args = ["run", str(src), "--preset", "smoke", "-q", "--overwrite"]
    # the second run is started first and waits, imported, so that it tries the output while the first
    # holds its lock whatever the machine's speed (a plain second process spent its seconds importing
    # while a fast first run finished)
    ready, go = tmp_path / "ready", tmp_path / "go"
    second = subprocess.Popen([sys.executable, "-c", _ARMED_RUN, str(ready), str(go), *args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not ready.exists() and time.time() < deadline:
        time.sleep(0.01)
    first = subprocess.Popen([sys.executable, "-m", "nwb_autolfads", *args, "--set", "pbt.generation_steps=400"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = tmp_path / ".e_autolfads.nwb.lock"
    deadline = time.time() + 60
    while not lock.exists() and time.time() < deadline:
        time.sleep(0.01)
    go.touch()
    _, second_err = second.communicate(timeout=300)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert second.returncode == 2 and "being written by another nwb-autolfads run (pid" in second_err
    assert len(nwb_autolfads.list_runs(tmp_path / "e_autolfads.nwb")) == 1


def test_float32_timestamps_late_in_a_session_and_channels_x_time_data_run(tmp_path, caplog):
    """EMG stored channels x time with float32 timestamps from t = 5000 s (once refused as "too
    short"): read transposed, one warning for each, every bin at its true time."""
    path = mock_emg_nwb(tmp_path / "late.nwb", duration=6.0, rate=2000.0, n_muscles=3, start_time=5000.0,
                        float32_timestamps=True, transposed=True, include_truth=False)
    with caplog.at_level("WARNING"):
        res = nwb_autolfads.run(path, preset="smoke", write=False, progress=False)
    assert res.activations.shape[1] == 3
    assert np.allclose(np.diff(res.times), 0.01) and res.times[-1] == pytest.approx(5005.995, abs=0.005)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("float32" in m for m in messages) == 1 and sum("channels x time" in m for m in messages) == 1


def _with_invalid_times(path, synth, intervals, use_timestamps=False):
    write_emg_nwb(path, synth, use_timestamps=use_timestamps)
    with NWBHDF5IO(str(path), "a") as io:
        nwb = io.read()
        for start, stop in intervals:
            nwb.add_invalid_time_interval(start_time=start, stop_time=stop, tags=["disconnected"])
        io.write(nwb)
    return path


@pytest.mark.parametrize("use_timestamps", [False, True])
def test_invalid_times_are_left_out_and_what_is_inside_them_changes_nothing(tmp_path, use_timestamps):
    """NWBFile.invalid_times marks periods not to analyse (here 4-6 s, an electrode off: noise 50x
    the EMG). They were modelled and written, and set the scaling of every channel (the fit on the
    good bins fell from r 0.98 to 0.0). Now their samples are left out like NaN: no result inside,
    and garbage inside them gives bit for bit the result that clean data there gives."""
    clean = synthetic_emg(duration=10.0, rate=1000.0, n_muscles=3, seed=4)
    kw = {"use_timestamps": use_timestamps}
    bad = synthetic_emg(duration=10.0, rate=1000.0, n_muscles=3, seed=4)
    inside = (bad.times >= 4.0) & (bad.times <= 6.0)
    bad.raw[inside] = np.random.default_rng(1).normal(0, 50 * bad.raw.std(), size=(inside.sum(), 3))
    a = _with_invalid_times(tmp_path / "clean.nwb", clean, [(4.0, 6.0)], **kw)
    b = _with_invalid_times(tmp_path / "bad.nwb", bad, [(4.0, 6.0)], **kw)
    ra = nwb_autolfads.run(a, preset="smoke", progress=False, seed=3)
    rb = nwb_autolfads.run(b, preset="smoke", progress=False, seed=3)
    t = np.asarray(rb.times, float)
    assert not np.any((t > 4.0) & (t < 6.0)) and t.min() < 4.0 and t.max() > 6.0
    np.testing.assert_array_equal(np.asarray(ra.times), t)
    np.testing.assert_array_equal(np.asarray(ra.activations), np.asarray(rb.activations))
    proc = _cli("inspect", b)
    assert "invalid_times: 1 interval(s), 2 s in all (4-6 s): run leaves the EMG samples inside them out" in proc.stdout


def test_invalid_times_that_cannot_be_right_or_cover_everything_are_refused(tmp_path):
    synth = synthetic_emg(duration=4.0, rate=1000.0, n_muscles=2, seed=4)
    reversed_ = _with_invalid_times(tmp_path / "rev.nwb", synth, [(1.0, 2.0), (3.0, 2.5)])
    proc = _cli("run", reversed_, "--preset", "smoke")
    assert proc.returncode == 2 and "invalid_times row 1 runs from 3.0 to 2.5 s" in proc.stderr
    everything = _with_invalid_times(tmp_path / "all.nwb", synth, [(-1.0, 100.0)])
    proc = _cli("run", everything, "--preset", "smoke")
    assert proc.returncode == 2 and "every EMG sample lies inside the file's invalid_times" in proc.stderr
    outside = _with_invalid_times(tmp_path / "out.nwb", synth, [(50.0, 60.0)])
    proc = _cli("run", outside, "--preset", "smoke", "-q")
    assert proc.returncode == 0 and "none of them within the EMG's samples" in proc.stderr
    assert not (tmp_path / "rev_autolfads.nwb").exists() and not (tmp_path / "all_autolfads.nwb").exists()


def test_a_signal_while_the_outputs_are_put_in_place_waits_until_they_are(tmp_path, monkeypatch, caplog):
    """SIGINT/SIGTERM right after the output was renamed into place used to leave it recording a
    model folder that did not exist (or an older run's), and say that nothing was written."""
    import os
    import signal

    from nwb_autolfads.io import writing

    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)  # SIG_IGN under nohup
    with writing.uninterrupted("test outputs") as held:
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
    assert held.received == [signal.SIGINT, signal.SIGTERM]
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before  # handlers restored
    assert "SIGINT, SIGTERM received while test outputs were put in place" in caplog.text

    import nwb_autolfads.pipeline as pipeline
    real = pipeline.write_results

    def write_then_interrupt(*args, **kwargs):
        out = real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C just after the rename
        return out

    monkeypatch.setattr(pipeline, "write_results", write_then_interrupt)
    src = mock_emg_nwb(tmp_path / "s.nwb", duration=3.0, rate=1000.0, n_muscles=2, include_truth=False)
    res = nwb_autolfads.run(src, preset="smoke", progress=False)
    assert res.output.is_file() and res.model is not None and (res.model / "model.json").is_file()
    assert nwb_autolfads.load_results(res.output).attrs["model_sha256"] == res.model_sha256
    assert not list(tmp_path.glob(".*partial*")) and not (tmp_path / ".s_autolfads.nwb.rundir").exists()


def test_raw_emg_holding_one_value_is_left_out_or_named(tmp_path, caplog):
    """Zero padding after the recording (or dropped packets filled with zeros) was modelled as a
    resting muscle and written (1000 bins of a 30 s file); one disconnected channel raised nothing."""
    synth = synthetic_emg(duration=12.0, rate=1000.0, n_muscles=3, seed=4)
    synth.raw[9000:] = 0.0  # the last 3 s: a buffer padded with zeros
    synth.raw[2000:4000, 1] = 0.0  # one electrode off for 2 s
    path = write_emg_nwb(tmp_path / "pad.nwb", synth)
    res = nwb_autolfads.run(path, preset="smoke", progress=False)
    t = np.asarray(res.times, float)
    assert t.max() < 9.0 and t.min() < 1.0 and np.any((t > 2.0) & (t < 4.0))  # only the all-channel part left out
    assert "left out 3000 samples (25.00%) where every channel holds one value" in caplog.text
    assert f"channel {synth.names[1]} holds one value for 2 s in all (1 stretch(es), e.g. 2-3.999 s)" in caplog.text
    assert "invalid_times" in caplog.text
