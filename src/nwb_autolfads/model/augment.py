"""Training-time augmentations (docs/science.md, Augmentations).

Both work on a batch x of shape (B, T, C) and draw from torch's global RNG (seeded by the run),
or from an explicit ``generator=`` (a population member's own stream, :mod:`.stacked`).
They are applied in training only; validation and inference see the data as it is.
"""

from __future__ import annotations

import torch

__all__ = ["CoordinatedDropout", "TemporalShift"]


class CoordinatedDropout:
    """Mask a random fraction ``rate`` of input elements (survivors scaled by 1 / (1 - rate)).

    Returns ``(encoder_input, loss_mask)``: the reconstruction loss is computed only where
    ``loss_mask`` is 1, i.e. on the elements the encoder did *not* see, so the network gets no
    gradient for copying its input to its output. With ``rate == 0`` the mask is all ones.
    """

    def __init__(self, rate: float):
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"coordinated dropout rate must be in [0, 1), got {rate}")
        self.rate = rate

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.rate == 0.0:
            return x, torch.ones_like(x)
        u = torch.rand_like(x) if generator is None else torch.rand(x.shape, generator=generator, device=x.device,
                                                                    dtype=x.dtype)
        keep = (u >= self.rate).to(x.dtype)  # 1 = visible to the encoder
        return x * keep / (1.0 - self.rate), 1.0 - keep


class TemporalShift:
    """Shift each channel of each sample by s ~ round(N(0, std)) bins, |s| <= max_shift.

    Edges are padded with the end values. Called separately for the encoder input and the
    reconstruction target, so the two get independent shifts.
    """

    def __init__(self, std: float, max_shift: int):
        self.std = float(std)
        self.max_shift = int(max_shift)

    @property
    def active(self) -> bool:
        return self.std > 0 and self.max_shift > 0

    def __call__(self, x: torch.Tensor, *others: torch.Tensor, generator: torch.Generator | None = None):
        """Shift x (B, T, C); tensors in ``others`` (same shape) get the same shifts, and then a
        tuple (x, *others) is returned. ``generator``: where the shifts are drawn from (global RNG
        when None)."""
        if not self.active:
            return (x, *others) if others else x
        B, T, C = x.shape
        src = self.sources(self.draw(B, C, x.device, generator), T)
        out = torch.gather(x, 1, src)
        return (out, *(torch.gather(o, 1, src) for o in others)) if others else out

    def draw(self, B: int, C: int, device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
        """The shifts of a (B, T, C) batch: (B, 1, C) integers in [-max_shift, max_shift]."""
        shifts = torch.round(torch.randn(B, 1, C, device=device, generator=generator) * self.std)
        return shifts.clamp(-self.max_shift, self.max_shift).long()

    @staticmethod
    def sources(shifts: torch.Tensor, T: int) -> torch.Tensor:
        """Gather indices along the time axis (dim -2) for ``shifts`` (..., 1, C): output bin t
        reads bin t - s, clamped to the window (edges padded with the end values)."""
        return (torch.arange(T, device=shifts.device).view(T, 1) - shifts).clamp(0, T - 1)  # (..., T, C)
