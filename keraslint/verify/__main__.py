"""``python -m keraslint.verify TARGET [--rule CODE]... [--steps N] [--timeout S] [--format F] [--plot PNG]``:
the verifier without the registry check of ``keraslint verify`` (any code with an experiment
is accepted, whether or not its static rule is installed)."""

from __future__ import annotations

import argparse
import sys

from keraslint.verify import run_cli


def main(argv=None) -> int:
    from keraslint.verify.driver import EXPERIMENTS

    p = argparse.ArgumentParser(prog="python -m keraslint.verify")
    p.add_argument("target")
    p.add_argument("--rule", action="append")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--timeout", type=float, default=120.0)
    p.add_argument("--format", default="text", choices=("text", "json"))
    p.add_argument("--plot")
    a = p.parse_args(argv)
    rules = None
    if a.rule:
        rules = [c.strip().upper() for v in a.rule for c in v.split(",") if c.strip()]
        unknown = [c for c in rules if c not in EXPERIMENTS]
        if unknown:
            p.error(f"no experiment for {', '.join(unknown)}")
    if a.steps < 1 or a.timeout <= 0:
        p.error("--steps must be at least 1 and --timeout positive")
    return run_cli(target=a.target, rules=rules, steps=a.steps, timeout=a.timeout, fmt=a.format, plot=a.plot)


if __name__ == "__main__":
    sys.exit(main())
