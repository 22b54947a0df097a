"""keraslint.weights: what a weight value holds, and which PyTorch module receives it."""

import textwrap

import libcst as cst

from keraslint import engine, weights
from keraslint.api import check_source
from keraslint.rule import Rule

HEAD = """\
import keras
import torch
from keras import layers
from torch import nn
"""


def _probe(body: str) -> dict:
    """target text -> (source of the assigned value, receiving module) for every assignment,
    asked where the assignment is (as KL604 asks)."""
    seen: dict = {}

    class Probe(Rule):
        code = "KL999"
        name = "probe"

        def __init__(self, ctx) -> None:
            super().__init__(ctx)
            self.flow = weights.of(ctx)

        def visit_Assign(self, node: cst.Assign) -> None:
            self.flow.visit_Assign(node)
            tgt = node.targets[0].target
            module = tgt
            while isinstance(module, cst.Attribute) and module.attr.value in ("data", "weight"):
                module = module.value
            seen[cst.Module([]).code_for_node(tgt)] = (self.flow.source(node.value), self.flow.receiver(module))

        def visit_For(self, node: cst.For) -> None:
            self.flow.visit_For(node)

    src = engine.read_source("port.py", data=(HEAD + textwrap.dedent(body)).encode())
    engine.analyze(src, [Probe], gate=False)
    return seen


def _kl604(body: str) -> list:
    return [f.message for f in check_source(HEAD + textwrap.dedent(body), "port.py", select=["KL604"])]


LOOP = """
def port(keras_model, torch_layers):
    for keras_layer, torch_layer in zip(keras_model.layers, torch_layers):
        if isinstance(keras_layer, layers.Dense):
            torch_layer.weight.data = torch.from_numpy(keras_layer.get_weights()[0]{T})
"""


def test_kernel_copied_through_a_loop_over_zip_without_transpose():
    src, receiver = _probe(LOOP.format(T=""))["torch_layer.weight.data"]
    assert (src.kind, src.layer, src.desc, src.reshaped) == ("kernel", "Dense", "keras_layer.get_weights()[0]", False)
    assert receiver.classes == {"?"}  # a loop variable: its module class is unknown
    (msg,) = _kl604(LOOP.format(T=""))
    assert msg.startswith("`Dense` kernel `keras_layer.get_weights()[0]` copied into PyTorch weight "
                          "`torch_layer.weight.data` with no transpose")
    # the near miss: transposed on the way
    assert _probe(LOOP.format(T=".T"))["torch_layer.weight.data"][0].kind == "transposed"
    assert _kl604(LOOP.format(T=".T")) == []


def test_names_unpacking_and_layout_keeping_steps():
    seen = _probe("""
        dense = layers.Dense(4)
        kernel, bias = dense.get_weights()
        w = torch.tensor(kernel).reshape(4, 4)
        b = torch.tensor(bias)
        other = dense.kernel.numpy().T
    """)
    assert (seen["w"][0].kind, seen["w"][0].layer, seen["w"][0].reshaped) == ("kernel", "Dense", True)
    assert seen["b"][0].kind == "other"  # a bias keeps its layout
    assert seen["other"][0].kind == "transposed"


def test_weight_of_an_unknown_layer_and_receiving_module_classes():
    seen = _probe("""
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 2)
                self.norm = nn.LayerNorm(2)

        def port(layer, net, linear: nn.Linear):
            net.fc.weight.data = torch.tensor(layer.get_weights()[0])
            net.norm.weight = layer.get_weights()[1]
            linear.weight.data = layer.weights[0]
    """)
    src, receiver = seen["net.fc.weight.data"]
    assert (src.kind, src.layer) == ("weight", "")  # index 0 of an unknown layer's weights
    assert receiver.classes == {"Linear"} and receiver.owner == "fc"
    assert seen["net.norm.weight"][1].classes == {"LayerNorm"}
    assert seen["linear.weight.data"][1].classes == {"Linear"}  # from the annotation


def test_key_text_and_weight_names():
    key = cst.parse_expression('f"h.{i}.mlp.c_fc.weight"')
    assert weights.key_text(key) == "h.*.mlp.c_fc.weight"
    assert weights.key_text(cst.parse_expression('layer.name + ".weight"')) == "*.weight"
    assert weights.is_weight_name("weight_ih_l0") and not weights.is_weight_name("bias")
    assert weights.torch_name("torch.nn.modules.linear.Linear") == "torch.nn.Linear"
