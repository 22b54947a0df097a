"""Command line: ``keraslint check | verify | rules | explain``.

argparse, not typer: typer+click+rich cost ~65-150 ms of imports, a third of the 0.35 s
budget of a one-file pre-commit run, and their multi-line error boxes are not the one
clear line a bad flag deserves. Every usage, configuration or internal error is one line
on stderr and exit 2. Nothing here imports TensorFlow, PyTorch or JAX.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional

from keraslint import __version__

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _codes(values: Optional[list]) -> Optional[list]:
    if values is None:
        return None
    out = []
    for v in values:
        out.extend(c.strip().upper() for c in v.split(",") if c.strip())
    return out


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="keraslint", description="Find parity hazards in Keras code.")
    p.add_argument("--version", action="version", version=f"keraslint {__version__}")
    sub = p.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")

    c = sub.add_parser("check", help="lint files, folders and notebooks", description="Lint files, folders and notebooks.")
    c.add_argument("paths", nargs="*", metavar="PATH", help="files or folders (default: the current folder)")
    c.add_argument("--select", action="append", metavar="CODES", help="only these codes/prefixes, comma-separated (KL3,KL401)")
    c.add_argument("--ignore", action="append", metavar="CODES", help="skip these codes/prefixes, comma-separated")
    c.add_argument("--fix", action="store_true", help="apply safe fixes in place")
    c.add_argument("--unsafe-fixes", action="store_true", help="with --fix/--diff: also apply fixes that change numerics")
    c.add_argument("--diff", action="store_true", help="print the fixes as a unified diff; write nothing")
    c.add_argument("--format", default="text", metavar="FMT", help="text (default), json, sarif or github")
    c.add_argument("--exit-zero", action="store_true", help="exit 0 even when findings remain")
    c.add_argument("--no-cache", action="store_true", help="do not read or write the result cache")
    c.add_argument("--cache-dir", metavar="DIR", help="cache folder (default .keraslint_cache, or $KERASLINT_CACHE_DIR)")
    c.add_argument("--config", metavar="PYPROJECT", help="use this pyproject.toml instead of the nearest one")
    c.add_argument("-j", "--jobs", type=int, metavar="N", help="worker processes (default: number of cores)")
    c.add_argument("--no-shortcuts", action="store_true", help=argparse.SUPPRESS)

    v = sub.add_parser("verify", help="run the flagged program against a reference and measure the divergence",
                       description="Run a Keras program and a reference side by side and report measured divergence.")
    v.add_argument("target", metavar="TARGET", help="script.py or path/to/module.py::function")
    v.add_argument("--rule", action="append", metavar="CODE", help="run this rule's experiment (repeatable)")
    v.add_argument("--steps", type=int, default=20, metavar="N", help="training steps per run (default 20)")
    v.add_argument("--timeout", type=float, default=120.0, metavar="S", help="seconds per experiment (default 120)")
    v.add_argument("--format", default="text", metavar="FMT", help="text (default) or json")
    v.add_argument("--plot", metavar="PNG", help="draw the metric per step to this PNG")

    r = sub.add_parser("rules", help="list the rules", description="List the rules.")
    r.add_argument("--format", default="text", metavar="FMT", help="text (default) or json")

    e = sub.add_parser("explain", help="print one rule's documentation", description="Print one rule's documentation.")
    e.add_argument("code", metavar="CODE")
    return p


def main(argv: Optional[list] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return EXIT_OK
        if args.command == "check":
            return _check(args)
        if args.command == "rules":
            return _rules(args)
        if args.command == "explain":
            return _explain(args)
        if args.command == "verify":
            return _verify(args)
    except UsageError as e:
        _err(str(e))
        return EXIT_ERROR
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except BrokenPipeError:
        try:
            sys.stdout.close()
        except Exception:  # noqa: BLE001
            pass
        return EXIT_OK
    return EXIT_ERROR  # pragma: no cover


def _err(msg: str) -> None:
    print(f"keraslint: error: {msg}", file=sys.stderr)


def _load_rules():
    from keraslint.registry import RegistryError, all_rules

    try:
        return all_rules()
    except RegistryError as e:
        raise UsageError(str(e)) from None


def _check(args) -> int:
    from keraslint import config as cfgmod
    from keraslint import discovery, reporters
    from keraslint.registry import known_code_or_prefix

    if args.format not in reporters.FORMATS:
        raise UsageError(f"invalid --format {args.format!r}: choose from {', '.join(reporters.FORMATS)}")
    if args.jobs is not None and args.jobs < 1:
        raise UsageError("--jobs must be at least 1")
    rule_classes = _load_rules()
    select, ignore = _codes(args.select), _codes(args.ignore)
    for flag, codes in (("--select", select), ("--ignore", ignore)):
        for code in codes or ():
            if not known_code_or_prefix(code):
                raise UsageError(f"unknown rule code {code!r} in {flag} (see `keraslint rules`)")
    if args.config is not None and not os.path.isfile(args.config):
        raise UsageError(f"{args.config}: no such config file")
    paths = args.paths or ["."]
    try:
        config = cfgmod.load(paths[0], explicit=args.config)
    except cfgmod.ConfigError as e:
        raise UsageError(str(e)) from None
    problems: list = []
    try:
        files = discovery.discover(paths, config.root, config.exclude, problems)
    except discovery.DiscoveryError as e:
        raise UsageError(str(e)) from None
    all_codes = [c.code for c in rule_classes]
    codes_for = config.codes_for(config.enabled_codes(all_codes, select, ignore))

    from keraslint.runner import Options, run

    opts = Options(select=select, ignore=ignore, fix=args.fix, unsafe_fixes=args.unsafe_fixes, diff=args.diff,
                   no_cache=args.no_cache, cache_dir=args.cache_dir, jobs=args.jobs, gate=not args.no_shortcuts)
    result = run(files, config, opts, codes_for)
    findings = result.findings
    out = sys.stdout
    if args.diff:
        # stdout carries one thing: the diff, or the machine-readable report when one
        # was asked for (then the diff goes to stderr).
        diff_stream = sys.stderr if args.format != "text" else out
        for d in result.diffs:
            diff_stream.write(d)
        diff_stream.flush()
    if args.format == "json":
        out.write(reporters.json_array(findings))
    elif args.format == "sarif":
        out.write(reporters.sarif(findings, rule_classes))
    elif args.format == "github":
        out.write(reporters.github(findings))
    else:
        stream = sys.stderr if args.diff else out
        stream.write(reporters.text(findings, result.fixes_applied, fix_mode=args.fix,
                                    color=stream.isatty() and "NO_COLOR" not in os.environ))
    out.flush()
    for p in problems:
        _err(f"{p.path}: {p.message}")
    for e in result.errors:
        _err(e)
    if result.errors or problems:
        return EXIT_ERROR  # something asked for could not be read or checked
    if args.diff and result.diffs:
        return EXIT_FINDINGS
    if findings and not args.exit_zero:
        return EXIT_FINDINGS
    return EXIT_OK


def _rules(args) -> int:
    import json

    if args.format not in ("text", "json"):
        raise UsageError(f"invalid --format {args.format!r}: choose from text, json")
    rule_classes = _load_rules()
    if args.format == "json":
        sys.stdout.write(json.dumps([c.meta() for c in rule_classes], indent=2) + "\n")
        return EXIT_OK
    for c in rule_classes:
        fix = {"safe": "fix", "unsafe": "unsafe fix", None: ""}[c.fix_applicability]
        sys.stdout.write(f"{c.code}  {c.name:<32} {c.severity:<8} {fix:<11} {c.summary()}\n")
    return EXIT_OK


def _explain(args) -> int:
    from keraslint.registry import rules_by_code

    _load_rules()
    code = args.code.upper()
    cls = rules_by_code().get(code)
    if cls is None:
        raise UsageError(f"unknown rule code {args.code!r} (see `keraslint rules`)")
    fix = {"safe": "safe fix available", "unsafe": "unsafe fix available (--unsafe-fixes)", None: "no fix"}[cls.fix_applicability]
    sys.stdout.write(f"{cls.code} {cls.name} ({cls.severity}; {fix})\n\n{cls.doc()}\n")
    return EXIT_OK


def _verify(args) -> int:
    if args.format not in ("text", "json"):
        raise UsageError(f"invalid --format {args.format!r}: choose from text, json")
    if args.steps < 1:
        raise UsageError("--steps must be at least 1")
    if args.timeout <= 0:
        raise UsageError("--timeout must be positive")
    script = args.target.split("::", 1)[0]
    if not os.path.isfile(script):
        raise UsageError(f"{script}: no such file")
    rules = _codes(args.rule)
    if rules:
        from keraslint.registry import rules_by_code

        _load_rules()
        known = rules_by_code()
        for code in rules:
            if code not in known:
                raise UsageError(f"unknown rule code {code!r} in --rule (see `keraslint rules`)")
    import importlib.util

    missing = [m for m in ("keras", "numpy") if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"`keraslint verify` runs your model and needs {' and '.join(missing)}: "
                         f"pip install 'keraslint[verify]'")
    from keraslint.verify import run_cli

    return run_cli(target=args.target, rules=rules, steps=args.steps, timeout=args.timeout, fmt=args.format,
                   plot=args.plot)
