"""The synthetic EMG benchmark family (issue 15): the model against optimistic baselines on
recordings with known activations that the defaults were not tuned on.

    python benchmarks/family.py --part tuning|held-out|all [--presets quick [default ...]]
        [--only NAME ...] [--set KEY=VALUE ...] [--jobs 2] [--out FILE.json] [--redo]
        [--table-only] [--family-seed 2026] [--workdir DIR] [--tiny]

For each setting of :func:`nwb_autolfads.simulate.emg_family` in the chosen part of its fixed
split: write the recording to NWB, run ``nwb_autolfads.run(src, preset=...)`` (each run in its
own process with one torch thread when --jobs > 1), and score on the model's bins:

- R^2 vs truth = squared Pearson correlation per channel, averaged over channels, of the model,
  the rectified EMG, the best 4th-order low-pass (cutoff 0.5-30 Hz chosen on the truth) and the
  best Sanger Bayesian filter (alpha/beta grid chosen on the truth); both baselines are filtered
  per segment;
- joint-angle decoding R^2 (ridge, 10 lags, 5 contiguous folds) from the model, the best
  low-pass, the best Bayesian filter and the truth;
- calibration: the fraction of the true activation inside the run's 90% band
  (``activations_lower``/``activations_upper``), the truth put into the rectified binned EMG's
  units per channel as sqrt((c x truth)^2 + d^2)
  (:func:`nwb_autolfads.evaluation.metrics.truth_in_units_of`), the map fitted on the same
  recording without its artefacts (same seed: they are drawn last and change nothing else; binned
  by ``Rectified`` with the run's configuration): artefacts are not activation, and moderate ones
  of an enveloped recording biased a map fitted on the data with them; "n/a" when the run has none;
- the check against a low-pass the run makes without the truth (``lowpass_check``,
  :mod:`nwb_autolfads.evaluation.risk`): the EMG channels it flagged, against the channels the
  model lost on the truth (per channel R^2 of the model and the best low-pass: ``r2_channels``);
- the run's wall time; the margin = model - max(low-pass, Bayes).

Results are saved to the JSON after each run (a rerun skips those already there unless --redo);
--table-only prints the table from the JSON. ``--tiny`` replaces the family by one 4-muscle 5 s
setting (for tests).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
TINY = "tiny-chaotic-4m-5s"


def settings_for(part: str, family_seed: int, tiny: bool = False):
    from nwb_autolfads.simulate import EMGSetting, emg_family, split

    if tiny:
        return [EMGSetting(name=TINY, n_muscles=4, duration=5.0, seed=1)]
    tuning, held = split(emg_family(family_seed), family_seed)
    return {"tuning": tuning, "held-out": held, "all": tuning + held}[part]


def _mean(values) -> float | None:
    values = np.asarray(values, dtype=float)
    return float(np.nanmean(values)) if np.isfinite(values).any() else None


def score(setting, preset: str, overrides: dict, workdir: str) -> dict:
    """Simulate, run and score one setting (runs in a worker process)."""
    import torch

    import nwb_autolfads
    from nwb_autolfads.evaluation.baselines import best_bayesian, best_lowpass
    from nwb_autolfads.evaluation.comparison import bin_mean
    from nwb_autolfads.evaluation.metrics import channel_correlation, coverage_of_truth, ridge_decode_r2
    from nwb_autolfads.simulate import simulate_emg, write_setting_nwb
    from nwb_autolfads.testing import read_truth

    torch.set_num_threads(1)
    synth = simulate_emg(setting)
    src = write_setting_nwb(Path(workdir) / f"{setting.name}.nwb", setting, synth)
    t0 = time.perf_counter()
    res = nwb_autolfads.run(src, Path(workdir) / f"{setting.name}_{preset}_autolfads.nwb", preset=preset,
                            overrides=overrides, overwrite=True, progress=False)
    wall = time.perf_counter() - t0
    bin_size = float(res.config.windows.bin_size)
    fs = 1.0 / bin_size
    truth = read_truth(src, res.times, bin_size)
    kin = bin_mean(synth.times, synth.kinematics, np.asarray(res.times, float), bin_size)
    rect = np.asarray(res.rectified, float)
    model = np.asarray(res.activations, float)
    cutoff, r2_low, est_low = best_lowpass(rect, truth, fs, times=res.times)
    bayes, r2_bayes, est_bayes = best_bayesian(rect, truth, fs, times=res.times)
    ok = np.isfinite(kin).all(1)
    decode = {}
    for name, est in (("model", model), ("lowpass", est_low), ("bayes", est_bayes), ("truth", truth)):
        rows = ok & np.isfinite(est).all(1)
        decode[name] = _mean(ridge_decode_r2(est[rows], kin[rows], lags=10))
    lower, upper = getattr(res, "activations_lower", None), getattr(res, "activations_upper", None)
    calibration = (None if lower is None or upper is None
                   else coverage_of_truth(np.asarray(lower, float), np.asarray(upper, float), truth,
                                          clean_reference(setting, res, workdir)))
    r2 = {"model": _mean(channel_correlation(model, truth) ** 2),
          "rectified": _mean(channel_correlation(rect, truth) ** 2),
          "lowpass": _mean(r2_low), "bayes": _mean(r2_bayes)}
    return {"setting": setting.name, "preset": preset, "overrides": overrides, "parameters": setting.as_dict(),
            "bin_size": bin_size, "n_bins": int(len(res.times)), "r2": r2, "lowpass_cutoff_hz": cutoff,
            "bayes_params": bayes, "margin": r2["model"] - max(r2["lowpass"], r2["bayes"]), "decoding": decode,
            "calibration": calibration, "wall_s": wall,
            "r2_channels": {"model": (channel_correlation(model, truth) ** 2).round(4).tolist(),
                            "lowpass": np.asarray(r2_low, float).round(4).tolist()},
            "lowpass_check": getattr(res, "lowpass_check", None),
            "steps": res.training.history[-1]["step"] if res.training.history else 0}


def clean_reference(setting, res, workdir: str) -> np.ndarray:
    """(n_bins, C) the binned rectified EMG of ``setting`` without its artefacts, on ``res``'s bins
    and preprocessed by its configuration (the reference the truth is mapped onto)."""
    from dataclasses import replace

    from nwb_autolfads.baseline_estimators import Rectified
    from nwb_autolfads.simulate import simulate_emg, write_setting_nwb

    if setting.artefact_rate <= 0:
        return np.asarray(res.rectified, float)
    clean = replace(setting, artefact_rate=0.0)
    path = write_setting_nwb(Path(workdir) / f"{setting.name}_no-artefacts.nwb", clean, simulate_emg(clean))
    ds = Rectified(config=res.config).fit_transform(path)
    values = ds[next(iter(ds.data_vars))]
    bin_size = float(res.config.windows.bin_size)
    return np.asarray(values.sel(time=np.asarray(res.times, float), method="nearest", tolerance=bin_size / 4), float)


def _worker(args):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        return args, score(*args), None
    except Exception as exc:  # one failing setting must not lose the others
        return args, None, f"{type(exc).__name__}: {exc}"


def _key(name: str, preset: str, overrides: dict) -> str:
    return f"{name}|{preset}|{json.dumps(overrides, sort_keys=True)}"


def _fmt(v, spec=".3f"):
    return "n/a" if v is None else format(v, spec)


LOST = 0.01
"""A channel counts as lost (the check column's brackets) when the best low-pass beats the model on
R^2 vs truth by more than this."""


def _check_cell(r: dict) -> str:
    """'flagged / channels [lost]' of the run's check against a low-pass (n/a without one)."""
    check, per = r.get("lowpass_check"), r.get("r2_channels")
    known = [v for v in (check or {}).get("channels", {}).values() if v is not None]
    if not known:
        return "n/a"
    lost = "" if not per else f" [{sum(lp - m > LOST for m, lp in zip(per['model'], per['lowpass']))}]"
    return f"{len(check['flagged'])}/{len(known)}{lost}"


def table(records: list[dict]) -> str:
    """The markdown table and the summary line of ``records``."""
    lines = ["R^2 vs truth = squared Pearson correlation per channel, averaged over channels, on the model's bins; "
             "baselines' parameters chosen on the truth (optimistic). Decoding: joint angles, ridge, 10 lags, 5 folds. "
             "Calibration: fraction of the (rescaled) truth inside the 90% band.", "",
             "Check: EMG channels the run flagged (a low-pass estimated closer to the signal without the truth; "
             "nwb_autolfads.evaluation.risk) / channels; in brackets the channels the model lost on the truth by "
             f"more than {LOST:g} R^2 to the best low-pass.", "",
             "| setting | preset | R^2 model | LP (cutoff) | Bayes | margin | decoding model/LP/Bayes/truth "
             "| calibration | check | wall s |",
             "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |"]
    for r in records:
        if "error" in r:
            lines.append(f"| {r['setting']} | {r['preset']} | failed: {r['error'][:80]} | | | | | | | |")
            continue
        d = r["decoding"]
        lines.append(f"| {r['setting']} | {r['preset']} | {_fmt(r['r2']['model'])} | {_fmt(r['r2']['lowpass'])} "
                     f"({r['lowpass_cutoff_hz']:g} Hz) | {_fmt(r['r2']['bayes'])} | {_fmt(r['margin'], '+.3f')} | "
                     f"{_fmt(d['model'])}/{_fmt(d['lowpass'])}/{_fmt(d['bayes'])}/{_fmt(d['truth'])} | "
                     f"{_fmt(r['calibration'], '.2f')} | {_check_cell(r)} | {r['wall_s']:.0f} |")
    done = [r for r in records if "error" not in r]
    if done:
        wins = np.mean([r["margin"] > 0 for r in done])
        margin = np.median([r["margin"] for r in done])
        dec = [r["decoding"]["model"] - max(r["decoding"]["lowpass"], r["decoding"]["bayes"]) for r in done
               if None not in (r["decoding"]["model"], r["decoding"]["lowpass"], r["decoding"]["bayes"])]
        cal = [r["calibration"] for r in done if r["calibration"] is not None]
        checked = [r for r in done if _check_cell(r) != "n/a"]
        if checked:
            lost = [r for r in checked if r["margin"] < 0]
            warned = [r for r in checked if r["lowpass_check"]["flagged"]]
            lines += ["", f"check against a low-pass: the run warned on {len([r for r in lost if r in warned])} of "
                          f"the {len(lost)} recordings the model lost and on {len([r for r in warned if r not in lost])} "
                          f"of the {len(checked) - len(lost)} it won"]
        lines += ["", f"win rate (model beats both baselines on R^2 vs truth): {wins:.0%} of {len(done)}; "
                  f"median margin {margin:+.3f}; median decoding difference (model - best baseline) "
                  f"{_fmt(float(np.median(dec)) if dec else None, '+.3f')}; median calibration "
                  f"{_fmt(float(np.median(cal)) if cal else None, '.2f')}"
                  + (f"; {len(records) - len(done)} failed" if len(done) < len(records) else "")]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=("tuning", "held-out", "all"), default="held-out")
    p.add_argument("--presets", nargs="+", default=["quick"])
    p.add_argument("--only", nargs="+", default=None, metavar="NAME", help="only these settings")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="run overrides")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--out", default=None, help="JSON (default benchmarks/results/family_<part>_<presets>.json)")
    p.add_argument("--redo", action="store_true", help="rerun settings already in the JSON")
    p.add_argument("--table-only", action="store_true", help="print the table from the JSON, run nothing")
    p.add_argument("--family-seed", type=int, default=None, help="seed of the family and its split (2026)")
    p.add_argument("--workdir", default=None, help="where the NWB files go (default: a temporary folder)")
    p.add_argument("--tiny", action="store_true", help="one 4-muscle 5 s setting instead of the family (tests)")
    args = p.parse_args(argv)

    from nwb_autolfads.cli import _parse_sets
    from nwb_autolfads.simulate import FAMILY_SEED

    seed = FAMILY_SEED if args.family_seed is None else args.family_seed
    out = Path(args.out or HERE / "results" / f"family_{args.part}_{'+'.join(args.presets)}.json")
    saved = json.loads(out.read_text()) if out.exists() else {}
    overrides = _parse_sets(args.set)
    settings = settings_for(args.part, seed, args.tiny)
    if args.only:
        unknown = set(args.only) - {s.name for s in settings}
        if unknown:
            print(f"--only: no setting named {', '.join(sorted(unknown))} in the {args.part} part; there are: "
                  + ", ".join(s.name for s in settings), file=sys.stderr)
            return 2
        settings = [s for s in settings if s.name in args.only]
    wanted = [(s, preset) for s in settings for preset in args.presets]
    if not args.table_only:
        todo = [(s, preset) for s, preset in wanted if args.redo or _key(s.name, preset, overrides) not in saved]
        workdir = args.workdir or tempfile.mkdtemp(prefix="nwb-autolfads-family-")
        Path(workdir).mkdir(parents=True, exist_ok=True)
        jobs = [(s, preset, overrides, workdir) for s, preset in todo]
        out.parent.mkdir(parents=True, exist_ok=True)

        def save(job, record, error):
            s, preset = job[0], job[1]
            record = record or {"setting": s.name, "preset": preset, "overrides": overrides, "error": error}
            saved[_key(s.name, preset, overrides)] = record
            tmp = out.with_suffix(".json.partial")
            tmp.write_text(json.dumps(saved, indent=1))
            tmp.replace(out)
            print(f"{s.name} [{preset}]: " + (f"failed: {error}" if error else
                  f"model {record['r2']['model']:.3f}, margin {record['margin']:+.3f}, {record['wall_s']:.0f} s"),
                  file=sys.stderr, flush=True)

        if args.jobs > 1 and len(jobs) > 1:
            with ProcessPoolExecutor(max_workers=args.jobs) as pool:
                for fut in as_completed([pool.submit(_worker, job) for job in jobs]):
                    save(*fut.result())
        else:
            for job in jobs:
                save(*_worker(job))
    records = [saved[k] for k in (_key(s.name, preset, overrides) for s, preset in wanted) if k in saved]
    print(f"synthetic EMG family (seed {seed}), part {args.part}, presets {', '.join(args.presets)}"
          + (f", overrides {overrides}" if overrides else "") + f"; results in {out}")
    print()
    print(table(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
