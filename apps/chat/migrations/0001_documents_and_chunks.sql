-- Documents and their chunks. {embedding_dimensions} is filled in from EMBEDDING_DIMENSIONS.
CREATE EXTENSION IF NOT EXISTS vector;

CREATE TABLE documents (
    id bigserial PRIMARY KEY,
    source text NOT NULL UNIQUE,
    title text NOT NULL,
    content_hash text NOT NULL,
    -- Which embedding model produced the chunk vectors ('' when none did): a new model re-ingests.
    embedding_model text NOT NULL DEFAULT '',
    -- Who may read the document. Both empty: visible to every signed-in user (configurable).
    allowed_user_ids text[] NOT NULL DEFAULT '{{}}',
    allowed_group_ids text[] NOT NULL DEFAULT '{{}}',
    ingested_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE chunks (
    id bigserial PRIMARY KEY,
    document_id bigint NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    ordinal integer NOT NULL,
    page integer NOT NULL,
    content text NOT NULL,
    -- Stored so that full-text search never recomputes it per match.
    search_vector tsvector GENERATED ALWAYS AS (to_tsvector('english', content)) STORED,
    embedding vector({embedding_dimensions}),
    UNIQUE (document_id, ordinal)
);

CREATE INDEX chunks_search_vector_idx ON chunks USING gin (search_vector);
CREATE INDEX chunks_embedding_idx ON chunks USING hnsw (embedding vector_cosine_ops);
CREATE INDEX documents_allowed_user_ids_idx ON documents USING gin (allowed_user_ids);
CREATE INDEX documents_allowed_group_ids_idx ON documents USING gin (allowed_group_ids);
