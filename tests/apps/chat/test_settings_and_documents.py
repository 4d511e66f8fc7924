"""Settings validation, document parsing and chunking, and the command line (no database needed
except for the ingest command)."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import pytest

from apps.chat.documents import DocumentError, Page, parse_document, split_into_chunks
from apps.chat.services import build_services
from apps.chat.settings import SettingsError, load_settings

REPO_ROOT = Path(__file__).resolve().parents[3]


def test_defaults_mean_embedded_database_and_no_model():
    settings = load_settings({})
    assert settings.uses_embedded_database and not settings.model_configured
    assert settings.auth_mode == "none" and settings.port == 8000


def test_azure_values_are_accepted():
    settings = load_settings(
        {
            "POSTGRES_HOST": "db.postgres.database.azure.com",
            "POSTGRES_USER": "chat-identity",
            "AZURE_OPENAI_ENDPOINT": "https://gateway.azure-api.net/",
            "AUTH_MODE": "app_service",
            "WEBSITES_PORT": "8080",
        }
    )
    assert settings.uses_entra_database_auth and settings.model_configured
    assert settings.azure_openai_endpoint == "https://gateway.azure-api.net"
    assert settings.port == 8080


def test_every_problem_is_reported_at_once_naming_the_variable():
    with pytest.raises(SettingsError) as error:
        load_settings(
            {
                "SEARCH_TOP": "many",
                "CHUNK_SIZE": "10",
                "AUTH_MODE": "easy",
                "OPENAI_BASE_URL": "localhost:1234",
                "POSTGRES_HOST": "db",
                "DATABASE_URL": "postgresql://x",
                "UNRESTRICTED_DOCUMENTS_VISIBLE": "maybe",
            }
        )
    message = str(error.value)
    for fragment in [
        "SEARCH_TOP must be a whole number",
        "CHUNK_SIZE must be between",
        "AUTH_MODE must be one of",
        "OPENAI_BASE_URL must be an http(s) URL",
        "either DATABASE_URL",
        "POSTGRES_USER is required",
        "UNRESTRICTED_DOCUMENTS_VISIBLE must be true or false",
    ]:
        assert fragment in message


def test_keys_are_refused_with_azure_and_overlap_must_be_smaller_than_chunks():
    with pytest.raises(SettingsError, match="keyless"):
        load_settings({"AZURE_OPENAI_ENDPOINT": "https://a.openai.azure.com", "OPENAI_API_KEY": "secret"})
    with pytest.raises(SettingsError, match="CHUNK_OVERLAP"):
        load_settings({"CHUNK_SIZE": "500", "CHUNK_OVERLAP": "500"})


def test_files_in_flight_are_checked_and_never_more_than_pooled_connections():
    with pytest.raises(SettingsError, match="INGEST_CONCURRENCY must be between 1 and 16"):
        load_settings({"INGEST_CONCURRENCY": "0"})
    settings = load_settings({"INGEST_CONCURRENCY": "8", "DB_POOL_MAX_SIZE": "3"})
    assert build_services(settings).ingestor().concurrency == 3
    assert build_services(load_settings({})).ingestor().concurrency == 2


def test_chunks_overlap_stay_within_size_and_keep_their_page():
    words = " ".join(f"word{number}." for number in range(400))
    chunks = split_into_chunks([Page(1, words), Page(2, "Second page text.")], chunk_size=300, overlap=60)

    assert all(len(chunk.content) <= 300 for chunk in chunks)
    assert [chunk.ordinal for chunk in chunks] == list(range(len(chunks)))
    assert chunks[-1].page == 2 and chunks[-1].content == "Second page text."
    first_page = [chunk.content for chunk in chunks if chunk.page == 1]
    for earlier, later in itertools.pairwise(first_page):
        assert later.split()[0] in earlier  # each chunk starts inside the previous one
    # Nothing is lost: every word of page 1 appears in some chunk.
    assert {w for c in first_page for w in c.split()} == set(words.split())


def test_markdown_keeps_inline_code_in_its_sentence_and_takes_the_heading_as_title():
    parsed = parse_document(Path("guide.md"), b"# Guide\n\nRun `make test` to check.\n\n- one\n- two\n")
    assert parsed.title == "Guide"
    assert "Run make test to check." in parsed.pages[0].text


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("a.pdf", b"not a pdf", "cannot read pdf"),
        ("a.txt", b"\xff\xfe\xfa", "not UTF-8"),
        ("a.docx", b"PK", "unsupported file type"),
        ("a.html", b"<html><script>x()</script></html>", "no text"),
    ],
)
def test_unreadable_documents_raise_document_error_with_the_reason(name, data, reason):
    with pytest.raises(DocumentError, match=reason):
        parse_document(Path(name), data)


def run_cli(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "apps.chat", *arguments],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_cli_reports_invalid_settings_clearly():
    import os

    result = run_cli("ingest", "README.md", env={**os.environ, "SEARCH_TOP": "lots"})
    assert result.returncode == 2
    assert "SEARCH_TOP must be a whole number" in result.stderr


def test_cli_ingest_reports_added_and_skipped_files(database_url, tmp_path):
    import os

    (tmp_path / "good.md").write_text("# Good\n\nA readable file.")
    (tmp_path / "bad.pdf").write_bytes(b"broken")
    env = {**os.environ, "DATABASE_URL": database_url, "EMBEDDING_DIMENSIONS": "64"}
    env.pop("OPENAI_BASE_URL", None)
    env.pop("AZURE_OPENAI_ENDPOINT", None)

    first = run_cli("ingest", str(tmp_path), env=env)
    second = run_cli("ingest", str(tmp_path), env=env)

    assert first.returncode == 1  # one file failed
    assert "added 1" in first.stdout and "skipped" in first.stdout and "bad.pdf" in first.stdout
    assert "unchanged 1" in second.stdout
