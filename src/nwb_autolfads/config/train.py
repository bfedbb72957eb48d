"""The sections of training: ``train`` (optimisation, regularisation, budgets, threads) and ``pbt``
(population-based training: population, generations, executors, and the search range of each
hyperparameter it tunes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from nwb_autolfads.config.checks import check

if TYPE_CHECKING:
    from nwb_autolfads.config.model import AugmentConfig, ModelConfig

__all__ = ["TrainConfig", "SearchRange", "PBTConfig", "PBT_HYPERPARAMETERS", "configured_hyperparameters"]


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and regularisation (docs/science.md, Training objective)."""

    max_steps: int = 2000
    """Largest number of optimisation steps (batches of ``batch_size`` windows) one model trains;
    a population uses ``pbt.generation_steps`` per generation instead. A budget in steps costs
    the same on a 1-minute and a 1-hour recording (an epoch is ceil(training windows /
    batch_size) steps)."""
    min_steps: int = 200
    """Steps trained before early stopping may stop training."""
    batch_size: int = 32
    """Windows per training step."""
    lr: float = 4e-3
    """Initial learning rate of Adam."""
    lr_min: float = 1e-5
    """The learning rate is never decayed below this."""
    lr_decay: float = 0.95
    """Factor applied to the learning rate when the validation NLL stalls."""
    lr_patience: int = 6
    """Validation checks (one every ``valid_every`` steps) without improvement before the
    learning rate is decayed."""
    adam_eps: float = 1e-8
    """Epsilon of Adam."""
    max_grad_norm: float = 200.0
    """Gradients are clipped to this global norm (of the scaled loss)."""
    loss_scale: float = 1e4
    """The optimised loss is multiplied by this (gradient clipping acts on that scale)."""
    kl_ic_scale: float = 1e-4
    """Weight of the KL penalty of the initial conditions."""
    kl_co_scale: float = 1e-4
    """Weight of the KL penalty of the inferred inputs."""
    l2_gen_scale: float = 1e-3
    """Weight of the L2 penalty of the generator's recurrent weights."""
    l2_con_scale: float = 1e-3
    """Weight of the L2 penalty of the controller's recurrent weights."""
    ramp_steps: int = 200
    """KL and L2 weights ramp linearly from 0 to 1 over this many steps."""
    early_stopping_patience: int = 200
    """Stop when the smoothed validation NLL has not improved for this many steps (checked
    after ``min_steps`` and the ramp)."""
    valid_every: int = 10
    """Steps between two validation checks (each check evaluates the ``valid_windows`` subset)."""
    valid_windows: int = 256
    """Validation evaluates a fixed subset of at most this many validation windows, spread
    evenly over the recording and chosen once, so a check costs the same on any recording."""
    smoothing: float = 0.7
    """Exponential smoothing factor of the validation NLL (weight of the previous value)."""
    cuda_graphs: bool = True
    """On a GPU, replay each training step's forward and backward pass from a CUDA graph
    (:mod:`nwb_autolfads.train.cudagraphs`); no effect on the CPU. False runs every kernel eagerly."""
    threads: int = 0
    """Torch intra-op threads of each training process (the run's own, and each PBT worker's).
    0 (auto): chosen by :func:`nwb_autolfads.train.resources.choose_execution` from the model's size and
    the cores this process may use (CPU affinity and cgroup quota): one per process for the small
    recurrent models of EMG, which are latency-bound (a second thread costs a core and gains
    little; see benchmarks/threads.py), and never more than cores // workers. A number > 0 is
    used as given, still capped so that workers x threads <= the cores available."""

    def __post_init__(self) -> None:
        check(self.max_steps >= 1, "train.max_steps", self.max_steps, "use an integer >= 1")
        check(0 <= self.min_steps, "train.min_steps", self.min_steps, "use an integer >= 0")
        check(self.batch_size >= 1, "train.batch_size", self.batch_size, "use an integer >= 1")
        check(0 < self.lr < 1, "train.lr", self.lr, "use a learning rate in (0, 1), e.g. 4e-3")
        check(0 <= self.lr_min <= self.lr, "train.lr_min", self.lr_min, "use a value in [0, train.lr]")
        check(0 < self.lr_decay <= 1, "train.lr_decay", self.lr_decay, "use a factor in (0, 1]")
        check(self.lr_patience >= 1, "train.lr_patience", self.lr_patience, "use an integer >= 1")
        check(self.adam_eps > 0, "train.adam_eps", self.adam_eps, "use a small positive value")
        check(self.max_grad_norm > 0, "train.max_grad_norm", self.max_grad_norm, "use a positive norm")
        check(self.loss_scale > 0, "train.loss_scale", self.loss_scale, "use a positive factor")
        for name in ("kl_ic_scale", "kl_co_scale", "l2_gen_scale", "l2_con_scale"):
            check(getattr(self, name) >= 0, f"train.{name}", getattr(self, name), "use a value >= 0")
        check(self.ramp_steps >= 0, "train.ramp_steps", self.ramp_steps, "use an integer >= 0")
        check(self.early_stopping_patience >= 1, "train.early_stopping_patience",
              self.early_stopping_patience, "use an integer >= 1 (steps)")
        check(self.valid_every >= 1, "train.valid_every", self.valid_every,
              "use an integer >= 1 (steps between validation checks)")
        check(self.valid_windows >= 1, "train.valid_windows", self.valid_windows,
              "use an integer >= 1 (validation windows evaluated per check)")
        check(0 <= self.smoothing < 1, "train.smoothing", self.smoothing, "use a factor in [0, 1)")
        check(self.threads >= 0, "train.threads", self.threads,
              "use 0 (chosen from the model size and the cores available) or a number of threads >= 1")


@dataclass(frozen=True)
class SearchRange:
    """Bounds and explore weight of one hyperparameter tuned by population-based training."""

    low: float
    """Smallest value PBT may give the hyperparameter."""
    high: float
    """Largest value PBT may give the hyperparameter."""
    log: bool = False
    """Initial values of the population are drawn log-uniformly (else uniformly) in [low, high]."""
    weight: float = 0.3
    """Explore multiplies the value by a factor drawn uniformly in [1 - weight, 1 + weight]."""

    def check(self, key: str) -> None:
        check(self.low <= self.high, f"{key}.low", self.low, f"use low <= high ({self.high})")
        check(self.low > 0 or not self.log, f"{key}.low", self.low, "a log range needs low > 0")
        check(0 < self.weight < 1, f"{key}.weight", self.weight, "use an explore weight in (0, 1), e.g. 0.3")


# The hyperparameters PBT tunes, and the config key each one sets.
PBT_HYPERPARAMETERS = {"lr": "train.lr", "dropout": "model.dropout", "cd_rate": "augment.cd_rate",
                       "l2_gen_scale": "train.l2_gen_scale", "l2_con_scale": "train.l2_con_scale",
                       "kl_co_scale": "train.kl_co_scale", "kl_ic_scale": "train.kl_ic_scale"}


def configured_hyperparameters(model: "ModelConfig", train: "TrainConfig", augment: "AugmentConfig") -> dict[str, float]:
    """The values the configuration gives the hyperparameters PBT tunes (``PBT_HYPERPARAMETERS``):
    what a single model trains with, and where member 0 of a population starts."""
    sections = {"model": model, "train": train, "augment": augment}
    out = {}
    for name, key in PBT_HYPERPARAMETERS.items():
        section, field_name = key.split(".")
        out[name] = float(getattr(sections[section], field_name))
    return out


@dataclass(frozen=True)
class PBTConfig:
    """Population-based training (docs/science.md, Population-based training). ``population: 1`` trains one model
    with the configured hyperparameters (``train``/``model``/``augment``) instead."""

    population: int = 20
    """Members trained in parallel and tuned together; 1 trains one model."""
    generation_steps: int = 100
    """Optimisation steps every member trains between two exploit/explore steps (the member is
    validated every ``train.valid_every`` steps and at the end of the generation)."""
    max_generations: int = 40
    """Largest number of generations."""
    stop_improvement: float = 0.0005
    """Stop when the best metric improved by less than this fraction over ``stop_generations``."""
    stop_generations: int = 4
    """Generations over which ``stop_improvement`` is measured."""
    workers: int = 0
    """Processes that train members in parallel (one torch thread each); 0: one per core (at
    most one per member; for ``stacked-processes`` chosen by ``auto``, one per idle core); 1: all
    members in this process. Each member-generation has its own
    seed, so only thread-count effects on float sums (last bits) can differ between settings."""
    execution: str = "auto"
    """How the embedded backend trains a generation: ``stacked`` (all members as one vectorised
    tensor program, :mod:`nwb_autolfads.train.stacked`: for small models, where one member's step is
    overhead, not arithmetic, in this process), ``stacked-processes`` (the members split into
    ``workers`` contiguous blocks, each block one stacked program in its own worker process, the
    workers in parallel: ``auto``'s choice for small models on 2 or more idle cores), ``processes``
    (``workers`` processes, a member per task), ``sequential`` (one member after another in this
    process) or ``auto`` (:func:`nwb_autolfads.train.resources.choose_execution`: by model size, cores,
    device and ``workers``). Every mode gives the same population for a
    seed, to float rounding (each member-generation has its own random stream)."""
    backend: str = "embedded"
    """``embedded`` (this machine, nothing to start) or ``ray`` (Ray: a private local Ray
    instance, or the cluster at ``ray_address``; needs ``pip install "nwb-autolfads[ray]"``)."""
    ray_address: str | None = None
    """Address of a running Ray cluster (``HEAD:6379``, or ``auto``); None starts a local one."""
    ray_cpus_per_member: int = 1
    """CPUs (and torch threads) each member's task gets on Ray."""
    ray_gpus_per_member: float = 0.0
    """GPUs each member's task gets on Ray (fractions share a GPU); 0 trains on CPU."""
    lr: SearchRange = SearchRange(1e-5, 5e-3, log=True, weight=0.3)
    dropout: SearchRange = SearchRange(0.0, 0.6, weight=0.3)
    cd_rate: SearchRange = SearchRange(0.01, 0.7, weight=0.3)
    l2_gen_scale: SearchRange = SearchRange(1e-4, 1.0, log=True, weight=0.8)
    l2_con_scale: SearchRange = SearchRange(1e-4, 1.0, log=True, weight=0.8)
    kl_co_scale: SearchRange = SearchRange(1e-6, 1e-4, log=True, weight=0.8)
    kl_ic_scale: SearchRange = SearchRange(1e-6, 1e-3, log=True, weight=0.8)

    def __post_init__(self) -> None:
        check(self.population >= 1, "pbt.population", self.population, "use an integer >= 1 (1: a single model)")
        check(self.generation_steps >= 1, "pbt.generation_steps", self.generation_steps, "use an integer >= 1")
        check(self.max_generations >= 1, "pbt.max_generations", self.max_generations, "use an integer >= 1")
        check(self.stop_improvement >= 0, "pbt.stop_improvement", self.stop_improvement, "use a fraction >= 0")
        check(self.stop_generations >= 1, "pbt.stop_generations", self.stop_generations, "use an integer >= 1")
        check(self.workers >= 0, "pbt.workers", self.workers, "use 0 (one per core), 1 (no extra processes) or more")
        check(self.execution in ("auto", "stacked", "stacked-processes", "processes", "sequential"), "pbt.execution",
              self.execution, "use 'auto', 'stacked' (one vectorised program), 'stacked-processes' (one per worker "
              "process), 'processes' or 'sequential'")
        check(self.backend in ("embedded", "ray"), "pbt.backend", self.backend, "use 'embedded' or 'ray'")
        check(self.ray_cpus_per_member >= 1, "pbt.ray_cpus_per_member", self.ray_cpus_per_member,
              "use an integer >= 1")
        check(self.ray_gpus_per_member >= 0, "pbt.ray_gpus_per_member", self.ray_gpus_per_member, "use a value >= 0")
        for name in PBT_HYPERPARAMETERS:
            getattr(self, name).check(f"pbt.{name}")
        check(self.dropout.high < 1, "pbt.dropout.high", self.dropout.high, "use a rate < 1")
        check(self.cd_rate.high < 1, "pbt.cd_rate.high", self.cd_rate.high, "use a rate < 1")

    def ranges(self) -> dict[str, SearchRange]:
        return {name: getattr(self, name) for name in PBT_HYPERPARAMETERS}
