"""The answer given without a model: the whole sentences of the passages found that best match the question.

A passage is cut into sentences after leaving out what is not prose: code and diagram blocks (between
``` fences, see documents.py), table rows ("| a | b |"), and lines that end without a full stop
(headings, list fragments, a sentence the chunk cut off). HTML tags and Markdown marks that plain text
files may hold are taken out of the sentences kept.

A sentence scores the summed weight of the question's words it holds, a word weighing more the fewer
sentences hold it (as in a search engine). The sentences scoring at least two thirds of the best score are kept,
MAX_SENTENCES at the most; they are written per passage, in the passages' order, each passage's
sentences in their own order followed by its citation.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from . import citations
from .documents import CODE_FENCE as FENCE

MAX_SENTENCES = 6
MIN_WORDS, MAX_WORDS = 3, 60
# Sentences scoring below this share of the best one are left out: they share only some of the question's
# commoner words.
RELATIVE_SCORE = 2 / 3

# fmt: off
# Function words; words that carry meaning in a technical question ("down", "up", "before") are kept.
STOPWORDS = frozenset({
    "a", "about", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be", "because", "been", "being",
    "both", "but", "by", "can", "could", "did", "do", "does", "doing", "done", "each", "few", "for", "from", "get",
    "gets", "got", "had", "has", "have", "having", "he", "her", "here", "hers", "him", "his", "how", "i", "if",
    "in", "into", "is", "it", "its", "itself", "just", "let", "me", "more", "most", "my", "no", "nor", "not", "now",
    "of", "on", "only", "or", "other", "our", "own", "please", "same", "she", "should", "so", "some", "such",
    "tell", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "those", "through",
    "to", "too", "very", "want", "was", "we", "were", "what", "when", "where", "which", "while", "who", "whom",
    "why", "will", "with", "would", "you", "your",
})
# fmt: on
WORD = re.compile(r"[^\W_]+")
MARKUP = [
    (re.compile(r"<[^<>\n]{1,200}>"), ""),  # HTML tags
    (re.compile(r"!?\[([^\[\]\n]*)\]\([^()\s]*\)"), r"\1"),  # Markdown links and images: their text
    (re.compile(r"(\*\*|__|`)"), ""),  # bold, inline code marks
    (re.compile(r"^\s*(?:#{1,6}\s+|>\s*|[-*+]\s+|\d{1,3}[.)]\s+)"), ""),  # heading, quote, list marks
]
# Where a paragraph splits into sentences: after . ! or ? (and closing quotes), before a capital or digit.
SENTENCE_BREAK = re.compile(r"(?<=[.!?])[\"'”’)]*\s+(?=[\"'“‘(]?[A-Z0-9])")
WHOLE_SENTENCE_END = re.compile(r"[.!?][\"'”’)]*$")
# A line ending so is cut mid-sentence (a line ending in ":" or ";" introduces or ends a list item).
MID_SENTENCE_END = re.compile(r"[\w,]$")


@dataclass
class _Sentence:
    text: str
    passage: int  # the passage's rank
    position: int  # its place in the passage
    terms: frozenset[str]
    score: float = 0.0


def best_sentences(question: str, passages: list[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """For (citation, passage text) pairs in rank order: (citation, its chosen sentences) for each
    passage that has some, in the same order."""
    question_terms = terms(question)
    found = [
        _Sentence(text, rank, position, terms(text) & question_terms)
        for rank, (_, passage) in enumerate(passages)
        for position, text in enumerate(sentences(passage))
    ]
    holding = {term: sum(term in sentence.terms for sentence in found) for term in question_terms}
    for sentence in found:
        sentence.score = sum(math.log(1 + len(found) / holding[term]) for term in sentence.terms)
    best = max((sentence.score for sentence in found), default=0.0)
    if best <= 0:
        return []
    kept = sorted(
        (sentence for sentence in found if sentence.score >= RELATIVE_SCORE * best),
        key=lambda sentence: (-sentence.score, sentence.passage, sentence.position),
    )[:MAX_SENTENCES]
    kept.sort(key=lambda sentence: (sentence.passage, sentence.position))
    chosen: dict[int, list[str]] = {}
    for sentence in kept:
        chosen.setdefault(sentence.passage, []).append(sentence.text)
    return [(passages[rank][0], texts) for rank, texts in chosen.items()]


def readable_answer(notice: str, question: str, passages: list[tuple[str, str]]) -> str:
    """The notice, then one line per passage with sentences that match: the sentences and the citation."""
    chosen = best_sentences(question, passages)
    if not chosen:
        sources = " ".join(citations.in_brackets(citation) for citation, _ in passages)
        return f"{notice}\n\nNo whole sentence of the passages found holds the question's words; they are in {sources}"
    lines = [f"- {' '.join(texts)} {citations.in_brackets(citation)}" for citation, texts in chosen]
    return notice + "\n\n" + "\n".join(lines)


def terms(text: str) -> frozenset[str]:
    """The words of a text that carry meaning, lower case and roughly stemmed ("opens" -> "open")."""
    return frozenset(_stem(word) for word in WORD.findall(text.lower()) if word not in STOPWORDS)


def sentences(passage: str) -> list[str]:
    """The whole sentences of a passage's prose, without markup."""
    found = []
    for paragraph in _prose(passage):
        for sentence in SENTENCE_BREAK.split(paragraph):
            sentence = sentence.strip().replace("[", "(").replace("]", ")")  # never mistaken for a citation
            words = len(sentence.split())
            if (
                MIN_WORDS <= words <= MAX_WORDS
                and (sentence[0].isupper() or sentence[0].isdigit() or sentence[0] in "\"'“‘(")
                and WHOLE_SENTENCE_END.search(sentence)
            ):
                found.append(sentence)
    return found


def _prose(passage: str) -> list[str]:
    """The passage's paragraphs of prose: code blocks and table rows left out, markup taken out, lines
    that a hard line break split joined again."""
    lines = passage.splitlines()
    fences = [line.strip() for line in lines if line.strip().startswith(FENCE)]
    # A passage may start inside a code block: its first fence is then a bare closing one (opening
    # fences name a language, see documents.py).
    in_code = bool(fences) and fences[0] == FENCE
    paragraphs: list[str] = []
    for raw in lines:
        line = raw.strip()
        if line.startswith(FENCE):
            in_code = not in_code
            continue
        if in_code or not line or (line.startswith("|") and line.endswith("|")):
            if paragraphs and paragraphs[-1]:
                paragraphs.append("")
            continue
        for pattern, replacement in MARKUP:
            line = pattern.sub(replacement, line)
        line = " ".join(line.split())
        if paragraphs and MID_SENTENCE_END.search(paragraphs[-1]) and line[:1].islower():
            paragraphs[-1] += " " + line  # a sentence that a hard line break split (plain text, PDF)
        else:
            paragraphs.append(line)
    return [paragraph for paragraph in paragraphs if paragraph]


def _stem(word: str) -> str:
    """A rough English stem, enough to match "opens", "opened" and "opening" with "open"."""
    if len(word) <= 3 or word.isdigit():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    for suffix in ("ing", "ed"):
        stem = word[: -len(suffix)]
        if word.endswith(suffix) and len(stem) >= 3:
            if stem[-1] == stem[-2] and stem[-1] not in "lsz":  # "running" -> "run"
                stem = stem[:-1]
            return stem
    if word.endswith("ly") and len(word) > 5:
        return word[:-2]
    if word.endswith(("sses", "xes", "ches", "shes", "zes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word
