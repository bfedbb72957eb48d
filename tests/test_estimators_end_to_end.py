"""The model and a baseline side by side in a notebook: AutoLFADS(preset="smoke") and LowPass, each
fitted and transformed on a mock EMG file, give datasets on the same time and channel coordinates
(no shifting), the low-pass values are the low-pass of the run's own rectified EMG, and a file
missing a channel is refused by both."""

import numpy as np
import pytest
import torch
import xarray as xr

import nwb_autolfads
from nwb_autolfads.errors import SignalError
from nwb_autolfads.evaluation import baselines as bl
from nwb_autolfads.testing import mock_emg_nwb, read_truth

SETTINGS = {"train.threads": 1, "pbt.workers": 1}


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("estimators")
    path = mock_emg_nwb(tmp / "a.nwb", duration=6.0, rate=1000.0, n_muscles=3, seed=3)
    model = nwb_autolfads.AutoLFADS(preset="smoke", seed=5, overrides=SETTINGS, progress=False).fit(path)
    return tmp, path, model


def test_model_and_lowpass_line_up_without_shifting(fitted):
    tmp, path, model = fitted
    ds_model = model.transform(path)
    lowpass = nwb_autolfads.LowPass(cutoff=6.0).fit(path)
    ds_lp = lowpass.transform(path)
    for coord in ("time", "channel"):
        assert np.array_equal(ds_model[coord].values, ds_lp[coord].values), coord
        assert ds_model[coord].attrs == ds_lp[coord].attrs
    assert ds_model.emg_activations.dims == ds_lp.emg_activations.dims
    assert ds_model.emg_activations.attrs["units"] == ds_lp.emg_activations.attrs["units"]
    assert ds_model.attrs["bin_size"] == ds_lp.attrs["bin_size"]
    # the low-pass of the run's own rectified EMG (what evaluate filters; the run keeps it as float32)
    want = bl.lowpass(model.result_.rectified.astype(float), 1 / ds_lp.attrs["bin_size"], 6.0)
    np.testing.assert_allclose(ds_lp.emg_activations.values, want, rtol=1e-5, atol=1e-6 * np.abs(want).max())
    # xarray aligns them as they are: nothing dropped, nothing shifted
    diff = ds_model.emg_activations - ds_lp.emg_activations
    assert diff.sizes == ds_lp.emg_activations.sizes and np.isfinite(diff.values).all()
    # a notebook's comparison: R^2 per channel against the truth, on the shared bins
    truth = xr.DataArray(read_truth(path, ds_lp.time.values, ds_lp.attrs["bin_size"]), dims=("time", "channel"),
                         coords={"time": ds_lp.time, "channel": ds_lp.channel})
    r2 = xr.corr(ds_lp.emg_activations, truth, dim="time") ** 2
    assert r2.sizes == {"channel": 3} and float(r2.min()) > 0.5
    # read with the model's own configuration: the same bins and values
    by_model = nwb_autolfads.LowPass(cutoff=6.0, config=model).fit(path).transform(path)
    xr.testing.assert_identical(by_model.emg_activations, ds_lp.emg_activations)


def test_a_file_missing_a_channel_is_refused_by_model_and_baseline(fitted):
    tmp, path, model = fitted
    fewer = mock_emg_nwb(tmp / "fewer.nwb", duration=6.0, rate=1000.0, n_muscles=2, seed=3)
    lowpass = nwb_autolfads.LowPass(cutoff=6.0).fit(path)
    for est in (model, lowpass):
        with pytest.raises(SignalError, match="lacks .*channel\\(s\\) LG") as err:
            est.transform(fewer)
        assert "\n" not in str(err.value)
