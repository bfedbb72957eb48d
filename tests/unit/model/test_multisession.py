"""LFADS over several sessions: per-session read-ins and read-outs, read-in initialisation (random; PCA on request), inference
of one session, and the saved model folder."""

import dataclasses

import numpy as np
import pytest
import torch

from nwb_autolfads.config import InferenceConfig, ModelConfig, build_config
from nwb_autolfads.data.windows import chop_segments
from nwb_autolfads.errors import ConfigError
from nwb_autolfads.model.artifact import check_meta, load_model, stage_model
from nwb_autolfads.model.inference import infer, infer_merged
from nwb_autolfads.model.lfads import LFADS
from nwb_autolfads.model.observations import Gamma
from nwb_autolfads.testing import gamma_session_windows, gamma_windows
from nwb_autolfads.train.training_data import TrainingData

CFG = ModelConfig(ic_enc_dim=8, ci_enc_dim=8, con_dim=8, co_dim=1, ic_dim=8, gen_dim=8, factor_dim=3)


def _data(counts=(3, 5), n=10):
    parts = gamma_session_windows(counts, n=n, T=12)
    return TrainingData.from_sessions([p[:7] for p in parts], [p[7:] for p in parts], Gamma(),
                                      [f"s{i}" for i in range(len(counts))])


def _model(data, cfg=CFG, seed=0):
    torch.manual_seed(seed)
    model = LFADS(data.n_channels, cfg, Gamma(), data.model_sessions)
    model.init_from_data(data)
    return model


def test_forward_shapes_and_the_session_parameters():
    data = _data()
    model = _model(data)
    assert model.session_channels == (3, 5) and model.n_channels == 5
    assert model.readin.shape == (2, 5, 4)  # R = median(3, 5) = 4
    assert model.readout_weight.shape == (2, 3, 10) and model.readout_bias.shape == (2, 10)  # F = 3, C * P = 5 * 2
    assert model.ic_encoder.input_size == 4 and model.ci_encoder.input_size == 4
    out = model(data.train, session=data.train_session)
    assert out.params.shape == (14, 12, 5, 2) and out.factors.shape == (14, 12, 3)
    out = model(data.train, session=data.train_session, n_samples=3)
    assert out.params.shape == (42, 12, 5, 2)
    assert LFADS(5, ModelConfig(**{**CFG.__dict__, "readin_dim": 2}), Gamma(), (3, 5)).readin.shape == (2, 5, 2)


def test_each_window_reads_its_own_session_maps():
    data = _data()
    model = _model(data).eval()
    x = data.train[:2]
    as0 = model(x, sample=False, session=torch.tensor([0, 0])).params
    with torch.no_grad():
        model.readout_weight[1].add_(1.0)  # session 1's read-out only
    assert torch.equal(model(x, sample=False, session=torch.tensor([0, 0])).params, as0)
    assert not torch.equal(model(x, sample=False, session=torch.tensor([1, 1])).params, as0)


def test_a_multi_session_model_requires_the_session():
    data = _data()
    model = _model(data)
    with pytest.raises(ValueError, match="pass session="):
        model(data.train)
    with pytest.raises(ValueError, match="outside 0..1"):
        model(data.train[:2], session=torch.tensor([0, 2]))
    with pytest.raises(ValueError, match="do not fit"):
        LFADS(6, CFG, Gamma(), (3, 5))


def test_readin_starts_random_by_default_and_the_bias_from_each_sessions_means():
    data = _data((2, 5))
    torch.manual_seed(1)
    model = LFADS(data.n_channels, CFG, Gamma(), data.session_channels)
    before = model.readin.detach().clone()
    model.init_from_data(data)
    assert torch.equal(model.readin.detach(), before) and (model.readin[0, 2:] == 0).all()
    for s, c in enumerate((2, 5)):
        x = data.train[data.train_session == s][..., :c].reshape(-1, c)
        assert torch.allclose(model.readout_bias[s, :2 * c].detach(), Gamma().init_bias(x.mean(0)).reshape(-1))


def test_readin_is_initialised_from_each_sessions_pca_with_readin_init_pca():
    data = _data((2, 5))  # R = 4: session 0 has fewer channels than R
    model = LFADS(data.n_channels, dataclasses.replace(CFG, readin_init="pca"), Gamma(), data.session_channels)
    model.init_from_data(data)
    for s, c in enumerate((2, 5)):
        x = data.train[data.train_session == s][..., :c].reshape(-1, c).double()
        _, _, vh = np.linalg.svd((x - x.mean(0)).numpy(), full_matrices=False)
        k = min(4, c)
        got = model.readin[s, :c, :k].detach().double().numpy()
        assert np.allclose(np.abs(got), np.abs(vh[:k].T), atol=1e-5)  # the top principal axes (up to sign)
        assert (model.readin[s, c:] == 0).all() and (model.readin[s, :, k:] == 0).all()
        bias = Gamma().init_bias(x.mean(0).float()).reshape(-1)
        assert torch.allclose(model.readout_bias[s, :2 * c].detach(), bias)
    assert (model.readout_weight[0, :, 4:] == 0).all()  # session 0's padded channels' read-out columns


def test_one_session_is_the_single_session_model_unchanged():
    x = gamma_windows(10, 12, 4)
    torch.manual_seed(3)
    plain = LFADS(4, CFG, Gamma())
    torch.manual_seed(3)
    one = LFADS(4, CFG, Gamma(), (4,))
    assert one.session_channels is None and plain.state_dict().keys() == one.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), one.state_dict().values()))
    one.init_from_data(TrainingData(x[:8], x[8:], Gamma()))
    plain.init_readout_bias(x[:8].mean((0, 1)))
    assert torch.equal(plain.readout.bias, one.readout.bias)
    with pytest.raises(ValueError, match="session 1 given for a single-session model"):
        infer(plain, x, InferenceConfig(), session=1)


def test_inference_of_one_session_returns_its_channels():
    data = _data()
    model = _model(data)
    sessions = gamma_session_windows((3, 5), n=1, T=60, seed=4)
    cfg = InferenceConfig(mode="mean")
    for s, c in enumerate((3, 5)):
        series = sessions[s][0]  # (60, C_s) one segment
        windows, index = chop_segments([series.numpy()], 12, 4)
        windows = torch.as_tensor(windows)
        merged = infer_merged(model, windows, index, InferenceConfig(n_samples=4, interval=0.9), session=s)
        assert merged.mean[0].shape == (60, c) and merged.factors[0].shape == (60, 3)
        assert merged.lower[0].shape == (60, c) and merged.upper[0].shape == (60, c)
        direct = infer(model, windows, cfg, session=s)
        assert direct.mean.shape == (windows.shape[0], 12, c)
        padded = torch.nn.functional.pad(windows, (0, 5 - c))
        with torch.no_grad():
            ref = model.observation.mean(model(padded, sample=False, session=torch.full((len(windows),), s)).params)
        assert np.allclose(direct.mean, ref[..., :c].numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="pass session="):
        infer(model, windows, cfg)
    with pytest.raises(ValueError, match="session 0 has 3 channels, the windows 5"):
        infer(model, windows, cfg, session=0)


def _meta(cfg, names=("s0", "s1"), counts=(3, 5)):
    return {"config": cfg.to_dict(), "bin_size": 0.01, "n_channels": max(counts),
            "sessions": [{"name": n, "n_channels": c} for n, c in zip(names, counts)],
            "columns": [{"modality": "emg", "observation": cfg.model.observation,
                         "channel_names": [f"m{i}" for i in range(max(counts))], "offsets": None, "scales": None}]}


def test_a_saved_multi_session_model_reloads_with_identical_outputs(tmp_path):
    cfg = build_config("smoke").resolved(5)
    data = _data()
    model = _model(data, cfg.model).eval()
    staged = stage_model(tmp_path / "m.autolfads-model", model)
    path = staged.commit(_meta(cfg))
    art = load_model(path)
    assert art.session_channels == (3, 5)
    rebuilt = art.build()
    assert rebuilt.session_channels == (3, 5)
    with torch.no_grad():
        a = model(data.valid, sample=False, session=data.valid_session).params
        b = rebuilt(data.valid, sample=False, session=data.valid_session).params
    assert torch.equal(a, b)


@pytest.mark.parametrize("sessions, match", [
    ([{"name": "a", "n_channels": 3}, {"name": "a", "n_channels": 5}], "repeat"),
    ([{"name": "a", "n_channels": 0}, {"name": "b", "n_channels": 5}], r"sessions\[0\]"),
    ("a,b", "not a list")])
def test_check_meta_refuses_damaged_sessions(tmp_path, sessions, match):
    cfg = build_config("smoke").resolved(5)
    check_meta({"format": "nwb-autolfads-model", "format_version": 1, "weights_sha256": "x", **_meta(cfg)}, tmp_path)
    meta = {"format": "nwb-autolfads-model", "format_version": 1, "weights_sha256": "x", **_meta(cfg),
            "sessions": sessions}
    with pytest.raises(ConfigError, match=match):
        check_meta(meta, tmp_path)
