"""The benchmarks and examples follow the package's module paths: every ``nwb_autolfads`` name
they import (at module level, in functions, or in code they run in a child process) exists, so
a moved or renamed name fails here and not months later in a benchmark run. Importing a
benchmark runs nothing (its work is under ``if __name__ == "__main__"``)."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "benchmarks").glob("*.py")) + sorted((ROOT / "examples").glob("*.py"))


def _ids(paths):
    return [f"{p.parent.name}/{p.name}" for p in paths]


def _trees(path: Path) -> list[ast.AST]:
    """The script's syntax tree, and that of every string in it that is Python code naming
    nwb_autolfads (a program run in a child process)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    trees = [tree]
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and "nwb_autolfads" in node.value:
            try:
                trees.append(ast.parse(node.value))
            except SyntaxError:
                pass  # a message or a docstring, not code
    return trees


def _resolve(dotted: str, name: str):
    """``from dotted import name``: the object (a submodule when it is one); AttributeError if none."""
    module = importlib.import_module(dotted)
    if hasattr(module, name):
        return getattr(module, name)
    try:
        return importlib.import_module(f"{dotted}.{name}")
    except ModuleNotFoundError:
        raise AttributeError(f"{dotted} has no {name}") from None


def unresolved_names(path: Path) -> list[str]:
    """The ``nwb_autolfads`` names ``path`` uses that do not exist: imported names, and
    attributes of imported package modules (``pipeline.train_single``), as ``line: name``."""
    missing = []
    for tree in _trees(path):
        modules: dict[str, types.ModuleType] = {}  # local name -> a package module it is bound to
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "nwb_autolfads":
                for alias in node.names:
                    try:
                        obj = _resolve(node.module, alias.name)
                    except (ImportError, AttributeError) as exc:
                        missing.append(f"{node.lineno}: {node.module}.{alias.name} ({exc})")
                        continue
                    if isinstance(obj, types.ModuleType):
                        modules[alias.asname or alias.name] = obj
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "nwb_autolfads":
                        try:
                            module = importlib.import_module(alias.name)
                        except ImportError as exc:
                            missing.append(f"{node.lineno}: {alias.name} ({exc})")
                            continue
                        if alias.asname:
                            modules[alias.asname] = module
        for node in ast.walk(tree):
            for owner, attr in _attributes(node):
                if owner in modules:
                    try:
                        _resolve(modules[owner].__name__, attr)
                    except (ImportError, AttributeError):
                        missing.append(f"{node.lineno}: {owner}.{attr} ({modules[owner].__name__} has no {attr})")
    return missing


def _attributes(node: ast.AST) -> list[tuple[str, str]]:
    """(name, attribute) pairs ``node`` uses: ``name.attribute``, and a call's arguments
    ``name, "attribute"`` (``getattr(pl, "x")``, ``setattr``, a benchmark's ``wrap(pl, "x", ...)``)."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return [(node.value.id, node.attr)]
    if isinstance(node, ast.Call):
        return [(a.id, b.value) for a, b in zip(node.args, node.args[1:])
                if isinstance(a, ast.Name) and isinstance(b, ast.Constant) and isinstance(b.value, str)]
    return []


@pytest.mark.parametrize("path", SCRIPTS, ids=_ids(SCRIPTS))
def test_every_package_name_a_benchmark_uses_exists(path):
    assert not unresolved_names(path), f"{path.name} uses names the package no longer has: {unresolved_names(path)}"


@pytest.mark.parametrize("path", SCRIPTS, ids=_ids(SCRIPTS))
def test_a_benchmark_imports_without_running(path, monkeypatch):
    """Importing the script defines its functions and runs nothing (no main, no files written)."""
    monkeypatch.chdir(path.parent.parent)
    before = sorted(p.name for p in Path.cwd().iterdir())
    spec = importlib.util.spec_from_file_location(f"_script_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert callable(getattr(module, "main", None)), f"{path.name}: no main()"
    assert sorted(p.name for p in Path.cwd().iterdir()) == before


def test_the_checker_finds_moved_names(tmp_path):
    script = tmp_path / "old.py"
    script.write_text("from nwb_autolfads.evaluation.metrics import r2_score\n"
                      "from nwb_autolfads import pipeline\n"
                      "def main():\n"
                      "    from nwb_autolfads.io.reading import bin_spikes\n"
                      "    wrap(pipeline, 'merge_segments', 'merge')\n"
                      "    return pipeline.read_emg, pipeline.train_single\n"
                      "CHILD = '''\nfrom nwb_autolfads.training import train_model\n'''\n")
    found = unresolved_names(script)
    assert [f.split(" ")[1] for f in found] == ["nwb_autolfads.evaluation.metrics.r2_score",
                                                "nwb_autolfads.io.reading.bin_spikes", "pipeline.merge_segments", "pipeline.read_emg",
                                                "nwb_autolfads.training.train_model"]


def test_long_inputs_measures_every_stage_on_a_tiny_file(tmp_path, monkeypatch):
    """benchmarks/long_inputs.py wraps the pipeline's stages by name: each is still called there
    (a stage the pipeline no longer calls through that name would silently drop out of its table)."""
    from nwb_autolfads.testing import mock_emg_nwb

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    long_inputs = importlib.import_module("long_inputs")
    path = mock_emg_nwb(tmp_path / "emg.nwb", duration=3.0, rate=1000.0, n_muscles=2)
    settings = {"pbt.population": 1, "train.max_steps": 2, "windows.window_bins": 8, "windows.overlap_bins": 2}
    import nwb_autolfads.pipeline as pl
    for name in ("chop_segments", "prepare_rundir", "train_single", "infer_merged", "input_sha256", "write_results"):
        monkeypatch.setattr(pl, name, getattr(pl, name))  # put back what measure() wraps
    monkeypatch.setattr(importlib.import_module("nwb_autolfads.data.preprocessing"), "preprocess_emg",
                        importlib.import_module("nwb_autolfads.data.preprocessing").preprocess_emg)
    monkeypatch.setattr(importlib.import_module("nwb_autolfads.io.units"), "bin_spikes",
                        importlib.import_module("nwb_autolfads.io.units").bin_spikes)
    stages = {row["stage"] for row in long_inputs.measure("emg60", path, settings)}
    assert stages == {"read + preprocess EMG", "chop windows", "run directory (data hash)", "plan + training (2 steps)",
                      "inference + merge", "input SHA-256", "write output", "whole run"}
