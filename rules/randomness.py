"""KL1: randomness — "the same script gives different numbers on every run".

All four rules read one recorder (:mod:`keraslint.rules._timeline`) that orders the
script's seeding calls, model builds and training calls in execution order. The library
facts they quote (which generators `keras.utils.set_random_seed` seeds, that Keras 3 layers
draw their seed from Python's `random` in their constructor) are checked against the
installed Keras / TensorFlow by ``tests/test_defaults_seeds_precision.py``.
"""

from __future__ import annotations

from typing import Optional

import libcst as cst

from keraslint.rule import AddImport, Fix, InsertStatements, Replace
from keraslint.semantics import get_arg, literal_value

from ._timeline import (
    GENERATOR_NAMES,
    KERAS_SEED_DRAW,
    NP,
    PY,
    SEED_APIS,
    SET_RANDOM_SEED,
    TF,
    TORCH,
    TimelineRule as _TimelineRule,
    move_before,
    short,
)


# Loaders that restore trained weights: nothing random until the model is trained.
RESTORING_LOADERS = {"keras.models.load_model", "keras.saving.load_model", "keras.models.model_from_json",
                     "keras.models.model_from_config"}


def _standalone(step) -> Optional[cst.SimpleStatementLine]:
    """The statement that is exactly this call (``np.random.seed(0)`` on its own line)."""
    chain = step.path[-1]
    if not chain:
        return None
    stmt = chain[0][0]
    if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Expr) \
            and stmt.body[0].value is step.node:
        return stmt
    return None


def _seed_arg(call: cst.Call):
    a = call.args[0] if call.args and call.args[0].keyword is None else (get_arg(call, "seed") or get_arg(call, "a"))
    return a.value if a is not None else None


def _call_site(late, early):
    """Where to report ``late`` (a step that runs after ``early``): the statement, at the
    level where their call paths part, that leads to it: ``seed_everything()`` rather than
    the ``random.seed(seed)`` inside that helper, which is fine in itself."""
    a, b = late.path, early.path
    k = 0
    while k < len(a) - 1 and k < len(b) - 1 and len(a[k]) == len(b[k]) \
            and all(x[0] is y[0] for x, y in zip(a[k], b[k])):
        k += 1
    if k < len(a) - 1 and a[k]:
        stmt = a[k][0][0]
        if isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 \
                and isinstance(stmt.body[0], (cst.Expr, cst.Assign)) and isinstance(stmt.body[0].value, cst.Call):
            return stmt.body[0].value  # the call itself, not its comments
        return stmt
    return late.node


class UnseededTraining(_TimelineRule):
    """
    ## What it does
    Flags a script that builds or trains a Keras model (layers, initializers or models
    created, `fit`, a `GradientTape` loop, at module level, in an `if __name__ ==
    "__main__":` block or in a `main()`-style function it calls) and never sets a seed.
    The finding is on the first build or training call in execution order. A library
    module that only defines layers or model factories is not a script and is not flagged;
    nor is an inference script that only loads a trained model (`load_model`, a pretrained
    `keras.applications` model) and predicts. Preprocessing layers built on their own
    (`TextVectorization`, `Rescaling`) draw no seed and do not count as the start of the model.

    ## Why is this bad?
    Keras 3 layers and initializers draw their seed from Python's `random`
    (`random.randint(1, int(1e9))`) in their constructor, dropout layers draw theirs the
    same way, and `fit` shuffles arrays with `tf.random.shuffle` under TensorFlow's global
    seed. With no seed every run starts from different weights and sees batches in a
    different order, so two runs of the same script, or a Keras run and its PyTorch port,
    cannot be compared number by number. `keraslint verify` measures it by running the
    script twice in fresh processes and comparing initial weights and losses
    (`max |Δ|` of the first loss and the initial weights).

    ## Example
    ```python
    import keras

    model = keras.Sequential([keras.layers.Dense(10)])
    model.fit(x, y, epochs=3)
    ```

    ## Use instead
    ```python
    import keras

    keras.utils.set_random_seed(42)  # seeds Python, NumPy and the backend
    model = keras.Sequential([keras.layers.Dense(10)])
    model.fit(x, y, epochs=3)
    ```
    """

    code = "KL101"
    name = "unseeded-training"
    severity = "warning"
    fix_applicability = "unsafe"
    tokens = ("keras",)

    def finish(self) -> None:
        tl = self.tl
        seq = tl.sequence()
        if tl.seed_anywhere:
            return
        first = next((s for s in seq if s.kind == "train" or (s.kind == "build" and self._random_build(s))), None)
        if first is None:
            return
        if first.kind == "build":
            what = f"`{short(first.node)}` builds a Keras model"
        else:
            what = f"`{short(first.node)}` trains a Keras model"
        msg = (f"{what} and this script never sets a seed: Keras 3 layers draw their initializer/dropout seed "
               f"from Python `random` ({KERAS_SEED_DRAW}) when constructed, so every run starts from "
               f"different weights (call `keras.utils.set_random_seed(n)` after the imports)")
        self.report(first.node, msg, self._fix())

    def _random_build(self, step) -> bool:
        """Does this construction start a randomly initialized model? Layers that draw a
        seed, models, `Input` (a functional model starts there), this file's layer classes
        and keras-hub models do; a preprocessing layer built on its own (`Rescaling`,
        `TextVectorization`), a model loaded with its weights (`load_model`) or a pretrained
        `keras.applications` model (weights other than None) do not."""
        b = step.event.build
        if b.draws:
            return True
        if b.layer is not None:
            return b.layer in ("Input", "InputLayer")
        q = self.ctx.resolve(step.node.func)
        if q is None:
            return True  # a layer/model class of this file, keras-hub
        if q.startswith("keras.applications."):
            w = get_arg(step.node, "weights")
            return w is not None and literal_value(w.value) is None
        if q in RESTORING_LOADERS:
            return False
        return True

    def _fix(self) -> Optional[Fix]:
        spelling, imp = self.tl.set_random_seed_spelling()
        if spelling is None:
            return None
        edits = [InsertStatements(f"{spelling}({self.seed_value()})\n")]
        if imp is not None:
            edits.insert(0, AddImport(*imp))
        return Fix.unsafe(*edits, description="seed Python, NumPy and the backend after the imports")


class PartialSeeding(_TimelineRule):
    """
    ## What it does
    Flags a script that seeds some random generators but not all that the file really
    draws from: only `np.random.seed`, only `tf.random.set_seed`, no Python `random`, or
    `keras.utils.set_random_seed` in a file that also builds PyTorch modules (it seeds
    torch only under the torch backend). The message names each unseeded generator and
    the call that uses it: Keras 3 layer constructors, `np.random.permutation`,
    `random.shuffle`, `tf.random.*` or `Dataset.shuffle` without `seed=`, `fit`'s shuffling.

    ## Why is this bad?
    Each library has its own generator. `tf.random.set_seed` does not make Keras 3 weights
    repeatable: layers and initializers draw their seed from Python's `random`
    (`random.randint(1, int(1e9))`) in their constructor. `np.random.seed` leaves
    `fit`'s shuffling (`tf.random.shuffle`) and every layer's initialization unseeded. The
    run looks seeded but differs every time. `keraslint verify` runs the script twice and
    reports the spread of the initial weights and the first losses.

    ## Example
    ```python
    import numpy as np
    import tensorflow as tf
    import keras

    tf.random.set_seed(0)
    idx = np.random.permutation(len(x))
    model = keras.Sequential([keras.layers.Dense(10)])
    ```

    ## Use instead
    ```python
    import numpy as np
    import tensorflow as tf
    import keras

    keras.utils.set_random_seed(0)  # Python, NumPy and TensorFlow
    idx = np.random.permutation(len(x))
    model = keras.Sequential([keras.layers.Dense(10)])
    ```
    """

    code = "KL102"
    name = "partial-seeding"
    severity = "warning"
    fix_applicability = "unsafe"
    tokens = ("seed",)

    def finish(self) -> None:
        tl = self.tl
        seq = tl.sequence()
        if not tl.is_script():
            return
        if any(s.kind == "opaque-seed" for s in seq):
            return
        seeds = [s for s in seq if s.kind == "seed"]
        if not seeds:
            return
        covered = set()
        for s in seeds:
            covered |= s.event.covers
        missing = [g for g in (PY, NP, TF, TORCH) if g in tl.uses and g not in covered]
        if not missing:
            return
        names = []
        for s in seeds:
            n = f"`{short(s.node.func)}`"
            if n not in names:
                names.append(n)
        have = " and ".join(GENERATOR_NAMES[g] for g in (PY, NP, TF, TORCH) if g in covered) or "nothing"
        parts = []
        for g in missing:
            descs: list = []
            for desc, _ in tl.uses[g]:
                if desc not in descs:
                    descs.append(desc)
            shown = "; ".join(descs[:2]) + (f"; +{len(descs) - 2} more" if len(descs) > 2 else "")
            parts.append(f"{GENERATOR_NAMES[g]} ({shown})")
        verb = "seeds" if len(names) == 1 else "seed"
        msg = (f"{' and '.join(names)} {verb} only {have}; this script also draws from unseeded "
               f"{' and '.join(parts)}")
        if TORCH in missing and SET_RANDOM_SEED in {self.ctx.resolve(s.node.func) for s in seeds}:
            msg += "; `keras.utils.set_random_seed` seeds torch only under the torch backend"
        self.report(seeds[0].node, msg, self._fix(seeds, missing))

    def _fix(self, seeds: list, missing: list) -> Optional[Fix]:
        if TORCH in missing:
            return None
        qs = [self.ctx.resolve(s.node.func) for s in seeds]
        if SET_RANDOM_SEED in qs:
            return None
        spelling, imp = self.tl.set_random_seed_spelling()
        if spelling is None:
            return None
        covered_by_srs = SEED_APIS[SET_RANDOM_SEED]
        replaceable = [s for s, q in zip(seeds, qs) if SEED_APIS[q] <= covered_by_srs]
        edits: list = []
        if replaceable:
            first = replaceable[0]
            value = _seed_arg(first.node)
            if value is None:
                return None
            code = f"{spelling}({self.ctx.module.code_for_node(value)})"
            edits.append(Replace(first.node, code))
            for s in replaceable[1:]:
                stmt = _standalone(s)
                if stmt is None:
                    return None
                edits.append(Replace(stmt, None))
        else:
            # only torch.manual_seed: add Keras's seed after it, same value
            first = seeds[0]
            value = _seed_arg(first.node)
            if value is None or _standalone(first) is None:
                return None
            edits.append(InsertStatements(f"{spelling}({self.ctx.module.code_for_node(value)})\n",
                                          anchor=first.node, after=True))
        if imp is not None:
            edits.insert(0, AddImport(*imp))
        return Fix.unsafe(*edits, description="seed Python, NumPy and TensorFlow with one call")


class SeedAfterBuild(_TimelineRule):
    """
    ## What it does
    Flags a seeding call that runs, in execution order, after a Keras layer or
    initializer that draws a seed was constructed (`Dense`, `Conv2D`, `Embedding`,
    `LSTM`, `Dropout`, random augmentation layers, `GlorotUniform()`, ...), when no seed
    was set before that construction. Reseeding before a second model is fine and not
    flagged.

    ## Why is this bad?
    Keras 3 layers and initializers draw their seed from Python's `random`
    (`random.randint(1, int(1e9))`) in their constructor, not when the weights are
    created, so a seed set after `Dense(...)` no longer reaches it: its kernel differs on
    every run although the script looks seeded. (Measured on Keras 3.15.1: a `Dense`
    constructed before `keras.utils.set_random_seed(0)` has a different kernel in each
    fresh process; constructed after it, the same.) `keraslint verify` runs the script
    twice and compares the initial weights.

    ## Example
    ```python
    model = keras.Sequential([keras.layers.Dense(10)])
    keras.utils.set_random_seed(0)
    ```

    ## Use instead
    ```python
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.layers.Dense(10)])
    ```
    """

    code = "KL103"
    name = "seed-after-build"
    severity = "error"
    fix_applicability = "unsafe"
    tokens = ("seed",)

    def finish(self) -> None:
        seq = self.tl.sequence()
        covered: set = set()
        draw = None
        for i, s in enumerate(seq):
            if s.kind == "seed":
                covered |= s.event.covers
            elif s.kind == "opaque-seed":
                covered |= {PY, NP, TF, TORCH}
            elif s.kind == "build" and s.event.build.draws and s.event.build.draws not in covered:
                draw = i
                break
        if draw is None:
            return
        d = seq[draw]
        gen = d.event.build.draws
        for s in seq[draw + 1:]:
            if s.kind == "opaque-seed" or (s.kind == "seed" and gen in s.event.covers):
                site = _call_site(s, d)
                what = f"`{short(s.node)}`" if site is s.node else \
                    f"`{short(site)}` (which calls `{short(s.node)}`)"
                msg = (f"{what} runs after `{short(d.node)}` was constructed: Keras 3 layers and "
                       f"initializers draw their seed from Python `random` ({KERAS_SEED_DRAW}) in the "
                       f"constructor, so `{d.event.build.name}` is not covered by this seed and its weights "
                       f"change on every run")
                fix = None
                mv = move_before(s, d)
                if mv is not None:
                    stmt, anchor = mv
                    code = cst.Module([]).code_for_node(stmt.with_changes(leading_lines=()))
                    fix = Fix.unsafe(Replace(stmt, None), InsertStatements(code, anchor=anchor, after=False),
                                     description="move the seed above the first layer")
                self.report(site, msg, fix)
                return


class OpDeterminismOff(_TimelineRule):
    """
    ## What it does
    Flags a script that sets seeds (so its author wants repeatable runs) and trains or
    builds a Keras/TensorFlow model, but never calls
    `tf.config.experimental.enable_op_determinism()` (nor sets `TF_DETERMINISTIC_OPS=1`).
    The finding is on the seed call. Files that select a non-TensorFlow Keras backend
    (`os.environ["KERAS_BACKEND"] = "jax"`) are not flagged: the call only affects
    TensorFlow ops.

    ## Why is this bad?
    Seeds fix the random numbers, not the arithmetic. Op determinism is off by default in
    TensorFlow (2.21 included), so ops with nondeterministic kernels (GPU reductions,
    `scatter`/segment sums, cuDNN convolution algorithms picked by autotuning, parallel
    `tf.data` maps) can still sum in a different order, and two seeded runs drift apart
    after a few steps. `keraslint verify` runs the script twice and reports the largest
    loss difference.

    ## Example
    ```python
    keras.utils.set_random_seed(0)
    model.fit(x, y)
    ```

    ## Use instead
    ```python
    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()
    model.fit(x, y)
    ```
    """

    code = "KL104"
    name = "op-determinism-off"
    severity = "info"
    fix_applicability = "unsafe"
    tokens = ("seed",)

    def finish(self) -> None:
        tl = self.tl
        seq = tl.sequence()
        if tl.determinism or not tl.is_script():
            return
        if tl.backend is not None and tl.backend != "tensorflow":
            return
        if not (self.ctx.uses_keras() or self.ctx.uses_tensorflow()):
            return
        seeds = [s for s in seq if s.kind == "seed" and s.event.covers & {PY, NP, TF}]
        if not seeds:
            return
        s = next((x for x in seeds if TF in x.event.covers), seeds[0])
        msg = (f"seeds are set (`{short(s.node)}`) but TensorFlow op determinism is off (the default): "
               f"nondeterministic kernels can still make two seeded runs differ; call "
               f"`tf.config.experimental.enable_op_determinism()` after the seed")
        self.report(s.node, msg, self._fix(s))

    def _fix(self, s) -> Optional[Fix]:
        if _standalone(s) is None:
            return None
        tf = self.tl.spell("tensorflow")
        edits: list = []
        if tf is None:
            tf = "tf"
            edits.append(AddImport("tensorflow", None, "tf"))
        edits.append(InsertStatements(f"{tf}.config.experimental.enable_op_determinism()\n", anchor=s.node,
                                      after=True))
        return Fix.unsafe(*edits, description="enable TensorFlow op determinism after the seed")
