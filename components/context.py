"""What every component shares about the stack it is part of: naming, tags and tenant.

Nothing else: each component gets its own settings section in its Args (`KeyVaultArgs(settings=config.key_vault,
...)`), so an Args dataclass lists everything the component reads and a test can build it without a stack file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_azure_native.authorization as authorization
import pulumi_random as random

from components.config import StackConfig


@dataclass(frozen=True)
class StackContext:
    stack: str
    environment: str
    name_prefix: str
    location: str  # the stack's region: the resource group's, and every resource's unless its settings say otherwise
    tags: Mapping[str, str]  # the stack file's tags plus the two that say which stack manages the resource
    tenant_id: pulumi.Output[str]
    subscription_id: pulumi.Output[str]
    # Chosen once when the stack's resources are first created and kept in its state; `pulumi destroy`
    # deletes it, so the next `pulumi up` starts a new incarnation with new global names (see unique_name).
    incarnation: pulumi.Output[str]

    @staticmethod
    def for_current_deployment(config: StackConfig) -> StackContext:
        """Look up the tenant and subscription of the credentials `pulumi up` runs with."""
        client = authorization.get_client_config_output()
        incarnation = random.RandomString("incarnation", length=4, special=False, upper=False)
        return StackContext(
            stack=config.stack,
            environment=config.environment,
            name_prefix=config.name_prefix,
            location=config.location,
            tags={**config.tags, "managed-by": "pulumi", "pulumi-stack": config.stack},
            tenant_id=client.tenant_id,
            subscription_id=client.subscription_id,
            incarnation=incarnation.result,
        )

    def name(self, abbreviation: str, *parts: str) -> str:
        """A readable name such as `kv-aichat-dev` (Microsoft's abbreviation-first convention)."""
        return readable_name(abbreviation, self.name_prefix, self.environment, *parts)

    def unique_name(self, abbreviation: str, *, max_length: int, alphanumeric: bool = False) -> pulumi.Output[str]:
        """A globally unique name (Key Vault, registry, server and site host names are DNS names).

        The suffix is a hash of the subscription, the stack and its incarnation: two forks with the same
        prefix do not collide, the same stack keeps its names on every run, and a stack destroyed and
        created again gets new ones. That matters because Key Vault (purge protection: for the whole
        retention period), Azure OpenAI and API Management (48 hours) keep a deleted resource's name
        reserved, so the same names would make the next `pulumi up` fail.
        """
        return self._hashed_name(abbreviation, max_length, alphanumeric, self.incarnation)

    def lasting_name(self, abbreviation: str, *, max_length: int) -> pulumi.Output[str]:
        """A globally unique name that outlives the stack's incarnations, for names people keep elsewhere
        and that Azure frees at once on deletion: the web app's host name (the sign-in registration's
        redirect URI, bookmarks) and a gateway's DNS label (a custom domain's CNAME)."""
        return self._hashed_name(abbreviation, max_length, False, None)

    def _hashed_name(
        self, abbreviation: str, max_length: int, alphanumeric: bool, incarnation: pulumi.Output[str] | None
    ) -> pulumi.Output[str]:
        base = self.name(abbreviation)
        if alphanumeric:
            base = base.replace("-", "")
        return pulumi.Output.all(self.subscription_id, incarnation).apply(
            lambda values: unique_name(base, self.stack, *values, max_length=max_length, alphanumeric=alphanumeric)
        )


# Hex digits of the hash that ends a unique name.
DIGEST_LENGTH = 6


def readable_name(abbreviation: str, name_prefix: str, environment: str, *parts: str) -> str:
    return "-".join([abbreviation, name_prefix, environment, *parts])


def unique_name(
    base: str, stack: str, subscription_id: str, incarnation: str | None, *, max_length: int, alphanumeric: bool
) -> str:
    """`base` plus DIGEST_LENGTH hex digits of a hash of where (and which incarnation of) the stack it belongs to."""
    scope = "/".join(part for part in (subscription_id, stack, incarnation, base) if part is not None)
    digest = hashlib.sha256(scope.encode()).hexdigest()[:DIGEST_LENGTH]
    return f"{unique_name_prefix(base, max_length, alphanumeric)}{digest}"


def unique_name_prefix(base: str, max_length: int, alphanumeric: bool = False) -> str:
    """What every incarnation's unique name of `base` shares: `base` cut to leave room for the digest."""
    trimmed = base[: max_length - DIGEST_LENGTH - (0 if alphanumeric else 1)]
    return trimmed if alphanumeric else f"{trimmed}-"
