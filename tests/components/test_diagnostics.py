"""Diagnostic settings ask for resource-specific tables only where the service has them."""

from __future__ import annotations

import pytest

from components.diagnostics import LOGS_IN_AZURE_DIAGNOSTICS_ONLY
from policy.rules.stack_wide import DIAGNOSTIC_SIGNALS, LOGS

SETTING = "azure-native:monitor:DiagnosticSetting"
# Every service that sends logs (the pack's list) and has its own tables for them.
RESOURCE_SPECIFIC = sorted(
    {f"azure-native:{short_type}" for short_type, signals in DIAGNOSTIC_SIGNALS.items() if LOGS in signals}
    - LOGS_IN_AZURE_DIAGNOSTICS_ONLY
)


def settings_for(program, resource_type: str) -> list[dict]:
    ids = {r.id for r in program.of_type(resource_type)}
    return [s.inputs for s in program.of_type(SETTING) if s.inputs["resourceUri"] in ids]


@pytest.mark.parametrize("resource_type", sorted(LOGS_IN_AZURE_DIAGNOSTICS_ONLY))
def test_services_without_resource_specific_tables_name_no_destination_type(program, resource_type):
    settings = settings_for(program, resource_type)
    assert settings and all("logAnalyticsDestinationType" not in s for s in settings)


# Services a stack has only with prod's ingress and egress modes (dev has neither; prod must have both).
NETWORK_EDGE = {"azure-native:network:ApplicationGateway", "azure-native:network:AzureFirewall"}


@pytest.mark.parametrize("resource_type", RESOURCE_SPECIFIC)
def test_services_with_resource_specific_tables_write_to_them(program, resource_type):
    settings = settings_for(program, resource_type)
    if resource_type in NETWORK_EDGE and program.stack != "prod" and not program.of_type(resource_type):
        return  # dev uses neither; prod's run checks them
    assert settings and all(s["logAnalyticsDestinationType"] == "Dedicated" for s in settings)
