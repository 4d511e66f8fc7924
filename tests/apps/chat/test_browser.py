"""The chat page in a real browser: headless Chromium (Debian's /usr/bin/chromium) driven by Playwright.

Playwright never downloads a browser here; it launches the system one. Outside CI the tests are skipped
when that browser or the playwright package is missing; in CI (CI=true) that is a failure instead.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from .fake_openai import SOURCE_LINE
from .test_sections_and_citations import write_handbook

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 20_000


def missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (required in CI)")
    pytest.skip(reason)


@pytest.fixture
def page(served_chat_app):
    """A fresh browser page on the served app; fails the test on any script error in the page.

    Function-scoped and started after served_chat_app on purpose: Playwright's sync API keeps an event
    loop running in this thread, and the app fixture needs asyncio.run() to ingest its corpus first."""
    if not CHROMIUM.exists():
        missing(f"{CHROMIUM} is missing; install it with: apt-get install -y chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("the playwright package is missing; install requirements-dev.txt")
    script_errors = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.set_default_timeout(TIMEOUT_MS)
        page.on("pageerror", lambda error: script_errors.append(str(error)))
        page.goto(served_chat_app.base_url + "/")
        yield page
        if os.environ.get("CHAT_SCREENSHOT"):  # for looking at the page while developing it
            page.screenshot(path=os.environ["CHAT_SCREENSHOT"], full_page=True)
        browser.close()
    assert not script_errors, f"errors in the page's scripts: {script_errors}"


def ask(page, question: str):
    """Type a question, send it, and return the answer's message once its stream has finished."""
    from playwright.sync_api import expect

    page.get_by_label("Your question").fill(question)
    page.get_by_role("button", name="Send").click()
    answer = page.locator("li.message.assistant").last
    expect(answer).to_have_attribute("aria-busy", "false")
    return answer


def record_chat_requests(page) -> list[dict]:
    """The bodies the page sends to /chat/stream, in order."""
    sent = []
    page.on(
        "request",
        lambda request: sent.append(json.loads(request.post_data)) if request.url.endswith("/chat/stream") else None,
    )
    return sent


def test_a_streamed_answer_shows_the_passage_of_a_clicked_citation(page, fake_openai):
    from playwright.sync_api import expect

    answer = ask(page, "How many vacation days do employees get?")

    # The fake model cites the first passage it was given; the search ranks vacation.md first.
    expect(answer.locator(".message-text")).to_contain_text("The documents answer this.")
    citation = answer.locator("button.citation").first
    expect(citation).to_have_attribute("data-source", re.compile(r"vacation\.md#vacation-policy$"))
    expect(page.locator("#passage-panel")).to_be_hidden()

    citation.click()

    expect(page.locator("#passage-panel")).to_be_visible()
    expect(page.locator("#passage-source")).to_have_text(re.compile(r"vacation\.md#vacation-policy$"))
    expect(page.locator("#passage-text")).to_contain_text("twenty-five days of paid vacation")
    # The page asked for the streamed answer, and the app streamed it from the model.
    assert fake_openai.requests_to("/chat/completions")[-1].body.get("stream") is True


def test_the_conversation_and_session_state_go_back_with_the_next_question(page):
    sent = record_chat_requests(page)

    ask(page, "How many vacation days do employees get?")
    ask(page, "And when does the car park open?")

    assert [m["role"] for m in sent[1]["messages"]] == ["user", "assistant", "user"]
    # The answer goes back as the model wrote it, citations in brackets, not as displayed.
    assert re.search(
        r"See the first source \[\S*vacation\.md#vacation-policy\] for details\.$", sent[1]["messages"][1]["content"]
    )
    assert "session_state" in sent[1]
    assert page.locator("li.message.assistant button.citation").count() >= 2


def test_the_page_works_from_the_keyboard(page):
    from playwright.sync_api import expect

    page.get_by_label("Your question").fill("When does the car park open?")
    page.keyboard.press("Enter")  # Enter sends; Shift+Enter would start a new line
    answer = page.locator("li.message.assistant").last
    expect(answer).to_have_attribute("aria-busy", "false")

    citation = answer.locator("button.citation").first
    citation.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#passage-text")).to_contain_text("car park opens at seven")
    expect(page.locator("#passage-title")).to_be_focused()

    page.keyboard.press("Escape")
    expect(page.locator("#passage-panel")).to_be_hidden()
    expect(citation).to_be_focused()


def test_an_app_error_is_shown_to_the_user(page, fake_openai):
    from playwright.sync_api import expect

    sent = record_chat_requests(page)
    fake_openai.fail_next(500, times=100, retry_after="0")

    answer = ask(page, "How many vacation days do employees get?")

    alert = answer.get_by_role("alert")
    expect(alert).to_contain_text("unavailable")
    expect(alert).to_contain_text("(503)")

    # The failed turn is not kept in the conversation: the next question goes out alone.
    fake_openai.reset()
    ask(page, "When does the car park open?")
    assert [m["content"] for m in sent[-1]["messages"]] == ["When does the car park open?"]


def test_stop_ends_the_answer_and_the_upstream_request(page, fake_openai):
    from playwright.sync_api import expect

    fake_openai.state.stream_delay = 0.05
    fake_openai.state.stream_repeat = 400  # a long answer: tens of seconds unless someone stops it

    page.get_by_label("Your question").fill("How many vacation days do employees get?")
    page.get_by_role("button", name="Send").click()
    answer = page.locator("li.message.assistant").last
    expect(answer.locator("button.citation").first).to_be_visible()  # the answer is streaming in
    page.get_by_role("button", name="Stop").click()

    expect(answer.locator(".status")).to_have_text("Stopped.")
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    assert fake_openai.wait_for_disconnect(timeout=10), "the app kept reading the model's stream"


def test_a_new_conversation_started_mid_answer_forgets_the_old_one(page, fake_openai):
    from playwright.sync_api import expect

    sent = record_chat_requests(page)
    fake_openai.state.stream_delay = 0.05
    fake_openai.state.stream_repeat = 400
    page.get_by_label("Your question").fill("How many vacation days do employees get?")
    page.get_by_role("button", name="Send").click()
    expect(page.locator("li.message.assistant button.citation").first).to_be_visible()

    page.get_by_role("button", name="New conversation").click()
    expect(page.locator("li.message")).to_have_count(0)
    fake_openai.reset()
    ask(page, "When does the car park open?")

    assert [m["content"] for m in sent[-1]["messages"]] == ["When does the car park open?"]
    assert sent[-1]["session_state"] is None
    expect(page.locator("li.message")).to_have_count(2)


@pytest.fixture
def handbook_in_corpus(corpus_dir):
    """Requested before `page`, so that the served app ingests it with the corpus."""
    write_handbook(corpus_dir)


def test_the_panel_shows_exactly_the_cited_passage_of_a_section(handbook_in_corpus, page, fake_openai):
    """handbook.md has three sections that all match the question: each citation opens its own passage."""
    from playwright.sync_api import expect

    def cite_two_sections(messages: list[dict]) -> str:
        sources = SOURCE_LINE.findall(messages[-1]["content"])
        expenses, leave = (next(s for s in sources if s.endswith(anchor)) for anchor in ("#expenses", "#leave"))
        return f"Claims need receipts [{expenses}]. Leave is twenty-five days [{leave}]."

    fake_openai.state.reply = cite_two_sections
    answer = ask(page, "What does the handbook say?")
    expenses, leave = answer.locator("button.citation").nth(0), answer.locator("button.citation").nth(1)
    expect(expenses).to_have_attribute("data-source", "corpus/handbook.md#expenses")

    expenses.click()
    expect(page.locator("#passage-source")).to_have_text("corpus/handbook.md#expenses")
    expect(page.locator("#passage-text p")).to_have_text(
        ["Expenses\nThe handbook says expense claims need receipts and are paid monthly."]
    )

    leave.click()
    expect(page.locator("#passage-source")).to_have_text("corpus/handbook.md#leave")
    expect(page.locator("#passage-text p")).to_have_text(
        ["Leave\nThe handbook grants twenty-five days of annual leave."]
    )
