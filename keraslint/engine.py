"""The single-pass engine: screen → parse → one traversal → report.

* **Screen**: each rule declares ``tokens``; a rule none of whose tokens occurs in the
  file's text cannot fire and is not run. A file no rule can touch is not parsed by libcst
  (only syntax-checked by CPython's much faster parser, falling back to libcst to confirm
  an error, so KL000 is the same either way).
* **Parse** once with libcst.
* **Traverse** once with a walker that visits only the fields of a node that can hold
  code (no whitespace, commas or parentheses) and calls, per node type, the handlers of
  the semantic model and of every enabled rule: about 5% of the parse's cost, against
  ~70% for ``CSTVisitor`` (measured on keras/src/layers).
* **Positions** are computed only for files that have something to report.

The engine knows no rule by name.
"""

from __future__ import annotations

import ast
import codecs
import io
import re
import sys
import tokenize
from itertools import accumulate
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import libcst as cst

from keraslint import notebook as nbmod
from keraslint import project as project_mod
from keraslint.rule import Finding, Rule, syntax_finding
from keraslint.semantics import Context


# Node fields that never hold code a rule could care about.
_SKIP_FIELDS = {
    "lpar", "rpar", "comma", "semicolon", "colon", "equal", "star", "star_tok", "lbracket",
    "rbracket", "lbrace", "rbrace", "dot", "leading_lines", "trailing_whitespace", "newline",
    "lines_after_decorators", "header", "footer", "operator", "asynchronous", "default_comma",
    "walrus", "arrow", "indent", "encoding", "default_indent", "default_newline",
    "has_trailing_newline", "value_str", "comma_after", "whitespace",
}
_FIELDS: dict = {}


def _fields(t: type) -> tuple:
    r = _FIELDS.get(t)
    if r is None:
        import dataclasses

        r = tuple(
            f.name
            for f in dataclasses.fields(t)
            if f.name not in _SKIP_FIELDS and not f.name.startswith(("whitespace", "lines_", "first_line"))
        )
        _FIELDS[t] = r
    return r


@dataclass
class Source:
    """A file's text as the rules see it, plus what is needed to write it back."""

    path: str
    text: str  # decoded text (for a notebook: the combined module)
    encoding: str = "utf-8"
    bom: bool = False
    notebook: Optional[nbmod.Notebook] = None
    raw: Optional[bytes] = None


@dataclass
class Analysis:
    source: Source
    module: Optional[cst.Module]
    ctx: Optional[Context]
    reports: list
    findings: list
    rules: list = field(default_factory=list)


def read_source(path: str, display_path: Optional[str] = None, data: Optional[bytes] = None) -> Source | Finding:
    """Read and decode a file. Returns a Source, or a KL000 Finding if it cannot be
    read or decoded (invalid notebooks too)."""
    shown = display_path or path
    try:
        if data is None:
            with open(path, "rb") as fh:
                data = fh.read()
    except OSError as e:
        return syntax_finding(shown, 1, 1, f"cannot read file: {e.strerror or e}")
    if path.endswith(".ipynb"):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            return syntax_finding(shown, 1, 1, f"notebook is not UTF-8: {e.reason} at byte {e.start}")
        try:
            nb = nbmod.load(text)
        except nbmod.NotebookError as e:
            return syntax_finding(shown, 1, 1, str(e))
        return Source(shown, nb.module_source(), notebook=nb, raw=data)
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as e:
        return syntax_finding(shown, 1, 1, f"cannot decode file: {e}")
    bom = data.startswith(codecs.BOM_UTF8)
    try:
        text = data.decode("utf-8-sig" if bom else encoding)
    except (UnicodeDecodeError, LookupError) as e:
        if isinstance(e, UnicodeDecodeError):
            line = data[: e.start].count(b"\n") + 1
            col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
            return syntax_finding(shown, line, col, f"cannot decode file as {encoding}: {e.reason}")
        return syntax_finding(shown, 1, 1, f"unknown encoding: {encoding}")
    return Source(shown, text, encoding="utf-8" if bom else encoding, bom=bom, raw=data)




# ---------------------------------------------------------------------------
# Dispatch
# ---------------------------------------------------------------------------

_CTX_HOOKS = None


def _ctx_hooks() -> tuple:
    global _CTX_HOOKS
    if _CTX_HOOKS is None:
        visits, leaves = {}, {}
        for attr in dir(Context):
            if attr.startswith("visit_"):
                visits[getattr(cst, attr[6:])] = attr
            elif attr.startswith("leave_"):
                leaves[getattr(cst, attr[6:])] = attr
        _CTX_HOOKS = (visits, leaves)
    return _CTX_HOOKS


_RULE_HOOKS: dict = {}


def _rule_hooks(cls: type) -> tuple:
    r = _RULE_HOOKS.get(cls)
    if r is None:
        visits, leaves = [], []
        for attr in dir(cls):
            if attr.startswith("visit_") or attr.startswith("leave_"):
                node_cls = getattr(cst, attr[6:], None)
                if node_cls is None:
                    raise TypeError(f"{cls.__name__}.{attr}: libcst has no node class {attr[6:]!r}")
                (visits if attr[0] == "v" else leaves).append((node_cls, attr))
        r = (tuple(visits), tuple(leaves))
        _RULE_HOOKS[cls] = r
    return r


def _build_dispatch(ctx: Context, rules: Sequence[Rule]) -> tuple[dict, dict]:
    visit: dict = {}
    leave: dict = {}
    cv, cl = _ctx_hooks()
    for node_cls, attr in cv.items():
        visit.setdefault(node_cls, []).append(getattr(ctx, attr))
    # value-flow components rules asked for, then the rules
    for obj in (*ctx.components.values(), *rules):
        v, l = _rule_hooks(type(obj))
        for node_cls, attr in v:
            visit.setdefault(node_cls, []).append(getattr(obj, attr))
        for node_cls, attr in l:
            leave.setdefault(node_cls, []).append(getattr(obj, attr))
    for node_cls, attr in cl.items():
        leave.setdefault(node_cls, []).append(getattr(ctx, attr))
    return visit, leave


_NODE_TYPES = None


def _node_types() -> tuple:
    """(all concrete libcst node classes, those with no child holding code: Name,
    SimpleString, Integer...)."""
    global _NODE_TYPES
    if _NODE_TYPES is None:
        import dataclasses

        nodes, leaves = set(), set()
        for obj in vars(cst).values():
            if isinstance(obj, type) and issubclass(obj, cst.CSTNode) and dataclasses.is_dataclass(obj):
                nodes.add(obj)
                if not _fields(obj):
                    leaves.add(obj)
        _NODE_TYPES = (frozenset(nodes), frozenset(leaves))
    return _NODE_TYPES


def walk(module: cst.Module, ctx: Context, visit: dict, leave: dict) -> None:
    stack = ctx.stack
    vget = visit.get
    lget = leave.get
    nodes, leaves = _node_types()
    # Leaves nobody handles are not even entered (a third of all nodes are Names), and a
    # set lookup on the exact type replaces isinstance() against libcst's ABC (slow).
    walkable = nodes - (leaves - set(visit) - set(leave))
    fields_of = {t: _fields(t) for t in walkable}

    def _walk(node: Any) -> None:
        t = type(node)
        stack.append(node)
        hs = vget(t)
        if hs is not None:
            for h in hs:
                h(node)
        for name in fields_of[t]:
            v = getattr(node, name)
            tv = type(v)
            if tv is tuple or tv is list:
                for c in v:
                    if type(c) in walkable:
                        _walk(c)
            elif tv in walkable:
                _walk(v)
        hs = lget(t)
        if hs is not None:
            for h in hs:
                h(node)
        stack.pop()

    _walk(module)


# ---------------------------------------------------------------------------
# Suppression comments
# ---------------------------------------------------------------------------

_SUPPRESS = re.compile(
    r"#\s*(?:keraslint:\s*ignore(?:\[(?P<kl>[^\]]*)\])?|noqa(?::\s*(?P<nq>[A-Z]+[0-9]+(?:[\s,]+[A-Z]+[0-9]+)*))?)",
    re.IGNORECASE,
)


def suppressed_codes(line_text: str) -> Optional[set]:
    """Codes suppressed on a line: None = nothing, empty set = everything."""
    if "#" not in line_text:
        return None
    result: Optional[set] = None
    for m in _SUPPRESS.finditer(line_text):
        codes = m.group("kl") if m.group("kl") is not None else m.group("nq")
        if codes is None:
            return set()
        parsed = {c.strip().upper() for c in re.split(r"[\s,]+", codes) if c.strip()}
        if not parsed:
            return set()
        result = (result or set()) | parsed
    return result


def is_suppressed(code: str, codes: Optional[set]) -> bool:
    if codes is None:
        return False
    if not codes:
        return True
    return any(code == c or code.startswith(c) for c in codes)


# ---------------------------------------------------------------------------
# Analysis of one source
# ---------------------------------------------------------------------------


def select_rules(text: str, rule_classes: Sequence[type], gate: bool = True) -> list:
    if not gate:
        return list(rule_classes)
    out = []
    for cls in rule_classes:
        toks = cls.tokens
        if toks is None or any(t in text for t in toks):
            out.append(cls)
    return out


class ParseError(Exception):
    """Why a file is a KL000: position (1-based line and column) and message."""

    def __init__(self, line: int, column: int, message: str) -> None:
        super().__init__(message)
        self.line, self.column, self.message = line, column, message


_TOO_DEEP_MESSAGES = ("too many nested", "too complex", "too deeply")


class _recursion_limit:
    """Set the recursion limit for a block (left alone if the stack is already deeper)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.old = limit, None

    def __enter__(self) -> None:
        old = sys.getrecursionlimit()
        try:
            sys.setrecursionlimit(self.limit)
            self.old = old
        except RecursionError:
            pass

    def __exit__(self, *exc) -> None:
        if self.old is not None:
            sys.setrecursionlimit(self.old)


_NOT_BRACKETS = re.compile(r"[^()\[\]{}]+")
# a line that continues an expression chain (``+ b``, ``.attr``, ``(...)``)
_CHAIN_LINE = re.compile(r"^[ \t]*[-+*/%&|^.~(\[]", re.MULTILINE)  # comparisons are flat
_BRACKET_STEP = {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}


def needs_cpython_guard(text: str) -> bool:
    """Whether ``text`` could hold the nesting that crashes or stalls libcst's native parser
    (measured with libcst 1.9: 3,000 nested brackets crash it; chains of about 3,000 calls,
    attributes, unary or binary operators, ternaries or lambdas take seconds and 10,000
    crash; 10,000 ``elif`` crash). Such code needs a long line, a deep bracket nest, or
    thousands of ``elif``, backslash continuations or lines continuing a chain (``+ b``,
    ``.attr``), and is judged by CPython first. About a tenth of the cost of CPython's own
    parse (which is what ``False`` saves). Not airtight (a chain cut into a few dozen long
    lines passes): it is used only where a crash costs a worker, not the run (runner,
    ``GUARD``). It flags none of the 1,578 files of keras 3.15.1 + keras-hub 0.32.0."""
    if text.count("elif") > 1000 or text.count("\\\n") > 200:
        return True
    if text.count("\n") > 1000 and len(_CHAIN_LINE.findall(text)) > 1000:
        return True
    if len(text) > 2000 and max(map(len, text.split("\n"))) > 2000:
        return True
    brackets = _NOT_BRACKETS.sub("", text)
    return len(brackets) > 200 and max(accumulate(map(_BRACKET_STEP.__getitem__, brackets))) > 100


def _cpython_check(text: str) -> Optional[ParseError]:
    """CPython's verdict on ``text``: None if it parses, else the error with CPython's
    position and message (better than libcst's). Raises ParseError for nesting CPython
    gives up on: libcst must then not be asked, its native parser overflows the C stack
    on such input (the process dies with SIGSEGV: `[` * 1500, 10,000 chained calls or
    elifs) or takes minutes. Judged at the default recursion limit, which libcst survives
    (CPython's nesting limits scale with it; the runner raises it for the walk)."""
    r = cpython_tree(text)
    return r if isinstance(r, ParseError) else None


def cpython_tree(text: str) -> Any:
    """CPython's ``ast`` tree of ``text``, or its ParseError; raises ParseError for nesting
    libcst must not see (see :func:`_cpython_check`)."""
    try:
        with _recursion_limit(1000):
            return compile(text, "<keraslint>", "exec", ast.PyCF_ONLY_AST, dont_inherit=True)
    except (RecursionError, MemoryError, OverflowError):
        raise ParseError(1, 1, "syntax error: the file is nested too deeply to parse") from None
    except SyntaxError as e:
        if any(m in (e.msg or "") for m in _TOO_DEEP_MESSAGES):
            raise ParseError(e.lineno or 1, max(e.offset or 1, 1), f"syntax error: {e.msg}") from None
        if e.lineno:
            return ParseError(e.lineno, max(e.offset or 1, 1), f"syntax error: {e.msg}")
        return ParseError(1, 1, f"syntax error: {e.msg}")
    except ValueError as e:  # null bytes
        return ParseError(1, 1, f"syntax error: {e}")


def parse(text: str, cpython: Optional[ParseError] = None, checked: bool = False) -> cst.Module:
    """libcst's tree of ``text``, or ParseError (CPython's position when it also rejects
    the text, libcst's for syntax only libcst rejects). One CPython check per call, or
    none when the caller already made it (``checked``, its result in ``cpython``), or
    only when libcst fails (``checked=None``: the caller screened the text with
    :func:`needs_cpython_guard`)."""
    if checked is False:
        cpython = _cpython_check(text)
    try:
        return cst.parse_module(text)
    except Exception as e:  # noqa: BLE001 - any parser failure is a KL000 finding
        if checked is None:
            cpython = _cpython_check(text)  # its position and message are the better ones
        if cpython is not None:
            raise cpython from None
        if isinstance(e, cst.ParserSyntaxError):
            msg = str(e.message).strip().splitlines()[0] if e.message else "invalid syntax"
            raise ParseError(e.raw_line, e.raw_column + 1, f"syntax error: {msg}") from None
        if isinstance(e, RecursionError):
            raise ParseError(1, 1, "syntax error: the file is nested too deeply to parse") from None
        raise ParseError(1, 1, f"syntax error: {type(e).__name__}: {e}") from None


# How ``analyze`` makes sure libcst may parse a text (see :func:`_cpython_check`):
FULL = "full"  # CPython parses it first (the default: nothing can crash the caller's process)
GUARD = "guard"  # CPython only where needs_cpython_guard() says so (a pool worker, whose
# death the runner survives: it re-checks that worker's files one by one with FULL)


@dataclass(frozen=True)
class Verdict:
    """CPython's verdict on a file's exact text, made earlier (by the run's cross-module
    summaries, which parse it with ``ast`` anyway): None if it parses, else the ParseError
    (``fatal``: nesting libcst must not see)."""

    error: Optional[ParseError] = None
    fatal: bool = False


def analyze(source: Source, rule_classes: Sequence[type], config: Any = None, gate: bool = True,
            severity: Optional[dict] = None, keep_tree: bool = True, precheck: Any = FULL) -> Analysis:
    """Check one decoded source with the given (already selected) rule classes.

    ``keep_tree=False`` (checking only) returns the findings alone and breaks the reference
    cycles rules leave on the context (a recorder holding the context it is stored on...),
    so the file's tree is freed at once by reference counting instead of lingering until a
    full garbage collection: that alone was ~10% of a cold run's CPU."""
    # The same recursion limit as the runner's workers, so that the API and the CLI agree;
    # a file nested too deeply for the walk, a rule or positions is a KL000, not a crash.
    with _recursion_limit(max(sys.getrecursionlimit(), 20000)):
        try:
            result = _analyze(source, rule_classes, config, gate, severity, precheck)
            if not keep_tree:
                if result.ctx is not None:
                    result.ctx.__dict__.clear()
                for r in result.rules:
                    r.__dict__.clear()
                result = Analysis(source, None, None, [], result.findings)
            return result
        except RecursionError:
            return Analysis(source, None, None, [],
                            [syntax_finding(source.path, 1, 1, "the file is nested too deeply to analyze")])


def _syntax(text: str, precheck: Any, active: bool) -> tuple:
    """(CPython's error or None, how ``parse`` must treat it) for one attempt at ``text``."""
    if isinstance(precheck, Verdict):
        if precheck.fatal:
            raise precheck.error
        return precheck.error, True
    if precheck == GUARD and active and not needs_cpython_guard(text):
        return None, None  # CPython is asked only if libcst fails
    return _cpython_check(text), True


def _analyze(source: Source, rule_classes: Sequence[type], config: Any = None, gate: bool = True,
             severity: Optional[dict] = None, precheck: Any = FULL) -> Analysis:
    text = source.text
    nb = source.notebook
    if nb is not None and nb.skip:
        return Analysis(source, None, None, [], [])
    active = select_rules(text, rule_classes, gate)
    findings: list = []
    module = None
    for _attempt in range(len(nb.cells) + 1 if nb is not None else 1):
        try:
            cpython, checked = _syntax(text, precheck, bool(active))
            if cpython is None and checked and not active:
                return Analysis(source, None, None, [], findings)  # nothing can fire, and it parses
            module = parse(text, cpython, checked=checked)
            break
        except ParseError as e:
            line, col, msg = e.line, e.column, e.message
            if nb is None:
                return Analysis(source, None, None, [], [syntax_finding(source.path, line, col, msg)])
            cell = nb.cell_at(line)
            if cell is None or cell.disabled:
                return Analysis(source, None, None, [], [syntax_finding(source.path, 1, 1, msg)])
            findings.append(syntax_finding(source.path, max(line - cell.start + 1, 1), col,
                                           _cell_lines(msg, nb, cell.index + 1), cell.index + 1))
            cell.disabled = True
            if isinstance(precheck, Verdict):
                precheck = FULL  # the verdict was on the text with that cell
            text = nb.module_source()
            source.text = text
    if module is None:
        return Analysis(source, None, None, [], findings)
    if not active:
        return Analysis(source, module, None, [], findings)
    ctx = Context(module, source.path, text, config)
    # the project modules this file imports (keraslint/project.py), None when unknown
    ctx.project = project_mod.current(source.path)
    rules = [cls(ctx) for cls in active]
    visit, leave = _build_dispatch(ctx, rules)
    try:
        walk(module, ctx, visit, leave)
    except RecursionError:
        findings.append(syntax_finding(source.path, 1, 1, "the file is nested too deeply to analyze"))
        return Analysis(source, module, ctx, [], findings)
    for r in rules:
        r.finish()
    ctx.finish()
    reports = []
    for r in rules:
        for rep in r.reports:
            if rep.scope is not None:
                if not rep.scope.is_graph:
                    continue
                rep.message = rep.message.replace("{where}", rep.scope.graph)
            reports.append(rep)
    findings.extend(to_findings(source, module, reports, severity))
    return Analysis(source, module, ctx, reports, findings, rules)


_ON_LINE = re.compile(r"\bon line (\d+)")


def _cell_lines(msg: str, nb: Any, cell: int) -> str:
    """CPython's "... after function definition on line 73" counts lines of the combined
    notebook module: say it in the notebook's terms (the line in this cell, or cell and line)."""
    def repl(m: "re.Match") -> str:
        c, ln = nb.locate(int(m.group(1)))
        if c is None:
            return m.group(0)
        return f"on line {ln}" if c == cell else f"on cell {c}, line {ln}"

    return _ON_LINE.sub(repl, msg)


class _TargetPositions:
    """Positions of a few nodes from one code generation pass.

    libcst's PositionProvider records a CodeRange for every node (about 1.5x the parse);
    this records token indices for the reported nodes only and turns them into (line,
    column) at the end with C-speed string operations (about 0.25x the parse). Same
    semantics as PositionProvider: the syntactic range where a node records one, else the
    whitespace-inclusive range. Compound statements (whose range PositionProvider hoists
    from children) use the full provider.
    """

    def __init__(self, module: cst.Module, nodes: list) -> None:
        from contextlib import contextmanager

        from libcst._nodes.internal import CodegenState

        targets = {id(n) for n in nodes}
        marks: dict = {}
        stack: list = []

        class State(CodegenState):
            def before_codegen(self, node):  # noqa: N805
                if id(node) in targets:
                    stack.append(len(self.tokens))

            def after_codegen(self, node):  # noqa: N805
                if id(node) in targets:
                    start = stack.pop()
                    marks.setdefault(id(node), (start, len(self.tokens)))

            @contextmanager
            def record_syntactic_position(self, node, *, start_node=None, end_node=None):  # noqa: N805
                if id(node) not in targets:
                    yield
                    return
                start = len(self.tokens)
                try:
                    yield
                finally:
                    marks[id(node)] = (start, len(self.tokens))

        state = State(default_indent=module.default_indent, default_newline=module.default_newline)
        module._codegen(state)
        tokens = state.tokens
        wanted = sorted({i for se in marks.values() for i in se})
        where = {}
        line, col, pos = 1, 0, 0
        for idx in wanted:
            chunk = "".join(tokens[pos:idx])
            nl = chunk.count("\n") + chunk.count("\r") - chunk.count("\r\n")
            if nl:
                line += nl
                last = max(chunk.rfind("\n"), chunk.rfind("\r"))
                col = len(chunk) - last - 1
            else:
                col += len(chunk)
            pos = idx
            where[idx] = (line, col)
        from libcst._position import CodePosition, CodeRange

        self._ranges = {
            k: CodeRange(CodePosition(*where[s]), CodePosition(*where[e])) for k, (s, e) in marks.items()
        }

    def get(self, node: Any) -> Any:
        return self._ranges.get(id(node))


_COMPOUND = (cst.BaseCompoundStatement, cst.BaseSuite, cst.SimpleStatementLine, cst.Module, cst.Else, cst.ExceptHandler,
             cst.ExceptStarHandler, cst.Finally, cst.MatchCase)


def positions(module: cst.Module, nodes: Optional[list] = None) -> Any:
    """Positions (CodeRange, 1-based lines, 0-based columns) of ``nodes``, or of all nodes."""
    if nodes is not None and not any(isinstance(n, _COMPOUND) for n in nodes):
        return _TargetPositions(module, nodes)
    from libcst.metadata import MetadataWrapper, PositionProvider

    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    return wrapper.resolve(PositionProvider)


def _where(pos: Any, node: Any, nb: Any) -> str:
    """``line N`` (``cell C, line N`` in a notebook) of a node a message refers to."""
    rng = pos.get(node) if node is not None else None
    if rng is None:
        return "in this file"
    line = rng.start.line
    if nb is not None:
        cell, line = nb.locate(line)
        return f"cell {cell}, line {line}"
    return f"line {line}"


def to_findings(source: Source, module: cst.Module, reports: list, severity: Optional[dict] = None) -> list:
    if not reports:
        return []
    nodes = [rep.node for rep in reports]
    nodes += [n for rep in reports if rep.refs for n in rep.refs.values() if n is not None]
    pos = positions(module, nodes)
    lines = source.text.split("\n")
    nb = source.notebook
    seen = set()
    out = []
    for rep in reports:
        rng = pos.get(rep.node)
        if rng is None:
            continue
        sl, sc, el, ec = rng.start.line, rng.start.column + 1, rng.end.line, rng.end.column + 1
        rule = rep.rule
        key = (rule.code, sl, sc, el, ec)
        if key in seen:
            continue
        seen.add(key)
        sup = suppressed_codes(lines[sl - 1]) if sl - 1 < len(lines) else None
        if el != sl and not is_suppressed(rule.code, sup) and el - 1 < len(lines):
            sup = suppressed_codes(lines[el - 1])
        if is_suppressed(rule.code, sup):
            continue
        cell = None
        if nb is not None:
            cell, sl_c = nb.locate(sl)
            _, el_c = nb.locate(el)
            sl, el = sl_c, el_c
        sev = (severity or {}).get(rule.code, rule.severity)
        message = rep.message
        if rep.refs:
            for key, ref in rep.refs.items():
                message = message.replace("{" + key + "}", _where(pos, ref, nb))
        out.append(
            Finding(rule.code, rule.name, sev, source.path, sl, sc, el, ec, message,
                    rep.fix.applicability if rep.fix is not None else None, cell)
        )
    return out
