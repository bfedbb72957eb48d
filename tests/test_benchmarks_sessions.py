"""benchmarks/sessions.py end to end on its tiny setting (2 sessions x 5 s, smoke preset): per-session
models and the low-pass always; the stitched model through ``nwb_autolfads.run_sessions`` when it
exists (and through a stand-in, to check the plumbing: order, channels, the table)."""

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import nwb_autolfads

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "sessions.py"
HAS_RUN_SESSIONS = getattr(nwb_autolfads, "run_sessions", None) is not None


def _module():
    spec = importlib.util.spec_from_file_location("sessions_benchmark", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def per_session_json(tmp_path_factory):
    """The JSON after the per-session part of ``--quick`` (run once: a stand-in stitching that is
    not an error, so nothing of the stitched part is saved)."""
    mod = _module()
    folder = tmp_path_factory.mktemp("sessions")
    out = folder / "sessions.json"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mod, "stitched", lambda *a: (_ for _ in ()).throw(LookupError(mod.NO_STITCHING)))
        assert mod.main(["--quick", "--out", str(out), "--workdir", str(folder / "w")]) == 1
    return out


def _rows(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.split("|")[1:-1]] for line in text.splitlines() if line.startswith("| ")]


@pytest.mark.skipif(HAS_RUN_SESSIONS, reason="run_sessions exists: test_the_stitched_model_runs covers it")
def test_without_run_sessions_the_per_session_part_runs_and_it_says_so(tmp_path, capsys):
    mod = _module()
    out = tmp_path / "s.json"
    assert mod.main(["--quick", "--out", str(out), "--workdir", str(tmp_path / "w")]) == 1
    captured = capsys.readouterr()
    assert "run_sessions is not available" in captured.err
    rows = _rows(captured.out)
    assert rows[0][:4] == ["session", "muscles", "R^2 per-session", "R^2 stitched"]
    sessions = [r for r in rows if r[0] in ("1", "2")]
    assert len(sessions) == 2 and all(r[3] == "n/a" and r[2] != "n/a" and "Hz)" in r[4] for r in sessions)
    saved = json.loads(out.read_text())
    assert sum(k.endswith("|session-1") or k.endswith("|session-2") for k in saved) == 2
    assert not any(k.endswith("|stitched") for k in saved)  # a later run with run_sessions does (b)


def test_the_table_with_a_stand_in_stitching_and_table_only(per_session_json, tmp_path, capsys, monkeypatch):
    """A stand-in run_sessions (one run per file: not stitching, only the plumbing): the stitched
    column and the gains are filled; a rerun skips what is saved; --table-only runs nothing."""
    mod = _module()
    out = tmp_path / "s.json"
    shutil.copy(per_session_json, out)
    calls = []

    def stand_in(paths, **kw):
        calls.append(paths)
        return [nwb_autolfads.run(p, **kw) for p in paths]

    monkeypatch.setattr(nwb_autolfads, "run_sessions", stand_in, raising=False)
    monkeypatch.setattr(mod, "per_session", lambda *a: pytest.fail("per-session runs are saved: not rerun"))
    args = ["--quick", "--out", str(out), "--workdir", str(tmp_path / "w")]
    assert mod.main(args) == 0 and len(calls) == 1 and len(calls[0]) == 2
    text = capsys.readouterr().out
    sessions = [r for r in _rows(text) if r[0] in ("1", "2")]
    assert all(r[3] != "n/a" and r[5] != "n/a" for r in sessions)
    assert "stitched model:" in text and "beats the per-session model on" in text
    record = next(v for k, v in json.loads(out.read_text()).items() if k.endswith("|stitched"))
    assert len(record["sessions"]) == 2 and all(np.isfinite(s["r2"]) for s in record["sessions"])
    monkeypatch.setattr(mod, "stitched", lambda *a: pytest.fail("saved: not rerun"))
    assert mod.main(args) == 0 and mod.main(args + ["--table-only"]) == 0
    assert mod.main(["--quick", "--settings", "nope", "--out", str(out)]) == 2


def test_stitched_results_out_of_order_are_refused_not_scored(per_session_json, tmp_path, capsys, monkeypatch):
    """Results of another session (here: the sessions swapped) must fail, never be scored against
    the wrong truth."""
    mod = _module()
    out = tmp_path / "s.json"
    shutil.copy(per_session_json, out)
    monkeypatch.setattr(nwb_autolfads, "run_sessions", raising=False,
                        value=lambda paths, **kw: [nwb_autolfads.run(p, **kw) for p in reversed(paths)])
    assert mod.main(["--quick", "--out", str(out), "--workdir", str(tmp_path / "w")]) == 0
    record = next(v for k, v in json.loads(out.read_text()).items() if k.endswith("|stitched"))
    assert "error" in record and "not the session's" in record["error"]
    assert "stitched: RuntimeError" in capsys.readouterr().out


@pytest.mark.skipif(not HAS_RUN_SESSIONS, reason="nwb_autolfads.run_sessions not written yet (lead, issue 18 item 3)")
def test_the_stitched_model_runs(per_session_json, tmp_path, capsys):
    mod = _module()
    out = tmp_path / "s.json"
    shutil.copy(per_session_json, out)
    assert mod.main(["--quick", "--out", str(out), "--workdir", str(tmp_path / "w")]) == 0
    record = next(v for k, v in json.loads(out.read_text()).items() if k.endswith("|stitched"))
    assert "error" not in record, record.get("error")
    assert len(record["sessions"]) == 2 and all(np.isfinite(s["r2"]) for s in record["sessions"])
