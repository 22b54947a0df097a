"""Parity context: does this file compare Keras with another implementation?

Several rules are about *hidden defaults* (an optimizer string, a framework's default ε or
momentum, op determinism left off). A default is only a parity hazard where the author
compares the Keras model with something that does not share it: a PyTorch side, a raw
TensorFlow reference, or where the file states that it must reproduce. In a Keras-only
tutorial the same line is harmless, and reporting it is crying wolf.

The semantic model records the evidence during the single traversal (``record_*``); a rule
asks ``ctx.parity`` in ``finish()`` and names the evidence in its message through a
position reference (``Rule.report(..., refs={"ctx": parity.node})`` and ``{ctx}`` in the
message, which the engine turns into ``line N``).

Kinds of context, strongest first:

* ``pytorch``: the file builds a PyTorch model or optimizer (an ``nn.Module`` subclass, a
  ``torch.nn`` layer, a ``torch.optim`` optimizer) or loads a PyTorch checkpoint;
* ``tensorflow``: the file has a raw-TensorFlow reference: a ``tf.Module`` subclass, TF1
  optimizers (``tf.compat.v1.train.AdamOptimizer``: ε = 1e-8), sessions or placeholders;
* ``jax``: the file builds a Flax/Haiku/Optax reference.

Seeding is a different kind of intent (reproducibility, not parity); ``seeded`` records
where the file seeds, for the rules that need it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

# canonical-name prefixes of a second implementation's model or optimizer
_TORCH_BUILD_PREFIXES = ("torch.nn.", "torch.optim.")
_TORCH_CALLS = {"torch.load", "torch.jit.load", "torch.hub.load"}
_TF_REFERENCE = {
    "tensorflow.Module",
    "tensorflow.compat.v1.Session",
    "tensorflow.compat.v1.InteractiveSession",
    "tensorflow.compat.v1.placeholder",
    "tensorflow.Session",
    "tensorflow.placeholder",
    "tensorflow.estimator.Estimator",
}
_TF_REFERENCE_PREFIXES = ("tensorflow.compat.v1.train.", "tensorflow.train.AdamOptimizer",
                          "tensorflow.train.GradientDescentOptimizer", "tensorflow.train.RMSPropOptimizer",
                          "tensorflow.train.MomentumOptimizer")
_JAX_PREFIXES = ("flax.linen.", "flax.nnx.", "haiku.", "optax.")

_WHAT = {
    "pytorch": "this file compares Keras with PyTorch",
    "tensorflow": "this file compares Keras with a raw-TensorFlow reference",
    "jax": "this file compares Keras with a JAX reference",
}
_ORDER = ("pytorch", "tensorflow", "jax")


@dataclass(frozen=True)
class ParityContext:
    kind: str  # "pytorch" | "tensorflow" | "jax" | "strict"
    node: Any  # where the evidence is (None for "strict")
    evidence: str  # what was seen, e.g. "`torch.nn.Linear`"

    def phrase(self, ref: str = "{ctx}") -> str:
        """Why the context applies, for a message: "this file compares Keras with PyTorch
        (`torch.nn.Linear`, {ctx})". ``ref`` is the position placeholder of ``node``."""
        if self.kind == "strict":
            return "reported everywhere because `strict` is on"
        return f"{_WHAT[self.kind]} ({self.evidence}, {ref})"


class ParityRecorder:
    """Collects the evidence; one per Context, filled by the semantic model's handlers."""

    __slots__ = ("seeds", "all", "comparisons")

    def __init__(self) -> None:
        self.seeds: list = []  # (node, canonical name) of seed / determinism calls
        # every piece of evidence in file order: (kind, node, evidence, subject); ``subject``
        # is what a judge may find to be Keras after all (see ``context(judge=...)``)
        self.all: list = []
        # a numeric comparison of two results (np.allclose, assert_allclose, |a - b|): what
        # turns a loaded checkpoint of the other framework (weak evidence) into a comparison
        self.comparisons: list = []

    def _add(self, kind: str, node: Any, evidence: str, subject: Any = None) -> None:
        self.all.append((kind, node, evidence, subject))

    def record_base(self, node: Any, qualname: str) -> None:
        """A class statement with base ``qualname`` (canonical)."""
        if qualname == "torch.nn.Module" or qualname.startswith("torch.nn.") and qualname[9:10].isupper():
            # a torch module that only wraps a Keras model (Keras on the torch backend) is no
            # second implementation: the judge decides (``("class", node)``)
            self._add("pytorch", node, f"a subclass of `{qualname}`", ("class", node))
        elif qualname == "tensorflow.Module":
            # tf.Module is also a plain container (extension types, ragged-tensor demos): a
            # reference only where the file compares numbers
            self._add("tensorflow", node, "a subclass of `tf.Module`", _WEAK)
        elif qualname.startswith(("flax.linen.Module", "flax.nnx.Module", "haiku.Module")):
            self._add("jax", node, f"a subclass of `{qualname}`")

    def record_call(self, node: Any, q: str) -> None:
        """A call of the canonical name ``q``."""
        if q.startswith(_TORCH_BUILD_PREFIXES):
            last = q.rsplit(".", 1)[-1]
            # a module or optimizer class (nn.Linear, optim.Adam), not nn.functional / init;
            # not a loss (a function, no implementation), a parallel wrapper (DDP wraps any
            # model, a Keras one on the torch backend too) or a learning-rate schedule
            if (last[:1].isupper() and ".functional." not in q and ".init." not in q
                    and not last.endswith("Loss") and not q.startswith(_TORCH_NOT_A_MODEL)):
                if q.startswith("torch.optim."):
                    # an optimizer over a Keras model's weights trains that Keras model (Keras on
                    # the torch backend): the judge decides from its first argument
                    subject = _optimizer_params(node)
                    if subject is _KERAS_WEIGHTS:
                        return
                    self._add("pytorch", node, f"`{q}`", subject)
                else:
                    self._add("pytorch", node, f"`{q}`")
        elif q.startswith("transformers.") and q.endswith((".from_pretrained", ".from_config")):
            cls = q.split(".")[-2]
            # A Hugging Face TensorFlow model is a Keras (tf_keras) model used as a component
            # (a BERT encoder inside a Keras model), not a reference; a PyTorch/Flax one
            # loaded pretrained is a reference only where the file compares numbers.
            if not any(w in cls for w in _HF_NOT_A_MODEL) and not cls.startswith("TF"):
                kind = "jax" if cls.startswith("Flax") else "pytorch"
                what = "Flax" if kind == "jax" else "PyTorch"
                self._add(kind, node, f"`{q}` (a Hugging Face {what} model)", _WEAK)
        elif q in _TORCH_MODEL_CALLS or q.startswith(_TORCH_MODEL_PREFIXES) and q.rsplit(".", 1)[-1][:1].islower():
            self._add("pytorch", node, f"`{q}`", _WEAK)
        elif q in _TORCH_CALLS:
            self._add("pytorch", node, f"`{q}`", _WEAK)
        elif q in _COMPARISONS or (q in _ABS and _abs_of_difference(node)):
            self.comparisons.append(node)
        elif q in _TF_REFERENCE or (q.startswith(_TF_REFERENCE_PREFIXES) and q.endswith("Optimizer")):
            # TF1 code beside Keras (a migration guide shows both) is a reference only where
            # the file compares their numbers; `tf.compat.v1.train.get_global_step` is no model
            self._add("tensorflow", node, f"`{q}`", _WEAK)
        elif q.startswith(_JAX_PREFIXES) and q.rsplit(".", 1)[-1][:1].isupper():
            self._add("jax", node, f"`{q}`")
        elif q in _SEED_CALLS:
            self.seeds.append((node, q))

    def context(self, strict: bool = False, judge: Any = None) -> Optional[ParityContext]:
        """The strongest context. With ``judge`` (see :func:`keras_judge`), evidence with a
        subject (a torch optimizer over a model's parameters, an ``nn.Module`` subclass)
        counts only when the judge finds that subject is not Keras after all."""
        compared = bool(self.comparisons)
        for kind in _ORDER:
            hit = next(((node, ev) for k, node, ev, subject in self.all
                        if k == kind and (subject is None
                                          or (compared if subject is _WEAK
                                              else judge is None or not judge(subject)))), None)
            if hit is not None:
                return ParityContext(kind, hit[0], hit[1])
        if strict:
            return ParityContext("strict", None, "")
        return None


_TORCH_NOT_A_MODEL = ("torch.nn.parallel.", "torch.nn.DataParallel", "torch.optim.lr_scheduler.",
                      "torch.optim.swa_utils.", "torch.nn.utils.", "torch.nn.Parameter", "torch.nn.parameter.")
# Evidence that is a comparison only where the file also compares numbers: a checkpoint of
# the other framework loaded (pretrained, for inference) may just be used, not compared.
_WEAK = object()
_COMPARISONS = {
    "numpy.allclose", "numpy.isclose", "numpy.testing.assert_allclose", "numpy.testing.assert_almost_equal",
    "numpy.testing.assert_array_almost_equal", "numpy.testing.assert_array_equal", "numpy.testing.assert_equal",
    "torch.allclose", "torch.isclose", "torch.testing.assert_close", "torch.testing.assert_allclose",
    "tensorflow.debugging.assert_near", "keras.ops.allclose", "jax.numpy.allclose",
}
_ABS = {"numpy.abs", "numpy.absolute", "torch.abs", "tensorflow.abs", "tensorflow.math.abs", "keras.ops.abs",
        "numpy.linalg.norm", "torch.norm", "torch.linalg.norm"}


def _abs_of_difference(call: Any) -> bool:
    """``np.abs(a - b)``, ``np.linalg.norm(a - b)``: a difference of two results measured."""
    import libcst as cst

    args = getattr(call, "args", ())
    return bool(args) and isinstance(args[0].value, cst.BinaryOperation) \
        and isinstance(args[0].value.operator, cst.Subtract)
# Hugging Face classes whose from_pretrained is no model
_HF_NOT_A_MODEL = ("Tokenizer", "Processor", "Config", "FeatureExtractor", "Pipeline", "GenerationConfig")
# builders of a PyTorch model (lower-case functions: ``torchvision.models.resnet50()``)
_TORCH_MODEL_PREFIXES = ("torchvision.models.", "open_clip.create_model")
_TORCH_MODEL_CALLS = {"timm.create_model", "safetensors.torch.load_file", "safetensors.torch.load",
                      "open_clip.create_model_and_transforms", "open_clip.create_model"}
# attributes that only a Keras layer/model has: its weights trained by a torch optimizer
_KERAS_WEIGHT_ATTRS = {"trainable_weights", "trainable_variables", "weights", "variables",
                       "non_trainable_weights"}
_KERAS_WEIGHTS = object()


def _optimizer_params(call: Any) -> Any:
    """What a torch optimizer trains: ``("model", expr)`` for ``expr.parameters()`` /
    ``expr.named_parameters()``, ``_KERAS_WEIGHTS`` for ``model.trainable_weights`` (a Keras
    attribute), else None (plain evidence)."""
    import libcst as cst

    args = [a for a in getattr(call, "args", ()) if a.keyword is None or a.keyword.value == "params"]
    if not args:
        return None
    v = args[0].value
    # [v for v in model.trainable_weights], list(model.parameters())
    if isinstance(v, (cst.ListComp, cst.GeneratorExp)):
        v = v.for_in.iter
    elif isinstance(v, cst.Call) and isinstance(v.func, cst.Name) and v.func.value in ("list", "tuple") and v.args:
        v = v.args[0].value
    if isinstance(v, cst.Attribute) and v.attr.value in _KERAS_WEIGHT_ATTRS:
        return _KERAS_WEIGHTS
    if (isinstance(v, cst.Call) and isinstance(v.func, cst.Attribute)
            and v.func.attr.value in ("parameters", "named_parameters")):
        return ("model", v.func.value)
    return None


def keras_judge(ctx: Any):
    """A judge for :meth:`ParityRecorder.context`, built on the semantic model ``ctx``
    (after the traversal): is a subject Keras after all? ``("model", expr)``: ``expr`` is a
    Keras model or layer (a Keras constructor, a local Keras class, a helper returning one,
    a torch module that wraps one); ``("class", classdef)``: an ``nn.Module`` subclass that
    builds a Keras model or layer in its body (a wrapper, not a second implementation)."""
    import libcst as cst

    def values_of(name: str, scope: Any) -> list:
        # every value assigned to ``name`` in ``scope`` (a function node), or anywhere in the
        # module; ``x = x.to(device)`` keeps what ``x`` was and is skipped
        out: list = []
        todo = [scope if scope is not None else ctx.module]
        while todo:
            node = todo.pop()
            if isinstance(node, cst.Assign):
                if any(isinstance(t.target, cst.Name) and t.target.value == name for t in node.targets):
                    out.append(node.value)
            elif isinstance(node, (cst.AnnAssign, cst.NamedExpr)):
                if isinstance(node.target, cst.Name) and node.target.value == name and node.value is not None:
                    out.append(node.value)
            todo.extend(node.children)
        return [v for v in out if not (isinstance(v, cst.Call) and isinstance(v.func, cst.Attribute)
                                       and v.func.attr.value in ("to", "cuda", "cpu", "float")
                                       and isinstance(v.func.value, cst.Name) and v.func.value.value == name)]

    def keras_value(expr: Any, depth: int = 0, scope: Any = None) -> bool:
        # scope: the function node whose names ``expr`` uses (None: the module)
        if expr is None or depth > 8:
            return False
        if isinstance(expr, cst.Name):
            vals = [v for v in values_of(expr.value, scope) if v is not expr]
            return bool(vals) and all(keras_value(v, depth + 1) for v in vals)
        if isinstance(expr, cst.Attribute) and isinstance(expr.value, cst.Name) and expr.value.value == "self":
            return False
        if not isinstance(expr, cst.Call):
            return False
        func = expr.func
        q = ctx.resolve(func)
        if q is not None:
            if q.split(".", 1)[0] in ("keras", "keras_hub", "keras_nlp", "keras_cv", "tf_keras"):
                return True
            proj = getattr(ctx, "project", None)  # another module of the project (keraslint/project.py)
            if proj is not None:
                f = proj.function(q)
                return proj.keras_class(q) in ("model", "layer") or (f is not None and f.returns == "model")
            return False
        if isinstance(func, cst.Attribute) and func.attr.value in ("to", "cuda", "cpu"):
            return keras_value(func.value, depth + 1)
        if isinstance(func, cst.Name):
            info = ctx.classes.get(func.value)
            if info is not None:
                if ctx.class_kind(info) is not None:
                    return True
                node = getattr(info, "node", None)
                return node is not None and wraps_keras(node, depth + 1)
            rets = [(r, fi.node) for fi in ctx.functions.get(func.value, ()) for r in fi.returns]
            return bool(rets) and all(keras_value(r, depth + 1, fn) for r, fn in rets)
        return False

    def wraps_keras(classdef: Any, depth: int = 0) -> bool:
        body = getattr(getattr(classdef, "body", None), "body", ())
        for fn in body:
            if not isinstance(fn, cst.FunctionDef):
                continue
            for stmt in getattr(fn.body, "body", ()):
                if not isinstance(stmt, cst.SimpleStatementLine):
                    continue
                for small in stmt.body:
                    if isinstance(small, cst.Assign) and isinstance(small.value, cst.Call):
                        if keras_value(small.value, depth + 1):
                            return True
        return False

    def judge(subject: Any) -> bool:
        try:
            kind, what = subject
            if kind == "model":
                return keras_value(what)
            if kind == "class":
                return wraps_keras(what)
        except Exception:  # noqa: BLE001 - a judge never breaks a rule
            return False
        return False

    return judge


def context_of(ctx: Any) -> Optional[ParityContext]:
    """``ctx.parity`` with the Keras judge applied: a torch optimizer over a Keras model's
    weights or a torch module wrapping a Keras model is no PyTorch side."""
    return ctx._parity.context(strict=bool(getattr(ctx.config, "strict", False)), judge=keras_judge(ctx))


_SEED_CALLS = {
    "keras.utils.set_random_seed",
    "tensorflow.random.set_seed",
    "tensorflow.compat.v1.set_random_seed",
    "tensorflow.set_random_seed",
    "numpy.random.seed",
    "random.seed",
    "torch.manual_seed",
    "tensorflow.config.experimental.enable_op_determinism",
}
