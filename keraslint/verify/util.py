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
