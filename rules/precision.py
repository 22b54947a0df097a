"""KL2: precision and backend — global switches and legacy APIs that make a Keras program
compute in another precision, or in another Keras, than its author and reference assume.

The facts quoted in the messages (the default float type, when Keras 3 fixes its global
dtype policy, what a mixed policy computes in, what Keras 3 does with Keras 2 objects and
TF1 graph mode) are checked against the installed Keras 3.15 / TensorFlow 2.21 by
``tests/test_defaults_seeds_precision.py``.
"""

from __future__ import annotations

from typing import Any, Optional

import libcst as cst

from keraslint.rule import Fix, InsertStatements, Replace, Rule
from keraslint.semantics import dotted, get_arg, literal_value

from keraslint.timeline import POLICY_SETTERS, TimelineRule, move_before, short

# ---------------------------------------------------------------------------
# Library facts (checked by tests/test_defaults_seeds_precision.py)
# ---------------------------------------------------------------------------

DEFAULT_FLOATX = "float32"
# Machine epsilon of each float type (np.finfo / ml_dtypes.finfo): how closely two
# implementations that compute in different types can agree.
FLOAT_EPS = {"float64": "2.2e-16", "float32": "1.2e-7", "float16": "9.8e-4", "bfloat16": "7.8e-3"}
# What, on the reference side of a parity context, shows that it computes in the same
# float type as Keras after `set_floatx(v)`: dtype names, conversion methods, global switches.
REFERENCE_DTYPES = {
    "float64": ({"torch.float64", "torch.double", "tensorflow.float64", "jax.numpy.float64", "tensorflow.double",
                 "torch.DoubleTensor"}, {"double"}),
    "float16": ({"torch.float16", "torch.half", "tensorflow.float16", "jax.numpy.float16", "torch.HalfTensor"},
                {"half"}),
    "bfloat16": ({"torch.bfloat16", "tensorflow.bfloat16", "jax.numpy.bfloat16"}, {"bfloat16"}),
}
SET_FLOATX = {"keras.config.set_floatx", "keras.backend.set_floatx"}
FLOATX_READS = {"keras.config.floatx", "keras.backend.floatx"}
# Compute dtype of the mixed policies and what it means for a model's output.
MIXED_FACTS = {
    "mixed_float16": ("float16", "largest value 65504, machine epsilon 9.8e-4"),
    "mixed_bfloat16": ("bfloat16", "machine epsilon 7.8e-3, about 3 significant digits"),
}
POLICY_CLASSES = {"keras.mixed_precision.Policy", "keras.mixed_precision.DTypePolicy", "keras.DTypePolicy",
                  "keras.dtype_policies.DTypePolicy", "keras.dtype_policies.FloatDTypePolicy"}
FLOAT32_NAMES = {"tensorflow.float32", "numpy.float32", "torch.float32", "keras.float32"}
LOW_DTYPES = {"float16", "bfloat16", "mixed_float16", "mixed_bfloat16"}
# Final layers whose output dtype a float policy does not decide (or that we cannot see into).
NON_FLOAT_OUTPUT = {"Input", "InputLayer", "Lambda", "TFSMLayer", "TorchModuleWrapper", "JaxLayer", "FlaxLayer",
                    "StringLookup", "IntegerLookup", "TextVectorization", "Hashing", "HashedCrossing",
                    "CategoryEncoding", "Discretization"}
# Keras 2 helper modules whose functions take and return plain Python/NumPy values.
KERAS2_PURE_UTILS = ("conv_utils.", "np_utils.")
# What Keras 3 says about Keras 2 layers and TF1 layers / graph mode.
KERAS2_LAYER_ERROR = "Only instances of `keras.Layer` can be added to a Sequential model"
TF1_LAYERS_ERROR = "is not available with Keras 3."
GRAPH_MODE_FIT_ERROR = "`tf.data.Dataset` only supports Python-style iteration in eager mode or within tf.function."
TF1_GRAPH_CALLS = {
    "tensorflow.compat.v1.disable_eager_execution": "disable",
    "tensorflow.compat.v1.disable_v2_behavior": "disable",
    "tensorflow.compat.v1.Session": "session",
    "tensorflow.compat.v1.InteractiveSession": "session",
    "tensorflow.Session": "session",
    "tensorflow.compat.v1.placeholder": "placeholder",
    "tensorflow.compat.v1.placeholder_with_default": "placeholder",
    "tensorflow.placeholder": "placeholder",
}

# The same functions/classes under TensorFlow's internal module paths (`from
# tensorflow.python.framework.ops import disable_eager_execution`): the identical objects
# (checked in tests/test_kl1_kl2_real_code.py).
TF_INTERNAL_ALIASES = {
    "tensorflow.python.framework.ops.disable_eager_execution": "tensorflow.compat.v1.disable_eager_execution",
    "tensorflow.python.compat.v2_compat.disable_v2_behavior": "tensorflow.compat.v1.disable_v2_behavior",
    "tensorflow.python.client.session.Session": "tensorflow.compat.v1.Session",
    "tensorflow.python.client.session.InteractiveSession": "tensorflow.compat.v1.InteractiveSession",
    "tensorflow.python.ops.array_ops.placeholder": "tensorflow.compat.v1.placeholder",
    "tensorflow.python.ops.array_ops.placeholder_with_default": "tensorflow.compat.v1.placeholder_with_default",
}


def _floatx_value(ctx: Any, call: cst.Call) -> Any:
    a = get_arg(call, "value", 0)
    return literal_value(a.value) if a is not None else None


def _is_restore(ctx: Any, call: cst.Call) -> bool:
    """``set_floatx(old)`` where ``old = floatx()``: putting the previous value back."""
    a = get_arg(call, "value", 0)
    if a is None or not isinstance(a.value, cst.Name):
        return False
    v = ctx.assigned_value(a.value.value)
    return isinstance(v, cst.Call) and ctx.resolve(v.func) in FLOATX_READS


class GlobalFloatx(Rule):
    """
    ## What it does
    Flags a call of `set_floatx(...)` through any alias (`keras.config.set_floatx`,
    `keras.backend.set_floatx`, `tf.keras.backend.set_floatx`, `from keras.config import
    set_floatx`) that switches away from the default, in a file that compares Keras with
    another implementation (the parity context: a PyTorch, raw-TensorFlow or JAX side)
    whose side does not make the same switch. A reference that computes in the same type
    (`torch.float64`, `.double()`, `torch.set_default_dtype`, `tf.float64`, JAX x64) is
    not flagged: a conversion script that sets float64 on purpose to compare with a
    float64 reference does the right thing. A Keras-only file is not flagged either:
    nothing there computes in float32 beside it. Reading `keras.config.floatx()`,
    per-layer `dtype=`, `set_floatx("float32")`, and files that save `floatx()` and put
    it back (`tearDown`, a context manager: the switch is scoped) are not flagged. With
    `strict = true` every switch is reported.

    ## Why is this bad?
    Keras's default float type is `float32`, like PyTorch's and TensorFlow's. A global
    switch to `float64` (or `float16`) changes the precision of every layer, variable and
    tensor created afterwards, far from the line that did it; a reference implementation
    that never made the switch computes in `float32`, so the two agree only to float32's
    epsilon (1.2e-7 relative; float64's is 2.2e-16), or float16's (9.8e-4) after a switch
    to float16, however exact the port is. `keraslint verify` runs the model in float32
    and float64 in fresh processes and reports the largest output difference.

    ## Example
    ```python
    keras.config.set_floatx("float64")
    model = keras.Sequential([keras.layers.Dense(10)])
    reference = torch.nn.Linear(4, 10)  # float32
    ```

    ## Use instead
    ```python
    model = keras.Sequential([keras.layers.Dense(10)])  # float32 like the reference
    reference = torch.nn.Linear(4, 10)
    ```
    """

    code = "KL201"
    name = "global-floatx"
    severity = "warning"
    fix_applicability = None
    tokens = ("set_floatx",)

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.calls: list = []
        self.saved_attrs: set = set()  # self.X = floatx()
        self.restores = False
        self.ref_names: set = set()  # canonical dtype names used in the file
        self.ref_methods: set = set()  # `.double()` / `.half()` conversions

    def visit_Assign(self, node: cst.Assign) -> None:
        v = node.value
        if isinstance(v, cst.Call) and self.ctx.resolve(v.func) in FLOATX_READS:
            for t in node.targets:
                if isinstance(t.target, cst.Attribute):
                    self.saved_attrs.add(t.target.attr.value)

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if node.attr.value in ("float64", "double", "float16", "half", "bfloat16", "DoubleTensor", "HalfTensor"):
            q = self.ctx.resolve(node)
            if q is not None:
                self.ref_names.add(q)

    def visit_Call(self, node: cst.Call) -> None:
        f = node.func
        if isinstance(f, cst.Attribute) and f.attr.value in ("double", "half", "bfloat16") and not node.args:
            self.ref_methods.add(f.attr.value)
            return
        if isinstance(f, cst.Attribute) and f.attr.value == "update" and len(node.args) >= 2 \
                and literal_value(node.args[0].value) == "jax_enable_x64" and literal_value(node.args[1].value):
            self.ref_names.add("jax.numpy.float64")
            return
        if self.ctx.resolve(f) not in SET_FLOATX:
            return
        if _is_restore(self.ctx, node):
            self.restores = True
            return
        self.calls.append(node)

    def _shared(self, v: Any) -> bool:
        """Does the reference side compute in ``v`` too?"""
        names, methods = REFERENCE_DTYPES.get(v, (set(), set()))
        return bool(self.ref_names & names or self.ref_methods & methods)

    def finish(self) -> None:
        for node in self.calls:
            a = get_arg(node, "value", 0)
            if a is not None and isinstance(a.value, cst.Attribute) and a.value.attr.value in self.saved_attrs:
                self.restores = True  # set_floatx(self._floatx) after self._floatx = floatx()
        if self.restores or not self.calls:
            return  # the file saves floatx() and puts it back: its switches are scoped, not global
        par = self.ctx.parity
        if par is None:
            return
        for node in self.calls:
            v = _floatx_value(self.ctx, node)
            if v == DEFAULT_FLOATX:
                continue
            if par.kind != "strict" and self._shared(v):
                continue
            what = f"'{v}'" if isinstance(v, str) else "another float type"
            low = v if v in ("float16", "bfloat16") else DEFAULT_FLOATX
            if par.kind == "strict":
                why = f"{par.phrase()}; a reference that does not share the switch computes in float32"
            else:
                why = (f"{par.phrase()}, and that side shows no {v if isinstance(v, str) else 'such'} switch, "
                       f"so it computes in float32")
            self.report(node, f"`{short(node)}` switches Keras's global float type from '{DEFAULT_FLOATX}' (the "
                              f"default, as in PyTorch and TensorFlow) to {what} for every layer and tensor "
                              f"created afterwards; {why}: the two agree only to {low}'s epsilon "
                              f"({FLOAT_EPS[low]})", refs={"ctx": par.node} if par.node is not None else None)


class FloatxAfterBuild(TimelineRule):
    """
    ## What it does
    Flags `set_floatx(...)` that runs, in execution order, after a Keras layer or model
    was created (`keras.Input`, any `keras.layers` class, `Sequential`/`Model`, a model
    loaded or cloned, a layer subclass of the file), with no `clear_session()` in between.
    Initializers, losses, metrics and optimizers created before are harmless and not
    counted: they do not fix the policy.

    ## Why is this bad?
    In Keras 3 the first layer fixes the global dtype policy from `floatx()` at that
    moment (`keras.config.dtype_policy()` caches `DTypePolicy(floatx())`). A later
    `set_floatx("float64")` changes what `floatx()` returns but not the policy, so layers
    created afterwards silently stay `float32`, while tensors from `keras.ops` follow the
    new float type. (Measured on Keras 3.15.1: `Dense` created after `set_floatx("float64")`
    has dtype float32 when any layer existed before the call, float64 otherwise.)
    `keraslint verify` compares the model with the float type the author asked for.

    ## Example
    ```python
    inputs = keras.Input((4,))
    keras.config.set_floatx("float64")
    outputs = keras.layers.Dense(1)(inputs)  # still float32
    ```

    ## Use instead
    ```python
    keras.config.set_floatx("float64")
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(1)(inputs)  # float64
    ```
    """

    code = "KL202"
    name = "floatx-after-build"
    severity = "error"
    fix_applicability = "unsafe"
    tokens = ("set_floatx",)

    def finish(self) -> None:
        tl = self.tl
        done: set = set()
        for key in (0, *tl.function_keys()):
            seq = tl.sequence(key)
            first = None
            for s in seq:
                if s.kind == "build" and s.event.build.policy and not s.event.build.legacy:
                    if first is None:
                        first = s
                elif s.kind == "clear":
                    first = None
                elif s.kind == "floatx" and first is not None and id(s.node) not in done:
                    v = _floatx_value(self.ctx, s.node)
                    if v == DEFAULT_FLOATX or _is_restore(self.ctx, s.node):
                        continue
                    done.add(id(s.node))
                    what = f"'{v}'" if isinstance(v, str) else "the new float type"
                    msg = (f"`{short(s.node)}` runs after `{short(first.node)}` was created: Keras 3 fixed the "
                           f"global dtype policy at '{DEFAULT_FLOATX}' with the first layer, so layers created "
                           f"after this call still compute in {DEFAULT_FLOATX}, not {what}")
                    fix = None
                    mv = move_before(s, first)
                    if mv is not None:
                        stmt, anchor = mv
                        code = cst.Module([]).code_for_node(stmt.with_changes(leading_lines=()))
                        fix = Fix.unsafe(Replace(stmt, None), InsertStatements(code, anchor=anchor, after=False),
                                         description="move set_floatx above the first layer")
                    self.report(s.node, msg, fix)


class Float16Output(TimelineRule):
    """
    ## What it does
    In a file that compares Keras with another implementation (the parity context: a
    PyTorch, raw-TensorFlow or JAX reference computing in float32), flags the final
    layer of a model built under a global `mixed_float16` or `mixed_bfloat16` policy (`keras.mixed_precision.set_global_policy`,
    `keras.config.set_dtype_policy`, `tf.keras.mixed_precision.set_global_policy`, also
    with a `Policy`/`DTypePolicy` object) when it has no `dtype="float32"`. The final
    layer is the last element of a `Sequential` list (or the last `.add`), the layer that
    produces a functional model's `outputs`, or the layer whose result a `Model`
    subclass's `call` returns. A final `Activation(..., dtype="float32")` is the fix and
    is not flagged. The policy is read when a layer is constructed, so a model built
    before the policy call (in execution order; a model-building function defined before
    it and handed to a tuner) is not flagged; nor is a model used as an inner block of
    another (given to a model/layer constructor, called on a symbolic tensor or inside a
    class of the file): its last layer is not the output the user gets. Without a
    parity context a float16 output is what mixed precision is for (the loss casts it to
    float32) and nothing is flagged; `strict` reports it everywhere.

    ## Why is this bad?
    Under a mixed policy every layer computes in the policy's compute dtype: `float16`
    (largest value 65504, machine epsilon 9.8e-4) or `bfloat16` (epsilon 7.8e-3). A final
    softmax or logit layer in that dtype returns float16 predictions (`predict` and the
    metrics see about 3 significant digits) and overflows logits above 65504 to `inf`
    before a softmax. Keras 3 losses convert predictions to their own dtype, float32
    (`Loss.__call__` runs `convert_to_tensor(y_pred, dtype=self.dtype)`), but only after
    that rounding. The Keras mixed-precision guide asks for a float32 output layer. `keraslint verify` compares the outputs against the same
    weights with a float32 final layer.

    ## Example
    ```python
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(10, activation="softmax")])
    ```

    ## Use instead
    ```python
    keras.mixed_precision.set_global_policy("mixed_float16")
    model = keras.Sequential([
        keras.Input((8,)),
        keras.layers.Dense(10),
        keras.layers.Activation("softmax", dtype="float32"),
    ])
    ```
    """

    code = "KL203"
    name = "float16-output"
    severity = "warning"
    fix_applicability = None
    tokens = ("mixed_",)

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.n = 0
        self.policies: list = []  # (name, node, scope, index)
        self.other_policy = False
        self.candidates: list = []  # (final expr, scope, index)
        self.seq_vars: dict = {}  # variable -> index in candidates
        self.self_attrs: dict = {}  # (class, attr) -> value
        self.returns: list = []  # (class, expr, FunctionInfo)
        self.class_n: dict = {}  # class name -> call count when its definition was reached
        self.call_assigns: dict = {}  # local function name -> names assigned its result
        self.inner_names: set = set()  # names used as a block of another model/layer
        self.inner_classes: set = set()  # local classes instantiated inside another class

    def _scope(self) -> int:
        fn = self.ctx.function
        return id(fn) if fn is not None else 0

    def _policy_name(self, expr: Any, depth: int = 0) -> Any:
        v = literal_value(expr)
        if isinstance(v, str):
            return v
        if isinstance(expr, cst.Call) and self.ctx.resolve(expr.func) in POLICY_CLASSES:
            a = get_arg(expr, "name", 0)
            return self._policy_name(a.value, depth + 1) if a is not None else None
        if isinstance(expr, cst.Name) and depth < 5:
            val = self.ctx.assigned_value(expr.value)
            if val is not None and val is not expr:
                return self._policy_name(val, depth + 1)
        return None

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self.class_n.setdefault(node.name.value, self.n)

    def _in_class_method(self) -> bool:
        """Inside a method of a Keras layer/model class of this file (its `call`, `__init__`)."""
        fn = self.ctx.function
        while fn is not None:
            if fn.cls is not None:
                return self.ctx.class_kind(fn.cls) is not None
            fn = fn.parent
        return False

    def _symbolic(self, expr: Any, depth: int = 0) -> bool:
        """Is ``expr`` a symbolic tensor of a functional graph under construction
        (``keras.Input(...)``, a layer's output, a name bound to one)?"""
        if depth > 8:
            return False
        if isinstance(expr, cst.Name):
            v = self.ctx.assigned_value(expr.value)
            return v is not None and v is not expr and self._symbolic(v, depth + 1)
        if isinstance(expr, cst.Subscript):
            return self._symbolic(expr.value, depth + 1)
        if isinstance(expr, cst.Call):
            b = self.tl.classify_build(expr)
            if b is not None:
                return b.layer in ("Input", "InputLayer")
            f = expr.func
            if isinstance(f, cst.Call):
                b = self.tl.classify_build(f)
                return b is not None and b.layer is not None
            if isinstance(f, cst.Name) and (self._key(f.value) in self.inner_names or f.value in self.seq_vars):
                return True
            return any(self._symbolic(a.value, depth + 1) for a in expr.args[:1])
        return False

    def _key(self, name: str) -> str:
        """``name`` qualified by the scope that binds it (a function's local, else the
        module's): the same name in two test methods is two models."""
        fn = self.ctx.function
        while fn is not None and name not in fn.locals:
            fn = fn.parent
        return f"{id(fn) if fn is not None else 0}:{name}"

    def _record_inner_uses(self, node: cst.Call) -> None:
        """Names and local classes used as a block of another model: given to a Keras
        model/layer constructor (`Sequential([encoder, ...])`, `Siamese(encoder)`,
        `TimeDistributed(block)`), called on a symbolic tensor (`encoder(inputs)`), or
        called / instantiated inside a method of a class of this file."""
        ctx = self.ctx
        f = node.func
        in_method = self._in_class_method()
        if isinstance(f, cst.Name) and ctx.resolve(f) is None:
            if f.value in ctx.classes and in_method:
                self.inner_classes.add(f.value)
            if in_method or any(self._symbolic(a.value) for a in node.args):
                self.inner_names.add(self._key(f.value))
        local_ctor = isinstance(f, cst.Name) and f.value in ctx.classes and ctx.resolve(f) is None
        if local_ctor or self.tl.classify_build(node) is not None:
            for a in node.args:
                vals = [a.value]
                if isinstance(a.value, (cst.List, cst.Tuple)):
                    vals = [e.value for e in a.value.elements]
                for v in vals:
                    if isinstance(v, cst.Name):
                        self.inner_names.add(self._key(v.value))
                        if v.value in ctx.classes:
                            self.inner_classes.add(v.value)
                    elif isinstance(v, cst.Call) and isinstance(v.func, cst.Name) and v.func.value in ctx.classes:
                        self.inner_classes.add(v.func.value)

    def visit_Call(self, node: cst.Call) -> None:
        self.n += 1
        ctx = self.ctx
        self._record_inner_uses(node)
        q = ctx.resolve(node.func)
        if q in POLICY_SETTERS:
            a = get_arg(node, "policy", 0) or get_arg(node, "value", 0)
            name = self._policy_name(a.value) if a is not None else None
            if name in MIXED_FACTS:
                self.policies.append((name, node, self._scope(), self.n))
            elif name is not None:
                self.other_policy = True
            return
        if q == "keras.models.Sequential":
            a = get_arg(node, "layers", 0)
            last = None
            if a is not None and isinstance(a.value, (cst.List, cst.Tuple)) and a.value.elements:
                last = self._ctor_now(a.value.elements[-1].value)
            self.candidates.append([last, self._scope(), node, self.n, self._bound(node)])
            self._bind_seq(node, len(self.candidates) - 1)
        elif q == "keras.models.Model":
            a = get_arg(node, "outputs", 1)
            if a is not None:
                for e in self._outputs(a.value):
                    self.candidates.append([self._ctor_now(e), self._scope(), node, self.n, self._bound(node)])
        elif isinstance(node.func, cst.Attribute) and node.func.attr.value == "add" and node.args \
                and isinstance(node.func.value, cst.Name) and node.func.value.value in self.seq_vars:
            self.candidates[self.seq_vars[node.func.value.value]][0] = self._ctor_now(node.args[0].value)

    def _bound(self, node: cst.Call) -> set:
        """Names the model built by ``node`` is assigned to; for a model a local function
        returns, also the names its callers assign the result to (resolved in finish). A
        model built inside a method of a Keras layer/model class of this file is a block of
        that class: marked inner."""
        out: set = set()
        fn = self.ctx.function
        while fn is not None and fn.cls is None:
            fn = fn.parent
        if fn is not None and self.ctx.class_kind(fn.cls) is not None:
            self.inner_names.add("@inner:" + str(id(node)))
            return {"@inner:" + str(id(node))}
        stack = self.ctx.stack
        if len(stack) >= 2 and isinstance(stack[-2], cst.Assign) and stack[-2].value is node:
            for t in stack[-2].targets:
                if isinstance(t.target, cst.Name):
                    out.add(self._key(t.target.value))
        fn = self.ctx.function
        if fn is not None and fn.cls is None and isinstance(fn.node, cst.FunctionDef) and len(stack) >= 2 and (
                (isinstance(stack[-2], cst.Return) and stack[-2].value is node) or out):
            out.add("()" + fn.name)  # returned (directly or through a name; checked in finish)
        return out

    def visit_Assign(self, node: cst.Assign) -> None:
        self._visit_assign(node)

    def _bind_seq(self, node: cst.Call, idx: int) -> None:
        stack = self.ctx.stack
        if len(stack) >= 2 and isinstance(stack[-2], cst.Assign) and stack[-2].value is node:
            for t in stack[-2].targets:
                if isinstance(t.target, cst.Name):
                    self.seq_vars[t.target.value] = idx

    def _outputs(self, expr: Any, depth: int = 0) -> list:
        if isinstance(expr, (cst.List, cst.Tuple)):
            return [e.value for e in expr.elements]
        if isinstance(expr, cst.Dict):
            return [e.value for e in expr.elements if isinstance(e, cst.DictElement)]
        if isinstance(expr, cst.Name) and depth < 5:
            v = self.ctx.assigned_value(expr.value)
            if isinstance(v, (cst.List, cst.Tuple, cst.Dict)):
                return self._outputs(v, depth + 1)
        return [expr]

    def _visit_assign(self, node: cst.Assign) -> None:
        v = node.value
        if isinstance(v, cst.Call) and isinstance(v.func, cst.Name) and self.ctx.resolve(v.func) is None:
            for t in node.targets:
                if isinstance(t.target, cst.Name):
                    self.call_assigns.setdefault(v.func.value, set()).add(self._key(t.target.value))
        fn = self.ctx.function
        if fn is not None and fn.name == "__init__" and fn.cls is not None:
            for t in node.targets:
                tgt = t.target
                if isinstance(tgt, cst.Attribute) and isinstance(tgt.value, cst.Name) and tgt.value.value == "self":
                    self.self_attrs[(fn.cls.name, tgt.attr.value)] = node.value

    def visit_Return(self, node: cst.Return) -> None:
        fn = self.ctx.function
        if fn is not None and fn.name == "call" and fn.cls is not None and node.value is not None \
                and self._is_model_class(fn.cls.name):
            self.returns.append((fn.cls.name, node.value, fn))

    def _is_model_class(self, name: str, seen: Optional[set] = None) -> bool:
        info = self.ctx.classes.get(name)
        seen = seen or set()
        if info is None or name in seen:
            return False
        seen.add(name)
        for b in info.bases:
            if b.startswith("local:"):
                if self._is_model_class(b[6:], seen):
                    return True
            elif b in ("keras.models.Model", "keras.models.Sequential"):
                return True
        return False

    # -- resolving the final layer ------------------------------------------------
    def _layer_ctor(self, expr: Any, cls: Optional[str] = None, fn: Any = None, depth: int = 0) -> Any:
        if depth > 6 or expr is None:
            return None
        tl = self.tl
        if isinstance(expr, cst.Call):
            b = tl.classify_build(expr)
            if b is not None:
                return expr if b.layer else None
            f = expr.func
            if isinstance(f, cst.Call):
                b = tl.classify_build(f)
                return f if b is not None and b.layer else None
            if isinstance(f, cst.Attribute) and isinstance(f.value, cst.Name) and f.value.value == "self" and cls:
                return self._layer_ctor(self.self_attrs.get((cls, f.attr.value)), cls, fn, depth + 1)
            if isinstance(f, cst.Name):
                v = fn.assigned.get(f.value) if fn is not None else None
                return self._layer_ctor(v, cls, fn, depth + 1) if isinstance(v, cst.Call) else None
            return None
        if isinstance(expr, cst.Name) and fn is not None:
            return self._layer_ctor(fn.assigned.get(expr.value), cls, fn, depth + 1)
        return None

    def _ctor_now(self, expr: Any, depth: int = 0) -> Any:
        """The layer construction behind ``expr``, resolving names as assigned so far."""
        if depth > 6 or expr is None:
            return None
        if isinstance(expr, cst.Call):
            b = self.tl.classify_build(expr)
            if b is not None:
                return expr if b.layer else None
            f = expr.func
            if isinstance(f, cst.Call):
                b = self.tl.classify_build(f)
                return f if b is not None and b.layer else None
            if isinstance(f, cst.Name):
                v = self.ctx.assigned_value(f.value)
                return self._ctor_now(v, depth + 1) if isinstance(v, cst.Call) else None
            return None
        if isinstance(expr, cst.Name):
            v = self.ctx.assigned_value(expr.value)
            return self._ctor_now(v, depth + 1) if v is not expr else None
        return None

    def _dtype_ok(self, call: cst.Call) -> Optional[bool]:
        """True: float32 given; False: no dtype or a 16-bit one; None: unknown."""
        a = get_arg(call, "dtype")
        if a is None:
            return False
        v = literal_value(a.value)
        if v == "float32":
            return True
        if isinstance(v, str):
            return False if v in LOW_DTYPES else None
        if self.ctx.resolve(a.value) in FLOAT32_NAMES:
            return True
        if isinstance(a.value, cst.Call) and self._policy_name(a.value) == "float32":
            return True
        return None

    def finish(self) -> None:
        if not self.policies or self.other_policy:
            return
        par = self.ctx.parity
        if par is None:
            return  # nothing compares the float16 outputs with a float32 reference
        pname, pnode, pscope, pn = self.policies[0]
        # The policy is read when a layer is constructed: only models built after the policy
        # call in execution order count (the rest of its scope, with the functions and
        # classes it calls). A model in a function that never runs before the call counts
        # when the function is defined after it (it can only run afterwards).
        after: set = set()
        before: set = set()
        classes_after: set = set()
        classes_before: set = set()
        seen_policy = False
        for st in self.tl.sequence(pscope):
            if st.node is pnode:
                seen_policy = True
            elif st.kind == "build":
                (after if seen_policy else before).add(id(st.node))
                (classes_after if seen_policy else classes_before).add(st.event.build.name)
        finals: list = []
        for layer, scope, model, n, bound in self.candidates:
            if id(model) in after or (scope != 0 and id(model) not in before and n > pn):
                if not self._inner(bound):
                    finals.append(layer)
        for cls, expr, fn in self.returns:
            if cls in self.inner_classes:
                continue
            if cls in classes_after or (cls not in classes_before and self.class_n.get(cls, -1) >= pn):
                finals.append(self._layer_ctor(expr, cls, fn))
        compute, facts = MIXED_FACTS[pname]
        seen: set = set()
        for layer in finals:
            if layer is None or id(layer) in seen:
                continue
            seen.add(id(layer))
            b = self.tl.classify_build(layer)
            if b is None or b.layer in NON_FLOAT_OUTPUT or b.legacy:
                continue
            if self._dtype_ok(layer) is not False:
                continue
            self.report(layer, f"final layer `{short(layer)}` has no `dtype=\"float32\"` under the global "
                               f"'{pname}' policy: it computes and returns {compute} ({facts}), so the model's "
                               f"outputs agree with a float32 reference only to {compute} precision and large "
                               f"values overflow ({par.phrase()}; Keras losses cast predictions to float32 only "
                               f"after that rounding); give it `dtype=\"float32\"` or end with a float32 "
                               f"`Activation`", refs={"ctx": par.node} if par.node is not None else None)

    def _inner(self, bound: set) -> bool:
        """Is the model bound to these names used as a block of another model?"""
        names = {b for b in bound if not b.startswith("()")}
        for b in bound:
            if b.startswith("()"):
                names |= self.call_assigns.get(b[2:], set())
        return bool(names & self.inner_names)


_KERAS3_ROOTS = ("keras", "keras_hub", "keras_nlp")


def _mentions_version(expr: Any) -> bool:
    """Does a condition read a version (``__version__``, ``version_info``, ``VERSION``)?"""
    found = []

    class V(cst.CSTVisitor):
        def visit_Name(self, n: cst.Name) -> None:
            if n.value in ("__version__", "version_info", "VERSION", "is_tf_keras", "tf_version", "keras_version"):
                found.append(n)

    expr.visit(V())
    return bool(found)


# TF1 code that runs in a graph of its own, or as an Estimator program / TF1-variable shim:
# deliberate TF1 (migration guides), which cannot touch the file's eager Keras 3 models.
GRAPH_CLASSES = {"tensorflow.Graph", "tensorflow.compat.v1.Graph"}
TF1_SHIM_DECORATOR = "track_tf1_style_variables"


def _graph_ctor(ctx: Any, expr: Any) -> bool:
    return isinstance(expr, cst.Call) and ctx.resolve(expr.func) in GRAPH_CLASSES


def _own_graph(ctx: Any, expr: Any, graph_names: set) -> bool:
    """``tf.Graph()`` or a name bound to one."""
    return _graph_ctor(ctx, expr) or (isinstance(expr, cst.Name) and expr.value in graph_names)


def _in_own_graph(ctx: Any, graph_names: set) -> bool:
    """Inside ``with tf.Graph().as_default():`` / ``with g.as_default():`` (``g = tf.Graph()``)."""
    for n in ctx.stack:
        if not isinstance(n, cst.With):
            continue
        for it in n.items:
            e = it.item
            if isinstance(e, cst.Call) and isinstance(e.func, cst.Attribute) and e.func.attr.value == "as_default" \
                    and _own_graph(ctx, e.func.value, graph_names):
                return True
    return False


def _graph_assign(ctx: Any, node: cst.Assign, graph_names: set) -> None:
    if _graph_ctor(ctx, node.value):
        for t in node.targets:
            if isinstance(t.target, cst.Name):
                graph_names.add(t.target.value)


def _shim_decorated(fn: cst.FunctionDef) -> bool:
    for d in fn.decorators:
        name = dotted(d.decorator.func if isinstance(d.decorator, cst.Call) else d.decorator) or ""
        if name.rsplit(".", 1)[-1] == TF1_SHIM_DECORATOR:
            return True
    return False


def _tf1_functions(ctx: Any) -> tuple:
    """(enclosing function names, inside a TF1 shim) for the node being visited: a function
    named ``*model_fn`` (an Estimator's), a method decorated with
    ``tf.compat.v1.keras.utils.track_tf1_style_variables`` or any method of its class."""
    names, shim = [], False
    for n in ctx.stack:
        if isinstance(n, cst.FunctionDef):
            names.append(n.name.value)
            shim = shim or n.name.value.endswith("model_fn") or _shim_decorated(n)
        elif isinstance(n, cst.ClassDef):
            shim = shim or any(isinstance(st, cst.FunctionDef) and _shim_decorated(st) for st in n.body.body)
    return names, shim


def _model_fn_arg(node: cst.Call, into: set) -> None:
    """``Estimator(model_fn=f)``: ``f`` is an Estimator program."""
    a = get_arg(node, "model_fn")
    if a is not None:
        name = dotted(a.value)
        if name:
            into.add(name.rsplit(".", 1)[-1])


class _Tf1Scopes(TimelineRule):
    """What KL204 and KL205 both need to recognise deliberate TF1 code: the names bound to
    a `tf.Graph()` and the functions passed to an Estimator as `model_fn=`."""

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.graph_names: set = set()  # names bound to `tf.Graph()`
        self.model_fns: set = set()  # functions passed as `model_fn=`

    def visit_Assign(self, node: cst.Assign) -> None:
        _graph_assign(self.ctx, node, self.graph_names)

    def visit_Call(self, node: cst.Call) -> None:
        _model_fn_arg(node, self.model_fns)


# APIs that exist only in TensorFlow 1.x (gone from TF 2, not even under tf.compat.v1's
# top level): a file using them runs on TF 1.x, whose tf.keras is Keras 2.
TF1_ONLY_APIS = ("tensorflow.contrib.", "tensorflow.Session", "tensorflow.InteractiveSession",
                 "tensorflow.placeholder", "tensorflow.global_variables_initializer")


class MixedKerasImports(_Tf1Scopes):
    """
    ## What it does
    Flags, in a file that uses Keras 3 (`keras`, `keras_hub`, or `tf.keras`, which in
    TensorFlow ≥ 2.16 is Keras 3), each statement that brings in a Keras 2 object: an
    import from `tf_keras` or `tensorflow.python.keras`, a `tf.compat.v1.layers` layer,
    and `tf.keras` / `tf.compat.v1.keras` when the file sets `TF_USE_LEGACY_KERAS=1`.
    Alternatives bound to the same name (`import tf_keras as keras` in one branch,
    `import keras` in another) and optional imports (`try: import tf_keras` / `except
    ImportError:`, as interop tests and compat shims do) are not flagged, nor is deliberate TF1
    code: `tf.compat.v1.layers` in an Estimator `model_fn`, in a layer whose `call` is decorated
    with `tf.compat.v1.keras.utils.track_tf1_style_variables`, or in a
    `with tf.Graph().as_default():` block. `tf.keras` next to `keras` is not flagged:
    in TensorFlow 2.21 both are the same Keras 3.

    ## Why is this bad?
    Keras 2 and Keras 3 are separate libraries with separate classes. A Keras 2 layer in
    a Keras 3 model raises `ValueError: Only instances of `keras.Layer` can be added to a
    Sequential model`; Keras 2 optimizers, callbacks, initializers and saved files are not
    accepted by Keras 3 either, and when they happen to run the two differ in defaults
    (Keras 3 draws initializer seeds in constructors, Keras 2 from TensorFlow's global
    seed). `tf.compat.v1.layers.Dense` raises `AttributeError: `Dense` is not available with
    Keras 3.` `keraslint verify` does not run this rule: the failure is immediate.

    ## Example
    ```python
    import keras
    import tf_keras

    model = keras.Sequential([tf_keras.layers.Dense(10)])
    ```

    ## Use instead
    ```python
    import keras

    model = keras.Sequential([keras.layers.Dense(10)])
    ```
    """

    code = "KL204"
    name = "mixed-keras-imports"
    severity = "error"
    fix_applicability = None
    tokens = ("tf_keras", "compat", "tensorflow.python", "TF_USE_LEGACY_KERAS")

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.imports: list = []  # (node, raw qualname, local name)
        self.attr_uses: list = []  # (node, raw qualname, enclosing function names, deliberate TF1 code)

    def _legacy(self, raw: str) -> Optional[str]:
        """Why ``raw`` is a Keras 2 object, or None. Keras 2's pure helper modules
        (`utils.conv_utils.normalize_tuple`, `utils.np_utils.to_categorical`) return tuples,
        strings and arrays, no Keras object: using them beside Keras 3 is harmless."""
        if any(f".utils.{m}" in raw + "." for m in KERAS2_PURE_UTILS):
            return None
        if raw.startswith("tensorflow.python.keras.backend_config"):
            return None  # epsilon() / floatx(): plain values (keras-bert reads epsilon() from it)
        if raw == "tf_keras" or raw.startswith("tf_keras."):
            return "tf_keras"
        if raw == "tensorflow.python.keras" or raw.startswith("tensorflow.python.keras."):
            return "tensorflow.python.keras"
        if raw.startswith("tensorflow.compat.v1.layers."):
            return "tf.compat.v1.layers"
        if self.tl.legacy_env:
            for p in ("tensorflow.keras", "tensorflow.compat.v1.keras", "tensorflow.compat.v2.keras"):
                if raw == p or raw.startswith(p + "."):
                    return p.replace("tensorflow", "tf", 1) + " under TF_USE_LEGACY_KERAS"
        return None

    def _keras3(self, raw: str) -> bool:
        root = raw.split(".", 1)[0]
        if root in _KERAS3_ROOTS:
            return True
        if not self.tl.legacy_env:
            for p in ("tensorflow.keras", "tensorflow.compat.v1.keras", "tensorflow.compat.v2.keras"):
                if raw == p or raw.startswith(p + "."):
                    return True
        return False

    def _optional(self) -> bool:
        """Inside ``try:`` whose handlers catch ImportError (or everything): an optional
        dependency the file handles when absent (interop tests, compat shims); or inside an
        ``if``/``else`` on a version (``tf.__version__ < '1.15'``, ``sys.version_info``):
        a compat branch for another release."""
        stack = self.ctx.stack
        for i in range(len(stack) - 1, 0, -1):
            n = stack[i]
            if isinstance(n, cst.If) and _mentions_version(n.test):
                return True
            if isinstance(n, cst.If) and stack[i + 1] is n.body and literal_value(n.test) in (False, 0, None):
                return True  # `if False:` keeps code that never runs (a notebook's old variant)
            if isinstance(n, cst.IndentedBlock) and isinstance(stack[i - 1], cst.Try) and stack[i - 1].body is n:
                for h in stack[i - 1].handlers:
                    t = h.type
                    names = [t] if not isinstance(t, cst.Tuple) else [e.value for e in t.elements]
                    if t is None or any(dotted(x) in ("ImportError", "ModuleNotFoundError", "Exception")
                                        for x in names):
                        return True
            if isinstance(n, (cst.FunctionDef, cst.ClassDef)):
                break
        return False

    def visit_Import(self, node: cst.Import) -> None:
        if self._optional():
            return
        for a in node.names:
            full = dotted(a.name) or ""
            local = a.asname.name.value if a.asname is not None and isinstance(a.asname.name, cst.Name) \
                else full.split(".")[0]
            self.imports.append((node, full, local))

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if node.relative or isinstance(node.names, cst.ImportStar) or self._optional():
            return
        mod = dotted(node.module) if node.module is not None else ""
        for a in node.names:
            name = dotted(a.name) or ""
            local = a.asname.name.value if a.asname is not None and isinstance(a.asname.name, cst.Name) else name
            self.imports.append((node, f"{mod}.{name}", local))

    def visit_Attribute(self, node: cst.Attribute) -> None:
        stack = self.ctx.stack
        if len(stack) >= 2 and isinstance(stack[-2], cst.Attribute) and stack[-2].value is node:
            return  # only the outermost attribute of a chain
        raw = self.ctx.qualname(node)
        if raw is not None and raw.startswith("tensorflow"):
            fns, shim = _tf1_functions(self.ctx)
            self.attr_uses.append((node, raw, fns, shim or _in_own_graph(self.ctx, self.graph_names)))

    def finish(self) -> None:
        if any(raw.startswith(TF1_ONLY_APIS) for _, raw, _, _ in self.attr_uses) or any(
                raw.startswith(TF1_ONLY_APIS) for _, raw, _ in self.imports):
            return  # written for TensorFlow 1.x, where tf.keras is Keras 2: there is no Keras 3 to mix with
        k3 = None
        for node, raw, local in self.imports:
            if self._keras3(raw):
                k3 = k3 or raw
        for node, raw, _, _ in self.attr_uses:
            if self._keras3(raw):
                k3 = k3 or raw
        if k3 is None:
            return
        k3_locals = {local for _, raw, local in self.imports if self._keras3(raw)}
        k3_show = k3.replace("tensorflow.", "tf.", 1) if k3.startswith("tensorflow.") else k3
        reported: set = set()
        for node, raw, local in self.imports:
            why = self._legacy(raw)
            if why is None or local in k3_locals or id(node) in reported:
                continue
            reported.add(id(node))
            self.report(node, self._msg(raw, why, k3_show))
        seen: set = set()
        for node, raw, fns, tf1 in self.attr_uses:
            why = self._legacy(raw)
            head = dotted(node)
            head_import = self.ctx.imports.get(head.split(".", 1)[0]) if head else None
            if why is None or raw in seen or (head_import is not None and self._legacy(head_import)):
                continue  # reached through a legacy import, which is reported itself
            if why == "tf.compat.v1.layers" and (tf1 or self.model_fns.intersection(fns)):
                continue  # deliberate TF1 code: an Estimator model_fn, a TF1 shim, a graph of its own
            seen.add(raw)
            self.report(node, self._msg(raw, why, k3_show))

    def _msg(self, raw: str, why: str, k3: str) -> str:
        shown = raw.replace("tensorflow.", "tf.", 1) if raw.startswith("tensorflow.") else raw
        if why == "tf.compat.v1.layers":
            return (f"`{shown}` is a Keras 2 (TF1) layer in a file that uses Keras 3 (`{k3}`): with Keras 3 "
                    f"installed it raises AttributeError (`{shown.rsplit('.', 1)[-1]}` {TF1_LAYERS_ERROR.rstrip('.')})")
        return (f"`{shown}` brings in Keras 2 ({why}) in a file that uses Keras 3 (`{k3}`): Keras 3 models reject "
                f"Keras 2 layers (\"{KERAS2_LAYER_ERROR}\"), optimizers and callbacks")


class Tf1GraphMode(_Tf1Scopes):
    """
    ## What it does
    Flags TF1 graph-mode calls (`tf.compat.v1.disable_eager_execution()`,
    `disable_v2_behavior()`, `tf.compat.v1.Session`/`InteractiveSession`,
    `tf.compat.v1.placeholder`) in a file that also builds Keras models; each kind once,
    at its first statement. TensorFlow's internal names of the same functions
    (`tensorflow.python.framework.ops.disable_eager_execution`) count too. A Session
    that is only created to set GPU options (`ConfigProto(gpu_options=...)`) and never
    runs anything is not flagged: nothing there leaves eager mode. Sessions and placeholders
    in a graph of their own (`with tf.Graph().as_default():`, `g = tf.Graph()` then
    `with g.as_default():`) are not flagged: they cannot reach the eager Keras models. Nor is a
    file whose Keras models are all built inside an Estimator `model_fn` (the Estimator runs
    its own graph).

    ## Why is this bad?
    Keras 3 runs eagerly or inside `tf.function`; it has no TF1 graph mode. After
    `disable_eager_execution()`, `model.fit` raises `RuntimeError: `tf.data.Dataset` only
    supports Python-style iteration in eager mode or within tf.function.` (TensorFlow 2.21,
    Keras 3.15). Layers called on placeholders build a separate graph whose variables need
    a `Session` and an initializer: they are not the model that `fit`/`predict` train and
    run, so values read through the Session and through Keras disagree. `keraslint verify`
    does not run this rule: the failure is immediate.

    ## Example
    ```python
    tf.compat.v1.disable_eager_execution()
    model = keras.Sequential([keras.layers.Dense(1)])
    model.fit(x, y)
    ```

    ## Use instead
    ```python
    model = keras.Sequential([keras.layers.Dense(1)])
    model.fit(x, y)  # eager; wrap custom steps in tf.function
    ```
    """

    code = "KL205"
    name = "tf1-graph-mode"
    severity = "warning"
    fix_applicability = None
    tokens = ("compat", "Session", "placeholder", "disable_eager_execution", "disable_v2_behavior")

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.calls: list = []  # (node, kind, qualname, enclosing function names, in a graph of its own)
        self.runs = False  # `<something>.run(...)` / `.eval(session=...)`: a graph is executed
        self.builds: list = []  # (Build, enclosing function names, inside an Estimator model_fn / TF1 shim)

    def visit_Call(self, node: cst.Call) -> None:
        super().visit_Call(node)
        # the recorder is shared (another rule may have fed it this call): look for this node
        new = [b for b, n in self.tl.builds_anywhere[-4:] if n is node]
        if new:
            fns, shim = _tf1_functions(self.ctx)
            self.builds.extend((b, fns, shim) for b in new)
        f = node.func
        if isinstance(f, cst.Attribute) and f.attr.value == "run" and self.ctx.resolve(f) is None and node.args \
                and not _in_own_graph(self.ctx, self.graph_names):
            self.runs = True  # (a Session run in a graph of its own is not counted)
        q = self.ctx.resolve(node.func)
        q = TF_INTERNAL_ALIASES.get(q, q) if q is not None else None
        kind = TF1_GRAPH_CALLS.get(q) if q is not None else None
        if kind is not None:
            own = kind != "disable" and (_in_own_graph(self.ctx, self.graph_names) or (
                get_arg(node, "graph") is not None and _own_graph(self.ctx, get_arg(node, "graph").value,
                                                                  self.graph_names)))
            fns, shim = _tf1_functions(self.ctx)
            self.calls.append((node, kind, q, fns, own or shim))

    def finish(self) -> None:
        # Keras models an Estimator builds inside its model_fn run in the Estimator's own graph.
        if not any(not b.legacy and not shim and not self.model_fns.intersection(fns)
                   for b, fns, shim in self.builds):
            return
        # Sessions and placeholders in a graph of their own (`with tf.Graph().as_default():`)
        # or in an Estimator model_fn cannot reach the eager Keras models of the file.
        calls = [(n, k, q) for n, k, q, fns, own in self.calls if not own and not self.model_fns.intersection(fns)]
        if not calls:
            return
        kinds = {k for _, k, _ in calls}
        if kinds == {"session"} and not self.runs:
            # a Session created only to set GPU options (`ConfigProto(allow_growth)`,
            # `set_session`) and never run: no graph mode, eager `fit` is unaffected
            return
        seen: set = set()
        for node, kind, q in calls:
            if kind in seen:
                continue
            seen.add(kind)
            shown = q.replace("tensorflow.", "tf.", 1)
            label = f"`{shown}()`" if kind == "disable" else f"`{shown}`"
            if self.ctx.resolve(node.func) in TF_INTERNAL_ALIASES:
                label = f"`{short(node.func)}` (TensorFlow's internal name of {label})"
            if kind == "disable":
                msg = (f"{label} in a file that builds Keras models: Keras 3 runs only eagerly or in "
                       f"`tf.function`, and after this call `fit` raises RuntimeError ({GRAPH_MODE_FIT_ERROR})")
            else:
                msg = (f"TF1 graph mode ({label}) in a file that builds Keras models: Keras 3 has no graph "
                       f"mode; a Session only runs its own graph's ops and variables, not the model `fit` "
                       f"trains, and `fit` fails once eager execution is disabled")
            self.report(node, msg)
