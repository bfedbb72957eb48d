"""Build (or check) the pinned results of fixed-seed runs: ``pinned.json`` beside this script.

Each case runs :func:`nwb_autolfads.run` on a small mock NWB file with a fixed seed, one torch
thread and no file written, and records the SHA-256 of every output array (float64 bytes) with a
few values to read. ``tests/test_pinned_results.py`` reruns the cases and compares, so a change
that alters the numbers a seed gives (a refactor that reorders random draws, a changed default)
fails CI until this file is rebuilt on purpose and the change is said in the commit.

    python tests/data/pinned/make_pinned.py           # rebuild pinned.json
    python tests/data/pinned/make_pinned.py --check   # compare, print what differs
"""
from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PINNED = HERE / "pinned.json"

# name -> (mock file arguments, run overrides); the smoke preset underneath every case
CASES = {
    "emg_population": ({"n_muscles": 4}, {}),
    "emg_single_sampled": ({"n_muscles": 4}, {"pbt.population": 1, "inference.mode": "sample",
                                               "inference.n_samples": 4}),
    "emg_and_spikes": ({"n_muscles": 3, "n_units": 5}, {"data.model": "emg+spikes", "pbt.population": 1}),
}
ARRAYS = {"activations": "activations", "rates": "rates", "factors": "factors", "inputs": "inferred_inputs",
          "activations_lower": "activations_lower", "activations_upper": "activations_upper"}
"""Pinned key -> RunResult attribute (the keys of pinned.json predate the attribute names)."""


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.float64).tobytes()).hexdigest()


def compute_case(name: str, workdir: Path) -> dict:
    import torch

    import nwb_autolfads
    from nwb_autolfads.testing import mock_emg_nwb

    file_kw, overrides = CASES[name]
    path = mock_emg_nwb(workdir / f"{name}.nwb", duration=12.0, rate=1000.0, seed=3, **file_kw)
    torch.set_num_threads(1)
    res = nwb_autolfads.run(path, preset="smoke", seed=11, write=False, progress=False,
                            overrides={"train.threads": 1, "pbt.workers": 1, **overrides})
    out = {}
    for key, attr in ARRAYS.items():
        a = getattr(res, attr, None)
        if a is None or np.asarray(a).size == 0:
            continue
        a = np.asarray(a)
        out[key] = {"shape": list(a.shape), "sha256": _digest(a), "first": [float(v) for v in a.ravel()[:3]]}
    return out


def compute_all() -> dict:
    with tempfile.TemporaryDirectory() as d:
        return {name: compute_case(name, Path(d)) for name in CASES}


def main(argv: list[str]) -> int:
    got = compute_all()
    if "--check" in argv:
        want = json.loads(PINNED.read_text())
        bad = [f"{c}.{k}" for c in want for k in want[c] if got.get(c, {}).get(k) != want[c][k]]
        print("differ: " + ", ".join(bad) if bad else "all pinned results identical")
        return 1 if bad else 0
    PINNED.write_text(json.dumps(got, indent=1) + "\n")
    print(f"wrote {PINNED}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
