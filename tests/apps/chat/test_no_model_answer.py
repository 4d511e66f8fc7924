"""Without a model the answer is readable: whole sentences that match the question, without markup or
diagram source, each passage's with its citation, under a first line that says no model is configured."""

from __future__ import annotations

import asyncio
import re

from apps.chat.chat import NO_MODEL_NOTICE
from apps.chat.citations import cited
from apps.chat.sentences import best_sentences, readable_answer, sentences

from .conftest import ingest

GUIDE = """# Chat app

## Run it locally

You can run the chat app locally with one command. It needs no cloud account.
The embedded PostgreSQL starts with it.

```sh
pip install -r apps/chat/requirements-local.txt
python -m apps.chat serve   # runs the chat app locally
```

```mermaid
flowchart LR
  browser --> app["chat app, run locally"]
```

| Setting | What it does when you run the chat app locally |
| --- | --- |
| `PORT` | The port the local chat app runs on. |

<div class="note">Run the app <b>locally</b> only on your own machine.</div>
"""
OFF_TOPIC = {
    "billing.md": "# Billing\n\nThe app sends invoices every month. Invoices list each team's usage.\n",
    "mobile.md": "# Mobile\n\nThe mobile app shows your chat history. Notifications arrive at once.\n",
    "history.txt": "The company was founded in 1999. Its first app was a spreadsheet.\n",
}


def test_sentences_are_whole_and_free_of_markup_code_tables_and_diagrams():
    passage = (
        "ning the tool is easy. Run the tool with `make run`.\n"  # the chunk starts mid-word, mid-sentence
        "```sh\nmake run\n```\n"
        "| Option | Meaning |\n"
        "Install it first: see the **setup** [guide](setup.md) and <em>notes</em>.\n"
        "- Ask for [help] when stuck.\n"
        "This last sentence is cut off by the end of the"
    )
    assert sentences(passage) == [
        "Run the tool with make run.",
        "Install it first: see the setup guide and notes.",
        "Ask for (help) when stuck.",  # brackets never look like a citation
    ]


def test_a_passage_that_starts_inside_a_code_block_leaves_that_code_out():
    passage = "serve --port 8000\n```\nThe server listens on port 8000 by default.\n```python\nprint('x')\n```"
    assert sentences(passage) == ["The server listens on port 8000 by default."]


def test_lines_that_a_hard_line_break_split_are_joined_back_into_sentences():
    passage = "Expense reports must be filed within thirty\ndays of the trip. Receipts are required.\n"
    assert sentences(passage) == [
        "Expense reports must be filed within thirty days of the trip.",
        "Receipts are required.",
    ]


def test_sentences_sharing_only_a_common_word_with_the_question_are_left_out():
    passages = [
        ("a.md#intro", "The chat app stores documents. You run the chat app locally with one command."),
        ("b.md#other", "The app sends invoices every month."),
        ("c.md#more", "Run it locally before you deploy the chat app."),
    ]

    chosen = best_sentences("How do I run the chat app locally?", passages)

    assert chosen == [
        ("a.md#intro", ["You run the chat app locally with one command."]),
        ("c.md#more", ["Run it locally before you deploy the chat app."]),
    ]


def test_passages_without_a_matching_sentence_are_still_named():
    answer = readable_answer(NO_MODEL_NOTICE, "zebra", [("a.md#page=1", "Nothing about it here.")])
    assert answer.startswith(NO_MODEL_NOTICE + "\n\n")
    assert cited(answer) == ["a.md#page=1"]


def test_without_a_model_the_answer_is_the_sentences_that_answer_the_question(make_settings, corpus_dir, start_app):
    (corpus_dir / "guide.md").write_text(GUIDE)
    for name, text in OFF_TOPIC.items():
        (corpus_dir / name).write_text(text)
    settings = make_settings(openai_base_url=None, chunk_size=1000, chunk_overlap=100)
    asyncio.run(ingest(settings, [corpus_dir]))

    with start_app(settings) as app:
        body = app.client.post(
            "/chat", json={"messages": [{"role": "user", "content": "How do I run the chat app locally?"}]}
        ).json()

    content = body["message"]["content"]
    first_line, blank, *answer_lines = content.splitlines()
    assert first_line == NO_MODEL_NOTICE and first_line.startswith("No language model is configured")
    assert blank == ""
    assert answer_lines == [
        "- You can run the chat app locally with one command. Run the app locally only on your own machine."
        " [corpus/guide.md#run-it-locally]"
    ]
    # The passages found include the off-topic ones, whose sentences share only "app" with the question.
    assert len(body["context"]["data_points"]["text"]) > 1
    for markup in ["```", "|", "<", "flowchart", "-->", "pip install", "**", "`"]:
        assert markup not in content, markup
    assert all(re.search(r"\.\s\[[^\]]+\]$", line) for line in answer_lines)
