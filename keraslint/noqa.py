"""``keraslint check --add-noqa``: suppress every current finding in place.

For each finding, ``# keraslint: ignore[KLnnn]`` goes at the end of the line where the
finding starts, or, when a comment is not legal there (the line ends inside a multi-line
string or with a backslash continuation), at the end of the finding's last line: the engine
honours a suppression on either (``engine.to_findings``). Where neither line can hold a
comment, the first line after the finding's end where one can (the end of the statement)
is used. Lines where a comment is legal are found with ``tokenize`` (a line that ends with
a NEWLINE or NL token). Codes are merged into an existing ``# keraslint: ignore[...]``
comment on the line; another comment (``# type: ignore``, ``# noqa: E501``) is kept and
ours appended after it.

Notebooks: the combined module (``notebook.py``) is edited and cut back into cells by the
fixer's byte-preserving splice (``fixer._notebook_bytes``); lines holding IPython magics are
never used. Files are written atomically with ``fixer.write_atomic``, and only if they did
not change on disk since they were read.
"""

from __future__ import annotations

import io
import re
import tokenize
from dataclasses import dataclass, field
from typing import Optional

DIRECTIVE = "# keraslint: ignore[{}]"
_OURS = re.compile(r"#\s*keraslint:\s*ignore\[(?P<codes>[^\]]*)\]", re.IGNORECASE)


@dataclass
class NoqaResult:
    added: int = 0  # lines that got a new or extended directive
    files: int = 0  # files written
    errors: list = field(default_factory=list)  # lines for stderr
    unplaced: list = field(default_factory=list)  # (path, line, code) no legal line found
    # (path, line, code): neither the finding's first nor its last line can hold a comment;
    # the directive went to the end of the statement, where the engine does not look (yet).
    fallback: list = field(default_factory=list)


def _split(text: str) -> list:
    """Physical lines with their endings (``\\n`` / ``\\r\\n`` only, as the tokenizer does)."""
    return text.split("\n")


def comment_lines(text: str, forbidden: frozenset = frozenset()) -> Optional[list]:
    """Sorted 1-based numbers of the lines that may end with a comment, or None if the
    text does not tokenize."""
    ok = set()
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type in (tokenize.NEWLINE, tokenize.NL) or tok.type == tokenize.COMMENT:
                ok.add(tok.start[0])
    except (tokenize.TokenError, SyntaxError, IndentationError, ValueError):
        return None
    return sorted(ln for ln in ok if ln not in forbidden)


def _pick(ok: set, ordered: list, sl: int, el: int, limit: int) -> Optional[int]:
    if sl in ok:
        return sl
    if el in ok:
        return el
    import bisect

    i = bisect.bisect_left(ordered, el)
    if i < len(ordered) and ordered[i] <= limit:
        return ordered[i]
    return None


def _with_codes(line: str, codes: set) -> Optional[str]:
    """``line`` (no line ending) with ``codes`` suppressed; None if already all there."""
    m = None
    for m in _OURS.finditer(line):
        pass
    if m is not None:
        have = [c.strip() for c in re.split(r"[\s,]+", m.group("codes")) if c.strip()]
        have_up = {c.upper() for c in have}
        new = sorted(c for c in codes if c not in have_up)
        if not new:
            return None
        merged = ", ".join(have + new)
        return line[:m.start("codes")] + merged + line[m.end("codes"):]
    body = line.rstrip(" \t")
    sep = "  " if body.strip() else ""
    return body + sep + DIRECTIVE.format(", ".join(sorted(codes)))


def add_to_text(text: str, wanted: list, forbidden: frozenset = frozenset(), limits: Optional[dict] = None):
    """``wanted``: [(start line, end line, code)] (1-based lines of ``text``). Returns
    (new text, lines changed, [(line, code) that could not be placed], [(line, code) placed
    at the end of the statement]) or None if the text
    does not tokenize. ``limits`` maps a start line to the last line a fallback may use
    (the end of a notebook cell)."""
    ordered = comment_lines(text, forbidden)
    if ordered is None:
        return None
    ok = set(ordered)
    lines = _split(text)
    per_line: dict = {}
    unplaced, fallback = [], []
    for sl, el, code in wanted:
        limit = (limits or {}).get(sl, len(lines))
        ln = _pick(ok, ordered, sl, el, limit)
        if ln is None or ln > len(lines):
            unplaced.append((sl, code))
            continue
        if ln not in (sl, el):
            fallback.append((sl, code))
        per_line.setdefault(ln, set()).add(code)
    changed = 0
    for ln, codes in per_line.items():
        raw = lines[ln - 1]
        cr = raw.endswith("\r")
        new = _with_codes(raw[:-1] if cr else raw, codes)
        if new is None:
            continue
        lines[ln - 1] = new + ("\r" if cr else "")
        changed += 1
    return "\n".join(lines), changed, unplaced, fallback


def add_noqa(findings: list) -> NoqaResult:
    """Add directives for ``findings`` (as the runner returned them) to their files."""
    from keraslint import engine, fixer

    res = NoqaResult()
    by_path: dict = {}
    for f in findings:
        if f.code == "KL000":
            continue  # a file that does not parse (or could not be read) cannot be edited safely
        by_path.setdefault(f.path, []).append(f)
    for path, items in by_path.items():
        src = engine.read_source(path)
        if not isinstance(src, engine.Source):
            res.errors.append(f"{path}: cannot add noqa directives: {src.message}")
            continue
        nb = src.notebook
        if "\r" in src.text.replace("\r\n", ""):
            res.errors.append(f"{path}: cannot add noqa directives: old Mac line endings (a lone CR)")
            continue
        wanted, limits, forbidden = [], {}, set()
        if nb is None:
            wanted = [(f.line, f.end_line, f.code) for f in items]
        else:
            cells = {c.index + 1: c for c in nb.cells}
            for c in nb.cells:
                forbidden.update(c.start + i for i in c.magic_lines)
            for f in items:
                c = cells.get(f.cell)
                if c is None:
                    continue
                sl, el = c.start + f.line - 1, c.start + f.end_line - 1
                wanted.append((sl, el, f.code))
                limits[sl] = c.start + max(c.nlines, 1) - 1
        out = add_to_text(src.text, wanted, frozenset(forbidden), limits)
        if out is None:
            res.errors.append(f"{path}: cannot add noqa directives: the file does not tokenize")
            continue
        new_text, changed, unplaced, fallback = out
        res.unplaced.extend((path, ln, code) for ln, code in unplaced)
        res.fallback.extend((path, ln, code) for ln, code in fallback)
        for ln, code in unplaced:
            res.errors.append(f"{path}:{ln}: no line of the statement can hold a comment for {code}; not suppressed")
        if not changed:
            continue
        if nb is None:
            try:
                data = new_text.encode(src.encoding)
            except (UnicodeEncodeError, LookupError) as e:
                res.errors.append(f"{path}: cannot add noqa directives: {e}")
                continue
            if src.bom:
                data = b"\xef\xbb\xbf" + data
        else:
            data = fixer._notebook_bytes(src, src.text, new_text)
            if data is None:
                res.errors.append(f"{path}: cannot add noqa directives: the notebook's cells could not be rewritten")
                continue
        try:
            fixer.write_atomic(path, data, expected=src.raw)
        except OSError as e:
            res.errors.append(f"{path}: cannot write: {e.strerror or e}; the file was left as it was")
            continue
        res.added += changed
        res.files += 1
    return res
