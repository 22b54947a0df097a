"""Single-process experiments (child process only) for KL203, KL304, KL306, KL403, KL406,
KL502, KL503 and KL504. Each runs the program's captured model or data as written and with
the hazard removed, from the same weights and batches.
"""

from __future__ import annotations

import builtins
import math
import os
import sys
import tempfile
import time

import numpy as np

from keraslint.verify.capture import recompile, restore, run_target, snapshot, train_batch
from keraslint.verify.experiments import (CONFIRMED, INCONCLUSIVE, NOT_CONFIRMED, _first_line, _np, _result,
                                          dataset_batching)
from keraslint.verify.util import fmt_num


def _capture(spec: dict, **kw):
    return run_target(spec["target"], int(spec["steps"]), **kw)


def _flat_np(out) -> list:
    import keras

    return [_np(t) for t in keras.tree.flatten(out)]


def _maxdiff(a: list, b: list) -> float:
    """max |Δ| over paired arrays (inf on a count or shape mismatch)."""
    from keraslint.verify.torchref import _diff

    if len(a) != len(b):
        return float("inf")
    return _diff(a, b, set())


def _scale(arrays) -> float:
    m = 1.0
    for t in arrays:
        t = np.asarray(t, "float64")
        if t.size and np.all(np.isfinite(t)):
            m = max(m, float(np.max(np.abs(t))))
    return m


# ---------------------------------------------------------------------------
# KL304: how often the Python-side side effect runs per step
# ---------------------------------------------------------------------------

_RANDOM_FUNCS = ("random", "uniform", "gauss", "normalvariate", "randint", "choice", "choices", "shuffle", "sample",
                 "randrange", "betavariate", "expovariate", "triangular", "getrandbits", "lognormvariate",
                 "vonmisesvariate", "gammavariate", "paretovariate", "weibullvariate", "randbytes")
_TIME_FUNCS = ("time", "perf_counter", "monotonic", "process_time", "time_ns", "perf_counter_ns", "monotonic_ns")


class SideEffects:
    """Counts Python-side side effects run from the user's files: Python ``random``, ``np.random``
    (module functions and ``default_rng`` generators), the clock, ``print``, and growth of
    module-level containers and list/dict attributes of the model's layers."""

    def __init__(self, cap):
        self.cap = cap
        self.root = os.path.dirname(cap.path)
        self.counts: dict = {}
        self.undo: list = []
        self._install()

    def _mine(self, depth: int = 2) -> bool:
        try:
            f = sys._getframe(depth)
        except ValueError:
            return False
        fn = f.f_code.co_filename
        return fn == self.cap.path or (fn.startswith(self.root + os.sep) and "site-packages" not in fn
                                       and "keraslint" not in fn)

    def _wrap(self, fn, label):
        counts = self.counts

        def wrapper(*a, **k):
            if self._mine():
                counts[label] = counts.get(label, 0) + 1
            return fn(*a, **k)
        wrapper.__wrapped__ = fn
        return wrapper

    def _patch(self, obj, name, label):
        orig = getattr(obj, name, None)
        if orig is None or not callable(orig):
            return
        new = self._wrap(orig, label)
        try:
            setattr(obj, name, new)
        except (AttributeError, TypeError):
            return
        self.undo.append(lambda: setattr(obj, name, orig))
        ns = self.cap.namespace
        for k, v in list(ns.items()):
            if v is orig:
                ns[k] = new
                self.undo.append(lambda k=k, v=v: ns.__setitem__(k, v))

    def _install(self):
        import random
        import time as time_mod

        for n in _RANDOM_FUNCS:
            self._patch(random, n, f"random.{n}")
        for n in dir(np.random):
            obj = getattr(np.random, n)
            if n.startswith("_") or isinstance(obj, type) or not callable(obj) or n in (
                    "seed", "get_state", "set_state", "default_rng", "RandomState", "Generator", "SeedSequence",
                    "get_bit_generator", "set_bit_generator"):
                continue
            self._patch(np.random, n, f"np.random.{n}")
        for n in _TIME_FUNCS:
            self._patch(time_mod, n, f"time.{n}")
        orig_rng = np.random.default_rng
        me = self

        class _Rng:
            def __init__(self, g):
                self._g = g

            def __getattr__(self, name):
                attr = getattr(self._g, name)
                if callable(attr) and not name.startswith("_"):
                    return me._wrap(attr, f"Generator.{name}")
                return attr

        def default_rng(*a, **k):
            return _Rng(orig_rng(*a, **k))
        np.random.default_rng = default_rng
        self.undo.append(lambda: setattr(np.random, "default_rng", orig_rng))
        # existing generators held by the user's objects
        for holder in [self.cap.namespace] + [vars(ly) for ly in self._layers()]:
            for k, v in list(holder.items()):
                if isinstance(v, np.random.Generator):
                    holder[k] = _Rng(v)
        ns = self.cap.namespace
        orig_print = ns.get("print", builtins.print)

        def quiet_print(*a, **k):
            if self._mine():
                self.counts["print"] = self.counts.get("print", 0) + 1
        ns["print"] = quiet_print
        self.undo.append(lambda: ns.__setitem__("print", orig_print) if orig_print is not builtins.print
                         else ns.pop("print", None))

    def _layers(self):
        try:
            return list(self.cap.model._flatten_layers(include_self=True))
        except Exception:  # noqa: BLE001
            return []

    def container_size(self) -> int:
        total = 0
        for k, v in list(self.cap.namespace.items()):
            if not k.startswith("__") and isinstance(v, (list, dict, set)):
                total += len(v)
        for ly in self._layers():
            if type(ly).__module__ not in ("__main__", "__keraslint_entry__"):
                continue
            for k, v in list(vars(ly).items()):
                if isinstance(v, (list, dict, set)) and not k.startswith("_"):
                    total += len(v)
        return total

    def total(self) -> int:
        return sum(self.counts.values())

    def reset(self) -> None:
        self.counts.clear()

    def close(self) -> None:
        for u in reversed(self.undo):
            try:
                u()
            except Exception:  # noqa: BLE001
                pass


def trace_count(spec: dict) -> dict:
    import keras

    cap = _capture(spec)
    model = cap.model
    steps = max(4, min(int(spec["steps"]), 12))
    first = cap.batches[0]
    shape0 = [np.shape(t) for t in keras.tree.flatten(first[0])]
    batches = [b for b in cap.batches if [np.shape(t) for t in keras.tree.flatten(b[0])] == shape0] or [first]
    reps = steps
    w0 = snapshot(model)
    fx = SideEffects(cap)
    arms = {}
    errors = []
    try:
        for arm, eager in (("as_written", False), ("fixed", True)):
            restore(model, w0)
            recompile(cap, run_eagerly=eager, jit_compile=False)
            keras.utils.set_random_seed(1234)
            fx.reset()
            size0 = fx.container_size()
            fit_calls = pred_calls = None
            try:
                for i in range(steps):
                    x, y, sw = batches[i % len(batches)]
                    train_batch(model, x, y, sw)
                fit_calls = fx.total() + max(0, fx.container_size() - size0)
                fit_labels = dict(fx.counts)
            except Exception as e:  # noqa: BLE001
                errors.append(f"{arm} fit: {_first_line(e)}")
                fit_labels = {}
            fx.reset()
            size0 = fx.container_size()
            try:
                model.predict_function = None
                for _ in range(reps):
                    model.predict_on_batch(first[0])
                pred_calls = fx.total() + max(0, fx.container_size() - size0)
                pred_labels = dict(fx.counts)
            except Exception as e:  # noqa: BLE001
                errors.append(f"{arm} predict: {_first_line(e)}")
                pred_labels = {}
            arms[arm] = (fit_calls, pred_calls, {**pred_labels, **fit_labels})
    finally:
        fx.close()
    (fa, pa, la), (ff, pf, lf) = arms["as_written"], arms["fixed"]
    if (ff is None and pf is None) or (fa is None and pa is None):
        return _result("frozen_fraction", None, None, 0.5, INCONCLUSIVE, "; ".join(errors) or "nothing ran")

    def frozen(compiled, eager):
        if compiled is None or eager is None or eager <= 0:
            return 0.0
        return max(0.0, 1.0 - compiled / eager)

    value = max(frozen(fa, ff), frozen(pa, pf))
    value_fixed = 0.0
    what = ", ".join(sorted(lf or la)) or "none"
    if not (ff or pf):
        detail = (f"no Python-side side effect (random, np.random, clock, print, outside containers) ran during "
                  f"{steps} fit steps or {reps} predict calls, eagerly or compiled, on the {cap.backend} backend")
        return _result("frozen_fraction", 0.0, 0.0, 0.5, NOT_CONFIRMED, detail)
    detail = (f"Python-side side effects ({what}) on the {cap.backend} backend: {fa if fa is not None else 'n/a'} "
              f"run(s) in {steps} compiled fit steps vs {ff} with run_eagerly=True; {pa if pa is not None else 'n/a'} "
              f"in {reps} compiled predict calls vs {pf} eagerly")
    if value > 0.5:
        detail += " (run once at trace time, then frozen for every step)"
    if errors:
        detail += "; " + "; ".join(errors)
    return _result("frozen_fraction", value, value_fixed, 0.5, CONFIRMED if value > 0.5 else NOT_CONFIRMED, detail,
                   {"as_written": [fa or 0, pa or 0], "fixed": [ff or 0, pf or 0],
                    "ylabel": "side-effect runs (fit, predict)", "x": "phase"})


# ---------------------------------------------------------------------------
# KL203: float16 output vs a float32 run
# ---------------------------------------------------------------------------


def float16_output(spec: dict) -> dict:
    import keras

    cap = _capture(spec)
    model = cap.model
    x = cap.batches[0][0]
    out = model(x, training=False)
    out_dtypes = sorted({keras.backend.standardize_dtype(t.dtype) for t in keras.tree.flatten(out)})
    as_written = _flat_np(out)
    layers = [ly for ly in model._flatten_layers(include_self=False) if not ly._layers] or list(model.layers)
    saved = {id(ly): ly.dtype_policy for ly in layers}
    try:
        for ly in layers:
            ly.dtype_policy = "float32"
        ref = _flat_np(model(x, training=False))
        for ly in layers:
            ly.dtype_policy = saved[id(ly)]
        final = _final_layers(model)
        for ly in final:
            ly.dtype_policy = "float32"
        fixed = _flat_np(model(x, training=False))
    finally:
        for ly in layers:
            ly.dtype_policy = saved[id(ly)]
    value, value_fixed = _maxdiff(as_written, ref), _maxdiff(fixed, ref)
    policy = keras.config.dtype_policy().name
    low = [d for d in out_dtypes if d in ("float16", "bfloat16")]
    tol = max(value_fixed * 1.05, 1e-7 * _scale(ref))
    verdict = CONFIRMED if low and value > tol else NOT_CONFIRMED
    detail = (f"global policy {policy}; model output dtype {', '.join(out_dtypes)}; max |Δ| vs an all-float32 run of "
              f"the same weights = {fmt_num(value)}; with the final layer in float32: {fmt_num(value_fixed)}")
    if not low:
        detail += " (the output is already float32)"
    return _result("max_abs_diff", value, value_fixed, tol, verdict, detail)


def _final_layers(model) -> list:
    import keras

    out = []
    try:
        for t in keras.tree.flatten(model.outputs):
            h = t._keras_history
            out.append(h.operation)
    except Exception:  # noqa: BLE001
        out = [model.layers[-1]] if getattr(model, "layers", None) else []
    return [ly for ly in out if isinstance(ly, keras.layers.Layer)]


# ---------------------------------------------------------------------------
# KL306: save/load round trip
# ---------------------------------------------------------------------------


def _user_classes(cap) -> list:
    import keras

    modname = cap.namespace.get("__name__")
    return [v for v in cap.namespace.values()
            if isinstance(v, type) and issubclass(v, keras.layers.Layer) and v.__module__ == modname]


def _custom_objects(cap) -> dict:
    out = {}
    for k, v in cap.namespace.items():
        if isinstance(v, type) or (callable(v) and getattr(v, "__module__", None) == cap.namespace.get("__name__")):
            out[k] = v
    return out


def _round_trip(cap, x, path) -> tuple:
    import keras

    model = cap.model
    try:
        model.save(path)
    except Exception as e:  # noqa: BLE001
        return None, f"save raises {_first_line(e)}"
    try:
        loaded = keras.saving.load_model(path, custom_objects=_custom_objects(cap), compile=False)
    except Exception as e:  # noqa: BLE001
        return None, f"load raises {_first_line(e)}"
    try:
        return _maxdiff(_flat_np(model(x, training=False)), _flat_np(loaded(x, training=False))), ""
    except Exception as e:  # noqa: BLE001
        return None, f"the reloaded model fails on the batch: {_first_line(e)}"


def _add_get_config(cls) -> None:
    """The KL306 fix: a get_config that records the constructor's arguments (and a from_config)."""
    import keras

    def get_config(self):
        args, kwargs = getattr(self, "_keraslint_init", ((), {}))
        base = {"name": self.name, "trainable": self.trainable}
        base["__args"] = [keras.saving.serialize_keras_object(a) for a in args]
        base["__kwargs"] = {k: keras.saving.serialize_keras_object(v) for k, v in kwargs.items()}
        return base

    def from_config(klass, config):
        config = dict(config)
        args = [keras.saving.deserialize_keras_object(a) for a in config.pop("__args", [])]
        kwargs = {k: keras.saving.deserialize_keras_object(v) for k, v in config.pop("__kwargs", {}).items()}
        return klass(*args, **kwargs)

    cls.get_config = get_config
    cls.from_config = classmethod(from_config)


def save_load(spec: dict) -> dict:
    import keras

    cap = _capture(spec)
    x = cap.batches[0][0]
    tmp = tempfile.mkdtemp(prefix="keraslint-kl306-")
    value, err = _round_trip(cap, x, os.path.join(tmp, "as_written.keras"))
    mine = _user_classes(cap)
    no_config = [c for c in mine if "get_config" not in c.__dict__ and not any(
        "get_config" in b.__dict__ for b in c.__mro__[1:] if b.__module__ == c.__module__)]
    fixed_desc = ""
    value_fixed, err_f = None, ""
    if no_config:
        for c in no_config:
            _add_get_config(c)
        fixed_desc = f"get_config recording the constructor arguments added to {', '.join(c.__name__ for c in no_config)}"
        value_fixed, err_f = _round_trip(cap, x, os.path.join(tmp, "fixed.keras"))
    out_scale = _scale(_flat_np(cap.model(x, training=False)))
    tol = 1e-6 * out_scale
    names = ", ".join(c.__name__ for c in mine) or "none"
    if err:
        detail = f"as written the round trip fails: {err}"
        verdict = CONFIRMED
    else:
        detail = f"save/load round trip (.keras) of the model: reloaded outputs differ by max |Δ| = {fmt_num(value)}"
        verdict = CONFIRMED if value > tol else NOT_CONFIRMED
    detail += f" (custom classes: {names})"
    if fixed_desc:
        detail += f"; with a {fixed_desc}: " + (err_f if err_f else f"max |Δ| = {fmt_num(value_fixed)}")
    elif verdict == NOT_CONFIRMED:
        value_fixed = value
    return _result("max_abs_diff", value, value_fixed, tol, verdict, detail)


# ---------------------------------------------------------------------------
# KL403: one optimizer compiled into two models
# ---------------------------------------------------------------------------


def shared_optimizer(spec: dict) -> dict:
    import keras

    cap = run_target(spec["target"], int(spec["steps"]), continue_after_fit=True)
    steps = max(2, min(int(spec["steps"]), 10))
    by_opt: dict = {}
    for model, ck in cap.compiled:
        opt = ck.get("optimizer")
        if isinstance(opt, keras.optimizers.Optimizer):
            by_opt.setdefault(id(opt), (opt, []))[1].append(model)
    shared = [(opt, list(dict.fromkeys(ms))) for opt, ms in by_opt.values() if len(set(map(id, ms))) > 1]
    if not shared:
        n = len({id(m) for m, _ in cap.compiled})
        return _result("foreign_steps", 0.0, 0.0, 0.0, NOT_CONFIRMED,
                       f"{n} compiled model(s), each with its own optimizer instance: nothing is shared")
    opt, models = shared[0]
    models = [m for i, m in enumerate(models) if all(m is not o for o in models[:i])][:2]
    data = {}
    for m, kind, args in cap.fits:
        data.setdefault(id(m), args)
    batches = {}
    for m in models:
        args = data.get(id(m))
        if args is None:
            other = next((a for mm, _, a in cap.fits), None)
            args = other
        if args is None:
            return _result("foreign_steps", None, None, 0.0, INCONCLUSIVE, "the models were never trained: no data")
        bs = int(args.get("batch_size") or 32)
        x, y = args.get("x"), args.get("y")
        try:
            batches[id(m)] = (keras.tree.map_structure(lambda t: np.asarray(t)[:bs], x),
                              None if y is None else keras.tree.map_structure(lambda t: np.asarray(t)[:bs], y))
        except Exception:  # noqa: BLE001
            return _result("foreign_steps", None, None, 0.0, INCONCLUSIVE,
                           "the models were trained on datasets or generators: no arrays to replay")
    w0 = {id(m): snapshot(m) for m in models}
    ck = {id(m): c for m, c in cap.compiled}

    def arm(separate: bool):
        shared_opt = type(opt).from_config(opt.get_config())
        log = []
        for m in models:
            restore(m, w0[id(m)])
            o = type(opt).from_config(opt.get_config()) if separate else shared_opt
            kw = {k: v for k, v in ck[id(m)].items() if k in ("loss", "loss_weights")}
            m.compile(optimizer=o, **kw)
        for m in models:
            x, y = batches[id(m)]
            try:
                for _ in range(steps):
                    train_batch(m, x, y)
            except Exception as e:  # noqa: BLE001
                log.append((m.name, None, _first_line(e)))
                continue
            log.append((m.name, int(_np(m.optimizer.iterations)), ""))
        return log

    a, f = arm(False), arm(True)

    def foreign(log):
        fails = [e for _, _, e in log if e]
        if fails:
            return float("inf"), fails[0]
        return float(max(it - steps for _, it, _ in log)), ""

    va, ea = foreign(a)
    vf, ef = foreign(f)
    names = " and ".join(m.name for m in models)
    if ea:
        detail = (f"one {type(opt).__name__} instance compiled into {names}: after {steps} steps of the first, the "
                  f"second fails: {ea}")
    else:
        its = ", ".join(f"{n}: {it}" for n, it, _ in a)
        detail = (f"one {type(opt).__name__} instance compiled into {names}, {steps} steps each: optimizer step "
                  f"counts {its} (each model's own steps: {steps}; steps and slots shared)")
    detail += "; each model with its own optimizer: " + (ef if ef else f"{vf:g} foreign steps")
    verdict = CONFIRMED if (ea or va > 0) else NOT_CONFIRMED
    return _result("foreign_steps", None if ea else va, None if ef else vf, 0.0, verdict, detail)


# ---------------------------------------------------------------------------
# KL406: the validation split's distribution
# ---------------------------------------------------------------------------


def _distribution_gap(y_tr, y_va) -> tuple:
    y_tr, y_va = np.asarray(y_tr), np.asarray(y_va)
    flat_tr = y_tr.reshape(len(y_tr), -1)
    flat_va = y_va.reshape(len(y_va), -1)
    is_int = y_tr.dtype.kind in "iub" or (np.all(np.mod(y_tr, 1) == 0) and flat_tr.shape[1] == 1
                                          and len(np.unique(y_tr)) <= 20)
    onehot = flat_tr.shape[1] > 1 and set(np.unique(flat_tr)) <= {0, 1}
    if onehot:
        p, q = flat_tr.mean(0), flat_va.mean(0)
        return 0.5 * float(np.abs(p / max(p.sum(), 1e-12) - q / max(q.sum(), 1e-12)).sum()), "classes"
    if is_int:
        classes = np.unique(np.concatenate([flat_tr[:, 0], flat_va[:, 0]]))
        p = np.array([(flat_tr[:, 0] == c).mean() for c in classes])
        q = np.array([(flat_va[:, 0] == c).mean() for c in classes])
        return 0.5 * float(np.abs(p - q).sum()), "classes"
    sd = float(np.std(np.concatenate([flat_tr, flat_va]), axis=0).mean()) or 1.0
    return float(np.abs(flat_tr.mean(0) - flat_va.mean(0)).max() / sd), "targets"


def split_distribution(spec: dict) -> dict:
    import keras

    cap = _capture(spec)
    a = cap.fit_kwargs
    split = a.get("validation_split") or 0.0
    y = a.get("y")
    if not split:
        return _result("distribution_gap", 0.0, 0.0, 0.1, NOT_CONFIRMED, "fit has no validation_split")
    if y is None:
        return _result("distribution_gap", None, None, 0.1, INCONCLUSIVE,
                       "validation_split without array targets (a dataset or generator)")
    y0 = np.asarray(keras.tree.flatten(y)[0])
    n = len(y0)
    cut = int(n * (1.0 - float(split)))
    gap, kind = _distribution_gap(y0[:cut], y0[cut:])
    rng = np.random.default_rng(0)
    shuffled = []
    for _ in range(200):  # what shuffled splits of these rows give: the chance level of the gap
        ys = y0[rng.permutation(n)]
        shuffled.append(_distribution_gap(ys[:cut], ys[cut:])[0])
    gap_f = float(np.median(shuffled))
    tol = float(np.percentile(shuffled, 99))
    verdict = CONFIRMED if gap > tol else NOT_CONFIRMED
    measure = "total variation distance of class frequencies" if kind == "classes" else \
        "standardized gap of target means"
    detail = (f"validation_split={split}: the last {n - cut} of {n} rows; {measure} between training and validation "
              f"rows = {fmt_num(gap)} as written vs {fmt_num(gap_f)} for a shuffled split (median of 200; 99th "
              f"percentile {fmt_num(tol)})")
    return _result("distribution_gap", gap, gap_f, tol, verdict, detail)


# ---------------------------------------------------------------------------
# KL502: steps per epoch as written vs as asked
# ---------------------------------------------------------------------------


def _epoch_elements(ds, limit=20000) -> list:
    import keras

    out = []
    for el in ds.take(limit):
        x = el[0] if isinstance(el, (tuple, list)) else el
        out.append(np.asarray(keras.tree.flatten(x)[0]))
    return out


def steps_per_epoch(spec: dict) -> dict:
    cap = _capture(spec)
    a = cap.fit_kwargs
    bs = a.get("batch_size")
    ds = cap.dataset
    if ds is None:
        return _result("steps_gap", 0.0, 0.0, 0.0, NOT_CONFIRMED,
                       f"fit received arrays: batch_size={bs} is used as given")
    if not bs:
        return _result("steps_gap", 0.0, 0.0, 0.0, NOT_CONFIRMED, "no batch_size given next to the dataset")
    batching = dataset_batching(ds)
    els = _epoch_elements(ds)
    if batching is False:
        samples, steps = len(els), len(els)
    else:
        samples = sum(int(e.shape[0]) if e.ndim else 1 for e in els)
        steps = len(els)
    asked = math.ceil(samples / int(bs))
    value = float(abs(steps - asked))
    verdict = CONFIRMED if value > 0 else NOT_CONFIRMED
    sizes = sorted({int(e.shape[0]) for e in els if e.ndim}) if batching is not False else [1]
    detail = (f"fit(dataset, batch_size={bs}): batch_size is ignored; {samples} samples give {steps} steps per epoch "
              f"as written (batches of {', '.join(map(str, sizes[:3]))}) vs {asked} as asked; with the dataset "
              f"batched by {bs} instead: {asked} steps")
    return _result("steps_gap", value, 0.0, 0.0, verdict, detail,
                   {"as_written": [float(steps)], "fixed": [float(asked)], "ylabel": "steps per epoch"})


# ---------------------------------------------------------------------------
# KL503 / KL504: sample order over epochs
# ---------------------------------------------------------------------------


def _epoch_order(ds, epochs: int, limit: int) -> list:
    """Per epoch, a list of batches, each a list of sample keys (row bytes)."""
    orders = []
    for _ in range(epochs):
        batches = []
        for e in _epoch_elements(ds, limit):
            rows = e.reshape(len(e), -1) if e.ndim > 1 else e.reshape(1, -1) if e.ndim == 1 else e.reshape(1, 1)
            batches.append([r.tobytes() for r in rows])
        orders.append(batches)
    return orders


def _position_repeat(orders) -> float:
    seqs = [[k for b in ep for k in b] for ep in orders]
    fr = []
    for a, b in zip(seqs, seqs[1:]):
        n = min(len(a), len(b))
        fr.append(sum(p == q for p, q in zip(a[:n], b[:n])) / max(n, 1))
    return float(np.mean(fr)) if fr else 0.0


def _pair_repeat(orders) -> float:
    def pairs(ep):
        out = set()
        for b in ep:
            s = sorted(b)
            out.update((s[i], s[j]) for i in range(len(s)) for j in range(i + 1, len(s)))
        return out
    ps = [pairs(ep) for ep in orders]
    fr = [len(a & b) / max(len(a), 1) for a, b in zip(ps, ps[1:]) if a]
    return float(np.mean(fr)) if fr else 0.0


def sample_order(spec: dict) -> dict:
    code = spec["code"]
    cap = _capture(spec)
    ds = cap.dataset
    if ds is None:
        return _result("order_repeat", 0.0, 0.0, 0.5, NOT_CONFIRMED,
                       "fit received arrays: fit shuffles the samples itself every epoch")
    epochs, limit = 3, 2000
    batching = dataset_batching(ds)
    orders = _epoch_order(ds, epochs, limit)
    n = sum(len(b) for b in orders[0])
    bs = max(len(b) for b in orders[0]) if orders[0] else 1
    if batching:
        fixed_ds = ds.unbatch().shuffle(max(n, 1), seed=0).batch(bs)
    else:
        fixed_ds = ds.shuffle(max(n, 1), seed=0)
    fixed = _epoch_order(fixed_ds, epochs, limit)
    if code == "KL503":
        metric = "pair_repeat"
        value, value_fixed = _pair_repeat(orders), _pair_repeat(fixed)
        what = "of the sample pairs sharing a batch in one epoch share one again in the next"
        fix = "shuffling samples before batching"
    else:
        metric = "order_repeat"
        value, value_fixed = _position_repeat(orders), _position_repeat(fixed)
        what = "of the sample positions are identical from one epoch to the next"
        fix = "shuffling after the cache"
    if batching and code == "KL503" and bs <= 1:
        value = value_fixed = 0.0
    verdict = CONFIRMED if value > 0.5 else NOT_CONFIRMED
    detail = (f"{epochs} epochs of {n} samples (batches of {bs}): {value:.0%} {what} as written; with {fix}: "
              f"{value_fixed:.0%}")
    return _result(metric, value, value_fixed, 0.5, verdict, detail)


__all__ = ["trace_count", "float16_output", "save_load", "shared_optimizer", "split_distribution",
           "steps_per_epoch", "sample_order", "SideEffects", "time"]
