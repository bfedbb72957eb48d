"""Observation models: readout parameters -> a distribution per channel (docs/science.md, Observation models).

One small interface: ``n_params`` readout values per channel, ``nll`` (elementwise negative
log-likelihood), ``mean`` (the denoised signal), ``sample`` and ``init_bias`` (readout bias that
makes the initial mean match the data).

Shapes: params (..., C, P), data (..., C).

Each model is registered by name in :mod:`nwb_autolfads.model.registry` (torch-free, so the
configuration can check names without importing torch): a new model is one subclass here (or
anywhere) decorated with :func:`~nwb_autolfads.model.registry.register_observation`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
import torch.nn.functional as nnf

from nwb_autolfads.model.registry import make_observation

__all__ = ["ObservationModel", "Gamma", "ZeroInflatedGamma", "Poisson", "Gaussian", "Composite", "get_observation"]

_LOG_MIN, _LOG_MAX = -10.0, 10.0  # keeps exp() of readout values finite


class ObservationModel(ABC):
    name: str = ""
    n_params: int = 1

    @abstractmethod
    def nll(self, params: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # (..., C)
        """See the module docstring."""

    @abstractmethod
    def mean(self, params: torch.Tensor) -> torch.Tensor:  # (..., C)
        """See the module docstring."""

    @abstractmethod
    def sample(self, params: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """See the module docstring."""

    @abstractmethod
    def init_bias(self, data_mean: torch.Tensor) -> torch.Tensor:  # (C, P)
        """See the module docstring."""


class Gamma(ObservationModel):
    """Gamma(alpha, beta) in the rate parameterisation; alpha = exp(p0), beta = exp(p1).
    Mean alpha / beta is the muscle activation. For non-negative continuous data (EMG)."""

    name = "gamma"
    n_params = 2

    def _ab(self, params):
        log_a = params[..., 0].clamp(_LOG_MIN, _LOG_MAX)
        log_b = params[..., 1].clamp(_LOG_MIN, _LOG_MAX)
        return log_a, log_b

    def nll(self, params, x):
        log_a, log_b = self._ab(params)
        a = log_a.exp()
        return -(a * log_b - torch.lgamma(a) + (a - 1.0) * torch.log(x) - log_b.exp() * x)

    def mean(self, params):
        log_a, log_b = self._ab(params)
        return (log_a - log_b).exp()

    def sample(self, params, generator=None):
        log_a, log_b = self._ab(params)
        # torch's Gamma sampler takes no generator; draw with the global RNG on the same device.
        return torch.distributions.Gamma(log_a.exp(), log_b.exp()).sample()

    def init_bias(self, data_mean):
        # alpha = 1 (exponential), beta = 1 / mean
        log_a = torch.zeros_like(data_mean)
        log_b = -torch.log(data_mean.clamp_min(1e-6))
        return torch.stack([log_a, log_b], dim=-1)


class Poisson(ObservationModel):
    """Poisson with a log-rate readout (spike counts per bin)."""

    name = "poisson"
    n_params = 1

    def nll(self, params, x):
        log_rate = params[..., 0].clamp(_LOG_MIN, _LOG_MAX)
        return log_rate.exp() - x * log_rate + torch.lgamma(x + 1.0)

    def mean(self, params):
        return params[..., 0].clamp(_LOG_MIN, _LOG_MAX).exp()

    def sample(self, params, generator=None):
        return torch.poisson(self.mean(params), generator=generator)

    def init_bias(self, data_mean):
        return torch.log(data_mean.clamp_min(1e-6))[..., None]


class Gaussian(ObservationModel):
    """Gaussian with mean and log-variance readouts (kinematics, force)."""

    name = "gaussian"
    n_params = 2

    def nll(self, params, x):
        mu = params[..., 0]
        logvar = params[..., 1].clamp(_LOG_MIN, _LOG_MAX)
        return 0.5 * (math.log(2 * math.pi) + logvar + (x - mu) ** 2 / logvar.exp())

    def mean(self, params):
        return params[..., 0]

    def sample(self, params, generator=None):
        std = (0.5 * params[..., 1].clamp(_LOG_MIN, _LOG_MAX)).exp()
        noise = torch.randn(std.shape, generator=generator, device=std.device, dtype=std.dtype)
        return params[..., 0] + std * noise

    def init_bias(self, data_mean):
        return torch.stack([data_mean, torch.zeros_like(data_mean)], dim=-1)


class ZeroInflatedGamma(ObservationModel):
    """Zero-inflated Gamma: x = 0 with probability 1 - q, else x ~ Gamma(alpha, beta).
    Readouts: log alpha, log beta, logit q. Mean q * alpha / beta. For non-negative data with
    exact zeros (EMG from systems that zero small values, calcium imaging); values <= 0 count
    as zeros."""

    name = "zigamma"
    n_params = 3

    def nll(self, params, x):
        log_a = params[..., 0].clamp(_LOG_MIN, _LOG_MAX)
        log_b = params[..., 1].clamp(_LOG_MIN, _LOG_MAX)
        logit_q = params[..., 2]
        a = log_a.exp()
        positive = x > 0
        xs = torch.where(positive, x, torch.ones_like(x))  # keeps log() finite where x == 0
        gamma_nll = -(a * log_b - torch.lgamma(a) + (a - 1.0) * torch.log(xs) - log_b.exp() * xs)
        # -log q = softplus(-logit q);  -log(1 - q) = softplus(logit q)
        return torch.where(positive, nnf.softplus(-logit_q) + gamma_nll, nnf.softplus(logit_q))

    def mean(self, params):
        log_a = params[..., 0].clamp(_LOG_MIN, _LOG_MAX)
        log_b = params[..., 1].clamp(_LOG_MIN, _LOG_MAX)
        return torch.sigmoid(params[..., 2]) * (log_a - log_b).exp()

    def sample(self, params, generator=None):
        log_a = params[..., 0].clamp(_LOG_MIN, _LOG_MAX)
        log_b = params[..., 1].clamp(_LOG_MIN, _LOG_MAX)
        nonzero = torch.bernoulli(torch.sigmoid(params[..., 2]), generator=generator)
        return nonzero * torch.distributions.Gamma(log_a.exp(), log_b.exp()).sample()

    def init_bias(self, data_mean):
        # q = 0.9 at the start, alpha = 1, and beta so that q * alpha / beta = mean
        logit_q = torch.full_like(data_mean, math.log(9.0))
        log_b = math.log(0.9) - torch.log(data_mean.clamp_min(1e-6))
        return torch.stack([torch.zeros_like(data_mean), log_b, logit_q], dim=-1)


class Composite(ObservationModel):
    """Several modalities in one model, each channel with its own distribution: ``parts`` is a
    list of (observation model, number of channels), in channel order (e.g. spikes then EMG).
    Parameters are (..., C, P) with P the largest n_params of the parts; a part with fewer
    parameters uses the first ones of its channels' slots."""

    name = "composite"

    def __init__(self, parts: list[tuple[ObservationModel, int]]):
        if not parts or any(n < 1 for _, n in parts):
            raise ValueError("a composite observation model needs parts with at least one channel each")
        self.parts = list(parts)
        self.n_params = max(obs.n_params for obs, _ in parts)
        bounds = [0]
        for _, n in parts:
            bounds.append(bounds[-1] + n)
        self.slices = [slice(a, b) for a, b in zip(bounds[:-1], bounds[1:])]

    def _each(self, fn, params, *others):
        outs = [fn(obs, params[..., sl, : obs.n_params], *(o[..., sl] for o in others))
                for (obs, _), sl in zip(self.parts, self.slices)]
        return torch.cat(outs, dim=-1)

    def nll(self, params, x):
        return self._each(lambda obs, p, xx: obs.nll(p, xx), params, x)

    def mean(self, params):
        return self._each(lambda obs, p: obs.mean(p), params)

    def sample(self, params, generator=None):
        return self._each(lambda obs, p: obs.sample(p, generator), params)

    def init_bias(self, data_mean):
        out = data_mean.new_zeros(*data_mean.shape, self.n_params)
        for (obs, _), sl in zip(self.parts, self.slices):
            out[..., sl, : obs.n_params] = obs.init_bias(data_mean[..., sl])
        return out


def get_observation(name: str) -> ObservationModel:
    """A new instance of the registered observation model ``name``
    (:func:`~nwb_autolfads.model.registry.make_observation`).

    Raises
    ------
    ValueError
        ``name`` is not registered.
    """
    return make_observation(name)
