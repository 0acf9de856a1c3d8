"""The Quickstart's demo output, generated from the demo: `python -m tests.docs.regen_quickstart`
rewrites it; `test_quickstart_demo_output_is_current` fails while it is stale."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

QUICKSTART = Path(__file__).resolve().parents[2] / "docs" / "quickstart.md"
BEGIN, END = "<!-- demo output: begin -->\n", "<!-- demo output: end -->\n"
# What changes from run to run: codes, dates, event ids, the server's port.
_VARYING = (
    (re.compile(r"\b[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}\b"), "GRP2-4P0Y-PDTV-9GK4"),
    (re.compile(r"\bevt_\w+"), "evt_emu000012"),
)

_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")


def demo_output() -> str:
    """The demo's table as the Quickstart shows it (normalised, without the server line)."""
    from zentitle_stripe.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["demo"])
    assert code == 0, out.getvalue()
    lines = [line for line in out.getvalue().splitlines() if "server http://" not in line]
    text = "\n".join(lines).strip("\n") + "\n"
    for pattern, stand_in in _VARYING:
        text = pattern.sub(stand_in, text)
    # Dates keep their order and years apart: the n-th distinct date becomes 20(27+n)-11-29.
    dates: dict[str, str] = {}
    return _DATE.sub(lambda m: dates.setdefault(m[0], f"{2027 + len(dates)}-11-29"), text)


def render(source: str, output: str) -> str:
    """`source` with the block between the markers replaced by `output`."""
    head, rest = source.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}```text\n{output}```\n{END}{tail}"


if __name__ == "__main__":
    QUICKSTART.write_text(render(QUICKSTART.read_text("utf-8"), demo_output()), "utf-8")
