"""The import rules of the stage subpackages, checked on the source (module- and function-level
imports alike), and the checker itself on small fake sources so that it can be seen to fail.

The rules live in :data:`RULES` (one place); each subpackage's ``__init__.py`` docstring states
the same rules in words ("May import: ..."), and :func:`test_every_stated_rule_is_checked` keeps
the two lists of subpackages in step. Also the length of functions: none over
:data:`MAX_FUNCTION_LINES` but those listed in :data:`LONG_FUNCTIONS`, a list that only shrinks.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from collections import Counter
from pathlib import Path

import pytest

PACKAGE = "nwb_autolfads"
SRC = Path(__file__).resolve().parents[2] / "src" / PACKAGE


@dataclass(frozen=True)
class Rule:
    """What the modules of one part of the package may import.

    ``internal``: the parts of the package it may import (first name after ``nwb_autolfads``;
    ``__version__`` stands for ``from nwb_autolfads import __version__``). ``only``: when given,
    the only third-party distributions it may import (the standard library is always allowed);
    ``never``: third-party distributions it must not import."""

    internal: frozenset[str]
    only: frozenset[str] | None = None
    never: frozenset[str] = field(default_factory=frozenset)


def _rule(internal, only=None, never=()) -> Rule:
    return Rule(frozenset(internal), None if only is None else frozenset(only), frozenset(never))


NWB = ("pynwb", "hdmf", "hdmf_zarr", "h5py")
RULES: dict[str, Rule] = {
    "errors": _rule([], only=[]),
    "config": _rule(["errors", "modalities", "model.registry"], only=["yaml"]),
    "modalities": _rule(["errors", "config", "model.registry", "io", "data"], never=["torch"]),
    "ndx": _rule(["errors"], only=["pynwb", "hdmf", "yaml"]),
    "data": _rule(["errors", "config"], only=["numpy", "scipy", "tqdm"]),
    "io": _rule(["errors", "config", "ndx", "data", "__version__"], never=["torch"]),
    "model": _rule(["errors", "config", "data"], never=NWB),
    "train": _rule(["errors", "config", "data", "model"], never=NWB),
    "evaluation": _rule(["errors", "config", "data", "io"], never=["torch"]),
}
"""Per part of the package (a top-level module or a stage subpackage): its import rule. A part
may always import its own modules. The top level (``pipeline``, ``cli``, ``__init__``) and the
helpers for tests and examples (``testing``, ``simulate``) have no rule: they may import any
stage, and no stage may import them."""

ONLY_IN = {"matplotlib": {"evaluation.report"}, "ray": {"train.pbt.ray_cluster", "batch_ray"}}
"""Third-party distributions that only these modules (dotted, below ``nwb_autolfads``) may import."""


def imported(module: str, tree: ast.AST) -> list[tuple[int, str]]:
    """Every import in ``tree`` (at any depth: module level, in functions, in ``try``), as
    (line, absolute dotted name); ``from nwb_autolfads import x`` gives ``nwb_autolfads.x``.
    ``module``: the dotted name of the module the tree is (relative imports resolve from it)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".")[:-node.level]
                base = ".".join(package + ([base] if base else []))
            if base == PACKAGE:
                found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, base))
    return found


def violations(module: str, source: str) -> list[str]:
    """The import rules ``module`` (dotted name, e.g. ``nwb_autolfads.data.windows``) breaks with
    ``source``, one message per offending import (empty when it keeps them)."""
    inner = module.split(".")[1:]
    part = inner[0] if inner else ""
    rule = RULES.get(part)
    where = ".".join(inner)
    out = []
    for line, name in imported(module, ast.parse(source)):
        top = name.split(".")[0]
        if top == PACKAGE:
            target = name.split(".")[1] if "." in name else ""
            inside = name.removeprefix(PACKAGE + ".")
            # an entry with a dot allows that one module (config may import model.registry, not model)
            allowed = target == part or any(inside == a or inside.startswith(a + ".") if "." in a else target == a
                                             for a in (rule.internal if rule is not None else ()))
            if rule is not None and not allowed:
                out.append(f"{module}:{line} imports {name} ({part} may import {sorted(rule.internal) or 'none'})")
            continue
        if top == "__future__" or top in sys.stdlib_module_names:
            continue
        if top in ONLY_IN and where not in ONLY_IN[top]:
            out.append(f"{module}:{line} imports {name} (only {', '.join(sorted(ONLY_IN[top]))} may)")
        if rule is not None and (top in rule.never or (rule.only is not None and top not in rule.only)):
            out.append(f"{module}:{line} imports {name} ({part} may not)")
    return out


def _modules() -> list[tuple[str, Path]]:
    return [(".".join((PACKAGE, *path.relative_to(SRC).with_suffix("").parts)).removesuffix(".__init__"), path)
            for path in sorted(SRC.rglob("*.py"))]


def test_the_package_keeps_its_import_rules():
    broken = [v for module, path in _modules() for v in violations(module, path.read_text(encoding="utf-8"))]
    assert not broken, "\n".join(broken)


def test_every_stated_rule_is_checked():
    stated = {path.parent.name for path in SRC.glob("*/__init__.py")
              if "May import" in (ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or "")}
    assert stated == {part for part in RULES if (SRC / part).is_dir()}


@pytest.mark.parametrize("module, source, expected", [
    # module level and function level, plain and from-imports, third-party and internal
    ("nwb_autolfads.data.fake", "import torch\n", ["imports torch (data may not)"]),
    ("nwb_autolfads.data.fake", "def f():\n    if True:\n        from pynwb import NWBFile\n",
     ["imports pynwb (data may not)"]),
    ("nwb_autolfads.data.fake", "import pandas as pd\n", ["imports pandas (data may not)"]),
    ("nwb_autolfads.data.fake", "from nwb_autolfads.io.reading import open_nwb\n", ["imports nwb_autolfads.io.reading"]),
    ("nwb_autolfads.io.fake", "def f():\n    import torch.nn\n", ["imports torch.nn (io may not)"]),
    ("nwb_autolfads.io.fake", "from nwb_autolfads.evaluation import calibration\n",
     ["imports nwb_autolfads.evaluation"]),
    ("nwb_autolfads.model.fake", "try:\n    import h5py\nexcept ImportError:\n    pass\n", ["imports h5py (model may not)"]),
    ("nwb_autolfads.evaluation.fake", "class A:\n    def f(self):\n        import matplotlib.pyplot\n",
     ["only evaluation.report may"]),
    ("nwb_autolfads.train.loop", "import ray\n", ["only batch_ray, train.pbt.ray_cluster may"]),
    ("nwb_autolfads.ndx.fake", "from nwb_autolfads import config\n", ["imports nwb_autolfads.config"]),
    ("nwb_autolfads.ndx.fake", "from .. import pipeline\n", ["imports nwb_autolfads.pipeline"]),
    ("nwb_autolfads.config", "from nwb_autolfads.testing import mock_emg_nwb\n", ["imports nwb_autolfads.testing"]),
    # allowed
    ("nwb_autolfads.evaluation.report", "import matplotlib\n", []),
    ("nwb_autolfads.train.pbt.ray_cluster", "from ray import tune\n", []),
    ("nwb_autolfads.io.fake", "from nwb_autolfads import __version__\nimport os, h5py\nfrom . import formats\n", []),
    ("nwb_autolfads.data.fake", "from __future__ import annotations\nfrom nwb_autolfads.data.signals import Signal\n"
     "from nwb_autolfads.config import PreprocessConfig\nfrom scipy import signal\n", []),
    ("nwb_autolfads.pipeline", "import torch, pynwb\nfrom nwb_autolfads.testing import mock_emg_nwb\n", []),
])
def test_the_checker_finds_each_kind_of_violation(module, source, expected):
    found = violations(module, source)
    assert len(found) == len(expected), found
    for message, part in zip(found, expected):
        assert part in message


MAX_FUNCTION_LINES = 60
"""A function longer than this is split into named steps (issue 17). Its length is the lines of
code from ``def`` to its last line: the docstring (numpydoc docstrings are long on purpose), blank
lines and comment-only lines are not counted."""
LONG_FUNCTIONS: dict[str, int] = {}
"""The functions still over :data:`MAX_FUNCTION_LINES` ("module:qualified name": lines), to be
split: the list only shrinks (a new long function fails the test below, and so does an entry
whose function got short or went away: delete it here)."""


def long_functions(limit: int = MAX_FUNCTION_LINES) -> dict[str, int]:
    """Every function or method of the package longer than ``limit`` lines (nested ones too), as
    {"module:qualified name": lines}."""
    found = {}
    text: list[str] = []

    def visit(node: ast.AST, module: str, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                lines = _code_lines(child, text)
                if not isinstance(child, ast.ClassDef) and lines > limit:
                    found[f"{module}:{name}"] = lines
                visit(child, module, name + ".")
            else:
                visit(child, module, prefix)

    for module, path in _modules():
        text[:] = path.read_text(encoding="utf-8").splitlines()
        visit(ast.parse("\n".join(text)), module.removeprefix(PACKAGE + "."), "")
    return found


def _code_lines(node: ast.AST, text: list[str]) -> int:
    """Lines of ``node`` (a function) that hold code: not its docstring, not blank, not only a comment."""
    skip = set()
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        skip = set(range(body[0].lineno, body[0].end_lineno + 1))
    return sum(1 for i in range(node.lineno, node.end_lineno + 1)
               if i not in skip and text[i - 1].strip() and not text[i - 1].strip().startswith("#"))


def test_no_new_function_over_60_lines():
    found = long_functions()
    new = {name: n for name, n in found.items() if name not in LONG_FUNCTIONS}
    assert not new, f"functions over {MAX_FUNCTION_LINES} lines: {new}: split them into named steps"
    gone = sorted(set(LONG_FUNCTIONS) - set(found))
    assert not gone, f"no longer over {MAX_FUNCTION_LINES} lines (or gone): {gone}: delete them from LONG_FUNCTIONS"


def test_long_functions_are_found_nested_and_in_classes(tmp_path, monkeypatch):
    def function(name: str, indent: str, lines: int) -> str:  # ``lines`` lines in all
        return "".join([f"{indent}def {name}():\n"] + [f"{indent}    x{i} = {i}\n" for i in range(lines - 1)])

    n = MAX_FUNCTION_LINES
    source = ("class A:\n" + function("f", "    ", n + 1) + function("ok", "    ", n)
              + "def g():\n" + function("h", "    ", n + 1) + "    return h\n" + function("short", "", 2))
    (tmp_path / "fake.py").write_text(source)
    monkeypatch.setattr(sys.modules[__name__], "_modules", lambda: [(f"{PACKAGE}.fake", tmp_path / "fake.py")])
    assert long_functions() == {"fake:A.f": n + 1, "fake:g": n + 3, "fake:g.h": n + 1}
    # a long docstring, blank lines and comments are not code
    documented = ('def d():\n    """Doc.\n' + "    more\n" * n + '    """\n' + "\n    # note\n" * n
                  + "".join(f"    x{i} = {i}\n" for i in range(n - 1)))
    (tmp_path / "fake.py").write_text(documented)
    assert long_functions() == {}
    (tmp_path / "fake.py").write_text(documented + "    y = 1\n")
    assert long_functions() == {"fake:d": n + 1}


def test_test_files_have_unique_names():
    """pytest imports test files by their base name (the folders are not packages): two files of one
    name stop the whole suite at collection ("import file mismatch")."""
    root = Path(__file__).resolve().parents[1]
    names = Counter(p.name for p in root.rglob("test_*.py"))
    assert not [n for n, k in names.items() if k > 1], names
