"""The documentation the code relies on: citations of docs/science.md, and numpydoc on the public API."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

import nwb_autolfads

ROOT = Path(__file__).resolve().parents[2]
SCIENCE = ROOT / "docs" / "science.md"
CITED_IN = [ROOT / "src", ROOT / "benchmarks"]
CITATION = re.compile(r"docs/science\.md, ([^)]*)\)")


def _headings(markdown: str) -> set[str]:
    return {m.group(1).strip() for m in re.finditer(r"^#{2,6} +(.+?) *#*$", markdown, flags=re.MULTILINE)}


def _citations(text: str) -> tuple[list[str], int]:
    """The section names ``text`` cites as ``(docs/science.md, Section[; Section])`` (line breaks and
    indentation inside a citation count as one space), and how often it names science.md at all."""
    flat = re.sub(r"\s+", " ", text)
    sections = [s.strip() for m in CITATION.finditer(flat) for s in m.group(1).split(";")]
    return sections, flat.count("science.md")


def test_citation_parser():
    text = 'x (docs/science.md, LFADS).\n  y (AutoLFADS, docs/science.md, Training\n    objective; Augmentations) z'
    assert _citations(text) == (["LFADS", "Training objective", "Augmentations"], 2)
    assert _citations("see science.md section 4")[0] == []  # the old form: named, but not a citation
    assert {"Observation models", "LFADS"} <= _headings("# Title\n## Observation models\n\n## LFADS\ntext ## no\n")


def test_every_science_citation_names_a_section():
    headings = _headings(SCIENCE.read_text())
    bad, n_cited = [], 0
    for folder in CITED_IN:
        for path in sorted(folder.rglob("*.py")):
            sections, named = _citations(path.read_text())
            n_cited += len(sections)
            where = path.relative_to(ROOT)
            bad += [f"{where}: {s!r}" for s in sections if s not in headings]
            if named != len(CITATION.findall(re.sub(r"\s+", " ", path.read_text()))):
                bad.append(f"{where}: names science.md outside a '(docs/science.md, Section)' citation")
    assert n_cited >= 15, "the sources cite docs/science.md; did the citation form change?"
    assert not bad, "citations of sections docs/science.md does not have (its headings: " \
                    f"{sorted(headings)}):\n" + "\n".join(bad)


def _public_api() -> list[tuple[str, object]]:
    return [(name, getattr(nwb_autolfads, name)) for name in nwb_autolfads.__all__]


def _section(doc: str, title: str) -> list[str] | None:
    """The lines of numpydoc section ``title`` of ``doc`` (None when it has none)."""
    lines = doc.splitlines()
    for i in range(len(lines) - 1):
        if lines[i].strip() == title and set(lines[i + 1].strip()) == {"-"}:
            body = []
            for line in lines[i + 2:]:
                if body and line.strip() and set(line.strip()) == {"-"}:  # the underline of the next section
                    body.pop()
                    break
                body.append(line)
            return body
    return None


def _documented_parameters(doc: str) -> list[str]:
    """Names of the entries of the Parameters section (``name : type`` or ``a, b : type`` lines at the
    section's indentation; ``*args`` / ``**kwargs`` as written)."""
    body = _section(doc, "Parameters") or []
    names = []
    for line in body:
        if line.strip() and not line.startswith(" "):
            head = line.split(" : ")[0].strip()
            names += [n.strip() for n in head.split(",") if n.strip()]
    return names


@pytest.mark.parametrize("name,obj", _public_api(), ids=[n for n, _ in _public_api()])
def test_public_api_has_numpydoc(name, obj):
    if not callable(obj):  # __version__, PRESETS: data, documented where they are defined
        return
    doc = inspect.getdoc(obj)
    assert doc and doc.strip(), f"nwb_autolfads.{name} has no docstring"
    summary = doc.strip().splitlines()[0]
    assert summary.strip(), f"nwb_autolfads.{name}: the docstring must start with a one-line summary"
    if inspect.isclass(obj):
        return
    assert _section(doc, "Parameters") is not None, f"nwb_autolfads.{name}: no numpydoc Parameters section"
    params = [p.name if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
              else ("*" if p.kind == p.VAR_POSITIONAL else "**") + p.name
              for p in inspect.signature(obj).parameters.values()]
    documented = _documented_parameters(doc)
    assert documented == params, f"nwb_autolfads.{name}: Parameters documents {documented}, the signature has {params}"
    assert _section(doc, "Returns") is not None, f"nwb_autolfads.{name}: no numpydoc Returns section"


def test_numpydoc_section_parser():
    doc = "Sum.\n\nParameters\n----------\na, b : int\n    Numbers.\nc : float\n\nReturns\n-------\nint\n"
    assert _documented_parameters(doc) == ["a", "b", "c"]
    assert _section(doc, "Returns") == ["int"]
    assert _section(doc, "Raises") is None
