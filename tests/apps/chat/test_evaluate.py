"""Tests of `python -m apps.chat evaluate`: input checks, metrics, results folder, judge path."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from apps.chat import citations, evaluate
from apps.chat.app import create_app
from apps.chat.evaluate import Case, EvaluationInputError, load_cases

from .conftest import ingest
from .fake_openai import default_reply

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
    qa = write_jsonl(
        tmp_path / "qa.jsonl",
        [
            json.dumps({"question": "How to run?", "truth": "Serve it [README.md#page=1]"}),
            "",
            json.dumps({"question": " Azure? ", "truth": "Set the host [docs/setup.md]", "extra": 1}),
        ],
    )
    assert load_cases(qa) == [
        Case(line=1, question="How to run?", truth="Serve it [README.md#page=1]"),
        Case(line=3, question="Azure?", truth="Set the host [docs/setup.md]"),
    ]


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ('{"question": "q", "truth": ', "line 2: not valid JSON"),
        ('["question", "truth"]', "line 2: expected a JSON object"),
        ('{"question": "q"}', "line 2: missing key 'truth'"),
        ('{"truth": "t"}', "line 2: missing key 'question'"),
        ('{"question": "  ", "truth": "t"}', "line 2: 'question' must be a non-empty string"),
        ('{"question": "q", "truth": 7}', "line 2: 'truth' must be a non-empty string"),
    ],
)
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


def test_the_app_command_line_hands_every_option_to_evaluate(tmp_path, capsys):
    from apps.chat.__main__ import main as command_line

    with pytest.raises(SystemExit) as exit_info:
        command_line(["evaluate", "--help"])
    assert exit_info.value.code == 0
    assert "usage: python -m apps.chat evaluate" in capsys.readouterr().out

    qa = write_jsonl(tmp_path / "qa.jsonl", ['{"question": "q"}'])
    assert command_line(["evaluate", "--no-judge", str(qa)]) == 2
    assert "line 1: missing key 'truth'" in capsys.readouterr().err


# ---- Metrics ----


def test_a_truth_source_without_page_matches_every_page_of_it():
    assert evaluate.cites("docs/setup.md#page=2", "docs/setup.md")
    assert evaluate.cites("docs/setup.md#page=2", "docs/setup.md#page=2")
    assert not evaluate.cites("docs/setup.md#page=3", "docs/setup.md#page=2")
    assert not evaluate.cites("docs/setup.md.bak#page=2", "docs/setup.md")


def test_a_truth_source_may_leave_out_the_folders_the_corpus_was_ingested_from():
    assert evaluate.cites("corpus/docs/setup.md#page=2", "setup.md")
    assert evaluate.cites("corpus/docs/setup.md#page=2", "docs/setup.md#page=2")
    assert not evaluate.cites("corpus/docs/my-setup.md#page=2", "setup.md")
    assert not evaluate.cites("setup.md#page=2", "docs/setup.md")


def test_retrieval_and_citation_metrics_for_one_question():
    chat = canned_chat("Set the host [docs/setup.md#page=2].", [README_PASSAGE, SETUP_PASSAGE])
    case = Case(line=1, question="Azure?", truth="Set POSTGRES_HOST [docs/setup.md#page=2]")

    result = evaluate_case(case, chat, {"top": 3}, judge=None)

    assert chat.requests == [
        {"messages": [{"role": "user", "content": "Azure?"}], "context": {"overrides": {"top": 3}}}
    ]
    assert result.truth_sources == ["docs/setup.md#page=2"]
    assert result.source_found is True
    assert result.source_rank == 2
    assert result.answer_citations == ["docs/setup.md#page=2"]
    assert result.citation_match is True
    assert result.citations_in_data_points is True
    assert result.groundedness is None and result.relevance is None
    assert result.latency_ms is not None and result.latency_ms >= 0


def test_only_brackets_shaped_like_citations_count_as_citations():
    chat = canned_chat("Docs say to cite as [source#page=n] [README.md#page=1] [see above]", [README_PASSAGE])
    result = evaluate_case(Case(1, "q", "t [README.md]"), chat, {}, judge=None)
    assert result.answer_citations == ["README.md#page=1"]
    assert result.citations_in_data_points is True


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
    answers = iter(
        [
            ("A [README.md#page=1]", [README_PASSAGE, SETUP_PASSAGE]),  # found at rank 1
            ("B [docs/setup.md#page=2]", [README_PASSAGE, SETUP_PASSAGE]),  # found at rank 2
            ("C", [README_PASSAGE]),  # not found
        ]
    )

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
    results, summary = run_evaluation(
        [Case(1, "How to run?", "[README.md]")], chat, judge=judge, judge_name="judge-model"
    )

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


# ---- Against the app (embedded PostgreSQL, fake OpenAI server) ----

QUESTIONS = [
    {"question": "How many days of paid vacation do employees get?", "truth": "Twenty-five days [vacation.md]"},
    {"question": "When does the staff car park open?", "truth": "At seven in the morning [parking.md#page=1]"},
    {"question": "Do laptops need full disk encryption?", "truth": "Yes, always [security.html]"},
]
# Environment variables that would point the evaluator's settings elsewhere than this test says.
SETTINGS_VARIABLES = [
    "DATABASE_URL",
    "POSTGRES_HOST",
    "AZURE_OPENAI_ENDPOINT",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "EMBEDDING_DIMENSIONS",
    "CHAT_MODEL",
    "AUTH_MODE",
]


@pytest.fixture
def qa_file(tmp_path) -> Path:
    return write_jsonl(tmp_path / "qa.jsonl", [json.dumps(question) for question in QUESTIONS])


@pytest.fixture
def clean_environment(monkeypatch):
    for name in SETTINGS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def local_app_with(monkeypatch):
    """`local_app_with(settings)`: evaluate without --url then runs the app with these settings, in
    this process (instead of the app the environment configures)."""

    def use(settings) -> None:
        monkeypatch.setattr(evaluate, "local_app", lambda: create_app(settings))

    return use


def read_results(out_dir: Path) -> tuple[list[dict], dict]:
    results = [json.loads(line) for line in (out_dir / "results.jsonl").read_text().splitlines()]
    return results, json.loads((out_dir / "summary.json").read_text())


def test_evaluate_a_running_app_by_url(served_chat_app, qa_file, tmp_path, clean_environment, capsys):
    out_dir = tmp_path / "out"

    assert evaluate.main([str(qa_file), "--url", served_chat_app.base_url, "--out", str(out_dir)]) == 0

    results, summary = read_results(out_dir)
    assert [result["source_rank"] for result in results] == [1, 1, 1]
    assert all(result["citation_match"] and result["citations_in_data_points"] for result in results)
    assert all(result["groundedness"] is None for result in results)
    assert summary["retrieval"]["source_found_rate"] == 1.0
    assert summary["retrieval"]["mean_reciprocal_rank"] == 1.0
    assert summary["answers"]["judge"] == "not configured"
    assert "Results written to" in capsys.readouterr().out
    assert (out_dir / "summary.txt").read_text().startswith(f"Evaluation of {served_chat_app.base_url}")


def test_the_configured_model_judges_groundedness_and_relevance(
    chat_app, fake_openai, qa_file, tmp_path, clean_environment, local_app_with
):
    def judge_or_answer(messages):
        prompt = messages[-1]["content"]
        if "Rate from 1 to 5" in prompt:
            return "5" if "SOURCES:" in prompt else "3"
        return default_reply(messages)

    fake_openai.state.reply = judge_or_answer
    clean_environment.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    clean_environment.setenv("CHAT_MODEL", "judge-model")
    local_app_with(chat_app.settings)

    assert evaluate.main([str(qa_file), "--out", str(tmp_path / "out")]) == 0

    results, summary = read_results(tmp_path / "out")
    assert [(result["groundedness"], result["relevance"]) for result in results] == [(5, 3)] * 3
    assert (summary["answers"]["judge"], summary["answers"]["groundedness_mean"]) == ("judge-model", 5)
    judge_prompts = [
        r.body["messages"][-1]["content"]
        for r in fake_openai.requests_to("/chat/completions")
        if "Rate from 1 to 5" in r.body["messages"][-1]["content"]
    ]
    assert len(judge_prompts) == 6
    assert any("twenty-five days of paid vacation" in prompt for prompt in judge_prompts)


def test_evaluate_runs_the_local_app_in_process_by_default(chat_app, fake_openai, qa_file, tmp_path, clean_environment):
    # The same database and model the served app uses, configured the way `serve` reads them.
    clean_environment.setenv("DATABASE_URL", chat_app.settings.database_url)
    clean_environment.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    clean_environment.setenv("EMBEDDING_DIMENSIONS", str(chat_app.settings.embedding_dimensions))

    assert evaluate.main([str(qa_file), "--no-judge", "--top", "2", "--out", str(tmp_path / "out")]) == 0

    results, summary = read_results(tmp_path / "out")
    assert summary["retrieval"]["source_found_rate"] == 1.0
    assert all(len(result["data_points"]) <= 2 for result in results)
    assert summary["answers"]["judge"] == "not configured"


def test_app_errors_are_recorded_per_question(
    chat_app, fake_openai, qa_file, tmp_path, clean_environment, local_app_with
):
    fake_openai.fail_next(500, times=100, retry_after="0")
    local_app_with(chat_app.settings)

    assert evaluate.main([str(qa_file), "--out", str(tmp_path / "out")]) == 1

    results, summary = read_results(tmp_path / "out")
    assert all(result["error"].startswith("RuntimeError: HTTP 503:") for result in results)
    assert summary["errors"] == 3


# ---- The shipped ground truth ----

SHIPPED_GROUND_TRUTH = Path(evaluate.__file__).parent / "eval" / "ground_truth.jsonl"
BUNDLED_SAMPLE_DOCS = Path(evaluate.__file__).parent / "sample_docs"


def test_the_shipped_ground_truth_cites_only_bundled_sample_documents():
    cases = load_cases(SHIPPED_GROUND_TRUTH)
    bundled = {path.name for path in BUNDLED_SAMPLE_DOCS.iterdir()}
    assert len(cases) >= 10
    for case in cases:
        sources = citations.bracketed(case.truth)
        assert sources, f"line {case.line}: the truth cites no source"
        assert {citations.split_citation(source)[0] for source in sources} <= bundled, f"line {case.line}"


@pytest.mark.parametrize("model", ["fake model", "no model"])
def test_the_shipped_ground_truth_finds_its_sources_in_the_sample_corpus(
    make_settings, fake_openai, tmp_path, clean_environment, local_app_with, model
):
    settings = make_settings() if model == "fake model" else make_settings(openai_base_url=None)
    asyncio.run(ingest(settings, [BUNDLED_SAMPLE_DOCS]))
    local_app_with(settings)

    assert evaluate.main([str(SHIPPED_GROUND_TRUTH), "--out", str(tmp_path)]) == 0

    results, summary = read_results(tmp_path)
    assert summary["errors"] == 0
    assert summary["retrieval"]["source_found_rate"] == 1.0, [r["question"] for r in results if not r["source_found"]]


def test_the_judge_sends_no_temperature_which_the_deployed_reasoning_models_refuse(fake_openai, monkeypatch):
    # gpt-5 family deployments accept only their default temperature and answer 400 to temperature=0.
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)

    async def judge_once():
        async with evaluate.model_judge(True) as (judge, _model):
            return await judge("Is the answer grounded? Reply yes or no.")

    asyncio.run(judge_once())
    [request] = fake_openai.requests_to("/chat/completions")
    assert "temperature" not in request.body
