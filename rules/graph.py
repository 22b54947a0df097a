"""KL3: graph mode — custom layers, train steps, ``tf.function``, ``Dataset.map``.

Code in a graph-context function runs twice in two different worlds: once eagerly (a
quick test in a notebook, ``model(x)``) and once traced into a graph by ``fit``/``predict``
/``tf.function``/``Dataset.map``. Everything here works in the first world and breaks or
silently freezes in the second.
"""

from __future__ import annotations

from typing import Iterator, Optional

import libcst as cst

from keraslint import tensors
from keraslint.names import canonical, keras_flavor
from keraslint.rule import AddImport, Fix, Replace, Report, Rule
from keraslint.semantics import NOT_LITERAL, dotted, get_arg, literal_value, target_names


def _short(node) -> str:
    """Source-like text of a small expression, for messages."""
    try:
        text = cst.Module([]).code_for_node(node)
    except Exception:  # noqa: BLE001
        return "expression"
    text = " ".join(text.split())
    return text if len(text) <= 40 else text[:37] + "..."




# NumPy functions whose `keras.ops` / TensorFlow replacement gives bit-identical float32
# results (measured in tests/test_graph_rules.py on normal values, ±0, ±inf and NaN; on
# subnormals TF's CPU kernels flush to zero, as they do in every TF op).
# name -> (keras.ops name, tf name or None, max positional args,
#          {numpy keyword: keras.ops keyword}, {numpy keyword: tf keyword}, min positional for tf)
_SAFE_FIXES = {
    "abs": ("abs", "abs", 1, {}, {}),
    "absolute": ("absolute", "abs", 1, {}, {}),
    "negative": ("negative", "negative", 1, {}, {}),
    "square": ("square", "square", 1, {}, {}),
    "sqrt": ("sqrt", "sqrt", 1, {}, {}),
    "floor": ("floor", "floor", 1, {}, {}),
    "ceil": ("ceil", "math.ceil", 1, {}, {}),
    "sign": ("sign", "sign", 1, {}, {}),
    "round": ("round", "round", 1, {}, {}),
    "isnan": ("isnan", "math.is_nan", 1, {}, {}),
    "isinf": ("isinf", "math.is_inf", 1, {}, {}),
    "isfinite": ("isfinite", "math.is_finite", 1, {}, {}),
    "maximum": ("maximum", "maximum", 2, {}, {}),
    "minimum": ("minimum", "minimum", 2, {}, {}),
    "where": ("where", "where", 3, {}, {}),
    "clip": ("clip", "clip_by_value", 3, {"a_min": "x_min", "a_max": "x_max"},
             {"a_min": "clip_value_min", "a_max": "clip_value_max"}),
    "max": ("max", "reduce_max", 2, {"axis": "axis", "keepdims": "keepdims"},
            {"axis": "axis", "keepdims": "keepdims"}),
    "amax": ("amax", "reduce_max", 2, {"axis": "axis", "keepdims": "keepdims"},
             {"axis": "axis", "keepdims": "keepdims"}),
    "min": ("min", "reduce_min", 2, {"axis": "axis", "keepdims": "keepdims"},
            {"axis": "axis", "keepdims": "keepdims"}),
    "amin": ("amin", "reduce_min", 2, {"axis": "axis", "keepdims": "keepdims"},
             {"axis": "axis", "keepdims": "keepdims"}),
    "reshape": ("reshape", "reshape", 2, {"shape": "newshape", "newshape": "newshape"},
                {"shape": "shape", "newshape": "shape"}),
    "transpose": ("transpose", "transpose", 2, {"axes": "axes"}, {"axes": "perm"}),
    "expand_dims": ("expand_dims", "expand_dims", 2, {"axis": "axis"}, {"axis": "axis"}),
    "squeeze": ("squeeze", "squeeze", 2, {"axis": "axis"}, {"axis": "axis"}),
    "concatenate": ("concatenate", "concat", 2, {"axis": "axis"}, {"axis": "axis"}),
    "stack": ("stack", "stack", 2, {"axis": "axis"}, {"axis": "axis"}),
}


class NumpyInGraph(Rule):
    """
    ## What it does
    Flags a NumPy function applied to a tensor inside a graph-context function: `call`
    of a custom layer or model, `train_step`/`test_step`/`predict_step`/`compute_loss`,
    a `@tf.function`, a loss or metric given to `compile`, or a function given to
    `Dataset.map`/`filter` or `layers.Lambda`. NumPy on shapes, dtypes and constants
    (`np.sqrt(self.units)`, `np.prod(x.shape[1:])`, `np.pi`) is fine and not flagged.

    ## Why is this bad?
    NumPy needs concrete values. Eagerly (`layer(x)` in a notebook) a tensor converts to an
    array and the call works, so the eager result looks right. Under `model.fit`,
    `predict` or `tf.function` the tensor is symbolic: the conversion raises
    (`NotImplementedError: Cannot convert a symbolic tf.Tensor to a numpy array`) or, for
    values captured at trace time, the result is frozen into the graph as a constant.
    Either way the NumPy op is invisible to autodiff, so every variable upstream of it
    gets no gradient. `keraslint verify` measures it as `eager-vs-compiled`: the max
    absolute difference between eager and compiled outputs (or the failure on one side),
    plus the number of trainable variables left without a gradient.

    The safe fix rewrites only functions whose replacement gives bit-identical float32
    results (measured against NumPy on the TensorFlow backend): `abs`, `negative`,
    `square`, `sqrt`, `floor`, `ceil`, `sign`, `round`, `maximum`, `minimum`, `clip`,
    `where` (3 arguments), `max`/`min`, `reshape`, `transpose`, `expand_dims`,
    `squeeze`, `concatenate`, `stack`, `isnan`/`isinf`/`isfinite`, spelled the way the file
    imports `keras.ops` (or `tf.*` in TensorFlow files without Keras 3). Transcendental
    functions (`exp`, `log`, `sin`, `tanh`: 1 ulp apart on 10–23% of inputs) and sums
    and means (summation order) get no fix.

    ## Example
    ```python
    class Scale(keras.layers.Layer):
        def call(self, x):
            return np.sqrt(x) * 2.0
    ```

    ## Use instead
    ```python
    class Scale(keras.layers.Layer):
        def call(self, x):
            return keras.ops.sqrt(x) * 2.0
    ```
    """

    code = "KL301"
    name = "numpy-in-graph"
    severity = "error"
    fix_applicability = "safe"
    tokens = ("numpy",)

    def visit_Call(self, node: cst.Call) -> None:
        fn = self.ctx.function
        if fn is None or not fn.tainted:
            return
        q = self.ctx.resolve(node.func)
        if q is None or not q.startswith("numpy.") or q.startswith("numpy.random."):
            return
        tainted = next((a.value for a in node.args if self.ctx.is_tainted(a.value)), None)
        if tainted is None or tensors.eager_backend_branch(self.ctx):
            return
        short = q.replace("numpy.", "np.", 1)
        fix = self._fix(node, q)
        self.report_in_graph(
            node,
            f"`{short}` on tensor `{_short(tainted)}` inside {{where}}: NumPy only works eagerly; under "
            f"`fit`/`predict`/`tf.function` it fails or freezes the value, and it cuts the gradient "
            f"(use `keras.ops`/`tf.math`)",
            fix=fix,
        )

    # -- the safe fix ------------------------------------------------------------
    def _free(self, name: str) -> bool:
        ctx = self.ctx
        if name in ctx.imports or name in ctx.module_assigned or name in ctx.functions or name in ctx.classes:
            return False
        fn = ctx.function
        while fn is not None:
            if name in fn.locals:
                return False
            fn = fn.parent
        return True

    def _namespace(self):
        """(prefix, kind, import edit) for the replacement: the file's own spelling of
        `keras.ops` in Keras 3 files, of `tensorflow` in TF files without Keras 3."""
        ctx = self.ctx
        keras3 = any(keras_flavor(full) == "keras" for full in ctx.imports.values())
        if keras3:
            mod = None
            for local, full in ctx.imports.items():
                if canonical(full) == "keras.ops" and self._unshadowed(local):
                    return local, "ops", None
                if full in ("keras", "keras.src") and self._unshadowed(local):
                    mod = mod or f"{local}.ops"
            if mod is not None:
                return mod, "ops", None
            if self._free("ops"):
                return "ops", "ops", AddImport("keras", "ops")
            return None
        if ctx.uses_tensorflow():
            for local, full in ctx.imports.items():
                if full == "tensorflow" and self._unshadowed(local):
                    return local, "tf", None
        return None

    def _unshadowed(self, local: str) -> bool:
        fn = self.ctx.function
        while fn is not None:
            if local in fn.locals:
                return False
            fn = fn.parent
        return True

    def _fix(self, node: cst.Call, q: str):
        entry = _SAFE_FIXES.get(q[len("numpy."):])
        if entry is None:
            return None
        ops_name, tf_name, max_pos, kw_ops, kw_tf = entry
        if any(a.star for a in node.args):
            return None
        pos = [a for a in node.args if a.keyword is None]
        kws = [a for a in node.args if a.keyword is not None]
        if len(pos) > max_pos or (q == "numpy.where" and len(pos) != 3):
            return None
        ns = self._namespace()
        if ns is None:
            return None
        prefix, kind, imp = ns
        fname, kwmap = (ops_name, kw_ops) if kind == "ops" else (tf_name, kw_tf)
        if fname is None or any(a.keyword.value not in kwmap for a in kws):
            return None
        if kind == "tf" and fname == "concat" and len(pos) < 2 and not kws:
            return None  # tf.concat has no default axis
        edits = [Replace(node.func, cst.parse_expression(f"{prefix}.{fname}"))]
        for a in kws:
            new = kwmap[a.keyword.value]
            if new != a.keyword.value:
                edits.append(Replace(a.keyword, cst.Name(new)))
        if imp is not None:
            edits.append(imp)
        return Fix.safe(*edits, description=f"use `{prefix}.{fname}` (bit-identical results)")


# ---------------------------------------------------------------------------
# helpers shared by the KL3 rules
# ---------------------------------------------------------------------------

def _tf1_shim(fn_node) -> bool:
    """A method decorated with ``tf.compat.v1.keras.utils.track_tf1_style_variables``: TF1
    code (``tf.Variable``/``get_variable`` in ``call``) kept on purpose under the shim that
    tracks it (the TF migration guides)."""
    for dec in getattr(fn_node, "decorators", ()):
        d = dec.decorator.func if isinstance(dec.decorator, cst.Call) else dec.decorator
        name = dotted(d) or ""
        if name.rsplit(".", 1)[-1] == "track_tf1_style_variables":
            return True
    return False



def _autograph(fi, ctx=None) -> bool:
    """Is this graph function converted by AutoGraph? ``tf.function`` and ``Dataset.map``/
    ``filter`` convert Python control flow on tensors into ``tf.cond``/``tf.while_loop``.
    Keras 3 does not: its TF trainer wraps the step in
    ``tf.autograph.experimental.do_not_convert``, and Keras code (``Layer.__call__``) is
    never converted, so a layer's ``call``, a ``train_step``, a ``compile`` loss or a
    ``layers.Lambda`` function run as plain Python on symbolic tensors. A method that is
    itself decorated with ``@tf.function`` is converted when its own trace runs, even
    under ``fit``/``predict`` (measured: an ``if`` on a tensor in such a ``call`` works)."""
    o = tensors.origin(fi)
    if ctx is not None and isinstance(o.node, cst.FunctionDef):
        for dec in o.node.decorators:
            d = dec.decorator.func if isinstance(dec.decorator, cst.Call) else dec.decorator
            if ctx.resolve(d) in ("tensorflow.function", "tensorflow.compat.v1.function",
                                  "tensorflow.compat.v2.function"):
                return True
    if o.cls is not None and o.cls.kind is not None:
        return False
    reason = fi.graph or ""
    return "tf.function" in reason or "`Dataset." in reason


def _in_shape_method(fi) -> bool:
    """``build``/``compute_output_shape`` run once, eagerly or symbolically, outside the
    traced step: trace-time effects there are the intended one-off set-up."""
    o = tensors.origin(fi)
    return o.cls is not None and o.name in ("build", "compute_output_shape")


def _in_layer_call(fi) -> bool:
    o = tensors.origin(fi)
    return o.cls is not None and o.cls.kind == "layer" and o.name == "call"


def _builtin(ctx, func, names) -> Optional[str]:
    """``func`` is a bare builtin name among ``names`` (not imported, not a local)."""
    if not isinstance(func, cst.Name) or func.value not in names:
        return None
    if func.value in ctx.imports:
        return None
    fn = ctx.function
    while fn is not None:
        if func.value in fn.locals:
            return None
        fn = fn.parent
    if func.value in ctx.module_assigned or func.value in ctx.functions or func.value in ctx.classes:
        return None
    return func.value



def _adopt_helper_reports(rule, calls: list, skip=(), only=None) -> None:
    """Keep the reports made in a helper that a graph function calls (a module function
    or a method of the same class, a few levels deep), worded as "inside `helper`
    (called from <graph reason>)". Not followed: calls from `build`/`compute_output_shape`
    and into `build`/`_build*` (lazy set-up, once by design)."""
    if not calls:
        return
    ctx = rule.ctx
    ctx.finish()  # completes graph marks made below a definition; idempotent
    traced: dict = {}  # id(helper FunctionInfo) -> (helper, graph function it is traced from)
    for _ in range(4):
        grew = False
        for caller, key in calls:
            if caller.eager:
                continue
            if caller.is_graph:
                if _in_shape_method(caller):
                    continue
                root = caller
            elif id(caller) in traced:
                root = traced[id(caller)][1]
            else:
                continue
            if key[-1] == "build" or key[-1].startswith("_build"):
                continue
            for callee in tensors.helper_callees(ctx, key):
                if callee.graph is not None or callee.eager or id(callee) in traced or callee is caller:
                    continue
                traced[id(callee)] = (callee, root)
                grew = True
        if not grew:
            break
    if not traced:
        return
    for rep in rule.reports:
        scope = rep.scope
        if scope is None or scope.is_graph or id(scope) not in traced or id(rep.node) in skip:
            continue
        if only is not None and id(rep.node) not in only:
            continue
        helper, root = traced[id(scope)]
        rep.message = rep.message.replace("{where}", f"`{helper.name}` (called from {{where}})")
        rep.scope = root



# ---------------------------------------------------------------------------
# KL302
# ---------------------------------------------------------------------------


class TensorToPythonInGraph(Rule):
    """
    ## What it does
    Flags `.numpy()`, `.item()`, `float(t)`, `int(t)` and `bool(t)` applied to a tensor
    inside a graph-context function (`call` of a custom layer, `train_step`, a
    `@tf.function`, a loss given to `compile`, a function given to `Dataset.map`).
    Static values are fine and not flagged: `int(x.shape[-1])`, `float(self.rate)`,
    `len(x.shape)`.

    ## Why is this bad?
    A traced tensor has no value yet. Eagerly (`layer(x)` in a notebook) `float(t)` and
    `t.numpy()` work, so the code looks right; under `model.fit`, `predict` or
    `tf.function` the same line raises: `t.numpy()` an `AttributeError`
    (`'SymbolicTensor' object has no attribute 'numpy'`), `float(t)` a `TypeError`,
    `bool(t)` an `OperatorNotAllowedInGraphError`. AutoGraph does not convert these
    calls, so `tf.function` fails the same way (measured with Keras 3.15 / TF 2.21).
    Where a value is captured anyway (a Python number computed before tracing) it is
    frozen into the graph and the gradient through it is zero. `keraslint verify`
    measures it as `eager-vs-compiled`: the failure on the compiled side, or the max
    absolute difference between eager and compiled outputs.

    ## Example
    ```python
    class Normalize(keras.layers.Layer):
        def call(self, x):
            scale = float(keras.ops.max(x))
            return x / scale
    ```

    ## Use instead
    ```python
    class Normalize(keras.layers.Layer):
        def call(self, x):
            return x / keras.ops.max(x)
    ```
    """

    code = "KL302"
    name = "tensor-to-python-in-graph"
    severity = "error"
    fix_applicability = None
    tokens = ("numpy", "item", "float", "int", "bool")

    _CONVERSIONS = {"float": "TypeError", "int": "TypeError", "bool": "OperatorNotAllowedInGraphError"}

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self._calls = tensors.helper_calls(ctx).calls  # read in finish
        self._numpy_calls: set = set()  # id(node) of `.numpy()` reports

    def finish(self) -> None:
        # `.numpy()` in a helper that `call`/`train_step` calls fails there too (NumPy
        # arrays have no `.numpy()`, so the receiver is a tensor or variable). `.item()`
        # and `float()`/`int()` are not followed: helpers take Python numbers as often.
        _adopt_helper_reports(self, self._calls, only=self._numpy_calls)

    def visit_Call(self, node: cst.Call) -> None:
        fn = self.ctx.function
        if fn is None or not fn.tainted:
            return
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value in ("numpy", "item") and not node.args:
            if self.ctx.is_tainted(func.value) and not tensors.eager_backend_branch(self.ctx):
                if func.attr.value == "numpy":
                    self._numpy_calls.add(id(node))
                self.report_in_graph(
                    node,
                    f"`{_short(node)}` inside {{where}}: a traced tensor has no value, so under "
                    f"`fit`/`predict`/`tf.function` this raises AttributeError (it only works eagerly); "
                    f"keep it a tensor",
                )
            return
        conv = _builtin(self.ctx, func, self._CONVERSIONS)
        if conv is None or len(node.args) != 1 or node.args[0].keyword is not None or node.args[0].star:
            return
        arg = node.args[0].value
        ctx = self.ctx
        if (tensors.tensor_value(ctx, arg) or tensors.tensor_param(ctx, arg)) and not tensors.eager_backend_branch(ctx):
            self.report_in_graph(
                node,
                f"`{_short(node)}` converts a tensor to a Python {conv} inside {{where}}: under "
                f"`fit`/`predict`/`tf.function` this raises {self._CONVERSIONS[conv]} (it only works "
                f"eagerly); keep it a tensor (`keras.ops.cast`)",
            )


# ---------------------------------------------------------------------------
# KL303
# ---------------------------------------------------------------------------



class PythonBranchOnTensor(Rule):
    """
    ## What it does
    Flags Python control flow on a tensor's *value* inside a graph-context function:
    `if`, `while`, `assert`, a conditional expression (`a if t else b`), and `and`, `or`
    or `not` with a tensor operand. Tests on static things are fine and not flagged:
    `if mask is None`, `if training:`, `if x.shape[-1] == 3`, `if len(x.shape) == 4`,
    `isinstance(...)`.

    The tensor may come from the inputs, from `tf.random`/`keras.random` inside the
    function, from a helper that returns one (`if self.random_apply(p):`), or from `self`
    (`self.noise = tf.random.normal(...)` in `build`). `if self.bias:` on a Keras weight is
    flagged too: a Keras 3 variable has no truth value (TypeError even eagerly).

    In functions that AutoGraph converts (`@tf.function`, functions given to
    `Dataset.map`/`filter`) only `assert` is flagged: AutoGraph turns `if`/`while`/
    ternaries/`and`/`or` on tensors into `tf.cond`/`tf.while_loop`, but not `assert`.

    ## Why is this bad?
    Python needs a `bool`, and a traced tensor has none. Eagerly (`layer(x)`) the branch
    works and picks a side per call, so tests pass. Keras 3 does not run AutoGraph on
    layers: the TensorFlow trainer wraps its step in `do_not_convert`, so under
    `model.fit`/`predict` the same `if` raises `OperatorNotAllowedInGraphError: Using a
    symbolic tf.Tensor as a Python bool is not allowed` (measured with Keras 3.15 /
    TF 2.21 for `if`, `while`, `assert`, ternaries and `and`/`or` in `call`, in
    `layers.Lambda` functions and in losses given to `compile`; JAX fails likewise with a
    concretization error). Under `@tf.function` an `assert` on a tensor raises the same
    error. `keraslint verify` measures it as `eager-vs-compiled`: the failure on the
    compiled side.

    ## Example
    ```python
    class Gate(keras.layers.Layer):
        def call(self, x):
            if keras.ops.sum(x) > 0:
                return x
            return -x
    ```

    ## Use instead
    ```python
    class Gate(keras.layers.Layer):
        def call(self, x):
            return keras.ops.where(keras.ops.sum(x) > 0, x, -x)
    ```
    """

    code = "KL303"
    name = "python-branch-on-tensor"
    severity = "error"
    fix_applicability = None
    tokens = None

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self._pending: list = []
        self._deferred: list = []  # (fn, leaf, what, is_assert, operand keys) decided in finish
        self._attrs = tensors.attributes(ctx)  # `self.<attr>` set to a tensor / Keras variable

    # -- which expressions have their truth value taken -------------------------
    def _truth_leaves(self, expr) -> Iterator:
        """Sub-expressions whose ``bool()`` Python evaluates when ``expr`` is tested."""
        t = type(expr)
        if t is cst.BooleanOperation:
            yield from self._truth_leaves(expr.left)
            yield from self._truth_leaves(expr.right)
        elif t is cst.UnaryOperation and isinstance(expr.operator, cst.Not):
            yield from self._truth_leaves(expr.expression)
        else:
            yield expr

    def _tensor_valued(self, expr) -> bool:
        # `x is None`, `"k" in inputs`, `tree.is_nested(x)`, `if flag:`: Python booleans.
        return tensors.tensor_value(self.ctx, expr) and not tensors.eager_backend_branch(self.ctx)

    def _check(self, test, what: str, is_assert: bool = False) -> None:
        fn = self.ctx.function
        if fn is None or not fn.tainted:
            return
        for leaf in self._truth_leaves(test):
            if self._tensor_valued(leaf):
                self._pending.append((fn, leaf, what, is_assert))
            elif not tensors.eager_backend_branch(self.ctx):
                # decided in `finish`, once every method is known: a helper that returns a
                # tensor (`if self.random_apply(p):`), an attribute set to one elsewhere
                # (`self.noise = tf.random.normal(...)` in build, `if self.noise > 0:`)
                keys = tensors.deferred_operands(self.ctx, fn, leaf)
                if keys:
                    self._deferred.append((fn, leaf, what, is_assert, keys))

    def visit_If(self, node: cst.If) -> None:
        self._check(node.test, "if")

    def visit_While(self, node: cst.While) -> None:
        self._check(node.test, "while")

    def visit_CompIf(self, node: cst.CompIf) -> None:
        self._check(node.test, "`if` (in a comprehension)")

    def visit_Assert(self, node: cst.Assert) -> None:
        self._check(node.test, "assert", is_assert=True)

    def visit_IfExp(self, node: cst.IfExp) -> None:
        self._check(node.test, "`... if ... else ...`")

    def visit_BooleanOperation(self, node: cst.BooleanOperation) -> None:
        # `a and b` / `a or b` takes bool(a) wherever it appears.
        op = "and" if isinstance(node.operator, cst.And) else "or"
        left = node.left
        while isinstance(left, cst.BooleanOperation):
            left = left.left
        fn = self.ctx.function
        if fn is not None and fn.tainted and self._tensor_valued(left):
            self._pending.append((fn, left, f"`{op}`", False))

    def visit_UnaryOperation(self, node: cst.UnaryOperation) -> None:
        if isinstance(node.operator, cst.Not):
            fn = self.ctx.function
            if fn is not None and fn.tainted and self._tensor_valued(node.expression):
                self._pending.append((fn, node.expression, "`not`", False))

    def finish(self) -> None:
        # The engine finishes the context after the rules; its finish only completes the
        # graph marks (functions given to Dataset.map/compile below their definition) and
        # is idempotent, so run it now: whether AutoGraph applies depends on those marks.
        self.ctx.finish()
        for fn, leaf, what, is_assert, keys in self._deferred:
            if any(self._attrs.deferred_is_tensor(k) for k in keys):
                self._pending.append((fn, leaf, what, is_assert))
        seen = set()
        for fn, leaf, what, is_assert in self._pending:
            if not fn.is_graph or id(leaf) in seen:
                continue
            if tensors.only_lambda_arguments(fn, leaf):
                continue
            var = self._attrs.is_keras_variable(fn, leaf)
            if var:
                msg = (f"Python {what if what.startswith('`') else f'`{what}`'} on the truth value of weight "
                       f"`{_short(leaf)}` inside {{where}}: Keras 3 raises TypeError ('A Keras Variable cannot be "
                       f"used as a boolean') at every call, eager or compiled; test `is not None` instead")
                seen.add(id(leaf))
                self.reports.append(Report(type(self), leaf, msg, None, scope=fn))
                continue
            if _autograph(fn, self.ctx):
                if not is_assert:
                    continue
                msg = (f"`assert` on the value of tensor `{_short(leaf)}` inside {{where}}: AutoGraph does not "
                       f"convert `assert`, so tracing raises OperatorNotAllowedInGraphError; use "
                       f"`tf.debugging.assert_*`")
            else:
                kw = what if what.startswith("`") else f"`{what}`"
                alt = {"`while`": "`keras.ops.while_loop`", "`assert`": "`tf.debugging.assert_*` or drop it"}.get(
                    kw, "`keras.ops.where`/`keras.ops.cond`")
                msg = (f"Python {kw} on the value of tensor `{_short(leaf)}` inside {{where}}: Keras traces it "
                       f"without AutoGraph, so under `fit`/`predict` this raises OperatorNotAllowedInGraphError "
                       f"(it only works eagerly); use {alt}")
            seen.add(id(leaf))
            self.reports.append(Report(type(self), leaf, msg, None, scope=fn))


# ---------------------------------------------------------------------------
# KL304
# ---------------------------------------------------------------------------

_CLOCKS = {"time.time", "time.time_ns", "time.perf_counter", "time.perf_counter_ns", "time.monotonic",
           "time.monotonic_ns", "time.process_time", "datetime.datetime.now", "datetime.datetime.utcnow",
           "datetime.datetime.today", "uuid.uuid4", "uuid.uuid1", "os.urandom"}
_MUTATORS = {"append", "extend", "insert", "add", "update", "setdefault", "appendleft", "extendleft"}


class TraceTimeSideEffect(Rule):
    """
    ## What it does
    Flags Python side effects inside a graph-context function (`call`, `train_step`, a
    `@tf.function`, a `compile` loss, a `Dataset.map` function): Python `random.*`,
    `np.random.*`, clocks (`time.time()`, `datetime.now()`), `print(...)`, and mutation
    of state outside the function (appending to a module-level list or a `self` list,
    `self.count += 1`, assigning a `global`). `tf.print`, `tf.random.*`,
    `keras.random.*` with a `SeedGenerator`, `add_loss`, metric updates and the same
    code in `__init__`/`build` (which run once, by design) are fine and not flagged.
    Neither are prints of static things (shapes, dtypes, strings) or prints that announce
    tracing (`print("Tracing", x)`): their text is the same at every step. A print of a
    tensor's value (it shows the symbolic tensor once) never changes results, so it is
    reported only with `strict` (`--strict`). Nothing is
    flagged in a model compiled with `run_eagerly=True` or after
    `tf.config.run_functions_eagerly(True)`: the Python then runs at every step.

    ## Why is this bad?
    Python code in a traced function runs once, when the function is traced, not at every
    step. `np.random.uniform()` in a `Dataset.map` function gives every element the same
    "random" number; `random.random()` in `call` is one constant for all of `fit`;
    `print` prints once; `self.calls += 1` counts traces, not calls; a list appended to
    in `call` receives symbolic tensors. Eagerly (`layer(x)`) each call runs the Python
    again, so eager and compiled runs differ. `keraslint verify` measures it with
    repeated compiled calls against repeated eager calls on the same input: a value
    frozen at trace time shows as zero spread under `predict`.

    ## Example
    ```python
    def augment(image):
        return image * np.random.uniform(0.8, 1.2)

    ds = ds.map(augment)
    ```

    ## Use instead
    ```python
    def augment(image):
        return image * tf.random.uniform([], 0.8, 1.2)

    ds = ds.map(augment)
    ```
    """

    code = "KL304"
    name = "trace-time-side-effect"
    severity = "warning"
    fix_applicability = None
    # Subscript assignment to outside state (`LOG[0] = x`) has no distinctive token.
    tokens = None

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self._globals: dict = {}  # id(FunctionInfo) -> names declared global/nonlocal
        self._calls = tensors.helper_calls(ctx).calls  # (caller FunctionInfo, callee key), read in finish
        self._owners: dict = {}  # id(reported node) -> enclosing FunctionInfo owning the mutated local
        self._owner = None  # set by `_outside` for the report about to be made
        self._state_reports: set = set()  # id(reported node) of mutation reports
        self._eager_models: list = []  # classes compiled with run_eagerly=True (None: a model of unknown class)
        self._all_eager = False  # tf.config.run_functions_eagerly(True)
        # `self.<attr>` mutations are judged at the end, once every method is seen: what the
        # class assigns to the attribute (a list, or a sub-layer with an `update` method),
        # whether the mutating method rebinds it, whether an off-by-default flag guards it
        self._attr_values: dict = {}  # (class, attr) -> values assigned in any method
        self._fn_binds: set = set()  # (id(method node), attr) rebound in that method
        self._pending_attr = None
        self._attr_checks: dict = {}  # id(reported node) -> (class, attr, id(method node), guard attr)

    def _record_self_assign(self, targets, value) -> None:
        o = tensors.outermost(self.ctx.function)
        if o is None or o.cls is None:
            return
        for tg in targets:
            if isinstance(tg, cst.Attribute) and isinstance(tg.value, cst.Name) and tg.value.value == "self":
                self._attr_values.setdefault((o.cls.name, tg.attr.value), []).append(value)
                self._fn_binds.add((id(o.node), tg.attr.value))

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if node.value is not None:
            self._record_self_assign([node.target], node.value)

    def _attr_harmless(self, check) -> bool:
        cls_name, attr, method, guard = check
        if (method, attr) in self._fn_binds:
            return True  # `self.outputs = []` at the top of `call`: a fresh list per call
        names = tensors.class_and_bases(self.ctx, cls_name)
        values = [v for c in names for v in self._attr_values.get((c, attr), ())]
        if values and not any(_is_container(self.ctx, v) for v in values):
            return True  # `self.augmenter.update(...)`: a sub-layer's method, not a list/dict
        if guard is not None:
            flags = [literal_value(v) for c in names for v in self._attr_values.get((c, guard), ())]
            if flags and all(f is False or f is None for f in flags):
                return True  # `if self.keep_scores: self.scores.append(...)`: an opt-in debug path
        return False

    def finish(self) -> None:
        if self._attr_checks:
            self.reports[:] = [r for r in self.reports if id(r.node) not in self._attr_checks
                               or not self._attr_harmless(self._attr_checks[id(r.node)])]
        # Helpers (module functions, methods of the same class) called from a graph
        # function are traced with it. Mutation reports are not followed into helpers.
        _adopt_helper_reports(self, self._calls, skip=self._state_reports)
        # Nothing is traced where the code runs eagerly: a model compiled with
        # `run_eagerly=True` runs train_step/call as Python at every step (measured), and
        # `tf.config.run_functions_eagerly(True)` does so for every tf.function.
        if self._all_eager:
            self.reports.clear()
            return
        if not getattr(self.ctx.config, "strict", False):
            self.reports[:] = [r for r in self.reports if not self._demo_tf_function(r)]
        if not self._eager_models:
            return
        named = {c for c in self._eager_models if c is not None}
        unknown = None in self._eager_models
        kept = []
        for rep in self.reports:
            o = tensors.origin(rep.scope) if rep.scope is not None else None
            cls = o.cls if o is not None else None
            if cls is not None and (cls.name in named
                                    or any(tensors.local_ancestor(self.ctx, cls.name, n) for n in named)
                                    or (unknown and cls.kind == "layer")):
                continue
            kept.append(rep)
        self.reports[:] = kept

    _MODEL_WORK_ATTRS = frozenset({"apply_gradients", "minimize", "fit", "train_on_batch", "predict",
                                   "predict_on_batch", "test_on_batch", "evaluate"})

    def _note_model_work(self, node) -> None:
        """Record the functions that train or run a Keras model (a GradientTape, an
        optimizer update, a Keras API call): a free `@tf.function` doing none of that is a
        tf.function demo (the TF guide printing at trace time on purpose, a timing
        workload), not a step whose frozen value changes what `fit` or a training loop
        computes."""
        fn = self.ctx.function
        if fn is None:
            return
        func = node.func
        q = self.ctx.resolve(func)
        if not ((q is not None and (q.startswith("keras.") or q == "tensorflow.GradientTape"))
                or (isinstance(func, cst.Attribute) and func.attr.value in self._MODEL_WORK_ATTRS)):
            return
        work = self.__dict__.setdefault("_model_work", set())
        while fn is not None:
            work.add(id(fn.node))
            fn = fn.parent

    def _demo_tf_function(self, rep) -> bool:
        o = tensors.origin(rep.scope) if rep.scope is not None else None
        return (o is not None and o.cls is None and o.graph is not None and "tf.function" in o.graph
                and id(o.node) not in self.__dict__.get("_model_work", ()))

    def _prints_tensor(self, node) -> bool:
        for a in node.args:
            v = a.value
            if isinstance(v, cst.FormattedString):
                if any(isinstance(p, cst.FormattedStringExpression) and self.ctx.is_tainted(p.expression)
                       for p in v.parts):
                    return True
            elif self.ctx.is_tainted(v):
                return True
        return False

    def _active(self):
        fn = self.ctx.function
        if fn is None or _in_shape_method_early(fn):
            return None
        return fn

    def _say(self, node, what: str, consequence: str, state: bool = False) -> None:
        if state:
            # A mutation of outside state: in a helper called from `call` that is usually
            # lazy set-up (`if not self.built: self.build(...)`), so not followed into helpers.
            self._state_reports.add(id(node))
        if self._owner is not None:
            self._owners[id(node)] = self._owner
            self._owner = None
        if self._pending_attr is not None:
            self._attr_checks[id(node)] = self._pending_attr
            self._pending_attr = None
        self.report_in_graph(node, f"{what} inside {{where}} {consequence}")

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value == "compile":
            a = get_arg(node, "run_eagerly")
            if a is not None and literal_value(a.value) is True:
                self._eager_models.append(tensors.instance_class(self.ctx, func.value))
            return
        self._note_model_work(node)
        fn = self._active()
        if fn is None:
            if (node.args and literal_value(node.args[0].value) is True
                    and self.ctx.resolve(func) == "tensorflow.config.run_functions_eagerly"):
                self._all_eager = True
            return
        q = self.ctx.resolve(func)
        if q is not None:
            if q.startswith("random.") or q.startswith("numpy.random."):
                short = q.replace("numpy.", "np.", 1)
                self._say(node, f"`{short}(...)`", "draws one number when the function is traced: under "
                          "`fit`/`predict`/`tf.function`/`Dataset.map` every step or element reuses it (eager calls draw anew); use "
                          "`keras.random`/`tf.random`")
            elif q in _CLOCKS:
                self._say(node, f"`{q}()`", "is read once, when the function is traced: every compiled "
                          "step sees that one value")
            return
        if _builtin(self.ctx, func, ("print",)):
            # A print of static things (shapes, dtypes, strings) or one that announces
            # tracing is printed at trace time on purpose: its text is the same at every
            # step. A print of a tensor's value shows the symbolic tensor once (measured:
            # `Tensor("x:0", shape=(), dtype=float32)`), never the values.
            if _announces_tracing(node) or not self._prints_tensor(node):
                return
            if not getattr(self.ctx.config, "strict", False):
                return  # a print never changes results: reported only with `strict`
            self._say(node, "`print(...)` of a tensor", "prints the symbolic tensor (`Tensor(\"x:0\", shape=..., "
                      "dtype=...)`) once, when the function is traced, never its values at the compiled steps; "
                      "use `tf.print`")
            return
        if isinstance(func, cst.Attribute) and func.attr.value in _MUTATORS:
            target = self._outside(func.value, fn)
            if target is not None:
                self._say(node, f"`{_short(func)}(...)`", f"mutates {target} only when the function is traced "
                          f"(once, with symbolic tensors), not at every compiled step", state=True)

    def _outside(self, expr, fn) -> Optional[str]:
        """Describe ``expr`` if it is state that outlives the traced call."""
        self._owner = None
        if (isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name) and expr.value.value == "self"
                and tensors.origin(fn).cls is not None):
            o = tensors.outermost(fn)
            self._pending_attr = (tensors.origin(fn).cls.name, expr.attr.value, id(o.node), _guard_flag(self.ctx))
            return f"`{_short(expr)}`"
        if isinstance(expr, cst.Name):
            name = expr.value
            if name in self._declared(fn):
                return f"global `{name}`"
            if name in fn.locals:
                return None  # the function's own local: fresh at every call, traced or not
            p = fn.parent
            while p is not None:
                if name in p.locals:
                    if p.graph is not None:
                        return None
                    # The enclosing function may still turn out to be traced too (given to
                    # Dataset.map further down): `finish` drops the report then.
                    self._owner = p
                    return f"`{name}` of the enclosing function"
                p = p.parent
            if name in self.ctx.module_assigned and not self.ctx.qualname(expr):
                v = self.ctx.module_assigned[name]
                if isinstance(v, (cst.List, cst.Dict, cst.Set, cst.ListComp, cst.DictComp, cst.SetComp)) or (
                        isinstance(v, cst.Call) and _builtin_name(v.func) in ("list", "dict", "set")):
                    return f"module-level `{name}`"
        return None

    def _declared(self, fn) -> set:
        return self._globals.get(id(fn), set())

    def visit_Global(self, node: cst.Global) -> None:
        fn = self.ctx.function
        if fn is not None:
            self._globals.setdefault(id(fn), set()).update(n.name.value for n in node.names)

    def visit_Nonlocal(self, node: cst.Nonlocal) -> None:
        fn = self.ctx.function
        if fn is not None and (fn.parent is None or fn.parent.graph is None):
            self._globals.setdefault(id(fn), set()).update(n.name.value for n in node.names)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        fn = self._active()
        if fn is None:
            return
        tgt = node.target
        if isinstance(tgt, cst.Attribute) and isinstance(tgt.value, cst.Name) and tgt.value.value == "self":
            if tensors.origin(fn).cls is not None:
                self._say(node, f"`{_short(node)}`", "runs only when the function is traced: under "
                          "`fit`/`predict`/`tf.function` it counts traces, not calls", state=True)
        elif isinstance(tgt, cst.Name) and tgt.value in self._declared(fn):
            self._say(node, f"`{_short(node)}`", f"updates global `{tgt.value}` only when the function is "
                      f"traced, not at every compiled step", state=True)

    def visit_Assign(self, node: cst.Assign) -> None:
        self._record_self_assign([t.target for t in node.targets], node.value)
        fn = self._active()
        if fn is None:
            return
        for t in node.targets:
            tgt = t.target
            if isinstance(tgt, cst.Name) and tgt.value in self._declared(fn):
                self._say(node, f"assigning global `{tgt.value}`", "happens only when the function is traced, "
                          "not at every compiled step", state=True)
                return
            if isinstance(tgt, cst.Subscript):
                target = self._outside(tgt.value, fn)
                if target is not None:
                    self._say(node, f"`{_short(tgt)} = ...`", f"mutates {target} only when the function is "
                              f"traced, not at every compiled step", state=True)
                    return


_CONTAINER_CALLS = {"list", "dict", "set", "collections.deque", "collections.defaultdict",
                    "collections.OrderedDict", "collections.Counter"}


def _is_container(ctx, v) -> bool:
    if isinstance(v, (cst.List, cst.Dict, cst.Set, cst.ListComp, cst.DictComp, cst.SetComp)):
        return True
    if isinstance(v, cst.Call):
        q = ctx.resolve(v.func) or (v.func.value if isinstance(v.func, cst.Name) else None)
        return q in _CONTAINER_CALLS or (q or "").rsplit(".", 1)[-1] in ("deque", "defaultdict", "OrderedDict")
    return False


def _guard_flag(ctx) -> Optional[str]:
    """The attribute of the nearest enclosing ``if self.<flag>:`` in the function, if any."""
    for anc in reversed(ctx.stack[:-1]):
        if isinstance(anc, (cst.FunctionDef, cst.ClassDef)):
            return None
        if isinstance(anc, cst.If):
            t = anc.test
            if isinstance(t, cst.Attribute) and isinstance(t.value, cst.Name) and t.value.value == "self":
                return t.attr.value
    return None


def _announces_tracing(call) -> bool:
    """``print("Tracing", x)``: a print that says it marks tracing is there on purpose."""
    for n in tensors.walk(call):
        if isinstance(n, cst.SimpleString) and "trac" in n.value.lower():
            return True
        if isinstance(n, cst.FormattedStringText) and "trac" in n.value.lower():
            return True
    return False


def _in_shape_method_early(fn) -> bool:
    # During traversal the graph reason of a plain function may not be known yet, but a
    # method's is; nested functions inherit it.
    return fn.graph is not None and _in_shape_method(fn)


def _builtin_name(func) -> Optional[str]:
    return func.value if isinstance(func, cst.Name) else None


# ---------------------------------------------------------------------------
# KL305
# ---------------------------------------------------------------------------

_VARIABLE_CTORS = {
    "tensorflow.Variable": ("`tf.Variable(...)`", "TensorFlow raises ValueError ('tf.function only supports "
                            "singleton tf.Variables created on the first call')"),
    "tensorflow.compat.v1.Variable": ("`tf.compat.v1.Variable(...)`", "TensorFlow raises ValueError "
                                      "('tf.function only supports singleton tf.Variables created on the "
                                      "first call')"),
    "keras.backend.Variable": ("`keras.Variable(...)`", "Keras raises ValueError ('You are attempting to create "
                               "a variable while in a stateless scope')"),
    "keras.Variable": ("`keras.Variable(...)`", "Keras raises ValueError ('You are attempting to create a "
                       "variable while in a stateless scope')"),
}


class VariableInCall(Rule):
    """
    ## What it does
    Flags variables created inside the `call` of a custom layer or model:
    `self.add_weight(...)` / `self.add_variable(...)`, `tf.Variable(...)` and
    `keras.Variable(...)`. The same calls in `__init__` and `build` are fine.

    ## Why is this bad?
    In Keras 3 a layer is built before its first `call`, and a built layer is locked:
    `self.add_weight` in `call` raises `ValueError: You cannot add new elements of state
    (variables or sub-layers) to a layer that is already built` on every call, eager or
    compiled. `tf.Variable(...)`/`keras.Variable(...)` in `call` seem to work eagerly, but
    they create a fresh, untracked variable at each call, re-initialized every time (the
    layer reports 0 weights and nothing is trained); under `fit`/`predict` they raise
    `ValueError` (`tf.function only supports singleton tf.Variables created on the first
    call` / `You are attempting to create a variable while in a stateless scope`). The
    lazy `if self.v is None: self.v = tf.Variable(...)` pattern runs under `fit`, but
    Keras does not track the variable: it is not in `layer.weights`, is never trained and
    is not saved (the same with `keras.Variable` raises the "already built" error).
    Measured with Keras 3.15 / TF 2.21. `keraslint verify` measures it as
    `eager-vs-compiled`: the failure on the compiled side, and the number of trainable
    weights the layer reports.

    ## Example
    ```python
    class Scale(keras.layers.Layer):
        def call(self, x):
            w = self.add_weight(shape=(x.shape[-1],), initializer="ones")
            return x * w
    ```

    ## Use instead
    ```python
    class Scale(keras.layers.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones")

        def call(self, x):
            return x * self.w
    ```
    """

    code = "KL305"
    name = "variable-in-call"
    severity = "error"
    fix_applicability = None
    tokens = ("Variable", "add_weight", "add_variable")

    def visit_Call(self, node: cst.Call) -> None:
        fn = self.ctx.function
        if fn is None or fn.graph is None or not _in_layer_call(fn):
            return
        cls = tensors.origin(fn).cls
        if _tf1_shim(tensors.origin(fn).node):
            return  # TF1-style variables under the documented tracking shim (migration code)
        where = f"`call` of `{cls.name}`"
        func = node.func
        if (isinstance(func, cst.Attribute) and func.attr.value in ("add_weight", "add_variable")
                and isinstance(func.value, cst.Name) and func.value.value == "self"):
            self.report(
                node,
                f"`self.{func.attr.value}(...)` inside {where}: the layer is already built when `call` runs, so "
                f"Keras 3 raises ValueError ('You cannot add new elements of state ... to a layer that is "
                f"already built'); create the weight in `build`",
            )
            return
        q = self.ctx.resolve(func)
        hit = _VARIABLE_CTORS.get(q) if q is not None else None
        if hit is None:
            return
        shown, error = hit
        stored = self._stored_on_self(node)
        if stored and q.startswith("tensorflow."):
            # The lazy `if self.v is None: self.v = tf.Variable(...)` pattern runs, but
            # Keras never sees the variable.
            msg = (f"{shown} stored on `self` inside {where}: Keras 3 does not track a raw tf.Variable created "
                   f"there, so it is not in `layer.weights`: `fit` never trains it and saving drops it; create "
                   f"it in `build` with `self.add_weight`")
        elif stored:
            msg = (f"{shown} stored on `self` inside {where}: the layer is already built when `call` runs, so "
                   f"Keras 3 raises ValueError ('You cannot add new elements of state ... to a layer that is "
                   f"already built'); create it in `build` with `self.add_weight`")
        else:
            msg = (f"{shown} inside {where}: eagerly every call creates a fresh, untracked variable (never "
                   f"trained); under `fit`/`predict` {error}; create it in `build` with `self.add_weight`")
        self.report(node, msg)

    def _stored_on_self(self, node) -> bool:
        stack = self.ctx.stack
        parent = stack[-2] if len(stack) >= 2 else None
        if isinstance(parent, (cst.Assign, cst.AnnAssign)) and parent.value is node:
            targets = [t.target for t in parent.targets] if isinstance(parent, cst.Assign) else [parent.target]
            return any(isinstance(t, cst.Attribute) and isinstance(t.value, cst.Name) and t.value.value == "self"
                       for t in targets)
        return False


# ---------------------------------------------------------------------------
# KL306
# ---------------------------------------------------------------------------

_AUTO_BASES = {"keras.layers.Layer", "keras.models.Model"}
_KERAS_OBJECT_SUBS = ("layers", "models", "initializers", "regularizers", "constraints", "losses", "metrics",
                      "optimizers", "applications")
_ARRAY_CTORS = {"numpy.array", "numpy.asarray", "numpy.ones", "numpy.zeros", "numpy.full", "numpy.arange",
                "numpy.linspace", "numpy.eye", "numpy.load", "numpy.empty", "numpy.identity", "numpy.stack",
                "numpy.concatenate", "tensorflow.constant", "tensorflow.convert_to_tensor", "tensorflow.ones",
                "tensorflow.zeros", "tensorflow.range", "keras.ops.convert_to_tensor", "keras.ops.ones",
                "keras.ops.zeros", "keras.ops.array", "keras.ops.arange", "torch.tensor", "torch.ones",
                "torch.zeros"}
_FUNCTION_NAMESPACES = ("keras.activations.", "keras.ops.", "tensorflow.nn.", "tensorflow.math.",
                        "tensorflow.keras.activations.", "jax.nn.", "torch.nn.functional.")
_KERAS2_BASE_ARGS = {"self", "name", "trainable", "dtype", "dynamic"}


class MissingGetConfig(Rule):
    """
    ## What it does
    Flags a custom layer or model without `get_config` whose constructor takes an argument
    Keras cannot serialize by itself. That is:

    * Keras 3 `Layer` subclasses: an argument that is a layer, model, callable or array:
      one stored on `self` and called as a layer (`self.inner = inner` … `self.inner(x)`),
      or a layer/lambda/function/array/Keras object passed where the class is constructed
      in the file. Plain values (numbers, strings, booleans, `None`, lists/tuples/dicts
      of them) are recorded by Keras 3's automatic config, so `Block(units, rate)`
      without `get_config` is fine and not flagged.
    * Keras 3 `Model` subclasses: any constructor argument. `Model.__new__` does not
      pass the constructor arguments on to Keras's automatic config (Keras 3.15), so
      plain arguments are not recorded either.
    * Keras 2 (`tf_keras`) layers and models: any constructor argument.

    It fires only where the file serializes the class: `model.save(...)`,
    `keras.saving.save_model`, a `ModelCheckpoint` that saves whole models,
    `clone_model`, `get_config()`/`to_json()`, `serialize_keras_object`, pickling, or a
    stated intent (`@register_keras_serializable`, a public `@..._export` class, listed in
    `custom_objects`). `save_weights`, `tf.train.Checkpoint`, `export` and
    `tf.saved_model.save` never ask for the config, and a layer built inside a subclassed
    model's `__init__` is rebuilt by that constructor, so none of these is flagged. The
    "saves the defaults" case is not flagged where only the defaults are ever passed.

    ## Why is this bad?
    The model trains and predicts, and fails only when it is saved, usually at the end
    of a long run. Keras 3 layers given a layer/callable/array, and Keras 3 models with a
    required constructor argument, raise `NotImplementedError: Object X was created by
    passing non-serializable argument values in __init__(), and therefore the object must
    override get_config()` from `get_config()`/`model.save`. Worse, a Keras 3 `Model`
    subclass whose arguments have defaults saves the *defaults*: measured with Keras
    3.15, `Scaled(scale=5.0)` saved and reloaded comes back with `scale=1.0` and its
    outputs change from 15 to 3, silently. `tf_keras` raises `NotImplementedError: Layer
    X has arguments [...] in __init__ and therefore must override get_config()`.

    ## Example
    ```python
    class Residual(keras.layers.Layer):
        def __init__(self, inner, **kwargs):
            super().__init__(**kwargs)
            self.inner = inner

        def call(self, x):
            return x + self.inner(x)
    ```

    ## Use instead
    ```python
    class Residual(keras.layers.Layer):
        def __init__(self, inner, **kwargs):
            super().__init__(**kwargs)
            self.inner = inner

        def call(self, x):
            return x + self.inner(x)

        def get_config(self):
            config = super().get_config()
            config["inner"] = keras.saving.serialize_keras_object(self.inner)
            return config

        @classmethod
        def from_config(cls, config):
            config["inner"] = keras.saving.deserialize_keras_object(config["inner"])
            return cls(**config)
    ```
    """

    code = "KL306"
    name = "missing-get-config"
    severity = "warning"
    fix_applicability = None
    tokens = ("keras",)

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self._constructions: dict = {}  # class name -> [Call]
        self._free: set = set()  # classes constructed outside the methods of a Keras class
        self._trained: set = set()  # classes whose instance is compiled/fit here (top-level models)
        self._events: list = []  # (target, what): what serializes, see `_target`
        self._checkpoints: dict = {}  # name -> ModelCheckpoint call saving whole models
        self._intent: dict = {}  # class name -> what states the intent to serialize it
        self._class_scope: dict = {}  # class name -> outermost function it is defined in (None: module)
        self._seq = 0  # order of calls and class definitions
        self._class_seq: dict = {}  # class name -> position of its definition
        self._pending: dict = {}  # id(outermost function) -> classes built since the last model
        self._graph_sets: dict = {}  # id(keras.Model/Sequential call) -> classes in that model
        # [function, param index, param name, what, only_class, where, seq, called]: a
        # parameter of a module function that the function saves/serializes
        self._param_events: list = []

    # -- where the file serializes --------------------------------------------
    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        self._seq += 1
        if isinstance(func, cst.Name):
            for pe in self._param_events:
                if pe[0] == func.value:
                    a = get_arg(node, pe[2], pe[1])
                    pe[7] = True
                    t = self._target(a.value) if a is not None and not a.star else ("unknown",)
                    if t is not None and (not pe[4] or t[0] == "class"):
                        self._events.append((t, pe[3], tensors.outermost(self.ctx.function), self._seq))
            self._constructions.setdefault(func.value, []).append(node)
            if func.value in self.ctx.classes and not _in_keras_method(self.ctx.function):
                self._free.add(func.value)
                self._pending.setdefault(id(tensors.outermost(self.ctx.function)), set()).add(func.value)
        for arg in node.args:
            if arg.keyword is not None and arg.keyword.value == "custom_objects":
                self._note_custom_objects(arg.value, "listed in `custom_objects`")
        if isinstance(func, cst.Attribute):
            attr = func.attr.value
            recv = func.value
            if isinstance(recv, cst.Name) and recv.value in self.ctx.classes and attr == "from_config":
                self._intent.setdefault(recv.value, f"`{recv.value}.from_config` is called")
                return
            q = self.ctx.resolve(func)
            if q is None:
                if attr == "save" and node.args and _model_path(self._path_value(node.args[0].value)):
                    self._event(recv, f"`{_short(func)}(...)`")
                elif attr in ("get_config", "to_json") and not node.args and not _is_super(recv):
                    if not self._other_object(recv):
                        self._event(recv, f"`{_short(func)}()`")
                elif attr in ("compile", "fit"):
                    c = self._instance_class(recv)
                    if c is not None:
                        self._trained.add(c)
                    if attr == "fit":
                        cb = get_arg(node, "callbacks")
                        for el in _elements(cb.value if cb is not None else None):
                            if isinstance(el, cst.Name) and el.value in self._checkpoints:
                                self._event(recv, self._checkpoints[el.value])
                return
        q = self.ctx.resolve(func)
        if q is None:
            return
        if q in ("keras.models.Model", "keras.models.Sequential"):
            # The custom layers of a functional model: those built in the same scope since
            # the previous model (a Sequential lists its own).
            key = id(tensors.outermost(self.ctx.function))
            got = set(self._pending.pop(key, ()))
            if q == "keras.models.Sequential":
                got = self._listed(node)
            self._graph_sets[id(node)] = frozenset(got)
            return
        last = q.rsplit(".", 1)[-1]
        if last in ("save_model", "clone_model", "serialize_keras_object", "serialize", "dump", "dumps",
                    "deepcopy") and node.args:
            if last == "clone_model" and get_arg(node, "clone_function") is not None:
                # the clone_function decides how each layer is cloned (its own
                # `get_config()` calls are judged where they are); only a subclassed
                # model itself is still rebuilt from its config
                self._event(node.args[0].value, f"`{_short(func)}(...)`", only_class=True)
            elif q.startswith("keras.") or q in ("pickle.dump", "pickle.dumps", "copy.deepcopy", "joblib.dump",
                                                  "cloudpickle.dump", "cloudpickle.dumps"):
                self._event(node.args[0].value, f"`{_short(func)}(...)`")
        elif last == "ModelCheckpoint" and q.startswith("keras."):
            swo = get_arg(node, "save_weights_only", 4)
            if swo is not None and literal_value(swo.value) is True:
                return
            what = f"`{_short(func)}(...)` saves whole models"
            fit = _enclosing_fit(self.ctx.stack)
            if fit is not None:
                self._event(fit.func.value, what)
            else:
                parent = self.ctx.stack[-2] if len(self.ctx.stack) >= 2 else None
                if isinstance(parent, cst.Assign):
                    for t in parent.targets:
                        if isinstance(t.target, cst.Name):
                            self._checkpoints[t.target.value] = what
        elif last in ("custom_object_scope", "CustomObjectScope") and node.args:
            for a in node.args:
                self._note_custom_objects(a.value, "listed in a custom object scope")

    def _listed(self, call) -> set:
        """Local classes whose instances are given to ``call`` (a Sequential's list, a
        wrapper's arguments)."""
        got = set()
        for a in call.args:
            for el in _elements(a.value):
                c = self._instance_class(el)
                if c is not None:
                    got.add(c)
        return got

    def _note_custom_objects(self, expr, why: str) -> None:
        for n in tensors.walk(expr):
            if isinstance(n, cst.Name) and n.value in self.ctx.classes:
                self._intent.setdefault(n.value, f"it is {why}")

    def _instance_class(self, expr) -> Optional[str]:
        return tensors.instance_class(self.ctx, expr)

    def _path_value(self, expr):
        """``image_file = "cartpole.gif"`` … ``x.save(image_file)``: the literal a name holds."""
        if isinstance(expr, cst.Name):
            v = self.ctx.assigned_value(expr.value)
            if isinstance(v, (cst.SimpleString, cst.ConcatenatedString, cst.FormattedString)):
                return v
        return expr

    def _other_object(self, recv) -> bool:
        """``layer.get_config()`` on a parameter (a ``clone_function`` given each layer) or
        on a loop variable over something unknown (``for layer in model.layers``): the config
        of *other* objects, not evidence that a class of this file is serialized."""
        if not isinstance(recv, cst.Name) or recv.value == "self":
            return False
        name = recv.value
        for anc in reversed(self.ctx.stack):
            if isinstance(anc, (cst.For, cst.CompFor)) and name in target_names(anc.target):
                els = self._element_values(anc.iter)
                return els is None or all(self._target(e) is None for e in els)
            if isinstance(anc, (cst.FunctionDef, cst.Lambda)):
                fn = self.ctx.function
                return (fn is not None and fn.node is anc and any(p.name.value == name for p in fn.params)
                        and name not in fn.assigned)
        return False

    def _element_values(self, expr, depth: int = 0) -> Optional[list]:
        """The expressions a list/tuple may hold (a literal, a name assigned one, a local
        function returning one), None when unknown."""
        if depth > 4:
            return None
        if isinstance(expr, (cst.List, cst.Tuple, cst.Set)):
            if any(isinstance(e, cst.StarredElement) for e in expr.elements):
                return None
            return [e.value for e in expr.elements]
        if isinstance(expr, cst.Name):
            v = self.ctx.assigned_value(expr.value)
            return None if v is None or v is expr else self._element_values(v, depth + 1)
        if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Name) and expr.func.value in self.ctx.functions:
            out = []
            for r in self.ctx.returns_of(expr.func.value, follow=True):
                if isinstance(r, cst.Name):
                    return None
                got = self._element_values(r, depth + 1)
                if got is None:
                    return None
                out.extend(got)
            return out or None
        return None

    def _target(self, expr, depth: int = 0):
        """What saving ``expr`` serializes: ("class", C) an instance of the local class C;
        ("graph",) a functional/Sequential model or a component of another object (its
        free-standing layers are serialized); ("unknown",) a model of unknown origin;
        None: not a Keras model (a resolved non-Keras object)."""
        c = self._instance_class(expr)
        if c is not None:
            return ("class", c)
        if depth > 4:
            return ("unknown",)
        if isinstance(expr, cst.Attribute):
            return ("graph", None)
        if isinstance(expr, cst.Subscript):
            # an element of a list of known things (`images[0].save(...)`, PIL images)
            els = self._element_values(expr.value, depth + 1)
            if els and all(self._target(e, depth + 1) is None for e in els):
                return None
            return ("unknown",)
        if isinstance(expr, cst.Name):
            v = self.ctx.assigned_value(expr.value)
            if v is None or v is expr:
                return ("unknown",)
            return self._target(v, depth + 1)
        if isinstance(expr, cst.Call):
            q = self.ctx.resolve(expr.func)
            if q is not None:
                if q == "keras.models.Sequential":
                    return ("classes", frozenset(self._listed(expr)))
                if q == "keras.models.Model":
                    got = self._graph_sets.get(id(expr))
                    if got is None:  # built inline in the save call: not visited yet
                        got = self._pending.get(id(tensors.outermost(self.ctx.function)), ())
                    return ("classes", frozenset(got))
                if q.startswith("keras.applications."):
                    return None
                if "load_model" in q or "model_from" in q:
                    return None  # it was deserialized, so it can be serialized again
                if q.startswith("keras."):
                    # a built-in wrapper (`Distiller(teacher=t, ...)`, `Bidirectional(MyCell())`)
                    # serializes the instances it is given
                    inner = self._listed(expr)
                    if inner:
                        return ("classes", frozenset(inner))
                return None  # a built-in layer, a NumPy/PIL/torch object: no class of this file
            if isinstance(expr.func, cst.Name) and expr.func.value in self.ctx.functions:
                # a local factory: what its returns are (a Name returned is looked up in
                # the factory's own assignments)
                found = [("unknown",) if isinstance(r, cst.Name) else self._target(r, depth + 1)
                         for r in self.ctx.returns_of(expr.func.value, follow=True)]
                found = [t for t in found if t is not None]
                if not found:
                    return None if self.ctx.returns_of(expr.func.value) else ("unknown",)
                if len(found) == 1:
                    return found[0]
                if all(t[0] in ("class", "classes") for t in found):
                    out = set()
                    for t in found:
                        out |= {t[1]} if t[0] == "class" else set(t[1])
                    return ("classes", frozenset(out))
            return ("unknown",)
        return ("unknown",)

    def _event(self, expr, what: str, only_class: bool = False) -> None:
        if _in_keras_method(self.ctx.function) and not (isinstance(expr, cst.Name) and expr.value == "self"):
            return  # a layer's own method reading another object's config (`inner.get_config()`)
        fn = self.ctx.function
        if (isinstance(expr, cst.Name) and fn is not None and isinstance(fn.node, cst.FunctionDef)
                and fn.parent is None and fn.cls is None and expr.value not in fn.assigned):
            idx = next((i for i, p in enumerate(fn.params) if p.name.value == expr.value and not p.star), None)
            if idx is not None:
                # `def get_disk_size(model, path): model.save(path)`: what is saved is what
                # the call sites of this file pass (judged there; unknown if none)
                self._param_events.append([fn.name, idx, expr.value, what, only_class, fn, self._seq, False])
                return
        t = self._target(expr)
        if t is not None and (not only_class or t[0] == "class"):
            self._events.append((t, what, tensors.outermost(self.ctx.function), self._seq))

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self._seq += 1
        self._class_scope[node.name.value] = tensors.outermost(self.ctx.function)
        self._class_seq[node.name.value] = self._seq

    def _serialized(self, info) -> Optional[str]:
        """Why the file serializes ``info`` (a call that saves/serializes it, or a stated
        intent: registration, export decorator, custom_objects), or None."""
        name = info.name
        for dec in info.node.decorators:
            d = dec.decorator.func if isinstance(dec.decorator, cst.Call) else dec.decorator
            q = self.ctx.resolve(d) or dotted(d) or ""
            last = q.rsplit(".", 1)[-1]
            if last == "register_keras_serializable":
                # In a module that only defines the class (a library), registration states
                # that users will save it. In a script that trains the class itself, what it
                # does is visible: registered but only its weights saved is no hazard (keras.io
                # ddim: ModelCheckpoint(save_weights_only=True)); a real save is found below.
                if name not in self._trained:
                    return "it is registered with `register_keras_serializable`"
                continue
            if last.endswith("_export"):
                return f"it is a public API class (`@{last}`), meant to be saved by users"
        if name in self._intent:
            return self._intent[name]
        top_level = name in self._trained or self._is_model(info)
        scope = self._class_scope.get(name)
        for t, what, where, seq in self._events:
            if scope is not None and where is not scope:
                continue  # a class local to one function is saved only there
            if where is None and scope is None and seq < self._class_seq.get(name, 0):
                continue  # a script/notebook line that runs before the class exists
            if t[0] == "class":
                if t[1] == name or tensors.local_ancestor(self.ctx, t[1], name):
                    return what
            elif t[0] == "classes":
                if any(c == name or tensors.local_ancestor(self.ctx, c, name) for c in t[1]):
                    return what
            elif t[0] == "graph":  # a component of another object: its free layers
                if name in self._free and not top_level:
                    return what
            elif name in self._free:
                return what
        proj = getattr(self.ctx, "project", None)
        hook = getattr(proj, "serializes", None) if proj is not None else None
        if callable(hook):
            try:
                return hook(self.ctx, name)
            except Exception:  # noqa: BLE001 - an index that cannot answer is no evidence
                return None
        return None

    def _is_model(self, info) -> bool:
        r = self._roots(info)
        return r is not None and "keras.models.Model" in r[0]

    # -- class analysis --------------------------------------------------------
    def _roots(self, info, seen=None) -> Optional[tuple]:
        """(set of non-local base names at the roots, flavors, has_get_config) through local
        ancestors; None when some base is unknown (a mixin from elsewhere might define
        get_config)."""
        seen = seen or set()
        if info.name in seen:
            return None
        seen.add(info.name)
        roots, flavors = set(), set()
        has = _defines(info.node, "get_config")
        for b, arg in zip(info.bases, _positional_bases(info.node)):
            if b.startswith("local:"):
                other = self.ctx.classes.get(b[6:])
                if other is None:
                    return None
                sub = self._roots(other, seen)
                if sub is None:
                    return None
                roots |= sub[0]
                flavors |= sub[1]
                has = has or sub[2]
            elif b.startswith("unresolved:"):
                return None
            else:
                roots.add(b)
                raw = self.ctx.qualname(arg)
                flavors.add(keras_flavor(raw) if raw else None)
        return roots, flavors, has

    def finish(self) -> None:
        for pe in self._param_events:
            if not pe[7]:  # never called here (a library helper): whatever it is given
                self._events.append((("unknown",), pe[3], pe[5], pe[6]))
        for info in list(self.ctx.classes.values()):
            if info.kind != "layer":
                continue
            r = self._roots(info)
            if r is None:
                continue
            roots, flavors, has_config = r
            if has_config or not roots or not roots <= _AUTO_BASES:
                continue  # a built-in layer base has its own get_config (another hazard)
            init = _method(info.node, "__init__")
            if init is None:
                continue
            # The hazard is real only where the class is serialized: `save`/`save_model`,
            # a whole-model ModelCheckpoint, `clone_model`, `get_config`/`to_json`,
            # `serialize_keras_object`, pickling, or a stated intent (registration, an
            # export decorator, `custom_objects`). `save_weights`, `tf.train.Checkpoint`,
            # `export` and `tf.saved_model.save` never ask for the config (measured).
            saved = self._serialized(info)
            if saved is None:
                continue
            because = f" (here {saved})"
            params = [p for p in list(init.params.posonly_params) + list(init.params.params)
                      + list(init.params.kwonly_params)]
            names = [p.name.value for p in params][1:]  # drop self
            if "tf_keras" in flavors:
                pos = [p.name.value for p in init.params.params][1:]
                extra = [n for n in pos if n not in _KERAS2_BASE_ARGS]
                if extra:
                    self.report(info.node.name,
                                f"`{info.name}` has no `get_config` and takes {_names(extra)} in `__init__`: "
                                f"tf_keras raises NotImplementedError when the model is saved{because}; add "
                                f"`get_config`")
                continue
            if None in flavors or flavors - {"keras", "tf.keras"}:
                continue
            if "keras.models.Model" in roots:
                extra = [n for n in names if n != "name"]
                if not extra:
                    continue
                required = [p.name.value for p in params[1:] if p.default is None and p.star != "*"
                            and p.star != "**" and p.name.value != "name"]
                if required:
                    what = ("saving raises NotImplementedError (Keras 3 `Model.__new__` does not record "
                            "constructor arguments, so the automatic config cannot rebuild it)")
                else:
                    calls = self._constructions.get(info.name, ())
                    if calls and not any(_passes_non_default(c, params[1:]) for c in calls):
                        continue  # only the defaults are ever passed: the saved defaults are right
                    what = ("saving silently stores the *default* values (Keras 3 `Model.__new__` does not "
                            "record constructor arguments), so a reloaded model can differ")
                self.report(info.node.name,
                            f"model `{info.name}` has no `get_config` and takes {_names(extra)} in `__init__`: "
                            f"{what}{because}; add `get_config`")
                continue
            why = self._layer_hazard(info, init, names)
            if why:
                self.report(info.node.name,
                            f"`{info.name}` has no `get_config` and {why}: Keras 3's automatic config only "
                            f"records plain values, so `get_config()`/saving raises NotImplementedError{because}; "
                            f"add `get_config` (and `from_config`)")

    def _layer_hazard(self, info, init, names) -> Optional[str]:
        # (a) a constructor argument stored on self and called as a layer/function.
        stored = {}
        for stmt in tensors.walk(init.body):
            if isinstance(stmt, cst.Assign) and isinstance(stmt.value, cst.Name) and stmt.value.value in names:
                for t in stmt.targets:
                    tg = t.target
                    if isinstance(tg, cst.Attribute) and isinstance(tg.value, cst.Name) and tg.value.value == "self":
                        stored[tg.attr.value] = stmt.value.value
            if isinstance(stmt, cst.Call) and isinstance(stmt.func, cst.Name) and stmt.func.value in names:
                return f"calls its constructor argument `{stmt.func.value}` (a layer or callable)"
        if stored:
            for node in tensors.walk(info.node.body):
                if isinstance(node, cst.Call):
                    f = node.func
                    if (isinstance(f, cst.Attribute) and isinstance(f.value, cst.Name) and f.value.value == "self"
                            and f.attr.value in stored):
                        return (f"calls its constructor argument `{stored[f.attr.value]}` as a layer "
                                f"(`self.{f.attr.value}(...)`)")
        # (b) constructed in this file with a layer/callable/array argument.
        for call in self._constructions.get(info.name, ()):
            for arg in call.args:
                if arg.star:
                    continue
                kind = self._non_serializable(arg.value)
                if kind:
                    label = f"`{arg.keyword.value}`" if arg.keyword is not None else "an argument"
                    return f"is constructed with {kind} as {label} (`{_short(call)}`)"
        return None

    def _non_serializable(self, expr, depth: int = 0) -> Optional[str]:
        if depth > 3:
            return None
        if isinstance(expr, cst.Lambda):
            return "a lambda"
        if isinstance(expr, (cst.List, cst.Tuple)):
            for el in expr.elements:
                k = self._non_serializable(el.value, depth + 1)
                if k:
                    return k
            return None
        if isinstance(expr, cst.Call):
            q = self.ctx.resolve(expr.func)
            if q is not None:
                if q in _ARRAY_CTORS:
                    return "an array"
                parts = q.split(".")
                if (len(parts) == 3 and parts[0] == "keras" and parts[1] in _KERAS_OBJECT_SUBS
                        and parts[2][:1].isupper()) or q in ("keras.models.Sequential", "keras.models.Model"):
                    return "a layer" if parts[1] in ("layers", "models", "applications") else "a Keras object"
                return None
            if isinstance(expr.func, cst.Name):
                other = self.ctx.classes.get(expr.func.value)
                if other is not None and other.kind == "layer":
                    return "a layer"
            return None
        if isinstance(expr, (cst.Name, cst.Attribute)):
            q = self.ctx.resolve(expr)
            if q is not None:
                if q.startswith(_FUNCTION_NAMESPACES) and q.rsplit(".", 1)[-1][:1].islower():
                    return "a function"
                return None
            if isinstance(expr, cst.Name):
                if expr.value in self.ctx.functions:
                    return "a function"
                v = self.ctx.module_assigned.get(expr.value)
                if v is not None and v is not expr:
                    return self._non_serializable(v, depth + 1)
        return None



def _passes_non_default(call, params) -> bool:
    """Does ``call`` give the constructor a value other than a parameter's literal default
    (``name=`` aside)? ``Teacher(vocab_size=10)`` with ``vocab_size=10`` in the signature
    passes only the default, which is what saving records anyway."""
    by_name = {p.name.value: p for p in params}
    positional = [p for p in params if p.star not in ("*", "**")]
    pos = 0
    for a in call.args:
        if a.star:
            return True
        if a.keyword is not None:
            if a.keyword.value == "name":
                continue
            p = by_name.get(a.keyword.value)
        else:
            p = positional[pos] if pos < len(positional) else None
            pos += 1
        if p is None or p.default is None:
            return True
        v = literal_value(a.value)
        if v is NOT_LITERAL or v != literal_value(p.default) or type(v) is not type(literal_value(p.default)):
            return True
    return False



def _in_keras_method(fn) -> bool:
    """Is ``fn`` (or the function it is nested in) a method of a Keras class of the file?
    A layer built there is rebuilt by its owner's constructor, never serialized itself."""
    while fn is not None and fn.parent is not None:
        fn = fn.parent
    return fn is not None and fn.cls is not None and fn.cls.kind is not None



def _is_super(expr) -> bool:
    return isinstance(expr, cst.Call) and isinstance(expr.func, cst.Name) and expr.func.value == "super"


def _elements(expr) -> list:
    if isinstance(expr, (cst.List, cst.Tuple)):
        return [e.value for e in expr.elements]
    return [expr] if expr is not None else []


def _enclosing_fit(stack):
    for anc in reversed(stack[:-1]):
        if isinstance(anc, cst.Call) and isinstance(anc.func, cst.Attribute) and anc.func.attr.value == "fit":
            return anc
        if isinstance(anc, (cst.FunctionDef, cst.ClassDef)):
            return None
    return None


_NOT_MODEL_EXT = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".npy", ".npz", ".txt", ".csv", ".json", ".pt",
                  ".pth", ".pkl", ".pickle", ".wav", ".mp3", ".mp4", ".svg", ".pdf", ".tiff", ".webp", ".ckpt")


def _model_path(expr) -> bool:
    """Could ``expr`` be where a model is saved? Not a literal path with an image/array/
    torch extension (``img.save("out.png")``)."""
    text = None
    if isinstance(expr, (cst.SimpleString, cst.ConcatenatedString)):
        v = literal_value(expr)
        text = v if isinstance(v, str) else None
    elif isinstance(expr, cst.FormattedString):
        parts = [p.value for p in expr.parts if isinstance(p, cst.FormattedStringText)]
        text = parts[-1] if parts and isinstance(expr.parts[-1], cst.FormattedStringText) else None
    if text is None:
        return True
    return not text.lower().endswith(_NOT_MODEL_EXT)


def _defines(cls_node, name: str) -> bool:
    return _method(cls_node, name) is not None or any(
        isinstance(s, cst.SimpleStatementLine) and any(
            isinstance(small, cst.Assign) and any(isinstance(t.target, cst.Name) and t.target.value == name
                                                   for t in small.targets) for small in s.body)
        for s in _body(cls_node))


def _body(cls_node) -> list:
    b = cls_node.body
    return list(b.body) if isinstance(b, cst.IndentedBlock) else []


def _method(cls_node, name: str):
    for s in _body(cls_node):
        if isinstance(s, cst.FunctionDef) and s.name.value == name:
            return s
        if isinstance(s, (cst.If, cst.Try)):
            for inner in s.body.body:
                if isinstance(inner, cst.FunctionDef) and inner.name.value == name:
                    return inner
    return None


def _positional_bases(cls_node) -> list:
    out = []
    for arg in cls_node.bases:
        if arg.keyword is not None:
            continue
        if dotted(arg.value) is None:
            continue
        out.append(arg.value)
    return out



def _names(names: list) -> str:
    shown = ", ".join(f"`{n}`" for n in names[:4])
    return shown + (", …" if len(names) > 4 else "")
