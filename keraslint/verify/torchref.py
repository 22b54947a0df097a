"""KL401 / KL6xx (child process only): a PyTorch reference built from the captured Keras model.

Supported layers: Dense, Conv1D/Conv2D, Max/AveragePooling1D/2D, Global pooling, Flatten,
Reshape, Dropout, BatchNormalization, LayerNormalization, Embedding, LSTM, GRU, Activation /
ReLU / Softmax and the usual activations, in a chain (Sequential or a chain-shaped functional
model). Tensors stay in Keras's channels-last layout between layers; convolutions and pooling
permute around the PyTorch op. Weights are copied with the right layout (Dense kernel (in, out)
→ weight (out, in); conv HWIO → OIHW; LSTM gates i,f,c,o = PyTorch's i,f,g,o; GRU z,r,h →
r,z,n with reset_after biases) and exported back for comparison.

Protocol: forward parity layer by layer (eval mode, hazard matched) must hold first, or the
result is inconclusive. Then N training steps of the Keras model (train_on_batch, its own
compiled optimizer) against two PyTorch runs from the same weights and batches: the reference
as a porter writes it with PyTorch's defaults (as written), and with the hazard's
hyperparameters matched to Keras (hazard removed). Dropout is disabled on both sides (masks
cannot match across frameworks). The metric is max |Δ| over the weights after each step;
BatchNorm moving variances are left out (PyTorch stores the unbiased batch variance, Keras the
biased one), moving means are in.
"""

from __future__ import annotations

import inspect
import math
from typing import Optional

import numpy as np

from keraslint.verify.capture import recompile, restore, snapshot, train_batch
from keraslint.verify.util import fmt_num

CONFIRMED, NOT_CONFIRMED, INCONCLUSIVE = "confirmed", "not-confirmed", "inconclusive"


class Unsupported(Exception):
    pass


def _act(name: str):
    import torch
    import torch.nn.functional as F

    table = {
        "linear": lambda x: x, "relu": F.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
        "softmax": lambda x: torch.softmax(x, dim=-1), "gelu": F.gelu, "elu": F.elu, "selu": F.selu,
        "softplus": F.softplus, "softsign": F.softsign, "swish": F.silu, "silu": F.silu,
        "exponential": torch.exp, "relu6": F.relu6, "hard_sigmoid": lambda x: torch.clamp(x / 6 + 0.5, 0, 1),
        "log_softmax": lambda x: torch.log_softmax(x, dim=-1),
        "leaky_relu": lambda x: F.leaky_relu(x, 0.2),
    }
    if name not in table:
        raise Unsupported(f"activation {name!r}")
    return table[name]


def _act_name(layer) -> str:
    act = getattr(layer, "activation", None)
    return "linear" if act is None else getattr(act, "__name__", str(act))


def _same_pad(size: int, k: int, s: int, d: int = 1):
    out = math.ceil(size / s)
    total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


class Conv:
    """Keras Conv1D/Conv2D/pooling in channels-last layout around a PyTorch op."""


def build(layer, settings: dict):
    """(forward(x_torch, training) -> y, params: list[tensor], export() -> list[np], skip: set) for one layer."""
    import torch
    import torch.nn.functional as F

    name = type(layer).__name__
    w = [np.asarray(v.numpy(), dtype="float32") for v in layer.weights]
    T = lambda a: torch.tensor(np.ascontiguousarray(a), dtype=torch.float32, requires_grad=True)  # noqa: E731
    cfg = layer.get_config()
    if cfg.get("data_format", "channels_last") not in ("channels_last", None):
        raise Unsupported(f"{name} with data_format={cfg.get('data_format')}")

    if name == "Dense":
        act = _act(_act_name(layer))
        if settings.get("no_transpose") and w[0].shape[0] == w[0].shape[1]:
            kernel = T(w[0].reshape(w[0].shape[1], w[0].shape[0]))
            settings.setdefault("notes", []).append(f"{layer.name} {w[0].shape} copied as is")
        else:
            kernel = T(w[0].T)
        bias = T(w[1]) if layer.use_bias else None
        params = [kernel] + ([bias] if bias is not None else [])

        def fwd(x, training):
            pre = F.linear(x, kernel, bias)
            return act(pre), pre
        return fwd, params, lambda: [kernel.detach().numpy().T] + ([bias.detach().numpy()] if bias is not None else []), set()

    if name in ("Conv1D", "Conv2D"):
        nd = 1 if name == "Conv1D" else 2
        if cfg.get("groups", 1) != 1:
            raise Unsupported(f"{name} with groups")
        act = _act(_act_name(layer))
        perm = (2, 1, 0) if nd == 1 else (3, 2, 0, 1)
        inv = (2, 1, 0) if nd == 1 else (2, 3, 1, 0)
        kernel = T(np.transpose(w[0], perm) if not settings.get("no_transpose") else
                   w[0].reshape(np.transpose(w[0], perm).shape))
        if settings.get("no_transpose"):
            settings.setdefault("notes", []).append(f"{layer.name} kernel {w[0].shape} reshaped, not permuted")
        bias = T(w[1]) if layer.use_bias else None
        strides, dil, ks = tuple(cfg["strides"]), tuple(cfg["dilation_rate"]), tuple(cfg["kernel_size"])
        symmetric = bool(settings.get("symmetric_padding"))
        padding = cfg["padding"]
        if padding not in ("valid", "same"):
            raise Unsupported(f"{name} padding={padding!r}")
        conv = F.conv1d if nd == 1 else F.conv2d

        def fwd(x, training):
            h = x.movedim(-1, 1)
            if padding == "same":
                pads = []
                for i in reversed(range(nd)):
                    if symmetric:  # what a port writes: padding=k//2 on both sides
                        p = (ks[i] - 1) * dil[i] // 2
                        pads += [p, p]
                    else:
                        pads += list(_same_pad(h.shape[2 + i], ks[i], strides[i], dil[i]))
                h = F.pad(h, pads)
            pre = conv(h, kernel, bias, stride=strides, dilation=dil).movedim(1, -1)
            return act(pre), pre
        return (fwd, [kernel] + ([bias] if bias is not None else []),
                lambda: [np.transpose(kernel.detach().numpy(), inv)] + ([bias.detach().numpy()] if bias is not None else []),
                set())

    if name in ("MaxPooling1D", "MaxPooling2D", "AveragePooling1D", "AveragePooling2D"):
        nd = 1 if name.endswith("1D") else 2
        pool, strides, padding = tuple(cfg["pool_size"]), tuple(cfg["strides"] or cfg["pool_size"]), cfg["padding"]
        is_max = name.startswith("Max")
        if padding != "valid" and not is_max:
            raise Unsupported(f"{name} with padding='same'")
        op = {(1, True): F.max_pool1d, (2, True): F.max_pool2d, (1, False): F.avg_pool1d, (2, False): F.avg_pool2d}[(nd, is_max)]

        def fwd(x, training):
            h = x.movedim(-1, 1)
            if padding == "same":
                pads = []
                for i in reversed(range(nd)):
                    pads += list(_same_pad(h.shape[2 + i], pool[i], strides[i]))
                h = F.pad(h, pads, value=-float("inf"))
            y = op(h, pool, strides).movedim(1, -1)
            return y, y
        return fwd, [], lambda: [], set()

    if name in ("GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling1D", "GlobalMaxPooling2D"):
        if cfg.get("keepdims"):
            raise Unsupported(f"{name} with keepdims")
        dims = (1,) if name.endswith("1D") else (1, 2)
        is_max = "Max" in name

        def fwd(x, training):
            y = x.amax(dim=dims) if is_max else x.mean(dim=dims)
            return y, y
        return fwd, [], lambda: [], set()

    if name == "Flatten":
        return (lambda x, training: (x.reshape(x.shape[0], -1),) * 2), [], lambda: [], set()

    if name == "Reshape":
        shape = tuple(cfg["target_shape"])
        return (lambda x, training: (x.reshape((x.shape[0],) + shape),) * 2), [], lambda: [], set()

    if name == "Dropout":
        rate = float(cfg.get("rate", 0.0))

        def fwd(x, training):
            y = F.dropout(x, rate, training=training) if rate > 0 else x
            return y, y
        return fwd, [], lambda: [], set()

    if name in ("InputLayer", "SpatialDropout1D", "SpatialDropout2D", "GaussianNoise", "GaussianDropout"):
        return (lambda x, training: (x, x)), [], lambda: [], set()

    if name in ("Activation", "ReLU", "Softmax"):
        if name == "ReLU":
            if cfg.get("max_value") is not None or cfg.get("negative_slope", 0) or cfg.get("threshold", 0):
                raise Unsupported("ReLU with max_value/negative_slope/threshold")
            act = F.relu
        elif name == "Softmax":
            if cfg.get("axis", -1) != -1:
                raise Unsupported("Softmax with axis != -1")
            act = _act("softmax")
        else:
            act = _act(_act_name(layer))
        return (lambda x, training: (act(x), x)), [], lambda: [], set()

    if name == "BatchNormalization":
        if cfg.get("axis", -1) not in (-1, len(layer.input.shape) - 1 if hasattr(layer, "input") else -1):
            raise Unsupported("BatchNormalization on an axis other than the last")
        if cfg.get("renorm") or cfg.get("synchronized"):
            raise Unsupported("BatchNormalization with renorm/synchronized")
        i = 0
        gamma = T(w[i]) if layer.scale else None
        i += 1 if layer.scale else 0
        beta = T(w[i]) if layer.center else None
        i += 1 if layer.center else 0
        rmean = torch.tensor(w[i].copy())
        rvar = torch.tensor(w[i + 1].copy())
        mom, eps = settings["bn_momentum"](layer), settings["bn_eps"](layer)

        def fwd(x, training):
            h = x.movedim(-1, 1)
            y = F.batch_norm(h, rmean, rvar, gamma, beta, training=training, momentum=mom, eps=eps).movedim(1, -1)
            return y, y
        params = [p for p in (gamma, beta) if p is not None]

        def export():
            out = [p.detach().numpy() for p in params]
            return out + [rmean.numpy().copy(), rvar.numpy().copy()]
        return fwd, params, export, {len(params) + 1}

    if name == "LayerNormalization":
        axis = cfg.get("axis", -1)
        if axis not in (-1, [-1]) and axis != [len(layer.input.shape) - 1] and axis != len(layer.input.shape) - 1:
            raise Unsupported("LayerNormalization over axes other than the last")
        if cfg.get("rms_scaling"):
            raise Unsupported("LayerNormalization with rms_scaling")
        i = 0
        gamma = T(w[i]) if layer.scale else None
        i += 1 if layer.scale else 0
        beta = T(w[i]) if layer.center else None
        eps = settings["ln_eps"](layer)
        params = [p for p in (gamma, beta) if p is not None]

        def fwd(x, training):
            y = F.layer_norm(x, (x.shape[-1],), gamma, beta, eps)
            return y, y
        return fwd, params, lambda: [p.detach().numpy() for p in params], set()

    if name == "Embedding":
        table = T(w[0])

        def fwd(x, training):
            y = F.embedding(x.long(), table)
            return y, y
        return fwd, [table], lambda: [table.detach().numpy()], set()

    if name in ("LSTM", "GRU"):
        if cfg.get("go_backwards") or cfg.get("stateful") or cfg.get("return_state"):
            raise Unsupported(f"{name} with go_backwards/stateful/return_state")
        if _act_name(layer) != "tanh" or getattr(layer.cell.recurrent_activation, "__name__", "") != "sigmoid":
            raise Unsupported(f"{name} with non-default activations")
        units = layer.units
        seqs = cfg.get("return_sequences", False)
        k, rk = w[0], w[1]
        if name == "LSTM":
            mod = torch.nn.LSTM(k.shape[0], units, batch_first=True)
            b = w[2] if layer.cell.use_bias else np.zeros(4 * units, "float32")
            wih, whh, bih, bhh = k.T, rk.T, b, np.zeros_like(b)
        else:
            if not cfg.get("reset_after", True):
                raise Unsupported("GRU with reset_after=False")
            mod = torch.nn.GRU(k.shape[0], units, batch_first=True)
            b = w[2] if layer.cell.use_bias else np.zeros((2, 3 * units), "float32")
            order = lambda a, ax: np.concatenate([np.take(a, range(units, 2 * units), axis=ax),   # noqa: E731
                                                  np.take(a, range(0, units), axis=ax),
                                                  np.take(a, range(2 * units, 3 * units), axis=ax)], axis=ax)
            wih, whh, bih, bhh = order(k, 1).T, order(rk, 1).T, order(b[0], 0), order(b[1], 0)
        with torch.no_grad():
            mod.weight_ih_l0.copy_(torch.tensor(np.ascontiguousarray(wih)))
            mod.weight_hh_l0.copy_(torch.tensor(np.ascontiguousarray(whh)))
            mod.bias_ih_l0.copy_(torch.tensor(np.ascontiguousarray(bih)))
            mod.bias_hh_l0.copy_(torch.tensor(np.ascontiguousarray(bhh)))
        params = list(mod.parameters())

        time_major = bool(settings.get("rnn_time_major"))

        def fwd(x, training):
            if time_major:  # batch_first=False fed (batch, time, features): the batch axis is read as time
                out, _ = mod(x.transpose(0, 1))
                out = out.transpose(0, 1)
            else:
                out, _ = mod(x)
            y = out if seqs else out[:, -1]
            return y, y

        def export():
            wi, wh = mod.weight_ih_l0.detach().numpy(), mod.weight_hh_l0.detach().numpy()
            bi, bh = mod.bias_ih_l0.detach().numpy(), mod.bias_hh_l0.detach().numpy()
            if name == "LSTM":
                return [wi.T, wh.T] + ([bi + bh] if layer.cell.use_bias else [])
            back = lambda a, ax: np.concatenate([np.take(a, range(units, 2 * units), axis=ax),  # noqa: E731
                                                 np.take(a, range(0, units), axis=ax),
                                                 np.take(a, range(2 * units, 3 * units), axis=ax)], axis=ax)
            return [back(wi.T, 1), back(wh.T, 1)] + ([np.stack([back(bi, 0), back(bh, 0)])] if layer.cell.use_bias else [])
        return fwd, params, export, set()

    raise Unsupported(f"layer {name}")


# ---------------------------------------------------------------------------
# optimizers and losses
# ---------------------------------------------------------------------------


def _torch_defaults(cls) -> dict:
    return {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()
            if p.default is not inspect.Parameter.empty}


def torch_optimizer(kopt, params, use_torch_defaults: bool):
    """The PyTorch optimizer a porter writes: Keras's hyperparameters, or PyTorch's defaults."""
    import torch

    name = type(kopt).__name__
    c = kopt.get_config()
    lr = c["learning_rate"]
    if not isinstance(lr, (int, float)):
        raise Unsupported("a learning-rate schedule")
    lr = float(f"{lr:.7g}")  # Keras stores it as float32
    c = {k: float(f"{v:.7g}") if isinstance(v, float) else v for k, v in c.items()}
    if name == "SGD":
        cls, mine = torch.optim.SGD, {"lr": lr, "momentum": c.get("momentum", 0.0), "nesterov": c.get("nesterov", False)}
    elif name in ("Adam", "AdamW"):
        cls = torch.optim.Adam if name == "Adam" else torch.optim.AdamW
        mine = {"lr": lr, "betas": (c["beta_1"], c["beta_2"]), "eps": c["epsilon"], "amsgrad": c.get("amsgrad", False)}
        if name == "AdamW":
            mine["weight_decay"] = c.get("weight_decay") or 0.0
    elif name == "RMSprop":
        cls = torch.optim.RMSprop
        mine = {"lr": lr, "alpha": c["rho"], "eps": c["epsilon"], "momentum": c.get("momentum", 0.0),
                "centered": c.get("centered", False)}
    elif name == "Adagrad":
        cls = torch.optim.Adagrad
        mine = {"lr": lr, "eps": c["epsilon"], "initial_accumulator_value": c["initial_accumulator_value"]}
    else:
        raise Unsupported(f"optimizer {name}")
    if name != "AdamW" and c.get("weight_decay"):
        raise Unsupported(f"{name} with weight_decay")
    if use_torch_defaults:
        # what a porter writes: the values the Keras code states (those that differ from Keras's
        # defaults) are copied, the ones it leaves implicit take PyTorch's defaults
        d = _torch_defaults(cls)
        kd = type(kopt)().get_config()
        kd = {k: float(f"{v:.7g}") if isinstance(v, float) else v for k, v in kd.items()}
        keras_key = {"lr": "learning_rate", "eps": "epsilon", "alpha": "rho", "momentum": "momentum",
                     "nesterov": "nesterov", "amsgrad": "amsgrad", "centered": "centered",
                     "weight_decay": "weight_decay", "initial_accumulator_value": "initial_accumulator_value"}
        stated = getattr(kopt, "_keraslint_explicit", None)  # the constructor's keywords, if the user built it
        kw = {}
        for k, v in mine.items():
            kk = keras_key.get(k, k)
            if stated is not None:
                explicit = ({"beta_1", "beta_2"} & stated) if k == "betas" else kk in stated
            elif k == "betas":
                explicit = (c.get("beta_1"), c.get("beta_2")) != (kd.get("beta_1"), kd.get("beta_2"))
            else:
                explicit = kk in c and c.get(kk) != kd.get(kk)
            kw[k] = v if explicit or k not in d else d[k]
        if kw.get("lr") is None:
            kw["lr"] = lr
    else:
        kw = mine
    return cls(params, **kw), kw


def _loss_spec(loss):
    import keras

    if isinstance(loss, str):
        n = loss.lower()
        alias = {"mse": "mean_squared_error", "mae": "mean_absolute_error", "bce": "binary_crossentropy",
                 "cce": "categorical_crossentropy"}
        return alias.get(n, n), False
    if isinstance(loss, keras.losses.Loss):
        cfg = loss.get_config()
        n = {"MeanSquaredError": "mean_squared_error", "MeanAbsoluteError": "mean_absolute_error",
             "BinaryCrossentropy": "binary_crossentropy", "CategoricalCrossentropy": "categorical_crossentropy",
             "SparseCategoricalCrossentropy": "sparse_categorical_crossentropy"}.get(type(loss).__name__)
        if n is None or cfg.get("label_smoothing") or cfg.get("reduction", "sum_over_batch_size") != "sum_over_batch_size":
            raise Unsupported(f"loss {type(loss).__name__}")
        return n, bool(cfg.get("from_logits", False))
    n = getattr(loss, "__name__", None)
    if n in ("mean_squared_error", "mean_absolute_error", "binary_crossentropy", "categorical_crossentropy",
             "sparse_categorical_crossentropy"):
        return n, False
    raise Unsupported(f"loss {loss!r}")


def torch_loss(name: str, from_logits: bool, final_act: str, backend: str):
    """Keras's loss (sum_over_batch_size), including the TF backend's use of cached logits."""
    import torch
    import torch.nn.functional as F

    eps = 1e-7
    cached = backend == "tensorflow"

    def loss(out, pre, y):
        if name == "mean_squared_error":
            return ((out - y) ** 2).mean()
        if name == "mean_absolute_error":
            return (out - y).abs().mean()
        if name == "binary_crossentropy":
            if from_logits or (cached and final_act == "sigmoid"):
                z = pre if (final_act == "sigmoid" and cached) else out
                return F.binary_cross_entropy_with_logits(z, y.to(z.dtype))
            p = out.clamp(eps, 1 - eps)
            return -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()
        if name in ("categorical_crossentropy", "sparse_categorical_crossentropy"):
            if name == "sparse_categorical_crossentropy":
                y = F.one_hot(y.long().reshape(out.shape[:-1]), out.shape[-1]).to(out.dtype)
            if from_logits or (cached and final_act == "softmax"):
                z = pre if (final_act == "softmax" and cached) else out
                return -(y * torch.log_softmax(z, dim=-1)).sum(-1).mean()
            p = out / out.sum(-1, keepdim=True)
            p = p.clamp(eps, 1 - eps)
            return -(y * torch.log(p)).sum(-1).mean()
        raise Unsupported(f"loss {name}")
    return loss


# ---------------------------------------------------------------------------
# the experiment
# ---------------------------------------------------------------------------


def _settings(code: str, arm: str) -> dict:
    import torch

    bn_d = _torch_defaults(torch.nn.BatchNorm1d)
    ln_d = _torch_defaults(torch.nn.LayerNorm)
    as_written = arm == "as_written"
    torch_bn = as_written and code == "KL601"
    torch_ln = as_written and code == "KL602"
    return {
        "bn_momentum": (lambda ly: bn_d["momentum"]) if torch_bn else (lambda ly: 1.0 - ly.momentum),
        "bn_eps": (lambda ly: bn_d["eps"]) if torch_bn else (lambda ly: ly.epsilon),
        "ln_eps": (lambda ly: ln_d["eps"]) if torch_ln else (lambda ly: ly.epsilon),
        "torch_opt_defaults": as_written and code in ("KL401", "KL603"),
        "symmetric_padding": as_written and code == "KL605",
        "rnn_time_major": as_written and code == "KL606",
        "no_transpose": as_written and code == "KL604",
        "train_mode": as_written and code == "KL607",
    }


_MERGE = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate")
_OPS = {"Add": lambda a, b: a + b, "Subtract": lambda a, b: a - b, "Multiply": lambda a, b: a * b,
        "Divide": lambda a, b: a / b, "TrueDivide": lambda a, b: a / b}


def _merge(layer):
    import torch

    name = type(layer).__name__
    axis = layer.get_config().get("axis", -1) if name == "Concatenate" else None

    def fwd(xs, training):
        xs = list(xs)
        if name == "Add":
            y = sum(xs[1:], xs[0])
        elif name == "Subtract":
            y = xs[0] - xs[1]
        elif name == "Multiply":
            y = xs[0]
            for t in xs[1:]:
                y = y * t
        elif name == "Average":
            y = sum(xs[1:], xs[0]) / len(xs)
        elif name == "Maximum":
            y = torch.stack(xs).amax(0)
        elif name == "Minimum":
            y = torch.stack(xs).amin(0)
        else:
            y = torch.cat(xs, dim=axis)
        return y, y
    return fwd, [], lambda: [], set()


def _is_functional(model) -> bool:
    return hasattr(model, "_nodes_by_depth") and getattr(model, "inputs", None) is not None


class Graph:
    """A PyTorch forward for a Keras functional graph (several inputs and outputs, merge layers,
    shared layers, nested models), layer by layer; parameters are shared where Keras shares."""

    def __init__(self, model, settings: dict, parts: Optional[dict] = None):
        import keras

        self.settings = settings
        self.parts = {} if parts is None else parts      # id(layer) -> part (shared across nesting)
        self.order: list = []                             # leaf layers, first use first
        self.sub: dict = {}
        fn = getattr(model, "_functional", None) if not _is_functional(model) else model
        if fn is None or not _is_functional(fn):
            raise Unsupported(f"a subclassed model ({type(model).__name__}) whose layers cannot be walked one by one")
        self.fn = fn
        for depth in sorted(fn._nodes_by_depth, reverse=True):
            for node in fn._nodes_by_depth[depth]:
                op = node.operation
                if op is None or node.is_input:
                    continue
                if isinstance(op, keras.Model) or (hasattr(op, "_functional") and isinstance(op, keras.layers.Layer)
                                                   and getattr(op, "_functional", None) is not None):
                    if id(op) not in self.sub:
                        g = Graph(op, settings, self.parts)
                        self.sub[id(op)] = g
                        self.order += [ly for ly in g.order if ly not in self.order]
                    continue
                if not isinstance(op, keras.layers.Layer):
                    if type(op).__name__ not in _OPS:
                        raise Unsupported(f"operation {type(op).__name__} (a keras.ops call in the graph)")
                    continue
                if id(op) not in self.parts:
                    name = type(op).__name__
                    self.parts[id(op)] = _merge(op) if name in _MERGE else build(op, settings)
                if op not in self.order:
                    self.order.append(op)
        self.pre: dict = {}

    @property
    def params(self) -> list:
        seen, out = set(), []
        for ly in self.order:
            for p in self.parts[id(ly)][1]:
                if id(p) not in seen:
                    seen.add(id(p))
                    out.append(p)
        return out

    def _call(self, op, _training, *args, **kwargs):
        import keras

        training = _training

        if id(op) in self.sub:
            g = self.sub[id(op)]
            y = g.forward(list(keras.tree.flatten(args[0])), training)
            self.pre.update(g.pre)
            return y
        if not isinstance(op, keras.layers.Layer):
            return _OPS[type(op).__name__](*args[:2])
        fwd = self.parts[id(op)][0]
        y, pre = fwd(args[0], training)
        self.pre[id(op)] = pre
        return y

    def forward(self, inputs: list, training: bool):
        out = self.fn._run_through_graph(inputs, operation_fn=lambda op: op,
                                         call_fn=lambda op, *a, **k: self._call(op, training, *a, **k))
        return out

    def final_pre(self, out_index: int = 0):
        import keras

        op = keras.tree.flatten(self.fn.outputs)[out_index]._keras_history.operation
        return self.pre.get(id(op))

    def export(self) -> list:
        return [a for ly in self.order for a in self.parts[id(ly)][2]()]

    def keras_weights(self) -> list:
        return [np.asarray(v.numpy()) for ly in self.order for v in ly.weights]

    def skip(self) -> set:
        out, i = set(), 0
        for ly in self.order:
            part = self.parts[id(ly)]
            out |= {i + j for j in part[3]}
            i += len(part[2]())
        return out


def keras_inputs(model, x) -> list:
    import keras

    fn = getattr(model, "_functional", None) if not _is_functional(model) else model
    if isinstance(x, dict) and fn is not None:
        try:
            return list(fn._standardize_inputs(x))
        except Exception:  # noqa: BLE001
            pass
    return list(keras.tree.flatten(x))


def _to_torch(a):
    import torch

    a = np.asarray(a)
    return torch.tensor(a.astype("float32") if a.dtype.kind == "f" else a)


def _diff(a: list, b: list, skip: set) -> float:
    m = 0.0
    for i, (p, q) in enumerate(zip(a, b)):
        if i in skip:
            continue
        p, q = np.asarray(p, "float64"), np.asarray(q, "float64")
        if p.shape != q.shape:
            return float("inf")
        if p.size:
            m = max(m, float(np.max(np.abs(p - q))))
    return m


def _rates_to_zero(model) -> None:
    for ly in model._flatten_layers(include_self=False):
        if type(ly).__name__ in ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D"):
            ly.rate = 0.0


def _needs(code, model):
    needs = {"KL601": ("BatchNormalization",), "KL602": ("LayerNormalization",),
             "KL604": ("Dense", "Conv1D", "Conv2D"), "KL605": ("Conv1D", "Conv2D"),
             "KL606": ("LSTM", "GRU"), "KL607": ("Dropout", "BatchNormalization")}.get(code)
    if not needs:
        return None
    have = [ly for ly in model._flatten_layers(include_self=False) if type(ly).__name__ in needs]
    if code == "KL605":
        have = [ly for ly in have if ly.get_config().get("padding") == "same" and max(ly.get_config()["strides"]) > 1]
        if not have:
            return "the model has no convolution with padding='same' and a stride above 1: nothing to pad differently"
    if code == "KL604":
        have = [ly for ly in have if ly.weights]
    if not have:
        return f"the model has no {' or '.join(needs)} layer: nothing for {code} to change"
    return None


def _k_out(model, x) -> list:
    import keras

    return [np.asarray(keras.ops.convert_to_numpy(t)) for t in keras.tree.flatten(model(x, training=False))]


def _t_out(out) -> list:
    import keras

    return [t.detach().numpy() for t in keras.tree.flatten(out)]


def experiment(cap, spec: dict) -> dict:
    """KL401/KL601/KL603: N training steps, Keras vs the PyTorch reference (as written / hazard removed)."""
    import keras
    import torch

    code, steps = spec["code"], int(spec["steps"])
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = cap.model
    tol_fwd = 1e-4
    base = {"metric": "max_abs_diff", "series": {}}
    why = _needs(code, model)
    if why:
        return dict(base, value=0.0, value_fixed=0.0, tolerance=0.0, verdict=NOT_CONFIRMED, detail=why)
    x0 = cap.batches[0][0]
    try:
        _rates_to_zero(model)
        ref = Graph(model, _settings(code, "fixed"))
        n_out = len(keras.tree.flatten(model.outputs))
        if n_out != 1:
            raise Unsupported("training a model with several outputs")
        final = keras.tree.flatten(model.outputs)[0]._keras_history.operation
        final_act = "softmax" if type(final).__name__ == "Softmax" else _act_name(final)
        loss_name, from_logits = _loss_spec(cap.compile_kwargs.get("loss"))
        tloss = torch_loss(loss_name, from_logits, final_act, cap.backend)
        w0 = snapshot(model)
        # 1. forward parity (hazard matched, eval mode)
        k_out = _k_out(model, x0)
        with torch.no_grad():
            t_out = _t_out(ref.forward([_to_torch(a) for a in keras_inputs(model, x0)], False))
        worst = _diff(k_out, t_out, set())
        if worst > tol_fwd * max([1.0] + [float(np.max(np.abs(a))) for a in k_out if a.size]):
            return dict(base, value=None, value_fixed=None, tolerance=None, verdict=INCONCLUSIVE,
                        detail=f"the PyTorch reference does not reproduce the model's forward pass: max |Δ| = {fmt_num(worst)}")
    except Unsupported as e:
        if code in ("KL401", "KL603"):
            return {"retry_backend": "torch", "retry_mode": "torch-native", "verdict": INCONCLUSIVE,
                    "detail": f"no layer-by-layer PyTorch reference for {e}"}
        return dict(base, value=None, value_fixed=None, tolerance=None, verdict=INCONCLUSIVE,
                    detail=f"no PyTorch reference for {e}")

    # 2. training: Keras once, PyTorch as written and with the hazard removed
    restore(model, w0)
    recompile(cap, jit_compile=False)
    kopt_cfg = model.optimizer
    keras.utils.set_random_seed(1234)
    k_w = []
    for i in range(steps):
        x, y, sw = cap.batches[i % len(cap.batches)]
        train_batch(model, x, y, sw)
        k_w.append(ref.keras_weights())
    runs = {}
    try:
        for arm in ("as_written", "fixed"):
            restore(model, w0)
            st = _settings(code, arm)
            g = Graph(model, st)
            implicit = st["torch_opt_defaults"]
            opt, kw = torch_optimizer(kopt_cfg, g.params, implicit)
            skip = g.skip()
            series = []
            for i in range(steps):
                x, y, sw = cap.batches[i % len(cap.batches)]
                opt.zero_grad()
                out = g.forward([_to_torch(a) for a in keras_inputs(model, x)], True)
                out = keras.tree.flatten(out)[0]
                loss = tloss(out, g.final_pre(), _to_torch(keras.tree.flatten(y)[0]))
                loss.backward()
                opt.step()
                series.append(_diff(k_w[i], g.export(), skip))
            runs[arm] = (series, kw)
    except Unsupported as e:
        return dict(base, value=None, value_fixed=None, tolerance=None, verdict=INCONCLUSIVE,
                    detail=f"no PyTorch reference for {e}")
    (sa, kw_a), (sf, kw_f) = runs["as_written"], runs["fixed"]
    scale = max([1.0] + [float(np.max(np.abs(a))) for a in k_w[-1] if a.size])
    tol = 1e-4 * scale
    value, value_fixed = sa[-1], sf[-1]
    layers = ref.order
    same_opt = code in ("KL401", "KL603") and kw_a == kw_f
    verdict = CONFIRMED if value > tol and not same_opt else NOT_CONFIRMED
    what = {"KL401": "the optimizer", "KL603": "the optimizer", "KL601": "BatchNormalization"}.get(code, "the model")
    hz = _hazard_text(code, layers, kopt_cfg, kw_a, kw_f)
    detail = (f"Keras vs a PyTorch port ({len(layers)} layers walked from the graph, forward parity {fmt_num(worst)}) "
              f"after {steps} steps from the same weights and batches: max |Δ weight| = {fmt_num(value)} with PyTorch's "
              f"defaults for {what} ({hz}); {fmt_num(value_fixed)} with Keras's values")
    if same_opt:
        detail += "; the port's optimizer equals Keras's (PyTorch's defaults match, or the values are written out)"
    if code in ("KL401", "KL603") and type(kopt_cfg).__name__ in ("Adam", "AdamW") and value_fixed > tol:
        detail += "; the gap shrinks but cannot close: Keras adds ε to √v before bias correction, PyTorch to √v̂"
    if code == "KL601":
        detail += "; moving variances not compared (PyTorch stores the unbiased batch variance, Keras the biased one)"
    return {"metric": "max_abs_diff", "value": value, "value_fixed": value_fixed, "tolerance": tol, "verdict": verdict,
            "detail": detail, "series": {"as_written": sa, "fixed": sf}}


def torch_forward(spec: dict) -> dict:
    """KL602/KL604/KL605/KL606/KL607: the model's output vs the PyTorch reference as a port writes
    it (the hazard in place) and with the hazard removed; eval mode, same weights and batch."""
    import torch

    from keraslint.verify.capture import run_model

    code = spec["code"]
    cap = run_model(spec["target"], int(spec["steps"]))
    model = cap.model
    torch.manual_seed(0)
    torch.set_num_threads(1)
    why = _needs(code, model)
    if why:
        return {"metric": "max_abs_diff", "value": 0.0, "value_fixed": 0.0, "tolerance": 0.0,
                "verdict": NOT_CONFIRMED, "detail": why, "series": {}}
    x0 = cap.batches[0][0]
    k_out = _k_out(model, x0)
    scale = max([1.0] + [float(np.max(np.abs(a))) for a in k_out if a.size])
    tol = 1e-5 * scale
    vals, notes = {}, {}
    for arm in ("as_written", "fixed"):
        st = _settings(code, arm)
        try:
            g = Graph(model, st)
            with torch.no_grad():
                out = g.forward([_to_torch(a) for a in keras_inputs(model, x0)], bool(st.get("train_mode")))
            t_out = _t_out(out)
            vals[arm] = _diff(k_out, t_out, set())
            if arm == "as_written" and st.get("notes"):
                notes[arm] = "; ".join(st["notes"][:3])
            if vals[arm] == float("inf"):
                notes[arm] = f"output shapes differ: {[a.shape for a in t_out]} vs Keras {[a.shape for a in k_out]}"
        except Unsupported as e:
            if arm == "as_written" and "raises" in str(e):
                vals[arm], notes[arm] = float("inf"), str(e)
            else:
                return {"metric": "max_abs_diff", "value": None, "value_fixed": None, "tolerance": None,
                        "verdict": INCONCLUSIVE, "detail": f"no PyTorch reference for {e}", "series": {}}
    value, value_fixed = vals["as_written"], vals["fixed"]
    verdict = CONFIRMED if value > tol else NOT_CONFIRMED
    if value_fixed > tol:
        verdict = INCONCLUSIVE if value <= tol else verdict
    hazard = {
        "KL602": "nn.LayerNorm's default eps=1e-5 (Keras's: {})".format(
            ", ".join(sorted({f"{ly.epsilon:g}" for ly in model._flatten_layers() if type(ly).__name__ == "LayerNormalization"}))),
        "KL604": "kernels copied with reshape instead of a transpose/permute",
        "KL605": "symmetric padding=k//2 where TensorFlow's 'same' pads asymmetrically",
        "KL606": "nn.LSTM/nn.GRU with batch_first=False fed (batch, time, features)",
        "KL607": "the PyTorch module left in training mode (no .eval())",
    }[code]
    fix = {"KL602": "eps matched", "KL604": "the kernels transposed", "KL605": "TensorFlow's asymmetric padding",
           "KL606": "batch_first=True", "KL607": ".eval() called"}[code]
    detail = (f"Keras vs a PyTorch port on one batch, same weights: max |Δ output| = {fmt_num(value)} with {hazard}"
              + (f" ({notes['as_written']})" if "as_written" in notes else "")
              + f"; {fmt_num(value_fixed)} with {fix}")
    if code == "KL605" and verdict == NOT_CONFIRMED:
        detail += " (at these input sizes both paddings are the same)"
    return {"metric": "max_abs_diff", "value": value, "value_fixed": value_fixed, "tolerance": tol,
            "verdict": verdict, "detail": detail, "series": {"as_written": [value], "fixed": [value_fixed]}}


def torch_native(spec: dict) -> dict:
    """KL401/KL603 for subclassed models: on the Keras torch backend the model's variables are
    torch parameters, so the same forward pass trained by torch.optim (PyTorch's defaults as a
    port writes them, and Keras's values) is compared with Keras's own optimizer."""
    import keras
    import torch

    from keraslint.verify.capture import run_model

    code, steps = spec["code"], int(spec["steps"])
    cap = run_model(spec["target"], steps)
    if cap.backend != "torch":
        return {"error": "the torch-backend reference needs KERAS_BACKEND=torch"}
    model = cap.model
    torch.manual_seed(0)
    _rates_to_zero(model)
    w0 = snapshot(model)
    recompile(cap, jit_compile=False)
    kopt = model.optimizer
    keras.utils.set_random_seed(1234)
    k_w = []
    for i in range(steps):
        x, y, sw = cap.batches[i % len(cap.batches)]
        train_batch(model, x, y, sw)
        k_w.append([np.asarray(keras.ops.convert_to_numpy(v)) for v in model.trainable_variables])
    runs = {}
    for arm in ("as_written", "fixed"):
        restore(model, w0)
        params = [v.value for v in model.trainable_variables]
        opt, kw = torch_optimizer(kopt, params, arm == "as_written")
        series = []
        for i in range(steps):
            x, y, sw = cap.batches[i % len(cap.batches)]
            opt.zero_grad()
            out = model(keras.tree.map_structure(lambda a: torch.as_tensor(np.asarray(a)), x), training=True)
            loss = model.compute_loss(x=None, y=keras.tree.map_structure(lambda a: torch.as_tensor(np.asarray(a)), y),
                                      y_pred=out)
            loss.backward()
            opt.step()
            series.append(_diff(k_w[i], [v.detach().cpu().numpy() for v in params], set()))
        runs[arm] = (series, kw)
    (sa, kw_a), (sf, kw_f) = runs["as_written"], runs["fixed"]
    scale = max([1.0] + [float(np.max(np.abs(a))) for a in k_w[-1] if a.size])
    tol = 1e-4 * scale
    value, value_fixed = sa[-1], sf[-1]
    same = kw_a == kw_f
    verdict = CONFIRMED if value > tol and not same else NOT_CONFIRMED
    diffs = ", ".join(f"{k} {kw_a[k]} vs {kw_f[k]}" for k in kw_a if kw_a[k] != kw_f.get(k)) or "same values"
    detail = (f"subclassed model {type(model).__name__} on the Keras torch backend: Keras's {type(kopt).__name__} vs "
              f"torch.optim on the same forward pass, {steps} steps from the same weights and batches: max |Δ weight| = "
              f"{fmt_num(value)} with PyTorch's defaults ({diffs}); {fmt_num(value_fixed)} with Keras's values")
    if same:
        detail += "; the port's optimizer equals Keras's"
    if type(kopt).__name__ in ("Adam", "AdamW") and value_fixed > tol:
        detail += "; the gap shrinks but cannot close: Keras adds ε to √v before bias correction, PyTorch to √v̂"
    return {"metric": "max_abs_diff", "value": value, "value_fixed": value_fixed, "tolerance": tol, "verdict": verdict,
            "detail": detail, "series": {"as_written": sa, "fixed": sf}}


def _hazard_text(code, layers, kopt, kw_a, kw_f) -> str:
    if code in ("KL401", "KL603"):
        diffs = [f"{k} {kw_a[k]} vs {kw_f[k]}" for k in kw_a if kw_a[k] != kw_f.get(k)]
        return ", ".join(diffs) or "same values"
    if code == "KL601":
        bns = [ly for ly in layers if type(ly).__name__ == "BatchNormalization"]
        if not bns:
            return "no BatchNormalization layer"
        import torch

        ly, d = bns[0], _torch_defaults(torch.nn.BatchNorm1d)
        return f"momentum {d['momentum']} (≙{1 - d['momentum']:g}) vs {ly.momentum}, ε {d['eps']:g} vs {ly.epsilon:g}"
    if code == "KL602":
        lns = [ly for ly in layers if type(ly).__name__ == "LayerNormalization"]
        import torch

        d = _torch_defaults(torch.nn.LayerNorm)
        return f"ε {d['eps']:g} vs {lns[0].epsilon:g}" if lns else "no LayerNormalization layer"
    return ""
