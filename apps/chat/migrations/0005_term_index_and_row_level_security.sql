-- BM25 full-text ranking from a term index, and row-level security on documents and chunks.
--
-- 1. Access lists. Each distinct pair of (allowed user ids, allowed group ids) is one row of access_lists;
--    documents, chunks and chunk_terms carry its id (kept by triggers from the document's lists). The
--    rule of who may read what is one policy, on access_lists; the other tables' policies keep the rows
--    whose access list the caller can see. A corpus has few distinct lists, so that set is small and
--    each row's check is one hash lookup, however many documents there are.
-- 2. The term index. Azure Database for PostgreSQL flexible server allows no BM25 extension (its extension
--    allow-list has no pg_search, rum or pg_textsearch), so BM25 is computed in SQL from a table of
--    (term, chunk) rows: each row holds the chunk's BM25 term-frequency weight for that term, and the
--    index on (term, weight DESC) hands out a term's best chunks first (an impact-ordered posting list).
--    The statistics BM25 needs (how many chunks hold a term, the average chunk length) are kept in
--    term_statistics and corpus_statistics. Triggers on chunks keep all three in step with every insert,
--    update, delete and truncate, so no code path can forget them. The GIN index on chunks.search_vector
--    is dropped: nothing searches it any more.
-- 3. Row-level security. documents, chunks and chunk_terms show a transaction only the rows its caller
--    may read, from per-transaction settings the app makes for each request (SET LOCAL through
--    set_config(..., true), database.py): aichat.see_all, aichat.unrestricted_visible, aichat.user_ids,
--    aichat.group_ids; aichat.writes for the system's own work. A transaction that made none sees nothing,
--    and only the system writes (a caller who sees all documents does not).
--    FORCE applies the policies to the tables' owner too. Superusers and BYPASSRLS roles skip them: in
--    Azure no user is either (PostgreSQL 16 rules, https://learn.microsoft.com/en-in/answers/questions/2006383);
--    a local or self-managed server's superuser gets the unprivileged role aichat_app, which the app
--    switches to (database.py).

CREATE TABLE access_lists (
    id serial PRIMARY KEY,
    -- Sorted and without repeats (access_list_for), so that one pair of lists has one row.
    allowed_user_ids text[] NOT NULL,
    allowed_group_ids text[] NOT NULL
);
-- Unique by a digest of the lists: a btree entry over the lists themselves is capped at about 2.7 KB,
-- some 65 ids, and a document may list more. (Declared immutable: joining text arrays with fixed
-- separators depends on no setting, though array_to_string is marked stable for other element types.)
CREATE FUNCTION access_lists_digest(user_ids text[], group_ids text[]) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN md5(array_to_string(user_ids, chr(31), chr(29)) || chr(30) || array_to_string(group_ids, chr(31), chr(29)));
CREATE UNIQUE INDEX access_lists_lists_idx ON access_lists (access_lists_digest(allowed_user_ids, allowed_group_ids));

-- The id of the access list of these lists, made on first use.
CREATE FUNCTION access_list_for(user_ids text[], group_ids text[]) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    users text[] := ARRAY(SELECT DISTINCT unnest(user_ids) ORDER BY 1);
    groups text[] := ARRAY(SELECT DISTINCT unnest(group_ids) ORDER BY 1);
    found integer;
BEGIN
    INSERT INTO access_lists (allowed_user_ids, allowed_group_ids) VALUES (users, groups)
    ON CONFLICT DO NOTHING RETURNING id INTO found;
    IF found IS NULL THEN
        SELECT id INTO found FROM access_lists
        WHERE access_lists_digest(allowed_user_ids, allowed_group_ids) = access_lists_digest(users, groups)
          AND allowed_user_ids = users AND allowed_group_ids = groups;
    END IF;
    RETURN found;
END
$$;

ALTER TABLE documents ADD COLUMN access_list_id integer REFERENCES access_lists (id);
ALTER TABLE chunks ADD COLUMN access_list_id integer;
UPDATE documents SET access_list_id = access_list_for(allowed_user_ids, allowed_group_ids);
UPDATE chunks c SET access_list_id = d.access_list_id FROM documents d WHERE d.id = c.document_id;
ALTER TABLE documents ALTER COLUMN access_list_id SET NOT NULL;
ALTER TABLE chunks ALTER COLUMN access_list_id SET NOT NULL;

CREATE FUNCTION documents_take_access_list() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.access_list_id := access_list_for(NEW.allowed_user_ids, NEW.allowed_group_ids);
    RETURN NEW;
END
$$;
CREATE TRIGGER documents_take_access_list BEFORE INSERT OR UPDATE OF allowed_user_ids, allowed_group_ids
    ON documents FOR EACH ROW EXECUTE FUNCTION documents_take_access_list();

CREATE FUNCTION chunks_take_access_list() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.access_list_id := (SELECT access_list_id FROM documents WHERE id = NEW.document_id);
    RETURN NEW;
END
$$;
CREATE TRIGGER chunks_take_access_list BEFORE INSERT OR UPDATE OF document_id ON chunks
    FOR EACH ROW EXECUTE FUNCTION chunks_take_access_list();

-- A document whose lists change hands its new access list to its chunks (and so to their terms).
CREATE FUNCTION chunks_follow_document_access() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE chunks SET access_list_id = NEW.access_list_id WHERE document_id = NEW.id;
    RETURN NULL;
END
$$;
-- (Not "UPDATE OF access_list_id": the column is set by the trigger above, never by an UPDATE's SET.)
CREATE TRIGGER chunks_follow_document_access AFTER UPDATE ON documents
    FOR EACH ROW WHEN (OLD.access_list_id IS DISTINCT FROM NEW.access_list_id)
    EXECUTE FUNCTION chunks_follow_document_access();

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
    access_list_id integer NOT NULL,
    -- bm25_term_weight with the average chunk length of the corpus when the chunk was stored: chunks
    -- are cut to a bounded size, so that average moves little as a corpus grows.
    weight real NOT NULL,
    -- INCLUDE here and below: the search reads what it needs from the indexes alone (index-only scans).
    PRIMARY KEY (chunk_id, term) INCLUDE (weight, access_list_id)
);
CREATE INDEX chunk_terms_term_weight_idx ON chunk_terms (term, weight DESC)
    INCLUDE (chunk_id, document_id, access_list_id);

-- The words of the given chunks, with their frequencies and the chunk's length in words.
CREATE FUNCTION chunk_words(chunk_ids bigint[])
RETURNS TABLE (
    chunk_id bigint, document_id bigint, access_list_id integer, term text, frequency integer, length integer
)
LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT c.id, c.document_id, c.access_list_id, w.lexeme, coalesce(cardinality(w.positions), 1),
           (sum(coalesce(cardinality(w.positions), 1)) OVER (PARTITION BY c.id))::integer
    FROM unnest(chunk_ids) AS changed (id)
    JOIN chunks c ON c.id = changed.id
    CROSS JOIN LATERAL unnest(c.search_vector) w;
END;

-- Adds the given chunks to the term index and its statistics, reading their words once.
CREATE FUNCTION index_chunk_terms(chunk_ids bigint[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    -- The corpus row first: concurrent ingestions take turns from here on, so they never wait for each
    -- other's term rows in opposite orders.
    PERFORM 1 FROM corpus_statistics FOR UPDATE;
    WITH words AS MATERIALIZED (
        SELECT * FROM chunk_words(chunk_ids)
    ),
    corpus AS (
        UPDATE corpus_statistics SET
            chunks = chunks + cardinality(chunk_ids),
            total_length = total_length + coalesce((SELECT sum(frequency) FROM words), 0)
        RETURNING total_length::float8 / greatest(chunks, 1) AS average_length
    ),
    counted AS (
        INSERT INTO term_statistics AS s (term, chunks)
        SELECT term, count(*) FROM words GROUP BY term
        ON CONFLICT (term) DO UPDATE SET chunks = s.chunks + EXCLUDED.chunks
    )
    INSERT INTO chunk_terms (chunk_id, term, document_id, access_list_id, weight)
    SELECT w.chunk_id, w.term, w.document_id, w.access_list_id, bm25_term_weight(w.frequency, w.length, c.average_length)
    FROM words w CROSS JOIN corpus c;
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

-- The transaction's settings (access.py makes them). Policies call these in scalar subqueries, which
-- PostgreSQL evaluates once per statement instead of once per row.
CREATE FUNCTION caller_sees_all() RETURNS boolean LANGUAGE sql STABLE
RETURN coalesce(current_setting('aichat.see_all', true), '') = 'on';
CREATE FUNCTION writing_for_system() RETURNS boolean LANGUAGE sql STABLE
RETURN coalesce(current_setting('aichat.writes', true), '') = 'on';
CREATE FUNCTION caller_sees_unrestricted() RETURNS boolean LANGUAGE sql STABLE
RETURN coalesce(current_setting('aichat.unrestricted_visible', true), '') = 'on';
CREATE FUNCTION caller_user_ids() RETURNS text[] LANGUAGE sql STABLE
RETURN coalesce(nullif(current_setting('aichat.user_ids', true), ''), '{{}}')::text[];
CREATE FUNCTION caller_group_ids() RETURNS text[] LANGUAGE sql STABLE
RETURN coalesce(nullif(current_setting('aichat.group_ids', true), ''), '{{}}')::text[];

ALTER TABLE access_lists ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE documents ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE chunks ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
ALTER TABLE chunk_terms ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;

-- The rule of who may read a document (see access.py): the system reads all; a document with no lists
-- is readable by every caller when unrestricted documents are visible; otherwise the caller's user id
-- or one of their groups must be on its lists.
CREATE POLICY access_lists_readable ON access_lists FOR SELECT USING (
    (SELECT caller_sees_all())
    OR (allowed_user_ids = '{{}}' AND allowed_group_ids = '{{}}' AND (SELECT caller_sees_unrestricted()))
    OR allowed_user_ids && (SELECT caller_user_ids())
    OR allowed_group_ids && (SELECT caller_group_ids())
);
-- The rows under a readable access list: a hashed set of those lists' ids, built once per query and only
-- when the system test before it is false; each row costs one hash lookup.
DO $$
DECLARE
    protected text;
BEGIN
    FOREACH protected IN ARRAY ARRAY['documents', 'chunks', 'chunk_terms'] LOOP
        EXECUTE format('CREATE POLICY %I ON %I FOR SELECT USING ((SELECT caller_sees_all())'
                       ' OR access_list_id IN (SELECT id FROM access_lists))', protected || '_readable', protected);
    END LOOP;
END
$$;

-- Only the system writes. (Per command, not FOR ALL: a FOR ALL policy would add its test to every read.)
DO $$
DECLARE
    protected text;
BEGIN
    FOREACH protected IN ARRAY ARRAY['access_lists', 'documents', 'chunks', 'chunk_terms'] LOOP
        EXECUTE format('CREATE POLICY %I ON %I FOR INSERT WITH CHECK ((SELECT writing_for_system()))',
                       protected || '_inserted_by_system', protected);
        EXECUTE format('CREATE POLICY %I ON %I FOR UPDATE USING ((SELECT writing_for_system()))'
                       ' WITH CHECK ((SELECT writing_for_system()))', protected || '_updated_by_system', protected);
        EXECUTE format('CREATE POLICY %I ON %I FOR DELETE USING ((SELECT writing_for_system()))',
                       protected || '_deleted_by_system', protected);
    END LOOP;
END
$$;

-- As for collections (0003): the new tables belong to the Entra administrators' group.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'azure_pg_admin') THEN
        ALTER TABLE corpus_statistics OWNER TO azure_pg_admin;
        ALTER TABLE term_statistics OWNER TO azure_pg_admin;
        ALTER TABLE chunk_terms OWNER TO azure_pg_admin;
        ALTER TABLE access_lists OWNER TO azure_pg_admin;
        -- The functions too, so that either identity may replace them in a later migration.
        ALTER FUNCTION bm25_term_weight(integer, integer, float8) OWNER TO azure_pg_admin;
        ALTER FUNCTION access_list_for(text[], text[]) OWNER TO azure_pg_admin;
        ALTER FUNCTION access_lists_digest(text[], text[]) OWNER TO azure_pg_admin;
        ALTER FUNCTION documents_take_access_list() OWNER TO azure_pg_admin;
        ALTER FUNCTION chunks_take_access_list() OWNER TO azure_pg_admin;
        ALTER FUNCTION chunks_follow_document_access() OWNER TO azure_pg_admin;
        ALTER FUNCTION chunk_words(bigint[]) OWNER TO azure_pg_admin;
        ALTER FUNCTION index_chunk_terms(bigint[]) OWNER TO azure_pg_admin;
        ALTER FUNCTION chunk_terms_follow_chunks() OWNER TO azure_pg_admin;
        ALTER FUNCTION caller_sees_all() OWNER TO azure_pg_admin;
        ALTER FUNCTION writing_for_system() OWNER TO azure_pg_admin;
        ALTER FUNCTION caller_sees_unrestricted() OWNER TO azure_pg_admin;
        ALTER FUNCTION caller_user_ids() OWNER TO azure_pg_admin;
        ALTER FUNCTION caller_group_ids() OWNER TO azure_pg_admin;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    GRANT SELECT, INSERT, UPDATE, DELETE ON corpus_statistics, term_statistics, chunk_terms, access_lists
        TO azure_pg_admin;
    GRANT USAGE, SELECT ON SEQUENCE access_lists_id_seq TO azure_pg_admin;
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

-- The planner's statistics for the rows rewritten and the tables made above (autovacuum would get there
-- later): without them it may plan the search's joins badly until then.
ANALYZE documents, chunks, access_lists, chunk_terms, term_statistics;
