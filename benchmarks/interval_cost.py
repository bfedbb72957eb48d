"""What the credible interval (``inference.interval``) costs: inference time and file size.

    python benchmarks/interval_cost.py [--preset quick] [--duration 60] [--muscles 12] [--repeats 3] [--threads 1]

Trains one model on synthetic raw EMG (``mock_emg_nwb``, 2 kHz), then times the inference stage
(posterior samples, merged windows) with ``inference.interval: null`` and with the preset's
interval, alternately ``--repeats`` times each (medians of wall and of this process's CPU time
are printed: on a shared machine the CPU time is the steadier), and writes the result file
with and without the bounds (sizes printed); then the fraction of the true activation (affine-fitted
per muscle to the estimate: it has no unit) inside the band.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import nwb_autolfads
from nwb_autolfads import pipeline
from nwb_autolfads.io import writing
from nwb_autolfads.evaluation.metrics import interval_coverage
from nwb_autolfads.testing import mock_emg_nwb, read_truth


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="quick")
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--muscles", type=int, default=12)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the timed inference (1: steadier on a "
                    "shared machine)")
    args = ap.parse_args()

    times: dict[str, list[float]] = {"off": [], "on": []}
    cpu: dict[str, list[float]] = {"off": [], "on": []}  # CPU seconds of this process: less hit by others' load
    records = []
    real_infer, real_write = pipeline.infer_merged, pipeline.write_results

    def timed_infer(model, windows, index, cfg, *a, **kw):
        off = dataclasses.replace(cfg, interval=None)
        threads = torch.get_num_threads()
        torch.set_num_threads(args.threads)
        out = real_infer(model, windows, index, off, *a, **kw)  # warm-up, not counted
        for r in range(args.repeats):
            for key, c in (("off", off), ("on", cfg))[::1 if r % 2 else -1]:  # alternating order too
                t, p = time.perf_counter(), time.process_time()
                out = real_infer(model, windows, index, c, *a, **kw)
                times[key].append(time.perf_counter() - t)
                cpu[key].append(time.process_time() - p)
                print(f"  {key}: wall {times[key][-1]:.2f} s, CPU {cpu[key][-1]:.2f} s (torch threads "
                      f"{torch.get_num_threads()})", flush=True)
        torch.set_num_threads(threads)
        return out  # the last one: with the interval

    def keep_record(path, out, record, **kw):
        records.append(record)
        return real_write(path, out, record, **kw)

    pipeline.infer_merged, pipeline.write_results = timed_infer, keep_record
    with tempfile.TemporaryDirectory() as tmp:
        src = mock_emg_nwb(Path(tmp) / "emg.nwb", duration=args.duration, rate=2000.0, n_muscles=args.muscles,
                           seed=args.seed)
        res = nwb_autolfads.run(src, Path(tmp) / "on.nwb", preset=args.preset, progress=False, seed=args.seed,
                                overrides={"output.content": "results"})
        without = dataclasses.replace(records[0], interval=None, activations_lower=None, activations_upper=None,
                                      rates_lower=None, rates_upper=None, name="no_interval")
        off_path, _ = real_write(src, Path(tmp) / "off.nwb", without, content="results")
        size_on, size_off = res.output.stat().st_size, Path(off_path).stat().st_size
        cfg = res.config.inference
        t_on, t_off = np.median(times["on"]), np.median(times["off"])
        print(f"{args.duration:g} s of {args.muscles}-muscle EMG, preset {args.preset}: {res.times.size} bins, "
              f"{res.n_windows} windows, inference.n_samples {cfg.n_samples}, interval {cfg.interval}")
        c_on, c_off = np.median(cpu["on"]), np.median(cpu["off"])
        print(f"inference + merge (median of {args.repeats}, alternating): wall {t_off:.2f} s without the interval, "
              f"{t_on:.2f} s with it ({(t_on / t_off - 1) * 100:+.0f}%); CPU {c_off:.2f} s without, {c_on:.2f} s with "
              f"({c_on - c_off:+.2f} s, {(c_on / c_off - 1) * 100:+.0f}%)")
        print(f"result file (output.content results): {size_off / 1e6:.3f} MB without, {size_on / 1e6:.3f} MB with: "
              f"+{(size_on - size_off) / 1e6:.3f} MB ({(size_on / size_off - 1) * 100:+.0f}%)")
        # a first look at calibration: the truth has no unit, so it is mapped onto the estimate by a per-muscle
        # least-squares affine fit (which favours the model), then counted inside the band
        truth = read_truth(src, res.times, res.config.windows.bin_size)
        ok = np.isfinite(truth).all(axis=1)
        fitted = np.full_like(truth, np.nan)
        for c in range(truth.shape[1]):
            a, b = np.polyfit(truth[ok, c], res.activations[ok, c], 1)
            fitted[:, c] = a * truth[:, c] + b
        cov = interval_coverage(res.activations_lower, res.activations_upper, fitted)
        width = np.median((res.activations_upper - res.activations_lower) / res.activations)
        print(f"coverage of the affine-fitted truth by the {cfg.interval:.0%} band: median {np.median(cov):.3f} "
              f"(muscles {cov.min():.3f}-{cov.max():.3f}); median band width {width:.3f} x the estimate")


if __name__ == "__main__":
    main()
