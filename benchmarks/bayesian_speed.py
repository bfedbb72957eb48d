"""Speed of Sanger's Bayesian EMG filter (nwb_autolfads.evaluation.baselines.bayesian_filter).

    python benchmarks/bayesian_speed.py [--minutes 60] [--rate 1000] [--channels 12]

Filters ``--minutes`` of rectified EMG at ``--rate`` Hz with 100 levels (the parameters of the
middle of the evaluation grid) and prints the wall time, next to the one-pass recursion
(``burn_in`` = the whole recording: one block) timed on the first minute and extrapolated, and the
largest difference between the two on that minute.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from nwb_autolfads.evaluation.baselines import bayesian_filter


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--rate", type=float, default=1000.0)
    p.add_argument("--channels", type=int, default=12)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    n = int(args.minutes * 60 * args.rate)
    t = np.arange(n) / args.rate
    drive = 1.0 + 0.8 * np.sin(2 * np.pi * 0.5 * t[:, None] + rng.uniform(0, 6, args.channels))
    x = np.abs(drive * rng.laplace(size=(n, args.channels)))
    smax = 3.0 * float(np.quantile(x, 0.95))
    ds = smax / 100
    kw = dict(alpha=0.4 * ds**2 * args.rate, beta=1e-3 * args.rate, sigma_max=smax)
    t0 = time.perf_counter()
    bayesian_filter(x, args.rate, **kw)
    blocked = time.perf_counter() - t0
    m = min(n, int(60 * args.rate))
    t0 = time.perf_counter()
    one = bayesian_filter(x[:m], args.rate, burn_in=m, **kw)
    one_pass = (time.perf_counter() - t0) * n / m
    diff = np.max(np.abs(bayesian_filter(x[:m], args.rate, **kw) - one)) / smax
    print(f"{args.minutes:g} min x {args.channels} channels at {args.rate:g} Hz ({n:,} samples), 100 levels")
    print(f"blocked (default): {blocked:.1f} s; one pass (extrapolated from 1 min): {one_pass:.1f} s; "
          f"largest difference on the first minute: {diff:.1e} of sigma_max")


if __name__ == "__main__":
    main()
