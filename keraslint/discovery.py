"""Which files to check: explicit files always; folders walked for ``.py`` and ``.ipynb``,
honouring ``.gitignore`` files (nested ones too), the config's ``exclude`` and the usual
tool folders (``.git``, ``.venv``, ``__pycache__``, ``node_modules`` ...). Directory
symlinks are not followed (no loops)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator, Optional


SUFFIXES = (".py", ".ipynb")
DEFAULT_EXCLUDE_DIRS = {
    ".git", ".hg", ".svn", ".venv", "venv", ".tox", ".nox", ".eggs", "__pycache__", "node_modules",
    ".mypy_cache", ".pytest_cache", ".ruff_cache", ".keraslint_cache", "site-packages", ".ipynb_checkpoints",
    "build", "dist", "_build", "buck-out", "__pypackages__", ".direnv",
}


class DiscoveryError(Exception):
    pass


@dataclass
class Problem:
    path: str
    message: str


def _spec(lines) -> Optional[pathspec.PathSpec]:
    lines = [ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
    if not lines:
        return None
    import pathspec  # only where a .gitignore or an exclude list exists (a one-file check has none)

    return pathspec.GitIgnoreSpec.from_lines(lines)


def _read_gitignore(d: str) -> Optional[pathspec.PathSpec]:
    p = os.path.join(d, ".gitignore")
    try:
        with open(p, encoding="utf-8", errors="replace") as fh:
            return _spec(fh.read().splitlines())
    except OSError:
        return None


def discover(paths: list, root: str, exclude: list, problems: list) -> list:
    """Files to check (paths as the user should see them), sorted, without duplicates.
    Missing paths raise DiscoveryError; unreadable folders are added to ``problems``."""
    exclude_spec = _spec(exclude)
    out: list = []
    seen: set = set()
    for p in paths:
        if not os.path.lexists(p):
            raise DiscoveryError(f"{p}: no such file or directory")
        if os.path.isdir(p):
            for f in _walk(p, root, exclude_spec, problems):
                key = os.path.realpath(f)
                if key not in seen:
                    seen.add(key)
                    out.append(f)
        else:
            key = os.path.realpath(p)
            if key not in seen:
                seen.add(key)
                out.append(p)
    return out


def _rel(path: str, root: str) -> str:
    try:
        rel = os.path.relpath(os.path.abspath(path), root)
    except ValueError:  # different drive
        return path
    return rel.replace(os.sep, "/")


def _not_covering(spec: pathspec.PathSpec, rel_top: str) -> Optional[pathspec.PathSpec]:
    """``spec`` without the ignore patterns that match ``rel_top`` or a folder above it."""
    if not rel_top:
        return spec
    parts = rel_top.replace(os.sep, "/").split("/")
    prefixes = ["/".join(parts[: i + 1]) + "/" for i in range(len(parts))]
    kept = [pat for pat in spec.patterns
            if not (pat.include and any(pat.match_file(pre) is not None for pre in prefixes))]
    import pathspec

    return pathspec.PathSpec(kept) if kept else None


def _walk(top: str, root: str, exclude_spec, problems: list) -> Iterator[str]:
    ignores: list = []  # (dir, spec) from .gitignore files above and inside the walk
    # .gitignore files between the project root and the walked folder apply too.
    abs_top = os.path.abspath(top)
    abs_root = os.path.abspath(root)
    # .gitignore files between the repository's top (the nearest folder with .git) and
    # the walked folder apply; outside a repository, those below the project root.
    d = abs_top
    chain = [d]
    while not os.path.exists(os.path.join(d, ".git")):
        parent = os.path.dirname(d)
        if parent == d:
            chain = [c for c in chain if c == abs_root or c.startswith(abs_root + os.sep)]
            break
        d = parent
        chain.append(d)
    for d in reversed(chain[1:]):
        spec = _read_gitignore(d)
        if spec is None:
            continue
        # A folder the user names explicitly is checked even when an enclosing
        # .gitignore ignores it (e.g. `keraslint check .venv/lib/.../pkg`): drop the
        # patterns that ignore the walked folder itself, keep the others (`*.tmp.py`).
        kept = _not_covering(spec, abs_top[len(d) + 1:])
        if kept is not None:
            ignores.append((d, kept))
    # Likewise `exclude`: naming an excluded folder on the command line checks it (as ruff
    # does without --force-exclude); patterns for parts inside it still apply.
    rel_top = _rel(abs_top, abs_root)
    if exclude_spec is not None and not rel_top.startswith(".."):
        exclude_spec = _not_covering(exclude_spec, "" if rel_top == "." else rel_top)

    def ignored(abs_path: str, is_dir: bool) -> bool:
        for d, spec in ignores:
            if abs_path.startswith(d + os.sep):
                rel = abs_path[len(d) + 1:].replace(os.sep, "/")
                if spec.match_file(rel + ("/" if is_dir else "")):
                    return True
        if exclude_spec is not None:
            rel = _rel(abs_path, root)
            if not rel.startswith("..") and exclude_spec.match_file(rel + ("/" if is_dir else "")):
                return True
        return False

    def onerror(e: OSError) -> None:
        problems.append(Problem(e.filename or top, f"cannot read folder: {e.strerror}"))

    for dirpath, dirnames, filenames in os.walk(top, onerror=onerror):
        abs_dir = os.path.abspath(dirpath)
        spec = _read_gitignore(abs_dir)
        if spec is not None:
            ignores.append((abs_dir, spec))
        keep = []
        for dn in sorted(dirnames):
            if dn in DEFAULT_EXCLUDE_DIRS or dn.endswith(".egg-info"):
                continue
            if ignored(os.path.join(abs_dir, dn), True):
                continue
            keep.append(dn)
        dirnames[:] = keep
        for fn in sorted(filenames):
            if not fn.endswith(SUFFIXES):
                continue
            full = os.path.join(dirpath, fn)
            if ignored(os.path.join(abs_dir, fn), False):
                continue
            if os.path.isdir(full):  # a folder named like a file (e.g. `x.py/`)
                continue
            yield os.path.normpath(full)
