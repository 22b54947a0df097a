"""KL3: graph mode — custom layers, train steps, ``tf.function``, ``Dataset.map``.

Code in a graph-context function runs twice in two different worlds: once eagerly (a
quick test in a notebook, ``model(x)``) and once traced into a graph by ``fit``/``predict``
/``tf.function``/``Dataset.map``. Everything here works in the first world and breaks or
silently freezes in the second.
"""

from __future__ import annotations

import libcst as cst

from keraslint.rule import Rule


def _short(node) -> str:
    """Source-like text of a small expression, for messages."""
    try:
        text = cst.Module([]).code_for_node(node)
    except Exception:  # noqa: BLE001
        return "expression"
    text = " ".join(text.split())
    return text if len(text) <= 40 else text[:37] + "..."


class NumpyInGraph(Rule):
    """
    ## What it does
    Flags a NumPy function applied to a tensor inside a graph-context function: `call`
    of a custom layer or model, `train_step`/`test_step`/`predict_step`/`compute_loss`,
    a `@tf.function`, a loss or metric given to `compile`, or a function given to
    `Dataset.map`/`filter` or `layers.Lambda`. NumPy on shapes, dtypes and constants
    (`np.sqrt(self.units)`, `np.prod(x.shape[1:])`, `np.pi`) is fine and not flagged.

    ## Why is this bad?
    NumPy needs concrete values. Eagerly (`layer(x)` in a notebook) a tensor converts to an
    array and the call works, so the eager result looks right. Under `model.fit`,
    `predict` or `tf.function` the tensor is symbolic: the conversion raises
    (`NotImplementedError: Cannot convert a symbolic tf.Tensor to a numpy array`) or, for
    values captured at trace time, the result is frozen into the graph as a constant.
    Either way the NumPy op is invisible to autodiff, so every variable upstream of it
    gets no gradient. `keraslint verify` measures it as `eager-vs-compiled`: the max
    absolute difference between eager and compiled outputs (or the failure on one side),
    plus the number of trainable variables left without a gradient.

    ## Example
    ```python
    class Scale(keras.layers.Layer):
        def call(self, x):
            return np.sin(x) * 2.0
    ```

    ## Use instead
    ```python
    class Scale(keras.layers.Layer):
        def call(self, x):
            return keras.ops.sin(x) * 2.0
    ```
    """

    code = "KL301"
    name = "numpy-in-graph"
    severity = "error"
    fix_applicability = None
    tokens = ("numpy",)

    def visit_Call(self, node: cst.Call) -> None:
        fn = self.ctx.function
        if fn is None or not fn.tainted:
            return
        q = self.ctx.resolve(node.func)
        if q is None or not q.startswith("numpy.") or q.startswith("numpy.random."):
            return
        tainted = next((a.value for a in node.args if self.ctx.is_tainted(a.value)), None)
        if tainted is None:
            return
        short = q.replace("numpy.", "np.", 1)
        self.report_in_graph(
            node,
            f"`{short}` on tensor `{_short(tainted)}` inside {{where}}: NumPy only works eagerly; under "
            f"`fit`/`predict`/`tf.function` it fails or freezes the value, and it cuts the gradient "
            f"(use `keras.ops`/`tf.math`)",
        )
