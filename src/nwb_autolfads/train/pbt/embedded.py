"""The embedded executors of population-based training (``pbt.backend: embedded``): how the members
of a :class:`.population.Population` train for a generation on this machine.

``pbt.execution`` (chosen by :func:`nwb_autolfads.train.resources.choose_execution` when ``auto``):
members train one after another in this process (``sequential``), in worker processes
(``processes``), all at once as one stacked tensor program (``stacked``,
:mod:`nwb_autolfads.train.stacked`), or as one stacked program per worker process
(``stacked-processes``, a contiguous block of the members each). All give the same population to
float rounding: every member-generation draws its batches, augmentations, dropout masks and
posterior noise from its own streams (:func:`.member.member_streams`), never from torch's global
RNG, and every mode validates at the same steps on the same fixed subset. The algorithm itself
(tournament, explore, stopping rule, checkpoints) is :mod:`.population`'s.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Callable

import torch

from nwb_autolfads.config import AugmentConfig, ModelConfig, PBTConfig, TrainConfig
from nwb_autolfads.model.lfads import LFADS
from nwb_autolfads.train.loop import TrainResult
from nwb_autolfads.train.pbt.member import Member, member_streams, pack_state, to_cpu, train_generation_on, unpack_state
from nwb_autolfads.train.pbt.population import Population, evolve, run_fingerprint
from nwb_autolfads.train.training_data import TrainingData
from nwb_autolfads.train.resources import (Execution, available_cores, choose_execution, refuse_stacked_sessions,
                                           reusing_freed_memory, using_threads)

__all__ = ["train_population", "member_blocks", "default_workers", "start_method", "without_main_script"]

log = logging.getLogger(__name__)


# Parallel executor: worker processes (spawned, one torch thread each) keep the data and a model
# skeleton; a task sends a member's state and gets it back trained for one generation.
_WORKER: dict = {}


def _worker_init(data: TrainingData, model_cfg, train_cfg, aug, threads=1) -> None:
    from nwb_autolfads.train.resources import end_with_parent, reuse_freed_memory_for_good, set_threads

    end_with_parent()  # a worker whose run was killed does not linger
    set_threads(threads)
    reuse_freed_memory_for_good()  # a worker only trains: keep freed buffers for the next step
    architecture = (data.n_channels, model_cfg, data.observation, data.model_sessions)
    model = LFADS(*architecture).to(data.train.dtype)  # the caller's precision
    _WORKER.update(model=model, train_cfg=train_cfg, aug=aug, data=data, architecture=architecture)


def _worker_generation(state: dict, n_steps: int, generation: int, seed: int, index: int) -> dict:
    model = _WORKER["model"]
    opt = torch.optim.Adam(model.parameters(), lr=state["hp"]["lr"], eps=_WORKER["train_cfg"].adam_eps)
    member = Member(model, opt, dict(state["hp"]))
    member.load(state)
    data = _WORKER["data"]
    train_generation_on(member, data, _WORKER["train_cfg"], _WORKER["aug"], n_steps, generation,
                        member_streams(seed, generation, index, data.device))
    return member.state()


def _worker_stacked_generation(states: list[dict], first: int, n_steps: int, generation: int, seed: int) -> list[dict]:
    """In a worker (``pbt.execution: stacked-processes``): one generation of the block of members
    ``first``, ``first + 1``, ... (their states, of :meth:`Member.state`, packed by :func:`.member.pack_state`)
    as one stacked program (:class:`.stacked.StackedExecutor`, the member-generations' seeds by
    population index); returns their trained states, packed. The worker keeps its executor and the
    members' models and optimizers (overwritten by each task's states) between generations."""
    from nwb_autolfads.train.stacked import StackedExecutor

    if "stacked" not in _WORKER:
        _WORKER["stacked"] = StackedExecutor(_WORKER["data"], _WORKER["architecture"][1], _WORKER["train_cfg"],
                                             _WORKER["aug"])
    members = _WORKER.setdefault("members", [])
    while len(members) < len(states):
        model = LFADS(*_WORKER["architecture"]).to(_WORKER["data"].train.dtype)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=_WORKER["train_cfg"].adam_eps)
        members.append(Member(model, opt, {}))
    block = members[:len(states)]
    for member, state in zip(block, states):
        member.load(unpack_state(state))
    _WORKER["stacked"].generation(block, n_steps, generation, seed, first=first)
    return [pack_state(member.state()) for member in block]


def member_blocks(n: int, workers: int) -> list[range]:
    """The members 0 .. n - 1 in ``workers`` fixed contiguous blocks (``stacked-processes``): block k
    is members ``k * n // workers`` to ``(k + 1) * n // workers - 1`` (sizes differ by at most one;
    no empty block: at most ``n`` blocks)."""
    workers = max(1, min(workers, n))
    return [range(k * n // workers, (k + 1) * n // workers) for k in range(workers)]


def start_method() -> str:
    """How worker processes start: spawn, a fresh interpreter that imports only torch and the
    model and training modules (the package's import is light, see ``nwb_autolfads/__init__``),
    never the NWB stack (pynwb, hdmf, h5py) nor the data this process read: a forked worker would
    carry all of that (issue 19: 588 MB vs lfads-torch's 451 MB), and neither CUDA nor autograd's
    GPU threads survive a fork. It costs the start of a Python with torch per worker (about a
    second or two), once per run: the pool lives for the whole run."""
    return "spawn"


@contextlib.contextmanager
def without_main_script():
    """Start worker processes that do not run the caller's script: a spawned child imports the
    ``__main__`` module by its file (``multiprocessing`` does so to find functions defined there)
    and so would start the caller's own work again in every worker when a script calls
    :func:`~nwb_autolfads.run` without an ``if __name__ == "__main__":`` guard, and import what
    it imports (the NWB stack). The workers need only this package's functions, so ``__main__``
    is hidden from ``multiprocessing`` while workers start."""
    main = sys.modules.get("__main__")
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if main is not None and k in main.__dict__}
    try:
        if "__file__" in saved:
            del main.__file__
        if "__spec__" in saved:
            main.__spec__ = None
        yield
    finally:
        if main is not None:
            main.__dict__.update(saved)


class _Executor:
    """Trains every member for one generation, in this process or in ``workers`` processes, each
    member-generation by :func:`.member.train_generation` (its own random stream). Every check
    evaluates the fixed subset of at most ``train.valid_windows`` of ``data``'s validation windows
    (:meth:`~nwb_autolfads.train.training_data.TrainingData.validation_subset`)."""

    def __init__(self, workers: int, data: TrainingData, model_cfg: ModelConfig, train_cfg: TrainConfig,
                 aug: AugmentConfig, threads: int = 1):
        self.workers, self.pool = workers, None
        data = data.validation_subset(train_cfg.valid_windows)  # (a subset already: unchanged)
        self.data, self.train_cfg, self.aug = data, train_cfg, aug
        if workers > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(
                max_workers=workers, initializer=_worker_init, mp_context=multiprocessing.get_context(start_method()),
                initargs=(data.cpu(), model_cfg, train_cfg, aug, threads))
            with without_main_script():  # start every worker now (each imports torch: a second or two)
                for f in [self.pool.submit(os.getpid) for _ in range(workers)]:
                    f.result()

    def generation(self, members: list[Member], n_steps: int, g: int, seed: int) -> None:
        """Train every member for ``n_steps`` steps of generation ``g`` (seeds from ``seed``)."""
        if self.pool is None:
            for k, m in enumerate(members):
                train_generation_on(m, self.data, self.train_cfg, self.aug, n_steps, g,
                                    member_streams(seed, g, k, self.data.device))
            return
        with without_main_script():  # a worker that died is replaced on submit
            futures = [self.pool.submit(_worker_generation, to_cpu(m.state()), n_steps, g, seed, k)
                       for k, m in enumerate(members)]
        for m, f in zip(members, futures):
            m.load(f.result())

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


class _SplitExecutor(_Executor):
    """``pbt.execution: stacked-processes``: the members in ``workers`` fixed contiguous blocks
    (:func:`member_blocks`), each block trained for one generation as one stacked program
    (:class:`.stacked.StackedExecutor`) in its own spawned worker process, the workers in
    parallel; exploit/explore stays in the caller (:class:`.population.Population`), which sends the
    members' states and takes the trained ones back, as :class:`_Executor` does. Members never
    interact and each member-generation draws from its own stream, so the population does not
    depend on the number of workers (to float rounding). ``in_process``: the blocks one after
    another in this process, no workers (tests)."""

    def __init__(self, workers: int, data: TrainingData, model_cfg: ModelConfig, train_cfg: TrainConfig,
                 aug: AugmentConfig, threads: int = 1, in_process: bool = False):
        from nwb_autolfads.train.stacked import StackedExecutor

        super().__init__(1 if in_process else workers, data, model_cfg, train_cfg, aug, threads=threads)
        self.blocks = workers
        self.local = None if self.pool is not None else StackedExecutor(self.data, model_cfg, train_cfg, aug)

    def generation(self, members: list[Member], n_steps: int, g: int, seed: int) -> None:
        """Train every member for ``n_steps`` steps of generation ``g`` (seeds from ``seed``)."""
        blocks = member_blocks(len(members), self.blocks)
        if self.pool is None:
            for b in blocks:
                self.local.generation(members[b.start:b.stop], n_steps, g, seed, first=b.start)
            return
        with without_main_script():  # a worker that died is replaced on submit
            futures = [self.pool.submit(_worker_stacked_generation, [pack_state(m.state()) for m in members[b.start:b.stop]],
                                        b.start, n_steps, g, seed) for b in blocks]
        for b, f in zip(blocks, futures):
            for m, state in zip(members[b.start:b.stop], f.result()):
                m.load(unpack_state(state))




def default_workers(population: int) -> int:
    """Worker processes for ``pbt.workers = 0``: one per core, at most one per member (a single
    process when there is one core or one member)."""
    return max(1, min(population, available_cores()))


def _executor_for(plan: Execution, data: TrainingData, model_cfg: ModelConfig, train_cfg: TrainConfig,
                  aug: AugmentConfig):
    """The embedded executor of ``plan.mode``: ``stacked`` is :class:`.stacked.StackedExecutor` (the
    same members, random streams, validation checks and history rows as :class:`_Executor`, as one
    tensor program)."""
    if plan.mode == "stacked":
        from nwb_autolfads.train.stacked import StackedExecutor

        return StackedExecutor(data, model_cfg, train_cfg, aug)
    if plan.mode == "stacked-processes":
        return _SplitExecutor(plan.workers, data, model_cfg, train_cfg, aug, threads=plan.threads)
    return _Executor(plan.workers if plan.mode == "processes" else 1, data, model_cfg, train_cfg, aug,
                     threads=plan.threads)


def train_population(make_model: Callable[[], LFADS], data: TrainingData, model_cfg: ModelConfig, train_cfg: TrainConfig, aug: AugmentConfig, pbt: PBTConfig,
                     seed: int = 0, rundir: str | Path | None = None, progress: bool = True,
                     on_generation: Callable[[int, list[dict]], None] | None = None,
                     execution: Execution | None = None) -> tuple[LFADS, TrainResult]:
    """Population-based training (:func:`.population.evolve`) with an embedded executor on
    ``data`` (:class:`~nwb_autolfads.train.training_data.TrainingData`); returns the best model
    (weights restored) and its :class:`~nwb_autolfads.train.loop.TrainResult`.

    ``make_model()`` builds a freshly initialised model (called once per member, in order).
    ``rundir``: where each completed generation is checkpointed; an existing checkpoint of the
    same data and configuration is resumed. ``on_generation(g, rows)`` is called after every
    completed and checkpointed generation. ``execution``: how to train (stacked, worker processes
    or sequential, and the threads), e.g. the choice a plan printed before; by default
    :func:`~nwb_autolfads.train.resources.choose_execution` chooses from ``pbt.execution``,
    ``pbt.workers`` and ``train.threads``. Every mode gives the same population, to float rounding.
    """
    data = data.validation_subset(train_cfg.valid_windows)  # what every check evaluates
    population = Population.initial(make_model, model_cfg, train_cfg, aug, pbt, seed)
    data.check_model(population.members[0].model)
    plan = execution if execution is not None else choose_execution(
        pbt.population, model_cfg, data.n_channels, data.device.type, workers=pbt.workers,
        threads=train_cfg.threads, execution=pbt.execution, sessions=data.n_sessions)
    refuse_stacked_sessions(plan.mode, data.n_sessions)  # a plan given by the caller
    log.info("population training: %s", plan.describe())
    # stacked in this process: its large buffers reused across steps and generations (see there)
    heap = reusing_freed_memory() if plan.mode == "stacked" else contextlib.nullcontext()
    with using_threads(plan.threads), heap:
        model, result = evolve(population, lambda: _executor_for(plan, data, model_cfg, train_cfg, aug), seed,
                               run_fingerprint(data, model_cfg, train_cfg, aug, pbt, seed), rundir=rundir,
                               progress=progress, on_generation=on_generation)
    result.execution = plan.describe()
    return model, result
