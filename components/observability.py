"""Log Analytics and Application Insights: created right after the resource group, so every later resource
can send its diagnostics to the workspace."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_azure_native.operationalinsights as operationalinsights
import pulumi_azure_native.resources as resources

from components.config import ObservabilityConfig
from components.context import StackContext
from components.diagnostics import send_to_workspace

# Application Insights through the generic ARM resource, at the API version Microsoft's AI gateway labs use
# (Azure-Samples/AI-Gateway, modules/monitor/v1/appinsights.bicep): the token metrics the gateway emits
# (azure-openai-emit-token-metric) keep their dimensions only with `CustomMetricsOptedInType: WithDimensions`.
# Azure accepts that property but no API spec lists it, so the typed applicationinsights.Component cannot
# set it (pulumi/pulumi-azure-native#3545). A second resource patching the same component would fight
# this one on every update; one generic resource owns all of it.
APP_INSIGHTS_API_VERSION = "2020-02-02"
APP_INSIGHTS_TYPE = "components"


@dataclass
class ObservabilityArgs:
    context: StackContext
    settings: ObservabilityConfig  # log retention
    resource_group_name: pulumi.Input[str]


class Observability(pulumi.ComponentResource):
    """Workspace-based Application Insights; local (key) auth off, so telemetry needs Entra tokens."""

    workspace_id: pulumi.Output[str]
    app_insights_id: pulumi.Output[str]
    app_insights_connection_string: pulumi.Output[str]

    def __init__(self, name: str, args: ObservabilityArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aichat:observability:Observability", name, None, opts)
        context = args.context
        workspace = operationalinsights.Workspace(
            f"{name}-workspace",
            workspace_name=context.name("log"),
            resource_group_name=args.resource_group_name,
            location=context.location,
            sku=operationalinsights.WorkspaceSkuArgs(name="PerGB2018"),
            retention_in_days=args.settings.log_retention_days,
            tags=dict(context.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
        app_insights = resources.Resource(
            f"{name}-appinsights",
            resource_provider_namespace="Microsoft.Insights",
            parent_resource_path="",
            resource_type=APP_INSIGHTS_TYPE,
            resource_name_=context.name("appi"),
            api_version=APP_INSIGHTS_API_VERSION,
            resource_group_name=args.resource_group_name,
            location=context.location,
            kind="web",
            properties={
                "Application_Type": "web",
                "IngestionMode": "LogAnalytics",
                "WorkspaceResourceId": workspace.id,
                "DisableLocalAuth": True,  # telemetry needs Entra tokens, no instrumentation key
                "CustomMetricsOptedInType": "WithDimensions",
            },
            tags=dict(context.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.workspace_id = workspace.id
        self.app_insights_id = app_insights.id
        self.app_insights_connection_string = app_insights.properties.apply(lambda props: props["ConnectionString"])
        send_to_workspace(f"{name}-workspace", resource=workspace, workspace_id=workspace.id, parent=self)
        self.register_outputs({"workspace_id": self.workspace_id, "app_insights_id": self.app_insights_id})
