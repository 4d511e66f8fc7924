"""Stack configuration: read once, validated, turned into typed objects.

Every per-environment difference lives in `Pulumi.<stack>.yaml` under the `aichat:` namespace. The
pydantic models below are the one description of that file: they validate it, they generate its JSON
Schema (`schema/stack-config.json`) and the README's config reference (`python -m tools.config_reference`).
Field names are the YAML's camelCase keys as aliases (`storageSizeGb` -> `storage_size_gb`).

`load_stack_config()` reads the stack through `pulumi.Config`; `parse_stack_config()` does the real work on
plain Python values so tests can feed it dictionaries. Problems raise one `ConfigError` that lists every
one of them, each naming the full key, the bad value and what is allowed, before a single resource is
registered. Besides the shape of each value, the config is checked against the platform catalogue
(`catalog/`, components/platform_checks.py) on the date of the run.

How a check reports:
- a constraint on one value (`OneOf`, `Between`, `Matches`, a CIDR) raises `invalid(...)`;
- a rule across fields is a `rules()` generator on the model that yields a `Problem` per broken rule,
  each naming the field it is about, so one object reports all its broken rules at once;
- `problems_in()` turns pydantic's errors into the messages (`aichat:postgres.skuName: ...`).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, get_args

import pulumi
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import InitErrorDetails, PydanticCustomError, core_schema

if TYPE_CHECKING:
    from components.catalog import Catalog

PROJECT = "aichat"
# The folder of Pulumi.yaml and the stack files (this package sits inside it).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENTS = ("dev", "test", "prod")


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


class StackConfigError(ConfigError, pulumi.RunError):
    """A ConfigError raised inside `pulumi preview`/`up`: the CLI shows the message, not a Python traceback."""


# --------------------------------------------------------------------------------------------
# Building blocks: how a value is refused, and the constraints fields are annotated with
# --------------------------------------------------------------------------------------------

# The pydantic error type of this module's own checks; `problems_in` prints their message after the key.
_OWN_ERROR = "stack_config"


def invalid(message: str) -> PydanticCustomError:
    """The error for a refused value; `message` says what is wrong and what is allowed, not the key."""
    return PydanticCustomError(_OWN_ERROR, "{message}", {"message": message})


@dataclass(frozen=True)
class Problem:
    """A broken cross-field rule. `at` is the field it is about, relative to the object (`embedding.deployment`)."""

    at: str
    message: str

    def as_error(self) -> InitErrorDetails:
        return InitErrorDetails(type=invalid(self.message), loc=tuple(self.at.split(".")), input=None)


class Constraint:
    """An annotation that checks a value after its type is parsed, and states itself in the JSON Schema and docs.

    `check` sees the parsed value and the value as written, so a message quotes what the stack file says
    (`cpu: 8` reads "8 is out of range", not "8.0").
    """

    def check(self, value: Any, written: Any) -> None:
        raise NotImplementedError

    def json_schema(self) -> dict[str, Any]:
        raise NotImplementedError

    def describe(self) -> str:
        """What the value must be, in a few words (the README's type column)."""
        raise NotImplementedError

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        def validate(written: Any, parse: Any) -> Any:
            value = parse(written)
            self.check(value, written)
            return value

        return core_schema.no_info_wrap_validator_function(validate, handler(source))

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        return {**handler(schema), **self.json_schema()}


@dataclass(frozen=True)
class OneOf(Constraint):
    choices: tuple[Any, ...]
    complaint: str = "is not allowed"

    def check(self, value: Any, written: Any) -> None:
        if value not in self.choices:
            allowed = ", ".join(map(str, self.choices))
            raise invalid(f"{written!r} {self.complaint}; allowed values: {allowed}")

    def json_schema(self) -> dict[str, Any]:
        return {"enum": list(self.choices)}

    def describe(self) -> str:
        return " | ".join(f"`{choice}`" for choice in self.choices)


@dataclass(frozen=True)
class Between(Constraint):
    low: float
    high: float

    def check(self, value: Any, written: Any) -> None:
        if not self.low <= value <= self.high:
            raise invalid(f"{written} is out of range; allowed: {self.low} to {self.high}")

    def json_schema(self) -> dict[str, Any]:
        return {"minimum": self.low, "maximum": self.high}

    def describe(self) -> str:
        return f"{self.low}-{self.high}"


@dataclass(frozen=True)
class Matches(Constraint):
    """The whole string matches `pattern`; `hint` tells a person what that means."""

    pattern: str
    hint: str
    complaint: str = "is not valid"

    def check(self, value: Any, written: Any) -> None:
        if not re.fullmatch(self.pattern, value):
            raise invalid(f"{written!r} {self.complaint}; {self.hint}")

    def json_schema(self) -> dict[str, Any]:
        return {"pattern": f"^(?:{self.pattern})$"}

    def describe(self) -> str:
        return self.hint


# Every string in the stack file is non-empty; `problems_in` words the error as "expected a non-empty string".
Text = Annotated[str, Field(min_length=1)]


def _cidr(value: Any) -> ipaddress.IPv4Network:
    if not isinstance(value, str):
        raise invalid(f"expected a CIDR block such as 10.40.0.0/24, got {value!r}")
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except ValueError as error:
        raise invalid(f"{value!r} is not an IPv4 CIDR block such as 10.40.0.0/24 ({error})") from None


_CIDR_SCHEMA = {"type": "string", "format": "ipv4network", "examples": ["10.40.0.0/24"]}
Cidr = Annotated[ipaddress.IPv4Network, PlainValidator(_cidr), WithJsonSchema(_CIDR_SCHEMA)]

_RFC1918 = tuple(ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


class PublicCidr(Constraint):
    """A public IPv4 block, kept as written: it goes to the registry's network rules as text."""

    def check(self, value: Any, written: Any) -> None:
        block = _cidr(value)
        if any(block.subnet_of(private) for private in _RFC1918):
            raise invalid(
                f"{block} is private; agents inside the VNet reach the registry through its private endpoint "
                "and need no rule"
            )

    def json_schema(self) -> dict[str, Any]:
        return {"format": "ipv4network"}

    def describe(self) -> str:
        return "public IPv4 CIDR"


def _string_values(value: Any) -> Any:
    """YAML may give numbers or booleans as tag values; Azure wants text."""
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, (str, int, float, bool)) for k, v in value.items()
    ):
        raise invalid(f"expected an object of string values, got {value!r}")
    return {k: str(v) for k, v in value.items()}


Tags = Annotated[Mapping[str, str], BeforeValidator(_string_values)]

_LOCATION = r"[a-z]+[a-z0-9]*"
AzureRegion = Annotated[Text, Matches(_LOCATION, "an Azure region name such as swedencentral")]
_GUID = r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}"
_ISO_DURATION = r"PT(?=\d)(\d+H)?(\d+M)?(\d+S)?"
Duration = Annotated[Text, Matches(_ISO_DURATION, "an ISO 8601 duration such as PT1M or PT30S")]
Capacity = Annotated[int, Between(1, 10000)]


def _environment(info: ValidationInfo) -> str:
    """The stack's environment, for rules that differ by environment (dev's are the looser ones)."""
    return (info.context or {}).get("environment", "dev")


# --------------------------------------------------------------------------------------------
# The models: one per object of the stack file
# --------------------------------------------------------------------------------------------


class _Settings(BaseModel):
    """An object of the stack file: camelCase keys, unknown keys refused, immutable once read.

    Code may build one by attribute name (`EntraAdmin(object_id=...)`); the stack file must use the
    camelCase keys (`parse_stack_config` validates with `by_name=False`).
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=True,
        extra="forbid",
        frozen=True,
    )

    @model_validator(mode="before")
    @classmethod
    def _null_is_unset(cls, data: Any) -> Any:
        """`key:` with no value in YAML means "not set" (its default applies), as in Pulumi's own config."""
        return {k: v for k, v in data.items() if v is not None} if isinstance(data, Mapping) else data

    @model_validator(mode="after")
    def _check_rules(self, info: ValidationInfo) -> Any:
        problems = list(self.rules(_environment(info)))
        if problems:
            raise ValidationError.from_exception_data(type(self).__name__, [p.as_error() for p in problems])
        return self

    def rules(self, environment: str) -> Iterable[Problem]:
        """Rules across this object's fields (run once every field is valid); none by default."""
        return ()

    @classmethod
    def known_keys(cls) -> list[str]:
        """The keys this object takes in the stack file."""
        return [field.alias or name for name, field in cls.model_fields.items()]


def settings_class_in(annotation: Any) -> type[_Settings] | None:
    """The settings object an annotation holds (`tuple[EntraAdmin, ...]` -> EntraAdmin), if any."""
    if isinstance(annotation, type) and issubclass(annotation, _Settings):
        return annotation
    return next(filter(None, (settings_class_in(arg) for arg in get_args(annotation))), None)


class _KeyedSettings(_Settings):
    """An object whose values readers look up by their YAML key (`subnets["jobs"]`); unset keys are left out."""

    def as_mapping(self) -> Mapping[str, Any]:
        values = {field.alias: getattr(self, name) for name, field in type(self).model_fields.items()}
        return MappingProxyType({key: value for key, value in values.items() if value is not None})


# ---- network ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubnetSpec:
    """What a subnet is for and the smallest block Azure (or we) accept for it."""

    key: str
    largest_prefix: int  # /27 means prefixes 27 and below (bigger blocks) are fine
    why: str


# Sizes: App Service integration wants /26 (Microsoft's recommendation, room to scale out);
# API Management classic tiers need room for instances and updates; private endpoints take one IP each.
# Application Gateway v2: one address per instance plus the 5 Azure reserves in every subnet, /24
# recommended but not required (azure-docs, application-gateway/configuration-infrastructure.md, "Size of
# the subnet"); IngressConfig's maxCapacity is checked against the block (StackSettings.rules).
# Azure Firewall: a dedicated subnet named AzureFirewallSubnet of /26, never needing more (firewall-faq.yml,
# "Why does Azure Firewall need a /26 subnet size?"; Well-Architected service guide for Azure Firewall).
SUBNETS: tuple[SubnetSpec, ...] = (
    SubnetSpec("appService", 26, "App Service VNet integration needs /26 or larger to scale out"),
    SubnetSpec("privateEndpoints", 27, "private endpoints take one address each; /27 or larger leaves room"),
    SubnetSpec("apiManagement", 27, "API Management in a VNet needs /27 or larger for its units and updates"),
    SubnetSpec("jobs", 28, "Container Instances jobs need /28 or larger"),
    SubnetSpec("buildAgents", 28, "the registry's build agent pool needs /28 or larger"),
    SubnetSpec(
        "applicationGateway",
        27,
        "the Application Gateway (ingress mode applicationGateway) needs a dedicated /27 or larger, one address "
        "per instance plus 5 Azure reserves; Microsoft recommends /24",
    ),
    SubnetSpec("firewall", 26, "Azure Firewall (egress mode firewall) needs a dedicated /26 (AzureFirewallSubnet)"),
)
# Subnets only one mode of ingress or egress uses: the stack file sets them when it chooses that mode.
OPTIONAL_SUBNETS = ("applicationGateway", "firewall")


def _subnet(key: str, *, optional: bool = False) -> Any:
    """The field of one subnet role, described by its SUBNETS entry (what it is for, how large it must be)."""
    spec = next(spec for spec in SUBNETS if spec.key == key)
    description = spec.why[:1].upper() + spec.why[1:]
    return Field(None, description=description) if optional else Field(description=description)


class Subnets(_KeyedSettings):
    """One block per subnet role, each inside the address space, large enough for its service (SUBNETS)."""

    app_service: Cidr = _subnet("appService")
    private_endpoints: Cidr = _subnet("privateEndpoints")
    api_management: Cidr = _subnet("apiManagement")
    jobs: Cidr = _subnet("jobs")
    build_agents: Cidr = _subnet("buildAgents")
    application_gateway: Cidr | None = _subnet("applicationGateway", optional=True)
    firewall: Cidr | None = _subnet("firewall", optional=True)

    def rules(self, environment: str) -> Iterator[Problem]:
        blocks = self.as_mapping()
        for index, spec in enumerate(SUBNETS):
            block = blocks.get(spec.key)
            if block is None:
                continue
            if block.prefixlen > spec.largest_prefix:
                yield Problem(
                    spec.key,
                    f"{block} is too small (/{block.prefixlen}); {spec.why} (/{spec.largest_prefix} or larger)",
                )
            for earlier in SUBNETS[:index]:
                if earlier.key in blocks and block.overlaps(blocks[earlier.key]):
                    yield Problem(
                        spec.key,
                        f"{block} overlaps {PROJECT}:network.subnets.{earlier.key} ({blocks[earlier.key]}); "
                        "subnets must not overlap",
                    )


class NetworkConfig(_Settings):
    """The VNet: a private address space and a subnet per role inside it."""

    address_space: Cidr = Field(description="Private IPv4 range of the VNet (10/8, 172.16/12 or 192.168/16)")
    subnet_blocks: Subnets = Field(alias="subnets", description="One block per subnet role")

    @property
    def subnets(self) -> Mapping[str, ipaddress.IPv4Network]:
        """`subnets["appService"]`: the block of each subnet role, keyed as in the stack file."""
        return self.subnet_blocks.as_mapping()

    @field_validator("address_space")
    @classmethod
    def _private(cls, space: ipaddress.IPv4Network) -> ipaddress.IPv4Network:
        if not space.is_private:
            raise invalid(f"{space} is not a private range; use 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16")
        return space

    def rules(self, environment: str) -> Iterator[Problem]:
        for key, block in self.subnets.items():
            if not block.subnet_of(self.address_space):
                yield Problem(f"subnets.{key}", f"{block} is outside the address space {self.address_space}")


# ---- Key Vault and the registry ---------------------------------------------------------------


class KeyVaultConfig(_Settings):
    sku: Annotated[str, OneOf(("standard", "premium"))] = Field("standard", description="Key Vault pricing tier")
    soft_delete_retention_days: Annotated[int, Between(7, 90)] = Field(
        90, description="Days a deleted secret can be recovered; purge protection is always on"
    )


# ACR Tasks dedicated agent pool tiers (vCPU / GiB per instance): S1 2/3, S2 4/8, S3 8/16, I6 64/216.
BUILD_AGENT_POOL_TIERS = ("S1", "S2", "S3", "I6")


class BuildAgentPoolConfig(_Settings):
    """The registry's own build agents inside the VNet: how images reach a registry with public access off."""

    enabled: bool = Field(
        True, description="Registry build agents in the VNet, the way images get pushed (docs/deploying.md)"
    )
    tier: Annotated[str, OneOf(BUILD_AGENT_POOL_TIERS)] = Field(
        "S1", description="Agent size: S1 2 vCPU/3 GiB, S2 4/8, S3 8/16, I6 64/216"
    )
    count: Annotated[int, Between(0, 10)] = Field(
        1, description="Agents in the pool; 0 keeps the pool but stops paying (builds wait until scaled up)"
    )


class RegistryConfig(_Settings):
    zone_redundant: bool = Field(False, description="Zone-redundant registry (the region must have zones)")
    build_agent_ip_ranges: tuple[Annotated[str, PublicCidr()], ...] = Field(
        (),
        description="Dev switch: public CIDRs of a build agent outside the VNet allowed to push; turns the "
        "registry's public access on for these ranges only (empty: public access off; must be empty in prod)",
    )
    build_agent_pool: BuildAgentPoolConfig = Field(
        default_factory=BuildAgentPoolConfig, description="The registry's build agents inside the VNet"
    )

    @field_validator("build_agent_ip_ranges")
    @classmethod
    def _closed_in_prod(cls, ranges: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        if ranges and _environment(info) == "prod":
            raise invalid(
                f"{list(ranges)!r} is set for a prod stack; the registry's public access must stay off in prod "
                "(push from an agent inside the VNet instead, see docs/deploying.md)"
            )
        return ranges


# ---- PostgreSQL -----------------------------------------------------------------------------

POSTGRES_TIERS = {
    # tier -> SKU name pattern Azure accepts for it
    "Burstable": r"Standard_B\d+m?s",
    "GeneralPurpose": r"Standard_D\d+a?ds_v[45]|Standard_D\d+s_v3",
    "MemoryOptimized": r"Standard_E\d+a?ds_v[45]|Standard_E\d+s_v3",
}
POSTGRES_SKU_EXAMPLES = {
    "Burstable": "Standard_B1ms",
    "GeneralPurpose": "Standard_D2ds_v5",
    "MemoryOptimized": "Standard_E2ds_v5",
}
POSTGRES_STORAGE_SIZES_GB = (32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32767)
POSTGRES_VERSIONS = ("14", "15", "16", "17")


class _OrOutput:
    """Annotation: a pulumi.Output passes as it is, anything else is validated.

    The stack file gives strings; code that makes a resource's identity an admin (components/postgres.py)
    passes Outputs, known only during the deployment.
    """

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.no_info_wrap_validator_function(
            lambda value, validate: value if isinstance(value, pulumi.Output) else validate(value), handler(source)
        )


class EntraAdmin(_Settings):
    """An Entra principal that administers the PostgreSQL server (values may be Pulumi outputs)."""

    object_id: Annotated[
        Text,
        Matches(_GUID, "must be the Entra object id (a GUID) of the user, group or service principal"),
        _OrOutput(),
    ] = Field(description="Entra object id of the user, group or service principal")
    principal_name: Annotated[Text, _OrOutput()] = Field(description="Its display name (user principal name)")
    principal_type: Annotated[str, OneOf(("User", "Group", "ServicePrincipal"))] = Field(
        "Group", description="What kind of principal it is"
    )


class PostgresConfig(_Settings):
    version: Annotated[str, OneOf(POSTGRES_VERSIONS)] = Field("16", description="PostgreSQL major version")
    tier: Annotated[str, OneOf(tuple(POSTGRES_TIERS))] = Field(description="Compute tier of the flexible server")
    sku_name: Annotated[
        Text, Matches("|".join(POSTGRES_TIERS.values()), "a flexible server SKU such as Standard_B1ms")
    ] = Field(description="Compute size, a SKU of that tier (" + ", ".join(POSTGRES_SKU_EXAMPLES.values()) + ")")
    storage_size_gb: Annotated[int, OneOf(POSTGRES_STORAGE_SIZES_GB, "is not a size Azure offers")] = Field(
        32, description="Storage in GiB; auto-grow is on"
    )
    backup_retention_days: Annotated[int, Between(7, 35)] = Field(7, description="Days of point-in-time restore")
    geo_redundant_backup: bool = Field(False, description="Backups copied to the paired region")
    high_availability: bool = Field(False, description="Zone-redundant standby; not on the Burstable tier")
    database_name: Annotated[Text, Matches(r"[a-z_][a-z0-9_]{0,62}", "lower-case letters, digits and _")] = Field(
        "chat", description="The app's database"
    )
    extra_admins: tuple[EntraAdmin, ...] = Field(
        (), description="Entra admins besides the app's identity (always an admin), e.g. your DBA group"
    )

    def rules(self, environment: str) -> Iterator[Problem]:
        if not re.fullmatch(POSTGRES_TIERS[self.tier], self.sku_name):
            example = POSTGRES_SKU_EXAMPLES[self.tier]
            yield Problem("skuName", f"{self.sku_name!r} is not valid; not a {self.tier} SKU (e.g. {example})")
        if self.high_availability and self.tier == "Burstable":
            yield Problem(
                "highAvailability",
                "true is not available on the Burstable tier; use tier GeneralPurpose or MemoryOptimized, "
                "or set highAvailability: false",
            )


# ---- the web app and its logs -----------------------------------------------------------------

APP_SERVICE_SKUS = ("B1", "B2", "B3", "S1", "S2", "S3", "P0v3", "P1v3", "P2v3", "P3v3", "P1mv3", "P2mv3")
_IMAGE = r"[a-z0-9]+(?:[._/-][a-z0-9]+)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[0-9a-f]{64})"


class AppServiceConfig(_Settings):
    sku_name: Annotated[str, OneOf(APP_SERVICE_SKUS)] = Field("P0v3", description="App Service plan size")
    instance_count: Annotated[int, Between(1, 30)] = Field(1, description="Instances of the plan")
    zone_redundant: bool = Field(False, description="Instances spread over zones; needs 2+ instances")
    image: Annotated[
        Text,
        Matches(
            _IMAGE,
            "expected repository:tag or repository@sha256:<digest> inside this stack's registry, "
            "e.g. chat:0.1.0 (no registry host: the stack's own registry is used)",
        ),
    ] = Field(description="The app image in the stack's own registry; pipelines set an immutable tag")
    health_check_path: Annotated[Text, Matches(r"/[A-Za-z0-9/_-]*", "a path such as /healthz")] = Field(
        "/healthz", description="Path App Service probes to take an unhealthy instance out"
    )
    sign_in_client_id: Annotated[
        Text,
        Matches(
            _GUID,
            "must be the client id (a GUID) of the Entra app registration users sign in with; "
            "see docs/deploying.md, 'Sign-in app registration'",
        ),
    ] = Field(
        description="Client id of the Entra app registration users sign in with (App Service authentication); "
        "the stack files hold an example to replace"
    )

    def rules(self, environment: str) -> Iterator[Problem]:
        first_part = self.image.split("/", 1)[0]
        if "/" in self.image and ("." in first_part or first_part == "localhost"):
            yield Problem(
                "image",
                f"{self.image!r} names a registry host ({first_part}); give repository:tag only - images always "
                "come from this stack's private registry",
            )
        if self.zone_redundant and self.instance_count < 2:
            yield Problem(
                "instanceCount",
                f"{self.instance_count} with zoneRedundant: true; a zone-redundant plan needs at least 2 instances",
            )


class ObservabilityConfig(_Settings):
    log_retention_days: Annotated[int, Between(30, 730)] = Field(30, description="Days Log Analytics keeps logs")


# ---- Azure OpenAI accounts and the API Management gateway in front of them (docs/gateway.md) ----

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
# The periods azure-openai-token-limit's token-quota-period accepts (learn.microsoft.com/azure/api-management/
# azure-openai-token-limit-policy, attribute token-quota-period).
TOKEN_QUOTA_PERIODS = ("Hourly", "Daily", "Weekly", "Monthly", "Yearly")
AVAILABILITY_ZONES = ("1", "2", "3")
Zone = Annotated[str, OneOf(AVAILABILITY_ZONES)]


def distinct_zones(zones: tuple[str, ...]) -> tuple[str, ...]:
    if len(set(zones)) != len(zones):
        raise invalid(f'{list(zones)!r} is not a list of distinct zones; allowed: "1", "2", "3"')
    return zones


# Availability zones a resource is spread over, each once; empty = no zone pinning.
Zones = Annotated[tuple[Zone, ...], AfterValidator(distinct_zones)]


_DEPLOYMENT_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{1,63}"


class ModelDeploymentConfig(_Settings):
    """One model deployment, the same on every account (the pool needs identical deployment names)."""

    role: ClassVar[str]  # chat | embedding: set by the subclass for each key of `openai.models`

    model_name: Annotated[Text, Matches(_DEPLOYMENT_NAME, "a model name such as gpt-5-mini")] = Field(
        alias="model",
        description="A model the platform catalogue (catalog/) lists for this role (for embeddings not ada-002: "
        "the app sends `dimensions`)",
    )
    model_version: Annotated[Text, Matches(r"\d{4}-\d{2}-\d{2}|\d+", "a model version such as 2025-08-07 or 1")] = (
        Field(
            alias="version",
            description="Offered on `sku` in every instance's region and open to new deployments on the day of the "
            "run; one closing within 60 days is a warning, a closed one an error",
        )
    )
    # Named after the model by default, so a newer model is a new deployment beside the old one.
    deployment_name: Annotated[Text, Matches(_DEPLOYMENT_NAME, "2-64 letters, digits, . _ -")] = Field(
        default_factory=lambda fields: fields.get("model_name"),
        alias="deployment",
        description="Deployment name on every account, what the app sends as `model` (CHAT_MODEL, EMBEDDING_MODEL); "
        "defaults to the model name, so a newer model is a new deployment beside the old one",
    )
    sku_name: Annotated[str, OneOf(OPENAI_DEPLOYMENT_SKUS)] = Field(
        "GlobalStandard", alias="sku", description="Deployment type; the model must be offered on it in every region"
    )
    capacity: Capacity = Field(description="Default capacity on each account, thousands of tokens per minute")
    # True: deploy a model the catalogue does not list, or lists as closed, because you know this
    # subscription may (Azure added it after the review; the subscription already deploys a deprecating
    # model). The catalogue checks are skipped for it; the live preflight still checks it.
    skip_catalog_check: bool = Field(
        False,
        description="true deploys a model the catalogue does not list (or lists as closed) when you know the "
        "subscription may; the preflight still checks it live",
    )

    @property
    def key(self) -> str:
        return f"{PROJECT}:openai.models.{self.role}"


class ChatModelConfig(ModelDeploymentConfig):
    """The chat model: the app's CHAT_MODEL is its deployment name."""

    role: ClassVar[str] = "chat"


class EmbeddingModelConfig(ModelDeploymentConfig):
    """The embedding model: the app's EMBEDDING_MODEL is its deployment name."""

    role: ClassVar[str] = "embedding"

    @field_validator("model_name")
    @classmethod
    def _accepts_dimensions(cls, name: str) -> str:
        if name in EMBEDDING_MODELS_WITHOUT_DIMENSIONS:
            raise invalid(
                f"{name!r} cannot serve as the embedding model: the app sends `dimensions`, which only the "
                "text-embedding-3 family accepts"
            )
        return name


class OpenAiModels(_Settings):
    chat: ChatModelConfig = Field(description="The chat model, deployed on every account")
    embedding: EmbeddingModelConfig = Field(description="The embedding model, deployed on every account")

    def rules(self, environment: str) -> Iterator[Problem]:
        if self.chat.deployment_name == self.embedding.deployment_name:
            yield Problem(
                "embedding.deployment",
                f"{self.embedding.deployment_name!r} is also the chat deployment; the two deployments need "
                "different names",
            )


class CapacityOverrides(_KeyedSettings):
    chat: Capacity | None = Field(None, description="Chat capacity on this account instead of the chat model's")
    embedding: Capacity | None = Field(
        None, description="Embedding capacity on this account instead of the embedding model's"
    )


class OpenAiInstanceConfig(_Settings):
    """One Azure OpenAI account and its place in the gateway's backend pool."""

    name: Annotated[
        Text, Matches(r"[a-z][a-z0-9]{1,11}", "2-12 lower-case letters and digits, starting with a letter")
    ] = Field(description="Short name, part of the account's name")
    region: AzureRegion = Field(description="Region of the account (its own quota)")
    priority: Annotated[int, Between(*POOL_PRIORITY_RANGE)] = Field(
        1,
        description="Pool priority: lower is preferred; the next priority only gets traffic when all better "
        "members are out",
    )
    weight: Annotated[int, Between(*POOL_WEIGHT_RANGE)] = Field(
        1, description="Share of traffic among members with the same priority"
    )
    capacity_overrides: CapacityOverrides = Field(
        default_factory=CapacityOverrides,
        alias="capacity",
        description="Capacity on this account by role (`chat`, `embedding`), instead of the model's",
    )

    @property
    def capacity(self) -> Mapping[str, int]:
        """Role -> capacity on this account, for the roles it overrides."""
        return self.capacity_overrides.as_mapping()

    def capacity_for(self, model: ModelDeploymentConfig) -> int:
        return self.capacity.get(model.role, model.capacity)


class OpenAiConfig(_Settings):
    allow_shared_region: bool = Field(
        False, description="Allow two accounts in one region (they share its quota, so add no capacity)"
    )
    model_deployments: OpenAiModels = Field(alias="models", description="The models deployed on every account")
    instances: tuple[OpenAiInstanceConfig, ...] = Field(
        description="The accounts behind the gateway; dev needs 2+, prod 3+ in 2+ regions (docs/gateway.md)"
    )

    @property
    def chat_model(self) -> ModelDeploymentConfig:
        return self.model_deployments.chat

    @property
    def embedding_model(self) -> ModelDeploymentConfig:
        return self.model_deployments.embedding

    @property
    def models(self) -> tuple[ModelDeploymentConfig, ...]:
        return (self.chat_model, self.embedding_model)

    @property
    def regions(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(instance.region for instance in self.instances))

    def rules(self, environment: str) -> Iterator[Problem]:
        if not self.instances:
            yield Problem("instances", "no instances; list the Azure OpenAI accounts to create")
            return
        names = [instance.name for instance in self.instances]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            yield Problem("instances", f"duplicate instance name(s) {', '.join(duplicates)}; each name must be unique")
        yield from self._redundancy_rules(environment)

    def _redundancy_rules(self, environment: str) -> Iterator[Problem]:
        """Enough accounts and regions for the gateway to fail over (dev 2 accounts; prod 3 in 2 regions)."""
        regions = [instance.region for instance in self.instances]
        repeated = sorted({region for region in regions if regions.count(region) > 1})
        if repeated and not self.allow_shared_region:
            yield Problem(
                "instances",
                f"region(s) {', '.join(repeated)} listed more than once; accounts in one region share that region's "
                "quota, so a second one adds no capacity. Use another region, or set "
                f"{PROJECT}:openai.allowSharedRegion: true",
            )
        minimum_accounts, minimum_regions = (3, 2) if environment == "prod" else (2, 1)
        if len(self.instances) < minimum_accounts:
            yield Problem(
                "instances",
                f"{len(self.instances)} instance(s) for a {environment} stack; at least {minimum_accounts} are "
                "needed so that the gateway can fail over when one account is throttled or down",
            )
        if len(set(regions)) < minimum_regions:
            yield Problem(
                "instances",
                f"all instances are in {regions[0]}; a {environment} stack needs accounts in at least "
                f"{minimum_regions} regions so that a regional outage does not stop the chat",
            )


class CircuitBreakerConfig(_Settings):
    """When the gateway takes a pool member out of rotation."""

    failure_count: Annotated[int, Between(1, 1000)] = Field(
        1, description="Failures (429 or 5xx) within failureInterval that trip a member"
    )
    failure_interval: Duration = Field("PT1M", description="The window failures are counted in")
    trip_duration: Duration = Field(
        "PT1M", description="How long a tripped member gets no traffic (unless the backend sent Retry-After)"
    )


class GatewayConfig(_Settings):
    sku: Annotated[str, OneOf(GATEWAY_SKUS)] = Field(
        description="API Management classic tier in internal VNet mode; Developer is refused in prod"
    )
    capacity: Annotated[int, Between(1, 12)] = Field(
        1, description="Units (Developer: 1); a multiple of the number of zones"
    )
    # Availability zones the units are spread over; empty = no zone pinning.
    zones: Zones = Field(
        (),
        description='Availability zones for the units ("1", "2", "3"), Premium only; prod needs 2+ units in 2+ '
        "zones; the region must have zones",
    )
    publisher_email: Annotated[
        Text, Matches(r"[^@\s]+@[^@\s]+\.[^@\s]+", "an e-mail address such as team@example.com")
    ] = Field(description="API Management's required contact address")
    publisher_name: Text = Field(description="API Management's required contact name")
    tokens_per_minute_per_caller: Annotated[int, Between(1000, 100_000_000)] = Field(
        description="Token limit per calling identity"
    )
    # Per signed-in user, keyed on the object id the chat app forwards in x-aichat-user (docs/gateway.md,
    # "Per-user budgets"); it comes on top of the per-caller limit, which still caps the app as a whole.
    tokens_per_minute_per_user: Annotated[int, Between(1000, 100_000_000)] = Field(
        description="Token limit per signed-in user of the chat app per minute; at most tokensPerMinutePerCaller"
    )
    token_quota_per_user: Annotated[int, Between(10_000, 100_000_000_000)] | None = Field(
        None,
        description="Tokens a signed-in user may use per tokenQuotaPeriod (403 when used up); unset: no quota",
    )
    token_quota_period: Annotated[str, OneOf(TOKEN_QUOTA_PERIODS)] = Field(
        "Daily", description="The period tokenQuotaPerUser counts over"
    )
    metric_namespace: Annotated[Text, Matches(r"[A-Za-z][A-Za-z0-9._-]{0,63}", "letters, digits, . _ -")] = Field(
        "aichat-openai", description="Namespace of the token metrics in Application Insights"
    )
    circuit_breaker: CircuitBreakerConfig = Field(
        default_factory=CircuitBreakerConfig, description="When a pool member is taken out of rotation"
    )

    @field_validator("sku")
    @classmethod
    def _developer_not_in_prod(cls, sku: str, info: ValidationInfo) -> str:
        if sku == "Developer" and _environment(info) == "prod":
            raise invalid(
                "'Developer' is not allowed for a prod stack (no SLA, a single unit, downtime on updates); use Premium"
            )
        return sku

    def rules(self, environment: str) -> Iterator[Problem]:
        """Units and zones (source: catalog/regional-services.yaml, apiManagementAvailabilityZones); budgets."""
        yield from self._budget_rules()
        zones = list(self.zones)
        if self.sku == "Developer" and self.capacity > 1:
            yield Problem("capacity", f"{self.capacity} is out of range; allowed: 1 to 1")
        if zones and self.sku != "Premium":
            yield Problem("zones", f"{zones!r} needs sku Premium (the {self.sku} tier has no availability zones)")
        if environment == "prod" and (len(zones) < 2 or self.capacity < 2):
            yield Problem(
                "zones",
                f"{zones!r} with capacity {self.capacity} for a prod stack; prod needs at least 2 units spread over "
                'at least 2 zones (e.g. capacity: 2, zones: ["1", "2"]) so that losing a zone or a unit keeps the '
                "gateway up",
            )
        if zones and self.capacity % len(zones):
            yield Problem(
                "capacity",
                f"{self.capacity} units cannot be split evenly over zones {zones!r}; use a multiple of {len(zones)}",
            )

    def _budget_rules(self) -> Iterator[Problem]:
        """A user's budget fits inside the app's; a quota holds at least one minute's worth of tokens."""
        if self.tokens_per_minute_per_user > self.tokens_per_minute_per_caller:
            yield Problem(
                "tokensPerMinutePerUser",
                f"{self.tokens_per_minute_per_user} is more than tokensPerMinutePerCaller "
                f"({self.tokens_per_minute_per_caller}); one user can never use more than the whole app, so "
                "the per-user limit would never apply",
            )
        quota = self.token_quota_per_user
        if quota is not None and quota < self.tokens_per_minute_per_user:
            yield Problem(
                "tokenQuotaPerUser",
                f"{quota} is less than tokensPerMinutePerUser ({self.tokens_per_minute_per_user}); a quota "
                "smaller than one minute's budget makes the per-minute limit meaningless",
            )
        if quota is None and "token_quota_period" in self.model_fields_set:
            yield Problem("tokenQuotaPeriod", "is set but tokenQuotaPerUser is not; set both or neither")


# ---- ingress and egress: how users reach the app, how the workloads reach the internet (docs/network.md) ----

INGRESS_MODES = ("public", "applicationGateway")
EGRESS_MODES = ("default", "firewall")
WAF_MODES = ("Prevention", "Detection")
# Basic is left out: it needs a second subnet (AzureFirewallManagementSubnet) and management public IP
# (AVM avm/res/network/azure-firewall main.bicep: `requiresManagementIp` for tier Basic) and caps at
# 250 Mbps; this project builds neither, so the config refuses it rather than deploying one that fails.
FIREWALL_SKUS = ("Standard", "Premium")
# Application Gateway v2 scales to 125 instances (configuration-infrastructure.md, "Size of the subnet").
APPLICATION_GATEWAY_INSTANCE_RANGE = (0, 125)
# Every Azure subnet keeps 5 addresses for itself (the first four and the last).
AZURE_RESERVED_ADDRESSES = 5
_HOST_NAME = r"(?=.{4,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
# Versionless, so the gateway picks up a renewed certificate (it polls Key Vault every 4 hours):
# application-gateway/key-vault-certs.md recommends "a secret identifier that doesn't specify a version".
_VERSIONLESS_SECRET_ID = r"https://[a-z0-9-]{3,24}\.vault\.azure\.net/secrets/[A-Za-z0-9-]{1,127}/?"


class ApplicationGatewayConfig(_Settings):
    """Application Gateway WAF_v2 in front of the web app, whose public network access is then off."""

    host_name: Annotated[
        Text, Matches(_HOST_NAME, "a lower-case DNS name such as chat.example.com", complaint="is not a host name")
    ] = Field(
        description="The host name users open: a domain of yours, CNAME to `ingressFqdn`; the certificate must "
        "cover it and the sign-in app registration needs https://<hostName>/.auth/login/aad/callback"
    )
    certificate_secret_id: Annotated[
        Text,
        Matches(
            _VERSIONLESS_SECRET_ID,
            "expected a versionless Key Vault secret id such as "
            "https://kv-aichat-prod-1a2b3c.vault.azure.net/secrets/chat-tls (this stack's vault; no version, so "
            "a renewed certificate is picked up)",
        ),
    ] = Field(
        description="Secret id of the TLS certificate (PFX) imported into this stack's Key Vault, versionless "
        "(docs/network.md, 'The certificate'); the stack files hold an example to replace"
    )
    waf_mode: Annotated[str, OneOf(WAF_MODES)] = Field(
        "Prevention",
        description="Prevention blocks what the rule sets match; Detection only logs (dev, while tuning "
        "exclusions); prod must be Prevention",
    )
    min_capacity: Annotated[int, Between(*APPLICATION_GATEWAY_INSTANCE_RANGE)] = Field(
        1, description="Instances kept running (each reserves 10 capacity units, billed); prod needs 2+"
    )
    max_capacity: Annotated[int, Between(2, APPLICATION_GATEWAY_INSTANCE_RANGE[1])] = Field(
        10, description="Autoscale ceiling; the applicationGateway subnet needs this many addresses plus 5"
    )
    zones: Zones = Field(
        (),
        description='Availability zones of the gateway and its public IP ("1", "2", "3"); prod needs 2+; '
        "the region must have zones",
    )

    @field_validator("waf_mode")
    @classmethod
    def _prevention_in_prod(cls, mode: str, info: ValidationInfo) -> str:
        if mode != "Prevention" and _environment(info) == "prod":
            raise invalid(
                f"{mode!r} is not allowed for a prod stack; the WAF must block what it detects (Prevention). "
                "Tune exclusions in dev with Detection, then switch"
            )
        return mode

    def rules(self, environment: str) -> Iterator[Problem]:
        if self.min_capacity > self.max_capacity:
            yield Problem(
                "minCapacity",
                f"{self.min_capacity} is above maxCapacity ({self.max_capacity}); lower it or raise maxCapacity",
            )
        if environment == "prod" and (len(self.zones) < 2 or self.min_capacity < 2):
            yield Problem(
                "zones",
                f"{list(self.zones)!r} with minCapacity {self.min_capacity} for a prod stack; prod needs at least 2 "
                'instances across at least 2 zones (e.g. minCapacity: 2, zones: ["1", "2", "3"]) so that losing a '
                "zone keeps the way in open",
            )


@dataclass(frozen=True)
class ProdMode:
    """The mode of a network-edge setting that prod requires, why, and the section of settings it needs."""

    mode: str
    because: str  # why prod needs it, and what else to set
    section: str  # the field holding that mode's settings
    section_needs: str  # what that section must give at least


class _EdgeMode(_Settings):
    """A setting of the network edge: a `mode`, the one prod requires (`prod`), and the section that mode needs."""

    prod: ClassVar[ProdMode]

    @field_validator("mode", check_fields=False)
    @classmethod
    def _prod_mode_in_prod(cls, mode: str, info: ValidationInfo) -> str:
        if mode != cls.prod.mode and _environment(info) == "prod":
            raise invalid(f"{mode!r} is not allowed for a prod stack; {cls.prod.because}")
        return mode

    def rules(self, environment: str) -> Iterator[Problem]:
        required = self.prod
        if self.mode == required.mode and getattr(self, required.section) is None:
            yield Problem(to_camel(required.section), f"not set, but mode is {required.mode}; {required.section_needs}")


class IngressConfig(_EdgeMode):
    """How users reach the app: straight to App Service (public) or through the WAF (applicationGateway)."""

    prod: ClassVar[ProdMode] = ProdMode(
        "applicationGateway",
        "prod puts the web app behind the WAF (mode: applicationGateway, with aichat:ingress.applicationGateway and "
        "aichat:network.subnets.applicationGateway; docs/network.md)",
        section="application_gateway",
        section_needs="give at least hostName and certificateSecretId",
    )

    mode: Annotated[str, OneOf(INGRESS_MODES)] = Field(
        description="public: the web app takes internet traffic behind Entra sign-in (dev); applicationGateway: "
        "Application Gateway WAF_v2 in front, the web app private (required in prod)",
    )
    application_gateway: ApplicationGatewayConfig | None = Field(
        None, description="The gateway's settings; required with mode applicationGateway"
    )

    @property
    def through_gateway(self) -> bool:
        return self.mode == "applicationGateway"


class FirewallConfig(_Settings):
    """Azure Firewall that every egressing subnet routes 0.0.0.0/0 to (egress mode firewall)."""

    sku: Annotated[
        str, OneOf(FIREWALL_SKUS, "is not offered here (Basic needs a management subnet this project does not build)")
    ] = Field("Standard", description="Firewall and policy tier; Premium adds TLS inspection and IDPS")
    threat_intel_mode: Annotated[str, OneOf(("Alert", "Deny"))] = Field(
        "Deny", description="What the firewall does with traffic to known-malicious addresses and domains"
    )
    zones: Zones = Field(
        (),
        description='Availability zones of the firewall and its public IP ("1", "2", "3"); prod needs 2+; '
        "the region must have zones",
    )

    def rules(self, environment: str) -> Iterator[Problem]:
        if environment == "prod" and len(self.zones) < 2:
            yield Problem(
                "zones",
                f"{list(self.zones)!r} for a prod stack; prod needs the firewall in at least 2 zones (e.g. "
                '["1", "2", "3"]): every egressing subnet depends on it',
            )


class EgressConfig(_EdgeMode):
    """How the workloads reach the internet: Azure's default outbound access, or only through Azure Firewall."""

    prod: ClassVar[ProdMode] = ProdMode(
        "firewall",
        "prod sends all egress through Azure Firewall (mode: firewall, with aichat:egress.firewall and "
        "aichat:network.subnets.firewall; docs/network.md)",
        section="firewall",
        section_needs="give at least its sku (Standard or Premium)",
    )

    mode: Annotated[str, OneOf(EGRESS_MODES)] = Field(
        description="default: subnets that need the internet keep Azure's default outbound access (dev); "
        "firewall: every subnet private, egressing ones routed to Azure Firewall, which allows only each "
        "workload's listed destinations (required in prod)",
    )
    firewall: FirewallConfig | None = Field(None, description="The firewall's settings; required with mode firewall")

    @property
    def through_firewall(self) -> bool:
        return self.mode == "firewall"


# ---- the in-network ingestion job (components/ingestion_job.py) -------------------------------

# Azure Container Instances limits for one Linux container group (standard SKU, most regions).
INGESTION_CPU_RANGE = (0.25, 4.0)
INGESTION_MEMORY_GB_RANGE = (0.5, 16.0)
# A path inside the app image, relative to its working directory: no leading /, no `..`, no spaces.
_IMAGE_PATH = r"(?!/)(?!.*(?:^|/)\.\.(?:/|$))[A-Za-z0-9_.][A-Za-z0-9_./-]*"
ImagePath = Annotated[
    Text,
    Matches(
        _IMAGE_PATH,
        "letters, digits, _ . / -; no leading /, no ..; e.g. apps/chat/sample_docs",
        complaint="is not a relative path inside the image",
    ),
]


class IngestionConfig(_Settings):
    enabled: bool = Field(True, description="The in-network ingestion job (Container Instances)")
    document_paths: tuple[ImagePath, ...] = Field(
        ("apps/chat/sample_docs",),
        description="Files or folders inside the app image to ingest; a changed list (or image) runs the job again",
    )
    cpu: Annotated[float, Between(*INGESTION_CPU_RANGE)] = Field(1.0, description="Cores of the job's container")
    memory_gb: Annotated[float, Between(*INGESTION_MEMORY_GB_RANGE)] = Field(
        1.5, description="Memory of the job's container in GiB"
    )

    @field_validator("document_paths")
    @classmethod
    def _not_empty(cls, paths: tuple[str, ...]) -> tuple[str, ...]:
        if not paths:
            raise invalid("the list is empty; name at least one file or folder inside the image, or set enabled: false")
        return paths


# ---- the whole stack file -----------------------------------------------------------------------

_NAME_PREFIX = r"[a-z][a-z0-9]{1,9}"


class StackSettings(_Settings):
    """The `aichat:` keys of a stack file (`Pulumi.<stack>.yaml`)."""

    environment: Annotated[str, OneOf(ENVIRONMENTS)] = Field(
        description="What the stack is for; prod enforces protection and forbids the registry dev switch"
    )
    location: AzureRegion = Field(description="Region of the VNet and every regional resource")
    name_prefix: Annotated[
        Text, Matches(_NAME_PREFIX, "2-10 lower-case letters and digits, starting with a letter")
    ] = Field(
        description="Names are `<abbr>-<prefix>-<env>`; globally unique names add a hash of subscription and stack"
    )
    protect_stateful_resources: bool = Field(
        description="Pulumi `protect` on PostgreSQL, Key Vault and the registry; must be true in prod"
    )
    tags: Tags = Field(
        default_factory=dict, description="Added to every resource, with `managed-by` and `pulumi-stack`"
    )
    network: NetworkConfig = Field(description="The VNet")
    key_vault: KeyVaultConfig = Field(default_factory=KeyVaultConfig, description="The Key Vault")
    registry: RegistryConfig = Field(default_factory=RegistryConfig, description="The container registry")
    postgres: PostgresConfig = Field(description="The PostgreSQL flexible server")
    app_service: AppServiceConfig = Field(description="The chat web app")
    observability: ObservabilityConfig = Field(default_factory=ObservabilityConfig, description="Logs")
    ingestion: IngestionConfig = Field(default_factory=IngestionConfig, description="The ingestion job")
    openai: OpenAiConfig = Field(description="The Azure OpenAI accounts behind the gateway")
    gateway: GatewayConfig = Field(description="The API Management gateway in front of the accounts")
    ingress: IngressConfig = Field(description="How users reach the app; prod: applicationGateway (docs/network.md)")
    egress: EgressConfig = Field(description="How the workloads reach the internet; prod: firewall (docs/network.md)")

    @field_validator("protect_stateful_resources")
    @classmethod
    def _protected_in_prod(cls, protect: bool, info: ValidationInfo) -> bool:
        if not protect and _environment(info) == "prod":
            raise invalid(
                "false is not allowed for a prod stack; stateful resources (PostgreSQL, Key Vault, Registry) "
                "must be protected from deletion in prod"
            )
        return protect

    def rules(self, environment: str) -> Iterator[Problem]:
        """Each ingress and egress mode's own subnet, and room in it (the sections are valid by now)."""
        subnets = self.network.subnets
        gateway = self.ingress.application_gateway
        if self.ingress.through_gateway and gateway is not None:
            block = subnets.get("applicationGateway")
            if block is None:
                yield Problem(
                    "network.subnets.applicationGateway",
                    "not set, but aichat:ingress.mode is applicationGateway; give the gateway a dedicated block "
                    "(Microsoft recommends /24)",
                )
            elif block.num_addresses - AZURE_RESERVED_ADDRESSES < gateway.max_capacity:
                yield Problem(
                    "network.subnets.applicationGateway",
                    f"{block} has {block.num_addresses - AZURE_RESERVED_ADDRESSES} usable addresses, fewer than "
                    f"aichat:ingress.applicationGateway.maxCapacity ({gateway.max_capacity}): the gateway takes one "
                    "per instance; use a larger block or a lower maxCapacity",
                )
        if self.egress.through_firewall and "firewall" not in subnets:
            yield Problem(
                "network.subnets.firewall",
                "not set, but aichat:egress.mode is firewall; give Azure Firewall its /26 (AzureFirewallSubnet)",
            )


class StackConfig(StackSettings):
    """The validated config a run uses: the stack file's settings plus which stack and what to warn about."""

    project: str = PROJECT
    stack: str
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
# Messages: pydantic's errors as `aichat:<key>: <what is wrong>; <what is allowed>`
# --------------------------------------------------------------------------------------------

# What a value of pydantic's own error types should have been; the message goes on with "got <value>".
_EXPECTED = {
    "string_type": "a non-empty string",
    "string_too_short": "a non-empty string",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "model_type": "an object (key: value pairs)",
    "model_attributes_type": "an object (key: value pairs)",
    "dict_type": "an object (key: value pairs)",
    "list_type": "a list",
    "tuple_type": "a list",
}


def key_name(loc: Sequence[str | int]) -> str:
    """`("openai", "instances", 1, "weight")` -> `aichat:openai.instances[1].weight` (as Pulumi writes keys)."""
    if not loc:
        return PROJECT
    name = f"{PROJECT}:{loc[0]}"
    for part in loc[1:]:
        name += f"[{part}]" if isinstance(part, int) else f".{part}"
    return name


def problems_in(error: ValidationError) -> list[str]:
    """One message per problem; unknown keys of one object are named together, with the keys it knows."""
    details = error.errors()
    unknown: dict[tuple[str | int, ...], list[str]] = {}
    for detail in details:
        if detail["type"] == "extra_forbidden":
            unknown.setdefault(detail["loc"][:-1], []).append(str(detail["loc"][-1]))
    # A derived default is not computed when the key it derives from has a problem, already reported.
    reported = [d for d in details if d["type"] not in ("extra_forbidden", "default_factory_not_called")]
    return [_message(detail) for detail in reported] + [_unknown_keys_message(at, keys) for at, keys in unknown.items()]


def _message(detail: Any) -> str:
    key, kind = key_name(detail["loc"]), detail["type"]
    if kind == "missing":
        return f"{key} is required but not set"
    if kind == _OWN_ERROR:
        return f"{key}: {detail['msg']}"
    expected = _EXPECTED.get(kind)
    if expected is None:
        return f"{key}: {detail['msg']}, got {detail['input']!r}"
    return f"{key}: expected {expected}, got {detail['input']!r}"


def _unknown_keys_message(at: Sequence[str | int], keys: list[str]) -> str:
    known = ", ".join(sorted(_settings_class_at(at).known_keys()))
    return f"{key_name(at)}: unknown key(s) {', '.join(sorted(keys))}; known keys: {known}"


def _settings_class_at(loc: Sequence[str | int]) -> type[_Settings]:
    """The settings class of the object at `loc` in the stack file (list indexes lead to the item's class)."""
    settings = StackSettings
    for part in loc:
        if isinstance(part, str):
            field = next(f for name, f in settings.model_fields.items() if (f.alias or name) == part)
            settings = settings_class_in(field.annotation)
    return settings


# --------------------------------------------------------------------------------------------
# Parsing and loading
# --------------------------------------------------------------------------------------------


def parse_stack_config(
    values: Mapping[str, Any], stack: str, *, catalog: Catalog | None = None, today: datetime.date | None = None
) -> StackConfig:
    """Build a validated StackConfig from `{key: value}` with keys without the `aichat:` prefix.

    Every field of the file is validated, then the parts that are valid are checked against the platform
    catalogue (the repository's by default) as of `today` (the run date by default), so one ConfigError
    lists every problem.
    """
    from components.catalog import default_catalog
    from components.platform_checks import check_against_catalog

    # An unknown environment is reported, and the rest is still checked with dev's (looser) rules.
    context = {"environment": values.get("environment") if values.get("environment") in ENVIRONMENTS else "dev"}
    try:
        settings = StackSettings.model_validate(values, context=context, by_alias=True, by_name=False)
    except ValidationError as error:
        settings, problems, sections = None, problems_in(error), _sections_that_parse(values, context)
    else:
        problems, sections = [], dict(settings)
    findings = check_against_catalog(sections, catalog or default_catalog(), today or run_date())
    problems += findings.problems
    if problems:
        raise ConfigError(problems)
    # Already validated: construct adds the run's facts without validating the settings again.
    return StackConfig.model_construct(**dict(settings), stack=stack, warnings=tuple(findings.warnings))


def _sections_that_parse(values: Mapping[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Each top-level key validated on its own, None where it has problems (already reported by then)."""
    parsed = {}
    for name, field in StackSettings.model_fields.items():
        value = values.get(field.alias)
        if value is None:
            parsed[name] = None if field.is_required() else field.get_default(call_default_factory=True)
            continue
        try:
            parsed[name] = TypeAdapter(field.rebuild_annotation()).validate_python(
                value, context=context, by_alias=True, by_name=False
            )
        except ValidationError:
            parsed[name] = None
    return parsed


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


def load_stack_config() -> StackConfig:
    """Read the current stack's `aichat:` keys and validate them; warnings go to the CLI's output."""
    stack = pulumi.get_stack()
    try:
        config = parse_stack_config(_read_stack_values(stack), stack)
    except ConfigError as error:
        raise StackConfigError(error.problems) from None
    for warning in config.warnings:
        pulumi.log.warn(warning)
    return config


def _read_stack_values(stack: str) -> dict[str, Any]:
    """Every known key through the public `pulumi.Config`, plus the unknown ones that are set (to report them)."""
    config = pulumi.Config(PROJECT)
    values = {}
    for key in (*StackSettings.known_keys(), *_unknown_keys_set(config, stack)):
        text = config.get(key)
        if text is not None:
            values[key] = _decoded(text)
    return values


def _decoded(text: str) -> Any:
    """Pulumi hands structured values to the program as JSON text, plain ones as text (`swedencentral`)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _unknown_keys_set(config: pulumi.Config, stack: str) -> list[str]:
    """Top-level keys that are set but not known, so that a misspelt one fails instead of being ignored.

    Pulumi has no public call that lists a stack's config. The keys written in the stack file are read
    from the file; config that reaches the program another way (an ESC environment, the offline runner of
    tools/offline.py) is searched for the slips of each known key.
    """
    known = set(StackSettings.known_keys())
    candidates = _keys_in_stack_file(stack) | {slip for key in known for slip in _slips_of(key)}
    return sorted(key for key in candidates - known if config.get(key) is not None)


def _keys_in_stack_file(stack: str) -> set[str]:
    return set(project_keys(stack_file_values(stack) or {}))


def stack_file_values(stack: str) -> dict[str, Any] | None:
    """The `config:` mapping of `Pulumi.<stack>.yaml`, keys as written (`aichat:network`, ...); None without one."""
    path = PROJECT_ROOT / f"Pulumi.{stack}.yaml"
    if not path.exists():
        return None
    return dict((yaml.safe_load(path.read_text()) or {}).get("config") or {})


def _slips_of(key: str) -> set[str]:
    """Spellings one slip away from `key`: a letter dropped, doubled or swapped with the next; other casing."""
    dropped = {key[:i] + key[i + 1 :] for i in range(len(key))}
    doubled = {key[:i] + key[i] + key[i:] for i in range(len(key))}
    swapped = {key[:i] + key[i + 1] + key[i] + key[i + 2 :] for i in range(len(key) - 1)}
    recased = {key.lower(), key[:1].upper() + key[1:], re.sub(r"([A-Z])", r"_\1", key).lower()}
    return (dropped | doubled | swapped | recased) - {key}


# --------------------------------------------------------------------------------------------
# Raw reading, before validation
# --------------------------------------------------------------------------------------------


class Section:
    """Raw, unvalidated values of one config object at a key path; its errors name the full key.

    For tools that need a few values of a config that may not validate: tools/preflight's catalogue refresh
    reads the regions of a stack whose validation fails because the catalogue is what is out of date.
    """

    def __init__(self, path: str, raw: Any):
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{path}: expected an object (key: value pairs), got {raw!r}")
        self.path = path
        self._raw = dict(raw)

    def key(self, name: str) -> str:
        # Top-level keys read as Pulumi writes them (`aichat:network`), nested ones with dots.
        separator = ":" if self.path == PROJECT else "."
        return f"{self.path}{separator}{name}"

    def _take(self, name: str) -> Any:
        value = self._raw.get(name)
        if value is None:
            raise ConfigError(f"{self.key(name)} is required but not set")
        return value

    def string(self, name: str) -> str:
        value = self._take(name)
        if not isinstance(value, str) or value == "":
            raise ConfigError(f"{self.key(name)}: expected a non-empty string, got {value!r}")
        return value

    def section(self, name: str) -> Section:
        return Section(self.key(name), self._take(name))

    def items(self, name: str) -> list[Any]:
        value = self._take(name)
        if not isinstance(value, list):
            raise ConfigError(f"{self.key(name)}: expected a list, got {value!r}")
        return value
