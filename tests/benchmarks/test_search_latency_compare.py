"""`search_latency --compare` times the rag-postgres-openai-python sample's query shape: the copy of the rows
must carry its indexes, and each mode's statement must return what that shape ranks first, or the
comparison would time the wrong query."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from pgvector import Vector
from pgvector.psycopg import register_vector_async

from benchmarks import search_latency
from tests.apps.chat.conftest import create_database, scratch_postgres_server

ROWS = [
    # id, content, embedding
    (1, "parking permit parking garage parking", [1.0, 0.0, 0.0]),
    (2, "laptop encryption policy", [0.0, 1.0, 0.0]),
    (3, "parking near the office", [0.0, 0.0, 1.0]),
    (4, "travel expense receipt", [0.7, 0.7, 0.0]),
]


@pytest.fixture(scope="module")
def database_uri():
    with scratch_postgres_server() as server:
        yield create_database(server)


def run(database_uri: str, work):
    async def go():
        async with await psycopg.AsyncConnection.connect(database_uri, autocommit=True) as conn:
            await conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            await register_vector_async(conn)
            await conn.execute("DROP TABLE IF EXISTS chunks, peer_chunks")
            await conn.execute("CREATE TABLE chunks (id bigint PRIMARY KEY, content text, embedding vector(3))")
            for row_id, content, embedding in ROWS:
                await conn.execute("INSERT INTO chunks VALUES (%s, %s, %s)", (row_id, content, Vector(embedding)))
            await search_latency.build_peer_table(conn, 3, "fingerprint-1")
            return await work(conn)

    return asyncio.run(go())


def test_the_copy_has_the_samples_indexes_and_every_row(database_uri):
    async def inspect(conn):
        count = (await (await conn.execute("SELECT count(*) FROM peer_chunks")).fetchone())[0]
        indexes = await (
            await conn.execute("SELECT indexdef FROM pg_indexes WHERE tablename = 'peer_chunks' ORDER BY indexdef")
        ).fetchall()
        return count, [row[0] for row in indexes]

    count, indexes = run(database_uri, inspect)

    assert count == len(ROWS)
    assert any("USING gin (search_vector)" in index for index in indexes)
    assert any(
        "USING hnsw (embedding vector_cosine_ops) WITH (m='16', ef_construction='64')" in index for index in indexes
    )


def test_each_mode_ranks_as_the_samples_shape_does(database_uri):
    async def search(conn):
        return {
            mode: [row[0] for row in await search_latency.peer_search(conn, mode, "parking", [0.0, 0.1, 1.0], 3)]
            for mode in ("vectors", "text", "hybrid")
        }

    ranked = run(database_uri, search)

    assert ranked["vectors"][0] == 3  # nearest by cosine distance
    assert ranked["text"] == [1, 3]  # ts_rank_cd: three mentions beat one; rows without the word are left out
    assert ranked["hybrid"][0] == 3  # first in vectors, second in text: the best reciprocal rank sum
    assert len(ranked["hybrid"]) == 3


def test_a_copy_with_the_same_fingerprint_is_kept(database_uri, capsys):
    async def again(conn):
        await search_latency.build_peer_table(conn, 3, "fingerprint-1")

    run(database_uri, again)

    assert "reusing the peer_chunks table" in capsys.readouterr().out
