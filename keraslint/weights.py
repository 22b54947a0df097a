"""Where a weight value comes from, and which PyTorch module receives it.

The value model behind KL604 (a Keras kernel copied into a PyTorch weight). For an
expression it answers *what it holds* (:meth:`WeightFlow.source`): a Keras kernel
(``layer.kernel``, ``layer.get_weights()[0]``, ``layer.weights[0]``) and of which layer
class, another weight, or a transposed copy. It follows names (per function scope), tuple
unpacking (``w, b = layer.get_weights()``), literal tuples and lists, the layout-keeping
steps (``.numpy()``, ``torch.from_numpy``, ``.data``; ``.reshape``/``.view`` are marked
as reshapes) and ``self.kernel = ...`` of a non-Keras class. A layer's class comes from
its constructor, or from an enclosing ``if isinstance(layer, Dense):`` /
``type(layer) is Conv2D`` / ``type(layer).__name__ == "Dense"``. For a PyTorch module it
answers *which ``torch.nn`` classes it may be* (:meth:`WeightFlow.receiver`): from
``self.fc = nn.Linear(...)`` anywhere in the file, a variable, a ``nn.Linear``
annotation, an enclosing ``isinstance(module, nn.Linear)``.

One per file, created by the first rule that asks (:func:`of`) and kept on the Context,
so files where no such rule runs pay nothing. It is a Context component
(``ctx.component``): the engine's single walk calls its ``visit_Assign``/``visit_For``
after the Context's hooks and before the rules', which only ask it questions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import libcst as cst

from keraslint.semantics import literal_value, target_names

KERNEL_ATTRS = {"kernel", "depthwise_kernel", "pointwise_kernel", "recurrent_kernel"}
WEIGHT_LISTS = {"weights", "trainable_weights", "variables", "trainable_variables"}
KERAS_DENSE_CONV = {
    "Dense", "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
    "SeparableConv1D", "SeparableConv2D", "DepthwiseConv1D", "DepthwiseConv2D", "EinsumDense",
    "Convolution1D", "Convolution2D", "Convolution3D",
}
KERAS_RNN = {"LSTM", "GRU", "SimpleRNN"}  # weights: kernel, recurrent_kernel, bias
TRANSPOSE_METHODS = {"transpose", "permute", "t", "swapaxes", "swapdims", "moveaxis", "movedim", "T", "mT"}
TRANSPOSE_FUNCS = {
    "numpy.transpose", "numpy.swapaxes", "numpy.moveaxis", "numpy.rollaxis", "numpy.einsum",
    "torch.transpose", "torch.permute", "torch.t", "torch.swapaxes", "torch.swapdims", "torch.movedim",
    "torch.moveaxis", "torch.einsum", "einops.rearrange", "einops.einsum",
    "keras.ops.transpose", "keras.ops.swapaxes", "keras.ops.moveaxis", "keras.ops.einsum",
    "tensorflow.transpose", "tensorflow.einsum", "tensorflow.linalg.matrix_transpose",
    "tensorflow.experimental.numpy.transpose", "jax.numpy.transpose",
}
# Calls and methods that keep the layout (the value passes through unchanged in order).
PRESERVE_METHODS = {
    "numpy", "cpu", "cuda", "float", "double", "half", "bfloat16", "to", "astype", "copy", "clone",
    "detach", "contiguous", "reshape", "view", "read_value", "type", "requires_grad_", "__array__",
}
RESHAPES = {"reshape", "view", "numpy.reshape", "torch.reshape", "keras.ops.reshape", "tensorflow.reshape"}
PRESERVE_FUNCS = {
    "torch.tensor", "torch.from_numpy", "torch.as_tensor", "torch.Tensor", "torch.FloatTensor",
    "torch.nn.Parameter", "numpy.array", "numpy.asarray", "numpy.ascontiguousarray", "numpy.copy",
    "keras.ops.convert_to_numpy", "keras.ops.convert_to_tensor", "keras.backend.convert_to_numpy",
    "keras.backend.convert_to_tensor", "tensorflow.constant", "tensorflow.convert_to_tensor",
    "numpy.reshape", "torch.reshape", "keras.ops.reshape", "tensorflow.reshape",
}
VALUE_ATTRS = {"value", "data", "_value"}
TORCH_KERNEL_MODULES = {
    "Linear", "LazyLinear", "Conv1d", "Conv2d", "Conv3d", "LazyConv1d", "LazyConv2d", "LazyConv3d",
    "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d", "LSTM", "GRU", "RNN",
}
TORCH_PLAIN_MODULES = {  # weights copied as they are: never a kernel target
    "Embedding", "EmbeddingBag", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm",
    "LazyBatchNorm1d", "LazyBatchNorm2d", "LazyBatchNorm3d", "LayerNorm", "GroupNorm", "RMSNorm",
    "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", "PReLU",
}
SELF = "<self>"  # receiver class: a custom module's own parameter (its layout is its own)


def keras_family(q: str) -> bool:
    """Keras, tf.keras, tf_keras, TensorFlow or the Keras model libraries (keras_hub, ...)."""
    return q.split(".", 1)[0] in ("keras", "tensorflow", "tf_keras", "keras_hub", "keras_nlp", "keras_cv",
                                  "keras_core", "tfa", "tensorflow_addons", "tensorflow_hub")


def torch_name(q: Optional[str]) -> Optional[str]:
    """``torch.nn.modules.batchnorm.BatchNorm2d`` → ``torch.nn.BatchNorm2d``,
    ``torch.optim.adam.Adam`` → ``torch.optim.Adam``; other names unchanged."""
    if not q or not q.startswith("torch."):
        return q
    parts = q.split(".")
    if len(parts) > 3 and parts[1] == "nn" and parts[2] == "modules":
        return "torch.nn." + parts[-1]
    if len(parts) > 3 and parts[1] == "nn" and parts[2] == "parameter":
        return "torch.nn." + parts[-1]
    if len(parts) > 3 and parts[1] == "optim" and parts[-1][:1].isupper():
        return "torch.optim." + parts[-1]
    return q


def short(node: Any, limit: int = 40) -> str:
    """Source text of a node on one line, cut to ``limit`` characters (for messages)."""
    try:
        text = cst.Module([]).code_for_node(node)
    except Exception:  # noqa: BLE001
        return "expression"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def key_text(expr: Any) -> Optional[str]:
    """A state-dict key: a string literal, or an f-string with ``*`` for each placeholder
    (``f"h.{i}.mlp.c_fc.weight"`` → ``h.*.mlp.c_fc.weight``)."""
    v = literal_value(expr)
    if isinstance(v, str):
        return v
    if isinstance(expr, cst.FormattedString):
        out = []
        for part in expr.parts:
            out.append(part.value if isinstance(part, cst.FormattedStringText) else "*")
        return "".join(out)
    if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Add):
        # layer.name + ".weight"
        right = key_text(expr.right)
        return None if right is None else (key_text(expr.left) or "*") + right
    return None


def is_weight_name(name: str) -> bool:
    """``weight`` and the RNN weights ``weight_ih_l0`` / ``weight_hh_l0``."""
    return name == "weight" or name.startswith(("weight_ih", "weight_hh"))


@dataclass
class Source:
    """What a weight value holds."""

    kind: str  # "kernel" | "weight" (index into a weight list of an unknown layer) | "other" | "transposed"
    layer: str = ""  # Keras layer class when known
    reshaped: bool = False
    desc: str = ""


class Receiver:
    """The PyTorch module a weight is written into: ``module_expr`` (``net.fc`` of
    ``net.fc.weight``) or the module path of a state-dict key (``fc`` of ``"fc.weight"``)."""

    def __init__(self, flow: "WeightFlow", module_expr: Any, key_path: Optional[str]) -> None:
        self._flow = flow
        self.module_expr = module_expr
        self.key_path = key_path
        # names are resolved now (their scope is the current function); attributes
        # (``net.fc``) at the end, when every ``self.fc = nn.Linear(...)`` has been seen
        self._early = flow._torch_module_classes(module_expr, None) if isinstance(module_expr, cst.Name) else None

    @property
    def classes(self) -> set:
        """``torch.nn`` class names the module may be ("?" = something else or unknown,
        :data:`SELF` = a custom module's own parameter). Ask after the traversal."""
        if self._early is not None:
            return self._early
        return self._flow._torch_module_classes(self.module_expr, self.key_path)

    @property
    def owner(self) -> str:
        """The attribute that names the module (``fc`` of ``net.fc`` / ``"fc.weight"``), or ""."""
        if isinstance(self.module_expr, cst.Attribute):
            return self.module_expr.attr.value
        kp = self.key_path
        return kp.split(".")[-2] if kp and "." in kp else ""


def of(ctx: Any) -> "WeightFlow":
    """The file's weight flow, created on first use and kept on the Context."""
    return ctx.component("weights", WeightFlow)


class WeightFlow:
    """Per-file bookkeeping of what names hold (see the module docstring)."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.scopes: dict = {}  # id(FunctionInfo) or 0 -> {name: ("expr", v) | ("item", v, i) | None}
        self.module_attrs: dict = {}  # attribute name -> set of torch module class names (self.fc = nn.Linear)
        self.own_kernels: dict = {}  # "kernel" -> values of `self.kernel = ...` in non-Keras classes

    # -- hooks (the Context's names) ---------------------------------------------------
    def visit_Assign(self, node: cst.Assign) -> None:  # noqa: N802
        if not self.ctx.uses_torch():
            return
        scope = self._scope()
        for t in node.targets:
            tgt = t.target
            if isinstance(tgt, cst.Name):
                scope[tgt.value] = ("expr", node.value)
            elif isinstance(tgt, (cst.Tuple, cst.List)):
                for i, el in enumerate(tgt.elements):
                    if isinstance(el.value, cst.Name) and not isinstance(el, cst.StarredElement):
                        scope[el.value.value] = ("item", node.value, i)
                    else:
                        for n in target_names(el.value):
                            scope[n] = None
            # self.kernel = nn.Parameter(...) in a PyTorch module or plain class
            if (isinstance(tgt, cst.Attribute) and tgt.attr.value in KERNEL_ATTRS
                    and self._in_plain_class(tgt.value)):
                self.own_kernels.setdefault(tgt.attr.value, []).append(node.value)
            # self.fc = nn.Linear(...): remember what the attribute holds
            if (isinstance(tgt, cst.Attribute) and isinstance(tgt.value, cst.Name) and tgt.value.value == "self"
                    and isinstance(node.value, cst.Call)):
                q = torch_name(self.ctx.resolve(node.value.func))
                cls = q.rsplit(".", 1)[1] if q and q.startswith("torch.nn.") else ("?" if q is None else q)
                self.module_attrs.setdefault(tgt.attr.value, set()).add(cls)

    def visit_For(self, node: cst.For) -> None:  # noqa: N802
        scope = self._scope()
        for n in target_names(node.target):
            scope[n] = None

    # -- queries -----------------------------------------------------------------------
    def value_of(self, name: str) -> Any:
        """The expression ``name`` holds here, when it was bound as a whole (not unpacked)."""
        v = self._lookup(name)
        return v[1] if v is not None and v[0] == "expr" else None

    def source(self, expr: Any) -> Optional[Source]:
        """What ``expr`` holds, following names and layout-keeping steps (None: unknown)."""
        return self._trace(expr, 0)

    def receiver(self, module_expr: Any, key_path: Optional[str] = None) -> Receiver:
        """The PyTorch module ``module_expr`` / the module of state-dict key ``key_path``."""
        return Receiver(self, module_expr, key_path)

    # -- scopes ------------------------------------------------------------------------
    def _scope(self) -> dict:
        fn = self.ctx.function
        return self.scopes.setdefault(id(fn) if fn is not None else 0, {})

    def _lookup(self, name: str):
        fn = self.ctx.function
        while fn is not None:
            s = self.scopes.get(id(fn))
            if s is not None and name in s:
                return s[name]
            if name in fn.locals:
                return None
            fn = fn.parent
        return self.scopes.get(0, {}).get(name)

    def _plain_receiver(self, recv: Any) -> bool:
        """``self`` in a non-Keras class, or a variable/parameter visibly holding an instance
        of a local non-Keras class (``other: Gabor``, ``g = Gabor()``)."""
        if self._in_plain_class(recv):
            return True
        if not isinstance(recv, cst.Name) or recv.value == "self":
            return False
        v = self._lookup(recv.value)
        cls_expr = None
        if v is not None and v[0] == "expr" and isinstance(v[1], cst.Call):
            cls_expr = v[1].func
        elif v is None and self.ctx.function is not None:
            for prm in self.ctx.function.params:
                if prm.name.value == recv.value and prm.annotation is not None:
                    cls_expr = prm.annotation.annotation
        if cls_expr is None:
            return False
        q = torch_name(self.ctx.resolve(cls_expr))
        if q is not None:
            return q.startswith("torch.nn.")
        info = self.ctx.classes.get(cls_expr.value) if isinstance(cls_expr, cst.Name) else None
        return info is not None and self.ctx.class_kind(info) is None and not any(
            keras_family(b) for b in info.bases if not b.startswith("local:"))

    def _in_plain_class(self, recv: Any) -> bool:
        """``recv`` is ``self`` inside a class that is no Keras layer (an ``nn.Module``...)."""
        if not (isinstance(recv, cst.Name) and recv.value == "self"):
            return False
        info = self.ctx.cls
        return info is not None and self.ctx.class_kind(info) is None and not any(
            keras_family(b) for b in info.bases if not b.startswith("local:"))

    # -- sources -------------------------------------------------------------------------
    def _trace(self, expr: Any, depth: int) -> Optional[Source]:
        """Where a value comes from, following layout-preserving steps."""
        if depth > 12 or expr is None:
            return None
        if isinstance(expr, cst.Attribute):
            a = expr.attr.value
            if a in ("T", "mT", "H"):
                return Source("transposed")
            if a in KERNEL_ATTRS:
                cls = self._layer_class(expr.value)
                if not cls and self._plain_receiver(expr.value):
                    # `self.kernel` of a PyTorch module / plain class: Keras only if it was
                    # assigned from a Keras kernel
                    for v in self.own_kernels.get(a, ()):
                        src = self._trace(v, depth + 1)
                        if src is not None and src.kind == "kernel":
                            return src
                    return None
                return Source("kernel", cls, desc=short(expr))
            if a in VALUE_ATTRS:
                return self._trace(expr.value, depth + 1)
            return None
        if isinstance(expr, cst.Name):
            v = self._lookup(expr.value)
            if v is None:
                return None
            if v[0] == "expr":
                return self._trace(v[1], depth + 1)
            return self._item(v[1], v[2], depth + 1)
        if isinstance(expr, cst.Subscript):
            if len(expr.slice) == 1 and isinstance(expr.slice[0].slice, cst.Index):
                idx = literal_value(expr.slice[0].slice.value)
                if isinstance(idx, int) and not isinstance(idx, bool):
                    return self._item(expr.value, idx, depth + 1)
            inner = self._trace(expr.value, depth + 1)
            # a slice of a kernel keeps its layout; a slice of a weight list is unknown
            return inner if inner is not None and inner.kind in ("kernel", "transposed", "other") else None
        if isinstance(expr, cst.Call):
            func = expr.func
            q = self.ctx.resolve(func)
            q = torch_name(q) if q else q
            if q in TRANSPOSE_FUNCS:
                return Source("transposed")
            if q in PRESERVE_FUNCS:
                if not expr.args:
                    return None
                inner = self._trace(expr.args[0].value, depth + 1)
                if inner is not None and q in RESHAPES:
                    inner.reshaped = True
                return inner
            if q is None and isinstance(func, cst.Attribute):
                m = func.attr.value
                if m in TRANSPOSE_METHODS:
                    return Source("transposed")
                if m in PRESERVE_METHODS:
                    inner = self._trace(func.value, depth + 1)
                    if inner is not None and m in RESHAPES:
                        inner.reshaped = True
                    return inner
            return None
        return None

    def _weight_list(self, expr: Any, depth: int) -> Optional[tuple]:
        """(layer expression, "get_weights()" | "weights") if ``expr`` is ``layer.get_weights()`` /
        ``layer.weights``."""
        if depth > 12:
            return None
        if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) and expr.func.attr.value == "get_weights" \
                and not expr.args:
            return expr.func.value, "get_weights()"
        if isinstance(expr, cst.Attribute) and expr.attr.value in WEIGHT_LISTS:
            return expr.value, expr.attr.value
        if isinstance(expr, cst.Name):
            v = self._lookup(expr.value)
            if v is not None and v[0] == "expr":
                return self._weight_list(v[1], depth + 1)
        return None

    def _item(self, container: Any, index: int, depth: int) -> Optional[Source]:
        found = self._weight_list(container, depth)
        if found is not None:
            layer, how = found
            cls = self._layer_class(layer)
            desc = f"{short(layer)}.{how}[{index}]"
            if cls in KERAS_DENSE_CONV:
                return Source("kernel" if index == 0 else "other", cls, desc=desc)
            if cls in KERAS_RNN:
                return Source("kernel" if index in (0, 1) else "other", cls, desc=desc)
            if cls:
                return Source("other", cls)
            return Source("weight" if index == 0 else "other", desc=desc)
        if isinstance(container, (cst.Tuple, cst.List)) and 0 <= index < len(container.elements):
            return self._trace(container.elements[index].value, depth + 1)
        return None

    def _layer_class(self, layer: Any, depth: int = 0) -> str:
        """Keras layer class of a layer expression ('' if unknown)."""
        if depth > 8:
            return ""
        if isinstance(layer, cst.Name):
            v = self._lookup(layer.value)
            if v is not None and v[0] == "expr":
                return self._layer_class(v[1], depth + 1)
            return self._narrowed(layer.value, "keras.layers.") or ""
        if isinstance(layer, cst.Call):
            q = self.ctx.resolve(layer.func)
            if q and q.startswith("keras.layers."):
                return q.rsplit(".", 1)[1]
        return ""

    def _narrowed(self, name: str, prefix: str) -> Optional[str]:
        """Class of ``name`` from an enclosing ``if isinstance(name, X):`` /
        ``if type(name) is X:`` / ``if type(name).__name__ == "X":`` whose body holds the
        current statement (X a ``keras.layers.`` or ``torch.nn.`` class, per ``prefix``)."""
        st = self.ctx.stack
        for i in range(len(st) - 2, -1, -1):
            n = st[i]
            if isinstance(n, cst.If) and st[i + 1] is n.body:
                c = self._class_test(n.test, name, prefix)
                if c:
                    return c
        return None

    def _class_test(self, test: Any, name: str, prefix: str) -> Optional[str]:
        if isinstance(test, cst.BooleanOperation) and isinstance(test.operator, cst.And):
            return self._class_test(test.left, name, prefix) or self._class_test(test.right, name, prefix)
        cls_expr = None
        if isinstance(test, cst.Call) and isinstance(test.func, cst.Name) and test.func.value == "isinstance" \
                and len(test.args) == 2 and isinstance(test.args[0].value, cst.Name) \
                and test.args[0].value.value == name:
            cls_expr = test.args[1].value
            if isinstance(cls_expr, cst.Tuple) and len(cls_expr.elements) == 1:
                cls_expr = cls_expr.elements[0].value
        elif isinstance(test, cst.Comparison) and len(test.comparisons) == 1 \
                and isinstance(test.comparisons[0].operator, (cst.Is, cst.Equal)):
            left, right = test.left, test.comparisons[0].comparator
            if isinstance(left, cst.Attribute) and left.attr.value == "__name__":
                # type(layer).__name__ == "Dense" / layer.__class__.__name__ == "Dense"
                inner = left.value
                if _is_type_of(inner, name) and isinstance(literal_value(right), str):
                    c = literal_value(right)
                    known = (KERAS_DENSE_CONV | KERAS_RNN) if prefix == "keras.layers." else \
                        (TORCH_KERNEL_MODULES | TORCH_PLAIN_MODULES)
                    return c if c in known else None
                return None
            if _is_type_of(left, name):
                cls_expr = right
        if cls_expr is None:
            return None
        q = self.ctx.resolve(cls_expr)
        q = torch_name(q) if q else q
        if q and q.startswith(prefix) and q.count(".") == prefix.count("."):
            return q.rsplit(".", 1)[1]
        return None

    # -- receiving modules ---------------------------------------------------------------
    def _torch_module_classes(self, module_expr: Any, key_path: Optional[str]) -> set:
        """torch.nn class names the receiving module may be ("?" = something else or unknown)."""
        if module_expr is not None:
            m = module_expr
            if isinstance(m, cst.Name):
                if m.value == "self":
                    return {SELF}  # a custom module's own parameter: its layout is its own
                v = self._lookup(m.value)
                if v is not None and v[0] == "expr" and isinstance(v[1], cst.Call):
                    q = torch_name(self.ctx.resolve(v[1].func))
                    if q and q.startswith("torch.nn."):
                        return {q.rsplit(".", 1)[1]}
                narrowed = self._narrowed(m.value, "torch.nn.") if v is None else None
                if narrowed:
                    return {narrowed}  # inside ``if isinstance(module, nn.Linear):``
                if v is None:
                    # a parameter annotated with its class: ``def port(linear: nn.Linear)``
                    fn = self.ctx.function
                    for p in fn.params if fn is not None else ():
                        if p.name.value == m.value and p.annotation is not None:
                            q = torch_name(self.ctx.resolve(p.annotation.annotation))
                            if q and q.startswith("torch.nn."):
                                return {q.rsplit(".", 1)[1]}
                return {"?"}
            if isinstance(m, cst.Attribute):
                return set(self.module_attrs.get(m.attr.value, {"?"}))
            return {"?"}
        parts = (key_path or "").split(".")
        if len(parts) >= 2:
            return set(self.module_attrs.get(parts[-2], {"?"}))
        return {"?"}


def _is_type_of(expr: Any, name: str) -> bool:
    """``type(name)`` or ``name.__class__``."""
    if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Name) and expr.func.value == "type" \
            and len(expr.args) == 1 and isinstance(expr.args[0].value, cst.Name):
        return expr.args[0].value.value == name
    return (isinstance(expr, cst.Attribute) and expr.attr.value == "__class__"
            and isinstance(expr.value, cst.Name) and expr.value.value == name)
