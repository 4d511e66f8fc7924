"""Tests of `python -m apps.chat evaluate`: input checks, metrics, results folder, judge path."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from apps.chat import evaluate
from apps.chat.evaluate import Case, EvaluationInputError, load_cases

README_PASSAGE = "README.md#page=1: Run python -m apps.chat serve to start the app locally."
SETUP_PASSAGE = "docs/setup.md#page=2: Set POSTGRES_HOST to use Azure PostgreSQL."


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def canned_chat(answer: str, data_points: list[str]):
    """A chat backend that always answers the same, recording the requests it got."""
    requests = []

    async def chat(request):
        requests.append(request)
        return {"message": {"role": "assistant", "content": answer}, "context": {"data_points": {"text": data_points}}}

    chat.requests = requests
    return chat


def evaluate_case(*args, **kwargs):
    return asyncio.run(evaluate.evaluate_case(*args, **kwargs))


def run_evaluation(*args, **kwargs):
    return asyncio.run(evaluate.run_evaluation(*args, **kwargs))


# ---- Input ----

def test_load_cases_reads_questions_and_keeps_line_numbers(tmp_path):
    qa = write_jsonl(tmp_path / "qa.jsonl", [
        json.dumps({"question": "How to run?", "truth": "Serve it [README.md#page=1]"}),
        "",
        json.dumps({"question": " Azure? ", "truth": "Set the host [docs/setup.md]", "extra": 1}),
    ])
    assert load_cases(qa) == [
        Case(line=1, question="How to run?", truth="Serve it [README.md#page=1]"),
        Case(line=3, question="Azure?", truth="Set the host [docs/setup.md]"),
    ]


@pytest.mark.parametrize(("bad_line", "message"), [
    ('{"question": "q", "truth": ', "line 2: not valid JSON"),
    ('["question", "truth"]', "line 2: expected a JSON object"),
    ('{"question": "q"}', "line 2: missing key 'truth'"),
    ('{"truth": "t"}', "line 2: missing key 'question'"),
    ('{"question": "  ", "truth": "t"}', "line 2: 'question' must be a non-empty string"),
    ('{"question": "q", "truth": 7}', "line 2: 'truth' must be a non-empty string"),
])
def test_bad_lines_are_named_in_the_error(tmp_path, bad_line, message):
    qa = write_jsonl(tmp_path / "qa.jsonl", [json.dumps({"question": "ok", "truth": "ok"}), bad_line])
    with pytest.raises(EvaluationInputError, match=message):
        load_cases(qa)


def test_missing_and_empty_files_are_reported(tmp_path):
    with pytest.raises(EvaluationInputError, match="file not found"):
        load_cases(tmp_path / "absent.jsonl")
    with pytest.raises(EvaluationInputError, match="no questions"):
        load_cases(write_jsonl(tmp_path / "empty.jsonl", ["", "  "]))


def test_main_exits_2_with_the_line_on_bad_input(tmp_path, capsys):
    qa = write_jsonl(tmp_path / "qa.jsonl", ["not json"])
    assert evaluate.main([str(qa), "--out", str(tmp_path / "out")]) == 2
    assert "line 1: not valid JSON" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ---- Metrics ----

def test_a_truth_source_without_page_matches_every_page_of_it():
    assert evaluate.cites("docs/setup.md#page=2", "docs/setup.md")
    assert evaluate.cites("docs/setup.md#page=2", "docs/setup.md#page=2")
    assert not evaluate.cites("docs/setup.md#page=3", "docs/setup.md#page=2")
    assert not evaluate.cites("docs/setup.md.bak#page=2", "docs/setup.md")


def test_retrieval_and_citation_metrics_for_one_question():
    chat = canned_chat("Set the host [docs/setup.md#page=2].", [README_PASSAGE, SETUP_PASSAGE])
    case = Case(line=1, question="Azure?", truth="Set POSTGRES_HOST [docs/setup.md#page=2]")

    result = evaluate_case(case, chat, {"top": 3}, judge=None)

    assert chat.requests == [{"messages": [{"role": "user", "content": "Azure?"}], "context": {"overrides": {"top": 3}}}]
    assert result.truth_sources == ["docs/setup.md#page=2"]
    assert result.source_found is True
    assert result.source_rank == 2
    assert result.answer_citations == ["docs/setup.md#page=2"]
    assert result.citation_match is True
    assert result.citations_in_data_points is True
    assert result.groundedness is None and result.relevance is None
    assert result.latency_ms is not None and result.latency_ms >= 0


def test_a_miss_and_a_citation_outside_the_data_points_are_reported():
    chat = canned_chat("See [other.md#page=9].", [README_PASSAGE])
    case = Case(line=4, question="Azure?", truth="Set POSTGRES_HOST [docs/setup.md]")

    result = evaluate_case(case, chat, {}, judge=None)

    assert result.source_found is False
    assert result.source_rank is None
    assert result.citation_match is False
    assert result.citations_in_data_points is False


def test_a_truth_without_source_leaves_retrieval_metrics_unknown():
    result = evaluate_case(Case(1, "q", "no citation here"), canned_chat("a", [README_PASSAGE]), {}, judge=None)
    assert result.source_found is None and result.source_rank is None and result.citation_match is None


def test_a_failed_request_is_recorded_and_the_run_goes_on():
    async def failing_chat(request):
        raise RuntimeError("HTTP 503: the model is unavailable")

    results, summary = run_evaluation([Case(1, "q", "t [README.md]"), Case(2, "r", "t [README.md]")], failing_chat)

    assert [result.error for result in results] == ["RuntimeError: HTTP 503: the model is unavailable"] * 2
    assert summary["errors"] == 2
    assert summary["retrieval"]["source_found_rate"] is None


def test_summary_aggregates_rank_and_latency():
    answers = iter([
        ("A [README.md#page=1]", [README_PASSAGE, SETUP_PASSAGE]),   # found at rank 1
        ("B [docs/setup.md#page=2]", [README_PASSAGE, SETUP_PASSAGE]),  # found at rank 2
        ("C", [README_PASSAGE]),                                     # not found
    ])

    async def chat(request):
        answer, data_points = next(answers)
        return {"message": {"content": answer}, "context": {"data_points": {"text": data_points}}}

    cases = [Case(1, "a", "[README.md]"), Case(2, "b", "[docs/setup.md]"), Case(3, "c", "[docs/setup.md]")]
    _, summary = run_evaluation(cases, chat)

    assert summary["questions"] == 3
    assert summary["retrieval"]["source_found_rate"] == pytest.approx(2 / 3, abs=0.001)
    assert summary["retrieval"]["mean_reciprocal_rank"] == pytest.approx((1 + 0.5 + 0) / 3, abs=0.001)
    assert summary["retrieval"]["mean_rank_when_found"] == 1.5
    assert summary["answers"]["citation_match_rate"] == pytest.approx(2 / 3, abs=0.001)
    assert summary["answers"]["judge"] == "not configured"
    assert summary["latency_ms"]["p95"] is not None


# ---- Judge ----

def test_the_judge_scores_groundedness_against_the_passages_and_relevance_against_the_question():
    prompts = []

    async def judge(prompt):
        prompts.append(prompt)
        return "4" if "SOURCES" in prompt else "Score: 5"

    chat = canned_chat("Serve it [README.md#page=1].", [README_PASSAGE])
    results, summary = run_evaluation([Case(1, "How to run?", "[README.md]")], chat, judge=judge, judge_name="judge-model")

    assert (results[0].groundedness, results[0].relevance) == (4, 5)
    assert README_PASSAGE in prompts[0] and "Serve it" in prompts[0]
    assert "How to run?" in prompts[1]
    assert summary["answers"]["judge"] == "judge-model"
    assert (summary["answers"]["groundedness_mean"], summary["answers"]["relevance_mean"]) == (4, 5)


def test_a_judge_reply_without_a_score_is_an_error_of_that_question_only():
    async def unsure_judge(prompt):
        return "I cannot say"

    chat = canned_chat("Serve it [README.md#page=1].", [README_PASSAGE])
    results, summary = run_evaluation([Case(1, "q", "[README.md]")], chat, judge=unsure_judge)

    assert results[0].groundedness is None
    assert "no score from 1 to 5" in results[0].judge_error
    assert results[0].source_found is True
    assert summary["answers"]["judge_errors"] == 1


# ---- Results folder ----

def test_results_folder_has_per_question_lines_and_a_summary(tmp_path):
    chat = canned_chat("Serve it [README.md#page=1].", [README_PASSAGE])
    cases = [Case(1, "How to run?", "[README.md]"), Case(2, "Again?", "[README.md#page=1]")]
    results, summary = run_evaluation(cases, chat)

    evaluate.write_results(tmp_path / "out", results, summary, evaluate.summary_text(summary, "test"))

    lines = (tmp_path / "out" / "results.jsonl").read_text().splitlines()
    assert [json.loads(line)["question"] for line in lines] == ["How to run?", "Again?"]
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["retrieval"]["source_found_rate"] == 1.0
    assert "truth source among the data points: 1.0" in (tmp_path / "out" / "summary.txt").read_text()
