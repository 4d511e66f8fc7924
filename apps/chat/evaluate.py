"""Evaluate the chat app on a question/ground-truth set.

    python -m apps.chat evaluate QA.jsonl [--url URL] [--out DIR] [--top N] [--retrieval-mode MODE] [--no-judge]

QA.jsonl holds one JSON object per line with "question" and "truth" (the format Azure's RAG evaluator
uses); the truth cites its source in the protocol's style, e.g. "... [README.md#run-it-locally]" (a citation
without an anchor matches every page and section of that source, "#page=1" every section of a file without
pages, and "guide.md" also matches "docs/guide.md"). Each question goes to POST /chat, either of a
running app (--url) or of the local app run in-process (the default). The results folder gets:

- results.jsonl: one line per question: the answer, its data points, retrieval and answer metrics;
- summary.json and summary.txt: the same metrics aggregated.

Retrieval metrics need no model: whether a truth source is among the data points, its rank, latency.
Answer metrics: citation match (the answer cites a truth source) always; groundedness and relevance
(1-5, judged by the model) only when a model is configured for the app (see apps/chat/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from apps.chat import citations

SCORE = re.compile(r"\b([1-5])\b")

DEFAULT_TIMEOUT_SECONDS = 120.0


class EvaluationInputError(ValueError):
    """The question/ground-truth file cannot be used; the message names the line."""


@dataclass(frozen=True)
class Case:
    line: int
    question: str
    truth: str


@dataclass
class CaseResult:
    line: int
    question: str
    truth: str
    truth_sources: list[str]
    latency_ms: float | None = None
    answer: str | None = None
    data_points: list[str] = field(default_factory=list)
    answer_citations: list[str] = field(default_factory=list)
    # Retrieval (no model needed). None when the truth names no source.
    source_found: bool | None = None
    source_rank: int | None = None
    # Answer metrics.
    citation_match: bool | None = None
    citations_in_data_points: bool | None = None
    groundedness: int | None = None
    relevance: int | None = None
    judge_error: str | None = None
    error: str | None = None


# A chat backend takes a request body of the chat protocol and returns the response body.
ChatBackend = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
# A judge takes a prompt and returns the model's reply text.
Judge = Callable[[str], Awaitable[str]]


# ---- Input ----


def load_cases(path: Path) -> list[Case]:
    """Reads the JSONL ground truth; any bad line stops everything with an error naming it."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise EvaluationInputError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise EvaluationInputError(f"{path}: cannot read it: {error}") from None
    cases = [parse_case(path, number, text) for number, text in enumerate(lines, start=1) if text.strip()]
    if not cases:
        raise EvaluationInputError(f"{path}: no questions (expected one JSON object per line)")
    return cases


def parse_case(path: Path, line: int, text: str) -> Case:
    where = f"{path} line {line}"
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        raise EvaluationInputError(f"{where}: not valid JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(record, dict):
        raise EvaluationInputError(f"{where}: expected a JSON object with 'question' and 'truth'")
    for key in ("question", "truth"):
        if key not in record:
            raise EvaluationInputError(f"{where}: missing key '{key}'")
        if not isinstance(record[key], str) or not record[key].strip():
            raise EvaluationInputError(f"{where}: '{key}' must be a non-empty string")
    return Case(line=line, question=record["question"].strip(), truth=record["truth"].strip())


# ---- Sources and citations ----


def answer_citations(answer: str, data_point_keys: list[str]) -> list[str]:
    """The answer's citations: bracketed tokens in a citation's shape ("source#page=n", "source#section",
    citations.py) or naming a data point. Other brackets (say, "[source#page=n]" quoted from a document)
    are not citations."""
    return [token for token in citations.bracketed(answer) if citations.is_citation(token) or token in data_point_keys]


def data_point_keys(data_points: Iterable[str]) -> list[str]:
    return [citations.citation_of_data_point(str(text)) for text in data_points]


def cites(citation: str, truth_source: str) -> bool:
    """True when a citation refers to the truth's source (and page or section, if the truth names one).

    A truth may name the file without the folders it was ingested from: "guide.md" matches
    "docs/guide.md", so one ground-truth file serves however the corpus was ingested; "guide.md#page=1"
    matches every section of guide.md (citations.refers_to)."""
    return citations.refers_to(citation, truth_source)


def first_rank(keys: list[str], truth_sources: list[str]) -> int | None:
    for rank, key in enumerate(keys, start=1):
        if any(cites(key, truth) for truth in truth_sources):
            return rank
    return None


# ---- Judging ----

GROUNDEDNESS_PROMPT = """You check answers for a document search assistant.
Rate from 1 to 5 how well every claim in the ANSWER is supported by the SOURCES
(5: everything is supported; 1: mostly unsupported or contradicted). Reply with the number only.

SOURCES:
{sources}

ANSWER:
{answer}"""

RELEVANCE_PROMPT = """You check answers for a document search assistant.
Rate from 1 to 5 how well the ANSWER addresses the QUESTION
(5: fully and directly; 1: not at all). Reply with the number only.

QUESTION:
{question}

ANSWER:
{answer}"""


async def judged_score(judge: Judge, prompt: str) -> int:
    reply = await judge(prompt)
    match = SCORE.search(reply or "")
    if not match:
        raise ValueError(f"the judge's reply has no score from 1 to 5: {reply[:80]!r}")
    return int(match.group(1))


async def judge_answer(result: CaseResult, judge: Judge) -> None:
    sources = "\n".join(result.data_points) or "(none)"
    try:
        result.groundedness = await judged_score(
            judge, GROUNDEDNESS_PROMPT.format(sources=sources, answer=result.answer)
        )
        result.relevance = await judged_score(
            judge, RELEVANCE_PROMPT.format(question=result.question, answer=result.answer)
        )
    except Exception as error:  # noqa: BLE001 - a judge failure costs one score, not the whole run
        result.judge_error = f"{type(error).__name__}: {error}"


# ---- Running ----


async def evaluate_case(case: Case, chat: ChatBackend, overrides: dict[str, Any], judge: Judge | None) -> CaseResult:
    result = CaseResult(
        line=case.line, question=case.question, truth=case.truth, truth_sources=citations.bracketed(case.truth)
    )
    request = {"messages": [{"role": "user", "content": case.question}], "context": {"overrides": overrides}}
    started = time.perf_counter()
    try:
        response = await chat(request)
    except Exception as error:  # noqa: BLE001 - one failed question is recorded; the rest still run
        result.error = f"{type(error).__name__}: {error}"
        return result
    result.latency_ms = round((time.perf_counter() - started) * 1000, 1)

    result.answer = str(((response.get("message") or {}).get("content")) or "")
    context = response.get("context") or {}
    result.data_points = [str(text) for text in ((context.get("data_points") or {}).get("text") or [])]
    keys = data_point_keys(result.data_points)
    result.answer_citations = answer_citations(result.answer, keys)
    result.citations_in_data_points = all(citation in keys for citation in result.answer_citations)
    if result.truth_sources:
        result.source_rank = first_rank(keys, result.truth_sources)
        result.source_found = result.source_rank is not None
        result.citation_match = first_rank(result.answer_citations, result.truth_sources) is not None
    if judge is not None and result.answer:
        await judge_answer(result, judge)
    return result


def percentile(values: list[float], fraction: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


def mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 3) if values else None


def rate(flags: list[bool | None]) -> float | None:
    known = [flag for flag in flags if flag is not None]
    return round(sum(known) / len(known), 3) if known else None


def summarize(results: list[CaseResult], judge_name: str | None) -> dict[str, Any]:
    answered = [result for result in results if result.error is None]
    latencies = [result.latency_ms for result in answered if result.latency_ms is not None]
    ranks = [result.source_rank for result in answered if result.source_found is not None]
    return {
        "questions": len(results),
        "errors": len(results) - len(answered),
        "retrieval": {
            "with_truth_source": len(ranks),
            "source_found_rate": rate([result.source_found for result in answered]),
            "mean_reciprocal_rank": mean([1 / rank if rank else 0.0 for rank in ranks]),
            "mean_rank_when_found": mean([rank for rank in ranks if rank]),
        },
        "latency_ms": {
            "p50": percentile(latencies, 0.50),
            "p95": percentile(latencies, 0.95),
            "max": max(latencies) if latencies else None,
        },
        "answers": {
            "citation_match_rate": rate([result.citation_match for result in answered]),
            "citations_in_data_points_rate": rate([result.citations_in_data_points for result in answered]),
            "judge": judge_name or "not configured",
            "groundedness_mean": mean([r.groundedness for r in answered if r.groundedness is not None]),
            "relevance_mean": mean([r.relevance for r in answered if r.relevance is not None]),
            "judge_errors": sum(1 for result in answered if result.judge_error),
        },
    }


def summary_text(summary: dict[str, Any], source: str) -> str:
    retrieval, latency, answers = summary["retrieval"], summary["latency_ms"], summary["answers"]

    def show(value: Any, unit: str = "") -> str:
        return "n/a" if value is None else f"{value}{unit}"

    lines = [
        f"Evaluation of {source}",
        f"  questions: {summary['questions']}, failed requests: {summary['errors']}",
        "Retrieval (no model needed)",
        (
            f"  truth source among the data points: {show(retrieval['source_found_rate'])}"
            f" of {retrieval['with_truth_source']} questions that name a source"
        ),
        (
            f"  mean reciprocal rank: {show(retrieval['mean_reciprocal_rank'])},"
            f" mean rank when found: {show(retrieval['mean_rank_when_found'])}"
        ),
        (
            f"  latency: p50 {show(latency['p50'], ' ms')}, p95 {show(latency['p95'], ' ms')},"
            f" max {show(latency['max'], ' ms')}"
        ),
        "Answers",
        f"  answer cites the truth source: {show(answers['citation_match_rate'])}",
        f"  every citation is a data point: {show(answers['citations_in_data_points_rate'])}",
        f"  judge model: {answers['judge']}",
        (
            f"  groundedness (1-5): {show(answers['groundedness_mean'])},"
            f" relevance (1-5): {show(answers['relevance_mean'])}, judge errors: {answers['judge_errors']}"
        ),
    ]
    return "\n".join(lines) + "\n"


def write_results(out_dir: Path, results: list[CaseResult], summary: dict[str, Any], text: str) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "results.jsonl").open("w", encoding="utf-8") as file:
        for result in results:
            file.write(json.dumps(asdict(result), ensure_ascii=False) + "\n")
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (out_dir / "summary.txt").write_text(text, encoding="utf-8")


async def run_evaluation(
    cases: list[Case],
    chat: ChatBackend,
    *,
    overrides: dict[str, Any] | None = None,
    judge: Judge | None = None,
    judge_name: str | None = None,
) -> tuple[list[CaseResult], dict[str, Any]]:
    results = [await evaluate_case(case, chat, overrides or {}, judge) for case in cases]
    return results, summarize(results, judge_name if judge else None)


# ---- Backends ----


@contextlib.asynccontextmanager
async def chat_backend(url: str | None, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> AsyncIterator[ChatBackend]:
    """POST /chat of a running app (url), or of the local app run in-process (url None)."""
    import httpx

    async with contextlib.AsyncExitStack() as stack:
        transport = None
        if url is None:
            app = local_app()
            # ASGITransport does not run the app's start-up and shut-down; do it here.
            await stack.enter_async_context(app.router.lifespan_context(app))
            transport = httpx.ASGITransport(app=app)
        client = await stack.enter_async_context(
            httpx.AsyncClient(base_url=(url or "http://in-process").rstrip("/"), transport=transport, timeout=timeout)
        )

        async def chat(request: dict[str, Any]) -> dict[str, Any]:
            return checked_json(await client.post("/chat", json=request))

        yield chat


def local_app() -> Any:
    """The app as `python -m apps.chat serve` would run it, configured from the environment."""
    from apps.chat.app import create_app

    return create_app()


@contextlib.asynccontextmanager
async def model_judge(wanted: bool) -> AsyncIterator[tuple[Judge | None, str | None]]:
    """The app's configured model as a judge (and its name), or (None, None) when there is none."""
    if not wanted:
        yield None, None
        return
    from apps.chat.model_client import ModelClient
    from apps.chat.settings import load_settings

    settings = load_settings()
    client = ModelClient.from_settings(settings)
    if client is None:
        yield None, None
        return

    async def judge(prompt: str) -> str:
        # No temperature: the reasoning models the stacks deploy (gpt-5 family) accept only their default
        # and answer 400 to temperature=0.
        return await client.complete([{"role": "user", "content": prompt}])

    try:
        yield judge, settings.chat_model
    finally:
        await client.close()


def checked_json(response: Any) -> dict[str, Any]:
    """The JSON body of a 2xx response; otherwise the protocol's error message, as an exception."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code >= 400:
        message = body.get("error") if isinstance(body, dict) else None
        raise RuntimeError(f"HTTP {response.status_code}: {message or response.text[:200]}")
    if not isinstance(body, dict):
        raise TypeError(f"HTTP {response.status_code}: the reply is not a JSON object")
    return body


# ---- Command line ----


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m apps.chat evaluate",
        description="Run a question/ground-truth set (JSONL with 'question' and 'truth') against the chat app.",
    )
    parser.add_argument("qa_file", type=Path, metavar="QA.jsonl")
    parser.add_argument("--url", help="base URL of a running app (default: the local app, in-process)")
    parser.add_argument("--out", type=Path, help="results folder (default: results/eval-<UTC time>)")
    parser.add_argument("--top", type=int, help="override: passages to retrieve")
    parser.add_argument("--retrieval-mode", choices=["hybrid", "vectors", "text"], help="override: retrieval mode")
    parser.add_argument("--no-judge", action="store_true", help="skip the model-judged answer metrics")
    args = parser.parse_args(argv)
    if args.top is not None and args.top < 1:
        parser.error("--top must be at least 1")
    return args


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if args.top is not None:
        overrides["top"] = args.top
    if args.retrieval_mode:
        overrides["retrieval_mode"] = args.retrieval_mode
    return overrides


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        cases = load_cases(args.qa_file)
        summary = asyncio.run(evaluate_and_write(cases, args))
    except EvaluationInputError as error:
        print(f"evaluate: {error}", file=sys.stderr)
        return 2
    return 0 if summary["errors"] < summary["questions"] else 1


async def evaluate_and_write(cases: list[Case], args: argparse.Namespace) -> dict[str, Any]:
    from apps.chat.settings import SettingsError

    out_dir = args.out or Path("results") / f"eval-{datetime.now(UTC):%Y%m%dT%H%M%SZ}"
    try:
        async with chat_backend(args.url) as chat, model_judge(not args.no_judge) as (judge, judge_name):
            results, summary = await run_evaluation(
                cases, chat, overrides=overrides_from(args), judge=judge, judge_name=judge_name
            )
    except SettingsError as error:
        raise EvaluationInputError(str(error)) from None
    text = summary_text(summary, args.url or "the local app (in-process)")
    write_results(out_dir, results, summary, text)
    print(text + f"Results written to {out_dir}/ (results.jsonl, summary.json, summary.txt)")
    return summary
