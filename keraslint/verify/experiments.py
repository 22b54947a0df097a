"""The experiments (child process only). ``run(spec)`` dispatches on ``spec["mode"]``.

Single-process experiments capture the program once and run both arms (as written / hazard
removed) from the same initial variables and the same batches, so TensorFlow starts once per
experiment. Each returns ``{"metric", "value", "value_fixed", "tolerance", "verdict",
"detail", "series"}``; ``capture-run`` is the building block of the multi-process experiments
(KL1xx, KL201/202), whose verdict the parent computes.
"""

from __future__ import annotations

import math
import os
import pickle
import time
from typing import Optional

import numpy as np

from keraslint.verify.capture import (CaptureError, max_abs_diff, recompile, restore, run_target, snapshot,
                                      train, train_batch, weights_of)
from keraslint.verify.util import fmt_num

CONFIRMED, NOT_CONFIRMED, INCONCLUSIVE = "confirmed", "not-confirmed", "inconclusive"


def run(spec: dict) -> dict:
    mode = spec["mode"]
    fn = {
        "eager-vs-compiled": eager_vs_compiled,
        "repeated-calls": repeated_calls,
        "logits-consistency": logits_consistency,
        "batched-vs-unbatched": batched_vs_unbatched,
        "capture-run": capture_run,
        "torch-reference": torch_reference,
        "torch-native": lambda s: _lazy("torchref", "torch_native")(s),
        "torch-forward": lambda s: _lazy("torchref", "torch_forward")(s),
        "trace-count": lambda s: _lazy("more", "trace_count")(s),
        "float16-vs-float32": lambda s: _lazy("more", "float16_output")(s),
        "save-load-round-trip": lambda s: _lazy("more", "save_load")(s),
        "shared-optimizer": lambda s: _lazy("more", "shared_optimizer")(s),
        "split-distribution": lambda s: _lazy("more", "split_distribution")(s),
        "steps-per-epoch": lambda s: _lazy("more", "steps_per_epoch")(s),
        "sample-order": lambda s: _lazy("more", "sample_order")(s),
        "port-diff": lambda s: _lazy("port", "port_diff")(s),
        "port-rule": lambda s: _lazy("port", "port_rule")(s),
        "batch": batch,
    }.get(mode)
    if fn is None:
        return {"error": f"unknown experiment {mode!r}"}
    try:
        return fn(spec)
    except CaptureError as e:
        return {"error": f"could not capture the model: {e}"}
    except Exception as e:  # noqa: BLE001 - one plain line, never a dump
        return {"error": f"the experiment failed: {_first_line(e)}"}


_UNDO: list = []  # patches an experiment leaves behind (undone between the items of a batch)


def _reset_state() -> None:
    import keras

    for u in reversed(_UNDO):
        try:
            u()
        except Exception:  # noqa: BLE001
            pass
    _UNDO.clear()
    try:
        keras.config.set_dtype_policy("float32")
        keras.config.set_floatx("float32")  # keraslint: ignore[KL201]
        keras.backend.clear_session()
    except Exception:  # noqa: BLE001
        pass


def batch(spec: dict) -> dict:
    """Several single-process experiments in this one process, each on a fresh run of its program."""
    out = []
    for item in spec["items"]:
        t0 = time.monotonic()
        try:
            r = run(item)
        except BaseException as e:  # noqa: BLE001
            r = {"error": f"the experiment failed: {_first_line(e)}"}
        finally:
            _reset_state()
        r["seconds"] = time.monotonic() - t0
        out.append(r)
    return {"results": out}


def _lazy(module: str, name: str):
    import importlib

    return getattr(importlib.import_module(f"keraslint.verify.{module}"), name)


def _capture(spec: dict, **kw):
    return run_target(spec["target"], int(spec["steps"]), **kw)


def _result(metric, value, value_fixed, tolerance, verdict, detail, series=None) -> dict:
    return {"metric": metric, "value": value, "value_fixed": value_fixed, "tolerance": tolerance,
            "verdict": verdict, "detail": detail, "series": series or {}}


def _np(t):
    import keras

    try:
        return np.asarray(keras.ops.convert_to_numpy(t))
    except Exception:  # noqa: BLE001
        return np.asarray(t)


def _first_line(e: BaseException) -> str:
    from keraslint.verify.util import plain

    s = plain(e, 160) if str(e).strip() else ""
    return f"{type(e).__name__}: {s}" if s and s != "no reason given" else type(e).__name__


def _scale(*arrays) -> float:
    m = 1.0
    for a in arrays:
        if a is not None:
            for t in (a if isinstance(a, list) else [a]):
                t = np.asarray(t, dtype="float64")
                if t.size and np.all(np.isfinite(t)):
                    m = max(m, float(np.max(np.abs(t))))
    return m


# ---------------------------------------------------------------------------
# KL3xx: eager vs compiled, gradient connectivity
# ---------------------------------------------------------------------------


def _outputs(model, x, compiled: bool):
    if compiled:
        model.predict_function = None
        out = model.predict_on_batch(x)
    else:
        out = model(x, training=False)
    import keras

    return [_np(t) for t in keras.tree.flatten(out)]


def _graph_arm(cap, w0, x, y, sw, all_eager: bool = False) -> dict:
    """Eager vs compiled on one batch: predictions and one training step; gradient connectivity.
    ``all_eager``: the compiled side runs with run_eagerly=True too (the KL302 removal)."""
    import keras

    model = cap.model
    r: dict = {"errors": {}}
    for side, compiled in (("eager", False), ("compiled", True)):
        restore(model, w0)
        recompile(cap, run_eagerly=(not compiled) or all_eager, jit_compile=False)
        try:
            r[f"pred_{side}"] = _outputs(model, x, compiled)
        except Exception as e:  # noqa: BLE001
            r["errors"][f"predict ({side})"] = _first_line(e)
        restore(model, w0)
        recompile(cap, run_eagerly=(not compiled) or all_eager, jit_compile=False)
        try:
            keras.utils.set_random_seed(1234)
            logs = train_batch(model, x, y, sw)
            r[f"loss_{side}"] = float(_np(logs["loss"]))
            r[f"w_{side}"] = weights_of(model)
        except Exception as e:  # noqa: BLE001
            r["errors"][f"train step ({side})"] = _first_line(e)
    # gradient connectivity (eager GradientTape; TensorFlow backend)
    r["no_grad"] = []
    r["n_trainable"] = len(model.trainable_variables)
    if cap.backend == "tensorflow":
        import tensorflow as tf

        restore(model, w0)
        recompile(cap, jit_compile=False)
        try:
            with tf.GradientTape() as tape:
                y_pred = model(x, training=True)
                loss = model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sw)
            grads = tape.gradient(loss, model.trainable_variables)
            r["no_grad"] = [v.path for v, g in zip(model.trainable_variables, grads) if g is None]
        except Exception as e:  # noqa: BLE001
            r["errors"]["gradient (eager)"] = _first_line(e)
    parts, diffs = [], []
    if "pred_eager" in r and "pred_compiled" in r:
        diffs.append(max_abs_diff(r["pred_eager"], r["pred_compiled"]))
    if "w_eager" in r and "w_compiled" in r:
        diffs.append(max(abs(r["loss_eager"] - r["loss_compiled"]), max_abs_diff(r["w_eager"], r["w_compiled"])))
    r["value"] = max(diffs) if diffs else None
    r["scale"] = _scale(r.get("pred_eager"))
    one_sided = [k for k in r["errors"] if k.endswith("(compiled)") and k.replace("compiled", "eager") not in r["errors"]]
    r["one_sided"] = one_sided
    if one_sided:
        parts.append(f"{one_sided[0]} fails only when compiled: {r['errors'][one_sided[0]]}")
    if r["no_grad"]:
        parts.append(f"{len(r['no_grad'])} of {r['n_trainable']} trainable variables get no gradient "
                     f"({', '.join(r['no_grad'][:3])}{', …' if len(r['no_grad']) > 3 else ''})")
    both = [k for k in r["errors"] if k not in one_sided]
    if both:
        parts.append("; ".join(f"{k}: {v}" for k, v in list(r["errors"].items())[:2] if k in both))
    r["text"] = "; ".join(parts)
    return r


class _NumpyShim:
    """Stand-in for the ``numpy`` module in the user's namespace: a NumPy function applied to
    a tensor dispatches to ``keras.ops`` (what the KL301 fix writes), anything else is NumPy."""

    def __init__(self, np_mod):
        self._np = np_mod

    def __getattr__(self, name):
        attr = getattr(self._np, name)
        return _dispatch(attr, name) if callable(attr) and not isinstance(attr, type) else attr


def _is_tensor(v) -> bool:
    import keras

    if isinstance(v, (list, tuple)):
        return any(_is_tensor(t) for t in v)
    return keras.ops.is_tensor(v) or isinstance(v, keras.KerasTensor)


def _dispatch(fn, name):
    import keras

    op = getattr(keras.ops, name, None)
    if op is None:
        return fn

    def call(*args, **kwargs):
        if any(_is_tensor(a) for a in list(args) + list(kwargs.values())):
            return op(*args, **kwargs)
        return fn(*args, **kwargs)

    return call


def _remove_graph_hazard(cap, code: str) -> Optional[str]:
    """Patch the captured program so that the hazard is gone; a description, or None."""
    ns = cap.namespace
    if code == "KL301":
        n = 0
        for k, v in list(ns.items()):
            if v is np:
                ns[k] = _NumpyShim(np)
                n += 1
            elif callable(v) and getattr(v, "__module__", "") and str(getattr(v, "__module__", "")).startswith("numpy") \
                    and not isinstance(v, type):
                ns[k] = _dispatch(v, getattr(v, "__name__", k))
                n += 1
        return "NumPy calls on tensors dispatched to keras.ops (the KL301 fix)" if n else None
    if code == "KL303" and cap.backend == "tensorflow":
        import keras
        import tensorflow as tf

        n = 0
        for v in list(ns.values()):
            if isinstance(v, type) and issubclass(v, keras.layers.Layer) and v.__module__ == ns.get("__name__"):
                for meth in ("call", "train_step", "test_step", "predict_step"):
                    if meth in v.__dict__:
                        setattr(v, meth, tf.autograph.to_graph(v.__dict__[meth]))
                        n += 1
        return "Python control flow on tensors converted to graph ops (tf.cond/tf.while_loop)" if n else None
    if code == "KL302":
        return "run_eagerly=True (the only way to keep .numpy()/.item() on a tensor in call)"
    if code == "KL305":
        create_once(cap.path, cap.namespace)
        return "each variable created once, on the first call (as in build)"
    return None


class _TfProxy:
    """The user's ``tf`` with ``Variable`` replaced (anything else is TensorFlow's)."""

    def __init__(self, mod, variable):
        self._mod, self.Variable = mod, variable

    def __getattr__(self, name):
        return getattr(self._mod, name)


def create_once(path: str, namespace: Optional[dict] = None) -> list:
    """The KL305 removal: ``add_weight`` / ``tf.Variable`` called from the user's ``call`` create
    their variable once per layer and call site, then return it (as if created in ``build``)."""
    import sys

    from keras.src.layers.layer import Layer

    cache: dict = {}
    orig = Layer.add_weight

    def site(depth):
        f = sys._getframe(depth)
        return f.f_code.co_filename, f.f_lineno, f.f_code.co_name, f.f_locals.get("self")

    def add_weight(self, *a, **k):
        fn, line, name, _ = site(2)
        if fn != path or name in ("build", "__init__") or name.startswith("_build"):
            return orig(self, *a, **k)
        key = (id(self), line)
        if key not in cache:
            tracker = getattr(self, "_tracker", None)
            locked = bool(tracker and getattr(tracker, "locked", False))
            if locked:
                tracker.unlock()
            try:
                cache[key] = orig(self, *a, **k)
            finally:
                if locked:
                    tracker.lock()
        return cache[key]

    Layer.add_weight = add_weight
    undo = [lambda: setattr(Layer, "add_weight", orig)]
    _UNDO.append(undo[0])
    if namespace is not None:
        try:
            import tensorflow as tf
        except ImportError:
            tf = None
        if tf is not None:
            tf_var = tf.Variable

            def variable(*a, **k):
                fn, line, name, owner = site(2)
                if fn != path or name in ("build", "__init__"):
                    return tf_var(*a, **k)
                key = (id(owner), line, "tf")
                if key not in cache:
                    with tf.init_scope():
                        cache[key] = tf_var(*a, **k)
                return cache[key]

            for k, v in list(namespace.items()):
                if v is tf:
                    namespace[k] = _TfProxy(tf, variable)  # the namespace dies with its capture
                    undo.append(lambda k=k: namespace.__setitem__(k, tf))
                elif v is tf_var:
                    namespace[k] = variable
                    undo.append(lambda k=k: namespace.__setitem__(k, tf_var))
    return undo


def eager_vs_compiled(spec: dict) -> dict:
    code = spec["code"]
    capture_error = None
    try:
        cap = _capture(spec)
    except CaptureError as e:
        if code != "KL305":
            raise
        capture_error = str(e)
        create_once(os.path.abspath(spec["target"].partition("::")[0]))
        cap = _capture(spec)
    x, y, sw = cap.batches[0]
    w0 = snapshot(cap.model)
    if capture_error:
        b = _graph_arm(cap, w0, x, y, sw)
        value_fixed = b["value"]
        detail = (f"as written the model cannot run: {capture_error}; with each variable created once, on the first "
                  f"call (as in build): eager vs compiled max |Δ| = {fmt_num(value_fixed)}"
                  + (f" ({b['text']})" if b["text"] else ""))
        return {"metric": "max_abs_diff", "value": None, "value_fixed": value_fixed, "tolerance": 1e-5 * b["scale"],
                "verdict": CONFIRMED, "detail": detail, "series": {"fixed": [value_fixed]}}
    a = _graph_arm(cap, w0, x, y, sw)
    tol = 1e-5 * a["scale"]
    fixed_desc = _remove_graph_hazard(cap, code)
    b = _graph_arm(cap, w0, x, y, sw, all_eager=code == "KL302") if fixed_desc else None
    value, value_fixed = a["value"], (b["value"] if b else None)
    hazard = bool(a["one_sided"] or a["no_grad"] or (value is not None and value > tol))
    if hazard:
        verdict = CONFIRMED
    elif value is None:
        verdict = INCONCLUSIVE
    else:
        verdict = NOT_CONFIRMED
    detail = (f"eager vs compiled on one batch of {len(np.asarray(_first(x)))}: max |Δ| = {fmt_num(value)}"
              f" (outputs and one training step)")
    if a["text"]:
        detail += "; " + a["text"]
    if verdict == INCONCLUSIVE:
        detail = f"neither side ran: {a['text']}"
    if b is not None:
        if b["one_sided"] or b["no_grad"]:
            detail += f"; with {fixed_desc}: still {b['text']}"
            if value_fixed is None:
                value_fixed = None
        else:
            detail += f"; with {fixed_desc}: max |Δ| = {fmt_num(value_fixed)}"
            if b["text"]:
                detail += f" ({b['text']})"
    else:
        detail += "; no automatic removal of this hazard, value_fixed not measured"
    return {"metric": "max_abs_diff", "value": value, "value_fixed": value_fixed, "tolerance": tol,
            "verdict": verdict, "detail": detail,
            "series": {"as_written": [value], "fixed": [value_fixed]}}


def _first(x):
    import keras

    return keras.tree.flatten(x)[0]


# ---------------------------------------------------------------------------
# KL304: repeated compiled calls vs repeated eager calls
# ---------------------------------------------------------------------------


def _spread(outs: list) -> float:
    base = outs[0]
    return max(max_abs_diff(o, base) for o in outs) if len(outs) > 1 else 0.0


def _devs(outs: list) -> list:
    return [max_abs_diff(o, outs[0]) for o in outs]


def repeated_calls(spec: dict) -> dict:
    cap = _capture(spec)
    model = cap.model
    x = cap.batches[0][0]
    reps = 10  # ranges of 10 draws are stable enough to tell frozen from varying
    w0 = snapshot(model)
    restore(model, w0)
    eager, compiled, fixed = [], [], []
    errors = []
    try:
        for _ in range(reps):
            eager.append(_outputs(model, x, False))
    except Exception as e:  # noqa: BLE001
        errors.append(f"eager: {_first_line(e)}")
    recompile(cap, run_eagerly=False, jit_compile=False)
    try:
        model.predict_function = None
        for _ in range(reps):
            compiled.append([_np(t) for t in __import__("keras").tree.flatten(model.predict_on_batch(x))])
    except Exception as e:  # noqa: BLE001
        errors.append(f"compiled: {_first_line(e)}")
    recompile(cap, run_eagerly=True, jit_compile=False)
    try:
        model.predict_function = None
        for _ in range(reps):
            fixed.append([_np(t) for t in __import__("keras").tree.flatten(model.predict_on_batch(x))])
    except Exception as e:  # noqa: BLE001
        errors.append(f"run_eagerly: {_first_line(e)}")
    if not eager or not compiled:
        return {"metric": "frozen_spread", "value": None, "value_fixed": None, "tolerance": 0.5,
                "verdict": CONFIRMED if eager and not compiled else INCONCLUSIVE,
                "detail": "; ".join(errors), "series": {}}
    s_e, s_c = _spread(eager), _spread(compiled)
    s_f = _spread(fixed) if fixed else None

    def frozen(s):
        return 0.0 if s_e <= 1e-12 else max(0.0, s_e - s) / s_e

    value = frozen(s_c)
    value_fixed = frozen(s_f) if s_f is not None else None
    verdict = CONFIRMED if value > 0.5 else NOT_CONFIRMED
    detail = (f"{reps} calls on the same batch: spread of outputs eagerly {fmt_num(s_e)}, under predict "
              f"{fmt_num(s_c)}")
    if s_e <= 1e-12:
        detail += " (the eager calls do not vary: no numeric side effect)"
    elif value > 0.5:
        detail += " (a value frozen at trace time)"
    if s_f is not None:
        detail += f"; with run_eagerly=True: {fmt_num(s_f)}"
    return {"metric": "frozen_spread", "value": value, "value_fixed": value_fixed, "tolerance": 0.5,
            "verdict": verdict, "detail": detail,
            "series": {"as_written": _devs(compiled), "fixed": _devs(fixed) if fixed else [],
                       "reference": _devs(eager), "ylabel": "max |out_k − out_1| (call k)", "x": "call"}}


# ---------------------------------------------------------------------------
# KL404: loss as written vs from_logits consistent with the final activation
# ---------------------------------------------------------------------------

_PROB_LOSSES = {
    "binary_crossentropy": "BinaryCrossentropy", "bce": "BinaryCrossentropy",
    "categorical_crossentropy": "CategoricalCrossentropy", "cce": "CategoricalCrossentropy",
    "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy",
    "binary_focal_crossentropy": "BinaryFocalCrossentropy",
    "categorical_focal_crossentropy": "CategoricalFocalCrossentropy",
}


def _loss_object(loss):
    """(keras Loss object with a from_logits setting, its from_logits) or (None, None)."""
    import keras

    if isinstance(loss, str):
        cls = _PROB_LOSSES.get(loss.lower())
        return (getattr(keras.losses, cls)(), False) if cls else (None, None)
    if isinstance(loss, keras.losses.Loss):
        cfg = loss.get_config()
        if "from_logits" in cfg:
            return loss, bool(cfg["from_logits"])
        return None, None
    name = getattr(loss, "__name__", "")
    cls = _PROB_LOSSES.get(name)
    return (getattr(keras.losses, cls)(), False) if cls else (None, None)


def _final_activation(model) -> str:
    layer = model.layers[-1] if getattr(model, "layers", None) else None
    if layer is None:
        return "unknown"
    name = type(layer).__name__
    if name == "Softmax":
        return "softmax"
    act = getattr(layer, "activation", None)
    if act is None:
        return "linear" if name in ("Dense", "Conv1D", "Conv2D", "EinsumDense") else "unknown"
    n = getattr(act, "__name__", str(act))
    return {"softmax": "softmax", "sigmoid": "sigmoid", "linear": "linear"}.get(n, n)


def _train_track(cap, w0, steps: int, probe, loss) -> tuple:
    import keras

    restore(cap.model, w0)
    recompile(cap, loss=loss)
    keras.utils.set_random_seed(1234)
    losses, preds = [], []
    for i in range(steps):
        x, y, sw = cap.batches[i % len(cap.batches)]
        logs = train_batch(cap.model, x, y, sw)
        losses.append(float(_np(logs["loss"])))
        preds.append([_np(t) for t in keras.tree.flatten(cap.model(probe, training=False))])
    return losses, preds


def logits_consistency(spec: dict) -> dict:
    cap = _capture(spec)
    steps = int(spec["steps"])
    loss = cap.compile_kwargs.get("loss")
    obj, from_logits = _loss_object(loss)
    final = _final_activation(cap.model)
    if obj is None:
        return {"metric": "max_abs_diff", "value": 0.0, "value_fixed": 0.0, "tolerance": 1e-5,
                "verdict": NOT_CONFIRMED, "series": {},
                "detail": f"the loss ({getattr(loss, '__name__', loss)!s}) takes no from_logits: no logits mismatch possible"}
    if final not in ("softmax", "sigmoid", "linear"):
        return {"metric": "max_abs_diff", "value": None, "value_fixed": None, "tolerance": 1e-5,
                "verdict": INCONCLUSIVE, "series": {},
                "detail": f"final activation {final!r}: cannot tell whether the model outputs logits"}
    consistent = final == "linear"
    if from_logits == consistent:
        return {"metric": "max_abs_diff", "value": 0.0, "value_fixed": 0.0, "tolerance": 1e-5,
                "verdict": NOT_CONFIRMED, "series": {},
                "detail": f"final activation {final} with from_logits={from_logits}: already consistent"}
    cfg = obj.get_config()
    cfg["from_logits"] = consistent
    fixed_loss = type(obj).from_config(cfg)
    w0 = snapshot(cap.model)
    probe = cap.batches[0][0]
    la, pa = _train_track(cap, w0, steps, probe, loss)
    lb, pb = _train_track(cap, w0, steps, probe, fixed_loss)
    _, pc = _train_track(cap, w0, steps, probe, fixed_loss)
    series_a = [max_abs_diff(p, q) for p, q in zip(pa, pb)]
    series_f = [max_abs_diff(p, q) for p, q in zip(pc, pb)]
    value, value_fixed = series_a[-1], series_f[-1]
    tol = 1e-5 * _scale(pb[-1])
    verdict = CONFIRMED if value > tol else NOT_CONFIRMED
    detail = (f"final {final} with from_logits={from_logits} vs from_logits={consistent}, {steps} steps from the same "
              f"weights and batches on the {cap.backend} backend: max |Δ output| = {fmt_num(value)}"
              f" (loss {fmt_num(la[-1])} vs {fmt_num(lb[-1])})")
    if verdict == NOT_CONFIRMED and final in ("softmax", "sigmoid") and cap.backend == "tensorflow":
        detail += "; the TensorFlow backend reuses the logits cached on the softmax/sigmoid output, so this is harmless here (it is not on the torch or JAX backends)"
    return {"metric": "max_abs_diff", "value": value, "value_fixed": value_fixed, "tolerance": tol,
            "verdict": verdict, "detail": detail, "series": {"as_written": series_a, "fixed": series_f}}


# ---------------------------------------------------------------------------
# KL501: the dataset as written vs batched
# ---------------------------------------------------------------------------


_BATCH_OPS = ("BatchDataset", "PaddedBatchDataset", "ParallelBatchDataset", "RebatchDataset",
              "_DenseToRaggedDataset", "_RaggedBatchDataset", "BucketBySequenceLength", "_GroupByWindowDataset")
_SAMPLE_SOURCES = ("TensorSliceDataset", "RangeDataset", "SparseTensorSliceDataset")
_UNBATCH_OPS = ("UnbatchDataset",)


def _dataset_ops(ds) -> list:
    """Class names of the pipeline, last op first, following every input (zip, concatenate)."""
    out, todo, seen = [], [ds], set()
    while todo:
        d = todo.pop(0)
        if d is None or id(d) in seen:
            continue
        seen.add(id(d))
        out.append(type(d).__name__.lstrip("_"))
        try:
            todo.extend(d._inputs())
        except Exception:  # noqa: BLE001
            pass
    return out


def dataset_batching(ds) -> Optional[bool]:
    """True: a batch-like op runs after the last unbatch; False: elements are single samples
    (slices, no batch op); None: cannot tell (generators, files)."""
    ops = _dataset_ops(ds)
    for name in ops:  # last op first along the main chain
        if name.lstrip("_") in [o.lstrip("_") for o in _BATCH_OPS]:
            return True
        if name in _UNBATCH_OPS:
            return False
    if any(name in _SAMPLE_SOURCES for name in ops):
        return False
    return None


def _count_elements(ds, limit: int = 20000) -> int:
    import tensorflow as tf

    n = int(ds.cardinality().numpy())
    if n >= 0:
        return n
    if n == tf.data.INFINITE_CARDINALITY:
        return -1
    k = 0
    for _ in ds.take(limit):
        k += 1
    return k


def batched_vs_unbatched(spec: dict) -> dict:
    import keras

    cap = _capture(spec)
    ds = cap.dataset
    if ds is None:
        return {"metric": "rank_deficit", "value": 0.0, "value_fixed": 0.0, "tolerance": 0.0,
                "verdict": NOT_CONFIRMED, "series": {},
                "detail": f"Model.{cap.kind} received arrays or a generator, not a tf.data.Dataset"}
    model = cap.model
    spec_x = keras.tree.flatten(ds.element_spec)[0]
    batching = dataset_batching(ds)
    if batching is None:  # a generator or file source: a leading unknown dimension is a batch axis
        batching = spec_x.shape.rank is not None and spec_x.shape.rank > 0 and spec_x.shape[0] is None
    inputs = getattr(model, "inputs", None)
    try:
        want = len(inputs[0].shape) if inputs else None
    except Exception:  # noqa: BLE001
        want = None
    have = len(spec_x.shape) if spec_x.shape.rank is not None else None
    w0 = snapshot(model)
    seen_shapes: list = []

    def one_step(d):
        restore(model, w0)
        recompile(cap)
        seen_shapes.clear()
        try:
            h = model.fit(d.take(1), epochs=1, verbose=0, shuffle=False)
            return float(h.history["loss"][-1]), None
        except Exception as e:  # noqa: BLE001
            return None, _first_line(e)

    bs = 32
    la, ea = one_step(ds)
    n_written = _count_elements(ds)
    n_batched = math.ceil(n_written / bs) if n_written >= 0 else -1
    if batching:
        rank_text = f"the dataset is batched (element spec {tuple(spec_x.shape)})"
        detail = f"{rank_text}; one fit step as written: " + (f"loss {fmt_num(la)}" if ea is None else ea)
        return {"metric": "rank_deficit", "value": 0.0, "value_fixed": 0.0, "tolerance": 0.0,
                "verdict": NOT_CONFIRMED if ea is None else INCONCLUSIVE, "detail": detail, "series": {}}
    batched = ds.batch(bs)
    lb, eb = one_step(batched)
    if eb is not None and ea is None:  # the model was built on one sample: rebuild a clone on batches
        try:
            clone = keras.Sequential([type(ly).from_config(ly.get_config()) for ly in model.layers])
            clone(np.zeros((2,) + tuple(spec_x.shape), spec_x.dtype.as_numpy_dtype))
            clone.set_weights(model.get_weights())
            clone.compile(optimizer=keras.optimizers.get(cap.optimizer_spec) if isinstance(cap.optimizer_spec, str)
                          else type(model.optimizer).from_config(model.optimizer.get_config()),
                          loss=cap.compile_kwargs.get("loss", "mse"))
            h = clone.fit(batched.take(1), epochs=1, verbose=0, shuffle=False)
            lb, eb = float(h.history["loss"][-1]), None
        except Exception:  # noqa: BLE001
            pass
    value, value_fixed = 1.0, 0.0
    if want is not None and have is not None and want > have:
        value = float(want - have)
    steps_text = (f"{n_written} steps per epoch as written vs {n_batched} batched by {bs}" if n_written >= 0
                  else "an infinite dataset")
    if ea is not None:
        what = f"as written fit fails: {ea}"
    else:
        what = (f"as written fit trains without error on single samples taken as batches: the model saw batches of "
                f"shape {tuple(spec_x.shape)}, i.e. the first sample axis ({spec_x.shape[0] if have else 'scalar'}) "
                f"as the batch axis (silent training on rows), loss {fmt_num(la)}")
    detail = (f"element spec {tuple(spec_x.shape)}, no batch step in the pipeline"
              f"{f', model input rank {want}' if want is not None else ''}; {steps_text}; {what}; after .batch({bs}): "
              + (f"loss {fmt_num(lb)}" if eb is None else eb))
    return {"metric": "rank_deficit", "value": value, "value_fixed": value_fixed, "tolerance": 0.0,
            "verdict": CONFIRMED, "detail": detail,
            "series": {"as_written": [float(n_written)], "fixed": [float(n_batched)], "ylabel": "steps per epoch"}}


# ---------------------------------------------------------------------------
# capture-run: one run of the program (KL1xx, KL201/202 compare several in the parent)
# ---------------------------------------------------------------------------


def capture_run(spec: dict) -> dict:
    import keras

    opts = spec.get("options", {})
    t0 = time.monotonic()
    cap = _capture(spec, pre_seed=opts.get("pre_seed"), force_floatx=opts.get("force_floatx"),
                   preset_floatx=opts.get("preset_floatx"), op_determinism=bool(opts.get("op_determinism")),
                   no_tf1=bool(opts.get("no_tf1")))
    if opts.get("report_errors"):
        try:
            import tensorflow as tf

            out_eager = bool(tf.executing_eagerly())
        except Exception:  # noqa: BLE001
            out_eager = True
        try:
            res = _capture_run_body(cap, spec, opts, t0)
        except Exception as e:  # noqa: BLE001
            return {"train_error": _first_line(e), "eager": out_eager}
        res["eager"] = out_eager
        return res
    return _capture_run_body(cap, spec, opts, t0)


def _capture_run_body(cap, spec: dict, opts: dict, t0: float) -> dict:
    import keras

    model = cap.model
    steps = int(spec["steps"])
    note = ""
    if opts.get("load"):
        with open(opts["load"], "rb") as f:
            loaded = pickle.load(f)
        cur = model.variables
        if len(cur) != len(loaded["w0"]) or any(tuple(v.shape) != np.shape(w) for v, w in zip(cur, loaded["w0"])):
            return {"error": "the runs built models of different shapes"}
        restore(model, loaded["w0"])
        dt = keras.config.floatx()
        cast = lambda s: keras.tree.map_structure(  # noqa: E731
            lambda t: None if t is None else (np.asarray(t).astype(dt) if np.asarray(t).dtype.kind == "f" else np.asarray(t)), s)
        cap.batches = [tuple(cast(p) for p in b) for b in loaded["batches"]]
        note = "initial weights and batches of the first run"
    w0 = snapshot(model)
    w0_weights = weights_of(model)
    recompile(cap)
    seed = opts.get("train_seed", 1234)
    losses = train(cap, steps, seed=seed) if seed is not None else _train_noseed(cap, steps)
    probe = cap.batches[0][0]
    preds = [_np(t) for t in keras.tree.flatten(model(probe, training=False))]
    out = {"losses": losses, "model_dtype": str(model.weights[0].dtype) if model.weights else None,
           "floatx": keras.config.floatx(), "floatx_requests": cap.floatx_requests, "note": note}
    repeat = None
    if opts.get("repeats", 1) > 1:
        restore(model, w0)
        recompile(cap)
        losses2 = train(cap, steps, seed=seed) if seed is not None else _train_noseed(cap, steps)
        preds2 = [_np(t) for t in keras.tree.flatten(model(probe, training=False))]
        out["losses_repeat"] = losses2
        repeat = preds2
    if opts.get("save"):
        with open(opts["save"], "wb") as f:
            pickle.dump({"w0": w0, "w0_weights": w0_weights, "batches": cap.batches, "preds": preds,
                         "preds_repeat": repeat, "losses": losses}, f)
    out["seconds"] = time.monotonic() - t0
    return out


def _train_noseed(cap, steps: int) -> list:
    losses = []
    for i in range(steps):
        x, y, sw = cap.batches[i % len(cap.batches)]
        logs = train_batch(cap.model, x, y, sw)
        losses.append(float(_np(logs["loss"])))
    return losses


def torch_reference(spec: dict) -> dict:
    from keraslint.verify import torchref

    from keraslint.verify.capture import run_model

    cap = run_model(spec["target"], int(spec["steps"]))
    return torchref.experiment(cap, spec)
