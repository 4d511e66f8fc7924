"""Document identity: a collection plus the path inside it, however the path is spelt and from any folder;
`--sync`; databases from before collections; a database that dies in the middle of an ingestion."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from apps.chat import __main__ as cli
from apps.chat import ingest as ingest_module
from apps.chat.database import Database
from apps.chat.services import ingest_paths

from .conftest import CORPUS, scratch_postgres_server, stop_immediately


def run(settings, *paths, **options):
    return asyncio.run(ingest_paths(settings, [Path(p) for p in paths], **options))


def documents(database_url: str) -> dict[str, tuple[str, str]]:
    """{source: (collection, path)} of every document."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT source, collection, path FROM documents").fetchall()
    return {source: (collection, path) for source, collection, path in rows}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_same_named_files_of_different_folders_never_overwrite_each_other(make_settings, tmp_path, database_url):
    first = write(tmp_path / "a" / "travel-policy.md", "# Travel\n\nTrains are booked in second class.\n")
    second = write(tmp_path / "b" / "travel-policy.md", "# Travel\n\nFlights need a manager's approval.\n")
    settings = make_settings()

    reports = [run(settings, first), run(settings, second)]

    assert [report.added for report in reports] == [["a/travel-policy.md"], ["b/travel-policy.md"]]
    assert [report.replaced for report in reports] == [[], []]
    assert documents(database_url) == {
        "a/travel-policy.md": ("a", "travel-policy.md"),
        "b/travel-policy.md": ("b", "travel-policy.md"),
    }


def test_a_document_is_the_same_however_its_path_is_spelt_and_wherever_ingest_runs(
    make_settings, corpus_dir, database_url, monkeypatch
):
    write(corpus_dir / "leave" / "parental.md", "# Parental leave\n\nSixteen weeks of paid parental leave.\n")
    (corpus_dir.parent / "link").symlink_to(corpus_dir)
    elsewhere = corpus_dir.parent / "elsewhere"
    elsewhere.mkdir()
    settings = make_settings()
    monkeypatch.chdir(corpus_dir.parent)
    first = run(settings, "corpus")
    expected = {f"corpus/{name}" for name in CORPUS} | {"corpus/leave/parental.md"}
    assert set(first.added) == expected

    spellings = [
        (corpus_dir.parent, ["./corpus/"]),
        (elsewhere, [str(corpus_dir)]),  # absolute, from another folder
        (elsewhere, ["../link"]),  # through a symlink to the folder
        (corpus_dir / "leave", ["parental.md", "../vacation.md"]),  # files of it, by relative path
        (elsewhere, [str(corpus_dir / "leave" / "parental.md")]),
        (elsewhere, ["../link/leave/../leave/parental.md"]),
    ]
    for folder, paths in spellings:
        monkeypatch.chdir(folder)
        report = run(settings, *paths)
        assert report.added == report.replaced == report.failed == [], (folder, paths, report.summary())
        assert report.unchanged, (folder, paths)
    assert set(documents(database_url)) == expected
    assert documents(database_url)["corpus/leave/parental.md"] == ("corpus", "leave/parental.md")


def test_a_changed_file_ingested_by_path_updates_the_document_of_its_folder(make_settings, corpus_dir, database_url):
    settings = make_settings()
    run(settings, corpus_dir)
    (corpus_dir / "parking.md").write_text("# Parking\n\nThe car park now opens at six.\n")

    report = run(settings, corpus_dir / "parking.md")

    assert report.replaced == ["corpus/parking.md"] and report.added == []
    assert len(documents(database_url)) == len(CORPUS)


def test_a_collection_can_be_named_and_keeps_its_name(make_settings, corpus_dir, database_url):
    settings = make_settings()

    named = run(settings, corpus_dir, collection="handbook")
    again = run(settings, corpus_dir / "vacation.md")  # a file of the handbook's folder

    assert set(named.added) == {f"handbook/{name}" for name in CORPUS}
    assert again.unchanged == ["handbook/vacation.md"]
    assert set(documents(database_url)) == {f"handbook/{name}" for name in CORPUS}


def test_a_second_folder_of_the_same_name_needs_a_collection_name_of_its_own(make_settings, tmp_path, database_url):
    settings = make_settings()
    write(tmp_path / "x" / "docs" / "guide.md", "# Guide\n\nThe first guide.\n")
    write(tmp_path / "y" / "docs" / "guide.md", "# Guide\n\nThe second guide.\n")
    run(settings, tmp_path / "x" / "docs")

    refused = run(settings, tmp_path / "y" / "docs")
    named = run(settings, tmp_path / "y" / "docs", collection="other-docs")

    assert refused.added == refused.replaced == []
    [(path, reason)] = refused.failed
    assert path.endswith("y/docs") and "--collection" in reason and str(tmp_path / "x" / "docs") in reason
    assert named.added == ["other-docs/guide.md"]
    assert set(documents(database_url)) == {"docs/guide.md", "other-docs/guide.md"}


def test_sync_removes_the_documents_whose_files_are_gone_and_reports_them(make_settings, corpus_dir, database_url):
    settings = make_settings()
    other = write(corpus_dir.parent / "other" / "parking.md", "# Parking\n\nVisitors park at the front.\n")
    write(corpus_dir / "leave" / "parental.md", "# Parental leave\n\nSixteen weeks.\n")
    run(settings, corpus_dir, other.parent)
    (corpus_dir / "parking.md").unlink()
    (corpus_dir / "leave" / "parental.md").unlink()
    write(corpus_dir / "new.md", "# New\n\nA new policy.\n")

    without_sync = run(settings, corpus_dir)
    assert without_sync.removed == [] and "corpus/parking.md" in documents(database_url)

    report = run(settings, corpus_dir, sync=True)

    assert report.removed == ["corpus/leave/parental.md", "corpus/parking.md"]
    assert "removed 2" in report.summary() and "  removed corpus/parking.md" in report.summary()
    assert set(documents(database_url)) == {f"corpus/{name}" for name in CORPUS if name != "parking.md"} | {
        "corpus/new.md",
        "other/parking.md",  # another collection's file of the same name stays
    }
    with psycopg.connect(database_url) as conn:
        orphans = conn.execute("SELECT count(*) FROM chunks WHERE document_id NOT IN (SELECT id FROM documents)")
        assert orphans.fetchone()[0] == 0


def test_sync_of_a_folder_inside_a_collection_touches_only_that_folder(make_settings, corpus_dir, database_url):
    settings = make_settings()
    write(corpus_dir / "leave" / "parental.md", "# Parental leave\n\nSixteen weeks.\n")
    write(corpus_dir / "leave" / "sick.md", "# Sick leave\n\nCall your manager.\n")
    run(settings, corpus_dir)
    (corpus_dir / "leave" / "sick.md").unlink()
    (corpus_dir / "parking.md").unlink()  # outside the folder synced: stays

    report = run(settings, corpus_dir / "leave", sync=True)

    assert report.removed == ["corpus/leave/sick.md"]
    assert report.unchanged == ["corpus/leave/parental.md"]
    assert "corpus/parking.md" in documents(database_url)


def test_sync_keeps_a_document_whose_file_is_still_there_but_cannot_be_read_now(
    make_settings, corpus_dir, database_url
):
    settings = make_settings()
    run(settings, corpus_dir)
    (corpus_dir / "parking.md").write_bytes(b"\xff\xfe not utf-8")

    report = run(settings, corpus_dir, sync=True)

    assert report.removed == [] and [name for name, _ in report.failed] == ["corpus/parking.md"]
    assert "corpus/parking.md" in documents(database_url)


def test_a_database_from_before_collections_migrates_and_its_documents_are_renamed_when_ingested_again(
    make_settings, database_url, tmp_path, monkeypatch
):
    """Before collections, a source was the path relative to the current folder (the ingestion job runs
    in /app and ingests apps/chat/sample_docs). Those documents keep their citations after the migration,
    and the next ingestion renames them instead of adding a second copy."""
    from apps.chat import database as database_module

    settings = make_settings()
    before = [migration for migration in database_module._migration_files() if migration[0] < "0003"]
    monkeypatch.setattr(database_module, "_migration_files", lambda: before)
    asyncio.run(open_and_close(settings))
    with psycopg.connect(database_url, autocommit=True) as conn:
        for source, text in [
            ("apps/chat/sample_docs/security.md", "Laptops use disk encryption."),
            ("apps/chat/sample_docs/retired.md", "The fax machine is retired."),
            ("notes.txt", "A note ingested from the current folder."),
        ]:
            document_id = conn.execute(
                "INSERT INTO documents (source, title, content_hash) VALUES (%s, 't', 'old') RETURNING id", (source,)
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO chunks (document_id, ordinal, page, content) VALUES (%s, 0, 1, %s)", (document_id, text)
            )
    monkeypatch.undo()

    asyncio.run(open_and_close(settings))  # applies the rest

    assert documents(database_url) == {
        "apps/chat/sample_docs/security.md": ("apps", "chat/sample_docs/security.md"),
        "apps/chat/sample_docs/retired.md": ("apps", "chat/sample_docs/retired.md"),
        "notes.txt": ("", "notes.txt"),
    }
    from .conftest import app_in_process

    with app_in_process(settings) as app:
        found = app.client.get("/api/search", params={"q": "disk encryption", "retrieval_mode": "text"})
    assert found.json()["results"][0]["citation"] == "apps/chat/sample_docs/security.md#page=1"  # as before

    write(
        tmp_path / "app" / "apps" / "chat" / "sample_docs" / "security.md",
        "# Security\n\nLaptops use disk encryption.\n",
    )
    monkeypatch.chdir(tmp_path / "app")
    report = run(settings, "apps/chat/sample_docs", sync=True)

    assert report.replaced == ["sample_docs/security.md"] and report.added == []
    assert report.removed == ["apps/chat/sample_docs/retired.md"]
    assert documents(database_url) == {
        "sample_docs/security.md": ("sample_docs", "security.md"),
        "notes.txt": ("", "notes.txt"),
    }


async def open_and_close(settings) -> None:
    database = Database(settings)
    await database.open()
    await database.close()


@dataclass
class Outage:
    """What `ingest` did when the server died under it, and what the next `ingest` did."""

    exit_code: int
    out: str
    err: str
    stored: list[tuple[str, int]]  # (source, chunks) of the documents in the database after it
    written: list[str]  # the documents whose transaction finished before the server died
    again_exit_code: int
    again_out: str


def ingest_while_the_server_dies(make_settings, corpus_dir, monkeypatch, capsys, concurrency: int):
    """`ingest` with the server killed while long.md's chunks are written (the second file by name), then
    `ingest` again once it is back."""
    with scratch_postgres_server() as server:
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE dies")
        url = server.get_uri("dies")
        settings = make_settings(database_url=url, openai_base_url=None)
        for name, value in settings_environment(settings).items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
        monkeypatch.delenv("AZURE_OPENAI_ENDPOINT", raising=False)
        monkeypatch.setenv("INGEST_CONCURRENCY", str(concurrency))
        write(corpus_dir / "long.md", "# Long\n\n" + "A sentence about nothing much. " * 200)
        original = ingest_module.Ingestor._replace_document
        written: list[str] = []

        async def dying_in_long_md(self, source, renamed_from, title, content_hash, access, rows):
            if source.endswith("long.md"):
                rows = KillsTheServer(rows, lambda: stop_immediately(server))
            await original(self, source, renamed_from, title, content_hash, access, rows)
            written.append(source)

        monkeypatch.setattr(ingest_module.Ingestor, "_replace_document", dying_in_long_md)
        exit_code = cli.main(["ingest", str(corpus_dir)])
        out, err = capsys.readouterr()

        server.ensure_postgres_running()
        with psycopg.connect(url) as conn:
            stored = conn.execute(
                "SELECT d.source, count(c.id) FROM documents d LEFT JOIN chunks c ON c.document_id = d.id"
                " GROUP BY d.source ORDER BY d.source"
            ).fetchall()
        monkeypatch.setattr(ingest_module.Ingestor, "_replace_document", original)
        again = cli.main(["ingest", str(corpus_dir)])
        again_out, _ = capsys.readouterr()
    return settings, Outage(exit_code, out, err, stored, written, again, again_out)


def assert_one_line_that_says_to_run_again(outage: Outage) -> None:
    assert outage.exit_code == 3
    assert outage.out == ""
    assert outage.err.count("\n") == 1 and outage.err.startswith("error: ingestion stopped: the database failed (")
    assert "run the same command again" in outage.err and "Traceback" not in outage.err


def test_a_database_that_dies_mid_ingest_ends_the_command_with_one_line_and_nothing_half_written(
    make_settings, corpus_dir, monkeypatch, capsys
):
    settings, outage = ingest_while_the_server_dies(make_settings, corpus_dir, monkeypatch, capsys, concurrency=1)

    assert_one_line_that_says_to_run_again(outage)
    # The first document whole, the second (killed while its chunks were written) not at all.
    assert [source for source, _ in outage.stored] == outage.written == ["corpus/expenses.txt"]
    assert outage.stored[0][1] == expected_chunks(settings, corpus_dir, outage.written[0])
    assert outage.again_exit_code == 0 and "added 4, replaced 0, unchanged 1" in outage.again_out


def test_a_database_that_dies_with_files_in_flight_leaves_every_document_whole_or_absent(
    make_settings, corpus_dir, monkeypatch, capsys
):
    """Two files at once: the other file in flight fails or finishes with it, never half-written."""
    settings, outage = ingest_while_the_server_dies(make_settings, corpus_dir, monkeypatch, capsys, concurrency=2)

    assert_one_line_that_says_to_run_again(outage)
    assert "corpus/long.md" not in [source for source, _ in outage.stored]
    for source, chunks in outage.stored:
        assert chunks == expected_chunks(settings, corpus_dir, source), source
    assert outage.again_exit_code == 0
    assert f"unchanged {len(outage.stored)}" in outage.again_out and "failed 0" in outage.again_out


def settings_environment(settings) -> dict[str, str]:
    return {
        "DATABASE_URL": settings.database_url,
        "EMBEDDING_DIMENSIONS": str(settings.embedding_dimensions),
        "CHUNK_SIZE": str(settings.chunk_size),
        "CHUNK_OVERLAP": str(settings.chunk_overlap),
        "DB_POOL_TIMEOUT_SECONDS": "2",
    }


def expected_chunks(settings, corpus_dir: Path, source: str) -> int:
    from apps.chat.documents import parse_document, split_into_chunks

    path = corpus_dir / source.split("/", 1)[1]
    parsed = parse_document(path, path.read_bytes())
    return len(split_into_chunks(parsed.pages, settings.chunk_size, settings.chunk_overlap))


class KillsTheServer:
    """The rows of a document's chunks that kill the database server once the first row is written."""

    def __init__(self, rows, kill):
        self.rows, self.kill = rows, kill

    def __iter__(self):
        for number, row in enumerate(self.rows):
            if number == 1:
                self.kill()
            yield row

    def __len__(self):
        return len(self.rows)


@pytest.mark.parametrize("name", ["", "a/b", " padded", "tab\tname", "x" * 101, ".."])
def test_collection_names_that_cannot_be_a_source_prefix_are_refused(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["ingest", "--collection", name, "README.md"])
    assert exit_info.value.code == 2
    assert "cannot name a collection" in capsys.readouterr().err


def test_the_ingest_command_takes_collection_and_sync(database_url, tmp_path):
    """Through the command line, as the ingestion job in Azure runs it."""
    from .test_settings_and_documents import run_cli

    write(tmp_path / "docs" / "a.md", "# A\n\nFirst.\n")
    write(tmp_path / "docs" / "b.md", "# B\n\nSecond.\n")
    env = {**os.environ, "DATABASE_URL": database_url, "EMBEDDING_DIMENSIONS": "64"}
    for name in ("OPENAI_BASE_URL", "AZURE_OPENAI_ENDPOINT"):
        env.pop(name, None)

    first = run_cli("ingest", "--collection", "handbook", str(tmp_path / "docs"), env=env)
    (tmp_path / "docs" / "b.md").unlink()
    second = run_cli("ingest", "--sync", str(tmp_path / "docs"), env=env)

    assert first.returncode == 0 and "added 2" in first.stdout, first.stderr
    assert second.returncode == 0, second.stderr
    assert "unchanged 1, permissions updated 0, removed 1" in second.stdout
    assert "  removed handbook/b.md" in second.stdout
