"""Hybrid retrieval: pgvector HNSW (cosine) and PostgreSQL full text, fused with reciprocal rank fusion.

Each side produces a bounded candidate list before fusion, so a query's cost does not grow with
the number of chunks that match it:
- vectors: the HNSW index returns the nearest `candidates` chunks;
- text: at most `text_limit` matching chunks are taken from the GIN index (first those containing
  all the query's words, then those containing any), and only those are ranked, using the stored
  tsvector column rather than recomputing it.
A chunk's score is the RRF sum over the lists it appears in: 1 / (RRF_K + rank).
"""

from __future__ import annotations

from dataclasses import dataclass

from pgvector import Vector

from .access import AccessFilter
from .database import Database

RRF_K = 60

HYBRID_SEARCH_SQL = """
WITH visible_documents AS (
    SELECT id FROM documents
    WHERE %(see_all)s
       OR (allowed_user_ids = '{}' AND allowed_group_ids = '{}' AND %(unrestricted_visible)s)
       OR allowed_user_ids && %(user_ids)s::text[]
       OR allowed_group_ids && %(group_ids)s::text[]
),
vector_candidates AS MATERIALIZED (
    SELECT c.id, c.embedding <=> %(embedding)s::vector AS distance
    FROM chunks c
    WHERE %(use_vectors)s AND c.embedding IS NOT NULL
      AND c.document_id IN (SELECT id FROM visible_documents)
    ORDER BY c.embedding <=> %(embedding)s::vector
    LIMIT %(candidates)s
),
vector_ranked AS (
    SELECT id, row_number() OVER (ORDER BY distance, id) AS rank FROM vector_candidates
),
text_query AS (
    SELECT plainto_tsquery('english', %(query)s) AS all_words,
           replace(plainto_tsquery('english', %(query)s)::text, ' & ', ' | ')::tsquery AS any_word
),
text_matches AS MATERIALIZED (
    SELECT id, min(priority) AS priority FROM (
        (SELECT c.id, 1 AS priority FROM chunks c, text_query q
         WHERE %(use_text)s AND c.search_vector @@ q.all_words
           AND c.document_id IN (SELECT id FROM visible_documents)
         LIMIT %(text_limit)s)
        UNION ALL
        (SELECT c.id, 2 AS priority FROM chunks c, text_query q
         WHERE %(use_text)s AND c.search_vector @@ q.any_word
           AND c.document_id IN (SELECT id FROM visible_documents)
         LIMIT %(text_limit)s)
    ) matches
    GROUP BY id
    ORDER BY priority
    LIMIT %(text_limit)s
),
text_ranked AS (
    SELECT c.id, row_number() OVER (ORDER BY ts_rank_cd(c.search_vector, q.any_word) DESC, c.id) AS rank
    FROM text_matches m JOIN chunks c ON c.id = m.id, text_query q
    ORDER BY rank
    LIMIT %(candidates)s
),
fused AS (
    SELECT id, sum(1.0 / (%(rrf_k)s + rank)) AS score
    FROM (SELECT id, rank FROM vector_ranked UNION ALL SELECT id, rank FROM text_ranked) ranked
    GROUP BY id
)
SELECT c.id, d.title, d.source, c.page, c.content, f.score::float8
FROM fused f
JOIN chunks c ON c.id = f.id
JOIN documents d ON d.id = c.document_id
WHERE f.score >= %(minimum_score)s
ORDER BY f.score DESC, c.id
LIMIT %(top)s
"""


@dataclass(frozen=True)
class SearchResult:
    chunk_id: int
    title: str
    source: str
    page: int
    content: str
    score: float

    @property
    def citation(self) -> str:
        return f"{self.source}#page={self.page}"

    @property
    def data_point(self) -> str:
        return f"{self.citation}: {self.content}"


@dataclass(frozen=True)
class SearchRequest:
    query: str
    top: int
    minimum_score: float
    retrieval_mode: str  # hybrid | vectors | text
    embedding: list[float] | None  # required unless retrieval_mode is "text"
    access: AccessFilter


class Searcher:
    def __init__(self, database: Database, candidates: int, text_limit: int):
        self.database = database
        self.candidates = candidates
        self.text_limit = text_limit

    async def search(self, request: SearchRequest) -> list[SearchResult]:
        use_vectors = request.retrieval_mode in ("hybrid", "vectors") and request.embedding is not None
        use_text = request.retrieval_mode in ("hybrid", "text")
        parameters = {
            "see_all": request.access.see_all,
            "unrestricted_visible": request.access.unrestricted_visible,
            "user_ids": request.access.user_ids,
            "group_ids": request.access.group_ids,
            "use_vectors": use_vectors,
            "embedding": Vector(request.embedding) if use_vectors else None,
            "use_text": use_text,
            "query": request.query,
            "candidates": max(self.candidates, request.top),
            "text_limit": self.text_limit,
            "rrf_k": RRF_K,
            "minimum_score": request.minimum_score,
            "top": request.top,
        }
        async with self.database.connection() as conn:
            rows = await (await conn.execute(HYBRID_SEARCH_SQL, parameters)).fetchall()
        return [SearchResult(*row) for row in rows]
