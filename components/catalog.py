"""The platform catalogue: reviewed facts about Azure that the program checks its config against.

Mocks accept anything; Azure does not. Which regions exist, which models each region offers on which
deployment SKU, and when a model closes to new deployments are facts that change with the calendar,
so they live as data in `catalog/*.yaml` (each list citing its source and the date it was read) and
this module reads them into typed objects. `python -m tools.preflight STACK` checks the same facts
live against the deployer's subscription, and `--refresh-catalog` rewrites the model availability
from what the live API returns; a reviewer reads the diff.
"""

from __future__ import annotations

import datetime
import difflib
import functools
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

CATALOG_DIR = Path(__file__).resolve().parent.parent / "catalog"
# A model that closes to new deployments (or retires) within this many days gets a warning.
CLOSING_SOON_DAYS = 60

ModelKind = Literal["chat", "embedding"]
# Lifecycle words (the Azure Models API's) under which a subscription that never deployed the model can't.
CLOSED_LIFECYCLES = ("Deprecating", "Deprecated", "Retired")


class _Data(BaseModel):
    # The YAML files are reviewed by hand: a misspelt key must fail, not be ignored.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Source(BaseModel):
    """Where a list came from. Extra keys (commit, section, notes) are kept for reviewers."""

    model_config = ConfigDict(extra="allow", frozen=True)
    url: str
    read: datetime.date


class Region(_Data):
    display_name: str = Field(alias="displayName")
    geography: str
    availability_zones: bool = Field(alias="availabilityZones")
    access_restricted: bool = Field(False, alias="accessRestricted")


class RegionsFile(_Data):
    reviewed: datetime.date
    source: Source
    regions: dict[str, Region]


class ModelVersion(_Data):
    lifecycle: str
    closes_to_new_deployments: datetime.date | None = Field(None, alias="closesToNewDeployments")
    # Deployment SKU (or `default`) -> retirement date.
    retires: dict[str, datetime.date] = Field(default_factory=dict)
    replacement: str | None = None
    # Deployment SKU -> regions offering this model version on it.
    offered_in: dict[str, list[str]] = Field(default_factory=dict, alias="offeredIn")
    source: str | None = None
    note: str | None = None

    def retirement(self, sku: str) -> datetime.date | None:
        return self.retires.get(sku, self.retires.get("default"))

    @property
    def closed_when_reviewed(self) -> bool:
        """Deprecating or retired when the catalogue was reviewed: new subscriptions cannot deploy it."""
        return self.lifecycle in CLOSED_LIFECYCLES

    def last_day_open(self, sku: str) -> datetime.date | None:
        """The last day a new deployment of this version on `sku` is accepted, if Azure announced one."""
        dates = [d for d in (self.closes_to_new_deployments, self.retirement(sku)) if d is not None]
        return min(dates) - datetime.timedelta(days=1) if dates else None

    def is_open(self, sku: str, today: datetime.date) -> bool:
        last_day = self.last_day_open(sku)
        return not self.closed_when_reviewed and (last_day is None or today <= last_day)


class Model(_Data):
    kind: ModelKind
    versions: dict[str, ModelVersion]


class ModelsFile(_Data):
    reviewed: datetime.date
    sources: dict[str, Source]
    models: dict[str, Model]


class RegionList(BaseModel):
    """A regional fact: the regions where something is offered, with its source (other keys are notes)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    source: Source
    regions: list[str] | str


class RegionalServicesFile(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)
    reviewed: datetime.date
    container_registry_agent_pools: RegionList = Field(alias="containerRegistryAgentPools")
    postgres_zone_redundant_high_availability: RegionList = Field(alias="postgresZoneRedundantHighAvailability")
    api_management_availability_zones: RegionList = Field(alias="apiManagementAvailabilityZones")


class Catalog:
    """The three catalogue files, with the questions the config validation asks of them."""

    def __init__(self, regions: RegionsFile, models: ModelsFile, services: RegionalServicesFile):
        self.regions = regions.regions
        self.models = models.models
        self.services = services

    # Regions -------------------------------------------------------------------------------------

    def has_region(self, name: str) -> bool:
        return name in self.regions

    def nearest_regions(self, name: str) -> list[str]:
        """Real region names that look like a misspelt one (`westeurpoe` -> westeurope)."""
        return difflib.get_close_matches(name, list(self.regions), n=3, cutoff=0.75)

    def has_zones(self, region: str) -> bool:
        return region in self.regions and self.regions[region].availability_zones

    def offers_registry_agent_pools(self, region: str) -> bool:
        return region in self.services.container_registry_agent_pools.regions

    def offers_postgres_zone_redundant_ha(self, region: str) -> bool:
        listed = self.services.postgres_zone_redundant_high_availability
        blocked = getattr(listed, "newZoneRedundantDeploymentsBlocked", None) or []
        return region in listed.regions and region not in blocked

    # Models ---------------------------------------------------------------------------------------

    def model_names(self, kind: ModelKind) -> list[str]:
        return sorted(name for name, model in self.models.items() if model.kind == kind)

    def model_version(self, name: str, version: str) -> ModelVersion | None:
        model = self.models.get(name)
        return model.versions.get(version) if model else None

    def regions_offering(self, name: str, version: str, sku: str) -> list[str]:
        entry = self.model_version(name, version)
        return list(entry.offered_in.get(sku, [])) if entry else []

    def open_versions(self, name: str, sku: str, region: str, today: datetime.date) -> list[str]:
        """Versions of a model a new deployment on `sku` in `region` may use today."""
        model = self.models.get(name)
        if model is None:
            return []
        return [
            version
            for version, entry in model.versions.items()
            if region in entry.offered_in.get(sku, []) and entry.is_open(sku, today)
        ]

    def open_models(self, kind: ModelKind, sku: str, region: str, today: datetime.date) -> list[str]:
        """`name version` of every model of this kind a new deployment on `sku` in `region` may use today."""
        return [
            f"{name} {version}"
            for name in self.model_names(kind)
            for version in self.open_versions(name, sku, region, today)
        ]


def _read(path: Path, schema: type[BaseModel]) -> BaseModel:
    try:
        return schema.model_validate(yaml.safe_load(path.read_text()))
    except (OSError, yaml.YAMLError, ValueError) as error:
        raise CatalogError(f"catalog/{path.name}: {error}") from None


class CatalogError(RuntimeError):
    """A catalogue file is missing or malformed (a reviewed data file, so this is a bug to fix)."""


def load_catalog(directory: Path = CATALOG_DIR) -> Catalog:
    return Catalog(
        _read(directory / "regions.yaml", RegionsFile),
        _read(directory / "openai-models.yaml", ModelsFile),
        _read(directory / "regional-services.yaml", RegionalServicesFile),
    )


@functools.cache
def default_catalog() -> Catalog:
    """The repository's catalogue, read once per process."""
    return load_catalog()
