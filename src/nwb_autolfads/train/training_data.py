"""What crosses the training boundary: the windows of one session and how to read them.

Everything that trains (:func:`~nwb_autolfads.train.loop.train_model`, the isolated child of
:mod:`~nwb_autolfads.train.isolation`, both population executors and the stacked program) takes one
:class:`TrainingData` instead of positional tensors, so a later multi-session model adds sessions
here, not to every signature.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from nwb_autolfads.model.observations import ObservationModel
from nwb_autolfads.train.loop import validation_subset

__all__ = ["TrainingData"]


@dataclass(frozen=True)
class TrainingData:
    """The training and validation windows of one session.

    Parameters
    ----------
    train, valid : (N, L + T, C) windows (lead-in bins first), model units, on the training device.
    observation : the observation model of the channels (what the model's readout predicts).
    channels : the channels of each modality, as slices of the last axis (default: one ``"all"``).
    train_mask, valid_mask : (N, L + T, C) 1 where an element was observed, or None (all observed).
        Masked elements are not supported by the loss yet: a mask with a 0 raises.
    session : the session's identifier (one session: ``"session-0"``).

    Raises
    ------
    ValueError
        The windows disagree in length or channels, a mask's shape differs from its windows', or a
        mask hides an element.
    """

    train: torch.Tensor
    valid: torch.Tensor
    observation: ObservationModel
    channels: dict[str, slice] = field(default_factory=dict)
    train_mask: torch.Tensor | None = None
    valid_mask: torch.Tensor | None = None
    session: str = "session-0"

    def __post_init__(self):
        if self.train.dim() != 3 or self.valid.dim() != 3 or self.train.shape[1:] != self.valid.shape[1:]:
            raise ValueError(f"TrainingData: train {tuple(self.train.shape)} and valid {tuple(self.valid.shape)} "
                             "windows must both be (windows, bins, channels) with the same bins and channels")
        if not self.channels:
            object.__setattr__(self, "channels", {"all": slice(0, self.n_channels)})
        for name, mask, x in (("train_mask", self.train_mask, self.train), ("valid_mask", self.valid_mask, self.valid)):
            if mask is None:
                continue
            if mask.shape != x.shape:
                raise ValueError(f"TrainingData.{name}: shape {tuple(mask.shape)} differs from its windows' "
                                 f"{tuple(x.shape)}")
            if not bool((mask != 0).all()):
                raise ValueError(f"TrainingData.{name} hides {int((mask == 0).sum())} element(s): masked elements are "
                                 "not supported by the training loss yet (cut the windows to observed stretches)")

    @property
    def n_channels(self) -> int:
        """Channels C."""
        return int(self.train.shape[-1])

    @property
    def device(self) -> torch.device:
        return self.train.device

    def check_model(self, model) -> None:
        """Raise ValueError unless ``model`` reads these channels with this observation model."""
        if model.n_channels != self.n_channels or type(model.observation) is not type(self.observation):
            raise ValueError(f"TrainingData: the model ({model.n_channels} channels, "
                             f"{type(model.observation).__name__}) does not fit the data ({self.n_channels} channels, "
                             f"{type(self.observation).__name__})")

    def validation_subset(self, max_windows: int) -> "TrainingData":
        """The same data with at most ``max_windows`` validation windows, spread evenly
        (:func:`~nwb_autolfads.train.loop.validation_subset`: what every check evaluates)."""
        idx = torch.as_tensor(validation_subset(self.valid.shape[0], max_windows), device=self.valid.device)
        return replace(self, valid=self.valid[idx],
                       valid_mask=None if self.valid_mask is None else self.valid_mask[idx])

    def cpu(self) -> "TrainingData":
        """The same data on the CPU (to send to another process)."""
        return self.to(torch.device("cpu"))

    def to(self, device: torch.device) -> "TrainingData":
        def move(t):
            return None if t is None else t.to(device)
        return replace(self, train=move(self.train), valid=move(self.valid), train_mask=move(self.train_mask),
                       valid_mask=move(self.valid_mask))

    def fingerprint_parts(self) -> tuple:
        """What identifies the data in a checkpoint's fingerprint."""
        parts = (self.train, self.valid)
        masks = tuple(m for m in (self.train_mask, self.valid_mask) if m is not None)
        return parts + masks
