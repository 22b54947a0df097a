"""KL1: randomness — "the same script gives different numbers on every run".

All four rules read one recorder (:mod:`keraslint.timeline`, in the engine) that orders the
script's seeding calls, model builds and training calls in execution order. The library
facts they quote (which generators `keras.utils.set_random_seed` seeds, that Keras 3 layers
draw their seed from Python's `random` in their constructor) are checked against the
installed Keras / TensorFlow by ``tests/test_defaults_seeds_precision.py``.
"""

from __future__ import annotations

from typing import Optional

import libcst as cst

from keraslint.rule import AddImport, Fix, InsertStatements, Replace
from keraslint.semantics import dotted, get_arg, literal_value
from keraslint.values import code_of

from keraslint.timeline import (
    GENERATOR_NAMES,
    HEAD_TASK_SUFFIXES,
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


def _weightless(name: str) -> bool:
    """Keras layers that draw a seed for their noise but hold no weights."""
    return "Dropout" in name or name.startswith("Random") or name in (
        "GaussianNoise", "RandAugment", "MixUp", "CutMix", "AugMix", "Solarization")


_DETERMINISTIC_FLAGS = ("experimental_deterministic", "deterministic")


def _calls_in(node) -> list:
    out = []
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, cst.Call):
            out.append(n)
        if not isinstance(n, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            stack.extend(n.children)
    return out


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
    Flags a script or notebook that trains a Keras model from random weights and never
    sets a seed: its results (the accuracy a tutorial prints, the numbers a research
    script reports) cannot be reproduced by the next run. The message says why the runs
    are compared where the file says it: it asks for repeatable runs
    (`enable_op_determinism()`, `TF_DETERMINISTIC_OPS`, `PYTHONHASHSEED`) without
    seeding, it takes its settings from the command line or a config file (`argparse`,
    `absl.flags`, `fire`, `click`, `hydra`, `sys.argv`, a YAML/gin config: an experiment
    run several times), or it is a notebook / literate tutorial whose printed results a
    reader reruns. The finding is on the first construction that draws
    random weights in execution order (module level, an `if __name__ == "__main__":`
    block, a `main()`-style function it calls, methods of this file's classes), or on the
    training call when the model comes from elsewhere.

    Training means `fit`/`train_on_batch` on a Keras model, or an optimizer update
    (`apply_gradients`, `minimize`, `optimizer.apply`) in a custom loop. A `GradientTape`
    that only computes gradients (saliency maps, deep dream) does not train. A script
    that does not train (a guide that calls a layer to show its mask, a checkpoint
    conversion that loads weights and compares outputs, an inference script) is not
    flagged, nor is one that trains only a model whose weights are all loaded
    (`load_model`, `load_weights`, a pretrained `keras.applications` model, a keras-hub
    `from_preset` model with no new head). Fine-tuning a pretrained backbone with a new
    randomly initialized head does train random weights. An API demo that fits targets
    drawn at random (`fit(x, np.random.random((n, 16)))`) has nothing to reproduce and is
    not flagged.

    ## Why is this bad?
    Keras 3 layers and initializers draw their seed from Python's `random`
    (`random.randint(1, int(1e9))`) in their constructor, dropout layers draw theirs the
    same way, and `fit` shuffles arrays with `tf.random.shuffle` under TensorFlow's global
    seed. With no seed every run starts from different weights and sees batches in a
    different order, so two runs of the same script (two settings of an experiment), or a
    Keras run and its PyTorch port, cannot be compared number by number. `keraslint
    verify` measures it by running the script twice in fresh processes and comparing
    initial weights and losses (`max |Δ|` of the first loss and the initial weights).

    ## Example
    ```python
    import argparse
    import keras

    args = argparse.ArgumentParser().parse_args()
    model = keras.Sequential([keras.layers.Dense(10)])
    model.fit(x, y, epochs=3)
    ```

    ## Use instead
    ```python
    import argparse
    import keras

    keras.utils.set_random_seed(42)  # seeds Python, NumPy and the backend
    args = argparse.ArgumentParser().parse_args()
    model = keras.Sequential([keras.layers.Dense(10)])
    model.fit(x, y, epochs=3)
    ```
    """

    code = "KL101"
    name = "unseeded-training"
    severity = "warning"
    fix_applicability = "unsafe"
    tokens = ("keras", ".fit(")  # a train.py whose model comes from a project module may not name keras

    def finish(self) -> None:
        tl = self.tl
        seq = tl.sequence()
        if tl.seed_anywhere:
            return
        # training that runs when this file runs (a library module that defines a
        # `train_step` or a `train()` nobody calls here is not a script)
        trains = [s.event for s in seq if s.kind == "train"]
        # An API demo trains on targets drawn at random (`fit(x, np.random.random((n, 16)))`,
        # a generator yielding random pairs to a custom loop) or for a handful of steps
        # (`steps_per_epoch=5`, `ds.take(100)`): there is no result to reproduce.
        trains = [e for e in trains if not e.synthetic]
        if self.random_pairs and not any(self.ctx.resolve(e.node.func) is None and isinstance(e.node.func, cst.Attribute)
                                         and e.node.func.attr.value in ("fit", "train_on_batch", "fit_generator")
                                         for e in trains):
            trains = []
        if not trains:
            return
        why = self._context()
        if why is None:
            return
        reason, ctx_node = why
        builds = [s for s in seq if s.kind == "build" and self._random_build(s)]
        # where the random weights come from: a layer with weights first (a Dropout or a
        # random augmentation layer only draws a seed for its noise)
        first = next((s for s in builds if s.event.build.draws and not _weightless(s.event.build.name)),
                     next((s for s in builds if s.event.build.draws), builds[0] if builds else None))
        restored = any(s.kind == "restore" for s in seq)
        inputs_only = False
        if builds and all(s.event.build.layer in ("Input", "InputLayer") and not s.event.build.draws for s in builds) \
                and (restored or any(s.kind == "build" and self.tl.restores_weights(s.node) for s in seq)):
            # `keras.Input` -> a pretrained backbone -> pooling / normalization: the only
            # weights are loaded ones (keras.io sentence_embeddings_with_sbert)
            builds, first, inputs_only = [], None, True
        loaded = first is None and (all(e.loaded for e in trains) or restored or inputs_only)
        train = trains[0]
        if builds:
            # Reported where the model starts, as the catalog says: the first construction in
            # execution order that creates random weights, widened to the outermost
            # construction of its statement (`model = keras.Sequential([...])` is reported on
            # the `Sequential(` line, not on its first `Dense` inside). When the trained
            # model's own binding is known (`model = get_model()` / `keras.Sequential(...)`
            # before `model.fit`), the model is looked for there: an augmentation pipeline or
            # a demo layer built earlier is not the model that trains.
            own = self._trained_builds(seq, builds)
            first = self._outermost(seq, self._past_pretrained(seq, own[0] if own else builds[0]))
        refs = {"ctx": ctx_node} if ctx_node is not None else {}
        if first is not None:
            makes = "draws a random seed in a model" if _weightless(first.event.build.name) else \
                "creates random weights" if first.event.build.draws else "starts a model with random weights"
            what = f"`{short(first.node)}` {makes} that this script trains (`{short(train.node)}`, {{train}})"
            refs["train"] = train.node
            node = first.node
        else:
            what = f"`{short(train.node)}` trains a Keras model"
            node = train.node
        if loaded:
            # fine-tuning loaded weights: the start is fixed, the dropout masks and batch order are not
            what = f"`{short(train.node)}` fine-tunes a loaded Keras model"
            msg = (f"{what} and no seed is set{reason}: its dropout layers draw their seed from Python `random` "
                   f"({KERAS_SEED_DRAW}) and the batch order is shuffled unseeded, so every run ends with "
                   f"different weights and results (call `keras.utils.set_random_seed(n)` after the imports)")
        else:
            msg = (f"{what} and no seed is set{reason}: Keras 3 layers draw their initializer/dropout seed from "
                   f"Python `random` ({KERAS_SEED_DRAW}) when constructed, so every run starts from different "
                   f"weights and gives different results (call `keras.utils.set_random_seed(n)` after the imports)")
        self.report(node, msg, self._fix(), refs=refs)

    def _past_pretrained(self, seq, step):
        """``inputs = keras.Input(...)`` feeding a pretrained backbone (``ResNet50(weights=
        "imagenet")``) first: the random weights start at the first layer that creates
        them after the backbone (the new head), not at the Input."""
        if step.event.build.layer not in ("Input", "InputLayer"):
            return step
        i = seq.index(step)
        later = [s for s in seq[i + 1:] if s.kind == "build" and s.event.build.layer not in ("Input", "InputLayer")]
        if not later or not self.tl.restores_weights(later[0].node):
            return step
        return next((s for s in later[1:] if s.event.build.draws and not _weightless(s.event.build.name)), step)

    def _trained_builds(self, seq, builds) -> list:
        """The random builds of the statement that last binds the model trained first
        (``model`` of ``model.fit``; through one helper parameter: ``compile_and_fit(model)``
        called with ``linear``), in execution order; [] when that binding is not found or
        is a functional ``keras.Model(inputs, outputs)`` (its layers come before it)."""
        train = next(s for s in seq if s.kind == "train" and not s.event.synthetic)
        idx = seq.index(train)
        func = train.node.func
        if not isinstance(func, cst.Attribute):
            return []
        name = dotted(func.value)
        level = len(train.path) - 1  # the train's own scope
        for _hop in range(2):
            if name is None:
                return []
            binder = self._binder(seq[:idx], train.path[:level], name, level)
            if binder is not None:
                own = [b for b in builds if len(b.path) > level and b.path[:level] == train.path[:level]
                       and b.path[level] and b.path[level][0][0] is binder]
                if not own or own[0].event.build.name in ("Model", "Functional") or self._functional(binder):
                    return []  # none, or a functional model assembled from layers built before
                if self._wraps_earlier_models(own[0].node, seq[:idx], train.path[:level], level):
                    return []  # `GAN(discriminator, generator)`: its weights were built before
                return own
            # a parameter of the helper that trains: the argument at its call site
            if level == 0:
                return []
            name = self._argument(train.path[level - 1], name)
            level -= 1
        return []

    def _functional(self, stmt) -> bool:
        """``model = keras.Model(inputs=..., outputs=Dense(1)(x))``: a functional model."""
        for small in stmt.body:
            v = getattr(small, "value", None)
            if isinstance(v, cst.Call):
                q = self.ctx.resolve(v.func)
                if q is not None and q.rsplit(".", 1)[-1] in ("Model", "Functional") and q.startswith("keras."):
                    return True
        return False

    def _wraps_earlier_models(self, call, before, prefix, level) -> bool:
        """A model class given models built by earlier statements (``VAE(encoder, decoder)``)."""
        if not isinstance(call, cst.Call):
            return False
        for a in call.args:
            n = dotted(a.value)
            if n is None:
                continue
            stmt = self._binder(before, prefix, n, level)
            if stmt is not None and any(s.kind == "build" and len(s.path) > level and s.path[level]
                                        and s.path[level][0][0] is stmt for s in before):
                return True
        return False

    @staticmethod
    def _binder(before, prefix, name, level):
        """The last statement of the scope at ``level`` (reached through the call sites
        ``prefix``) that assigns ``name``, among the steps ``before``."""
        found = None
        for s in before:
            if len(s.path) <= level or s.path[:level] != prefix or not s.path[level]:
                continue
            stmt = s.path[level][0][0]
            if stmt is found:
                continue
            if isinstance(stmt, cst.SimpleStatementLine) and any(
                    isinstance(small, (cst.Assign, cst.AnnAssign))
                    and name in {dotted(t.target) for t in getattr(small, "targets", ())}
                    | ({dotted(small.target)} if isinstance(small, cst.AnnAssign) else set())
                    for small in stmt.body):
                found = stmt
        return found

    def _argument(self, chain, param):
        """The argument given for parameter ``param`` at the call site whose statement chain
        is ``chain`` (its innermost statement holds the call of the helper)."""
        if not chain:
            return None
        stmt = chain[0][0]
        for call in _calls_in(stmt):
            if not isinstance(call.func, cst.Name):
                continue
            for fi in self.ctx.functions.get(call.func.value, ()):
                params = [p.name.value for p in fi.node.params.params] if isinstance(fi.node, cst.FunctionDef) else []
                for i, a in enumerate(call.args):
                    if a.keyword is not None and a.keyword.value == param:
                        return dotted(a.value)
                    if a.keyword is None and a.star == "" and i < len(params) and params[i] == param:
                        return dotted(a.value)
        return None

    def _outermost(self, seq, step):
        """The first build event of ``step``'s statement (its outermost construction)."""
        chain = step.event.chain
        stmt = chain[0][0] if chain else None
        if stmt is None:
            return step
        for s in seq:
            if s.kind == "build" and s.event.chain and s.event.chain[0][0] is stmt:
                return s
            if s is step:
                break
        return step

    random_pairs = False  # a generator/function yields (inputs, targets) drawn at random

    def _random_pair(self, value) -> None:
        if isinstance(value, cst.Tuple) and len(value.elements) >= 2 \
                and self.tl.is_random_draw(value.elements[-1].value):
            self.random_pairs = True

    def visit_Yield(self, node: cst.Yield) -> None:
        if isinstance(node.value, cst.BaseExpression):
            self._random_pair(node.value)

    def visit_Return(self, node: cst.Return) -> None:
        if node.value is not None:
            self._random_pair(node.value)

    def visit_Attribute(self, node: cst.Attribute) -> None:
        if node.attr.value == "argv" and self.tl.cli is None and self.ctx.resolve(node) == "sys.argv":
            self.tl.cli = (node, "`sys.argv`", "the command line")

    def _context(self) -> Optional[tuple]:
        """What the message adds about why runs are compared: (text, node quoted as {ctx}).
        A parity context is not quoted: seeding Keras does not make a Keras run equal a
        PyTorch run (each framework has its own generators and initializers)."""
        tl = self.tl
        if tl.intent is not None:
            return f"; the script asks for repeatable runs ({tl.intent[1]}, {{ctx}}) but seeds nothing", tl.intent[0]
        if tl.cli is not None:
            return (f"; the script takes its settings from {tl.cli[2]} ({tl.cli[1]}, {{ctx}}), so its runs are "
                    f"compared with each other"), tl.cli[0]
        if self._document():
            return "; a reader who reruns this notebook/tutorial cannot reproduce its printed results", None
        return "", None

    def _document(self) -> bool:
        """A notebook, or a literate tutorial script (keras.io style: its text is in three
        or more module-level string blocks between the code cells)."""
        if self.ctx.path.endswith(".ipynb"):
            return True
        n = 0
        for st in self.ctx.module.body[1:]:
            if isinstance(st, cst.SimpleStatementLine) and len(st.body) == 1 and isinstance(st.body[0], cst.Expr) \
                    and isinstance(st.body[0].value, (cst.SimpleString, cst.ConcatenatedString)):
                n += 1
                if n >= 3:
                    return True
        return False

    def _random_build(self, step) -> bool:
        """Does this construction create random weights? Layers that draw a seed, `Input`
        (a functional model starts there), this file's layer classes, keras-hub models
        built from a config and keras-hub tasks given a new head (`from_preset(...,
        num_classes=...)`) do; a preprocessing layer built on its own (`Rescaling`,
        `TextVectorization`), a model loaded with its weights (`load_model`), a pretrained
        `keras.applications` model (weights other than None) or a keras-hub preset do not."""
        b = step.event.build
        if b.layer is None and self.tl.restores_weights(step.node):
            return False  # a pretrained model (keras_cv.models.ResNet50V2(weights="imagenet"))
        if b.draws:
            return True
        if b.layer is not None:
            return b.layer in ("Input", "InputLayer")
        q = self.ctx.resolve(step.node.func)
        raw = self.ctx.qualname(step.node.func)
        if raw is not None and ".layers." in raw and raw.startswith(("keras_hub.", "keras_nlp.", "keras_cv.")):
            return False  # a keras-hub layer that draws nothing (preprocessing, resizing)
        if raw is not None and raw.endswith(".from_preset"):
            owner = raw.split(".")[-2]
            return owner.endswith(HEAD_TASK_SUFFIXES)
        if q is None:
            return True  # a layer/model class of this file
        if q.startswith("keras.applications."):
            return True  # weights=None
        return q not in ("keras.models.Sequential", "keras.models.Model")

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
    Only the script's seeding counts (module level, the main function, a helper that only
    seeds): a teaching helper that seeds its own draws (`def apply_noise(x, seed):
    np.random.seed(seed); ...`) is not it. Only draws that run after the seed count, and
    the script must train: a conversion check or a demo sampling from a loaded model
    seeds to fix its inputs, and what it leaves unseeded changes nothing it compares.

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
        if not seeds or not tl.prepares_training():
            # a script that trains nothing (a conversion check, sampling from a loaded model)
            # seeds to fix its inputs; generators it leaves unseeded change nothing it compares
            return
        covered = set()
        for s in seeds:
            covered |= s.event.covers
        # A draw that runs before the first seed in execution order is not something the
        # seed could cover (KL103's business if a seed was meant for it); draws whose order
        # is unknown (a layer's `call`, a function run by a callback) count.
        first = next(i for i, s in enumerate(seq) if s.kind == "seed")
        last_at: dict = {}
        for i, s in enumerate(seq):
            if s.kind == "use":
                last_at[id(s.node)] = i
        # Weight initialization and `fit`'s shuffling matter only if a model is trained after
        # the seed (a seed set to sample inputs for a loaded or already trained model covers
        # those samples, not the earlier training).
        # (a model compiled for training or wrapped for scikit-learn after the seed counts:
        # its `fit` may run through a loop over estimators)
        trains_after = any(i > first and (s.kind == "prepare" or (s.kind == "train" and not s.event.loaded))
                           for i, s in enumerate(seq))
        uses = {g: [(d, n) for d, n in tl.uses.get(g, ()) if last_at.get(id(n), first + 1) > first
                    and (trains_after or id(n) not in tl.implicit_uses)]
                for g in (PY, NP, TF, TORCH)}
        missing = [g for g in (PY, NP, TF, TORCH) if uses[g] and g not in covered]
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
            for desc, _ in uses[g]:
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
    Flags a script that sets seeds (so its author wants repeatable runs) and trains a
    Keras/TensorFlow model (`fit`, `train_on_batch`, an optimizer update in a custom
    loop), but never calls `tf.config.experimental.enable_op_determinism()` (nor sets
    `TF_DETERMINISTIC_OPS=1`). The finding is on the seed call. Files that select a
    non-TensorFlow Keras backend (`os.environ["KERAS_BACKEND"] = "jax"`) are not flagged:
    the call only affects TensorFlow ops. Seeds in a script that does not train (seeding
    the inputs of a forward comparison between two frameworks) are not flagged: the
    nondeterministic kernels in question are the ones training runs.

    The seeds must cover what training draws from (Python `random` for Keras 3
    initializers and TensorFlow's seed, e.g. `keras.utils.set_random_seed`): with only
    `np.random.seed`, op determinism could not make two runs equal (KL102 reports that).
    On CPU a seeded TensorFlow training run is already bitwise repeatable (measured on
    TensorFlow 2.21: two fresh processes give identical losses and weights without op
    determinism), so the finding is about GPU runs, where Keras training usually runs;
    it is an info. A file that turns determinism off itself (`options.experimental_deterministic
    = False`, `map(..., deterministic=False)`) or trains on CPUs only (every GPU hidden,
    `CUDA_VISIBLE_DEVICES="-1"`, virtual CPU devices) is not flagged.

    ## Why is this bad?
    Seeds fix the random numbers, not the arithmetic. Op determinism is off by default in
    TensorFlow (2.21 included), and on a GPU several kernels are nondeterministic
    (atomic-add reductions and `scatter`/segment sums, the cuDNN convolution algorithms
    that autotuning picks, `tf.data` maps run in parallel), so they can sum in a
    different order and two seeded GPU runs drift apart after a few steps. On CPU the
    same seeded run repeats exactly. `keraslint verify` runs the script twice and reports
    the largest loss difference.

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

    opted_out = False  # the file turns determinism off itself, or trains on CPUs only

    def visit_Assign(self, node: cst.Assign) -> None:
        # `options.experimental_deterministic = False` / `options.deterministic = False`:
        # the author trades repeatability for input-pipeline speed on purpose
        if literal_value(node.value) is False and any(
                isinstance(t.target, cst.Attribute) and t.target.attr.value in _DETERMINISTIC_FLAGS
                for t in node.targets):
            self.opted_out = True
        # os.environ["CUDA_VISIBLE_DEVICES"] = "-1" / "": no GPU, no nondeterministic kernels
        for t in node.targets:
            tg = t.target
            if isinstance(tg, cst.Subscript) and self.ctx.resolve(tg.value) == "os.environ" and len(tg.slice) == 1 \
                    and isinstance(tg.slice[0].slice, cst.Index) \
                    and literal_value(tg.slice[0].slice.value) == "CUDA_VISIBLE_DEVICES" \
                    and literal_value(node.value) in ("", "-1"):
                self.opted_out = True

    def visit_Call(self, node: cst.Call) -> None:
        q = self.ctx.resolve(node.func)
        if q is None:
            # ds.map(f, deterministic=False) / ds.interleave(..., deterministic=False)
            d = get_arg(node, "deterministic")
            if d is not None and literal_value(d.value) is False:
                self.opted_out = True
            return
        if q.startswith("tensorflow.config.") and q.endswith(".set_visible_devices"):
            devs, kind = get_arg(node, "devices", 0), get_arg(node, "device_type", 1)
            if devs is not None and isinstance(devs.value, cst.List) and not devs.value.elements \
                    and kind is not None and literal_value(kind.value) == "GPU":
                self.opted_out = True  # every GPU hidden: the run is on CPU
        elif q.startswith("tensorflow.config.") and q.endswith(("set_logical_device_configuration",
                                                                 "set_virtual_device_configuration")):
            dev = get_arg(node, "device", 0)
            base = dev.value if dev is not None else None
            while isinstance(base, cst.Subscript):
                base = base.value  # phy_devices[0]
            bound = self.ctx.assigned_value(base.value) if isinstance(base, cst.Name) else None
            if dev is not None and any("cpu" in code_of(e).lower() for e in (dev.value, bound) if e is not None):
                self.opted_out = True  # virtual CPU devices (a DTensor / strategy demo on CPU)

    def finish(self) -> None:
        tl = self.tl
        seq = tl.sequence()
        if tl.determinism or self.opted_out or not any(s.kind == "train" for s in seq):
            return
        if tl.backend is not None and tl.backend != "tensorflow":
            return
        if not (self.ctx.uses_keras() or self.ctx.uses_tensorflow()):
            return
        seeds = [s for s in seq if s.kind == "seed" and s.event.covers & {PY, NP, TF}]
        if not seeds:
            return
        covered: set = set()
        for x in seeds:
            covered |= x.event.covers
        if not {PY, TF} <= covered and not any(x.kind == "opaque-seed" for x in seq):
            # Keras 3 initializers (Python `random`) or TF ops stay unseeded: op determinism
            # cannot make two runs equal (KL102 reports the missing generators)
            return
        s = next((x for x in seeds if TF in x.event.covers), seeds[0])
        msg = (f"seeds are set (`{short(s.node)}`) and the script trains, but TensorFlow op determinism is off "
               f"(the default): on a GPU, nondeterministic kernels (atomic reductions, cuDNN autotuning) make two "
               f"seeded runs differ (on CPU they repeat exactly); call "
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
