"""Where rules come from: the built-in ``keraslint.rules`` package (every module in it)
and third-party packs registered in the entry-point group ``keraslint.rules`` (an entry
point names a module, or a list/class of rules)."""

from __future__ import annotations

import importlib
import pkgutil
import types
from functools import lru_cache

from keraslint.rule import Rule, iter_rule_classes

ENTRY_POINT_GROUP = "keraslint.rules"


class RegistryError(Exception):
    pass


def _from_module(mod) -> list:
    return iter_rule_classes(vars(mod).values())


@lru_cache(maxsize=1)
def all_rules() -> tuple:
    """All rule classes, sorted by code. Duplicate codes are an error."""
    import keraslint.rules as builtin

    classes: list = []
    for info in pkgutil.iter_modules(builtin.__path__):
        if info.name.startswith("_"):
            continue
        classes.extend(_from_module(importlib.import_module(f"keraslint.rules.{info.name}")))
    classes.extend(_entry_point_rules())
    by_code: dict = {}
    for cls in classes:
        other = by_code.get(cls.code)
        if other is not None and other is not cls:
            raise RegistryError(f"rule code {cls.code} is defined twice: {other.__module__}.{other.__name__} "
                                f"and {cls.__module__}.{cls.__name__}")
        by_code[cls.code] = cls
    return tuple(sorted(by_code.values(), key=lambda c: c.code))


def _entry_point_rules() -> list:
    try:
        from importlib.metadata import entry_points
    except ImportError:  # pragma: no cover
        return []
    out: list = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        obj = ep.load()
        if isinstance(obj, type) and issubclass(obj, Rule):
            out.append(obj)
        elif isinstance(obj, types.ModuleType):
            out.extend(_from_module(obj))
        else:
            out.extend(iter_rule_classes(obj))
    return out


def rules_by_code() -> dict:
    return {cls.code: cls for cls in all_rules()}


def default_codes() -> set:
    """Codes of the rules in the default set (``Rule.default``)."""
    return {cls.code for cls in all_rules() if getattr(cls, "default", True)}


def known_code_or_prefix(code: str) -> bool:
    code = code.upper()
    if code == "ALL":
        return True
    return any(c == code or c.startswith(code) for c in rules_by_code()) or code == "KL000"


def expand(codes) -> set:
    """Codes and prefixes (``KL3``, ``KL401``, ``ALL``) → the set of rule codes."""
    out = set()
    all_codes = list(rules_by_code())
    for code in codes:
        code = code.upper()
        if code == "ALL":
            out.update(all_codes)
        else:
            out.update(c for c in all_codes if c.startswith(code))
    return out
