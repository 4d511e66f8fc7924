"""Turning files into pages of plain text, and pages into overlapping chunks.

Nothing here touches the database or the network, so it is easy to test on its own.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

from .citations import slug

SUPPORTED_SUFFIXES = {
    ".pdf": "pdf",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".txt": "text",
    ".text": "text",
    ".rst": "text",
}


# Elements that sit inside a line of text; every other element starts and ends a block (a line), so
# words of neighbouring blocks never run together ("Home | About" then "Onboarding checklist").
# fmt: off
INLINE_TAGS = frozenset({
    "a", "abbr", "acronym", "b", "bdi", "bdo", "big", "button", "cite", "code", "data", "del", "dfn", "em", "font",
    "i", "img", "input", "ins", "kbd", "label", "mark", "q", "s", "samp", "small", "span", "strike", "strong", "sub",
    "sup", "time", "tt", "u", "var", "wbr",
})
HIDDEN_TAGS = frozenset({
    "head", "script", "style", "noscript", "template", "title", "svg", "math", "iframe", "object", "canvas",
})
# fmt: on
HEADING_TAGS = frozenset(f"h{level}" for level in range(1, 7))
# Diagram source (a fenced Mermaid block, <pre class="mermaid">...) is not text a reader or a search wants.
DIAGRAM_LANGUAGES = frozenset({"mermaid", "plantuml", "puml", "dot", "graphviz", "d2"})
# An HTML id kept as a section's anchor; other ids (with spaces, dots, colons) give way to the heading's slug.
ANCHOR_ID = re.compile(r"[\w-]+")
# Code blocks are kept between fences, the opening one naming a language ("```sh", or "```text"), so
# that readers of a passage (the no-model answer, sentences.py) can leave code out.
CODE_FENCE = "```"


class DocumentError(ValueError):
    """A file that cannot be read as a document (corrupt, empty, unsupported)."""


@dataclass(frozen=True)
class Page:
    """A page of a PDF, or a section of a Markdown or HTML file (all on page 1), or a whole text file."""

    number: int  # 1-based; formats without pages are a single page 1
    text: str
    section: tuple[str, ...] = ()  # the heading path, outermost first; () before the first heading
    anchor: str = ""  # the section's anchor (citations.py); "" cites the page


@dataclass(frozen=True)
class ParsedDocument:
    title: str
    pages: list[Page]


@dataclass(frozen=True)
class Chunk:
    ordinal: int
    page: int
    content: str
    section: tuple[str, ...] = ()
    anchor: str = ""


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in SUPPORTED_SUFFIXES


def parse_document(path: Path, data: bytes) -> ParsedDocument:
    """Parse file bytes by the file's suffix; raise DocumentError with the reason when that fails."""
    kind = SUPPORTED_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DocumentError(f"unsupported file type {path.suffix or '(none)'}")
    try:
        parsed = _PARSERS[kind](path, data)
    except DocumentError:
        raise
    except Exception as error:  # parser libraries raise many types on corrupt input
        raise DocumentError(f"cannot read {kind} file: {type(error).__name__}: {error}") from error
    if not any(page.text.strip() for page in parsed.pages):
        raise DocumentError("no text found in the file")
    return parsed


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise DocumentError(f"not UTF-8 text (byte {error.start})") from error


def _parse_pdf(path: Path, data: bytes) -> ParsedDocument:
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(data), strict=False)
    pages = [Page(number, page.extract_text() or "") for number, page in enumerate(reader.pages, start=1)]
    metadata_title = reader.metadata.title if reader.metadata else None
    return ParsedDocument(title=(metadata_title or path.stem).strip(), pages=pages)


def _parse_markdown(path: Path, data: bytes) -> ParsedDocument:
    from markdown_it import MarkdownIt

    html = MarkdownIt("commonmark").enable("table").render(_decode(data))
    sections = _html_sections(html)
    return ParsedDocument(title=sections.first_h1 or path.stem, pages=sections.pages())


def _parse_html(path: Path, data: bytes) -> ParsedDocument:
    sections = _html_sections(_decode(data))
    return ParsedDocument(title=sections.title or sections.first_h1 or path.stem, pages=sections.pages())


def _parse_text(path: Path, data: bytes) -> ParsedDocument:
    if b"\x00" in data:
        raise DocumentError("binary data in a text file")
    return ParsedDocument(title=path.stem, pages=[Page(1, _decode(data))])


def _html_sections(html: str) -> _Sections:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    sections = _Sections()
    if soup.title:
        sections.title = soup.title.get_text(" ", strip=True) or None
    sections.walk(soup)
    sections.end_line()
    return sections


@dataclass
class _Section:
    path: tuple[str, ...]
    anchor: str
    lines: list[str]
    has_body: bool = False


class _Sections:
    """Walks an HTML tree in document order and splits its text into sections at the headings."""

    def __init__(self) -> None:
        self.title: str | None = None
        self.first_h1: str | None = None
        self.sections = [_Section((), "", [])]
        self._line: list[str] = []
        self._headings: list[tuple[int, str]] = []  # (level, text) of the enclosing headings
        self._anchors: set[str] = set()

    def pages(self) -> list[Page]:
        """One page 1 per section; a heading with nothing under it (before its subsections) is dropped
        unless the document has nothing else."""
        kept = [s for s in self.sections if s.has_body] or [s for s in self.sections if s.lines]
        return [Page(1, "\n".join(s.lines), s.path, s.anchor) for s in kept]

    def walk(self, node) -> None:
        from bs4.element import NavigableString, PreformattedString

        for child in node.children:
            if isinstance(child, PreformattedString):  # comments, doctypes, CDATA, processing instructions
                continue
            if isinstance(child, NavigableString):
                self._line.append(str(child))
            elif child.name in HIDDEN_TAGS or _is_diagram(child):
                continue
            elif child.name == "br":
                self.end_line()
            elif child.name in HEADING_TAGS:
                self._start_section(child)
            elif child.name == "pre":
                self._code_block(child)
            elif child.name == "tr":
                self._table_row(child)
            elif child.name in INLINE_TAGS:
                self.walk(child)
            else:
                self.end_line()
                self.walk(child)
                self.end_line()

    def end_line(self) -> None:
        self._add_line(" ".join("".join(self._line).split()))
        self._line = []

    def _add_line(self, line: str, body: bool = True) -> None:
        if line:
            self.sections[-1].lines.append(line)
            self.sections[-1].has_body |= body

    def _start_section(self, heading) -> None:
        self.end_line()
        text = " ".join(heading.get_text(" ").split())
        if not text:
            return
        level = int(heading.name[1])
        if level == 1 and self.first_h1 is None:
            self.first_h1 = text
        while self._headings and self._headings[-1][0] >= level:
            self._headings.pop()
        self._headings.append((level, text))
        element_id = heading.get("id") or ""
        anchor = element_id if ANCHOR_ID.fullmatch(element_id) else _unique(slug(text) or "section", self._anchors)
        self._anchors.add(anchor)
        self.sections.append(_Section(tuple(text for _, text in self._headings), anchor, []))
        self._add_line(text, body=False)

    def _code_block(self, pre) -> None:
        self.end_line()
        code = pre.get_text().strip("\n")
        if code.strip():
            self._add_line(CODE_FENCE + (_code_language(pre) or "text"))
            for line in code.splitlines():
                self._add_line(line.rstrip())
            self._add_line(CODE_FENCE)

    def _table_row(self, row) -> None:
        self.end_line()
        cells = [" ".join(cell.get_text(" ").split()) for cell in row.find_all(["td", "th"], recursive=False)]
        if any(cells):
            self._add_line("| " + " | ".join(cells) + " |")


def _unique(anchor: str, used: set[str]) -> str:
    """GitHub's rule for repeated headings: "setup", then "setup-1", "setup-2"..."""
    candidate, number = anchor, 0
    while candidate in used:
        number += 1
        candidate = f"{anchor}-{number}"
    return candidate


def _classes(element) -> list[str]:
    return [str(name) for name in (element.get("class") or [])]


def _code_language(pre) -> str | None:
    for element in (pre, pre.find("code")):
        for name in _classes(element) if element is not None else []:
            if name.startswith(("language-", "lang-")):
                return name.split("-", 1)[1].lower() or None
    return None


def _is_diagram(element) -> bool:
    if element.name not in ("pre", "div", "code"):
        return False
    if element.name == "pre" and _code_language(element) in DIAGRAM_LANGUAGES:
        return True
    return any(name.lower() in DIAGRAM_LANGUAGES for name in _classes(element))


_PARSERS = {"pdf": _parse_pdf, "markdown": _parse_markdown, "html": _parse_html, "text": _parse_text}


def split_into_chunks(pages: list[Page], chunk_size: int, overlap: int) -> list[Chunk]:
    """Split each page into chunks of at most chunk_size characters that overlap by about `overlap`.

    Chunks never span pages, so every chunk cites exactly one page. Cuts prefer paragraph,
    then sentence, then word boundaries in the last part of the window.
    """
    chunks: list[Chunk] = []
    for page in pages:
        text = _normalise_whitespace(page.text)
        for piece in _windows(text, chunk_size, overlap):
            chunks.append(Chunk(len(chunks), page.number, piece, page.section, page.anchor))
    return chunks


def _normalise_whitespace(text: str) -> str:
    text = re.sub(r"[ \t\r\f\v]+", " ", text)
    return re.sub(r"\n\s*\n+", "\n\n", text).strip()


def _windows(text: str, size: int, overlap: int):
    start = 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            end = _best_cut(text, start, end, size)
        piece = text[start:end].strip()
        if piece:
            yield piece
        if end >= len(text):
            return
        # Step back by the overlap, then further back to the start of that sentence or line (at most another
        # overlap), else forward to a word start: chunks begin with whole sentences where they can, and with
        # whole words always.
        next_start = max(end - overlap, start + 1)
        if overlap:
            sentences = list(_SENTENCE_START.finditer(text, max(next_start - overlap, start + 1), next_start))
            boundary = sentences[-1] if sentences else _WORD_START.search(text, next_start, end)
            next_start = boundary.end() if boundary else next_start
        start = next_start


_SENTENCE_START = re.compile(r"\n|[.!?] ")
_WORD_START = re.compile(" ")


def _best_cut(text: str, start: int, end: int, size: int) -> int:
    """The last paragraph/sentence/word break in the second half of the window, else a hard cut."""
    earliest = start + size // 2
    for separator in ("\n\n", ". ", "\n", " "):
        position = text.rfind(separator, earliest, end)
        if position != -1:
            return position + len(separator)
    return end
