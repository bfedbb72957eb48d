"""Issue 15: the quick preset learns the chaotic RNN of the LFADS paper (a short run on a small
set already beats the best Gaussian smoothing of the counts and moves the validation NLL)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from nwb_autolfads.evaluation.metrics import r2_of
from nwb_autolfads.pipeline import run
from nwb_autolfads.simulate.spikes import SpikeSetting, simulate_spikes, write_spikes_nwb
from nwb_autolfads.testing import read_truth


@pytest.mark.slow
def test_quick_preset_learns_a_chaotic_rnn(tmp_path):
    setting = SpikeSetting(name="rnn-small", n_units=50, n_trials=160, n_conditions=80, seed=0)
    path = write_spikes_nwb(tmp_path / "rnn.nwb", setting)
    res = run(path, preset="quick", overrides={"data.model": "spikes", "train.max_steps": 400,
                                               "train.min_steps": 400}, write=False, progress=False)
    nll = [h["valid_nll"] for h in res.training.history]
    assert min(nll) < 0.99 * nll[0]  # it moved (the report: 0.2767 -> 0.2766)
    bin_size = res.config.windows.bin_size
    ok = np.isfinite(res.rates).all(axis=1)
    times, rates = res.times[ok], res.rates[ok]
    truth = read_truth(path, times, bin_size, name="true_rates")
    sim = simulate_spikes(setting)
    edges = np.append(times - bin_size / 2, times[-1] + bin_size / 2)
    counts = np.stack([np.histogram(t, edges)[0] for t in sim.spike_times], axis=1).astype(float)
    smoothing = max(np.mean(r2_of(gaussian_filter1d(counts, s, axis=0) / bin_size, truth))
                    for s in (2, 4, 8, 16, 32, 64))
    model = np.mean(r2_of(rates, truth))
    assert model > max(smoothing, 0.0) + 0.2, (model, smoothing)
