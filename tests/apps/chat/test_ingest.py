"""Ingestion against a real PostgreSQL: idempotence, replacement, broken files, access lists."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import psycopg
import pytest

from apps.chat import ingest as ingest_module
from apps.chat.ingest import AccessList

from .conftest import CORPUS, ingest


def chunk_rows(database_url: str, source_suffix: str) -> list[tuple]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT c.id, c.content, c.embedding IS NOT NULL FROM chunks c JOIN documents d ON d.id = c.document_id"
            " WHERE d.source LIKE %s ORDER BY c.ordinal",
            ("%" + source_suffix,),
        ).fetchall()


def test_ingests_every_supported_format_with_embeddings(make_settings, corpus_dir, database_url, fake_openai):
    report = asyncio.run(ingest(make_settings(), [corpus_dir]))

    assert sorted(name.rsplit("/", 1)[-1] for name in report.added) == sorted(CORPUS)
    assert report.failed == []
    for name in CORPUS:
        rows = chunk_rows(database_url, name)
        assert rows, f"no chunks for {name}"
        assert all(has_embedding for _, _, has_embedding in rows)
    assert "Laptops must use full disk encryption" in chunk_rows(database_url, "security.html")[0][1]
    assert "<p>" not in chunk_rows(database_url, "security.html")[0][1]
    # Embeddings are requested in batches, not one request per chunk.
    assert len(fake_openai.requests_to("/embeddings")) <= len(CORPUS)


def test_files_ingested_at_once_are_reported_in_the_order_of_the_scan(make_settings, corpus_dir, monkeypatch):
    """With several files in flight the report lists them as the folder is scanned (by name), not as
    they finish: here the first file is held back until the others are written."""
    (corpus_dir / "aa-first.md").write_text("# First\n\nThe first note, parsed slowly.\n")
    parse, write = ingest_module.Ingestor._parse_into_chunks, ingest_module.Ingestor._replace_document
    finished: list[str] = []

    def slow_for_the_first(self, path, data):
        if path.name == "aa-first.md":
            time.sleep(0.5)
        return parse(self, path, data)

    async def recording(self, source, *arguments):
        await write(self, source, *arguments)
        finished.append(source)

    monkeypatch.setattr(ingest_module.Ingestor, "_parse_into_chunks", slow_for_the_first)
    monkeypatch.setattr(ingest_module.Ingestor, "_replace_document", recording)
    report = asyncio.run(ingest(make_settings(ingest_concurrency=3), [corpus_dir]))

    assert finished[-1].endswith("aa-first.md")  # it did finish last...
    assert report.added == sorted(report.added) and report.added[0].endswith("aa-first.md")  # ...and is listed first
    assert len(report.added) == len(CORPUS) + 1


def test_reingesting_unchanged_files_changes_nothing(make_settings, corpus_dir, database_url, fake_openai):
    settings = make_settings()
    asyncio.run(ingest(settings, [corpus_dir]))
    before = chunk_rows(database_url, "vacation.md")
    embedding_requests = len(fake_openai.requests_to("/embeddings"))

    report = asyncio.run(ingest(settings, [corpus_dir]))

    assert len(report.unchanged) == len(CORPUS)
    assert report.added == report.replaced == []
    assert chunk_rows(database_url, "vacation.md") == before  # same chunk ids: nothing rewritten
    assert len(fake_openai.requests_to("/embeddings")) == embedding_requests


def test_changed_file_replaces_its_chunks(make_settings, corpus_dir, database_url):
    settings = make_settings()
    asyncio.run(ingest(settings, [corpus_dir]))
    (corpus_dir / "vacation.md").write_text("# Vacation policy\n\nEmployees now receive thirty days of leave.\n")

    report = asyncio.run(ingest(settings, [corpus_dir]))

    assert [s.rsplit("/", 1)[-1] for s in report.replaced] == ["vacation.md"]
    contents = [content for _, content, _ in chunk_rows(database_url, "vacation.md")]
    assert any("thirty days" in c for c in contents)
    assert not any("twenty-five" in c for c in contents)


def test_failed_replacement_keeps_the_old_chunks(make_settings, corpus_dir, database_url, fake_openai):
    settings = make_settings(model_max_retries=0)
    asyncio.run(ingest(settings, [corpus_dir / "vacation.md"]))
    before = chunk_rows(database_url, "vacation.md")
    (corpus_dir / "vacation.md").write_text("# Vacation\n\nA new text whose embedding request fails.\n")
    fake_openai.fail_next(500)

    with pytest.raises(Exception, match="unavailable"):
        asyncio.run(ingest(settings, [corpus_dir / "vacation.md"]))

    assert chunk_rows(database_url, "vacation.md") == before


def test_broken_file_is_reported_and_skipped(make_settings, corpus_dir, database_url):
    (corpus_dir / "broken.pdf").write_bytes(b"%PDF-1.7\nthis is not really a pdf")
    (corpus_dir / "binary.txt").write_bytes(b"\x00\x01\x02 binary")
    (corpus_dir / "empty.md").write_text("   \n")

    report = asyncio.run(ingest(make_settings(), [corpus_dir, corpus_dir / "missing.md"]))

    failed = {name.rsplit("/", 1)[-1]: reason for name, reason in report.failed}
    assert set(failed) == {"broken.pdf", "binary.txt", "empty.md", "missing.md"}
    assert "no such file" in failed["missing.md"]
    assert "binary" in failed["binary.txt"]
    assert len(report.added) == len(CORPUS)  # the good files still went in


def test_pdf_pages_are_kept(make_settings, tmp_path, database_url):
    pdf = tmp_path / "handbook.pdf"
    pdf.write_bytes(make_pdf(["Welcome to the handbook.", "Overtime is paid at one and a half times the rate."]))

    asyncio.run(ingest(make_settings(), [pdf]))

    with psycopg.connect(database_url) as conn:
        pages = conn.execute("SELECT page, content FROM chunks ORDER BY page").fetchall()
    assert [page for page, _ in pages] == [1, 2]
    assert "Overtime" in pages[1][1]


def test_access_list_change_updates_permissions_without_reembedding(
    make_settings, corpus_dir, database_url, fake_openai
):
    settings = make_settings()
    asyncio.run(ingest(settings, [corpus_dir / "parking.md"]))
    requests = len(fake_openai.requests_to("/embeddings"))

    report = asyncio.run(ingest(settings, [corpus_dir / "parking.md"], AccessList(("user-1",), ("group-9",))))

    assert len(report.permissions_updated) == 1
    assert len(fake_openai.requests_to("/embeddings")) == requests
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT allowed_user_ids, allowed_group_ids FROM documents").fetchone()
    assert row == (["user-1"], ["group-9"])


def test_files_are_found_read_and_parsed_in_worker_threads_not_on_the_event_loop(
    make_settings, corpus_dir, monkeypatch
):
    """The web app ingests its sample corpus while it serves: blocking file work must leave its event loop free."""
    calls: list[tuple[str, bool]] = []  # (what, whether it ran on the event loop)
    for owner, name in [(ingest_module, "find_source_files"), (Path, "read_bytes"), (ingest_module, "parse_document")]:
        record_calls(monkeypatch, owner, name, calls)

    report = asyncio.run(ingest(make_settings(), [corpus_dir]))

    assert len(report.added) == len(CORPUS)
    assert {name for name, _ in calls} == {"find_source_files", "read_bytes", "parse_document"}
    assert [name for name, on_the_loop in calls if on_the_loop] == []


def record_calls(monkeypatch, owner, name: str, calls: list[tuple[str, bool]]) -> None:
    original = getattr(owner, name)

    def recording(*args, **kwargs):
        calls.append((name, running_event_loop() is not None))
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, recording)


def running_event_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def make_pdf(page_texts: list[str]) -> bytes:
    """A minimal valid PDF with one line of text per page (pypdf can write but not lay out text)."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", None, "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    kids = []
    for text in page_texts:
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET"
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
        content_id = len(objects)
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content_id} 0 R"
            " /Resources << /Font << /F1 3 0 R >> >> >>"
        )
        kids.append(f"{len(objects)} 0 R")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>"
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)
