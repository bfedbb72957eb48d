import numpy as np
import pytest
import torch

from nwb_autolfads.config import InferenceConfig, ModelConfig
from nwb_autolfads.model.inference import infer
from nwb_autolfads.model.lfads import LFADS
from nwb_autolfads.model.observations import Gamma


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
    from nwb_autolfads.model.inference import infer_merged
    from nwb_autolfads.data.windows import chop_segments, merge_segments

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


def test_sample_quantiles_are_numpys_linear_quantiles():
    from nwb_autolfads.model.inference import interval_quantiles, sample_quantiles

    assert interval_quantiles(0.9) == (pytest.approx(0.05), pytest.approx(0.95))
    rng = np.random.default_rng(2)
    for n in (1, 2, 7, 20):
        x = rng.gamma(2.0, size=(3, n, 5, 4))  # skewed, like the Gamma means of an EMG posterior
        probs = (0.0, 0.05, 0.25, 0.5, 0.95, 1.0)
        got = sample_quantiles(torch.from_numpy(x), probs, dim=1)
        for p, g in zip(probs, got):
            np.testing.assert_allclose(g.numpy(), np.quantile(x, p, axis=1), rtol=1e-12, atol=1e-12)
    # known values: 0..10 in shuffled order
    x = torch.tensor([[3.0, 10.0, 0.0, 7.0, 1.0, 9.0, 2.0, 8.0, 6.0, 5.0, 4.0]])
    lo, hi = sample_quantiles(x, interval_quantiles(0.9), dim=1)
    assert lo.item() == pytest.approx(0.5) and hi.item() == pytest.approx(9.5)


def test_the_interval_is_the_quantiles_of_the_posterior_samples_of_the_mean():
    model = _model()
    x = torch.rand(3, 15, 4) + 0.1
    cfg = InferenceConfig(mode="sample", n_samples=30, batch_size=90, interval=0.8)  # one batch
    torch.manual_seed(0)
    got = infer(model, x, cfg)
    torch.manual_seed(0)
    with torch.no_grad():
        out = model(x, sample=True, n_samples=30)
        samples = model.observation.mean(out.params).reshape(3, 30, 15, 4).numpy()
    np.testing.assert_allclose(got.lower, np.quantile(samples, 0.1, axis=1), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got.upper, np.quantile(samples, 0.9, axis=1), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got.mean, samples.mean(axis=1), rtol=1e-5, atol=1e-7)
    assert got.lower.shape == got.mean.shape == got.upper.shape and got.lower.dtype == np.float32
    assert np.all(got.lower <= got.upper) and np.all(got.lower > 0)
    # the sample mean lies between the smallest and largest sample, not always inside the 80% band
    # (a skewed posterior): here it is for nearly every bin
    inside = (got.lower <= got.mean) & (got.mean <= got.upper)
    assert inside.mean() > 0.95
    # batches of other sizes draw other samples but give bounds of the same spread
    torch.manual_seed(1)
    other = infer(model, x, InferenceConfig(mode="sample", n_samples=30, batch_size=31, interval=0.8))
    np.testing.assert_allclose((other.upper - other.lower).mean(), (got.upper - got.lower).mean(), rtol=0.15)


@pytest.mark.parametrize("cfg", [InferenceConfig(mode="mean"), InferenceConfig(mode="sample", interval=None),
                                 InferenceConfig(mode="sample", n_samples=1)],
                         ids=["mean", "interval-null", "one-sample"])
def test_no_interval_without_posterior_samples_or_when_off(cfg):
    model = _model()
    x = torch.rand(2, 15, 4) + 0.1
    got = infer(model, x, cfg)
    assert got.lower is None and got.upper is None and not cfg.with_interval


def test_interval_bounds_are_merged_across_overlaps_with_the_means_weights():
    from nwb_autolfads.model.inference import infer_merged
    from nwb_autolfads.data.windows import chop_segments, merge_segments

    model = _model()
    rng = np.random.default_rng(1)
    segs = [rng.random((60, 4)).astype(np.float32) + 0.1, rng.random((33, 4)).astype(np.float32) + 0.1]
    windows, index = chop_segments(segs, 15, 6)
    x = torch.from_numpy(windows)
    cfg = InferenceConfig(mode="sample", n_samples=6, batch_size=18)  # 3 windows per batch, the default 0.9
    torch.manual_seed(3)
    ref = infer(model, x, cfg)
    torch.manual_seed(3)
    merged = infer_merged(model, x, index, cfg, power=2.0, offset=0)
    for got, want in ((merged.mean, ref.mean), (merged.lower, ref.lower), (merged.upper, ref.upper)):
        for a, b in zip(got, merge_segments(want, index, 2.0)):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    for lo, m, hi in zip(merged.lower, merged.mean, merged.upper):
        assert lo.shape == m.shape == hi.shape and np.all(lo <= hi)
    torch.manual_seed(3)
    plain = infer_merged(model, x, index, InferenceConfig(mode="mean"), power=2.0)
    assert plain.lower is None and plain.upper is None
