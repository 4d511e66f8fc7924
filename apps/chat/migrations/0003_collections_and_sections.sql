-- Document identity and section citations (see ingest.py and citations.py).
--
-- A document is a path inside a collection, a named folder of sources; its source, shown in citations,
-- is "<collection>/<path>" and stays its unique key. The collection and the path are computed from the
-- source, so they never disagree with it. Documents ingested before collections existed keep their
-- source and with it their citations: its first folder becomes the collection ("corpus/vacation.md" ->
-- collection corpus, path vacation.md; a name without a folder is in the collection ''); they are marked
-- legacy_source, and ingestion renames one to the new rule when it finds its file again.

-- From now on any Entra administrator (member of azure_pg_admin) may change these tables, whichever of
-- the app and the ingestion job created them: the owner hands them to the group (if the server lets it;
-- otherwise they stay as they are). A table can only be altered by its owner, so in Azure this migration
-- has to run first as whoever created the tables; the other one fails to start until then (migrations
-- run in one transaction under a lock, so nothing is half-applied).
DO $$
DECLARE
    owned record;
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'azure_pg_admin') THEN
        FOR owned IN
            SELECT tablename FROM pg_tables
            WHERE schemaname = 'public' AND tableowner = current_user
              AND tablename IN ('documents', 'chunks', 'schema_migrations')
        LOOP
            EXECUTE format('ALTER TABLE %I OWNER TO azure_pg_admin', owned.tablename);
        END LOOP;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'the tables stay with their owner: %', SQLERRM;
END
$$;

ALTER TABLE documents
    ADD COLUMN collection text NOT NULL GENERATED ALWAYS AS (
        CASE WHEN strpos(source, '/') > 1 THEN split_part(source, '/', 1) ELSE '' END
    ) STORED,
    ADD COLUMN path text NOT NULL GENERATED ALWAYS AS (
        CASE WHEN strpos(source, '/') > 1 THEN substr(source, strpos(source, '/') + 1) ELSE source END
    ) STORED,
    ADD COLUMN legacy_source boolean NOT NULL DEFAULT true;
ALTER TABLE documents ALTER COLUMN legacy_source SET DEFAULT false;
CREATE UNIQUE INDEX documents_collection_path_idx ON documents (collection, path);

-- The folder each collection was last ingested from (absolute, symlinks resolved): a file or folder
-- named later that lies inside it belongs to that collection, whatever the current folder.
CREATE TABLE collections (
    name text PRIMARY KEY,
    root text NOT NULL,
    ingested_at timestamptz NOT NULL DEFAULT now()
);

-- The section a chunk comes from: its heading path (outermost first) and its anchor ('' cites the page).
ALTER TABLE chunks
    ADD COLUMN section text[] NOT NULL DEFAULT '{{}}',
    ADD COLUMN anchor text NOT NULL DEFAULT '';

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'azure_pg_admin') THEN
        ALTER TABLE collections OWNER TO azure_pg_admin;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    GRANT SELECT, INSERT, UPDATE, DELETE ON collections TO azure_pg_admin;
END
$$;
