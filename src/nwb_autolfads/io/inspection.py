"""What is in an NWB file, from nwb-autolfads' point of view (``nwb-autolfads inspect``).

Lists every candidate series per modality (EMG, kinematics, force, other) with its path, type,
shape, rate, unit, time span and channel names (as ``run`` would name them), the units table
and the trials table, and says which EMG ``run`` would use by default and why. Reads metadata
and at most a few timestamps, never the data arrays.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nwb_autolfads.errors import SignalError, SignalNotFoundError
from nwb_autolfads.io.reading import Candidate, open_nwb
from nwb_autolfads.io.series import (channel_names_of, emg_doubt, find_emg, invalid_times, iter_series, modality_of, orientation,
                                     read_candidate)
from nwb_autolfads.io.units import spike_time_problems
from nwb_autolfads.data.timebase import analyse_timestamps

__all__ = ["inspect_file", "format_report"]

_SHOWN_CHANNELS = 16
"""Channel names listed per series in the text report (all of them in --json)."""


def _describe_series(c: Candidate) -> dict[str, Any]:
    ts = c.obj
    if c.kind == "container":
        children = [t for t in ts.children if hasattr(t, "data") and t.data is not None]
        first = children[0]
        shape = [int(first.data.shape[0]), len(children)]
        info = _time_info(first)
        unit = str(first.unit)
    else:
        shape = [int(n) for n in ts.data.shape] if ts.data is not None else []
        notes = []
        transposed = False
        if ts.data is not None:
            try:
                transposed, note = orientation(ts, c.path)
            except SignalError as exc:
                note = str(exc)
            if note:
                notes.append(note.split(": ", 1)[1])
        info = _time_info(ts, transposed)
        info["notes"] = notes + info["notes"]
        unit = str(getattr(ts, "unit", "") or "")
    return {"path": c.path, "type": c.neurodata_type, "layout": c.kind, "shape": shape, "unit": unit,
            "channels": channel_names_of(c), **info}


_HEAD = 2**16
"""Timestamps read to tell the rate, resolution and jitter (the first 30 s at 2 kHz)."""


def _time_info(ts, transposed: bool = False) -> dict[str, Any]:
    shape = ts.data.shape if ts.data is not None else ()
    n = int(shape[1] if transposed else shape[0]) if len(shape) else 0
    if ts.timestamps is not None and n:
        stamps = ts.timestamps
        n = min(n, int(stamps.shape[0]) if hasattr(stamps, "shape") else len(stamps))
        first, last = float(stamps[0]), float(stamps[n - 1])
        head = np.asarray(stamps[: min(n, _HEAD)], dtype=float)
        try:
            tb = analyse_timestamps(head)
        except SignalError as exc:
            return {"rate": None, "time_base": "timestamps", "start": first, "end": last, "notes": [str(exc)]}
        rate = float(tb.rate) if np.isfinite(tb.rate) else None
        notes = tb.notes()
        if len(tb.segments) > 1:
            notes.append(f"{len(tb.segments) - 1} gap(s) in the first {head.size} timestamps")
        return {"rate": rate, "time_base": "timestamps", "start": first, "end": last, "notes": notes}
    if getattr(ts, "rate", None):
        start = float(ts.starting_time or 0.0)
        return {"rate": float(ts.rate), "time_base": "starting_time + rate", "start": start,
                "end": start + (n - 1) / float(ts.rate) if n else start, "notes": []}
    return {"rate": None, "time_base": "none", "start": None, "end": None, "notes": []}


def inspect_file(path: str | Path) -> dict[str, Any]:
    """A JSON-serialisable description of what the file holds for nwb-autolfads."""
    with open_nwb(path) as (_io, nwb):
        report: dict[str, Any] = {
            "file": str(path), "identifier": nwb.identifier,
            "session_start_time": nwb.session_start_time.isoformat() if nwb.session_start_time else None,
            "modalities": {"emg": [], "kinematics": [], "force": [], "other": []},
        }
        for cand in iter_series(nwb):
            try:
                entry = _describe_series(cand)
            except Exception as exc:  # an odd object must not hide the rest of the file
                entry = {"path": cand.path, "type": cand.neurodata_type, "error": str(exc).splitlines()[0]}
            report["modalities"][modality_of(cand)].append(entry)
        units = nwb.units
        report["units"] = None if units is None else _units_report(units)
        trials = nwb.trials
        report["trials"] = None if trials is None else {"count": len(trials), "columns": list(trials.colnames)}
        try:
            report["invalid_times"] = [[float(a), float(b)] for a, b in invalid_times(nwb)]
        except SignalError as exc:
            report["invalid_times"] = {"error": str(exc)}
        try:
            chosen = find_emg(nwb)
            if chosen.kind == "container":  # per-muscle series: run reads them as one recording only on one clock
                read_candidate(chosen)
            doubt = emg_doubt(chosen)
            if doubt:  # run models it only when asked (--emg)
                raise SignalError(f"the only EMG-like series, {chosen.path}, does not look like EMG ({doubt}); run "
                                  f"models it only with --emg {chosen.path}")
            report["default"] = {"emg": chosen.path, "reason": (
                "the series whose name/description says EMG/muscle most clearly"
                + (f", with the most channels, among {len(report['modalities']['emg'])} candidates"
                   if len(report["modalities"]["emg"]) > 1 else ""))}
        except SignalError as exc:  # the best candidate cannot be read as one recording: run refuses it
            report["default"] = {"emg": None, "reason": f"{exc} (run refuses it; choose a series with --emg PATH)"}
        except SignalNotFoundError:
            spikes = report["units"] is not None and report["units"]["count"] > 0
            report["default"] = {"emg": None, "reason": "no series whose name or description mentions EMG/muscle: "
                                 "`run` needs --emg PATH (a TimeSeries holding EMG)" + (
                                     f", or --model spikes to model the {report['units']['count']} units"
                                     if spikes else "")}
    return report


def _units_report(units) -> dict[str, Any]:
    """Count, columns and spikes of the Units table, and the units whose spike times are
    impossible (NaN/inf, negative, not ascending: what ``run`` refuses), by unit id."""
    out: dict[str, Any] = {"count": len(units), "columns": list(units.colnames), "spikes": 0, "problems": {}}
    if "spike_times" not in units.colnames:
        return out
    ids = units.id[:]
    for i in range(len(units)):
        times = np.asarray(units["spike_times"][i], dtype=float)
        out["spikes"] += int(times.size)
        problems = spike_time_problems(times)
        if problems:
            out["problems"][str(int(ids[i]))] = problems
    return out


def format_report(report: dict[str, Any]) -> str:
    lines = [f"{report['file']}  (identifier {report['identifier']}, session start {report['session_start_time']})"]
    titles = {"emg": "EMG", "kinematics": "kinematics", "force": "force", "other": "other series"}
    for key, title in titles.items():
        entries = report["modalities"][key]
        lines.append(f"{title}: {len(entries) or 'none'}")
        for e in entries:
            if "error" in e:
                lines.append(f"  {e['path']}  {e['type']}  (unreadable: {e['error']})")
                continue
            rate = f"{e['rate']:g} Hz" if e.get("rate") else "no rate"
            span = (f"{e['start']:.3f}-{e['end']:.3f} s" if e.get("start") is not None else "no time")
            lines.append(f"  {e['path']}  {e['type']}  shape {tuple(e['shape'])}  {rate} ({e['time_base']})  "
                         f"unit {e['unit'] or '?'}  {span}")
            lines += [f"    note: {note}" for note in e.get("notes", [])]
            names = e.get("channels") or []
            shown = ", ".join(names[:_SHOWN_CHANNELS]) + (f", ... ({len(names)} in all)"
                                                          if len(names) > _SHOWN_CHANNELS else "")
            lines.append(f"    channels: {shown}")
    u = report["units"]
    lines.append("units: none" if u is None else f"units: {u['count']} units, {u['spikes']} spikes "
                 f"(columns: {', '.join(u['columns'])})")
    for unit_id, problems in ((u or {}).get("problems") or {}).items():
        lines.append(f"    note: unit id {unit_id}: {'; '.join(problems)} (run refuses it; --bad-units exclude "
                     "leaves it out)")
    t = report["trials"]
    lines.append("trials: none" if t is None else f"trials: {t['count']} (columns: {', '.join(t['columns'])})")
    bad = report.get("invalid_times")
    if isinstance(bad, dict):
        lines.append(f"invalid_times: {bad['error']} (run refuses the file)")
    elif bad:
        shown = ", ".join(f"{a:g}-{b:g} s" for a, b in bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        lines.append(f"invalid_times: {len(bad)} interval(s), {sum(b - a for a, b in bad):.6g} s in all ({shown}): run "
                     "leaves the EMG samples inside them out")
    d = report["default"]
    lines.append(f"run would model: {d['emg']} ({d['reason']})" if d["emg"] else f"run would model: nothing - "
                 f"{d['reason']}")
    return "\n".join(lines)
