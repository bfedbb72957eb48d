"""Model-ready windows for model and training tests."""

from __future__ import annotations

__all__ = ["gamma_windows", "gamma_session_windows"]


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


def gamma_session_windows(counts: tuple[int, ...] = (3, 5), n: int = 24, T: int = 20, seed: int = 0,
                          latent_dim: int = 2):
    """Model-ready windows of several sessions that share one latent dynamical system (for
    multi-session model and training tests): per session a list entry (n, T, C_s) of Gamma draws
    (shape 4) around ``exp(0.5 * W_s z_t)``, where z_t is a ``latent_dim``-dimensional rotation
    (sinusoids of period ~21 bins, a random phase per window) shared by every session and W_s
    (C_s, latent_dim) the session's own random mixing matrix (standard normal). Everything is drawn
    from ``seed``. Returns float32 CPU tensors."""
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    t = np.arange(T)
    out = []
    for c in counts:
        phase = rng.uniform(0, 2 * np.pi, size=(n, 1))  # (n, 1)
        z = np.stack([np.sin(0.3 * t + phase + k * np.pi / latent_dim) for k in range(latent_dim)], -1)  # (n, T, K)
        mix = rng.standard_normal((int(c), latent_dim))  # (C_s, K)
        mean = np.exp(0.5 * z @ mix.T)  # (n, T, C_s)
        out.append(torch.from_numpy(rng.gamma(4.0, mean / 4.0).astype(np.float32)))
    return out
