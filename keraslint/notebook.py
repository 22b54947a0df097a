"""Jupyter notebooks as one Python module.

Code cells are joined into one module (so an import in cell 1 resolves in cell 5), each
preceded by a marker line ``# %% keraslint-cell <index>`` so that fixed source can be cut
back into cells. IPython syntax (``%magic``, ``!shell``, ``x = !ls``, ``obj?`` and cell
magics) is replaced line for line by neutral Python, so line numbers never shift. Positions
map back to ``(cell, line)`` with 1-based cell numbers counting all cells.
"""

from __future__ import annotations

import io
import json
import re
import tokenize
from dataclasses import dataclass, field
from typing import Optional

MARKER = "# %% keraslint-cell "
_PY_CELL_MAGICS = {"time", "timeit", "capture", "prun", "debug", "pypy", "python", "python3", "tensorflow_version"}
# IPython's line magics and its default POSIX aliases (aliases are line magics since IPython 1.0),
# plus Colab's; with automagic on (the default) ``pip install x`` runs as ``%pip install x``.
_LINE_MAGIC_NAMES = frozenset("""
    alias alias_magic autoawait autocall automagic autosave bookmark cat cd clear colors conda config
    connect_info cp debug dhist dirs doctest_mode ed edit env gui hist history killbgscripts ldir less lf
    lk ll load load_ext loadpy logoff logon logstart logstate logstop ls lsmagic lx macro magic mamba man
    matplotlib micromamba mkdir more mv notebook page pastebin pdb pdef pdoc pfile pinfo pinfo2 pip popd
    pprint precision prun psearch psource pushd pwd pycat pylab qtconsole quickref recall rehashx
    reload_ext rep rerun reset reset_selective rm rmdir run save sc set_env store sx system tb time timeit
    unalias unload_ext who who_ls whos xdel xmode tensorflow_version uv
""".split())
_HELP = re.compile(r"^\s*(?:[\w.\[\]()'\"*]+\?{1,2}|\?{1,2}\s*[\w.\[\]()'\"*]+)\s*$")
_ASSIGN_MAGIC = re.compile(r"^(\s*[\w.]+\s*=\s*)[!%]")
_LINE_MAGIC = re.compile(r"^(\s*)[!%]")
# A magic's name, a space and an argument; not an assignment or an operator (IPython's
# AssignmentChecker leaves ``history = ...`` to Python).
_AUTOMAGIC = re.compile(r"^(\s*)([A-Za-z_]\w*) +(?![=,(\[.:;]|[-+*/%@&|^<>!]=|\*\*=|//=|>>=|<<=|(?:in|is|and|or|not|if|else|for)\b)\S")
_CANDIDATE = re.compile(r"^\s*(?:[!%?]|[\w.]+\s*=\s*[!%])|\?\s*$|^\s*[A-Za-z_]\w* +\S")


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
    neutral: Optional[str] = None  # the cell as plain Python (computed once)
    indent: str = ""  # the leading indent IPython strips from the cell (``leading_indent``)


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
                if c.neutral is None:
                    c.neutral = _neutralize(c)
                out.append(c.neutral)
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


def _at_logical_start(lines: list, i: int) -> Optional[bool]:
    """Whether physical line ``i`` starts a logical line, given the lines before it (magics
    already neutralized): the text before it tokenizes completely. ``None`` when the text
    before is not Python for another reason (the caller then falls back)."""
    if i == 0:
        return True
    text = "\n".join(lines[:i]) + "\n"
    try:
        for _tok in tokenize.generate_tokens(io.StringIO(text).readline):
            pass
    except tokenize.TokenError as e:
        msg = str(e.args[0]) if e.args else ""
        if "EOF in multi-line" in msg or "unterminated triple-quoted" in msg:
            return False  # inside brackets, a continued line or a triple-quoted string
        return None
    except (SyntaxError, ValueError):  # IndentationError, bad characters (3.12+ tokenizer)
        return None
    return True


def _is_python(line: str) -> bool:
    try:
        compile(line.strip(), "<cell>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return False
    return True


def _magic_kind(ln: str) -> Optional[str]:
    """What IPython syntax a line would be if it starts a logical line."""
    stripped = ln.lstrip()
    if _ASSIGN_MAGIC.match(ln):
        return "assign"
    if _LINE_MAGIC.match(ln) and not stripped.startswith("!="):
        return "escape"
    if _HELP.match(ln):
        return "help"
    m = _AUTOMAGIC.match(ln)
    if m and m.group(2) in _LINE_MAGIC_NAMES and not _is_python(ln) and _at_logical_start([ln], 1):
        return "automagic"  # (a line that opens a bracket is the start of a Python statement)
    return None


def _neutralize(cell: Cell) -> str:
    """The cell as Python, IPython syntax replaced line for line. Only a line that starts a
    logical line can be IPython syntax (a ``%`` that starts a continuation line inside brackets
    is the ``%`` operator); an escaped line continued with ``\\`` takes its next lines with it."""
    lines = _strip_leading_indent(cell, cell.source.split("\n"))
    out = list(lines)
    first_code = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    begin = 0
    if first_code is not None and lines[first_code].lstrip().startswith("%%"):
        stripped = lines[first_code].lstrip()
        name = stripped[2:].split(None, 1)[0] if len(stripped) > 2 else ""
        cell.magic_lines[first_code] = lines[first_code]
        out[first_code] = "pass"
        if name not in _PY_CELL_MAGICS:
            for i in range(first_code + 1, len(lines)):
                _blank_out(cell, lines, out, i)
            return _joined(out)
        begin = first_code + 1
    fallback = False  # the text before a candidate is not Python: every candidate is IPython
    i = begin
    while i < len(lines):
        ln = lines[i]
        if not _CANDIDATE.search(ln):
            i += 1
            continue
        kind = _magic_kind(ln)
        if kind is None:
            i += 1
            continue
        if not fallback:
            start = _at_logical_start(out, i)
            if start is None:
                fallback = True
            elif not start:
                i += 1
                continue
        indent = ln[: len(ln) - len(ln.lstrip())]
        cell.magic_lines[i] = ln
        if kind == "assign":
            out[i] = _ASSIGN_MAGIC.match(ln).group(1) + "None"
        else:
            out[i] = indent + "pass"
        # IPython joins an escaped line ending in a backslash with the next ones.
        while kind in ("escape", "assign", "automagic") and lines[i].endswith("\\") and i + 1 < len(lines):
            i += 1
            _blank_out(cell, lines, out, i)
        i += 1
    return _joined(out)


def _strip_leading_indent(cell: Cell, lines: list) -> list:
    """IPython's ``leading_empty_lines`` + ``leading_indent`` cleanup: when the first
    non-blank line starts with spaces/tabs, that prefix is removed from every line starting
    with it (line for line: blank lines stay, so lines never shift)."""
    first = next((ln for ln in lines if ln and not ln.isspace()), None)
    if first is None:
        return lines
    m = re.match(r"[ \t]+", first)
    if not m:
        return lines
    space = m.group(0)
    cell.indent = space
    n = len(space)
    return [ln[n:] if ln.startswith(space) else ln for ln in lines]


def _blank_out(cell: Cell, lines: list, out: list, i: int) -> None:
    # Not the empty piece after the cell's last newline: "#" there would add a line to the
    # module and shift every later cell by one (and it is no line of the cell to restore).
    if lines[i] or i < len(lines) - 1:
        cell.magic_lines[i] = lines[i]
        out[i] = "#"


def _joined(out: list) -> str:
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
