"""keraslint.values: optimizer instances, compiled models and what names hold."""

import textwrap

import libcst as cst

from keraslint import engine, values
from keraslint.api import check_source
from keraslint.rule import Rule
from keraslint.rules.training import LogitsMismatch, SharedOptimizer


def _values(src: str, *rules) -> values.Values:
    """The value model of ``src`` after the traversal, recorded for ``rules``."""
    source = engine.read_source("train.py", data=textwrap.dedent(src).encode())
    analysis = engine.analyze(source, list(rules), gate=False)
    return values.of(analysis.ctx)


TRAINER = """
import keras

class Trainer:
    def __init__(self):
        self.opt = keras.optimizers.Adam(1e-3)

    def build_teacher(self):
        self.teacher = keras.Sequential([keras.layers.Dense(1)])
        self.teacher.compile(optimizer=self.opt, loss="mse")

    def build_student(self):
        self.student = keras.Sequential([keras.layers.Dense(1)])
        self.student.compile(optimizer=self.opt, loss="mse")
"""


def test_optimizer_kept_on_self_and_compiled_into_two_models_in_two_methods():
    (opt,) = _values(TRAINER, SharedOptimizer).optimizer_instances()
    assert opt.on_self and opt.label == "self.opt"
    assert cst.Module([]).code_for_node(opt.built) == "keras.optimizers.Adam(1e-3)"
    assert [u.text for u in opt.uses] == ["self.teacher", "self.student"]
    ((use, other),) = opt.shared()
    assert (use.text, other.text) == ("self.student", "self.teacher")
    (f,) = check_source(textwrap.dedent(TRAINER), "train.py", select=["KL403"])
    assert f.line == 14 and "`self.opt` (built once, line 6) was already compiled into `self.teacher`" in f.message
    # the near miss: one optimizer per model (self.opt rebound) is not one object
    rebound = TRAINER.replace("self.student = keras", "self.opt = keras.optimizers.Adam(1e-3)\n"
                                                      "        self.student = keras")
    assert _values(rebound, SharedOptimizer).optimizer_instances() == []


def test_local_optimizer_identity_and_exclusive_branches():
    src = """
    import keras
    opt = keras.optimizers.SGD(0.1)
    a = keras.Sequential([keras.layers.Dense(1)])
    b = keras.Sequential([keras.layers.Dense(1)])
    if FLAG:
        a.compile(optimizer=opt, loss="mse")
    else:
        b.compile(optimizer=opt, loss="mse")
    for m in (a, b):
        m.compile(optimizer=opt, loss="mse")
    """
    (opt,) = _values(src, SharedOptimizer).optimizer_instances()
    assert [(u.text, u.loop) for u in opt.uses] == [("a", None), ("b", None), ("m", "m")]
    assert opt.shared() == []  # the two arms of the `if` never both run; the loop is its own finding
    (opt,) = _values(src.replace("else:", "if OTHER:"), SharedOptimizer).optimizer_instances()
    assert [(u.text, o.text) for u, o in opt.shared()] == [("b", "a")]


def test_compiled_models_final_activation_and_a_loss_kept_on_self():
    src = """
    import keras

    def make():
        inputs = keras.Input((4,))
        x = keras.layers.Dense(8, activation="relu")(inputs)
        outputs = keras.layers.Dense(3, activation="softmax")(x)
        return keras.Model(inputs, outputs)

    model = make()
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))

    class Task:
        def setup(self):
            self.loss = "sparse_categorical_crossentropy"
            self.model = keras.Sequential([keras.layers.Dense(10), keras.layers.Activation("linear")])

        def train(self):
            self.model.compile(optimizer="adam", loss=self.loss)
    """
    first, second = _values(src, LogitsMismatch).compiled_models()
    assert (first.loss, first.from_logits, first.activation) == ("SparseCategoricalCrossentropy(from_logits=True)",
                                                                 True, "softmax")
    assert first.layer == 'keras.layers.Dense(3, activation="sof...'  # cut for the message
    # kept on self by another method; the identity Activation("linear") passes the Dense through
    assert (second.loss, second.from_logits, second.activation) == ('"sparse_categorical_crossentropy"', False,
                                                                    "linear")
    assert second.layer == "keras.layers.Dense(10)"
    assert [f.code for f in check_source(textwrap.dedent(src), "train.py", select=["KL404"])] == ["KL404", "KL404"]


def test_strings_and_builders_as_seen_where_they_are_used():
    seen: list = []

    class Probe(Rule):
        code = "KL999"
        name = "probe"

        def __init__(self, ctx) -> None:
            super().__init__(ctx)
            self.values = values.of(ctx, "strings")

        def visit_Assign(self, node: cst.Assign) -> None:
            self.values.visit_Assign(node)

        def visit_Call(self, node: cst.Call) -> None:
            if isinstance(node.func, cst.Attribute) and node.func.attr.value == "compile":
                arg = node.args[0].value
                seen.append((self.values.string_value(arg), self.values.builder(node.func.value)))

    src = """
    import keras
    cfg = {"optimizer": "adam"}
    model = keras.Sequential()
    model.compile(cfg["optimizer"])
    cfg["optimizer"] = "sgd"
    model.compile(cfg["optimizer"])
    """
    engine.analyze(engine.read_source("t.py", data=textwrap.dedent(src).encode()), [Probe], gate=False)
    # after an item of `cfg` is assigned, its literal no longer says what it holds
    assert seen == [("adam", "keras.models.Sequential"), (None, "keras.models.Sequential")]
