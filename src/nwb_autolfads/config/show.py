"""The documentation of the settings, as ``nwb-autolfads config --show`` prints it: the strings
written under the fields and classes of the sections, read from their source, and a YAML dump
with each key's documentation as comment lines above it."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
import textwrap
import typing
from dataclasses import fields
from typing import Mapping

__all__ = ["field_docs", "commented"]


def _class_docs(cls: type) -> dict[str, str]:
    """The documentation of ``cls`` (key ``""``: its docstring) and of each of its fields (the
    string literal written under the field), whitespace collapsed; ``{}`` without source."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):  # no source shipped
        return {}
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef))
    docs = {"": " ".join((ast.get_docstring(node) or "").split())}
    for a, b in zip(node.body, node.body[1:]):
        if isinstance(a, ast.AnnAssign) and isinstance(a.target, ast.Name) and isinstance(b, ast.Expr) \
                and isinstance(b.value, ast.Constant) and isinstance(b.value.value, str):
            docs[a.target.id] = " ".join(b.value.value.split())
    return docs


def field_docs(root: type | None = None) -> dict[str, str]:
    """The documentation of every setting by dotted key (``train.max_steps``), and of every section.

    The strings written under the fields and classes of the sections, the same text the code and
    the API documentation show. A field without a string of its own that holds a section (e.g.
    ``pbt.lr``, a :class:`~nwb_autolfads.config.SearchRange`) is documented by the section's
    class docstring.

    Parameters
    ----------
    root : type, optional
        The config dataclass to document; default :class:`~nwb_autolfads.config.RunConfig`.

    Returns
    -------
    dict of str to str
        Whitespace-collapsed documentation by dotted key (``train`` for the section); empty when
        the package is installed without its source.
    """
    if root is None:
        from nwb_autolfads.config.run import RunConfig  # run.py imports this module

        root = RunConfig
    out: dict[str, str] = {}

    def walk(cls: type, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        docs = _class_docs(cls)
        for f in fields(cls):
            key = f"{prefix}{f.name}"
            doc = docs.get(f.name, "")
            if dataclasses.is_dataclass(hints[f.name]):
                doc = doc or _class_docs(hints[f.name]).get("", "")
                walk(hints[f.name], key + ".")
            if doc:
                out[key] = doc
    walk(root, "")
    return out


def commented(text: str, docs: Mapping[str, str], width: int = 100) -> str:
    """``text`` (block-style YAML of a config) with each key's documentation as comment lines above it.

    Parameters
    ----------
    text : str
        YAML as :func:`yaml.safe_dump` writes it (two-space indentation, one key per line).
    docs : mapping of str to str
        Documentation by dotted key (:func:`field_docs`); its double-backquoted Python words
        are written as YAML ones (None as null, True as true, False as false).
    width : int
        Longest comment line, in characters.

    Returns
    -------
    str
        The commented YAML, ending with a newline.
    """
    out, path = [], []
    for line in text.splitlines():
        m = re.match(r"^( *)([A-Za-z_]\w*):", line)
        if m:
            depth = len(m.group(1)) // 2
            path = path[:depth] + [m.group(2)]
            doc = docs.get(".".join(path))
            if doc:
                for python, plain in (("``None``", "null"), ("``True``", "true"), ("``False``", "false"),
                                      ("``", "")):
                    doc = doc.replace(python, plain)
                out += textwrap.wrap(doc, width, initial_indent=m.group(1) + "# ",
                                     subsequent_indent=m.group(1) + "# ")
        out.append(line)
    return "\n".join(out) + "\n"
