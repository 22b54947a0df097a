"""Configuration from the nearest ``pyproject.toml`` with a ``[tool.keraslint]`` table.

    [tool.keraslint]
    select = ["KL"]                 # codes or prefixes; default: all rules
    ignore = ["KL104"]
    exclude = ["legacy/", "*_pb2.py"]   # gitignore-style patterns, relative to the project
    per-file-ignores = { "tests/*" = ["KL101"] }
    severity = { KL406 = "warning" }
    seed = 42                       # the value seed fixes insert
    strict = false                  # report hidden-default rules outside a parity context too
    cache-dir = ".keraslint_cache"
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Optional

try:
    import tomllib
except ImportError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore

from keraslint.rule import SEVERITIES

KNOWN_KEYS = {"select", "ignore", "exclude", "per-file-ignores", "severity", "seed", "cache-dir", "strict"}


class ConfigError(Exception):
    """A problem with the configuration or the command line, said in one line."""


@dataclass
class Config:
    root: str  # folder of the pyproject.toml (or the current folder)
    path: Optional[str] = None  # the pyproject.toml it came from
    select: Optional[list] = None
    ignore: list = field(default_factory=list)
    exclude: list = field(default_factory=list)
    per_file_ignores: dict = field(default_factory=dict)
    severity: dict = field(default_factory=dict)
    seed: int = 42
    cache_dir: Optional[str] = None
    # Rules about hidden defaults (KL401, KL603, KL104, ...) report only where the file
    # compares Keras with another implementation or states a reproducibility intent (a
    # *parity context*). ``strict`` reports every occurrence (config key or ``--strict``).
    strict: bool = False

    def enabled_codes(self, all_codes, cli_select=None, cli_ignore=None) -> set:
        from keraslint.registry import expand

        from keraslint.registry import default_codes

        sel = cli_select if cli_select is not None else self.select
        # No selection: the default rule set (ruff's approach: a small set everybody can
        # leave on; the rest are opt-in with ``select``).
        codes = expand(sel) if sel is not None else set(all_codes) & default_codes()
        codes -= expand(self.ignore)
        if cli_ignore:
            codes -= expand(cli_ignore)
        return codes

    def codes_for(self, base: set):
        """``path -> sorted codes enabled for that file``: ``base`` less the file's
        per-file-ignores (patterns relative to the project root)."""
        from keraslint.discovery import _rel
        from keraslint.registry import expand

        def for_path(path: str) -> tuple:
            extra = self.file_ignores(_rel(path, self.root))
            return tuple(sorted(base - expand(extra) if extra else base))

        return for_path

    def file_ignores(self, relpath: str) -> list:
        out = []
        for pattern, codes in self.per_file_ignores.items():
            if _glob_match(relpath, pattern):
                out.extend(codes)
        return out

    def fingerprint(self) -> str:
        payload = json.dumps(
            [self.select, self.ignore, self.per_file_ignores, self.severity, self.seed, self.strict], sort_keys=True,
            default=str
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _glob_match(relpath: str, pattern: str) -> bool:
    relpath = relpath.replace(os.sep, "/")
    pattern = pattern.replace(os.sep, "/")
    if fnmatch.fnmatch(relpath, pattern):
        return True
    if "/" not in pattern and fnmatch.fnmatch(relpath.rsplit("/", 1)[-1], pattern):
        return True
    if pattern.endswith("/") and (relpath.startswith(pattern) or ("/" + pattern) in ("/" + relpath)):
        return True
    return False


def find_pyproject(start: str) -> Optional[str]:
    """Nearest pyproject.toml upward from ``start`` that has a [tool.keraslint] table."""
    d = os.path.abspath(start)
    if not os.path.isdir(d):
        d = os.path.dirname(d)
    while True:
        cand = os.path.join(d, "pyproject.toml")
        if os.path.isfile(cand):
            try:
                with open(cand, "rb") as fh:
                    data = tomllib.load(fh)
            except (OSError, tomllib.TOMLDecodeError):
                data = None
                # A broken pyproject.toml that mentions us is an error; others are not ours.
                try:
                    with open(cand, "rb") as fh:
                        if b"tool.keraslint" in fh.read():
                            return cand
                except OSError:
                    # Unreadable: it may hold our settings, so say so (load() reports
                    # "cannot read") rather than silently check with the defaults.
                    return cand
            if data is not None and isinstance(data.get("tool"), dict) and "keraslint" in data["tool"]:
                return cand
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


def _str_list(value, key: str, where: str) -> list:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: `{key}` must be a list of strings")
    return list(value)


def load(start: str = ".", explicit: Optional[str] = None) -> Config:
    path = explicit or find_pyproject(start)
    if path is None:
        return Config(root=os.path.abspath(start if os.path.isdir(start) else os.path.dirname(start) or "."))
    where = path
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as e:
        raise ConfigError(f"{where}: cannot read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where}: invalid TOML: {e}") from None
    table = data.get("tool", {}).get("keraslint", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [tool.keraslint] must be a table")
    where = f"{path} [tool.keraslint]"
    unknown = sorted(set(table) - KNOWN_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key `{unknown[0]}` (known: {', '.join(sorted(KNOWN_KEYS))})")
    cfg = Config(root=os.path.dirname(os.path.abspath(path)), path=path)
    if "select" in table:
        cfg.select = _str_list(table["select"], "select", where)
    if "ignore" in table:
        cfg.ignore = _str_list(table["ignore"], "ignore", where)
    if "exclude" in table:
        cfg.exclude = _str_list(table["exclude"], "exclude", where)
    if "per-file-ignores" in table:
        pfi = table["per-file-ignores"]
        if not isinstance(pfi, dict):
            raise ConfigError(f"{where}: `per-file-ignores` must be a table of pattern = [codes]")
        cfg.per_file_ignores = {k: _str_list(v, f"per-file-ignores.{k}", where) for k, v in pfi.items()}
    if "severity" in table:
        sev = table["severity"]
        if not isinstance(sev, dict):
            raise ConfigError(f"{where}: `severity` must be a table of CODE = \"error\"|\"warning\"|\"info\"")
        for code, level in sev.items():
            if level not in SEVERITIES:
                raise ConfigError(f"{where}: severity of {code} must be one of error, warning, info (got {level!r})")
        cfg.severity = {k.upper(): v for k, v in sev.items()}
    if "seed" in table:
        if not isinstance(table["seed"], int) or isinstance(table["seed"], bool):
            raise ConfigError(f"{where}: `seed` must be an integer")
        cfg.seed = table["seed"]
    if "strict" in table:
        if not isinstance(table["strict"], bool):
            raise ConfigError(f"{where}: `strict` must be true or false")
        cfg.strict = table["strict"]
    if "cache-dir" in table:
        if not isinstance(table["cache-dir"], str):
            raise ConfigError(f"{where}: `cache-dir` must be a string")
        cfg.cache_dir = os.path.join(cfg.root, table["cache-dir"])
    # validate codes
    from keraslint.registry import known_code_or_prefix, rules_by_code

    for key, codes in (("select", cfg.select or []), ("ignore", cfg.ignore)):
        for c in codes:
            if not known_code_or_prefix(c):
                raise ConfigError(f"{where}: unknown rule code `{c}` in `{key}`")
    for pattern, codes in cfg.per_file_ignores.items():
        for c in codes:
            if not known_code_or_prefix(c):
                raise ConfigError(f"{where}: unknown rule code `{c}` in `per-file-ignores` for {pattern!r}")
    known = set(rules_by_code()) | {"KL000"}
    for c in cfg.severity:
        if c not in known:
            raise ConfigError(f"{where}: unknown rule code `{c}` in `severity`")
    return cfg
