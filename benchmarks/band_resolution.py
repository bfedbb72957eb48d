"""Why the calibrated 90% band over-covers on some synthetic recordings (issue 15 item 3).

    python benchmarks/band_resolution.py [--part tuning] [--only NAME ...] [--workdir DIR]

For each setting of the synthetic EMG family (:func:`nwb_autolfads.simulate.emg_family`, the
tuning part by default) it runs the quick preset and compares, per channel and per group of bins
by the estimate's level (8 quantile groups, as :mod:`nwb_autolfads.evaluation.calibration`):

- coverage: the fraction of the truth (mapped into the data's units as ``benchmarks/family.py``
  does) inside the run's 90% band;
- oracle: the coverage of +-1.645 x the true RMS error of each group (a normal band of the right
  width: what the band's shape alone would give);
- est/true: the band's error variance ((upper - estimate) / 1.645)^2 over the true error variance
  (median over groups and channels);
- noise/error: the noise variance (data minus mapped truth) over the true error variance;
- rho1: the lag-1 correlation of that noise between neighbouring bins (the band's noise
  estimate, from differences over 1 and 2 bins, assumes 0).

Prints a markdown table. The runs are kept in ``--workdir`` (a rerun with the same folder reads them).
"""

from __future__ import annotations

import argparse
import pickle
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def measure(setting, workdir: Path) -> dict:
    import family
    from nwb_autolfads.evaluation.calibration import normal_quantile
    from nwb_autolfads.evaluation.metrics import truth_in_units_of

    wd = workdir / setting.name
    wd.mkdir(parents=True, exist_ok=True)
    cache = wd / "run.pkl"
    if cache.exists():
        d = pickle.loads(cache.read_bytes())
    else:
        import torch

        import nwb_autolfads
        from nwb_autolfads.simulate import simulate_emg, write_setting_nwb
        from nwb_autolfads.testing import read_truth

        torch.set_num_threads(1)
        src = write_setting_nwb(wd / "src.nwb", setting, simulate_emg(setting))
        res = nwb_autolfads.run(src, wd / "out.nwb", preset="quick", overwrite=True, progress=False)
        d = {"mu": np.asarray(res.activations, float), "hi": np.asarray(res.activations_upper, float),
             "lo": np.asarray(res.activations_lower, float),
             "truth": read_truth(src, res.times, float(res.config.windows.bin_size)),
             "ref": family.clean_reference(setting, res, str(wd))}
        cache.write_bytes(pickle.dumps(d))
    z = normal_quantile(0.9)
    truth = truth_in_units_of(d["ref"], d["truth"])
    cover, oracle, est, noise, rho = [], [], [], [], []
    for c in range(d["mu"].shape[1]):
        m, t, lo, hi = d["mu"][:, c], truth[:, c], d["lo"][:, c], d["hi"][:, c]
        ok = np.isfinite(m) & np.isfinite(t)
        m, t, lo, hi, ref = m[ok], t[ok], lo[ok], hi[ok], d["ref"][ok, c]
        e, n = m - t, ref - t
        cover.append(np.mean((t >= lo) & (t <= hi)))
        v = n - n.mean()
        rho.append(np.mean(v[1:] * v[:-1]) / np.mean(v * v))
        edges = np.quantile(m, np.linspace(0, 1, 9))
        group = np.clip(np.searchsorted(edges, m, side="right") - 1, 0, 7)
        inside = np.zeros(m.size, bool)
        for g in range(8):
            w = group == g
            if w.sum() < 10:
                continue
            err2 = np.mean(e[w] ** 2)
            inside[w] = np.abs(e[w]) <= z * np.sqrt(err2)
            est.append(np.median(((hi[w] - m[w]) / z) ** 2) / err2)
            noise.append(np.mean(n[w] ** 2) / err2)
        oracle.append(inside.mean())
    return {"setting": setting.name, "coverage": float(np.mean(cover)), "oracle": float(np.mean(oracle)),
            "est_true": float(np.median(est)), "noise_error": float(np.median(noise)), "rho1": float(np.median(rho))}


def main(argv=None) -> int:
    import family

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=("tuning", "held-out"), default="tuning")
    p.add_argument("--only", nargs="+", default=None, metavar="NAME")
    p.add_argument("--workdir", default=None, help="where the runs are kept (default: a temporary folder)")
    args = p.parse_args(argv)
    settings = family.settings_for(args.part, 2026)
    if args.only:
        settings = [s for s in settings if any(s.name.startswith(o) for o in args.only)]
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="nwb-autolfads-band-"))
    print("| setting | coverage | oracle (normal, true RMS) | est/true error var | noise/error var | rho1 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for s in settings:
        r = measure(s, workdir)
        print(f"| {r['setting']} | {r['coverage']:.3f} | {r['oracle']:.3f} | {r['est_true']:.2f} | "
              f"{r['noise_error']:.1f} | {r['rho1']:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
