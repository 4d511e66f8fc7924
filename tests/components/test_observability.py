"""Every service that supports diagnostic settings sends logs and metrics to the one workspace."""

from __future__ import annotations

# Resource types that offer diagnostic settings, and whether they have logs and metrics.
DIAGNOSABLE = {
    "azure-native:keyvault:Vault": (True, True),
    "azure-native:containerregistry:Registry": (True, True),
    "azure-native:dbforpostgresql:Server": (True, True),
    "azure-native:web:WebApp": (True, True),
    "azure-native:web:AppServicePlan": (False, True),
    "azure-native:network:VirtualNetwork": (True, True),
    "azure-native:network:NetworkSecurityGroup": (True, False),
    "azure-native:operationalinsights:Workspace": (True, True),
    "azure-native:cognitiveservices:Account": (True, True),
    "azure-native:apimanagement:ApiManagementService": (True, True),
}


def test_every_diagnosable_resource_sends_to_the_workspace(program):
    workspace = program.one("azure-native:operationalinsights:Workspace")
    settings = {s.inputs["resourceUri"]: s.inputs for s in program.of_type("azure-native:monitor:DiagnosticSetting")}
    for resource in program.resources:
        if resource.type not in DIAGNOSABLE:
            continue
        assert resource.id in settings, f"{resource.type} {resource.name} has no diagnostic setting"
        setting = settings[resource.id]
        assert setting["workspaceId"] == workspace.id
        wants_logs, wants_metrics = DIAGNOSABLE[resource.type]
        assert bool(setting.get("logs")) == wants_logs, resource.name
        assert bool(setting.get("metrics")) == wants_metrics, resource.name
        if wants_logs:
            assert setting["logs"] == [{"categoryGroup": "allLogs", "enabled": True}]


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
