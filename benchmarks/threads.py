"""Threads and processes for training: what a second intra-op thread and worker processes buy.

    python benchmarks/threads.py [--steps 30] [--population 4] [--steps-per-generation 16]

Two model sizes, on random data:

- emg: the quick preset's sizes (encoders 32, controller 32, generator 64, 2 inputs), 16 Gamma
  channels, 50-bin windows, batch 16 (50k parameters);
- reference: the 300k-parameter configuration of benchmarks/model_speed.py (30 Poisson
  channels, 50-bin windows, batch 32, encoders and controller 64, generator 200, 100 factors).

Table 1: milliseconds per training step (median of ``--steps``) with 1 and 2 torch intra-op
threads in one process. Table 2: wall time of one PBT generation of ``--population`` members x
``--steps-per-generation`` steps, members one after another in this process with 1 or 2
threads, vs spread over 2 worker processes with 1 thread each (the pool started beforehand:
its start is printed apart). Run it on a machine with no other load; on a shared machine the
numbers move by tens of per cent.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402

from nwb_autolfads.model.augment import CoordinatedDropout, TemporalShift  # noqa: E402
from nwb_autolfads.config import AugmentConfig, ModelConfig, TrainConfig  # noqa: E402
from nwb_autolfads.model.lfads import LFADS  # noqa: E402
from nwb_autolfads.model.observations import Gamma, Poisson  # noqa: E402
from nwb_autolfads.train.resources import available_cores  # noqa: E402

CONFIGS = {
    "emg": dict(channels=16, T=50, batch=16, obs="gamma",
                model=dict(ic_enc_dim=32, ci_enc_dim=32, con_dim=32, co_dim=2, ic_dim=32, gen_dim=64, factor_dim=12)),
    "reference": dict(channels=30, T=50, batch=32, obs="poisson",
                      model=dict(ic_enc_dim=64, ci_enc_dim=64, con_dim=64, co_dim=4, ic_dim=64, gen_dim=200,
                                 factor_dim=100)),
}


def _data(c: dict, n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    if c["obs"] == "poisson":
        return torch.poisson(torch.full((n, c["T"], c["channels"]), 0.3), generator=g)
    return torch.rand((n, c["T"], c["channels"]), generator=g) + 0.05


def _model(c: dict) -> LFADS:
    torch.manual_seed(0)
    return LFADS(c["channels"], ModelConfig(**c["model"]), Poisson() if c["obs"] == "poisson" else Gamma())


def step_ms(name: str, threads: int, steps: int) -> float:
    """Median milliseconds of one training step (forward, backward, Adam) with ``threads`` threads."""
    from nwb_autolfads.train.loop import WindowSampler, train_steps

    c = CONFIGS[name]
    torch.set_num_threads(threads)
    model = _model(c)
    cfg = TrainConfig(batch_size=c["batch"], ramp_steps=0)  # KL and L2 fully weighted
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    cd, shift = CoordinatedDropout(0.3), TemporalShift(1.0, 3)
    x = _data(c, c["batch"])  # one batch: every step takes all of it
    sampler = WindowSampler(x.shape[0], c["batch"])
    times = []
    for k in range(steps + 3):
        t = time.perf_counter()
        train_steps(model, opt, x, cfg, cd, shift, sampler, 1)
        if k >= 3:
            times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


def generation_s(name: str, population: int, steps: int, workers: int, threads: int) -> tuple[float, float]:
    """Wall seconds of one generation (and of starting the worker pool) with ``workers`` x ``threads``."""
    from nwb_autolfads.train.pbt.embedded import _Executor
    from nwb_autolfads.train.pbt.member import Member
    from nwb_autolfads.train.training_data import TrainingData

    c = CONFIGS[name]
    torch.set_num_threads(threads)
    x = _data(c, c["batch"] * steps + 8)
    tx, vx = x[:-8], x[-8:]
    cfg = TrainConfig(batch_size=c["batch"], valid_every=steps)  # one validation per member-generation
    members = []
    for _ in range(population):
        m = _model(c)
        members.append(Member(m, torch.optim.Adam(m.parameters(), lr=1e-3), {"lr": 1e-3, "dropout": 0.1,
                              "cd_rate": 0.3, "l2_gen_scale": 1e-3, "l2_con_scale": 1e-3, "kl_co_scale": 1e-4,
                              "kl_ic_scale": 1e-4}))
    t = time.perf_counter()
    ex = _Executor(workers, TrainingData(tx, vx, members[0].model.observation), ModelConfig(**c["model"]), cfg,
                   AugmentConfig(), threads=threads)
    if ex.pool is not None:  # start every worker before timing
        list(ex.pool.map(abs, range(workers)))
    start = time.perf_counter() - t
    try:
        ex.generation(members, steps, 0, 0)  # warm-up (first steps allocate)
        t = time.perf_counter()
        ex.generation(members, steps, 1, 0)
        return time.perf_counter() - t, start
    finally:
        ex.close()


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=30, help="steps timed per setting (table 1)")
    p.add_argument("--population", type=int, default=4)
    p.add_argument("--steps-per-generation", type=int, default=16)
    p.add_argument("--only", choices=sorted(CONFIGS), default=None)
    args = p.parse_args(argv)
    names = [args.only] if args.only else list(CONFIGS)
    cores = available_cores()
    print(f"{cores} cores available (affinity and cgroup quota); torch {torch.__version__}")
    print()
    print("| model | parameters | 1 thread (ms/step) | 2 threads (ms/step) | 2 threads vs 1 |")
    print("| --- | --- | --- | --- | --- |")
    for name in names:
        n_params = sum(q.numel() for q in _model(CONFIGS[name]).parameters())
        one, two = step_ms(name, 1, args.steps), step_ms(name, 2, args.steps)
        print(f"| {name} | {n_params / 1e3:.0f}k | {one:.1f} | {two:.1f} | {one / two:.2f}x faster |", flush=True)
    print()
    P, S = args.population, args.steps_per_generation
    print(f"One PBT generation: {P} members x {S} steps (one validation each)")
    print()
    print("| model | 1 process x 1 thread (s) | 1 process x 2 threads (s) | 2 workers x 1 thread (s) | "
          "workers vs 2 threads | pool start (s) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in names:
        seq1, _ = generation_s(name, P, S, 1, 1)
        seq2, _ = generation_s(name, P, S, 1, 2)
        par, start = generation_s(name, P, S, 2, 1)
        print(f"| {name} | {seq1:.2f} | {seq2:.2f} | {par:.2f} | {seq2 / par:.2f}x faster | {start:.1f} |", flush=True)


if __name__ == "__main__":
    main()
