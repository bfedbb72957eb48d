"""The seed tree: one random generator per purpose, derived from the run's seed.

Every random draw of training comes from a generator named by its purpose and its place
(``SeedSequence(seed, spawn_key=(purpose, *key))``), never from the order of draws on a shared
global generator, so adding a draw for one purpose leaves every other purpose's numbers as they
were, and a member's numbers do not depend on which executor (or process) trains it.

Purposes and their keys:

- ``init`` (member k): a model's initial weights (member 0 is the single model);
- ``batches``, ``augment``, ``noise`` (generation g, member k; none for a single model): the
  training batches (window order), the augmentations (temporal shifts, coordinated-dropout masks),
  and the model's own draws (dropout masks, posterior samples) - a :class:`Streams`;
- ``sample_validation``: the elements held out for sample validation (single model);
- ``pbt``: the population's initial hyperparameters, tournament and explore draws;
- ``inference``: posterior samples at inference;
- ``calibration``: the noise probes that measure what the model follows (:func:`~nwb_autolfads.evaluation.calibration.copied_noise`).

A single model's ``noise`` is the device's default torch generator, seeded from the tree when
training starts: its training pass may be replayed from a CUDA graph, which draws from it.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["PURPOSES", "SeedTree", "Streams"]

PURPOSES = ("init", "batches", "augment", "noise", "sample_validation", "pbt", "inference", "calibration")


@dataclass
class Streams:
    """The training streams of one model or member-generation: ``batches`` (window order),
    ``augment`` (shifts, coordinated dropout), ``noise`` (dropout masks and posterior samples;
    None: torch's default generator, as a CUDA-graph replay needs)."""

    batches: torch.Generator
    augment: torch.Generator
    noise: torch.Generator | None

    @classmethod
    def single(cls, generator: torch.Generator) -> "Streams":
        """Every purpose drawn from one generator (in the order of the training step)."""
        return cls(generator, generator, generator)

    def state(self) -> dict:
        """The generators' states (uint8 tensors), for a checkpoint."""
        return {k: g.get_state() for k, g in (("batches", self.batches), ("augment", self.augment),
                                              ("noise", self.noise)) if g is not None}

    def load(self, state: dict) -> None:
        for key, value in state.items():
            getattr(self, key).set_state(value)


class SeedTree:
    """The generators of a run seeded ``seed`` (module docstring).

    Raises
    ------
    KeyError
        An unknown purpose.
    """

    def __init__(self, seed: int):
        self.seed = int(seed)

    def sequence(self, purpose: str, *key: int) -> np.random.SeedSequence:
        """The seed sequence of ``purpose`` at ``key``."""
        if purpose not in PURPOSES:
            raise KeyError(f"unknown seed purpose {purpose!r}: one of {', '.join(PURPOSES)}")
        return np.random.SeedSequence(self.seed, spawn_key=(PURPOSES.index(purpose), *(int(k) for k in key)))

    def integer(self, purpose: str, *key: int) -> int:
        """A 63-bit seed for ``purpose`` at ``key``."""
        return int(self.sequence(purpose, *key).generate_state(1, np.uint64)[0] >> np.uint64(1))

    def numpy(self, purpose: str, *key: int) -> np.random.Generator:
        return np.random.default_rng(self.sequence(purpose, *key))

    def torch(self, purpose: str, *key: int, device: torch.device | str = "cpu") -> torch.Generator:
        return torch.Generator(device=device).manual_seed(self.integer(purpose, *key))

    def streams(self, *key: int, device: torch.device | str = "cpu", noise: bool = True) -> Streams:
        """The :class:`Streams` at ``key`` (a member-generation: (generation, member)); ``noise=False``:
        the model's draws from torch's default generator (seed it with :meth:`seed_default_noise`)."""
        return Streams(self.torch("batches", *key, device=device), self.torch("augment", *key, device=device),
                       self.torch("noise", *key, device=device) if noise else None)

    def seed_default_noise(self, *key: int) -> None:
        """Seed torch's default generators (every device) with the ``noise`` seed at ``key``."""
        torch.manual_seed(self.integer("noise", *key))

    @contextlib.contextmanager
    def initialising(self, member: int = 0):
        """Within: torch's default generator is the ``init`` stream of ``member`` (a model built
        here draws its initial weights from it); afterwards it is as it was."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.integer("init", member))
            yield
