"""Our results in the NWB ecosystem: pynwb validation, nwbinspector (DANDI config), dandi validate,
a reader that never imports nwb_autolfads, pynapple, and files written by earlier spec versions."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pynwb
import pytest

import nwb_autolfads
from nwb_autolfads.testing import mock_emg_nwb

FIXTURES = sorted((Path(__file__).parent / "data" / "results").glob("ndx-autolfads-*.nwb"))
ECO_OVERRIDES = {"data.model": "emg+spikes", "model.ic_dim": 96}


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    """A DANDI-named source with EMG and units, and the emg+spikes result of a smoke run with
    fewer windows than initial-condition dimensions (as a short or trial-structured run has)."""
    src = mock_emg_nwb(tmp_path_factory.mktemp("eco") / "sub-R1_ses-1_ecephys.nwb", duration=12.0, rate=1000.0,
                       n_muscles=4, n_units=5, seed=2)
    res = nwb_autolfads.run(src, preset="smoke", progress=False, overrides=ECO_OVERRIDES)
    return src, res


@pytest.fixture(scope="module")
def results_only(result):
    """The same run written as a results-only file (no copy of the source's data)."""
    src = result[0]
    res = nwb_autolfads.run(src, src.with_name("sub-R1_ses-1_desc-autolfadsresults_emg+spikes.nwb"), preset="smoke",
                            progress=False, overrides={**ECO_OVERRIDES, "output.content": "results"})
    return res


def test_pynwb_validate_finds_no_errors(result, results_only):
    src, res = result
    assert res.output.name == "sub-R1_ses-1_desc-autolfads_emg+spikes.nwb"
    assert pynwb.validate(path=str(res.output)) == []
    assert pynwb.validate(path=str(results_only.output)) == []
    np.testing.assert_array_equal(nwb_autolfads.load_results(results_only.output).firing_rates.values,
                                  nwb_autolfads.load_results(res.output).firing_rates.values)


def test_nwbinspector_dandi_config_adds_nothing_serious(result, results_only):
    from nwbinspector import Importance, inspect_nwbfile, load_config

    config = load_config("dandi")

    def messages(path):
        return {(m.check_function_name, m.location, m.importance.value)
                for m in inspect_nwbfile(nwbfile_path=str(path), config=config)}

    ds = nwb_autolfads.load_results(result[1].output)
    assert ds.sizes["window"] < ds.sizes["ic_dim"] == 96  # the case a TimeSeries of ICs was flagged CRITICAL in
    source, output = messages(result[0]), messages(result[1].output)
    new = output - source
    # nothing at CRITICAL or above at all, and nothing at BEST_PRACTICE_VIOLATION or above that the
    # source does not have already (suggestions such as "module name 'autolfads' is not a schema
    # module name" are expected: results belong in their own module)
    assert not [m for m in output if m[2] >= Importance.CRITICAL.value], output
    assert not [m for m in new if m[2] >= Importance.BEST_PRACTICE_VIOLATION.value], new
    only = messages(results_only.output)  # the results-only file, with the source's session and subject
    assert not [m for m in only - source if m[2] >= Importance.BEST_PRACTICE_VIOLATION.value], only


def test_dandi_validate_accepts_the_output_in_a_dandiset(result, results_only, tmp_path):
    dandiset = tmp_path / "dandiset"
    (dandiset / "sub-R1").mkdir(parents=True)
    for res in (result[1], results_only):
        shutil.copy(res.output, dandiset / "sub-R1" / res.output.name)
    (dandiset / "dandiset.yaml").write_text("identifier: DANDI:000000\nname: nwb-autolfads test\n"
                                            "description: results of nwb-autolfads\n")
    dandi = Path(sys.executable).with_name("dandi")
    proc = subprocess.run([str(dandi), "validate", str(dandiset)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "DANDI_DEVEL": "", "DANDI_CACHE": "ignore"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "No errors found" in proc.stdout + proc.stderr


def _object_ids(path):
    """Every object_id in the file (every group and dataset pynwb/hdmf gave one)."""
    import h5py
    ids = []
    with h5py.File(path, "r") as f:
        ids.append(f.attrs["object_id"])
        f.visititems(lambda name, obj: ids.append(obj.attrs["object_id"]) if "object_id" in obj.attrs else None)
    return ids


def test_dandi_organize_places_a_source_and_its_results_side_by_side(result, results_only, tmp_path):
    from dandi.organize import FileOperationMode, organize

    files = [result[0], result[1].output, results_only.output]
    ids = [_object_ids(f) for f in files]
    assert all(len(i) == len(set(i)) for i in ids)
    assert len(set().union(*map(set, ids))) == sum(map(len, ids))  # no object id in two files
    dandiset = tmp_path / "dandiset"
    dandiset.mkdir()
    (dandiset / "dandiset.yaml").write_text("identifier: DANDI:000000\nname: t\ndescription: t\n")
    organize([str(f) for f in files], dandiset_path=str(dandiset), files_mode=FileOperationMode.COPY, jobs=1)
    placed = sorted(dandiset.rglob("*.nwb"))
    assert len(placed) == 3, placed
    assert {f.stat().st_size for f in placed} == {f.stat().st_size for f in files}


def test_a_reader_without_nwb_autolfads_uses_the_cached_spec(result):
    code = textwrap.dedent(f"""
        import json, sys
        from pynwb import NWBHDF5IO
        with NWBHDF5IO({str(result[1].output)!r}, "r", load_namespaces=True) as io:
            nwb = io.read()
            run = nwb.processing["autolfads"][{result[1].run_name!r}]
            out = {{"type": type(run).__name__, "act": list(run.emg_activations.data.shape),
                    "channels": [str(c) for c in run.emg_activations.channel_names[:]],
                    "rates": list(run.firing_rates.data.shape), "seed": int(run.random_seed),
                    "config": json.loads(run.config)["preset"]}}
        assert "nwb_autolfads" not in sys.modules
        print(json.dumps(out))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got == {"type": "AutoLFADSRun", "act": [1200, 4], "channels": ["TA", "MG", "LG", "Sol"],
                   "rates": [1200, 5], "seed": 0, "config": "smoke"}


def test_pynapple_exposes_activations_and_factors_as_tsdframes(result):
    import pynapple as nap

    res = result[1]
    data = nap.load_file(str(res.output))
    act, factors = data["emg_activations"], data["factors"]
    assert isinstance(act, nap.TsdFrame) and isinstance(factors, nap.TsdFrame)
    assert act.shape == res.activations.shape and factors.shape == res.factors.shape
    np.testing.assert_allclose(act.t, res.times, atol=1e-9)
    np.testing.assert_allclose(act.values, res.activations, rtol=1e-6)
    assert isinstance(data["firing_rates"], nap.TsdFrame)


def test_to_pynapple_names_the_columns_by_muscle_and_unit_id(result):
    import pynapple as nap

    res = result[1]
    got = nwb_autolfads.to_pynapple(res.output)
    act, rates = got["emg_activations"], got["firing_rates"]
    assert isinstance(act, nap.TsdFrame) and list(act.columns) == ["TA", "MG", "LG", "Sol"]
    np.testing.assert_allclose(act["MG"].values, res.activations[:, 1], rtol=1e-6)
    np.testing.assert_allclose(act.t, res.times, atol=1e-9)
    ds = nwb_autolfads.load_results(res.output)
    assert list(rates.columns) == [int(u) for u in ds.unit.values]
    np.testing.assert_allclose(rates.values, ds.firing_rates.values)
    assert got["factors"].shape == res.factors.shape and set(got) >= {"inferred_inputs"}
    # pynapple's own reader names no column of a plain TimeSeries: the helper is what gives them names
    assert list(nap.load_file(str(res.output))["emg_activations"].columns) == [0, 1, 2, 3]


@pytest.mark.parametrize("fixture", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_files_of_every_released_spec_version_still_read(fixture, tmp_path):
    copy = tmp_path / fixture.name  # read a copy: the committed file must never change
    shutil.copy(fixture, copy)
    runs = nwb_autolfads.list_runs(copy)
    assert [r.name for r in runs] == ["fixture"]
    ds = nwb_autolfads.load_results(copy)
    assert ds.emg_activations.dims == ("time", "channel") and ds.sizes["channel"] == 2
    assert ds.firing_rates.dims == ("time", "unit") and ds.sizes["unit"] == 3
    assert np.all(np.isfinite(ds.emg_activations.values))
    # the initial conditions: a TimeSeries up to 0.6.0, a table since 0.7.0; read alike
    assert ds.initial_conditions.dims == ("window", "ic_dim") and ds.sizes["window"] >= 2
    assert ds.window_time.shape == (ds.sizes["window"],) and np.all(np.diff(ds.window_time.values) > 0)
    # the credible interval's bounds: written since spec 0.3.0 (the fixture sampled the posterior), absent before
    version = tuple(int(v) for v in fixture.stem.rsplit("-", 1)[1].split("."))
    bands = [v for v in ds.data_vars if v.endswith(("_lower", "_upper"))]
    if version >= (0, 3, 0):
        assert sorted(bands) == ["emg_activations_lower", "emg_activations_upper", "firing_rates_lower",
                                 "firing_rates_upper"]
        assert ds.emg_activations_lower.attrs["interval"] == 0.9
        assert np.all(ds.emg_activations_lower.values <= ds.emg_activations_upper.values)
    else:
        assert bands == []
    assert pynwb.validate(path=str(copy)) == []


def test_there_is_a_fixture_for_the_current_spec_version():
    from nwb_autolfads.ndx.namespace import SPEC_VERSION
    assert any(p.stem == f"ndx-autolfads-{SPEC_VERSION}" for p in FIXTURES), \
        "run python tests/data/results/make_fixture.py and commit its output"
