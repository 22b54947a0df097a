"""``keraslint verify``: run the flagged program against a reference and report the divergence
it measured. The CLI process never imports TensorFlow, PyTorch or the user's code: every
experiment runs in a child process (see ``sandbox``, ``child``, ``experiments``)."""

from __future__ import annotations

from typing import Optional


def run_cli(target: str, rules: Optional[list] = None, steps: int = 20, timeout: float = 120.0,
            fmt: str = "text", plot: Optional[str] = None, port: Optional[str] = None) -> int:
    """Entry point used by ``keraslint verify``; returns the exit code (0, 1 or 2).

    ``port``: None (no port diff), ``""`` (``--port`` alone: find the Keras model and the
    torch.nn.Module), or ``"KERAS,TORCH"`` (the two objects' names in the script)."""
    from keraslint.verify.driver import run_cli as _run

    return _run(target=target, rules=rules, steps=steps, timeout=timeout, fmt=fmt, plot_path=plot, port=port)


run_verify = run_cli


def explain(code: str) -> str:
    """What verify measures for CODE, or why it cannot (no TensorFlow import)."""
    from keraslint.verify.catalog import describe

    return describe(code)


__all__ = ["run_cli", "run_verify", "explain"]
