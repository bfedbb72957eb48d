"""Model-ready windows for model and training tests."""

from __future__ import annotations

__all__ = ["gamma_windows"]


def gamma_windows(n: int = 40, T: int = 20, C: int = 4, seed: int = 0):
    """Model-ready windows (n, T, C) for model and training tests: Gamma draws (shape 4) around
    a sinusoidal mean per channel (1 +- 0.8) with a random phase per window. The phases come
    from ``seed``; the Gamma draws from torch's global generator (seed it with
    ``torch.manual_seed``). Returns a float32 CPU tensor."""
    import torch

    g = torch.Generator().manual_seed(seed)
    t = torch.arange(T, dtype=torch.float32)
    phase = torch.rand(n, 1, 1, generator=g) * 6.28
    mean = 1.0 + 0.8 * torch.sin(0.3 * t[None, :, None] + phase + torch.arange(C)[None, None, :])
    return torch.distributions.Gamma(4.0, 4.0 / mean).sample()
