"""Stack config checked against the platform catalogue, as of the day of the run.

The shape of each value is config.py's business; this module asks what only Azure can answer, from
the reviewed facts in `catalog/`: does the region exist, does it offer the model version on that
deployment SKU, is the version still open to new deployments today, does the region have what the
stack asks of it (availability zones, registry agent pools, zone-redundant PostgreSQL). Each problem
names the key, the value and what would work instead.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from components.catalog import CLOSING_SOON_DAYS, Catalog
from components.config import PROJECT, ModelDeploymentConfig, OpenAiConfig

CATALOG_FILE = "catalog/openai-models.yaml"


@dataclass
class Findings:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def check_against_catalog(parsed: Mapping[str, Any], catalog: Catalog, today: datetime.date) -> Findings:
    """`parsed`: the config's sections by StackConfig field name; a section that failed to parse is None."""
    findings = Findings()
    location = parsed.get("location")
    if location is not None and _check_region(f"{PROJECT}:location", location, catalog, findings):
        _check_regional_features(parsed, location, catalog, findings)
    if parsed.get("openai") is not None:
        _check_openai(parsed["openai"], catalog, today, findings)
    return findings


def _check_region(key: str, region: str, catalog: Catalog, findings: Findings) -> bool:
    if catalog.has_region(region):
        return True
    nearest = catalog.nearest_regions(region)
    hint = f"did you mean {' or '.join(nearest)}?" if nearest else "see catalog/regions.yaml for the names"
    findings.problems.append(f"{key}: {region!r} is not an Azure region; {hint}")
    return False


def _check_regional_features(parsed: Mapping[str, Any], location: str, catalog: Catalog, findings: Findings) -> None:
    """What the stack asks of its main region (where everything but the OpenAI accounts lives)."""
    zoned = []
    if parsed.get("app_service") is not None and parsed["app_service"].zone_redundant:
        zoned.append(f"{PROJECT}:appService.zoneRedundant")
    if parsed.get("gateway") is not None and parsed["gateway"].zones:
        zoned.append(f"{PROJECT}:gateway.zones")
    if parsed.get("registry") is not None and parsed["registry"].zone_redundant:
        zoned.append(f"{PROJECT}:registry.zoneRedundant")
    # Application Gateway v2 and Azure Firewall take zones in every region that has them (reliability-docs,
    # reliability-application-gateway-v2.md and reliability-firewall.md), so the region's zones are the check.
    ingress, egress = parsed.get("ingress"), parsed.get("egress")
    if ingress is not None and ingress.application_gateway is not None and ingress.application_gateway.zones:
        zoned.append(f"{PROJECT}:ingress.applicationGateway.zones")
    if egress is not None and egress.firewall is not None and egress.firewall.zones:
        zoned.append(f"{PROJECT}:egress.firewall.zones")
    if zoned and not catalog.has_zones(location):
        with_zones = ", ".join(name for name in catalog.regions if catalog.has_zones(name))
        findings.problems.append(
            f"{PROJECT}:location: {location} has no availability zones, which {', '.join(zoned)} need; "
            f"regions with zones: {with_zones}"
        )
    registry = parsed.get("registry")
    if registry is not None and registry.build_agent_pool.enabled and not catalog.offers_registry_agent_pools(location):
        findings.problems.append(
            f"{PROJECT}:registry.buildAgentPool.enabled: true, but {location} offers no registry agent pools "
            f"(regions that do: {', '.join(catalog.services.container_registry_agent_pools.regions)}); "
            "choose one of them as aichat:location, or see docs/deploying.md, 'How images reach the registry'"
        )
    postgres = parsed.get("postgres")
    if postgres is not None and postgres.high_availability and not catalog.offers_postgres_zone_redundant_ha(location):
        findings.problems.append(
            f"{PROJECT}:postgres.highAvailability: true, but {location} takes no new zone-redundant PostgreSQL "
            "high availability (catalog/regional-services.yaml); choose another aichat:location or set it to false"
        )


def _check_openai(openai: OpenAiConfig, catalog: Catalog, today: datetime.date, findings: Findings) -> None:
    for index, instance in enumerate(openai.instances):
        region_key = f"{PROJECT}:openai.instances[{index}].region"
        if not _check_region(region_key, instance.region, catalog, findings):
            continue
        for model in openai.models:
            if not model.skip_catalog_check:
                _check_model_in_region(model, region_key, instance.region, catalog, today, findings)
    for model in openai.models:
        if model.skip_catalog_check:
            findings.warnings.append(
                f"{model.key}: {model.model_name} {model.model_version} ({model.sku_name}) is not checked against "
                "the platform catalogue (skipCatalogCheck: true); run `python -m tools.preflight` to check it live"
            )
        else:
            _check_model_lifecycle(model, catalog, today, findings)


def _check_model_lifecycle(
    model: ModelDeploymentConfig, catalog: Catalog, today: datetime.date, findings: Findings
) -> None:
    known = catalog.models.get(model.model_name)
    escape = f"or, if you know this subscription can deploy it, set {model.key}.skipCatalogCheck: true"
    if known is None:
        findings.problems.append(
            f"{model.key}.model: {model.model_name!r} is not in the platform catalogue ({CATALOG_FILE}); known "
            f"{model.role} models: {', '.join(catalog.model_names(model.role))}; {escape}"
        )
        return
    if known.kind != model.role:
        findings.problems.append(
            f"{model.key}.model: {model.model_name!r} is a {known.kind} model and cannot serve as the {model.role} "
            f"model; {model.role} models: {', '.join(catalog.model_names(model.role))}"
        )
        return
    entry = known.versions.get(model.model_version)
    if entry is None:
        findings.problems.append(
            f"{model.key}.version: {model.model_version!r} is not a version of {model.model_name} in the platform "
            f"catalogue; known versions: {', '.join(known.versions)}; {escape}"
        )
        return
    last_day = entry.last_day_open(model.sku_name)
    if not entry.is_open(model.sku_name, today):
        since = f"after {last_day}" if last_day else f"({entry.lifecycle} when the catalogue was reviewed)"
        replacement = f"; Microsoft's replacement: {entry.replacement}" if entry.replacement else ""
        # A stack that already has this deployment keeps it until retirement; skipCatalogCheck lets it deploy
        # other changes (a hot fix) before it moves to a newer model.
        findings.problems.append(
            f"{model.key}.version: {model.model_name} {model.model_version} takes no new {model.sku_name} deployments "
            f"{since}{replacement}; choose a model the catalogue lists as open ({CATALOG_FILE}), {escape} (also "
            "when this stack already has the deployment and must ship another change before moving)"
        )
    elif last_day is not None and (last_day - today).days < CLOSING_SOON_DAYS:
        findings.warnings.append(
            f"{model.key}.version: {model.model_name} {model.model_version} takes no new {model.sku_name} deployments "
            f"after {last_day} ({(last_day - today).days} days from now); plan the move to a newer model "
            "(docs/deploying.md, 'Moving to a newer model')"
        )


def _check_model_in_region(
    model: ModelDeploymentConfig,
    region_key: str,
    region: str,
    catalog: Catalog,
    today: datetime.date,
    findings: Findings,
) -> None:
    entry = catalog.model_version(model.model_name, model.model_version)
    if entry is None or region in catalog.regions_offering(model.model_name, model.model_version, model.sku_name):
        return  # an unknown model or version is reported once, by _check_model_lifecycle
    skus_here = [sku for sku, regions in entry.offered_in.items() if region in regions]
    alternatives = f"; it is offered here on {', '.join(skus_here)}" if skus_here else ""
    open_here = catalog.open_models(model.role, model.sku_name, region, today)
    findings.problems.append(
        f"{region_key}: {region} does not offer {model.model_name} {model.model_version} on {model.sku_name} "
        f"({model.key}){alternatives}; {model.role} models open on {model.sku_name} in {region} today: "
        f"{', '.join(open_here) or 'none'}"
    )
