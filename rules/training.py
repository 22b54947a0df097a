"""KL4: optimizers, losses and the training loop.

The same model trains differently when hyperparameters hide behind a string, when Keras 2
spellings meet Keras 3, when an optimizer's state is shared between models, when the loss
and the output layer disagree about logits, or when ``fit`` batches and shuffles in a way
the hand-written loop beside it does not. The numbers quoted in the messages are those of
Keras 3.15 / PyTorch 2.13; ``tests/test_defaults_training.py`` reads them from the
installed libraries.
"""

from __future__ import annotations

from typing import Any, Optional

import libcst as cst

from keraslint import values
from keraslint.names import keras_flavor
from keraslint.rule import AddImport, Fix, Replace, Rule
from keraslint.semantics import NOT_LITERAL, dotted, get_arg, literal_value
# library facts the value model reads (tests/test_defaults_training.py checks them here too)
from keraslint.values import LOSS_CLASSES, LOSS_FUNCTIONS, LOSS_STRINGS, OPTIMIZER_CLASSES  # noqa: F401
from keraslint.values import code_of, has_star, is_method_call, is_model_method, keras_file, short

# ---------------------------------------------------------------------------
# Library facts (checked against the installed Keras / PyTorch by the tests)
# ---------------------------------------------------------------------------

# Every string `keras.optimizers.get` accepts for a built-in optimizer (it lower-cases the
# identifier), with the class it builds and that class's numeric hyperparameter defaults
# (all non-boolean numeric defaults of `__init__` except `ema_momentum`, which does
# nothing while `use_ema=False`).
OPTIMIZER_DEFAULTS: dict = {
    "adam": ("Adam", (("learning_rate", 0.001), ("beta_1", 0.9), ("beta_2", 0.999), ("epsilon", 1e-07))),
    "adamw": ("AdamW", (("learning_rate", 0.001), ("weight_decay", 0.004), ("beta_1", 0.9), ("beta_2", 0.999),
                        ("epsilon", 1e-07))),
    "sgd": ("SGD", (("learning_rate", 0.01), ("momentum", 0.0))),
    "rmsprop": ("RMSprop", (("learning_rate", 0.001), ("rho", 0.9), ("momentum", 0.0), ("epsilon", 1e-07))),
    "adagrad": ("Adagrad", (("learning_rate", 0.001), ("initial_accumulator_value", 0.1), ("epsilon", 1e-07))),
    "adadelta": ("Adadelta", (("learning_rate", 0.001), ("rho", 0.95), ("epsilon", 1e-07))),
    "adamax": ("Adamax", (("learning_rate", 0.001), ("beta_1", 0.9), ("beta_2", 0.999), ("epsilon", 1e-07))),
    "nadam": ("Nadam", (("learning_rate", 0.001), ("beta_1", 0.9), ("beta_2", 0.999), ("epsilon", 1e-07))),
    "ftrl": ("Ftrl", (("learning_rate", 0.001), ("learning_rate_power", -0.5), ("initial_accumulator_value", 0.1),
                      ("l1_regularization_strength", 0.0), ("l2_regularization_strength", 0.0),
                      ("l2_shrinkage_regularization_strength", 0.0), ("beta", 0.0))),
    "lion": ("Lion", (("learning_rate", 0.001), ("beta_1", 0.9), ("beta_2", 0.99))),
    "adafactor": ("Adafactor", (("learning_rate", 0.001), ("beta_2_decay", -0.8), ("epsilon_1", 1e-30),
                                ("epsilon_2", 0.001), ("clip_threshold", 1.0))),
    "muon": ("Muon", (("learning_rate", 0.001), ("adam_beta_1", 0.9), ("adam_beta_2", 0.999),
                      ("adam_weight_decay", 0.004), ("epsilon", 1e-07), ("weight_decay", 0.004),
                      ("muon_a", 3.4445), ("muon_b", -4.775), ("muon_c", 2.0315), ("adam_lr_ratio", 1),
                      ("momentum", 0.95), ("ns_steps", 5), ("rms_rate", 0.2))),
    "schedulefreeadamw": ("ScheduleFreeAdamW", (("learning_rate", 0.0025), ("beta_1", 0.9), ("beta_2", 0.999),
                                                ("epsilon", 1e-08), ("warmup_steps", 0))),
}

# The PyTorch optimizer a porter compares with, and its defaults that differ from Keras's.
TORCH_COUNTERPART: dict = {
    "adam": ("Adam", (("eps", 1e-08),)),
    "adamw": ("AdamW", (("weight_decay", 0.01), ("eps", 1e-08))),
    "sgd": ("SGD", (("lr", 0.001),)),
    "rmsprop": ("RMSprop", (("lr", 0.01), ("alpha", 0.99), ("eps", 1e-08))),
    "adagrad": ("Adagrad", (("lr", 0.01), ("initial_accumulator_value", 0), ("eps", 1e-10))),
    "adadelta": ("Adadelta", (("lr", 1.0), ("rho", 0.9), ("eps", 1e-06))),
    "adamax": ("Adamax", (("lr", 0.002), ("eps", 1e-08))),
    "nadam": ("NAdam", (("lr", 0.002), ("eps", 1e-08))),
}

# Keras layers that wrap another framework's module: it becomes part of the Keras model.
_FOREIGN_WRAPPERS = {"TorchModuleWrapper", "FlaxLayer", "JaxLayer"}


def _last(func: Any) -> str:
    return func.attr.value if isinstance(func, cst.Attribute) else func.value


# Another implementation's optimizer class -> the Keras optimizer string of the same family.
_TORCH_FAMILY = {v[0]: k for k, v in TORCH_COUNTERPART.items()}
_TF1_FAMILY = {"AdamOptimizer": "adam", "RMSPropOptimizer": "rmsprop", "GradientDescentOptimizer": "sgd",
               "MomentumOptimizer": "sgd", "AdagradOptimizer": "adagrad", "AdadeltaOptimizer": "adadelta",
               "FtrlOptimizer": "ftrl"}

# Keras 2's `decay=` gave lr / (1 + decay * step): below 1e-7 the rate moves by less than
# 1% in 100k steps, so Keras 3 ignoring it changes nothing (KL402 stays silent).
DECAY_STEPS = 100_000
DECAY_NEGLIGIBLE = 0.01

# APIs of Keras 2 that Keras 3 removed (tests/test_defaults_training.py checks that the
# installed Keras lacks each): a file using them targets Keras 2.
KERAS2_ONLY_METHODS = frozenset({"fit_generator", "evaluate_generator", "predict_generator", "predict_classes"})
KERAS2_ONLY_MODULES = ("keras.layers.core", "keras.layers.convolutional", "keras.layers.merge",
                       "keras.layers.recurrent", "keras.engine", "keras.utils.np_utils", "keras.wrappers.scikit_learn",
                       "keras.utils.generic_utils", "keras.layers.advanced_activations", "keras.layers.normalization",
                       "keras.layers.embeddings", "keras.layers.pooling", "keras.layers.wrappers", "keras.layers.noise",
                       "keras.utils.data_utils", "keras.utils.vis_utils", "keras.utils.conv_utils",
                       "keras.mixed_precision.experimental", "keras.preprocessing.text", "keras.layers.experimental")
KERAS2_ONLY_NAMES = frozenset({
    "keras.backend.get_session", "keras.backend.set_session", "keras.backend.set_learning_phase",
    "keras.backend.learning_phase", "keras.backend.function", "keras.layers.CuDNNLSTM", "keras.layers.CuDNNGRU",
    "keras.preprocessing.image.ImageDataGenerator",
})

def _keras_module(name: str) -> str:
    """`tensorflow.keras.x` / `tensorflow.python.keras.x` -> `keras.x` (Keras 3 behind tf.keras)."""
    for prefix in ("tensorflow.python.keras", "tensorflow.keras"):
        if name == prefix or name.startswith(prefix + "."):
            return "keras" + name[len(prefix):]
    return name


# `fit`'s implicit defaults for arrays (batch_size=None means 32 for arrays).
FIT_DEFAULTS = {"shuffle": True, "batch_size": 32}


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _num(v: Any) -> str:
    return repr(v)


def _module_level_names(module: cst.Module) -> set:
    """Names bound by import statements at module level (top level, or in a top-level
    if/try), which a fix may use anywhere in the file."""
    out: set = set()

    def scan(body):
        for stmt in body:
            if isinstance(stmt, cst.SimpleStatementLine):
                for small in stmt.body:
                    if isinstance(small, cst.Import):
                        for a in small.names:
                            if a.asname is not None and isinstance(a.asname.name, cst.Name):
                                out.add(a.asname.name.value)
                            else:
                                out.add((dotted(a.name) or "").split(".", 1)[0])
                    elif isinstance(small, cst.ImportFrom) and not isinstance(small.names, cst.ImportStar):
                        for a in small.names:
                            if a.asname is not None and isinstance(a.asname.name, cst.Name):
                                out.add(a.asname.name.value)
                            else:
                                out.add(dotted(a.name) or "")
            elif isinstance(stmt, (cst.If, cst.Try)):
                scan(stmt.body.body)
    scan(module.body)
    return out


def _optimizer_spelling(ctx, cls_name: str) -> tuple:
    """(expression text for ``<keras>.optimizers.<cls_name>``, imports to add) in the
    file's own Keras namespace."""
    top = _module_level_names(ctx.module)
    flavors = {keras_flavor(q) for q in ctx.imports.values()} - {None}
    if "tf_keras" in flavors:
        return None, ()  # Keras 2 code: its defaults are not the installed Keras's
    if "keras" in flavors or not flavors and not ctx.uses_tensorflow():
        roots = ("keras",)
    elif "tf.keras" in flavors or ctx.uses_tensorflow():
        roots = ("tensorflow.keras", "keras._tf_keras.keras")
    else:
        return None, ()
    for root in roots:
        for qual in (f"{root}.optimizers.{cls_name}", f"{root}.optimizers"):
            sp = ctx.spelling(qual)
            if sp is not None and sp.split(".", 1)[0] in top:
                return (sp if qual.endswith(cls_name) else f"{sp}.{cls_name}"), ()
    if roots[0] == "keras":
        if "keras" in ctx.imports and ctx.imports["keras"] != "keras":
            return None, ()
        return f"keras.optimizers.{cls_name}", (AddImport("keras"),)
    if "tensorflow" in ctx.imports and ctx.imports["tensorflow"] != "tensorflow":
        return None, ()
    return f"tensorflow.keras.optimizers.{cls_name}", (AddImport("tensorflow"),)


# ---------------------------------------------------------------------------
# KL401
# ---------------------------------------------------------------------------


class ImplicitOptimizerDefaults(Rule):
    """
    ## What it does
    Flags an optimizer given to `compile` as a string (`optimizer="adam"`, or the first
    positional argument, also through a constant `OPT = "adam"` or a literal config dict
    item `cfg["optimizer"]`), and `keras.optimizers.get("adam")`. Strings that never reach
    `compile` (argparse defaults, config dicts that are later turned into objects) are not
    flagged. Only in a file with a *parity context*: one that builds a PyTorch model or
    optimizer, a raw-TensorFlow reference (`tf.Module`, TF1 optimizers, sessions) or a
    JAX reference; the message names it. In a Keras-only tutorial or test the string is
    harmless and not reported (`strict = true` / `--strict` reports it everywhere). In
    such a file the string is reported when the other side builds the same kind of
    optimizer (`torch.optim.Adam`, `tf.compat.v1.train.AdamOptimizer`, `optax.adam`, named
    in the message), or builds no optimizer but defines its model here (an `nn.Module`, a
    TF1 graph); not when it builds only other optimizers (`torch.optim.SGD` beside
    `optimizer="rmsprop"`) or only loads a pretrained model for inference.

    ## Why is this bad?
    The string hides every hyperparameter, and Keras's defaults are not the ones a
    PyTorch or TF1 reference assumes: Keras `Adam` uses ε = 1e-7 where `torch.optim.Adam`
    uses 1e-8; `RMSprop` uses ρ = 0.9 and learning rate 1e-3 where PyTorch uses α = 0.99 and
    1e-2; `AdamW` decays weights by 0.004 where PyTorch uses 0.01; `Adagrad` starts its
    accumulators at 0.1 where PyTorch starts at 0. A port that "uses Adam in both" then
    drifts from the first step. `keraslint verify` measures it as the max absolute weight
    difference after N steps between the Keras model with the optimizer as written and the
    PyTorch reference with its defaults, and again with the defaults written out to match.

    ## Example
    ```python
    torch_opt = torch.optim.Adam(torch_model.parameters())
    model.compile(optimizer="adam", loss="mse")
    ```

    ## Use instead
    ```python
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-07),
        loss="mse",
    )
    ```
    The fix writes out the installed Keras's own defaults, so training is bit-identical.
    """

    code = "KL401"
    name = "implicit-optimizer-defaults"
    severity = "warning"
    fix_applicability = "safe"
    tokens = ("compile", "optimizers")

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.values = values.of(ctx, "strings")
        self._port = None
        self.pending: list = []  # (PyTorch twin, node, message with {parity}, fix) until the context is known
        self.other_optimizers: dict = {}  # family ("adam") -> (call, name) of a PyTorch/TF1/Optax optimizer
        self.wraps_foreign = False  # keras.layers.TorchModuleWrapper / FlaxLayer / JaxLayer: one model, Keras-trained

    def _torch_wrapper(self, receiver: Any) -> bool:
        """Is the receiver of ``compile`` visibly a PyTorch training wrapper? Shares KL603's
        judgement (rules/port.py) so the two rules agree on what is Keras."""
        from keraslint.rules.port import OptimizerDefaultsDiffer

        if self._port is None:
            self._port = OptimizerDefaultsDiffer(self.ctx)
        return self._port._not_keras(receiver)

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        arg = None
        where = None
        if is_model_method(ctx, node, "compile"):
            if not keras_file(ctx):
                return
            if ctx.uses_torch() and self._torch_wrapper(node.func.value):
                return  # torchkeras/poutyne/skorch...: a PyTorch trainer with a Keras-like compile
            arg = get_arg(node, "optimizer", 0)
            where = "compile"
        elif isinstance(node.func, (cst.Attribute, cst.Name)):
            q = ctx.resolve(node.func)
            if q == "keras.optimizers.get":
                arg = get_arg(node, "identifier", 0)
                where = "get"
        if arg is None:
            other = self._other_optimizer(node)
            if other is not None:
                self.other_optimizers.setdefault(other[0], (node, other[1]))
            elif isinstance(node.func, (cst.Name, cst.Attribute)) and _last(node.func) in _FOREIGN_WRAPPERS:
                q = ctx.resolve(node.func)
                if q is not None and q.startswith("keras."):
                    self.wraps_foreign = True
            return
        value = literal_value(arg.value)
        indirect = False
        if not isinstance(value, str) and where == "compile":
            value = self.values.string_value(arg.value)
            indirect = True
        if not isinstance(value, str):
            return
        entry = OPTIMIZER_DEFAULTS.get(value.lower())
        if entry is None:
            return
        cls_name, params = entry
        hidden = ", ".join(f"{k}={_num(v)}" for k, v in params)
        torch = TORCH_COUNTERPART.get(value.lower())
        vs = ""
        if torch is not None:
            vs = f" (PyTorch {torch[0]}: " + ", ".join(f"{k}={_num(v)}" for k, v in torch[1]) + ")"
        shown = f"optimizer={code_of(arg.value)}" if where == "compile" else short(node)
        fix = None
        spelled, imports = _optimizer_spelling(ctx, cls_name)
        if spelled is not None and not indirect:
            new_text = f"{spelled}({hidden})"
            try:
                new_expr = cst.parse_expression(new_text)
            except Exception:  # noqa: BLE001
                new_expr = None
            if new_expr is not None:
                target = arg.value if where == "compile" else node
                fix = Fix.safe(Replace(target, new_expr), *imports,
                               description=f"write out {cls_name}'s defaults")
        self.pending.append((
            value.lower(),
            arg.value if where == "compile" else node,
            f"`{shown}`{f' (= {value!r})' if indirect else ''} hides Keras {cls_name}'s defaults {hidden}{vs}"
            f"{{parity}}: pass `{cls_name}(...)` with the values written out",
            fix,
        ))

    def finish(self) -> None:
        # A hidden default is only a parity hazard where the file compares Keras with
        # another implementation (asked here: the context is complete after the traversal).
        parity = self.ctx.parity
        if parity is None:
            return
        refs = {"ctx": parity.node} if parity.node is not None else None
        why = f" ({parity.phrase()})" if parity.kind == "strict" else f", which matters because {parity.phrase()}"
        # the other side defines its model here (not a pretrained model loaded for inference,
        # not a module wrapped into a Keras layer and trained by Keras); a Flax/Haiku module
        # without an Optax optimizer is the Keras JAX backend's own integration
        defines = parity.kind in ("pytorch", "tensorflow") and not self.wraps_foreign and parity.evidence.startswith(
            ("a subclass of", "`torch.nn.", "`tensorflow.compat.v1.", "`tensorflow.Session", "`tensorflow.placeholder"))
        for family, node, msg, fix in self.pending:
            if parity.kind != "strict":
                twin = self.other_optimizers.get(family)
                if twin is not None:
                    # name the twin the hidden defaults drift from
                    self.report(node, msg.replace("{parity}", f", which matters because this file also builds "
                                                              f"`{twin[1]}` ({{ctx}}) with its own defaults"),
                                fix=fix, refs={"ctx": twin[0]})
                    continue
                if self.other_optimizers or not defines:
                    # the other side trains with other optimizers (a book chapter showing each
                    # framework), or it is a pretrained model loaded for inference: nothing for
                    # this string's defaults to drift from
                    continue
            self.report(node, msg.replace("{parity}", why), fix=fix, refs=refs)

    def _other_optimizer(self, node: cst.Call) -> Optional[tuple]:
        """(optimizer family, canonical name) of a PyTorch / TF1 / Optax optimizer built by
        ``node`` (`torch.optim.Adam` -> "adam")."""
        if not isinstance(node.func, (cst.Name, cst.Attribute)):
            return None
        name = _last(node.func)
        if name not in _TORCH_FAMILY and name not in _TF1_FAMILY and name not in OPTIMIZER_DEFAULTS:
            return None  # cheap test first: most calls are not optimizers
        q = self.ctx.resolve(node.func)
        if q is None:
            return None
        last = q.rsplit(".", 1)[-1]
        if q.startswith("torch.optim.") and q.count(".") == 2 and last in _TORCH_FAMILY:
            return _TORCH_FAMILY[last], q
        if q.startswith(("tensorflow.compat.v1.train.", "tensorflow.train.")) and last in _TF1_FAMILY:
            return _TF1_FAMILY[last], q
        if q.startswith("optax.") and last in OPTIMIZER_DEFAULTS:
            return last, q
        return None


# ---------------------------------------------------------------------------
# KL402
# ---------------------------------------------------------------------------


class LegacyOptimizerKwargs(Rule):
    """
    ## What it does
    Flags `lr=` and `decay=` given to a Keras optimizer class (`keras.optimizers.Adam`,
    `tf.keras.optimizers.SGD`, `from keras.optimizers import RMSprop`, …). PyTorch
    optimizers, which are spelled with `lr`, and the `tf_keras` / `optimizers.legacy`
    classes of Keras 2, which still accept both, are not flagged.

    ## Why is this bad?
    Keras 3 removed both arguments. `Adam(lr=0.01)` raises `ValueError: Argument(s) not
    recognized: {'lr': 0.01}`, so a Keras 2 script fails where it used to train. Worse,
    `decay=` is accepted and ignored with only a warning ("Argument `decay` is no longer
    supported and will be ignored"): the learning rate silently stays constant, where
    Keras 2 used `lr / (1 + decay * step)`. The run converges differently with no error.

    ## Example
    ```python
    opt = keras.optimizers.SGD(lr=0.1, decay=1e-4)
    ```

    ## Use instead
    ```python
    schedule = keras.optimizers.schedules.InverseTimeDecay(0.1, decay_steps=1, decay_rate=1e-4)
    opt = keras.optimizers.SGD(learning_rate=schedule)
    ```
    The fix renames `lr=` to `learning_rate=` (the same number); `decay=` needs the schedule
    above, which the fix does not write.
    """

    code = "KL402"
    name = "legacy-optimizer-kwargs"
    severity = "error"
    fix_applicability = "safe"
    tokens = ("lr", "decay")

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.pending: list = []
        self.keras2: Optional[str] = None  # first sign that the file targets Keras 2

    def _keras2(self, what: str) -> None:
        if self.keras2 is None:
            self.keras2 = what

    def visit_Import(self, node: cst.Import) -> None:
        for a in node.names:
            name = dotted(a.name) or ""
            if _keras_module(name).startswith(KERAS2_ONLY_MODULES):
                self._keras2(f"`import {name}`")

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        if node.relative or node.module is None:
            return
        raw = dotted(node.module) or ""
        mod = _keras_module(raw)
        if mod.startswith(KERAS2_ONLY_MODULES):
            self._keras2(f"`from {raw} import ...`")
        elif not isinstance(node.names, cst.ImportStar):
            for a in node.names:
                full = f"{mod}.{dotted(a.name)}"
                if full in KERAS2_ONLY_NAMES or full.startswith(KERAS2_ONLY_MODULES):
                    self._keras2(f"`from {raw} import {dotted(a.name)}`")

    def finish(self) -> None:
        # A file written for Keras 2 (it also uses APIs Keras 3 removed: `fit_generator`,
        # `keras.layers.core`, `K.get_session`...) does not run on Keras 3 anyway, and there
        # `lr=`/`decay=` are the right spellings (Keras 2.0-2.2 had no `learning_rate=`).
        # It is still reported (a reader running it today on Keras 3 hits this first, and
        # the judged real-code sample accepted these): the message says the file needs
        # porting as a whole.
        if self.pending and self.keras2 is None:
            self._keras2_in_project()
        note = ""
        if self.keras2 is not None:
            note = (f" (this file also relies on Keras 2 APIs that Keras 3 removed, {self.keras2}: "
                    f"it needs porting to Keras 3 as a whole, or a pinned Keras 2 / `tf_keras`)")
        for node, msg, fix in self.pending:
            self.report(node, msg + note, fix=fix)

    def _keras2_in_project(self) -> None:
        """A project module this file imports (its closure, from the project summaries)
        imports a module Keras 3 removed: the project, and this file with it, needs Keras 2
        (keras-rl's examples import `rl`, whose callbacks import `keras.utils.generic_utils`)."""
        view = getattr(self.ctx, "project", None)
        if view is None:
            return
        for f in sorted(view.closure):
            if f == view.path:
                continue
            try:
                imports = view.modules[f].get("imports", {})
            except Exception:  # noqa: BLE001 - a summary we cannot read: no evidence
                continue
            for full in imports.values():
                mod = _keras_module(full)
                if mod.startswith(KERAS2_ONLY_MODULES) or mod in KERAS2_ONLY_NAMES:
                    self._keras2(f"`{full}` imported by `{f}`")
                    return

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        func = node.func
        if isinstance(func, cst.Attribute) and func.attr.value in KERAS2_ONLY_METHODS:
            self._keras2(f"`.{func.attr.value}()`")
        raw = ctx.qualname(node.func)
        if raw is not None and ctx.resolve(node.func) in KERAS2_ONLY_NAMES:
            self._keras2(f"`{raw}`")
        if raw is None or ".legacy." in raw or keras_flavor(raw) in (None, "tf_keras"):
            return
        q = ctx.resolve(node.func)
        if q is None or not q.startswith("keras.optimizers."):
            return
        cls_name = q.rsplit(".", 1)[1]
        if cls_name not in OPTIMIZER_CLASSES:
            return
        for arg in node.args:
            if arg.keyword is None:
                continue
            kw = arg.keyword.value
            if kw == "lr":
                fix = None
                positional = any(a.keyword is None and not a.star for a in node.args)
                if get_arg(node, "learning_rate") is None and not positional and not has_star(node):
                    fix = Fix.safe(Replace(arg, arg.with_changes(keyword=cst.Name("learning_rate"))),
                                   description="rename lr= to learning_rate=")
                self.pending.append((
                    arg,
                    f"`lr=` on Keras `{cls_name}`: Keras 3 raises `ValueError: Argument(s) not recognized` "
                    f"(use `learning_rate=`)",
                    fix,
                ))
            elif kw == "decay":
                v = literal_value(arg.value)
                if isinstance(v, (int, float)) and not isinstance(v, bool) and v * DECAY_STEPS < DECAY_NEGLIGIBLE:
                    continue  # lr / (1 + decay * step) moves by < 1% in 100k steps: ignoring it changes nothing
                self.pending.append((
                    arg,
                    f"`decay=` on Keras `{cls_name}`: Keras 3 ignores it with only a warning, so the learning "
                    f"rate never decays (Keras 2 used lr / (1 + decay * step)); use "
                    f"`keras.optimizers.schedules.InverseTimeDecay(lr, decay_steps=1, decay_rate={short(arg.value, 20)})`",
                    None,
                ))


# ---------------------------------------------------------------------------
# KL403
# ---------------------------------------------------------------------------


class SharedOptimizer(Rule):
    """
    ## What it does
    Flags one optimizer object compiled into two different models: the same variable
    passed to `compile` of two models (also one model variable rebound to a new model, or
    a loop over models). A factory call or `from_config` per model, or the same model
    compiled twice, is fine. So is the GAN pattern that freezes one of the models
    (`d.compile(optimizer=opt)`, `d.trainable = False`, `combined.compile(optimizer=opt)`):
    a model with no trainable weights never builds the optimizer (measured in Keras 3.15),
    and a Keras 2 legacy optimizer (`tf.keras.optimizers.legacy.*`).

    ## Why is this bad?
    A Keras 3 optimizer builds its slots (momenta, step counter) for the variables of the
    first model it trains. The second model's `fit` then fails with `ValueError: Unknown
    variable: <Variable path=sequential_1/dense_1/kernel ...>. This optimizer can only be
    called for the variables it was originally built with.` In Keras 2 it did not fail:
    the models shared the step count (and with it bias correction and schedules), so the
    second model trained with a different effective learning rate from its first step.

    ## Example
    ```python
    opt = keras.optimizers.Adam(learning_rate=1e-3)
    teacher.compile(optimizer=opt, loss="mse")
    student.compile(optimizer=opt, loss="mse")
    ```

    ## Use instead
    ```python
    def make_opt():
        return keras.optimizers.Adam(learning_rate=1e-3)

    teacher.compile(optimizer=make_opt(), loss="mse")
    student.compile(optimizer=make_opt(), loss="mse")
    ```
    """

    code = "KL403"
    name = "shared-optimizer"
    severity = "error"
    fix_applicability = None
    tokens = ("compile",)

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.values = values.of(ctx, "optimizers")

    def finish(self) -> None:
        frozen = self.values.frozen
        for opt in self.values.optimizer_instances():
            q = self.ctx.resolve(opt.built.func) if isinstance(opt.built, cst.Call) else None
            if q is not None and ".optimizers.legacy." in q:
                continue  # a Keras 2 (tf.keras ≤ 2.15) legacy optimizer: Keras 3 has none to build
            for use in opt.uses:
                if use.loop is not None:
                    self.report(use.node, f"optimizer `{use.name}` is built once and compiled into every model of "
                                          f"the loop over `{use.loop}`: the models share one optimizer; Keras 3 "
                                          f"raises `Unknown variable` when the second one trains (build the "
                                          f"optimizer inside the loop)")
            for use, other in opt.shared():
                if use.text in frozen or other.text in frozen:
                    # the GAN pattern: `d.compile(opt); d.trainable = False; combined.compile(opt)`.
                    # A frozen model has no trainable weights when it trains: Keras 3 skips the
                    # optimizer there (no `Unknown variable`), so only the other model builds it
                    continue
                if opt.on_self:
                    # `self.opt = Adam(...)` in one method, compiled into `self.a` and `self.b`
                    self.report(use.node, f"optimizer `{opt.label}` (built once, {{ctx}}) was already compiled into "
                                          f"`{other.text}`; compiling it into `{use.text}` shares its slots and step "
                                          f"count: Keras 3 raises `Unknown variable` at `{use.text}`'s first training "
                                          f"step (build one optimizer per model)", refs={"ctx": opt.built})
                    break
                before = f"`{other.text}`" if other.text != use.text else f"the model `{use.text}` held before"
                self.report(
                    use.node,
                    f"optimizer `{use.name}` was already compiled into {before}; compiling it into "
                    f"`{use.text}` shares its slots and step count: Keras 3 raises `Unknown variable` at "
                    f"`{use.text}`'s first training step (build one optimizer per model)",
                )
        for b in self.values.borrowed_optimizers():
            self.report(b.node, f"`{code_of(b.node)}` is the optimizer of `{b.owner}`, compiled again into "
                                f"`{b.into}`: both models share one optimizer; Keras 3 raises `Unknown "
                                f"variable` at the second model's first step (build one optimizer per model)")


# ---------------------------------------------------------------------------
# KL404
# ---------------------------------------------------------------------------

class LogitsMismatch(Rule):
    """
    ## What it does
    Compares a model's final activation with the loss it is compiled with: a final
    `softmax`/`sigmoid` (`activation=` on the last `Dense`, an `Activation`/`Softmax`
    layer, `keras.activations.softmax`) with a loss that says `from_logits=True`, or a
    linear final layer (`Dense` with no activation) with a probability loss that keeps the
    default `from_logits=False` (every string loss: `"sparse_categorical_crossentropy"`,
    `"binary_crossentropy"`, …). The model is followed through `Sequential([...])`,
    `model.add(...)`, the functional graph and helper functions of the same file.

    ## Why is this bad?
    A linear head with a probability loss is wrong on every backend: the raw scores are
    clipped to [1e-7, 1 − 1e-7] (and normalised by their sum for categorical losses) as if
    they were probabilities, so the loss is meaningless and the gradients vanish where a
    score is negative. A softmax head with `from_logits=True` depends on the backend: on
    TensorFlow Keras 3 finds the logits it cached on the softmax output (`_keras_logits`),
    uses them and only warns; on JAX and PyTorch the softmax is applied twice, which
    squashes the loss towards log(n_classes) and shrinks the gradients. `keraslint verify`
    measures the max absolute weight difference after N steps between the loss as written
    and the loss with `from_logits` made consistent, on the program's own backend.

    ## Example
    ```python
    model = keras.Sequential([layers.Dense(64, activation="relu"), layers.Dense(10)])
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
    ```

    ## Use instead
    ```python
    model.compile(optimizer=opt, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    ```
    """

    code = "KL404"
    name = "logits-mismatch"
    severity = "error"
    fix_applicability = None
    tokens = ("compile",)

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.values = values.of(ctx, "models")

    def finish(self) -> None:
        for m in self.values.compiled_models():
            kind = m.activation
            if m.from_logits and kind in ("softmax", "sigmoid"):
                self.report(
                    m.loss_arg.value,
                    f"`{m.loss}` says from_logits=True but the model ends in a {kind} (`{m.layer}`): "
                    f"on the TensorFlow backend Keras 3 reuses the logits cached on the {kind} output and "
                    f"only warns; on JAX/PyTorch the {kind} is applied twice (drop the {kind} or use "
                    f"from_logits=False)",
                )
            elif not m.from_logits and kind == "linear":
                self.report(
                    m.loss_arg.value,
                    f"`{m.loss}` expects probabilities (from_logits=False) but the model ends in a linear "
                    f"layer (`{m.layer}`): raw scores are clipped to [1e-7, 1-1e-7] as if they were "
                    f"probabilities on every backend (pass from_logits=True)",
                )


# ---------------------------------------------------------------------------
# KL405 / KL406: fit
# ---------------------------------------------------------------------------


# Calls that return arrays with their rows in random order (train_test_split shuffles by
# default), and array methods that keep the row order.
_SHUFFLING_SPLITS = {"sklearn.model_selection.train_test_split", "sklearn.utils.shuffle",
                     "sklearn.cross_validation.train_test_split"}
_ROWWISE_METHODS = {"reshape", "astype", "copy", "to_numpy", "values", "squeeze", "flatten"}
# Calls whose result's rows are visibly in order (KL406), and what the last rows then are.
_SORTED = "the largest values only"
_CONCATENATIONS = {"numpy.concatenate", "numpy.vstack", "numpy.row_stack", "numpy.append", "pandas.concat",
                   "tensorflow.concat", "keras.ops.concatenate"}
_GRIDS = {"numpy.linspace", "numpy.arange", "numpy.logspace", "numpy.geomspace", "tensorflow.range",
          "tensorflow.linspace", "keras.ops.linspace", "keras.ops.arange"}
# Functions whose result keeps the rows of their first argument in the same order.
_ROW_KEEPING_FUNCS = {"numpy.array", "numpy.asarray", "numpy.stack", "numpy.expand_dims", "numpy.reshape",
                      "numpy.squeeze", "numpy.float32", "numpy.log", "numpy.log1p", "numpy.exp", "numpy.abs",
                      "numpy.sqrt", "numpy.clip", "tensorflow.convert_to_tensor", "tensorflow.constant",
                      "tensorflow.expand_dims", "tensorflow.reshape", "keras.utils.to_categorical",
                      "keras.ops.convert_to_tensor", "keras.ops.expand_dims", "keras.ops.reshape"}


def _fit_xy(node: cst.Call) -> tuple:
    return get_arg(node, "x", 0), get_arg(node, "y", 1)


class FitVsLoopDefaults(Rule):
    """
    ## What it does
    In a file that trains a model both with a custom `tf.GradientTape` loop (a tape whose
    gradients reach `apply_gradients`, outside a `train_step`) and with `fit` on arrays
    (`fit(x, y)`), flags the `fit` calls that leave `shuffle` or `batch_size` implicit,
    when both train the same kind of model (same builder, or a loop over a model of
    unknown origin) and the file compares the two: a statement uses both the loop's model
    and the fitted one (an assertion or printed difference of their outputs or weights,
    `set_weights(get_weights())`). A tutorial that shows a loop and `fit` one after the
    other, never compared, is not flagged (`strict` flags it).

    ## Why is this bad?
    `fit` on arrays silently uses `batch_size=32` (its signature says `None`) and
    `shuffle=True` (reshuffled every epoch), while a hand-written loop usually iterates a
    dataset batched its own way, in a fixed order. The two "identical" trainings then see
    different batches from the first step, and their losses and weights diverge.
    `keraslint verify` measures the weight difference after N steps between the two
    trainings.

    ## Example
    ```python
    for xb, yb in tf.data.Dataset.from_tensor_slices((x, y)).batch(64):
        with tf.GradientTape() as tape:
            ...
        opt.apply_gradients(zip(grads, model.trainable_variables))
    other.fit(x, y, epochs=1)
    ```

    ## Use instead
    ```python
    other.fit(x, y, epochs=1, batch_size=64, shuffle=False)
    ```
    The unsafe fix writes out the loop's own batch size and shuffling when it can read them
    from the dataset the loop iterates.
    """

    code = "KL405"
    name = "fit-vs-loop-defaults"
    severity = "warning"
    fix_applicability = "unsafe"
    tokens = ("GradientTape",)

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.values = values.of(ctx)
        self.fits: list = []  # (call node, receiver kind)
        self.tapes: list = []  # (with node, stack)
        self.loop_models: list = []  # kinds of models trained by a tape loop
        self.applies = 0
        self.loop_batches: list = []  # (batch size, shuffled) of datasets iterated around a tape
        self.loop_names: set = set()  # names of the models a tape loop trains (`loop_model`, `self.net`)
        self._compared: dict = {}

    def _in_train_step(self) -> bool:
        fn = self.ctx.function
        while fn is not None:
            if fn.cls is not None and fn.cls.kind is not None:
                return True
            fn = fn.parent
        return False

    def visit_With(self, node: cst.With) -> None:
        for item in node.items:
            call = item.item
            if isinstance(call, cst.Call) and self.ctx.resolve(call.func) == "tensorflow.GradientTape":
                if not self._in_train_step():
                    self.tapes.append(node)
                    self._loop_batch()
                return

    def _loop_batch(self) -> None:
        """Batch size / shuffling of the dataset iterated by a `for` around the tape."""
        for anc in reversed(self.ctx.stack):
            if isinstance(anc, cst.For):
                it = anc.iter
                if isinstance(it, cst.Name):
                    it, _ = self.values.value(it)
                info = _pipeline(self.ctx, self.values, it)
                if info is not None:
                    self.loop_batches.append(info)
                    return

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        if is_method_call(node, "apply_gradients") and not self._in_train_step():
            self.applies += 1
            a = get_arg(node, "grads_and_vars", 0)
            if a is not None and isinstance(a.value, cst.Call) and dotted(a.value.func) == "zip" \
                    and len(a.value.args) == 2:
                vs = a.value.args[1].value
                if isinstance(vs, cst.Attribute) and vs.attr.value in ("trainable_variables", "trainable_weights"):
                    self.loop_models.append(self.values.builder(vs.value))
                    self._loop_name(vs.value)
            return
        if is_method_call(node, "gradient") and not self._in_train_step() and len(node.args) >= 2:
            vs = node.args[1].value
            if isinstance(vs, cst.Attribute) and vs.attr.value in ("trainable_variables", "trainable_weights"):
                self.loop_models.append(self.values.builder(vs.value))
                self._loop_name(vs.value)
            return
        if is_model_method(ctx, node, "fit") and not self._in_train_step():
            x, y = _fit_xy(node)
            if x is None or y is None or has_star(node) or ctx.is_dataset(x.value):
                return
            self.fits.append((node, self.values.builder(node.func.value)))  # type: ignore[union-attr]

    def _loop_name(self, expr: Any) -> None:
        text = code_of(expr)
        if isinstance(expr, (cst.Name, cst.Attribute)):
            self.loop_names.add(text)

    def _comparison(self, fit_receiver: Any) -> Any:
        """The first statement that uses both a model trained by the tape loop and the model
        given to ``fit`` (two different names): the file compares the two trainings
        (`np.testing.assert_allclose(a.predict(x), b.predict(x))`, a printed difference,
        `b.set_weights(a.get_weights())`). Without one, the loop and `fit` are two demos."""
        fit_text = code_of(fit_receiver)
        others = self.loop_names - {fit_text}
        if not others:
            return None
        key = (fit_text, tuple(sorted(others)))
        if key in self._compared:
            return self._compared[key]
        found = None

        class _Finder(cst.CSTVisitor):
            def visit_SimpleStatementLine(self, line: cst.SimpleStatementLine) -> bool:  # noqa: N802
                nonlocal found
                if found is None:
                    texts = _expr_texts(line)
                    if fit_text in texts and texts & others:
                        found = line
                return False

        self.ctx.module.visit(_Finder())
        self._compared[key] = found
        return found

    def finish(self) -> None:
        if not self.tapes or not self.applies or not self.fits:
            return
        loop_kinds = set(self.loop_models)
        if not loop_kinds:
            return
        parity = self.ctx.parity
        strict = parity is not None and parity.kind == "strict"
        batch = self.loop_batches[0] if len(set(self.loop_batches)) == 1 else None
        for call, kind in self.fits:
            if None not in loop_kinds and kind not in loop_kinds:
                continue
            compared = self._comparison(call.func.value)
            if compared is None and not strict:
                continue  # two ways of training shown side by side, never compared
            missing = [k for k in ("batch_size", "shuffle") if get_arg(call, k) is None]
            if batch is not None and batch[0] is not None:
                loop_values = {"batch_size": batch[0], "shuffle": batch[1]}
                # implicit defaults that equal the loop's own batching change nothing
                missing = [k for k in missing if loop_values[k] != FIT_DEFAULTS[k]]
            if not missing:
                continue
            fix = None
            if batch is not None and batch[0] is not None:
                values = {"batch_size": str(batch[0]), "shuffle": "True" if batch[1] else "False"}
                new_args = list(call.args)
                if new_args:
                    last = new_args[-1]
                    if last.comma is cst.MaybeSentinel.DEFAULT:
                        new_args[-1] = last.with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
                for i, k in enumerate(missing):
                    comma = cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")) if i < len(missing) - 1 \
                        else cst.MaybeSentinel.DEFAULT
                    new_args.append(cst.Arg(keyword=cst.Name(k), value=cst.parse_expression(values[k]),
                                            equal=cst.AssignEqual(whitespace_before=cst.SimpleWhitespace(""),
                                                                  whitespace_after=cst.SimpleWhitespace("")),
                                            comma=comma))
                if not _multiline(call):
                    fix = Fix.unsafe(Replace(call, call.with_changes(args=new_args)),
                                     description="make fit's batching explicit to match the loop")
            implicit = ", ".join(f"{k}={FIT_DEFAULTS[k]}" for k in missing)
            loop = ""
            if batch is not None and batch[0] is not None:
                loop = f" while the GradientTape loop uses batches of {batch[0]}{', shuffled' if batch[1] else ' in a fixed order'}"
            why = " (the file compares the two trainings, {ctx})" if compared is not None else ""
            self.report(
                call,
                f"`fit` leaves {implicit} implicit{loop}: the custom loop and `fit` see different batches{why} "
                f"(pass {' and '.join(f'`{k}=`' for k in missing)} explicitly)",
                fix=fix,
                refs={"ctx": compared} if compared is not None else None,
            )


def _expr_texts(node: Any) -> set:
    """The texts of the names and attribute chains used in ``node`` (`a`, `self.net`)."""
    out: set = set()

    class _V(cst.CSTVisitor):
        def visit_Name(self, n: cst.Name) -> None:  # noqa: N802
            out.add(n.value)

        def visit_Attribute(self, n: cst.Attribute) -> bool:  # noqa: N802
            d = dotted(n)
            if d is not None:
                out.add(d)
            n.value.visit(self)  # not the `.attr` name: `tf.keras.layers` does not use `layers`
            return False

    node.visit(_V())
    return out


def _multiline(call: cst.Call) -> bool:
    return "\n" in code_of(call)


def _pipeline(ctx, flow: values.Values, expr: Any, depth: int = 0) -> Optional[tuple]:
    """(batch size or None, shuffled) of a tf.data pipeline expression, or None."""
    if depth > 20 or expr is None:
        return None
    if not ctx.is_dataset(expr):
        return None
    batch = None
    shuffled = False
    e = expr
    while isinstance(e, cst.Call) and isinstance(e.func, cst.Attribute):
        m = e.func.attr.value
        if m == "batch" and batch is None:
            a = get_arg(e, "batch_size", 0)
            v = literal_value(a.value) if a is not None else NOT_LITERAL
            if isinstance(v, int) and not isinstance(v, bool):
                batch = v
            else:
                return None
        elif m == "shuffle":
            shuffled = True
        elif m in ("unbatch", "rebatch", "padded_batch", "ragged_batch"):
            return None
        e = e.func.value
        if isinstance(e, cst.Name):
            v2, _ = flow.value(e)
            if v2 is None:
                return None
            e = v2
    if batch is None:
        return None
    return batch, shuffled


class ValidationSplitOrder(Rule):
    """
    ## What it does
    Flags `validation_split=` in a `fit(x, y, ...)` call on arrays whose rows are visibly
    in order: concatenated by class or source (`np.concatenate`, `np.vstack`, `pd.concat`),
    sorted (`np.sort`, `sort_values`, an `argsort` index), an evenly spaced grid
    (`np.linspace`, `np.arange`), followed through assignments, row-wise
    operations (`reshape`, `astype`, arithmetic, slicing, a scaler's `transform`),
    `train_test_split(..., shuffle=False)` and helper functions of the file. Data in random
    order is not flagged: `keras.datasets` arrays, `np.random` draws, `train_test_split`,
    a permutation; nor is data of unknown order (a CSV, a parameter), nor windows cut from
    a time series in order: there the last stretch is the right validation set (a random
    split would leak overlapping windows). Opt-in (not in the default set): on about 800
    real files it fired once, and that once was a correct time-based split.

    ## Why is this bad?
    Keras takes the validation rows from the **end** of `x`/`y`, before any shuffling
    (`shuffle=True` only shuffles the training part). For ordered data the validation set
    is then one class, one source, the largest inputs or the last months only, and the
    validation metrics disagree with a reference that splits at random
    (`train_test_split`, `random_split` in PyTorch). With a `tf.data.Dataset` Keras raises
    (`validation_split` is only supported for tensors or NumPy arrays), so datasets are
    not flagged.

    ## Example
    ```python
    x = np.concatenate([cats, dogs])
    model.fit(x, y, epochs=5, validation_split=0.2)
    ```

    ## Use instead
    ```python
    idx = np.random.default_rng(0).permutation(len(x))
    n_val = len(x) // 5
    model.fit(x[idx[n_val:]], y[idx[n_val:]], epochs=5,
              validation_data=(x[idx[:n_val]], y[idx[:n_val]]))
    ```
    """

    code = "KL406"
    name = "validation-split-order"
    severity = "info"
    default = False
    fix_applicability = None
    tokens = ("validation_split",)

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        # (scope, name) -> (evidence node, reason) for an array last bound in row order
        self.order: dict = {}
        self.windows: dict = {}  # (scope, list name) -> append node: windows of a series
        self.helper_returns: dict = {}  # function name -> [order of each return]

    def _key(self, name: str) -> tuple:
        fn = self.ctx.function
        while fn is not None and name not in fn.locals:
            fn = fn.parent
        return (id(fn) if fn is not None else 0, name)

    def _ordered(self, expr: Any, depth: int = 0) -> Optional[tuple]:
        """(evidence node, reason) if ``expr`` is an array whose rows are visibly in order."""
        if depth > 10 or expr is None:
            return None
        ctx = self.ctx
        if isinstance(expr, cst.Name):
            hit = self.order.get(self._key(expr.value))
            if hit is not None:
                return hit
            # Windows cut from a series in time order (self.windows) are NOT evidence: holding
            # out the last stretch of a series is time-based validation, the right split for
            # forecasting (a random split leaks overlapping windows into validation); they
            # are tracked so that a window list is never mistaken for data of another order.
            return None
        if isinstance(expr, cst.BinaryOperation):
            left = self._ordered(expr.left, depth + 1)
            if left is not None or literal_value(expr.left) is NOT_LITERAL:
                return left
            return self._ordered(expr.right, depth + 1)  # 2 * x
        if isinstance(expr, cst.Attribute) and expr.attr.value in ("values", "iloc", "loc", "T"):
            return self._ordered(expr.value, depth + 1) if expr.attr.value != "T" else None
        if isinstance(expr, cst.Subscript):
            if isinstance(expr.slice[0].slice, cst.Slice):
                return self._ordered(expr.value, depth + 1)  # x[:n], x[:, 1:] keep the row order
            if len(expr.slice) == 1 and isinstance(expr.slice[0].slice, cst.Index):
                idx = expr.slice[0].slice.value
                if isinstance(idx, cst.Call) and isinstance(idx.func, cst.Attribute) \
                        and idx.func.attr.value == "argsort" or ctx.resolve(getattr(idx, "func", None)) == "numpy.argsort":
                    return (expr, ("sorted (indexed by `argsort`)", _SORTED))
            return None
        if not isinstance(expr, cst.Call):
            return None
        q = ctx.resolve(expr.func)
        first = expr.args[0].value if expr.args and not expr.args[0].star else None
        if q in _CONCATENATIONS:
            axis = get_arg(expr, "axis", None if q in ("numpy.vstack", "numpy.row_stack") else 1)
            if axis is None or literal_value(axis.value) in (0, "index", "rows"):
                return (expr, (f"concatenated by class or source (`{short(expr.func, 30)}`)", "the last part only"))
            if isinstance(first, (cst.List, cst.Tuple)) and first.elements:
                return self._ordered(first.elements[0].value, depth + 1)  # columns added: rows as in the first part
            return None
        if q in ("numpy.sort", "sorted") or (q is None and isinstance(expr.func, cst.Name) and expr.func.value == "sorted"):
            return (expr, ("sorted", _SORTED))
        if q in _GRIDS:
            return (expr, (f"an evenly spaced, sorted grid (`{short(expr.func, 30)}`)", "the end of the range only: validation measures extrapolation"))
        if q in _SHUFFLING_SPLITS:
            sh = get_arg(expr, "shuffle")
            if sh is not None and literal_value(sh.value) is False and first is not None:
                return self._ordered(first, depth + 1)
            return None
        if q in _ROW_KEEPING_FUNCS and first is not None:
            if q in ("numpy.array", "numpy.asarray", "numpy.stack") and isinstance(first, cst.Name):
                if self.windows.get(self._key(first.value)) is not None:
                    return None  # time-ordered windows: last-rows validation is right there
            return self._ordered(first, depth + 1)
        f = expr.func
        if isinstance(f, cst.Attribute) and q is None:
            if f.attr.value in ("sort_values", "sort_index"):
                return (expr, (f"sorted (`.{f.attr.value}()`)", _SORTED))
            if f.attr.value in _ROWWISE_METHODS:
                return self._ordered(f.value, depth + 1)  # x.reshape(...), x.astype(...)
            if f.attr.value in ("transform", "fit_transform") and first is not None:
                return self._ordered(first, depth + 1)  # scaler.transform(x)
            return None
        if isinstance(f, cst.Name) and q is None:
            rets = self.helper_returns.get(f.value)
            if rets and all(r is not None for r in rets):
                return rets[0]
        return None

    def visit_Assign(self, node: cst.Assign) -> None:
        value = node.value
        for t in node.targets:
            tgt = t.target
            if isinstance(tgt, cst.Name):
                self.order[self._key(tgt.value)] = self._ordered(value)
                if isinstance(value, cst.List) and not value.elements:
                    self.windows.pop(self._key(tgt.value), None)
            elif isinstance(tgt, (cst.Tuple, cst.List)):
                pairs = isinstance(value, (cst.Tuple, cst.List)) and len(value.elements) == len(tgt.elements)
                split = None
                if isinstance(value, cst.Call) and self.ctx.resolve(value.func) in _SHUFFLING_SPLITS:
                    split = value
                for i, el in enumerate(tgt.elements):
                    if not isinstance(el.value, cst.Name):
                        continue
                    if pairs:
                        hit = self._ordered(value.elements[i].value)  # type: ignore[union-attr]
                    elif split is not None:
                        # x_tr, x_te, y_tr, y_te = train_test_split(x, y, shuffle=False)
                        arrays = [a for a in split.args if a.keyword is None and not a.star]
                        sh = get_arg(split, "shuffle")
                        hit = None
                        if sh is not None and literal_value(sh.value) is False and i // 2 < len(arrays):
                            hit = self._ordered(arrays[i // 2].value)
                    else:
                        hit = None
                    self.order[self._key(el.value.value)] = hit

    def visit_Return(self, node: cst.Return) -> None:
        fn = self.ctx.function
        if fn is not None and node.value is not None and fn.parent is None and fn.cls is None:
            self.helper_returns.setdefault(fn.name, []).append(self._ordered(node.value))

    def visit_Call(self, node: cst.Call) -> None:
        ctx = self.ctx
        f = node.func
        if isinstance(f, cst.Attribute) and f.attr.value == "append" and isinstance(f.value, cst.Name) \
                and len(node.args) == 1:
            loops = [n for n in ctx.stack if isinstance(n, cst.For)]
            if loops and _window_elt(node.args[0].value, None, loops[-1]):
                self.windows.setdefault(self._key(f.value.value), node)
            return
        if not is_model_method(ctx, node, "fit") or not keras_file(ctx):
            return
        a = get_arg(node, "validation_split")
        if a is None:
            return
        v = literal_value(a.value)
        if v is None or v == 0 or v is False:
            return
        x, y = _fit_xy(node)
        if x is None or y is None or ctx.is_dataset(x.value):
            return
        hit = self._ordered(x.value)
        if hit is None:
            return  # random or unknown row order: the last rows are not known to be biased
        evidence, (reason, consequence) = hit
        self.report(
            a,
            f"`validation_split={short(a.value, 20)}` takes the last rows of `{short(x.value, 30)}`, before "
            f"shuffling, and its rows are {reason} ({{ctx}}): the validation set is {consequence}, unlike a "
            f"random split (shuffle once, or pass `validation_data=`)",
            refs={"ctx": evidence},
        )


def _window_elt(elt: Any, comp: Any, loop: Any = None) -> bool:
    """Is ``elt`` (or does it contain) ``seq[i : i + n]`` with ``i`` the variable of the
    enclosing ``for`` loop or comprehension: a window cut from a series in order?"""
    names: set = set()
    if loop is not None and isinstance(loop.target, cst.Name):
        names.add(loop.target.value)
    c = comp
    while c is not None:
        if isinstance(c.target, cst.Name):
            names.add(c.target.value)
        c = c.inner_for_in
    if not names:
        return False
    found = False

    class _V(cst.CSTVisitor):
        def visit_Slice(self, sl: cst.Slice) -> None:  # noqa: N802
            nonlocal found
            low, up = sl.lower, sl.upper
            if isinstance(low, cst.Name) and low.value in names and up is not None and any(
                    isinstance(n, cst.Name) and n.value == low.value for n in _names_in(up)):
                found = True

    elt.visit(_V())
    return found


def _names_in(expr: Any) -> list:
    out: list = []

    class _V(cst.CSTVisitor):
        def visit_Name(self, n: cst.Name) -> None:  # noqa: N802
            out.append(n)

    expr.visit(_V())
    return out
