"""Apply the rules' fixes: ``keraslint check --fix / --unsafe-fixes / --diff``.

A rule proposes a :class:`~keraslint.rule.Fix` (a list of edits on the CST nodes of the
module it analysed); this module applies them:

* **Node identity.** Every edit names an original node; one libcst transformer replaces
  exactly those nodes (keyed on ``id(original_node)``), so comments, blank lines, quotes
  and formatting outside the replaced nodes stay byte-identical. Statement edits
  (replace, remove, insert) are done by the body that holds the statement, so comments
  above a removed statement are kept and an emptied block gets ``pass``. Removing an
  argument keeps the call's comma style.
* **Imports** (``AddImport``) are added once, after the last import of the module's
  leading import block, never duplicating one that exists; a fix whose import would
  rebind a name the file already uses for something else is dropped.
* **Rounds.** All non-overlapping fixes of a file are applied together, then the file is
  analysed again, until nothing changes (at most ``MAX_ROUNDS``). A fix that overlaps an
  edit of the same round waits for the next one. A rule whose fix does not make its own
  finding go away is not asked again.
* **Never write broken code.** After every round the new text must parse with libcst and
  compile with CPython (when the original did); otherwise the round's fixes are retried
  one by one and those that break the file are dropped.
* **Notebooks** are fixed in place: the fixed module is cut back into cells at the
  marker lines, IPython magics are restored, and only the changed cells' ``source``
  values are spliced into the original JSON text, so metadata, outputs and the layout
  stay byte-identical.
* **Writing** is atomic: a temporary file in the same folder, fsync, the original's
  mode, ``os.replace``; a symlink's target is updated; a file that changed on disk since
  it was read is not overwritten.
"""

from __future__ import annotations

import ast
import codecs
import difflib
import errno
import json
import os
import re
import stat
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Optional

import libcst as cst

from keraslint import engine
from keraslint import notebook as nbmod
from keraslint.rule import AddImport, InsertStatements, Replace

MAX_ROUNDS = 10


@dataclass
class FixResult:
    new_bytes: Optional[bytes]  # the whole new file, or None if nothing changed
    findings: list  # findings that remain, positions on the new text
    applied: int = 0  # number of fixes applied
    rounds: int = 0
    dropped: list = field(default_factory=list)  # (code, reason) of fixes that were not applied
    original_findings: list = field(default_factory=list)  # findings of the file as it was read


class _Skip(Exception):
    """This fix cannot be applied (the message says why)."""


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------


def fix_source(src: engine.Source, classes: list, config: Any = None, unsafe: bool = False,
               severity: Optional[dict] = None, gate: bool = True) -> FixResult:
    """Fix one source; see the module docstring. ``src`` is what ``engine.read_source``
    returned for the file."""
    kinds = ("safe", "unsafe") if unsafe else ("safe",)
    cur = src
    applied = 0
    changed = False
    stalled: set = set()  # codes whose fixes do not remove their findings
    dropped: list = []
    last_applied: Counter = Counter()
    before_counts: Counter = Counter()
    compiled_ok: Optional[bool] = None
    rounds = 0
    analysis = engine.analyze(cur, classes, config, gate=gate, severity=severity)
    original_findings = analysis.findings
    if src.notebook is None and src.text.startswith("\ufeff"):
        # A second byte-order mark (U+FEFF as the first character after decoding): libcst
        # drops it when it regenerates the code, which can change how the file decodes
        # (a coding cookie behind it starts to count). Report, never rewrite.
        return FixResult(None, original_findings, 0, 0, [("*", "the file starts with a second byte-order mark")],
                         original_findings)
    seen = {hash(src.text)}
    while True:
        if analysis.module is None or rounds >= MAX_ROUNDS:
            break
        reports = _fixable_reports(analysis, kinds)
        counts = Counter(_key(r) for r in reports)
        # A rule whose applied fixes left as many of its fixable findings as before is
        # stuck (its fix does not remove what it reports): do not ask it again.
        for k in last_applied:
            if counts[k] >= before_counts[k]:
                stalled.add(k)
        reports = [r for r in reports if r.rule.code not in stalled]
        if not reports:
            break
        if compiled_ok is None:
            compiled_ok = _compiles(analysis.source.text, cur.notebook is not None)
        result = _fix_round(cur, analysis, reports, compiled_ok, dropped)
        if result is None:
            break
        new_src, used = result
        h = hash(new_src.text)
        if h in seen:
            dropped.extend((r.rule.code, "the fixes of two rules undo each other") for r in used)
            break  # two rules undo each other's fixes: stop where we are
        seen.add(h)
        rounds += 1
        applied += len(used)
        changed = True
        before_counts = counts
        last_applied = Counter(_key(r) for r in used)
        cur = new_src
        analysis = engine.analyze(cur, classes, config, gate=gate, severity=severity)
    new_bytes = cur.raw if changed and cur.raw != src.raw else None
    return FixResult(new_bytes, analysis.findings, applied if new_bytes is not None else 0, rounds, dropped,
                     original_findings)


def _key(rep) -> str:
    return rep.rule.code


def _fixable_reports(analysis: engine.Analysis, kinds: tuple) -> list:
    """Reports with an applicable fix that survive suppression comments (as findings do)."""
    reps = [r for r in analysis.reports if r.fix is not None and r.fix.applicability in kinds and r.fix.edits]
    if not reps:
        return []
    text = analysis.source.text
    low = text.lower()
    if "noqa" not in low and "keraslint" not in low:
        return _dedupe(reps)
    pos = engine.positions(analysis.module)
    lines = text.split("\n")
    out = []
    for rep in reps:
        rng = pos.get(rep.node)
        if rng is None:
            continue
        sl, el = rng.start.line, rng.end.line
        sup = engine.suppressed_codes(lines[sl - 1]) if sl - 1 < len(lines) else None
        if el != sl and not engine.is_suppressed(rep.rule.code, sup) and el - 1 < len(lines):
            sup = engine.suppressed_codes(lines[el - 1])
        if engine.is_suppressed(rep.rule.code, sup):
            continue
        out.append(rep)
    return _dedupe(out)


def _dedupe(reps: list) -> list:
    seen = set()
    out = []
    for r in reps:
        k = (r.rule.code, id(r.node), id(r.fix))
        if k in seen:
            continue
        seen.add(k)
        out.append(r)
    return out


def _compiles(text: str, notebook: bool) -> bool:
    flags = ast.PyCF_ONLY_AST | (ast.PyCF_ALLOW_TOP_LEVEL_AWAIT if notebook else 0)
    try:
        compile(text, "<keraslint-fix>", "exec", flags, dont_inherit=True)
        return True
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        return False


# ---------------------------------------------------------------------------
# One round
# ---------------------------------------------------------------------------


def _fix_round(cur: engine.Source, analysis: engine.Analysis, reports: list, compiled_ok: bool,
               dropped: list):
    """Apply the non-overlapping fixes of ``reports``. Returns (new Source, reports used)
    or None when nothing could be applied."""
    module = analysis.module
    tree = _Tree(module)
    claimed: set = set()  # ids of nodes replaced/removed this round
    covered: set = set()  # ids of their ancestors
    plans = []
    for rep in reports:
        try:
            plan = _plan(rep.fix, tree, module)
        except _Skip as e:
            dropped.append((rep.rule.code, str(e)))
            continue
        except Exception as e:  # noqa: BLE001 - a rule's malformed fix must not stop the run
            dropped.append((rep.rule.code, f"malformed fix: {type(e).__name__}: {e}"))
            continue
        targets = plan.targets()
        if any(t in claimed or t in covered or any(a in claimed for a in tree.ancestors(t)) for t in targets):
            continue  # overlaps an edit of this round: next round
        for t in targets:
            claimed.add(t)
            covered.update(tree.ancestors(t))
        plans.append((rep, plan))
    if not plans:
        return None

    def attempt(ps: list):
        try:
            new_text = _apply(module, tree, [p for _, p in ps]).code
            if new_text == analysis.source.text:
                return None
            return _materialize(cur, analysis.source.text, new_text, compiled_ok)
        except Exception:  # noqa: BLE001 - libcst refused the edit, odd notebook JSON...: not written
            return None

    new_src = attempt(plans)
    used = plans
    if new_src is None and len(plans) > 1:
        # Find the fixes that break the file; keep the others.
        used = []
        for p in plans:
            if attempt(used + [p]) is not None:
                used.append(p)
            else:
                dropped.append((p[0].rule.code, "the fixed file would not parse or compile"))
        new_src = attempt(used) if used else None
    elif new_src is None:
        dropped.append((plans[0][0].rule.code, "the fixed file would not parse or compile"))
    if new_src is None:
        return None
    return new_src, [r for r, _ in used]


def _materialize(cur: engine.Source, old_text: str, new_text: str, compiled_ok: bool):
    """The new Source for ``new_text``, or None if it must not be written."""
    try:
        cst.parse_module(new_text)
    except Exception:  # noqa: BLE001
        return None
    nb = cur.notebook
    if compiled_ok and not _compiles(new_text, nb is not None):
        return None
    if nb is None:
        try:
            data = new_text.encode(cur.encoding)
        except (UnicodeEncodeError, LookupError):
            return None
        if cur.bom:
            data = codecs.BOM_UTF8 + data
        return engine.Source(cur.path, new_text, encoding=cur.encoding, bom=cur.bom, raw=data)
    data = _notebook_bytes(cur, old_text, new_text)
    if data is None:
        return None
    try:
        new_nb = nbmod.load(data.decode("utf-8-sig"))
    except (nbmod.NotebookError, UnicodeDecodeError):
        return None
    return engine.Source(cur.path, new_nb.module_source(), notebook=new_nb, raw=data)


# ---------------------------------------------------------------------------
# The tree: parents and ancestors
# ---------------------------------------------------------------------------


class _Tree:
    def __init__(self, module: cst.Module) -> None:
        self.module = module
        self._parent: Optional[dict] = None

    def parent_map(self) -> dict:
        if self._parent is None:
            parent: dict = {}
            stack = [self.module]
            while stack:
                n = stack.pop()
                for c in n.children:
                    parent[id(c)] = n
                    stack.append(c)
            self._parent = parent
        return self._parent

    def parent(self, node: Any) -> Any:
        return self.parent_map().get(id(node))

    def ancestors(self, node_id: int) -> list:
        pm = self.parent_map()
        out = []
        p = pm.get(node_id)
        while p is not None:
            out.append(id(p))
            p = pm.get(id(p))
        return out

    def contains(self, node: Any) -> bool:
        return node is self.module or id(node) in self.parent_map()


# ---------------------------------------------------------------------------
# Planning: normalize a Fix's edits into node-keyed operations
# ---------------------------------------------------------------------------


@dataclass
class _Plan:
    replace: dict = field(default_factory=dict)  # id(orig) -> (orig, new or None)
    stmt_replace: dict = field(default_factory=dict)  # id(stmt) -> (stmt, list of stmts)  ([] = remove)
    small_replace: dict = field(default_factory=dict)  # id(small stmt) -> (node, new small stmt or None)
    before: dict = field(default_factory=dict)  # id(stmt) -> list of stmts
    after: dict = field(default_factory=dict)
    top: list = field(default_factory=list)  # statements after the leading imports
    imports: list = field(default_factory=list)  # AddImport
    moved: set = field(default_factory=set)  # ids of removed statements re-inserted elsewhere (a move)

    def targets(self) -> list:
        return list(self.replace) + list(self.stmt_replace) + list(self.small_replace)


_BODY_PARENTS = (cst.Module, cst.IndentedBlock)


def _plan(fix, tree: _Tree, module: cst.Module) -> _Plan:
    plan = _Plan()
    for edit in fix.edits:
        if isinstance(edit, Replace):
            node = edit.node
            if not isinstance(node, cst.CSTNode) or not tree.contains(node):
                raise _Skip("the fix names a node that is not in this file")
            parent = tree.parent(node)
            if isinstance(node, cst.BaseSmallStatement) and isinstance(parent, cst.SimpleStatementLine) \
                    and len(parent.body) == 1 and isinstance(tree.parent(parent), _BODY_PARENTS):
                # The only statement on its line: edit the line.
                new = edit.new
                if isinstance(new, cst.BaseSmallStatement):
                    new = parent.with_changes(body=[new.with_changes(semicolon=cst.MaybeSentinel.DEFAULT)])
                plan.stmt_replace[id(parent)] = (parent, _statements(new, module, parent))
            elif isinstance(node, cst.BaseStatement) and isinstance(parent, _BODY_PARENTS):
                plan.stmt_replace[id(node)] = (node, _statements(edit.new, module, node))
            elif isinstance(node, cst.BaseSmallStatement):
                new = edit.new
                if isinstance(new, str):
                    new = _parse_statements(new, module)
                    if len(new) != 1 or not isinstance(new[0], cst.SimpleStatementLine) or len(new[0].body) != 1:
                        raise _Skip("a small statement can only be replaced by one small statement")
                    new = new[0].body[0]
                if new is not None and not isinstance(new, cst.BaseSmallStatement):
                    raise _Skip("a small statement can only be replaced by a small statement")
                plan.small_replace[id(node)] = (node, new)
            else:
                new = edit.new
                if isinstance(new, str):
                    new = _parse_like(new, node, module)
                plan.replace[id(node)] = (node, new)
        elif isinstance(edit, InsertStatements):
            stmts = _parse_statements(edit.code, module)
            if edit.anchor is None:
                plan.top.extend(stmts)
                continue
            anchor = _statement_of(edit.anchor, tree)
            if anchor is None:
                raise _Skip("the insertion anchor is not a statement of this file")
            (plan.after if edit.after else plan.before).setdefault(id(anchor), []).extend(stmts)
        elif isinstance(edit, AddImport):
            plan.imports.append(edit)
        else:
            raise _Skip(f"unknown edit {type(edit).__name__}")
    for imp in plan.imports:
        _check_import(imp, module)  # raises _Skip on a conflicting binding
    _detect_moves(plan)
    return plan


def _detect_moves(plan: _Plan) -> None:
    """A fix that removes a statement and inserts the same statement elsewhere moves it:
    the comment block attached above it moves along (blank lines stay)."""
    removed = [n for n, news in plan.stmt_replace.values() if not news]
    if not removed:
        return
    bare = [(r, r.with_changes(leading_lines=())) for r in removed]
    for lst in [*plan.before.values(), *plan.after.values(), plan.top]:
        for i, st in enumerate(lst):
            st_bare = st.with_changes(leading_lines=())
            for r, r_bare in bare:
                if id(r) in plan.moved or not st_bare.deep_equals(r_bare):
                    continue
                lead = tuple(r.leading_lines)
                attached = tuple(ln for ln in lead[_split_leading(lead):])
                if attached:
                    lst[i] = st.with_changes(leading_lines=tuple(st.leading_lines) + attached)
                plan.moved.add(id(r))
                break


def _statement_of(node: Any, tree: _Tree) -> Any:
    """The statement (in a Module/IndentedBlock body) that holds ``node``."""
    n = node
    while n is not None:
        p = tree.parent(n)
        if isinstance(n, cst.BaseStatement) and isinstance(p, _BODY_PARENTS):
            return n
        n = p
    return None


def _newline_fix(code: str, module: cst.Module) -> str:
    code = code.replace("\r\n", "\n")
    if module.default_newline != "\n":
        code = code.replace("\n", module.default_newline)
    return code


def _parse_statements(code: str, module: cst.Module) -> list:
    if not code.endswith("\n"):
        code += "\n"
    try:
        m = cst.parse_module(_newline_fix(code, module), config=module.config_for_parsing)
    except Exception as e:  # noqa: BLE001
        raise _Skip(f"the fix's code does not parse: {e}") from None
    body = list(m.body)
    if not body:
        raise _Skip("the fix inserts no statement")
    if m.header:
        body[0] = body[0].with_changes(leading_lines=tuple(m.header) + tuple(body[0].leading_lines))
    return body


def _statements(new: Any, module: cst.Module, orig: Any) -> list:
    if new is None:
        return []
    if isinstance(new, str):
        return _parse_statements(new, module)
    if isinstance(new, (list, tuple)):
        out = []
        for n in new:
            out.extend(_statements(n, module, orig))
        return out
    if isinstance(new, cst.BaseSmallStatement):
        return [cst.SimpleStatementLine(body=[new])]
    if isinstance(new, cst.BaseStatement):
        return [new]
    raise _Skip(f"cannot replace a statement with {type(new).__name__}")


def _parse_like(code: str, orig: Any, module: cst.Module) -> Any:
    cfg = module.config_for_parsing
    try:
        if isinstance(orig, cst.BaseExpression):
            return cst.parse_expression(code, config=cfg)
        if isinstance(orig, cst.Arg):
            call = cst.parse_expression(f"f({code})", config=cfg)
            (arg,) = call.args
            return arg.with_changes(comma=orig.comma)
    except Exception as e:  # noqa: BLE001
        raise _Skip(f"the fix's code does not parse: {e}") from None
    raise _Skip(f"cannot replace a {type(orig).__name__} with source text")


# ---------------------------------------------------------------------------
# Imports
# ---------------------------------------------------------------------------


def _top_statements(module: cst.Module):
    """Module-level statements, including those in top-level try/if blocks."""
    stack = list(reversed(module.body))
    while stack:
        s = stack.pop()
        yield s
        if isinstance(s, (cst.Try, cst.If)):
            blocks = [s.body]
            if isinstance(s, cst.Try):
                blocks += [h.body for h in s.handlers]
                if s.orelse is not None:
                    blocks.append(s.orelse.body)
            else:
                o = s.orelse
                while o is not None:
                    blocks.append(o.body)
                    o = o.orelse if isinstance(o, cst.If) else None
            for b in blocks:
                if isinstance(b, cst.IndentedBlock):
                    stack.extend(reversed(b.body))


def _dotted(expr: Any) -> Optional[str]:
    parts = []
    while isinstance(expr, cst.Attribute):
        parts.append(expr.attr.value)
        expr = expr.value
    if isinstance(expr, cst.Name):
        parts.append(expr.value)
        return ".".join(reversed(parts))
    return None


def _bindings(module: cst.Module) -> dict:
    """name -> set of what binds it at module level: ('import', module) for ``import m``
    (root binding of ``import m.sub`` too), ('from', module, name), or ('other',)."""
    out: dict = {}
    for s in _top_statements(module):
        if isinstance(s, cst.SimpleStatementLine):
            for small in s.body:
                if isinstance(small, cst.Import):
                    for a in small.names:
                        full = _dotted(a.name)
                        if full is None:
                            continue
                        if a.asname is not None and isinstance(a.asname.name, cst.Name):
                            out.setdefault(a.asname.name.value, set()).add(("import", full))
                        else:
                            root = full.split(".")[0]
                            out.setdefault(root, set()).add(("import", root))
                elif isinstance(small, cst.ImportFrom):
                    if small.relative or small.module is None or isinstance(small.names, cst.ImportStar):
                        continue
                    mod = _dotted(small.module)
                    for a in small.names:
                        name = _dotted(a.name)
                        local = a.asname.name.value if a.asname is not None and isinstance(a.asname.name, cst.Name) \
                            else name
                        out.setdefault(local, set()).add(("from", mod, name))
                elif isinstance(small, (cst.Assign, cst.AnnAssign)):
                    targets = [t.target for t in small.targets] if isinstance(small, cst.Assign) else [small.target]
                    for t in targets:
                        if isinstance(t, cst.Name):
                            out.setdefault(t.value, set()).add(("other",))
        elif isinstance(s, (cst.FunctionDef, cst.ClassDef)):
            out.setdefault(s.name.value, set()).add(("other",))
    return out


def _import_binding(imp: AddImport) -> tuple:
    if imp.name is None:
        if imp.asname:
            return imp.asname, ("import", imp.module)
        root = imp.module.split(".")[0]
        return root, ("import", root)
    return imp.asname or imp.name, ("from", imp.module, imp.name)


def _check_import(imp: AddImport, module: cst.Module) -> None:
    local, want = _import_binding(imp)
    have = _bindings(module).get(local)
    if have and want not in have:
        raise _Skip(f"`{local}` already names something else in this file")
    if have and len(have) > 1:
        raise _Skip(f"`{local}` is bound more than once in this file")


def _import_exists(imp: AddImport, module: cst.Module) -> bool:
    local, want = _import_binding(imp)
    have = _bindings(module).get(local)
    if not have or want not in have:
        return False
    if imp.name is None and "." in imp.module and not imp.asname:
        # ``import a.b`` needs the submodule imported, not just ``a`` bound.
        for s in _top_statements(module):
            if isinstance(s, cst.SimpleStatementLine):
                for small in s.body:
                    if isinstance(small, cst.Import):
                        for a in small.names:
                            full = _dotted(a.name) or ""
                            if a.asname is None and (full == imp.module or full.startswith(imp.module + ".")):
                                return True
        return False
    return True


def _import_statement(imp: AddImport, module: cst.Module) -> cst.SimpleStatementLine:
    if imp.name is None:
        code = f"import {imp.module}" + (f" as {imp.asname}" if imp.asname else "")
    else:
        code = f"from {imp.module} import {imp.name}" + (f" as {imp.asname}" if imp.asname else "")
    return _parse_statements(code, module)[0]


def _is_import_stmt(s: Any) -> bool:
    if isinstance(s, cst.SimpleStatementLine):
        return bool(s.body) and all(isinstance(x, (cst.Import, cst.ImportFrom)) for x in s.body)
    if isinstance(s, (cst.Try, cst.If)):
        # try: import x / except ImportError: ...; if TYPE_CHECKING: import ...
        inner = [t for t in _top_statements(cst.Module(body=[s])) if t is not s]
        simple = [t for t in inner if isinstance(t, cst.SimpleStatementLine)]
        return bool(simple) and any(_is_import_stmt(t) for t in simple) and all(
            _is_import_stmt(t) or all(isinstance(x, (cst.Pass, cst.Assign, cst.Expr)) for x in t.body)
            for t in simple)
    return False


def _is_docstring(s: Any) -> bool:
    return (isinstance(s, cst.SimpleStatementLine) and len(s.body) == 1 and isinstance(s.body[0], cst.Expr)
            and isinstance(s.body[0].value, (cst.SimpleString, cst.ConcatenatedString)))


# Set-up statements that may sit between imports (``os.environ["KERAS_BACKEND"] = ...``).
_SETUP_PREFIXES = ("os.environ", "sys.path", "warnings.", "logging.", "matplotlib.use", "mpl.use",
                   "tf.get_logger", "absl.logging")


def _is_setup_stmt(s: Any) -> bool:
    if not isinstance(s, cst.SimpleStatementLine):
        return False
    for small in s.body:
        if isinstance(small, cst.Pass):  # also what a notebook's magics become
            continue
        name = None
        if isinstance(small, cst.Assign) and len(small.targets) == 1:
            t = small.targets[0].target
            if isinstance(t, cst.Subscript):
                t = t.value
            name = _dotted(t)
            if name in ("__all__", "__version__", "__author__"):
                continue
        elif isinstance(small, cst.Expr) and isinstance(small.value, cst.Call):
            name = _dotted(small.value.func)
        if name is None or not any(name == p.rstrip(".") or name.startswith(p.rstrip(".") + ".")
                                   for p in _SETUP_PREFIXES):
            return False
    return True


def _header_index(body: Any) -> int:
    """Index in the module body after the leading docstring / imports block."""
    idx = 0
    if body and _is_docstring(body[0]):
        idx = 1
    last = None
    for i in range(idx, len(body)):
        s = body[i]
        if _is_import_stmt(s):
            last = i
        elif _is_setup_stmt(s):
            continue
        else:
            break
    return idx if last is None else last + 1


# ---------------------------------------------------------------------------
# Applying the plans
# ---------------------------------------------------------------------------

_ATOM_PARENTS = (cst.Attribute, cst.Call, cst.Subscript, cst.BinaryOperation, cst.UnaryOperation,
                 cst.BooleanOperation, cst.Comparison, cst.ComparisonTarget, cst.Await, cst.IfExp)
_LOOSE = (cst.BinaryOperation, cst.BooleanOperation, cst.Comparison, cst.UnaryOperation, cst.IfExp,
          cst.Lambda, cst.NamedExpr, cst.Yield, cst.Await)
_TUPLE_OK_PARENTS = (cst.Expr, cst.Assign, cst.AugAssign, cst.AnnAssign, cst.Return)


def _apply(module: cst.Module, tree: _Tree, plans: list) -> cst.Module:
    merged = _Plan()
    for p in plans:
        merged.replace.update(p.replace)
        merged.stmt_replace.update(p.stmt_replace)
        merged.small_replace.update(p.small_replace)
        merged.moved |= p.moved
        for src_map, dst_map in ((p.before, merged.before), (p.after, merged.after)):
            for k, v in src_map.items():
                have = dst_map.setdefault(k, [])
                if not any(_same_block(v, have[i:i + len(v)]) for i in range(len(have))):
                    have.extend(v)
        for s in p.top:
            if not any(s.deep_equals(t) for t in merged.top):
                merged.top.append(s)
        for imp in p.imports:
            if imp not in merged.imports:
                merged.imports.append(imp)
    new_imports = [_import_statement(i, module) for i in merged.imports if not _import_exists(i, module)]
    return module.visit(_Applier(merged, new_imports))


class _Applier(cst.CSTTransformer):
    def __init__(self, plan: _Plan, new_imports: list) -> None:
        super().__init__()
        self.plan = plan
        self.new_imports = new_imports
        self.stack: list = []

    def on_visit(self, node: cst.CSTNode) -> bool:
        self.stack.append(node)
        # A replaced/removed node: its children need no visit.
        return id(node) not in self.plan.replace and id(node) not in self.plan.stmt_replace

    def on_leave(self, original: cst.CSTNode, updated: cst.CSTNode):
        self.stack.pop()
        parent = self.stack[-1] if self.stack else None
        plan = self.plan
        r = plan.replace.get(id(original))
        if r is not None and r[0] is original:
            new = r[1]
            if new is None:
                if isinstance(original, cst.Arg) and isinstance(parent, cst.Call):
                    return updated  # removed by leave of the Call (keeps the comma style)
                return cst.RemoveFromParent()
            return self._wrap(original, new, parent)
        if isinstance(original, cst.Call):
            return self._call_args(original, updated)
        if isinstance(original, (cst.Module, cst.IndentedBlock)):
            return self._body(original, updated)
        if isinstance(original, (cst.SimpleStatementLine, cst.SimpleStatementSuite)) and plan.small_replace:
            return self._small(original, updated)
        return updated

    # -- expressions ---------------------------------------------------------
    def _wrap(self, original: Any, new: Any, parent: Any) -> Any:
        if not isinstance(new, cst.BaseExpression) or not isinstance(original, cst.BaseExpression):
            return new
        if getattr(new, "lpar", None) == () or not getattr(new, "lpar", ()):
            if original.lpar:
                return new.with_changes(lpar=original.lpar, rpar=original.rpar)
            needs = (isinstance(new, _LOOSE) and isinstance(parent, _ATOM_PARENTS)
                     and not (isinstance(parent, cst.Call) and original is not parent.func)
                     and not (isinstance(parent, cst.Subscript) and original is not parent.value)
                     and not (isinstance(parent, cst.Attribute) and original is not parent.value)) \
                or (isinstance(new, cst.Tuple) and not isinstance(parent, _TUPLE_OK_PARENTS))
            if needs:
                return new.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
        return new

    def _call_args(self, original: cst.Call, updated: cst.Call) -> cst.Call:
        rep = self.plan.replace
        if not any(id(a) in rep and rep[id(a)][1] is None for a in original.args):
            return updated
        if len(original.args) != len(updated.args):
            return updated
        kept = [u for o, u in zip(original.args, updated.args) if not (id(o) in rep and rep[id(o)][1] is None)]
        last = original.args[-1]
        if kept and id(last) in rep and rep[id(last)][1] is None:
            kept[-1] = kept[-1].with_changes(comma=last.comma)
        return updated.with_changes(args=kept)

    # -- statements ----------------------------------------------------------
    def _small(self, original: Any, updated: Any) -> Any:
        sr = self.plan.small_replace
        if not any(id(s) in sr for s in original.body) or len(original.body) != len(updated.body):
            return updated
        out = []
        for o, u in zip(original.body, updated.body):
            if id(o) in sr:
                new = sr[id(o)][1]
                if new is None:
                    continue
                out.append(new.with_changes(semicolon=o.semicolon))
            else:
                out.append(u)
        if not out:
            out = [cst.Pass()]
        if original.body[-1] is not None and out:
            out[-1] = out[-1].with_changes(semicolon=original.body[-1].semicolon)
        return updated.with_changes(body=out)

    def _body(self, original: Any, updated: Any) -> Any:
        plan = self.plan
        is_module = isinstance(original, cst.Module)
        top = []
        insert_at = None
        if is_module and (self.new_imports or plan.top):
            insert_at = _header_index(original.body)
            top = self._top_block(original.body, insert_at)
        has_work = top or any(id(o) in plan.stmt_replace or id(o) in plan.before or id(o) in plan.after
                              for o in original.body)
        if not has_work:
            return updated
        if len(original.body) != len(updated.body):  # pragma: no cover - children never remove themselves
            raise _Skip("unexpected change of a statement list")
        out: list = []
        carry: list = []  # leading lines of removed statements, for the next statement

        def emit(stmts: list) -> None:
            nonlocal carry
            if not stmts:
                return
            if carry:
                stmts = [stmts[0].with_changes(leading_lines=tuple(carry) + tuple(stmts[0].leading_lines))] + stmts[1:]
                carry = []
            out.extend(stmts)

        for i, (o, u) in enumerate(zip(original.body, updated.body)):
            if i == insert_at and top:
                block, u = self._separate(top, u, original.body, i)
                emit(block)
            leading = tuple(u.leading_lines)
            before = plan.before.get(id(o))
            if before:
                cut = _split_leading(leading)
                first = before[0].with_changes(leading_lines=leading[:cut] + tuple(before[0].leading_lines))
                emit([first] + list(before[1:]))
                leading = leading[cut:]
                u = u.with_changes(leading_lines=leading)
            sr = plan.stmt_replace.get(id(o))
            if sr is not None and sr[0] is o:
                news = sr[1]
                if not news:
                    carry.extend(leading[:_split_leading(leading)] if id(o) in plan.moved else leading)
                else:
                    first = news[0]
                    if not (first.leading_lines and _same_lines(first.leading_lines, o.leading_lines)):
                        first = first.with_changes(leading_lines=leading + tuple(first.leading_lines))
                    else:
                        first = first.with_changes(leading_lines=leading)
                    emit([first] + list(news[1:]))
            else:
                emit([u])
            after = plan.after.get(id(o))
            if after:
                emit(list(after))
        if insert_at is not None and insert_at >= len(original.body) and top:
            emit(top)
        if is_module:
            if carry:
                return updated.with_changes(body=out, footer=tuple(carry) + tuple(updated.footer))
            return updated.with_changes(body=out)
        if not out:
            out = [cst.SimpleStatementLine(body=[cst.Pass()], leading_lines=tuple(carry))]
            carry = []
        if carry:
            return updated.with_changes(body=out, footer=tuple(carry) + tuple(updated.footer))
        return updated.with_changes(body=out)

    def _top_block(self, body: Any, at: int) -> list:
        """New imports then statements inserted after the leading imports."""
        block = list(self.new_imports)
        prev_is_import = (at > 0 and _is_import_stmt(body[at - 1])) or bool(self.new_imports)
        for j, s in enumerate(self.plan.top):
            if j == 0 and not _is_import_stmt(s) and prev_is_import and not (
                    s.leading_lines and s.leading_lines[0].comment is None):
                s = s.with_changes(leading_lines=(cst.EmptyLine(),) + tuple(s.leading_lines))
            block.append(s)
        return block

    def _separate(self, block: list, nxt: Any, body: Any, at: int) -> tuple:
        """Inserting ``block`` right before ``nxt`` (the statement at ``at``). After the
        file's imports the block simply follows them; elsewhere (top of the file, after a
        docstring) it takes the blank lines above ``nxt``, and ``nxt`` is kept apart from
        it by blank lines (two before a def/class)."""
        if at > 0 and _is_import_stmt(body[at - 1]):
            return block, nxt
        leading = tuple(nxt.leading_lines)
        cut = _split_leading(leading)
        first = block[0]
        if at > 0:
            first = first.with_changes(leading_lines=leading[:cut] + tuple(first.leading_lines))
        block = [first] + block[1:]
        rest = leading[cut:] if at > 0 else leading
        if not (rest and rest[0].comment is None):
            n = 2 if isinstance(nxt, (cst.FunctionDef, cst.ClassDef)) else 1
            rest = tuple(cst.EmptyLine() for _ in range(n)) + tuple(rest)
        return block, nxt.with_changes(leading_lines=rest)

def _split_leading(leading: tuple) -> int:
    """How many of a statement's leading lines go above statements inserted before it:
    blank lines and cell markers stay at the top; the comment block attached to the
    statement stays with it."""
    cut = 0
    for i, ln in enumerate(leading):
        if ln.comment is None or ln.comment.value.startswith(nbmod.MARKER):
            cut = i + 1
    return cut


def _same_block(a: list, b: list) -> bool:
    return len(a) == len(b) and all(x.deep_equals(y) for x, y in zip(a, b))


def _same_lines(a: Any, b: Any) -> bool:
    if len(a) != len(b):
        return False
    return all(x.deep_equals(y) for x, y in zip(a, b))


# ---------------------------------------------------------------------------
# Notebooks: cut the module back into cells and splice them into the JSON text
# ---------------------------------------------------------------------------

_MARKER_LINE = re.compile(r"[ \t]*" + re.escape(nbmod.MARKER) + r"(\d+)[ \t]*\r?\n?")


def _sections(text: str) -> Optional[tuple]:
    """(prefix lines, [(cell number, lines)]) of a combined notebook module."""
    prefix: list = []
    secs: list = []
    cur = prefix
    for ln in text.splitlines(keepends=True):
        m = _MARKER_LINE.fullmatch(ln)
        if m:
            cur = []
            secs.append((int(m.group(1)), cur))
        else:
            cur.append(ln)
    return prefix, secs


def _restore_magics(cell: nbmod.Cell, old_lines: list, new_lines: list) -> Optional[list]:
    if not cell.magic_lines:
        return new_lines
    out = list(new_lines)
    sm = difflib.SequenceMatcher(None, old_lines, new_lines, autojunk=False)
    mapping = {}
    for a, b, n in sm.get_matching_blocks():
        for k in range(n):
            mapping[a + k] = b + k
    for i, original in cell.magic_lines.items():
        j = mapping.get(i)
        if j is None:
            return None  # the line holding a magic was edited: cannot map back
        nl = "\n" if out[j].endswith("\n") else ""
        out[j] = original + nl
    return out


def _notebook_bytes(cur: engine.Source, old_text: str, new_text: str) -> Optional[bytes]:
    nb = cur.notebook
    raw = cur.raw
    if raw is None:
        return None
    old_prefix, old_secs = _sections(old_text)
    new_prefix, new_secs = _sections(new_text)
    if [n for n, _ in old_secs] != [n for n, _ in new_secs] or old_prefix:
        return None
    if new_prefix:
        if not new_secs:
            return None
        n0, first = new_secs[0]
        new_secs[0] = (n0, new_prefix + first)
    by_number = {c.index + 1: c for c in nb.cells}
    bom = raw.startswith(codecs.BOM_UTF8)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    changes = {}
    for (n, old), (_, new) in zip(old_secs, new_secs):
        if old == new:
            continue
        cell = by_number.get(n)
        if cell is None or cell.disabled:
            return None
        lines = _restore_magics(cell, old, new)
        if lines is None:
            return None
        src = "".join(lines)
        if not cell.source.endswith("\n") and src.endswith("\n"):
            src = src[:-1]
        orig_value = nb.cell_list[cell.index].get(nb.source_key, "")
        orig_text = nbmod._cell_text(orig_value)
        if "\r\n" in orig_text:
            src = src.replace("\n", "\r\n")
        elif "\r" in orig_text:
            src = src.replace("\n", "\r")
        if src == orig_text:
            continue
        changes[cell.index] = (src, orig_value)
    if not changes:
        return None
    if "cells" in nb.data:
        prefix_path: tuple = ("cells",)
    else:
        prefix_path = ("worksheets", 0, "cells")
    want = {prefix_path + (i, nb.source_key): i for i in changes}
    try:
        spans = _json_spans(text, set(want))
    except (ValueError, IndexError):
        return None
    if set(spans) != set(want):
        return None
    ensure_ascii = _ensure_ascii_style(text)
    pieces = []
    for path, (start, end) in sorted(spans.items(), key=lambda kv: kv[1][0], reverse=True):
        src, orig_value = changes[want[path]]
        value = _serialize_source(text, start, end, src, orig_value, ensure_ascii)
        if value is None:
            return None
        pieces.append((start, end, value))
    for start, end, value in pieces:
        text = text[:start] + value + text[end:]
    try:
        json.loads(text)
    except ValueError:
        return None
    data = text.encode("utf-8")
    return codecs.BOM_UTF8 + data if bom else data


_WS = re.compile(r"[ \t\r\n]*")
_STR = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_LIT = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null|NaN|-?Infinity")


def _json_spans(s: str, want: set) -> dict:
    """Spans (start, end) in the JSON text ``s`` of the values at the paths in ``want``."""
    found: dict = {}
    prefixes = {p[:k] for p in want for k in range(len(p) + 1)}

    def value(i: int, path: tuple) -> int:
        i = _WS.match(s, i).end()
        start = i
        c = s[i]
        interesting = path in prefixes
        if c == "{":
            i = _WS.match(s, i + 1).end()
            if s[i] == "}":
                i += 1
            else:
                while True:
                    m = _STR.match(s, i)
                    if m is None:
                        raise ValueError("bad key")
                    key = json.loads(m.group()) if interesting else None
                    i = _WS.match(s, m.end()).end()
                    if s[i] != ":":
                        raise ValueError("expected :")
                    i = value(i + 1, path + (key,) if interesting else ("\0",))
                    i = _WS.match(s, i).end()
                    if s[i] == ",":
                        i = _WS.match(s, i + 1).end()
                        continue
                    if s[i] == "}":
                        i += 1
                        break
                    raise ValueError("expected , or }")
        elif c == "[":
            i = _WS.match(s, i + 1).end()
            k = 0
            if s[i] == "]":
                i += 1
            else:
                while True:
                    i = value(i, path + (k,) if interesting else ("\0",))
                    k += 1
                    i = _WS.match(s, i).end()
                    if s[i] == ",":
                        i += 1
                        continue
                    if s[i] == "]":
                        i += 1
                        break
                    raise ValueError("expected , or ]")
        elif c == '"':
            m = _STR.match(s, i)
            if m is None:
                raise ValueError("bad string")
            i = m.end()
        else:
            m = _LIT.match(s, i)
            if m is None:
                raise ValueError("bad literal")
            i = m.end()
        if path in want:
            found[path] = (start, i)
        return i

    value(0, ())
    return found


def _ensure_ascii_style(text: str) -> bool:
    if any(ord(ch) > 127 for ch in text):
        return False
    return re.search(r"\\u(?:00[89a-fA-F][0-9a-fA-F]|0[1-9a-fA-F][0-9a-fA-F]{2}|[1-9a-fA-F][0-9a-fA-F]{3})", text) is not None


def _split_lines(src: str) -> list:
    return re.findall(r"[^\n]*\n|[^\n]+$", src)


def _serialize_source(text: str, start: int, end: int, src: str, orig_value: Any, ensure_ascii: bool) -> Optional[str]:
    old = text[start:end]
    if isinstance(orig_value, str) or not old.startswith("["):
        return json.dumps(src, ensure_ascii=ensure_ascii)
    # Keep the array's layout; reuse the original spelling of unchanged lines.
    tokens = [(m.start(), m.end()) for m in _STR.finditer(old)]
    spelled = {}
    for a, b in tokens:
        spelled.setdefault(json.loads(old[a:b]), old[a:b])
    lines = _split_lines(src)
    if not lines:
        return "[]"
    if tokens:
        lead = old[1:tokens[0][0]]
        close = old[tokens[-1][1]:-1]
        if len(tokens) > 1:
            between = old[tokens[0][1]:tokens[1][0]]
        else:
            between = "," + lead
    else:
        # An empty list: indent one level deeper than the line holding the key.
        line_start = text.rfind("\n", 0, start) + 1
        key_indent = re.match(r"[ \t]*", text[line_start:]).group()
        unit = _indent_unit(text)
        nl = "\r\n" if "\r\n" in text else "\n"
        if "\n" not in text.strip():
            lead, close, between = "", "", ", "
        else:
            lead, close, between = nl + key_indent + unit, nl + key_indent, "," + nl + key_indent + unit
    parts = [spelled.get(ln) or json.dumps(ln, ensure_ascii=ensure_ascii) for ln in lines]
    return "[" + lead + between.join(parts) + close + "]"


def _indent_unit(text: str) -> str:
    m = re.search(r"\n([ \t]+)\S", text)
    return m.group(1) if m else " "


# ---------------------------------------------------------------------------
# Diff
# ---------------------------------------------------------------------------


def _label(path: str) -> str:
    p = path.replace(os.sep, "/")
    while p.startswith("./"):
        p = p[2:]
    return p.lstrip("/")


def _udiff(old: str, new: str, a: str, b: str) -> str:
    ol = old.splitlines(keepends=True)
    nl = new.splitlines(keepends=True)
    out = []
    for line in difflib.unified_diff(ol, nl, fromfile=a, tofile=b, n=3):
        if not line.endswith("\n"):
            line += "\n\\ No newline at end of file\n"
        out.append(line)
    return "".join(out)


def unified_diff(src: engine.Source, new_bytes: bytes) -> str:
    """A unified diff (``--- a/path`` / ``+++ b/path``) of the fix; for a notebook, one
    diff per changed cell (``cell N``)."""
    label = _label(src.path)
    if src.notebook is None:
        if src.bom and new_bytes.startswith(codecs.BOM_UTF8):
            new_text = new_bytes[3:].decode(src.encoding, errors="replace")
        else:
            new_text = new_bytes.decode(src.encoding, errors="replace")
        old_text = src.text
        if src.raw is not None:
            raw = src.raw[3:] if src.bom else src.raw
            old_text = raw.decode(src.encoding, errors="replace")
        return _udiff(old_text, new_text, f"a/{label}", f"b/{label}")
    old_nb = nbmod.load((src.raw or b"").decode("utf-8-sig"))
    new_nb = nbmod.load(new_bytes.decode("utf-8-sig"))
    old_cells = {c.index: c.source for c in old_nb.cells}
    out = []
    for c in new_nb.cells:
        old = old_cells.get(c.index, "")
        if old == c.source:
            continue
        n = c.index + 1
        out.append(_udiff(old if old.endswith("\n") or not old else old + "\n",
                          c.source if c.source.endswith("\n") or not c.source else c.source + "\n",
                          f"a/{label} (cell {n})", f"b/{label} (cell {n})"))
    return "".join(out)


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------


def write_atomic(path: str, new_bytes: bytes, expected: Optional[bytes]) -> None:
    """Replace the content of ``path`` by ``new_bytes`` atomically (temporary file in the
    same folder, fsync, the file's mode bits, ``os.replace``). A symlink's target is
    updated. Raises OSError (the original left as it was) if the file is read-only, if it
    changed on disk since it was read (its content is not ``expected``), or on failure."""
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except OSError as e:
        raise OSError(e.errno, e.strerror or str(e)) from None
    if not stat.S_ISREG(st.st_mode):
        raise OSError(errno.EINVAL, "not a regular file")
    if not os.access(real, os.W_OK) or not (st.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)):
        raise OSError(errno.EACCES, "the file is read-only")
    if expected is not None:
        try:
            with open(real, "rb") as fh:
                current = fh.read()
        except OSError as e:
            raise OSError(e.errno, e.strerror or str(e)) from None
        if current != expected:
            raise OSError(errno.EAGAIN, "the file changed on disk since it was read")
    folder = os.path.dirname(real) or "."
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(real) + ".", suffix=".keraslint-tmp")
    except OSError as e:
        raise OSError(e.errno, f"cannot create a temporary file next to it ({e.strerror or e})") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(new_bytes)
            fh.flush()
            os.fsync(fh.fileno())
            os.fchmod(fh.fileno(), stat.S_IMODE(st.st_mode))
            if hasattr(os, "fchown"):
                try:
                    os.fchown(fh.fileno(), st.st_uid, st.st_gid)
                except OSError:
                    pass  # not ours to give away: the file becomes the writer's, as with any editor
        os.replace(tmp, real)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise OSError(e.errno, e.strerror or str(e)) from None
        raise
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)
