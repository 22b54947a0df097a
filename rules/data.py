"""KL5: input pipelines (``tf.data``).

A ``tf.data`` pipeline decides what one training step sees: how many samples, in which
order, and which samples together. The hazards here change that silently: a pipeline with
no ``batch`` feeds single rows as batches, a ``batch_size=`` given to ``fit`` next to a
dataset is ignored, ``shuffle`` after ``batch`` shuffles batches instead of samples, and
``cache`` after ``shuffle`` freezes the first epoch's order.

The five rules ask the file's dataset flow (``ctx.datasets``, :mod:`keraslint.dataflow`):
it follows a dataset through assignments and reassignments, method chains across lines,
both arms of an ``if`` and loop bodies, and helpers of the same file (and of other project
modules) that return one, and answers, at each ``fit``/``evaluate``/``predict``: is it a
``tf.data.Dataset`` of known origin, is it batched, is it prefetched. A dataset of unknown
origin (a parameter, ``tfds.load``) has an unknown batch state and is never flagged for
batching or prefetching. A name that may hold several pipelines is reported for a state
(unbatched, prefetch turned off) only when every alternative has it.

The fixes edit method chains; their CST helpers are below, with the rules that use them.
"""

from __future__ import annotations

from typing import Any, Optional

import libcst as cst

from keraslint.dataflow import KERAS_DATASET_UTILS, Combine, Flat, PipelineFlow, Source, Step, linearize
from keraslint.rule import AddImport, Fix, Replace, Rule
from keraslint.semantics import NOT_LITERAL, get_arg, literal_value

# ---------------------------------------------------------------------------
# CST helpers for the fixes
# ---------------------------------------------------------------------------


def _rebuild(root: cst.Call, base: Any, payloads: list, dots: list) -> Any:
    """The chain ``base`` + payloads (call nodes whose attr/args are reused), with the
    given dots, wearing ``root``'s parentheses."""
    cur = base
    for call, dot in zip(payloads, dots):
        cur = cst.Call(
            func=cst.Attribute(value=cur, dot=dot, attr=call.func.attr),
            args=call.args,
            whitespace_after_func=call.whitespace_after_func,
            whitespace_before_args=call.whitespace_before_args,
        )
    if cur is base:
        return base.with_changes(lpar=root.lpar, rpar=root.rpar) if root.lpar else base
    return cur.with_changes(lpar=root.lpar, rpar=root.rpar)


def _fresh_dot(dot: cst.Dot) -> cst.Dot:
    """A copy of ``dot``'s layout (a line break and the indentation when the chain is
    written one step per line) without the comments and blank lines before it."""
    ws = dot.whitespace_before
    if isinstance(ws, cst.ParenthesizedWhitespace):
        return dot.with_changes(whitespace_before=ws.with_changes(first_line=cst.TrailingWhitespace(),
                                                                  empty_lines=[]))
    return cst.Dot()


def _step_dot(call: Any) -> cst.Dot:
    """The dot to use for a step appended after ``call``."""
    if isinstance(call, cst.Call) and isinstance(call.func, cst.Attribute):
        return _fresh_dot(call.func.dot)
    return cst.Dot()


def append_step(node: Any, name: str, arg_code: str) -> cst.Call:
    """``node.name(arg_code)``, keeping ``node``'s parentheses outside."""
    inner = node.with_changes(lpar=[], rpar=[]) if getattr(node, "lpar", None) else node
    return cst.Call(
        func=cst.Attribute(value=inner, dot=_step_dot(node), attr=cst.Name(name)),
        args=[cst.Arg(cst.parse_expression(arg_code))],
        lpar=getattr(node, "lpar", ()) or (),
        rpar=getattr(node, "rpar", ()) or (),
    )


def insert_step_before(call: cst.Call, name: str, arg_code: str) -> cst.Call:
    """``recv.step(...)`` → ``recv.name(arg_code).step(...)``."""
    attr = call.func
    new_inner = cst.Call(
        func=cst.Attribute(value=attr.value, dot=attr.dot, attr=cst.Name(name)),
        args=[cst.Arg(cst.parse_expression(arg_code))],
    )
    return call.with_changes(func=attr.with_changes(value=new_inner, dot=_fresh_dot(attr.dot)))


def move_step_fix(flow: PipelineFlow, moved: Step, anchor: Step, before: bool, between: tuple,
                  allowed: set, description: str) -> Optional[Fix]:
    """Move the ``moved`` step right before/after ``anchor`` (both in the same function,
    each in a method chain; the steps between them only from ``allowed``)."""
    if any(s.name not in allowed for s in between):
        return None
    if moved.fn is not anchor.fn:
        return None
    mi = flow.chain(moved.call)
    ai = flow.chain(anchor.call)
    if mi is None or ai is None:
        return None
    if mi.root is ai.root:
        base, links = linearize(mi.root)
        if moved.call not in links or anchor.call not in links:
            return None
        dots = [c.func.dot for c in links]
        order = [c for c in links if c is not moved.call]
        k = order.index(anchor.call) + (0 if before else 1)
        order.insert(k, moved.call)
        return Fix.unsafe(Replace(mi.root, _rebuild(mi.root, base, order, dots)), description=description)
    # Two statements: take the step out of one chain, put it into the other.
    mbase, mlinks = linearize(mi.root)
    abase, alinks = linearize(ai.root)
    if moved.call not in mlinks or anchor.call not in alinks:
        return None
    if mi.block is None or mi.block is not ai.block:
        return None  # moving a step into or out of a branch would change when it runs
    if _contains(mi.root, ai.root) or _contains(ai.root, mi.root):
        return None
    edits = []
    rest = [c for c in mlinks if c is not moved.call]
    if (not rest and mi.stmt is not None and isinstance(mbase, cst.Name) and mbase.value == mi.target):
        edits.append(Replace(mi.stmt, None))  # `ds = ds.shuffle(...)` disappears
    else:
        j = mlinks.index(moved.call)
        dots = [c.func.dot for c in mlinks]
        del dots[j]
        edits.append(Replace(mi.root, _rebuild(mi.root, mbase, rest, dots)))
    i = alinks.index(anchor.call)
    dots = [c.func.dot for c in alinks]
    order = list(alinks)
    if before:
        order.insert(i, moved.call)
        dots.insert(i + 1, _fresh_dot(dots[i]))
    else:
        order.insert(i + 1, moved.call)
        dots.insert(i + 1, _fresh_dot(dots[i]))
    edits.append(Replace(ai.root, _rebuild(ai.root, abase, order, dots)))
    return Fix.unsafe(*edits, description=description)


def _contains(outer: Any, inner: Any) -> bool:
    found = False

    class _V(cst.CSTVisitor):
        def on_visit(self, node):  # noqa: N802
            nonlocal found
            if node is inner:
                found = True
            return not found

    outer.visit(_V())
    return found


def _short(node: Any) -> str:
    try:
        text = cst.Module([]).code_for_node(node)
    except Exception:  # noqa: BLE001
        return "the dataset"
    text = " ".join(text.split())
    return text if len(text) <= 40 else text[:37] + "..."


def _same_expr(a: Any, b: Any) -> bool:
    """The same literal value, or the same expression text (a constant, an attribute)."""
    va, vb = literal_value(a), literal_value(b)
    if va is not NOT_LITERAL and va is not None:
        return va == vb and type(va) is type(vb)
    try:
        code = cst.Module([]).code_for_node
        return " ".join(code(a).split()) == " ".join(code(b).split()) and isinstance(a, (cst.Name, cst.Attribute))
    except Exception:  # noqa: BLE001
        return False


def _arg_text(call: cst.Call) -> str:
    """The first argument as written (``32``, ``buffer_size=512``)."""
    return _short(call.args[0]).rstrip(", ") if call.args else ""


# ---------------------------------------------------------------------------
# The rules
# ---------------------------------------------------------------------------


class _PipelineRule(Rule):
    """A KL5 rule: asks for the file's dataset flow before the traversal (the Context
    drives it) and queries it in ``finish``."""

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        self.flow = ctx.datasets

    @staticmethod
    def _autotune(sp: Optional[str]) -> tuple:
        """(spelling of tf.data.AUTOTUNE, edits needed to make it resolvable), given how
        the file spells it where the edit goes (function-level imports count)."""
        if sp is not None:
            return sp, ()
        return "tensorflow.data.AUTOTUNE", (AddImport("tensorflow"),)


class UnbatchedDataset(_PipelineRule):
    """
    ## What it does
    Flags a `tf.data.Dataset` that reaches `fit`, `evaluate` or `predict` (as `x` or as
    `validation_data`) with no batch-like step: `batch`, `padded_batch`, `ragged_batch`,
    `bucket_by_sequence_length`, `rebatch`, `apply(tf.data.experimental.dense_to_ragged_batch(...))`,
    or a Keras utility that batches by default (`image_dataset_from_directory` and friends,
    unless `batch_size=None`). `unbatch()` undoes a batch. The dataset is followed through
    reassignments, method chains and helper functions of the same file; a dataset of
    unknown origin (a parameter, `tfds.load`) is never flagged.

    ## Why is this bad?
    Keras takes every element of a dataset as one whole batch. Rows of
    `from_tensor_slices((x, y))` with `x` of shape (64, 4) arrive as tensors of shape (4,),
    and Keras 3 fails with `Invalid input shape ... Expected shape (None, 4), but input has
    incompatible shape (4,)`. Worse, when the elements have two or more axes and the model
    is built from the data (no `Input`), training runs silently on the wrong axis: for
    sequences of shape (8, 4), `fit` does 64 steps of "batches" of 8 time steps of one sample
    instead of 2 steps of 32 samples. `keraslint verify` runs the dataset as written and
    batched and reports the element spec against the model's input and one step of each.

    ## Example
    ```python
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(1000).prefetch(tf.data.AUTOTUNE)
    model.fit(ds, epochs=10)
    ```

    ## Use instead
    ```python
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(1000).batch(32).prefetch(tf.data.AUTOTUNE)
    model.fit(ds, epochs=10)
    ```
    The fix (unsafe: it picks a batch size of 32 and changes every other use of the
    dataset) inserts `.batch(32)` before the pipeline's `prefetch`, or appends it where the
    dataset is built.
    """

    code = "KL501"
    name = "unbatched-dataset"
    severity = "error"
    fix_applicability = "unsafe"
    tokens = ("fit", "evaluate", "predict")

    def finish(self) -> None:
        for site in self.flow.fit_sites():
            for arg, value, role in ((site.x, site.x_val, None), (site.val, site.val_val, "validation_data")):
                if arg is None:
                    continue
                flats = self.flow.known(value)
                if not flats or any(f.summary()[0] != "U" for f in flats):
                    continue
                where = f"`{site.method}()`" if role is None else "`fit(validation_data=...)`"
                how = self._origin_text(flats[0])
                add = "add `.batch(...)` before its `prefetch`" if any(
                    s.name == "prefetch" for f in flats for s in f.steps) else "add `.batch(...)`"
                self.report(
                    arg.value,
                    f"`{_short(arg.value)}` reaches {where} unbatched ({how}): Keras takes each element as a "
                    f"whole batch, so a row of shape (n,) fails with 'Expected shape (None, n)' and an element of "
                    f"shape (t, n) silently becomes a batch of t rows; {add}",
                    fix=self._fix(flats[0]) if len(flats) == 1 else None,
                )

    @staticmethod
    def _origin_text(flat: Flat) -> str:
        for s in reversed(flat.steps):
            if s.kind == "unbatch":
                return f"`.{s.name}()` after the last batch"
        src = flat.source
        if isinstance(src, Combine):
            return f"`{ {'zip': 'Dataset.zip'}.get(src.kind, 'sample_from_datasets')}` of unbatched datasets"
        if isinstance(src, Source):
            if src.batch_arg is not None:
                return f"`{src.label}(batch_size=None)`"
            return f"built by `{src.label}` with no `batch`"
        return "no `batch` step"

    def _fix(self, flat: Flat) -> Optional[Fix]:
        steps = flat.steps
        start = 0
        for i, s in enumerate(steps):
            if s.kind == "unbatch":
                start = i + 1
        for s in steps[start:]:
            if s.name == "prefetch":
                return Fix.unsafe(Replace(s.call, insert_step_before(s.call, "batch", "32")),
                                  description="insert `.batch(32)` before `prefetch`")
        src = flat.source
        if start == 0 and isinstance(src, Source) and src.batch_arg is not None:
            return Fix.unsafe(Replace(src.batch_arg.value, cst.Integer("32")),
                              description="batch_size=None -> batch_size=32")
        tail = steps[-1].call if steps else getattr(src, "node", None)
        if not isinstance(tail, cst.Call):
            return None
        return Fix.unsafe(Replace(tail, append_step(tail, "batch", "32")), description="append `.batch(32)`")


class BatchSizeWithDataset(_PipelineRule):
    """
    ## What it does
    Flags `batch_size=` passed to `fit`, `evaluate` or `predict` together with a
    `tf.data.Dataset` (followed through assignments and helpers like KL501). Not flagged:
    a `batch_size=` that is visibly the dataset's own (the same literal, constant or
    attribute as its last `batch`, also through a helper's parameter, or the Keras
    utility's `batch_size`): ignored, but harmless.

    ## Why is this bad?
    A dataset brings its own batches; Keras 3 ignores `batch_size` for it without a
    warning. `model.fit(ds.batch(16), batch_size=4)` on 64 samples runs 4 steps of 16, not
    16 steps of 4, so a reader (or a port to PyTorch's `DataLoader(batch_size=4)`) assumes a
    batch size the model never saw: a different number of optimizer steps per epoch and a
    different gradient noise scale. Not a numerical hazard by itself, so `keraslint
    verify` runs no experiment for it; the step count per epoch tells the story.

    ## Example
    ```python
    model.fit(train_ds, batch_size=64, epochs=5)
    ```

    ## Use instead
    ```python
    model.fit(train_ds, epochs=5)  # the batch size is set by train_ds.batch(...)
    ```
    """

    code = "KL502"
    name = "batch-size-with-dataset"
    severity = "warning"
    fix_applicability = "safe"
    tokens = ("batch_size",)

    def finish(self) -> None:
        for site in self.flow.fit_sites():
            arg = site.batch_arg
            if arg is None or site.x is None or literal_value(arg.value) is None:
                continue
            flats = self.flow.known(site.x_val)
            if not flats:
                flats = self.flow.batched_parameter(site.x_val)
            if not flats or any(isinstance(f.source, Source) and f.source.project for f in flats):
                continue  # (another module's pipeline: its batch size is not known here)
            if all(self._same_batch_size(f, arg.value, site.x_val, site.fn) for f in flats):
                continue  # the ignored argument says what the dataset does anyway: harmless
            own = ""
            if len(flats) == 1 and flats[0].summary()[0] == "B":
                last = [s for s in flats[0].steps if s.kind == "batch"]
                if last:
                    own = f" (its `.{last[-1].name}({_arg_text(last[-1].call)})`)"
                elif isinstance(flats[0].source, Source) and flats[0].source.label in KERAS_DATASET_UTILS:
                    own = f" (set by `{flats[0].source.label}`)"
            self.report(
                arg,
                f"`batch_size={_short(arg.value)}` is ignored by `{site.method}()` because `{_short(site.x.value)}` is "
                f"a `tf.data.Dataset`: Keras 3 uses the dataset's own batches{own} without a warning; drop the "
                f"argument",
                fix=Fix.safe(Replace(arg, None), description="drop `batch_size=`"),
            )

    def _same_batch_size(self, flat: Flat, given: Any, x_val: Any, fn: Any) -> bool:
        """Is ``given`` (fit's ``batch_size=``) visibly the dataset's own batch size: the
        same literal or the same expression (``BATCH_SIZE``, ``CFG.batch_size``) as its
        last ``batch`` step, also through a helper's parameter, or as the Keras utility's
        ``batch_size``?"""
        batches = [s for s in flat.steps if s.kind in ("batch", "unbatch", "opaque")]
        if batches:
            last = batches[-1]
            if last.name not in ("batch", "padded_batch", "ragged_batch"):
                return False
            a = get_arg(last.call, "batch_size", 0)
            if a is None:
                return False
            own = a.value
            if last.fn is fn and _same_expr(own, given):
                return True  # `ds.batch(batch_size)` and `fit(batch_size=batch_size)` in one function
            if isinstance(own, cst.Name) and last.fn is not None and own.value in {p.name.value for p in last.fn.params}:
                own = self.flow.helper_argument(last.fn, own.value, x_val)
            return own is not None and _same_expr(own, given)
        src = flat.source
        if isinstance(src, Source) and src.label in KERAS_DATASET_UTILS:
            pos, default_bs, _ = KERAS_DATASET_UTILS[src.label]
            a = get_arg(src.node, "batch_size", pos)
            if a is None:
                return literal_value(given) == default_bs
            return _same_expr(a.value, given)
        return False


class ShuffleAfterBatch(_PipelineRule):
    """
    ## What it does
    Flags `.shuffle(...)` applied to a dataset that an explicit `batch`-like step has
    already batched (`.batch(32).shuffle(1000)`), also across statements through a
    reassigned variable and through helpers. Not flagged: a shuffle after an earlier
    sample-level shuffle (`shuffle().batch().shuffle()` deliberately reorders batches), after
    `bucket_by_sequence_length` (shuffling the buckets' batches is the recommended practice),
    after `batch(1)` (batches of one sample), or after `unbatch()`; nor a pipeline that
    never reaches `fit` when the file fits another one (a preview or evaluation pipeline).

    ## Why is this bad?
    Shuffling batches reorders whole batches; the samples inside each batch never change.
    With `from_tensor_slices(x).batch(2).shuffle(4)` on 8 samples, every epoch sees the same
    four pairs ([0, 1], [2, 3], ...) in a different order, where a PyTorch
    `DataLoader(shuffle=True)` draws new batches each epoch. The gradient noise differs,
    and with sorted data (by class, by length) each batch stays one class.
    `keraslint verify` has no experiment for it yet; iterating the dataset twice shows the
    same batch compositions in both epochs.

    ## Example
    ```python
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32).shuffle(1000)
    ```

    ## Use instead
    ```python
    ds = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(1000).batch(32)
    ```
    The fix (unsafe: the order of samples changes) moves the `shuffle` right before the
    `batch`.
    """

    code = "KL503"
    name = "shuffle-after-batch"
    severity = "warning"
    fix_applicability = "unsafe"
    tokens = ("shuffle",)

    _ALLOWED_BETWEEN = {"map", "filter", "prefetch", "with_options", "ignore_errors"}

    def finish(self) -> None:
        for shuffle, batch, flat, bi, si in self.flow.shuffle_after_batch():
            fix = move_step_fix(self.flow, shuffle, batch, True, flat.steps[bi + 1:si], self._ALLOWED_BETWEEN,
                                "move `shuffle` before `batch`")
            size = _arg_text(batch.call)
            self.report(
                shuffle.call.func.attr,
                f"`shuffle` after `{batch.name}({size})` shuffles whole batches, not samples: every epoch "
                f"sees the same groups of samples, only in another order; shuffle before batching",
                fix=fix,
            )


class CacheAfterShuffle(_PipelineRule):
    """
    ## What it does
    Flags `.cache()` placed after `.shuffle(...)` in a pipeline
    (`.shuffle(1000).cache()`), also across statements and helpers. Not flagged:
    `cache().shuffle()`, a shuffle with `reshuffle_each_iteration=False` (a fixed order is
    then intended), `shuffle().take(n).cache()` (freezing a random subset),
    `shuffle().cache()` followed by `take`/`skip`/`shard` (the cache freezes a random
    train/validation split, which must not be reshuffled), a pipeline that shuffles
    again after the cache, or a pipeline that never reaches `fit` when the file fits
    another one (validation and test pipelines are not reshuffled anyway).

    ## Why is this bad?
    `cache()` stores the elements of the first iteration and replays them afterwards, in
    the same order: the shuffle runs once, so every epoch sees the first epoch's order.
    Measured with TF 2.21: `Dataset.range(8).shuffle(8).cache()` yields `[3, 2, 7, 4, 1, 0,
    6, 5]` in each of three epochs, while `cache().shuffle(8)` yields a new order each
    epoch. A PyTorch `DataLoader(shuffle=True)` reshuffles every epoch, so the two runs see
    different sample orders from epoch 2 on. `keraslint verify` has no experiment for it
    yet; iterating the dataset twice shows the same order in both epochs.

    ## Example
    ```python
    ds = ds.map(decode).shuffle(10_000).cache().batch(32)
    ```

    ## Use instead
    ```python
    ds = ds.map(decode).cache().shuffle(10_000).batch(32)
    ```
    The fix (unsafe: the order of samples changes) moves the `shuffle` right after the
    `cache`.
    """

    code = "KL504"
    name = "cache-after-shuffle"
    severity = "warning"
    fix_applicability = "unsafe"
    tokens = ("cache",)

    _ALLOWED_BETWEEN = {"map", "filter", "with_options", "ignore_errors"}

    def finish(self) -> None:
        for cache, shuffle, flat, si, ci in self.flow.cache_after_shuffle():
            fix = move_step_fix(self.flow, shuffle, cache, False, flat.steps[si + 1:ci], self._ALLOWED_BETWEEN,
                                "move `shuffle` after `cache`")
            what = "order and replays it"
            if any(s.kind == "batch" for s in flat.steps[si + 1:ci]):
                what = "batches (their order and their samples) and replays them"
            self.report(
                cache.call.func.attr,
                f"`cache()` after `shuffle({_arg_text(shuffle.call)})` stores the first epoch's {what} "
                f"every epoch, so later epochs are not reshuffled; cache first, then shuffle",
                fix=fix,
            )


class MissingPrefetch(_PipelineRule):
    """
    ## What it does
    Flags the `fit` call whose training dataset (a `tf.data.Dataset` of known origin) is
    given options that turn TensorFlow's automatic prefetch off
    (`options.experimental_optimization.inject_prefetch = False`, or
    `apply_default_optimizations = False`, then `ds.with_options(options)`) and has no
    `.prefetch(...)` of its own. A pipeline merely written without `.prefetch` is not
    flagged: TensorFlow injects one. Not flagged either: a last step that already runs
    ahead (`map(..., num_parallel_calls=...)`, or `map().batch()`, which the default
    optimizations fuse into one parallel `MapAndBatch`), Keras's dataset utilities and
    `make_csv_dataset` (they prefetch), datasets of unknown origin, and unbatched datasets
    (KL501's business).

    ## Why is this bad?
    By default (TF 2.21) `tf.data.Options().experimental_optimization.inject_prefetch` is
    None, which means True: when a pipeline ends in a synchronous step such as `batch`,
    TensorFlow appends a `Prefetch` when the iterator is made, so the next batch is built
    while the model trains on the current one, with or without `.prefetch` in the code.
    Turning the injection (or all default optimizations) off removes it: the pipeline then
    produces batch n+1 only when the training step asks for it, and reading, decoding and
    `map` run while the model waits. Only the speed differs, never the values, so
    `keraslint verify` runs no experiment for it.

    ## Example
    ```python
    options = tf.data.Options()
    options.experimental_optimization.inject_prefetch = False
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32).with_options(options)
    model.fit(ds, epochs=10)
    ```

    ## Use instead
    ```python
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(32).with_options(options).prefetch(tf.data.AUTOTUNE)
    model.fit(ds, epochs=10)
    ```
    """

    code = "KL505"
    name = "missing-prefetch"
    severity = "info"
    fix_applicability = "safe"
    tokens = ("inject_prefetch", "apply_default_optimizations")

    def finish(self) -> None:
        for site in self.flow.fit_sites():
            if site.method != "fit" or site.x is None:
                continue
            flats = self.flow.known(site.x_val)
            if not flats:
                continue
            sums = [f.summary() for f in flats]
            if any(pref is not False for _, pref in sums) or any(state == "U" for state, _ in sums):
                continue
            offs = [self._turned_off(f) for f in flats]
            if any(o is None for o in offs):
                continue
            node, option = offs[0]
            self.report(
                site.x.value,
                f"`{_short(site.x.value)}` reaches `fit()` with TensorFlow's automatic prefetch turned off "
                f"(`{option} = False`, {{ctx}}) and no `.prefetch`: the next batch is prepared only after each "
                f"training step instead of during it; append `.prefetch(tf.data.AUTOTUNE)`",
                fix=self._fix(flats[0]) if len(flats) == 1 else None,
                refs={"ctx": node},
            )

    def _turned_off(self, flat: Flat) -> Optional[tuple]:
        """(assignment, option) if the pipeline's options turn the injected prefetch off and
        its last step does not already run ahead of the training step."""
        off = None
        for s in flat.steps:
            if s.name == "with_options":
                off = self.flow.prefetch_off(s) or off
        if off is None:
            return None
        steps = [s for s in flat.steps if s.name != "with_options"]
        if not steps:
            return off
        last = steps[-1]
        if last.name in ("map", "interleave") and get_arg(last.call, "num_parallel_calls") is not None:
            return None  # a parallel map/interleave runs ahead by itself
        if off[1] == "inject_prefetch" and last.kind == "batch" and len(steps) > 1 and steps[-2].name == "map":
            return None  # the default map_and_batch fusion runs ahead (MapAndBatch is asynchronous)
        return off

    def _fix(self, flat: Flat) -> Optional[Fix]:
        src = flat.source
        tail = flat.steps[-1].call if flat.steps else getattr(src, "node", None)
        if not isinstance(tail, cst.Call):
            return None
        sp = flat.steps[-1].autotune if flat.steps else self.flow.autotune_at(tail)
        spelled, extra = self._autotune(sp)
        return Fix.safe(Replace(tail, append_step(tail, "prefetch", spelled)), *extra,
                        description=f"append `.prefetch({spelled})`")
