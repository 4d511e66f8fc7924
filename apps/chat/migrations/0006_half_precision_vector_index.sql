-- The HNSW index holds the embeddings at half precision (pgvector's halfvec, an expression index over the
-- stored full-precision column): half the index's size and memory, so more of it stays cached and a search
-- reads half the bytes, for a negligible change in the order of nearest neighbours (retrieval quality:
-- benchmarks/retrieval_quality.py). The search orders by the same expression (search.py). pgvector
-- documents this as "half-precision indexing" (https://github.com/pgvector/pgvector#half-precision-indexing);
-- halfvec needs pgvector 0.7 or later (Azure Database for PostgreSQL lists 0.8). Building the index takes
-- a while on a large corpus: this runs once, when the app or the ingestion job first starts on it.
DROP INDEX IF EXISTS chunks_embedding_idx;
CREATE INDEX chunks_embedding_idx ON chunks
    USING hnsw ((embedding::halfvec({embedding_dimensions})) halfvec_cosine_ops);
