"""Observation models: readout parameters -> a distribution per channel (science.md section 3).

One small interface: ``n_params`` readout values per channel, ``nll`` (elementwise negative
log-likelihood), ``mean`` (the denoised signal), ``sample`` and ``init_bias`` (readout bias that
makes the initial mean match the data).

Shapes: params (..., C, P), data (..., C).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch

__all__ = ["ObservationModel", "Gamma", "Poisson", "Gaussian", "get_observation"]

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


_MODELS = {m.name: m for m in (Gamma, Poisson, Gaussian)}


def get_observation(name: str) -> ObservationModel:
    return _MODELS[name]()
