"""The citation format: how an answer names the passage each of its facts comes from.

A citation is "<source>#page=<n>", for example "docs/guide.md#page=3" (files without pages are page 1),
and an answer writes it in square brackets: "Twenty-five days [docs/guide.md#page=3]." A data point, the
form in which a passage goes to the model and to the client, is "<citation>: <passage>".

This module is the only Python that writes or reads that format; the chat page's script
(static/app.js) reads it too, in JavaScript.
"""

from __future__ import annotations

import re
from collections.abc import Callable

PAGE_MARK = "#page="
# A longer bracketed text is not a citation (so a streamed answer never holds back more than this).
MAX_CITATION_CHARS = 300
# A bracketed token in an answer: a citation, a source named without its page, or ordinary text.
_BRACKETED = re.compile(rf"\[([^\[\]\n]{{1,{MAX_CITATION_CHARS}}})\]")
_CITATION = re.compile(r"(?P<source>.*)#page=(?P<page>\d+)")
# The citation of a data point ends at the first ": " after its page number (sources may hold colons).
_DATA_POINT = re.compile(r"(?P<citation>.*?#page=\d+): ", re.DOTALL)


def citation(source: str, page: int) -> str:
    return f"{source}{PAGE_MARK}{page}"


def in_brackets(citation_text: str) -> str:
    """A citation as an answer writes it."""
    return f"[{citation_text}]"


def data_point(citation_text: str, passage: str) -> str:
    return f"{citation_text}: {passage}"


def split_citation(text: str) -> tuple[str, int | None]:
    """'docs/a.md#page=2' -> ('docs/a.md', 2); 'handbook.pdf' -> ('handbook.pdf', None)."""
    match = _CITATION.fullmatch(text.strip())
    return (match["source"], int(match["page"])) if match else (text.strip(), None)


def is_citation(text: str) -> bool:
    """Whether text has a citation's shape, "<source>#page=<n>"."""
    return _CITATION.fullmatch(text.strip()) is not None


def mentions_page(text: str) -> bool:
    """Whether text looks like an attempt at a citation (it names a page), well-formed or not."""
    return PAGE_MARK in text


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
