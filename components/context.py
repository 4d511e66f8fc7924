"""What every component needs to know about the stack it is part of: config, names, tags, tenant."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
import pulumi_azure_native.authorization as authorization

from components.config import StackConfig


@dataclass(frozen=True)
class StackContext:
    config: StackConfig
    tenant_id: pulumi.Output[str]
    subscription_id: pulumi.Output[str]

    @staticmethod
    def for_current_deployment(config: StackConfig) -> StackContext:
        """Look up the tenant and subscription of the credentials `pulumi up` runs with."""
        client = authorization.get_client_config_output()
        return StackContext(config=config, tenant_id=client.tenant_id, subscription_id=client.subscription_id)

    @property
    def location(self) -> str:
        return self.config.location

    @property
    def tags(self) -> Mapping[str, str]:
        return {**self.config.tags, "managed-by": "pulumi", "pulumi-stack": self.config.stack}

    def name(self, abbreviation: str, *parts: str) -> str:
        """A readable name such as `kv-aichat-dev` (Microsoft's abbreviation-first convention)."""
        return "-".join([abbreviation, self.config.name_prefix, self.config.environment, *parts])

    def unique_name(self, abbreviation: str, *, max_length: int, alphanumeric: bool = False) -> pulumi.Output[str]:
        """A globally unique name (Key Vault, registry, server and site host names are DNS names).

        The suffix is a hash of the subscription and stack, so two forks with the same prefix do not
        collide, and the same stack gets the same name on every run.
        """
        base = self.name(abbreviation)
        if alphanumeric:
            base = base.replace("-", "")

        def build(subscription_id: str) -> str:
            digest = hashlib.sha256(f"{subscription_id}/{self.config.stack}/{base}".encode()).hexdigest()[:6]
            trimmed = base[: max_length - len(digest) - (0 if alphanumeric else 1)]
            return f"{trimmed}{digest}" if alphanumeric else f"{trimmed}-{digest}"

        return self.subscription_id.apply(build)
