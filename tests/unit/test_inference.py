import numpy as np
import torch

from nwb_autolfads.config import InferenceConfig, ModelConfig
from nwb_autolfads.inference import infer
from nwb_autolfads.model import LFADS
from nwb_autolfads.observations import Gamma


def _model():
    torch.manual_seed(0)
    cfg = ModelConfig(ic_enc_dim=8, ci_enc_dim=8, con_dim=8, co_dim=2, ic_dim=6, gen_dim=12, factor_dim=3)
    m = LFADS(4, cfg, Gamma())
    m.init_readout_bias(torch.ones(4))
    return m


def test_posterior_mean_outputs_and_batch_independence():
    model = _model()
    x = torch.rand(7, 15, 4) + 0.1
    a = infer(model, x, InferenceConfig(mode="mean", batch_size=2))
    b = infer(model, x, InferenceConfig(mode="mean", batch_size=100))
    assert a.mean.shape == (7, 15, 4) and a.factors.shape == (7, 15, 3)
    assert a.inputs.shape == (7, 15, 2) and a.ic_mean.shape == (7, 6)
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-5, atol=1e-6)
    assert np.all(a.mean > 0)


def test_sample_averaging_is_close_to_but_not_the_posterior_mean():
    model = _model()
    x = torch.rand(3, 15, 4) + 0.1
    mean = infer(model, x, InferenceConfig(mode="mean"))
    torch.manual_seed(0)
    sampled = infer(model, x, InferenceConfig(mode="sample", n_samples=30, batch_size=40))
    assert sampled.mean.shape == mean.mean.shape
    assert not np.allclose(sampled.mean, mean.mean)
    np.testing.assert_allclose(sampled.ic_mean, mean.ic_mean, rtol=1e-5, atol=1e-6)
    torch.manual_seed(0)
    again = infer(model, x, InferenceConfig(mode="sample", n_samples=30, batch_size=40))
    np.testing.assert_array_equal(sampled.mean, again.mean)


def test_inference_merged_batch_by_batch_equals_merging_all_outputs():
    from nwb_autolfads.inference import infer_merged
    from nwb_autolfads.windows import chop_segments, merge_segments

    model = _model()
    rng = np.random.default_rng(1)
    segs = [rng.random((80, 4)).astype(np.float32) + 0.1, rng.random((47, 4)).astype(np.float32) + 0.1]
    windows, index = chop_segments(segs, 15, 4)
    x = torch.from_numpy(windows)
    cfg = InferenceConfig(mode="mean", batch_size=3)  # batches of 3 windows: several cross the segment boundary
    ref = infer(model, x, cfg)
    merged = infer_merged(model, x, index, cfg, power=2.0)
    for got, want in ((merged.mean, ref.mean), (merged.factors, ref.factors), (merged.inputs, ref.inputs)):
        for a, b in zip(got, merge_segments(want, index, 2.0)):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(merged.ic_mean, ref.ic_mean)
    assert [c.shape for c in merged.coverage] == [(80, 1), (47, 1)] and np.all(merged.coverage[0] == 1.0)
