"""Build (or check) the pinned results of fixed-seed runs: ``pinned.json`` beside this script.

Each case runs :func:`nwb_autolfads.run` on a small mock NWB file with a fixed seed, one torch
thread and no file written, and records the SHA-256 of every output array (float64 bytes) with a
few values to read. ``tests/test_pinned_results.py`` reruns the cases and compares, so a change
that alters the numbers a seed gives (a refactor that reorders random draws, a changed default)
fails CI until this file is rebuilt on purpose and the change is said in the commit.

The bits depend on the vector instructions torch's CPU kernels use (its ATen CPU capability:
AVX512, AVX2 or DEFAULT on x86, chosen from the CPU at start-up): the same seed on an AVX2-only
machine gives other last bits in some arrays (seen: a CI machine without AVX-512). So the pins
are kept per capability, each built in a process started with ``ATEN_CPU_CAPABILITY`` set to it;
a capability this CPU cannot run keeps the pins it had.

    python tests/data/pinned/make_pinned.py           # rebuild pinned.json (every capability this CPU runs)
    python tests/data/pinned/make_pinned.py --check   # compare this process's capability, print what differs
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
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


CAPABILITIES = ("avx512", "avx2", "default")
"""ATEN_CPU_CAPABILITY values the pins are built for (torch.backends.cpu.get_cpu_capability(), lower-cased)."""


def cpu_capability() -> str:
    """The machine and the vector instructions this process's torch kernels use, the key of its
    pins: ``x86_64:AVX512``, ``x86_64:AVX2``, ``x86_64:DEFAULT`` (an ARM machine's ``DEFAULT`` is
    another key, so it is never compared with x86's)."""
    import platform

    import torch

    return f"{platform.machine()}:{torch.backends.cpu.get_cpu_capability()}"


def load() -> dict:
    """The pins: ``{machine:capability: {case: {key: {"shape", "sha256", "first"}}}}``."""
    return json.loads(PINNED.read_text())["by_cpu_capability"]


def compute_all() -> dict:
    with tempfile.TemporaryDirectory() as d:
        return {name: compute_case(name, Path(d)) for name in CASES}


def _compute_with(capability: str) -> tuple[str, dict]:
    """Every case in a fresh process whose torch kernels were told to use ``capability``; returns
    the capability that process really used (lower, where the CPU lacks the one asked) and the pins."""
    env = {**os.environ, "ATEN_CPU_CAPABILITY": capability}
    out = subprocess.run([sys.executable, __file__, "--json"], env=env, capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    return got["capability"], got["pins"]


def main(argv: list[str]) -> int:
    if "--json" in argv:  # one process's pins (see _compute_with)
        print(json.dumps({"capability": cpu_capability(), "pins": compute_all()}))
        return 0
    if "--check" in argv:
        want = load().get(cpu_capability())
        if want is None:
            print(f"no pins for this CPU capability ({cpu_capability()})")
            return 1
        got = compute_all()
        bad = [f"{c}.{k}" for c in want for k in want[c] if got.get(c, {}).get(k) != want[c][k]]
        print("differ: " + ", ".join(bad) if bad else f"all pinned results identical ({cpu_capability()})")
        return 1 if bad else 0
    pins = load() if PINNED.exists() else {}
    for asked in CAPABILITIES:
        used, got = _compute_with(asked)
        if used.split(":")[-1].lower() != asked:
            print(f"{asked}: this CPU cannot run it (torch used {used}); its pins kept")
            continue
        pins[used] = got
        print(f"{used}: built")
    PINNED.write_text(json.dumps({"torch": __import__("torch").__version__, "by_cpu_capability": pins},
                                 indent=1) + "\n")
    print(f"wrote {PINNED}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
