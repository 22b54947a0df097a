"""The engine's targeted position computation agrees with libcst's PositionProvider on
random nodes of real Keras files (it is 5x cheaper, so it must be exactly right)."""

import os
import random

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from keraslint.engine import _COMPOUND, positions

KERAS = os.path.join(os.path.dirname(os.path.dirname(cst.__file__)), "keras", "src")


def _files():
    out = []
    for d, _, fs in os.walk(KERAS):
        out.extend(os.path.join(d, f) for f in fs if f.endswith(".py"))
    return sorted(out)


def test_targeted_positions_match_position_provider():
    rng = random.Random(1234)
    files = rng.sample(_files(), 25)
    files.append(__file__)  # CRLF-free, small
    checked = 0
    for f in files:
        with open(f, encoding="utf-8") as fh:
            module = cst.parse_module(fh.read())
        nodes = []

        def walk(n):
            nodes.append(n)
            for c in n.children:
                walk(c)

        walk(module)
        sample = [n for n in rng.sample(nodes, min(80, len(nodes))) if not isinstance(n, _COMPOUND)]
        fast = positions(module, sample)
        full = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
        for n in sample:
            assert fast.get(n) == full.get(n), (f, type(n).__name__)
            checked += 1
    assert checked > 1000


def test_crlf_and_tabs():
    src = "import keras\r\nif True:\r\n\tx = keras.ops.sin(\r\n\t\t1)\r\n"
    module = cst.parse_module(src)
    call = module.body[1].body.body[0].body[0].value
    fast = positions(module, [call])
    full = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    assert fast.get(call) == full.get(call)
