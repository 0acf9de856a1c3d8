"""Print ``name==floor`` for each of pyproject's ``[project].dependencies``.

CI installs the package with these as pip constraints and runs the test suite, so the floors
declared in pyproject.toml are exactly the versions that are tested: they cannot drift apart.
Stdlib only. Every dependency must have a ``>=`` floor; anything else is an error.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    sys.exit("lowest_constraints.py needs Python 3.11+ (tomllib)")

# "name[extra]>=1.2,<3; marker": the name, then the specifiers up to a marker.
_REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*([^;]*)")


def floors(pyproject: Path) -> list[str]:
    """``name==version`` for every runtime dependency, from its ``>=`` specifier."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    constraints = []
    for requirement in project.get("dependencies", []):
        match = _REQUIREMENT.match(requirement)
        if match is None:
            raise SystemExit(f"cannot parse the dependency {requirement!r}")
        name, specifiers = match.group(1), match.group(2)
        lower = [s.strip()[2:].strip() for s in specifiers.split(",") if s.strip()[:2] == ">="]
        if len(lower) != 1:
            raise SystemExit(f"the dependency {requirement!r} needs exactly one '>=' floor")
        constraints.append(f"{name}=={lower[0]}")
    return constraints


def main() -> None:
    pyproject = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("pyproject.toml")
    print("\n".join(floors(pyproject)))


if __name__ == "__main__":
    main()
