"""The spike generators of nwb_autolfads.simulate.spikes: shapes, determinism, truth, NWB round trip."""

from __future__ import annotations

import numpy as np
import pytest

from nwb_autolfads.simulate.spikes import SpikeSetting, simulate_spikes, write_spikes_nwb

SMALL = dict(n_units=20, n_trials=12, n_conditions=6, trial_duration=0.5, inter_trial=0.1)


@pytest.mark.parametrize("dynamics,rates", [("chaotic_rnn", (0.0, 30.0)), ("lorenz", (5.0, 40.0)),
                                            ("rotational", (1.0, 8.0))])
def test_shapes_rates_and_trials(dynamics, rates):
    s = SpikeSetting(name=dynamics, dynamics=dynamics, base_rate=rates[0], max_rate=rates[1], **SMALL)
    sim = simulate_spikes(s)
    n_truth = int(round(s.duration / s.truth_bin))
    assert s.duration == pytest.approx(12 * 0.6 - 0.1)
    assert sim.rates.shape == (n_truth, 20) and sim.times.shape == (n_truth,)
    assert sim.latent.shape[0] == n_truth
    assert np.all(sim.rates >= rates[0] - 1e-4) and np.all(sim.rates <= rates[1] + 1e-4)
    assert sim.rates.std(axis=0).min() > 0.05 * (rates[1] - rates[0]) / 10  # every unit is modulated
    np.testing.assert_allclose(sim.trial_start, np.arange(12) * 0.6)
    np.testing.assert_allclose(sim.trial_stop - sim.trial_start, 0.5)
    np.testing.assert_array_equal(sim.condition, np.arange(12) % 6)
    assert len(sim.spike_times) == 20
    for t in sim.spike_times:
        assert np.all(np.diff(t) >= 0) and (t.size == 0 or (t[0] >= 0 and t[-1] <= s.duration))
    # trials of the same condition share their rates (the latent restarts from the condition's state)
    per_trial = int(round(0.6 / s.truth_bin))
    first, again = sim.rates[:int(0.5 / s.truth_bin)], sim.rates[6 * per_trial:6 * per_trial + int(0.5 / s.truth_bin)]
    np.testing.assert_allclose(first, again, rtol=1e-5)


def test_spike_counts_match_the_rates_on_average():
    s = SpikeSetting(dynamics="lorenz", base_rate=5.0, max_rate=40.0, n_units=20, n_trials=40, n_conditions=10,
                     trial_duration=1.0, seed=3)
    sim = simulate_spikes(s)
    expected = sim.rates.sum(axis=0) * s.truth_bin  # spikes per unit
    counts = np.array([t.size for t in sim.spike_times])
    z = (counts - expected) / np.sqrt(expected)
    assert np.abs(z).max() < 5 and abs(z.mean()) < 1.5
    # and bin by bin: where the rate is low, few spikes; where high, many (each quartile of the
    # expected count, over all bins and units, holds the expected number of spikes within 10%)
    edges = np.arange(sim.times.size + 1) * s.truth_bin
    binned = np.stack([np.histogram(t, edges)[0] for t in sim.spike_times], axis=1).ravel()
    mu = (sim.rates * s.truth_bin).ravel()
    quartile = np.searchsorted(np.quantile(mu, [0.25, 0.5, 0.75]), mu)
    for q in range(4):
        assert binned[quartile == q].mean() == pytest.approx(mu[quartile == q].mean(), rel=0.1)


def test_deterministic_in_the_seed():
    s = SpikeSetting(**SMALL)
    a, b = simulate_spikes(s), simulate_spikes(s)
    np.testing.assert_array_equal(a.rates, b.rates)
    assert all(np.array_equal(x, y) for x, y in zip(a.spike_times, b.spike_times))
    c = simulate_spikes(SpikeSetting(**{**SMALL, "seed": 1}))
    assert not np.allclose(a.rates, c.rates)


def test_chaotic_rnn_keeps_moving_in_continuous_mode():
    """A finite data RNN often settles into a fixed point: the generator redraws it until it does not."""
    for seed in range(3):
        s = SpikeSetting(trials=False, n_trials=5, seed=seed)
        sim = simulate_spikes(s)
        last = sim.rates[-int(1.0 / s.truth_bin):]
        assert last.std(axis=0).mean() > 1.0, seed  # Hz of modulation in the last second of 5
        assert sim.trial_start.size == 0


def test_rejects_bad_settings():
    with pytest.raises(ValueError, match="dynamics"):
        SpikeSetting(dynamics="van_der_pol")
    with pytest.raises(ValueError, match="base_rate"):
        SpikeSetting(dynamics="lorenz", base_rate=0.0)
    with pytest.raises(ValueError, match="truth_bin"):
        SpikeSetting(truth_bin=0.0025, step=0.001)


def test_nwb_round_trip(tmp_path):
    from pynwb import NWBHDF5IO

    from nwb_autolfads.testing import read_truth

    s = SpikeSetting(dynamics="rotational", base_rate=2.0, max_rate=20.0, **SMALL)
    path = write_spikes_nwb(tmp_path / "rot.nwb", s)
    sim = simulate_spikes(s)
    with NWBHDF5IO(str(path), "r") as io:
        nwb = io.read()
        assert len(nwb.units) == 20
        np.testing.assert_allclose(nwb.units.get_unit_spike_times(3), sim.spike_times[3])
        np.testing.assert_allclose(nwb.trials["start_time"][:], sim.trial_start)
        np.testing.assert_array_equal(nwb.trials["condition"][:], sim.condition)
        assert nwb.processing["ground_truth"]["latent"].data.shape == sim.latent.shape
    times = np.arange(0.005, 1.0, 0.01)  # 10 ms bins
    truth = read_truth(path, times, 0.01, name="true_rates")
    np.testing.assert_allclose(truth, sim.rates[:200].reshape(100, 2, 20).mean(axis=1), rtol=1e-5)


@pytest.mark.parametrize("bad", [{"step": 0.0}, {"max_rate": float("inf")}, {"gamma": float("nan")}])
def test_a_spike_setting_with_a_zero_step_or_a_non_finite_number_is_refused_by_name(bad):
    with pytest.raises(ValueError, match=f"{next(iter(bad))} = "):
        SpikeSetting(**bad)
