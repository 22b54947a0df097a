"""The per-file semantic model, built during the single traversal.

It gives rules what they need without libcst's scope metadata (ten times the parse):

* an import-alias table (``ctx.resolve(expr)`` → canonical qualified name);
* the classes of the file and whether each is a Keras Layer/Model/Loss/Metric
  (transitively through classes of the same file, including subclasses of built-in
  layers such as ``layers.Dense``);
* the function stack, and for each function whether it is a *graph context* (runs
  under ``tf.function`` / ``model.fit``) and which names hold tensors there (*taint*);
* simple assignment provenance (``ctx.assigned_value(name)``) and the values functions
  return (``ctx.returns_of(name)``), for data-flow rules;
* the ``tf.data`` value flow of :mod:`keraslint.dataflow` (``ctx.datasets``), driven by
  this class's hooks in files that may hold a dataset or whose rules ask for it;
  ``ctx.is_dataset(expr)`` asks it first.

The engine calls the ``visit_*`` / ``leave_*`` methods of this class around the rules'
own (visit: context first; leave: rules first), so inside a rule's ``visit_Call`` the
context already describes the enclosing function.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Optional

import libcst as cst

from keraslint.names import canonical, keras_flavor
from keraslint.parity import ParityContext, ParityRecorder

# Methods that run inside the compiled graph, per kind of Keras base class.
_GRAPH_METHODS = {
    "layer": {"call", "build", "compute_output_shape", "train_step", "test_step", "predict_step", "compute_loss",
              "compute_metrics"},
    "loss": {"call", "__call__"},
    "metric": {"update_state", "result"},
    "constraint": {"__call__"},
    "regularizer": {"__call__"},
}
# Methods whose parameters are shapes, not tensors.
_SHAPE_METHODS = {"build", "compute_output_shape"}
# Parameters that are never tensors (by Keras convention) in graph methods.
_NON_TENSOR_PARAMS = {"self", "cls", "training", "mask"}

_LAYER_BASES = {
    "keras.layers.Layer",
    "keras.models.Model",
    "keras.models.Sequential",
    "keras.layers.Wrapper",
    "keras.layers.RNN",
}
_LOSS_BASES = {"keras.losses.Loss", "keras.losses.LossFunctionWrapper"}
_METRIC_BASES = {"keras.metrics.Metric", "keras.metrics.Mean", "keras.metrics.MeanMetricWrapper",
                 "keras.metrics.Reduce", "keras.metrics.Sum"}
_CONSTRAINT_BASES = {"keras.constraints.Constraint"}
_REGULARIZER_BASES = {"keras.regularizers.Regularizer"}

# Calls whose result holds no tensor value even when given a tensor.
_STATIC_CALLS = {
    "len", "isinstance", "type", "hasattr", "getattr", "id", "callable", "repr", "str",
    "keras.ops.shape", "keras.ops.ndim", "keras.backend.standardize_dtype",
    "keras.backend.int_shape", "keras.ops.dtype", "keras.backend.is_keras_tensor",
    "keras.ops.is_tensor", "keras.backend.is_tensor",
    # Conversions out of the tensor world: what follows is NumPy/Python, not a tensor.
    "keras.ops.convert_to_numpy", "tensorflow.get_static_value",
}
_TF_FUNCTION = {"tensorflow.function", "tensorflow.compat.v1.function", "tensorflow.compat.v2.function"}
_STATIC_ATTRS = {"shape", "dtype", "ndim", "name", "rank", "device", "__class__"}
_TO_PYTHON_METHODS = {"numpy", "item", "tolist"}

_DS_PARAM_NAMES = {"ds", "dataset", "train_ds", "val_ds", "test_ds", "valid_ds", "train_dataset",
                   "val_dataset", "test_dataset", "eval_ds", "eval_dataset"}


def dotted(expr: Any) -> Optional[str]:
    """``a.b.c`` for a Name/Attribute chain, else None."""
    parts = []
    while isinstance(expr, cst.Attribute):
        parts.append(expr.attr.value)
        expr = expr.value
    if isinstance(expr, cst.Name):
        parts.append(expr.value)
        return ".".join(reversed(parts))
    return None


def _module_name(node: Any) -> str:
    if node is None:
        return ""
    return dotted(node) or ""


def target_names(target: Any) -> Iterator[str]:
    """Names bound by an assignment target (``a``, ``a, b``, ``[a, *b]``)."""
    if isinstance(target, cst.Name):
        yield target.value
    elif isinstance(target, (cst.Tuple, cst.List)):
        for el in target.elements:
            yield from target_names(el.value)
    elif isinstance(target, cst.StarredElement):
        yield from target_names(target.value)


def spell_with(imports: dict, qualname: str) -> Optional[str]:
    """The shortest spelling of ``qualname`` through ``imports`` (local name -> qualified
    name), or None."""
    best = None
    for local, full in imports.items():
        if qualname == full:
            return local
        if qualname.startswith(full + "."):
            cand = local + qualname[len(full):]
            if best is None or len(cand) < len(best):
                best = cand
    return best


def literal_value(expr: Any) -> Any:
    """Python value of a simple literal (numbers, strings, True/False/None, unary minus),
    or the sentinel ``NOT_LITERAL``."""
    if isinstance(expr, cst.Integer):
        try:
            return int(expr.value, 0)
        except ValueError:  # pragma: no cover - libcst only accepts valid literals
            return NOT_LITERAL
    if isinstance(expr, cst.Float):
        return float(expr.value.replace("_", ""))
    if isinstance(expr, cst.SimpleString):
        try:
            return expr.evaluated_value
        except Exception:  # pragma: no cover - defensive
            return NOT_LITERAL
    if isinstance(expr, cst.ConcatenatedString):
        try:
            return expr.evaluated_value
        except Exception:
            return NOT_LITERAL
    if isinstance(expr, cst.Name) and expr.value in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[expr.value]
    if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus):
        v = literal_value(expr.expression)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return -v
    return NOT_LITERAL


class _NotLiteral:
    def __repr__(self) -> str:  # pragma: no cover
        return "NOT_LITERAL"


NOT_LITERAL = _NotLiteral()


def get_arg(call: cst.Call, keyword: Optional[str] = None, position: Optional[int] = None) -> Optional[cst.Arg]:
    """The argument passed as ``keyword=`` or at ``position`` (0-based, positional only)."""
    pos = 0
    for arg in call.args:
        if arg.keyword is not None:
            if keyword is not None and arg.keyword.value == keyword:
                return arg
        elif arg.star:
            pos += 1
            continue
        else:
            if position is not None and pos == position:
                return arg
            pos += 1
    return None


@dataclass
class ClassInfo:
    name: str
    node: cst.ClassDef
    bases: list  # resolved canonical names, or "local:<Name>" for classes of this file
    kind: Optional[str] = None  # "layer" | "loss" | "metric" | ... | None


@dataclass
class FunctionInfo:
    name: str
    node: Any  # FunctionDef | Lambda
    parent: Optional["FunctionInfo"]
    cls: Optional[ClassInfo]
    params: list
    graph: Optional[str] = None  # why it is a graph context, e.g. "`call` of layer `Foo`"
    eager: bool = False  # given to tf.py_function / numpy_function: runs eagerly
    tainted: set = field(default_factory=set)
    locals: set = field(default_factory=set)
    assigned: dict = field(default_factory=dict)
    returns: list = field(default_factory=list)
    # name -> every value it may hold here: assignments in different arms of an
    # if/else, loop or try all stay possible (a straight-line assignment resets it)
    may: dict = field(default_factory=dict)
    # name -> the whole value it was unpacked from (`a, b = ops.split(x, 2)`, `for t in
    # ops.unstack(x)`): `assigned` has no single expression for these names
    unpacked: dict = field(default_factory=dict)

    @property
    def is_graph(self) -> bool:
        return self.graph is not None and not self.eager


def _param_list(params: cst.Parameters) -> list:
    out = []
    for p in list(params.posonly_params) + list(params.params) + list(params.kwonly_params):
        out.append(p)
    if isinstance(params.star_arg, cst.Param):
        out.append(params.star_arg)
    if isinstance(params.star_kwarg, cst.Param):
        out.append(params.star_kwarg)
    return out


class Context:
    """Semantic model of one module. Rules read it; the engine drives it."""

    def __init__(self, module: cst.Module, path: str, source: str, config: Any = None) -> None:
        # value-flow components a rule asked for (keraslint/values.py, keraslint/weights.py):
        # created before the traversal, driven by the engine's walk like this class's hooks
        self.components: dict = {}
        self.module = module
        self.path = path
        self.source = source
        self.config = config
        self.imports: dict[str, str] = {}  # local name -> fully qualified name
        self.star_imports: list[str] = []
        self.classes: dict[str, ClassInfo] = {}
        self.functions: dict[str, list[FunctionInfo]] = {}
        self.all_functions: list[FunctionInfo] = []
        self.function: Optional[FunctionInfo] = None
        self.class_stack: list[ClassInfo] = []
        self.stack: list[Any] = []  # ancestors of the node being visited (engine-maintained)
        self.module_assigned: dict[str, Any] = {}
        self._graph_names: dict[str, str] = {}  # function name -> reason (marked by a use)
        self._eager_names: set[str] = set()
        self._graph_methods: dict[tuple, str] = {}  # (class, method) -> reason
        # Every rule asks about the same call at the same moment: resolve it once. (The
        # answer cannot change while the walker is at that node.)
        self._qualnames: dict[int, tuple] = {}
        self._lambda_marks: dict[int, str] = {}
        self._lambda_eager: set[int] = set()
        self._parity = ParityRecorder()
        # `.map(fn)` on a parameter (`def prepare(data): return data.map(fn)`): graph
        # context once a call site passes a dataset there. (function name, param index,
        # param name, mapped function expr, reason)
        self._param_maps: list = []
        self._ds_args: set = set()  # (function name, index or keyword) given a dataset
        # id(assigned value) -> (name, the value the name held before): `x = f(x)` reads
        # the old `x` while the new one is already recorded (assignments are recorded on
        # entry, before their value is visited)
        self._before: dict = {}
        # receivers of predict/evaluate-like calls (and fit with validation): a model whose
        # `call` only a custom train_step could trace is traced here only if one of these
        # may be it
        self._traced_receivers: list = []
        self._datasets: Optional[Any] = None  # the dataflow.PipelineFlow, once requested
        self._walking = False
        self._prescan(module.body)

    # ------------------------------------------------------------------ imports
    def _prescan(self, body: Iterable[Any]) -> None:
        """Imports at module level (also inside if/try/with at module level), so that
        functions defined above an import still resolve it. Statement level only."""
        for stmt in body:
            if isinstance(stmt, cst.SimpleStatementLine):
                for small in stmt.body:
                    if isinstance(small, cst.Import):
                        self._add_import(small)
                    elif isinstance(small, cst.ImportFrom):
                        self._add_import_from(small)
            elif isinstance(stmt, (cst.If, cst.Try, cst.With, cst.TryStar)):
                self._prescan(stmt.body.body)
                for h in getattr(stmt, "handlers", ()) or ():
                    self._prescan(h.body.body)
                orelse = getattr(stmt, "orelse", None)
                while orelse is not None:
                    inner = getattr(orelse, "body", None)
                    if isinstance(inner, cst.IndentedBlock):
                        self._prescan(inner.body)
                    elif isinstance(inner, cst.If):
                        self._prescan(inner.body.body)
                    orelse = getattr(inner, "orelse", None) if isinstance(inner, cst.If) else None

    def _add_import(self, node: cst.Import) -> None:
        for alias in node.names:
            full = _module_name(alias.name)
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                self.imports[alias.asname.name.value] = full
            else:
                head = full.split(".", 1)[0]
                self.imports[head] = head

    def _add_import_from(self, node: cst.ImportFrom) -> None:
        if node.relative:
            mod = "." * len(node.relative) + _module_name(node.module)
        else:
            mod = _module_name(node.module)
        if isinstance(node.names, cst.ImportStar):
            self.star_imports.append(mod)
            return
        for alias in node.names:
            name = _module_name(alias.name)
            local = name
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                local = alias.asname.name.value
            self.imports[local] = f"{mod}.{name}" if mod else name

    @property
    def imported_roots(self) -> set:
        """Top-level packages the file imports (``{"keras", "tensorflow", "numpy"}``)."""
        roots = {q.split(".", 1)[0] for q in self.imports.values()}
        roots.update(m.split(".", 1)[0] for m in self.star_imports)
        return roots

    def uses_keras(self) -> bool:
        return any(keras_flavor(q) for q in self.imports.values()) or any(
            keras_flavor(m) for m in self.star_imports
        )

    def uses_torch(self) -> bool:
        return "torch" in self.imported_roots

    @property
    def parity(self) -> Optional[ParityContext]:
        """The file's parity context (see :mod:`keraslint.parity`), or None. Complete only
        once the module has been traversed: ask it in a rule's ``finish()``. With the
        ``strict`` setting a file with no evidence gets the context ``strict``."""
        from keraslint.parity import context_of

        return context_of(self)

    @property
    def seed_calls(self) -> list:
        """``(node, canonical name)`` of every seed / op-determinism call, in file order."""
        return list(self._parity.seeds)

    def uses_tensorflow(self) -> bool:
        return "tensorflow" in self.imported_roots

    def qualname(self, expr: Any) -> Optional[str]:
        """Fully qualified (not canonicalized) name of a Name/Attribute chain whose head is
        an import, else None. Local variables shadow imports."""
        hit = self._qualnames.get(id(expr))
        if hit is not None and hit[0] is expr:
            return hit[1]
        return self._remember(expr)[1]

    def _remember(self, expr: Any) -> tuple:
        q = self._qualname(expr)
        hit = self._qualnames[id(expr)] = (expr, q, canonical(q) if q is not None else None)  # holds expr: its id cannot be reused
        return hit

    def _qualname(self, expr: Any) -> Optional[str]:
        d = dotted(expr)
        if d is None:
            return None
        head, _, rest = d.partition(".")
        fn = self.function
        while fn is not None:
            if head in fn.locals:
                return None
            fn = fn.parent
        full = self.imports.get(head)
        if full is None:
            return None
        return f"{full}.{rest}" if rest else full

    def resolve(self, expr: Any) -> Optional[str]:
        """Canonical qualified name of ``expr`` (see :mod:`keraslint.names`), or None.
        Asked about the same node by many rules: one dict lookup after the first time."""
        hit = self._qualnames.get(id(expr))
        if hit is None or hit[0] is not expr:
            hit = self._remember(expr)
        return hit[2]

    def spelling(self, qualname: str) -> Optional[str]:
        """How this file can spell the module/object ``qualname`` with its existing
        imports (``keras.ops`` → ``ops`` after ``from keras import ops``, ``keras.ops``
        after ``import keras``), or None."""
        return spell_with(self.imports, qualname)

    # ------------------------------------------------------------------ classes
    def class_kind(self, info: ClassInfo, _seen: Optional[set] = None) -> Optional[str]:
        if info.kind is not None:
            return info.kind
        seen = _seen or set()
        if info.name in seen:
            return None
        seen.add(info.name)
        for b in info.bases:
            if b.startswith("local:"):
                other = self.classes.get(b[6:])
                k = self.class_kind(other, seen) if other is not None else None
                if k:
                    return k
                continue
            k = base_kind(b)
            if k:
                return k
        return None

    def is_keras_class(self, name: str, kind: str = "layer") -> bool:
        info = self.classes.get(name)
        return info is not None and self.class_kind(info) == kind

    @property
    def cls(self) -> Optional[ClassInfo]:
        return self.class_stack[-1] if self.class_stack else None

    # ------------------------------------------------------------------ taint
    def is_tainted(self, expr: Any, fn: Optional[FunctionInfo] = None) -> bool:
        """Does ``expr`` hold a tensor value computed from the current graph function's
        tensor parameters? Shapes, dtypes, ``len`` and literals are static."""
        fn = fn or self.function
        if fn is None or not fn.tainted:
            return False
        return self._tainted(expr, fn.tainted)

    def _tainted(self, expr: Any, names: set) -> bool:
        t = type(expr)
        if t is cst.Name:
            return expr.value in names
        if t is cst.Attribute:
            if expr.attr.value in _STATIC_ATTRS:
                return False
            return self._tainted(expr.value, names)
        if t is cst.Subscript:
            return self._tainted(expr.value, names)
        if t is cst.Call:
            fname = dotted(expr.func)
            if fname in _STATIC_CALLS:
                return False
            q = self.resolve(expr.func)
            if q in _STATIC_CALLS:
                return False
            if q is not None and is_random_tensor_call(q):
                return True  # `tf.random.uniform([])` in a graph function: a fresh symbolic tensor
            if t is cst.Call and isinstance(expr.func, cst.Attribute) and self._tainted(expr.func.value, names):
                # x.reshape(...), x.sum(): methods of a tensor; x.numpy() / x.item() /
                # x.tolist() leave the tensor world (NumPy/Python values follow)
                return expr.func.attr.value not in _STATIC_ATTRS and expr.func.attr.value not in _TO_PYTHON_METHODS
            return any(self._tainted(a.value, names) for a in expr.args)
        if t is cst.BinaryOperation:
            return self._tainted(expr.left, names) or self._tainted(expr.right, names)
        if t is cst.UnaryOperation:
            return self._tainted(expr.expression, names)
        if t is cst.Comparison:
            return self._tainted(expr.left, names) or any(self._tainted(c.comparator, names) for c in expr.comparisons)
        if t is cst.BooleanOperation:
            return self._tainted(expr.left, names) or self._tainted(expr.right, names)
        if t in (cst.Tuple, cst.List):
            return any(self._tainted(e.value, names) for e in expr.elements)
        if t is cst.IfExp:
            return self._tainted(expr.body, names) or self._tainted(expr.orelse, names)
        if t is cst.StarredElement or t is cst.NamedExpr:
            return self._tainted(expr.value, names)
        return False

    def _taint_assign(self, targets: list, value: Any) -> None:
        fn = self.function
        if fn is None:
            return
        tainted = fn.tainted and self._tainted(value, fn.tainted)
        for tgt in targets:
            for n in target_names(tgt):
                if tainted:
                    fn.tainted.add(n)
                else:
                    fn.tainted.discard(n)

    def branch_path(self, fn: Optional[FunctionInfo] = None) -> tuple:
        """Where the node being visited sits in ``fn``'s branches: ``((id(if), arm), ...)``
        from the function body down (arm: "body"/"else" of an if, a try's parts; loops
        count as one "loop" arm, their body may or may not run)."""
        fn = fn or self.function
        out = []
        stack = self.stack
        for i in range(len(stack) - 1, -1, -1):
            anc = stack[i]
            if fn is not None and anc is fn.node:
                break
            child = stack[i + 1] if i + 1 < len(stack) else None
            if isinstance(anc, cst.If):
                out.append((id(anc), "body" if child is anc.body else ("else" if child is anc.orelse else "test")))
            elif isinstance(anc, (cst.For, cst.While)):
                out.append((id(anc), "loop"))
            elif isinstance(anc, cst.Try):
                out.append((id(anc), "body" if child is anc.body else id(child)))
        out.reverse()
        return tuple(out)

    def may_values(self, name: str, fn: Optional[FunctionInfo] = None) -> list:
        """Every value ``name`` may hold at the node being visited: assignments in the arms
        of an if/else (or a loop) that can reach here, not only the last one. Straight-line
        reassignment replaces; an assignment in the other arm of an ``if`` around the use
        does not reach it."""
        fn = fn or self.function
        if fn is None:
            return []
        entries = fn.may.get(name)
        if not entries:
            v = fn.assigned.get(name)
            return [v] if v is not None else []
        here = dict(self.branch_path(fn))
        out = []
        for value, path in entries:
            if all(here.get(node, arm) == arm or arm == "loop" for node, arm in path):
                out.append(value)
        return out

    def component(self, key: str, factory: Any) -> Any:
        """The file's value-flow component ``key``, made by ``factory(self)`` on the first
        request, which must come before the traversal (a rule asks in its constructor): the
        engine then calls its ``visit_<Node>``/``leave_<Node>`` methods in its single walk,
        after this class's and before the rules'."""
        comp = self.components.get(key)
        if comp is None:
            if self._walking:
                raise RuntimeError(f"ctx.component({key!r}) is first requested during the traversal: request it "
                                   f"before (in the rule's constructor)")
            comp = self.components[key] = factory(self)
        return comp

    # ------------------------------------------------------------------ data flow
    @property
    def datasets(self) -> Any:
        """The file's ``tf.data`` value flow (:class:`keraslint.dataflow.PipelineFlow`).
        The Context's hooks drive it. A rule that queries it asks for it in its constructor
        (before the traversal); the Context also makes it itself when the traversal starts
        in a file that may hold a dataset (for ``is_dataset``). Other files pay nothing."""
        flow = self._datasets
        if flow is None:
            if self._walking:
                raise RuntimeError("ctx.datasets is first requested during the traversal: request it before "
                                   "(in the rule's constructor) so that the flow sees the whole module")
            flow = self._datasets = _dataflow.PipelineFlow(self)
        return flow

    def assigned_value(self, name: str) -> Any:
        """The expression last assigned (so far in the traversal) to ``name`` in the
        enclosing function, else at module level; None if unknown."""
        fn = self.function
        while fn is not None:
            if name in fn.assigned:
                return fn.assigned[name]
            if name in fn.locals:
                return None
            fn = fn.parent
        return self.module_assigned.get(name)

    def returns_of(self, name: str, follow: bool = False) -> list:
        """Return-value expressions of the (already traversed) function(s) named ``name``;
        ``follow``: a returned name is replaced by what the function last assigned it
        (``model = Sequential(...); return model``)."""
        out = []
        for fi in self.functions.get(name, ()):
            for r in fi.returns:
                if follow and isinstance(r, cst.Name) and r.value in fi.assigned:
                    r = fi.assigned[r.value]
                out.append(r)
        return out

    def is_dataset(self, expr: Any) -> bool:
        """Is ``expr`` known to be a ``tf.data.Dataset`` here? The file's dataset flow
        answers first (the one the KL5 rules query): a name bound to a pipeline on every
        path, a chain on one, a helper of this file (function or method, its parameters
        bound) or of another project module returning one. Where it does not know, the
        syntactic answer: a source call, a method chain on one, a variable last assigned
        one, a call to a helper of this file whose return expression is one."""
        if expr is None:
            return False
        flow = self._datasets
        if flow is not None and flow.holds_pipeline(expr):
            return True
        return self._looks_like_dataset(expr, 0)

    def _looks_like_dataset(self, expr: Any, depth: int) -> bool:
        if depth > 20 or expr is None:
            return False
        if isinstance(expr, cst.Call):
            func = expr.func
            q = self.resolve(func)
            if q is not None:
                if q in _dataflow.DATASET_SOURCES or q.startswith("tensorflow.data.Dataset."):
                    return True
                if q.endswith("_dataset_from_directory") or q.endswith("timeseries_dataset_from_array"):
                    return True
                # a helper of another project module that returns a pipeline
                proj = getattr(self, "project", None)
                if proj is not None and not q.startswith(("keras.", "tensorflow.", "numpy.", "torch.")):
                    try:
                        fs = proj.function(q)
                    except Exception:  # noqa: BLE001 - a summary that cannot answer is no evidence
                        fs = None
                    return fs is not None and fs.returns == "dataset"
                return False
            if isinstance(func, cst.Attribute):
                if func.attr.value in _dataflow.DATASET_METHODS:
                    return self._looks_like_dataset(func.value, depth + 1)
                return False
            if isinstance(func, cst.Name):
                return any(self._looks_like_dataset(r, depth + 1) for r in self.returns_of(func.value))
            return False
        if isinstance(expr, cst.Name):
            v = self.assigned_value(expr.value)
            if v is not None and v is not expr:
                return self._looks_like_dataset(v, depth + 1)
            return False
        return False

    # ------------------------------------------------------------------ graph marks
    def mark_graph(self, target: Any, reason: str) -> None:
        """Mark the function named/lambda'd by ``target`` (a Name or Lambda) as graph
        context. Names may refer to functions defined later in the file."""
        if isinstance(target, cst.Lambda):
            self._lambda_marks[id(target)] = reason
        elif isinstance(target, cst.Name):
            self._graph_names.setdefault(target.value, reason)
        elif (isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name)
              and target.value.value == "self" and self.class_stack):
            self._graph_methods.setdefault((self.class_stack[-1].name, target.attr.value), reason)

    def mark_eager(self, target: Any) -> None:
        if isinstance(target, cst.Lambda):
            self._lambda_eager.add(id(target))
        elif isinstance(target, cst.Name):
            self._eager_names.add(target.value)
            for fi in self.functions.get(target.value, ()):
                fi.eager = True

    def _set_graph(self, fi: FunctionInfo, reason: str, all_params: bool) -> None:
        fi.graph = reason
        self._taint_params(fi, all_params)

    def _taint_params(self, fi: FunctionInfo, all_params: bool) -> None:
        for p in fi.params:
            pname = p.name.value
            if pname in ("self", "cls"):
                continue
            if not all_params and pname in _NON_TENSOR_PARAMS:
                continue
            if p.default is not None and literal_value(p.default) is not None and literal_value(p.default) is not NOT_LITERAL:
                continue  # flag=False, axis=-1, mode="x": not tensors
            if p.star == "**":
                continue
            fi.tainted.add(pname)

    # ------------------------------------------------------------------ traversal hooks
    # (each also drives the dataset flow, when one was requested)
    def visit_Module(self, node: cst.Module) -> None:
        # is_dataset asks the flow: a file that may hold a dataset of known origin gets it
        # whichever rules run, so that their answers do not depend on the selection
        if self._datasets is None and self._may_hold_datasets():
            self._datasets = _dataflow.PipelineFlow(self)
        self._walking = True

    def _may_hold_datasets(self) -> bool:
        """Can the flow know a dataset here? Every source it knows is spelled with
        "dataset" (``tf.data.Dataset``, ``TFRecordDataset``, ``image_dataset_from_directory``,
        ``tensorflow_datasets``), or is a function of the project, imported by name, that
        returns one."""
        if "ataset" in self.source:
            return True
        proj = getattr(self, "project", None)
        if proj is None:
            return False
        for full in self.imports.values():
            q = canonical(full)
            if q.startswith(_dataflow.LIBRARY_PREFIXES):
                continue
            try:
                fs = proj.function(q)
            except Exception:  # noqa: BLE001 - a summary that cannot answer is no evidence
                fs = None
            if fs is not None and fs.returns == "dataset":
                return True
        return False

    def visit_Import(self, node: cst.Import) -> None:
        if self.function is not None:
            self._add_import(node)
            for alias in node.names:
                local = (alias.asname.name.value if alias.asname is not None and isinstance(alias.asname.name, cst.Name)
                         else _module_name(alias.name).split(".", 1)[0])
                self.function.locals.discard(local)

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if self.function is not None:
            self._add_import_from(node)

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        bases = []
        for arg in node.bases:
            if arg.keyword is not None:
                continue
            d = dotted(arg.value)
            if d is None:
                continue
            if d in self.classes:
                bases.append("local:" + d)
                continue
            q = self.resolve(arg.value)
            bases.append(q if q is not None else "unresolved:" + d)
            if q is not None:
                self._parity.record_base(node, q)
        info = ClassInfo(node.name.value, node, bases)
        self.classes.setdefault(info.name, info)
        if self.classes[info.name] is not info:
            self.classes[info.name] = info
        info.kind = self.class_kind(info)
        self.class_stack.append(info)

    def leave_ClassDef(self, node: cst.ClassDef) -> None:
        self.class_stack.pop()

    def _enter_function(self, node: Any, name: str, params: list) -> FunctionInfo:
        parent = self.function
        cls = self.class_stack[-1] if self.class_stack and _in_class_body(self.stack, self.class_stack[-1].node) else None
        fi = FunctionInfo(name, node, parent, cls, params)
        fi.locals = {p.name.value for p in params}
        self.all_functions.append(fi)
        if isinstance(node, cst.FunctionDef):
            if parent is None or cls is None:
                self.functions.setdefault(name, []).append(fi)
            if parent is not None:
                parent.locals.add(name)
                parent.assigned.pop(name, None)
        # graph context?
        if cls is not None and cls.kind is not None and name in _GRAPH_METHODS.get(cls.kind, ()):
            if name in _SHAPE_METHODS:
                fi.graph = f"`{name}` of {cls.kind} `{cls.name}`"  # parameters are shapes
            else:
                self._set_graph(fi, f"`{name}` of {cls.kind} `{cls.name}`", all_params=False)
        elif isinstance(node, cst.FunctionDef) and self._has_tf_function_decorator(node):
            self._set_graph(fi, f"`@tf.function` `{name}`", all_params=True)
        elif isinstance(node, cst.Lambda) and id(node) in self._lambda_marks:
            self._set_graph(fi, self._lambda_marks[id(node)], all_params=True)
        elif parent is not None and parent.graph is not None:
            # nested function or lambda inside a graph function: traced with it; it
            # sees the enclosing tensors (closure) but its own parameters are unknown.
            fi.graph = parent.graph
            fi.tainted = set(parent.tainted) - fi.locals
        else:
            # Not known yet: a use further down (``ds.map(fn)``, ``compile(loss=fn)``)
            # may make it a graph context. Its parameters are *potentially* tensors;
            # reports made through ``report_in_graph`` are kept only if it turns out so.
            self._taint_params(fi, all_params=True)
            if isinstance(node, cst.FunctionDef):
                reason = self._graph_names.get(name) if cls is None else self._graph_methods.get((cls.name, name))
                if reason is not None:
                    fi.graph = reason
        if isinstance(node, cst.FunctionDef) and (name in self._eager_names or self._has_eager_decorator(node)):
            fi.eager = True
        if isinstance(node, cst.Lambda) and id(node) in self._lambda_eager:
            fi.eager = True
        if parent is not None and parent.eager:
            fi.eager = True
        self.function = fi
        return fi

    def _has_tf_function_decorator(self, node: cst.FunctionDef) -> bool:
        for dec in node.decorators:
            d = dec.decorator
            if isinstance(d, cst.Call):
                d = d.func
            if self.resolve(d) in _TF_FUNCTION:
                return True
        return False

    def _has_eager_decorator(self, node: cst.FunctionDef) -> bool:
        """``@tf.py_function(Tout=...)`` / ``@tf.numpy_function(...)``, or a decorator of this
        file whose body hands the decorated function to one of them (the tf docs
        ``map_decorator``: ``def wrapper(*a): return tf.py_function(func, inp=a, Tout=...)``):
        the function then runs eagerly, as Python, at every call."""
        for dec in node.decorators:
            d = dec.decorator
            if isinstance(d, cst.Call):
                d = d.func
            if self.resolve(d) in _PY_FUNCTIONS:
                return True
            if isinstance(d, cst.Name) and any(self._wraps_in_py_function(fi.node)
                                               for fi in self.functions.get(d.value, ())):
                return True
        return False

    def _wraps_in_py_function(self, dec_node: Any) -> bool:
        if not isinstance(dec_node, cst.FunctionDef):
            return False
        params = _param_list(dec_node.params)
        if not params:
            return False
        pname = params[0].name.value
        stack = [dec_node.body]
        while stack:
            n = stack.pop()
            if isinstance(n, cst.Call) and self.resolve(n.func) in _PY_FUNCTIONS:
                a = get_arg(n, "func", 0)
                if a is not None and isinstance(a.value, cst.Name) and a.value.value == pname:
                    return True
            stack.extend(n.children)
        return False

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self._enter_function(node, node.name.value, _param_list(node.params))
        if self._datasets is not None:
            self._datasets.visit_FunctionDef(node)

    def leave_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.function = self.function.parent if self.function is not None else None

    def visit_Lambda(self, node: cst.Lambda) -> None:
        fi = self._enter_function(node, "<lambda>", _param_list(node.params))
        fi.returns.append(node.body)

    def leave_Lambda(self, node: cst.Lambda) -> None:
        self.function = self.function.parent if self.function is not None else None

    def visit_Return(self, node: cst.Return) -> None:
        if self.function is not None and node.value is not None:
            self.function.returns.append(node.value)
        if self._datasets is not None:
            self._datasets.visit_Return(node)

    def visit_Assign(self, node: cst.Assign) -> None:
        targets = [t.target for t in node.targets]
        self._record_assign(targets, node.value)

    def leave_Assign(self, node: cst.Assign) -> None:
        if self._datasets is not None:
            self._datasets.leave_Assign(node)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self._record_assign([node.target], node.value)

    def leave_AnnAssign(self, node: cst.AnnAssign) -> None:
        if self._datasets is not None:
            self._datasets.leave_AnnAssign(node)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        fn = self.function
        if fn is not None and fn.tainted and self._tainted(node.value, fn.tainted):
            for n in target_names(node.target):
                fn.tainted.add(n)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._record_assign([node.target], node.value)

    def _record_assign(self, targets: list, value: Any) -> None:
        fn = self.function
        if fn is None:
            for tgt in targets:
                if isinstance(tgt, cst.Name):
                    old = self.module_assigned.get(tgt.value)
                    if old is not None:
                        self._before[id(value)] = (tgt.value, old)
                    self.module_assigned[tgt.value] = value
            return
        for tgt in targets:
            for n in target_names(tgt):
                fn.locals.add(n)
            if isinstance(tgt, cst.Name):
                old = fn.assigned.get(tgt.value)
                if old is not None:
                    self._before[id(value)] = (tgt.value, old)
                self._note_may(fn, tgt.value, value, old)
                fn.assigned[tgt.value] = value
            else:
                for n in target_names(tgt):
                    fn.assigned.pop(n, None)
                    fn.unpacked[n] = value
        if fn.tainted:
            self._taint_assign(targets, value)

    def visit_For(self, node: cst.For) -> None:
        if self._datasets is not None:
            self._datasets.visit_For(node)
        fn = self.function
        if fn is None:
            return
        for n in target_names(node.target):
            fn.locals.add(n)
            fn.assigned.pop(n, None)
            fn.unpacked[n] = node.iter
        if fn.tainted:
            self._taint_assign([node.target], node.iter)

    def visit_CompFor(self, node: cst.CompFor) -> None:
        fn = self.function
        if fn is None:
            return
        for n in target_names(node.target):
            fn.unpacked[n] = node.iter
        if fn.tainted:
            self._taint_assign([node.target], node.iter)

    def leave_If(self, node: cst.If) -> None:
        if self._datasets is not None:
            self._datasets.leave_If(node)

    def visit_ListComp(self, node: Any) -> None:
        if self._datasets is not None:
            self._datasets.visit_comprehension(node)

    visit_SetComp = visit_DictComp = visit_GeneratorExp = visit_ListComp

    def visit_WithItem(self, node: cst.WithItem) -> None:
        if self._datasets is not None:
            self._datasets.visit_WithItem(node)
        fn = self.function
        if fn is not None and node.asname is not None:
            for n in target_names(node.asname.name):
                fn.locals.add(n)

    def visit_Call(self, node: cst.Call) -> None:
        if self._datasets is not None:
            self._datasets.visit_Call(node)
        func = node.func
        if isinstance(func, cst.Attribute):
            attr = func.attr.value
            if attr in ("map", "filter", "flat_map", "interleave") and node.args:
                arg = get_arg(node, "map_func", 0) or get_arg(node, "predicate", 0) or node.args[0]
                if self._receiver_is_dataset(func.value):
                    self.mark_graph(arg.value, f"a function given to `Dataset.{attr}`")
                else:
                    self._note_param_map(func.value, arg.value, attr)
                return
            if attr in _TRACING_METHODS or (attr == "fit" and (get_arg(node, "validation_data") is not None
                                                                 or get_arg(node, "validation_split") is not None)):
                self._traced_receivers.append(self._receiver_class(func.value))
            if attr == "compile":
                for kw in ("loss", "metrics", "weighted_metrics"):
                    a = get_arg(node, kw)
                    if a is not None:
                        for fn_expr in _callables_in(a.value):
                            self.mark_graph(fn_expr, f"a function given to `compile({kw}=...)`")
                return
        if isinstance(func, cst.Name) and func.value in self.functions and node.args:
            pos = 0
            for a in node.args:
                if a.star:
                    break
                key = a.keyword.value if a.keyword is not None else pos
                if a.keyword is None:
                    pos += 1
                if self.is_dataset(self._value_here(a.value)):
                    self._ds_args.add((func.value, key))
        q = self.resolve(func)
        if q is None:
            return
        self._parity.record_call(node, q)
        if q in _TF_FUNCTION and node.args:
            self.mark_graph(node.args[0].value, "a function wrapped in `tf.function`")
        elif q in _PY_FUNCTIONS and node.args:
            a = get_arg(node, "func", 0)
            if a is not None:
                self.mark_eager(a.value)
        elif q == "keras.layers.Lambda" and node.args:
            a = get_arg(node, "function", 0)
            if a is not None:
                self.mark_graph(a.value, "a function given to `layers.Lambda`")

    def _receiver_is_dataset(self, expr: Any) -> bool:
        if self.is_dataset(expr):
            return True
        # A parameter or variable conventionally named as a dataset.
        base = expr
        while isinstance(base, cst.Call) and isinstance(base.func, cst.Attribute) \
                and base.func.attr.value in _dataflow.DATASET_METHODS:
            base = base.func.value
        if isinstance(base, cst.Name) and (base.value in _DS_PARAM_NAMES or base.value.endswith("_ds")):
            v = self.assigned_value(base.value)
            return v is None or self.is_dataset(v)
        return False

    def _note_may(self, fn: FunctionInfo, name: str, value: Any, old: Any) -> None:
        entries = fn.may.get(name)
        path = self.branch_path(fn)
        if not path and not entries:
            return  # straight-line (re)assignment of a straight-line value: last wins
        if entries is None:
            # the first value seen: its path, if in a branch, is kept; a straight-line
            # first value had no entry (path ())
            entries = fn.may[name] = [(old, ())] if old is not None else []
        # this assignment replaces every earlier one made in the same region (its path
        # extends this one's); values from sibling arms stay possible
        n = len(path)
        entries[:] = [e for e in entries if e[1][:n] != path]
        entries.append((value, path))

    def _value_here(self, expr: Any) -> Any:
        """``expr``, or for a Name being reassigned by the statement around it
        (``train = prepare(train)``) the value it held before that statement."""
        if isinstance(expr, cst.Name):
            v = self.assigned_value(expr.value)
            if v is not None and any(anc is v for anc in self.stack):
                hit = self._before.get(id(v))
                if hit is not None and hit[0] == expr.value:
                    return hit[1]
        return expr

    def _note_param_map(self, receiver: Any, target: Any, attr: str) -> None:
        base = receiver
        while isinstance(base, cst.Call) and isinstance(base.func, cst.Attribute) \
                and base.func.attr.value in _dataflow.DATASET_METHODS:
            base = base.func.value
        fn = self.function
        if not isinstance(base, cst.Name) or fn is None or not isinstance(fn.node, cst.FunctionDef):
            return
        names = [p.name.value for p in fn.params]
        if base.value not in names or fn.cls is not None:
            return
        if not isinstance(target, (cst.Name, cst.Lambda)):
            return
        self._param_maps.append((fn.name, names.index(base.value), base.value, target,
                                 f"a function given to `Dataset.{attr}` (on `{base.value}`, a dataset at the "
                                 f"call of `{fn.name}`)"))

    def _receiver_class(self, expr: Any) -> Optional[str]:
        """The class a predict/evaluate receiver is an instance of: a local class name,
        "" for a model known not to be one of them (built-in, another local class), or
        None when unknown."""
        v = expr
        if isinstance(expr, cst.Name):
            v = self.assigned_value(expr.value)
        if isinstance(v, cst.Call):
            if isinstance(v.func, cst.Name) and v.func.value in self.classes:
                return v.func.value
            q = self.resolve(v.func)
            if q is not None and q.startswith(("keras.models.", "keras.applications.", "keras.layers.")):
                return ""
        return None

    def _eager_only_calls(self) -> None:
        """`call` of a Model subclass whose own `train_step` (and every other method) never
        calls the model, in a file that never predicts/evaluates/validates it: `fit` runs
        only the custom train_step, so `call` runs only when the model is called directly,
        eagerly (a GAN/VAE trainer's `call` that generates images). Not a graph context."""
        traced = self._traced_receivers
        if None in traced:
            return
        for info in self.classes.values():
            if info.kind != "layer" or info.name in traced or not self._is_model_class(info):
                continue
            methods = {s.name.value for s in _class_methods(info.node)}
            if "train_step" not in methods or "call" not in methods:
                continue
            if _calls_self(info.node):
                continue
            for fi in self.all_functions:
                o = fi
                while o.parent is not None and o.parent.graph == o.graph:
                    o = o.parent
                if o.cls is info and o.name == "call" and fi.graph == o.graph and o.graph is not None:
                    fi.graph = None

    def _is_model_class(self, info: ClassInfo, depth: int = 0) -> bool:
        for b in info.bases:
            if b.startswith("local:"):
                other = self.classes.get(b[6:])
                if other is not None and depth < 8 and self._is_model_class(other, depth + 1):
                    return True
            elif b in ("keras.models.Model",):
                return True
        return False

    def finish(self) -> None:
        if not getattr(self, "_eager_done", False):
            self._eager_done = True
            self._eager_only_calls()
        for fname, idx, pname, target, reason in self._param_maps:
            if (fname, idx) in self._ds_args or (fname, pname) in self._ds_args:
                self.mark_graph(target, reason)
        self._param_maps = [pm for pm in self._param_maps
                            if (pm[0], pm[1]) not in self._ds_args and (pm[0], pm[2]) not in self._ds_args]
        if self._lambda_marks:
            for fi in self.all_functions:
                if fi.graph is None and isinstance(fi.node, cst.Lambda) and id(fi.node) in self._lambda_marks:
                    fi.graph = self._lambda_marks[id(fi.node)]
        for fi in self.all_functions:
            if fi.graph is not None or not isinstance(fi.node, cst.FunctionDef):
                continue
            if fi.cls is None and fi.name in self._graph_names:
                fi.graph = self._graph_names[fi.name]
            elif fi.cls is not None and (fi.cls.name, fi.name) in self._graph_methods:
                fi.graph = self._graph_methods[(fi.cls.name, fi.name)]
        for name in self._eager_names:
            for fi in self.functions.get(name, ()):
                fi.eager = True


_PY_FUNCTIONS = frozenset({"tensorflow.numpy_function", "tensorflow.py_function", "tensorflow.compat.v1.py_func",
                           "tensorflow.py_func"})

_TRACING_METHODS = {"predict", "evaluate", "predict_on_batch", "test_on_batch", "predict_generator",
                    "evaluate_generator", "export", "predict_step", "test_step"}


def _class_methods(cls_node: Any) -> list:
    body = cls_node.body
    return [s for s in (body.body if isinstance(body, cst.IndentedBlock) else ()) if isinstance(s, cst.FunctionDef)]


def _calls_self(cls_node: Any) -> bool:
    """Does any method call the model itself (``self(x)``, ``self.call(x)``,
    ``super().train_step`` which calls it)?"""
    stack = [cls_node.body]
    while stack:
        n = stack.pop()
        if isinstance(n, cst.Call):
            f = n.func
            if isinstance(f, cst.Name) and f.value == "self":
                return True
            if isinstance(f, cst.Attribute) and f.attr.value in ("call", "train_step", "test_step", "__call__") \
                    and (isinstance(f.value, cst.Name) and f.value.value == "self" or isinstance(f.value, cst.Call)):
                return True
        stack.extend(n.children)
    return False


def _in_class_body(stack: list, class_node: Any) -> bool:
    """Is the node being entered directly in ``class_node``'s body (a method)?"""
    # stack[-1] is the node itself (FunctionDef), stack[-2] its parent (IndentedBlock /
    # SimpleStatementSuite), stack[-3] the ClassDef.
    return len(stack) >= 3 and stack[-3] is class_node


def _callables_in(expr: Any) -> Iterator[Any]:
    if isinstance(expr, (cst.Name, cst.Lambda)):
        yield expr
    elif isinstance(expr, (cst.List, cst.Tuple)):
        for el in expr.elements:
            yield from _callables_in(el.value)
    elif isinstance(expr, cst.Dict):
        for el in expr.elements:
            if isinstance(el, cst.DictElement):
                yield from _callables_in(el.value)


_RANDOM_TENSOR_PREFIXES = ("tensorflow.random.", "keras.random.", "tensorflow.compat.v1.random.")
_RANDOM_NOT_TENSOR = {"set_seed", "get_global_generator", "set_global_generator", "experimental"}


def is_random_tensor_call(qualname: str) -> bool:
    """``tf.random.uniform`` / ``keras.random.normal`` ...: a call that returns a random
    tensor (not a seed setter or a generator class)."""
    if not qualname.startswith(_RANDOM_TENSOR_PREFIXES):
        return False
    last = qualname.rsplit(".", 1)[-1]
    return last[:1].islower() and last not in _RANDOM_NOT_TENSOR


def base_kind(qualname: str) -> Optional[str]:
    """Kind of Keras base class a canonical name denotes."""
    if qualname in _LAYER_BASES:
        return "layer"
    if qualname in _LOSS_BASES:
        return "loss"
    if qualname in _METRIC_BASES:
        return "metric"
    if qualname in _CONSTRAINT_BASES:
        return "constraint"
    if qualname in _REGULARIZER_BASES:
        return "regularizer"
    parts = qualname.split(".")
    if len(parts) == 3 and parts[0] == "keras":
        last = parts[2]
        if parts[1] == "layers" and last[:1].isupper():
            return "layer"  # subclass of a built-in layer (layers.Dense, ...)
        if parts[1] in ("models", "applications") and last[:1].isupper():
            return "layer"
        if parts[1] == "losses" and last[:1].isupper():
            return "loss"
        if parts[1] == "metrics" and last[:1].isupper():
            return "metric"
    return None


def __getattr__(name: str) -> Any:
    # The dataset tables live in keraslint.dataflow (one table for the flow and for
    # is_dataset); these names stay importable from here.
    if name in ("DATASET_SOURCES", "DATASET_METHODS"):
        return getattr(_dataflow, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# Imported last: keraslint.dataflow builds on the helpers above.
from keraslint import dataflow as _dataflow  # noqa: E402
