"""Capture (child process only): run the user's program with ``Model.fit`` and
``Model.train_on_batch`` intercepted.

The first call hands over the compiled model, its data (a bounded number of batches, in
order: ``fit``'s shuffling is made explicit by never shuffling), its compile arguments and the
backend, then the program is stopped. The program runs as ``__main__`` in a module whose
namespace is kept, so custom layers and losses stay usable and can be patched (the KL301
experiment swaps the module's NumPy for one that dispatches to ``keras.ops``).
"""

from __future__ import annotations

import builtins
import inspect
import os
import sys
import traceback
import types
from typing import Any, Optional

import numpy as np


class CaptureError(Exception):
    """The program could not be captured; the message is the one-line reason."""


class _Handover(BaseException):  # BaseException: user code's `except Exception` cannot swallow it
    def __init__(self, model, kind: str, arguments: dict):
        super().__init__(kind)
        self.model, self.kind, self.arguments = model, kind, arguments


class Capture:
    def __init__(self):
        self.model = None
        self.kind = ""                # "fit" | "train_on_batch" | "entry"
        self.batches: list = []       # [(x, y, sample_weight)] as NumPy structures, in order
        self.dataset = None           # the raw tf.data.Dataset passed to fit, if any
        self.fit_kwargs: dict = {}
        self.compile_kwargs: dict = {}
        self.optimizer_spec: Any = None   # what compile() got as optimizer (str or class name)
        self.floatx_requests: list = []
        self.namespace: dict = {}
        self.backend = ""
        self.path = ""
        self.notes: list = []
        self.compiled: list = []      # [(model, compile arguments)] in the order compile was called
        self.fits: list = []          # [(model, fit arguments)] with continue_after_fit
        self.constructed: list = []   # Keras objects built by the program (Operation.__new__), in order
        self.error_after_fit: str = ""


class _History:
    """What an intercepted ``fit`` returns when the program is allowed to go on."""

    def __init__(self, model=None):
        self.history = {"loss": [0.0]}
        self.epoch = [0]
        self.model = model
        self.params = {}


def _user_line(exc: BaseException, path: str) -> str:
    line = None
    for fs in traceback.extract_tb(exc.__traceback__):
        if os.path.abspath(fs.filename) == path:
            line = fs.lineno
    return f" at line {line}" if line else ""


def _bind(fn, self_obj, args, kwargs) -> dict:
    try:
        b = inspect.signature(fn).bind(self_obj, *args, **kwargs)
    except TypeError:
        return dict(kwargs)
    out = dict(b.arguments)
    out.pop("self", None)
    extra = out.pop("kwargs", None)
    if isinstance(extra, dict):
        out.update(extra)
    return out


def run_target(target: str, steps: int, *, pre_seed: Optional[int] = None,
               force_floatx: Optional[str] = None, preset_floatx: Optional[str] = None,
               op_determinism: bool = False, continue_after_fit: bool = False, no_tf1: bool = False,
               require_fit: bool = True) -> Capture:
    """Run TARGET (``script.py`` or ``file.py::func``) until it trains; return the capture.

    ``continue_after_fit``: every ``fit``/``train_on_batch`` is recorded and skipped, and the
    program runs to its end (several models, a PyTorch port built after training).
    ``no_tf1``: ``tf.compat.v1.disable_eager_execution`` becomes a no-op (KL205's fixed arm)."""
    import keras

    path, _, entry = target.partition("::")
    path = os.path.abspath(path)
    cap = Capture()
    cap.path = path
    cap.backend = keras.backend.backend()
    if preset_floatx:
        keras.config.set_floatx(preset_floatx)  # keraslint: ignore[KL201] (the experiment sets it on purpose)
    if pre_seed is not None:
        keras.utils.set_random_seed(pre_seed)
    if op_determinism:
        _enable_determinism(cap)
    undo = []
    if no_tf1:
        undo += _disable_tf1_switches()
    from keras.src.ops.operation import Operation

    orig_new = Operation.__dict__["__new__"]

    def new_hook(cls, *args, **kwargs):
        inst = orig_new(cls, *args, **kwargs)
        try:
            vars(inst)["_keraslint_init"] = (args, kwargs)
            cap.constructed.append(inst)
        except Exception:  # noqa: BLE001
            pass
        return inst

    Operation.__new__ = new_hook
    undo.append(lambda: setattr(Operation, "__new__", orig_new))
    try:
        from keras.src.optimizers.base_optimizer import BaseOptimizer
    except ImportError:  # pragma: no cover
        BaseOptimizer = None
    if BaseOptimizer is not None and ("__new__" not in BaseOptimizer.__dict__ or getattr(
            BaseOptimizer.__dict__["__new__"], "_keraslint", False)):
        def opt_new_hook(cls, *args, **kwargs):
            inst = object.__new__(cls)
            caller = sys._getframe(1).f_code.co_filename
            if os.path.abspath(caller) == path:
                inst.__dict__["_keraslint_explicit"] = set(kwargs) | (
                    {"learning_rate"} if args else set())
            return inst

        def opt_new_plain(cls, *args, **kwargs):
            return object.__new__(cls)
        opt_new_plain._keraslint = True

        BaseOptimizer.__new__ = opt_new_hook
        undo.append(lambda: setattr(BaseOptimizer, "__new__", opt_new_plain))
    orig_model_new = keras.Model.__dict__.get("__new__")
    if orig_model_new is not None:
        def model_new_hook(cls, *args, **kwargs):
            inst = orig_model_new(cls, *args, **kwargs)
            try:
                vars(inst)["_keraslint_init"] = (args, kwargs)
            except Exception:  # noqa: BLE001
                pass
            return inst

        keras.Model.__new__ = model_new_hook
        undo.append(lambda: setattr(keras.Model, "__new__", orig_model_new))

    Model = keras.Model
    orig = {"fit": Model.fit, "train_on_batch": Model.train_on_batch, "compile": Model.compile}
    orig_floatx = keras.config.set_floatx
    floatx_homes = [m for m in (keras.config, keras.backend, sys.modules.get("keras.src.backend.config"))
                    if m is not None and getattr(m, "set_floatx", None) is orig_floatx]

    def compile_hook(self, *args, **kwargs):
        self._keraslint_compile = _bind(orig["compile"], self, args, kwargs)
        cap.compiled.append((self, self._keraslint_compile))
        return orig["compile"](self, *args, **kwargs)

    def fit_hook(self, *args, **kwargs):
        bound = _bind(orig["fit"], self, args, kwargs)
        if continue_after_fit:
            cap.fits.append((self, "fit", bound))
            return _History(self)
        raise _Handover(self, "fit", bound)

    def tob_hook(self, *args, **kwargs):
        bound = _bind(orig["train_on_batch"], self, args, kwargs)
        if continue_after_fit:
            cap.fits.append((self, "train_on_batch", bound))
            return 0.0
        raise _Handover(self, "train_on_batch", bound)

    def set_floatx_hook(value):
        cap.floatx_requests.append(str(value))
        if force_floatx is None:
            return orig_floatx(value)
        return None

    Model.compile, Model.fit, Model.train_on_batch = compile_hook, fit_hook, tob_hook
    for m in floatx_homes:
        m.set_floatx = set_floatx_hook

    modname = "__keraslint_entry__" if entry else "__main__"
    mod = types.ModuleType(modname)
    mod.__file__ = path
    mod.__builtins__ = builtins
    saved_main = sys.modules.get(modname)
    sys.modules[modname] = mod
    sys.argv = [path]
    sys.path.insert(0, os.path.dirname(path))
    handover = None
    entry_result = None
    try:
        with open(path, "rb") as f:
            source = f.read()
        code = compile(source, path, "exec")
        try:
            exec(code, mod.__dict__)
            if entry:
                fn = mod.__dict__.get(entry)
                if not callable(fn):
                    raise CaptureError(f"{os.path.basename(path)} defines no function {entry!r}")
                entry_result = fn()
        except _Handover as h:
            handover = h
        except CaptureError:
            raise
        except SystemExit as e:
            if not (continue_after_fit and cap.fits):
                raise CaptureError(f"the program called sys.exit({e.code!r}) before Model.fit") from None
        except KeyboardInterrupt:
            raise CaptureError("the program was interrupted before Model.fit") from None
        except BaseException as e:  # noqa: BLE001
            from keraslint.verify.util import plain

            msg = plain(e) if str(e).strip() else ""
            if continue_after_fit and (cap.fits or not require_fit):
                cap.error_after_fit = f"{type(e).__name__}{_user_line(e, path)}" + (f": {msg}" if msg else "")
            else:
                raise CaptureError(f"the program raised {type(e).__name__}{_user_line(e, path)} before Model.fit"
                                   + (f": {msg}" if msg else "")) from None
    finally:
        for u in reversed(undo):
            u()
        Model.compile, Model.fit, Model.train_on_batch = orig["compile"], orig["fit"], orig["train_on_batch"]
        for m in floatx_homes:
            m.set_floatx = orig_floatx
        if saved_main is not None and modname != "__main__":
            sys.modules[modname] = saved_main
    cap.namespace = mod.__dict__

    if handover is None and cap.fits:
        model, kind, arguments = cap.fits[0]
        handover = _Handover(model, kind, arguments)
    if handover is not None:
        cap.model, cap.kind = handover.model, handover.kind
        _take_data(cap, handover.arguments, steps)
    elif not require_fit:
        return cap
    elif entry:
        _from_entry(cap, entry_result, entry, steps)
    else:
        raise CaptureError("the program finished without calling Model.fit or Model.train_on_batch")
    _ensure_compiled(cap)
    _ensure_built(cap)
    return cap


def run_model(target: str, steps: int) -> Capture:
    """``run_target``, or, for a program that never trains (a port script that only builds and
    compares), the last Keras model it built, compiled if needed, on synthetic inputs with the
    model's own outputs plus noise as targets."""
    try:
        return run_target(target, steps)
    except CaptureError as e:
        if "finished without calling Model.fit" not in str(e):
            raise
    import keras

    cap = run_target(target, steps, continue_after_fit=True, require_fit=False)
    models = [v for v in cap.namespace.values() if isinstance(v, keras.Model)]
    if not models:
        made = [o for o in cap.constructed if isinstance(o, keras.Model)]
        inner = {id(getattr(m, "_functional", None)) for m in made}
        inner |= {id(ly) for m in made for ly in m._flatten_layers(include_self=False)}
        models = [m for m in made if id(m) not in inner]
    if not models:
        raise CaptureError("the program neither trains nor builds a Keras model")
    cap.model, cap.kind = models[-1], "built"
    x = _synthetic_inputs(cap.model)
    y = keras.tree.map_structure(
        lambda t: (np.asarray(t) + 0.1 * np.random.default_rng(1).standard_normal(np.shape(t))).astype("float32"),
        keras.tree.map_structure(np.asarray, cap.model(x, training=False)))
    cap.notes.append("the program does not train: synthetic inputs, targets = the model's outputs + noise")
    _take_data(cap, {"x": x, "y": y, "batch_size": 8}, steps)
    _ensure_compiled(cap)
    _ensure_built(cap)
    return cap


def _enable_determinism(cap: Capture) -> None:
    backend = cap.backend
    try:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    except Exception:  # noqa: BLE001
        pass
    if backend == "torch":
        import torch

        torch.use_deterministic_algorithms(True, warn_only=True)


def _disable_tf1_switches() -> list:
    try:
        import tensorflow as tf
    except ImportError:
        return []
    undo = []
    v1 = tf.compat.v1
    for name in ("disable_eager_execution", "disable_v2_behavior"):
        orig = getattr(v1, name, None)
        if orig is not None:
            setattr(v1, name, lambda *a, **k: None)
            undo.append(lambda n=name, o=orig: setattr(v1, n, o))
    return undo


def _from_entry(cap: Capture, result, entry: str, steps: int) -> None:
    import keras

    x = y = None
    if isinstance(result, (tuple, list)) and result and isinstance(result[0], keras.Model):
        model = result[0]
        x = result[1] if len(result) > 1 else None
        y = result[2] if len(result) > 2 else None
    elif isinstance(result, keras.Model):
        model = result
    else:
        raise CaptureError(f"{entry}() returned {type(result).__name__}, not a keras.Model or (model, x, y)")
    cap.model, cap.kind = model, "entry"
    if x is None:
        x = _synthetic_inputs(model)
        cap.notes.append("synthetic standard-normal inputs (the entry point returned no data)")
    if y is None:
        y = np.asarray(model(x))
        cap.notes.append("targets = the model's own initial outputs")
    _take_data(cap, {"x": x, "y": y, "batch_size": 32}, steps)


def _synthetic_inputs(model):
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise CaptureError("the entry point returned an unbuilt model and no data")
    rng = np.random.default_rng(0)
    arrays = []
    for t in inputs:
        shape = [8 if d is None else d for d in t.shape]
        if "int" in str(t.dtype):
            arrays.append(rng.integers(0, 2, size=shape).astype(str(t.dtype)))
        else:
            arrays.append(rng.standard_normal(shape).astype("float32"))
    return arrays[0] if len(arrays) == 1 else arrays


def _to_numpy(struct):
    import keras

    return keras.tree.map_structure(lambda t: None if t is None else np.asarray(t), struct)


def _split_element(el):
    if isinstance(el, (tuple, list)):
        el = tuple(el)
        if len(el) == 1:
            return el[0], None, None
        if len(el) == 2:
            return el[0], el[1], None
        return el[0], el[1], el[2]
    return el, None, None


def _take_data(cap: Capture, a: dict, steps: int) -> None:
    import keras

    cap.fit_kwargs = a
    x, y, sw = a.get("x"), a.get("y"), a.get("sample_weight")
    n_batches = max(1, steps)
    try:
        import tensorflow as tf

        is_ds = isinstance(x, tf.data.Dataset)
    except ImportError:  # pragma: no cover - non-TF backends
        is_ds = False
    if cap.kind == "train_on_batch":
        cap.batches = [(_to_numpy(x), _to_numpy(y), _to_numpy(sw))]
        return
    if is_ds:
        cap.dataset = x
        for el in x.take(n_batches):
            cap.batches.append(tuple(_to_numpy(v) for v in _split_element(el)))
        return
    if x is not None and (inspect.isgenerator(x) or isinstance(x, keras.utils.PyDataset)):
        it = iter(x) if inspect.isgenerator(x) else (x[i] for i in range(len(x)))
        for _, el in zip(range(n_batches), it):
            cap.batches.append(tuple(_to_numpy(v) for v in _split_element(el)))
        return
    if x is None:
        raise CaptureError("Model.fit was called without data")
    flat = keras.tree.flatten(x)
    n = int(np.shape(flat[0])[0])
    bs = int(a.get("batch_size") or 32)
    for i in range(n_batches):
        lo = i * bs
        if lo >= n:
            break
        sl = slice(lo, min(n, lo + bs))
        cut = lambda s: keras.tree.map_structure(lambda t: None if t is None else np.asarray(t)[sl], s)  # noqa: E731
        cap.batches.append((cut(x), cut(y) if y is not None else None, cut(sw) if sw is not None else None))


def _ensure_compiled(cap: Capture) -> None:
    import keras

    model = cap.model
    ck = getattr(model, "_keraslint_compile", None)
    if ck is None and not getattr(model, "compiled", False):
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
        ck = {"optimizer": "SGD(learning_rate=0.01)", "loss": "mse"}
        cap.notes.append("the model was not compiled: the verifier compiled it with SGD(0.01) and MSE")
    cap.compile_kwargs = dict(ck or {})
    opt = cap.compile_kwargs.get("optimizer", "rmsprop")
    cap.optimizer_spec = opt if isinstance(opt, str) else type(opt).__name__


def _ensure_built(cap: Capture) -> None:
    if not cap.batches:
        raise CaptureError("no batches could be taken from the data given to Model.fit")
    if not cap.model.built or not cap.model.weights:
        try:
            cap.model(cap.batches[0][0])
        except Exception as e:  # noqa: BLE001
            from keraslint.verify.util import plain

            raise CaptureError(f"could not build the model on its first batch: {type(e).__name__}: {plain(e, 200)}") from None


# ---------------------------------------------------------------------------
# Helpers used by the experiments
# ---------------------------------------------------------------------------


def snapshot(model) -> list:
    return [np.array(v.numpy() if hasattr(v, "numpy") else v) for v in model.variables]


def restore(model, values: list) -> None:
    for v, val in zip(model.variables, values):
        v.assign(np.asarray(val).astype(v.dtype) if hasattr(v, "dtype") else val)


def fresh_optimizer(cap: Capture):
    import keras

    opt = cap.compile_kwargs.get("optimizer", "rmsprop")
    if isinstance(opt, str):
        return keras.optimizers.get(opt)
    if isinstance(opt, keras.optimizers.Optimizer):
        new = type(opt).from_config(opt.get_config())
        if "_keraslint_explicit" in opt.__dict__:
            new.__dict__["_keraslint_explicit"] = opt.__dict__["_keraslint_explicit"]
        return new
    return keras.optimizers.get(opt)


def recompile(cap: Capture, **override) -> None:
    kw = {k: v for k, v in cap.compile_kwargs.items()
          if k in ("optimizer", "loss", "loss_weights", "metrics", "weighted_metrics", "run_eagerly",
                   "steps_per_execution", "jit_compile", "auto_scale_loss")}
    kw["optimizer"] = fresh_optimizer(cap)
    kw.pop("metrics", None)
    kw.pop("weighted_metrics", None)
    kw.update(override)
    cap.model.compile(**kw)


def train(cap: Capture, steps: int, seed: int = 1234) -> list:
    """``steps`` train_on_batch calls over the captured batches, in order; the losses."""
    import keras

    keras.utils.set_random_seed(seed)
    losses = []
    for i in range(steps):
        x, y, sw = cap.batches[i % len(cap.batches)]
        logs = train_batch(cap.model, x, y, sw)
        losses.append(float(np.asarray(logs["loss"])))
    return losses


def custom_train_step(model) -> bool:
    import keras

    return type(model).train_step is not keras.Model.train_step and any(
        "train_step" in c.__dict__ for c in type(model).__mro__ if not c.__module__.startswith("keras"))


def train_batch(model, x, y, sw=None) -> dict:
    """One training step on one batch. A model with its own ``train_step`` gets the batch as
    ``fit`` gives it (``(x, y)`` without a sample weight); others use ``train_on_batch``."""
    if custom_train_step(model):
        n = int(np.shape(__import__("keras").tree.flatten(x)[0])[0])
        h = model.fit(x, y, sample_weight=sw, batch_size=n, epochs=1, verbose=0, shuffle=False)
        return {k: v[-1] for k, v in h.history.items()}
    return model.train_on_batch(x, y, sample_weight=sw, return_dict=True)


def weights_of(model) -> list:
    return [np.array(w.numpy()) for w in model.weights]


def max_abs_diff(a, b) -> float:
    a = [np.asarray(t, dtype="float64") for t in a]
    b = [np.asarray(t, dtype="float64") for t in b]
    if len(a) != len(b) or any(p.shape != q.shape for p, q in zip(a, b)):
        return float("inf")
    if not a:
        return 0.0
    return float(max((np.max(np.abs(p - q)) if p.size else 0.0) for p, q in zip(a, b)))
