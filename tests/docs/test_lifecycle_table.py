"""docs/lifecycle.md's policy table: one row per moment of the subscription lifecycle, and
every row names the tests that hold it, each of which exists, so a row without tests (or
a test renamed away from its row) fails here."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "lifecycle.md"
COLUMNS = ["moment", "Stripe event", "what happens in Zentitle2", "setting", "tests"]
MOMENTS = (
    "quantity changed",
    "product added",
    "product removed",
    "proration invoice",
    "renewal reconciliation",
    "trial, `grant`",
    "trial, `wait`",
    "trial ends unpaid",
    "`cancel_at_period_end`",
    "`past_due`",
    "`unpaid`, `incomplete_expired`",
    "paid again after trouble",
    "paused",
    "resumed",
    "refund",
    "dispute",
    "malformed payload",
)
AWAITING_TESTS: frozenset[str] = frozenset()
"""Rows whose tests another change is still landing: the tests they name may not exist
yet (those that do are checked). Empty it as they land."""
_REFERENCE = re.compile(r"`(tests/[\w/]+\.py)::(\w+)`")


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def policy_rows() -> list[dict[str, str]]:
    text = PAGE.read_text(encoding="utf-8")
    section = text.split("\n## The policy table\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    assert _cells(lines[0]) == COLUMNS
    rows = [dict(zip(COLUMNS, _cells(line), strict=True)) for line in lines[2:]]
    assert rows, "the policy table has no rows"
    return rows


@cache
def _test_functions(module: str) -> frozenset[str]:
    tree = ast.parse((ROOT / module).read_text(encoding="utf-8"))
    return frozenset(
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
    )


def test_the_table_has_one_row_per_lifecycle_moment() -> None:
    assert tuple(row["moment"] for row in policy_rows()) == MOMENTS
    assert not AWAITING_TESTS - set(MOMENTS)


def test_every_row_names_tests_that_exist() -> None:
    problems = []
    for row in policy_rows():
        moment = row["moment"]
        references = _REFERENCE.findall(row["tests"])
        if not references and moment not in AWAITING_TESTS:
            problems.append(f"{moment}: names no test (`tests/...py::test_...`)")
        for module, function in references:
            if not (ROOT / module).is_file():
                problem = f"{moment}: {module} does not exist"
            elif function not in _test_functions(module):
                problem = f"{moment}: {module} has no {function}"
            else:
                continue
            if moment not in AWAITING_TESTS:
                problems.append(problem)
    assert not problems, "\n".join(problems)


def test_every_row_says_what_happens_and_by_which_setting() -> None:
    for row in policy_rows():
        assert row["Stripe event"], row["moment"]
        assert row["what happens in Zentitle2"], row["moment"]
        assert row["setting"], f"{row['moment']}: name the setting, or say none"
