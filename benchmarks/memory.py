"""Peak memory (RSS) per stage of a run, and of a training process alone.

    python benchmarks/memory.py [--minutes 1] [--muscles 16] [--steps 50]

Table 1: ``nwb_autolfads.run`` on a synthetic raw EMG file (``--muscles`` channels at 2 kHz,
``--minutes`` long) with the 300k-parameter reference model sizes (encoders and controller 64,
generator 200, 100 factors), one model trained for ``--steps`` steps (batch 32), posterior
sampling, and the output written; the peak RSS of the process (``ru_maxrss``, a high-water mark)
after each stage: import, read, preprocess, train (with the plan's 3 timed steps), infer and
merge, write; and that of the child process the model trains in (``nwb_autolfads.train.isolation``),
when it does.

Table 2: a training process as a population's worker is one (spawned, importing only torch and
the model and training modules): the reference configuration of benchmarks/model_speed.py (30
Poisson channels, 50-bin windows, batch 32, 307k parameters) trained ``--steps`` steps, with the
NWB modules it imported (none expected). Issue 19 measured lfads-torch at 451 MB peak RSS
after 50 steps of the same configuration, and this package at 588 MB (a training process that
had imported the NWB stack).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))

REFERENCE = {"model.ic_enc_dim": 64, "model.ci_enc_dim": 64, "model.con_dim": 64, "model.co_dim": 4,
             "model.ic_dim": 64, "model.gen_dim": 200, "model.factor_dim": 100}


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


_TRAINING_PROCESS = """
import json, resource, sys, time
t0 = time.perf_counter()
import torch
from nwb_autolfads.model.augment import CoordinatedDropout, TemporalShift
from nwb_autolfads.config import ModelConfig, TrainConfig
from nwb_autolfads.model.lfads import LFADS
from nwb_autolfads.model.observations import Poisson
from nwb_autolfads.train.resources import nwb_modules_loaded
from nwb_autolfads.train.loop import WindowSampler, evaluate_nll, train_steps
torch.set_num_threads(1)
imported = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
steps = int(sys.argv[1])
g = torch.Generator().manual_seed(0)
x = torch.poisson(torch.full((32 * steps + 64, 50, 30), 0.3), generator=g)
model = LFADS(30, ModelConfig(ic_enc_dim=64, ci_enc_dim=64, con_dim=64, co_dim=4, ic_dim=64, gen_dim=200,
                              factor_dim=100), Poisson())
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
train_steps(model, opt, x[:32 * steps], TrainConfig(batch_size=32, ramp_steps=0), CoordinatedDropout(0.3),
            TemporalShift(1.0, 3), WindowSampler(32 * steps, 32), steps)
evaluate_nll(model, x[32 * steps:])
print(json.dumps({"params": sum(p.numel() for p in model.parameters()), "imported_mb": imported,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "nwb": nwb_modules_loaded(), "seconds": time.perf_counter() - t0}))
"""


def training_process(steps: int) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", _TRAINING_PROCESS, str(steps)], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def pipeline_stages(minutes: float, muscles: int, steps: int) -> list[tuple[str, float, float]]:
    """(stage, seconds, peak RSS in MB after it) for one run in this process."""
    rows = []
    t = time.perf_counter()

    def mark(stage: str) -> None:
        nonlocal t
        rows.append((stage, time.perf_counter() - t, peak_mb()))
        print(f"| {stage} | {rows[-1][1]:.1f} | {rows[-1][2]:.0f} |", flush=True)
        t = time.perf_counter()

    import torch  # noqa: F401

    from nwb_autolfads import pipeline
    from nwb_autolfads.testing import mock_emg_nwb
    mark("import (torch, pynwb, the pipeline)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "emg.nwb"
        mock_emg_nwb(path, duration=60.0 * minutes, rate=2000.0, n_muscles=muscles)
        t = time.perf_counter()

        stages = []

        def wrap(owner, name: str, stage: str):  # ``owner``: the module the pipeline calls ``name`` through
            real = getattr(owner, name)

            def wrapped(*args, **kwargs):
                out = real(*args, **kwargs)
                mark(stage)
                return out
            setattr(owner, name, wrapped)
            stages.append(stage)

        from nwb_autolfads.data import preprocessing
        from nwb_autolfads.io import series
        from nwb_autolfads.train import isolation

        wrap(series, "read_emg", "read (open the file, find the EMG)")  # called by the emg modality entry
        wrap(preprocessing, "preprocess_emg", "preprocess (filter, rectify, bin)")
        wrap(pipeline, "train_single", f"chop, plan (3 steps timed where it trains), train ({steps} steps, one model)")

        real_child = isolation.train_in_child

        def in_child(*args, **kwargs):  # the training process's own peak (it trains in a child)
            result, info = real_child(*args, **kwargs)
            print(f"| (the training process, pid {info['pid']}: started in {info['start_s']:.1f} s, NWB modules "
                  f"{info['nwb'] or 'none'}) | | {info['peak_mb']:.0f} |", flush=True)
            return result, info
        isolation.train_in_child = in_child
        wrap(pipeline, "infer_merged", "infer + merge (posterior sampling)")
        # windows: 50 bins (40 new) of 10 ms; 4 in 5 train; batch 32; the ramp: one pass over them
        n_train = int(60 * minutes / 0.4 * 0.8)
        pipeline.run(path, Path(tmp) / "out.nwb", preset="quick", progress=False,
                     overrides={**REFERENCE, "train.max_steps": steps, "train.min_steps": 0,
                                "train.ramp_steps": min(steps, max(1, -(-n_train // 32))), "train.batch_size": 32,
                                "inference.n_samples": 20, "device": "cpu"})
        mark("write (the output file)")
    missing = [s for s in stages if s not in {r[0] for r in rows}]
    if missing:  # a stage no longer called through the name wrapped: its row would be missing, not wrong
        raise SystemExit(f"stages not measured (the pipeline no longer calls them by these names): {missing}")
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=1.0)
    p.add_argument("--muscles", type=int, default=16)
    p.add_argument("--steps", type=int, default=50)
    args = p.parse_args(argv)
    proc = training_process(args.steps)  # first: a fresh process, before this one imports anything
    print(f"Training process (spawned like a worker): reference configuration, {proc['params'] / 1e3:.0f}k "
          f"parameters, {args.steps} steps, 1 thread")
    print()
    print("| stage | peak RSS (MB) |")
    print("| --- | --- |")
    print(f"| import torch and the training modules | {proc['imported_mb']:.0f} |")
    print(f"| after {args.steps} training steps and a validation | {proc['peak_mb']:.0f} |")
    print(f"\nNWB modules imported by the training process: {proc['nwb'] or 'none'}; lfads-torch, same configuration "
          "(issue 19): 451 MB")
    print()
    print(f"`nwb_autolfads.run`, {args.minutes:g} min of {args.muscles}-muscle raw EMG at 2 kHz, reference model sizes, "
          "one model")
    print()
    print("| stage | seconds | peak RSS so far (MB) |")
    print("| --- | --- | --- |")
    pipeline_stages(args.minutes, args.muscles, args.steps)  # prints a row per stage as it ends


if __name__ == "__main__":
    main()
