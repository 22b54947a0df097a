"""Third-party rule packs register through the entry-point group ``keraslint.rules``: a
rule class, a module of rules or a list of them; duplicate codes are refused."""

import importlib.metadata
import types

import pytest

from keraslint import registry
from keraslint.api import check_source
from keraslint.rule import Rule


class NoPrint(Rule):
    """
    ## What it does
    Flags `print`.
    ## Why is this bad?
    Test rule.
    ## Example
    `print(1)`
    ## Use instead
    `logging.info(1)`
    """

    code = "XP001"
    name = "no-print"
    severity = "info"
    tokens = ("print",)

    def visit_Call(self, node):
        if getattr(node.func, "value", None) == "print":
            self.report(node, "print called")


class FakeEntryPoint:
    def __init__(self, obj):
        self.obj = obj

    def load(self):
        return self.obj


@pytest.fixture
def packs(monkeypatch):
    def install(*objs):
        monkeypatch.setattr(importlib.metadata, "entry_points",
                            lambda group=None: [FakeEntryPoint(o) for o in objs] if group == "keraslint.rules" else [])
        registry.all_rules.cache_clear()

    yield install
    registry.all_rules.cache_clear()


@pytest.mark.parametrize("shape", ["class", "module", "list"])
def test_entry_point_rules_run(packs, shape):
    obj = {"class": NoPrint, "module": types.ModuleType("pack"), "list": [NoPrint]}[shape]
    if shape == "module":
        obj.NoPrint = NoPrint
    packs(obj)
    assert "XP001" in registry.rules_by_code()
    codes = [f.code for f in check_source("print('x')\n", path="m.py")]
    assert codes == ["XP001"]


def test_duplicate_codes_are_refused(packs):
    clash = type("Clash", (NoPrint,), {"code": "KL301"})
    packs(clash)
    with pytest.raises(registry.RegistryError, match="KL301"):
        registry.all_rules()
