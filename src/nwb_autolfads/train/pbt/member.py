"""One population member and one member-generation of training, shared by every PBT executor.

A :class:`Member` is a model, its Adam optimizer, its hyperparameters, its step count, its
smoothed validation metric and its history rows. :func:`train_generation` trains one member for
one generation from its own random streams (:func:`member_streams`): the sequential, process and Ray
executors run it, and the stacked executor (:mod:`nwb_autolfads.train.stacked`) draws the same
numbers in the same order. :func:`pack_state` / :func:`unpack_state` carry a member's state to
another process (worker or Ray task) as numpy arrays.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from nwb_autolfads.config import AugmentConfig, TrainConfig
from nwb_autolfads.model.augment import CoordinatedDropout, TemporalShift
from nwb_autolfads.model.lfads import LFADS
from nwb_autolfads.train.loop import WindowSampler, evaluate_nll, train_steps
from nwb_autolfads.train.seeds import SeedTree, Streams

if TYPE_CHECKING:
    from nwb_autolfads.train.training_data import TrainingData

__all__ = ["Member", "train_config", "train_generation", "train_generation_on", "record_check", "member_streams", "pack_state", "unpack_state",
           "to_cpu"]


@dataclass
class Member:
    model: LFADS
    opt: torch.optim.Optimizer
    hp: dict[str, float]
    steps: int = 0
    """Optimisation steps trained so far (across generations and copies: the KL/L2 ramp runs on it)."""
    smoothed: float = math.nan
    history: list[dict] = field(default_factory=list)

    def apply(self) -> None:
        """Make the hyperparameters effective in the model and the optimizer."""
        for group in self.opt.param_groups:
            group["lr"] = self.hp["lr"]
        for module in self.model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = self.hp["dropout"]

    def state(self) -> dict:
        """An independent copy of the member: tensors and plain types only (``model``, ``opt``:
        state dicts; ``hp``, ``steps``, ``smoothed``, ``history``)."""
        return {"model": copy.deepcopy(self.model.state_dict()), "opt": copy.deepcopy(self.opt.state_dict()),
                "hp": dict(self.hp), "steps": self.steps, "smoothed": self.smoothed,
                "history": copy.deepcopy(self.history)}

    def load(self, state: dict) -> None:
        """Take over ``state`` (of :meth:`state`) as an independent copy. The optimizer state is
        deep-copied: ``Optimizer.load_state_dict`` keeps the given moment tensors themselves, so
        two members that exploit the same parent would otherwise share (and both update) one
        Adam state."""
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(copy.deepcopy(state["opt"]))
        self.hp, self.steps, self.smoothed = dict(state["hp"]), state["steps"], state["smoothed"]
        self.history = copy.deepcopy(state["history"])
        self.apply()

    @classmethod
    def fresh(cls, model: LFADS, hp: dict[str, float], adam_eps: float) -> "Member":
        """A member of ``model`` with a new Adam optimizer and ``hp`` made effective."""
        member = cls(model, torch.optim.Adam(model.parameters(), lr=hp["lr"], eps=adam_eps), dict(hp))
        member.apply()
        return member


def train_config(cfg: TrainConfig, hp: dict[str, float]) -> TrainConfig:
    """``cfg`` with a member's learning rate and KL/L2 weights."""
    return replace(cfg, lr=hp["lr"], l2_gen_scale=hp["l2_gen_scale"], l2_con_scale=hp["l2_con_scale"],
                   kl_co_scale=hp["kl_co_scale"], kl_ic_scale=hp["kl_ic_scale"])


def member_streams(seed: int, generation: int, member: int, device: torch.device | str = "cpu") -> Streams:
    """The random streams (batches, augmentations, the model's draws) of member ``member`` in
    generation ``generation`` of a run seeded ``seed``: the same in every executor
    (:meth:`nwb_autolfads.train.seeds.SeedTree.streams`)."""
    return SeedTree(seed).streams(generation, member, device=device)


def train_generation(member: Member, train_x: torch.Tensor, valid_x: torch.Tensor, cfg: TrainConfig,
                     aug: AugmentConfig, n_steps: int, number: int, streams: Streams, *,
                     train_mask: torch.Tensor | None = None, train_session: torch.Tensor | None = None,
                     valid_mask: torch.Tensor | None = None, valid_session: torch.Tensor | None = None) -> None:
    """``n_steps`` optimisation steps of one member (generation ``number``), validated whenever
    the member's own step count reaches a multiple of ``cfg.valid_every`` and after the last step;
    its metric is the smoothed validation NLL (NaN if it diverged: it stops there, keeping the
    weights of its last good step, which ``member.steps`` counts, and the tournament replaces it).
    ``valid_x`` is the fixed validation subset (:func:`nwb_autolfads.train.loop.validation_subset`).

    Every random draw comes from the member-generation's own ``streams`` (:func:`member_streams`):
    the batches (a permutation drawn afresh each generation, so no window is left out for good),
    augmentations, dropout masks and posterior noise, in the order of
    :func:`nwb_autolfads.train.loop.train_steps`. So the result does not depend on the execution
    mode; torch's global RNG is not used.

    ``train_mask``, ``train_session``, ``valid_mask``, ``valid_session``: the data's masks and
    sessions of the windows (:class:`~nwb_autolfads.train.training_data.TrainingData`; several
    sessions), as :func:`nwb_autolfads.train.loop.train_steps` and
    :func:`~nwb_autolfads.train.loop.evaluate_nll` take them. :func:`train_generation_on` passes
    them from a :class:`~nwb_autolfads.train.training_data.TrainingData`."""
    tcfg = train_config(cfg, member.hp)
    cd = CoordinatedDropout(member.hp["cd_rate"])
    shift = TemporalShift(aug.shift_std, aug.shift_max)
    sampler = WindowSampler(train_x.shape[0], cfg.batch_size, generator=streams.batches)
    done = 0
    while done < n_steps:
        n = min(cfg.valid_every - member.steps % cfg.valid_every, n_steps - done)
        sums, k = train_steps(member.model, member.opt, train_x, tcfg, cd, shift, sampler, n, member.steps,
                              streams=streams, mask=train_mask, session=train_session)
        member.steps += k if sums is not None else k - 1  # a diverged step was not applied
        done += k
        valid = evaluate_nll(member.model, valid_x, graphs=cfg.cuda_graphs, mask=valid_mask,
                             session=valid_session) if sums is not None else math.nan
        if sums is None or not math.isfinite(valid):
            member.smoothed = math.nan
            return
        record_check(member, sums, valid, cfg.smoothing, number)


def train_generation_on(member: Member, data: "TrainingData", cfg: TrainConfig, aug: AugmentConfig, n_steps: int,
                        number: int, streams: Streams) -> None:
    """:func:`train_generation` on ``data``'s training windows and validation windows (the fixed
    subset: ``data`` is already :meth:`~nwb_autolfads.train.training_data.TrainingData.validation_subset`),
    with its masks and sessions."""
    train_generation(member, data.train, data.valid, cfg, aug, n_steps, number, streams,
                     train_mask=data.train_mask, train_session=data.train_session, valid_mask=data.valid_mask,
                     valid_session=data.valid_session)


def record_check(member: Member, means: dict[str, float], valid: float, smoothing: float, generation: int) -> None:
    """A validation check of ``member``: update its smoothed validation NLL (exponential smoothing,
    the first check taken as is) and append its history row. ``means``: the mean reconstruction
    NLL, KL and L2 terms over the steps since the previous check; ``valid``: this check's NLL."""
    s = member.smoothed
    member.smoothed = valid if math.isnan(s) else smoothing * s + (1 - smoothing) * valid
    member.history.append({"step": member.steps, "train_nll": means["nll"], "valid_nll": valid,
                           "smoothed_valid_nll": member.smoothed, "kl_ic": means["kl_ic"], "kl_co": means["kl_co"],
                           "l2": means["l2"], "lr": member.hp["lr"], "generation": generation})


# ------------------------------------------------------------------------------- transport
class _Array:
    """A tensor in transit between processes, as a numpy array (:func:`pack_state`)."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray):
        self.array = array

    def __reduce__(self):
        return _Array, (self.array,)


def _map_leaves(obj, kind: type, fn):
    """``obj`` (nested dicts and lists) with every leaf of type ``kind`` replaced by ``fn(leaf)``."""
    if isinstance(obj, kind):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: _map_leaves(v, kind, fn) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_map_leaves(v, kind, fn) for v in obj]
    return obj


def pack_state(obj):
    """A member's state (of :meth:`Member.state`) for another process: every tensor as a numpy
    array of the same dtype and values (a pickled torch tensor is written through ``torch.save``
    per storage: ~10x slower, 0.3 s per generation for 20 small members). :func:`unpack_state`
    inverts it exactly."""
    return _map_leaves(obj, torch.Tensor, lambda t: _Array(t.detach().cpu().numpy()))


def unpack_state(obj):
    """Inverse of :func:`pack_state` (CPU tensors, sharing the arrays' memory; a read-only array,
    e.g. from Ray's object store, is copied)."""
    return _map_leaves(obj, _Array, lambda a: torch.from_numpy(a.array if a.array.flags.writeable else a.array.copy()))


def to_cpu(obj):
    """``obj`` (nested dicts and lists) with every tensor on the CPU."""
    return _map_leaves(obj, torch.Tensor, lambda t: t.cpu())
