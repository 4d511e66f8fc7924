"""Built-in roles and least-privilege role assignments with stable names."""

from __future__ import annotations

import uuid
from enum import StrEnum

import pulumi
import pulumi_azure_native.authorization as authorization

# A fixed namespace so that assignment names are the same on every run and every machine.
_ASSIGNMENT_NAMESPACE = uuid.UUID("6c1d5a53-2b8e-4f57-9f0e-6e3a0b7f9a11")


class BuiltInRole(StrEnum):
    """Built-in role definition ids (the same in every tenant)."""

    ACR_PULL = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
    KEY_VAULT_SECRETS_USER = "4633458b-17de-408a-b874-0445c86b69e6"
    COGNITIVE_SERVICES_OPENAI_USER = "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd"
    MONITORING_METRICS_PUBLISHER = "3913510d-42f4-4e42-8a64-420c390055eb"


def assignment_name(scope: str, principal_id: str, role: BuiltInRole) -> str:
    """Role assignment names must be GUIDs; derive them so a second `pulumi up` changes nothing."""
    return str(uuid.uuid5(_ASSIGNMENT_NAMESPACE, f"{scope.lower()}|{principal_id}|{role.value}"))


def role_definition_id(scope: str, role: BuiltInRole) -> str:
    subscription_id = scope.split("/")[2]  # scopes are ARM ids: /subscriptions/<id>/...
    return f"/subscriptions/{subscription_id}/providers/Microsoft.Authorization/roleDefinitions/{role.value}"


def assign_role(
    resource_name: str,
    *,
    role: BuiltInRole,
    scope: pulumi.Input[str],
    principal_id: pulumi.Input[str],
    parent: pulumi.Resource,
    depends_on: list[pulumi.Resource] | None = None,
) -> authorization.RoleAssignment:
    """Grant `role` to a managed identity on exactly `scope` (a resource id, never a resource group)."""
    scope_output = pulumi.Output.from_input(scope)
    principal_output = pulumi.Output.from_input(principal_id)
    return authorization.RoleAssignment(
        resource_name,
        role_assignment_name=pulumi.Output.all(scope_output, principal_output).apply(
            lambda values: assignment_name(values[0], values[1], role)
        ),
        role_definition_id=scope_output.apply(lambda s: role_definition_id(s, role)),
        principal_id=principal_output,
        principal_type="ServicePrincipal",
        scope=scope_output,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=depends_on),
    )
