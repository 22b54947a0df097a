"""``keraslint server``: a language server over stdio (pygls + lsprotocol, extra ``lsp``).

* **Diagnostics** on open, change and save, from the same engine and configuration as
  ``check`` (the ``pyproject.toml`` of the file's project, suppression comments,
  per-file-ignores, severities, ``strict``), with the code, the severity, the rule name and
  a link to the rule's documentation. Changes are debounced: the first change after a
  quiet spell is checked at once, a burst of changes once, ``DEBOUNCE`` s after its last.
  Analysis runs in one worker thread, so the server keeps reading messages.
* **Code actions**: each finding's fix as a quick fix (safe ones preferred, unsafe ones
  titled as changing numerics), ``source.fixAll.keraslint`` (every safe fix, as
  ``check --fix`` would write), and "ignore KLnnn on this line" (``noqa.py``).
* **Hover** on a flagged range: the rule's documentation (``keraslint explain``).
* **Notebooks** (LSP 3.17 notebook documents): the code cells are checked together as
  ``check`` checks an ``.ipynb`` (same magic handling), diagnostics are published per cell
  in cell coordinates; fixes and directives edit the cells.
* **Robust**: an unparsable buffer is one KL000 diagnostic; a buffer over ``MAX_BYTES``,
  an invalid configuration or a file deleted while open give one diagnostic or a log
  message; an exception while checking is logged, never fatal.

``check`` never imports this module (nor pygls/lsprotocol).
"""

from __future__ import annotations

import asyncio
import difflib
import gc
import json
import logging
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Optional

from lsprotocol import types as lsp
from pygls import uris
from pygls.lsp.server import LanguageServer

from keraslint import __version__

DOCS_URL = "https://github.com/keraslint/keraslint/blob/main/README.md#{code}"
SOURCE = "keraslint"
DEBOUNCE = 0.2  # seconds
MAX_BYTES = 1_000_000  # larger buffers are not checked in the editor (libcst needs ~1 GB)
FIX_ALL_KIND = "source.fixAll.keraslint"

log = logging.getLogger("keraslint.server")

_SEVERITY = {
    "error": lsp.DiagnosticSeverity.Error,
    "warning": lsp.DiagnosticSeverity.Warning,
    "info": lsp.DiagnosticSeverity.Information,
}


# ---------------------------------------------------------------------------
# Text helpers: UTF-16 positions, line-based edits
# ---------------------------------------------------------------------------


def _lines(text: str) -> list:
    """Physical lines with their endings (``\\n`` separated, as the engine counts)."""
    return re.findall(r"[^\n]*\n|[^\n]+$", text)


def _u16(line: str, col: int) -> int:
    """UTF-16 offset of code point column ``col`` (0-based) in ``line``."""
    head = line[:col]
    return len(head) + sum(1 for ch in head if ord(ch) > 0xFFFF)


def _cp(line: str, u16: int) -> int:
    """Code point column of UTF-16 offset ``u16`` in ``line``."""
    n = 0
    for i, ch in enumerate(line):
        if n >= u16:
            return i
        n += 2 if ord(ch) > 0xFFFF else 1
    return len(line)


def _position(lines: list, line0: int, col0: int) -> lsp.Position:
    text = lines[line0].rstrip("\r\n") if 0 <= line0 < len(lines) else ""
    return lsp.Position(line=max(line0, 0), character=_u16(text, max(col0, 0)))


def text_edits(old: str, new: str) -> list:
    """TextEdits (whole lines) turning ``old`` into ``new``."""
    a, b = _lines(old), _lines(new)
    edits = []
    sm = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == "equal":
            continue
        start = lsp.Position(line=i1, character=0)
        if i2 == len(a) and a and not a[-1].endswith("\n"):  # up to the end of a last line without newline
            end = lsp.Position(line=len(a) - 1, character=_u16(a[-1], len(a[-1])))
        else:
            end = lsp.Position(line=i2, character=0)
        edits.append(lsp.TextEdit(range=lsp.Range(start=start, end=end), new_text="".join(b[j1:j2])))
    return edits


# ---------------------------------------------------------------------------
# Checking a buffer
# ---------------------------------------------------------------------------


@dataclass
class CellRef:
    uri: str
    index: int  # 1-based number among all cells, as findings count them
    text: str


@dataclass
class Checked:
    """The result of checking one document (a text file or a whole notebook)."""

    uri: str
    version: Optional[int]
    path: str
    text: str  # the buffer (for a notebook: its JSON as built from the cells)
    findings: list = field(default_factory=list)
    # per target uri (the file, or each cell) -> [(lsp.Diagnostic, Finding)]
    diagnostics: dict = field(default_factory=dict)
    cells: Optional[list] = None  # [CellRef] for a notebook
    config: Any = None
    classes: list = field(default_factory=list)
    error: Optional[str] = None  # config error etc.


class _ConfigCache:
    def __init__(self) -> None:
        self._cache: dict = {}
        self._lock = threading.Lock()

    def load(self, path: str):
        from keraslint import config as cfgmod

        folder = os.path.dirname(os.path.abspath(path)) or "."
        pyproject = cfgmod.find_pyproject(folder)
        key: Any = None
        if pyproject is not None:
            try:
                st = os.stat(pyproject)
                key = (pyproject, st.st_mtime_ns, st.st_size)
            except OSError:
                key = None
        else:
            key = ("<none>", folder)
        with self._lock:
            if key is not None and key in self._cache:
                return self._cache[key]
        cfg = cfgmod.load(folder, explicit=pyproject) if pyproject else cfgmod.load(folder)
        with self._lock:
            if key is not None:
                self._cache[key] = cfg
        return cfg


CONFIGS = _ConfigCache()


def uri_to_path(uri: str) -> str:
    path = uris.to_fs_path(uri) if uri.startswith("file:") else None
    if path:
        return path
    # untitled:Untitled-1, vscode-notebook-cell:..., etc.
    name = re.sub(r"[^\w.-]+", "_", uri.rsplit("/", 1)[-1]) or "untitled"
    return os.path.join(os.getcwd(), name)


def _classes_for(cfg, path: str) -> list:
    from keraslint.registry import all_rules, rules_by_code

    classes = all_rules()
    codes = cfg.codes_for(cfg.enabled_codes([c.code for c in classes]))(path)
    by_code = rules_by_code()
    return [by_code[c] for c in codes if c in by_code]


def _read(path: str, text: str):
    from keraslint import engine

    return engine.read_source(path, data=text.encode("utf-8", "surrogatepass"))


def notebook_json(cells: list, metadata: Any = None) -> str:
    """An nbformat-4 JSON text of LSP notebook cells ``[(kind, text)]``."""
    meta = dict(metadata) if isinstance(metadata, dict) else {}
    out = []
    for kind, text in cells:
        if kind == "code":
            out.append({"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": text})
        else:
            out.append({"cell_type": "markdown", "metadata": {}, "source": text})
    return json.dumps({"cells": out, "metadata": meta, "nbformat": 4, "nbformat_minor": 5}, indent=1)


def check_document(uri: str, version: Optional[int], text: str, path: Optional[str] = None,
                   cells: Optional[list] = None) -> Checked:
    """Check a buffer. ``cells`` ([CellRef]) makes it a notebook whose JSON is ``text``."""
    from keraslint import config as cfgmod
    from keraslint import engine
    from keraslint.rule import Finding, syntax_finding

    path = path or uri_to_path(uri)
    res = Checked(uri, version, path, text, cells=cells)
    targets = [c.uri for c in cells] if cells is not None else [uri]
    for t in targets:
        res.diagnostics[t] = []
    try:
        cfg = CONFIGS.load(path)
    except cfgmod.ConfigError as e:
        res.error = f"invalid configuration: {e}"
        f = syntax_finding(path, 1, 1, f"keraslint is not checking this file: {res.error}", rule="invalid-config")
        _add(res, f, targets[0])
        return res
    res.config = cfg
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_BYTES:
        f = syntax_finding(path, 1, 1, f"the file is too large to check in the editor ({size:,} bytes > "
                                        f"{MAX_BYTES:,}); run `keraslint check` on it", rule="too-large")
        f.severity = "info"
        _add(res, f, targets[0])
        return res
    res.classes = _classes_for(cfg, path)
    src = _read(path, text)
    if isinstance(src, Finding):
        findings = [src]
    else:
        # As in the runner: no cyclic collection while libcst builds the tree (it would scan
        # the tree being built: the 50% outliers); the server collects when idle.
        enabled = gc.isenabled()
        gc.disable()
        try:
            analysis = engine.analyze(src, res.classes, cfg, severity=cfg.severity, keep_tree=False)
        finally:
            if enabled:
                gc.enable()
        findings = sorted(analysis.findings, key=Finding.sort_key)
    res.findings = findings
    by_cell = {c.index: c.uri for c in cells} if cells is not None else {}
    texts = {c.uri: c.text for c in cells} if cells is not None else {uri: text}
    split: dict = {}
    for f in findings:
        target = by_cell.get(f.cell, targets[0]) if cells is not None else uri
        if target not in split:
            split[target] = _lines(texts.get(target, ""))
        _add(res, f, target, split[target])
    return res


def _add(res: Checked, f, target: str, lines: Optional[list] = None) -> None:
    if lines is None:
        if res.cells is not None:
            lines = _lines(next((c.text for c in res.cells if c.uri == target), ""))
        else:
            lines = _lines(res.text)
    start = _position(lines, f.line - 1, f.column - 1)
    end = _position(lines, f.end_line - 1, f.end_column - 1)
    diag = lsp.Diagnostic(
        range=lsp.Range(start=start, end=end),
        message=f"{f.message} ({f.rule})" if f.code != "KL000" else f.message,
        severity=_SEVERITY.get(f.severity, lsp.DiagnosticSeverity.Warning),
        code=f.code,
        code_description=lsp.CodeDescription(href=DOCS_URL.format(code=f.code)),
        source=SOURCE,
        data={"rule": f.rule, "fix": f.fix, "line": f.line, "column": f.column, "end_line": f.end_line,
              "end_column": f.end_column, "cell": f.cell},
    )
    res.diagnostics.setdefault(target, []).append((diag, f))


# ---------------------------------------------------------------------------
# Edits: one fix, all safe fixes, an ignore directive
# ---------------------------------------------------------------------------


def _cell_sources(raw: bytes) -> dict:
    from keraslint import notebook as nbmod

    nb = nbmod.load(raw.decode("utf-8-sig"))
    return {c.index + 1: c.source for c in nb.cells}


def _workspace_edit(checked: Checked, new_raw: Optional[bytes] = None, new_text: Optional[str] = None):
    """A WorkspaceEdit from the new file bytes (or text of a plain file)."""
    if checked.cells is None:
        if new_text is None:
            if new_raw is None:
                return None
            new_text = new_raw.decode("utf-8", "surrogatepass")
        edits = text_edits(checked.text, new_text)
        return lsp.WorkspaceEdit(changes={checked.uri: edits}) if edits else None
    if new_raw is None:
        return None
    new_cells = _cell_sources(new_raw)
    changes = {}
    for c in checked.cells:
        if c.index in new_cells and new_cells[c.index] != c.text:
            edits = text_edits(c.text, new_cells[c.index])
            if edits:
                changes[c.uri] = edits
    return lsp.WorkspaceEdit(changes=changes) if changes else None


def fix_one(checked: Checked, finding) -> Optional[lsp.WorkspaceEdit]:
    """The edit applying the fix of ``finding`` alone."""
    from keraslint import engine, fixer

    src = _read(checked.path, checked.text)
    if not isinstance(src, engine.Source):
        return None
    cls = next((c for c in checked.classes if c.code == finding.code), None)
    if cls is None:
        return None
    cfg = checked.config
    analysis = engine.analyze(src, checked.classes, cfg, severity=cfg.severity if cfg else None, keep_tree=True)
    if analysis.module is None:
        return None
    reps = [r for r in analysis.reports if r.rule is cls and r.fix is not None]
    if not reps:
        return None
    pos = engine.positions(analysis.module, [r.node for r in reps])
    nb = src.notebook
    rep = None
    for r in reps:
        rng = pos.get(r.node)
        if rng is None:
            continue
        line = rng.start.line
        cell = None
        if nb is not None:
            cell, line = nb.locate(line)
        if (line, rng.start.column + 1, cell) == (finding.line, finding.column, finding.cell):
            rep = r
            break
    if rep is None:
        return None
    compiled_ok = fixer._compiles(analysis.source.text, nb is not None)
    out = fixer._fix_round(src, analysis, [rep], compiled_ok, [])
    if out is None:
        return None
    new_src, _used = out
    if nb is None:
        return _workspace_edit(checked, new_text=new_src.text)
    return _workspace_edit(checked, new_raw=new_src.raw)


def fix_all(checked: Checked) -> Optional[lsp.WorkspaceEdit]:
    from keraslint import engine, fixer

    src = _read(checked.path, checked.text)
    if not isinstance(src, engine.Source) or not checked.classes:
        return None
    cfg = checked.config
    res = fixer.fix_source(src, checked.classes, cfg, unsafe=False, severity=cfg.severity if cfg else None)
    if res.new_bytes is None:
        return None
    if src.notebook is None:
        data = res.new_bytes[3:] if res.new_bytes.startswith(b"\xef\xbb\xbf") else res.new_bytes
        return _workspace_edit(checked, new_text=data.decode(src.encoding))
    return _workspace_edit(checked, new_raw=res.new_bytes)


def ignore_edit(checked: Checked, finding) -> Optional[lsp.WorkspaceEdit]:
    from keraslint import engine, noqa

    if checked.cells is None:
        out = noqa.add_to_text(checked.text, [(finding.line, finding.end_line, finding.code)])
        if out is None or not out[1]:
            return None
        return _workspace_edit(checked, new_text=out[0])
    src = _read(checked.path, checked.text)
    if not isinstance(src, engine.Source) or src.notebook is None:
        return None
    nb = src.notebook
    cell = next((c for c in nb.cells if c.index + 1 == finding.cell), None)
    if cell is None:
        return None
    forbidden = frozenset(c.start + i for c in nb.cells for i in c.magic_lines)
    sl, el = cell.start + finding.line - 1, cell.start + finding.end_line - 1
    out = noqa.add_to_text(src.text, [(sl, el, finding.code)], forbidden, {sl: cell.start + max(cell.nlines, 1) - 1})
    if out is None or not out[1]:
        return None
    from keraslint import fixer

    raw = fixer._notebook_bytes(src, src.text, out[0])
    return _workspace_edit(checked, new_raw=raw) if raw is not None else None


# ---------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------


class KerasLintServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__(
            "keraslint", __version__,
            text_document_sync_kind=lsp.TextDocumentSyncKind.Incremental,
            notebook_document_sync=lsp.NotebookDocumentSyncOptions(
                notebook_selector=[lsp.NotebookDocumentFilterWithCells(
                    notebook="*", cells=[lsp.NotebookCellLanguage(language="python")])],
                save=True,
            ),
        )
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="keraslint-check")
        self.results: dict = {}  # document uri (file or notebook) -> Checked
        self.pending: dict = {}  # uri -> asyncio.TimerHandle / Task
        self.last_change: dict = {}  # uri -> monotonic time of the last change
        self.busy: set = set()  # uris being checked right now
        self.checks = 0

    # -- logging ---------------------------------------------------------------
    def log(self, message: str, kind: lsp.MessageType = lsp.MessageType.Log) -> None:
        try:
            self.window_log_message(lsp.LogMessageParams(type=kind, message=f"keraslint: {message}"))
        except Exception:  # noqa: BLE001 - no client to tell
            log.warning(message)

    # -- documents -------------------------------------------------------------
    def snapshot(self, uri: str):
        """(check arguments) for a document or notebook uri, taken on the event loop."""
        nb = self.workspace.get_notebook_document(notebook_uri=uri)
        if nb is not None:
            cells, pairs = [], []
            for i, cell in enumerate(nb.cells, start=1):
                doc = self.workspace.text_documents.get(cell.document)
                text = doc.source if doc is not None else ""
                code = cell.kind == lsp.NotebookCellKind.Code
                pairs.append(("code" if code else "markdown", text))
                cells.append(CellRef(cell.document, i, text))
            meta = nb.metadata if isinstance(nb.metadata, dict) else None
            path = uri_to_path(uri)
            if not path.endswith(".ipynb"):
                path += ".ipynb"
            return dict(uri=uri, version=nb.version, text=notebook_json(pairs, meta), path=path, cells=cells)
        doc = self.workspace.text_documents.get(uri)
        if doc is None:
            return None
        path = uri_to_path(uri)
        if path.endswith(".ipynb"):
            return None  # a notebook opened as JSON text: not ours to lint as Python
        return dict(uri=uri, version=doc.version, text=doc.source, path=path)

    def schedule(self, uri: str, immediate: bool = False) -> None:
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        last = self.last_change.get(uri)
        self.last_change[uri] = now
        old = self.pending.pop(uri, None)
        if isinstance(old, asyncio.Task) and old.done():
            old = None
        burst = old is not None or uri in self.busy or (last is not None and now - last < DEBOUNCE)
        if old is not None and not isinstance(old, asyncio.Task):
            old.cancel()  # a debounce timer: replaced by a later one (a running check is left to finish)
        if immediate or not burst:
            self.pending[uri] = loop.create_task(self.run_check(uri))
        else:
            self.pending[uri] = loop.call_later(DEBOUNCE, lambda: self._fire(uri))

    def _fire(self, uri: str) -> None:
        self.pending[uri] = asyncio.get_running_loop().create_task(self.run_check(uri))

    async def run_check(self, uri: str) -> None:
        args = self.snapshot(uri)
        if args is None:
            return
        self.busy.add(uri)
        try:
            loop = asyncio.get_running_loop()
            checked = await loop.run_in_executor(self.executor, lambda: check_document(**args))
        except Exception as e:  # noqa: BLE001 - a bug in a rule must not kill the server
            self.log(f"internal error while checking {uri}: {type(e).__name__}: {e}", lsp.MessageType.Error)
            return
        finally:
            self.busy.discard(uri)
        current = self.snapshot(uri)
        if current is None or current["version"] != args["version"]:
            return  # the document changed meanwhile (a new check is scheduled) or was closed
        if checked.error:
            self.log(checked.error, lsp.MessageType.Error)
        previous = self.results.get(uri)
        self.results[uri] = checked
        self.publish(checked, previous)
        self.checks += 1
        if self.checks % 20 == 0:
            loop.run_in_executor(self.executor, gc.collect)  # after publishing: off the latency path

    def publish(self, checked: Checked, previous: Optional[Checked] = None) -> None:
        targets = dict(checked.diagnostics)
        if previous is not None:
            for t in previous.diagnostics:
                targets.setdefault(t, [])
        for target, items in targets.items():
            version = checked.version if checked.cells is None else None
            self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(
                uri=target, diagnostics=[d for d, _ in items], version=version))

    def clear(self, uri: str) -> None:
        old = self.pending.pop(uri, None)
        if old is not None:
            old.cancel()
        previous = self.results.pop(uri, None)
        self.last_change.pop(uri, None)
        if previous is not None:
            for t in previous.diagnostics:
                self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=t, diagnostics=[]))

    # -- lookups for code actions and hover ------------------------------------
    def owner(self, uri: str) -> Optional[str]:
        """The checked document (file or notebook uri) that a text document belongs to."""
        nb = self.workspace.get_notebook_document(cell_uri=uri)
        return nb.uri if nb is not None else uri

    async def fresh(self, uri: str) -> Optional[Checked]:
        """The result for the current version of ``uri`` (checking it now if needed)."""
        owner = self.owner(uri)
        args = self.snapshot(owner)
        if args is None:
            return None
        checked = self.results.get(owner)
        if checked is not None and checked.version == args["version"] and checked.text == args["text"]:
            return checked
        loop = asyncio.get_running_loop()
        checked = await loop.run_in_executor(self.executor, lambda: check_document(**args))
        return checked


server = KerasLintServer()


@server.feature(lsp.INITIALIZED)
async def _initialized(ls: KerasLintServer, params: lsp.InitializedParams) -> None:
    def warm() -> None:  # import the rules and libcst before the first real check
        try:
            check_document("untitled:warm-up.py", 0, "import keras\n", path=os.path.join(os.getcwd(), "warm-up.py"))
        except Exception:  # noqa: BLE001
            pass

    asyncio.get_running_loop().run_in_executor(ls.executor, warm)


@server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
def _did_open(ls: KerasLintServer, params: lsp.DidOpenTextDocumentParams) -> None:
    if params.text_document.language_id not in ("python", "", None) and not params.text_document.uri.endswith(".py"):
        return
    ls.schedule(params.text_document.uri, immediate=True)


@server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
def _did_change(ls: KerasLintServer, params: lsp.DidChangeTextDocumentParams) -> None:
    uri = params.text_document.uri
    if ls.workspace.get_notebook_document(cell_uri=uri) is not None:
        uri = ls.owner(uri)
    ls.schedule(uri)


@server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
def _did_save(ls: KerasLintServer, params: lsp.DidSaveTextDocumentParams) -> None:
    ls.schedule(ls.owner(params.text_document.uri), immediate=True)


@server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
def _did_close(ls: KerasLintServer, params: lsp.DidCloseTextDocumentParams) -> None:
    ls.clear(params.text_document.uri)


@server.feature(lsp.NOTEBOOK_DOCUMENT_DID_OPEN)
def _nb_open(ls: KerasLintServer, params: lsp.DidOpenNotebookDocumentParams) -> None:
    ls.schedule(params.notebook_document.uri, immediate=True)


@server.feature(lsp.NOTEBOOK_DOCUMENT_DID_CHANGE)
def _nb_change(ls: KerasLintServer, params: lsp.DidChangeNotebookDocumentParams) -> None:
    ls.schedule(params.notebook_document.uri)


@server.feature(lsp.NOTEBOOK_DOCUMENT_DID_SAVE)
def _nb_save(ls: KerasLintServer, params: lsp.DidSaveNotebookDocumentParams) -> None:
    ls.schedule(params.notebook_document.uri, immediate=True)


@server.feature(lsp.NOTEBOOK_DOCUMENT_DID_CLOSE)
def _nb_close(ls: KerasLintServer, params: lsp.DidCloseNotebookDocumentParams) -> None:
    ls.clear(params.notebook_document.uri)


def _in_range(pos: lsp.Position, rng: lsp.Range) -> bool:
    a = (rng.start.line, rng.start.character)
    b = (rng.end.line, rng.end.character)
    p = (pos.line, pos.character)
    return a <= p <= b


def _overlaps(r1: lsp.Range, r2: lsp.Range) -> bool:
    s1, e1 = (r1.start.line, r1.start.character), (r1.end.line, r1.end.character)
    s2, e2 = (r2.start.line, r2.start.character), (r2.end.line, r2.end.character)
    return s1 <= e2 and s2 <= e1


def _wanted(only: Optional[list], kind: str) -> bool:
    if not only:
        return True
    return any(kind == k or kind.startswith(k + ".") for k in only)


@server.feature(lsp.TEXT_DOCUMENT_CODE_ACTION, lsp.CodeActionOptions(
    code_action_kinds=[lsp.CodeActionKind.QuickFix, lsp.CodeActionKind.SourceFixAll, FIX_ALL_KIND],
    resolve_provider=False))
async def _code_action(ls: KerasLintServer, params: lsp.CodeActionParams):
    uri = params.text_document.uri
    try:
        checked = await ls.fresh(uri)
        if checked is None:
            return None
        only = [str(k.value if hasattr(k, "value") else k) for k in (params.context.only or [])]
        actions = []
        items = [(d, f) for d, f in checked.diagnostics.get(uri, []) if f.code != "KL000"
                 and _overlaps(d.range, params.range)]
        loop = asyncio.get_running_loop()
        if _wanted(only, "quickfix"):
            for diag, f in items:
                if f.fix in ("safe", "unsafe"):
                    edit = await loop.run_in_executor(ls.executor, fix_one, checked, f)
                    if edit is not None:
                        safe = f.fix == "safe"
                        title = (f"Fix {f.code} ({f.rule})" if safe
                                 else f"Fix {f.code} ({f.rule}) — unsafe: changes numerics")
                        actions.append(lsp.CodeAction(title=title, kind=lsp.CodeActionKind.QuickFix,
                                                      diagnostics=[diag], edit=edit, is_preferred=safe))
                edit = await loop.run_in_executor(ls.executor, ignore_edit, checked, f)
                if edit is not None:
                    actions.append(lsp.CodeAction(title=f"Ignore {f.code} on this line",
                                                  kind=lsp.CodeActionKind.QuickFix, diagnostics=[diag], edit=edit))
        if _wanted(only, FIX_ALL_KIND) and any(f.fix == "safe" for f in checked.findings):
            edit = await loop.run_in_executor(ls.executor, fix_all, checked)
            if edit is not None:
                actions.append(lsp.CodeAction(title="keraslint: fix all safe findings", kind=FIX_ALL_KIND,
                                              edit=edit))
        return actions
    except Exception as e:  # noqa: BLE001
        ls.log(f"internal error in code actions for {uri}: {type(e).__name__}: {e}", lsp.MessageType.Error)
        return None


@server.feature(lsp.TEXT_DOCUMENT_HOVER)
async def _hover(ls: KerasLintServer, params: lsp.HoverParams):
    uri = params.text_document.uri
    try:
        checked = await ls.fresh(uri)
        if checked is None:
            return None
        from keraslint.registry import rules_by_code

        by_code = rules_by_code()
        parts, where = [], None
        for diag, f in checked.diagnostics.get(uri, []):
            if not _in_range(params.position, diag.range):
                continue
            cls = by_code.get(f.code)
            if cls is None:
                continue
            fix = {"safe": "safe fix available", "unsafe": "unsafe fix available (changes numerics)",
                   None: "no fix"}[cls.fix_applicability]
            parts.append(f"**{cls.code} {cls.name}** ({cls.severity}; {fix})\n\n{cls.doc()}")
            where = where or diag.range
        if not parts:
            return None
        return lsp.Hover(contents=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value="\n\n---\n\n".join(parts)),
                         range=where)
    except Exception as e:  # noqa: BLE001
        ls.log(f"internal error in hover for {uri}: {type(e).__name__}: {e}", lsp.MessageType.Error)
        return None


def serve() -> int:
    """Run over stdio until the client says exit."""
    logging.basicConfig(level=logging.WARNING, format="keraslint server: %(message)s")
    server.start_io()
    return 0
