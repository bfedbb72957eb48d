"""Synthetic EMG -> nwb-autolfads (Python API) -> load the result -> plot.

    python examples/synthetic_emg_example.py [--preset quick] [--outdir DIR]

1. writes a synthetic NWB file holding 1 minute of raw EMG from 12 muscles at 2 kHz whose true
   activations are known (nwb_autolfads.testing);
2. runs the whole pipeline through the Python API (nwb_autolfads.run);
3. opens the result with pynwb like any other NWB file, compares the inferred activations and
   the rectified EMG with the truth, and saves a figure (example_traces.png).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from pynwb import NWBHDF5IO  # noqa: E402

import nwb_autolfads  # noqa: E402
from nwb_autolfads.evaluation.metrics import channel_correlation  # noqa: E402
from nwb_autolfads.testing import mock_emg_nwb, read_truth  # noqa: E402


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="quick", help="smoke, quick or default (default: quick)")
    parser.add_argument("--outdir", default="example_output", help="where files and the figure go")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of synthetic EMG")
    args = parser.parse_args(argv)

    outdir = Path(args.outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    source = mock_emg_nwb(outdir / "synthetic_emg.nwb", duration=args.duration, rate=2000.0, n_muscles=12, seed=0)
    print(f"wrote {source}")

    result = nwb_autolfads.run(source, output=outdir / "synthetic_emg_autolfads.nwb", preset=args.preset,
                               overwrite=True)
    print(result.summary())

    # The result is an ordinary NWB file: load the run as an xarray.Dataset ...
    ds = nwb_autolfads.load_results(result.output)
    activations = ds.emg_activations.values  # (time, channel), in the source's units
    times = ds.time.values
    names = [str(c) for c in ds.channel.values]
    unit_name = ds.emg_activations.attrs["units"]
    # ... and the raw EMG with plain pynwb (the run links to it: run.source_emg).
    with NWBHDF5IO(str(result.output), "r") as io:
        raw = io.read().processing["autolfads"][ds.attrs["run"]].source_emg
        raw_t = raw.starting_time + np.arange(raw.data.shape[0]) / raw.rate
        raw_data = raw.data[:]

    truth = read_truth(source, times, ds.attrs["bin_size"])
    r_model = channel_correlation(activations, truth)
    r_rect = channel_correlation(result.rectified, truth)
    print("correlation with the true activation per muscle (model / rectified EMG):")
    for name, a, b in zip(names, r_model, r_rect):
        print(f"  {name:5s} {a:6.3f} / {b:6.3f}")
    print(f"  mean  {np.nanmean(r_model):6.3f} / {np.nanmean(r_rect):6.3f}")

    to_uv = 1e6 if unit_name == "volts" else 1.0  # plot volts as microvolts
    unit = "µV" if unit_name == "volts" else unit_name
    show = [0, 1, 2]
    window = (times >= 10.0) & (times < 14.0)
    raw_window = (raw_t >= 10.0) & (raw_t < 14.0)
    fig, axes = plt.subplots(len(show), 1, figsize=(10, 2.4 * len(show)), sharex=True)
    for ax, k in zip(axes, show):
        # the truth is dimensionless: scale it to the estimate's median for display
        scale = np.nanmedian(activations[:, k]) / np.nanmedian(truth[:, k])
        rect = result.rectified[window, k] * to_uv
        ax.plot(raw_t[raw_window], raw_data[raw_window, k] * to_uv, color="0.85", lw=0.5, label="raw EMG")
        ax.plot(times[window], rect, color="0.5", lw=0.8, label="rectified, 10 ms bins")
        ax.plot(times[window], truth[window, k] * scale * to_uv, color="k", lw=1.5, ls="--",
                label="true activation (scaled)")
        ax.plot(times[window], activations[window, k] * to_uv, color="C3", lw=1.5, label="AutoLFADS")
        ax.set_ylabel(f"{names[k]} ({unit})")
        ax.set_ylim(-0.2 * np.nanmax(rect), 1.1 * np.nanmax(rect))
        ax.set_title(f"{names[k]}: r(model, truth) = {r_model[k]:.2f}, r(rectified, truth) = {r_rect[k]:.2f}",
                     fontsize=9, loc="left")
    axes[0].legend(loc="upper right", fontsize=7, ncol=4)
    axes[-1].set_xlabel("time (s)")
    fig.tight_layout()
    figure = outdir / "example_traces.png"
    fig.savefig(figure, dpi=110)
    print(f"figure: {figure}")
    return {"r_model": float(np.nanmean(r_model)), "r_rectified": float(np.nanmean(r_rect)), "figure": figure,
            "output": result.output}


if __name__ == "__main__":
    main()
