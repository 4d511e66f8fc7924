"""Every service that supports diagnostic settings sends logs and metrics to the one workspace."""

from __future__ import annotations

import pytest

from components.ingestion_job import CONTAINER_GROUP_LOG_CATEGORIES
from policy.rules.stack_wide import DIAGNOSTIC_SIGNALS, LOGS, METRICS

ALL_LOGS = [{"categoryGroup": "allLogs", "enabled": True}]
# Container groups offer no category group: their setting names each category.
LOGS_BY_CATEGORY = {
    "azure-native:containerinstance:ContainerGroup": [
        {"category": category, "enabled": True} for category in CONTAINER_GROUP_LOG_CATEGORIES
    ]
}


# Services a stack has only with prod's ingress and egress modes (dev has neither; prod must have both).
NETWORK_EDGE = {"network:ApplicationGateway", "network:AzureFirewall"}


@pytest.mark.parametrize("short_type", DIAGNOSTIC_SIGNALS)
def test_every_diagnosable_resource_sends_exactly_its_signals_to_the_workspace(program, short_type):
    # The pack says which types send which signals; Azure refuses a setting asking for a signal a type lacks.
    workspace = program.one("azure-native:operationalinsights:Workspace")
    settings = {s.inputs["resourceUri"]: s.inputs for s in program.of_type("azure-native:monitor:DiagnosticSetting")}
    resource_type = f"azure-native:{short_type}"
    resources = program.of_type(resource_type)
    if short_type in NETWORK_EDGE and program.stack != "prod" and not resources:
        return  # only with prod's ingress and egress modes; prod's run checks them
    assert resources, f"{program.stack} registers no {short_type}: drop it from the pack or find out why"
    for resource in resources:
        assert resource.id in settings, f"{resource.type} {resource.name} has no diagnostic setting"
        setting = settings[resource.id]
        assert setting["workspaceId"] == workspace.id
        signals = DIAGNOSTIC_SIGNALS[short_type]
        assert bool(setting.get("logs")) == (LOGS in signals), resource.name
        assert bool(setting.get("metrics")) == (METRICS in signals), resource.name
        if LOGS in signals:
            assert setting["logs"] == LOGS_BY_CATEGORY.get(resource_type, ALL_LOGS)


def app_insights(program):
    return program.one("azure-native:resources:Resource", "observability-appinsights").inputs


def test_application_insights_is_workspace_based_and_keyless(program):
    workspace = program.one("azure-native:operationalinsights:Workspace")
    insights = app_insights(program)
    assert (insights["resourceProviderNamespace"], insights["resourceType"]) == ("Microsoft.Insights", "components")
    assert insights["properties"]["WorkspaceResourceId"] == workspace.id
    assert insights["properties"]["DisableLocalAuth"] is True


def test_application_insights_keeps_custom_metric_dimensions_for_the_gateways_token_metrics(program):
    # Without it, azure-openai-emit-token-metric's dimensions (caller, deployment...) are dropped.
    assert app_insights(program)["properties"]["CustomMetricsOptedInType"] == "WithDimensions"


def test_the_gateway_logger_gets_the_application_insights_connection_string(program):
    logger = program.one("azure-native:apimanagement:Logger").inputs
    assert logger["credentials"]["connectionString"].startswith("InstrumentationKey=")


def test_log_retention_comes_from_config(program):
    workspace = program.one("azure-native:operationalinsights:Workspace").inputs
    assert workspace["retentionInDays"] == program.config["aichat:observability"]["logRetentionDays"]
