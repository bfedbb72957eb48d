"""The plan printed before training: the budget (members, generations, steps), how training
uses the machine, and an upper bound of the time it takes, from steps timed on the data.

May import: :mod:`nwb_autolfads.config`, :mod:`nwb_autolfads.train` (the execution choice).
"""

from __future__ import annotations

import math

from nwb_autolfads.config import RunConfig
from nwb_autolfads.train.resources import Execution, choose_execution

__all__ = ["training_plan", "stacked_share", "WORKER_START_SECONDS"]


WORKER_START_SECONDS = 6.0
"""Time to start PBT worker processes (spawned, each importing torch), added to the plan's
estimate: measured 2-9 s on 2 shared cores (benchmarks/README.md, threads and processes)."""


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "under 1 s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def stacked_share(population: int, execution: Execution) -> int:
    """Members one stacked program trains: all of them (``stacked``), or the largest block of one
    worker process (``stacked-processes``: :func:`~nwb_autolfads.train.pbt.embedded.member_blocks`)."""
    return -(-population // execution.workers) if execution.mode == "stacked-processes" else population


def _stacked_estimate(p, execution: Execution, per_step: float, member_seconds: float, checks: int,
                      stacked_timing: tuple[float, float] | None) -> tuple[float, str, dict]:
    """(seconds, how, provenance) of a stacked population's training (see :func:`training_plan`):
    one stacked program of all members in this process, or (``stacked-processes``) one per worker
    process, the workers in parallel, so a generation takes as long as the largest block's.
    ``stacked_timing`` is of one stacked program of :func:`stacked_share` members (a block, timed
    alone in this process on the workers' thread count)."""
    split = execution.mode == "stacked-processes"
    share = stacked_share(p.population, execution)
    where = (f"the {p.population} members in {execution.workers} worker processes in parallel, each a block of at "
             f"most {share} members as one stacked program" if split else
             f"the {p.population} members as one stacked program")
    extra: dict = {"members_per_worker": share} if split else {}
    if stacked_timing is None:
        seconds = member_seconds * share
        how = f"{where}, counted as {share} x one model's time (no stacking gain assumed: an upper bound)"
    else:
        st_step, st_check = stacked_timing
        seconds = p.max_generations * (p.generation_steps * st_step + checks * st_check)
        gain = share * per_step / st_step if st_step > 0 else math.nan
        how = (f"{where}: {st_step * 1e3:.0f} ms per step of {'a block' if split else 'all of them'} and "
               f"{st_check * 1e3:.0f} ms per check, timed here on 2 steps ({gain:.1f}x faster than one after "
               "another)")
        extra |= {"seconds_per_stacked_step": st_step, "seconds_per_stacked_check": st_check}
    if split:  # each worker starts fresh (spawned: a Python with torch)
        seconds += WORKER_START_SECONDS
        how += (f"; a block timed alone: the workers share the cores with each other and any other program; plus "
                f"~{WORKER_START_SECONDS:.0f} s to start them")
    return seconds, how, extra


def _budget_and_estimate(cfg: RunConfig, execution: Execution | None, per_step: float, per_check: float,
                         stacked_timing: tuple[float, float] | None) -> tuple[int, str, float, str, dict]:
    """(steps per member, the budget in words, the training time expected at most in seconds,
    how it was estimated, extra provenance) of the plan (see :func:`training_plan`)."""
    t, p = cfg.train, cfg.pbt
    extra: dict = {}
    if p.population > 1:
        steps = p.generation_steps * p.max_generations
        checks_per_generation = -(-p.generation_steps // t.valid_every)
        budget = (f"{p.population} members x at most {p.max_generations} generations x {p.generation_steps} steps "
                  f"(= {steps} steps per member, {p.population * steps} in all; exploit/explore after each generation)")
        member_seconds = p.max_generations * (p.generation_steps * per_step + checks_per_generation * per_check)
        if p.backend == "ray":
            seconds = member_seconds * p.population
            how = "as if one member after another (Ray spreads them over its cluster: less)"
        elif execution.mode in ("stacked", "stacked-processes"):
            seconds, how, extra = _stacked_estimate(p, execution, per_step, member_seconds, checks_per_generation,
                                                    stacked_timing)
        else:
            side_by_side = min(execution.workers if execution.mode == "processes" else 1, p.population)
            seconds = member_seconds * -(-p.population // side_by_side)
            how = (f"{side_by_side} worker processes side by side" if side_by_side > 1 else "one member after another")
            if side_by_side > 1:  # each worker starts fresh (spawned: a Python with torch): measured 2-9 s
                seconds += WORKER_START_SECONDS
                how += f", plus ~{WORKER_START_SECONDS:.0f} s to start them"
    else:
        steps = t.max_steps
        seconds = steps * per_step + -(-steps // t.valid_every) * per_check
        budget = (f"1 model, at most {steps} steps (early stopping after {t.early_stopping_patience} steps without "
                  f"improvement, not before step {max(t.min_steps, t.ramp_steps)})")
        how = "one model"
    return steps, budget, seconds, how, extra


def training_plan(cfg: RunConfig, n_train: int, n_valid: int, device, timing: tuple[float, float],
                  execution: Execution | None = None, stacked_timing: tuple[float, float] | None = None) -> dict:
    """What training will do and an estimate of how long it takes at most, before it starts.

    ``timing``: (seconds per step, seconds per validation check) of one model measured on this
    data (:func:`~nwb_autolfads.train.loop.time_steps`). ``execution``: how training will use the
    machine (:func:`~nwb_autolfads.train.resources.choose_execution`; chosen here from the configuration
    when None, for the embedded backend). ``stacked_timing``: for the stacked mode, (seconds per
    step of all members, seconds per check of all members) measured on this data
    (:func:`~nwb_autolfads.train.stacked.time_stacked`; for ``stacked-processes``, of one worker's block
    of members, the workers taken to run in parallel); without it the stacked estimate assumes no gain
    from stacking (members x one model's time: an upper bound, and said so). The estimate is the
    budget's upper bound (early stopping and the PBT stopping rule usually end sooner) for
    training only; members in worker processes are taken to run side by side. Returns a dict for
    the provenance with the printable block under ``text``."""
    t, p = cfg.train, cfg.pbt
    per_step, per_check = timing
    n_checked = min(n_valid, t.valid_windows)
    per_epoch = -(-n_train // t.batch_size)
    timed = f"{per_step * 1e3:.0f} ms per step and {per_check * 1e3:.0f} ms per check of one model"
    if execution is None and (p.population == 1 or p.backend == "embedded"):
        execution = choose_execution(p.population, cfg.model, 0, device.type, workers=p.workers,  # 0: the width
                                     threads=t.threads, execution=p.execution)  # does not depend on channels
    steps, budget, seconds, how, extra = _budget_and_estimate(cfg, execution, per_step, per_check, stacked_timing)
    lines = [
        "nwb-autolfads plan (before training):",
        f"  windows   {n_train} training / {n_valid} validation ({n_checked} evaluated every {t.valid_every} steps); "
        f"{t.batch_size} windows per step, {per_epoch} steps per pass over the training windows",
        f"  budget    {budget}"]
    shown = execution is not None and not (p.population > 1 and p.backend == "ray")
    if shown:
        lines.append(f"  execution {execution.describe()}")
    lines.append(
        f"  expected  at most {'~' if seconds >= 1 else ''}{_duration(seconds)} of training on {device.type} (an estimate: {timed}, timed here "
        f"on {min(3, steps)} steps; {how}; stopping rules usually end sooner; inference and writing not included)")
    return {"steps_per_member": steps, "members": p.population if p.population > 1 else 1,
            "n_train": n_train, "n_valid_checked": n_checked, "seconds_per_step": per_step,
            "seconds_per_check": per_check, **extra, "expected_training_seconds_at_most": seconds,
            **({"execution": execution.describe()} if shown else {}),
            "text": "\n".join(lines)}
