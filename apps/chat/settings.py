"""Settings read from environment variables and validated once at start-up.

Each setting is a field of `Settings` (pydantic-settings): its variable is the field's name in capitals
(the port also answers to WEBSITES_PORT), and its default and allowed values are stated there, once.
`load_settings()` reports every problem together, naming the variable, so a misconfigured deployment
fails fast with one readable message. The README next to this file lists every variable with local and
Azure values.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal, get_args
from urllib.parse import urlparse

from annotated_types import Ge, Le
from pydantic import AfterValidator, AliasChoices, BeforeValidator, Field, ValidationError, model_validator
from pydantic_core import ErrorDetails, PydanticCustomError
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]
POSTGRES_ENTRA_SCOPE = "https://ossrdbms-aad.database.windows.net/.default"
COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"
# EMBEDDING_PROVIDER=local: the packaged model (local_embeddings.py), its name as documents record it and
# its vectors' size.
LOCAL_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
LOCAL_EMBEDDING_DIMENSIONS = 384


class SettingsError(ValueError):
    """Raised when environment variables are missing, malformed or contradictory."""


def _http_url(value: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise PydanticCustomError("http_url", "must be an http(s) URL, got {got}", {"got": repr(value)})
    return value.rstrip("/")


def _path_list(value: object) -> object:
    """SAMPLE_CORPUS_PATHS: paths separated like PATH's (":" on Linux)."""
    if isinstance(value, str):
        return tuple(Path(part) for part in value.split(os.pathsep) if part.strip())
    return value


HttpUrl = Annotated[str, AfterValidator(_http_url)]
Port = Annotated[int, Field(ge=1, le=65535)]


class Settings(BaseSettings):
    """Every setting with its default and allowed values.

    `Settings(...)` holds only the values it is given (tests and benchmarks build it so, unaffected by
    the environment they run in); `load_settings()` reads the environment.
    """

    model_config = SettingsConfigDict(frozen=True)

    # Database: exactly one of database_url, postgres_host, or neither (embedded local server).
    database_url: str | None = None
    postgres_host: str | None = None
    postgres_port: Port = 5432
    postgres_database: str = "postgres"
    postgres_user: str | None = None
    postgres_sslmode: Literal["disable", "prefer", "require", "verify-ca", "verify-full"] = "require"
    local_data_dir: Annotated[Path, AfterValidator(Path.expanduser)] = REPO_ROOT / ".data"
    db_pool_min_size: int = Field(1, ge=0, le=100)
    db_pool_max_size: int = Field(10, ge=1, le=100)
    db_pool_timeout_seconds: float = Field(10.0, ge=0.1, le=300.0)

    # Model: Azure OpenAI / API Management (Entra token), or any OpenAI-compatible URL, or none.
    azure_openai_endpoint: HttpUrl | None = None
    azure_openai_api_version: str = "2024-10-21"
    azure_openai_token_scope: str = COGNITIVE_SERVICES_SCOPE
    openai_base_url: HttpUrl | None = None
    openai_api_key: str | None = None
    chat_model: str = "gpt-4o-mini"
    # Who embeds documents and queries: "openai", the model endpoint above (without one, search is full
    # text only), or "local", a packaged model on this machine's CPU (local_embeddings.py; its packages
    # are optional: apps/chat/requirements-embeddings.txt). The chat model is the endpoint's either way.
    embedding_provider: Literal["openai", "local"] = "openai"
    # With "local", these two default to the local model's name and size (LOCAL_EMBEDDING_*), the only
    # values it takes.
    embedding_model: str = "text-embedding-3-small"
    # Fixed per database: the first start sizes the vector column (the model must accept `dimensions`).
    embedding_dimensions: int = Field(1536, ge=2, le=2000)
    embedding_batch_size: int = Field(64, ge=1, le=2048)
    # Retries on 429/5xx honour Retry-After; a longer Retry-After fails at once with 503.
    model_max_retries: int = Field(3, ge=0, le=10)
    model_max_retry_wait_seconds: float = Field(20.0, ge=0.0, le=300.0)
    model_timeout_seconds: float = Field(60.0, ge=1.0, le=600.0)

    # Retrieval and ingestion.
    search_top: int = Field(5, ge=1, le=50)
    search_minimum_score: float = Field(0.0, ge=0.0, le=1.0)
    # Each side of the hybrid search is bounded before fusion (search.py explains how).
    search_candidates: int = Field(20, ge=1, le=1000)
    text_search_candidate_limit: int = Field(100, ge=5, le=100000)
    hnsw_ef_search: int = Field(40, ge=1, le=1000)
    # Chunks and their overlap, in characters.
    chunk_size: int = Field(1000, ge=100, le=20000)
    chunk_overlap: int = Field(200, ge=0, le=10000)
    # Files ingested at once, each in its own transaction on a pooled connection (ingest.py).
    ingest_concurrency: int = Field(2, ge=1, le=16)

    # Access control: "app_service" trusts the App Service authentication headers; "none" ignores them.
    auth_mode: Literal["none", "app_service"] = "none"
    unrestricted_documents_visible: bool = True
    enforce_access_control: bool = True

    # Request limits.
    max_messages: int = Field(50, ge=1, le=1000)
    max_message_chars: int = Field(8000, ge=1, le=1_000_000)
    max_request_bytes: int = Field(256 * 1024, ge=1024, le=50 * 1024 * 1024)
    # A request body still arriving after this many seconds is answered 408 (a slow or stalled client).
    request_body_timeout_seconds: float = Field(30.0, ge=0.1, le=600.0)
    max_top: int = Field(50, ge=1, le=1000)

    # Serving. App Service publishes the container port as WEBSITES_PORT; PORT wins when both are set.
    port: Port = Field(8000, validation_alias=AliasChoices("port", "websites_port"))
    ingest_sample_corpus: bool = True
    sample_corpus_paths: Annotated[tuple[Path, ...], NoDecode, BeforeValidator(_path_list)] = ()

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, *_, **__):
        # Only the values given to the constructor: the environment is load_settings()'s to read.
        return (init_settings,)

    @model_validator(mode="before")
    @classmethod
    def _local_embedding_defaults(cls, values: object) -> object:
        """EMBEDDING_PROVIDER=local: the local model's name and size unless given (a different value
        given is reported by load_settings)."""
        if isinstance(values, dict) and values.get("embedding_provider") == "local":
            defaults = {"embedding_model": LOCAL_EMBEDDING_MODEL, "embedding_dimensions": LOCAL_EMBEDDING_DIMENSIONS}
            return {**defaults, **values}
        return values

    @property
    def uses_embedded_database(self) -> bool:
        return self.database_url is None and self.postgres_host is None

    @property
    def uses_entra_database_auth(self) -> bool:
        return self.postgres_host is not None

    @property
    def model_configured(self) -> bool:
        return self.azure_openai_endpoint is not None or self.openai_base_url is not None

    @property
    def uses_local_embeddings(self) -> bool:
        return self.embedding_provider == "local"


class _EnvironmentVariables(EnvSettingsSource):
    """The settings' values in a mapping of environment variables; a blank value counts as unset."""

    def __init__(self, environ: Mapping[str, str]):
        super().__init__(Settings)
        # Keys in lower case: variable names match field names regardless of case.
        self.env_vars = {name.lower(): value.strip() for name, value in environ.items() if value.strip()}


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from environment variables; raise SettingsError listing every problem."""
    environ = os.environ if environ is None else environ
    values = _EnvironmentVariables(environ)()
    try:
        settings = Settings(**values)
        problems = []
    except ValidationError as error:
        problems = [_describe(problem, environ) for problem in error.errors()]
        # Check the combinations too, as if the malformed variables were unset.
        malformed = {problem["loc"][0] for problem in error.errors()}
        settings = Settings(**{name: value for name, value in values.items() if name not in malformed})
    problems += _contradictions(settings)
    if problems:
        raise SettingsError("Invalid settings:\n  - " + "\n  - ".join(problems))
    return settings


# What a variable's problem says, by pydantic's error type (other types carry their own message).
_PROBLEMS = {
    "int_parsing": "must be a whole number, got {got!r}",
    "float_parsing": "must be a number, got {got!r}",
    "bool_parsing": "must be true or false, got {got!r}",
    "literal_error": "must be one of {choices}, got {got!r}",
    "greater_than_equal": "must be between {minimum} and {maximum}, got {got}",
    "less_than_equal": "must be between {minimum} and {maximum}, got {got}",
}


def _describe(problem: ErrorDetails, environ: Mapping[str, str]) -> str:
    """One validation error as "<VARIABLE> must be ..., got ..."."""
    field_name = str(problem["loc"][0])
    field = Settings.model_fields[field_name]
    limits = {type(limit): limit for limit in field.metadata if isinstance(limit, (Ge, Le))}
    template = _PROBLEMS.get(problem["type"], problem["msg"])
    text = template.format(
        got=problem["input"],
        choices=", ".join(map(str, get_args(field.annotation))),
        minimum=limits[Ge].ge if Ge in limits else None,
        maximum=limits[Le].le if Le in limits else None,
    )
    return f"{_variable(field_name, environ)} {text}"


def _variable(field_name: str, environ: Mapping[str, str]) -> str:
    """The variable a field's value came from: the first of its names that is set."""
    alias = Settings.model_fields[field_name].validation_alias
    names = [name.upper() for name in (alias.choices if isinstance(alias, AliasChoices) else [field_name])]
    return next((name for name in names if environ.get(name, "").strip()), names[0])


def _contradictions(settings: Settings) -> list[str]:
    """Checks that involve more than one variable."""
    problems = []
    if settings.database_url and settings.postgres_host:
        problems.append("set either DATABASE_URL (password or local) or POSTGRES_HOST (Entra token), not both")
    if settings.postgres_host and not settings.postgres_user:
        problems.append("POSTGRES_USER is required with POSTGRES_HOST: the Entra principal name the app signs in as")
    if settings.azure_openai_endpoint and settings.openai_base_url:
        problems.append("set either AZURE_OPENAI_ENDPOINT or OPENAI_BASE_URL, not both")
    if settings.azure_openai_endpoint and settings.openai_api_key:
        problems.append("OPENAI_API_KEY is not used with AZURE_OPENAI_ENDPOINT: Azure access is keyless (Entra)")
    if settings.uses_local_embeddings and settings.embedding_model != LOCAL_EMBEDDING_MODEL:
        problems.append(
            f"EMBEDDING_MODEL is not used with EMBEDDING_PROVIDER=local: the local model is {LOCAL_EMBEDDING_MODEL};"
            " leave EMBEDDING_MODEL unset"
        )
    if settings.uses_local_embeddings and settings.embedding_dimensions != LOCAL_EMBEDDING_DIMENSIONS:
        problems.append(
            f"EMBEDDING_DIMENSIONS must be {LOCAL_EMBEDDING_DIMENSIONS} with EMBEDDING_PROVIDER=local (the size of"
            f" {LOCAL_EMBEDDING_MODEL}'s vectors), got {settings.embedding_dimensions}; leave it unset"
        )
    if settings.chunk_overlap >= settings.chunk_size:
        problems.append(
            f"CHUNK_OVERLAP ({settings.chunk_overlap}) must be smaller than CHUNK_SIZE ({settings.chunk_size})"
        )
    if settings.db_pool_min_size > settings.db_pool_max_size:
        problems.append("DB_POOL_MIN_SIZE must not exceed DB_POOL_MAX_SIZE")
    return problems
