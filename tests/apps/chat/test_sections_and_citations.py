"""Citations name the section: Markdown and HTML chunks carry their heading path and cite its anchor,
PDFs and plain text keep "#page=n", and each citation names exactly one passage."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from apps.chat import citations
from apps.chat.documents import Page, parse_document, split_into_chunks
from apps.chat.search import SearchResult, one_per_citation

from .conftest import ingest
from .fake_openai import SOURCE_LINE

HANDBOOK = """Read this first.

# Handbook

## Leave

Annual leave is twenty-five days. Ask your manager before booking the handbook leave.

## Expenses & receipts

Expense claims need receipts. The handbook says claims are paid monthly.

### Travel

Trains are booked in second class.

## Leave

Sick leave starts on the first day.

```mermaid
flowchart LR
  claim --> manager
```

```sh
make expenses
```

| Claim | Paid |
| --- | --- |
| Taxi | monthly |
"""


def test_markdown_sections_carry_their_heading_path_and_a_github_anchor():
    parsed = parse_document(Path("handbook.md"), HANDBOOK.encode())

    assert parsed.title == "Handbook"
    assert [(page.section, page.anchor) for page in parsed.pages] == [
        ((), ""),  # before the first heading: cited by page
        (("Handbook", "Leave"), "leave"),
        (("Handbook", "Expenses & receipts"), "expenses--receipts"),
        (("Handbook", "Expenses & receipts", "Travel"), "travel"),
        (("Handbook", "Leave"), "leave-1"),  # a repeated heading, as GitHub numbers it
    ]
    last = parsed.pages[-1].text
    assert "flowchart" not in last and "-->" not in last  # diagram source is no text
    assert "```sh\nmake expenses\n```" in last  # code stays, fenced, naming its language
    assert "| Taxi | monthly |" in last  # a table row is one line
    chunks = split_into_chunks(parsed.pages, chunk_size=400, overlap=50)
    assert {(chunk.section, chunk.anchor) for chunk in chunks} == {(page.section, page.anchor) for page in parsed.pages}
    assert all(chunk.content.startswith(chunk.section[-1]) for chunk in chunks if chunk.section)


def test_html_keeps_word_boundaries_between_block_elements_and_uses_heading_ids():
    html = (
        b'<html><head><title>Welcome</title></head><body><nav><a href="/">Home</a> | <a href="/about">About</a>'
        b'</nav><main><h1 id="checklist">Onboarding checklist</h1><section><div>First</div><div>Second</div>'
        b"</section><table><tr><th>Day</th><th>Task</th></tr><tr><td>Monday</td><td>Laptop</td></tr></table>"
        b'<h2 id="has space">Your first <em>week</em></h2><p>Meet the <b>team</b>.</p><aside>Tip</aside>'
        b'<figure><figcaption>Map</figcaption></figure><footer>Contact</footer><div class="mermaid">graph</div>'
        b"</main></body></html>"
    )

    parsed = parse_document(Path("welcome.html"), html)

    assert parsed.title == "Welcome"
    text = "\n".join(page.text for page in parsed.pages)
    words = text.split()
    for word in ["About", "Onboarding", "First", "Second", "Tip", "Map", "Contact"]:
        assert word in words, (word, text)
    assert "Meet the team." in text  # inline elements stay inside their sentence
    assert "| Day | Task |" in text and "| Monday | Laptop |" in text
    assert "graph" not in words
    assert [(page.section, page.anchor) for page in parsed.pages] == [
        ((), ""),
        (("Onboarding checklist",), "checklist"),  # the heading's own id
        (("Onboarding checklist", "Your first week"), "your-first-week"),  # an id no anchor can be
    ]


def test_the_citation_format_written_and_read():
    assert citations.citation("handbook/leave.pdf", 3) == "handbook/leave.pdf#page=3"
    assert citations.citation("docs/guide.md", 1, "run-it-locally") == "docs/guide.md#run-it-locally"
    assert citations.parse("docs/guide.md#run-it-locally") == citations.Citation(
        "docs/guide.md", section="run-it-locally"
    )
    assert citations.parse("c#/notes.md#page=2") == citations.Citation("c#/notes.md", page=2)
    assert citations.parse("docs/été.md#café-1") == citations.Citation("docs/été.md", section="café-1")
    for text in ["C#", "issue#12", "see docs#setup", "guide.md", "guide.md#page=x", "guide.md#two words"]:
        assert citations.parse(text) is None, text
    assert citations.split_citation("docs/a.md#page=2") == ("docs/a.md", 2)  # as before sections
    assert citations.split_citation("docs/a.md#setup") == ("docs/a.md", None)
    assert citations.citation_of_data_point("a: b/c.md#setup: passage: more") == "a: b/c.md#setup"
    assert citations.cited("Yes [docs/a.md#setup], [C#] and [docs/b.pdf#page=2].") == [
        "docs/a.md#setup",
        "docs/b.pdf#page=2",
    ]
    assert citations.slug("Run it locally (no cloud, no setup)") == "run-it-locally-no-cloud-no-setup"


@pytest.mark.parametrize(
    ("cited", "target", "refers"),
    [
        ("docs/guide.md#setup", "guide.md", True),
        ("docs/guide.md#setup", "docs/guide.md#setup", True),
        ("docs/guide.md#setup", "guide.md#install", False),
        ("docs/guide.md#setup", "guide.md#page=1", True),  # a truth written before sections
        ("docs/guide.md#setup", "guide.md#page=2", False),
        ("docs/guide.pdf#page=2", "guide.pdf#page=2", True),
        ("docs/guide.pdf#page=2", "guide.pdf#setup", False),
        ("docs/my-guide.md#setup", "guide.md", False),
    ],
)
def test_a_citation_refers_to_its_document_page_and_section(cited, target, refers):
    assert citations.refers_to(cited, target) is refers


def test_the_chunks_of_one_citation_become_one_passage_without_repeating_their_overlap():
    text = " ".join(f"Sentence number {n} is here." for n in range(60))
    chunks = split_into_chunks([Page(1, text, ("Guide", "Setup"), "setup")], chunk_size=300, overlap=60)
    results = [
        SearchResult(n, "Guide", "docs/guide.md", 1, chunk.content, 1.0 / (n + 1), chunk.anchor, chunk.section, n)
        for n, chunk in enumerate(chunks)
    ]
    other = SearchResult(99, "Guide", "docs/guide.md", 1, "Another section.", 0.5, "install", ("Guide",), 99)
    # Ranked: the third chunk, another section, then the first two chunks and the last one.
    ranked = [results[2], other, results[0], results[1], results[-1]]

    joined = one_per_citation(ranked)

    assert [result.citation for result in joined] == ["docs/guide.md#setup", "docs/guide.md#install"]
    assert joined[0].score == results[2].score
    first_three = text[: text.index(chunks[2].content) + len(chunks[2].content)]
    assert joined[0].content == first_three + "\n…\n" + chunks[-1].content


def test_each_section_is_a_data_point_of_its_own_and_the_model_cites_sections(
    make_settings, handbook_in_corpus, start_app, fake_openai
):
    settings = make_settings()
    asyncio.run(ingest(settings, [handbook_in_corpus]))
    fake_openai.state.reply = lambda messages: (
        "Receipts [corpus/handbook.md#expenses], not [corpus/handbook.md#payroll], see [corpus/handbook.md]."
    )
    with start_app(settings) as app:
        body = app.client.post(
            "/chat", json={"messages": [{"role": "user", "content": "What does the handbook say?"}]}
        ).json()

    passages = dict(text.split(": ", 1) for text in body["context"]["data_points"]["text"])
    handbook = {key: passage for key, passage in passages.items() if key.startswith("corpus/handbook.md")}
    assert handbook == {
        "corpus/handbook.md#leave": "Leave\nThe handbook grants twenty-five days of annual leave.",
        "corpus/handbook.md#expenses": "Expenses\nThe handbook says expense claims need receipts and are paid monthly.",
        "corpus/handbook.md#equipment": "Equipment\nThe handbook renews laptops every three years.",
    }
    # A retrieved section stays, one that was not is dropped, the file alone becomes its best section.
    content = body["message"]["content"]
    assert content.startswith("Receipts [corpus/handbook.md#expenses], not , see [corpus/handbook.md#")
    assert set(citations.cited(content)) <= set(passages)
    prompt = fake_openai.requests_to("/chat/completions")[-1].body["messages"][-1]["content"]
    assert set(SOURCE_LINE.findall(prompt)) == set(passages)


def test_search_results_name_their_section(make_settings, handbook_in_corpus, start_app):
    settings = make_settings()
    asyncio.run(ingest(settings, [handbook_in_corpus]))
    with start_app(settings) as app:
        results = app.client.get("/api/search", params={"q": "expense claims receipts", "top": 1}).json()["results"]

    assert results[0]["citation"] == "corpus/handbook.md#expenses"
    assert results[0]["section"] == ["Handbook", "Expenses"]


def test_pdf_passages_keep_citing_their_page(make_settings, tmp_path, start_app):
    from .test_ingest import make_pdf

    pdf = tmp_path / "handbook" / "rules.pdf"
    pdf.parent.mkdir()
    pdf.write_bytes(make_pdf(["Welcome to the handbook.", "Overtime is paid at one and a half times the rate."]))
    settings = make_settings()
    asyncio.run(ingest(settings, [pdf]))
    with start_app(settings) as app:
        results = app.client.get("/api/search", params={"q": "overtime rate", "top": 1}).json()["results"]

    assert results[0]["citation"] == "handbook/rules.pdf#page=2"
    assert results[0]["section"] == []
