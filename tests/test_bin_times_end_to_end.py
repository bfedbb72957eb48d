"""End to end: one envelope stored at different rates comes out at the same, true times
(docs/science.md, Bin times)."""

import numpy as np
import pytest

import nwb_autolfads
from nwb_autolfads.testing import bump_emg, bump_lags, write_emg_nwb


@pytest.mark.parametrize("case, rate, carrier_hz, overrides", [
    ("envelope at 100 Hz, each sample its own bin", 100.0, None, {}),
    ("envelope at 200 Hz re-binned to 10 ms", 200.0, None, {"windows.bin_size": 0.01}),
    ("raw EMG at 2 kHz", 2000.0, 2000 / 6, {}),
])
def test_the_same_envelope_at_any_rate_is_binned_at_its_true_times(case, rate, carrier_hz, overrides, tmp_path):
    """Bins that average samples were labelled half a sample period late (2.5 ms for the 200 Hz
    envelope, 0.5 ms for the 2 kHz EMG resampled to 1 kHz), bins of one sample at their timestamps:
    the three files' bumps disagreed by up to 2.5 ms. Now all are within 0.05 ms of the truth."""
    path = write_emg_nwb(tmp_path / f"bumps_{rate:g}Hz.nwb", bump_emg(rate, carrier_hz=carrier_hz))
    result = nwb_autolfads.run(path, preset="smoke", overrides=overrides, write=False, progress=False)
    assert result.config.windows.bin_size == pytest.approx(0.01)
    lags_ms = bump_lags(result.times, result.rectified) * 1e3
    assert np.all(np.abs(lags_ms) < 0.05), f"{case}: bumps {lags_ms} ms late"
