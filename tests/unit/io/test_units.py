import numpy as np
import pytest

from nwb_autolfads.errors import SignalError, SignalNotFoundError
from nwb_autolfads.io.reading import open_nwb
from nwb_autolfads.testing import synthetic_emg, write_emg_nwb


@pytest.fixture(scope="module")
def synth():
    return synthetic_emg(duration=2.0, rate=1000.0, n_muscles=4, seed=0)


def test_read_units_and_bin_spikes(tmp_path, synth):
    from nwb_autolfads.io.units import bin_spikes, read_units

    path = write_emg_nwb(tmp_path / "f.nwb", synth, n_units=5)
    with open_nwb(path) as (_io, nwb):
        units = read_units(nwb)
        assert units.ids == [0, 1, 2, 3, 4] and units.n_units == 5
        good = read_units(nwb, "quality == 'good'")
        assert good.ids == [0, 1, 3, 4]
        raw = [np.asarray(nwb.units["spike_times"][i]) for i in range(5)]
    centres = 0.05 + 0.1 * np.arange(20)
    counts = bin_spikes(units, centres, 0.1)
    assert counts.shape == (20, 5) and counts.dtype == np.float32
    for k in range(5):
        assert counts[:, k].sum() == np.sum((raw[k] >= 0.0) & (raw[k] < 2.0))
    t0, t1 = units.span()
    assert 0.0 <= t0 < t1 < 2.0


def test_read_units_without_a_units_table(tmp_path, synth):
    from nwb_autolfads.io.units import read_units

    path = write_emg_nwb(tmp_path / "f.nwb", synth)
    with open_nwb(path) as (_io, nwb):
        with pytest.raises(SignalNotFoundError, match="no spikes"):
            read_units(nwb)


@pytest.fixture(scope="module")
def spikes_synth():
    return synthetic_emg(duration=3.0, rate=1000.0, n_muscles=2, seed=0)


@pytest.mark.parametrize("fault, said", [("restart", r"not ascending at index \d+: time drops from [\d.]+ s to 0.001 s"),
                                         ("nan", r"\d+ NaN/inf spike time"), ("inf", r"\d+ NaN/inf spike time"),
                                         ("negative", r"\d+ negative spike time")])
def test_impossible_spike_times_are_refused_naming_the_unit_never_sorted(tmp_path, spikes_synth, fault, said):
    from nwb_autolfads.io.units import read_units

    path = write_emg_nwb(tmp_path / "f.nwb", spikes_synth, n_units=4, unit_faults={2: fault}, include_truth=False)
    with open_nwb(path) as (_io, nwb):
        with pytest.raises(SignalError, match=rf"1 of 4 selected units .*unit id 2 \(row 2\): {said}.*--bad-units "
                                              "exclude"):
            read_units(nwb)
        kept = read_units(nwb, bad_units="exclude")
        assert kept.ids == [0, 1, 3] and kept.rows == [0, 1, 3]
        raw = [np.asarray(nwb.units["spike_times"][r]) for r in (0, 1, 3)]
    for stored, read in zip(raw, kept.spike_times):
        np.testing.assert_array_equal(stored, read)
    path = write_emg_nwb(tmp_path / "all.nwb", spikes_synth, n_units=2, unit_faults={0: fault, 1: fault},
                         include_truth=False)
    with open_nwb(path) as (_io, nwb):
        with pytest.raises(SignalError, match="leaves no unit"):
            read_units(nwb, bad_units="exclude")


def test_equal_spike_times_are_fine():
    from nwb_autolfads.io.units import spike_time_problems

    assert spike_time_problems(np.array([0.1, 0.2, 0.2, 0.3])) == []
    assert spike_time_problems(np.array([0.1, np.nan, 0.3, 0.2])) == [
        "1 NaN/inf spike time(s) (first at index 1)", "not ascending at index 3: time drops from 0.3 s to 0.2 s"]


@pytest.mark.parametrize("fault", ["late", "ms"])
def test_a_unit_on_another_clock_is_refused(tmp_path, spikes_synth, fault, caplog):
    from nwb_autolfads.io.units import check_spike_span, check_unit_clocks, read_units

    path = write_emg_nwb(tmp_path / "f.nwb", spikes_synth, n_units=4, unit_faults={1: fault}, include_truth=False)
    with open_nwb(path) as (_io, nwb):
        units = read_units(nwb)
    with pytest.raises(SignalError, match=r"unit id 1 \(row 1\): \d+ of \d+ spikes .*outside the .* other units"):
        check_unit_clocks(units)  # spikes alone
    with pytest.raises(SignalError, match=r"outside the EMG's time \(acquisition/EMG\) \(0-3 s\): unit id 1"):
        check_spike_span(units, [(0.0, 3.0)], "the EMG's time (acquisition/EMG)")  # EMG and spikes
    assert check_unit_clocks(units, "exclude").ids == [0, 2, 3]
    assert "unit id 1" in caplog.text and "left out" in caplog.text


def test_spikes_partly_outside_the_modelled_time_are_counted_in_a_warning(tmp_path, spikes_synth, caplog):
    from nwb_autolfads.io.units import check_spike_span, read_units

    path = write_emg_nwb(tmp_path / "f.nwb", spikes_synth, n_units=3, include_truth=False)
    with open_nwb(path) as (_io, nwb):
        units = read_units(nwb)
    total = sum(t.size for t in units.spike_times)
    outside = sum(int(np.sum(t > 2.9005)) for t in units.spike_times)
    kept = check_spike_span(units, [(0.0, 1.5), (1.5, 2.9005)], "the EMG's time")
    assert kept.ids == [0, 1, 2]
    assert f"{outside} of {total} spikes" in caplog.text and "in 2 segments" in caplog.text


def test_emg_covering_part_of_the_session_is_not_taken_for_another_clock(tmp_path, spikes_synth, caplog):
    """The EMG spans the first third of the units' recording: most spikes lie outside it, at the
    same rate as inside - counted in a warning, not refused (a unit on another clock has next
    to none inside)."""
    from nwb_autolfads.io.units import check_spike_span, SpikeUnits

    rng = np.random.default_rng(0)
    spikes = [np.sort(rng.uniform(0.0, 30.0, rng.poisson(20 * 30))) for _ in range(3)]  # 20 Hz for 30 s
    units = SpikeUnits(spike_times=spikes, ids=[0, 1, 2])
    kept = check_spike_span(units, [(0.0, 10.0)], "the EMG's time")  # EMG for the first 10 s only
    assert kept.ids == [0, 1, 2] and "lie outside the EMG's time" in caplog.text
    units.spike_times[1] = units.spike_times[1] + 1.0e4  # one unit on another clock: none inside
    with pytest.raises(SignalError, match=r"unit id 1:.*another clock"):
        check_spike_span(units, [(0.0, 10.0)], "the EMG's time")
    units.spike_times[1] = spikes[1] * 1000.0  # one unit in milliseconds: a few spikes inside, far too sparse
    with pytest.raises(SignalError, match=r"unit id 1:.*milliseconds"):
        check_spike_span(units, [(0.0, 10.0)], "the EMG's time")


def test_spike_times_not_in_seconds_give_an_absurd_grid_and_are_refused(tmp_path, spikes_synth, caplog):
    from nwb_autolfads.io.units import MAX_SPIKE_BINS, read_units, spike_bin_centres

    path = write_emg_nwb(tmp_path / "us.nwb", spikes_synth, n_units=3, unit_faults={k: "us" for k in range(3)},
                         include_truth=False)
    with open_nwb(path) as (_io, nwb):
        units = read_units(nwb)  # consistent among themselves: only the grid tells
    with pytest.raises(SignalError, match=r"bins of 10 ms, more than the 20,000,000 .*microseconds"):
        spike_bin_centres(units, 0.01)
    assert MAX_SPIKE_BINS == 20_000_000
    path = write_emg_nwb(tmp_path / "ms.nwb", spikes_synth, n_units=3, unit_faults={k: "ms" for k in range(3)},
                         include_truth=False)
    with open_nwb(path) as (_io, nwb):
        units = read_units(nwb)
    # a short session in ms: a plausible number of bins, but implausible rates (a known-wrong model otherwise)
    with pytest.raises(SignalError, match=r"median firing rate .* Hz .*milliseconds .*--units"):
        spike_bin_centres(units, 0.01)
    units.spike_times = [t / 1000.0 for t in units.spike_times]  # the same spikes in seconds are fine
    assert 250 < spike_bin_centres(units, 0.01).size <= 301  # the 3 s session, from first to last spike


def _dense_counts(spike_times, centres, bin_size):
    """Reference: every spike compared with every bin (small data only)."""
    lo, hi = centres - bin_size / 2, centres + bin_size / 2
    return np.stack([((t[None, :] >= lo[:, None]) & (t[None, :] < hi[:, None])).sum(1) for t in spike_times], axis=1)


def test_bin_spikes_equals_a_dense_reference_on_contiguous_gapped_and_irregular_bins():
    from nwb_autolfads.io.units import bin_spikes, SpikeUnits

    rng = np.random.default_rng(3)
    times = [np.sort(rng.uniform(0.0, 3.0, n)) for n in (0, 1, 50, 400)]
    times[2] = np.sort(np.r_[times[2], 0.3, 0.3])  # on a bin edge (0.295 + 0.005): counted in the bin it starts
    units = SpikeUnits(spike_times=times, ids=[0, 1, 2, 3])
    contiguous = 0.005 + 0.01 * np.arange(300)
    gapped = np.r_[contiguous[:100], contiguous[180:]]  # two segments' bins
    irregular = np.cumsum(rng.uniform(0.009, 0.011, 250))  # per-sample bins at jittered timestamps
    for centres in (contiguous, gapped, irregular):
        counts = bin_spikes(units, centres, 0.01)
        assert counts.dtype == np.float32 and counts.shape == (centres.size, 4)
        np.testing.assert_array_equal(counts, _dense_counts(times, centres, 0.01))
    total = bin_spikes(units, contiguous, 0.01).sum(0)
    np.testing.assert_array_equal(total, [t.size for t in times])  # every spike in exactly one bin


def test_bin_spikes_is_fast_for_100_units_over_20_minutes():
    import time

    from nwb_autolfads.io.units import bin_spikes, SpikeUnits

    rng = np.random.default_rng(0)
    times = [np.sort(rng.uniform(0.0, 1200.0, rng.poisson(12000))) for _ in range(100)]
    centres = 0.005 + 0.01 * np.arange(120_000)
    t0 = time.perf_counter()
    counts = bin_spikes(SpikeUnits(spike_times=times, ids=list(range(100))), centres, 0.01)
    assert time.perf_counter() - t0 < 10.0  # ~1 s on a loaded 2-core machine
    np.testing.assert_array_equal(counts.sum(0), [t.size for t in times])
    k = 7  # one unit against np.histogram on the same (contiguous) edges
    np.testing.assert_array_equal(counts[:, k], np.histogram(times[k], np.r_[centres - 0.005, 1200.0])[0])
