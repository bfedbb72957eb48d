"""The layout of the config package: the names every other module imports from it, its light
imports, and functions short enough to read."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import nwb_autolfads.config as config
from nwb_autolfads.config import SearchRange, field_docs

ROOT = Path(__file__).resolve().parents[3]
PACKAGE = ROOT / "src" / "nwb_autolfads" / "config"
MD_IMPORT = re.compile(r"from nwb_autolfads\.config import ([\w, ]+)")


def _imported_names(path: Path) -> set[str]:
    """The names ``path`` imports with ``from nwb_autolfads.config import ...`` (Python: any form;
    Markdown: one-line imports in its examples)."""
    text = path.read_text()
    if path.suffix == ".md":
        return {n.strip() for m in MD_IMPORT.finditer(text) for n in m.group(1).split(",") if n.strip()}
    return {a.name for node in ast.walk(ast.parse(text)) if isinstance(node, ast.ImportFrom)
            and node.module == "nwb_autolfads.config" and not node.level for a in node.names}


def test_import_parser(tmp_path):
    py, md = tmp_path / "a.py", tmp_path / "b.md"
    py.write_text("from nwb_autolfads.config import A, B as b  # noqa: E402\n"
                  "def f():\n    from nwb_autolfads.config import (C,\n        D)\n"
                  "from nwb_autolfads.config.run import E\nimport nwb_autolfads.config\n")
    md.write_text("```python\nfrom nwb_autolfads.config import F, G\n```\n")
    assert _imported_names(py) == {"A", "B", "C", "D"} and _imported_names(md) == {"F", "G"}


def test_every_name_imported_from_the_package_is_exported():
    used: dict[str, str] = {}
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    files += [p for folder in ("src", "tests", "benchmarks", "examples") for p in sorted((ROOT / folder).rglob("*.py"))]
    for path in files:
        for name in _imported_names(path):
            used.setdefault(name, str(path.relative_to(ROOT)))
    assert {"RunConfig", "build_config", "PRESETS", "field_docs"} <= set(used), "did the import form change?"
    missing = {name: where for name, where in used.items() if not hasattr(config, name)}
    assert not missing, f"imported from nwb_autolfads.config but not exported by it: {missing}"
    assert all(hasattr(config, name) for name in config.__all__)


def test_imports_without_torch_numpy_or_pynwb():
    heavy = ("torch", "numpy", "scipy", "pynwb", "h5py", "pandas")
    code = (f"import sys, nwb_autolfads.config; print([m for m in {heavy!r} if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]", f"importing nwb_autolfads.config imports {out.strip()}"


def _code_lines(node: ast.FunctionDef, lines: list[str]) -> int:
    """Non-blank, non-comment lines of a function's body, its docstring left out."""
    first = node.body[0]
    start = first.lineno
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        start = first.end_lineno + 1
    return sum(1 for line in lines[start - 1:node.end_lineno] if line.strip() and not line.strip().startswith("#"))


def test_field_docs_read_every_section_module():
    docs = field_docs()
    # one setting of each module that defines sections, and a section documented by its class
    assert docs["data.emg"].startswith("Object path of the EMG series")
    assert docs["preprocess"].startswith("Raw-EMG preprocessing")
    assert docs["model.co_dim"] == "Number of inferred inputs; 0 removes the controller."
    assert docs["train.lr"] == "Initial learning rate of Adam."
    assert docs["inference.mode"].startswith("``mean``: one pass with posterior means")
    assert docs["pbt.lr"] == " ".join(SearchRange.__doc__.split()) and docs["pbt.lr.low"].startswith("Smallest value")
    assert docs["seed"].startswith("Random seed of the run")
