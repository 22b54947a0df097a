"""KL5: input pipelines (``tf.data``).

A ``tf.data`` pipeline decides what one training step sees: how many samples, in which
order, and which samples together. The hazards here change that silently: a pipeline with
no ``batch`` feeds single rows as batches, a ``batch_size=`` given to ``fit`` next to a
dataset is ignored, ``shuffle`` after ``batch`` shuffles batches instead of samples, and
``cache`` after ``shuffle`` freezes the first epoch's order.

All five rules share one data-flow analysis (:class:`PipelineFlow`): it follows a dataset
through assignments and reassignments in a function, method chains across lines, and
helper functions and methods of the same file that return one (with the helper's
parameters bound to the caller's arguments), and answers, at each ``fit``/``evaluate``/
``predict``: is it a ``tf.data.Dataset`` of known origin, is it batched, is it prefetched.
A dataset of unknown origin (a parameter, ``tfds.load``) has an unknown batch state and
is never flagged for batching or prefetching. The analysis is
branch-aware: a name assigned in an `if` arm, a loop body or a `try` block and read after
it may hold its value from before that branch too (may-hold sets); the rules that report
a state (unbatched, prefetch turned off) report it only when every alternative has it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

import libcst as cst

from keraslint.rule import AddImport, Fix, Replace, Rule
from keraslint.semantics import NOT_LITERAL, get_arg, literal_value, target_names

# ---------------------------------------------------------------------------
# What the analysis knows about tf.data
# ---------------------------------------------------------------------------

# Steps that batch (the dataset's elements become batches).
BATCH_METHODS = {"batch", "padded_batch", "ragged_batch", "sparse_batch", "bucket_by_sequence_length", "rebatch"}
# Transformations given to ``Dataset.apply`` (canonical names) that batch / unbatch.
BATCH_APPLY = {
    "tensorflow.data.experimental.dense_to_ragged_batch",
    "tensorflow.data.experimental.dense_to_sparse_batch",
    "tensorflow.data.experimental.bucket_by_sequence_length",
    "tensorflow.data.experimental.map_and_batch",
}
UNBATCH_APPLY = {"tensorflow.data.experimental.unbatch"}
# Steps after which the element structure is unknown (the function may batch).
OPAQUE_METHODS = {"flat_map", "interleave", "window", "group_by_window", "apply"}
# Steps that keep the batch state.
KEEP_METHODS = {
    "map", "filter", "shuffle", "repeat", "prefetch", "cache", "take", "skip", "shard", "concatenate",
    "with_options", "enumerate", "ignore_errors", "snapshot", "unique", "take_while", "rejection_resample",
    "map_with_legacy_function", "filter_with_legacy_function", "assert_cardinality", "scan",
}
DATASET_METHODS = BATCH_METHODS | OPAQUE_METHODS | KEEP_METHODS | {"unbatch"}

_FIT_METHODS = ("fit", "evaluate", "predict")
_BRANCH_NODES = (cst.If, cst.Else, cst.For, cst.While, cst.Try, cst.ExceptHandler, cst.TryStar, cst.Match)

# `tf.data.Options().experimental_optimization` fields that, set to False, stop TensorFlow
# from injecting a prefetch at the end of a pipeline (tests/test_data_rules.py reads their
# defaults and the injected prefetch from the installed TensorFlow).
PREFETCH_OFF_OPTIONS = ("inject_prefetch", "apply_default_optimizations")

# Known sources: canonical name -> (batch state, prefetched, shuffled). "U" = unbatched,
# "B" = batched, "?" = unknown; None = unknown.
_TF_SOURCES = {
    "tensorflow.data.Dataset.from_tensor_slices": ("U", False, False),
    # one element holding the whole arrays: a single full batch, on purpose
    "tensorflow.data.Dataset.from_tensors": ("B", False, False),
    "tensorflow.data.Dataset.from_generator": ("?", False, None),
    "tensorflow.data.Dataset.range": ("U", False, False),
    "tensorflow.data.Dataset.random": ("U", False, False),
    "tensorflow.data.Dataset.counter": ("U", False, False),
    "tensorflow.data.Dataset.list_files": ("U", False, True),
    "tensorflow.data.TFRecordDataset": ("U", False, False),
    "tensorflow.data.TextLineDataset": ("U", False, False),
    "tensorflow.data.FixedLengthRecordDataset": ("U", False, False),
    "tensorflow.data.experimental.CsvDataset": ("U", False, False),
    "tensorflow.data.experimental.SqlDataset": ("U", False, False),
    "tensorflow.data.Dataset.load": ("?", None, None),
    "tensorflow.data.experimental.load": ("?", None, None),
    # batch_size is required; prefetches (buffer defaults to AUTOTUNE) and shuffles by default
    "tensorflow.data.experimental.make_csv_dataset": ("B", True, True),
    "tensorflow.data.experimental.make_batched_features_dataset": ("B", None, None),
}
_ZIP = {"tensorflow.data.Dataset.zip"}
_MIX = {
    "tensorflow.data.Dataset.sample_from_datasets",
    "tensorflow.data.Dataset.choose_from_datasets",
    "tensorflow.data.experimental.sample_from_datasets",
    "tensorflow.data.experimental.choose_from_datasets",
}
# Keras dataset utilities: they batch (unless batch_size=None), prefetch, and shuffle by
# default. name -> (positional index of batch_size, default batch_size, default shuffle).
# tests/test_data_rules.py checks these against the installed Keras.
KERAS_DATASET_UTILS = {
    "image_dataset_from_directory": (5, 32, True),
    "text_dataset_from_directory": (4, 32, True),
    "audio_dataset_from_directory": (4, 32, True),
    "timeseries_dataset_from_array": (5, 128, False),
}
_KERAS_UTIL_MODULES = ("keras.utils.", "keras.preprocessing.")
_TFDS_LOAD = "tensorflow_datasets.load"
# Sources of scalar indices: a `map` on them builds the real elements (maybe whole batches).
_INDEX_SOURCES = {"range", "counter", "random"}
_DATASET_TYPES = {"tensorflow.data.Dataset", "tensorflow.data.DatasetV2"}
# Calls of these libraries are never a project's own dataset functions.
_LIBRARY_PREFIXES = ("tensorflow.", "keras.", "numpy.", "torch.", "jax.", "pandas.", "sklearn.", "tensorflow_datasets.")
# A project pipeline's source (as the summaries name it) -> its batch state.
_PROJECT_SOURCE_STATES = {k.rsplit(".", 1)[-1]: v[0] for k, v in _TF_SOURCES.items()}
_PROJECT_SOURCE_STATES.update({name: "B" for name in KERAS_DATASET_UTILS})


# ---------------------------------------------------------------------------
# Abstract values
# ---------------------------------------------------------------------------


@dataclass(eq=False)
class Step:
    """One transformation applied to a dataset: ``.batch(32)`` is Step("batch", call)."""

    name: str
    kind: str  # "batch" | "unbatch" | "opaque" | "keep"
    call: cst.Call
    fn: Any  # FunctionInfo of the function the call is in (None = module level)
    autotune: Optional[str] = None  # how `tf.data.AUTOTUNE` is spelled where the call is


@dataclass(eq=False)
class Source:
    """A call that creates a dataset (``from_tensor_slices``, ``image_dataset_from_directory``)."""

    node: Any
    label: str
    tfdata: bool
    state: str
    prefetched: Optional[bool]
    shuffled: Optional[bool]
    batch_arg: Optional[cst.Arg] = None  # ``batch_size=None`` of a Keras utility
    both: bool = False  # Keras utility with subset="both": returns (train, validation)
    project: bool = False  # returned by a function of another module (steps known by name only)


@dataclass(eq=False)
class Opaque:
    """Not known to be a dataset."""


@dataclass(eq=False)
class ParamRef:
    fn: Any
    name: str
    annotated: bool  # annotated as ``tf.data.Dataset``


@dataclass(eq=False)
class GlobalRef:
    """A module-level name read inside a function: at call time it may hold any of the
    values the module binds to it."""

    name: str


@dataclass(eq=False)
class HelperCall:
    key: tuple  # ("func", name) | ("method", class name, name)
    call: cst.Call
    args: list
    kwargs: dict
    index: Optional[int] = None  # element of a returned tuple


@dataclass(eq=False)
class Combine:
    kind: str  # "zip" | "mix" | "choice"
    parts: list
    node: Any = None


@dataclass(eq=False)
class Pipe:
    origin: Any
    steps: tuple = ()


@dataclass(eq=False)
class TupleVal:
    items: tuple


OPAQUE = Pipe(Opaque())


@dataclass
class Flat:
    """One fully resolved alternative of a pipeline: an origin and a linear list of steps."""

    tfdata: bool
    state: str
    prefetched: Optional[bool]
    shuffled: Optional[bool]
    source: Any = None  # Source, or the Combine's node
    steps: tuple = ()

    def summary(self) -> tuple:
        """(final batch state, prefetched) after all steps."""
        state, pref = self.state, self.prefetched
        index_source = isinstance(self.source, Source) and self.source.label in _INDEX_SOURCES
        for s in self.steps:
            if index_source and state == "U" and s.name in ("map", "flat_map", "interleave"):
                state = "?"  # `range(steps).map(make_batch)`: the function may build whole batches
            if s.kind == "batch":
                state = "B"
            elif s.kind == "unbatch":
                state = "U"
            elif s.kind == "opaque":
                state = "?"
            if s.name == "prefetch":
                pref = True
        return state, pref


NOT_DS = Flat(False, "?", None, None)
_MAX_ALTS = 16
_MAX_DEPTH = 8
_MAX_WORK = 2000  # flatten() calls per question: unknown beyond that


@dataclass
class ChainInfo:
    """Where a call of a method chain sits: the outermost call of the chain, and the
    simple ``name = <chain>`` statement holding it (if it is one)."""

    root: Any
    stmt: Any = None
    target: Optional[str] = None
    fn: Any = None
    block: Any = None  # the body (IndentedBlock / Module) holding the chain's statement


@dataclass(eq=False)
class FitSite:
    call: cst.Call
    method: str
    fn: Any
    x: Optional[cst.Arg] = None
    x_val: Any = None
    val: Optional[cst.Arg] = None
    val_val: Any = None
    batch_arg: Optional[cst.Arg] = None


# ---------------------------------------------------------------------------
# The analysis (one per file, shared by the KL5 rules)
# ---------------------------------------------------------------------------


class PipelineFlow:
    def __init__(self, ctx) -> None:
        self.ctx = ctx
        self.envs: dict = {}  # id(FunctionInfo) -> {name: value}
        self.module_env: dict = {}
        self.module_bindings: dict = {}  # name -> every value the module binds to it
        self.memo: dict = {}  # id(expr) -> value
        self.returns: dict = {}  # id(FunctionInfo) -> [value]
        self.helpers: dict = {}  # key -> [FunctionInfo]
        self.chains: dict = {}  # id(call) -> ChainInfo
        self.pipes: list = []  # every Pipe built by a chain (for KL503/KL504)
        self.fits: list = []
        self.autotune: dict = {}  # id(source call) -> spelling of tf.data.AUTOTUNE there
        self.paths: dict = {}  # (id(env), name) -> branch path of the binding
        self.entry: dict = {}  # (id(env), name) -> value before the branch of the binding
        self.options_off: dict = {}  # (id(function) or 0, name) -> (assignment, option) turning prefetch injection off
        self._seen: set = set()
        self._flat_cache: dict = {}
        self._analysis: Optional[dict] = None
        self._budget = _MAX_WORK

    # -- traversal (idempotent: several rules forward the same node) -------------
    def _once(self, tag: str, node: Any) -> bool:
        key = (tag, id(node))
        if key in self._seen:
            return False
        self._seen.add(key)
        return True

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        if not self._once("def", node):
            return
        fi = self.ctx.function
        if fi is None or fi.node is not node:
            return
        key = ("func", fi.name) if fi.cls is None else ("method", fi.cls.name, fi.name)
        self.helpers.setdefault(key, []).append(fi)

    def visit_Return(self, node: cst.Return) -> None:
        if node.value is None or not self._once("ret", node):
            return
        fi = self.ctx.function
        if fi is not None:
            self.returns.setdefault(id(fi), []).append(self.evaluate(node.value))

    def leave_Assign(self, node: cst.Assign) -> None:
        if self._once("assign", node):
            value = self.evaluate(node.value)
            for t in node.targets:
                self._bind(t.target, value)
                self._record_options(t.target, node.value, node)

    # -- tf.data options that turn the automatic prefetch off ---------------------
    def _options_key(self, name: str) -> tuple:
        fi = self.ctx.function
        while fi is not None and name not in fi.locals:
            fi = fi.parent
        return (id(fi) if fi is not None else 0, name)

    def _record_options(self, target: Any, value: Any, node: Any) -> None:
        """``opts.experimental_optimization.inject_prefetch = False`` /
        ``opts.experimental_optimization.apply_default_optimizations = False`` (or the same
        on an ``OptimizationOptions`` object later assigned to ``opts.experimental_optimization``):
        the options object ``opts`` turns TensorFlow's injected prefetch off."""
        if not isinstance(target, cst.Attribute):
            return
        attr = target.attr.value
        if attr in PREFETCH_OFF_OPTIONS and literal_value(value) is False:
            owner = target.value
            if isinstance(owner, cst.Attribute) and owner.attr.value == "experimental_optimization":
                owner = owner.value
            if isinstance(owner, cst.Name):
                self.options_off.setdefault(self._options_key(owner.value), (node, attr))
        elif attr == "experimental_optimization" and isinstance(target.value, cst.Name) \
                and isinstance(value, cst.Name):
            off = self.options_off.get(self._options_key(value.value))
            if off is not None:
                self.options_off.setdefault(self._options_key(target.value.value), off)

    def prefetch_off(self, step: "Step") -> Optional[tuple]:
        """(assignment node, option name) if the ``with_options`` step applies an options
        object that turns the injected prefetch off."""
        a = get_arg(step.call, "options", 0)
        if a is None or not isinstance(a.value, cst.Name):
            return None
        name = a.value.value
        fi = step.fn
        while fi is not None:
            hit = self.options_off.get((id(fi), name))
            if hit is not None or name in fi.locals:
                return hit
            fi = fi.parent
        return self.options_off.get((0, name))

    def leave_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None and self._once("assign", node):
            self._bind(node.target, self.evaluate(node.value))

    def visit_For(self, node: cst.For) -> None:
        if self._once("for", node):
            self._bind(node.target, OPAQUE)

    def visit_WithItem(self, node: cst.WithItem) -> None:
        if node.asname is not None and self._once("with", node):
            self._bind(node.asname.name, OPAQUE)

    def visit_comprehension(self, node: Any) -> None:
        # A comprehension variable shadows any dataset of that name (conservatively
        # also after the comprehension). Bound before the element is visited.
        if self._once("comp", node):
            comp = node.for_in
            while comp is not None:
                self._bind(comp.target, OPAQUE)
                comp = comp.inner_for_in

    def visit_Call(self, node: cst.Call) -> None:
        if not self._once("call", node):
            return
        ctx = self.ctx
        stack = ctx.stack
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value in _FIT_METHODS:
            self._fit_site(node, func.attr.value)
        # Is this the outermost dataset step of a method chain? (The chain's other
        # steps are evaluated with it.)
        if (len(stack) >= 3 and isinstance(stack[-2], cst.Attribute) and stack[-2].value is node
                and isinstance(stack[-3], cst.Call) and stack[-3].func is stack[-2]
                and stack[-2].attr.value in DATASET_METHODS and not node.lpar):
            return
        if not (isinstance(func, cst.Attribute) and func.attr.value in DATASET_METHODS):
            return
        info = ChainInfo(node, fn=ctx.function)
        for i in range(len(stack) - 2, 0, -1):
            if isinstance(stack[i], (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
                info.block = stack[i - 1]
                break
        if len(stack) >= 4 and isinstance(stack[-2], cst.Assign) and stack[-2].value is node:
            line = stack[-3]
            assign = stack[-2]
            if (isinstance(line, cst.SimpleStatementLine) and len(line.body) == 1 and len(assign.targets) == 1
                    and isinstance(assign.targets[0].target, cst.Name)):
                info.stmt = line
                info.target = assign.targets[0].target.value
        _, links = linearize(node)
        for link in links:
            self.chains[id(link)] = info
        value = self.evaluate(node)
        if isinstance(value, Pipe):
            self.pipes.append(value)

    def _fit_site(self, node: cst.Call, method: str) -> None:
        site = FitSite(node, method, self.ctx.function)
        site.x = get_arg(node, "x", 0)
        if site.x is not None:
            site.x_val = self.evaluate(site.x.value)
        if method == "fit":
            site.val = get_arg(node, "validation_data")
            if site.val is not None:
                site.val_val = self.evaluate(site.val.value)
        site.batch_arg = get_arg(node, "batch_size")
        self.fits.append(site)

    # -- environment -------------------------------------------------------------
    def _env(self) -> dict:
        fi = self.ctx.function
        if fi is None:
            return self.module_env
        return self.envs.setdefault(id(fi), {})

    def _branch_path(self) -> tuple:
        """ids of the branches (if/else arms, loop bodies, try blocks) around the current
        statement, inside the current function."""
        path: list = []
        for n in self.ctx.stack:
            if isinstance(n, (cst.FunctionDef, cst.Lambda)):
                path = []
            elif isinstance(n, _BRANCH_NODES):
                path.append(id(n))
        return tuple(path)

    def _bind(self, target: Any, value: Any) -> None:
        env = self._env()
        if isinstance(target, cst.Name):
            # may-hold sets: an assignment in a branch the previous one was not in (an `if`
            # arm, a loop body) may not run, so the name holds either value afterwards
            key = (id(env), target.value)
            path = self._branch_path()
            old_path = self.paths.get(key)
            old = env.get(target.value)
            if old is not None and old_path is not None and path != old_path and path[:len(old_path)] == old_path:
                self.entry[key] = old  # what the name holds where this branch does not run
            elif old_path is None or len(path) < len(old_path) and old_path[:len(path)] == path:
                self.entry.pop(key, None)  # an assignment on an enclosing path replaces every branch's
            self.paths[key] = path
            env[target.value] = value
            if env is self.module_env:
                self.module_bindings.setdefault(target.value, []).append(value)
            return
        if not isinstance(target, (cst.Tuple, cst.List)):
            return
        elements = target.elements
        items: list
        if any(isinstance(e, cst.StarredElement) for e in elements):
            items = [OPAQUE] * len(elements)
        elif isinstance(value, TupleVal) and len(value.items) == len(elements):
            items = list(value.items)
        elif isinstance(value, Pipe) and not value.steps and isinstance(value.origin, HelperCall) \
                and value.origin.index is None:
            h = value.origin
            items = [Pipe(HelperCall(h.key, h.call, h.args, h.kwargs, i)) for i in range(len(elements))]
        elif (isinstance(value, Pipe) and not value.steps and isinstance(value.origin, Source)
              and value.origin.both and len(elements) == 2):
            items = [value, value]
        else:
            items = [OPAQUE] * len(elements)
        for el, item in zip(elements, items):
            if isinstance(el, cst.StarredElement):
                for n in target_names(el):
                    self._bind(cst.Name(n), OPAQUE)
            else:
                self._bind(el.value, item)

    def _may_hold(self, env: dict, name: str) -> Any:
        """The value of ``name`` read here: read outside the branch that bound it (after an
        `if` arm, a loop body), it may also hold what it held before that branch."""
        value = env[name]
        key = (id(env), name)
        before = self.entry.get(key)
        path = self.paths.get(key, ())
        if before is not None and self._branch_path()[:len(path)] != path:
            return Pipe(Combine("choice", [before, value]))
        return value

    def _lookup(self, name: str) -> Any:
        fi = self.ctx.function
        while fi is not None:
            env = self.envs.get(id(fi))
            if env is not None and name in env:
                return self._may_hold(env, name)
            if name in fi.locals:
                for p in fi.params:
                    if p.name.value == name:
                        ann = p.annotation.annotation if p.annotation is not None else None
                        annotated = ann is not None and self.ctx.resolve(ann) in _DATASET_TYPES
                        return Pipe(ParamRef(fi, name, annotated))
                return OPAQUE
            fi = fi.parent
        if self.ctx.function is not None:
            return Pipe(GlobalRef(name))
        if name in self.module_env:
            return self._may_hold(self.module_env, name)
        return OPAQUE

    # -- evaluation --------------------------------------------------------------
    def evaluate(self, expr: Any) -> Any:
        key = id(expr)
        v = self.memo.get(key)
        if v is None:
            v = self._evaluate(expr)
            self.memo[key] = v
        return v

    def _evaluate(self, expr: Any) -> Any:
        if isinstance(expr, cst.Name):
            return self._lookup(expr.value)
        if isinstance(expr, (cst.Tuple, cst.List)):
            if any(isinstance(e, cst.StarredElement) for e in expr.elements):
                return OPAQUE
            return TupleVal(tuple(self.evaluate(e.value) for e in expr.elements))
        if isinstance(expr, cst.IfExp):
            return Pipe(Combine("choice", [self.evaluate(expr.body), self.evaluate(expr.orelse)], expr))
        if isinstance(expr, cst.NamedExpr):
            return self.evaluate(expr.value)
        if not isinstance(expr, cst.Call):
            return OPAQUE
        func = expr.func
        q = self.ctx.resolve(func)
        if q is not None:
            return self._source(q, expr)
        if isinstance(func, cst.Attribute):
            attr = func.attr.value
            recv = func.value
            if isinstance(recv, cst.Name) and recv.value == "self" and self._method_class() is not None:
                return self._helper(("method", self._method_class(), attr), expr)
            if attr not in DATASET_METHODS:
                return OPAQUE
            base = self.evaluate(recv)
            if not isinstance(base, Pipe):
                return OPAQUE
            step = Step(attr, self._step_kind(attr, expr), expr, self.ctx.function,
                        self.ctx.spelling("tensorflow.data.AUTOTUNE"))
            return Pipe(base.origin, base.steps + (step,))
        if isinstance(func, cst.Name):
            return self._helper(("func", func.value), expr)
        return OPAQUE

    def _method_class(self) -> Optional[str]:
        fi = self.ctx.function
        while fi is not None:
            if fi.cls is not None:
                return fi.cls.name
            fi = fi.parent
        return None

    def _step_kind(self, attr: str, call: cst.Call) -> str:
        if attr in BATCH_METHODS:
            return "batch"
        if attr == "unbatch":
            return "unbatch"
        if attr == "apply":
            a = get_arg(call, "transformation_func", 0)
            if a is not None and isinstance(a.value, cst.Call):
                q = self.ctx.resolve(a.value.func)
                if q in BATCH_APPLY:
                    return "batch"
                if q in UNBATCH_APPLY:
                    return "unbatch"
            return "opaque"
        if attr in OPAQUE_METHODS:
            return "opaque"
        return "keep"

    def _helper(self, key: tuple, call: cst.Call) -> Pipe:
        args, kwargs = [], {}
        for a in call.args:
            if a.star:
                continue
            if a.keyword is not None:
                kwargs[a.keyword.value] = self.evaluate(a.value)
            else:
                args.append(self.evaluate(a.value))
        return Pipe(HelperCall(key, call, args, kwargs))

    def _source(self, q: str, call: cst.Call) -> Any:
        short = q.rsplit(".", 1)[-1]
        self.autotune[id(call)] = self.ctx.spelling("tensorflow.data.AUTOTUNE")
        if not q.startswith(_LIBRARY_PREFIXES):
            project = self._project_source(q, call)
            if project is not None:
                return project
        if q in _TF_SOURCES:
            state, pref, shuf = _TF_SOURCES[q]
            if q == "tensorflow.data.Dataset.list_files":
                a = get_arg(call, "shuffle", 1)
                if a is not None and literal_value(a.value) is False:
                    shuf = False
            return Pipe(Source(call, short, True, state, pref, shuf))
        if q in _ZIP or q in _MIX:
            parts = self._dataset_args(call, q in _ZIP)
            return Pipe(Combine("zip" if q in _ZIP else "mix", parts, call))
        if q == _TFDS_LOAD:
            # a Dataset only for one split (without split= it is a dict of them), and
            # not with batch_size=-1 (then it is tensors)
            split = get_arg(call, "split", 1)
            if split is None or get_arg(call, "batch_size") is not None:
                return OPAQUE
            one = Pipe(Source(call, "tfds.load", True, "?", None, None))
            value: Any = one
            if isinstance(split.value, (cst.List, cst.Tuple)):
                # one dataset per split: `(train, test), info = tfds.load(..., split=[...])`
                if any(isinstance(e, cst.StarredElement) for e in split.value.elements):
                    return OPAQUE
                value = TupleVal(tuple(one for _ in split.value.elements))
            info = get_arg(call, "with_info")
            if info is not None and literal_value(info.value) is True:
                value = TupleVal((value, OPAQUE))
            elif info is not None and literal_value(info.value) is not False:
                return OPAQUE
            return value
        if q.startswith(_KERAS_UTIL_MODULES) and short in KERAS_DATASET_UTILS:
            pos, _default_bs, default_shuffle = KERAS_DATASET_UTILS[short]
            fmt = get_arg(call, "format")
            if fmt is not None and literal_value(fmt.value) != "tf":
                return OPAQUE  # e.g. format="grain": not a tf.data dataset
            bs = get_arg(call, "batch_size", pos)
            state = "U" if bs is not None and literal_value(bs.value) is None else "B"
            sh = get_arg(call, "shuffle")
            shuffled = default_shuffle if sh is None else (literal_value(sh.value) if literal_value(sh.value) in (True, False) else None)
            subset = get_arg(call, "subset")
            both = subset is not None and literal_value(subset.value) == "both"
            return Pipe(Source(call, short, True, state, True, shuffled, bs if state == "U" else None, both))
        return OPAQUE

    def _project_source(self, q: str, call: cst.Call) -> Any:
        """A function of another module of the project that returns a pipeline (from the
        project summaries, ``ctx.project``): `from data import make_dataset`. Its steps are
        known by name only; its batch state is that of its source and steps."""
        view = getattr(self.ctx, "project", None)
        if view is None:
            return None
        try:
            fs = view.function(q)
        except Exception:  # noqa: BLE001 - a summary we cannot read: unknown
            return None
        if fs is None or fs.returns != "dataset" or not fs.dataset_steps:
            return None
        source, steps = fs.dataset_steps[0], fs.dataset_steps[1:]
        state = _PROJECT_SOURCE_STATES.get(source)
        if state is None:
            return OPAQUE  # a pipeline of unknown origin
        prefetched = source in KERAS_DATASET_UTILS
        for name in steps:
            if name in BATCH_METHODS:
                state = "B"
            elif name == "unbatch":
                state = "U"
            elif name in OPAQUE_METHODS:
                state = "?"
            elif name not in KEEP_METHODS:
                return OPAQUE
            if name == "prefetch":
                prefetched = True
        label = f"{q.rsplit('.', 1)[-1]}() in {os.path.basename(fs.path) if fs.path else q}"
        return Pipe(Source(call, label, True, state, prefetched, None, project=True))

    def _dataset_args(self, call: cst.Call, is_zip: bool) -> list:
        named = get_arg(call, "datasets")
        args = [named] if named is not None else [a for a in call.args if a.keyword is None and not a.star]
        if not is_zip:
            args = args[:1]
        parts: list = []
        for a in args:
            v = a.value
            if isinstance(v, (cst.Tuple, cst.List)):
                parts.extend(self.evaluate(e.value) for e in v.elements)
            elif isinstance(v, cst.Dict):
                parts.extend(self.evaluate(e.value) for e in v.elements if isinstance(e, cst.DictElement))
            else:
                parts.append(self.evaluate(v))
        return parts

    # -- resolution (after the traversal) ----------------------------------------
    def flatten(self, value: Any, subst: Optional[dict] = None, depth: int = 0) -> list:
        if depth == 0:
            self._budget = _MAX_WORK
        self._budget -= 1
        if not isinstance(value, Pipe) or depth > _MAX_DEPTH or self._budget < 0:
            return [NOT_DS]
        bases = self._flatten_origin(value.origin, subst or {}, depth)
        if not value.steps:
            return bases
        return [Flat(b.tfdata, b.state, b.prefetched, b.shuffled, b.source, b.steps + value.steps) for b in bases]

    def _flatten_origin(self, o: Any, subst: dict, depth: int) -> list:
        if isinstance(o, Source):
            return [Flat(o.tfdata, o.state, o.prefetched, o.shuffled, o)]
        if isinstance(o, ParamRef):
            bound = subst.get((id(o.fn), o.name))
            if bound is not None:
                return self.flatten(bound[0], bound[1], depth + 1)
            return [Flat(True, "?", None, None)] if o.annotated else [NOT_DS]
        if isinstance(o, GlobalRef):
            values = self.module_bindings.get(o.name)
            if not values:
                return [NOT_DS]
            out = []
            for v in values:
                out.extend(self.flatten(v, subst, depth + 1))
            return out if len(out) <= _MAX_ALTS else [NOT_DS]
        if isinstance(o, HelperCall):
            fns = self.helpers.get(o.key)
            if not fns:
                return [NOT_DS]
            out: list = []
            for fi in fns:
                rets = self.returns.get(id(fi))
                if not rets:
                    return [NOT_DS]
                inner = self._bind_params(fi, o, subst, method=o.key[0] == "method")
                for r in rets:
                    if o.index is not None:
                        if not (isinstance(r, TupleVal) and o.index < len(r.items)):
                            return [NOT_DS]
                        r = r.items[o.index]
                    out.extend(self.flatten(r, inner, depth + 1))
            return out if len(out) <= _MAX_ALTS else [NOT_DS]
        if isinstance(o, Combine):
            if o.kind == "choice":
                out = []
                for p in o.parts:
                    out.extend(self.flatten(p, subst, depth + 1))
                return out if len(out) <= _MAX_ALTS else [NOT_DS]
            flats = [f for p in o.parts for f in self.flatten(p, subst, depth + 1)]
            if not flats:
                return [NOT_DS]
            tfdata = all(f.tfdata for f in flats)
            sums = [f.summary() for f in flats]
            states = {s for s, _ in sums}
            state = states.pop() if len(states) == 1 else "?"
            prefs = {p for _, p in sums}
            pref = True if prefs == {True} else (False if False in prefs and None not in prefs else None)
            shufs = {f.shuffled for f in flats}
            shuf = shufs.pop() if len(shufs) == 1 and o.kind == "zip" else None
            return [Flat(tfdata, state, pref, shuf, o)]
        return [NOT_DS]

    def _bind_params(self, fi: Any, call: HelperCall, subst: dict, method: bool) -> dict:
        params = list(fi.params)
        if method and params and params[0].name.value in ("self", "cls"):
            params = params[1:]
        inner: dict = {}
        positional = [p for p in params if p.star not in ("*", "**")]
        for p, v in zip(positional, call.args):
            inner[(id(fi), p.name.value)] = (v, subst)
        for p in params:
            if p.name.value in call.kwargs:
                inner[(id(fi), p.name.value)] = (call.kwargs[p.name.value], subst)
        return inner

    def flats(self, value: Any) -> list:
        key = id(value)
        r = self._flat_cache.get(key)
        if r is None:
            r = self.flatten(value)
            self._flat_cache[key] = r
        return r

    # -- the questions the rules ask ------------------------------------------------
    def analysis(self) -> dict:
        if self._analysis is None:
            trained = self._training_steps()
            found = {"KL503": self._shuffle_after_batch(), "KL504": self._cache_after_shuffle()}
            if trained is not None:
                # Only the order of what `fit` trains on matters: a pipeline made for
                # plotting, `evaluate` or `predict` may shuffle or cache as it likes.
                found = {code: [hit for hit in hits if id(hit[0]) in trained] for code, hits in found.items()}
            self._analysis = found
        return self._analysis

    def _training_steps(self) -> Optional[set]:
        """ids of the steps of every pipeline known to reach `fit` as training data, or None
        when no `fit` of the file trains on a pipeline of known origin (a data module whose
        datasets are trained elsewhere: every pipeline may be a training one)."""
        out: set = set()
        seen = False
        for site in self.fits:
            if site.method != "fit" or site.x_val is None:
                continue
            todo = list(self.flats(site.x_val))
            done = 0
            while todo and done < 64:
                f = todo.pop()
                done += 1
                if f.tfdata and f is not NOT_DS:
                    seen = True
                    out.update(id(s) for s in f.steps)
                    if isinstance(f.source, Combine):  # zip / sample_from_datasets of pipelines
                        for part in f.source.parts:
                            todo.extend(self.flats(part))
        return out if seen else None

    def _all_flats(self) -> list:
        out = []
        for p in self.pipes:
            out.extend(f for f in self.flats(p) if f.tfdata)
        return out

    def _shuffle_after_batch(self) -> list:
        """[(shuffle step, batch step, flat)] where a shuffle sees batches, made by an
        explicit batch step, and no shuffle came before that batch."""
        found: dict = {}
        for flat in self._all_flats():
            state = flat.state
            shuffled = bool(flat.shuffled)
            last_batch = None
            for i, s in enumerate(flat.steps):
                if s.kind == "batch":
                    state, last_batch = "B", i
                    if s.name == "bucket_by_sequence_length":
                        last_batch = None  # shuffling the buckets' batches is the recommended practice
                    elif s.name == "batch" and _batch_of_one(s.call):
                        last_batch = None  # batches of one sample: shuffling them shuffles the samples
                elif s.kind == "unbatch":
                    state, last_batch = "U", None
                elif s.kind == "opaque":
                    state, last_batch = "?", None
                elif s.name == "shuffle":
                    if state == "B" and last_batch is not None and not shuffled:
                        found.setdefault(id(s), (s, flat.steps[last_batch], flat, last_batch, i))
                    shuffled = True
        return list(found.values())

    def _cache_after_shuffle(self) -> list:
        """[(cache step, shuffle step, flat)] where a cache stores a reshuffling shuffle's
        output, with no take/skip/shard in between (freezing a random subset is the point
        of `shuffle().take(n).cache()`), no shuffle after the cache, and no take/skip/shard
        after it (`shuffle().cache()` then `take(n)`/`skip(n)` freezes a random split)."""
        found: dict = {}
        suppressed: set = set()
        for flat in self._all_flats():
            steps = flat.steps
            for i, s in enumerate(steps):
                if s.name != "cache":
                    continue
                if any(t.name in ("shuffle", "take", "skip", "shard") for t in steps[i + 1:]):
                    # reshuffled later, or the cache freezes a random split:
                    # `shuffle().cache()` then `take(n)`/`skip(n)` keeps train and
                    # validation disjoint; reshuffling each epoch would mix them
                    suppressed.add(id(s))
                    continue
                for j in range(i - 1, -1, -1):
                    t = steps[j]
                    if t.name in ("take", "skip", "shard", "cache") or t.kind in ("opaque",):
                        break
                    if t.name == "shuffle":
                        r = get_arg(t.call, "reshuffle_each_iteration", 2)
                        if r is not None and literal_value(r.value) is False:
                            break
                        found.setdefault(id(s), (s, t, flat, j, i))
                        break
        return [v for k, v in found.items() if k not in suppressed]


def _batch_of_one(call: cst.Call) -> bool:
    a = get_arg(call, "batch_size", 0)
    return a is not None and literal_value(a.value) == 1


def flow_of(ctx) -> PipelineFlow:
    flow = getattr(ctx, "_kl5_flow", None)
    if flow is None:
        flow = PipelineFlow(ctx)
        ctx._kl5_flow = flow
    return flow


# ---------------------------------------------------------------------------
# CST helpers for the fixes
# ---------------------------------------------------------------------------


def linearize(root: Any) -> tuple:
    """A method chain ``base.a(..).b(..)`` as (base, [call a, call b]); a parenthesized
    inner call ends the chain (it becomes the base)."""
    links = []
    node = root
    while isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and (node is root or not node.lpar):
        links.append(node)
        node = node.func.value
    links.reverse()
    return node, links


def _rebuild(root: cst.Call, base: Any, payloads: list, dots: list) -> Any:
    """The chain ``base`` + payloads (call nodes whose attr/args are reused), with the
    given dots, wearing ``root``'s parentheses."""
    cur = base
    for call, dot in zip(payloads, dots):
        cur = cst.Call(
            func=cst.Attribute(value=cur, dot=dot, attr=call.func.attr),
            args=call.args,
            whitespace_after_func=call.whitespace_after_func,
            whitespace_before_args=call.whitespace_before_args,
        )
    if cur is base:
        return base.with_changes(lpar=root.lpar, rpar=root.rpar) if root.lpar else base
    return cur.with_changes(lpar=root.lpar, rpar=root.rpar)


def _fresh_dot(dot: cst.Dot) -> cst.Dot:
    """A copy of ``dot``'s layout (a line break and the indentation when the chain is
    written one step per line) without the comments and blank lines before it."""
    ws = dot.whitespace_before
    if isinstance(ws, cst.ParenthesizedWhitespace):
        return dot.with_changes(whitespace_before=ws.with_changes(first_line=cst.TrailingWhitespace(),
                                                                  empty_lines=[]))
    return cst.Dot()


def _step_dot(call: Any) -> cst.Dot:
    """The dot to use for a step appended after ``call``."""
    if isinstance(call, cst.Call) and isinstance(call.func, cst.Attribute):
        return _fresh_dot(call.func.dot)
    return cst.Dot()


def append_step(node: Any, name: str, arg_code: str) -> cst.Call:
    """``node.name(arg_code)``, keeping ``node``'s parentheses outside."""
    inner = node.with_changes(lpar=[], rpar=[]) if getattr(node, "lpar", None) else node
    return cst.Call(
        func=cst.Attribute(value=inner, dot=_step_dot(node), attr=cst.Name(name)),
        args=[cst.Arg(cst.parse_expression(arg_code))],
        lpar=getattr(node, "lpar", ()) or (),
        rpar=getattr(node, "rpar", ()) or (),
    )


def insert_step_before(call: cst.Call, name: str, arg_code: str) -> cst.Call:
    """``recv.step(...)`` → ``recv.name(arg_code).step(...)``."""
    attr = call.func
    new_inner = cst.Call(
        func=cst.Attribute(value=attr.value, dot=attr.dot, attr=cst.Name(name)),
        args=[cst.Arg(cst.parse_expression(arg_code))],
    )
    return call.with_changes(func=attr.with_changes(value=new_inner, dot=_fresh_dot(attr.dot)))


def move_step_fix(flow: PipelineFlow, moved: Step, anchor: Step, before: bool, between: tuple,
                  allowed: set, description: str) -> Optional[Fix]:
    """Move the ``moved`` step right before/after ``anchor`` (both in the same function,
    each in a method chain; the steps between them only from ``allowed``)."""
    if any(s.name not in allowed for s in between):
        return None
    if moved.fn is not anchor.fn:
        return None
    mi = flow.chains.get(id(moved.call))
    ai = flow.chains.get(id(anchor.call))
    if mi is None or ai is None:
        return None
    if mi.root is ai.root:
        base, links = linearize(mi.root)
        if moved.call not in links or anchor.call not in links:
            return None
        dots = [c.func.dot for c in links]
        order = [c for c in links if c is not moved.call]
        k = order.index(anchor.call) + (0 if before else 1)
        order.insert(k, moved.call)
        return Fix.unsafe(Replace(mi.root, _rebuild(mi.root, base, order, dots)), description=description)
    # Two statements: take the step out of one chain, put it into the other.
    mbase, mlinks = linearize(mi.root)
    abase, alinks = linearize(ai.root)
    if moved.call not in mlinks or anchor.call not in alinks:
        return None
    if mi.block is None or mi.block is not ai.block:
        return None  # moving a step into or out of a branch would change when it runs
    if _contains(mi.root, ai.root) or _contains(ai.root, mi.root):
        return None
    edits = []
    rest = [c for c in mlinks if c is not moved.call]
    if (not rest and mi.stmt is not None and isinstance(mbase, cst.Name) and mbase.value == mi.target):
        edits.append(Replace(mi.stmt, None))  # `ds = ds.shuffle(...)` disappears
    else:
        j = mlinks.index(moved.call)
        dots = [c.func.dot for c in mlinks]
        del dots[j]
        edits.append(Replace(mi.root, _rebuild(mi.root, mbase, rest, dots)))
    i = alinks.index(anchor.call)
    dots = [c.func.dot for c in alinks]
    order = list(alinks)
    if before:
        order.insert(i, moved.call)
        dots.insert(i + 1, _fresh_dot(dots[i]))
    else:
        order.insert(i + 1, moved.call)
        dots.insert(i + 1, _fresh_dot(dots[i]))
    edits.append(Replace(ai.root, _rebuild(ai.root, abase, order, dots)))
    return Fix.unsafe(*edits, description=description)


def _contains(outer: Any, inner: Any) -> bool:
    found = False

    class _V(cst.CSTVisitor):
        def on_visit(self, node):  # noqa: N802
            nonlocal found
            if node is inner:
                found = True
            return not found

    outer.visit(_V())
    return found


def _short(node: Any) -> str:
    try:
        text = cst.Module([]).code_for_node(node)
    except Exception:  # noqa: BLE001
        return "the dataset"
    text = " ".join(text.split())
    return text if len(text) <= 40 else text[:37] + "..."


def _same_expr(a: Any, b: Any) -> bool:
    """The same literal value, or the same expression text (a constant, an attribute)."""
    va, vb = literal_value(a), literal_value(b)
    if va is not NOT_LITERAL and va is not None:
        return va == vb and type(va) is type(vb)
    try:
        code = cst.Module([]).code_for_node
        return " ".join(code(a).split()) == " ".join(code(b).split()) and isinstance(a, (cst.Name, cst.Attribute))
    except Exception:  # noqa: BLE001
        return False


def _arg_text(call: cst.Call) -> str:
    """The first argument as written (``32``, ``buffer_size=512``)."""
    return _short(call.args[0]).rstrip(", ") if call.args else ""


# ---------------------------------------------------------------------------
# The rules
# ---------------------------------------------------------------------------


class _PipelineRule(Rule):
    """Forwards the traversal to the file's shared :class:`PipelineFlow`."""

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.flow = flow_of(ctx)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        self.flow.visit_FunctionDef(node)

    def visit_Return(self, node: cst.Return) -> None:
        self.flow.visit_Return(node)

    def leave_Assign(self, node: cst.Assign) -> None:
        self.flow.leave_Assign(node)

    def leave_AnnAssign(self, node: cst.AnnAssign) -> None:
        self.flow.leave_AnnAssign(node)

    def visit_For(self, node: cst.For) -> None:
        self.flow.visit_For(node)

    def visit_WithItem(self, node: cst.WithItem) -> None:
        self.flow.visit_WithItem(node)

    def visit_ListComp(self, node: cst.ListComp) -> None:
        self.flow.visit_comprehension(node)

    def visit_SetComp(self, node: cst.SetComp) -> None:
        self.flow.visit_comprehension(node)

    def visit_DictComp(self, node: cst.DictComp) -> None:
        self.flow.visit_comprehension(node)

    def visit_GeneratorExp(self, node: cst.GeneratorExp) -> None:
        self.flow.visit_comprehension(node)

    def visit_Call(self, node: cst.Call) -> None:
        self.flow.visit_Call(node)

    def _known(self, value: Any) -> list:
        """The resolved alternatives of ``value`` if every one is a tf.data dataset."""
        if value is None:
            return []
        flats = self.flow.flats(value)
        if not flats or not all(f.tfdata for f in flats):
            return []
        return flats

    def _autotune(self, sp: Optional[str]) -> tuple:
        """(spelling of tf.data.AUTOTUNE, edits needed to make it resolvable), given how
        the file spells it where the edit goes (function-level imports count)."""
        if sp is not None:
            return sp, ()
        return "tensorflow.data.AUTOTUNE", (AddImport("tensorflow"),)


class UnbatchedDataset(_PipelineRule):
    """
    ## What it does
    Flags a `tf.data.Dataset` that reaches `fit`, `evaluate` or `predict` (as `x` or as
    `validation_data`) with no batch-like step: `batch`, `padded_batch`, `ragged_batch`,
    `bucket_by_sequence_length`, `rebatch`, `apply(tf.data.experimental.dense_to_ragged_batch(...))`,
    or a Keras utility that batches by default (`image_dataset_from_directory` and friends,
    unless `batch_size=None`). `unbatch()` undoes a batch. The dataset is followed through
    reassignments, method chains and helper functions of the same file; a dataset of
    unknown origin (a parameter, `tfds.load`) is never flagged.

    ## Why is this bad?
    Keras takes every element of a dataset as one whole batch. Rows of
    `from_tensor_slices((x, y))` with `x` of shape (64, 4) arrive as tensors of shape (4,),
    and Keras 3 fails with `Invalid input shape ... Expected shape (None, 4), but input has
    incompatible shape (4,)`. Worse, when the elements have two or more axes and the model
    is built from the data (no `Input`), training runs silently on the wrong axis: for
    sequences of shape (8, 4), `fit` does 64 steps of "batches" of 8 time steps of one sample
    instead of 2 steps of 32 samples. `keraslint verify` runs the dataset as written and
    batched and reports the element spec against the model's input and one step of each.

    ## Example
    ```python
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(1000).prefetch(tf.data.AUTOTUNE)
    model.fit(ds, epochs=10)
    ```

    ## Use instead
    ```python
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(1000).batch(32).prefetch(tf.data.AUTOTUNE)
    model.fit(ds, epochs=10)
    ```
    The fix (unsafe: it picks a batch size of 32 and changes every other use of the
    dataset) inserts `.batch(32)` before the pipeline's `prefetch`, or appends it where the
    dataset is built.
    """

    code = "KL501"
    name = "unbatched-dataset"
    severity = "error"
    fix_applicability = "unsafe"
    tokens = ("fit", "evaluate", "predict")

    def finish(self) -> None:
        for site in self.flow.fits:
            for arg, value, role in ((site.x, site.x_val, None), (site.val, site.val_val, "validation_data")):
                if arg is None:
                    continue
                flats = self._known(value)
                if not flats or any(f.summary()[0] != "U" for f in flats):
                    continue
                where = f"`{site.method}()`" if role is None else "`fit(validation_data=...)`"
                how = self._origin_text(flats[0])
                add = "add `.batch(...)` before its `prefetch`" if any(
                    s.name == "prefetch" for f in flats for s in f.steps) else "add `.batch(...)`"
                self.report(
                    arg.value,
                    f"`{_short(arg.value)}` reaches {where} unbatched ({how}): Keras takes each element as a "
                    f"whole batch, so a row of shape (n,) fails with 'Expected shape (None, n)' and an element of "
                    f"shape (t, n) silently becomes a batch of t rows; {add}",
                    fix=self._fix(flats[0]) if len(flats) == 1 else None,
                )

    @staticmethod
    def _origin_text(flat: Flat) -> str:
        for s in reversed(flat.steps):
            if s.kind == "unbatch":
                return f"`.{s.name}()` after the last batch"
        src = flat.source
        if isinstance(src, Combine):
            return f"`{ {'zip': 'Dataset.zip'}.get(src.kind, 'sample_from_datasets')}` of unbatched datasets"
        if isinstance(src, Source):
            if src.batch_arg is not None:
                return f"`{src.label}(batch_size=None)`"
            return f"built by `{src.label}` with no `batch`"
        return "no `batch` step"

    def _fix(self, flat: Flat) -> Optional[Fix]:
        steps = flat.steps
        start = 0
        for i, s in enumerate(steps):
            if s.kind == "unbatch":
                start = i + 1
        for s in steps[start:]:
            if s.name == "prefetch":
                return Fix.unsafe(Replace(s.call, insert_step_before(s.call, "batch", "32")),
                                  description="insert `.batch(32)` before `prefetch`")
        src = flat.source
        if start == 0 and isinstance(src, Source) and src.batch_arg is not None:
            return Fix.unsafe(Replace(src.batch_arg.value, cst.Integer("32")),
                              description="batch_size=None -> batch_size=32")
        tail = steps[-1].call if steps else getattr(src, "node", None)
        if not isinstance(tail, cst.Call):
            return None
        return Fix.unsafe(Replace(tail, append_step(tail, "batch", "32")), description="append `.batch(32)`")


class BatchSizeWithDataset(_PipelineRule):
    """
    ## What it does
    Flags `batch_size=` passed to `fit`, `evaluate` or `predict` together with a
    `tf.data.Dataset` (followed through assignments and helpers like KL501). Not flagged:
    a `batch_size=` that is visibly the dataset's own (the same literal, constant or
    attribute as its last `batch`, also through a helper's parameter, or the Keras
    utility's `batch_size`): ignored, but harmless.

    ## Why is this bad?
    A dataset brings its own batches; Keras 3 ignores `batch_size` for it without a
    warning. `model.fit(ds.batch(16), batch_size=4)` on 64 samples runs 4 steps of 16, not
    16 steps of 4, so a reader (or a port to PyTorch's `DataLoader(batch_size=4)`) assumes a
    batch size the model never saw: a different number of optimizer steps per epoch and a
    different gradient noise scale. Not a numerical hazard by itself, so `keraslint
    verify` runs no experiment for it; the step count per epoch tells the story.

    ## Example
    ```python
    model.fit(train_ds, batch_size=64, epochs=5)
    ```

    ## Use instead
    ```python
    model.fit(train_ds, epochs=5)  # the batch size is set by train_ds.batch(...)
    ```
    """

    code = "KL502"
    name = "batch-size-with-dataset"
    severity = "warning"
    fix_applicability = "safe"
    tokens = ("batch_size",)

    def finish(self) -> None:
        for site in self.flow.fits:
            arg = site.batch_arg
            if arg is None or site.x is None or literal_value(arg.value) is None:
                continue
            flats = self._known(site.x_val)
            if not flats:
                flats = self._batched_param(site.x_val)
            if not flats or any(isinstance(f.source, Source) and f.source.project for f in flats):
                continue  # (another module's pipeline: its batch size is not known here)
            if all(self._same_batch_size(f, arg.value, site.x_val, site.fn) for f in flats):
                continue  # the ignored argument says what the dataset does anyway: harmless
            own = ""
            if len(flats) == 1 and flats[0].summary()[0] == "B":
                last = [s for s in flats[0].steps if s.kind == "batch"]
                if last:
                    own = f" (its `.{last[-1].name}({_arg_text(last[-1].call)})`)"
                elif isinstance(flats[0].source, Source) and flats[0].source.label in KERAS_DATASET_UTILS:
                    own = f" (set by `{flats[0].source.label}`)"
            self.report(
                arg,
                f"`batch_size={_short(arg.value)}` is ignored by `{site.method}()` because `{_short(site.x.value)}` is "
                f"a `tf.data.Dataset`: Keras 3 uses the dataset's own batches{own} without a warning; drop the "
                f"argument",
                fix=Fix.safe(Replace(arg, None), description="drop `batch_size=`"),
            )


    def _same_batch_size(self, flat: Flat, given: Any, x_val: Any, fn: Any) -> bool:
        """Is ``given`` (fit's ``batch_size=``) visibly the dataset's own batch size: the
        same literal or the same expression (``BATCH_SIZE``, ``CFG.batch_size``) as its
        last ``batch`` step, also through a helper's parameter, or as the Keras utility's
        ``batch_size``?"""
        batches = [s for s in flat.steps if s.kind in ("batch", "unbatch", "opaque")]
        if batches:
            last = batches[-1]
            if last.name not in ("batch", "padded_batch", "ragged_batch"):
                return False
            a = get_arg(last.call, "batch_size", 0)
            if a is None:
                return False
            own = a.value
            if last.fn is fn and _same_expr(own, given):
                return True  # `ds.batch(batch_size)` and `fit(batch_size=batch_size)` in one function
            if isinstance(own, cst.Name) and last.fn is not None and own.value in {p.name.value for p in last.fn.params}:
                own = self._helper_argument(last.fn, own.value, x_val)
            return own is not None and _same_expr(own, given)
        src = flat.source
        if isinstance(src, Source) and src.label in KERAS_DATASET_UTILS:
            pos, default_bs, _ = KERAS_DATASET_UTILS[src.label]
            a = get_arg(src.node, "batch_size", pos)
            if a is None:
                return literal_value(given) == default_bs
            return _same_expr(a.value, given)
        return False

    @staticmethod
    def _helper_argument(fn: Any, name: str, x_val: Any) -> Any:
        """The expression passed for parameter ``name`` of helper ``fn`` where the dataset
        given to fit is that helper's result (``valid_ds = build_dataset(..., batch_size=B)``)."""
        if not (isinstance(x_val, Pipe) and isinstance(x_val.origin, HelperCall)):
            return None
        call = x_val.origin.call
        params = [p for p in fn.params if p.star not in ("*", "**")]
        if fn.cls is not None and params and params[0].name.value in ("self", "cls"):
            params = params[1:]
        names = [p.name.value for p in params]
        if name not in names:
            return None
        a = get_arg(call, name, names.index(name))
        return a.value if a is not None else None

    # Keywords only `tf.data` steps take (NumPy arrays, lists and generators have no
    # `.batch`; other dataset libraries do not spell these).
    _TFDATA_KWARGS = {"num_parallel_calls", "drop_remainder", "deterministic", "padded_shapes", "padding_values"}

    def _batched_param(self, value: Any) -> list:
        """A parameter of the enclosing function turned, in this function, into a batched
        pipeline with a step that only `tf.data` has (`prefetch`, `padded_batch`,
        `num_parallel_calls=`, `drop_remainder=`): `def train(model, ds, bs):
        ds = ds.shuffle(n).batch(bs, drop_remainder=True); model.fit(ds, batch_size=bs)`."""
        if not (isinstance(value, Pipe) and isinstance(value.origin, ParamRef) and value.steps):
            return []
        steps = value.steps
        if not any(s.kind == "batch" for s in steps) or any(s.kind in ("unbatch", "opaque") for s in steps):
            return []
        tfdata = any(
            s.name in ("prefetch", "padded_batch")
            or any(a.keyword is not None and a.keyword.value in self._TFDATA_KWARGS for a in s.call.args)
            for s in steps
        )
        if not tfdata:
            return []
        return [Flat(True, "?", None, None, None, steps)]


class ShuffleAfterBatch(_PipelineRule):
    """
    ## What it does
    Flags `.shuffle(...)` applied to a dataset that an explicit `batch`-like step has
    already batched (`.batch(32).shuffle(1000)`), also across statements through a
    reassigned variable and through helpers. Not flagged: a shuffle after an earlier
    sample-level shuffle (`shuffle().batch().shuffle()` deliberately reorders batches), after
    `bucket_by_sequence_length` (shuffling the buckets' batches is the recommended practice),
    after `batch(1)` (batches of one sample), or after `unbatch()`; nor a pipeline that
    never reaches `fit` when the file fits another one (a preview or evaluation pipeline).

    ## Why is this bad?
    Shuffling batches reorders whole batches; the samples inside each batch never change.
    With `from_tensor_slices(x).batch(2).shuffle(4)` on 8 samples, every epoch sees the same
    four pairs ([0, 1], [2, 3], ...) in a different order, where a PyTorch
    `DataLoader(shuffle=True)` draws new batches each epoch. The gradient noise differs,
    and with sorted data (by class, by length) each batch stays one class.
    `keraslint verify` has no experiment for it yet; iterating the dataset twice shows the
    same batch compositions in both epochs.

    ## Example
    ```python
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32).shuffle(1000)
    ```

    ## Use instead
    ```python
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(1000).batch(32)
    ```
    The fix (unsafe: the order of samples changes) moves the `shuffle` right before the
    `batch`.
    """

    code = "KL503"
    name = "shuffle-after-batch"
    severity = "warning"
    fix_applicability = "unsafe"
    tokens = ("shuffle",)

    _ALLOWED_BETWEEN = {"map", "filter", "prefetch", "with_options", "ignore_errors"}

    def finish(self) -> None:
        for shuffle, batch, flat, bi, si in self.flow.analysis()["KL503"]:
            fix = move_step_fix(self.flow, shuffle, batch, True, flat.steps[bi + 1:si], self._ALLOWED_BETWEEN,
                                "move `shuffle` before `batch`")
            size = _arg_text(batch.call)
            self.report(
                shuffle.call.func.attr,
                f"`shuffle` after `{batch.name}({size})` shuffles whole batches, not samples: every epoch "
                f"sees the same groups of samples, only in another order; shuffle before batching",
                fix=fix,
            )


class CacheAfterShuffle(_PipelineRule):
    """
    ## What it does
    Flags `.cache()` placed after `.shuffle(...)` in a pipeline
    (`.shuffle(1000).cache()`), also across statements and helpers. Not flagged:
    `cache().shuffle()`, a shuffle with `reshuffle_each_iteration=False` (a fixed order is
    then intended), `shuffle().take(n).cache()` (freezing a random subset),
    `shuffle().cache()` followed by `take`/`skip`/`shard` (the cache freezes a random
    train/validation split, which must not be reshuffled), a pipeline that shuffles
    again after the cache, or a pipeline that never reaches `fit` when the file fits
    another one (validation and test pipelines are not reshuffled anyway).

    ## Why is this bad?
    `cache()` stores the elements of the first iteration and replays them afterwards, in
    the same order: the shuffle runs once, so every epoch sees the first epoch's order.
    Measured with TF 2.21: `Dataset.range(8).shuffle(8).cache()` yields `[3, 2, 7, 4, 1, 0,
    6, 5]` in each of three epochs, while `cache().shuffle(8)` yields a new order each
    epoch. A PyTorch `DataLoader(shuffle=True)` reshuffles every epoch, so the two runs see
    different sample orders from epoch 2 on. `keraslint verify` has no experiment for it
    yet; iterating the dataset twice shows the same order in both epochs.

    ## Example
    ```python
    ds = ds.map(decode).shuffle(10_000).cache().batch(32)
    ```

    ## Use instead
    ```python
    ds = ds.map(decode).cache().shuffle(10_000).batch(32)
    ```
    The fix (unsafe: the order of samples changes) moves the `shuffle` right after the
    `cache`.
    """

    code = "KL504"
    name = "cache-after-shuffle"
    severity = "warning"
    fix_applicability = "unsafe"
    tokens = ("cache",)

    _ALLOWED_BETWEEN = {"map", "filter", "with_options", "ignore_errors"}

    def finish(self) -> None:
        for cache, shuffle, flat, si, ci in self.flow.analysis()["KL504"]:
            fix = move_step_fix(self.flow, shuffle, cache, False, flat.steps[si + 1:ci], self._ALLOWED_BETWEEN,
                                "move `shuffle` after `cache`")
            what = "order and replays it"
            if any(s.kind == "batch" for s in flat.steps[si + 1:ci]):
                what = "batches (their order and their samples) and replays them"
            self.report(
                cache.call.func.attr,
                f"`cache()` after `shuffle({_arg_text(shuffle.call)})` stores the first epoch's {what} "
                f"every epoch, so later epochs are not reshuffled; cache first, then shuffle",
                fix=fix,
            )


class MissingPrefetch(_PipelineRule):
    """
    ## What it does
    Flags the `fit` call whose training dataset (a `tf.data.Dataset` of known origin) is
    given options that turn TensorFlow's automatic prefetch off
    (`options.experimental_optimization.inject_prefetch = False`, or
    `apply_default_optimizations = False`, then `ds.with_options(options)`) and has no
    `.prefetch(...)` of its own. A pipeline merely written without `.prefetch` is not
    flagged: TensorFlow injects one. Not flagged either: a last step that already runs
    ahead (`map(..., num_parallel_calls=...)`, or `map().batch()`, which the default
    optimizations fuse into one parallel `MapAndBatch`), Keras's dataset utilities and
    `make_csv_dataset` (they prefetch), datasets of unknown origin, and unbatched datasets
    (KL501's business).

    ## Why is this bad?
    By default (TF 2.21) `tf.data.Options().experimental_optimization.inject_prefetch` is
    None, which means True: when a pipeline ends in a synchronous step such as `batch`,
    TensorFlow appends a `Prefetch` when the iterator is made, so the next batch is built
    while the model trains on the current one, with or without `.prefetch` in the code.
    Turning the injection (or all default optimizations) off removes it: the pipeline then
    produces batch n+1 only when the training step asks for it, and reading, decoding and
    `map` run while the model waits. Only the speed differs, never the values, so
    `keraslint verify` runs no experiment for it.

    ## Example
    ```python
    options = tf.data.Options()
    options.experimental_optimization.inject_prefetch = False
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32).with_options(options)
    model.fit(ds, epochs=10)
    ```

    ## Use instead
    ```python
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32).with_options(options).prefetch(tf.data.AUTOTUNE)
    model.fit(ds, epochs=10)
    ```
    """

    code = "KL505"
    name = "missing-prefetch"
    severity = "info"
    fix_applicability = "safe"
    tokens = ("inject_prefetch", "apply_default_optimizations")

    def finish(self) -> None:
        for site in self.flow.fits:
            if site.method != "fit" or site.x is None:
                continue
            flats = self._known(site.x_val)
            if not flats:
                continue
            sums = [f.summary() for f in flats]
            if any(pref is not False for _, pref in sums) or any(state == "U" for state, _ in sums):
                continue
            offs = [self._turned_off(f) for f in flats]
            if any(o is None for o in offs):
                continue
            node, option = offs[0]
            self.report(
                site.x.value,
                f"`{_short(site.x.value)}` reaches `fit()` with TensorFlow's automatic prefetch turned off "
                f"(`{option} = False`, {{ctx}}) and no `.prefetch`: the next batch is prepared only after each "
                f"training step instead of during it; append `.prefetch(tf.data.AUTOTUNE)`",
                fix=self._fix(flats[0]) if len(flats) == 1 else None,
                refs={"ctx": node},
            )

    def _turned_off(self, flat: Flat) -> Optional[tuple]:
        """(assignment, option) if the pipeline's options turn the injected prefetch off and
        its last step does not already run ahead of the training step."""
        off = None
        for s in flat.steps:
            if s.name == "with_options":
                off = self.flow.prefetch_off(s) or off
        if off is None:
            return None
        steps = [s for s in flat.steps if s.name != "with_options"]
        if not steps:
            return off
        last = steps[-1]
        if last.name in ("map", "interleave") and get_arg(last.call, "num_parallel_calls") is not None:
            return None  # a parallel map/interleave runs ahead by itself
        if off[1] == "inject_prefetch" and last.kind == "batch" and len(steps) > 1 and steps[-2].name == "map":
            return None  # the default map_and_batch fusion runs ahead (MapAndBatch is asynchronous)
        return off

    def _fix(self, flat: Flat) -> Optional[Fix]:
        src = flat.source
        tail = flat.steps[-1].call if flat.steps else getattr(src, "node", None)
        if not isinstance(tail, cst.Call):
            return None
        sp = flat.steps[-1].autotune if flat.steps else self.flow.autotune.get(id(tail))
        spelled, extra = self._autotune(sp)
        return Fix.safe(Replace(tail, append_step(tail, "prefetch", spelled)), *extra,
                        description=f"append `.prefetch({spelled})`")
