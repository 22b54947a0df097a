"""A small Python API over the engine, for tests, editors and ``keraslint verify``.

    from keraslint.api import check_source, check_paths
    findings = check_source(code, path="model.py")          # list[Finding]
    findings = check_paths(["train.py"], select=["KL3"])
"""

from __future__ import annotations

from typing import Iterable, Optional


def _classes(select: Optional[Iterable[str]] = None, ignore: Optional[Iterable[str]] = None) -> list:
    from keraslint.registry import all_rules, expand

    classes = list(all_rules())
    if select is not None:
        wanted = expand(select)
        classes = [c for c in classes if c.code in wanted]
    if ignore:
        unwanted = expand(ignore)
        classes = [c for c in classes if c.code not in unwanted]
    return classes


def check_source(text: str, path: str = "<string>.py", select=None, ignore=None, gate: bool = True,
                 config=None) -> list:
    """Findings for source text (a notebook's JSON if ``path`` ends in .ipynb)."""
    from keraslint import engine
    from keraslint.rule import Finding

    src = engine.read_source(path, data=text.encode("utf-8"))
    if isinstance(src, Finding):
        return [src]
    analysis = engine.analyze(src, _classes(select, ignore), config, gate=gate, keep_tree=False,
                              severity=config.severity if config is not None else None)
    return sorted(analysis.findings, key=Finding.sort_key)


def check_paths(paths: list, select=None, ignore=None, gate: bool = True, jobs: int = 1, no_cache: bool = True) -> list:
    """Findings for files and folders, with the project's configuration applied."""
    from keraslint import config as cfgmod
    from keraslint import discovery
    from keraslint.runner import Options, run

    config = cfgmod.load(paths[0] if paths else ".")
    problems: list = []
    files = discovery.discover(paths, config.root, config.exclude, problems)
    codes = {c.code for c in _classes(select, ignore)}
    codes_for = config.codes_for(config.enabled_codes(codes) & codes)
    result = run(files, config, Options(no_cache=no_cache, jobs=jobs, gate=gate), codes_for)
    return result.findings
