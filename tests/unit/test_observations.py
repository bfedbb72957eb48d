import numpy as np
import pytest
import torch
from scipy import stats

from nwb_autolfads.observations import Gamma, Gaussian, Poisson, get_observation

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


@pytest.mark.parametrize("name", ["gamma", "poisson", "gaussian"])
def test_init_bias_reproduces_the_data_mean(name):
    obs = get_observation(name)
    m = torch.tensor([0.3, 1.0, 2.5], dtype=torch.float64)
    bias = obs.init_bias(m)
    assert bias.shape == (3, obs.n_params)
    torch.testing.assert_close(obs.mean(bias), m)


@pytest.mark.parametrize("name", ["gamma", "poisson", "gaussian"])
def test_samples_have_the_model_mean(name):
    obs = get_observation(name)
    torch.manual_seed(0)
    bias = obs.init_bias(torch.tensor([0.5, 2.0], dtype=torch.float64))
    samples = obs.sample(bias.expand(20000, 2, obs.n_params))
    torch.testing.assert_close(samples.mean(0), obs.mean(bias), rtol=0.05, atol=0.02)


def test_gamma_is_finite_for_extreme_readouts():
    params = torch.tensor([[50.0, -50.0], [-50.0, 50.0]])
    assert torch.all(torch.isfinite(Gamma().nll(params, torch.tensor([1e-3, 10.0]))))
