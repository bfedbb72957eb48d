"""One model for spikes and EMG vs EMG alone, on synthetic data sharing one latent.

    python benchmarks/joint_spikes_emg.py [--preset quick] [--units 30] [--duration 60]

Writes a synthetic file whose muscles and neurons are driven by the same Lorenz latent, runs
``--model emg`` and ``--model emg+spikes``, and prints the correlation of the inferred EMG
activations with the true activations for both, and the R^2 of the inferred firing rates
against the true rates.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import nwb_autolfads
from nwb_autolfads.evaluation.metrics import channel_correlation, r2_of
from nwb_autolfads.testing import mock_emg_nwb, read_truth


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="quick")
    p.add_argument("--units", type=int, default=30)
    p.add_argument("--muscles", type=int, default=12)
    p.add_argument("--duration", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="nwb-autolfads-joint-"))
    src = mock_emg_nwb(work / "joint.nwb", duration=args.duration, rate=2000.0, n_muscles=args.muscles,
                       n_units=args.units, seed=args.seed)
    rows = []
    for model in ("emg", "emg+spikes"):
        t0 = time.perf_counter()
        res = nwb_autolfads.run(src, preset=args.preset, write=False, progress=False, seed=args.seed,
                                overrides={"data.model": model})
        wall = time.perf_counter() - t0
        bin_size = res.config.windows.bin_size
        truth = read_truth(src, res.times, bin_size)
        r_emg = channel_correlation(res.activations, truth)
        r2 = (float(np.nanmean(r2_of(res.rates, read_truth(src, res.times, bin_size, name="true_rates"))))
              if res.rates.shape[1] else float("nan"))
        rows.append((model, float(np.nanmean(r_emg)), float(np.nanmin(r_emg)), r2, wall,
                     float(np.nanmean(channel_correlation(res.rectified, truth)))))
    print(f"{args.muscles} muscles (2 kHz raw EMG) and {args.units} neurons sharing one latent, {args.duration:g} s; "
          f"preset {args.preset}")
    print()
    print("| model       | EMG r mean | EMG r min | rates R^2 | wall (s) |")
    print("| ----------- | ---------- | --------- | --------- | -------- |")
    for model, r_mean, r_min, r2, wall, _ in rows:
        print(f"| {model:11s} | {r_mean:10.3f} | {r_min:9.3f} | {r2:9.3f} | {wall:8.1f} |")
    print(f"(rectified EMG: r = {rows[0][5]:.3f})")


if __name__ == "__main__":
    main()
