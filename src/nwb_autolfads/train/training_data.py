"""What crosses the training boundary: the windows of one or several sessions and how to read them.

Everything that trains (:func:`~nwb_autolfads.train.loop.train_model`, the isolated child of
:mod:`~nwb_autolfads.train.isolation`, both population executors and the stacked program) takes one
:class:`TrainingData` instead of positional tensors. Several sessions (one stitched model,
docs/science.md, Multi-session models) are one :class:`TrainingData` too
(:meth:`TrainingData.from_sessions`): their windows padded to the most channels, masks that hide
the padding, and the session of every window.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as nnf

from nwb_autolfads.model.observations import Composite, ObservationModel
from nwb_autolfads.train.loop import validation_subset

__all__ = ["TrainingData"]


@dataclass(frozen=True)
class TrainingData:
    """The training and validation windows of one session, or of several (:meth:`from_sessions`).

    Parameters
    ----------
    train, valid : (N, L + T, C) windows (lead-in bins first), model units, on the training device.
    observation : the observation model of the channels (what the model's readout predicts).
    channels : the channels of each modality, as slices of the last axis (default: one ``"all"``).
    train_mask, valid_mask : (N, L + T, C) 1 where an element was observed, 0 where not, or None (all
        observed). Masked elements never enter the training loss nor the validation NLL (means are
        over the observed elements) and reach the encoders as 0.
    session : the session's identifier (one session: ``"session-0"``).
    train_session, valid_session : (N,) int64 the session of each window (several sessions), or
        None (one session).
    session_names, session_channels : per session its name and channel count C_s (several
        sessions; ``()`` for one).

    Raises
    ------
    ValueError
        The windows disagree in length or channels, a mask's shape differs from its windows', or the
        session fields disagree (lengths, indices out of range, a session with more channels than C).
    """

    train: torch.Tensor
    valid: torch.Tensor
    observation: ObservationModel
    channels: dict[str, slice] = field(default_factory=dict)
    train_mask: torch.Tensor | None = None
    valid_mask: torch.Tensor | None = None
    session: str = "session-0"
    train_session: torch.Tensor | None = None
    valid_session: torch.Tensor | None = None
    session_names: tuple[str, ...] = ()
    session_channels: tuple[int, ...] = ()

    def __post_init__(self):
        if self.train.dim() != 3 or self.valid.dim() != 3 or self.train.shape[1:] != self.valid.shape[1:]:
            raise ValueError(f"TrainingData: train {tuple(self.train.shape)} and valid {tuple(self.valid.shape)} "
                             "windows must both be (windows, bins, channels) with the same bins and channels")
        if not self.channels:
            object.__setattr__(self, "channels", {"all": slice(0, self.n_channels)})
        for name, mask, x in (("train_mask", self.train_mask, self.train), ("valid_mask", self.valid_mask, self.valid)):
            if mask is not None and mask.shape != x.shape:
                raise ValueError(f"TrainingData.{name}: shape {tuple(mask.shape)} differs from its windows' "
                                 f"{tuple(x.shape)}")
        self._check_sessions()

    def _check_sessions(self) -> None:
        """Raise ValueError unless the session fields agree with each other and the windows."""
        object.__setattr__(self, "session_names", tuple(str(n) for n in self.session_names))
        object.__setattr__(self, "session_channels", tuple(int(c) for c in self.session_channels))
        S = len(self.session_channels)
        if len(self.session_names) != S or (S and max(self.session_channels) > self.n_channels) \
                or (S and min(self.session_channels) < 1):
            raise ValueError(f"TrainingData: session_names {self.session_names} and session_channels "
                             f"{self.session_channels} must name each session and its 1..{self.n_channels} channels")
        for name, index, x in (("train_session", self.train_session, self.train),
                               ("valid_session", self.valid_session, self.valid)):
            if (index is None) != (S < 2):
                raise ValueError(f"TrainingData.{name}: give the session of every window exactly when there are "
                                 f"several sessions ({S} here)")
            if index is None:
                continue
            if index.shape != (x.shape[0],) or index.dtype != torch.int64:
                raise ValueError(f"TrainingData.{name}: {tuple(index.shape)} {index.dtype}, not ({x.shape[0]},) "
                                 "int64 (the session index of each window)")
            if index.numel() and (int(index.min()) < 0 or int(index.max()) >= S):
                raise ValueError(f"TrainingData.{name}: session indices outside 0..{S - 1}")

    @classmethod
    def from_sessions(cls, train: list[torch.Tensor], valid: list[torch.Tensor], observation: ObservationModel,
                      names: list[str]) -> "TrainingData":
        """The windows of several sessions as one :class:`TrainingData`, for one stitched model.

        Parameters
        ----------
        train, valid : per session its (N_s, L + T, C_s) training and (M_s, L + T, C_s) validation
            windows (model units, one device and dtype); sessions may differ in C_s, not in L + T.
        observation : the observation model of every session's channels.
        names : per session its name (distinct).

        Returns
        -------
        TrainingData
            The windows padded with zeros to C = max C_s and concatenated in session order; masks 1
            on each session's real channels, 0 on its padding; ``train_session`` / ``valid_session``
            the session of every window; ``session_names``, ``session_channels``. One session: the
            plain single-session data (no masks, no session tensors; ``session`` = its name).

        Raises
        ------
        ValueError
            No session, lists of different lengths, repeated names, a session without windows,
            different window lengths, or a composite observation model (several modalities) with
            sessions of different channel counts (its channel blocks are fixed).
        """
        _check_session_lists(train, valid, observation, names)
        if len(train) == 1:
            return cls(train[0], valid[0], observation, session=str(names[0]))
        counts = tuple(int(t.shape[-1]) for t in train)
        C = max(counts)

        def stack(parts):
            x = torch.cat([nnf.pad(p, (0, C - p.shape[-1])) for p in parts])
            mask = torch.cat([nnf.pad(torch.ones_like(p), (0, C - p.shape[-1])) for p in parts])
            index = torch.cat([torch.full((p.shape[0],), s, dtype=torch.int64, device=p.device)
                               for s, p in enumerate(parts)])
            return x, mask, index

        (tx, tm, ts), (vx, vm, vs) = stack(train), stack(valid)
        return cls(tx, vx, observation, train_mask=tm, valid_mask=vm, session=str(names[0]), train_session=ts,
                   valid_session=vs, session_names=tuple(str(n) for n in names), session_channels=counts)

    @property
    def n_sessions(self) -> int:
        """Sessions S (1 for single-session data)."""
        return max(1, len(self.session_channels))

    @property
    def model_sessions(self) -> tuple[int, ...] | None:
        """What :class:`~nwb_autolfads.model.lfads.LFADS` takes as ``session_channels``: the
        channel count of each session, or None for one session."""
        return self.session_channels if self.n_sessions > 1 else None

    @property
    def n_channels(self) -> int:
        """Channels C."""
        return int(self.train.shape[-1])

    @property
    def device(self) -> torch.device:
        return self.train.device

    def check_model(self, model) -> None:
        """Raise ValueError unless ``model`` reads these channels (and sessions) with this observation model."""
        if model.n_channels != self.n_channels or type(model.observation) is not type(self.observation):
            raise ValueError(f"TrainingData: the model ({model.n_channels} channels, "
                             f"{type(model.observation).__name__}) does not fit the data ({self.n_channels} channels, "
                             f"{type(self.observation).__name__})")
        got = getattr(model, "session_channels", None)
        if got != self.model_sessions:
            raise ValueError(f"TrainingData: the model's sessions (channels {got}) are not the data's "
                             f"({self.model_sessions}); build it with LFADS(..., session_channels=data.model_sessions)")

    def validation_subset(self, max_windows: int) -> "TrainingData":
        """The same data with at most ``max_windows`` validation windows, spread evenly
        (:func:`~nwb_autolfads.train.loop.validation_subset`: what every check evaluates)."""
        idx = torch.as_tensor(validation_subset(self.valid.shape[0], max_windows), device=self.valid.device)
        return replace(self, valid=self.valid[idx],
                       valid_mask=None if self.valid_mask is None else self.valid_mask[idx],
                       valid_session=None if self.valid_session is None else self.valid_session[idx])

    def cpu(self) -> "TrainingData":
        """The same data on the CPU (to send to another process)."""
        return self.to(torch.device("cpu"))

    def to(self, device: torch.device) -> "TrainingData":
        def move(t):
            return None if t is None else t.to(device)
        return replace(self, train=move(self.train), valid=move(self.valid), train_mask=move(self.train_mask),
                       valid_mask=move(self.valid_mask), train_session=move(self.train_session),
                       valid_session=move(self.valid_session))

    def fingerprint_parts(self) -> tuple:
        """What identifies the data in a checkpoint's fingerprint."""
        parts = (self.train, self.valid)
        masks = tuple(m for m in (self.train_mask, self.valid_mask) if m is not None)
        if self.n_sessions == 1:  # (as before sessions existed: a single session's checkpoints still resume)
            return parts + masks
        return parts + masks + (self.train_session, self.valid_session, list(self.session_names),
                                list(self.session_channels))


def _check_session_lists(train, valid, observation: ObservationModel, names) -> None:
    """Raise ValueError unless :meth:`TrainingData.from_sessions` can join these sessions."""
    n = len(names)
    if n == 0 or len(train) != n or len(valid) != n:
        raise ValueError(f"TrainingData.from_sessions: {len(train)} training and {len(valid)} validation window sets "
                         f"for {n} session names: give one of each per session (at least one session)")
    if len(set(map(str, names))) != n:
        raise ValueError(f"TrainingData.from_sessions: session names {list(names)} repeat: give each its own")
    shapes = [(str(nm), tuple(t.shape), tuple(v.shape)) for nm, t, v in zip(names, train, valid)]
    if any(len(t) != 3 or len(v) != 3 or t[0] == 0 or v[0] == 0 or t[1:] != v[1:] for _, t, v in shapes) \
            or len({t[1] for _, t, _ in shapes}) != 1:
        raise ValueError("TrainingData.from_sessions: every session needs training and validation windows "
                         "(windows, bins, channels) with its own channels and the same bins as the others; got "
                         + "; ".join(f"{nm}: train {t}, valid {v}" for nm, t, v in shapes))
    if isinstance(observation, Composite) and len({t[2] for _, t, _ in shapes}) > 1:
        raise ValueError("TrainingData.from_sessions: several modalities (a composite observation model) need the "
                         "same channels in every session; their channel counts differ: "
                         + ", ".join(f"{nm}: {t[2]}" for nm, t, _ in shapes))
