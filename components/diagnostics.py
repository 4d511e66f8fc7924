"""Diagnostic settings: every service that supports them sends its logs and metrics to one workspace."""

from __future__ import annotations

from collections.abc import Sequence

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
    resource_specific_tables: bool = True,
    log_categories: Sequence[str] = (),
    aliases: Sequence[pulumi.Alias] = (),
) -> monitor.DiagnosticSetting:
    """All log categories (category group `allLogs`, or `log_categories` where a service offers no group)
    and `AllMetrics`; some services offer only one of the two.

    `resource_specific_tables`: the service writes its own tables (AZKVAuditLogs, PGSQLServerLogs, ...),
    so the setting asks for them (`Dedicated`). Services whose logs only go to AzureDiagnostics (Cognitive
    Services, virtual networks, NSGs) ignore that request and Azure reports no destination type back,
    which `pulumi refresh` shows as drift on every run; for them the setting leaves it out.
    Source: MicrosoftDocs/azure-monitor-docs, articles/azure-monitor/reference/supported-logs/.
    `aliases`: where the setting was declared before (components/aliases.py `moved_from`).
    """
    return monitor.DiagnosticSetting(
        f"{name}-diagnostics",
        name="to-log-analytics",
        resource_uri=resource_id,
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
