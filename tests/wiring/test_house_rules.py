"""The house rules of `src/`, checked on every run so a growing module is noticed early:
no module over 400 lines (the two emulator resource files excepted), no class over 250,
no function over 60."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "zentitle_stripe"
RESOURCE_FILES = {"testing/_zentitle_resources.py", "testing/_stripe_resources.py"}
MODULES = sorted(SRC.rglob("*.py"))


def _name(path: Path) -> str:
    return path.relative_to(SRC).as_posix()


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_module_class_and_function_sizes(path: Path) -> None:
    text = path.read_text()
    problems = []
    lines = len(text.splitlines())
    if lines > 400 and _name(path) not in RESOURCE_FILES:
        problems.append(f"module has {lines} lines (at most 400)")
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            limit = 250 if isinstance(node, ast.ClassDef) else 60
            size = (node.end_lineno or node.lineno) - node.lineno + 1
            if size > limit:
                problems.append(f"{node.name} has {size} lines (at most {limit})")
    assert not problems, f"{_name(path)}: " + "; ".join(problems)
