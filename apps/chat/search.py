"""Hybrid retrieval: pgvector HNSW (cosine) and BM25 full text, fused with reciprocal rank fusion.

The database decides what a caller may read: row-level security (migration 0005) shows the search only
chunks of readable documents, from the AccessFilter the search runs under (Database.fetch_all). No
statement here repeats that rule, so none can get it wrong.

Each side produces a bounded candidate list before fusion, so a query's cost does not grow with
the number of chunks that match it:
- vectors: the HNSW index returns the nearest `candidates` chunks;
- text: BM25 over the term index (chunk_terms, migration 0005). Each query word's chunks are read best
  first from the index on (term, weight DESC), at most `text_limit` per word (its posting list cut short,
  as search engines do with impact-ordered lists); the chunks that score best on those lists are then
  scored exactly, every query word they hold counted, and ranked by that BM25 score.
Each side is one statement (SIDE_SQL around VECTOR_SIDE or TEXT_SIDE) that returns its chunks best first;
a hybrid search runs the two at once, on two pooled connections. `fuse` scores every search: a chunk's
score is the RRF sum over the lists it appears in, 1 / (RRF_K + rank).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from dataclasses import dataclass

from pgvector import Vector
from psycopg import sql

from . import citations
from .access import AccessFilter
from .concurrency import all_or_first_error
from .database import Database

RRF_K = 60
MAX_QUERY_WORDS = 12  # distinct words of a query used for full-text lookups
# How many chunks, per text candidate wanted, get their exact BM25 score computed. Each costs an index
# descent; with 100 chunks read per word (TEXT_SEARCH_CANDIDATE_LIMIT), 2 ranks NFCorpus as well as 4 did
# with 50 (benchmarks/README.md, "Retrieval quality").
TEXT_SHORTLIST_PER_CANDIDATE = 2

# Switches and limits in braces are written into the text as constants (search_statement);
# %(name)s are bind parameters.

# The last heading of sections near the start of readable documents (the unique index on
# (document_id, ordinal) finds them), in an order fixed by their text: the same corpus, the same examples.
EXAMPLE_HEADINGS_SQL = """
SELECT heading FROM (
    SELECT DISTINCT c.section[cardinality(c.section)] AS heading
    FROM documents d JOIN chunks c ON c.document_id = d.id AND c.ordinal < 20
    WHERE cardinality(c.section) > 0
) headings
WHERE length(heading) BETWEEN 4 AND 60
ORDER BY md5(heading), heading
LIMIT %(count)s
"""
# One side of a search: its CTE `ranked` (id, sort_key), best first by sort_key then id, is spliced into SIDE_SQL.
VECTOR_SIDE = """
-- The collection filter is a scalar subquery (computed once), not a join: a join would stop the
-- planner from walking the HNSW index in distance order.
vector_candidates AS MATERIALIZED (
    SELECT c.id, c.embedding::halfvec({dimensions}) <=> %(embedding)b::vector::halfvec({dimensions}) AS distance
    FROM chunks c
    WHERE c.embedding IS NOT NULL
      AND ({any_collection} OR c.document_id = ANY ((SELECT document_ids FROM in_collection)::bigint[]))
    -- The expression of the half-precision HNSW index (migration 0006).
    ORDER BY c.embedding::halfvec({dimensions}) <=> %(embedding)b::vector::halfvec({dimensions})
    LIMIT {candidates}
),
ranked AS (
    SELECT id, distance AS sort_key FROM vector_candidates
)"""
TEXT_SIDE = """
-- The query's distinct words (tsvector_to_array returns them sorted, without repeats).
query_terms AS (
    SELECT word AS term FROM unnest(tsvector_to_array(to_tsvector('english', %(query)s))) AS word
    LIMIT {max_query_words}
),
-- BM25's inverse document frequency of each query word (Lucene's form, never negative). The corpus size is
-- a scalar subquery: as a join, the planner would take corpus_statistics for the many rows its updates
-- leave dead, and size the aggregation below for them (a tenth of a millisecond a search).
term_idf AS MATERIALIZED (
    -- In float8 (0.5::float8): with a bare 0.5 the division and ln would be numeric, and each posting's
    -- score would convert the idf to float8 again: together a fifth of the text search's time.
    SELECT q.term, ln(1 + ((SELECT chunks FROM corpus_statistics) - s.chunks + 0.5::float8) / (s.chunks + 0.5::float8)) AS idf
    FROM query_terms q
    JOIN term_statistics s ON s.term = q.term AND s.chunks > 0
),
-- Each word's best chunks, read in weight order from the index (term, weight DESC).
postings AS MATERIALIZED (
    SELECT p.chunk_id, t.idf * p.weight AS score
    FROM term_idf t
    CROSS JOIN LATERAL (
        SELECT ct.chunk_id, ct.weight FROM chunk_terms ct
        WHERE ct.term = t.term
          AND ({any_collection} OR ct.document_id = ANY ((SELECT document_ids FROM in_collection)::bigint[]))
        ORDER BY ct.weight DESC
        LIMIT {text_limit}
    ) p
),
-- The chunks the lists score best, by the weights of the words whose lists they made...
text_shortlist AS MATERIALIZED (
    SELECT chunk_id FROM postings
    GROUP BY chunk_id
    ORDER BY sum(score) DESC, chunk_id
    LIMIT {shortlist}
),
-- ...then by their exact BM25 score: every query word's weight in the chunk.
query_idf AS MATERIALIZED (
    SELECT array_agg(term ORDER BY term) AS terms, array_agg(idf ORDER BY term) AS idfs FROM term_idf
),
ranked AS (
    SELECT s.chunk_id AS id, -sum(w.weight * q.idfs[array_position(q.terms, w.term)]) AS sort_key
    FROM text_shortlist s
    CROSS JOIN query_idf q
    CROSS JOIN LATERAL (
        SELECT ct.term, ct.weight FROM chunk_terms ct
        WHERE ct.chunk_id = s.chunk_id AND ct.term = ANY (q.terms)
        -- OFFSET 0 keeps this a subquery of its own, read by one descent of the primary key (chunk_id,
        -- term) a chunk: merged into the join, the generic plan may read the words' whole lists instead.
        OFFSET 0
    ) w
    GROUP BY s.chunk_id
)"""
# The side's best `top` chunks, best first; only those are read from the tables.
SIDE_SQL = """
WITH in_collection AS (
    SELECT ARRAY(SELECT id FROM documents WHERE {any_collection} OR collection = %(collection)s::text) AS document_ids
),
{side},
best AS MATERIALIZED (
    SELECT id, sort_key FROM ranked ORDER BY sort_key, id LIMIT %(top)s
)
SELECT c.id, d.title, d.source, c.page, c.content, c.anchor, c.section, c.ordinal
FROM best b
JOIN chunks c ON c.id = b.id
JOIN documents d ON d.id = c.document_id
ORDER BY b.sort_key, b.id
"""


@dataclass(frozen=True)
class SearchResult:
    chunk_id: int
    title: str
    source: str
    page: int
    content: str
    score: float
    anchor: str = ""  # the section's anchor; "" cites the page
    section: tuple[str, ...] = ()  # the section's heading path
    ordinal: int = 0  # the chunk's place in its document

    @property
    def citation(self) -> str:
        return citations.citation(self.source, self.page, self.anchor)

    @property
    def data_point(self) -> str:
        return citations.data_point(self.citation, self.content)


@dataclass(frozen=True)
class SearchRequest:
    query: str
    top: int
    minimum_score: float
    retrieval_mode: str  # hybrid | vectors | text
    embedding: list[float] | None  # required unless retrieval_mode is "text"
    access: AccessFilter
    collection: str | None = None  # only documents of this collection


class Searcher:
    def __init__(self, database: Database, candidates: int, text_limit: int):
        self.database = database
        self.candidates = candidates
        self.text_limit = text_limit

    async def search(self, request: SearchRequest) -> list[SearchResult]:
        use_vectors = request.retrieval_mode in ("hybrid", "vectors") and request.embedding is not None
        use_text = request.retrieval_mode in ("hybrid", "text")
        if not (use_vectors and use_text):
            sides = [await self._one_side(request, use_vectors, request.top)] if use_vectors or use_text else []
            return fuse(sides, request.top, request.minimum_score)
        # Hybrid: the two sides run at once, each on a pooled connection of its own, and are fused here, so
        # a search takes about as long as its slower side instead of both. If one fails, the other is
        # cancelled, so it does not hold its connection for nothing.
        width = max(self.candidates, request.top)
        sides = await all_or_first_error(self._one_side(request, True, width), self._one_side(request, False, width))
        return fuse(sides, request.top, request.minimum_score)

    async def _one_side(self, request: SearchRequest, vectors: bool, top: int) -> list[SearchResult]:
        """The best `top` chunks by vectors or by text, best first (unscored: `fuse` scores them)."""
        statement = search_statement(
            vectors=vectors,
            any_collection=request.collection is None,
            dimensions=self.database.settings.embedding_dimensions,
            # Text: the candidates the exact BM25 ranking picks from; vectors: the results are the candidates.
            candidates=top if vectors else max(self.candidates, top),
            text_limit=self.text_limit,
        )
        parameters = {
            "collection": request.collection,
            # Bound in binary (%(embedding)b): 4 bytes a dimension instead of about 20 characters of text.
            "embedding": Vector(request.embedding) if vectors else None,
            "query": request.query,
            "top": top,
        }
        # prepare=True: each connection plans this statement once (see search_statement).
        rows = await self.database.fetch_all(statement, parameters, access=request.access, prepare=True)
        return [SearchResult(*row[:5], 0.0, row[5], tuple(row[6]), row[7]) for row in rows]

    async def collection_names(self) -> list[str]:
        """The collections there are (a search may be narrowed to one)."""
        return [name for (name,) in await self.database.fetch_all("SELECT name FROM collections ORDER BY name")]

    async def example_headings(self, access: AccessFilter, count: int) -> list[str]:
        """Up to `count` section headings of documents the caller may read, the same for the same corpus."""
        rows = await self.database.fetch_all(EXAMPLE_HEADINGS_SQL, {"count": count}, access=access)
        return [heading for (heading,) in rows]


def fuse(ranked_lists: list[list[SearchResult]], top: int, minimum_score: float) -> list[SearchResult]:
    """Reciprocal rank fusion of lists ordered best first: a chunk scores the sum over the lists it is on of
    1 / (RRF_K + its rank there); the best `top` scoring at least `minimum_score`, ties by chunk id."""
    scores: dict[int, float] = {}
    found: dict[int, SearchResult] = {}
    for results in ranked_lists:
        for rank, result in enumerate(results, start=1):
            scores[result.chunk_id] = scores.get(result.chunk_id, 0.0) + 1.0 / (RRF_K + rank)
            found[result.chunk_id] = result
    best = sorted(scores, key=lambda chunk_id: (-scores[chunk_id], chunk_id))
    kept = [chunk_id for chunk_id in best if scores[chunk_id] >= minimum_score][:top]
    return [dataclasses.replace(found[chunk_id], score=scores[chunk_id]) for chunk_id in kept]


def one_per_citation(results: list[SearchResult]) -> list[SearchResult]:
    """The results with the chunks of one citation (a section, or a page) joined into one passage, in
    document order without the text their overlaps repeat, at the rank and score of the best of them:
    so that each citation names exactly one passage."""
    groups: dict[str, list[SearchResult]] = {}
    for result in results:
        groups.setdefault(result.citation, []).append(result)
    joined = []
    for group in groups.values():
        best, in_order = group[0], sorted(group, key=lambda result: result.ordinal)
        content = in_order[0].content
        for previous, result in itertools.pairwise(in_order):
            overlap = _overlap(content, result.content) if result.ordinal == previous.ordinal + 1 else 0
            if overlap:
                content += result.content[overlap:]
            else:
                content += ("\n" if result.ordinal == previous.ordinal + 1 else "\n…\n") + result.content
        joined.append(dataclasses.replace(best, content=content))
    return joined


def _overlap(text: str, following: str, shortest: int = 8) -> int:
    """The length of the longest end of text that the following chunk starts with (0 below `shortest`
    characters: so short a match is likelier chance than overlap)."""
    for length in range(min(len(text), len(following)), shortest - 1, -1):
        if text.endswith(following[:length]):
            return length
    return 0


@functools.lru_cache(maxsize=64)
def search_statement(*, vectors: bool, any_collection: bool, candidates: int, text_limit: int, dimensions: int) -> str:
    """SIDE_SQL for one side, with its switches and limits written in as constants.

    Planning this query costs more than running it on a warm index, so the app prepares it once per
    connection and PostgreSQL reuses one generic plan (plan_cache_mode, database.py). With the switches
    as constants that plan is the right one for each combination, and the HNSW scan is planned for a
    known LIMIT. There are few combinations: two sides, with or without a collection, and the candidate
    count.
    """
    side = sql.SQL(VECTOR_SIDE if vectors else TEXT_SIDE).format(
        any_collection=sql.Literal(any_collection),
        dimensions=sql.Literal(dimensions),
        candidates=sql.Literal(candidates),
        text_limit=sql.Literal(text_limit),
        shortlist=sql.Literal(TEXT_SHORTLIST_PER_CANDIDATE * candidates),
        max_query_words=sql.Literal(MAX_QUERY_WORDS),
    )
    return sql.SQL(SIDE_SQL).format(any_collection=sql.Literal(any_collection), side=side).as_string()
