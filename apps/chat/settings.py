"""Settings read from environment variables and validated once at start-up.

Every problem is collected and reported together, naming the variable, so a
misconfigured deployment fails fast with one readable message.
The README next to this file lists every variable with local and Azure values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

REPO_ROOT = Path(__file__).resolve().parents[2]
RETRIEVAL_MODES = ("hybrid", "vectors", "text")
AUTH_MODES = ("none", "app_service")
POSTGRES_ENTRA_SCOPE = "https://ossrdbms-aad.database.windows.net/.default"
COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"


class SettingsError(ValueError):
    """Raised when environment variables are missing, malformed or contradictory."""


@dataclass(frozen=True)
class Settings:
    # Database: exactly one of database_url, postgres_host, or neither (embedded local server).
    database_url: str | None = None
    postgres_host: str | None = None
    postgres_port: int = 5432
    postgres_database: str = "postgres"
    postgres_user: str | None = None
    postgres_sslmode: str = "require"
    postgres_token_scope: str = POSTGRES_ENTRA_SCOPE
    local_data_dir: Path = REPO_ROOT / ".data"
    db_pool_min_size: int = 1
    db_pool_max_size: int = 10
    db_pool_timeout_seconds: float = 10.0

    # Model: Azure OpenAI / API Management (Entra token), or any OpenAI-compatible URL, or none.
    azure_openai_endpoint: str | None = None
    azure_openai_api_version: str = "2024-10-21"
    azure_openai_token_scope: str = COGNITIVE_SERVICES_SCOPE
    openai_base_url: str | None = None
    openai_api_key: str | None = None
    chat_model: str = "gpt-4o-mini"
    embedding_model: str = "text-embedding-3-small"
    embedding_dimensions: int = 1536
    embedding_batch_size: int = 64
    model_max_retries: int = 3
    model_max_retry_wait_seconds: float = 20.0
    model_timeout_seconds: float = 60.0

    # Retrieval and ingestion.
    search_top: int = 5
    search_minimum_score: float = 0.0
    search_candidates: int = 40
    text_search_candidate_limit: int = 50
    text_search_fuzzy_limit: int = 1000
    hnsw_ef_search: int = 40
    chunk_size: int = 1000
    chunk_overlap: int = 200

    # Access control: "app_service" trusts the App Service authentication headers; "none" ignores them.
    auth_mode: str = "none"
    unrestricted_documents_visible: bool = True
    enforce_access_control: bool = True

    # Request limits.
    max_messages: int = 50
    max_message_chars: int = 8000
    max_request_bytes: int = 256 * 1024
    max_top: int = 50

    # Serving.
    port: int = 8000
    ingest_sample_corpus: bool = True
    sample_corpus_paths: tuple[Path, ...] = field(default_factory=tuple)

    @property
    def uses_embedded_database(self) -> bool:
        return self.database_url is None and self.postgres_host is None

    @property
    def uses_entra_database_auth(self) -> bool:
        return self.postgres_host is not None

    @property
    def model_configured(self) -> bool:
        return self.azure_openai_endpoint is not None or self.openai_base_url is not None


class _EnvReader:
    """Reads typed values from an environment mapping, collecting errors instead of raising."""

    def __init__(self, environ: Mapping[str, str]):
        self.environ = environ
        self.errors: list[str] = []

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self.environ.get(name, "").strip()
        return value or default

    def integer(self, name: str, default: int, minimum: int, maximum: int) -> int:
        return self._in_range(name, default, minimum, maximum, int, "a whole number")

    def number(self, name: str, default: float, minimum: float, maximum: float) -> float:
        return self._in_range(name, default, minimum, maximum, float, "a number")

    def _in_range(self, name: str, default, minimum, maximum, parse, kind: str):
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = parse(raw)
        except ValueError:
            self.errors.append(f"{name} must be {kind}, got {raw!r}")
            return default
        if not minimum <= value <= maximum:
            self.errors.append(f"{name} must be between {minimum} and {maximum}, got {value}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.text(name)
        if raw is None:
            return default
        lowered = raw.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        self.errors.append(f"{name} must be true or false, got {raw!r}")
        return default

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        raw = self.text(name, default)
        assert raw is not None
        if raw not in choices:
            self.errors.append(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
            return default
        return raw

    def url(self, name: str) -> str | None:
        raw = self.text(name)
        if raw is None:
            return None
        parsed = urlparse(raw)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            self.errors.append(f"{name} must be an http(s) URL, got {raw!r}")
            return None
        return raw.rstrip("/")


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from environment variables; raise SettingsError listing every problem."""
    env = _EnvReader(os.environ if environ is None else environ)
    defaults = Settings()
    values = dict(
        database_url=env.text("DATABASE_URL"),
        postgres_host=env.text("POSTGRES_HOST"),
        postgres_port=env.integer("POSTGRES_PORT", 5432, 1, 65535),
        postgres_database=env.text("POSTGRES_DATABASE", defaults.postgres_database),
        postgres_user=env.text("POSTGRES_USER"),
        postgres_sslmode=env.choice(
            "POSTGRES_SSLMODE", "require", ("disable", "prefer", "require", "verify-ca", "verify-full")
        ),
        local_data_dir=Path(env.text("LOCAL_DATA_DIR", str(defaults.local_data_dir))).expanduser(),
        db_pool_min_size=env.integer("DB_POOL_MIN_SIZE", 1, 0, 100),
        db_pool_max_size=env.integer("DB_POOL_MAX_SIZE", 10, 1, 100),
        db_pool_timeout_seconds=env.number("DB_POOL_TIMEOUT_SECONDS", 10.0, 0.1, 300.0),
        azure_openai_endpoint=env.url("AZURE_OPENAI_ENDPOINT"),
        azure_openai_api_version=env.text("AZURE_OPENAI_API_VERSION", defaults.azure_openai_api_version),
        azure_openai_token_scope=env.text("AZURE_OPENAI_TOKEN_SCOPE", defaults.azure_openai_token_scope),
        openai_base_url=env.url("OPENAI_BASE_URL"),
        openai_api_key=env.text("OPENAI_API_KEY"),
        chat_model=env.text("CHAT_MODEL", defaults.chat_model),
        embedding_model=env.text("EMBEDDING_MODEL", defaults.embedding_model),
        embedding_dimensions=env.integer("EMBEDDING_DIMENSIONS", 1536, 2, 2000),
        embedding_batch_size=env.integer("EMBEDDING_BATCH_SIZE", 64, 1, 2048),
        model_max_retries=env.integer("MODEL_MAX_RETRIES", 3, 0, 10),
        model_max_retry_wait_seconds=env.number("MODEL_MAX_RETRY_WAIT_SECONDS", 20.0, 0.0, 300.0),
        model_timeout_seconds=env.number("MODEL_TIMEOUT_SECONDS", 60.0, 1.0, 600.0),
        search_top=env.integer("SEARCH_TOP", 5, 1, 50),
        search_minimum_score=env.number("SEARCH_MINIMUM_SCORE", 0.0, 0.0, 1.0),
        search_candidates=env.integer("SEARCH_CANDIDATES", 40, 1, 1000),
        text_search_candidate_limit=env.integer("TEXT_SEARCH_CANDIDATE_LIMIT", 50, 5, 100000),
        text_search_fuzzy_limit=env.integer("TEXT_SEARCH_FUZZY_LIMIT", 1000, 0, 10_000_000),
        hnsw_ef_search=env.integer("HNSW_EF_SEARCH", 40, 1, 1000),
        chunk_size=env.integer("CHUNK_SIZE", 1000, 100, 20000),
        chunk_overlap=env.integer("CHUNK_OVERLAP", 200, 0, 10000),
        auth_mode=env.choice("AUTH_MODE", "none", AUTH_MODES),
        unrestricted_documents_visible=env.boolean("UNRESTRICTED_DOCUMENTS_VISIBLE", True),
        enforce_access_control=env.boolean("ENFORCE_ACCESS_CONTROL", True),
        max_messages=env.integer("MAX_MESSAGES", 50, 1, 1000),
        max_message_chars=env.integer("MAX_MESSAGE_CHARS", 8000, 1, 1_000_000),
        max_request_bytes=env.integer("MAX_REQUEST_BYTES", 256 * 1024, 1024, 50 * 1024 * 1024),
        max_top=env.integer("MAX_TOP", 50, 1, 1000),
        # App Service publishes the container port as WEBSITES_PORT; PORT wins when both are set.
        port=env.integer("PORT", env.integer("WEBSITES_PORT", 8000, 1, 65535), 1, 65535),
        ingest_sample_corpus=env.boolean("INGEST_SAMPLE_CORPUS", True),
        sample_corpus_paths=tuple(
            Path(p) for p in (env.text("SAMPLE_CORPUS_PATHS") or "").split(os.pathsep) if p.strip()
        ),
    )
    errors = env.errors + _contradictions(values)
    if errors:
        raise SettingsError("Invalid settings:\n  - " + "\n  - ".join(errors))
    return Settings(**values)


def _contradictions(values: dict) -> list[str]:
    """Checks that involve more than one variable."""
    errors = []
    if values["database_url"] and values["postgres_host"]:
        errors.append("set either DATABASE_URL (password or local) or POSTGRES_HOST (Entra token), not both")
    if values["postgres_host"] and not values["postgres_user"]:
        errors.append("POSTGRES_USER is required with POSTGRES_HOST: the Entra principal name the app signs in as")
    if values["azure_openai_endpoint"] and values["openai_base_url"]:
        errors.append("set either AZURE_OPENAI_ENDPOINT or OPENAI_BASE_URL, not both")
    if values["azure_openai_endpoint"] and values["openai_api_key"]:
        errors.append("OPENAI_API_KEY is not used with AZURE_OPENAI_ENDPOINT: Azure access is keyless (Entra)")
    if values["chunk_overlap"] >= values["chunk_size"]:
        errors.append(
            f"CHUNK_OVERLAP ({values['chunk_overlap']}) must be smaller than CHUNK_SIZE ({values['chunk_size']})"
        )
    if values["db_pool_min_size"] > values["db_pool_max_size"]:
        errors.append("DB_POOL_MIN_SIZE must not exceed DB_POOL_MAX_SIZE")
    return errors
