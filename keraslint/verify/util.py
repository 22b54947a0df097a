"""Small helpers shared by the verifier's parent and child processes (standard library only)."""

from __future__ import annotations

import math


def to_jsonable(obj):
    """Plain JSON values: numpy scalars become floats/ints, NaN/inf become None."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int):
        return obj
    try:
        f = float(obj)
    except (TypeError, ValueError):
        return str(obj)
    if hasattr(obj, "dtype") and "int" in str(obj.dtype):
        return int(obj)
    return f if math.isfinite(f) else None


def fmt_num(v) -> str:
    if v is None:
        return "n/a"
    if v == 0:
        return "0"
    if abs(v) >= 1e4 or abs(v) < 1e-3:
        return f"{v:.2e}"
    return f"{v:.4g}"


_ANSI = None


def plain(text, limit: int = 240) -> str:
    """One plain line: no ANSI codes, no line breaks, no array or tensor dumps, at most ``limit`` chars."""
    import re

    global _ANSI
    if _ANSI is None:
        _ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
    s = _ANSI.sub("", str(text if text is not None else ""))
    lines = [ln.strip() for ln in s.splitlines() if ln.strip()]
    lines = [ln for ln in lines if not ln.startswith(("Exception encountered when calling", "Arguments received by",
                                                      "•", "Traceback", "File \""))] or lines
    s = " ".join(lines[:1]) if lines else ""
    for marker in ("array(", "tf.Tensor(", "tensor(", "Tensor(\"", "[[", "<tf.Tensor", "<KerasTensor"):
        i = s.find(marker)
        if i > 0:
            s = s[:i].rstrip(" :=,(") + " …"
    s = " ".join(s.split())
    if len(s) > limit:
        s = s[:limit - 1].rstrip() + "…"
    return s or "no reason given"


def detect_backend(path: str, environ=None) -> tuple:
    """(backend or None, how): the Keras backend the script selects before importing Keras
    (``os.environ["KERAS_BACKEND"] = ...``, ``os.environ.setdefault(...)``, ``os.environ.update(...)``,
    ``os.putenv``), else the environment's ``KERAS_BACKEND``. A plain assignment beats the
    environment; ``setdefault`` does not."""
    import ast
    import os

    env = os.environ if environ is None else environ
    found = None
    try:
        with open(path, "rb") as f:
            tree = ast.parse(f.read())
    except (OSError, SyntaxError, ValueError):
        tree = None

    def is_environ(node) -> bool:
        return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
            isinstance(node, ast.Name) and node.id == "environ")

    def key_is_backend(node) -> bool:
        return isinstance(node, ast.Constant) and node.value == "KERAS_BACKEND"

    def const(node):
        return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None

    if tree is not None:
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                for t in node.targets:
                    if isinstance(t, ast.Subscript) and is_environ(t.value) and key_is_backend(t.slice):
                        if const(node.value):
                            found = found or ("set", const(node.value))
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                fn, args = node.func, node.args
                if fn.attr == "setdefault" and is_environ(fn.value) and len(args) == 2 and key_is_backend(args[0]):
                    if const(args[1]):
                        found = found or ("default", const(args[1]))
                elif fn.attr == "putenv" and len(args) == 2 and key_is_backend(args[0]) and const(args[1]):
                    found = found or ("set", const(args[1]))
                elif fn.attr == "update" and is_environ(fn.value):
                    for kw in node.keywords:
                        if kw.arg == "KERAS_BACKEND" and const(kw.value):
                            found = found or ("set", const(kw.value))
                    for a in args:
                        if isinstance(a, ast.Dict):
                            for k, v in zip(a.keys, a.values):
                                if k is not None and key_is_backend(k) and const(v):
                                    found = found or ("set", const(v))
    if found and (found[0] == "set" or not env.get("KERAS_BACKEND")):
        return found[1].strip().lower(), "the script sets KERAS_BACKEND"
    if env.get("KERAS_BACKEND"):
        return env["KERAS_BACKEND"].strip().lower(), "KERAS_BACKEND in the environment"
    return None, "default"
