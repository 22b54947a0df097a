"""``python -m keraslint.verify TARGET [--rule CODE]... [--steps N] [--timeout S] [--format F] [--plot PNG]
[--port [KERAS,TORCH]]``:
the verifier without the registry check of ``keraslint verify`` (any code with an experiment
is accepted, whether or not its static rule is installed)."""

from __future__ import annotations

import argparse
import sys

from keraslint.verify import run_cli


def main(argv=None) -> int:
    from keraslint.verify.catalog import NAMES

    p = argparse.ArgumentParser(prog="python -m keraslint.verify")
    p.add_argument("target")
    p.add_argument("--rule", action="append")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--format", default="text", choices=("text", "json"))
    p.add_argument("--plot")
    p.add_argument("--port", nargs="?", const="", default=None, metavar="KERAS,TORCH")
    a = p.parse_args(argv)
    rules = None
    if a.rule:
        rules = [c.strip().upper() for v in a.rule for c in v.split(",") if c.strip()]
        unknown = [c for c in rules if c not in NAMES]
        if unknown:
            p.error(f"unknown rule code {', '.join(unknown)}")
    if a.steps < 1 or a.timeout <= 0:
        p.error("--steps must be at least 1 and --timeout positive")
    return run_cli(target=a.target, rules=rules, steps=a.steps, timeout=a.timeout, fmt=a.format, plot=a.plot,
                   port=a.port)


if __name__ == "__main__":
    sys.exit(main())
