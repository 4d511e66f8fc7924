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
    page.get_by_role("button", name="Send", exact=True).click()
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
    page.get_by_role("button", name="Send", exact=True).click()
    answer = page.locator("li.message.assistant").last
    expect(answer.locator("button.citation").first).to_be_visible()  # the answer is streaming in
    page.get_by_role("button", name="Stop", exact=True).click()

    expect(answer.locator(".status")).to_have_text("Stopped.")
    expect(page.get_by_role("button", name="Send", exact=True)).to_be_enabled()
    assert fake_openai.wait_for_disconnect(timeout=10), "the app kept reading the model's stream"


def test_a_new_conversation_started_mid_answer_forgets_the_old_one(page, fake_openai):
    from playwright.sync_api import expect

    sent = record_chat_requests(page)
    fake_openai.state.stream_delay = 0.05
    fake_openai.state.stream_repeat = 400
    page.get_by_label("Your question").fill("How many vacation days do employees get?")
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.locator("li.message.assistant button.citation").first).to_be_visible()

    page.get_by_role("button", name="New conversation", exact=True).click()
    expect(page.locator("li.message")).to_have_count(0)
    fake_openai.reset()
    ask(page, "When does the car park open?")

    assert [m["content"] for m in sent[-1]["messages"]] == ["When does the car park open?"]
    assert sent[-1]["session_state"] is None
    expect(page.locator("li.message")).to_have_count(2)


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


# ---- The richer page (issue 13, point 5) ----
# The tests below drive the real app. Those of the sidebar, the example questions and the feedback need
# its endpoints GET/PATCH/DELETE /api/conversations, GET /api/examples and POST /api/feedback.


def sources_in(messages: list[dict]) -> list[str]:
    return SOURCE_LINE.findall(messages[-1]["content"]) if messages else []


def markdown_with_hostile_html(messages: list[dict]) -> str:
    """Markdown citing the first source, with HTML and a javascript: link a page must not bring to life."""
    sources = sources_in(messages)
    if not sources:  # not the answer's request (e.g. a query rewrite): a plain query
        return messages[-1]["content"] if messages else ""
    return (
        "## Vacation\n\n"
        f"Employees get **twenty-five days** of *paid* vacation [{sources[0]}].\n\n"
        "- Book it in `the portal`\n"
        "- Tell your manager\n\n"
        "1. Plan\n"
        "2. Rest\n\n"
        "Read [the policy](https://intranet.example/policy) or [tap here](javascript:window.__pwned=3).\n\n"
        "<script>window.__pwned = 1</script>\n\n"
        '<img src="x" onerror="window.__pwned = 2"> <b onmouseover="window.__pwned = 4">bold?</b>\n'
    )


def test_answers_are_rendered_as_markdown_and_model_html_stays_text(page, fake_openai):
    from playwright.sync_api import expect

    fake_openai.state.reply = markdown_with_hostile_html
    answer = ask(page, "How many vacation days do employees get?")
    text = answer.locator(".message-text")

    expect(text.locator("strong").first).to_have_text("Vacation")  # the heading
    expect(text.locator("strong").nth(1)).to_have_text("twenty-five days")
    expect(text.locator("em")).to_have_text("paid")
    expect(text.locator("ul > li")).to_have_text(["Book it in the portal", "Tell your manager"])
    expect(text.locator("ul code")).to_have_text("the portal")
    expect(text.locator("ol > li")).to_have_text(["Plan", "Rest"])
    link = text.get_by_role("link", name="the policy")
    expect(link).to_have_attribute("href", "https://intranet.example/policy")
    expect(link).to_have_attribute("rel", re.compile(r"\bnoopener\b"))

    # The model's HTML is shown as text: no element, no handler, no script run; the javascript: link is text.
    expect(text).to_contain_text("<script>window.__pwned = 1</script>")
    expect(text).to_contain_text('<img src="x" onerror="window.__pwned = 2">')
    expect(text).to_contain_text("tap here")
    for selector in ("script", "img", "b", "[onerror]", "[onmouseover]", "a[href^='javascript']"):
        expect(answer.locator(selector)).to_have_count(0)
    text.hover()
    assert page.evaluate("typeof window.__pwned") == "undefined"

    # The citation inside the Markdown still opens exactly its passage.
    text.locator("button.citation").click()
    expect(page.locator("#passage-source")).to_have_text(re.compile(r"vacation\.md#vacation-policy$"))
    expect(page.locator("#passage-text")).to_contain_text("twenty-five days of paid vacation")


def test_the_thought_process_tab_shows_the_query_retrieval_mode_and_timings(page):
    from playwright.sync_api import expect

    answer = ask(page, "How many vacation days do employees get?")
    tab = answer.get_by_role("tab", name="Thought process")
    panel = answer.get_by_role("tabpanel", name="Thought process")
    expect(panel).to_be_hidden()

    tab.click()

    expect(tab).to_have_attribute("aria-selected", "true")
    expect(panel).to_be_visible()
    expect(answer.locator(".message-text")).to_be_hidden()
    query = panel.locator(".thought").filter(has=page.locator(".thought-title", has_text="Search query"))
    expect(query).to_contain_text("vacation")  # the (rewritten) search query
    expect(query).to_contain_text("hybrid")  # the retrieval mode
    expect(panel).to_contain_text(re.compile(r"timing|\d\s*ms\b|seconds", re.IGNORECASE))

    # The tabs work from the keyboard: arrow keys move between them.
    page.keyboard.press("ArrowLeft")
    expect(answer.get_by_role("tab", name="Answer")).to_be_focused()
    expect(answer.locator(".message-text")).to_be_visible()


def test_the_supporting_content_tab_shows_the_retrieved_passages(page):
    from playwright.sync_api import expect

    answer = ask(page, "How many vacation days do employees get?")
    answer.get_by_role("tab", name="Supporting content").click()

    panel = answer.get_by_role("tabpanel", name="Supporting content")
    expect(panel).to_be_visible()
    first = panel.locator(".supporting-item").first
    expect(first.locator(".supporting-source")).to_have_text(re.compile(r"vacation\.md#vacation-policy$"))
    expect(first.locator(".supporting-text")).to_contain_text("twenty-five days of paid vacation")

    answer.get_by_role("tab", name="Answer").click()
    expect(answer.locator(".message-text")).to_contain_text("The documents answer this.")
    expect(panel).to_be_hidden()


def test_example_questions_on_the_empty_page_ask_themselves(page):
    """Needs GET /api/examples."""
    from playwright.sync_api import expect

    sent = record_chat_requests(page)
    examples = page.get_by_role("list", name="Example questions")
    first = examples.get_by_role("button").first
    expect(first).to_be_visible()
    question = first.inner_text().strip()
    assert question

    first.click()

    answer = page.locator("li.message.assistant").last
    expect(answer).to_have_attribute("aria-busy", "false")
    assert sent[-1]["messages"] == [{"role": "user", "content": question}]
    expect(page.locator("li.message.user .message-text")).to_have_text([question])
    expect(examples).to_be_hidden()
    page.get_by_role("button", name="New conversation", exact=True).click()
    expect(examples.get_by_role("button").first).to_be_visible()


def current_conversation(page):
    """The sidebar's entry of the conversation on the page."""
    return page.locator("li.history-item").filter(has=page.locator("[aria-current='true']"))


def test_the_history_sidebar_resumes_renames_and_deletes_conversations(page):
    """Needs GET, PATCH and DELETE /api/conversations and the conversation id as session_state."""
    from playwright.sync_api import expect

    sent = record_chat_requests(page)
    sidebar = page.get_by_role("navigation", name="Conversations")
    expect(sidebar).to_be_visible()

    ask(page, "How many vacation days do employees get?")
    expect(current_conversation(page)).to_have_count(1)
    vacation_id = current_conversation(page).get_attribute("data-conversation-id")
    page.get_by_role("button", name="New conversation", exact=True).click()
    ask(page, "When does the car park open?")
    expect(current_conversation(page)).to_have_count(1)
    parking_id = current_conversation(page).get_attribute("data-conversation-id")
    assert parking_id != vacation_id
    vacation = sidebar.locator(f"li[data-conversation-id='{vacation_id}']")
    parking = sidebar.locator(f"li[data-conversation-id='{parking_id}']")

    # Resume: the stored conversation comes back, and the next question continues it.
    vacation.locator("button.history-open").click()
    expect(page.locator("li.message.user .message-text")).to_have_text(["How many vacation days do employees get?"])
    expect(page.locator("li.message.assistant button.citation")).to_have_count(1)
    expect(vacation.locator("button.history-open")).to_have_attribute("aria-current", "true")
    ask(page, "And do unused days carry over?")
    assert [m["role"] for m in sent[-1]["messages"]] == ["user", "assistant", "user"]
    assert sent[-1]["messages"][0]["content"] == "How many vacation days do employees get?"
    assert str(sent[-1]["session_state"]) == vacation_id

    # Rename, from the keyboard.
    vacation.get_by_role("button", name=re.compile("^Rename")).click()
    title = vacation.get_by_label("New title")
    expect(title).to_be_focused()
    title.fill("Vacation questions")
    page.keyboard.press("Enter")
    expect(vacation.locator(".history-title")).to_have_text("Vacation questions")

    # Delete, after confirming.
    parking.get_by_role("button", name=re.compile("^Delete")).click()
    parking.get_by_role("button", name=re.compile("^Yes, delete")).click()
    expect(parking).to_have_count(0)

    # The server kept the rename and the deletion.
    page.reload()
    expect(sidebar.locator("li.history-item")).to_have_count(1)
    expect(vacation.locator(".history-title")).to_have_text("Vacation questions")


def test_thumbs_down_with_a_comment_reaches_the_feedback_endpoint(page):
    """Needs POST /api/feedback and the conversation id as session_state."""
    from playwright.sync_api import expect

    answer = ask(page, "How many vacation days do employees get?")
    conversation_id = current_conversation(page).get_attribute("data-conversation-id")
    down = answer.get_by_role("button", name="Bad answer")

    down.click()

    expect(down).to_have_attribute("aria-pressed", "true")
    comment = answer.get_by_label("Comment (optional)")
    expect(comment).to_be_focused()
    comment.fill("It does not say whether unused days carry over.")
    with page.expect_response(lambda r: r.url.endswith("/api/feedback") and r.request.method == "POST") as sent:
        answer.get_by_role("button", name="Send feedback").click()
    response = sent.value
    assert response.status == 201, response.text()
    body = response.request.post_data_json
    assert str(body.pop("conversation_id")) == conversation_id
    assert body == {"message_index": 1, "rating": "down", "comment": "It does not say whether unused days carry over."}
    expect(answer.get_by_role("status")).to_have_text("Thank you for your feedback.")
    expect(down).to_be_disabled()


def test_the_page_leaves_out_what_the_app_does_not_offer(page):
    """Against an app without the conversation, example and feedback endpoints (all 404 here), the page
    shows no sidebar, no examples and no thumbs, and answers as before."""
    from playwright.sync_api import expect

    page.route("**/api/**", lambda route: route.fulfill(status=404, json={"error": "not found"}))
    page.reload()

    answer = ask(page, "How many vacation days do employees get?")

    expect(answer.locator("button.citation")).to_have_count(1)
    expect(page.get_by_role("navigation", name="Conversations")).to_be_hidden()
    expect(page.locator("#examples")).to_be_hidden()
    expect(page.locator("#empty-hint")).to_be_hidden()
    if answer.get_by_role("button", name="Bad answer").count():  # the app names conversations after all
        answer.get_by_role("button", name="Bad answer").click()
        answer.get_by_role("button", name="Send feedback").click()
        expect(answer.locator(".feedback-status")).to_contain_text("Could not send the feedback")
