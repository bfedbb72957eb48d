"""Preprocessing a long raw EMG recording: chunked (read from the file a chunk at a time) vs in memory.

    python benchmarks/big_emg.py [--minutes 30] [--channels 16] [--rate 10000] [--dir /tmp/nwb-autolfads-big]

Writes (once; reused when it exists) an NWB file with ``--minutes`` of raw ``--channels``-channel
EMG at ``--rate`` Hz as int16 with a conversion factor, HDF5-chunked and gzip-compressed, the way
acquisition systems store it; the data are generated and written block by block, so writing
never holds the whole array either. Then preprocesses it twice, each in a fresh process:

- chunked: what ``nwb-autolfads run`` does: ``read_emg(lazy=True)`` and ``preprocess_emg`` with
  its default chunks (the file is read a chunk at a time);
- in memory: the whole recording loaded into one float64 array and each segment filtered whole
  (``chunk_samples=0``).

Prints wall time, time per million samples, peak resident memory (ru_maxrss) and the largest
difference between the two results (relative to each channel's scale).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def write_file(path: Path, minutes: float, channels: int, rate: float, seed: int = 0) -> None:
    from datetime import datetime, timezone

    from hdmf.backends.hdf5.h5_utils import H5DataIO
    from hdmf.data_utils import GenericDataChunkIterator
    from pynwb import NWBHDF5IO, NWBFile, TimeSeries

    n = int(minutes * 60 * rate)
    conversion = 5e-3 / 32767  # int16 full scale = 5 mV
    phase = np.random.default_rng(seed).uniform(0, 2 * np.pi, channels)

    class Blocks(GenericDataChunkIterator):
        """Generates the recording 10 s at a time as it is written."""

        def _get_data(self, selection):
            rows = selection[0]
            rng = np.random.default_rng([seed, rows.start])
            t = np.arange(rows.start, rows.stop)[:, None] / rate
            envelope = 0.6e-3 * (1.2 + np.sin(2 * np.pi * 0.7 * t + phase) + 0.5 * np.sin(2 * np.pi * 3.1 * t))
            volts = envelope * rng.standard_normal((t.shape[0], channels)) + 0.2e-3 * np.sin(2 * np.pi * 60 * t)
            return np.clip(np.round(volts / conversion), -32767, 32767).astype(np.int16)[:, selection[1]]

        def _get_maxshape(self):
            return (n, channels)

        def _get_dtype(self):
            return np.dtype(np.int16)

    data = H5DataIO(Blocks(buffer_shape=(int(10 * rate), channels), chunk_shape=(int(rate), channels),
                           display_progress=False),
                    compression="gzip", compression_opts=4)
    nwb = NWBFile(session_description="benchmark: long raw EMG", identifier="big-emg",
                  session_start_time=datetime(2026, 1, 1, tzinfo=timezone.utc))
    names = ", ".join(f"m{i}" for i in range(channels))
    nwb.add_acquisition(TimeSeries(name="EMG", data=data, unit="volts", rate=rate, conversion=conversion,
                                   description=f"raw EMG; muscles: {names}"))
    tmp = path.with_name(f".{path.stem}.partial.nwb")
    with NWBHDF5IO(str(tmp), "w") as io:
        io.write(nwb)
    tmp.rename(path)


def measure(path: str, mode: str, out: str) -> None:
    """Runs in a fresh process: preprocess, save the result, print timings as JSON."""
    from nwb_autolfads.config import PreprocessConfig
    from nwb_autolfads.data.preprocessing import preprocess_emg
    from nwb_autolfads.io.reading import open_nwb
    from nwb_autolfads.io.series import read_emg

    t0 = time.perf_counter()
    with open_nwb(path) as (_io, nwb):
        sig = read_emg(nwb, lazy=(mode == "chunked"))
        t_read = time.perf_counter() - t0
        pre = preprocess_emg(sig, PreprocessConfig(), 0.01, chunk_samples=None if mode == "chunked" else 0)
    wall = time.perf_counter() - t0
    np.savez(out, rectified=np.concatenate(pre.rectified), scales=pre.scales)
    print(json.dumps({"mode": mode, "wall_s": wall, "read_s": t_read, "samples": sig.n_samples,
                      "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=30.0)
    p.add_argument("--channels", type=int, default=16)
    p.add_argument("--rate", type=float, default=10000.0)
    p.add_argument("--dir", default="/tmp/nwb-autolfads-big")
    p.add_argument("--modes", nargs="+", default=["chunked", "in-memory"], choices=["chunked", "in-memory"])
    p.add_argument("--measure", nargs=3, metavar=("PATH", "MODE", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.measure:
        measure(*args.measure)
        return
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"emg_{args.minutes:g}min_{args.channels}ch_{args.rate:g}Hz.nwb"
    if not path.exists():
        t0 = time.perf_counter()
        write_file(path, args.minutes, args.channels, args.rate)
        print(f"wrote {path} ({path.stat().st_size / 2**20:.0f} MB) in {time.perf_counter() - t0:.0f} s")
    rows, results = [], {}
    for mode in args.modes:
        out = folder / f"result_{mode}.npz"
        proc = subprocess.run([sys.executable, __file__, "--measure", str(path), mode, str(out)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"{mode} failed:\n{proc.stderr[-3000:]}")
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        results[mode] = np.load(out)
    n_values = rows[0]["samples"] * args.channels
    print(f"\n{args.minutes:g} min x {args.channels} channels at {args.rate:g} Hz "
          f"({rows[0]['samples']:,} samples, {n_values * 8 / 2**30:.2f} GiB as float64)")
    print(f"{'mode':<10} {'wall s':>8} {'s per 1M samples':>17} {'peak MB':>9}")
    for r in rows:
        print(f"{r['mode']:<10} {r['wall_s']:>8.1f} {r['wall_s'] / r['samples'] * 1e6:>17.3f} {r['peak_mb']:>9.0f}")
    if len(results) == 2:
        a, b = results["chunked"], results["in-memory"]
        diff = np.max(np.abs(a["rectified"] - b["rectified"]) / b["scales"][None, :])
        print(f"largest difference chunked vs in memory: {diff:.2e} (in units of each channel's 95th percentile)")


if __name__ == "__main__":
    main()
