"""Population-based training of LFADS (AutoLFADS; docs/science.md, Population-based training): the algorithm, whatever trains
the members.

A population of members trains in generations of ``generation_steps`` optimisation steps
(validated every ``train.valid_every`` steps on a fixed, bounded subset of the validation
windows, and at the end of the generation). After each generation every member is compared with
a random other member (binary tournament); if the other is better (lower smoothed validation
NLL), or its own metric is NaN, the member copies the other's weights, optimizer state, metric
and hyperparameters, then *explores*: every hyperparameter is multiplied by a factor drawn in
[1 - w, 1 + w] (redrawn until inside its bounds). Training stops when the best metric improved
by less than ``stop_improvement`` over ``stop_generations`` generations, or at
``max_generations``. The result is the best member seen (weights and hyperparameters), its
training history, and the whole population history.

:class:`Population` holds all of that state (members, the PBT random generator, history rows,
best member, stopping rule) with :meth:`Population.state_dict` / :meth:`Population.load_state_dict`
for resuming. :func:`evolve` drives the generations: an *executor* trains every member for one
generation (``generation(members, n_steps, generation, seed)``, updating each member's
``steps``, ``smoothed`` and ``history``; then ``close()``), the population ranks, records,
exploits and explores, and every completed generation is checkpointed atomically in ``rundir``
(tensors and plain types only, read back with ``weights_only=True``); calling again with the same
``rundir`` resumes after the last completed generation and ends with exactly the result of an
uninterrupted run. The executors are in :mod:`.embedded` (sequential, worker processes, stacked)
and :mod:`.ray_executor` (Ray tasks).

The pure pieces (:func:`initial_hyperparameters`, :func:`explore`, :func:`tournament`,
:func:`should_stop`, :func:`lineage`) are separate so they can be tested on their own.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from nwb_autolfads.config import AugmentConfig, ModelConfig, PBTConfig, SearchRange, TrainConfig, \
    configured_hyperparameters
from nwb_autolfads.errors import TrainingError
from nwb_autolfads.model.lfads import LFADS
from nwb_autolfads.train.loop import TrainResult, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from nwb_autolfads.train.pbt.member import Member
from nwb_autolfads.train.seeds import SeedTree

if TYPE_CHECKING:
    from nwb_autolfads.train.training_data import TrainingData

__all__ = ["initial_hyperparameters", "explore", "tournament", "should_stop", "lineage", "fingerprint", "run_fingerprint",
           "Population", "Executor", "evolve", "CHECKPOINT"]

CHECKPOINT = "pbt_state.pt"


# ------------------------------------------------------------------------------- pure pieces
def _clip(value: float, r: SearchRange) -> float:
    return float(min(max(value, r.low), r.high))


def initial_hyperparameters(ranges: dict[str, SearchRange], defaults: dict[str, float], n: int,
                            rng: np.random.Generator) -> list[dict[str, float]]:
    """Member 0 starts from ``defaults`` (the configured single-model values, clipped to the
    bounds); the others draw every hyperparameter uniformly (log-uniformly for log ranges)
    within its bounds, except the learning rate, which all start at the default."""
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


def fingerprint(*parts) -> str:
    """SHA-256 of tensors (their bytes) and JSON-able parts: which data and settings a checkpoint
    belongs to."""
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, torch.Tensor):
            h.update(p.detach().cpu().contiguous().numpy().tobytes())
        else:
            h.update(json.dumps(p, sort_keys=True, default=str).encode())
    return h.hexdigest()


def run_fingerprint(data: "TrainingData", model_cfg: ModelConfig, train_cfg: TrainConfig, aug: AugmentConfig,
                    pbt: PBTConfig, seed: int) -> str:
    """The fingerprint of a population run's data and settings (its checkpoint's key)."""
    return fingerprint(*data.fingerprint_parts(), model_cfg.__dict__, train_cfg.__dict__, aug.__dict__,
                       json.loads(json.dumps(pbt, default=lambda o: o.__dict__)), seed)


# ------------------------------------------------------------------------------- the population
@dataclass
class GenerationOutcome:
    """What one generation gave: every member's metric (NaN: diverged) and the best member."""

    number: int
    scores: list[float]
    best_member: int


class Population:
    """The members and the algorithm's state: the PBT random generator (initial draws, tournament,
    explore), the history rows (one per generation x member), the best metric per generation, the
    best member-generation seen (its state and score) and the next generation to train.

    Parameters
    ----------
    members : the members, in population order.
    ranges : the search range of every hyperparameter (``PBTConfig.ranges()``).
    rng : the PBT random generator.
    pbt : the population settings (generation cap, stopping rule).
    """

    def __init__(self, members: list[Member], ranges: dict[str, SearchRange], rng: np.random.Generator,
                 pbt: PBTConfig):
        self.members, self.ranges, self.rng, self.pbt = members, ranges, rng, pbt
        self.rows: list[dict] = []
        self.best_per_generation: list[float] = []
        self.best: dict | None = None  # the state of the best member seen, with score, member, generation
        self.generation = 0

    @classmethod
    def initial(cls, make_model: Callable[[], LFADS], model_cfg: ModelConfig, train_cfg: TrainConfig,
                aug: AugmentConfig, pbt: PBTConfig, seed: int) -> "Population":
        """``pbt.population`` members: hyperparameters drawn from the ``pbt`` generator of the
        run's seed tree (:func:`initial_hyperparameters` around the configured values), models
        from ``make_model()`` (called once per member, in order, with torch's default generator
        on member k's ``init`` stream), fresh Adam optimizers."""
        tree = SeedTree(seed)
        rng = tree.numpy("pbt")
        ranges = pbt.ranges()
        defaults = configured_hyperparameters(model_cfg, train_cfg, aug)
        hps = initial_hyperparameters(ranges, defaults, pbt.population, rng)
        members = []
        for k, hp in enumerate(hps):
            with tree.initialising(k):  # member k's initial weights from its own stream
                model = make_model()
            members.append(Member.fresh(model, hp, train_cfg.adam_eps))
        return cls(members, ranges, rng, pbt)

    @property
    def stopped_by_rule(self) -> bool:
        """The stopping rule (:func:`should_stop`) holds on the best metric per generation."""
        return should_stop(self.best_per_generation, self.pbt.stop_improvement, self.pbt.stop_generations)

    @property
    def finished(self) -> bool:
        """No generation is left: the cap is reached or the stopping rule holds."""
        return self.generation >= self.pbt.max_generations or self.stopped_by_rule

    def conclude_generation(self) -> GenerationOutcome:
        """After every member trained the current generation: note the best member, write the
        history rows, then exploit (tournament) and explore, and move to the next generation.

        Raises
        ------
        TrainingError
            Every member diverged (NaN metric).
        """
        g, members = self.generation, self.members
        scores = [m.smoothed for m in members]
        if not any(math.isfinite(s) for s in scores):
            raise TrainingError("every member of the population diverged (NaN loss): lower pbt.lr.high or "
                                "check the input data")
        i_best = int(np.nanargmin(scores))
        if self.best is None or scores[i_best] < self.best["score"]:
            self.best = {"score": scores[i_best], "member": i_best, "generation": g, **members[i_best].state()}
        self.best_per_generation.append(self.best["score"])
        parents = tournament(scores, self.rng)
        for k, (m, s) in enumerate(zip(members, scores)):
            self.rows.append({"generation": g, "member": k, **m.hp, "metric": s, "steps": m.steps,
                              "parent_member": parents[k] if parents[k] != k else -1,
                              "parent_generation": g if parents[k] != k else -1})
        self._exploit_and_explore(parents)
        self.generation += 1
        return GenerationOutcome(g, scores, i_best)

    def _exploit_and_explore(self, parents: list[int]) -> None:
        """Every member whose parent is another copies it and explores its hyperparameters (in
        member order: the order of the random draws)."""
        sources = {p: self.members[p].state() for k, p in enumerate(parents) if p != k}  # before any copy
        for k, p in enumerate(parents):
            if p != k:
                self.members[k].load(sources[p])
                self.members[k].hp = explore(sources[p]["hp"], self.ranges, self.rng)
                self.members[k].apply()

    def state_dict(self) -> dict:
        """Everything needed to continue (tensors and plain types only)."""
        return {"generation": self.generation, "members": [m.state() for m in self.members], "rows": self.rows,
                "best_per_generation": self.best_per_generation, "best": self.best,
                "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state`` (of :meth:`state_dict`)."""
        for m, member_state in zip(self.members, state["members"]):
            m.load(member_state)
        self.rows, self.best_per_generation, self.best = state["rows"], state["best_per_generation"], state["best"]
        self.generation = state["generation"]
        self.rng.bit_generator.state = state["rng"]

    def winner(self) -> Member:
        """Member 0 with the state of the best member-generation seen.

        Raises
        ------
        TrainingError
            No generation was completed.
        """
        if self.best is None:
            raise TrainingError("population training ended before its first generation: see the log above")
        winner = self.members[0]
        winner.load(self.best)
        return winner

    def summary(self) -> dict:
        """Population size, generations, winner, whether the stopping rule ended it, lineage."""
        best = self.best
        return {"population": self.pbt.population, "generations": len(self.best_per_generation),
                "best_member": best["member"], "best_generation": best["generation"],
                "stopped_by_rule": self.stopped_by_rule, "lineage": lineage(self.rows, best["member"],
                                                                             best["generation"])}


# ------------------------------------------------------------------------------- the driver
class Executor(Protocol):
    """Trains every member of a population for one generation (how: :mod:`.embedded`,
    :mod:`.ray_executor`)."""

    def generation(self, members: list[Member], n_steps: int, generation: int, seed: int) -> None:
        """Train each member ``n_steps`` steps (member k of generation g draws from
        :func:`.member.member_streams` (seed, g, k)), updating its weights, optimizer, ``steps``,
        ``smoothed`` and ``history``."""

    def close(self) -> None:
        """Release processes or clusters."""


class _Progress:
    """The progress bar and the per-generation line (stderr)."""

    def __init__(self, population: Population, progress: bool, desc: str):
        self.population, self.progress = population, progress
        self.bar = tqdm(total=population.pbt.max_generations, initial=population.generation, desc=desc, unit="gen",
                        disable=not progress, dynamic_ncols=True)

    def generation_done(self, outcome: GenerationOutcome) -> None:
        pop, scores, i_best = self.population, outcome.scores, outcome.best_member
        median = float(np.nanmedian(scores))
        hp = pop.rows[-len(pop.members) + i_best]  # what the generation's best member trained with
        self.bar.set_postfix(best=f"{pop.best['score']:.4f}", median=f"{median:.4f}", lr=f"{hp['lr']:.1e}",
                             cd=f"{hp['cd_rate']:.2f}", refresh=False)
        self.bar.update(1)
        if self.progress:
            self.bar.write(file=sys.stderr, s=f"generation {outcome.number + 1}: best {scores[i_best]:.4f} (member "
                           f"{i_best}: " + ", ".join(f"{k} {hp[k]:.3g}" for k in pop.ranges) + f"), median {median:.4f}")

    def close(self) -> None:
        self.bar.close()


def _resume(population: Population, path: Path | None, run_fingerprint: str) -> float:
    """Load ``path`` into ``population`` if it is a checkpoint of the same run (fingerprint);
    returns the seconds the run had trained before (0 when starting afresh)."""
    if path is None or not path.exists():
        return 0.0
    ck = load_checkpoint(path)
    if ck.get("fingerprint") != run_fingerprint:
        return 0.0  # another run's state: start afresh (and overwrite it)
    population.load_state_dict(ck["population"])
    set_rng_state(ck["torch_rng"])
    return float(ck["seconds"])


def evolve(population: Population, make_executor: Callable[[], Executor], seed: int, run_fingerprint: str,
           rundir: str | Path | None = None, progress: bool = True,
           on_generation: Callable[[int, list[dict]], None] | None = None, desc: str = "PBT"
           ) -> tuple[LFADS, TrainResult]:
    """Train ``population`` generation by generation until it is :attr:`~Population.finished`;
    returns the best model (weights restored) and a :class:`~nwb_autolfads.train.loop.TrainResult`
    whose ``history`` is the winner's lineage, one row per validation check, with ``pbt_history``
    (one row per generation x member), ``hyperparameters`` (the winner's) and ``pbt_summary``.

    Parameters
    ----------
    population : the initial population (or one to continue).
    make_executor : builds what trains the members (called once, only if a generation is left).
    seed : the run's seed (the members' random streams derive from it).
    run_fingerprint : identifies the data and settings (:func:`fingerprint`): a checkpoint in
        ``rundir`` with another fingerprint is not resumed.
    rundir : where each completed generation is checkpointed (``pbt_state.pt``), and resumed from.
    on_generation : ``on_generation(g, rows)`` after every completed and checkpointed generation.

    Raises
    ------
    TrainingError
        Every member diverged.
    StateFormatError
        ``rundir`` holds a checkpoint of another format (another version): kept, nothing trains.
    """
    t0 = time.perf_counter()
    ck_path = Path(rundir) / CHECKPOINT if rundir is not None else None
    t0 -= _resume(population, ck_path, run_fingerprint)
    bar = _Progress(population, progress, desc)
    executor = None
    try:
        while not population.finished:
            executor = executor or make_executor()
            executor.generation(population.members, population.pbt.generation_steps, population.generation, seed)
            outcome = population.conclude_generation()
            if ck_path is not None:
                ck_path.parent.mkdir(parents=True, exist_ok=True)
                save_checkpoint(ck_path, {"fingerprint": run_fingerprint, "population": population.state_dict(),
                                          "torch_rng": rng_state(), "seconds": time.perf_counter() - t0})
            if on_generation is not None:
                on_generation(outcome.number, population.rows)
            bar.generation_done(outcome)
    finally:
        if executor is not None:
            executor.close()
        bar.close()
    best = population.best
    winner = population.winner()
    result = TrainResult(history=winner.history, best_step=best["steps"], best_valid_nll=best["score"],
                         stopped_early=population.stopped_by_rule, seconds=time.perf_counter() - t0,
                         pbt_history=population.rows, hyperparameters=dict(best["hp"]),
                         pbt_summary=population.summary())
    return winner.model, result
