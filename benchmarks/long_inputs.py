"""Peak memory and wall time per stage of ``run`` on long inputs (issue 19 item 4).

    python benchmarks/long_inputs.py [--case emg60|spikes20|both] [--dir /tmp/nwb-autolfads-long]
                                     [--set KEY=VALUE ...]

Builds (once; reused when it exists) an hour of raw 16-muscle EMG at 2 kHz
(:func:`~nwb_autolfads.testing.chunked_emg_nwb`, int16 as acquisition systems store it, 7.2 M samples) and 20 minutes
of 100 units (:func:`~nwb_autolfads.testing.chunked_spikes_nwb`), then runs each through
``nwb_autolfads.run`` (smoke preset, one model trained for 20 steps of 256 windows: the training
budget is not what is measured here) in a fresh process, and prints per stage the wall time and
the peak resident memory (VmHWM, reset before each stage through /proc/self/clear_refs) and the
whole run's peak. Linux only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

SMOKE = {"pbt.population": 1, "train.max_steps": 20, "train.batch_size": 256}


def _status(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024**2  # kB -> GB
    return float("nan")


def _reset_peak() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def measure(case: str, path: Path, overrides: dict) -> list[dict]:
    """Run ``case`` on ``path`` with every stage wrapped; returns one row per stage call."""
    import nwb_autolfads.pipeline as pl

    rows: list[dict] = []

    def wrap(owner, name, label):
        inner = getattr(owner, name)

        def timed(*args, **kwargs):
            _reset_peak()
            t0 = time.perf_counter()
            out = inner(*args, **kwargs)
            rows.append({"stage": label, "seconds": time.perf_counter() - t0, "peak_gb": _status("VmHWM"),
                         "rss_after_gb": _status("VmRSS")})
            _reset_peak()
            return out

        setattr(owner, name, timed)

    import nwb_autolfads.data.preprocessing as preprocessing
    import nwb_autolfads.io.units as units

    wrap(preprocessing, "preprocess_emg", "read + preprocess EMG")  # called by the emg modality entry
    wrap(units, "bin_spikes", "bin spikes")  # called by the spikes modality entry
    wrap(pl, "chop_segments", "chop windows")
    wrap(pl, "prepare_rundir", "run directory (data hash)")
    wrap(pl, "train_single", f"plan + training ({overrides.get('train.max_steps', 'preset')} steps)")
    wrap(pl, "infer_merged", "inference + merge")
    wrap(pl, "input_sha256", "input SHA-256")
    wrap(pl, "write_results", "write output")
    t0 = time.perf_counter()
    model = "emg" if case.startswith("emg") else "spikes"
    out = path.with_name(path.stem + "_out.nwb")
    pl.run(path, out, preset="smoke", overrides={"data.model": model, **overrides}, overwrite=True, progress=True)
    rows.append({"stage": "whole run", "seconds": time.perf_counter() - t0, "peak_gb": _status("VmHWM"),
                 "rss_after_gb": _status("VmRSS")})
    out.unlink(missing_ok=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", default="both", choices=["emg60", "spikes20", "both"])
    ap.add_argument("--dir", default="/tmp/nwb-autolfads-long")
    ap.add_argument("--set", action="append", default=[], help="KEY=VALUE override (JSON values)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    overrides = dict(SMOKE)
    for item in args.set:
        key, value = item.split("=", 1)
        try:
            overrides[key] = json.loads(value)
        except ValueError:
            overrides[key] = value
    folder = Path(args.dir)
    if args.child:
        case, path = args.child.split(":", 1)
        print(json.dumps(measure(case, Path(path), overrides)))
        return
    from nwb_autolfads.testing import chunked_emg_nwb, chunked_spikes_nwb

    folder.mkdir(parents=True, exist_ok=True)
    cases = ["emg60", "spikes20"] if args.case == "both" else [args.case]
    for case in cases:
        path = folder / f"{case}.nwb"
        if not path.exists():
            t0 = time.perf_counter()
            (chunked_emg_nwb(path, duration=3600.0) if case == "emg60"  # written atomically
             else chunked_spikes_nwb(path, duration=1200.0, n_units=100))
            print(f"built {path} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        cmd = [sys.executable, __file__, "--dir", str(folder), "--child", f"{case}:{path}"]
        cmd += [f"--set={s}" for s in args.set]
        done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=True)
        rows = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"\n{case}: {path}")
        print(f"  {'stage':30s} {'wall s':>8s} {'peak GB':>8s} {'RSS after GB':>13s}")
        for r in rows:
            print(f"  {r['stage']:30s} {r['seconds']:8.1f} {r['peak_gb']:8.2f} {r['rss_after_gb']:13.2f}")


if __name__ == "__main__":
    main()
