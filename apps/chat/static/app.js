// Chat page for the RAG app. Talks to POST chat/stream (Microsoft AI Chat Protocol, 2024-05-29):
// the reply is JSON lines; a line may carry "context" (data_points, thoughts, followup_questions),
// "session_state" (the id of the stored conversation), a "delta" with the next piece of the answer,
// or an "error". Where the app offers them, it also uses api/conversations (the history sidebar),
// api/feedback (thumbs up/down) and api/examples (questions for the empty page); whatever of these
// the app does not answer is left out of the page.
// Plain JavaScript, no build step and no external files: the app runs on a closed network.
// Nothing the model or a document wrote is ever parsed as HTML: the page builds DOM nodes from text.
"use strict";

// The citation format is written in apps/chat/citations.py: "<source>#page=<n>" (a PDF page) or
// "<source>#<section-slug>" (a section of a Markdown or HTML file).
// A bracketed token in an answer, e.g. "[docs/guide.md#setup]". Whether it is a citation is decided
// by citationKey(): it must name a data point or have a citation's shape.
const CITATION = /^(?:.*#page=\d+|.*[./].*#[\p{L}\p{N}_-]+)$/u;
// A data point is "<citation>: <passage>"; the key is everything before the first ": " that follows
// an anchor (sources may contain colons themselves).
const DATA_POINT = /^(.*?#(?:page=\d+|[\p{L}\p{N}_-]+)): ([\s\S]*)$/u;

const conversation = {
  messages: [],          // [{role, content}] sent back with every request, as the protocol wants
  sessionState: null,    // what the server handed us (the conversation's id); echoed back unchanged
  abort: null,           // AbortController of the answer being streamed, if any
  loading: null,         // AbortController of a stored conversation being opened, if any
};

const ui = {};
let answerCount = 0;     // for unique element ids within the page

document.addEventListener("DOMContentLoaded", () => {
  for (const id of ["messages", "ask-form", "question", "send", "stop", "new-chat", "empty-state",
                    "retrieval-mode", "top", "minimum-score", "followups", "passage-panel",
                    "passage-title", "passage-source", "passage-text", "passage-close",
                    "examples", "examples-list", "history", "history-title", "history-list",
                    "history-empty", "history-status"]) {
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
  loadExamples();
  refreshHistory();
});

function submitQuestion() {
  const question = ui.question.value.trim();
  if (!question || conversation.abort) return;
  ui.question.value = "";
  ask(question);
}

function clearConversation() {
  if (conversation.abort) conversation.abort.abort();
  if (conversation.loading) conversation.loading.abort();
  conversation.messages = [];
  conversation.sessionState = null;
  ui.messages.replaceChildren();
  closePassage();
}

function startNewConversation() {
  clearConversation();
  ui["empty-state"].hidden = false;
  markCurrentConversation();
  ui.question.focus();
}

// The conversation id the server gave us, or null (a server that does not store conversations
// echoes back what it was sent, which is null for a new conversation).
function conversationId() {
  const state = conversation.sessionState;
  return typeof state === "string" || typeof state === "number" ? state : null;
}

// One turn: send the conversation, stream the answer into a new message, keep the history right.
async function ask(question) {
  ui["empty-state"].hidden = true;
  // This turn's history: "New conversation" replaces conversation.messages, so a turn still
  // finishing then must not write into the new one.
  const history = conversation.messages;
  history.push({ role: "user", content: question });
  appendUserMessage(question);
  const answerView = appendAssistantMessage();
  const answerIndex = history.length;  // where the answer will be in the conversation's messages
  const abort = new AbortController();
  conversation.abort = abort;
  setBusy(true);

  let answer = "";
  let context = {};
  let sessionState = conversation.sessionState;
  let completed = false;
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
      if ("session_state" in event) {
        sessionState = event.session_state;
        if (conversation.messages === history) conversation.sessionState = sessionState;
      }
      if (event.delta && typeof event.delta.content === "string") answer += event.delta.content;
      answerView.render(answer, context);
    }
    if (!answer) answerView.showError("The app finished without an answer.");
    completed = true;
  } catch (error) {
    if (error.name === "AbortError") answerView.showNote("Stopped.");
    else answerView.showError(describeError(error));
  } finally {
    answerView.finish();
    if (conversation.abort === abort) {
      conversation.abort = null;
      setBusy(false);
    }
  }
  // Keep the history alternating user/assistant: an answer that never started drops its question.
  // A stored conversation keeps only complete turns, as the app stores them (a stopped or broken
  // answer is not stored), so that the positions of its answers stay the app's.
  const id = typeof sessionState === "string" || typeof sessionState === "number" ? sessionState : null;
  if (answer && (completed || id === null)) history.push({ role: "assistant", content: answer });
  else history.pop();
  if (answer && completed && id !== null) answerView.offerFeedback(id, answerIndex);
  if (id !== null) refreshHistory();
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

// ---- The app's optional endpoints ----

class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

// fetch() for the JSON endpoints: the parsed body (null for 204), or an ApiError.
async function callApi(path, { method = "GET", body, signal } = {}) {
  const options = { method, headers: { Accept: "application/json" }, signal };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(path, options);
  if (!response.ok) throw new ApiError(await errorMessageOf(response), response.status);
  if (response.status === 204) return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

function conversationPath(id) {
  return `api/conversations/${encodeURIComponent(String(id))}`;
}

// ---- Example questions ----

async function loadExamples() {
  let examples;
  try {
    const body = await callApi("api/examples");
    examples = body && Array.isArray(body.examples) ? body.examples : [];
  } catch {
    return;  // no examples endpoint: the page shows the hint alone
  }
  const questions = examples
    .map((example) => (typeof example === "string" ? example : example && example.question))
    .filter((question) => typeof question === "string" && question.trim())
    .slice(0, 8);
  ui["examples-list"].replaceChildren(...questions.map((question) => {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "example";
    button.textContent = question;
    button.addEventListener("click", () => {
      if (!conversation.abort) ask(question.trim());
    });
    item.append(button);
    return item;
  }));
  ui.examples.hidden = questions.length === 0;
}

// ---- History sidebar ----

let historyRequest = 0;  // so that an older list that arrives late never replaces a newer one

async function refreshHistory() {
  const request = ++historyRequest;
  let conversations;
  try {
    const body = await callApi("api/conversations");
    conversations = body && Array.isArray(body.conversations) ? body.conversations : [];
  } catch (error) {
    if (request !== historyRequest) return;
    // Not offered by this app (404, 405) or not now: the sidebar shows only when it works.
    if (ui.history.hidden || error.status === 404 || error.status === 405) ui.history.hidden = true;
    else ui["history-status"].textContent = `Could not load the conversations: ${error.message}`;
    return;
  }
  if (request !== historyRequest) return;
  ui.history.hidden = false;
  ui["history-status"].textContent = "";
  ui["history-empty"].hidden = conversations.length > 0;
  // An entry being renamed or deleted stays as it is: the list must not pull it from under the user.
  const editing = new Map([...ui["history-list"].children]
    .filter((item) => item.dataset.editing)
    .map((item) => [item.dataset.conversationId, item]));
  ui["history-list"].replaceChildren(...conversations.map((entry) => editing.get(String(entry.id)) || historyItem(entry)));
  markCurrentConversation();
}

function conversationTitle(entry) {
  const title = entry && typeof entry.title === "string" ? entry.title.trim() : "";
  return title || "Untitled conversation";
}

function historyItem(entry) {
  const item = document.createElement("li");
  item.className = "history-item";
  item.dataset.conversationId = String(entry.id);
  showHistoryEntry(item, entry);
  return item;
}

function showHistoryEntry(item, entry) {
  const title = conversationTitle(entry);
  const open = document.createElement("button");
  open.type = "button";
  open.className = "history-open";
  const name = document.createElement("span");
  name.className = "history-title";
  name.textContent = title;
  open.append(name);
  const updated = entry.updated_at ? new Date(entry.updated_at) : null;
  if (updated && !Number.isNaN(updated.getTime())) {
    const time = document.createElement("time");
    time.className = "history-time";
    time.dateTime = updated.toISOString();
    time.textContent = updated.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
    open.append(time);
  }
  open.addEventListener("click", () => openConversation(entry.id));

  const rename = smallButton("Rename", `Rename “${title}”`, "history-rename");
  rename.addEventListener("click", () => showRenameForm(item, entry));
  const remove = smallButton("Delete", `Delete “${title}”`, "history-delete");
  remove.addEventListener("click", () => showDeleteConfirmation(item, entry));
  const actions = document.createElement("div");
  actions.className = "history-actions";
  actions.append(rename, remove);
  item.replaceChildren(open, actions);
  delete item.dataset.editing;
  if (String(entry.id) === String(conversationId())) open.setAttribute("aria-current", "true");
}

function smallButton(text, label, className) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = `secondary small ${className}`;
  button.textContent = text;
  if (label) button.setAttribute("aria-label", label);
  return button;
}

function markCurrentConversation() {
  const current = conversationId();
  for (const item of ui["history-list"].children) {
    const open = item.querySelector(".history-open");
    if (!open) continue;
    if (current !== null && item.dataset.conversationId === String(current)) open.setAttribute("aria-current", "true");
    else open.removeAttribute("aria-current");
  }
}

function showRenameForm(item, entry) {
  const title = conversationTitle(entry);
  const form = document.createElement("form");
  form.className = "history-form";
  const inputId = `rename-${item.dataset.conversationId}`.replace(/[^\w-]/g, "_");
  const label = document.createElement("label");
  label.htmlFor = inputId;
  label.textContent = "New title";
  const input = document.createElement("input");
  input.id = inputId;
  input.type = "text";
  input.maxLength = 200;
  input.required = true;
  input.value = title;
  const save = document.createElement("button");
  save.type = "submit";
  save.className = "small";
  save.textContent = "Save";
  const cancel = smallButton("Cancel", null, "history-cancel");
  const restore = (focusClass) => {
    showHistoryEntry(item, entry);
    item.querySelector(focusClass).focus();
  };
  cancel.addEventListener("click", () => restore(".history-rename"));
  form.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.stopPropagation();
      restore(".history-rename");
    }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const newTitle = input.value.trim();
    if (!newTitle) return;
    save.disabled = true;
    try {
      await callApi(conversationPath(entry.id), { method: "PATCH", body: { title: newTitle } });
      entry = { ...entry, title: newTitle };
      restore(".history-open");
      ui["history-status"].textContent = `Renamed to “${newTitle}”.`;
      refreshHistory();
    } catch (error) {
      save.disabled = false;
      ui["history-status"].textContent = `Could not rename the conversation: ${error.message}`;
    }
  });
  const buttons = document.createElement("div");
  buttons.className = "history-actions";
  buttons.append(save, cancel);
  form.append(label, input, buttons);
  item.replaceChildren(form);
  item.dataset.editing = "rename";
  input.focus();
  input.select();
}

function showDeleteConfirmation(item, entry) {
  const title = conversationTitle(entry);
  const question = document.createElement("p");
  question.className = "history-confirm";
  question.textContent = `Delete “${title}”?`;
  const confirm = smallButton("Delete", `Yes, delete “${title}”`, "history-confirm-delete danger");
  const cancel = smallButton("Cancel", null, "history-cancel");
  const restore = () => {
    showHistoryEntry(item, entry);
    item.querySelector(".history-delete").focus();
  };
  cancel.addEventListener("click", restore);
  item.addEventListener("keydown", function escape(event) {
    if (event.key === "Escape" && item.contains(cancel)) {
      event.stopPropagation();
      item.removeEventListener("keydown", escape);
      restore();
    }
  });
  confirm.addEventListener("click", async () => {
    confirm.disabled = true;
    try {
      await callApi(conversationPath(entry.id), { method: "DELETE" });
    } catch (error) {
      confirm.disabled = false;
      ui["history-status"].textContent = `Could not delete the conversation: ${error.message}`;
      return;
    }
    const wasCurrent = String(entry.id) === String(conversationId());
    item.remove();
    ui["history-empty"].hidden = ui["history-list"].children.length > 0;
    ui["history-status"].textContent = `Deleted “${title}”.`;
    if (wasCurrent) startNewConversation();
    else ui["history-title"].focus();
    refreshHistory();
  });
  const actions = document.createElement("div");
  actions.className = "history-actions";
  actions.append(confirm, cancel);
  item.replaceChildren(question, actions);
  item.dataset.editing = "delete";
  cancel.focus();
}

// Shows a stored conversation; the next question continues it (its id goes back as session_state).
async function openConversation(id) {
  clearConversation();
  const loading = new AbortController();
  conversation.loading = loading;
  ui["empty-state"].hidden = true;
  ui["history-status"].textContent = "Opening the conversation…";
  let stored;
  try {
    stored = await callApi(conversationPath(id), { signal: loading.signal });
  } catch (error) {
    if (error.name === "AbortError") return;
    ui["history-status"].textContent = `Could not open the conversation: ${error.message}`;
    ui["empty-state"].hidden = false;
    return;
  } finally {
    if (conversation.loading === loading) conversation.loading = null;
  }
  if (loading.signal.aborted) return;
  const messages = (stored && Array.isArray(stored.messages) ? stored.messages : [])
    .filter((message) => message && (message.role === "user" || message.role === "assistant"))
    .map((message) => ({ role: message.role, content: String(message.content ?? ""), context: message.context }));
  conversation.sessionState = stored && stored.id !== undefined ? stored.id : id;
  conversation.messages = messages.map(({ role, content }) => ({ role, content }));
  messages.forEach((message, index) => {
    if (message.role === "user") {
      appendUserMessage(message.content);
      return;
    }
    const view = appendAssistantMessage();
    view.render(message.content, message.context && typeof message.context === "object" ? message.context : {});
    view.finish();
    view.offerFeedback(conversation.sessionState, index);
  });
  ui["empty-state"].hidden = messages.length > 0;
  ui["history-status"].textContent = `Opened “${conversationTitle(stored)}”.`;
  markCurrentConversation();
  ui.question.focus();
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

// Returns the view of one answer: render() redraws it from the text and context so far.
function appendAssistantMessage() {
  const number = ++answerCount;
  const item = appendMessage("assistant", "Assistant");
  item.setAttribute("aria-busy", "true");

  const tabs = answerTabs(item, number);
  const body = document.createElement("div");
  body.className = "message-text markdown";
  body.textContent = "…";
  const sources = document.createElement("div");
  sources.className = "sources";
  const followups = document.createElement("div");
  followups.className = "followups";
  tabs.panels.answer.append(body, sources, followups);

  const status = document.createElement("p");
  status.className = "status";
  status.hidden = true;
  item.append(status);
  let shownContext = null;

  return {
    render(answer, context) {
      const passages = passagesByKey(context.data_points);
      const cited = renderAnswer(body, answer, passages);
      renderSources(sources, cited, passages);
      renderFollowups(followups, context.followup_questions);
      if (context !== shownContext) {  // a new context line: redraw the tabs it feeds
        shownContext = context;
        tabs.show("thoughts", renderThoughts(tabs.panels.thoughts, context.thoughts));
        tabs.show("support", renderSupportingContent(tabs.panels.support, context.data_points));
      }
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
    offerFeedback(id, messageIndex) {
      item.append(feedbackControls(id, messageIndex, number));
    },
  };
}

// The answer's tabs: the answer, its thought process and its supporting content (WAI-ARIA tabs:
// arrow keys move between them). The tab list shows once there is more than the answer to see.
function answerTabs(item, number) {
  const names = { answer: "Answer", thoughts: "Thought process", support: "Supporting content" };
  const list = document.createElement("div");
  list.className = "answer-tabs";
  list.setAttribute("role", "tablist");
  list.setAttribute("aria-label", "Answer details");
  list.hidden = true;
  const tabs = {};
  const panels = {};
  for (const [key, name] of Object.entries(names)) {
    const tab = document.createElement("button");
    tab.type = "button";
    tab.className = "answer-tab";
    tab.id = `answer-${number}-tab-${key}`;
    tab.setAttribute("role", "tab");
    tab.setAttribute("aria-controls", `answer-${number}-panel-${key}`);
    tab.textContent = name;
    tab.addEventListener("click", () => select(key));
    const panel = document.createElement("div");
    panel.className = `answer-panel answer-panel-${key}`;
    panel.id = `answer-${number}-panel-${key}`;
    panel.setAttribute("role", "tabpanel");
    panel.setAttribute("aria-labelledby", tab.id);
    if (key !== "answer") panel.tabIndex = 0;
    tabs[key] = tab;
    panels[key] = panel;
    list.append(tab);
  }
  list.addEventListener("keydown", (event) => {
    const visible = Object.keys(tabs).filter((key) => !tabs[key].hidden);
    const current = visible.indexOf(Object.keys(tabs).find((key) => tabs[key] === document.activeElement));
    if (current < 0) return;
    const moves = { ArrowRight: current + 1, ArrowLeft: current - 1, Home: 0, End: visible.length - 1 };
    if (!(event.key in moves)) return;
    event.preventDefault();
    const next = visible[(moves[event.key] + visible.length) % visible.length];
    select(next);
    tabs[next].focus();
  });
  function select(selected) {
    for (const key of Object.keys(tabs)) {
      const on = key === selected;
      tabs[key].setAttribute("aria-selected", String(on));
      tabs[key].tabIndex = on ? 0 : -1;
      panels[key].hidden = !on;
    }
  }
  select("answer");
  item.append(list, ...Object.values(panels));
  return {
    panels,
    show(key, available) {
      tabs[key].hidden = !available;
      if (!available && tabs[key].getAttribute("aria-selected") === "true") select("answer");
      list.hidden = tabs.thoughts.hidden && tabs.support.hidden;
    },
  };
}

// Maps each citation to its passage, from context.data_points.text. The app sends one data point per
// citation (a section or a page), so the panel shows exactly the passage cited; should a key come
// twice, both passages are shown.
function passagesByKey(dataPoints) {
  const passages = new Map();
  for (const text of dataPointTexts(dataPoints)) {
    const match = DATA_POINT.exec(text);
    if (match) passages.set(match[1], [...(passages.get(match[1]) || []), match[2]]);
  }
  return passages;
}

function dataPointTexts(dataPoints) {
  const texts = Array.isArray(dataPoints) ? dataPoints : dataPoints && dataPoints.text;
  return Array.isArray(texts) ? texts.filter((text) => typeof text === "string") : [];
}

function citationKey(token, passages) {
  const key = token.trim();
  return passages.has(key) || CITATION.test(key) ? key : null;
}

// Writes the answer as sanitized Markdown with a numbered button per citation. Returns the cited
// keys in order of first use.
function renderAnswer(container, answer, passages) {
  const cited = [];
  const citation = (key) => {
    if (!cited.includes(key)) cited.push(key);
    return citationButton(key, String(cited.indexOf(key) + 1), "citation", passages);
  };
  container.replaceChildren(...markdownNodes(answer, (token) => {
    const key = citationKey(token, passages);
    return key ? citation(key) : null;
  }));
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

// ---- Thought process and supporting content ----

// Each thought is {title, description, props?}; descriptions are text, lists or objects (search
// results, timings). Returns whether there was anything to show.
function renderThoughts(container, thoughts) {
  const list = document.createElement("ol");
  list.className = "thoughts";
  for (const thought of Array.isArray(thoughts) ? thoughts : []) {
    if (!thought || typeof thought !== "object") continue;
    const entry = document.createElement("li");
    entry.className = "thought";
    const title = document.createElement("h4");
    title.className = "thought-title";
    title.textContent = String(thought.title ?? "Step");
    entry.append(title, valueNode(thought.description, "", 0));
    if (thought.props && typeof thought.props === "object" && Object.keys(thought.props).length) {
      const props = valueNode(thought.props, "", 0);
      props.classList.add("thought-props");
      entry.append(props);
    }
    list.append(entry);
  }
  container.replaceChildren(list);
  return list.children.length > 0;
}

// A JSON value as text, lists and definition lists (never as HTML).
function valueNode(value, key, depth) {
  if (value === null || value === undefined || typeof value !== "object") {
    const text = document.createElement(depth === 0 ? "p" : "span");
    text.className = "thought-value";
    text.textContent = formatScalar(value, key);
    return text;
  }
  if (depth > 4) {
    const code = document.createElement("code");
    code.textContent = JSON.stringify(value);
    return code;
  }
  if (Array.isArray(value)) {
    const list = document.createElement("ol");
    list.className = "thought-list";
    for (const item of value) {
      const entry = document.createElement("li");
      entry.append(valueNode(item, "", depth + 1));
      list.append(entry);
    }
    return list;
  }
  const definitions = document.createElement("dl");
  definitions.className = "thought-fields";
  for (const [name, item] of Object.entries(value)) {
    const term = document.createElement("dt");
    term.textContent = humanKey(name);
    const detail = document.createElement("dd");
    detail.append(valueNode(item, name, depth + 1));
    definitions.append(term, detail);
  }
  return definitions;
}

function humanKey(name) {
  return String(name).replace(/_(ms|seconds|s)$/, "").replace(/_/g, " ");
}

function formatScalar(value, key) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "number" && /_ms$/.test(key)) return `${value} ms`;
  if (typeof value === "number" && /_(seconds|s)$/.test(key)) return `${value} s`;
  return String(value);
}

// The retrieved passages, each under its citation. Returns whether there were any.
function renderSupportingContent(container, dataPoints) {
  const list = document.createElement("ol");
  list.className = "supporting";
  for (const text of dataPointTexts(dataPoints)) {
    const match = DATA_POINT.exec(text);
    const entry = document.createElement("li");
    entry.className = "supporting-item";
    const source = document.createElement("p");
    source.className = "supporting-source";
    source.textContent = match ? match[1] : "Passage";
    const passage = document.createElement("p");
    passage.className = "supporting-text";
    passage.textContent = match ? match[2] : text;
    entry.append(source, passage);
    list.append(entry);
  }
  if (list.children.length === 0) {
    const none = document.createElement("p");
    none.textContent = "No passages were retrieved for this answer.";
    container.replaceChildren(none);
    return Array.isArray(dataPoints) || (dataPoints && Array.isArray(dataPoints.text));
  }
  container.replaceChildren(list);
  return true;
}

// ---- Feedback ----

function feedbackControls(id, messageIndex, number) {
  const box = document.createElement("div");
  box.className = "feedback";
  const question = document.createElement("span");
  question.className = "feedback-question";
  question.id = `answer-${number}-feedback`;
  question.textContent = "Was this answer helpful?";
  const thumbs = document.createElement("div");
  thumbs.className = "thumbs";
  thumbs.setAttribute("role", "group");
  thumbs.setAttribute("aria-labelledby", question.id);
  const up = thumbButton("Good answer", "up");
  const down = thumbButton("Bad answer", "down");
  thumbs.append(up, down);

  const form = document.createElement("form");
  form.className = "feedback-form";
  form.hidden = true;
  const commentId = `answer-${number}-comment`;
  const label = document.createElement("label");
  label.htmlFor = commentId;
  label.textContent = "Comment (optional)";
  const comment = document.createElement("textarea");
  comment.id = commentId;
  comment.rows = 2;
  comment.maxLength = 2000;
  const send = document.createElement("button");
  send.type = "submit";
  send.className = "small";
  send.textContent = "Send feedback";
  const cancel = smallButton("Cancel", null, "feedback-cancel");
  const buttons = document.createElement("div");
  buttons.className = "feedback-buttons";
  buttons.append(send, cancel);
  form.append(label, comment, buttons);

  const status = document.createElement("p");
  status.className = "feedback-status";
  status.setAttribute("role", "status");

  let rating = null;
  function choose(value) {
    rating = value;
    up.setAttribute("aria-pressed", String(value === "up"));
    down.setAttribute("aria-pressed", String(value === "down"));
    form.hidden = value === null;
    status.textContent = "";
    if (value !== null) comment.focus();
  }
  up.addEventListener("click", () => choose(rating === "up" ? null : "up"));
  down.addEventListener("click", () => choose(rating === "down" ? null : "down"));
  cancel.addEventListener("click", () => {
    const focus = rating === "down" ? down : up;
    choose(null);
    focus.focus();
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!rating) return;
    const body = { conversation_id: id, message_index: messageIndex, rating };
    if (comment.value.trim()) body.comment = comment.value.trim();
    send.disabled = true;
    status.textContent = "Sending…";
    try {
      await callApi("api/feedback", { method: "POST", body });
    } catch (error) {
      send.disabled = false;
      status.textContent = `Could not send the feedback: ${error.message}`;
      if (error.status === 404 || error.status === 405) box.replaceChildren(status);  // no use trying again
      return;
    }
    form.hidden = true;
    up.disabled = down.disabled = true;
    status.textContent = "Thank you for your feedback.";
  });
  box.append(question, thumbs, form, status);
  return box;
}

// A thumb drawn as SVG (emoji need a font a closed network's machines may lack); the thumb down is
// the thumb up turned over by the style sheet.
const THUMB_PATH = "M1 21h4V9H1v12zm22-11c0-1.1-.9-2-2-2h-6.31l.95-4.57.03-.32c0-.41-.17-.79-.44-1.06" +
  "L14.17 1 7.59 7.59C7.22 7.95 7 8.45 7 9v10c0 1.1.9 2 2 2h9c.83 0 1.54-.5 1.84-1.22l3.02-7.05" +
  "c.09-.23.14-.47.14-.73v-2z";

function thumbButton(label, rating) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = `thumb thumb-${rating}`;
  button.setAttribute("aria-label", label);
  button.setAttribute("aria-pressed", "false");
  button.title = label;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
  path.setAttribute("d", THUMB_PATH);
  svg.append(path);
  button.append(svg);
  return button;
}

// ---- Markdown ----
// A small Markdown renderer for answers: paragraphs, headings (shown as bold paragraphs), emphasis,
// inline code and code blocks, lists (nested by indentation), quotes, rules and links to http(s)
// addresses. It builds DOM nodes whose text is set with textContent, so whatever HTML the model
// writes stays text. inlineToken(token) turns a bracketed token into a node (a citation) or null.

const FENCE = /^ {0,3}(`{3,}|~{3,})/;
const HEADING = /^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$/;
const LIST_ITEM = /^([ \t]*)([-*+]|\d{1,9}[.)])[ \t]+(.*)$/;
const RULE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const QUOTE = /^ {0,3}>[ \t]?(.*)$/;
const INLINE = new RegExp([
  /(`+)([^`\n][^\n]*?)\1(?!`)/.source,                       // 1, 2: code
  /\[([^[\]\n]+)\]\([ \t]*([^()\s]+)[ \t]*\)/.source,        // 3, 4: link
  /\[([^[\]\n]{1,300})\]/.source,                             // 5: bracketed (a citation?)
  /\*\*(?=\S)([^\n]*?\S)\*\*/.source,                         // 6: strong
  /(?<![\p{L}\p{N}_])__(?=\S)([^\n]*?\S)__(?![\p{L}\p{N}_])/.source,  // 7: strong
  /\*(?=[^\s*])([^*\n]*?[^\s*])?\*/.source,                   // 8: emphasis (an empty group: "*x*")
  /(?<![\p{L}\p{N}_])_(?=[^\s_])([^_\n]*?[^\s_])?_(?![\p{L}\p{N}_])/.source,  // 9: emphasis
].join("|"), "gu");

function markdownNodes(text, inlineToken) {
  const lines = String(text).replace(/\r\n?/g, "\n").split("\n");
  const blocks = [];
  const fills = [];        // [element, lines]: inline text to write once the block is complete
  let paragraph = null;    // lines of the open paragraph
  let quote = null;        // lines of the open quote
  let lists = [];          // open lists, outermost first: {indent, ordered, element, item}
  let blankBefore = false;

  const closeParagraph = () => {
    if (paragraph) {
      const element = document.createElement("p");
      fills.push([element, paragraph]);
      blocks.push(element);
      paragraph = null;
    }
    if (quote) {
      const element = document.createElement("blockquote");
      const inner = document.createElement("p");
      element.append(inner);
      fills.push([inner, quote]);
      blocks.push(element);
      quote = null;
    }
  };
  const closeLists = () => { lists = []; };

  for (let index = 0; index < lines.length; index++) {
    const line = lines[index];
    const fence = FENCE.exec(line);
    if (fence) {
      closeParagraph();
      closeLists();
      const code = [];
      index++;
      while (index < lines.length && !lines[index].trimStart().startsWith(fence[1])) code.push(lines[index++]);
      const pre = document.createElement("pre");
      const element = document.createElement("code");
      element.textContent = code.join("\n");
      pre.append(element);
      blocks.push(pre);
      blankBefore = false;
      continue;
    }
    if (!line.trim()) {
      closeParagraph();
      blankBefore = true;
      continue;
    }
    const item = LIST_ITEM.exec(line);
    if (item && !RULE.test(line)) {
      closeParagraph();
      const indent = item[1].replace(/\t/g, "    ").length;
      const ordered = /\d/.test(item[2]);
      while (lists.length && indent < lists[lists.length - 1].indent) lists.pop();
      let top = lists[lists.length - 1];
      if (top && indent === top.indent && top.ordered !== ordered) {
        lists.pop();
        top = lists[lists.length - 1];
      }
      if (!top || indent > top.indent || top.ordered !== ordered) {
        const element = document.createElement(ordered ? "ol" : "ul");
        const start = parseInt(item[2], 10);
        if (ordered && start !== 1) element.start = start;
        if (top) top.item.append(element);
        else blocks.push(element);
        top = { indent, ordered, element, item: null };
        lists.push(top);
      }
      const entry = document.createElement("li");
      const itemLines = [item[3]];
      fills.push([entry, itemLines]);
      top.element.append(entry);
      top.item = entry;
      top.lines = itemLines;
      blankBefore = false;
      continue;
    }
    if (lists.length && (!blankBefore || /^[ \t]/.test(line)) && !HEADING.test(line) && !RULE.test(line)) {
      lists[lists.length - 1].lines.push(line.trim());  // the list item goes on
      blankBefore = false;
      continue;
    }
    closeLists();
    const heading = HEADING.exec(line);
    const rule = RULE.test(line);
    const quoted = QUOTE.exec(line);
    if (heading || rule) {
      closeParagraph();
      if (rule) blocks.push(document.createElement("hr"));
      else {
        const element = document.createElement("p");
        element.className = "md-heading";
        const strong = document.createElement("strong");
        element.append(strong);
        fills.push([strong, [heading[1]]]);
        blocks.push(element);
      }
    } else if (quoted) {
      if (paragraph) closeParagraph();
      quote = quote || [];
      quote.push(quoted[1]);
    } else {
      if (quote) closeParagraph();
      paragraph = paragraph || [];
      paragraph.push(line.trim());
    }
    blankBefore = false;
  }
  closeParagraph();
  for (const [element, text] of fills) element.prepend(...inlineNodes(text.join("\n"), inlineToken));
  return blocks;
}

function inlineNodes(text, inlineToken) {
  const nodes = [];
  let last = 0;
  const pushText = (end) => {
    if (end > last) nodes.push(document.createTextNode(text.slice(last, end)));
  };
  for (const match of text.matchAll(INLINE)) {
    const [whole, , code, linkText, url, bracketed, strong1, strong2, em1, em2] = match;
    let node;
    if (code !== undefined) {
      node = document.createElement("code");
      node.textContent = code.trim() || code;
    } else if (linkText !== undefined) {
      node = safeLink(linkText, url, inlineToken);
    } else if (bracketed !== undefined) {
      node = inlineToken(bracketed);
      if (!node) continue;  // ordinary text in brackets
    } else if (strong1 !== undefined || strong2 !== undefined) {
      node = document.createElement("strong");
      node.append(...inlineNodes(strong1 ?? strong2, inlineToken));
    } else {
      const inner = whole.slice(1, -1);
      node = document.createElement("em");
      node.append(...inlineNodes(em1 ?? em2 ?? inner, inlineToken));
    }
    pushText(match.index);
    nodes.push(...[node].flat());
    last = match.index + whole.length;
  }
  pushText(text.length);
  return nodes;
}

// A link to an http(s) address opens in a new tab; any other address (javascript:, data:, relative)
// is dropped and only the link's text is kept.
function safeLink(text, url, inlineToken) {
  let address = null;
  try {
    address = new URL(url);
  } catch {
    address = null;
  }
  if (!address || (address.protocol !== "http:" && address.protocol !== "https:")) {
    const citation = inlineToken(text);
    return citation || document.createTextNode(text);
  }
  const link = document.createElement("a");
  link.href = address.href;
  link.target = "_blank";
  link.rel = "noopener noreferrer nofollow";
  link.textContent = text;
  return link;
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
