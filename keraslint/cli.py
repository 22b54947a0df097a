"""Command line: ``keraslint check | verify | rules | explain | server``, built with typer.

What the earlier argparse CLI protected is kept:

* Usage, configuration and internal errors are one plain line on stderr
  (``keraslint: error: <problem> (see `keraslint check --help`)``) and exit 2: click's
  exceptions are caught here (``standalone_mode=False``), never rendered as rich boxes.
* Nothing here imports TensorFlow, PyTorch, JAX, pygls or rich on the ``check`` path; the
  command modules are imported inside the commands. typer (0.28: click vendored; rich is
  only imported to render help when asked, and not at all here: ``rich_markup_mode=None``)
  adds ~15-20 ms to a one-file ``check`` (import ~14 ms beyond the modules ``check`` loads
  anyway, building the click command ~2 ms), against ~2 ms for argparse.
* Exit codes: 0 nothing to report, 1 findings remain, 2 usage/config/internal error.

Shell completion comes from typer (``--install-completion``, ``--show-completion``); rule
codes and formats complete too.
"""

import os
import sys
from typing import Annotated, List, Optional

import typer


from keraslint import __version__

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2
PROG = "keraslint"


class UsageError(Exception):
    pass


def _codes(values: Optional[list]) -> Optional[list]:
    if values is None:
        return None
    out = []
    for v in values:
        out.extend(c.strip().upper() for c in v.split(",") if c.strip())
    return out


# ---------------------------------------------------------------------------
# Completion helpers (run only when the shell asks)
# ---------------------------------------------------------------------------


def _complete_codes(incomplete: str) -> list:
    try:
        from keraslint.registry import all_rules

        rules = all_rules()
    except Exception:  # noqa: BLE001 - completion must never fail loudly
        return []
    head, _, last = incomplete.rpartition(",")
    prefix = head + "," if head else ""
    return [(prefix + c.code, c.name) for c in rules if c.code.startswith(last.upper())] + (
        [(prefix + "ALL", "every rule")] if "ALL".startswith(last.upper()) else [])


def _completer(choices: tuple):
    def complete(incomplete: str) -> list:
        return [c for c in choices if c.startswith(incomplete)]

    return complete


CHECK_FORMATS = ("text", "json", "sarif", "github")

# ---------------------------------------------------------------------------
# The typer application
# ---------------------------------------------------------------------------

app = typer.Typer(
    name=PROG,
    help="Find parity hazards in Keras code.",
    add_completion=True,
    rich_markup_mode=None,  # plain help and errors; no rich import, no boxes
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"keraslint {__version__}\n")
        raise typer.Exit(0)


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: Annotated[Optional[bool], typer.Option("--version", callback=_version, is_eager=True,
                                                    help="show the version and exit")] = None,
) -> None:
    if ctx.invoked_subcommand is None:
        sys.stdout.write(ctx.get_help() + "\n")
        raise typer.Exit(0)


@app.command("check", help="Lint files, folders and notebooks.", short_help="lint files, folders and notebooks")
def check_cmd(
    paths: Annotated[Optional[List[str]], typer.Argument(metavar="[PATH]...", show_default=False,
                                                         help="files or folders (default: the current folder)")] = None,
    select: Annotated[Optional[List[str]], typer.Option(
        "--select", metavar="CODES", autocompletion=_complete_codes,
        help="only these codes/prefixes, comma-separated (KL3,KL401; ALL for every rule, default: the default set)")] = None,
    ignore: Annotated[Optional[List[str]], typer.Option(
        "--ignore", metavar="CODES", autocompletion=_complete_codes,
        help="skip these codes/prefixes, comma-separated")] = None,
    fix: Annotated[bool, typer.Option("--fix", help="apply safe fixes in place")] = False,
    unsafe_fixes: Annotated[bool, typer.Option("--unsafe-fixes",
                                               help="with --fix/--diff: also apply fixes that change numerics")] = False,
    diff: Annotated[bool, typer.Option("--diff", help="print the fixes as a unified diff; write nothing")] = False,
    fmt: Annotated[str, typer.Option("--format", metavar="FMT", autocompletion=_completer(CHECK_FORMATS),
                                     help="text (default), json, sarif or github")] = "text",
    exit_zero: Annotated[bool, typer.Option("--exit-zero", help="exit 0 even when findings remain")] = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="do not read or write the result cache")] = False,
    cache_dir: Annotated[Optional[str], typer.Option(
        "--cache-dir", metavar="DIR", help="cache folder (default .keraslint_cache, or $KERASLINT_CACHE_DIR)")] = None,
    config: Annotated[Optional[str], typer.Option(
        "--config", metavar="PYPROJECT", help="use this pyproject.toml instead of the nearest one")] = None,
    jobs: Annotated[Optional[int], typer.Option("-j", "--jobs", metavar="N",
                                                help="worker processes (default: number of cores)")] = None,
    strict: Annotated[bool, typer.Option(
        "--strict", help="report hidden-default rules everywhere, not only in a parity context")] = False,
    statistics: Annotated[bool, typer.Option(
        "--statistics", help="print a count per code (with the fixable count) instead of the findings")] = False,
    add_noqa: Annotated[bool, typer.Option(
        "--add-noqa", help="suppress every current finding with a `# keraslint: ignore[KLnnn]` comment")] = False,
    no_shortcuts: Annotated[bool, typer.Option("--no-shortcuts", hidden=True)] = False,
) -> int:
    return _check(paths=paths or [], select=select, ignore=ignore, fix=fix, unsafe_fixes=unsafe_fixes, diff=diff,
                  fmt=fmt, exit_zero=exit_zero, no_cache=no_cache, cache_dir=cache_dir, config=config, jobs=jobs,
                  strict=strict, statistics=statistics, add_noqa=add_noqa, no_shortcuts=no_shortcuts)


@app.command("verify", help="Run a Keras program and a reference side by side and report measured divergence.",
             short_help="run the flagged program against a reference and measure the divergence")
def verify_cmd(
    target: Annotated[str, typer.Argument(metavar="TARGET", help="script.py or path/to/module.py::function")],
    rule: Annotated[Optional[List[str]], typer.Option("--rule", metavar="CODE", autocompletion=_complete_codes,
                                                      help="run this rule's experiment (repeatable)")] = None,
    steps: Annotated[int, typer.Option("--steps", metavar="N", help="training steps per run")] = 20,
    timeout: Annotated[float, typer.Option("--timeout", metavar="S", help="seconds per experiment")] = 120.0,
    fmt: Annotated[str, typer.Option("--format", metavar="FMT", autocompletion=_completer(("text", "json")),
                                     help="text (default) or json")] = "text",
    plot: Annotated[Optional[str], typer.Option("--plot", metavar="PNG", help="draw the metric per step to this PNG")] = None,
    port: Annotated[Optional[str], typer.Option(
        "--port", metavar="[KERAS,TORCH]",
        help="diff your own PyTorch port against the Keras model layer by layer (optionally name the two objects)")] = None,
) -> int:
    return _verify(target=target, rule=rule, steps=steps, timeout=timeout, fmt=fmt, plot=plot, port=port)


@app.command("rules", help="List the rules (default: in the default set; opt-in: only with --select).",
             short_help="list the rules")
def rules_cmd(
    fmt: Annotated[str, typer.Option("--format", metavar="FMT", autocompletion=_completer(("text", "json")),
                                     help="text (default) or json")] = "text",
) -> int:
    return _rules(fmt)


@app.command("explain", help="Print one rule's documentation.", short_help="print one rule's documentation")
def explain_cmd(
    code: Annotated[str, typer.Argument(metavar="CODE", autocompletion=_complete_codes)],
) -> int:
    return _explain(code)


@app.command("server", help="Run the language server over stdio (needs the `lsp` extra: pygls, lsprotocol).",
             short_help="language server over stdio (extra: lsp)")
def server_cmd() -> int:
    import importlib.util

    missing = [m for m in ("pygls", "lsprotocol") if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"`keraslint server` needs {' and '.join(missing)}: pip install 'keraslint[lsp]'")
    from keraslint.server import serve

    return serve()


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------


def _usage_line(e) -> str:
    """One line for a click usage error: the problem, then where to get help."""
    msg = " ".join(e.format_message().split())
    ctx = getattr(e, "ctx", None)
    where = ctx.command_path if ctx is not None and ctx.command_path else PROG
    return f"{msg} (see `{where} --help`)"


def _optional_values(argv: list) -> list:
    """``verify --port`` takes an optional value (argparse's ``nargs="?"``), which click
    options cannot: ``--port`` followed by nothing or by another option is ``--port=``."""
    if not argv or argv[0] != "verify":
        return argv
    out = list(argv)
    for i, a in enumerate(out):
        if a == "--":
            break
        if a == "--port" and (i + 1 == len(out) or out[i + 1].startswith("-")):
            out[i] = "--port="
    return out


SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")


def _completion(argv: list) -> Optional[int]:
    """``--show-completion [SHELL]`` / ``--install-completion [SHELL]``. typer takes the
    shell only from detection (shellingham) unless told otherwise; here a named shell is
    honoured everywhere (CI, an IDE terminal) and a failed detection is a usage error."""
    if not argv or argv[0] not in ("--show-completion", "--install-completion") or len(argv) > 2:
        return None
    from typer import _completion_shared as comp

    shell = argv[1] if len(argv) == 2 else comp._get_shell_name()
    if shell not in SHELLS:
        what = f"unsupported shell {shell!r}" if shell else "cannot detect the shell"
        raise UsageError(f"{what}: name one of {', '.join(SHELLS[:4])} (`keraslint {argv[0]} bash`)")
    var = f"_{PROG.upper()}_COMPLETE"
    if argv[0] == "--show-completion":
        sys.stdout.write(comp.get_completion_script(prog_name=PROG, complete_var=var, shell=shell) + "\n")
        return EXIT_OK
    shell, path = comp.install(shell=shell, prog_name=PROG, complete_var=var)
    sys.stdout.write(f"{shell} completion installed in {path}\nCompletion will take effect once you restart the "
                     f"terminal\n")
    return EXIT_OK


def main(argv: Optional[list] = None) -> int:
    argv = _optional_values(sys.argv[1:] if argv is None else list(argv))
    try:
        done = _completion(argv)
    except UsageError as e:
        _err(str(e))
        return EXIT_ERROR
    if done is not None:
        return done
    try:  # typer >= 0.26 vendors click
        from typer._click.exceptions import ClickException
    except ImportError:  # pragma: no cover - typer with click as a dependency
        from click import ClickException
    Abort = typer.Abort
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=argv, prog_name=PROG, standalone_mode=False)
    except UsageError as e:
        _err(str(e))
        return EXIT_ERROR
    except ClickException as e:  # UsageError, BadParameter, NoSuchOption, ...
        _err(_usage_line(e))
        return EXIT_ERROR
    except (KeyboardInterrupt, Abort):
        _err("interrupted")
        return 130
    except BrokenPipeError:
        try:
            sys.stdout.close()
        except Exception:  # noqa: BLE001
            pass
        return EXIT_OK
    except SystemExit as e:  # completion callbacks exit themselves
        code = e.code
        return code if isinstance(code, int) else (EXIT_OK if code is None else EXIT_ERROR)
    except Exception as e:  # noqa: BLE001 - an internal error is one line and exit 2
        if os.environ.get("KERASLINT_DEBUG"):
            raise
        _err(f"internal error: {type(e).__name__}: {e} (set KERASLINT_DEBUG=1 for the traceback)")
        return EXIT_ERROR
    if isinstance(rv, bool) or rv is None:
        return EXIT_OK
    return rv if isinstance(rv, int) else EXIT_OK


def _err(msg: str) -> None:
    print(f"keraslint: error: {msg}", file=sys.stderr)


def _load_rules():
    from keraslint.registry import RegistryError, all_rules

    try:
        return all_rules()
    except RegistryError as e:
        raise UsageError(str(e)) from None


# ---------------------------------------------------------------------------
# check
# ---------------------------------------------------------------------------


def _check(*, paths: list, select, ignore, fix: bool, unsafe_fixes: bool, diff: bool, fmt: str, exit_zero: bool,
           no_cache: bool, cache_dir, config, jobs, strict: bool = False, statistics: bool = False,
           add_noqa: bool = False, no_shortcuts: bool = False) -> int:
    from keraslint import config as cfgmod
    from keraslint import discovery, reporters
    from keraslint.registry import known_code_or_prefix

    if fmt not in reporters.FORMATS:
        raise UsageError(f"invalid --format {fmt!r}: choose from {', '.join(reporters.FORMATS)}")
    if jobs is not None and jobs < 1:
        raise UsageError("--jobs must be at least 1")
    if statistics and fmt not in ("text", "json"):
        raise UsageError(f"--statistics prints text or json, not --format {fmt}")
    if add_noqa:
        for flag, on in (("--fix", fix), ("--diff", diff), ("--statistics", statistics)):
            if on:
                raise UsageError(f"--add-noqa cannot be combined with {flag}")
    rule_classes = _load_rules()
    select, ignore = _codes(select), _codes(ignore)
    for flag, codes in (("--select", select), ("--ignore", ignore)):
        for code in codes or ():
            if not known_code_or_prefix(code):
                raise UsageError(f"unknown rule code {code!r} in {flag} (see `keraslint rules`)")
    if config is not None and not os.path.isfile(config):
        raise UsageError(f"{config}: no such config file")
    paths = paths or ["."]
    try:
        cfg = cfgmod.load(paths[0], explicit=config)
    except cfgmod.ConfigError as e:
        raise UsageError(str(e)) from None
    if strict:
        cfg.strict = True
    problems: list = []
    try:
        files = discovery.discover(paths, cfg.root, cfg.exclude, problems)
    except discovery.DiscoveryError as e:
        raise UsageError(str(e)) from None
    all_codes = [c.code for c in rule_classes]
    codes_for = cfg.codes_for(cfg.enabled_codes(all_codes, select, ignore))

    from keraslint.runner import Options, run

    opts = Options(select=select, ignore=ignore, fix=fix, unsafe_fixes=unsafe_fixes, diff=diff,
                   no_cache=no_cache, cache_dir=cache_dir, jobs=jobs, gate=not no_shortcuts)
    result = run(files, cfg, opts, codes_for)
    findings = result.findings
    out = sys.stdout

    if add_noqa:
        from keraslint import noqa

        res = noqa.add_noqa(findings)
        stream = out if fmt == "text" else sys.stderr
        stream.write(f"Added {res.added} noqa directive{'s' if res.added != 1 else ''}.\n")
        stream.flush()
        for path, line, code in res.fallback:
            print(f"keraslint: warning: {path}:{line}: {code} starts and ends on lines inside a string or a "
                  f"line continuation; its directive is on the statement's last line", file=sys.stderr)
        for p in problems:
            _err(f"{p.path}: {p.message}")
        for e in list(result.errors) + res.errors:
            _err(e)
        return EXIT_ERROR if (result.errors or problems or res.errors) else EXIT_OK

    if diff:
        # stdout carries one thing: the diff, or the machine-readable report when one
        # was asked for (then the diff goes to stderr).
        diff_stream = sys.stderr if fmt != "text" else out
        for d in result.diffs:
            diff_stream.write(d)
        diff_stream.flush()
    if statistics:
        fixable = ("safe", "unsafe") if unsafe_fixes else ("safe",)
        if fmt == "json":
            out.write(reporters.statistics_json(findings, fixable))
        else:
            (sys.stderr if diff else out).write(reporters.statistics_text(findings, fixable))
    elif fmt == "json":
        out.write(reporters.json_array(findings))
    elif fmt == "sarif":
        out.write(reporters.sarif(findings, rule_classes))
    elif fmt == "github":
        out.write(reporters.github(findings))
    else:
        stream = sys.stderr if diff else out
        stream.write(reporters.text(findings, result.fixes_applied, fix_mode=fix,
                                    color=stream.isatty() and "NO_COLOR" not in os.environ))
    out.flush()
    for p in problems:
        _err(f"{p.path}: {p.message}")
    for e in result.errors:
        _err(e)
    if result.errors or problems:
        return EXIT_ERROR  # something asked for could not be read or checked
    if diff and result.diffs:
        return EXIT_FINDINGS
    if findings and not exit_zero:
        return EXIT_FINDINGS
    return EXIT_OK


# ---------------------------------------------------------------------------
# rules, explain, verify
# ---------------------------------------------------------------------------


def _rules(fmt: str) -> int:
    import json

    if fmt not in ("text", "json"):
        raise UsageError(f"invalid --format {fmt!r}: choose from text, json")
    rule_classes = _load_rules()
    if fmt == "json":
        sys.stdout.write(json.dumps([c.meta() for c in rule_classes], indent=2) + "\n")
        return EXIT_OK
    for c in rule_classes:
        fix = {"safe": "fix", "unsafe": "unsafe fix", None: ""}[c.fix_applicability]
        dflt = "default" if getattr(c, "default", True) else "opt-in"
        sys.stdout.write(f"{c.code}  {c.name:<32} {c.severity:<8} {dflt:<8} {fix:<11} {c.summary()}\n")
    return EXIT_OK


def _explain(code_arg: str) -> int:
    from keraslint.registry import rules_by_code

    _load_rules()
    code = code_arg.upper()
    cls = rules_by_code().get(code)
    if cls is None:
        raise UsageError(f"unknown rule code {code_arg!r} (see `keraslint rules`)")
    fix = {"safe": "safe fix available", "unsafe": "unsafe fix available (--unsafe-fixes)", None: "no fix"}[cls.fix_applicability]
    dflt = "" if getattr(cls, "default", True) else "; opt-in: --select " + cls.code
    sys.stdout.write(f"{cls.code} {cls.name} ({cls.severity}; {fix}{dflt})\n\n{cls.doc()}\n")
    # what `keraslint verify --rule CODE` measures, or why it cannot (pure Python, no TF)
    from keraslint.verify.catalog import describe

    note = describe(cls.code)
    if note:
        sys.stdout.write(f"\n## Verify\n{note}\n")
    return EXIT_OK


def _verify(*, target: str, rule, steps: int, timeout: float, fmt: str, plot, port=None) -> int:
    if fmt not in ("text", "json"):
        raise UsageError(f"invalid --format {fmt!r}: choose from text, json")
    if steps < 1:
        raise UsageError("--steps must be at least 1")
    if timeout <= 0:
        raise UsageError("--timeout must be positive")
    script = target.split("::", 1)[0]
    if not os.path.isfile(script):
        raise UsageError(f"{script}: no such file")
    rules = _codes(rule)
    if rules:
        from keraslint.registry import rules_by_code

        _load_rules()
        from keraslint.verify.catalog import NAMES

        known = set(rules_by_code()) | set(NAMES)  # every catalog code (KL000 too) gets an answer
        for code in rules:
            if code not in known:
                raise UsageError(f"unknown rule code {code!r} in --rule (see `keraslint rules`)")
    import importlib.util

    missing = [m for m in ("keras", "numpy") if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"`keraslint verify` runs your model and needs {' and '.join(missing)}: "
                         f"pip install 'keraslint[verify]'")
    from keraslint.verify import run_cli

    if port is not None and port and len([p for p in port.split(",") if p.strip()]) != 2:
        raise UsageError(f"--port takes two names, KERAS,TORCH (got {port!r})")
    kwargs = {} if port is None else {"port": port}
    return run_cli(target=target, rules=rules, steps=steps, timeout=timeout, fmt=fmt, plot=plot, **kwargs)
