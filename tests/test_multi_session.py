"""One model over several sessions (`run_sessions`, `run --multi-session`): each session's result in
its own file, in its own channels and units; provenance naming every session; the saved model
applied through one session's read-in; the batch grouping sessions by subject."""

import json

import h5py
import numpy as np
import pytest
import torch

import nwb_autolfads
from nwb_autolfads.cli import main
from nwb_autolfads.errors import ConfigError, SignalError
from nwb_autolfads.testing import mock_emg_nwb

SETTINGS = {"train.threads": 1, "pbt.workers": 1}


def _session(path, n_muscles, seed, **kw):
    return mock_emg_nwb(path, duration=kw.pop("duration", 8.0), rate=1000.0, n_muscles=n_muscles, seed=seed, **kw)


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """Two sessions of one subject (3 and 5 muscles, 60 and 50 Hz mains) modelled together with the
    smoke preset."""
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("sessions")
    a = _session(tmp / "sub-M1_ses-1_ecephys.nwb", 3, seed=1)
    b = _session(tmp / "sub-M1_ses-2_ecephys.nwb", 5, seed=2, line_frequency=50.0)  # recorded elsewhere
    results = nwb_autolfads.run_sessions([a, b], [tmp / "a_out.nwb", tmp / "b_out.nwb"], preset="smoke", seed=4,
                                         progress=False, overrides=SETTINGS)
    return tmp, (a, b), results


def test_each_session_gets_its_own_result_in_its_own_channels(two):
    tmp, (a, b), (ra, rb) = two
    assert ra.output == (tmp / "a_out.nwb").resolve() or ra.output.name == "a_out.nwb"
    assert ra.activations.shape[1] == 3 and rb.activations.shape[1] == 5
    assert ra.factors.shape[1] == rb.factors.shape[1]  # one model: the same factors
    for r, src in ((ra, a), (rb, b)):
        assert np.all(np.isfinite(r.activations)) and np.all(r.activations >= 0)
        with nwb_autolfads.load_results(r.output) as ds:
            assert list(ds.channel.values) == r.channel_names
            np.testing.assert_allclose(ds.emg_activations.values, r.activations, rtol=1e-6)
    runs = nwb_autolfads.list_runs(ra.output)
    assert runs[-1].sessions == ["sub-M1_ses-1_ecephys", "sub-M1_ses-2_ecephys"]


def test_provenance_names_every_session_and_the_one_model(two):
    tmp, (a, b), (ra, rb) = two
    assert ra.model is not None and ra.model == rb.model and ra.model_sha256 == rb.model_sha256
    assert ra.sessions["this"] == 0 and rb.sessions["this"] == 1
    with h5py.File(rb.output, "r") as f:
        run = f["processing/autolfads"][list(f["processing/autolfads"])[0]]
        table = json.loads(run["sessions"][()])
    assert table["this"] == 1
    assert [e["location"] for e in table["sessions"]] == [str(a.resolve()), str(b.resolve())]
    assert [len(e["columns"][0]["channel_names"]) for e in table["sessions"]] == [3, 5]
    meta = json.loads((ra.model / "model.json").read_text())
    assert [s["n_channels"] for s in meta["sessions"]] == [3, 5]
    import pynwb
    assert pynwb.validate(path=str(rb.output)) == []  # the 'sessions' dataset is in the extension's spec (0.6.0)


def test_the_saved_model_applies_through_one_sessions_read_in(two, capsys):
    tmp, (a, b), (ra, rb) = two
    again = nwb_autolfads.apply(ra.model, b, write=False, progress=False, session="sub-M1_ses-2_ecephys")
    np.testing.assert_array_equal(again.activations, rb.activations)  # the same file, seed and model: identical
    with pytest.raises(ConfigError, match="sub-M1_ses-1_ecephys, sub-M1_ses-2_ecephys") as info:
        nwb_autolfads.apply(ra.model, b, write=False, progress=False)
    assert "the file's channels are those of the model's session 'sub-M1_ses-2_ecephys'" in str(info.value)
    other = _session(tmp / "other.nwb", 5, seed=3, duration=4.0)
    with pytest.raises(SignalError) as info:  # session 1's read-in knows 3 muscles, the file has 5
        nwb_autolfads.apply(ra.model, other, write=False, progress=False, session="sub-M1_ses-1_ecephys")
    message = str(info.value)  # the session tried, and the one whose channels are the file's
    assert "session 'sub-M1_ses-1_ecephys' of model" in message and "session='sub-M1_ses-2_ecephys'" in message
    fewer = _session(tmp / "fewer.nwb", 2, seed=3, duration=4.0)
    assert main(["apply", str(ra.model), str(fewer), "--session", "sub-M1_ses-2_ecephys", "-o",
                 str(tmp / "fewer_out.nwb")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "session 'sub-M1_ses-2_ecephys'" in err and "lacks" in err
    assert "no session of the model" in err and "drop-extra" not in err  # it cannot help with missing channels


def test_apply_names_the_sessions_own_source_and_refuses_another_sessions_file(two):
    tmp, (a, b), (ra, rb) = two
    again = nwb_autolfads.apply(ra.model, b, tmp / "again_b.nwb", progress=False, session="sub-M1_ses-2_ecephys")
    assert again.applied["trained_on"]["location"] == str(b.resolve())  # not session 1's file
    assert again.applied["output"] == str(rb.output.resolve())
    with h5py.File(again.output, "r") as f:
        run = f["processing/autolfads"][list(f["processing/autolfads"])[0]]
        assert str(b.resolve()) in run.attrs["description"] and str(a.resolve()) not in run.attrs["description"]
    # b is session 2's recording: session 1's read-in (its 3 muscles kept, the 2 others dropped) is refused
    with pytest.raises(ConfigError, match="session 'sub-M1_ses-2_ecephys'.*session='sub-M1_ses-2_ecephys'"):
        nwb_autolfads.apply(ra.model, b, write=False, progress=False, session="sub-M1_ses-1_ecephys", drop_extra=True)
    # its run records the model's sessions, as the training run does
    assert again.sessions["this"] == 1 and [e["name"] for e in again.sessions["sessions"]] == [
        "sub-M1_ses-1_ecephys", "sub-M1_ses-2_ecephys"]
    assert nwb_autolfads.list_runs(again.output)[-1].sessions == ["sub-M1_ses-1_ecephys", "sub-M1_ses-2_ecephys"]
    assert again.fit_check["verdict"] == "fits"  # its own session's data: as when trained


def test_sessions_are_checked_before_any_work(tmp_path):
    a = _session(tmp_path / "a.nwb", 3, seed=1)
    b = _session(tmp_path / "b.nwb", 3, seed=2)
    with pytest.raises(ConfigError, match="at least two"):
        nwb_autolfads.run_sessions([a], preset="smoke", write=False, progress=False)
    with pytest.raises(ConfigError, match="one modality"):
        nwb_autolfads.run_sessions([a, b], preset="smoke", write=False, progress=False,
                                   overrides={"data.modalities": ["emg", "spikes"]})
    with pytest.raises(ConfigError, match="both write"):
        nwb_autolfads.run_sessions([a, b], [tmp_path / "o.nwb", tmp_path / "o.nwb"], preset="smoke", progress=False)
    assert not (tmp_path / "o.nwb").exists()


def test_a_sessions_error_names_the_session(tmp_path):
    from nwb_autolfads.errors import SignalNotFoundError
    from nwb_autolfads.testing.spikes import chunked_spikes_nwb

    a = _session(tmp_path / "a.nwb", 3, seed=1, duration=4.0)
    short = _session(tmp_path / "short.nwb", 3, seed=2, duration=0.1)
    spikes = chunked_spikes_nwb(tmp_path / "spikes_only.nwb", duration=2.0, n_units=4)
    with pytest.raises(SignalError, match=r"^session 'short' \(.*short.nwb\): recording too short"):
        nwb_autolfads.run_sessions([a, short], preset="smoke", write=False, progress=False, overrides=SETTINGS)
    with pytest.raises(SignalNotFoundError, match=r"^session 'spikes_only' \(.*spikes_only.nwb\): no EMG"):
        nwb_autolfads.run_sessions([a, spikes], preset="smoke", write=False, progress=False, overrides=SETTINGS)
    with pytest.raises(ConfigError, match="^unknown"):  # a setting's error is not a session's
        nwb_autolfads.run_sessions([a, short], preset="smoke", write=False, progress=False, overrides={"x.y": 1})


def test_one_recording_given_twice_is_refused_before_training(tmp_path):
    import shutil

    a = _session(tmp_path / "a.nwb", 3, seed=1, duration=4.0)
    copy = shutil.copy(a, tmp_path / "a_copy.nwb")
    outs = [tmp_path / "o1.nwb", tmp_path / "o2.nwb"]
    for pair in ([a, a], [a, copy]):
        with pytest.raises(ConfigError, match="same data"):
            nwb_autolfads.run_sessions(pair, outs, preset="smoke", progress=False, overrides=SETTINGS)
    assert not any(o.exists() for o in outs)


def test_cli_multi_session_batch_groups_by_subject(tmp_path, capsys):
    data = tmp_path / "data"
    for sub, ses, n in (("A", 1, 3), ("A", 2, 4), ("B", 1, 3)):
        (data / f"sub-{sub}").mkdir(parents=True, exist_ok=True)
        _session(data / f"sub-{sub}" / f"sub-{sub}_ses-{ses}_ecephys.nwb", n, seed=ses + n)
    out = tmp_path / "out"
    args = ["run", str(data), "-o", str(out), "--multi-session", "--preset", "smoke", "-q",
            "--set", "train.threads=1"]
    assert main([*args, "--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert "A: 2 session(s)" in plan and "B: 1 session(s) (one session: a model of its own)" in plan
    assert main(args) == 0
    manifest = json.loads((out / "autolfads-manifest.json").read_text())
    rows = {r["name"]: r for r in manifest["assets"]}
    assert all(r["status"] == "done" for r in rows.values())
    a1, a2, b1 = (rows[k] for k in sorted(rows))
    assert a1["model"] == a2["model"] != b1["model"] and a1["model_sha256"] == a2["model_sha256"]
    assert manifest["settings"]["multi_session"] is True
    capsys.readouterr()
    assert main(args) == 0  # run again: everything is done
    assert "3 done (3 earlier)" in capsys.readouterr().out


def test_the_estimator_fits_several_sessions_and_transforms_through_one(two):
    tmp, (a, b), _ = two
    est = nwb_autolfads.AutoLFADS(preset="smoke", seed=4, overrides=SETTINGS, progress=False)
    ds_a, ds_b = est.fit_transform([a, b])
    assert est.sessions_ == ["sub-M1_ses-1_ecephys", "sub-M1_ses-2_ecephys"]
    assert ds_a.sizes["channel"] == 3 and ds_b.sizes["channel"] == 5
    again = est.transform(b, session="sub-M1_ses-2_ecephys")
    np.testing.assert_array_equal(again.emg_activations.values, ds_b.emg_activations.values)
    with pytest.raises(SignalError) as info:  # session 1's 3 muscles are not the file's 5
        est.transform(_session(tmp / "five.nwb", 5, seed=3, duration=4.0), session="sub-M1_ses-1_ecephys")
    message = str(info.value)
    assert "the fitted model" in message and str(est.model_path_) not in message
    assert "session='sub-M1_ses-2_ecephys'" in message and "--" not in message
    saved = est.save(tmp / "est.autolfads-model")
    assert nwb_autolfads.AutoLFADS.load(saved).sessions_ == est.sessions_


def test_a_baseline_reads_a_session_with_that_sessions_preprocessing(two):
    from nwb_autolfads.baseline_estimators import LowPass

    tmp, (a, b), (ra, rb) = two
    line = (ra.config.preprocess.line_frequency, rb.config.preprocess.line_frequency)
    assert round(line[0]) == 60 and round(line[1]) == 50  # found in each session
    est = nwb_autolfads.AutoLFADS.load(ra.model, progress=False)
    assert LowPass(cutoff=6.0, config=est).fit(b).config_.preprocess.line_frequency == line[1]  # not session 1's
    other = _session(tmp / "not_a_session.nwb", 5, seed=3, duration=4.0)
    with pytest.raises(ConfigError, match="none of them"):
        LowPass(cutoff=6.0, config=est).fit(other)


def test_the_bin_size_suggested_for_differing_sessions_fits_them_all():
    from nwb_autolfads.sessions import common_bin

    assert common_bin([0.004, 0.005]) == pytest.approx(0.02)
    assert common_bin([1 / 300, 0.005]) == pytest.approx(0.01)
    assert common_bin([0.001, 0.002]) == pytest.approx(0.006)  # at least 5 ms


def test_the_bin_size_hint_is_never_seconds_long():
    """Clocks slightly apart (9.98 vs 10 ms) have a common multiple of seconds: the hint then asks
    for twice the coarsest bin instead (it once suggested --set windows.bin_size=50)."""
    from nwb_autolfads.sessions import bin_size_hint

    assert "windows.bin_size=0.02)" in bin_size_hint([0.004, 0.005])
    assert "windows.bin_size=0.021)" in bin_size_hint([0.00998, 0.0105])
    assert "windows.bin_size=0.021)" in bin_size_hint([0.0100005, 0.0105])


def test_a_population_trains_one_model_over_the_sessions(tmp_path):
    a = _session(tmp_path / "sub-P_ses-1_ecephys.nwb", 3, seed=1)
    b = _session(tmp_path / "sub-P_ses-2_ecephys.nwb", 4, seed=2)
    ra, rb = nwb_autolfads.run_sessions([a, b], preset="smoke", seed=2, write=False, progress=False,
                                        overrides={**SETTINGS, "pbt.population": 2, "pbt.max_generations": 2})
    assert ra.training.pbt_history and ra.training.pbt_history == rb.training.pbt_history  # one population
    assert ra.training.execution.startswith(("sequential", "processes"))  # several sessions never train stacked
    assert ra.activations.shape[1] == 3 and rb.activations.shape[1] == 4
    assert np.all(np.isfinite(ra.activations)) and np.all(np.isfinite(rb.activations))
