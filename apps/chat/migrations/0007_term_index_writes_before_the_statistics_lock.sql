-- Concurrent ingestions take turns for less of their work (migration 0005 made the term index).
--
-- 1. index_chunk_terms writes the chunks' term rows before it locks corpus_statistics: those rows are
--    the chunks' own (no other transaction writes them), so concurrent ingestions write them at once and
--    take turns only for the shared word counts. The weights use the average chunk length of the corpus
--    as read then, with the new chunks counted (a concurrent ingestion that has not committed yet is not:
--    the average moves by a fraction of a word, as it does with every ingestion).
-- 2. A statement that deleted, updated or inserted no chunk leaves the statistics alone. Ingestion
--    deletes a document's old chunks before it inserts the new ones, also for a new document, which has
--    none: that empty delete locked corpus_statistics at the start of every ingestion's transaction, so
--    ingestions never overlapped, and left a dead row version of corpus_statistics each time.
--    A changed document's old chunks are still deleted first, so its ingestion takes its turn from there on:
--    it holds the lock while it writes the new chunks.
-- CREATE OR REPLACE needs the functions' owner: migration 0005 gave them to azure_pg_admin, the group of
-- every Entra administrator, so the app or the ingestion job may run this.

CREATE OR REPLACE FUNCTION index_chunk_terms(chunk_ids bigint[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    added_length bigint;
    terms text[];
    term_chunks integer[];
BEGIN
    WITH words AS MATERIALIZED (
        SELECT * FROM chunk_words(chunk_ids)
    ),
    added AS (
        SELECT coalesce(sum(frequency), 0) AS length FROM words
    ),
    corpus AS (
        SELECT (s.total_length + a.length)::float8 / greatest(s.chunks + cardinality(chunk_ids), 1) AS average_length
        FROM corpus_statistics s CROSS JOIN added a
    ),
    indexed AS (
        INSERT INTO chunk_terms (chunk_id, term, document_id, access_list_id, weight)
        SELECT w.chunk_id, w.term, w.document_id, w.access_list_id,
               bm25_term_weight(w.frequency, w.length, c.average_length)
        FROM words w CROSS JOIN corpus c
    )
    SELECT a.length, counted.terms, counted.chunks
    INTO added_length, terms, term_chunks
    FROM added a CROSS JOIN (
        SELECT array_agg(term ORDER BY term) AS terms, array_agg(chunks ORDER BY term) AS chunks
        FROM (SELECT term, count(*)::integer AS chunks FROM words GROUP BY term) per_term
    ) counted;

    -- From here on concurrent ingestions take turns: the corpus row first, so that they never wait for
    -- each other's word counts in opposite orders.
    PERFORM 1 FROM corpus_statistics FOR UPDATE;
    UPDATE corpus_statistics SET
        chunks = chunks + cardinality(chunk_ids),
        total_length = total_length + added_length;
    INSERT INTO term_statistics AS s (term, chunks)
    SELECT * FROM unnest(terms, term_chunks)
    ON CONFLICT (term) DO UPDATE SET chunks = s.chunks + EXCLUDED.chunks;
END
$$;

CREATE OR REPLACE FUNCTION chunk_terms_follow_chunks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Every change to the statistics locks the corpus row first, so concurrent ingestions take turns on them.
    IF TG_OP = 'TRUNCATE' THEN
        UPDATE corpus_statistics SET chunks = 0, total_length = 0;
        TRUNCATE chunk_terms, term_statistics;
        RETURN NULL;
    END IF;
    -- (Nested IFs: a transition table exists only for the operations that have it, and a condition that
    -- names one is planned whole.)
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        IF EXISTS (SELECT 1 FROM old_chunks) THEN
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
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        IF EXISTS (SELECT 1 FROM new_chunks) THEN
            PERFORM index_chunk_terms(ARRAY(SELECT id FROM new_chunks));
        END IF;
    END IF;
    RETURN NULL;
END
$$;
