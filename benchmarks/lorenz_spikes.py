"""LFADS on Lorenz-driven Poisson spikes with known rates (docs/science.md, Synthetic data).

    python benchmarks/lorenz_spikes.py [--steps 10000] [--trials 20] [--co-dim 0] [--seed 0]

Trains the model on spike counts (Poisson observation model) through the Python API and
prints the R^2 between inferred and true rates (mean over neurons) next to the best Gaussian
smoothing of the spikes (kernel width swept and chosen on the truth, so optimistic), and the
coverage of the true rates by the 90% band: the posterior samples' quantiles alone, widened by
the residual beyond the noise (the Poisson variance, or from the data's differences), and also by
the noise the model follows
(:mod:`nwb_autolfads.evaluation.calibration`; the last as ``nwb-autolfads run`` writes it).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

from nwb_autolfads.evaluation.calibration import copied_noise, estimate_errors, widen_band
from nwb_autolfads.config import AugmentConfig, InferenceConfig, ModelConfig, TrainConfig
from nwb_autolfads.train.devices import seed_everything
from nwb_autolfads.model.inference import infer
from nwb_autolfads.evaluation.metrics import interval_coverage, r2_of
from nwb_autolfads.model.lfads import LFADS
from nwb_autolfads.model.observations import Poisson
from nwb_autolfads.train.training_data import TrainingData
from nwb_autolfads.testing import lorenz_spikes
from nwb_autolfads.train.loop import split_train_valid, train_model


def pooled_r2(estimate: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """R^2 per neuron over all trials and bins: (trials, T, N) -> (N,)."""
    N = truth.shape[-1]
    return r2_of(estimate.reshape(-1, N), truth.reshape(-1, N))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=10000, help="train.max_steps (640 training trials in batches of "
                   "32: 20 steps per pass)")
    p.add_argument("--co-dim", type=int, default=0, help="inferred inputs (the Lorenz system is autonomous)")
    p.add_argument("--conditions", type=int, default=40)
    p.add_argument("--trials", type=int, default=20, help="trials per condition")
    p.add_argument("--base-rate", type=float, default=5.0, help="baseline rate (Hz)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    data = lorenz_spikes(n_conditions=args.conditions, trials_per_condition=args.trials, base_rate=args.base_rate,
                         seed=args.seed)
    seed_everything(args.seed)
    x = torch.from_numpy(data.counts)
    train_idx, valid_idx = split_train_valid(x.shape[0], 5)
    cfg = ModelConfig(ic_enc_dim=64, ci_enc_dim=64, con_dim=64, co_dim=args.co_dim, ic_dim=64, gen_dim=100,
                      factor_dim=10, dropout=0.05)
    model = LFADS(x.shape[-1], cfg, Poisson())
    model.init_readout_bias(x[train_idx].mean(dim=(0, 1)))
    train_cfg = TrainConfig(max_steps=args.steps, min_steps=1000, ramp_steps=1000, early_stopping_patience=1000,
                            valid_every=20, batch_size=32, kl_ic_scale=1e-4, kl_co_scale=1e-4, l2_gen_scale=1e-3)
    t0 = time.perf_counter()
    res = train_model(model, TrainingData(x[train_idx], x[valid_idx], Poisson()), train_cfg, AugmentConfig(cd_rate=0.3, shift_std=0.0),
                      progress=True)
    seconds = time.perf_counter() - t0
    inferred = infer(model, x, InferenceConfig(mode="sample", n_samples=50, interval=0.9))
    rates = inferred.mean

    r2_model = pooled_r2(rates, data.rates)
    best = (-np.inf, None, None)
    for sigma in (1, 2, 3, 4, 6, 8, 12):
        smooth = gaussian_filter1d(data.counts.astype(float), sigma, axis=1, mode="nearest")
        r2 = pooled_r2(smooth, data.rates)
        if np.mean(r2) > best[0]:
            best = (np.mean(r2), sigma, r2)
    print(f"Lorenz spikes: {x.shape[0]} trials x {x.shape[1]} bins x {x.shape[2]} neurons "
          f"({data.counts.mean() / data.bin_size:.1f} spikes/s mean); {res.history[-1]['step']} steps in {seconds:.0f} s")
    print()
    print("| method                                   | R^2 mean | R^2 min |")
    print("| ---------------------------------------- | -------- | ------- |")
    print(f"| best Gaussian smoothing (sigma {best[1]:>2} bins)   | {best[0]:8.3f} | {np.min(best[2]):7.3f} |")
    print(f"| nwb-autolfads (Poisson, all trials)      | {np.mean(r2_model):8.3f} | {np.min(r2_model):7.3f} |")
    r2_valid = pooled_r2(rates[valid_idx], data.rates[valid_idx])
    print(f"| nwb-autolfads (validation trials only)   | {np.mean(r2_valid):8.3f} | {np.min(r2_valid):7.3f} |")
    N = data.rates.shape[-1]
    counts, means = list(data.counts.astype(float)), list(rates.astype(float))  # one segment per trial

    def respond(segments):  # the posterior-mean rates as a function of the counts, weights fixed
        return list(infer(model, torch.from_numpy(np.stack(segments).astype(np.float32)),
                          InferenceConfig(mode="mean", interval=None)).mean.astype(float))

    poisson = estimate_errors(counts, means, np.ones(N, bool))  # the noise as the expected count
    first = estimate_errors(counts, means, np.zeros(N, bool))  # from the data's differences, as `run` does
    errors = estimate_errors(counts, means, np.zeros(N, bool), copied=copied_noise(respond, counts, means, first))
    truth = data.rates.reshape(-1, N)
    raw = interval_coverage(inferred.lower.reshape(-1, N), inferred.upper.reshape(-1, N), truth)
    print()
    print(f"coverage of the true rates by the 90% band: posterior samples only {np.mean(raw):.2f} "
          f"(per neuron {np.min(raw):.2f}-{np.max(raw):.2f})")
    for label, errs in (("widened by the residual beyond the Poisson variance", poisson),
                        ("widened by the residual beyond the noise (from the data's differences)", first),
                        ("and by the noise the model follows (as `run` writes it)", errors)):
        lower, upper = widen_band(rates.reshape(-1, N), inferred.lower.reshape(-1, N), inferred.upper.reshape(-1, N),
                                  errs, 0.9)
        calibrated = interval_coverage(lower, upper, truth)
        print(f"  {label}: {np.mean(calibrated):.2f} ({np.min(calibrated):.2f}-{np.max(calibrated):.2f}; median "
              f"{np.median(calibrated):.2f})")


if __name__ == "__main__":
    main()
