"""Population-based training on Ray (``pbt.backend: ray``; ``pip install "nwb-autolfads[ray]"``).

The same algorithm as the embedded backend (:mod:`.population`: tournament, explore, stopping rule,
history, checkpoints and resume are all the population's), with the members of every generation
trained in parallel as Ray tasks, so the population spreads over a cluster (``ray start --head`` on
one machine, ``ray start --address=HEAD:6379`` on the others, then ``nwb-autolfads run ...
--backend ray --ray-address HEAD:6379``). Without an address a private local Ray instance is
started, bound to 127.0.0.1, and shut down at the end.

Only Ray's public core API is used (``ray.init``, ``ray.put``, ``ray.remote``, ``ray.get``,
``ray.shutdown``): a task (``pbt.ray_cpus_per_member`` CPUs, ``pbt.ray_gpus_per_member`` GPUs) gets
a member's state, trains it one generation (:func:`.member.train_generation` with the member's own
streams, as the sequential executor does) and returns the trained state. The driver keeps the
population, so on one machine both backends give the same population history.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Callable

import torch

from nwb_autolfads.config import AugmentConfig, ModelConfig, PBTConfig, TrainConfig
from nwb_autolfads.errors import TrainingError
from nwb_autolfads.model.lfads import LFADS
from nwb_autolfads.train.loop import TrainResult
from nwb_autolfads.train.pbt.member import Member, member_streams, pack_state, train_generation_on, unpack_state
from nwb_autolfads.train.pbt.population import Population, evolve, run_fingerprint
from nwb_autolfads.train.pbt.ray_cluster import connect, import_ray
from nwb_autolfads.train.training_data import TrainingData

__all__ = ["train_population_ray", "RayExecutor"]


def _import_ray():
    return import_ray("pbt.backend 'ray' (population-based training on Ray) - or use the default embedded backend -")


# ------------------------------------------------------------------------------- the task
_CACHE: dict = {}
"""In a Ray worker process: the current run's data on the task's device and a model skeleton."""


def _member_generation(data: dict, state: dict, n_steps: int, generation: int, seed: int, index: int) -> dict:
    """A Ray task: train one member (``state``, packed) for one generation; returns its state, packed."""
    if _CACHE.get("run") != data["run"]:  # a worker process is reused across tasks and generations
        torch.set_num_threads(max(1, int(data["threads"])))
        device = torch.device("cuda" if data["gpu"] and torch.cuda.is_available() else "cpu")
        windows: TrainingData = data["data"]
        model = LFADS(windows.n_channels, data["model_cfg"], windows.observation,
                      windows.model_sessions).to(device, windows.train.dtype)
        _CACHE.clear()
        _CACHE.update(run=data["run"], model=model, data=windows.to(device))
    state = unpack_state(state)
    member = Member.fresh(_CACHE["model"], state["hp"], data["train_cfg"].adam_eps)
    member.load(state)
    windows = _CACHE["data"]
    train_generation_on(member, windows, data["train_cfg"], data["aug"], n_steps, generation,
                        member_streams(seed, generation, index, windows.device))
    return pack_state(member.state())


# ------------------------------------------------------------------------------- the executor
class RayExecutor:
    """Trains every member of a generation as a Ray task (the tasks in parallel over the cluster).

    Connects to ``pbt.ray_address``, or starts a private local instance (127.0.0.1, one CPU per
    core) that :meth:`close` shuts down; an instance already running in this process is used as is.
    """

    def __init__(self, data: TrainingData, model_cfg: ModelConfig, train_cfg: TrainConfig, aug: AugmentConfig,
                 pbt: PBTConfig):
        ray = self.ray = _import_ray()
        self.started = connect(ray, pbt.ray_address)
        gpus = float(pbt.ray_gpus_per_member)
        self.data = ray.put({"run": uuid.uuid4().hex, "data": data.cpu(), "model_cfg": model_cfg,
                             "train_cfg": train_cfg, "aug": aug, "gpu": gpus > 0,
                             "threads": pbt.ray_cpus_per_member})
        self.task = ray.remote(_member_generation).options(num_cpus=pbt.ray_cpus_per_member, num_gpus=gpus,
                                                           max_retries=0)

    def generation(self, members: list[Member], n_steps: int, generation: int, seed: int) -> None:
        """Train every member for ``n_steps`` steps of ``generation`` (member k's streams
        :func:`.member.member_streams` (seed, generation, k)), as parallel Ray tasks.

        Raises
        ------
        TrainingError
            A task failed (its error is named).
        """
        refs = [self.task.remote(self.data, pack_state(m.state()), n_steps, generation, seed, k)
                for k, m in enumerate(members)]
        try:
            states = self.ray.get(refs)
        except self.ray.exceptions.RayError as exc:
            raise TrainingError(f"a PBT member failed on Ray: {str(exc).strip().splitlines()[-1]}") from None
        for m, state in zip(members, states):
            m.load(unpack_state(state))

    def close(self) -> None:
        """Shut down the private Ray instance this executor started."""
        if self.started:
            self.ray.shutdown()
            self.started = False


def train_population_ray(make_model: Callable[[], LFADS], data: TrainingData, model_cfg: ModelConfig, train_cfg: TrainConfig, aug: AugmentConfig, pbt: PBTConfig,
                         seed: int = 0, rundir: str | Path | None = None, progress: bool = True,
                         on_generation: Callable[[int, list[dict]], None] | None = None) -> tuple[LFADS, TrainResult]:
    """:func:`nwb_autolfads.train.pbt.embedded.train_population` with the members trained as Ray
    tasks (same arguments and result; ``pbt_summary["backend"]`` is ``"ray"``).

    Raises
    ------
    ConfigError
        Ray is not installed.
    TrainingError
        Every member diverged, or a Ray task failed.
    """
    _import_ray()  # a missing Ray fails before any training
    data = data.validation_subset(train_cfg.valid_windows)  # what every check evaluates
    population = Population.initial(make_model, model_cfg, train_cfg, aug, pbt, seed)
    data.check_model(population.members[0].model)
    model, result = evolve(population, lambda: RayExecutor(data, model_cfg, train_cfg, aug, pbt),
                           seed, run_fingerprint(data, model_cfg, train_cfg, aug, pbt, seed),
                           rundir=rundir, progress=progress, on_generation=on_generation, desc="PBT (Ray)")
    result.pbt_summary["backend"] = "ray"
    result.execution = (f"ray: {pbt.population} members as Ray tasks ({pbt.ray_cpus_per_member} CPU"
                        + (f", {pbt.ray_gpus_per_member} GPU" if pbt.ray_gpus_per_member else "") + " each)")
    return model, result
