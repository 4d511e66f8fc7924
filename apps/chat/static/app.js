// Chat page for the RAG app. Talks to POST chat/stream (Microsoft AI Chat Protocol, 2024-05-29):
// the reply is JSON lines; a line may carry "context" (data_points, thoughts, followup_questions),
// "session_state", a "delta" with the next piece of the answer, or an "error".
// Plain JavaScript, no build step and no external files: the app runs on a closed network.
"use strict";

// The citation format is written in apps/chat/citations.py: "<source>#page=<n>" (a PDF page) or
// "<source>#<section-slug>" (a section of a Markdown or HTML file).
// A bracketed token in an answer, e.g. "[docs/guide.md#setup]". Whether it is a citation is decided
// by citationKey(): it must name a data point or have a citation's shape.
const BRACKETED = /\[([^\[\]\n]{1,300})\]/g;
const CITATION = /^(?:.*#page=\d+|.*[./].*#[\p{L}\p{N}_-]+)$/u;
// A data point is "<citation>: <passage>"; the key is everything before the first ": " that follows
// an anchor (sources may contain colons themselves).
const DATA_POINT = /^(.*?#(?:page=\d+|[\p{L}\p{N}_-]+)): ([\s\S]*)$/u;

const conversation = {
  messages: [],          // [{role, content}] sent back with every request, as the protocol wants
  sessionState: null,    // opaque value the server hands us; echoed back unchanged
  abort: null,           // AbortController of the answer being streamed, if any
};

const ui = {};

document.addEventListener("DOMContentLoaded", () => {
  for (const id of ["messages", "ask-form", "question", "send", "stop", "new-chat", "empty-hint",
                    "retrieval-mode", "top", "minimum-score", "followups", "passage-panel",
                    "passage-title", "passage-source", "passage-text", "passage-close"]) {
    ui[id] = document.getElementById(id);
  }
  ui["ask-form"].addEventListener("submit", (event) => {
    event.preventDefault();
    submitQuestion();
  });
  ui.question.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submitQuestion();
    }
  });
  ui.stop.addEventListener("click", () => conversation.abort && conversation.abort.abort());
  ui["new-chat"].addEventListener("click", startNewConversation);
  ui["passage-close"].addEventListener("click", closePassage);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !ui["passage-panel"].hidden) closePassage();
  });
  ui.question.focus();
});

function submitQuestion() {
  const question = ui.question.value.trim();
  if (!question || conversation.abort) return;
  ui.question.value = "";
  ask(question);
}

function startNewConversation() {
  if (conversation.abort) conversation.abort.abort();
  conversation.messages = [];
  conversation.sessionState = null;
  ui.messages.replaceChildren();
  ui["empty-hint"].hidden = false;
  closePassage();
  ui.question.focus();
}

// One turn: send the conversation, stream the answer into a new message, keep the history right.
async function ask(question) {
  ui["empty-hint"].hidden = true;
  // This turn's history: "New conversation" replaces conversation.messages, so a turn still
  // finishing then must not write into the new one.
  const history = conversation.messages;
  history.push({ role: "user", content: question });
  appendUserMessage(question);
  const answerView = appendAssistantMessage();
  const abort = new AbortController();
  conversation.abort = abort;
  setBusy(true);

  let answer = "";
  let context = {};
  try {
    const response = await fetch("chat/stream", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/x-ndjson" },
      body: JSON.stringify({
        messages: history,
        context: { overrides: readOverrides() },
        session_state: conversation.sessionState,
      }),
      signal: abort.signal,
    });
    if (!response.ok) throw new Error(await errorMessageOf(response));
    for await (const event of readJsonLines(response)) {
      if (event.error) throw new Error(String(event.error));
      if (event.context) context = { ...context, ...event.context };
      if ("session_state" in event) conversation.sessionState = event.session_state;
      if (event.delta && typeof event.delta.content === "string") answer += event.delta.content;
      answerView.render(answer, context);
    }
    if (!answer) answerView.showError("The app finished without an answer.");
  } catch (error) {
    if (error.name === "AbortError") answerView.showNote("Stopped.");
    else answerView.showError(describeError(error));
  } finally {
    answerView.finish();
    conversation.abort = null;
    setBusy(false);
  }
  // Keep the history alternating user/assistant: an answer that never started drops its question.
  if (answer) history.push({ role: "assistant", content: answer });
  else history.pop();
}

function readOverrides() {
  const overrides = {};
  if (ui["retrieval-mode"].value) overrides.retrieval_mode = ui["retrieval-mode"].value;
  const top = parseInt(ui.top.value, 10);
  if (Number.isFinite(top)) overrides.top = top;
  const minimumScore = parseFloat(ui["minimum-score"].value);
  if (Number.isFinite(minimumScore)) overrides.minimum_score = minimumScore;
  if (ui.followups.checked) overrides.suggest_followup_questions = true;
  return overrides;
}

// Yields one parsed object per line of a JSON-lines response body, as the bytes arrive.
async function* readJsonLines(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    buffer += decoder.decode(value || new Uint8Array(), { stream: !done });
    const lines = buffer.split("\n");
    buffer = done ? "" : lines.pop();
    for (const line of lines) {
      if (line.trim()) yield parseJsonLine(line);
    }
    if (done) return;
  }
}

function parseJsonLine(line) {
  try {
    return JSON.parse(line);
  } catch {
    throw new Error(`The app sent a line that is not JSON: ${line.slice(0, 120)}`);
  }
}

async function errorMessageOf(response) {
  const fallback = `The app answered ${response.status} ${response.statusText}`.trim();
  try {
    const body = await response.json();
    return body && body.error ? `${body.error} (${response.status})` : fallback;
  } catch {
    return fallback;
  }
}

function describeError(error) {
  // fetch() rejects with a TypeError when the app cannot be reached at all.
  if (error instanceof TypeError) return `Could not reach the app: ${error.message}`;
  return error.message || String(error);
}

function setBusy(busy) {
  ui.send.disabled = busy;
  ui.stop.hidden = !busy;
  ui["ask-form"].setAttribute("aria-busy", String(busy));
  if (!busy) ui.question.focus();
}

// ---- Messages ----

function appendMessage(role, label) {
  const item = document.createElement("li");
  item.className = `message ${role}`;
  const heading = document.createElement("h3");
  heading.className = "message-author";
  heading.textContent = label;
  item.append(heading);
  ui.messages.append(item);
  return item;
}

function appendUserMessage(text) {
  const item = appendMessage("user", "You");
  const body = document.createElement("p");
  body.className = "message-text";
  body.textContent = text;
  item.append(body);
  scrollToEnd(item);
}

// Returns the view of one streamed answer: render() redraws it from the text so far.
function appendAssistantMessage() {
  const item = appendMessage("assistant", "Assistant");
  item.setAttribute("aria-busy", "true");
  const body = document.createElement("div");
  body.className = "message-text";
  body.textContent = "…";
  const sources = document.createElement("div");
  sources.className = "sources";
  const followups = document.createElement("div");
  followups.className = "followups";
  const status = document.createElement("p");
  status.className = "status";
  status.hidden = true;
  item.append(body, sources, followups, status);

  return {
    render(answer, context) {
      const passages = passagesByKey(context.data_points);
      const cited = renderAnswer(body, answer, passages);
      renderSources(sources, cited, passages);
      renderFollowups(followups, context.followup_questions);
      scrollToEnd(item);
    },
    showError(message) {
      status.hidden = false;
      status.className = "status error";
      status.setAttribute("role", "alert");
      status.textContent = `Error: ${message}`;
      if (body.textContent === "…") body.textContent = "";
    },
    showNote(message) {
      status.hidden = false;
      status.className = "status note";
      status.textContent = message;
      if (body.textContent === "…") body.textContent = "";
    },
    finish() {
      item.setAttribute("aria-busy", "false");
    },
  };
}

// Maps each citation to its passage, from context.data_points.text. The app sends one data point per
// citation (a section or a page), so the panel shows exactly the passage cited; should a key come
// twice, both passages are shown.
function passagesByKey(dataPoints) {
  const passages = new Map();
  const texts = dataPoints && Array.isArray(dataPoints.text) ? dataPoints.text : [];
  for (const text of texts) {
    const match = DATA_POINT.exec(String(text));
    if (match) passages.set(match[1], [...(passages.get(match[1]) || []), match[2]]);
  }
  return passages;
}

function citationKey(token, passages) {
  const key = token.trim();
  return passages.has(key) || CITATION.test(key) ? key : null;
}

// Writes the answer as text nodes plus a numbered button per citation (never as HTML, so nothing
// in an answer or a passage can inject markup). Returns the cited keys in order of first use.
function renderAnswer(container, answer, passages) {
  const cited = [];
  const nodes = [];
  let last = 0;
  for (const match of answer.matchAll(BRACKETED)) {
    const key = citationKey(match[1], passages);
    if (!key) continue;
    nodes.push(document.createTextNode(answer.slice(last, match.index)));
    if (!cited.includes(key)) cited.push(key);
    nodes.push(citationButton(key, String(cited.indexOf(key) + 1), "citation", passages));
    last = match.index + match[0].length;
  }
  nodes.push(document.createTextNode(answer.slice(last)));
  container.replaceChildren(...nodes);
  return cited;
}

function renderSources(container, cited, passages) {
  if (cited.length === 0) {
    container.replaceChildren();
    return;
  }
  const label = document.createElement("span");
  label.className = "sources-label";
  label.textContent = "Sources:";
  const list = document.createElement("ol");
  for (const key of cited) {
    const entry = document.createElement("li");
    entry.append(citationButton(key, key, "source-link", passages));
    if (!passages.has(key)) entry.append(" (not among the retrieved passages)");
    list.append(entry);
  }
  container.replaceChildren(label, list);
}

function citationButton(key, text, className, passages) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = className;
  button.dataset.source = key;
  button.textContent = text;
  button.setAttribute("aria-label", `Show cited passage from ${key}`);
  button.addEventListener("click", () => showPassage(button, key, passages.get(key)));
  return button;
}

function renderFollowups(container, questions) {
  if (!Array.isArray(questions) || questions.length === 0) {
    container.replaceChildren();
    return;
  }
  const label = document.createElement("span");
  label.className = "sources-label";
  label.textContent = "Follow-up questions:";
  const buttons = questions.map((question) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "followup";
    button.textContent = String(question);
    button.addEventListener("click", () => {
      if (!conversation.abort) ask(String(question));
    });
    return button;
  });
  container.replaceChildren(label, ...buttons);
}

// ---- Passage panel ----

// The citation button that opened the panel, so closing it returns keyboard focus there.
let passageOpener = null;

function showPassage(button, key, passages) {
  ui["passage-source"].textContent = key;
  const texts = passages || ["This source is not among the passages the app retrieved for this answer."];
  ui["passage-text"].replaceChildren(...texts.map((text) => {
    const paragraph = document.createElement("p");
    paragraph.textContent = text;
    return paragraph;
  }));
  ui["passage-panel"].hidden = false;
  passageOpener = button;
  ui["passage-title"].focus();
}

function closePassage() {
  ui["passage-panel"].hidden = true;
  if (passageOpener && passageOpener.isConnected) passageOpener.focus();
  passageOpener = null;
}

function scrollToEnd(element) {
  element.scrollIntoView({ block: "end", behavior: "smooth" });
}
