"""What a rule is, what it reports, and what a fix looks like.

A rule is a small class (Fixit style). The engine finds its ``visit_<Node>`` and
``leave_<Node>`` methods, calls them during the single traversal of a file, and owns
everything else: positions, suppression, output formats, fixes. A rule knows no CLI.

    class NumpyInGraph(Rule):
        '''What it does / Why is this bad? / Example / Use instead'''
        code = "KL301"
        name = "numpy-in-graph"
        severity = "error"
        fix_applicability = "safe"        # the best fix it can offer, or None
        tokens = ("numpy",)               # cheap gate: the rule cannot fire in a file
                                          # whose text contains none of these
        def visit_Call(self, node):
            if self.ctx.resolve(node.func) == "numpy.sin" ...:
                self.report(node, "...", fix=Fix.replace(node.func, new))
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Optional, Sequence

if TYPE_CHECKING:  # pragma: no cover
    import libcst as cst

    from keraslint.semantics import Context

SEVERITIES = ("error", "warning", "info")
APPLICABILITIES = ("safe", "unsafe")


# ---------------------------------------------------------------------------
# Fixes: a fix is a list of CST edits. The fixer applies them (node identity).
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Replace:
    """Swap ``node`` for ``new`` (a CST node). ``new=None`` removes a statement or an arg."""

    node: Any
    new: Any


@dataclass(frozen=True)
class InsertStatements:
    """Insert statements (source text, one or more lines) before or after ``anchor``,
    a statement node in some body. ``anchor=None`` means: after the module's leading
    imports (and docstring / ``__future__`` imports)."""

    code: str
    anchor: Any = None
    after: bool = True


@dataclass(frozen=True)
class AddImport:
    """Ensure ``import module`` (name is None) or ``from module import name [as asname]``."""

    module: str
    name: Optional[str] = None
    asname: Optional[str] = None


Edit = Any  # Replace | InsertStatements | AddImport


@dataclass(frozen=True)
class Fix:
    applicability: str  # "safe" | "unsafe"
    edits: tuple
    description: str = ""

    @classmethod
    def safe(cls, *edits: Edit, description: str = "") -> "Fix":
        return cls("safe", tuple(edits), description)

    @classmethod
    def unsafe(cls, *edits: Edit, description: str = "") -> "Fix":
        return cls("unsafe", tuple(edits), description)


# ---------------------------------------------------------------------------
# Findings
# ---------------------------------------------------------------------------


@dataclass
class Report:
    """What a rule says during traversal (positions are resolved later, only for these)."""

    rule: type  # the rule's class (not the instance: no reference cycle keeps a tree alive)
    node: Any
    message: str
    fix: Optional[Fix] = None
    # A report made inside a function that may only later turn out to be a graph
    # context (a function given to Dataset.map further down the file) is kept only if
    # that function is graph context when the module is finished.
    scope: Any = None
    # Other places the message names: ``{"ctx": node}`` turns ``{ctx}`` in the message
    # into ``line N`` (``cell C, line N`` in a notebook) once positions are known.
    refs: Optional[dict] = None


@dataclass
class Finding:
    code: str
    rule: str
    severity: str
    path: str
    line: int
    column: int
    end_line: int
    end_column: int
    message: str
    fix: Optional[str] = None  # applicability of the available fix
    cell: Optional[int] = None

    def to_json(self) -> dict:
        d = {
            "code": self.code,
            "rule": self.rule,
            "severity": self.severity,
            "path": self.path,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line,
            "end_column": self.end_column,
            "message": self.message,
            "fix": None if self.fix is None else {"applicability": self.fix},
        }
        if self.cell is not None:
            d["cell"] = self.cell
        return d

    @classmethod
    def from_json(cls, d: dict) -> "Finding":
        fix = d.get("fix")
        return cls(
            code=d["code"],
            rule=d["rule"],
            severity=d["severity"],
            path=d["path"],
            line=d["line"],
            column=d["column"],
            end_line=d["end_line"],
            end_column=d["end_column"],
            message=d["message"],
            fix=None if fix is None else fix["applicability"],
            cell=d.get("cell"),
        )

    def sort_key(self):
        return (self.path, self.cell or 0, self.line, self.column, self.code)


def syntax_finding(path: str, line: int, column: int, message: str, cell: Optional[int] = None,
                   rule: str = "syntax-error") -> Finding:
    """A KL000 finding: the file could not be read, decoded or parsed (``rule`` is
    ``internal-error`` when keraslint itself failed on it)."""
    return Finding("KL000", rule, "error", path, line, column, line, column, message, None, cell)


# ---------------------------------------------------------------------------
# The rule base class
# ---------------------------------------------------------------------------


class Rule:
    """Base class of every rule. Subclasses set the class attributes and define
    ``visit_<NodeName>`` / ``leave_<NodeName>`` methods (libcst node class names) and
    optionally ``finish()``, called once when the module has been traversed."""

    code: ClassVar[str] = ""
    name: ClassVar[str] = ""
    severity: ClassVar[str] = "warning"
    fix_applicability: ClassVar[Optional[str]] = None
    # The rule cannot fire in a file whose text contains none of these substrings.
    # ``None`` = always run. Keep them necessary conditions, never heuristics: the
    # findings with and without the gate must be identical.
    tokens: ClassVar[Optional[Sequence[str]]] = None
    # In the default rule set (on without ``select``)? Rules that are only occasionally
    # useful are opt-in (``select = ["KL505"]`` or ``--select KL505``).
    default: ClassVar[bool] = True
    # Families whose rules only apply in files using both Keras and PyTorch etc. are
    # expressed through ``tokens`` plus checks on ``ctx`` inside the rule.

    def __init__(self, ctx: "Context") -> None:
        self.ctx = ctx
        self.reports: list[Report] = []

    # -- reporting --------------------------------------------------------------
    def report(self, node: "cst.CSTNode", message: str, fix: Optional[Fix] = None,
               refs: Optional[dict] = None) -> None:
        """Report ``node``. ``refs`` maps placeholders in ``message`` to nodes whose
        position the message quotes (``{"ctx": node}`` and "... ({ctx})" → "(line 40)")."""
        self.reports.append(Report(type(self), node, message, fix, refs=refs or None))

    def report_in_graph(self, node: "cst.CSTNode", message: str, fix: Optional[Fix] = None) -> None:
        """Report ``node`` only if the innermost enclosing function is (or later turns
        out to be) a graph-context function."""
        fn = self.ctx.function
        if fn is None:
            return
        self.reports.append(Report(type(self), node, message, fix, scope=fn))

    def finish(self) -> None:  # pragma: no cover - default no-op
        pass

    # -- documentation ----------------------------------------------------------
    @classmethod
    def doc(cls) -> str:
        return textwrap.dedent(cls.__doc__ or "").strip()

    @classmethod
    def summary(cls) -> str:
        """First sentence of the doc's 'What it does' section."""
        text = cls.doc()
        body = text.split("## Why", 1)[0]
        lines = [ln.strip() for ln in body.splitlines() if ln.strip() and not ln.startswith("#")]
        s = " ".join(lines)
        return s.split(". ")[0].rstrip(".") + "." if s else cls.name

    @classmethod
    def meta(cls) -> dict:
        return {
            "code": cls.code,
            "name": cls.name,
            "severity": cls.severity,
            "fix": cls.fix_applicability,
            "default": cls.default,
            "summary": cls.summary(),
            "doc": cls.doc(),
        }


def iter_rule_classes(objs: Iterable[Any]) -> list[type]:
    out = []
    for obj in objs:
        if isinstance(obj, type) and issubclass(obj, Rule) and obj is not Rule and obj.code:
            out.append(obj)
    return out
