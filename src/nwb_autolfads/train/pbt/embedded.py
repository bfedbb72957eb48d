"""Population-based training of LFADS (AutoLFADS, docs/science.md, Population-based training).

A population of members trains in generations of ``generation_steps`` optimisation steps
(validated every ``train.valid_every`` steps on a fixed, bounded subset of the validation
windows, and at the end of the generation). After each
generation every member is compared with a random other member (binary tournament); if the
other is better (lower smoothed validation NLL), or its own metric is NaN, the member copies the
other's weights, optimizer state, metric and hyperparameters, then *explores*: every
hyperparameter is multiplied by a factor drawn in [1 - w, 1 + w] (redrawn until inside its
bounds). Training stops when the best metric improved by less than ``stop_improvement`` over
``stop_generations`` generations, or at ``max_generations``. The result is the best member seen
(weights and hyperparameters), its training history, and the whole population history.

Embedded executors (``pbt.execution``, chosen by :func:`.resources.choose_execution` when
``auto``): members train one after another in this process, in worker processes, all at once
as one stacked tensor program (:mod:`.stacked`), or as one stacked program per worker process
(a contiguous block of the members each). All give the same population to float
rounding: every member-generation draws its batches, augmentations, dropout masks and posterior
noise from its own generator seeded by (seed, generation, member), never from torch's global RNG,
and every mode validates at the same steps on the same fixed subset. An executor is any object with
``generation(members, n_steps, generation, seed)`` (train every :class:`Member` for ``n_steps``
steps, updating its ``steps``, ``smoothed`` and ``history``) and ``close()``. Every completed generation is checkpointed atomically in
``rundir``; calling :func:`train_population` again with the same ``rundir`` resumes after the
last completed generation and ends with exactly the result of an uninterrupted run (the
population, the PBT random generator and torch's RNG are all part of the checkpoint).

The pure pieces (:func:`initial_hyperparameters`, :func:`explore`, :func:`tournament`,
:func:`should_stop`) are separate so they can be tested and reused by other executors.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import logging
import os
import sys
import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from nwb_autolfads.model.augment import CoordinatedDropout, TemporalShift
from nwb_autolfads.config import AugmentConfig, ModelConfig, PBTConfig, SearchRange, TrainConfig, configured_hyperparameters
from nwb_autolfads.errors import TrainingError
from nwb_autolfads.model.lfads import LFADS
from nwb_autolfads.train.resources import Execution, available_cores, choose_execution, using_threads
from nwb_autolfads.train.loop import TrainResult, WindowSampler, _rng_state, _set_rng_state, evaluate_nll, load_checkpoint, \
    save_checkpoint, train_steps, validation_subset

__all__ = ["initial_hyperparameters", "explore", "tournament", "should_stop", "train_population"]

CHECKPOINT = "pbt_state.pt"
log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------- pure pieces
def _clip(value: float, r: SearchRange) -> float:
    return float(min(max(value, r.low), r.high))


def initial_hyperparameters(ranges: dict[str, SearchRange], defaults: dict[str, float], n: int,
                            rng: np.random.Generator) -> list[dict[str, float]]:
    """Member 0 starts from ``defaults`` (the configured single-model values, clipped to the
    bounds); the others draw every hyperparameter uniformly (log-uniformly for log ranges)
    within its bounds, except the learning rate, which all start at the default
    (docs/science.md, Population-based training)."""
    members = [{k: _clip(defaults[k], r) for k, r in ranges.items()}]
    for _ in range(n - 1):
        hp = {}
        for k, r in ranges.items():
            if k == "lr":
                hp[k] = _clip(defaults[k], r)
            elif r.log:
                hp[k] = float(np.exp(rng.uniform(np.log(r.low), np.log(r.high))))
            else:
                hp[k] = float(rng.uniform(r.low, r.high))
        members.append(hp)
    return members


def explore(hp: dict[str, float], ranges: dict[str, SearchRange], rng: np.random.Generator,
            max_tries: int = 100) -> dict[str, float]:
    """Multiply each hyperparameter by a factor in [1 - w, 1 + w], redrawn until the result is
    inside the bounds (clipped after ``max_tries`` draws, e.g. for a value of 0)."""
    out = {}
    for k, value in hp.items():
        r = ranges[k]
        for _ in range(max_tries):
            new = value * rng.uniform(1.0 - r.weight, 1.0 + r.weight)
            if r.low <= new <= r.high:
                break
        else:
            new = _clip(new, r)
        out[k] = float(new)
    return out


def tournament(scores: list[float], rng: np.random.Generator) -> list[int]:
    """Binary tournament: for each member, the member it copies from (itself if it wins).
    A member copies a random other member when that one's score is lower, or when its own
    score is NaN (and the other's is not)."""
    n = len(scores)
    parents = []
    for i in range(n):
        if n < 2:
            parents.append(i)
            continue
        j = int(rng.integers(n - 1))
        j += j >= i  # a random *other* member
        mine, theirs = scores[i], scores[j]
        if (math.isnan(mine) and not math.isnan(theirs)) or theirs < mine:
            parents.append(j)
        else:
            parents.append(i)
    return parents


def should_stop(best_per_generation: list[float], ratio: float, window: int) -> bool:
    """True when the best score improved by less than ``ratio`` (relative) over the last
    ``window`` generations."""
    if len(best_per_generation) <= window:
        return False
    before, now = best_per_generation[-1 - window], best_per_generation[-1]
    if not (math.isfinite(before) and math.isfinite(now)):
        return False
    return (before - now) < ratio * abs(before)


# ------------------------------------------------------------------------------- members
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


def _train_config(cfg: TrainConfig, hp: dict[str, float]) -> TrainConfig:
    return replace(cfg, lr=hp["lr"], l2_gen_scale=hp["l2_gen_scale"], l2_con_scale=hp["l2_con_scale"],
                   kl_co_scale=hp["kl_co_scale"], kl_ic_scale=hp["kl_ic_scale"])


def _train_generation(member: Member, train_x, valid_x, cfg: TrainConfig, aug: AugmentConfig, n_steps: int,
                      number: int, seed: int) -> None:
    """``n_steps`` optimisation steps of one member (generation ``number``), validated whenever
    the member's own step count reaches a multiple of ``cfg.valid_every`` and after the last step;
    its metric is the smoothed validation NLL (NaN if it diverged: it stops there, keeping the
    weights of its last good step, which ``member.steps`` counts, and the tournament replaces it).
    ``valid_x`` is the fixed validation subset (:func:`.training.validation_subset`).

    Every random draw comes from the member-generation's own ``torch.Generator`` seeded with
    ``seed`` (:func:`_member_seed`): the batches (a permutation drawn afresh each generation, so no
    window is left out for good), augmentations, dropout masks and posterior noise, in the order of
    :func:`.training.train_steps`. So the result does not depend on the execution mode: the
    sequential and process executors run this, and the stacked one (:mod:`.stacked`) draws the same
    numbers in the same order; torch's global RNG is not used."""
    gen = torch.Generator(device=train_x.device).manual_seed(seed)
    tcfg = _train_config(cfg, member.hp)
    cd = CoordinatedDropout(member.hp["cd_rate"])
    shift = TemporalShift(aug.shift_std, aug.shift_max)
    sampler = WindowSampler(train_x.shape[0], cfg.batch_size, generator=gen)
    done = 0
    while done < n_steps:
        n = min(cfg.valid_every - member.steps % cfg.valid_every, n_steps - done)
        sums, k = train_steps(member.model, member.opt, train_x, tcfg, cd, shift, sampler, n, member.steps,
                              generator=gen)
        member.steps += k if sums is not None else k - 1  # a diverged step was not applied
        done += k
        valid = evaluate_nll(member.model, valid_x, graphs=cfg.cuda_graphs) if sums is not None else math.nan
        if sums is None or not math.isfinite(valid):
            member.smoothed = math.nan
            return
        _record_check(member, sums, valid, cfg.smoothing, number)


def _record_check(member: Member, means: dict[str, float], valid: float, smoothing: float, generation: int) -> None:
    """A validation check of ``member``: update its smoothed validation NLL (exponential smoothing,
    the first check taken as is) and append its history row. ``means``: the mean reconstruction
    NLL, KL and L2 terms over the steps since the previous check; ``valid``: this check's NLL."""
    s = member.smoothed
    member.smoothed = valid if math.isnan(s) else smoothing * s + (1 - smoothing) * valid
    member.history.append({"step": member.steps, "train_nll": means["nll"], "valid_nll": valid,
                           "smoothed_valid_nll": member.smoothed, "kl_ic": means["kl_ic"], "kl_co": means["kl_co"],
                           "l2": means["l2"], "lr": member.hp["lr"], "generation": generation})


def _member_seed(seed: int, generation: int, member: int) -> int:
    return int(np.random.SeedSequence([seed, generation, member]).generate_state(1)[0])


# Parallel executor: worker processes (spawned, one torch thread each) keep the data and a model
# skeleton; a task sends a member's state and gets it back trained for one generation.
_WORKER: dict = {}


def _worker_init(n_channels, model_cfg, observation, train_cfg, aug, train_x, valid_x, threads=1) -> None:
    from nwb_autolfads.train.resources import set_threads

    set_threads(threads)
    model = LFADS(n_channels, model_cfg, observation).to(train_x.dtype)  # the caller's precision
    _WORKER.update(model=model, train_cfg=train_cfg, aug=aug, train_x=train_x, valid_x=valid_x,
                   architecture=(n_channels, model_cfg, observation))


def _worker_generation(state: dict, n_steps: int, generation: int, seed: int) -> dict:
    model = _WORKER["model"]
    opt = torch.optim.Adam(model.parameters(), lr=state["hp"]["lr"], eps=_WORKER["train_cfg"].adam_eps)
    member = Member(model, opt, dict(state["hp"]))
    member.load(state)
    _train_generation(member, _WORKER["train_x"], _WORKER["valid_x"], _WORKER["train_cfg"], _WORKER["aug"],
                      n_steps, generation, seed)
    return member.state()


def _worker_stacked_generation(states: list[dict], first: int, n_steps: int, generation: int, seed: int) -> list[dict]:
    """In a worker (``pbt.execution: stacked-processes``): one generation of the block of members
    ``first``, ``first + 1``, ... (their states, of :meth:`Member.state`, packed by :func:`_pack`)
    as one stacked program (:class:`.stacked.StackedExecutor`, the member-generations' seeds by
    population index); returns their trained states, packed. The worker keeps its executor and the
    members' models and optimizers (overwritten by each task's states) between generations."""
    from nwb_autolfads.train.stacked import StackedExecutor

    if "stacked" not in _WORKER:
        n_channels, model_cfg, observation = _WORKER["architecture"]
        _WORKER["stacked"] = StackedExecutor(n_channels, model_cfg, observation, _WORKER["train_cfg"], _WORKER["aug"],
                                             _WORKER["train_x"], _WORKER["valid_x"])
    members = _WORKER.setdefault("members", [])
    while len(members) < len(states):
        model = LFADS(*_WORKER["architecture"]).to(_WORKER["train_x"].dtype)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=_WORKER["train_cfg"].adam_eps)
        members.append(Member(model, opt, {}))
    block = members[:len(states)]
    for member, state in zip(block, states):
        member.load(_unpack(state))
    _WORKER["stacked"].generation(block, n_steps, generation, seed, first=first)
    return [_pack(member.state()) for member in block]


def member_blocks(n: int, workers: int) -> list[range]:
    """The members 0 .. n - 1 in ``workers`` fixed contiguous blocks (``stacked-processes``): block k
    is members ``k * n // workers`` to ``(k + 1) * n // workers - 1`` (sizes differ by at most one;
    no empty block: at most ``n`` blocks)."""
    workers = max(1, min(workers, n))
    return [range(k * n // workers, (k + 1) * n // workers) for k in range(workers)]


def _start_method() -> str:
    """How worker processes start: spawn, a fresh interpreter that imports only torch and the
    model and training modules (the package's import is light, see ``nwb_autolfads/__init__``),
    never the NWB stack (pynwb, hdmf, h5py) nor the data this process read: a forked worker would
    carry all of that (issue 19: 588 MB vs lfads-torch's 451 MB), and neither CUDA nor autograd's
    GPU threads survive a fork. It costs the start of a Python with torch per worker (about a
    second or two), once per run: the pool lives for the whole run."""
    return "spawn"


@contextlib.contextmanager
def _without_main_script():
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
    member-generation by :func:`_train_generation` (its own random stream). ``valid_x``: the
    validation windows; every check evaluates the fixed subset of at most ``train.valid_windows``
    of them (:func:`.training.validation_subset`)."""

    def __init__(self, workers: int, n_channels: int, model_cfg: ModelConfig, observation, train_cfg: TrainConfig,
                 aug: AugmentConfig, train_x: torch.Tensor, valid_x: torch.Tensor, threads: int = 1):
        self.workers, self.pool = workers, None
        valid_x = valid_x[torch.as_tensor(validation_subset(valid_x.shape[0], train_cfg.valid_windows),
                                          device=valid_x.device)]  # (a subset already: unchanged)
        self.args = (train_x, valid_x, train_cfg, aug)
        if workers > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(
                max_workers=workers, initializer=_worker_init, mp_context=multiprocessing.get_context(_start_method()),
                initargs=(n_channels, model_cfg, observation, train_cfg, aug, train_x.cpu(), valid_x.cpu(), threads))
            with _without_main_script():  # start every worker now (each imports torch: a second or two)
                for f in [self.pool.submit(os.getpid) for _ in range(workers)]:
                    f.result()

    def generation(self, members: list[Member], n_steps: int, g: int, seed: int) -> None:
        """Train every member for ``n_steps`` steps of generation ``g`` (seeds from ``seed``)."""
        seeds = [_member_seed(seed, g, k) for k in range(len(members))]
        if self.pool is None:
            train_x, valid_x, train_cfg, aug = self.args
            for m, member_seed in zip(members, seeds):
                _train_generation(m, train_x, valid_x, train_cfg, aug, n_steps, g, member_seed)
            return
        with _without_main_script():  # a worker that died is replaced on submit
            futures = [self.pool.submit(_worker_generation, _to_cpu(m.state()), n_steps, g, member_seed)
                       for m, member_seed in zip(members, seeds)]
        for m, f in zip(members, futures):
            m.load(f.result())

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)


class _SplitExecutor(_Executor):
    """``pbt.execution: stacked-processes``: the members in ``workers`` fixed contiguous blocks
    (:func:`member_blocks`), each block trained for one generation as one stacked program
    (:class:`.stacked.StackedExecutor`) in its own spawned worker process, the workers in
    parallel; exploit/explore stays in the caller (:func:`train_population`), which sends the
    members' states and takes the trained ones back, as :class:`_Executor` does. Members never
    interact and each member-generation draws from its own stream, so the population does not
    depend on the number of workers (to float rounding). ``in_process``: the blocks one after
    another in this process, no workers (tests)."""

    def __init__(self, workers: int, n_channels: int, model_cfg: ModelConfig, observation, train_cfg: TrainConfig,
                 aug: AugmentConfig, train_x: torch.Tensor, valid_x: torch.Tensor, threads: int = 1,
                 in_process: bool = False):
        from nwb_autolfads.train.stacked import StackedExecutor

        super().__init__(1 if in_process else workers, n_channels, model_cfg, observation, train_cfg, aug, train_x,
                         valid_x, threads=threads)
        self.blocks = workers
        self.local = None if self.pool is not None else StackedExecutor(
            n_channels, model_cfg, observation, train_cfg, aug, train_x, self.args[1])

    def generation(self, members: list[Member], n_steps: int, g: int, seed: int) -> None:
        """Train every member for ``n_steps`` steps of generation ``g`` (seeds from ``seed``)."""
        blocks = member_blocks(len(members), self.blocks)
        if self.pool is None:
            for b in blocks:
                self.local.generation(members[b.start:b.stop], n_steps, g, seed, first=b.start)
            return
        with _without_main_script():  # a worker that died is replaced on submit
            futures = [self.pool.submit(_worker_stacked_generation, [_pack(m.state()) for m in members[b.start:b.stop]],
                                        b.start, n_steps, g, seed) for b in blocks]
        for b, f in zip(blocks, futures):
            for m, state in zip(members[b.start:b.stop], f.result()):
                m.load(_unpack(state))


def _stacked_executor(model0: LFADS, model_cfg: ModelConfig, train_cfg: TrainConfig, aug: AugmentConfig,
                      train_x: torch.Tensor, valid_x: torch.Tensor):
    """``pbt.execution: stacked``: :class:`.stacked.StackedExecutor` (the same members, random
    streams, validation checks and history rows as :class:`_Executor`, as one tensor program)."""
    from nwb_autolfads.train.stacked import StackedExecutor

    return StackedExecutor(model0.n_channels, model_cfg, model0.observation, train_cfg, aug, train_x, valid_x)


class _Array:
    """A tensor in transit between processes, as a numpy array (:func:`_pack`)."""

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray):
        self.array = array

    def __reduce__(self):
        return _Array, (self.array,)


def _pack(obj):
    """A member's state (of :meth:`Member.state`) for another process: every tensor as a numpy
    array of the same dtype and values (a pickled torch tensor is written through ``torch.save``
    per storage: ~10x slower, 0.3 s per generation for 20 small members). :func:`_unpack` inverts it
    exactly."""
    if isinstance(obj, torch.Tensor):
        return _Array(obj.detach().cpu().numpy())
    if isinstance(obj, dict):
        return {k: _pack(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_pack(v) for v in obj]
    return obj


def _unpack(obj):
    """Inverse of :func:`_pack` (CPU tensors, sharing the arrays' memory)."""
    if isinstance(obj, _Array):
        return torch.from_numpy(obj.array)
    if isinstance(obj, dict):
        return {k: _unpack(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unpack(v) for v in obj]
    return obj


def _to_cpu(state: dict) -> dict:
    def cpu(obj):
        if isinstance(obj, torch.Tensor):
            return obj.cpu()
        if isinstance(obj, dict):
            return {k: cpu(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [cpu(v) for v in obj]
        return obj
    return cpu(state)


def default_workers(population: int) -> int:
    """Worker processes for ``pbt.workers = 0``: one per core, at most one per member (a single
    process when there is one core or one member)."""
    return max(1, min(population, available_cores()))


def _fingerprint(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, torch.Tensor):
            h.update(p.detach().cpu().contiguous().numpy().tobytes())
        else:
            h.update(json.dumps(p, sort_keys=True, default=str).encode())
    return h.hexdigest()


# ------------------------------------------------------------------------------- the loop
def train_population(make_model: Callable[[], LFADS], train_x: torch.Tensor, valid_x: torch.Tensor,
                     model_cfg: ModelConfig, train_cfg: TrainConfig, aug: AugmentConfig, pbt: PBTConfig,
                     seed: int = 0, rundir: str | Path | None = None, progress: bool = True,
                     on_generation: Callable[[int, list[dict]], None] | None = None,
                     execution: Execution | None = None) -> tuple[LFADS, TrainResult]:
    """Population-based training; returns the best model (weights restored) and a
    :class:`TrainResult` whose ``history`` is the winner's lineage, one row per validation check
    (with its ``step``: the member's steps trained), with
    ``pbt_history`` (one row per generation x member) and ``hyperparameters`` (the winner's).

    ``make_model()`` builds a freshly initialised model (called once per member, in order).
    ``rundir``: where each completed generation is checkpointed; an existing checkpoint of the
    same data and configuration is resumed. ``on_generation(g, rows)`` is called after every
    completed and checkpointed generation. ``execution``: how to train (stacked, worker processes
    or sequential, and the threads), e.g. the choice a plan printed before; by default
    :func:`.resources.choose_execution` chooses from ``pbt.execution``, ``pbt.workers`` and
    ``train.threads``. Every mode gives the same population (each member-generation draws from
    its own random stream, :func:`_train_generation`), to float rounding.
    """
    t0 = time.perf_counter()
    # every check evaluates the same bounded subset of the validation windows
    valid_x = valid_x[torch.as_tensor(validation_subset(valid_x.shape[0], train_cfg.valid_windows),
                                      device=valid_x.device)]
    ranges = pbt.ranges()
    defaults = configured_hyperparameters(model_cfg, train_cfg, aug)
    rng = np.random.default_rng(seed + 7919)
    members = []
    for hp in initial_hyperparameters(ranges, defaults, pbt.population, rng):
        model = make_model()
        opt = torch.optim.Adam(model.parameters(), lr=hp["lr"], eps=train_cfg.adam_eps)
        members.append(Member(model, opt, hp))
        members[-1].apply()
    rows: list[dict] = []
    best_per_generation: list[float] = []
    best: dict | None = None  # state of the best member seen, with its score
    start = 0
    fingerprint = _fingerprint(train_x, valid_x, model_cfg.__dict__, train_cfg.__dict__, aug.__dict__,
                               json.loads(json.dumps(pbt, default=lambda o: o.__dict__)), seed)
    ck_path = Path(rundir) / CHECKPOINT if rundir is not None else None
    if ck_path is not None and ck_path.exists():
        ck = load_checkpoint(ck_path)
        if ck.get("fingerprint") == fingerprint:
            for m, state in zip(members, ck["members"]):
                m.load(state)
            rows, best_per_generation, best = ck["rows"], ck["best_per_generation"], ck["best"]
            start = ck["generation"]
            rng.bit_generator.state = ck["rng"]
            _set_rng_state(ck["torch_rng"])
            t0 -= ck["seconds"]
    bar = tqdm(total=pbt.max_generations, initial=start, desc="PBT", unit="gen", disable=not progress,
               dynamic_ncols=True)
    model0 = members[0].model
    plan = execution if execution is not None else choose_execution(
        pbt.population, model_cfg, model0.n_channels, train_x.device.type, workers=pbt.workers,
        threads=train_cfg.threads, execution=pbt.execution)
    log.info("population training: %s", plan.describe())
    threads = contextlib.ExitStack()
    threads.enter_context(using_threads(plan.threads))
    if plan.mode == "stacked":
        executor = _stacked_executor(model0, model_cfg, train_cfg, aug, train_x, valid_x)
    elif plan.mode == "stacked-processes":
        executor = _SplitExecutor(plan.workers, model0.n_channels, model_cfg, model0.observation, train_cfg, aug,
                                  train_x, valid_x, threads=plan.threads)
    else:
        executor = _Executor(plan.workers if plan.mode == "processes" else 1, model0.n_channels, model_cfg,
                             model0.observation, train_cfg, aug, train_x, valid_x, threads=plan.threads)
    stopped = start > 0 and should_stop(best_per_generation, pbt.stop_improvement, pbt.stop_generations)
    try:
        for g in range(start, pbt.max_generations):
            if stopped:
                break
            executor.generation(members, pbt.generation_steps, g, seed)
            scores = [m.smoothed for m in members]
            finite = [s for s in scores if math.isfinite(s)]
            if not finite:
                raise TrainingError("every member of the population diverged (NaN loss): lower pbt.lr.high or "
                                    "check the input data")
            i_best = int(np.nanargmin(scores))
            if best is None or scores[i_best] < best["score"]:
                best = {"score": scores[i_best], "member": i_best, "generation": g, **members[i_best].state()}
            best_per_generation.append(best["score"])
            parents = tournament(scores, rng)
            for k, (m, s) in enumerate(zip(members, scores)):
                rows.append({"generation": g, "member": k, **m.hp, "metric": s, "steps": m.steps,
                             "parent_member": parents[k] if parents[k] != k else -1,
                             "parent_generation": g if parents[k] != k else -1})
            sources = {p: members[p].state() for k, p in enumerate(parents) if p != k}  # before any copy
            for k, p in enumerate(parents):
                if p != k:
                    members[k].load(sources[p])
                    members[k].hp = explore(sources[p]["hp"], ranges, rng)
                    members[k].apply()
            stopped = should_stop(best_per_generation, pbt.stop_improvement, pbt.stop_generations)
            if ck_path is not None:
                ck_path.parent.mkdir(parents=True, exist_ok=True)
                save_checkpoint(ck_path, {
                    "fingerprint": fingerprint, "generation": g + 1, "members": [m.state() for m in members],
                    "rows": rows, "best_per_generation": best_per_generation, "best": best,
                    "rng": rng.bit_generator.state, "torch_rng": _rng_state(), "seconds": time.perf_counter() - t0})
            if on_generation is not None:
                on_generation(g, rows)
            median = float(np.nanmedian(scores))
            hp = rows[-len(members) + i_best]  # what the generation's best member trained with
            bar.set_postfix(best=f"{best['score']:.4f}", median=f"{median:.4f}", lr=f"{hp['lr']:.1e}",
                            cd=f"{hp['cd_rate']:.2f}", refresh=False)
            bar.update(1)
            if progress:
                bar.write(file=sys.stderr, s=f"generation {g + 1}: best {scores[i_best]:.4f} (member {i_best}: "
                          + ", ".join(f"{k} {hp[k]:.3g}" for k in ranges) + f"), median {median:.4f}")
    finally:
        executor.close()
        threads.close()
        bar.close()
    winner = members[0]
    winner.load(best)
    history = winner.history
    summary = {"population": pbt.population, "generations": len(best_per_generation),
               "best_member": best["member"], "best_generation": best["generation"], "stopped_by_rule": stopped,
               "lineage": lineage(rows, best["member"], best["generation"])}
    result = TrainResult(history=history, best_step=best["steps"], best_valid_nll=best["score"],
                         stopped_early=stopped, seconds=time.perf_counter() - t0, pbt_history=rows,
                         hyperparameters=dict(best["hp"]), pbt_summary=summary, execution=plan.describe())
    return winner.model, result


def lineage(rows: list[dict], member: int, generation: int) -> list[dict]:
    """The chain of (generation, member) whose weights the winner carries, oldest first."""
    by_key = {(r["generation"], r["member"]): r for r in rows}
    chain = []
    g, k = generation, member
    while g >= 0:
        chain.append({"generation": g, "member": k})
        # the member k at generation g was copied from parent_member at the end of generation g - 1
        prev = by_key.get((g - 1, k))
        if prev is not None and prev["parent_member"] >= 0:
            k = prev["parent_member"]
        g -= 1
    return chain[::-1]
