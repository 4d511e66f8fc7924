"""The platform catalogue (catalog/*.yaml) is well-formed reviewed data: every fact cites its source."""

from __future__ import annotations

import datetime

import pytest

from components.catalog import CATALOG_DIR, CatalogError, default_catalog, load_catalog


def test_every_region_the_models_are_offered_in_is_a_known_region():
    catalog = default_catalog()
    unknown = {
        (name, version, sku, region)
        for name, model in catalog.models.items()
        for version, entry in model.versions.items()
        for sku, regions in entry.offered_in.items()
        for region in regions
        if not catalog.has_region(region)
    }
    assert unknown == set()


def test_every_regional_service_list_names_known_regions():
    catalog = default_catalog()
    services = catalog.services
    for listed in (services.container_registry_agent_pools, services.postgres_zone_redundant_high_availability):
        assert [r for r in listed.regions if not catalog.has_region(r)] == []


def test_each_file_was_reviewed_with_dated_sources_and_not_in_the_future():
    catalog = load_catalog()
    today = datetime.date.today()
    services = catalog.services
    for listed in (services.container_registry_agent_pools, services.postgres_zone_redundant_high_availability):
        assert listed.source.url.startswith("https://") and listed.source.read <= today
    assert services.reviewed <= today


def test_only_known_deployment_skus_are_listed():
    skus = {sku for model in default_catalog().models.values() for v in model.versions.values() for sku in v.offered_in}
    assert skus <= {"Standard", "GlobalStandard", "DataZoneStandard"}


def test_a_misspelt_key_in_a_catalogue_file_is_an_error_naming_the_file(tmp_path):
    for name in ("regions.yaml", "regional-services.yaml"):
        (tmp_path / name).write_text((CATALOG_DIR / name).read_text())
    broken = (CATALOG_DIR / "openai-models.yaml").read_text().replace("        offeredIn:", "        offeredln:", 1)
    (tmp_path / "openai-models.yaml").write_text(broken)
    with pytest.raises(CatalogError, match=r"openai-models\.yaml"):
        load_catalog(tmp_path)
