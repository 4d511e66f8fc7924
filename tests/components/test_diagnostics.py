"""Diagnostic settings ask for resource-specific tables only where the service has them."""

from __future__ import annotations

import pytest

SETTING = "azure-native:monitor:DiagnosticSetting"
# Services whose logs go to AzureDiagnostics only: Azure ignores `Dedicated` for them and reports no
# destination type back, which `pulumi refresh` would show as drift on every run.
AZURE_DIAGNOSTICS_ONLY = (
    "azure-native:cognitiveservices:Account",
    "azure-native:network:VirtualNetwork",
    "azure-native:network:NetworkSecurityGroup",
)
RESOURCE_SPECIFIC = (
    "azure-native:keyvault:Vault",
    "azure-native:dbforpostgresql:Server",
    "azure-native:apimanagement:ApiManagementService",
    "azure-native:containerinstance:ContainerGroup",
)


def settings_for(program, resource_type: str) -> list[dict]:
    ids = {r.id for r in program.of_type(resource_type)}
    return [s.inputs for s in program.of_type(SETTING) if s.inputs["resourceUri"] in ids]


@pytest.mark.parametrize("resource_type", AZURE_DIAGNOSTICS_ONLY)
def test_services_without_resource_specific_tables_name_no_destination_type(program, resource_type):
    settings = settings_for(program, resource_type)
    assert settings and all("logAnalyticsDestinationType" not in s for s in settings)


@pytest.mark.parametrize("resource_type", RESOURCE_SPECIFIC)
def test_services_with_resource_specific_tables_write_to_them(program, resource_type):
    settings = settings_for(program, resource_type)
    assert settings and all(s["logAnalyticsDestinationType"] == "Dedicated" for s in settings)
