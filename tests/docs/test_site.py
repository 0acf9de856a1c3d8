"""The documentation site builds cleanly and renders what its sources say.

Docstrings are written in Markdown with mkdocstrings cross-references; MkDocs prints
Sphinx roles and reST markup as they are, so a stray `:class:` or `::` only shows up in
the built HTML. These tests build the site once (`mkdocs build --strict`) and read every
page: no raw Sphinx role, no reST marker, no list that collapsed into a paragraph, and
every Mermaid diagram rendered as one.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

# The `docs` extra; the `test` extra does not include it, CI installs both.
_DOCS_TOOLS = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")

SPHINX_ROLE = re.compile(r":(?:py:)?(class|meth|func|attr|data|mod|exc|obj|ref):`")
# A directive (`.. code-block::`) or a line ending in a literal-block marker (`Example::`).
REST_MARKUP = re.compile(r"(?m)^\s*\.\. [\w-]+::|\S::[ \t]*$")
LIST_IN_PARAGRAPH = re.compile(r"\n\s*(?:\d+\.|[-*+])\s+\S")
# Pages that must open with a picture (the sources of the others are checked as written).
PAGES_WITH_DIAGRAMS = {"concepts.md": 2, "flows.md": 4, "lifecycle.md": 1}
# The flows that must each have a diagram: the heading (its id) on flows.md above it.
FLOW_DIAGRAMS = ("first-payment", "renewal", "cancellation", "zentitle2-webhook")
QUICKSTART_STEPS_HEADING = "2-stripe-test-mode-step-by-step"

# Tags that end one run of text and start another (a paragraph, a list item, a cell, ...).
_BOUNDARIES = {"p", "li", "td", "th", "dt", "dd", "div", "ol", "ul", "table", "pre", "blockquote"}
_BOUNDARIES |= {f"h{level}" for level in range(1, 7)}


@dataclass
class Block:
    """A run of text between block boundaries, as the reader sees it."""

    anchor: str  # the nearest API object before it, so a failure names its docstring
    code: bool  # inside a code listing
    text: str


@dataclass
class OrderedList:
    after_heading: str  # the id of the last heading before the list
    items: int = 0


class Page(HTMLParser):
    """One built page, read into blocks of text (inline code back in backticks, as the
    Markdown source had it), its numbered lists and its Mermaid diagrams."""

    def __init__(self, name: str) -> None:
        super().__init__(convert_charrefs=True)
        self.name = name
        self.blocks: list[Block] = []
        self.ordered_lists: list[OrderedList] = []
        self.mermaid = 0
        self.diagrams_after: list[str] = []  # the heading id above each diagram
        self._anchor = ""
        self._heading = ""
        self._pre = 0
        self._text: list[str] = []
        self._lists: list[OrderedList | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag in _BOUNDARIES:
            self._flush()
        anchor = attributes.get("id") or ""
        if anchor.startswith("zentitle_stripe"):
            self._anchor = anchor
        if re.fullmatch(r"h[1-6]", tag) and anchor:
            self._heading = anchor
        if "mermaid" in (attributes.get("class") or "").split():
            self.mermaid += 1
            self.diagrams_after.append(self._heading)
        if tag == "pre":
            self._pre += 1
        elif tag == "code" and not self._pre:
            self._text.append("`")
        elif tag in ("ol", "ul"):
            listed = OrderedList(self._heading) if tag == "ol" else None
            self._lists.append(listed)
            if listed is not None:
                self.ordered_lists.append(listed)
        elif tag == "li" and self._lists and (current := self._lists[-1]) is not None:
            current.items += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _BOUNDARIES:
            self._flush()
        if tag == "pre":
            self._pre = max(0, self._pre - 1)
        elif tag == "code" and not self._pre:
            self._text.append("`")
        elif tag in ("ol", "ul") and self._lists:
            self._lists.pop()

    def handle_data(self, data: str) -> None:
        self._text.append(data)

    def close(self) -> None:
        super().close()
        self._flush()

    def _flush(self) -> None:
        text = "".join(self._text).strip()
        self._text = []
        if text:
            self.blocks.append(Block(self._anchor, self._pre > 0, text))

    def prose(self) -> Iterator[Block]:
        return (block for block in self.blocks if not block.code)

    def where(self, block: Block) -> str:
        place = block.anchor or "page text"
        return f"{self.name} ({'code listing in ' if block.code else ''}{place})"


def _importable(name: str) -> bool:
    """Whether `name` can be imported; a dotted name whose parent is missing is not."""
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    missing = [name for name in _DOCS_TOOLS if not _importable(name)]
    if missing:
        pytest.skip(
            f"the docs tools are not installed ({', '.join(missing)}): pip install '.[docs]'"
        )
    out = tmp_path_factory.mktemp("site")
    env = {
        **os.environ,
        "NO_MKDOCS_2_WARNING": "1",
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])
        ),
    }
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert build.returncode == 0, f"mkdocs build --strict failed:\n{build.stderr}"
    return out


@pytest.fixture(scope="module")
def pages(site: Path) -> dict[str, Page]:
    """Every built page by its source name (`concepts.md`, `frameworks/flask.md`, ...)."""
    read: dict[str, Page] = {}
    for html in sorted(site.rglob("index.html")):
        folder = html.parent.relative_to(site).as_posix()
        name = "index.md" if folder == "." else f"{folder}.md"
        if not (DOCS / name).is_file():
            continue  # a folder without a page of its own
        page = Page(name)
        page.feed(html.read_text(encoding="utf-8"))
        page.close()
        read[name] = page
    return read


def _excerpt(text: str, start: int, end: int) -> str:
    return " ".join(text[max(0, start - 50) : end + 50].split())


def _hits(pages: dict[str, Page], pattern: re.Pattern[str], *, code: bool = False) -> list[str]:
    """Where `pattern` occurs in the pages' prose (and code listings with `code`)."""
    return [
        f"{page.where(block)}: {_excerpt(block.text, match.start(), match.end())}"
        for page in pages.values()
        for block in (page.blocks if code else page.prose())
        for match in pattern.finditer(block.text)
    ]


def test_the_site_builds_and_has_every_page(pages: dict[str, Page]) -> None:
    sources = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert set(pages) == sources


def test_no_raw_sphinx_role(pages: dict[str, Page]) -> None:
    # Code listings count too: a shown example's docstring is read as well.
    hits = _hits(pages, SPHINX_ROLE, code=True)
    assert not hits, "raw Sphinx roles (write Markdown cross-references):\n" + "\n".join(hits)


def test_no_rest_markup(pages: dict[str, Page]) -> None:
    hits = _hits(pages, REST_MARKUP)
    assert not hits, "reST markup printed as text (use fenced code blocks):\n" + "\n".join(hits)


def test_no_list_collapsed_into_a_paragraph(pages: dict[str, Page]) -> None:
    hits = _hits(pages, LIST_IN_PARAGRAPH)
    assert not hits, "list items printed inside a paragraph (a blank line is missing):\n" + (
        "\n".join(hits)
    )


def test_quickstart_steps_render_as_one_numbered_list(pages: dict[str, Page]) -> None:
    source = (DOCS / "quickstart.md").read_text(encoding="utf-8")
    section = source.split("## 2. ", 1)[1].split("\n## ", 1)[0]
    steps = re.findall(r"(?m)^(\d+)\. ", section)
    assert steps == [str(n) for n in range(1, len(steps) + 1)]
    assert len(steps) >= 5
    lists = pages["quickstart.md"].ordered_lists
    outer = next(ol for ol in lists if ol.after_heading == QUICKSTART_STEPS_HEADING)
    assert outer.items == len(steps), "the steps must render as one list of all of them"


def test_every_mermaid_diagram_renders_as_one(pages: dict[str, Page]) -> None:
    for name, page in pages.items():
        source = (DOCS / name).read_text(encoding="utf-8")
        expected = len(re.findall(r"(?m)^\s*```mermaid\s*$", source))
        assert page.mermaid == expected, name
    for name, at_least in PAGES_WITH_DIAGRAMS.items():
        assert pages[name].mermaid >= at_least, f"{name} should open with its diagrams"


def test_each_flow_has_its_diagram(pages: dict[str, Page]) -> None:
    drawn = pages["flows.md"].diagrams_after
    missing = [flow for flow in FLOW_DIAGRAMS if flow not in drawn]
    assert not missing, f"flows.md has no diagram under: {missing}"
