"""A run keeps its trained model; `apply` runs it on the same or another file without training:
bit-identical on the same file (CPU, same seed), channels matched by name, mismatches refused."""

import numpy as np
import pytest
import torch

import nwb_autolfads
from nwb_autolfads.cli import main
from nwb_autolfads.errors import ConfigError, OutputError, SignalError
from nwb_autolfads.estimator import as_dataset
from nwb_autolfads.testing import mock_emg_nwb

ARRAYS = ("times", "activations", "factors", "inferred_inputs", "activations_lower", "activations_upper")
SETTINGS = {"train.threads": 1, "pbt.workers": 1, "inference.mode": "sample", "inference.n_samples": 4}


def _session(path, seed=3, **kw):
    return mock_emg_nwb(path, duration=8.0, rate=1000.0, n_muscles=kw.pop("n_muscles", 3), seed=seed, **kw)


def _train(tmp, population):
    torch.set_num_threads(1)
    src = _session(tmp / "a.nwb")
    return src, nwb_autolfads.run(src, tmp / "a_out.nwb", preset="smoke", seed=11, progress=False,
                                  overrides={**SETTINGS, "pbt.population": population})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One smoke model trained on 8 s of 3 muscles, with its output and model folder."""
    return _train(tmp_path_factory.mktemp("apply"), 1)


def _same(a, b):
    for key in ARRAYS:
        assert np.array_equal(getattr(a, key), getattr(b, key)), key


def test_a_written_run_keeps_its_model_and_records_it(trained):
    _, res = trained
    assert res.model == res.output.with_name("a_out.autolfads-model").resolve()
    assert sorted(p.name for p in res.model.iterdir()) == ["model.json", "model.safetensors"]
    ds = nwb_autolfads.load_results(res.output)
    assert ds.attrs["model_location"] == str(res.model) and ds.attrs["model_sha256"] == res.model_sha256
    assert ds.attrs["model_applied"] == 0
    assert not [p for p in res.output.parent.iterdir() if p.name.startswith(".")]  # nothing half-written


@pytest.mark.parametrize("population", [1, 2])
def test_apply_reproduces_the_run_bit_identically_on_the_same_file(trained, tmp_path, population):
    src, res = trained if population == 1 else _train(tmp_path, population)
    again = nwb_autolfads.apply(res.model, src, tmp_path / "again.nwb", progress=False)
    _same(res, again)
    assert again.applied["sha256"] == res.model_sha256 and again.training.history == []
    ds = nwb_autolfads.load_results(again.output)
    assert ds.attrs["model_applied"] == 1 and ds.attrs["model_sha256"] == res.model_sha256
    assert "applied model" in ds.attrs["description"] and "step" not in ds.coords  # no training curves
    # `nwb-autolfads runs` names the model: the one kept by the run, the one applied by apply
    from nwb_autolfads.io.results import format_runs, list_runs
    kept = format_runs(res.output, list_runs(res.output))
    assert f"model {res.model}" in kept and "applied model" not in kept
    applied = format_runs(again.output, list_runs(again.output))
    assert "applied model" in applied and "no training" in applied and "training length" not in applied


def test_apply_matches_channels_by_name_in_another_order_and_session(trained, tmp_path):
    src, res = trained
    shuffled = _session(tmp_path / "b.nwb", channel_order=[2, 0, 1])  # the same muscles stored as LG, TA, MG
    got = nwb_autolfads.apply(res.model, shuffled, write=False, progress=False)
    assert got.channel_names == ["TA", "MG", "LG"]
    _same(res, got)  # each muscle's estimate is its own: the channels were matched by name, not position
    other = _session(tmp_path / "c.nwb", seed=8, channel_order=[1, 2, 0])
    new = nwb_autolfads.apply(res.model, other, write=False, progress=False, rescale=True)
    assert new.channel_names == ["TA", "MG", "LG"] and np.all(np.isfinite(new.activations))
    assert new.activations.shape == res.activations.shape and new.applied["rescaled"]


def test_missing_or_extra_channels_are_one_line_and_exit_2(trained, tmp_path, capsys):
    src, res = trained
    more = _session(tmp_path / "more.nwb", n_muscles=4)
    fewer = _session(tmp_path / "fewer.nwb", n_muscles=2)
    assert main(["apply", str(res.model), str(more), "-o", str(tmp_path / "x.nwb")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Sol" in err and "does not know" in err and "--drop-extra" in err
    assert main(["apply", str(res.model), str(fewer), "-o", str(tmp_path / "y.nwb")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "lacks" in err and "LG" in err
    assert "drop-extra" not in err  # it cannot help with a missing channel
    assert not (tmp_path / "x.nwb").exists() and not (tmp_path / "y.nwb").exists()
    assert main(["apply", str(res.model), str(more), "-o", str(tmp_path / "z.nwb"), "--drop-extra", "-q"]) == 0
    assert "nwb-autolfads apply finished" in capsys.readouterr().out
    assert nwb_autolfads.load_results(tmp_path / "z.nwb").channel.values.tolist() == ["TA", "MG", "LG"]
    with pytest.raises(SignalError, match="lacks") as info:
        nwb_autolfads.apply(res.model, fewer, write=False, progress=False)
    assert "drop" not in str(info.value) and "nwb_autolfads.run(path)" in str(info.value)


def test_an_existing_model_is_refused_before_training_and_none_is_kept_without_a_file(trained, tmp_path):
    src, res = trained
    with pytest.raises(OutputError, match="autolfads-model.*already exists"):
        nwb_autolfads.run(src, tmp_path / "new.nwb", preset="smoke", progress=False,
                          save_model=res.model)  # fails before training: the model folder is there
    out = nwb_autolfads.run(src, preset="smoke", write=False, progress=False, overrides={"pbt.population": 1})
    assert out.model is None
    kept = nwb_autolfads.run(src, tmp_path / "n.nwb", preset="smoke", progress=False,
                             overrides={"pbt.population": 1, "output.save_model": False})
    assert kept.model is None and not (tmp_path / "n.autolfads-model").exists()
    assert nwb_autolfads.load_results(kept.output).attrs["model_location"] == ""


def test_the_estimator_fits_transforms_saves_and_loads(tmp_path):
    torch.set_num_threads(1)
    src = _session(tmp_path / "a.nwb")
    est = nwb_autolfads.AutoLFADS(preset="smoke", seed=11, overrides={**SETTINGS, "pbt.population": 1},
                                  progress=False)
    assert est.fit(src) is est and est.model_path_.is_dir()
    assert not [p for p in tmp_path.iterdir() if p.name != "a.nwb"]  # fit writes nothing beside the file
    fitted = as_dataset(est.result_)  # what fit inferred on its file
    again = est.transform(src)
    assert again.channel.values.tolist() == ["TA", "MG", "LG"]
    assert np.array_equal(again.emg_activations.values, fitted.emg_activations.values)
    saved = est.save(tmp_path / "kept.autolfads-model")
    loaded = nwb_autolfads.AutoLFADS.load(saved, progress=False)
    assert loaded.model_sha256_ == est.model_sha256_
    assert np.array_equal(loaded.transform(src).factors.values, fitted.factors.values)
    with pytest.raises(OutputError, match="already exists"):
        est.save(saved)


def _copy_emg(src, out, unit="volts", factor=1.0):
    """``src``'s EMG alone in a new file, its values x ``factor`` and declared in ``unit``."""
    import datetime

    from pynwb import NWBHDF5IO, NWBFile, TimeSeries

    with NWBHDF5IO(str(src), "r") as io:
        e = io.read().acquisition["EMG"]
        data = (np.asarray(e.data[:]) * e.conversion + e.offset) * factor
        nf = NWBFile("copy", f"copy-{out.name}", datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc))
        nf.add_acquisition(TimeSeries(name="EMG", data=data, unit=unit, rate=e.rate, starting_time=0.0,
                                      description=e.description))
    with NWBHDF5IO(str(out), "w") as io:
        io.write(nf)
    return out


def test_a_file_in_millivolts_gives_the_runs_estimates_in_millivolts(trained, tmp_path):
    src, res = trained
    volts = nwb_autolfads.apply(res.model, _copy_emg(src, tmp_path / "v.nwb"), write=False, progress=False)
    mv = nwb_autolfads.apply(res.model, _copy_emg(src, tmp_path / "mv.nwb", "mV", 1000.0), write=False,
                             progress=False)
    assert mv.emg_unit == "mV"
    np.testing.assert_allclose(mv.activations, 1000.0 * volts.activations, rtol=1e-5)
    assert np.array_equal(volts.activations, res.activations)


def test_another_unit_or_amplitude_is_refused_in_one_line_unless_rescaled(trained, tmp_path, capsys):
    src, res = trained
    cases = {"arbitrary.nwb": ("a.u.", 1.0, "'a.u.'"), "gain.nwb": ("volts", 1000.0, "amplitude does not match"),
             "small.nwb": ("volts", 1e-3, "amplitude does not match"), "mislabelled.nwb": ("mV", 1.0, "amplitude")}
    for name, (unit, factor, words) in cases.items():
        path = _copy_emg(src, tmp_path / name, unit, factor)
        assert main(["apply", str(res.model), str(path), "-o", str(tmp_path / f"o_{name}"), "-q"]) == 2
        err = capsys.readouterr().err.strip()
        errors = [line for line in err.splitlines() if line.startswith("nwb-autolfads: error:")]
        assert len(errors) == 1 and words in errors[0] and "--rescale" in errors[0], err
        # besides it, only the warning that EMG peaking at about 1 uV (volts under a mV label) is implausible
        assert len(err.splitlines()) == 1 + (name in ("small.nwb", "mislabelled.nwb")), err
        assert not (tmp_path / f"o_{name}").exists()
    fit = nwb_autolfads.apply(res.model, tmp_path / "gain.nwb", rescale=True, write=False, progress=False)
    assert np.isfinite(fit.activations).all()


def test_the_channel_mismatch_advice_works_for_apply(trained, tmp_path):
    src, res = trained
    with pytest.raises(SignalError, match="drop_extra=True") as info:  # Python: the argument, not the flag
        nwb_autolfads.apply(res.model, _session(tmp_path / "more.nwb", n_muscles=4), write=False, progress=False)
    assert "--set" not in str(info.value) and "--drop-extra" not in str(info.value)
    with pytest.raises(SignalError, match="rescale=True") as info:
        nwb_autolfads.apply(res.model, _copy_emg(src, tmp_path / "gain.nwb", "volts", 1000.0), write=False,
                            progress=False)
    assert "--rescale" not in str(info.value)


def test_the_estimators_messages_name_the_fitted_model_and_its_arguments(tmp_path):
    torch.set_num_threads(1)
    src = _session(tmp_path / "a.nwb")
    est = nwb_autolfads.AutoLFADS(preset="smoke", seed=11, overrides={**SETTINGS, "pbt.population": 1},
                                  progress=False).fit(src)
    with pytest.raises(SignalError) as info:
        est.transform(_session(tmp_path / "more.nwb", n_muscles=4))
    message = str(info.value)
    assert "the fitted model" in message and str(est.model_path_) not in message and "drop_extra=True" in message
    with pytest.raises(ConfigError, match="the fitted model was trained on one session: leave out session='x'"):
        est.transform(src, session="x")
    loaded = nwb_autolfads.AutoLFADS.load(est.save(tmp_path / "kept.autolfads-model"), progress=False)
    with pytest.raises(ConfigError, match="kept.autolfads-model"):  # a folder the user saved is named
        loaded.transform(src, session="x")


@pytest.fixture(scope="module")
def day1(tmp_path_factory):
    """Two days of the same 3 muscles (nwb_autolfads.simulate.sessions, equal gains) and a small model
    trained on day 1 long enough to fit it (200 steps: ~8 s)."""
    from nwb_autolfads.simulate.sessions import SessionsSetting, write_sessions_nwb

    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("fit")
    days = write_sessions_nwb(tmp, SessionsSetting(n_sessions=2, muscles=(3, 3), gain_spread=1.0, duration=8.0,
                                                   rate=1000.0, seed=0))
    res = nwb_autolfads.run(days[0], tmp / "day1_out.nwb", preset="smoke", seed=11, progress=False,
                            overrides={**SETTINGS, "pbt.population": 1, "train.max_steps": 200,
                                       "train.ramp_steps": 50, "train.valid_every": 10})
    return tmp, days, res


def test_apply_warns_in_one_line_when_the_model_does_not_fit_the_recording(day1, capsys, caplog):
    import json

    tmp, days, res = day1
    stored = json.loads((res.model / "model.json").read_text())["columns"][0]["fit"]
    assert len(stored) == 3 and min(stored) > 0.3  # recorded at training, per channel
    with caplog.at_level("WARNING", logger="nwb_autolfads"):
        day2 = nwb_autolfads.apply(res.model, days[1], write=False, progress=False, rescale=True)
    assert day2.fit_check["verdict"] == "fits" and not day2.fit_check["flagged"]
    assert not [r for r in caplog.records if "explains" in r.getMessage()]  # the same muscles: no warning
    other = _session(tmp / "other_animal.nwb", seed=8)  # TA, MG, LG mixed otherwise
    out = tmp / "other_out.nwb"
    assert main(["apply", str(res.model), str(other), "--rescale", "-o", str(out), "-q"]) == 0
    captured = capsys.readouterr()
    err = [line for line in captured.err.splitlines() if "explains" in line]
    assert len(err) == 1 and "LG" in err[0] and "trained" in err[0] and "nwb-autolfads run" in err[0], err
    assert "WARNING     the model explains 1 channel(s) of this file far worse than its training data (LG)" \
        in captured.out  # the summary says it too
    check = json.loads(nwb_autolfads.load_results(out).attrs["metrics"])["fit_check"]  # in the provenance
    assert check["verdict"] == "misfit" and check["flagged"] == {"emg": ["LG"]}
    assert check["trained"]["emg"]["LG"] - check["applied"]["emg"]["LG"] > 0.5
    assert "noise-corrected correlation" in check["statistic"]


def test_a_model_saved_before_the_fit_statistic_skips_the_check(day1, tmp_path, caplog):
    import json
    import shutil

    _, days, res = day1
    old = shutil.copytree(res.model, tmp_path / "old.autolfads-model")
    meta = json.loads((old / "model.json").read_text())
    for c in meta["columns"]:
        del c["fit"]
    (old / "model.json").write_text(json.dumps(meta))
    with caplog.at_level("INFO", logger="nwb_autolfads"):
        got = nwb_autolfads.apply(old, days[1], write=False, progress=False, rescale=True)
    assert got.fit_check["verdict"] == "not checked" and got.fit_check["applied"]["emg"]["TA"] is not None
    assert any("not checked" in r.getMessage() and r.levelname == "INFO" for r in caplog.records)


def test_a_model_of_emg_and_units_applies_and_checks_both(tmp_path):
    torch.set_num_threads(1)
    src = _session(tmp_path / "u.nwb", n_units=5)
    res = nwb_autolfads.run(src, tmp_path / "u_out.nwb", preset="smoke", seed=1, progress=False,
                            overrides={**SETTINGS, "pbt.population": 1, "data.modalities": ["emg", "spikes"]})
    got = nwb_autolfads.apply(res.model, src, write=False, progress=False)  # modalities listed in another order
    np.testing.assert_array_equal(got.rates, res.rates)
    assert sorted(got.fit_check["applied"]) == ["emg", "spikes"] and len(got.fit_check["applied"]["spikes"]) == 5
    assert got.fit_check["verdict"] == "fits"
