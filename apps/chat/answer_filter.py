"""Cleaning the model's answer as it streams in: only citations of passages the search returned stay,
and <<follow-up questions>> are taken out of the text when they were asked for."""

from __future__ import annotations

import re

from . import citations
from .search import SearchResult

FOLLOWUP_QUESTION = re.compile(r"<<([^<>]+)>>")


class AnswerFilter:
    """Feed it the answer piece by piece; it returns the text that is safe to send so far.

    Text that might be the start of a citation or of the follow-up questions is held back until it is
    complete; `finish()` releases the rest and fills `followup_questions`.
    """

    def __init__(self, results: list[SearchResult], collect_followups: bool):
        self.citations = {result.citation for result in results}
        self.first_citation_of_source: dict[str, str] = {}
        for result in results:
            self.first_citation_of_source.setdefault(result.source, result.citation)
        self.collect_followups = collect_followups
        self.followup_questions: list[str] = []
        self._pending = ""
        self._followup_text = ""

    def feed(self, text: str) -> str:
        if self._followup_text:
            self._followup_text += text
            return ""
        self._pending += text
        if self.collect_followups and "<<" in self._pending:
            self._pending, self._followup_text = self._pending.split("<<", 1)
            self._followup_text = "<<" + self._followup_text
            return self._release(len(self._pending))
        return self._release(self._safe_length())

    def finish(self) -> str:
        text = self._release(len(self._pending))
        self.followup_questions = [
            question.strip() for question in FOLLOWUP_QUESTION.findall(self._followup_text) if question.strip()
        ]
        return text

    def _safe_length(self) -> int:
        """How much of the pending text cannot be part of an unfinished [citation] or <<."""
        unclosed = citations.unclosed_bracket(self._pending)
        if unclosed is not None:
            return unclosed
        if self.collect_followups and self._pending.endswith("<"):
            return len(self._pending) - 1
        return len(self._pending)

    def _release(self, length: int) -> str:
        released, self._pending = self._pending[:length], self._pending[length:]
        return citations.rewrite_bracketed(released, self._checked_citation)

    def _checked_citation(self, token: str) -> str | None:
        """The citation to write for a bracketed token, "" to drop it, None to leave it as it is."""
        if token in self.citations:
            return token
        if token in self.first_citation_of_source:  # cited the file without a page
            return self.first_citation_of_source[token]
        if citations.mentions_page(token):  # a citation of something that was not retrieved
            return ""
        return None  # ordinary bracketed text
