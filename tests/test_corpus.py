"""The real-world-shaped corpus (tests/data/corpus/build_corpus.py) through `inspect` and `run`.

For every case: `inspect` answers without a traceback, `run --preset smoke` either finishes with
a result whose values are right (times, names, what was found) or refuses with one line that
names the problem, and the input is byte-for-byte unchanged.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location("build_corpus", Path(__file__).parent / "data" / "corpus" / "build_corpus.py")
corpus = importlib.util.module_from_spec(_SPEC)
sys.modules["build_corpus"] = corpus  # dataclasses look their module up there
_SPEC.loader.exec_module(corpus)

pytestmark = pytest.mark.slow


def _digest(path: Path) -> str:
    """SHA-256 of a file, or of every file of a directory store (names and bytes)."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for p in files:
        h.update(str(p.relative_to(path.parent)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


class _Outcome:
    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def _cli(*args: str, cwd: Path, capsys, caplog) -> _Outcome:
    """The command line in this process (what `nwb-autolfads ARGS` runs, without the start-up):
    an exception escaping `main` fails the test, as a traceback would. Warnings reach pytest's log
    capture instead of stderr, so they are added to stderr here."""
    from nwb_autolfads.cli import main

    capsys.readouterr()
    caplog.clear()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        code = main(list(args))
    finally:
        os.chdir(old)
    out, err = capsys.readouterr()
    warnings = "".join(f"nwb-autolfads: warning: {r.getMessage()}\n" for r in caplog.records
                       if r.levelno >= logging.WARNING)
    return _Outcome(code, out, warnings + err)


def _no_traceback(proc) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]


@pytest.mark.parametrize("case", corpus.CASES, ids=[c.name for c in corpus.CASES])
def test_corpus_case(case, tmp_path, capsys, caplog):
    if case.name == "zarr_store" and importlib.util.find_spec("hdmf_zarr") is None:
        pytest.skip("hdmf-zarr is not installed (the [zarr] extra)")
    folder = tmp_path / "in"
    folder.mkdir()
    path = case.build(folder)
    before = _digest(path)

    inspected = _cli("inspect", str(path), cwd=tmp_path, capsys=capsys, caplog=caplog)
    _no_traceback(inspected)
    if case.inspect_ok:
        assert inspected.returncode == 0, inspected.stderr
    else:
        assert inspected.returncode == 2 and re.search(case.message, inspected.stderr), inspected.stderr

    output = tmp_path / "result.nwb"
    proc = _cli("run", str(path), "--preset", "smoke", "--quiet", "--seed", "0", "--output", str(output),
                *case.run_args, cwd=tmp_path, capsys=capsys, caplog=caplog)
    _no_traceback(proc)
    assert _digest(path) == before, "the input was modified"
    if case.expect == "refuse":
        assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
        lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("nwb-autolfads: error:")]
        assert len(lines) == 1, proc.stderr
        assert re.search(case.message, lines[0]), lines[0]
        assert not output.exists()
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".result.nwb")], list(tmp_path.iterdir())
    else:
        assert proc.returncode == 0, proc.stderr[-3000:]
        if case.message:
            assert re.search(case.message, proc.stderr + proc.stdout), proc.stderr[-3000:]
        case.check(output, proc.stderr)


def test_corpus_script_builds_every_case(tmp_path):
    """The committed script builds the corpus from the command line (what a maintainer runs)."""
    proc = subprocess.run([sys.executable, str(Path(__file__).parent / "data" / "corpus" / "build_corpus.py"),
                           str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == len(corpus.CASES)
