"""Cost and quality at session scale (issue 19 item 5): wall time, peak memory and step time per
stage and preset, and R^2 against the truth.

    python benchmarks/scale.py [--cases emg-1min emg-10min ...] [--presets smoke quick default]
                               [--out results/table.md] [--workdir DIR] [--keep] [--set KEY=VALUE]
    python benchmarks/scale.py --quick-check [--out DIR/table.md]     # tiny sizes, seconds (tests)
    python benchmarks/scale.py --generate-only --cases emg-60min     # the data alone: size, time, memory

Cases (synthetic, with ground truth; written a block at a time by
``nwb_autolfads.testing.chunked_emg_nwb`` / ``chunked_spikes_nwb``, so generating them is bounded
in memory):

- ``emg-1min``, ``emg-10min``, ``emg-60min``: raw EMG of 16 muscles at 2 kHz (int16, gzip, as
  acquisition systems store it) driven by a Lorenz latent; truth = the true activations;
- ``spikes-30u-20min``, ``spikes-100u-20min``: 20 minutes of 30 or 100 units (Poisson, Lorenz
  latent, about 13 spikes/s), run with ``--model spikes``; truth = the true rates.

Each (case, preset) is run by ``nwb_autolfads.run`` (writing its output file) in a fresh
process, so its peak memory is its own. Columns:

- ``members/gen``: members per PBT generation (1: one model);
- ``budget``: the training budget the preset states (epochs today, steps once budgets are steps);
- ``epochs``: epochs trained per member (summed over generations for a population);
- ``steps``: optimisation steps, all members together (epochs x ceil(training windows / batch size)
  where the run does not count steps itself);
- ``step ms``: training wall time / steps;
- ``read`` ... ``write``: wall time of each stage and peak resident memory during it (from the
  run's own record ``RunResult.stages``: read = open the file and find the data; preprocess =
  read and filter the EMG chunk by chunk / bin the spikes, hash the input; train = chop windows
  and train; infer = posterior estimates and merging; write = the output file). The peak is the
  process's ``ru_maxrss`` where it rose during the stage (exact), else (marked ``~``) the largest
  resident size sampled every 50 ms in the stage (sampling can miss a short spike; a stage
  shorter than 50 ms takes the nearest sample);
  ``+ W MB child``: the peak of a child process that ended in the stage, larger than any before
  (PBT workers; a helper process forked from the run counts the pages it shares with it too);
- ``total s``: the whole run; ``R^2 model`` and ``R^2 baseline``: R^2 against the truth of a
  cross-validated per-channel affine map (5 contiguous folds, ``nwb_autolfads.evaluation.comparison.nested_cv``,
  as ``nwb-autolfads evaluate`` scores truth) of the model's activations / rates, and of the best
  zero-phase low-pass of the rectified EMG / best Gaussian smoothing of the spikes (parameters
  chosen inside each training part, never on the test fold); mean over channels.

``--out PATH.md`` writes the table as markdown and every number as JSON (``PATH.json``).
Runs in progress print one line per run on stderr. Timings depend on what else runs on the
machine: the header records the cores and the load average.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import shutil
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

CASES: dict[str, dict] = {
    "emg-1min": {"kind": "emg", "duration": 60.0, "muscles": 16, "rate": 2000.0},
    "emg-10min": {"kind": "emg", "duration": 600.0, "muscles": 16, "rate": 2000.0},
    "emg-60min": {"kind": "emg", "duration": 3600.0, "muscles": 16, "rate": 2000.0},
    "spikes-30u-20min": {"kind": "spikes", "duration": 1200.0, "units": 30},
    "spikes-100u-20min": {"kind": "spikes", "duration": 1200.0, "units": 100},
}
QUICK_CHECK_DURATION = {"emg": 6.0, "spikes": 10.0}  # seconds, for --quick-check
QUICK_CHECK_CASES = ["emg-1min", "spikes-30u-20min"]
STAGES = ("read", "preprocess", "train", "infer", "write")
SAMPLE_EVERY_S = 0.05


# ----------------------------------------------------------------------------------- the data
def case_file(workdir: Path, name: str, spec: dict, seed: int) -> Path:
    kind = spec["kind"]
    size = f"{spec['muscles']}ch" if kind == "emg" else f"{spec['units']}u"
    return workdir / f"{name}_{kind}_{spec['duration']:g}s_{size}_seed{seed}.nwb"


def generate(path: Path, spec: dict, seed: int) -> dict:
    """Write the case's file (in this process); returns seconds, MB on disk and peak RSS (MB)."""
    from nwb_autolfads.testing import chunked_emg_nwb, chunked_spikes_nwb

    t0 = time.perf_counter()
    if spec["kind"] == "emg":
        chunked_emg_nwb(path, duration=spec["duration"], rate=spec["rate"], n_muscles=spec["muscles"], seed=seed)
    else:
        chunked_spikes_nwb(path, duration=spec["duration"], n_units=spec["units"], seed=seed)
    return {"seconds": time.perf_counter() - t0, "file_mb": path.stat().st_size / 2**20,
            "peak_rss_mb": _maxrss_mb()}


def _maxrss_mb(who: str = "self") -> float | None:
    try:
        import resource
    except ImportError:
        return None
    flag = resource.RUSAGE_SELF if who == "self" else resource.RUSAGE_CHILDREN
    return resource.getrusage(flag).ru_maxrss / (2**20 if sys.platform == "darwin" else 2**10)


# ----------------------------------------------------------------------------- one measurement
class RssSampler(threading.Thread):
    """Resident memory of this process every ``SAMPLE_EVERY_S`` s, as (perf_counter, MB) pairs
    (Linux: /proc/self/statm; elsewhere nothing is sampled)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[float, float]] = []
        self._halt = threading.Event()
        self._page_mb = os.sysconf("SC_PAGE_SIZE") / 2**20 if hasattr(os, "sysconf") else 0.0

    def run(self) -> None:
        try:
            with open("/proc/self/statm") as f:
                while not self._halt.is_set():
                    f.seek(0)
                    self.samples.append((time.perf_counter(), int(f.read().split()[1]) * self._page_mb))
                    self._halt.wait(SAMPLE_EVERY_S)
        except OSError:
            return

    def stop(self) -> None:
        self._halt.set()
        self.join()


def stage_rows(stages: dict, t_call: float, samples: list[tuple[float, float]],
               children_at_call: float | None = None) -> dict:
    """Per stage: seconds, peak MB (see the module docstring) and how it was found."""
    out, t, previous_high, children_before = {}, t_call, 0.0, children_at_call
    for name, rec in stages.items():
        start, t = t, t + rec["seconds"]
        high = rec.get("maxrss_mb")
        inside = [mb for when, mb in samples if start <= when <= t]
        if high is not None and high > previous_high:
            peak, how = high, "ru_maxrss"
        else:
            if not inside and samples:  # a stage shorter than the sampling interval: the nearest sample
                inside = [min(samples, key=lambda s: max(start - s[0], s[0] - t, 0.0))[1]]
            peak, how = (max(inside), "sampled") if inside else (None, "none")
        previous_high = max(previous_high, high or 0.0)
        children = rec.get("children_maxrss_mb")
        # a child process's peak, where one larger than any before ended in this stage (PBT workers; short
        # helper processes forked from this one count their shared pages too)
        workers = children if children is not None and children > (children_before or 0.0) else None
        children_before = max(children_before or 0.0, children or 0.0)
        out[name] = {"seconds": rec["seconds"], "peak_mb": peak, "peak_from": how, "workers_peak_mb": workers,
                     "children_maxrss_mb": children}
    return out


def training_counts(res) -> dict:
    """Members per generation, the budget stated, epochs per member and optimisation steps."""
    cfg, t = res.config, res.training
    population = int(cfg.pbt.population)
    steps_per_epoch = math.ceil(res.n_train / cfg.train.batch_size)
    step_budget = getattr(cfg.train, "max_steps", None)  # budgets in steps (issue 19 item 1)
    history = t.history or []
    if population > 1:
        generations = int(t.pbt_summary["generations"]) if t.pbt_summary else 0
        gen_steps = getattr(cfg.pbt, "generation_steps", None)
        if gen_steps is not None:
            budget = f"{population} x {generations} gen x {gen_steps} steps"
            steps = population * generations * int(gen_steps)
            epochs = None
        else:
            budget = f"{population} x {generations} gen x {cfg.pbt.generation_epochs} epochs"
            epochs = generations * int(cfg.pbt.generation_epochs)
            steps = population * epochs * steps_per_epoch
    else:
        counted = [r["step"] for r in history if isinstance(r, dict) and "step" in r]
        if step_budget is not None:
            budget = f"<= {step_budget} steps"
            steps = int(max(counted)) if counted else None
            epochs = None
        else:
            budget = f"<= {cfg.train.max_epochs} epochs"
            epochs = len(history)
            steps = int(max(counted)) if counted else epochs * steps_per_epoch
    return {"members": population, "budget": budget, "epochs": epochs, "steps": steps,
            "steps_per_epoch": steps_per_epoch, "n_train": res.n_train, "n_valid": res.n_valid,
            "train_seconds": t.seconds, "step_ms": 1e3 * t.seconds / steps if steps else None}


def quality(res, path: Path, kind: str) -> dict:
    """R^2 against the truth of the model and of the best baseline (see the module docstring)."""
    from nwb_autolfads.evaluation import baselines as bl
    from nwb_autolfads.evaluation.comparison import nested_cv
    from nwb_autolfads.testing import read_truth

    bin_size = res.config.windows.bin_size
    fs = 1.0 / bin_size
    times = np.asarray(res.times, dtype=float)
    segments = bl.bin_segments(times, bin_size)

    if kind == "emg":
        truth = read_truth(path, times, bin_size, "true_activations")
        model = np.asarray(res.activations, dtype=float)
        rect = np.asarray(res.rectified, dtype=float)
        candidates = {lab: bl.per_segment(lambda v, p=p: bl.lowpass(v, fs, **p), rect, segments)
                      for lab, p in bl.lowpass_grid(fs).items()}
        baseline = "best low-pass of rectified EMG"
    else:
        from pynwb import NWBHDF5IO

        truth = read_truth(path, times, bin_size, "true_rates")
        model = np.asarray(res.rates, dtype=float)
        with NWBHDF5IO(str(path), "r") as io:
            units = io.read().units
            spikes = [np.asarray(units["spike_times"][i]) for i in range(len(units))]
        ids = list(res.unit_ids)
        counts = np.stack([np.searchsorted(spikes[u], times + bin_size / 2) - np.searchsorted(spikes[u], times -
                                                                                                bin_size / 2)
                           for u in ids], axis=1).astype(float)
        truth = truth[:, ids]
        candidates = {f"{s * 1e3:g} ms": bl.per_segment(lambda v, s=s: bl.gaussian_smooth(v, bin_size, s), counts,
                                                        segments)
                      for s in bl.SMOOTHING_SD_S}
        baseline = "best Gaussian smoothing of the spikes"
    scored_model = nested_cv({"": model}, truth, lags=0, per_channel=True)
    scored_base = nested_cv(candidates, truth, lags=0, per_channel=True)
    chosen = max(set(scored_base["chosen"]), key=scored_base["chosen"].count)
    return {"r2_model": scored_model["mean"], "r2_baseline": scored_base["mean"], "baseline": baseline,
            "baseline_chosen": chosen, "r2_model_min": float(np.nanmin(scored_model["per_target"])),
            "r2_baseline_min": float(np.nanmin(scored_base["per_target"]))}


def measure(case: str, spec: dict, preset: str, path: Path, out_json: Path, sets: list[str], seed: int) -> None:
    """Runs in a fresh process: one run of the pipeline, its stages and its quality, as JSON."""
    import torch

    import nwb_autolfads
    from nwb_autolfads.cli import _parse_sets

    overrides = _parse_sets(sets)
    if spec["kind"] == "spikes":
        overrides = {"data.model": "spikes", **overrides}
    sampler = RssSampler()
    sampler.start()
    children_at_call = _maxrss_mb("children")
    t_call = time.perf_counter()
    res = nwb_autolfads.run(path, output=path.with_name(f"{path.stem}_{preset}_autolfads.nwb"), preset=preset,
                            overrides=overrides, seed=seed, overwrite=True, progress=False)
    wall = time.perf_counter() - t_call
    sampler.stop()
    if not getattr(res, "stages", None):
        raise SystemExit("this version of nwb_autolfads.run records no stages (RunResult.stages): nothing to report")
    row = {"case": case, "preset": preset, "data": spec, "total_seconds": wall,
           "stages": stage_rows(res.stages, t_call, sampler.samples, children_at_call), **training_counts(res),
           "device": res.device, "torch_threads": torch.get_num_threads(), "n_windows": res.n_windows,
           "window_bins": res.config.windows.window_bins, "bin_size": res.config.windows.bin_size,
           "stopped_early": res.training.stopped_early}
    row["quality"] = quality(res, path, spec["kind"])
    row["peak_rss_mb"] = _maxrss_mb()  # the whole process, scoring included
    out_json.write_text(json.dumps(row))


# ------------------------------------------------------------------------------------ the table
def _fmt(v, spec: str = ".3g", none: str = "-") -> str:
    return none if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def _stage_cell(st: dict | None) -> str:
    if not st:
        return "-"
    cell = f"{st['seconds']:.1f} s, {_fmt(st['peak_mb'], '.0f')} MB"
    if st["peak_from"] == "sampled":
        cell += "~"
    if st.get("workers_peak_mb"):
        cell += f" + {st['workers_peak_mb']:.0f} MB child"
    return cell


HEADER = (["case", "preset", "members/gen", "budget", "epochs", "steps", "step ms"] + list(STAGES)
          + ["total s", "R^2 model", "R^2 baseline"])


def table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join(" --- " for _ in HEADER) + "|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['case']} | {r['preset']} | failed: {r['error']} |" + " |" * (len(HEADER) - 3))
            continue
        q = r["quality"]
        cells = [r["case"], r["preset"], str(r["members"]), r["budget"], _fmt(r["epochs"], "d"), _fmt(r["steps"], "d"),
                 _fmt(r["step_ms"], ".1f")] + [_stage_cell(r["stages"].get(s)) for s in STAGES] + [
                 f"{r['total_seconds']:.1f}", _fmt(q["r2_model"], ".3f"),
                 f"{_fmt(q['r2_baseline'], '.3f')} ({q['baseline_chosen']})"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine() -> dict:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    git = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                         cwd=Path(__file__).parent)
    return {"cores": cores, "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "platform": platform.platform(), "python": platform.python_version(),
            "git": git.stdout.strip() or None, "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", nargs="+", choices=list(CASES), default=None,
                   help="default: every case (--quick-check: " + " ".join(QUICK_CHECK_CASES) + ")")
    p.add_argument("--presets", nargs="+", default=None, help="default: smoke quick default (--quick-check: smoke)")
    p.add_argument("--quick-check", action="store_true",
                   help=f"tiny sizes ({QUICK_CHECK_DURATION['emg']:g} s of EMG, {QUICK_CHECK_DURATION['spikes']:g} s "
                   "of spikes): checks the benchmark itself in seconds")
    p.add_argument("--generate-only", action="store_true",
                   help="write each case's file, print its size, time and peak memory, delete it (unless --keep)")
    p.add_argument("--out", type=Path, default=None, help="write the table to OUT (markdown) and OUT.json")
    p.add_argument("--workdir", type=Path, default=None, help="where the data and outputs go (default: a temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the generated files and outputs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="settings for every run")
    p.add_argument("--measure", nargs=4, metavar=("CASE", "PRESET", "FILE", "OUT"), help=argparse.SUPPRESS)
    p.add_argument("--generate", nargs=2, metavar=("CASE", "FILE"), help=argparse.SUPPRESS)
    p.add_argument("--spec", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.measure or args.generate:  # child processes
        spec = json.loads(args.spec)
        if args.generate:
            print(json.dumps(generate(Path(args.generate[1]), spec, args.seed)))
        else:
            case, preset, path, out = args.measure
            measure(case, spec, preset, Path(path), Path(out), args.set, args.seed)
        return 0

    cases = args.cases or (QUICK_CHECK_CASES if args.quick_check else list(CASES))
    presets = args.presets or (["smoke"] if args.quick_check else ["smoke", "quick", "default"])
    specs = {c: dict(CASES[c]) for c in cases}
    if args.quick_check:
        for spec in specs.values():
            spec["duration"] = QUICK_CHECK_DURATION[spec["kind"]]
    own_dir = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="nwb-autolfads-scale-")) if own_dir else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    info = machine()
    print(f"# scale benchmark, {info['date']}, git {info['git']}, {info['cores']} cores, load average "
          f"{', '.join(f'{x:.1f}' for x in info['load_average'] or [])}" + (" (quick check: tiny sizes)"
                                                                               if args.quick_check else ""),
          file=sys.stderr)
    rows, data = [], {}
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        for case, spec in specs.items():
            path = case_file(workdir, case, spec, args.seed)
            if not path.exists():
                proc = subprocess.run([sys.executable, __file__, "--generate", case, str(path), "--spec",
                                       json.dumps(spec), "--seed", str(args.seed)], capture_output=True, text=True,
                                      env=env)
                if proc.returncode != 0:
                    print(proc.stderr[-3000:], file=sys.stderr)
                    raise SystemExit(f"generating {case} failed")
                data[case] = json.loads(proc.stdout.strip().splitlines()[-1])
                print(f"  {case}: wrote {path.name}: {data[case]['file_mb']:.0f} MB in {data[case]['seconds']:.1f} s, "
                      f"peak {data[case]['peak_rss_mb']:.0f} MB", file=sys.stderr)
            if args.generate_only:
                if not args.keep:
                    path.unlink()
                continue
            for preset in presets:
                out = workdir / f"{case}_{preset}.json"
                cmd = [sys.executable, __file__, "--measure", case, preset, str(path), str(out), "--spec",
                       json.dumps(spec), "--seed", str(args.seed)] + [f"--set={s}" for s in args.set]
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
                if proc.returncode != 0 or not out.exists():
                    last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
                    rows.append({"case": case, "preset": preset, "error": last[:200]})
                    print(f"  {case} {preset}: FAILED: {proc.stderr[-2000:]}", file=sys.stderr)
                    continue
                row = json.loads(out.read_text())
                if not args.keep:
                    out.unlink()
                rows.append(row)
                print(f"  {case} {preset}: {row['total_seconds']:.1f} s, R^2 model {row['quality']['r2_model']:.3f}"
                      f" / baseline {row['quality']['r2_baseline']:.3f}", file=sys.stderr)
            if not args.keep:
                for f in workdir.glob(f"{path.stem}*"):  # the file, its result and the result's model folder
                    shutil.rmtree(f) if f.is_dir() else f.unlink()
    finally:
        if own_dir and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    info["load_average_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    if args.generate_only:
        text = "| case | file MB | seconds | peak RSS MB |\n| --- | --- | --- | --- |\n" + "\n".join(
            f"| {c} | {d['file_mb']:.0f} | {d['seconds']:.1f} | {d['peak_rss_mb']:.0f} |" for c, d in data.items())
    else:
        text = table(rows)
    head = (f"Scale benchmark ({'quick check, tiny sizes; ' if args.quick_check else ''}git {info['git']}, "
            f"{info['date']}): {info['cores']} cores, load average {_fmt((info['load_average'] or [None])[0], '.1f')} "
            f"at the start, {_fmt((info['load_average_end'] or [None])[0], '.1f')} at the end.")
    print(head)
    print()
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(head + "\n\n" + text + "\n")
        args.out.with_suffix(".json").write_text(json.dumps(
            {"machine": info, "quick_check": args.quick_check, "cases": specs, "generated": data, "rows": rows},
            indent=1, default=float))
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
