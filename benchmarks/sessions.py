"""Many sessions (issue 18 item 3): one "stitched" model over several short sessions of one
subject against one model per session, on synthetic sessions that share their latent dynamics
but differ in muscles, gains and noise (:mod:`nwb_autolfads.simulate.sessions`).

    python benchmarks/sessions.py [--settings NAME ...] [--preset quick] [--sessions 4]
        [--duration 20] [--set KEY=VALUE ...] [--out FILE.json] [--redo] [--table-only]
        [--workdir DIR] [--threads 1] [--quick]

For each setting (:func:`settings`: 3 settings x 4 sessions x 20 s by default), write the
sessions to DANDI-named NWB files, then

(a) per session: ``nwb_autolfads.run(path, preset=..., write=False)``, one model per session;
(b) stitched: ``nwb_autolfads.run_sessions(paths, preset=..., write=False)``, ONE model over all
    the sessions (a per-session read-in and read-out around shared dynamics);
(c) the best 4th-order low-pass of the binned rectified EMG (cutoff 0.5-30 Hz chosen on the
    truth per session: an optimistic baseline),

and score each on the model's bins: R^2 vs truth = squared Pearson correlation per channel,
averaged over the session's channels. Wall time of each per-session run and of the stitched run
(all sessions). Results are saved to the JSON after each run (a rerun skips those already there
unless --redo); --table-only prints the tables from the JSON. ``--quick``: one tiny setting (2
sessions x 5 s, 3-5 muscles, 1 kHz) and the smoke preset, to check the script (tests).

While ``nwb_autolfads.run_sessions`` does not exist, (a) and (c) run and the stitched column
says so; the script then exits 1 after printing the tables.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
NO_STITCHING = ("nwb_autolfads.run_sessions is not available in this version of nwb_autolfads: the stitched "
                "model (b) cannot run; per-session models (a) and the low-pass (c) were run")


def settings(quick: bool = False, n_sessions: int | None = None, duration: float | None = None) -> list:
    """The benchmark's :class:`~nwb_autolfads.simulate.SessionsSetting`: a chaotic (Lorenz) and a
    rhythmic latent at 10-25 dB SNR, and a chaotic one at 0-10 dB; ``quick``: one tiny setting."""
    from nwb_autolfads.simulate import SessionsSetting

    changes = {k: v for k, v in (("n_sessions", n_sessions), ("duration", duration)) if v is not None}
    if quick:
        tiny = SessionsSetting(seed=1, n_sessions=2, duration=5.0, muscles=(3, 5), rate=1000.0).replace(**changes)
        return [tiny.replace(name="tiny-" + tiny.name)]
    chosen = [SessionsSetting(dynamics="chaotic", seed=1), SessionsSetting(dynamics="rhythmic", seed=2),
              SessionsSetting(dynamics="chaotic", seed=3, snr_db=(0.0, 10.0))]
    chosen = [s.replace(**changes) for s in chosen]
    return [s.replace(name=s.name + "-snr0-10") if s.snr_db[1] <= 10 else s for s in chosen]


def _mean(values) -> float | None:
    values = np.asarray(values, dtype=float)
    return float(np.nanmean(values)) if np.isfinite(values).any() else None


def _key(name: str, preset: str, overrides: dict, what: str) -> str:
    return f"{name}|{preset}|{json.dumps(overrides, sort_keys=True)}|{what}"


def score_result(res, path: Path, names: list[str]) -> dict:
    """R^2 vs truth of one session's RunResult, checked to be that session's (channel names)."""
    from nwb_autolfads.evaluation.metrics import channel_correlation
    from nwb_autolfads.testing import read_truth

    if list(res.channel_names) != list(names):
        raise RuntimeError(f"{path.name}: the result's channels {list(res.channel_names)} are not the session's "
                           f"{list(names)}: results out of order or channels reordered")
    bin_size = float(res.config.windows.bin_size)
    truth = read_truth(path, res.times, bin_size)
    r2 = channel_correlation(np.asarray(res.activations, float), truth) ** 2
    return {"r2": _mean(r2), "r2_channels": [None if not np.isfinite(v) else float(v) for v in r2],
            "bin_size": bin_size, "n_bins": int(len(res.times))}


def per_session(path: Path, names: list[str], preset: str, overrides: dict) -> dict:
    """(a) one model on this session and (c) the best low-pass on the same bins."""
    import nwb_autolfads
    from nwb_autolfads.evaluation.baselines import best_lowpass
    from nwb_autolfads.testing import read_truth

    t0 = time.perf_counter()
    res = nwb_autolfads.run(path, preset=preset, overrides=overrides, write=False, progress=False)
    wall = time.perf_counter() - t0
    record = score_result(res, path, names)
    truth = read_truth(path, res.times, record["bin_size"])
    cutoff, r2_low, _ = best_lowpass(np.asarray(res.rectified, float), truth, 1.0 / record["bin_size"], times=res.times)
    return {**record, "wall_s": wall, "lowpass": {"r2": _mean(r2_low), "cutoff_hz": cutoff},
            "steps": res.training.history[-1]["step"] if res.training.history else 0}


def stitched(paths: list[Path], names: list[list[str]], preset: str, overrides: dict) -> dict:
    """(b) one model over all sessions; raises LookupError when run_sessions does not exist."""
    import nwb_autolfads

    run_sessions = getattr(nwb_autolfads, "run_sessions", None)
    if run_sessions is None:
        raise LookupError(NO_STITCHING)
    t0 = time.perf_counter()
    results = run_sessions(list(paths), preset=preset, overrides=overrides, write=False, progress=False)
    wall = time.perf_counter() - t0
    if len(results) != len(paths):
        raise RuntimeError(f"run_sessions returned {len(results)} results for {len(paths)} sessions")
    sessions = [score_result(res, path, n) for res, path, n in zip(results, paths, names)]
    history = results[0].training.history
    return {"sessions": sessions, "wall_s": wall, "steps": history[-1]["step"] if history else 0}


def _fmt(v, spec=".3f"):
    return "n/a" if v is None else format(v, spec)


def table(setting: dict, preset: str, sessions: list[dict | None], joint: dict | None) -> str:
    """The markdown table of one setting: a row per session and one over all sessions."""
    lines = [f"### {setting['name']} ({preset})", "",
             "| session | muscles | R^2 per-session | R^2 stitched | R^2 low-pass (cutoff) | stitched - per-session "
             "| wall s per-session |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    joint_rows = (joint or {}).get("sessions") or [None] * len(sessions)
    gains = []
    for k, (one, both) in enumerate(zip(sessions, joint_rows)):
        if one is None or "error" in one:
            lines.append(f"| {k + 1} | | {'failed: ' + one['error'][:80] if one else 'not run'} | | | | |")
            continue
        gain = None if both is None or None in (both["r2"], one["r2"]) else both["r2"] - one["r2"]
        gains.append(gain)
        lines.append(f"| {k + 1} | {one['muscles']} | {_fmt(one['r2'])} | {_fmt(both and both['r2'])} | "
                     f"{_fmt(one['lowpass']['r2'])} ({one['lowpass']['cutoff_hz']:g} Hz) | {_fmt(gain, '+.3f')} | "
                     f"{one['wall_s']:.1f} |")
    done = [s for s in sessions if s and "error" not in s]
    if done:
        mean = lambda xs: _fmt(_mean([x for x in xs if x is not None]))  # noqa: E731
        total = sum(s["wall_s"] for s in done)
        stitched_mean = mean([b["r2"] for b in joint_rows if b]) if joint and "error" not in joint else "n/a"
        lines.append(f"| all | {sum(s['muscles'] for s in done)} | {mean([s['r2'] for s in done])} | {stitched_mean} "
                     f"| {mean([s['lowpass']['r2'] for s in done])} | {mean(gains)} | {total:.1f} |")
    if joint is None:
        lines += ["", "stitched: not run (nwb_autolfads.run_sessions not available, or not run yet)"]
    elif "error" in joint:
        lines += ["", f"stitched: {joint['error']}"]
    else:
        wins = [g for g in gains if g is not None]
        lines += ["", f"stitched model: {joint['wall_s']:.1f} s for all {len(sessions)} sessions; beats the per-session "
                  f"model on {sum(g > 0 for g in wins)} of {len(wins)} sessions"]
    return "\n".join(lines)


def _save(out: Path, saved: dict) -> None:
    tmp = out.with_suffix(".json.partial")
    tmp.write_text(json.dumps(saved, indent=1))
    tmp.replace(out)


def run_setting(setting, preset: str, overrides: dict, workdir: Path, saved: dict, out: Path, redo: bool) -> bool:
    """Run what is missing of one setting, saving after each run; False when run_sessions is missing."""
    from nwb_autolfads.simulate import simulate_sessions, write_sessions_nwb

    synth = simulate_sessions(setting)
    paths = write_sessions_nwb(workdir / setting.name, setting, synth)
    names = [s.names for s in synth.sessions]
    saved[_key(setting.name, preset, overrides, "setting")] = setting.as_dict()
    for k, path in enumerate(paths):
        key = _key(setting.name, preset, overrides, f"session-{k + 1}")
        if redo or key not in saved:
            try:
                saved[key] = {**per_session(path, names[k], preset, overrides), "muscles": len(names[k]),
                              "names": names[k]}
            except Exception as exc:  # one failing session must not lose the others
                saved[key] = {"error": f"{type(exc).__name__}: {exc}"}
            _save(out, saved)
            print(f"{setting.name} session {k + 1}: " + (saved[key].get("error") or
                  f"per-session {_fmt(saved[key]['r2'])}, low-pass {_fmt(saved[key]['lowpass']['r2'])}, "
                  f"{saved[key]['wall_s']:.1f} s"), file=sys.stderr, flush=True)
    key = _key(setting.name, preset, overrides, "stitched")
    if redo or key not in saved:
        try:
            saved[key] = stitched(paths, names, preset, overrides)
        except LookupError as exc:
            print(f"{setting.name}: {exc}", file=sys.stderr, flush=True)
            return False
        except Exception as exc:
            saved[key] = {"error": f"{type(exc).__name__}: {exc}"}
        _save(out, saved)
        print(f"{setting.name} stitched: " + (saved[key].get("error") or f"{saved[key]['wall_s']:.0f} s"),
              file=sys.stderr, flush=True)
    return True


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--settings", nargs="+", default=None, metavar="NAME", help="only these settings")
    p.add_argument("--preset", default=None, help="quick (default; smoke with --quick)")
    p.add_argument("--sessions", type=int, default=None, help="sessions per setting (4)")
    p.add_argument("--duration", type=float, default=None, help="seconds per session (20)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="run overrides (both models)")
    p.add_argument("--out", default=None, help="JSON (default benchmarks/results/sessions_<preset>.json)")
    p.add_argument("--redo", action="store_true", help="rerun what is already in the JSON")
    p.add_argument("--table-only", action="store_true", help="print the tables from the JSON, run nothing")
    p.add_argument("--workdir", default=None, help="where the NWB files go (default: a temporary folder)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1)")
    p.add_argument("--quick", action="store_true", help="one tiny setting and the smoke preset (a check, not a result)")
    args = p.parse_args(argv)

    from nwb_autolfads.cli import _parse_sets

    preset = args.preset or ("smoke" if args.quick else "quick")
    overrides = _parse_sets(args.set)
    chosen = settings(args.quick, args.sessions, args.duration)
    if args.settings:
        unknown = set(args.settings) - {s.name for s in chosen}
        if unknown:
            print(f"--settings: no setting named {', '.join(sorted(unknown))}; there are: "
                  + ", ".join(s.name for s in chosen), file=sys.stderr)
            return 2
        chosen = [s for s in chosen if s.name in args.settings]
    out = Path(args.out or HERE / "results" / f"sessions_{preset}{'_tiny' if args.quick else ''}.json")
    saved = json.loads(out.read_text()) if out.exists() else {}
    complete = True
    if not args.table_only:
        import torch

        torch.set_num_threads(args.threads)
        out.parent.mkdir(parents=True, exist_ok=True)
        workdir = Path(args.workdir or tempfile.mkdtemp(prefix="nwb-autolfads-sessions-"))
        for setting in chosen:
            complete = run_setting(setting, preset, overrides, workdir, saved, out, args.redo) and complete
    print(f"many sessions: one model per session vs one stitched model, preset {preset}"
          + (f", overrides {overrides}" if overrides else "") + f"; results in {out}")
    print("R^2 vs truth = squared Pearson correlation per channel, averaged over the session's channels, on the "
          "model's bins; low-pass cutoff chosen on the truth per session (optimistic).")
    for s in chosen:
        rows = [saved.get(_key(s.name, preset, overrides, f"session-{k + 1}")) for k in range(s.n_sessions)]
        print()
        print(table(s.as_dict(), preset, rows, saved.get(_key(s.name, preset, overrides, "stitched"))))
    if not complete:
        print(f"\n{NO_STITCHING}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
