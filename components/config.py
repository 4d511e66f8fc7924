"""Stack configuration: read once, validated, turned into typed objects.

Every per-environment difference lives in `Pulumi.<stack>.yaml` under the `aichat:` namespace.
`load_stack_config()` reads it through `pulumi.Config`; `parse_stack_config()` does the real work
on plain Python values so tests can feed it dictionaries. Problems raise one `ConfigError` that
lists every one of them (each naming the key, the bad value and what is allowed) before a single
resource is registered. Besides the shape of each value, the config is checked against the platform
catalogue (`catalog/`, components/platform_checks.py) on the date of the run: regions that exist,
models each region offers and that are still open to new deployments.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pulumi

if TYPE_CHECKING:
    from components.catalog import Catalog

PROJECT = "aichat"

_MISSING = object()


class ConfigError(ValueError):
    """Stack config values are missing or invalid. Each problem names key, value and what is allowed."""

    def __init__(self, problems: str | Sequence[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        if len(self.problems) == 1:
            message = self.problems[0]
        else:
            message = f"{len(self.problems)} problems in the stack config:\n" + "\n".join(
                f"- {problem}" for problem in self.problems
            )
        super().__init__(message)


class _Problems:
    """Collects every problem of a stack file, so that one run reports all of them."""

    def __init__(self):
        self.found: list[str] = []

    def attempt(self, parse: Callable[[], Any]) -> Any:
        """The parsed value, or None after recording why it could not be parsed."""
        try:
            return parse()
        except ConfigError as error:
            self.found.extend(error.problems)
            return None


# --------------------------------------------------------------------------------------------
# A small reader that remembers where it is, so every error names the full key.
# --------------------------------------------------------------------------------------------


class Section:
    """One config object (a mapping) at a dotted key path such as `aichat:postgres`.

    Each accessor consumes a field; `finish()` rejects fields nobody asked for, so a typo such as
    `storageSizeGB` fails loudly instead of being ignored.
    """

    def __init__(self, path: str, raw: Any):
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{path}: expected an object (key: value pairs), got {raw!r}")
        self.path = path
        self._raw = dict(raw)
        self._seen: set[str] = set()

    def key(self, name: str) -> str:
        # Top-level keys read as Pulumi writes them (`aichat:network`), nested ones with dots.
        separator = ":" if self.path == PROJECT else "."
        return f"{self.path}{separator}{name}"

    def _take(self, name: str, default: Any) -> Any:
        self._seen.add(name)
        if name in self._raw and self._raw[name] is not None:
            return self._raw[name]
        if default is _MISSING:
            raise ConfigError(f"{self.key(name)} is required but not set")
        return default

    def string(
        self,
        name: str,
        default: Any = _MISSING,
        *,
        choices: Sequence[str] | None = None,
        pattern: str | None = None,
        hint: str = "",
    ) -> str:
        value = self._take(name, default)
        if not isinstance(value, str) or value == "":
            raise ConfigError(f"{self.key(name)}: expected a non-empty string, got {value!r}")
        if choices is not None and value not in choices:
            raise ConfigError(f"{self.key(name)}: {value!r} is not allowed; allowed values: {', '.join(choices)}")
        if pattern is not None and not re.fullmatch(pattern, value):
            raise ConfigError(f"{self.key(name)}: {value!r} is not valid; {hint or 'must match ' + pattern}")
        return value

    def integer(self, name: str, default: Any = _MISSING, *, minimum: int, maximum: int) -> int:
        value = self._take(name, default)
        # YAML may give "7" for quoted numbers; floats such as 7.0 arrive from JSON round-trips.
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{self.key(name)}: expected a whole number, got {value!r}")
        if not minimum <= value <= maximum:
            raise ConfigError(f"{self.key(name)}: {value} is out of range; allowed: {minimum} to {maximum}")
        return value

    def number(self, name: str, default: Any = _MISSING, *, minimum: float, maximum: float) -> float:
        value = self._take(name, default)
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{self.key(name)}: expected a number, got {value!r}")
        if not minimum <= value <= maximum:
            raise ConfigError(f"{self.key(name)}: {value} is out of range; allowed: {minimum} to {maximum}")
        return float(value)

    def boolean(self, name: str, default: Any = _MISSING) -> bool:
        value = self._take(name, default)
        if isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        if not isinstance(value, bool):
            raise ConfigError(f"{self.key(name)}: expected true or false, got {value!r}")
        return value

    def section(self, name: str, default: Any = _MISSING) -> Section:
        return Section(self.key(name), self._take(name, default))

    def items(self, name: str, default: Any = _MISSING) -> list[Any]:
        value = self._take(name, default)
        if not isinstance(value, list):
            raise ConfigError(f"{self.key(name)}: expected a list, got {value!r}")
        return value

    def mapping_of_strings(self, name: str, default: Any = _MISSING) -> dict[str, str]:
        value = self._take(name, default)
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, (str, int, float, bool)) for k, v in value.items()
        ):
            raise ConfigError(f"{self.key(name)}: expected an object of string values, got {value!r}")
        return {k: str(v) for k, v in value.items()}

    def finish(self) -> None:
        unknown = sorted(set(self._raw) - self._seen)
        if unknown:
            known = ", ".join(sorted(self._seen))
            raise ConfigError(f"{self.path}: unknown key(s) {', '.join(unknown)}; known keys: {known}")


def _cidr(key: str, value: Any) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except (ValueError, TypeError) as error:
        raise ConfigError(f"{key}: {value!r} is not an IPv4 CIDR block such as 10.40.0.0/24 ({error})") from None


# --------------------------------------------------------------------------------------------
# Typed configuration objects
# --------------------------------------------------------------------------------------------

ENVIRONMENTS = ("dev", "test", "prod")


@dataclass(frozen=True)
class SubnetSpec:
    """What a subnet is for and the smallest block Azure (or we) accept for it."""

    key: str
    largest_prefix: int  # /27 means prefixes 27 and below (bigger blocks) are fine
    why: str


# Sizes: App Service integration wants /26 (Microsoft's recommendation, room to scale out);
# API Management classic tiers need room for instances and updates; private endpoints take one IP each.
SUBNETS: tuple[SubnetSpec, ...] = (
    SubnetSpec("appService", 26, "App Service VNet integration needs /26 or larger to scale out"),
    SubnetSpec("privateEndpoints", 27, "private endpoints take one address each; /27 or larger leaves room"),
    SubnetSpec("apiManagement", 27, "API Management in a VNet needs /27 or larger for its units and updates"),
    SubnetSpec("jobs", 28, "Container Instances jobs need /28 or larger"),
    SubnetSpec("buildAgents", 28, "the registry's build agent pool needs /28 or larger"),
)


@dataclass(frozen=True)
class NetworkConfig:
    address_space: ipaddress.IPv4Network
    subnets: Mapping[str, ipaddress.IPv4Network]


@dataclass(frozen=True)
class KeyVaultConfig:
    sku: str
    soft_delete_retention_days: int


# ACR Tasks dedicated agent pool tiers (vCPU / GiB per instance): S1 2/3, S2 4/8, S3 8/16, I6 64/216.
BUILD_AGENT_POOL_TIERS = ("S1", "S2", "S3", "I6")


@dataclass(frozen=True)
class BuildAgentPoolConfig:
    """The registry's own build agents inside the VNet: how images reach a registry with public access off."""

    enabled: bool
    tier: str
    count: int


@dataclass(frozen=True)
class RegistryConfig:
    zone_redundant: bool
    # Dev-only escape hatch: lets a build agent outside the VNet push images. Empty = public access off.
    build_agent_ip_ranges: tuple[str, ...]
    build_agent_pool: BuildAgentPoolConfig


POSTGRES_TIERS = {
    # tier -> SKU name pattern Azure accepts for it
    "Burstable": r"Standard_B\d+m?s",
    "GeneralPurpose": r"Standard_D\d+a?ds_v[45]|Standard_D\d+s_v3",
    "MemoryOptimized": r"Standard_E\d+a?ds_v[45]|Standard_E\d+s_v3",
}
POSTGRES_STORAGE_SIZES_GB = (32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32767)
POSTGRES_VERSIONS = ("14", "15", "16", "17")


@dataclass(frozen=True)
class EntraAdmin:
    """An Entra principal that administers the PostgreSQL server (values may be Pulumi outputs)."""

    object_id: Any
    principal_name: Any
    principal_type: str  # User | Group | ServicePrincipal


@dataclass(frozen=True)
class PostgresConfig:
    version: str
    tier: str
    sku_name: str
    storage_size_gb: int
    backup_retention_days: int
    geo_redundant_backup: bool
    high_availability: bool
    database_name: str
    extra_admins: tuple[EntraAdmin, ...]


APP_SERVICE_SKUS = ("B1", "B2", "B3", "S1", "S2", "S3", "P0v3", "P1v3", "P2v3", "P3v3", "P1mv3", "P2mv3")


@dataclass(frozen=True)
class AppServiceConfig:
    sku_name: str
    instance_count: int
    zone_redundant: bool
    image: str  # repository:tag (or @sha256:digest) inside this stack's registry
    health_check_path: str
    # Client id of the Entra app registration users sign in to (App Service authentication).
    sign_in_client_id: str


@dataclass(frozen=True)
class ObservabilityConfig:
    log_retention_days: int


@dataclass(frozen=True)
class StackConfig:
    project: str
    stack: str
    environment: str
    location: str
    name_prefix: str
    tags: Mapping[str, str]
    protect_stateful_resources: bool
    network: NetworkConfig
    key_vault: KeyVaultConfig
    registry: RegistryConfig
    postgres: PostgresConfig
    app_service: AppServiceConfig
    observability: ObservabilityConfig
    openai: OpenAiConfig
    gateway: GatewayConfig
    ingestion: IngestionConfig
    # What the catalogue check found worth knowing but not blocking (a model closing soon).
    warnings: tuple[str, ...] = ()

    @property
    def is_production(self) -> bool:
        return self.environment == "prod"

    @property
    def job_workloads(self) -> tuple[str, ...]:
        """Workloads besides the web app that run the app image, each with its own identity and roles."""
        return ("ingestion",) if self.ingestion.enabled else ()

    @property
    def workloads(self) -> tuple[str, ...]:
        return ("app", *self.job_workloads)


# --------------------------------------------------------------------------------------------
# Parsers, one per section
# --------------------------------------------------------------------------------------------

_NAME_PREFIX = r"[a-z][a-z0-9]{1,9}"
_LOCATION = r"[a-z]+[a-z0-9]*"


def _parse_network(section: Section) -> NetworkConfig:
    space = _cidr(section.key("addressSpace"), section.string("addressSpace"))
    if not space.is_private:
        raise ConfigError(
            f"{section.key('addressSpace')}: {space} is not a private range; use 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16"
        )
    subnets_section = section.section("subnets")
    subnets: dict[str, ipaddress.IPv4Network] = {}
    for spec in SUBNETS:
        key = subnets_section.key(spec.key)
        block = _cidr(key, subnets_section.string(spec.key))
        if not block.subnet_of(space):
            raise ConfigError(f"{key}: {block} is outside the address space {space}")
        if block.prefixlen > spec.largest_prefix:
            raise ConfigError(
                f"{key}: {block} is too small (/{block.prefixlen}); {spec.why} (/{spec.largest_prefix} or larger)"
            )
        for other_key, other in subnets.items():
            if block.overlaps(other):
                raise ConfigError(
                    f"{key}: {block} overlaps {subnets_section.key(other_key)} ({other}); subnets must not overlap"
                )
        subnets[spec.key] = block
    subnets_section.finish()
    section.finish()
    return NetworkConfig(address_space=space, subnets=subnets)


def _parse_key_vault(section: Section) -> KeyVaultConfig:
    config = KeyVaultConfig(
        sku=section.string("sku", "standard", choices=("standard", "premium")),
        soft_delete_retention_days=section.integer("softDeleteRetentionDays", 90, minimum=7, maximum=90),
    )
    section.finish()
    return config


_RFC1918 = tuple(ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


def _parse_registry(section: Section, environment: str) -> RegistryConfig:
    ranges = section.items("buildAgentIpRanges", [])
    for index, value in enumerate(ranges):
        block = _cidr(f"{section.key('buildAgentIpRanges')}[{index}]", value)
        if any(block.subnet_of(private) for private in _RFC1918):
            raise ConfigError(
                f"{section.key('buildAgentIpRanges')}[{index}]: {block} is private; agents inside the VNet "
                "reach the registry through its private endpoint and need no rule"
            )
    if ranges and environment == "prod":
        raise ConfigError(
            f"{section.key('buildAgentIpRanges')}: {ranges!r} is set for a prod stack; the registry's public access "
            "must stay off in prod (push from an agent inside the VNet instead, see docs/deploying.md)"
        )
    config = RegistryConfig(
        zone_redundant=section.boolean("zoneRedundant", False),
        build_agent_ip_ranges=tuple(str(r) for r in ranges),
        build_agent_pool=_parse_build_agent_pool(section.section("buildAgentPool", {})),
    )
    section.finish()
    return config


def _parse_build_agent_pool(section: Section) -> BuildAgentPoolConfig:
    config = BuildAgentPoolConfig(
        enabled=section.boolean("enabled", True),
        tier=section.string("tier", "S1", choices=BUILD_AGENT_POOL_TIERS),
        # 0 keeps the pool but stops paying for agents; builds then wait until it is scaled up again.
        count=section.integer("count", 1, minimum=0, maximum=10),
    )
    section.finish()
    return config


def _parse_entra_admin(key: str, raw: Any) -> EntraAdmin:
    section = Section(key, raw)
    admin = EntraAdmin(
        object_id=section.string(
            "objectId",
            pattern=_GUID,
            hint="must be the Entra object id (a GUID) of the user, group or service principal",
        ),
        principal_name=section.string("principalName"),
        principal_type=section.string("principalType", "Group", choices=("User", "Group", "ServicePrincipal")),
    )
    section.finish()
    return admin


def _parse_postgres(section: Section) -> PostgresConfig:
    tier = section.string("tier", choices=tuple(POSTGRES_TIERS))
    sku_name = section.string(
        "skuName",
        pattern=POSTGRES_TIERS[tier],
        hint=f"not a {tier} SKU (e.g. "
        + {"Burstable": "Standard_B1ms", "GeneralPurpose": "Standard_D2ds_v5", "MemoryOptimized": "Standard_E2ds_v5"}[
            tier
        ]
        + ")",
    )
    storage = section.integer("storageSizeGb", 32, minimum=32, maximum=32767)
    if storage not in POSTGRES_STORAGE_SIZES_GB:
        raise ConfigError(
            f"{section.key('storageSizeGb')}: {storage} is not a size Azure offers; allowed: "
            + ", ".join(map(str, POSTGRES_STORAGE_SIZES_GB))
        )
    high_availability = section.boolean("highAvailability", False)
    if high_availability and tier == "Burstable":
        raise ConfigError(
            f"{section.key('highAvailability')}: true is not available on the Burstable tier; "
            "use tier GeneralPurpose or MemoryOptimized, or set highAvailability: false"
        )
    admins = section.items("extraAdmins", [])
    config = PostgresConfig(
        version=section.string("version", "16", choices=POSTGRES_VERSIONS),
        tier=tier,
        sku_name=sku_name,
        storage_size_gb=storage,
        backup_retention_days=section.integer("backupRetentionDays", 7, minimum=7, maximum=35),
        geo_redundant_backup=section.boolean("geoRedundantBackup", False),
        high_availability=high_availability,
        database_name=section.string(
            "databaseName", "chat", pattern=r"[a-z_][a-z0-9_]{0,62}", hint="lower-case letters, digits and _"
        ),
        extra_admins=tuple(
            _parse_entra_admin(f"{section.key('extraAdmins')}[{i}]", raw) for i, raw in enumerate(admins)
        ),
    )
    section.finish()
    return config


_GUID = r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}"
_IMAGE = r"[a-z0-9]+(?:[._/-][a-z0-9]+)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[0-9a-f]{64})"


def _parse_app_service(section: Section) -> AppServiceConfig:
    config = AppServiceConfig(
        sku_name=section.string("skuName", "P0v3", choices=APP_SERVICE_SKUS),
        instance_count=section.integer("instanceCount", 1, minimum=1, maximum=30),
        zone_redundant=section.boolean("zoneRedundant", False),
        image=section.string(
            "image",
            pattern=_IMAGE,
            hint="expected repository:tag or repository@sha256:<digest> inside this stack's registry, "
            "e.g. chat:0.1.0 (no registry host: the stack's own registry is used)",
        ),
        health_check_path=section.string("healthCheckPath", "/healthz", pattern=r"/[A-Za-z0-9/_-]*"),
        sign_in_client_id=section.string(
            "signInClientId",
            pattern=_GUID,
            hint="must be the client id (a GUID) of the Entra app registration users sign in with; "
            "see docs/deploying.md, 'Sign-in app registration'",
        ),
    )
    first_part = config.image.split("/", 1)[0]
    if "/" in config.image and ("." in first_part or first_part == "localhost"):
        raise ConfigError(
            f"{section.key('image')}: {config.image!r} names a registry host ({first_part}); give repository:tag "
            "only - images always come from this stack's private registry"
        )
    if config.zone_redundant and config.instance_count < 2:
        raise ConfigError(
            f"{section.key('instanceCount')}: {config.instance_count} with zoneRedundant: true; "
            "a zone-redundant plan needs at least 2 instances"
        )
    section.finish()
    return config


def _parse_observability(section: Section) -> ObservabilityConfig:
    config = ObservabilityConfig(log_retention_days=section.integer("logRetentionDays", 30, minimum=30, maximum=730))
    section.finish()
    return config


# --------------------------------------------------------------------------------------------
# Azure OpenAI accounts and the API Management gateway in front of them (docs/gateway.md)
# --------------------------------------------------------------------------------------------

# The roles a model plays for the app. Which models exist, and where and until when Azure offers them,
# is the platform catalogue's business (catalog/openai-models.yaml); any model it lists for a role is
# accepted. The app sends `dimensions` with embedding requests, which ada-002 does not accept.
MODEL_ROLES = ("chat", "embedding")
EMBEDDING_MODELS_WITHOUT_DIMENSIONS = ("text-embedding-ada-002",)
# Pay-as-you-go deployment types; capacity is in thousands of tokens per minute.
OPENAI_DEPLOYMENT_SKUS = ("Standard", "GlobalStandard", "DataZoneStandard")
# Azure's limits for a member of an API Management backend pool.
POOL_PRIORITY_RANGE = (1, 100)
POOL_WEIGHT_RANGE = (1, 100)
GATEWAY_SKUS = ("Developer", "Premium")
_ISO_DURATION = r"PT(?=\d)(\d+H)?(\d+M)?(\d+S)?"


@dataclass(frozen=True)
class ModelDeploymentConfig:
    """One model deployment, the same on every account (the pool needs identical deployment names)."""

    role: str  # chat | embedding
    deployment_name: str  # what the app sends as `model` (CHAT_MODEL / EMBEDDING_MODEL)
    model_name: str
    model_version: str
    sku_name: str
    capacity: int  # default capacity on each account, thousands of tokens per minute
    # True: deploy a model the catalogue does not list, or lists as closed, because you know this
    # subscription may (Azure added it after the review; the subscription already deploys a deprecating
    # model). The catalogue checks are skipped for it; the live preflight still checks it.
    skip_catalog_check: bool = False

    @property
    def key(self) -> str:
        return f"{PROJECT}:openai.models.{self.role}"


@dataclass(frozen=True)
class OpenAiInstanceConfig:
    """One Azure OpenAI account and its place in the gateway's backend pool."""

    name: str
    region: str
    priority: int  # lower = preferred; the next priority only gets traffic when all better members are out
    weight: int  # share of traffic among members with the same priority
    capacity: Mapping[str, int]  # role -> capacity on this account (overrides the model's default)

    def capacity_for(self, model: ModelDeploymentConfig) -> int:
        return self.capacity.get(model.role, model.capacity)


@dataclass(frozen=True)
class OpenAiConfig:
    allow_shared_region: bool
    chat_model: ModelDeploymentConfig
    embedding_model: ModelDeploymentConfig
    instances: tuple[OpenAiInstanceConfig, ...]

    @property
    def models(self) -> tuple[ModelDeploymentConfig, ...]:
        return (self.chat_model, self.embedding_model)

    @property
    def regions(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(instance.region for instance in self.instances))


@dataclass(frozen=True)
class CircuitBreakerConfig:
    failure_count: int  # failures within failure_interval that trip a member
    failure_interval: str  # ISO 8601 duration
    trip_duration: str  # how long a tripped member gets no traffic (unless the backend sent Retry-After)


@dataclass(frozen=True)
class GatewayConfig:
    sku: str
    capacity: int
    publisher_email: str
    publisher_name: str
    tokens_per_minute_per_caller: int
    metric_namespace: str
    circuit_breaker: CircuitBreakerConfig
    # Availability zones the units are spread over ("1", "2", "3"); empty = no zone pinning.
    zones: tuple[str, ...] = ()


def _parse_model(section: Section, role: str) -> ModelDeploymentConfig:
    model_name = section.string(
        "model", pattern=r"[A-Za-z0-9][A-Za-z0-9._-]{1,63}", hint="a model name such as gpt-5-mini"
    )
    if role == "embedding" and model_name in EMBEDDING_MODELS_WITHOUT_DIMENSIONS:
        raise ConfigError(
            f"{section.key('model')}: {model_name!r} cannot serve as the embedding model: the app sends `dimensions`, "
            "which only the text-embedding-3 family accepts"
        )
    config = ModelDeploymentConfig(
        role=role,
        deployment_name=section.string(
            "deployment", model_name, pattern=r"[A-Za-z0-9][A-Za-z0-9._-]{1,63}", hint="2-64 letters, digits, . _ -"
        ),
        model_name=model_name,
        model_version=section.string(
            "version", pattern=r"\d{4}-\d{2}-\d{2}|\d+", hint="a model version such as 2025-08-07 or 1"
        ),
        sku_name=section.string("sku", "GlobalStandard", choices=OPENAI_DEPLOYMENT_SKUS),
        capacity=section.integer("capacity", minimum=1, maximum=10000),
        skip_catalog_check=section.boolean("skipCatalogCheck", False),
    )
    section.finish()
    return config


def _parse_openai_instance(key: str, raw: Any) -> OpenAiInstanceConfig:
    section = Section(key, raw)
    capacity_section = section.section("capacity", {})
    capacity = {
        role: capacity_section.integer(role, minimum=1, maximum=10000)
        for role in MODEL_ROLES
        if role in (raw.get("capacity") or {})  # only the roles this instance overrides
    }
    capacity_section.finish()
    instance = OpenAiInstanceConfig(
        name=section.string(
            "name", pattern=r"[a-z][a-z0-9]{1,11}", hint="2-12 lower-case letters and digits, starting with a letter"
        ),
        region=section.string("region", pattern=_LOCATION, hint="an Azure region name such as swedencentral"),
        priority=section.integer("priority", 1, minimum=POOL_PRIORITY_RANGE[0], maximum=POOL_PRIORITY_RANGE[1]),
        weight=section.integer("weight", 1, minimum=POOL_WEIGHT_RANGE[0], maximum=POOL_WEIGHT_RANGE[1]),
        capacity=capacity,
    )
    section.finish()
    return instance


def _check_openai_instances(key: str, instances: Sequence[OpenAiInstanceConfig], environment: str, shared_ok: bool):
    names = [instance.name for instance in instances]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError(f"{key}: duplicate instance name(s) {', '.join(duplicates)}; each name must be unique")
    regions = [instance.region for instance in instances]
    repeated = sorted({region for region in regions if regions.count(region) > 1})
    if repeated and not shared_ok:
        raise ConfigError(
            f"{key}: region(s) {', '.join(repeated)} listed more than once; accounts in one region share that "
            "region's quota, so a second one adds no capacity. Use another region, or set "
            "aichat:openai.allowSharedRegion: true"
        )
    minimum_accounts, minimum_regions = (3, 2) if environment == "prod" else (2, 1)
    if len(instances) < minimum_accounts:
        raise ConfigError(
            f"{key}: {len(instances)} instance(s) for a {environment} stack; at least {minimum_accounts} are needed "
            "so that the gateway can fail over when one account is throttled or down"
        )
    if len(set(regions)) < minimum_regions:
        raise ConfigError(
            f"{key}: all instances are in {regions[0]}; a {environment} stack needs accounts in at least "
            f"{minimum_regions} regions so that a regional outage does not stop the chat"
        )


def _parse_openai(section: Section, environment: str) -> OpenAiConfig:
    problems = _Problems()  # each model and each instance is checked on its own, so all are reported
    models = section.section("models")
    chat_model = problems.attempt(lambda: _parse_model(models.section("chat"), "chat"))
    embedding_model = problems.attempt(lambda: _parse_model(models.section("embedding"), "embedding"))
    problems.attempt(models.finish)
    if chat_model and embedding_model and chat_model.deployment_name == embedding_model.deployment_name:
        problems.found.append(
            f"{models.key('embedding')}.deployment: {embedding_model.deployment_name!r} is also the chat deployment; "
            "the two deployments need different names"
        )
    raw_instances = section.items("instances")
    if not raw_instances:
        raise ConfigError(f"{section.key('instances')}: no instances; list the Azure OpenAI accounts to create")
    instances = [
        problems.attempt(lambda i=i, raw=raw: _parse_openai_instance(f"{section.key('instances')}[{i}]", raw))
        for i, raw in enumerate(raw_instances)
    ]
    shared_ok = problems.attempt(lambda: section.boolean("allowSharedRegion", False))
    problems.attempt(section.finish)
    if problems.found:
        raise ConfigError(problems.found)
    _check_openai_instances(section.key("instances"), instances, environment, shared_ok)
    return OpenAiConfig(shared_ok, chat_model, embedding_model, tuple(instances))


def _parse_circuit_breaker(section: Section) -> CircuitBreakerConfig:
    duration_hint = "an ISO 8601 duration such as PT1M or PT30S"
    config = CircuitBreakerConfig(
        failure_count=section.integer("failureCount", 1, minimum=1, maximum=1000),
        failure_interval=section.string("failureInterval", "PT1M", pattern=_ISO_DURATION, hint=duration_hint),
        trip_duration=section.string("tripDuration", "PT1M", pattern=_ISO_DURATION, hint=duration_hint),
    )
    section.finish()
    return config


def _parse_gateway(section: Section, environment: str) -> GatewayConfig:
    sku = section.string("sku", choices=GATEWAY_SKUS)
    if sku == "Developer" and environment == "prod":
        raise ConfigError(
            f"{section.key('sku')}: 'Developer' is not allowed for a prod stack (no SLA, a single unit, downtime "
            "on updates); use Premium"
        )
    capacity_limit = 1 if sku == "Developer" else 12
    capacity = section.integer("capacity", 1, minimum=1, maximum=capacity_limit)
    zones = _parse_gateway_zones(section, sku, capacity, environment)
    config = GatewayConfig(
        sku=sku,
        capacity=capacity,
        zones=zones,
        publisher_email=section.string(
            "publisherEmail", pattern=r"[^@\s]+@[^@\s]+\.[^@\s]+", hint="an e-mail address such as team@example.com"
        ),
        publisher_name=section.string("publisherName"),
        tokens_per_minute_per_caller=section.integer("tokensPerMinutePerCaller", minimum=1000, maximum=100_000_000),
        metric_namespace=section.string(
            "metricNamespace", "aichat-openai", pattern=r"[A-Za-z][A-Za-z0-9._-]{0,63}", hint="letters, digits, . _ -"
        ),
        circuit_breaker=_parse_circuit_breaker(section.section("circuitBreaker", {})),
    )
    section.finish()
    return config


def _parse_gateway_zones(section: Section, sku: str, capacity: int, environment: str) -> tuple[str, ...]:
    """Zones for a Premium gateway. Units must split evenly over the zones, and prod needs at least two
    units in two zones (source: catalog/regional-services.yaml, apiManagementAvailabilityZones)."""
    key = section.key("zones")
    zones = section.items("zones", [])
    if any(zone not in ("1", "2", "3") for zone in zones) or len(set(zones)) != len(zones):
        raise ConfigError(f'{key}: {zones!r} is not a list of distinct zones; allowed: "1", "2", "3"')
    if zones and sku != "Premium":
        raise ConfigError(f"{key}: {zones!r} needs sku Premium (the {sku} tier has no availability zones)")
    if environment == "prod" and (len(zones) < 2 or capacity < 2):
        raise ConfigError(
            f"{key}: {zones!r} with capacity {capacity} for a prod stack; prod needs at least 2 units spread over at "
            'least 2 zones (e.g. capacity: 2, zones: ["1", "2"]) so that losing a zone or a unit keeps the gateway up'
        )
    if zones and capacity % len(zones):
        raise ConfigError(
            f"{section.key('capacity')}: {capacity} units cannot be split evenly over zones {zones!r}; "
            f"use a multiple of {len(zones)}"
        )
    return tuple(zones)


# --------------------------------------------------------------------------------------------
# The in-network ingestion job (components/ingestion_job.py)
# --------------------------------------------------------------------------------------------

# Azure Container Instances limits for one Linux container group (standard SKU, most regions).
INGESTION_CPU_RANGE = (0.25, 4.0)
INGESTION_MEMORY_GB_RANGE = (0.5, 16.0)
# A path inside the app image, relative to its working directory: no leading /, no `..`, no spaces.
_IMAGE_PATH = r"(?!/)(?!.*(?:^|/)\.\.(?:/|$))[A-Za-z0-9_.][A-Za-z0-9_./-]*"


@dataclass(frozen=True)
class IngestionConfig:
    enabled: bool
    # Files or folders baked into the app image (relative to its working directory) to ingest.
    document_paths: tuple[str, ...]
    cpu: float
    memory_gb: float


def _parse_ingestion(section: Section) -> IngestionConfig:
    paths = section.items("documentPaths", ["apps/chat/sample_docs"])
    if not paths:
        raise ConfigError(
            f"{section.key('documentPaths')}: the list is empty; name at least one file or folder inside the image, "
            "or set enabled: false"
        )
    for index, path in enumerate(paths):
        if not isinstance(path, str) or not re.fullmatch(_IMAGE_PATH, path):
            raise ConfigError(
                f"{section.key('documentPaths')}[{index}]: {path!r} is not a relative path inside the image "
                "(letters, digits, _ . / -; no leading /, no ..), e.g. apps/chat/sample_docs"
            )
    config = IngestionConfig(
        enabled=section.boolean("enabled", True),
        document_paths=tuple(paths),
        cpu=section.number("cpu", 1.0, minimum=INGESTION_CPU_RANGE[0], maximum=INGESTION_CPU_RANGE[1]),
        memory_gb=section.number(
            "memoryGb", 1.5, minimum=INGESTION_MEMORY_GB_RANGE[0], maximum=INGESTION_MEMORY_GB_RANGE[1]
        ),
    )
    section.finish()
    return config


def parse_stack_config(
    values: Mapping[str, Any], stack: str, *, catalog: Catalog | None = None, today: datetime.date | None = None
) -> StackConfig:
    """Build a validated StackConfig from `{key: value}` with keys without the `aichat:` prefix.

    Every section is parsed on its own and then checked against the platform catalogue (the repository's
    by default) as of `today` (the run date by default), so one ConfigError lists every problem.
    """
    from components.catalog import default_catalog
    from components.platform_checks import check_against_catalog

    problems = _Problems()
    root = Section(PROJECT, values)
    environment = problems.attempt(lambda: root.string("environment", choices=ENVIRONMENTS))
    rules_environment = environment or "dev"  # the other sections are still checked (dev's rules are looser)
    sections: dict[str, Callable[[], Any]] = {
        "location": lambda: root.string(
            "location", pattern=_LOCATION, hint="an Azure region name such as swedencentral"
        ),
        "name_prefix": lambda: root.string(
            "namePrefix", pattern=_NAME_PREFIX, hint="2-10 lower-case letters and digits, starting with a letter"
        ),
        "tags": lambda: root.mapping_of_strings("tags", {}),
        "protect_stateful_resources": lambda: root.boolean("protectStatefulResources"),
        "network": lambda: _parse_network(root.section("network")),
        "key_vault": lambda: _parse_key_vault(root.section("keyVault", {})),
        "registry": lambda: _parse_registry(root.section("registry", {}), rules_environment),
        "postgres": lambda: _parse_postgres(root.section("postgres")),
        "app_service": lambda: _parse_app_service(root.section("appService")),
        "observability": lambda: _parse_observability(root.section("observability", {})),
        "openai": lambda: _parse_openai(root.section("openai"), rules_environment),
        "gateway": lambda: _parse_gateway(root.section("gateway"), rules_environment),
        "ingestion": lambda: _parse_ingestion(root.section("ingestion", {})),
    }
    parsed = {name: problems.attempt(parse) for name, parse in sections.items()}
    problems.attempt(root.finish)
    if environment == "prod" and parsed["protect_stateful_resources"] is False:
        problems.found.append(
            f"{root.key('protectStatefulResources')}: false is not allowed for a prod stack; stateful resources "
            "(PostgreSQL, Key Vault, Registry) must be protected from deletion in prod"
        )
    findings = check_against_catalog(parsed, catalog or default_catalog(), today or run_date())
    problems.found.extend(findings.problems)
    if problems.found:
        raise ConfigError(problems.found)
    return StackConfig(
        project=PROJECT, stack=stack, environment=environment, warnings=tuple(findings.warnings), **parsed
    )


# Set to YYYY-MM-DD to check the config as of another day (what a deployment on that day would meet).
RUN_DATE_VARIABLE = "AICHAT_RUN_DATE"


def run_date() -> datetime.date:
    """Today (UTC), unless AICHAT_RUN_DATE names another day."""
    override = os.environ.get(RUN_DATE_VARIABLE)
    if not override:
        return datetime.datetime.now(datetime.UTC).date()
    try:
        return datetime.date.fromisoformat(override)
    except ValueError:
        raise ConfigError(f"{RUN_DATE_VARIABLE}: {override!r} is not a date such as 2026-12-01") from None


def project_keys(values: Mapping[str, Any]) -> dict[str, Any]:
    """`{"aichat:network": ..., "azure-native:location": ...}` -> `{"network": ...}`: this project's keys only."""
    prefix = f"{PROJECT}:"
    return {key[len(prefix) :]: value for key, value in values.items() if key.startswith(prefix)}


class StackConfigError(ConfigError, pulumi.RunError):
    """A ConfigError raised inside `pulumi preview`/`up`: the CLI shows the message, not a Python traceback."""


def load_stack_config() -> StackConfig:
    """Read every `aichat:` key of the current stack and validate it; warnings go to the CLI's output.

    Pulumi hands structured config values to the program as JSON text; plain values as strings.
    """
    values: dict[str, Any] = {}
    for key, raw in project_keys(_all_config_values()).items():
        try:
            values[key] = json.loads(raw)
        except (json.JSONDecodeError, TypeError):
            values[key] = raw  # a plain string such as `swedencentral`
    try:
        config = parse_stack_config(values, pulumi.get_stack())
    except ConfigError as error:
        raise StackConfigError(error.problems) from None
    for warning in config.warnings:
        pulumi.log.warn(warning)
    return config


def _all_config_values() -> dict[str, Any]:
    """All `aichat:*` keys of the stack, so that a misspelt top-level key is reported, not ignored.

    The SDK has no public "list keys" call; it keeps explicit config (tests) in `CONFIG` and the CLI
    passes the stack's config in `PULUMI_CONFIG`. Both are read the way `pulumi.Config.get` reads them.
    """
    from pulumi.runtime import config as runtime_config

    merged = dict(runtime_config.get_config_env() or {})
    merged.update(runtime_config.CONFIG.get())
    return merged
