"""The declared dependencies match the code: every third-party module that ``src/`` imports is
declared in pyproject.toml (an undeclared one works only while something else happens to pull
it in), every declared one is used, and the environment satisfies the declared ranges."""

from __future__ import annotations

import ast
import functools
import importlib.metadata as md
import re
import sys
import tomllib
from collections.abc import Mapping
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]
OWN = "edge_allocator"
CONSTRAINTS_ONLY = {
    "urllib3": "not imported: it excludes a urllib3 release that breaks the kubernetes client",
}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = (Requirement(line) for line in project["dependencies"])
    return {_normal(r.name): r for r in reqs}


@functools.cache
def _third_party_imports() -> dict[str, set[str]]:
    """Top-level module -> files importing it, for every absolute import anywhere in src/
    (lazy imports inside functions included)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "src").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top != OWN and top not in sys.stdlib_module_names:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


@functools.cache
def _module_owners() -> Mapping[str, list[str]]:
    return md.packages_distributions()  # scans every installed distribution: once is enough


def _distributions(module: str) -> set[str]:
    return {_normal(d) for d in _module_owners().get(module, [])}


def test_every_third_party_import_is_declared() -> None:
    declared = _declared()
    missing = {}
    for module, files in _third_party_imports().items():
        dists = _distributions(module)
        assert dists, f"{module} (imported by {sorted(files)}) is not installed"
        if not dists & declared.keys():
            missing[module] = sorted(files)
    assert not missing, f"imported but not in [project].dependencies: {missing}"


def test_every_declared_dependency_is_imported() -> None:
    used = set().union(*(_distributions(m) for m in _third_party_imports()))
    unused = set(_declared()) - used - set(CONSTRAINTS_ONLY)
    assert not unused, f"declared but never imported by src/: {sorted(unused)}"


@pytest.mark.parametrize("name", sorted(_declared()))
def test_the_environment_satisfies_the_declared_range(name: str) -> None:
    req = _declared()[name]
    installed = md.version(req.name)
    assert req.specifier.contains(installed, prereleases=True), f"{req}: {installed} installed"


def test_the_import_scan_sees_what_it_must() -> None:
    """Guard the scan itself: lazy and ``from`` imports are found, stdlib ones skipped."""
    found = _third_party_imports()
    assert {"kopf", "aiohttp", "starlette", "torch", "yaml"} <= found.keys()
    assert not {"asyncio", "json", "tomllib", OWN} & found.keys()
