"""Cost of population-based training per generation, for populations of 1, 8 and 20.

    python benchmarks/pbt_speed.py [--populations 1 8 20] [--steps 10] [--windows 200] [--config reference]
                                   [--workers 0]
    python benchmarks/pbt_speed.py --stacked [--members 20] [--steps 10] [--threads 1 2]
                                   [--stacked-configs emg-small reference]
    python benchmarks/pbt_speed.py --split [--members 20] [--steps 10] [--workers 2] [--repeats 3]
                                   [--stacked-configs emg-small]
    python benchmarks/pbt_speed.py --sweep [--sizes 1 2 4 10 20] [--steps 10] [--repeats 3]
                                   [--stacked-configs emg-small emg]

Trains ``nwb_autolfads.train.pbt.embedded.train_population`` (the embedded executor) for one generation of
``--steps`` optimisation steps on random data shaped like the reference configuration of
benchmarks/model_speed.py (30 Poisson channels, 50-bin windows, batch 32, generator 200,
100 factors; 4 in 5 windows train) or the EMG configuration, and prints wall time per
generation, member-steps per second and the ratio to a population of 1. ``--workers``: the
``pbt.workers`` setting (0: one process per core; 1: every member in this process).

``--stacked`` (issue 19, item 3) instead times one generation of ``--steps`` training steps (and a
validation on 64 windows) three ways, for each configuration and torch thread count: one member
alone (``pbt.member.train_generation``), ``--members`` members one after another (the same), and
the same members as one stacked tensor program (``stacked.StackedExecutor``); it prints wall and
CPU seconds and the ratios. ``emg-small`` is the EMG model of the issue (12 channels, 100 bins,
batch 16, 64-unit generator, 32-unit encoders and controller), ``reference`` the 200-unit model.

``--split`` (issue 19, item 3) times, interleaved ``--repeats`` times (loads vary 30%+ on a shared
machine: the ratios within one round are what to compare), one generation of one member alone,
of ``--members`` members as one stacked program in this process (``pbt.execution: stacked``),
and of the same members split into ``--workers`` worker processes of one stacked block each
(``stacked-processes``: ``pbt._SplitExecutor``, the workers started and warmed up before, as a
run does once), all on one torch thread per process; it prints each round's wall and CPU seconds
and ratios to one member (the split's CPU: this process's plus its slowest worker's, the
critical path: what a generation takes when every worker has a core to itself), and the
1-minute load average before each round.

``--sweep`` (issue 19, item 3: where the floor is) times, on one torch thread, one generation of
stacked blocks of each of ``--sizes`` members against one member's generation, interleaved
``--repeats`` times, and prints per block size the CPU seconds per member relative to one member
alone (what stacking leaves of a member's cost: the rest is per-call overhead it removed), the page
faults per generation, and what that fraction implies for 20 members on 2 cores (20 x fraction /
2, one stacked block per core) against the issue's target of 5x one member.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from nwb_autolfads.config import build_config
from nwb_autolfads.model.lfads import LFADS
from nwb_autolfads.model.observations import Gamma, Poisson
from nwb_autolfads.train.training_data import TrainingData
from nwb_autolfads.train.pbt.embedded import train_population

CONFIGS = {
    "reference": dict(channels=30, T=50, obs="poisson",
                      model={"ic_enc_dim": 64, "ci_enc_dim": 64, "con_dim": 64, "co_dim": 4, "ic_dim": 64,
                             "gen_dim": 200, "factor_dim": 100}),
    "emg": dict(channels=12, T=100, obs="gamma",
                model={"ic_enc_dim": 64, "ci_enc_dim": 64, "con_dim": 64, "co_dim": 2, "ic_dim": 64, "gen_dim": 64,
                       "factor_dim": 9}),
    "emg-small": dict(channels=12, T=100, obs="gamma", batch=16,
                      model={"ic_enc_dim": 32, "ci_enc_dim": 32, "con_dim": 32, "co_dim": 2, "ic_dim": 32,
                             "gen_dim": 64, "factor_dim": 9}),
}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--populations", type=int, nargs="+", default=[1, 8, 20])
    p.add_argument("--steps", type=int, default=10, help="steps per generation (pbt.generation_steps)")
    p.add_argument("--windows", type=int, default=200)
    p.add_argument("--config", choices=sorted(CONFIGS), default="reference")
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--stacked", action="store_true", help="time a stacked generation against sequential members")
    p.add_argument("--members", type=int, default=20, help="--stacked: population size")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="--stacked: torch thread counts")
    p.add_argument("--stacked-configs", nargs="+", choices=sorted(CONFIGS),
                   help="--stacked: default emg-small reference; --split: default emg-small")
    p.add_argument("--split", action="store_true",
                   help="time one member, a stacked generation and the same split over --workers processes")
    p.add_argument("--repeats", type=int, default=3, help="--split, --sweep: interleaved rounds")
    p.add_argument("--sweep", action="store_true",
                   help="per-member cost of a stacked generation against the number of members stacked")
    p.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4, 10, 20], help="--sweep: block sizes")
    p.add_argument("--bound", action="store_true",
                   help="also print the compute bound: matrix-multiply FLOPs of a member-step (counted by torch's "
                        "FlopCounterMode, elementwise work not included) over this machine's peak sgemm rate")
    args = p.parse_args(argv)
    if args.stacked_configs is None:
        args.stacked_configs = ["emg-small"] if (args.split or args.sweep) else ["emg-small", "reference"]
    if args.stacked:
        stacked_table(args)
        return
    if args.split:
        split_table(args)
        return
    if args.sweep:
        sweep_table(args)
        return

    c = CONFIGS[args.config]
    g = torch.Generator().manual_seed(0)
    if c["obs"] == "poisson":
        x = torch.poisson(torch.full((args.windows, c["T"], c["channels"]), 0.3), generator=g)
    else:
        x = torch.rand((args.windows, c["T"], c["channels"]), generator=g) + 0.05
    n_train = args.windows * 4 // 5
    tx, vx = x[:n_train], x[n_train:]
    observation = Poisson() if c["obs"] == "poisson" else Gamma()
    print(f"{args.config} configuration: {args.windows} windows ({n_train} train) x {c['T']} bins x "
          f"{c['channels']} channels, batch 32; one generation of {args.steps} steps; "
          f"{torch.get_num_threads()} torch threads, pbt.workers {args.workers}")
    print()
    print("| population | s per generation | member-steps / s  | cost vs population 1 |")
    print("| ---------- | ---------------- | ----------------- | -------------------- |")
    base = None
    for n in [0, *args.populations]:  # 0: an untimed warm-up (first calls into torch are slow)
        cfg = build_config(overrides={"model": c["model"], "train.batch_size": 32, "pbt.population": max(n, 1),
                                      "pbt.max_generations": 1, "pbt.generation_steps": args.steps,
                                      "pbt.workers": args.workers})

        def make():
            return LFADS(c["channels"], cfg.model, observation)

        torch.manual_seed(0)
        t0 = time.perf_counter()
        train_population(make, TrainingData(tx, vx, observation), cfg.model, cfg.train, cfg.augment, cfg.pbt, progress=False)
        wall = time.perf_counter() - t0
        if n == 0:
            continue
        base = base or wall
        print(f"| {n:10d} | {wall:16.2f} | {n * args.steps / wall:17.2f} | {wall / base:19.1f}x |")
    if args.bound:
        compute_bound(c, tx, observation, args, base)


def stacked_table(args) -> None:
    """One generation: one member, ``--members`` members one after another, and the same members
    stacked (nwb_autolfads.train.stacked), per configuration and thread count."""
    import os

    from nwb_autolfads.train.pbt.member import member_streams, train_generation
    from nwb_autolfads.train.stacked import StackedExecutor

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"one generation = {args.steps} training steps + validation on 64 windows; {args.members} members with "
          f"different hyperparameters; {args.windows} training windows; load average {load:.1f} on "
          f"{os.cpu_count()} CPUs when started")
    print()
    print("| model | threads | one member (s) | sequential x{0} (s) | stacked x{0} (s) | stacked / one member | "
          "sequential / stacked | CPU s: one / stacked |".format(args.members))
    print("| ----- | ------- | -------------- | ------------------ | ---------------- | -------------------- | "
          "-------------------- | -------------------- |")
    for name in args.stacked_configs:
        c, cfg, observation, tx, vx, members = _population(name, args)

        def sequential(ms):
            for k, m in enumerate(ms):
                train_generation(m, tx, vx, cfg.train, cfg.augment, args.steps, 0, member_streams(0, 0, k))

        def stacked(ms):
            ex = StackedExecutor(TrainingData(tx, vx, observation), cfg.model, cfg.train, cfg.augment)
            ex.generation(ms, args.steps, 0, 0)

        for threads in args.threads:
            torch.set_num_threads(threads)
            sequential(members(1))  # warm-up (first calls into torch are slow)
            times = {}
            for key, run, n in (("one", sequential, 1), ("sequential", sequential, args.members),
                                ("stacked", stacked, args.members)):
                ms = members(n)
                w0, c0 = time.perf_counter(), time.process_time()
                run(ms)
                times[key] = (time.perf_counter() - w0, time.process_time() - c0)
            one, seq, stk = times["one"][0], times["sequential"][0], times["stacked"][0]
            print(f"| {name} | {threads} | {one:.2f} | {seq:.2f} | {stk:.2f} | {stk / one:.1f}x | {seq / stk:.1f}x | "
                  f"{times['one'][1]:.2f} / {times['stacked'][1]:.2f} ({times['stacked'][1] / times['one'][1]:.1f}x) |",
                  flush=True)


def _population(name: str, args):
    """Data, configuration and a member factory for ``--stacked`` / ``--split``: ``members(n)`` gives
    the first n members (seeded weights, hyperparameters that differ per member)."""
    from dataclasses import replace

    from nwb_autolfads.train.pbt.member import Member

    c = CONFIGS[name]
    g = torch.Generator().manual_seed(0)
    if c["obs"] == "poisson":
        x = torch.poisson(torch.full((args.windows + 64, c["T"], c["channels"]), 0.3), generator=g)
    else:
        x = torch.rand((args.windows + 64, c["T"], c["channels"]), generator=g) + 0.05
    observation = Poisson() if c["obs"] == "poisson" else Gamma()
    cfg = build_config(overrides={"model": c["model"], "train.batch_size": c.get("batch", 32)})
    cfg = replace(cfg, train=replace(cfg.train, valid_every=args.steps, ramp_steps=100))  # one check per generation
    hps = [{"lr": 4e-3 * (0.5 + k / args.members), "dropout": 0.05 + 0.2 * k / args.members,
            "cd_rate": 0.1 + 0.4 * k / args.members, "l2_gen_scale": 1e-3, "l2_con_scale": 1e-3,
            "kl_co_scale": 1e-5, "kl_ic_scale": 1e-5} for k in range(args.members)]

    def members(n):
        out = []
        for k in range(n):
            torch.manual_seed(k)
            model = LFADS(c["channels"], cfg.model, observation)
            m = Member(model, torch.optim.Adam(model.parameters(), lr=hps[k]["lr"]), dict(hps[k]))
            m.apply()
            out.append(m)
        return out

    return c, cfg, observation, x[:args.windows], x[args.windows:], members


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux /proc; NaN elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def sweep_table(args) -> None:
    """Per-member CPU cost of a stacked generation against the number of members stacked, relative
    to one member trained alone (interleaved rounds, medians)."""
    import resource
    import statistics

    from nwb_autolfads.train.pbt.member import member_streams, train_generation
    from nwb_autolfads.train.resources import reusing_freed_memory
    from nwb_autolfads.train.stacked import StackedExecutor

    torch.set_num_threads(1)
    args.members = max(args.sizes)
    print(f"one generation = {args.steps} training steps + validation on 64 windows; members with different "
          f"hyperparameters; {args.windows} training windows; 1 torch thread; {os.cpu_count()} CPUs; load average "
          f"{os.getloadavg()[0]:.1f} when started")
    for name in args.stacked_configs:
        c, cfg, observation, tx, vx, members = _population(name, args)
        stacked = StackedExecutor(TrainingData(tx, vx, observation), cfg.model, cfg.train, cfg.augment)

        def one(ms):
            train_generation(ms[0], tx, vx, cfg.train, cfg.augment, args.steps, 0, member_streams(0, 0, 0))

        def timed(run, n):
            ms = members(n)
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            w0, c0 = time.perf_counter(), time.process_time()
            run(ms)
            return (time.perf_counter() - w0, time.process_time() - c0,
                    resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)

        res = {n: [] for n in args.sizes}
        base = []
        with reusing_freed_memory():  # as a run holds it around all its generations (stacked in one process)
            one(members(1))
            stacked.generation(members(max(args.sizes)), args.steps, 0, 0)  # warm-up
            for _ in range(args.repeats):
                base.append(timed(one, 1))
                for n in args.sizes:
                    res[n].append(timed(lambda ms: stacked.generation(ms, args.steps, 0, 0), n))
        one_cpu = statistics.median(c for _, c, _ in base)
        print()
        print(f"{name}: one member alone {one_cpu:.3f} CPU s per generation (median of {args.repeats})")
        print("| members stacked | CPU s per generation | CPU per member / one member | page faults | "
              "20 members on 2 cores (one block per core) / one member |")
        print("| --- | --- | --- | --- | --- |")
        for n in args.sizes:
            cpu = statistics.median(c for _, c, _ in res[n])
            faults = statistics.median(f for _, _, f in res[n])
            frac = cpu / n / one_cpu
            print(f"| {n} | {cpu:.2f} | {frac:.2f} | {faults:.0f} | {20 * frac / 2:.1f}x |", flush=True)


def split_table(args) -> None:
    """Interleaved rounds: one member's generation (median of 3), the population stacked in this
    process, and the population split over ``--workers`` processes (a stacked block each); wall
    and CPU seconds (the split's: this process's, which sends and receives the members, plus its
    slowest worker's: the critical path, what a generation would take with a core free for each
    worker)."""
    import statistics

    from nwb_autolfads.train.pbt.embedded import _SplitExecutor
    from nwb_autolfads.train.pbt.member import member_streams, train_generation
    from nwb_autolfads.train.stacked import StackedExecutor

    torch.set_num_threads(1)
    workers = max(2, args.workers)
    share = -(-args.members // workers)
    print(f"one generation = {args.steps} training steps + validation on 64 windows; {args.members} members with "
          f"different hyperparameters; {args.windows} training windows; 1 torch thread per process; "
          f"{os.cpu_count()} CPUs")
    for name in args.stacked_configs:
        c, cfg, observation, tx, vx, members = _population(name, args)
        split = _SplitExecutor(workers, TrainingData(tx, vx, observation), cfg.model, cfg.train, cfg.augment,
                               threads=1)
        pids = list(split.pool._processes)  # the worker processes (started by the executor)
        stacked = StackedExecutor(TrainingData(tx, vx, observation), cfg.model, cfg.train, cfg.augment)
        runs = {"one": lambda ms: train_generation(ms[0], tx, vx, cfg.train, cfg.augment, args.steps, 0,
                                                    member_streams(0, 0, 0)),
                "stacked": lambda ms: stacked.generation(ms, args.steps, 0, 0),
                "split": lambda ms: split.generation(ms, args.steps, 0, 0)}
        for run in runs.values():  # warm-up (first calls into torch, in every worker too)
            run(members(args.members))
        print()
        print(f"{name}: wall seconds, and CPU seconds (split: this process + its slowest worker)")
        print(f"| round | load (1 min) | one member | stacked x{args.members} | split {workers} x {share} | "
              "stacked / one | split / one | CPU: one | CPU: stacked | CPU: split | CPU: stacked / one | "
              "CPU: split / one |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        rows = []
        for r in range(args.repeats):
            load = os.getloadavg()[0]
            t, cpu = {}, {}
            for key, run in runs.items():
                times = []
                for _ in range(3 if key == "one" else 1):  # one member: the median of 3 (a short, noisy run)
                    ms = members(1 if key == "one" else args.members)
                    w0 = [_cpu_seconds(pid) for pid in pids]
                    t0, c0 = time.perf_counter(), time.process_time()
                    run(ms)
                    times.append((time.perf_counter() - t0, time.process_time() - c0))
                    if key == "split":
                        slowest = max(_cpu_seconds(pid) - w for pid, w in zip(pids, w0))
                        times[-1] = (times[-1][0], times[-1][1] + slowest)
                t[key], cpu[key] = statistics.median(w for w, _ in times), statistics.median(c for _, c in times)
            rows.append({**{k: t[k] / t["one"] for k in t}, **{"cpu_" + k: cpu[k] / cpu["one"] for k in cpu}})
            print(f"| {r + 1} | {load:.1f} | {t['one']:.2f} | {t['stacked']:.2f} | {t['split']:.2f} | "
                  f"{t['stacked'] / t['one']:.1f}x | {t['split'] / t['one']:.1f}x | {cpu['one']:.2f} | "
                  f"{cpu['stacked']:.2f} | {cpu['split']:.2f} | {cpu['stacked'] / cpu['one']:.1f}x | "
                  f"{cpu['split'] / cpu['one']:.1f}x |", flush=True)
        split.close()
        med = {k: statistics.median(row[k] for row in rows) for k in rows[0]}
        print(f"median of rounds: wall stacked {med['stacked']:.1f}x one member, split {med['split']:.1f}x; CPU "
              f"stacked {med['cpu_stacked']:.1f}x, split (critical path) {med['cpu_split']:.1f}x; load average "
              f"{os.getloadavg()[0]:.1f} at the end")


def compute_bound(c, tx, observation, args, single_generation_s) -> None:
    """Why a population cannot cost much less than N single models on a CPU: count the
    matrix-multiply FLOPs of one member-step and divide by the peak sgemm rate."""
    from torch.utils.flop_counter import FlopCounterMode

    from nwb_autolfads.model.augment import CoordinatedDropout, TemporalShift
    from nwb_autolfads.train.loop import WindowSampler, train_steps

    cfg = build_config(overrides={"model": c["model"], "train.batch_size": 32})
    model = LFADS(c["channels"], cfg.model, observation)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    with FlopCounterMode(display=False) as counter:
        train_steps(model, opt, tx, cfg.train, CoordinatedDropout(0.3), TemporalShift(0, 0), WindowSampler(len(tx), 32),
                    1, start_step=10**9)  # one step, fully ramped
    flops = counter.get_total_flops()
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    for _ in range(3):
        a @ b
    t0 = time.perf_counter()
    reps = 10
    for _ in range(reps):
        a @ b
    peak = 2 * 2048**3 * reps / (time.perf_counter() - t0)
    member_step_min = flops / peak
    single_step = single_generation_s / args.steps
    print()
    print(f"compute bound: {flops / 1e9:.3f} GFLOP of matrix multiplies per member-step; peak sgemm "
          f"{peak / 1e9:.0f} GFLOP/s with {torch.get_num_threads()} threads -> at least {member_step_min * 1e3:.2f} ms "
          f"per member-step, whatever the executor (one model measured: {single_step * 1e3:.2f} ms per step, "
          f"{100 * member_step_min / single_step:.0f}% of peak).")
    for n in args.populations:
        print(f"population {n}: at least {n * member_step_min / single_step:.1f}x a single model per generation")
    # What batching members into one vectorised model could gain: the same ops on 20 members'
    # stacked tensors (generator-sized matrices, B = 32) against one member's.
    G, n = c["model"]["gen_dim"], max(args.populations)
    x1, w1, b1 = torch.randn(32, G), torch.randn(G, 3 * G), torch.randn(3 * G)
    xn, wn, bn = torch.randn(n, 32, G), torch.randn(n, G, 3 * G), torch.randn(n, 1, 3 * G)
    e1, en = torch.randn(32, 3 * G), torch.randn(n, 32, 3 * G)

    def per_call(f, reps=200):
        for _ in range(10):
            f()
        t0 = time.perf_counter()
        for _ in range(reps):
            f()
        return (time.perf_counter() - t0) / reps

    mm = per_call(lambda: torch.baddbmm(bn, xn, wn)) / per_call(lambda: torch.addmm(b1, x1, w1))
    ew = per_call(lambda: torch.sigmoid(en)) / per_call(lambda: torch.sigmoid(e1))
    print(f"vectorising {n} members: one batched recurrent matmul ({G} units) costs {mm:.1f}x one member's, "
          f"an elementwise op {ew:.1f}x; a vectorised population of {n} would cost about that many single models "
          f"per generation (the process executor: see the table)")


if __name__ == "__main__":
    main()
