"""End to end: a modality added by one registry entry (``--model emg+force``) on a tiny file."""

import json
import subprocess
import sys

import numpy as np
import pynwb
import pytest
from pynwb import NWBHDF5IO

import nwb_autolfads
from nwb_autolfads.io.behavior import read_behavior, to_bins
from nwb_autolfads.testing import mock_emg_nwb


@pytest.fixture(scope="module")
def force_file(tmp_path_factory):
    """8 s of 3-muscle EMG at 1 kHz with a 100 Hz force (processing/behavior/force, N) it drives."""
    return mock_emg_nwb(tmp_path_factory.mktemp("force") / "sub-F1_ses-1_behavior.nwb", duration=8.0, rate=1000.0,
                        n_muscles=3, behavior=True, seed=3)


def test_cli_emg_plus_force_writes_the_inferred_force_in_newtons(force_file, tmp_path):
    out = tmp_path / "out.nwb"
    proc = subprocess.run([sys.executable, "-m", "nwb_autolfads", "run", str(force_file), "--model", "emg+force",
                           "--preset", "smoke", "-q", "-o", str(out), "--set", "inference.mode=sample"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "inferred_force (" in proc.stdout and "Gaussian (force)" in proc.stdout
    # the 100 Hz force's last sample (7.99 s) covers up to 7.995 s, past the last EMG bin's centre
    # (7.9945 s): every bin is modelled (a series that stops short: tests/unit/test_modalities.py)
    assert "outside the force series" not in proc.stderr
    with NWBHDF5IO(str(out), "r") as io:
        nwb = io.read()
        (run,) = nwb.processing["autolfads"].data_interfaces.values()
        assert run.modalities == "emg+force" and json.loads(run.config)["data"]["modalities"] == ["emg", "force"]
        assert run.source_paths == "acquisition/EMG,processing/behavior/force"
        force = run.continuous_estimates["inferred_force"]
        emg = run.emg_activations
        assert force.unit == "N" and list(force.channel_names[:]) == ["force"] and force.modality == "force"
        assert force.data.shape == (emg.data.shape[0], 1) and emg.data.shape[1] == 3  # one model, one time axis
        est, lo, hi = force.data[:, 0], force.lower[:, 0], force.upper[:, 0]
        assert np.all(np.isfinite(est)) and np.all(lo <= est) and np.all(est <= hi)
        source = nwb.processing["behavior"]["force"]
        true = source.data[:].ravel()
        assert force.offsets[0] == pytest.approx(true.mean(), rel=0.05)  # z-scored with the force's own level
        assert force.scales[0] == pytest.approx(true.std(), rel=0.2)
        # in newtons: the estimate lies in the force's range (a smoke model: not expected to be accurate)
        assert true.min() - true.std() < np.median(est) < true.max() + true.std()
    assert pynwb.validate(path=str(out)) == []

    ds = nwb_autolfads.load_results(out)
    assert ds.inferred_force.attrs["units"] == "N" and list(ds.inferred_force_channel.values) == ["force"]
    assert ds.inferred_force.shape == ds.emg_activations.shape[:1] + (1,)
    assert "inferred_force_lower" in ds and "inferred_force_offsets" in ds
    # the error levels of the band's calibration are in newtons too: within the estimate's range
    levels = json.loads(ds.attrs["metrics"])["interval_calibration"]["force"]["force"]["levels"]
    est = ds.inferred_force.values[:, 0]
    tol = 1e-3 * np.abs(est).max()  # the record keeps 4 significant digits
    assert est.min() - tol <= min(levels) and max(levels) <= est.max() + tol
    assert [r.modalities for r in nwb_autolfads.list_runs(out)] == ["emg+force"]
    # pynapple gets the force too, named, with its bounds and the offsets / scales as metadata
    tsd = nwb_autolfads.to_pynapple(out)
    assert list(tsd["inferred_force"].columns) == ["force"]
    np.testing.assert_array_equal(tsd["inferred_force"].values, ds.inferred_force.values)
    np.testing.assert_array_equal(tsd["inferred_force"].t, ds.time.values)
    assert "inferred_force_lower" in tsd and "inferred_force_upper" in tsd


def test_force_estimate_is_the_model_output_in_source_units(force_file):
    """The API result: the force the model saw is the file's force at the bin centres, z-scored with
    the offsets / scales written, and the times are the EMG bins it covers."""
    res = nwb_autolfads.run(force_file, preset="smoke", write=False, progress=False,
                            overrides={"data.modalities": ["emg", "force"], "pbt.population": 1})
    e = res.estimates["force"]
    assert e.name == "inferred_force" and e.data.shape == (res.times.size, 1)
    from nwb_autolfads.io.reading import open_nwb

    with open_nwb(force_file) as (_io, nwbfile):
        (sig,) = read_behavior(nwbfile, "force", "processing/behavior/force")
    binned = to_bins(sig, res.times, 0.01)
    assert np.all(np.isfinite(binned))  # every modelled bin is inside the force series
    assert e.offsets[0] == pytest.approx(binned.mean(), rel=1e-6)
    assert e.scales[0] == pytest.approx(binned.std(), rel=1e-6)
    assert res.activations.shape == (res.times.size, 3) and res.rates.shape == (res.times.size, 0)
