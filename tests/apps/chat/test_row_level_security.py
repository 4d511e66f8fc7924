"""Row-level security (migration 0005): the database itself hides the documents a caller may not read,
so a query that forgot every filter still returns none of them."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest

from apps.chat.access import SYSTEM, AccessFilter
from apps.chat.database import UNPRIVILEGED_ROLE, Database
from apps.chat.ingest import AccessList

from .conftest import ingest

ALICE, BOB, FINANCE = "alice-oid", "bob-oid", "finance-group"
AUDIENCES = {
    "alice": AccessList(user_ids=(ALICE,)),
    "bob": AccessList(user_ids=(BOB,)),
    "finance": AccessList(group_ids=(FINANCE,)),
    "public": AccessList(),
}
# Queries with no access filter of their own, over every table that holds document text.
UNFILTERED = {
    "documents": "SELECT DISTINCT split_part(path, '.', 1) FROM documents",
    "chunks": "SELECT DISTINCT split_part(d.path, '.', 1) FROM chunks c JOIN documents d ON d.id = c.document_id",
    "chunk_terms": "SELECT DISTINCT split_part(d.path, '.', 1)"
    " FROM chunk_terms t JOIN documents d ON d.id = t.document_id",
    # The join above could hide a leak through chunks alone: tell the chunks apart by their text too.
    "chunk texts": "SELECT DISTINCT coalesce(substring(lower(content) FROM 'alice|bob|finance'), 'public') FROM chunks",
}


def caller(user_id: str | None = None, *groups: str, unrestricted_visible: bool = True) -> AccessFilter:
    return AccessFilter(
        see_all=False,
        unrestricted_visible=unrestricted_visible,
        user_ids=[user_id] if user_id else [],
        group_ids=list(groups),
    )


@pytest.fixture
def private_database(make_settings, private_corpus):
    settings = make_settings()
    for audience, folder in private_corpus.items():
        asyncio.run(ingest(settings, [folder], AUDIENCES[audience]))
    return settings


def visible(settings, query: str, access: AccessFilter | None) -> set[str]:
    async def run():
        database = Database(settings)
        await database.open()
        try:
            return {row[0] for row in await database.fetch_all(query, access=access)}
        finally:
            await database.close()

    return asyncio.run(run())


@pytest.mark.parametrize("table", UNFILTERED)
@pytest.mark.parametrize(
    ("access", "readable"),
    [
        (caller(ALICE), {"alice", "public"}),
        (caller(BOB, FINANCE), {"bob", "finance", "public"}),
        (caller(None, FINANCE, unrestricted_visible=False), {"finance"}),
        (caller(None), {"public"}),
        (SYSTEM, {"alice", "bob", "finance", "public"}),
    ],
    ids=["alice", "bob-in-finance", "finance-only", "anonymous", "system"],
)
def test_an_unfiltered_query_returns_only_what_the_caller_may_read(private_database, table, access, readable):
    assert visible(private_database, UNFILTERED[table], access) == readable


@pytest.mark.parametrize("table", UNFILTERED)
def test_a_document_whose_lists_change_takes_its_chunks_and_terms_along(private_database, private_corpus, table):
    """Ingestion changes only the lists of a document whose file did not change (ingest.py)."""
    asyncio.run(ingest(private_database, [private_corpus["alice"]], AccessList(user_ids=(BOB,))))
    assert visible(private_database, UNFILTERED[table], caller(ALICE)) == {"public"}
    assert visible(private_database, UNFILTERED[table], caller(BOB)) == {"alice", "bob", "public"}


@pytest.mark.parametrize("table", UNFILTERED)
def test_a_query_outside_any_caller_sees_nothing(private_database, table):
    assert visible(private_database, UNFILTERED[table], None) == set()


def test_a_caller_settings_end_with_their_transaction(private_database):
    """The pool hands the same connection to the next request: it must not inherit the last caller."""

    async def run():
        database = Database(private_database.model_copy(update={"db_pool_min_size": 1, "db_pool_max_size": 1}))
        await database.open()
        try:
            everything = await database.fetch_all(UNFILTERED["documents"], access=SYSTEM)
            async with database.transaction(caller(ALICE)) as conn:
                inside = await (await conn.execute(UNFILTERED["documents"])).fetchall()
            afterwards = await database.fetch_all(UNFILTERED["documents"])
            return len(everything), len(inside), afterwards
        finally:
            await database.close()

    assert asyncio.run(run()) == (4, 2, [])


@pytest.mark.parametrize(
    "access",
    [caller(ALICE), AccessFilter(see_all=True, unrestricted_visible=True, user_ids=[], group_ids=[])],
    ids=["a caller", "a caller who sees all documents"],
)
def test_only_the_system_writes_documents(private_database, access):
    async def run():
        database = Database(private_database)
        await database.open()
        try:
            async with database.transaction(access) as conn:
                await conn.execute("INSERT INTO documents (source, title, content_hash) VALUES ('x/y.md', 'y', 'h')")
        finally:
            await database.close()

    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        asyncio.run(run())


def test_a_superuser_connection_queries_as_the_unprivileged_role(private_database):
    """The tests' server user is a superuser, which row-level security would not restrict."""
    who = "SELECT current_user || ' ' || (rolsuper OR rolbypassrls) FROM pg_roles WHERE rolname = current_user"
    assert visible(private_database, who, None) == {f"{UNPRIVILEGED_ROLE} false"}


def test_a_user_that_skips_row_level_security_and_cannot_switch_role_is_refused(
    postgres_server, database_url, make_settings
):
    asyncio.run(_open_and_close(make_settings()))  # the superuser migrates the database
    role = f"bypass_{uuid.uuid4().hex[:8]}"
    dbname = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    with psycopg.connect(postgres_server.get_uri(dbname), autocommit=True) as conn:
        conn.execute(psycopg.sql.SQL("CREATE ROLE {} LOGIN BYPASSRLS").format(psycopg.sql.Identifier(role)))
        for grant in ("GRANT ALL ON SCHEMA public TO {}", "GRANT ALL ON ALL TABLES IN SCHEMA public TO {}"):
            conn.execute(psycopg.sql.SQL(grant).format(psycopg.sql.Identifier(role)))
    settings = make_settings(database_url=psycopg.conninfo.make_conninfo(database_url, user=role))

    with pytest.raises(RuntimeError, match=f"{role}.*skips row-level security"):
        asyncio.run(_open_and_close(settings))


async def _open_and_close(settings) -> None:
    database = Database(settings)
    await database.open()
    await database.close()


def test_a_document_may_list_hundreds_of_readers(make_settings, private_corpus):
    settings = make_settings()
    readers = (*(str(uuid.uuid4()) for _ in range(300)), ALICE)
    asyncio.run(ingest(settings, [private_corpus["alice"]], AccessList(user_ids=readers)))

    assert visible(settings, UNFILTERED["chunks"], caller(ALICE)) == {"alice"}
    assert visible(settings, UNFILTERED["chunks"], caller(BOB)) == set()
