"""Build the three kinds of report and photograph them in a headless browser.

    python benchmarks/report_screenshot.py [--out DIR] [--preset smoke] [--duration 20] [--sample]

Writes three synthetic files and runs, evaluates and reports each:

- ``emg``: EMG alone (ground truth, no behaviour, no trials table);
- ``spikes``: a spike model of 8 units (no behaviour: the report has no score to show but
  the truth);
- ``emg+spikes``: EMG and units with kinematics, force and a trials table.

Each report is ``DIR/<kind>/report/index.html``; a full-page screenshot of it, taken with
headless Chromium (``chromium``, ``chromium-browser`` or ``google-chrome`` on the PATH; on
Debian ``apt-get install chromium``), is ``DIR/<kind>.png``. Look at the screenshots and at
every figure (``DIR/<kind>/report/*.png``) before changing the report. Prints the paths, and
the figures' names per report. ``--preset smoke`` (default) takes about a minute on 2 cores
and shows the PBT figure (a population of 2); ``--preset quick`` trains one model per run.
``--sample``: infer with 20 posterior samples (the smoke preset takes the posterior mean), so
the reports draw the credible interval's band.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

import nwb_autolfads
from nwb_autolfads.testing import mock_emg_nwb

KINDS = {
    "emg": ({"n_muscles": 4}, {"data.model": "emg"}),
    "spikes": ({"n_muscles": 2, "n_units": 8}, {"data.model": "spikes"}),
    "emg+spikes": ({"n_muscles": 4, "n_units": 6, "behavior": True}, {"data.model": "emg+spikes"}),
}


def browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("no headless browser: install chromium (apt-get install chromium) or google-chrome")


def screenshot(index: Path, png: Path, width: int = 1280, height: int = 9000) -> Path:
    """A full-page PNG of ``index`` taken by headless Chromium (the page is laid out in a
    ``width`` x ``height`` window: tall enough for every figure)."""
    cmd = [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--window-size={width},{height}", f"--screenshot={png}", index.resolve().as_uri()]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return png


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=None, help="folder for the files, reports and screenshots")
    p.add_argument("--preset", default="smoke")
    p.add_argument("--duration", type=float, default=20.0, help="seconds of synthetic data per file")
    p.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    p.add_argument("--sample", action="store_true", help="posterior samples (and the credible interval's band)")
    args = p.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="nwb-autolfads-report-"))
    out.mkdir(parents=True, exist_ok=True)
    for kind in args.kinds:
        file_kw, overrides = KINDS[kind]
        folder = out / kind
        folder.mkdir(exist_ok=True)
        src = mock_emg_nwb(folder / "src.nwb", duration=args.duration, rate=1000.0, seed=0, **file_kw)
        if args.sample:
            overrides = {**overrides, "inference.mode": "sample", "inference.n_samples": 20}
        res = nwb_autolfads.run(src, folder / "result.nwb", preset=args.preset, overrides=overrides,
                                progress=False, overwrite=True)
        ev = nwb_autolfads.evaluate(res.output)
        index = nwb_autolfads.write_report(ev, folder / "report")
        png = screenshot(index, out / f"{kind}.png")
        figures = sorted(f.name for f in index.parent.glob("*.png"))
        print(f"{kind}: {index}\n  screenshot {png}\n  figures {', '.join(figures)}")


if __name__ == "__main__":
    main()
