"""The ``tf.data`` value flow of one module, built during the engine's single traversal.

For every name (in each function, and at module level) it knows the pipelines the name may
hold: where each one came from (a source call such as ``from_tensor_slices``, a Keras
dataset utility, ``Dataset.zip``, a helper function or method of the file, a function of
another project module, a parameter) and its chain of steps (``map``, ``batch``,
``shuffle``, ``cache``, ``prefetch``, ``with_options`` ...). It follows a dataset through
assignments and reassignments, method chains across lines, tuple unpacking, both arms of
an ``if`` and loop bodies (may-hold sets: a name assigned in a branch may still hold its
value from before it, unless both arms of an ``if``/``else`` assign it; one arm never sees
the other's), and helpers of the same file wherever they are defined (their
parameters bound to the caller's arguments when a question is asked). Iteration that
only inspects a dataset (``for x in ds.take(1): print(x)``) does not change ``ds``.

The Context owns it (``ctx.datasets``) and drives it with its own ``visit_*``/``leave_*``
hooks. It exists in a file whose rules query it (they ask for it in their constructor,
before the traversal) and in a file that may hold a dataset (it mentions one, or imports a
project function returning one), where ``Context.is_dataset`` needs it whichever rules
run; other files pay nothing. Questions:

* ``holds_pipeline(expr)``: is ``expr``, here, a ``tf.data`` pipeline on every path
  (``Context.is_dataset`` asks it first);
* after the traversal: ``fit_sites()`` (every ``fit``/``evaluate``/``predict`` and the
  values given to it), ``known(value)`` / ``flats(value)`` (a value's alternatives, each
  an origin and a linear list of steps, with its batch and prefetch state),
  ``shuffle_after_batch()``, ``cache_after_shuffle()``, ``prefetch_off(step)``,
  ``helper_argument(fn, name, value)``, ``batched_parameter(value)``, ``chain(call)`` and
  ``autotune_at(call)`` (where a step's method chain is written and how ``AUTOTUNE`` is
  spelled there, for fixes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

import libcst as cst

from keraslint.semantics import get_arg, literal_value, target_names

# ---------------------------------------------------------------------------
# What the analysis knows about tf.data (the one table of dataset sources and methods)
# ---------------------------------------------------------------------------

# Dataset methods (each returns a dataset; DATASET_METHODS is all of them), by what they
# do to the elements.
# Steps that batch (the dataset's elements become batches).
BATCH_METHODS = {"batch", "padded_batch", "ragged_batch", "sparse_batch", "bucket_by_sequence_length", "rebatch",
                 "dense_to_ragged_batch"}
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
    "map_with_legacy_function", "filter_with_legacy_function", "assert_cardinality", "scan", "prefetch_to_device",
}
DATASET_METHODS = BATCH_METHODS | OPAQUE_METHODS | KEEP_METHODS | {"unbatch"}

_FIT_METHODS = ("fit", "evaluate", "predict")

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
# Every call known to create a dataset (canonical names).
DATASET_SOURCES = (set(_TF_SOURCES) | _ZIP | _MIX | {_TFDS_LOAD}
                   | {m + name for m in _KERAS_UTIL_MODULES for name in KERAS_DATASET_UTILS})
# Sources of scalar indices: a `map` on them builds the real elements (maybe whole batches).
_INDEX_SOURCES = {"range", "counter", "random"}
_DATASET_TYPES = {"tensorflow.data.Dataset", "tensorflow.data.DatasetV2"}
# Calls of these libraries are never a project's own dataset functions.
LIBRARY_PREFIXES = ("tensorflow.", "keras.", "numpy.", "torch.", "jax.", "pandas.", "sklearn.", "tensorflow_datasets.")
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
# The flow (one per file, owned by the Context)
# ---------------------------------------------------------------------------


class PipelineFlow:
    """The ``tf.data`` pipelines of one module (see the module docstring). The Context
    calls the ``visit_*``/``leave_*`` methods during its traversal; rules ask the
    questions at the end of this class."""

    def __init__(self, ctx) -> None:
        self.ctx = ctx
        # id(FunctionInfo) -> {name: [(value, branch path of the binding)]}: every binding
        # that may still reach a later read (see _bind and _may_hold)
        self.envs: dict = {}
        self.module_env: dict = {}
        self.module_bindings: dict = {}  # name -> every value the module binds to it
        self.memo: dict = {}  # id(expr) -> value
        self.returns: dict = {}  # id(FunctionInfo) -> [value]
        self.helpers: dict = {}  # key -> [FunctionInfo]
        self.chains: dict = {}  # id(call) -> ChainInfo
        self.pipes: list = []  # every Pipe built by a chain (for KL503/KL504)
        self.fits: list = []
        self.autotune: dict = {}  # id(source call) -> spelling of tf.data.AUTOTUNE there
        self.options_off: dict = {}  # (id(function) or 0, name) -> (assignment, option) turning prefetch injection off
        self._flat_cache: dict = {}
        self._trained: Any = False  # ids of the steps of the training pipelines (see _training_steps)
        self._found: dict = {}
        self._budget = _MAX_WORK

    # -- traversal (the Context's hooks call these, once per node) -----------------
    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        fi = self.ctx.function
        if fi is None or fi.node is not node:
            return
        key = ("func", fi.name) if fi.cls is None else ("method", fi.cls.name, fi.name)
        self.helpers.setdefault(key, []).append(fi)

    def visit_Return(self, node: cst.Return) -> None:
        if node.value is None:
            return
        fi = self.ctx.function
        if fi is not None:
            self.returns.setdefault(id(fi), []).append(self.evaluate(node.value))

    def leave_Assign(self, node: cst.Assign) -> None:
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
        if type(target) is not cst.Attribute:
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

    def leave_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self._bind(node.target, self.evaluate(node.value))

    def visit_For(self, node: cst.For) -> None:
        # The loop variable is bound; the iterated dataset is not changed by the loop
        # (`for x in ds.take(1): print(x)` only inspects it).
        self._bind(node.target, OPAQUE)

    def visit_WithItem(self, node: cst.WithItem) -> None:
        if node.asname is not None:
            self._bind(node.asname.name, OPAQUE)

    def visit_comprehension(self, node: Any) -> None:
        # A comprehension variable shadows any dataset of that name (conservatively
        # also after the comprehension). Bound before the element is visited.
        comp = node.for_in
        while comp is not None:
            self._bind(comp.target, OPAQUE)
            comp = comp.inner_for_in

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        stack = ctx.stack
        func = node.func
        if type(func) is not cst.Attribute:
            return  # (neither a fit nor a dataset step)
        if func.attr.value in _FIT_METHODS:
            self._fit_site(node, func.attr.value)
        if func.attr.value not in DATASET_METHODS:
            return
        # Is this the outermost dataset step of a method chain? (The chain's other
        # steps are evaluated with it.)
        if (len(stack) >= 3 and isinstance(stack[-2], cst.Attribute) and stack[-2].value is node
                and isinstance(stack[-3], cst.Call) and stack[-3].func is stack[-2]
                and stack[-2].attr.value in DATASET_METHODS and not node.lpar):
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
        env = self.envs.get(id(fi))
        if env is None:
            env = self.envs[id(fi)] = {}
        return env

    def _branch_path(self, enclosing: bool = False) -> tuple:
        """Where the node being visited (with ``enclosing``: the statement around it) sits
        in the branches of its function: ``((id(node), arm), ...)`` from the function body
        down. The arms of an ``if`` ("body", "else") and the cases of a ``match`` exclude
        each other; a loop body ("loop") may run or not; every part of a ``try`` may see
        what the body bound (``("try", id(part))``)."""
        stack = self.ctx.stack
        size = len(stack)
        path: list = []
        for i in range(size - 2 if enclosing else size - 1, -1, -1):
            n = stack[i]
            t = type(n)
            if t is cst.FunctionDef or t is cst.Lambda:
                break
            if t is cst.If:
                child = stack[i + 1] if i + 1 < size else None
                path.append((id(n), "body" if child is n.body else ("else" if child is n.orelse else "test")))
            elif t is cst.For or t is cst.While:
                path.append((id(n), "loop"))
            elif t is cst.Try or t is cst.TryStar:
                path.append((id(n), ("try", id(stack[i + 1]) if i + 1 < size else 0)))
            elif t is cst.Match:
                path.append((id(n), id(stack[i + 1]) if i + 1 < size else 0))
        path.reverse()
        return tuple(path)

    def _bind(self, target: Any, value: Any) -> None:
        env = self._env()
        if type(target) is cst.Name:
            # may-hold sets: this binding replaces the earlier ones made in the same region
            # or in branches nested in it; one made before the branch it is in, or in a
            # sibling arm, stays possible (the branch may not run, the other arm may)
            path = self._branch_path()
            entries = env.get(target.value)
            if entries is None:
                env[target.value] = [(value, path)]
            else:
                n = len(path)
                entries[:] = [e for e in entries if e[1][:n] != path]
                if len(entries) >= _MAX_ALTS:
                    # (a name bound in many branches, `i` of many loops: what it held
                    # before this binding is unknown)
                    entries[:] = [(OPAQUE, ())] if path else []
                entries.append((value, path))
            if env is self.module_env:
                self.module_bindings.setdefault(target.value, []).append(value)
            return
        if type(target) is not cst.Tuple and type(target) is not cst.List:
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

    def leave_If(self, node: cst.If) -> None:
        """Both arms of an ``if``/``else`` bound a name: what it held before is gone, and
        the arms' values hold for the rest of the region the ``if`` is in."""
        if node.orelse is None:
            return
        env = self._env()
        here = self._branch_path(enclosing=True)
        n = len(here)
        arms = (here + ((id(node), "body"),), here + ((id(node), "else"),))
        for entries in env.values():
            if not any(e[1] == arms[0] for e in entries) or not any(e[1] == arms[1] for e in entries):
                continue
            first = next(i for i, e in enumerate(entries) if e[1][:n + 1] in arms)
            entries[:] = [(v, here if p in arms else p) for i, (v, p) in enumerate(entries)
                          if i >= first or p[:n] != here]

    def _may_hold(self, entries: list) -> Any:
        """The value a name holds here, from its bindings so far: the latest one on the way
        here (with the arms of an if/else that both bound it), and the ones made after it in
        branches that may have run (an earlier `if` arm, a loop body, a `try`). None when no
        binding reaches here (bound only in the other arm)."""
        if len(entries) == 1 and not entries[0][1]:
            return entries[0][0]  # one straight-line binding
        here = self._branch_path()
        start = 0
        for i in range(len(entries) - 1, -1, -1):
            p = entries[i][1]
            if here[:len(p)] == p:
                start = next(j for j, e in enumerate(entries) if e[1] == p)
                break
        arms = dict(here)
        values = [v for v, p in entries[start:] if _reaches(p, arms)]
        if not values:
            return None
        return values[0] if len(values) == 1 else Pipe(Combine("choice", values))

    def _lookup(self, name: str) -> Any:
        fi = self.ctx.function
        while fi is not None:
            env = self.envs.get(id(fi))
            value = self._may_hold(env[name]) if env is not None and name in env else None
            if value is not None:
                return value
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
            return self._may_hold(self.module_env[name]) or OPAQUE
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
        t = type(expr)  # (exact types: isinstance() against libcst's ABCs is slow)
        if t is cst.Name:
            return self._lookup(expr.value)
        if t is cst.Tuple or t is cst.List:
            if any(isinstance(e, cst.StarredElement) for e in expr.elements):
                return OPAQUE
            return TupleVal(tuple(self.evaluate(e.value) for e in expr.elements))
        if t is cst.IfExp:
            return Pipe(Combine("choice", [self.evaluate(expr.body), self.evaluate(expr.orelse)], expr))
        if t is cst.NamedExpr:
            return self.evaluate(expr.value)
        if t is not cst.Call:
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
        """The value of a call of the imported ``q``: a source of datasets, or OPAQUE."""
        value = self._source_value(q, call)
        if value is not OPAQUE:
            self.autotune[id(call)] = self.ctx.spelling("tensorflow.data.AUTOTUNE")
        return value

    def _source_value(self, q: str, call: cst.Call) -> Any:
        short = q.rsplit(".", 1)[-1]
        if not q.startswith(LIBRARY_PREFIXES):
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

    # -- the questions (during the traversal) -------------------------------------
    def holds_pipeline(self, expr: Any) -> bool:
        """Is ``expr``, at the node being visited, a ``tf.data`` pipeline on every path the
        traversal has seen so far (a name bound to one in every arm, a chain on one, a
        helper of this file or a project function returning one)? ``False`` also means
        "not known": ``Context.is_dataset`` then keeps its own answer."""
        value = self.evaluate(expr)
        if not isinstance(value, Pipe) or isinstance(value.origin, Opaque):
            return False
        # (not flats(): helpers defined further down are not known yet, and the answer
        # after the traversal must not be the one cached now)
        flats = self.flatten(value)
        return bool(flats) and all(f.tfdata for f in flats)

    # -- the questions (after the traversal) ----------------------------------------
    def fit_sites(self) -> list:
        """Every ``fit``/``evaluate``/``predict`` call of the file (:class:`FitSite`), with
        the values given as ``x`` and ``validation_data``, in file order."""
        return self.fits

    def flats(self, value: Any) -> list:
        """The alternatives ``value`` may be (:class:`Flat`: an origin and the linear list
        of its steps); ``NOT_DS`` for one not known to be a dataset."""
        key = id(value)
        r = self._flat_cache.get(key)
        if r is None:
            r = self.flatten(value)
            self._flat_cache[key] = r
        return r

    def known(self, value: Any) -> list:
        """The alternatives of ``value`` if every one is a ``tf.data`` dataset, else []."""
        if value is None:
            return []
        flats = self.flats(value)
        if not flats or not all(f.tfdata for f in flats):
            return []
        return flats

    def chain(self, call: cst.Call) -> Optional[ChainInfo]:
        """Where the method chain holding the step ``call`` is written."""
        return self.chains.get(id(call))

    def autotune_at(self, call: cst.Call) -> Optional[str]:
        """How ``tf.data.AUTOTUNE`` is spelled where the source ``call`` is (None: it is not)."""
        return self.autotune.get(id(call))

    def prefetch_off(self, step: Step) -> Optional[tuple]:
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

    def helper_argument(self, fn: Any, name: str, value: Any) -> Any:
        """The expression passed for parameter ``name`` of helper ``fn`` where ``value`` is
        that helper's result (``valid_ds = build_dataset(..., batch_size=B)``), or None."""
        if not (isinstance(value, Pipe) and isinstance(value.origin, HelperCall)):
            return None
        call = value.origin.call
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

    def batched_parameter(self, value: Any) -> list:
        """A parameter of the enclosing function turned, in this function, into a batched
        pipeline with a step that only `tf.data` has (`prefetch`, `padded_batch`,
        `num_parallel_calls=`, `drop_remainder=`): `def train(model, ds, bs):
        ds = ds.shuffle(n).batch(bs, drop_remainder=True); model.fit(ds, batch_size=bs)`.
        [its one alternative, of unknown origin] or []."""
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

    def shuffle_after_batch(self) -> list:
        """[(shuffle step, batch step, flat, batch index, shuffle index)] where a shuffle
        sees batches made by an explicit batch step, and no shuffle came before that batch,
        in a pipeline that may be trained on."""
        return self._trained_only("shuffle", self._shuffle_after_batch)

    def cache_after_shuffle(self) -> list:
        """[(cache step, shuffle step, flat, shuffle index, cache index)] where a cache
        stores a reshuffling shuffle's output (see ``_cache_after_shuffle``), in a pipeline
        that may be trained on."""
        return self._trained_only("cache", self._cache_after_shuffle)

    def _trained_only(self, key: str, find: Any) -> list:
        hits = self._found.get(key)
        if hits is None:
            if self._trained is False:
                self._trained = self._training_steps()
            hits = find()
            if self._trained is not None:
                # Only the order of what `fit` trains on matters: a pipeline made for
                # plotting, `evaluate` or `predict` may shuffle or cache as it likes.
                hits = [hit for hit in hits if id(hit[0]) in self._trained]
            self._found[key] = hits
        return hits

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


def _reaches(path: tuple, here: dict) -> bool:
    """Can a binding made at branch ``path`` reach a read at ``here`` ({id(branch): arm})?
    Not from the other arm of an ``if`` or another ``match`` case that the read is in."""
    for node, arm in path:
        other = here.get(node)
        if other is not None and other != arm and (arm == "body" or arm == "else" or type(arm) is int):
            return False
    return True


def _batch_of_one(call: cst.Call) -> bool:
    a = get_arg(call, "batch_size", 0)
    return a is not None and literal_value(a.value) == 1


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

