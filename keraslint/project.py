"""Across the modules of a project: cheap per-module summaries, resolved through imports.

Real projects put layers in ``models.py``, pipelines in ``data.py``, seeding in
``utils.py`` and ``fit`` in ``train.py``. A rule checking ``train.py`` asks what an imported
name really is: ``ctx.project.function("utils.seed_everything").seeds``,
``ctx.project.keras_class("models.Net")``.

Two layers:

* a **raw summary** of one module, computed from its text alone with Python's :mod:`ast`
  (about ten times cheaper than a libcst tree): its imports, its classes and their bases,
  and per top-level function the seed APIs it calls, the calls it makes, what it returns
  (a Keras model, a ``tf.data`` pipeline and its steps, or another call) and the functions it
  gives to ``Dataset.map``. Raw summaries are cached by content hash in the cache folder
  (``summaries/``), so a module is summarized once, whatever imports it;
* a **project view** for one checked file: the raw summaries of the project modules it
  imports (transitively), found through the package layout (the file's folder, its package
  root, the project root of ``pyproject.toml`` and its ``src/``), resolved into
  :class:`FunctionSummary` / :class:`ClassSummary` (a helper that seeds through another
  helper seeds). The view is what rules see as ``ctx.project``; its :meth:`ProjectView.digest`
  goes into the checked file's cache key, so a change to ``data.py`` that changes what
  ``data.py`` offers re-checks ``train.py``, and nothing else.

Only ``.py`` modules are summarized; a name the project does not define gives ``None``.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from typing import Any, Iterable, Optional

from keraslint.names import canonical

SUMMARY_VERSION = "2"
MAX_MODULE_BYTES = 1024 * 1024  # larger modules are not summarized (generated code)
MAX_DEPTH = 3  # imports followed from a checked file (its imports, theirs, and one more)

# Seed APIs (canonical names). Op determinism is not a seed.
SEED_APIS = frozenset({
    "keras.utils.set_random_seed", "tensorflow.random.set_seed", "tensorflow.compat.v1.set_random_seed",
    "tensorflow.set_random_seed", "numpy.random.seed", "random.seed", "torch.manual_seed",
    "torch.cuda.manual_seed_all", "torch.cuda.manual_seed", "keras.random.SeedGenerator",
})
SEED_APIS = SEED_APIS - {"keras.random.SeedGenerator"}
MODEL_CONSTRUCTORS = frozenset({
    "keras.Model", "keras.Sequential", "keras.models.Model", "keras.models.Sequential",
    "keras.models.load_model", "keras.saving.load_model", "keras.models.clone_model",
    "keras.models.model_from_json", "keras.models.model_from_config",
})
MODEL_BASES = frozenset({"keras.Model", "keras.Sequential", "keras.models.Model", "keras.models.Sequential"})
TORCH_TRAIN_MODE = ("Dropout", "BatchNorm", "AlphaDropout", "FeatureAlphaDropout", "Transformer")
MAP_METHODS = ("map", "filter", "flat_map", "interleave")


def _dataset_tables():
    from keraslint.semantics import DATASET_METHODS, DATASET_SOURCES

    return DATASET_SOURCES, DATASET_METHODS


# ---------------------------------------------------------------------------
# Raw summary of one module (ast, text only)
# ---------------------------------------------------------------------------


def _dotted(node: ast.AST) -> Optional[str]:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


_COMPOUND = (ast.If, ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith, ast.Try,
             getattr(ast, "TryStar", ast.Try), getattr(ast, "Match", ast.If))
_BLOCK_FIELDS = {"body", "orelse", "finalbody", "handlers", "cases"}
_LEAVES = frozenset({ast.Name, ast.Constant, ast.Load, ast.Store, ast.Del, ast.arg, ast.alias, ast.Pass,
                     ast.Break, ast.Continue})


class _Summarizer:
    def __init__(self, tree: ast.Module) -> None:
        self.tree = tree
        self.imports: dict = {}
        self.local_functions: set = set()
        self.local_classes: set = set()
        self.sources, self.methods = _dataset_tables()

    # names -------------------------------------------------------------------------
    def _collect_imports(self, body: Iterable[ast.stmt]) -> None:
        for stmt in body:
            if isinstance(stmt, ast.Import):
                for a in stmt.names:
                    if a.asname:
                        self.imports[a.asname] = a.name
                    else:
                        head = a.name.split(".", 1)[0]
                        self.imports[head] = head
            elif isinstance(stmt, ast.ImportFrom):
                mod = "." * (stmt.level or 0) + (stmt.module or "")
                for a in stmt.names:
                    if a.name == "*":
                        continue
                    sep = "" if mod.endswith(".") or not mod else "."
                    self.imports[a.asname or a.name] = f"{mod}{sep}{a.name}"
            elif isinstance(stmt, (ast.If, ast.Try, ast.With)):
                self._collect_imports(stmt.body)
                for h in getattr(stmt, "handlers", ()):
                    self._collect_imports(h.body)
                self._collect_imports(getattr(stmt, "orelse", ()))

    def ref(self, func: ast.AST) -> Optional[str]:
        """``local:name`` for a module-level function/class of this module, the canonical
        imported name for an imported one, else None."""
        d = _dotted(func)
        if d is None:
            return None
        head, _, rest = d.partition(".")
        if not rest and (head in self.local_functions or head in self.local_classes) and head not in self.imports:
            return "local:" + head
        full = self.imports.get(head)
        if full is None:
            return None
        q = f"{full}.{rest}" if rest else full
        return q if q.startswith(".") else canonical(q)

    # values ------------------------------------------------------------------------
    def value(self, expr: Any, env: dict, depth: int = 0) -> Optional[list]:
        """An abstract value: ["model"], ["dataset", steps], ["call", ref, steps],
        ["param", name, steps] or None."""
        if expr is None or depth > 30:
            return None
        if isinstance(expr, ast.Name):
            return env.get(expr.id)
        if isinstance(expr, ast.Await):
            return self.value(expr.value, env, depth + 1)
        if not isinstance(expr, ast.Call):
            return None
        func = expr.func
        if isinstance(func, ast.Attribute) and func.attr in self.methods and self.ref(func) is None:
            base = self.value(func.value, env, depth + 1)
            if base is not None and base[0] in ("dataset", "call", "param"):
                return base[:-1] + [base[-1] + [func.attr]]
            return None
        q = self.ref(func)
        if q is None:
            return None
        if q in self.sources or q.startswith("tensorflow.data.Dataset.") or q.endswith(
                ("_dataset_from_directory", "timeseries_dataset_from_array")):
            return ["dataset", [q.rsplit(".", 1)[-1]]]
        if q in MODEL_CONSTRUCTORS or q.startswith("keras.applications.") or (
                q.startswith(("keras_hub.models.", "keras_nlp.models.", "keras_cv.models."))
                and q.endswith(".from_preset")):
            return ["model"]
        if q.split(".", 1)[0] in ("keras", "tensorflow", "numpy", "torch", "jax", "random", "os", "sys"):
            return None
        return ["call", q, []]

    def function(self, fn: ast.FunctionDef) -> dict:
        seeds: list = []
        calls: list = []
        maps: list = []
        returns: list = []
        env: dict = {a.arg: ["param", a.arg, []] for a in fn.args.args + fn.args.kwonlyargs}
        self._block(fn.body, env, seeds, calls, maps, returns)
        out: dict = {}
        if seeds:
            out["seeds"] = sorted(set(seeds))
        if calls:
            out["calls"] = sorted(set(calls))
        if maps:
            out["maps"] = maps
        rets = [r for r in returns if r is not None]
        if rets:
            out["returns"] = rets
        return out

    def _block(self, body: list, env: dict, seeds: list, calls: list, maps: list, returns: list) -> None:
        for stmt in body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue  # nested definitions run when called, not here
            self._calls_in(stmt, env, seeds, calls, maps)
            if isinstance(stmt, ast.Assign):
                v = self.value(stmt.value, env)
                for t in stmt.targets:
                    if isinstance(t, ast.Name):
                        env[t.id] = v
            elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
                env[stmt.target.id] = self.value(stmt.value, env)
            elif isinstance(stmt, ast.Return):
                returns.append(self.value(stmt.value, env))
            else:
                for field in ("body", "orelse", "finalbody"):
                    inner = getattr(stmt, field, None)
                    if isinstance(inner, list) and inner and isinstance(inner[0], ast.stmt):
                        self._block(inner, env, seeds, calls, maps, returns)
                for h in getattr(stmt, "handlers", ()) or ():
                    self._block(h.body, env, seeds, calls, maps, returns)
                for case in getattr(stmt, "cases", ()) or ():
                    self._block(case.body, env, seeds, calls, maps, returns)

    def _calls_in(self, stmt: ast.stmt, env: dict, seeds: list, calls: list, maps: list) -> None:
        # a compound statement's blocks are visited by _block, statement by statement: here
        # only its header (test, iterable, context managers)
        if isinstance(stmt, _COMPOUND):
            todo = [v for f, v in ast.iter_fields(stmt) if f not in _BLOCK_FIELDS and isinstance(v, ast.AST)]
            for f, v in ast.iter_fields(stmt):
                if f not in _BLOCK_FIELDS and isinstance(v, list):
                    todo.extend(x for x in v if isinstance(x, ast.AST))
        else:
            todo = [stmt]
        leaves = _LEAVES
        while todo:
            node = todo.pop()
            t = type(node)
            if t in leaves:
                continue  # names, constants and contexts hold no call (most nodes are these)
            if t is ast.FunctionDef or t is ast.AsyncFunctionDef or t is ast.ClassDef or t is ast.Lambda:
                continue
            if t is ast.Call:
                q = self.ref(node.func)
                if q is not None:
                    if q in SEED_APIS:
                        seeds.append(q)
                    elif q.startswith(("local:", ".")) or q.split(".", 1)[0] not in (
                            "keras", "tensorflow", "numpy", "torch", "jax", "os", "sys"):
                        calls.append(q)
                f = node.func
                if isinstance(f, ast.Attribute) and f.attr in MAP_METHODS and node.args and self.ref(f) is None:
                    target = self.ref(node.args[0])
                    if target is not None:
                        maps.append([target, self.value(f.value, env)])
            todo.extend(ast.iter_child_nodes(node))

    def classdef(self, cls: ast.ClassDef) -> dict:
        bases = []
        for b in cls.bases:
            r = self.ref(b)
            bases.append(r if r is not None else (_dotted(b) or "?"))
        out: dict = {"bases": bases}
        if bases and all(b.split(".", 1)[0] in ("keras", "tensorflow", "tf_keras", "keras_hub", "keras_nlp",
                                                "keras_cv", "object", "abc", "typing", "enum")
                         for b in bases):
            return out  # a Keras (or plain) class: its bases are all a rule asks about
        uses: set = set()
        train_mode = False
        for node in ast.walk(cls):
            if isinstance(node, ast.Call):
                q = self.ref(node.func)
                if not q:
                    continue
                last = q.rsplit(".", 1)[-1]
                if q.startswith("torch.nn.") and last.startswith(TORCH_TRAIN_MODE):
                    p = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "p"), None)
                    if not ("Dropout" in last and isinstance(p, ast.Constant) and p.value == 0):
                        train_mode = True
                elif q.startswith("torch.nn.") and last in ("LSTM", "GRU", "RNN", "MultiheadAttention"):
                    p = next((k.value for k in node.keywords if k.arg == "dropout"), None)
                    if isinstance(p, ast.Constant) and isinstance(p.value, (int, float)) and p.value > 0:
                        train_mode = True
                elif q.startswith(("torchvision.models.", "timm.create_model")):
                    train_mode = True
                elif q.startswith("local:") or q.startswith(".") or q.split(".", 1)[0] not in (
                        "keras", "tensorflow", "numpy", "torch", "jax"):
                    uses.add(q)
        if train_mode:
            out["train_mode"] = True
        if uses:
            out["uses"] = sorted(uses)
        return out

    def run(self) -> dict:
        body = self.tree.body
        self._collect_imports(body)
        for stmt in body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self.local_functions.add(stmt.name)
            elif isinstance(stmt, ast.ClassDef):
                self.local_classes.add(stmt.name)
        functions, classes = {}, {}
        for stmt in body:
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions[stmt.name] = self.function(stmt)
            elif isinstance(stmt, ast.ClassDef):
                classes[stmt.name] = self.classdef(stmt)
        # module-level code: what it maps (and seeds on import)
        top = ast.FunctionDef(name="<module>", args=ast.arguments([], [], None, [], [], None, []),
                              body=[s for s in body], decorator_list=[], returns=None, type_params=[])
        mod = self.function(top)
        out = {"imports": self.imports, "functions": functions, "classes": classes}
        if mod.get("maps"):
            out["maps"] = mod["maps"]
        if mod.get("seeds"):
            out["seeds_on_import"] = mod["seeds"]
        return out


def summarize(text: str) -> Optional[dict]:
    """The raw summary of a module's text, or None when it does not parse."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    return summarize_tree(tree)


def summarize_tree(tree: ast.Module) -> Optional[dict]:
    try:
        return _Summarizer(tree).run()
    except RecursionError:
        return None


def summarize_for_check(path: str, data: Optional[bytes]) -> tuple:
    """(raw summary, CPython's verdict on the text the engine will check) of one module,
    from ONE parse: the ``ast`` tree of the syntax pre-check that keeps libcst's native
    parser from crashing is also what the summary is made from, so a module that is both
    summarized and checked is parsed once by CPython and once by libcst, like any other
    checked file. The verdict is None when the file cannot be read or decoded (the engine
    then judges it itself)."""
    from keraslint import engine

    try:
        if data is None:
            if os.path.getsize(path) > MAX_MODULE_BYTES:
                return None, None
            with open(path, "rb") as fh:
                data = fh.read()
    except OSError:
        return None, None
    src = engine.read_source(path, data=data)
    if not isinstance(src, engine.Source):
        return None, None
    try:
        tree, error = engine.cpython_tree(src.text), None
    except engine.ParseError as e:  # nesting libcst must not see
        return None, engine.Verdict(e, fatal=True)
    if isinstance(tree, engine.ParseError):
        tree, error = None, tree
    summ = summarize_tree(tree) if tree is not None and len(data) <= MAX_MODULE_BYTES else None
    return summ, engine.Verdict(error)


# ---------------------------------------------------------------------------
# Finding the project's modules
# ---------------------------------------------------------------------------

_IMPORT_LINE = re.compile(
    rb"[ \t]*(?:from[ \t]+(\.*[\w.]*)[ \t]+import[ \t]+(\([^)]*\)|[^\n#;]*)|import[ \t]+([^\n#;]+))")


def imported_names(data: bytes) -> list:
    """``(module, names)`` of every import statement in a module's bytes, found with a
    regular expression (no parse): ``from a.b import c, d`` → ``("a.b", ["c", "d"])``,
    ``import a.b as x`` → ``("a.b", [])``. Imports inside strings may be listed too: they
    only make the resolver look for a file."""
    out = []
    # only lines holding the word: find it, then match from the start of its line (a
    # regular expression over every line costs ten times more)
    pos = data.find(b"import")
    while pos != -1:
        start = data.rfind(b"\n", 0, pos) + 1
        m = _IMPORT_LINE.match(data, start)
        if m is None or m.end() <= pos:
            pos = data.find(b"import", pos + 6)
            continue
        pos = data.find(b"import", m.end())
        if m.group(1) is not None:
            names = m.group(2).decode("utf-8", "replace").strip().strip("()").replace("\\", " ")
            out.append((m.group(1).decode("utf-8", "replace"),
                        [n.split()[0] for n in names.replace("\n", " ").split(",") if n.split()]))
        else:
            for part in m.group(3).decode("utf-8", "replace").split(","):
                w = part.split()
                if w:
                    out.append((w[0], []))
    return out


class Layout:
    """Where the project's modules are: ``module name -> file`` through the roots."""

    def __init__(self, roots: Iterable[str]) -> None:
        self.roots: list = []
        for r in roots:
            r = os.path.abspath(r)
            if r not in self.roots and os.path.isdir(r):
                self.roots.append(r)
        self._found: dict = {}
        self._resolved: dict = {}  # (module, roots) -> file | None
        # With ``record``: the modification time of every folder whose listing an answer
        # depended on (taken before the probe), so that a later run can tell that no
        # file or folder was added, removed or renamed there (see Project's index).
        self.record = False
        self.stamps: dict = {}  # folder -> st_mtime_ns | None (missing)
        self._missing: set = set()
        self.unsafe = False  # a racy stamp or a symbolic link: the answers are not kept

    def _stamp(self, d: str) -> None:
        if d in self.stamps or d in self._missing:
            return
        try:
            m = os.stat(d).st_mtime_ns
        except OSError:
            # a missing folder: the listing of its first existing ancestor decides whether
            # it appears (one stamp for many probes)
            self._missing.add(d)
            parent = os.path.dirname(d)
            if parent != d:
                self._stamp(parent)
            else:
                self.stamps[d] = None
            return
        # a folder changed in the last two seconds may change again within the same
        # timestamp tick (coarse clocks, FAT): not a trustworthy stamp
        if m is not None and m > time.time_ns() - 2_000_000_000:
            self.unsafe = True
        self.stamps[d] = m

    def isfile(self, p: str) -> bool:
        if self.record:
            self._stamp(os.path.dirname(p))
            if os.path.islink(p):
                self.unsafe = True  # its target may change without its folder changing
        return os.path.isfile(p)

    def isdir(self, p: str) -> bool:
        if self.record:
            self._stamp(os.path.dirname(p))
            if os.path.islink(p):
                self.unsafe = True
        return os.path.isdir(p)

    @staticmethod
    def roots_for(path: str, project_root: Optional[str], isfile: Any = os.path.isfile) -> list:
        """The folder of the file, the folder holding its top package (the first folder up
        without ``__init__.py``), the project root and its ``src/``."""
        d = os.path.dirname(os.path.abspath(path))
        out = [d]
        up = d
        while isfile(os.path.join(up, "__init__.py")):
            parent = os.path.dirname(up)
            if parent == up:
                break
            up = parent
        out.append(up)
        if project_root:
            out += [project_root, os.path.join(project_root, "src")]
        return out

    def module_file(self, name: str, roots: Iterable[str]) -> Optional[str]:
        key = (name, roots if isinstance(roots, tuple) else tuple(roots))
        hit = self._resolved.get(key, False)
        if hit is False:
            hit = self._resolved[key] = self._module_file(name, key[1])
        return hit

    def _module_file(self, name: str, roots: tuple) -> Optional[str]:
        if not name or not all(p.isidentifier() for p in name.split(".")):
            return None
        rel = name.replace(".", os.sep)
        for root in roots:
            key = (root, name)
            hit = self._found.get(key, False)
            if hit is False:
                hit = None
                for cand in (os.path.join(root, rel + ".py"), os.path.join(root, rel, "__init__.py")):
                    if self.isfile(cand):
                        hit = os.path.abspath(cand)
                        break
                self._found[key] = hit
            if hit:
                return hit
        return None

    @staticmethod
    def _relative(module: str, importer: str) -> tuple:
        """(folder, rest) of a relative import ``..pkg.mod`` made by the file ``importer``."""
        level = len(module) - len(module.lstrip("."))
        base = os.path.dirname(os.path.abspath(importer))
        for _ in range(level - 1):
            base = os.path.dirname(base)
        return base, module[level:]

    def package_dir(self, module: str, importer: str, roots: list) -> bool:
        """Is ``module`` a folder without ``__init__.py`` (a namespace package) here?"""
        if module.startswith("."):
            base, rest = self._relative(module, importer)
            return not rest or self.isdir(os.path.join(base, rest.replace(".", os.sep)))
        if not module or not all(p.isidentifier() for p in module.split(".")):
            return False
        rel = module.replace(".", os.sep)
        key = ("dir", tuple(roots), module)
        hit = self._found.get(key)
        if hit is None:
            hit = self._found[key] = any(self.isdir(os.path.join(r, rel)) for r in roots)
        return hit

    def resolve(self, module: str, importer: str, roots: list) -> Optional[str]:
        """The file of ``module`` (absolute, or relative with leading dots) imported by the
        file ``importer``."""
        if module.startswith("."):
            base, rest = self._relative(module, importer)
            if not rest:
                init = os.path.join(base, "__init__.py")
                return init if self.isfile(init) else None
            return self.module_file(rest, [base])
        return self.module_file(module, roots)


# ---------------------------------------------------------------------------
# Resolved summaries
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FunctionSummary:
    qualname: str  # as the asking file spells it, e.g. "utils.seed_everything"
    seeds: bool = False  # calls a seed API, directly or through another summarized function
    seed_apis: tuple = ()  # the seed APIs reached (canonical names)
    returns: Optional[str] = None  # "model" | "dataset" | None
    dataset_steps: tuple = ()  # the returned pipeline's steps, source first
    mapped: bool = False  # given to Dataset.map/filter/flat_map/interleave in a summarized module
    path: str = ""  # the module's file


@dataclass(frozen=True)
class ClassSummary:
    qualname: str
    bases: tuple  # canonical names of the bases (project classes resolved to their own names)
    kind: Optional[str]  # "model" | "layer" | "loss" | "metric" | ... | "torch" | None
    train_mode: bool = False  # a torch module that builds dropout / batch norm
    path: str = ""


class ProjectView:
    """What one checked file can ask about the project modules it imports (``ctx.project``).
    Built in the main process before the workers fork; the engine finds it with
    :func:`current`. The name table and the summaries are the run's, shared by every view;
    a view sees only the modules of its closure (the ones its cache key covers)."""

    def __init__(self, path: str, names: dict, store: "SummaryStore", closure: Iterable[str],
                 content_hash: Any = None, direct: Iterable[str] = (), digests: Optional[dict] = None) -> None:
        self.path = path
        self.names = names  # (importing file, module spelling) -> file
        self.closure = frozenset(closure)
        self.direct = frozenset(direct)  # the files the checked file imports itself
        self.modules = _Lazy(store, self.closure)  # file -> raw summary, summarized when first asked
        self._content_hash = content_hash  # file -> hash of its bytes
        self._digests = digests if digests is not None else {}  # closure -> digest, shared in a run
        self._digest: Optional[str] = None
        self._fn: dict = {}
        self._cls: dict = {}

    def digest(self) -> str:
        """Hash of the contents of the modules this view covers: part of the checked file's
        cache key (content, not summaries: a warm run reads no summary at all)."""
        if self._digest is None:
            # a multiset hash: the sum of the files' (path, content) hashes, in any order;
            # files importing the same modules share it
            memo = self._digests
            d = memo.get(self.closure)
            if d is None:
                total = sum(map(self._content_hash, self.closure)) % (1 << 256)
                d = memo[self.closure] = f"{SUMMARY_VERSION}-{len(self.closure)}-{total:064x}"
            self._digest = d
        return self._digest

    # -- lookups ----------------------------------------------------------------------
    def _split(self, qualname: str, importer: Optional[str] = None) -> Optional[tuple]:
        """(file, name) for ``pkg.mod.name`` as spelled in ``importer`` (default: the
        checked file)."""
        if not qualname:
            return None
        importer = importer or self.path
        if qualname.startswith("local:"):
            return (importer, qualname[6:]) if importer in self.modules else None
        mod, _, name = qualname.rpartition(".")
        while mod and mod.strip("."):
            f = self.names.get((importer, mod))
            if f is not None and f in self.modules:
                return f, name
            mod, _, rest = mod.rpartition(".")
            name = f"{rest}.{name}"
        return None

    def _reexport(self, f: str, name: str, seen: set) -> Optional[tuple]:
        """``from .core import Net`` in a package ``__init__``: follow the name there."""
        if (f, name) in seen or len(seen) > 20:
            return None
        seen.add((f, name))
        summ = self.modules.get(f)
        if summ is None:
            return None
        if name in summ["functions"] or name in summ["classes"]:
            return f, name
        target = summ["imports"].get(name)
        if target:
            hit = self._split(target, f)
            if hit:
                return self._reexport(hit[0], hit[1], seen)
        return None

    def _locate(self, qualname: str, importer: Optional[str] = None) -> Optional[tuple]:
        hit = self._split(qualname, importer)
        return self._reexport(hit[0], hit[1], set()) if hit else None

    def function(self, qualname: Optional[str]) -> Optional[FunctionSummary]:
        """The summary of a project function named as the checked file resolves it
        (``ctx.resolve(call.func)``: ``"utils.seed_everything"``, ``".data.make_ds"``), or
        None (not a project function)."""
        if not qualname:
            return None
        if qualname in self._fn:
            return self._fn[qualname]
        loc = self._locate(qualname)
        out = None
        if loc is not None and loc[1] in self.modules[loc[0]]["functions"]:
            apis, _ = self._seeds(loc, set())
            ret, steps = self._returns(loc, set())
            out = FunctionSummary(qualname, bool(apis), tuple(sorted(apis)), ret, tuple(steps),
                                  self._mapped(loc), loc[0])
        self._fn[qualname] = out
        return out

    def keras_class(self, qualname: Optional[str]) -> Optional[str]:
        """The Keras kind of a project class (``"model"``, ``"layer"``, ``"loss"``, ...), or
        None (not a Keras class of the project)."""
        c = self.klass(qualname)
        return c.kind if c is not None and c.kind != "torch" else None

    def klass(self, qualname: Optional[str]) -> Optional[ClassSummary]:
        if not qualname:
            return None
        key = "class:" + qualname
        if key in self._cls:
            return self._cls[key]
        loc = self._locate(qualname)
        out = None
        if loc is not None and loc[1] in self.modules[loc[0]]["classes"]:
            kind, bases = self._class_kind(loc, set())
            out = ClassSummary(qualname, tuple(bases), kind, self._train_mode(loc, set()), loc[0])
        self._cls[key] = out
        return out

    # -- resolution ---------------------------------------------------------------------
    def _seeds(self, loc: tuple, seen: set) -> tuple:
        if loc in seen or len(seen) > 200:
            return set(), False
        seen.add(loc)
        fn = self.modules[loc[0]]["functions"].get(loc[1], {})
        apis = set(fn.get("seeds", ()))
        for call in fn.get("calls", ()):
            sub = self._locate(call, loc[0])
            if sub is not None and sub[1] in self.modules[sub[0]]["functions"]:
                apis |= self._seeds(sub, seen)[0]
        return apis, True

    def _returns(self, loc: tuple, seen: set) -> tuple:
        if loc in seen or len(seen) > 50:
            return None, ()
        seen.add(loc)
        fn = self.modules[loc[0]]["functions"].get(loc[1], {})
        kinds = []
        for r in fn.get("returns", ()):
            kinds.append(self._value(r, loc[0], seen))
        kinds = [k for k in kinds if k[0] is not None]
        if not kinds:
            return None, ()
        first = kinds[0]
        if all(k[0] == first[0] for k in kinds):
            return first
        return None, ()

    def _value(self, v: list, importer: str, seen: set) -> tuple:
        if v[0] == "model":
            return "model", ()
        if v[0] == "dataset":
            return "dataset", tuple(v[1])
        if v[0] == "call":
            sub = self._locate(v[1], importer)
            if sub is None:
                return None, ()
            summ = self.modules[sub[0]]
            if sub[1] in summ["classes"]:
                kind, _ = self._class_kind(sub, set())
                return ("model", ()) if kind == "model" else (None, ())
            kind, steps = self._returns(sub, set(seen))
            if kind == "dataset":
                return "dataset", tuple(steps) + tuple(v[2])
            if kind == "model" and not v[2]:
                return "model", ()
        return None, ()

    def _class_kind(self, loc: tuple, seen: set) -> tuple:
        if loc in seen or len(seen) > 50:
            return None, []
        seen.add(loc)
        from keraslint.semantics import base_kind

        cls = self.modules[loc[0]]["classes"].get(loc[1], {})
        bases = []
        kind = None
        for b in cls.get("bases", ()):
            sub = self._locate(b, loc[0])
            if sub is not None and sub[1] in self.modules[sub[0]]["classes"]:
                k, _ = self._class_kind(sub, seen)
                bases.append(f"{sub[0]}:{sub[1]}")
            else:
                bases.append(b)
                if b in MODEL_BASES:
                    k = "model"
                elif b == "torch.nn.Module" or b.startswith("torch.nn.") and b.rsplit(".", 1)[-1][:1].isupper():
                    k = "torch"
                else:
                    k = base_kind(b) if not b.startswith(".") else None
            if kind is None or (kind == "layer" and k == "model"):
                kind = k or kind
        return kind, bases

    def _train_mode(self, loc: tuple, seen: set) -> bool:
        if loc in seen or len(seen) > 50:
            return False
        seen.add(loc)
        cls = self.modules[loc[0]]["classes"].get(loc[1], {})
        if cls.get("train_mode"):
            return True
        for u in cls.get("uses", ()):
            sub = self._locate(u, loc[0])
            if sub is not None and sub[1] in self.modules[sub[0]]["classes"] and self._train_mode(sub, seen):
                return True
        for b in cls.get("bases", ()):
            sub = self._locate(b, loc[0])
            if sub is not None and sub[1] in self.modules[sub[0]]["classes"] and self._train_mode(sub, seen):
                return True
        return False

    def _mapped(self, loc: tuple) -> bool:
        # where a function is given to Dataset.map: its own module, or a module the checked
        # file imports itself (not the whole closure: that would summarize every module)
        for f in {loc[0]} | self.direct:
            summ = self.modules.get(f)
            if summ is None:
                continue
            entries = list(summ.get("maps", ()))
            for fn in summ["functions"].values():
                entries += fn.get("maps", ())
            for target, _recv in entries:
                if self._locate(target, f) == loc:
                    return True
        return False


class _Lazy:
    """The summaries of a view's modules, made (or read from the cache) when first asked."""

    __slots__ = ("store", "keys")

    def __init__(self, store: "SummaryStore", keys: frozenset) -> None:
        self.store, self.keys = store, keys

    def __contains__(self, k) -> bool:
        return k in self.keys and self.store.for_file(k) is not None

    def __getitem__(self, k):
        if k not in self:
            raise KeyError(k)
        return self.store.for_file(k)

    def get(self, k, default=None):
        return self.store.for_file(k) if k in self else default


# ---------------------------------------------------------------------------
# Building views for a run (main process)
# ---------------------------------------------------------------------------


MISSING = object()  # SummaryStore.for_file(make=False): not summarized yet


class SummaryStore:
    """Raw summaries by content hash: in memory for the run, on disk in the cache folder
    (``<cache>/summaries/``) when there is one. Each module is read and parsed at most once
    per run."""

    def __init__(self, directory: Optional[str]) -> None:
        self.dir = os.path.join(directory, "summaries") if directory else None
        self.mem: dict = {}  # content hash -> summary | None
        self.by_file: dict = {}  # file -> summary | None
        self.parsed = 0

    def for_file(self, path: str, data: Optional[bytes] = None, make: bool = True) -> Any:
        """The raw summary of ``path`` (None: not summarized), from memory, the disk cache
        or (``make``) a parse; with ``make=False`` and nothing cached: ``MISSING``."""
        if path in self.by_file:
            return self.by_file[path]
        try:
            if data is None:
                if os.path.getsize(path) > MAX_MODULE_BYTES:
                    self.by_file[path] = None
                    return None
                with open(path, "rb") as fh:
                    data = fh.read()
        except OSError:
            self.by_file[path] = None
            return None
        if len(data) > MAX_MODULE_BYTES:
            self.by_file[path] = None
            return None
        key = self.key_of(data)
        summ = self.mem.get(key, False)
        if summ is False:
            summ = self._load(key)
            if summ is False:
                if not make:
                    return MISSING
                try:
                    text = data.decode("utf-8-sig")
                except UnicodeDecodeError:
                    text = None
                summ = summarize(text) if text is not None else None
                self.parsed += 1
                self._save(key, summ)
            self.mem[key] = summ
        self.by_file[path] = summ
        return summ

    @staticmethod
    def key_of(data: bytes) -> str:
        return hashlib.sha256(SUMMARY_VERSION.encode() + b"\0" + data).hexdigest()

    def known(self, path: str, data: Optional[bytes] = None) -> bool:
        """Whether ``path``'s summary is at hand without parsing it (memory or disk cache)."""
        return self.for_file(path, data, make=False) is not MISSING

    def put(self, path: str, data: bytes, summ: Optional[dict]) -> None:
        """A summary made elsewhere (the runner's pre-check workers) from ``data``."""
        key = self.key_of(data)
        self.mem[key] = summ
        self.by_file[path] = summ
        self.parsed += 1
        self._save(key, summ)

    def _file(self, key: str) -> str:
        return os.path.join(self.dir, key[:2], key + ".json")

    def _load(self, key: str):
        if not self.dir:
            return False
        try:
            with open(self._file(key), encoding="utf-8") as fh:
                return json.load(fh)
        except (OSError, ValueError):
            return False

    def _save(self, key: str, summ) -> None:
        if not self.dir:
            return
        path = self._file(key)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            _atomic_write(path, json.dumps(summ, separators=(",", ":")).encode("utf-8"))
        except OSError:
            pass


INDEX_VERSION = "1"


def _atomic_write(path: str, data: bytes) -> None:
    from keraslint.runner import _atomic_write as write  # the cache's one atomic writer

    write(path, data)


class Project:
    """The project of one run: its layout and summaries; ``view(path, data)`` gives the
    :class:`ProjectView` of a checked file (None when it imports no project module).

    With a cache folder, the run's import resolution is kept in an **index**
    (``<cache>/project-index-*.marshal``): per module, the hash of its bytes and the project
    modules it imports; per checked file, its closure and view digest; and the modification
    time of every folder whose listing a resolution looked at. A later run whose folders
    all have the same times (no file added, removed or renamed where it matters) takes a
    module's imports from the index when its bytes hash the same, and a checked file's
    digest when its closure's bytes all hash the same (:meth:`quick_digest`): a warm run
    resolves no import at all. Any other change recomputes, with the same functions."""

    def __init__(self, project_root: Optional[str], cache_dir: Optional[str] = None) -> None:
        self.project_root = os.path.abspath(project_root) if project_root else None
        self.layout = Layout([])
        self.store = SummaryStore(cache_dir)
        self._index_file: Optional[str] = None
        # the index read from the cache, when every folder stamp still holds
        self._ix_paths: list = []
        self._ix_hashlist: list = []
        self._ix_direct: dict = {}
        self._ix_views: dict = {}
        self._ix_stamps: dict = {}
        self._bad: Optional[set] = None  # numbers of indexed files whose bytes changed
        self._unknown: set = set()  # numbers of indexed files not hashed yet in this run
        self._from_index: set = set()  # files whose imports came from the index
        self._fresh: dict = {}  # file -> view computed in this run (None | ProjectView)
        if cache_dir:
            self.layout.record = True
            tag = hashlib.sha256(f"{INDEX_VERSION}\0{SUMMARY_VERSION}\0{MAX_DEPTH}\0{self.project_root}".encode())
            self._index_file = os.path.join(cache_dir, f"project-index-{tag.hexdigest()[:20]}.marshal")
            self._load_index()
        self._imports: dict = {}  # file -> [(module spelling, file)]
        self._roots: dict = {}
        self.names: dict = {}  # (importing file, module spelling) -> file, shared by the views
        self._hashes: dict = {}  # file -> sha256 of its bytes
        self._named: set = set()  # files whose import spellings are in ``names``
        self._tokens: dict = {}  # file -> int hash of (path, bytes)
        self._digests: dict = {}  # closure -> digest
        self._reached: dict = {}  # (file, depth) -> frozenset of files

    def _roots_of(self, path: str) -> list:
        d = os.path.dirname(os.path.abspath(path))
        r = self._roots.get(d)
        if r is None:
            lay = self.layout
            raw = Layout.roots_for(path, self.project_root, lay.isfile)
            # the file's folder and its package's are its ancestors, the project root is
            # the folder of the config: their existence is no folder listing to watch (a
            # stamp of their parents would go stale with every file written beside them)
            sure = raw[:3]
            r = [x for x in raw if (os.path.isdir(x) if x in sure else lay.isdir(x))]
            r = tuple(dict.fromkeys(os.path.abspath(x) for x in r))
            self._roots[d] = r
        return r

    def _direct(self, path: str, data: Optional[bytes] = None) -> list:
        """[(module spelling, file)] of the project modules ``path`` imports."""
        path = os.path.abspath(path)
        hit = self._imports.get(path)
        if hit is not None:
            return hit
        if data is None:
            try:
                with open(path, "rb") as fh:
                    data = fh.read()
            except OSError:
                data = b""
        if path not in self._hashes:
            self._hashes[path] = hashlib.sha256(data).hexdigest()
        if self._ix_direct:
            hit = self._indexed_direct(path, self._hashes[path])
            if hit is not None:
                self._imports[path] = hit
                return hit
        roots = self._roots_of(path)
        out = []
        me = os.path.abspath(path)
        for module, names in imported_names(data):
            f = self.layout.resolve(module, path, roots)
            if f is not None and f != path:
                out.append((module, f))
            if f is not None and not f.endswith("__init__.py"):
                continue  # names imported from a module file are its attributes
            if f is None and not self.layout.package_dir(module, path, roots):
                continue  # not a project package (numpy, keras...): no submodule either
            for n in names:
                if n == "*":
                    continue
                sub = module + ("" if module.endswith(".") else ".") + n
                g = self.layout.resolve(sub, path, roots)
                if g is not None and g != path:
                    out.append((sub, g))
                    if not module.strip("."):
                        # keraslint.semantics spells ``from . import x`` as "..x"
                        out.append((module + "." + n, g))
        self._imports[path] = out
        return out

    def view(self, path: str, data: Optional[bytes] = None) -> Optional[ProjectView]:
        """The view of a checked file: the project modules it imports, and theirs, up to
        ``MAX_DEPTH`` imports away (a seed helper calling a helper of a third module is
        followed; a whole package's import graph is not)."""
        if not path.endswith(".py"):
            return None
        me = os.path.abspath(path)
        first = self._direct(path, data)
        if not first:
            self._fresh[me] = None
            return None
        closure = set()
        for _spelling, f in first:
            if f != me:
                closure.add(f)
                closure |= self._reach(f, MAX_DEPTH - 1)
        closure.discard(me)
        if not closure:
            self._fresh[me] = None
            return None
        self._edges(me, first)
        v = ProjectView(me, self.names, self.store, frozenset(closure), self.content_hash,
                        {f for _, f in first}, self._digests)
        self._fresh[me] = v
        return v

    # -- the index (warm runs) ------------------------------------------------------------
    # On disk (marshal, read in a few milliseconds): ``paths`` (append-only; files are
    # numbered by their place there), ``hashes`` (sha256 hex of each path's bytes, or None),
    # ``direct`` {path: (sha, marshal blob of [(spelling, file)])}, ``views`` {path: (sha,
    # None | (closure as packed uint32 numbers, digest))}, ``stamps`` {folder: mtime_ns}.

    def known_hash(self, path: str, sha_hex: str) -> None:
        """The sha256 of a checked file's bytes, read by the runner (saves a second read)."""
        self._hashes.setdefault(os.path.abspath(path), sha_hex)

    def _prepare(self) -> None:
        """Which indexed files hash differently now (``_bad``) or are not known yet."""
        bad, unknown = set(), set()
        known = self._hashes
        for i, (p, h) in enumerate(zip(self._ix_paths, self._ix_hashlist)):
            cur = known.get(p)
            if cur is None:
                unknown.add(i)
            elif cur != h:
                bad.add(i)
        self._bad, self._unknown = bad, unknown

    def quick_digest(self, path: str) -> Optional[str]:
        """The digest of ``path``'s view from the index ("" for no view), when the file and
        every module of its closure hash as they did; None when it must be computed."""
        if not self._ix_views or not path.endswith(".py"):
            return None
        me = os.path.abspath(path)
        ent = self._ix_views.get(me)
        if ent is None or ent[0] != self._bytes_hash(me):
            return None
        if ent[1] is None:
            return ""
        if self._bad is None:
            self._prepare()
        blob, digest = ent[1]
        if self._bad or self._unknown:
            from array import array

            idx = array("I")
            idx.frombytes(blob)
            unknown = self._unknown
            if unknown and not unknown.isdisjoint(idx):
                for i in idx:
                    if i in unknown:
                        unknown.discard(i)
                        if self._bytes_hash(self._ix_paths[i]) != self._ix_hashlist[i]:
                            self._bad.add(i)
            if self._bad and not self._bad.isdisjoint(idx):
                return None
        return digest

    def _load_index(self) -> None:
        import marshal

        try:
            with open(self._index_file, "rb") as fh:
                ix = marshal.load(fh)
            if not isinstance(ix, dict) or ix.get("version") != INDEX_VERSION:
                return
            stamps, paths, hashes, direct, views = ix["stamps"], ix["paths"], ix["hashes"], ix["direct"], ix["views"]
            if not (isinstance(stamps, dict) and isinstance(paths, list) and isinstance(hashes, list)
                    and len(paths) == len(hashes) and isinstance(direct, dict) and isinstance(views, dict)):
                return
        except Exception:  # noqa: BLE001 - missing, truncated, another Python: recompute
            return
        for d, m in stamps.items():
            try:
                now = os.stat(d).st_mtime_ns
            except OSError:
                now = None
            if now != m:
                return  # a file or folder was added, removed or renamed: resolve again
        self._ix_stamps, self._ix_paths, self._ix_hashlist = stamps, paths, hashes
        self._ix_direct, self._ix_views = direct, views

    def _indexed_direct(self, path: str, sha: str) -> Optional[list]:
        ent = self._ix_direct.get(path)
        if ent is None or ent[0] != sha:
            return None
        import marshal

        try:
            out = marshal.loads(ent[1])
        except Exception:  # noqa: BLE001
            return None
        self._from_index.add(path)
        return out

    def save_index(self) -> None:
        """Write the index back when this run resolved something new (and the folders it
        looked at are stable). Never fails the run."""
        if not self._index_file or self.layout.unsafe:
            return
        new_direct = {p: v for p, v in self._imports.items() if p not in self._from_index}
        pos = {p: i for i, p in enumerate(self._ix_paths)}
        if not new_direct and not self._fresh and all(
                p in pos and self._ix_hashlist[pos[p]] == h for p, h in self._hashes.items()):
            return  # nothing new: the index on disk is this run's
        try:
            import marshal
            from array import array

            paths, hashes = list(self._ix_paths), list(self._ix_hashlist)
            changed = set()
            for p, h in self._hashes.items():
                i = pos.get(p)
                if i is None:
                    pos[p] = len(paths)
                    paths.append(p)
                    hashes.append(h)
                elif hashes[i] != h:
                    changed.add(i)
                    hashes[i] = h
            changed_paths = {paths[i] for i in changed}
            direct = {p: e for p, e in self._ix_direct.items() if p not in changed_paths}
            for p, lst in new_direct.items():
                direct[p] = (self._hashes[p], marshal.dumps([tuple(x) for x in lst]))
            views = {}
            for p, e in self._ix_views.items():
                if p in changed_paths:
                    continue
                if e[1] is not None and changed:
                    idx = array("I")
                    idx.frombytes(e[1][0])
                    if not changed.isdisjoint(idx):
                        continue
                views[p] = e
            for p, v in self._fresh.items():
                if p not in self._hashes:
                    continue
                if v is None:
                    views[p] = (self._hashes[p], None)
                elif all(m in pos for m in v.closure):
                    blob = array("I", sorted(pos[m] for m in v.closure)).tobytes()
                    views[p] = (self._hashes[p], (blob, v.digest()))
            stamps = dict(self._ix_stamps)
            stamps.update(self.layout.stamps)
            payload = {"version": INDEX_VERSION, "stamps": stamps, "paths": paths, "hashes": hashes,
                       "direct": direct, "views": views}
            os.makedirs(os.path.dirname(self._index_file), exist_ok=True)
            _atomic_write(self._index_file, marshal.dumps(payload))
        except (OSError, ValueError):
            pass

    def _edges(self, src: str, direct: list) -> None:
        """Record how ``src`` spells the modules it imports (once per module)."""
        if src in self._named:
            return
        self._named.add(src)
        for spelling, f in direct:
            self.names[(src, spelling)] = f

    def _reach(self, f: str, depth: int) -> frozenset:
        """The project modules ``f`` imports, up to ``depth`` imports away (memoized)."""
        if depth <= 0:
            return frozenset()
        key = (f, depth)
        hit = self._reached.get(key)
        if hit is not None:
            return hit
        self._reached[key] = frozenset()  # an import cycle ends here
        direct = self._direct(f)
        self._edges(f, direct)
        out = set()
        for _spelling, g in direct:
            out.add(g)
            if depth > 1:
                out |= self._reach(g, depth - 1)
        out.discard(f)
        hit = self._reached[key] = frozenset(out)
        return hit

    def content_hash(self, path: str) -> int:
        """A 256-bit hash of the file's path and bytes."""
        h = self._tokens.get(path)
        if h is None:
            h = self._tokens[path] = int.from_bytes(
                hashlib.sha256(path.encode() + b"\0" + self._bytes_hash(path).encode()).digest(), "big")
        return h

    def _bytes_hash(self, path: str) -> str:
        h = self._hashes.get(path)
        if h is None:
            try:
                with open(path, "rb") as fh:
                    data = fh.read()
            except OSError:
                data = b""
            h = self._hashes[path] = hashlib.sha256(data).hexdigest()
        return h


def for_run(config: Any, cache_dir: Optional[str]) -> Project:
    root = getattr(config, "root", None) if config is not None else None
    return Project(root, cache_dir)


# The views of the current run, by the path the runner checks (set in the main process
# before the worker processes fork, so they inherit it).
_VIEWS: dict = {}


def set_views(views: dict) -> None:
    _VIEWS.clear()
    _VIEWS.update(views)


def current(path: str) -> Optional[ProjectView]:
    """The project view of ``path`` in this run, or None."""
    return _VIEWS.get(path) if _VIEWS else None
