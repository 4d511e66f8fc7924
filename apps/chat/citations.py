"""The citation format: how an answer names the passage each of its facts comes from.

A citation is "<source>#<anchor>", where the source is "<collection>/<path>" (see ingest.py) and the
anchor says where in the document the passage is:
- "page=<n>" for a page of a PDF, e.g. "handbook/leave.pdf#page=3"; plain text files, and the text of a
  Markdown or HTML file before its first heading, are page 1;
- a section's slug for Markdown and HTML, e.g. "docs/guide.md#run-it-locally": the heading's id in HTML,
  otherwise the heading's text as GitHub writes it (lower case, punctuation dropped, spaces as hyphens,
  "-1", "-2" appended to repeats), so the citation is also a link to that heading.
An answer writes a citation in square brackets: "Twenty-five days [docs/guide.md#leave]." A data point,
the form in which a passage goes to the model and to the client, is "<citation>: <passage>"; each
citation names one passage (search results of one section or page are joined into one data point).

This module is the only Python that writes or reads that format; the chat page's script
(static/app.js) reads it too, in JavaScript.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

PAGE_MARK = "#page="
# A longer bracketed text is not a citation (so a streamed answer never holds back more than this).
MAX_CITATION_CHARS = 300
# A bracketed token in an answer: a citation, a source named without its anchor, or ordinary text.
_BRACKETED = re.compile(rf"\[([^\[\]\n]{{1,{MAX_CITATION_CHARS}}})\]")
# The source is everything up to the last "#", so a "#" inside a file name is fine. With a section
# anchor the source must name a file (hold a "/" or a "."), so that "[C#]" or "[issue#12]" in an answer
# are no citations.
_PAGE_CITATION = re.compile(r"(?P<source>.*)#page=(?P<page>\d+)")
_SECTION_CITATION = re.compile(r"(?P<source>.*[./].*)#(?P<section>[\w-]+)")
# The citation of a data point ends at the first ": " after an anchor (sources may hold colons and "#").
_DATA_POINT = re.compile(r"(?P<citation>.*?#(?:page=\d+|[\w-]+)): ", re.DOTALL)


@dataclass(frozen=True)
class Citation:
    source: str
    page: int | None = None  # the page cited, when the anchor is a page
    section: str | None = None  # the section's slug, when the anchor is a section

    def __str__(self) -> str:
        return citation(self.source, self.page or 1, self.section or "")


def citation(source: str, page: int = 1, anchor: str = "") -> str:
    """The citation of a passage: its section's anchor if it has one, else its page."""
    return f"{source}#{anchor}" if anchor else f"{source}{PAGE_MARK}{page}"


def parse(text: str) -> Citation | None:
    """'docs/a.md#page=2' -> Citation('docs/a.md', page=2); 'docs/a.md#setup' -> Citation('docs/a.md',
    section='setup'); None for a text that is no citation."""
    text = text.strip()
    if match := _PAGE_CITATION.fullmatch(text):
        return Citation(match["source"], page=int(match["page"]))
    if match := _SECTION_CITATION.fullmatch(text):
        return Citation(match["source"], section=match["section"])
    return None


def slug(heading: str) -> str:
    """A heading as GitHub's Markdown anchors write it: 'Run it locally (no setup)' -> 'run-it-locally-no-setup'."""
    text = unicodedata.normalize("NFC", " ".join(heading.split())).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def refers_to(citation_text: str, target: str) -> bool:
    """Whether a citation names the target: the same source, which the target may give without its
    leading folders ("guide.md" for "docs/guide.md"), and the target's page or section if it names one.
    Sections are on page 1 (only files without pages have them), so "a.md#page=1", written before
    citations named sections, refers to every section of a.md."""
    cited = parse(citation_text) or Citation(citation_text.strip())
    wanted = parse(target) or Citation(target.strip())
    name = wanted.source.lstrip("/")
    if not (cited.source == wanted.source or cited.source.endswith("/" + name)):
        return False
    if wanted.section is not None:
        return cited.section == wanted.section
    if wanted.page is not None:
        return cited.page == wanted.page or (cited.section is not None and wanted.page == 1)
    return True


def in_brackets(citation_text: str) -> str:
    """A citation as an answer writes it."""
    return f"[{citation_text}]"


def data_point(citation_text: str, passage: str) -> str:
    return f"{citation_text}: {passage}"


def split_citation(text: str) -> tuple[str, int | None]:
    """'docs/a.md#page=2' -> ('docs/a.md', 2); 'docs/a.md#setup' -> ('docs/a.md', None);
    'handbook.pdf' -> ('handbook.pdf', None)."""
    parsed = parse(text)
    return (parsed.source, parsed.page) if parsed else (text.strip(), None)


def is_citation(text: str) -> bool:
    """Whether text has a citation's shape, "<source>#page=<n>" or "<source>#<section>"."""
    return parse(text) is not None


def mentions_page(text: str) -> bool:
    """Whether text looks like an attempt at a citation (it names a page or a section of a file),
    well-formed or not."""
    return PAGE_MARK in text or is_citation(text)


def bracketed(text: str) -> list[str]:
    """The bracketed tokens of a text, stripped, in order of first appearance, without repeats."""
    return list(dict.fromkeys(token.strip() for token in _BRACKETED.findall(text)))


def cited(text: str) -> list[str]:
    """The citations an answer writes in brackets, in order of first appearance, without repeats."""
    return [token for token in bracketed(text) if is_citation(token)]


def citation_of_data_point(text: str) -> str:
    """'a.md#page=1: passage' -> 'a.md#page=1'; a text that is no data point comes back whole."""
    match = _DATA_POINT.match(text)
    return match["citation"] if match else text


def rewrite_bracketed(text: str, rewrite: Callable[[str], str | None]) -> str:
    """Text with each bracketed token replaced as rewrite(token) says: a citation to write in its
    place, "" to drop it, or None to leave it as it is."""

    def replace(match: re.Match) -> str:
        replacement = rewrite(match.group(1).strip())
        if replacement is None:
            return match.group(0)
        return in_brackets(replacement) if replacement else ""

    return _BRACKETED.sub(replace, text)


def unclosed_bracket(text: str) -> int | None:
    """Where a citation that has not been closed yet may start in text (a "[" near its end with no "]"
    after it), or None: a streamed answer holds back the text from there until the rest arrives."""
    start = text.rfind("[")
    if start != -1 and "]" not in text[start:] and len(text) - start <= MAX_CITATION_CHARS:
        return start
    return None
