"""Packaging: the core imports no optional dependency, the package ships its type
information, pyproject.toml declares exactly what the source imports (an AST scan), names
every supported Python, links its project pages, and `python -m zentitle_stripe` works."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import zentitle_stripe

OPTIONAL = (
    "flask",
    "fastapi",
    "django",
    "starlette",
    "uvicorn",
    "psycopg",
    "psycopg_pool",
    "pytest",
    "opentelemetry",
)


def test_importing_the_core_and_testing_pulls_in_no_optional_dependency() -> None:
    code = (
        "import sys, zentitle_stripe, zentitle_stripe.testing, zentitle_stripe.cli;"
        f"loaded = sorted(m for m in {OPTIONAL!r} if m in sys.modules);"
        "print(','.join(loaded))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""


def test_package_is_typed() -> None:
    assert (Path(zentitle_stripe.__file__).parent / "py.typed").exists()


def test_public_api_names() -> None:
    for name in ("Provisioner", "WebhookResponse", "Outcome", "OutcomeKind", "Settings"):
        assert name in zentitle_stripe.__all__
    assert zentitle_stripe.__version__


# -- pyproject.toml against the source ---------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
# The extras that ship code paths of the package (test, docs and dev only gather tools).
RUNTIME_EXTRAS = ("flask", "fastapi", "django", "postgres", "server", "otel")
# Import names whose distribution is spelled differently.
DISTRIBUTION_OF = {
    "attr": "attrs",
    "psycopg_pool": "psycopg-pool",
    "opentelemetry": "opentelemetry-api",
}


def _pyproject() -> dict[str, Any]:
    toml = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
    project: dict[str, Any] = toml.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    return project


def _name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match is not None, requirement
    return _normalise(match.group(1))


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _third_party_imports(tree: ast.AST, *, typing_only: bool = False) -> Iterator[tuple[str, bool]]:
    """(distribution, only under `if TYPE_CHECKING:`) for each third-party import in `tree`."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                yield from _third_party_imports(ast.Module([child], []), typing_only=True)
            for child in node.orelse:
                yield from _third_party_imports(ast.Module([child], []), typing_only=typing_only)
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            top = name.partition(".")[0]
            if top not in sys.stdlib_module_names and top != "zentitle_stripe":
                yield _normalise(DISTRIBUTION_OF.get(top, top)), typing_only
        yield from _third_party_imports(node, typing_only=typing_only)


def _imports_of_src() -> dict[str, set[str]]:
    """Each third-party distribution the package imports -> where; `(typing)` marks a
    module that imports it only for the type checker."""
    found: dict[str, set[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text("utf-8"), str(path))
        for distribution, typing_only in _third_party_imports(tree):
            where = path.relative_to(SRC).as_posix() + (" (typing)" if typing_only else "")
            found.setdefault(distribution, set()).add(where)
    return found


def test_every_imported_package_is_declared() -> None:
    project = _pyproject()
    declared = {_name(r) for r in project["dependencies"]}
    for extra in RUNTIME_EXTRAS:
        declared |= {_name(r) for r in project["optional-dependencies"][extra]}
    undeclared = {d: sorted(w) for d, w in _imports_of_src().items() if d not in declared}
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"


def test_every_declared_dependency_is_imported_at_run_time() -> None:
    # A dependency only the type checker reads (or nothing reads) is dead weight.
    project = _pyproject()
    used = {
        distribution
        for distribution, where in _imports_of_src().items()
        if any(not w.endswith(" (typing)") for w in where)
    }
    declared = [_name(r) for r in project["dependencies"]]
    for extra in RUNTIME_EXTRAS:
        declared += [_name(r) for r in project["optional-dependencies"][extra]]
    unused = sorted(set(declared) - used)
    assert not unused, f"declared in pyproject.toml but never imported at run time: {unused}"


def test_classifiers_name_every_supported_python() -> None:
    project = _pyproject()
    floor = re.fullmatch(r">=3\.(\d+)", project["requires-python"])
    assert floor is not None
    versions = {
        int(c.rsplit(".", 1)[1])
        for c in project["classifiers"]
        if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)
    }
    assert versions == set(range(int(floor.group(1)), 14))
    assert "Typing :: Typed" in project["classifiers"]
    for framework in ("Flask", "FastAPI", "Django"):
        assert f"Framework :: {framework}" in project["classifiers"]


def test_project_urls() -> None:
    urls = _pyproject()["urls"]
    for label in ("Homepage", "Documentation", "Changelog", "Issues"):
        assert urls[label].startswith("https://"), label


def test_python_dash_m_runs_the_command_line() -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])),
    }
    result = subprocess.run(
        [sys.executable, "-m", "zentitle_stripe", "--version"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"zentitle-stripe {zentitle_stripe.__version__}"
    result = subprocess.run(
        [sys.executable, "-m", "zentitle_stripe", "no-such-command"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=env,
    )
    assert result.returncode == 2
    assert "zentitle-stripe" in result.stderr
