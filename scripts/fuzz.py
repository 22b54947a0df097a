"""Fuzz `keraslint check` (and `--fix`) with hostile input: a long local campaign.

    .venv/bin/python scripts/fuzz.py --minutes 30            # all generators
    .venv/bin/python scripts/fuzz.py --examples 2000 --only mutate
    .venv/bin/python scripts/fuzz.py --minutes 5 --no-fix --gates

Generators:
* ``mutate``: the fixtures (fixtures/*/bad.py, good.py, fixed.py) truncated at a line or
  mid-line, with random byte flips, a BOM, CRLF or lone-CR line ends, tabs, a coding
  cookie with Latin-1 bytes, null bytes, lines duplicated, deleted or re-indented, stray
  brackets and quotes, deep nesting;
* ``grammar``: ``hypothesmith.from_grammar()`` (random valid Python from the grammar);
* ``node``: ``hypothesmith.from_node()`` (random libcst trees, realistic layout), each
  also wrapped into a Keras layer's ``call`` and after framework imports, so that the
  graph-context rules run on it.

Property (``check_bytes``): checking returns findings (known codes, positions >= 1,
one-line messages) or one KL000, and never raises; a file CPython compiles gets no KL000;
with fixes on (``--unsafe-fixes``), the fixed text re-parses, and compiles where the
original did. ``--gates`` also checks that the token gates change no finding.

Prints examples/s per generator and every failure (with a reproducer file under
``--out``); exit 1 if any failure.
"""

from __future__ import annotations

import argparse
import ast
import codecs
import os
import random
import sys
import time
import traceback

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "fixtures")

HEADER = "import numpy as np\nimport tensorflow as tf\nimport keras\nimport torch\n"


# ---------------------------------------------------------------------------
# The property
# ---------------------------------------------------------------------------

_CLASSES = None
LIBCST_LIMITS: list = []  # KL000s on valid Python that libcst cannot parse (not keraslint bugs)


def _classes() -> list:
    global _CLASSES
    if _CLASSES is None:
        from keraslint.registry import all_rules

        _CLASSES = list(all_rules())
    return _CLASSES


def cpython_compiles(text: str, notebook: bool = False) -> bool:
    from keraslint.engine import _recursion_limit

    flags = ast.PyCF_ONLY_AST | (ast.PyCF_ALLOW_TOP_LEVEL_AWAIT if notebook else 0)
    try:
        with _recursion_limit(1000):
            compile(text, "<fuzz>", "exec", flags, dont_inherit=True)
        return True
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        return False


def _fixer():
    try:
        from keraslint import fixer
    except ImportError:  # pragma: no cover - the fixer is optional for this script
        return None
    return fixer


def check_bytes(data: bytes, path: str = "fuzz.py", fix: bool = True, gates: bool = False) -> list:
    """Problems (strings) found checking ``data`` as the file ``path``; [] if all is well."""
    from keraslint import engine
    from keraslint.rule import Finding

    problems: list = []
    known = {c.code for c in _classes()} | {"KL000"}
    try:
        src = engine.read_source(path, data=data)
        if isinstance(src, Finding):
            findings = [src]
            text = None
        else:
            text = src.text
            notebook = src.notebook is not None
            findings = engine.analyze(src, _classes()).findings
    except Exception:  # noqa: BLE001 - the point of the exercise
        return [f"check raised:\n{traceback.format_exc()}"]
    for f in findings:
        if f.code not in known:
            problems.append(f"unknown code {f.code}")
        if f.line < 1 or f.column < 1 or f.end_line < f.line or (f.end_line == f.line and f.end_column < f.column):
            problems.append(f"bad position {f.code} {f.line}:{f.column}-{f.end_line}:{f.end_column}")
        if not f.message or "\n" in f.message:
            problems.append(f"bad message {f.code} {f.message!r}")
    kl000 = [f for f in findings if f.code == "KL000"]
    if kl000 and len(findings) != len(kl000) and not path.endswith(".ipynb"):
        problems.append(f"KL000 together with other findings: {[f.code for f in findings]}")
    if text is not None and kl000 and not path.endswith(".ipynb") and cpython_compiles(text, notebook):
        # Where libcst itself rejects what CPython accepts (form feeds in indentation,
        # thousands of adjacent string literals) the KL000 is libcst's limit, counted apart.
        import libcst as cst

        try:
            cst.parse_module(text)
        except Exception:  # noqa: BLE001
            LIBCST_LIMITS.append(kl000[0].message)
        else:
            problems.append(f"KL000 on a file CPython compiles and libcst parses: {kl000[0].message}")
    if text is None:
        return problems
    if gates:
        try:
            src2 = engine.read_source(path, data=data)
            off = engine.analyze(src2, _classes(), gate=False).findings
        except Exception:  # noqa: BLE001
            return problems + [f"check (no gates) raised:\n{traceback.format_exc()}"]
        a = sorted((f.code, f.line, f.column, f.cell) for f in findings)
        b = sorted((f.code, f.line, f.column, f.cell) for f in off)
        if a != b:
            problems.append(f"token gates change the findings: with {sorted(set(a) - set(b))}, "
                            f"without {sorted(set(b) - set(a))}")
    fixer = _fixer() if fix else None
    if fixer is not None:
        try:
            src3 = engine.read_source(path, data=data)
            res = fixer.fix_source(src3, _classes(), unsafe=True)
        except Exception:  # noqa: BLE001
            return problems + [f"fix raised:\n{traceback.format_exc()}"]
        if res.new_bytes is not None:
            new = engine.read_source(path, data=res.new_bytes)
            if isinstance(new, Finding):
                problems.append(f"fixed file cannot be read: {new.message}")
            else:
                import libcst as cst

                try:
                    cst.parse_module(new.text)
                except Exception as e:  # noqa: BLE001
                    problems.append(f"fixed file does not re-parse: {type(e).__name__}: {str(e)[:200]}")
                if cpython_compiles(text, notebook) and not cpython_compiles(new.text, notebook):
                    problems.append("fixed file no longer compiles")
    return problems


# ---------------------------------------------------------------------------
# Generators
# ---------------------------------------------------------------------------


def fixture_texts() -> list:
    out = []
    for case in sorted(os.listdir(FIXTURES)):
        for name in ("bad.py", "good.py", "fixed.py"):
            p = os.path.join(FIXTURES, case, name)
            if os.path.isfile(p):
                with open(p, "rb") as fh:
                    out.append((f"{case}/{name}", fh.read()))
    return out


def _lines(data: bytes) -> list:
    return data.splitlines(keepends=True)


def mutations(data: bytes, rng: random.Random) -> tuple:
    """One random mutation of ``data``: (name, bytes)."""
    lines = _lines(data)
    n = len(lines)
    k = rng.randrange(n + 1) if n else 0
    kind = rng.choice([
        "truncate", "truncate-mid", "flip", "flip", "bom", "crlf", "cr", "mixed-eol", "tabs", "latin1",
        "nul", "dup-line", "del-line", "indent", "stray", "deep", "bom-crlf-latin1", "no-final-newline",
        "utf16", "bad-cookie",
    ])
    if kind == "truncate":
        return kind, b"".join(lines[:k])
    if kind == "truncate-mid":
        cut = rng.randrange(len(data) + 1)
        return kind, data[:cut]
    if kind == "flip":
        b = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            if b:
                b[rng.randrange(len(b))] = rng.randrange(256)
        return kind, bytes(b)
    if kind == "bom":
        return kind, codecs.BOM_UTF8 + data
    if kind == "crlf":
        return kind, data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if kind == "cr":
        return kind, data.replace(b"\r\n", b"\n").replace(b"\n", b"\r")
    if kind == "mixed-eol":
        return kind, b"".join(ln.rstrip(b"\r\n") + rng.choice([b"\n", b"\r\n", b"\r"]) for ln in lines)
    if kind == "tabs":
        return kind, data.replace(b"    ", b"\t")
    if kind == "latin1":
        body = data.decode("utf-8", "replace").encode("latin-1", "replace")
        return kind, b"# -*- coding: latin-1 -*-\n# caf\xe9 na\xefve \xb5\n" + body + b"s = '\xe9\xe8\xff'\n"
    if kind == "bom-crlf-latin1":
        return kind, codecs.BOM_UTF8 + b"# coding: latin-1\r\n" + data.replace(b"\n", b"\r\n")
    if kind == "bad-cookie":
        return kind, b"# -*- coding: no-such-codec -*-\n" + data
    if kind == "utf16":
        return kind, data.decode("utf-8", "replace").encode("utf-16")
    if kind == "no-final-newline":
        return kind, data.rstrip(b"\r\n")
    if kind == "nul":
        pos = rng.randrange(len(data) + 1)
        return kind, data[:pos] + b"\0" + data[pos:]
    if kind == "dup-line" and n:
        return kind, b"".join(lines[:k] + lines[k - 1:k] + lines[k:]) if k else data + data
    if kind == "del-line" and n:
        i = rng.randrange(n)
        return kind, b"".join(lines[:i] + lines[i + 1:])
    if kind == "indent" and n:
        i = rng.randrange(n)
        return kind, b"".join(lines[:i] + [rng.choice([b" ", b"\t", b"        "]) + lines[i]] + lines[i + 1:])
    if kind == "stray":
        pos = rng.randrange(len(data) + 1)
        return kind, data[:pos] + rng.choice([b"(", b")", b"[", b"]", b"{", b"}", b":", b"\\", b"'", b'"', b'"""',
                                              b"#", b"\n", b"\t", b"@", b"lambda", b"\xff", b"\xc3"]) + data[pos:]
    if kind == "deep":
        depth = rng.choice([100, 199, 201, 400, 1500])
        opener, closer = rng.choice([(b"(", b")"), (b"[", b"]"), (b"{", b"}"), (b"np.sin(", b")")])
        return kind, data + b"\ny = " + opener * depth + b"1" + closer * depth + b"\n"
    return "identity", data


def nested(depth: int, kind: str) -> bytes:
    """Hostile nesting: brackets, chains and blocks ``depth`` deep."""
    body = {
        "list": "x = " + "[" * depth + "1" + "]" * depth,
        "call": "x = " + "np.sin(" * depth + "t" + ")" * depth,
        "attr": "x = np.sin(t)" + ".a" * depth,
        "binop": "x = " + " + ".join(["np.sin(t)"] * depth),
        "not": "x = " + "not " * depth + "t",
        "lambda": "x = " + "lambda: " * depth + "t",
        "elif": "if t:\n    pass\n" + "elif t:\n    pass\n" * depth,
        "if": "".join("    " * i + "if t:\n" for i in range(depth)) + "    " * depth + "pass",
    }[kind]
    return (HEADER + "t = tf.ones(3)\n" + body + "\n").encode()


def wrap_in_layer(code: str) -> str:
    body = "".join("        " + ln if ln.strip() else ln for ln in code.splitlines(keepends=True))
    return (HEADER + "\n\nclass Fuzz(keras.layers.Layer):\n    def call(self, x, training=None):\n"
            + (body if body.strip() else "        pass\n") + "\n        return x\n")


def hypothesmith_strategy(kind: str):
    import hypothesmith
    from hypothesis import strategies as st

    base = hypothesmith.from_grammar() if kind == "grammar" else hypothesmith.from_node()
    return st.tuples(base, st.sampled_from(["raw", "header", "layer"]))


def hypothesmith_variant(code: str, how: str) -> str:
    if how == "header":
        return HEADER + code
    if how == "layer":
        return wrap_in_layer(code)
    return code


# ---------------------------------------------------------------------------
# Campaign
# ---------------------------------------------------------------------------


class Stats:
    def __init__(self) -> None:
        self.n: dict = {}
        self.t: dict = {}
        self.failures: list = []

    def add(self, gen: str, dt: float) -> None:
        self.n[gen] = self.n.get(gen, 0) + 1
        self.t[gen] = self.t.get(gen, 0.0) + dt


def _record(stats: Stats, gen: str, name: str, data: bytes, path: str, problems: list, out: str) -> None:
    if not problems:
        return
    os.makedirs(out, exist_ok=True)
    fn = os.path.join(out, f"fail-{len(stats.failures):04d}-{gen}{os.path.splitext(path)[1]}")
    with open(fn, "wb") as fh:
        fh.write(data)
    stats.failures.append((gen, name, fn, problems))
    print(f"FAIL [{gen}] {name} -> {fn}\n  " + "\n  ".join(p.replace("\n", "\n  ") for p in problems), flush=True)


def run_mutations(stats, rng, deadline, limit, fix, gates, out) -> None:
    seeds = fixture_texts()
    i = 0
    while time.time() < deadline and stats.n.get("mutate", 0) < limit:
        name, data = seeds[i % len(seeds)]
        i += 1
        kind, mutated = mutations(data, rng)
        if rng.random() < 0.3:  # stack a second mutation
            kind2, mutated = mutations(mutated, rng)
            kind = f"{kind}+{kind2}"
        t = time.perf_counter()
        problems = check_bytes(mutated, "fuzz.py", fix=fix, gates=gates)
        stats.add("mutate", time.perf_counter() - t)
        _record(stats, "mutate", f"{name} {kind}", mutated, "fuzz.py", problems, out)


def run_hypothesmith(stats, kind, deadline, limit, fix, gates, out, seed) -> None:
    from hypothesis import HealthCheck, given, seed as hseed, settings

    strat = hypothesmith_strategy(kind)
    remaining = max(0, limit - stats.n.get(kind, 0))

    @hseed(seed)
    @settings(max_examples=remaining, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(strat)
    def one(pair):
        if time.time() > deadline:
            return
        code, how = pair
        text = hypothesmith_variant(code, how)
        data = text.encode("utf-8", "surrogatepass")
        t = time.perf_counter()
        problems = check_bytes(data, "fuzz.py", fix=fix, gates=gates)
        stats.add(kind, time.perf_counter() - t)
        _record(stats, kind, how, data, "fuzz.py", problems, out)

    if remaining:
        one()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="time budget (default 10)")
    ap.add_argument("--examples", type=int, default=10**9, help="at most this many examples per generator")
    ap.add_argument("--only", action="append", choices=["mutate", "grammar", "node"], help="generators to run")
    ap.add_argument("--no-fix", action="store_true", help="do not run the fixer")
    ap.add_argument("--gates", action="store_true", help="also check that token gates change nothing")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=os.path.join(ROOT, ".fuzz-failures"), help="reproducers go here")
    args = ap.parse_args(argv)
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20000))
    import warnings

    warnings.simplefilter("ignore")  # hypothesmith compiles what it generates: SyntaxWarnings
    gens = args.only or ["mutate", "grammar", "node"]
    stats = Stats()
    start = time.time()
    share = args.minutes * 60 / len(gens)
    rng = random.Random(args.seed)
    for i, g in enumerate(gens):
        deadline = start + share * (i + 1)
        if g == "mutate":
            run_mutations(stats, rng, deadline, args.examples, not args.no_fix, args.gates, args.out)
        else:
            # hypothesis stops at max_examples; loop with fresh seeds until the deadline.
            s = args.seed
            while time.time() < deadline and stats.n.get(g, 0) < args.examples:
                before = stats.n.get(g, 0)
                run_hypothesmith(stats, g, deadline, min(args.examples, before + 200), not args.no_fix, args.gates,
                                 args.out, s)
                s += 1
                if stats.n.get(g, 0) == before:
                    break
    total = sum(stats.n.values())
    wall = time.time() - start
    print(f"\nkeraslint fuzz: {total} examples in {wall:.0f} s ({total / max(wall, 1e-9):.1f} examples/s), "
          f"{len(stats.failures)} failures")
    if LIBCST_LIMITS:
        print(f"  ({len(LIBCST_LIMITS)} valid files libcst cannot parse, reported as KL000: "
              f"{sorted(set(m[:60] for m in LIBCST_LIMITS))[:3]})")
    for g in gens:
        n, t = stats.n.get(g, 0), stats.t.get(g, 0.0)
        print(f"  {g:<8} {n:>7} examples  {n / max(t, 1e-9):7.1f} examples/s (check time only)")
    return 1 if stats.failures else 0


if __name__ == "__main__":
    sys.exit(main())
