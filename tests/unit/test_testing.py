import numpy as np

from nwb_autolfads.testing import lorenz_latent, read_truth, synthetic_emg


def test_lorenz_latent_is_standardised():
    z = lorenz_latent(2000, np.random.default_rng(0))
    assert z.shape == (2000, 3)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-9)
    np.testing.assert_allclose(z.std(0), 1, atol=1e-9)


def test_synthetic_emg_properties():
    s = synthetic_emg(duration=3.0, rate=2000.0, n_muscles=5, seed=0)
    assert s.raw.shape == s.activations.shape == (6000, 5)
    assert np.all(s.activations >= 0)
    assert s.raw.min() < 0 < s.raw.max()  # raw EMG has both signs
    assert s.names == ["TA", "MG", "LG", "Sol", "VL"]
    again = synthetic_emg(duration=3.0, rate=2000.0, n_muscles=5, seed=0)
    np.testing.assert_array_equal(s.raw, again.raw)
    with_art = synthetic_emg(duration=3.0, rate=2000.0, n_muscles=5, seed=0, artefacts=5.0)
    assert np.abs(with_art.raw).max() > 1.5 * np.abs(s.raw).max()


def test_read_truth_bins_the_stored_activations(emg_file):
    times = 0.005 + np.arange(100) * 0.01
    truth = read_truth(emg_file, times, 0.01)
    s = synthetic_emg(duration=20.0, rate=2000.0, n_muscles=6, seed=1)
    np.testing.assert_allclose(truth[0], s.activations[:20].mean(0), rtol=1e-5)
    assert truth.shape == (100, 6)


def test_gamma_windows():
    import torch

    from nwb_autolfads.testing import gamma_windows

    torch.manual_seed(0)
    x = gamma_windows(n=200, T=30, C=3, seed=1)
    assert x.shape == (200, 30, 3) and x.dtype == torch.float32 and bool((x > 0).all())
    assert abs(float(x.mean()) - 1.0) < 0.05  # the mean oscillates around 1
    torch.manual_seed(0)
    assert torch.equal(x, gamma_windows(n=200, T=30, C=3, seed=1))
    assert not torch.equal(x, gamma_windows(n=200, T=30, C=3, seed=2))


def test_synthetic_emg_hum_options():
    quiet = synthetic_emg(duration=2.0, rate=2000.0, n_muscles=3, seed=0, line_noise=0.0)
    hum = synthetic_emg(duration=2.0, rate=2000.0, n_muscles=3, seed=0, line_noise=2.0, line_frequency=50.0,
                        line_harmonics=(0.0, 1.0), line_channels=(1,))
    added = (hum.raw - quiet.raw) / 1e-4  # noise_scale
    np.testing.assert_allclose(added[:, [0, 2]], 0.0, atol=1e-9)  # only the channels asked for
    spec = np.abs(np.fft.rfft(added[:, 1])) / (added.shape[0] / 2)  # amplitude per 0.5 Hz bin
    np.testing.assert_allclose(spec[[100, 200, 300]], [2.0, 0.0, 1.0], atol=1e-6)  # 50 Hz and its 3rd harmonic


def test_chunked_emg_nwb_is_one_recording_whatever_the_blocks(tmp_path):
    from pynwb import NWBHDF5IO

    from nwb_autolfads.testing import chunked_emg_nwb

    a = chunked_emg_nwb(tmp_path / "a.nwb", duration=4.0, n_muscles=3, seed=2, block_seconds=1.3)
    b = chunked_emg_nwb(tmp_path / "b.nwb", duration=4.0, n_muscles=3, seed=2, block_seconds=4.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.nwb", "b.nwb"]  # no partial file left
    with NWBHDF5IO(str(a), "r") as io_a, NWBHDF5IO(str(b), "r") as io_b:
        ea, eb = io_a.read().acquisition["EMG"], io_b.read().acquisition["EMG"]
        assert ea.data.dtype == np.int16 and ea.data.shape == (8000, 3) and ea.rate == 2000.0
        np.testing.assert_array_equal(ea.data[:], eb.data[:])
        volts = ea.data[:] * ea.conversion
    times = 0.05 + np.arange(40) * 0.1
    truth = read_truth(a, times, 0.1)
    np.testing.assert_array_equal(truth, read_truth(b, times, 0.1))
    assert truth.shape == (40, 3) and np.all(truth > 0)
    # the EMG's envelope follows the true activation (100 ms bins of rectified EMG, hum and offset removed)
    from scipy import signal as sps

    hp = sps.sosfiltfilt(sps.butter(4, 20.0, "highpass", fs=2000.0, output="sos"), volts, axis=0)
    envelope = np.abs(hp).reshape(40, 200, 3).mean(axis=1)
    r = [np.corrcoef(envelope[:, k], truth[:, k])[0, 1] for k in range(3)]
    assert min(r) > 0.8, r


def test_chunked_spikes_nwb_spikes_follow_the_true_rates(tmp_path):
    from pynwb import NWBHDF5IO

    from nwb_autolfads.testing import chunked_spikes_nwb

    for latent in ("lorenz", "rotational"):
        path = chunked_spikes_nwb(tmp_path / f"{latent}.nwb", duration=60.0, n_units=6, seed=3, latent=latent,
                                  block_seconds=7.0)
        with NWBHDF5IO(str(path), "r") as io:
            units = io.read().units
            spikes = [np.asarray(units["spike_times"][u]) for u in range(len(units))]
        assert len(spikes) == 6
        assert all(np.all(np.diff(s) > 0) and s[0] >= 0 and s[-1] < 60.0 for s in spikes)
        times = 0.5 + np.arange(60.0)
        rates = read_truth(path, times, 1.0, name="true_rates")  # Hz, mean over each second
        counts = np.stack([np.histogram(s, bins=np.arange(61.0))[0] for s in spikes], axis=1)
        assert abs(counts.sum() / rates.sum() - 1) < 0.05  # as many spikes as the rates promise
        assert np.corrcoef(counts.ravel(), rates.ravel())[0, 1] > 0.7  # and when they promise them


def test_mock_gap_is_on_the_file_clock_and_never_silently_empty(tmp_path):
    """A gap is given in the file's times (start_time included): there it removes its samples;
    one outside the recording (e.g. given before adding start_time) is refused, not ignored."""
    import pytest
    from pynwb import NWBHDF5IO

    from nwb_autolfads.testing import mock_emg_nwb

    path = mock_emg_nwb(tmp_path / "gap.nwb", duration=2.0, rate=1000.0, n_muscles=2, start_time=100.0,
                        gap=(100.5, 100.8))
    with NWBHDF5IO(str(path), "r") as io:
        t = io.read().acquisition["EMG"].timestamps[:]
    assert t[0] == pytest.approx(100.0) and not np.any((t >= 100.5) & (t < 100.8))
    assert np.max(np.diff(t)) == pytest.approx(0.301, abs=2e-3)
    with pytest.raises(ValueError, match="removes no sample"):
        mock_emg_nwb(tmp_path / "nogap.nwb", duration=2.0, rate=1000.0, n_muscles=2, start_time=100.0,
                     gap=(0.5, 0.8))
