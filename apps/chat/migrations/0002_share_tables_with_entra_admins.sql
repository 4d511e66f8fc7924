-- In Azure, every Entra administrator of the server (the web app's identity and the ingestion job's)
-- is a member of azure_pg_admin, but a table belongs to whoever created it. Grant that group what the
-- app and the job need, so it does not matter which of them ran the migrations first. Tables created by
-- later migrations are covered by the default privileges. A local server has no such role: nothing to do.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'azure_pg_admin') THEN
        GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO azure_pg_admin;
        GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO azure_pg_admin;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO azure_pg_admin;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO azure_pg_admin;
    END IF;
END
$$;
