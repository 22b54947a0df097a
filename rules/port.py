"""KL6: Keras ↔ PyTorch ports.

"My PyTorch port gives different numbers": the two frameworks disagree on defaults
(normalization ε and momentum, optimizer ε/ρ/weight decay/learning rate), on weight
layouts (a Dense kernel is ``(in, out)`` in Keras and ``(out, in)`` in PyTorch), on
``padding="same"`` with strides, on the time axis of RNNs, and PyTorch modules start in
training mode. These rules only run in files that use both frameworks (a PyTorch import
and a Keras or TensorFlow import), and a value passed as a variable is never guessed: only
literal arguments and library defaults are compared.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

import libcst as cst

from keraslint import parity as _parity
from keraslint import weights
from keraslint.rule import Rule
from keraslint.semantics import NOT_LITERAL, dotted, get_arg, literal_value, target_names
from keraslint.weights import (KERAS_RNN, PRESERVE_METHODS, TORCH_KERNEL_MODULES, TORCH_PLAIN_MODULES, keras_family,
                               short, torch_name)

# ---------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------

ABSENT = object()  # the argument is not passed: the library default applies
UNKNOWN = object()  # passed, but not as a literal (or hidden behind *args/**kwargs)


def both_frameworks(ctx) -> bool:
    return ctx.uses_torch() and (ctx.uses_keras() or ctx.uses_tensorflow())


def port_context(ctx) -> Any:
    """The file's Keras ↔ PyTorch parity context, or None. A hidden default only matters
    where the file really ports or compares: a PyTorch side that is a model of its own (an
    ``nn.Module``, ``torch.nn`` layers, a loaded PyTorch or Hugging Face model, an optimizer
    over such a model). A torch optimizer or loop training a *Keras* model on the torch backend
    is no second implementation (see :func:`keraslint.parity.keras_judge`). With ``strict``
    every file that uses both frameworks counts. Ask it in ``finish()``."""
    par = _parity.context_of(ctx)
    if par is not None and par.kind == "pytorch":
        return par
    if getattr(ctx.config, "strict", False):
        return _parity.ParityContext("strict", None, "")
    return None


def report_in_port(rule: Rule, node: Any, message: str, par: Any) -> None:
    """Report a hidden-default finding naming the context that makes it matter."""
    refs = {"ctx": par.node} if par.node is not None else None
    why = par.phrase() if par.kind == "strict" else f"it matters because {par.phrase()}"
    rule.report(node, f"{message}; {why}", refs=refs)


def _literal(expr: Any) -> Any:
    v = literal_value(expr)
    if v is not NOT_LITERAL:
        return v
    if isinstance(expr, (cst.Tuple, cst.List)):
        out = []
        for el in expr.elements:
            if isinstance(el, cst.StarredElement):
                return UNKNOWN
            ev = _literal(el.value)
            if ev is UNKNOWN:
                return UNKNOWN
            out.append(ev)
        return tuple(out)
    return UNKNOWN


def _has_star(call: cst.Call) -> bool:
    return any(a.star for a in call.args)


def arg_value(call: cst.Call, keyword: Optional[str], position: Optional[int], aliases: tuple = ()) -> Any:
    """Literal value of an argument, ``ABSENT`` or ``UNKNOWN``."""
    a = get_arg(call, keyword, position) if keyword or position is not None else None
    for alias in aliases:
        if a is None:
            a = get_arg(call, alias)
    if a is None:
        return UNKNOWN if _has_star(call) else ABSENT
    return _literal(a.value)


def fmt(v: Any) -> str:
    """Numbers as people write them: 1e-3 → ``0.001``, 1e-7 → ``1e-7``, 0.99 → ``0.99``."""
    if isinstance(v, bool) or v is None:
        return repr(v)
    if isinstance(v, tuple):
        return "(" + ", ".join(fmt(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    if isinstance(v, float):
        v = float(f"{v:.10g}")
        if v != 0 and abs(v) < 1e-3:
            m, e = f"{v:.6e}".split("e")
            m = m.rstrip("0").rstrip(".")
            return f"{m}e{int(e)}"
        return repr(v)
    return repr(v)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, tuple) or isinstance(b, tuple):
        return isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b) and all(
            _same(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-15)
    return a == b


# ---------------------------------------------------------------------------
# KL601–KL603: defaults that differ between the two sides
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """One hyperparameter as both sides spell it. Values are compared in the *Keras*
    convention; ``to_keras`` converts a PyTorch literal (BN momentum: 1 - m)."""

    label: str
    k_kw: str
    k_pos: Optional[int]
    k_default: Any
    t_kw: str
    t_pos: Optional[int]
    t_default: Any
    k_aliases: tuple = ()
    t_index: Optional[int] = None  # element of a tuple argument (torch ``betas``)
    to_keras: Any = None  # callable on a torch literal
    note: str = ""  # how to read the torch value in Keras terms, e.g. "≙ 0.9 in Keras"


def _bn_momentum_to_keras(m: Any) -> Any:
    if isinstance(m, (int, float)) and not isinstance(m, bool):
        return 1.0 - m
    return m  # None: cumulative average, matches no Keras momentum


@dataclass
class Side:
    node: Any  # what to report
    framework: str  # "keras" | "torch"
    what: str  # "`BatchNormalization`", "`nn.BatchNorm2d`"
    values: dict = field(default_factory=dict)  # label -> ABSENT | UNKNOWN | literal (own convention)


class _PairedDefaults(Rule):
    """Base of KL601–KL603: collect both sides, compare in ``finish``."""

    tokens = ("torch",)
    kind_what = ""  # "batch normalization"
    consequence = ""

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.sides: dict = {}  # group -> list[Side]

    # subclasses: return (group, Side, params) for a call, or None
    def classify(self, node: cst.Call):  # pragma: no cover - abstract
        return None

    def params(self, group: str) -> tuple:  # pragma: no cover - abstract
        return ()

    def visit_Call(self, node: cst.Call) -> None:
        got = self.classify(node)
        if got is not None:
            group, side = got
            self.sides.setdefault(group, []).append(side)

    @staticmethod
    def read(call: cst.Call, params: tuple, framework: str) -> dict:
        out = {}
        for p in params:
            if framework == "keras":
                out[p.label] = arg_value(call, p.k_kw, p.k_pos, p.k_aliases)
            else:
                v = arg_value(call, p.t_kw, p.t_pos)
                if p.t_index is not None and v is not ABSENT and v is not UNKNOWN:
                    v = v[p.t_index] if isinstance(v, tuple) and len(v) > p.t_index else UNKNOWN
                out[p.label] = v
        return out

    @staticmethod
    def effective(side: Side, p: Param) -> Any:
        """Value in the Keras convention, or UNKNOWN."""
        v = side.values.get(p.label, UNKNOWN)
        if v is UNKNOWN:
            return UNKNOWN
        if side.framework == "keras":
            return p.k_default if v is ABSENT else v
        v = p.t_default if v is ABSENT else v
        return p.to_keras(v) if p.to_keras is not None else v

    def finish(self) -> None:
        if not both_frameworks(self.ctx):
            return
        par = port_context(self.ctx)
        if par is None:
            return  # both frameworks, but nothing is ported or compared: defaults are harmless
        for group, sides in self.sides.items():
            keras_sides = [s for s in sides if s.framework == "keras"]
            torch_sides = [s for s in sides if s.framework == "torch"]
            if not keras_sides or not torch_sides:
                continue
            params = self.params(group)
            for side in sides:
                others = torch_sides if side.framework == "keras" else keras_sides
                diffs = []
                for p in params:
                    if side.values.get(p.label) is not ABSENT:
                        continue  # set explicitly (or unknown): the author chose it
                    mine = self.effective(side, p)
                    for o in others:
                        theirs = self.effective(o, p)
                        if theirs is not UNKNOWN and not _same(theirs, mine):
                            diffs.append((p, mine, theirs, o))
                            break
                if diffs:
                    report_in_port(self, side.node, self.message(side, diffs), par)

    def message(self, side: Side, diffs: list) -> str:
        mine, theirs, suggest = [], [], []
        other = diffs[0][3]
        for p, mine_k, theirs_k, _o in diffs:
            if side.framework == "keras":
                mine.append(f"{p.k_kw}={fmt(mine_k)}")
                t_raw = self._torch_spelling(p, theirs_k)
                theirs.append(t_raw)
                suggest.append(f"{p.k_kw}={fmt(theirs_k)}")
            else:
                own = self._torch_spelling(p, mine_k)
                mine.append(own)
                k_txt = f"{p.k_kw}={fmt(theirs_k)}"
                theirs.append(k_txt)
                t_val = self._torch_value(p, theirs_k)
                suggest.append(f"{p.t_kw}={fmt(t_val)}" if p.t_index is None else f"{p.t_kw}[{p.t_index}]={fmt(t_val)}")
        fw_mine = "Keras" if side.framework == "keras" else "PyTorch"
        fw_other = "PyTorch" if side.framework == "keras" else "Keras"
        return (f"{fw_mine} {side.what} relies on the default {', '.join(mine)}, but the {fw_other} "
                f"{other.what} in this file uses {', '.join(theirs)}: {self.consequence} "
                f"(pass {', '.join(suggest)})")

    @staticmethod
    def _torch_value(p: Param, keras_value: Any) -> Any:
        if p.to_keras is _bn_momentum_to_keras:
            return _bn_momentum_to_keras(keras_value)  # 1 - m is its own inverse
        return keras_value

    def _torch_spelling(self, p: Param, keras_value: Any) -> str:
        t = self._torch_value(p, keras_value)
        name = p.t_kw if p.t_index is None else f"{p.t_kw}[{p.t_index}]"
        text = f"{name}={fmt(t)}"
        if p.to_keras is _bn_momentum_to_keras and isinstance(keras_value, (int, float)):
            text += f" (≙ {fmt(keras_value)} in Keras)"
        return text


# Keras BatchNormalization(axis, momentum, epsilon, ...);
# torch BatchNorm2d(num_features, eps, momentum, ...); LazyBatchNorm2d(eps, momentum, ...).
KERAS_BN_MOMENTUM = 0.99
KERAS_BN_EPSILON = 1e-3
TORCH_BN_MOMENTUM = 0.1
TORCH_BN_EPS = 1e-5

BN_PARAMS = (
    Param("momentum", "momentum", 1, KERAS_BN_MOMENTUM, "momentum", 2, TORCH_BN_MOMENTUM,
          to_keras=_bn_momentum_to_keras),
    Param("epsilon", "epsilon", 2, KERAS_BN_EPSILON, "eps", 1, TORCH_BN_EPS),
)
BN_PARAMS_LAZY = tuple(Param(p.label, p.k_kw, p.k_pos, p.k_default, p.t_kw, p.t_pos - 1, p.t_default,
                             to_keras=p.to_keras) for p in BN_PARAMS)
KERAS_BN = {"keras.layers.BatchNormalization", "keras.layers.SyncBatchNormalization"}
TORCH_BN = {"torch.nn.BatchNorm1d", "torch.nn.BatchNorm2d", "torch.nn.BatchNorm3d", "torch.nn.SyncBatchNorm"}
TORCH_BN_LAZY = {"torch.nn.LazyBatchNorm1d", "torch.nn.LazyBatchNorm2d", "torch.nn.LazyBatchNorm3d"}



def _same_momentum(a: Any, b: Any) -> Optional[str]:
    """Do two momentum arguments hold the same value (same literal other than 0.5, or the
    same variable)? Returns how to say it, or None."""
    va, vb = _literal(a), _literal(b)
    if isinstance(va, (int, float)) and isinstance(vb, (int, float)) and not isinstance(va, bool):
        if _same(va, vb) and not _same(va, 0.5):
            return f"the same momentum={fmt(va)}"
        return None
    da, db = dotted(a), dotted(b)
    if da is not None and da == db:
        return f"the same momentum `{da}`"
    return None

class BatchNormDefaultsDiffer(_PairedDefaults):
    """
    ## What it does
    In a file that uses both Keras and PyTorch, flags a `BatchNormalization` or
    `nn.BatchNorm1d/2d/3d` that relies on a default momentum or ε while a batch norm of the
    other framework in the same file uses a different value. Only the side that relies on a
    default is reported: `BatchNormalization(momentum=0.9, epsilon=1e-5)` next to a default
    `nn.BatchNorm2d(c)` is a faithful port and is not flagged. Also flags a PyTorch batch norm
    given the *same* momentum as a Keras one (the same literal other than 0.5, or the same
    variable): the frameworks define momentum in opposite senses, so the same number is
    1 - m on the other side.

    ## Why is this bad?
    Keras defaults to momentum 0.99 and ε = 1e-3; PyTorch to momentum 0.1 and ε = 1e-5, and
    PyTorch's momentum is the weight of the *new* batch, so 0.1 there is 0.9 in Keras terms.
    With both defaults the moving statistics move ten times slower in Keras (after 100 steps
    Keras still carries 0.99**100 ≈ 37% of its initial statistics, PyTorch 0.9**100 ≈ 0.003%),
    so inference outputs differ for hundreds of steps, and ε = 1e-3 against 1e-5 changes every
    normalized value of a channel with a small variance (variance 1e-3: a factor
    √(2e-3/1.01e-3) ≈ 1.4). `keraslint verify` measures it as the max absolute difference of
    the layer outputs (inference mode) between the Keras model and its PyTorch reference after
    N training steps, and again with the defaults aligned.

    ## Example
    ```python
    keras_bn = keras.layers.BatchNormalization()
    torch_bn = torch.nn.BatchNorm2d(64)
    ```

    ## Use instead
    ```python
    keras_bn = keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5)
    torch_bn = torch.nn.BatchNorm2d(64)
    ```
    """

    code = "KL601"
    name = "batchnorm-defaults-differ"
    severity = "warning"
    fix_applicability = None
    consequence = "moving statistics and normalized outputs diverge"

    def params(self, group: str) -> tuple:
        return BN_PARAMS

    def classify(self, node: cst.Call):
        q = self.ctx.resolve(node.func)
        if q in KERAS_BN:
            return "bn", Side(node, "keras", f"`{q.rsplit('.', 1)[1]}`", self.read(node, BN_PARAMS, "keras"))
        q = torch_name(q)
        if q in TORCH_BN or q in TORCH_BN_LAZY:
            params = BN_PARAMS if q in TORCH_BN else BN_PARAMS_LAZY
            values = self.read(node, params, "torch")
            # Without running statistics the momentum is never used.
            if arg_value(node, "track_running_stats", 4 if q in TORCH_BN else 3) is False:
                values["momentum"] = UNKNOWN
            return "bn", Side(node, "torch", f"`nn.{q.rsplit('.', 1)[1]}`", values)
        return None

    def finish(self) -> None:
        super().finish()
        if not both_frameworks(self.ctx):
            return
        sides = self.sides.get("bn", [])
        keras_m = [(s, e) for s in sides if s.framework == "keras" for e in [self._momentum(s)] if e is not None]
        for side in sides:
            if side.framework != "torch":
                continue
            mine = self._momentum(side)
            if mine is None:
                continue
            for other, theirs in keras_m:
                same = _same_momentum(mine, theirs)
                if same is not None:
                    self.report(side.node, self._same_message(side, other, same))
                    break

    def _momentum(self, side: Side) -> Any:
        """The explicit momentum argument expression of a batch norm call, or None."""
        call = side.node
        if not isinstance(call, cst.Call):
            return None
        if side.framework == "keras":
            a = get_arg(call, "momentum", 1)
        else:
            lazy = torch_name(self.ctx.resolve(call.func)) in TORCH_BN_LAZY
            a = get_arg(call, "momentum", 1 if lazy else 2)
        return a.value if a is not None else None

    @staticmethod
    def _same_message(side: Side, other: Side, same: str) -> str:
        return (f"PyTorch {side.what} gets {same} as the Keras {other.what} in this file, but the two define "
                f"momentum in opposite senses (Keras keeps m of the running statistics, PyTorch takes m from "
                f"each new batch): the same number means 1 - m in the other framework, so the moving "
                f"statistics and eval outputs diverge (pass 1 - m on one side)")


KERAS_LN_EPSILON = 1e-3
TORCH_LN_EPS = 1e-5
LN_PARAMS = (Param("epsilon", "epsilon", 1, KERAS_LN_EPSILON, "eps", 1, TORCH_LN_EPS),)



class LayerNormEpsilonDiffers(_PairedDefaults):
    """
    ## What it does
    In a file that uses both Keras and PyTorch, flags a `LayerNormalization` or
    `nn.LayerNorm` that relies on the default ε while a layer norm of the other framework in
    the same file uses a different one. `LayerNormalization(epsilon=1e-5)` next to a default
    `nn.LayerNorm(d)` is a faithful port and is not flagged.

    ## Why is this bad?
    Keras's `LayerNormalization` defaults to ε = 1e-3, PyTorch's `nn.LayerNorm` to 1e-5
    (the value of most published transformer checkpoints). The output is
    (x - μ) / √(σ² + ε): for features whose variance is about 1 the two differ by ≈ 5e-4
    relative, for a low-variance activation (σ² = 1e-3) by a factor ≈ 1.4, and the
    difference compounds over a deep stack. `keraslint verify` measures it as the max
    absolute difference of the layer outputs between the Keras model and its PyTorch
    reference, and again with ε aligned.

    ## Example
    ```python
    keras_ln = keras.layers.LayerNormalization()
    torch_ln = torch.nn.LayerNorm(512)
    ```

    ## Use instead
    ```python
    keras_ln = keras.layers.LayerNormalization(epsilon=1e-5)
    torch_ln = torch.nn.LayerNorm(512)
    ```
    """

    code = "KL602"
    name = "layernorm-epsilon-differs"
    severity = "warning"
    fix_applicability = None
    consequence = "normalized outputs differ, most for low-variance features"

    def params(self, group: str) -> tuple:
        return LN_PARAMS

    def classify(self, node: cst.Call):
        q = self.ctx.resolve(node.func)
        if q == "keras.layers.LayerNormalization":
            return "ln", Side(node, "keras", "`LayerNormalization`", self.read(node, LN_PARAMS, "keras"))
        if torch_name(q) == "torch.nn.LayerNorm":
            return "ln", Side(node, "torch", "`nn.LayerNorm`", self.read(node, LN_PARAMS, "torch"))
        return None


def _lr(k_default, t_default) -> Param:
    return Param("learning_rate", "learning_rate", 0, k_default, "lr", 1, t_default, k_aliases=("lr",))


def _betas(k_pos1: int) -> tuple:
    return (
        Param("beta_1", "beta_1", k_pos1, 0.9, "betas", 2, 0.9, t_index=0),
        Param("beta_2", "beta_2", k_pos1 + 1, 0.999, "betas", 2, 0.999, t_index=1),
    )


# Per optimizer: the hyperparameters that mean the same thing on both sides. (Adam's
# weight_decay is left out: decoupled in Keras, an L2 term in torch.optim.Adam.)
OPTIMIZER_PARAMS = {
    "Adam": (_lr(1e-3, 1e-3), *_betas(1),
             Param("epsilon", "epsilon", 3, 1e-7, "eps", 3, 1e-8),
             Param("amsgrad", "amsgrad", 4, False, "amsgrad", 5, False)),
    "AdamW": (_lr(1e-3, 1e-3),
              Param("weight_decay", "weight_decay", 1, 0.004, "weight_decay", 4, 0.01),
              *_betas(2),
              Param("epsilon", "epsilon", 4, 1e-7, "eps", 3, 1e-8),
              Param("amsgrad", "amsgrad", 5, False, "amsgrad", 5, False)),
    "RMSprop": (_lr(1e-3, 1e-2),
                Param("rho", "rho", 1, 0.9, "alpha", 2, 0.99),
                Param("momentum", "momentum", 2, 0.0, "momentum", 5, 0),
                Param("epsilon", "epsilon", 3, 1e-7, "eps", 3, 1e-8),
                Param("centered", "centered", 4, False, "centered", 6, False)),
    "SGD": (_lr(0.01, 1e-3),
            Param("momentum", "momentum", 1, 0.0, "momentum", 2, 0),
            Param("nesterov", "nesterov", 2, False, "nesterov", 5, False)),
    "Adamax": (_lr(1e-3, 2e-3), *_betas(1),
               Param("epsilon", "epsilon", 3, 1e-7, "eps", 3, 1e-8)),
    "Nadam": (_lr(1e-3, 2e-3), *_betas(1),
              Param("epsilon", "epsilon", 3, 1e-7, "eps", 3, 1e-8)),
    "Adagrad": (_lr(1e-3, 1e-2),
                Param("initial_accumulator_value", "initial_accumulator_value", 1, 0.1,
                      "initial_accumulator_value", 4, 0),
                Param("epsilon", "epsilon", 2, 1e-7, "eps", 5, 1e-10)),
    "Adadelta": (_lr(1e-3, 1.0),
                 Param("rho", "rho", 1, 0.95, "rho", 2, 0.9),
                 Param("epsilon", "epsilon", 2, 1e-7, "eps", 3, 1e-6)),
}
KERAS_OPTIMIZERS = {f"keras.optimizers.{k}": k for k in OPTIMIZER_PARAMS}
TORCH_OPTIMIZERS = {f"torch.optim.{'NAdam' if k == 'Nadam' else k}": k for k in OPTIMIZER_PARAMS}
KERAS_OPTIMIZER_STRINGS = {k.lower(): k for k in OPTIMIZER_PARAMS}
KERAS_COMPILE_DEFAULT_OPTIMIZER = "rmsprop"
# PyTorch training wrappers with a Keras-like ``compile(optimizer="adam")``
TORCH_TRAINERS = {"torchkeras", "poutyne", "torchbearer", "pytorch_lightning", "lightning", "skorch",
                  "keras4torch", "ignite"}


class OptimizerDefaultsDiffer(_PairedDefaults):
    """
    ## What it does
    In a file that uses both Keras and PyTorch, flags a Keras optimizer and a `torch.optim`
    optimizer of the same algorithm (Adam, AdamW, RMSprop, SGD, Adamax, Nadam, Adagrad,
    Adadelta) where one side relies on a default hyperparameter that the other side sets,
    or defaults, differently. `compile(optimizer="adam")` counts as a Keras Adam with all
    defaults (unless the receiver is visibly a PyTorch training wrapper with a Keras-like
    `compile`). Only the side relying on the default is reported.

    ## Why is this bad?
    The defaults are not the same algorithm settings: Adam/AdamW ε is 1e-7 in Keras and
    1e-8 in PyTorch (and Keras adds it to the uncorrected √v, folding the bias correction
    into the step size — the paper's "epsilon hat" — where PyTorch adds it to √v̂); AdamW
    weight decay is 0.004 in Keras and 0.01 in PyTorch;
    RMSprop's decay ρ = 0.9 in Keras is α = 0.99 in PyTorch, its ε 1e-7 against 1e-8 (inside the
    square root in Keras, outside in PyTorch), and its learning rate 1e-3 against 1e-2; SGD's learning rate 0.01 against 1e-3; Adagrad's initial
    accumulator 0.1 against 0; Adadelta's learning rate 1e-3 against 1.0. Each one changes
    every update, so the two training runs drift apart from the first step (RMSprop with
    both defaults: a ten times larger step in PyTorch). `keraslint verify` measures it as the
    max absolute weight difference after N steps from the same weights and batches, with the
    optimizers as written and with the hyperparameters aligned.

    ## Example
    ```python
    keras_opt = keras.optimizers.Adam(learning_rate=1e-3)
    torch_opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    ```

    ## Use instead
    ```python
    keras_opt = keras.optimizers.Adam(learning_rate=1e-3, epsilon=1e-8)
    torch_opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    ```
    """

    code = "KL603"
    name = "optimizer-defaults-differ"
    severity = "warning"
    fix_applicability = None
    consequence = "every update differs, so the two training runs drift apart"

    def params(self, group: str) -> tuple:
        return OPTIMIZER_PARAMS[group]

    def classify(self, node: cst.Call):
        q = self.ctx.resolve(node.func)
        if q in KERAS_OPTIMIZERS:
            g = KERAS_OPTIMIZERS[q]
            return g, Side(node, "keras", f"`{g}`", self.read(node, OPTIMIZER_PARAMS[g], "keras"))
        tq = torch_name(q)
        if tq in TORCH_OPTIMIZERS:
            g = TORCH_OPTIMIZERS[tq]
            return g, Side(node, "torch", f"`{tq.replace('torch.', '', 1)}`", self.read(node, OPTIMIZER_PARAMS[g], "torch"))
        if q is None and isinstance(node.func, cst.Attribute) and node.func.attr.value == "compile":
            if self._not_keras(node.func.value):
                return None  # a PyTorch wrapper with a Keras-like `compile` (torchkeras, ...)
            opt = get_arg(node, "optimizer", 0)
            if opt is None:
                if _has_star(node) or get_arg(node, "loss", 1) is None:
                    return None  # not recognisably a Keras compile
                g, where = KERAS_OPTIMIZER_STRINGS[KERAS_COMPILE_DEFAULT_OPTIMIZER], node
                label = f"`{g}` (the default optimizer of `compile`)"
            else:
                v = literal_value(opt.value)
                if not isinstance(v, str) or v.lower() not in KERAS_OPTIMIZER_STRINGS:
                    return None
                g, where = KERAS_OPTIMIZER_STRINGS[v.lower()], opt.value
                label = f"`{g}` (`optimizer={v!r}`)"
            values = {p.label: ABSENT for p in OPTIMIZER_PARAMS[g]}
            return g, Side(where, "keras", label, values)
        return None

    def _torch_module(self, expr: Any, depth: int = 0) -> bool:
        """A PyTorch module: ``nn.X(...)``, an instance of a local ``nn.Module`` subclass, or
        a variable holding one."""
        if depth > 8 or expr is None:
            return False
        if isinstance(expr, cst.Name):
            v = self.ctx.assigned_value(expr.value)
            return v is not None and v is not expr and self._torch_module(v, depth + 1)
        if not isinstance(expr, cst.Call):
            return False
        q = torch_name(self.ctx.resolve(expr.func))
        if q is not None:
            return q.startswith("torch.nn.") and q.rsplit(".", 1)[1][:1].isupper() or q.startswith(
                ("torchvision.models.", "timm.create_model"))
        if isinstance(expr.func, cst.Attribute) and expr.func.attr.value in ("to", "cuda", "cpu", "float"):
            return self._torch_module(expr.func.value, depth + 1)
        if isinstance(expr.func, cst.Name):
            info = self.ctx.classes.get(expr.func.value)
            return info is not None and self._torch_class(info, set())
        return False

    def _torch_class(self, info: Any, seen: set) -> bool:
        if info.name in seen:
            return False
        seen.add(info.name)
        for b in info.bases:
            if b.startswith("local:"):
                other = self.ctx.classes.get(b[6:])
                if other is not None and self._torch_class(other, seen):
                    return True
            elif torch_name(b) in ("torch.nn.Module", "torch.nn.Sequential") or b.startswith("pytorch_lightning."):
                return True
        return False

    def _not_keras(self, expr: Any, depth: int = 0) -> bool:
        """Is the receiver of ``.compile`` visibly something other than a Keras model: made
        by a call to a non-Keras import (``Model(net)`` from a PyTorch training wrapper) or
        an instance of a local ``nn.Module`` / non-Keras class? Unknown receivers are Keras."""
        if depth > 8 or expr is None:
            return False
        if isinstance(expr, cst.Name):
            v = self.ctx.assigned_value(expr.value)
            return v is not None and v is not expr and self._not_keras(v, depth + 1)
        if not isinstance(expr, cst.Call):
            return False
        func = expr.func
        q = self.ctx.resolve(func)
        if q is not None:
            # an imported factory is a Keras model unless it is a known PyTorch trainer, or
            # it wraps a PyTorch module: ``Model(net)``, ``Trainer(model=TorchNet())``
            if keras_family(q):
                return False
            return q.split(".", 1)[0] in TORCH_TRAINERS or any(self._torch_module(a.value) for a in expr.args)
        if isinstance(func, cst.Name):
            info = self.ctx.classes.get(func.value)
            if info is not None:
                # a local class that is no Keras layer/model and derives from nothing Keras
                return self.ctx.class_kind(info) is None and not any(
                    keras_family(b) for b in info.bases if not b.startswith("local:"))
            kinds = {self._not_keras(r, depth + 1) for r in self.ctx.returns_of(func.value)}
            return kinds == {True}
        if isinstance(func, cst.Attribute):
            return self._not_keras(func.value, depth + 1) if func.attr.value in ("to", "cuda", "cpu") else False
        return False


# ---------------------------------------------------------------------------
# KL604: kernel copied into a torch weight without a transpose
# ---------------------------------------------------------------------------

# Hugging Face's GPT-2 family uses `transformers.Conv1D`, which stores its weight as
# (in, out) like a Keras kernel: copied as is, correctly.
HF_CONV1D_NAMES = {"c_attn", "c_proj", "c_fc", "q_attn"}


class KernelNotTransposed(Rule):
    """
    ## What it does
    In a file that uses both Keras and PyTorch, flags a Keras kernel (`layer.kernel`,
    `layer.get_weights()[0]`, `layer.weights[0]`, also through variables and
    `w, b = layer.get_weights()`) written into a PyTorch weight (`m.weight.data = …`,
    `m.weight.copy_(…)`, `m.weight = nn.Parameter(…)`, `load_state_dict({"fc.weight": …})`,
    `state["fc.weight"] = …`) with no transpose on the way (`.T`, `.transpose`, `.permute`,
    `np.transpose`, `einops.rearrange`). `.reshape`/`.view` are not transposes. The layer
    and module types are also read from an enclosing `if isinstance(layer, Dense):`,
    `if type(layer) is Conv2D:` or `if isinstance(module, nn.Linear):`. Biases,
    embeddings and normalization parameters keep their layout and are never flagged; a
    `get_weights()[0]` of a layer whose type is unknown is flagged only when the PyTorch
    module receiving it is known to be a `Linear`/`Conv`/RNN (from `self.fc = nn.Linear(...)`,
    a variable, or a `nn.Linear` annotation). A custom module's own `self.weight`, and the
    `c_attn`/`c_proj`/`c_fc` weights of Hugging Face's GPT-2 (its `Conv1D` stores
    `(in, out)` like Keras), are not flagged.

    ## Why is this bad?
    Keras stores a `Dense` kernel as `(in, out)` and PyTorch's `nn.Linear.weight` as
    `(out, in)`; a Keras `Conv2D` kernel is `(kh, kw, in, out)` and `nn.Conv2d.weight` is
    `(out, in, kh, kw)`. Copied as is, a non-square kernel is a shape error
    (`copy_`/`load_state_dict` raise; `weight.data = …` accepts it and the forward pass
    fails). Worse, when the shapes happen to fit (a square `Dense`, or a `.reshape` to the
    PyTorch shape) the copy succeeds and the layer silently computes something else. The
    test suite measures it: a 4×4 `Dense` copied without `.T` is off by max |Δ| = 1.7 on 16
    standard-normal inputs, a 3×3 `Conv2D` (2→4 channels) `.reshape`d into place by 2.5;
    with `.T` / `.permute(3, 2, 0, 1)` both match to 2e-7.
    `keraslint verify` measures it as the max absolute difference of the layer outputs
    between Keras and the PyTorch module after the copy.

    ## Example
    ```python
    kernel, bias = keras_dense.get_weights()
    torch_linear.weight.data = torch.from_numpy(kernel)
    conv.weight.data.copy_(torch.from_numpy(keras_conv.kernel.numpy()).reshape(conv.weight.shape))
    ```

    ## Use instead
    ```python
    kernel, bias = keras_dense.get_weights()
    torch_linear.weight.data = torch.from_numpy(kernel.T)
    conv.weight.data.copy_(torch.from_numpy(keras_conv.kernel.numpy()).permute(3, 2, 0, 1))
    ```
    """

    code = "KL604"
    name = "kernel-not-transposed"
    severity = "error"
    fix_applicability = None
    tokens = ("torch",)

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.flow = weights.of(ctx)  # what names hold: Keras kernels, torch modules
        self.pending: list = []  # (node, source, target, receiving module)

    def visit_Assign(self, node: cst.Assign) -> None:
        for t in node.targets:
            if isinstance(t.target, (cst.Attribute, cst.Subscript)):
                self._check_target(t.target, node.value, node)

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if not isinstance(func, cst.Attribute) or not node.args:
            return
        attr = func.attr.value
        if attr == "copy_":
            self._check_target(func.value, node.args[0].value, node)
        elif attr == "load_state_dict":
            d = node.args[0].value
            if isinstance(d, cst.Name):
                d = self.flow.value_of(d.value)
            if isinstance(d, cst.Dict):
                for el in d.elements:
                    if isinstance(el, cst.DictElement):
                        self._check_target(el.key, el.value, el.value, key_only=True)

    # -- copies into a PyTorch weight -------------------------------------------------
    def _check_target(self, target: Any, value: Any, report_node: Any, key_only: bool = False) -> None:
        """``target`` (``m.weight``, ``m.weight.data``, ``state["fc.weight"]``, a
        ``load_state_dict`` key) receives ``value``: keep it if a kernel may arrive there."""
        t = target
        if isinstance(t, cst.Attribute) and t.attr.value == "data":
            t = t.value
        module_expr, key_path = None, None
        if isinstance(t, cst.Attribute) and not key_only:
            if not weights.is_weight_name(t.attr.value):
                return
            module_expr = t.value
        elif isinstance(t, cst.Subscript) and not key_only:
            if len(t.slice) != 1 or not isinstance(t.slice[0].slice, cst.Index):
                return
            key_path = weights.key_text(t.slice[0].slice.value)
            if key_path is None:
                return
        elif key_only:
            key_path = weights.key_text(t)
            if key_path is None:
                return
        else:
            return
        if key_path is not None and not weights.is_weight_name(key_path.rsplit(".", 1)[-1]):
            return
        if not self.ctx.uses_torch():
            return
        src = self.flow.source(value)
        if src is None or src.kind in ("other", "transposed"):
            return
        self.pending.append((report_node, src, target, self.flow.receiver(module_expr, key_path)))

    def finish(self) -> None:
        if not both_frameworks(self.ctx):
            return
        for node, src, target, receiver in self.pending:
            classes = receiver.classes
            if classes & TORCH_PLAIN_MODULES or weights.SELF in classes:
                continue
            if receiver.owner in HF_CONV1D_NAMES and not classes <= TORCH_KERNEL_MODULES:
                continue  # GPT-2's Conv1D: (in, out), no transpose needed
            known_kernel = bool(classes) and classes <= TORCH_KERNEL_MODULES
            if not known_kernel and not classes <= {"?"}:
                continue  # a custom module (or a mix): its layout is its own
            if src.kind == "weight" and not known_kernel:
                continue  # weight #0 of an unknown layer into an unknown module
            family = _family(src.layer, classes if known_kernel else set())
            what = f"`{src.layer}` kernel" if src.layer else "Keras kernel"
            shapes, fix = _LAYOUTS[family]
            tail = ("`.reshape`/`.view` only relabels the axes, so the copy fits and silently scrambles the layer"
                    if src.reshaped else
                    "a shape error, or silently wrong outputs when the shapes happen to fit (a square kernel)")
            self.report(node, f"{what} `{src.desc}` copied into PyTorch weight `{short(target)}` with no transpose: "
                              f"{shapes}; {tail} (use {fix})")


_LAYOUTS = {
    "dense": ("Keras stores (in, out), PyTorch (out, in)", "`.T`"),
    "conv": ("Keras stores (kh, kw, in, out), PyTorch (out, in, kh, kw)", "`.permute(3, 2, 0, 1)`"),
    "conv1d": ("Keras stores (k, in, out), PyTorch (out, in, k)", "`.permute(2, 1, 0)`"),
    "conv3d": ("Keras stores (kd, kh, kw, in, out), PyTorch (out, in, kd, kh, kw)", "`.permute(4, 3, 0, 1, 2)`"),
    "convT": ("Keras stores (kh, kw, out, in), PyTorch (in, out, kh, kw)", "`.permute(3, 2, 0, 1)`"),
    "rnn": ("Keras stores (in, 4·units), PyTorch (4·hidden, in)", "`.T`"),
    "": ("a Keras Dense kernel is (in, out) and a conv kernel (kh, kw, in, out), PyTorch (out, in) / "
         "(out, in, kh, kw)", "`.T` / `.permute(3, 2, 0, 1)`"),
}


def _family(layer: str, torch_classes: set) -> str:
    if layer:
        if layer in KERAS_RNN:
            return "rnn"
        if "Transpose" in layer:
            return "convT"
        if "Conv" in layer or "Convolution" in layer:
            return "conv1d" if layer.endswith("1D") else "conv3d" if layer.endswith("3D") else "conv"
        if layer == "Dense":
            return "dense"
        return ""
    names = {c.removeprefix("Lazy") for c in torch_classes}
    if names == {"Linear"}:
        return "dense"
    if names and all(n in ("LSTM", "GRU", "RNN") for n in names):
        return "rnn"
    if names and all(n.startswith("Conv") and not n.startswith("ConvTranspose") for n in names):
        d = {n[-2:] for n in names}
        return {"1d": "conv1d", "3d": "conv3d", "2d": "conv"}.get(d.pop(), "") if len(d) == 1 else ""
    return ""


# ---------------------------------------------------------------------------
# KL605: padding="same" with strides > 1 beside a torch conv
# ---------------------------------------------------------------------------

# positional order: (filters,) kernel_size, strides, padding
KERAS_CONVS = {
    "Conv1D": 1, "Conv2D": 1, "Conv3D": 1, "Convolution1D": 1, "Convolution2D": 1, "Convolution3D": 1,
    "SeparableConv1D": 1, "SeparableConv2D": 1, "DepthwiseConv1D": 0, "DepthwiseConv2D": 0,
}
# positional order: pool_size, strides, padding (strides default to pool_size)
KERAS_POOLS = {"MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
               "AveragePooling3D", "MaxPool1D", "MaxPool2D", "MaxPool3D", "AvgPool1D", "AvgPool2D", "AvgPool3D"}
KERAS_POOL_DEFAULT_SIZE = {"1D": 2, "2D": (2, 2), "3D": (2, 2, 2)}
TORCH_CONVS = {"torch.nn.Conv1d", "torch.nn.Conv2d", "torch.nn.Conv3d", "torch.nn.LazyConv1d", "torch.nn.LazyConv2d",
               "torch.nn.LazyConv3d", "torch.nn.functional.conv1d", "torch.nn.functional.conv2d",
               "torch.nn.functional.conv3d"}
TORCH_POOLS = {f"torch.nn.{k}Pool{d}d" for k in ("Max", "Avg") for d in (1, 2, 3)} | {
    f"torch.nn.functional.{k}_pool{d}d" for k in ("max", "avg") for d in (1, 2, 3)}
TORCH_EXPLICIT_PADS = {"torch.nn.functional.pad"} | {
    f"torch.nn.{k}Pad{d}d" for k in ("Zero", "Constant") for d in (1, 2, 3)}


def _ints(v: Any) -> Optional[tuple]:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return (v,)
    if isinstance(v, tuple) and v and all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        return v
    return None


class SamePaddingStride(Rule):
    """
    ## What it does
    In a file that uses both Keras and PyTorch, flags a Keras convolution (or pooling)
    with `padding="same"` and a stride above 1 whose padding is asymmetric (kernel minus
    stride odd and positive: 3x3/2, 7x7/2, pool 3/2), when the file also has a PyTorch
    convolution (or pooling). A kernel no larger than the stride (1x1/2, 2x2/2 pools: no
    padding on sizes divisible by the stride), an even difference (4x4/2: one row each side,
    exactly PyTorch's `padding=1`), an explicit `ZeroPadding2D` followed by `padding="valid"`,
    and a file whose PyTorch side pads by hand (`F.pad`, `nn.ZeroPad2d`) are not flagged.

    ## Why is this bad?
    With a stride, TensorFlow's `"same"` pads `max((⌈n/s⌉ - 1)·s + k - n, 0)` in total and
    puts the odd pixel at the bottom/right: a 3×3 conv with stride 2 on a 224×224 input pads
    0 rows on top and 1 at the bottom. PyTorch only pads symmetrically (`padding=1` pads one
    on each side, and `padding="same"` is refused for strides > 1), so the PyTorch output
    has the same shape but is shifted by one pixel: every value differs, and the error grows
    through the network. `keraslint verify` measures it as the max absolute difference of
    the layer outputs between Keras and the PyTorch reference, and again with explicit
    asymmetric padding.

    ## Example
    ```python
    x = keras.layers.Conv2D(64, 3, strides=2, padding="same")(x)
    ```

    ## Use instead
    ```python
    x = keras.layers.ZeroPadding2D(((1, 1), (1, 1)))(x)
    x = keras.layers.Conv2D(64, 3, strides=2, padding="valid")(x)
    ```
    """

    code = "KL605"
    name = "same-padding-stride"
    severity = "warning"
    fix_applicability = None
    tokens = ("torch",)

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.candidates: list = []  # (node, kind, msg)
        self.torch_kinds: set = set()
        self.torch_pads = False

    def visit_Call(self, node: cst.Call) -> None:
        q = self.ctx.resolve(node.func)
        if q is None:
            return
        tq = torch_name(q)
        if tq in TORCH_CONVS:
            self.torch_kinds.add("conv")
            return
        if tq in TORCH_POOLS:
            self.torch_kinds.add("pool")
            return
        if tq in TORCH_EXPLICIT_PADS:
            self.torch_pads = True  # the port reproduces TensorFlow's padding by hand
            return
        if not q.startswith("keras.layers."):
            return
        cls = q.rsplit(".", 1)[1]
        if cls in KERAS_CONVS:
            off = KERAS_CONVS[cls]
            kernel = _ints(arg_value(node, "kernel_size", off))
            strides = arg_value(node, "strides", off + 1)
            strides = (1,) if strides is ABSENT else _ints(strides)
            kind = "conv"
            pad = arg_value(node, "padding", off + 2)
        elif cls in KERAS_POOLS:
            size = arg_value(node, "pool_size", 0)
            if size is ABSENT:
                size = KERAS_POOL_DEFAULT_SIZE[cls[-2:]]
            kernel = _ints(size)
            strides = arg_value(node, "strides", 1)
            strides = kernel if strides is ABSENT or strides is None else _ints(strides)
            kind = "pool"
            pad = arg_value(node, "padding", 2)
        else:
            return
        if not isinstance(pad, str) or pad.lower() != "same" or kernel is None or strides is None:
            return
        if max(strides) <= 1 or max(kernel) <= 1:
            return
        # On sizes divisible by the stride "same" pads k - s in total, k//2-ish before and the
        # rest after: asymmetric only when k - s is odd (3x3/2, 7x7/2, 3/2 pooling). k <= s
        # pads nothing, and an even k - s (4x4/2) pads symmetrically like PyTorch's padding=.
        n = max(len(kernel), len(strides))
        ks = kernel * n if len(kernel) == 1 else kernel
        ss = strides * n if len(strides) == 1 else strides
        if len(ks) != len(ss) or not any(k > s and (k - s) % 2 == 1 for k, s in zip(ks, ss)):
            return
        k_txt = fmt(kernel[0] if len(kernel) == 1 else kernel)
        s_txt = fmt(strides[0] if len(strides) == 1 else strides)
        self.candidates.append((node, kind, f"`{cls}` with `padding=\"same\"`, stride {s_txt} and "
                                            f"{'kernel' if kind == 'conv' else 'pool size'} {k_txt}"))

    def finish(self) -> None:
        if not both_frameworks(self.ctx) or self.torch_pads:
            return
        for node, kind, what in self.candidates:
            if kind not in self.torch_kinds:
                continue
            how = "`ZeroPadding` + `padding=\"valid\"`" if kind == "conv" else "explicit padding + `padding=\"valid\"`"
            self.report(node, f"{what}: TensorFlow pads asymmetrically (the extra row/column at the bottom/right), "
                              f"PyTorch's `padding=` pads both sides equally, so the port's outputs are shifted "
                              f"(pad explicitly with {how})")


# ---------------------------------------------------------------------------
# KL606: torch RNN without batch_first beside Keras RNNs
# ---------------------------------------------------------------------------

KERAS_RNN_LAYERS = {"LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional", "CuDNNLSTM", "CuDNNGRU"}
TORCH_RNNS = {"torch.nn.LSTM": "LSTM", "torch.nn.GRU": "GRU", "torch.nn.RNN": "RNN"}
# positional: LSTM/GRU(input_size, hidden_size, num_layers, bias, batch_first, ...);
# RNN(input_size, hidden_size, num_layers, nonlinearity, bias, batch_first, ...)
TORCH_RNN_BATCH_FIRST_POS = {"LSTM": 4, "GRU": 4, "RNN": 5}


class RnnBatchFirst(Rule):
    """
    ## What it does
    In a file that uses both Keras and PyTorch and builds Keras recurrent layers (`LSTM`,
    `GRU`, `SimpleRNN`, `RNN`, `Bidirectional`), flags `nn.LSTM`, `nn.GRU` and `nn.RNN`
    created without `batch_first=True`. A file with only PyTorch RNNs is never flagged, nor
    a module whose input is visibly made time-major (`rnn(x.transpose(0, 1))`,
    `x.permute(1, 0, 2)`), nor one written with the keyword `batch_first=False` (a choice),
    nor Keras layers with `time_major=True`.

    ## Why is this bad?
    Keras RNNs read `(batch, time, features)`. PyTorch RNNs default to `batch_first=False`
    and read `(time, batch, features)`. Fed the same batch-major tensor, the PyTorch RNN runs
    across the *batch* as if it were time: no error when the sizes allow it, the hidden state
    leaks between samples, and every output differs. `keraslint verify` measures it as the
    max absolute difference of the RNN outputs between Keras and the PyTorch reference.

    ## Example
    ```python
    keras_rnn = keras.layers.LSTM(64, return_sequences=True)
    torch_rnn = torch.nn.LSTM(32, 64)
    ```

    ## Use instead
    ```python
    keras_rnn = keras.layers.LSTM(64, return_sequences=True)
    torch_rnn = torch.nn.LSTM(32, 64, batch_first=True)
    ```
    """

    code = "KL606"
    name = "rnn-batch-first"
    severity = "warning"
    fix_applicability = None
    tokens = ("torch",)

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.torch_rnns: list = []  # (node, cls, bound name or None)
        self.keras_rnn = False
        self.keras_time_major = False
        self.time_major_calls: set = set()  # names/attrs called with a transposed input

    def visit_Call(self, node: cst.Call) -> None:
        q = self.ctx.resolve(node.func)
        if q is not None:
            if q.startswith("keras.layers.") and q.rsplit(".", 1)[1] in KERAS_RNN_LAYERS:
                self.keras_rnn = True
                if arg_value(node, "time_major", None) is True:
                    self.keras_time_major = True
                return
            tq = torch_name(q)
            if tq in TORCH_RNNS:
                bf = arg_value(node, "batch_first", TORCH_RNN_BATCH_FIRST_POS[TORCH_RNNS[tq]])
                kw_false = bf is False and get_arg(node, "batch_first") is not None
                if bf is ABSENT or (bf is False and not kw_false):  # `batch_first=False`: chosen
                    self.torch_rnns.append((node, TORCH_RNNS[tq], self._bound_name()))
                return
        # rnn(x.transpose(0, 1)): the author feeds it time-major on purpose
        if node.args and self._is_time_major(node.args[0].value):
            name = self._callee_name(node.func)
            if name:
                self.time_major_calls.add(name)
            # keras_model.predict(x.transpose(1, 0, 2)): the data is time-major and the author
            # swaps it for Keras, so the PyTorch RNNs read it as they should
            if self._is_keras_model_call(node.func) and self._swaps_batch_time(node.args[0].value):
                self.keras_time_major = True

    def _is_keras_model_call(self, func: Any) -> bool:
        recv = func.value if isinstance(func, cst.Attribute) and func.attr.value in (
            "predict", "predict_on_batch", "__call__", "call") else func
        for _ in range(8):
            if not isinstance(recv, cst.Name):
                break
            v = self.ctx.assigned_value(recv.value)
            if v is None or v is recv:
                return False
            recv = v
        if isinstance(recv, cst.Call):
            q = self.ctx.resolve(recv.func)
            return bool(q) and q.split(".", 1)[0] in ("keras", "tensorflow", "tf_keras")
        return False

    def _swaps_batch_time(self, expr: Any, depth: int = 0) -> bool:
        """``x.transpose(1, 0, 2)``, ``x.permute(1, 0, 2)``, ``np.swapaxes(x, 0, 1)``,
        ``np.transpose(x, (1, 0, 2))``: exactly the first two axes exchanged."""
        if depth > 8:
            return False
        if isinstance(expr, cst.Name):
            v = self.ctx.assigned_value(expr.value)
            return v is not None and v is not expr and self._swaps_batch_time(v, depth + 1)
        if not isinstance(expr, cst.Call):
            return False
        q = self.ctx.resolve(expr.func)
        if q is None and isinstance(expr.func, cst.Attribute):
            m, args = expr.func.attr.value, expr.args
            if m in PRESERVE_METHODS:
                return self._swaps_batch_time(expr.func.value, depth + 1)
        elif q in ("numpy.transpose", "numpy.swapaxes", "tensorflow.transpose", "torch.transpose",
                   "torch.swapaxes", "torch.permute", "keras.ops.transpose", "keras.ops.swapaxes"):
            m, args = q.rsplit(".", 1)[1], expr.args[1:]
        else:
            return False
        vals = [_literal(a.value) for a in args]
        if len(vals) == 1 and isinstance(vals[0], tuple):
            vals = list(vals[0])  # x.transpose((1, 0, 2)), np.transpose(x, (1, 0, 2)), perm=[1, 0, 2]
        if not vals or not all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
            return False
        if m in ("transpose", "permute") and len(vals) >= 3:
            return vals == [1, 0] + list(range(2, len(vals)))
        if m in ("swapaxes", "swapdims", "transpose") and len(vals) == 2:
            return sorted(vals) == [0, 1]
        return False

    def _bound_name(self) -> Optional[str]:
        st = self.ctx.stack
        if len(st) >= 2 and isinstance(st[-2], cst.Assign):
            for t in st[-2].targets:
                name = self._callee_name(t.target)
                if name:
                    return name
        return None

    @staticmethod
    def _callee_name(func: Any) -> Optional[str]:
        if isinstance(func, cst.Name):
            return func.value
        if isinstance(func, cst.Attribute):
            return "." + func.attr.value
        return None

    def _is_time_major(self, expr: Any, depth: int = 0) -> bool:
        if depth > 8:
            return False
        if isinstance(expr, cst.Name):
            v = self.ctx.assigned_value(expr.value)
            return v is not None and v is not expr and self._is_time_major(v, depth + 1)
        if isinstance(expr, cst.Call):
            f = expr.func
            if isinstance(f, cst.Attribute) and f.attr.value in ("transpose", "permute", "swapaxes", "movedim"):
                return True
            if torch_name(self.ctx.resolve(f)) in ("torch.transpose", "torch.permute", "torch.swapaxes", "torch.movedim"):
                return True
        return False

    def finish(self) -> None:
        if not both_frameworks(self.ctx) or not self.keras_rnn or self.keras_time_major:
            return
        par = port_context(self.ctx)
        if par is None:
            return
        for node, cls, bound in self.torch_rnns:
            if bound is not None and bound in self.time_major_calls:
                continue
            report_in_port(self, node, f"`nn.{cls}` without `batch_first=True` beside Keras RNNs: it reads "
                                       f"(time, batch, features) while Keras reads (batch, time, features), so the "
                                       f"same tensor is run along the batch axis (pass `batch_first=True`)", par)


# ---------------------------------------------------------------------------
# KL607: torch reference compared with Keras while still in training mode
# ---------------------------------------------------------------------------

TORCH_TRAIN_MODE_MODULES = {
    "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout",
    "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm", "LazyBatchNorm1d", "LazyBatchNorm2d",
    "LazyBatchNorm3d", "TransformerEncoderLayer", "TransformerDecoderLayer", "TransformerEncoder",
    "TransformerDecoder", "Transformer",
}
COMPARE_FUNCS = {
    "numpy.testing.assert_allclose", "numpy.testing.assert_array_almost_equal", "numpy.testing.assert_almost_equal",
    "numpy.testing.assert_array_equal", "numpy.testing.assert_equal", "numpy.allclose", "numpy.isclose",
    "numpy.array_equal", "torch.testing.assert_close", "torch.testing.assert_allclose", "torch.allclose",
    "torch.isclose", "torch.equal", "numpy.subtract",
}
COMPARE_METHODS = {"assertAllClose", "assertAllEqual", "assertAlmostEqual", "assertArrayNear", "assertNear"}
KERAS_MODEL_FACTORIES = ("keras.models.", "keras.layers.", "keras.applications.", "keras.saving.load_model")


def _zero_dropout(name: str, call: cst.Call) -> bool:
    """``nn.Dropout(0.0)`` / ``nn.Dropout(p=0)``: the identity in both modes."""
    if "Dropout" not in name:
        return False
    p = arg_value(call, "p", 0)
    return isinstance(p, (int, float)) and not isinstance(p, bool) and p == 0


class ReferenceInTrainMode(Rule):
    """
    ## What it does
    In a file that uses both Keras and PyTorch, flags the forward call of a PyTorch module
    whose output is compared with a Keras model's output (`np.testing.assert_allclose`,
    `np.allclose`, `torch.testing.assert_close`, `assertAllClose`, or a subtraction) when the
    module contains dropout (with a rate other than a literal 0) or batch normalization and
    is never switched to inference with `.eval()` (or `.train(False)`) in the file. A
    comparison with a Keras output computed with `training=True` (train against train, on
    purpose) is not flagged.

    ## Why is this bad?
    PyTorch modules are created in training mode. Until `.eval()` is called, `nn.Dropout`
    zeroes a random fraction of the activations and scales the rest by 1/(1-p), and
    `nn.BatchNorm*d` normalizes with the statistics of the current batch and updates its
    running averages on every call. `torch.no_grad()` only disables gradient tracking; it
    changes neither. Keras's `model(x)` and `predict` run in inference mode, so the
    comparison differs by the dropout noise (of the order of the activations themselves)
    or the batch-statistics shift, and the port looks broken when it is not (or a real bug
    hides in the noise). `keraslint verify` measures it as the max absolute difference of the
    outputs with the module as called and after `.eval()`.

    ## Example
    ```python
    with torch.no_grad():
        expected = torch_net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(keras_net.predict(x), expected, atol=1e-5)
    ```

    ## Use instead
    ```python
    torch_net.eval()
    with torch.no_grad():
        expected = torch_net(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(keras_net.predict(x), expected, atol=1e-5)
    ```
    """

    code = "KL607"
    name = "reference-in-train-mode"
    severity = "warning"
    fix_applicability = None
    tokens = ("torch",)

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.torch_module_classes: dict = {}  # local nn.Module subclass -> has train-mode layers
        self.class_uses: dict = {}  # class name -> set of torch.nn classes / local classes constructed in it
        self.eval_names: set = set()
        self.compared: list = []  # (torch call node, module name)
        self.ctors: dict = {}  # dotted name -> first call assigned to it

    # -- local torch modules -------------------------------------------------------
    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        for arg in node.bases:
            q = torch_name(self.ctx.resolve(arg.value))
            d = dotted(arg.value)
            if q == "torch.nn.Module" or (d in self.torch_module_classes):
                self.torch_module_classes[node.name.value] = False
                self.class_uses[node.name.value] = set()

    def _enclosing_torch_class(self) -> Optional[str]:
        for n in reversed(self.ctx.stack):
            if isinstance(n, cst.ClassDef) and n.name.value in self.torch_module_classes:
                return n.name.value
        return None

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        q = self.ctx.resolve(func)
        tq = torch_name(q)
        cls = self._enclosing_torch_class()
        if cls is not None:
            if tq and tq.startswith("torch.nn.") and tq.rsplit(".", 1)[1] in TORCH_TRAIN_MODE_MODULES:
                if not _zero_dropout(tq.rsplit(".", 1)[1], node):
                    self.class_uses[cls].add("train-mode")
            elif tq in ("torch.nn.functional.dropout", "torch.nn.functional.batch_norm"):
                self.class_uses[cls].add("train-mode")
            elif isinstance(func, cst.Name) and func.value in self.torch_module_classes:
                self.class_uses[cls].add(func.value)
        if isinstance(func, cst.Attribute) and q is None:
            m = func.attr.value
            recv = dotted(func.value)
            if m == "eval" and not node.args and recv:
                self._mark_eval(recv)
            elif m == "train" and recv and node.args and literal_value(node.args[0].value) is False:
                self._mark_eval(recv)
        if q in COMPARE_FUNCS or (isinstance(func, cst.Attribute) and func.attr.value in COMPARE_METHODS):
            args = [a.value for a in node.args[:2]]
            self._compare(args)

    def visit_BinaryOperation(self, node: cst.BinaryOperation) -> None:
        if isinstance(node.operator, cst.Subtract):
            self._compare([node.left, node.right])

    # -- comparisons -------------------------------------------------------------
    def _compare(self, exprs: list) -> None:
        if len(exprs) < 2:
            return
        sides = [self._origin(e, 0) for e in exprs]
        torch_side = next((s for s in sides if s is not None and s[0] == "torch"), None)
        keras_side = any(s is not None and s[0] == "keras" for s in sides)
        if any(s is not None and s[0] == "keras-training" for s in sides):
            return  # the Keras side runs in training mode too: train against train, on purpose
        if torch_side is not None and keras_side:
            self.compared.append(torch_side[1:])

    def _origin(self, expr: Any, depth: int):
        """("torch", call node, module name) / ("keras",) / None for an output expression."""
        if depth > 12 or expr is None:
            return None
        if isinstance(expr, cst.Name):
            v = self.ctx.assigned_value(expr.value)
            return self._origin(v, depth + 1) if v is not None and v is not expr else None
        if isinstance(expr, cst.Subscript):
            return self._origin(expr.value, depth + 1)
        if isinstance(expr, cst.Attribute):
            if expr.attr.value in ("data", "T"):
                return self._origin(expr.value, depth + 1)
            return None
        if isinstance(expr, cst.Call):
            func = expr.func
            q = self.ctx.resolve(func)
            if q in ("numpy.array", "numpy.asarray", "keras.ops.convert_to_numpy", "numpy.squeeze") and expr.args:
                return self._origin(expr.args[0].value, depth + 1)
            if q is None and isinstance(func, cst.Attribute):
                m = func.attr.value
                if m in ("numpy", "detach", "cpu", "float", "double", "squeeze", "reshape", "astype", "clone",
                         "to", "view", "flatten"):
                    return self._origin(func.value, depth + 1)
                if m in ("predict", "predict_on_batch", "call"):
                    kind = self._model_kind(func.value)
                    return ("keras",) if kind == "keras" else None
            if q is None or isinstance(func, cst.Name):
                kind = self._model_kind(func)
                if kind == "keras":
                    training = get_arg(expr, "training")
                    if training is not None and literal_value(training.value) is True:
                        return ("keras-training",)
                    return ("keras",)
                if kind == "torch":
                    return ("torch", expr, dotted(func), self._ctor_of(func))
        return None

    def _model_kind(self, expr: Any, depth: int = 0) -> Optional[str]:
        """"keras" / "torch" / None for a model expression (a variable, ``self.net``)."""
        if depth > 8 or expr is None:
            return None
        if isinstance(expr, cst.Name):
            v = self.ctx.assigned_value(expr.value)
            return self._model_kind(v, depth + 1) if v is not None and v is not expr else None
        if isinstance(expr, cst.Call):
            func = expr.func
            if isinstance(func, cst.Attribute) and func.attr.value in ("to", "double", "float", "cpu", "cuda", "eval",
                                                                       "train", "requires_grad_"):
                return self._model_kind(func.value, depth + 1)
            q = self.ctx.resolve(func)
            if q is not None:
                if q.startswith(KERAS_MODEL_FACTORIES):
                    return "keras"
                tq = torch_name(q)
                if tq.startswith("torch.nn.") and tq.rsplit(".", 1)[1][:1].isupper():
                    return "torch"
                if tq.startswith(("torchvision.models.", "timm.create_model")):
                    return "torch"
                return self._project_kind(q)
            if isinstance(func, cst.Name):
                if func.value in self.torch_module_classes:
                    return "torch"
                if self.ctx.is_keras_class(func.value, "layer"):
                    return "keras"
                kinds = {self._model_kind(r, depth + 1) for r in self.ctx.returns_of(func.value)}
                if len(kinds) == 1:
                    return kinds.pop()
        return None

    def _project_kind(self, q: str) -> Optional[str]:
        """"torch" / "keras" for a class or factory of another module of the project
        (``from models import TorchNet``), through its summary; None when unknown."""
        proj = self.ctx.project
        if proj is None:
            return None
        c = proj.klass(q)
        if c is not None:
            return "torch" if c.kind == "torch" else "keras" if c.kind in ("model", "layer") else None
        f = proj.function(q)
        return "keras" if f is not None and f.returns == "model" else None

    def _has_train_mode_layers(self, ctor: Any, seen: Optional[set] = None, depth: int = 0) -> bool:
        if depth > 8 or ctor is None:
            return False
        if isinstance(ctor, cst.Call):
            func = ctor.func
            if isinstance(func, cst.Attribute) and func.attr.value in ("to", "double", "float", "cpu", "cuda",
                                                                       "requires_grad_"):
                return self._has_train_mode_layers(func.value, seen, depth + 1)
            if isinstance(func, cst.Name) and func.value in self.torch_module_classes:
                return self._class_has_train_mode(func.value, seen or set())
            tq = torch_name(self.ctx.resolve(func))
            if not tq:
                return False
            if tq.startswith(("torchvision.models.", "timm.create_model")):
                return True
            c = self.ctx.project.klass(tq) if self.ctx.project is not None else None
            if c is not None:
                return c.kind == "torch" and c.train_mode  # a torch module of another project module
            if tq.startswith("torch.nn."):
                name = tq.rsplit(".", 1)[1]
                if name in TORCH_TRAIN_MODE_MODULES:
                    return not _zero_dropout(name, ctor)
                if name in ("LSTM", "GRU", "RNN", "MultiheadAttention"):
                    p = arg_value(ctor, "dropout", None)
                    return isinstance(p, (int, float)) and p > 0
                if name in ("Sequential", "ModuleList"):
                    return any(self._has_train_mode_layers(a.value, seen, depth + 1) for a in ctor.args)
        return False

    def _class_has_train_mode(self, cls: str, seen: set) -> bool:
        if cls in seen:
            return False
        seen.add(cls)
        uses = self.class_uses.get(cls, set())
        if "train-mode" in uses:
            return True
        return any(self._class_has_train_mode(u, seen) for u in uses if u in self.torch_module_classes)

    def finish(self) -> None:
        if not both_frameworks(self.ctx):
            return
        for call, module, ctor in self.compared:
            if module is None or module in self.eval_names:
                continue
            if ctor is None or not self._has_train_mode_layers(ctor):
                continue
            if isinstance(ctor, cst.Call) and isinstance(ctor.func, cst.Attribute) and ctor.func.attr.value == "eval":
                continue
            self.report(call, f"PyTorch module `{module}` is compared with Keras outputs but never put in "
                              f"`.eval()`: its dropout/batch norm run in training mode (`torch.no_grad()` does not "
                              f"change that), so the comparison measures noise (call `{module}.eval()` first)")

    def _ctor_of(self, func: Any, depth: int = 0) -> Any:
        """The call that created the module ``func`` names (a variable in scope, or an
        attribute such as ``self.net`` assigned anywhere in the file)."""
        if depth > 8:
            return None
        if isinstance(func, cst.Name):
            v = self.ctx.assigned_value(func.value)
            if isinstance(v, cst.Name) and v is not func:
                return self._ctor_of(v, depth + 1)
            return v if isinstance(v, cst.Call) else None
        d = dotted(func)
        return self.ctors.get(d) if d else None

    def _mark_eval(self, name: str) -> None:
        """``name`` is switched to inference (and the module it iterates over, see below)."""
        self.eval_names.add(name)
        owner = self._loop_owner(name)
        if owner:
            self.eval_names.add(owner)

    def _loop_owner(self, name: str) -> Optional[str]:
        """``net`` when ``name`` is the loop variable of an enclosing
        ``for m in net.modules()`` (``children``, ``named_modules``, ``named_children``)."""
        for n in reversed(self.ctx.stack):
            if not isinstance(n, cst.For):
                continue
            it = n.iter
            if isinstance(it, cst.Call) and isinstance(it.func, cst.Attribute) and it.func.attr.value in (
                    "modules", "children", "named_modules", "named_children") and name in target_names(n.target):
                return dotted(it.func.value)
        return None

    def visit_Assign(self, node: cst.Assign) -> None:
        for t in node.targets:
            # for m in net.modules(): m.training = False (on one module it changes only that one)
            if isinstance(t.target, cst.Attribute) and t.target.attr.value == "training" \
                    and literal_value(node.value) is False and dotted(t.target.value):
                owner = self._loop_owner(dotted(t.target.value))
                if owner:
                    self.eval_names.add(owner)
            d = dotted(t.target)
            if d and isinstance(node.value, cst.Call):
                self.ctors.setdefault(d, node.value)
                # a module that is created already in eval mode
                f = node.value.func
                if isinstance(f, cst.Attribute) and f.attr.value == "eval":
                    self.eval_names.add(d)
