"""Output formats: text (ruff-like), JSON (one array), SARIF 2.1.0, GitHub workflow commands."""

from __future__ import annotations

import json
import os
from collections import Counter
from typing import Iterable

from keraslint import __version__

FORMATS = ("text", "json", "sarif", "github")
INFO_URI = "https://github.com/keraslint/keraslint"


def _loc(f) -> str:
    if f.cell is not None:
        return f"{f.path}:cell {f.cell}:{f.line}:{f.column}"
    return f"{f.path}:{f.line}:{f.column}"


def text(findings: list, fixes_applied: int = 0, fix_mode: bool = False, color: bool = False) -> str:
    out = []
    bold = (lambda s: f"\x1b[1m{s}\x1b[0m") if color else (lambda s: s)
    red = (lambda s: f"\x1b[31m{s}\x1b[0m") if color else (lambda s: s)
    for f in findings:
        marker = " [*]" if f.fix == "safe" else (" [-]" if f.fix == "unsafe" else "")
        out.append(f"{bold(_loc(f))}: {red(f.code)}{marker} {f.message}")
    n = len(findings)
    if fixes_applied:
        out.append(f"Fixed {fixes_applied} finding{'s' if fixes_applied != 1 else ''}.")
    if n:
        sev = Counter(f.severity for f in findings)
        parts = [f"{sev[s]} {s}{'s' if sev[s] != 1 else ''}" for s in ("error", "warning", "info") if sev[s]]
        files = len({f.path for f in findings})
        out.append(f"Found {n} finding{'s' if n != 1 else ''} ({', '.join(parts)}) in {files} file{'s' if files != 1 else ''}.")
        safe = sum(1 for f in findings if f.fix == "safe")
        unsafe = sum(1 for f in findings if f.fix == "unsafe")
        if safe and not fix_mode:
            out.append(f"[*] {safe} fixable with `keraslint check --fix`.")
        if unsafe:
            out.append(f"[-] {unsafe} more fixable with `--fix --unsafe-fixes` (changes numerics: review the diff).")
    elif not fixes_applied:
        out.append("All checks passed.")
    return "\n".join(out) + "\n"


def json_array(findings: list) -> str:
    return json.dumps([f.to_json() for f in findings], indent=2) + "\n"


_LEVEL = {"error": "error", "warning": "warning", "info": "note"}


def sarif(findings: list, rule_classes: Iterable[type]) -> str:
    rules = []
    index = {}
    for cls in rule_classes:
        index[cls.code] = len(rules)
        rules.append(_sarif_rule(cls.code, cls.name, cls.summary(), cls.doc(), cls.severity))
    if "KL000" not in index and any(f.code == "KL000" for f in findings):
        index["KL000"] = len(rules)
        rules.append(_sarif_rule("KL000", "syntax-error", "A file that does not parse or decode.",
                                 "The file could not be read, decoded or parsed; nothing else was checked in it.",
                                 "error"))
    results = []
    for f in findings:
        region = {"startLine": f.line, "startColumn": f.column, "endLine": f.end_line, "endColumn": f.end_column}
        res = {
            "ruleId": f.code,
            "level": _LEVEL.get(f.severity, "warning"),
            "message": {"text": f.message},
            "locations": [{
                "physicalLocation": {
                    "artifactLocation": {"uri": f.path.replace(os.sep, "/"), "uriBaseId": "%SRCROOT%"},
                    "region": region,
                }
            }],
        }
        if f.code in index:
            res["ruleIndex"] = index[f.code]
        if f.cell is not None:
            res["properties"] = {"cell": f.cell}
        results.append(res)
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "keraslint", "version": __version__, "semanticVersion": __version__,
                                "informationUri": INFO_URI, "rules": rules}},
            "results": results,
            "columnKind": "unicodeCodePoints",
        }],
    }
    return json.dumps(doc, indent=2) + "\n"


def _sarif_rule(code, name, summary, doc, severity) -> dict:
    return {
        "id": code,
        "name": name,
        "shortDescription": {"text": summary},
        "fullDescription": {"text": doc or summary},
        "help": {"text": doc or summary, "markdown": doc or summary},
        "defaultConfiguration": {"level": _LEVEL.get(severity, "warning")},
        "properties": {"tags": ["keras", "parity"]},
    }


def _gh_escape(s: str, prop: bool = False) -> str:
    s = s.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        s = s.replace(":", "%3A").replace(",", "%2C")
    return s


def github(findings: list) -> str:
    out = []
    kind = {"error": "error", "warning": "warning", "info": "notice"}
    for f in findings:
        title = _gh_escape(f"{f.code} {f.rule}", prop=True)
        loc = f"file={_gh_escape(f.path, True)},line={f.line},col={f.column},endLine={f.end_line},endColumn={f.end_column}"
        msg = f.message if f.cell is None else f"(cell {f.cell}) {f.message}"
        out.append(f"::{kind.get(f.severity, 'warning')} {loc},title={title}::{_gh_escape(msg)}")
    return "\n".join(out) + ("\n" if out else "")


# ---------------------------------------------------------------------------
# --statistics: a count per code (like ``ruff check --statistics``)
# ---------------------------------------------------------------------------


def statistics_rows(findings: list, fixable: tuple = ("safe",)) -> list:
    """``[{code, name, count, fixable}]``, most frequent first (ties by code)."""
    rows: dict = {}
    for f in findings:
        r = rows.setdefault(f.code, {"code": f.code, "name": f.rule, "count": 0, "fixable": 0})
        r["count"] += 1
        if f.fix in fixable:
            r["fixable"] += 1
    return sorted(rows.values(), key=lambda r: (-r["count"], r["code"]))


def statistics_json(findings: list, fixable: tuple = ("safe",)) -> str:
    return json.dumps(statistics_rows(findings, fixable), indent=2) + "\n"


def statistics_text(findings: list, fixable: tuple = ("safe",)) -> str:
    rows = statistics_rows(findings, fixable)
    if not rows:
        return "All checks passed.\n"
    wc = max(len(str(r["count"])) for r in rows)
    wn = max(len(r["name"]) for r in rows)
    out = []
    for r in rows:
        fx = f"{r['fixable']} fixable" if r["fixable"] else ""
        out.append(f"{r['count']:>{wc}}  {r['code']}  {r['name']:<{wn}}  {fx}".rstrip())
    n = len(findings)
    out.append(f"Found {n} finding{'s' if n != 1 else ''} ({len(rows)} code{'s' if len(rows) != 1 else ''}).")
    return "\n".join(out) + "\n"
