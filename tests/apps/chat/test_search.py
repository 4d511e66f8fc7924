"""Hybrid search ranking on a small corpus with known answers."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from apps.chat.access import AccessFilter
from apps.chat.database import Database
from apps.chat.search import Searcher, SearchRequest, SearchResult, fuse

QUESTIONS = {
    "how many vacation days do employees get": "vacation.md",
    "receipts for expenses above fifty euros": "expenses.txt",
    "laptop disk encryption": "security.html",
    "when does the car park open": "parking.md",
}


def search(app, q: str, **params) -> httpx.Response:
    return app.client.get("/api/search", params={"q": q, **params})


@pytest.mark.parametrize("mode", ["hybrid", "vectors", "text"])
def test_each_mode_ranks_the_known_answer_first(chat_app, mode):
    for question, expected in QUESTIONS.items():
        response = search(chat_app, question, retrieval_mode=mode)
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        assert results, f"{mode}: nothing found for {question!r}"
        assert results[0]["source"].endswith(expected), (mode, question, results)


def test_results_carry_title_source_page_snippet_and_descending_scores(chat_app):
    results = search(chat_app, "vacation days", top=3).json()["results"]

    assert len(results) == 3
    first = results[0]
    assert first["title"] == "Vacation policy"
    assert first["page"] == 1
    assert first["citation"] == f"{first['source']}#vacation-policy"
    assert "twenty-five days" in first["snippet"]
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)


def test_hybrid_scores_a_chunk_found_by_both_sides_higher_than_one_side_can(chat_app):
    # Reciprocal rank fusion: rank 1 on both lists scores 2/61; one list alone at most 1/61.
    best = search(chat_app, "paid vacation per year", top=1).json()["results"][0]
    assert best["score"] == pytest.approx(2 / 61)


def test_top_and_minimum_score_limit_results(chat_app):
    assert len(search(chat_app, "the", top=1, retrieval_mode="vectors").json()["results"]) == 1
    response = chat_app.client.post(
        "/chat",
        json={
            "messages": [{"role": "user", "content": "vacation days"}],
            "context": {"overrides": {"minimum_score": 0.0325, "top": 10}},
        },
    )
    data_points = response.json()["context"]["data_points"]["text"]
    assert len(data_points) == 1  # only a chunk ranked first on both sides (2/61) passes 0.0325
    assert data_points[0].split("#")[0].endswith("vacation.md")


def test_text_search_matches_any_word_when_no_chunk_has_all(chat_app):
    results = search(chat_app, "bicycle encryption zebra", retrieval_mode="text").json()["results"]
    sources = {r["source"].rsplit("/", 1)[-1] for r in results}
    assert sources == {"parking.md", "security.html"}


def test_stopword_only_query_returns_no_text_results(chat_app):
    assert search(chat_app, "the and of", retrieval_mode="text").json()["results"] == []


def test_each_kind_of_search_is_planned_once_per_connection(chat_app):
    """Planning a search costs more than running it, so each connection prepares one statement per kind and
    PostgreSQL reuses its generic plan (no planning per request). The kinds here: text (a hybrid search's
    text side and a text search), vectors with a hybrid search's candidates, vectors with a search's top."""
    settings = chat_app.settings.model_copy(update={"db_pool_min_size": 1, "db_pool_max_size": 1})
    see_all = AccessFilter(see_all=True, unrestricted_visible=True, user_ids=[], group_ids=[])
    embedding = [1.0] + [0.0] * (settings.embedding_dimensions - 1)

    async def search_then_read_plan_counts():
        database = Database(settings)
        await database.open()
        try:
            searcher = Searcher(database, settings.search_candidates, settings.text_search_candidate_limit)
            for _ in range(3):
                for mode in ("hybrid", "vectors", "text"):
                    assert await searcher.search(SearchRequest("vacation days", 5, 0.0, mode, embedding, see_all))
            return await database.fetch_all(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE %s",
                ("%in_collection%",),
            )
        finally:
            await database.close()

    plan_counts = asyncio.run(search_then_read_plan_counts())

    assert sorted(plan_counts) == [(3, 0), (3, 0), (6, 0)]


def _result(chunk_id: int) -> SearchResult:
    return SearchResult(chunk_id, "title", "corpus/a.md", 1, f"chunk {chunk_id}", 0.0)


def test_fusion_adds_reciprocal_ranks_and_breaks_ties_by_chunk_id():
    vectors = [_result(7), _result(3), _result(9)]
    text = [_result(3), _result(8), _result(7)]

    fused = fuse([vectors, text], top=10, minimum_score=0.0)

    assert [(r.chunk_id, r.score) for r in fused] == [
        (3, pytest.approx(1 / 62 + 1 / 61)),
        (7, pytest.approx(1 / 61 + 1 / 63)),
        (8, pytest.approx(1 / 62)),
        (9, pytest.approx(1 / 63)),
    ]
    assert fused[0].content == "chunk 3"


def test_fusion_keeps_the_top_at_or_above_the_minimum_score():
    fused = fuse([[_result(1), _result(2)], [_result(2), _result(1)]], top=1, minimum_score=0.0)
    assert [r.chunk_id for r in fused] == [1]  # both score 1/61 + 1/62: the lower id first
    assert fuse([[_result(1)], []], top=5, minimum_score=1 / 60) == []
