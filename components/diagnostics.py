"""Diagnostic settings: every service that supports them sends its logs and metrics to one workspace."""

from __future__ import annotations

import pulumi
import pulumi_azure_native.monitor as monitor


def send_to_workspace(
    name: str,
    *,
    resource_id: pulumi.Input[str],
    workspace_id: pulumi.Input[str],
    parent: pulumi.Resource,
    logs: bool = True,
    metrics: bool = True,
) -> monitor.DiagnosticSetting:
    """All log categories (category group `allLogs`) and `AllMetrics`; some services offer only one of the two."""
    return monitor.DiagnosticSetting(
        f"{name}-diagnostics",
        name="to-log-analytics",
        resource_uri=resource_id,
        workspace_id=workspace_id,
        log_analytics_destination_type="Dedicated",
        logs=[monitor.DiagnosticsLogSettingsArgs(category_group="allLogs", enabled=True)] if logs else None,
        metrics=[monitor.DiagnosticsMetricSettingsArgs(category="AllMetrics", enabled=True)] if metrics else None,
        opts=pulumi.ResourceOptions(parent=parent),
    )
