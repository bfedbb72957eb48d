"""Training step of this checkout against another source tree, interleaved in one run.

    git archive <rev> src | tar -x -C /tmp/base
    python benchmarks/step_ab.py --baseline /tmp/base/src [--rounds 15] [--steps 4] [--threads 1]

A shared machine's speed drifts with the other programs on it, so two versions timed one after
the other are not comparable. Here one long-lived child process per version and configuration
(``PYTHONPATH`` = that version's ``src``) waits for orders; the parent asks each in turn for
``--steps`` training steps, ``--rounds`` times, alternating which goes first, so both see the same
load. A step is that of benchmarks/model_speed.py (forward + Poisson/Gamma NLL + KL, backward,
gradient clipping, Adam) for its reference (300k parameters, generator 200) and EMG
configurations, on one thread by default. Prints the median ms per step of each, and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _child(config: str, threads: int) -> None:
    import time

    import torch

    sys.path.insert(0, str(HERE))
    from model_speed import CONFIGS

    from nwb_autolfads.config import ModelConfig
    from nwb_autolfads.model.lfads import LFADS
    from nwb_autolfads.model.observations import Gamma, Poisson

    torch.set_num_threads(threads)
    spec = CONFIGS[config]
    torch.manual_seed(0)
    obs = Poisson() if spec["obs"] == "poisson" else Gamma()
    model = LFADS(spec["channels"], ModelConfig(observation="gamma", **spec["model"]), obs)
    B, T, C = spec["batch"], spec["T"], spec["channels"]
    if spec["obs"] == "poisson":
        data = torch.poisson(torch.full((200, T, C), 0.3))
    else:
        data = torch.distributions.Gamma(2.0, 2.0).sample((200, T, C))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()

    def step() -> float:
        xb = data[torch.randint(0, 200, (B,))]
        t0 = time.perf_counter()
        out = model(xb)
        loss = obs.nll(out.params, xb).mean() + 1e-4 * (out.kl_ic.mean() + out.kl_co.mean())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 200.0)
        opt.step()
        return time.perf_counter() - t0

    for _ in range(3):
        step()
    print("ready", flush=True)
    for line in sys.stdin:
        n = int(line)
        if n <= 0:
            break
        print(json.dumps([step() for _ in range(n)]), flush=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline", required=True, help="the other version's src directory")
    p.add_argument("--candidate", default=str(HERE.parent / "src"), help="src directory (default: this checkout's)")
    p.add_argument("--configs", nargs="+", default=["reference", "emg"])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--steps", type=int, default=4, help="steps per version per round")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--_child", nargs=2, metavar=("CONFIG", "THREADS"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._child:
        _child(args._child[0], int(args._child[1]))
        return
    versions = {"baseline": args.baseline, "candidate": args.candidate}
    rows = []
    for config in args.configs:
        procs = {}
        for name, src in versions.items():
            env = {**os.environ, "PYTHONPATH": str(Path(src).resolve()), "OMP_NUM_THREADS": str(args.threads)}
            procs[name] = subprocess.Popen([sys.executable, __file__, "--baseline", "-", "--_child", config,
                                            str(args.threads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                           text=True, env=env)
            assert procs[name].stdout.readline().strip() == "ready"
        times = {name: [] for name in versions}
        for r in range(args.rounds):
            order = list(versions) if r % 2 == 0 else list(versions)[::-1]
            for name in order:
                procs[name].stdin.write(f"{args.steps}\n")
                procs[name].stdin.flush()
                times[name] += json.loads(procs[name].stdout.readline())
        for proc in procs.values():
            proc.stdin.write("0\n")
            proc.stdin.close()
            proc.wait()
        med = {name: 1e3 * statistics.median(t) for name, t in times.items()}
        low = {name: 1e3 * min(t) for name, t in times.items()}
        rows.append((config, med, low, len(times["baseline"])))
    print(f"{args.threads} thread(s), {args.rounds} rounds x {args.steps} steps per version, interleaved")
    print("baseline:", Path(args.baseline).resolve())
    print()
    print("| config | baseline median / min (ms) | candidate median / min (ms) | speed-up (median) |")
    print("| ------ | -------------------------- | --------------------------- | ----------------- |")
    for config, med, low, _ in rows:
        print(f"| {config} | {med['baseline']:.1f} / {low['baseline']:.1f} | {med['candidate']:.1f} / "
              f"{low['candidate']:.1f} | {med['baseline'] / med['candidate']:.2f}x |")


if __name__ == "__main__":
    main()
