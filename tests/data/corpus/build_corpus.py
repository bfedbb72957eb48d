"""A corpus of small real-world-shaped input files, and what the tool must do with each.

Every case imitates a file from a public bug report or a converter's habit (float32-rounded
timestamps late in a session, channels x time layouts, electrode regions that reorder rows,
European mains, Zarr stores, dangling external links, other formats under an NWB name,
already-binned step cycles, spike times that restart or are in milliseconds). The files are
written here with pynwb / h5py / hdmf-zarr directly, NOT with the package's own mock factories,
so that the readers are tested against files they did not write themselves.

Each :class:`Case` says what ``nwb-autolfads run --preset smoke`` must do: finish (``ok``) with a
result whose values are checked against the known truth (bin times, channel names, what was
found), or refuse (``refuse``) with one line naming the problem. ``tests/test_corpus.py`` runs
``inspect`` and ``run`` on every case (no traceback, no exit 0 with a known-wrong result, input
unchanged). Build the files by hand with::

    python tests/data/corpus/build_corpus.py OUTDIR
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

MUSCLES = ("TA", "GM", "VL", "BF", "RF", "ST", "SOL", "GL")
START = datetime(2025, 3, 4, 10, 30, tzinfo=timezone.utc)


@dataclass
class Case:
    """One input file and the expected behaviour of ``run --preset smoke`` on it."""

    name: str
    kind: str  # the kind of fault (issue 14's numbering): time, layout, spikes, names, mains, format, binned, ...
    build: Callable[[Path], Path]  # writes the input into a folder, returns its path
    expect: str  # "ok" or "refuse"
    run_args: list[str] = field(default_factory=list)
    message: str = ""  # regular expression the refusal (or, for ok cases, stderr) must match
    check: Callable[[Path, str], None] | None = None  # (result file, stderr) -> raises AssertionError
    inspect_ok: bool = True  # whether `inspect` must succeed (exit 0)


# ---------------------------------------------------------------------------------------------
# Signals (independent of nwb_autolfads.testing)

def envelopes(t: np.ndarray, n_ch: int, seed: int, bursts: tuple[tuple[float, float], ...] = ()) -> np.ndarray:
    """Smooth positive activations (n, n_ch): slow random drifts plus rectangular bursts."""
    rng = np.random.default_rng(seed)
    out = np.empty((t.size, n_ch))
    for c in range(n_ch):
        f = rng.uniform(0.3, 1.5, size=3)
        ph = rng.uniform(0, 2 * np.pi, size=3)
        out[:, c] = 0.3 + 0.1 * np.sum(np.sin(2 * np.pi * f[:, None] * (t - t[0])[None, :] + ph[:, None]), axis=0)
    for b0, b1 in bursts:
        out[(t >= b0) & (t < b1)] += 3.0
    return np.clip(out, 0.05, None)


def raw_emg(env: np.ndarray, seed: int, volts: float = 1e-4) -> np.ndarray:
    """Raw EMG: activation x white Gaussian noise, in volts."""
    rng = np.random.default_rng(seed + 1)
    return env * rng.standard_normal(env.shape) * volts


def _nwbfile(identifier: str):
    from pynwb import NWBFile
    from pynwb.file import Subject

    nwb = NWBFile(session_description="corpus file imitating a real-world layout", identifier=identifier,
                  session_start_time=START, lab="corpus", institution="corpus")
    nwb.subject = Subject(subject_id="c01", species="Mus musculus", sex="F", age="P60D")
    return nwb


def _write(nwb, path: Path) -> Path:
    from pynwb import NWBHDF5IO

    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path


def _timeseries(name, data, unit="volts", description=None, **time_kw):
    from pynwb import TimeSeries

    return TimeSeries(name=name, data=data, unit=unit,
                      description=description or "raw EMG; muscles: " + ", ".join(MUSCLES[:data.shape[1]]),
                      **time_kw)


# ---------------------------------------------------------------------------------------------
# Checks on results

def _results(path: Path):
    from nwb_autolfads import load_results

    return load_results(path)


def _covered(ds) -> np.ndarray:
    """Times of the bins that hold a finite estimate."""
    values = ds["emg_activations"].values if "emg_activations" in ds else ds["firing_rates"].values
    return ds["time"].values[np.isfinite(values).all(axis=1)]


def check_span(t0: float, t1: float, min_fraction: float = 0.9) -> Callable[[Path, str], None]:
    """Every bin within [t0, t1] (half a bin of slack), and most of the span covered."""
    def check(result: Path, stderr: str) -> None:
        ds = _results(result)
        half = 0.5 * float(ds.attrs["bin_size"])
        times = _covered(ds)
        assert times.size, "no finite estimate"
        assert times[0] >= t0 - half - 1e-9 and times[-1] <= t1 + half + 1e-9, (times[0], times[-1], t0, t1)
        covered = times.size * float(ds.attrs["bin_size"])
        assert covered >= min_fraction * (t1 - t0), f"{covered:.3f} s of {t1 - t0:.3f} s covered"
        assert times[-1] >= t1 - 0.5 * (t1 - t0) * (1 - min_fraction) - 2 * half, (times[-1], t1)
    return check


def check_burst(t0: float, t1: float, b0: float, b1: float) -> Callable[[Path, str], None]:
    """The span check, and the model's input bins at their true times: the run's own
    preprocessing (its saved configuration) of the input gives bins at the result's times, and
    the burst stands out exactly in the bins of its true time span (a smoke model is too briefly
    trained to show it in its output)."""
    span = check_span(t0, t1)

    def check(result: Path, stderr: str) -> None:
        import json

        from nwb_autolfads.config import RunConfig
        from nwb_autolfads.data.preprocessing import preprocess_emg
        from nwb_autolfads.io.reading import open_nwb
        from nwb_autolfads.io.series import read_emg

        span(result, stderr)
        ds = _results(result)
        cfg = RunConfig.from_dict(json.loads(ds.attrs["config"]))
        with open_nwb(result) as (_io, nwb):  # the result holds the source EMG, exported
            pre = preprocess_emg(read_emg(nwb, "acquisition/EMG"), cfg.preprocess, cfg.windows.bin_size,
                                 cfg.data.preprocessed)
        t, x = np.concatenate(pre.bin_times), np.concatenate(pre.rectified).mean(axis=1)
        assert np.allclose(t, _covered(ds), atol=1e-6), "the result's bins are not the input's bins"
        bin_size = float(ds.attrs["bin_size"])
        inside = (t >= b0 + bin_size) & (t <= b1 - bin_size)
        outside = (t < b0 - 2 * bin_size) | (t > b1 + 2 * bin_size)
        assert x[inside].min() > 3 * np.median(x[outside]), "burst not at its true time"
        loud = t[x > 0.5 * (x[inside].min() + np.median(x[outside]))]
        assert loud.min() >= b0 - bin_size and loud.max() <= b1 + bin_size, (loud.min(), loud.max())
    return check


def check_gap(gap0: float, gap1: float, t0: float, t1: float) -> Callable[[Path, str], None]:
    def check(result: Path, stderr: str) -> None:
        ds = _results(result)
        times = _covered(ds)
        half = 0.5 * float(ds.attrs["bin_size"])
        assert not np.any((times > gap0 + half) & (times < gap1 - half)), "estimates inside the gap"
        assert times[0] >= t0 - half and times[-1] <= t1 + half
        assert np.any(times < gap0) and np.any(times > gap1), "one side of the gap is missing"
    return check


def check_names(names: list[str]) -> Callable[[Path, str], None]:
    def check(result: Path, stderr: str) -> None:
        ds = _results(result)
        assert [str(c) for c in ds["channel"].values] == names, list(ds["channel"].values)
    return check


def check_name_set(names: list[str]) -> Callable[[Path, str], None]:
    """The channels' names, in any order (one series per muscle: HDF5 keeps no order of series)."""
    def check(result: Path, stderr: str) -> None:
        ds = _results(result)
        assert sorted(str(c) for c in ds["channel"].values) == sorted(names), list(ds["channel"].values)
    return check


def check_times_equal(timestamps: np.ndarray) -> Callable[[Path, str], None]:
    """Binned input: one output bin per input sample, at the input's times."""
    def check(result: Path, stderr: str) -> None:
        ds = _results(result)
        bin_size = float(ds.attrs["bin_size"])
        times = _covered(ds)
        assert abs(bin_size - 0.004) < 1e-9, bin_size
        # every covered output time is an input time (bin centres or starts: within half a bin)
        idx = np.clip(np.searchsorted(timestamps, times), 1, timestamps.size - 1)
        nearest = np.minimum(np.abs(timestamps[idx] - times), np.abs(timestamps[idx - 1] - times))
        assert nearest.max() <= 0.5 * bin_size + 1e-9, nearest.max()
        assert times.size >= 0.95 * timestamps.size, (times.size, timestamps.size)
    return check


def check_all(*checks) -> Callable[[Path, str], None]:
    def check(result: Path, stderr: str) -> None:
        for c in checks:
            c(result, stderr)
    return check


def check_provenance(pattern: str) -> Callable[[Path, str], None]:
    import re

    def check(result: Path, stderr: str) -> None:
        ds = _results(result)
        text = ds.attrs["preprocessing"] + ds.attrs["config"]
        assert re.search(pattern, text), f"{pattern!r} not in the provenance: {text[:400]}"
    return check


# ---------------------------------------------------------------------------------------------
# Builders

def float32_timestamps(t0: float, duration: float = 10.0, rate: float = 2000.0, bursts=()):
    """Timestamps rounded to float32 by an acquisition system late in a session (stored as float64)."""
    def build(folder: Path) -> Path:
        t_true = t0 + np.arange(int(duration * rate)) / rate
        env = envelopes(t_true, 4, seed=int(t0), bursts=bursts)
        ts = t_true.astype(np.float32).astype(np.float64)
        nwb = _nwbfile(f"float32-{t0:g}")
        nwb.add_acquisition(_timeseries("EMG", raw_emg(env, 1), timestamps=ts))
        return _write(nwb, folder / f"float32_t{int(t0)}.nwb")
    return build


def jittered_clock(folder: Path) -> Path:
    """A free-running acquisition clock: 2 kHz with +-20% jitter and a 50 ppm drift."""
    rng = np.random.default_rng(3)
    n = 16000
    steps = (1 / 2000.0) * (1 + 50e-6) * (1 + rng.uniform(-0.2, 0.2, n - 1))
    t = 100.0 + np.concatenate([[0.0], np.cumsum(steps)])
    nwb = _nwbfile("jitter")
    nwb.add_acquisition(_timeseries("EMG", raw_emg(envelopes(t, 4, 3), 3), timestamps=t))
    return _write(nwb, folder / "jittered_clock.nwb")


def true_gap(folder: Path) -> Path:
    """Two recording stretches (0-6 s and 8-14 s) in one series: a real gap."""
    t = np.concatenate([np.arange(0, 6.0, 1 / 2000.0), np.arange(8.0, 14.0, 1 / 2000.0)])
    nwb = _nwbfile("gap")
    nwb.add_acquisition(_timeseries("EMG", raw_emg(envelopes(t, 4, 4), 4), timestamps=t))
    return _write(nwb, folder / "true_gap.nwb")


def transposed(with_timestamps: bool):
    """EMG written channels x time (4 x 16000 at 2 kHz), as some MATLAB exports do."""
    def build(folder: Path) -> Path:
        t = np.arange(16000) / 2000.0
        data = raw_emg(envelopes(t, 4, 5), 5).T.copy()  # (4, 16000)
        nwb = _nwbfile("transposed")
        nwb.add_acquisition(_timeseries("EMG", data, description="raw EMG; muscles: TA, GM, VL, BF",
                                        starting_time=0.0, rate=2000.0))
        path = _write(nwb, folder / f"transposed_{'timestamps' if with_timestamps else 'rate'}.nwb")
        if with_timestamps:  # pynwb 4 refuses to write this; older writers and h5py scripts did not
            import h5py
            with h5py.File(path, "a") as f:
                series = f["acquisition/EMG"]
                del series["starting_time"]
                series.create_dataset("timestamps", data=t)
                series["timestamps"].attrs["interval"] = 1
                series["timestamps"].attrs["unit"] = "seconds"
        return path
    return build


def _units_file(folder: Path, name: str, spike_lists: list[np.ndarray], emg_duration: float | None = None) -> Path:
    from pynwb.misc import Units

    nwb = _nwbfile(name)
    nwb.units = Units(name="units", description="sorted units", resolution=1 / 30000.0)
    for k, spikes in enumerate(spike_lists):
        nwb.add_unit(spike_times=spikes, id=100 + k)
    if emg_duration is not None:
        t = np.arange(int(emg_duration * 2000)) / 2000.0
        nwb.add_acquisition(_timeseries("EMG", raw_emg(envelopes(t, 4, 6), 6), starting_time=0.0, rate=2000.0))
    return _write(nwb, folder / f"{name}.nwb")


def _poisson(rate: float, t0: float, t1: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.sort(rng.uniform(t0, t1, rng.poisson(rate * (t1 - t0))))


def spikes_restart(folder: Path) -> Path:
    """Unit 101's spike times restart near 0 halfway through (two files concatenated)."""
    good = [_poisson(20, 0, 20, s) for s in (1, 2, 3)]
    bad = np.concatenate([_poisson(20, 0, 10, 4), _poisson(20, 0.01, 10, 5)])
    return _units_file(folder, "spikes_restart", [good[0], bad, good[1], good[2]])


def spikes_in_ms(folder: Path) -> Path:
    """Spike times written in milliseconds where NWB wants seconds."""
    return _units_file(folder, "spikes_in_ms", [_poisson(20, 0, 20, s) * 1000.0 for s in (1, 2, 3)])


def spikes_nan(folder: Path) -> Path:
    """One unit with NaN spike times (a sorter's placeholder)."""
    bad = _poisson(20, 0, 20, 7)
    bad[::50] = np.nan
    return _units_file(folder, "spikes_nan", [_poisson(20, 0, 20, 8), bad, _poisson(20, 0, 20, 9)])


def electrodes_region(column: str, rows: list[int]):
    """ElectricalSeries whose region selects unsorted rows of an electrodes table; names only in ``column``."""
    def build(folder: Path) -> Path:
        from pynwb.ecephys import ElectricalSeries

        nwb = _nwbfile(f"region-{column}")
        device = nwb.create_device(name="amp", description="EMG amplifier")
        group = nwb.create_electrode_group(name="emg", description="bipolar EMG", location="hindlimb",
                                           device=device)
        extra = {} if column in ("location", "group_name") else {column: ""}
        for col in extra:
            nwb.add_electrode_column(name=col, description="channel name")
        for k in range(8):
            kw = {column: MUSCLES[k]} if column in extra else {}
            nwb.add_electrode(group=group, location=MUSCLES[k] if column == "location" else "hindlimb", **kw)
        region = nwb.create_electrode_table_region(rows, "EMG electrodes")
        t = np.arange(16000) / 2000.0
        data = raw_emg(envelopes(t, len(rows), 7), 7)
        nwb.add_acquisition(ElectricalSeries(name="EMG", data=data, electrodes=region, starting_time=0.0,
                                             rate=2000.0, description="raw EMG"))
        return _write(nwb, folder / f"region_{column}.nwb")
    return build


def mains(freq: float, harmonics: int, amplitude: float = 3.0):
    """20 s of 4-muscle EMG with strong line hum at ``freq`` and its first harmonics."""
    def build(folder: Path) -> Path:
        t = np.arange(int(20 * 2000)) / 2000.0
        raw = raw_emg(envelopes(t, 4, 8), 8)
        hum = sum(amplitude / (h + 1) * np.sin(2 * np.pi * freq * (h + 1) * t + h) for h in range(harmonics))
        raw = raw + 1e-4 * hum[:, None] * np.array([1.0, 0.7, 1.3, 0.9])
        nwb = _nwbfile(f"mains-{freq:g}")
        nwb.add_acquisition(_timeseries("EMG", raw, starting_time=0.0, rate=2000.0))
        return _write(nwb, folder / f"mains_{freq:g}Hz.nwb")
    return build


def zarr_store(folder: Path) -> Path:
    """The same EMG written with the Zarr backend (a ``.nwb.zarr`` directory), as DANDI holds."""
    from hdmf_zarr.nwb import NWBZarrIO

    t = np.arange(12000) / 2000.0
    nwb = _nwbfile("zarr")
    nwb.add_acquisition(_timeseries("EMG", raw_emg(envelopes(t, 4, 9), 9), starting_time=0.0, rate=2000.0))
    path = folder / "emg.nwb.zarr"
    with NWBZarrIO(str(path), "w") as io:
        io.write(nwb)
    return path


def dangling_link(folder: Path) -> Path:
    """An NWB file whose EMG series is an HDF5 external link to a file that is not there."""
    import h5py
    from pynwb import NWBHDF5IO

    target = folder / "raw_emg_part.nwb"
    t = np.arange(12000) / 2000.0
    nwb = _nwbfile("link-target")
    nwb.add_acquisition(_timeseries("EMG", raw_emg(envelopes(t, 4, 10), 10), starting_time=0.0, rate=2000.0))
    _write(nwb, target)
    main = _write(_nwbfile("linking"), folder / "linking.nwb")
    with h5py.File(main, "a") as f:
        f["acquisition"]["EMG"] = h5py.ExternalLink(target.name, "/acquisition/EMG")
    with NWBHDF5IO(str(main), "r") as io:  # the link works while the target is there
        assert "EMG" in io.read().acquisition
    target.unlink()
    return main


def matlab_file(folder: Path) -> Path:
    """A MATLAB v5 MAT-file saved under an .nwb name."""
    from scipy.io import savemat

    path = folder / "emg_matlab.nwb"
    savemat(str(path), {"emg": np.zeros((100, 4))})
    return path


def edf_file(folder: Path) -> Path:
    """An EDF+ header (European Data Format) under an .nwb name."""
    header = ("0       " + "X X X X".ljust(80) + "Startdate 04-MAR-2025 X X X".ljust(80) + "04.03.25" + "10.30.00"
              + "512     " + "EDF+C".ljust(44) + "1       ".ljust(8) + "1       " + "1   ")
    path = folder / "emg_edf.nwb"
    path.write_bytes(header.encode("ascii") + b"\0" * 256)
    return path


def binned_cycles(n_cycles: int = 30, bin_size: float = 0.004, cycle: float = 0.45, pause: float = 0.2):
    """Rectified EMG already binned at 4 ms, stored as step cycles with gaps, one trial per cycle."""
    def timestamps() -> np.ndarray:
        n_bins = int(round(cycle / bin_size))
        return np.concatenate([c * (cycle + pause) + np.arange(n_bins) * bin_size for c in range(n_cycles)])

    def build(folder: Path) -> Path:
        t = timestamps()
        env = envelopes(t, 6, 11)
        nwb = _nwbfile("cycles")
        nwb.add_acquisition(_timeseries("EMG", env * 1e-4, description="rectified, binned EMG (4 ms); muscles: "
                                        + ", ".join(MUSCLES[:6]), timestamps=t))
        for c in range(n_cycles):
            nwb.add_trial(start_time=c * (cycle + pause), stop_time=c * (cycle + pause) + cycle)
        return _write(nwb, folder / "binned_cycles.nwb")
    return build, timestamps


def int16_counts(folder: Path) -> Path:
    """int16 ADC counts with ``conversion`` and ``offset``, as acquisition systems write them."""
    t = np.arange(16000) / 2000.0
    raw = raw_emg(envelopes(t, 4, 12), 12)
    conversion = float(np.abs(raw).max() / 30000.0)
    counts = np.round(raw / conversion).astype(np.int16)
    nwb = _nwbfile("int16")
    nwb.add_acquisition(_timeseries("EMG", counts, starting_time=0.0, rate=2000.0, conversion=conversion))
    return _write(nwb, folder / "int16_counts.nwb")


def per_muscle_series(folder: Path) -> Path:
    """One 1-D TimeSeries per muscle in a BehavioralTimeSeries in processing/behavior."""
    from pynwb.behavior import BehavioralTimeSeries

    t = np.arange(16000) / 2000.0
    raw = raw_emg(envelopes(t, 4, 13), 13)
    nwb = _nwbfile("per-muscle")
    container = BehavioralTimeSeries(name="EMG")
    for k, m in enumerate(MUSCLES[:4]):
        container.add_timeseries(_timeseries(m, raw[:, k], description=f"EMG of {m}", starting_time=0.0,
                                             rate=2000.0))
    nwb.create_processing_module("behavior", "muscle recordings").add(container)
    return _write(nwb, folder / "per_muscle.nwb")


_cycles_build, _cycles_times = binned_cycles()

CASES: list[Case] = [
    Case("float32_t1500", "time", float32_timestamps(1500.0, bursts=((1508.0, 1508.3),)), "ok",
         check=check_burst(1500.0, 1510.0, 1508.0, 1508.3)),
    Case("float32_t5000", "time", float32_timestamps(5000.0, bursts=((5006.0, 5006.4),)), "ok",
         check=check_burst(5000.0, 5010.0, 5006.0, 5006.4)),
    Case("float32_t3000_1kHz", "time", float32_timestamps(3000.0, rate=1000.0), "ok",
         check=check_span(3000.0, 3010.0)),
    Case("jittered_clock", "time", jittered_clock, "ok", check=check_span(100.0, 108.0)),
    Case("true_gap", "time", true_gap, "ok", check=check_gap(6.0, 8.0, 0.0, 14.0)),
    Case("transposed_rate", "layout", transposed(False), "ok", message=r"(?i)transpos",
         check=check_all(check_span(0.0, 8.0), check_names(["TA", "GM", "VL", "BF"]))),
    Case("transposed_timestamps", "layout", transposed(True), "ok", message=r"(?i)transpos",
         check=check_span(0.0, 8.0)),
    Case("spikes_restart", "spikes", spikes_restart, "refuse", ["--model", "spikes"], message=r"101"),
    Case("spikes_in_ms", "spikes", spikes_in_ms, "refuse", ["--model", "spikes"], message=r"(?i)millisecond|\bms\b"),
    Case("spikes_nan", "spikes", spikes_nan, "refuse", ["--model", "spikes"], message=r"(?i)nan"),
    Case("region_channel_name", "names", electrodes_region("channel_name", [6, 2, 0, 4]), "ok",
         check=check_names(["SOL", "VL", "TA", "RF"])),
    Case("region_label", "names", electrodes_region("label", [1, 3, 5]), "ok",
         check=check_names(["GM", "BF", "ST"])),
    Case("region_location", "names", electrodes_region("location", [7, 0, 3, 2]), "ok",
         check=check_names(["GL", "TA", "BF", "VL"])),
    Case("mains_50Hz", "mains", mains(50.0, 3), "ok", message=r"50 ?Hz", check=check_provenance(r"\b50\b")),
    Case("mains_60Hz", "mains", mains(60.0, 2), "ok", message=r"60 ?Hz", check=check_provenance(r"\b60\b")),
    Case("zarr_store", "format", zarr_store, "ok", check=check_span(0.0, 6.0)),
    Case("dangling_link", "format", dangling_link, "refuse", message=r"raw_emg_part\.nwb", inspect_ok=False),
    Case("matlab_file", "format", matlab_file, "refuse", message=r"MATLAB", inspect_ok=False),
    Case("edf_file", "format", edf_file, "refuse", message=r"EDF", inspect_ok=False),
    Case("binned_cycles", "binned", _cycles_build, "ok", ["--emg-preprocessed"],
         check=check_times_equal(_cycles_times())),
    Case("int16_counts", "units", int16_counts, "ok", check=check_span(0.0, 8.0)),
    Case("per_muscle_series", "layout", per_muscle_series, "ok", check=check_name_set(["TA", "GM", "VL", "BF"])),
]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    for case in CASES:
        folder = out / case.name
        folder.mkdir(exist_ok=True)
        print(f"{case.name:24s} {case.kind:8s} {case.expect:7s} {case.build(folder)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
