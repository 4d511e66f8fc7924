-- BM25 full-text ranking from a term index, and row-level security on documents and chunks.
--
-- 1. The term index. Azure Database for PostgreSQL flexible server allows no BM25 extension (its extension
--    allow-list has no pg_search, rum or pg_textsearch), so BM25 is computed in SQL from a table of
--    (term, chunk) rows: each row holds the chunk's BM25 term-frequency weight for that term, and the
--    index on (term, weight DESC) hands out a term's best chunks first (an impact-ordered posting list).
--    The statistics BM25 needs (how many chunks hold a term, the average chunk length) are kept in
--    term_statistics and corpus_statistics. Triggers on chunks keep all three in step with every insert,
--    update, delete and truncate, so no code path can forget them. The GIN index on chunks.search_vector is
--    dropped: nothing searches it any more.
-- 2. Row-level security. documents, chunks and chunk_terms show a session only the rows of documents its
--    caller may read, from per-transaction settings the app makes for each request (SET LOCAL through
--    set_config(..., true), database.py): aichat.see_all, aichat.unrestricted_visible, aichat.user_ids,
--    aichat.group_ids. A transaction that made none sees nothing. FORCE applies the policies to the
--    tables' owner too. Superusers and BYPASSRLS roles skip them: in Azure no user is either (PostgreSQL
--    16 rules, https://learn.microsoft.com/en-in/answers/questions/2006383); a local or self-managed
--    server's superuser gets the unprivileged role aichat_app, which the app switches to (database.py).

-- BM25's term-frequency part with k1 = 1.2, b = 0.75 (Lucene's form, without its constant (k1 + 1)).
CREATE FUNCTION bm25_term_weight(frequency integer, length integer, average_length float8)
RETURNS real LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN frequency / (frequency + 1.2 * (0.25 + 0.75 * length / greatest(average_length, 1)));

CREATE TABLE corpus_statistics (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    chunks bigint NOT NULL DEFAULT 0,
    -- The sum of the chunks' lengths in words (after stop words are dropped).
    total_length bigint NOT NULL DEFAULT 0
);
INSERT INTO corpus_statistics DEFAULT VALUES;

-- How many chunks hold each term (document frequency): counts only, no text of any chunk.
CREATE TABLE term_statistics (
    term text PRIMARY KEY,
    chunks integer NOT NULL
);

CREATE TABLE chunk_terms (
    chunk_id bigint NOT NULL,
    term text NOT NULL,
    document_id bigint NOT NULL,
    -- bm25_term_weight with the average chunk length of the corpus when the chunk was stored: chunks
    -- are cut to a bounded size, so that average moves little as a corpus grows.
    weight real NOT NULL,
    PRIMARY KEY (chunk_id, term)
);
-- INCLUDE: the search reads a term's best chunks and their documents from the index alone.
CREATE INDEX chunk_terms_term_weight_idx ON chunk_terms (term, weight DESC) INCLUDE (document_id);

-- The words of the given chunks, with their frequencies and the chunk's length in words.
CREATE FUNCTION chunk_words(chunk_ids bigint[])
RETURNS TABLE (chunk_id bigint, document_id bigint, term text, frequency integer, length integer)
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT c.id, c.document_id, w.lexeme, coalesce(cardinality(w.positions), 1),
           (sum(coalesce(cardinality(w.positions), 1)) OVER (PARTITION BY c.id))::integer
    FROM chunks c CROSS JOIN LATERAL unnest(c.search_vector) w
    WHERE c.id = ANY (chunk_ids);
END;

-- Adds the given chunks to the term index and its statistics.
CREATE FUNCTION index_chunk_terms(chunk_ids bigint[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    average_length float8;
BEGIN
    UPDATE corpus_statistics SET
        chunks = chunks + cardinality(chunk_ids),
        total_length = total_length + coalesce((SELECT sum(frequency) FROM chunk_words(chunk_ids)), 0)
    RETURNING total_length::float8 / greatest(chunks, 1) INTO average_length;
    INSERT INTO chunk_terms (chunk_id, term, document_id, weight)
    SELECT w.chunk_id, w.term, w.document_id, bm25_term_weight(w.frequency, w.length, average_length)
    FROM chunk_words(chunk_ids) w;
    -- In term order, so that two transactions never wait for each other's rows in opposite orders.
    INSERT INTO term_statistics AS s (term, chunks)
    SELECT w.term, count(*) FROM chunk_words(chunk_ids) w GROUP BY w.term ORDER BY w.term
    ON CONFLICT (term) DO UPDATE SET chunks = s.chunks + EXCLUDED.chunks;
END
$$;

CREATE FUNCTION chunk_terms_follow_chunks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Every change locks the corpus row first, so concurrent ingestions take turns on the statistics.
    IF TG_OP = 'TRUNCATE' THEN
        UPDATE corpus_statistics SET chunks = 0, total_length = 0;
        TRUNCATE chunk_terms, term_statistics;
        RETURN NULL;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE corpus_statistics SET
            chunks = chunks - (SELECT count(*) FROM old_chunks),
            total_length = total_length - coalesce((
                SELECT sum(coalesce(cardinality(w.positions), 1))
                FROM old_chunks o CROSS JOIN LATERAL unnest(o.search_vector) w), 0);
        WITH removed AS (DELETE FROM chunk_terms t USING old_chunks o WHERE t.chunk_id = o.id RETURNING t.term)
        UPDATE term_statistics s SET chunks = s.chunks - r.chunks
        FROM (SELECT term, count(*) AS chunks FROM removed GROUP BY term) r
        WHERE s.term = r.term;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM index_chunk_terms(ARRAY(SELECT id FROM new_chunks));
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER chunk_terms_after_insert AFTER INSERT ON chunks
    REFERENCING NEW TABLE AS new_chunks FOR EACH STATEMENT EXECUTE FUNCTION chunk_terms_follow_chunks();
CREATE TRIGGER chunk_terms_after_update AFTER UPDATE ON chunks
    REFERENCING OLD TABLE AS old_chunks NEW TABLE AS new_chunks
    FOR EACH STATEMENT EXECUTE FUNCTION chunk_terms_follow_chunks();
CREATE TRIGGER chunk_terms_after_delete AFTER DELETE ON chunks
    REFERENCING OLD TABLE AS old_chunks FOR EACH STATEMENT EXECUTE FUNCTION chunk_terms_follow_chunks();
CREATE TRIGGER chunk_terms_after_truncate AFTER TRUNCATE ON chunks
    FOR EACH STATEMENT EXECUTE FUNCTION chunk_terms_follow_chunks();

-- The chunks stored before this migration.
SELECT index_chunk_terms(ARRAY(SELECT id FROM chunks));

DROP INDEX IF EXISTS chunks_search_vector_idx;

-- Who may read a document, from the transaction's settings (access.py makes them).
CREATE FUNCTION caller_may_read(allowed_user_ids text[], allowed_group_ids text[])
RETURNS boolean LANGUAGE sql STABLE
RETURN current_setting('aichat.see_all', true) = 'on'
    OR (allowed_user_ids = '{{}}' AND allowed_group_ids = '{{}}'
        AND current_setting('aichat.unrestricted_visible', true) = 'on')
    OR allowed_user_ids && coalesce(nullif(current_setting('aichat.user_ids', true), ''), '{{}}')::text[]
    OR allowed_group_ids && coalesce(nullif(current_setting('aichat.group_ids', true), ''), '{{}}')::text[];

-- Whether the transaction acts for the system (ingestion, administration), which reads and writes all.
CREATE FUNCTION acting_for_system() RETURNS boolean LANGUAGE sql STABLE
RETURN current_setting('aichat.see_all', true) = 'on';

ALTER TABLE documents ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE chunks ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE chunk_terms ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;

CREATE POLICY documents_readable ON documents FOR SELECT
    USING (caller_may_read(allowed_user_ids, allowed_group_ids));
-- The chunks of readable documents: a hashed set of the readable documents' ids, built once per query
-- and only when the system test before it is false; each chunk costs one hash lookup.
CREATE POLICY chunks_readable ON chunks FOR SELECT
    USING ((SELECT acting_for_system()) OR document_id IN (SELECT id FROM documents));
CREATE POLICY chunk_terms_readable ON chunk_terms FOR SELECT
    USING ((SELECT acting_for_system()) OR document_id IN (SELECT id FROM documents));
CREATE POLICY documents_written_by_system ON documents FOR ALL
    USING (acting_for_system()) WITH CHECK (acting_for_system());
CREATE POLICY chunks_written_by_system ON chunks FOR ALL
    USING (acting_for_system()) WITH CHECK (acting_for_system());
CREATE POLICY chunk_terms_written_by_system ON chunk_terms FOR ALL
    USING (acting_for_system()) WITH CHECK (acting_for_system());

-- As for collections (0003): the new tables belong to the Entra administrators' group.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'azure_pg_admin') THEN
        ALTER TABLE corpus_statistics OWNER TO azure_pg_admin;
        ALTER TABLE term_statistics OWNER TO azure_pg_admin;
        ALTER TABLE chunk_terms OWNER TO azure_pg_admin;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    GRANT SELECT, INSERT, UPDATE, DELETE ON corpus_statistics, term_statistics, chunk_terms TO azure_pg_admin;
END
$$;

-- A superuser (a local or self-managed server) skips row-level security, so the app does not query as
-- one: it switches to this role, which may use the tables and nothing more (database.py).
DO $$
BEGIN
    IF current_setting('is_superuser') = 'on' THEN
        BEGIN
            CREATE ROLE aichat_app NOLOGIN NOSUPERUSER NOBYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- another database of this server made it
        END;
        GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO aichat_app;
        GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO aichat_app;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO aichat_app;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO aichat_app;
    END IF;
END
$$;
