"""nwb_autolfads.simulate.sessions: several sessions of one subject that share their latent
dynamics but differ in muscles, gains and noise, and their DANDI-named NWB files."""

import numpy as np
import pytest
from scipy import signal as sps

from nwb_autolfads.evaluation.metrics import channel_correlation
from nwb_autolfads.simulate import SessionsSetting, simulate_sessions, write_sessions_nwb
from nwb_autolfads.simulate.sessions import CORE_MUSCLES, MUSCLE_POOL, session_files
from nwb_autolfads.testing import read_truth

SMALL = dict(rate=1000.0, duration=10.0, n_sessions=3, muscles=(4, 12), seed=2)


@pytest.fixture(scope="module")
def chaotic():
    return simulate_sessions(SessionsSetting(**SMALL))


def test_shapes_counts_names_and_non_negative_truth(chaotic):
    x = chaotic
    counts = [len(s.names) for s in x.sessions]
    assert len(set(counts)) == 3 and all(4 <= c <= 12 for c in counts)  # own channel count per session
    for s, mixing, gains in zip(x.sessions, x.mixing, x.gains):
        M = len(s.names)
        assert s.raw.shape == s.activations.shape == (10000, M) and s.times.shape == (10000,)
        assert s.latent.shape == (10000, 4) and s.kinematics.shape == (10000, 3) and s.rate == 1000.0
        assert s.times[0] == 0.0 and s.segments == [(0.0, pytest.approx(10.0))]
        assert np.all(s.activations >= 0) and np.all(mixing >= 0) and mixing.shape == (4, M)
        np.testing.assert_allclose(mixing.sum(0), 1.0)
        assert s.names[:CORE_MUSCLES] == list(MUSCLE_POOL[:CORE_MUSCLES]) and len(set(s.names)) == M
        assert 1.0 <= gains.min() and gains.max() <= 10.0
    names = [set(s.names) for s in x.sessions]
    assert set.intersection(*names) and len(set.union(*names)) > max(counts)  # some names shared, some not
    spread = np.concatenate(x.gains)
    assert spread.max() / spread.min() > 4  # gains spread over most of the 10x range


def test_every_session_is_its_own_stretch_of_the_one_shared_latent(chaotic):
    x = chaotic
    for s, mixing, gains in zip(x.sessions, x.mixing, x.gains):
        # the truth is the session's mixing and gains of the shared synergies, nothing else
        np.testing.assert_allclose(s.activations, (s.latent @ mixing) * gains, rtol=1e-5, atol=1e-6)
    a, b = x.sessions[0].latent, x.sessions[1].latent
    assert not np.allclose(a, b)  # different stretches (own state)
    assert x.starts == [0.0, 40.0, 80.0]


@pytest.mark.parametrize("rhythm_hz", [1.5, 0.8])
def test_sessions_share_the_dynamics_frequency_content(rhythm_hz):
    x = simulate_sessions(SessionsSetting(dynamics="rhythmic", rhythm_hz=rhythm_hz, **SMALL))
    peaks = []
    for s in x.sessions:
        lat = s.latent[::10]  # 100 Hz
        f, p = sps.welch(lat - lat.mean(0), fs=100.0, nperseg=512, axis=0)
        peaks.append(f[np.argmax(p.sum(1))])
    assert max(peaks) - min(peaks) < 0.3, peaks  # the same rhythm in every session
    assert all(min(abs(pk - rhythm_hz), abs(pk - 2 * rhythm_hz)) < 0.3 for pk in peaks), peaks  # its own, not another


def test_deterministic_by_seed_and_same_muscle_same_mixing(chaotic):
    again = simulate_sessions(SessionsSetting(**SMALL))
    for a, b in zip(chaotic.sessions, again.sessions):
        np.testing.assert_array_equal(a.raw, b.raw)
        assert a.names == b.names
    other = simulate_sessions(SessionsSetting(**{**SMALL, "seed": 3}))
    assert not np.allclose(chaotic.sessions[0].activations[:, 0], other.sessions[0].activations[:, 0])
    first, second = chaotic.sessions[0], chaotic.sessions[1]
    for name in set(first.names) & set(second.names):
        np.testing.assert_array_equal(chaotic.mixing[0][:, first.names.index(name)],
                                      chaotic.mixing[1][:, second.names.index(name)])
    own = simulate_sessions(SessionsSetting(**SMALL, same_muscles=False))
    assert not np.allclose(own.mixing[0][:, 0], own.mixing[1][:, 0])  # TA mixes differently per session


def test_raw_emg_carries_each_sessions_truth(chaotic):
    for s in chaotic.sessions:
        x = np.abs(sps.sosfiltfilt(sps.butter(4, 30.0, "high", fs=s.rate, output="sos"), s.raw.astype(float), axis=0))
        rect = x.reshape(-1, 20, x.shape[1]).mean(1)  # 20 ms bins
        truth = s.activations.reshape(-1, 20, x.shape[1]).mean(1)
        assert np.median(channel_correlation(rect, truth)) > 0.5


def test_files_are_dandi_named_one_subject_and_readable(tmp_path, chaotic):
    from nwb_autolfads.io.inspection import inspect_file
    from nwb_autolfads.io.reading import open_nwb
    from nwb_autolfads.io.series import read_emg

    setting = chaotic.setting
    paths = write_sessions_nwb(tmp_path, setting, chaotic)
    assert paths == session_files(tmp_path, setting)
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == [
        f"sub-synth01/sub-synth01_ses-{k}_ecephys.nwb" for k in (1, 2, 3)]
    identifiers = set()
    for k, (path, s) in enumerate(zip(paths, chaotic.sessions)):
        report = inspect_file(path)
        assert report["default"]["emg"] == "acquisition/EMG"
        identifiers.add(report["identifier"])
        with open_nwb(path) as (_io, nwb):
            assert nwb.subject.subject_id == "synth01" and nwb.session_id == str(k + 1)
            signal = read_emg(nwb)
            assert signal.channel_names == s.names and signal.n_channels == len(s.names)
        times = np.arange(0.01, 9.99, 0.02)
        np.testing.assert_allclose(read_truth(path, times, 0.02), chaotic.truth_in_bins(k, times, 0.02), rtol=1e-6)
    assert len(identifiers) == 3


def test_setting_validation_names_the_parameter():
    for bad, word in ((dict(muscles=(2, 8)), "muscles"), (dict(gain_spread=0.5), "gain_spread"),
                      (dict(subject="rat_1"), "subject"), (dict(dynamics="nope"), "dynamics"),
                      (dict(rate=50.0), "rate")):
        with pytest.raises(ValueError, match=word):
            SessionsSetting(**bad)
    assert SessionsSetting(seed=4).name == "chaotic-4ses-6-16m-20s-seed4"
    assert SessionsSetting(seed=4).replace(n_sessions=2).name == "chaotic-2ses-6-16m-20s-seed4"
