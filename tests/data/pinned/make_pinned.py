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

The CPU model matters too, below the capability: the same torch and the same capability on another
x86 CPU (seen: AVX-512 pins built on one Xeon, checked on another) gives other last bits, from
the math libraries' own dispatch. So each capability's pins record the ``machine`` they were built
on (:func:`machine_fingerprint`: the CPU's model and instruction-set flags, and the versions of
torch, numpy and scipy). On that machine the test asks for every bit; on any other it asks that
each array's ``summary`` (mean, SD, min, max and 8 values spread over it) agree to 1e-4 of the
array's scale: last bits and their growth through training pass, a changed seed, draw order or
default (which moves values by far more) fails.

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


def summary(a: np.ndarray) -> list[float]:
    """Numbers that describe ``a`` to well beyond last bits: mean, SD, min, max and the values at
    8 evenly spaced positions of its flattened float64 form."""
    a = np.ascontiguousarray(a, dtype=np.float64).ravel()
    picks = a[np.linspace(0, a.size - 1, 8).round().astype(int)]
    return [float(v) for v in (a.mean(), a.std(), a.min(), a.max(), *picks)]


def close_to(got: dict, want: dict, rel: float = 1e-4) -> bool:
    """Whether two pins of one array agree beyond last bits: same shape, and every ``summary``
    value within ``rel`` x the array's largest absolute value."""
    if got["shape"] != want["shape"]:
        return False
    g, w = np.asarray(got["summary"]), np.asarray(want["summary"])
    scale = max(abs(w[2]), abs(w[3]), 1e-300)
    return bool(np.all(np.abs(g - w) <= rel * scale))


def machine_fingerprint() -> str:
    """This machine as far as the last bits of the pins go: the CPU model and its flags (Linux's
    /proc/cpuinfo; platform.processor() elsewhere) and the torch, numpy and scipy versions, as a
    short SHA-256."""
    import platform

    import scipy
    import torch

    cpu = platform.processor()
    try:
        info = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = "|".join(sorted({line.split(":", 1)[1].strip() for line in info
                               if line.split(":", 1)[0].strip() in ("model name", "flags", "Features")}))
    except OSError:
        pass
    text = f"{platform.machine()}|{cpu}|torch {torch.__version__}|numpy {np.__version__}|scipy {scipy.__version__}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def compute_case(name: str, workdir: Path, seed: int = 11) -> dict:
    import torch

    import nwb_autolfads
    from nwb_autolfads.testing import mock_emg_nwb

    file_kw, overrides = CASES[name]
    path = mock_emg_nwb(workdir / f"{name}.nwb", duration=12.0, rate=1000.0, seed=3, **file_kw)
    torch.set_num_threads(1)
    res = nwb_autolfads.run(path, preset="smoke", seed=seed, write=False, progress=False,
                            overrides={"train.threads": 1, "pbt.workers": 1, **overrides})
    out = {}
    for key, attr in ARRAYS.items():
        a = getattr(res, attr, None)
        if a is None or np.asarray(a).size == 0:
            continue
        a = np.asarray(a)
        out[key] = {"shape": list(a.shape), "sha256": _digest(a), "first": [float(v) for v in a.ravel()[:3]],
                    "summary": summary(a)}
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
    """The pins: ``{machine:capability: {case: {key: {"shape", "sha256", "first", "summary"}}}}``."""
    return json.loads(PINNED.read_text())["by_cpu_capability"]


def built_on() -> dict:
    """``{machine:capability: machine_fingerprint()}`` of the machine each capability's pins were built on."""
    return json.loads(PINNED.read_text()).get("built_on", {})


def compute_all() -> dict:
    with tempfile.TemporaryDirectory() as d:
        return {name: compute_case(name, Path(d)) for name in CASES}


def _compute_with(capability: str) -> tuple[str, dict, str]:
    """Every case in a fresh process whose torch kernels were told to use ``capability``; returns
    the capability that process really used (lower, where the CPU lacks the one asked), the pins
    and the machine's fingerprint."""
    env = {**os.environ, "ATEN_CPU_CAPABILITY": capability}
    out = subprocess.run([sys.executable, __file__, "--json"], env=env, capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    return got["capability"], got["pins"], got["machine"]


def main(argv: list[str]) -> int:
    if "--json" in argv:  # one process's pins (see _compute_with)
        print(json.dumps({"capability": cpu_capability(), "machine": machine_fingerprint(), "pins": compute_all()}))
        return 0
    if "--check" in argv:
        want = load().get(cpu_capability())
        if want is None:
            print(f"no pins for this CPU capability ({cpu_capability()})")
            return 1
        got = compute_all()
        same = built_on().get(cpu_capability()) == machine_fingerprint()
        bad = [f"{c}.{k}" for c in want for k in want[c]
               if (got.get(c, {}).get(k, {}).get("sha256") != want[c][k]["sha256"] if same
                   else not close_to(got.get(c, {}).get(k, {"shape": None}), want[c][k]))]
        how = "identical" if same else "within 1e-4 (pins built on another machine)"
        print("differ: " + ", ".join(bad) if bad else f"all pinned results {how} ({cpu_capability()})")
        return 1 if bad else 0
    pins = load() if PINNED.exists() else {}
    machines = built_on() if PINNED.exists() else {}
    for asked in CAPABILITIES:
        used, got, machine = _compute_with(asked)
        if used.split(":")[-1].lower() != asked:
            print(f"{asked}: this CPU cannot run it (torch used {used}); its pins kept")
            continue
        pins[used], machines[used] = got, machine
        print(f"{used}: built")
    PINNED.write_text(json.dumps({"torch": __import__("torch").__version__, "built_on": machines,
                                  "by_cpu_capability": pins}, indent=1) + "\n")
    print(f"wrote {PINNED}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
