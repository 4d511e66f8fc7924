"""Log Analytics and Application Insights, and diagnostics for the network (created before them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_azure_native.applicationinsights as applicationinsights
import pulumi_azure_native.operationalinsights as operationalinsights

from components.context import StackContext
from components.diagnostics import send_to_workspace


@dataclass
class ObservabilityArgs:
    context: StackContext
    resource_group_name: pulumi.Input[str]
    # Resources that exist before the workspace (the VNet and its NSGs): name -> (resource id, has metrics).
    earlier_resources: Mapping[str, tuple[pulumi.Input[str], bool]] = field(default_factory=dict)


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
            retention_in_days=context.config.observability.log_retention_days,
            tags=dict(context.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
        app_insights = applicationinsights.Component(
            f"{name}-appinsights",
            resource_name_=context.name("appi"),
            resource_group_name=args.resource_group_name,
            location=context.location,
            kind="web",
            application_type="web",
            ingestion_mode="LogAnalytics",
            workspace_resource_id=workspace.id,
            disable_local_auth=True,
            tags=dict(context.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.workspace_id = workspace.id
        self.app_insights_id = app_insights.id
        self.app_insights_connection_string = app_insights.connection_string
        send_to_workspace(f"{name}-workspace", resource_id=workspace.id, workspace_id=workspace.id, parent=self)
        for resource_name, (resource_id, has_metrics) in args.earlier_resources.items():
            send_to_workspace(
                resource_name, resource_id=resource_id, workspace_id=workspace.id, parent=self, metrics=has_metrics
            )
        self.register_outputs({"workspace_id": self.workspace_id, "app_insights_id": self.app_insights_id})
