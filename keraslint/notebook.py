"""Jupyter notebooks as one Python module.

Code cells are joined into one module (so an import in cell 1 resolves in cell 5), each
preceded by a marker line ``# %% keraslint-cell <index>`` so that fixed source can be cut
back into cells. IPython syntax (``%magic``, ``!shell``, ``x = !ls``, ``obj?`` and cell
magics) is replaced line for line by neutral Python, so line numbers never shift. Positions
map back to ``(cell, line)`` with 1-based cell numbers counting all cells.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Optional

MARKER = "# %% keraslint-cell "
_PY_CELL_MAGICS = {"time", "timeit", "capture", "prun", "debug", "pypy", "python", "python3", "tensorflow_version"}
_HELP = re.compile(r"^\s*[\w.\[\]()'\"]+\?{1,2}\s*$")
_ASSIGN_MAGIC = re.compile(r"^(\s*[\w.]+\s*=\s*)[!%]")
_LINE_MAGIC = re.compile(r"^(\s*)[!%]")


class NotebookError(ValueError):
    """The file is not a notebook we can read (the message says why)."""


@dataclass
class Cell:
    index: int  # 0-based index among all cells
    source: str  # original source text of the cell
    start: int  # 1-based line in the combined module of the cell's first line
    nlines: int
    magic_lines: dict = field(default_factory=dict)  # 0-based line in cell -> original line
    disabled: bool = False  # a cell that did not parse: blanked out of the module


@dataclass
class Notebook:
    data: dict
    cells: list  # list[Cell], code cells only
    skip: bool = False  # non-Python kernel
    source_key: str = "source"
    cell_list: Optional[list] = None  # the JSON list holding the cells

    def module_source(self) -> str:
        out = []
        for c in self.cells:
            out.append(f"{MARKER}{c.index + 1}\n")
            if c.nlines == 0:
                continue
            if c.disabled:
                out.extend("#\n" for _ in range(c.nlines))
            else:
                out.append(_neutralize(c))
        return "".join(out)

    def locate(self, line: int) -> tuple[Optional[int], int]:
        """(1-based cell number, 1-based line within the cell) of a module line."""
        for c in self.cells:
            if c.start <= line < c.start + max(c.nlines, 1):
                return c.index + 1, line - c.start + 1
        return None, line

    def cell_at(self, line: int) -> Optional[Cell]:
        for c in self.cells:
            if c.start - 1 <= line < c.start + max(c.nlines, 1):
                return c
        return None


def _cell_text(src) -> str:
    if isinstance(src, list):
        return "".join(s if isinstance(s, str) else "" for s in src)
    if isinstance(src, str):
        return src
    return ""


def _neutralize(cell: Cell) -> str:
    lines = cell.source.split("\n")
    out = []
    first_code = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    whole_cell_foreign = False
    for i, ln in enumerate(lines):
        stripped = ln.lstrip()
        if i == first_code and stripped.startswith("%%"):
            name = stripped[2:].split(None, 1)[0] if len(stripped) > 2 else ""
            cell.magic_lines[i] = ln
            out.append("pass")
            if name not in _PY_CELL_MAGICS:
                whole_cell_foreign = True
            continue
        if whole_cell_foreign:
            cell.magic_lines[i] = ln
            # Not for the empty piece after the cell's last newline: "#" there would add a
            # line to the module and shift every later cell by one.
            out.append("#" if ln or i < len(lines) - 1 else "")
            continue
        m = _ASSIGN_MAGIC.match(ln)
        if m:
            cell.magic_lines[i] = ln
            out.append(m.group(1) + "None")
            continue
        m = _LINE_MAGIC.match(ln)
        if m and not stripped.startswith("!="):
            cell.magic_lines[i] = ln
            out.append(m.group(1) + "pass")
            continue
        if _HELP.match(ln):
            cell.magic_lines[i] = ln
            indent = ln[: len(ln) - len(stripped)]
            out.append(indent + "pass")
            continue
        out.append(ln)
    text = "\n".join(out)
    if not text.endswith("\n"):
        text += "\n"
    return text


def load(text: str) -> Notebook:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise NotebookError(f"invalid notebook JSON: {e.msg} (line {e.lineno}, column {e.colno})") from None
    if not isinstance(data, dict):
        raise NotebookError("invalid notebook: the top level is not a JSON object")
    source_key = "source"
    if "cells" in data:
        cells = data["cells"]
    elif isinstance(data.get("worksheets"), list):  # nbformat 3
        ws = data["worksheets"]
        cells = ws[0].get("cells", []) if ws and isinstance(ws[0], dict) else []
        source_key = "input"
    else:
        raise NotebookError("invalid notebook: no `cells` list")
    if not isinstance(cells, list):
        raise NotebookError("invalid notebook: `cells` is not a list")
    meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    lang = None
    ks = meta.get("kernelspec")
    if isinstance(ks, dict) and isinstance(ks.get("language"), str):
        lang = ks["language"]
    li = meta.get("language_info")
    if lang is None and isinstance(li, dict) and isinstance(li.get("name"), str):
        lang = li["name"]
    nb = Notebook(data, [], skip=lang is not None and lang.lower() not in ("python", "python3", "ipython"),
                  source_key=source_key, cell_list=cells)
    line = 1
    for idx, cell in enumerate(cells):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        if cell.get("language", "python") not in ("python", None):  # nbformat 3 per-cell language
            continue
        src = _cell_text(cell.get(source_key, ""))
        src = src.replace("\r\n", "\n").replace("\r", "\n")
        nlines = src.count("\n") + (0 if src.endswith("\n") or not src else 1)
        if not src:
            nlines = 0
        c = Cell(idx, src, line + 1, nlines)
        nb.cells.append(c)
        line += 1 + max(nlines, 0)
    return nb
