"""Turning files into pages of plain text, and pages into overlapping chunks.

Nothing here touches the database or the network, so it is easy to test on its own.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path

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


BLOCK_TAGS = [
    "p",
    "div",
    "section",
    "article",
    "li",
    "dt",
    "dd",
    "tr",
    "pre",
    "blockquote",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "title",
    "table",
    "ul",
    "ol",
    "dl",
    "header",
    "footer",
]


class DocumentError(ValueError):
    """A file that cannot be read as a document (corrupt, empty, unsupported)."""


@dataclass(frozen=True)
class Page:
    number: int  # 1-based; formats without pages are a single page 1
    text: str


@dataclass(frozen=True)
class ParsedDocument:
    title: str
    pages: list[Page]


@dataclass(frozen=True)
class Chunk:
    ordinal: int
    page: int
    content: str


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

    source = _decode(data)
    html = MarkdownIt("commonmark").enable("table").render(source)
    text, _ = _html_to_text(html)
    heading = re.search(r"^\s{0,3}#\s+(.+)$", source, re.MULTILINE)
    return ParsedDocument(title=heading.group(1).strip() if heading else path.stem, pages=[Page(1, text)])


def _parse_html(path: Path, data: bytes) -> ParsedDocument:
    text, title = _html_to_text(_decode(data))
    return ParsedDocument(title=title or path.stem, pages=[Page(1, text)])


def _parse_text(path: Path, data: bytes) -> ParsedDocument:
    if b"\x00" in data:
        raise DocumentError("binary data in a text file")
    return ParsedDocument(title=path.stem, pages=[Page(1, _decode(data))])


def _html_to_text(html: str) -> tuple[str, str | None]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(html, "html.parser")
    heading = soup.title or soup.find("h1")
    title = heading.get_text(" ", strip=True) if heading else None
    for hidden in soup(["script", "style", "noscript", "template", "title"]):
        hidden.decompose()
    # Line breaks after block elements only, so inline markup (code, links) stays inside its sentence.
    for block in soup.find_all(BLOCK_TAGS):
        block.append("\n")
    for line_break in soup.find_all("br"):
        line_break.replace_with("\n")
    lines = (" ".join(line.split()) for line in soup.get_text().splitlines())
    return "\n".join(line for line in lines if line), title


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
            chunks.append(Chunk(ordinal=len(chunks), page=page.number, content=piece))
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
        # Step back by the overlap, then forward to a word start so chunks begin on whole words.
        next_start = max(end - overlap, start + 1)
        space = text.find(" ", next_start, end)
        start = space + 1 if overlap and space != -1 else next_start


def _best_cut(text: str, start: int, end: int, size: int) -> int:
    """The last paragraph/sentence/word break in the second half of the window, else a hard cut."""
    earliest = start + size // 2
    for separator in ("\n\n", ". ", "\n", " "):
        position = text.rfind(separator, earliest, end)
        if position != -1:
            return position + len(separator)
    return end
