import numpy as np
import pytest
import torch
from scipy import stats

from nwb_autolfads.model.observations import Gamma, Gaussian, Poisson, get_observation

rng = np.random.default_rng(0)


def test_gamma_nll_matches_scipy():
    a, b = rng.uniform(0.5, 5, size=20), rng.uniform(0.2, 4, size=20)
    x = rng.uniform(0.01, 3, size=20)
    params = torch.tensor(np.stack([np.log(a), np.log(b)], -1))
    nll = Gamma().nll(params, torch.tensor(x)).numpy()
    np.testing.assert_allclose(nll, -stats.gamma.logpdf(x, a, scale=1 / b), rtol=1e-6)
    np.testing.assert_allclose(Gamma().mean(params).numpy(), a / b, rtol=1e-6)


def test_poisson_nll_matches_scipy():
    rate = rng.uniform(0.1, 5, size=20)
    k = rng.poisson(rate).astype(float)
    params = torch.tensor(np.log(rate))[:, None]
    nll = Poisson().nll(params, torch.tensor(k)).numpy()
    np.testing.assert_allclose(nll, -stats.poisson.logpmf(k, rate), rtol=1e-6)


def test_gaussian_nll_matches_scipy():
    mu, var = rng.normal(size=20), rng.uniform(0.1, 3, size=20)
    x = rng.normal(size=20)
    params = torch.tensor(np.stack([mu, np.log(var)], -1))
    nll = Gaussian().nll(params, torch.tensor(x)).numpy()
    np.testing.assert_allclose(nll, -stats.norm.logpdf(x, mu, np.sqrt(var)), rtol=1e-6)


@pytest.mark.parametrize("name", ["gamma", "zigamma", "poisson", "gaussian"])
def test_init_bias_reproduces_the_data_mean(name):
    obs = get_observation(name)
    m = torch.tensor([0.3, 1.0, 2.5], dtype=torch.float64)
    bias = obs.init_bias(m)
    assert bias.shape == (3, obs.n_params)
    torch.testing.assert_close(obs.mean(bias), m)


@pytest.mark.parametrize("name", ["gamma", "zigamma", "poisson", "gaussian"])
def test_samples_have_the_model_mean(name):
    obs = get_observation(name)
    torch.manual_seed(0)
    bias = obs.init_bias(torch.tensor([0.5, 2.0], dtype=torch.float64))
    samples = obs.sample(bias.expand(20000, 2, obs.n_params))
    torch.testing.assert_close(samples.mean(0), obs.mean(bias), rtol=0.05, atol=0.02)


def test_gamma_is_finite_for_extreme_readouts():
    params = torch.tensor([[50.0, -50.0], [-50.0, 50.0]])
    assert torch.all(torch.isfinite(Gamma().nll(params, torch.tensor([1e-3, 10.0]))))


def test_zero_inflated_gamma_nll_matches_scipy():
    from nwb_autolfads.model.observations import ZeroInflatedGamma

    a, b, q = rng.uniform(0.5, 5, size=20), rng.uniform(0.2, 4, size=20), rng.uniform(0.1, 0.9, size=20)
    x = rng.uniform(0.01, 3, size=20)
    x[::3] = 0.0
    params = torch.tensor(np.stack([np.log(a), np.log(b), np.log(q / (1 - q))], -1))
    nll = ZeroInflatedGamma().nll(params, torch.tensor(x)).numpy()
    expected = np.where(x > 0, -np.log(q) - stats.gamma.logpdf(np.where(x > 0, x, 1.0), a, scale=1 / b),
                        -np.log(1 - q))
    np.testing.assert_allclose(nll, expected, rtol=1e-6)
    np.testing.assert_allclose(ZeroInflatedGamma().mean(params).numpy(), q * a / b, rtol=1e-6)


def test_composite_gives_each_channel_its_own_distribution():
    from nwb_autolfads.model.observations import Composite

    comp = Composite([(Poisson(), 2), (Gamma(), 3)])
    assert comp.n_params == 2
    params = torch.randn(4, 5, 2, dtype=torch.float64)
    x = torch.cat([torch.poisson(torch.full((4, 2), 2.0)), torch.rand(4, 3) + 0.1], dim=1).double()
    expected = torch.cat([Poisson().nll(params[:, :2, :1], x[:, :2]), Gamma().nll(params[:, 2:], x[:, 2:])], dim=1)
    torch.testing.assert_close(comp.nll(params, x), expected)
    torch.testing.assert_close(comp.mean(params)[:, :2], Poisson().mean(params[:, :2, :1]))
    m = torch.tensor([0.5, 2.0, 0.3, 1.0, 4.0], dtype=torch.float64)
    torch.testing.assert_close(comp.mean(comp.init_bias(m)), m)
    assert comp.sample(params).shape == (4, 5)
    with pytest.raises(ValueError):
        Composite([])


def test_unknown_observation_name():
    with pytest.raises(ValueError, match="unknown observation"):
        get_observation("cauchy")
