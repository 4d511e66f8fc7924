"""benchmarks/retrieval_quality.py: its metrics are trec_eval's, and the whole benchmark runs end to end on a
tiny BEIR-format collection (the hash embedding stands in for the model), the rag-postgres-openai-python
sample's query shape included, so that a change to the app's search or schema that breaks it shows here
rather than in the next person's benchmark run."""

from __future__ import annotations

import asyncio
import json
import math

import pytest

from benchmarks import retrieval_quality
from tests.apps.chat.conftest import create_database, scratch_postgres_server

DOCUMENTS = {
    "d1": ("Parking garage", "Employees park in the north garage with a permit sticker."),
    "d2": ("Laptop encryption", "Every laptop must use full disk encryption before it leaves the office."),
    "d3": ("Travel expenses", "Receipts for travel expenses are filed within thirty days of the trip."),
    "d4": ("Vacation policy", "Vacation requests go to the manager two weeks ahead."),
}
QUERIES = {
    "q1": "where do employees park with a permit",
    "q2": "laptop disk encryption",
    "q3": "filing travel receipts",
    # "zebra" is in no document: the app's text mode matches any word, the sample's plainto_tsquery needs all.
    "q4": "north garage sticker zebra",
    "q9": "an unjudged query",
}
QRELS = [("q1", "d1", 2), ("q2", "d2", 1), ("q3", "d3", 2), ("q3", "d1", 0), ("q4", "d1", 1)]


def write_collection(folder):
    folder.mkdir()
    (folder / "qrels").mkdir()
    with (folder / "corpus.jsonl").open("w") as corpus:
        for doc_id, (title, text) in DOCUMENTS.items():
            corpus.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with (folder / "queries.jsonl").open("w") as queries:
        for query_id, text in QUERIES.items():
            queries.write(json.dumps({"_id": query_id, "text": text}) + "\n")
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{grade}" for q, d, grade in QRELS]
    (folder / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n")
    return folder


def test_ndcg_uses_graded_gains_and_the_ideal_ranking_of_the_judgments():
    qrels = {"q1": {"a": 2, "b": 1, "c": 0}}
    run = {"q1": {"b": 3.0, "a": 2.0, "z": 1.0}}  # b, a, z

    scores = retrieval_quality.evaluate(qrels, run)

    ideal = 2 + 1 / math.log2(3)
    assert scores["nDCG@10"] == pytest.approx((1 + 2 / math.log2(3)) / ideal)
    assert scores["Recall@100"] == 1.0


def test_a_query_without_results_counts_zero():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}

    scores = retrieval_quality.evaluate(qrels, {"q1": {"a": 1.0}})

    assert scores == {"nDCG@10": 0.5, "Recall@100": 0.5}


def test_recall_counts_only_documents_within_the_first_hundred():
    qrels = {"q1": {"late": 1, "early": 1}}
    run = {"q1": {f"filler-{n}": 200.0 - n for n in range(100)} | {"early": 250.0, "late": 1.0}}

    assert retrieval_quality.evaluate(qrels, run)["Recall@100"] == 0.5


def test_chunks_become_documents_at_the_rank_of_their_best_chunk():
    sources = ["c/d2", "c/d1", "c/d2", "c/d3"]

    ranking = retrieval_quality.documents_ranking(sources, "c", depth=2)

    assert list(ranking) == ["d2", "d1"]
    assert ranking["d2"] > ranking["d1"]


def test_the_collection_keeps_only_judged_queries(tmp_path):
    collection = retrieval_quality.load_collection(write_collection(tmp_path / "tiny"))

    assert collection.name == "tiny"
    assert list(collection.queries) == ["q1", "q2", "q3", "q4"]
    assert collection.qrels["q3"] == {"d3": 2, "d1": 0}
    assert collection.documents["d2"][0] == "Laptop encryption"


@pytest.fixture(scope="module")
def database_url():
    with scratch_postgres_server() as server:
        yield create_database(server)


def test_every_mode_the_sample_and_the_baseline_run_end_to_end(tmp_path, database_url):
    collection = retrieval_quality.load_collection(write_collection(tmp_path / "tiny"))
    embedder = retrieval_quality.HashEmbedder()

    def run():
        return asyncio.run(
            retrieval_quality.measure(collection, embedder, tmp_path / "cache", database_url=database_url)
        )

    report = run()
    again = run()  # the loaded data set and the cached embeddings are reused

    rows = {row.system: row for row in report.rows}
    assert list(rows) == [
        "app hybrid",
        "app text",
        "app vectors",
        "peer hybrid",
        "peer text",
        "peer vectors",
        "bm25s",
    ]
    for system in ("app hybrid", "app text", "app vectors", "bm25s"):
        assert rows[system].recall_at_100 == 1.0, rows[system]
        assert rows[system].ndcg_at_10 > 0.9, rows[system]
        assert rows[system].no_result == 0.0, rows[system]
    for system in ("peer hybrid", "peer text", "peer vectors"):
        row = rows[system]
        assert 0.0 <= row.ndcg_at_10 <= 1.0 and 0.0 <= row.recall_at_100 <= 1.0, row
        assert 0.0 < row.documents_per_query <= retrieval_quality.PEER_CANDIDATES, row
    # The sample's text side needs every word: nothing for q4, found by the app's text mode.
    assert rows["peer text"].no_result == 0.25
    assert rows["peer text"].recall_at_100 == 0.75
    assert rows["peer hybrid"].no_result == rows["peer vectors"].no_result == 0.0
    assert report.chunks == len(DOCUMENTS)
    assert "load" in report.timings and "reuse" in again.timings
    assert "peer table" in report.timings
    assert [(row.ndcg_at_10, row.no_result) for row in again.rows] == [
        (row.ndcg_at_10, row.no_result) for row in report.rows
    ]
    assert len(list((tmp_path / "cache" / "embeddings").glob("*.npy"))) == 2
    table = retrieval_quality.format_report(report)
    assert "app vectors" in table and "peer hybrid" in table and "peer text" in table and "bm25s" in table
    assert "no result" in table and "25.0%" in table
    assert "at most 20 chunks" in table
