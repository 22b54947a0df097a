"""``keraslint verify``: run the flagged program against a reference and report the divergence
it measured. The CLI process never imports TensorFlow, PyTorch or the user's code: every
experiment runs in a child process (see ``sandbox``, ``child``, ``experiments``)."""

from __future__ import annotations

from typing import Optional


def run_cli(target: str, rules: Optional[list] = None, steps: int = 20, timeout: float = 120.0,
            fmt: str = "text", plot: Optional[str] = None) -> int:
    """Entry point used by ``keraslint verify``; returns the exit code (0, 1 or 2)."""
    from keraslint.verify.driver import run_cli as _run

    return _run(target=target, rules=rules, steps=steps, timeout=timeout, fmt=fmt, plot_path=plot)


__all__ = ["run_cli"]
