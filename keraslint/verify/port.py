"""``verify --port`` (child process only): diff a user's own PyTorch port against their Keras model.

The program runs to its end with ``fit`` skipped; the Keras model and the ``torch.nn.Module``
are taken from its namespace (by name, or the last top-level one of each). Their leaf layers
are aligned by order and kind, the Keras weights are loaded into the module with the right
layouts (Dense transpose, HWIO→OIHW, LSTM/GRU gate order, BatchNorm statistics) unless the
script already copied them, and both run on the same inputs: Keras in inference mode, the
module in the mode the script left it in. Each aligned pair's output is compared (torch's
channels-first outputs moved to channels-last); the first layer above tolerance is the first
divergence, and the hazards that could explain it at that layer are removed one at a time
(.eval(), ε or momentum matched, TensorFlow's asymmetric padding, ``batch_first=True``, the
kernel transposed) until one closes it.
"""

from __future__ import annotations

import copy
import math

import numpy as np

from keraslint.verify.capture import run_target
from keraslint.verify.util import fmt_num

CONFIRMED, NOT_CONFIRMED, INCONCLUSIVE = "confirmed", "not-confirmed", "inconclusive"

# Keras layer class -> PyTorch module classes of the same kind
KINDS = {
    "Dense": ("Linear",), "Conv1D": ("Conv1d",), "Conv2D": ("Conv2d",),
    "BatchNormalization": ("BatchNorm1d", "BatchNorm2d"), "LayerNormalization": ("LayerNorm",),
    "Embedding": ("Embedding",), "LSTM": ("LSTM",), "GRU": ("GRU",), "Dropout": ("Dropout",),
    "MaxPooling1D": ("MaxPool1d",), "MaxPooling2D": ("MaxPool2d",), "AveragePooling2D": ("AvgPool2d",),
    "AveragePooling1D": ("AvgPool1d",), "GlobalAveragePooling2D": ("AdaptiveAvgPool2d",),
    "GlobalAveragePooling1D": ("AdaptiveAvgPool1d",), "Flatten": ("Flatten",), "ReLU": ("ReLU",),
}
ACT_MODULES = {"relu": "ReLU", "tanh": "Tanh", "sigmoid": "Sigmoid", "gelu": "GELU", "softmax": "Softmax"}


class PortError(Exception):
    pass


def _kind(layer) -> tuple:
    name = type(layer).__name__
    if name == "Activation":
        act = getattr(layer.activation, "__name__", "")
        return (ACT_MODULES[act],) if act in ACT_MODULES else ()
    return KINDS.get(name, ())


def _leaf_layers(model) -> list:
    out, seen = [], set()

    def walk(layer):
        for ly in layer._flatten_layers(include_self=False, recursive=False):
            if id(ly) in seen or type(ly).__name__ == "InputLayer":
                continue
            seen.add(id(ly))
            if type(ly).__name__ in KINDS or not ly._flatten_layers(include_self=False, recursive=False):
                out.append(ly)
            else:
                walk(ly)
    walk(model)
    return out


def _find(ns: dict, name, kind: str, made: list = ()):
    """(name, object): by name in the program's namespace, else the last top-level one there,
    else the last one the program built anywhere (inside functions) that is no part of another."""
    import keras
    import torch

    want = keras.Model if kind == "keras" else torch.nn.Module
    what = "Keras model" if kind == "keras" else "torch.nn.Module"
    if name:
        obj = ns.get(name)
        if isinstance(obj, want):
            return name, obj
        if not any(isinstance(v, want) for v in made):
            raise PortError(f"the program has no {what} named {name!r}")
    found = [(k, v) for k, v in ns.items() if isinstance(v, want) and not k.startswith("_")]
    if not found or name:
        objs = [v for v in made if isinstance(v, want)]
        if kind == "torch":
            subs = {id(m) for v in objs for m in v.modules() if m is not v}
        else:
            subs = {id(ly) for v in objs for ly in v._flatten_layers(include_self=False)}
            subs |= {id(getattr(v, "_functional", None)) for v in objs}  # a Sequential's inner graph
        objs = [v for v in objs if id(v) not in subs]
        if not objs:
            raise PortError(f"the program builds no {what}")
        label = f"<{type(objs[-1]).__name__} built in a function>"
        if name:
            label = f"{label} (no top-level {what} named {name!r})"
        return label, objs[-1]
    if kind == "torch":  # drop modules that are parts of another one
        subs = {id(m) for _, v in found for m in v.modules() if m is not v}
        found = [(k, v) for k, v in found if id(v) not in subs] or found
    else:
        subs = {id(ly) for _, v in found for ly in v._flatten_layers(include_self=False)}
        found = [(k, v) for k, v in found if id(v) not in subs] or found
    return found[-1]


def _inputs(cap, model):
    import keras

    for m, kind, args in cap.fits:
        if m is model and args.get("x") is not None:
            x = args["x"]
            try:
                return keras.tree.map_structure(lambda t: np.asarray(t)[:16], x)
            except Exception:  # noqa: BLE001
                break
    rng = np.random.default_rng(0)
    vocab = min([ly.input_dim for ly in _leaf_layers(model) if type(ly).__name__ == "Embedding"] or [2])
    arrays = []
    for t in model.inputs:
        shape = [8 if d is None else d for d in t.shape]
        if "int" in str(t.dtype):
            arrays.append(rng.integers(0, vocab, size=shape).astype(str(t.dtype)))
        else:
            arrays.append(rng.standard_normal(shape).astype("float32"))
    return arrays[0] if len(arrays) == 1 else arrays


def _keras_outputs(model, layers, x) -> dict:
    """id(layer) -> its first output on x (inference mode), recorded by wrapping each call."""
    import keras

    rec: dict = {}
    saved = []
    for ly in layers:
        orig = ly.call

        def call(*a, __orig=orig, __ly=ly, **k):
            y = __orig(*a, **k)
            rec.setdefault(id(__ly), y)
            return y
        ly.call = call
        saved.append((ly, orig))
    try:
        final = model(x, training=False)
    finally:
        for ly, orig in saved:
            try:
                del ly.call
            except AttributeError:
                ly.call = orig
    out = {k: np.asarray(keras.ops.convert_to_numpy(keras.tree.flatten(v)[0])) for k, v in rec.items()}
    return out, [np.asarray(keras.ops.convert_to_numpy(t)) for t in keras.tree.flatten(final)]


def _torch_leaves(module) -> list:
    return [(n, m) for n, m in module.named_modules() if not list(m.children()) and n]


def _align(layers, leaves) -> list:
    """[(keras layer, (name, module) | None)] in Keras order; torch modules matched by kind, in order."""
    pairs, j = [], 0
    for ly in layers:
        kinds = _kind(ly)
        if not kinds:
            continue
        k = j
        while k < len(leaves) and type(leaves[k][1]).__name__ not in kinds:
            k += 1
        if k < len(leaves):
            pairs.append((ly, leaves[k]))
            j = k + 1
        elif type(ly).__name__ not in ("Dropout", "Flatten", "ReLU", "Activation"):
            pairs.append((ly, None))
    return pairs


# ---------------------------------------------------------------------------
# weights
# ---------------------------------------------------------------------------


def _gru_order(a, units, axis):
    return np.concatenate([np.take(a, range(units, 2 * units), axis=axis), np.take(a, range(0, units), axis=axis),
                           np.take(a, range(2 * units, 3 * units), axis=axis)], axis=axis)


def _layouts(ly, mod) -> dict:
    """torch parameter/buffer name -> the Keras value in the right layout."""
    name = type(ly).__name__
    w = [np.asarray(v.numpy(), "float32") for v in ly.weights]
    if name == "Dense":
        return {"weight": w[0].T, **({"bias": w[1]} if len(w) > 1 else {})}
    if name in ("Conv1D", "Conv2D"):
        perm = (2, 1, 0) if name == "Conv1D" else (3, 2, 0, 1)
        return {"weight": np.transpose(w[0], perm), **({"bias": w[1]} if len(w) > 1 else {})}
    if name == "BatchNormalization":
        i, out = 0, {}
        if ly.scale:
            out["weight"] = w[i]
            i += 1
        if ly.center:
            out["bias"] = w[i]
            i += 1
        out["running_mean"], out["running_var"] = w[i], w[i + 1]
        return out
    if name == "LayerNormalization":
        i, out = 0, {}
        if ly.scale:
            out["weight"] = w[i]
            i += 1
        if ly.center:
            out["bias"] = w[i]
        return out
    if name == "Embedding":
        return {"weight": w[0]}
    if name == "LSTM":
        b = w[2] if len(w) > 2 else np.zeros(w[1].shape[1], "float32")
        return {"weight_ih_l0": w[0].T, "weight_hh_l0": w[1].T, "bias_ih_l0": b, "bias_hh_l0": np.zeros_like(b)}
    if name == "GRU":
        u = ly.units
        b = w[2] if len(w) > 2 else np.zeros((2, 3 * u), "float32")
        return {"weight_ih_l0": _gru_order(w[0], u, 1).T, "weight_hh_l0": _gru_order(w[1], u, 1).T,
                "bias_ih_l0": _gru_order(b[0], u, 0), "bias_hh_l0": _gru_order(b[1], u, 0)}
    return {}


def _untransposed(ly, target: dict) -> dict:
    """The same values copied the wrong way (reshape instead of transpose/permute)."""
    name = type(ly).__name__
    w = [np.asarray(v.numpy(), "float32") for v in ly.weights]
    if name in ("Dense", "Conv1D", "Conv2D"):
        return dict(target, weight=w[0].reshape(target["weight"].shape))
    return target


def _load(ly, mod, values: dict) -> None:
    import torch

    with torch.no_grad():
        for k, v in values.items():
            t = getattr(mod, k, None)
            if t is None:
                continue
            if tuple(t.shape) != tuple(v.shape):
                raise PortError(f"{ly.name} ({type(ly).__name__}) has shape {v.shape} for {k}, the torch module "
                                f"{tuple(t.shape)}")
            t.copy_(torch.as_tensor(np.ascontiguousarray(v), dtype=t.dtype))


def _state(ly, mod) -> str:
    """'correct' | 'untransposed' | 'other': what the script itself put into the module."""
    vals = _layouts(ly, mod)
    if not vals:
        return "correct"
    cur = {k: getattr(mod, k).detach().cpu().numpy() for k in vals if getattr(mod, k, None) is not None}
    if all(cur[k].shape == v.shape and np.allclose(cur[k], v, atol=1e-6) for k, v in vals.items() if k in cur):
        return "correct"
    wrong = _untransposed(ly, vals)
    if "weight" in cur and cur["weight"].shape == wrong["weight"].shape and np.allclose(
            cur["weight"], wrong["weight"], atol=1e-6) and not np.allclose(wrong["weight"], vals["weight"]):
        return "untransposed"
    # the script copied the Keras values, but in another layout (e.g. LSTM/GRU gates reordered wrongly)
    if all(k in cur and cur[k].size == v.size and v.size > 1 and np.allclose(np.sort(cur[k], axis=None),
                                                                           np.sort(v, axis=None), atol=1e-6)
           for k, v in vals.items()) and any(not np.allclose(cur[k].reshape(v.shape), v) for k, v in vals.items()):
        return "misplaced"
    return "other"


# ---------------------------------------------------------------------------
# running and comparing
# ---------------------------------------------------------------------------


def _torch_inputs(x, module, channels_first: bool):
    import keras
    import torch

    flat = [np.asarray(a) for a in keras.tree.flatten(x)]
    out = []
    for a in flat:
        t = torch.as_tensor(a if a.dtype.kind != "f" else a.astype("float32"))
        if channels_first and a.dtype.kind == "f" and a.ndim in (3, 4):
            t = t.movedim(-1, 1)
        out.append(t)
    return out


def _run_torch(module, leaves, inputs) -> tuple:
    import torch

    rec: dict = {}
    hooks = []
    for name, m in leaves:
        def hook(mod, args, out, __n=name):
            if __n not in rec:
                o = out[0] if isinstance(out, tuple) else out
                rec[__n] = o.detach().cpu().numpy()
        hooks.append(m.register_forward_hook(hook))
    try:
        with torch.no_grad():
            out = module(*inputs)
    finally:
        for h in hooks:
            h.remove()
    outs = out if isinstance(out, (tuple, list)) else [out]
    return rec, [o.detach().cpu().numpy() for o in outs if hasattr(o, "detach")]


_CF = ("Conv1d", "Conv2d", "BatchNorm1d", "BatchNorm2d", "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d",
       "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "Dropout2d", "Dropout1d")
_CL = ("Linear", "LSTM", "GRU", "RNN", "Embedding", "LayerNorm", "Flatten")


def _layouts_of(leaves, channels_first: bool) -> dict:
    """module name -> True when its output is channels-first (follows the data through the leaves)."""
    out, cf = {}, channels_first
    for name, m in leaves:
        t = type(m).__name__
        if t in _CF:
            cf = True if t not in ("BatchNorm1d",) or cf else cf
        elif t in _CL:
            cf = False
        out[name] = cf
    return out


def _to_keras_layout(t: np.ndarray, k: np.ndarray, ly, cf: bool = False) -> np.ndarray:
    if cf and t.ndim >= 3:
        moved = np.moveaxis(t, 1, -1)
        if moved.shape == k.shape:
            return moved
        if moved.size == k.size and tuple(d for d in moved.shape if d != 1) == tuple(d for d in k.shape if d != 1):
            return moved.reshape(k.shape)
    if t.shape == k.shape:
        return t
    if t.size == k.size and tuple(d for d in t.shape if d != 1) == tuple(d for d in k.shape if d != 1):
        return t.reshape(k.shape)
    if t.ndim == k.ndim and t.ndim >= 3:
        moved = np.moveaxis(t, 1, -1)
        if moved.shape == k.shape:
            return moved
    if type(ly).__name__ in ("LSTM", "GRU") and t.ndim == 3 and k.ndim == 2 and t[:, -1].shape == k.shape:
        return t[:, -1]
    return t


def _act(ly, t):
    act = getattr(getattr(ly, "activation", None), "__name__", "linear")
    if act in ("linear", None) or type(ly).__name__ not in ("Dense", "Conv1D", "Conv2D"):
        return t
    fns = {"relu": lambda a: np.maximum(a, 0), "tanh": np.tanh, "sigmoid": lambda a: 1 / (1 + np.exp(-a)),
           "softmax": lambda a: np.exp(a - a.max(-1, keepdims=True)) / np.exp(a - a.max(-1, keepdims=True)).sum(-1, keepdims=True)}
    return fns[act](t) if act in fns else t


def _compare(pairs, k_rec, t_rec, cf_map=None) -> list:
    rows = []
    for ly, tm in pairs:
        k = k_rec.get(id(ly))
        if tm is None or k is None or tm[0] not in t_rec:
            rows.append(None)
            continue
        t = _to_keras_layout(_act(ly, t_rec[tm[0]]), k, ly, bool((cf_map or {}).get(tm[0])))
        if t.shape != k.shape:
            rows.append(float("inf"))
            continue
        rows.append(float(np.max(np.abs(t.astype("float64") - k.astype("float64")))) if k.size else 0.0)
    return rows


def _tol(k_rec, ly) -> float:
    k = k_rec.get(id(ly))
    scale = float(np.max(np.abs(k))) if k is not None and k.size else 1.0
    return 1e-5 * max(1.0, scale)


# ---------------------------------------------------------------------------
# hazards at the first divergent pair
# ---------------------------------------------------------------------------


def _tf_same_pads(size, k, s, d=1):
    out = math.ceil(size / s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def _candidates(ly, mod, module, kstate) -> list:
    """[(code, description, fix(module_copy, mod_copy))] that could explain a divergence at (ly, mod)."""
    import torch.nn.functional as F

    out = []
    name, tname = type(ly).__name__, type(mod).__name__
    if kstate in ("untransposed", "misplaced"):
        def fix_t(m_all, m):
            _load(ly, m, _layouts(ly, m))
        code = "KL604" if name in ("Dense", "Conv1D", "Conv2D") else None
        out.append((code, f"the script copied the {name} weights in the wrong layout; loaded "
                          f"{'transposed' if name in ('Dense', 'Conv1D', 'Conv2D') else 'in the right layout'}", fix_t))
    if any(sub.training for sub in module.modules()) and (
            tname.startswith(("Dropout", "BatchNorm")) or any(type(s).__name__.startswith(("Dropout", "BatchNorm"))
                                                             for s in module.modules())):
        out.append(("KL607", "the module was left in training mode; .eval() called", lambda m_all, m: m_all.eval()))
    if name == "BatchNormalization" and tname.startswith("BatchNorm"):
        if not math.isclose(mod.eps, ly.epsilon, rel_tol=1e-6):
            def fix_bn(m_all, m):
                m.eps = float(ly.epsilon)
                if m.momentum is not None:
                    m.momentum = 1.0 - float(ly.momentum)
            out.append(("KL601", f"BatchNorm eps {mod.eps:g} vs Keras epsilon {ly.epsilon:g}; eps and momentum matched",
                        fix_bn))
    if name == "LayerNormalization" and tname == "LayerNorm" and not math.isclose(mod.eps, ly.epsilon, rel_tol=1e-6):
        def fix_ln(m_all, m):
            m.eps = float(ly.epsilon)
        out.append(("KL602", f"LayerNorm eps {mod.eps:g} vs Keras epsilon {ly.epsilon:g}; eps matched", fix_ln))
    if name in ("Conv1D", "Conv2D") and ly.get_config().get("padding") == "same" and max(ly.get_config()["strides"]) > 1:
        cfg = ly.get_config()
        ks, st, dil = tuple(cfg["kernel_size"]), tuple(cfg["strides"]), tuple(cfg["dilation_rate"])

        def fix_pad(m_all, m):
            nd = len(ks)
            m.padding = (0,) * nd

            def pre(mod_, args):
                h = args[0]
                pads = []
                for i in reversed(range(nd)):
                    pads += list(_tf_same_pads(h.shape[2 + i], ks[i], st[i], dil[i]))
                return (F.pad(h, pads),) + tuple(args[1:])
            m.register_forward_pre_hook(pre)
        out.append(("KL605", f"padding={getattr(mod, 'padding', '?')} is symmetric, TensorFlow's 'same' with stride "
                             f"{st} pads asymmetrically; padded as TensorFlow does", fix_pad))
    if name in ("LSTM", "GRU") and tname in ("LSTM", "GRU") and not getattr(mod, "batch_first", True):
        def fix_bf(m_all, m):
            m.batch_first = True
        out.append(("KL606", f"nn.{tname} has batch_first=False but gets (batch, time, features); batch_first=True",
                    fix_bf))
    return out


def _path_get(module, dotted: str):
    m = module
    for part in dotted.split("."):
        m = getattr(m, part)
    return m


def port_rule(spec: dict) -> dict:
    """``--rule KL6xx`` on a program that builds its own PyTorch port: does this hazard affect
    *this* port? Every aligned layer where the hazard is present gets it removed at once, and
    max |Δ| there is compared before and after (KL601's momentum: the batch statistics after one
    training-mode step)."""
    return port_diff(dict(spec, options=dict(spec.get("options") or {}, rule=spec["code"])))


def _momentum_effect(model, module, pairs, x, channels_first) -> tuple:
    """(as written, momentum matched, n layers): max |Δ| of the BatchNorm moving means after one
    training-mode step of each side from the same statistics."""
    import keras
    import torch

    bns = [(ly, tm) for ly, tm in pairs if tm is not None and type(ly).__name__ == "BatchNormalization"
           and type(tm[1]).__name__.startswith("BatchNorm")]
    bad = [(ly, tm) for ly, tm in bns if tm[1].momentum is not None
           and not math.isclose(tm[1].momentum, 1.0 - ly.momentum, rel_tol=1e-6)]
    if not bad:
        return None
    saved = [np.asarray(v.numpy()) for v in model.weights]
    model(x, training=True)
    k_means = {id(ly): np.asarray(ly.moving_mean.numpy()) for ly, _ in bad}
    for v, a in zip(model.weights, saved):
        v.assign(a)
    out = []
    for matched in (False, True):
        m = copy.deepcopy(module)
        if matched:
            for ly, tm in bad:
                _path_get(m, tm[0]).momentum = 1.0 - float(ly.momentum)
        m.train()
        with torch.no_grad():
            m(*_torch_inputs(x, m, channels_first))
        out.append(max(float(np.max(np.abs(_path_get(m, tm[0]).running_mean.numpy() - k_means[id(ly)])))
                       for ly, tm in bad))
    return out[0], out[1], len(bad)


def _rule_answer(rule, port, pairs, diffs, module, run, k_rec, states, model, x, channels_first) -> dict:
    hits = []
    for i, (ly, tm) in enumerate(pairs):
        if tm is None:
            continue
        for code, what, fix in _candidates(ly, tm[1], module, states.get(id(ly))):
            if code == rule and not (code == "KL607" and any(h[1] == "KL607" for h in hits)):
                hits.append((i, code, what, fix, tm[0]))
    base = {"port": port, "metric": "max_abs_diff", "series": {"as_written": diffs, "x": "layer"}}
    if not hits:
        if rule == "KL601":
            mom = _momentum_effect(model, module, pairs, x, channels_first)
            if mom is not None:
                a, f, n = mom
                tol = 1e-6
                return dict(base, verdict=CONFIRMED if a > tol else NOT_CONFIRMED, value=a, value_fixed=f,
                            tolerance=tol,
                            detail=f"your port's BatchNorm momentum differs from Keras's at {n} layer(s): after one "
                                   f"training-mode step the moving means differ by max |Δ| = {fmt_num(a)}; with "
                                   f"momentum = 1 - Keras momentum: {fmt_num(f)} (inference outputs are not affected)")
        why = {"KL601": "its batch norms use Keras's epsilon and momentum",
               "KL602": "its layer norms use Keras's epsilon", "KL604": "its kernels are in the right layout",
               "KL605": "no strided 'same' convolution is padded differently",
               "KL606": "its recurrent layers are batch_first=True (or none)", "KL607": "it is in eval mode"}.get(rule, "")
        return dict(base, verdict=NOT_CONFIRMED, value=0.0, value_fixed=0.0, tolerance=1e-5,
                    detail=f"your PyTorch port has no {rule} hazard: {why}; {len(pairs)} layers aligned")
    # the other hazards of the port removed first, so that this one is measured alone
    others = []
    for i, (ly, tm) in enumerate(pairs):
        if tm is None:
            continue
        for code, what, fix in _candidates(ly, tm[1], module, states.get(id(ly))):
            if code and code != rule:
                others.append((fix, tm[0]))
    base_mod = copy.deepcopy(module)
    for fix, name in others:
        fix(base_mod, _path_get(base_mod, name))
    d1, err1 = run(base_mod) if others else (diffs, None)
    if d1 is None:
        d1 = diffs
    trial = copy.deepcopy(base_mod)
    for i, code, what, fix, name in hits:
        fix(trial, _path_get(trial, name))
    d2, err = run(trial)
    if d2 is None:
        return dict(base, verdict=INCONCLUSIVE, value=None, value_fixed=None, tolerance=None,
                    detail=f"with {rule} removed the module fails: {err}")
    i0 = next((i for i, (ly, _) in enumerate(pairs) if d1[i] is not None and d1[i] > _tol(k_rec, ly)), None)
    if i0 is None:
        worst = max([d for d in d1 if d is not None] or [0.0])
        return dict(base, verdict=NOT_CONFIRMED, value=worst, value_fixed=max([d for d in d2 if d is not None] or [0.0]),
                    tolerance=1e-5, detail=f"your PyTorch port has the {rule} pattern ({hits[0][2]}) but no layer "
                                           f"output differs because of it (max |Δ| {fmt_num(worst)})")
    value, value_fixed = d1[i0], d2[i0]
    ly = pairs[i0][0]
    tol = _tol(k_rec, ly)
    verdict = CONFIRMED if value_fixed is not None and value_fixed < 0.5 * value else NOT_CONFIRMED
    detail = (f"your PyTorch port vs the Keras model, same weights and inputs"
              + (f", its other hazards removed ({len(others)})" if others else "")
              + f": {hits[0][2]}; first difference at {ly.name} ({type(ly).__name__}): max |Δ| = {fmt_num(value)} as "
                f"written, {fmt_num(value_fixed)} with it removed; all layers: "
                f"{fmt_num(max([d for d in d1 if d is not None] or [0]))} -> "
                f"{fmt_num(max([d for d in d2 if d is not None] or [0]))}")
    return dict(base, verdict=verdict, value=value, value_fixed=value_fixed, tolerance=tol, detail=detail,
                series={"as_written": d1, "fixed": d2, "x": "layer"})


def port_diff(spec: dict) -> dict:
    import keras
    import torch

    opts = spec.get("options") or {}
    made_torch: list = []
    had_new = "__new__" in torch.nn.Module.__dict__
    if not had_new:
        def module_new(cls, *a, **k):
            inst = object.__new__(cls)
            made_torch.append(inst)
            return inst
        torch.nn.Module.__new__ = module_new
    try:
        cap = run_target(spec["target"], 1, continue_after_fit=True, require_fit=False)
    finally:
        if not had_new:
            def plain_new(cls, *a, **k):
                return object.__new__(cls)
            torch.nn.Module.__new__ = plain_new
    ns = cap.namespace
    made_keras = [o for o in cap.constructed if isinstance(o, keras.Model)]
    try:
        k_name, model = _find(ns, opts.get("keras"), "keras", made_keras)
        t_name, module = _find(ns, opts.get("torch"), "torch", made_torch)
    except PortError as e:
        return {"error": str(e)}
    torch.manual_seed(0)
    torch.set_num_threads(1)
    if not model.built:
        raise PortError(f"the Keras model {k_name} was never built")
    x = _inputs(cap, model)
    layers = _leaf_layers(model)
    k_rec, k_final = _keras_outputs(model, layers, x)
    leaves = _torch_leaves(module)
    pairs = _align(layers, leaves)
    port = {"keras": k_name, "torch": t_name, "layers": [], "first_divergent": None, "code": None,
            "max_abs_diff_fixed": None, "detail": ""}
    if not pairs:
        port["detail"] = "no Keras layer could be aligned with a module of the same kind"
        return _answer(port, INCONCLUSIVE, None, None, port["detail"])
    unmatched = [ly.name for ly, tm in pairs if tm is None]
    states = {}
    for ly, tm in pairs:
        if tm is None:
            continue
        st = _state(ly, tm[1])
        states[id(ly)] = st
        if st == "other":
            _load(ly, tm[1], _layouts(ly, tm[1]))
    channels_first = any(type(m).__name__ in ("Conv1d", "Conv2d") for _, m in leaves[:3]) or (
        bool(leaves) and type(leaves[0][1]).__name__.startswith(("Conv", "BatchNorm2d", "MaxPool")))

    def run(mod_orig):
        errors = []
        for cf in (channels_first, not channels_first):
            mod_all = copy.deepcopy(mod_orig)  # a training-mode pass must not move the running statistics
            lv = _torch_leaves(mod_all)
            try:
                rec, final = _run_torch(mod_all, lv, _torch_inputs(x, mod_all, cf))
                pairs_here = [(ly, (tm[0], _path_get(mod_all, tm[0])) if tm else None) for ly, tm in pairs]
                return _compare(pairs_here, k_rec, rec, _layouts_of(lv, cf)), None
            except Exception as e:  # noqa: BLE001
                errors.append(f"{type(e).__name__}: {str(e).splitlines()[0][:150] if str(e) else ''}")
        return None, errors[0]

    diffs, err = run(module)
    if diffs is not None and opts.get("rule"):
        return _rule_answer(opts["rule"], port, pairs, diffs, module, run, k_rec, states, model, x, channels_first)
    if diffs is None:
        port["detail"] = f"the torch module fails on the Keras model's inputs: {err}"
        return _answer(port, INCONCLUSIVE, None, None, port["detail"])
    for i, ((ly, tm), d) in enumerate(zip(pairs, diffs)):
        port["layers"].append({"index": i, "keras_layer": f"{ly.name} ({type(ly).__name__})",
                               "torch_module": f"{tm[0]} ({type(tm[1]).__name__})" if tm else None,
                               "max_abs_diff": d})
    first = next((i for i, ((ly, tm), d) in enumerate(zip(pairs, diffs)) if d is not None and d > _tol(k_rec, ly)),
                 None)
    notes = []
    if unmatched:
        notes.append(f"no module of the same kind for {', '.join(unmatched[:3])}")
    loaded = sum(1 for s in states.values() if s == "other")
    copied = sum(1 for ly, tm in pairs if tm is not None and ly.weights and states.get(id(ly)) != "other")
    notes.append(f"{len(pairs)} layers aligned; Keras weights loaded into {loaded} modules"
                 + (f", {copied} already copied by the script" if copied else ""))
    if first is None:
        port["detail"] = "no layer diverges (max |Δ| ≤ 1e-5 × scale at every aligned layer); " + "; ".join(notes)
        worst = max([d for d in diffs if d is not None] or [0.0])
        return _answer(port, NOT_CONFIRMED, worst, worst, port["detail"], diffs)
    port["first_divergent"] = first
    ly, (tname, tmod) = pairs[first]
    tol_first = _tol(k_rec, ly)
    tried = []
    cands = _candidates(ly, tmod, module, states.get(id(ly)))
    attempts = [[c] for c in cands] + ([cands] if len(cands) > 1 else [])  # each alone, then all together
    for group in attempts:
        code, what = group[0][0], "; ".join(c[1] for c in group)
        if len(group) > 1:
            code = next((c[0] for c in group if c[0]), None)
        trial = copy.deepcopy(module)
        for c in group:
            c[2](trial, _path_get(trial, tname))
        d2, err2 = run(trial)
        if d2 is None:
            tried.append(f"{code}: fails ({err2})")
            continue
        if d2[first] is not None and d2[first] <= tol_first:
            port["code"] = code
            fixed_max = max([d for d in d2 if d is not None] or [0.0])
            port["max_abs_diff_fixed"] = fixed_max
            rest = next((i for i, ((l2, _), d) in enumerate(zip(pairs, d2)) if d is not None and d > _tol(k_rec, l2)),
                        None)
            port["detail"] = (f"first divergence at layer {first}: {ly.name} ({type(ly).__name__}) vs {tname} "
                              f"({type(tmod).__name__}), max |Δ| = {fmt_num(diffs[first])}; {code or 'no catalog code'}: {what}: max |Δ| "
                              f"{fmt_num(d2[first])} there, {fmt_num(fixed_max)} over all layers")
            if rest is not None:
                port["detail"] += f"; layer {rest} still diverges after this fix"
            port["detail"] += "; " + "; ".join(notes)
            return _answer(port, CONFIRMED if code else INCONCLUSIVE, diffs[first], fixed_max, port["detail"], diffs,
                           d2, code)
        tried.append(f"{code}: still {fmt_num(d2[first])}")
    port["detail"] = (f"first divergence at layer {first}: {ly.name} ({type(ly).__name__}) vs {tname} "
                      f"({type(tmod).__name__}), max |Δ| = {fmt_num(diffs[first])}; no known hazard explains it"
                      + (f" (tried {', '.join(tried)})" if tried else "") + "; " + "; ".join(notes))
    return _answer(port, INCONCLUSIVE, diffs[first], None, port["detail"], diffs)


def _answer(port, verdict, value, value_fixed, detail, diffs=None, fixed=None, code=None) -> dict:
    return {"port": port, "verdict": verdict, "metric": "max_abs_diff", "value": value, "value_fixed": value_fixed,
            "tolerance": 1e-5, "detail": detail, "code": code,
            "series": {"as_written": diffs or [], "fixed": fixed or [], "x": "layer"}}
