"""What the Keras training objects of a file are: optimizers, losses, models.

The value model behind the KL4 rules. It follows a name to the expression assigned to it,
in the current scope or inside a helper function of the file whose return value is being
followed (:meth:`Values.value`, :meth:`Values.returns`), and from there answers:

* **optimizer instances and their identity** (:meth:`Values.optimizer_instances`): each
  optimizer object built once and every ``compile`` it is given to, with the model it goes
  into, including ``self.opt`` built in one method and compiled in another, and a loop
  compiling one object into every model it iterates; ``other.optimizer`` handed to a
  second model (:meth:`Values.borrowed_optimizers`);
* **models, their compile arguments and final activation** (:meth:`Values.compiled_models`,
  :meth:`Values.final_activation`): the loss (a string, a loss class and its
  ``from_logits``, a loss function, also kept on ``self``) and what the last layer really
  computes, through ``Sequential([...])``, ``model.add(...)``, the functional graph, helper
  functions and methods, and a model or loss kept on ``self`` by another method. A value
  assigned (or a layer added) under a branch the ``compile`` is not under is unknown;
* smaller questions: the string a name or a literal config item holds
  (:meth:`Values.string_value`), what builds a model (:meth:`Values.builder`), whether an
  expression builds a new Keras optimizer (:meth:`Values.is_optimizer_construction`).

One per file, created by the first rule that asks (:func:`of`) and kept on the Context, so
files where no such rule runs pay nothing; each rule names the parts it needs (``"strings"``,
``"optimizers"``, ``"models"``) and only those are recorded. It is a Context component
(``ctx.component``): the engine's single walk calls its ``visit_Assign`` / ``visit_Return`` /
``visit_Call`` after the Context's hooks and before the rules', which only ask it questions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import libcst as cst

from keraslint.semantics import dotted, get_arg, literal_value

# ---------------------------------------------------------------------------
# Library facts (checked against the installed Keras by tests/test_defaults_training.py)
# ---------------------------------------------------------------------------

# Public optimizer classes of Keras 3 whose constructor ends in the base optimizer's
# `**kwargs` check (which rejects `lr` and ignores `decay`).
OPTIMIZER_CLASSES = frozenset({
    "Adadelta", "Adafactor", "Adagrad", "Adam", "AdamW", "Adamax", "Ftrl", "Lamb", "Lion", "Muon", "Nadam",
    "Optimizer", "RMSprop", "SGD", "ScheduleFreeAdamW",
})

# Probability losses: string identifier -> (display, family); from_logits defaults to False.
LOSS_STRINGS: dict = {
    "binary_crossentropy": "binary", "bce": "binary", "BinaryCrossentropy": "binary",
    "binary_focal_crossentropy": "binary", "BinaryFocalCrossentropy": "binary",
    "categorical_crossentropy": "categorical", "CategoricalCrossentropy": "categorical",
    "sparse_categorical_crossentropy": "categorical", "SparseCategoricalCrossentropy": "categorical",
    "categorical_focal_crossentropy": "categorical", "CategoricalFocalCrossentropy": "categorical",
}
# Loss classes and the position of `from_logits` among their positional parameters.
LOSS_CLASSES: dict = {
    "BinaryCrossentropy": 0, "CategoricalCrossentropy": 0, "SparseCategoricalCrossentropy": 0,
    "BinaryFocalCrossentropy": 3, "CategoricalFocalCrossentropy": 2,
}
LOSS_FUNCTIONS = frozenset({
    "binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy",
    "binary_focal_crossentropy", "categorical_focal_crossentropy",
})

SOFTMAX_FUNCS = {
    "keras.activations.softmax": "softmax", "keras.ops.softmax": "softmax", "tensorflow.nn.softmax": "softmax",
    "tensorflow.math.softmax": "softmax",
    "keras.activations.sigmoid": "sigmoid", "keras.ops.sigmoid": "sigmoid", "tensorflow.nn.sigmoid": "sigmoid",
    "tensorflow.sigmoid": "sigmoid", "tensorflow.math.sigmoid": "sigmoid",
}
LINEAR_DEFAULT_LAYERS = {"Dense", "Conv1D", "Conv2D", "Conv3D"}
_BRANCHES = (cst.If, cst.For, cst.While, cst.Try, cst.TryStar, cst.Match, cst.IfExp)


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------


def code_of(node: Any) -> str:
    """Source text of a node."""
    try:
        return cst.Module([]).code_for_node(node)
    except Exception:  # noqa: BLE001
        return "expression"


def short(node: Any, limit: int = 60) -> str:
    """Source text of a node on one line, cut to ``limit`` characters (for messages)."""
    text = " ".join(code_of(node).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def has_star(node: cst.Call) -> bool:
    return any(a.star for a in node.args)


def is_method_call(node: cst.Call, attr: str) -> bool:
    return isinstance(node.func, cst.Attribute) and node.func.attr.value == attr


def keras_file(ctx: Any) -> bool:
    return ctx.uses_keras() or ctx.uses_tensorflow()


def is_model_method(ctx: Any, node: cst.Call, attr: str) -> bool:
    """``<something>.compile(...)`` / ``.fit(...)`` that is not a module function such as
    ``re.compile`` or ``torch.compile`` (whose receiver resolves to an import)."""
    if not is_method_call(node, attr):
        return False
    q = ctx.resolve(node.func)
    if q is None:
        return True
    return q in ("keras.models.Model." + attr, "keras.models.Sequential." + attr)


def self_attr(expr: Any) -> Optional[str]:
    """``attr`` of ``self.attr``."""
    if isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name) and expr.value.value == "self":
        return expr.attr.value
    return None


def current_class(ctx: Any) -> Optional[str]:
    """Name of the class whose method (or a function nested in it) is being visited."""
    fn = ctx.function
    while fn is not None:
        if fn.cls is not None:
            return fn.cls.name
        fn = fn.parent
    return None


def exclusive(stack_a: tuple, stack_b: tuple) -> bool:
    """Are two nodes (given by their ancestor stacks) in different branches of one ``if``?"""
    i = 0
    while i < len(stack_a) and i < len(stack_b) and stack_a[i] is stack_b[i]:
        i += 1
    if i == 0 or i >= len(stack_a) or i >= len(stack_b):
        return False
    common = stack_a[i - 1]
    return isinstance(common, (cst.If, cst.Try)) and stack_a[i] is not stack_b[i]


def _target_names(target: Any) -> set:
    if isinstance(target, cst.Name):
        return {target.value}
    if isinstance(target, (cst.Tuple, cst.List)):
        out: set = set()
        for el in target.elements:
            out |= _target_names(el.value)
        return out
    return set()


# ---------------------------------------------------------------------------
# What the model answers with
# ---------------------------------------------------------------------------


@dataclass
class OptimizerUse:
    """One ``compile`` given an optimizer object."""

    node: Any  # the optimizer argument's value
    name: str  # its text (`opt`, `self.opt`)
    model: Any  # which model: the receiver's text (plus, for a name, the object bound to it then)
    text: str  # the receiver's text
    stack: tuple  # the compile call's ancestors
    loop: Optional[str] = None  # compiled for each model of `for <loop> in ...`, built outside that loop


@dataclass
class OptimizerInstance:
    """One optimizer object, built once (``built``) and compiled by ``uses`` in order."""

    label: str
    built: Any
    on_self: bool  # kept on `self` by one method, compiled in others
    uses: list = field(default_factory=list)

    def shared(self) -> list:
        """(use, earlier use) for each use that compiles the object into a model other
        than one it was compiled into before (and not in the other arm of an ``if``/``try``);
        a use inside a loop over models (:attr:`OptimizerUse.loop`) is not compared."""
        out, seen = [], []
        for use in self.uses:
            if use.loop is not None:
                continue
            other = next((o for o in seen if o.model != use.model and not exclusive(o.stack, use.stack)), None)
            if other is not None:
                out.append((use, other))
            seen.append(use)
        return out


@dataclass
class BorrowedOptimizer:
    """``b.compile(optimizer=a.optimizer)`` with ``a`` known to be another Keras model."""

    node: Any  # the optimizer argument's value
    owner: str  # text of the model whose optimizer it is
    into: str  # text of the model compiled with it


@dataclass
class CompiledModel:
    """A ``compile`` whose loss and model head are both known."""

    loss_arg: Any  # the `loss` argument
    loss: str  # its text (`"binary_crossentropy"`, `BinaryCrossentropy(from_logits=True)`)
    from_logits: bool
    activation: str  # the model's final activation: "softmax" | "sigmoid" | "linear" | "other"
    layer: str  # text of the layer (or call) that computes it


@dataclass
class _Deferred:
    loss_arg: Any
    loss: Optional[tuple]
    receiver: Any
    ref: frozenset
    cls: str


def of(ctx: Any, *parts: str) -> "Values":
    """The file's value model, created on first use and kept on the Context. ``parts``:
    what the asking rule needs recorded during the traversal ("strings": its hook
    ``visit_Assign``; "optimizers": ``visit_Assign``, ``visit_Call``; "models":
    ``visit_Assign``, ``visit_Return``, ``visit_Call``). Following names needs none."""
    values = ctx.component("values", Values)
    values.parts.update(parts)
    return values


class Values:
    """Per-file value model of optimizers, losses and models (see the module docstring)."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.parts: set = set()
        self.mutated: set = set()  # names whose items are assigned: cfg["optimizer"] = ...
        self.self_attrs: dict = {}  # (class, attr) -> [(value, function)] assigned to self.attr
        # optimizers
        self.assign_loops: dict = {}  # id(value) -> ids of enclosing For nodes
        self.compiled_names: set = set()  # names that received .compile(optimizer=...) / .fit(...)
        self.frozen: set = set()  # texts of models set `X.trainable = False` (`self.discriminator`)
        self._instances: dict = {}  # id(optimizer value) -> OptimizerInstance
        self._self_uses: dict = {}  # (class, attr) -> [OptimizerUse]
        self._borrowed: list = []
        # models
        self.added: dict = {}  # id(Sequential() call) -> last layer expr given to .add
        # id(expression) -> ids of the if/for/while/try around it: a value assigned (or a
        # layer added) under a condition the compile call is not under may not be the one
        # the compiled model has, so it is treated as unknown.
        self.cond: dict = {}
        self._ref: frozenset = frozenset()
        self._cls: Optional[str] = None
        self.snapshots: dict = {}  # id(return value) -> (function, its names' values there)
        self._compiled: list = []
        self._deferred: list = []  # compiles that use self attributes: resolved after the traversal

    # -- hooks (the Context's names) ---------------------------------------------------
    def visit_Assign(self, node: cst.Assign) -> None:  # noqa: N802
        parts = self.parts
        if "strings" in parts:
            for t in node.targets:
                if isinstance(t.target, cst.Subscript) and isinstance(t.target.value, cst.Name):
                    self.mutated.add(t.target.value.value)
        optimizers, models = "optimizers" in parts, "models" in parts
        if not (optimizers or models):
            return
        if optimizers:
            self.assign_loops[id(node.value)] = frozenset(id(n) for n in self.ctx.stack if isinstance(n, cst.For))
            if isinstance(node.value, cst.Name) and node.value.value == "False":
                for t in node.targets:
                    if isinstance(t.target, cst.Attribute) and t.target.attr.value == "trainable":
                        frozen = dotted(t.target.value)
                        if frozen is not None:
                            self.frozen.add(frozen)
        if models:
            self.cond[id(node.value)] = self._conds()
        cls = current_class(self.ctx)
        if cls is not None:
            for t in node.targets:
                attr = self_attr(t.target)
                if attr is not None:
                    self.self_attrs.setdefault((cls, attr), []).append((node.value, self.ctx.function))

    def visit_Return(self, node: cst.Return) -> None:  # noqa: N802
        if "models" not in self.parts:
            return
        fn = self.ctx.function
        if node.value is not None and fn is not None:
            self.cond[id(node.value)] = self._conds()
            # what each name of the function holds at this return (straight-line code)
            self.snapshots[id(node.value)] = (fn, dict(fn.assigned))

    def visit_Call(self, node: cst.Call) -> None:  # noqa: N802
        if "models" in self.parts:
            self._model_call(node)
        if "optimizers" in self.parts:
            self._optimizer_call(node)

    # -- following names -----------------------------------------------------------------
    def value(self, expr: Any, scope: Any = "current") -> tuple:
        """(expression, scope) after following a Name through assignments (one level)."""
        if isinstance(expr, cst.Name):
            if scope == "current":
                v = self.ctx.assigned_value(expr.value)
            else:
                v = None
                fi = scope
                while fi is not None:
                    if expr.value in fi.assigned:
                        v = fi.assigned[expr.value]
                        break
                    if expr.value in fi.locals:
                        break
                    fi = fi.parent
                if fi is None:
                    v = self.ctx.module_assigned.get(expr.value)
                    scope = None
                else:
                    scope = fi
            if v is not None and v is not expr:
                return v, scope
            return None, scope
        return expr, scope

    def returns(self, call: cst.Call) -> list:
        """(expression, scope) of what a call to a helper function of this file returns."""
        if not isinstance(call.func, cst.Name):
            return []
        out = []
        for fi in self.ctx.functions.get(call.func.value, ()):
            for r in fi.returns:
                out.append((r, fi))
        return out

    def string_value(self, expr: Any) -> Optional[str]:
        """The string literal a name or a literal dict's item holds, when it arrives here
        unchanged: ``OPT = "adam"`` / ``cfg = {"optimizer": "adam"}`` then ``OPT`` /
        ``cfg["optimizer"]`` (not once an item of ``cfg`` is assigned). Attributes
        (``args.optimizer``: an argparse choice) and function parameters are not followed.
        Needs the "strings" part."""
        ctx = self.ctx
        if isinstance(expr, cst.Name):
            v = literal_value(ctx.assigned_value(expr.value)) if ctx.assigned_value(expr.value) is not None else None
            return v if isinstance(v, str) else None
        if isinstance(expr, cst.Subscript) and isinstance(expr.value, cst.Name) and len(expr.slice) == 1 \
                and isinstance(expr.slice[0].slice, cst.Index) and expr.value.value not in self.mutated:
            key = literal_value(expr.slice[0].slice.value)
            d = ctx.assigned_value(expr.value.value)
            if not isinstance(key, str) or not isinstance(d, cst.Dict):
                return None
            found = None
            for el in d.elements:
                if not isinstance(el, cst.DictElement):
                    return None  # **other: unknown items
                if literal_value(el.key) == key:
                    found = literal_value(el.value)
            return found if isinstance(found, str) else None
        return None

    def builder(self, expr: Any) -> Any:
        """What builds the model ``expr``: a canonical constructor, a helper's name,
        ``("self", attr)`` for a model kept on ``self``, or None."""
        if isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name) and expr.value.value == "self":
            return ("self", expr.attr.value)
        val, _ = self.value(expr)
        if isinstance(val, cst.Call):
            q = self.ctx.resolve(val.func)
            if q is not None:
                return q
            d = dotted(val.func)
            if d is not None:
                return d
        return None

    # -- optimizers ----------------------------------------------------------------------
    def is_optimizer_construction(self, expr: Any, scope: Any = "current", depth: int = 0) -> bool:
        """Does ``expr`` build a new Keras optimizer object (constructor, `get`, `from_config`,
        `deserialize`, or a helper of this file that returns one)?"""
        if depth > 5 or not isinstance(expr, cst.Call):
            return False
        q = self.ctx.resolve(expr.func)
        if q is not None:
            if not q.startswith("keras.optimizers."):
                return False
            last = q.rsplit(".", 1)[1]
            if last in OPTIMIZER_CLASSES or last in ("LossScaleOptimizer", "get", "deserialize", "from_config"):
                if last == "get":
                    a = get_arg(expr, "identifier", 0)
                    return a is not None and not isinstance(literal_value(a.value), str)
                return True
            return False
        rets = self.returns(expr)
        if not rets:
            return False
        for r, fi in rets:
            v, s = self.value(r, fi)
            if not self.is_optimizer_construction(v, s, depth + 1):
                return False
        return True

    def optimizer_instances(self) -> list:
        """Every optimizer object given to ``compile``, with its uses in traversal order
        (an object kept on ``self`` counts when the class assigns it exactly once, from a
        construction). Ask after the traversal."""
        out = list(self._instances.values())
        for (cls, attr), uses in self._self_uses.items():
            values = self.self_attrs.get((cls, attr), [])
            if len(values) != 1 or not self.is_optimizer_construction(values[0][0]):
                continue  # a parameter, or rebound (one optimizer per model): unknown
            out.append(OptimizerInstance(f"self.{attr}", values[0][0], True, uses))
        return out

    def borrowed_optimizers(self) -> list:
        """``b.compile(optimizer=a.optimizer)`` for a known model ``a`` other than ``b``."""
        return self._borrowed

    def _optimizer_call(self, node: cst.Call) -> None:
        ctx = self.ctx
        if is_model_method(ctx, node, "fit") and isinstance(node.func.value, cst.Name):  # type: ignore[union-attr]
            self.compiled_names.add(node.func.value.value)  # type: ignore[union-attr]
        if not is_model_method(ctx, node, "compile") or not keras_file(ctx):
            return
        arg = get_arg(node, "optimizer", 0)
        if arg is None:
            return
        receiver = node.func.value  # type: ignore[union-attr]
        if isinstance(receiver, cst.Name):
            self.compiled_names.add(receiver.value)
        rtext = code_of(receiver)
        opt = arg.value
        attr = self_attr(opt)
        cls = current_class(ctx)
        if attr is not None and cls is not None:
            self._self_uses.setdefault((cls, attr), []).append(
                OptimizerUse(opt, code_of(opt), rtext, rtext, tuple(ctx.stack)))
            return
        if isinstance(opt, cst.Attribute) and opt.attr.value == "optimizer":
            owner = code_of(opt.value)
            if owner != rtext and isinstance(opt.value, cst.Name) and self._is_model_name(opt.value.value, receiver):
                self._borrowed.append(BorrowedOptimizer(opt, owner, rtext))
            return
        if not isinstance(opt, cst.Name):
            return
        value = ctx.assigned_value(opt.value)
        if value is None or not self.is_optimizer_construction(value):
            return
        inst = self._instances.get(id(value))
        if inst is None:
            inst = self._instances[id(value)] = OptimizerInstance(opt.value, value, False)
        # Which model: the receiver text plus, for a name, the object bound to it now.
        rkey: Any = rtext
        loop = None
        if isinstance(receiver, cst.Name):
            rv = ctx.assigned_value(receiver.value)
            rkey = (rtext, id(rv) if rv is not None else None)
            # compile inside `for m in models:` with an optimizer built outside that loop
            for anc in reversed(ctx.stack):
                if isinstance(anc, cst.For) and receiver.value in _target_names(anc.target):
                    if id(anc) not in self.assign_loops.get(id(value), frozenset()):
                        loop = receiver.value
                    break
        inst.uses.append(OptimizerUse(opt, opt.value, rkey, rtext, tuple(ctx.stack), loop))

    def _is_model_name(self, name: str, receiver: Any) -> bool:
        """Is ``name`` (whose ``.optimizer`` is compiled into ``receiver``) known to be a
        Keras model, and not an argparse namespace or a config object
        (``optimizer=args.optimizer``)? Known: assigned a model, compiled or fitted
        before, or the model the receiver was cloned from (``clone_model(base)``)."""
        ctx = self.ctx
        if name in self.compiled_names:
            return True
        v = ctx.assigned_value(name)
        if isinstance(v, cst.Call):
            q = ctx.resolve(v.func)
            if q is not None and (q.startswith(("keras.models.", "keras.applications.")) or q in (
                    "keras.saving.load_model", "keras.Sequential", "keras.Model")):
                return True
            if isinstance(v.func, cst.Name) and v.func.value in ctx.classes \
                    and ctx.class_kind(ctx.classes[v.func.value]) is not None:
                return True
        if isinstance(receiver, cst.Name):
            rv = ctx.assigned_value(receiver.value)
            if isinstance(rv, cst.Call) and any(isinstance(a.value, cst.Name) and a.value.value == name
                                                for a in rv.args):
                return True
        return False

    # -- models: compile arguments and final activation --------------------------------
    def compiled_models(self) -> list:
        """Every ``compile`` of a Keras model whose loss and final activation are both known,
        in traversal order; a loss or model kept on ``self`` is read once the whole class has
        been seen. Ask after the traversal."""
        for d in self._deferred:
            self._ref, self._cls = d.ref, d.cls
            loss = d.loss
            if loss is None:
                val, _ = self._self_value(d.loss_arg.value)
                loss = self._loss(val) if val is not None else None
            if loss is None:
                continue
            if self_attr(d.receiver) is not None:
                val, fn = self._self_value(d.receiver)
                head = self._model_head(val, fn, 0) if val is not None else None
            else:
                head = None  # a local model compiled with a self loss: judged where it is built
            if head is not None:
                self._compiled.append(CompiledModel(d.loss_arg, loss[0], loss[1], head[0], head[1]))
        self._deferred = []
        return self._compiled

    def final_activation(self, model: Any) -> Optional[tuple]:
        """("softmax" | "sigmoid" | "linear" | "other", layer text) of the model ``model``
        as it is at the node being visited, or None."""
        self._ref = self._conds()
        self._cls = current_class(self.ctx)
        return self._model_head(model, "current", 0)

    def _conds(self) -> frozenset:
        return frozenset(id(n) for n in self.ctx.stack[:-1] if isinstance(n, _BRANCHES))

    def _model_call(self, node: cst.Call) -> None:
        ctx = self.ctx
        if is_method_call(node, "add") and isinstance(node.func.value, cst.Name) and node.args:
            v = ctx.assigned_value(node.func.value.value)
            if isinstance(v, cst.Call) and ctx.resolve(v.func) == "keras.models.Sequential":
                a = get_arg(node, "layer", 0)
                if a is not None:
                    self.added[id(v)] = (a.value, "current")
                    self.cond[id(a.value)] = self._conds()
            return
        if not is_model_method(ctx, node, "compile") or not keras_file(ctx):
            return
        loss_arg = get_arg(node, "loss", 1)
        if loss_arg is None:
            return
        self._ref = self._conds()
        receiver = node.func.value  # type: ignore[union-attr]
        self._cls = current_class(ctx)
        if self._cls is not None and (self_attr(loss_arg.value) is not None or self_attr(receiver) is not None):
            # a loss or model kept on self, maybe set by a method defined further down
            loss = None if self_attr(loss_arg.value) is not None else self._loss(loss_arg.value)
            self._deferred.append(_Deferred(loss_arg, loss, receiver, self._ref, self._cls))
            return
        loss = self._loss(loss_arg.value)
        if loss is None:
            return
        head = self._model_head(receiver, "current", 0)
        if head is None:
            return
        self._compiled.append(CompiledModel(loss_arg, loss[0], loss[1], head[0], head[1]))

    def _self_value(self, expr: Any) -> tuple:
        """(value, scope) of ``self.attr`` when the class assigns it exactly once, outside
        any branch (a loss or model kept on ``self`` by another method), else (None, None)."""
        attr = self_attr(expr)
        if attr is None or self._cls is None:
            return None, None
        values = self.self_attrs.get((self._cls, attr), [])
        if len(values) != 1:
            return None, None
        val, fn = values[0]
        if self.cond.get(id(val), frozenset()) or isinstance(val, cst.Name):
            return None, None  # assigned under a condition, or a parameter passed in
        return val, fn

    def _follow(self, expr: Any, scope: Any) -> tuple:
        if isinstance(scope, tuple) and isinstance(expr, cst.Name):  # inside a helper, at a return
            fn, snap = scope
            if expr.value in snap:
                val = snap[expr.value]
            elif expr.value in fn.locals:
                return None, scope
            else:
                val, scope = self.value(expr, fn.parent)
                if val is not None and not self.cond.get(id(val), frozenset()) <= frozenset():
                    return None, scope
                return val, scope
            if val is expr or not self.cond.get(id(val), frozenset()) <= self._ref:
                return None, scope
            return val, scope
        if isinstance(scope, tuple):
            return expr, scope
        val, s = self.value(expr, scope)
        if val is not None and not self.cond.get(id(val), frozenset()) <= self._ref:
            return None, s
        return val, s

    def _loss(self, expr: Any, depth: int = 0) -> Optional[tuple]:
        """(text, from_logits) of a probability loss, or None."""
        ctx = self.ctx
        if depth > 3:
            return None
        v = literal_value(expr)
        if isinstance(v, str):
            return (f'"{v}"', False) if v in LOSS_STRINGS else None
        if isinstance(expr, cst.Name) and ctx.resolve(expr) is None:
            val, _ = self._follow(expr, "current")
            return self._loss(val, depth + 1) if val is not None else None
        if isinstance(expr, cst.Call):
            q = ctx.resolve(expr.func)
            if q is None or not q.startswith("keras.losses."):
                return None
            cls_name = q.rsplit(".", 1)[1]
            pos = LOSS_CLASSES.get(cls_name)
            if pos is None or has_star(expr):
                return None
            a = get_arg(expr, "from_logits", pos)
            fl = False if a is None else literal_value(a.value)
            if not isinstance(fl, bool):
                return None
            return f"{cls_name}(from_logits={fl})", fl
        q = ctx.resolve(expr)
        if q is not None and q.startswith("keras.losses.") and q.rsplit(".", 1)[1] in LOSS_FUNCTIONS:
            return code_of(expr), False
        return None

    def _model_head(self, expr: Any, scope: Any, depth: int) -> Optional[tuple]:
        """("softmax" | "sigmoid" | "linear" | "other", layer text) of the model ``expr``."""
        if depth > 6:
            return None
        ctx = self.ctx
        if isinstance(expr, cst.Name):
            val, s = self._follow(expr, scope)
            return self._model_head(val, s, depth + 1) if val is not None else None
        if not isinstance(expr, cst.Call):
            return None
        q = ctx.resolve(expr.func)
        if q == "keras.models.Sequential":
            if id(expr) in self.added:
                layer, s = self.added[id(expr)]
                if not self.cond.get(id(layer), frozenset()) <= self._ref:
                    return None
                return self._layer_kind(layer, s, depth + 1)
            a = get_arg(expr, "layers", 0)
            if a is None or not isinstance(a.value, cst.List) or not a.value.elements:
                return None
            elements = list(a.value.elements)
            while len(elements) > 1 and isinstance(elements[-1].value, cst.Call) \
                    and self._identity_layer(elements[-1].value):
                elements.pop()  # Activation("linear") at the end passes the head through
            last = elements[-1]
            if isinstance(last, cst.StarredElement):
                return None
            return self._layer_kind(last.value, scope, depth + 1)
        if q == "keras.models.Model":
            a = get_arg(expr, "outputs", 1)
            if a is None:
                return None
            return self._tensor_kind(a.value, scope, depth + 1)
        method = self_attr(expr.func)
        if q is None and (isinstance(expr.func, cst.Name) or method is not None and self._cls is not None):
            heads = []
            saved = self._ref
            if method is not None:
                rets = [(r, fi) for fi in ctx.functions.get(method, ()) if fi.cls is not None
                        and fi.cls.name == self._cls for r in fi.returns]
            else:
                rets = self.returns(expr)
            for r, fi in rets:
                if id(r) not in self.snapshots:
                    heads.append(None)  # a lambda's body
                    continue
                self._ref = self.cond.get(id(r), frozenset())
                heads.append(self._model_head(r, self.snapshots[id(r)], depth + 1))
            self._ref = saved
            if heads and all(h is not None for h in heads) and len({h[0] for h in heads}) == 1:
                return heads[0]
        return None

    def _tensor_kind(self, expr: Any, scope: Any, depth: int) -> Optional[tuple]:
        """Kind of the last operation that produced the symbolic tensor ``expr``."""
        if depth > 12:
            return None
        ctx = self.ctx
        if isinstance(expr, cst.Name):
            val, s = self._follow(expr, scope)
            return self._tensor_kind(val, s, depth + 1) if val is not None else None
        if not isinstance(expr, cst.Call):
            return None
        func = expr.func
        if isinstance(func, cst.Call):  # Layer(...)(x)
            if self._identity_layer(func) and expr.args:
                # Activation("linear") passes its input through (the mixed-precision guide's
                # float32 cast after a softmax): the head is what comes before it
                return self._tensor_kind(expr.args[0].value, scope, depth + 1)
            return self._layer_kind(func, scope, depth + 1)
        q = ctx.resolve(func)
        if q in SOFTMAX_FUNCS:
            return SOFTMAX_FUNCS[q], short(expr, 40)
        if q is None and isinstance(func, cst.Name):  # head = layers.Dense(10); head(x)
            val, s = self._follow(func, scope)
            if isinstance(val, cst.Call) and self._is_layer_ctor(val):
                return self._layer_kind(val, s, depth + 1)
        return None

    def _identity_layer(self, call: cst.Call) -> bool:
        """``layers.Activation("linear")`` / ``Activation(None)`` / ``layers.Identity()``:
        a layer whose output is its input (often only a float32 cast under mixed precision)."""
        q = self.ctx.resolve(call.func)
        if q == "keras.layers.Identity":
            return True
        if q != "keras.layers.Activation":
            return False
        a = get_arg(call, "activation", 0)
        return a is not None and self._activation_kind(a.value) == "linear"

    def _is_layer_ctor(self, call: cst.Call) -> bool:
        q = self.ctx.resolve(call.func)
        return q is not None and q.startswith("keras.layers.")

    def _layer_kind(self, expr: Any, scope: Any, depth: int) -> Optional[tuple]:
        if depth > 12:
            return None
        ctx = self.ctx
        if isinstance(expr, cst.Name):
            val, s = self._follow(expr, scope)
            return self._layer_kind(val, s, depth + 1) if val is not None else None
        if not isinstance(expr, cst.Call) or has_star(expr):
            return None
        q = ctx.resolve(expr.func)
        if q is None or not q.startswith("keras.layers."):
            return None
        cls_name = q.rsplit(".", 1)[1]
        text = short(expr, 40)
        if cls_name == "Softmax":
            return "softmax", text
        if cls_name == "Activation":
            a = get_arg(expr, "activation", 0)
            k = self._activation_kind(a.value) if a is not None else None
            return (k, text) if k is not None else None
        if cls_name in LINEAR_DEFAULT_LAYERS:
            a = get_arg(expr, "activation", 1 if cls_name == "Dense" else None)
            if a is None:
                return "linear", text
            k = self._activation_kind(a.value)
            return (k, text) if k is not None else None
        return None

    def _activation_kind(self, expr: Any) -> Optional[str]:
        v = literal_value(expr)
        if v is None or v == "linear":
            return "linear"
        if v in ("softmax", "sigmoid"):
            return v
        if isinstance(v, str):
            return "other"
        q = self.ctx.resolve(expr)
        if q in SOFTMAX_FUNCS:
            return SOFTMAX_FUNCS[q]
        if q == "keras.activations.linear":
            return "linear"
        return None
