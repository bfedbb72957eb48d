"""Quality on synthetic EMG with known activations (docs/science.md, Synthetic data).

    python benchmarks/synthetic_emg_quality.py [--preset quick] [--duration 60] [--muscles 12]
                                               [--artefacts 0.0] [--seed 0] [--workdir DIR]

Prints, per method, the correlation of the estimate with the true activation (mean and min
over muscles): rectified EMG in model bins, the best 4th-order zero-phase Butterworth low-pass
of it and the best Sanger Bayesian filter of it (parameters swept and chosen on the truth, so
both are optimistic), and the model.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import nwb_autolfads
from nwb_autolfads.evaluation.baselines import best_bayesian, best_lowpass
from nwb_autolfads.evaluation.metrics import channel_correlation, ridge_decode_r2
from nwb_autolfads.simulate import kinematics_from
from nwb_autolfads.testing import mock_emg_nwb, read_truth

def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="quick")
    p.add_argument("--duration", type=float, default=60.0)
    p.add_argument("--muscles", type=int, default=12)
    p.add_argument("--rate", type=float, default=2000.0)
    p.add_argument("--artefacts", type=float, default=0.0, help="shared artefacts per second")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", default=None)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)

    from nwb_autolfads.cli import _parse_sets

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="nwb-autolfads-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    src = mock_emg_nwb(workdir / "bench_emg.nwb", duration=args.duration, rate=args.rate, n_muscles=args.muscles,
                       seed=args.seed, artefacts=args.artefacts)
    t0 = time.perf_counter()
    res = nwb_autolfads.run(src, preset=args.preset, overwrite=True, progress=False, overrides=_parse_sets(args.set),
                            seed=args.seed)
    wall = time.perf_counter() - t0
    bin_size = res.config.windows.bin_size
    truth = read_truth(src, res.times, bin_size)
    r_rect = channel_correlation(res.rectified, truth)
    fc, _, est_low = best_lowpass(res.rectified, truth, 1.0 / bin_size)  # chosen on the truth (r^2)
    r_low = channel_correlation(est_low, truth)
    r_model = channel_correlation(res.activations, truth)
    params, _, est_bayes = best_bayesian(res.rectified, truth, 1.0 / bin_size)
    r_bayes = channel_correlation(est_bayes, truth)
    kin = kinematics_from(truth, 1.0 / bin_size, args.seed)
    decoding = {name: ridge_decode_r2(est, kin, lags=10) for name, est in (
        ("rectified", res.rectified), ("low-pass", est_low), ("Bayesian", est_bayes), ("model", res.activations),
        ("true activations", truth))}

    print(f"synthetic EMG: {args.muscles} muscles, {args.duration:g} s at {args.rate:g} Hz, artefacts "
          f"{args.artefacts:g}/s, seed {args.seed}; preset {args.preset}; {bin_size * 1e3:g} ms bins")
    steps = res.training.history[-1]["step"] if res.training.history else 0
    print(f"training: {steps} steps ({res.n_train} training windows, {res.config.train.batch_size} per step), "
          f"{res.training.seconds:.1f} s; whole run {wall:.1f} s on {res.device}; expected (plan) at most "
          f"{res.plan.get('expected_training_seconds_at_most', float('nan')):.0f} s")
    print()
    print(f"| {'method':52s} | mean r | min r |")
    print(f"| {'-' * 52} | ------ | ----- |")
    for name, r in (("rectified EMG (model bins)", r_rect), (f"best low-pass (4th order, {fc:g} Hz)", r_low),
                     (f"best Bayesian filter ({params})", r_bayes), ("nwb-autolfads", r_model)):
        print(f"| {name:52s} | {np.nanmean(r):6.3f} | {np.nanmin(r):5.3f} |")
    print()
    print("Decoding 3 joint angles driven by the true activations (ridge, 100 ms history, 5 contiguous folds):")
    print()
    print(f"| {'decoded from':20s} | R^2 mean | R^2 per joint |")
    print(f"| {'-' * 20} | -------- | ------------- |")
    for name, r2 in decoding.items():
        print(f"| {name:20s} | {np.mean(r2):8.3f} | {', '.join(f'{v:.3f}' for v in r2)} |")


if __name__ == "__main__":
    main()
