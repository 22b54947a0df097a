"""The run-time order of a script: part of the engine's value-flow model, queried by the
randomness (KL1) and precision (KL2) rules (seed, build, train, policy and determinism events
in execution order; across modules through ``ctx.project``).

"Before" in "no seed before the model is built" means *execution order*, not line order:
module-level statements (including an ``if __name__ == "__main__":`` block) in order, with
the body of every function of this file that they call spliced in at the call (``main()``,
``set_seeds()``, ``build_model()``, ``app.run(main)``), a local class's ``__init__``
spliced in where the class is instantiated, ``self.method()`` calls spliced in inside the
methods of this file's classes, and the model-building function given to a scikit-learn
wrapper (``KerasClassifier(build_fn=...)``, ``keras.wrappers.SKLearnRegressor(model=...)``)
spliced in where the wrapper is created. A file whose execution order builds
or trains nothing (a library module that only defines layers and model factories) is not a
script.

The events are recorded during the engine's single traversal (one recorder per file,
shared by the rules through the Context) and ordered in ``finish()``.

Library facts used by the messages are module constants here; ``tests/
test_defaults_seeds_precision.py`` checks each one against the installed Keras 3.15 /
TensorFlow 2.21.
"""

from __future__ import annotations

import re

from dataclasses import dataclass
from typing import Any, Iterator, Optional

import libcst as cst

from keraslint.rule import Rule
from keraslint.semantics import dotted, get_arg, literal_value, spell_with

# ---------------------------------------------------------------------------
# Library facts (checked by tests/test_defaults_seeds_precision.py)
# ---------------------------------------------------------------------------

# `keras.layers` classes whose constructor draws a seed from Python's `random`
# (`keras.random.make_default_seed()` = `random.randint(1, int(1e9))`): their initializers
# (or their SeedGenerator) are created in `__init__`. Measured on Keras 3.15.1 by
# constructing each layer and comparing `random.getstate()` before and after.
DRAWING_LAYERS = frozenset({
    "AlphaDropout", "AugMix", "Bidirectional", "Conv1D", "Conv1DTranspose", "Conv2D", "Conv2DTranspose", "Conv3D",
    "Conv3DTranspose", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", "Convolution1D", "Convolution1DTranspose",
    "Convolution2D", "Convolution2DTranspose", "Convolution3D", "Convolution3DTranspose", "CutMix", "Dense",
    "DepthwiseConv1D", "DepthwiseConv2D", "Dropout", "EinsumDense", "Embedding", "GRU", "GRUCell",
    "GaussianDropout", "GaussianNoise", "GroupQueryAttention", "LSTM", "LSTMCell", "MixUp", "MultiHeadAttention",
    "RandAugment", "RandomBrightness", "RandomColorDegeneration", "RandomColorJitter", "RandomContrast",
    "RandomCrop", "RandomElasticTransform", "RandomErasing", "RandomFlip", "RandomGaussianBlur", "RandomGrayscale",
    "RandomHue", "RandomInvert", "RandomPerspective", "RandomPosterization", "RandomRotation", "RandomSaturation",
    "RandomSharpness", "RandomShear", "RandomTranslation", "RandomZoom", "ReversibleEmbedding", "SeparableConv1D",
    "SeparableConv2D", "SeparableConvolution1D", "SeparableConvolution2D", "SimpleRNN", "SimpleRNNCell",
    "Solarization", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
})
# `keras.initializers` whose constructor draws a seed the same way (seed=None).
DRAWING_INITIALIZERS = frozenset({
    "GlorotNormal", "GlorotUniform", "HeNormal", "HeUniform", "LecunNormal", "LecunUniform", "Orthogonal",
    "OrthogonalInitializer", "RandomNormal", "RandomUniform", "TruncatedNormal", "VarianceScaling",
    "glorot_normal", "glorot_uniform", "he_normal", "he_uniform", "lecun_normal", "lecun_uniform", "orthogonal",
    "random_normal", "random_uniform", "truncated_normal", "variance_scaling",
})
# How Keras 3 draws a default seed (`keras/src/random/seed_generator.py`).
KERAS_SEED_DRAW = "random.randint(1, int(1e9))"

# What each seeding call seeds. `keras.utils.set_random_seed` runs `random.seed`,
# `np.random.seed` and `tf.random.set_seed` (TF installed), and `torch.manual_seed` only
# when the Keras backend is torch.
PY, NP, TF, TORCH = "python", "numpy", "tensorflow", "torch"
SET_RANDOM_SEED = "keras.utils.set_random_seed"
SEED_APIS = {
    SET_RANDOM_SEED: frozenset({PY, NP, TF}),
    "tensorflow.random.set_seed": frozenset({TF}),
    "tensorflow.compat.v1.set_random_seed": frozenset({TF}),
    "tensorflow.compat.v1.random.set_random_seed": frozenset({TF}),
    "tensorflow.compat.v2.random.set_seed": frozenset({TF}),
    "tensorflow.set_random_seed": frozenset({TF}),
    "numpy.random.seed": frozenset({NP}),
    "random.seed": frozenset({PY}),
    "torch.manual_seed": frozenset({TORCH}),
    "torch.random.manual_seed": frozenset({TORCH}),
    "torch.cuda.manual_seed": frozenset({"torch.cuda"}),
    "torch.cuda.manual_seed_all": frozenset({"torch.cuda"}),
}
GENERATOR_NAMES = {
    PY: "Python `random`",
    NP: "NumPy's global generator",
    TF: "TensorFlow's global seed",
    TORCH: "PyTorch's generator",
}
DETERMINISM_CALLS = {"tensorflow.config.experimental.enable_op_determinism"}
CLEAR_SESSION = {"keras.backend.clear_session", "keras.utils.clear_session"}
POLICY_SETTERS = {"keras.mixed_precision.set_global_policy", "keras.mixed_precision.set_dtype_policy",
                  "keras.config.set_dtype_policy", "keras.dtype_policies.set_dtype_policy",
                  "keras.mixed_precision.set_policy"}
# scikit-learn wrappers (keras.wrappers.scikit_learn, scikeras) that call the model-building
# function given to them when they are fitted.
SKLEARN_WRAPPERS = {"KerasClassifier", "KerasRegressor", "SKLearnClassifier", "SKLearnRegressor", "SKLearnTransformer"}
RUNNERS = {"absl.app.run", "tensorflow.compat.v1.app.run", "tensorflow.app.run", "fire.Fire"}
# A script whose settings come from the command line: it is meant to be run several times
# with different settings and the runs compared (KL101's "runs are compared" context).
CLI_CALLS = {"argparse.ArgumentParser", "fire.Fire", "click.command", "click.option", "hydra.main",
             "typer.Typer", "typer.run", "docopt.docopt"}
CLI_PREFIXES = ("absl.flags.DEFINE", "tensorflow.compat.v1.flags.DEFINE", "tensorflow.compat.v1.app.flags.DEFINE",
                "tensorflow.app.flags.DEFINE", "tensorflow.flags.DEFINE", "ml_collections.config_flags.DEFINE")
CONFIG_LOADERS = {"yaml.safe_load", "yaml.load", "yaml.full_load", "omegaconf.OmegaConf.load", "gin.parse_config_file",
                  "gin.parse_config_files_and_bindings", "configparser.ConfigParser", "toml.load", "tomllib.load"}
# Keyword arguments only Keras's `Model.fit` takes (scikit-learn / xgboost / Lightning `fit` take
# none of them): a `fit` given one trains a Keras model even when the model's origin is unknown
# (an imported factory, `self.model`).
KERAS_FIT_KWARGS = {"epochs", "validation_data", "validation_split", "steps_per_epoch", "initial_epoch",
                    "validation_steps", "validation_freq", "class_weight"}
# How a call is handed trained weights to restore.
CHECKPOINT_WORDS = ("checkpoint", "ckpt", "weights_path", "weight_path", "pretrained", "init_weights")
TF1_OPTIMIZER_PREFIXES = ("tensorflow.train.", "tensorflow.compat.v1.train.")
_CHECKPOINT_WORD = re.compile("|".join(map(re.escape, CHECKPOINT_WORDS)))
CHECKPOINT_SUFFIXES = (".ckpt", ".h5", ".hdf5", ".keras", ".weights.h5", ".pt", ".pth", ".bin", ".safetensors")
# Optimizer methods that change weights: a GradientTape loop trains only when it applies them.
APPLY_METHODS = {"apply_gradients", "minimize", "stateless_apply"}
# keras-hub task names whose head is created, not loaded, when `num_classes=` is given to
# `from_preset` (fine-tuning a pretrained backbone with a new head trains random weights).
HEAD_TASK_SUFFIXES = ("Classifier", "Segmenter", "Detector", "Regressor")

# Random functions and the 0-based position of their `seed` parameter (None: they have no
# seed parameter and always use the global generator).
KERAS_RANDOM_SEED_POS = {
    "normal": 4, "uniform": 4, "truncated_normal": 4, "randint": 4, "dropout": 3, "shuffle": 2,
    "categorical": 3, "gamma": 3, "binomial": 4, "beta": 4,
}
TF_RANDOM_SEED_POS = {
    "tensorflow.random.normal": 4, "tensorflow.random.uniform": 4, "tensorflow.random.truncated_normal": 4,
    "tensorflow.random.shuffle": 1, "tensorflow.random.categorical": 3, "tensorflow.random.gamma": 4,
    "tensorflow.random.poisson": 3, "tensorflow.random.experimental.index_shuffle": None,
    "tensorflow.nn.dropout": 3, "tensorflow.image.random_flip_left_right": 1,
    "tensorflow.image.random_flip_up_down": 1, "tensorflow.image.random_brightness": 2,
    "tensorflow.image.random_contrast": 3, "tensorflow.image.random_crop": 2, "tensorflow.image.random_hue": 2,
    "tensorflow.image.random_saturation": 3, "tensorflow.image.random_jpeg_quality": 3,
    "tensorflow.compat.v1.random_normal": 4, "tensorflow.compat.v1.random_uniform": 4,
    "tensorflow.compat.v1.random_shuffle": 1, "tensorflow.compat.v1.truncated_normal": 4,
}
NUMPY_NOT_DRAWS = {"seed", "default_rng", "Generator", "RandomState", "SeedSequence", "get_state", "set_state",
                   "PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64", "BitGenerator", "bit_generator"}
PY_DRAWS = {"random", "shuffle", "choice", "choices", "sample", "randint", "randrange", "uniform", "gauss",
            "normalvariate", "lognormvariate", "expovariate", "betavariate", "gammavariate", "triangular",
            "vonmisesvariate", "paretovariate", "weibullvariate", "getrandbits", "randbytes", "binomialvariate"}
TORCH_DRAWS = {"randn", "rand", "randint", "randperm", "normal", "bernoulli", "multinomial", "rand_like",
               "randn_like", "randint_like", "poisson"}
TORCH_PARAM_MODULES = {"Linear", "Bilinear", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d",
                       "ConvTranspose3d", "LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell", "Embedding",
                       "MultiheadAttention", "Dropout", "Dropout1d", "Dropout2d", "Dropout3d",
                       "TransformerEncoderLayer", "TransformerDecoderLayer", "Transformer"}
# Model constructors / loaders that build layers (and fix Keras 3's global dtype policy).
MODEL_LOADERS = {"keras.models.load_model", "keras.saving.load_model", "keras.models.model_from_json",
                 "keras.models.model_from_config", "keras.models.clone_model"}
HUB_ROOTS = ("keras_hub.", "keras_nlp.", "keras_cv.")
# Loaders that restore trained weights: nothing random until the model is trained.
RESTORING_LOADERS = {"keras.models.load_model", "keras.saving.load_model"}


# ---------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------


@dataclass
class Build:
    """A Keras object built by a call."""

    name: str  # display name: "Dense", "Sequential", "GlorotUniform", local class name
    draws: Optional[str] = None  # generator its constructor draws from (PY, or TF for Keras 2)
    policy: bool = False  # a layer/model: fixes Keras 3's global dtype policy
    layer: Optional[str] = None  # keras.layers class name when it is a built-in layer
    legacy: bool = False  # Keras 2 (tf_keras): initializers draw from TF's global seed at build time


@dataclass
class Event:
    kind: str  # "seed" | "local-seed" | "opaque-seed" | "build" | "train" | "prepare" | "tape" | "use" | "restore" | "call" | "floatx" | "clear"
    node: Any  # the Call
    chain: tuple  # ((statement, body), ...) innermost first, within the event's scope
    covers: frozenset = frozenset()
    build: Optional[Build] = None
    target: str = ""  # "call": name of the local function / class
    loaded: bool = False  # "train": the trained model's weights were all loaded (not random)
    synthetic: bool = False  # "train": `fit` on targets drawn at random (an API demo: nothing to learn)


@dataclass
class Step:
    """An event at its place in execution order: ``path`` holds the statement chains of
    the call sites that led to it (outermost first), then the event's own chain."""

    event: Event
    path: tuple

    @property
    def kind(self) -> str:
        return self.event.kind

    @property
    def node(self) -> Any:
        return self.event.node


def short(node: Any, limit: int = 48) -> str:
    """Source-like text of a small node, for messages."""
    try:
        text = cst.Module([]).code_for_node(node)
    except Exception:  # noqa: BLE001
        return "expression"
    if isinstance(node, cst.Call) and ("#" in text or "\n" in text or len(text) > limit):
        return short(node.func, limit) + "(...)"
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


FRAMEWORK_ROOTS = ("keras.", "tensorflow.", "numpy.", "torch.", "random.", "jax.", "tf_keras.")


def _seedish(name: str) -> bool:
    return "seed" in name.lower() and name[:1].islower()


def _has_seed_arg(node: cst.Call, pos: Optional[int]) -> bool:
    a = get_arg(node, "seed", pos) if pos is not None else get_arg(node, "seed")
    if a is None:
        return False
    return literal_value(a.value) is not None


class Timeline:
    """Per-file recorder; get it with :func:`timeline`."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.module_imports = dict(ctx.imports)  # module-level imports only (before traversal)
        self.scopes: dict = {}  # id(FunctionInfo) or 0 -> [Event]
        self.uses: dict = {}  # generator -> [(description, node)] anywhere in the file
        self.seed_anywhere = False
        self.determinism = False  # enable_op_determinism() or TF_DETERMINISTIC_OPS seen
        self.backend: Optional[str] = None  # KERAS_BACKEND set in the file
        self.legacy_env = False  # TF_USE_LEGACY_KERAS set in the file
        self.builds_anywhere: list = []  # (Build, node) anywhere in the file
        self.maybe_opaque: list = []
        self.compiled: set = set()  # (scope key, name) of `name.compile(optimizer=/loss=)` calls
        self.loaded: set = set()  # (scope key, name) of `name.load_weights(...)` / `set_weights` calls
        self.scope_draws: dict = {}  # scope key -> generators drawn from directly in that scope
        self.implicit_uses: set = set()  # id(node) of draws made by building / training a model
        self.wrapped = False  # a scikit-learn Keras wrapper was created (it trains when fitted)
        self.restores: list = []  # calls given a checkpoint (`build_transformer_model(cfg, checkpoint_path)`)
        self.cli: Optional[tuple] = None  # (node, what, source): settings from the command line / a config file
        self.intent: Optional[tuple] = None  # (node, what): determinism asked for (op determinism, hash seed)
        self._seq: Optional[list] = None

    # -------------------------------------------------------------- classification
    def classify_build(self, node: cst.Call) -> Optional[Build]:
        ctx = self.ctx
        func = node.func
        if isinstance(func, cst.Name) and func.value in ctx.classes and ctx.resolve(func) is None:
            info = ctx.classes[func.value]
            if ctx.class_kind(info) == "layer":
                return Build(func.value, None, True)
            return None
        raw = ctx.qualname(func)
        if raw is None:
            return None
        q = ctx.resolve(func)
        if any(raw.startswith(h) for h in HUB_ROOTS):
            last = raw.rsplit(".", 1)[-1]
            parts = raw.split(".")
            if last == "from_preset":
                return Build(parts[-2] if len(parts) > 2 else last, None, True)
            if len(parts) >= 3 and parts[1] == "models" and last[:1].isupper():
                return Build(last, PY, True)
            if len(parts) >= 3 and parts[1] == "layers" and last[:1].isupper():
                return Build(last, None, True)  # hub layers: preprocessing ones draw nothing
            return None
        if q is None or not q.startswith("keras."):
            return None
        legacy = raw.startswith(("tf_keras", "tensorflow.python.keras")) or (
            self.legacy_env and raw.startswith(("tensorflow.keras", "tensorflow.compat.v1.keras")))
        # Keras 3 draws seeds in constructors; Keras 2 only when weights are created.
        gen = None if legacy else PY
        parts = q.split(".")
        last = parts[-1]
        if q in ("keras.models.Sequential", "keras.models.Model", "keras.layers.Input"):
            return Build(last, None, True, "Input" if last == "Input" else None, legacy)
        if q in MODEL_LOADERS:
            return Build(last, gen if last == "clone_model" else None, True, None, legacy)
        if len(parts) == 3 and parts[1] == "layers" and last[:1].isupper():
            return Build(last, gen if last in DRAWING_LAYERS else None, True, last, legacy)
        if len(parts) == 3 and parts[1] == "initializers" and last in DRAWING_INITIALIZERS:
            return Build(last, gen, False, None, legacy)
        if len(parts) == 3 and parts[1] == "applications" and last[:1].isupper():
            return Build(last, None, True, None, legacy)
        return None

    def is_model_value(self, expr: Any) -> bool:
        """Is ``expr`` (a fit receiver) known to hold a Keras model?"""
        if isinstance(expr, cst.Name):
            fn = self.ctx.function
            if (id(fn) if fn is not None else 0, expr.value) in self.compiled:
                return True
            expr = self.ctx.assigned_value(expr.value)
        if not isinstance(expr, cst.Call):
            return False
        if self.classify_build(expr) is not None:
            return True
        q = self.ctx.resolve(expr.func)
        if q is not None and q.rsplit(".", 1)[-1] in SKLEARN_WRAPPERS and q.startswith(("keras.", "scikeras.")):
            return True  # KerasClassifier(build_fn=...).fit trains the model the function builds
        if isinstance(expr.func, cst.Name) and self.ctx.resolve(expr.func) is None:
            for r in self.ctx.returns_of(expr.func.value):
                if isinstance(r, cst.Call) and self.classify_build(r) is not None:
                    return True
                if isinstance(r, cst.Name):
                    for fi in self.ctx.functions.get(expr.func.value, ()):
                        v = fi.assigned.get(r.value)
                        if isinstance(v, cst.Call) and self.classify_build(v) is not None:
                            return True
        return False

    def _keras_callbacks(self, node: cst.Call) -> bool:
        """``fit(..., callbacks=[keras.callbacks.EarlyStopping(...)])``: only a Keras model's
        `fit` takes Keras callbacks, so the receiver is one even when an imported factory
        built (and compiled) it."""
        a = get_arg(node, "callbacks")
        if a is None:
            return False
        v = a.value
        if isinstance(v, cst.Name):
            v = self.ctx.assigned_value(v.value)
        if not isinstance(v, (cst.List, cst.Tuple)):
            return False
        for el in v.elements:
            e = el.value
            if isinstance(e, cst.Name):
                e = self.ctx.assigned_value(e.value)
            if isinstance(e, cst.Call):
                q = self.ctx.resolve(e.func)
                if q is not None and q.startswith("keras.callbacks."):
                    return True
        return False

    # -------------------------------------------------------------- recording
    def _chain(self) -> tuple:
        stack = self.ctx.stack
        fn = self.ctx.function
        stop = fn.node if fn is not None else None
        out = []
        for i in range(len(stack) - 1, 0, -1):
            n = stack[i]
            if n is stop:
                break
            p = stack[i - 1]
            if isinstance(n, cst.BaseStatement) and isinstance(p, (cst.Module, cst.IndentedBlock)):
                out.append((n, p))
        return tuple(out)

    def _add(self, kind: str, node: Any, **kw: Any) -> None:
        fn = self.ctx.function
        key = id(fn) if fn is not None else 0
        self.scopes.setdefault(key, []).append(Event(kind, node, self._chain(), **kw))

    def _use(self, gen: str, desc: str, node: Any, implicit: bool = False) -> None:
        """A draw from ``gen``; ``implicit``: made by building or training a model (an
        initializer's seed, `fit`'s shuffling), not by an explicit random call."""
        self.uses.setdefault(gen, []).append((desc, node))
        if implicit:
            self.implicit_uses.add(id(node))
        self._add("use", node, covers=frozenset({gen}), target=desc)
        fn = self.ctx.function
        self.scope_draws.setdefault(id(fn) if fn is not None else 0, set()).add(gen)

    def on_assign(self, node: cst.Assign) -> None:
        for t in node.targets:
            tgt = t.target
            if isinstance(tgt, cst.Subscript) and self.ctx.resolve(tgt.value) == "os.environ" and len(tgt.slice) == 1:
                el = tgt.slice[0].slice
                if isinstance(el, cst.Index):
                    self._env(literal_value(el.value), literal_value(node.value))

    def _env(self, key: Any, value: Any) -> None:
        if key == "KERAS_BACKEND" and isinstance(value, str):
            self.backend = value
        elif key == "TF_USE_LEGACY_KERAS" and str(value).lower() in ("1", "true"):
            self.legacy_env = True
        elif key == "TF_DETERMINISTIC_OPS" and str(value).lower() in ("1", "true"):
            self.determinism = True
            self._intent("`TF_DETERMINISTIC_OPS=1`")
        elif key == "PYTHONHASHSEED" and value is not None:
            self._intent("`PYTHONHASHSEED`")

    def _intent(self, what: str) -> None:
        if self.intent is None:
            stack = self.ctx.stack
            self.intent = (stack[-1] if stack else None, what)

    # the engine's walk calls these (a Context component): the rules only read the order
    def visit_Call(self, node: cst.Call) -> None:  # noqa: N802
        self.on_call(node)

    def visit_Assign(self, node: cst.Assign) -> None:  # noqa: N802
        self.on_assign(node)

    def on_call(self, node: cst.Call) -> None:
        ctx = self.ctx
        func = node.func
        q = ctx.resolve(func)
        # -- seeds
        if q in SEED_APIS:
            arg = node.args[0] if node.args and node.args[0].keyword is None else (
                get_arg(node, "seed") or get_arg(node, "a"))
            if arg is None or literal_value(arg.value) is None:
                return  # random.seed() / np.random.seed(None): reseeds from OS entropy
            covers = SEED_APIS[q]
            if q == SET_RANDOM_SEED and self.backend == "torch":
                covers = covers | {TORCH}
            self._add("seed", node, covers=covers)
            return
        if q in DETERMINISM_CALLS:
            self.determinism = True
            if self.intent is None:
                self.intent = (node, f"`{short(node.func)}()`")
            return
        if q is not None and self.cli is None:
            if q in CLI_CALLS or q.startswith(CLI_PREFIXES):
                self.cli = (node, f"`{short(node.func)}`", "the command line")
            elif q in CONFIG_LOADERS:
                self.cli = (node, f"`{short(node.func)}`", "a config file")
        if q in CLEAR_SESSION:
            self._add("clear", node)
            return
        if q in ("keras.config.set_floatx", "keras.backend.set_floatx"):
            self._add("floatx", node)
            return
        if q in POLICY_SETTERS:
            self._add("policy", node)
            return
        if q in ("os.environ.setdefault", "os.putenv") and len(node.args) >= 2:
            self._env(literal_value(node.args[0].value), literal_value(node.args[1].value))
            return
        if q in RUNNERS:
            for a in node.args:
                if isinstance(a.value, cst.Name) and (a.keyword is None or a.keyword.value == "main"):
                    self._add("call", node, target=a.value.value)
            return
        if q is not None and q.rsplit(".", 1)[-1] in SKLEARN_WRAPPERS and q.startswith(("keras.", "scikeras.")):
            # KerasClassifier(build_fn=make_model): the wrapper builds the model with it
            self.wrapped = True
            self._add("prepare", node)
            a = get_arg(node, "build_fn", 0) or get_arg(node, "model")
            if a is not None and isinstance(a.value, cst.Name):
                self._add("call", node, target=a.value.value)
            return
        # -- builds
        b = self.classify_build(node)
        if b is not None:
            self.builds_anywhere.append((b, node))
            self._add("build", node, build=b)
            if b.draws:
                self._use(b.draws, f"Keras 3 `{b.name}` draws its seed from it when constructed", node, True)
            elif b.legacy and (b.layer in DRAWING_LAYERS or b.name in DRAWING_INITIALIZERS):
                self._use(TF, f"Keras 2 `{b.name}` initializes from it", node, True)
            if isinstance(func, cst.Name) and func.value in ctx.classes:
                self._add("call", node, target=func.value)
            return
        # -- training
        if isinstance(func, cst.Attribute) and func.attr.value == "compile" and isinstance(func.value, cst.Name) \
                and ctx.uses_keras() and (get_arg(node, "optimizer") is not None or get_arg(node, "loss") is not None):
            # `model.compile(optimizer=..., loss=...)`: Keras's signature (torch's
            # `Module.compile` takes neither), so the name holds a Keras model even when an
            # imported factory built it
            fn = ctx.function
            self.compiled.add((id(fn) if fn is not None else 0, func.value.value))
            self._add("prepare", node)
            return
        if isinstance(func, cst.Attribute) and func.attr.value in ("load_weights", "set_weights") \
                and isinstance(func.value, cst.Name) and q is None:
            fn = ctx.function
            self.loaded.add((id(fn) if fn is not None else 0, func.value.value))
            return
        if isinstance(func, cst.Attribute) and func.attr.value in ("fit", "train_on_batch", "fit_generator") \
                and (self.is_model_value(func.value) or self._keras_callbacks(node) or self._keras_fit_kwargs(node)):
            self._add("train", node, loaded=self._loaded_model(func.value), synthetic=self._random_targets(node))
            if func.attr.value == "fit" and node.args and not ctx.is_dataset(node.args[0].value):
                sh = get_arg(node, "shuffle")
                if sh is None or literal_value(sh.value) not in (False,):
                    self._use(TF, "`fit` shuffles arrays with `tf.random.shuffle`", node, True)
            return
        if q == "tensorflow.GradientTape":
            self._add("tape", node)
            return
        if isinstance(func, cst.Attribute) and (q is None or q.startswith("keras.")) and self._applies_gradients(func) \
                and not self._raw_variables(node):
            # optimizer.apply_gradients(...) / .minimize / .apply(grads, vars): weights change
            self._add("train", node)
            return
        if self._given_checkpoint(node) or (isinstance(func, cst.Attribute) and func.attr.value == "from_pretrained"):
            self._add("restore", node)
        # -- local calls (inlined in execution order) and unknown seeding helpers
        owner = self._self_class() if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) \
            and func.value.value == "self" else None
        if owner is not None:
            # self.create_model() inside a method: that method of this file's class runs here
            # (resolved when the order is computed: it may be defined further down)
            self._add("call", node, target=f"self:{owner}.{func.attr.value}")
        elif isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and q is None \
                and self._local_instance(func.value.value) is not None:
            # trainer = Trainer(...); trainer.train(): that method of this file's class runs here
            self._add("call", node, target=f"self:{self._local_instance(func.value.value)}.{func.attr.value}")
        elif isinstance(func, cst.Name) and q is None:
            self._add("call", node, target=func.value)
            if _seedish(func.value):
                self.maybe_opaque.append(node)  # a seed helper, unless defined in this file
        else:
            last = q.rsplit(".", 1)[-1] if q is not None else (
                func.attr.value if isinstance(func, cst.Attribute) else None)
            # A function of another project module: its summary (keraslint/project.py) says
            # whether it really seeds and whether it returns a Keras model it builds.
            proj = getattr(ctx, "project", None)
            summ = proj.function(q) if proj is not None and q is not None else None
            if summ is not None:
                if summ.seeds:
                    self.seed_anywhere = True
                    self._add("opaque-seed", node)
                elif summ.returns == "model":
                    b = Build(f"{last}()", PY, True)
                    self.builds_anywhere.append((b, node))
                    self._add("build", node, build=b)
                    self._use(PY, f"the layers `{last}()` builds draw their seeds from it", node, True)
            elif last is not None and _seedish(last) and not (q is not None and q.startswith(FRAMEWORK_ROOTS)):
                # seed_everything(0), utils.set_seed(0), transformers.set_seed(0): unknown coverage
                self.seed_anywhere = True
                self._add("opaque-seed", node)
        # -- generator uses (KL102)
        self._record_use(node, q)

    def is_random_draw(self, expr: Any) -> bool:
        """``np.random.random((n, 16))``, ``tf.random.normal(...)``, ``keras.random.uniform``
        (through one assignment), with any dtype cast (``.astype``) on top."""
        if isinstance(expr, cst.Name):
            expr = self.ctx.assigned_value(expr.value)
        while isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) and expr.func.attr.value == "astype":
            expr = expr.func.value
        if not isinstance(expr, cst.Call):
            return False
        q = self.ctx.resolve(expr.func)
        return q is not None and q.startswith(("numpy.random.", "tensorflow.random.", "keras.random.")) \
            and q.rsplit(".", 1)[-1] not in NUMPY_NOT_DRAWS

    def _random_targets(self, node: cst.Call) -> bool:
        """`fit` on targets drawn at random, or for a handful of steps (`steps_per_epoch=5`,
        `fit(ds.take(100), epochs=1)`): an API demo with no result to reproduce."""
        y = get_arg(node, "y", 1)
        if y is not None:
            v = y.value
            # a multi-output model: `y=[priority_data, department_data]` / `{"priority": ...}`
            if isinstance(v, (cst.List, cst.Tuple)):
                parts = [e.value for e in v.elements]
            elif isinstance(v, cst.Dict):
                parts = [e.value for e in v.elements if isinstance(e, cst.DictElement)]
            else:
                parts = [v]
            if parts and all(self.is_random_draw(p) for p in parts):
                return True
        spe = get_arg(node, "steps_per_epoch")
        if spe is not None and isinstance(literal_value(spe.value), int) and literal_value(spe.value) <= 10:
            return True
        x = get_arg(node, "x", 0)
        ep = get_arg(node, "epochs")
        if x is not None and isinstance(x.value, cst.Call) and isinstance(x.value.func, cst.Attribute) \
                and x.value.func.attr.value == "take" and x.value.args \
                and isinstance(literal_value(x.value.args[0].value), int) and literal_value(x.value.args[0].value) <= 200 \
                and (ep is None or literal_value(ep.value) in (1, 2)):
            return True
        return False

    def _given_checkpoint(self, node: cst.Call) -> bool:
        """A call handed a checkpoint to restore (`checkpoint_path=...`, a variable named
        like one, a `.ckpt`/`.h5` path): a model factory that loads trained weights."""
        if not node.args:
            return False
        f = node.func
        if type(f) is cst.Attribute and f.attr.value in ("load_weights", "save_weights", "save", "restore"):
            return False
        for a in node.args:
            kw = a.keyword.value if a.keyword is not None else ""
            v = a.value
            tv = type(v)
            name = v.value if tv is cst.Name else v.attr.value if tv is cst.Attribute else ""
            if kw in ("weights", "pretrained") and literal_value(v) in (None, False):
                continue
            if (kw or name) and _CHECKPOINT_WORD.search((kw + " " + name).lower()) is not None:
                return True
            if tv is cst.SimpleString or tv is cst.ConcatenatedString:
                lit = literal_value(v)
                if isinstance(lit, str) and lit.endswith(CHECKPOINT_SUFFIXES):
                    return True
        return False

    def _keras_fit_kwargs(self, node: cst.Call) -> bool:
        return any(a.keyword is not None and a.keyword.value in KERAS_FIT_KWARGS for a in node.args)

    def _applies_gradients(self, func: cst.Attribute) -> bool:
        attr = func.attr.value
        if attr in APPLY_METHODS:
            return not self._tf1_optimizer(func.value)
        if attr != "apply":
            return False
        recv = func.value
        name = recv.attr.value if isinstance(recv, cst.Attribute) else recv.value if isinstance(recv, cst.Name) else ""
        if "optim" in name.lower():
            return True
        if isinstance(recv, cst.Name):
            v = self.ctx.assigned_value(recv.value)
            if isinstance(v, cst.Call):
                q = self.ctx.resolve(v.func)
                return q is not None and q.startswith("keras.optimizers.")
        return False

    def _tf1_optimizer(self, recv: Any) -> bool:
        """``tf.train.AdamOptimizer(...)`` / ``tf.compat.v1.train.*``: a TF1 graph-mode
        optimizer updating TF1 variables (``tf.layers``, ``tf.get_variable``), not Keras
        weights (Keras models are trained by Keras optimizers)."""
        v = recv
        if isinstance(v, cst.Name):
            v = self.ctx.assigned_value(v.value)
        if not isinstance(v, cst.Call):
            return False
        q = self.ctx.resolve(v.func)
        return q is not None and q.startswith(TF1_OPTIMIZER_PREFIXES)

    def _raw_variables(self, node: cst.Call) -> bool:
        """Does this optimizer update train only variables listed by name (``zip(grads,
        [w, b])``, ``[(g, w)]``, ``minimize(loss, [w])``): a hand-made ``tf.Variable``, not
        the randomly initialized weights of a Keras model (``model.trainable_variables``)?"""
        attr = node.func.attr.value if isinstance(node.func, cst.Attribute) else ""
        if attr == "apply_gradients":
            a = get_arg(node, "grads_and_vars", 0)
            if a is None:
                return False
            v = a.value
            if isinstance(v, cst.Call) and isinstance(v.func, cst.Name) and v.func.value == "zip" and len(v.args) >= 2:
                return self._named_list(v.args[1].value)
            if isinstance(v, (cst.List, cst.Tuple)):
                return bool(v.elements) and all(
                    isinstance(e.value, cst.Tuple) and len(e.value.elements) == 2
                    and self._named_list(cst.List([cst.Element(e.value.elements[1].value)]))
                    for e in v.elements)
            return False
        if attr in ("minimize", "apply"):
            a = get_arg(node, "var_list", 1) if attr == "minimize" else get_arg(node, "trainable_variables", 1)
            return a is not None and self._named_list(a.value)
        return False

    def _named_list(self, expr: Any) -> bool:
        """A list/tuple literal of plain names (or a name assigned one)."""
        if isinstance(expr, cst.Name):
            expr = self.ctx.assigned_value(expr.value)
        return isinstance(expr, (cst.List, cst.Tuple)) and bool(expr.elements) \
            and all(isinstance(e.value, cst.Name) for e in expr.elements)

    def _local_instance(self, name: str) -> Optional[str]:
        """The class of this file that ``name`` was assigned an instance of, if any."""
        if name == "self":
            return None
        v = self.ctx.assigned_value(name)
        if isinstance(v, cst.Call) and isinstance(v.func, cst.Name) and v.func.value in self.ctx.classes \
                and self.ctx.resolve(v.func) is None:
            return v.func.value
        return None

    def _loaded_model(self, expr: Any) -> bool:
        """Are the weights of the model ``expr`` (a fit receiver) all loaded: a name given
        `load_weights`/`set_weights`, or assigned `load_model(...)`, a pretrained
        `keras.applications` model, a keras-hub `from_preset` with no new head?"""
        if not isinstance(expr, cst.Name):
            return False
        fn = self.ctx.function
        if (id(fn) if fn is not None else 0, expr.value) in self.loaded:
            return True
        v = self.ctx.assigned_value(expr.value)
        return isinstance(v, cst.Call) and self.restores_weights(v)

    def restores_weights(self, call: cst.Call) -> bool:
        """A construction whose weights all come from a file or a preset."""
        ctx = self.ctx
        q = ctx.resolve(call.func)
        if q is not None and q in RESTORING_LOADERS:
            return True
        if q is not None and q.startswith("keras.applications.") and q.rsplit(".", 1)[-1][:1].isupper():
            w = get_arg(call, "weights")
            return w is None or literal_value(w.value) is not None
        if q is not None and q.rsplit(".", 1)[-1][:1].isupper():
            # a model-zoo constructor given pretrained weights: keras_cv.models.ResNet50V2(
            # weights="imagenet"), tf.keras.applications spelled through an alias
            w = get_arg(call, "weights")
            if w is not None and isinstance(literal_value(w.value), str):
                return True
        raw = ctx.qualname(call.func)
        if raw is not None and raw.startswith(HUB_ROOTS) and raw.endswith(".from_preset"):
            parts = raw.split(".")
            owner = parts[-2] if len(parts) > 2 else ""
            return not (owner.endswith(HEAD_TASK_SUFFIXES) and get_arg(call, "num_classes") is not None)
        return False

    def _record_use(self, node: cst.Call, q: Optional[str]) -> None:
        func = node.func
        if q is not None:
            parts = q.split(".")
            last = parts[-1]
            if q.startswith("keras.random.") and last in KERAS_RANDOM_SEED_POS:
                if not _has_seed_arg(node, KERAS_RANDOM_SEED_POS[last]):
                    self._use(PY, f"`{dotted(func)}` without `seed=` uses Keras's global SeedGenerator", node)
            elif q.startswith("numpy.random.") and len(parts) == 3 and last not in NUMPY_NOT_DRAWS \
                    and last[:1].islower():
                self._use(NP, f"`{dotted(func)}`", node)
            elif q.startswith("random.") and len(parts) == 2 and last in PY_DRAWS:
                self._use(PY, f"`{dotted(func)}`", node)
            elif q in TF_RANDOM_SEED_POS:
                if not _has_seed_arg(node, TF_RANDOM_SEED_POS[q]):
                    self._use(TF, f"`{dotted(func)}` without `seed=`", node)
            elif q.startswith("torch."):
                if len(parts) == 2 and last in TORCH_DRAWS:
                    self._use(TORCH, f"`{dotted(func)}`", node)
                elif len(parts) == 3 and parts[1] == "nn" and last in TORCH_PARAM_MODULES:
                    self._use(TORCH, f"`{dotted(func)}`", node)
                elif q == "torch.utils.data.DataLoader":
                    sh = get_arg(node, "shuffle", 2)
                    if sh is not None and literal_value(sh.value) is True:
                        self._use(TORCH, "`DataLoader(shuffle=True)`", node)
            return
        if isinstance(func, cst.Attribute) and func.attr.value == "shuffle" and self.ctx.is_dataset(func.value):
            if not _has_seed_arg(node, 1):
                self._use(TF, "`Dataset.shuffle` without `seed=`", node)

    def _self_class(self) -> Optional[str]:
        """Name of the class whose method is being visited, if any."""
        fn = self.ctx.function
        while fn is not None and fn.cls is None:
            fn = fn.parent
        return fn.cls.name if fn is not None else None

    def _method_key(self, cls_name: str, attr: str) -> list:
        """id(FunctionInfo) of method ``attr`` of class ``cls_name``, looked up in the class,
        then in its base classes of this file."""
        ctx = self.ctx
        cls = ctx.classes.get(cls_name)
        seen: set = set()
        while cls is not None and cls.name not in seen:
            seen.add(cls.name)
            for fi in ctx.all_functions:
                if fi.cls is cls and fi.name == attr:
                    return [id(fi)]
            nxt = None
            for b in cls.bases:
                if b.startswith("local:") and b[6:] in ctx.classes:
                    nxt = ctx.classes[b[6:]]
                    break
            cls = nxt
        return []

    # -------------------------------------------------------------- ordering
    def _callee_keys(self, name: str) -> list:
        ctx = self.ctx
        if name.startswith("self:"):
            cls_name, _, attr = name[5:].partition(".")
            return self._method_key(cls_name, attr)
        info = ctx.classes.get(name)
        if info is not None:
            for fi in ctx.all_functions:
                if fi.cls is info and fi.name == "__init__":
                    return [id(fi)]
            return []
        fis = ctx.functions.get(name)
        if fis:
            return [id(fis[-1])]
        return []

    def sequence(self, start: int = 0) -> list:
        """Events in execution order, starting from the module (``start=0``) or from the
        body of a function (``id(FunctionInfo)``)."""
        if start == 0 and self._seq is not None:
            return self._seq
        self.finalize_opaque()
        out: list = []
        opaque = {id(n) for n in self.maybe_opaque}

        def run(key: int, path: tuple, active: frozenset) -> None:
            for ev in self.scopes.get(key, ()):
                p = path + (ev.chain,)
                if ev.kind == "call":
                    keys = self._callee_keys(ev.target)
                    if keys:
                        for k in keys:
                            if k not in active and len(active) < 12:
                                run(k, p, active | {k})
                    elif id(ev.node) in opaque:
                        self.seed_anywhere = True
                        out.append(Step(Event("opaque-seed", ev.node, ev.chain), p))
                    continue
                if ev.kind == "seed" and self.local_seed(key, ev):
                    ev = Event("local-seed", ev.node, ev.chain, covers=ev.covers)
                out.append(Step(ev, p))

        run(start, (), frozenset({start}))
        if start == 0:
            self._seq = out
        return out

    def finalize_opaque(self) -> None:
        """Unknown seeding helpers (``seed_everything(0)`` imported or undefined) count as
        seeds anywhere in the file; so does every seed call that is not local to a helper
        (see :meth:`local_seed`)."""
        for n in self.maybe_opaque:
            if isinstance(n.func, cst.Name) and not self._callee_keys(n.func.value):
                self.seed_anywhere = True
        for key, evs in self.scopes.items():
            for ev in evs:
                if ev.kind == "seed" and not self.local_seed(key, ev):
                    self.seed_anywhere = True

    def local_seed(self, key: int, ev: Event) -> bool:
        """A seed that belongs to one helper's own draws, not to the script: a function
        (not a seeding helper: it draws itself from the generator it seeds) that builds and
        trains nothing, e.g. a teaching helper ``def apply_noise(x, seed): np.random.seed(seed);
        return x * np.random.normal(...)``. The script's seeding is at module level, in the
        main function, or in a helper that only seeds."""
        if key == 0 or ev.kind != "seed":
            return False
        if any(e.kind in ("build", "train", "tape") for e in self.scopes.get(key, ())):
            return False
        return bool(self.scope_draws.get(key, set()) & ev.covers)

    def prepares_training(self) -> bool:
        """Training in execution order, or a model compiled for it (`compile(optimizer=,
        loss=)`) or wrapped for scikit-learn: `fit` may then run through a name the
        recorder does not follow (a loop over a list of estimators)."""
        return any(s.kind == "train" for s in self.sequence()) or bool(self.compiled) or self.wrapped

    def trains(self) -> list:
        """Training events anywhere in the file (every scope, in file order): `fit` /
        `train_on_batch` on a Keras model, optimizer updates (`apply_gradients`, `minimize`)."""
        out = []
        for evs in self.scopes.values():
            out.extend(e for e in evs if e.kind == "train")
        return out

    def is_script(self) -> bool:
        return any(s.kind in ("build", "train", "tape") for s in self.sequence())

    def function_keys(self) -> Iterator[int]:
        for fi in self.ctx.all_functions:
            if id(fi) in self.scopes:
                yield id(fi)

    # -------------------------------------------------------------- spelling
    def spell(self, *qualnames: str) -> Optional[str]:
        """How module-level imports spell the first of ``qualnames`` they can reach."""
        for qn in qualnames:
            best = spell_with(self.module_imports, qn)
            if best is not None:
                return best
        return None

    def set_random_seed_spelling(self) -> tuple:
        """(spelling of keras.utils.set_random_seed, AddImport args or None)."""
        s = self.spell("keras.utils.set_random_seed", "tensorflow.keras.utils.set_random_seed",
                       "keras.utils", "tensorflow.keras.utils")
        if s is not None:
            if not s.endswith("set_random_seed"):
                s += ".set_random_seed"
            return s, None
        if "keras" in self.module_imports:
            return None, None  # `keras` names something else: no fix
        return "keras.utils.set_random_seed", ("keras",)


def timeline(ctx: Any) -> Timeline:
    """The file's execution-order recorder: a Context component (``ctx.component``), asked
    for by the rules that read it in their constructors and driven by the engine's walk."""
    return ctx.component("timeline", Timeline)


# ---------------------------------------------------------------------------
# Moving a statement up (KL103, KL202)
# ---------------------------------------------------------------------------


def _bound_names(stmt: Any) -> set:
    """Names a statement binds (assignments, for targets, imports, defs), shallowly
    including nested blocks."""
    out: set = set()

    class V(cst.CSTVisitor):
        def visit_Name(self, n: cst.Name) -> None:
            pass

        def visit_AssignTarget(self, n: cst.AssignTarget) -> None:
            out.update(_names_in(n.target))

        def visit_AnnAssign(self, n: cst.AnnAssign) -> None:
            out.update(_names_in(n.target))

        def visit_AugAssign(self, n: cst.AugAssign) -> None:
            out.update(_names_in(n.target))

        def visit_For(self, n: cst.For) -> None:
            out.update(_names_in(n.target))

        def visit_FunctionDef(self, n: cst.FunctionDef) -> bool:
            out.add(n.name.value)
            return False

        def visit_ClassDef(self, n: cst.ClassDef) -> bool:
            out.add(n.name.value)
            return False

        def visit_ImportAlias(self, n: cst.ImportAlias) -> None:
            if n.asname is not None and isinstance(n.asname.name, cst.Name):
                out.add(n.asname.name.value)
            else:
                d = dotted(n.name)
                if d:
                    out.add(d.split(".")[0])

        def visit_AsName(self, n: cst.AsName) -> None:
            out.update(_names_in(n.name))

    stmt.visit(V())
    return out


def _names_in(expr: Any) -> set:
    out: set = set()

    class V(cst.CSTVisitor):
        def visit_Name(self, n: cst.Name) -> None:
            out.add(n.value)

    expr.visit(V())
    return out


def move_before(mover: Step, anchor: Step) -> Optional[tuple]:
    """The statement to move and the statement to put it before, for moving the
    statement of ``mover`` above the one that (transitively) runs ``anchor``; None when
    they share no body, or when moving would read a name bound in between."""
    m_stmt, m_body = mover.path[-1][0] if mover.path[-1] else (None, None)
    if m_stmt is None or not isinstance(m_stmt, cst.SimpleStatementLine) or len(m_stmt.body) != 1 \
            or not isinstance(m_stmt.body[0], cst.Expr) or m_stmt.body[0].value is not mover.node:
        # only a statement that is exactly the call
        return _move_call_site(mover, anchor)
    return _anchor_in(m_stmt, m_body, anchor) or _move_call_site(mover, anchor)


def _move_call_site(mover: Step, anchor: Step) -> Optional[tuple]:
    # The mover is inside a helper (set_seeds()) whose call site is a plain statement.
    for chain in reversed(mover.path[:-1]):
        if not chain:
            return None
        stmt, body = chain[0]
        if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Expr) \
                and isinstance(stmt.body[0].value, cst.Call):
            return _anchor_in(stmt, body, anchor)
        return None
    return None


def _anchor_in(m_stmt: Any, m_body: Any, anchor: Step) -> Optional[tuple]:
    for chain in anchor.path:
        for stmt, body in chain:
            if body is m_body:
                stmts = list(body.body)
                try:
                    i, j = stmts.index(stmt), stmts.index(m_stmt)
                except ValueError:
                    return None
                if i >= j:
                    return None
                used = _names_in(m_stmt)
                for s in stmts[i:j]:
                    if _bound_names(s) & used:
                        return None
                return m_stmt, stmt
    return None


class TimelineRule(Rule):
    """Base of the rules that read the execution order (the file's shared recorder)."""

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self.tl = timeline(ctx)

    def seed_value(self) -> int:
        cfg = self.ctx.config
        return cfg.seed if cfg is not None else 42
