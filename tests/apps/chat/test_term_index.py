"""The term index behind BM25 text search (migration 0005): triggers keep it equal to the chunks' words
through every kind of change, and the text search ranks by BM25."""

from __future__ import annotations

import asyncio
import math
import threading
import time

import psycopg
import pytest

from apps.chat.access import SYSTEM
from apps.chat.database import Database
from apps.chat.search import Searcher, SearchRequest

from .conftest import ingest

# The index as triggers keep it, and as it would be if computed afresh from the chunks.
KEPT = {
    "postings": "SELECT chunk_id, term, document_id, access_list_id FROM chunk_terms",
    "term counts": "SELECT term, chunks FROM term_statistics WHERE chunks > 0",
    "corpus": "SELECT chunks, total_length FROM corpus_statistics",
}
COMPUTED = {
    "postings": "SELECT c.id, w.lexeme, c.document_id, d.access_list_id"
    " FROM chunks c JOIN documents d ON d.id = c.document_id, unnest(c.search_vector) w",
    "term counts": "SELECT w.lexeme, count(*) FROM chunks c, unnest(c.search_vector) w GROUP BY w.lexeme",
    "corpus": "SELECT count(*), coalesce(sum((SELECT sum(cardinality(w.positions)) FROM unnest(c.search_vector) w)), 0)"
    " FROM chunks c",
}


def assert_index_matches_chunks(database_url: str) -> None:
    # The tests' server user is a superuser: these reads see every row.
    with psycopg.connect(database_url) as conn:
        for name in KEPT:
            kept = sorted(conn.execute(KEPT[name]).fetchall())
            computed = sorted(tuple(row) for row in conn.execute(COMPUTED[name]).fetchall())
            assert kept == computed, name


def test_the_index_follows_ingestion_edits_removals_updates_and_truncation(make_settings, corpus_dir, database_url):
    settings = make_settings()
    asyncio.run(ingest(settings, [corpus_dir]))
    assert_index_matches_chunks(database_url)

    (corpus_dir / "parking.md").write_text("# Parking\n\nBicycles park in the courtyard from seven.\n")
    (corpus_dir / "vacation.md").unlink()
    asyncio.run(ingest(settings, [corpus_dir]))
    assert_index_matches_chunks(database_url)

    with psycopg.connect(database_url) as conn:
        conn.execute("UPDATE chunks SET content = content || ' zeppelin hangar' WHERE ordinal = 0")
    assert_index_matches_chunks(database_url)

    with psycopg.connect(database_url) as conn:
        conn.execute("TRUNCATE documents, chunks")
    assert_index_matches_chunks(database_url)


def test_the_index_stays_exact_when_files_are_ingested_and_replaced_at_once(make_settings, tmp_path, database_url):
    """Four files at a time write their term rows at once and take turns for the word counts (migration
    0007): no count is lost or doubled, and replacing documents (their old chunks deleted in the same
    transactions) does not deadlock against new ones."""
    folder = tmp_path / "many"
    folder.mkdir()
    words = ["harbour", "ledger", "orchard", "quarry", "saddle", "tundra", "velvet", "walnut"]
    for number in range(24):
        picked = " ".join(words[(number + offset) % len(words)] for offset in range(number % 5 + 1))
        (folder / f"note-{number:02d}.md").write_text(f"# Note {number}\n\nThe {picked} note number {number}.\n")
    settings = make_settings(ingest_concurrency=4)

    first = asyncio.run(ingest(settings, [folder]))
    assert len(first.added) == 24 and first.failed == []
    assert_index_matches_chunks(database_url)

    for number in range(0, 24, 2):  # half change, and the new documents go in beside their replacement
        (folder / f"note-{number:02d}.md").write_text(f"# Note {number}\n\nA rewritten {words[number % 8]} note.\n")
        (folder / f"extra-{number:02d}.md").write_text(f"# Extra {number}\n\nAn extra {words[-1 - number % 8]} note.\n")
    second = asyncio.run(ingest(settings, [folder]))
    assert (len(second.replaced), len(second.added), len(second.unchanged)) == (12, 12, 12)
    assert_index_matches_chunks(database_url)


def test_an_ingestion_locks_the_statistics_only_once_its_term_rows_are_written(make_settings, corpus_dir, database_url):
    """Migration 0007, what lets ingestions overlap: deleting no chunks (a new document's) takes no lock on
    corpus_statistics, and a chunk insert that must wait for that lock already holds the term rows' table."""
    asyncio.run(ingest(make_settings(), [corpus_dir]))
    with (
        psycopg.connect(database_url) as writer,
        psycopg.connect(database_url) as other,
        psycopg.connect(database_url, autocommit=True) as observer,
    ):
        writer.execute("DELETE FROM chunks WHERE document_id = -1")  # its transaction stays open
        other.execute("SELECT 1 FROM corpus_statistics FOR UPDATE NOWAIT")  # LockNotAvailable if it were held
        writer.rollback()  # `other` now holds the lock, in its open transaction

        (document_id,) = writer.execute("SELECT id FROM documents LIMIT 1").fetchone()
        writer_pid = writer.info.backend_pid
        writer.execute("SET lock_timeout = '10s'")
        inserting = threading.Thread(
            target=writer.execute,
            args=(
                "INSERT INTO chunks (document_id, ordinal, page, content) VALUES (%s, 9999, 1, 'zeppelin')",
                (document_id,),
            ),
        )
        inserting.start()
        try:
            for _ in range(500):  # until the insert waits for the lock
                waiting = observer.execute(
                    "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s", (writer_pid,)
                ).fetchone()
                if waiting and waiting[0]:
                    break
                time.sleep(0.01)
            held = observer.execute(
                "SELECT mode FROM pg_locks WHERE pid = %s AND relation = 'chunk_terms'::regclass AND granted",
                (writer_pid,),
            ).fetchall()
        finally:
            other.rollback()
            inserting.join()
        assert waiting == (True,)
        assert ("RowExclusiveLock",) in held  # its term rows were written before it waited
        writer.rollback()


TEXTS = [
    "The zeppelin hangar opens at dawn and the zeppelin crew checks the hangar doors.",
    "A hangar for gliders stands beside the runway, far from any zeppelin.",
    "Zeppelin tours leave on Sundays; tickets are sold in the hangar shop next to the cafe and the museum.",
    "The museum keeps a zeppelin engine, a propeller, maps, letters and photographs of the first flights.",
    "Gliders need no engine: they ride thermals above the fields and land on the grass runway.",
    "The cafe serves soup, bread and coffee to crews and visitors alike every day of the week.",
]


def bm25_ranking(documents: dict[int, dict[str, int]], query_terms: list[str]) -> list[int]:
    """Chunk ids by BM25 (Lucene's idf, k1 1.2, b 0.75) from each chunk's term frequencies."""
    average_length = sum(sum(terms.values()) for terms in documents.values()) / len(documents)
    scores = {}
    for chunk_id, terms in documents.items():
        length, score = sum(terms.values()), 0.0
        for term in query_terms:
            matching = sum(1 for other in documents.values() if term in other)
            if term in terms and matching:
                idf = math.log(1 + (len(documents) - matching + 0.5) / (matching + 0.5))
                frequency = terms[term]
                score += idf * frequency / (frequency + 1.2 * (0.25 + 0.75 * length / average_length))
        if score > 0:
            scores[chunk_id] = score
    return sorted(scores, key=lambda chunk_id: (-scores[chunk_id], chunk_id))


@pytest.mark.parametrize("query", ["zeppelin hangar", "gliders runway engine", "museum cafe crews", "hangar"])
def test_text_search_ranks_by_bm25(make_settings, query):
    async def run():
        database = Database(make_settings())
        await database.open()
        try:
            async with database.transaction(SYSTEM) as conn:
                await conn.execute(
                    "INSERT INTO documents (id, source, title, content_hash) VALUES (1, 'a/b.md', 'b', 'h')"
                )
                # One statement: every chunk is weighed against the same average length, as BM25 assumes.
                await conn.execute(
                    "INSERT INTO chunks (document_id, ordinal, page, content)"
                    " SELECT 1, ordinal - 1, 1, text FROM unnest(%s::text[]) WITH ORDINALITY AS t(text, ordinal)",
                    (TEXTS,),
                )
            rows = await database.fetch_all(
                "SELECT c.id, w.lexeme, cardinality(w.positions) FROM chunks c, unnest(c.search_vector) w",
                access=SYSTEM,
            )
            [(query_terms,)] = await database.fetch_all(
                "SELECT array_agg(lexeme) FROM unnest(to_tsvector('english', %s))", (query,)
            )
            request = SearchRequest(query, 10, 0.0, "text", None, SYSTEM)
            found = await Searcher(database, candidates=10, text_limit=100).search(request)
        finally:
            await database.close()
        documents: dict[int, dict[str, int]] = {}
        for chunk_id, term, frequency in rows:
            documents.setdefault(chunk_id, {})[term] = frequency
        return [result.chunk_id for result in found], bm25_ranking(documents, query_terms)

    found, expected = asyncio.run(run())
    assert found == expected
