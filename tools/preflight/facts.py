"""What the preflight reads from Azure, as small plain objects: the checks never see SDK types."""

from __future__ import annotations

import datetime
from dataclasses import dataclass


@dataclass(frozen=True)
class OfferedSku:
    name: str
    usage_name: str  # the quota line (Usage.name) deployments on this SKU count against
    deprecation_date: datetime.date | None


@dataclass(frozen=True)
class OfferedModel:
    """One entry of a region's models list: a model version and the deployment SKUs offering it."""

    name: str
    version: str
    lifecycle: str
    inference_ends: datetime.date | None  # deprecation.inference: the version is retired on this day
    skus: tuple[OfferedSku, ...]

    def sku(self, name: str) -> OfferedSku | None:
        return next((sku for sku in self.skus if sku.name.lower() == name.lower()), None)


@dataclass(frozen=True)
class Usage:
    name: str
    current: float
    limit: float


@dataclass(frozen=True)
class Deployment:
    model_name: str
    sku_name: str
    capacity: int


@dataclass(frozen=True)
class SoftDeleted:
    kind: str  # "Key Vault", "OpenAI account", "API Management service"
    name: str
    location: str
    resource_group: str | None
    purge_date: datetime.date | None  # Azure purges it (and frees the name) on this day
    purge_protected: bool = False


@dataclass(frozen=True)
class Permission:
    """One entry of Microsoft.Authorization/permissions: what one role assignment allows."""

    actions: tuple[str, ...]
    not_actions: tuple[str, ...]
