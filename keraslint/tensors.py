"""Is this expression a tensor here? The tensor value model behind the KL3 rules.

Graph-context functions (a layer's ``call``, a ``train_step``, a ``@tf.function``, a
``compile`` loss, a ``Dataset.map`` function) are marked by the Context
(:class:`keraslint.semantics.FunctionInfo`: ``graph``, ``tainted``). Taint says a value
*may* come from the inputs; the KL3 rules must not fire on Python flags and containers,
so this module answers the stricter question, *does it certainly hold a tensor*:

* :func:`tensor_value`: a tensor computed in the function from its tensor inputs (a
  TF/``keras.ops`` op on a tainted argument, ``tf.random``/``keras.random`` made there, a
  comparison, arithmetic or subscript with one, a local assigned one on every path);
  :func:`tensor_param` for the parameters that certainly are tensors.
* :func:`tensor_producing`: an expression that makes a tensor whatever its inputs (a
  helper's return, an attribute set in another method); :func:`returns_tensor` for a
  helper or method; :func:`keras_variable` for ``self.add_weight(...)``/``keras.Variable``.
* :func:`deferred_operands`: the operands whose answer is known only once the whole file
  is seen (``self.helper(...)``, ``helper(...)``, ``self.<attr>``), decided by
  :class:`TensorAttributes` (which ``self.<attr>`` hold a tensor or a Keras variable,
  from ``self.noise = tf.random.normal(...)`` in ``build``).
* :func:`eager_backend_branch`: inside ``if backend.backend() == "torch":`` code runs
  eagerly.
* :class:`HelperCalls`: the calls of module functions and methods of the same class, so
  that a helper called from a graph function counts as traced with it.

The two per-file components are Context components (``ctx.component``), created by the
first rule that asks (:func:`attributes`, :func:`helper_calls`) in its constructor: the
engine's single walk calls their hooks after the Context's and before the rules', which
only ask them questions. Files where no such rule runs pay nothing.
"""

from __future__ import annotations

from typing import Any, Iterator, Optional

import libcst as cst

from keraslint.semantics import is_random_tensor_call

# ---------------------------------------------------------------------------
# scopes and classes
# ---------------------------------------------------------------------------

def outermost(fn):
    while fn is not None and fn.parent is not None:
        fn = fn.parent
    return fn


def origin(fi):
    """The function a graph context comes from: nested functions and lambdas inside a
    graph function are traced with it and carry the same reason."""
    p = fi
    while p.parent is not None and p.parent.graph is not None and p.parent.graph == p.graph:
        p = p.parent
    return p


def class_and_bases(ctx, cls_name: str) -> list:
    out, todo = [], [cls_name]
    while todo and len(out) < 10:
        c = todo.pop()
        if c in out or c not in ctx.classes:
            continue
        out.append(c)
        todo.extend(b[6:] for b in ctx.classes[c].bases if b.startswith("local:"))
    return out


def local_ancestor(ctx, sub: str, base: str, depth: int = 0) -> bool:
    info = ctx.classes.get(sub)
    if info is None or depth > 8:
        return False
    for b in info.bases:
        if b == "local:" + base or (b.startswith("local:") and local_ancestor(ctx, b[6:], base, depth + 1)):
            return True
    return False


def instance_class(ctx, expr, depth: int = 0) -> Optional[str]:
    """The local Keras class ``expr`` is an instance of, when known (``C(...)``, a name
    assigned one, ``self`` in a method, a local factory returning one)."""
    if depth > 4:
        return None
    if isinstance(expr, cst.Name):
        if expr.value == "self":
            o = outermost(ctx.function)
            return o.cls.name if o is not None and o.cls is not None and o.cls.kind else None
        v = ctx.assigned_value(expr.value)
        return instance_class(ctx, v, depth + 1) if v is not None and v is not expr else None
    if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Name):
        name = expr.func.value
        if name in ctx.classes:
            return name if ctx.classes[name].kind else None
        for r in ctx.returns_of(name):
            c = instance_class(ctx, r, depth + 1)
            if c is not None:
                return c
    return None


def walk(node) -> Iterator:
    """All nodes under ``node`` (not into nested classes)."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        for c in n.children:
            if not isinstance(c, cst.ClassDef):
                stack.append(c)


# ---------------------------------------------------------------------------
# is this expression a tensor here
# ---------------------------------------------------------------------------

_NON_TENSOR_TESTS = (cst.Is, cst.IsNot, cst.In, cst.NotIn)

_TENSOR_NAMESPACES = ("keras.ops.", "tensorflow.", "jax.numpy.", "jax.lax.", "torch.")

_NOT_TENSOR_RESULTS = {
    "tensorflow.is_tensor", "keras.ops.is_tensor", "tensorflow.executing_eagerly", "keras.ops.shape",
    # (not `tf.rank`: in a graph it returns a scalar tensor, so `if tf.rank(y) > 1:` raises
    # OperatorNotAllowedInGraphError under `fit`; `x.shape.rank` / `ops.ndim` are Python ints)
    "keras.ops.ndim", "keras.ops.dtype", "tensorflow.get_static_value",
    "tensorflow.debugging.is_numeric_tensor", "torch.is_tensor", "torch.is_floating_point",
}

_TENSOR_METHODS = {"sum", "mean", "max", "min", "any", "all", "prod", "std", "abs"}


def tensor_value(ctx, expr, depth: int = 0) -> bool:
    """Does ``expr`` certainly hold a tensor computed from the function's tensor inputs
    (stricter than taint, for rules that must not fire on Python flags and containers)?
    A tensor op on tainted arguments, a comparison/arithmetic/subscript involving one or a
    tensor parameter, or a local assigned one. A bare parameter is not enough: ``if flag:``
    on a parameter without default is usually a Python flag."""
    if depth > 8:
        return False
    fn = ctx.function
    if fn is None or not fn.tainted:
        return False
    t = type(expr)
    if t is cst.Call:
        q = ctx.resolve(expr.func)
        if q is not None:
            if is_random_tensor_call(q):
                return True  # made inside the function: `if tf.random.uniform([]) < p:`
            return (q.startswith(_TENSOR_NAMESPACES) and q not in _NOT_TENSOR_RESULTS
                    and any(ctx.is_tainted(a.value) for a in expr.args))
        f = expr.func
        if isinstance(f, cst.Attribute) and f.attr.value in _TENSOR_METHODS and not expr.args:
            return tensor_value(ctx, f.value, depth + 1) or tensor_param(ctx, f.value)
        return False
    if t is cst.Name:
        if expr.value in {p.name.value for p in fn.params}:
            return False
        v = fn.assigned.get(expr.value)
        if v is None and expr.value in fn.unpacked and ctx.is_tainted(expr):
            # `a, b = ops.split(x, 2)` / `for t in ops.unstack(x)`: a part of a tensor result
            # is a tensor (a tuple of Python values, `x.shape`, `ops.shape(x)` is not)
            u = fn.unpacked[expr.value]
            return not isinstance(u, (cst.Tuple, cst.List)) and tensor_value(ctx, u, depth + 1)
        if v is None or v is expr:
            return False
        if expr.value not in fn.may:
            return ctx.is_tainted(expr) and tensor_value(ctx, v, depth + 1)
        # any value that may reach here (both arms of an if/else, a loop) that is a tensor
        return any(w is not expr and ctx.is_tainted(w) and tensor_value(ctx, w, depth + 1)
                   for w in ctx.may_values(expr.value, fn))
    if t is cst.Comparison:
        if any(isinstance(c.operator, _NON_TENSOR_TESTS) for c in expr.comparisons):
            return False
        operands = [expr.left] + [c.comparator for c in expr.comparisons]
        if any(isinstance(o, (cst.SimpleString, cst.ConcatenatedString, cst.FormattedString)) for o in operands):
            return False
        if any(isinstance(o, cst.Name) and o.value == "None" for o in operands):
            return False  # `t == None` is a Python bool: TF's __eq__ returns False for None
        return any(tensor_value(ctx, o, depth + 1) or tensor_param(ctx, o) for o in operands)
    if t is cst.BinaryOperation:
        return any(tensor_value(ctx, o, depth + 1) or tensor_param(ctx, o) for o in (expr.left, expr.right))
    if t is cst.UnaryOperation and not isinstance(expr.operator, cst.Not):
        return tensor_value(ctx, expr.expression, depth + 1) or tensor_param(ctx, expr.expression)
    if t is cst.Subscript:
        return tensor_value(ctx, expr.value, depth + 1) or tensor_param(ctx, expr.value)
    if t is cst.NamedExpr:  # `if (peak := ops.max(x)) > 1.0:`
        return tensor_value(ctx, expr.value, depth + 1)
    if t is cst.IfExp:  # `s = ops.sum(x) if k else 1.0`: either arm may be what it holds
        return tensor_value(ctx, expr.body, depth + 1) or tensor_value(ctx, expr.orelse, depth + 1)
    return False


def tensor_param(ctx, expr) -> bool:
    """A parameter that certainly holds a tensor. In a layer's ``call`` that is the input
    (the first parameter after ``self``): further parameters are as often Python values
    (``call(self, t, dim)``, ``call(self, inputs, mlen=None)``). In losses, metrics,
    train steps, ``tf.function``s and mapped functions every tainted parameter counts."""
    fn = ctx.function
    if not (isinstance(expr, cst.Name) and expr.value in fn.tainted):
        return False
    names = [p.name.value for p in fn.params if p.name.value not in ("self", "cls")]
    if expr.value not in names:
        return False
    if fn.cls is not None and fn.cls.kind == "layer" and fn.name == "call":
        return names[0] == expr.value
    return True


def only_lambda_arguments(fn, leaf) -> bool:
    """In a function given to `layers.Lambda`, only the first parameter is the input
    tensor; the others come from `arguments={...}` (Python values: `i == num_gpus - 1`)."""
    if not (fn.graph or "").startswith("a function given to `layers.Lambda`") or not fn.params:
        return False
    names = [p.name.value for p in fn.params]
    used = {n.value for n in walk(leaf) if isinstance(n, cst.Name)}
    if names[0] in used:
        return False
    others = used & set(names[1:])
    locals_used = (used & fn.tainted) - set(names)
    return bool(others) and not locals_used


_TENSOR_RESULT_PREFIXES = ("keras.ops.", "keras.random.", "tensorflow.math.", "tensorflow.random.",
                           "tensorflow.nn.", "tensorflow.linalg.")

_TF_TENSOR_FUNCS = {"reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_any", "reduce_all",
                    "reduce_prod", "greater", "less", "equal", "not_equal", "greater_equal", "less_equal",
                    "logical_and", "logical_or", "logical_not", "cast", "constant", "convert_to_tensor",
                    "Variable", "size", "norm", "abs", "maximum", "minimum", "where", "argmax", "argmin",
                    "squeeze", "gather", "matmul", "add", "multiply", "subtract", "divide", "zeros", "ones",
                    "fill", "cond", "reshape", "stack", "concat", "tensordot", "einsum", "round", "sqrt", "exp"}


def tensor_producing(ctx, expr, fi=None, depth: int = 0) -> bool:
    """Does ``expr`` certainly make a tensor whatever its inputs (a TF/`keras.ops`/random
    op, `self.add_weight`, a comparison or arithmetic with one)? Used for values built
    outside the parameters' taint: a helper's return, an attribute set in another method."""
    if depth > 6:
        return False
    t = type(expr)
    if t is cst.Call:
        q = ctx.resolve(expr.func)
        if q is not None:
            if q in _NOT_TENSOR_RESULTS:
                return False
            if q.startswith(_TENSOR_RESULT_PREFIXES):
                return q.rsplit(".", 1)[-1][:1].islower() and not q.startswith("keras.ops.is_")
            if q.startswith("tensorflow.") and q.count(".") == 1:
                return q.split(".", 1)[1] in _TF_TENSOR_FUNCS
            return False
        f = expr.func
        return (isinstance(f, cst.Attribute) and f.attr.value in ("add_weight", "add_variable")
                and isinstance(f.value, cst.Name) and f.value.value == "self")
    if t is cst.Comparison:
        if any(isinstance(c.operator, _NON_TENSOR_TESTS) for c in expr.comparisons):
            return False
        operands = [expr.left] + [c.comparator for c in expr.comparisons]
        return any(tensor_producing(ctx, o, fi, depth + 1) for o in operands)
    if t is cst.BinaryOperation:
        return tensor_producing(ctx, expr.left, fi, depth + 1) or tensor_producing(ctx, expr.right, fi, depth + 1)
    if t is cst.UnaryOperation and not isinstance(expr.operator, cst.Not):
        return tensor_producing(ctx, expr.expression, fi, depth + 1)
    if t is cst.Name and fi is not None:
        v = fi.assigned.get(expr.value)
        return v is not None and v is not expr and tensor_producing(ctx, v, fi, depth + 1)
    return False


def keras_variable(ctx, expr) -> bool:
    """``self.add_weight(...)`` / ``keras.Variable(...)``: a Keras 3 variable (whose truth
    value raises TypeError even eagerly)."""
    if not isinstance(expr, cst.Call):
        return False
    f = expr.func
    if (isinstance(f, cst.Attribute) and f.attr.value in ("add_weight", "add_variable")
            and isinstance(f.value, cst.Name) and f.value.value == "self"):
        return True
    return ctx.resolve(f) in ("keras.backend.Variable", "keras.Variable")


def eager_backend_branch(ctx) -> bool:
    """Inside ``if backend.backend() == "torch":`` / ``if is_torch_backend:``: the torch
    and numpy backends run `call` eagerly, so tensor-to-Python code there is fine."""
    stack = ctx.stack
    memo = ctx.__dict__.setdefault("_kl3_backend_tests", {})
    for i, anc in enumerate(stack[:-1]):
        if type(anc) is cst.If and stack[i + 1] is anc.body:
            hit = memo.get(id(anc))
            if hit is None or hit[0] is not anc:
                hit = memo[id(anc)] = (anc, names_backend(anc.test))
            if hit[1]:
                return True
    return False


def names_backend(test) -> bool:
    for n in walk(test):
        if isinstance(n, cst.SimpleString) and n.evaluated_value in ("torch", "numpy"):
            return True
        if isinstance(n, cst.Name) and "torch" in n.value.lower():
            return True
    return False


# ---------------------------------------------------------------------------
# helpers a graph function calls
# ---------------------------------------------------------------------------

_TF_FUNCTION_NAMES = ("tensorflow.function", "tensorflow.compat.v1.function", "tensorflow.compat.v2.function")


def helpers(ctx, kind: str, cls, name: str) -> list:
    if kind == "def":
        return [fi for fi in ctx.functions.get(name, ()) if fi.parent is None and fi.cls is None]
    classes = class_and_bases(ctx, cls)
    return [fi for fi in ctx.all_functions
            if fi.parent is None and fi.cls is not None and fi.cls.name in classes and fi.name == name]


def returns_tensor(ctx, fi) -> bool:
    """Does the helper certainly return a tensor? A ``@tf.function`` always does (its
    outputs are converted to tensors); otherwise every return must make one."""
    if isinstance(fi.node, cst.FunctionDef):
        for dec in fi.node.decorators:
            d = dec.decorator.func if isinstance(dec.decorator, cst.Call) else dec.decorator
            if ctx.resolve(d) in _TF_FUNCTION_NAMES and fi.returns:
                return True
    return bool(fi.returns) and all(tensor_producing(ctx, r, fi) for r in fi.returns)


def deferred_operands(ctx, fn, leaf) -> list:
    """Operands of a tested expression whose tensor-ness is known only at the end: calls
    of helpers (``self.m(...)``, a module function) and ``self.<attr>`` reads."""
    ops_ = [leaf]
    if isinstance(leaf, cst.Comparison):
        if any(isinstance(c.operator, _NON_TENSOR_TESTS) for c in leaf.comparisons):
            return []
        ops_ = [leaf.left] + [c.comparator for c in leaf.comparisons]
        if any(isinstance(o, cst.Name) and o.value == "None" for o in ops_):
            return []  # `t == None` is a Python bool: TF's __eq__ returns False for None
    elif isinstance(leaf, cst.BinaryOperation):
        ops_ = [leaf.left, leaf.right]
    elif isinstance(leaf, cst.UnaryOperation) and not isinstance(leaf.operator, cst.Not):
        ops_ = [leaf.expression]
    o = outermost(fn)
    cls = o.cls.name if o is not None and o.cls is not None and o.cls.kind is not None else None
    keys = []
    for e in ops_:
        if isinstance(e, cst.Call):
            f = e.func
            if (isinstance(f, cst.Attribute) and isinstance(f.value, cst.Name) and f.value.value == "self"
                    and cls is not None):
                keys.append(("method", cls, f.attr.value))
            elif isinstance(f, cst.Name) and ctx.qualname(f) is None:
                p, local = fn, False
                while p is not None:
                    local = local or f.value in p.locals
                    p = p.parent
                if not local:
                    keys.append(("def", None, f.value))
        elif (isinstance(e, cst.Attribute) and isinstance(e.value, cst.Name) and e.value.value == "self"
              and cls is not None):
            keys.append(("attr", cls, e.attr.value))
    return keys


def record_helper_call(ctx, node: cst.Call, calls: list) -> None:
    """Remember ``helper(...)`` / ``self.helper(...)`` calls: a helper called from a
    graph function is traced with it, so its trace-time effects happen there too."""
    fn = ctx.function
    if fn is None:
        return
    func = node.func
    if isinstance(func, cst.Name):
        p = fn
        while p is not None:
            if func.value in p.locals:
                return
            p = p.parent
        if func.value in ctx.module_assigned or ctx.qualname(func):
            return
        calls.append((fn, ("def", func.value)))
    elif (isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self"
          and origin(fn).cls is not None):
        calls.append((fn, ("method", origin(fn).cls.name, func.attr.value)))


def helper_callees(ctx, key) -> list:
    if key[0] == "def":
        return [fi for fi in ctx.functions.get(key[1], ()) if fi.parent is None and fi.cls is None]
    return [fi for fi in ctx.all_functions
            if fi.parent is None and fi.cls is not None and fi.cls.name == key[1] and fi.name == key[2]]

# ---------------------------------------------------------------------------
# per-file components
# ---------------------------------------------------------------------------

def attributes(ctx: Any) -> "TensorAttributes":
    """The file's record of tensor-valued ``self.`` attributes, created on first use."""
    return ctx.component("tensor_attributes", TensorAttributes)


def helper_calls(ctx: Any) -> "HelperCalls":
    """The file's record of helper calls (:func:`record_helper_call`), created on first use."""
    return ctx.component("helper_calls", HelperCalls)


class TensorAttributes:
    """``self.<attr>`` assigned a tensor (or a Keras variable) in some method of a Keras
    class of the file: ``self.noise = tf.random.normal(...)`` in ``build`` makes
    ``self.noise`` a tensor in ``call``."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.tensor_attrs: set = set()  # (class, attr) assigned a tensor in some method
        self.var_attrs: set = set()  # (class, attr) assigned a Keras variable (add_weight)

    def visit_Assign(self, node: cst.Assign) -> None:  # noqa: N802
        o = outermost(self.ctx.function)
        if o is None or o.cls is None or o.cls.kind is None:
            return
        for t in node.targets:
            tg = t.target
            if (isinstance(tg, cst.Attribute) and isinstance(tg.value, cst.Name) and tg.value.value == "self"
                    and tensor_producing(self.ctx, node.value)):
                self.tensor_attrs.add((o.cls.name, tg.attr.value))
                if keras_variable(self.ctx, node.value):
                    self.var_attrs.add((o.cls.name, tg.attr.value))

    # -- queries (complete once the walk is over) ------------------------------------
    def is_tensor(self, cls: str, attr: str) -> bool:
        """Does ``self.<attr>`` of class ``cls`` (or a local base) hold a tensor?"""
        return any((c, attr) in self.tensor_attrs for c in class_and_bases(self.ctx, cls))

    def is_keras_variable(self, fn: Any, expr: Any) -> bool:
        """``expr`` is ``self.<attr>`` where the class of ``fn`` stores a Keras weight."""
        if not (isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name) and expr.value.value == "self"):
            return False
        o = outermost(fn)
        if o is None or o.cls is None:
            return False
        return any((c, expr.attr.value) in self.var_attrs for c in class_and_bases(self.ctx, o.cls.name))

    def deferred_is_tensor(self, key: tuple) -> bool:
        """Decide an operand key of :func:`deferred_operands`: an attribute set to a
        tensor, or a helper/method that certainly returns one."""
        kind, cls, name = key
        if kind == "attr":
            return self.is_tensor(cls, name)
        return any(returns_tensor(self.ctx, fi) for fi in helpers(self.ctx, kind, cls, name))


class HelperCalls:
    """Every ``helper(...)`` / ``self.helper(...)`` call of the file, as
    ``(caller FunctionInfo, callee key)`` in source order (:func:`record_helper_call`)."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.calls: list = []

    def visit_Call(self, node: cst.Call) -> None:  # noqa: N802
        record_helper_call(self.ctx, node, self.calls)
