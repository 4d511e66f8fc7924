"""Diagnostic settings: every service that supports them sends its logs and metrics to one workspace."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_azure_native.monitor as monitor

# Services whose logs go to the AzureDiagnostics table only. Every other service writes its own tables
# (AZKVAuditLogs, PGSQLServerLogs, ...), so its setting asks for them (`Dedicated`); these ignore that
# request and Azure reports no destination type back, which `pulumi refresh` would show as drift on every
# run, so their setting leaves it out.
# Source: MicrosoftDocs/azure-monitor-docs, articles/azure-monitor/reference/supported-logs/.
LOGS_IN_AZURE_DIAGNOSTICS_ONLY = frozenset(
    {
        "azure-native:cognitiveservices:Account",
        "azure-native:network:VirtualNetwork",
        "azure-native:network:NetworkSecurityGroup",
    }
)


def send_to_workspace(
    name: str,
    *,
    resource: pulumi.CustomResource,
    workspace_id: pulumi.Input[str],
    parent: pulumi.Resource,
    logs: bool = True,
    metrics: bool = True,
    log_categories: Sequence[str] = (),
    aliases: Sequence[pulumi.Alias] = (),
) -> monitor.DiagnosticSetting:
    """All of `resource`'s log categories (category group `allLogs`, or `log_categories` where a service
    offers no group) and `AllMetrics`; some services offer only one of the two. Logs go to the service's
    own tables unless its type is in LOGS_IN_AZURE_DIAGNOSTICS_ONLY.

    `aliases`: where the setting was declared before (components/aliases.py `moved_from`).
    """
    resource_specific_tables = resource.pulumi_resource_type not in LOGS_IN_AZURE_DIAGNOSTICS_ONLY
    return monitor.DiagnosticSetting(
        f"{name}-diagnostics",
        name="to-log-analytics",
        resource_uri=resource.id,
        workspace_id=workspace_id,
        log_analytics_destination_type="Dedicated" if logs and resource_specific_tables else None,
        logs=_log_settings(log_categories) if logs else None,
        metrics=[monitor.DiagnosticsMetricSettingsArgs(category="AllMetrics", enabled=True)] if metrics else None,
        opts=pulumi.ResourceOptions(parent=parent, aliases=list(aliases) or None),
    )


def _log_settings(categories: Sequence[str]) -> list[monitor.DiagnosticsLogSettingsArgs]:
    if categories:
        return [monitor.DiagnosticsLogSettingsArgs(category=category, enabled=True) for category in categories]
    return [monitor.DiagnosticsLogSettingsArgs(category_group="allLogs", enabled=True)]
